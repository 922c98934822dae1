//! Chat with the titan: messages go to `POST /v1/chat/completions` as a stream of
//! server-sent events, the answer appears token by token, a stop button aborts
//! the request, and the conversation is kept in `localStorage` so a reload loses
//! nothing. While the page is a scout, its own chat's drafting is pulled by it
//! like any other unit (the titan verifies every token).

use anyhow::{Context, Result, bail};
use js_sys::Uint8Array;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{AbortController, Headers, ReadableStreamDefaultReader, RequestInit, Response};

use crate::js;

/// Where the conversation is kept.
const STORAGE_KEY: &str = "shard-chat-v1";

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub(crate) struct Message {
    pub(crate) role: String,
    pub(crate) content: String,
}

/// The conversation as the last visit left it (empty if none or unreadable).
pub(crate) fn load() -> Vec<Message> {
    storage()
        .and_then(|s| s.get_item(STORAGE_KEY).ok().flatten())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or_default()
}

/// Keeps the conversation for the next visit.
pub(crate) fn save(messages: &[Message]) {
    if let (Some(s), Ok(text)) = (storage(), serde_json::to_string(messages))
        && let Err(e) = s.set_item(STORAGE_KEY, &text)
    {
        js::log(&format!("could not keep the chat: {e:?}"));
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// What a request asks for.
pub(crate) struct ChatRequest<'a> {
    pub(crate) model: &'a str,
    pub(crate) messages: &'a [Message],
    pub(crate) temperature: f32,
    pub(crate) max_tokens: u32,
}

/// Streams the assistant's answer: `on_text` gets each piece as it arrives.
/// Aborting `abort` ends the stream early (not an error).
pub(crate) async fn stream(
    request: &ChatRequest<'_>,
    abort: &AbortController,
    mut on_text: impl FnMut(&str),
) -> Result<()> {
    let body = serde_json::json!({
        "model": request.model,
        "messages": request.messages,
        "temperature": request.temperature,
        "max_tokens": request.max_tokens,
        "stream": true,
    });
    let headers = Headers::new().map_err(|e| js::error("headers", &e))?;
    headers
        .set("content-type", "application/json")
        .map_err(|e| js::error("headers", &e))?;
    let init = RequestInit::new();
    init.set_method("POST");
    init.set_headers(&headers);
    init.set_body(&JsValue::from_str(&body.to_string()));
    init.set_signal(Some(&abort.signal()));
    let promise = js::window()?.fetch_with_str_and_init("/v1/chat/completions", &init);
    let response: Response = match js::wait(promise, "sending the message").await {
        Ok(r) => r.dyn_into().map_err(|e| js::error("not a Response", &e))?,
        Err(_) if abort.signal().aborted() => return Ok(()),
        Err(e) => return Err(e),
    };
    if !response.ok() {
        let detail = match response.text() {
            Ok(p) => js::wait(p, "reading the error")
                .await
                .ok()
                .and_then(|v| v.as_string()),
            Err(_) => None,
        };
        bail!(
            "the titan answered HTTP {}: {}",
            response.status(),
            detail.unwrap_or_default()
        );
    }
    let reader: ReadableStreamDefaultReader = response
        .body()
        .context("the answer has no body")?
        .get_reader()
        .dyn_into()
        .map_err(|e| js::error("not a stream reader", &e))?;
    let mut pending: Vec<u8> = Vec::new();
    loop {
        let chunk = match js::wait(reader.read(), "reading the answer").await {
            Ok(c) => c,
            Err(_) if abort.signal().aborted() => return Ok(()),
            Err(e) => return Err(e),
        };
        if js::field(&chunk, "done").as_bool().unwrap_or(true) {
            break;
        }
        let value: Uint8Array = js::field(&chunk, "value")
            .dyn_into()
            .map_err(|e| js::error("an answer chunk", &e))?;
        pending.extend(value.to_vec());
        // Events end with a blank line; their boundaries are ASCII, so a UTF-8
        // character is never split across two.
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let event: Vec<u8> = pending.drain(..end + 2).collect();
            match parse_event(&String::from_utf8_lossy(&event))? {
                Event::Text(t) => on_text(&t),
                Event::Done => return Ok(()),
                Event::Nothing => {}
            }
        }
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Event {
    Text(String),
    Done,
    Nothing,
}

/// One server-sent event of OpenAI's chat stream.
fn parse_event(event: &str) -> Result<Event> {
    let mut text = String::new();
    for line in event.lines() {
        let Some(data) = line.strip_prefix("data:") else {
            continue;
        };
        let data = data.trim();
        if data == "[DONE]" {
            return Ok(Event::Done);
        }
        let chunk: serde_json::Value =
            serde_json::from_str(data).context("an unreadable event in the answer")?;
        if let Some(e) = chunk.get("error") {
            bail!("the titan stopped: {e}");
        }
        if let Some(t) = chunk["choices"][0]["delta"]["content"].as_str() {
            text.push_str(t);
        }
    }
    Ok(if text.is_empty() {
        Event::Nothing
    } else {
        Event::Text(text)
    })
}
