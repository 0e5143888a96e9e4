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
//! # pin_version = 41                             # stay on (or roll back to) this version
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
use serde::Deserialize;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The `[feed]` section of the run configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedConfig {
    /// URL of the feed's `manifest.json`.
    pub url: String,
    /// Public key files (`fraudwall keygen`'s `.pub`) a manifest may be signed with.
    pub keys: Vec<PathBuf>,
    /// Poll interval.
    #[serde(default = "default_poll", with = "humantime_serde_compat")]
    pub poll: Duration,
    /// Cache directory for the last good state.
    #[serde(default = "default_cache_dir")]
    pub cache_dir: PathBuf,
    /// Accept only this feed version (a deliberate rollback or freeze).
    #[serde(default)]
    pub pin_version: Option<u64>,
    /// Fraction of the interval removed at random to spread nodes.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Ceiling of the error backoff.
    #[serde(default = "default_max_backoff", with = "humantime_serde_compat")]
    pub max_backoff: Duration,
}

fn default_poll() -> Duration {
    Duration::from_secs(30)
}
fn default_cache_dir() -> PathBuf {
    PathBuf::from("/var/lib/fraudwall/feed")
}
fn default_jitter() -> f64 {
    0.1
}
fn default_max_backoff() -> Duration {
    Duration::from_secs(300)
}

/// Durations written as `"2s"`, `"500ms"`, `"5m"`.
mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| {
            serde::de::Error::custom(format!("{s:?} is not a duration like \"2s\": {e}"))
        })
    }
}

impl FeedConfig {
    /// A config from the command-line flags (`--feed`, `--feed-key`, `--feed-poll`,
    /// `--cache-dir`, `--feed-pin`), defaults for the rest.
    pub fn from_flags(
        url: String,
        keys: Vec<PathBuf>,
        poll: Option<Duration>,
        cache_dir: Option<PathBuf>,
        pin_version: Option<u64>,
    ) -> Self {
        FeedConfig {
            url,
            keys,
            poll: poll.unwrap_or_else(default_poll),
            cache_dir: cache_dir.unwrap_or_else(default_cache_dir),
            pin_version,
            jitter: default_jitter(),
            max_backoff: default_max_backoff(),
        }
    }

    /// Checks what can be checked before start: keys given, poll interval sane.
    pub fn validate(&self) -> Result<(), FeedStartError> {
        if self.keys.is_empty() {
            return Err(FeedStartError::Config(
                "feed.keys: no public key given (pass --feed-key /path/op.pub)".into(),
            ));
        }
        if self.poll < Duration::from_millis(100) {
            return Err(FeedStartError::Config(format!(
                "feed.poll: {:?} is too short (at least 100ms)",
                self.poll
            )));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(FeedStartError::Config(format!(
                "feed.jitter: {} must be between 0 and 1",
                self.jitter
            )));
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
    config.validate()?;
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
    let url = match config.pin_version {
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
            pinned: config.pin_version,
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
    fn config_parses_with_defaults_and_checks() {
        let c: FeedConfig = toml::from_str(
            "url = \"http://127.0.0.1:8080/manifest.json\"\nkeys = [\"/tmp/op.pub\"]\npoll = \"2s\"\n",
        )
        .expect("parse");
        assert_eq!(c.poll, Duration::from_secs(2));
        assert_eq!(c.pin_version, None);
        assert!(c.validate().is_ok());
        let err = toml::from_str::<FeedConfig>("url = \"x\"\nkeys = []\npoll = \"soon\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("not a duration"), "{err}");
        let mut bad = c.clone();
        bad.keys.clear();
        assert!(bad.validate().is_err());
        bad = c;
        bad.poll = Duration::from_millis(1);
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<FeedConfig>("url = \"x\"\nkeys = []\nsurprise = 1\n").is_err());
    }
}
