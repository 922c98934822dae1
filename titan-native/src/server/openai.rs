//! The OpenAI request and response shapes the titan accepts and produces
//! (`/v1/chat/completions`, `/v1/completions`, `/v1/models`), and their
//! validation. Unknown request fields are ignored, as OpenAI's own server
//! does for forward compatibility; known fields with wrong types or values
//! are refused with the field named.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::error::ApiError;
use crate::speculative::FinishReason;

/// At most this many stop strings, as OpenAI allows.
pub(super) const MAX_STOPS: usize = 4;

#[derive(Debug, Deserialize)]
pub(super) struct ChatRequest {
    pub(super) model: String,
    pub(super) messages: Vec<ChatMessageIn>,
    #[serde(default)]
    pub(super) max_tokens: Option<i64>,
    #[serde(default)]
    pub(super) max_completion_tokens: Option<i64>,
    #[serde(flatten)]
    pub(super) common: Common,
}

#[derive(Debug, Deserialize)]
pub(super) struct CompletionRequest {
    pub(super) model: String,
    pub(super) prompt: Prompt,
    #[serde(default)]
    pub(super) max_tokens: Option<i64>,
    #[serde(flatten)]
    pub(super) common: Common,
}

/// Fields both endpoints share.
#[derive(Debug, Deserialize)]
pub(super) struct Common {
    #[serde(default)]
    pub(super) temperature: Option<f32>,
    #[serde(default)]
    pub(super) top_p: Option<f32>,
    #[serde(default)]
    pub(super) seed: Option<i64>,
    #[serde(default)]
    pub(super) stop: Option<Stop>,
    #[serde(default)]
    pub(super) stream: bool,
    #[serde(default)]
    pub(super) stream_options: Option<StreamOptions>,
    #[serde(default)]
    pub(super) n: Option<i64>,
}

#[derive(Debug, Deserialize)]
pub(super) struct StreamOptions {
    #[serde(default)]
    pub(super) include_usage: bool,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Stop {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Prompt {
    Text(String),
    Batch(Vec<String>),
}

#[derive(Debug, Deserialize)]
pub(super) struct ChatMessageIn {
    pub(super) role: String,
    #[serde(default)]
    pub(super) content: Option<Content>,
}

/// A message's content: a string, or parts of which only text is supported.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub(super) enum Content {
    Text(String),
    Parts(Vec<ContentPart>),
}

#[derive(Debug, Deserialize)]
pub(super) struct ContentPart {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) text: Option<String>,
}

impl Content {
    pub(super) fn into_text(self, index: usize) -> Result<String, ApiError> {
        match self {
            Content::Text(t) => Ok(t),
            Content::Parts(parts) => parts
                .into_iter()
                .map(|p| match (p.kind.as_str(), p.text) {
                    ("text", Some(t)) => Ok(t),
                    (kind, _) => Err(ApiError::invalid(
                        format!("content part of type {kind:?} is not supported (text only)"),
                        &format!("messages[{index}].content"),
                    )),
                })
                .collect(),
        }
    }
}

/// Validated sampling settings of a request.
#[derive(Debug, Clone)]
pub(super) struct Sampling {
    pub(super) temperature: f32,
    pub(super) top_p: f32,
    pub(super) seed: u64,
    pub(super) stop: Vec<String>,
}

impl Common {
    pub(super) fn validate(&self) -> Result<Sampling, ApiError> {
        let temperature = self.temperature.unwrap_or(1.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(ApiError::invalid(
                format!("temperature must be between 0 and 2, got {temperature}"),
                "temperature",
            ));
        }
        let top_p = self.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid(
                format!("top_p must be in (0, 1], got {top_p}"),
                "top_p",
            ));
        }
        if let Some(n) = self.n
            && n != 1
        {
            return Err(ApiError::invalid(
                format!("only n = 1 is supported, got {n}"),
                "n",
            ));
        }
        let stop = match &self.stop {
            None => Vec::new(),
            Some(Stop::One(s)) => vec![s.clone()],
            Some(Stop::Many(v)) => v.clone(),
        };
        if stop.len() > MAX_STOPS {
            return Err(ApiError::invalid(
                format!(
                    "at most {MAX_STOPS} stop sequences are allowed, got {}",
                    stop.len()
                ),
                "stop",
            ));
        }
        let seed = match self.seed {
            Some(s) => s as u64,
            None => random_seed(),
        };
        Ok(Sampling {
            temperature,
            top_p,
            seed,
            stop,
        })
    }
}

/// A seed for requests that give none: distinct per request.
fn random_seed() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ COUNTER.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
}

/// The requested token budget: `None` when absent; an error when not positive.
pub(super) fn max_tokens(value: Option<i64>, field: &str) -> Result<Option<usize>, ApiError> {
    match value {
        None => Ok(None),
        Some(n) if n >= 1 => Ok(Some(n as usize)),
        Some(n) => Err(ApiError::invalid(
            format!("{field} must be at least 1, got {n}"),
            field,
        )),
    }
}

pub(super) fn finish_reason(f: FinishReason) -> &'static str {
    match f {
        FinishReason::Stop | FinishReason::Cancelled => "stop",
        FinishReason::Length | FinishReason::ContextFull => "length",
    }
}

#[derive(Debug, Clone, Copy, Serialize)]
pub(super) struct Usage {
    pub(super) prompt_tokens: usize,
    pub(super) completion_tokens: usize,
    pub(super) total_tokens: usize,
}

impl Usage {
    pub(super) fn new(prompt_tokens: usize, completion_tokens: usize) -> Self {
        Self {
            prompt_tokens,
            completion_tokens,
            total_tokens: prompt_tokens + completion_tokens,
        }
    }
}

/// Which endpoint a response is for: the two differ in object names and in
/// where the text goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    Chat,
    Completion,
}

/// Identity of one response.
#[derive(Debug, Clone)]
pub(super) struct ResponseMeta {
    pub(super) id: String,
    pub(super) created: u64,
    pub(super) model: String,
    pub(super) endpoint: Endpoint,
}

impl ResponseMeta {
    pub(super) fn new(endpoint: Endpoint, model: &str) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let prefix = match endpoint {
            Endpoint::Chat => "chatcmpl",
            Endpoint::Completion => "cmpl",
        };
        Self {
            id: format!("{prefix}-{:016x}", random_seed()),
            created,
            model: model.to_owned(),
            endpoint,
        }
    }

    /// The whole response of a non-streaming request.
    pub(super) fn full(&self, text: &str, finish: &str, usage: Usage) -> Value {
        let choice = match self.endpoint {
            Endpoint::Chat => json!({
                "index": 0,
                "message": { "role": "assistant", "content": text },
                "logprobs": null,
                "finish_reason": finish,
            }),
            Endpoint::Completion => json!({
                "index": 0,
                "text": text,
                "logprobs": null,
                "finish_reason": finish,
            }),
        };
        json!({
            "id": self.id,
            "object": self.object(false),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": [choice],
            "usage": usage,
        })
    }

    /// One streamed chunk: a text delta (chat: the first carries the role),
    /// or the final one with a finish reason, or the usage-only chunk.
    pub(super) fn chunk(
        &self,
        delta: Option<&str>,
        first: bool,
        finish: Option<&str>,
        usage: Option<Usage>,
    ) -> Value {
        let choices = if usage.is_some() {
            json!([])
        } else {
            let choice = match self.endpoint {
                Endpoint::Chat => {
                    let mut d = serde_json::Map::new();
                    if first {
                        d.insert("role".into(), json!("assistant"));
                    }
                    if let Some(t) = delta {
                        d.insert("content".into(), json!(t));
                    }
                    json!({ "index": 0, "delta": d, "logprobs": null, "finish_reason": finish })
                }
                Endpoint::Completion => json!({
                    "index": 0,
                    "text": delta.unwrap_or(""),
                    "logprobs": null,
                    "finish_reason": finish,
                }),
            };
            json!([choice])
        };
        let mut v = json!({
            "id": self.id,
            "object": self.object(true),
            "created": self.created,
            "model": self.model,
            "system_fingerprint": FINGERPRINT,
            "choices": choices,
        });
        if let Some(u) = usage {
            v["usage"] = json!(u);
        }
        v
    }

    fn object(&self, chunk: bool) -> &'static str {
        match (self.endpoint, chunk) {
            (Endpoint::Chat, false) => "chat.completion",
            (Endpoint::Chat, true) => "chat.completion.chunk",
            (Endpoint::Completion, _) => "text_completion",
        }
    }
}

/// Names the build, so clients can tell when outputs may change.
pub(super) const FINGERPRINT: &str = concat!("shard-titan-", env!("CARGO_PKG_VERSION"));
