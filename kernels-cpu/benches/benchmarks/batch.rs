//! Batched matmul (a verify pass over 8 draft tokens) at the same shapes: the weights are
//! read once, so batch 8 should cost well under 8 batch-1 calls (target: ≤ 2×), with int8
//! and with int16 activations.

use criterion::{Criterion, criterion_group};
use kernels_cpu::WeightFormat::*;

use super::{
    common::{Shape, bench_matmul},
    matvec::name,
};

fn batch8(c: &mut Criterion) {
    for f in [Q4_1, Q4_0, Q8_0, F16, BF16, F32] {
        let name = format!("batch8/{}/1536x576", name(f));
        bench_matmul(c, &name, Shape::new(f, 1536, 576, 8), &[1]);
    }
    let s = Shape::new(Q4_1, 1536, 576, 8);
    bench_matmul(c, "batch8/q4_1/1536x576-int16", s.int16(), &[1]);
    bench_matmul(c, "batch8/q4_1/1536x576-dram", s.copies(128), &[1, 2]);
    bench_matmul(
        c,
        "batch8/q4_1/1536x576-dram-int16",
        s.copies(128).int16(),
        &[1, 2],
    );
    let head = Shape::new(Q8_0, 49152, 576, 8).copies(2);
    bench_matmul(c, "batch8/q8_0/49152x576", head, &[1, 2]);
    bench_matmul(c, "batch8/q8_0/49152x576-int16", head.int16(), &[1, 2]);
    let big = Shape::new(Q4_1, 2560, 6912, 8).copies(4);
    bench_matmul(c, "batch8/q4_1/2560x6912", big, &[1]);
    bench_matmul(c, "batch8/q4_1/2560x6912-int16", big.int16(), &[1]);
}

criterion_group!(benches, batch8);
