//! End-to-end: the rule chain in the built `fraudwall` binary between real sipp peers on
//! loopback, with two peer groups told apart by source address (sipp's `-i`): `core`
//! (127.0.0.1, trusted) and `intl-gw` (127.0.0.2, trusted, international), and
//! `policy.home_country = ["86"]`. Also `fraudwall explain` on the same configuration.
//!
//! sipp is required: when it is missing these tests FAIL (install the `sip-tester` package).

mod sipp_support;

use sipp_support::{Options, Setup, BLOCKED, CLEAN};
use std::process::Command;
use std::time::{Duration, Instant};

const PEERS: &str = "[[peers]]\nname = \"core\"\naddresses = [\"127.0.0.1\"]\ntrust_identity = true\n\
                     [[peers]]\nname = \"intl-gw\"\naddresses = [\"127.0.0.2\"]\ntrust_identity = true\n\
                     international = true\n\
                     [policy]\nhome_country = [\"86\"]\ninternational_origin = \"tag\"\n";

const CALLEE: &str = "8613900000001";
const MYANMAR: &str = "959123456789";

/// The decision log's lines once it holds `n` (flushed every 100 ms), or what it holds after 5 s.
fn decisions(s: &Setup, n: usize) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(s.path("decisions.jsonl")).unwrap_or_default();
        if log.lines().count() >= n || Instant::now() > deadline {
            return log
                .lines()
                .map(|l| serde_json::from_str(l).expect("a JSON line"))
                .collect();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn row(caller: &str, callee: &str, expected: &str) -> String {
    format!("{caller};{callee};{expected}")
}

#[test]
fn peer_groups_decide_spoofing_and_origin_and_the_log_names_rule_callee_and_group() {
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            extra_config: PEERS,
            ..Options::default()
        },
    );
    let switch = s.switch("uas_echo.xml", 3);
    // From the international gateway: a +86 caller is a spoofed domestic number (blocked,
    // though it is on no list); a Myanmar caller is let through with its origin as label.
    s.call_from(
        "uac_policy.xml",
        &[row(CLEAN, CALLEE, "block"), row(MYANMAR, CALLEE, "tag")],
        "u1",
        "127.0.0.2",
    );
    // From the core: the same +86 caller is clean; a listed one is blocked by the list.
    s.call_from(
        "uac_policy.xml",
        &[row(CLEAN, CALLEE, "allow"), row(BLOCKED, CALLEE, "block")],
        "u1",
        "127.0.0.1",
    );
    // Finishing the switch's calls; the clean call, the tagged one and nothing else rang.
    let _ = switch.wait(Duration::from_secs(20));
    let switch_log = std::fs::read_to_string(s.path("switch_msgs.log")).unwrap_or_default();
    assert!(
        switch_log.contains("\"Intl: Myanmar\""),
        "the origin label reaches the phone as a display name:\n{switch_log}"
    );
    assert!(
        switch_log.contains("category=international"),
        "{switch_log}"
    );

    let lines = decisions(&s, 4);
    let seen: Vec<(String, String, String, String, String)> = lines
        .iter()
        .map(|l| {
            let f = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            (
                f("caller"),
                f("callee"),
                f("peer_group"),
                f("rule"),
                f("verdict"),
            )
        })
        .collect();
    let callee = format!("+{CALLEE}");
    let want = |caller: &str, group: &str, rule: &str, verdict: &str| {
        (
            format!("+{caller}"),
            callee.clone(),
            group.to_string(),
            rule.to_string(),
            verdict.to_string(),
        )
    };
    for w in [
        want(CLEAN, "intl-gw", "international-spoof", "block"),
        want(MYANMAR, "intl-gw", "international-origin", "tag"),
        want(CLEAN, "core", "default", "allow"),
        want(BLOCKED, "core", "global", "block"),
    ] {
        assert!(seen.contains(&w), "{w:?} not in the decision log: {seen:?}");
    }
    let spoof = lines
        .iter()
        .find(|l| l["rule"] == "international-spoof")
        .expect("spoof line");
    assert_eq!(spoof["category"], "spoofed-domestic");
    assert!(
        s.metric("fraudwall_verdict_rules_total{rule=\"international-spoof\",action=\"block\"}")
            >= 1.0
    );
    assert!(s.metric("fraudwall_verstat_total{value=\"absent\"}") >= 4.0);
}

#[test]
fn explain_prints_each_stage_and_the_verdict_as_json() {
    let dir = tempfile::tempdir().expect("tempdir");
    let list = dir.path().join("list.fwb");
    fraudwall::blocklist::compile_csv_text(sipp_support::LIST, &Default::default(), &list)
        .expect("compile");
    let config = dir.path().join("fw.toml");
    std::fs::write(&config, PEERS).expect("config");
    let explain = |caller: &str, peer: &str, json: bool| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_fraudwall"));
        cmd.args(["explain", "--config"])
            .arg(&config)
            .arg("--blocklist")
            .arg(&list)
            .args([
                "--caller",
                caller,
                "--callee",
                "+8613900000001",
                "--peer",
                peer,
            ]);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().expect("run explain");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let v: serde_json::Value =
        serde_json::from_str(&explain("+8613800000001", "127.0.0.2", true)).expect("json");
    assert_eq!(v["action"], "block");
    assert_eq!(v["rule"], "international-spoof");
    assert_eq!(v["category"], "spoofed-domestic");
    assert_eq!(v["peer_group"], "intl-gw");
    let stages: Vec<(String, String)> = v["stages"]
        .as_array()
        .expect("stages")
        .iter()
        .map(|s| {
            (
                s["rule"].as_str().unwrap_or_default().to_string(),
                s["outcome"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("protected-callee", "passed"),
            ("impersonation", "passed"),
            ("international-spoof", "decided")
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    // From the core, the list decides; the text form names each stage.
    let text = explain("+8613800000001", "127.0.0.1", false);
    assert!(text.contains("group core, trusted"), "{text}");
    assert!(text.contains("global"), "{text}");
    assert!(
        text.contains("verdict  block (rule global, reason listed"),
        "{text}"
    );
}
