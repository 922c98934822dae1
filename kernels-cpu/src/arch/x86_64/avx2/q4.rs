//! Q4_0 and Q4_1 against int8 activations.
//!
//! Both are "nibble × int8, then `d_a·(d·P + m·S)`" per block: Q4_1 stores `m`, Q4_0's
//! value `d·(q − 8)` is the same with `m = −8·d`. `m·S` is exact in f32 (an f16 times an
//! integer below 2¹²), so the FMA `d·P + m·S` rounds once. The nibbles are unsigned, so
//! `maddubs` takes them as its unsigned operand directly; each of its i16 lanes is at most
//! 2·15·127, and the sum of the 8 vectors of an octet (or the 2 of a pair) stays below
//! 2¹⁵.

use std::arch::x86_64::*;

use super::{Decoded, Format, octet_scales, rows_q8, transpose_4x8};
use crate::{
    QMatrix,
    activations::{Activations, Q8Octet, Q8Pair},
};

/// A decoded pair of 4-bit blocks: nibbles of values 0..16 (`lo`) and 16..32 (`hi`) of
/// both blocks, and per-lane scale and minimum.
#[derive(Clone, Copy)]
pub(in crate::arch::x86_64) struct Nibbles {
    lo: __m256i,
    hi: __m256i,
    d: __m256,
    m: __m256,
}

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

/// The lane products shared by Q4_0 and Q4_1: `acc + d_a · (d·P + m·S)` per lane.
///
/// # Safety
/// `a` must point to a valid pair.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn dot_pair_nibbles(w: Nibbles, a: *const Q8Pair, acc: __m256) -> __m256 {
    // SAFETY: `a` is a valid, 64-byte-aligned Q8Pair: qs is 64 bytes at offset 0, d and s
    // are 8 f32 each at offsets 64 and 96 (32-byte aligned).
    let (a_lo, a_hi, a_d, a_s) = unsafe {
        let qs = (*a).qs.as_ptr().cast::<__m256i>();
        (
            _mm256_load_si256(qs),
            _mm256_load_si256(qs.add(1)),
            _mm256_load_ps((*a).d.as_ptr()),
            _mm256_load_ps((*a).s.as_ptr()),
        )
    };
    let p16 = _mm256_add_epi16(
        _mm256_maddubs_epi16(w.lo, a_lo),
        _mm256_maddubs_epi16(w.hi, a_hi),
    );
    let p = _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, _mm256_set1_epi16(1)));
    let g = _mm256_fmadd_ps(p, w.d, _mm256_mul_ps(w.m, a_s));
    _mm256_fmadd_ps(g, a_d, acc)
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

/// Adds the float part of the octet dot products to `acc[r][b]`, per block lane, from the
/// integer dot products `s32[r][b]`:
/// - `MIN` (Q4_1): `d_a · (d·P + m·S)`, with one rounding for `d·P + m·S` (`m·S` is exact);
/// - otherwise `d_a · d · (P − S·2^SHIFT)`: the weights were stored with an offset of
///   `2^SHIFT` (8 for Q4_0's nibbles, 128 for biased Q8_0 bytes, 0 for none) that the
///   activation sum `S` removes exactly, in integers.
///
/// # Safety
/// Each `a[b]` must point to a valid octet.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn finish<
    const MIN: bool,
    const SHIFT: i32,
    const R: usize,
    const B: usize,
>(
    w: [&Decoded; R],
    a: [*const Q8Octet; B],
    s32: [[__m256i; B]; R],
    acc: &mut [[__m256; B]; R],
) {
    for b in 0..B {
        // SAFETY: d and s of a valid octet, 32-byte aligned.
        let (ad, asum) = unsafe {
            (
                _mm256_load_ps((*a[b]).d.as_ptr()),
                _mm256_load_ps((*a[b]).s.as_ptr()),
            )
        };
        let offset = _mm256_sll_epi32(_mm256_cvtps_epi32(asum), _mm_cvtsi32_si128(SHIFT));
        for r in 0..R {
            let g = if MIN {
                _mm256_fmadd_ps(
                    _mm256_cvtepi32_ps(s32[r][b]),
                    w[r].d,
                    _mm256_mul_ps(w[r].m, asum),
                )
            } else if SHIFT > 0 {
                _mm256_mul_ps(
                    _mm256_cvtepi32_ps(_mm256_sub_epi32(s32[r][b], offset)),
                    w[r].d,
                )
            } else {
                _mm256_mul_ps(_mm256_cvtepi32_ps(s32[r][b]), w[r].d)
            };
            acc[r][b] = _mm256_fmadd_ps(g, ad, acc[r][b]);
        }
    }
}

/// The 4-bit dot kernel: `maddubs` of the nibbles with the activations, summed in i16
/// over the octet (at most 16·15·127 < 2¹⁵), widened once.
///
/// # Safety
/// Each `a[b]` must point to a valid octet.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn dot_nibbles<const MIN: bool, const SHIFT: i32, const R: usize, const B: usize>(
    w: [&Decoded; R],
    a: [*const Q8Octet; B],
    acc: &mut [[__m256; B]; R],
) {
    let mut s16 = [[_mm256_setzero_si256(); B]; R];
    for v in 0..8 {
        for b in 0..B {
            // SAFETY: a[b] is a valid, 64-byte-aligned octet: vector v of qs.
            let av = unsafe { _mm256_load_si256((*a[b]).qs.as_ptr().cast::<__m256i>().add(v)) };
            for r in 0..R {
                s16[r][b] = _mm256_add_epi16(s16[r][b], _mm256_maddubs_epi16(w[r].w[v], av));
            }
        }
    }
    let ones = _mm256_set1_epi16(1);
    let mut s32 = [[_mm256_setzero_si256(); B]; R];
    for r in 0..R {
        for b in 0..B {
            s32[r][b] = _mm256_madd_epi16(s16[r][b], ones);
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { finish::<MIN, SHIFT, R, B>(w, a, s32, acc) }
}

pub(in crate::arch::x86_64) struct Q4_0;

impl Format for Q4_0 {
    const BLOCK_BYTES: usize = 18;
    type Pair = Nibbles;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode(p: *const u8, out: &mut Decoded) {
        // SAFETY: forwarded from the caller.
        unsafe { decode_nibbles::<18, 2, false>(p, out) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot<const R: usize, const B: usize>(
        w: [&Decoded; R],
        a: [*const Q8Octet; B],
        acc: &mut [[__m256; B]; R],
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { dot_nibbles::<false, 3, R, B>(w, a, acc) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load_pair<const FULL: bool>(p: *const u8) -> Nibbles {
        // SAFETY: block 2p is bytes 0..18 (d at 0, qs at 2..18); block 2p+1, read only if
        // FULL, is bytes 18..36 (d at 18, qs at 20..36).
        let (q0, q1, d0, d1) = unsafe {
            (
                load16::<true>(p.add(2)),
                load16::<FULL>(p.add(20)),
                load_f16s::<true, 1>(p),
                load_f16s::<FULL, 1>(p.add(18)),
            )
        };
        let (lo, hi) = split(_mm256_set_m128i(q1, q0));
        let (d, _) = broadcast_pair(d0, d1);
        Nibbles {
            lo,
            hi,
            d,
            m: _mm256_mul_ps(d, _mm256_set1_ps(-8.0)),
        }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_pair(w: Nibbles, a: *const Q8Pair, acc: __m256) -> __m256 {
        // SAFETY: forwarded from the caller.
        unsafe { dot_pair_nibbles(w, a, acc) }
    }
}

pub(in crate::arch::x86_64) struct Q4_1;

impl Format for Q4_1 {
    const BLOCK_BYTES: usize = 20;
    type Pair = Nibbles;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn decode(p: *const u8, out: &mut Decoded) {
        // SAFETY: forwarded from the caller.
        unsafe { decode_nibbles::<20, 4, true>(p, out) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot<const R: usize, const B: usize>(
        w: [&Decoded; R],
        a: [*const Q8Octet; B],
        acc: &mut [[__m256; B]; R],
    ) {
        // SAFETY: forwarded from the caller.
        unsafe { dot_nibbles::<true, 0, R, B>(w, a, acc) }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load_pair<const FULL: bool>(p: *const u8) -> Nibbles {
        // SAFETY: block 2p is bytes 0..20 (d, m at 0..4, qs at 4..20); block 2p+1, read
        // only if FULL, is bytes 20..40 (d, m at 20..24, qs at 24..40).
        let (q0, q1, dm0, dm1) = unsafe {
            (
                load16::<true>(p.add(4)),
                load16::<FULL>(p.add(24)),
                load_f16s::<true, 2>(p),
                load_f16s::<FULL, 2>(p.add(20)),
            )
        };
        let (lo, hi) = split(_mm256_set_m128i(q1, q0));
        let (d, m) = broadcast_pair(dm0, dm1);
        Nibbles { lo, hi, d, m }
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn dot_pair(w: Nibbles, a: *const Q8Pair, acc: __m256) -> __m256 {
        // SAFETY: forwarded from the caller.
        unsafe { dot_pair_nibbles(w, a, acc) }
    }
}

pub(super) fn rows_q4_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: this function is reachable only through the AVX2 table, which `kernels()`
    // hands out after detecting AVX2, FMA and F16C.
    unsafe { rows_q8::<Q4_0>(w, row0, x, out) }
}

pub(super) fn rows_q4_1(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: as rows_q4_0.
    unsafe { rows_q8::<Q4_1>(w, row0, x, out) }
}
