//! Attention of one query row over one head (see [`crate::attention`]), AVX2 + FMA.
//!
//! - Scores, eight positions at a time: one FMA chain per position over the head's
//!   vectors (eight independent chains hide the FMA latency; the query vector is loaded
//!   once per eight FMAs), then [`super::hsum8`], which sums every chain in one fixed
//!   order, so a position's score does not depend on its slot in the group. A last,
//!   partial group repeats its final position in the unused slots.
//! - Softmax: a vector max, [`exp_nonpositive`] on `s − max` (a Cephes-style polynomial,
//!   within 2 ulp of `expf`; padding lanes hold −∞ and come out 0) and a lane-wise sum
//!   reduced once, so the reductions depend only on the number of positions.
//! - Values: the output in registers, eight vectors (64 values) at a time, one FMA per
//!   vector and position; wider heads take several sweeps over the positions.
//!
//! Head dimensions that are not a multiple of 8 go to the scalar reference.

use std::arch::x86_64::*;

use super::hsum8;
use crate::attention::{HeadRows, attend_scalar, exp, padded_scores};

/// `exp(x)` for every lane, for `x ≤ 0` (softmax arguments after the max is removed),
/// as [`crate::attention::exp`] describes.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn exp_nonpositive(x: __m256) -> __m256 {
    let min = _mm256_set1_ps(exp::MIN);
    let underflow = _mm256_cmp_ps::<_CMP_LT_OQ>(x, min);
    let x = _mm256_max_ps(x, min);
    let n = _mm256_round_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(_mm256_mul_ps(
        x,
        _mm256_set1_ps(std::f32::consts::LOG2_E),
    ));
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp::LN2_HI), x);
    let r = _mm256_fnmadd_ps(n, _mm256_set1_ps(exp::LN2_LO), r);
    let mut p = _mm256_set1_ps(exp::POLY[0]);
    for c in &exp::POLY[1..] {
        p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(*c));
    }
    let y = _mm256_fmadd_ps(
        _mm256_mul_ps(p, r),
        r,
        _mm256_add_ps(r, _mm256_set1_ps(1.0)),
    );
    let pow2n = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(
        _mm256_cvtps_epi32(n),
        _mm256_set1_epi32(127),
    )));
    _mm256_andnot_ps(underflow, _mm256_mul_ps(y, pow2n))
}

/// [`crate::attention::AttendFn`] for this module (arguments checked by the caller).
pub(in crate::arch) fn attend(
    q: &[f32],
    k: HeadRows<'_>,
    v: HeadRows<'_>,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    if !q.len().is_multiple_of(8) {
        return attend_scalar(q, k, v, scale, scores, out);
    }
    // SAFETY: the table holding this function is handed out only after every feature of
    // this module was detected; `check` sized q, out, scores and the views.
    unsafe { attend_simd(q, k, v, scale, scores, out) }
}

/// # Safety
/// The CPU must have AVX2, FMA and F16C; `q` and `out` hold `head_dim` values, a multiple
/// of 8, `k` and `v` have `head_dim`-wide rows and as many rows as `scores` has values
/// at least, and at least one.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn attend_simd(
    q: &[f32],
    k: HeadRows<'_>,
    v: HeadRows<'_>,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    let rows = k.rows();
    let n = q.len() / 8;
    let scores = &mut scores[..rows];
    let qp = q.as_ptr();

    // Scores, eight positions per group.
    let vscale = _mm256_set1_ps(scale);
    let mut j = 0;
    while j < rows {
        let m = (rows - j).min(8);
        let mut kp = [k.row_ptr(j); 8];
        for (i, p) in kp.iter_mut().enumerate() {
            *p = k.row_ptr(j + i.min(m - 1));
        }
        let mut acc = [_mm256_setzero_ps(); 8];
        for c in 0..n {
            // SAFETY: vector c of the query and of each key row (n·8 = head_dim values).
            unsafe {
                let qc = _mm256_loadu_ps(qp.add(8 * c));
                for i in 0..8 {
                    acc[i] = _mm256_fmadd_ps(qc, _mm256_loadu_ps(kp[i].add(8 * c)), acc[i]);
                }
            }
        }
        let s = hsum8(acc);
        let s = _mm256_mul_ps(load8(&s), vscale);
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), s) };
        scores[j..j + m].copy_from_slice(&lanes[..m]);
        j += m;
    }

    // Softmax over the scores, in place: the max, exp(s − max), their sum, the scaling.
    let whole = rows / 8 * 8;
    // The partial last group, padded once (the loops below leave it alone).
    let tail = if whole < rows {
        Some(load8(&padded_scores::<8>(&scores[whole..])))
    } else {
        None
    };
    let mut vmax = _mm256_set1_ps(f32::NEG_INFINITY);
    for c in (0..whole).step_by(8) {
        vmax = _mm256_max_ps(vmax, load8(&scores[c..]));
    }
    if let Some(t) = tail {
        vmax = _mm256_max_ps(vmax, t);
    }
    let mut m8 = [0.0f32; 8];
    // SAFETY: `m8` holds 8 values.
    unsafe { _mm256_storeu_ps(m8.as_mut_ptr(), vmax) };
    let max = _mm256_set1_ps(m8.iter().copied().fold(f32::NEG_INFINITY, f32::max));
    let mut vsum = _mm256_setzero_ps();
    for c in (0..whole).step_by(8) {
        let e = exp_nonpositive(_mm256_sub_ps(load8(&scores[c..]), max));
        vsum = _mm256_add_ps(vsum, e);
        // SAFETY: scores[c..c + 8] is in bounds (c + 8 <= whole).
        unsafe { _mm256_storeu_ps(scores[c..].as_mut_ptr(), e) };
    }
    if let Some(t) = tail {
        let e = exp_nonpositive(_mm256_sub_ps(t, max));
        vsum = _mm256_add_ps(vsum, e);
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), e) };
        scores[whole..].copy_from_slice(&lanes[..rows - whole]);
    }
    let inv = 1.0 / super::hsum(vsum);
    for s in scores.iter_mut() {
        *s *= inv;
    }

    // Values: eight output vectors at a time in registers, then the rest one by one.
    let op = out.as_mut_ptr();
    let mut c0 = 0;
    while c0 + 8 <= n {
        let mut acc = [_mm256_setzero_ps(); 8];
        for (j, &p) in scores.iter().enumerate() {
            let p = _mm256_set1_ps(p);
            let vp = v.row_ptr(j);
            for i in 0..8 {
                // SAFETY: vector c0 + i < n of row j.
                acc[i] =
                    _mm256_fmadd_ps(p, unsafe { _mm256_loadu_ps(vp.add(8 * (c0 + i))) }, acc[i]);
            }
        }
        for i in 0..8 {
            // SAFETY: vector c0 + i < n of the output.
            unsafe { _mm256_storeu_ps(op.add(8 * (c0 + i)), acc[i]) };
        }
        c0 += 8;
    }
    for c in c0..n {
        let mut acc = _mm256_setzero_ps();
        for (j, &p) in scores.iter().enumerate() {
            // SAFETY: vector c < n of row j.
            acc = _mm256_fmadd_ps(
                _mm256_set1_ps(p),
                unsafe { _mm256_loadu_ps(v.row_ptr(j).add(8 * c)) },
                acc,
            );
        }
        // SAFETY: vector c < n of the output.
        unsafe { _mm256_storeu_ps(op.add(8 * c), acc) };
    }
}

/// The first 8 values of `s`.
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn load8(s: &[f32]) -> __m256 {
    assert!(s.len() >= 8, "8 values");
    // SAFETY: 8 values are readable (asserted); loadu has no alignment need.
    unsafe { _mm256_loadu_ps(s.as_ptr()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_and_underflows_to_zero() {
        if !super::super::detected() {
            return;
        }
        let mut worst = 0u32;
        let mut x = 0.0f32;
        while x > -88.0 {
            let lanes = [
                x,
                x * 0.5,
                x * 0.25,
                x * 0.125,
                x - 0.3,
                x * 0.9,
                x * 0.01,
                -x.abs() * 1e-3,
            ];
            let mut got = [0.0f32; 8];
            // SAFETY: the features were detected above.
            unsafe {
                let y = exp_nonpositive(_mm256_loadu_ps(lanes.as_ptr()));
                _mm256_storeu_ps(got.as_mut_ptr(), y);
            }
            for (&a, &g) in lanes.iter().zip(&got) {
                let want = a.exp();
                if want >= f32::MIN_POSITIVE {
                    worst = worst.max(want.to_bits().abs_diff(g.to_bits()));
                }
            }
            x -= 0.0137;
        }
        assert!(worst <= 2, "{worst} ulp");
        let lanes = [
            f32::NEG_INFINITY,
            -88.0,
            -100.0,
            -1e30,
            0.0,
            -0.0,
            -87.0,
            -1e-30,
        ];
        let mut got = [0.0f32; 8];
        // SAFETY: the features were detected above.
        unsafe {
            _mm256_storeu_ps(
                got.as_mut_ptr(),
                exp_nonpositive(_mm256_loadu_ps(lanes.as_ptr())),
            )
        };
        assert_eq!(&got[..4], &[0.0; 4]);
        assert_eq!((got[4], got[5], got[7]), (1.0, 1.0, 1.0));
        assert!((got[6] / (-87.0f32).exp() - 1.0).abs() < 1e-6);
    }
}
