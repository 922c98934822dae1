//! Where the model's passes run: the CPU engine ([`crate::engine`]) or the GPU model
//! (`kernels_wgsl::GpuModel`, on wgpu: Vulkan, Metal or DX12), and plain decoding on
//! either through one [`Engine`] interface.
//!
//! The GPU model reads the same memory map the CPU model loaded (no second copy of the
//! file in host memory) and takes its tokenizer and chat template from it.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use futures::executor::block_on;
use kernels_wgsl::{Gpu, GpuModel, GpuModelError, GpuOptions, GpuSession};
use shared_protocol::sampling::{SamplingParams, sample_token};

use crate::engine::{Logits, Model, Session};
use crate::generate::{Generation, GenerationOptions};
use crate::speculative::{FinishReason, SpecStats};

/// `--device`: which processor runs the model's passes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Device {
    /// The CPU kernels (AVX2/AVX-512/NEON).
    #[default]
    Cpu,
    /// A GPU through wgpu; an error if there is none.
    Gpu,
    /// A discrete GPU if there is one, else the CPU (said in the log).
    Auto,
}

/// KV-cache positions a GPU session holds unless the model's context is shorter: the
/// cache is allocated whole on the GPU (SmolLM2-135M: 189 MB at 4096, K and V of 30
/// layers × 192 f32 per position).
pub const GPU_SESSION_POSITIONS: usize = 4096;

/// The GPU model for `device`, uploaded from `model`'s file, or `None` for the CPU.
///
/// # Errors
/// `--device gpu` without a usable adapter, or a model the adapter cannot hold: one
/// line naming the cause. `--device auto` falls back to the CPU instead, with a log line.
pub fn open_gpu(device: Device, model: &Model) -> Result<Option<GpuModel>> {
    let upload = |gpu: Gpu| -> Result<GpuModel> {
        let started = Instant::now();
        let adapter = gpu.info().adapter.name.clone();
        let gpu_model = GpuModel::load(gpu, model.bytes())
            .with_context(|| format!("loading {} onto the GPU {adapter}", model.path.display()))?;
        tracing::info!(
            %adapter,
            secs = started.elapsed().as_secs_f32(),
            "model on the GPU"
        );
        Ok(gpu_model)
    };
    match device {
        Device::Cpu => Ok(None),
        Device::Gpu => {
            let gpu = block_on(Gpu::new(&GpuOptions::default())).context("--device gpu")?;
            upload(gpu).map(Some)
        }
        Device::Auto => {
            let options = GpuOptions {
                high_performance: true,
                ..GpuOptions::default()
            };
            match block_on(Gpu::new(&options)) {
                Ok(gpu) if gpu.info().is_discrete() => match upload(gpu) {
                    Ok(m) => Ok(Some(m)),
                    Err(e) => {
                        tracing::warn!("--device auto: {e:#}; running on the CPU");
                        Ok(None)
                    }
                },
                Ok(gpu) => {
                    tracing::info!(
                        adapter = %gpu.info().adapter.name,
                        "--device auto: no discrete GPU; running on the CPU"
                    );
                    Ok(None)
                }
                Err(e) => {
                    tracing::info!("--device auto: {e}; running on the CPU");
                    Ok(None)
                }
            }
        }
    }
}

/// What plain decoding needs of a model: sessions and forward passes.
pub trait Engine {
    type Session;

    fn new_session(&self) -> Result<Self::Session>;
    fn session_len(session: &Self::Session) -> usize;
    /// Positions a session may hold.
    fn capacity(&self) -> usize;
    fn truncate(session: &mut Self::Session, len: usize);
    /// The logits `which` asks for, `rows × n_vocab`.
    fn forward(
        &self,
        session: &mut Self::Session,
        tokens: &[u32],
        which: Logits,
    ) -> Result<Vec<f32>>;

    /// The token chosen after `tokens` (the last new position's), as
    /// [`sample_token`] chooses it.
    fn next_token(
        &self,
        session: &mut Self::Session,
        tokens: &[u32],
        options: &GenerationOptions,
    ) -> Result<u32> {
        let position = (Self::session_len(session) + tokens.len()) as u64;
        let logits = self.forward(session, tokens, Logits::Last)?;
        Ok(sample_token(&logits, &options.sampling, position))
    }

    /// A name for logs and stats.
    fn device_name(&self) -> String;
}

impl Engine for Model {
    type Session = Session;

    fn new_session(&self) -> Result<Session> {
        Ok(Model::new_session(self))
    }

    fn session_len(session: &Session) -> usize {
        session.len()
    }

    fn capacity(&self) -> usize {
        self.config.n_ctx
    }

    fn truncate(session: &mut Session, len: usize) {
        session.truncate(len);
    }

    fn forward(&self, session: &mut Session, tokens: &[u32], which: Logits) -> Result<Vec<f32>> {
        Ok(Model::forward(self, session, tokens, which)?)
    }

    fn device_name(&self) -> String {
        format!("cpu ({})", kernels_cpu::active_path())
    }
}

impl Engine for GpuModel {
    type Session = GpuSession;

    fn new_session(&self) -> Result<GpuSession> {
        Ok(GpuModel::new_session(self, self.capacity())?)
    }

    fn session_len(session: &GpuSession) -> usize {
        session.len()
    }

    fn capacity(&self) -> usize {
        self.config.n_ctx.min(GPU_SESSION_POSITIONS)
    }

    fn truncate(session: &mut GpuSession, len: usize) {
        session.truncate(len);
    }

    fn forward(&self, session: &mut GpuSession, tokens: &[u32], which: Logits) -> Result<Vec<f32>> {
        Ok(block_on(GpuModel::forward(self, session, tokens, which))?)
    }

    /// Greedy picks are made on the GPU ([`GpuModel::next_tokens`]): one id comes back,
    /// not the vocabulary's logits. Sampled picks read the logits and sample on the host.
    fn next_token(
        &self,
        session: &mut GpuSession,
        tokens: &[u32],
        options: &GenerationOptions,
    ) -> Result<u32> {
        if !options.sampling.is_greedy() {
            let position = (session.len() + tokens.len()) as u64;
            let logits = Engine::forward(self, session, tokens, Logits::Last)?;
            return Ok(sample_token(&logits, &options.sampling, position));
        }
        let ids = block_on(self.next_tokens(session, tokens, Logits::Last))?;
        ids.last()
            .copied()
            .context("the GPU pass returned no token")
    }

    fn device_name(&self) -> String {
        format!("gpu ({})", self.gpu().info().adapter.name)
    }
}

/// `k` draft tokens after `context` from the GPU model ([`GpuModel::draft`], which the
/// browser scout awaits), on this thread.
///
/// # Errors
/// A failed GPU pass (the session then holds only what it held before that pass).
pub fn draft_on_gpu(
    model: &GpuModel,
    session: &mut GpuSession,
    context: &[u32],
    params: &SamplingParams,
    k: usize,
) -> Result<Vec<u32>, GpuModelError> {
    block_on(model.draft(session, context, params, k))
}

/// Plain decoding (no drafts) of `prompt` on any engine, with the same stop rules as
/// [`crate::generate::generate`]: an end-of-generation token, `max_tokens`, or a full
/// context. `on_token` returning `false` cancels.
pub fn generate_plain<E: Engine>(
    engine: &E,
    model: &Model,
    prompt: &[u32],
    options: &GenerationOptions,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Generation> {
    if prompt.is_empty() {
        bail!("the prompt is empty");
    }
    let capacity = engine.capacity();
    if prompt.len() >= capacity {
        bail!(
            "the prompt is {} tokens long; this device's sessions hold {capacity} positions",
            prompt.len()
        );
    }
    let started = Instant::now();
    let mut session = engine.new_session()?;
    let mut token = engine.next_token(&mut session, prompt, options)?;
    let prefill_time = started.elapsed();
    let decode_started = Instant::now();
    let mut tokens = Vec::new();
    let mut passes = 0;
    let finish = loop {
        if model.tokenizer.is_end_of_generation(token) {
            break FinishReason::Stop;
        }
        tokens.push(token);
        if !on_token(token) {
            break FinishReason::Cancelled;
        }
        if tokens.len() >= options.max_tokens {
            break FinishReason::Length;
        }
        if E::session_len(&session) + 1 > capacity {
            break FinishReason::ContextFull;
        }
        token = engine.next_token(&mut session, &[token], options)?;
        passes += 1;
    };
    Ok(Generation {
        tokens,
        finish,
        prompt_computed: prompt.len(),
        prefill_time,
        decode_time: decode_started.elapsed(),
        stats: SpecStats {
            target_passes: passes,
            ..SpecStats::default()
        },
    })
}
