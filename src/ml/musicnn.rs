//! musicnn (MSD) in burn: the pretrained backbone every genre head builds on.
//!
//! Exactly the network of `shared/reference/musicnn/SPEC.md`: per 187-frame,
//! 96-band log-mel patch, a timbral/temporal front end, a residual 1-D mid-end
//! and a max/mean pooled back end give a 200-d `penultimate` embedding and 50
//! sigmoid tag probabilities (the Million Song Dataset's Last.fm tags).
//!
//! Each block is conv -> ReLU -> batch norm. Where the front end then takes a
//! max over frequency, we reduce the conv output first and apply ReLU and
//! batch norm to the 204/51 maxima only: both are monotone per channel, so the
//! result is the same and the largest activations never reach memory. On the
//! CPU the front end runs through [`super::frontend`]'s fused kernels; on other
//! devices through burn's convolutions (with the plain order where a batch-norm
//! scale is negative).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig1d, PaddingConfig2d,
};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::frontend::ConvMax;
use super::midend::{Conv1dBn, MidEnd};
use super::precision::{Precision, default_precision, has_vnni};
use super::quant::{ConvMaxQ, QuantKind, QuantPatch};
use crate::error::ModelError;

/// Frames per patch (3 s at 16 kHz, hop 256).
pub const PATCH_FRAMES: usize = 187;
/// Mel bands per frame.
pub const N_MELS: usize = 96;
/// Embedding size.
pub const EMBED_DIM: usize = 200;
/// Number of tags.
pub const N_TAGS: usize = 50;
/// Pooled feature size per statistic.
pub const POOL_DIM: usize = 753;

/// The MSD tag vocabulary, in output order.
pub const MSD_TAGS: [&str; N_TAGS] = [
    "rock",
    "pop",
    "alternative",
    "indie",
    "electronic",
    "female vocalists",
    "dance",
    "00s",
    "alternative rock",
    "jazz",
    "beautiful",
    "metal",
    "chillout",
    "male vocalists",
    "classic rock",
    "soul",
    "indie rock",
    "Mellow",
    "electronica",
    "80s",
    "folk",
    "90s",
    "chill",
    "instrumental",
    "punk",
    "oldies",
    "blues",
    "hard rock",
    "ambient",
    "acoustic",
    "experimental",
    "female vocalist",
    "guitar",
    "Hip-Hop",
    "70s",
    "party",
    "country",
    "easy listening",
    "sexy",
    "catchy",
    "funk",
    "electro",
    "heavy metal",
    "Progressive rock",
    "60s",
    "rnb",
    "indie pop",
    "sad",
    "House",
    "happy",
];

const BN_EPSILON: f64 = 0.001;

/// The network's layers (burn module; saved and loaded as a burnpack record).
#[derive(Module, Debug)]
pub struct Musicnn {
    bn_input: BatchNorm,
    timbral_38: Conv2d,
    bn_timbral_38: BatchNorm,
    timbral_67: Conv2d,
    bn_timbral_67: BatchNorm,
    temporal_128: Conv2d,
    bn_temporal_128: BatchNorm,
    temporal_64: Conv2d,
    bn_temporal_64: BatchNorm,
    temporal_32: Conv2d,
    bn_temporal_32: BatchNorm,
    mid_1: Conv1d,
    bn_mid_1: BatchNorm,
    mid_2: Conv1d,
    bn_mid_2: BatchNorm,
    mid_3: Conv1d,
    bn_mid_3: BatchNorm,
    bn_pool: BatchNorm,
    dense: Linear,
    bn_dense: BatchNorm,
    tags: Linear,
}

fn bn(n: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(n)
        .with_epsilon(BN_EPSILON)
        .init(device)
}

fn conv2d(out: usize, kernel: [usize; 2], pad: PaddingConfig2d, device: &Device) -> Conv2d {
    Conv2dConfig::new([1, out], kernel)
        .with_padding(pad)
        .init(device)
}

fn conv1d(inp: usize, device: &Device) -> Conv1d {
    Conv1dConfig::new(inp, 64, 7)
        .with_padding(PaddingConfig1d::Explicit(3, 3))
        .init(device)
}

/// Outputs for a batch of patches.
#[derive(Debug, Clone)]
pub struct MusicnnOutput {
    /// `[B, 200]` embeddings.
    pub penultimate: Tensor<2>,
    /// `[B, 50]` tag probabilities.
    pub tags: Tensor<2>,
    /// `[B, 753]` max-pooled mid-level features.
    pub max_pool: Tensor<2>,
}

impl Musicnn {
    /// A randomly initialised network (load weights with [`Backbone::load`]).
    pub fn init(device: &Device) -> Self {
        Self {
            bn_input: bn(1, device),
            timbral_38: conv2d(204, [7, 38], PaddingConfig2d::Explicit(3, 0, 3, 0), device),
            bn_timbral_38: bn(204, device),
            timbral_67: conv2d(204, [7, 67], PaddingConfig2d::Explicit(3, 0, 3, 0), device),
            bn_timbral_67: bn(204, device),
            temporal_128: conv2d(
                51,
                [128, 1],
                PaddingConfig2d::Explicit(63, 0, 64, 0),
                device,
            ),
            bn_temporal_128: bn(51, device),
            temporal_64: conv2d(51, [64, 1], PaddingConfig2d::Explicit(31, 0, 32, 0), device),
            bn_temporal_64: bn(51, device),
            temporal_32: conv2d(51, [32, 1], PaddingConfig2d::Explicit(15, 0, 16, 0), device),
            bn_temporal_32: bn(51, device),
            mid_1: conv1d(561, device),
            bn_mid_1: bn(64, device),
            mid_2: conv1d(64, device),
            bn_mid_2: bn(64, device),
            mid_3: conv1d(64, device),
            bn_mid_3: bn(64, device),
            bn_pool: bn(2 * POOL_DIM, device),
            dense: LinearConfig::new(2 * POOL_DIM, EMBED_DIM).init(device),
            bn_dense: bn(EMBED_DIM, device),
            tags: LinearConfig::new(EMBED_DIM, N_TAGS).init(device),
        }
    }

    /// Build from TensorFlow-named tensors (`conv2d/kernel`, `batch_normalization_3/gamma`, …)
    /// in TF layouts, as found in the musicnn checkpoint or `msd_musicnn_weights.npz`.
    pub fn from_tf_tensors(
        tensors: &BTreeMap<String, (Vec<usize>, Vec<f32>)>,
        device: &Device,
    ) -> Result<Self, ModelError> {
        let get = |name: &str| -> Result<&(Vec<usize>, Vec<f32>), ModelError> {
            tensors
                .get(name)
                .ok_or_else(|| ModelError::Other(format!("missing tensor {name}")))
        };
        let tensor1 = |name: &str| -> Result<Tensor<1>, ModelError> {
            let (shape, v) = get(name)?;
            Ok(Tensor::from_data(
                TensorData::new(v.clone(), [shape.iter().product::<usize>()]),
                device,
            ))
        };
        let load_bn = |layer: BatchNorm, name: &str| -> Result<BatchNorm, ModelError> {
            Ok(BatchNorm {
                gamma: Param::from_tensor(tensor1(&format!("{name}/gamma"))?),
                beta: Param::from_tensor(tensor1(&format!("{name}/beta"))?),
                running_mean: RunningState::new(tensor1(&format!("{name}/moving_mean"))?),
                running_var: RunningState::new(tensor1(&format!("{name}/moving_variance"))?),
                ..layer
            })
        };
        // TF [kh, kw, in, out] -> burn [out, in, kh, kw].
        let load_conv2d = |layer: Conv2d, name: &str| -> Result<Conv2d, ModelError> {
            let (shape, v) = get(&format!("{name}/kernel"))?;
            let [kh, kw, cin, cout] = shape[..] else {
                return Err(ModelError::Other(format!("{name}: expected a 4-d kernel")));
            };
            let k: Tensor<4> =
                Tensor::from_data(TensorData::new(v.clone(), [kh, kw, cin, cout]), device);
            Ok(Conv2d {
                weight: Param::from_tensor(k.permute([3, 2, 0, 1])),
                bias: Some(Param::from_tensor(tensor1(&format!("{name}/bias"))?)),
                ..layer
            })
        };
        // TF [7, C, 1, 64] (a 2-D conv over time x channels) -> burn Conv1d [64, C, 7].
        let load_conv1d = |layer: Conv1d, name: &str| -> Result<Conv1d, ModelError> {
            let (shape, v) = get(&format!("{name}/kernel"))?;
            let [k, c, one, cout] = shape[..] else {
                return Err(ModelError::Other(format!("{name}: expected a 4-d kernel")));
            };
            if one != 1 {
                return Err(ModelError::Other(format!(
                    "{name}: unexpected kernel shape {shape:?}"
                )));
            }
            let w: Tensor<3> = Tensor::from_data(TensorData::new(v.clone(), [k, c, cout]), device);
            Ok(Conv1d {
                weight: Param::from_tensor(w.permute([2, 1, 0])),
                bias: Some(Param::from_tensor(tensor1(&format!("{name}/bias"))?)),
                ..layer
            })
        };
        let load_linear = |name: &str| -> Result<Linear, ModelError> {
            let (shape, v) = get(&format!("{name}/kernel"))?;
            let w: Tensor<2> =
                Tensor::from_data(TensorData::new(v.clone(), [shape[0], shape[1]]), device);
            Ok(Linear {
                weight: Param::from_tensor(w),
                bias: Some(Param::from_tensor(tensor1(&format!("{name}/bias"))?)),
            })
        };
        let m = Self::init(device);
        Ok(Self {
            bn_input: load_bn(m.bn_input, "batch_normalization")?,
            timbral_38: load_conv2d(m.timbral_38, "conv2d")?,
            bn_timbral_38: load_bn(m.bn_timbral_38, "batch_normalization_1")?,
            timbral_67: load_conv2d(m.timbral_67, "conv2d_1")?,
            bn_timbral_67: load_bn(m.bn_timbral_67, "batch_normalization_2")?,
            temporal_128: load_conv2d(m.temporal_128, "conv2d_2")?,
            bn_temporal_128: load_bn(m.bn_temporal_128, "batch_normalization_3")?,
            temporal_64: load_conv2d(m.temporal_64, "conv2d_3")?,
            bn_temporal_64: load_bn(m.bn_temporal_64, "batch_normalization_4")?,
            temporal_32: load_conv2d(m.temporal_32, "conv2d_4")?,
            bn_temporal_32: load_bn(m.bn_temporal_32, "batch_normalization_5")?,
            mid_1: load_conv1d(m.mid_1, "conv2d_5")?,
            bn_mid_1: load_bn(m.bn_mid_1, "batch_normalization_6")?,
            mid_2: load_conv1d(m.mid_2, "conv2d_6")?,
            bn_mid_2: load_bn(m.bn_mid_2, "batch_normalization_7")?,
            mid_3: load_conv1d(m.mid_3, "conv2d_7")?,
            bn_mid_3: load_bn(m.bn_mid_3, "batch_normalization_8")?,
            bn_pool: load_bn(m.bn_pool, "batch_normalization_9")?,
            dense: load_linear("dense")?,
            bn_dense: load_bn(m.bn_dense, "batch_normalization_10")?,
            tags: load_linear("dense_1")?,
        })
    }
}

fn bn_negative_scale(b: &BatchNorm) -> Vec<bool> {
    // scale = gamma / sqrt(var + eps): only gamma's sign matters.
    b.gamma
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .map(|g| g.iter().map(|&x| x < 0.0).collect())
        .unwrap_or_default()
}

/// A tensor's values, as a plain vector.
fn values<const D: usize>(t: Tensor<D>) -> Option<Vec<f32>> {
    t.into_data().try_to_vec::<f32>().ok()
}

/// A convolution's weights, bias and `[cout, kt, km]` shape, as plain vectors.
fn conv_params(conv: &Conv2d) -> Option<(Vec<f32>, Vec<f32>, [usize; 3])> {
    let [cout, _, kt, km] = conv.weight.val().dims();
    let weight = values(conv.weight.val())?;
    let bias = values(conv.bias.as_ref()?.val())?;
    Some((weight, bias, [cout, kt, km]))
}

fn conv_max(conv: &Conv2d, norm: &BatchNorm, pad_before: usize) -> Option<ConvMax> {
    let (weight, bias, [cout, kt, km]) = conv_params(conv)?;
    Some(ConvMax::new(
        &weight,
        bias,
        [cout, kt, km],
        pad_before,
        bn_negative_scale(norm),
    ))
}

fn conv_max_q(
    kind: QuantKind,
    conv: &Conv2d,
    norm: &BatchNorm,
    pad_before: usize,
) -> Option<ConvMaxQ> {
    let (weight, bias, [cout, kt, km]) = conv_params(conv)?;
    Some(ConvMaxQ::new(
        kind,
        &weight,
        bias,
        [cout, kt, km],
        pad_before,
        &bn_negative_scale(norm),
    ))
}

/// A batch norm's `[gamma, beta, running mean, running variance]`.
fn bn_params(b: &BatchNorm) -> Option<[Vec<f32>; 4]> {
    Some([
        values(b.gamma.val())?,
        values(b.beta.val())?,
        values(b.running_mean.value())?,
        values(b.running_var.value())?,
    ])
}

/// Inference batch norm folded into `a * x + c` per channel.
fn bn_affine(b: &BatchNorm) -> Option<(Vec<f32>, Vec<f32>)> {
    let [gamma, beta, mean, var] = bn_params(b)?;
    Some(
        (0..gamma.len())
            .map(|i| {
                let s = gamma[i] as f64 / (var[i] as f64 + b.epsilon).sqrt();
                (s as f32, (beta[i] as f64 - mean[i] as f64 * s) as f32)
            })
            .unzip(),
    )
}

fn conv1d_bn(conv: &Conv1d, norm: &BatchNorm) -> Option<Conv1dBn> {
    let [cout, cin, _] = conv.weight.val().dims();
    let weight = values(conv.weight.val())?;
    let bias = values(conv.bias.as_ref()?.val())?;
    let [g, b, m, v] = bn_params(norm)?;
    Some(Conv1dBn::new(
        &weight,
        bias,
        [cout, cin],
        [&g, &b, &m, &v],
        norm.epsilon,
    ))
}

/// The reduced-precision CPU path: integer front end ([`ConvMaxQ`]) with its ReLU and
/// batch norms folded in, the mid-end as fp32 GEMMs ([`MidEnd`]) and the temporal
/// pooling as plain loops; the dense layers stay in burn.
#[derive(Debug, Clone)]
struct QuantPath {
    branches: Vec<ConvMaxQ>,
    /// Per branch: its batch norm (after ReLU) as `a * x + c`.
    norms: Vec<(Vec<f32>, Vec<f32>)>,
    mid: MidEnd,
}

impl QuantPath {
    fn new(kind: QuantKind, n: &Musicnn) -> Option<Self> {
        let branches = [
            conv_max_q(kind, &n.timbral_38, &n.bn_timbral_38, 3)?,
            conv_max_q(kind, &n.timbral_67, &n.bn_timbral_67, 3)?,
            conv_max_q(kind, &n.temporal_128, &n.bn_temporal_128, 63)?,
            conv_max_q(kind, &n.temporal_64, &n.bn_temporal_64, 31)?,
            conv_max_q(kind, &n.temporal_32, &n.bn_temporal_32, 15)?,
        ];
        let norms = [
            &n.bn_timbral_38,
            &n.bn_timbral_67,
            &n.bn_temporal_128,
            &n.bn_temporal_64,
            &n.bn_temporal_32,
        ]
        .into_iter()
        .map(bn_affine)
        .collect::<Option<Vec<_>>>()?;
        let mid = MidEnd {
            layers: [
                conv1d_bn(&n.mid_1, &n.bn_mid_1)?,
                conv1d_bn(&n.mid_2, &n.bn_mid_2)?,
                conv1d_bn(&n.mid_3, &n.bn_mid_3)?,
            ],
        };
        Some(Self {
            branches: branches.into(),
            norms,
            mid,
        })
    }
}

/// Wait for a tensor's value (burn-flex is eager, but reading one value keeps a profile
/// honest on any backend).
fn sync<const D: usize>(t: &Tensor<D>) {
    let _ = t.clone().slice_dim(0, 0..1).into_data();
}

/// The loaded backbone: network, the CPU front-end kernels, and its device.
#[derive(Debug, Clone)]
pub struct Backbone {
    net: Musicnn,
    /// Per front-end branch: may the burn path reduce before ReLU/BN (all scales >= 0)?
    fuse: [bool; 5],
    /// Fused conv+max kernels for the CPU, or `None` to run everything through burn.
    fast: Option<Vec<ConvMax>>,
    /// The reduced-precision path (built when the precision in effect is an integer one).
    quant: Option<QuantPath>,
    /// The precision in effect (never `Auto`).
    precision: Precision,
    device: Device,
}

/// Seconds spent per stage of a forward pass (`genretag bench --profile`).
#[derive(Debug, Clone, Default)]
pub struct StageTimes {
    /// (stage, seconds), in order, summed over calls.
    pub stages: Vec<(&'static str, f64)>,
}

impl StageTimes {
    fn add(&mut self, stage: &'static str, since: Instant) {
        let s = since.elapsed().as_secs_f64();
        match self.stages.iter_mut().find(|(n, _)| *n == stage) {
            Some((_, v)) => *v += s,
            None => self.stages.push((stage, s)),
        }
    }
}

/// Marks stage boundaries when profiling; free otherwise.
struct Timer<'a> {
    times: Option<&'a mut StageTimes>,
    since: Instant,
}

impl Timer<'_> {
    /// Close the current stage (charged to `stage`) and start the next.
    fn lap(&mut self, stage: &'static str, sync: impl FnOnce()) {
        if let Some(t) = self.times.as_deref_mut() {
            sync();
            t.add(stage, self.since);
            self.since = Instant::now();
        }
    }
}

impl Backbone {
    /// Wrap a network, at the process's default precision
    /// ([`super::precision::default_precision`], `auto` unless `--precision` said otherwise).
    /// On the CPU (burn-flex) the front end runs through [`ConvMax`] (fp32) or
    /// [`ConvMaxQ`] (int16/int8); elsewhere (burn-wgpu) through burn's own convolutions in fp32.
    pub fn new(net: Musicnn, device: Device) -> Self {
        let fuse = [
            &net.bn_timbral_38,
            &net.bn_timbral_67,
            &net.bn_temporal_128,
            &net.bn_temporal_64,
            &net.bn_temporal_32,
        ]
        .map(|b| !bn_negative_scale(b).contains(&true));
        let fast = (device == Device::flex())
            .then(|| {
                [
                    conv_max(&net.timbral_38, &net.bn_timbral_38, 3),
                    conv_max(&net.timbral_67, &net.bn_timbral_67, 3),
                    conv_max(&net.temporal_128, &net.bn_temporal_128, 63),
                    conv_max(&net.temporal_64, &net.bn_temporal_64, 31),
                    conv_max(&net.temporal_32, &net.bn_temporal_32, 15),
                ]
                .into_iter()
                .collect::<Option<Vec<_>>>()
            })
            .flatten();
        Self {
            net,
            fuse,
            fast,
            quant: None,
            precision: Precision::Fp32,
            device,
        }
        .with_precision(default_precision())
    }

    /// The same network at another precision. `Auto` picks int16 where the CPU has
    /// AVX-512 VNNI; an integer precision without VNNI runs a portable integer path (same
    /// results, slow). Devices other than the CPU always run fp32.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        let p = precision.resolve();
        let kind = match p {
            Precision::Int16 => Some(QuantKind::Int16),
            Precision::Int8 => Some(QuantKind::Int8),
            _ => None,
        };
        self.quant = None;
        self.precision = Precision::Fp32;
        if let (Some(kind), Some(_)) = (kind, &self.fast) {
            self.quant = QuantPath::new(kind, &self.net);
            if self.quant.is_some() {
                self.precision = p;
            }
        }
        self
    }

    /// The precision in effect (never `Auto`).
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Force the pure-burn front end (for comparisons and tests); implies fp32.
    pub fn without_fast_path(mut self) -> Self {
        self.fast = None;
        self.quant = None;
        self.precision = Precision::Fp32;
        self
    }

    /// Load a burnpack record written by `genretag convert-musicnn`.
    pub fn load(path: &Path, device: &Device) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
            });
        }
        let net = Musicnn::init(device)
            .try_load_file(path)
            .map_err(|e| ModelError::Format {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })?;
        Ok(Self::new(net, device.clone()))
    }

    /// The network.
    pub fn net(&self) -> &Musicnn {
        &self.net
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Run a batch of log-mel patches.
    ///
    /// `patches`: `[B, 187, 96]` (time, mel). Returns `[B, 200]`, `[B, 50]`, `[B, 753]`.
    pub fn forward(&self, patches: Tensor<3>) -> MusicnnOutput {
        self.forward_timed(patches, None)
    }

    /// [`Backbone::forward`], adding each stage's time to `times` (each stage waits for
    /// its result, so the sum is a little above an unprofiled pass).
    pub fn forward_profiled(&self, patches: Tensor<3>, times: &mut StageTimes) -> MusicnnOutput {
        self.forward_timed(patches, Some(times))
    }

    fn forward_timed(&self, patches: Tensor<3>, times: Option<&mut StageTimes>) -> MusicnnOutput {
        let mut timer = Timer {
            times,
            since: Instant::now(),
        };
        let n = &self.net;
        let x = n.bn_input.forward(patches.unsqueeze_dim::<4>(1)); // [B, 1, 187, 96]
        if let Some(q) = &self.quant {
            return self.forward_quant(q, x, &mut timer);
        }
        let norms = [
            &n.bn_timbral_38,
            &n.bn_timbral_67,
            &n.bn_temporal_128,
            &n.bn_temporal_64,
            &n.bn_temporal_32,
        ];
        let stage_names = [
            "front end: timbral 7x38",
            "front end: timbral 7x67",
            "front end: temporal 128",
            "front end: temporal 64",
            "front end: temporal 32",
        ];
        let wrap = |y: Vec<f32>, b: usize, c: usize, t: usize| -> Tensor<3> {
            Tensor::from_data(TensorData::new(y, [b, c, t]), &self.device)
        };

        let f0 = if let Some(kernels) = &self.fast {
            let [b, _, t, m] = x.dims();
            let data = x.into_data().try_to_vec::<f32>().unwrap_or_default();
            timer.lap("input batch norm", || {});
            let mut branches = Vec::with_capacity(kernels.len());
            for ((k, norm), stage) in kernels.iter().zip(norms).zip(stage_names) {
                let y = wrap(k.forward(&data, b, t, m), b, k.channels(), t);
                timer.lap(stage, || {});
                branches.push(norm.forward(relu(y)));
            }
            let f0 = Tensor::cat(branches, 1);
            timer.lap("front end: ReLU + batch norm", || sync(&f0));
            f0
        } else {
            // Conv, then max over the mel axis, with ReLU+BN applied after where exact.
            let branch = |conv: &Conv2d, norm: &BatchNorm, fuse: bool, x: Tensor<4>| -> Tensor<3> {
                let y = conv.forward(x);
                if fuse {
                    let m: Tensor<3> = y.max_dim(3).squeeze_dim(3);
                    norm.forward(relu(m))
                } else {
                    norm.forward(relu(y)).max_dim(3).squeeze_dim(3)
                }
            };
            let convs = [
                &n.timbral_38,
                &n.timbral_67,
                &n.temporal_128,
                &n.temporal_64,
                &n.temporal_32,
            ];
            let branches = convs
                .into_iter()
                .zip(norms)
                .zip(self.fuse)
                .map(|((conv, norm), fuse)| branch(conv, norm, fuse, x.clone()))
                .collect();
            let f0 = Tensor::cat(branches, 1);
            timer.lap("front end (burn convolutions)", || sync(&f0));
            f0
        }; // [B, 561, 187]

        let m1 = n.bn_mid_1.forward(relu(n.mid_1.forward(f0.clone())));
        timer.lap("mid-end conv 1 (561->64)", || sync(&m1));
        let m2 = n.bn_mid_2.forward(relu(n.mid_2.forward(m1.clone()))) + m1.clone();
        let m3 = n.bn_mid_3.forward(relu(n.mid_3.forward(m2.clone()))) + m2.clone();
        timer.lap("mid-end convs 2-3 (64->64)", || sync(&m3));
        let all = Tensor::cat(vec![f0, m1, m2, m3], 1); // [B, 753, 187]

        let [b, c, _] = all.dims();
        let max: Tensor<3> = all.clone().max_dim(2); // [B, 753, 1]
        let mean: Tensor<3> = all.mean_dim(2);
        // Interleave [max_0, mean_0, max_1, mean_1, …] as TF's flatten does.
        let pooled: Tensor<2> = Tensor::cat(vec![max.clone(), mean], 2).reshape([b, 2 * c]);
        let pooled = n.bn_pool.forward(pooled);
        timer.lap("temporal pooling", || sync(&pooled));
        let penultimate = n.bn_dense.forward(relu(n.dense.forward(pooled)));
        let tags = sigmoid(n.tags.forward(penultimate.clone()));
        timer.lap("dense layers", || sync(&tags));
        MusicnnOutput {
            penultimate,
            tags,
            max_pool: max.squeeze_dim(2),
        }
    }

    /// The reduced-precision forward pass from the batch-normalised input `[B, 1, t, m]`.
    fn forward_quant(&self, q: &QuantPath, x: Tensor<4>, timer: &mut Timer<'_>) -> MusicnnOutput {
        let n = &self.net;
        let [b, _, t, m] = x.dims();
        let data = x.into_data().try_to_vec::<f32>().unwrap_or_default();
        let shape = ConvMaxQ::patch_shape(&q.branches, t, m);
        let quant: Vec<QuantPatch> = data
            .par_chunks(t * m)
            .map(|p| QuantPatch::new(p, shape))
            .collect();
        timer.lap("input batch norm + quantise", || {});

        // Front end: [B, 561, t], each branch's ReLU and batch norm applied on the way.
        let c0: usize = q.branches.iter().map(ConvMaxQ::channels).sum();
        let mut f0 = vec![0.0f32; b * c0 * t];
        let mut off = 0;
        let stage_names = [
            "front end: timbral 7x38",
            "front end: timbral 7x67",
            "front end: temporal 128",
            "front end: temporal 64",
            "front end: temporal 32",
        ];
        for ((k, (na, nc)), stage) in q.branches.iter().zip(&q.norms).zip(stage_names) {
            let ck = k.channels();
            let y = k.forward(&quant, shape, has_vnni());
            for p in 0..b {
                for ch in 0..ck {
                    let src = &y[(p * ck + ch) * t..(p * ck + ch + 1) * t];
                    let dst = &mut f0[(p * c0 + off + ch) * t..(p * c0 + off + ch + 1) * t];
                    for (d, &v) in dst.iter_mut().zip(src) {
                        *d = na[ch] * v.max(0.0) + nc[ch];
                    }
                }
            }
            off += ck;
            timer.lap(stage, || {});
        }

        let [m1, m2, m3] = q.mid.forward(&f0, b, t);
        timer.lap("mid-end (3 convs)", || {});

        // Max and mean over time of [f0, m1, m2, m3], interleaved as TF's flatten does.
        let cm = q.mid.layers[0].channels();
        let c = c0 + 3 * cm;
        let mut pooled = vec![0.0f32; b * 2 * c];
        let mut max_pool = vec![0.0f32; b * c];
        for p in 0..b {
            let rows = (0..c0)
                .map(|ch| &f0[(p * c0 + ch) * t..(p * c0 + ch + 1) * t])
                .chain([&m1, &m2, &m3].into_iter().flat_map(|mk| {
                    (0..cm).map(move |ch| &mk[(p * cm + ch) * t..(p * cm + ch + 1) * t])
                }));
            for (ch, row) in rows.enumerate() {
                let mx = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let mean = row.iter().sum::<f32>() / t as f32;
                pooled[p * 2 * c + 2 * ch] = mx;
                pooled[p * 2 * c + 2 * ch + 1] = mean;
                max_pool[p * c + ch] = mx;
            }
        }
        let pooled: Tensor<2> =
            Tensor::from_data(TensorData::new(pooled, [b, 2 * c]), &self.device);
        let pooled = n.bn_pool.forward(pooled);
        timer.lap("temporal pooling", || sync(&pooled));
        let penultimate = n.bn_dense.forward(relu(n.dense.forward(pooled)));
        let tags = sigmoid(n.tags.forward(penultimate.clone()));
        timer.lap("dense layers", || sync(&tags));
        MusicnnOutput {
            penultimate,
            tags,
            max_pool: Tensor::from_data(TensorData::new(max_pool, [b, c]), &self.device),
        }
    }

    /// Run patches given as a flat frame-major buffer (`n * 187 * 96` values), in batches of
    /// `batch`. Returns per-patch (embedding, tags).
    pub fn embed_patches(&self, patches: &[f32], batch: usize) -> Vec<(Vec<f32>, Vec<f32>)> {
        let per = PATCH_FRAMES * N_MELS;
        let n = patches.len() / per;
        let mut out = Vec::with_capacity(n);
        let mut start = 0;
        while start < n {
            let b = batch.max(1).min(n - start);
            let data = patches[start * per..(start + b) * per].to_vec();
            let x: Tensor<3> = Tensor::from_data(
                TensorData::new(data, [b, PATCH_FRAMES, N_MELS]),
                &self.device,
            );
            let y = self.forward(x);
            let emb = y
                .penultimate
                .into_data()
                .try_to_vec::<f32>()
                .unwrap_or_default();
            let tags = y.tags.into_data().try_to_vec::<f32>().unwrap_or_default();
            for i in 0..b {
                out.push((
                    emb[i * EMBED_DIM..(i + 1) * EMBED_DIM].to_vec(),
                    tags[i * N_TAGS..(i + 1) * N_TAGS].to_vec(),
                ));
            }
            start += b;
        }
        out
    }
}
