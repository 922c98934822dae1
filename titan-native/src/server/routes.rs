//! HTTP handlers: the OpenAI endpoints, models, health and metrics.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use shared_protocol::chat::ChatMessage;
use shared_protocol::sampling::SamplingParams;
use tokio::sync::mpsc;

use super::AppState;
use super::error::ApiError;
use super::openai::{
    ChatRequest, Common, CompletionRequest, Endpoint, Prompt, ResponseMeta, Usage, finish_reason,
    max_tokens,
};
use super::scheduler::{Event, Job};

/// Largest request body accepted.
pub(super) const MAX_BODY_BYTES: usize = 1 << 20;
/// Events buffered per streaming client before the scheduler holds them back.
const EVENT_BUFFER: usize = 64;

async fn read_json<T: DeserializeOwned>(body: Body) -> Result<T, ApiError> {
    let bytes = axum::body::to_bytes(body, MAX_BODY_BYTES)
        .await
        .map_err(|_| ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            ..ApiError::bad_json(format!("request body exceeds {MAX_BODY_BYTES} bytes"))
        })?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::bad_json(format!("invalid request body: {e}")))
}

pub(super) async fn chat_completions(State(app): State<Arc<AppState>>, body: Body) -> Response {
    match chat(app, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

pub(super) async fn completions(State(app): State<Arc<AppState>>, body: Body) -> Response {
    match completion(app, body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

async fn chat(app: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let req: ChatRequest = read_json(body).await?;
    app.check_model(&req.model)?;
    if req.messages.is_empty() {
        return Err(ApiError::invalid("messages must not be empty", "messages"));
    }
    let mut messages = Vec::with_capacity(req.messages.len());
    for (i, m) in req.messages.into_iter().enumerate() {
        let role = match m.role.as_str() {
            "system" | "developer" => "system",
            "user" => "user",
            "assistant" => "assistant",
            other => {
                return Err(ApiError::invalid(
                    format!("role {other:?} is not supported (system, developer, user, assistant)"),
                    &format!("messages[{i}].role"),
                ));
            }
        };
        let content = match m.content {
            Some(c) => c.into_text(i)?,
            None => {
                return Err(ApiError::invalid(
                    "content is required",
                    &format!("messages[{i}].content"),
                ));
            }
        };
        messages.push(ChatMessage {
            role: role.into(),
            content,
        });
    }
    let text = app.template.render(&messages, true);
    let prompt = app.tokenize(&text);
    let requested = match req.max_completion_tokens {
        Some(_) => max_tokens(req.max_completion_tokens, "max_completion_tokens")?,
        None => max_tokens(req.max_tokens, "max_tokens")?,
    };
    submit(
        app,
        prompt,
        requested,
        &req.common,
        ResponseMeta::new(Endpoint::Chat, &req.model),
    )
    .await
}

async fn completion(app: Arc<AppState>, body: Body) -> Result<Response, ApiError> {
    let req: CompletionRequest = read_json(body).await?;
    app.check_model(&req.model)?;
    let text = match req.prompt {
        Prompt::Text(t) => t,
        Prompt::Batch(mut v) if v.len() == 1 => v.remove(0),
        Prompt::Batch(v) => {
            return Err(ApiError::invalid(
                format!("only one prompt per request is supported, got {}", v.len()),
                "prompt",
            ));
        }
    };
    if text.is_empty() {
        return Err(ApiError::invalid("prompt must not be empty", "prompt"));
    }
    let prompt = app.tokenize(&text);
    // OpenAI's default for /v1/completions is 16 tokens.
    let requested = max_tokens(req.max_tokens, "max_tokens")?.or(Some(16));
    submit(
        app,
        prompt,
        requested,
        &req.common,
        ResponseMeta::new(Endpoint::Completion, &req.model),
    )
    .await
}

/// Checks limits, queues the job and answers with a stream or a whole body.
async fn submit(
    app: Arc<AppState>,
    prompt: Vec<u32>,
    requested: Option<usize>,
    common: &Common,
    meta: ResponseMeta,
) -> Result<Response, ApiError> {
    let sampling = common.validate()?;
    let n_ctx = app.n_ctx;
    if prompt.len() >= n_ctx {
        return Err(ApiError::context_length(prompt.len(), n_ctx));
    }
    let room = n_ctx - prompt.len();
    let max = match requested {
        Some(n) if n > app.max_tokens_cap => {
            return Err(ApiError::invalid(
                format!(
                    "max_tokens is {n}; this titan allows at most {} per request",
                    app.max_tokens_cap
                ),
                "max_tokens",
            ));
        }
        Some(n) if n > room => {
            return Err(ApiError {
                code: Some("context_length_exceeded"),
                ..ApiError::invalid(
                    format!(
                        "this model's maximum context length is {n_ctx} tokens; you requested {} ({} in the prompt, {n} in the completion)",
                        prompt.len() + n,
                        prompt.len()
                    ),
                    "max_tokens",
                )
            });
        }
        Some(n) => n,
        None => room.min(app.max_tokens_cap),
    };
    let permit = app.sessions.clone().try_acquire_owned().map_err(|_| {
        app.metrics.requests_rejected.fetch_add(1, Relaxed);
        ApiError::busy(1)
    })?;
    let (tx, rx) = mpsc::channel(EVENT_BUFFER);
    let job = Job {
        prompt,
        params: SamplingParams {
            temperature: sampling.temperature,
            top_k: 0,
            top_p: sampling.top_p,
            seed: sampling.seed,
        },
        max_tokens: max,
        stop: sampling.stop,
        events: tx,
    };
    app.metrics.requests_waiting.fetch_add(1, Relaxed);
    if let Err(e) = app.jobs.try_send(super::scheduler::Inbox::Job(job)) {
        app.metrics.requests_waiting.fetch_sub(1, Relaxed);
        return Err(match e {
            std::sync::mpsc::TrySendError::Full(_) => ApiError::busy(1),
            std::sync::mpsc::TrySendError::Disconnected(_) => {
                ApiError::internal("the scheduler has stopped")
            }
        });
    }
    if common.stream {
        let include_usage = common
            .stream_options
            .as_ref()
            .is_some_and(|o| o.include_usage);
        Ok(stream_response(meta, rx, include_usage, permit))
    } else {
        let response = collect(meta, rx).await;
        drop(permit);
        response
    }
}

/// Waits for the whole completion.
async fn collect(meta: ResponseMeta, mut rx: mpsc::Receiver<Event>) -> Result<Response, ApiError> {
    let mut text = String::new();
    while let Some(event) = rx.recv().await {
        match event {
            Event::Text(t) => text.push_str(&t),
            Event::Done {
                finish,
                prompt_tokens,
                completion_tokens,
            } => {
                let usage = Usage::new(prompt_tokens, completion_tokens);
                return Ok(
                    axum::Json(meta.full(&text, finish_reason(finish), usage)).into_response()
                );
            }
            Event::Error(e) => return Err(ApiError::internal(e)),
        }
    }
    Err(ApiError::internal("the scheduler dropped the request"))
}

struct StreamState {
    meta: ResponseMeta,
    rx: mpsc::Receiver<Event>,
    include_usage: bool,
    first: bool,
    /// Chunks ready to send before reading the next event.
    queued: std::collections::VecDeque<SseEvent>,
    ended: bool,
    /// Holds the session slot until the stream is dropped.
    _permit: tokio::sync::OwnedSemaphorePermit,
}

fn data(v: &serde_json::Value) -> SseEvent {
    SseEvent::default().data(v.to_string())
}

/// Server-sent events as OpenAI sends them: chunks with deltas, a final
/// chunk with the finish reason, an optional usage chunk, `data: [DONE]`.
fn stream_response(
    meta: ResponseMeta,
    rx: mpsc::Receiver<Event>,
    include_usage: bool,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Response {
    let state = StreamState {
        meta,
        rx,
        include_usage,
        first: true,
        queued: Default::default(),
        ended: false,
        _permit: permit,
    };
    let stream = event_stream(state);
    Sse::new(stream)
        .keep_alive(KeepAlive::default())
        .into_response()
}

fn event_stream(
    state: StreamState,
) -> impl futures_util::Stream<Item = Result<SseEvent, Infallible>> {
    futures_util::stream::unfold(state, |mut s| async move {
        loop {
            if let Some(e) = s.queued.pop_front() {
                return Some((Ok(e), s));
            }
            if s.ended {
                return None;
            }
            match s.rx.recv().await {
                Some(Event::Text(t)) => {
                    let chunk = s.meta.chunk(Some(&t), s.first, None, None);
                    s.first = false;
                    s.queued.push_back(data(&chunk));
                }
                Some(Event::Done {
                    finish,
                    prompt_tokens,
                    completion_tokens,
                }) => {
                    if s.first && s.meta.endpoint == Endpoint::Chat {
                        s.queued
                            .push_back(data(&s.meta.chunk(Some(""), true, None, None)));
                    }
                    let last = s.meta.chunk(None, false, Some(finish_reason(finish)), None);
                    s.queued.push_back(data(&last));
                    if s.include_usage {
                        let usage = Usage::new(prompt_tokens, completion_tokens);
                        s.queued
                            .push_back(data(&s.meta.chunk(None, false, None, Some(usage))));
                    }
                    s.queued.push_back(SseEvent::default().data("[DONE]"));
                    s.ended = true;
                }
                Some(Event::Error(e)) => {
                    s.queued.push_back(data(&ApiError::internal(e).body()));
                    s.queued.push_back(SseEvent::default().data("[DONE]"));
                    s.ended = true;
                }
                None => {
                    s.queued.push_back(data(
                        &ApiError::internal("the scheduler dropped the request").body(),
                    ));
                    s.ended = true;
                }
            }
        }
    })
}

pub(super) async fn models(State(app): State<Arc<AppState>>) -> Response {
    axum::Json(json!({
        "object": "list",
        "data": [{
            "id": app.model_id,
            "object": "model",
            "created": app.created,
            "owned_by": "shard",
            "scout_model": app.scout_model.as_ref().map(|m| m.offer()),
        }],
    }))
    .into_response()
}

pub(super) async fn health(State(app): State<Arc<AppState>>) -> Response {
    let running = app.metrics.requests_running.load(Relaxed);
    axum::Json(json!({ "status": "ok", "model": app.model_id, "running": running })).into_response()
}

pub(super) async fn metrics(State(app): State<Arc<AppState>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.render(&app.model_id),
    )
        .into_response()
}

pub(super) async fn not_found() -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        ..ApiError::bad_json("no such endpoint")
    }
    .into_response()
}
