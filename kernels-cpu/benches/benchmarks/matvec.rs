//! Matrix × vector (batch 1, a decode step) for every format at SmolLM2-135M shapes,
//! plus the tied Q8_0 output head and a BitNet-2B-sized FFN matrix; the quantized shapes
//! the titan decodes with also run with int16 activations (its default).

use criterion::{Criterion, criterion_group};
use kernels_cpu::WeightFormat::{self, *};

use super::common::{Shape, bench_matmul};

fn matvec(c: &mut Criterion) {
    for f in [Q4_1, Q4_0, Q8_0, F16, BF16, F32] {
        let name = format!("matvec/{}/1536x576", name(f));
        bench_matmul(c, &name, Shape::new(f, 1536, 576, 1), &[1]);
    }
    let s = Shape::new(Q4_1, 1536, 576, 1);
    bench_matmul(c, "matvec/q4_1/1536x576-int16", s.int16(), &[1]);
    bench_matmul(
        c,
        "matvec/q4_1/576x1536",
        Shape::new(Q4_1, 576, 1536, 1),
        &[1],
    );
    // DRAM-bound: 128 copies (70 MB) cycled, like the 98 MB of a real decode step.
    bench_matmul(c, "matvec/q4_1/1536x576-dram", s.copies(128), &[1, 2]);
    bench_matmul(
        c,
        "matvec/q4_1/1536x576-dram-int16",
        s.copies(128).int16(),
        &[1, 2],
    );
    let head = Shape::new(Q8_0, 49152, 576, 1).copies(2);
    bench_matmul(c, "matvec/q8_0/49152x576", head, &[1, 2]);
    bench_matmul(c, "matvec/q8_0/49152x576-int16", head.int16(), &[1, 2]);
    let big = Shape::new(Q4_1, 2560, 6912, 1).copies(4);
    bench_matmul(c, "matvec/q4_1/2560x6912", big, &[1, 2]);
}

pub(crate) fn name(f: WeightFormat) -> String {
    format!("{f:?}").to_lowercase()
}

criterion_group!(benches, matvec);
