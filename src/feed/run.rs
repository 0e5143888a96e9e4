//! Plugging a feed into `fraudwall run`: configuration, start-up, reload triggers.
//!
//! With a `[feed]` section in the config (or `--feed URL --feed-key PUB --feed-poll 2s
//! --cache-dir DIR` on the command line), the node screens calls against the feed's layered
//! view instead of a local snapshot file:
//!
//! ```toml
//! [feed]
//! url = "http://feed.example/fw/manifest.json"   # the manifest; files are fetched beside it
//! keys = ["/etc/fraudwall/op.pub"]               # manifest signers (rotate by listing two)
//! poll = "2s"                                    # poll interval (jitter only shortens it)
//! cache_dir = "/var/lib/fraudwall/feed"          # last good state, served at start
//! pin_version = 0                                # 41 = stay on (or roll back to) version 41
//! ```
//!
//! [`start`] restores the cache (so the proxy screens from the first call, before the feed
//! answers), then runs the updater on the given tokio runtime. The returned [`FeedHandle`]
//! serves `/status` and `POST /reload`; [`reload_on_sighup`] wires `SIGHUP` to it.

use super::fetch::FetchConfig;
use super::layered::{Layered, SnapshotLoader};
use super::node::{FeedHandle, FeedNode, NodeConfig, UpdateError};
use super::poll::PollConfig;
use super::publish::pinned_manifest_url;
use arc_swap::ArcSwapOption;
use metrics::Recorder;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `[feed]`: a central feed instead of a local snapshot (the section as the file writes it;
/// `--feed`, `--feed-key`, `--feed-poll`, `--cache-dir` and `--feed-pin` override its keys).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FeedConfig {
    /// URL of the feed's `manifest.json` (empty: no feed, screen against the snapshot).
    pub url: String,
    /// Public key files (`fraudwall keygen`'s `.pub`) a manifest may be signed with.
    pub keys: Vec<PathBuf>,
    /// Poll interval.
    #[serde(with = "crate::config::value::duration")]
    pub poll: Duration,
    /// Cache directory for the last good state.
    pub cache_dir: PathBuf,
    /// Accept only this feed version (a deliberate rollback or freeze); 0 = follow the feed.
    pub pin_version: u64,
    /// Fraction of the interval removed at random to spread nodes, 0 to 1.
    pub jitter: f64,
    /// Ceiling of the error backoff.
    #[serde(with = "crate::config::value::duration")]
    pub max_backoff: Duration,
}

/// Default poll interval.
pub const DEFAULT_POLL: Duration = Duration::from_secs(30);
/// Default cache directory.
pub const DEFAULT_CACHE_DIR: &str = "/var/lib/fraudwall/feed";

impl Default for FeedConfig {
    fn default() -> Self {
        FeedConfig {
            url: String::new(),
            keys: Vec::new(),
            poll: DEFAULT_POLL,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
            pin_version: 0,
            jitter: 0.1,
            max_backoff: Duration::from_secs(300),
        }
    }
}

impl FeedConfig {
    /// Whether a feed is configured (`url` set).
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// The pinned version, if any.
    pub fn pinned(&self) -> Option<u64> {
        (self.pin_version != 0).then_some(self.pin_version)
    }

    /// Checks what can be checked before start; an error names the config key and the
    /// reason.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if !(self.url.starts_with("http://") || self.url.starts_with("https://")) {
            return Err((
                "feed.url",
                format!("{:?} is not an http:// or https:// URL", self.url),
            ));
        }
        if self.keys.is_empty() {
            return Err((
                "feed.keys",
                "no public key given (pass --feed-key /path/op.pub)".into(),
            ));
        }
        if self.poll < Duration::from_millis(100) {
            return Err((
                "feed.poll",
                format!("{:?} is too short (at least 100ms)", self.poll),
            ));
        }
        if self.cache_dir.as_os_str().is_empty() {
            return Err(("feed.cache_dir", "empty: a directory is needed".into()));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err((
                "feed.jitter",
                format!("{} must be between 0 and 1", self.jitter),
            ));
        }
        Ok(())
    }
}

/// Why the feed could not start.
#[derive(Debug, thiserror::Error)]
pub enum FeedStartError {
    /// A configuration value is wrong.
    #[error("[feed] {0}")]
    Config(String),
    /// A key file could not be read.
    #[error("[feed] key {path}: {source}")]
    Key {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: crate::blocklist::SignError,
    },
    /// The URL or cache directory is unusable.
    #[error("[feed] {0}")]
    Update(#[from] UpdateError),
}

/// A started feed: the view the proxy screens against, and the handle for status and reload.
pub struct StartedFeed {
    /// The layered view, swapped by the updater.
    pub view: Arc<ArcSwapOption<Layered>>,
    /// Status, metrics and reload.
    pub handle: Arc<FeedHandle>,
    /// The version restored from the cache at start, if any.
    pub restored: Option<u64>,
}

/// Restores the cache into a new view, then runs the updater on `runtime` until `shutdown`.
pub fn start(
    config: &FeedConfig,
    recorder: &impl Recorder,
    runtime: &tokio::runtime::Handle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<StartedFeed, FeedStartError> {
    config
        .validate()
        .map_err(|(key, reason)| FeedStartError::Config(format!("{key}: {reason}")))?;
    let mut keys = Vec::with_capacity(config.keys.len());
    for path in &config.keys {
        let key = crate::blocklist::sign::read_verifying_key(path).map_err(|source| {
            FeedStartError::Key {
                path: path.clone(),
                source,
            }
        })?;
        keys.push(key);
    }
    let url = match config.pinned() {
        Some(v) => pinned_manifest_url(&config.url, v),
        None => config.url.clone(),
    };
    let node_config = NodeConfig {
        url,
        keys,
        cache_dir: config.cache_dir.clone(),
        poll: PollConfig {
            interval: config.poll,
            jitter: config.jitter,
            max_backoff: config.max_backoff.max(config.poll),
            pinned: config.pinned(),
        },
        fetch: FetchConfig::default(),
    };
    let view = Arc::new(ArcSwapOption::empty());
    // The HTTP client and the updater's timers belong to the runtime they run on.
    let _guard = runtime.enter();
    let mut node = FeedNode::new(node_config, SnapshotLoader, Arc::clone(&view), recorder)?;
    let restored = node.restore();
    let handle = node.handle();
    runtime.spawn(node.run(shutdown));
    Ok(StartedFeed {
        view,
        handle,
        restored,
    })
}

/// Calls `reload` on every `SIGHUP`, on `runtime`, until the process ends.
pub fn reload_on_sighup(
    runtime: &tokio::runtime::Handle,
    reload: impl Fn() + Send + Sync + 'static,
) -> std::io::Result<()> {
    let _guard = runtime.enter();
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    runtime.spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the blocklist");
            reload();
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_defaults_and_checks() {
        let ok = FeedConfig {
            url: "http://127.0.0.1:8080/manifest.json".into(),
            keys: vec!["/tmp/op.pub".into()],
            poll: Duration::from_secs(2),
            ..Default::default()
        };
        assert_eq!(ok.validate(), Ok(()));
        assert_eq!(ok.cache_dir, PathBuf::from(DEFAULT_CACHE_DIR));
        let check = |f: &dyn Fn(&mut FeedConfig)| {
            let mut c = ok.clone();
            f(&mut c);
            c.validate().map_err(|(key, _)| key)
        };
        assert_eq!(check(&|c| c.keys.clear()), Err("feed.keys"));
        assert_eq!(check(&|c| c.url = "ftp://x".into()), Err("feed.url"));
        assert_eq!(
            check(&|c| c.poll = Duration::from_millis(5)),
            Err("feed.poll")
        );
        assert_eq!(check(&|c| c.jitter = 2.0), Err("feed.jitter"));
        assert_eq!(
            check(&|c| c.cache_dir = PathBuf::new()),
            Err("feed.cache_dir")
        );
    }
}
