//! Copying GPU buffers back to the host without spinning.
//!
//! `map_async` reports through a callback; the callback sends on a oneshot channel that
//! the caller awaits. In the browser the device polls itself; natively the call blocks in
//! `Device::poll` until the copy has finished, which wakes the channel before it is
//! awaited.

use crate::{Gpu, GpuError};

impl Gpu {
    /// The first `len` f32 values of `buffer` (which needs `COPY_SRC` usage).
    ///
    /// # Errors
    /// [`GpuError::DeviceLost`] or [`GpuError::Readback`].
    pub async fn read_f32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<f32>, GpuError> {
        let bytes = self.read_bytes(buffer, (len * 4) as u64).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    /// The first `len` u32 values of `buffer` (which needs `COPY_SRC` usage).
    ///
    /// # Errors
    /// As [`Self::read_f32`].
    pub async fn read_u32(&self, buffer: &wgpu::Buffer, len: usize) -> Result<Vec<u32>, GpuError> {
        let bytes = self.read_bytes(buffer, (len * 4) as u64).await?;
        Ok(bytemuck::pod_collect_to_vec(&bytes))
    }

    async fn read_bytes(&self, buffer: &wgpu::Buffer, size: u64) -> Result<Vec<u8>, GpuError> {
        self.check_lost()?;
        if size == 0 {
            return Ok(Vec::new());
        }
        let staging = self.pool.take(
            &self.device,
            size,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("readback"),
            });
        encoder.copy_buffer_to_buffer(buffer, 0, &staging, 0, size);
        self.queue.submit([encoder.finish()]);
        let (tx, rx) = futures_channel::oneshot::channel();
        staging
            .slice(..size)
            .map_async(wgpu::MapMode::Read, move |result| {
                // The receiver is only gone if the caller's future was dropped.
                let _ = tx.send(result);
            });
        #[cfg(not(target_arch = "wasm32"))]
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Readback(e.to_string()))?;
        let mapped = rx
            .await
            .map_err(|_| GpuError::Readback("the map callback was dropped".into()))?;
        if let Err(e) = mapped {
            self.check_lost()?;
            return Err(GpuError::Readback(e.to_string()));
        }
        let bytes = staging.slice(..size).get_mapped_range().to_vec();
        staging.unmap();
        self.pool.give(staging);
        Ok(bytes)
    }
}
