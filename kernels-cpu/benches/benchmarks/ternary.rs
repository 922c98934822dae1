//! Ternary formats at BitNet b1.58 2B4T shapes, weights from DRAM (cycled copies of at
//! least 256 MB), next to the machine's streaming read bandwidth measured the same way
//! (a sum over a 1 GiB buffer): a decode step (batch 1) should run at ≥ 90% of it, and a
//! verify pass (batch 8) should cost little more than batch 1.
//!
//! Throughput is in weight bytes, so criterion's "thrpt" of a batch-1 case divided by the
//! `bandwidth` group's is the fraction of the bandwidth reached. `SHARD_BENCH_QUICK=1`
//! runs only I2_S and TQ2_0 on the two FFN shapes.

use std::{
    sync::Mutex,
    time::{Duration, Instant},
};

use criterion::{Criterion, Throughput, criterion_group};
use kernels_cpu::{
    Activations, KernelPath,
    Precision::{self, *},
    QMatrix,
    WeightFormat::{self, *},
};
use rayon::prelude::*;

use super::common::{group, inputs, pool, tables, weights};

/// Fastest observed GB/s per case, printed as one table at the end: on a shared machine
/// the fastest of many short runs is the number least disturbed by other tenants.
static SUMMARY: Mutex<Vec<(String, f64)>> = Mutex::new(Vec::new());

/// Runs `f` (one call moving `bytes` bytes) `n` times; the best GB/s.
fn best_gbps(n: usize, bytes: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..n {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    bytes as f64 / best.as_secs_f64() / 1e9
}

fn record(name: String, gbps: f64) {
    SUMMARY.lock().expect("summary").push((name, gbps));
}

/// Bytes of the bandwidth probe.
const PROBE: usize = 1 << 30;

/// Weight copies are cycled until they hold at least this many bytes (L3 is 32 MB).
const DRAM_BYTES: usize = 256 << 20;

fn bandwidth(c: &mut Criterion) {
    let buf: Vec<u64> = (0..PROBE / 8).map(|i| i as u64).collect();
    let mut g = group(c, "bandwidth/stream-sum-1GiB");
    g.throughput(Throughput::Bytes(PROBE as u64));
    let sum = |buf: &[u64]| {
        buf.par_chunks(1 << 20)
            .map(|c| c.iter().fold(0u64, |a, &v| a.wrapping_add(v)))
            .reduce(|| 0, u64::wrapping_add)
    };
    for t in [1, 2] {
        let p = pool(t);
        let gbps = p.install(|| {
            best_gbps(10, PROBE, || {
                std::hint::black_box(sum(&buf));
            })
        });
        record(format!("bandwidth t{t}"), gbps);
        g.bench_function(format!("t{t}"), |b| {
            b.iter_custom(|iters| {
                p.install(|| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(sum(&buf));
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// `rows × cols` of `f` against `batch` rows at `precision`, 1 and 2 threads, SIMD paths.
fn bench(c: &mut Criterion, f: WeightFormat, rows: usize, cols: usize, batch: usize, p: Precision) {
    let w = weights(f, rows, cols);
    let copies = DRAM_BYTES.div_ceil(w.len());
    let ws: Vec<Vec<u8>> = (0..copies).map(|_| w.clone()).collect();
    let ms: Vec<QMatrix<'_>> = ws
        .iter()
        .map(|w| QMatrix::new(f, rows, cols, w).expect("shape"))
        .collect();
    let x = inputs(batch * cols);
    let name = format!(
        "ternary/{}/{rows}x{cols}/b{batch}-{}",
        format!("{f:?}").to_lowercase(),
        p.name()
    );
    let mut g = group(c, &name);
    g.throughput(Throughput::Bytes(w.len() as u64));
    for k in tables() {
        if k.path() == KernelPath::Scalar {
            continue;
        }
        let mut a = Activations::with_precision(p);
        a.prepare_with(k, f, &x, batch, cols);
        let mut y = vec![0.0; rows * batch];
        for t in [1, 2] {
            let pl = pool(t);
            let mut i = 0;
            let gbps = pl.install(|| {
                best_gbps(3 * ms.len().max(10), w.len(), || {
                    i = (i + 1) % ms.len();
                    k.matmul(&ms[i], &a, &mut y).expect("matmul");
                })
            });
            record(format!("{name} {} t{t}", k.path()), gbps);
            g.bench_function(format!("{}/t{t}", k.path()), |b| {
                b.iter_custom(|iters| {
                    pl.install(|| {
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

fn ternary(c: &mut Criterion) {
    bandwidth(c);
    let quick = std::env::var_os("SHARD_BENCH_QUICK").is_some();
    let formats: &[WeightFormat] = if quick {
        &[I2S, Tq2_0]
    } else {
        &[I2S, Tq2_0, Tq1_0]
    };
    let shapes: &[(usize, usize)] = if quick {
        &[(2560, 6912), (6912, 2560)]
    } else {
        &[(2560, 6912), (6912, 2560), (2560, 2560), (640, 2560)]
    };
    for &f in formats {
        for &(rows, cols) in shapes {
            for p in [Int8, Int16] {
                for batch in [1, 8] {
                    bench(c, f, rows, cols, batch, p);
                }
            }
        }
    }
    print_summary();
}

/// The summary table: best GB/s, fraction of the bandwidth (same thread count) for
/// batch 1, and the batch-8 / batch-1 time ratio.
fn print_summary() {
    let s = SUMMARY.lock().expect("summary");
    let get = |n: &str| s.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
    println!("\nternary summary (best of many runs; GB/s of weight bytes):");
    for (name, gbps) in s.iter() {
        let Some(t) = name.rsplit(' ').next() else {
            continue;
        };
        let bw = get(&format!("bandwidth {t}")).unwrap_or(f64::NAN);
        if name.contains("/b1-") {
            let b8 = get(&name.replace("/b1-", "/b8-")).unwrap_or(f64::NAN);
            println!(
                "  {name:58} {gbps:6.1} GB/s  {:4.0}% of {bw:.1}  b8/b1 {:4.2}x",
                100.0 * gbps / bw,
                gbps / b8
            );
        } else if name.starts_with("bandwidth") {
            println!("  {name:58} {gbps:6.1} GB/s");
        }
    }
}

criterion_group!(benches, ternary);
