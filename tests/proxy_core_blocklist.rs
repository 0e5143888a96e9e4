//! The proxy core over a real compiled blocklist snapshot (the rule chain, `Policy`): the
//! acceptance rows of the issue, fail open without a snapshot, and a hot swap.

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use fraudwall::blocklist::{compile_csv_text, Action, CompileOptions, Snapshot};
use fraudwall::numbers::Caller;
use fraudwall::peers::PeerGroup;
use fraudwall::policy::{CallContext, CallerActions, Policy, Reason, Screen};
use fraudwall::proxy::core::{CoreConfig, Disposition, ProxyCore};
use fraudwall::proxy::{Inbound, Outbound, Transport};
use fraudwall::sip::{Limits, SipMessage};
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

const CSV: &str = "number,action,category,score,source\n\
                   +8613800000001,block,impersonation,95,police\n\
                   +8613800000002,tag,loan,70,reports\n\
                   +8617012*,warn,investment,60,reports\n\
                   +8617012000009,allow,,0,whitelist\n";

fn compile(dir: &Path, name: &str, csv: &str, version: u64) -> Arc<Snapshot> {
    let path = dir.join(name);
    let opts = CompileOptions {
        version: Some(version),
        ..CompileOptions::default()
    };
    compile_csv_text(csv, &opts, &path).unwrap();
    Arc::new(Snapshot::open(&path).unwrap())
}

fn invite(caller: &str) -> Bytes {
    Bytes::from(format!(
        "INVITE sip:+15550001@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-{caller}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{caller}@192.0.2.1>;tag=f\r\n\
         To: <sip:+15550001@127.0.0.1>\r\n\
         Call-ID: {caller}@192.0.2.1\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn call(core: &ProxyCore, caller: &str) -> (fraudwall::proxy::Outcome, Vec<Outbound>) {
    let mut out = Vec::new();
    let o = core.handle(
        Inbound {
            data: invite(caller),
            source: "192.0.2.1:5060".parse().unwrap(),
            local: "127.0.0.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            verified_peer: false,
            queued: None,
        },
        Instant::now(),
        &mut out,
    );
    (o, out)
}

fn parse(o: &Outbound) -> SipMessage {
    SipMessage::parse(o.data.clone(), &Limits::default()).unwrap()
}

#[test]
fn acceptance_rows_block_tag_and_allow_through_a_real_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let slot = Arc::new(ArcSwapOption::from(Some(compile(
        dir.path(),
        "a.fwb",
        CSV,
        7,
    ))));
    let screen = Arc::new(Policy::over(slot, CallerActions::default()));
    let core = ProxyCore::new(CoreConfig::default(), screen).unwrap();

    let (o, out) = call(&core, "+8613800000001");
    assert_eq!(o.disposition, Disposition::Answered(608));
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].destination, "192.0.2.1:5060".parse().unwrap());
    assert_eq!(parse(&out[0]).status(), Some(608));
    let d = o.decision.unwrap();
    assert_eq!(d.verdict.reason, Reason::Listed);
    assert_eq!(d.verdict.category.as_deref(), Some("impersonation"));
    assert_eq!(d.verdict.source.as_deref(), Some("police"));
    assert_eq!(d.verdict.entry.as_deref(), Some("+8613800000001"));
    assert_eq!(d.verdict.snapshot_version, Some(7));

    let (o, out) = call(&core, "+8613800000002");
    assert_eq!(o.disposition, Disposition::Forwarded);
    assert_eq!(out[0].destination, "127.0.0.1:5080".parse().unwrap());
    let m = parse(&out[0]);
    let label = m.header("X-Fraud-Label").unwrap();
    assert_eq!(label.as_bytes(), b"suspected-fraud;category=loan;score=70");

    // A range entry (warn, no service configured: tagged) and its carve-out (allow).
    let (o, _) = call(&core, "+8617012345678");
    let d = o.decision.unwrap();
    assert_eq!((d.verdict.action, d.applied), (Action::Warn, Action::Tag));
    assert_eq!(d.verdict.entry.as_deref(), Some("+8617012*"));
    let (o, out) = call(&core, "+8617012000009");
    let d = o.decision.unwrap();
    assert_eq!(
        (d.verdict.action, d.verdict.reason),
        (Action::Allow, Reason::Listed)
    );
    assert!(parse(&out[0]).header("X-Fraud-Label").is_none());

    // Anyone else: forwarded unchanged but for Via and Max-Forwards.
    let (o, out) = call(&core, "+12025550123");
    assert_eq!(o.decision.unwrap().verdict.reason, Reason::Unlisted);
    let sent = String::from_utf8(out[0].data.to_vec()).unwrap();
    let original = String::from_utf8(invite("+12025550123").to_vec()).unwrap();
    let sent_rest: Vec<&str> = sent
        .split("\r\n")
        .filter(|l| !l.starts_with("Via: SIP/2.0/UDP 127.0.0.1:5060;"))
        .collect();
    let expected = original.replace("Max-Forwards: 70", "Max-Forwards: 69");
    assert_eq!(sent_rest, expected.split("\r\n").collect::<Vec<_>>());
}

#[test]
fn no_snapshot_fails_open_and_a_hot_swap_takes_effect_on_the_next_call() {
    let dir = tempfile::tempdir().unwrap();
    let slot: Arc<ArcSwapOption<Snapshot>> = Arc::new(ArcSwapOption::empty());
    let screen = Arc::new(Policy::over(slot.clone(), CallerActions::default()));
    let core = ProxyCore::new(CoreConfig::default(), screen.clone()).unwrap();

    let (o, out) = call(&core, "+8613800000001");
    assert_eq!(o.disposition, Disposition::Forwarded);
    assert_eq!(out.len(), 1);
    let d = o.decision.unwrap();
    assert_eq!(
        (d.verdict.reason, d.applied),
        (Reason::NoSnapshot, Action::Allow)
    );

    slot.store(Some(compile(dir.path(), "v1.fwb", CSV, 1)));
    assert_eq!(
        call(&core, "+8613800000001").0.disposition,
        Disposition::Answered(608)
    );

    let v2 = "number,action,category,score,source\n+8613800000001,tag,impersonation,40,police\n";
    slot.store(Some(compile(dir.path(), "v2.fwb", v2, 2)));
    let (o, _) = call(&core, "+8613800000001");
    assert_eq!(o.disposition, Disposition::Forwarded);
    let d = o.decision.unwrap();
    assert_eq!(
        (d.applied, d.verdict.snapshot_version),
        (Action::Tag, Some(2))
    );
    // Direct use of the screen: a number outside the list is unlisted under v2.
    let caller = Caller::Number("+8613800000002".parse().unwrap());
    let group = PeerGroup::default_group();
    let v = screen.screen(&CallContext::for_caller(&caller, &group));
    assert_eq!((v.reason, v.snapshot_version), (Reason::Unlisted, Some(2)));
}
