//! The draft model file: where the titan offers it (`GET /v1/models`), its
//! download with progress, its sha256 check, and the browser's Cache Storage
//! copy that spares a reload the ~98 MB.

use anyhow::{Context, Result, bail};
use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use web_sys::{Cache, ReadableStreamDefaultReader, Response};

use crate::js;

/// The Cache Storage bucket the scout keeps model files in.
const CACHE_NAME: &str = "shard-models-v1";

/// The draft model a titan offers to scouts (its `/v1/models` entry's
/// `scout_model`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
pub(crate) struct ModelOffer {
    /// The model id the titan serves (what its scouts pull work for).
    #[serde(skip)]
    pub(crate) model_id: String,
    pub(crate) url: String,
    pub(crate) sha256: String,
    pub(crate) bytes: u64,
}

#[derive(serde::Deserialize)]
struct Models {
    data: Vec<ModelEntry>,
}

#[derive(serde::Deserialize)]
struct ModelEntry {
    id: String,
    scout_model: Option<ModelOffer>,
}

/// Where the model came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Source {
    BrowserCache,
    Download,
}

/// Asks the titan that served the page which draft model its scouts use.
pub(crate) async fn offer() -> Result<ModelOffer> {
    let text = js::get_text("/v1/models").await?;
    let models: Models = serde_json::from_str(&text).context("parsing /v1/models")?;
    let entry = models
        .data
        .into_iter()
        .find(|m| m.scout_model.is_some())
        .context("the titan offers no draft model to scouts (no scout_model in /v1/models)")?;
    let mut offer = entry.scout_model.context("no scout_model")?;
    offer.model_id = entry.id;
    if offer.sha256.len() != 64 || !offer.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the titan's sha256 for the draft model is not 64 hex digits");
    }
    Ok(offer)
}

/// The model file's bytes, from the browser's cache when it holds a copy with the
/// right sha256, else downloaded (`progress(received, total)` as bytes arrive),
/// checked, and cached.
pub(crate) async fn load(
    offer: &ModelOffer,
    progress: impl Fn(u64, u64),
) -> Result<(Vec<u8>, Source)> {
    let key = cache_key(offer)?;
    let cache = open_cache().await;
    if let Some(cache) = &cache
        && let Some(bytes) = cached(cache, &key).await
    {
        if sha256_hex(&bytes).await? == offer.sha256 {
            progress(bytes.len() as u64, offer.bytes);
            return Ok((bytes, Source::BrowserCache));
        }
        js::log("the cached model's sha256 differs; downloading it again");
        let _ = cache.delete_with_str(&key);
    }
    let bytes = download(&offer.url, offer.bytes, &progress).await?;
    let got = sha256_hex(&bytes).await?;
    if got != offer.sha256 {
        bail!(
            "the downloaded model's sha256 is {got}, the titan says {}; refusing it",
            offer.sha256
        );
    }
    if let Some(cache) = &cache
        && let Err(e) = store(cache, &key, &bytes).await
    {
        js::log(&format!(
            "could not keep the model in the browser cache: {e}"
        ));
    }
    Ok((bytes, Source::Download))
}

/// The cache entry of a model: its URL with the sha256, so a titan that
/// changes its model never gets the old file back.
fn cache_key(offer: &ModelOffer) -> Result<String> {
    let origin = js::window()?
        .location()
        .origin()
        .map_err(|e| js::error("reading the page's origin", &e))?;
    Ok(format!("{origin}{}?sha256={}", offer.url, offer.sha256))
}

/// Cache Storage, where the browser offers it (secure contexts: localhost or HTTPS).
async fn open_cache() -> Option<Cache> {
    let caches = js::window().ok()?.caches().ok()?;
    js::wait(caches.open(CACHE_NAME), "opening the model cache")
        .await
        .ok()?
        .dyn_into()
        .ok()
}

async fn cached(cache: &Cache, key: &str) -> Option<Vec<u8>> {
    let hit = js::wait(cache.match_with_str(key), "reading the model cache")
        .await
        .ok()?;
    let response: Response = hit.dyn_into().ok()?;
    let buffer = js::wait(response.array_buffer().ok()?, "reading the cached model")
        .await
        .ok()?;
    Some(js::bytes(&buffer))
}

async fn store(cache: &Cache, key: &str, bytes: &[u8]) -> Result<()> {
    let body = Uint8Array::from(bytes);
    let response = Response::new_with_opt_buffer_source(Some(&body))
        .map_err(|e| js::error("making the cache entry", &e))?;
    js::wait(
        cache.put_with_str(key, &response),
        "writing the model cache",
    )
    .await?;
    Ok(())
}

/// Streams `url`'s body, reporting progress against `expected` bytes.
async fn download(url: &str, expected: u64, progress: &impl Fn(u64, u64)) -> Result<Vec<u8>> {
    let response = js::fetch_ok(url).await?;
    let body = response
        .body()
        .with_context(|| format!("{url} has no body"))?;
    let reader: ReadableStreamDefaultReader = body
        .get_reader()
        .dyn_into()
        .map_err(|e| js::error("not a stream reader", &e))?;
    let capacity = usize::try_from(expected).unwrap_or(0).min(1 << 30);
    let mut bytes = Vec::with_capacity(capacity);
    loop {
        let chunk = js::wait(reader.read(), &format!("downloading {url}")).await?;
        if js::field(&chunk, "done").as_bool().unwrap_or(true) {
            break;
        }
        let value: Uint8Array = js::field(&chunk, "value")
            .dyn_into()
            .map_err(|e| js::error("a download chunk", &e))?;
        let start = bytes.len();
        bytes.resize(start + value.length() as usize, 0);
        value.copy_to(&mut bytes[start..]);
        progress(bytes.len() as u64, expected);
        if bytes.len() as u64 > expected {
            bail!("{url} is longer than the {expected} bytes the titan announced");
        }
    }
    if bytes.len() as u64 != expected {
        bail!("{url} ended after {} of {expected} bytes", bytes.len());
    }
    Ok(bytes)
}

/// The file's sha256 as lowercase hex, by the browser's own SubtleCrypto.
async fn sha256_hex(bytes: &[u8]) -> Result<String> {
    let subtle = js::window()?
        .crypto()
        .map_err(|e| js::error("no crypto", &e))?
        .subtle();
    let data = Uint8Array::from(bytes);
    let promise = subtle
        .digest_with_str_and_buffer_source("SHA-256", &data)
        .map_err(|e| js::error("sha256", &e))?;
    let digest = js::bytes(&js::wait(promise, "sha256").await?);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}
