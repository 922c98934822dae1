//! The scalar kernel table: every format's rows function built on the scalar reference
//! dot products in [`crate::formats`]. It runs everywhere and defines the right answer.

use crate::{
    QMatrix, WeightFormat,
    activations::{Activations, QRow, quantize_row},
    dispatch::{KernelPath, Kernels},
    formats::{float, i2_s, q4_0, q4_1, q8_0, tq1_0, tq2_0},
};

pub(crate) static KERNELS: Kernels = Kernels {
    path: KernelPath::Scalar,
    quantize8: quantize_row::<1>,
    quantize16: quantize_row::<2>,
    f32: rows_f32,
    f16: rows_f16,
    bf16: rows_bf16,
    q8_0: rows_q8_0,
    q4_0: rows_q4_0,
    q4_1: rows_q4_1,
    tq1_0: rows_tq1_0,
    tq2_0: rows_tq2_0,
    i2_s: rows_i2_s,
    attend: crate::attention::attend_scalar,
    ternary_natural: false,
};

fn rows_q8(
    dot: fn(&[u8], QRow<'_>) -> f32,
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    for (b, o) in out.iter_mut().enumerate() {
        let a = x.quantized_row(b).expect("checked: quantized activations");
        for (i, y) in o.iter_mut().enumerate() {
            *y = dot(w.row_data(row0 + i), a);
        }
    }
}

fn rows_float(
    dot: fn(&[u8], &[f32]) -> f32,
    w: &QMatrix<'_>,
    row0: usize,
    x: &Activations,
    out: &mut [&mut [f32]],
) {
    for (b, o) in out.iter_mut().enumerate() {
        let a = x.f32s(b);
        for (i, y) in o.iter_mut().enumerate() {
            *y = dot(w.row_data(row0 + i), a);
        }
    }
}

pub(crate) fn rows_q8_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::Q8_0);
    rows_q8(q8_0::vec_dot, w, row0, x, out);
}

pub(crate) fn rows_q4_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::Q4_0);
    rows_q8(q4_0::vec_dot, w, row0, x, out);
}

pub(crate) fn rows_q4_1(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::Q4_1);
    rows_q8(q4_1::vec_dot, w, row0, x, out);
}

pub(crate) fn rows_f32(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::F32);
    rows_float(float::vec_dot_f32, w, row0, x, out);
}

pub(crate) fn rows_f16(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::F16);
    rows_float(float::vec_dot_f16, w, row0, x, out);
}

pub(crate) fn rows_bf16(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::BF16);
    rows_float(float::vec_dot_bf16, w, row0, x, out);
}

pub(crate) fn rows_tq1_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::Tq1_0);
    rows_q8(tq1_0::vec_dot, w, row0, x, out);
}

pub(crate) fn rows_tq2_0(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::Tq2_0);
    rows_q8(tq2_0::vec_dot, w, row0, x, out);
}

pub(crate) fn rows_i2_s(w: &QMatrix<'_>, row0: usize, x: &Activations, out: &mut [&mut [f32]]) {
    debug_assert_eq!(w.format(), WeightFormat::I2S);
    let scale = w.scale();
    for (b, o) in out.iter_mut().enumerate() {
        let a = x.quantized_row(b).expect("checked: quantized activations");
        for (i, y) in o.iter_mut().enumerate() {
            *y = i2_s::vec_dot(w.row_data(row0 + i), scale, a);
        }
    }
}
