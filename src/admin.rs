//! The admin HTTP listener (axum on the runtime's tokio): `/metrics`, `/healthz`, `/status`.
//!
//! * `GET /metrics`: the Prometheus text exposition of [`crate::telemetry::Telemetry`].
//! * `GET /healthz`: `200 ok` while a blocklist snapshot is loaded and at least one next hop is
//!   believed up, else `503` with the reason (fraudwall still forwards then: fail open).
//! * `GET /status`: JSON ([`Status`]): version, uptime, listeners, next hops and their health,
//!   snapshot info.
//!
//! The listener should stay on loopback or a management network: it has no authentication.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;

use crate::telemetry::Telemetry;

/// One SIP listener.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ListenerStatus {
    /// `IP:PORT`.
    pub address: String,
    /// `udp` or `tcp`.
    pub transport: &'static str,
}

/// One next hop.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NextHopStatus {
    /// `IP:PORT`.
    pub address: String,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// False after recent send failures (the core skips it while others are up).
    pub healthy: bool,
}

/// The `/status` document.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// fraudwall's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_secs: u64,
    /// SIP listeners.
    pub listeners: Vec<ListenerStatus>,
    /// Next hops in failover order.
    pub next_hops: Vec<NextHopStatus>,
    /// The loaded snapshot (`null` when none is loaded); with a feed, its base.
    pub snapshot: Option<serde_json::Value>,
    /// The central feed: active version, source (cache, feed), age, deltas, last error
    /// (absent when no feed is configured).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feed: Option<serde_json::Value>,
}

/// What the admin endpoints ask the running proxy.
pub trait StatusSource: Send + Sync + 'static {
    /// The current status.
    fn status(&self) -> Status;
}

/// Shared state of the handlers.
#[derive(Clone)]
pub struct AdminState {
    /// The metrics.
    pub telemetry: Arc<Telemetry>,
    /// The proxy's status.
    pub source: Arc<dyn StatusSource>,
    /// What `POST /reload` does (poll the feed now, or re-read the snapshot file).
    pub reload: Option<Arc<dyn Fn() + Send + Sync>>,
}

/// The router (exposed for tests and embedding).
pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/reload", post(reload))
        .with_state(state)
}

/// Serves the admin endpoints on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics(State(s): State<AdminState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.telemetry.render(),
    )
        .into_response()
}

async fn healthz(State(s): State<AdminState>) -> Response {
    let st = s.source.status();
    if st.snapshot.is_none() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "no blocklist snapshot loaded (calls pass unscreened)\n",
        )
            .into_response();
    }
    if !st.next_hops.iter().any(|h| h.healthy) {
        return (StatusCode::SERVICE_UNAVAILABLE, "no next hop reachable\n").into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn status(State(s): State<AdminState>) -> Json<Status> {
    Json(s.source.status())
}

async fn reload(State(s): State<AdminState>) -> Response {
    match &s.reload {
        Some(reload) => {
            tracing::info!("POST /reload: reloading the blocklist");
            reload();
            (StatusCode::OK, "reload requested\n").into_response()
        }
        None => (StatusCode::NOT_FOUND, "no reloadable blocklist\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    struct Fixed(bool);
    impl StatusSource for Fixed {
        fn status(&self) -> Status {
            Status {
                version: "test",
                uptime_secs: 1,
                listeners: vec![ListenerStatus {
                    address: "127.0.0.1:5060".into(),
                    transport: "udp",
                }],
                next_hops: vec![NextHopStatus {
                    address: "127.0.0.1:5080".into(),
                    transport: "udp",
                    healthy: true,
                }],
                snapshot: self.0.then(|| serde_json::json!({"version": 4})),
                feed: None,
            }
        }
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        request(addr, "GET", path).await
    }

    async fn request(addr: std::net::SocketAddr, method: &str, path: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    #[tokio::test]
    async fn endpoints() {
        for loaded in [true, false] {
            let telemetry = Arc::new(Telemetry::new());
            telemetry.verdict(crate::blocklist::Action::Block, "police");
            let reloads = Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let counter = Arc::clone(&reloads);
            let state = AdminState {
                telemetry,
                source: Arc::new(Fixed(loaded)),
                reload: Some(Arc::new(move || {
                    counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                })),
            };
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = l.local_addr().unwrap();
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let server = tokio::spawn(serve(l, state, async {
                let _ = rx.await;
            }));
            let m = get(addr, "/metrics").await;
            assert!(m.starts_with("HTTP/1.1 200"), "{m}");
            assert!(
                m.contains("fraudwall_verdicts_total{action=\"block\",category=\"police\"} 1"),
                "{m}"
            );
            let h = get(addr, "/healthz").await;
            assert!(
                h.starts_with(if loaded {
                    "HTTP/1.1 200"
                } else {
                    "HTTP/1.1 503"
                }),
                "{h}"
            );
            let s = get(addr, "/status").await;
            let body = s.split("\r\n\r\n").nth(1).unwrap();
            let v: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(v["listeners"][0]["transport"], "udp");
            assert_eq!(v["next_hops"][0]["healthy"], true);
            assert_eq!(v["snapshot"].is_null(), !loaded);
            assert!(v.get("feed").is_none(), "no feed configured: no feed field");
            let r = request(addr, "POST", "/reload").await;
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
            assert_eq!(reloads.load(std::sync::atomic::Ordering::SeqCst), 1);
            let _ = tx.send(());
            server.await.unwrap().unwrap();
        }
    }
}
