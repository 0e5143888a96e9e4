//! The HTTP side of a node: fetch the manifest (with `If-None-Match`) and snapshot files.
//!
//! Everything here distrusts the network. Each request has a connect timeout, a read timeout
//! (a server that stalls mid-body is cut off) and a total timeout; every body is read in
//! chunks against a hard ceiling (the manifest's [`MAX_MANIFEST_BYTES`], a snapshot file's
//! size as the signed manifest states it), so a hostile origin cannot make a node buffer
//! more than it expects. A snapshot file is streamed ([`Download`]) and hashed as it
//! arrives, and accepted only once its size and blake3 match the verified manifest; the bytes are still handed on as a file to be mapped and verified
//! by the snapshot code before a lookup ever sees them.
//!
//! Every failure is a [`FetchError`] whose [`reason`](FetchError::reason) labels the
//! `fraudwall_feed_update_errors_total` metric.
//!
//! Snapshot files are fetched relative to the manifest URL: with the manifest at
//! `http://feed.example/fw/manifest.json`, the base `base-40.fwb` is fetched from
//! `http://feed.example/fw/base-40.fwb`, and the signature from `manifest.json.sig`.

use super::manifest::{FileRef, Hash, UncheckedManifest, MAX_MANIFEST_BYTES};
use reqwest::header::{ETAG, IF_NONE_MATCH};
use reqwest::{StatusCode, Url};
use std::time::Duration;

/// Timeouts and limits of a [`Fetcher`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchConfig {
    /// TCP (and TLS) connect timeout.
    pub connect_timeout: Duration,
    /// Longest wait for the next bytes of a response.
    pub read_timeout: Duration,
    /// Total time allowed for the manifest and its signature.
    pub manifest_timeout: Duration,
    /// Total time allowed for one snapshot file.
    pub file_timeout: Duration,
}

impl Default for FetchConfig {
    fn default() -> Self {
        FetchConfig {
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(5),
            manifest_timeout: Duration::from_secs(10),
            file_timeout: Duration::from_secs(600),
        }
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The URL cannot be used.
    #[error("feed URL {url:?} is not usable: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// Connection refused, DNS failure, reset.
    #[error("feed unreachable at {url}: {message}")]
    Unreachable {
        /// The URL.
        url: Url,
        /// The underlying error.
        message: String,
    },
    /// A timeout expired (connect, read or total).
    #[error("feed timed out at {url} (connect, read or total timeout)")]
    Timeout {
        /// The URL.
        url: Url,
    },
    /// An HTTP status other than 200 (or 304 for the manifest).
    #[error("feed answered HTTP {status} for {url}")]
    Status {
        /// The URL.
        url: Url,
        /// The status.
        status: StatusCode,
    },
    /// The connection ended before the body did.
    #[error("feed body from {url} was cut short: {message}")]
    Truncated {
        /// The URL.
        url: Url,
        /// The underlying error.
        message: String,
    },
    /// The body is larger than allowed.
    #[error("feed body from {url} is larger than the {limit} bytes expected")]
    TooLarge {
        /// The URL.
        url: Url,
        /// The limit.
        limit: u64,
    },
    /// A snapshot file's size differs from the manifest.
    #[error("{name}: {got} bytes downloaded, the signed manifest says {expected}")]
    SizeMismatch {
        /// File name.
        name: String,
        /// Bytes received.
        got: u64,
        /// Bytes in the manifest.
        expected: u64,
    },
    /// A snapshot file's blake3 differs from the manifest.
    #[error(
        "{name}: blake3 {got} does not match the signed manifest ({expected}): refusing the file"
    )]
    HashMismatch {
        /// File name.
        name: String,
        /// Hash of the bytes received.
        got: Hash,
        /// Hash in the manifest.
        expected: Hash,
    },
}

impl FetchError {
    /// Short reason for metrics labels.
    pub fn reason(&self) -> &'static str {
        match self {
            FetchError::BadUrl { .. } => "bad_url",
            FetchError::Unreachable { .. } => "unreachable",
            FetchError::Timeout { .. } => "timeout",
            FetchError::Status { .. } => "http_status",
            FetchError::Truncated { .. } => "truncated",
            FetchError::TooLarge { .. } => "too_large",
            FetchError::SizeMismatch { .. } => "size_mismatch",
            FetchError::HashMismatch { .. } => "hash_mismatch",
        }
    }
}

/// The manifest request's outcome.
#[derive(Debug)]
pub enum ManifestResponse {
    /// `304 Not Modified`: the node's manifest is current.
    NotModified,
    /// A manifest and signature, not yet verified.
    Fresh {
        /// The bytes, unchecked.
        manifest: UncheckedManifest,
        /// The manifest response's ETag.
        etag: Option<String>,
    },
}

/// An HTTP client for one feed.
#[derive(Debug, Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    manifest_url: Url,
    sig_url: Url,
    config: FetchConfig,
}

impl Fetcher {
    /// A fetcher for the feed whose manifest is at `manifest_url` (http or https).
    pub fn new(manifest_url: &str, config: FetchConfig) -> Result<Self, FetchError> {
        let bad = |reason: String| FetchError::BadUrl {
            url: manifest_url.to_string(),
            reason,
        };
        let url = Url::parse(manifest_url).map_err(|e| bad(e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad("only http and https feeds are supported".into()));
        }
        let sig_url = Url::parse(&format!("{url}.sig")).map_err(|e| bad(e.to_string()))?;
        let client = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .read_timeout(config.read_timeout)
            .user_agent(concat!("fraudwall/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| bad(format!("HTTP client: {e}")))?;
        Ok(Fetcher {
            client,
            manifest_url: url,
            sig_url,
            config,
        })
    }

    /// The manifest URL.
    pub fn manifest_url(&self) -> &Url {
        &self.manifest_url
    }

    /// Fetches the manifest (conditionally) and, when it changed, its signature.
    pub async fn manifest(
        &self,
        if_none_match: Option<&str>,
    ) -> Result<ManifestResponse, FetchError> {
        let url = &self.manifest_url;
        let mut req = self
            .client
            .get(url.clone())
            .timeout(self.config.manifest_timeout);
        if let Some(tag) = if_none_match {
            req = req.header(IF_NONE_MATCH, tag);
        }
        let resp = req.send().await.map_err(|e| classify(url, e))?;
        if resp.status() == StatusCode::NOT_MODIFIED && if_none_match.is_some() {
            return Ok(ManifestResponse::NotModified);
        }
        let etag = resp
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = read_body(url, resp, MAX_MANIFEST_BYTES as u64).await?;
        let resp = self
            .client
            .get(self.sig_url.clone())
            .timeout(self.config.manifest_timeout)
            .send()
            .await
            .map_err(|e| classify(&self.sig_url, e))?;
        let sig = read_body(&self.sig_url, resp, 1024).await?;
        Ok(ManifestResponse::Fresh {
            manifest: UncheckedManifest::new(body, sig),
            etag,
        })
    }

    /// Starts downloading one snapshot file named by the verified manifest: read it with
    /// [`Download::chunk`] (bounded by the manifest's size), then [`Download::finish`]
    /// checks its size and blake3. Nothing is trusted before `finish` says so.
    pub async fn download(&self, file: &FileRef) -> Result<Download, FetchError> {
        let url = self
            .manifest_url
            .join(&file.name)
            .map_err(|e| FetchError::BadUrl {
                url: file.name.clone(),
                reason: e.to_string(),
            })?;
        let resp = self
            .client
            .get(url.clone())
            .timeout(self.config.file_timeout)
            .send()
            .await
            .map_err(|e| classify(&url, e))?;
        Download::start(url, resp, file.size, Some(file.clone()))
    }

    /// Downloads one snapshot file whole, checked (see [`download`](Self::download)).
    pub async fn file(&self, file: &FileRef) -> Result<Vec<u8>, FetchError> {
        let mut download = self.download(file).await?;
        let mut body = Vec::with_capacity(file.size.min(64 << 20) as usize);
        while let Some(chunk) = download.chunk().await? {
            body.extend_from_slice(&chunk);
        }
        download.finish()?;
        Ok(body)
    }
}

/// A `200` response body read in chunks against a hard ceiling, hashed as it goes.
#[derive(Debug)]
pub struct Download {
    url: Url,
    resp: reqwest::Response,
    limit: u64,
    received: u64,
    hasher: blake3::Hasher,
    file: Option<FileRef>,
}

impl Download {
    fn start(
        url: Url,
        resp: reqwest::Response,
        limit: u64,
        file: Option<FileRef>,
    ) -> Result<Download, FetchError> {
        if resp.status() != StatusCode::OK {
            return Err(FetchError::Status {
                url,
                status: resp.status(),
            });
        }
        if resp.content_length().is_some_and(|len| len > limit) {
            return Err(FetchError::TooLarge { url, limit });
        }
        Ok(Download {
            url,
            resp,
            limit,
            received: 0,
            hasher: blake3::Hasher::new(),
            file,
        })
    }

    /// The next chunk, `None` at the end; an error past the ceiling, on a timeout or when the
    /// connection ends early.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, FetchError> {
        let Some(chunk) = self
            .resp
            .chunk()
            .await
            .map_err(|e| classify_body(&self.url, e))?
        else {
            return Ok(None);
        };
        self.received += chunk.len() as u64;
        if self.received > self.limit {
            return Err(FetchError::TooLarge {
                url: self.url.clone(),
                limit: self.limit,
            });
        }
        if self.file.is_some() {
            self.hasher.update(&chunk);
        }
        Ok(Some(chunk))
    }

    /// Checks a snapshot file's size and blake3 against the signed manifest.
    pub fn finish(self) -> Result<(), FetchError> {
        let Some(file) = self.file else {
            return Ok(());
        };
        if self.received != file.size {
            return Err(FetchError::SizeMismatch {
                name: file.name,
                got: self.received,
                expected: file.size,
            });
        }
        let got = Hash(*self.hasher.finalize().as_bytes());
        if got != file.blake3 {
            return Err(FetchError::HashMismatch {
                name: file.name,
                got,
                expected: file.blake3,
            });
        }
        Ok(())
    }
}

/// Reads a small `200` body whole, refusing more than `limit` bytes.
async fn read_body(url: &Url, resp: reqwest::Response, limit: u64) -> Result<Vec<u8>, FetchError> {
    let mut download = Download::start(url.clone(), resp, limit, None)?;
    let mut body = Vec::new();
    while let Some(chunk) = download.chunk().await? {
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A request error: timeout, or the origin could not be reached.
fn classify(url: &Url, e: reqwest::Error) -> FetchError {
    classify_as(url, e, |url, message| FetchError::Unreachable {
        url,
        message,
    })
}

/// An error while reading a body: timeout, or the body was cut short.
fn classify_body(url: &Url, e: reqwest::Error) -> FetchError {
    classify_as(url, e, |url, message| FetchError::Truncated {
        url,
        message,
    })
}

fn classify_as(
    url: &Url,
    e: reqwest::Error,
    other: impl FnOnce(Url, String) -> FetchError,
) -> FetchError {
    if e.is_timeout() {
        FetchError::Timeout { url: url.clone() }
    } else {
        other(url.clone(), error_chain(&e))
    }
}

/// The error and its sources on one line (reqwest's own message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}
