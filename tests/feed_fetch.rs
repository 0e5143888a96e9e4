//! The node's HTTP fetcher against origins that misbehave on purpose (loopback only, each
//! case bounded in time), and `feed serve` against traversal and conditional requests.

use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use ed25519_dalek::SigningKey;
use fraudwall::feed::fetch::{FetchConfig, FetchError, Fetcher, ManifestResponse};
use fraudwall::feed::manifest::{FileRef, Hash, Manifest, ManifestError, MANIFEST_FORMAT};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const LIMIT: Duration = Duration::from_secs(10);

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn config() -> FetchConfig {
    FetchConfig {
        connect_timeout: Duration::from_millis(500),
        read_timeout: Duration::from_millis(500),
        manifest_timeout: Duration::from_secs(1),
        file_timeout: Duration::from_secs(2),
    }
}

fn manifest_for(content: &[u8]) -> Manifest {
    Manifest {
        format: MANIFEST_FORMAT,
        feed: "lab".into(),
        version: 7,
        created: 1,
        expires: u64::MAX,
        base: FileRef {
            name: "base-7.fwb".into(),
            size: content.len() as u64,
            blake3: Hash::of(content),
            version: 7,
        },
        deltas: vec![],
    }
}

async fn spawn(router: Router) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    addr
}

fn fetcher(addr: SocketAddr) -> Fetcher {
    Fetcher::new(&format!("http://{addr}/manifest.json"), config()).expect("fetcher")
}

/// An origin serving `manifest.json`, its signature and `base-7.fwb` with the given bytes.
fn origin(body: Vec<u8>, sig: Vec<u8>, file: Vec<u8>) -> Router {
    Router::new()
        .route("/manifest.json", get(move || async move { body }))
        .route("/manifest.json.sig", get(move || async move { sig }))
        .route("/base-7.fwb", get(move || async move { file }))
}

async fn fresh(f: &Fetcher) -> Result<fraudwall::feed::UncheckedManifest, FetchError> {
    match tokio::time::timeout(LIMIT, f.manifest(None))
        .await
        .expect("bounded")?
    {
        ManifestResponse::Fresh { manifest, .. } => Ok(manifest),
        ManifestResponse::NotModified => panic!("304 without If-None-Match"),
    }
}

#[tokio::test]
async fn good_feed_verifies_and_downloads() {
    let content = b"snapshot bytes".to_vec();
    let m = manifest_for(&content);
    let (body, sig) = m.sign(&key(1));
    let addr = spawn(origin(body, sig, content.clone())).await;
    let f = fetcher(addr);
    let got = fresh(&f)
        .await
        .expect("fetched")
        .verify(&[key(1).verifying_key()])
        .expect("verified");
    assert_eq!(got, m);
    let file = tokio::time::timeout(LIMIT, f.file(&got.base))
        .await
        .expect("bounded")
        .expect("file");
    assert_eq!(file, content);
}

#[tokio::test]
async fn unreachable_feed() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let err = fresh(&fetcher(addr)).await.unwrap_err();
    assert_eq!(err.reason(), "unreachable", "{err}");
}

#[tokio::test]
async fn slow_feed_times_out() {
    let router = Router::new().route(
        "/manifest.json",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let addr = spawn(router).await;
    let started = std::time::Instant::now();
    let err = fresh(&fetcher(addr)).await.unwrap_err();
    assert_eq!(err.reason(), "timeout", "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn server_errors_are_refused() {
    let router = Router::new().route(
        "/manifest.json",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "busy") }),
    );
    let err = fresh(&fetcher(spawn(router).await)).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::Status { status, .. } if status.as_u16() == 503),
        "{err}"
    );
    // A missing signature is an error too, not an unsigned manifest.
    let router = Router::new().route("/manifest.json", get(|| async { "{}" }));
    let err = fresh(&fetcher(spawn(router).await)).await.unwrap_err();
    assert!(
        matches!(&err, FetchError::Status { status, .. } if status.as_u16() == 404),
        "{err}"
    );
}

#[tokio::test]
async fn truncated_body_is_refused() {
    // A raw origin that promises 1000 bytes and hangs up after 10.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let _ = s
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789")
                .await;
            let _ = s.shutdown().await;
        }
    });
    let err = fresh(&fetcher(addr)).await.unwrap_err();
    assert_eq!(err.reason(), "truncated", "{err}");
}

#[tokio::test]
async fn garbage_bad_signature_and_unknown_key_are_refused() {
    let content = b"snapshot".to_vec();
    let keys = [key(1).verifying_key()];

    // Garbage in place of both files.
    let addr = spawn(origin(
        vec![0xde, 0xad, 0xbe, 0xef],
        b"\x00\x01garbage".to_vec(),
        vec![],
    ))
    .await;
    let err = fresh(&fetcher(addr))
        .await
        .expect("fetched")
        .verify(&keys)
        .unwrap_err();
    assert_eq!(err.reason(), "bad_signature", "{err}");

    // A manifest altered after signing (a bigger base, pointing elsewhere).
    let (body, sig) = manifest_for(&content).sign(&key(1));
    let altered = String::from_utf8(body)
        .expect("utf8")
        .replace("\"version\": 7", "\"version\": 8")
        .into_bytes();
    let addr = spawn(origin(altered, sig, content.clone())).await;
    let err = fresh(&fetcher(addr))
        .await
        .expect("fetched")
        .verify(&keys)
        .unwrap_err();
    assert!(matches!(err, ManifestError::BadSignature(_)), "{err}");

    // Correctly signed, by a key this node does not know.
    let (body, sig) = manifest_for(&content).sign(&key(2));
    let addr = spawn(origin(body, sig, content)).await;
    let err = fresh(&fetcher(addr))
        .await
        .expect("fetched")
        .verify(&keys)
        .unwrap_err();
    assert!(matches!(err, ManifestError::UnknownKey(_)), "{err}");
    assert_eq!(err.reason(), "unknown_key");
}

#[tokio::test]
async fn altered_or_oversized_files_are_refused() {
    let content = b"the real snapshot".to_vec();
    let m = manifest_for(&content);
    let f = |file: Vec<u8>| {
        let (body, sig) = m.sign(&key(1));
        origin(body, sig, file)
    };
    let mut flipped = content.clone();
    flipped[3] ^= 1;
    let err = fetcher(spawn(f(flipped)).await)
        .file(&m.base)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "hash_mismatch", "{err}");

    let err = fetcher(spawn(f(content[..5].to_vec())).await)
        .file(&m.base)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "size_mismatch", "{err}");

    let mut big = content.clone();
    big.extend_from_slice(&[0u8; 4096]);
    let err = fetcher(spawn(f(big)).await)
        .file(&m.base)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), "too_large", "{err}");
}

#[tokio::test]
async fn feed_serve_etag_and_no_traversal() {
    let dir = tempfile::tempdir().expect("tempdir");
    let feed = dir.path().join("feed");
    std::fs::create_dir(&feed).expect("mkdir");
    std::fs::write(dir.path().join("secret"), b"outside").expect("write");
    std::fs::write(feed.join(".hidden"), b"hidden").expect("write");
    let content = b"snap".to_vec();
    let (body, sig) = manifest_for(&content).sign(&key(1));
    std::fs::write(feed.join("manifest.json"), &body).expect("write");
    std::fs::write(feed.join("manifest.json.sig"), &sig).expect("write");
    std::fs::write(feed.join("base-7.fwb"), &content).expect("write");
    let addr = spawn(fraudwall::feed::serve::router(feed.clone())).await;

    let f = fetcher(addr);
    let (manifest, etag) = match f.manifest(None).await.expect("manifest") {
        ManifestResponse::Fresh { manifest, etag } => (manifest, etag),
        ManifestResponse::NotModified => panic!("unconditional request answered 304"),
    };
    let m = manifest.verify(&[key(1).verifying_key()]).expect("verify");
    assert_eq!(f.file(&m.base).await.expect("file"), content);
    let etag = etag.expect("feed serve sends an ETag");
    assert!(matches!(
        f.manifest(Some(&etag)).await.expect("conditional"),
        ManifestResponse::NotModified
    ));
    assert!(matches!(
        f.manifest(Some("\"other\"")).await.expect("conditional"),
        ManifestResponse::Fresh { .. }
    ));

    for path in [
        "/../secret",
        "/%2e%2e/secret",
        "/..%2fsecret",
        "/.hidden",
        "/nope.fwb",
        "/",
    ] {
        let status = raw_get(addr, path).await;
        assert_eq!(status, 404, "{path}");
    }
}

/// Sends a raw GET (no client-side path normalization) and returns the status code.
async fn raw_get(addr: SocketAddr, path: &str) -> u16 {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.expect("send");
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(LIMIT, s.read_to_end(&mut resp)).await;
    let text = String::from_utf8_lossy(&resp);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}
