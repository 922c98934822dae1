//! F32, F16 and BF16 weights against f32 activations.
//!
//! 8 columns per step with one FMA per (row, batch row); the `cols % 8` tail is added
//! after the lane sum, in column order, the same way in every tile.

use std::arch::x86_64::*;

use super::hsum;
use crate::{QMatrix, activations::Activations};

/// One float weight format.
trait FloatWeights {
    /// Bytes per value.
    const BYTES: usize;

    /// 8 values at `p` as f32.
    ///
    /// # Safety
    /// `p` must be readable for `8 * BYTES` bytes; the CPU must have AVX2, FMA and F16C.
    unsafe fn load8(p: *const u8) -> __m256;

    /// The value whose bytes start `bytes`.
    fn scalar(bytes: &[u8]) -> f32;
}

struct F32;
struct F16;
struct BF16;

impl FloatWeights for F32 {
    const BYTES: usize = 4;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: 32 readable bytes (caller); loadu has no alignment need.
        unsafe { _mm256_loadu_ps(p.cast()) }
    }

    fn scalar(b: &[u8]) -> f32 {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl FloatWeights for F16 {
    const BYTES: usize = 2;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: 16 readable bytes (caller); loadu has no alignment need.
        _mm256_cvtph_ps(unsafe { _mm_loadu_si128(p.cast()) })
    }

    fn scalar(b: &[u8]) -> f32 {
        half::f16::from_le_bytes([b[0], b[1]]).to_f32()
    }
}

impl FloatWeights for BF16 {
    const BYTES: usize = 2;

    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    unsafe fn load8(p: *const u8) -> __m256 {
        // SAFETY: 16 readable bytes (caller); loadu has no alignment need.
        let h = unsafe { _mm_loadu_si128(p.cast()) };
        _mm256_castsi256_ps(_mm256_slli_epi32::<16>(_mm256_cvtepu16_epi32(h)))
    }

    fn scalar(b: &[u8]) -> f32 {
        f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
    }
}

/// Dot products of `R` weight rows with `B` activation rows.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn tile<W: FloatWeights, const R: usize, const B: usize>(
    w: [&[u8]; R],
    x: [&[f32]; B],
) -> [[f32; B]; R] {
    let cols = x[0].len();
    assert!(w.iter().all(|w| w.len() == cols * W::BYTES) && x.iter().all(|x| x.len() == cols));
    let mut acc = [[_mm256_setzero_ps(); B]; R];
    for c in (0..cols / 8 * 8).step_by(8) {
        for r in 0..R {
            // SAFETY: c + 8 <= cols, and each weight row holds cols values (asserted).
            let wv = unsafe { W::load8(w[r].as_ptr().add(c * W::BYTES)) };
            for b in 0..B {
                // SAFETY: c + 8 <= cols = x[b].len() (asserted).
                let xv = unsafe { _mm256_loadu_ps(x[b].as_ptr().add(c)) };
                acc[r][b] = _mm256_fmadd_ps(wv, xv, acc[r][b]);
            }
        }
    }
    let mut y = [[0.0; B]; R];
    for r in 0..R {
        for b in 0..B {
            let mut s = hsum(acc[r][b]);
            for c in cols / 8 * 8..cols {
                s += W::scalar(&w[r][c * W::BYTES..]) * x[b][c];
            }
            y[r][b] = s;
        }
    }
    y
}

/// Rows `row0 .. row0 + out[b].len()` of `w · x` for float weights `W`.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_float<W: FloatWeights>(
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    let nrows = out.first().map_or(0, |o| o.len());
    assert!(x.feeds(w.format()) && x.batch() == out.len() && x.cols() == w.cols());
    let row = |r: usize| w.row_data(row0 + r);
    let act = |b: usize| x.f32s(b);
    let batch = out.len();
    if batch == 1 {
        let a = [act(0)];
        let mut r = 0;
        while r + 4 <= nrows {
            let y = tile::<W, 4, 1>([row(r), row(r + 1), row(r + 2), row(r + 3)], a);
            for i in 0..4 {
                out[0][r + i] = y[i][0];
            }
            r += 4;
        }
        for r in r..nrows {
            out[0][r] = tile::<W, 1, 1>([row(r)], a)[0][0];
        }
        return;
    }
    for r in 0..nrows {
        let wr = [row(r)];
        let mut b = 0;
        while b + 4 <= batch {
            let y = tile::<W, 1, 4>(wr, [act(b), act(b + 1), act(b + 2), act(b + 3)]);
            for i in 0..4 {
                out[b + i][r] = y[0][i];
            }
            b += 4;
        }
        for b in b..batch {
            out[b][r] = tile::<W, 1, 1>(wr, [act(b)])[0][0];
        }
    }
}

// SAFETY (the three functions below): each is reachable only through the AVX2 and
// AVX-512 tables, which are handed out after detecting (at least) AVX2, FMA and F16C.

pub(in crate::arch::x86_64) fn rows_f32(
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    // SAFETY: see above.
    unsafe { rows_float::<F32>(w, row0, x, out) }
}

pub(in crate::arch::x86_64) fn rows_f16(
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    // SAFETY: see above.
    unsafe { rows_float::<F16>(w, row0, x, out) }
}

pub(in crate::arch::x86_64) fn rows_bf16(
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    // SAFETY: see above.
    unsafe { rows_float::<BF16>(w, row0, x, out) }
}
