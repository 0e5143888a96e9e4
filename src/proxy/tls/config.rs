//! The `[tls]` section of the config file: deserialized here, validated when the TLS contexts
//! are built ([`TlsConfig::validate`] builds them and drops them, for `fraudwall config check`).

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A TLS protocol version, as `min_version` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
pub enum TlsVersion {
    /// TLS 1.2 (RFC 5246), still the most common on SIP trunks.
    #[serde(rename = "1.2")]
    V1_2,
    /// TLS 1.3 (RFC 8446).
    #[serde(rename = "1.3")]
    V1_3,
}

impl TlsVersion {
    /// The rustls versions from this one up.
    pub(crate) fn rustls_versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static FROM_1_2: [&rustls::SupportedProtocolVersion; 2] =
            [&rustls::version::TLS13, &rustls::version::TLS12];
        static FROM_1_3: [&rustls::SupportedProtocolVersion; 1] = [&rustls::version::TLS13];
        match self {
            TlsVersion::V1_2 => &FROM_1_2,
            TlsVersion::V1_3 => &FROM_1_3,
        }
    }
}

/// The `[tls]` config section (`fraudwall config default` documents every key).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, leaf first; empty = not set.
    pub certificate: PathBuf,
    /// PEM private key of the leaf certificate; empty = not set.
    pub private_key: PathBuf,
    /// TLS listener port on each `sip.listen` address.
    pub port: u16,
    /// Time allowed for a handshake.
    #[serde(with = "crate::config::value::duration")]
    pub handshake_timeout: Duration,
    /// Lowest protocol version.
    pub min_version: TlsVersion,
    /// CAs of accepted client certificates; empty = no client certificate asked for.
    pub client_ca: PathBuf,
    /// Refuse clients without a certificate.
    pub require_client_certificate: bool,
    /// Identities (DNS SAN, else CN) of peers whose identity headers are believed.
    pub trusted_identities: Vec<String>,
    /// CAs for next hops' certificates; empty = webpki-roots.
    pub next_hop_ca: PathBuf,
    /// Present our certificate to next hops that ask for one.
    pub next_hop_client_certificate: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            certificate: PathBuf::new(),
            private_key: PathBuf::new(),
            port: 5061,
            handshake_timeout: Duration::from_secs(5),
            min_version: TlsVersion::V1_2,
            client_ca: PathBuf::new(),
            require_client_certificate: false,
            trusted_identities: Vec::new(),
            next_hop_ca: PathBuf::new(),
            next_hop_client_certificate: false,
        }
    }
}

/// Shortest and longest accepted `handshake_timeout`.
const HANDSHAKE_TIMEOUT_RANGE: (Duration, Duration) =
    (Duration::from_millis(100), Duration::from_secs(60));

impl TlsConfig {
    /// Checks the section as the listener (`server`) and/or the next-hop client (`client`)
    /// would use it: reads and parses every file, builds the rustls contexts, drops them.
    pub fn validate(&self, server: bool, client: bool) -> Result<(), TlsConfigError> {
        use super::handshake::{TlsClient, TlsMetrics, TlsServer};
        self.check_values()?;
        let certs = if server {
            Some(TlsServer::new(self, TlsMetrics::noop())?.certs())
        } else if client && self.next_hop_client_certificate {
            Some(std::sync::Arc::new(super::TlsCertStore::load(
                self,
                TlsMetrics::noop(),
            )?))
        } else {
            None
        };
        if client {
            TlsClient::new(self, certs, TlsMetrics::noop())?;
        }
        Ok(())
    }

    /// The checks that read no file.
    pub(crate) fn check_values(&self) -> Result<(), TlsConfigError> {
        if self.port == 0 {
            return Err(TlsConfigError::Invalid {
                key: "port",
                message: "0 is not a port; the default is 5061".into(),
            });
        }
        let (lo, hi) = HANDSHAKE_TIMEOUT_RANGE;
        if self.handshake_timeout < lo || self.handshake_timeout > hi {
            return Err(TlsConfigError::Invalid {
                key: "handshake_timeout",
                message: format!(
                    "{} is out of range: use between {} and {} (default \"5s\")",
                    humantime::format_duration(self.handshake_timeout),
                    humantime::format_duration(lo),
                    humantime::format_duration(hi)
                ),
            });
        }
        let no_ca = self.client_ca.as_os_str().is_empty();
        if self.require_client_certificate && no_ca {
            return Err(TlsConfigError::Invalid {
                key: "require_client_certificate",
                message: "needs tls.client_ca, the PEM bundle of the CAs that sign the clients' certificates".into(),
            });
        }
        if !self.trusted_identities.is_empty() && no_ca {
            return Err(TlsConfigError::Invalid {
                key: "trusted_identities",
                message: "needs tls.client_ca: an identity is only known from a client certificate that a CA in that bundle signed".into(),
            });
        }
        for (i, id) in self.trusted_identities.iter().enumerate() {
            let ok = !id.is_empty()
                && id.len() <= 253
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._*:".contains(&b));
            if !ok {
                return Err(TlsConfigError::Invalid {
                    key: "trusted_identities",
                    message: format!(
                        "[{i}] {id:?} is not a certificate identity: write the DNS name (or CN) the peer's certificate carries, e.g. \"sbc1.carrier.example\""
                    ),
                });
            }
        }
        Ok(())
    }
}

/// What is wrong with the `[tls]` section or the files it names. Each message starts with the
/// key (`tls.certificate: ...`) and says how to fix it.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    /// A key that must be set for what is enabled is empty.
    #[error("tls.{key}: not set; {hint}")]
    NotSet {
        /// The key, without the `tls.` prefix.
        key: &'static str,
        /// What to write.
        hint: &'static str,
    },
    /// A file could not be read.
    #[error("tls.{key}: cannot read {path:?}: {source} (check the path and that fraudwall's user may read it)")]
    Read {
        /// The key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file holds no PEM block of the expected kind.
    #[error("tls.{key}: {path:?} holds no PEM {what} (expected a block such as \"-----BEGIN {what}-----\")")]
    NoPem {
        /// The key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM label expected.
        what: &'static str,
    },
    /// A file's PEM or DER content is malformed.
    #[error("tls.{key}: {path:?} is not valid PEM: {message} (re-export it, e.g. with `openssl x509 -in {path:?}`)")]
    BadPem {
        /// The key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// The parser's words.
        message: String,
    },
    /// The key cannot be used (algorithm unsupported) or does not belong to the certificate.
    #[error("tls.{key}: {path:?}: {message}")]
    BadKey {
        /// The key.
        key: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A value is out of range or inconsistent with another key.
    #[error("tls.{key}: {message}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong and how to fix it.
        message: String,
    },
}

impl TlsConfigError {
    /// The key at fault, as the file spells it (`tls.certificate`).
    pub fn key(&self) -> String {
        let k = match self {
            TlsConfigError::NotSet { key, .. }
            | TlsConfigError::Read { key, .. }
            | TlsConfigError::NoPem { key, .. }
            | TlsConfigError::BadPem { key, .. }
            | TlsConfigError::BadKey { key, .. }
            | TlsConfigError::Invalid { key, .. } => key,
        };
        format!("tls.{k}")
    }
}

pub(crate) fn read_file(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsConfigError> {
    std::fs::read(path).map_err(|source| TlsConfigError::Read {
        key,
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_toml() {
        let c = TlsConfig {
            certificate: "/etc/fraudwall/cert.pem".into(),
            handshake_timeout: Duration::from_millis(1500),
            min_version: TlsVersion::V1_3,
            trusted_identities: vec!["sbc1.carrier.example".into()],
            ..TlsConfig::default()
        };
        let text = toml::to_string(&c).unwrap();
        let back: TlsConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, c);
    }

    #[test]
    fn unknown_key_and_bad_duration_refused() {
        let e = toml::from_str::<TlsConfig>("certficate = \"x\"").unwrap_err();
        assert!(e.to_string().contains("certficate"), "{e}");
        let e = toml::from_str::<TlsConfig>("handshake_timeout = \"soon\"").unwrap_err();
        assert!(e.to_string().contains("invalid duration"), "{e}");
        let e = toml::from_str::<TlsConfig>("min_version = \"1.1\"").unwrap_err();
        assert!(e.to_string().contains("1.1"), "{e}");
    }

    #[test]
    fn value_checks_name_the_key() {
        let c = TlsConfig {
            require_client_certificate: true,
            ..TlsConfig::default()
        };
        let e = c.check_values().unwrap_err().to_string();
        assert!(
            e.starts_with("tls.require_client_certificate: needs tls.client_ca"),
            "{e}"
        );
        let c = TlsConfig {
            handshake_timeout: Duration::from_secs(600),
            ..TlsConfig::default()
        };
        let e = c.check_values().unwrap_err().to_string();
        assert!(
            e.starts_with("tls.handshake_timeout: 10m is out of range"),
            "{e}"
        );
        let c = TlsConfig {
            client_ca: "ca.pem".into(),
            trusted_identities: vec!["a b".into()],
            ..TlsConfig::default()
        };
        let e = c.check_values().unwrap_err().to_string();
        assert!(e.starts_with("tls.trusted_identities: [0] \"a b\""), "{e}");
    }

    #[test]
    fn server_without_certificate_says_what_to_set() {
        let e = TlsConfig::default()
            .validate(true, false)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("tls.certificate: not set"), "{e}");
        let c = TlsConfig {
            certificate: "/nonexistent/cert.pem".into(),
            private_key: "/nonexistent/key.pem".into(),
            ..TlsConfig::default()
        };
        let e = c.validate(true, false).unwrap_err().to_string();
        assert!(
            e.starts_with("tls.certificate: cannot read \"/nonexistent/cert.pem\""),
            "{e}"
        );
        // A client with the built-in roots needs no file.
        TlsConfig::default().validate(false, true).unwrap();
    }
}
