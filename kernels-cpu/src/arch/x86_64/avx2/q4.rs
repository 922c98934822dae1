//! Q4_0 and Q4_1 against integer activations.
//!
//! Both are "nibble × int8 part, then `d_a·(d·P + m·S)`" per block: Q4_1 stores `m`, and
//! Q4_0's value `d·(q − 8)` is `d·(P − 8·S)` with the offset removed in integers. The
//! nibbles are unsigned, so `maddubs` takes them as its unsigned operand directly; each of
//! its i16 lanes is at most 2·15·127, and the sum of the 8 vectors of an octet (or the 2
//! of a pair) stays below 2¹⁵.

use std::arch::x86_64::*;

use super::{Decoded, Format, octet_scales, rows_any, transpose_4x8};
use crate::{QMatrix, activations::Activations};

/// Splits 16 + 16 packed bytes into low and high nibbles.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn split(q: __m256i) -> (__m256i, __m256i) {
    let m4 = _mm256_set1_epi8(0x0F);
    (
        _mm256_and_si256(q, m4),
        _mm256_and_si256(_mm256_srli_epi16::<4>(q), m4),
    )
}

/// Reads 16 bytes (or zeros).
///
/// # Safety
/// If `READ`, `p` must be readable for 16 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load16<const READ: bool>(p: *const u8) -> __m128i {
    if READ {
        // SAFETY: the caller guarantees 16 readable bytes; loadu has no alignment need.
        unsafe { _mm_loadu_si128(p.cast()) }
    } else {
        _mm_setzero_si128()
    }
}

/// Reads the `N` (1 or 2) f16 values at `p` into the low lanes (or zeros).
///
/// # Safety
/// If `READ`, `p` must be readable for `2 * N` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn load_f16s<const READ: bool, const N: usize>(p: *const u8) -> __m128i {
    if !READ {
        return _mm_setzero_si128();
    }
    // SAFETY: the caller guarantees 2·N readable bytes; read_unaligned needs no alignment.
    let bits = unsafe {
        if N == 2 {
            p.cast::<u32>().read_unaligned()
        } else {
            u32::from(p.cast::<u16>().read_unaligned())
        }
    };
    _mm_cvtsi32_si128(bits as i32)
}

/// The f16 lanes `[x0, y0, _, _]` of `a` and `b` as f32 lanes `([x_a; 4] ++ [x_b; 4],
/// [y_a; 4] ++ [y_b; 4])`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn broadcast_pair(a: __m128i, b: __m128i) -> (__m256, __m256) {
    let f = _mm256_cvtph_ps(_mm_unpacklo_epi64(a, b));
    (
        _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4)),
        _mm256_permutevar8x32_ps(f, _mm256_setr_epi32(1, 1, 1, 1, 5, 5, 5, 5)),
    )
}

/// Decodes the octet at `p` (blocks of `BB` bytes whose 16 nibble bytes start at `QS`):
/// `w[i]` holds the low nibbles of dword `i` of each block (values `4i..4i + 4`), `w[4 + i]`
/// the high nibbles (values `16 + 4i..`); `m` is the stored minimum (`M`) or zero (Q4_0's
/// offset of 8 is removed in integers by the dot kernel).
///
/// # Safety
/// `p` must be readable for `8 * BB` bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn decode_nibbles<
    const BB: usize,
    const QS: usize,
    const M: bool,
>(
    p: *const u8,
    out: &mut Decoded,
) {
    // SAFETY: the nibble bytes of blocks k and k + 4 (16 bytes at k·BB + QS) are in range.
    let mut r = [_mm256_setzero_si256(); 4];
    for (k, r) in r.iter_mut().enumerate() {
        // SAFETY: as above.
        *r = unsafe {
            _mm256_set_m128i(
                _mm_loadu_si128(p.add((k + 4) * BB + QS).cast()),
                _mm_loadu_si128(p.add(k * BB + QS).cast()),
            )
        };
    }
    let g = transpose_4x8(r);
    let m4 = _mm256_set1_epi8(0x0F);
    for i in 0..4 {
        out.w[i] = _mm256_and_si256(g[i], m4);
        out.w[4 + i] = _mm256_and_si256(_mm256_srli_epi16::<4>(g[i]), m4);
    }
    // SAFETY: the scales are the first bytes of the 8 blocks.
    let (d, m) = unsafe { octet_scales::<BB, M>(p) };
    out.d = d;
    out.m = if M { m } else { _mm256_setzero_ps() };
}

/// Decodes the blocks at `p` (and `p + BB` if `FULL`) as a pair: `w[0]` the low nibbles
/// (values 0..16) of both blocks, `w[1]` the high nibbles, and per-lane scale and minimum
/// (zero unless `M`).
///
/// # Safety
/// `p` must be readable for `2 * BB` bytes (`BB` if `!FULL`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn decode_nibble_pair<
    const BB: usize,
    const QS: usize,
    const M: bool,
    const FULL: bool,
>(
    p: *const u8,
    out: &mut Decoded,
) {
    // SAFETY: block 0 is bytes 0..BB (scale at 0, minimum at 2 if M, nibbles at QS); block
    // 1, read only if FULL, is bytes BB..2·BB.
    let (q0, q1, h0, h1) = unsafe {
        if M {
            (
                load16::<true>(p.add(QS)),
                load16::<FULL>(p.add(BB + QS)),
                load_f16s::<true, 2>(p),
                load_f16s::<FULL, 2>(p.add(BB)),
            )
        } else {
            (
                load16::<true>(p.add(QS)),
                load16::<FULL>(p.add(BB + QS)),
                load_f16s::<true, 1>(p),
                load_f16s::<FULL, 1>(p.add(BB)),
            )
        }
    };
    let (lo, hi) = split(_mm256_set_m128i(q1, q0));
    out.w[0] = lo;
    out.w[1] = hi;
    let (d, m) = broadcast_pair(h0, h1);
    out.d = d;
    out.m = if M { m } else { _mm256_setzero_ps() };
}

/// `acc` plus `maddubs(w, a)`, in i16 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) fn step_nibbles(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
    _mm256_add_epi16(acc, _mm256_maddubs_epi16(w, a))
}

/// i16 lane pairs summed into i32 lanes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) fn widen_i16(acc: __m256i) -> __m256i {
    _mm256_madd_epi16(acc, _mm256_set1_epi16(1))
}

/// Declares an AVX2 4-bit format.
macro_rules! nibble_format {
    ($name:ident, $bb:literal, $qs:literal, $min:literal, $shift:literal) => {
        pub(in crate::arch::x86_64) struct $name;

        impl Format for $name {
            const BLOCK_BYTES: usize = $bb;
            const MIN: bool = $min;
            const SHIFT: i32 = $shift;
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
                unsafe { decode_nibbles::<$bb, $qs, $min>(p, out) }
            }

            #[target_feature(enable = "avx2,fma,f16c")]
            #[inline]
            unsafe fn decode_pair<const FULL: bool>(tail: *const u8, t: usize, out: &mut Decoded) {
                // SAFETY: forwarded from the caller; pair t starts at block 2t.
                unsafe { decode_nibble_pair::<$bb, $qs, $min, FULL>(tail.add(2 * t * $bb), out) }
            }

            #[target_feature(enable = "avx2,fma,f16c")]
            #[inline]
            unsafe fn step(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
                step_nibbles(acc, w, a)
            }

            #[target_feature(enable = "avx2,fma,f16c")]
            #[inline]
            unsafe fn widen(acc: __m256i) -> __m256i {
                widen_i16(acc)
            }
        }
    };
}

// Q4_0: nibbles offset by 8, removed as 8·S; Q4_1: stored minimum.
nibble_format!(Q4_0, 18, 2, false, 3);
nibble_format!(Q4_1, 20, 4, true, 0);

pub(super) fn rows_q4_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: this function is reachable only through the AVX2 table, which `kernels()`
    // hands out after detecting AVX2, FMA and F16C.
    unsafe { rows_any::<Q4_0>(w, row0, x, out) }
}

pub(super) fn rows_q4_1(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: as rows_q4_0.
    unsafe { rows_any::<Q4_1>(w, row0, x, out) }
}
