//! GPU attention against kernels-cpu's scalar reference `attend`, one call per (row,
//! head), on GQA shapes with the cache filled through `copy_rows` as a model fills it.
//!
//! Tolerance: the scores are the same dot products summed in another order, and the
//! GPU's `exp` is within a few ulp, so each output is compared within
//! `2⁻¹⁶ · max|v|` (a relative error of about 1.5e-5).

#![allow(clippy::unwrap_used)]

use futures::executor::block_on;
use kernels_cpu::{HeadRows, KernelPath, kernels};
use kernels_wgsl::{AttentionShape, Gpu, GpuOptions};
use rand::{RngExt, SeedableRng, rngs::StdRng};

fn random(rng: &mut StdRng, n: usize, scale: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(-scale..scale)).collect()
}

#[test]
fn attention_matches_the_scalar_reference() {
    let gpu = block_on(Gpu::new(&GpuOptions::default())).unwrap();
    let reference = kernels(KernelPath::Scalar).unwrap();
    let mut rng = StdRng::seed_from_u64(9);
    // (n_head, n_head_kv, head_dim, cached positions before the pass, new rows):
    // SmolLM2-135M's 9/3 × 64, a verify pass of 9 rows, a prefill from 0, MHA, head 128.
    for (n_head, n_head_kv, head_dim, start, rows) in [
        (9, 3, 64, 100, 9),
        (9, 3, 64, 0, 16),
        (4, 4, 32, 7, 1),
        (8, 2, 128, 300, 3),
        (2, 1, 20, 0, 1),
    ] {
        let kv_width = n_head_kv * head_dim;
        let ctx = start + rows;
        let k = random(&mut rng, ctx * kv_width, 1.0);
        let v = random(&mut rng, ctx * kv_width, 1.0);
        let q = random(&mut rng, rows * n_head * head_dim, 2.0);
        let shape = AttentionShape {
            rows,
            n_head,
            n_head_kv,
            head_dim,
            start,
        };

        // The cache as a model builds it: earlier positions first, then the pass's rows.
        let k_cache = gpu.zeros(ctx * kv_width + 5).unwrap();
        let v_cache = gpu.zeros(ctx * kv_width + 5).unwrap();
        let k_old = gpu.upload_f32(&k[..start * kv_width]).unwrap();
        let v_old = gpu.upload_f32(&v[..start * kv_width]).unwrap();
        let k_new = gpu.upload_f32(&k[start * kv_width..]).unwrap();
        let v_new = gpu.upload_f32(&v[start * kv_width..]).unwrap();
        let gq = gpu.upload_f32(&q).unwrap();
        let scores = gpu.zeros(shape.scratch_len()).unwrap();
        let out = gpu.zeros(q.len()).unwrap();
        let mut encoder = gpu
            .device()
            .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
        gpu.copy_rows(&mut encoder, &k_old, &k_cache, 0, start, kv_width)
            .unwrap();
        gpu.copy_rows(&mut encoder, &v_old, &v_cache, 0, start, kv_width)
            .unwrap();
        gpu.copy_rows(&mut encoder, &k_new, &k_cache, start, rows, kv_width)
            .unwrap();
        gpu.copy_rows(&mut encoder, &v_new, &v_cache, start, rows, kv_width)
            .unwrap();
        block_on(gpu.attention(&mut encoder, shape, &gq, &k_cache, &v_cache, &scores, &out))
            .unwrap();
        gpu.queue().submit([encoder.finish()]);
        let got = block_on(gpu.download(&out)).unwrap();

        let scale = 1.0 / (head_dim as f32).sqrt();
        let mut scratch = Vec::new();
        let mut want = vec![0.0; head_dim];
        for t in 0..rows {
            for h in 0..n_head {
                let g = h / (n_head / n_head_kv);
                let n = start + t + 1;
                let kr = HeadRows::new(&k, kv_width, g * head_dim, head_dim, n).unwrap();
                let vr = HeadRows::new(&v, kv_width, g * head_dim, head_dim, n).unwrap();
                let qh = &q[(t * n_head + h) * head_dim..][..head_dim];
                reference
                    .attend(qh, kr, vr, scale, &mut scratch, &mut want)
                    .unwrap();
                let gh = &got[(t * n_head + h) * head_dim..][..head_dim];
                for d in 0..head_dim {
                    assert!(
                        (gh[d] - want[d]).abs() <= 1.0 / 65536.0,
                        "{shape:?} row {t} head {h} dim {d}: GPU {}, reference {}",
                        gh[d],
                        want[d]
                    );
                }
            }
        }
    }
}

#[test]
fn impossible_shapes_are_refused() {
    let gpu = block_on(Gpu::new(&GpuOptions::default())).unwrap();
    let t = gpu.zeros(1024).unwrap();
    let mut encoder = gpu
        .device()
        .create_command_encoder(&wgpu::CommandEncoderDescriptor::default());
    for shape in [
        AttentionShape {
            rows: 1,
            n_head: 9,
            n_head_kv: 2,
            head_dim: 8,
            start: 0,
        },
        AttentionShape {
            rows: 0,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 8,
            start: 0,
        },
        AttentionShape {
            rows: 1,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 512,
            start: 0,
        },
        // The cache (1024 values) is too short for 200 positions of width 8.
        AttentionShape {
            rows: 1,
            n_head: 2,
            n_head_kv: 1,
            head_dim: 8,
            start: 199,
        },
    ] {
        let err = block_on(gpu.attention(&mut encoder, shape, &t, &t, &t, &t, &t)).unwrap_err();
        assert!(
            matches!(err, kernels_wgsl::GpuError::Shape(_)),
            "{shape:?}: {err}"
        );
    }
    assert!(gpu.copy_rows(&mut encoder, &t, &t, 1000, 10, 8).is_err());
}
