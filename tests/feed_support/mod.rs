//! Shared helpers of the feed's end-to-end tests: a lab directory with an operator key, the
//! `fraudwall` binary to compile and publish, and the two origins (`fraudwall feed serve`,
//! nginx). Every child process is killed when its [`Guard`] drops.

// Each test binary uses its own subset of these helpers.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_fraudwall");
/// The CSV header.
pub const HEADER: &str = "number,action,category,score,source\n";

/// Kills and reaps a child on drop.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A loopback port free for both UDP and TCP.
pub fn free_port() -> u16 {
    for _ in 0..100 {
        let u = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
        let port = u.local_addr().expect("addr").port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

/// Waits (bounded) until something accepts TCP connections on `port`.
pub fn wait_for_tcp(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listening on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory with an operator key pair (`op.key`, `op.pub`) and a feed dir.
pub struct Lab {
    /// The directory.
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// A new lab with a fresh key pair.
    pub fn new() -> Lab {
        let lab = Lab {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        lab.cmd(&["keygen", "--output", &lab.path("op")]);
        lab
    }

    /// A path inside the lab, as a string for command lines.
    pub fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The feed directory.
    pub fn feed(&self) -> PathBuf {
        self.dir.path().join("feed")
    }

    /// Runs `fraudwall args...`, which must succeed; returns stdout.
    pub fn cmd(&self, args: &[&str]) -> String {
        let out = Command::new(BIN)
            .args(args)
            .output()
            .expect("run fraudwall");
        assert!(
            out.status.success(),
            "fraudwall {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Compiles `rows` (CSV without header) to `<name>.fwb`; returns its path.
    pub fn compile(&self, name: &str, rows: &str) -> String {
        let csv = self.path(&format!("{name}.csv"));
        std::fs::write(&csv, format!("{HEADER}{rows}")).expect("csv");
        let fwb = self.path(&format!("{name}.fwb"));
        self.cmd(&["compile", "--profile", "generic", "--output", &fwb, &csv]);
        fwb
    }

    /// Compiles `rows` and publishes them to the feed; returns the publish report.
    pub fn publish(&self, name: &str, rows: &str, extra: &[&str]) -> serde_json::Value {
        let fwb = self.compile(name, rows);
        let feed = self.feed().display().to_string();
        let key = self.path("op.key");
        let mut args = vec!["publish", "--feed-dir", &feed, "--key", &key, "--json"];
        args.extend_from_slice(extra);
        args.push(&fwb);
        serde_json::from_str(self.cmd(&args).trim()).expect("publish report is JSON")
    }

    /// `fraudwall feed serve` on the feed directory; returns the guard and the port.
    pub fn feed_serve(&self) -> (Guard, u16) {
        let port = free_port();
        let child = Command::new(BIN)
            .args(["feed", "serve", "--listen", &format!("127.0.0.1:{port}")])
            .arg(self.feed())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn feed serve");
        let guard = Guard(child);
        wait_for_tcp(port);
        (guard, port)
    }

    /// nginx with `integration/nginx/feed.conf` on the feed directory. Panics (fails the
    /// test) when nginx is missing: it is a required peer, installed by `.ci/run`.
    pub fn nginx(&self) -> (Guard, u16) {
        let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is required for this test (Debian package nginx, installed by .ci/run)");
        let port = free_port();
        let template = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/integration/nginx/feed.conf"
        ))
        .expect("nginx template");
        let scratch = self.dir.path().join(format!("nginx-{port}"));
        std::fs::create_dir_all(&scratch).expect("scratch");
        let conf = template
            .replace("@PREFIX@", &scratch.display().to_string())
            .replace("@LISTEN@", &format!("127.0.0.1:{port}"))
            .replace("@ROOT@", &self.feed().display().to_string());
        let conf_path = scratch.join("feed.conf");
        std::fs::write(&conf_path, conf).expect("conf");
        let child = Command::new(nginx)
            .arg("-p")
            .arg(&scratch)
            .arg("-c")
            .arg(&conf_path)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let guard = Guard(child);
        wait_for_tcp(port);
        (guard, port)
    }
}

/// The manifest URL of a feed origin on `port`.
pub fn manifest_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/manifest.json")
}

/// One HTTP/1.1 request to the admin listener on `port`: (status code, body).
pub fn http(port: u16, method: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect admin");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    let code = out
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = out.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    (code, body)
}

/// The node's `/status` document.
pub fn status(admin: u16) -> serde_json::Value {
    let (code, body) = http(admin, "GET", "/status");
    assert_eq!(code, 200, "{body}");
    serde_json::from_str(&body).expect("status JSON")
}

/// The value of one Prometheus series in the node's `/metrics` (0 when absent).
pub fn metric(admin: u16, series: &str) -> u64 {
    http(admin, "GET", "/metrics")
        .1
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Waits (bounded) until the node on `admin` reports feed version `version` active.
pub fn wait_for_version(admin: u16, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = status(admin);
        if s["feed"]["active_version"] == version {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "version {version} not active: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until the node on `admin` reports version `version` of the feed's list
/// `list` (`subscribers`, `protected`) active.
pub fn wait_for_list_version(admin: u16, list: &str, version: u64) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let s = status(admin);
        let active = s["feed_lists"]
            .as_array()
            .and_then(|l| l.iter().find(|f| f["list"] == list))
            .map(|f| f["active_version"].clone());
        if active == Some(serde_json::Value::from(version)) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{list} version {version} not active: {s}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The sipp scenarios under integration/sipp.
pub fn sipp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/sipp")
}

/// Starts sipp with `args` in `dir`. Panics (fails the test) when sipp is missing: it is a
/// required peer (Debian package sip-tester, installed by `.ci/run`).
pub fn sipp(args: &[String], dir: &Path) -> Guard {
    let child = Command::new("sipp")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run sipp ({e}): this test needs sipp (Debian package sip-tester)")
        });
    Guard(child)
}

/// The last data row of a sipp `-trace_stat` CSV, as (column, value) pairs.
pub fn last_stats(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split(';')
        .map(str::to_string)
        .collect();
    let last: Vec<String> = lines
        .next_back()
        .unwrap_or_default()
        .split(';')
        .map(str::to_string)
        .collect();
    header.into_iter().zip(last).collect()
}

/// One statistic of [`last_stats`]; panics when sipp did not write it.
pub fn stat(stats: &[(String, String)], name: &str) -> u64 {
    stats
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("sipp statistic {name} missing: {stats:?}"))
}

/// A sipp switch (`uas_echo.xml`) on a free loopback port, bound before this returns; it
/// runs until `timeout` (a sipp duration such as `"150s"`) or its guard drops. No call count:
/// sipp's UAS count includes stray retransmissions.
pub fn echo_switch(dir: &Path, timeout: &str) -> (Guard, u16) {
    let port = free_port();
    let uas = sipp(
        &[
            "-sf".into(),
            sipp_dir().join("uas_echo.xml").display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            port.to_string(),
            "-timeout".into(),
            timeout.into(),
            "-nostdin".into(),
        ],
        dir,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(Instant::now() < deadline, "sipp UAS did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    (uas, port)
}

/// A started `fraudwall run` following a feed.
pub struct FeedNode {
    /// The process.
    pub guard: Guard,
    /// Its SIP port (UDP, 127.0.0.1).
    pub sip: u16,
    /// Its admin port.
    pub admin: u16,
}

/// `fraudwall run --config config` following the feed served on `feed_port` (signed by the
/// lab's key, polled every 200 ms, cached in the lab), forwarding to `switch`, decision log
/// off; returns once its admin listener answers.
pub fn feed_node(lab: &Lab, config: &Path, feed_port: u16, switch: u16) -> FeedNode {
    let (sip, admin) = (free_port(), free_port());
    let child = Command::new(BIN)
        .args([
            "run",
            "--config",
            &config.display().to_string(),
            "--feed",
            &manifest_url(feed_port),
            "--feed-key",
            &lab.path("op.pub"),
            "--feed-poll",
            "200ms",
            "--cache-dir",
            &lab.path("cache"),
            "--listen",
            &format!("127.0.0.1:{sip}"),
            "--next-hop",
            &format!("127.0.0.1:{switch}"),
            // sipp's scenarios abort a call on a 180 relayed after its 200, which the random
            // spread allows (tests/sipp_support explains); the spread has its own tests.
            "--udp-spread",
            "flow",
            "--admin",
            &format!("127.0.0.1:{admin}"),
            "--decision-log",
            "off",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("fraudwall run");
    let guard = Guard(child);
    wait_for_tcp(admin);
    FeedNode { guard, sip, admin }
}

/// A sipp UAC placing `calls` calls at `rate` per second through the node's SIP port, each
/// verdict checked by `scenario` from the rows of `inf` (sipp `-inf`), with its statistics
/// in `dir/uac_stats.csv` and errors in `dir/uac_errors.log`.
pub fn sipp_load(dir: &Path, sip: u16, scenario: &str, inf: &Path, calls: u32, rate: u32) -> Guard {
    sipp(
        &[
            format!("127.0.0.1:{sip}"),
            "-sf".into(),
            sipp_dir().join(scenario).display().to_string(),
            "-inf".into(),
            inf.display().to_string(),
            "-i".into(),
            "127.0.0.1".into(),
            "-p".into(),
            free_port().to_string(),
            "-m".into(),
            calls.to_string(),
            "-r".into(),
            rate.to_string(),
            "-s".into(),
            "svc".into(),
            "-d".into(),
            "50".into(),
            "-nostdin".into(),
            "-timeout".into(),
            "120s".into(),
            "-timeout_error".into(),
            "-trace_stat".into(),
            "-stf".into(),
            dir.join("uac_stats.csv").display().to_string(),
            "-fd".into(),
            "1".into(),
            "-trace_err".into(),
            "-error_file".into(),
            dir.join("uac_errors.log").display().to_string(),
        ],
        dir,
    )
}

/// Waits (bounded by `limit`) for `g`'s process to end; panics past it.
pub fn wait_exit(g: &mut Guard, limit: Duration, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(s) = g.0.try_wait().expect("try_wait") {
            return s;
        }
        assert!(Instant::now() < deadline, "{what} did not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The UAC's successful, failed and retransmitted counts from [`sipp_load`]'s statistics.
pub fn load_counts(dir: &Path) -> (u64, u64, u64) {
    let s = last_stats(&dir.join("uac_stats.csv"));
    (
        stat(&s, "SuccessfulCall(C)"),
        stat(&s, "FailedCall(C)"),
        stat(&s, "Retransmissions(C)"),
    )
}
