//! The draft model file scouts download (`GET /v1/scout/model`): memory-mapped,
//! its sha256 computed once at start and published in `/v1/models`, served with
//! single-range requests so a browser can resume a broken download.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::AppState;

/// Where scouts fetch the file.
pub const SCOUT_MODEL_PATH: &str = "/v1/scout/model";

/// The file a titan offers its scouts to draft with.
pub struct ScoutModel {
    pub path: PathBuf,
    pub sha256: String,
    bytes: Bytes,
}

impl std::fmt::Debug for ScoutModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScoutModel")
            .field("path", &self.path)
            .field("sha256", &self.sha256)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl ScoutModel {
    /// Maps the file and hashes it.
    pub fn open(path: &Path) -> Result<Self> {
        let file = std::fs::File::open(path)
            .with_context(|| format!("opening the scout model {}", path.display()))?;
        // SAFETY: the map is read-only; a model file changed underneath a running
        // titan is outside what it promises (the CPU engine maps it the same way).
        let map = unsafe { memmap2::Mmap::map(&file) }
            .with_context(|| format!("mapping the scout model {}", path.display()))?;
        let sha256 = hex(&Sha256::digest(&map[..]));
        Ok(Self {
            path: path.to_path_buf(),
            sha256,
            bytes: Bytes::from_owner(map),
        })
    }

    pub fn len(&self) -> u64 {
        self.bytes.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Its entry in `/v1/models`.
    pub fn offer(&self) -> serde_json::Value {
        serde_json::json!({
            "url": SCOUT_MODEL_PATH,
            "sha256": self.sha256,
            "bytes": self.len(),
            "file": self.path.file_name().map(|n| n.to_string_lossy().into_owned()),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) async fn download(State(app): State<Arc<AppState>>, headers: HeaderMap) -> Response {
    let Some(model) = &app.scout_model else {
        return super::routes::not_found().await;
    };
    let len = model.len();
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .map(|v| parse_range(v, len));
    let etag = HeaderValue::from_str(&format!("\"{}\"", model.sha256))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let (status, body, content_range) = match range {
        None | Some(Range::Ignored) => (StatusCode::OK, model.bytes.clone(), None),
        Some(Range::Bytes(start, end)) => (
            StatusCode::PARTIAL_CONTENT,
            model.bytes.slice(start as usize..=end as usize),
            Some(format!("bytes {start}-{end}/{len}")),
        ),
        Some(Range::Unsatisfiable) => {
            let mut r = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                r.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return r;
        }
    };
    let mut response = (status, Body::from(body)).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::ETAG, etag);
    if let Some(v) = content_range.and_then(|v| HeaderValue::from_str(&v).ok()) {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

/// A `Range` header against a body of `len` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Range {
    /// Inclusive byte positions.
    Bytes(u64, u64),
    /// Syntactically a byte range, but outside the body: 416.
    Unsatisfiable,
    /// Not a single byte range (several ranges, another unit, garbage): the
    /// whole body, as RFC 9110 allows.
    Ignored,
}

fn parse_range(value: &str, len: u64) -> Range {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Range::Ignored;
    };
    if spec.contains(',') {
        return Range::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Range::Ignored;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| s.parse::<u64>().ok();
    match (first.is_empty(), last.is_empty()) {
        // bytes=-N: the last N bytes.
        (true, false) => match number(last) {
            Some(0) => Range::Unsatisfiable,
            Some(n) if len > 0 => Range::Bytes(len.saturating_sub(n), len - 1),
            Some(_) => Range::Unsatisfiable,
            None => Range::Ignored,
        },
        (false, _) => {
            let Some(start) = number(first) else {
                return Range::Ignored;
            };
            let end = if last.is_empty() {
                Some(u64::MAX)
            } else {
                number(last)
            };
            match end {
                None => Range::Ignored,
                Some(end) if end < start => Range::Ignored,
                Some(_) if start >= len => Range::Unsatisfiable,
                Some(end) => Range::Bytes(start, end.min(len - 1)),
            }
        }
        (true, true) => Range::Ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_ranges_follow_rfc_9110() {
        assert_eq!(parse_range("bytes=0-9", 100), Range::Bytes(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=90-1000", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Range::Bytes(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Range::Bytes(0, 99));
        assert_eq!(parse_range("bytes=100-", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Range::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-2", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Range::Ignored);
        assert_eq!(parse_range("items=0-1", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=x-1", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=-", 100), Range::Ignored);
        assert_eq!(parse_range("bytes=0-", 0), Range::Unsatisfiable);
    }
}
