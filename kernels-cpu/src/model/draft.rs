//! Drafting: a scout's `k` tokens after a context, as the GPU model drafts them
//! (`kernels_wgsl::GpuModel::draft`), so a scout gives the same drafts on either.

use shared_protocol::drafting::draft_prefix;
use shared_protocol::model::Logits;
use shared_protocol::sampling::{SamplingParams, sample_token};

use super::{CpuModel, CpuModelError, PREFILL_CHUNK, Session};

impl CpuModel {
    /// `k` tokens after `context`, each sampled with `params` at its own position (the
    /// request's shared randomness, so they are what the titan would pick). The
    /// session's cached prefix of `context` is reused, and the rest is fed in slices of
    /// at most [`PREFILL_CHUNK`] tokens. No drafts when `context` is empty or the
    /// drafts would not fit the model's context.
    ///
    /// # Errors
    /// A failed pass (bad token ids); the session keeps what it held before that pass.
    pub fn draft(
        &self,
        session: &mut Session,
        context: &[u32],
        params: &SamplingParams,
        k: usize,
    ) -> Result<Vec<u32>, CpuModelError> {
        let Some(keep) = draft_prefix(session.tokens(), context, k, self.config.n_ctx) else {
            return Ok(Vec::new());
        };
        session.truncate(keep);
        let mut rest = &context[keep..];
        while rest.len() > PREFILL_CHUNK {
            let (chunk, tail) = rest.split_at(PREFILL_CHUNK);
            self.forward(session, chunk, Logits::None)?;
            rest = tail;
        }
        let mut feed = rest.to_vec();
        let mut out = Vec::with_capacity(k);
        while out.len() < k {
            let position = (session.len() + feed.len()) as u64;
            let logits = self.forward(session, &feed, Logits::Last)?;
            let token = sample_token(&logits, params, position);
            out.push(token);
            feed = vec![token];
        }
        Ok(out)
    }
}
