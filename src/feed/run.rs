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
//! lists = ["blocklist", "subscribers", "protected"]  # the feed's lists this node follows
//! ```
//!
//! [`start`] restores the cache of each followed list (so the proxy screens from the first
//! call, before the feed answers), then runs one updater per list on the given tokio
//! runtime: each list has its own manifest ([`super::ListKind::manifest_url`]), version,
//! cache subdirectory, backoff and metrics, and is swapped on its own. The returned
//! [`FeedHandle`]s serve `/status` and `POST /reload`; [`reload_on_sighup`] wires `SIGHUP`
//! to them.

use super::fetch::FetchConfig;
use super::layered::{Layered, SnapshotLoader};
use super::list_kind::ListKind;
use super::node::{FeedHandle, FeedNode, Loader, NodeConfig, UpdateError};
use super::poll::PollConfig;
use super::publish::pinned_manifest_url;
use super::whole::{ProtectedLoader, SubscriberLoader};
use crate::peers::PeerGroups;
use crate::protected::ProtectedList;
use crate::subscribers::SubscriberList;
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
    /// The feed's lists this node follows. The blocklist is always one of them; add
    /// `subscribers` and `protected` to take those from the feed too (instead of
    /// `lists.subscribers` and `lists.protected` files).
    pub lists: Vec<ListKind>,
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
            lists: vec![ListKind::Blocklist],
        }
    }
}

impl FeedConfig {
    /// Whether a feed is configured (`url` set).
    pub fn enabled(&self) -> bool {
        !self.url.trim().is_empty()
    }

    /// Whether this node takes `list` from the feed.
    pub fn follows(&self, list: ListKind) -> bool {
        self.enabled() && self.lists.contains(&list)
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
        if !self.lists.contains(&ListKind::Blocklist) {
            return Err((
                "feed.lists",
                "must name \"blocklist\": a feed always carries the blocklist".into(),
            ));
        }
        for (i, l) in self.lists.iter().enumerate() {
            if self.lists[..i].contains(l) {
                return Err(("feed.lists", format!("\"{l}\" is named twice")));
            }
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

/// Where the lists a feed may carry besides the blocklist are swapped in: the rule chain's
/// own slots, so a list from the feed replaces the one the chain reads.
#[derive(Clone)]
pub struct ListTargets {
    /// The subscriber list's slot.
    pub subscribers: Arc<ArcSwapOption<SubscriberList>>,
    /// The protected list's slot.
    pub protected: Arc<ArcSwapOption<ProtectedList>>,
    /// The node's peer groups (a protected list naming another group is refused).
    pub groups: PeerGroups,
}

/// A started feed: the view the proxy screens against, and the handles for status and reload.
pub struct StartedFeed {
    /// The blocklist's layered view, swapped by its updater.
    pub view: Arc<ArcSwapOption<Layered>>,
    /// The blocklist's status, metrics and reload.
    pub handle: Arc<FeedHandle>,
    /// The other lists followed (`feed.lists`), in [`ListKind::ALL`] order.
    pub lists: Vec<Arc<FeedHandle>>,
    /// The blocklist version restored from the cache at start, if any.
    pub restored: Option<u64>,
}

impl StartedFeed {
    /// Every followed list's handle, the blocklist's first.
    pub fn handles(&self) -> impl Iterator<Item = &Arc<FeedHandle>> {
        std::iter::once(&self.handle).chain(self.lists.iter())
    }
}

/// Restores each followed list's cache into its slot (the blocklist into a new view, the
/// others into `targets`), then runs one updater per list on `runtime` until `shutdown`.
pub fn start(
    config: &FeedConfig,
    targets: &ListTargets,
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
    let node_config = |list: ListKind| {
        let url = list.manifest_url(&config.url);
        // A pin names a blocklist version; the other lists follow their own feed.
        let pinned = config.pinned().filter(|_| list == ListKind::Blocklist);
        NodeConfig {
            list,
            url: match pinned {
                Some(v) => pinned_manifest_url(&url, v),
                None => url,
            },
            keys: keys.clone(),
            cache_dir: match list.feed_subdir() {
                None => config.cache_dir.clone(),
                Some(sub) => config.cache_dir.join(sub),
            },
            poll: PollConfig {
                interval: config.poll,
                jitter: config.jitter,
                max_backoff: config.max_backoff.max(config.poll),
                pinned,
            },
            fetch: FetchConfig::default(),
        }
    };
    // One shutdown for every updater.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    // The HTTP client and the updaters' timers belong to the runtime they run on.
    let _guard = runtime.enter();
    runtime.spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let view = Arc::new(ArcSwapOption::empty());
    let mut node = FeedNode::new(
        node_config(ListKind::Blocklist),
        SnapshotLoader,
        Arc::clone(&view),
        recorder,
    )?;
    let restored = node.restore();
    let handle = node.handle();
    spawn_node(runtime, node, stop_rx.clone());
    let mut lists = Vec::new();
    for list in ListKind::ALL
        .into_iter()
        .filter(|l| config.lists.contains(l))
    {
        let handle = match list {
            ListKind::Blocklist => continue,
            ListKind::Subscribers => start_list(
                node_config(list),
                SubscriberLoader,
                Arc::clone(&targets.subscribers),
                recorder,
                runtime,
                stop_rx.clone(),
            )?,
            ListKind::Protected => start_list(
                node_config(list),
                ProtectedLoader {
                    groups: targets.groups.clone(),
                },
                Arc::clone(&targets.protected),
                recorder,
                runtime,
                stop_rx.clone(),
            )?,
        };
        lists.push(handle);
    }
    Ok(StartedFeed {
        view,
        handle,
        lists,
        restored,
    })
}

/// Starts the updater of one more list: its cache restored into `target`, then run.
fn start_list<L: Loader>(
    config: NodeConfig,
    loader: L,
    target: Arc<ArcSwapOption<L::View>>,
    recorder: &impl Recorder,
    runtime: &tokio::runtime::Handle,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<Arc<FeedHandle>, FeedStartError> {
    let list = config.list;
    let mut node = FeedNode::new(config, loader, target, recorder)?;
    if let Some(v) = node.restore() {
        tracing::info!("feed: {list} version {v} restored from the cache");
    }
    let handle = node.handle();
    spawn_node(runtime, node, stop);
    Ok(handle)
}

/// Runs `node` on `runtime` until `stop` turns true.
fn spawn_node<L: Loader>(
    runtime: &tokio::runtime::Handle,
    node: FeedNode<L>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    runtime.spawn(node.run(async move {
        let _ = stop.wait_for(|stop| *stop).await;
    }));
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
            tracing::info!("SIGHUP: polling the feed and the list files now");
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
            check(&|c| c.lists = vec![ListKind::Subscribers]),
            Err("feed.lists")
        );
        assert_eq!(
            check(&|c| c.lists = vec![
                ListKind::Blocklist,
                ListKind::Protected,
                ListKind::Protected
            ]),
            Err("feed.lists")
        );
        assert_eq!(
            check(&|c| c.lists = vec![ListKind::Protected, ListKind::Blocklist]),
            Ok(())
        );
        assert_eq!(
            check(&|c| c.cache_dir = PathBuf::new()),
            Err("feed.cache_dir")
        );
    }
}
