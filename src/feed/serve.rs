//! `fraudwall feed serve`: a static file server for one feed directory, for labs and tests.
//!
//! A feed is only static files, so production feeds belong on any HTTP server, CDN or object
//! store (see `integration/nginx/` for nginx). This server exists so a lab needs nothing but
//! fraudwall. It serves the plain files of one directory and of its named lists'
//! subdirectories (`subscribers/`, `protected/`; see [`super::ListKind`]), nothing else: no
//! other subdirectory, no names starting with `.`, nothing but `[A-Za-z0-9._-]`, so no
//! traversal is possible. Files go out with a
//! strong `ETag` (blake3 of the content) and `304 Not Modified` for a matching
//! `If-None-Match`, which is what lets thousands of polling nodes cost almost nothing.
//!
//! Each request reads the file whole: fine for a lab, not a CDN.

use super::manifest::is_safe_name;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;

/// The router serving `dir` (mount it at `/`).
pub fn router(dir: PathBuf) -> Router {
    Router::new()
        .route("/{name}", get(serve_file))
        .route("/{list}/{name}", get(serve_list_file))
        .with_state(Arc::new(dir))
}

/// A file of a named list's subdirectory.
async fn serve_list_file(
    State(dir): State<Arc<PathBuf>>,
    UrlPath((list, name)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let known = super::ListKind::ALL
        .iter()
        .any(|k| k.feed_subdir() == Some(list.as_str()));
    if !known {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve_file(State(Arc::new(dir.join(list))), UrlPath(name), headers).await
}

/// Serves `dir` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    dir: PathBuf,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(dir))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn serve_file(
    State(dir): State<Arc<PathBuf>>,
    UrlPath(name): UrlPath<String>,
    headers: HeaderMap,
) -> Response {
    if !is_safe_name(&name) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let path = dir.join(&name);
    let bytes = match tokio::fs::read(&path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return StatusCode::NOT_FOUND.into_response()
        }
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "feed serve: cannot read file");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let etag = format!("\"{}\"", &blake3::hash(&bytes).to_hex()[..32]);
    let etag_value = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    if if_none_match_hits(&headers, &etag) {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response();
    }
    let content_type = if name.ends_with(".json") {
        "application/json"
    } else {
        "application/octet-stream"
    };
    (
        StatusCode::OK,
        [
            (header::ETAG, etag_value),
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        bytes,
    )
        .into_response()
}

/// Whether an `If-None-Match` header lists `etag` (or `*`).
fn if_none_match_hits(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_lists() {
        let mut h = HeaderMap::new();
        assert!(!if_none_match_hits(&h, "\"a\""));
        h.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"b\", W/\"a\""),
        );
        assert!(if_none_match_hits(&h, "\"a\""));
        assert!(!if_none_match_hits(&h, "\"c\""));
        h.insert(header::IF_NONE_MATCH, HeaderValue::from_static("*"));
        assert!(if_none_match_hits(&h, "\"c\""));
    }
}
