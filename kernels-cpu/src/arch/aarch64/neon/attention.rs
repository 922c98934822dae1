//! Attention of one query row over one head (see [`crate::attention`]), NEON.
//!
//! The scheme of the AVX2 path on 4-lane vectors:
//! - Scores, eight positions at a time: one FMA chain per position over the head's
//!   vectors (eight independent chains), each reduced with `faddv` in its own fixed order,
//!   so a position's score does not depend on its slot in the group.
//! - Softmax: a vector max, [`exp_nonpositive`] on `s − max` (padding lanes hold −∞ and
//!   come out 0) and a lane-wise sum reduced once.
//! - Values: eight output vectors (32 values) at a time in registers, one FMA per vector
//!   and position.
//!
//! Head dimensions that are not a multiple of 4 go to the scalar reference.

use std::arch::aarch64::*;

use crate::attention::{HeadRows, attend_scalar, exp, padded_scores};

/// `exp(x)` for every lane, for `x ≤ 0`, as [`crate::attention::exp`] describes.
#[inline]
fn exp_nonpositive(x: float32x4_t) -> float32x4_t {
    // SAFETY: NEON is part of the aarch64 baseline.
    unsafe {
        let min = vdupq_n_f32(exp::MIN);
        let underflow = vcltq_f32(x, min);
        let x = vmaxq_f32(x, min);
        let n = vrndnq_f32(vmulq_n_f32(x, std::f32::consts::LOG2_E));
        let r = vfmsq_f32(x, n, vdupq_n_f32(exp::LN2_HI));
        let r = vfmsq_f32(r, n, vdupq_n_f32(exp::LN2_LO));
        let mut p = vdupq_n_f32(exp::POLY[0]);
        for c in &exp::POLY[1..] {
            p = vfmaq_f32(vdupq_n_f32(*c), p, r);
        }
        let y = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0)), vmulq_f32(p, r), r);
        let pow2n = vreinterpretq_f32_s32(vshlq_n_s32::<23>(vaddq_s32(
            vcvtq_s32_f32(n),
            vdupq_n_s32(127),
        )));
        vreinterpretq_f32_u32(vbicq_u32(
            vreinterpretq_u32_f32(vmulq_f32(y, pow2n)),
            underflow,
        ))
    }
}

/// The first 4 values of `s`.
#[inline]
fn load4(s: &[f32]) -> float32x4_t {
    assert!(s.len() >= 4, "4 values");
    // SAFETY: 4 values are readable (asserted).
    unsafe { vld1q_f32(s.as_ptr()) }
}

/// [`crate::attention::AttendFn`] for NEON (arguments checked by the caller).
pub(in crate::arch) fn attend(
    q: &[f32],
    k: HeadRows<'_>,
    v: HeadRows<'_>,
    scale: f32,
    scores: &mut [f32],
    out: &mut [f32],
) {
    if !q.len().is_multiple_of(4) {
        return attend_scalar(q, k, v, scale, scores, out);
    }
    let rows = k.rows();
    let n = q.len() / 4;
    let scores = &mut scores[..rows];
    let qp = q.as_ptr();

    // Scores, eight positions per group.
    let mut j = 0;
    while j < rows {
        let m = (rows - j).min(8);
        let mut kp = [k.row_ptr(j); 8];
        for (i, p) in kp.iter_mut().enumerate() {
            *p = k.row_ptr(j + i.min(m - 1));
        }
        // SAFETY: NEON is baseline; vector c < n of the query and of each key row.
        unsafe {
            let mut acc = [vdupq_n_f32(0.0); 8];
            for c in 0..n {
                let qc = vld1q_f32(qp.add(4 * c));
                for i in 0..8 {
                    acc[i] = vfmaq_f32(acc[i], qc, vld1q_f32(kp[i].add(4 * c)));
                }
            }
            for i in 0..m {
                scores[j + i] = vaddvq_f32(acc[i]) * scale;
            }
        }
        j += m;
    }

    // Softmax in place.
    let whole = rows / 4 * 4;
    // SAFETY: NEON is baseline.
    unsafe {
        // The partial last group, padded once (the loops below leave it alone).
        let tail = if whole < rows {
            Some(load4(&padded_scores::<4>(&scores[whole..])))
        } else {
            None
        };
        let mut vmax = vdupq_n_f32(f32::NEG_INFINITY);
        for c in (0..whole).step_by(4) {
            vmax = vmaxq_f32(vmax, load4(&scores[c..]));
        }
        if let Some(t) = tail {
            vmax = vmaxq_f32(vmax, t);
        }
        let max = vdupq_n_f32(vmaxvq_f32(vmax));
        let mut vsum = vdupq_n_f32(0.0);
        for c in (0..whole).step_by(4) {
            let e = exp_nonpositive(vsubq_f32(load4(&scores[c..]), max));
            vsum = vaddq_f32(vsum, e);
            vst1q_f32(scores[c..c + 4].as_mut_ptr(), e);
        }
        if let Some(t) = tail {
            let e = exp_nonpositive(vsubq_f32(t, max));
            vsum = vaddq_f32(vsum, e);
            let mut lanes = [0.0f32; 4];
            vst1q_f32(lanes.as_mut_ptr(), e);
            scores[whole..].copy_from_slice(&lanes[..rows - whole]);
        }
        let inv = 1.0 / vaddvq_f32(vsum);
        for s in scores.iter_mut() {
            *s *= inv;
        }
    }

    // Values: eight output vectors at a time in registers, then the rest one by one.
    let op = out.as_mut_ptr();
    let mut c0 = 0;
    // SAFETY: NEON is baseline; vectors below n of each value row and of the output.
    unsafe {
        while c0 + 8 <= n {
            let mut acc = [vdupq_n_f32(0.0); 8];
            for (j, &p) in scores.iter().enumerate() {
                let vp = v.row_ptr(j);
                for i in 0..8 {
                    acc[i] = vfmaq_n_f32(acc[i], vld1q_f32(vp.add(4 * (c0 + i))), p);
                }
            }
            for i in 0..8 {
                vst1q_f32(op.add(4 * (c0 + i)), acc[i]);
            }
            c0 += 8;
        }
        for c in c0..n {
            let mut acc = vdupq_n_f32(0.0);
            for (j, &p) in scores.iter().enumerate() {
                acc = vfmaq_n_f32(acc, vld1q_f32(v.row_ptr(j).add(4 * c)), p);
            }
            vst1q_f32(op.add(4 * c), acc);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_two_ulp_of_libm_and_underflows_to_zero() {
        let mut worst = 0u32;
        let mut x = 0.0f32;
        while x > -88.0 {
            let lanes = [x, x * 0.5, x * 0.01, -x.abs() * 1e-3];
            let mut got = [0.0f32; 4];
            // SAFETY: `got` holds 4 values.
            unsafe { vst1q_f32(got.as_mut_ptr(), exp_nonpositive(load4(&lanes))) };
            for (&a, &g) in lanes.iter().zip(&got) {
                let want = a.exp();
                if want >= f32::MIN_POSITIVE {
                    worst = worst.max(want.to_bits().abs_diff(g.to_bits()));
                }
            }
            x -= 0.0137;
        }
        assert!(worst <= 2, "{worst} ulp");
        let lanes = [f32::NEG_INFINITY, -88.0, 0.0, -1e-30];
        let mut got = [0.0f32; 4];
        // SAFETY: `got` holds 4 values.
        unsafe { vst1q_f32(got.as_mut_ptr(), exp_nonpositive(load4(&lanes))) };
        assert_eq!(got, [0.0, 0.0, 1.0, 1.0]);
    }
}
