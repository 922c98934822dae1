//! [`GpuTensor`]: f32 values in a storage buffer (activations, logits, KV rows).

use crate::{Gpu, GpuError};

/// `len` f32 values in a buffer usable as storage, copy source and copy destination.
#[derive(Debug)]
pub struct GpuTensor {
    pub(crate) buffer: wgpu::Buffer,
    pub(crate) len: usize,
}

impl GpuTensor {
    /// Number of f32 values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether it holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffer, for callers that bind it themselves.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buffer
    }
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

impl Gpu {
    /// A tensor of `len` zeros.
    ///
    /// # Errors
    /// [`GpuError::TooLarge`] past the adapter's binding limit.
    pub fn zeros(&self, len: usize) -> Result<GpuTensor, GpuError> {
        let bytes = (len.max(1) * 4) as u64;
        if bytes > self.info.max_binding_bytes {
            return Err(GpuError::TooLarge {
                what: format!("a tensor of {len} f32 values"),
                bytes,
                limit: self.info.max_binding_bytes,
            });
        }
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("tensor"),
            size: bytes,
            usage: USAGE,
            mapped_at_creation: false,
        });
        Ok(GpuTensor { buffer, len })
    }

    /// A tensor holding `values`.
    ///
    /// # Errors
    /// As [`Self::zeros`].
    pub fn upload_f32(&self, values: &[f32]) -> Result<GpuTensor, GpuError> {
        let tensor = self.zeros(values.len())?;
        self.write_f32(&tensor, values)?;
        Ok(tensor)
    }

    /// Overwrites the first `values.len()` values of `tensor`.
    ///
    /// # Errors
    /// [`GpuError::Shape`] if `values` is longer than the tensor.
    pub fn write_f32(&self, tensor: &GpuTensor, values: &[f32]) -> Result<(), GpuError> {
        if values.len() > tensor.len {
            return Err(GpuError::Shape(format!(
                "{} values into a tensor of {}",
                values.len(),
                tensor.len
            )));
        }
        if !values.is_empty() {
            self.queue
                .write_buffer(&tensor.buffer, 0, bytemuck::cast_slice(values));
        }
        Ok(())
    }

    /// The values of `tensor`.
    ///
    /// # Errors
    /// As [`Self::read_f32`].
    pub async fn download(&self, tensor: &GpuTensor) -> Result<Vec<f32>, GpuError> {
        self.read_f32(&tensor.buffer, tensor.len).await
    }
}
