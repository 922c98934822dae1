//! # kernels-cpu
//!
//! Quantized matrix × vector and small-batch matrix × matrix kernels for CPUs, reading
//! weights straight from GGUF bytes (usually a memory map) in ggml's block layouts.
//!
//! What it does:
//! - [`matmul()`] / [`matmul_many`]: `y = W · x` for a batch of activation rows, with weights
//!   in F32, F16, BF16, Q8_0, Q4_0, Q4_1 or the ternary TQ1_0, TQ2_0 and I2_S
//!   ([`WeightFormat`]). Every weight byte is read
//!   from memory once per call whatever the batch, so verifying K draft tokens costs far
//!   less than K single-token passes.
//! - Activations are converted once per call ([`Activations`]): integer blocks for the
//!   quantized formats, f32 for the float formats. [`Precision::Int8`] is ggml's
//!   `q8_0`/`q8_1`; [`Precision::Int16`] quantizes to ±32512 (256× less rounding error,
//!   the float model's answers) and stores each value as two int8 digits `q = 255·h + l`,
//!   so the integer kernels run both digits through the same int8 instructions and
//!   combine them exactly in i32 before the per-block float work, which int16 does not
//!   double.
//! - One scalar reference per format ([`formats`]) and SIMD paths beside it: AVX2+FMA+F16C
//!   and AVX-512 VNNI on x86_64, NEON (with and without `dotprod`) on aarch64, chosen at
//!   run time ([`active_path`], `SHARD_KERNELS`), never by `target-cpu=native`; on wasm32
//!   built with `+simd128`, simd128 kernels for TQ1_0, TQ2_0 and I2_S (the other formats
//!   run the scalar reference there). wasm tests run under Node's WASI:
//!   `CARGO_TARGET_WASM32_WASIP1_RUNNER="node kernels-cpu/tools/wasi-run.mjs"
//!   RUSTFLAGS="-C target-feature=+simd128" cargo test -p kernels-cpu --target wasm32-wasip1`.
//! - Quantize / dequantize for every format, byte-identical to ggml's `quantize_row_*_ref`
//!   and gguf-py's `quants.py` (tests check it against gguf-py), and bitnet.cpp's
//!   `quantize_i2_s` for I2_S.
//! - [`attend`]: one query row's attention over one head of a KV cache (scores, softmax,
//!   weighted values), with a scalar reference, AVX2+FMA and NEON paths; a position's result
//!   does not depend on how many rows share the pass.
//! - [`QMatrix::validate`]: a load-time scan for bytes a format cannot hold (ternary code
//!   3, NaN or infinite block scales).
//! - [`model::CpuModel`]: the llama and BitNet graphs on these kernels (RMSNorm, RoPE,
//!   grouped-query attention over a KV cache, SwiGLU or relu² FFN, the output head), one
//!   batched forward pass for any number of sessions. The titan runs it over a memory
//!   map; the browser scout's CPU fallback runs it in a Web Worker.
//!
//! How it is fast (details in the `arch` modules): activations are quantized once per
//! call into a transposed layout, so one SIMD integer dot product serves 8 (x86) or 4
//! (NEON) blocks per register and each i32 lane holds one block's sum; a batch of one
//! streams each weight row once, decoding each group of eight blocks in registers; larger
//! batches decode each weight row once into L1, tail blocks included, and run it against 4
//! batch rows (2 weight rows × 4 batch rows with AVX-512 VNNI) at a time, in column blocks
//! that keep both in L1.
//!
//! The ternary formats (TQ1_0, TQ2_0, I2_S) run on the same drivers: a 2-bit octet (256
//! values, 64 bytes) is two 32-byte halves whose four 2-bit planes are four activation
//! blocks, so one dword broadcast and one mask per vector give the octet order
//! (`arch/x86_64/avx2/ternary.rs`); TQ1_0's base-3 bytes are decoded with two byte compares
//! per trit and transposed. Codes go into the integer dot products as they are and the
//! offset of 1 is removed exactly as `Σc·q − S`. With per-token activations (BitNet's),
//! TQ2_0 and I2_S rows also get the activations in plain value order with per-lane sums:
//! the AVX-512 VNNI path then masks each loaded byte vector to one 2-bit plane (a run of
//! 32 consecutive values, no shuffle) and sums a whole 256-value block in integers before
//! one conversion (`arch/x86_64/natural.rs`). Weights are not repacked: the kernels read
//! the GGUF bytes (0 bytes of extra memory); batched calls decode a few KiB per thread
//! into L1 scratch, as for the other formats.
//!
//! What it does not do:
//! - no sampling, tokenizing or file I/O in the model: its host reads the file and picks
//!   tokens from the logits;
//! - no thread pool of its own: work runs on the caller's rayon pool (`pool.install`);
//! - no file I/O and no weight repacking: a [`QMatrix`] borrows the GGUF bytes as they are
//!   (I2_S included: [`QMatrix::new`] takes the whole tensor, scale tail and all);
//! - no K-quants; on wasm only the ternary formats have SIMD kernels;
//! - outputs are deterministic for a given path and independent of the thread count, but
//!   differ between paths by float rounding (see `tests/conformance.rs` for the bound).

mod activations;
mod arch;
mod attention;
mod dispatch;
mod error;
mod format;
pub mod formats;
mod matmul;
mod matrix;
pub mod model;
mod reference;
mod validate;

pub use activations::{Activations, Precision, Q16_MAX, QBlock, QRow};
pub use attention::{HeadRows, attend};
pub use dispatch::{
    ENV_VAR, KernelPath, Kernels, active_kernels, active_path, available_paths, kernels,
};
pub use error::KernelError;
pub use format::{RowEncoder, WeightFormat, row_encoder};
pub use matrix::QMatrix;
pub use validate::check_tensor;

/// `y[b * w.rows() + r] = Σ_c W[r, c] · x[b, c]` for every batch row `b`.
///
/// Runs on the current rayon pool (wrap it in `pool.install`), parallel over chunks of
/// rows. Weights are read once per call whatever the batch: each weight block is loaded
/// and then dotted against all batch rows while it sits in registers or L1.
///
/// # Errors
/// If `x` was prepared for a format that does not feed `w`, has a different number of
/// columns, or `y` does not hold `x.batch() × w.rows()` values.
pub fn matmul(w: &QMatrix<'_>, x: &Activations, y: &mut [f32]) -> Result<(), KernelError> {
    active_kernels().matmul(w, x, y)
}

/// Several matrices that share one input (Q/K/V; gate/up) in one parallel dispatch, to
/// cut thread-synchronization overhead in small models. Same contract as [`matmul()`] for
/// each `(matrix, output)` pair.
///
/// # Errors
/// As [`matmul()`], for the first pair that does not fit (nothing is computed then).
pub fn matmul_many(
    jobs: &mut [(&QMatrix<'_>, &mut [f32])],
    x: &Activations,
) -> Result<(), KernelError> {
    active_kernels().matmul_many(jobs, x)
}
