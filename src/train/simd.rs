//! AVX-512 inner loops of the fused training block, each with a portable twin that gives
//! the same results up to float rounding (the crate is built for baseline x86-64, so the
//! wide versions are chosen at run time).
//!
//! The 2x2 pooling loops deinterleave a row pair's even and odd columns with two
//! permutes, so one iteration handles 16 windows. (A blocked dot-product kernel for the
//! weight gradient, `dy * col^T`, was tried and measured: no faster than the `gemm`
//! crate on the benchmark CNN, 15-20 % slower on the 5-block one; removed.)

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::*;

/// Does the CPU have the AVX-512 subsets these loops use?
pub fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        use std::sync::OnceLock;
        static HAS: OnceLock<bool> = OnceLock::new();
        *HAS.get_or_init(|| {
            std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512bw")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx512dq")
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sum and sum of squares of `v` (f32 within runs of 256, f64 across them).
pub fn sums(v: &[f32]) -> (f64, f64) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F/BW/VL/DQ.
        return unsafe { sums_avx512(v) };
    }
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for chunk in v.chunks(256) {
        let (mut a, mut b) = (0.0f32, 0.0f32);
        for &x in chunk {
            a += x;
            b += x * x;
        }
        s1 += a as f64;
        s2 += b as f64;
    }
    (s1, s2)
}

/// `v += b` for every value.
pub fn add(v: &mut [f32], b: f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F/BW/VL/DQ.
        return unsafe { affine_avx512(v, None, 1.0, b) };
    }
    v.iter_mut().for_each(|x| *x += b);
}

/// `dst = alpha * src + beta` (`dst` and `src` of the same length).
pub fn affine_into(dst: &mut [f32], src: &[f32], alpha: f32, beta: f32) {
    assert_eq!(dst.len(), src.len(), "affine_into lengths");
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F/BW/VL/DQ; the lengths match.
        return unsafe { affine_avx512(dst, Some(src), alpha, beta) };
    }
    for (d, &v) in dst.iter_mut().zip(src) {
        *d = alpha * v + beta;
    }
}

/// One pooled row of a 2x2 max-pool over `pool(relu(a * v + c))`: rows `r0`, `r1` of at
/// least `2 * out.len()` values; `sgn` is the sign of `a` (the winner is the largest
/// `sgn * v`). Writes the outputs and the winners' codes (index in the window, bit 7 when
/// positive). Ties go to the first element in window order.
pub fn pool2x2_row(
    (r0, r1): (&[f32], &[f32]),
    (a, c, sgn): (f32, f32, f32),
    out: &mut [f32],
    codes: &mut [u8],
) {
    let n = out.len();
    assert!(
        r0.len() >= 2 * n && r1.len() >= 2 * n && codes.len() == n,
        "pool2x2_row shapes"
    );
    let mut start = 0;
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F/BW/VL/DQ; the shapes were asserted.
        start = unsafe { pool2x2_row_avx512((r0, r1), (a, c, sgn), out, codes) };
    }
    for ox in start..n {
        let (v0, v1) = (sgn * r0[2 * ox], sgn * r0[2 * ox + 1]);
        let (v2, v3) = (sgn * r1[2 * ox], sgn * r1[2 * ox + 1]);
        let (m0, i0) = if v1 > v0 { (v1, 1u8) } else { (v0, 0) };
        let (m1, i1) = if v3 > v2 { (v3, 3u8) } else { (v2, 2) };
        let (m, i) = if m1 > m0 { (m1, i1) } else { (m0, i0) };
        let z = a * (sgn * m) + c;
        let pos = z > 0.0;
        out[ox] = if pos { z } else { 0.0 };
        codes[ox] = i | ((pos as u8) << 7);
    }
}

/// Over one pooled row of a 2x2 pool: the sums of the gradient `g` and of
/// `g * (v - mean) * inv_std` over the windows whose winner `v` ReLU let through.
pub fn winner_sums2x2_row(
    (r0, r1): (&[f32], &[f32]),
    codes: &[u8],
    grads: &[f32],
    (mean, inv_std): (f32, f32),
) -> (f32, f32) {
    let n = codes.len();
    assert!(
        r0.len() >= 2 * n && r1.len() >= 2 * n && grads.len() == n,
        "winner_sums shapes"
    );
    let (mut start, mut ra, mut rb) = (0, 0.0f32, 0.0f32);
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F/BW/VL/DQ; the shapes were asserted.
        (start, ra, rb) = unsafe { winner_sums2x2_avx512((r0, r1), codes, grads, (mean, inv_std)) };
    }
    for ox in start..n {
        let (code, g) = (codes[ox], grads[ox]);
        let i = code & 0x7f;
        let top = if i & 1 == 0 {
            r0[2 * ox]
        } else {
            r0[2 * ox + 1]
        };
        let bottom = if i & 1 == 0 {
            r1[2 * ox]
        } else {
            r1[2 * ox + 1]
        };
        let v = if i < 2 { top } else { bottom };
        let g = if code & 0x80 != 0 { g } else { 0.0 };
        ra += g;
        rb += g * ((v - mean) * inv_std);
    }
    (ra, rb)
}

/// Add `scale * g` at each 2x2 window's winner (if ReLU let it through) in rows `t0`,
/// `t1` of at least `2 * codes.len()` values.
pub fn scatter2x2_row((t0, t1): (&mut [f32], &mut [f32]), codes: &[u8], grads: &[f32], scale: f32) {
    let n = codes.len();
    assert!(
        t0.len() >= 2 * n && t1.len() >= 2 * n && grads.len() == n,
        "scatter shapes"
    );
    let mut start = 0;
    #[cfg(target_arch = "x86_64")]
    if has_avx512() {
        // SAFETY: the CPU has AVX-512 F/BW/VL/DQ; the shapes were asserted.
        start = unsafe { scatter2x2_avx512((t0, t1), codes, grads, scale) };
    }
    for ox in start..n {
        let code = codes[ox];
        if code & 0x80 == 0 {
            continue;
        }
        let v = scale * grads[ox];
        match code & 0x7f {
            0 => t0[2 * ox] += v,
            1 => t0[2 * ox + 1] += v,
            2 => t1[2 * ox] += v,
            _ => t1[2 * ox + 1] += v,
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn sums_avx512(v: &[f32]) -> (f64, f64) {
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for chunk in v.chunks(256) {
        let (mut a, mut b) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        let mut i = 0;
        while i < chunk.len() {
            let left = chunk.len() - i;
            let m: __mmask16 = if left >= 16 {
                0xffff
            } else {
                (1u16 << left) - 1
            };
            // SAFETY: the mask covers only the `min(16, left)` values from `i`.
            let x = unsafe { _mm512_maskz_loadu_ps(m, chunk.as_ptr().add(i)) };
            a = _mm512_add_ps(a, x);
            b = _mm512_fmadd_ps(x, x, b);
            i += 16;
        }
        s1 += _mm512_reduce_add_ps(a) as f64;
        s2 += _mm512_reduce_add_ps(b) as f64;
    }
    (s1, s2)
}

/// `dst = alpha * (src or dst) + beta`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn affine_avx512(dst: &mut [f32], src: Option<&[f32]>, alpha: f32, beta: f32) {
    let (va, vb) = (_mm512_set1_ps(alpha), _mm512_set1_ps(beta));
    let n = dst.len();
    let from = src.map_or(dst.as_ptr(), <[f32]>::as_ptr);
    let to = dst.as_mut_ptr();
    let mut i = 0;
    while i < n {
        let left = n - i;
        let m: __mmask16 = if left >= 16 {
            0xffff
        } else {
            (1u16 << left) - 1
        };
        // SAFETY: `src` (when given) has `dst`'s length; the mask covers only the
        // `min(16, left)` values from `i`.
        unsafe {
            let x = _mm512_maskz_loadu_ps(m, from.add(i));
            _mm512_mask_storeu_ps(to.add(i), m, _mm512_add_ps(_mm512_mul_ps(va, x), vb));
        }
        i += 16;
    }
}

/// Permute indices that take the even / odd values of `a ++ b` (32 values).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn deinterleave_indices() -> (__m512i, __m512i) {
    (
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30),
        _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31),
    )
}

/// Even and odd values of 32 consecutive floats at `p`.
///
/// # Safety
/// 32 floats must be readable at `p`; AVX-512 F available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn load_deinterleaved(p: *const f32, idx: (__m512i, __m512i)) -> (__m512, __m512) {
    // SAFETY: forwarded from the contract.
    let (a, b) = unsafe { (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))) };
    (
        _mm512_permutex2var_ps(a, idx.0, b),
        _mm512_permutex2var_ps(a, idx.1, b),
    )
}

/// 16 window codes as i32 lanes.
///
/// # Safety
/// 16 bytes must be readable at `p`; AVX-512 F available.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn load_codes(p: *const u8) -> __m512i {
    // SAFETY: forwarded from the contract.
    _mm512_cvtepu8_epi32(unsafe { _mm_loadu_si128(p.cast()) })
}

/// The vector part of [`pool2x2_row`]; returns how many outputs it wrote.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn pool2x2_row_avx512(
    (r0, r1): (&[f32], &[f32]),
    (a, c, sgn): (f32, f32, f32),
    out: &mut [f32],
    codes: &mut [u8],
) -> usize {
    let idx = deinterleave_indices();
    let (vs, va, vc) = (_mm512_set1_ps(sgn), _mm512_set1_ps(a), _mm512_set1_ps(c));
    let (one, two, three) = (
        _mm512_set1_epi32(1),
        _mm512_set1_epi32(2),
        _mm512_set1_epi32(3),
    );
    let bit = _mm512_set1_epi32(0x80);
    let n = out.len() / 16 * 16;
    let mut ox = 0;
    while ox < n {
        // SAFETY: rows hold at least 2 * out.len() >= 2 * (ox + 16) values; out and codes
        // hold out.len() >= ox + 16.
        unsafe {
            let (e0, o0) = load_deinterleaved(r0.as_ptr().add(2 * ox), idx);
            let (e1, o1) = load_deinterleaved(r1.as_ptr().add(2 * ox), idx);
            let (v0, v1) = (_mm512_mul_ps(vs, e0), _mm512_mul_ps(vs, o0));
            let (v2, v3) = (_mm512_mul_ps(vs, e1), _mm512_mul_ps(vs, o1));
            let k01 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v1, v0);
            let m0 = _mm512_mask_blend_ps(k01, v0, v1);
            let i0 = _mm512_maskz_mov_epi32(k01, one);
            let k23 = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v3, v2);
            let m1 = _mm512_mask_blend_ps(k23, v2, v3);
            let i1 = _mm512_mask_blend_epi32(k23, two, three);
            let k = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(m1, m0);
            let m = _mm512_mask_blend_ps(k, m0, m1);
            let i = _mm512_mask_blend_epi32(k, i0, i1);
            let z = _mm512_add_ps(_mm512_mul_ps(va, _mm512_mul_ps(vs, m)), vc);
            let pos = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(z, _mm512_setzero_ps());
            _mm512_storeu_ps(out.as_mut_ptr().add(ox), _mm512_maskz_mov_ps(pos, z));
            let code = _mm512_mask_or_epi32(i, pos, i, bit);
            _mm_storeu_si128(
                codes.as_mut_ptr().add(ox).cast(),
                _mm512_cvtepi32_epi8(code),
            );
        }
        ox += 16;
    }
    n
}

/// The vector part of [`winner_sums2x2_row`]: `(windows done, sum g, sum g * xhat)`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn winner_sums2x2_avx512(
    (r0, r1): (&[f32], &[f32]),
    codes: &[u8],
    grads: &[f32],
    (mean, inv_std): (f32, f32),
) -> (usize, f32, f32) {
    let idx = deinterleave_indices();
    let (vm, vi) = (_mm512_set1_ps(mean), _mm512_set1_ps(inv_std));
    let (bit, low, one, two) = (
        _mm512_set1_epi32(0x80),
        _mm512_set1_epi32(0x7f),
        _mm512_set1_epi32(1),
        _mm512_set1_epi32(2),
    );
    let (mut sa, mut sb) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let n = codes.len() / 16 * 16;
    let mut ox = 0;
    while ox < n {
        // SAFETY: rows hold at least 2 * codes.len() values; codes and grads hold
        // codes.len() >= ox + 16.
        unsafe {
            let (e0, o0) = load_deinterleaved(r0.as_ptr().add(2 * ox), idx);
            let (e1, o1) = load_deinterleaved(r1.as_ptr().add(2 * ox), idx);
            let code = load_codes(codes.as_ptr().add(ox));
            let g = _mm512_loadu_ps(grads.as_ptr().add(ox));
            let pos = _mm512_test_epi32_mask(code, bit);
            let i = _mm512_and_si512(code, low);
            let odd = _mm512_test_epi32_mask(i, one);
            let bottom = _mm512_cmpge_epi32_mask(i, two);
            let top = _mm512_mask_blend_ps(odd, e0, o0);
            let bot = _mm512_mask_blend_ps(odd, e1, o1);
            let v = _mm512_mask_blend_ps(bottom, top, bot);
            let gz = _mm512_maskz_mov_ps(pos, g);
            sa = _mm512_add_ps(sa, gz);
            sb = _mm512_fmadd_ps(gz, _mm512_mul_ps(_mm512_sub_ps(v, vm), vi), sb);
        }
        ox += 16;
    }
    (n, _mm512_reduce_add_ps(sa), _mm512_reduce_add_ps(sb))
}

/// The vector part of [`scatter2x2_row`]; returns how many windows it handled.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq")]
fn scatter2x2_avx512(
    (t0, t1): (&mut [f32], &mut [f32]),
    codes: &[u8],
    grads: &[f32],
    scale: f32,
) -> usize {
    let lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    let vs = _mm512_set1_ps(scale);
    let bit = _mm512_set1_epi32(0x80);
    let low = _mm512_set1_epi32(0x7f);
    let which = [0, 1, 2, 3].map(|w| _mm512_set1_epi32(w));
    let n = codes.len() / 16 * 16;
    let mut ox = 0;
    while ox < n {
        // SAFETY: rows hold at least 2 * codes.len() values; codes and grads hold
        // codes.len() >= ox + 16.
        unsafe {
            let code = load_codes(codes.as_ptr().add(ox));
            let g = _mm512_loadu_ps(grads.as_ptr().add(ox));
            let pos = _mm512_test_epi32_mask(code, bit);
            let v = _mm512_maskz_mov_ps(pos, _mm512_mul_ps(vs, g));
            let i = _mm512_and_si512(code, low);
            let part = which.map(|w| _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(i, w), v));
            for (row, (even, odd)) in [
                (&mut *t0, (part[0], part[1])),
                (&mut *t1, (part[2], part[3])),
            ] {
                let p = row.as_mut_ptr().add(2 * ox);
                let a = _mm512_add_ps(_mm512_loadu_ps(p), _mm512_permutex2var_ps(even, lo, odd));
                let b = _mm512_add_ps(
                    _mm512_loadu_ps(p.add(16)),
                    _mm512_permutex2var_ps(even, hi, odd),
                );
                _mm512_storeu_ps(p, a);
                _mm512_storeu_ps(p.add(16), b);
            }
        }
        ox += 16;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudo(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2_654_435_761) ^ seed.wrapping_mul(40_503)) % 1999) as f32 / 999.5
                    - 1.0
            })
            .collect()
    }

    /// Each wide loop against its portable twin (run with AVX-512 disabled by calling the
    /// scalar code path directly: the public functions' fallbacks).
    #[test]
    fn wide_loops_match_the_portable_ones() {
        if !has_avx512() {
            eprintln!("SKIP: no AVX-512");
            return;
        }
        let n = 37; // two full vectors of windows and a tail
        let (r0, r1) = (pseudo(2 * n, 1), pseudo(2 * n, 2));
        let grads = pseudo(n, 3);
        for (a, c) in [(0.7f32, 0.1f32), (-1.3, 0.2)] {
            let sgn = if a >= 0.0 { 1.0 } else { -1.0 };
            let (mut out, mut codes) = (vec![0.0; n], vec![0u8; n]);
            pool2x2_row((&r0, &r1), (a, c, sgn), &mut out, &mut codes);
            // Scalar reference: the same tail loop over every window.
            for ox in 0..n {
                let (v0, v1) = (sgn * r0[2 * ox], sgn * r0[2 * ox + 1]);
                let (v2, v3) = (sgn * r1[2 * ox], sgn * r1[2 * ox + 1]);
                let (m0, i0) = if v1 > v0 { (v1, 1u8) } else { (v0, 0) };
                let (m1, i1) = if v3 > v2 { (v3, 3u8) } else { (v2, 2) };
                let (m, i) = if m1 > m0 { (m1, i1) } else { (m0, i0) };
                let z = a * (sgn * m) + c;
                assert_eq!(codes[ox], i | (((z > 0.0) as u8) << 7), "code {ox}");
                assert_eq!(out[ox], if z > 0.0 { z } else { 0.0 }, "out {ox}");
            }
            let (sa, sb) = winner_sums2x2_row((&r0, &r1), &codes, &grads, (0.05, 1.7));
            let (mut ea, mut eb) = (0.0f32, 0.0f32);
            for ox in 0..n {
                if codes[ox] & 0x80 != 0 {
                    let i = (codes[ox] & 0x7f) as usize;
                    let v = [r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]][i];
                    ea += grads[ox];
                    eb += grads[ox] * ((v - 0.05) * 1.7);
                }
            }
            assert!(
                (sa - ea).abs() < 1e-4 && (sb - eb).abs() < 1e-4,
                "{sa} {ea} {sb} {eb}"
            );
            let (mut t0, mut t1) = (pseudo(2 * n, 4), pseudo(2 * n, 5));
            let (mut e0, mut e1) = (t0.clone(), t1.clone());
            scatter2x2_row((&mut t0, &mut t1), &codes, &grads, 0.3);
            for ox in 0..n {
                if codes[ox] & 0x80 != 0 {
                    let v = 0.3 * grads[ox];
                    match codes[ox] & 0x7f {
                        0 => e0[2 * ox] += v,
                        1 => e0[2 * ox + 1] += v,
                        2 => e1[2 * ox] += v,
                        _ => e1[2 * ox + 1] += v,
                    }
                }
            }
            assert_eq!((t0, t1), (e0, e1));
        }
        let v = pseudo(1000, 6);
        let (s1, s2) = sums(&v);
        let e1: f64 = v.iter().map(|&x| x as f64).sum();
        let e2: f64 = v.iter().map(|&x| (x * x) as f64).sum();
        assert!((s1 - e1).abs() < 1e-3 && (s2 - e2).abs() < 1e-3);
        let mut d = vec![0.0; 1000];
        affine_into(&mut d, &v, 2.0, -1.0);
        assert!(d.iter().zip(&v).all(|(a, b)| *a == 2.0 * b - 1.0));
    }
}
