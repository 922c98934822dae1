//! NEON kernels, with and without the `dotprod` extension (SDOT).
//!
//! Quantized formats run on the octet layout of [`crate::activations`]: a 128-bit register
//! holds one 4-byte group of four blocks, so a 4-byte dot product per i32 lane (SDOT, or
//! SMULL + two pairwise adds without `dotprod`) leaves each lane with one block's integer
//! dot product, and one conversion and two FMAs serve four blocks. Each weight row is
//! decoded once per call into a scratch buffer and then meets every batch row, and a
//! (row, batch row) result is always computed by the same instruction sequence, so it does
//! not depend on the batch size or the thread count.
//!
//! Int16 activations are two int8 parts per value (`q = 255·h + l`): each part gets its own
//! dot-product chain, and the two are combined in integers (`255·Σw·h + Σw·l`) before the
//! scales are applied.
//!
//! F16 weights are widened to f32 in integer steps ([`f16_bits_to_f32`]: `float16x4_t`
//! is not stable in Rust yet), and the activation quantizers are the scalar ones
//! (bit-exact by construction).

mod attention;
mod float;
mod quant;
mod ternary;

use std::arch::aarch64::*;

use crate::{
    activations::quantize_row,
    dispatch::{KernelPath, Kernels},
};

static KERNELS: Kernels = Kernels {
    path: KernelPath::Neon,
    quantize8: quantize_row::<1>,
    quantize16: quantize_row::<2>,
    f32: float::rows_f32,
    f16: float::rows_f16,
    bf16: float::rows_bf16,
    q8_0: quant::plain::rows_q8_0,
    q4_0: quant::plain::rows_q4_0,
    q4_1: quant::plain::rows_q4_1,
    tq1_0: ternary::plain::rows_tq1_0,
    tq2_0: ternary::plain::rows_tq2_0,
    i2_s: ternary::plain::rows_i2_s,
    attend: attention::attend,
    ternary_natural: false,
};

static KERNELS_DOTPROD: Kernels = Kernels {
    path: KernelPath::NeonDotprod,
    quantize8: quantize_row::<1>,
    quantize16: quantize_row::<2>,
    f32: float::rows_f32,
    f16: float::rows_f16,
    bf16: float::rows_bf16,
    q8_0: quant::dotprod::rows_q8_0,
    q4_0: quant::dotprod::rows_q4_0,
    q4_1: quant::dotprod::rows_q4_1,
    tq1_0: ternary::dotprod::rows_tq1_0,
    tq2_0: ternary::dotprod::rows_tq2_0,
    i2_s: ternary::dotprod::rows_i2_s,
    attend: attention::attend,
    ternary_natural: false,
};

/// The NEON table, if this CPU can run it.
pub(crate) fn kernels() -> Option<&'static Kernels> {
    std::arch::is_aarch64_feature_detected!("neon").then_some(&KERNELS)
}

/// The NEON + dotprod table, if this CPU can run it.
pub(crate) fn kernels_dotprod() -> Option<&'static Kernels> {
    (std::arch::is_aarch64_feature_detected!("neon")
        && std::arch::is_aarch64_feature_detected!("dotprod"))
    .then_some(&KERNELS_DOTPROD)
}

/// `acc + Σ` of the products of 4-byte groups, per i32 lane, without `dotprod`: SMULL to
/// i16 (at most 128·128), then two pairwise widening adds.
#[target_feature(enable = "neon")]
#[inline]
fn dot4_plain(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let lo = vpaddlq_s16(vmull_s8(vget_low_s8(a), vget_low_s8(b)));
    let hi = vpaddlq_s16(vmull_high_s8(a, b));
    vaddq_s32(acc, vpaddq_s32(lo, hi))
}

/// `acc + Σ` of the products of 4-byte groups, per i32 lane, with SDOT.
///
/// `vdotq_s32` is not stable in Rust yet (rust-lang/rust#117224), hence the one-instruction
/// `asm!`.
#[target_feature(enable = "neon,dotprod")]
#[inline]
fn dot4_sdot(acc: int32x4_t, a: int8x16_t, b: int8x16_t) -> int32x4_t {
    let mut acc = acc;
    // SAFETY: SDOT only reads and writes the three vector registers; the CPU has
    // `dotprod` (this function's target features, checked before its table is handed out).
    unsafe {
        std::arch::asm!(
            "sdot {acc:v}.4s, {a:v}.16b, {b:v}.16b",
            acc = inout(vreg) acc,
            a = in(vreg) a,
            b = in(vreg) b,
            options(pure, nomem, nostack, preserves_flags),
        );
    }
    acc
}

/// f16 bit patterns (low 16 bits of each lane) to f32, exactly: the exponent and
/// mantissa shifted into place and rescaled by 2¹¹² (exact, subnormals included), with
/// infinities and NaNs fixed up and the sign put back.
#[target_feature(enable = "neon")]
#[inline]
fn f16_bits_to_f32(h: uint32x4_t) -> float32x4_t {
    let sign = vshlq_n_u32::<16>(vandq_u32(h, vdupq_n_u32(0x8000)));
    let o = vshlq_n_u32::<13>(vandq_u32(h, vdupq_n_u32(0x7fff)));
    let scaled = vreinterpretq_u32_f32(vmulq_f32(
        vreinterpretq_f32_u32(o),
        vdupq_n_f32(f32::from_bits(0x7780_0000)),
    ));
    let inf_nan = vcgeq_u32(o, vdupq_n_u32(0x0f80_0000));
    let v = vbslq_u32(inf_nan, vorrq_u32(o, vdupq_n_u32(0x7f80_0000)), scaled);
    vreinterpretq_f32_u32(vorrq_u32(v, sign))
}

/// Sum of the 4 lanes, in a fixed order.
#[target_feature(enable = "neon")]
#[inline]
fn hsum(v: float32x4_t) -> f32 {
    let s = vadd_f32(vget_low_f32(v), vget_high_f32(v));
    vget_lane_f32::<0>(s) + vget_lane_f32::<1>(s)
}

#[cfg(test)]
mod tests {
    use std::arch::aarch64::*;

    #[test]
    fn f16_conversion_is_exact_for_every_bit_pattern() {
        for bits in 0..=u16::MAX {
            let want = half::f16::from_bits(bits).to_f32();
            // SAFETY: NEON is baseline on aarch64.
            let got = unsafe {
                vgetq_lane_f32::<0>(super::f16_bits_to_f32(vdupq_n_u32(u32::from(bits))))
            };
            assert!(
                got.to_bits() == want.to_bits() || (got.is_nan() && want.is_nan()),
                "f16 {bits:#06x}: {got:e} vs {want:e}"
            );
        }
    }
}
