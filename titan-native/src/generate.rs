//! Turning prompts into completions: prompt feeding with prefix reuse,
//! sampling, stop conditions and timing.

use std::time::{Duration, Instant};

use shared_protocol::sampling::{SamplingParams, sample_token};

use crate::engine::{Logits, Model, ModelError, Session};

/// Prompts are fed in slices of this many tokens, bounding scratch memory
/// (a slice of 512 needs ~5 MB of activations for the default model).
pub const PREFILL_CHUNK: usize = 512;

#[derive(Clone, Debug)]
pub struct GenerationOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token was sampled.
    Stop,
    /// `max_tokens` were generated.
    Length,
    /// The context is full.
    ContextFull,
    /// The caller's callback asked to stop.
    Cancelled,
}

#[derive(Clone, Debug)]
pub struct Generation {
    /// Generated tokens, without the end-of-generation token.
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
    /// Prompt tokens actually computed (cached prefix excluded).
    pub prompt_computed: usize,
    pub prefill_time: Duration,
    /// Forward passes after the prompt, and their time.
    pub decode_passes: usize,
    pub decode_time: Duration,
}

/// Length of the common prefix of two token sequences.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// Makes the session hold exactly `prompt` and returns the logits of its last
/// position. Reuses whatever prefix the session already has cached.
pub fn feed_prompt(
    model: &Model,
    session: &mut Session,
    prompt: &[u32],
) -> Result<Vec<f32>, ModelError> {
    if prompt.is_empty() {
        return Err(ModelError::EmptyInput);
    }
    if prompt.len() > model.config.n_ctx {
        return Err(ModelError::ContextOverflow {
            needed: prompt.len(),
            limit: model.config.n_ctx,
        });
    }
    // Keep at least the last prompt token to recompute: its logits are needed.
    let keep = common_prefix(session.tokens(), prompt).min(prompt.len() - 1);
    session.truncate(keep);
    let rest = &prompt[keep..];
    let mut logits = Vec::new();
    let n_chunks = rest.len().div_ceil(PREFILL_CHUNK);
    for (i, chunk) in rest.chunks(PREFILL_CHUNK).enumerate() {
        let which = if i + 1 == n_chunks {
            Logits::Last
        } else {
            Logits::None
        };
        logits = model.forward(session, chunk, which)?;
    }
    Ok(logits)
}

/// Feeds `prompt` (reusing the session's cached prefix), then samples up to
/// `max_tokens`, calling `on_token` with each one; `on_token` returns false
/// to stop early.
pub fn generate(
    model: &Model,
    session: &mut Session,
    prompt: &[u32],
    options: &GenerationOptions,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Generation, ModelError> {
    let started = Instant::now();
    let cached = common_prefix(session.tokens(), prompt).min(prompt.len().saturating_sub(1));
    let mut logits = feed_prompt(model, session, prompt)?;
    let prefill_time = started.elapsed();

    let decode_started = Instant::now();
    let mut tokens = Vec::new();
    let mut decode_passes = 0;
    let finish = loop {
        if tokens.len() >= options.max_tokens {
            break FinishReason::Length;
        }
        let position = session.len() as u64;
        let token = sample_token(&logits, &options.sampling, position);
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
        if session.len() >= model.config.n_ctx {
            break FinishReason::ContextFull;
        }
        logits = model.forward(session, &[token], Logits::Last)?;
        decode_passes += 1;
    };
    Ok(Generation {
        tokens,
        finish,
        prompt_computed: prompt.len() - cached,
        prefill_time,
        decode_passes,
        decode_time: decode_started.elapsed(),
    })
}
