//! The networks of the genre-classification reports we build on, in burn.
//!
//! | kind        | input                 | from                                          |
//! |-------------|-----------------------|-----------------------------------------------|
//! | `transfer`  | musicnn embedding     | logistic regression / MLP head (default model) |
//! | `cnn-naive` | log-mel or MFCC patch | 2 conv layers, the reports' baseline           |
//! | `cnn5`      | log-mel or MFCC patch | 5 blocks 32-64-128-256-512, batch norm, dropout |
//! | `rescnn`    | MFCC (or log-mel)     | NNET2: residual block, max+avg pooling, 4 FC   |
//! | `crnn`      | log-mel or MFCC patch | 3 conv blocks, 2 bidirectional GRU/LSTM layers |
//! | `cnn1d`     | 8 kHz waveform        | NNET1: 4 conv layers, BN, max+avg pooling      |
//! | `mixnet`    | waveform + MFCC       | NNET1 and NNET2 encoders side by side          |
//! | `rnn`       | handcrafted sequences | 2 LSTM/GRU layers over per-segment features    |
//! | `hybrid`    | log-mel + handcrafted | CNN embedding concatenated with features       |
//! | `logreg`    | handcrafted           | multinomial logistic regression                |
//! | `sgd`       | handcrafted           | linear classifier, hinge loss, plain SGD       |
//!
//! (`forest`, the random forest, lives in [`super::forest`]; ensembles in
//! [`super::ensemble`].)

use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, BiGru, BiGruConfig, BiLstm, BiLstmConfig, Dropout, DropoutConfig,
    Gru, GruConfig, Linear, LinearConfig, Lstm, LstmConfig, PaddingConfig1d, PaddingConfig2d,
};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::features::{HAND_DIM, Repr};
use crate::ml::musicnn::EMBED_DIM;

/// Which model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Logistic regression / MLP on the musicnn embedding.
    Transfer,
    /// Two-layer CNN baseline.
    CnnNaive,
    /// Five-block CNN.
    Cnn5,
    /// Residual 2-D CNN (NNET2).
    Rescnn,
    /// Convolutional front end + 2 bidirectional recurrent layers.
    Crnn,
    /// 1-D CNN on the waveform (NNET1).
    Cnn1d,
    /// NNET1 + NNET2 in parallel.
    Mixnet,
    /// Recurrent net on handcrafted feature sequences.
    Rnn,
    /// CNN embedding + handcrafted features.
    Hybrid,
    /// Logistic regression on handcrafted features.
    Logreg,
    /// Linear SGD classifier (hinge loss) on handcrafted features.
    Sgd,
    /// Random forest on handcrafted features.
    Forest,
}

impl ModelKind {
    /// Every kind, in table order.
    pub const ALL: [ModelKind; 12] = [
        ModelKind::Transfer,
        ModelKind::CnnNaive,
        ModelKind::Cnn5,
        ModelKind::Rescnn,
        ModelKind::Crnn,
        ModelKind::Cnn1d,
        ModelKind::Mixnet,
        ModelKind::Rnn,
        ModelKind::Hybrid,
        ModelKind::Logreg,
        ModelKind::Sgd,
        ModelKind::Forest,
    ];

    /// Its command-line name.
    pub fn name(self) -> &'static str {
        match self {
            ModelKind::Transfer => "transfer",
            ModelKind::CnnNaive => "cnn-naive",
            ModelKind::Cnn5 => "cnn5",
            ModelKind::Rescnn => "rescnn",
            ModelKind::Crnn => "crnn",
            ModelKind::Cnn1d => "cnn1d",
            ModelKind::Mixnet => "mixnet",
            ModelKind::Rnn => "rnn",
            ModelKind::Hybrid => "hybrid",
            ModelKind::Logreg => "logreg",
            ModelKind::Sgd => "sgd",
            ModelKind::Forest => "forest",
        }
    }

    /// The default 2-D input of the spectrogram models.
    pub fn default_image(self) -> Repr {
        match self {
            ModelKind::Rescnn | ModelKind::Mixnet => Repr::Mfcc,
            _ => Repr::Logmel,
        }
    }
}

/// Recurrent cell type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cell {
    /// Gated recurrent unit.
    #[default]
    Gru,
    /// Long short-term memory.
    Lstm,
}

/// The architecture and its size: everything needed to rebuild the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Which model.
    pub kind: ModelKind,
    /// 2-D input (log-mel or MFCC) of the spectrogram models.
    pub image: Repr,
    /// Recurrent cell of `crnn` and `rnn`.
    pub cell: Cell,
    /// Channel multiplier of the convolutional models (1.0 = the reports' widths).
    pub width: f32,
    /// Dropout probability.
    pub dropout: f64,
    /// Hidden units (MLP head, recurrent layers; 0 = logistic regression for `transfer`).
    pub hidden: usize,
    /// Windows per sequence of the `rnn` model.
    pub seq_len: usize,
    /// Trees of the random forest.
    pub trees: usize,
    /// Frames per input window (set from the run's windowing; 187 = 3 s).
    #[serde(default = "default_frames")]
    pub frames: usize,
}

fn default_frames() -> usize {
    crate::ml::musicnn::PATCH_FRAMES
}

impl ModelSpec {
    /// Defaults for `kind`.
    pub fn new(kind: ModelKind) -> Self {
        Self {
            kind,
            image: kind.default_image(),
            cell: Cell::Gru,
            width: 1.0,
            dropout: match kind {
                ModelKind::Cnn5 | ModelKind::Crnn | ModelKind::Hybrid => 0.3,
                ModelKind::Mixnet | ModelKind::Rescnn => 0.1,
                ModelKind::Rnn => 0.2,
                _ => 0.0,
            },
            hidden: match kind {
                ModelKind::Transfer => 0,
                _ => 64,
            },
            seq_len: 10,
            trees: 200,
            frames: default_frames(),
        }
    }

    /// The representations the model reads, in input order.
    pub fn inputs(&self) -> Vec<Repr> {
        match self.kind {
            ModelKind::Transfer => vec![Repr::Embed],
            ModelKind::CnnNaive | ModelKind::Cnn5 | ModelKind::Rescnn | ModelKind::Crnn => {
                vec![self.image]
            }
            ModelKind::Cnn1d => vec![Repr::Raw],
            ModelKind::Mixnet => vec![Repr::Raw, self.image],
            ModelKind::Hybrid => vec![self.image, Repr::Hand],
            ModelKind::Rnn | ModelKind::Logreg | ModelKind::Sgd | ModelKind::Forest => {
                vec![Repr::Hand]
            }
        }
    }

    fn ch(&self, base: usize) -> usize {
        ((base as f32 * self.width).round() as usize).max(2)
    }
}

/// A batch of inputs: each model reads the parts it needs.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    /// `[B, 1, frames, bands]` log-mel or MFCC.
    pub image: Option<Tensor<4>>,
    /// `[B, 1, samples]` waveform.
    pub wave: Option<Tensor<3>>,
    /// `[B, D]` feature vectors (handcrafted or embedding).
    pub vector: Option<Tensor<2>>,
    /// `[B, L, D]` sequences of feature vectors.
    pub seq: Option<Tensor<3>>,
}

fn need<T: Clone>(t: &Option<T>, what: &str) -> T {
    match t {
        Some(t) => t.clone(),
        // Batches are built from the spec's own inputs; a missing one is a bug.
        None => panic!("batch lacks its {what} input"),
    }
}

/// Conv 3x3 (same) -> optional batch norm -> ReLU -> optional 2x2 max-pool.
#[derive(Module, Debug)]
pub struct Block2d {
    conv: Conv2d,
    bn: Option<BatchNorm>,
    pool: Option<MaxPool2d>,
}

/// 3x3 convolution with "same" padding (its weights and bias; the blocks run it fused
/// with batch norm, ReLU and pooling, see [`super::conv_block`]).
fn conv3x3(c_in: usize, c_out: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([c_in, c_out], [3, 3])
        .with_padding(PaddingConfig2d::Same)
        .init(device)
}

/// The 2x2 pool of a block, halving only the dimensions of at least 2 (so short
/// inputs such as 20 MFCCs survive five blocks).
pub fn pool_kernel(hw: [usize; 2]) -> [usize; 2] {
    hw.map(|d| if d >= 2 { 2 } else { 1 })
}

/// Size after `blocks` pooled blocks.
fn pooled(mut hw: [usize; 2], blocks: usize) -> [usize; 2] {
    for _ in 0..blocks {
        let k = pool_kernel(hw);
        hw = [hw[0] / k[0], hw[1] / k[1]];
    }
    hw
}

impl Block2d {
    /// A block: `c_in -> c_out` channels, optional batch norm, optional pooling over an
    /// input of `pool` size (see [`pool_kernel`]).
    pub fn new(
        c_in: usize,
        c_out: usize,
        bn: bool,
        pool: Option<[usize; 2]>,
        device: &Device,
    ) -> Self {
        Self {
            conv: conv3x3(c_in, c_out, device),
            bn: bn.then(|| BatchNormConfig::new(c_out).init(device)),
            pool: pool.map(|hw| MaxPool2dConfig::new(pool_kernel(hw)).init()),
        }
    }

    /// `pool(relu(bn(conv(x))))`, fused into one operation with its own backward pass on
    /// the CPU backend ([`super::conv_block`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        super::conv_block::conv_block(x, &self.conv, self.bn.as_ref(), self.pool.as_ref())
    }

    /// The same block through burn's separate operations (tests and benchmarks).
    pub fn forward_unfused(&self, x: Tensor<4>) -> Tensor<4> {
        super::conv_block::conv_block_reference(x, &self.conv, self.bn.as_ref(), self.pool.as_ref())
    }
}

/// Global average pool over the last two dims: `[B, C, H, W]` -> `[B, C]`.
fn gap2(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.mean_dim(3).mean_dim(2).reshape([b, c])
}

/// Global max pool: `[B, C, H, W]` -> `[B, C]`.
fn gmp2(x: Tensor<4>) -> Tensor<2> {
    let [b, c, _, _] = x.dims();
    x.max_dim(3).max_dim(2).reshape([b, c])
}

/// A stack of 2-D blocks ending in global average pooling.
#[derive(Module, Debug)]
pub struct ConvEncoder {
    blocks: Vec<Block2d>,
}

impl ConvEncoder {
    /// Blocks of `widths` channels over `[frames, bands]` inputs.
    fn new(widths: &[usize], bn: bool, hw: [usize; 2], device: &Device) -> Self {
        let mut c_in = 1;
        let blocks = widths
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                let b = Block2d::new(c_in, c, bn, Some(pooled(hw, i)), device);
                c_in = c;
                b
            })
            .collect();
        Self { blocks }
    }

    fn maps(&self, x: Tensor<4>) -> Tensor<4> {
        self.blocks.iter().fold(x, |x, b| b.forward(x))
    }
}

/// Plain CNN: conv blocks, global average pool, dropout, dense.
#[derive(Module, Debug)]
pub struct Cnn {
    enc: ConvEncoder,
    drop: Dropout,
    out: Linear,
}

/// NNET2's residual encoder: stem, three convolutions with a skip, max+avg pooling.
#[derive(Module, Debug)]
pub struct ResEncoder {
    stem: Block2d,
    c1: Block2d,
    c2: Block2d,
    c3: Conv2d,
    bn3: BatchNorm,
}

impl ResEncoder {
    fn new(c: usize, hw: [usize; 2], device: &Device) -> Self {
        Self {
            stem: Block2d::new(1, c, true, Some(hw), device),
            c1: Block2d::new(c, c, true, None, device),
            c2: Block2d::new(c, c, true, None, device),
            c3: conv3x3(c, c, device),
            bn3: BatchNormConfig::new(c).init(device),
        }
    }

    /// `[B, 1, T, F]` -> `[B, 2c]` (max and average pooled).
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let s = self.stem.forward(x);
        let y = self
            .bn3
            .forward(self.c3.forward(self.c2.forward(self.c1.forward(s.clone()))));
        let y = relu(y + s);
        Tensor::cat(vec![gmp2(y.clone()), gap2(y)], 1)
    }
}

/// Dense layers with ReLU and dropout between, no activation after the last.
#[derive(Module, Debug)]
pub struct Mlp {
    layers: Vec<Linear>,
    drop: Dropout,
}

impl Mlp {
    fn new(dims: &[usize], dropout: f64, device: &Device) -> Self {
        Self {
            layers: dims
                .windows(2)
                .map(|w| LinearConfig::new(w[0], w[1]).init(device))
                .collect(),
            drop: DropoutConfig::new(dropout).init(),
        }
    }

    fn forward(&self, mut x: Tensor<2>) -> Tensor<2> {
        let n = self.layers.len();
        for (i, l) in self.layers.iter().enumerate() {
            x = l.forward(x);
            if i + 1 < n {
                x = self.drop.forward(relu(x));
            }
        }
        x
    }
}

/// NNET2: residual encoder and four dense layers.
#[derive(Module, Debug)]
pub struct ResCnn {
    enc: ResEncoder,
    head: Mlp,
}

/// NNET1's 1-D encoder: 4 conv layers with batch norm, max-pool after the first three,
/// max+avg pooling concatenated.
#[derive(Module, Debug)]
pub struct WaveEncoder {
    convs: Vec<Conv1d>,
    bns: Vec<BatchNorm>,
    pool: MaxPool1d,
}

impl WaveEncoder {
    fn new(widths: [usize; 4], device: &Device) -> Self {
        let mut c_in = 1;
        let mut convs = Vec::new();
        let mut bns = Vec::new();
        for (i, &c) in widths.iter().enumerate() {
            let (k, s) = if i == 0 { (64, 8) } else { (9, 1) };
            convs.push(
                Conv1dConfig::new(c_in, c, k)
                    .with_stride(s)
                    .with_padding(PaddingConfig1d::Explicit(k / 2, k / 2))
                    .init(device),
            );
            bns.push(BatchNormConfig::new(c).init(device));
            c_in = c;
        }
        Self {
            convs,
            bns,
            pool: MaxPool1dConfig::new(4).init(),
        }
    }

    /// `[B, 1, L]` -> `[B, 2 c_last]`.
    fn forward(&self, mut x: Tensor<3>) -> Tensor<2> {
        let n = self.convs.len();
        for (i, (c, bn)) in self.convs.iter().zip(&self.bns).enumerate() {
            x = relu(bn.forward(c.forward(x)));
            if i + 1 < n {
                x = self.pool.forward(x);
            }
        }
        let [b, ch, _] = x.dims();
        let mx = x.clone().max_dim(2).reshape([b, ch]);
        let av = x.mean_dim(2).reshape([b, ch]);
        Tensor::cat(vec![mx, av], 1)
    }
}

/// NNET1: waveform encoder and dense layers.
#[derive(Module, Debug)]
pub struct WaveCnn {
    enc: WaveEncoder,
    head: Mlp,
}

/// MixNet: waveform and spectrogram encoders, one classifier.
#[derive(Module, Debug)]
pub struct MixNet {
    wave: WaveEncoder,
    spec: ResEncoder,
    head: Mlp,
}

/// Two stacked recurrent layers (bidirectional or not) of either cell.
#[derive(Module, Debug)]
pub enum Recurrent {
    /// Unidirectional GRUs.
    Gru(Vec<Gru>),
    /// Unidirectional LSTMs.
    Lstm(Vec<Lstm>),
    /// Bidirectional GRUs.
    BiGru(Vec<BiGru>),
    /// Bidirectional LSTMs.
    BiLstm(Vec<BiLstm>),
}

impl Recurrent {
    fn new(cell: Cell, bidirectional: bool, d_in: usize, h: usize, device: &Device) -> Self {
        let dirs = if bidirectional { 2 } else { 1 };
        let ins = [d_in, h * dirs];
        match (cell, bidirectional) {
            (Cell::Gru, false) => Recurrent::Gru(
                ins.iter()
                    .map(|&d| GruConfig::new(d, h, true).init(device))
                    .collect(),
            ),
            (Cell::Lstm, false) => Recurrent::Lstm(
                ins.iter()
                    .map(|&d| LstmConfig::new(d, h, true).init(device))
                    .collect(),
            ),
            (Cell::Gru, true) => Recurrent::BiGru(
                ins.iter()
                    .map(|&d| BiGruConfig::new(d, h, true).init(device))
                    .collect(),
            ),
            (Cell::Lstm, true) => Recurrent::BiLstm(
                ins.iter()
                    .map(|&d| BiLstmConfig::new(d, h, true).init(device))
                    .collect(),
            ),
        }
    }

    /// `[B, T, D]` -> `[B, T, H * dirs]`.
    fn forward(&self, mut x: Tensor<3>) -> Tensor<3> {
        match self {
            Recurrent::Gru(ls) => ls.iter().for_each(|l| x = l.forward(x.clone(), None)),
            Recurrent::Lstm(ls) => ls.iter().for_each(|l| x = l.forward(x.clone(), None).0),
            Recurrent::BiGru(ls) => ls.iter().for_each(|l| x = l.forward(x.clone(), None).0),
            Recurrent::BiLstm(ls) => ls.iter().for_each(|l| x = l.forward(x.clone(), None).0),
        }
        x
    }
}

/// CRNN: conv blocks over `[T, F]`, the frequency axis folded into features, two
/// bidirectional recurrent layers, mean over time, dense.
#[derive(Module, Debug)]
pub struct Crnn {
    enc: ConvEncoder,
    rnn: Recurrent,
    drop: Dropout,
    out: Linear,
}

/// Recurrent net over sequences of feature vectors; the last step classifies.
#[derive(Module, Debug)]
pub struct SeqRnn {
    rnn: Recurrent,
    drop: Dropout,
    out: Linear,
}

/// Hybrid: CNN embedding concatenated with the handcrafted vector.
#[derive(Module, Debug)]
pub struct Hybrid {
    enc: ConvEncoder,
    head: Mlp,
}

/// Any of the networks.
#[derive(Module, Debug)]
pub enum Net {
    /// Dense layers on a vector (transfer, logistic regression, SGD).
    Dense(Mlp),
    /// Plain CNN.
    Cnn(Cnn),
    /// NNET2.
    Res(ResCnn),
    /// CRNN.
    Crnn(Crnn),
    /// NNET1.
    Wave(WaveCnn),
    /// MixNet.
    Mix(MixNet),
    /// RNN on feature sequences.
    Seq(SeqRnn),
    /// Hybrid.
    Hybrid(Hybrid),
}

impl Net {
    /// A freshly initialised network for `spec` with `classes` outputs.
    pub fn init(spec: &ModelSpec, classes: usize, device: &Device) -> Self {
        let k = classes;
        let hw = [spec.frames, spec.image.bands()];
        let dense = |d_in: usize| {
            if spec.hidden == 0 {
                vec![d_in, k]
            } else {
                vec![d_in, spec.hidden, k]
            }
        };
        match spec.kind {
            ModelKind::Transfer => Net::Dense(Mlp::new(&dense(EMBED_DIM), spec.dropout, device)),
            ModelKind::Logreg | ModelKind::Sgd | ModelKind::Forest => {
                Net::Dense(Mlp::new(&[HAND_DIM, k], 0.0, device))
            }
            ModelKind::CnnNaive => {
                let w = [spec.ch(16), spec.ch(32)];
                Net::Cnn(Cnn {
                    enc: ConvEncoder::new(&w, false, hw, device),
                    drop: DropoutConfig::new(spec.dropout).init(),
                    out: LinearConfig::new(w[1], k).init(device),
                })
            }
            ModelKind::Cnn5 => {
                let w = [32, 64, 128, 256, 512].map(|c| spec.ch(c));
                Net::Cnn(Cnn {
                    enc: ConvEncoder::new(&w, true, hw, device),
                    drop: DropoutConfig::new(spec.dropout).init(),
                    out: LinearConfig::new(w[4], k).init(device),
                })
            }
            ModelKind::Rescnn => {
                let c = spec.ch(64);
                Net::Res(ResCnn {
                    enc: ResEncoder::new(c, hw, device),
                    head: Mlp::new(&[2 * c, 128, 64, 32, k], spec.dropout, device),
                })
            }
            ModelKind::Crnn => {
                let w = [spec.ch(32), spec.ch(64), spec.ch(128)];
                let bands = pooled(hw, 3)[1];
                Net::Crnn(Crnn {
                    enc: ConvEncoder::new(&w, true, hw, device),
                    rnn: Recurrent::new(spec.cell, true, w[2] * bands.max(1), spec.hidden, device),
                    drop: DropoutConfig::new(spec.dropout).init(),
                    out: LinearConfig::new(2 * spec.hidden, k).init(device),
                })
            }
            ModelKind::Cnn1d => {
                let w = [16, 32, 64, 128].map(|c| spec.ch(c));
                Net::Wave(WaveCnn {
                    enc: WaveEncoder::new(w, device),
                    head: Mlp::new(&[2 * w[3], 64, k], spec.dropout, device),
                })
            }
            ModelKind::Mixnet => {
                let w = [16, 32, 64, 128].map(|c| spec.ch(c));
                let c = spec.ch(64);
                Net::Mix(MixNet {
                    wave: WaveEncoder::new(w, device),
                    spec: ResEncoder::new(c, hw, device),
                    head: Mlp::new(&[2 * w[3] + 2 * c, 128, 64, 32, k], spec.dropout, device),
                })
            }
            ModelKind::Rnn => Net::Seq(SeqRnn {
                rnn: Recurrent::new(spec.cell, false, HAND_DIM, spec.hidden, device),
                drop: DropoutConfig::new(spec.dropout).init(),
                out: LinearConfig::new(spec.hidden, k).init(device),
            }),
            ModelKind::Hybrid => {
                let w = [16, 32, 64, 128].map(|c| spec.ch(c));
                Net::Hybrid(Hybrid {
                    enc: ConvEncoder::new(&w, true, hw, device),
                    head: Mlp::new(
                        &[w[3] + HAND_DIM, spec.hidden.max(8), k],
                        spec.dropout,
                        device,
                    ),
                })
            }
        }
    }

    /// Logits `[B, classes]`.
    pub fn forward(&self, b: &Batch) -> Tensor<2> {
        match self {
            Net::Dense(m) => m.forward(need(&b.vector, "vector")),
            Net::Cnn(m) => m
                .out
                .forward(m.drop.forward(gap2(m.enc.maps(need(&b.image, "image"))))),
            Net::Res(m) => m.head.forward(m.enc.forward(need(&b.image, "image"))),
            Net::Crnn(m) => {
                let maps = m.enc.maps(need(&b.image, "image"));
                let [bs, c, t, f] = maps.dims();
                let seq = maps.permute([0, 2, 1, 3]).reshape([bs, t, c * f]);
                let h = m.rnn.forward(seq);
                let [_, _, d] = h.dims();
                let pooled = h.mean_dim(1).reshape([bs, d]);
                m.out.forward(m.drop.forward(pooled))
            }
            Net::Wave(m) => m.head.forward(m.enc.forward(need(&b.wave, "wave"))),
            Net::Mix(m) => {
                let a = m.wave.forward(need(&b.wave, "wave"));
                let s = m.spec.forward(need(&b.image, "image"));
                m.head.forward(Tensor::cat(vec![a, s], 1))
            }
            Net::Seq(m) => {
                let h = m.rnn.forward(need(&b.seq, "sequence"));
                let [bs, t, d] = h.dims();
                let last = h.slice([0..bs, t - 1..t, 0..d]).reshape([bs, d]);
                m.out.forward(m.drop.forward(last))
            }
            Net::Hybrid(m) => {
                let e = gap2(m.enc.maps(need(&b.image, "image")));
                m.head
                    .forward(Tensor::cat(vec![e, need(&b.vector, "vector")], 1))
            }
        }
    }

    /// A plain CNN of 3x3 conv blocks (`widths`), optional batch norm, global average
    /// pooling and one dense layer: the training-speed benchmark's network.
    pub fn plain_cnn(widths: &[usize], bn: bool, classes: usize, device: &Device) -> Self {
        Net::Cnn(Cnn {
            enc: ConvEncoder::new(widths, bn, super::bench::INPUT, device),
            drop: DropoutConfig::new(0.0).init(),
            out: LinearConfig::new(widths.last().copied().unwrap_or(1), classes).init(device),
        })
    }

    /// Number of trainable values.
    pub fn parameters(&self) -> usize {
        self.num_params()
    }
}
