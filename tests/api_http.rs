//! Issue 12, "HTTP verdict API", end to end: the built `fraudwall` binary with `--api` on
//! loopback, a list compiled with the CLI, and real HTTP clients (reqwest, and raw TCP for
//! the abuse reqwest will not send).
//!
//! * `POST /v1/screen` for a blocked caller answers `block` with `sip.code` 608 (603 with
//!   `block_response = 603`, with the 603+ Reason); `GET /v1/screen?caller=%2B86...` for a
//!   tagged one answers `tag`, category `loan`, score 70, with the `X-Fraud-Label` header;
//! * no or a wrong token: 401; a body over `api.max_body`: 413; malformed JSON or a wrong
//!   type: 400 naming the field; a batch over `api.max_batch`: 413 naming the limit; a
//!   client that does not finish its headers is disconnected after `api.request_timeout`;
//! * a batch answers in order; every answer is counted in `fraudwall_api_requests_total`;
//! * each verdict's decision-log line has `front` = `api`;
//! * without a tokens file the API does not start (the error names `api.tokens_file`);
//! * with `api.tls = true` the API speaks HTTPS with the `[tls]` certificate (a throw-away
//!   rcgen PKI), and plain HTTP on it gets no answer.

mod sipp_support;
mod tls_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sipp_support::{free_port, Guard};

const TOKEN: &str = "api-token-0123456789abcdef0123456789abcdef";
const ROWS: &str = "number,action,category,score,source
+8613800000001,block,impersonation,95,police
+8613800000002,tag,loan,70,reports
";

/// A running node with its API.
struct Node {
    dir: tempfile::TempDir,
    api: u16,
    admin: u16,
    _fw: Guard,
}

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// Compiles [`ROWS`] with the CLI and starts `fraudwall run --api ... --api-tokens ...` with
/// `config` as its config file.
fn start(config: &str) -> Node {
    let dir = tempfile::tempdir().expect("tempdir");
    let csv = dir.path().join("list.csv");
    std::fs::write(&csv, ROWS).expect("write csv");
    let snap = dir.path().join("list.fwb");
    let out = Command::new(env!("CARGO_BIN_EXE_fraudwall"))
        .args(["compile", "-q", "-o", p(&snap), p(&csv)])
        .output()
        .expect("run compile");
    assert!(out.status.success(), "compile: {out:?}");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("# api tokens\n{TOKEN}\n")).expect("write tokens");
    let cfg = dir.path().join("fraudwall.toml");
    std::fs::write(&cfg, config).expect("write config");
    let (sip, next, admin, api) = (
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
    );
    let fw = Command::new(env!("CARGO_BIN_EXE_fraudwall"))
        .args(["run", "--config", p(&cfg), "--blocklist", p(&snap)])
        .args(["--listen", &format!("127.0.0.1:{sip}")])
        .args(["--next-hop", &format!("127.0.0.1:{next}")])
        .args(["--admin", &format!("127.0.0.1:{admin}")])
        .args(["--api", &format!("127.0.0.1:{api}")])
        .args(["--api-tokens", p(&tokens)])
        .args(["--decision-log", p(&dir.path().join("decisions.jsonl"))])
        .args(["--workers", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start fraudwall");
    let node = Node {
        dir,
        api,
        admin,
        _fw: Guard(Some(fw)),
    };
    // The API is bound before the admin listener answers (both in the runtime's start).
    let deadline = Instant::now() + Duration::from_secs(15);
    while raw(node.admin, "GET /healthz HTTP/1.1\r\nHost: x\r\n").0 == 0 {
        assert!(Instant::now() < deadline, "the node did not come up");
        std::thread::sleep(Duration::from_millis(50));
    }
    node
}

/// Sends `head` (request line and headers, without the blank line), `Connection: close`, and
/// `body`; returns (status, body). Status 0: no answer.
fn raw(port: u16, head: &str) -> (u16, String) {
    raw_with_body(port, head, b"")
}

fn raw_with_body(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let Ok(mut c) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
    let mut req = format!(
        "{head}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    // A server that answers 413 early may close before reading it all.
    let _ = c.write_all(&req);
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn post(port: u16, path: &str, auth: Option<&str>, body: &[u8]) -> (u16, Value) {
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let (code, b) = raw_with_body(
        port,
        &format!("POST {path} HTTP/1.1\r\nHost: x\r\n{auth}"),
        body,
    );
    (code, serde_json::from_str(&b).unwrap_or(Value::Null))
}

impl Node {
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.api)
    }

    fn metric(&self, series: &str) -> f64 {
        let (_, m) = raw(self.admin, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
        m.lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The decision-log lines, waiting up to 3 s for `n` of them.
    fn decisions(&self, n: usize) -> Vec<Value> {
        let path: PathBuf = self.dir.path().join("decisions.jsonl");
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let lines: Vec<Value> = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .filter_map(|l| serde_json::from_str(l).ok())
                .collect();
            if lines.len() >= n || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio")
}

#[test]
fn screens_block_tag_and_batch_with_a_real_client() {
    let node = start("[actions]\nredress_url = \"https://redress.example.net/{category}\"\n");
    runtime().block_on(async {
        let client = reqwest::Client::new();
        // The acceptance POST: block, 608, the proxy's jCard Call-Info.
        let r = client
            .post(node.url("/v1/screen"))
            .bearer_auth(TOKEN)
            .body(r#"{"caller":"+8613800000001","callee":"+8613900000001","call_id":"api-1"}"#)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
        assert_eq!(v["action"], "block", "{v}");
        assert_eq!(v["rule"], "global");
        assert_eq!(v["reason"], "listed");
        assert_eq!(v["category"], "impersonation");
        assert_eq!(v["score"], 95);
        assert_eq!(v["sip"]["code"], 608);
        assert_eq!(v["sip"]["reason_phrase"], "Rejected");
        assert_eq!(
            v["sip"]["headers"]["Call-Info"],
            "<https://redress.example.net/impersonation>;purpose=jcard"
        );
        assert!(v["snapshot_version"].is_u64(), "{v}");

        // The acceptance GET, caller percent-encoded: tag, loan, 70, the label header.
        let r = client
            .get(node.url("/v1/screen?caller=%2B8613800000002"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
        assert_eq!(v["action"], "tag", "{v}");
        assert_eq!(v["category"], "loan");
        assert_eq!(v["score"], 70);
        assert!(v["sip"]["code"].is_null());
        assert_eq!(
            v["sip"]["headers"]["X-Fraud-Label"],
            "suspected-fraud;category=loan;score=70"
        );

        // A URI caller from a peer address, an unknown field: allowed, no SIP to apply.
        let r = client
            .post(node.url("/v1/screen"))
            .bearer_auth(TOKEN)
            .body(
                json!({"caller": "sip:+8613800000009@gw;user=phone", "peer": "10.1.2.3",
                          "verstat": "TN-Validation-Passed", "whatever": [1, 2]})
                .to_string(),
            )
            .send()
            .await
            .expect("post");
        let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
        assert_eq!(v["action"], "allow", "{v}");
        assert!(v["sip"]["code"].is_null());
        assert_eq!(v["sip"]["headers"], json!({}));

        // A batch, answered in order.
        let r = client
            .post(node.url("/v1/screen/batch"))
            .bearer_auth(TOKEN)
            .body(
                json!({"calls": [
                    {"caller": "tel:+8613800000002"},
                    {"caller": "+8613800000001"},
                    {"caller": "+8613800000009"},
                ]})
                .to_string(),
            )
            .send()
            .await
            .expect("batch");
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
        let actions: Vec<&str> = v["results"]
            .as_array()
            .expect("results")
            .iter()
            .map(|r| r["action"].as_str().unwrap_or(""))
            .collect();
        assert_eq!(actions, ["tag", "block", "allow"]);

        // No token, a wrong one: 401.
        let r = client
            .post(node.url("/v1/screen"))
            .body(r#"{"caller":"+8613800000001"}"#)
            .send()
            .await
            .expect("post");
        assert_eq!(r.status().as_u16(), 401);
        assert!(r.headers().contains_key("www-authenticate"));
        let r = client
            .get(node.url("/v1/screen?caller=%2B8613800000002"))
            .bearer_auth("not-the-token-0123456789abcdef")
            .send()
            .await
            .expect("get");
        assert_eq!(r.status().as_u16(), 401);
    });

    // Every verdict in the decision log, from the api front.
    let lines = node.decisions(6);
    let api: Vec<&Value> = lines.iter().filter(|l| l["front"] == "api").collect();
    assert_eq!(api.len(), 6, "{lines:?}");
    let first = api
        .iter()
        .find(|l| l["call_id"] == "api-1")
        .expect("the POST's line");
    assert_eq!(first["verdict"], "block");
    assert_eq!(first["caller"], "+8613800000001");
    assert_eq!(first["callee"], "+8613900000001");
    assert_eq!(first["peer_group"], "default");
    assert_eq!(
        node.metric("fraudwall_api_requests_total{endpoint=\"screen\",status=\"200\"}"),
        3.0
    );
    assert_eq!(
        node.metric("fraudwall_api_requests_total{endpoint=\"batch\",status=\"200\"}"),
        1.0
    );
    assert_eq!(
        node.metric("fraudwall_api_requests_total{endpoint=\"screen\",status=\"401\"}"),
        2.0
    );
    assert_eq!(
        node.metric("fraudwall_verdicts_total{action=\"block\",category=\"impersonation\"}"),
        2.0
    );
}

#[test]
fn block_response_603_carries_the_603_plus_reason() {
    let node =
        start("[actions]\nblock_response = 603\nredress_url = \"https://redress.example.net/r\"\n");
    let (code, v) = post(
        node.api,
        "/v1/screen",
        Some(TOKEN),
        br#"{"caller":"sip:+8613800000001@10.0.0.1;user=phone"}"#,
    );
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["action"], "block");
    assert_eq!(v["sip"]["code"], 603);
    assert_eq!(v["sip"]["reason_phrase"], "Network Blocked");
    assert_eq!(
        v["sip"]["headers"]["Reason"],
        "SIP;cause=603;text=\"v=analytics1;url=https://redress.example.net/r\";location=RLN"
    );
    assert_eq!(
        v["sip"]["headers"]["Call-Info"],
        "<https://redress.example.net/r>;purpose=jcard"
    );
}

#[test]
fn bad_input_gets_its_status_and_a_metric() {
    let node = start("[api]\nmax_body = 1024\nmax_batch = 2\nrequest_timeout = \"1s\"\n");
    let t = Some(TOKEN);

    // Over max_body: 413.
    let big = format!(
        r#"{{"caller":"+8613800000001","pad":"{}"}}"#,
        "x".repeat(2000)
    );
    let (code, v) = post(node.api, "/v1/screen", t, big.as_bytes());
    assert_eq!(code, 413, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("api.max_body"),
        "{v}"
    );

    // Malformed JSON: 400.
    let (code, v) = post(node.api, "/v1/screen", t, b"{\"caller\":");
    assert_eq!(code, 400, "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("malformed JSON"),
        "{v}"
    );

    // Wrong types and a missing caller: 400 naming the field.
    for (body, field) in [
        (&br#"{"caller":8613800000001}"#[..], "caller"),
        (br#"{"caller":"+8613800000001","peer":"not-an-ip"}"#, "peer"),
        (br#"{"caller":"+8613800000001","verstat":true}"#, "verstat"),
        (br#"{"callee":"+8613900000001"}"#, "caller"),
    ] {
        let (code, v) = post(node.api, "/v1/screen", t, body);
        assert_eq!(code, 400, "{v}");
        assert_eq!(v["field"], field, "{v}");
    }
    let (code, v) = post(
        node.api,
        "/v1/screen/batch",
        t,
        br#"{"calls":[{"caller":"+8613800000001"},{"caller":["x"]}]}"#,
    );
    assert_eq!(
        (code, v["field"].as_str()),
        (400, Some("calls[1].caller")),
        "{v}"
    );

    // A batch over max_batch: 413 naming the limit.
    let (code, v) = post(
        node.api,
        "/v1/screen/batch",
        t,
        br#"{"calls":[{"caller":"1"},{"caller":"2"},{"caller":"3"}]}"#,
    );
    assert_eq!(code, 413, "{v}");
    assert_eq!(v["limit"], 2);
    assert!(
        v["error"].as_str().unwrap_or("").contains("api.max_batch"),
        "{v}"
    );

    // Wrong method, unknown path.
    let (code, _) = raw(
        node.api,
        &format!("GET /v1/screen/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"),
    );
    assert_eq!(code, 405);
    let (code, _) = post(node.api, "/v2/nothing", t, b"{}");
    assert_eq!(code, 404);

    // A client that never finishes its headers is disconnected after request_timeout.
    let mut slow = TcpStream::connect(("127.0.0.1", node.api)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    slow.write_all(b"POST /v1/screen HTTP/1.1\r\nHost: x\r\n")
        .expect("send");
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = slow.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800) && waited < Duration::from_millis(4500),
        "closed after {waited:?}"
    );
    // A body that stops short of its Content-Length: 408 at request_timeout.
    let mut slow = TcpStream::connect(("127.0.0.1", node.api)).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        slow,
        "POST /v1/screen HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n{{\"caller\":"
    )
    .expect("send");
    let mut out = String::new();
    let _ = slow.read_to_string(&mut out);
    assert!(out.starts_with("HTTP/1.1 408"), "{out}");

    // The server is still fine, and counted every refusal.
    let (code, v) = post(node.api, "/v1/screen", t, br#"{"caller":"+8613800000002"}"#);
    assert_eq!((code, v["action"].as_str()), (200, Some("tag")), "{v}");
    let m = |e: &str, s: &str| {
        node.metric(&format!(
            "fraudwall_api_requests_total{{endpoint=\"{e}\",status=\"{s}\"}}"
        ))
    };
    assert_eq!(m("screen", "413"), 1.0);
    assert_eq!(m("screen", "400"), 5.0);
    assert_eq!(m("batch", "400"), 1.0);
    assert_eq!(m("batch", "413"), 1.0);
    assert_eq!(m("batch", "405"), 1.0);
    assert_eq!(m("other", "404"), 1.0);
    assert_eq!(m("screen", "408"), 1.0);
}

#[test]
fn the_api_does_not_start_without_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_fraudwall"))
        .args(["run", "--api", "127.0.0.1:0", "--admin", ""])
        .output()
        .expect("run");
    drop(dir);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("api.tokens_file"), "{err}");
}

#[test]
fn api_tls_serves_https_with_the_tls_certificate() {
    let pki = tls_support::Pki::new("fraudwall test CA");
    let leaf = pki.leaf(
        "fraudwall api",
        &["localhost", "127.0.0.1"],
        tls_support::Validity::Current,
    );
    let node = start(&format!(
        "[api]\ntls = true\n[tls]\ncertificate = {:?}\nprivate_key = {:?}\n",
        p(&leaf.cert),
        p(&leaf.key)
    ));
    let ca = std::fs::read(&pki.ca_path).expect("ca pem");
    runtime().block_on(async {
        let client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).expect("ca"))
            .build()
            .expect("client");
        let r = client
            .get(format!(
                "https://localhost:{}/v1/screen?caller=%2B8613800000002",
                node.api
            ))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("https get");
        assert_eq!(r.status().as_u16(), 200);
        let v: Value = serde_json::from_str(&r.text().await.expect("body")).expect("json");
        assert_eq!(
            (v["action"].as_str(), v["category"].as_str()),
            (Some("tag"), Some("loan"))
        );
        // Without the token, over TLS too: 401.
        let r = client
            .get(format!("https://localhost:{}/v1/screen?caller=1", node.api))
            .send()
            .await
            .expect("https get");
        assert_eq!(r.status().as_u16(), 401);
        // A client that does not trust the CA is refused in the handshake.
        let stranger = reqwest::Client::new();
        assert!(stranger
            .get(format!("https://localhost:{}/v1/screen?caller=1", node.api))
            .send()
            .await
            .is_err());
    });
    // Plain HTTP to the TLS listener gets no HTTP answer.
    assert_eq!(
        raw(node.api, "GET /v1/screen?caller=1 HTTP/1.1\r\nHost: x\r\n").0,
        0
    );
}

/// The decision log under the real logrotate (Debian package `logrotate`; the test fails
/// without it): the package's rule, pointed at this node's log, rotates the file, and the
/// node's next decisions land in a new file at the path (no signal, no copytruncate).
#[test]
fn logrotate_rotates_the_decision_log_and_the_node_writes_a_new_file() {
    let node = start("");
    let screen = |caller: &str| {
        let body = json!({ "caller": caller, "callee": "+8610555" }).to_string();
        let (code, _) = post(node.api, "/v1/screen", Some(TOKEN), body.as_bytes());
        assert_eq!(code, 200);
    };
    screen("+8613800000001");
    assert_eq!(node.decisions(1).len(), 1);

    let rule = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/deploy/fraudwall.logrotate"),
    )
    .expect("read the logrotate rule")
    .replace(
        "/var/log/fraudwall/*.jsonl",
        p(&node.dir.path().join("*.jsonl")),
    )
    // The test runs as whoever runs it in a directory of its own; the package's user may
    // not exist here.
    .replace("    su fraudwall fraudwall\n", "");
    let conf = node.dir.path().join("logrotate.conf");
    std::fs::write(&conf, rule).expect("write logrotate.conf");
    let logrotate = if Path::new("/usr/sbin/logrotate").exists() {
        "/usr/sbin/logrotate"
    } else {
        "logrotate"
    };
    let out = Command::new(logrotate)
        .arg("--force")
        .arg("--state")
        .arg(node.dir.path().join("logrotate.state"))
        .arg(&conf)
        .output()
        .unwrap_or_else(|e| panic!("logrotate is required (Debian package logrotate): {e}"));
    assert!(out.status.success(), "logrotate: {out:?}");
    let rotated: Vec<PathBuf> = std::fs::read_dir(node.dir.path())
        .expect("read dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("decisions.jsonl-"))
        })
        .collect();
    assert_eq!(
        rotated.len(),
        1,
        "one rotated file (dateext, delaycompress): {rotated:?}"
    );

    screen("+8613800000002");
    let now = node.decisions(1);
    assert_eq!(
        now.len(),
        1,
        "the new file holds the decision made after the rotation"
    );
    assert_eq!(now[0]["caller"], "+8613800000002");
    let old = std::fs::read_to_string(&rotated[0]).expect("read the rotated file");
    assert_eq!(old.lines().count(), 1);
    assert!(old.contains("+8613800000001"));
    assert_eq!(node.metric("fraudwall_decision_log_dropped_total"), 0.0);
}
