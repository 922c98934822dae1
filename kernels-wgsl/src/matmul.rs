//! `y = W · x` on the GPU for a batch of 1..=[`MAX_BATCH`] activation rows.

use crate::pipelines::Kernel;
use crate::{Gpu, GpuError, GpuMatrix, GpuTensor};

/// Largest batch one matmul dispatch takes: a verify pass of 15 drafts and the bonus
/// position.
pub const MAX_BATCH: usize = 16;

/// How the matmul kernel spreads rows over invocations: `rows_per_workgroup` rows with
/// `threads_per_row` invocations each.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MatmulTiling {
    pub rows_per_workgroup: u32,
    pub threads_per_row: u32,
}

impl MatmulTiling {
    /// Software adapters (lavapipe, SwiftShader) run invocations as SIMD lanes of CPU
    /// threads, so every invocation costs; one per row and no reduction is fastest
    /// there (Q4_1 1536×576, batch 1 on lavapipe: 64 invocations per row 6.3 ms,
    /// 8 per row 1.9 ms). GPUs get 16 invocations per row for coalesced block reads.
    pub fn for_adapter(software: bool) -> Self {
        if software {
            Self {
                rows_per_workgroup: 64,
                threads_per_row: 1,
            }
        } else {
            Self {
                rows_per_workgroup: 4,
                threads_per_row: 16,
            }
        }
    }
}

impl Gpu {
    /// Records `y[b · w.rows() + r] = Σ_c W[r, c] · x[b · w.cols() + c]` for the `batch`
    /// rows of `x` into `encoder`: one dispatch per row chunk of `w`, each weight byte
    /// read once for the whole batch.
    ///
    /// # Errors
    /// [`GpuError::Batch`] outside 1..=[`MAX_BATCH`], [`GpuError::Shape`] if `x` or `y`
    /// is too short, and what compiling the pipeline may give.
    pub async fn matmul(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        w: &GpuMatrix,
        x: &GpuTensor,
        y: &GpuTensor,
        batch: usize,
    ) -> Result<(), GpuError> {
        self.check_lost()?;
        if !(1..=MAX_BATCH).contains(&batch) {
            return Err(GpuError::Batch(batch));
        }
        if x.len < batch * w.cols || y.len < batch * w.rows {
            return Err(GpuError::Shape(format!(
                "{}×{} matrix, batch {batch}: x holds {} of {} values, y {} of {}",
                w.rows,
                w.cols,
                x.len,
                batch * w.cols,
                y.len,
                batch * w.rows
            )));
        }
        let pipeline = self
            .pipeline(
                Kernel::Matmul(w.format),
                vec![
                    ("ROWS", self.matmul_tiling.rows_per_workgroup),
                    ("TPR", self.matmul_tiling.threads_per_row),
                    ("BATCH", batch as u32),
                ],
            )
            .await?;
        let layout = pipeline.get_bind_group_layout(0);
        let max_dim = self.info.max_workgroups_per_dim.max(1);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("matmul"),
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        for chunk in &w.chunks {
            let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("matmul"),
                layout: &layout,
                entries: &[
                    entry(0, &chunk.weights),
                    entry(1, &x.buffer),
                    entry(2, &y.buffer),
                    entry(3, &chunk.params),
                ],
            });
            pass.set_bind_group(0, &bind, &[]);
            let groups = (chunk.rows as u32).div_ceil(self.matmul_tiling.rows_per_workgroup);
            let groups_x = groups.min(max_dim);
            pass.dispatch_workgroups(groups_x, groups.div_ceil(groups_x), 1);
        }
        Ok(())
    }

    /// [`Self::matmul`] from and to host memory: uploads `x` (`batch × w.cols()`
    /// values), runs, and reads back `batch × w.rows()` values. For tests and one-off
    /// calls; a model keeps its tensors on the GPU.
    ///
    /// # Errors
    /// As [`Self::matmul`], plus [`GpuError::Shape`] if `x` does not hold `batch` rows.
    pub async fn matmul_host(
        &self,
        w: &GpuMatrix,
        x: &[f32],
        batch: usize,
    ) -> Result<Vec<f32>, GpuError> {
        if x.len() != batch * w.cols {
            return Err(GpuError::Shape(format!(
                "x holds {} values, not batch {batch} × {} columns",
                x.len(),
                w.cols
            )));
        }
        let x = self.upload_f32(x)?;
        let y = self.zeros(batch * w.rows)?;
        let mut encoder = self
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("matmul"),
            });
        self.matmul(&mut encoder, w, &x, &y, batch).await?;
        self.queue.submit([encoder.finish()]);
        self.download(&y).await
    }
}

fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}
