//! Small bridges from JavaScript promises and values to Rust results.

use js_sys::{Promise, Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// A JavaScript failure as an error with its message.
pub(crate) fn error(context: &str, e: &JsValue) -> anyhow::Error {
    let message = e
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| e.as_string())
        .unwrap_or_else(|| format!("{e:?}"));
    anyhow::anyhow!("{context}: {message}")
}

/// Awaits a promise, naming what failed.
pub(crate) async fn wait(promise: Promise, context: &str) -> anyhow::Result<JsValue> {
    JsFuture::from(promise)
        .await
        .map_err(|e| error(context, &e))
}

pub(crate) fn window() -> anyhow::Result<web_sys::Window> {
    web_sys::window().ok_or_else(|| anyhow::anyhow!("no window (is this a worker?)"))
}

/// Milliseconds since the page loaded.
pub(crate) fn now_ms() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}

/// A field of a JavaScript object.
pub(crate) fn field(object: &JsValue, name: &str) -> JsValue {
    Reflect::get(object, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

/// The bytes of an `ArrayBuffer` or typed array.
pub(crate) fn bytes(buffer: &JsValue) -> Vec<u8> {
    Uint8Array::new(buffer).to_vec()
}

/// A line in the browser's console.
pub(crate) fn log(message: &str) {
    web_sys::console::log_1(&JsValue::from_str(message));
}

/// A GET whose answer must be 2xx, as text.
pub(crate) async fn get_text(url: &str) -> anyhow::Result<String> {
    let response = fetch_ok(url).await?;
    let promise = response
        .text()
        .map_err(|e| error(&format!("reading {url}"), &e))?;
    Ok(wait(promise, &format!("reading {url}"))
        .await?
        .as_string()
        .unwrap_or_default())
}

/// A GET whose answer must be 2xx.
pub(crate) async fn fetch_ok(url: &str) -> anyhow::Result<web_sys::Response> {
    let promise = window()?.fetch_with_str(url);
    let response: web_sys::Response = wait(promise, &format!("fetching {url}"))
        .await?
        .dyn_into()
        .map_err(|e| error("not a Response", &e))?;
    if !response.ok() {
        anyhow::bail!("fetching {url}: HTTP {}", response.status());
    }
    Ok(response)
}
