//! End-to-end: behavioural detection in the built `fraudwall` binary between real sipp peers
//! on loopback, with `[detection] enabled = true` and defaults otherwise (detection
//! record-routes INVITEs itself, so fraudwall sees each call's BYE).
//!
//! * a caller dialling 100 distinct callees in 60 s with 3-second calls is tagged
//!   (`X-Fraud-Label` at the switch) before its 60th call, its decision-log lines say `rule`
//!   = `behaviour`, it is in `/suspects`, and `fraudwall suspects --csv` prints it as a
//!   blocklist row that `fraudwall compile` accepts;
//! * a caller making 5 calls a minute to one callee is never flagged (6 calls, a minute
//!   and a bit of real time here; the ten-minute version runs on stepped time in
//!   `tests/proxy_core_detection.rs`);
//! * two nodes sharing a real `redis-server` (started here on a free loopback port), the
//!   same campaign split between them: flagged as early as on one node.
//!
//! sipp and redis-server are required: when either is missing these tests FAIL (install the
//! `sip-tester` and `redis-server` packages).

mod sipp_support;

use sipp_support::{free_port, messages, sipp, sipp_dir, Guard, Options, Setup};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `[detection] enabled = true` and defaults otherwise (health probes off only so that no
/// OPTIONS reaches the sipp switch; `proxy.record_route` stays off: detection record-routes
/// INVITEs itself).
const DETECTION: &str = "[health]\nprobe_interval = \"0s\"\n[detection]\nenabled = true\n";

const ROBOCALLER: &str = "8617000000001";

/// A sipp UAS on the node's switch port answering `calls` calls (180, 200, BYE).
fn switch(s: &Setup, calls: usize, log: &str) -> Guard {
    let sf = sipp_dir().join("uas_echo.xml");
    let g = sipp(
        &[
            "-sf",
            sf.to_str().unwrap(),
            "-i",
            s.ip,
            "-p",
            &s.switch.to_string(),
            "-m",
            &calls.to_string(),
            "-nostdin",
            "-timeout",
            "150s",
            "-trace_msg",
            "-message_file",
            s.path(log).to_str().unwrap(),
        ],
        s.dir.path(),
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::UdpSocket::bind((s.ip, s.switch)).is_ok() {
        assert!(Instant::now() < deadline, "sipp UAS did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    g
}

/// Places `rows` (`caller;callee` digits) through the node at `per_minute` calls a minute,
/// with `uac_campaign.xml` (3-second calls, BYE along the route set).
fn campaign(s: &Setup, rows: &[(String, String)], per_minute: u32, name: &str) -> Guard {
    let csv = s.path(&format!("{name}.csv"));
    let mut text = String::from("SEQUENTIAL\n");
    for (a, b) in rows {
        text.push_str(&format!("{a};{b}\n"));
    }
    std::fs::write(&csv, text).unwrap();
    let sf = sipp_dir().join("uac_campaign.xml");
    let target = format!("{}:{}", s.ip, s.sip);
    sipp(
        &[
            &target,
            "-sf",
            sf.to_str().unwrap(),
            "-inf",
            csv.to_str().unwrap(),
            "-i",
            s.ip,
            "-p",
            &free_port(s.ip).to_string(),
            "-m",
            &rows.len().to_string(),
            "-r",
            &per_minute.to_string(),
            "-rp",
            "60000",
            "-l",
            "30",
            "-nostdin",
            "-timeout",
            "150s",
            "-trace_err",
            "-error_file",
            s.path(&format!("{name}_err.log")).to_str().unwrap(),
        ],
        s.dir.path(),
    )
}

/// Waits for sipp to finish and checks it placed every call.
fn finish(g: Guard, s: &Setup, name: &str) {
    let out = g.wait(Duration::from_secs(180));
    assert!(
        out.status.success(),
        "sipp {name} failed ({:?}): {}\n{}",
        out.status,
        std::fs::read_to_string(s.path(&format!("{name}_err.log"))).unwrap_or_default(),
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// 100 distinct callees (not sequential: 7919 apart).
fn robocall_rows(caller: &str) -> Vec<(String, String)> {
    (0..100u64)
        .map(|i| {
            (
                caller.to_string(),
                format!("86139{:08}", 10_000_000 + i * 7919),
            )
        })
        .collect()
}

/// The node's decision-log lines for `caller`, in order, once there are `n`.
fn lines_of(s: &Setup, caller: &str, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let all = s.decisions(0);
        let mine: Vec<_> = all
            .into_iter()
            .filter(|l| l["caller"] == format!("+{caller}"))
            .collect();
        if mine.len() >= n || Instant::now() > deadline {
            return mine;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn fraudwall(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_fraudwall"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run fraudwall")
}

#[test]
fn a_robocaller_is_tagged_before_its_60th_call_listed_in_suspects_and_exported_as_a_list_row() {
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            extra_config: DETECTION,
            ..Options::default()
        },
    );
    let uas = switch(&s, 100, "switch_msgs.log");
    let uac = campaign(&s, &robocall_rows(ROBOCALLER), 100, "robocall");
    finish(uac, &s, "robocall");
    let _ = uas.wait(Duration::from_secs(30));

    // The switch: the INVITEs that reached it, in order; the first labelled one.
    let invites: Vec<String> = messages(&s.path("switch_msgs.log"))
        .into_iter()
        .filter(|(_, m)| m.starts_with("INVITE "))
        .map(|(_, m)| m)
        .collect();
    assert_eq!(invites.len(), 100, "no call was blocked: tagged at most");
    let first = invites
        .iter()
        .position(|m| m.contains("X-Fraud-Label: suspected-fraud;category=robocall"))
        .expect("the robocaller was tagged");
    assert!(first < 59, "tagged first at call {}", first + 1);
    eprintln!("robocaller tagged from call {}", first + 1);

    // The decision log: rule = behaviour from then on.
    let lines = lines_of(&s, ROBOCALLER, 100);
    assert_eq!(lines.len(), 100);
    let flagged: Vec<_> = lines.iter().filter(|l| l["rule"] == "behaviour").collect();
    assert!(flagged.len() >= 100 - 59, "{} flagged", flagged.len());
    for l in &flagged {
        assert_eq!(l["verdict"], "tag", "{l}");
        assert_eq!(l["reason"], "behaviour", "{l}");
        assert_eq!(l["category"], "robocall", "{l}");
        assert_eq!(l["matched"], "robocall", "{l}");
    }

    // /suspects.
    let r = s.http("/suspects");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    let body = r.split("\r\n\r\n").nth(1).unwrap_or_default();
    let doc: serde_json::Value = serde_json::from_str(body).expect("JSON");
    let sus = doc["suspects"].as_array().expect("a list");
    assert_eq!(sus.len(), 1, "{doc}");
    assert_eq!(sus[0]["number"], format!("+{ROBOCALLER}"));
    // The most severe rule that held: the tag, or the block once the 100th call was
    // counted (the ladder; the verdicts above were judged on the calls before each).
    let rule = sus[0]["rule"].as_str().unwrap().to_string();
    assert!(rule == "robocall" || rule == "robocall-block", "{doc}");
    assert_eq!(sus[0]["category"], "robocall");
    assert!(
        sus[0]["features"]["calls_hour"].as_u64().unwrap() >= 99,
        "{doc}"
    );
    assert!(
        sus[0]["features"]["short_call_ratio"].as_f64().unwrap() > 0.7,
        "{doc}"
    );
    assert!(sus[0]["first_seen"].as_str().unwrap().ends_with('Z'));
    assert!(sus[0]["last_seen"].as_str().unwrap() >= sus[0]["first_seen"].as_str().unwrap());

    // fraudwall suspects --csv, compiled as a blocklist.
    let admin = format!("127.0.0.1:{}", s.admin);
    let out = fraudwall(&["suspects", "--admin", &admin, "--csv"], s.dir.path());
    assert!(out.status.success(), "{out:?}");
    let csv = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        csv,
        format!(
            "number,action,category,score,source\n+{ROBOCALLER},{},robocall,{},behaviour\n",
            sus[0]["action"].as_str().unwrap(),
            sus[0]["score"]
        )
    );
    std::fs::write(s.path("suspects.csv"), &csv).unwrap();
    let out = fraudwall(
        &["compile", "suspects.csv", "-o", "suspects.fwb"],
        s.dir.path(),
    );
    assert!(out.status.success(), "{out:?}");
    let out = fraudwall(
        &["lookup", "suspects.fwb", &format!("+{ROBOCALLER}")],
        s.dir.path(),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("robocall"),
        "{out:?}"
    );

    // Metrics.
    assert_eq!(
        s.metric("fraudwall_detection_events_total{kind=\"invite\"}"),
        100.0
    );
    assert!(s.metric("fraudwall_detection_events_total{kind=\"bye\"}") >= 99.0);
    assert!(s.metric("fraudwall_detection_events_total{kind=\"answered\"}") >= 99.0);
    assert_eq!(
        s.metric("fraudwall_detection_findings_total{rule=\"robocall\"}"),
        flagged.len() as f64
    );
    assert!(s.metric("fraudwall_detection_memory_bytes") > 100e6);
}

#[test]
fn a_caller_redialling_one_number_five_times_a_minute_is_never_flagged() {
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            extra_config: DETECTION,
            ..Options::default()
        },
    );
    let caller = "8613912345678";
    let rows: Vec<(String, String)> = (0..6)
        .map(|_| (caller.to_string(), "8613987654321".to_string()))
        .collect();
    let uas = switch(&s, rows.len(), "switch_msgs.log");
    let uac = campaign(&s, &rows, 5, "redial");
    finish(uac, &s, "redial");
    let _ = uas.wait(Duration::from_secs(30));
    let lines = lines_of(&s, caller, rows.len());
    assert_eq!(lines.len(), rows.len());
    for l in &lines {
        assert_eq!(
            (l["rule"].as_str(), l["verdict"].as_str()),
            (Some("default"), Some("allow")),
            "{l}"
        );
    }
    let r = s.http("/suspects");
    assert!(r.contains("\"suspects\":[]"), "{r}");
}

/// A redis-server on a free loopback port, with no persistence; killed on drop.
fn redis_server(dir: &Path) -> (Guard, u16) {
    let port = free_port("127.0.0.1");
    let child = Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            dir.to_str().unwrap(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run redis-server ({e}): this test needs it (Debian package redis-server)"
            )
        });
    let g = Guard(Some(child));
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (g, port)
}

#[test]
fn two_nodes_sharing_redis_flag_a_split_campaign_as_early_as_one_node() {
    let dir = tempfile::tempdir().unwrap();
    let (_redis, port) = redis_server(dir.path());
    let config = format!("{DETECTION}redis = \"redis://127.0.0.1:{port}\"\n");
    let start = || {
        Setup::start_with(
            "127.0.0.1",
            Options {
                extra_config: &config,
                ..Options::default()
            },
        )
    };
    let (a, b) = (start(), start());
    // The load balancer: every other call to each node, 50 calls a minute each.
    let rows = robocall_rows(ROBOCALLER);
    let (even, odd): (Vec<_>, Vec<_>) = rows.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
    let half =
        |v: Vec<(usize, (String, String))>| v.into_iter().map(|(_, r)| r).collect::<Vec<_>>();
    let (even, odd) = (half(even), half(odd));
    let (ua, ub) = (
        switch(&a, 50, "switch_msgs.log"),
        switch(&b, 50, "switch_msgs.log"),
    );
    let ca = campaign(&a, &even, 50, "half");
    std::thread::sleep(Duration::from_millis(600));
    let cb = campaign(&b, &odd, 50, "half");
    finish(ca, &a, "half");
    finish(cb, &b, "half");
    let _ = (
        ua.wait(Duration::from_secs(30)),
        ub.wait(Duration::from_secs(30)),
    );

    // Both nodes' decisions, in time order: the campaign's calls as the carrier saw them.
    let mut all: Vec<serde_json::Value> = lines_of(&a, ROBOCALLER, 50);
    all.extend(lines_of(&b, ROBOCALLER, 50));
    assert_eq!(all.len(), 100);
    all.sort_by(|x, y| x["time"].as_str().cmp(&y["time"].as_str()));
    let first = all
        .iter()
        .position(|l| l["rule"] == "behaviour")
        .expect("the split campaign was flagged");
    eprintln!("split campaign flagged from call {} of 100", first + 1);
    // One node alone sees every other call: with local counts only it would reach the
    // robocall rule's 17 calls in 10 minutes no earlier than the campaign's 34th call.
    // Shared counters flag it as early as one node seeing everything (before the 60th,
    // and well before the 34th).
    assert!(first < 30, "flagged first at call {}", first + 1);
    for n in [&a, &b] {
        assert!(
            lines_of(n, ROBOCALLER, 50)
                .iter()
                .any(|l| l["rule"] == "behaviour"),
            "each node flags it"
        );
        assert!(n.metric("fraudwall_detection_redis_total{outcome=\"ok\"}") > 0.0);
        assert!(n.metric("fraudwall_detection_redis_deltas_total{direction=\"merged\"}") > 0.0);
        assert!(n.metric("fraudwall_detection_redis_deltas_total{direction=\"pushed\"}") > 0.0);
        assert_eq!(
            n.metric("fraudwall_detection_redis_total{outcome=\"garbage\"}"),
            0.0
        );
    }
}
