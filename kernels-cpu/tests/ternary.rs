//! The ternary formats (TQ1_0, TQ2_0, I2_S): layouts, quantizers, the I2_S tensor tail,
//! `validate`, and exact agreement of every path on integer-valued problems. The
//! cross-path, batch and thread tests of `conformance.rs` cover them with every other
//! format.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use half::f16;
use kernels_cpu::{
    Activations, KernelError, Precision, QMatrix, WeightFormat,
    formats::{i2_s, tq1_0, tq2_0},
};
use rand::RngExt;

/// Ternary values `{−s, 0, s}` per 256-value run, so every format stores them exactly.
fn ternary_values(rng: &mut rand::rngs::StdRng, n: usize, s: f32) -> Vec<f32> {
    (0..n)
        .map(|_| f32::from(rng.random_range(-1i8..=1)) * s)
        .collect()
}

#[test]
fn ternary_values_round_trip_exactly() {
    let mut rng = rng(20);
    let (rows, cols) = (3, 768);
    // 0.75 is exact in f16, so the TQ block scale `max|x|` stores it exactly.
    let x = ternary_values(&mut rng, rows * cols, 0.75);
    for f in TERNARY {
        let w = quantize_matrix(f, &x, rows, cols);
        assert_eq!(w.len(), f.tensor_bytes(rows, cols), "{f:?}");
        let m = QMatrix::new(f, rows, cols, &w).unwrap();
        m.validate().unwrap();
        let mut back = vec![0.0; cols];
        for r in 0..rows {
            m.dequantize_row(r, &mut back);
            assert_eq!(back, x[r * cols..(r + 1) * cols], "{f:?} row {r}");
        }
    }
    assert_eq!(
        i2_s::dequantize_tensor(
            &quantize_matrix(WeightFormat::I2S, &x, rows, cols),
            rows,
            cols
        )
        .unwrap(),
        x
    );
}

#[test]
fn tq_quantizers_round_to_the_nearest_trit_of_the_block_absmax() {
    let mut x = vec![0.0f32; 512];
    x[0] = -2.0; // block 0: d = 2
    x[1] = 1.0; // 0.5 rounds away from zero: +1
    x[2] = -0.99; // −0.495: 0
    x[3] = 1.2; // 0.6: +1
    x[256] = 0.5; // block 1: d = 0.5, the rest 0
    x[257] = -0.2; // −0.4: 0
    for f in [WeightFormat::Tq1_0, WeightFormat::Tq2_0] {
        let w = quantize(f, &x);
        let mut y = vec![0.0; 512];
        QMatrix::new(f, 1, 512, &w)
            .unwrap()
            .dequantize_row(0, &mut y);
        let mut want = vec![0.0f32; 512];
        (want[0], want[1], want[3], want[256]) = (-2.0, 2.0, 2.0, 0.5);
        assert_eq!(y, want, "{f:?}");
    }
}

#[test]
fn block_types_agree_with_the_byte_functions() {
    let mut rng = rng(21);
    let x: Vec<f32> = (0..512).map(|_| rng.random_range(-3.0..3.0)).collect();
    let b1 = tq1_0::quantize_row_bytes(&x);
    let b2 = tq2_0::quantize_row_bytes(&x);
    let (mut y1, mut y2) = (vec![0.0; 512], vec![0.0; 512]);
    tq1_0::dequantize_row(&b1, &mut y1);
    tq2_0::dequantize_row(&b2, &mut y2);
    assert_eq!(y1, y2, "same trits, same scales");
    for (i, (c1, c2)) in b1.chunks(54).zip(b2.chunks(66)).enumerate() {
        let k1 = tq1_0::BlockTQ1_0::from_bytes(c1.try_into().unwrap());
        let k2 = tq2_0::BlockTQ2_0::from_bytes(c2.try_into().unwrap());
        assert_eq!(k1.to_bytes(), c1);
        assert_eq!(k2.to_bytes(), c2);
        assert_eq!(k1.dequantize(), y1[256 * i..256 * (i + 1)]);
        assert_eq!(k2.dequantize(), y2[256 * i..256 * (i + 1)]);
        let blk: &[f32; 256] = x[256 * i..256 * (i + 1)].try_into().unwrap();
        assert_eq!(tq1_0::BlockTQ1_0::quantize(blk), k1);
        assert_eq!(tq2_0::BlockTQ2_0::quantize(blk), k2);
    }
}

#[test]
fn i2_s_quantizer_follows_bitnet_cpp() {
    // scale = max|x| over the tensor; |x| < 1e-6 is 0; otherwise the sign.
    let mut x = vec![0.0f32; 256];
    x[0] = 0.3;
    x[1] = -5e-7;
    x[2] = -1e-5;
    x[200] = -1.5;
    let b = i2_s::quantize_tensor(&x, 2, 128);
    assert_eq!(b.len(), i2_s::tensor_bytes(256));
    assert_eq!(&b[64..68], &1.5f32.to_le_bytes());
    assert!(b[68..].iter().all(|&v| v == 0));
    let y = i2_s::dequantize_tensor(&b, 2, 128).unwrap();
    let mut want = vec![0.0f32; 256];
    (want[0], want[2], want[200]) = (1.5, -1.5, -1.5);
    assert_eq!(y, want);
    let m = QMatrix::new(WeightFormat::I2S, 2, 128, &b).unwrap();
    assert_eq!(m.tensor_scale(), Some(1.5));
    assert_eq!(m.data().len(), 64);
    assert_eq!(m.row_bytes(), 32);
}

#[test]
fn i2_s_tensor_size_and_scale_are_checked() {
    let good = i2_s::quantize_tensor(&[1.0; 256], 1, 256);
    assert_eq!(WeightFormat::I2S.tensor_bytes(1, 256), good.len());
    assert_eq!(
        QMatrix::new(WeightFormat::I2S, 1, 256, &good[..64]).unwrap_err(),
        KernelError::DataSize {
            format: WeightFormat::I2S,
            rows: 1,
            cols: 256,
            expected: 96,
            got: 64
        }
    );
    assert_eq!(
        QMatrix::new(WeightFormat::I2S, 1, 192, &good).unwrap_err(),
        KernelError::ColsNotBlockMultiple {
            format: WeightFormat::I2S,
            cols: 192,
            block_len: 128
        }
    );
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut w = good.clone();
        w[64..68].copy_from_slice(&bad.to_le_bytes());
        let err = QMatrix::new(WeightFormat::I2S, 1, 256, &w).unwrap_err();
        assert_eq!(
            err,
            KernelError::NonFiniteTensorScale {
                format: WeightFormat::I2S,
                bits: bad.to_bits()
            }
        );
        assert!(err.to_string().contains("not a finite number"), "{err}");
    }
}

#[test]
fn format_table_is_complete() {
    for (f, id, len, bytes) in [
        (WeightFormat::Tq1_0, 34, 256, 54),
        (WeightFormat::Tq2_0, 35, 256, 66),
        (WeightFormat::I2S, 36, 128, 32),
    ] {
        assert_eq!(f.ggml_type(), id);
        assert_eq!(WeightFormat::from_ggml_type(id), Some(f));
        assert_eq!((f.block_len(), f.block_bytes()), (len, bytes));
        assert!(f.is_quantized() && f.is_ternary());
        assert!(WeightFormat::ALL.contains(&f));
    }
    assert_eq!(WeightFormat::Tq2_0.tensor_bytes(2560, 6912), 2560 * 27 * 66);
    assert_eq!(
        WeightFormat::I2S.tensor_bytes(2560, 6912),
        2560 * 6912 / 4 + 32
    );
    assert_eq!(WeightFormat::Q4_0.tensor_bytes(3, 64), 3 * 36);
}

#[test]
fn validate_names_the_row_and_column_of_a_code_3() {
    let mut rng = rng(22);
    let (rows, cols) = (600, 512);
    for f in [WeightFormat::Tq2_0, WeightFormat::I2S] {
        let w = ternary_weights(&mut rng, f, rows, cols);
        QMatrix::new(f, rows, cols, &w).unwrap().validate().unwrap();
        for (row, col) in [(0, 0), (517, 511), (299, 300), (1, 129)] {
            let mut bad = w.clone();
            let rb = f.row_bytes(cols);
            let (byte, shift) = match f {
                WeightFormat::Tq2_0 => {
                    let (blk, i) = (col / 256, col % 256);
                    (66 * blk + 32 * (i / 128) + i % 32, 2 * ((i / 32) % 4))
                }
                _ => (32 * (col / 128) + col % 32, 6 - 2 * ((col / 32) % 4)),
            };
            bad[row * rb + byte] |= 3 << shift;
            // A second one later must not hide the first.
            bad[(rows - 1) * rb] |= 0xff;
            let err = QMatrix::new(f, rows, cols, &bad)
                .unwrap()
                .validate()
                .unwrap_err();
            assert_eq!(
                err,
                KernelError::InvalidTernaryCode {
                    format: f,
                    row,
                    col
                },
                "{f:?}"
            );
            assert!(err.to_string().contains("code 3"), "{err}");
        }
    }
}

#[test]
fn validate_rejects_non_finite_block_scales() {
    let mut rng = rng(23);
    let (rows, cols) = (5, 768);
    for f in [
        WeightFormat::Tq1_0,
        WeightFormat::Tq2_0,
        WeightFormat::Q8_0,
        WeightFormat::Q4_0,
        WeightFormat::Q4_1,
    ] {
        let w = if f.is_ternary() {
            ternary_weights(&mut rng, f, rows, cols)
        } else {
            quantize_matrix(f, &activations(&mut rng, rows * cols), rows, cols)
        };
        QMatrix::new(f, rows, cols, &w).unwrap().validate().unwrap();
        let at = match f {
            WeightFormat::Tq1_0 => 52,
            WeightFormat::Tq2_0 => 64,
            _ => 0,
        };
        for bits in [0x7c00u16, 0xfc00, 0x7e00, 0x7c01] {
            let mut bad = w.clone();
            let (row, block) = (3, 2);
            let o = row * f.row_bytes(cols) + block * f.block_bytes() + at;
            bad[o..o + 2].copy_from_slice(&bits.to_le_bytes());
            assert_eq!(
                QMatrix::new(f, rows, cols, &bad).unwrap().validate(),
                Err(KernelError::NonFiniteScale {
                    format: f,
                    row,
                    block,
                    bits
                }),
                "{f:?}"
            );
        }
        // The largest finite f16 and negative scales are fine.
        let mut ok = w.clone();
        ok[at..at + 2].copy_from_slice(&f16::MAX.to_le_bytes());
        ok[at + f.block_bytes()..at + f.block_bytes() + 2]
            .copy_from_slice(&f16::from_f32(-1.0).to_le_bytes());
        QMatrix::new(f, rows, cols, &ok)
            .unwrap()
            .validate()
            .unwrap();
    }
}

/// Integer-valued ternary problems (scale 1, activation blocks with max |x| = 127 so
/// their scale is 1; 16-bit activations with max |x| = 32512): every partial sum is an
/// integer below 2²⁴, so every path must give exactly the scalar answer.
#[test]
fn integer_valued_ternary_problems_give_identical_results_on_every_path() {
    let mut rng = rng(24);
    for (precision, amax) in [
        (Precision::Int8, 127),
        (Precision::Int16, 32512),
        (Precision::Int8PerToken, 127),
    ] {
        for f in TERNARY {
            for (rows, cols, batch) in [(9, 2560, 1), (13, 768, 6), (5, 2304, 9)] {
                let cols = fit_cols(f, cols);
                let lim = if precision == Precision::Int16 {
                    64
                } else {
                    127
                };
                let mut x: Vec<f32> = (0..batch * cols)
                    .map(|_| rng.random_range(-lim..=lim) as f32)
                    .collect();
                for blk in x.chunks_mut(32) {
                    blk[rng.random_range(0..32)] = if rng.random() { amax } else { -amax } as f32;
                }
                let w = quantize_matrix(f, &ternary_values(&mut rng, rows * cols, 1.0), rows, cols);
                let m = QMatrix::new(f, rows, cols, &w).unwrap();
                let mut want = vec![0.0; rows * batch];
                let mut a = Activations::with_precision(precision);
                a.prepare_with(scalar(), f, &x, batch, cols);
                scalar().matmul(&m, &a, &mut want).unwrap();
                let exact: Vec<f32> = (0..batch)
                    .flat_map(|b| {
                        let xb = &x[b * cols..(b + 1) * cols];
                        (0..rows).map(move |r| (r, xb))
                    })
                    .map(|(r, xb)| {
                        let mut row = vec![0.0; cols];
                        m.dequantize_row(r, &mut row);
                        row.iter().zip(xb).map(|(w, x)| w * x).sum::<f32>()
                    })
                    .collect();
                if precision != Precision::Int16 {
                    assert_eq!(want, exact, "{f:?}: the scalar answer is the exact one");
                }
                for k in tables() {
                    let mut a = Activations::with_precision(precision);
                    a.prepare_with(k, f, &x, batch, cols);
                    let mut got = vec![f32::NAN; rows * batch];
                    k.matmul(&m, &a, &mut got).unwrap();
                    assert_eq!(
                        got,
                        want,
                        "{} {f:?} {precision:?} {rows}×{cols} batch {batch}",
                        k.path()
                    );
                }
            }
        }
    }
}
