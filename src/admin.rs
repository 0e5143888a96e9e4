//! The admin HTTP listener (axum on the runtime's tokio): `/metrics`, `/healthz`, `/status`,
//! `/reload`.
//!
//! Read-only endpoints, open to anyone who reaches the listener:
//!
//! * `GET /metrics`: the Prometheus text exposition of [`crate::telemetry::Telemetry`].
//! * `GET /healthz`: `200 ok` while a blocklist snapshot is loaded and at least one next hop is
//!   believed up, else `503` with the reason (fraudwall still forwards then: fail open).
//! * `GET /status`: JSON ([`Status`]): version, uptime, listeners, next hops and their health,
//!   snapshot info.
//! * `GET /suspects`: JSON ([`crate::behaviour::SuspectsDocument`]): the callers a behavioural
//!   detection rule held on within `detection.suspect_retention` (number, rule, category,
//!   action, score, features, first and last seen, first and last flagged); `404` when
//!   `[detection]` is off. `fraudwall suspects --admin ADDR --csv` turns it into blocklist
//!   rows for review.
//!
//! State-changing endpoints (`POST /reload`: poll the feed now and re-read the list files):
//! every one sits behind one guard, which refuses, in this order,
//!
//! 1. any method but `POST`: `405` (`method_not_allowed`);
//! 2. a browser's cross-origin request: any `Origin` header, or `Sec-Fetch-Site` other than
//!    `none`: `403` (`cross_origin`). Browsers send `Origin` with every `POST`, so a page on
//!    another site cannot make an operator's browser reload the list, token or not; operators'
//!    tools (`curl`, scripts) send neither header;
//! 3. no `admin.tokens_file` configured: `403` (`no_tokens_file`). Secure by default: until
//!    an operator sets up tokens, nothing can change state over HTTP (`SIGHUP` still reloads);
//! 4. no `Authorization: Bearer <token>`: `401` with `WWW-Authenticate: Bearer`
//!    (`missing_token`); a token not in the file: `401` (`invalid_token`); a tokens file that
//!    became unreadable or malformed: `503` (`tokens_file_error`) until it is fixed.
//!
//! Each refusal is counted in `fraudwall_admin_refused_total{reason}` ([`AdminRefusal`]) and
//! logged without the token. The tokens file's format and rotation: [`tokens`].
//!
//! ```text
//! curl -X POST -H "Authorization: Bearer $(head -1 /etc/fraudwall/admin.tokens)" \
//!     http://127.0.0.1:9060/reload
//! ```
//!
//! Keep the listener on loopback or a management network all the same: the read-only
//! endpoints show the network's layout (listeners, next hops).

pub mod tokens;

/// `[admin]`: the admin HTTP listener.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdminConfig {
    /// Where it listens (`None`, written `""`: off).
    #[serde(with = "crate::config::value::opt_socket_addr")]
    pub listen: Option<std::net::SocketAddr>,
    /// Bearer tokens for the state-changing endpoints (`None`, written `""`: those endpoints
    /// are refused). See [`tokens`].
    #[serde(with = "crate::config::value::empty_none")]
    pub tokens_file: Option<std::path::PathBuf>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9060))),
            tokens_file: None,
        }
    }
}

impl AdminConfig {
    /// Checks that a configured tokens file holds at least one well-formed token (the error
    /// never quotes a token).
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        if let Some(path) = &self.tokens_file {
            tokens::read_tokens(path).map_err(|e| crate::config::ConfigError::Invalid {
                key: "admin.tokens_file".into(),
                reason: e.to_string(),
            })?;
        }
        Ok(())
    }
}

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use axum::{Json, Router};
use serde::Serialize;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use crate::telemetry::Telemetry;
use tokens::{TokenFile, TokenRefusal};

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
    /// The other lists taken from the feed (`feed.lists`: subscribers, protected), each as
    /// `feed` shows the blocklist, with its `list` name (absent when there are none).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub feed_lists: Vec<serde_json::Value>,
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
    /// What `POST /reload` does (poll the feed now and re-read the list files); it only asks,
    /// and returns at once.
    pub reload: Option<Arc<dyn Fn() + Send + Sync>>,
    /// The bearer tokens of `admin.tokens_file` (`None`: not configured, so every
    /// state-changing request is refused).
    pub tokens: Option<Arc<TokenFile>>,
    /// The behavioural detector `/suspects` lists (`None`: detection off, `404`).
    pub detector: Option<Arc<crate::detection::Detector>>,
}

/// Why a request to a state-changing endpoint was refused: the `reason` label of
/// `fraudwall_admin_refused_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminRefusal {
    /// Not a `POST`.
    MethodNotAllowed = 0,
    /// A browser's cross-origin request (`Origin`, or `Sec-Fetch-Site` other than `none`).
    CrossOrigin = 1,
    /// `admin.tokens_file` is not configured.
    NoTokensFile = 2,
    /// No `Authorization: Bearer` token.
    MissingToken = 3,
    /// A token that is not in the file.
    InvalidToken = 4,
    /// The tokens file became unreadable or malformed.
    TokensFileError = 5,
}

impl AdminRefusal {
    /// Every reason, in discriminant order.
    pub const ALL: [AdminRefusal; 6] = [
        AdminRefusal::MethodNotAllowed,
        AdminRefusal::CrossOrigin,
        AdminRefusal::NoTokensFile,
        AdminRefusal::MissingToken,
        AdminRefusal::InvalidToken,
        AdminRefusal::TokensFileError,
    ];

    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRefusal::MethodNotAllowed => "method_not_allowed",
            AdminRefusal::CrossOrigin => "cross_origin",
            AdminRefusal::NoTokensFile => "no_tokens_file",
            AdminRefusal::MissingToken => "missing_token",
            AdminRefusal::InvalidToken => "invalid_token",
            AdminRefusal::TokensFileError => "tokens_file_error",
        }
    }

    fn response(self) -> Response {
        const CHALLENGE: &str = "Bearer realm=\"fraudwall-admin\"";
        match self {
            AdminRefusal::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                [(header::ALLOW, "POST")],
                "state-changing endpoints accept POST only\n",
            )
                .into_response(),
            AdminRefusal::CrossOrigin => (
                StatusCode::FORBIDDEN,
                "cross-origin requests are refused: call state-changing endpoints from a tool \
                 (curl, a script) without an Origin header, not from a browser\n",
            )
                .into_response(),
            AdminRefusal::NoTokensFile => (
                StatusCode::FORBIDDEN,
                "state-changing admin endpoints are off: set admin.tokens_file to a file of \
                 bearer tokens (one per line) and send Authorization: Bearer <token>\n",
            )
                .into_response(),
            AdminRefusal::MissingToken => (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, CHALLENGE)],
                "send Authorization: Bearer <token>, a token from admin.tokens_file\n",
            )
                .into_response(),
            AdminRefusal::InvalidToken => (
                StatusCode::UNAUTHORIZED,
                [(
                    header::WWW_AUTHENTICATE,
                    "Bearer realm=\"fraudwall-admin\", error=\"invalid_token\"",
                )],
                "token not accepted: it is not in admin.tokens_file\n",
            )
                .into_response(),
            AdminRefusal::TokensFileError => (
                StatusCode::SERVICE_UNAVAILABLE,
                "the admin tokens file is unreadable or malformed (see the log); nothing is \
                 accepted until it is fixed\n",
            )
                .into_response(),
        }
    }
}

/// The router (exposed for tests and embedding). Every route of `changes` goes through
/// [`guard`]; add new state-changing endpoints there.
pub fn router(state: AdminState) -> Router {
    let changes = Router::new()
        .route("/reload", any(reload))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/status", get(status))
        .route("/suspects", get(suspects))
        .merge(changes)
        .with_state(state)
}

/// The gate of every state-changing endpoint (see the module docs for the order of checks).
async fn guard(State(s): State<AdminState>, req: Request, next: Next) -> Response {
    match authorize(
        s.tokens.as_deref(),
        req.method(),
        req.headers(),
        Instant::now(),
    ) {
        Ok(()) => next.run(req).await,
        Err(r) => {
            s.telemetry.admin_refused(r);
            tracing::warn!(
                "admin {} {} refused: {}",
                req.method(),
                req.uri().path(),
                r.as_str()
            );
            r.response()
        }
    }
}

/// Decides whether a state-changing request may proceed.
pub fn authorize(
    tokens: Option<&TokenFile>,
    method: &Method,
    headers: &HeaderMap,
    now: Instant,
) -> Result<(), AdminRefusal> {
    if method != Method::POST {
        return Err(AdminRefusal::MethodNotAllowed);
    }
    let fetch_site = headers.get_all("sec-fetch-site");
    if headers.contains_key(header::ORIGIN) || fetch_site.iter().any(|v| v.as_bytes() != b"none") {
        return Err(AdminRefusal::CrossOrigin);
    }
    let Some(tokens) = tokens else {
        return Err(AdminRefusal::NoTokensFile);
    };
    let mut auth = headers.get_all(header::AUTHORIZATION).iter();
    let presented = match (auth.next(), auth.next()) {
        (None, _) => b"".as_slice(),
        (Some(_), Some(_)) => return Err(AdminRefusal::InvalidToken),
        (Some(v), None) => bearer(v.as_bytes()),
    };
    tokens.check(presented, now).map_err(|r| match r {
        TokenRefusal::Missing => AdminRefusal::MissingToken,
        TokenRefusal::Invalid => AdminRefusal::InvalidToken,
        TokenRefusal::FileError => AdminRefusal::TokensFileError,
    })
}

/// The token of an `Authorization: Bearer <token>` value; empty for any other scheme.
pub(crate) fn bearer(value: &[u8]) -> &[u8] {
    match value.iter().position(|&b| b == b' ') {
        Some(i) if value[..i].eq_ignore_ascii_case(b"bearer") => value[i..].trim_ascii(),
        _ => b"",
    }
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
    // No next hop at all is redirect mode (the proxy always has one): nothing to reach.
    if !st.next_hops.is_empty() && !st.next_hops.iter().any(|h| h.healthy) {
        return (StatusCode::SERVICE_UNAVAILABLE, "no next hop reachable\n").into_response();
    }
    (StatusCode::OK, "ok\n").into_response()
}

async fn status(State(s): State<AdminState>) -> Json<Status> {
    Json(s.source.status())
}

async fn suspects(State(s): State<AdminState>) -> Response {
    let Some(d) = &s.detector else {
        return (
            StatusCode::NOT_FOUND,
            "behavioural detection is off: set [detection] enabled = true\n",
        )
            .into_response();
    };
    let now = Instant::now();
    let doc =
        crate::behaviour::SuspectsDocument::new(d.suspects(now), std::time::SystemTime::now());
    Json(doc).into_response()
}

async fn reload(State(s): State<AdminState>) -> Response {
    match &s.reload {
        Some(reload) => {
            tracing::info!("POST /reload: polling the feed and the list files now");
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
                feed_lists: Vec::new(),
            }
        }
    }

    async fn get(addr: std::net::SocketAddr, path: &str) -> String {
        request(addr, "GET", path, "").await
    }

    async fn request(
        addr: std::net::SocketAddr,
        method: &str,
        path: &str,
        headers: &str,
    ) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(
            format!("{method} {path} HTTP/1.1\r\nHost: x\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }

    const TOKEN: &str = "0123456789abcdef0123456789abcdef";

    fn token_file(dir: &std::path::Path) -> Arc<TokenFile> {
        let path = dir.join("tokens");
        std::fs::write(&path, format!("# test\n{TOKEN}\n")).unwrap();
        Arc::new(TokenFile::open(&path, Instant::now()).unwrap())
    }

    #[test]
    fn authorize_checks_method_origin_configuration_then_token() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = token_file(dir.path());
        let now = Instant::now();
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.append(*k, v.parse().unwrap());
            }
            m
        };
        let good = format!("Bearer {TOKEN}");
        type Case<'a> = (
            Option<&'a TokenFile>,
            Method,
            HeaderMap,
            Result<(), AdminRefusal>,
        );
        let cases: Vec<Case> = vec![
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", &good)]),
                Ok(()),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", &format!("bearer   {TOKEN} "))]),
                Ok(()),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", &good), ("sec-fetch-site", "none")]),
                Ok(()),
            ),
            (
                Some(&tokens),
                Method::GET,
                h(&[("authorization", &good)]),
                Err(AdminRefusal::MethodNotAllowed),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", &good), ("origin", "http://evil.example")]),
                Err(AdminRefusal::CrossOrigin),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", &good), ("origin", "null")]),
                Err(AdminRefusal::CrossOrigin),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", &good), ("sec-fetch-site", "cross-site")]),
                Err(AdminRefusal::CrossOrigin),
            ),
            (
                None,
                Method::POST,
                h(&[("authorization", &good)]),
                Err(AdminRefusal::NoTokensFile),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[]),
                Err(AdminRefusal::MissingToken),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", &format!("Basic {TOKEN}"))]),
                Err(AdminRefusal::MissingToken),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", "Bearer ")]),
                Err(AdminRefusal::MissingToken),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", "Bearer 0123456789abcdef0123456789abcdee")]),
                Err(AdminRefusal::InvalidToken),
            ),
            (
                Some(&tokens),
                Method::POST,
                h(&[("authorization", &good), ("authorization", "Bearer x")]),
                Err(AdminRefusal::InvalidToken),
            ),
        ];
        for (i, (t, m, headers, want)) in cases.into_iter().enumerate() {
            assert_eq!(authorize(t, &m, &headers, now), want, "case {i}");
        }
        for (i, r) in AdminRefusal::ALL.into_iter().enumerate() {
            assert_eq!(r as usize, i, "{} out of order", r.as_str());
        }
    }

    #[tokio::test]
    async fn endpoints() {
        let dir = tempfile::tempdir().unwrap();
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
                tokens: Some(token_file(dir.path())),
                detector: None,
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
            let off = get(addr, "/suspects").await;
            assert!(off.starts_with("HTTP/1.1 404"), "{off}");
            assert!(off.contains("[detection] enabled = true"), "{off}");
            let r = request(addr, "POST", "/reload", "").await;
            assert!(r.starts_with("HTTP/1.1 401"), "{r}");
            assert!(
                r.to_ascii_lowercase()
                    .contains("www-authenticate: bearer realm=\"fraudwall-admin\""),
                "{r}"
            );
            let r = request(addr, "GET", "/reload", "").await;
            assert!(r.starts_with("HTTP/1.1 405"), "{r}");
            let auth = format!("Authorization: Bearer {TOKEN}\r\n");
            let r = request(
                addr,
                "POST",
                "/reload",
                &format!("{auth}Origin: http://evil.example\r\nContent-Type: text/plain\r\n"),
            )
            .await;
            assert!(r.starts_with("HTTP/1.1 403"), "{r}");
            assert_eq!(reloads.load(std::sync::atomic::Ordering::SeqCst), 0);
            let r = request(addr, "POST", "/reload", &auth).await;
            assert!(r.starts_with("HTTP/1.1 200"), "{r}");
            assert_eq!(reloads.load(std::sync::atomic::Ordering::SeqCst), 1);
            let m = get(addr, "/metrics").await;
            for (reason, n) in [
                ("missing_token", 1),
                ("method_not_allowed", 1),
                ("cross_origin", 1),
                ("invalid_token", 0),
            ] {
                let series = format!("fraudwall_admin_refused_total{{reason=\"{reason}\"}} {n}\n");
                assert!(m.contains(&series), "{series} in {m}");
            }
            let _ = tx.send(());
            server.await.unwrap().unwrap();
        }
    }
}
