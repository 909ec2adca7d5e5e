//! CPU fast path for musicnn's front end: convolution fused with the max over mel bins.
//!
//! The timbral and temporal branches are single-input-channel convolutions followed
//! by a max over the (valid) mel positions; the two timbral ones are 81% of the
//! network's multiply-adds. Done through burn's generic conv they materialise
//! `[B, 204, 187, 59]` activations and a large im2col buffer. Here each task takes a
//! tile of a few time steps of one patch, builds its im2col rows in L2-sized
//! scratch, multiplies with the `gemm` crate (AVX-512 or AVX2 chosen at run time)
//! and reduces over mel at once, so only `[B, C, T]` ever reaches memory.
//!
//! Reducing before ReLU and batch norm is exact: both are monotone per channel, so
//! the max of `bn(relu(y))` is `bn(relu(max y))` when the batch-norm scale is
//! non-negative and `bn(relu(min y))` when it is negative; we take the min for
//! those channels.

use rayon::prelude::*;

/// One front-end branch: a `kt x km` convolution over `[time, mel]` with time padding,
/// valid in mel, reduced over mel.
#[derive(Debug, Clone)]
pub struct ConvMax {
    kt: usize,
    km: usize,
    pad_before: usize,
    cout: usize,
    /// `[kt * km, cout]`, row-major; columns of channels that take the min are negated,
    /// so every channel takes a max and `sign` restores it.
    w: Vec<f32>,
    sign: Vec<f32>,
    bias: Vec<f32>,
}

/// Rows (time x mel positions) per GEMM tile: keeps im2col and output tiles in L2.
const TILE_ROWS: usize = 512;

/// Per-thread scratch: padded input window, im2col rows, GEMM output.
#[derive(Default)]
struct Scratch {
    win: Vec<f32>,
    a: Vec<f32>,
    c: Vec<f32>,
}

impl ConvMax {
    /// From burn's conv weight `[cout, 1, kt, km]`, its bias, the time padding before,
    /// and per channel whether its batch-norm scale is negative (take the min).
    pub fn new(
        weight: &[f32],
        bias: Vec<f32>,
        dims: [usize; 3],
        pad_before: usize,
        take_min: Vec<bool>,
    ) -> Self {
        let [cout, kt, km] = dims;
        let k = kt * km;
        assert_eq!(weight.len(), cout * k, "weight shape");
        let sign: Vec<f32> = (0..cout)
            .map(|c| {
                if take_min.get(c).copied().unwrap_or(false) {
                    -1.0
                } else {
                    1.0
                }
            })
            .collect();
        let mut w = vec![0.0; k * cout];
        for c in 0..cout {
            for i in 0..k {
                w[i * cout + c] = sign[c] * weight[c * k + i];
            }
        }
        Self {
            kt,
            km,
            pad_before,
            cout,
            w,
            sign,
            bias,
        }
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.cout
    }

    /// Apply to a batch: `x` is `[b, t, m]` (time-major patches); returns `[b, cout, t]`.
    pub fn forward(&self, x: &[f32], b: usize, t: usize, m: usize) -> Vec<f32> {
        assert_eq!(x.len(), b * t * m, "input shape");
        assert!(m >= self.km, "fewer mel bins than the kernel width");
        let pos = m - self.km + 1;
        let tile_t = (TILE_ROWS / pos).clamp(1, t.max(1));
        let tasks: Vec<(usize, usize)> = (0..b)
            .flat_map(|p| (0..t).step_by(tile_t).map(move |t0| (p, t0)))
            .collect();
        let tiles: Vec<(usize, usize, Vec<f32>)> = tasks
            .into_par_iter()
            .map_init(Scratch::default, |scratch, (p, t0)| {
                let tt = tile_t.min(t - t0);
                let patch = &x[p * t * m..(p + 1) * t * m];
                (p, t0, self.tile(patch, t, m, t0, tt, scratch))
            })
            .collect();
        scatter_tiles(tiles, b, self.cout, t)
    }

    /// One tile: time steps `t0..t0 + tt` of one patch -> `[tt, cout]`.
    fn tile(
        &self,
        patch: &[f32],
        t: usize,
        m: usize,
        t0: usize,
        tt: usize,
        s: &mut Scratch,
    ) -> Vec<f32> {
        let (kt, km, cout) = (self.kt, self.km, self.cout);
        let pos = m - km + 1;
        let k = kt * km;
        let rows = tt * pos;

        // The input rows this tile reads, zero where they fall in the time padding.
        let win_t = tt + kt - 1;
        s.win.clear();
        s.win.resize(win_t * m, 0.0);
        for w in 0..win_t {
            if let Some(src_t) = (t0 + w).checked_sub(self.pad_before).filter(|&st| st < t) {
                s.win[w * m..(w + 1) * m].copy_from_slice(&patch[src_t * m..(src_t + 1) * m]);
            }
        }

        // Row (ti, mi), column (dt, dm) of the conv as a matrix product reads
        // win[(ti + dt) * m + mi + dm].
        let (lhs, lhs_cs, lhs_rs) = if km == 1 {
            // Column dt is the window shifted by dt rows: a strided view, no copy.
            (s.win.as_ptr(), m as isize, 1isize)
        } else {
            s.a.resize(rows * k, 0.0);
            for ti in 0..tt {
                for mi in 0..pos {
                    let row = &mut s.a[(ti * pos + mi) * k..(ti * pos + mi + 1) * k];
                    for (dt, dst) in row.chunks_exact_mut(km).enumerate() {
                        let at = (ti + dt) * m + mi;
                        dst.copy_from_slice(&s.win[at..at + km]);
                    }
                }
            }
            (s.a.as_ptr(), 1isize, k as isize)
        };
        s.c.resize(rows * cout, 0.0);
        // SAFETY: the lhs view addresses (rows - 1) * rs + (k - 1) * cs < its buffer's
        // length (win: (tt + kt - 1) * m for km == 1, else a: rows * k); `self.w` is
        // k x cout and `c` rows x cout, row-major, sized above.
        unsafe {
            gemm::gemm(
                rows,
                cout,
                k,
                s.c.as_mut_ptr(),
                1,
                cout as isize,
                false,
                lhs,
                lhs_cs,
                lhs_rs,
                self.w.as_ptr(),
                1,
                cout as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            );
        }
        let mut out = vec![0.0f32; tt * cout];
        for ti in 0..tt {
            let block = &s.c[ti * pos * cout..(ti + 1) * pos * cout];
            let dst = &mut out[ti * cout..(ti + 1) * cout];
            dst.copy_from_slice(&block[..cout]);
            for row in block.chunks_exact(cout).skip(1) {
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = if v > *d { v } else { *d };
                }
            }
            for ((d, b), sg) in dst.iter_mut().zip(&self.bias).zip(&self.sign) {
                *d = *d * sg + b;
            }
        }
        out
    }
}

/// Tiles `(patch, t0, [tt, cout] values)` gathered into `[patches, cout, t]`.
pub(crate) fn scatter_tiles(
    tiles: Vec<(usize, usize, Vec<f32>)>,
    patches: usize,
    cout: usize,
    t: usize,
) -> Vec<f32> {
    let mut out = vec![0.0f32; patches * cout * t];
    for (p, t0, tile) in tiles {
        let tt = tile.len() / cout;
        for ti in 0..tt {
            for ch in 0..cout {
                out[(p * cout + ch) * t + t0 + ti] = tile[ti * cout + ch];
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Direct, obviously-correct reference.
    #[expect(
        clippy::too_many_arguments,
        reason = "a test oracle mirroring the kernel's inputs"
    )]
    fn naive(
        x: &[f32],
        t: usize,
        m: usize,
        w: &[f32],
        bias: &[f32],
        dims: [usize; 3],
        pad: usize,
        take_min: &[bool],
    ) -> Vec<f32> {
        let [cout, kt, km] = dims;
        let pos = m - km + 1;
        let mut out = vec![0.0; cout * t];
        for c in 0..cout {
            for ti in 0..t {
                let mut best = if take_min[c] {
                    f32::INFINITY
                } else {
                    f32::NEG_INFINITY
                };
                for mi in 0..pos {
                    let mut s = 0.0f64;
                    for dt in 0..kt {
                        let st = ti as isize + dt as isize - pad as isize;
                        if st < 0 || st >= t as isize {
                            continue;
                        }
                        for dm in 0..km {
                            s += (x[st as usize * m + mi + dm] * w[(c * kt + dt) * km + dm]) as f64;
                        }
                    }
                    let s = s as f32;
                    best = if take_min[c] {
                        best.min(s)
                    } else {
                        best.max(s)
                    };
                }
                out[c * t + ti] = best + bias[c];
            }
        }
        out
    }

    #[test]
    fn matches_naive_convolution() {
        let (t, m) = (23, 17);
        let x: Vec<f32> = (0..2 * t * m)
            .map(|i| ((i * 7919) % 113) as f32 / 56.0 - 1.0)
            .collect();
        for (dims, pad) in [([5, 3, 4], 1), ([3, 8, 1], 3), ([4, 1, 17], 0)] {
            let [cout, kt, km] = dims;
            let w: Vec<f32> = (0..cout * kt * km)
                .map(|i| ((i * 31) % 17) as f32 / 8.0 - 1.0)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|c| c as f32 * 0.1).collect();
            let take_min: Vec<bool> = (0..cout).map(|c| c % 2 == 1).collect();
            let k = ConvMax::new(&w, bias.clone(), dims, pad, take_min.clone());
            let fast = k.forward(&x, 2, t, m);
            for p in 0..2 {
                let slow = naive(
                    &x[p * t * m..(p + 1) * t * m],
                    t,
                    m,
                    &w,
                    &bias,
                    dims,
                    pad,
                    &take_min,
                );
                let got = &fast[p * cout * t..(p + 1) * cout * t];
                for (a, b) in got.iter().zip(&slow) {
                    assert!((a - b).abs() < 1e-4, "{dims:?}: {a} vs {b}");
                }
            }
        }
    }
}
