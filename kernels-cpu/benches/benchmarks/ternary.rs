//! Ternary formats at BitNet b1.58 2B4T shapes, weights from DRAM (cycled copies of at
//! least 256 MB), next to the machine's streaming read bandwidth measured the same way
//! (an AVX2 sum over a 1 GiB buffer): a decode step (batch 1) should run at ≥ 90% of it, and a
//! verify pass (batch 8) should cost little more than batch 1.
//!
//! Throughput is in weight bytes, so criterion's "thrpt" of a batch-1 case divided by the
//! `bandwidth` group's is the fraction of the bandwidth reached. A summary table at the
//! end gives the best of many runs for each case. `SHARD_BENCH_QUICK=1` runs only I2_S
//! and TQ2_0 on the two FFN shapes and only the summary (no criterion statistics);
//! `SHARD_BENCH_QUICK=tq1_0` (or `i2s`, `tq2_0`) the same for one format,
//! `SHARD_BENCH_QUICK=all` every format and shape, summary only.

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

use super::common::{group, inputs, pool, tables, threads_available, weights};

/// Per case: the best GB/s of the kernel and of a streaming sum over the same bytes,
/// interleaved run by run (other tenants of a shared machine change the bandwidth from
/// minute to minute, so each case is compared with what the memory gave it at the time).
static SUMMARY: Mutex<Vec<(String, f64, f64)>> = Mutex::new(Vec::new());

/// Runs `probe` and `kernel` alternately `n` times, each moving `bytes` bytes; their best
/// GB/s.
fn best_gbps(
    n: usize,
    bytes: usize,
    mut probe: impl FnMut(),
    mut kernel: impl FnMut(),
) -> (f64, f64) {
    let (mut bp, mut bk) = (Duration::MAX, Duration::MAX);
    for _ in 0..n {
        let t = Instant::now();
        probe();
        bp = bp.min(t.elapsed());
        let t = Instant::now();
        kernel();
        bk = bk.min(t.elapsed());
    }
    let gbps = |d: Duration| bytes as f64 / d.as_secs_f64() / 1e9;
    (gbps(bk), gbps(bp))
}

fn record(name: String, (kernel, probe): (f64, f64)) {
    SUMMARY.lock().expect("summary").push((name, kernel, probe));
}

/// The streaming sum of `buf` on the current pool, in 64 KiB pieces.
fn par_sum(buf: &[u64]) -> u64 {
    buf.par_chunks(8 << 10)
        .map(stream_sum)
        .reduce(|| 0, u64::wrapping_add)
}

/// Bytes of the bandwidth probe.
const PROBE: usize = 1 << 30;

/// Weight copies are cycled until they hold at least this many bytes (L3 is 32 MB).
const DRAM_BYTES: usize = 256 << 20;

fn bandwidth(c: &mut Criterion) {
    let buf: Vec<u64> = (0..PROBE / 8).map(|i| i as u64).collect();
    let mut g = group(c, "bandwidth/stream-sum-1GiB");
    g.throughput(Throughput::Bytes(PROBE as u64));
    for t in [1, 2].into_iter().filter(|&t| threads_available(t)) {
        let p = pool(t);
        let mut i = 0;
        let probe = p.install(|| {
            best_gbps(
                10,
                PROBE,
                || {
                    std::hint::black_box(par_sum(&buf));
                },
                || {
                    i += 1;
                },
            )
        });
        record(format!("bandwidth 1GiB t{t}"), (probe.1, probe.1));
        if quick() {
            continue;
        }
        g.bench_function(format!("t{t}"), |b| {
            b.iter_custom(|iters| {
                p.install(|| {
                    let start = Instant::now();
                    for _ in 0..iters {
                        std::hint::black_box(par_sum(&buf));
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();
}

/// The wrapping sum of `v`: 256-bit loads into four accumulators with AVX2 (what the
/// kernels' loads can do), plain otherwise.
fn stream_sum(v: &[u64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: AVX2 was detected.
        return unsafe { stream_sum_avx2(v) };
    }
    v.iter().fold(0, |a, &x| a.wrapping_add(x))
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn stream_sum_avx2(v: &[u64]) -> u64 {
    use std::arch::x86_64::*;
    let (chunks, rest) = v.as_chunks::<16>();
    let mut acc = [_mm256_setzero_si256(); 4];
    for c in chunks {
        for (i, a) in acc.iter_mut().enumerate() {
            // SAFETY: 4 u64 at c[4i..], inside the chunk; loadu needs no alignment.
            let x = unsafe { _mm256_loadu_si256(c[4 * i..].as_ptr().cast()) };
            *a = _mm256_add_epi64(*a, x);
        }
    }
    let s = _mm256_add_epi64(
        _mm256_add_epi64(acc[0], acc[1]),
        _mm256_add_epi64(acc[2], acc[3]),
    );
    let mut out = [0u64; 4];
    // SAFETY: `out` holds 4 u64.
    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), s) };
    rest.iter().chain(&out).fold(0, |a, &x| a.wrapping_add(x))
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
    // The same bytes again as u64 words, for the probe (its own copies, the same size).
    let ws64: Vec<Vec<u64>> = (0..copies)
        .map(|_| {
            w.chunks(8)
                .map(|c| c.iter().rev().fold(0u64, |a, &b| a << 8 | u64::from(b)))
                .collect()
        })
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
        for t in [1, 2].into_iter().filter(|&t| threads_available(t)) {
            let pl = pool(t);
            let mut i = 0;
            let words: Vec<&[u64]> = ws64.iter().map(|w| &w[..]).collect();
            let gbps = pl.install(|| {
                let mut j = 0;
                best_gbps(
                    3 * ms.len().max(10),
                    w.len(),
                    || {
                        j = (j + 1) % words.len();
                        std::hint::black_box(par_sum(words[j]));
                    },
                    || {
                        i = (i + 1) % ms.len();
                        k.matmul(&ms[i], &a, &mut y).expect("matmul");
                    },
                )
            });
            record(format!("{name} {} t{t}", k.path()), gbps);
            if quick() {
                continue;
            }
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

/// `QMatrix::validate` (a load-time scan of every byte) on `f` at 2560×6912 from DRAM.
fn validate_speed(f: WeightFormat) {
    let (rows, cols) = (2560, 6912);
    let w = weights(f, rows, cols);
    let copies = DRAM_BYTES.div_ceil(w.len());
    let ws: Vec<Vec<u8>> = (0..copies).map(|_| w.clone()).collect();
    let ws64: Vec<Vec<u64>> = (0..copies).map(|_| vec![1u64; w.len() / 8]).collect();
    for t in [1, 2].into_iter().filter(|&t| threads_available(t)) {
        let (mut i, mut j) = (0, 0);
        let gbps = pool(t).install(|| {
            best_gbps(
                2 * copies,
                w.len(),
                || {
                    j = (j + 1) % copies;
                    std::hint::black_box(par_sum(&ws64[j]));
                },
                || {
                    i = (i + 1) % copies;
                    let m = QMatrix::new(f, rows, cols, &ws[i]).expect("shape");
                    m.validate().expect("valid");
                },
            )
        });
        let name = format!("validate/{}/{rows}x{cols}", format!("{f:?}").to_lowercase());
        record(format!("{name} t{t}"), gbps);
    }
}

fn quick() -> bool {
    std::env::var_os("SHARD_BENCH_QUICK").is_some()
}

fn ternary(c: &mut Criterion) {
    bandwidth(c);
    let quick = quick();
    // SHARD_BENCH_QUICK=tq1_0 (or i2s, tq2_0): only that format.
    let only = std::env::var("SHARD_BENCH_QUICK").ok();
    let one = [I2S, Tq2_0, Tq1_0]
        .into_iter()
        .find(|f| only.as_deref() == Some(format!("{f:?}").to_lowercase().as_str()));
    let all = only.as_deref() == Some("all");
    let formats: Vec<WeightFormat> = match (one, quick && !all) {
        (Some(f), _) => vec![f],
        (None, true) => vec![I2S, Tq2_0],
        (None, false) => vec![I2S, Tq2_0, Tq1_0],
    };
    let shapes: &[(usize, usize)] = if quick && !all {
        &[(2560, 6912), (6912, 2560)]
    } else {
        &[(2560, 6912), (6912, 2560), (2560, 2560), (640, 2560)]
    };
    for &f in &formats {
        validate_speed(f);
    }
    for f in formats {
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

/// The summary table: best GB/s of each case, next to the best GB/s of a streaming sum
/// over the same number of bytes run alternately with it (so the fraction compares like
/// with like on a shared machine), and for batch 1 the batch-8 / batch-1 time ratio.
fn print_summary() {
    let s = SUMMARY.lock().expect("summary");
    let get = |n: &str| s.iter().find(|(k, ..)| k == n).map(|(_, v, _)| *v);
    println!("\nternary summary (best of many runs; GB/s of weight bytes; probe = streaming sum):");
    for (name, gbps, probe) in s.iter() {
        if name.starts_with("bandwidth") {
            println!("  {name:54} {gbps:6.1} GB/s");
            continue;
        }
        let ratio = if name.contains("/b1-") {
            let b8 = get(&name.replace("/b1-", "/b8-")).unwrap_or(f64::NAN);
            format!("b8/b1 {:4.2}x", gbps / b8)
        } else {
            String::new()
        };
        println!(
            "  {name:54} {gbps:6.1} GB/s  probe {probe:5.1}  {:4.0}%  {ratio}",
            100.0 * gbps / probe
        );
    }
}

criterion_group!(benches, ternary);
