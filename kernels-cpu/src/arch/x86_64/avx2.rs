//! AVX2 + FMA + F16C kernels.
//!
//! Quantized formats run on the activation layout of [`crate::activations`]: full
//! *octets* of eight blocks, then the last `blocks % 8` in *pairs*, with one int8 part per
//! value (int8 activations) or two (int16: `q = 255·h + l`).
//!
//! - Octet: the 4-byte groups of eight weight blocks are transposed in registers, so one
//!   `maddubs` multiplies group `v` of all eight blocks with activation vector `v`, and
//!   each i32 lane ends up holding one block's integer dot product. For 4-bit weights the
//!   eight `maddubs` results of a part are summed in i16 (at most 16·15·127 < 2¹⁵) and
//!   widened once; the two parts of int16 activations are combined in i32 as
//!   `255·Σw·h + Σw·l`. One int→float conversion and two or three FMAs then serve eight
//!   blocks.
//! - Pair: one register holds the low (or high) nibbles of two blocks; lanes 0..4 belong
//!   to the first block and 4..8 to the second, and the same integer step and float finish
//!   apply.
//!
//! Tiles (see [`super::tiles`]): a batch of one streams one weight row at a time, decoding
//! each item in registers; a larger batch decodes one weight row per column block into
//! L1 and runs it against 4 batch rows at a time (2 weight rows at a time would need more
//! than 16 vector registers). Each (row, batch row) result comes from the same instruction
//! sequence whatever the tile, so results do not depend on the batch or the thread count.

pub(super) mod attention;
pub(super) mod float;
pub(super) mod q4;
pub(super) mod q8_0;
pub(super) mod quantize;
pub(super) mod ternary;

use std::arch::x86_64::*;

use super::tiles::{
    COL_OCTETS, Decoded, Format, Row, act_row, check_q8, finish, octet_bytes, pair_bytes, prefetch,
};
use crate::{
    QMatrix,
    activations::{Activations, Parts, row_layout},
    dispatch::{KernelPath, Kernels},
};

static KERNELS: Kernels = Kernels {
    path: KernelPath::Avx2,
    quantize8: quantize::quantize_row_q8,
    quantize16: quantize::quantize_row_q16,
    f32: float::rows_f32,
    f16: float::rows_f16,
    bf16: float::rows_bf16,
    q8_0: q8_0::rows_q8_0,
    q4_0: q4::rows_q4_0,
    q4_1: q4::rows_q4_1,
    tq1_0: ternary::rows_tq1_0,
    tq2_0: ternary::rows_tq2_0,
    i2_s: ternary::rows_i2_s,
    attend: attention::attend,
    ternary_natural: false,
};

/// Whether this CPU has every feature the functions of this module are compiled for.
pub(crate) fn detected() -> bool {
    is_x86_feature_detected!("avx2")
        && is_x86_feature_detected!("fma")
        && is_x86_feature_detected!("f16c")
}

/// The AVX2 table, if this CPU can run it.
pub(crate) fn kernels() -> Option<&'static Kernels> {
    detected().then_some(&KERNELS)
}

/// Sum of the 8 lanes, in a fixed order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) fn hsum(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// The lane sums of eight vectors, each added in exactly [`hsum`]'s order (so a result
/// does not depend on which of the two computed it), in 21 instructions instead of 48.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) fn hsum8(v: [__m256; 8]) -> [f32; 8] {
    // hsum step 1, `x_i + x_{i+4}`, for two vectors at a time: [v_k | v_{k+4}].
    let mut s4 = [_mm256_setzero_ps(); 4];
    for k in 0..4 {
        s4[k] = _mm256_add_ps(
            _mm256_permute2f128_ps::<0x20>(v[k], v[k + 4]),
            _mm256_permute2f128_ps::<0x31>(v[k], v[k + 4]),
        );
    }
    // Step 2, `s_0 + s_2` and `s_1 + s_3` per 128-bit half.
    let mut s2 = [_mm256_setzero_ps(); 2];
    for k in 0..2 {
        let (a, b) = (s4[2 * k], s4[2 * k + 1]);
        s2[k] = _mm256_add_ps(
            _mm256_shuffle_ps::<0b01_00_01_00>(a, b),
            _mm256_shuffle_ps::<0b11_10_11_10>(a, b),
        );
    }
    // Step 3, `s_0 + s_1`: lanes [v0, v1, v2, v3 | v4, v5, v6, v7].
    let s = _mm256_add_ps(
        _mm256_shuffle_ps::<0b10_00_10_00>(s2[0], s2[1]),
        _mm256_shuffle_ps::<0b11_01_11_01>(s2[0], s2[1]),
    );
    let mut out = [0.0; 8];
    // SAFETY: `out` holds 8 f32; storeu has no alignment need.
    unsafe { _mm256_storeu_ps(out.as_mut_ptr(), s) };
    out
}

/// Transposes 4-byte groups: `r[k]` holds 16 bytes of block `k` (low half) and of block
/// `k + 4` (high half); lane `k` of result `i` is group `i` of block `k`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) fn transpose_4x8(r: [__m256i; 4]) -> [__m256i; 4] {
    let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
    let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
    let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
    let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
    [
        _mm256_unpacklo_epi64(t0, t2),
        _mm256_unpackhi_epi64(t0, t2),
        _mm256_unpacklo_epi64(t1, t3),
        _mm256_unpackhi_epi64(t1, t3),
    ]
}

/// Transposes an 8×8 matrix of 4-byte groups: lane `k` of result `v` is lane `v` of
/// `r[k]`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) fn transpose_8x8(r: [__m256i; 8]) -> [__m256i; 8] {
    let lo = transpose_4x8([r[0], r[1], r[2], r[3]]);
    let hi = transpose_4x8([r[4], r[5], r[6], r[7]]);
    // lo[i] = [group i of blocks 0..4 | group i + 4 of blocks 0..4], hi likewise for 4..8.
    [
        _mm256_permute2x128_si256::<0x20>(lo[0], hi[0]),
        _mm256_permute2x128_si256::<0x20>(lo[1], hi[1]),
        _mm256_permute2x128_si256::<0x20>(lo[2], hi[2]),
        _mm256_permute2x128_si256::<0x20>(lo[3], hi[3]),
        _mm256_permute2x128_si256::<0x31>(lo[0], hi[0]),
        _mm256_permute2x128_si256::<0x31>(lo[1], hi[1]),
        _mm256_permute2x128_si256::<0x31>(lo[2], hi[2]),
        _mm256_permute2x128_si256::<0x31>(lo[3], hi[3]),
    ]
}

/// The 4 bytes at `p` in every 32-bit lane.
///
/// An `asm!` load, opaque to LLVM: written as `_mm256_set1_epi32` plus blends, LLVM folds
/// the eight loads of [`octet_scales`] into chains of `vpinsrd`, which cost a third of the
/// batched kernel's time on Zen 4; `vpbroadcastd` from memory is a plain load.
///
/// # Safety
/// `p` must be readable for 4 bytes (no alignment needed).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn broadcast_u32(p: *const u8) -> __m256i {
    let v: __m256i;
    // SAFETY: reads 4 bytes at `p` (the caller's promise); touches no other state.
    unsafe {
        std::arch::asm!(
            "vpbroadcastd {v}, dword ptr [{p}]",
            p = in(reg) p,
            v = out(ymm_reg) v,
            options(pure, readonly, nostack, preserves_flags),
        );
    }
    v
}

/// The f16 scale (first 2 bytes) and, if `M`, the f16 minimum (next 2 bytes) of eight
/// blocks of `BB` bytes at `p`, as f32 lanes in block order. Without `M` the second
/// vector is zero.
///
/// Eight 4-byte broadcasts and seven blends (`vpgatherdd` is microcoded on AMD cores).
///
/// # Safety
/// `p` must be readable for `8 * BB` bytes, `BB >= 4`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(super) unsafe fn octet_scales<const BB: usize, const M: bool>(
    p: *const u8,
) -> (__m256, __m256) {
    // SAFETY: reads 4 bytes at the start of each of the 8 blocks, inside the 8·BB bytes.
    let mut v = [_mm256_setzero_si256(); 8];
    for (k, v) in v.iter_mut().enumerate() {
        // SAFETY: as above.
        *v = unsafe { broadcast_u32(p.add(k * BB)) };
    }
    let g = _mm256_blend_epi32::<0b1010_1010>(
        _mm256_blend_epi32::<0b1100_1100>(
            _mm256_blend_epi32::<0b1111_0000>(v[0], v[4]),
            _mm256_blend_epi32::<0b1111_0000>(v[2], v[6]),
        ),
        _mm256_blend_epi32::<0b1100_1100>(
            _mm256_blend_epi32::<0b1111_0000>(v[1], v[5]),
            _mm256_blend_epi32::<0b1111_0000>(v[3], v[7]),
        ),
    );
    let d = _mm256_and_si256(g, _mm256_set1_epi32(0xffff));
    let m = if M {
        _mm256_srli_epi32::<16>(g)
    } else {
        _mm256_setzero_si256()
    };
    // [d0..4, m0..4 | d4..8, m4..8] → [d0..8 | m0..8] as 16-bit values.
    let dm = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_packus_epi32(d, m));
    (
        _mm256_cvtph_ps(_mm256_castsi256_si128(dm)),
        _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(dm)),
    )
}

super::tiles::q8_driver!("avx2,fma,f16c", 1);

/// `rows_q` for the precision `x` was prepared with.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn rows_any<K: Format>(
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        if x.parts() == 2 {
            rows_q::<K, 2>(w, row0, x, out)
        } else {
            rows_q::<K, 1>(w, row0, x, out)
        }
    }
}
