//! Q8_0 against integer activations.
//!
//! Both operands are signed, so the sign trick feeds `maddubs`: `|w|` as the unsigned
//! operand and `a` with the sign of `w`. `|−128|` reads as 128 unsigned, and activation
//! parts stay within ±127 (never −128, which `sign` cannot negate), so each i16 lane stays
//! below 2·128·127 < 2¹⁵; every `maddubs` result is widened to i32 before it is added to
//! another.

use std::arch::x86_64::*;

use super::{Decoded, Format, octet_scales, rows_any, transpose_8x8};
use crate::{QMatrix, activations::Activations};

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

/// Decodes the octet at `p`: the transposed values and the scales.
///
/// # Safety
/// `p` must be readable for `8 * 34` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn decode_bytes(p: *const u8, out: &mut Decoded) {
    // SAFETY: forwarded from the caller.
    out.w = unsafe { octet_bytes(p) };
    // SAFETY: the scales are the first 2 bytes of the 8 blocks.
    (out.d, out.m) = unsafe { octet_scales::<34, false>(p) };
}

/// Decodes the blocks at `p` (and `p + 34` if `FULL`) as a pair: `w[0]` values 0..16 of
/// both blocks, `w[1]` values 16..32, and the per-lane scale.
///
/// # Safety
/// `p` must be readable for `2 * 34` bytes (`34` if `!FULL`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn decode_byte_pair<const FULL: bool>(
    p: *const u8,
    out: &mut Decoded,
) {
    // SAFETY: block 0 is bytes 0..34 (d at 0, qs at 2..34); block 1, read only if FULL,
    // is bytes 34..68 (d at 34, qs at 36..68). All loads are unaligned.
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
    out.d = _mm256_permutevar8x32_ps(
        _mm256_castps128_ps256(dd),
        _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1),
    );
    out.m = _mm256_setzero_ps();
    out.w[0] = _mm256_set_m128i(lo1, lo0);
    out.w[1] = _mm256_set_m128i(hi1, hi0);
}

pub(in crate::arch::x86_64) struct Q8_0;

impl Format for Q8_0 {
    const BLOCK_BYTES: usize = 34;
    const MIN: bool = false;
    const SHIFT: i32 = 0;
    const CHAINS: usize = 1;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode_row(p: *const u8, out: &mut Decoded) {
        // SAFETY: forwarded from the caller.
        unsafe { Self::decode(p, out) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode(p: *const u8, out: &mut Decoded) {
        // SAFETY: forwarded from the caller.
        unsafe { decode_bytes(p, out) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode_pair<const FULL: bool>(tail: *const u8, t: usize, out: &mut Decoded) {
        // SAFETY: forwarded from the caller; pair t starts at block 2t.
        unsafe { decode_byte_pair::<FULL>(tail.add(2 * t * 34), out) }
    }

    /// The sign trick: `maddubs(|w|, sign(a, w))`, widened to i32 at once.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn step(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
        let p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(w), _mm256_sign_epi8(a, w));
        _mm256_add_epi32(acc, _mm256_madd_epi16(p16, _mm256_set1_epi16(1)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn widen(acc: __m256i) -> __m256i {
        acc
    }
}

pub(super) fn rows_q8_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: this function is reachable only through the AVX2 table, which `kernels()`
    // hands out after detecting AVX2, FMA and F16C.
    unsafe { rows_any::<Q8_0>(w, row0, x, out) }
}
