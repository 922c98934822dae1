//! Causal grouped-query attention over a KV cache kept on the GPU.

use crate::pipelines::Kernel;
use crate::{Gpu, GpuError, GpuTensor};

/// Invocations per workgroup of the attention kernel.
const WORKGROUP: u32 = 64;

/// Largest head dimension the kernel holds in workgroup memory.
pub const MAX_HEAD_DIM: usize = 256;

/// The head layout of one attention call: `rows` new query rows of one sequence, the
/// first at absolute position `start`, over a token-major cache whose rows are
/// `n_head_kv · head_dim` wide and hold every position up to `start + rows`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttentionShape {
    pub rows: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub start: usize,
}

impl AttentionShape {
    /// Positions the last row sees.
    pub fn ctx(&self) -> usize {
        self.start + self.rows
    }

    /// f32 values of scratch [`Gpu::attention`] needs: one score per (row, head,
    /// position).
    pub fn scratch_len(&self) -> usize {
        self.rows * self.n_head * self.ctx()
    }

    fn check(&self) -> Result<(), GpuError> {
        let ok = self.rows > 0
            && self.n_head_kv > 0
            && self.n_head.is_multiple_of(self.n_head_kv)
            && (1..=MAX_HEAD_DIM).contains(&self.head_dim);
        if ok {
            Ok(())
        } else {
            Err(GpuError::Shape(format!("attention shape {self:?}")))
        }
    }
}

fn u32_of(v: usize) -> Result<u32, GpuError> {
    u32::try_from(v).map_err(|_| GpuError::Shape(format!("{v} does not fit a u32")))
}

impl Gpu {
    /// `out[t, h] = Σ_j softmax_j(q[t, h]·k[j, g] / √head_dim) · v[j, g]` over the
    /// positions `j ≤ start + t`, `g` being head `h`'s KV group. `q` and `out` are
    /// `rows × n_head·head_dim`; `scores` is scratch of [`AttentionShape::scratch_len`].
    ///
    /// # Errors
    /// [`GpuError::Shape`] for an impossible shape or a tensor too short for it.
    #[allow(clippy::too_many_arguments)]
    pub async fn attention(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        shape: AttentionShape,
        q: &GpuTensor,
        k_cache: &GpuTensor,
        v_cache: &GpuTensor,
        scores: &GpuTensor,
        out: &GpuTensor,
    ) -> Result<(), GpuError> {
        shape.check()?;
        let q_len = shape.rows * shape.n_head * shape.head_dim;
        let kv_width = shape.n_head_kv * shape.head_dim;
        let short = q.len < q_len
            || out.len < q_len
            || k_cache.len < shape.ctx() * kv_width
            || v_cache.len < shape.ctx() * kv_width
            || scores.len < shape.scratch_len();
        if short {
            return Err(GpuError::Shape(format!(
                "attention {shape:?}: q {}, out {}, k {}, v {}, scores {} values",
                q.len, out.len, k_cache.len, v_cache.len, scores.len
            )));
        }
        let scale = 1.0 / (shape.head_dim as f32).sqrt();
        let params = [
            u32_of(shape.rows)?,
            u32_of(shape.n_head)?,
            u32_of(shape.n_head_kv)?,
            u32_of(shape.start)?,
            u32_of(kv_width)?,
            u32_of(shape.ctx())?,
            scale.to_bits(),
        ];
        self.dispatch(
            encoder,
            Kernel::Attention,
            vec![("WG", WORKGROUP), ("HEAD_DIM", u32_of(shape.head_dim)?)],
            &[
                &q.buffer,
                &k_cache.buffer,
                &v_cache.buffer,
                &scores.buffer,
                &out.buffer,
            ],
            &params,
            u32_of(shape.rows * shape.n_head)?,
        )
        .await
    }

    /// Copies `rows` rows of `width` values from the start of `new` into `cache` from
    /// row `position` on (appending K or V rows to a token-major cache; a rollback is
    /// only a shorter length, as the next append overwrites).
    ///
    /// # Errors
    /// [`GpuError::Shape`] if `new` is short or the cache too small.
    pub fn copy_rows(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        new: &GpuTensor,
        cache: &GpuTensor,
        position: usize,
        rows: usize,
        width: usize,
    ) -> Result<(), GpuError> {
        let len = rows * width;
        if new.len < len || cache.len < (position + rows) * width {
            return Err(GpuError::Shape(format!(
                "{rows} rows of {width} from {} values into a cache of {} at row {position}",
                new.len, cache.len
            )));
        }
        if len > 0 {
            encoder.copy_buffer_to_buffer(
                &new.buffer,
                0,
                &cache.buffer,
                (position * width * 4) as u64,
                (len * 4) as u64,
            );
        }
        Ok(())
    }
}
