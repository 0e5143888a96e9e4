//! The server and client TLS contexts, the handshakes, and their failures by reason.

use metrics::{Counter, Key, Label, Metadata, Recorder};
use rustls::client::ResolvesClientCert;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, RootCertStore, ServerConfig, SignatureScheme};
use rustls_pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::{client, server, TlsAcceptor, TlsConnector};

use super::certs::{load_roots, provider, TlsCertStore, TlsReload};
use super::config::{TlsConfig, TlsConfigError};
use super::identity::PeerIdentity;
use super::record_watch::{RecordWatch, RenegotiationAttempt};

/// Which end of the handshake fraudwall was (the `side` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsSide {
    /// We accepted the connection (a client in front of us).
    Inbound = 0,
    /// We connected to a next hop.
    Outbound = 1,
}

impl TlsSide {
    /// Both sides, in index order.
    pub const ALL: [TlsSide; 2] = [TlsSide::Inbound, TlsSide::Outbound];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            TlsSide::Inbound => "inbound",
            TlsSide::Outbound => "outbound",
        }
    }
}

/// Why a handshake failed (the `reason` label of `fraudwall_tls_handshake_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// Not finished within `tls.handshake_timeout` (a client that stopped mid-handshake).
    Timeout,
    /// The peer closed or reset the connection before the handshake finished.
    Closed,
    /// Bytes that are not a TLS handshake (plain SIP on the TLS port, garbage), or a peer that
    /// broke the protocol.
    BadHandshake,
    /// The peer's certificate does not chain to a trusted CA, or does not name the peer.
    UntrustedCertificate,
    /// The peer's certificate is expired or not yet valid.
    ExpiredCertificate,
    /// A client certificate is required and none was presented.
    NoCertificate,
    /// No protocol version in common (e.g. a TLS 1.0/1.1-only peer, or 1.2 with min 1.3).
    ProtocolVersion,
    /// No cipher suite, group or signature scheme in common.
    Incompatible,
    /// The peer refused our certificate (it sent a certificate alert).
    PeerRefused,
    /// After the handshake, the peer tried to renegotiate (counted when the connection is
    /// closed for it, see [`RenegotiationAttempt`]).
    Renegotiation,
    /// Anything else (I/O errors, internal errors).
    Other,
}

impl HandshakeFailure {
    /// Every reason, in index order.
    pub const ALL: [HandshakeFailure; 11] = [
        HandshakeFailure::Timeout,
        HandshakeFailure::Closed,
        HandshakeFailure::BadHandshake,
        HandshakeFailure::UntrustedCertificate,
        HandshakeFailure::ExpiredCertificate,
        HandshakeFailure::NoCertificate,
        HandshakeFailure::ProtocolVersion,
        HandshakeFailure::Incompatible,
        HandshakeFailure::PeerRefused,
        HandshakeFailure::Renegotiation,
        HandshakeFailure::Other,
    ];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            HandshakeFailure::Timeout => "timeout",
            HandshakeFailure::Closed => "closed",
            HandshakeFailure::BadHandshake => "bad_handshake",
            HandshakeFailure::UntrustedCertificate => "untrusted_certificate",
            HandshakeFailure::ExpiredCertificate => "expired_certificate",
            HandshakeFailure::NoCertificate => "no_certificate",
            HandshakeFailure::ProtocolVersion => "protocol_version",
            HandshakeFailure::Incompatible => "incompatible",
            HandshakeFailure::PeerRefused => "peer_refused",
            HandshakeFailure::Renegotiation => "renegotiation",
            HandshakeFailure::Other => "other",
        }
    }

    /// Classifies the I/O error that tokio-rustls returns for a failed handshake.
    pub fn of_io(e: &std::io::Error) -> HandshakeFailure {
        use std::io::ErrorKind;
        if let Some(tls) = e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
            return HandshakeFailure::of_rustls(tls);
        }
        if e.get_ref()
            .is_some_and(|i| i.downcast_ref::<RenegotiationAttempt>().is_some())
        {
            return HandshakeFailure::Renegotiation;
        }
        match e.kind() {
            ErrorKind::UnexpectedEof
            | ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::BrokenPipe => HandshakeFailure::Closed,
            ErrorKind::TimedOut => HandshakeFailure::Timeout,
            _ => HandshakeFailure::Other,
        }
    }

    /// Classifies a rustls error.
    pub fn of_rustls(e: &rustls::Error) -> HandshakeFailure {
        use rustls::{
            AlertDescription as A, CertificateError as C, Error as E, PeerIncompatible as P,
        };
        match e {
            E::InvalidCertificate(
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. },
            ) => HandshakeFailure::ExpiredCertificate,
            E::InvalidCertificate(_) => HandshakeFailure::UntrustedCertificate,
            E::NoCertificatesPresented => HandshakeFailure::NoCertificate,
            E::PeerIncompatible(
                P::ServerDoesNotSupportTls12Or13
                | P::ServerTlsVersionIsDisabledByOurConfig
                | P::SupportedVersionsExtensionRequired
                | P::Tls12NotOffered
                | P::Tls12NotOfferedOrEnabled,
            ) => HandshakeFailure::ProtocolVersion,
            E::PeerIncompatible(_) => HandshakeFailure::Incompatible,
            E::AlertReceived(A::ProtocolVersion) => HandshakeFailure::ProtocolVersion,
            E::AlertReceived(A::HandshakeFailure | A::InsufficientSecurity) => {
                HandshakeFailure::Incompatible
            }
            E::AlertReceived(
                A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateRevoked
                | A::CertificateExpired
                | A::CertificateUnknown
                | A::UnknownCA
                | A::AccessDenied
                | A::CertificateRequired,
            ) => HandshakeFailure::PeerRefused,
            E::InvalidMessage(_)
            | E::InappropriateMessage { .. }
            | E::InappropriateHandshakeMessage { .. }
            | E::PeerMisbehaved(_)
            | E::DecryptError
            | E::AlertReceived(_) => HandshakeFailure::BadHandshake,
            _ => HandshakeFailure::Other,
        }
    }
}

/// The TLS counters, registered once on the recorder (`Telemetry::recorder()` in production):
///
/// | metric | labels |
/// |---|---|
/// | `fraudwall_tls_handshakes_total` | `side` (inbound, outbound): handshakes completed |
/// | `fraudwall_tls_handshake_failures_total` | `side`, `reason` ([`HandshakeFailure`]) |
/// | `fraudwall_tls_reloads_total` | certificate pairs reloaded after a file change |
/// | `fraudwall_tls_reload_failures_total` | changed files that failed to load (old pair kept) |
#[derive(Clone)]
pub struct TlsMetrics {
    handshakes: [Counter; TlsSide::ALL.len()],
    failures: [[Counter; HandshakeFailure::ALL.len()]; TlsSide::ALL.len()],
    pub(crate) reloads: Counter,
    pub(crate) reload_failures: Counter,
}

impl std::fmt::Debug for TlsMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsMetrics").finish_non_exhaustive()
    }
}

impl TlsMetrics {
    /// Registers every counter on `recorder`.
    pub fn register<R: Recorder + ?Sized>(recorder: &R) -> TlsMetrics {
        let meta = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
        let counter = |name: &'static str, labels: Vec<Label>| {
            recorder.register_counter(&Key::from_parts(name, labels), &meta)
        };
        TlsMetrics {
            handshakes: TlsSide::ALL.map(|s| {
                counter(
                    "fraudwall_tls_handshakes_total",
                    vec![Label::new("side", s.label())],
                )
            }),
            failures: TlsSide::ALL.map(|s| {
                HandshakeFailure::ALL.map(|r| {
                    counter(
                        "fraudwall_tls_handshake_failures_total",
                        vec![
                            Label::new("side", s.label()),
                            Label::new("reason", r.label()),
                        ],
                    )
                })
            }),
            reloads: counter("fraudwall_tls_reloads_total", vec![]),
            reload_failures: counter("fraudwall_tls_reload_failures_total", vec![]),
        }
    }

    /// Counters that count nothing (validation, tests).
    pub fn noop() -> TlsMetrics {
        TlsMetrics {
            handshakes: TlsSide::ALL.map(|_| Counter::noop()),
            failures: TlsSide::ALL.map(|_| HandshakeFailure::ALL.map(|_| Counter::noop())),
            reloads: Counter::noop(),
            reload_failures: Counter::noop(),
        }
    }

    fn failed(&self, side: TlsSide, reason: HandshakeFailure) {
        self.failures[side as usize][reason as usize].increment(1);
    }
}

/// Serves the store's current pair to every handshake (so a reload applies to the next one).
#[derive(Debug)]
struct StoreResolver(Arc<TlsCertStore>);

impl ResolvesServerCert for StoreResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.current())
    }
}

impl ResolvesClientCert for StoreResolver {
    fn resolve(&self, _hints: &[&[u8]], schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        let ck = self.0.current();
        ck.key.choose_scheme(schemes).is_some().then_some(ck)
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A failed inbound handshake: already counted and logged at debug level.
#[derive(Debug, thiserror::Error)]
#[error("TLS handshake from a client failed ({}): {detail}", reason.label())]
pub struct TlsAcceptError {
    /// Why.
    pub reason: HandshakeFailure,
    /// rustls' or the socket's words.
    pub detail: String,
}

/// A completed inbound handshake.
#[derive(Debug)]
pub struct TlsAccepted<S> {
    /// The stream to read and write SIP on (`get_ref().0.get_ref()` is the inner stream). A
    /// read fails with [`RenegotiationAttempt`] (already counted) if the client tries to
    /// renegotiate: close the connection.
    pub stream: server::TlsStream<RecordWatch<S>>,
    /// The client certificate's identity, and whether it is trusted.
    pub peer: PeerIdentity,
}

impl<S> TlsAccepted<S> {
    /// The accepted byte stream under TLS (the `TcpStream`: its `local_addr` is the arrival
    /// address to write in Via).
    pub fn inner(&self) -> &S {
        self.stream.get_ref().0.get_ref()
    }
}

/// The listener side: our certificate (reloadable), optional client certificates.
#[derive(Clone)]
pub struct TlsServer {
    acceptor: TlsAcceptor,
    certs: Arc<TlsCertStore>,
    handshake_timeout: Duration,
    trusted_identities: Arc<[String]>,
    metrics: TlsMetrics,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("certs", &self.certs)
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Loads the certificate pair and `tls.client_ca`, builds the rustls server config.
    pub fn new(config: &TlsConfig, metrics: TlsMetrics) -> Result<TlsServer, TlsConfigError> {
        config.check_values()?;
        let provider = provider();
        let certs = Arc::new(TlsCertStore::load(config, metrics.clone())?);
        let builder = ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(config.min_version.rustls_versions())
            .map_err(|e| TlsConfigError::Invalid {
                key: "min_version",
                message: e.to_string(),
            })?;
        let builder = if config.client_ca.as_os_str().is_empty() {
            builder.with_no_client_auth()
        } else {
            let roots = load_roots("client_ca", &config.client_ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if config.require_client_certificate {
                verifier
            } else {
                verifier.allow_unauthenticated()
            };
            let verifier = verifier.build().map_err(|e| TlsConfigError::Invalid {
                key: "client_ca",
                message: format!(
                    "{e} (give the PEM CA certificates that sign the clients' certificates)"
                ),
            })?;
            builder.with_client_cert_verifier(verifier)
        };
        let server = builder.with_cert_resolver(Arc::new(StoreResolver(certs.clone())));
        Ok(TlsServer {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            certs,
            handshake_timeout: config.handshake_timeout,
            trusted_identities: config
                .trusted_identities
                .iter()
                .map(|s| s.to_ascii_lowercase())
                .collect(),
            metrics,
        })
    }

    /// The certificate store (share it with [`TlsClient::new`] for mutual TLS to next hops).
    pub fn certs(&self) -> Arc<TlsCertStore> {
        self.certs.clone()
    }

    /// Re-reads the certificate pair if its files changed; see [`TlsCertStore::reload_if_changed`].
    pub fn reload_if_changed(&self) -> TlsReload {
        self.certs.reload_if_changed()
    }

    /// Runs the server handshake on an accepted stream, bounded by `tls.handshake_timeout`.
    /// Call it inside the connection's own task. A failure is counted by reason; the stream is
    /// dropped (closed) with it.
    pub async fn accept<S>(&self, stream: S) -> Result<TlsAccepted<S>, TlsAcceptError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let watched = RecordWatch::new(
            stream,
            self.metrics.failures[TlsSide::Inbound as usize]
                [HandshakeFailure::Renegotiation as usize]
                .clone(),
        );
        let result =
            tokio::time::timeout(self.handshake_timeout, self.acceptor.accept(watched)).await;
        let failure = match result {
            Ok(Ok(mut stream)) => {
                stream.get_mut().0.arm();
                let peer = PeerIdentity::of(
                    stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first()),
                    &self.trusted_identities,
                );
                self.metrics.handshakes[TlsSide::Inbound as usize].increment(1);
                return Ok(TlsAccepted { stream, peer });
            }
            Ok(Err(e)) => TlsAcceptError {
                reason: HandshakeFailure::of_io(&e),
                detail: e.to_string(),
            },
            Err(_) => TlsAcceptError {
                reason: HandshakeFailure::Timeout,
                detail: format!(
                    "not finished in {} (tls.handshake_timeout)",
                    humantime::format_duration(self.handshake_timeout)
                ),
            },
        };
        self.metrics.failed(TlsSide::Inbound, failure.reason);
        tracing::debug!(reason = failure.reason.label(), detail = %failure.detail, "tls: inbound handshake failed");
        Err(failure)
    }
}

/// A failed outbound handshake or an unusable next-hop name.
#[derive(Debug, thiserror::Error)]
pub enum TlsConnectError {
    /// The configured next-hop name is neither a DNS name nor an IP address.
    #[error("next hop {name:?} is not a DNS name or IP address to verify a TLS certificate against; write the host the next hop's certificate names")]
    BadName {
        /// The name given.
        name: String,
    },
    /// The handshake failed (counted).
    #[error("TLS handshake with next hop {name:?} failed ({}): {detail}", reason.label())]
    Handshake {
        /// The next hop's name.
        name: String,
        /// Why.
        reason: HandshakeFailure,
        /// rustls' or the socket's words.
        detail: String,
    },
}

/// The name a next hop's certificate must carry: a DNS name, or an IP literal (then an IP SAN),
/// with or without IPv6 brackets.
pub fn server_name(name: &str) -> Result<ServerName<'static>, TlsConnectError> {
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_string()).map_err(|_| TlsConnectError::BadName {
        name: name.to_string(),
    })
}

/// The next-hop side: verifies each next hop's certificate against its configured name.
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    handshake_timeout: Duration,
    metrics: TlsMetrics,
}

impl std::fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsClient")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Builds the client config from `tls.next_hop_ca` (or webpki-roots) and, when
    /// `tls.next_hop_client_certificate` is on, `certs` as our client certificate.
    pub fn new(
        config: &TlsConfig,
        certs: Option<Arc<TlsCertStore>>,
        metrics: TlsMetrics,
    ) -> Result<TlsClient, TlsConfigError> {
        config.check_values()?;
        let roots = if config.next_hop_ca.as_os_str().is_empty() {
            RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }
        } else {
            load_roots("next_hop_ca", &config.next_hop_ca)?
        };
        let builder = ClientConfig::builder_with_provider(provider())
            .with_protocol_versions(config.min_version.rustls_versions())
            .map_err(|e| TlsConfigError::Invalid {
                key: "min_version",
                message: e.to_string(),
            })?
            .with_root_certificates(roots);
        let client = match (config.next_hop_client_certificate, certs) {
            (true, Some(store)) => builder.with_client_cert_resolver(Arc::new(StoreResolver(store))),
            (true, None) => {
                return Err(TlsConfigError::NotSet {
                    key: "certificate",
                    hint: "tls.next_hop_client_certificate = true presents our certificate: set tls.certificate and tls.private_key, or turn it off",
                })
            }
            (false, _) => builder.with_no_client_auth(),
        };
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(client)),
            handshake_timeout: config.handshake_timeout,
            metrics,
        })
    }

    /// Runs the client handshake on a connected stream, verifying the certificate against
    /// `name` (see [`server_name`]), bounded by `tls.handshake_timeout`. Failures are counted.
    pub async fn connect<S>(
        &self,
        stream: S,
        name: &str,
    ) -> Result<client::TlsStream<S>, TlsConnectError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        let server = server_name(name)?;
        let result = tokio::time::timeout(
            self.handshake_timeout,
            self.connector.connect(server, stream),
        )
        .await;
        let (reason, detail) = match result {
            Ok(Ok(stream)) => {
                self.metrics.handshakes[TlsSide::Outbound as usize].increment(1);
                return Ok(stream);
            }
            Ok(Err(e)) => (HandshakeFailure::of_io(&e), e.to_string()),
            Err(_) => (
                HandshakeFailure::Timeout,
                format!(
                    "not finished in {} (tls.handshake_timeout)",
                    humantime::format_duration(self.handshake_timeout)
                ),
            ),
        };
        self.metrics.failed(TlsSide::Outbound, reason);
        tracing::debug!(name, reason = reason.label(), %detail, "tls: outbound handshake failed");
        Err(TlsConnectError::Handshake {
            name: name.to_string(),
            reason,
            detail,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_distinct() {
        let mut l: Vec<_> = HandshakeFailure::ALL.iter().map(|r| r.label()).collect();
        l.sort();
        l.dedup();
        assert_eq!(l.len(), HandshakeFailure::ALL.len());
        for (i, r) in HandshakeFailure::ALL.iter().enumerate() {
            assert_eq!(*r as usize, i);
        }
    }

    #[test]
    fn server_names() {
        assert!(matches!(
            server_name("sip.example").unwrap(),
            ServerName::DnsName(_)
        ));
        assert!(matches!(
            server_name("127.0.0.1").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]").unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("bad name").is_err());
    }

    #[test]
    fn classifies_rustls_errors() {
        use rustls::{CertificateError as C, Error as E};
        assert_eq!(
            HandshakeFailure::of_rustls(&E::InvalidCertificate(C::Expired)),
            HandshakeFailure::ExpiredCertificate
        );
        assert_eq!(
            HandshakeFailure::of_rustls(&E::InvalidCertificate(C::UnknownIssuer)),
            HandshakeFailure::UntrustedCertificate
        );
        assert_eq!(
            HandshakeFailure::of_rustls(&E::NoCertificatesPresented),
            HandshakeFailure::NoCertificate
        );
        let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
        assert_eq!(HandshakeFailure::of_io(&eof), HandshakeFailure::Closed);
    }
}
