//! The node side of a feed, inside `fraudwall run`: poll, verify, fetch, cache, load, swap.
//!
//! [`FeedNode`] drives the sans-I/O [`Poller`] with real time, randomness, HTTP
//! ([`Fetcher`]) and files ([`CacheDir`]). One update, in order, with nothing trusted before
//! its check:
//!
//! 1. fetch `manifest.json` (conditional on the ETag) and `manifest.json.sig`;
//! 2. verify the signature against the configured keys, parse and validate;
//! 3. ask the poller: up to date, refused (rollback, pin, version reuse) or files to fetch;
//! 4. download each missing file (bounded, size and blake3 checked) into the cache
//!    (temporary file, fsync, rename);
//! 5. open and verify the snapshots ([`Loader`], on a blocking thread and a one-thread
//!    rayon pool: mapping and hashing a large base takes a while and must neither stall the
//!    runtime nor take every core from the packet workers);
//! 6. record the manifest in the cache, swap the new view in with one atomic store, and
//!    release the old view on this task once no packet worker holds it any more, so the
//!    unmap never lands on the packet path.
//!
//! Any fault (unreachable, slow, 5xx, truncated, garbage, bad signature, unknown key, older
//! version, size or hash mismatch, disk full, invalid snapshot) stops the update at its step
//! with a typed [`UpdateError`], a `warn` log line naming the reason, and a count in
//! `fraudwall_feed_update_errors_total{reason}`; the active view keeps answering and the
//! poller backs off.
//!
//! At start, [`FeedNode::restore`] loads the last good state from the cache before the
//! first poll, so a node that restarts while its feed is down still screens calls.

use super::cache::{CacheDir, CacheError};
use super::fetch::{FetchConfig, FetchError, Fetcher, ManifestResponse};
use super::list_kind::ListKind;
use super::manifest::{Manifest, ManifestError, UncheckedManifest};
use super::poll::{Decision, PollConfig, Poller, Refusal};
use arc_swap::ArcSwapOption;
use ed25519_dalek::VerifyingKey;
use metrics::{Counter, Gauge, Histogram, Key, Label, Metadata, Recorder};
use serde::Serialize;
use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// Opens the snapshot files of a verified manifest into the view the proxy reads.
///
/// Implemented for the blocklist's layered snapshots in [`super::layered`]; tests use
/// simpler views.
pub trait Loader: Send + Sync + 'static {
    /// What the proxy reads (behind an `ArcSwapOption`).
    type View: Send + Sync + 'static;

    /// Opens and verifies the files of `manifest`, all present in `cache`. `previous` is the
    /// active view, whose layers may be reused when the base is unchanged.
    fn load(
        &self,
        previous: Option<&Self::View>,
        manifest: &Manifest,
        cache: &CacheDir,
    ) -> Result<Self::View, LoadError>;
}

/// A snapshot file that passed the manifest's hash but fails to open or verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("snapshot {file} is not usable: {message}")]
pub struct LoadError {
    /// The file.
    pub file: String,
    /// Why.
    pub message: String,
}

impl LoadError {
    /// The file `file` did not open or verify, for `why`.
    pub fn of(file: &str, why: impl std::fmt::Display) -> LoadError {
        LoadError {
            file: file.to_string(),
            message: why.to_string(),
        }
    }
}

/// Why one update did not happen. The active view is untouched in every case.
#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// HTTP trouble, or a file that does not match the manifest.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The manifest or its signature was refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The poller refused a verified manifest.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// The cache could not be written or read.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A snapshot failed to open or verify.
    #[error(transparent)]
    Load(#[from] LoadError),
}

impl UpdateError {
    /// Short reason for the `reason` label of `fraudwall_feed_update_errors_total`.
    pub fn reason(&self) -> &'static str {
        match self {
            UpdateError::Fetch(e) => e.reason(),
            UpdateError::Manifest(e) => e.reason(),
            UpdateError::Refused(e) => e.reason(),
            UpdateError::Cache(e) => e.reason(),
            UpdateError::Load(_) => "snapshot_invalid",
        }
    }
}

/// Wait before fetching a manifest pair again after a bad signature (a publish may have
/// been replacing the two files).
const SIGNATURE_RETRY: Duration = Duration::from_millis(100);

/// Every `reason` label, registered up front so `/metrics` shows zeros.
pub const ERROR_REASONS: [&str; 20] = [
    "bad_url",
    "unreachable",
    "timeout",
    "http_status",
    "truncated",
    "too_large",
    "size_mismatch",
    "hash_mismatch",
    "garbage",
    "bad_signature",
    "unknown_key",
    "rollback",
    "version_reuse",
    "not_pinned",
    "disk_full",
    "cache_io",
    "cache_corrupt",
    "snapshot_invalid",
    "expired",
    "internal",
];

/// The feed's metrics, registered once per followed list on the node's recorder. Every series
/// carries the list's name (`list` = `blocklist`, `subscribers`, `protected`).
///
/// | metric | type | labels |
/// |---|---|---|
/// | `fraudwall_feed_last_success_timestamp_seconds` | gauge | `list` |
/// | `fraudwall_feed_update_errors_total` | counter | `list`, `reason` |
/// | `fraudwall_feed_swap_duration_seconds` | histogram | `list` |
/// | `fraudwall_feed_active_version` | gauge | `list` |
/// | `fraudwall_feed_updates_total` | counter | `list`, `kind` (base, delta) |
#[derive(Debug, Clone)]
pub struct FeedMetrics {
    last_success: Gauge,
    errors: HashMap<&'static str, Counter>,
    swap: Histogram,
    version: Gauge,
    updates_base: Counter,
    updates_delta: Counter,
}

impl FeedMetrics {
    /// Registers the metrics of the list `list` on `recorder`.
    pub fn new(recorder: &impl Recorder, list: ListKind) -> Self {
        let meta = Metadata::new(module_path!(), metrics::Level::INFO, Some(module_path!()));
        let key = |n: &'static str, more: Option<(&'static str, &'static str)>| {
            let mut labels = vec![Label::new("list", list.as_str())];
            labels.extend(more.map(|(k, v)| Label::new(k, v)));
            Key::from_parts(n, labels)
        };
        let gauge = |n: &'static str| recorder.register_gauge(&key(n, None), &meta);
        let updates = |kind: &'static str| {
            recorder.register_counter(
                &key("fraudwall_feed_updates_total", Some(("kind", kind))),
                &meta,
            )
        };
        FeedMetrics {
            last_success: gauge("fraudwall_feed_last_success_timestamp_seconds"),
            errors: ERROR_REASONS
                .iter()
                .map(|r| {
                    let key = key("fraudwall_feed_update_errors_total", Some(("reason", r)));
                    (*r, recorder.register_counter(&key, &meta))
                })
                .collect(),
            swap: recorder
                .register_histogram(&key("fraudwall_feed_swap_duration_seconds", None), &meta),
            version: gauge("fraudwall_feed_active_version"),
            updates_base: updates("base"),
            updates_delta: updates("delta"),
        }
    }

    /// Counts one refused update.
    pub fn error(&self, reason: &'static str) {
        if let Some(c) = self
            .errors
            .get(reason)
            .or_else(|| self.errors.get("internal"))
        {
            c.increment(1);
        }
    }

    /// A poll succeeded (the feed answered and verified, whether or not it changed).
    fn success(&self, now_unix: u64) {
        self.last_success.set(now_unix as f64);
    }

    fn applied(&self, version: u64, new_base: bool, swap: Duration) {
        self.version.set(version as f64);
        self.swap.record(swap.as_secs_f64());
        if new_base {
            self.updates_base.increment(1);
        } else {
            self.updates_delta.increment(1);
        }
    }
}

/// Where the active view came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// Nothing loaded yet.
    None,
    /// Restored from the cache directory at start.
    Cache,
    /// Downloaded from the feed.
    Feed,
    /// A local snapshot file.
    File,
}

/// The feed part of `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct FeedStatus {
    /// Which of the feed's lists this is.
    pub list: ListKind,
    /// Where the active view came from.
    pub source: Source,
    /// The manifest URL (or local file).
    pub url: String,
    /// The feed's name.
    pub feed: Option<String>,
    /// The active manifest version.
    pub active_version: Option<u64>,
    /// The base file in use.
    pub base: Option<String>,
    /// The delta files in use, oldest first.
    pub deltas: Vec<String>,
    /// When the active manifest was created (Unix seconds).
    pub created: Option<u64>,
    /// Seconds since the active manifest was created.
    pub age_secs: Option<u64>,
    /// When the active manifest expires (Unix seconds).
    pub expires: Option<u64>,
    /// The manifest has expired: the feed looks frozen.
    pub expired: bool,
    /// Last successful poll (Unix seconds).
    pub last_success: Option<u64>,
    /// Consecutive failed updates.
    pub failures: u32,
    /// The last error, if the last update failed.
    pub last_error: Option<String>,
}

impl FeedStatus {
    fn new(list: ListKind, url: String) -> Self {
        FeedStatus {
            list,
            source: Source::None,
            url,
            feed: None,
            active_version: None,
            base: None,
            deltas: vec![],
            created: None,
            age_secs: None,
            expires: None,
            expired: false,
            last_success: None,
            failures: 0,
            last_error: None,
        }
    }

    fn set_manifest(&mut self, m: &Manifest, source: Source) {
        self.source = source;
        self.feed = Some(m.feed.clone());
        self.active_version = Some(m.version);
        self.base = Some(m.base.name.clone());
        self.deltas = m.deltas.iter().map(|d| d.name.clone()).collect();
        self.created = Some(m.created);
        self.expires = Some(m.expires);
    }
}

/// What the admin listener and signal handlers share with a running [`FeedNode`].
#[derive(Debug)]
pub struct FeedHandle {
    status: Mutex<FeedStatus>,
    reload: tokio::sync::Notify,
    metrics: FeedMetrics,
}

impl FeedHandle {
    /// The feed status for `/status` (age computed at `now_unix`).
    pub fn status(&self, now_unix: u64) -> FeedStatus {
        let mut s = match self.status.lock() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        s.age_secs = s.created.map(|c| now_unix.saturating_sub(c));
        s.expired = s.expires.is_some_and(|e| now_unix >= e);
        s
    }

    /// Asks the node to poll now (`SIGHUP`, `POST /reload`).
    pub fn request_reload(&self) {
        self.reload.notify_one();
    }

    /// The feed metrics.
    pub fn metrics(&self) -> &FeedMetrics {
        &self.metrics
    }

    fn update(&self, f: impl FnOnce(&mut FeedStatus)) {
        match self.status.lock() {
            Ok(mut s) => f(&mut s),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }
}

/// How a node follows a feed.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// Which of the feed's lists this node follows (metrics labels, logs, `/status`).
    pub list: ListKind,
    /// The manifest URL.
    pub url: String,
    /// Keys a manifest may be signed with.
    pub keys: Vec<VerifyingKey>,
    /// The cache directory.
    pub cache_dir: PathBuf,
    /// Polling.
    pub poll: PollConfig,
    /// HTTP timeouts.
    pub fetch: FetchConfig,
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollOutcome {
    /// No poll was due.
    NotDue,
    /// The feed has nothing new.
    UpToDate,
    /// A new manifest version is active.
    Applied {
        /// The new version.
        version: u64,
        /// Files downloaded.
        fetched: usize,
    },
}

/// A node following one feed. See the module docs.
pub struct FeedNode<L: Loader> {
    list: ListKind,
    poller: Poller,
    fetcher: Fetcher,
    cache: CacheDir,
    keys: Vec<VerifyingKey>,
    loader: Arc<L>,
    target: Arc<ArcSwapOption<L::View>>,
    handle: Arc<FeedHandle>,
    verify_pool: Option<Arc<rayon::ThreadPool>>,
}

impl<L: Loader> FeedNode<L> {
    /// A node that will swap views into `target`, with metrics registered on `recorder`.
    pub fn new(
        config: NodeConfig,
        loader: L,
        target: Arc<ArcSwapOption<L::View>>,
        recorder: &impl Recorder,
    ) -> Result<Self, UpdateError> {
        let fetcher = Fetcher::new(&config.url, config.fetch.clone())?;
        let cache = CacheDir::open(&config.cache_dir)?;
        let handle = Arc::new(FeedHandle {
            status: Mutex::new(FeedStatus::new(config.list, config.url.clone())),
            reload: tokio::sync::Notify::new(),
            metrics: FeedMetrics::new(recorder, config.list),
        });
        Ok(FeedNode {
            list: config.list,
            poller: Poller::new(config.poll, Instant::now()),
            fetcher,
            cache,
            keys: config.keys,
            loader: Arc::new(loader),
            target,
            handle,
            verify_pool: check_pool("feed-verify").map(Arc::new),
        })
    }

    /// The handle for `/status`, `/reload` and signals.
    pub fn handle(&self) -> Arc<FeedHandle> {
        Arc::clone(&self.handle)
    }

    /// Loads the last good state from the cache and swaps it in. Returns its version, or
    /// `None` for an empty cache. A cache that fails its checks is logged, counted and
    /// ignored: the node then waits for the feed.
    pub fn restore(&mut self) -> Option<u64> {
        let restored = self.cache.restore(&self.keys).map_err(UpdateError::from);
        let manifest = match restored {
            Ok(Some((manifest, _))) => manifest,
            Ok(None) => return None,
            Err(e) => {
                self.fail(&e, "cache restore");
                return None;
            }
        };
        match self.loader.load(None, &manifest, &self.cache) {
            Ok(view) => {
                let started = Instant::now();
                let old = self.target.swap(Some(Arc::new(view)));
                let swap = started.elapsed();
                release_off_path(old);
                self.handle.metrics.applied(manifest.version, true, swap);
                self.handle
                    .update(|s| s.set_manifest(&manifest, Source::Cache));
                tracing::info!(
                    list = %self.list,
                    version = manifest.version,
                    feed = %manifest.feed,
                    deltas = manifest.deltas.len(),
                    "feed: serving the last good {} from the cache",
                    self.list
                );
                let version = manifest.version;
                self.poller.restore(manifest);
                Some(version)
            }
            Err(e) => {
                self.fail(&e.into(), "cache restore");
                None
            }
        }
    }

    /// Runs until `shutdown` completes: polls when due or when a reload is requested.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let due = tokio::time::Instant::from_std(self.poller.next_poll());
            let handle = Arc::clone(&self.handle);
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep_until(due) => {}
                () = handle.reload.notified() => self.poller.poll_now(Instant::now()),
            }
            // Errors are logged and counted inside; the next poll is scheduled either way.
            let _ = self.poll_once().await;
        }
    }

    /// Polls once if due (or requested), applying what the feed offers.
    pub async fn poll_once(&mut self) -> Result<PollOutcome, UpdateError> {
        let Some(request) = self.poller.poll_due(Instant::now()) else {
            return Ok(PollOutcome::NotDue);
        };
        let result = self.update(request.if_none_match.as_deref()).await;
        match &result {
            Ok(_) => {
                let now = unix_now();
                self.handle.metrics.success(now);
                let failures = self.poller.failures();
                self.handle.update(|s| {
                    s.last_success = Some(now);
                    s.failures = failures;
                    s.last_error = None;
                });
            }
            Err(e) => {
                // A refusal has already been scheduled as a normal poll by the poller.
                if !matches!(e, UpdateError::Refused(_)) {
                    self.poller.on_error(Instant::now(), random());
                }
                self.fail(e, "feed update");
            }
        }
        result
    }

    fn fail(&self, e: &UpdateError, what: &str) {
        let reason = e.reason();
        tracing::warn!(
            reason,
            error = %e,
            url = %self.fetcher.manifest_url(),
            list = %self.list,
            "{what} refused; the active {} keeps answering",
            self.list
        );
        self.handle.metrics.error(reason);
        let failures = self.poller.failures();
        self.handle.update(|s| {
            s.failures = failures;
            s.last_error = Some(format!("{reason}: {e}"));
        });
    }

    async fn update(&mut self, if_none_match: Option<&str>) -> Result<PollOutcome, UpdateError> {
        let (unchecked, etag) = match self.fetcher.manifest(if_none_match).await? {
            ManifestResponse::NotModified => {
                self.poller.on_not_modified(Instant::now(), random());
                self.warn_if_expired(self.poller.active().cloned().as_ref());
                return Ok(PollOutcome::UpToDate);
            }
            ManifestResponse::Fresh { manifest, etag } => (manifest, etag),
        };
        let (manifest, unchecked, etag) = match unchecked.verify(&self.keys) {
            Ok(m) => (m, unchecked, etag),
            // `manifest.json` and its `.sig` are two files: fetched while a publish replaces
            // them, they can be a mismatched pair. Fetch both once more before refusing.
            Err(ManifestError::BadSignature(_)) => {
                tokio::time::sleep(SIGNATURE_RETRY).await;
                match self.fetcher.manifest(None).await? {
                    ManifestResponse::Fresh { manifest, etag } => {
                        (manifest.verify(&self.keys)?, manifest, etag)
                    }
                    ManifestResponse::NotModified => return Ok(PollOutcome::UpToDate),
                }
            }
            Err(e) => return Err(e.into()),
        };
        let decision =
            self.poller
                .on_manifest(Instant::now(), unix_now(), random(), &manifest, etag);
        match decision {
            Decision::UpToDate { expired } => {
                if expired {
                    self.warn_if_expired(Some(&manifest));
                }
                // Keep the status's expiry in step with a refreshed, unchanged manifest.
                self.handle
                    .update(|s| s.expires = Some(manifest.expires.max(s.expires.unwrap_or(0))));
                Ok(PollOutcome::UpToDate)
            }
            Decision::Refuse(r) => Err(r.into()),
            Decision::Fetch { plan, expired } => {
                if expired {
                    self.warn_if_expired(Some(&manifest));
                }
                let mut fetched = 0;
                for file in &plan.fetch {
                    if self.cache.has(file) {
                        continue;
                    }
                    // Streamed to a temporary file and hashed on the way; it gets its
                    // name only once size and hash match the signed manifest.
                    let mut download = self.fetcher.download(file).await?;
                    let mut out = self.cache.begin(&file.name)?;
                    while let Some(chunk) = download.chunk().await? {
                        out.write(&chunk)?;
                    }
                    download.finish()?;
                    out.commit()?;
                    fetched += 1;
                }
                self.apply(manifest, unchecked, plan.new_base).await?;
                Ok(PollOutcome::Applied {
                    version: self.poller.active().map_or(0, |m| m.version),
                    fetched,
                })
            }
        }
    }

    async fn apply(
        &mut self,
        manifest: Manifest,
        unchecked: UncheckedManifest,
        new_base: bool,
    ) -> Result<(), UpdateError> {
        let loader = Arc::clone(&self.loader);
        let previous = self.target.load_full();
        let cache = self.cache.clone();
        let m = manifest.clone();
        let pool = self.verify_pool.clone();
        let view = tokio::task::spawn_blocking(move || {
            let load = || loader.load(previous.as_deref(), &m, &cache);
            match pool {
                Some(pool) => pool.install(load),
                None => load(),
            }
        })
        .await
        .map_err(|e| LoadError::of(&manifest.base.name, format!("loader task failed: {e}")))??;
        // The cache names the new state before it is served: a restart resumes from it.
        self.cache.store_manifest(&unchecked)?;
        let started = Instant::now();
        let old = self.target.swap(Some(Arc::new(view)));
        let swap = started.elapsed();
        release_off_path(old);
        if let Err(e) = self.cache.prune(&manifest) {
            tracing::warn!(error = %e, "feed: could not prune the cache directory");
        }
        tracing::info!(
            version = manifest.version,
            feed = %manifest.feed,
            base = %manifest.base.name,
            deltas = manifest.deltas.len(),
            swap_us = swap.as_micros() as u64,
            "feed: new {} version active",
            self.list
        );
        self.handle
            .metrics
            .applied(manifest.version, new_base, swap);
        self.handle
            .update(|s| s.set_manifest(&manifest, Source::Feed));
        self.poller.on_applied(Instant::now(), random(), manifest);
        Ok(())
    }

    fn warn_if_expired(&self, manifest: Option<&Manifest>) {
        let now = unix_now();
        if let Some(m) = manifest.filter(|m| m.is_expired(now)) {
            tracing::warn!(
                version = m.version,
                expired_secs_ago = now.saturating_sub(m.expires),
                "feed: the manifest has expired; the feed looks frozen (publisher down, or a replayed manifest). Still serving the active version"
            );
            self.handle.metrics.error("expired");
        }
    }
}

/// How much lower than the thread that builds it a [`check_pool`] thread runs (nice
/// levels; the result is capped at 19): below the packet workers, so a list check takes
/// what they leave, yet still runs on a node they keep busy (unlike `SCHED_IDLE`).
pub const CHECK_NICE: i32 = 10;

/// The thread pool a list is opened and checked on when it is swapped in while calls flow
/// (a feed update, a changed list file): one thread named `name`, [`CHECK_NICE`] levels
/// below its builder on Linux.
///
/// Opening a list hashes and checks it with rayon; on the global pool that would take every
/// core from the packet workers for the length of the check (for 100M subscribers with two
/// entries each, about 24 CPU-seconds). One low-priority thread of its own keeps an update
/// to one core, yielding to the workers. `None` if the thread cannot be started (the open
/// then runs on the caller's thread).
pub fn check_pool(name: &'static str) -> Option<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .thread_name(move |_| name.into())
        .start_handler(|_| {
            #[cfg(target_os = "linux")]
            {
                // SAFETY: on Linux, PRIO_PROCESS with who = 0 reads and sets the calling
                // thread's nice value (inherited from the thread that built the pool); no
                // memory is touched. getpriority's -1 is also a valid value: read as such.
                let r = unsafe {
                    let nice = libc::getpriority(libc::PRIO_PROCESS, 0);
                    libc::setpriority(libc::PRIO_PROCESS, 0, (nice + CHECK_NICE).min(19))
                };
                if r != 0 {
                    tracing::debug!(
                        "list check thread: priority not lowered ({})",
                        std::io::Error::last_os_error()
                    );
                }
            }
        })
        .build()
        .ok()
}

/// Drops the last reference to an old view on a blocking thread, once no packet worker
/// still holds it (bounded wait), so unmapping a large snapshot never lands on the packet
/// path.
pub fn release_off_path<T: Send + Sync + 'static>(old: Option<Arc<T>>) {
    let Some(old) = old else { return };
    let release = move || {
        let deadline = Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(&old) > 1 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(release);
        }
        Err(_) => release(),
    }
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A random number for jitter (0 if the OS has none to give: then no jitter).
fn random() -> u64 {
    getrandom::u64().unwrap_or(0)
}
