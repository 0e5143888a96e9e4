//! Behavioural detection through the proxy core, byte in, bytes out, with stepped time.
//!
//! A real [`Policy`] (blocklist, protected list) with a real [`Detector`] behind its
//! `behaviour` stage, and the core telling the same detector each call's INVITE, 180, 200,
//! CANCEL, 487 and BYE. Time is an `Instant` the test steps: ten minutes of calls run in
//! milliseconds.

mod core_support;

use arc_swap::ArcSwapOption;
use core_support::*;
use fraudwall::blocklist::{compile_csv_text, Action, CompileOptions, EntryKey, Snapshot};
use fraudwall::detection::{CallEventKind, DetectionConfig, Detector};
use fraudwall::numbers::E164;
use fraudwall::policy::lists::{NoList, ProtectedLookup, ProtectedMatch};
use fraudwall::policy::{CallerActions, Policy, Reason, Rule, Rules};
use fraudwall::proxy::core::{CoreConfig, Disposition, ProxyCore};
use fraudwall::proxy::Transport;
use fraudwall::sip::SipMessage;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A call centre the global list allows, and an ordinary listed number.
const LIST: &str = "number,action,category,score,source\n\
                    +8613500000099,allow,,0,verified\n\
                    +8613800000001,block,impersonation,95,police\n";
/// The bank's number, on the protected list, entitled to the `default` group.
const BANK: &str = "8695588";

struct Prot;
impl ProtectedLookup for Prot {
    fn version(&self) -> u64 {
        1
    }
    fn lookup(&self, caller: &E164) -> Option<ProtectedMatch<'_>> {
        caller.digits().starts_with(BANK).then(|| ProtectedMatch {
            entry: EntryKey::prefix(BANK.as_bytes()).expect("digits"),
            entitled: "default",
            category: "bank",
        })
    }
}

struct World {
    core: ProxyCore,
    detector: Arc<Detector>,
    t0: Instant,
    seq: u64,
    _dir: tempfile::TempDir,
}

fn world(detection: bool) -> World {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("list.fwb");
    compile_csv_text(LIST, &CompileOptions::default(), &path).unwrap();
    let snapshot = Arc::new(Snapshot::open(&path).unwrap());
    let detector = Arc::new(
        Detector::new(&DetectionConfig {
            enabled: true,
            max_tracked_callers: 4096,
            pending_calls: 4096,
            sketch_mb: 1,
            memory_mb: 8,
            ..DetectionConfig::default()
        })
        .unwrap(),
    );
    let on = detection.then(|| detector.clone());
    let policy: Policy<Snapshot, NoList, Prot> = Policy::new(
        Arc::new(ArcSwapOption::from(Some(snapshot))),
        Arc::new(ArcSwapOption::empty()),
        Arc::new(ArcSwapOption::from(Some(Arc::new(Prot)))),
        Rules::default(),
        CallerActions::default(),
    )
    .with_detector(on.clone());
    // Default config: `proxy.record_route` off; detection record-routes INVITEs itself.
    let c = CoreConfig::default();
    let core = ProxyCore::new(c, Arc::new(policy))
        .unwrap()
        .with_detector(on);
    World {
        core,
        detector,
        t0: Instant::now(),
        seq: 0,
        _dir: dir,
    }
}

/// What became of one call.
#[derive(Debug, PartialEq)]
struct Call {
    /// The verdict's rule and action (as applied).
    rule: Rule,
    applied: Action,
    /// The detection rule named in the verdict (`matched`), when `behaviour` decided.
    detection_rule: Option<String>,
    /// The forwarded INVITE carried X-Fraud-Label.
    labelled: bool,
    /// Answered 608 by the proxy.
    blocked: bool,
    /// What the core told the detector, message by message.
    told: Vec<&'static str>,
}

fn vias(m: &SipMessage) -> Vec<String> {
    m.vias()
        .map(|v| String::from_utf8(v.unwrap().raw().to_vec()).unwrap())
        .collect()
}

/// A response from the next hop to the forwarded INVITE.
fn response(fwd: &SipMessage, status: &str) -> String {
    let mut s = format!("SIP/2.0 {status}\r\n");
    for v in vias(fwd) {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    format!(
        "{s}From: {}\r\nTo: {};tag=callee\r\nCall-ID: {}\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n",
        header(fwd, "From").unwrap(),
        header(fwd, "To").unwrap(),
        header(fwd, "Call-ID").unwrap()
    )
}

/// How the call ends after the INVITE is forwarded.
#[derive(Clone, Copy)]
enum End {
    /// Rings, answered after 1 s, BYE after `talk`.
    Talk(Duration),
    /// Rings, cancelled after `ring`, 487.
    Cancel(Duration),
}

impl World {
    fn at(&self, secs: f64) -> Instant {
        self.t0 + Duration::from_secs_f64(secs)
    }

    /// One call from `caller` to `callee` (digits) starting `start` seconds in.
    fn call(&mut self, caller: &str, callee: &str, start: f64, end: End) -> Call {
        self.seq += 1;
        let id = format!("det-{}@192.0.2.1", self.seq);
        let branch = format!("z9hG4bK-det-{}", self.seq);
        let invite = format!(
            "INVITE sip:+{callee}@127.0.0.1:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:+{caller}@192.0.2.1>;tag=f{n}\r\n\
             To: <sip:+{callee}@127.0.0.1>\r\n\
             Call-ID: {id}\r\nCSeq: 1 INVITE\r\n\
             Contact: <sip:+{caller}@192.0.2.1:5060>\r\nContent-Length: 0\r\n\r\n",
            n = self.seq
        );
        let mut told = Vec::new();
        let s = send_at(
            &self.core,
            &invite,
            CALLER,
            LOCAL,
            Transport::Udp,
            self.at(start),
        );
        told.extend(s.outcome.detection.map(|k| k.as_str()));
        let d = s.outcome.decision.clone().expect("a screened INVITE");
        let mut call = Call {
            rule: d.verdict.rule,
            applied: d.applied,
            detection_rule: (d.verdict.reason == Reason::Behaviour)
                .then(|| d.verdict.entry.as_deref().unwrap_or("").to_string()),
            labelled: false,
            blocked: s.outcome.disposition == Disposition::Answered(608),
            told,
        };
        if call.blocked {
            return call;
        }
        let fwd = s.msg();
        call.labelled = header(&fwd, "X-Fraud-Label").is_some();
        assert_eq!(
            fwd.record_routes().count(),
            usize::from(!call.told.is_empty()),
            "record-routed exactly when detecting"
        );
        let from_hop = |w: &World, text: &str, t: f64| {
            let s = send_at(&w.core, text, HOP, LOCAL, Transport::Udp, w.at(t));
            assert_eq!(s.outcome.disposition, Disposition::Forwarded, "{text}");
            s.outcome.detection.map(|k| k.as_str())
        };
        let r = from_hop(self, &response(&fwd, "180 Ringing"), start + 0.2);
        call.told.extend(r);
        match end {
            End::Talk(talk) => {
                let r = from_hop(self, &response(&fwd, "200 OK"), start + 1.0);
                call.told.extend(r);
                // The caller hangs up: an in-dialog BYE to the callee's contact (the hop).
                let bye = format!(
                    "BYE sip:+{callee}@{HOP} SIP/2.0\r\n\
                     Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}-bye\r\n\
                     Max-Forwards: 70\r\n\
                     From: <sip:+{caller}@192.0.2.1>;tag=f{n}\r\n\
                     To: <sip:+{callee}@127.0.0.1>;tag=callee\r\n\
                     Call-ID: {id}\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
                    n = self.seq
                );
                let t = start + 1.0 + talk.as_secs_f64();
                let s = send_at(&self.core, &bye, CALLER, LOCAL, Transport::Udp, self.at(t));
                assert_eq!(s.outcome.disposition, Disposition::Forwarded);
                call.told.extend(s.outcome.detection.map(|k| k.as_str()));
            }
            End::Cancel(ring) => {
                let cancel = format!(
                    "CANCEL sip:+{callee}@127.0.0.1:5060 SIP/2.0\r\n\
                     Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch}\r\n\
                     Max-Forwards: 70\r\n\
                     From: <sip:+{caller}@192.0.2.1>;tag=f{n}\r\n\
                     To: <sip:+{callee}@127.0.0.1>\r\n\
                     Call-ID: {id}\r\nCSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n",
                    n = self.seq
                );
                let t = start + 0.2 + ring.as_secs_f64();
                let s = send_at(
                    &self.core,
                    &cancel,
                    CALLER,
                    LOCAL,
                    Transport::Udp,
                    self.at(t),
                );
                assert_eq!(s.outcome.disposition, Disposition::Forwarded);
                call.told.extend(s.outcome.detection.map(|k| k.as_str()));
                let r = from_hop(self, &response(&fwd, "487 Request Terminated"), t + 0.05);
                call.told.extend(r);
            }
        }
        call
    }
}

/// A robocaller: a new callee every 600 ms (100 in 60 s), 3-second calls.
fn robocall(w: &mut World, caller: &str, n: u64) -> Vec<Call> {
    (0..n)
        .map(|i| {
            let callee = format!("86139{:08}", 10_000_000 + i * 7919);
            w.call(
                caller,
                &callee,
                i as f64 * 0.6,
                End::Talk(Duration::from_secs(3)),
            )
        })
        .collect()
}

#[test]
fn a_robocaller_is_tagged_by_the_behaviour_rule_before_its_60th_call() {
    let mut w = world(true);
    let calls = robocall(&mut w, "8617000000001", 100);
    assert_eq!(
        calls[0].told,
        ["invite", "ringing", "answered", "bye"],
        "every event of a call is told"
    );
    assert_eq!(
        (calls[0].rule, calls[0].applied),
        (Rule::Default, Action::Allow)
    );
    let first = calls
        .iter()
        .position(|c| c.rule == Rule::Behaviour)
        .expect("flagged at all");
    assert!(first < 59, "flagged at call {}", first + 1);
    let c = &calls[first];
    assert_eq!(c.applied, Action::Tag);
    assert!(c.labelled, "a tagged call carries X-Fraud-Label");
    assert_eq!(c.detection_rule.as_deref(), Some("robocall"));
    // Once flagged, every later call is acted on (tagged, then blocked by the ladder).
    for c in &calls[first..] {
        assert_eq!(c.rule, Rule::Behaviour, "{c:?}");
        assert!(c.labelled || c.blocked, "{c:?}");
    }
    let s = w.detector.suspects(w.at(70.0));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].number.to_string(), "+8617000000001");
    assert_eq!(s[0].category.as_ref(), "robocall");
}

#[test]
fn the_ladder_blocks_with_608_and_tells_the_detector_the_call_failed() {
    let mut w = world(true);
    // Two minutes of the same campaign: past 100 calls in the hour, robocall-block holds.
    let calls = robocall(&mut w, "8617000000002", 200);
    let blocked = calls
        .iter()
        .position(|c| c.blocked)
        .expect("blocked at last");
    let c = &calls[blocked];
    assert_eq!((c.rule, c.applied), (Rule::Behaviour, Action::Block));
    assert_eq!(c.detection_rule.as_deref(), Some("robocall-block"));
    assert_eq!(
        c.told,
        ["invite"],
        "our own 608 ends the call in the detector"
    );
    // The blocked calls end in the detector (no pending call is left behind).
    assert_eq!(w.detector.stats().pending, 0, "{:?}", w.detector.stats());
}

#[test]
fn wangiri_one_ring_cancels_are_flagged_through_cancel_and_487() {
    let mut w = world(true);
    let calls: Vec<Call> = (0..40u64)
        .map(|i| {
            let callee = format!("44770090{:04}", i * 37);
            w.call(
                "88216000001",
                &callee,
                i as f64 * 15.0,
                End::Cancel(Duration::from_secs(2)),
            )
        })
        .collect();
    assert_eq!(calls[0].told, ["invite", "ringing", "cancelled", "failed"]);
    let c = calls
        .iter()
        .find(|c| c.rule == Rule::Behaviour)
        .expect("wangiri flagged");
    assert_eq!(c.detection_rule.as_deref(), Some("wangiri"));
    let f = w
        .detector
        .features(&"+88216000001".parse().unwrap(), w.at(600.0))
        .unwrap();
    assert!(f.one_ring_ratio > 0.9, "{f:?}");
}

#[test]
fn a_caller_redialling_one_number_five_times_a_minute_for_ten_minutes_is_never_flagged() {
    let mut w = world(true);
    for i in 0..50u64 {
        let c = w.call(
            "8613912345678",
            "8613987654321",
            i as f64 * 12.0,
            End::Talk(Duration::from_secs(3)),
        );
        assert_eq!(
            (c.rule, c.applied),
            (Rule::Default, Action::Allow),
            "call {i}"
        );
        assert!(!c.labelled);
    }
    assert!(w.detector.suspects(w.at(601.0)).is_empty());
}

#[test]
fn callers_the_global_list_allows_and_protected_numbers_are_exempt() {
    let mut w = world(true);
    for c in robocall(&mut w, "8613500000099", 100) {
        assert_eq!((c.rule, c.applied), (Rule::Global, Action::Allow), "{c:?}");
    }
    let bank = format!("{BANK}0001");
    for c in robocall(&mut w, &bank, 100) {
        assert_ne!(c.rule, Rule::Behaviour, "{c:?}");
        assert_eq!(c.applied, Action::Allow, "{c:?}");
        assert!(!c.labelled);
    }
    // The detector still measures them; the policy does not act on it.
    let n: E164 = format!("+{bank}").parse().unwrap();
    assert!(w.detector.features(&n, w.at(60.0)).is_some());
}

#[test]
fn detection_off_tells_nothing_and_decides_nothing() {
    let mut w = world(false);
    for c in robocall(&mut w, "8617000000003", 100) {
        assert!(c.told.is_empty(), "{c:?}");
        assert_eq!(c.rule, Rule::Default);
    }
    assert_eq!(w.detector.stats().invites, 0);
}

#[test]
fn a_retransmitted_invite_is_one_call() {
    let w = world(true);
    let invite = invite("8617000000004", "");
    let t = w.at(0.0);
    // Only a tracked caller's calls enter the pending table that recognises a retransmitted
    // INVITE (an untracked caller's only add to the sketch): three earlier calls make the
    // caller tracked (`track_after` = 3).
    for i in 0..3 {
        let earlier = invite.replace("Call-ID: ", &format!("Call-ID: earlier-{i}-"));
        send_at(&w.core, &earlier, CALLER, LOCAL, Transport::Udp, t);
    }
    for _ in 0..3 {
        let s = send_at(&w.core, &invite, CALLER, LOCAL, Transport::Udp, t);
        assert!(matches!(
            s.outcome.detection,
            Some(CallEventKind::Invite { .. })
        ));
    }
    let st = w.detector.stats();
    assert_eq!((st.invites, st.retransmissions), (4, 2), "{st:?}");
}
