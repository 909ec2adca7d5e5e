//! CPU fast path for musicnn's mid-end on the reduced-precision path: three 1-D
//! convolutions over time (kernel 7, "same" padding) each followed by ReLU and batch norm,
//! the last two with a residual connection.
//!
//! Each convolution is seven GEMMs over shifted views of the time-padded input (one per
//! kernel tap, accumulating), so no im2col buffer is built; ReLU, batch norm and the
//! residual are one pass over the output. The fp32 precision keeps burn's convolutions
//! (bit-for-bit the reference port); this path changes only the summation order.

use rayon::prelude::*;

/// Kernel width of the mid-end convolutions.
const K: usize = 7;
/// Padding before (and after) in time.
const PAD: usize = 3;

/// One `conv1d(k = 7, same) -> ReLU -> batch norm (inference)` layer.
#[derive(Debug, Clone)]
pub struct Conv1dBn {
    cin: usize,
    cout: usize,
    /// `[tap][cout][cin]`, row-major.
    w: Vec<f32>,
    bias: Vec<f32>,
    /// Batch norm folded: `a * relu(conv) + c`.
    a: Vec<f32>,
    c: Vec<f32>,
}

impl Conv1dBn {
    /// From burn's weight `[cout, cin, 7]`, bias, and the batch norm's gamma, beta,
    /// running mean and variance, and epsilon.
    pub fn new(
        weight: &[f32],
        bias: Vec<f32>,
        [cout, cin]: [usize; 2],
        bn: [&[f32]; 4],
        epsilon: f64,
    ) -> Self {
        assert_eq!(weight.len(), cout * cin * K, "weight shape");
        let mut w = vec![0.0f32; K * cout * cin];
        for co in 0..cout {
            for ci in 0..cin {
                for k in 0..K {
                    w[(k * cout + co) * cin + ci] = weight[(co * cin + ci) * K + k];
                }
            }
        }
        let [gamma, beta, mean, var] = bn;
        let (mut a, mut c) = (Vec::new(), Vec::new());
        for i in 0..cout {
            let s = gamma[i] as f64 / (var[i] as f64 + epsilon).sqrt();
            a.push(s as f32);
            c.push((beta[i] as f64 - mean[i] as f64 * s) as f32);
        }
        Self {
            cin,
            cout,
            w,
            bias,
            a,
            c,
        }
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.cout
    }

    /// One patch: `x` is `[cin, t]`, returns `[cout, t]`, plus `residual` (same shape)
    /// when given.
    fn patch(&self, x: &[f32], t: usize, residual: Option<&[f32]>, out: &mut [f32]) {
        let tp = t + 2 * PAD;
        let mut xp = vec![0.0f32; self.cin * tp];
        for ci in 0..self.cin {
            xp[ci * tp + PAD..ci * tp + PAD + t].copy_from_slice(&x[ci * t..(ci + 1) * t]);
        }
        let mut y = vec![0.0f32; self.cout * t];
        for k in 0..K {
            let wk = &self.w[k * self.cout * self.cin..(k + 1) * self.cout * self.cin];
            // SAFETY: y is cout x t (row stride t); wk is cout x cin (row stride cin); the
            // rhs view starts at column k of xp (cin x tp, row stride tp) and reads
            // columns k..k + t <= tp: all inside their buffers.
            unsafe {
                gemm::gemm(
                    self.cout,
                    t,
                    self.cin,
                    y.as_mut_ptr(),
                    1,
                    t as isize,
                    k > 0,
                    wk.as_ptr(),
                    1,
                    self.cin as isize,
                    xp.as_ptr().add(k),
                    1,
                    tp as isize,
                    1.0,
                    1.0,
                    false,
                    false,
                    false,
                    gemm::Parallelism::None,
                );
            }
        }
        for co in 0..self.cout {
            let (a, c, b) = (self.a[co], self.c[co], self.bias[co]);
            let row = &y[co * t..(co + 1) * t];
            let dst = &mut out[co * t..(co + 1) * t];
            match residual {
                Some(r) => {
                    let r = &r[co * t..(co + 1) * t];
                    for ((d, &v), &rv) in dst.iter_mut().zip(row).zip(r) {
                        *d = a * (v + b).max(0.0) + c + rv;
                    }
                }
                None => {
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d = a * (v + b).max(0.0) + c;
                    }
                }
            }
        }
    }
}

/// The mid-end: `m1 = l1(f0)`, `m2 = l2(m1) + m1`, `m3 = l3(m2) + m2`.
#[derive(Debug, Clone)]
pub struct MidEnd {
    /// The three layers.
    pub layers: [Conv1dBn; 3],
}

impl MidEnd {
    /// `f0` is `[b, cin, t]`; returns `m1, m2, m3`, each `[b, 64, t]`.
    pub fn forward(&self, f0: &[f32], b: usize, t: usize) -> [Vec<f32>; 3] {
        let [l1, l2, l3] = &self.layers;
        let c = l1.channels();
        let mut outs = [
            vec![0.0f32; b * c * t],
            vec![0.0f32; b * c * t],
            vec![0.0f32; b * c * t],
        ];
        let [o1, o2, o3] = &mut outs;
        o1.par_chunks_mut(c * t)
            .zip(o2.par_chunks_mut(c * t))
            .zip(o3.par_chunks_mut(c * t))
            .enumerate()
            .for_each(|(p, ((m1, m2), m3))| {
                let x = &f0[p * l1.cin * t..(p + 1) * l1.cin * t];
                l1.patch(x, t, None, m1);
                l2.patch(m1, t, Some(m1), m2);
                l3.patch(m2, t, Some(m2), m3);
            });
        outs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_direct_convolution() {
        let (cin, cout, t) = (5, 4, 11);
        let x: Vec<f32> = (0..cin * t)
            .map(|i| ((i * 37) % 23) as f32 / 11.0 - 1.0)
            .collect();
        let w: Vec<f32> = (0..cout * cin * K)
            .map(|i| ((i * 13) % 17) as f32 / 8.0 - 1.0)
            .collect();
        let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1 - 0.2).collect();
        let ones = vec![1.0f32; cout];
        let zeros = vec![0.0f32; cout];
        let layer = Conv1dBn::new(
            &w,
            bias.clone(),
            [cout, cin],
            [&ones, &zeros, &zeros, &ones],
            0.0,
        );
        let mut out = vec![0.0f32; cout * t];
        layer.patch(&x, t, None, &mut out);
        for co in 0..cout {
            for ti in 0..t {
                let mut s = bias[co] as f64;
                for ci in 0..cin {
                    for k in 0..K {
                        let st = ti as isize + k as isize - PAD as isize;
                        if (0..t as isize).contains(&st) {
                            s += (w[(co * cin + ci) * K + k] * x[ci * t + st as usize]) as f64;
                        }
                    }
                }
                let want = (s as f32).max(0.0);
                assert!((out[co * t + ti] - want).abs() < 1e-4, "{co} {ti}");
            }
        }
    }
}
