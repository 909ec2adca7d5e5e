//! Training-speed benchmark: the 99k-parameter CNN (4 blocks of 3x3 conv
//! 16-32-64-128 with batch norm, ReLU and 2x2 max-pool; global average pool; dense 10)
//! on batches of 32 x 1x128x130, trained with Adam. Measures seconds per training step
//! and milliseconds per single-clip inference, for our convolution and burn's own.

use std::time::Instant;

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::models::{Batch, Net};

/// The same network on burn's generic `Conv2d`.
#[derive(Module, Debug)]
pub struct BurnCnn {
    convs: Vec<Conv2d>,
    bns: Vec<BatchNorm>,
    pool: MaxPool2d,
    out: Linear,
}

impl BurnCnn {
    fn new(widths: &[usize], classes: usize, device: &Device) -> Self {
        let mut c_in = 1;
        let mut convs = Vec::new();
        let mut bns = Vec::new();
        for &c in widths {
            convs.push(
                Conv2dConfig::new([c_in, c], [3, 3])
                    .with_padding(PaddingConfig2d::Same)
                    .init(device),
            );
            bns.push(BatchNormConfig::new(c).init(device));
            c_in = c;
        }
        Self {
            convs,
            bns,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            out: LinearConfig::new(c_in, classes).init(device),
        }
    }

    fn forward(&self, mut x: Tensor<4>) -> Tensor<2> {
        for (c, b) in self.convs.iter().zip(&self.bns) {
            x = self.pool.forward(relu(b.forward(c.forward(x))));
        }
        let [n, c, _, _] = x.dims();
        self.out.forward(x.mean_dim(3).mean_dim(2).reshape([n, c]))
    }
}

/// Which convolution the benchmark network uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Variant {
    /// Ours: shifted-slices im2col + GEMM ([`super::conv::Conv3x3`]).
    Genretag,
    /// burn's `Conv2d`.
    BurnConv2d,
}

/// One measured variant.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
    /// Which.
    pub variant: Variant,
    /// Trainable parameters.
    pub parameters: usize,
    /// Median seconds per training step (forward, loss, backward, Adam update).
    pub step_s: f64,
    /// Median milliseconds per single-clip inference.
    pub infer_ms: f64,
    /// Loss after the timed steps (the net does learn: it falls from ~2.3).
    pub final_loss: f64,
}

/// The benchmark's shape.
pub const WIDTHS: [usize; 4] = [16, 32, 64, 128];
/// Input height (mel bands) and width (frames).
pub const INPUT: [usize; 2] = [128, 130];

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Time `steps` training steps (after 2 warm-up steps) and `infers` single-clip
/// inferences of `variant` on `device`.
pub fn measure(
    variant: Variant,
    device: &Device,
    batch: usize,
    steps: usize,
    infers: usize,
) -> Measured {
    let ad = device.clone().autodiff();
    ad.seed(1);
    let [h, w] = INPUT;
    let x: Tensor<4> = Tensor::random([batch, 1, h, w], Distribution::Normal(0.0, 1.0), &ad);
    let labels: Vec<i64> = (0..batch as i64).map(|i| i % 10).collect();
    let y: Tensor<1, Int> = Tensor::from_data(TensorData::new(labels, [batch]), &ad);
    let ce = |logits: Tensor<2>| -> Tensor<1> {
        log_softmax(logits, 1)
            .gather(1, y.clone().unsqueeze_dim(1))
            .mean()
            .neg()
    };
    let mut optim = AdamConfig::new().init();
    let mut times = Vec::new();
    let mut last = f64::NAN;
    let loss_value = |l: Tensor<1>| {
        l.into_data()
            .try_to_vec::<f32>()
            .ok()
            .and_then(|v| v.first().copied())
            .unwrap_or(f32::NAN) as f64
    };
    let (parameters, infer_ms) = match variant {
        Variant::Genretag => {
            let mut net = Net::plain_cnn(&WIDTHS, true, 10, &ad);
            for s in 0..steps + 2 {
                let t = Instant::now();
                let b = Batch {
                    image: Some(x.clone()),
                    ..Batch::default()
                };
                let loss = ce(net.forward(&b));
                let l = loss_value(loss.clone());
                let t1 = t.elapsed().as_secs_f64();
                let g = loss.backward();
                let t2 = t.elapsed().as_secs_f64();
                let grads = GradientsParams::from_grads(g, &net);
                net = optim.step(1e-3, net, grads);
                last = l;
                if std::env::var_os("GENRETAG_BENCH_SPLIT").is_some() {
                    eprintln!(
                        "forward {t1:.3} backward {:.3} update {:.3}",
                        t2 - t1,
                        t.elapsed().as_secs_f64() - t2
                    );
                }
                if s >= 2 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            let v = net.valid();
            let one: Tensor<4> =
                Tensor::random([1, 1, h, w], Distribution::Normal(0.0, 1.0), device);
            let mut it = Vec::new();
            for _ in 0..infers + 2 {
                let t = Instant::now();
                let b = Batch {
                    image: Some(one.clone()),
                    ..Batch::default()
                };
                let _ = v.forward(&b).into_data();
                it.push(t.elapsed().as_secs_f64() * 1e3);
            }
            (v.num_params(), median(it[2..].to_vec()))
        }
        Variant::BurnConv2d => {
            let mut net = BurnCnn::new(&WIDTHS, 10, &ad);
            for s in 0..steps + 2 {
                let t = Instant::now();
                let loss = ce(net.forward(x.clone()));
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(1e-3, net, grads);
                last = loss_value(loss);
                if s >= 2 {
                    times.push(t.elapsed().as_secs_f64());
                }
            }
            let v = net.valid();
            let one: Tensor<4> =
                Tensor::random([1, 1, h, w], Distribution::Normal(0.0, 1.0), device);
            let mut it = Vec::new();
            for _ in 0..infers + 2 {
                let t = Instant::now();
                let _ = v.forward(one.clone()).into_data();
                it.push(t.elapsed().as_secs_f64() * 1e3);
            }
            (v.num_params(), median(it[2..].to_vec()))
        }
    };
    Measured {
        variant,
        parameters,
        step_s: median(times),
        infer_ms,
        final_loss: last,
    }
}

/// Per-layer forward timings (diagnostics, `GENRETAG_BENCH_LAYERS=1`).
pub fn layer_timings(device: &Device, batch: usize) {
    use super::conv::Conv3x3;
    let [mut h, mut w] = INPUT;
    let mut c_in = 1;
    for &c in &WIDTHS {
        let x: Tensor<4> =
            Tensor::random([batch, c_in, h, w], Distribution::Normal(0.0, 1.0), device);
        let conv = Conv3x3::new(c_in, c, device);
        let bconv = Conv2dConfig::new([c_in, c], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(device);
        let bn = BatchNormConfig::new(c).init(device);
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let time = |f: &dyn Fn() -> Tensor<4>| {
            let _ = f().into_data();
            let t = Instant::now();
            for _ in 0..3 {
                let _ = f().into_data();
            }
            t.elapsed().as_secs_f64() / 3.0 * 1e3
        };
        let y = conv.forward(x.clone());
        let ours = time(&|| conv.forward(x.clone()));
        let theirs = time(&|| bconv.forward(x.clone()));
        let t_bn = time(&|| bn.forward(y.clone()));
        let t_relu = time(&|| relu(y.clone()));
        let t_pool = time(&|| pool.forward(y.clone()));
        let xs = x.clone();
        let t_pad = time(&|| {
            xs.clone()
                .swap_dims(0, 1)
                .pad([(1, 1), (1, 1)], burn::tensor::ops::PadMode::Constant(0.0))
        });
        eprintln!(
            "{c_in}->{c} {h}x{w}: conv ours {ours:.1} ms, burn {theirs:.1} ms, bn {t_bn:.1}, relu {t_relu:.1}, pool {t_pool:.1}, pad {t_pad:.1}"
        );
        c_in = c;
        h /= 2;
        w /= 2;
    }
}
