//! TQ2_0 and I2_S (2-bit ternary codes) against integer activations.
//!
//! Both store a run of 128 values as a 32-byte *half* whose byte `m` holds value `m` of
//! four 32-value runs in its four 2-bit planes (TQ2_0: run `l` at bit `2l`; I2_S: at bit
//! `6 − 2l`), so an octet (256 values: TQ2_0's `qs`, or two I2_S groups) is two halves,
//! and block `k` of the octet is plane `k % 4` of half `k / 4`. Vector `v` of the octet
//! layout needs dword `v` of both halves, each repeated over four lanes: two
//! cross-lane permutes per octet put dwords `0..4` (and `4..8`) of both halves side by
//! side, and one `pshufd` per vector repeats them; a per-lane shift (`vpsrlvd`) and a
//! mask then leave each lane's plane.
//!
//! The codes `c ∈ {0, 1, 2}` are unsigned, as `maddubs` and `vpdpbusd` want, and the
//! weights are `c − 1`: the dot kernels remove the offset exactly in integers as
//! `Σ c·q − S` with the activation block sums (`SHIFT = 0`). Each `maddubs` i16 lane is at
//! most `2·3·127` (code 3 included), so the 8 of an octet sum to below 2¹⁵ before they are
//! widened.
//!
//! The AVX-512 VNNI kernels use [`decode_planes`] without the shift (`MASKED`): lane `k`
//! keeps its codes in place, scaled by `4^l`, at most `3·64 = 192` per byte, which
//! `vpdpbusd` takes as it is; the i32 sums are shifted back exactly
//! ([`super::Format::LANE_SHIFT`]). That saves a shift per vector of a batch-1 matvec,
//! where the decode is a third of the work; batched tiles decode once and reuse, so they
//! take the shifted codes and skip the shift back.
//!
//! I2_S's weight scale is per tensor: the block lanes are `d_a · (P − S)`, and the row
//! sum is multiplied by the scale once.

use std::arch::x86_64::*;

use super::{Decoded, Format, rows_any};
use crate::{QMatrix, activations::Activations};

/// Bit position of plane `l` (the 32-value run `l` of a half) in each byte: TQ2_0 stores
/// run `l` at bit `2l`, I2_S at bit `6 − 2l` (`REV`).
pub(in crate::arch::x86_64) const fn plane_shift(rev: bool, l: usize) -> i32 {
    if rev { 6 - 2 * l as i32 } else { 2 * l as i32 }
}

/// The plane shifts of the 8 block lanes of an octet (block `k` is plane `k % 4`).
pub(in crate::arch::x86_64) const fn octet_shifts(rev: bool) -> [i32; 8] {
    let mut s = [0; 8];
    let mut k = 0;
    while k < 8 {
        s[k] = plane_shift(rev, k % 4);
        k += 1;
    }
    s
}

#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn lanes(s: [i32; 8]) -> __m256i {
    _mm256_setr_epi32(s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7])
}

/// The 8 weight vectors of the 2-bit octet at `p` (two 32-byte halves) in the activation
/// octet order: lane `k` of vector `v` is values `4v..4v + 4` of block `k`, as codes
/// (`!MASKED`) or as codes scaled by `2^shift` in place (`MASKED`).
///
/// # Safety
/// `p` must be readable for 64 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn decode_planes<const REV: bool, const MASKED: bool>(
    p: *const u8,
    w: &mut [__m256i; 8],
) {
    // SAFETY: two 32-byte halves at p and p + 32 (caller); loadu needs no alignment.
    let (a, b) = unsafe {
        (
            _mm256_loadu_si256(p.cast()),
            _mm256_loadu_si256(p.add(32).cast()),
        )
    };
    // Dwords 0..4 of both halves, then dwords 4..8.
    let lo = _mm256_permute2x128_si256::<0x20>(a, b);
    let hi = _mm256_permute2x128_si256::<0x31>(a, b);
    let x = [
        _mm256_shuffle_epi32::<0x00>(lo),
        _mm256_shuffle_epi32::<0x55>(lo),
        _mm256_shuffle_epi32::<0xaa>(lo),
        _mm256_shuffle_epi32::<0xff>(lo),
        _mm256_shuffle_epi32::<0x00>(hi),
        _mm256_shuffle_epi32::<0x55>(hi),
        _mm256_shuffle_epi32::<0xaa>(hi),
        _mm256_shuffle_epi32::<0xff>(hi),
    ];
    let sh = lanes(octet_shifts(REV));
    let three = _mm256_set1_epi8(3);
    if MASKED {
        let mask = _mm256_sllv_epi32(three, sh);
        for v in 0..8 {
            w[v] = _mm256_and_si256(x[v], mask);
        }
    } else {
        for v in 0..8 {
            w[v] = _mm256_and_si256(_mm256_srlv_epi32(x[v], sh), three);
        }
    }
}

/// Tail pair `t` of an I2_S row whose tail is one 32-byte group at `g` (blocks `2t` and
/// `2t + 1` are planes `2t` and `2t + 1`): `w[0]` values 0..16 of both, `w[1]` values
/// 16..32, as codes (for a batch of one too: pairs go without the lane shift).
///
/// # Safety
/// `g` must be readable for 32 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn decode_i2_s_pair(g: *const u8, t: usize, out: &mut Decoded) {
    // SAFETY: 32 bytes at g (caller).
    let (lo, hi) = unsafe {
        (
            _mm256_broadcastsi128_si256(_mm_loadu_si128(g.cast())),
            _mm256_broadcastsi128_si256(_mm_loadu_si128(g.add(16).cast())),
        )
    };
    let (s0, s1) = (plane_shift(true, 2 * t), plane_shift(true, 2 * t + 1));
    let sh = lanes([s0, s0, s0, s0, s1, s1, s1, s1]);
    let three = _mm256_set1_epi8(3);
    out.w[0] = _mm256_and_si256(_mm256_srlv_epi32(lo, sh), three);
    out.w[1] = _mm256_and_si256(_mm256_srlv_epi32(hi, sh), three);
}

/// TQ2_0's f16 scale (bytes 64..66 of the block at `p`) in every lane.
///
/// # Safety
/// `p` must be readable for 66 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn tq2_0_scale(p: *const u8) -> __m256 {
    // SAFETY: bytes 64..66 (caller).
    let h = unsafe { p.add(64).cast::<u16>().read_unaligned() };
    _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
}

/// Declares a 2-bit ternary format for the AVX2 kernels.
macro_rules! ternary_format {
    ($name:ident, $ob:literal, $rev:literal, $tensor:literal) => {
        pub(in crate::arch::x86_64) struct $name;

        impl Format for $name {
            // Octets and pairs are addressed through OCTET_BYTES and decode_pair only.
            const BLOCK_BYTES: usize = 8;
            const OCTET_BYTES: usize = $ob;
            const MIN: bool = false;
            const SHIFT: i32 = 0;
            const OFFSET: bool = true;
            const TENSOR_SCALE: bool = $tensor;
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
                // SAFETY: forwarded from the caller (an octet of $ob bytes).
                unsafe {
                    decode_planes::<$rev, false>(p, &mut out.w);
                    if !$tensor {
                        out.d = tq2_0_scale(p);
                    }
                }
            }

            #[target_feature(enable = "avx2,fma,f16c")]
            #[inline]
            unsafe fn decode_pair<const FULL: bool>(tail: *const u8, t: usize, out: &mut Decoded) {
                // Only I2_S rows have tails (one group of four blocks, two full pairs);
                // TQ2_0 rows are whole octets.
                assert!($tensor && FULL, "no tail pairs");
                // SAFETY: forwarded from the caller: the tail group is 32 bytes.
                unsafe { decode_i2_s_pair(tail, t, out) }
            }

            #[target_feature(enable = "avx2,fma,f16c")]
            #[inline]
            unsafe fn step(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
                super::q4::step_nibbles(acc, w, a)
            }

            #[target_feature(enable = "avx2,fma,f16c")]
            #[inline]
            unsafe fn widen(acc: __m256i) -> __m256i {
                super::q4::widen_i16(acc)
            }
        }
    };
}

ternary_format!(Tq2_0, 66, false, false);
ternary_format!(I2S, 64, true, true);

pub(super) fn rows_tq2_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: this function is reachable only through the AVX2 table, which `kernels()`
    // hands out after detecting AVX2, FMA and F16C.
    unsafe { rows_any::<Tq2_0>(w, row0, x, out) }
}

pub(super) fn rows_i2_s(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: as rows_tq2_0.
    unsafe { rows_any::<I2S>(w, row0, x, out) }
}
