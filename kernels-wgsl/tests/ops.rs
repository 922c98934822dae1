//! RMSNorm, RoPE, the FFN gates, residual adds and argmax on the GPU against host
//! implementations of the CPU engine's formulas (`kernels-cpu/src/model/ops.rs`) and
//! `shared_protocol::sampling::argmax`, on lavapipe.
//!
//! Tolerances: the GPU may fuse a multiply and an add, and WGSL's `exp` and `sqrt` are
//! within a few ulp, so float results are compared within a few ulp of their
//! magnitude; adds, relu² and argmax must match exactly.

#![allow(clippy::unwrap_used)]

use std::sync::OnceLock;

use futures::executor::block_on;
use kernels_wgsl::{GateActivation, Gpu, GpuOptions, GpuTensor, RopePairs};
use rand::{RngExt, SeedableRng, rngs::StdRng};

fn gpu() -> &'static Gpu {
    static GPU: OnceLock<Gpu> = OnceLock::new();
    GPU.get_or_init(|| {
        block_on(Gpu::new(&GpuOptions::default())).unwrap_or_else(|e| {
            panic!("{e} (the GPU tests need an adapter; on Debian: apt-get install mesa-vulkan-drivers)")
        })
    })
}

fn random(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

/// Records `f` into one encoder, submits it and reads `out` back.
fn run(gpu: &Gpu, out: &GpuTensor, f: impl AsyncFnOnce(&mut wgpu::CommandEncoder)) -> Vec<f32> {
    let mut encoder = gpu
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    block_on(f(&mut encoder));
    gpu.queue().submit([encoder.finish()]);
    block_on(gpu.download(out)).unwrap()
}

fn assert_close(what: &str, got: &[f32], want: &[f32], ulps: f32) {
    assert_eq!(got.len(), want.len(), "{what}");
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let tol = ulps * f32::EPSILON * w.abs().max(1e-30);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: GPU {g}, host {w}, |Δ| {} > {tol}",
            (g - w).abs()
        );
    }
}

#[test]
fn rms_norm_matches_the_host_formula() {
    let gpu = gpu();
    let mut rng = StdRng::seed_from_u64(1);
    for (rows, cols) in [(1, 1), (3, 576), (5, 2560), (2, 1000)] {
        let x = random(&mut rng, rows * cols, 3.0);
        let w = random(&mut rng, cols, 1.5);
        let eps = 1e-5;
        let (gx, gw, out) = (
            gpu.upload_f32(&x).unwrap(),
            gpu.upload_f32(&w).unwrap(),
            gpu.zeros(rows * cols).unwrap(),
        );
        let got = run(gpu, &out, async |e| {
            gpu.rms_norm(e, &gx, &gw, &out, rows, cols, eps)
                .await
                .unwrap()
        });
        let mut want = Vec::new();
        for row in x.chunks(cols) {
            let ss: f64 = row
                .iter()
                .map(|&v| f64::from(v) * f64::from(v))
                .sum::<f64>()
                / cols as f64;
            let scale = (1.0 / (ss + f64::from(eps)).sqrt()) as f32;
            want.extend(row.iter().zip(&w).map(|(&v, &w)| v * scale * w));
        }
        assert_close(&format!("rms_norm {rows}×{cols}"), &got, &want, 16.0);
    }
}

#[test]
fn rope_rotates_like_the_cpu_engine_in_both_pair_layouts() {
    let gpu = gpu();
    let mut rng = StdRng::seed_from_u64(2);
    // SmolLM2-135M's heads (9 × 64), and a partial rotation (n_rot 32 of 64).
    for (style, heads, head_dim, pairs) in [
        (RopePairs::Adjacent, 9, 64, 32),
        (RopePairs::Halves, 9, 64, 32),
        (RopePairs::Halves, 3, 64, 16),
    ] {
        let rows = 5;
        let positions = [0usize, 1, 17, 300, 8191];
        let x = random(&mut rng, rows * heads * head_dim, 2.0);
        // The CPU engine's table: θ_i = base^(−2i/n_rot) in f64, cos/sin rounded to f32.
        let mut table = Vec::new();
        for &pos in &positions {
            for i in 0..pairs {
                let theta = 10_000f64.powf(-2.0 * i as f64 / (2 * pairs) as f64);
                let (s, c) = (pos as f64 * theta).sin_cos();
                table.extend([c as f32, s as f32]);
            }
        }
        let (gx, gt) = (gpu.upload_f32(&x).unwrap(), gpu.upload_f32(&table).unwrap());
        let got = run(gpu, &gx, async |e| {
            gpu.rope(e, &gx, &gt, rows, heads, head_dim, pairs, style)
                .await
                .unwrap()
        });
        let mut want = x.clone();
        for (r, row) in want.chunks_mut(heads * head_dim).enumerate() {
            for head in row.chunks_mut(head_dim) {
                for i in 0..pairs {
                    let (j, k) = match style {
                        RopePairs::Adjacent => (2 * i, 2 * i + 1),
                        RopePairs::Halves => (i, i + pairs),
                    };
                    let (c, s) = (table[(r * pairs + i) * 2], table[(r * pairs + i) * 2 + 1]);
                    let (a, b) = (head[j], head[k]);
                    head[j] = a * c - b * s;
                    head[k] = a * s + b * c;
                }
            }
        }
        for (i, (&g, &w)) in got.iter().zip(&want).enumerate() {
            // a·c − b·s with or without a fused multiply-add: within an ulp of |a| + |b|.
            let tol = 4.0 * f32::EPSILON * 4.0;
            assert!((g - w).abs() <= tol, "{style:?} [{i}]: GPU {g}, host {w}");
        }
        // Dimensions past the rotated ones are untouched.
        if 2 * pairs < head_dim {
            assert_eq!(got[2 * pairs..head_dim], x[2 * pairs..head_dim]);
        }
    }
}

#[test]
fn ffn_gates_adds_and_scales_match_the_host() {
    let gpu = gpu();
    let mut rng = StdRng::seed_from_u64(3);
    let len = 3 * 1536 + 7;
    let gate = random(&mut rng, len, 8.0);
    let up = random(&mut rng, len, 2.0);
    let gu = gpu.upload_f32(&up).unwrap();

    let g = gpu.upload_f32(&gate).unwrap();
    let got = run(gpu, &g, async |e| {
        gpu.ffn_gate(e, &g, &gu, len, GateActivation::Silu)
            .await
            .unwrap()
    });
    let want: Vec<f32> = gate
        .iter()
        .zip(&up)
        .map(|(&g, &u)| g / (1.0 + (-g).exp()) * u)
        .collect();
    assert_close("silu", &got, &want, 64.0);

    let g = gpu.upload_f32(&gate).unwrap();
    let got = run(gpu, &g, async |e| {
        gpu.ffn_gate(e, &g, &gu, len, GateActivation::Relu2)
            .await
            .unwrap()
    });
    let want: Vec<f32> = gate
        .iter()
        .zip(&up)
        .map(|(&g, &u)| {
            let r = g.max(0.0);
            r * r * u
        })
        .collect();
    assert_eq!(got, want, "relu2");

    let g = gpu.upload_f32(&gate).unwrap();
    let got = run(gpu, &g, async |e| gpu.add(e, &g, &gu, len).await.unwrap());
    let want: Vec<f32> = gate.iter().zip(&up).map(|(&g, &u)| g + u).collect();
    assert_eq!(got, want, "add");

    // A ragged length: the values past it stay as they were.
    let g = gpu.upload_f32(&gate).unwrap();
    let factor = 0.8125f32;
    let got = run(gpu, &g, async |e| {
        gpu.scale(e, &g, len - 3, factor).await.unwrap()
    });
    let want: Vec<f32> = gate
        .iter()
        .enumerate()
        .map(|(i, &g)| if i < len - 3 { g * factor } else { g })
        .collect();
    assert_eq!(got, want, "scale");
}

#[test]
fn argmax_picks_what_the_cpu_sampler_picks() {
    let gpu = gpu();
    let mut rng = StdRng::seed_from_u64(4);
    let cols = 49_152;
    let mut rows: Vec<Vec<f32>> = (0..6).map(|_| random(&mut rng, cols, 20.0)).collect();
    // Ties: the lowest index wins, wherever the tied values fall among the invocations.
    rows[1][40_000] = 50.0;
    rows[1][300] = 50.0;
    rows[1][301] = 50.0;
    // NaN never wins, +∞ does.
    rows[2][5] = f32::NAN;
    rows[2][9_999] = f32::INFINITY;
    // Every value NaN or −∞: index 0.
    rows[3] = vec![f32::NAN; cols];
    rows[3][17] = f32::NEG_INFINITY;
    // −∞ before the real maximum.
    rows[4] = vec![f32::NEG_INFINITY; cols];
    rows[4][12_345] = -1e30;
    // The largest finite value at the very end.
    rows[5][cols - 1] = f32::MAX;
    let flat: Vec<f32> = rows.concat();
    let x = gpu.upload_f32(&flat).unwrap();
    let out = gpu.zeros(rows.len()).unwrap();
    let mut encoder = gpu
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    block_on(gpu.argmax(&mut encoder, &x, &out, rows.len(), cols)).unwrap();
    gpu.queue().submit([encoder.finish()]);
    let got = block_on(gpu.read_u32(out.buffer(), rows.len())).unwrap();
    let want: Vec<u32> = rows
        .iter()
        .map(|r| shared_protocol::sampling::argmax(r))
        .collect();
    assert_eq!(got, want);
    assert_eq!(&want[1..6], &[300, 9_999, 0, 12_345, cols as u32 - 1]);
}
