//! Activation preparation (int8 quantization) per path.

use criterion::{Criterion, Throughput, criterion_group};
use kernels_cpu::{Activations, WeightFormat};

use super::common::{group, inputs, tables};

fn prepare(c: &mut Criterion) {
    for (batch, cols) in [(1, 576), (1, 1536), (8, 1536)] {
        let x = inputs(batch * cols);
        let mut g = group(c, &format!("prepare/q8/{batch}x{cols}"));
        g.throughput(Throughput::Elements((batch * cols) as u64));
        for k in tables() {
            let mut a = Activations::new();
            g.bench_function(k.path().name(), |b| {
                b.iter(|| a.prepare_with(k, WeightFormat::Q4_1, &x, batch, cols))
            });
        }
        g.finish();
    }
}

criterion_group!(benches, prepare);
