//! The scheduler: one OS thread that owns the models and runs every
//! request's generation in shared passes (continuous batching).
//!
//! Each loop admits queued jobs (their prompts prefilled together in shared
//! passes), runs one speculative [`step`] over every running sequence, and
//! delivers text. Delivery never blocks the loop: events wait in a per-job
//! outbox (bounded by the job's token budget) while the client's channel is
//! full, and a job whose client has gone (its receiver dropped) is cancelled
//! and its KV cache freed at the next loop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::mpsc::{Receiver, TryRecvError};

use shared_protocol::sampling::SamplingParams;
use shared_protocol::tokenizer::StreamDecoder;
use tokio::sync::mpsc::Sender;
use tokio::sync::mpsc::error::TrySendError;

use super::metrics::Metrics;
use super::stop::{StopMatcher, StopState};
use crate::engine::Model;
use crate::generate::feed_prompts;
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

struct Running {
    seq: Sequence,
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

/// Runs until the job channel closes and every job is done.
pub fn run(target: Model, draft: Option<Model>, jobs: Receiver<Job>, metrics: Arc<Metrics>) {
    let mut drafter = Drafter::from_optional(draft.as_ref());
    let mut buffers = target.new_pass_buffers();
    let mut running: Vec<Running> = Vec::new();
    let mut closed = false;
    loop {
        // Admit new jobs; block only when there is nothing else to do.
        let mut new_jobs = Vec::new();
        if running.is_empty() && !closed {
            match jobs.recv() {
                Ok(job) => new_jobs.push(job),
                Err(_) => closed = true,
            }
        }
        loop {
            match jobs.try_recv() {
                Ok(job) => new_jobs.push(job),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    closed = true;
                    break;
                }
            }
        }
        if closed && running.is_empty() && new_jobs.is_empty() {
            return;
        }
        metrics
            .requests_waiting
            .fetch_sub(new_jobs.len() as u64, Relaxed);
        admit(&target, &mut buffers, new_jobs, &mut running, &metrics);

        // One speculative step for everyone still running.
        let stepping: Vec<usize> = (0..running.len())
            .filter(|&i| running[i].seq.finished.is_none())
            .collect();
        let mut seqs: Vec<&mut Sequence> = running
            .iter_mut()
            .filter(|r| r.seq.finished.is_none())
            .map(|r| &mut r.seq)
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
            }
            let connected = r.flush();
            let keep = connected && !(r.done && r.outbox.is_empty());
            if !keep {
                if !connected && !r.done {
                    tracing::info!("client went away; cancelling its generation");
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

/// Prefills new jobs together and starts their sequences.
fn admit(
    target: &Model,
    buffers: &mut crate::engine::PassBuffers,
    new_jobs: Vec<Job>,
    running: &mut Vec<Running>,
    metrics: &Metrics,
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
