//! End to end: `fraudwall publish` (the binary) → an HTTP origin (`fraudwall feed serve`, and
//! nginx, which must be installed: these tests fail without it) → a node updater with the
//! real snapshot loader. A number added as `block` is enforced after one poll; a removal
//! (tombstone) is honoured; deltas are kilobytes; the publisher folds deltas into a new base;
//! a cache left in an older snapshot format is refused at restore and replaced from the feed.

use arc_swap::ArcSwapOption;
use fraudwall::blocklist::format::{Header, HeaderError, FORMAT_VERSION};
use fraudwall::blocklist::{Action, Snapshot, SnapshotError};
use fraudwall::feed::cache::CacheDir;
use fraudwall::feed::fetch::FetchConfig;
use fraudwall::feed::layered::{Layered, SnapshotLoader};
use fraudwall::feed::manifest::{FileRef, Hash, Manifest, UncheckedManifest, MANIFEST_FORMAT};
use fraudwall::feed::node::{unix_now, FeedNode, NodeConfig, PollOutcome, Source};
use fraudwall::feed::poll::PollConfig;
use metrics_exporter_prometheus::PrometheusRecorder;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod feed_support;

use feed_support::{manifest_url, Lab, BIN};

fn manifest(lab: &Lab) -> Manifest {
    let bytes = std::fs::read(lab.feed().join("manifest.json")).expect("manifest");
    serde_json::from_slice(&bytes).expect("parse")
}

fn node(
    url: &str,
    cache: &Path,
    lab: &Lab,
    target: &Arc<ArcSwapOption<Layered>>,
) -> FeedNode<SnapshotLoader> {
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    node_recording(url, cache, lab, target, &recorder)
}

/// [`node`], with its metrics on `recorder`.
fn node_recording(
    url: &str,
    cache: &Path,
    lab: &Lab,
    target: &Arc<ArcSwapOption<Layered>>,
    recorder: &PrometheusRecorder,
) -> FeedNode<SnapshotLoader> {
    let pub_key = fraudwall::blocklist::sign::read_verifying_key(Path::new(&lab.path("op.pub")))
        .expect("public key");
    let config = NodeConfig {
        list: fraudwall::feed::ListKind::Blocklist,
        url: url.into(),
        keys: vec![pub_key],
        cache_dir: cache.to_path_buf(),
        poll: PollConfig {
            interval: Duration::from_millis(1),
            jitter: 0.0,
            max_backoff: Duration::from_millis(1),
            pinned: None,
        },
        fetch: FetchConfig::default(),
    };
    FeedNode::new(config, SnapshotLoader, Arc::clone(target), recorder).expect("node")
}

async fn poll(node: &mut FeedNode<SnapshotLoader>) -> PollOutcome {
    tokio::time::sleep(Duration::from_millis(3)).await;
    tokio::time::timeout(Duration::from_secs(20), node.poll_once())
        .await
        .expect("bounded")
        .expect("poll succeeds")
}

fn action(target: &ArcSwapOption<Layered>, number: &str) -> Option<Action> {
    let view = target.load_full()?;
    let n = number.parse().expect("number");
    view.lookup(&n).map(|m| m.action)
}

async fn publish_and_follow(lab: &Lab, url: &str) {
    let target = Arc::new(ArcSwapOption::empty());
    let cache = lab.dir.path().join(format!("cache-{}", url.len()));
    let mut n = node(url, &cache, lab, &target);
    assert!(matches!(
        poll(&mut n).await,
        PollOutcome::Applied { version: 1, .. }
    ));
    assert_eq!(action(&target, "+8613800000001"), Some(Action::Block));
    assert_eq!(action(&target, "+8613800000003"), None);
    assert_eq!(poll(&mut n).await, PollOutcome::UpToDate);

    // A new fraud number: published as a delta, enforced after one poll, one small file.
    let report = lab.publish(
        "l2",
        "+8613800000001,block,impersonation,95,police\n+8613800000002,tag,loan,70,reports\n+8613800000003,block,impersonation,90,police\n",
        &["--max-delta-fraction", "10"],
    );
    assert_eq!(report["kind"], "delta", "{report}");
    assert_eq!(
        poll(&mut n).await,
        PollOutcome::Applied {
            version: 2,
            fetched: 1
        }
    );
    assert_eq!(action(&target, "+8613800000003"), Some(Action::Block));

    // A removal travels as a tombstone.
    let report = lab.publish(
        "l3",
        "+8613800000002,tag,loan,70,reports\n+8613800000003,block,impersonation,90,police\n",
        &["--max-delta-fraction", "10"],
    );
    assert_eq!(report["kind"], "delta", "{report}");
    assert_eq!(report["changes"]["removed"], 1);
    assert!(matches!(
        poll(&mut n).await,
        PollOutcome::Applied { version: 3, .. }
    ));
    assert_eq!(action(&target, "+8613800000001"), None);
    assert_eq!(action(&target, "+8613800000002"), Some(Action::Tag));
    assert_eq!(target.load().as_ref().map(|v| v.deltas().len()), Some(2));
}

fn first_publish(lab: &Lab) {
    let report = lab.publish(
        "l1",
        "+8613800000001,block,impersonation,95,police\n+8613800000002,tag,loan,70,reports\n",
        &[],
    );
    assert_eq!(report["kind"], "base", "{report}");
    assert_eq!(report["version"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_feed_serve_node() {
    let lab = Lab::new();
    first_publish(&lab);
    let (_origin, port) = lab.feed_serve();
    publish_and_follow(&lab, &manifest_url(port)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_nginx_node() {
    let lab = Lab::new();
    first_publish(&lab);
    let (_origin, port) = lab.nginx();
    let url = manifest_url(port);
    publish_and_follow(&lab, &url).await;
    // The publisher's private state is not served.
    let state = url.replace("manifest.json", ".publish/current.fwb");
    let resp = reqwest::get(&state).await.expect("request");
    assert_eq!(resp.status().as_u16(), 404);
}

#[test]
fn publisher_folds_deltas_and_refreshes_unchanged_lists() {
    let lab = Lab::new();
    first_publish(&lab);
    let rows = |n: u32| -> String {
        (0..n)
            .map(|i| {
                // Scattered numbers: sequential ones compress to almost nothing in an FST.
                let n = (u64::from(i) * 2_654_435_761) % 100_000_000;
                format!("+86138{n:08},block,x,90,r\n")
            })
            .collect()
    };
    // A big base, then a small change: a delta of a few hundred bytes.
    assert_eq!(lab.publish("b", &rows(5000), &[])["kind"], "base");
    let base_size = manifest(&lab).base.size;
    let report = lab.publish("d", &rows(5001), &[]);
    assert_eq!(report["kind"], "delta", "{report}");
    assert!(
        report["bytes"].as_u64().unwrap_or(u64::MAX) < 1024,
        "{report}"
    );
    assert!(base_size > 10 * 1024, "base {base_size}");
    // The same list again: a new manifest version, same files.
    let before = manifest(&lab);
    let report = lab.publish("same", &rows(5001), &[]);
    assert_eq!(report["kind"], "unchanged", "{report}");
    let after = manifest(&lab);
    assert_eq!(after.version, before.version + 1);
    assert_eq!((after.base, after.deltas), (before.base, before.deltas));
    // Deltas past their budget fold into a new base.
    let report = lab.publish(
        "fold",
        &rows(100).replace("block", "warn"),
        &["--max-delta-fraction", "0.01"],
    );
    assert_eq!(report["kind"], "base", "{report}");
    assert!(manifest(&lab).deltas.is_empty());
    // `--base` forces one; old files are pruned past --keep.
    let report = lab.publish("forced", &rows(10), &["--base", "--keep", "1"]);
    assert_eq!(report["kind"], "base");
    assert!(report["pruned"].as_u64().unwrap_or(0) > 0, "{report}");
    let names: Vec<String> = std::fs::read_dir(lab.feed())
        .expect("ls")
        .flatten()
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .filter(|n| n.ends_with(".fwb"))
        .collect();
    assert_eq!(names, [manifest(&lab).base.name]);
}

#[test]
fn publishing_with_another_key_is_refused() {
    let lab = Lab::new();
    first_publish(&lab);
    lab.cmd(&["keygen", "--output", &lab.path("other")]);
    let fwb = lab.path("l1.fwb");
    let out = Command::new(BIN)
        .args([
            "publish",
            "--feed-dir",
            &lab.feed().display().to_string(),
            "--key",
            &lab.path("other.key"),
            &fwb,
        ])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("does not verify with this key"), "{err}");
}

/// After an upgrade that changes the snapshot format, the feed still holds files of the old
/// format: the publisher cannot layer a delta on them and writes the list as a new base.
#[test]
fn an_upgraded_publisher_replaces_an_older_format_with_a_base() {
    let lab = Lab::new();
    first_publish(&lab);
    let feed = lab.feed();
    let mut old = vec![feed.join(".publish").join("current.fwb")];
    for e in std::fs::read_dir(&feed).expect("feed dir") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "fwb") {
            old.push(p);
        }
    }
    assert_eq!(old.len(), 2, "{old:?}");
    for p in &old {
        // What a format-1 publisher left behind: the same header with version 1.
        let mut b = std::fs::read(p).expect("read");
        b[8..12].copy_from_slice(&1u32.to_le_bytes());
        std::fs::write(p, b).expect("write");
    }
    let report = lab.publish(
        "l2",
        "+8613800000001,block,impersonation,95,police\n",
        &["--max-delta-fraction", "10"],
    );
    assert_eq!(report["kind"], "base", "{report}");
    assert_eq!(report["version"], 2);
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("format 1"), "{report}");
}

const L1_ROWS: &str =
    "+8613800000001,block,impersonation,95,police\n+8613800000002,tag,loan,70,reports\n";

/// Sets a snapshot's format-version field (offset 8) to `version` and recomputes the header
/// hash (the last 32 bytes of the header, blake3 of the header bytes before it) as
/// [`Header::encode`] does, so that the version is the only thing that changes.
fn set_format_version(bytes: &mut [u8], version: u32) {
    let len = u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")) as usize;
    bytes[8..12].copy_from_slice(&version.to_le_bytes());
    let hash = blake3::hash(&bytes[..len - 32]);
    bytes[len - 32..len].copy_from_slice(hash.as_bytes());
}

/// Collects what a `tracing` subscriber writes.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn feed_errors(recorder: &PrometheusRecorder, reason: &str) -> u64 {
    let needle =
        format!("fraudwall_feed_update_errors_total{{list=\"blocklist\",reason=\"{reason}\"}} ");
    recorder
        .handle()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(&needle))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// A node upgraded to format 2 restarts on the cache a format-1 build left: a manifest
/// correctly signed over the real hash of a format-1 snapshot. The loader refuses the file
/// for its format version (not for a hash or signature), the refusal is logged, counted and
/// shown in the status, nothing is served from that cache, and the first poll takes the
/// feed's format-2 base and serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_format_1_cache_is_refused_at_restore_and_the_feed_base_replaces_it() {
    const OLD_ONLY: &str = "+8613800000009";
    let lab = Lab::new();

    // The format-1 file: a list compiled by this build, its header rewritten to version 1.
    let current = std::fs::read(lab.compile("old", &format!("{OLD_ONLY},block,old,90,old\n")))
        .expect("compiled snapshot");
    let mut old = current.clone();
    set_format_version(&mut old, 1);
    assert_eq!(
        Header::decode(&old).map(|_| ()),
        Err(HeaderError::UnsupportedVersion { found: 1 })
    );
    let mut back = old.clone();
    set_format_version(&mut back, FORMAT_VERSION);
    assert!(back == current, "the version is the only difference");

    // The cache that build left: that file, and a manifest signed over its real hash.
    let cache_dir = lab.dir.path().join("cache");
    let cache = CacheDir::open(&cache_dir).expect("cache dir");
    let old_ref = FileRef {
        name: "base-1.fwb".into(),
        size: old.len() as u64,
        blake3: Hash::of(&old),
        version: 1,
    };
    cache.write(&old_ref.name, &old).expect("cache file");
    let now = unix_now();
    let cached = Manifest {
        format: MANIFEST_FORMAT,
        feed: "fraudwall".into(),
        version: 1,
        created: now,
        expires: now + 7 * 86_400,
        base: old_ref.clone(),
        deltas: vec![],
    };
    let signer = fraudwall::blocklist::sign::read_signing_key(Path::new(&lab.path("op.key")))
        .expect("signing key");
    let (body, sig) = cached.sign(&signer);
    cache
        .store_manifest(&UncheckedManifest::new(body, sig))
        .expect("cache manifest");
    // The cache itself is sound: signature, size and blake3 all check.
    let keys = [
        fraudwall::blocklist::sign::read_verifying_key(Path::new(&lab.path("op.pub")))
            .expect("public key"),
    ];
    let (restored, _) = cache
        .restore(&keys)
        .expect("the cache verifies")
        .expect("the cache names a state");
    assert_eq!(restored, cached);
    match Snapshot::open(cache.path(&old_ref.name)) {
        Err(SnapshotError::Header { source, .. }) => {
            assert_eq!(source, HeaderError::UnsupportedVersion { found: 1 })
        }
        other => panic!("the format-1 file must be refused for its version: {other:?}"),
    }

    // The feed has moved on: version 2, a format-2 base (the upgraded publisher's).
    lab.publish("l1", L1_ROWS, &[]);
    let report = lab.publish(
        "l2",
        &format!("{L1_ROWS}+8613800000003,block,impersonation,90,police\n"),
        &["--base"],
    );
    assert_eq!(report["kind"], "base", "{report}");
    assert_eq!(report["version"], 2, "{report}");
    let (_origin, port) = lab.feed_serve();

    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let target = Arc::new(ArcSwapOption::empty());
    let mut n = node_recording(&manifest_url(port), &cache_dir, &lab, &target, &recorder);
    let log = LogBuf::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer({
            let log = log.clone();
            move || log.clone()
        })
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let version = tracing::subscriber::with_default(subscriber, || n.restore());

    // Refused, for its format version.
    assert_eq!(version, None, "a format-1 cache is not restored");
    assert!(target.load().is_none(), "nothing is served from it");
    assert_eq!(action(&target, OLD_ONLY), None);
    assert_eq!(feed_errors(&recorder, "snapshot_invalid"), 1);
    for other in [
        "cache_corrupt",
        "hash_mismatch",
        "bad_signature",
        "unknown_key",
    ] {
        assert_eq!(feed_errors(&recorder, other), 0, "{other}");
    }
    let status = n.handle().status(now);
    assert_eq!(status.source, Source::None);
    assert_eq!(status.active_version, None);
    let last_error = status.last_error.unwrap_or_default();
    assert!(
        last_error.starts_with("snapshot_invalid: snapshot base-1.fwb is not usable")
            && last_error.contains("format version 1, this build reads version 2 (recompile it"),
        "{last_error}"
    );
    let log = String::from_utf8(log.0.lock().expect("log buffer").clone()).expect("UTF-8 log");
    assert!(
        log.contains("WARN")
            && log.contains("cache restore refused")
            && log.contains("reason=\"snapshot_invalid\"")
            && log.contains("format version 1, this build reads version 2"),
        "{log}"
    );

    // The first poll takes the feed's format-2 base and serves it.
    assert_eq!(
        poll(&mut n).await,
        PollOutcome::Applied {
            version: 2,
            fetched: 1
        }
    );
    assert_eq!(action(&target, "+8613800000001"), Some(Action::Block));
    assert_eq!(action(&target, "+8613800000002"), Some(Action::Tag));
    assert_eq!(action(&target, "+8613800000003"), Some(Action::Block));
    assert_eq!(action(&target, OLD_ONLY), None);
    let status = n.handle().status(now);
    assert_eq!(
        (status.source, status.active_version),
        (Source::Feed, Some(2))
    );
    assert_eq!(status.last_error, None);
    assert_eq!(
        feed_errors(&recorder, "snapshot_invalid"),
        1,
        "no new failure"
    );
    // The cache now names the feed's state; the format-1 file is gone from it.
    assert!(!cache.has(&old_ref));
    let (restored, _) = cache
        .restore(&keys)
        .expect("the cache verifies")
        .expect("the cache names a state");
    assert_eq!(restored, manifest(&lab));
}
