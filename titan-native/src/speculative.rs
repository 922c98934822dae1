//! Speculative decoding on the titan: sequences that draft, verify in one
//! batched target pass, and roll back what the target rejects.
//!
//! Plain decoding is the special case of zero drafts, so every generation in
//! the titan goes through [`step`]: one target pass per step for every
//! sequence in the batch, each contributing its pending token plus its
//! drafts. Verification uses [`verify_drafts`] with the request's shared
//! randomness, so the output is exactly what plain decoding with the target
//! alone produces, whatever the drafter proposes.

use rayon::prelude::*;
use shared_protocol::sampling::{SamplingParams, sample_token};
use shared_protocol::speculative::{Verdict, VerifyError, verify_drafts};

use kernels_wgsl::{GpuModel, GpuSession};

use crate::engine::{Logits, Model, ModelError, PassBuffers, PassInput, Session};

/// Bounds of the adaptive draft length.
pub const MIN_DRAFT: usize = 2;
pub const MAX_DRAFT: usize = 16;

/// Why a sequence stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FinishReason {
    /// An end-of-generation token was sampled (or a stop condition matched).
    Stop,
    /// The token budget is spent.
    Length,
    /// The context is full.
    ContextFull,
    /// The consumer went away.
    Cancelled,
}

/// Counters of one sequence's speculation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SpecStats {
    /// Draft tokens proposed.
    pub drafted: usize,
    /// Draft tokens the target agreed with.
    pub accepted: usize,
    /// Target passes this sequence took part in (prefill excluded).
    pub target_passes: usize,
}

/// Where drafts come from.
pub enum Drafter<'m> {
    /// No drafts: plain decoding.
    None,
    /// A draft model on this machine, sampling with the request's shared
    /// randomness so that it proposes what the target is likely to pick.
    Model {
        model: &'m Model,
        buffers: Box<PassBuffers>,
    },
    /// A draft model on a GPU (`kernels_wgsl::GpuModel`), sampling the same way; each
    /// sequence keeps its draft cache on the GPU ([`Sequence::gpu_draft`]).
    Gpu { model: &'m GpuModel },
    /// Uniformly random tokens: a deliberately useless drafter, for tests
    /// that losslessness does not depend on draft quality.
    Random { seed: u64, vocab: u32 },
}

impl<'m> Drafter<'m> {
    pub fn model(model: &'m Model) -> Self {
        Drafter::Model {
            model,
            buffers: Box::new(model.new_pass_buffers()),
        }
    }

    /// A draft model's drafter if there is one, else plain decoding.
    pub fn from_optional(model: Option<&'m Model>) -> Self {
        model.map_or(Drafter::None, Drafter::model)
    }
}

/// One generating sequence.
#[derive(Debug)]
pub struct Sequence {
    pub target: Session,
    /// The draft model's cache of the same tokens, when a draft model drafts.
    pub draft: Option<Session>,
    /// The same on the GPU, when a GPU draft model drafts.
    pub gpu_draft: Option<GpuSession>,
    pub params: SamplingParams,
    pub max_tokens: usize,
    /// Sampled but not yet run through the target (its KV is not cached).
    pending: Option<u32>,
    /// Generated tokens, in order (the end-of-generation token excluded).
    pub generated: Vec<u32>,
    /// Current draft length.
    pub k: usize,
    pub stats: SpecStats,
    pub finished: Option<FinishReason>,
    /// Drafts proposed elsewhere (a remote scout) for the next step, used
    /// instead of the drafter's. Never trusted: tokens outside the
    /// vocabulary cut the draft there, and the target verifies the rest.
    pub supplied: Option<Vec<u32>>,
}

impl Sequence {
    /// A sequence whose prompt has been fed: `logits` are the target's for
    /// the last prompt position.
    pub fn start(
        model: &Model,
        target: Session,
        draft: Option<Session>,
        logits: &[f32],
        params: SamplingParams,
        max_tokens: usize,
    ) -> Self {
        let mut seq = Sequence {
            target,
            draft,
            gpu_draft: None,
            params,
            max_tokens,
            pending: None,
            generated: Vec::new(),
            k: 4,
            stats: SpecStats::default(),
            finished: None,
            supplied: None,
        };
        let position = seq.target.len() as u64;
        seq.accept_token(model, sample_token(logits, &params, position));
        seq
    }

    /// Records a token the target chose; returns whether it became part of
    /// the output (an end-of-generation token does not).
    fn accept_token(&mut self, model: &Model, token: u32) -> bool {
        if self.finished.is_some() {
            return false;
        }
        if model.tokenizer.is_end_of_generation(token) {
            self.finished = Some(FinishReason::Stop);
            return false;
        }
        self.generated.push(token);
        self.pending = Some(token);
        if self.generated.len() >= self.max_tokens {
            self.finished = Some(FinishReason::Length);
        } else if self.target.len() + 1 > model.config.n_ctx {
            // The pending token would not fit in the next pass.
            self.finished = Some(FinishReason::ContextFull);
        }
        true
    }

    /// Stops the sequence (e.g. a stop string matched or the client left).
    pub fn finish(&mut self, reason: FinishReason) {
        self.finished.get_or_insert(reason);
    }

    /// The tokens drafts follow: everything the target has cached plus the
    /// pending token. Drafts are sampled at positions `context().len()`,
    /// `context().len() + 1`, ...
    pub fn context(&self) -> Vec<u32> {
        let mut c = self.target.tokens().to_vec();
        c.extend(self.pending);
        c
    }

    /// Whether the next step would verify drafts for this sequence.
    pub fn wants_drafts(&self, n_ctx: usize) -> bool {
        self.is_active() && self.draft_budget(n_ctx) > 0
    }

    /// Draft tokens this step may propose: bounded by the tokens still
    /// wanted and by the context.
    pub fn draft_budget(&self, n_ctx: usize) -> usize {
        // A fully accepted draft yields its tokens plus the target's own.
        let wanted = self
            .max_tokens
            .saturating_sub(self.generated.len())
            .saturating_sub(1);
        // The pass holds the pending token and the drafts.
        let room = n_ctx.saturating_sub(self.target.len() + 1);
        self.k.min(wanted).min(room)
    }

    fn is_active(&self) -> bool {
        self.finished.is_none() && self.pending.is_some()
    }

    /// Adapts the draft length to the last verdict: grow after a fully
    /// accepted draft, shrink to just past the accepted prefix otherwise.
    fn adapt(&mut self, proposed: usize, accepted: usize) {
        if proposed == 0 {
            return;
        }
        self.k = if accepted == proposed {
            (self.k + 2).min(MAX_DRAFT)
        } else {
            (accepted + 1).clamp(MIN_DRAFT, MAX_DRAFT)
        };
    }
}

/// What one step did for one sequence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StepOutcome {
    /// Tokens the sequence gained (accepted drafts, then the target's own).
    pub tokens: Vec<u32>,
    /// Drafts proposed and how many of them, from the first, were accepted.
    pub drafted: usize,
    pub accepted: usize,
    /// The target's own token after the accepted drafts (it is not in
    /// `tokens` when it ended the sequence).
    pub next: Option<u32>,
}

/// One decoding step for every unfinished sequence: draft, one batched
/// target pass, verify, roll back. Returns, per sequence, what it gained
/// (empty for sequences that were already finished).
pub fn step(
    target: &Model,
    drafter: &mut Drafter<'_>,
    buffers: &mut PassBuffers,
    seqs: &mut [&mut Sequence],
) -> Result<Vec<StepOutcome>, ModelError> {
    let n_ctx = target.config.n_ctx;
    let budgets: Vec<usize> = seqs
        .iter()
        .map(|s| {
            if s.is_active() {
                s.draft_budget(n_ctx)
            } else {
                0
            }
        })
        .collect();
    let mut drafts: Vec<Vec<u32>> = vec![Vec::new(); seqs.len()];
    // Sequences with supplied drafts skip the drafter.
    let drafter_budgets: Vec<usize> = seqs
        .iter()
        .zip(&budgets)
        .map(|(s, &b)| if s.supplied.is_some() { 0 } else { b })
        .collect();
    propose(drafter, seqs, &drafter_budgets, &mut drafts)?;
    let vocab = target.config.n_vocab;
    for ((seq, &budget), out) in seqs.iter_mut().zip(&budgets).zip(drafts.iter_mut()) {
        if let Some(mut supplied) = seq.supplied.take() {
            let valid = supplied
                .iter()
                .take_while(|&&t| (t as usize) < vocab)
                .count();
            supplied.truncate(valid.min(budget));
            *out = supplied;
        }
    }

    let pass_tokens: Vec<Vec<u32>> = seqs
        .iter()
        .zip(&drafts)
        .map(|(s, d)| s.pending.into_iter().chain(d.iter().copied()).collect())
        .collect();
    let before: Vec<usize> = seqs.iter().map(|s| s.target.len()).collect();
    let mut inputs: Vec<PassInput<'_, '_>> = seqs
        .iter_mut()
        .zip(&pass_tokens)
        .filter(|(s, _)| s.is_active())
        .map(|(s, tokens)| PassInput {
            session: &mut s.target,
            tokens,
            logits: Logits::All,
        })
        .collect();
    let mut logits = target.forward_batch(buffers, &mut inputs)?.into_iter();
    drop(inputs);

    // Verdicts of all sequences in parallel: sampling scans the vocabulary.
    let work: Vec<(usize, Vec<f32>, SamplingParams)> = seqs
        .iter()
        .enumerate()
        .filter(|(_, s)| s.is_active())
        .map(|(i, s)| (i, logits.next().unwrap_or_default(), s.params))
        .collect();
    let verdicts: Vec<(usize, Result<Verdict, VerifyError>)> = target.install(|| {
        work.par_iter()
            .map(|(i, rows, params)| {
                (
                    *i,
                    verify_drafts(rows, vocab, &drafts[*i], params, before[*i] as u64 + 1),
                )
            })
            .collect()
    });
    let mut outcomes = vec![StepOutcome::default(); seqs.len()];
    for (i, verdict) in verdicts {
        let seq = &mut *seqs[i];
        let d = &drafts[i];
        let verdict = verdict.map_err(|e| ModelError::BadLogits {
            what: "verify pass logits".into(),
            reason: e.to_string(),
        })?;
        seq.stats.drafted += d.len();
        seq.stats.accepted += verdict.accepted;
        seq.stats.target_passes += 1;
        let outcome = &mut outcomes[i];
        outcome.drafted = d.len();
        outcome.accepted = verdict.accepted;
        outcome.next = Some(verdict.next);
        seq.adapt(d.len(), verdict.accepted);
        // Keep the pending token and the accepted drafts; roll back the rest.
        seq.target.truncate(before[i] + 1 + verdict.accepted);
        seq.pending = None;
        for &t in d[..verdict.accepted].iter().chain([&verdict.next]) {
            if seq.finished.is_some() {
                break;
            }
            if seq.accept_token(target, t) {
                outcome.tokens.push(t);
            }
        }
        if seq.finished.is_some() {
            // Drafts accepted past the end are not part of the sequence.
            let emitted_drafts = outcome.tokens.len().min(verdict.accepted);
            seq.target.truncate(before[i] + 1 + emitted_drafts);
        }
    }
    Ok(outcomes)
}

/// Fills `drafts[i]` with up to `budgets[i]` tokens.
fn propose(
    drafter: &mut Drafter<'_>,
    seqs: &mut [&mut Sequence],
    budgets: &[usize],
    drafts: &mut [Vec<u32>],
) -> Result<(), ModelError> {
    match drafter {
        Drafter::None => Ok(()),
        Drafter::Random { seed, vocab } => {
            for ((seq, &budget), out) in seqs.iter().zip(budgets).zip(drafts.iter_mut()) {
                let stream = *seed ^ seq.params.seed;
                let base = seq.target.len() as u64;
                *out = (0..budget as u64)
                    .map(|j| {
                        let u = shared_protocol::sampling::uniform(stream, base, j);
                        (u * f64::from(*vocab)) as u32
                    })
                    .collect();
            }
            Ok(())
        }
        Drafter::Model { model, buffers } => {
            draft_with_model(model, buffers, seqs, budgets, drafts)
        }
        Drafter::Gpu { model } => draft_on_gpu(model, seqs, budgets, drafts),
    }
}

/// Drafts with a GPU draft model, one sequence after another, each from its own GPU
/// draft cache ([`crate::device::draft_on_gpu`]). A context past the GPU session's
/// capacity gets no drafts: the target decodes alone.
fn draft_on_gpu(
    model: &GpuModel,
    seqs: &mut [&mut Sequence],
    budgets: &[usize],
    drafts: &mut [Vec<u32>],
) -> Result<(), ModelError> {
    let capacity = crate::device::Engine::capacity(model);
    for ((seq, &budget), out) in seqs.iter_mut().zip(budgets).zip(drafts.iter_mut()) {
        if budget == 0 {
            continue;
        }
        let context = seq.context();
        let session = match &mut seq.gpu_draft {
            Some(s) => s,
            None => seq.gpu_draft.insert(model.new_session(capacity)?),
        };
        *out = crate::device::draft_on_gpu(model, session, &context, &seq.params, budget)?;
    }
    Ok(())
}

/// Drafts with a draft model in lockstep across sequences: first brings each
/// draft cache up to the target's tokens plus the pending one, then samples
/// one token per sequence per pass (with the request's shared randomness, at
/// the positions the target will verify) until every budget is met.
fn draft_with_model(
    model: &Model,
    buffers: &mut PassBuffers,
    seqs: &mut [&mut Sequence],
    budgets: &[usize],
    drafts: &mut [Vec<u32>],
) -> Result<(), ModelError> {
    let mut feed: Vec<Vec<u32>> = vec![Vec::new(); seqs.len()];
    for ((seq, &budget), feed) in seqs.iter_mut().zip(budgets).zip(feed.iter_mut()) {
        if budget == 0 {
            continue;
        }
        let mut context = seq.target.tokens().to_vec();
        context.extend(seq.pending);
        let draft = seq.draft.get_or_insert_with(|| model.new_session());
        let keep = crate::generate::common_prefix(draft.tokens(), &context).min(context.len() - 1);
        draft.truncate(keep);
        *feed = context[keep..].to_vec();
    }
    while feed.iter().any(|f| !f.is_empty()) {
        let mut positions = Vec::new();
        let mut inputs: Vec<PassInput<'_, '_>> = Vec::new();
        for (seq, tokens) in seqs.iter_mut().zip(&feed) {
            if tokens.is_empty() {
                continue;
            }
            let session = seq.draft.get_or_insert_with(|| model.new_session());
            positions.push((session.len() + tokens.len()) as u64);
            inputs.push(PassInput {
                session,
                tokens,
                logits: Logits::Last,
            });
        }
        let logits = model.forward_batch(buffers, &mut inputs)?;
        drop(inputs);
        let mut rows = logits.iter().zip(positions);
        for (i, seq) in seqs.iter().enumerate() {
            if feed[i].is_empty() {
                continue;
            }
            let Some((row, position)) = rows.next() else {
                break;
            };
            let token = sample_token(row, &seq.params, position);
            drafts[i].push(token);
            feed[i] = if drafts[i].len() < budgets[i] {
                vec![token]
            } else {
                Vec::new()
            };
        }
    }
    Ok(())
}
