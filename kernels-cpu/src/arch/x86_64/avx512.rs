//! AVX-512 VNNI kernels (AVX-512 F, BW, VL and VNNI, on 256-bit vectors).
//!
//! The same octet and pair scheme as the AVX2 kernels (see [`super::avx2`]), with
//! `vpdpbusd` multiplying unsigned weight bytes by signed activation parts and
//! accumulating four products per i32 lane in one instruction: no i16 intermediate, no
//! `madd` widening. Q8_0 weights are made unsigned by flipping their top bit (`w + 128`),
//! and the excess `128·S` is subtracted from the i32 sums before they become floats,
//! exactly. With 32 vector registers, batches of two or more run two weight rows per tile,
//! so each activation load serves both.
//!
//! The weight decoders and the activation quantizers are the AVX2 ones; the float
//! formats have 512-bit kernels of their own ([`float`]).

mod float;

use std::arch::x86_64::*;

use super::{
    avx2,
    tiles::{
        COL_OCTETS, Decoded, Format, Row, act_row, check_q8, finish, octet_bytes, pair_bytes,
        prefetch,
    },
};
use crate::{
    QMatrix,
    activations::{Activations, Parts, row_layout},
    dispatch::{KernelPath, Kernels},
};

static KERNELS: Kernels = Kernels {
    path: KernelPath::Avx512Vnni,
    quantize8: avx2::quantize::quantize_row_q8,
    quantize16: avx2::quantize::quantize_row_q16,
    f32: float::rows_f32,
    f16: float::rows_f16,
    bf16: float::rows_bf16,
    q8_0: rows_q8_0,
    q4_0: rows_q4_0,
    q4_1: rows_q4_1,
    tq1_0: rows_tq1_0,
    tq2_0: rows_tq2_0,
    i2_s: rows_i2_s,
    attend: avx2::attention::attend,
    ternary_natural: true,
};

/// Whether this CPU has every feature the functions of this module are compiled for.
fn detected() -> bool {
    avx2::detected()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512vnni")
}

/// The AVX-512 VNNI table, if this CPU can run it.
pub(crate) fn kernels() -> Option<&'static Kernels> {
    detected().then_some(&KERNELS)
}

/// Q8_0 weights biased to unsigned (`w + 128`, by flipping the top bit); the finish
/// removes the excess `128·S` in integers.
///
/// # Safety
/// `p` must be readable for `8 * 34` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn decode_q8_0(p: *const u8, out: &mut Decoded) {
    // SAFETY: forwarded from the caller.
    unsafe { avx2::q8_0::decode_bytes(p, out) };
    let bias = _mm256_set1_epi8(i8::MIN);
    for v in 0..8 {
        out.w[v] = _mm256_xor_si256(out.w[v], bias);
    }
}

/// A Q8_0 pair biased as [`decode_q8_0`] (a missing second block reads as zero values
/// biased to 128, against zero activations).
///
/// # Safety
/// `p` must be readable for `2 * 34` bytes (`34` if `!FULL`).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn decode_q8_0_pair<const FULL: bool>(p: *const u8, out: &mut Decoded) {
    // SAFETY: forwarded from the caller.
    unsafe { avx2::q8_0::decode_byte_pair::<FULL>(p, out) };
    let bias = _mm256_set1_epi8(i8::MIN);
    out.w[0] = _mm256_xor_si256(out.w[0], bias);
    out.w[1] = _mm256_xor_si256(out.w[1], bias);
}

/// Declares a format with the decoders `$decode` / `$pair` and the `vpdpbusd` step, in
/// two chains per (row, batch row) for int8 activations to hide its 4-cycle latency.
macro_rules! format {
    ($name:ident, $bb:literal, $decode:path, $pair:path, $min:literal, $shift:literal) => {
        struct $name;

        impl Format for $name {
            const BLOCK_BYTES: usize = $bb;
            const MIN: bool = $min;
            const SHIFT: i32 = $shift;
            const CHAINS: usize = 2;

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn decode_row(p: *const u8, out: &mut Decoded) {
                // SAFETY: forwarded from the caller.
                unsafe { Self::decode(p, out) }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn decode(p: *const u8, out: &mut Decoded) {
                // SAFETY: forwarded from the caller.
                unsafe { $decode(p, out) }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn decode_pair<const FULL: bool>(tail: *const u8, t: usize, out: &mut Decoded) {
                // SAFETY: forwarded from the caller; pair t starts at block 2t.
                unsafe { $pair(tail.add(2 * t * $bb), out) }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn step(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
                _mm256_dpbusd_epi32(acc, w, a)
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn widen(acc: __m256i) -> __m256i {
                acc
            }
        }
    };
}

// Q4_0: nibbles offset by 8; Q4_1: stored minimum; Q8_0: bytes biased by 128.
format!(
    Q4_0,
    18,
    avx2::q4::decode_nibbles::<18, 2, false>,
    avx2::q4::decode_nibble_pair::<18, 2, false, FULL>,
    false,
    3
);
format!(
    Q4_1,
    20,
    avx2::q4::decode_nibbles::<20, 4, true>,
    avx2::q4::decode_nibble_pair::<20, 4, true, FULL>,
    true,
    0
);
format!(Q8_0, 34, decode_q8_0, decode_q8_0_pair::<FULL>, false, 7);

/// Declares a 2-bit ternary format (see [`avx2::ternary`]): `vpdpbusd` on the codes, the
/// offset of 1 removed as `P − S`. A batch of one decodes with the planes masked in
/// place (lane `k` scaled by `2^LANE_SHIFT[k]`, at most 192 per byte: one instruction
/// less per vector), the batched tiles, which decode once into L1 and reuse, with the
/// planes shifted down (no shift back per batch row).
macro_rules! ternary_format {
    ($name:ident, $ob:literal, $rev:literal, $tensor:literal) => {
        struct $name;

        impl Format for $name {
            const BLOCK_BYTES: usize = 8;
            const OCTET_BYTES: usize = $ob;
            const MIN: bool = false;
            const SHIFT: i32 = 0;
            const OFFSET: bool = true;
            const FLOAT_OFFSET: bool = true;
            const LANE_SHIFT: Option<[i32; 8]> = Some(avx2::ternary::octet_shifts($rev));
            const TENSOR_SCALE: bool = $tensor;
            const CHAINS: usize = 2;

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn decode_row(p: *const u8, out: &mut Decoded) {
                // SAFETY: forwarded from the caller (an octet of $ob bytes).
                unsafe {
                    avx2::ternary::decode_planes::<$rev, true>(p, &mut out.w);
                    if !$tensor {
                        out.d = avx2::ternary::tq2_0_scale(p);
                    }
                }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn decode(p: *const u8, out: &mut Decoded) {
                // SAFETY: forwarded from the caller (an octet of $ob bytes).
                unsafe {
                    avx2::ternary::decode_planes::<$rev, false>(p, &mut out.w);
                    if !$tensor {
                        out.d = avx2::ternary::tq2_0_scale(p);
                    }
                }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn decode_pair<const FULL: bool>(tail: *const u8, t: usize, out: &mut Decoded) {
                // Only I2_S rows have tails (one group, two full pairs).
                assert!($tensor && FULL, "no tail pairs");
                // SAFETY: forwarded from the caller: the tail group is 32 bytes.
                unsafe { avx2::ternary::decode_i2_s_pair(tail, t, out) }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn step(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
                _mm256_dpbusd_epi32(acc, w, a)
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn widen(acc: __m256i) -> __m256i {
                acc
            }
        }
    };
}

ternary_format!(Tq2_0, 66, false, false);
ternary_format!(I2S, 64, true, true);

/// `vpdpbusd` step (`unsafe` to fit `tq1_0_format!`).
///
/// # Safety
/// The CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn step_dpbusd(acc: __m256i, w: __m256i, a: __m256i) -> __m256i {
    _mm256_dpbusd_epi32(acc, w, a)
}

/// No widening: `vpdpbusd` accumulates in i32 (`unsafe` to fit `tq1_0_format!`).
///
/// # Safety
/// None beyond the features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn widen_none(acc: __m256i) -> __m256i {
    acc
}

avx2::ternary::tq1_0_format!(
    Tq1_0,
    "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c",
    2,
    step_dpbusd,
    widen_none
);

super::tiles::q8_driver!("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", 2);

/// `rows_q` for the precision `x` was prepared with.
///
/// # Safety
/// The CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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

// SAFETY (the functions below): each is reachable only through the table that
// `kernels()` hands out after detecting every feature this module is compiled for.

fn rows_q8_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_any::<Q8_0>(w, row0, x, out) }
}

fn rows_q4_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_any::<Q4_0>(w, row0, x, out) }
}

fn rows_q4_1(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_any::<Q4_1>(w, row0, x, out) }
}

fn rows_tq2_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    if x.natural_row(0).is_some() {
        return super::natural::rows_tq2_0(w, row0, x, out);
    }
    // SAFETY: see above.
    unsafe { rows_any::<Tq2_0>(w, row0, x, out) }
}

fn rows_i2_s(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    if x.natural_row(0).is_some() {
        return super::natural::rows_i2_s(w, row0, x, out);
    }
    // SAFETY: see above.
    unsafe { rows_any::<I2S>(w, row0, x, out) }
}

fn rows_tq1_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_any::<Tq1_0>(w, row0, x, out) }
}
