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

fn callee(i: u64) -> E164 {
    n(&format!("+86139{:08}", (i * 104_729) % 100_000_000))
}

/// Places one call from `caller` at `at` and plays its outcome; returns the INVITE's finding.
fn call(
    d: &Detector,
    key: u64,
    caller: E164,
    to: E164,
    at: Instant,
    end: &[(u64, CallEventKind)],
) -> Option<Finding> {
    let f = d.observe(ev(key, CallEventKind::Invite { caller, callee: to }), at);
    for &(ms, kind) in end {
        d.observe(ev(key, kind), at + Duration::from_millis(ms));
    }
    f
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

#[test]
fn wangiri_one_ring_cancels_are_flagged_and_escalate() {
    let d = Detector::new(&on()).unwrap();
    let t0 = Instant::now();
    let caller = n("+22245000001");
    let mut first = None;
    let mut last = None;
    for i in 0..80u64 {
        // One call every 30 s: rings after 1.5 s, cancelled 3 s later.
        let f = call(
            &d,
            i + 1,
            caller,
            callee(i),
            t0 + Duration::from_secs(30 * i),
            &[
                (1_500, CallEventKind::Ringing),
                (4_500, CallEventKind::Cancelled),
                (4_520, CallEventKind::Failed { status: 487 }),
            ],
        );
        if let Some(f) = f {
            first.get_or_insert((i + 1, f.rule.clone()));
            last = Some(f);
        }
    }
    let (at, rule) = first.expect("never flagged");
    assert_eq!(rule.as_ref(), "wangiri");
    assert!(at <= 14, "flagged at call {at}");
    let last = last.unwrap();
    assert_eq!(last.rule.as_ref(), "wangiri-block", "{last:?}");
    assert_eq!(last.action, Action::Block);
    assert!(last.features.one_ring_ratio > 0.9);
    assert_eq!(last.features.answer_ratio, 0.0);
    // The 487s that answer the CANCELs are no garbage; only the outcomes of the two calls
    // before the caller was tracked are unmatched.
    let s = d.stats();
    assert_eq!((s.unmatched, s.garbage), (6, 0), "{s:?}");
    assert_eq!(s.pending, 0);
}

#[test]
fn sequential_dialling_is_flagged_even_with_long_calls() {
    let d = Detector::new(&on()).unwrap();
    let t0 = Instant::now();
    let caller = n("+8617100000001");
    let mut first = None;
    for i in 0..20u64 {
        let to = n(&format!("+86139{:08}", 5_000_000 + i));
        let f = call(
            &d,
            i + 1,
            caller,
            to,
            t0 + Duration::from_secs(40 * i),
            &[
                (1_000, CallEventKind::Ringing),
                (5_000, CallEventKind::Answered),
                (35_000, CallEventKind::Bye),
            ],
        );
        if let Some(f) = f {
            first.get_or_insert((i + 1, f.rule));
        }
    }
    let (at, rule) = first.expect("never flagged");
    assert_eq!(rule.as_ref(), "sequential-dialling");
    assert!(at <= 12, "flagged at {at}");
}

#[test]
fn features_follow_the_outcomes() {
    let d = Detector::new(&on()).unwrap();
    let t0 = Instant::now();
    let caller = n("+8613800000009");
    // 12 calls, 10 s apart: 4 answered long, 4 answered short, 2 one-ring cancels, 2 busy.
    for i in 0..12u64 {
        let at = t0 + Duration::from_secs(10 * i);
        let end: Vec<(u64, CallEventKind)> = match i % 6 {
            0 | 1 => vec![
                (1_000, CallEventKind::Ringing),
                (3_000, CallEventKind::Answered),
                (63_000, CallEventKind::Bye),
            ],
            2 | 3 => vec![
                (1_000, CallEventKind::Ringing),
                (3_000, CallEventKind::Answered),
                (8_000, CallEventKind::Bye),
            ],
            4 => vec![
                (1_000, CallEventKind::Ringing),
                (3_000, CallEventKind::Cancelled),
                (3_010, CallEventKind::Failed { status: 487 }),
            ],
            _ => vec![(500, CallEventKind::Failed { status: 486 })],
        };
        call(&d, i + 1, caller, callee(i % 6), at, &end);
    }
    let f = d.features(&caller, t0 + Duration::from_secs(200)).unwrap();
    // The first two calls were seen only by the sketch (track_after = 3): their outcomes
    // are not counted, their volume is.
    assert_eq!(f.calls_hour, 12);
    assert_eq!(f.ended, 10, "{f:?}");
    assert!((f.answer_ratio - 0.6).abs() < 0.01, "{f:?}");
    // Short: 4 short answered + 2 cancels + 2 busy of the 10 tracked calls.
    assert!((f.short_call_ratio - 0.8).abs() < 0.01, "{f:?}");
    assert!((f.one_ring_ratio - 0.2).abs() < 0.01, "{f:?}");
    assert!((5..=7).contains(&f.distinct_callees), "{f:?}");
    assert!(f.distinct_ratio < 0.7, "{f:?}");
    assert_eq!(f.sequential_ratio, 0.0);
    assert_eq!(d.judge(&caller, t0 + Duration::from_secs(200)), None);
}

#[test]
fn garbage_and_out_of_order_events_never_panic_nor_grow() {
    let d = Detector::new(&on()).unwrap();
    let t0 = Instant::now() + Duration::from_secs(3600);
    let before = d.memory_bytes();
    // Outcomes for calls never seen.
    for k in 1..=100u64 {
        for kind in [
            CallEventKind::Ringing,
            CallEventKind::Answered,
            CallEventKind::Cancelled,
            CallEventKind::Failed { status: 404 },
            CallEventKind::Bye,
        ] {
            d.observe(ev(k, kind), t0);
        }
    }
    assert_eq!(d.stats().unmatched, 500);
    assert_eq!(d.stats().pending, 0);
    // Nonsense for a pending call: BYE before the answer, a status that is no error, a
    // second answer, a CANCEL after the answer.
    let caller = n("+8613800000010");
    // Tracked after three calls: its calls are pending from then on.
    for k in 997..1000u64 {
        d.observe(
            ev(
                k,
                CallEventKind::Invite {
                    caller,
                    callee: callee(k),
                },
            ),
            t0,
        );
    }
    d.observe(
        ev(
            1000,
            CallEventKind::Invite {
                caller,
                callee: callee(1),
            },
        ),
        t0,
    );
    d.observe(ev(1000, CallEventKind::Bye), t0);
    d.observe(ev(1000, CallEventKind::Failed { status: 200 }), t0);
    d.observe(ev(1000, CallEventKind::Failed { status: 0 }), t0);
    d.observe(ev(1000, CallEventKind::Answered), t0);
    d.observe(ev(1000, CallEventKind::Answered), t0);
    d.observe(ev(1000, CallEventKind::Cancelled), t0);
    assert_eq!(d.stats().garbage, 5, "{:?}", d.stats());
    // A clock that jumps back before the origin, and far ahead.
    d.observe(
        ev(
            1001,
            CallEventKind::Invite {
                caller,
                callee: callee(2),
            },
        ),
        t0 - Duration::from_secs(3000),
    );
    d.observe(
        ev(
            1002,
            CallEventKind::Invite {
                caller,
                callee: callee(3),
            },
        ),
        t0 + Duration::from_secs(100 * 365 * 86_400),
    );
    d.observe(
        ev(
            1003,
            CallEventKind::Invite {
                caller,
                callee: callee(4),
            },
        ),
        t0,
    );
    d.observe(ev(1002, CallEventKind::Bye), t0);
    let _ = d.suspects(t0);
    let _ = d.suspects(t0 - Duration::from_secs(3600));
    assert_eq!(d.memory_bytes(), before);
}

#[test]
fn retransmitted_invites_count_once() {
    let d = Detector::new(&on()).unwrap();
    let t0 = Instant::now();
    let caller = n("+8613800000011");
    // Three calls to be tracked (an untracked caller's retransmissions are only in the
    // sketch), then five calls sent four times each.
    for i in 100..103u64 {
        d.observe(
            ev(
                i,
                CallEventKind::Invite {
                    caller,
                    callee: callee(i),
                },
            ),
            t0,
        );
    }
    for i in 0..5u64 {
        for r in 0..4u64 {
            d.observe(
                ev(
                    i + 1,
                    CallEventKind::Invite {
                        caller,
                        callee: callee(i),
                    },
                ),
                t0 + Duration::from_secs(i * 10) + ms(500 * r),
            );
        }
    }
    let s = d.stats();
    assert_eq!((s.invites, s.retransmissions), (8, 15));
    assert_eq!(
        d.features(&caller, t0 + Duration::from_secs(60))
            .unwrap()
            .calls_hour,
        8
    );
}

#[test]
fn flags_lapse_from_suspects_after_the_retention() {
    let cfg = DetectionConfig {
        suspect_retention: Duration::from_secs(600),
        ..on()
    };
    let d = Detector::new(&cfg).unwrap();
    let t0 = Instant::now();
    let caller = n("+8617100000002");
    for i in 0..40u64 {
        call(
            &d,
            i + 1,
            caller,
            callee(i),
            t0 + ms(5_000 * i),
            &[(2_000, CallEventKind::Failed { status: 480 })],
        );
    }
    let s = d.suspects(t0 + Duration::from_secs(300));
    assert_eq!(s.len(), 1);
    assert_eq!(s[0].number, caller);
    assert!(s[0].first_flagged_secs_ago > s[0].last_flagged_secs_ago);
    // Tracked from its third call, 10 s in.
    assert_eq!(s[0].first_seen_secs_ago, 290);
    let json = serde_json::to_value(&s[0]).unwrap();
    assert_eq!(json["number"], "+8617100000002");
    assert_eq!(json["rule"], "robocall");
    assert!(d.suspects(t0 + Duration::from_secs(200 + 601)).is_empty());
}

#[test]
fn one_off_callers_never_displace_a_campaign() {
    let cfg = DetectionConfig {
        max_tracked_callers: 1024,
        pending_calls: 1024,
        sketch_mb: 1,
        memory_mb: 8,
        ..on()
    };
    let d = Detector::new(&cfg).unwrap();
    let bytes = d.memory_bytes();
    let t0 = Instant::now();
    let campaign = n("+8617100000003");
    let mut flagged = 0;
    for i in 0..200_000u64 {
        let at = t0 + ms(10 * i);
        // 1 call in 100 from the campaign, the rest from 199,000 different callers, some of
        // whom call three times in a row (admitted, then displaced).
        let (caller, key) = if i % 100 == 0 {
            (campaign, i + 1)
        } else {
            (
                n(&format!("+86138{:08}", (i / 3) * 7919 % 100_000_000)),
                i + 1,
            )
        };
        let f = d.observe(
            ev(
                key,
                CallEventKind::Invite {
                    caller,
                    callee: callee(i),
                },
            ),
            at,
        );
        d.observe(ev(key, CallEventKind::Failed { status: 486 }), at + ms(5));
        if caller == campaign && f.is_some() {
            flagged += 1;
        }
    }
    assert!(
        flagged > 1900,
        "campaign flagged on {flagged} of 2000 calls"
    );
    let s = d.stats();
    assert!(s.tracked <= 1024 && s.pending <= 1024, "{s:?}");
    assert!(s.evicted > 0, "{s:?}");
    assert_eq!(d.memory_bytes(), bytes);
}

/// Two nodes, each seeing every other call of a campaign, exchanging deltas after each
/// call: flagged as early as one node seeing all of it.
#[test]
fn shared_counters_detect_a_split_campaign_as_early_as_one_node() {
    let cfg = DetectionConfig {
        redis: Some("redis://127.0.0.1:6379".into()),
        ..on()
    };
    let one = Detector::new(&on()).unwrap();
    let a = Detector::new(&cfg).unwrap();
    let b = Detector::new(&cfg).unwrap();
    let t0 = Instant::now();
    let caller = n("+8617100000004");
    let (mut first_one, mut first_split) = (None, None);
    for i in 0..100u64 {
        let at = t0 + ms(2_000 * i);
        let end = [
            (1_000, CallEventKind::Ringing),
            (2_000, CallEventKind::Answered),
            (5_000, CallEventKind::Bye),
        ];
        if call(&one, i + 1, caller, callee(i), at, &end).is_some() {
            first_one.get_or_insert(i + 1);
        }
        let node = if i % 2 == 0 { &a } else { &b };
        if call(node, i + 1, caller, callee(i), at, &end).is_some() {
            first_split.get_or_insert(i + 1);
        }
        let (da, db) = (a.drain_deltas(), b.drain_deltas());
        b.merge_remote(&da, at + ms(5_000));
        a.merge_remote(&db, at + ms(5_000));
    }
    let (one_at, split_at) = (
        first_one.unwrap(),
        first_split.expect("split never flagged"),
    );
    assert!(
        split_at <= one_at + 4,
        "one node: call {one_at}, split: call {split_at}"
    );
    // Deltas never echo back.
    assert!(a.drain_deltas().is_empty() && b.drain_deltas().is_empty());
    assert!(one.drain_deltas().is_empty(), "no deltas without redis");
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Invite { call: u64, caller: u64, callee: u64 },
        Outcome { call: u64, kind: u8, status: u16 },
        Remote { caller: u64, calls: u32, ended: u32 },
        Suspects,
    }

    fn op() -> impl Strategy<Value = (Op, i64)> {
        let op = prop_oneof![
            4 => (0..3000u64, 0..5000u64, 0..100_000u64)
                .prop_map(|(call, caller, callee)| Op::Invite { call, caller, callee }),
            4 => (0..3000u64, 0..6u8, any::<u16>())
                .prop_map(|(call, kind, status)| Op::Outcome { call, kind, status }),
            1 => (0..5000u64, any::<u32>(), any::<u32>())
                .prop_map(|(caller, calls, ended)| Op::Remote { caller, calls, ended }),
            1 => Just(Op::Suspects),
        ];
        // Time steps: mostly forward by up to a minute, sometimes back, sometimes hours ahead.
        let step = prop_oneof![
            8 => 0..60_000i64,
            1 => -600_000..0i64,
            1 => 0..40_000_000i64,
        ];
        (op, step)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]
        #[test]
        fn memory_stays_within_its_bound_for_any_event_stream(ops in proptest::collection::vec(op(), 1..3000)) {
            let cfg = DetectionConfig {
                max_tracked_callers: 1024,
                pending_calls: 1024,
                sketch_mb: 1,
                memory_mb: 2,
                redis: Some("redis://127.0.0.1:6379".into()),
                ..on()
            };
            let d = Detector::new(&cfg).unwrap();
            let bytes = d.memory_bytes();
            prop_assert!(bytes as u64 <= 2 << 20, "{} bytes", bytes);
            let base = Instant::now() + Duration::from_secs(86_400);
            let mut t: i64 = 0;
            for (op, step) in ops {
                t = (t + step).max(-86_000_000);
                let now = if t >= 0 { base + ms(t as u64) } else { base - ms(t.unsigned_abs()) };
                match op {
                    Op::Invite { call, caller, callee } => {
                        let caller = n(&format!("+8613{:09}", caller));
                        let callee = n(&format!("+8615{:09}", callee));
                        d.observe(ev(call, CallEventKind::Invite { caller, callee }), now);
                    }
                    Op::Outcome { call, kind, status } => {
                        let kind = match kind {
                            0 => CallEventKind::Ringing,
                            1 => CallEventKind::Answered,
                            2 => CallEventKind::Cancelled,
                            3 => CallEventKind::Failed { status },
                            _ => CallEventKind::Bye,
                        };
                        d.observe(ev(call, kind), now);
                    }
                    Op::Remote { caller, calls, ended } => {
                        let delta = CounterDelta {
                            caller: n(&format!("+8613{:09}", caller)),
                            calls,
                            callees: [calls as u64, ended as u64],
                            ended,
                            answered: ended / 2,
                            short: ended,
                            one_ring: ended / 3,
                            sequential: calls,
                        };
                        d.merge_remote(&[delta], now);
                    }
                    Op::Suspects => {
                        let _ = d.suspects(now);
                        let _ = d.drain_deltas();
                    }
                }
            }
            let s = d.stats();
            prop_assert!(s.tracked <= 1024, "{:?}", s);
            prop_assert!(s.pending <= 1024, "{:?}", s);
            prop_assert!(d.drain_deltas().len() <= 1024);
            prop_assert_eq!(d.memory_bytes(), bytes);
        }
    }
}

/// `judge` answers from the sketch block alone below `probe_from`: it must say exactly what
/// the tracked table says, at every moment of a campaign and of its long decay afterwards.
#[test]
fn judging_from_the_sketch_agrees_with_the_table() {
    let d = Detector::new(&on()).unwrap();
    assert_eq!((d.probe_from, d.skip_below), (5, 3));
    let t0 = Instant::now();
    let caller = n("+8613800000077");
    let key = event::number_key(&caller);
    let h = mix64(key);
    let short = [
        (1_000, CallEventKind::Answered),
        (4_000, CallEventKind::Bye),
    ];
    let mut flagged = 0;
    // 150 short calls to distinct callees, one every 20 s, then silence for three hours,
    // judged every 7 s throughout.
    let mut next_call = 0u64;
    for step in 0..(3 * 3600 + 3000) / 7u64 {
        let at = t0 + Duration::from_secs(7 * step);
        while next_call < 150 && next_call * 20 <= 7 * step {
            call(
                &d,
                next_call + 1,
                caller,
                callee(next_call),
                t0 + Duration::from_secs(20 * next_call),
                &short,
            );
            next_call += 1;
        }
        let t = d.tick(at);
        let fast = d.judge(&caller, at);
        let slow = d.judge_locked(key, h, t);
        assert_eq!(fast, slow, "at {} s", 7 * step);
        flagged += usize::from(fast.is_some());
    }
    assert!(
        flagged > 100,
        "the campaign was judged guilty {flagged} times"
    );
}

#[test]
fn probe_from_follows_the_rules_and_the_half_life() {
    let rule = |minute, ten, hour| DetectionRule {
        min_calls_minute: minute,
        min_calls_10min: ten,
        min_calls_hour: hour,
        ..DetectionConfig::default().rules[0].clone()
    };
    let hl = 12_000; // 20 minutes
    assert_eq!(rules::probe_from(&DetectionConfig::default().rules, hl), 5);
    assert_eq!(rules::probe_from(&[], hl), u16::MAX);
    // A minute or ten are at most one halving; an hour three.
    assert_eq!(rules::probe_from(&[rule(Some(9), None, None)], hl), 4);
    assert_eq!(rules::probe_from(&[rule(None, None, Some(100))], hl), 12);
    // The strictest condition of a rule counts, the loosest rule wins.
    let both = rule(None, Some(6), Some(100));
    assert_eq!(rules::probe_from(std::slice::from_ref(&both), hl), 12);
    assert_eq!(rules::probe_from(&[both, rule(None, None, Some(3))], hl), 0);
    // A one-minute half-life: an hour is sixty halvings, nothing is left.
    assert_eq!(rules::probe_from(&[rule(None, None, Some(100))], 600), 0);
}

/// One visit per INVITE ([`Detector::visit`]) answers what `judge` said just before the
/// call and leaves the detector as `observe` did: twin detectors fed the same stream (a
/// robocall campaign, a Wangiri campaign, retransmissions, one-off callers, an hour's
/// silence) agree on every INVITE's finding, the counters and `/suspects`.
#[test]
fn a_visit_is_judge_then_observe() {
    let (pair, one) = (Detector::new(&on()).unwrap(), Detector::new(&on()).unwrap());
    let t0 = Instant::now();
    let robo = n("+8613800000011");
    let wangiri = n("+8613800000012");
    let mut flagged = 0;
    let mut key = 0u64;
    for i in 0..400u64 {
        // After 200 calls, an hour's silence: the campaigns decay, then resume.
        let at = t0 + ms(700 * i) + Duration::from_secs(if i >= 200 { 3600 } else { 0 });
        let (caller, end): (E164, &[(u64, CallEventKind)]) = match i % 4 {
            0 | 1 => (
                robo,
                &[
                    (1_000, CallEventKind::Answered),
                    (3_000, CallEventKind::Bye),
                ],
            ),
            2 => (
                wangiri,
                &[
                    (300, CallEventKind::Ringing),
                    (2_000, CallEventKind::Cancelled),
                ],
            ),
            _ => (n(&format!("+86137{:08}", i * 7919)), &[]),
        };
        key += 1;
        let to = callee(i);
        let invite = CallEventKind::Invite { caller, callee: to };
        // Every fifth call is retransmitted (the same call, the same time).
        for _ in 0..1 + u64::from(i % 5 == 0) {
            let judged = pair.judge(&caller, at);
            pair.observe(ev(key, invite), at);
            let visited = one.visit(CallKey::new(key), &caller, &to, at);
            assert_eq!(judged, visited, "call {i}");
            flagged += usize::from(visited.is_some());
        }
        for d in [&pair, &one] {
            for &(after, kind) in end {
                d.observe(ev(key, kind), at + ms(after));
            }
        }
    }
    assert!(flagged > 50, "flagged {flagged} times");
    let end = t0 + Duration::from_secs(3600 + 300);
    assert_eq!(pair.stats(), one.stats());
    assert_eq!(pair.suspects(end), one.suspects(end));
    assert_eq!(pair.suspects(end).len(), 2);
}
