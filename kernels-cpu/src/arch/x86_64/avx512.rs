//! AVX-512 VNNI kernels (AVX-512 F, BW, VL and VNNI, on 256-bit vectors).
//!
//! The same octet scheme as the AVX2 kernels (see [`super::avx2`]), with `vpdpbusd`
//! multiplying unsigned weight bytes by signed activation bytes and accumulating four
//! products per i32 lane in one instruction: no i16 intermediate, no `madd` widening.
//! Q8_0 weights are made unsigned by flipping their top bit (`w + 128`), and the excess
//! `128·S` is subtracted from the i32 sums before they become floats, exactly. With 32 vector registers, batches of two or more run
//! two weight rows per tile, so each activation load serves both.
//!
//! The pair tail, the float formats and the activation quantizer are the AVX2 ones.

use std::arch::x86_64::*;

use super::{
    avx2::{self, octet_scales},
    tiles::{COL_OCTETS, Decoded, Format, Row, check_q8},
};
use crate::{
    QMatrix,
    activations::{Activations, Q8Octet, Q8Pair, row_layout},
    dispatch::{KernelPath, Kernels},
};

static KERNELS: Kernels = Kernels {
    path: KernelPath::Avx512Vnni,
    quantize: avx2::quantize::quantize_row_q8,
    f32: avx2::float::rows_f32,
    f16: avx2::float::rows_f16,
    bf16: avx2::float::rows_bf16,
    q8_0: rows_q8_0,
    q4_0: rows_q4_0,
    q4_1: rows_q4_1,
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

/// The dot kernel of every format: `vpdpbusd` of the unsigned weight bytes with the
/// signed activations, in two chains per (row, batch row) to hide its 4-cycle latency.
///
/// # Safety
/// Each `a[b]` must point to a valid octet.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn dot_bytes<const MIN: bool, const SHIFT: i32, const R: usize, const B: usize>(
    w: [&Decoded; R],
    a: [*const Q8Octet; B],
    acc: &mut [[__m256; B]; R],
) {
    let mut sums = [[[_mm256_setzero_si256(); B]; R]; 2];
    for v in 0..8 {
        for b in 0..B {
            // SAFETY: a[b] is a valid, 64-byte-aligned octet: vector v of qs.
            let av = unsafe { _mm256_load_si256((*a[b]).qs.as_ptr().cast::<__m256i>().add(v)) };
            for r in 0..R {
                sums[v / 4][r][b] = _mm256_dpbusd_epi32(sums[v / 4][r][b], w[r].w[v], av);
            }
        }
    }
    let mut s32 = [[_mm256_setzero_si256(); B]; R];
    for r in 0..R {
        for b in 0..B {
            s32[r][b] = _mm256_add_epi32(sums[0][r][b], sums[1][r][b]);
        }
    }
    // SAFETY: forwarded from the caller.
    unsafe { avx2::q4::finish::<MIN, SHIFT, R, B>(w, a, s32, acc) }
}

/// Q8_0 weights biased to unsigned (`w + 128`, by flipping the top bit); the dot kernel
/// removes the excess `128·S` in integers.
///
/// # Safety
/// `p` must be readable for `8 * 34` bytes.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
unsafe fn decode_q8_0(p: *const u8, out: &mut Decoded) {
    // SAFETY: forwarded from the caller.
    let g = unsafe { avx2::q8_0::octet_bytes(p) };
    let bias = _mm256_set1_epi8(i8::MIN);
    for v in 0..8 {
        out.w[v] = _mm256_xor_si256(g[v], bias);
    }
    // SAFETY: the scales are the first 2 bytes of the 8 blocks.
    let (d, _) = unsafe { octet_scales::<34, false>(p) };
    out.d = d;
    out.m = _mm256_setzero_ps();
}

/// Declares a format with the decoder `$decode`, the VNNI dot kernel and the AVX2 pairs.
macro_rules! format {
    ($name:ident, $avx2:ty, $bb:literal, $decode:path, $min:literal, $shift:literal) => {
        struct $name;

        impl Format for $name {
            const BLOCK_BYTES: usize = $bb;
            type Pair = <$avx2 as Format>::Pair;

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn decode(p: *const u8, out: &mut Decoded) {
                // SAFETY: forwarded from the caller.
                unsafe { $decode(p, out) }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn dot<const R: usize, const B: usize>(
                w: [&Decoded; R],
                a: [*const Q8Octet; B],
                acc: &mut [[__m256; B]; R],
            ) {
                // SAFETY: forwarded from the caller.
                unsafe { dot_bytes::<$min, $shift, R, B>(w, a, acc) }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn load_pair<const FULL: bool>(p: *const u8) -> Self::Pair {
                // SAFETY: forwarded from the caller.
                unsafe { <$avx2 as Format>::load_pair::<FULL>(p) }
            }

            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
            #[inline]
            unsafe fn dot_pair(w: Self::Pair, a: *const Q8Pair, acc: __m256) -> __m256 {
                // SAFETY: forwarded from the caller.
                unsafe { <$avx2 as Format>::dot_pair(w, a, acc) }
            }
        }
    };
}

// Q4_0: nibbles offset by 8; Q4_1: stored minimum; Q8_0: bytes biased by 128.
format!(
    Q4_0,
    avx2::q4::Q4_0,
    18,
    avx2::q4::decode_nibbles::<18, 2, false>,
    false,
    3
);
format!(
    Q4_1,
    avx2::q4::Q4_1,
    20,
    avx2::q4::decode_nibbles::<20, 4, true>,
    true,
    0
);
format!(Q8_0, avx2::q8_0::Q8_0, 34, decode_q8_0, false, 7);

super::tiles::q8_driver!("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c", true);

// SAFETY (the three functions below): each is reachable only through the table that
// `kernels()` hands out after detecting every feature this module is compiled for.

fn rows_q8_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_q8::<Q8_0>(w, row0, x, out) }
}

fn rows_q4_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_q8::<Q4_0>(w, row0, x, out) }
}

fn rows_q4_1(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_q8::<Q4_1>(w, row0, x, out) }
}
