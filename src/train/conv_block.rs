//! The fused training block as burn operations: 3x3 "same" convolution + batch norm +
//! ReLU + max-pool in one forward and one backward pass on the CPU backend.
//!
//! burn 0.22 admits custom operations through its backend-extension mechanism: a
//! backend trait ([`ConvBlockOps`]) implemented for the CPU backend (`Flex`: the
//! kernels of [`super::conv_kernels`]) and for its autodiff wrapper (`Autodiff<Flex>`:
//! the same forward kernels, registering a hand-written backward step). Gradient
//! bookkeeping then costs one graph node per block instead of a dozen (convolution,
//! bias, mean, variance, normalisation, affine, ReLU, pooling), and no intermediate map
//! but the convolution's output is stored.
//!
//! [`conv_block`] is what the models call: it takes the fused path where it applies
//! (CPU device, f32, 3x3 stride-1 "same" convolution, pooling windows of 1 or 2 with
//! the same stride) and burn's own operations otherwise ([`conv_block_reference`], also
//! the oracle of the tests), with the same results within float rounding and the same
//! running-statistics update as `burn::nn::BatchNorm`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{AutodiffBackend, Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2d;
use burn::nn::{BatchNorm, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::{DType, Device, Tensor, TensorData};

use super::conv_kernels::{
    Affine, BlockShape, BnState, Saved, SavedRef, affine_relu_pool, block_backward,
    conv_affine_relu_pool, conv_forward,
};

/// The fused block as backend operations (CPU backend and its autodiff wrapper).
#[backend_extension(Flex, Autodiff)]
pub trait ConvBlockOps: Backend {
    /// Training-mode block: `pool(relu(batch_norm(conv3x3(x) + bias)))` with the batch's
    /// own statistics. `x: [b, cin, h, w]`, `weight: [cout, cin, 3, 3]`, the others
    /// `[cout]`. Returns the pooled output `[b, cout, h / pool_h, w / pool_w]`, the batch
    /// mean and the biased batch variance (what the running statistics are fed with).
    fn conv_bn_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        pool: [usize; 2],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// `pool(relu(scale * (conv3x3(x) + bias) + shift))` with a fixed per-channel affine
    /// (batch norm with running statistics, or none: ones and zeros). Differentiable in
    /// `x`, `weight` and `bias` only: `scale` and `shift` must not require gradients.
    fn conv_affine_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        pool: [usize; 2],
    ) -> FloatTensor<Self>;
}

/// Values of a CPU tensor (copied only when it is not contiguous).
fn values(t: &FlexTensor) -> std::borrow::Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .map(<[f32]>::to_vec)
                // The fused path is only taken for f32 tensors (see `fusable`).
                .unwrap_or_else(|| panic!("fused block: expected an f32 tensor, got {t:?}")),
        ),
    }
}

fn flex(v: Vec<f32>, shape: &[usize]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(v, shape.to_vec()))
}

fn shape_of(x: &FlexTensor, weight: &FlexTensor, pool_h: usize, pool_w: usize) -> BlockShape {
    let [b, cin, h, w] = x.shape().dims();
    let [cout, wcin, kh, kw] = weight.shape().dims();
    assert!(
        wcin == cin && kh == 3 && kw == 3,
        "fused block: weight {:?} does not fit input {:?}",
        weight.shape(),
        x.shape()
    );
    BlockShape {
        b,
        cin,
        cout,
        h,
        w,
        ph: pool_h,
        pw: pool_w,
    }
}

/// Forward pass of the training block on CPU tensors; also what its backward pass needs.
struct BnForward {
    out: FlexTensor,
    mean: Vec<f32>,
    var: Vec<f32>,
    saved: Saved,
    bn: BnState,
    shape: BlockShape,
}

#[expect(
    clippy::too_many_arguments,
    reason = "mirrors ConvBlockOps::conv_bn_relu_pool"
)]
fn bn_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    gamma: &FlexTensor,
    beta: &FlexTensor,
    epsilon: f64,
    pool_h: usize,
    pool_w: usize,
) -> BnForward {
    let s = shape_of(x, weight, pool_h, pool_w);
    let (y, sum, sq) = conv_forward(&values(x), &values(weight), &values(bias), &s);
    let n = (s.b * s.plane()) as f64;
    let mean64: Vec<f64> = sum.iter().map(|v| v / n).collect();
    let var64: Vec<f64> = sq
        .iter()
        .zip(&mean64)
        .map(|(q, m)| (q / n - m * m).max(0.0))
        .collect();
    let mean: Vec<f32> = mean64.iter().map(|&v| v as f32).collect();
    let var: Vec<f32> = var64.iter().map(|&v| v as f32).collect();
    let (gamma, beta) = (values(gamma).into_owned(), values(beta));
    let affine = Affine::batch_norm(&gamma, &beta, &mean, &var, epsilon);
    let (out, arg) = affine_relu_pool(&y, &affine, &s);
    let inv_std = var64
        .iter()
        .map(|&v| (1.0 / (v + epsilon).sqrt()) as f32)
        .collect();
    BnForward {
        out: flex(out, &[s.b, s.cout, s.oh(), s.ow()]),
        mean,
        var,
        saved: Saved { conv: y, arg },
        bn: BnState {
            mean: mean64.iter().map(|&v| v as f32).collect(),
            inv_std,
            gamma,
        },
        shape: s,
    }
}
fn affine_forward(
    x: &FlexTensor,
    weight: &FlexTensor,
    bias: &FlexTensor,
    scale: &FlexTensor,
    shift: &FlexTensor,
    pool_h: usize,
    pool_w: usize,
) -> (FlexTensor, Vec<u8>, Vec<f32>, BlockShape) {
    let s = shape_of(x, weight, pool_h, pool_w);
    let affine = Affine {
        a: values(scale).into_owned(),
        c: values(shift).into_owned(),
    };
    let (out, arg) = conv_affine_relu_pool(&values(x), &values(weight), &values(bias), &affine, &s);
    (flex(out, &[s.b, s.cout, s.oh(), s.ow()]), arg, affine.a, s)
}

impl ConvBlockOps for Flex {
    fn conv_bn_relu_pool(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
        [pool_h, pool_w]: [usize; 2],
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let f = bn_forward(&x, &weight, &bias, &gamma, &beta, epsilon, pool_h, pool_w);
        let c = f.shape.cout;
        (f.out, flex(f.mean, &[c]), flex(f.var, &[c]))
    }

    fn conv_affine_relu_pool(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        scale: FlexTensor,
        shift: FlexTensor,
        [pool_h, pool_w]: [usize; 2],
    ) -> FlexTensor {
        affine_forward(&x, &weight, &bias, &scale, &shift, pool_h, pool_w).0
    }
}

/// What the training block's backward step keeps.
#[derive(Debug, Clone)]
struct BnBlockState {
    x: FlexTensor,
    weight: FlexTensor,
    saved: Arc<Saved>,
    bn: Arc<BnState>,
    shape: BlockShape,
}

#[derive(Debug)]
struct BnBlockBackward;

impl Backward<Flex, 5> for BnBlockBackward {
    type State = BnBlockState;

    fn backward(self, ops: Ops<Self::State, 5>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b, node_gamma, node_beta] = ops.parents;
        let dout = grads.consume::<Flex>(&ops.node);
        let st = ops.state;
        let s = st.shape;
        let g = block_backward(
            &values(&st.x),
            &values(&st.weight),
            &s,
            st.saved.borrowed(),
            Some(&st.bn),
            &[],
            &values(&dout),
            node_x.is_some(),
        );
        let c = s.cout;
        if let (Some(node), Some(dx)) = (node_x, g.x) {
            grads.register::<Flex>(node.id, flex(dx, &[s.b, s.cin, s.h, s.w]));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, flex(g.weight, &[c, s.cin, 3, 3]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex(g.bias, &[c]));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex(g.gamma, &[c]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex(g.beta, &[c]));
        }
    }
}

/// What the fixed-affine block's backward step keeps.
#[derive(Debug, Clone)]
struct AffineBlockState {
    x: FlexTensor,
    weight: FlexTensor,
    arg: Arc<Vec<u8>>,
    scale: Arc<Vec<f32>>,
    shape: BlockShape,
}

#[derive(Debug)]
struct AffineBlockBackward;

impl Backward<Flex, 3> for AffineBlockBackward {
    type State = AffineBlockState;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [node_x, node_w, node_b] = ops.parents;
        let dout = grads.consume::<Flex>(&ops.node);
        let st = ops.state;
        let s = st.shape;
        let saved = SavedRef {
            conv: &[],
            arg: &st.arg,
        };
        let g = block_backward(
            &values(&st.x),
            &values(&st.weight),
            &s,
            saved,
            None,
            &st.scale,
            &values(&dout),
            node_x.is_some(),
        );
        if let (Some(node), Some(dx)) = (node_x, g.x) {
            grads.register::<Flex>(node.id, flex(dx, &[s.b, s.cin, s.h, s.w]));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, flex(g.weight, &[s.cout, s.cin, 3, 3]));
        }
        if let Some(node) = node_b {
            grads.register::<Flex>(node.id, flex(g.bias, &[s.cout]));
        }
    }
}

impl<C: CheckpointStrategy> ConvBlockOps for Autodiff<Flex, C> {
    fn conv_bn_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
        [pool_h, pool_w]: [usize; 2],
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let prep = BnBlockBackward
            .prepare::<C>([
                x.node(),
                weight.node(),
                bias.node(),
                gamma.node(),
                beta.node(),
            ])
            .compute_bound()
            .stateful();
        let f = bn_forward(
            x.primitive(),
            weight.primitive(),
            bias.primitive(),
            gamma.primitive(),
            beta.primitive(),
            epsilon,
            pool_h,
            pool_w,
        );
        let c = f.shape.cout;
        let (mean, var) = (
            Self::from_inner(flex(f.mean, &[c])),
            Self::from_inner(flex(f.var, &[c])),
        );
        let out = match prep {
            OpsKind::Tracked(prep) => {
                let state = BnBlockState {
                    x: x.into_primitive(),
                    weight: weight.into_primitive(),
                    saved: Arc::new(f.saved),
                    bn: Arc::new(f.bn),
                    shape: f.shape,
                };
                prep.finish(state, f.out)
            }
            OpsKind::UnTracked(prep) => prep.finish(f.out),
        };
        (out, mean, var)
    }

    fn conv_affine_relu_pool(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
        [pool_h, pool_w]: [usize; 2],
    ) -> FloatTensor<Self> {
        let prep = AffineBlockBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful();
        let (out, arg, a, shape) = affine_forward(
            x.primitive(),
            weight.primitive(),
            bias.primitive(),
            scale.primitive(),
            shift.primitive(),
            pool_h,
            pool_w,
        );
        match prep {
            OpsKind::Tracked(prep) => {
                let state = AffineBlockState {
                    x: x.into_primitive(),
                    weight: weight.into_primitive(),
                    arg: Arc::new(arg),
                    scale: Arc::new(a),
                    shape,
                };
                prep.finish(state, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}

/// The pooling window of `pool` if the fused kernels can run it (kernel = stride of 1
/// or 2, no padding or dilation, floor mode); `[1, 1]` without pooling.
fn pool_window(pool: Option<&MaxPool2d>) -> Option<[usize; 2]> {
    let Some(p) = pool else {
        return Some([1, 1]);
    };
    let ok = p.kernel_size == p.stride
        && p.kernel_size.iter().all(|&k| k == 1 || k == 2)
        && p.dilation == [1, 1]
        && !p.ceil_mode
        && matches!(
            p.padding,
            PaddingConfig2d::Valid | PaddingConfig2d::Explicit(0, 0, 0, 0)
        );
    ok.then_some(p.kernel_size)
}

static DISABLED: AtomicBool = AtomicBool::new(false);

/// Turn the fused blocks off (or back on) for the whole process: every block then runs
/// burn's separate operations (`bench-train --unfused`, to measure what fusion buys).
pub fn set_fused_enabled(enabled: bool) {
    DISABLED.store(!enabled, Ordering::Relaxed);
}

/// Are the fused blocks on (the default)?
pub fn fused_enabled() -> bool {
    !DISABLED.load(Ordering::Relaxed)
}

/// Can the fused kernels run this block on this input?
fn fusable(x: &Tensor<4>, conv: &Conv2d, pool: Option<&MaxPool2d>) -> Option<[usize; 2]> {
    if !fused_enabled() {
        return None;
    }
    let same = matches!(
        conv.padding,
        PaddingConfig2d::Same | PaddingConfig2d::Explicit(1, 1, 1, 1)
    );
    let conv_ok = conv.kernel_size == [3, 3]
        && conv.stride == [1, 1]
        && conv.dilation == [1, 1]
        && conv.groups == 1
        && same;
    let [_, _, h, w] = x.dims();
    let on_cpu = x.device().inner() == Device::flex();
    (conv_ok && on_cpu && x.dtype() == DType::F32 && h > 0 && w > 0)
        .then(|| pool_window(pool))
        .flatten()
}

/// `pool(relu(bn(conv(x))))` through burn's own operations: the path for other devices
/// and shapes, and the tests' oracle.
pub fn conv_block_reference(
    x: Tensor<4>,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    pool: Option<&MaxPool2d>,
) -> Tensor<4> {
    let mut y = conv.forward(x);
    if let Some(bn) = bn {
        y = bn.forward(y);
    }
    let y = relu(y);
    match pool {
        Some(p) => p.forward(y),
        None => y,
    }
}

/// `pool(relu(bn(conv(x))))` for a block of [`super::models`]: fused on the CPU backend
/// where the shapes allow, burn's operations otherwise. Batch norm runs in training mode
/// exactly when `burn::nn::BatchNorm` would (an autodiff device and its training flag)
/// and then updates the running statistics as it does.
pub fn conv_block(
    x: Tensor<4>,
    conv: &Conv2d,
    bn: Option<&BatchNorm>,
    pool: Option<&MaxPool2d>,
) -> Tensor<4> {
    let Some([ph, pw]) = fusable(&x, conv, pool) else {
        return conv_block_reference(x, conv, bn, pool);
    };
    let device = x.device();
    let cout = conv.weight.dims()[0];
    let bias = match &conv.bias {
        Some(b) => b.val(),
        None => Tensor::zeros([cout], &device),
    };
    let training = device.is_autodiff();
    match bn {
        Some(bn) if training && bn.training.is_enabled() => {
            let (out, mean, var) = Dispatch::conv_bn_relu_pool(
                x.into_dispatch(),
                conv.weight.val().into_dispatch(),
                bias.into_dispatch(),
                bn.gamma.val().into_dispatch(),
                bn.beta.val().into_dispatch(),
                bn.epsilon,
                [ph, pw],
            );
            let (mean, var) = (
                Tensor::<1>::from_dispatch(mean),
                Tensor::<1>::from_dispatch(var),
            );
            // As burn::nn::BatchNorm::forward_train.
            let running_mean = bn.running_mean.value_sync().to_device(&device);
            let running_var = bn.running_var.value_sync().to_device(&device);
            bn.running_mean.update(
                running_mean
                    .mul_scalar(1.0 - bn.momentum)
                    .add(mean.detach().mul_scalar(bn.momentum))
                    .detach(),
            );
            bn.running_var.update(
                running_var
                    .mul_scalar(1.0 - bn.momentum)
                    .add(var.detach().mul_scalar(bn.momentum))
                    .detach(),
            );
            Tensor::from_dispatch(out)
        }
        // Inference-mode batch norm on an autodiff device would need gradients for gamma
        // and beta through the folded affine: leave that rare case to burn.
        Some(bn) if training => conv_block_reference(x, conv, Some(bn), pool),
        Some(bn) => {
            let var = bn.running_var.value().to_device(&device);
            let mean = bn.running_mean.value().to_device(&device);
            let scale = bn.gamma.val() / var.add_scalar(bn.epsilon).sqrt();
            let shift = bn.beta.val() - mean * scale.clone();
            affine_block(x, conv, bias, scale, shift, [ph, pw])
        }
        None => {
            let (scale, shift) = (
                Tensor::ones([cout], &device).detach(),
                Tensor::zeros([cout], &device).detach(),
            );
            affine_block(x, conv, bias, scale, shift, [ph, pw])
        }
    }
}

fn affine_block(
    x: Tensor<4>,
    conv: &Conv2d,
    bias: Tensor<1>,
    scale: Tensor<1>,
    shift: Tensor<1>,
    [ph, pw]: [usize; 2],
) -> Tensor<4> {
    Tensor::from_dispatch(Dispatch::conv_affine_relu_pool(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        bias.into_dispatch(),
        scale.into_dispatch(),
        shift.into_dispatch(),
        [ph, pw],
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;
    use burn::nn::BatchNormConfig;
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::Distribution;

    struct Case {
        batch: usize,
        cin: usize,
        cout: usize,
        hw: [usize; 2],
        bn: bool,
        pool: Option<[usize; 2]>,
    }

    fn layers(c: &Case, device: &Device) -> (Conv2d, Option<BatchNorm>, Option<MaxPool2d>) {
        let conv = Conv2dConfig::new([c.cin, c.cout], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(device);
        let bn = c.bn.then(|| {
            let b = BatchNormConfig::new(c.cout).init(device);
            // Non-trivial gamma and beta (one negative scale) so their gradients matter.
            let g: Vec<f32> = (0..c.cout).map(|i| 0.5 + 0.25 * i as f32).collect();
            let mut g = g;
            g[0] = -0.7;
            let beta: Vec<f32> = (0..c.cout).map(|i| 0.1 * i as f32 - 0.2).collect();
            BatchNorm {
                gamma: burn::module::Param::from_tensor(Tensor::from_data(
                    TensorData::new(g, [c.cout]),
                    device,
                )),
                beta: burn::module::Param::from_tensor(Tensor::from_data(
                    TensorData::new(beta, [c.cout]),
                    device,
                )),
                ..b
            }
        });
        let pool = c.pool.map(|k| MaxPool2dConfig::new(k).init());
        (conv, bn, pool)
    }

    fn max_rel_diff(a: Tensor<1>, b: Tensor<1>) -> f32 {
        let a = a.into_data().try_to_vec::<f32>().expect("f32");
        let b = b.into_data().try_to_vec::<f32>().expect("f32");
        assert_eq!(a.len(), b.len());
        let scale = b.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
        a.iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
            / scale
    }

    fn flat<const D: usize>(t: Tensor<D>) -> Tensor<1> {
        let n = t.shape().num_elements();
        t.reshape([n])
    }

    /// Forward output, every gradient and the running statistics of the fused block equal
    /// burn's separate operations on random inputs, for the block shapes the models use
    /// (with and without batch norm, 2x2, 2x1 and no pooling, odd sizes, one input
    /// channel), in training mode and in inference mode.
    #[test]
    fn fused_block_equals_burn_operations() {
        let cases = [
            Case {
                batch: 3,
                cin: 1,
                cout: 8,
                hw: [13, 10],
                bn: true,
                pool: Some([2, 2]),
            },
            Case {
                batch: 3,
                cin: 5,
                cout: 6,
                hw: [9, 7],
                bn: true,
                pool: Some([2, 1]),
            },
            Case {
                batch: 3,
                cin: 4,
                cout: 3,
                hw: [6, 5],
                bn: false,
                pool: Some([2, 2]),
            },
            Case {
                batch: 3,
                cin: 3,
                cout: 4,
                hw: [5, 6],
                bn: true,
                pool: None,
            },
            Case {
                batch: 3,
                cin: 2,
                cout: 5,
                hw: [1, 8],
                bn: true,
                pool: Some([1, 2]),
            },
            // Rows of 20 pooled windows: the 16-wide AVX-512 loops and their scalar tails.
            Case {
                batch: 2,
                cin: 2,
                cout: 3,
                hw: [6, 40],
                bn: true,
                pool: Some([2, 2]),
            },
            // Small planes, many images: several images per GEMM tile, a ragged last group.
            Case {
                batch: 11,
                cin: 3,
                cout: 4,
                hw: [4, 6],
                bn: true,
                pool: Some([2, 2]),
            },
            Case {
                batch: 11,
                cin: 3,
                cout: 4,
                hw: [4, 6],
                bn: false,
                pool: Some([2, 2]),
            },
        ];
        let device = Device::flex().autodiff();
        for (i, c) in cases.iter().enumerate() {
            let [h, w] = c.hw;
            device.seed(100 + i as u64);
            let x0: Tensor<4> = Tensor::random(
                [c.batch, c.cin, h, w],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            let (conv_a, bn_a, pool) = layers(c, &device);
            // The same parameters (gradients land in each pass's own Gradients), fresh
            // running statistics.
            let conv_b = conv_a.clone();
            let bn_b = bn_a.as_ref().map(|b| BatchNorm {
                running_mean: burn::module::RunningState::new(Tensor::zeros([c.cout], &device)),
                running_var: burn::module::RunningState::new(Tensor::ones([c.cout], &device)),
                ..b.clone()
            });
            assert!(
                fusable(&x0, &conv_a, pool.as_ref()).is_some(),
                "case {i} must take the fused path"
            );
            let xa = x0.clone().detach().require_grad();
            let xb = x0.clone().detach().require_grad();
            let ya = conv_block(xa.clone(), &conv_a, bn_a.as_ref(), pool.as_ref());
            let yb = conv_block_reference(xb.clone(), &conv_b, bn_b.as_ref(), pool.as_ref());
            assert_eq!(ya.dims(), yb.dims(), "case {i}: output shape");
            let d = max_rel_diff(flat(ya.clone()), flat(yb.clone()));
            assert!(d < 1e-5, "case {i}: forward differs by {d}");

            // A loss that weights every output differently.
            let r: Tensor<4> = Tensor::random(ya.dims(), Distribution::Normal(0.0, 1.0), &device);
            let ga = (ya * r.clone()).sum().backward();
            let gb = (yb * r).sum().backward();
            let grads = [
                ("x", xa.grad(&ga).map(flat), xb.grad(&gb).map(flat)),
                (
                    "weight",
                    conv_a.weight.val().grad(&ga).map(flat),
                    conv_b.weight.val().grad(&gb).map(flat),
                ),
                (
                    "bias",
                    conv_a.bias.as_ref().and_then(|b| b.val().grad(&ga)),
                    conv_b.bias.as_ref().and_then(|b| b.val().grad(&gb)),
                ),
            ];
            let wscale = grads[1]
                .2
                .clone()
                .map(|g| g.abs().max().into_scalar::<f32>())
                .unwrap_or(1.0);
            for (name, a, b) in grads {
                let (a, b) = (a.expect("fused grad"), b.expect("burn grad"));
                if name == "bias" && c.bn {
                    // Batch norm right after the convolution cancels its bias: both
                    // gradients are zero up to rounding.
                    for g in [a, b] {
                        let m = g.abs().max().into_scalar::<f32>();
                        assert!(m < 1e-4 * wscale, "case {i}: bias gradient {m} not ~0");
                    }
                    continue;
                }
                let d = max_rel_diff(a, b);
                assert!(d < 1e-4, "case {i}: {name} gradient differs by {d}");
            }
            if let (Some(ba), Some(bb)) = (&bn_a, &bn_b) {
                for (name, a, b) in [
                    ("gamma", ba.gamma.val().grad(&ga), bb.gamma.val().grad(&gb)),
                    ("beta", ba.beta.val().grad(&ga), bb.beta.val().grad(&gb)),
                ] {
                    let d = max_rel_diff(a.expect("fused"), b.expect("burn"));
                    assert!(d < 1e-4, "case {i}: {name} gradient differs by {d}");
                }
                for (name, a, b) in [
                    ("mean", ba.running_mean.value(), bb.running_mean.value()),
                    ("var", ba.running_var.value(), bb.running_var.value()),
                ] {
                    let d = max_rel_diff(a, b);
                    assert!(d < 1e-5, "case {i}: running {name} differs by {d}");
                }
            }

            // Inference mode (no autodiff): running statistics folded into an affine.
            let inner = Device::flex();
            let (conv_i, bn_i) = (conv_a.valid(), bn_a.map(|b| b.valid()));
            let xi = x0.clone().detach().to_device(&inner);
            let d = max_rel_diff(
                flat(conv_block(
                    xi.clone(),
                    &conv_i,
                    bn_i.as_ref(),
                    pool.as_ref(),
                )),
                flat(conv_block_reference(
                    xi,
                    &conv_i,
                    bn_i.as_ref(),
                    pool.as_ref(),
                )),
            );
            assert!(d < 1e-5, "case {i}: inference differs by {d}");
        }
    }
}
