//! F32, F16 and BF16 weights against f32 activations.
//!
//! 8 columns per step with one FMA per (row, batch row), in [`CHAINS`] chains; the
//! `cols % 8` tail is added after the lane sum, in column order, the same way in every
//! tile.

use std::arch::x86_64::*;

use super::hsum;
use crate::{QMatrix, activations::Activations};

/// One float weight format.
pub(in crate::arch::x86_64) trait FloatWeights {
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

pub(in crate::arch::x86_64) struct F32;
pub(in crate::arch::x86_64) struct F16;
pub(in crate::arch::x86_64) struct BF16;

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

/// Independent FMA chains per (row, batch row): column group `g` (8 columns) goes to
/// chain `g % CHAINS`, and the chains are added as `(c0 + c1) + (c2 + c3)` before the
/// lane sum. One chain per dot product ran latency-bound, and covering the latency with
/// four rows at once instead made four interleaved weight streams, which the hardware
/// prefetcher does not keep up with: a 49152×2560 F16 head read at 13 GB/s that way, at
/// 21 GB/s as one row with four chains (Zen 4, one thread).
pub(in crate::arch::x86_64) const CHAINS: usize = 4;

/// Columns per block in batched tiles (a multiple of `8·CHAINS`): the activations of a
/// batch of 8 over 512 columns are 16 KiB, which stay in L1 while a block of rows meets
/// them. Unblocked, every weight row streamed the whole batch from L2 (80 KiB at 2560
/// columns), and a batch of 8 ran at a quarter of the FMA rate.
pub(in crate::arch::x86_64) const COL_BLOCK: usize = 512;

/// Weight rows per block in batched tiles, whose accumulators are parked between column
/// blocks.
pub(in crate::arch::x86_64) const ROW_BLOCK: usize = 8;

/// Accumulator chains of one (row, batch row).
type Chains = [__m256; CHAINS];

/// Prefetches column groups `g0 .. g0 + n` of weight row `row` into L2: batched tiles
/// request the same columns of the next row block while the current one computes, since
/// the hardware prefetcher does not follow [`ROW_BLOCK`] interleaved streams (a batch of
/// 8 on a 49152×2560 F16 head waited on DRAM for most of its time without this). Into
/// L1 (`T0`), the lines evicted the batch's activations and ran slower.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) fn prefetch_columns<W: FloatWeights>(row: &[u8], g0: usize, n: usize) {
    for line in row[8 * g0 * W::BYTES..8 * (g0 + n) * W::BYTES].chunks(64) {
        _mm_prefetch::<_MM_HINT_T1>(line.as_ptr().cast());
    }
}

/// Adds columns `c .. c + 8` of one weight row times `B` activation rows to chain `k`.
///
/// # Safety
/// `w` must hold `c + 8` values and every `x[b]` `c + 8`; the CPU must have AVX2, FMA
/// and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
unsafe fn fma_group<W: FloatWeights, const B: usize>(
    w: &[u8],
    x: [&[f32]; B],
    c: usize,
    k: usize,
    acc: &mut [Chains; B],
) {
    // SAFETY: forwarded from the caller.
    let wv = unsafe { W::load8(w.as_ptr().add(c * W::BYTES)) };
    for b in 0..B {
        // SAFETY: as above.
        let xv = unsafe { _mm256_loadu_ps(x[b].as_ptr().add(c)) };
        acc[b][k] = _mm256_fmadd_ps(wv, xv, acc[b][k]);
    }
}

/// Adds column groups `g0 .. g0 + n` (8 columns each; `g0` a multiple of [`CHAINS`]) of
/// one weight row times `B` activation rows to the chains of each batch row.
///
/// # Safety
/// The CPU must have AVX2, FMA and F16C.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn dot_groups<W: FloatWeights, const B: usize>(
    w: &[u8],
    x: [&[f32]; B],
    g0: usize,
    n: usize,
    mut acc: [Chains; B],
) -> [Chains; B] {
    let end = 8 * (g0 + n);
    assert!(
        g0.is_multiple_of(CHAINS) && w.len() >= end * W::BYTES && x.iter().all(|x| x.len() >= end),
        "column groups"
    );
    let mut g = g0;
    while g + CHAINS <= g0 + n {
        for k in 0..CHAINS {
            // SAFETY: 8·(g + k) + 8 <= end, within the weight row and every activation row
            // (asserted).
            unsafe { fma_group::<W, B>(w, x, 8 * (g + k), k, &mut acc) };
        }
        g += CHAINS;
    }
    for k in 0..g0 + n - g {
        // SAFETY: as above.
        unsafe { fma_group::<W, B>(w, x, 8 * (g + k), k, &mut acc) };
    }
    acc
}

/// The dot product from the chains of one (row, batch row), plus the `cols % 8` tail in
/// column order.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::arch::x86_64) fn finish<W: FloatWeights>(acc: Chains, w: &[u8], x: &[f32]) -> f32 {
    let [a0, a1, a2, a3] = acc;
    let mut s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for c in x.len() / 8 * 8..x.len() {
        s += W::scalar(&w[c * W::BYTES..]) * x[c];
    }
    s
}

/// Rows `row0 .. row0 + out[b].len()` of `w · x` for float weights `W`.
///
/// A batch of one goes row by row, each a single weight stream. Larger batches go by
/// blocks of [`ROW_BLOCK`] rows and [`COL_BLOCK`] columns, each row against batch tiles
/// of 2 (8 accumulators of the 16 registers). Each (row, batch row) adds its column
/// groups in the same chains and order either way, so results do not depend on the
/// batch.
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
    let batch = out.len();
    let acts: Vec<&[f32]> = (0..batch).map(|b| x.f32s(b)).collect();
    let row = |r: usize| w.row_data(row0 + r);
    let groups = w.cols() / 8;
    let zero = [_mm256_setzero_ps(); CHAINS];
    if batch == 1 {
        for r in 0..nrows {
            let [acc] = dot_groups::<W, 1>(row(r), [acts[0]], 0, groups, [zero]);
            out[0][r] = finish::<W>(acc, row(r), acts[0]);
        }
        return;
    }
    let mut parked = vec![zero; ROW_BLOCK * batch];
    for r0 in (0..nrows).step_by(ROW_BLOCK) {
        let rn = ROW_BLOCK.min(nrows - r0);
        parked.fill(zero);
        for g0 in (0..groups).step_by(COL_BLOCK / 8) {
            let n = (COL_BLOCK / 8).min(groups - g0);
            for i in 0..rn {
                let wr = row(r0 + i);
                if r0 + ROW_BLOCK + i < nrows {
                    prefetch_columns::<W>(row(r0 + ROW_BLOCK + i), g0, n);
                }
                let acc = &mut parked[i * batch..(i + 1) * batch];
                let mut b = 0;
                while b + 2 <= batch {
                    let y =
                        dot_groups::<W, 2>(wr, [acts[b], acts[b + 1]], g0, n, [acc[b], acc[b + 1]]);
                    [acc[b], acc[b + 1]] = y;
                    b += 2;
                }
                if b < batch {
                    [acc[b]] = dot_groups::<W, 1>(wr, [acts[b]], g0, n, [acc[b]]);
                }
            }
        }
        for i in 0..rn {
            for b in 0..batch {
                out[b][r0 + i] = finish::<W>(parked[i * batch + b], row(r0 + i), acts[b]);
            }
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
