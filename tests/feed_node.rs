//! The node updater against a feed that goes bad in every way the issue lists: each fault is
//! refused with its reason counted, and the view in use keeps answering. Loopback only, each
//! case bounded in time. The loader here is a plain one (a view = the files' bytes) so the
//! updater's own rules are tested apart from the snapshot format.

use arc_swap::ArcSwapOption;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use ed25519_dalek::SigningKey;
use fraudwall::feed::cache::CacheDir;
use fraudwall::feed::fetch::FetchConfig;
use fraudwall::feed::manifest::{FileRef, Hash, Manifest, MANIFEST_FORMAT};
use fraudwall::feed::node::{FeedNode, LoadError, Loader, NodeConfig, PollOutcome, Source};
use fraudwall::feed::poll::PollConfig;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// A view: the feed version and every file's bytes, base first.
#[derive(Debug, PartialEq)]
struct View {
    version: u64,
    files: Vec<Vec<u8>>,
}

/// Loads files as bytes; refuses any file that does not start with `SNAP`.
struct BytesLoader;

impl Loader for BytesLoader {
    type View = View;
    fn load(&self, _: Option<&View>, m: &Manifest, cache: &CacheDir) -> Result<View, LoadError> {
        let mut files = vec![];
        for f in m.files() {
            let bytes = std::fs::read(cache.path(&f.name)).map_err(|e| LoadError {
                file: f.name.clone(),
                message: e.to_string(),
            })?;
            if !bytes.starts_with(b"SNAP") {
                return Err(LoadError {
                    file: f.name.clone(),
                    message: "bad magic".into(),
                });
            }
            files.push(bytes);
        }
        Ok(View {
            version: m.version,
            files,
        })
    }
}

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn file_ref(dir: &Path, name: &str, version: u64, content: &[u8]) -> FileRef {
    std::fs::write(dir.join(name), content).expect("write file");
    FileRef {
        name: name.into(),
        size: content.len() as u64,
        blake3: Hash::of(content),
        version,
    }
}

/// Writes a manifest (signed by `signer`) naming `base` and `deltas`.
fn publish(dir: &Path, signer: &SigningKey, version: u64, base: FileRef, deltas: Vec<FileRef>) {
    let m = Manifest {
        format: MANIFEST_FORMAT,
        feed: "lab".into(),
        version,
        created: 1,
        expires: u64::MAX / 2,
        base,
        deltas,
    };
    let (body, sig) = m.sign(signer);
    std::fs::write(dir.join("manifest.json"), body).expect("manifest");
    std::fs::write(dir.join("manifest.json.sig"), sig).expect("sig");
}

/// Fault modes of the origin.
const NORMAL: u8 = 0;
const ERROR_503: u8 = 1;
const SLOW: u8 = 2;
const GARBAGE: u8 = 3;

async fn faulty(State(mode): State<Arc<AtomicU8>>, req: Request, next: Next) -> Response {
    match mode.load(Ordering::SeqCst) {
        ERROR_503 => (StatusCode::SERVICE_UNAVAILABLE, "down").into_response(),
        SLOW => {
            tokio::time::sleep(Duration::from_secs(20)).await;
            next.run(req).await
        }
        GARBAGE => (StatusCode::OK, vec![0x17u8; 300]).into_response(),
        _ => next.run(req).await,
    }
}

struct Lab {
    feed: tempfile::TempDir,
    cache: tempfile::TempDir,
    mode: Arc<AtomicU8>,
    url: String,
    recorder: PrometheusRecorder,
}

impl Lab {
    async fn new() -> Lab {
        let feed = tempfile::tempdir().expect("feed dir");
        let mode = Arc::new(AtomicU8::new(NORMAL));
        let router = fraudwall::feed::serve::router(feed.path().to_path_buf())
            .layer(middleware::from_fn_with_state(Arc::clone(&mode), faulty));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!(
            "http://{}/manifest.json",
            listener.local_addr().expect("addr")
        );
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Lab {
            feed,
            cache: tempfile::tempdir().expect("cache dir"),
            mode,
            url,
            recorder: PrometheusBuilder::new().build_recorder(),
        }
    }

    fn node(&self, url: &str, target: &Arc<ArcSwapOption<View>>) -> FeedNode<BytesLoader> {
        let config = NodeConfig {
            list: fraudwall::feed::ListKind::Blocklist,
            url: url.into(),
            keys: vec![key(1).verifying_key()],
            cache_dir: self.cache.path().to_path_buf(),
            poll: PollConfig {
                interval: Duration::from_millis(1),
                jitter: 0.0,
                max_backoff: Duration::from_millis(1),
                pinned: None,
            },
            fetch: FetchConfig {
                connect_timeout: Duration::from_millis(500),
                read_timeout: Duration::from_millis(500),
                manifest_timeout: Duration::from_secs(1),
                file_timeout: Duration::from_secs(2),
            },
        };
        FeedNode::new(config, BytesLoader, Arc::clone(target), &self.recorder).expect("node")
    }

    fn errors(&self, reason: &str) -> u64 {
        let text = self.recorder.handle().render();
        let needle = format!(
            "fraudwall_feed_update_errors_total{{list=\"blocklist\",reason=\"{reason}\"}} "
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

async fn poll(node: &mut FeedNode<BytesLoader>) -> Result<PollOutcome, String> {
    tokio::time::sleep(Duration::from_millis(3)).await;
    tokio::time::timeout(Duration::from_secs(10), node.poll_once())
        .await
        .expect("bounded")
        .map_err(|e| e.reason().to_string())
}

fn version(target: &ArcSwapOption<View>) -> Option<u64> {
    target.load().as_ref().map(|v| v.version)
}

#[tokio::test]
async fn every_fault_is_refused_and_the_old_view_keeps_answering() {
    let lab = Lab::new().await;
    let dir = lab.feed.path();
    let k = key(1);
    let base = file_ref(dir, "base-1.fwb", 1, b"SNAP base one");
    publish(dir, &k, 1, base.clone(), vec![]);
    let target = Arc::new(ArcSwapOption::empty());
    let mut node = lab.node(&lab.url, &target);
    assert_eq!(
        poll(&mut node).await,
        Ok(PollOutcome::Applied {
            version: 1,
            fetched: 1
        })
    );
    assert_eq!(version(&target), Some(1));
    assert_eq!(poll(&mut node).await, Ok(PollOutcome::UpToDate), "304 path");

    // Version 2 is published as a delta; the origin then misbehaves in every way.
    let d2 = file_ref(dir, "delta-2.fwb", 2, b"SNAP delta two");
    publish(dir, &k, 2, base.clone(), vec![d2.clone()]);
    for (mode, reason) in [
        (ERROR_503, "http_status"),
        (SLOW, "timeout"),
        (GARBAGE, "bad_signature"),
    ] {
        lab.mode.store(mode, Ordering::SeqCst);
        assert_eq!(poll(&mut node).await, Err(reason.to_string()));
        assert_eq!(lab.errors(reason), 1, "{reason} counted once");
        assert_eq!(version(&target), Some(1), "after {reason}");
    }
    lab.mode.store(NORMAL, Ordering::SeqCst);

    // Hash mismatch: the delta on the origin is not the one the manifest signed.
    std::fs::write(dir.join("delta-2.fwb"), b"SNAP delta twX").expect("tamper");
    assert_eq!(poll(&mut node).await, Err("hash_mismatch".into()));
    // Size mismatch / oversize.
    std::fs::write(dir.join("delta-2.fwb"), b"SNAP delta two, longer").expect("tamper");
    assert_eq!(poll(&mut node).await, Err("too_large".into()));
    std::fs::write(dir.join("delta-2.fwb"), b"SNAP delta two").expect("restore");

    // Unknown key, then a manifest altered after signing.
    publish(dir, &key(2), 2, base.clone(), vec![d2.clone()]);
    assert_eq!(poll(&mut node).await, Err("unknown_key".into()));
    publish(dir, &k, 2, base.clone(), vec![d2.clone()]);
    let body = std::fs::read_to_string(dir.join("manifest.json")).expect("read");
    std::fs::write(
        dir.join("manifest.json"),
        body.replace("\"lab\"", "\"lax\""),
    )
    .expect("w");
    assert_eq!(poll(&mut node).await, Err("bad_signature".into()));
    assert_eq!(version(&target), Some(1));

    // A file that matches the manifest but is not a valid snapshot.
    let bad = file_ref(dir, "delta-2.fwb", 2, b"JUNK delta two");
    publish(dir, &k, 2, base.clone(), vec![bad]);
    assert_eq!(poll(&mut node).await, Err("snapshot_invalid".into()));
    assert_eq!(version(&target), Some(1));

    // The good version 2 goes through, fetching only the delta.
    let d2 = file_ref(dir, "delta-2.fwb", 2, b"SNAP delta two");
    publish(dir, &k, 2, base.clone(), vec![d2]);
    assert_eq!(
        poll(&mut node).await,
        Ok(PollOutcome::Applied {
            version: 2,
            fetched: 1
        })
    );
    assert_eq!(
        target.load().as_ref().map(|v| v.files.len()),
        Some(2),
        "base + delta"
    );

    // Rollback: an older version, correctly signed, is refused.
    publish(dir, &k, 1, base, vec![]);
    assert_eq!(poll(&mut node).await, Err("rollback".into()));
    assert_eq!(version(&target), Some(2));
    assert_eq!(lab.errors("rollback"), 1);

    let status = node.handle().status(10);
    assert_eq!(status.source, Source::Feed);
    assert_eq!(status.active_version, Some(2));
    assert_eq!(status.deltas, ["delta-2.fwb"]);
    assert!(status
        .last_error
        .as_deref()
        .is_some_and(|e| e.starts_with("rollback")));
}

#[tokio::test]
async fn restart_serves_the_cache_before_the_feed_answers() {
    let lab = Lab::new().await;
    let dir = lab.feed.path();
    let base = file_ref(dir, "base-3.fwb", 3, b"SNAP base three");
    publish(dir, &key(1), 3, base, vec![]);
    let target = Arc::new(ArcSwapOption::empty());
    let mut node = lab.node(&lab.url, &target);
    assert_eq!(node.restore(), None, "empty cache");
    assert!(matches!(
        poll(&mut node).await,
        Ok(PollOutcome::Applied { .. })
    ));
    drop(node);

    // The feed is gone: a restarted node still serves version 3 from its cache.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}/manifest.json", l.local_addr().expect("addr"))
    };
    let target = Arc::new(ArcSwapOption::empty());
    let mut node = lab.node(&dead, &target);
    assert_eq!(node.restore(), Some(3));
    assert_eq!(version(&target), Some(3));
    assert_eq!(node.handle().status(10).source, Source::Cache);
    assert_eq!(poll(&mut node).await, Err("unreachable".into()));
    assert_eq!(version(&target), Some(3));

    // A corrupted cache is refused at restore (counted) and nothing is served from it.
    std::fs::write(lab.cache.path().join("base-3.fwb"), b"SNAP base thrEe").expect("w");
    let target = Arc::new(ArcSwapOption::empty());
    let mut node = lab.node(&dead, &target);
    assert_eq!(node.restore(), None);
    assert_eq!(version(&target), None);
    assert_eq!(lab.errors("cache_corrupt"), 1);
}
