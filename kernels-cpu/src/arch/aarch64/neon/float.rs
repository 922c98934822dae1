//! F32, F16 and BF16 weights against f32 activations: 4 columns per step in four FMA
//! chains per (row, batch row) (columns `4k..4k + 4` go to chain `k % 4`; one chain ran
//! bound by the FMA latency), the chains added as `(c0 + c1) + (c2 + c3)`, then the
//! `cols % 4` tail after the lane sum, in column order. Rows go one at a time, a single
//! weight stream.

use std::arch::aarch64::*;

use super::{f16_bits_to_f32, hsum};
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
    let mut acc = [vdupq_n_f32(0.0); 4];
    for c in (0..cols / 4 * 4).step_by(4) {
        // SAFETY: c + 4 <= cols = x.len().
        let xv = unsafe { vld1q_f32(x.as_ptr().add(c)) };
        let k = c / 4 % 4;
        acc[k] = vfmaq_f32(acc[k], load4(c), xv);
    }
    let mut s = hsum(vaddq_f32(
        vaddq_f32(acc[0], acc[1]),
        vaddq_f32(acc[2], acc[3]),
    ));
    for c in cols / 4 * 4..cols {
        s += scalar(c) * x[c];
    }
    s
}

/// One float weight format.
trait FloatWeights {
    /// Bytes per value.
    const BYTES: usize;

    /// 4 values at `p` as f32.
    ///
    /// # Safety
    /// `p` must be readable for `4 * BYTES` bytes.
    unsafe fn load4(p: *const u8) -> float32x4_t;

    /// The value whose bytes start `bytes`.
    fn scalar(bytes: &[u8]) -> f32;
}

struct F32;
struct F16;
struct BF16;

impl FloatWeights for F32 {
    const BYTES: usize = 4;

    #[target_feature(enable = "neon")]
    #[inline]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: 16 readable bytes (caller); vld1q has no alignment need.
        unsafe { vld1q_f32(p.cast()) }
    }

    fn scalar(b: &[u8]) -> f32 {
        f32::from_le_bytes([b[0], b[1], b[2], b[3]])
    }
}

impl FloatWeights for F16 {
    const BYTES: usize = 2;

    #[target_feature(enable = "neon")]
    #[inline]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: 8 readable bytes (caller); vld1 has no alignment need.
        f16_bits_to_f32(vmovl_u16(unsafe { vld1_u16(p.cast()) }))
    }

    fn scalar(b: &[u8]) -> f32 {
        half::f16::from_le_bytes([b[0], b[1]]).to_f32()
    }
}

impl FloatWeights for BF16 {
    const BYTES: usize = 2;

    #[target_feature(enable = "neon")]
    #[inline]
    unsafe fn load4(p: *const u8) -> float32x4_t {
        // SAFETY: 8 readable bytes (caller); vld1 has no alignment need.
        vreinterpretq_f32_u32(vshll_n_u16::<16>(unsafe { vld1_u16(p.cast()) }))
    }

    fn scalar(b: &[u8]) -> f32 {
        f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)
    }
}

#[target_feature(enable = "neon")]
fn rows_float<W: FloatWeights>(
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    assert!(x.feeds(w.format()) && x.batch() == out.len() && x.cols() == w.cols());
    let cols = w.cols();
    for (b, o) in out.iter_mut().enumerate() {
        let xb = x.f32s(b);
        for (i, y) in o.iter_mut().enumerate() {
            let row = w.row_data(row0 + i);
            assert_eq!(row.len(), W::BYTES * cols);
            // SAFETY: c + 4 <= cols and the row holds BYTES·cols bytes.
            let load4 = |c: usize| unsafe { W::load4(row.as_ptr().add(W::BYTES * c)) };
            let scalar = |c: usize| W::scalar(&row[W::BYTES * c..]);
            *y = dot(cols, load4, scalar, xb);
        }
    }
}

pub(super) fn rows_f32(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: reachable only through the NEON tables, handed out after detecting NEON.
    unsafe { rows_float::<F32>(w, row0, x, out) }
}

pub(super) fn rows_f16(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: reachable only through the NEON tables, handed out after detecting NEON.
    unsafe { rows_float::<F16>(w, row0, x, out) }
}

pub(super) fn rows_bf16(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    // SAFETY: reachable only through the NEON tables, handed out after detecting NEON.
    unsafe { rows_float::<BF16>(w, row0, x, out) }
}
