//! The list files a node reads itself: the blocklist snapshot (`blocklist.snapshot`, or the
//! embedded sample) and the `[lists]` files, and the thread that re-reads them.
//!
//! Each list lives in an `ArcSwapOption` the rule chain reads. A changed file is opened,
//! checked and swapped in whole; one that fails is refused, logged and counted, and the
//! loaded list keeps answering ([`SnapshotSlot::reload_if_changed`],
//! [`ListSlots::reload_if_changed`]). Publish a new version by renaming it over the old
//! path: the loaded one is memory-mapped.
//!
//! # Off the packet path
//!
//! Opening a list checks it: a blocklist's hash and FST, a subscriber list's hash and
//! caller filter (about 14 s and 24 CPU-seconds for 100M subscribers with two entries
//! each, on two cores). Every reopen while calls flow happens on the [`FileReloader`]'s
//! thread, inside [`check_pool`] (one thread 10 nice levels down, as a feed's updates use), so a
//! reload takes at most one core and yields it to the packet workers. `SIGHUP` and
//! `POST /reload` only ask the reloader to look now ([`ReloadRequest::request`]) and return
//! at once: no async task waits on a list check.

use arc_swap::ArcSwapOption;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::runtime::{RuntimeError, SAMPLE_CSV};
use crate::blocklist::{Snapshot, SnapshotError};
use crate::feed::node::{check_pool, release_off_path};
use crate::file_stamp::FileStamp;
use crate::protected::ProtectedList;
use crate::subscribers::SubscriberList;
use crate::telemetry::Telemetry;

/// The current blocklist snapshot, shared with the screen, and how it is refreshed.
pub struct SnapshotSlot {
    current: Arc<ArcSwapOption<Snapshot>>,
    path: Option<PathBuf>,
    /// The file's stamp taken just before it was first opened: a file replaced while it
    /// was being opened is seen as changed by the first check.
    loaded: Option<FileStamp>,
    telemetry: Arc<Telemetry>,
    _sample_dir: Option<tempfile::TempDir>,
}

/// The subscriber and protected list slots (`[lists]`), shared with the rule chain, and the
/// files they are reloaded from.
pub struct ListSlots {
    subscribers: Arc<ArcSwapOption<SubscriberList>>,
    protected: Arc<ArcSwapOption<ProtectedList>>,
    subscribers_path: Option<PathBuf>,
    protected_path: Option<PathBuf>,
    groups: crate::peers::PeerGroups,
    /// The files' stamps taken just before they were first opened.
    loaded: ListStamps,
    telemetry: Arc<Telemetry>,
}

/// File stamps of the lists, for [`ListSlots::reload_if_changed`].
pub type ListStamps = [Option<FileStamp>; 2];

impl ListSlots {
    /// Opens the configured lists (none configured: empty slots, those stages pass). A list
    /// that does not open, or that names a peer group `groups` lacks, is an error: the
    /// operator asked for it. Later refusals are counted on `telemetry`.
    pub fn load(
        lists: &crate::config::ListsConfig,
        groups: &crate::peers::PeerGroups,
        telemetry: Arc<Telemetry>,
    ) -> Result<ListSlots, RuntimeError> {
        let mut slots = ListSlots {
            subscribers: Arc::new(ArcSwapOption::empty()),
            protected: Arc::new(ArcSwapOption::empty()),
            subscribers_path: lists.subscribers.clone(),
            protected_path: lists.protected.clone(),
            groups: groups.clone(),
            loaded: [None, None],
            telemetry,
        };
        slots.loaded = slots.stamps();
        if let Some(p) = &slots.subscribers_path {
            let l = SubscriberList::open(p).map_err(|e| RuntimeError::List(e.to_string()))?;
            tracing::info!(
                "subscriber list {} version {} ({} entries)",
                p.display(),
                l.info().version,
                l.info().entries
            );
            slots.subscribers.store(Some(Arc::new(l)));
        }
        if let Some(p) = &slots.protected_path {
            let l = ProtectedList::open(p, Some(groups))
                .map_err(|e| RuntimeError::List(e.to_string()))?;
            tracing::info!(
                "protected list {} version {}",
                p.display(),
                l.snapshot().version()
            );
            slots.protected.store(Some(Arc::new(l)));
        }
        Ok(slots)
    }

    /// Whether any list file is configured.
    pub fn has_files(&self) -> bool {
        self.subscribers_path.is_some() || self.protected_path.is_some()
    }

    /// The files' current stamps.
    pub fn stamps(&self) -> ListStamps {
        [
            self.subscribers_path.as_deref().and_then(FileStamp::of),
            self.protected_path.as_deref().and_then(FileStamp::of),
        ]
    }

    /// The files' stamps taken just before they were first opened (the reloader's start).
    pub fn loaded_stamps(&self) -> ListStamps {
        self.loaded
    }

    /// Checks each file once; swaps in a changed list that opens, keeps the loaded one
    /// otherwise (logged and counted: `fraudwall_list_reload_failures_total{list}`). A
    /// refused file is read again when it changes, or when `last` is reset (a request).
    pub fn reload_if_changed(&self, last: &mut ListStamps) {
        let now = self.stamps();
        if let (Some(p), true) = (
            &self.subscribers_path,
            now[0].is_some() && now[0] != last[0],
        ) {
            last[0] = now[0];
            match SubscriberList::open(p) {
                Ok(l) => {
                    tracing::info!(
                        "subscriber list {} version {} swapped in",
                        p.display(),
                        l.info().version
                    );
                    release_off_path(self.subscribers.swap(Some(Arc::new(l))));
                }
                Err(e) => {
                    self.telemetry
                        .list_reload_failure(crate::feed::ListKind::Subscribers);
                    tracing::error!(
                        "subscribers list {} refused, keeping the loaded one: {e}",
                        p.display()
                    )
                }
            }
        }
        if let (Some(p), true) = (&self.protected_path, now[1].is_some() && now[1] != last[1]) {
            last[1] = now[1];
            match ProtectedList::open(p, Some(&self.groups)) {
                Ok(l) => {
                    tracing::info!(
                        "protected list {} version {} swapped in",
                        p.display(),
                        l.snapshot().version()
                    );
                    release_off_path(self.protected.swap(Some(Arc::new(l))));
                }
                Err(e) => {
                    self.telemetry
                        .list_reload_failure(crate::feed::ListKind::Protected);
                    tracing::error!(
                        "protected list {} refused, keeping the loaded one: {e}",
                        p.display()
                    )
                }
            }
        }
    }

    /// The subscriber list's slot.
    pub fn subscribers(&self) -> Arc<ArcSwapOption<SubscriberList>> {
        Arc::clone(&self.subscribers)
    }

    /// The protected list's slot.
    pub fn protected(&self) -> Arc<ArcSwapOption<ProtectedList>> {
        Arc::clone(&self.protected)
    }
}

impl SnapshotSlot {
    /// Opens the configured snapshot, or compiles the embedded sample. A snapshot that fails
    /// to open is logged and counted; the proxy then runs unscreened (fail open) until a good
    /// file appears at the path.
    pub fn load(
        path: Option<&Path>,
        telemetry: Arc<Telemetry>,
    ) -> Result<SnapshotSlot, RuntimeError> {
        let current = Arc::new(ArcSwapOption::empty());
        let (path, sample_dir) = match path {
            Some(p) => (p.to_path_buf(), None),
            None => {
                let dir = tempfile::tempdir().map_err(|e| RuntimeError::Sample(e.to_string()))?;
                let out = dir.path().join("sample.fwsnap");
                crate::blocklist::compile_csv_text(SAMPLE_CSV, &Default::default(), &out)
                    .map_err(|e| RuntimeError::Sample(e.to_string()))?;
                (out, Some(dir))
            }
        };
        let loaded = FileStamp::of(&path);
        let slot = SnapshotSlot {
            current,
            path: Some(path),
            loaded,
            telemetry,
            _sample_dir: sample_dir,
        };
        if let Some(p) = &slot.path {
            match slot.open(p) {
                Ok(s) => slot.install(s),
                Err(e) => {
                    slot.telemetry.reload_failure();
                    tracing::error!(
                        "blocklist {} not loaded, calls pass unscreened: {e}",
                        p.display()
                    );
                }
            }
        }
        Ok(slot)
    }

    fn open(&self, path: &Path) -> Result<Snapshot, SnapshotError> {
        let t = Instant::now();
        let s = Snapshot::open(path)?;
        if s.source_names()
            .iter()
            .any(|n| n.starts_with(crate::protected::ENTITLED))
        {
            return Err(SnapshotError::ProtectedList(path.to_path_buf()));
        }
        tracing::info!(
            "blocklist {} version {} ({} entries) opened in {:?}",
            path.display(),
            s.version(),
            s.len(),
            t.elapsed()
        );
        Ok(s)
    }

    fn install(&self, s: Snapshot) {
        self.telemetry.snapshot_version(s.version());
        self.current.store(Some(Arc::new(s)));
    }

    /// The shared slot the screen reads.
    pub fn shared(&self) -> Arc<ArcSwapOption<Snapshot>> {
        self.current.clone()
    }

    /// Info on the loaded snapshot, as JSON.
    pub fn info(&self) -> Option<serde_json::Value> {
        let s = self.current.load_full()?;
        serde_json::to_value(s.info()).ok()
    }

    /// Checks the file once; swaps in a changed, valid snapshot. Returns whether it swapped.
    pub fn reload_if_changed(&self, last: &mut Option<FileStamp>) -> bool {
        let Some(path) = &self.path else { return false };
        let now = FileStamp::of(path);
        if now.is_none() || now == *last {
            return false;
        }
        *last = now;
        match self.open(path) {
            Ok(s) => {
                let same = self.current.load().as_ref().map(|c| c.hash()) == Some(s.hash());
                if !same {
                    self.install(s);
                }
                !same
            }
            Err(e) => {
                self.telemetry.reload_failure();
                tracing::error!(
                    "blocklist {} refused, keeping the loaded one: {e}",
                    path.display()
                );
                false
            }
        }
    }
}

/// How often the reloader looks at its stop flag and its requests.
const RELOAD_TICK: Duration = Duration::from_millis(100);

/// What the reloader's owner and its requesters share.
#[derive(Debug, Default)]
struct ReloadFlags {
    stop: AtomicBool,
    now: AtomicBool,
}

/// Asks a [`FileReloader`] to look at its files now (`SIGHUP`, `POST /reload`); cheap to
/// clone, never blocks.
#[derive(Debug, Clone)]
pub struct ReloadRequest {
    flags: Arc<ReloadFlags>,
    thread: std::thread::Thread,
}

impl ReloadRequest {
    /// Re-reads every file, changed or not (the blocklist is swapped in only if its content
    /// changed; a file refused before is tried again), on the reloader's thread; returns at
    /// once.
    pub fn request(&self) {
        self.flags.now.store(true, Ordering::Release);
        self.thread.unpark();
    }
}

/// The thread that re-reads changed list files (module docs): every `every` it compares
/// the files' stamps (modification time, size, inode), and a [`ReloadRequest`] makes it
/// look at once. Stopped and joined on drop.
pub struct FileReloader {
    flags: Arc<ReloadFlags>,
    thread: Option<JoinHandle<()>>,
}

impl FileReloader {
    /// Starts the thread over the blocklist `slot` (if it is read from a file) and the
    /// `[lists]` files of `lists`. `every` zero: only requests make it look.
    pub fn start(
        slot: Option<Arc<SnapshotSlot>>,
        lists: Arc<ListSlots>,
        every: Duration,
    ) -> std::io::Result<FileReloader> {
        let flags = Arc::new(ReloadFlags::default());
        let shared = Arc::clone(&flags);
        let thread = std::thread::Builder::new()
            .name("list-reload".into())
            .spawn(move || {
                let pool = check_pool("list-check");
                let mut last = slot.as_ref().and_then(|s| s.loaded);
                let mut last_lists = lists.loaded_stamps();
                let mut next = Instant::now() + every;
                while !shared.stop.load(Ordering::Acquire) {
                    std::thread::park_timeout(RELOAD_TICK);
                    let asked = shared.now.swap(false, Ordering::AcqRel);
                    let due = !every.is_zero() && Instant::now() >= next;
                    if !(asked || due) {
                        continue;
                    }
                    if asked {
                        // Every file is re-read whatever its stamp says (the blocklist is
                        // swapped in only if its content changed): also the way to retry a
                        // file refused for a passing reason.
                        last = None;
                        last_lists = [None, None];
                    }
                    let stop = &shared.stop;
                    let mut look = || {
                        if let Some(s) = &slot {
                            s.reload_if_changed(&mut last);
                        }
                        // A stop asked meanwhile waits for at most the check under way.
                        if !stop.load(Ordering::Acquire) {
                            lists.reload_if_changed(&mut last_lists);
                        }
                    };
                    match &pool {
                        Some(pool) => pool.install(look),
                        None => look(),
                    }
                    next = Instant::now() + every;
                }
            })?;
        Ok(FileReloader {
            flags,
            thread: Some(thread),
        })
    }

    /// A handle that asks this reloader to look now.
    pub fn requester(&self) -> Option<ReloadRequest> {
        let thread = self.thread.as_ref()?.thread().clone();
        Some(ReloadRequest {
            flags: Arc::clone(&self.flags),
            thread,
        })
    }
}

impl Drop for FileReloader {
    /// Stops the thread and waits for it (a reopen under way finishes first).
    fn drop(&mut self) {
        self.flags.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blocklist::compile_csv_text;
    use crate::numbers::E164;

    fn compile(path: &Path, csv: &str, version: u64) {
        let opts = crate::blocklist::CompileOptions {
            version: Some(version),
            ..Default::default()
        };
        let text = format!("number,action,category,score,source\n{csv}");
        compile_csv_text(&text, &opts, path).unwrap();
    }

    fn action_of(slot: &SnapshotSlot, n: &str) -> Option<crate::blocklist::Action> {
        let s = slot.shared().load_full()?;
        let n: E164 = n.parse().ok()?;
        s.lookup(&n).map(|m| m.action)
    }

    #[test]
    fn sample_list_is_embedded_and_compiles() {
        let t = Arc::new(Telemetry::new());
        let slot = SnapshotSlot::load(None, t).unwrap();
        assert_eq!(
            action_of(&slot, "+8613800000001"),
            Some(crate::blocklist::Action::Block)
        );
        assert!(slot.info().is_some());
    }

    #[test]
    fn reload_swaps_good_files_and_keeps_the_old_on_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.fwsnap");
        compile(&path, "+8613800000001,block,police,90,a\n", 1);
        let t = Arc::new(Telemetry::new());
        let slot = SnapshotSlot::load(Some(&path), t.clone()).unwrap();
        let mut stamp_now = FileStamp::of(&path);
        assert_eq!(
            action_of(&slot, "+8613800000001"),
            Some(crate::blocklist::Action::Block)
        );
        assert!(!slot.reload_if_changed(&mut stamp_now), "unchanged file");

        // A new version, written atomically by the compiler: swapped in.
        std::thread::sleep(Duration::from_millis(20));
        compile(&path, "+8613800000001,tag,loan,60,a\n", 2);
        assert!(slot.reload_if_changed(&mut stamp_now));
        assert_eq!(
            action_of(&slot, "+8613800000001"),
            Some(crate::blocklist::Action::Tag)
        );
        assert!(t.render().contains("fraudwall_snapshot_version 2"));

        // A corrupt file, published by rename like any snapshot (writing into the mapped
        // file in place would change the live list under the proxy): refused, counted, the
        // loaded list stays.
        let tmp = dir.path().join("bad.tmp");
        std::fs::write(&tmp, b"not a snapshot at all").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(!slot.reload_if_changed(&mut stamp_now));
        assert_eq!(
            action_of(&slot, "+8613800000001"),
            Some(crate::blocklist::Action::Tag)
        );
        assert!(t
            .render()
            .contains("fraudwall_snapshot_reload_failures_total 1"));
    }

    #[test]
    fn missing_snapshot_fails_open() {
        let t = Arc::new(Telemetry::new());
        let slot =
            SnapshotSlot::load(Some(Path::new("/nonexistent/list.fwsnap")), t.clone()).unwrap();
        assert!(slot.shared().load().is_none());
        assert!(slot.info().is_none());
        assert!(t
            .render()
            .contains("fraudwall_snapshot_reload_failures_total 1"));
    }

    /// Whether `f` holds within `within` (polled every 10 ms).
    fn eventually(within: Duration, f: impl Fn() -> bool) -> bool {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if f() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        f()
    }

    fn no_lists() -> Arc<ListSlots> {
        let groups = crate::peers::PeerGroups::default();
        Arc::new(ListSlots::load(&Default::default(), &groups, Arc::new(Telemetry::new())).unwrap())
    }

    #[test]
    fn a_request_rereads_the_blocklist_at_once_and_drop_stops_the_thread() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.fwsnap");
        compile(&path, "+8613800000001,block,police,90,a\n", 1);
        let slot = Arc::new(SnapshotSlot::load(Some(&path), Arc::new(Telemetry::new())).unwrap());
        // No interval: only requests make it look.
        let reloader = FileReloader::start(Some(slot.clone()), no_lists(), Duration::ZERO).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        compile(&path, "+8613800000001,tag,loan,60,a\n", 2);
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            action_of(&slot, "+8613800000001"),
            Some(crate::blocklist::Action::Block),
            "nothing polls without an interval"
        );
        let ask = reloader.requester().unwrap();
        let asked = Instant::now();
        ask.request();
        assert!(
            asked.elapsed() < Duration::from_millis(50),
            "a request never waits"
        );
        assert!(eventually(Duration::from_secs(5), || {
            action_of(&slot, "+8613800000001") == Some(crate::blocklist::Action::Tag)
        }));
        let stopping = Instant::now();
        drop(reloader);
        assert!(stopping.elapsed() < Duration::from_secs(1));
        // A request to a stopped reloader is a no-op.
        ask.request();
    }

    #[test]
    fn the_interval_swaps_in_a_changed_file_and_keeps_the_old_on_a_bad_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("list.fwsnap");
        compile(&path, "+8613800000001,block,police,90,a\n", 1);
        let t = Arc::new(Telemetry::new());
        let slot = Arc::new(SnapshotSlot::load(Some(&path), t.clone()).unwrap());
        let _reloader =
            FileReloader::start(Some(slot.clone()), no_lists(), Duration::from_millis(50)).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        compile(&path, "+8613800000001,tag,loan,60,a\n", 2);
        assert!(eventually(Duration::from_secs(5), || {
            action_of(&slot, "+8613800000001") == Some(crate::blocklist::Action::Tag)
        }));
        let tmp = dir.path().join("bad.tmp");
        std::fs::write(&tmp, b"not a snapshot at all").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert!(eventually(Duration::from_secs(5), || {
            t.render()
                .contains("fraudwall_snapshot_reload_failures_total 1")
        }));
        assert_eq!(
            action_of(&slot, "+8613800000001"),
            Some(crate::blocklist::Action::Tag)
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn lists_are_checked_on_one_thread_below_the_workers_priority() {
        // SAFETY: getpriority reads the calling thread's nice value; no memory is touched.
        let ours = unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) };
        let pool = check_pool("test-check").unwrap();
        assert_eq!(pool.current_num_threads(), 1);
        let (name, nice) = pool.install(|| {
            let name = std::thread::current().name().map(str::to_owned);
            // SAFETY: as above, on the pool's thread.
            (name, unsafe { libc::getpriority(libc::PRIO_PROCESS, 0) })
        });
        assert_eq!(name.as_deref(), Some("test-check"));
        assert_eq!(nice, (ours + crate::feed::node::CHECK_NICE).min(19));
    }

    #[test]
    fn a_refused_list_file_is_counted_kept_out_and_read_again_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("subs.csv");
        std::fs::write(
            &csv,
            "subscriber,caller,action\n+8613900000011,+8613800000009,block\n",
        )
        .unwrap();
        let path = dir.path().join("subs.fwb");
        crate::subscribers::compile_subscribers(&[csv], &Default::default(), &path).unwrap();
        let t = Arc::new(Telemetry::new());
        let cfg = crate::config::ListsConfig {
            subscribers: Some(path.clone()),
            ..Default::default()
        };
        let groups = crate::peers::PeerGroups::default();
        let lists = ListSlots::load(&cfg, &groups, t.clone()).unwrap();
        let version = || lists.subscribers().load_full().map(|s| s.info().version);
        let refused = || {
            t.render()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("fraudwall_list_reload_failures_total{list=\"subscribers\"} ")?
                        .parse::<u32>()
                        .ok()
                })
                .unwrap_or(0)
        };
        let loaded = version();
        assert!(loaded.is_some());
        assert_eq!(refused(), 0);

        // A corrupt file published by rename: refused, counted, the loaded list answers.
        let tmp = dir.path().join("bad.tmp");
        std::fs::write(&tmp, b"not a subscriber list").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        let mut last = lists.loaded_stamps();
        lists.reload_if_changed(&mut last);
        assert_eq!(refused(), 1);
        assert_eq!(version(), loaded);
        // Unchanged since: not read again.
        lists.reload_if_changed(&mut last);
        assert_eq!(refused(), 1);
        // A request (stamps reset) reads it again.
        let mut asked = [None, None];
        lists.reload_if_changed(&mut asked);
        assert_eq!(refused(), 2);
        assert_eq!(version(), loaded);
    }
}
