//! The titan's half of `/shard/verify/1`: what each scout holds of each
//! session (so a unit carries only what the scout lacks), and which units
//! are out with which scout (so drafts are taken only from the scout that
//! was given the unit, for the position it was given).

use std::collections::HashMap;
use std::hash::Hash;

use super::contexts::Contexts;
use super::{WorkUnit, common_prefix};
use crate::wire::verify::{Drafts, MAX_DRAFT_TOKENS, Work};

/// A unit out with a scout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment<P> {
    pub peer: P,
    pub session: u64,
    pub position: u64,
}

/// Drafts for a unit that is not out with the sender.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("work {work} of session {session} is not in flight for you")]
pub struct NotInFlight {
    pub work: u64,
    pub session: u64,
}

/// The titan's view of its scouts.
#[derive(Debug)]
pub struct ScoutsView<P> {
    known: Contexts<(P, u64)>,
    assigned: HashMap<u64, Assignment<P>>,
}

impl<P: Clone + Eq + Hash> ScoutsView<P> {
    /// A view that tracks at most `max_known` (scout, session) contexts;
    /// a forgotten one costs only a unit with the whole context.
    pub fn new(max_known: usize) -> Self {
        Self {
            known: Contexts::new(max_known),
            assigned: HashMap::new(),
        }
    }

    /// What the titan believes `peer` holds of `session`.
    pub fn known(&self, peer: &P, session: u64) -> Option<&[u32]> {
        self.known.get(&(peer.clone(), session))
    }

    pub fn assignment(&self, work: u64) -> Option<&Assignment<P>> {
        self.assigned.get(&work)
    }

    /// The wire form of `unit` for `peer` (only the context it lacks), and
    /// the unit recorded as out with it.
    pub fn work_for(&mut self, peer: P, unit: &WorkUnit) -> Work {
        let key = (peer.clone(), unit.session);
        let start = self
            .known
            .get(&key)
            .map_or(0, |k| common_prefix(k, &unit.context));
        *self.known.entry(key) = unit.context.clone();
        let position = unit.context.len() as u64;
        self.assigned.insert(
            unit.work,
            Assignment {
                peer,
                session: unit.session,
                position,
            },
        );
        Work {
            work: unit.work,
            session: unit.session,
            position,
            context_start: start as u64,
            context: unit.context[start..].to_vec(),
            sampling: unit.params,
            k: u8::try_from(unit.k.min(MAX_DRAFT_TOKENS)).unwrap_or(u8::MAX),
            deadline_ms: u32::try_from(unit.deadline.as_millis()).unwrap_or(u32::MAX),
        }
    }

    /// Takes drafts from `peer` for a unit out with it. No drafts means the
    /// scout could not draft from what it holds (a context gap or a failed
    /// engine): the titan forgets its view, so the next unit carries the
    /// whole context.
    pub fn take_drafts(&mut self, peer: &P, drafts: &Drafts) -> Result<(), NotInFlight> {
        let matches = self.assigned.get(&drafts.work).is_some_and(|a| {
            a.peer == *peer && a.session == drafts.session && a.position == drafts.position
        });
        if !matches {
            return Err(NotInFlight {
                work: drafts.work,
                session: drafts.session,
            });
        }
        self.assigned.remove(&drafts.work);
        if drafts.tokens.is_empty() {
            self.known.remove(&(peer.clone(), drafts.session));
        }
        Ok(())
    }

    /// Records the verdict sent to `peer` on `drafts` of `session`: the scout
    /// keeps the accepted drafts and the target's next token, or drops the
    /// session when it is done.
    pub fn verdict(
        &mut self,
        peer: &P,
        session: u64,
        drafts: &[u32],
        accepted: usize,
        next: u32,
        done: bool,
    ) {
        let key = (peer.clone(), session);
        if done {
            self.known.remove(&key);
        } else if let Some(k) = self.known.get_mut(&key) {
            k.extend_from_slice(&drafts[..accepted.min(drafts.len())]);
            k.push(next);
        }
    }

    /// The unit is no longer out (taken back, or it never reached the scout).
    pub fn unassign(&mut self, work: u64) -> Option<Assignment<P>> {
        self.assigned.remove(&work)
    }

    /// Forgets everything about `peer`; returns the units that were out
    /// with it.
    pub fn peer_gone(&mut self, peer: &P) -> Vec<u64> {
        self.known.retain(|(p, _)| p != peer);
        let gone: Vec<u64> = self
            .assigned
            .iter()
            .filter(|(_, a)| a.peer == *peer)
            .map(|(w, _)| *w)
            .collect();
        for w in &gone {
            self.assigned.remove(w);
        }
        gone
    }
}
