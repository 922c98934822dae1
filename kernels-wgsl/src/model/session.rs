//! [`GpuSession`]: one sequence on the GPU, its KV cache and the buffers of its passes.

use shared_protocol::model::ModelConfig;

use crate::{AttentionShape, Gpu, GpuError, GpuTensor, MAX_BATCH};

/// One sequence: the tokens whose keys and values are cached, a token-major KV cache
/// per layer (`capacity × n_head_kv · head_dim` f32 each), and activation buffers sized
/// for a pass of [`MAX_BATCH`] rows, allocated once.
///
/// Rolling back rejected drafts is [`GpuSession::truncate`]: the cache rows past the new
/// length are simply overwritten by the next pass.
#[derive(Debug)]
pub struct GpuSession {
    tokens: Vec<u32>,
    capacity: usize,
    pub(super) k_cache: Vec<GpuTensor>,
    pub(super) v_cache: Vec<GpuTensor>,
    pub(super) buffers: PassBuffers,
}

/// The activations of one pass, each `MAX_BATCH` rows wide.
#[derive(Debug)]
pub(super) struct PassBuffers {
    /// The residual stream.
    pub x: GpuTensor,
    /// Normed input of a projection.
    pub h: GpuTensor,
    pub q: GpuTensor,
    pub k: GpuTensor,
    pub v: GpuTensor,
    pub att: GpuTensor,
    /// BitNet: the attention output after its sub-norm.
    pub att_normed: GpuTensor,
    pub proj: GpuTensor,
    pub gate: GpuTensor,
    pub up: GpuTensor,
    /// BitNet: the gated product after its sub-norm.
    pub gate_normed: GpuTensor,
    /// `(cos, sin)` per row and pair.
    pub rope_table: GpuTensor,
    /// Attention scores, one row per (query row, head) over the whole capacity.
    pub scores: GpuTensor,
    /// The rows that get logits, copied out of `x`, and then normed.
    pub x_out: GpuTensor,
    pub h_out: GpuTensor,
    pub logits: GpuTensor,
    pub ids: GpuTensor,
}

impl GpuSession {
    pub(super) fn new(gpu: &Gpu, cfg: &ModelConfig, capacity: usize) -> Result<Self, GpuError> {
        let kv_dim = cfg.kv_dim();
        let q_dim = cfg.n_head * cfg.head_dim;
        let rows = MAX_BATCH;
        let scores = AttentionShape {
            rows,
            n_head: cfg.n_head,
            n_head_kv: cfg.n_head_kv,
            head_dim: cfg.head_dim,
            start: capacity - rows.min(capacity),
        }
        .scratch_len();
        let cache = || -> Result<Vec<GpuTensor>, GpuError> {
            (0..cfg.n_layer)
                .map(|_| gpu.zeros(capacity * kv_dim))
                .collect()
        };
        let buffers = PassBuffers {
            x: gpu.zeros(rows * cfg.n_embd)?,
            h: gpu.zeros(rows * cfg.n_embd)?,
            q: gpu.zeros(rows * q_dim)?,
            k: gpu.zeros(rows * kv_dim)?,
            v: gpu.zeros(rows * kv_dim)?,
            att: gpu.zeros(rows * q_dim)?,
            att_normed: gpu.zeros(rows * q_dim)?,
            proj: gpu.zeros(rows * cfg.n_embd)?,
            gate: gpu.zeros(rows * cfg.n_ff)?,
            up: gpu.zeros(rows * cfg.n_ff)?,
            gate_normed: gpu.zeros(rows * cfg.n_ff)?,
            rope_table: gpu.zeros(rows * cfg.n_rot)?,
            scores: gpu.zeros(scores)?,
            x_out: gpu.zeros(rows * cfg.n_embd)?,
            h_out: gpu.zeros(rows * cfg.n_embd)?,
            logits: gpu.zeros(rows * cfg.n_vocab)?,
            ids: gpu.zeros(rows)?,
        };
        Ok(Self {
            tokens: Vec::new(),
            capacity,
            k_cache: cache()?,
            v_cache: cache()?,
            buffers,
        })
    }

    /// Tokens whose keys and values are in the cache.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// Positions the cache holds at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Forgets every position from `len` on (rejected drafts).
    pub fn truncate(&mut self, len: usize) {
        self.tokens.truncate(len);
    }

    pub(super) fn extend(&mut self, tokens: &[u32]) {
        self.tokens.extend_from_slice(tokens);
    }
}
