//! Attention of one query vector over one head of a KV cache: the scores, their softmax
//! and the weighted sum of the values, in one call.
//!
//! The engine owns the graph (which rows see which positions, the head grouping, RoPE);
//! this module owns the arithmetic, because at verify-pass sizes it is the largest cost
//! after the matmuls: with 8 new tokens over 128 cached ones, a plain-Rust loop took a
//! third of a SmolLM2-135M pass.
//!
//! Each call is one (query row, head) pair and its result depends only on the query, the
//! keys and the values it is given, never on how many other rows share the pass: a
//! position's score comes out of the same instruction sequence wherever it falls in a
//! SIMD group, and the softmax reductions depend only on the number of positions. That
//! keeps a verify pass bit-identical to single-token decoding.

use crate::{KernelError, dispatch::active_kernels};

/// One head's rows in a token-major cache: row `j` is
/// `data[j·stride + offset ..][..head_dim]` (llama.cpp's `k`/`v` cache views with
/// `nb1 = stride`, one head's slice of each row).
#[derive(Clone, Copy, Debug)]
pub struct HeadRows<'a> {
    data: &'a [f32],
    stride: usize,
    offset: usize,
    head_dim: usize,
    rows: usize,
}

impl<'a> HeadRows<'a> {
    /// The view of `rows` rows of one head, checked to lie inside `data`.
    ///
    /// # Errors
    /// [`KernelError::HeadRows`] if `head_dim` is zero, the head does not fit in a row
    /// (`offset + head_dim > stride`), or the rows run past the end of `data`.
    pub fn new(
        data: &'a [f32],
        stride: usize,
        offset: usize,
        head_dim: usize,
        rows: usize,
    ) -> Result<Self, KernelError> {
        let end = rows
            .checked_sub(1)
            .map_or(Some(0), |last| {
                last.checked_mul(stride)
                    .and_then(|s| s.checked_add(offset + head_dim))
            })
            .filter(|&end| end <= data.len());
        if head_dim == 0 || offset + head_dim > stride || end.is_none() {
            return Err(KernelError::HeadRows {
                len: data.len(),
                stride,
                offset,
                head_dim,
                rows,
            });
        }
        Ok(Self {
            data,
            stride,
            offset,
            head_dim,
            rows,
        })
    }

    /// Number of rows (cached positions).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Values per row.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// Row `j`.
    ///
    /// # Panics
    /// If `j >= self.rows()`.
    pub fn row(&self, j: usize) -> &'a [f32] {
        assert!(j < self.rows, "row {j} of {}", self.rows);
        &self.data[j * self.stride + self.offset..][..self.head_dim]
    }

    /// A pointer to row `j` (`j < rows`): `head_dim` values are readable from it.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub(crate) fn row_ptr(&self, j: usize) -> *const f32 {
        debug_assert!(j < self.rows);
        // In bounds: checked in `new` for every j < rows.
        self.data[j * self.stride + self.offset..].as_ptr()
    }
}

/// `out = Σ_j p_j · v_j` with `p = softmax_j(scale · q·k_j)` over every row of `k` and
/// `v`; `scores` (at least `k.rows()` long) is scratch. Arguments are checked by
/// [`crate::Kernels::attend`].
pub(crate) type AttendFn = fn(
    q: &[f32],
    k: HeadRows<'_>,
    v: HeadRows<'_>,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
);

/// `out = Σ_j softmax_j(scale · q·k_j) · v_j` over every row `j` of `k` and `v` (one
/// query row of one head, with the active kernels). `scores` is scratch, grown as needed:
/// reuse it across calls.
///
/// # Errors
/// [`KernelError::AttentionShape`] if `q`, `out`, `k` and `v` disagree on the head
/// dimension, `k` and `v` on the number of rows, or there are no rows.
pub fn attend(
    q: &[f32],
    k: HeadRows<'_>,
    v: HeadRows<'_>,
    scale: f32,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) -> Result<(), KernelError> {
    active_kernels().attend(q, k, v, scale, scores, out)
}

/// Checks [`attend`]'s arguments and sizes `scores`.
pub(crate) fn check(
    q: &[f32],
    k: &HeadRows<'_>,
    v: &HeadRows<'_>,
    scores: &mut Vec<f32>,
    out: &[f32],
) -> Result<(), KernelError> {
    let d = q.len();
    if k.rows == 0 || k.rows != v.rows || k.head_dim != d || v.head_dim != d || out.len() != d {
        return Err(KernelError::AttentionShape {
            query: d,
            out: out.len(),
            key_dim: k.head_dim,
            value_dim: v.head_dim,
            keys: k.rows,
            values: v.rows,
        });
    }
    if scores.len() < k.rows {
        scores.resize(k.rows, 0.0);
    }
    Ok(())
}

/// The softmax `exp` of the SIMD paths, for `x ≤ 0`: `x = n·ln 2 + r` with `ln 2` split
/// in two (Cody–Waite), Cephes' degree-5 polynomial for `expf` on `|r| ≤ ln 2 / 2`, then
/// `2ⁿ` through the exponent bits; lanes below [`exp::MIN`] (`ln 2⁻¹²⁶`) are 0. One set of
/// constants, so every path evaluates the same formula.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) mod exp {
    /// Below this, `exp` is 0 (the smallest normal power of two is `2⁻¹²⁶`).
    pub(crate) const MIN: f32 = -87.336_54;
    /// `ln 2 = LN2_HI + LN2_LO`, the high part exact in few bits.
    pub(crate) const LN2_HI: f32 = 0.693_359_4;
    pub(crate) const LN2_LO: f32 = -2.121_944_4e-4;
    /// Horner coefficients of `(e^r − 1 − r) / r²`, highest degree first.
    pub(crate) const POLY: [f32; 6] = [
        1.987_569_1e-4,
        1.398_199_9e-3,
        8.333_452e-3,
        4.166_579_6e-2,
        1.666_666_5e-1,
        0.5,
    ];
}

/// The last, partial group of `N` scores, padded with −∞ (whose exp is 0), for the
/// SIMD paths' softmax.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
pub(crate) fn padded_scores<const N: usize>(tail: &[f32]) -> [f32; N] {
    let mut lanes = [f32::NEG_INFINITY; N];
    lanes[..tail.len()].copy_from_slice(tail);
    lanes
}

/// The scalar reference: plain sequential sums, `f32::exp`.
pub(crate) fn attend_scalar(
    q: &[f32],
    k: HeadRows<'_>,
    v: HeadRows<'_>,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let scores = &mut scores[..k.rows];
    for (j, s) in scores.iter_mut().enumerate() {
        *s = q.iter().zip(k.row(j)).map(|(a, b)| a * b).sum::<f32>() * scale;
    }
    let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut sum = 0.0;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    let inv = 1.0 / sum;
    out.fill(0.0);
    for (j, &s) in scores.iter().enumerate() {
        let p = s * inv;
        for (o, x) in out.iter_mut().zip(v.row(j)) {
            *o += p * x;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{available_paths, kernels};

    /// A deterministic pseudo-random f32 in [-1, 1).
    fn value(seed: u64, i: usize) -> f32 {
        let mut x = seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        x ^= x >> 31;
        x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        x ^= x >> 29;
        (x >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }

    /// A float64 reference of the same attention.
    fn attend_f64(q: &[f32], k: &HeadRows<'_>, v: &HeadRows<'_>, scale: f32) -> Vec<f64> {
        let s: Vec<f64> = (0..k.rows())
            .map(|j| {
                q.iter()
                    .zip(k.row(j))
                    .map(|(&a, &b)| a as f64 * b as f64)
                    .sum::<f64>()
                    * scale as f64
            })
            .collect();
        let max = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = s.iter().map(|x| (x - max).exp()).collect();
        let sum: f64 = e.iter().sum();
        let mut out = vec![0.0; q.len()];
        for (j, p) in e.iter().enumerate() {
            for (o, &x) in out.iter_mut().zip(v.row(j)) {
                *o += p / sum * x as f64;
            }
        }
        out
    }

    #[test]
    fn every_path_matches_a_float64_reference_on_ragged_shapes() {
        // Head dims with and without whole SIMD vectors, positions from 1 to past a
        // multiple of 8, and peaked scores (large `amp`) where one position dominates.
        for &(head_dim, n_kv) in &[(64, 3), (128, 1), (8, 2), (40, 2), (12, 1), (1, 1)] {
            for rows in [1, 2, 7, 8, 9, 31, 136] {
                for amp in [0.5f32, 8.0] {
                    let stride = head_dim * n_kv;
                    let seed = (head_dim * 1000 + rows) as u64;
                    let kd: Vec<f32> = (0..rows * stride).map(|i| value(seed, i) * amp).collect();
                    let vd: Vec<f32> = (0..rows * stride).map(|i| value(seed + 1, i)).collect();
                    let q: Vec<f32> = (0..head_dim).map(|i| value(seed + 2, i)).collect();
                    let g = n_kv - 1;
                    let k = HeadRows::new(&kd, stride, g * head_dim, head_dim, rows).unwrap();
                    let v = HeadRows::new(&vd, stride, g * head_dim, head_dim, rows).unwrap();
                    let scale = 1.0 / (head_dim as f32).sqrt();
                    let want = attend_f64(&q, &k, &v, scale);
                    for path in available_paths() {
                        let kern = kernels(path).unwrap();
                        let mut scores = Vec::new();
                        let mut out = vec![f32::NAN; head_dim];
                        kern.attend(&q, k, v, scale, &mut scores, &mut out).unwrap();
                        for (i, (&got, &w)) in out.iter().zip(&want).enumerate() {
                            assert!(
                                (got as f64 - w).abs() <= 2e-6 * (1.0 + w.abs()),
                                "{path} d={head_dim} rows={rows} amp={amp} [{i}]: {got} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn results_do_not_depend_on_the_scratch_contents() {
        // Decoding one token and verifying a batch that holds the same row must agree bit
        // for bit: each call must be a function of its query, keys and values alone,
        // for every number of positions (whole SIMD groups and partial ones).
        let (head_dim, rows) = (64, 45);
        let kd: Vec<f32> = (0..rows * head_dim).map(|i| value(3, i) * 4.0).collect();
        let vd: Vec<f32> = (0..rows * head_dim).map(|i| value(4, i)).collect();
        let q: Vec<f32> = (0..head_dim).map(|i| value(5, i)).collect();
        for path in available_paths() {
            let kern = kernels(path).unwrap();
            for n in 1..=rows {
                let k = HeadRows::new(&kd, head_dim, 0, head_dim, n).unwrap();
                let v = HeadRows::new(&vd, head_dim, 0, head_dim, n).unwrap();
                let mut fresh = Vec::new();
                let mut dirty = vec![1e30; 3 * rows];
                let (mut a, mut b) = (vec![0.0; head_dim], vec![0.0; head_dim]);
                kern.attend(&q, k, v, 0.125, &mut fresh, &mut a).unwrap();
                kern.attend(&q, k, v, 0.125, &mut dirty, &mut b).unwrap();
                assert_eq!(
                    a.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    b.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
                    "{path} n={n}"
                );
            }
        }
    }

    #[test]
    fn extreme_scores_stay_finite() {
        // Scores far apart (a softmax that underflows to one position) and all equal.
        let head_dim = 16;
        let rows = 20;
        let mut kd = vec![0.0f32; rows * head_dim];
        kd[5 * head_dim] = 1e4;
        let vd: Vec<f32> = (0..rows * head_dim)
            .map(|i| (i / head_dim) as f32)
            .collect();
        let mut q = vec![0.0f32; head_dim];
        q[0] = 1.0;
        for path in available_paths() {
            let kern = kernels(path).unwrap();
            let k = HeadRows::new(&kd, head_dim, 0, head_dim, rows).unwrap();
            let v = HeadRows::new(&vd, head_dim, 0, head_dim, rows).unwrap();
            let mut out = vec![0.0; head_dim];
            kern.attend(&q, k, v, 1.0, &mut Vec::new(), &mut out)
                .unwrap();
            assert!(out.iter().all(|&x| x == 5.0), "{path}: {out:?}");
            let flat = vec![0.0f32; rows * head_dim];
            let k = HeadRows::new(&flat, head_dim, 0, head_dim, rows).unwrap();
            kern.attend(&q, k, v, 1.0, &mut Vec::new(), &mut out)
                .unwrap();
            let mean = (0..rows).sum::<usize>() as f32 / rows as f32;
            assert!(
                out.iter().all(|&x| (x - mean).abs() < 1e-4),
                "{path}: {out:?}"
            );
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let d = vec![0.0f32; 64];
        assert!(
            HeadRows::new(&d, 16, 8, 16, 1).is_err(),
            "head past the row"
        );
        assert!(
            HeadRows::new(&d, 16, 0, 16, 5).is_err(),
            "rows past the data"
        );
        assert!(HeadRows::new(&d, 16, 0, 0, 1).is_err(), "empty head");
        assert!(HeadRows::new(&d, usize::MAX, 0, 16, 3).is_err(), "overflow");
        assert!(HeadRows::new(&d, 16, 0, 16, 0).is_ok());
        let k = HeadRows::new(&d, 16, 0, 16, 4).unwrap();
        let short = HeadRows::new(&d, 16, 0, 16, 3).unwrap();
        let empty = HeadRows::new(&d, 16, 0, 16, 0).unwrap();
        let q = [0.0f32; 16];
        let mut out = [0.0f32; 16];
        let mut s = Vec::new();
        assert!(attend(&q, k, short, 1.0, &mut s, &mut out).is_err());
        assert!(attend(&q, empty, empty, 1.0, &mut s, &mut out).is_err());
        assert!(attend(&q[..8], k, k, 1.0, &mut s, &mut out).is_err());
        assert!(attend(&q, k, k, 1.0, &mut s, &mut out[..8]).is_err());
        assert!(attend(&q, k, k, 1.0, &mut s, &mut out).is_ok());
    }
}
