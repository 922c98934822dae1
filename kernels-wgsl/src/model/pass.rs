//! One forward pass on the GPU: the CPU model's op order
//! (`kernels-cpu/src/model/forward.rs`), each step one dispatch into a single command encoder.

use kernels_cpu::QMatrix;

use super::{GpuModel, GpuSession, Output, Projection, gate_activation, rope_pairs};
use crate::{AttentionShape, Gpu, GpuError, GpuTensor};

impl GpuModel {
    /// Runs `tokens` (1..=`MAX_BATCH`) after the session's positions, appends them, and
    /// hands the results of rows `first..` to `out`.
    pub(super) async fn pass(
        &self,
        session: &mut GpuSession,
        tokens: &[u32],
        first: usize,
        out: &mut Output<'_>,
    ) -> Result<(), GpuError> {
        let gpu = &self.gpu;
        let cfg = &self.config;
        let n = tokens.len();
        let start = session.len();
        let d = cfg.n_embd;
        let q_dim = cfg.n_head * cfg.head_dim;
        let kv_dim = cfg.kv_dim();
        let b = &session.buffers;

        // Inputs: one embedding row per token and one RoPE table row per position, both
        // computed on the host exactly as the CPU engine computes them.
        let (embd_bytes, embd) = &self.embedding;
        let table = QMatrix::new(embd.format, embd.rows, embd.cols, embd_bytes)
            .map_err(|e| GpuError::Shape(e.to_string()))?;
        let mut x = vec![0f32; n * d];
        for (row, &t) in x.chunks_exact_mut(d).zip(tokens) {
            table.dequantize_row(t as usize, row);
        }
        gpu.write_f32(&b.x, &x)?;
        let pairs = self.rope.pairs();
        let (mut cos, mut sin) = (Vec::new(), Vec::new());
        let mut rope_table = Vec::with_capacity(n * pairs * 2);
        for t in 0..n {
            self.rope.table(start + t, &mut cos, &mut sin);
            rope_table.extend(cos.iter().zip(&sin).flat_map(|(&c, &s)| [c, s]));
        }
        gpu.write_f32(&b.rope_table, &rope_table)?;

        let mut encoder = gpu
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("forward pass"),
            });
        let e = &mut encoder;
        let style = rope_pairs(self.rope.style());
        let shape = AttentionShape {
            rows: n,
            n_head: cfg.n_head,
            n_head_kv: cfg.n_head_kv,
            head_dim: cfg.head_dim,
            start,
        };
        for (l, w) in self.layers.iter().enumerate() {
            gpu.rms_norm(e, &b.x, &w.attn_norm, &b.h, n, d, cfg.rms_eps)
                .await?;
            project(gpu, e, &w.wq, &b.h, &b.q, n).await?;
            project(gpu, e, &w.wk, &b.h, &b.k, n).await?;
            project(gpu, e, &w.wv, &b.h, &b.v, n).await?;
            gpu.rope(
                e,
                &b.q,
                &b.rope_table,
                n,
                cfg.n_head,
                cfg.head_dim,
                pairs,
                style,
            )
            .await?;
            gpu.rope(
                e,
                &b.k,
                &b.rope_table,
                n,
                cfg.n_head_kv,
                cfg.head_dim,
                pairs,
                style,
            )
            .await?;
            gpu.copy_rows(e, &b.k, &session.k_cache[l], start, n, kv_dim)?;
            gpu.copy_rows(e, &b.v, &session.v_cache[l], start, n, kv_dim)?;
            gpu.attention(
                e,
                shape,
                &b.q,
                &session.k_cache[l],
                &session.v_cache[l],
                &b.scores,
                &b.att,
            )
            .await?;
            let att = match &w.attn_sub_norm {
                Some(norm) => {
                    gpu.rms_norm(e, &b.att, norm, &b.att_normed, n, q_dim, cfg.rms_eps)
                        .await?;
                    &b.att_normed
                }
                None => &b.att,
            };
            project(gpu, e, &w.wo, att, &b.proj, n).await?;
            gpu.add(e, &b.x, &b.proj, n * d).await?;

            gpu.rms_norm(e, &b.x, &w.ffn_norm, &b.h, n, d, cfg.rms_eps)
                .await?;
            project(gpu, e, &w.w_gate, &b.h, &b.gate, n).await?;
            project(gpu, e, &w.w_up, &b.h, &b.up, n).await?;
            let act = gate_activation(cfg.ffn_activation);
            gpu.ffn_gate(e, &b.gate, &b.up, n * cfg.n_ff, act).await?;
            let gated = match &w.ffn_sub_norm {
                Some(norm) => {
                    gpu.rms_norm(e, &b.gate, norm, &b.gate_normed, n, cfg.n_ff, cfg.rms_eps)
                        .await?;
                    &b.gate_normed
                }
                None => &b.gate,
            };
            project(gpu, e, &w.w_down, gated, &b.proj, n).await?;
            gpu.add(e, &b.x, &b.proj, n * d).await?;
        }

        // The rows that need logits: final norm and output head, then argmax or not.
        let n_out = n - first;
        if n_out > 0 {
            e.copy_buffer_to_buffer(
                &b.x.buffer,
                (first * d * 4) as u64,
                &b.x_out.buffer,
                0,
                (n_out * d * 4) as u64,
            );
            gpu.rms_norm(
                e,
                &b.x_out,
                &self.output_norm,
                &b.h_out,
                n_out,
                d,
                cfg.rms_eps,
            )
            .await?;
            project(gpu, e, &self.output, &b.h_out, &b.logits, n_out).await?;
            if let Output::Ids(_) = out {
                gpu.argmax(e, &b.logits, &b.ids, n_out, cfg.n_vocab).await?;
            }
        }
        gpu.queue.submit([encoder.finish()]);
        match out {
            _ if n_out == 0 => gpu.check_lost()?,
            Output::Logits(logits) => {
                logits.extend(gpu.read_f32(&b.logits.buffer, n_out * cfg.n_vocab).await?);
            }
            Output::Ids(ids) => ids.extend(gpu.read_u32(&b.ids.buffer, n_out).await?),
        }
        session.extend(tokens);
        Ok(())
    }
}

/// `y = W · x` for `n` rows, times the matrix's scale if it has one.
async fn project(
    gpu: &Gpu,
    encoder: &mut wgpu::CommandEncoder,
    w: &Projection,
    x: &GpuTensor,
    y: &GpuTensor,
    n: usize,
) -> Result<(), GpuError> {
    gpu.matmul(encoder, &w.matrix, x, y, n).await?;
    if let Some(factor) = w.scale {
        gpu.scale(encoder, y, n * w.matrix.rows(), factor).await?;
    }
    Ok(())
}
