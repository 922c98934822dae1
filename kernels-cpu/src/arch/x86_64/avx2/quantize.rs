//! The activation quantizers (int8 and int16), bit-identical to the scalar one
//! ([`crate::activations::quantize_row`]): the scale is the same f32 division, `roundf`
//! is computed exactly as truncation plus a ±1 step when the (exact) fraction reaches
//! ±0.5, and int16 values are split into their parts with the same integer operations.

use std::arch::x86_64::*;

use super::transpose_8x8;
use crate::activations::{Q16_MAX, QK, QOctet, QPair, row_layout};

/// `roundf(v)` per lane, exact for `|v| < 2³¹`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn round_half_away(v: __m256) -> __m256i {
    let t = _mm256_cvttps_epi32(v);
    let frac = _mm256_sub_ps(v, _mm256_cvtepi32_ps(t));
    // A true comparison is all ones (−1): subtracting it steps up, adding it steps down.
    let up = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GE_OQ>(frac, _mm256_set1_ps(0.5)));
    let down = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_LE_OQ>(frac, _mm256_set1_ps(-0.5)));
    _mm256_add_epi32(_mm256_sub_epi32(t, up), down)
}

/// 32 i32 lanes (four vectors, in value order) as 32 bytes in value order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn pack_bytes(q: [__m256i; 4]) -> __m256i {
    // packs interleave 128-bit lanes; the final permute restores value order.
    let b = _mm256_packs_epi16(
        _mm256_packs_epi32(q[0], q[1]),
        _mm256_packs_epi32(q[2], q[3]),
    );
    _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
}

/// Quantizes one block of 32 values to `±qmax` (127 for `P = 1`, `Q16_MAX` for `P = 2`):
/// (each part's bytes in value order, scale, sum).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn block<const P: usize>(x: &[f32; QK]) -> ([__m256i; P], f32, i32) {
    // SAFETY: x holds 32 f32, read as four unaligned 8-lane vectors.
    let mut v = [_mm256_setzero_ps(); 4];
    for (i, v) in v.iter_mut().enumerate() {
        // SAFETY: as above.
        *v = unsafe { _mm256_loadu_ps(x.as_ptr().add(8 * i)) };
    }
    let abs = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff));
    let m = _mm256_max_ps(
        _mm256_max_ps(_mm256_and_ps(v[0], abs), _mm256_and_ps(v[1], abs)),
        _mm256_max_ps(_mm256_and_ps(v[2], abs), _mm256_and_ps(v[3], abs)),
    );
    let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
    let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    let amax = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
    let qmax = if P == 1 { 127.0 } else { Q16_MAX as f32 };
    let d = amax / qmax;
    let id = _mm256_set1_ps(if d != 0.0 { 1.0 / d } else { 0.0 });
    let mut q = [_mm256_setzero_si256(); 4];
    for i in 0..4 {
        q[i] = round_half_away(_mm256_mul_ps(v[i], id));
    }
    let sum = _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
    let sum = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let sum = _mm_add_epi32(sum, _mm_unpackhi_epi64(sum, sum));
    let sum = _mm_cvtsi128_si32(_mm_add_epi32(sum, _mm_shuffle_epi32::<1>(sum)));
    let mut parts = [_mm256_setzero_si256(); P];
    if P == 1 {
        parts[0] = pack_bytes(q);
    } else {
        // q = 255·h + l with h = round(q / 255), as `layout::split`: q / 255 is never
        // within 0.001 of a tie, and |q| <= 32512, so the rounded f32 product is exact.
        let mut h = q;
        let mut l = q;
        for i in 0..4 {
            let t = _mm256_mul_ps(_mm256_cvtepi32_ps(q[i]), _mm256_set1_ps(1.0 / 255.0));
            h[i] = _mm256_cvtps_epi32(_mm256_round_ps::<
                { _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC },
            >(t));
            l[i] = _mm256_sub_epi32(q[i], _mm256_mullo_epi32(h[i], _mm256_set1_epi32(255)));
        }
        parts[0] = pack_bytes(h);
        parts[P - 1] = pack_bytes(l);
    }
    (parts, d, sum)
}

#[target_feature(enable = "avx2,fma,f16c")]
fn quantize_impl<const P: usize>(x: &[f32], octets: &mut [QOctet<P>], pairs: &mut [QPair<P>]) {
    let blocks = x.as_chunks::<QK>().0;
    assert_eq!(
        (octets.len(), pairs.len()),
        row_layout(blocks.len()),
        "activation layout"
    );
    let (head, tail) = blocks.split_at(8 * octets.len());
    for (o, blks) in octets.iter_mut().zip(head.chunks_exact(8)) {
        let mut q = [[_mm256_setzero_si256(); 8]; P];
        for (k, blk) in blks.iter().enumerate() {
            let (v, d, sum) = block::<P>(blk);
            for p in 0..P {
                q[p][k] = v[p];
            }
            o.d[k] = d;
            o.s[k] = sum as f32;
        }
        for p in 0..P {
            for (v, t) in transpose_8x8(q[p]).into_iter().enumerate() {
                // SAFETY: qs[p] has 256 bytes, 64-byte aligned; vector v is bytes
                // 32v..32v+32.
                unsafe { _mm256_store_si256(o.qs[p].as_mut_ptr().cast::<__m256i>().add(v), t) };
            }
        }
    }
    for (t, pair) in pairs.iter_mut().enumerate() {
        *pair = QPair::ZERO;
        for h in 0..2 {
            let Some(blk) = tail.get(2 * t + h) else {
                continue;
            };
            let (q, d, sum) = block::<P>(blk);
            for p in 0..P {
                // SAFETY: qs[p] has 64 bytes; the stores write 16 bytes at 16·h and
                // 32 + 16·h.
                unsafe {
                    let qs = pair.qs[p].as_mut_ptr();
                    _mm_storeu_si128(qs.add(16 * h).cast(), _mm256_castsi256_si128(q[p]));
                    _mm_storeu_si128(
                        qs.add(32 + 16 * h).cast(),
                        _mm256_extracti128_si256::<1>(q[p]),
                    );
                }
            }
            pair.d[4 * h..4 * h + 4].fill(d);
            pair.s[4 * h] = sum as f32;
        }
    }
}

pub(in crate::arch::x86_64) fn quantize_row_q8(
    x: &[f32],
    octets: &mut [QOctet<1>],
    pairs: &mut [QPair<1>],
) {
    // SAFETY: this function is reachable only through the AVX2 and AVX-512 tables, which
    // are handed out after detecting (at least) AVX2, FMA and F16C.
    unsafe { quantize_impl(x, octets, pairs) }
}

pub(in crate::arch::x86_64) fn quantize_row_q16(
    x: &[f32],
    octets: &mut [QOctet<2>],
    pairs: &mut [QPair<2>],
) {
    // SAFETY: as quantize_row_q8.
    unsafe { quantize_impl(x, octets, pairs) }
}
