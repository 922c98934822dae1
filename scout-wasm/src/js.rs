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
