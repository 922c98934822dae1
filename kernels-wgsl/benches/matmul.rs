//! GPU matmul against the CPU kernels on the same matrices: `cargo bench -p kernels-wgsl`.
//!
//! The GPU time of one call is measured inside a submission of 16 calls followed by a
//! wait, as a model's pass records many dispatches per submission; the CPU runs
//! kernels-cpu's active path on one thread with int16 activations (the default for
//! llama models). Throughput is in weight bytes. On lavapipe both run on the CPU, so
//! the ratio says what a software adapter costs, not what a GPU can do.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use futures::executor::block_on;
use kernels_cpu::{Activations, Precision, QMatrix, WeightFormat};
use kernels_wgsl::{Gpu, GpuMatrix, GpuOptions};
use rand::{RngExt, SeedableRng, rngs::StdRng};

/// Calls recorded per submission.
const PER_SUBMIT: u64 = 16;

fn weights(format: WeightFormat, rows: usize, cols: usize) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(1);
    let values: Vec<f32> = (0..rows * cols)
        .map(|_| {
            let v: f32 = rng.random_range(-1.0..1.0);
            if format.is_ternary() { v.round() } else { v }
        })
        .collect();
    if format == WeightFormat::I2S {
        return kernels_cpu::formats::i2_s::quantize_tensor(&values, rows, cols);
    }
    let encode = kernels_cpu::row_encoder(format).expect("encoder");
    let mut out = vec![0u8; format.tensor_bytes(rows, cols)];
    for (src, dst) in values
        .chunks(cols)
        .zip(out.chunks_mut(format.row_bytes(cols)))
    {
        encode(src, dst);
    }
    out
}

fn bench(c: &mut Criterion) {
    let gpu = block_on(Gpu::new(&GpuOptions::default())).expect("a GPU adapter");
    let adapter = gpu.info().adapter.name.clone();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .expect("pool");
    // SmolLM2-135M's FFN and head, and 2B4T's square ternary projection.
    for (format, rows, cols) in [
        (WeightFormat::Q4_1, 1536, 576),
        (WeightFormat::Q8_0, 49152, 576),
        (WeightFormat::Tq2_0, 2560, 2560),
    ] {
        let bytes = weights(format, rows, cols);
        let w = QMatrix::new(format, rows, cols, &bytes).expect("shape");
        let gw = GpuMatrix::upload(&gpu, &w).expect("upload");
        for batch in [1, 8] {
            let x: Vec<f32> = (0..batch * cols)
                .map(|i| ((i % 17) as f32 - 8.0) * 0.1)
                .collect();
            let mut g = c.benchmark_group(format!(
                "matmul/{}/{rows}x{cols}/batch{batch}",
                format.name()
            ));
            g.throughput(Throughput::Bytes(bytes.len() as u64));
            g.sample_size(10)
                .warm_up_time(Duration::from_millis(500))
                .measurement_time(Duration::from_secs(3));
            let gx = gpu.upload_f32(&x).expect("x");
            let gy = gpu.zeros(batch * rows).expect("y");
            g.bench_function(format!("gpu ({adapter})"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(PER_SUBMIT);
                        let mut encoder = gpu.device().create_command_encoder(&Default::default());
                        for _ in 0..n {
                            block_on(gpu.matmul(&mut encoder, &gw, &gx, &gy, batch))
                                .expect("matmul");
                        }
                        gpu.queue().submit([encoder.finish()]);
                        gpu.device()
                            .poll(wgpu::PollType::wait_indefinitely())
                            .expect("poll");
                        left -= n;
                    }
                    start.elapsed()
                })
            });
            let mut a = Activations::with_precision(Precision::Int16);
            a.prepare(format, &x, batch, cols);
            let mut y = vec![0.0; batch * rows];
            g.bench_function(
                format!("cpu ({}, 1 thread)", kernels_cpu::active_path()),
                |b| {
                    pool.install(|| b.iter(|| kernels_cpu::matmul(&w, &a, &mut y).expect("matmul")))
                },
            );
            g.finish();
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
