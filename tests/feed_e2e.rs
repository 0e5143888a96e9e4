//! End to end: `fraudwall publish` (the binary) → an HTTP origin (`fraudwall feed serve`, and
//! nginx, which must be installed: these tests fail without it) → a node updater with the
//! real snapshot loader. A number added as `block` is enforced after one poll; a removal
//! (tombstone) is honoured; deltas are kilobytes; the publisher folds deltas into a new base.

use arc_swap::ArcSwapOption;
use fraudwall::blocklist::Action;
use fraudwall::feed::fetch::FetchConfig;
use fraudwall::feed::layered::{Layered, SnapshotLoader};
use fraudwall::feed::manifest::Manifest;
use fraudwall::feed::node::{FeedNode, NodeConfig, PollOutcome};
use fraudwall::feed::poll::PollConfig;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
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
    let pub_key = fraudwall::blocklist::sign::read_verifying_key(Path::new(&lab.path("op.pub")))
        .expect("public key");
    let config = NodeConfig {
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
    let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    FeedNode::new(config, SnapshotLoader, Arc::clone(target), &recorder).expect("node")
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
