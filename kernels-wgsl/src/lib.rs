//! # kernels-wgsl
//!
//! Shard's GPU kernels in WGSL and the thin wgpu runner that drives them, one code base
//! for the browser scout (WebGPU) and the titan's `--device gpu` (Vulkan, Metal, DX12;
//! Mesa lavapipe in CI).
//!
//! What it does:
//! - [`Gpu`]: adapter and device selection ([`Gpu::new`]: WebGPU detected before the
//!   instance is made in the browser; `WGPU_BACKEND` / `WGPU_ADAPTER_NAME` natively),
//!   the adapter's own limits requested, a pipeline cache keyed by kernel and defines,
//!   a buffer pool, a device-lost flag every call checks, and readback through
//!   `map_async` and a channel ([`Gpu::read_f32`]), never a spin.
//! - [`GpuMatrix`]: a weight matrix uploaded as its GGUF block bytes in `u32` words
//!   (F32, F16, BF16, Q8_0, Q4_0, Q4_1, TQ2_0, I2_S), split by rows across bindings
//!   when it is larger than the adapter's binding limit.
//! - [`Gpu::matmul`]: `y = W · x` for 1..=[`MAX_BATCH`] activation rows in f32
//!   arithmetic, one workgroup per weight row, reduced through workgroup memory (the web
//!   has no subgroup operations), every weight byte read once per call.
//!
//! - [`ops`]: RMSNorm, RoPE (NORM and NEOX pairs, host-computed tables), the SwiGLU and
//!   relu² gates, residual adds, and argmax that reads back one token id per row.
//! - [`Gpu::attention`]: causal grouped-query attention of a pass's new rows over a
//!   token-major KV cache on the GPU ([`Gpu::copy_rows`] appends to it).
//!
//! - [`GpuModel`]: a llama or BitNet model from a GGUF file's bytes, read through
//!   `shared_protocol::model`'s recipe (the CPU engine's weight map, block checks and
//!   RoPE tables) and run in the CPU engine's op order; a [`GpuSession`] holds a KV
//!   cache on the GPU with rollback, and one pass takes up to [`MAX_BATCH`] tokens
//!   (decode, or K+1 to verify drafts) and reads back logits or only their argmax.
//!
//! Shaders are plain files under `shaders/`, one idea each: `bytes.wgsl` (fields from
//! words), `format_*.wgsl` (one block of one format), `matmul.wgsl` (the driver).
//!
//! What it does not do (yet): Gumbel-max sampling on the GPU (sampled picks read the
//! logits back and sample on the host); TQ1_0 weights; subgroup or `f16` variants of
//! the kernels; BitNet's int8 per-token activations (the GPU computes them in f32).

mod attention;
mod context;
mod error;
mod matmul;
mod matrix;
mod model;
pub mod ops;
mod pipelines;
mod pool;
mod readback;
mod tensor;

pub use attention::{AttentionShape, MAX_HEAD_DIM};
pub use context::{Gpu, GpuInfo, GpuOptions};
pub use error::GpuError;
pub use matmul::{MAX_BATCH, MatmulTiling};
pub use matrix::GpuMatrix;
pub use model::{GpuModel, GpuModelError, GpuSession};
pub use ops::{GateActivation, RopePairs};
pub use tensor::GpuTensor;
