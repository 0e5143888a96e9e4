//! Sans-I/O tests of the detector with stepped time.

use super::*;
use std::time::Duration;

fn n(s: &str) -> E164 {
    s.parse().unwrap()
}

fn on() -> DetectionConfig {
    DetectionConfig {
        enabled: true,
        ..DetectionConfig::default()
    }
}

fn ev(call: u64, kind: CallEventKind) -> CallEvent {
    CallEvent {
        call: CallKey::new(call),
        kind,
    }
}

/// The first scenario: 100 distinct callees in 60 s, 3-second calls.
#[test]
fn hundred_callees_in_a_minute_is_flagged_before_the_60th_call() {
    let d = Detector::new(&on()).unwrap();
    let t0 = Instant::now();
    let caller = n("+8613800000001");
    let mut first = None;
    for i in 0..100u64 {
        let at = t0 + Duration::from_millis(600 * i);
        let callee = n(&format!("+86139{:08}", i * 104_729 % 100_000_000));
        let f = d.observe(ev(i + 1, CallEventKind::Invite { caller, callee }), at);
        if f.is_some() && first.is_none() {
            first = Some(i + 1);
        }
        d.observe(
            ev(i + 1, CallEventKind::Ringing),
            at + Duration::from_millis(300),
        );
        d.observe(
            ev(i + 1, CallEventKind::Answered),
            at + Duration::from_secs(1),
        );
        d.observe(ev(i + 1, CallEventKind::Bye), at + Duration::from_secs(4));
    }
    let first = first.expect("never flagged");
    assert!(first < 60, "flagged at call {first}");
    let s = d.suspects(t0 + Duration::from_secs(61));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].number, caller);
    assert_eq!(s[0].category.as_ref(), "robocall");
}

/// The second scenario: 5 calls a minute to one callee for 10 minutes.
#[test]
fn five_calls_a_minute_to_one_callee_is_never_flagged() {
    let d = Detector::new(&on()).unwrap();
    let t0 = Instant::now();
    let caller = n("+8613800000002");
    let callee = n("+8613900000002");
    for i in 0..50u64 {
        let at = t0 + Duration::from_secs(12 * i);
        let f = d.observe(ev(i + 1, CallEventKind::Invite { caller, callee }), at);
        assert_eq!(f, None, "call {}", i + 1);
        d.observe(
            ev(i + 1, CallEventKind::Failed { status: 486 }),
            at + Duration::from_secs(1),
        );
    }
    assert!(d.suspects(t0 + Duration::from_secs(600)).is_empty());
}
