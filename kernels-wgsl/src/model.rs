//! The GPU model: a llama-family model's recipe (`shared_protocol::model`) executed on
//! the kernels of this crate, in the op order of the CPU engine's forward pass
//! (kernels-cpu's `model/forward.rs`), from a GGUF file's bytes.
//!
//! Loading takes `&[u8]`, so the same code reads a memory map natively and a fetched
//! `ArrayBuffer` in the browser; the bytes are not kept. Every matrix goes to the GPU as
//! its block bytes ([`GpuMatrix`]). The token embedding is also kept on the host, in its
//! file format (28 MB for SmolLM2-135M's Q8_0 table), because a pass looks up one row per
//! token there and uploads the rows with the pass's other inputs.
//!
//! A pass takes up to [`MAX_BATCH`] new tokens of one [`GpuSession`] (one to decode, K+1
//! to verify drafts) and is one submission: every layer's dispatches go into one command
//! encoder, and what comes back is the logits asked for, or only their argmax.

mod pass;
mod session;

pub use session::GpuSession;

use kernels_cpu::QMatrix;
use shared_protocol::drafting::draft_prefix;
use shared_protocol::gguf::{GgufError, GgufFile};
use shared_protocol::model::{
    ConfigError, FfnActivation, Logits, ModelConfig, ModelWeights, Rope, RopeStyle, TensorRef,
    WeightError,
};
use shared_protocol::sampling::{SamplingParams, sample_token};

use crate::{GateActivation, Gpu, GpuError, GpuMatrix, GpuTensor, MAX_BATCH, RopePairs};

/// Why a model cannot be loaded or a pass cannot run on the GPU.
#[derive(Debug, thiserror::Error)]
pub enum GpuModelError {
    #[error("invalid GGUF")]
    Gguf(#[from] GgufError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Weights(#[from] WeightError),
    #[error(transparent)]
    Gpu(#[from] GpuError),
    #[error("{needed} positions exceed the session's capacity of {limit}")]
    ContextOverflow { needed: usize, limit: usize },
    #[error("token id {id} is outside the vocabulary of {vocab}")]
    InvalidToken { id: u32, vocab: usize },
    #[error("no input tokens")]
    EmptyInput,
}

/// A matrix on the GPU with the scalar its product is multiplied by, if any.
#[derive(Debug)]
struct Projection {
    matrix: GpuMatrix,
    scale: Option<f32>,
}

#[derive(Debug)]
struct GpuLayer {
    attn_norm: GpuTensor,
    wq: Projection,
    wk: Projection,
    wv: Projection,
    attn_sub_norm: Option<GpuTensor>,
    wo: Projection,
    ffn_norm: GpuTensor,
    w_gate: Projection,
    w_up: Projection,
    ffn_sub_norm: Option<GpuTensor>,
    w_down: Projection,
}

/// A model whose weights live on one GPU.
#[derive(Debug)]
pub struct GpuModel {
    gpu: Gpu,
    pub config: ModelConfig,
    rope: Rope,
    /// The token embedding's bytes in its file format, and its place in them (offset 0).
    embedding: (Vec<u8>, TensorRef),
    layers: Vec<GpuLayer>,
    output_norm: GpuTensor,
    output: Projection,
    /// Bytes of weights uploaded.
    weight_bytes: usize,
}

impl GpuModel {
    /// Reads the model in `bytes` (a whole GGUF file) and uploads its weights, refusing
    /// the files the CPU engine refuses (the same weight map and block checks).
    ///
    /// # Errors
    /// A bad file ([`GpuModelError::Gguf`], [`GpuModelError::Config`],
    /// [`GpuModelError::Weights`]); a tensor the adapter cannot hold or a weight format
    /// without a GPU kernel ([`GpuModelError::Gpu`]).
    pub fn load(gpu: Gpu, bytes: &[u8]) -> Result<Self, GpuModelError> {
        let file = GgufFile::parse(bytes)?;
        let config = ModelConfig::from_gguf(&file)?;
        let weights = ModelWeights::from_gguf(&file, &config, &kernels_cpu::check_tensor)?;
        drop(file);
        let mut weight_bytes = 0;
        let mut upload = |t: &TensorRef| -> Result<Projection, GpuError> {
            let view = QMatrix::new(t.format, t.rows, t.cols, t.bytes(bytes))
                .map_err(|e| GpuError::Shape(e.to_string()))?;
            weight_bytes += t.len;
            Ok(Projection {
                matrix: GpuMatrix::upload(&gpu, &view)?,
                scale: t.scale,
            })
        };
        let mut layers = Vec::with_capacity(weights.layers.len());
        for l in &weights.layers {
            layers.push(GpuLayer {
                attn_norm: gpu.upload_f32(&l.attn_norm)?,
                wq: upload(&l.wq)?,
                wk: upload(&l.wk)?,
                wv: upload(&l.wv)?,
                attn_sub_norm: l
                    .attn_sub_norm
                    .as_deref()
                    .map(|n| gpu.upload_f32(n))
                    .transpose()?,
                wo: upload(&l.wo)?,
                ffn_norm: gpu.upload_f32(&l.ffn_norm)?,
                w_gate: upload(&l.w_gate)?,
                w_up: upload(&l.w_up)?,
                ffn_sub_norm: l
                    .ffn_sub_norm
                    .as_deref()
                    .map(|n| gpu.upload_f32(n))
                    .transpose()?,
                w_down: upload(&l.w_down)?,
            });
        }
        let output = upload(&weights.output)?;
        let embd = weights.token_embd;
        let embedding = (embd.bytes(bytes).to_vec(), TensorRef { offset: 0, ..embd });
        let rope = Rope::for_model(&config, weights.rope_freqs.as_deref());
        tracing::info!(
            adapter = %gpu.info().adapter.name,
            layers = config.n_layer,
            embd = config.n_embd,
            vocab = config.n_vocab,
            weight_mib = weight_bytes >> 20,
            "model uploaded to the GPU"
        );
        Ok(Self {
            output_norm: gpu.upload_f32(&weights.output_norm)?,
            gpu,
            config,
            rope,
            embedding,
            layers,
            output,
            weight_bytes,
        })
    }

    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// Bytes of weights one pass reads on the GPU (every matrix once).
    pub fn weight_bytes(&self) -> usize {
        self.weight_bytes
    }

    /// A new sequence whose KV cache holds up to `capacity` positions (at most the
    /// model's context length).
    ///
    /// # Errors
    /// [`GpuModelError::Gpu`] if the adapter cannot hold the cache or the pass buffers.
    pub fn new_session(&self, capacity: usize) -> Result<GpuSession, GpuModelError> {
        Ok(GpuSession::new(
            &self.gpu,
            &self.config,
            capacity.clamp(1, self.config.n_ctx),
        )?)
    }

    /// Runs `tokens` after the session's cached positions, appends them to it and
    /// returns the logits `which` asks for, `rows × n_vocab` row-major. Prompts longer
    /// than [`MAX_BATCH`] run as several passes.
    ///
    /// # Errors
    /// As [`Self::next_tokens`].
    pub async fn forward(
        &self,
        session: &mut GpuSession,
        tokens: &[u32],
        which: Logits,
    ) -> Result<Vec<f32>, GpuModelError> {
        let mut logits = Vec::new();
        self.run(session, tokens, which, &mut Output::Logits(&mut logits))
            .await?;
        Ok(logits)
    }

    /// As [`Self::forward`], but the argmax of each row of logits is taken on the GPU
    /// (`shared_protocol::sampling::argmax`'s rules) and only the token ids come back:
    /// greedy decoding reads 4 bytes per position, not the vocabulary's logits.
    ///
    /// # Errors
    /// [`GpuModelError::EmptyInput`], [`GpuModelError::InvalidToken`] and
    /// [`GpuModelError::ContextOverflow`] before anything runs; [`GpuModelError::Gpu`] if
    /// the device fails (a lost device included), after which the session holds only the
    /// positions it held before the call.
    pub async fn next_tokens(
        &self,
        session: &mut GpuSession,
        tokens: &[u32],
        which: Logits,
    ) -> Result<Vec<u32>, GpuModelError> {
        let mut ids = Vec::new();
        self.run(session, tokens, which, &mut Output::Ids(&mut ids))
            .await?;
        Ok(ids)
    }

    /// Drafts `k` tokens after `context` as a scout does, with the unit's shared
    /// randomness at the positions the titan will verify: greedy picks by the GPU's argmax
    /// (one id comes back per pass), sampled ones on the host from the logits. The
    /// session's cached prefix of `context` is reused. No drafts when `context` is empty
    /// or the drafts would not fit the session.
    ///
    /// # Errors
    /// A failed pass (the session then holds only what it held before that pass).
    pub async fn draft(
        &self,
        session: &mut GpuSession,
        context: &[u32],
        params: &SamplingParams,
        k: usize,
    ) -> Result<Vec<u32>, GpuModelError> {
        let Some(keep) = draft_prefix(session.tokens(), context, k, session.capacity()) else {
            return Ok(Vec::new());
        };
        session.truncate(keep);
        let mut feed = context[keep..].to_vec();
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let token = if params.is_greedy() {
                let ids = self.next_tokens(session, &feed, Logits::Last).await?;
                ids.last().copied().unwrap_or_default()
            } else {
                let position = (session.len() + feed.len()) as u64;
                let logits = self.forward(session, &feed, Logits::Last).await?;
                sample_token(&logits, params, position)
            };
            out.push(token);
            feed = vec![token];
        }
        Ok(out)
    }

    async fn run(
        &self,
        session: &mut GpuSession,
        tokens: &[u32],
        which: Logits,
        out: &mut Output<'_>,
    ) -> Result<(), GpuModelError> {
        let cfg = &self.config;
        if tokens.is_empty() {
            return Err(GpuModelError::EmptyInput);
        }
        let needed = session.len() + tokens.len();
        if needed > session.capacity() {
            return Err(GpuModelError::ContextOverflow {
                needed,
                limit: session.capacity(),
            });
        }
        if let Some(&id) = tokens.iter().find(|&&t| t as usize >= cfg.n_vocab) {
            return Err(GpuModelError::InvalidToken {
                id,
                vocab: cfg.n_vocab,
            });
        }
        let first = which.first(tokens.len());
        let before = session.len();
        for (c, chunk) in tokens.chunks(MAX_BATCH).enumerate() {
            let chunk_first = first.saturating_sub(c * MAX_BATCH).min(chunk.len());
            if let Err(e) = self.pass(session, chunk, chunk_first, out).await {
                session.truncate(before);
                return Err(e.into());
            }
        }
        Ok(())
    }
}

/// Where a pass's results go.
enum Output<'a> {
    Logits(&'a mut Vec<f32>),
    Ids(&'a mut Vec<u32>),
}

fn rope_pairs(style: RopeStyle) -> RopePairs {
    match style {
        RopeStyle::Norm => RopePairs::Adjacent,
        RopeStyle::Neox => RopePairs::Halves,
    }
}

fn gate_activation(act: FfnActivation) -> GateActivation {
    match act {
        FfnActivation::Silu => GateActivation::Silu,
        FfnActivation::Relu2 => GateActivation::Relu2,
    }
}
