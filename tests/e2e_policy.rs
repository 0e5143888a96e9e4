//! End-to-end: the rule chain in the built `fraudwall` binary between real sipp peers on
//! loopback, with two peer groups told apart by source address (sipp's `-i`): `core`
//! (127.0.0.1, trusted) and `intl-gw` (127.0.0.2, trusted, international), and
//! `policy.home_country = ["86"]`. Also `fraudwall explain` on the same configuration, and
//! the subscriber and protected lists compiled by `fraudwall compile --kind ...` and loaded
//! by `fraudwall run --subscribers --protected` (with a third group, `partner`, 127.0.0.3).
//!
//! sipp is required: when it is missing these tests FAIL (install the `sip-tester` package).

mod sipp_support;

use sipp_support::{messages, Options, Setup, BLOCKED, CLEAN, TAGGED};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const PEERS: &str = "[health]\nprobe_interval = \"0s\"\n[[peers]]\nname = \"core\"\naddresses = [\"127.0.0.1\"]\ntrust_identity = true\n\
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
    // Two calls ring: the tagged one from the gateway and the clean one from the core
    // (health probes are off, so no OPTIONS counts as a call).
    let switch = s.switch("uas_echo.xml", 2);
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

/// [`PEERS`] and a third group: `partner` (127.0.0.3), trusted, not international. No
/// health probes: the switch (a sipp UAS) would take an OPTIONS for one of its `-m` calls.
const LIST_PEERS: &str = "[health]\nprobe_interval = \"0s\"\n\
                          [[peers]]\nname = \"core\"\naddresses = [\"127.0.0.1\"]\ntrust_identity = true\n\
                          [[peers]]\nname = \"intl-gw\"\naddresses = [\"127.0.0.2\"]\ntrust_identity = true\n\
                          international = true\n\
                          [[peers]]\nname = \"partner\"\naddresses = [\"127.0.0.3\"]\ntrust_identity = true\n\
                          [policy]\nhome_country = [\"86\"]\ninternational_origin = \"tag\"\n";

/// Subscribers of the list tests, one callee per choice.
const SUB_PERSONAL_BLOCK: &str = "8613900000011";
const SUB_PERSONAL_ALLOW: &str = "8613900000012";
const SUB_LEVEL_ALLOW: &str = "8613900000013";
const SUB_LEVEL_TAG: &str = "8613900000014";
const SUB_LEVEL_BLOCK: &str = "8613900000015";
/// A subscriber with no entry and no level.
const SUB_NONE: &str = "8613900000019";

/// In the range `+86170*` that [`SUB_PERSONAL_BLOCK`] blocks.
const RANGE_CALLER: &str = "8617012345678";
/// A bank's service line: only `core` may present it.
const BANK: &str = "8695588";
/// The police: no group may present it.
const POLICE: &str = "86110";

const SUBSCRIBERS_CSV: &str = "subscriber,caller,action
+8613900000011,+8613800000009,block
+8613900000011,+86170*,block
+8613900000012,+8613800000001,allow
+8613900000012,+8695588,allow
+8613900000013,*,allow
+8613900000014,*,tag
+8613900000015,*,block
";

const PROTECTED_CSV: &str = "number,entitled,category
+8695588,core,bank-impersonation
+86110,,
";

/// Compiles `csv` with the built binary (`fraudwall compile --kind <kind>`), refusing any
/// rejected row, into `<dir>/<name>.fwb`.
fn compile_with_cli(dir: &Path, kind: &str, name: &str, csv: &str) -> PathBuf {
    let src = dir.join(format!("{name}.csv"));
    std::fs::write(&src, csv).expect("write list csv");
    let out = dir.join(format!("{name}.fwb"));
    let run = Command::new(env!("CARGO_BIN_EXE_fraudwall"))
        .args([
            "compile",
            "--quiet",
            "--max-errors",
            "0",
            "--kind",
            kind,
            "--output",
        ])
        .arg(&out)
        .arg(&src)
        .output()
        .expect("run fraudwall compile");
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        run.status.success() && !stderr.contains("rejected"),
        "compile --kind {kind} failed ({:?}):\n{stderr}",
        run.status
    );
    assert!(
        out.is_file(),
        "compile --kind {kind} wrote no {}",
        out.display()
    );
    out
}

/// A node running [`LIST_PEERS`] with the subscriber and protected lists compiled by the
/// CLI; the returned directory holds the lists and must outlive the node.
fn lists_node() -> (tempfile::TempDir, Setup) {
    lists_node_with("")
}

/// [`lists_node`] with `extra` TOML added to its config.
fn lists_node_with(extra: &str) -> (tempfile::TempDir, Setup) {
    let lists = tempfile::tempdir().expect("tempdir");
    let subs = compile_with_cli(lists.path(), "subscribers", "subscribers", SUBSCRIBERS_CSV);
    let prot = compile_with_cli(lists.path(), "protected", "protected", PROTECTED_CSV);
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            extra_config: &format!("{LIST_PEERS}{extra}"),
            extra_args: vec![
                "--subscribers".into(),
                subs.display().to_string(),
                "--protected".into(),
                prot.display().to_string(),
            ],
            ..Options::default()
        },
    );
    (lists, s)
}

/// One call of a list test: who calls whom from which group, and what must come of it.
#[derive(Debug)]
struct Case {
    caller: &'static str,
    callee: &'static str,
    /// `core`, `intl-gw` or `partner`.
    group: &'static str,
    /// allow | tag | block: what sipp must see and the decision log's `verdict`.
    verdict: &'static str,
    /// The decision log's `rule`.
    rule: &'static str,
    /// The decision log's `category` ("" for none).
    category: &'static str,
}

fn source_of(group: &str) -> &'static str {
    match group {
        "core" => "127.0.0.1",
        "intl-gw" => "127.0.0.2",
        "partner" => "127.0.0.3",
        other => panic!("no source address for group {other}"),
    }
}

/// Places every case through sipp (`uac_policy.xml` fails a call whose verdict differs),
/// group by group, against a switch expecting the calls that are not blocked; then checks
/// that the switch saw exactly those (a tag with its `X-Fraud-Label`, an allow without) and
/// that the decision log holds, for each case, only lines with its rule, verdict and
/// category, and no line for a call not in `cases`.
fn run_cases(s: &Setup, cases: &[Case]) {
    let rang = cases.iter().filter(|c| c.verdict != "block").count();
    let switch = s.switch("uas_echo.xml", rang);
    for group in ["core", "intl-gw", "partner"] {
        let rows: Vec<String> = cases
            .iter()
            .filter(|c| c.group == group)
            .map(|c| row(c.caller, c.callee, c.verdict))
            .collect();
        if !rows.is_empty() {
            s.call_from("uac_policy.xml", &rows, "u1", source_of(group));
        }
    }
    let out = switch.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "the switch did not take its {rang} calls: {}",
        std::fs::read_to_string(s.path("switch_err.log")).unwrap_or_default()
    );

    // What reached the switch: INVITEs by (caller, callee, group), the group read from the
    // caller's own Via (the last one; fraudwall adds its own on top).
    let msgs = messages(&s.path("switch_msgs.log"));
    let invites: Vec<&str> = msgs
        .iter()
        .filter(|(_, m)| m.starts_with("INVITE "))
        .map(|(_, m)| m.as_str())
        .collect();
    for c in cases {
        let to_callee = format!("INVITE sip:+{}@", c.callee);
        let from_caller = format!("+{}@", c.caller);
        let via_source = format!(" {}:", source_of(c.group));
        let seen: Vec<&str> = invites
            .iter()
            .copied()
            .filter(|m| {
                m.starts_with(&to_callee)
                    && m.lines()
                        .any(|l| l.starts_with("From:") && l.contains(&from_caller))
                    && m.lines()
                        .rfind(|l| l.starts_with("Via:"))
                        .is_some_and(|l| l.contains(&via_source))
            })
            .collect();
        let label = |m: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix("X-Fraud-Label:"))
                .map(str::trim)
                .map(String::from)
        };
        match c.verdict {
            "block" => assert!(seen.is_empty(), "{c:?} reached the switch: {seen:?}"),
            "allow" => {
                assert!(!seen.is_empty(), "{c:?} did not reach the switch");
                for m in &seen {
                    assert_eq!(label(m), None, "{c:?} rang with a label:\n{m}");
                }
            }
            _ => {
                assert!(!seen.is_empty(), "{c:?} did not reach the switch");
                let want = format!("suspected-fraud;category={}", c.category);
                for m in &seen {
                    let l = label(m).unwrap_or_default();
                    assert!(
                        l.starts_with(&want),
                        "{c:?}: label {l:?}, want {want}:\n{m}"
                    );
                }
            }
        }
    }

    // The decision log: one line per call (more only if an INVITE was retransmitted).
    let lines = decisions(s, cases.len());
    let field = |l: &serde_json::Value, k: &str| l[k].as_str().unwrap_or_default().to_string();
    for l in &lines {
        assert!(
            cases
                .iter()
                .any(|c| field(l, "caller") == format!("+{}", c.caller)
                    && field(l, "callee") == format!("+{}", c.callee)
                    && field(l, "peer_group") == c.group),
            "a decision for a call not placed: {l}"
        );
    }
    for c in cases {
        let mine: Vec<&serde_json::Value> = lines
            .iter()
            .filter(|l| {
                field(l, "caller") == format!("+{}", c.caller)
                    && field(l, "callee") == format!("+{}", c.callee)
                    && field(l, "peer_group") == c.group
            })
            .collect();
        assert!(!mine.is_empty(), "no decision for {c:?}: {lines:?}");
        for l in mine {
            assert_eq!(
                (field(l, "rule"), field(l, "verdict"), field(l, "category")),
                (
                    c.rule.to_string(),
                    c.verdict.to_string(),
                    c.category.to_string()
                ),
                "{c:?}: {l}"
            );
        }
    }
}

/// The decision for `caller` → `callee` in the log (the first line).
fn decision_for(s: &Setup, caller: &str, callee: &str) -> serde_json::Value {
    let (caller, callee) = (format!("+{caller}"), format!("+{callee}"));
    decisions(s, 0)
        .into_iter()
        .find(|l| l["caller"] == caller.as_str() && l["callee"] == callee.as_str())
        .unwrap_or_else(|| panic!("no decision for {caller} -> {callee}"))
}

#[test]
fn subscriber_lists_compiled_by_the_cli_decide_personal_entries_and_levels() {
    let (_lists, s) = lists_node();
    let case = |caller, callee, verdict, rule, category| Case {
        caller,
        callee,
        group: "core",
        verdict,
        rule,
        category,
    };
    let cases = [
        // Personal block of an unlisted caller, exact and by range; a listed caller the
        // subscriber has no entry for is still the global list's.
        case(CLEAN, SUB_PERSONAL_BLOCK, "block", "personal", "personal"),
        case(
            RANGE_CALLER,
            SUB_PERSONAL_BLOCK,
            "block",
            "personal",
            "personal",
        ),
        case(
            BLOCKED,
            SUB_PERSONAL_BLOCK,
            "block",
            "global",
            "impersonation",
        ),
        // Personal allow over the global list's block.
        case(BLOCKED, SUB_PERSONAL_ALLOW, "allow", "personal", ""),
        // The same callers to a subscriber with no entries: the global list, or nothing.
        case(BLOCKED, SUB_NONE, "block", "global", "impersonation"),
        case(CLEAN, SUB_NONE, "allow", "default", ""),
        case(TAGGED, SUB_NONE, "tag", "global", "loan"),
        // Level allow (opted out): a tagged and even a blocked caller ring, unlabelled.
        case(TAGGED, SUB_LEVEL_ALLOW, "allow", "global", "loan"),
        case(BLOCKED, SUB_LEVEL_ALLOW, "allow", "global", "impersonation"),
        // Level tag: a blocked caller rings, labelled.
        case(BLOCKED, SUB_LEVEL_TAG, "tag", "global", "impersonation"),
        case(TAGGED, SUB_LEVEL_TAG, "tag", "global", "loan"),
        // Level block: a tagged caller is blocked; an unlisted one still rings.
        case(TAGGED, SUB_LEVEL_BLOCK, "block", "global", "loan"),
        case(CLEAN, SUB_LEVEL_BLOCK, "allow", "default", ""),
    ];
    run_cases(&s, &cases);

    // The entry that decided is named.
    assert_eq!(
        decision_for(&s, RANGE_CALLER, SUB_PERSONAL_BLOCK)["matched"],
        "+86170*"
    );
    assert_eq!(
        decision_for(&s, BLOCKED, SUB_PERSONAL_ALLOW)["matched"],
        format!("+{BLOCKED}").as_str()
    );
    assert_eq!(
        decision_for(&s, TAGGED, SUB_LEVEL_BLOCK)["matched"],
        format!("+{TAGGED}").as_str()
    );
    let metric = |rule: &str, action: &str| {
        s.metric(&format!(
            "fraudwall_verdict_rules_total{{rule=\"{rule}\",action=\"{action}\"}}"
        ))
    };
    assert!(metric("personal", "block") >= 2.0, "personal block");
    assert!(metric("personal", "allow") >= 1.0, "personal allow");
    assert!(
        metric("global", "allow") >= 2.0,
        "global allow (level allow)"
    );
    assert!(metric("global", "tag") >= 3.0, "global tag");
    assert!(metric("global", "block") >= 3.0, "global block");
    assert!(metric("default", "allow") >= 2.0, "default allow");
    assert_eq!(
        metric("impersonation", "block"),
        0.0,
        "no impersonation here"
    );
}

#[test]
fn protected_list_compiled_by_the_cli_blocks_impersonation_by_groups_not_entitled() {
    let (_lists, s) = lists_node();
    let case = |caller, callee, group, verdict, rule, category| Case {
        caller,
        callee,
        group,
        verdict,
        rule,
        category,
    };
    let cases = [
        // The bank's line from a domestic partner not entitled to it: impersonation, even to
        // a subscriber who allows that number personally (the stage comes first).
        case(
            BANK,
            SUB_NONE,
            "partner",
            "block",
            "impersonation",
            "bank-impersonation",
        ),
        case(
            BANK,
            SUB_PERSONAL_ALLOW,
            "partner",
            "block",
            "impersonation",
            "bank-impersonation",
        ),
        // From the international gateway: impersonation before international-spoof.
        case(
            BANK,
            SUB_NONE,
            "intl-gw",
            "block",
            "impersonation",
            "bank-impersonation",
        ),
        // From the entitled group: not impersonation, nothing else says anything.
        case(BANK, SUB_NONE, "core", "allow", "default", ""),
        // Nobody is entitled to present the police; the empty category reads impersonation.
        case(
            POLICE,
            SUB_NONE,
            "core",
            "block",
            "impersonation",
            "impersonation",
        ),
        // An unprotected number from the partner group is not touched.
        case(CLEAN, SUB_NONE, "partner", "allow", "default", ""),
    ];
    run_cases(&s, &cases);
    assert_eq!(
        decision_for(&s, POLICE, SUB_NONE)["matched"],
        format!("+{POLICE}").as_str()
    );
    let metric = |rule: &str, action: &str| {
        s.metric(&format!(
            "fraudwall_verdict_rules_total{{rule=\"{rule}\",action=\"{action}\"}}"
        ))
    };
    assert!(
        metric("impersonation", "block") >= 4.0,
        "impersonation block"
    );
    assert!(metric("default", "allow") >= 2.0, "default allow");
    assert_eq!(metric("international-spoof", "block"), 0.0);
    assert_eq!(metric("personal", "allow"), 0.0);
}

/// The `rule` of the last decision for `caller` → `callee` once the log holds `n` lines.
fn last_rule(s: &Setup, n: usize, caller: &str, callee: &str) -> String {
    let (caller, callee) = (format!("+{caller}"), format!("+{callee}"));
    decisions(s, n)
        .into_iter()
        .rev()
        .find(|l| l["caller"] == caller.as_str() && l["callee"] == callee.as_str())
        .and_then(|l| l["rule"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no decision for {caller} -> {callee}"))
}

#[test]
fn sighup_rereads_a_replaced_subscriber_list_without_a_reload_interval() {
    // No interval: the file is never polled, only SIGHUP (or POST /reload) re-reads it.
    let (lists, s) = lists_node_with("[blocklist]\nreload_interval = \"0s\"\n");
    let call = || {
        let out = s.call_from(
            "uac_policy.xml",
            &[row(BLOCKED, SUB_NONE, "block")],
            "u1",
            "127.0.0.1",
        );
        assert!(out.status.success(), "the call was not blocked");
    };
    call();
    assert_eq!(last_rule(&s, 1, BLOCKED, SUB_NONE), "global");

    // A new version, published by rename, in which the subscriber blocks the caller too.
    let csv = format!("{SUBSCRIBERS_CSV}+{SUB_NONE},+{BLOCKED},block\n");
    let next = compile_with_cli(lists.path(), "subscribers", "next", &csv);
    std::fs::rename(&next, lists.path().join("subscribers.fwb")).expect("publish by rename");
    std::thread::sleep(Duration::from_millis(300));
    call();
    assert_eq!(
        last_rule(&s, 2, BLOCKED, SUB_NONE),
        "global",
        "no interval, no SIGHUP: the loaded list still answers"
    );

    let pid = s.fw.0.as_ref().expect("fraudwall child").id();
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(hup.success());
    let sent = Instant::now();
    let mut n = 2;
    loop {
        call();
        n += 1;
        if last_rule(&s, n, BLOCKED, SUB_NONE) == "personal" {
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(10),
            "the replaced list was not swapped in within 10 s of SIGHUP"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("swapped in {:?} after SIGHUP", sent.elapsed());
}
