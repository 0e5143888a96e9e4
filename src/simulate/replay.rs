//! The replay: the generated day's calls, as the proxy would see them, through the detector.

use super::day::{e164, gen_day, Class, End};
use super::{CatchReport, ClassReport, Report, Scenario, SimulateError, Targets};
use crate::blocklist::Action;
use crate::detection::{CallEvent, CallEventKind, CallKey, DetectionConfig, Detector};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

#[derive(Default, Clone, Copy)]
struct NumberStat {
    calls: u64,
    first_flagged: Option<u64>,
}

/// Follow-up events of a call, in the replay's heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    Ringing,
    Answered,
    Cancelled,
    Failed(u16),
    Bye,
}

/// Generates the scenario's day and replays it through a detector built from `config`.
pub fn run(s: &Scenario, config: &DetectionConfig) -> Result<Report, SimulateError> {
    s.validate()?;
    let detector = Detector::new(config)?;
    let t_gen = Instant::now();
    let day = gen_day(s);
    let generate_secs = t_gen.elapsed().as_secs_f64();
    let t_replay = Instant::now();
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);

    let mut per_number = vec![NumberStat::default(); day.numbers.len()];
    let mut classes = [ClassReport::default(); 6];
    let mut seen_numbers: [std::collections::HashSet<u64>; 6] = Default::default();
    let mut flagged_numbers: [std::collections::HashSet<u64>; 6] = Default::default();
    let mut ignored = 0u64;
    let mut events = 0u64;
    let mut heap: BinaryHeap<Reverse<(u64, u32, Next)>> = BinaryHeap::new();
    let mut examples = Vec::new();
    // Per class: calls after their number's 30th, and how many of those were flagged.
    let mut after_30 = [(0u64, 0u64); 6];

    let deliver =
        |heap: &mut BinaryHeap<Reverse<(u64, u32, Next)>>, until: u64, events: &mut u64| {
            while let Some(&Reverse((t, i, next))) = heap.peek() {
                if t > until {
                    break;
                }
                heap.pop();
                *events += 1;
                let kind = match next {
                    Next::Ringing => CallEventKind::Ringing,
                    Next::Answered => CallEventKind::Answered,
                    Next::Cancelled => CallEventKind::Cancelled,
                    Next::Failed(status) => CallEventKind::Failed { status },
                    Next::Bye => CallEventKind::Bye,
                };
                detector.observe(
                    CallEvent {
                        call: CallKey::new(u64::from(i) + 1),
                        kind,
                    },
                    at(t),
                );
            }
        };

    for (i, c) in day.calls.iter().enumerate() {
        deliver(&mut heap, c.start_ms, &mut events);
        let (Some(caller), Some(callee)) = (e164(c.caller), e164(c.callee)) else {
            continue;
        };
        let key = i as u32;
        events += 1;
        // What the proxy core does per INVITE: one visit that counts the call and answers
        // the finding of the caller's calls before it.
        let finding = detector.visit(
            CallKey::new(u64::from(key) + 1),
            &caller,
            &callee,
            at(c.start_ms),
        );
        let exempt = c.class == Class::Enterprise;
        // The policy exempts callers the global list allows before the finding counts.
        let action = match finding {
            Some(_) if exempt => {
                ignored += 1;
                None
            }
            f => f.map(|f| f.action),
        };
        let cls = c.class as usize;
        let rep = &mut classes[cls];
        rep.calls += 1;
        seen_numbers[cls].insert(c.caller);
        if action.is_some() {
            rep.flagged += 1;
            if flagged_numbers[cls].insert(c.caller) && !c.class.is_fraud() && examples.len() < 20 {
                examples.push(format!("+{}", c.caller));
            }
        }
        if action == Some(Action::Block) {
            rep.blocked += 1;
        }
        if let Some(n) = per_number.get_mut(c.number as usize) {
            n.calls += 1;
            if action.is_some() && n.first_flagged.is_none() {
                n.first_flagged = Some(n.calls);
            }
            if n.calls > 30 {
                after_30[cls].0 += 1;
                after_30[cls].1 += u64::from(action.is_some());
            }
        }
        // What the callee's side answers.
        let t0 = c.start_ms;
        if action == Some(Action::Block) {
            heap.push(Reverse((t0, key, Next::Failed(608))));
            continue;
        }
        let ring_at = t0 + u64::from(c.pdd_ms);
        let end_at = ring_at + u64::from(c.ring_ms);
        match c.end {
            End::Answered { talk_ms } => {
                heap.push(Reverse((ring_at, key, Next::Ringing)));
                heap.push(Reverse((end_at, key, Next::Answered)));
                heap.push(Reverse((end_at + u64::from(talk_ms), key, Next::Bye)));
            }
            End::Cancelled => {
                heap.push(Reverse((ring_at, key, Next::Ringing)));
                heap.push(Reverse((end_at, key, Next::Cancelled)));
                heap.push(Reverse((end_at + 20, key, Next::Failed(487))));
            }
            End::Failed { status } => {
                if status == 480 {
                    heap.push(Reverse((ring_at, key, Next::Ringing)));
                }
                heap.push(Reverse((end_at, key, Next::Failed(status))));
            }
        }
    }
    deliver(&mut heap, u64::MAX, &mut events);

    for (i, rep) in classes.iter_mut().enumerate() {
        rep.numbers = seen_numbers[i].len() as u64;
        rep.numbers_flagged = flagged_numbers[i].len() as u64;
        rep.flagged_ratio = ratio(rep.flagged, rep.calls);
    }
    let sum = |reps: &[ClassReport]| {
        let mut t = ClassReport::default();
        for r in reps {
            t.calls += r.calls;
            t.flagged += r.flagged;
            t.blocked += r.blocked;
            t.numbers += r.numbers;
            t.numbers_flagged += r.numbers_flagged;
        }
        t.flagged_ratio = ratio(t.flagged, t.calls);
        t
    };
    let legitimate = sum(&classes[..3]);
    let catch = |filter: &dyn Fn(Class) -> bool| -> CatchReport {
        let mut r = CatchReport::default();
        let mut firsts = Vec::new();
        for (i, n) in per_number.iter().enumerate() {
            if !filter(day.numbers[i]) || n.calls == 0 {
                continue;
            }
            firsts.push(n.first_flagged.unwrap_or(u64::MAX));
            if n.first_flagged.is_none() {
                r.numbers_never_flagged += 1;
            }
        }
        firsts.sort_unstable();
        r.median_calls_to_catch = firsts
            .get(firsts.len() / 2)
            .copied()
            .filter(|&m| m != u64::MAX);
        r
    };
    let mut report_catch = [
        catch(&|c| c == Class::Robocall),
        catch(&|c| c == Class::Wangiri),
        catch(&|c| c == Class::Rotating),
    ];
    let mut all = catch(&|c| c.is_fraud());
    for (k, class) in [Class::Robocall, Class::Wangiri, Class::Rotating]
        .into_iter()
        .enumerate()
    {
        let (n, f) = after_30[class as usize];
        report_catch[k].calls_after_30 = n;
        report_catch[k].flagged_after_30 = f;
        report_catch[k].recall_after_30 = ratio(f, n);
        all.calls_after_30 += n;
        all.flagged_after_30 += f;
    }
    all.recall_after_30 = ratio(all.flagged_after_30, all.calls_after_30);
    let detector_bytes = detector.memory_bytes();
    let fp = ratio(legitimate.flagged, legitimate.calls);
    let targets = Targets {
        recall_after_30: all.recall_after_30 >= 0.95,
        legitimate_false_positives: fp <= 0.0001,
        median_calls_to_catch: all.median_calls_to_catch.is_some_and(|m| m <= 20),
        memory: detector_bytes <= 256 << 20,
    };
    Ok(Report {
        calls: day.calls.len() as u64,
        events,
        legitimate,
        legitimate_subscribers: classes[Class::Subscriber as usize],
        legitimate_busy_lines: classes[Class::BusyLine as usize],
        legitimate_enterprises: classes[Class::Enterprise as usize],
        enterprise_findings_ignored: ignored,
        robocall: classes[Class::Robocall as usize],
        wangiri: classes[Class::Wangiri as usize],
        rotating: classes[Class::Rotating as usize],
        campaigns: all,
        robocall_catch: report_catch[0],
        wangiri_catch: report_catch[1],
        rotating_catch: report_catch[2],
        legitimate_false_positive_ratio: fp,
        legitimate_flagged_examples: examples,
        detector_bytes,
        detector_stats: detector.stats(),
        targets,
        generate_secs,
        replay_secs: t_replay.elapsed().as_secs_f64(),
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::scenario::tests::small;

    fn on() -> DetectionConfig {
        DetectionConfig {
            enabled: true,
            ..DetectionConfig::default()
        }
    }

    #[test]
    fn a_small_day_is_deterministic_and_catches_campaigns_only() {
        let s = small();
        let a = run(&s, &on()).unwrap();
        let b = run(&s, &on()).unwrap();
        assert_eq!((a.calls, a.events), (b.calls, b.events));
        assert_eq!(a.robocall, b.robocall);
        assert_eq!(a.campaigns, b.campaigns);
        assert!(a.calls > 100_000, "{}", a.calls);
        for class in [&a.robocall, &a.wangiri, &a.rotating] {
            assert!(class.calls > 0 && class.flagged > 0, "{class:?}");
        }
        assert_eq!(
            a.legitimate.flagged, 0,
            "{:?}",
            a.legitimate_flagged_examples
        );
        assert_eq!(a.legitimate_enterprises.flagged, 0, "exempt");
        assert!(
            a.enterprise_findings_ignored > 0,
            "the exemption is exercised"
        );
        assert!(a.campaigns.recall_after_30 > 0.95, "{:?}", a.campaigns);
        assert!(a.campaigns.median_calls_to_catch.is_some_and(|m| m <= 20));
        let json = serde_json::to_value(&a).unwrap();
        for key in [
            "calls",
            "detector_bytes",
            "legitimate",
            "robocall",
            "wangiri",
            "rotating",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert!(json["robocall"]["flagged_ratio"].as_f64().is_some());
        let other = run(&Scenario { seed: 7, ..s }, &on()).unwrap();
        assert_ne!(other.calls, a.calls, "another seed, another day");
    }
}
