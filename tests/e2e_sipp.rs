//! End-to-end: the built `fraudwall` binary between real sipp peers on loopback.
//!
//! Each test compiles a small blocklist, starts `fraudwall run` on free ports, a sipp UAS as
//! the switch (integration/sipp/uas_*.xml) and a sipp UAC as the callers
//! (integration/sipp/uac_*.xml), and checks the verdicts end to end: the UAC scenario fails a
//! call whose answer does not match the caller's expected verdict, the switch's message log
//! shows what reached it, and `/metrics` shows the counters.
//!
//! sipp is required: when it is missing these tests FAIL (install the `sip-tester` package).
//! Every child is bounded (`-m`, `-timeout`) and killed when its guard drops.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const LIST: &str = "number,action,category,score,source
+8613800000001,block,impersonation,95,police
+8613800000002,tag,loan,70,reports
+8613800000003,warn,investment,80,reports
";

const BLOCKED: &str = "8613800000001";
const TAGGED: &str = "8613800000002";
const WARNED: &str = "8613800000003";
const CLEAN: &str = "8613800000009";

fn sipp_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("integration/sipp")
}

/// Kills and reaps the child when dropped.
struct Guard(Option<Child>);

impl Guard {
    fn wait(mut self, limit: Duration) -> Output {
        let mut child = self.0.take().expect("child");
        let deadline = Instant::now() + limit;
        loop {
            if child.try_wait().expect("try_wait").is_some() {
                return child.wait_with_output().expect("output");
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "child did not finish within {limit:?}; stdout:\n{}\nstderr:\n{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A port free for both UDP and TCP on `ip`.
fn free_port(ip: &str) -> u16 {
    for _ in 0..100 {
        let u = UdpSocket::bind((ip, 0)).expect("bind udp");
        let port = u.local_addr().expect("addr").port();
        if TcpListener::bind((ip, port)).is_ok() {
            return port;
        }
    }
    panic!("no free port");
}

fn sipp(args: &[&str], dir: &Path) -> Guard {
    let child = Command::new("sipp")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run sipp ({e}): these tests need sipp (Debian package sip-tester)")
        });
    Guard(Some(child))
}

struct Setup {
    dir: tempfile::TempDir,
    ip: &'static str,
    sip: u16,
    switch: u16,
    admin: u16,
    _fw: Guard,
}

fn bracket(ip: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip.to_string()
    }
}

impl Setup {
    /// Compiles the list and starts fraudwall on `ip` with `extra` config lines.
    fn start(ip: &'static str, extra: &str) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let snap = dir.path().join("list.fwsnap");
        fraudwall::blocklist::compile_csv_text(LIST, &Default::default(), &snap)
            .expect("compile list");
        let (sip, switch, admin) = (free_port(ip), free_port(ip), free_port("127.0.0.1"));
        let b = bracket(ip);
        let config = format!(
            "[sip]\nudp_workers = 2\n[actions]\nwarn_uri = \"sip:announce@{b}:{switch}\"\nredress_url = \"https://redress.example.net/jcard\"\n{extra}\n[decision_log]\ntarget = \"{}\"\n",
            dir.path().join("decisions.jsonl").display()
        );
        let cfg_path = dir.path().join("fraudwall.toml");
        std::fs::write(&cfg_path, config).expect("write config");
        let fw = Command::new(env!("CARGO_BIN_EXE_fraudwall"))
            .arg("run")
            .arg("--config")
            .arg(&cfg_path)
            .arg("--blocklist")
            .arg(&snap)
            .arg("--listen")
            .arg(format!("{b}:{sip}"))
            .arg("--next-hop")
            .arg(format!("{b}:{switch}"))
            .arg("--admin")
            .arg(format!("127.0.0.1:{admin}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start fraudwall");
        let s = Setup {
            dir,
            ip,
            sip,
            switch,
            admin,
            _fw: Guard(Some(fw)),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while !s.http("/healthz").starts_with("HTTP/1.1 200") {
            assert!(
                Instant::now() < deadline,
                "fraudwall did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    fn http(&self, path: &str) -> String {
        let Ok(mut c) = TcpStream::connect(("127.0.0.1", self.admin)) else {
            return String::new();
        };
        let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        );
        let mut s = String::new();
        let _ = c.read_to_string(&mut s);
        s
    }

    /// The value of one series in /metrics.
    fn metric(&self, series: &str) -> f64 {
        self.http("/metrics")
            .lines()
            .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the switch (a sipp UAS) expecting `calls` calls.
    fn switch(&self, scenario: &str, calls: usize) -> Guard {
        let sf = sipp_dir().join(scenario);
        let m = calls.to_string();
        let p = self.switch.to_string();
        let log = self.path("switch_msgs.log");
        let g = sipp(
            &[
                "-sf",
                sf.to_str().unwrap(),
                "-i",
                self.ip,
                "-p",
                &p,
                "-m",
                &m,
                "-nostdin",
                "-timeout",
                "30s",
                "-trace_msg",
                "-message_file",
                log.to_str().unwrap(),
                "-trace_err",
                "-error_file",
                self.path("switch_err.log").to_str().unwrap(),
            ],
            self.dir.path(),
        );
        // Wait until the UAS has bound its port.
        let deadline = Instant::now() + Duration::from_secs(5);
        while UdpSocket::bind((self.ip, self.switch)).is_ok() {
            assert!(Instant::now() < deadline, "sipp UAS did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        g
    }

    /// Runs the callers (a sipp UAC), one call per line of `callers` ("digits;expected").
    fn call(&self, scenario: &str, callers: &[(&str, &str)], transport: &str) -> Output {
        let csv = self.path("callers.csv");
        let mut text = String::from("SEQUENTIAL\n");
        for (n, e) in callers {
            text.push_str(&format!("{n};{e}\n"));
        }
        std::fs::write(&csv, text).expect("write callers");
        let sf = sipp_dir().join(scenario);
        let target = format!("{}:{}", bracket(self.ip), self.sip);
        let m = callers.len().to_string();
        let p = free_port(self.ip).to_string();
        let log = self.path("caller_msgs.log");
        let err = self.path("caller_err.log");
        let g = sipp(
            &[
                &target,
                "-sf",
                sf.to_str().unwrap(),
                "-inf",
                csv.to_str().unwrap(),
                "-i",
                self.ip,
                "-p",
                &p,
                "-t",
                transport,
                "-m",
                &m,
                "-l",
                "1",
                "-r",
                "20",
                "-s",
                "svc",
                "-d",
                "100",
                "-nostdin",
                "-timeout",
                "25s",
                "-timeout_error",
                "-trace_msg",
                "-message_file",
                log.to_str().unwrap(),
                "-trace_err",
                "-error_file",
                err.to_str().unwrap(),
            ],
            self.dir.path(),
        );
        let out = g.wait(Duration::from_secs(40));
        assert!(
            out.status.success(),
            "sipp UAC failed ({:?}): errors:\n{}\nstdout tail:\n{}",
            out.status,
            std::fs::read_to_string(&err).unwrap_or_default(),
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .rev()
                .take(30)
                .collect::<Vec<_>>()
                .join("\n")
        );
        out
    }
}

/// Messages of a sipp `-trace_msg` log: (direction line, message text).
fn messages(log: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    text.split("----------------------------------------------- ")
        .filter_map(|block| {
            let mut lines = block.splitn(3, '\n');
            let _time = lines.next()?;
            let dir = lines.next()?.to_string();
            let msg = lines.next()?.trim_start_matches(['\r', '\n']).to_string();
            Some((dir, msg))
        })
        .collect()
}

fn invites_from<'a>(msgs: &'a [(String, String)], caller: &str) -> Vec<&'a str> {
    msgs.iter()
        .filter(|(_, m)| {
            m.starts_with("INVITE ")
                && m.lines()
                    .any(|l| l.starts_with("From:") && l.contains(caller))
        })
        .map(|(_, m)| m.as_str())
        .collect()
}

/// Header lines and body of a message without Via, Max-Forwards and Record-Route (what a
/// proxy may change), with the insignificant whitespace around header colons normalized
/// (RFC 3261 §7.3.1).
fn without_via_and_max_forwards(m: &str) -> Vec<String> {
    let (head, body) = m
        .split_once("\n\n")
        .or_else(|| m.split_once("\r\n\r\n"))
        .unwrap_or((m, ""));
    let mut out: Vec<String> = head
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| {
            let lower = l.to_ascii_lowercase();
            !["via:", "v:", "max-forwards:", "record-route:"]
                .iter()
                .any(|p| lower.starts_with(p))
        })
        .map(|l| match l.split_once(':') {
            Some((name, value)) if !l.starts_with("INVITE ") => {
                format!("{}: {}", name.trim(), value.trim())
            }
            _ => l.to_string(),
        })
        .collect();
    out.extend(
        body.lines()
            .map(|l| l.trim_end_matches('\r').to_string())
            .filter(|l| !l.is_empty()),
    );
    out
}

fn check_verdicts(ip: &'static str, transport: &str, extra: &str) {
    let s = Setup::start(ip, extra);
    let callers = [
        (CLEAN, "allow"),
        (TAGGED, "tag"),
        (BLOCKED, "block"),
        (WARNED, "warn"),
        (CLEAN, "allow"),
    ];
    let switch = s.switch("uas_echo.xml", 4);
    s.call("uac_verdict.xml", &callers, transport);
    let out = switch.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "switch failed: {}",
        std::fs::read_to_string(s.path("switch_err.log")).unwrap_or_default()
    );

    let at_switch = messages(&s.path("switch_msgs.log"));
    assert!(
        invites_from(&at_switch, BLOCKED).is_empty(),
        "a blocked caller reached the switch"
    );
    let tagged = invites_from(&at_switch, TAGGED);
    assert!(!tagged.is_empty());
    assert!(
        tagged[0]
            .lines()
            .any(|l| l.starts_with("X-Fraud-Label: suspected-fraud")),
        "{}",
        tagged[0]
    );
    // Allowed calls arrive unchanged but for Via and Max-Forwards.
    let sent = messages(&s.path("caller_msgs.log"));
    let (sent_clean, got_clean) = (invites_from(&sent, CLEAN), invites_from(&at_switch, CLEAN));
    assert_eq!(got_clean.len(), 2);
    assert_eq!(
        without_via_and_max_forwards(sent_clean[0]),
        without_via_and_max_forwards(got_clean[0])
    );
    assert!(got_clean[0].contains("Max-Forwards: 69"));

    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"block\",category=\"impersonation\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"tag\",category=\"loan\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"warn\",category=\"investment\"}"),
        1.0
    );
    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"allow\",category=\"none\"}"),
        2.0
    );
    assert!(s.metric("fraudwall_sip_messages_total{direction=\"in\",method=\"BYE\"}") >= 4.0);
    let status = s.http("/status");
    assert!(
        status.contains("\"snapshot\":{") && status.contains("\"healthy\":true"),
        "{status}"
    );
    let log = std::fs::read_to_string(s.path("decisions.jsonl")).unwrap_or_default();
    let blocked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"verdict\":\"block\""))
        .collect();
    assert_eq!(blocked.len(), 1, "{log}");
    assert!(
        blocked[0].contains("\"caller\":\"+8613800000001\"")
            && blocked[0].contains("\"category\":\"impersonation\"")
    );
}

#[test]
fn udp_ipv4_allow_tag_warn_block() {
    check_verdicts("127.0.0.1", "u1", "");
}

#[test]
fn tcp_callers_with_record_route() {
    check_verdicts("127.0.0.1", "t1", "[proxy]\nrecord_route = true\n");
}

#[test]
fn udp_ipv6_loopback() {
    check_verdicts("::1", "u1", "");
}

#[test]
fn cancel_follows_the_invite() {
    let s = Setup::start("127.0.0.1", "");
    let switch = s.switch("uas_cancel.xml", 2);
    s.call("uac_cancel.xml", &[(CLEAN, "allow"), (TAGGED, "tag")], "u1");
    let out = switch.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "switch failed: {}",
        std::fs::read_to_string(s.path("switch_err.log")).unwrap_or_default()
    );
    assert!(s.metric("fraudwall_sip_messages_total{direction=\"in\",method=\"CANCEL\"}") >= 2.0);
}

/// A retransmitted INVITE (same branch) is forwarded again with the same branch; retransmitted
/// INVITEs from a blocked caller are answered 608 again, and never forwarded.
#[test]
fn retransmissions_are_stateless_and_consistent() {
    let s = Setup::start("127.0.0.1", "");
    let switch = UdpSocket::bind(("127.0.0.1", s.switch)).expect("bind switch");
    switch
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let caller = UdpSocket::bind("127.0.0.1:0").unwrap();
    caller
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let me: SocketAddr = caller.local_addr().unwrap();
    let proxy: SocketAddr = format!("127.0.0.1:{}", s.sip).parse().unwrap();
    let invite = |n: &str, call: &str| {
        format!(
            "INVITE sip:svc@127.0.0.1:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-{call}\r\nFrom: <sip:+{n}@x;user=phone>;tag=1\r\nTo: <sip:svc@x>\r\nCall-ID: {call}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
            p = s.sip
        )
    };
    let branch_of = |m: &str| {
        m.lines()
            .find(|l| l.starts_with("Via:"))
            .and_then(|l| l.split("branch=").nth(1))
            .map(|b| b.trim().to_string())
    };
    let mut buf = [0u8; 4096];
    let mut branches = Vec::new();
    for _ in 0..2 {
        caller
            .send_to(invite(CLEAN, "retrans-1").as_bytes(), proxy)
            .unwrap();
        let (n, _) = switch.recv_from(&mut buf).expect("INVITE at the switch");
        branches.push(branch_of(&String::from_utf8_lossy(&buf[..n])));
    }
    assert!(branches[0].is_some());
    assert_eq!(
        branches[0], branches[1],
        "a retransmission must carry the same branch"
    );
    for _ in 0..2 {
        caller
            .send_to(invite(BLOCKED, "retrans-2").as_bytes(), proxy)
            .unwrap();
        let (n, _) = caller.recv_from(&mut buf).expect("608");
        assert!(
            buf[..n].starts_with(b"SIP/2.0 608"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
    }
    switch
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    assert!(
        switch.recv_from(&mut buf).is_err(),
        "the blocked INVITE reached the switch"
    );
    // Garbage is counted, never answered with a crash: the proxy still works afterwards.
    caller.send_to(b"\x00\xffnot sip at all", proxy).unwrap();
    caller
        .send_to(invite(CLEAN, "retrans-3").as_bytes(), proxy)
        .unwrap();
    switch
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    assert!(switch.recv_from(&mut buf).is_ok());
    assert!(s
        .http("/metrics")
        .contains("fraudwall_parse_errors_total{reason="));
}
