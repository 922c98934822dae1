//! Turning prompts into completions: prompt feeding with prefix reuse, then
//! speculative decoding ([`crate::speculative`]; plain decoding is the case
//! without a drafter), stop conditions and timing.

use std::time::{Duration, Instant};

use shared_protocol::sampling::SamplingParams;

use crate::engine::{Logits, Model, ModelError, PassBuffers, PassInput, Session};
use crate::speculative::{Drafter, FinishReason, Sequence, SpecStats, step};

pub use kernels_cpu::model::PREFILL_CHUNK;

#[derive(Clone, Debug)]
pub struct GenerationOptions {
    pub max_tokens: usize,
    pub sampling: SamplingParams,
}

#[derive(Clone, Debug)]
pub struct Generation {
    /// Generated tokens, without the end-of-generation token.
    pub tokens: Vec<u32>,
    pub finish: FinishReason,
    /// Prompt tokens actually computed (cached prefix excluded).
    pub prompt_computed: usize,
    pub prefill_time: Duration,
    pub decode_time: Duration,
    /// Drafting and verification counters; `target_passes` counts decode
    /// passes of the target model.
    pub stats: SpecStats,
}

pub use shared_protocol::drafting::common_prefix;

/// Makes the session hold exactly `prompt` and returns the logits of its last
/// position. Reuses whatever prefix the session already has cached.
pub fn feed_prompt(
    model: &Model,
    session: &mut Session,
    prompt: &[u32],
) -> Result<Vec<f32>, ModelError> {
    let mut buffers = model.new_pass_buffers();
    let mut logits = feed_prompts(model, &mut buffers, &mut [(session, prompt)])?;
    Ok(logits.pop().unwrap_or_default())
}

/// Feeds several prompts at once, each after its session's cached prefix,
/// sharing every pass over the weights; returns each prompt's last logits.
pub fn feed_prompts(
    model: &Model,
    buffers: &mut PassBuffers,
    jobs: &mut [(&mut Session, &[u32])],
) -> Result<Vec<Vec<f32>>, ModelError> {
    let mut remaining = Vec::with_capacity(jobs.len());
    for (session, prompt) in jobs.iter_mut() {
        if prompt.is_empty() {
            return Err(ModelError::EmptyInput);
        }
        if prompt.len() > model.config.n_ctx {
            return Err(ModelError::ContextOverflow {
                needed: prompt.len(),
                limit: model.config.n_ctx,
            });
        }
        let keep = common_prefix(session.tokens(), prompt).min(prompt.len() - 1);
        session.truncate(keep);
        remaining.push(&prompt[keep..]);
    }
    let mut logits = vec![Vec::new(); jobs.len()];
    while remaining.iter().any(|r| !r.is_empty()) {
        let mut which = Vec::new();
        let mut inputs = Vec::new();
        for (i, ((session, _), rest)) in jobs.iter_mut().zip(remaining.iter_mut()).enumerate() {
            if rest.is_empty() {
                continue;
            }
            let (chunk, tail) = rest.split_at(rest.len().min(PREFILL_CHUNK));
            *rest = tail;
            which.push(i);
            inputs.push(PassInput {
                session,
                tokens: chunk,
                logits: if tail.is_empty() {
                    Logits::Last
                } else {
                    Logits::None
                },
            });
        }
        for (i, out) in which
            .into_iter()
            .zip(model.forward_batch(buffers, &mut inputs)?)
        {
            if !out.is_empty() {
                logits[i] = out;
            }
        }
    }
    Ok(logits)
}

/// Feeds `prompt` into `session` (reusing its cached prefix), then generates
/// up to `max_tokens` with `drafter` proposing tokens, calling `on_token`
/// with each accepted one; `on_token` returns false to stop early.
/// `draft_session` carries the draft model's cache between calls.
pub fn generate(
    model: &Model,
    drafter: &mut Drafter<'_>,
    session: &mut Session,
    draft_session: &mut Option<Session>,
    prompt: &[u32],
    options: &GenerationOptions,
    mut on_token: impl FnMut(u32) -> bool,
) -> Result<Generation, ModelError> {
    let started = Instant::now();
    let cached = common_prefix(session.tokens(), prompt).min(prompt.len().saturating_sub(1));
    let logits = feed_prompt(model, session, prompt)?;
    let prefill_time = started.elapsed();

    let decode_started = Instant::now();
    let target = std::mem::replace(session, model.new_session());
    let mut seq = Sequence::start(
        model,
        target,
        draft_session.take(),
        &logits,
        options.sampling,
        options.max_tokens,
    );
    let mut buffers = model.new_pass_buffers();
    let mut emitted = 0;
    let result = loop {
        while emitted < seq.generated.len() {
            let token = seq.generated[emitted];
            emitted += 1;
            if !on_token(token) {
                seq.finish(FinishReason::Cancelled);
                break;
            }
        }
        if seq.finished.is_some() {
            break Ok(());
        }
        if let Err(e) = step(model, drafter, &mut buffers, &mut [&mut seq]) {
            break Err(e);
        }
    };
    *session = seq.target;
    *draft_session = seq.draft;
    result?;
    Ok(Generation {
        tokens: seq.generated[..emitted].to_vec(),
        finish: seq.finished.unwrap_or(FinishReason::Stop),
        prompt_computed: prompt.len() - cached,
        prefill_time,
        decode_time: decode_started.elapsed(),
        stats: seq.stats,
    })
}
