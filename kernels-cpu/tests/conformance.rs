//! Every kernel path this host supports against the scalar reference.
//!
//! Tolerance: two paths add the same rounded products in different orders (SIMD lanes,
//! pairs of blocks, FMA), so an output may differ by [`common::tolerance`]:
//! `2·(terms + 16)·ε·Σ|products|`, `terms` being the number of f32 terms summed (2 per
//! block for the quantized formats, 1 per column for the float ones). Everything integer
//! (activation quantization, block dot products) must match exactly, which the tests with
//! integer-valued inputs check through bit-identical outputs. Within one path, a result
//! never depends on the batch size, the tiling, `matmul_many` or the thread count: those
//! comparisons are exact.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use kernels_cpu::{
    Activations, KernelError, KernelPath, Kernels, Precision, QMatrix, WeightFormat,
};
use rand::RngExt;

/// One matmul problem: weights `w` (`rows × cols` of format `f`) and activations `x`
/// (`batch × cols`), quantized with `precision` for the quantized formats.
#[derive(Clone, Copy)]
struct Case<'a> {
    f: WeightFormat,
    w: &'a [u8],
    rows: usize,
    cols: usize,
    x: &'a [f32],
    batch: usize,
    precision: Precision,
}

/// Both activation precisions.
const PRECISIONS: [Precision; 3] = [Precision::Int8, Precision::Int16, Precision::Int8PerToken];

impl Case<'_> {
    /// `y = W·x` with `k`, on padded copies of the weight bytes and of `x` starting `off`
    /// bytes / `off % 3` values in.
    fn run(&self, k: &Kernels, off: usize) -> (Vec<f32>, Activations) {
        let wbuf = padded(self.w, off, 7 + off);
        let m = QMatrix::new(self.f, self.rows, self.cols, &wbuf[off..off + self.w.len()]).unwrap();
        let xo = off % 3;
        let xbuf = padded_f32(self.x, xo, 5);
        let mut a = Activations::with_precision(self.precision);
        a.prepare_with(
            k,
            self.f,
            &xbuf[xo..xo + self.x.len()],
            self.batch,
            self.cols,
        );
        let mut y = vec![f32::NAN; self.batch * self.rows];
        k.matmul(&m, &a, &mut y).unwrap();
        (y, a)
    }

    /// Checks `got` against the scalar answer `want` (computed from activations `a`)
    /// within the documented tolerance.
    fn assert_close(&self, path: KernelPath, a: &Activations, want: &[f32], got: &[f32]) {
        let (f, rows, cols) = (self.f, self.rows, self.cols);
        let wm = weight_magnitudes(f, self.w, cols);
        for b in 0..a.batch() {
            let am = activation_magnitudes(a, b);
            for r in 0..rows {
                let mag: f32 = wm[r * cols..(r + 1) * cols]
                    .iter()
                    .zip(&am)
                    .map(|(w, a)| w * a)
                    .sum();
                let (g, e) = (got[b * rows + r], want[b * rows + r]);
                let tol = tolerance(f, cols, mag);
                assert!(
                    (g - e).abs() <= tol || g == e,
                    "{path} {f:?} {:?} rows {rows} cols {cols} batch {}: y[{b}][{r}] = {g}, \
                     scalar {e}, |Δ| {} > tol {tol}",
                    self.precision,
                    a.batch(),
                    (g - e).abs()
                );
            }
        }
    }
}

fn cols_for(f: WeightFormat) -> &'static [usize] {
    match f.block_len() {
        // TQ1_0, TQ2_0: 1, 2, 3 and 9 octets; 10 (column blocks of 8, then 2).
        256 => &[256, 512, 768, 2304, 2560],
        // I2_S: half octets (tail pairs) and whole ones, around the column blocks.
        128 => &[128, 256, 384, 640, 2176, 2432],
        32 => &[32, 64, 96, 160, 256, 288, 576, 1536, 2336],
        _ => &[1, 7, 8, 9, 33, 64, 576],
    }
}

#[test]
fn simd_paths_match_scalar_on_ragged_shapes_and_misaligned_slices() {
    let mut rng = rng(1);
    for precision in PRECISIONS {
        for f in WeightFormat::ALL {
            for &cols in cols_for(f) {
                for (i, &rows) in [1usize, 2, 3, 4, 5, 7, 8, 13, 31, 67].iter().enumerate() {
                    let batch = [1usize, 2, 3, 4, 5, 6, 7, 8, 16, 17][(i + cols) % 10];
                    let off = (i * 3 + cols) % 8;
                    let w = raw_weights(&mut rng, f, rows, cols);
                    let x = activations(&mut rng, batch * cols);
                    let case = Case {
                        f,
                        w: &w,
                        rows,
                        cols,
                        x: &x,
                        batch,
                        precision,
                    };
                    let (want, a) = case.run(scalar(), off);
                    for k in tables() {
                        let (got, _) = case.run(k, off);
                        case.assert_close(k.path(), &a, &want, &got);
                    }
                }
            }
        }
    }
}

#[test]
fn activation_quantization_is_bit_identical_on_every_path() {
    let mut rng = rng(2);
    for precision in [Precision::Int8, Precision::Int16] {
        for cols in [32, 64, 96, 576, 1536] {
            let x = activations(&mut rng, 3 * cols);
            let mut want = Activations::with_precision(precision);
            want.prepare_with(scalar(), WeightFormat::Q4_1, &x, 3, cols);
            for k in tables() {
                let mut got = Activations::with_precision(precision);
                got.prepare_with(k, WeightFormat::Q4_1, &x, 3, cols);
                for b in 0..3 {
                    let (w, g) = (
                        want.quantized_row(b).unwrap(),
                        got.quantized_row(b).unwrap(),
                    );
                    for j in 0..w.blocks() {
                        let (w, g) = (w.block(j), g.block(j));
                        assert_eq!(
                            (w.qs, w.d.to_bits(), w.sum),
                            (g.qs, g.d.to_bits(), g.sum),
                            "{} {precision:?} cols {cols} row {b} block {j}",
                            k.path()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn activation_quantization_follows_q8_0() {
    let mut rng = rng(3);
    let x = activations(&mut rng, 40 * 32);
    let mut a = Activations::new();
    a.prepare(WeightFormat::Q8_0, &x, 1, x.len());
    let r = a.quantized_row(0).unwrap();
    for (j, blk) in x.chunks(32).enumerate() {
        let want = kernels_cpu::formats::q8_0::BlockQ8_0::quantize(blk.try_into().unwrap());
        let got = r.block(j);
        assert_eq!(got.qs, want.qs.map(i16::from), "block {j}");
        assert_eq!(half::f16::from_f32(got.d), want.d, "block {j}");
        assert_eq!(got.sum, got.qs.iter().map(|&q| i32::from(q)).sum::<i32>());
        assert!(
            got.qs.iter().all(|&q| (-127..=127).contains(&q)),
            "activations stay within ±127"
        );
    }
}

/// Integer-valued weights with scale 1 and activation rows whose every block has
/// max |x| = 127 (so the activation scale is exactly 1): every product and partial sum
/// is an integer below 2²⁴, so every path must give exactly the scalar answer.
#[test]
fn integer_valued_inputs_give_bit_identical_results_on_every_path() {
    let mut rng = rng(4);
    let (rows, cols, batch) = (9, 576, 6);
    let mut x: Vec<f32> = (0..batch * cols)
        .map(|_| rng.random_range(-127..=127) as f32)
        .collect();
    for blk in x.chunks_mut(32) {
        blk[rng.random_range(0..32)] = if rng.random() { 127.0 } else { -127.0 };
    }
    let one = half::f16::from_f32(1.0).to_le_bytes();
    for f in QUANTIZED {
        let mut w = raw_weights(&mut rng, f, rows, cols);
        for blk in w.chunks_exact_mut(f.block_bytes()) {
            blk[..2].copy_from_slice(&one);
            if f == WeightFormat::Q4_1 {
                let m = half::f16::from_f32(rng.random_range(-8..8) as f32);
                blk[2..4].copy_from_slice(&m.to_le_bytes());
            }
        }
        let case = Case {
            f,
            w: &w,
            rows,
            cols,
            x: &x,
            batch,
            precision: Precision::Int8,
        };
        let (want, _) = case.run(scalar(), 0);
        assert!(
            want.iter()
                .all(|v| v.fract() == 0.0 && v.abs() < (1 << 24) as f32)
        );
        for k in tables() {
            let (got, _) = case.run(k, 3);
            assert_eq!(got, want, "{} {f:?}", k.path());
        }
    }
}

#[test]
fn edge_cases_match_scalar() {
    let mut rng = rng(5);
    let (rows, cols, batch) = (6, 96, 5);
    for f in WeightFormat::ALL {
        let cols = fit_cols(f, cols);
        let mut w = raw_weights(&mut rng, f, rows, cols);
        let bb = f.block_bytes();
        let body = f.row_bytes(cols) * rows;
        let nblk = body / bb;
        let d_at = bb.saturating_sub(2);
        for (i, blk) in w[..body].chunks_exact_mut(bb).enumerate() {
            match (f, i % 4) {
                // A zero scale (and for Q4_1 a zero minimum too).
                (WeightFormat::Q8_0 | WeightFormat::Q4_0 | WeightFormat::Q4_1, 0) => {
                    blk[..2].fill(0)
                }
                // Extreme codes: all −128 / all nibbles 15 with the largest f16 scale.
                (WeightFormat::Q8_0, 1) => {
                    blk[..2].copy_from_slice(&half::f16::MAX.to_le_bytes());
                    blk[2..].fill(0x80);
                }
                (WeightFormat::Q8_0, 2) => blk[2..].fill(0x7f),
                (WeightFormat::Q4_0 | WeightFormat::Q4_1, 1) => {
                    blk[..2].copy_from_slice(&half::f16::MAX.to_le_bytes());
                    let qs = if f == WeightFormat::Q4_0 { 2 } else { 4 };
                    blk[qs..].fill(0xff);
                }
                (WeightFormat::Q4_0 | WeightFormat::Q4_1, 2) => {
                    let qs = if f == WeightFormat::Q4_0 { 2 } else { 4 };
                    blk[qs..].fill(0x00);
                }
                // Ternary: a zero scale; all +1 (and TQ1_0's largest byte) with the
                // largest f16 scale; all −1; all code 3 (invalid, still computed alike).
                (WeightFormat::Tq1_0 | WeightFormat::Tq2_0, 0) => blk[d_at..].fill(0),
                (WeightFormat::Tq1_0 | WeightFormat::Tq2_0, 1) => {
                    blk[d_at..].copy_from_slice(&half::f16::MAX.to_le_bytes());
                    blk[..d_at].fill(if f == WeightFormat::Tq2_0 { 0xaa } else { 0xff });
                }
                (WeightFormat::Tq1_0 | WeightFormat::Tq2_0, 2) => blk[..d_at].fill(0),
                (WeightFormat::Tq2_0 | WeightFormat::I2S, 3) => blk[..d_at.max(32)].fill(0xff),
                (WeightFormat::I2S, 1) => blk.fill(0xaa),
                (WeightFormat::I2S, 2) => blk.fill(0x00),
                _ => {}
            }
        }
        assert!(nblk > 0);
        // Activations: a zero row, a row of ±1e4, a row at the int8 extremes (every value
        // ±amax), and random rows.
        let mut x = activations(&mut rng, batch * cols);
        x[..cols].fill(0.0);
        for (i, v) in x[cols..2 * cols].iter_mut().enumerate() {
            *v = if i % 3 == 0 { -1e4 } else { 1e4 };
        }
        for (i, v) in x[2 * cols..3 * cols].iter_mut().enumerate() {
            *v = if i % 2 == 0 { 5.0 } else { -5.0 };
        }
        for precision in PRECISIONS {
            let case = Case {
                f,
                w: &w,
                rows,
                cols,
                x: &x,
                batch,
                precision,
            };
            let (want, a) = case.run(scalar(), 1);
            assert!(
                want[..rows].iter().all(|&v| v == 0.0),
                "{f:?}: zero input gives zero"
            );
            for k in tables() {
                let (got, _) = case.run(k, 5);
                assert!(
                    got[..rows].iter().all(|&v| v == 0.0),
                    "{} {f:?}: zero input",
                    k.path()
                );
                case.assert_close(k.path(), &a, &want, &got);
            }
        }
    }
}

#[test]
fn matmul_equals_row_by_row_matvec_exactly() {
    let mut rng = rng(6);
    for f in WeightFormat::ALL {
        // 288 columns: one octet and half a pair; 2336: column blocks of octets, then a
        // block of tail. Float formats: 75 columns (9 groups of 8, then 3) over 37 rows
        // (row blocks of 8, then 5), and 2347, whose last column block ends in a partial
        // set of chains and a 3-column tail.
        let shapes = if f.is_quantized() {
            [(37, 288), (9, 2336)]
        } else {
            [(37, 75), (9, 2347)]
        };
        for (rows, cols) in shapes {
            let cols = fit_cols(f, cols);
            let w = raw_weights(&mut rng, f, rows, cols);
            // Every batch tile shape (1–4 rows) with every precision: the per-token
            // ternary kernels have their own tiles.
            let pairs = [2, 3, 4, 5, 8, 17]
                .into_iter()
                .flat_map(|b| PRECISIONS.iter().map(move |p| (b, p)));
            for (batch, precision) in pairs {
                let x = activations(&mut rng, batch * cols);
                for k in tables() {
                    let case = Case {
                        f,
                        w: &w,
                        rows,
                        cols,
                        x: &x,
                        batch,
                        precision: *precision,
                    };
                    let (y, _) = case.run(k, 0);
                    for b in 0..batch {
                        let one = Case {
                            x: &x[b * cols..(b + 1) * cols],
                            batch: 1,
                            ..case
                        };
                        let (yb, _) = one.run(k, 0);
                        assert_eq!(
                            &y[b * rows..(b + 1) * rows],
                            &yb[..],
                            "{} {f:?} {precision:?} batch {batch} row {b}",
                            k.path()
                        );
                    }
                }
            }
        }
    }
}

#[test]
fn matmul_many_equals_separate_matmuls_exactly() {
    let mut rng = rng(7);
    for f in WeightFormat::ALL {
        let cols = fit_cols(f, 576);
        let shapes = [576usize, 192, 192, 3, 64];
        let ws: Vec<Vec<u8>> = shapes
            .iter()
            .map(|&r| raw_weights(&mut rng, f, r, cols))
            .collect();
        let ms: Vec<QMatrix<'_>> = ws
            .iter()
            .zip(shapes)
            .map(|(w, r)| QMatrix::new(f, r, cols, w).unwrap())
            .collect();
        for (batch, precision) in [
            (1, Precision::Int8),
            (5, Precision::Int8),
            (5, Precision::Int16),
        ] {
            let x = activations(&mut rng, batch * cols);
            for k in tables() {
                let mut a = Activations::with_precision(precision);
                a.prepare_with(k, f, &x, batch, cols);
                let mut ys: Vec<Vec<f32>> = shapes.iter().map(|r| vec![0.0; r * batch]).collect();
                let mut jobs: Vec<(&QMatrix<'_>, &mut [f32])> = ms
                    .iter()
                    .zip(ys.iter_mut())
                    .map(|(m, y)| (m, &mut y[..]))
                    .collect();
                k.matmul_many(&mut jobs, &a).unwrap();
                for (m, y) in ms.iter().zip(&ys) {
                    let mut want = vec![0.0; m.rows() * batch];
                    k.matmul(m, &a, &mut want).unwrap();
                    assert_eq!(y, &want, "{} {f:?} rows {}", k.path(), m.rows());
                }
            }
        }
    }
}

#[test]
#[cfg_attr(target_family = "wasm", ignore = "wasm32 has no threads")]
fn results_are_identical_for_1_2_and_3_threads() {
    let mut rng = rng(8);
    let pools: Vec<_> = [1, 2, 3]
        .map(|n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        })
        .into();
    for f in WeightFormat::ALL {
        for (i, (rows, cols, batch)) in
            [(1536, 576, 1), (577, 1536, 3), (2048, 64, 9), (96, 2336, 6)]
                .into_iter()
                .enumerate()
        {
            let cols = if f.is_quantized() {
                fit_cols(f, cols)
            } else {
                cols + 3
            };
            let w = raw_weights(&mut rng, f, rows, cols);
            let x = activations(&mut rng, batch * cols);
            let m = QMatrix::new(f, rows, cols, &w).unwrap();
            for k in tables() {
                let mut a = Activations::with_precision(PRECISIONS[i % 2]);
                a.prepare_with(k, f, &x, batch, cols);
                let ys: Vec<Vec<f32>> = pools
                    .iter()
                    .map(|p| {
                        let mut y = vec![0.0; rows * batch];
                        p.install(|| k.matmul(&m, &a, &mut y)).unwrap();
                        y
                    })
                    .collect();
                assert_eq!(ys[0], ys[1], "{} {f:?} 1 vs 2 threads", k.path());
                assert_eq!(ys[0], ys[2], "{} {f:?} 1 vs 3 threads", k.path());
            }
        }
    }
}

/// llama.cpp's `tests/test-quantize-fns.cpp`: on `0.1 + 2·cos(i + offset)`, 4096 values,
/// the round-trip error `sqrt(Σ Δ²) / n` must stay below 0.002 and the quantized dot
/// product error `|dot − exact| / n` below 0.02.
#[test]
fn quantization_error_is_within_llama_cpp_bounds() {
    let n = 32 * 128;
    let data = |off: f32| {
        (0..n)
            .map(|i| 0.1 + 2.0 * (i as f32 + off).cos())
            .collect::<Vec<f32>>()
    };
    let (x1, x2) = (data(0.0), data(1.0));
    let exact: f64 = x1.iter().zip(&x2).map(|(a, b)| f64::from(a * b)).sum();
    for f in WeightFormat::ALL.into_iter().filter(|f| !f.is_ternary()) {
        let w = quantize(f, &x1);
        let m = QMatrix::new(f, 1, n, &w).unwrap();
        let mut back = vec![0.0; n];
        m.dequantize_row(0, &mut back);
        let sq: f64 = x1
            .iter()
            .zip(&back)
            .map(|(a, b)| f64::from(a - b).powi(2))
            .sum();
        let rmse = sq.sqrt() as f32 / n as f32;
        assert!(rmse < 0.002, "{f:?} quantization error {rmse}");
        for k in tables() {
            let mut a = Activations::new();
            a.prepare_with(k, f, &x2, 1, n);
            let mut y = [0.0f32];
            k.matmul(&m, &a, &mut y).unwrap();
            let err = (f64::from(y[0]) - exact).abs() as f32 / n as f32;
            assert!(err < 0.02, "{} {f:?} dot product error {err}", k.path());
        }
    }
}

#[test]
fn dequantize_row_matches_the_block_types() {
    let mut rng = rng(9);
    let x: Vec<f32> = (0..3 * 64).map(|_| rng.random_range(-4.0..4.0)).collect();
    // The ternary block types are checked in tests/ternary.rs.
    for f in WeightFormat::ALL.into_iter().filter(|f| !f.is_ternary()) {
        let w = quantize(f, &x);
        let m = QMatrix::new(f, 3, 64, &w).unwrap();
        let mut row = vec![0.0; 64];
        m.dequantize_row(2, &mut row);
        let want: Vec<f32> = match f {
            WeightFormat::Q4_1 => w[2 * 40..]
                .chunks(20)
                .flat_map(|b| {
                    kernels_cpu::formats::q4_1::BlockQ4_1::from_bytes(b.try_into().unwrap())
                        .dequantize()
                })
                .collect(),
            WeightFormat::Q4_0 => w[2 * 36..]
                .chunks(18)
                .flat_map(|b| {
                    kernels_cpu::formats::q4_0::BlockQ4_0::from_bytes(b.try_into().unwrap())
                        .dequantize()
                })
                .collect(),
            WeightFormat::Q8_0 => w[2 * 68..]
                .chunks(34)
                .flat_map(|b| {
                    kernels_cpu::formats::q8_0::BlockQ8_0::from_bytes(b.try_into().unwrap())
                        .dequantize()
                })
                .collect(),
            WeightFormat::F32 => x[128..].to_vec(),
            WeightFormat::F16 => x[128..]
                .iter()
                .map(|&v| half::f16::from_f32(v).to_f32())
                .collect(),
            WeightFormat::BF16 => x[128..]
                .iter()
                .map(|&v| half::bf16::from_f32(v).to_f32())
                .collect(),
            WeightFormat::Tq1_0 | WeightFormat::Tq2_0 | WeightFormat::I2S => unreachable!(),
        };
        assert_eq!(row, want, "{f:?}");
    }
}

#[test]
fn shape_errors_name_the_offending_values() {
    let w = vec![0u8; 2 * 20];
    assert_eq!(
        QMatrix::new(WeightFormat::Q4_1, 2, 48, &w).unwrap_err(),
        KernelError::ColsNotBlockMultiple {
            format: WeightFormat::Q4_1,
            cols: 48,
            block_len: 32
        }
    );
    assert_eq!(
        QMatrix::new(WeightFormat::Q4_1, 3, 32, &w).unwrap_err(),
        KernelError::DataSize {
            format: WeightFormat::Q4_1,
            rows: 3,
            cols: 32,
            expected: 60,
            got: 40
        }
    );
    let m = QMatrix::new(WeightFormat::Q4_1, 2, 32, &w).unwrap();
    let mut a = Activations::new();
    let mut y = [0.0; 2];
    assert!(matches!(
        kernels_cpu::matmul(&m, &a, &mut y),
        Err(KernelError::ActivationFormat { prepared: None, .. })
    ));
    a.prepare(WeightFormat::F32, &[0.0; 32], 1, 32);
    assert!(matches!(
        kernels_cpu::matmul(&m, &a, &mut y),
        Err(KernelError::ActivationFormat { .. })
    ));
    a.prepare(WeightFormat::Q4_0, &[0.0; 64], 1, 64);
    assert_eq!(
        kernels_cpu::matmul(&m, &a, &mut y),
        Err(KernelError::ColsMismatch {
            matrix_cols: 32,
            activation_cols: 64
        })
    );
    a.prepare(WeightFormat::Q4_1, &[0.0; 64], 2, 32);
    assert_eq!(
        kernels_cpu::matmul(&m, &a, &mut y),
        Err(KernelError::OutputSize {
            batch: 2,
            rows: 2,
            expected: 4,
            got: 2
        })
    );
    let mut y4 = [1.0; 4];
    kernels_cpu::matmul(&m, &a, &mut y4).unwrap();
    assert_eq!(y4, [0.0; 4]);
}

#[test]
fn paths_are_named_and_listed() {
    let paths = kernels_cpu::available_paths();
    assert_eq!(paths.last(), Some(&KernelPath::Scalar));
    assert!(paths.iter().any(|p| p.name() == kernels_cpu::active_path()));
    assert_eq!(
        KernelPath::from_name("AVX512"),
        Some(KernelPath::Avx512Vnni)
    );
    assert_eq!(
        KernelPath::from_name("neon-dotprod"),
        Some(KernelPath::NeonDotprod)
    );
    assert_eq!(KernelPath::from_name("sse9"), None);
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        assert!(paths.contains(&KernelPath::Avx2));
    }
    #[cfg(target_arch = "aarch64")]
    assert!(paths.contains(&KernelPath::Neon));
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    assert_eq!(paths, [KernelPath::Simd128, KernelPath::Scalar]);
    assert_eq!(KernelPath::from_name("simd128"), Some(KernelPath::Simd128));
}

#[test]
fn empty_shapes_are_fine_on_every_path() {
    for f in WeightFormat::ALL {
        for k in tables() {
            for (rows, cols, batch) in [(0, 64, 3), (5, 0, 2), (4, 32, 0), (0, 0, 0)] {
                let cols = fit_cols(f, cols);
                let w = vec![0u8; f.tensor_bytes(rows, cols)];
                let m = QMatrix::new(f, rows, cols, &w).unwrap();
                let mut a = Activations::new();
                a.prepare_with(k, f, &vec![1.0; batch * cols], batch, cols);
                let mut y = vec![f32::NAN; rows * batch];
                k.matmul(&m, &a, &mut y).unwrap();
                assert!(
                    y.iter().all(|&v| v == 0.0),
                    "{} {f:?} {rows}×{cols} batch {batch}",
                    k.path()
                );
            }
        }
    }
}
