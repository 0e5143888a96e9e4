//! The Kamailio integration kit for the HTTP verdict API (`integration/kamailio-api/`): sipp
//! callers -> a real Kamailio (Debian's `kamailio`, `http_client` from
//! `kamailio-utils-modules`, `json` from `kamailio-json-modules`) that asks fraudwall's API
//! for each INVITE -> a sipp switch. The verdicts are checked end to end by
//! `uac_verdict.xml`: the blocked caller is answered 608 with the redress jCard (by Kamailio,
//! from the API's `sip` object), the tagged one rings with `X-Fraud-Label`, the warned one
//! rings at the announcement service (`sip.target`) with `X-Fraud-Original-To`, the clean one
//! rings without a label, and fraudwall's decision log says `front` = `api` for each.
//!
//! Kamailio and sipp are required: without them this test FAILS (`.ci/run` installs them).

mod kamailio_support;
mod sipp_support;

use kamailio_support::start_kamailio;
use sipp_support::{free_port, Options, Setup, BLOCKED, TAGGED, WARNED};

const TOKEN: &str = "kamailio-0123456789abcdef0123456789";

#[test]
fn kamailio_http_client_applies_the_api_verdicts() {
    let tokens = tempfile::tempdir().expect("tempdir");
    let token_file = tokens.path().join("tokens");
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("tokens");
    let api = free_port("127.0.0.1");
    let s = Setup::start_with(
        "127.0.0.1",
        Options {
            extra_args: vec![
                "--api".into(),
                format!("127.0.0.1:{api}"),
                "--api-tokens".into(),
                token_file.display().to_string(),
            ],
            extra_config: "[health]\nprobe_interval = \"0s\"\n",
            ..Options::default()
        },
    );
    let kam_port = free_port("127.0.0.1");
    let kam = start_kamailio(
        s.dir.path(),
        "kamailio-api",
        kam_port,
        &[
            ("API", format!("127.0.0.1:{api}")),
            ("TOKEN", TOKEN.to_string()),
            ("SWITCH", format!("127.0.0.1:{}", s.switch)),
        ],
        &["http_client", "json"],
    );
    s.each_verdict_through(kam_port);
    let log = std::fs::read_to_string(s.dir.path().join("kamailio.log")).unwrap_or_default();
    for v in ["allow", "tag", "warn", "block"] {
        assert!(
            log.lines()
                .any(|l| l.contains("FRAUDWALL-VERDICT") && l.trim_end().ends_with(v)),
            "Kamailio logged no {v} verdict:\n{log}"
        );
    }
    // fraudwall screened each call once, through the API.
    s.assert_decided(
        "api",
        &[(BLOCKED, "block"), (TAGGED, "tag"), (WARNED, "warn")],
    );
    assert!(
        s.metric("fraudwall_api_requests_total{endpoint=\"screen\",status=\"200\"}") >= 3.0,
        "three API answers"
    );
    drop(kam);
}
