//! The scout app at `/`: the files Trunk built into `dist/` (DESIGN.md §1: opening
//! the titan's page makes the browser a scout), or, when they were not built, a
//! page that says how to build them.

use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};

use super::AppState;

/// The page served at `/` when the titan has no built app.
const NOT_BUILT: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Shard titan</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto">
<h1>Shard titan</h1>
<p>This titan serves the OpenAI API at <code>/v1</code>, but it was started without the
scout app, so this page cannot draft for it.</p>
<p>Build the app and serve it with <code>cargo xtask demo</code>, or build it with
<code>cargo xtask app</code> and start the titan with <code>titan serve --app dist</code>.</p>
</body></html>
"#;

/// Answers paths outside the API from the app's directory; API paths that no
/// route matched get the API's JSON 404.
pub(super) async fn files(State(app): State<Arc<AppState>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    let api = path.starts_with("/v1/") || path == "/v1" || path == "/health" || path == "/metrics";
    if api || (method != Method::GET && method != Method::HEAD) {
        return super::routes::not_found().await;
    }
    let Some(dir) = &app.app_dir else {
        return if path == "/" || path == "/index.html" {
            Html(NOT_BUILT).into_response()
        } else {
            (StatusCode::NOT_FOUND, "not found").into_response()
        };
    };
    let Some(file) = resolve(dir, path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    match tokio::fs::read(&file).await {
        Ok(body) => {
            let mut response = body.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(content_type(&file)),
            );
            // Trunk puts a content hash in every file name but index.html's.
            let cache = if file.ends_with("index.html") {
                "no-cache"
            } else {
                "public, max-age=31536000, immutable"
            };
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
            response
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            (StatusCode::NOT_FOUND, "not found").into_response()
        }
        Err(e) => {
            tracing::warn!(file = %file.display(), "reading an app file: {e}");
            (StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file").into_response()
        }
    }
}

/// The file under `dir` that `path` names (`/` is `index.html`), or `None` for a
/// path that tries to leave `dir` or names something odd.
fn resolve(dir: &Path, path: &str) -> Option<PathBuf> {
    let relative = path.trim_start_matches('/');
    let relative = if relative.is_empty() {
        "index.html"
    } else {
        relative
    };
    let mut out = dir.to_path_buf();
    for component in Path::new(relative).components() {
        match component {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

fn content_type(file: &Path) -> &'static str {
    match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("wasm") => "application/wasm",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_app_directory() {
        let dir = Path::new("/srv/dist");
        assert_eq!(resolve(dir, "/"), Some(dir.join("index.html")));
        assert_eq!(resolve(dir, "/a.wasm"), Some(dir.join("a.wasm")));
        assert_eq!(resolve(dir, "/x/y.js"), Some(dir.join("x/y.js")));
        assert_eq!(resolve(dir, "/../etc/passwd"), None);
        assert_eq!(resolve(dir, "/x/../../etc"), None);
        assert_eq!(resolve(dir, "/./a"), Some(dir.join("a")));
    }

    #[test]
    fn wasm_is_served_as_wasm() {
        assert_eq!(content_type(Path::new("a_bg.wasm")), "application/wasm");
        assert_eq!(
            content_type(Path::new("index.html")),
            "text/html; charset=utf-8"
        );
    }
}
