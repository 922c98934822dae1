//! The crate's one error type.

use kernels_cpu::WeightFormat;

/// What can go wrong on the GPU side. Every variant says enough to act on: which limit,
/// which shape, what the driver said.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    /// No adapter matched (no GPU driver, no Vulkan ICD, WebGPU missing in the browser).
    #[error("no GPU adapter found: {0}")]
    NoAdapter(String),
    /// The adapter refused the device (limits or features it lacks).
    #[error("the GPU adapter {adapter:?} refused a device: {reason}")]
    RequestDevice { adapter: String, reason: String },
    /// The device was lost (driver reset, GPU removed, tab backgrounded too long).
    #[error("the GPU device was lost: {0}")]
    DeviceLost(String),
    /// A shader failed to compile or a call failed validation.
    #[error("GPU validation error in {what}: {message}")]
    Validation { what: String, message: String },
    /// Mapping a buffer for readback failed.
    #[error("reading back from the GPU failed: {0}")]
    Readback(String),
    /// The kernels do not read this weight format on the GPU.
    #[error("{0} weights have no GPU kernel")]
    UnsupportedFormat(WeightFormat),
    /// One row of a matrix, or one tensor, is larger than a storage binding may be.
    #[error("{what} needs {bytes} bytes in one binding, over the adapter's limit of {limit}")]
    TooLarge {
        what: String,
        bytes: u64,
        limit: u64,
    },
    /// The batch is outside 1..=[`crate::MAX_BATCH`].
    #[error("batch of {0} rows is outside 1..={max}", max = crate::MAX_BATCH)]
    Batch(usize),
    /// Arguments of different shapes.
    #[error("shape mismatch: {0}")]
    Shape(String),
}
