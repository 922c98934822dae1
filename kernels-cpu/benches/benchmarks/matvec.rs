//! Matrix × vector (batch 1, a decode step) for every format at SmolLM2-135M shapes,
//! plus the tied Q8_0 output head and a BitNet-2B-sized FFN matrix.

use criterion::{Criterion, criterion_group};
use kernels_cpu::WeightFormat::{self, *};

use super::common::bench_matmul;

fn matvec(c: &mut Criterion) {
    for f in [Q4_1, Q4_0, Q8_0, F16, BF16, F32] {
        bench_matmul(
            c,
            &format!("matvec/{}/1536x576", name(f)),
            f,
            1536,
            576,
            1,
            &[1],
            1,
        );
    }
    bench_matmul(c, "matvec/q4_1/576x1536", Q4_1, 576, 1536, 1, &[1], 1);
    // DRAM-bound: 128 copies (70 MB) cycled, like the 98 MB of a real decode step.
    bench_matmul(
        c,
        "matvec/q4_1/1536x576-dram",
        Q4_1,
        1536,
        576,
        1,
        &[1, 2],
        128,
    );
    bench_matmul(c, "matvec/q8_0/49152x576", Q8_0, 49152, 576, 1, &[1, 2], 2);
    bench_matmul(c, "matvec/q4_1/2560x6912", Q4_1, 2560, 6912, 1, &[1, 2], 4);
}

pub(crate) fn name(f: WeightFormat) -> String {
    format!("{f:?}").to_lowercase()
}

criterion_group!(benches, matvec);
