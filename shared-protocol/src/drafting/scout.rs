//! The scout's half of `/shard/verify/1`.
//!
//! Per titan at most one request is in flight, so a response or a failure
//! from a titan always answers the one request the state holds for it; the
//! host needs no request ids. Drafting runs one unit at a time: the state
//! hands out a [`DraftJob`] and waits for its [`Drafted`] before the next.
//!
//! Time is whatever monotonic milliseconds the host passes in (an `Instant`
//! natively, `performance.now()` in a browser).

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;

use super::contexts::Contexts;
use crate::sampling::SamplingParams;
use crate::wire::verify::{Drafts, Request, Response, VerdictMsg, Work};

/// How a scout behaves.
#[derive(Clone, Debug)]
pub struct ScoutConfig {
    /// The model id titans serve (what `PullWork` asks for).
    pub model: String,
    /// Most tokens per unit this scout drafts.
    pub max_k: u8,
    /// Sessions whose tokens it keeps (least recently used go first).
    pub max_sessions: usize,
}

/// Pull again this long after a failed request.
pub const RETRY_AFTER_FAILURE_MS: u64 = 500;
/// Pull again this long after a titan refused a request.
pub const RETRY_AFTER_REJECTION_MS: u64 = 200;

/// What the host must do next.
#[derive(Clone, Debug, PartialEq)]
pub enum ScoutAction<T> {
    /// Open a stream to `titan` with this request.
    Send { titan: T, request: Request },
    /// Draft this unit and report it with [`ScoutState::drafted`].
    Draft(DraftJob<T>),
}

/// A unit to draft: `k` tokens after `context` with the unit's sampling
/// parameters (shared randomness at positions `context.len()..`).
#[derive(Clone, Debug, PartialEq)]
pub struct DraftJob<T> {
    pub titan: T,
    pub work: u64,
    pub session: u64,
    pub context: Vec<u32>,
    pub params: SamplingParams,
    pub k: usize,
}

impl<T: Clone> DraftJob<T> {
    /// The job's answer with these drafts.
    pub fn answer(&self, tokens: Vec<u32>) -> Drafted<T> {
        Drafted {
            titan: self.titan.clone(),
            work: self.work,
            session: self.session,
            position: self.context.len() as u64,
            tokens,
        }
    }
}

/// A finished [`DraftJob`].
#[derive(Clone, Debug, PartialEq)]
pub struct Drafted<T> {
    pub titan: T,
    pub work: u64,
    pub session: u64,
    pub position: u64,
    pub tokens: Vec<u32>,
}

/// Counters of a scout's work.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScoutCounts {
    /// Units drafted.
    pub units: u64,
    /// Tokens drafted and tokens the titans accepted.
    pub drafted: u64,
    pub accepted: u64,
    /// Units answered with no drafts because the scout lacked their context.
    pub context_gaps: u64,
}

/// The request a titan is answering.
#[derive(Debug)]
enum InFlight {
    Pull,
    Drafts {
        session: u64,
        position: u64,
        drafts: Vec<u32>,
    },
}

#[derive(Debug, Default)]
struct TitanLink {
    in_flight: Option<InFlight>,
    /// A unit of this titan's is queued or being drafted.
    drafting: bool,
    /// Pull at this time when idle.
    next_pull_ms: Option<u64>,
}

/// The scout's state: the titans it drafts for, what it holds of each
/// session, the units waiting to be drafted.
#[derive(Debug)]
pub struct ScoutState<T> {
    config: ScoutConfig,
    titans: HashMap<T, TitanLink>,
    sessions: Contexts<(T, u64)>,
    queue: VecDeque<(T, Work)>,
    /// A [`DraftJob`] is out with the host.
    drafting: bool,
    actions: VecDeque<ScoutAction<T>>,
    counts: ScoutCounts,
}

impl<T: Clone + Eq + Hash> ScoutState<T> {
    pub fn new(config: ScoutConfig) -> Self {
        Self {
            titans: HashMap::new(),
            sessions: Contexts::new(config.max_sessions),
            queue: VecDeque::new(),
            drafting: false,
            actions: VecDeque::new(),
            counts: ScoutCounts::default(),
            config,
        }
    }

    pub fn counts(&self) -> ScoutCounts {
        self.counts
    }

    /// Whether any titan is known.
    pub fn has_titans(&self) -> bool {
        !self.titans.is_empty()
    }

    pub fn is_titan(&self, titan: &T) -> bool {
        self.titans.contains_key(titan)
    }

    /// The tokens the scout holds of a session, if any.
    pub fn session_tokens(&self, titan: &T, session: u64) -> Option<&[u32]> {
        self.sessions.get(&(titan.clone(), session))
    }

    /// The next thing for the host to do.
    pub fn next_action(&mut self) -> Option<ScoutAction<T>> {
        self.actions.pop_front()
    }

    /// A titan that speaks `/shard/verify/1` was found; pull from it now.
    /// Returns false if it was known already.
    pub fn titan_found(&mut self, titan: T, now_ms: u64) -> bool {
        if self.titans.contains_key(&titan) {
            return false;
        }
        self.titans.insert(
            titan,
            TitanLink {
                next_pull_ms: Some(now_ms),
                ..TitanLink::default()
            },
        );
        self.poll(now_ms);
        true
    }

    /// The titan is gone: forget its sessions and its queued units.
    pub fn titan_lost(&mut self, titan: &T) -> bool {
        self.sessions.retain(|(t, _)| t != titan);
        self.queue.retain(|(t, _)| t != titan);
        self.titans.remove(titan).is_some()
    }

    /// The titan announced waiting work: pull now if idle.
    pub fn work_offered(&mut self, titan: &T, now_ms: u64) {
        if let Some(link) = self.titans.get_mut(titan)
            && link.in_flight.is_none()
            && !link.drafting
        {
            link.next_pull_ms = Some(now_ms);
            self.poll(now_ms);
        }
    }

    /// Sends the pulls that are due. Call it on a timer (every ~50 ms).
    pub fn poll(&mut self, now_ms: u64) {
        let due: Vec<T> = self
            .titans
            .iter()
            .filter(|(_, l)| {
                l.in_flight.is_none()
                    && !l.drafting
                    && l.next_pull_ms.is_some_and(|at| at <= now_ms)
            })
            .map(|(t, _)| t.clone())
            .collect();
        for titan in due {
            let request = Request::PullWork {
                model: self.config.model.clone(),
                max_k: self.config.max_k,
            };
            self.send(titan, request, InFlight::Pull);
        }
    }

    /// The earliest time a pull is due, for hosts that sleep until then.
    pub fn next_wakeup_ms(&self) -> Option<u64> {
        self.titans
            .values()
            .filter(|l| l.in_flight.is_none() && !l.drafting)
            .filter_map(|l| l.next_pull_ms)
            .min()
    }

    /// The titan's request failed (stream error, timeout, connection lost).
    pub fn request_failed(&mut self, titan: &T, now_ms: u64) {
        if let Some(link) = self.titans.get_mut(titan) {
            link.in_flight = None;
            link.next_pull_ms = Some(now_ms + RETRY_AFTER_FAILURE_MS);
        }
    }

    /// The titan answered its request in flight.
    pub fn response(&mut self, titan: &T, response: Response, now_ms: u64) {
        let Some(link) = self.titans.get_mut(titan) else {
            return;
        };
        let Some(in_flight) = link.in_flight.take() else {
            return;
        };
        match response {
            Response::Work(work) => self.take_work(titan.clone(), work),
            Response::NoWork { retry_after_ms } => {
                link.next_pull_ms = Some(now_ms + u64::from(retry_after_ms));
            }
            Response::Verdict(verdict) => {
                if let InFlight::Drafts {
                    session,
                    position,
                    drafts,
                } = in_flight
                {
                    self.apply_verdict(titan, session, position, &drafts, &verdict);
                }
                match verdict.next {
                    Some(work) => self.take_work(titan.clone(), work),
                    None => self.idle(titan, now_ms),
                }
            }
            Response::Rejected { .. } => {
                link.next_pull_ms = Some(now_ms + RETRY_AFTER_REJECTION_MS);
            }
        }
        self.poll(now_ms);
    }

    /// The host finished a [`DraftJob`].
    pub fn drafted(&mut self, done: Drafted<T>) {
        self.drafting = false;
        self.counts.units += 1;
        self.counts.drafted += done.tokens.len() as u64;
        if let Some(link) = self.titans.get_mut(&done.titan) {
            link.drafting = false;
            let drafts = Drafts {
                work: done.work,
                session: done.session,
                position: done.position,
                tokens: done.tokens,
            };
            self.send_drafts(done.titan, drafts);
        }
        self.start_drafting();
    }

    fn idle(&mut self, titan: &T, now_ms: u64) {
        if let Some(link) = self.titans.get_mut(titan) {
            link.next_pull_ms = Some(now_ms);
        }
    }

    fn send(&mut self, titan: T, request: Request, in_flight: InFlight) {
        if let Some(link) = self.titans.get_mut(&titan) {
            link.in_flight = Some(in_flight);
            link.next_pull_ms = None;
        }
        self.actions.push_back(ScoutAction::Send { titan, request });
    }

    fn apply_verdict(
        &mut self,
        titan: &T,
        session: u64,
        position: u64,
        drafts: &[u32],
        verdict: &VerdictMsg,
    ) {
        let accepted = usize::from(verdict.accepted).min(drafts.len());
        self.counts.accepted += accepted as u64;
        let key = (titan.clone(), session);
        if verdict.done {
            self.sessions.remove(&key);
            return;
        }
        let Some(held) = self.sessions.get_mut(&key) else {
            return;
        };
        match usize::try_from(position) {
            Ok(p) if p <= held.len() => {
                held.truncate(p);
                held.extend_from_slice(&drafts[..accepted]);
                held.push(verdict.next_token);
            }
            // The drafts were not for what we hold: forget the session
            // rather than keep tokens the titan does not think we have.
            _ => {
                self.sessions.remove(&key);
            }
        }
    }

    /// Brings the session's tokens up to the unit's context and queues it,
    /// or answers a context gap with no drafts.
    fn take_work(&mut self, titan: T, work: Work) {
        let key = (titan.clone(), work.session);
        let held = self.sessions.get(&key).map_or(0, <[u32]>::len);
        let fits = usize::try_from(work.context_start)
            .ok()
            .filter(|&start| start <= held)
            .filter(|&start| {
                start
                    .checked_add(work.context.len())
                    .is_some_and(|end| u64::try_from(end) == Ok(work.position))
            });
        let Some(start) = fits else {
            // We lost the beginning of this session (or the unit does not
            // add up): draft nothing, and forget it; the titan then forgets
            // its view too and the next unit brings the whole context.
            self.sessions.remove(&key);
            self.answer_gap(titan, &work);
            return;
        };
        let held = self.sessions.entry(key);
        held.truncate(start);
        held.extend_from_slice(&work.context);
        if let Some(link) = self.titans.get_mut(&titan) {
            link.drafting = true;
            link.next_pull_ms = None;
        }
        self.queue.push_back((titan, work));
        self.start_drafting();
    }

    /// Answers a unit whose context the scout lacks with no drafts.
    fn answer_gap(&mut self, titan: T, work: &Work) {
        self.counts.context_gaps += 1;
        let drafts = Drafts {
            work: work.work,
            session: work.session,
            position: work.position,
            tokens: Vec::new(),
        };
        self.send_drafts(titan, drafts);
    }

    /// Sends drafts for a unit; the verdict will be applied to them.
    fn send_drafts(&mut self, titan: T, drafts: Drafts) {
        let in_flight = InFlight::Drafts {
            session: drafts.session,
            position: drafts.position,
            drafts: drafts.tokens.clone(),
        };
        self.send(titan, Request::Drafts(drafts), in_flight);
    }

    fn start_drafting(&mut self) {
        if self.drafting {
            return;
        }
        while let Some((titan, work)) = self.queue.pop_front() {
            let Some(held) = self.sessions.get(&(titan.clone(), work.session)) else {
                // Evicted while queued: answer with no drafts.
                if let Some(link) = self.titans.get_mut(&titan) {
                    link.drafting = false;
                }
                self.answer_gap(titan, &work);
                continue;
            };
            self.drafting = true;
            self.actions.push_back(ScoutAction::Draft(DraftJob {
                context: held.to_vec(),
                titan,
                work: work.work,
                session: work.session,
                params: work.sampling,
                k: usize::from(work.k.min(self.config.max_k)),
            }));
            return;
        }
    }
}
