//! Activation preparation (int8 and int16 quantization) per path.

use criterion::{Criterion, Throughput, criterion_group};
use kernels_cpu::{Activations, Precision, WeightFormat};

use super::common::{group, inputs, tables};

fn prepare(c: &mut Criterion) {
    for (p, batch, cols) in [
        (Precision::Int8, 1, 576),
        (Precision::Int8, 1, 1536),
        (Precision::Int8, 8, 1536),
        (Precision::Int16, 8, 1536),
    ] {
        let x = inputs(batch * cols);
        let mut g = group(c, &format!("prepare/{}/{batch}x{cols}", p.name()));
        g.throughput(Throughput::Elements((batch * cols) as u64));
        for k in tables() {
            let mut a = Activations::with_precision(p);
            g.bench_function(k.path().name(), |b| {
                b.iter(|| a.prepare_with(k, WeightFormat::Q4_1, &x, batch, cols))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, prepare);
