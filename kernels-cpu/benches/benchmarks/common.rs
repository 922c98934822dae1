//! Shared setup: seeded weights of real shapes, one-thread pools, short measurements.

use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput, measurement::WallTime};
use kernels_cpu::{Activations, KernelPath, Kernels, Precision, QMatrix, WeightFormat, formats};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// Quantized weights of `rows × cols` from seeded values in ±1.
pub(crate) fn weights(format: WeightFormat, rows: usize, cols: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(rows as u64 * 31 + cols as u64);
    let x: Vec<f32> = (0..rows * cols)
        .map(|_| rng.random_range(-1.0f32..1.0))
        .collect();
    if format.is_ternary() {
        // BitNet-like: about half zeros.
        let t: Vec<f32> = x.iter().map(|v| (v * 1.5).round() * 0.5).collect();
        return match format {
            WeightFormat::I2S => formats::i2_s::quantize_tensor(&t, rows, cols),
            WeightFormat::Tq1_0 => formats::tq1_0::quantize_row_bytes(&t),
            _ => formats::tq2_0::quantize_row_bytes(&t),
        };
    }
    let mut out = vec![0u8; format.row_bytes(cols) * rows];
    match format {
        WeightFormat::F32 => formats::float::quantize_row_f32(&x, &mut out),
        WeightFormat::F16 => formats::float::quantize_row_f16(&x, &mut out),
        WeightFormat::BF16 => formats::float::quantize_row_bf16(&x, &mut out),
        WeightFormat::Q8_0 => formats::q8_0::quantize_row_bytes(&x, &mut out),
        WeightFormat::Q4_0 => formats::q4_0::quantize_row_bytes(&x, &mut out),
        WeightFormat::Q4_1 => formats::q4_1::quantize_row_bytes(&x, &mut out),
        WeightFormat::Tq1_0 | WeightFormat::Tq2_0 | WeightFormat::I2S => unreachable!(),
    }
    out
}

/// Seeded activations.
pub(crate) fn inputs(n: usize) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(n as u64);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

/// Every path this host runs, scalar included.
pub(crate) fn tables() -> Vec<&'static Kernels> {
    kernels_cpu::available_paths()
        .into_iter()
        .filter_map(kernels_cpu::kernels)
        .collect()
}

/// `n` threads to run benched loops on: a rayon pool, or this thread alone on wasm32
/// (which has none; Node's WASI cannot spawn them).
pub(crate) struct Threads(Option<rayon::ThreadPool>);

impl Threads {
    /// Runs `f` on these threads.
    pub(crate) fn install<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match &self.0 {
            Some(p) => p.install(f),
            None => f(),
        }
    }
}

/// Whether `n` threads can run here (wasm32 has one).
pub(crate) fn threads_available(n: usize) -> bool {
    n == 1 || !cfg!(target_family = "wasm")
}

/// `n` threads (see [`threads_available`]).
pub(crate) fn pool(n: usize) -> Threads {
    if cfg!(target_family = "wasm") {
        assert!(n == 1, "wasm32 has no threads: {n} asked for");
        return Threads(None);
    }
    Threads(Some(
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .expect("thread pool"),
    ))
}

/// A group with short measurements (the whole suite must run in a few minutes).
pub(crate) fn group<'c>(c: &'c mut Criterion, name: &str) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_millis(200))
        .measurement_time(Duration::from_millis(700));
    g
}

/// One benchmarked matmul shape.
#[derive(Clone, Copy)]
pub(crate) struct Shape {
    pub(crate) format: WeightFormat,
    pub(crate) rows: usize,
    pub(crate) cols: usize,
    pub(crate) batch: usize,
    /// `> 1`: cycle through that many copies of the weights, so they come from DRAM rather
    /// than cache, as in a real decode step.
    pub(crate) copies: usize,
    pub(crate) precision: Precision,
}

impl Shape {
    /// `rows × cols` of `format` against `batch` int8 rows, from cache.
    pub(crate) fn new(format: WeightFormat, rows: usize, cols: usize, batch: usize) -> Self {
        Self {
            format,
            rows,
            cols,
            batch,
            copies: 1,
            precision: Precision::Int8,
        }
    }

    /// The same shape cycling through `copies` copies of the weights.
    pub(crate) fn copies(self, copies: usize) -> Self {
        Self { copies, ..self }
    }

    /// The same shape with int16 activations.
    pub(crate) fn int16(self) -> Self {
        Self {
            precision: Precision::Int16,
            ..self
        }
    }
}

/// Benches `y = W·x` for one shape on every path (scalar, SIMD) with `threads` threads.
pub(crate) fn bench_matmul(c: &mut Criterion, name: &str, shape: Shape, threads: &[usize]) {
    let Shape {
        format,
        rows,
        cols,
        batch,
        copies,
        precision,
    } = shape;
    let w = weights(format, rows, cols);
    let ws: Vec<Vec<u8>> = (0..copies).map(|_| w.clone()).collect();
    let ms: Vec<QMatrix<'_>> = ws
        .iter()
        .map(|w| QMatrix::new(format, rows, cols, w).expect("shape"))
        .collect();
    let x = inputs(batch * cols);
    let mut g = group(c, name);
    g.throughput(Throughput::Bytes(w.len() as u64));
    for k in tables() {
        let mut a = Activations::with_precision(precision);
        a.prepare_with(k, format, &x, batch, cols);
        let mut y = vec![0.0; rows * batch];
        for &t in threads {
            if (k.path() == KernelPath::Scalar && t > 1) || !threads_available(t) {
                continue;
            }
            let p = pool(t);
            let mut i = 0;
            // The whole timed loop runs inside the pool, as an engine's forward pass does:
            // `install` per call would add a cross-thread wake-up to every iteration.
            g.bench_function(format!("{}/t{t}", k.path()), |b| {
                b.iter_custom(|iters| {
                    p.install(|| {
                        let start = Instant::now();
                        for _ in 0..iters {
                            i = (i + 1) % ms.len();
                            k.matmul(&ms[i], &a, &mut y).expect("matmul");
                        }
                        start.elapsed()
                    })
                })
            });
        }
    }
    g.finish();
}
