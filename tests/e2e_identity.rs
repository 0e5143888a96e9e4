//! End-to-end: identity tricks against the built `fraudwall` binary, between real sipp peers
//! on loopback (issue 9, "Remote-Party-ID is believed from anyone", "Only the first identity
//! is read", "Untrusted PAI is forwarded as is").
//!
//! The callers run integration/sipp/uac_identity.xml, which adds one identity header line
//! per call and fails any call whose answer is not the expected 608 or 400 (a forwarded call
//! would draw the switch's 180/200). The switch is a sipp UAS whose message log proves what
//! reached it.
//!
//! sipp is required: when it is missing these tests FAIL (install the `sip-tester` package).

mod sipp_support;

use sipp_support::{invites_from, messages, Setup, BLOCKED, CLEAN};
use std::time::Duration;

/// One caller row for uac_identity.xml: digits, expected answer and the extra header line
/// (sipp's injection fields are `;`-separated, so the last two travel as one string).
fn row(expected: &str, extra: &str) -> String {
    assert!(!extra.contains(';'), "no ';' in an injected header line");
    format!("{expected};{extra}")
}

/// The decision log once it holds `n` lines (it is flushed every 100 ms), or what it holds
/// after 5 s.
fn decisions(s: &Setup, n: usize) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let log = std::fs::read_to_string(s.path("decisions.jsonl")).unwrap_or_default();
        if log.lines().count() >= n || std::time::Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn untrusted_rpid_and_a_second_from_never_reach_the_switch() {
    let s = Setup::start("127.0.0.1", "");
    let ip = s.ip;
    let switch = s.switch("uas_echo.xml", 1);
    // The path to the switch works: a clean call goes through; its PAI (untrusted) does not.
    s.call("uac_verdict.xml", &[(CLEAN, "allow")], "u1");
    let tricks = [
        // A clean Remote-Party-ID from an untrusted caller does not hide the listed From.
        (
            BLOCKED,
            row("block", &format!("Remote-Party-ID: <sip:+{CLEAN}@{ip}>")),
        ),
        // Nor does a junk one make the call "invalid", hence allowed.
        (
            BLOCKED,
            row("block", &format!("Remote-Party-ID: <sip:alice@{ip}>")),
        ),
        // A second From (full or compact) is refused, never forwarded.
        (
            CLEAN,
            row("refused", &format!("From: <sip:+{BLOCKED}@{ip}>")),
        ),
        (CLEAN, row("refused", &format!("f: <sip:+{BLOCKED}@{ip}>"))),
    ];
    let rows: Vec<(&str, &str)> = tricks.iter().map(|(n, r)| (*n, r.as_str())).collect();
    s.call("uac_identity.xml", &rows, "u1");
    let out = switch.wait(Duration::from_secs(20));
    assert!(
        out.status.success(),
        "switch failed: {}",
        std::fs::read_to_string(s.path("switch_err.log")).unwrap_or_default()
    );

    let at_switch = messages(&s.path("switch_msgs.log"));
    let invites: Vec<&str> = at_switch
        .iter()
        .filter(|(_, m)| m.starts_with("INVITE "))
        .map(|(_, m)| m.as_str())
        .collect();
    assert_eq!(invites.len(), 1, "only the clean call reaches the switch");
    assert!(invites_from(&at_switch, BLOCKED).is_empty());
    assert!(
        !invites[0]
            .to_ascii_lowercase()
            .contains("p-asserted-identity:"),
        "an untrusted PAI was forwarded:\n{}",
        invites[0]
    );

    assert_eq!(
        s.metric("fraudwall_verdicts_total{action=\"block\",category=\"impersonation\"}"),
        2.0
    );
    assert_eq!(
        s.metric("fraudwall_parse_errors_total{reason=\"duplicate_from\"}"),
        2.0
    );
    assert_eq!(
        s.metric("fraudwall_identity_headers_removed_total{header=\"pai\"}"),
        1.0
    );
    let log = decisions(&s, 3);
    let blocked: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("\"verdict\":\"block\""))
        .collect();
    assert_eq!(blocked.len(), 2, "{log}");
    assert!(
        blocked.iter().all(|l| l.contains("\"identity\":\"from\"")),
        "{log}"
    );
}

#[test]
fn a_trusted_peers_listed_second_pai_is_blocked() {
    let s = Setup::start("127.0.0.1", "[proxy]\ntrusted_peers = [\"127.0.0.0/8\"]\n");
    let ip = s.ip;
    let tricks = [
        // The listed number second in one PAI header, and on a second PAI line.
        (
            CLEAN,
            row(
                "block",
                &format!("P-Asserted-Identity: <sip:+{CLEAN}@{ip}>, <tel:+{BLOCKED}>"),
            ),
        ),
        // A junk PAI does not hide a listed From.
        (
            BLOCKED,
            row("block", &format!("P-Asserted-Identity: <sip:alice@{ip}>")),
        ),
    ];
    let rows: Vec<(&str, &str)> = tricks.iter().map(|(n, r)| (*n, r.as_str())).collect();
    s.call("uac_identity.xml", &rows, "u1");
    let log = decisions(&s, 2);
    let identities: Vec<bool> = log
        .lines()
        .map(|l| l.contains("\"verdict\":\"block\""))
        .collect();
    assert_eq!(identities, [true, true], "{log}");
    assert!(log.contains("\"identity\":\"pai\"") && log.contains("\"identity\":\"from\""));
}
