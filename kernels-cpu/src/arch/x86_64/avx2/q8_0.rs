//! Q8_0 against int8 activations.
//!
//! Both operands are signed, so the sign trick feeds `maddubs`: `|w|` as the unsigned
//! operand and `a` with the sign of `w`. `|−128|` reads as 128 unsigned, and activations
//! stay within ±127, so each i16 lane stays below 2·128·127 < 2¹⁵; every `maddubs` result
//! is widened to i32 before it is added to another.

use std::arch::x86_64::*;

use super::{Decoded, Format, octet_scales, q4::finish, rows_q8, transpose_8x8};
use crate::{
    QMatrix,
    activations::{Activations, Q8Octet, Q8Pair},
};

/// A decoded Q8_0 pair: values 0..16 (`lo`) and 16..32 (`hi`) of both blocks, their
/// magnitudes (`ulo`, `uhi`), and the per-lane scale.
#[derive(Clone, Copy)]
pub(in crate::arch::x86_64) struct Bytes {
    lo: __m256i,
    hi: __m256i,
    ulo: __m256i,
    uhi: __m256i,
    d: __m256,
}

/// The transposed values of the octet at `p`: lane `k` of vector `v` is values
/// `4v..4v + 4` of block `k`.
///
/// # Safety
/// `p` must be readable for `8 * 34` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn octet_bytes(p: *const u8) -> [__m256i; 8] {
    // SAFETY: the 32 values of block k are bytes k·34 + 2 .. k·34 + 34, in range.
    let mut r = [_mm256_setzero_si256(); 8];
    for (k, r) in r.iter_mut().enumerate() {
        // SAFETY: as above.
        *r = unsafe { _mm256_loadu_si256(p.add(34 * k + 2).cast()) };
    }
    transpose_8x8(r)
}

pub(in crate::arch::x86_64) struct Q8_0;

impl Format for Q8_0 {
    const BLOCK_BYTES: usize = 34;
    type Pair = Bytes;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode(p: *const u8, out: &mut Decoded) {
        // SAFETY: forwarded from the caller.
        out.w = unsafe { octet_bytes(p) };
        // SAFETY: the scales are the first 2 bytes of the 8 blocks.
        (out.d, out.m) = unsafe { octet_scales::<34, false>(p) };
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot<const R: usize, const B: usize>(
        w: [&Decoded; R],
        a: [*const Q8Octet; B],
        acc: &mut [[__m256; B]; R],
    ) {
        let ones = _mm256_set1_epi16(1);
        let mut s32 = [[_mm256_setzero_si256(); B]; R];
        for v in 0..8 {
            let mut u = [_mm256_setzero_si256(); R];
            for r in 0..R {
                u[r] = _mm256_abs_epi8(w[r].w[v]);
            }
            for b in 0..B {
                // SAFETY: a[b] is a valid, 64-byte-aligned octet: vector v of qs.
                let av = unsafe { _mm256_load_si256((*a[b]).qs.as_ptr().cast::<__m256i>().add(v)) };
                for r in 0..R {
                    let p16 = _mm256_maddubs_epi16(u[r], _mm256_sign_epi8(av, w[r].w[v]));
                    s32[r][b] = _mm256_add_epi32(s32[r][b], _mm256_madd_epi16(p16, ones));
                }
            }
        }
        // SAFETY: forwarded from the caller.
        unsafe { finish::<false, 0, R, B>(w, a, s32, acc) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load_pair<const FULL: bool>(p: *const u8) -> Bytes {
        // SAFETY: block 2p is bytes 0..34 (d at 0, qs at 2..34); block 2p+1, read only if
        // FULL, is bytes 34..68 (d at 34, qs at 36..68). All loads are unaligned.
        let (lo0, hi0, d0) = unsafe {
            (
                _mm_loadu_si128(p.add(2).cast()),
                _mm_loadu_si128(p.add(18).cast()),
                p.cast::<u16>().read_unaligned(),
            )
        };
        let (lo1, hi1, d1) = if FULL {
            // SAFETY: as above.
            unsafe {
                (
                    _mm_loadu_si128(p.add(36).cast()),
                    _mm_loadu_si128(p.add(52).cast()),
                    p.add(34).cast::<u16>().read_unaligned(),
                )
            }
        } else {
            (_mm_setzero_si128(), _mm_setzero_si128(), 0)
        };
        let dd = _mm_cvtph_ps(_mm_cvtsi32_si128(
            (u32::from(d0) | (u32::from(d1) << 16)) as i32,
        ));
        let d = _mm256_permutevar8x32_ps(
            _mm256_castps128_ps256(dd),
            _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1),
        );
        let (lo, hi) = (_mm256_set_m128i(lo1, lo0), _mm256_set_m128i(hi1, hi0));
        Bytes {
            lo,
            hi,
            ulo: _mm256_abs_epi8(lo),
            uhi: _mm256_abs_epi8(hi),
            d,
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_pair(w: Bytes, a: *const Q8Pair, acc: __m256) -> __m256 {
        // SAFETY: `a` is a valid, 64-byte-aligned Q8Pair (qs at 0 and 32, d at 64).
        let (a_lo, a_hi, a_d) = unsafe {
            let qs = (*a).qs.as_ptr().cast::<__m256i>();
            (
                _mm256_load_si256(qs),
                _mm256_load_si256(qs.add(1)),
                _mm256_load_ps((*a).d.as_ptr()),
            )
        };
        let ones = _mm256_set1_epi16(1);
        let lo = _mm256_maddubs_epi16(w.ulo, _mm256_sign_epi8(a_lo, w.lo));
        let hi = _mm256_maddubs_epi16(w.uhi, _mm256_sign_epi8(a_hi, w.hi));
        let p = _mm256_add_epi32(_mm256_madd_epi16(lo, ones), _mm256_madd_epi16(hi, ones));
        let g = _mm256_mul_ps(_mm256_cvtepi32_ps(p), w.d);
        _mm256_fmadd_ps(g, a_d, acc)
    }
}

pub(super) fn rows_q8_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: this function is reachable only through the AVX2 table, which `kernels()`
    // hands out after detecting AVX2, FMA and F16C.
    unsafe { rows_q8::<Q8_0>(w, row0, x, out) }
}
