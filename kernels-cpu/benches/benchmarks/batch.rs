//! Batched matmul (a verify pass over 8 draft tokens) at the same shapes: the weights are
//! read once, so batch 8 should cost well under 8 batch-1 calls (target: ≤ 2×).

use criterion::{Criterion, criterion_group};
use kernels_cpu::WeightFormat::*;

use super::{common::bench_matmul, matvec::name};

fn batch8(c: &mut Criterion) {
    for f in [Q4_1, Q4_0, Q8_0, F16, BF16, F32] {
        bench_matmul(
            c,
            &format!("batch8/{}/1536x576", name(f)),
            f,
            1536,
            576,
            8,
            &[1],
            1,
        );
    }
    bench_matmul(
        c,
        "batch8/q4_1/1536x576-dram",
        Q4_1,
        1536,
        576,
        8,
        &[1, 2],
        128,
    );
    bench_matmul(c, "batch8/q8_0/49152x576", Q8_0, 49152, 576, 8, &[1, 2], 2);
    bench_matmul(c, "batch8/q4_1/2560x6912", Q4_1, 2560, 6912, 8, &[1], 4);
}

criterion_group!(benches, batch8);
