//! Kernel benchmarks: `cargo bench -p kernels-cpu` (a few minutes in all).
//!
//! Scalar and SIMD paths run in the same group, so each run yields their ratio.
//! Throughput is in weight bytes, so criterion's "thrpt" reads as memory bandwidth.

mod benchmarks {
    pub(crate) mod batch;
    pub(crate) mod common;
    pub(crate) mod matvec;
    pub(crate) mod prepare;
    pub(crate) mod ternary;
}

criterion::criterion_main!(
    benchmarks::matvec::benches,
    benchmarks::batch::benches,
    benchmarks::prepare::benches,
    benchmarks::ternary::benches
);
