//! CPU kernels of the fused training block: 3x3 "same" convolution + batch norm + ReLU +
//! max-pool, forward and backward, on plain NCHW `f32` slices.
//!
//! Every convolution is an im2col tile kept in L2 times the `gemm` crate's AVX-512 (or
//! AVX2) kernels, as in the inference front end ([`crate::ml::frontend`]): per image, a
//! few rows of output at a time, so neither the im2col matrix nor the output gradient
//! ever exists whole. The forward pass stores the convolution output (batch norm needs
//! it to differentiate), the pooled output and, per pooled value, which element of its
//! window won (one byte); the backward pass rebuilds each tile's output gradient from
//! those, multiplies it twice (weight gradient, input gradient) and scatters the input
//! gradient back (col2im). Batch statistics are summed in f64.
//!
//! [`super::conv_block`] wraps these as burn operations with their own backward pass.

use rayon::prelude::*;

use super::simd;

/// Floats of im2col tile per GEMM (512 KiB: with the output tile, inside L2).
const TILE_FLOATS: usize = 128 * 1024;
/// Fewest positions (GEMM columns) per tile: below this the GEMM's packing of the weights
/// dominates (small late-layer images are grouped instead).
const MIN_TILE_COLS: usize = 512;

/// How a block's work is cut into GEMM tiles: groups of whole images (small planes), or
/// tiles of `rows` rows of one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Plan {
    /// Images per tile (1 for row tiles).
    group: usize,
    /// Rows per tile (`h` for image groups); a multiple of the pooling height.
    rows: usize,
}

/// Geometry of one block: input `[b, cin, h, w]`, 3x3 kernel, stride 1, zero padding 1,
/// output `[b, cout, h, w]` before pooling and `[b, cout, h / ph, w / pw]` after a
/// `ph x pw` max-pool of the same stride (floor; `1 x 1` = no pooling).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockShape {
    /// Batch.
    pub b: usize,
    /// Input channels.
    pub cin: usize,
    /// Output channels.
    pub cout: usize,
    /// Height (frames or rows).
    pub h: usize,
    /// Width.
    pub w: usize,
    /// Pooling window height (1 or 2).
    pub ph: usize,
    /// Pooling window width (1 or 2).
    pub pw: usize,
}

impl BlockShape {
    /// Positions per image.
    pub fn plane(&self) -> usize {
        self.h * self.w
    }

    /// im2col rows: `cin * 9`.
    pub fn k(&self) -> usize {
        self.cin * 9
    }

    /// Pooled height.
    pub fn oh(&self) -> usize {
        self.h / self.ph
    }

    /// Pooled width.
    pub fn ow(&self) -> usize {
        self.w / self.pw
    }

    /// Values of the pooled output.
    pub fn out_len(&self) -> usize {
        self.b * self.cout * self.oh() * self.ow()
    }

    /// The tiling: about [`TILE_FLOATS`] of im2col per tile but at least
    /// [`MIN_TILE_COLS`] positions; whole images are grouped when several fit, keeping at
    /// least two groups per thread; otherwise row tiles whose height is a multiple of the
    /// pooling height (no window straddles two tiles).
    fn plan(&self) -> Plan {
        let target = (TILE_FLOATS / self.k().max(1)).max(MIN_TILE_COLS);
        let p = self.plane().max(1);
        if target >= 2 * p && self.b > 1 {
            let threads = rayon::current_num_threads().max(1);
            let most = (self.b / (2 * threads)).max(1);
            return Plan {
                group: (target / p).min(most).max(1),
                rows: self.h,
            };
        }
        let rows = (target / self.w.max(1)).max(1);
        Plan {
            group: 1,
            rows: (rows / self.ph * self.ph).max(self.ph).min(self.h.max(1)),
        }
    }
}

/// Per-channel affine applied before ReLU: `a * conv + c` (batch norm folded, or `1, 0`).
#[derive(Debug, Clone)]
pub struct Affine {
    /// Scale per channel.
    pub a: Vec<f32>,
    /// Shift per channel.
    pub c: Vec<f32>,
}

impl Affine {
    /// No batch norm.
    pub fn identity(channels: usize) -> Self {
        Self {
            a: vec![1.0; channels],
            c: vec![0.0; channels],
        }
    }

    /// Batch norm with the given statistics: `gamma * (x - mean) / sqrt(var + eps) + beta`.
    pub fn batch_norm(gamma: &[f32], beta: &[f32], mean: &[f32], var: &[f32], eps: f64) -> Self {
        let (mut a, mut c) = (Vec::new(), Vec::new());
        for i in 0..gamma.len() {
            let inv = 1.0 / (var[i] as f64 + eps).sqrt();
            let ai = gamma[i] as f64 * inv;
            a.push(ai as f32);
            c.push((beta[i] as f64 - mean[i] as f64 * ai) as f32);
        }
        Self { a, c }
    }
}

/// `col[(ci, kh, kw)][off + (r, x)] = input[ci][h0 + r + kh - 1][x + kw - 1]` (zero
/// outside) for `rows` output rows starting at `h0`; `col` has `cin * 9` rows of `ld`
/// values, this image's columns starting at `off`.
fn im2col(
    img: &[f32],
    s: &BlockShape,
    (h0, rows): (usize, usize),
    col: &mut [f32],
    (ld, off): (usize, usize),
) {
    let (h, w) = (s.h, s.w);
    let n = rows * w;
    for ci in 0..s.cin {
        let plane = &img[ci * h * w..(ci + 1) * h * w];
        for kh in 0..3 {
            for kw in 0..3 {
                let dst = &mut col[((ci * 3 + kh) * 3 + kw) * ld + off..][..n];
                for r in 0..rows {
                    let d = &mut dst[r * w..(r + 1) * w];
                    let src_row = (h0 + r + kh).checked_sub(1).filter(|&y| y < h);
                    let Some(y) = src_row else {
                        d.fill(0.0);
                        continue;
                    };
                    let src = &plane[y * w..(y + 1) * w];
                    match kw {
                        0 => {
                            d[0] = 0.0;
                            d[1..].copy_from_slice(&src[..w - 1]);
                        }
                        1 => d.copy_from_slice(src),
                        _ => {
                            d[..w - 1].copy_from_slice(&src[1..]);
                            d[w - 1] = 0.0;
                        }
                    }
                }
            }
        }
    }
}

/// The adjoint of [`im2col`]: add `col` back into the input-shaped `img`.
fn col2im_add(
    col: &[f32],
    s: &BlockShape,
    (h0, rows): (usize, usize),
    img: &mut [f32],
    (ld, off): (usize, usize),
) {
    let (h, w) = (s.h, s.w);
    let n = rows * w;
    for ci in 0..s.cin {
        let plane = &mut img[ci * h * w..(ci + 1) * h * w];
        for kh in 0..3 {
            for kw in 0..3 {
                let src = &col[((ci * 3 + kh) * 3 + kw) * ld + off..][..n];
                for r in 0..rows {
                    let Some(y) = (h0 + r + kh).checked_sub(1).filter(|&y| y < h) else {
                        continue;
                    };
                    let d = &mut plane[y * w..(y + 1) * w];
                    let c = &src[r * w..(r + 1) * w];
                    match kw {
                        0 => d[..w - 1]
                            .iter_mut()
                            .zip(&c[1..])
                            .for_each(|(a, b)| *a += b),
                        1 => d.iter_mut().zip(c).for_each(|(a, b)| *a += b),
                        _ => d[1..]
                            .iter_mut()
                            .zip(&c[..w - 1])
                            .for_each(|(a, b)| *a += b),
                    }
                }
            }
        }
    }
}

/// `dst[m, n] (+)= lhs[m, k] * rhs[k, n]`, all row-major with the given row strides
/// (`transpose_*` reads the stored matrix transposed).
#[expect(
    clippy::too_many_arguments,
    reason = "a thin, checked wrapper over gemm's raw-pointer interface"
)]
fn matmul(
    (m, n, k): (usize, usize, usize),
    dst: &mut [f32],
    dst_rs: usize,
    accumulate: bool,
    lhs: &[f32],
    lhs_rs: usize,
    transpose_lhs: bool,
    rhs: &[f32],
    rhs_rs: usize,
    transpose_rhs: bool,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    // The stored extents each operand must cover (asserted so the raw calls stay in bounds).
    let need = |rows: usize, cols: usize, rs: usize| (rows - 1) * rs + cols;
    assert!(dst.len() >= need(m, n, dst_rs), "dst too small");
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * dst_rs..r * dst_rs + n].fill(0.0);
            }
        }
        return;
    }
    let (lr, lc) = if transpose_lhs { (k, m) } else { (m, k) };
    let (rr, rc) = if transpose_rhs { (n, k) } else { (k, n) };
    assert!(lhs.len() >= need(lr, lc, lhs_rs), "lhs too small");
    assert!(rhs.len() >= need(rr, rc, rhs_rs), "rhs too small");
    let (lhs_rs_, lhs_cs_) = if transpose_lhs {
        (1, lhs_rs as isize)
    } else {
        (lhs_rs as isize, 1)
    };
    let (rhs_rs_, rhs_cs_) = if transpose_rhs {
        (1, rhs_rs as isize)
    } else {
        (rhs_rs as isize, 1)
    };
    let par = if parallel {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: each operand's extent under its strides was asserted against its slice.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            dst_rs as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_cs_,
            lhs_rs_,
            rhs.as_ptr(),
            rhs_cs_,
            rhs_rs_,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}

/// Convolution outputs kept for the backward pass are the only buffers here above glibc's
/// largest mmap threshold (32 MiB: the first block's output is 34-68 MiB): allocated
/// fresh each step, each would be a new mapping whose pages fault in one by one. Freed
/// ones wait here for the next step instead (a couple at most).
static CONV_POOL: std::sync::Mutex<Vec<Vec<f32>>> = std::sync::Mutex::new(Vec::new());
/// Buffers the pool keeps.
const POOL_KEEP: usize = 4;

/// A buffer of `len` floats whose contents are unspecified (every value is written
/// before it is read): a pooled one when one is large enough.
fn conv_buffer(len: usize) -> Vec<f32> {
    let pooled = CONV_POOL.lock().ok().and_then(|mut pool| {
        let best = pool
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= len)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i)?;
        Some(pool.swap_remove(best))
    });
    match pooled {
        Some(mut v) => {
            v.resize(len, 0.0);
            v.truncate(len);
            v
        }
        None => vec![0.0; len],
    }
}

/// What the forward pass keeps for the backward pass.
#[derive(Debug, Clone, Default)]
pub struct Saved {
    /// Convolution output `[b, cout, h, w]` (only when batch norm uses batch statistics).
    pub conv: Vec<f32>,
    /// Per pooled value: index of the winning element in its window (row-major), with
    /// bit 7 set when the value is positive (the ReLU let the gradient through).
    pub arg: Vec<u8>,
}

/// Borrowed [`Saved`].
#[derive(Debug, Clone, Copy)]
pub struct SavedRef<'a> {
    /// See [`Saved::conv`].
    pub conv: &'a [f32],
    /// See [`Saved::arg`].
    pub arg: &'a [u8],
}

impl Drop for Saved {
    fn drop(&mut self) {
        if self.conv.capacity() >= (1 << 20)
            && let Ok(mut pool) = CONV_POOL.lock()
            && pool.len() < POOL_KEEP
        {
            pool.push(std::mem::take(&mut self.conv));
        }
    }
}

impl Saved {
    /// Borrow it.
    pub fn borrowed(&self) -> SavedRef<'_> {
        SavedRef {
            conv: &self.conv,
            arg: &self.arg,
        }
    }
}

/// Convolution output for every image: `y = conv(x) + bias`, `[b, cout, h, w]`, and
/// per channel the f64 sum and sum of squares over batch and positions.
pub fn conv_forward(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    s: &BlockShape,
) -> (Vec<f32>, Vec<f64>, Vec<f64>) {
    let (p, k, co) = (s.plane(), s.k(), s.cout);
    let plan = s.plan();
    let mut y = conv_buffer(s.b * co * p);
    let parallel_gemm = s.b.div_ceil(plan.group) < rayon::current_num_threads();
    let stats = y
        .par_chunks_mut(plan.group * co * p)
        .enumerate()
        .map_init(
            || (Vec::new(), Vec::new()),
            |(col, tile), (ci, ys)| {
                let (b0, gi) = (ci * plan.group, ys.len() / (co * p));
                let (mut sum, mut sq) = (vec![0.0f64; co], vec![0.0f64; co]);
                let mut h0 = 0;
                while h0 < s.h {
                    let rows = plan.rows.min(s.h - h0);
                    let n1 = rows * s.w;
                    let n = gi * n1;
                    col.resize(k * n, 0.0);
                    for g in 0..gi {
                        let img = &x[(b0 + g) * s.cin * p..(b0 + g + 1) * s.cin * p];
                        im2col(img, s, (h0, rows), col, (n, g * n1));
                    }
                    if gi == 1 {
                        // Straight into the output's rows.
                        let dst = &mut ys[h0 * s.w..];
                        let shape = (co, n, k);
                        matmul(
                            shape,
                            dst,
                            p,
                            false,
                            weight,
                            k,
                            false,
                            col,
                            n,
                            false,
                            parallel_gemm,
                        );
                    } else {
                        tile.resize(co * n, 0.0);
                        let shape = (co, n, k);
                        matmul(
                            shape,
                            tile,
                            n,
                            false,
                            weight,
                            k,
                            false,
                            col,
                            n,
                            false,
                            parallel_gemm,
                        );
                        for g in 0..gi {
                            for c in 0..co {
                                ys[(g * co + c) * p..(g * co + c + 1) * p]
                                    .copy_from_slice(&tile[c * n + g * n1..c * n + (g + 1) * n1]);
                            }
                        }
                    }
                    for g in 0..gi {
                        for c in 0..co {
                            let at = (g * co + c) * p + h0 * s.w;
                            let (s1, s2) = {
                                let v = &mut ys[at..at + n1];
                                simd::add(v, bias[c]);
                                simd::sums(v)
                            };
                            sum[c] += s1;
                            sq[c] += s2;
                        }
                    }
                    h0 += rows;
                }
                (sum, sq)
            },
        )
        .reduce(
            || (vec![0.0f64; co], vec![0.0f64; co]),
            |(mut a, mut b), (c, d)| {
                a.iter_mut().zip(&c).for_each(|(x, y)| *x += y);
                b.iter_mut().zip(&d).for_each(|(x, y)| *x += y);
                (a, b)
            },
        );
    (y, stats.0, stats.1)
}

/// `out = pool(relu(a * y + c))` over `[b, cout, h, w]` planes, with the winners' codes
/// (see [`Saved::arg`]). Returns `(out, arg)`.
pub fn affine_relu_pool(y: &[f32], affine: &Affine, s: &BlockShape) -> (Vec<f32>, Vec<u8>) {
    let (p, op) = (s.plane(), s.oh() * s.ow());
    let mut out = vec![0.0f32; s.out_len()];
    let mut arg = vec![0u8; s.out_len()];
    out.par_chunks_mut(op)
        .zip(arg.par_chunks_mut(op))
        .enumerate()
        .for_each(|(plane, (o, g))| {
            let c = plane % s.cout;
            pool_plane(
                &y[plane * p..(plane + 1) * p],
                affine.a[c],
                affine.c[c],
                s,
                o,
                g,
            );
        });
    (out, arg)
}

/// One plane of [`affine_relu_pool`]. `a * v + c` is monotone in `v`, so each window's
/// winner is its largest raw value (smallest where `a < 0`), transformed once.
fn pool_plane(y: &[f32], a: f32, c: f32, s: &BlockShape, out: &mut [f32], arg: &mut [u8]) {
    let (w, ow) = (s.w, s.ow());
    let sgn = if a >= 0.0 { 1.0f32 } else { -1.0 };
    if s.ph == 2 && s.pw == 2 {
        for oy in 0..s.oh() {
            simd::pool2x2_row(
                (
                    &y[2 * oy * w..(2 * oy + 1) * w],
                    &y[(2 * oy + 1) * w..(2 * oy + 2) * w],
                ),
                (a, c, sgn),
                &mut out[oy * ow..(oy + 1) * ow],
                &mut arg[oy * ow..(oy + 1) * ow],
            );
        }
        return;
    }
    for oy in 0..s.oh() {
        for ox in 0..ow {
            let mut best = f32::NEG_INFINITY;
            let mut at = 0u8;
            for dy in 0..s.ph {
                for dx in 0..s.pw {
                    let v = sgn * y[(oy * s.ph + dy) * w + ox * s.pw + dx];
                    // Ties go to the first element in window order, as a max-pool's argmax.
                    if v > best {
                        best = v;
                        at = (dy * s.pw + dx) as u8;
                    }
                }
            }
            let z = a * (sgn * best) + c;
            let pos = z > 0.0;
            let o = oy * ow + ox;
            out[o] = if pos { z } else { 0.0 };
            arg[o] = at | ((pos as u8) << 7);
        }
    }
}

/// Convolution with a fixed per-channel affine, ReLU and pooling in one pass per tile
/// (inference, or training without batch norm): `(out, arg)`.
pub fn conv_affine_relu_pool(
    x: &[f32],
    weight: &[f32],
    bias: &[f32],
    affine: &Affine,
    s: &BlockShape,
) -> (Vec<f32>, Vec<u8>) {
    let (p, k, co) = (s.plane(), s.k(), s.cout);
    let (oh, ow) = (s.oh(), s.ow());
    let per_out = co * oh * ow;
    let plan = s.plan();
    let mut out = vec![0.0f32; s.out_len()];
    let mut arg = vec![0u8; s.out_len()];
    let parallel_gemm = s.b.div_ceil(plan.group) < rayon::current_num_threads();
    let chunk = (plan.group * per_out).max(1);
    out.par_chunks_mut(chunk)
        .zip(arg.par_chunks_mut(chunk))
        .enumerate()
        .for_each_init(
            || (Vec::new(), Vec::new()),
            |(col, tile), (ci, (os, gs))| {
                let b0 = ci * plan.group;
                let gi = plan.group.min(s.b - b0);
                let mut h0 = 0;
                while h0 < s.h {
                    let rows = plan.rows.min(s.h - h0);
                    let n1 = rows * s.w;
                    let n = gi * n1;
                    col.resize(k * n, 0.0);
                    tile.resize(co * n, 0.0);
                    for g in 0..gi {
                        let img = &x[(b0 + g) * s.cin * p..(b0 + g + 1) * s.cin * p];
                        im2col(img, s, (h0, rows), col, (n, g * n1));
                    }
                    let shape = (co, n, k);
                    matmul(
                        shape,
                        tile,
                        n,
                        false,
                        weight,
                        k,
                        false,
                        col,
                        n,
                        false,
                        parallel_gemm,
                    );
                    let sub = BlockShape { h: rows, ..*s };
                    let (r0, rn) = (h0 / s.ph, rows / s.ph);
                    for g in 0..gi {
                        for c in 0..co {
                            let t = &mut tile[c * n + g * n1..c * n + (g + 1) * n1];
                            simd::add(t, bias[c]);
                            let at = g * per_out + c * oh * ow + r0 * ow;
                            let (o, a) = (&mut os[at..at + rn * ow], &mut gs[at..at + rn * ow]);
                            pool_plane(t, affine.a[c], affine.c[c], &sub, o, a);
                        }
                    }
                    h0 += rows;
                }
            },
        );
    (out, arg)
}

/// Gradients of a block.
#[derive(Debug, Clone, Default)]
pub struct BlockGrads {
    /// `[b, cin, h, w]`, when asked for.
    pub x: Option<Vec<f32>>,
    /// `[cout, cin, 3, 3]`.
    pub weight: Vec<f32>,
    /// `[cout]`.
    pub bias: Vec<f32>,
    /// `[cout]`, with batch norm.
    pub gamma: Vec<f32>,
    /// `[cout]`, with batch norm.
    pub beta: Vec<f32>,
}

/// Batch-norm statistics of the forward pass, for the backward pass.
#[derive(Debug, Clone)]
pub struct BnState {
    /// Batch mean per channel.
    pub mean: Vec<f32>,
    /// `1 / sqrt(var + eps)` per channel.
    pub inv_std: Vec<f32>,
    /// `gamma` per channel.
    pub gamma: Vec<f32>,
}

/// Backward pass of a block given the pooled output's gradient `dout`.
///
/// With `bn` (batch statistics), `saved.conv` must hold the convolution output; the
/// gradient reaching the convolution is then batch norm's
/// `gamma * inv_std * (g - mean(g) - xhat * mean(g * xhat))`, where `g` (the gradient
/// at batch norm's output) is nonzero only at the pooling winners that ReLU passed.
/// Without `bn`, that gradient is `a * g` for the fixed affine's scale `a` (1 without
/// batch norm).
#[expect(
    clippy::too_many_arguments,
    reason = "the block's tensors and what its forward pass saved"
)]
pub fn block_backward(
    x: &[f32],
    weight: &[f32],
    s: &BlockShape,
    saved: SavedRef<'_>,
    bn: Option<&BnState>,
    fixed_scale: &[f32],
    dout: &[f32],
    want_x: bool,
) -> BlockGrads {
    let (p, k, co) = (s.plane(), s.k(), s.cout);
    let (oh, ow) = (s.oh(), s.ow());
    let per_out = co * oh * ow;
    let count = (s.b * p) as f64;

    // Batch norm: sums over the winners of g and g * xhat, per channel.
    let (mean_g, mean_gx, gamma_grad, beta_grad) = match bn {
        Some(st) => {
            let (sg, sgx) = (0..s.b)
                .into_par_iter()
                .map(|bi| {
                    let (mut sg, mut sgx) = (vec![0.0f64; co], vec![0.0f64; co]);
                    for c in 0..co {
                        let plane = &saved.conv[(bi * co + c) * p..(bi * co + c + 1) * p];
                        let o0 = bi * per_out + c * oh * ow;
                        let (a, b) = winner_sums(
                            plane,
                            &saved.arg[o0..o0 + oh * ow],
                            &dout[o0..o0 + oh * ow],
                            s,
                            st.mean[c],
                            st.inv_std[c],
                        );
                        sg[c] += a;
                        sgx[c] += b;
                    }
                    (sg, sgx)
                })
                .reduce(
                    || (vec![0.0f64; co], vec![0.0f64; co]),
                    |(mut a, mut b), (c, d)| {
                        a.iter_mut().zip(&c).for_each(|(x, y)| *x += y);
                        b.iter_mut().zip(&d).for_each(|(x, y)| *x += y);
                        (a, b)
                    },
                );
            let mg: Vec<f32> = sg.iter().map(|v| (v / count) as f32).collect();
            let mgx: Vec<f32> = sgx.iter().map(|v| (v / count) as f32).collect();
            (
                mg,
                mgx,
                sgx.iter().map(|&v| v as f32).collect(),
                sg.iter().map(|&v| v as f32).collect(),
            )
        }
        None => (Vec::new(), Vec::new(), Vec::new(), Vec::new()),
    };

    let mut dx = if want_x {
        vec![0.0f32; s.b * s.cin * p]
    } else {
        Vec::new()
    };
    let plan = s.plan();
    let parallel_gemm = s.b.div_ceil(plan.group) < rayon::current_num_threads();
    let chunks: Vec<(usize, &mut [f32])> = if want_x {
        dx.chunks_mut(plan.group * s.cin * p).enumerate().collect()
    } else {
        (0..s.b.div_ceil(plan.group))
            .map(|ci| (ci, <&mut [f32]>::default()))
            .collect()
    };
    let (dw, db) = chunks
        .into_par_iter()
        .fold(
            || {
                (
                    vec![0.0f32; co * k],
                    vec![0.0f64; co],
                    Vec::new(),
                    Vec::new(),
                    Vec::new(),
                )
            },
            |(mut dw, mut db, mut col, mut dy, mut dcol), (ci, dxs)| {
                let b0 = ci * plan.group;
                let gi = plan.group.min(s.b - b0);
                let mut h0 = 0;
                while h0 < s.h {
                    let rows = plan.rows.min(s.h - h0);
                    let n1 = rows * s.w;
                    let n = gi * n1;
                    // The gradient at the convolution's output, this tile.
                    // Batch norm's gradient writes every value; without it, the
                    // winners' contributions are added to zeros.
                    if bn.is_none() {
                        dy.clear();
                    }
                    dy.resize(co * n, 0.0f32);
                    for g in 0..gi {
                        let bi = b0 + g;
                        for c in 0..co {
                            let t = &mut dy[c * n + g * n1..c * n + (g + 1) * n1];
                            let scale = match bn {
                                Some(st) => {
                                    let a = st.gamma[c] * st.inv_std[c];
                                    let y = &saved.conv[(bi * co + c) * p + h0 * s.w..][..n1];
                                    let (m, is) = (st.mean[c], st.inv_std[c]);
                                    let (mg, mgx) = (mean_g[c], mean_gx[c]);
                                    // -a * (mg + (v - m) * is * mgx), as one multiply-add.
                                    simd::affine_into(
                                        t,
                                        y,
                                        -a * is * mgx,
                                        -a * (mg - m * is * mgx),
                                    );
                                    a
                                }
                                None => fixed_scale[c],
                            };
                            let o0 = bi * per_out + c * oh * ow;
                            let (r0, r1) = (h0 / s.ph, (h0 + rows) / s.ph);
                            scatter_winners(
                                t,
                                &saved.arg[o0 + r0 * ow..o0 + r1 * ow],
                                &dout[o0 + r0 * ow..o0 + r1 * ow],
                                s,
                                scale,
                            );
                            db[c] += simd::sums(t).0;
                        }
                    }
                    col.resize(k * n, 0.0);
                    for g in 0..gi {
                        let img = &x[(b0 + g) * s.cin * p..(b0 + g + 1) * s.cin * p];
                        im2col(img, s, (h0, rows), &mut col, (n, g * n1));
                    }
                    // dW[co, k] += dy[co, n] * col[k, n]^T
                    let shape = (co, k, n);
                    matmul(
                        shape,
                        &mut dw,
                        k,
                        true,
                        &dy,
                        n,
                        false,
                        &col,
                        n,
                        true,
                        parallel_gemm,
                    );
                    if want_x {
                        // dcol[k, n] = W[co, k]^T * dy[co, n]
                        dcol.resize(k * n, 0.0);
                        let shape = (k, n, co);
                        matmul(
                            shape,
                            &mut dcol,
                            n,
                            false,
                            weight,
                            k,
                            true,
                            &dy,
                            n,
                            false,
                            parallel_gemm,
                        );
                        for g in 0..gi {
                            let dxb = &mut dxs[g * s.cin * p..(g + 1) * s.cin * p];
                            col2im_add(&dcol, s, (h0, rows), dxb, (n, g * n1));
                        }
                    }
                    h0 += rows;
                }
                (dw, db, col, dy, dcol)
            },
        )
        .map(|(dw, db, ..)| (dw, db))
        .reduce(
            || (vec![0.0f32; co * k], vec![0.0f64; co]),
            |(mut a, mut b), (c, d)| {
                a.iter_mut().zip(&c).for_each(|(x, y)| *x += y);
                b.iter_mut().zip(&d).for_each(|(x, y)| *x += y);
                (a, b)
            },
        );
    BlockGrads {
        x: want_x.then_some(dx),
        weight: dw,
        bias: db.iter().map(|&v| v as f32).collect(),
        gamma: gamma_grad,
        beta: beta_grad,
    }
}

/// Over one plane's pooled values whose winner ReLU let through: the sums of the
/// gradient `g` and of `g * xhat`, `xhat = (conv - mean) * inv_std` at the winner.
fn winner_sums(
    plane: &[f32],
    codes: &[u8],
    grads: &[f32],
    s: &BlockShape,
    mean: f32,
    inv_std: f32,
) -> (f64, f64) {
    let (ow, w) = (s.ow(), s.w);
    let (mut a, mut b) = (0.0f64, 0.0f64);
    if s.ph == 2 && s.pw == 2 {
        for (oy, (cr, gr)) in codes
            .chunks_exact(ow)
            .zip(grads.chunks_exact(ow))
            .enumerate()
        {
            let (ra, rb) = simd::winner_sums2x2_row(
                (
                    &plane[2 * oy * w..(2 * oy + 1) * w],
                    &plane[(2 * oy + 1) * w..(2 * oy + 2) * w],
                ),
                cr,
                gr,
                (mean, inv_std),
            );
            a += ra as f64;
            b += rb as f64;
        }
        return (a, b);
    }
    for (oy, (cr, gr)) in codes
        .chunks_exact(ow)
        .zip(grads.chunks_exact(ow))
        .enumerate()
    {
        let (mut ra, mut rb) = (0.0f32, 0.0f32);
        for (ox, (&code, &g)) in cr.iter().zip(gr).enumerate() {
            if code & 0x80 != 0 {
                let xhat = (plane[winner(code, oy, ox, s)] - mean) * inv_std;
                ra += g;
                rb += g * xhat;
            }
        }
        a += ra as f64;
        b += rb as f64;
    }
    (a, b)
}

/// Add `scale * g` at each pooled value's winner (if ReLU let it through) in `t`, the
/// tile of plane rows that the pooled rows of `codes` cover.
fn scatter_winners(t: &mut [f32], codes: &[u8], grads: &[f32], s: &BlockShape, scale: f32) {
    let (ow, w) = (s.ow(), s.w);
    if s.ph == 2 && s.pw == 2 {
        for (oy, (cr, gr)) in codes
            .chunks_exact(ow)
            .zip(grads.chunks_exact(ow))
            .enumerate()
        {
            let (top, bottom) = t[2 * oy * w..(2 * oy + 2) * w].split_at_mut(w);
            simd::scatter2x2_row((top, bottom), cr, gr, scale);
        }
        return;
    }
    for (oy, (cr, gr)) in codes
        .chunks_exact(ow)
        .zip(grads.chunks_exact(ow))
        .enumerate()
    {
        for (ox, (&code, &g)) in cr.iter().zip(gr).enumerate() {
            if code & 0x80 != 0 {
                t[winner(code, oy, ox, s)] += scale * g;
            }
        }
    }
}

/// Position in the (unpooled) plane of the winner of pooled value `(oy, ox)`.
#[inline]
fn winner(code: u8, oy: usize, ox: usize, s: &BlockShape) -> usize {
    let i = (code & 0x7f) as usize;
    let (dy, dx) = (i / s.pw, i % s.pw);
    (oy * s.ph + dy) * s.w + ox * s.pw + dx
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u64) -> Vec<f32> {
        let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// Direct 3x3 convolution, the obvious way.
    fn naive_conv(x: &[f32], w: &[f32], bias: &[f32], s: &BlockShape) -> Vec<f32> {
        let (h, wd) = (s.h as isize, s.w as isize);
        let mut y = vec![0.0f32; s.b * s.cout * s.plane()];
        for b in 0..s.b {
            for co in 0..s.cout {
                for yy in 0..h {
                    for xx in 0..wd {
                        let mut acc = bias[co] as f64;
                        for ci in 0..s.cin {
                            for kh in 0..3isize {
                                for kw in 0..3isize {
                                    let (sy, sx) = (yy + kh - 1, xx + kw - 1);
                                    if sy < 0 || sy >= h || sx < 0 || sx >= wd {
                                        continue;
                                    }
                                    let xv = x[((b * s.cin + ci) * s.h + sy as usize) * s.w
                                        + sx as usize];
                                    let wv =
                                        w[((co * s.cin + ci) * 3 + kh as usize) * 3 + kw as usize];
                                    acc += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((b * s.cout + co) * s.h + yy as usize) * s.w + xx as usize] = acc as f32;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn convolution_matches_direct_sum() {
        let one = BlockShape {
            b: 2,
            cin: 3,
            cout: 5,
            h: 7,
            w: 6,
            ph: 2,
            pw: 2,
        };
        // Many small images: tiles of several whole images, the last one ragged.
        let grouped = BlockShape {
            b: 11,
            h: 4,
            w: 5,
            ..one
        };
        assert!(grouped.plan().group > 1, "{:?}", grouped.plan());
        for s in [one, grouped] {
            let x = pseudo(s.b * s.cin * s.plane(), 1);
            let w = pseudo(s.cout * s.k(), 2);
            let bias = pseudo(s.cout, 3);
            let (y, sum, _) = conv_forward(&x, &w, &bias, &s);
            let want = naive_conv(&x, &w, &bias, &s);
            for (a, b) in y.iter().zip(&want) {
                assert!((a - b).abs() < 1e-5, "{a} vs {b}");
            }
            let s0: f64 = (0..s.b)
                .map(|b| {
                    y[b * s.cout * s.plane()..][..s.plane()]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>()
                })
                .sum();
            assert!((sum[0] - s0).abs() < 1e-5);
            // The one-pass version agrees with convolution then pooling.
            let aff = Affine {
                a: pseudo(s.cout, 4),
                c: pseudo(s.cout, 5),
            };
            let (o1, g1) = conv_affine_relu_pool(&x, &w, &bias, &aff, &s);
            let (o2, g2) = affine_relu_pool(&y, &aff, &s);
            assert_eq!(g1, g2);
            for (a, b) in o1.iter().zip(&o2) {
                assert!((a - b).abs() < 1e-5);
            }
        }
    }

    /// im2col and col2im are adjoint: <im2col(x), c> = <x, col2im(c)>.
    #[test]
    fn col2im_is_the_adjoint_of_im2col() {
        let s = BlockShape {
            b: 1,
            cin: 2,
            cout: 1,
            h: 5,
            w: 4,
            ph: 1,
            pw: 1,
        };
        let x = pseudo(s.cin * s.plane(), 7);
        let c = pseudo(s.k() * 3 * s.w, 8);
        let mut col = vec![0.0; s.k() * 3 * s.w];
        im2col(&x, &s, (1, 3), &mut col, (3 * s.w, 0));
        let lhs: f64 = col.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
        let mut back = vec![0.0; x.len()];
        col2im_add(&c, &s, (1, 3), &mut back, (3 * s.w, 0));
        let rhs: f64 = x.iter().zip(&back).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }
}
