//! What the page and its CPU worker (`src/bin/scout-cpu-worker`) say to each other,
//! as JSON strings through `postMessage`. The model itself is the one message that
//! is not JSON: the page transfers its bytes as an `ArrayBuffer`, once, after the
//! worker said [`FromWorker::Started`] (a message sent before the worker's wasm has
//! set its handler would be lost).
//!
//! Both bins include this file, so the two sides cannot disagree on a field.

use serde::{Deserialize, Serialize};
use shared_protocol::sampling::SamplingParams;

/// The page's requests, after the model.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum ToWorker {
    /// `k` drafts after `context`, answered by [`FromWorker::Drafted`] with the same id.
    Draft {
        id: u64,
        context: Vec<u32>,
        params: Sampling,
        k: usize,
    },
}

/// The worker's side.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum FromWorker {
    /// Its wasm runs and listens: send the model.
    Started,
    /// The model is loaded and checked; `kernels` names the kernel path it runs on.
    Ready {
        kernels: String,
        load_ms: f64,
    },
    /// The worker cannot go on (a model that does not load, a message it cannot read).
    Failed {
        reason: String,
    },
    Drafted {
        id: u64,
        tokens: Vec<u32>,
    },
    DraftFailed {
        id: u64,
        reason: String,
    },
}

/// [`SamplingParams`] as it crosses: the same four numbers.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub(crate) struct Sampling {
    temperature: f32,
    top_k: usize,
    top_p: f32,
    seed: u64,
}

impl From<&SamplingParams> for Sampling {
    fn from(p: &SamplingParams) -> Self {
        Self {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            seed: p.seed,
        }
    }
}

impl From<Sampling> for SamplingParams {
    fn from(p: Sampling) -> Self {
        Self {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
            seed: p.seed,
        }
    }
}
