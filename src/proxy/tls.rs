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
//! Renegotiation: rustls never renegotiates. TLS 1.3 has none. On TLS 1.2 a rustls server
//! answers a client's renegotiation ClientHello with a `no_renegotiation` warning alert
//! (RFC 5246 §7.2.2; tokio-rustls sends it with the next write or flush) and carries on with
//! the session it has, and a second attempt on the same connection is a fatal error
//! (`PeerMisbehaved::TooManyRenegotiationRequests`): a read error that ends the connection.
//! A rustls client treats a server's HelloRequest the same way. `tests/tls_module.rs` checks
//! against `openssl s_client` that no second handshake happens.

mod certs;
mod config;
mod handshake;
mod identity;

pub use self::certs::{TlsCertStore, TlsReload};
pub use self::config::{TlsConfig, TlsConfigError, TlsVersion, DEFAULT_TOML};
pub use self::handshake::{
    server_name, HandshakeFailure, TlsAcceptError, TlsAccepted, TlsClient, TlsConnectError,
    TlsMetrics, TlsServer, TlsSide,
};
pub use self::identity::{certificate_identity, PeerIdentity};
