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

/// The value of `name` in the page's query string (`?engine=cpu`), if it is there.
pub(crate) fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    search
        .trim_start_matches('?')
        .split('&')
        .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
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

/// What the browser tells of its WebGPU adapter (`GPUAdapterInfo`), which wgpu's web
/// backend does not pass on: it reports every browser adapter as `DeviceType::Other`
/// with only the (often empty) description as its name.
#[derive(Clone, Debug, Default)]
pub(crate) struct WebAdapterInfo {
    pub(crate) vendor: String,
    pub(crate) architecture: String,
    pub(crate) description: String,
    /// `GPUAdapterInfo.isFallbackAdapter`: the browser's software rasterizer.
    pub(crate) fallback: bool,
}

impl WebAdapterInfo {
    /// Whether the adapter runs on the CPU (Chrome's SwiftShader, or any adapter the
    /// browser marks as its fallback).
    pub(crate) fn is_software(&self) -> bool {
        self.fallback
            || self.architecture.eq_ignore_ascii_case("swiftshader")
            || self
                .description
                .to_ascii_lowercase()
                .contains("swiftshader")
    }

    /// A name to show: the description, else vendor and architecture.
    pub(crate) fn label(&self) -> Option<String> {
        if !self.description.is_empty() {
            return Some(self.description.clone());
        }
        let parts: Vec<&str> = [self.vendor.as_str(), self.architecture.as_str()]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }
}

/// Asks `navigator.gpu` for the default adapter and reads its `info`; `None` when the
/// browser has no WebGPU or no adapter.
pub(crate) async fn web_adapter_info() -> Option<WebAdapterInfo> {
    let gpu = field(&window().ok()?.navigator().into(), "gpu");
    if gpu.is_undefined() || gpu.is_null() {
        return None;
    }
    let request: js_sys::Function = field(&gpu, "requestAdapter").dyn_into().ok()?;
    let promise: Promise = request.call0(&gpu).ok()?.dyn_into().ok()?;
    let adapter = wait(promise, "requesting a WebGPU adapter").await.ok()?;
    if adapter.is_null() || adapter.is_undefined() {
        return None;
    }
    let info = field(&adapter, "info");
    let text = |name: &str| field(&info, name).as_string().unwrap_or_default();
    // Older Chromes kept the flag on the adapter, newer ones on its info.
    let fallback = field(&info, "isFallbackAdapter").as_bool().unwrap_or(false)
        || field(&adapter, "isFallbackAdapter")
            .as_bool()
            .unwrap_or(false);
    Some(WebAdapterInfo {
        vendor: text("vendor"),
        architecture: text("architecture"),
        description: text("description"),
        fallback,
    })
}
