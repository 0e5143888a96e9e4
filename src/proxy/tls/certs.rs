//! PEM loading, and the certificate store that serves handshakes and is swapped on file change.

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use super::config::{read_file, TlsConfig, TlsConfigError};
use super::handshake::TlsMetrics;
use crate::file_stamp::FileStamp;

/// The crypto provider (ring: no cmake or nasm needed to build it).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn pem_error(
    key: &'static str,
    path: &Path,
    what: &'static str,
    e: rustls_pki_types::pem::Error,
) -> TlsConfigError {
    match e {
        rustls_pki_types::pem::Error::NoItemsFound => TlsConfigError::NoPem {
            key,
            path: path.to_path_buf(),
            what,
        },
        other => TlsConfigError::BadPem {
            key,
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    }
}

/// Every CERTIFICATE block of a PEM file, at least one.
pub(crate) fn load_certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let bytes = read_file(key, path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(key, path, "CERTIFICATE", e))?;
    if certs.is_empty() {
        return Err(pem_error(
            key,
            path,
            "CERTIFICATE",
            rustls_pki_types::pem::Error::NoItemsFound,
        ));
    }
    Ok(certs)
}

/// A root store from a PEM bundle; every certificate must be usable as a trust anchor.
pub(crate) fn load_roots(key: &'static str, path: &Path) -> Result<RootCertStore, TlsConfigError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in load_certificates(key, path)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsConfigError::BadPem {
            key,
            path: path.to_path_buf(),
            message: format!("certificate #{} is not a usable CA certificate: {e}", i + 1),
        })?;
    }
    Ok(roots)
}

fn not_set(key: &'static str) -> TlsConfigError {
    TlsConfigError::NotSet {
        key,
        hint: match key {
            "certificate" => "TLS needs our certificate: set tls.certificate = \"/etc/fraudwall/cert.pem\" (PEM chain, leaf first), or remove \"tls\" from sip.transports",
            _ => "TLS needs the certificate's key: set tls.private_key = \"/etc/fraudwall/key.pem\"",
        },
    }
}

/// Loads the certificate chain and its key and checks that they belong together.
pub(crate) fn load_certified_key(
    certificate: &Path,
    private_key: &Path,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, TlsConfigError> {
    if certificate.as_os_str().is_empty() {
        return Err(not_set("certificate"));
    }
    if private_key.as_os_str().is_empty() {
        return Err(not_set("private_key"));
    }
    let chain = load_certificates("certificate", certificate)?;
    let bytes = read_file("private_key", private_key)?;
    let der = PrivateKeyDer::from_pem_slice(&bytes)
        .map_err(|e| pem_error("private_key", private_key, "PRIVATE KEY", e))?;
    let signing =
        provider
            .key_provider
            .load_private_key(der)
            .map_err(|e| TlsConfigError::BadKey {
                key: "private_key",
                path: private_key.to_path_buf(),
                message: format!("{e} (use an ECDSA P-256/P-384, Ed25519 or RSA 2048+ key)"),
            })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| TlsConfigError::BadKey {
        key: "private_key",
        path: private_key.to_path_buf(),
        message: format!(
            "does not belong to the first certificate of {certificate:?} ({e}); put the leaf certificate first and give its own key"
        ),
    })?;
    Ok(ck)
}

/// What [`TlsCertStore::reload_if_changed`] did.
#[derive(Debug)]
pub enum TlsReload {
    /// Neither file changed since the last attempt.
    Unchanged,
    /// The new pair is served to every handshake from now on; open connections go on.
    Reloaded,
    /// The changed files did not load; the old pair is still served. Retried when they change
    /// again.
    Failed(TlsConfigError),
}

/// Our certificate and key, swapped atomically when the PEM files change.
pub struct TlsCertStore {
    certificate: PathBuf,
    private_key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: ArcSwap<CertifiedKey>,
    /// Stamps of (certificate, private_key) at the last load attempt.
    seen: Mutex<(Option<FileStamp>, Option<FileStamp>)>,
    metrics: TlsMetrics,
}

impl std::fmt::Debug for TlsCertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertStore")
            .field("certificate", &self.certificate)
            .field("private_key", &self.private_key)
            .finish_non_exhaustive()
    }
}

impl TlsCertStore {
    /// Loads `tls.certificate` and `tls.private_key`.
    pub fn load(config: &TlsConfig, metrics: TlsMetrics) -> Result<TlsCertStore, TlsConfigError> {
        let provider = provider();
        let seen = (
            FileStamp::of(&config.certificate),
            FileStamp::of(&config.private_key),
        );
        let ck = load_certified_key(&config.certificate, &config.private_key, &provider)?;
        Ok(TlsCertStore {
            certificate: config.certificate.clone(),
            private_key: config.private_key.clone(),
            provider,
            current: ArcSwap::from_pointee(ck),
            seen: Mutex::new(seen),
            metrics,
        })
    }

    /// The pair served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    /// Re-reads the files if either changed (size, modification time or inode, so an atomic
    /// rename counts) since the last attempt. Cheap when nothing changed (two `stat`s): call it
    /// from the runtime's once-a-second timer. Logs and counts the outcome.
    pub fn reload_if_changed(&self) -> TlsReload {
        let now = (
            FileStamp::of(&self.certificate),
            FileStamp::of(&self.private_key),
        );
        {
            let mut seen = match self.seen.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            if *seen == now {
                return TlsReload::Unchanged;
            }
            *seen = now;
        }
        match load_certified_key(&self.certificate, &self.private_key, &self.provider) {
            Ok(ck) => {
                self.current.store(Arc::new(ck));
                self.metrics.reloads.increment(1);
                tracing::info!(certificate = ?self.certificate, "tls: certificate reloaded");
                TlsReload::Reloaded
            }
            Err(e) => {
                self.metrics.reload_failures.increment(1);
                tracing::warn!(error = %e, "tls: certificate reload failed, still serving the previous certificate");
                TlsReload::Failed(e)
            }
        }
    }
}
