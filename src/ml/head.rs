//! Genre heads on the musicnn embedding: multinomial logistic regression or a
//! one-hidden-layer MLP, trained in burn with class weighting.
//!
//! A head is two files side by side: `NAME.json` ([`HeadConfig`]: labels,
//! standardisation, hyper-parameters, provenance) and `NAME.bpk` (weights).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, relu, softmax};
use burn::tensor::{Device, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use crate::error::ModelError;

/// Which head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HeadKind {
    /// Multinomial logistic regression.
    Logreg,
    /// One hidden ReLU layer.
    Mlp,
}

/// Everything needed to rebuild and use a head, saved as JSON next to its weights.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeadConfig {
    /// Format version of this file.
    pub format_version: u32,
    /// Head kind.
    pub kind: HeadKind,
    /// Output labels (GTZAN keys for the default model).
    pub labels: Vec<String>,
    /// Input feature: always `musicnn_msd_penultimate_mean` for now.
    pub input: String,
    /// Input dimension.
    pub input_dim: usize,
    /// Hidden units (MLP only).
    pub hidden: usize,
    /// Per-feature mean subtracted before the head (fitted on training data).
    pub mean: Vec<f32>,
    /// Per-feature standard deviation divided by.
    pub std: Vec<f32>,
    /// L2 penalty on weights (per sample, like sklearn's 1 / (C n)).
    pub l2: f32,
    /// Adam learning rate.
    pub learning_rate: f64,
    /// Full-batch training steps.
    pub epochs: usize,
    /// Whether classes were weighted by inverse frequency.
    pub class_weighted: bool,
    /// Seed for initialisation.
    pub seed: u64,
    /// Free-form provenance (data, split), written by the trainer.
    #[serde(default)]
    pub notes: String,
}

impl HeadConfig {
    /// Defaults for a head over `input_dim` features and `labels`.
    pub fn new(kind: HeadKind, labels: Vec<String>, input_dim: usize) -> Self {
        Self {
            format_version: 1,
            kind,
            labels,
            input: "musicnn_msd_penultimate_mean".into(),
            input_dim,
            hidden: 128,
            mean: vec![0.0; input_dim],
            std: vec![1.0; input_dim],
            l2: 0.0,
            learning_rate: 0.02,
            epochs: 300,
            class_weighted: true,
            seed: 42,
            notes: String::new(),
        }
    }
}

/// The head's layers.
#[derive(Module, Debug)]
pub struct HeadNet {
    hidden: Option<Linear>,
    out: Linear,
}

impl HeadNet {
    fn init(cfg: &HeadConfig, device: &Device) -> Self {
        let n_out = cfg.labels.len();
        match cfg.kind {
            HeadKind::Logreg => Self {
                hidden: None,
                out: LinearConfig::new(cfg.input_dim, n_out).init(device),
            },
            HeadKind::Mlp => Self {
                hidden: Some(LinearConfig::new(cfg.input_dim, cfg.hidden).init(device)),
                out: LinearConfig::new(cfg.hidden, n_out).init(device),
            },
        }
    }

    /// `[N, input_dim]` standardised features -> `[N, labels]` logits.
    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        match &self.hidden {
            Some(h) => self.out.forward(relu(h.forward(x))),
            None => self.out.forward(x),
        }
    }

    fn l2_penalty(&self) -> Tensor<1> {
        let w = self.out.weight.val();
        let mut p = w.clone().mul(w).sum();
        if let Some(h) = &self.hidden {
            let hw = h.weight.val();
            p = p + hw.clone().mul(hw).sum();
        }
        p
    }
}

/// A trained head, ready to predict.
#[derive(Debug, Clone)]
pub struct GenreHead {
    /// Its configuration.
    pub config: HeadConfig,
    net: HeadNet,
    device: Device,
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

fn standardise(x: &[Vec<f32>], mean: &[f32], std: &[f32]) -> Vec<f32> {
    x.iter()
        .flat_map(|row| row.iter().zip(mean).zip(std).map(|((v, m), s)| (v - m) / s))
        .collect()
}

impl GenreHead {
    /// Train on `features` (one row per track) with integer `labels`.
    pub fn train(
        mut config: HeadConfig,
        features: &[Vec<f32>],
        labels: &[usize],
        device: &Device,
    ) -> Result<Self, ModelError> {
        let n = features.len();
        let d = config.input_dim;
        let k = config.labels.len();
        if n == 0 || features.iter().any(|f| f.len() != d) || labels.len() != n {
            return Err(ModelError::Other(format!(
                "training data must be {n} rows of {d} features with one label each"
            )));
        }
        if let Some(bad) = labels.iter().find(|&&l| l >= k) {
            return Err(ModelError::Other(format!(
                "label {bad} out of range (0..{k})"
            )));
        }
        // Standardisation fitted on the training rows only.
        let mut mean = vec![0.0f64; d];
        for row in features {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let mut var = vec![0.0f64; d];
        for row in features {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (*v as f64 - m).powi(2);
            }
        }
        config.mean = mean.iter().map(|&m| m as f32).collect();
        config.std = var
            .iter()
            .map(|&s| ((s / n as f64).sqrt() as f32).max(1e-6))
            .collect();

        let class_w = class_weights(k, labels.iter().copied(), config.class_weighted);
        let sample_w: Vec<f32> = labels.iter().map(|&l| class_w[l]).collect();
        let w_sum: f32 = sample_w.iter().sum();

        let train_device = device.clone().autodiff();
        train_device.seed(config.seed);
        let x: Tensor<2> = Tensor::from_data(
            TensorData::new(standardise(features, &config.mean, &config.std), [n, d]),
            &train_device,
        );
        let y: Tensor<1, Int> = Tensor::from_data(
            TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [n]),
            &train_device,
        );
        let sw: Tensor<1> = Tensor::from_data(TensorData::new(sample_w, [n]), &train_device);
        let mut net = HeadNet::init(&config, &train_device);
        let mut optim = AdamConfig::new().init();
        for _ in 0..config.epochs {
            let logp = log_softmax(net.forward(x.clone()), 1);
            let picked: Tensor<1> = logp.gather(1, y.clone().unsqueeze_dim(1)).squeeze_dim(1);
            let nll = picked.mul(sw.clone()).sum().neg().div_scalar(w_sum);
            let loss = nll + net.l2_penalty().mul_scalar(0.5 * config.l2);
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(config.learning_rate, net, grads);
        }
        let net = net.to_device(device);
        Ok(Self {
            config,
            net,
            device: device.clone(),
        })
    }

    /// Class probabilities for each row of features.
    pub fn predict_proba(&self, features: &[Vec<f32>]) -> Vec<Vec<f32>> {
        if features.is_empty() {
            return Vec::new();
        }
        let (n, d) = (features.len(), self.config.input_dim);
        let x: Tensor<2> = Tensor::from_data(
            TensorData::new(
                standardise(features, &self.config.mean, &self.config.std),
                [n, d],
            ),
            &self.device,
        );
        let p = softmax(self.net.forward(x), 1)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap_or_default();
        p.chunks(self.config.labels.len())
            .map(<[f32]>::to_vec)
            .collect()
    }

    /// A short identifier of this head's configuration and weights, for caches.
    pub fn fingerprint(&self) -> String {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&self.config)
            .unwrap_or_default()
            .hash(&mut h);
        if let Ok(w) = self.net.out.weight.val().into_data().try_to_vec::<f32>() {
            w.iter().for_each(|v| v.to_bits().hash(&mut h));
        }
        format!("{:016x}", h.finish())
    }

    /// Paths of the config and weights for a model path given as `X`, `X.json` or `X.bpk`.
    pub fn paths(path: &Path) -> (PathBuf, PathBuf) {
        let stem = match path.extension().and_then(|e| e.to_str()) {
            Some("json") | Some("bpk") => path.with_extension(""),
            _ => path.to_path_buf(),
        };
        let s = stem.to_string_lossy().to_string();
        (
            PathBuf::from(format!("{s}.json")),
            PathBuf::from(format!("{s}.bpk")),
        )
    }

    /// Save `X.json` and `X.bpk`.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let (json, bpk) = Self::paths(path);
        let text = serde_json::to_string_pretty(&self.config)
            .map_err(|e| ModelError::Other(e.to_string()))?;
        std::fs::write(&json, text + "\n")
            .map_err(|source| ModelError::Io { path: json, source })?;
        self.net
            .clone()
            .save_file(&bpk)
            .map_err(|e| ModelError::Format {
                path: bpk,
                reason: e.to_string(),
            })
    }

    /// Load `X.json` and `X.bpk`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelError> {
        let (json, bpk) = Self::paths(path);
        let text = std::fs::read_to_string(&json).map_err(|source| ModelError::Io {
            path: json.clone(),
            source,
        })?;
        let config: HeadConfig = serde_json::from_str(&text).map_err(|e| ModelError::Format {
            path: json.clone(),
            reason: e.to_string(),
        })?;
        if config.mean.len() != config.input_dim
            || config.std.len() != config.input_dim
            || config.labels.is_empty()
        {
            return Err(ModelError::Format {
                path: json,
                reason: "inconsistent dimensions".into(),
            });
        }
        let net = HeadNet::init(&config, device)
            .try_load_file(&bpk)
            .map_err(|e| ModelError::Format {
                path: bpk,
                reason: e.to_string(),
            })?;
        Ok(Self {
            config,
            net,
            device: device.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs() -> (Vec<Vec<f32>>, Vec<usize>) {
        // Three separable clusters in 4-d.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for i in 0..60 {
            let c = i % 3;
            let jitter = ((i * 37) % 11) as f32 / 11.0 - 0.5;
            let mut row = vec![jitter * 0.3; 4];
            row[c] += 3.0;
            x.push(row);
            y.push(c);
        }
        (x, y)
    }

    #[test]
    fn learns_separable_clusters_and_round_trips() {
        let device = Device::flex();
        let (x, y) = blobs();
        for kind in [HeadKind::Logreg, HeadKind::Mlp] {
            let mut cfg = HeadConfig::new(kind, vec!["a".into(), "b".into(), "c".into()], 4);
            cfg.epochs = 150;
            cfg.hidden = 16;
            let head = GenreHead::train(cfg, &x, &y, &device).expect("trains");
            let p = head.predict_proba(&x);
            let correct = p
                .iter()
                .zip(&y)
                .filter(|&(row, &t)| {
                    row.iter()
                        .enumerate()
                        .max_by(|a, b| a.1.total_cmp(b.1))
                        .map(|(i, _)| i)
                        == Some(t)
                })
                .count();
            assert_eq!(correct, x.len(), "{kind:?}");
            assert!(p.iter().all(|r| (r.iter().sum::<f32>() - 1.0).abs() < 1e-4));

            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("head");
            head.save(&path).expect("saves");
            let back = GenreHead::load(&path.with_extension("json"), &device).expect("loads");
            let p2 = back.predict_proba(&x);
            for (a, b) in p.iter().flatten().zip(p2.iter().flatten()) {
                assert!((a - b).abs() < 1e-6);
            }
        }
    }

    #[test]
    fn rejects_bad_shapes() {
        let cfg = HeadConfig::new(HeadKind::Logreg, vec!["a".into()], 3);
        assert!(GenreHead::train(cfg, &[vec![1.0, 2.0]], &[0], &Device::flex()).is_err());
    }
}
