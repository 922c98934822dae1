//! The small operations of a transformer layer on the GPU: RMSNorm, RoPE, the gated FFN
//! activation, residual adds and argmax. They touch activations only (a few KB per
//! token); the weight-bound work is [`Gpu::matmul`].
//!
//! Each records one dispatch into the caller's encoder, so a whole layer is one
//! submission and nothing comes back to the host but what the caller reads.

use crate::pipelines::Kernel;
use crate::{Gpu, GpuError, GpuTensor};

/// Invocations per workgroup of these kernels.
const WORKGROUP: u32 = 256;

/// How RoPE pairs the dimensions of a head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RopePairs {
    /// `(x[2i], x[2i + 1])`: llama.cpp's NORM mode (the `llama` architecture).
    Adjacent,
    /// `(x[i], x[i + n_rot/2])`: NEOX mode, HF's rotate-half (the BitNet architectures).
    Halves,
}

/// The gate activation of a gated FFN.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GateActivation {
    /// `silu(gate) · up` (SwiGLU).
    Silu,
    /// `relu(gate)² · up` (BitNet b1.58).
    Relu2,
}

fn need(what: &str, tensor: &GpuTensor, len: usize) -> Result<(), GpuError> {
    if tensor.len < len {
        return Err(GpuError::Shape(format!(
            "{what} holds {} values, the call needs {len}",
            tensor.len
        )));
    }
    Ok(())
}

fn to_u32(value: usize) -> Result<u32, GpuError> {
    u32::try_from(value).map_err(|_| GpuError::Shape(format!("{value} does not fit a u32")))
}

impl Gpu {
    /// `out[r, ..] = x[r, ..] / sqrt(mean(x[r, ..]²) + eps) · weight` for `rows` rows
    /// of `cols` values.
    ///
    /// # Errors
    /// [`GpuError::Shape`] if a tensor is too short.
    #[allow(clippy::too_many_arguments)]
    pub async fn rms_norm(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        weight: &GpuTensor,
        out: &GpuTensor,
        rows: usize,
        cols: usize,
        eps: f32,
    ) -> Result<(), GpuError> {
        need("x", x, rows * cols)?;
        need("weight", weight, cols)?;
        need("out", out, rows * cols)?;
        let params = [to_u32(rows)?, to_u32(cols)?, eps.to_bits()];
        self.dispatch(
            encoder,
            Kernel::RmsNorm,
            vec![("WG", WORKGROUP)],
            &[&x.buffer, &weight.buffer, &out.buffer],
            &params,
            to_u32(rows)?,
        )
        .await
    }

    /// Rotates the first `2·pairs` dimensions of every head of `x` (`rows × heads ×
    /// head_dim`) in place; `table` holds `(cos, sin)` of each row's position for each
    /// pair (`rows × pairs × 2` values), computed on the host like the CPU engine's.
    ///
    /// # Errors
    /// [`GpuError::Shape`] if a tensor is too short or `2·pairs > head_dim`.
    #[allow(clippy::too_many_arguments)]
    pub async fn rope(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        table: &GpuTensor,
        rows: usize,
        heads: usize,
        head_dim: usize,
        pairs: usize,
        style: RopePairs,
    ) -> Result<(), GpuError> {
        if 2 * pairs > head_dim {
            return Err(GpuError::Shape(format!(
                "{pairs} RoPE pairs do not fit a head of {head_dim}"
            )));
        }
        need("x", x, rows * heads * head_dim)?;
        need("table", table, rows * pairs * 2)?;
        let params = [
            to_u32(rows)?,
            to_u32(heads)?,
            to_u32(head_dim)?,
            to_u32(pairs)?,
        ];
        let neox = u32::from(style == RopePairs::Halves);
        self.dispatch(
            encoder,
            Kernel::Rope,
            vec![("WG", WORKGROUP), ("NEOX", neox)],
            &[&x.buffer, &table.buffer],
            &params,
            to_u32((rows * heads * pairs).div_ceil(WORKGROUP as usize))?,
        )
        .await
    }

    /// `gate[i] = act(gate[i]) · up[i]` for the first `len` values.
    ///
    /// # Errors
    /// [`GpuError::Shape`] if a tensor is too short.
    pub async fn ffn_gate(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        gate: &GpuTensor,
        up: &GpuTensor,
        len: usize,
        activation: GateActivation,
    ) -> Result<(), GpuError> {
        need("gate", gate, len)?;
        need("up", up, len)?;
        let act = u32::from(activation == GateActivation::Relu2);
        self.dispatch(
            encoder,
            Kernel::FfnGate,
            vec![("WG", WORKGROUP), ("ACT", act)],
            &[&gate.buffer, &up.buffer],
            &[to_u32(len)?],
            to_u32(len.div_ceil(WORKGROUP as usize))?,
        )
        .await
    }

    /// `x[i] += y[i]` for the first `len` values.
    ///
    /// # Errors
    /// [`GpuError::Shape`] if a tensor is too short.
    pub async fn add(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        y: &GpuTensor,
        len: usize,
    ) -> Result<(), GpuError> {
        need("x", x, len)?;
        need("y", y, len)?;
        self.dispatch(
            encoder,
            Kernel::Add,
            vec![("WG", WORKGROUP)],
            &[&x.buffer, &y.buffer],
            &[to_u32(len)?],
            to_u32(len.div_ceil(WORKGROUP as usize))?,
        )
        .await
    }

    /// `x[i] *= factor` for the first `len` values (BitNet's per-tensor scales).
    ///
    /// # Errors
    /// [`GpuError::Shape`] if `x` is too short.
    pub async fn scale(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        len: usize,
        factor: f32,
    ) -> Result<(), GpuError> {
        need("x", x, len)?;
        self.dispatch(
            encoder,
            Kernel::Scale,
            vec![("WG", WORKGROUP)],
            &[&x.buffer],
            &[to_u32(len)?, factor.to_bits()],
            to_u32(len.div_ceil(WORKGROUP as usize))?,
        )
        .await
    }

    /// `out[r]` = the index of the largest value of row `r` of `x` (`rows × cols`),
    /// as `shared_protocol::sampling::argmax` picks it: the lowest index wins ties,
    /// NaN and −∞ never win. `out` receives `rows` u32 words ([`Gpu::read_u32`]).
    ///
    /// # Errors
    /// [`GpuError::Shape`] if a tensor is too short.
    pub async fn argmax(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        x: &GpuTensor,
        out: &GpuTensor,
        rows: usize,
        cols: usize,
    ) -> Result<(), GpuError> {
        need("x", x, rows * cols)?;
        need("out", out, rows)?;
        self.dispatch(
            encoder,
            Kernel::Argmax,
            vec![("WG", WORKGROUP)],
            &[&x.buffer, &out.buffer],
            &[to_u32(rows)?, to_u32(cols)?],
            to_u32(rows)?,
        )
        .await
    }

    /// One dispatch of `kernel` over `groups` workgroups (laid out in two dimensions
    /// past the per-dimension limit), with `buffers` at bindings 0.. and `params` as a
    /// uniform at the next binding.
    pub(crate) async fn dispatch(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        kernel: Kernel,
        defines: crate::pipelines::Defines,
        buffers: &[&wgpu::Buffer],
        params: &[u32],
        groups: u32,
    ) -> Result<(), GpuError> {
        self.check_lost()?;
        if groups == 0 {
            return Ok(());
        }
        let pipeline = self.pipeline(kernel, defines).await?;
        let mut words = params.to_vec();
        words.resize(params.len().div_ceil(4).max(1) * 4, 0);
        let uniform = wgpu::util::DeviceExt::create_buffer_init(
            &self.device,
            &wgpu::util::BufferInitDescriptor {
                label: Some("params"),
                contents: bytemuck::cast_slice(&words),
                usage: wgpu::BufferUsages::UNIFORM,
            },
        );
        let mut entries: Vec<wgpu::BindGroupEntry<'_>> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        entries.push(wgpu::BindGroupEntry {
            binding: buffers.len() as u32,
            resource: uniform.as_entire_binding(),
        });
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: None,
            layout: &pipeline.get_bind_group_layout(0),
            entries: &entries,
        });
        let max_dim = self.info.max_workgroups_per_dim.max(1);
        let groups_x = groups.min(max_dim);
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: None,
            timestamp_writes: None,
        });
        pass.set_pipeline(&pipeline);
        pass.set_bind_group(0, &bind, &[]);
        pass.dispatch_workgroups(groups_x, groups.div_ceil(groups_x), 1);
        Ok(())
    }
}
