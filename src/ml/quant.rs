//! Quantised front end of musicnn: the five "convolution, then max over mel" branches
//! in integers, with exact i32 sums through AVX-512 VNNI.
//!
//! Two formats:
//! - **int16** (`vpdpwssd`, 32 multiply-adds per instruction, twice an fp32 FMA):
//!   11-bit activations and 13-bit weights. This is what `auto` picks: measured on dev
//!   clips, weights need about 13 bits and activations 11 to keep every patch's
//!   penultimate within 1 % of fp32 (8-bit weights alone cost up to 5.9 %).
//! - **int8** (`vpdpbusd`, 64 per instruction): u8 activations, s8 weights. Twice the
//!   speed of int16, but outside the accuracy bar (see docs/speed.md); opt-in only.
//!
//! Quantisation: each patch's (batch-normalised) log-mel gets one scale and zero point
//! (`q = round(x / s) + z`; `0 -> z` exactly, so time padding is `z`); each output
//! channel's weights get a symmetric scale (`w = s_c * wq`). Then
//! `conv = s * s_c * (sum wq * q - z * sum wq)`, and since `s * s_c > 0` the max over mel
//! is taken on the integer sums: one conversion per (time, channel), none per mel
//! position. Channels whose batch-norm scale is negative take the min, as in
//! [`super::frontend`], by negating their weights.
//!
//! The kernel is an implicit GEMM (no im2col). Lanes are 16 output channels; each step
//! broadcasts one 32-bit group of input taps (4 u8 or 2 i16) of a row and multiplies it
//! with the packed weights of those taps. For the timbral branches (kernel 7 x 38 / 7 x
//! 67 over time x mel) a row is a mel position and tap groups run along mel (widths
//! padded with zero weights); for the temporal ones (kernel 128/64/32 x 1) the patch is
//! transposed so that tap groups run along time.
//!
//! A portable path computes the same integer sums without VNNI, so results are
//! bit-identical on every CPU (tested against each other); only the speed differs.

use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Output rows (mel positions) per micro-tile.
const MR: usize = 6;
/// Time steps per parallel task.
const TASK_T: usize = 8;
/// Bytes read past a buffer's last tap (the 4-byte loads of zero-weight padding taps).
const TAIL: usize = 256;

/// Integer format of a quantised branch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuantKind {
    /// u8 activations, s8 weights, `vpdpbusd`.
    Int8,
    /// 11-bit activations and 13-bit weights in i16, `vpdpwssd`.
    Int16,
}

impl QuantKind {
    /// Taps per 32-bit group.
    fn taps(self) -> usize {
        match self {
            QuantKind::Int8 => 4,
            QuantKind::Int16 => 2,
        }
    }

    /// Bytes per activation.
    fn act_bytes(self) -> usize {
        4 / self.taps()
    }

    /// Range of quantised activations.
    fn act_range(self) -> (i32, i32) {
        match self {
            QuantKind::Int8 => (0, 255),
            QuantKind::Int16 => (-1024, 1023),
        }
    }

    /// Largest |quantised weight|.
    fn weight_max(self) -> i32 {
        match self {
            QuantKind::Int8 => 127,
            QuantKind::Int16 => 4095,
        }
    }

    /// Store a quantised activation.
    fn put_act(self, buf: &mut [u8], i: usize, q: i32) {
        match self {
            QuantKind::Int8 => buf[i] = q as u8,
            QuantKind::Int16 => buf[2 * i..2 * i + 2].copy_from_slice(&(q as i16).to_le_bytes()),
        }
    }

    /// Store a quantised weight.
    fn put_weight(self, buf: &mut [u8], i: usize, q: i32) {
        match self {
            QuantKind::Int8 => buf[i] = q as i8 as u8,
            QuantKind::Int16 => buf[2 * i..2 * i + 2].copy_from_slice(&(q as i16).to_le_bytes()),
        }
    }

    /// Dot product of one 32-bit group of activations and weights (the portable path).
    fn dot4(self, a: &[u8], w: &[u8]) -> i32 {
        match self {
            QuantKind::Int8 => (0..4).map(|l| a[l] as i32 * w[l] as i8 as i32).sum(),
            QuantKind::Int16 => (0..2)
                .map(|l| {
                    let x = i16::from_le_bytes([a[2 * l], a[2 * l + 1]]) as i32;
                    let y = i16::from_le_bytes([w[2 * l], w[2 * l + 1]]) as i32;
                    x * y
                })
                .sum(),
        }
    }
}

/// One patch quantised: `q = round(x / scale) + zero`.
#[derive(Debug, Clone)]
pub struct QuantPatch {
    /// Time-major rows of the padded patch (see [`PatchShape`]), as bytes.
    data: Vec<u8>,
    /// Mel-major (transposed) copy, padded in time, for the temporal branches.
    data_t: Vec<u8>,
    scale: f32,
    zero: i32,
}

/// Geometry shared by the quantised patches of one forward pass.
#[derive(Debug, Clone, Copy)]
pub struct PatchShape {
    /// Integer format.
    pub kind: QuantKind,
    /// Frames.
    pub t: usize,
    /// Mel bands.
    pub m: usize,
    /// Rows of zero-point padding before and after the frames in the time-major copy.
    pub pad_t: usize,
    /// Padding before and after the frames in the transposed copy.
    pub pad_tt: (usize, usize),
}

impl PatchShape {
    fn rows(&self) -> usize {
        self.t + 2 * self.pad_t
    }

    /// Elements per row of the transposed copy.
    fn row_t(&self) -> usize {
        self.pad_tt.0 + self.t + self.pad_tt.1
    }
}

impl QuantPatch {
    /// Quantise one `[t, m]` patch. The range always includes 0 so that padding is exact.
    pub fn new(x: &[f32], shape: PatchShape) -> Self {
        let PatchShape {
            kind, t, m, pad_t, ..
        } = shape;
        assert_eq!(x.len(), t * m, "patch shape");
        let (qmin, qmax) = kind.act_range();
        let (lo, hi) = x
            .iter()
            .fold((0.0f32, 0.0f32), |(lo, hi), &v| (lo.min(v), hi.max(v)));
        let scale = if hi > lo {
            (hi - lo) / (qmax - qmin) as f32
        } else {
            1.0
        };
        let inv = 1.0 / scale;
        let zero = qmin - (lo * inv).round() as i32;
        let q = |v: f32| ((v * inv).round() as i32 + zero).clamp(qmin, qmax);

        let eb = kind.act_bytes();
        let mut data = vec![0u8; shape.rows() * m * eb + TAIL];
        let mut data_t = vec![0u8; m * shape.row_t() * eb + TAIL];
        for i in 0..shape.rows() * m {
            kind.put_act(&mut data, i, zero);
        }
        for i in 0..m * shape.row_t() {
            kind.put_act(&mut data_t, i, zero);
        }
        let rt = shape.row_t();
        for ti in 0..t {
            for mi in 0..m {
                let v = q(x[ti * m + mi]);
                kind.put_act(&mut data, (pad_t + ti) * m + mi, v);
                kind.put_act(&mut data_t, mi * rt + shape.pad_tt.0 + ti, v);
            }
        }
        Self {
            data,
            data_t,
            scale,
            zero,
        }
    }
}

/// How a branch walks its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Walk {
    /// Rows are mel positions of the time-major copy; taps are (time, mel group).
    Timbral,
    /// Rows are mel bands of the transposed copy; taps are time groups.
    Temporal,
}

/// One front-end branch, quantised: a `kt x km` convolution over `[time, mel]` (time
/// padded, mel valid) reduced over mel, returning what [`super::frontend::ConvMax`]
/// returns (the extreme over mel plus the bias).
#[derive(Debug, Clone)]
pub struct ConvMaxQ {
    kind: QuantKind,
    walk: Walk,
    kt: usize,
    km: usize,
    pad_before: usize,
    cout: usize,
    /// 16-channel groups (`cout` rounded up).
    groups: usize,
    /// Tap steps: (outer, inner) = (kt, groups of km) or (1, groups of kt).
    outer: usize,
    inner: usize,
    /// Packed `[outer][inner][group][16 channels][taps]` weights, as bytes.
    w: Vec<u8>,
    /// Per channel: sum of its quantised (sign-applied) weights.
    wsum: Vec<i64>,
    /// Per channel: weight scale.
    wscale: Vec<f32>,
    sign: Vec<f32>,
    bias: Vec<f32>,
}

impl ConvMaxQ {
    /// From burn's conv weight `[cout, 1, kt, km]`, its bias, the time padding before, and
    /// per channel whether it takes the min (negative batch-norm scale).
    pub fn new(
        kind: QuantKind,
        weight: &[f32],
        bias: Vec<f32>,
        dims: [usize; 3],
        pad_before: usize,
        take_min: &[bool],
    ) -> Self {
        let [cout, kt, km] = dims;
        assert_eq!(weight.len(), cout * kt * km, "weight shape");
        let walk = if km == 1 {
            Walk::Temporal
        } else {
            Walk::Timbral
        };
        let taps = kind.taps();
        let (outer, inner) = match walk {
            Walk::Timbral => (kt, km.div_ceil(taps)),
            Walk::Temporal => (1, kt.div_ceil(taps)),
        };
        // No i32 sum can overflow: |q| and |wq| are bounded and so is the tap count.
        let (qmin, qmax) = kind.act_range();
        let bound = (outer * inner * taps) as i64
            * kind.weight_max() as i64
            * qmin.abs().max(qmax.abs()) as i64;
        assert!(bound < i32::MAX as i64, "integer sums could overflow");
        let groups = cout.div_ceil(16);
        let sign: Vec<f32> = (0..cout)
            .map(|c| {
                if take_min.get(c) == Some(&true) {
                    -1.0
                } else {
                    1.0
                }
            })
            .collect();
        let wmax = kind.weight_max() as f32;
        let mut wscale = vec![1.0f32; cout];
        let mut wsum = vec![0i64; cout];
        let eb = kind.act_bytes();
        let mut w = vec![0u8; outer * inner * groups * 64];
        for c in 0..cout {
            let wc = &weight[c * kt * km..(c + 1) * kt * km];
            let amax = wc.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
            let s = if amax > 0.0 { amax / wmax } else { 1.0 };
            wscale[c] = s;
            for dt in 0..kt {
                for dm in 0..km {
                    let q = (sign[c] * wc[dt * km + dm] / s).round().clamp(-wmax, wmax) as i32;
                    let (o, tap) = match walk {
                        Walk::Timbral => (dt, dm),
                        Walk::Temporal => (0, dt),
                    };
                    let (i, l) = (tap / taps, tap % taps);
                    let at = (((o * inner + i) * groups + c / 16) * 16 + c % 16) * taps + l;
                    kind.put_weight(&mut w, at, q);
                    wsum[c] += q as i64;
                }
            }
        }
        debug_assert_eq!(w.len(), outer * inner * groups * 16 * taps * eb);
        Self {
            kind,
            walk,
            kt,
            km,
            pad_before,
            cout,
            groups,
            outer,
            inner,
            w,
            wsum,
            wscale,
            sign,
            bias,
        }
    }

    /// Output channels.
    pub fn channels(&self) -> usize {
        self.cout
    }

    /// The shape of quantised patches that every branch in `branches` can read.
    pub fn patch_shape(branches: &[ConvMaxQ], t: usize, m: usize) -> PatchShape {
        let kind = branches.first().map_or(QuantKind::Int16, |b| b.kind);
        assert!(
            branches.iter().all(|b| b.kind == kind),
            "one integer format per pass"
        );
        let pad_t = branches
            .iter()
            .filter(|b| b.walk == Walk::Timbral)
            .map(|b| b.kt)
            .max()
            .unwrap_or(0);
        let (before, after) = branches
            .iter()
            .filter(|b| b.walk == Walk::Temporal)
            .fold((0, 0), |(a, b), br| {
                (a.max(br.pad_before), b.max(br.kt - 1 - br.pad_before))
            });
        PatchShape {
            kind,
            t,
            m,
            pad_t,
            pad_tt: (before, after),
        }
    }

    /// Apply to quantised patches: returns `[b, cout, t]` (b = `patches.len()`).
    /// `vnni` selects the AVX-512 VNNI kernel; only pass `true` where
    /// [`super::precision::has_vnni`] says the CPU has it.
    pub fn forward(&self, patches: &[QuantPatch], shape: PatchShape, vnni: bool) -> Vec<f32> {
        let vnni = vnni && super::precision::has_vnni();
        let t = shape.t;
        let tasks: Vec<(usize, usize)> = (0..patches.len())
            .flat_map(|p| (0..t).step_by(TASK_T).map(move |t0| (p, t0)))
            .collect();
        let tiles: Vec<(usize, usize, Vec<f32>)> = tasks
            .into_par_iter()
            .map(|(p, t0)| {
                let tt = TASK_T.min(t - t0);
                (p, t0, self.tile(&patches[p], shape, t0, tt, vnni))
            })
            .collect();
        super::frontend::scatter_tiles(tiles, patches.len(), self.cout, t)
    }

    /// Time steps `t0..t0 + tt` of one patch -> `[tt, cout]`.
    fn tile(
        &self,
        q: &QuantPatch,
        shape: PatchShape,
        t0: usize,
        tt: usize,
        vnni: bool,
    ) -> Vec<f32> {
        let (m, eb) = (shape.m, self.kind.act_bytes());
        // Rows (output positions over mel), and in bytes: the distance between rows,
        // between outer taps, and where row 0 of time step t starts.
        let (rows, row_stride, outer_stride, buf) = match self.walk {
            Walk::Timbral => (m - self.km + 1, eb, m * eb, &q.data),
            Walk::Temporal => (m, shape.row_t() * eb, 0, &q.data_t),
        };
        let start = |ti: usize| {
            eb * match self.walk {
                // Padded row of output t's first tap: t - pad_before, shifted by pad_t.
                Walk::Timbral => (shape.pad_t + ti - self.pad_before) * m,
                Walk::Temporal => shape.pad_tt.0 + ti - self.pad_before,
            }
        };
        let geo = Geometry {
            kind: self.kind,
            rows,
            row_stride,
            outer: self.outer,
            outer_stride,
            inner: self.inner,
            groups: self.groups,
        };
        // Every read of the last step stays inside the buffer (TAIL covers the 4-byte
        // groups of zero-weight padding taps past a row's end).
        assert!(
            start(t0 + tt - 1)
                + (rows - 1) * row_stride
                + (self.outer - 1) * outer_stride
                + 4 * self.inner
                <= buf.len(),
            "quantised reads stay inside the buffer"
        );
        let mut maxes = vec![0i32; self.groups * 16];
        let mut out = vec![0.0f32; tt * self.cout];
        let sa = q.scale;
        for ti in 0..tt {
            let a = &buf[start(t0 + ti)..];
            if vnni {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `vnni` is only true when the CPU has AVX-512 F/BW/VNNI (checked in
                // `forward`); `a` holds every byte the geometry reads (asserted above).
                unsafe {
                    max_sums_vnni(a, &self.w, geo, &mut maxes)
                };
            } else {
                max_sums_portable(a, &self.w, geo, &mut maxes);
            }
            let dst = &mut out[ti * self.cout..(ti + 1) * self.cout];
            for (c, d) in dst.iter_mut().enumerate() {
                let centred = maxes[c] as i64 - q.zero as i64 * self.wsum[c];
                *d = (sa * self.wscale[c]) * centred as f32 * self.sign[c] + self.bias[c];
            }
        }
        out
    }
}

/// How one output time step's sums are laid out in the input buffer (strides in bytes).
#[derive(Debug, Clone, Copy)]
struct Geometry {
    kind: QuantKind,
    rows: usize,
    row_stride: usize,
    outer: usize,
    outer_stride: usize,
    inner: usize,
    groups: usize,
}

/// The per-channel max over rows of the integer sums, the obvious way (also the oracle
/// the VNNI kernel is tested against).
fn max_sums_portable(a: &[u8], w: &[u8], g: Geometry, maxes: &mut [i32]) {
    let ch = g.groups * 16;
    let mut acc = vec![0i32; ch];
    maxes.fill(i32::MIN);
    for r in 0..g.rows {
        acc.fill(0);
        for o in 0..g.outer {
            for i in 0..g.inner {
                let at = r * g.row_stride + o * g.outer_stride + 4 * i;
                let x = &a[at..at + 4];
                let wq = &w[(o * g.inner + i) * ch * 4..(o * g.inner + i + 1) * ch * 4];
                for (c, s) in acc.iter_mut().enumerate() {
                    *s += g.kind.dot4(x, &wq[c * 4..c * 4 + 4]);
                }
            }
        }
        for (mx, &s) in maxes.iter_mut().zip(&acc) {
            *mx = (*mx).max(s);
        }
    }
}

/// VNNI version of [`max_sums_portable`]: micro-tiles of [`MR`] rows by up to 4 channel
/// groups (24 accumulators), rows of the last tile overlapping the previous one (a max
/// does not mind seeing a row twice).
///
/// # Safety
/// The CPU must have AVX-512 F, BW and VNNI; `a` must hold every byte the geometry reads.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
unsafe fn max_sums_vnni(a: &[u8], w: &[u8], g: Geometry, maxes: &mut [i32]) {
    let mut g0 = 0;
    while g0 < g.groups {
        // Blocks of 4 groups, ending in 3+3 or 3+2 rather than a lone 1 or 2.
        let nv = match g.groups - g0 {
            5 | 6 => 3,
            l => l.min(4),
        };
        let int16 = g.kind == QuantKind::Int16;
        // SAFETY: forwarded from this function's contract.
        unsafe {
            match (nv, int16) {
                (1, false) => group_block::<1, false>(a, w, g, g0, maxes),
                (2, false) => group_block::<2, false>(a, w, g, g0, maxes),
                (3, false) => group_block::<3, false>(a, w, g, g0, maxes),
                (_, false) => group_block::<4, false>(a, w, g, g0, maxes),
                (1, true) => group_block::<1, true>(a, w, g, g0, maxes),
                (2, true) => group_block::<2, true>(a, w, g, g0, maxes),
                (3, true) => group_block::<3, true>(a, w, g, g0, maxes),
                (_, true) => group_block::<4, true>(a, w, g, g0, maxes),
            }
        }
        g0 += nv;
    }
}

/// All rows for channel groups `g0..g0 + NV` (`INT16`: `vpdpwssd`, else `vpdpbusd`).
///
/// # Safety
/// As [`max_sums_vnni`].
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn group_block<const NV: usize, const INT16: bool>(
    a: &[u8],
    w: &[u8],
    g: Geometry,
    g0: usize,
    maxes: &mut [i32],
) {
    let mut best = [_mm512_set1_epi32(i32::MIN); NV];
    if g.rows < MR {
        // Too few rows for a full tile (not musicnn's shapes): one row at a time.
        for r in 0..g.rows {
            // SAFETY: forwarded from this function's contract.
            let acc =
                unsafe { tile_sums::<1, NV, INT16>(a.as_ptr().add(r * g.row_stride), w, g, g0) };
            for (bst, s) in best.iter_mut().zip(&acc[0]) {
                *bst = _mm512_max_epi32(*bst, *s);
            }
        }
    } else {
        let mut r0 = 0;
        loop {
            // The last tile overlaps the previous one so that every tile is full.
            let r = r0.min(g.rows - MR);
            // SAFETY: forwarded from this function's contract.
            let acc =
                unsafe { tile_sums::<MR, NV, INT16>(a.as_ptr().add(r * g.row_stride), w, g, g0) };
            for (v, bst) in best.iter_mut().enumerate() {
                for accr in &acc {
                    *bst = _mm512_max_epi32(*bst, accr[v]);
                }
            }
            r0 += MR;
            if r0 >= g.rows {
                break;
            }
        }
    }
    for (v, bst) in best.iter().enumerate() {
        // SAFETY: maxes has groups * 16 entries; group g0 + v < groups.
        unsafe { _mm512_storeu_si512(maxes.as_mut_ptr().add((g0 + v) * 16).cast(), *bst) };
    }
}

/// The integer sums of `R` consecutive rows (the first at `a`) for channel groups
/// `g0..g0 + NV`: `R x NV` accumulators that stay in registers (constant trip counts,
/// raw pointers: no bounds or overflow checks in the loop).
///
/// # Safety
/// As [`max_sums_vnni`], for the rows starting at `a`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[inline]
unsafe fn tile_sums<const R: usize, const NV: usize, const INT16: bool>(
    a: *const u8,
    w: &[u8],
    g: Geometry,
    g0: usize,
) -> [[__m512i; NV]; R] {
    let mut acc = [[_mm512_setzero_si512(); NV]; R];
    let b_step = g.groups * 64;
    let mut bp = w.as_ptr().wrapping_add(g0 * 64);
    let mut rows = [a; R];
    for (r, p) in rows.iter_mut().enumerate() {
        *p = a.wrapping_add(r * g.row_stride);
    }
    for o in 0..g.outer {
        let off = o.wrapping_mul(g.outer_stride);
        let mut group = 0usize;
        for _ in 0..g.inner {
            let mut bv = [_mm512_setzero_si512(); NV];
            for (v, b) in bv.iter_mut().enumerate() {
                // SAFETY: `w` holds outer * inner * groups * 64 bytes; this reads the 64
                // bytes of channel group g0 + v < groups at step (o, i).
                *b = unsafe { _mm512_loadu_si512(bp.add(v * 64).cast()) };
            }
            for (accr, p) in acc.iter_mut().zip(&rows) {
                // SAFETY: 4 bytes at this row's tap group: inside `a`'s buffer by contract.
                let x = unsafe { p.add(off + group).cast::<i32>().read_unaligned() };
                let xv = _mm512_set1_epi32(x);
                for (s, b) in accr.iter_mut().zip(&bv) {
                    if INT16 {
                        // `vpdpwssd` written out: LLVM rewrites `_mm512_dpwssd_epi32` into
                        // `vpmaddwd` + `vpaddd` (twice the instructions, measured: the
                        // timbral branches ran at a third of the instruction's peak) for
                        // CPUs it does not know to have a fast one, which includes a build
                        // for generic x86-64.
                        // SAFETY: AVX-512 VNNI is enabled for this function (and checked at
                        // run time by the caller); registers only, no memory.
                        unsafe {
                            std::arch::asm!(
                                "vpdpwssd {acc}, {x}, {w}",
                                acc = inout(zmm_reg) *s,
                                x = in(zmm_reg) xv,
                                w = in(zmm_reg) *b,
                                options(pure, nomem, nostack, preserves_flags),
                            );
                        }
                    } else {
                        *s = _mm512_dpbusd_epi32(*s, xv, *b);
                    }
                }
            }
            group = group.wrapping_add(4);
            bp = bp.wrapping_add(b_step);
        }
    }
    acc
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ml::frontend::ConvMax;

    fn pseudo(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104_729) % 1013) as f32 / 506.0 - 1.0) * 2.0)
            .collect()
    }

    /// Small branches of both walks and formats, with min-taking channels and channel
    /// counts that are not multiples of 16: the VNNI kernel gives the portable path's
    /// exact bits, and both are within quantisation error of the fp32 kernel.
    #[test]
    fn vnni_equals_portable_and_tracks_fp32() {
        let (t, m) = (21, 24);
        let x = pseudo(3 * t * m, 1);
        let configs: [([usize; 3], usize); 4] = [
            ([37, 3, 10], 1),
            ([70, 7, 9], 3),
            ([20, 7, 1], 3),
            ([5, 8, 1], 4),
        ];
        for (kind, tolerance) in [(QuantKind::Int8, 0.02), (QuantKind::Int16, 0.001)] {
            let branches: Vec<(ConvMaxQ, ConvMax)> = configs
                .iter()
                .map(|&(dims, pad)| {
                    let [cout, kt, km] = dims;
                    let w = pseudo(cout * kt * km, cout);
                    let bias: Vec<f32> = (0..cout).map(|c| c as f32 * 0.01).collect();
                    let take_min: Vec<bool> = (0..cout).map(|c| c % 3 == 1).collect();
                    (
                        ConvMaxQ::new(kind, &w, bias.clone(), dims, pad, &take_min),
                        ConvMax::new(&w, bias, dims, pad, take_min),
                    )
                })
                .collect();
            let quant: Vec<ConvMaxQ> = branches.iter().map(|b| b.0.clone()).collect();
            let shape = ConvMaxQ::patch_shape(&quant, t, m);
            let patches: Vec<QuantPatch> =
                x.chunks(t * m).map(|p| QuantPatch::new(p, shape)).collect();
            for (q, f) in &branches {
                let slow = q.forward(&patches, shape, false);
                if crate::ml::precision::has_vnni() {
                    let fast = q.forward(&patches, shape, true);
                    assert_eq!(fast, slow, "{kind:?}: VNNI and portable sums differ");
                }
                let exact = f.forward(&x, 3, t, m);
                let spread = exact.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                let worst = exact
                    .iter()
                    .zip(&slow)
                    .fold(0.0f32, |a, (e, s)| a.max((e - s).abs()));
                assert!(
                    worst < tolerance * spread,
                    "{kind:?}: off by {worst} (outputs up to {spread})"
                );
            }
        }
    }
}
