//! Training-speed benchmark: the 99k-parameter CNN (4 blocks of 3x3 conv
//! 16-32-64-128 with batch norm, ReLU and 2x2 max-pool; global average pool; dense 10)
//! on batches of 32 x 1x128x130, trained with Adam, built from the same blocks as the
//! models. Measures seconds per training step and milliseconds per single-clip inference.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use serde::{Deserialize, Serialize};

use super::models::{Batch, Block2d, Net};

/// One measurement.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Measured {
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

/// Median (upper middle for even counts) of timings; NaN when empty.
pub fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Time `steps` training steps (after 2 warm-up steps) and `infers` single-clip
/// inferences on `device`. `split_times` prints each step's forward, backward and
/// update times.
pub fn measure(
    device: &Device,
    batch: usize,
    steps: usize,
    infers: usize,
    split_times: bool,
    widths: &[usize],
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
    let mut net = Net::plain_cnn(widths, true, 10, &ad);
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
        if split_times {
            eprintln!(
                "forward {t1:.3} s, backward {:.3} s, update {:.3} s",
                t2 - t1,
                t.elapsed().as_secs_f64() - t2
            );
        }
        if s >= 2 {
            times.push(t.elapsed().as_secs_f64());
        }
    }
    let v = net.valid();
    let one: Tensor<4> = Tensor::random([1, 1, h, w], Distribution::Normal(0.0, 1.0), device);
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
    let (parameters, infer_ms) = (v.num_params(), median(&mut it[2..]));
    Measured {
        parameters,
        step_s: median(&mut times),
        infer_ms,
        final_loss: last,
    }
}

/// One block's forward and backward times, fused and through burn's separate operations.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LayerTiming {
    /// `cin->cout HxW`.
    pub layer: String,
    /// Milliseconds, burn's operations (convolution, batch norm, ReLU, max-pool).
    pub unfused_forward_ms: f64,
    /// Milliseconds of the backward pass through them.
    pub unfused_backward_ms: f64,
    /// Milliseconds, the fused block.
    pub fused_forward_ms: f64,
    /// Milliseconds of its backward pass.
    pub fused_backward_ms: f64,
}

/// Per-block forward and backward times on the benchmark's shapes (`bench-train
/// --profile`): each block of `widths` alone, in training mode, fused and unfused. The
/// backward time includes a weighted sum's (one pass over the block's output).
pub fn layer_timings(device: &Device, batch: usize, widths: &[usize]) -> Vec<LayerTiming> {
    let ad = device.clone().autodiff();
    ad.seed(3);
    let [mut h, mut w] = INPUT;
    let mut c_in = 1;
    let mut rows = Vec::new();
    for (i, &c) in widths.iter().enumerate() {
        let block = Block2d::new(c_in, c, true, Some([h, w]), &ad);
        let x: Tensor<4> = Tensor::random([batch, c_in, h, w], Distribution::Normal(0.0, 1.0), &ad);
        // As in the network, the first block's input needs no gradient.
        let x = if i > 0 { x.require_grad() } else { x };
        let time = |fused: bool| -> (f64, f64) {
            let (mut fwd, mut bwd) = (Vec::new(), Vec::new());
            for rep in 0..4 {
                let t = Instant::now();
                let y = if fused {
                    block.forward(x.clone())
                } else {
                    block.forward_unfused(x.clone())
                };
                let t1 = t.elapsed().as_secs_f64();
                let r = y.ones_like();
                let _ = (y * r).sum().backward();
                if rep > 0 {
                    fwd.push(t1 * 1e3);
                    bwd.push((t.elapsed().as_secs_f64() - t1) * 1e3);
                }
            }
            (median(&mut fwd), median(&mut bwd))
        };
        let (uf, ub) = time(false);
        let (ff, fb) = time(true);
        rows.push(LayerTiming {
            layer: format!("{c_in}->{c} {h}x{w}"),
            unfused_forward_ms: uf,
            unfused_backward_ms: ub,
            fused_forward_ms: ff,
            fused_backward_ms: fb,
        });
        let k = super::models::pool_kernel([h, w]);
        h /= k[0];
        w /= k[1];
        c_in = c;
    }
    rows
}
