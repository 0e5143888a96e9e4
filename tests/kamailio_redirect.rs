//! The Kamailio kit for redirect mode (`integration/kamailio-redirect/`): sipp callers -> a
//! real Kamailio (tm, tmx) that sends each INVITE to `fraudwall run --mode
//! redirect`, follows its 302 to a sipp switch with the `X-Fraud-Label` it carries, and
//! relays its 608 to the caller. Checked end to end by `uac_verdict.xml` (the clean caller
//! rings without a label, the tagged one with it, the blocked one gets 608 with the redress
//! jCard, the warned one rings at the announcement service the 302 names, with
//! `X-Fraud-Original-To`) and by fraudwall's decision log (`front` = `redirect`).
//!
//! Kamailio and sipp are required: without them this test FAILS (`.ci/run` installs them).

mod kamailio_support;
mod sipp_support;

use kamailio_support::start_kamailio;
use sipp_support::{free_port, Options, Setup, BLOCKED, TAGGED, WARNED};

#[test]
fn kamailio_follows_the_redirect_verdicts() {
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            extra_args: vec!["--mode".into(), "redirect".into()],
            next_hop: false,
            ..Options::default()
        },
    );
    let kam_port = free_port("127.0.0.1");
    let kam = start_kamailio(
        s.dir.path(),
        "kamailio-redirect",
        kam_port,
        &[
            ("FRAUDWALL", format!("127.0.0.1:{}", s.sip)),
            ("SWITCH", format!("127.0.0.1:{}", s.switch)),
        ],
        &["tm", "tmx"],
    );
    s.each_verdict_through(kam_port);
    let log = std::fs::read_to_string(s.dir.path().join("kamailio.log")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("FRAUDWALL-REDIRECT") && l.contains("label=suspected-fraud")),
        "the tagged call's 302 label reached Kamailio:\n{log}"
    );
    s.assert_decided(
        "redirect",
        &[(BLOCKED, "block"), (TAGGED, "tag"), (WARNED, "warn")],
    );
    drop(kam);
}
