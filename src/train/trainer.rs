//! The training loop: batches from track windows, augmentation on training data only,
//! Adam/AdamW/SGD, warm-up + cosine or reduce-on-plateau, early stopping on validation
//! loss with best-checkpoint restore, per-epoch events, cancel and resume.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use burn::module::Module;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams, SgdConfig};
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::features::{Repr, Windows};
use super::models::{Batch, ModelKind, ModelSpec, Net};
use crate::error::ModelError;
use crate::ml::cv::SplitMix;

/// Optimiser.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Optim {
    /// Adam with L2 weight decay.
    Adam,
    /// AdamW (decoupled weight decay).
    Adamw,
    /// Plain SGD with momentum 0.9.
    Sgd,
}

/// Learning-rate schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Constant.
    Constant,
    /// Linear warm-up, then cosine decay to 1% of the peak.
    Cosine,
    /// Halve the rate when validation loss has not improved for `patience / 2` epochs.
    Plateau,
}

/// Track-level decision from window probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Vote {
    /// Mean of the window probabilities.
    #[default]
    Mean,
    /// Share of windows voting for each class.
    Majority,
}

/// Augmentation probabilities (each applied per training example, never to
/// validation or test data).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Augment {
    /// Spectrogram frequency masking.
    pub freq_mask: f32,
    /// Spectrogram time masking.
    pub time_mask: f32,
    /// Spectrogram time reversal.
    pub reverse: f32,
    /// Salt-and-pepper noise on spectrograms.
    pub salt_pepper: f32,
    /// Gaussian noise on spectrograms.
    pub gaussian: f32,
    /// Poisson noise on spectrograms.
    pub poisson: f32,
    /// Gaussian noise on the waveform.
    pub wave_noise: f32,
    /// Time masking on the waveform.
    pub wave_mask: f32,
    /// Gaussian noise injection on feature vectors and sequences.
    pub feature_noise: f32,
}

impl Augment {
    /// The reports' settings: each transform with probability 0.5 (spectrogram noises
    /// 0.3, as they stack).
    pub fn reports() -> Self {
        Self {
            freq_mask: 0.5,
            time_mask: 0.5,
            reverse: 0.3,
            salt_pepper: 0.3,
            gaussian: 0.3,
            poisson: 0.3,
            wave_noise: 0.5,
            wave_mask: 0.5,
            feature_noise: 0.5,
        }
    }
}

/// How to train.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum epochs.
    pub epochs: usize,
    /// Examples per step.
    pub batch: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Weight decay (L2 for Adam/SGD, decoupled for AdamW).
    pub weight_decay: f64,
    /// Optimiser.
    pub optimizer: Optim,
    /// Schedule.
    pub schedule: Schedule,
    /// Warm-up epochs of the cosine schedule.
    pub warmup: usize,
    /// Early-stopping patience in epochs (0 = never stop early).
    pub patience: usize,
    /// Weight classes by inverse frequency in the loss.
    pub class_weights: bool,
    /// Seed for initialisation, shuffling and augmentation.
    pub seed: u64,
    /// Augmentation.
    pub augment: Augment,
    /// Track-level decision.
    pub vote: Vote,
}

impl TrainConfig {
    /// Sensible defaults for `kind`.
    pub fn for_kind(kind: ModelKind) -> Self {
        let (epochs, lr, batch) = match kind {
            ModelKind::Transfer | ModelKind::Logreg => (200, 0.01, 256),
            ModelKind::Sgd => (200, 0.01, 32),
            ModelKind::Rnn => (150, 0.003, 32),
            ModelKind::Forest => (1, 0.0, 1),
            _ => (30, 0.001, 32),
        };
        Self {
            epochs,
            batch,
            lr,
            weight_decay: 1e-4,
            optimizer: if kind == ModelKind::Sgd {
                Optim::Sgd
            } else {
                Optim::Adamw
            },
            schedule: Schedule::Cosine,
            warmup: if epochs >= 10 { 2 } else { 0 },
            patience: if epochs >= 50 { 30 } else { 8 },
            class_weights: true,
            seed: 42,
            augment: Augment::default(),
            vote: Vote::Mean,
        }
    }
}

/// One track's inputs: one [`Windows`] per input of the model's spec.
#[derive(Debug, Clone)]
pub struct TrackData {
    /// The file.
    pub path: PathBuf,
    /// True label.
    pub label: usize,
    /// Windows per input representation.
    pub inputs: Vec<Windows>,
}

/// Per-input standardisation fitted on training data: one (mean, std) for a whole
/// spectrogram or waveform, one per feature for vectors.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Norm {
    /// Means per input.
    pub mean: Vec<Vec<f32>>,
    /// Standard deviations per input.
    pub std: Vec<Vec<f32>>,
}

impl Norm {
    /// Fit on the training tracks.
    pub fn fit(reprs: &[Repr], tracks: &[&TrackData]) -> Self {
        let mut mean = Vec::new();
        let mut std = Vec::new();
        for (i, r) in reprs.iter().enumerate() {
            let per_feature = matches!(r, Repr::Hand | Repr::Embed);
            let width = if per_feature {
                tracks.first().map_or(1, |t| t.inputs[i].row_len)
            } else {
                1
            };
            let mut s = vec![0.0f64; width];
            let mut s2 = vec![0.0f64; width];
            let mut n = 0usize;
            for t in tracks {
                for (j, v) in t.inputs[i].data.iter().enumerate() {
                    let c = j % width;
                    s[c] += *v as f64;
                    s2[c] += (*v as f64).powi(2);
                }
                n += t.inputs[i].data.len() / width;
            }
            let n = n.max(1) as f64;
            mean.push(s.iter().map(|v| (v / n) as f32).collect());
            std.push(
                s.iter()
                    .zip(&s2)
                    .map(|(a, b)| ((b / n - (a / n).powi(2)).max(0.0).sqrt() as f32).max(1e-6))
                    .collect(),
            );
        }
        Self { mean, std }
    }

    /// Standardise `v` (values of input `input`) in place.
    pub fn apply(&self, input: usize, v: &mut [f32]) {
        let (m, s) = (&self.mean[input], &self.std[input]);
        let w = m.len();
        for (j, x) in v.iter_mut().enumerate() {
            *x = (*x - m[j % w]) / s[j % w];
        }
    }
}

/// Examples of a track for `spec`: windows, or for the `rnn` model sequences of
/// `seq_len` consecutive windows (half overlapping; short tracks repeat their last
/// window). Returns (first window, count) pairs.
pub fn examples(spec: &ModelSpec, t: &TrackData) -> Vec<(usize, usize)> {
    let rows = t.inputs.first().map_or(0, Windows::rows);
    if rows == 0 {
        return Vec::new();
    }
    if spec.kind != ModelKind::Rnn {
        return (0..rows).map(|r| (r, 1)).collect();
    }
    let l = spec.seq_len.max(1);
    if rows <= l {
        return vec![(0, l)];
    }
    let hop = (l / 2).max(1);
    (0..=rows - l).step_by(hop).map(|s| (s, l)).collect()
}

/// The augmentation random stream.
pub struct AugRng(SplitMix);

impl AugRng {
    /// A stream seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        Self(SplitMix::new(seed))
    }

    fn unit(&mut self) -> f32 {
        (self.0.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn chance(&mut self, p: f32) -> bool {
        p > 0.0 && self.unit() < p
    }
    fn below(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n.max(1) as u64) as usize
    }
    fn normal(&mut self) -> f32 {
        let (u, v) = (self.unit().max(1e-7), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f32::consts::PI * v).cos()
    }
    fn poisson(&mut self, lambda: f32) -> f32 {
        if lambda > 30.0 {
            return (lambda + lambda.sqrt() * self.normal()).max(0.0).round();
        }
        let l = (-lambda).exp();
        let (mut k, mut p) = (0.0, 1.0);
        loop {
            p *= self.unit();
            if p <= l {
                return k;
            }
            k += 1.0;
        }
    }
}

/// Augment one standardised spectrogram `[frames][bands]` in place.
fn augment_image(a: &Augment, v: &mut [f32], bands: usize, rng: &mut AugRng) {
    let frames = v.len() / bands;
    if rng.chance(a.freq_mask) {
        let w = 1 + rng.below((bands / 8).max(1));
        let f0 = rng.below(bands - w + 1);
        (0..frames).for_each(|t| v[t * bands + f0..t * bands + f0 + w].fill(0.0));
    }
    if rng.chance(a.time_mask) {
        let w = 1 + rng.below((frames / 6).max(1));
        let t0 = rng.below(frames - w + 1);
        v[t0 * bands..(t0 + w) * bands].fill(0.0);
    }
    if rng.chance(a.reverse) {
        for t in 0..frames / 2 {
            for f in 0..bands {
                v.swap(t * bands + f, (frames - 1 - t) * bands + f);
            }
        }
    }
    if rng.chance(a.salt_pepper) {
        let (lo, hi) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(l, h), &x| (l.min(x), h.max(x)));
        for _ in 0..v.len() / 50 {
            let i = rng.below(v.len());
            v[i] = if rng.unit() < 0.5 { lo } else { hi };
        }
    }
    if rng.chance(a.gaussian) {
        v.iter_mut().for_each(|x| *x += 0.1 * rng.normal());
    }
    if rng.chance(a.poisson) {
        // Shot noise on the shifted, non-negative spectrogram at 20 counts per unit.
        let lo = v.iter().copied().fold(f32::MAX, f32::min);
        const L: f32 = 20.0;
        v.iter_mut()
            .for_each(|x| *x = rng.poisson((*x - lo) * L) / L + lo);
    }
}

fn augment_wave(a: &Augment, v: &mut [f32], rng: &mut AugRng) {
    if rng.chance(a.wave_noise) {
        v.iter_mut().for_each(|x| *x += 0.05 * rng.normal());
    }
    if rng.chance(a.wave_mask) {
        let w = 1 + rng.below((v.len() / 10).max(1));
        let s = rng.below(v.len() - w + 1);
        v[s..s + w].fill(0.0);
    }
}

/// Builds batches for one model.
pub struct Batcher<'a> {
    /// The model.
    pub spec: &'a ModelSpec,
    /// Standardisation.
    pub norm: &'a Norm,
    /// Augmentation (training only).
    pub augment: Option<Augment>,
}

impl Batcher<'_> {
    /// A batch of examples `(track, (first window, count))`.
    pub fn batch(
        &self,
        tracks: &[&TrackData],
        items: &[(usize, (usize, usize))],
        rng: &mut AugRng,
        device: &Device,
    ) -> Batch {
        let reprs = self.spec.inputs();
        let n = items.len();
        let mut out = Batch::default();
        for (i, r) in reprs.iter().enumerate() {
            let row_len = tracks[items[0].0].inputs[i].row_len;
            let mut data = Vec::with_capacity(n * row_len);
            let mut seq_len = 1;
            for &(t, (start, count)) in items {
                let w = &tracks[t].inputs[i];
                seq_len = count;
                for j in 0..count {
                    let row = (start + j).min(w.rows() - 1);
                    let from = data.len();
                    data.extend_from_slice(w.row(row));
                    let v = &mut data[from..];
                    self.norm.apply(i, v);
                    if let Some(a) = &self.augment {
                        match r {
                            Repr::Logmel | Repr::Mfcc => augment_image(a, v, r.bands(), rng),
                            Repr::Raw => augment_wave(a, v, rng),
                            Repr::Hand | Repr::Embed | Repr::Tags => {
                                if rng.chance(a.feature_noise) {
                                    v.iter_mut().for_each(|x| *x += 0.1 * rng.normal());
                                }
                            }
                        }
                    }
                }
            }
            match r {
                Repr::Logmel | Repr::Mfcc => {
                    let bands = r.bands();
                    let frames = row_len / bands;
                    out.image = Some(Tensor::from_data(
                        TensorData::new(data, [n, 1, frames, bands]),
                        device,
                    ));
                }
                Repr::Raw => {
                    out.wave = Some(Tensor::from_data(
                        TensorData::new(data, [n, 1, row_len]),
                        device,
                    ))
                }
                Repr::Hand | Repr::Embed | Repr::Tags => {
                    if self.spec.kind == ModelKind::Rnn {
                        out.seq = Some(Tensor::from_data(
                            TensorData::new(data, [n, seq_len, row_len]),
                            device,
                        ));
                    } else {
                        out.vector = Some(Tensor::from_data(
                            TensorData::new(data, [n, row_len]),
                            device,
                        ));
                    }
                }
            }
        }
        out
    }
}

/// What one epoch did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochStats {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss.
    pub train_loss: f64,
    /// Training accuracy (windows, as trained).
    pub train_acc: f64,
    /// Validation loss (windows), if there is validation data.
    pub val_loss: Option<f64>,
    /// Validation accuracy (tracks).
    pub val_acc: Option<f64>,
    /// Learning rate at the end of the epoch.
    pub lr: f64,
    /// Seconds the epoch took.
    pub secs: f64,
}

/// Progress reported while training.
#[derive(Debug, Clone)]
pub enum Event {
    /// Features of `done` of `total` tracks are ready (decoded or read from the cache).
    Preparing {
        /// Tracks ready.
        done: usize,
        /// Tracks in all.
        total: usize,
    },
    /// Training starts: total epochs and steps per epoch.
    Started {
        /// Maximum epochs.
        epochs: usize,
        /// Steps per epoch.
        steps: usize,
        /// Trainable parameters.
        parameters: usize,
    },
    /// A step finished (for progress bars).
    Step {
        /// 1-based epoch.
        epoch: usize,
        /// 1-based step in the epoch.
        step: usize,
        /// Its loss.
        loss: f64,
    },
    /// An epoch finished.
    Epoch(EpochStats),
    /// A line for the log.
    Log(String),
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Stop {
    /// All epochs ran.
    Completed,
    /// Validation loss stopped improving.
    EarlyStopped,
    /// Cancelled by the user; the best checkpoint is kept.
    Cancelled,
}

/// A finished training run.
pub struct Trained {
    /// The best network (validation mode).
    pub net: Net,
    /// Per-epoch history.
    pub history: Vec<EpochStats>,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Why it ended.
    pub stop: Stop,
    /// Wall-clock seconds.
    pub secs: f64,
}

/// Saved between epochs so a run can resume.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ResumeState {
    epoch: usize,
    history: Vec<EpochStats>,
    best_val: f64,
    best_epoch: usize,
    lr_scale: f64,
    since_best: usize,
    since_lr_drop: usize,
}

fn loss_of(kind: ModelKind, logits: Tensor<2>, y: &[usize], w: &[f32], k: usize) -> Tensor<1> {
    let device = logits.device();
    let n = y.len();
    let sw: Vec<f32> = y.iter().map(|&l| w[l]).collect();
    let w_sum: f32 = sw.iter().sum();
    let sw: Tensor<1> = Tensor::from_data(TensorData::new(sw, [n]), &device);
    if kind == ModelKind::Sgd {
        // One-vs-rest hinge: sum over classes of max(0, 1 - s * y), y = +-1.
        let signs: Vec<f32> = y
            .iter()
            .flat_map(|&l| (0..k).map(move |c| if c == l { 1.0 } else { -1.0 }))
            .collect();
        let s: Tensor<2> = Tensor::from_data(TensorData::new(signs, [n, k]), &device);
        let h = relu(logits.mul(s).neg().add_scalar(1.0))
            .sum_dim(1)
            .reshape([n]);
        return h.mul(sw).sum().div_scalar(w_sum);
    }
    let yt: Tensor<1, Int> = Tensor::from_data(
        TensorData::new(y.iter().map(|&l| l as i64).collect::<Vec<_>>(), [n]),
        &device,
    );
    let picked: Tensor<1> = log_softmax(logits, 1)
        .gather(1, yt.unsqueeze_dim(1))
        .squeeze_dim(1);
    picked.mul(sw).sum().neg().div_scalar(w_sum)
}

fn scalar(t: Tensor<1>) -> f64 {
    t.into_data()
        .try_to_vec::<f32>()
        .ok()
        .and_then(|v| v.first().copied())
        .unwrap_or(f32::NAN) as f64
}

/// Per-class loss weights: `n / (k * count)` (inverse frequency, mean 1 over the
/// samples), or all 1 when `on` is false. Classes without samples get 1.
pub fn class_weights(k: usize, labels: impl Iterator<Item = usize>, on: bool) -> Vec<f32> {
    let mut counts = vec![0usize; k];
    labels.for_each(|l| counts[l] += 1);
    let n: usize = counts.iter().sum();
    counts
        .iter()
        .map(|&c| {
            if !on || c == 0 {
                1.0
            } else {
                n as f32 / (k as f32 * c as f32)
            }
        })
        .collect()
}

/// Window probabilities of `net` (validation mode) for every example of `tracks`,
/// grouped per track.
pub fn predict(
    net: &Net,
    spec: &ModelSpec,
    norm: &Norm,
    tracks: &[&TrackData],
    device: &Device,
) -> Vec<Vec<Vec<f32>>> {
    let batcher = Batcher {
        spec,
        norm,
        augment: None,
    };
    let mut rng = AugRng::new(0);
    let mut out = Vec::with_capacity(tracks.len());
    for (t, track) in tracks.iter().enumerate() {
        let items: Vec<(usize, (usize, usize))> =
            examples(spec, track).into_iter().map(|e| (t, e)).collect();
        let mut probs = Vec::with_capacity(items.len());
        for chunk in items.chunks(64) {
            let b = batcher.batch(tracks, chunk, &mut rng, device);
            let p = softmax(net.forward(&b), 1)
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            let k = p.len() / chunk.len().max(1);
            probs.extend(p.chunks(k.max(1)).map(<[f32]>::to_vec));
        }
        out.push(probs);
    }
    out
}

/// Track probabilities from window probabilities.
pub fn track_probs(windows: &[Vec<f32>], vote: Vote) -> Vec<f32> {
    let k = windows.first().map_or(0, Vec::len);
    let mut p = vec![0.0f32; k];
    for w in windows {
        match vote {
            Vote::Mean => p.iter_mut().zip(w).for_each(|(a, b)| *a += b),
            Vote::Majority => p[super::metrics::argmax(w)] += 1.0,
        }
    }
    let n = windows.len().max(1) as f32;
    p.iter_mut().for_each(|v| *v /= n);
    p
}

fn learning_rate(cfg: &TrainConfig, epoch0: usize, step: usize, steps: usize, scale: f64) -> f64 {
    let pos = epoch0 as f64 + step as f64 / steps.max(1) as f64;
    match cfg.schedule {
        Schedule::Constant => cfg.lr,
        Schedule::Plateau => cfg.lr * scale,
        Schedule::Cosine => {
            let warm = cfg.warmup as f64;
            if pos < warm {
                cfg.lr * (pos + 1.0 / steps.max(1) as f64) / warm
            } else {
                let span = (cfg.epochs as f64 - warm).max(1.0);
                let t = ((pos - warm) / span).clamp(0.0, 1.0);
                cfg.lr * (0.01 + 0.99 * 0.5 * (1.0 + (std::f64::consts::PI * t).cos()))
            }
        }
    }
}

/// Where a run keeps its resumable checkpoint.
pub fn checkpoint_dir(run: &Path) -> PathBuf {
    run.join("checkpoint")
}

/// Train a network. `checkpoint`: folder for per-epoch checkpoints (resumed from when
/// `resume` and it holds one). `cancel` is polled between steps.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    spec: &ModelSpec,
    cfg: &TrainConfig,
    classes: usize,
    norm: &Norm,
    train: &[&TrackData],
    val: &[&TrackData],
    device: &Device,
    checkpoint: Option<&Path>,
    resume: bool,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(&Event),
) -> Result<Trained, ModelError> {
    let started = Instant::now();
    let ad = device.clone().autodiff();
    ad.seed(cfg.seed);
    let mut net = Net::init(spec, classes, &ad);
    let mut best = net.clone();
    let wd = cfg.weight_decay as f32;
    let mut optim = match cfg.optimizer {
        Optim::Adam => AdamConfig::new()
            .with_weight_decay((wd > 0.0).then(|| WeightDecayConfig::new(wd)))
            .init(),
        Optim::Adamw => AdamWConfig::new().with_weight_decay(wd).init(),
        Optim::Sgd => SgdConfig::new()
            .with_weight_decay((wd > 0.0).then(|| WeightDecayConfig::new(wd)))
            .with_momentum(Some(burn::optim::momentum::MomentumConfig::new()))
            .init(),
    };
    let mut state = ResumeState {
        epoch: 0,
        history: Vec::new(),
        best_val: f64::INFINITY,
        best_epoch: 0,
        lr_scale: 1.0,
        since_best: 0,
        since_lr_drop: 0,
    };
    if let (Some(dir), true) = (checkpoint, resume)
        && let Ok(text) = std::fs::read_to_string(dir.join("state.json"))
    {
        let fmt = |e: String| ModelError::Format {
            path: dir.to_path_buf(),
            reason: e,
        };
        state = serde_json::from_str(&text).map_err(|e| fmt(e.to_string()))?;
        net = net
            .try_load_file(dir.join("last.bpk"))
            .map_err(|e| fmt(e.to_string()))?;
        best = best
            .try_load_file(dir.join("best.bpk"))
            .map_err(|e| fmt(e.to_string()))?;
        optim = optim
            .load(dir.join("optim.bpk"))
            .map_err(|e| fmt(e.to_string()))?;
        on_event(&Event::Log(format!(
            "resumed after epoch {} (best so far: epoch {})",
            state.epoch, state.best_epoch
        )));
    }

    let weights = class_weights(classes, train.iter().map(|t| t.label), cfg.class_weights);
    let mut items: Vec<(usize, (usize, usize))> = train
        .iter()
        .enumerate()
        .flat_map(|(t, tr)| examples(spec, tr).into_iter().map(move |e| (t, e)))
        .collect();
    if items.is_empty() {
        return Err(ModelError::Other("no training examples".into()));
    }
    let steps = items.len().div_ceil(cfg.batch.max(1));
    on_event(&Event::Started {
        epochs: cfg.epochs,
        steps,
        parameters: net.parameters(),
    });
    let batcher = Batcher {
        spec,
        norm,
        augment: (cfg.augment != Augment::default()).then_some(cfg.augment),
    };
    let eval_batcher = Batcher {
        spec,
        norm,
        augment: None,
    };
    let mut stop = Stop::Completed;
    let val_items: Vec<(usize, (usize, usize))> = val
        .iter()
        .enumerate()
        .flat_map(|(t, tr)| examples(spec, tr).into_iter().map(move |e| (t, e)))
        .collect();

    'epochs: for epoch0 in state.epoch..cfg.epochs {
        let t0 = Instant::now();
        let mut order = SplitMix::new(cfg.seed.wrapping_add(epoch0 as u64 * 7919));
        order.shuffle(&mut items);
        let mut aug_rng = AugRng::new(cfg.seed ^ (epoch0 as u64) << 20);
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        let mut lr = cfg.lr;
        for (s, chunk) in items.chunks(cfg.batch.max(1)).enumerate() {
            if cancel.load(Ordering::Relaxed) {
                stop = Stop::Cancelled;
                on_event(&Event::Log(format!(
                    "cancelled during epoch {}: keeping epoch {}",
                    epoch0 + 1,
                    state.best_epoch
                )));
                break 'epochs;
            }
            lr = learning_rate(cfg, epoch0, s, steps, state.lr_scale);
            let b = batcher.batch(train, chunk, &mut aug_rng, &ad);
            let y: Vec<usize> = chunk.iter().map(|&(t, _)| train[t].label).collect();
            let logits = net.forward(&b);
            let preds = logits
                .clone()
                .argmax(1)
                .into_data()
                .convert::<i64>()
                .try_to_vec::<i64>()
                .unwrap_or_default();
            correct += preds
                .iter()
                .zip(&y)
                .filter(|&(&p, &t)| p as usize == t)
                .count();
            seen += y.len();
            let loss = loss_of(spec.kind, logits, &y, &weights, classes);
            let l = scalar(loss.clone());
            loss_sum += l * y.len() as f64;
            on_event(&Event::Step {
                epoch: epoch0 + 1,
                step: s + 1,
                loss: l,
            });
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
        }
        // Validation: window loss and track accuracy from one forward pass.
        let (mut val_loss, mut val_acc) = (None, None);
        if !val_items.is_empty() {
            let v = net.valid();
            let (mut vl, mut vn) = (0.0, 0usize);
            let mut probs: Vec<Vec<Vec<f32>>> = vec![Vec::new(); val.len()];
            for chunk in val_items.chunks(64) {
                let mut r = AugRng::new(0);
                let b = eval_batcher.batch(val, chunk, &mut r, device);
                let y: Vec<usize> = chunk.iter().map(|&(t, _)| val[t].label).collect();
                let logits = v.forward(&b);
                vl += scalar(loss_of(spec.kind, logits.clone(), &y, &weights, classes))
                    * y.len() as f64;
                vn += y.len();
                let p = softmax(logits, 1)
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default();
                for (&(t, _), row) in chunk.iter().zip(p.chunks(classes)) {
                    probs[t].push(row.to_vec());
                }
            }
            val_loss = Some(vl / vn.max(1) as f64);
            let ok = probs
                .iter()
                .zip(val)
                .filter(|(p, t)| super::metrics::argmax(&track_probs(p, cfg.vote)) == t.label)
                .count();
            val_acc = Some(ok as f64 / val.len() as f64);
        }
        let stats = EpochStats {
            epoch: epoch0 + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss,
            val_acc,
            lr,
            secs: t0.elapsed().as_secs_f64(),
        };
        state.history.push(stats.clone());
        on_event(&Event::Epoch(stats));
        state.epoch = epoch0 + 1;
        let monitored = val_loss.unwrap_or(f64::NEG_INFINITY);
        if val_loss.is_none() || monitored < state.best_val - 1e-6 {
            state.best_val = monitored;
            state.best_epoch = epoch0 + 1;
            state.since_best = 0;
            state.since_lr_drop = 0;
            best = net.clone();
        } else {
            state.since_best += 1;
            state.since_lr_drop += 1;
            if cfg.schedule == Schedule::Plateau && state.since_lr_drop >= (cfg.patience / 2).max(1)
            {
                state.lr_scale *= 0.5;
                state.since_lr_drop = 0;
                on_event(&Event::Log(format!(
                    "validation loss flat: learning rate now {:.2e}",
                    cfg.lr * state.lr_scale
                )));
            }
        }
        if let Some(dir) = checkpoint {
            save_checkpoint(dir, &net, &best, &optim, &state)?;
        }
        if cfg.patience > 0 && state.since_best >= cfg.patience {
            stop = Stop::EarlyStopped;
            on_event(&Event::Log(format!(
                "early stop after epoch {}: no validation improvement for {} epochs; keeping epoch {}",
                epoch0 + 1,
                cfg.patience,
                state.best_epoch
            )));
            break;
        }
    }
    Ok(Trained {
        net: best.valid(),
        history: state.history,
        best_epoch: state.best_epoch,
        stop,
        secs: started.elapsed().as_secs_f64(),
    })
}

fn save_checkpoint(
    dir: &Path,
    net: &Net,
    best: &Net,
    optim: &burn::optim::ModuleOptimizer,
    state: &ResumeState,
) -> Result<(), ModelError> {
    let io = |e: std::io::Error| ModelError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let fmt = |e: String| ModelError::Format {
        path: dir.to_path_buf(),
        reason: e,
    };
    std::fs::create_dir_all(dir).map_err(io)?;
    net.clone()
        .save_file(dir.join("last.bpk"))
        .map_err(|e| fmt(e.to_string()))?;
    best.clone()
        .save_file(dir.join("best.bpk"))
        .map_err(|e| fmt(e.to_string()))?;
    optim
        .save(dir.join("optim.bpk"))
        .map_err(|e| fmt(e.to_string()))?;
    // state.json last: its presence means the three files above are complete.
    let tmp = dir.join("state.json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_string(state).map_err(|e| fmt(e.to_string()))?,
    )
    .map_err(io)?;
    std::fs::rename(&tmp, dir.join("state.json")).map_err(io)
}
