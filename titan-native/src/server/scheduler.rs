//! The scheduler: one OS thread that owns the models and runs every
//! request's generation in shared passes (continuous batching).
//!
//! Each loop admits queued jobs (their prompts prefilled together in shared
//! passes), runs one speculative [`step`] over every running sequence, and
//! delivers text. Delivery never blocks the loop: events wait in a per-job
//! outbox (bounded by the job's token budget) while the client's channel is
//! full, and a job whose client has gone (its receiver dropped) is cancelled
//! and its KV cache freed at the next loop.
//!
//! With a mesh, a sequence may be drafted by a remote scout instead
//! ([`crate::mesh::work`]): it is parked until the scout's drafts arrive or
//! the unit's deadline passes, then verified in the same batched pass as the
//! others. A late or vanished scout is rerouted to local drafting.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::time::{Duration, Instant};

use shared_protocol::sampling::SamplingParams;
use shared_protocol::tokenizer::StreamDecoder;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::metrics::Metrics;
use super::stop::{StopMatcher, StopState};
use crate::engine::Model;
use crate::generate::feed_prompts;
use crate::mesh::work::{FromMesh, MeshLink, ToMesh, WorkUnit};
use crate::speculative::{Drafter, FinishReason, Sequence, step};

/// One request for the scheduler.
#[derive(Debug)]
pub struct Job {
    pub prompt: Vec<u32>,
    pub params: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
    /// Where the job's events go; dropping the receiver cancels the job.
    pub events: Sender<Event>,
}

/// What reaches the scheduler: requests from the HTTP API, and drafts from
/// the mesh.
#[derive(Debug)]
pub enum Inbox {
    Job(Job),
    Mesh(FromMesh),
}

/// What a job's client receives.
#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// More completion text.
    Text(String),
    /// The end, with the numbers for `usage`.
    Done {
        finish: FinishReason,
        prompt_tokens: usize,
        completion_tokens: usize,
    },
    /// The job failed; the message is safe to show to the client.
    Error(String),
}

/// A work unit out with a scout.
struct Remote {
    work: u64,
    deadline: Instant,
    /// The scout's drafts, once they came.
    drafts: Option<Vec<u32>>,
}

struct Running {
    session: u64,
    seq: Sequence,
    remote: Option<Remote>,
    events: Sender<Event>,
    outbox: VecDeque<Event>,
    decoder: StreamDecoder,
    stop: StopMatcher,
    prompt_tokens: usize,
    /// A stop string ended the text (anything after it is discarded).
    stopped: bool,
    done: bool,
}

impl Running {
    /// Sends what it can without waiting; false once the client is gone.
    fn flush(&mut self) -> bool {
        while let Some(event) = self.outbox.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(TrySendError::Full(event)) => {
                    self.outbox.push_front(event);
                    return true;
                }
                Err(TrySendError::Closed(_)) => return false,
            }
        }
        !self.events.is_closed()
    }

    fn text(&mut self, model: &Model, tokens: &[u32]) {
        let mut out = String::new();
        for &t in tokens {
            out.push_str(&self.decoder.push(&model.tokenizer, t));
        }
        match self.stop.push(&out) {
            StopState::Running(text) => self.emit_text(text),
            StopState::Stopped(text) => {
                self.emit_text(text);
                self.stopped = true;
                self.seq.finish(FinishReason::Stop);
            }
        }
    }

    fn emit_text(&mut self, text: String) {
        if !text.is_empty() {
            self.outbox.push_back(Event::Text(text));
        }
    }

    /// Queues the last text and the `Done` event.
    fn finish(&mut self) {
        if self.done {
            return;
        }
        if !self.stopped {
            // Bytes of an unfinished character and text held back for a stop
            // string that never completed.
            let tail = self.decoder.finish();
            match self.stop.push(&tail) {
                StopState::Running(text) => {
                    self.emit_text(text);
                    let held = self.stop.finish();
                    self.emit_text(held);
                }
                StopState::Stopped(text) => self.emit_text(text),
            }
        }
        self.outbox.push_back(Event::Done {
            finish: self.seq.finished.unwrap_or(FinishReason::Stop),
            prompt_tokens: self.prompt_tokens,
            completion_tokens: self.seq.generated.len(),
        });
        self.done = true;
    }
}

/// Runs until the inbox closes and every job is done.
pub fn run(
    target: Model,
    draft: Option<Model>,
    inbox: Receiver<Inbox>,
    metrics: Arc<Metrics>,
    mesh: Option<MeshLink>,
) {
    let mut drafter = Drafter::from_optional(draft.as_ref());
    let mut buffers = target.new_pass_buffers();
    let mut running: Vec<Running> = Vec::new();
    let mut closed = false;
    let mut ids = Ids::default();
    loop {
        // Take what arrived; block only when nothing can step.
        let mut arrived = Vec::new();
        let runnable = running.iter().any(|r| {
            r.seq.finished.is_none() && r.remote.as_ref().is_none_or(|x| x.drafts.is_some())
        });
        if !runnable && !closed {
            // Wake for the first deadline, or soon if finished jobs still
            // have events for slow clients.
            let delivering = running.iter().any(|r| r.seq.finished.is_some());
            let wait = running
                .iter()
                .filter_map(|r| r.remote.as_ref().map(|x| x.deadline))
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .map(|w| {
                    if delivering {
                        w.min(Duration::from_millis(2))
                    } else {
                        w
                    }
                })
                .or(delivering.then_some(Duration::from_millis(2)));
            match wait {
                None => match inbox.recv() {
                    Ok(m) => arrived.push(m),
                    Err(_) => closed = true,
                },
                Some(wait) => match inbox.recv_timeout(wait) {
                    Ok(m) => arrived.push(m),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => closed = true,
                },
            }
        }
        loop {
            match inbox.try_recv() {
                Ok(m) => arrived.push(m),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        let mut new_jobs = Vec::new();
        for m in arrived {
            match m {
                Inbox::Job(job) => new_jobs.push(job),
                Inbox::Mesh(m) => on_mesh(m, &mut running, mesh.as_ref(), &metrics),
            }
        }
        if closed && running.is_empty() && new_jobs.is_empty() {
            return;
        }
        reroute_late(&mut running, mesh.as_ref(), &metrics);
        metrics
            .requests_waiting
            .fetch_sub(new_jobs.len() as u64, Relaxed);
        admit(
            &target,
            &mut buffers,
            new_jobs,
            &mut running,
            &metrics,
            &mut ids,
        );
        if let Some(link) = &mesh {
            offer_to_scouts(&target, link, &mut running, &mut ids);
        }

        // One speculative step for everyone not waiting on a scout.
        let stepping: Vec<usize> = (0..running.len())
            .filter(|&i| {
                let r = &running[i];
                r.seq.finished.is_none() && r.remote.as_ref().is_none_or(|x| x.drafts.is_some())
            })
            .collect();
        for &i in &stepping {
            let r = &mut running[i];
            if let Some(remote) = &mut r.remote {
                r.seq.supplied = remote.drafts.take();
            }
        }
        let mut mask = vec![false; running.len()];
        for &i in &stepping {
            mask[i] = true;
        }
        let mut seqs: Vec<&mut Sequence> = running
            .iter_mut()
            .zip(&mask)
            .filter(|(_, m)| **m)
            .map(|(r, _)| &mut r.seq)
            .collect();
        if !seqs.is_empty() {
            let result = step(&target, &mut drafter, &mut buffers, &mut seqs);
            drop(seqs);
            match result {
                Ok(outcomes) => {
                    metrics.target_passes.fetch_add(1, Relaxed);
                    for (&i, outcome) in stepping.iter().zip(outcomes) {
                        let r = &mut running[i];
                        metrics.record_verify(outcome.drafted, outcome.accepted);
                        metrics
                            .generation_tokens
                            .fetch_add(outcome.tokens.len() as u64, Relaxed);
                        r.text(&target, &outcome.tokens);
                        if let Some(remote) = r.remote.take() {
                            metrics
                                .remote_draft_tokens
                                .fetch_add(outcome.drafted as u64, Relaxed);
                            metrics
                                .remote_accepted_tokens
                                .fetch_add(outcome.accepted as u64, Relaxed);
                            if let Some(link) = &mesh {
                                answer_scout(&target, link, r, remote.work, &outcome, &mut ids);
                            }
                        }
                    }
                }
                Err(e) => {
                    tracing::error!("generation step failed: {e}");
                    for r in running.iter_mut().filter(|r| !r.done) {
                        r.outbox
                            .push_back(Event::Error(format!("generation failed: {e}")));
                        r.done = true;
                    }
                }
            }
        }

        // Deliver; drop finished and abandoned jobs (frees their KV caches).
        running.retain_mut(|r| {
            if r.seq.finished.is_some() {
                r.finish();
                if let (Some(remote), Some(link)) = (r.remote.take(), &mesh) {
                    let _ = link.to_mesh.try_send(ToMesh::Cancel { work: remote.work });
                }
            }
            let connected = r.flush();
            let keep = connected && !(r.done && r.outbox.is_empty());
            if !keep {
                if !connected && !r.done {
                    tracing::info!("client went away; cancelling its generation");
                }
                if let (Some(remote), Some(link)) = (r.remote.take(), &mesh) {
                    let _ = link.to_mesh.try_send(ToMesh::Cancel { work: remote.work });
                }
                metrics.requests_running.fetch_sub(1, Relaxed);
                metrics.requests_finished.fetch_add(1, Relaxed);
            }
            keep
        });
        if running.iter().all(|r| r.done) && !running.is_empty() {
            // Only undelivered events remain: let slow clients drain them.
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
    }
}

/// Session and work-unit numbering.
#[derive(Default)]
struct Ids {
    session: u64,
    work: u64,
}

impl Ids {
    fn session(&mut self) -> u64 {
        self.session += 1;
        self.session
    }
    fn work(&mut self) -> u64 {
        self.work += 1;
        self.work
    }
}

/// The next unit of a sequence, if a scout can draft for it.
fn unit_for(target: &Model, r: &Running, link: &MeshLink, ids: &mut Ids) -> Option<WorkUnit> {
    let n_ctx = target.config.n_ctx;
    if !r.seq.wants_drafts(n_ctx) || r.done {
        return None;
    }
    let context = r.seq.context();
    if context.len() > shared_protocol::wire::verify::MAX_CONTEXT_TOKENS {
        return None;
    }
    Some(WorkUnit {
        work: ids.work(),
        session: r.session,
        context,
        params: r.seq.params,
        k: r.seq.draft_budget(n_ctx),
        deadline: link.deadline,
    })
}

/// Hands sequences that draft locally to idle scouts, one per claimed pull.
fn offer_to_scouts(target: &Model, link: &MeshLink, running: &mut [Running], ids: &mut Ids) {
    for r in running
        .iter_mut()
        .filter(|r| r.seq.finished.is_none() && r.remote.is_none())
    {
        if link.idle_scouts.load(Relaxed) == 0 {
            return;
        }
        let Some(unit) = unit_for(target, r, link, ids) else {
            continue;
        };
        if !link.claim_scout() {
            return;
        }
        let work = unit.work;
        match link.to_mesh.try_send(ToMesh::Offer(unit)) {
            Ok(()) => {
                r.remote = Some(Remote {
                    work,
                    deadline: Instant::now() + link.deadline,
                    drafts: None,
                });
            }
            Err(_) => {
                // The swarm task is backed up: give the claim back.
                link.idle_scouts.fetch_add(1, Relaxed);
                return;
            }
        }
    }
}

/// Sends the verdict on a scout's drafts, with the session's next unit for
/// the same scout (parking the sequence again) unless it is finished.
fn answer_scout(
    target: &Model,
    link: &MeshLink,
    r: &mut Running,
    work: u64,
    outcome: &crate::speculative::StepOutcome,
    ids: &mut Ids,
) {
    let done = r.seq.finished.is_some();
    let next_unit = if done {
        None
    } else {
        unit_for(target, r, link, ids)
    };
    let next_work = next_unit.as_ref().map(|u| u.work);
    // The target's own token after the accepted drafts.
    let next = outcome.next.unwrap_or(0);
    let msg = ToMesh::Verdict {
        work,
        accepted: outcome.accepted,
        next,
        done,
        next_unit,
    };
    if link.to_mesh.try_send(msg).is_ok()
        && let Some(work) = next_work
    {
        r.remote = Some(Remote {
            work,
            deadline: Instant::now() + link.deadline,
            drafts: None,
        });
    }
}

fn on_mesh(m: FromMesh, running: &mut [Running], mesh: Option<&MeshLink>, metrics: &Metrics) {
    match m {
        FromMesh::Drafts { work, tokens } => {
            let slot = running
                .iter_mut()
                .filter_map(|r| r.remote.as_mut())
                .find(|x| x.work == work && x.drafts.is_none());
            match slot {
                Some(x) => x.drafts = Some(tokens),
                None => {
                    if let Some(link) = mesh {
                        let _ = link.to_mesh.try_send(ToMesh::Cancel { work });
                    }
                }
            }
        }
        FromMesh::Abandoned { work, reason } => {
            if let Some(r) = running
                .iter_mut()
                .find(|r| r.remote.as_ref().is_some_and(|x| x.work == work))
            {
                reroute(r, &reason, metrics);
            }
        }
    }
}

fn reroute(r: &mut Running, reason: &str, metrics: &Metrics) {
    if let Some(remote) = r.remote.take() {
        metrics.reroutes.fetch_add(1, Relaxed);
        tracing::warn!(
            session = r.session,
            work = remote.work,
            "Rerouting session {} (work {}): {reason}; drafting locally",
            r.session,
            remote.work
        );
    }
}

/// Takes back units whose scouts missed the deadline.
fn reroute_late(running: &mut [Running], mesh: Option<&MeshLink>, metrics: &Metrics) {
    let now = Instant::now();
    for r in running.iter_mut() {
        let late = r
            .remote
            .as_ref()
            .is_some_and(|x| x.drafts.is_none() && now >= x.deadline);
        if late {
            let work = r.remote.as_ref().map_or(0, |x| x.work);
            if let Some(link) = mesh {
                let _ = link.to_mesh.try_send(ToMesh::Cancel { work });
            }
            let ms = mesh.map_or(Duration::ZERO, |l| l.deadline).as_millis();
            reroute(r, &format!("no drafts within {ms} ms"), metrics);
        }
    }
}

/// Prefills new jobs together and starts their sequences.
fn admit(
    target: &Model,
    buffers: &mut crate::engine::PassBuffers,
    new_jobs: Vec<Job>,
    running: &mut Vec<Running>,
    metrics: &Metrics,
    ids: &mut Ids,
) {
    if new_jobs.is_empty() {
        return;
    }
    let mut sessions: Vec<_> = new_jobs.iter().map(|_| target.new_session()).collect();
    let mut prefill: Vec<(&mut crate::engine::Session, &[u32])> = sessions
        .iter_mut()
        .zip(&new_jobs)
        .map(|(s, j)| (s, j.prompt.as_slice()))
        .collect();
    let logits = match feed_prompts(target, buffers, &mut prefill) {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!("prefill failed: {e}");
            for job in new_jobs {
                let _ = job
                    .events
                    .try_send(Event::Error(format!("prefill failed: {e}")));
            }
            return;
        }
    };
    for ((job, session), logits) in new_jobs.into_iter().zip(sessions).zip(logits) {
        metrics
            .prompt_tokens
            .fetch_add(job.prompt.len() as u64, Relaxed);
        metrics.requests_running.fetch_add(1, Relaxed);
        let seq = Sequence::start(target, session, None, &logits, job.params, job.max_tokens);
        let mut r = Running {
            session: ids.session(),
            remote: None,
            prompt_tokens: job.prompt.len(),
            stopped: false,
            events: job.events,
            outbox: VecDeque::new(),
            decoder: StreamDecoder::new(),
            stop: StopMatcher::new(job.stop),
            seq,
            done: false,
        };
        let first: Vec<u32> = r.seq.generated.clone();
        metrics
            .generation_tokens
            .fetch_add(first.len() as u64, Relaxed);
        r.text(target, &first);
        running.push(r);
    }
}
