//! [`Precision::Int16`]: activations quantized to ±32512 and stored as two int8 digits
//! (`q = 255·h + l`).
//!
//! Checked on every path the host has: results stay within the cross-path tolerance of
//! the scalar path, do not depend on the batch, and are far closer to the exact float64
//! product than [`Precision::Int8`]: the error bound of activation rounding is
//! `Σ|w|·d/2` with `d = max|x|/127` for int8 and `max|x|/32512` for int16, and the test
//! demands a 50× smaller error than int8 on every shape and path.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kernels_cpu::{Activations, Kernels, Precision, QMatrix, WeightFormat};

/// Weights of one test problem.
struct Weights<'a> {
    f: WeightFormat,
    w: &'a [u8],
    rows: usize,
    cols: usize,
}

fn run(k: &Kernels, m: &Weights<'_>, x: &[f32], batch: usize, p: Precision) -> Vec<f32> {
    let q = QMatrix::new(m.f, m.rows, m.cols, m.w).unwrap();
    let mut a = Activations::with_precision(p);
    a.prepare_with(k, m.f, x, batch, m.cols);
    let mut y = vec![f32::NAN; batch * m.rows];
    k.matmul(&q, &a, &mut y).unwrap();
    y
}

/// `W·x` in float64 from the dequantized weights.
fn exact(f: WeightFormat, w: &[u8], rows: usize, cols: usize, x: &[f32], batch: usize) -> Vec<f64> {
    let m = QMatrix::new(f, rows, cols, w).unwrap();
    let mut row = vec![0f32; cols];
    let mut out = vec![0f64; batch * rows];
    for r in 0..rows {
        m.dequantize_row(r, &mut row);
        for b in 0..batch {
            out[b * rows + r] = row
                .iter()
                .zip(&x[b * cols..(b + 1) * cols])
                .map(|(w, x)| f64::from(*w) * f64::from(*x))
                .sum();
        }
    }
    out
}

#[test]
fn int16_activations_are_far_more_accurate_than_int8() {
    let mut rng = rng(41);
    for f in QUANTIZED {
        for (rows, cols, batch) in [(67, 576, 3), (13, 1536, 5), (8, 96, 1)] {
            let x = activations(&mut rng, batch * cols);
            let values: Vec<f32> = activations(&mut rng, rows * cols);
            let w: Vec<u8> = values.chunks(cols).flat_map(|r| quantize(f, r)).collect();
            let want = exact(f, &w, rows, cols, &x, batch);
            for k in tables() {
                let e8 = run(
                    k,
                    &Weights {
                        f,
                        w: &w,
                        rows,
                        cols,
                    },
                    &x,
                    batch,
                    Precision::Int8,
                );
                let e16 = run(
                    k,
                    &Weights {
                        f,
                        w: &w,
                        rows,
                        cols,
                    },
                    &x,
                    batch,
                    Precision::Int16,
                );
                let err = |y: &[f32]| {
                    y.iter()
                        .zip(&want)
                        .map(|(y, e)| (f64::from(*y) - e).abs())
                        .sum::<f64>()
                };
                let (err8, err16) = (err(&e8), err(&e16));
                assert!(
                    err16 * 50.0 < err8 || err8 == 0.0,
                    "{} {f:?} {rows}×{cols} batch {batch}: int16 error {err16:e} vs int8 {err8:e}",
                    k.path()
                );
            }
        }
    }
}

#[test]
fn int16_paths_match_scalar_and_ignore_the_batch() {
    let mut rng = rng(42);
    for f in WeightFormat::ALL {
        let (rows, cols, batch) = (
            37,
            if f.is_quantized() {
                fit_cols(f, 288)
            } else {
                33
            },
            6,
        );
        let w = raw_weights(&mut rng, f, rows, cols);
        let x = activations(&mut rng, batch * cols);
        let want = run(
            scalar(),
            &Weights {
                f,
                w: &w,
                rows,
                cols,
            },
            &x,
            batch,
            Precision::Int16,
        );
        for k in tables() {
            let got = run(
                k,
                &Weights {
                    f,
                    w: &w,
                    rows,
                    cols,
                },
                &x,
                batch,
                Precision::Int16,
            );
            // The cross-path tolerance of int8: the digits are combined exactly in
            // integers, so int16 adds the same number of rounded float terms.
            let wm = weight_magnitudes(f, &w, cols);
            for b in 0..batch {
                for r in 0..rows {
                    let mag: f32 = wm[r * cols..(r + 1) * cols]
                        .iter()
                        .zip(&x[b * cols..(b + 1) * cols])
                        .map(|(w, x)| w * x.abs() * 1.01)
                        .sum();
                    let tol = tolerance(f, cols, mag);
                    let (g, e) = (got[b * rows + r], want[b * rows + r]);
                    assert!(
                        (g - e).abs() <= tol,
                        "{} {f:?} y[{b}][{r}] = {g}, scalar {e}, tol {tol}",
                        k.path()
                    );
                }
            }
            for b in 0..batch {
                let alone = run(
                    k,
                    &Weights {
                        f,
                        w: &w,
                        rows,
                        cols,
                    },
                    &x[b * cols..(b + 1) * cols],
                    1,
                    Precision::Int16,
                );
                assert_eq!(
                    alone,
                    got[b * rows..(b + 1) * rows],
                    "{} {f:?} batch row {b}",
                    k.path()
                );
            }
        }
    }
}

#[test]
fn precision_names_round_trip() {
    for p in [Precision::Int8, Precision::Int16] {
        assert_eq!(Precision::from_name(p.name()), Some(p));
    }
    assert_eq!(Precision::from_name("fp4"), None);
    assert_eq!(Precision::default(), Precision::Int8);
}
