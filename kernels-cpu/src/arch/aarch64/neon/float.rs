//! F32 and BF16 weights against f32 activations: 4 columns per step with one FMA per
//! (row, batch row), the `cols % 4` tail added after the lane sum, in column order.

use std::arch::aarch64::*;

use super::hsum;
use crate::{QMatrix, activations::Activations};

/// One dot product of a weight row (`load4` reads 4 values at a column) with `x`.
#[target_feature(enable = "neon")]
#[inline]
fn dot(
    cols: usize,
    load4: impl Fn(usize) -> float32x4_t,
    scalar: impl Fn(usize) -> f32,
    x: &[f32],
) -> f32 {
    assert_eq!(x.len(), cols);
    let mut acc = vdupq_n_f32(0.0);
    for c in (0..cols / 4 * 4).step_by(4) {
        // SAFETY: c + 4 <= cols = x.len().
        let xv = unsafe { vld1q_f32(x.as_ptr().add(c)) };
        acc = vfmaq_f32(acc, load4(c), xv);
    }
    let mut s = hsum(acc);
    for c in cols / 4 * 4..cols {
        s += scalar(c) * x[c];
    }
    s
}

#[target_feature(enable = "neon")]
fn rows_f32_impl(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    assert!(x.feeds(w.format()) && x.batch() == out.len() && x.cols() == w.cols());
    let cols = w.cols();
    for (b, o) in out.iter_mut().enumerate() {
        let xb = x.f32s(b);
        for (i, y) in o.iter_mut().enumerate() {
            let row = w.row_data(row0 + i);
            assert_eq!(row.len(), 4 * cols);
            // SAFETY: c + 4 <= cols and the row holds 4·cols bytes; vld1q has no alignment need.
            let load4 = |c: usize| unsafe { vld1q_f32(row.as_ptr().add(4 * c).cast()) };
            let scalar = |c: usize| {
                f32::from_le_bytes([row[4 * c], row[4 * c + 1], row[4 * c + 2], row[4 * c + 3]])
            };
            *y = dot(cols, load4, scalar, xb);
        }
    }
}

#[target_feature(enable = "neon")]
fn rows_bf16_impl(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    assert!(x.feeds(w.format()) && x.batch() == out.len() && x.cols() == w.cols());
    let cols = w.cols();
    for (b, o) in out.iter_mut().enumerate() {
        let xb = x.f32s(b);
        for (i, y) in o.iter_mut().enumerate() {
            let row = w.row_data(row0 + i);
            assert_eq!(row.len(), 2 * cols);
            // SAFETY: c + 4 <= cols and the row holds 2·cols bytes; vld1 has no alignment need.
            let load4 = |c: usize| unsafe {
                vreinterpretq_f32_u32(vshll_n_u16::<16>(vld1_u16(row.as_ptr().add(2 * c).cast())))
            };
            let scalar = |c: usize| {
                f32::from_bits(u32::from(u16::from_le_bytes([row[2 * c], row[2 * c + 1]])) << 16)
            };
            *y = dot(cols, load4, scalar, xb);
        }
    }
}

pub(super) fn rows_f32(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: reachable only through the NEON tables, handed out after detecting NEON.
    unsafe { rows_f32_impl(w, row0, x, out) }
}

pub(super) fn rows_bf16(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: reachable only through the NEON tables, handed out after detecting NEON.
    unsafe { rows_bf16_impl(w, row0, x, out) }
}
