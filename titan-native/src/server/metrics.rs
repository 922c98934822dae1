//! Counters the titan exposes at `GET /metrics` in Prometheus text format.
//! Speculative-decoding counters use vLLM's names so existing dashboards
//! work; the rest follow the same `vllm:`/`shard:` style.

use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use crate::speculative::MAX_DRAFT;

#[derive(Debug)]
pub struct Metrics {
    started: Instant,
    pub prompt_tokens: AtomicU64,
    pub generation_tokens: AtomicU64,
    /// Verify passes that carried drafts (vLLM: number of drafts).
    pub drafts: AtomicU64,
    pub draft_tokens: AtomicU64,
    pub accepted_tokens: AtomicU64,
    /// Accepted drafts by position in the draft.
    pub accepted_per_pos: [AtomicU64; MAX_DRAFT],
    /// Drafts that reached each position.
    pub drafted_per_pos: [AtomicU64; MAX_DRAFT],
    pub target_passes: AtomicU64,
    pub requests_running: AtomicU64,
    pub requests_waiting: AtomicU64,
    pub requests_finished: AtomicU64,
    pub requests_rejected: AtomicU64,
    /// Draft tokens proposed by remote scouts, and accepted.
    pub remote_draft_tokens: AtomicU64,
    pub remote_accepted_tokens: AtomicU64,
    /// Work units taken back from a scout (deadline passed, scout gone).
    pub reroutes: AtomicU64,
    /// Connected mesh peers.
    pub mesh_peers: AtomicU64,
    /// Generated tokens per second over the last few seconds.
    rate: Mutex<RateWindow>,
}

#[derive(Debug)]
struct RateWindow {
    since: Instant,
    tokens_at_start: u64,
    last_rate: f64,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            started: Instant::now(),
            prompt_tokens: AtomicU64::new(0),
            generation_tokens: AtomicU64::new(0),
            drafts: AtomicU64::new(0),
            draft_tokens: AtomicU64::new(0),
            accepted_tokens: AtomicU64::new(0),
            accepted_per_pos: std::array::from_fn(|_| AtomicU64::new(0)),
            drafted_per_pos: std::array::from_fn(|_| AtomicU64::new(0)),
            target_passes: AtomicU64::new(0),
            requests_running: AtomicU64::new(0),
            requests_waiting: AtomicU64::new(0),
            requests_finished: AtomicU64::new(0),
            requests_rejected: AtomicU64::new(0),
            remote_draft_tokens: AtomicU64::new(0),
            remote_accepted_tokens: AtomicU64::new(0),
            reroutes: AtomicU64::new(0),
            mesh_peers: AtomicU64::new(0),
            rate: Mutex::new(RateWindow {
                since: Instant::now(),
                tokens_at_start: 0,
                last_rate: 0.0,
            }),
        }
    }
}

impl Metrics {
    /// Records one sequence's verify outcome.
    pub fn record_verify(&self, drafted: usize, accepted: usize) {
        if drafted > 0 {
            self.drafts.fetch_add(1, Relaxed);
            self.draft_tokens.fetch_add(drafted as u64, Relaxed);
            self.accepted_tokens.fetch_add(accepted as u64, Relaxed);
            for p in 0..drafted.min(MAX_DRAFT) {
                self.drafted_per_pos[p].fetch_add(1, Relaxed);
            }
            for p in 0..accepted.min(MAX_DRAFT) {
                self.accepted_per_pos[p].fetch_add(1, Relaxed);
            }
        }
    }

    /// Generated tokens per second, averaged over windows of at least 2 s.
    fn tokens_per_second(&self) -> f64 {
        let total = self.generation_tokens.load(Relaxed);
        let Ok(mut w) = self.rate.lock() else {
            return 0.0;
        };
        let elapsed = w.since.elapsed().as_secs_f64();
        if elapsed >= 2.0 {
            w.last_rate = (total - w.tokens_at_start) as f64 / elapsed;
            w.since = Instant::now();
            w.tokens_at_start = total;
        }
        w.last_rate
    }

    /// The Prometheus text exposition.
    pub fn render(&self, model: &str) -> String {
        let mut out = String::new();
        let label = format!("model_name=\"{}\"", model.replace(['"', '\\', '\n'], "_"));
        let mut counter = |name: &str, help: &str, v: u64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name}{{{label}}} {v}"
            );
        };
        counter(
            "vllm:prompt_tokens_total",
            "Prompt tokens processed.",
            self.prompt_tokens.load(Relaxed),
        );
        counter(
            "vllm:generation_tokens_total",
            "Tokens generated.",
            self.generation_tokens.load(Relaxed),
        );
        counter(
            "vllm:spec_decode_num_drafts_total",
            "Verify passes of sequences that carried drafts.",
            self.drafts.load(Relaxed),
        );
        counter(
            "vllm:spec_decode_num_draft_tokens_total",
            "Draft tokens proposed.",
            self.draft_tokens.load(Relaxed),
        );
        counter(
            "vllm:spec_decode_num_accepted_tokens_total",
            "Draft tokens accepted by the target.",
            self.accepted_tokens.load(Relaxed),
        );
        counter(
            "shard:target_passes_total",
            "Forward passes of the target model (prefill excluded).",
            self.target_passes.load(Relaxed),
        );
        counter(
            "vllm:request_success_total",
            "Requests finished.",
            self.requests_finished.load(Relaxed),
        );
        counter(
            "shard:requests_rejected_total",
            "Requests refused with 429.",
            self.requests_rejected.load(Relaxed),
        );
        counter(
            "shard:remote_draft_tokens_total",
            "Draft tokens proposed by remote scouts.",
            self.remote_draft_tokens.load(Relaxed),
        );
        counter(
            "shard:remote_accepted_tokens_total",
            "Remote scouts' draft tokens accepted by the target.",
            self.remote_accepted_tokens.load(Relaxed),
        );
        counter(
            "shard:reroutes_total",
            "Work units taken back from a slow or vanished scout.",
            self.reroutes.load(Relaxed),
        );
        let _ = writeln!(
            out,
            "# HELP vllm:spec_decode_num_accepted_tokens_per_pos_total Accepted drafts by position in the draft.\n# TYPE vllm:spec_decode_num_accepted_tokens_per_pos_total counter"
        );
        for (p, c) in self.accepted_per_pos.iter().enumerate() {
            let _ = writeln!(
                out,
                "vllm:spec_decode_num_accepted_tokens_per_pos_total{{{label},position=\"{p}\"}} {}",
                c.load(Relaxed)
            );
        }
        let _ = writeln!(
            out,
            "# HELP shard:spec_decode_num_drafted_tokens_per_pos_total Drafts that reached each position.\n# TYPE shard:spec_decode_num_drafted_tokens_per_pos_total counter"
        );
        for (p, c) in self.drafted_per_pos.iter().enumerate() {
            let _ = writeln!(
                out,
                "shard:spec_decode_num_drafted_tokens_per_pos_total{{{label},position=\"{p}\"}} {}",
                c.load(Relaxed)
            );
        }
        let drafted = self.draft_tokens.load(Relaxed);
        let rate = if drafted > 0 {
            self.accepted_tokens.load(Relaxed) as f64 / drafted as f64
        } else {
            0.0
        };
        let mut gauge = |name: &str, help: &str, v: f64| {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name}{{{label}}} {v}"
            );
        };
        gauge(
            "shard:spec_decode_acceptance_rate",
            "Accepted / proposed draft tokens since start.",
            rate,
        );
        gauge(
            "vllm:num_requests_running",
            "Requests being generated.",
            self.requests_running.load(Relaxed) as f64,
        );
        gauge(
            "vllm:num_requests_waiting",
            "Requests queued for the scheduler.",
            self.requests_waiting.load(Relaxed) as f64,
        );
        gauge(
            "shard:generation_tokens_per_second",
            "Generated tokens per second (2 s window).",
            self.tokens_per_second(),
        );
        gauge(
            "shard:mesh_peers",
            "Connected mesh peers.",
            self.mesh_peers.load(Relaxed) as f64,
        );
        gauge(
            "shard:uptime_seconds",
            "Seconds since the titan started.",
            self.started.elapsed().as_secs_f64(),
        );
        out
    }
}
