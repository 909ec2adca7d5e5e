//! A 3x3 "same" convolution written as shifted copies + one matrix product, so that
//! training runs on the CPU backend's GEMM in both directions.
//!
//! burn's generic convolution backward computes the weight gradient as a convolution
//! whose kernel is the whole output map, and the input gradient as a transposed
//! convolution; on the CPU both are far slower than the forward pass. Here the
//! forward pass builds the im2col matrix from nine shifted slices of the padded input
//! (`[9C, N*H*W]`) and multiplies it by the weights (`[Co, 9C]`). Autodiff then only
//! sees slice, concatenation and matmul, whose backward passes are a pad/copy and two
//! more GEMMs (`dW = dY colsᵀ`, `dcols = Wᵀ dY`).

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::ops::PadMode;
use burn::tensor::{Device, Tensor};

/// 3x3 convolution, stride 1, zero "same" padding, with bias.
#[derive(Module, Debug)]
pub struct Conv3x3 {
    /// `[c_out, 9 * c_in]`, column index `(dy * 3 + dx) * c_in + ci`.
    pub weight: Param<Tensor<2>>,
    /// `[c_out]`.
    pub bias: Param<Tensor<1>>,
}

impl Conv3x3 {
    /// Kaiming-uniform weights (burn's default for its convolutions), zero bias.
    pub fn new(c_in: usize, c_out: usize, device: &Device) -> Self {
        let fan_in = 9 * c_in;
        let init = Initializer::KaimingUniform {
            gain: 1.0 / 3f64.sqrt(),
            fan_out_only: false,
        };
        Self {
            weight: init.init_with([c_out, fan_in], Some(fan_in), Some(9 * c_out), device),
            bias: Initializer::Zeros.init([c_out], device),
        }
    }

    /// `[N, C, H, W]` -> `[N, Co, H, W]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let [co, _] = self.weight.dims();
        // Channels first so the nine shifted maps stack into rows of the im2col matrix.
        let xp = x
            .swap_dims(0, 1)
            .pad([(1, 1), (1, 1)], PadMode::Constant(0.0));
        let mut parts = Vec::with_capacity(9);
        for dy in 0..3 {
            for dx in 0..3 {
                parts.push(xp.clone().slice([0..c, 0..n, dy..dy + h, dx..dx + w]));
            }
        }
        let cols = Tensor::cat(parts, 0).reshape([9 * c, n * h * w]);
        let y = self.weight.val().matmul(cols) + self.bias.val().reshape([co, 1]);
        y.reshape([co, n, h, w]).swap_dims(0, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::PaddingConfig2d;
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Distribution, TensorData};

    /// Same numbers as burn's own Conv2d with the weights laid out accordingly,
    /// forward and both gradients.
    #[test]
    fn matches_burn_conv2d_forward_and_backward() {
        let device = Device::flex().autodiff();
        device.seed(7);
        let (n, c, co, h, w) = (2, 3, 4, 5, 6);
        let ours = Conv3x3::new(c, co, &device);
        let wv = ours
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        // burn's layout: [co, c, 3, 3].
        let mut theirs_w = vec![0.0f32; co * c * 9];
        for o in 0..co {
            for ci in 0..c {
                for k in 0..9 {
                    theirs_w[((o * c + ci) * 9) + k] = wv[o * 9 * c + k * c + ci];
                }
            }
        }
        let mut conv = Conv2dConfig::new([c, co], [3, 3])
            .with_padding(PaddingConfig2d::Same)
            .init(&device);
        conv.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(theirs_w, [co, c, 3, 3]),
            &device,
        ));
        if let Some(b) = &mut conv.bias {
            *b = Param::from_tensor(Tensor::zeros([co], &device));
        }
        let x: Tensor<4> =
            Tensor::random([n, c, h, w], Distribution::Normal(0.0, 1.0), &device).require_grad();
        let a = ours.forward(x.clone());
        let b = conv.forward(x.clone());
        let av = a.clone().into_data().try_to_vec::<f32>().expect("f32");
        let bv = b.clone().into_data().try_to_vec::<f32>().expect("f32");
        for (p, q) in av.iter().zip(&bv) {
            assert!((p - q).abs() < 1e-4, "{p} vs {q}");
        }
        // Input gradients of sum(y^2).
        let ga = a.clone().mul(a).sum().backward();
        let gb = b.clone().mul(b).sum().backward();
        let dxa = x
            .grad(&ga)
            .expect("grad")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let dxb = x
            .grad(&gb)
            .expect("grad")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        for (p, q) in dxa.iter().zip(&dxb) {
            assert!((p - q).abs() < 1e-3, "{p} vs {q}");
        }
        let dwa = ours
            .weight
            .grad(&ga)
            .expect("grad")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        let dwb = conv
            .weight
            .grad(&gb)
            .expect("grad")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32");
        for o in 0..co {
            for ci in 0..c {
                for k in 0..9 {
                    let p = dwa[o * 9 * c + k * c + ci];
                    let q = dwb[(o * c + ci) * 9 + k];
                    assert!((p - q).abs() < 1e-3 * (1.0 + q.abs()), "{p} vs {q}");
                }
            }
        }
    }
}
