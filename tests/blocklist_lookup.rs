//! compile -> snapshot -> lookup, checked against a naive model (a map and a longest-prefix
//! scan), with prefixes, carve-outs, duplicates and conflicts.

use fraudwall::blocklist::{compile_csv_text, Action, CompileOptions, Snapshot};
use fraudwall::numbers::E164;
use proptest::prelude::*;
use std::collections::BTreeMap;

const HEADER: &str = "number,action,category,score,source\n";

#[derive(Debug, Clone)]
struct Row {
    prefix: bool,
    digits: String,
    action: Action,
    score: u8,
}

/// The model: key -> winning (action, score) under the documented rule (most severe action,
/// then highest score).
fn model(rows: &[Row]) -> BTreeMap<(bool, String), (Action, u8)> {
    let mut m: BTreeMap<(bool, String), (Action, u8)> = BTreeMap::new();
    for r in rows {
        let e = m
            .entry((r.prefix, r.digits.clone()))
            .or_insert((r.action, r.score));
        if (r.action, r.score) > *e {
            *e = (r.action, r.score);
        }
    }
    m
}

fn model_lookup(
    m: &BTreeMap<(bool, String), (Action, u8)>,
    q: &str,
) -> Option<(String, Action, u8)> {
    if let Some(&(a, s)) = m.get(&(false, q.to_string())) {
        return Some((format!("+{q}"), a, s));
    }
    (1..=q.len()).rev().find_map(|l| {
        m.get(&(true, q[..l].to_string()))
            .map(|&(a, s)| (format!("+{}*", &q[..l]), a, s))
    })
}

fn csv(rows: &[Row]) -> String {
    let mut s = HEADER.to_string();
    for r in rows {
        // Category and source derive from the value, so tie-breaks between equal values
        // cannot differ from the model.
        s.push_str(&format!(
            "+{}{},{},c{}{},{},src{}\n",
            r.digits,
            if r.prefix { "*" } else { "" },
            r.action,
            r.action,
            r.score,
            r.score,
            r.score % 3
        ));
    }
    s
}

/// Digits from a small alphabet so that keys share prefixes and collide often.
/// Country code 3x has no national plan in the profiles: any length from 7 (numbers) or 1
/// (prefixes) up to 15 digits is valid.
fn digits(min: usize, max: usize) -> impl Strategy<Value = String> {
    ("3", proptest::collection::vec("[0-2]", min - 1..max)).prop_map(|(a, v)| a + &v.concat())
}

fn row() -> impl Strategy<Value = Row> {
    (any::<bool>(), 0..4u8, 0..=100u8)
        .prop_flat_map(|(prefix, a, score)| {
            (
                digits(if prefix { 1 } else { 7 }, 15),
                Just((prefix, a, score)),
            )
        })
        .prop_map(|(digits, (prefix, a, score))| Row {
            prefix,
            digits,
            action: Action::ALL[a as usize],
            score,
        })
}

fn check(rows: &[Row], queries: &[String]) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.fwb");
    let report = compile_csv_text(&csv(rows), &CompileOptions::default(), &out).unwrap();
    let m = model(rows);
    prop_assert_eq!(report.entries as usize, m.len());
    prop_assert_eq!(report.rejected, 0);
    prop_assert_eq!(report.duplicates as usize, rows.len() - m.len());
    let snap = Snapshot::open(&out).unwrap();
    for q in queries {
        let n: E164 = q.parse().unwrap();
        let got = snap
            .lookup(&n)
            .map(|m| (m.entry.to_string(), m.action, m.score));
        let want = model_lookup(&m, q);
        prop_assert_eq!(&got, &want, "query +{}", q);
        if let Some(m) = snap.lookup(&n) {
            prop_assert_eq!(m.category, format!("c{}{}", m.action, m.score));
            prop_assert_eq!(m.source, format!("src{}", m.score % 3));
        }
    }
    // Every entry streams back out with its value, in encoded-key order (what `diff` and
    // the delta builder merge on).
    let keys: Vec<Vec<u8>> = snap
        .entries()
        .map(|e| e.unwrap().entry.encode().as_slice().to_vec())
        .collect();
    prop_assert!(keys.windows(2).all(|w| w[0] < w[1]), "entries out of order");
    let entries: Vec<(bool, String, Action, u8)> = snap
        .entries()
        .map(|e| {
            let e = e.unwrap();
            let d = e.entry.to_string();
            let d = d.trim_start_matches('+').trim_end_matches('*').to_string();
            (!e.entry.is_exact(), d, e.action, e.score)
        })
        .collect();
    let mut want: Vec<(bool, String, Action, u8)> = m
        .iter()
        .map(|((p, d), (a, s))| (*p, d.clone(), *a, *s))
        .collect();
    let mut got = entries;
    want.sort();
    got.sort();
    prop_assert_eq!(got, want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn lookup_matches_naive_model(
        rows in proptest::collection::vec(row(), 0..60),
        extra in proptest::collection::vec(digits(1, 15), 0..40),
        suffixes in proptest::collection::vec(digits(1, 5), 0..20),
    ) {
        let mut queries: Vec<String> = rows.iter().map(|r| r.digits.clone()).collect();
        queries.extend(extra);
        // Numbers inside listed ranges.
        for (r, s) in rows.iter().zip(&suffixes) {
            let q = format!("{}{}", r.digits, s);
            if q.len() <= 15 {
                queries.push(q);
            }
        }
        check(&rows, &queries)?;
    }
}

/// A small deterministic generator for the dense-block cases.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + (self.next() % 10) as u8))
            .collect()
    }
}

/// Rows clustered in one to three allocation blocks (a head plus four digits), enough for
/// the blocks to become leaves of both kinds, with prefixes shorter than, equal to and
/// longer than the head, numbers of other lengths under the same head, and a spread of
/// values (one for all, fewer than 256, more than 256).
fn dense_case(
    heads: &[String],
    per_head: usize,
    scores: u64,
    seed: u64,
) -> (Vec<Row>, Vec<String>) {
    let mut rng = Rng(seed | 1);
    let mut rows = Vec::new();
    let mut queries = Vec::new();
    for head in heads {
        for i in 0..per_head {
            let number = format!("{head}{}", rng.digits(4));
            let (action, score) = if scores == 1 {
                (Action::Block, 90)
            } else {
                (
                    Action::ALL[(rng.next() % 4) as usize],
                    (rng.next() % scores) as u8,
                )
            };
            rows.push(Row {
                prefix: false,
                digits: number.clone(),
                action,
                score: score.min(100),
            });
            queries.push(number);
            // Unlisted neighbours in the same block, and a longer number under the head.
            queries.push(format!("{head}{}", rng.digits(4)));
            if i % 50 == 0 && head.len() + 5 <= 15 {
                let longer = format!("{head}{}", rng.digits(5));
                if i % 100 == 0 {
                    rows.push(Row {
                        prefix: false,
                        digits: longer.clone(),
                        action: Action::Tag,
                        score: 10,
                    });
                }
                queries.push(longer);
            }
        }
        let h = head.len();
        for cut in [h.saturating_sub(2).max(1), h, h + 1, h + 3] {
            let digits = if cut <= h {
                head[..cut].to_string()
            } else {
                format!("{head}{}", rng.digits(cut - h))
            };
            queries.push(format!("{digits}{}", rng.digits(h + 4 - digits.len())));
            rows.push(Row {
                prefix: true,
                digits,
                action: Action::ALL[(rng.next() % 4) as usize],
                score: 50,
            });
        }
    }
    (rows, queries)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn dense_blocks_match_naive_model(
        heads in proptest::collection::vec(digits(3, 11), 1..3),
        per_head in prop_oneof![Just(31usize), Just(40), 0..1400usize, 2000..4000usize],
        scores in prop_oneof![Just(1u64), 2..40u64, 90..101u64],
        seed in any::<u64>(),
    ) {
        let (rows, queries) = dense_case(&heads, per_head, scores, seed);
        check(&rows, &queries)?;
    }
}

#[test]
fn carve_out_and_longest_prefix() {
    let rows = "+3317012*,block,range,80,carrier\n\
                +331701*,tag,wide,40,carrier\n\
                +3317012000001,allow,ok,0,carrier\n\
                +3317012,warn,itself,60,carrier\n\
                +8613800000001,block,impersonation,95,police\n\
                +8613800000001,tag,loan,99,reports\n";
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.fwb");
    let r = compile_csv_text(&format!("{HEADER}{rows}"), &CompileOptions::default(), &out).unwrap();
    assert_eq!((r.entries, r.duplicates, r.conflicts), (5, 1, 1));
    let snap = Snapshot::open(&out).unwrap();
    let look = |n: &str| {
        snap.lookup(&n.parse().unwrap())
            .map(|m| (m.entry.to_string(), m.action))
    };
    assert_eq!(
        look("+3317012000001"),
        Some(("+3317012000001".into(), Action::Allow))
    );
    assert_eq!(
        look("+3317012000002"),
        Some(("+3317012*".into(), Action::Block))
    );
    assert_eq!(
        look("+3317013000002"),
        Some(("+331701*".into(), Action::Tag))
    );
    // An exact entry beats the prefix equal to the same digits; a prefix matches itself.
    assert_eq!(look("+3317012"), Some(("+3317012".into(), Action::Warn)));
    assert_eq!(look("+331701"), Some(("+331701*".into(), Action::Tag)));
    assert_eq!(look("+33170"), None);
    // Duplicate with conflicting actions: the most severe wins.
    let m = snap.lookup(&"+8613800000001".parse().unwrap()).unwrap();
    assert_eq!(
        (m.action, m.category, m.score, m.source),
        (Action::Block, "impersonation", 95, "police")
    );
}

#[test]
fn protected_numbers_are_never_blocked() {
    let dir = tempfile::tempdir().unwrap();
    let protect = dir.path().join("protect.txt");
    std::fs::write(&protect, "# service lines\n+8695566\n").unwrap();
    let out = dir.path().join("l.fwb");
    let rows =
        "+86110,block,spoof,90,reports\n+8695566,block,spoof,90,reports\n+86*,block,all,10,x\n";
    let opts = CompileOptions {
        profile: fraudwall::numbers::NumberingProfile::by_name("cn").unwrap(),
        protect: vec![protect],
        ..CompileOptions::default()
    };
    let r = compile_csv_text(&format!("{HEADER}{rows}"), &opts, &out).unwrap();
    assert_eq!(r.protected_overrides, 2);
    let snap = Snapshot::open(&out).unwrap();
    for n in ["+86110", "+86119", "+8695566"] {
        let m = snap.lookup(&n.parse().unwrap()).unwrap();
        assert_eq!((m.action, m.category), (Action::Allow, "protected"), "{n}");
    }
    assert_eq!(
        snap.lookup(&"+8613800000001".parse().unwrap())
            .unwrap()
            .action,
        Action::Block
    );
}

#[test]
fn dirty_rows_are_reported_with_line_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.fwb");
    let text = format!(
        "{HEADER}+8613800000001,block,a,95,p\n\
         +86abc,block,a,95,p\n\
         +8613800000002,explode,a,95,p\n\
         +8613800000003,block,a,101,p\n\
         +1234567890123456,block,a,1,p\n\
         \n\
         # comment\n\
         +8613800000004\n\
         +8613800000005,tag\n"
    );
    let r = compile_csv_text(&text, &CompileOptions::default(), &out).unwrap();
    assert_eq!((r.rows, r.rejected, r.entries), (7, 5, 2));
    let lines: Vec<u64> = r.errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![3, 4, 5, 6, 9]);
    assert!(
        r.errors[1].reason.contains("unknown action"),
        "{}",
        r.errors[1]
    );
    assert!(r.errors[2].reason.contains("score"), "{}", r.errors[2]);
    // Past --max-errors: abort, and the old output stays as it was.
    let before = std::fs::read(&out).unwrap();
    let opts = CompileOptions {
        max_errors: 2,
        ..CompileOptions::default()
    };
    let e = compile_csv_text(&text, &opts, &out).unwrap_err();
    assert!(e.to_string().contains("--max-errors"), "{e}");
    assert_eq!(std::fs::read(&out).unwrap(), before);
}

#[test]
fn spilled_runs_give_the_same_snapshot_as_memory() {
    let s = fraudwall::blocklist::synth::Synth::new(50_000, 3);
    let mut text = Vec::new();
    s.write_csv(50_000, &mut text).unwrap();
    let text = String::from_utf8(text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.fwb"), dir.path().join("b.fwb"));
    let opts = CompileOptions {
        version: Some(1),
        created: Some(1),
        ..CompileOptions::default()
    };
    let ra = compile_csv_text(&text, &opts, &a).unwrap();
    let small = CompileOptions {
        memory_budget: 100_000, // about 6,000 records per run
        ..opts
    };
    let rb = compile_csv_text(&text, &small, &b).unwrap();
    assert_eq!(ra.spilled_runs, 0);
    assert!(rb.spilled_runs > 5, "{} runs", rb.spilled_runs);
    assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
    assert_eq!((ra.duplicates, ra.conflicts), (rb.duplicates, rb.conflicts));
}

#[test]
fn plain_list_needs_a_default_action() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("l.fwb");
    let e =
        compile_csv_text("pattern\n+12025550100\n", &CompileOptions::default(), &out).unwrap_err();
    assert!(e.to_string().contains("--default-action"), "{e}");
    let opts = CompileOptions {
        default_action: Some(Action::Warn),
        ..CompileOptions::default()
    };
    let r = compile_csv_text("pattern\n+12025550100\n+1900*\n", &opts, &out).unwrap();
    assert_eq!(r.entries, 2);
    let snap = Snapshot::open(&out).unwrap();
    assert_eq!(
        snap.lookup(&"+19005550000".parse().unwrap())
            .unwrap()
            .action,
        Action::Warn
    );
}

#[test]
fn delta_with_tombstones() {
    use fraudwall::blocklist::Kind;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("d.fwb");
    let rows = format!("{HEADER}+8613800000001,remove,,,\n+8613800000009,block,new,90,police\n");
    // In a base, `remove` is a bad row.
    let r = compile_csv_text(&rows, &CompileOptions::default(), &out).unwrap();
    assert_eq!(r.rejected, 1);
    assert!(r.errors[0].reason.contains("delta"), "{}", r.errors[0]);
    let opts = CompileOptions {
        kind: Kind::Delta {
            base_version: 7,
            base_hash: [1; 32],
        },
        ..CompileOptions::default()
    };
    let r = compile_csv_text(&rows, &opts, &out).unwrap();
    assert_eq!((r.entries, r.counts.tombstones, r.rejected), (2, 1, 0));
    let snap = Snapshot::open(&out).unwrap();
    assert!(matches!(
        snap.kind(),
        Kind::Delta {
            base_version: 7,
            ..
        }
    ));
    let m = snap.lookup(&"+8613800000001".parse().unwrap()).unwrap();
    assert!(m.tombstone);
    let m = snap.lookup(&"+8613800000009".parse().unwrap()).unwrap();
    assert!(!m.tombstone && m.action == Action::Block);
}
