//! SIP over TLS (RFC 3261 §26, RFC 5630) with rustls: the `[tls]` config section, the server
//! side (certificate reloaded on change, optional client certificates, peer identity), the client
//! side towards next hops (server-name verification), and classified handshake failures.
//!
//! This module does not own sockets or framing. A transport hands it a connected byte stream
//! (a `tokio::net::TcpStream` in production) and gets back a TLS stream that is again
//! `AsyncRead + AsyncWrite + Unpin + Send`, which the stream-connection loop shared with TCP
//! reads SIP messages from:
//!
//! ```text
//! let tls = TlsServer::new(&config.tls, TlsMetrics::register(telemetry.recorder()))?;
//! // in the connection's own task, after the TCP accept (connection limit already applied):
//! let accepted = tls.accept(tcp_stream).await?;       // handshake, with tls.handshake_timeout
//! let trusted = accepted.peer.trusted;                  // believe P-Asserted-Identity?
//! stream_loop(accepted.stream, Transport::Tls, ...).await;
//! // towards a next hop:
//! let client = TlsClient::new(&config.tls, Some(tls.certs()), metrics)?;
//! let stream = client.connect(tcp_stream, "core.carrier.example").await?;
//! // from the runtime's once-a-second timer:
//! tls.reload_if_changed();
//! ```
//!
//! Each handshake is awaited inside the connection's own task, so a slow or silent client holds
//! only its task, never the accept loop; [`TlsServer::accept`] bounds it by
//! `tls.handshake_timeout`.
//!
//! Renegotiation: rustls never renegotiates. TLS 1.3 has none. On TLS 1.2 rustls alone would
//! answer a client's renegotiation ClientHello with a `no_renegotiation` warning and carry on;
//! fraudwall closes the connection instead: [`RecordWatch`], under the server session, follows
//! the record headers and fails the next read with [`RenegotiationAttempt`] when a handshake
//! record arrives after the handshake, counted as
//! `fraudwall_tls_handshake_failures_total{side="inbound",reason="renegotiation"}`. A rustls
//! client answers a server's HelloRequest with the warning and never renegotiates either.
//! `tests/tls_module.rs` checks it against `openssl s_client`'s renegotiation.

mod certs;
mod config;
mod handshake;
mod identity;
mod layer;
mod record_watch;

pub use self::certs::{TlsCertStore, TlsReload};
pub use self::config::{TlsConfig, TlsConfigError, TlsVersion};
pub use self::handshake::{
    server_name, HandshakeFailure, TlsAcceptError, TlsAccepted, TlsClient, TlsConnectError,
    TlsMetrics, TlsServer, TlsSide,
};
pub use self::identity::{certificate_identity, PeerIdentity};
pub use self::layer::{TlsLayer, TlsSipStream};
pub use self::record_watch::{RecordWatch, RenegotiationAttempt};
