//! Both halves of remote drafting over `/shard/verify/1`, as sans-IO state
//! machines: no sockets, no clocks, no threads. A host (the native scout,
//! the browser scout, the titan's swarm task) feeds them what happened
//! (a response arrived, a peer left, a draft finished, the time in
//! milliseconds it read from its own clock) and carries out what they ask
//! for (send this request, draft this unit), so every host behaves the same
//! and the protocol's rules are tested once, here.
//!
//! - [`scout::ScoutState`]: the scout's side. It opens every stream: a
//!   `PullWork` per titan, held by the titan until work comes; then the unit's
//!   `Drafts`, whose verdict usually carries the session's next unit. It keeps
//!   each session's tokens, so a titan sends only what the scout lacks.
//! - [`titan::ScoutsView`]: the titan's matching view of what each scout
//!   holds of each session, and which units are out with which scout.
//!
//! **Agreement.** After every unit, verdict and eviction the titan's view of
//! a session is either exactly the scout's tokens or something the scout can
//! tell it lacks: a unit whose context starts past the end of what the scout
//! holds is a *context gap*. The scout then drafts nothing and forgets the
//! session; an empty `Drafts` makes the titan forget its view too, so the
//! session's next unit carries its whole context and both sides agree again.
//! The paired test in this module drives both through verdicts, gaps and
//! evictions on either side and checks this after every step.

mod contexts;
pub mod scout;
pub mod titan;

use std::time::Duration;

use crate::sampling::SamplingParams;

/// One unit of drafting, as the titan's scheduler hands it out: the whole
/// context (the wire form, [`crate::wire::verify::Work`], carries only what
/// the scout lacks).
#[derive(Clone, Debug, PartialEq)]
pub struct WorkUnit {
    pub work: u64,
    pub session: u64,
    pub context: Vec<u32>,
    pub params: SamplingParams,
    pub k: usize,
    pub deadline: Duration,
}

/// Length of the common prefix of two token sequences.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// How many of a draft session's `cached` tokens a draft of `k` tokens after
/// `context` keeps: their common prefix, less the last context token, which is
/// fed again for its logits. `None` when there is nothing to draft from or the
/// context and drafts would not fit the session's `capacity` positions. The
/// CPU and GPU models draft the same way from here (`CpuModel::draft`,
/// `GpuModel::draft`): truncate to this, feed `context[keep..]`, then one
/// token at a time.
pub fn draft_prefix(cached: &[u32], context: &[u32], k: usize, capacity: usize) -> Option<usize> {
    if context.is_empty() || context.len() + k > capacity {
        return None;
    }
    Some(common_prefix(cached, context).min(context.len() - 1))
}

#[cfg(test)]
mod tests;
