//! The GPU matmul of every format against kernels-cpu's scalar reference: the weights
//! dequantized by `QMatrix::dequantize_row` (the reference decoder the CPU kernels are
//! tested against) and dotted in f64, on random and ragged shapes, batch 1..=16.
//!
//! Needs a GPU adapter: in CI and on the development machine that is Mesa lavapipe
//! (Debian `mesa-vulkan-drivers`, installed by `cargo xtask setup`).
//!
//! Tolerance: the GPU sums in f32, each invocation over its strided share of the row and
//! then a 64-way tree, so an output may differ from the exact sum by about
//! `2·terms·ε·Σ|w·x|` with `terms = cols/64 + 64 + 8` (the longest chain of additions).

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use futures::executor::block_on;
use kernels_cpu::{QMatrix, WeightFormat, formats::i2_s};
use kernels_wgsl::{Gpu, GpuError, GpuMatrix, GpuOptions, MAX_BATCH, MatmulTiling};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// The formats with a GPU kernel.
const FORMATS: [WeightFormat; 8] = [
    WeightFormat::F32,
    WeightFormat::F16,
    WeightFormat::BF16,
    WeightFormat::Q8_0,
    WeightFormat::Q4_0,
    WeightFormat::Q4_1,
    WeightFormat::Tq2_0,
    WeightFormat::I2S,
];

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| open(GpuOptions::default()))
}

fn open(options: GpuOptions) -> Gpu {
    block_on(Gpu::new(&options)).unwrap_or_else(|e| {
        panic!(
            "{e} (the GPU tests need an adapter; on Debian: apt-get install mesa-vulkan-drivers)"
        )
    })
}

/// `rows × cols` random values encoded in `format`, ternary-shaped for the ternary ones.
fn encode(format: WeightFormat, rng: &mut StdRng, rows: usize, cols: usize) -> Vec<u8> {
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| {
            if format.is_ternary() {
                f32::from(rng.random_range(-1i8..=1)) * 0.37
            } else {
                rng.random_range(-1.0f32..1.0)
            }
        })
        .collect();
    if format == WeightFormat::I2S {
        return i2_s::quantize_tensor(&values, rows, cols);
    }
    let encoder = kernels_cpu::row_encoder(format).unwrap();
    let mut bytes = vec![0u8; format.tensor_bytes(rows, cols)];
    for (src, dst) in values
        .chunks(cols)
        .zip(bytes.chunks_mut(format.row_bytes(cols)))
    {
        encoder(src, dst);
    }
    bytes
}

/// Checks the GPU's `y` for `w` and `x` against the reference.
fn check(w: &QMatrix<'_>, x: &[f32], batch: usize, got: &[f32]) {
    let (rows, cols) = (w.rows(), w.cols());
    assert_eq!(got.len(), batch * rows);
    let terms = (cols / 64 + 64 + 8) as f64;
    let mut row = vec![0.0f32; cols];
    for r in 0..rows {
        w.dequantize_row(r, &mut row);
        for b in 0..batch {
            let xb = &x[b * cols..(b + 1) * cols];
            let exact: f64 = row
                .iter()
                .zip(xb)
                .map(|(&w, &x)| f64::from(w) * f64::from(x))
                .sum();
            let mag: f64 = row
                .iter()
                .zip(xb)
                .map(|(&w, &x)| f64::from((w * x).abs()))
                .sum();
            let tol = 2.0 * terms * f64::from(f32::EPSILON) * mag + 1e-30;
            let g = f64::from(got[b * rows + r]);
            assert!(
                (g - exact).abs() <= tol,
                "{} {rows}×{cols} batch {batch}: y[{b}][{r}] = {g}, reference {exact}, |Δ| {} > {tol}",
                w.format(),
                (g - exact).abs()
            );
        }
    }
}

fn run(gpu: &Gpu, format: WeightFormat, rows: usize, cols: usize, batches: &[usize], seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let bytes = encode(format, &mut rng, rows, cols);
    let w = QMatrix::new(format, rows, cols, &bytes).unwrap();
    w.validate().unwrap();
    let gw = GpuMatrix::upload(gpu, &w).unwrap();
    for &batch in batches {
        let x: Vec<f32> = (0..batch * cols)
            .map(|_| rng.random_range(-2.0f32..2.0))
            .collect();
        let y = block_on(gpu.matmul_host(&gw, &x, batch)).unwrap();
        check(&w, &x, batch, &y);
    }
}

#[test]
fn every_format_matches_the_reference_at_every_batch() {
    let gpu = gpu();
    let all: Vec<usize> = (1..=MAX_BATCH).collect();
    for (i, format) in FORMATS.into_iter().enumerate() {
        // Three blocks (five values for the float formats) per row, 13 rows.
        let cols = if format.block_len() == 1 {
            5
        } else {
            3 * format.block_len()
        };
        run(gpu, format, 13, cols, &all, 100 + i as u64);
    }
}

#[test]
fn ragged_and_wide_shapes_match_the_reference() {
    let gpu = gpu();
    let gpu_tiled = open(GpuOptions {
        matmul_tiling: Some(MatmulTiling::for_adapter(false)),
        ..GpuOptions::default()
    });
    for (i, format) in FORMATS.into_iter().enumerate() {
        let shapes: &[(usize, usize)] = if format.block_len() == 1 {
            // Odd column counts: F16 and BF16 rows then start in the middle of a word.
            &[(1, 1), (7, 37), (70, 75), (3, 2049)]
        } else {
            &[
                (1, format.block_len()),
                (70, 5 * format.block_len()),
                (3, 2560),
            ]
        };
        for (j, &(rows, cols)) in shapes.iter().enumerate() {
            if !cols.is_multiple_of(format.block_len()) {
                continue;
            }
            for g in [gpu, &gpu_tiled] {
                let seed = 200 + 10 * i as u64 + j as u64;
                run(g, format, rows, cols, &[1, 3, 8, 16], seed);
            }
        }
    }
}

#[test]
fn matrices_larger_than_a_binding_are_split_by_rows() {
    // Weight chunks of at most 4 KiB: a 70-row Q4_0 matrix of 512 columns (288 bytes per row)
    // takes five chunks of at most 14 rows; an F16 one with odd columns takes several too.
    let gpu = open(GpuOptions {
        max_weight_chunk_bytes: Some(4096),
        ..GpuOptions::default()
    });
    for (format, cols) in [
        (WeightFormat::Q4_0, 512),
        (WeightFormat::F16, 333),
        (WeightFormat::I2S, 1024),
    ] {
        let mut rng = StdRng::seed_from_u64(7);
        let bytes = encode(format, &mut rng, 70, cols);
        let w = QMatrix::new(format, 70, cols, &bytes).unwrap();
        let gw = GpuMatrix::upload(&gpu, &w).unwrap();
        assert!(
            gw.chunk_count() > 1,
            "{format}: {} chunk(s)",
            gw.chunk_count()
        );
        for batch in [1, 5] {
            let x: Vec<f32> = (0..batch * cols)
                .map(|_| rng.random_range(-1.0f32..1.0))
                .collect();
            let y = block_on(gpu.matmul_host(&gw, &x, batch)).unwrap();
            check(&w, &x, batch, &y);
        }
    }
}

#[test]
fn bad_calls_are_refused_with_their_reason() {
    let gpu = gpu();
    let mut rng = StdRng::seed_from_u64(3);
    let bytes = encode(WeightFormat::Q8_0, &mut rng, 4, 64);
    let w = QMatrix::new(WeightFormat::Q8_0, 4, 64, &bytes).unwrap();
    let gw = GpuMatrix::upload(gpu, &w).unwrap();
    for batch in [0, MAX_BATCH + 1] {
        let x = vec![0.0; batch * 64];
        let err = block_on(gpu.matmul_host(&gw, &x, batch)).unwrap_err();
        assert!(matches!(err, GpuError::Batch(b) if b == batch), "{err}");
    }
    let err = block_on(gpu.matmul_host(&gw, &[0.0; 63], 1)).unwrap_err();
    assert!(matches!(err, GpuError::Shape(_)), "{err}");

    let tq1 = vec![0u8; WeightFormat::Tq1_0.tensor_bytes(1, 256)];
    let w = QMatrix::new(WeightFormat::Tq1_0, 1, 256, &tq1).unwrap();
    let err = GpuMatrix::upload(gpu, &w).unwrap_err();
    assert!(
        matches!(err, GpuError::UnsupportedFormat(WeightFormat::Tq1_0)),
        "{err}"
    );

    let small = open(GpuOptions {
        max_weight_chunk_bytes: Some(256),
        ..GpuOptions::default()
    });
    let wide = vec![0u8; WeightFormat::F32.tensor_bytes(1, 100)];
    let w = QMatrix::new(WeightFormat::F32, 1, 100, &wide).unwrap();
    let err = GpuMatrix::upload(&small, &w).unwrap_err();
    assert!(
        matches!(
            err,
            GpuError::TooLarge {
                bytes: 400,
                limit: 256,
                ..
            }
        ),
        "{err}"
    );
}
