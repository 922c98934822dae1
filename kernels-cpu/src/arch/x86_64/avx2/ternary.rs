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
//!
//! Measured on the 2-core Zen 4 test machine (about 3.3 GHz under load, 2 256-bit
//! `vpdpbusd` per cycle: 6.7 G/s, 213–226 G int8 multiply-adds per second per core,
//! 30–35 GB/s streaming read per thread), weights from DRAM, best of many runs
//! (`benches/benchmarks/ternary.rs`):
//! - batch 1, int8 activations, VNNI: I2_S 19–20 GB/s, TQ2_0 17–19 GB/s per thread
//!   (llama.cpp's `ggml_vec_dot_tq2_0_q8_K`, per-256 activation scales: 16 GB/s). A
//!   batch-1 octet is about 30 vector instructions (8 `vpdpbusd`, 18 to decode, 4 to
//!   finish) on four vector pipes: compute-bound at about 60% of one thread's bandwidth,
//!   so the bandwidth takes both cores. Int16 activations double the `vpdpbusd`: 13–14
//!   GB/s.
//! - batched: decoded once into L1, each (octet, batch row) costs 8 `vpdpbusd` plus 3–4
//!   instructions, so 8 rows are 4.7–5.4× one row at int8 (3.5–4 GB/s per thread, 75% of
//!   the `vpdpbusd` bound) and about 6× at int16.
//! - tried and slower: a 4-row tile for batches (int16 −15%), a single chain per row
//!   (−8%), four chains for a batch of one (no change), TQ1_0 through TQ2_0's plane decode
//!   instead of a transpose (−4%).

use std::arch::x86_64::*;

use super::{Decoded, Format, rows_any, transpose_8x8};
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

/// Trit `n` of every byte of `x`, given `y = (x · 3ⁿ mod 256) ^ 0x80`: the trit is
/// `⌊3·(x·3ⁿ mod 256) / 256⌋`, that is 1 for bytes from 86 and 2 from 171, two signed
/// compares in the `^ 0x80` domain (where multiplying by 3 mod 256 commutes: `3·(z + 128)
/// = 3z + 128 mod 256`).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn trits(y: __m256i) -> __m256i {
    let ge86 = _mm256_cmpgt_epi8(y, _mm256_set1_epi8((85u8 ^ 0x80) as i8));
    let ge171 = _mm256_cmpgt_epi8(y, _mm256_set1_epi8((170u8 ^ 0x80) as i8));
    _mm256_sub_epi8(_mm256_sub_epi8(_mm256_setzero_si256(), ge86), ge171)
}

/// `3·y mod 256` per byte.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn times3(y: __m256i) -> __m256i {
    _mm256_add_epi8(y, _mm256_add_epi8(y, y))
}

/// Decodes the TQ1_0 block (one octet) at `p`: the trits of each 32-value block in
/// plain order, then an 8×8 transpose of 4-byte groups into the activation octet order,
/// and the scale.
///
/// Blocks 0..5 are trits 0..5 of `qs[0..32]`. Blocks 5 and 6 are trits 0, 1 and 2, 3 of
/// `qs[32..48]`; block 7 is trit 4 of `qs[32..48]`, then trit `n` of `qh[j]` for value
/// `240 + 4n + j`: `qh` is repeated over four dwords and dword `n` premultiplied by `3ⁿ`,
/// so that trit 0 of the result reads them in order.
///
/// # Safety
/// `p` must be readable for 54 bytes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn decode_tq1_0(p: *const u8, out: &mut Decoded) {
    let bias = _mm256_set1_epi8(i8::MIN);
    // SAFETY: qs is bytes 0..48, qh 48..52, d 52..54 (caller); loads are unaligned.
    let (q0, q1, qh, h) = unsafe {
        (
            _mm256_loadu_si256(p.cast()),
            _mm_loadu_si128(p.add(32).cast()),
            p.add(48).cast::<i32>().read_unaligned(),
            p.add(52).cast::<u16>().read_unaligned(),
        )
    };
    // qh[j]·3ⁿ in dword n, in the ^ 0x80 domain.
    let z = _mm_xor_si128(_mm_set1_epi32(qh), _mm_set1_epi8(i8::MIN));
    let z3 = _mm_add_epi8(z, _mm_add_epi8(z, z));
    let z9 = _mm_add_epi8(z3, _mm_add_epi8(z3, z3));
    let z27 = _mm_add_epi8(z9, _mm_add_epi8(z9, z9));
    let zh = _mm_blend_epi32::<0b1000>(
        _mm_blend_epi32::<0b0100>(_mm_blend_epi32::<0b0010>(z, z3), z9),
        z27,
    );
    let mut y0 = _mm256_xor_si256(q0, bias);
    let mut y1 = _mm256_set_m128i(zh, _mm_xor_si128(q1, _mm_set1_epi8(i8::MIN)));
    let mut t0 = [_mm256_setzero_si256(); 5];
    let mut t1 = [_mm256_setzero_si256(); 5];
    for n in 0..5 {
        if n > 0 {
            y0 = times3(y0);
            y1 = times3(y1);
        }
        t0[n] = trits(y0);
        t1[n] = trits(y1);
    }
    let blocks = [
        t0[0],
        t0[1],
        t0[2],
        t0[3],
        t0[4],
        _mm256_permute2x128_si256::<0x20>(t1[0], t1[1]),
        _mm256_permute2x128_si256::<0x20>(t1[2], t1[3]),
        _mm256_blend_epi32::<0b1111_0000>(t1[4], t1[0]),
    ];
    // transpose_8x8 takes r[k] = the 4-byte groups of block k; lane k of result v is
    // group v of block k.
    out.w = transpose_8x8(blocks);
    out.d = _mm256_broadcastss_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))));
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
            const FLOAT_OFFSET: bool = true;
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

/// TQ1_0 for the AVX2 and AVX-512 VNNI kernels (`$step`/`$widen`: the integer step).
macro_rules! tq1_0_format {
    ($name:ident, $features:literal, $chains:literal, $step:path, $widen:path) => {
        pub(in crate::arch::x86_64) struct $name;

        impl Format for $name {
            const BLOCK_BYTES: usize = 8;
            const OCTET_BYTES: usize = 54;
            const MIN: bool = false;
            const SHIFT: i32 = 0;
            const OFFSET: bool = true;
            const FLOAT_OFFSET: bool = true;
            const CHAINS: usize = $chains;

            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn decode_row(p: *const u8, out: &mut Decoded) {
                // SAFETY: forwarded from the caller.
                unsafe { Self::decode(p, out) }
            }

            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn decode(p: *const u8, out: &mut Decoded) {
                // SAFETY: forwarded from the caller (a block of 54 bytes).
                unsafe { $crate::arch::x86_64::avx2::ternary::decode_tq1_0(p, out) }
            }

            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn decode_pair<const FULL: bool>(
                _tail: *const u8,
                _t: usize,
                _out: &mut Decoded,
            ) {
                unreachable!("TQ1_0 rows are whole octets");
            }

            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn step(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
                // SAFETY: the CPU has this format's features.
                unsafe { $step(acc, w, a) }
            }

            #[target_feature(enable = $features)]
            #[inline]
            unsafe fn widen(acc: __m256i) -> __m256i {
                // SAFETY: as above.
                unsafe { $widen(acc) }
            }
        }
    };
}

pub(in crate::arch::x86_64) use tq1_0_format;

/// `maddubs` step for AVX2 (`unsafe` only to fit [`tq1_0_format!`]).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn step_maddubs(
    acc: __m256i,
    w: __m256i,
    a: __m256i,
) -> __m256i {
    super::q4::step_nibbles(acc, w, a)
}

/// i16 pairs to i32 for AVX2 (`unsafe` only to fit [`tq1_0_format!`]).
///
/// # Safety
/// The CPU must have AVX2.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) unsafe fn widen_madd(acc: __m256i) -> __m256i {
    super::q4::widen_i16(acc)
}

tq1_0_format!(Tq1_0, "avx2,fma,f16c", 1, step_maddubs, widen_madd);

pub(super) fn rows_tq1_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: this function is reachable only through the AVX2 table, which `kernels()`
    // hands out after detecting AVX2, FMA and F16C.
    unsafe { rows_any::<Tq1_0>(w, row0, x, out) }
}

pub(super) fn rows_tq2_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: this function is reachable only through the AVX2 table, which `kernels()`
    // hands out after detecting AVX2, FMA and F16C.
    unsafe { rows_any::<Tq2_0>(w, row0, x, out) }
}

pub(super) fn rows_i2_s(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: as rows_tq2_0.
    unsafe { rows_any::<I2S>(w, row0, x, out) }
}
