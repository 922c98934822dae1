//! F32, F16 and BF16 weights against f32 activations on 512-bit vectors.
//!
//! The same chains as the AVX2 kernels ([`avx2::float`]), two column groups to a
//! register: accumulator `z0` holds chains 0 and 1 in its halves, `z1` chains 2 and 3, and
//! a step over 32 columns adds groups `4i, 4i + 1` to `z0` and `4i + 2, 4i + 3` to `z1`.
//! The finish adds `(c0 + c1) + (c2 + c3)` from the halves, so every result is bit for
//! bit the AVX2 kernels' result.
//!
//! What the wider registers buy is the batched tile: 32 registers hold 2 weight rows × 4
//! batch rows of accumulators, so each activation load serves two rows. With one row per
//! tile (the AVX2 kernels, 16 registers) the loads, one per FMA, are the limit: Zen 4
//! loads two 256-bit vectors per cycle and retires two FMAs.
//!
//! [`avx2::float`]: super::super::avx2::float

use std::arch::x86_64::*;

use super::super::avx2::{
    self,
    float::{BF16, CHAINS, COL_BLOCK, F16, F32, FloatWeights, ROW_BLOCK},
};
use crate::{QMatrix, activations::Activations};

/// One float weight format, 16 values at a time.
trait Wide: FloatWeights {
    /// The AVX2 kernel of the format, which gives the same bits: a batch of one, bound by
    /// memory, ran 15% faster on it than on 512-bit vectors (49152×2560 F16 on Zen 4).
    const NARROW: RowsFn;

    /// The 16 values at `p` as f32.
    ///
    /// # Safety
    /// `p` must be readable for `16 * BYTES` bytes; the CPU must have this module's
    /// features.
    unsafe fn load16(p: *const u8) -> __m512;

    /// The values at `p` in the lanes of `k`, zero elsewhere.
    ///
    /// # Safety
    /// The bytes of the lanes in `k` must be readable (masked-off lanes are not read);
    /// the CPU must have this module's features.
    unsafe fn load16_masked(p: *const u8, k: __mmask16) -> __m512;
}

/// The signature of a kernel table's float entries.
type RowsFn = fn(&QMatrix<'_>, usize, &Activations, &mut [&mut [f32]]);

impl Wide for F32 {
    const NARROW: RowsFn = avx2::float::rows_f32;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn load16(p: *const u8) -> __m512 {
        // SAFETY: 64 readable bytes (caller).
        unsafe { _mm512_loadu_ps(p.cast()) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn load16_masked(p: *const u8, k: __mmask16) -> __m512 {
        // SAFETY: the lanes in k are readable (caller).
        unsafe { _mm512_maskz_loadu_ps(k, p.cast()) }
    }
}

impl Wide for F16 {
    const NARROW: RowsFn = avx2::float::rows_f16;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn load16(p: *const u8) -> __m512 {
        // SAFETY: 32 readable bytes (caller).
        _mm512_cvtph_ps(unsafe { _mm256_loadu_si256(p.cast()) })
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn load16_masked(p: *const u8, k: __mmask16) -> __m512 {
        // SAFETY: the lanes in k are readable (caller).
        _mm512_cvtph_ps(unsafe { _mm256_maskz_loadu_epi16(k, p.cast()) })
    }
}

impl Wide for BF16 {
    const NARROW: RowsFn = avx2::float::rows_bf16;

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn load16(p: *const u8) -> __m512 {
        // SAFETY: 32 readable bytes (caller).
        let h = unsafe { _mm256_loadu_si256(p.cast()) };
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
    #[inline]
    unsafe fn load16_masked(p: *const u8, k: __mmask16) -> __m512 {
        // SAFETY: the lanes in k are readable (caller).
        let h = unsafe { _mm256_maskz_loadu_epi16(k, p.cast()) };
        _mm512_castsi512_ps(_mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h)))
    }
}

/// The four chains of one (row, batch row), two to a register.
type Chains = [__m512; 2];

const _: () = assert!(CHAINS == 4 && COL_BLOCK.is_multiple_of(32));

/// Adds 16 columns at `c` (mask `k`: the lanes of the groups present) of `R` weight rows
/// times `B` activation rows to accumulator `z` of each (row, batch row).
///
/// # Safety
/// Every weight row and activation row must hold the columns of the lanes in `k`; the
/// CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
unsafe fn fma16<W: Wide, const R: usize, const B: usize, const MASKED: bool>(
    w: [&[u8]; R],
    x: [&[f32]; B],
    c: usize,
    k: __mmask16,
    z: usize,
    acc: &mut [[Chains; B]; R],
) {
    let mut xv = [_mm512_setzero_ps(); B];
    for b in 0..B {
        // SAFETY: forwarded from the caller.
        xv[b] = unsafe {
            if MASKED {
                _mm512_maskz_loadu_ps(k, x[b].as_ptr().add(c))
            } else {
                _mm512_loadu_ps(x[b].as_ptr().add(c))
            }
        };
    }
    for r in 0..R {
        // SAFETY: as above.
        let wv = unsafe {
            let p = w[r].as_ptr().add(c * W::BYTES);
            if MASKED {
                W::load16_masked(p, k)
            } else {
                W::load16(p)
            }
        };
        for b in 0..B {
            // Masked-off lanes keep their chain untouched, as the AVX2 kernels do.
            acc[r][b][z] = _mm512_mask3_fmadd_ps(wv, xv[b], acc[r][b][z], k);
        }
    }
}

/// Adds column groups `g0 .. g0 + n` (8 columns each; `g0` a multiple of [`CHAINS`]) of
/// `R` weight rows times `B` activation rows to the chains of each (row, batch row).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
fn dot_groups<W: Wide, const R: usize, const B: usize>(
    w: [&[u8]; R],
    x: [&[f32]; B],
    g0: usize,
    n: usize,
    mut acc: [[Chains; B]; R],
) -> [[Chains; B]; R] {
    let end = 8 * (g0 + n);
    assert!(
        g0.is_multiple_of(CHAINS)
            && w.iter().all(|w| w.len() >= end * W::BYTES)
            && x.iter().all(|x| x.len() >= end),
        "column groups"
    );
    let full = u16::MAX;
    let mut g = g0;
    while g + CHAINS <= g0 + n {
        // SAFETY: columns 8g .. 8g + 32 <= end lie within every row (asserted).
        unsafe {
            fma16::<W, R, B, false>(w, x, 8 * g, full, 0, &mut acc);
            fma16::<W, R, B, false>(w, x, 8 * g + 16, full, 1, &mut acc);
        }
        g += CHAINS;
    }
    // The last 1–3 groups: chain 0 (and 1) in z0, chain 2 in the low half of z1.
    let left = g0 + n - g;
    if left > 0 {
        let k0 = if left == 1 { 0x00FF } else { full };
        // SAFETY: the lanes of k0 are columns below 8·(g + left) = end.
        unsafe { fma16::<W, R, B, true>(w, x, 8 * g, k0, 0, &mut acc) };
    }
    if left == 3 {
        // SAFETY: as above, columns 8g + 16 .. 8g + 24.
        unsafe { fma16::<W, R, B, true>(w, x, 8 * g + 16, 0x00FF, 1, &mut acc) };
    }
    acc
}

/// The upper 256-bit half of `z`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
fn upper(z: __m512) -> __m256 {
    _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(z)))
}

/// The dot product from the chains of one (row, batch row): the AVX2 kernels' finish on
/// the four chains the two registers hold.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
fn finish<W: Wide>(acc: Chains, w: &[u8], x: &[f32]) -> f32 {
    let [z0, z1] = acc;
    let chains = [
        _mm512_castps512_ps256(z0),
        upper(z0),
        _mm512_castps512_ps256(z1),
        upper(z1),
    ];
    avx2::float::finish::<W>(chains, w, x)
}

/// Rows `r .. r + R` of a row block (accumulators `parked[i·batch ..]` for row `r0 + i`)
/// against every batch tile of 4, over column groups `g0 .. g0 + n`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
#[inline]
fn rows_tile<W: Wide, const R: usize>(
    w: [&[u8]; R],
    acts: &[&[f32]],
    g0: usize,
    n: usize,
    parked: &mut [Chains],
) {
    let batch = acts.len();
    let mut b = 0;
    while b < batch {
        super::super::tiles::with_batch_tile!((batch - b).min(4), |B| {
            let mut x = [acts[b]; B];
            let mut acc = [[[_mm512_setzero_ps(); 2]; B]; R];
            for j in 0..B {
                x[j] = acts[b + j];
                for i in 0..R {
                    acc[i][j] = parked[i * batch + b + j];
                }
            }
            let acc = dot_groups::<W, R, B>(w, x, g0, n, acc);
            for j in 0..B {
                for i in 0..R {
                    parked[i * batch + b + j] = acc[i][j];
                }
            }
            b += B;
        });
    }
}

/// Rows `row0 .. row0 + out[b].len()` of `w · x` for float weights `W`: a batch of one
/// on the AVX2 kernel ([`Wide::NARROW`]), larger batches blocked as the AVX2 kernels
/// are, with tiles of 2 weight rows × 4 batch rows.
///
/// # Safety
/// The CPU must have this module's features.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma,f16c")]
fn rows_float<W: Wide>(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    if out.len() == 1 {
        return W::NARROW(w, row0, x, out);
    }
    let nrows = out.first().map_or(0, |o| o.len());
    assert!(x.feeds(w.format()) && x.batch() == out.len() && x.cols() == w.cols());
    let batch = out.len();
    let acts: Vec<&[f32]> = (0..batch).map(|b| x.f32s(b)).collect();
    let row = |r: usize| w.row_data(row0 + r);
    let groups = w.cols() / 8;
    let zero = [_mm512_setzero_ps(); 2];
    let mut parked = vec![zero; ROW_BLOCK * batch];
    for r0 in (0..nrows).step_by(ROW_BLOCK) {
        let rn = ROW_BLOCK.min(nrows - r0);
        parked.fill(zero);
        for g0 in (0..groups).step_by(COL_BLOCK / 8) {
            let n = (COL_BLOCK / 8).min(groups - g0);
            for r in (r0 + ROW_BLOCK..r0 + ROW_BLOCK + rn).filter(|&r| r < nrows) {
                avx2::float::prefetch_columns::<W>(row(r), g0, n);
            }
            let mut i = 0;
            while i + 2 <= rn {
                let p = &mut parked[i * batch..(i + 2) * batch];
                rows_tile::<W, 2>([row(r0 + i), row(r0 + i + 1)], &acts, g0, n, p);
                i += 2;
            }
            if i < rn {
                let p = &mut parked[i * batch..(i + 1) * batch];
                rows_tile::<W, 1>([row(r0 + i)], &acts, g0, n, p);
            }
        }
        for i in 0..rn {
            for b in 0..batch {
                out[b][r0 + i] = finish::<W>(parked[i * batch + b], row(r0 + i), acts[b]);
            }
        }
    }
}

// SAFETY (the three functions below): each is reachable only through the AVX-512 table,
// which is handed out after detecting every feature this module is compiled for.

pub(super) fn rows_f32(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_float::<F32>(w, row0, x, out) }
}

pub(super) fn rows_f16(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_float::<F16>(w, row0, x, out) }
}

pub(super) fn rows_bf16(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: see above.
    unsafe { rows_float::<BF16>(w, row0, x, out) }
}

#[cfg(test)]
mod tests {
    use crate::{Activations, KernelPath, QMatrix, WeightFormat, kernels};

    /// The module's promise: the same bits as the AVX2 kernels, on every tile shape
    /// (2 and 1 weight rows, batch tiles of 1–4), ragged column groups and tails, and
    /// row and column blocks.
    #[test]
    fn results_equal_the_avx2_kernels_bit_for_bit() {
        let (Some(wide), Some(narrow)) =
            (kernels(KernelPath::Avx512Vnni), kernels(KernelPath::Avx2))
        else {
            eprintln!("skipped: this CPU has no AVX-512 VNNI");
            return;
        };
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for f in [WeightFormat::F32, WeightFormat::F16, WeightFormat::BF16] {
            for (rows, cols) in [(3, 8), (11, 75), (17, 91), (9, 1045), (5, 2560)] {
                let bytes = f.row_bytes(cols) * rows;
                let w: Vec<u8> = match f {
                    WeightFormat::F32 => (0..rows * cols)
                        .flat_map(|_| (((next() % 2001) as f32 - 1000.0) / 700.0).to_le_bytes())
                        .collect(),
                    WeightFormat::F16 => (0..rows * cols)
                        .flat_map(|_| {
                            half::f16::from_f32(((next() % 2001) as f32 - 1000.0) / 700.0)
                                .to_le_bytes()
                        })
                        .collect(),
                    _ => (0..rows * cols)
                        .flat_map(|_| {
                            let v = ((next() % 2001) as f32 - 1000.0) / 700.0;
                            ((v.to_bits() >> 16) as u16).to_le_bytes()
                        })
                        .collect(),
                };
                assert_eq!(w.len(), bytes);
                let m = QMatrix::new(f, rows, cols, &w).unwrap();
                for batch in [1, 2, 3, 5, 8, 9] {
                    let x: Vec<f32> = (0..batch * cols)
                        .map(|_| ((next() % 4001) as f32 - 2000.0) / 900.0)
                        .collect();
                    let mut got = vec![0.0; batch * rows];
                    let mut want = vec![0.0; batch * rows];
                    let mut a = Activations::new();
                    a.prepare_with(wide, f, &x, batch, cols);
                    wide.matmul(&m, &a, &mut got).unwrap();
                    a.prepare_with(narrow, f, &x, batch, cols);
                    narrow.matmul(&m, &a, &mut want).unwrap();
                    let bits = |v: &[f32]| v.iter().map(|y| y.to_bits()).collect::<Vec<_>>();
                    assert_eq!(bits(&got), bits(&want), "{f:?} {rows}×{cols} batch {batch}");
                }
            }
        }
    }
}
