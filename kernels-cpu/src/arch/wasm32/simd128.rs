//! wasm32 `simd128` kernels: Q4_0, Q4_1 and Q8_0 ([`quant`]) and the ternary formats
//! TQ1_0, TQ2_0 and I2_S ([`ternary`]); the float formats, attention and the activation
//! quantizers are the scalar reference.
//!
//! wasm has no run-time feature detection: this table exists only in builds compiled with
//! `-C target-feature=+simd128` (which every current browser and Node runs), and is then
//! the best path.
//!
//! Both families use NEON's octet layout (see `arch/aarch64/neon/quant.rs`): a 16-byte
//! vector `(v, h)` of an activation octet holds values `4v..4v + 4` of blocks
//! `4h..4h + 4`, and the matching weight vector holds, in lane `k`, the four weight values
//! `4v..4v + 4` of block `4h + k`, gathered by a 4×4 dword transpose. simd128 has no 8-bit
//! dot product: `i16x8_extmul_*_i8x16` and a pairwise widening add leave each i32 lane
//! with half of a 4-byte group ([`dot_halves`]), and the halves are added once per octet
//! ([`groups`]). Integer sums are exact, int16 activations' parts are combined as
//! `255·Σw·h + Σw·l` before anything becomes a float, and each weight row is decoded once
//! per call and meets every batch row with the same instructions, so results do not
//! depend on the batch.

mod quant;
mod ternary;

use core::arch::wasm32::*;

use crate::{
    activations::quantize_row,
    dispatch::{KernelPath, Kernels},
    reference,
};

static KERNELS: Kernels = Kernels {
    path: KernelPath::Simd128,
    quantize8: quantize_row::<1>,
    quantize16: quantize_row::<2>,
    f32: reference::rows_f32,
    f16: reference::rows_f16,
    bf16: reference::rows_bf16,
    q8_0: quant::rows_q8_0,
    q4_0: quant::rows_q4_0,
    q4_1: quant::rows_q4_1,
    tq1_0: ternary::rows_tq1_0,
    tq2_0: ternary::rows_tq2_0,
    i2_s: ternary::rows_i2_s,
    attend: crate::attention::attend_scalar,
    ternary_natural: false,
};

/// The simd128 table (this module is compiled only with `simd128` enabled).
pub(crate) fn kernels() -> &'static Kernels {
    &KERNELS
}

/// 16 bytes at `b[at..]`.
#[inline]
fn load16(b: &[u8], at: usize) -> v128 {
    let s = &b[at..at + 16];
    // SAFETY: `s` holds 16 readable bytes; v128_load has no alignment requirement.
    unsafe { v128_load(s.as_ptr().cast()) }
}

/// 16 int8 values at `b[at..]`.
#[inline]
fn load16_i8(b: &[i8], at: usize) -> v128 {
    let s = &b[at..at + 16];
    // SAFETY: `s` holds 16 readable bytes; v128_load has no alignment requirement.
    unsafe { v128_load(s.as_ptr().cast()) }
}

/// 4×4 dword transpose: lane `k` of result `i` is dword `i` of `s[k]`.
#[inline]
fn transpose4(s: [v128; 4]) -> [v128; 4] {
    let t0 = i32x4_shuffle::<0, 4, 1, 5>(s[0], s[1]);
    let t1 = i32x4_shuffle::<2, 6, 3, 7>(s[0], s[1]);
    let t2 = i32x4_shuffle::<0, 4, 1, 5>(s[2], s[3]);
    let t3 = i32x4_shuffle::<2, 6, 3, 7>(s[2], s[3]);
    [
        i64x2_shuffle::<0, 2>(t0, t2),
        i64x2_shuffle::<1, 3>(t0, t2),
        i64x2_shuffle::<0, 2>(t1, t3),
        i64x2_shuffle::<1, 3>(t1, t3),
    ]
}

/// `(lo, hi)` plus the byte products of `w` and `a` (both int8), pairwise widened: lane
/// `i` of `lo` is half of 4-byte group `i / 2`, of `hi` of group `2 + i / 2`.
#[inline]
fn dot_halves(acc: (v128, v128), w: v128, a: v128) -> (v128, v128) {
    (
        i32x4_add(
            acc.0,
            i32x4_extadd_pairwise_i16x8(i16x8_extmul_low_i8x16(w, a)),
        ),
        i32x4_add(
            acc.1,
            i32x4_extadd_pairwise_i16x8(i16x8_extmul_high_i8x16(w, a)),
        ),
    )
}

/// The 4-byte group sums from [`dot_halves`] accumulators.
#[inline]
fn groups((lo, hi): (v128, v128)) -> v128 {
    i32x4_add(
        i32x4_shuffle::<0, 2, 4, 6>(lo, hi),
        i32x4_shuffle::<1, 3, 5, 7>(lo, hi),
    )
}

/// Sum of the 4 i32 lanes.
#[inline]
fn hsum_i32(v: v128) -> i32 {
    i32x4_extract_lane::<0>(v)
        + i32x4_extract_lane::<1>(v)
        + i32x4_extract_lane::<2>(v)
        + i32x4_extract_lane::<3>(v)
}

/// Sum of the 4 f32 lanes, in a fixed order (NEON's: `(0 + 2) + (1 + 3)`).
#[inline]
fn hsum_f32(v: v128) -> f32 {
    (f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<2>(v))
        + (f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<3>(v))
}

/// IEEE half bits (the low 16 bits of each lane) to f32, exactly, subnormals, infinities
/// and NaNs included: the magnitude bits moved into an f32 and rescaled by 2¹¹², and
/// exponent 31 mapped to 255 (simd128 has no half conversion).
#[inline]
fn f16_bits_to_f32(h: v128) -> v128 {
    let sign = i32x4_shl(v128_and(h, u32x4_splat(0x8000)), 16);
    let o = i32x4_shl(v128_and(h, u32x4_splat(0x7fff)), 13);
    let scaled = f32x4_mul(o, f32x4_splat(f32::from_bits(0x7780_0000)));
    let inf_nan = u32x4_ge(o, u32x4_splat(0x0f80_0000));
    let v = v128_bitselect(v128_or(o, u32x4_splat(0x7f80_0000)), scaled, inf_nan);
    v128_or(v, sign)
}

#[cfg(test)]
mod tests {
    use core::arch::wasm32::*;

    #[test]
    fn f16_conversion_is_exact_for_every_bit_pattern() {
        for bits in 0..=u16::MAX {
            let want = half::f16::from_bits(bits).to_f32();
            let got = f32x4_extract_lane::<0>(super::f16_bits_to_f32(u32x4_splat(bits.into())));
            if want.is_nan() {
                assert!(got.is_nan(), "{bits:#06x}");
            } else {
                assert_eq!(got.to_bits(), want.to_bits(), "{bits:#06x}");
            }
        }
    }
}
