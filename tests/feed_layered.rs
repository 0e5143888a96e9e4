//! Deltas and the layered lookup: a base plus the deltas between successive whole lists must
//! answer exactly as the last whole list does, for every number (property test, prefixes,
//! tombstones and carve-outs included).

use fraudwall::blocklist::format::Kind;
use fraudwall::blocklist::Action;
use fraudwall::blocklist::{compile_csv_text, CompileOptions, Snapshot};
use fraudwall::feed::delta::{compile_delta, DeltaError, DeltaHeader};
use fraudwall::feed::layered::{Layer, LayerError, Layered};
use fraudwall::numbers::{Caller, E164};
use fraudwall::peers::PeerGroup;
use fraudwall::policy::{CallContext, CallerActions, Policy, Reason, Screen};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

const HEADER: &str = "number,action,category,score,source\n";

fn compile(dir: &Path, name: &str, rows: &str, version: u64) -> Arc<Snapshot> {
    let path = dir.join(name);
    let opts = CompileOptions {
        version: Some(version),
        created: Some(1),
        builtin_protect: false,
        ..CompileOptions::default()
    };
    compile_csv_text(&format!("{HEADER}{rows}"), &opts, &path).expect("compile");
    Arc::new(Snapshot::open(&path).expect("open"))
}

fn delta(
    dir: &Path,
    name: &str,
    prev: &Snapshot,
    new: &Snapshot,
    base: &Snapshot,
) -> Option<Arc<Snapshot>> {
    let path = dir.join(name);
    let header = DeltaHeader {
        version: new.version(),
        created: 1,
        base_version: base.version(),
        base_hash: base.hash(),
    };
    let report = compile_delta(prev, new, header, u64::MAX, &path).expect("delta");
    (report.bytes > 0).then(|| Arc::new(Snapshot::open(&path).expect("open delta")))
}

type Answer = Option<(String, String, String, u8, String)>;

fn answer(m: Option<fraudwall::blocklist::Match<'_>>) -> Answer {
    m.map(|m| {
        (
            format!("{}", m.entry),
            m.action.to_string(),
            m.category.to_string(),
            m.score,
            m.source.to_string(),
        )
    })
}

fn layer(name: &str, s: &Arc<Snapshot>) -> Layer {
    Layer::new(name, None, Arc::clone(s))
}

#[test]
fn tombstones_changes_and_carve_outs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let l0 = compile(
        d,
        "l0.fwb",
        "+8617012*,block,range,80,r\n+8613800000001,block,police,95,p\n+86139*,tag,loan,60,r\n+8613900000009,warn,x,10,r\n",
        1,
    );
    // Remove a number, carve an allow out of the range, change the tag range to block,
    // remove the short range while its longer exact entry stays, add a number.
    let l1 = compile(
        d,
        "l1.fwb",
        "+8617012*,block,range,80,r\n+8617012345678,allow,,0,w\n+86139*,block,loan,90,r\n+8613900000009,warn,x,10,r\n+12025550100,block,robo,70,ftc\n",
        2,
    );
    let d1 = delta(d, "d1.fwb", &l0, &l1, &l0).expect("changes");
    assert!(matches!(
        d1.kind(),
        Kind::Delta {
            base_version: 1,
            ..
        }
    ));
    let view = Layered::new(layer("l0", &l0), vec![layer("d1", &d1)], 2).expect("stack");
    for n in [
        "8613800000001",
        "8617012345678",
        "8617012000000",
        "8613900000000",
        "8613900000009",
        "12025550100",
        "4420000000",
    ] {
        let e: E164 = n.parse().expect("number");
        assert_eq!(answer(view.lookup(&e)), answer(l1.lookup(&e)), "{n}");
    }
    let e: E164 = "8613800000001".parse().expect("number");
    assert!(view.lookup(&e).is_none(), "removed number is gone");

    // The proxy's screen reads the layered view like a snapshot.
    let slot = Arc::new(arc_swap::ArcSwapOption::new(Some(Arc::new(view.clone()))));
    let screen = Policy::over(slot, CallerActions::default());
    let group = PeerGroup::default_group();
    let caller = Caller::Number("12025550100".parse().expect("number"));
    let v = screen.screen(&CallContext::for_caller(&caller, &group));
    assert_eq!(
        (v.action, v.reason, v.snapshot_version),
        (Action::Block, Reason::Listed, Some(2))
    );
    let caller = Caller::Number(e);
    let v = screen.screen(&CallContext::for_caller(&caller, &group));
    assert_eq!((v.action, v.reason), (Action::Allow, Reason::Unlisted));

    // Nothing changed: no file.
    assert!(delta(d, "none.fwb", &l1, &l1, &l0).is_none());
    assert!(!d.join("none.fwb").exists());

    // A delta over another base does not stack, nor does a base as a delta.
    let other = compile(d, "other.fwb", "+1,block,x,1,s\n", 9);
    assert!(matches!(
        Layered::new(layer("other", &other), vec![layer("d1", &d1)], 2),
        Err(LayerError::WrongBase { .. })
    ));
    assert!(matches!(
        Layered::new(layer("l0", &l0), vec![layer("l1", &l1)], 2),
        Err(LayerError::NotADelta(_))
    ));
    assert!(matches!(
        Layered::new(layer("d1", &d1), vec![], 2),
        Err(LayerError::BaseIsDelta(_))
    ));
}

#[test]
fn a_delta_over_budget_is_abandoned() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let rows: String = (0..2000)
        .map(|i| format!("+1202555{i:04},block,robo,70,ftc\n"))
        .collect();
    let l0 = compile(d, "l0.fwb", "+1,block,x,1,s\n", 1);
    let l1 = compile(d, "l1.fwb", &rows, 2);
    let header = DeltaHeader {
        version: 2,
        created: 1,
        base_version: 1,
        base_hash: l0.hash(),
    };
    let out = d.join("big.fwb");
    let err = compile_delta(&l0, &l1, header, 200, &out).unwrap_err();
    assert!(matches!(err, DeltaError::TooLarge(200)), "{err}");
    assert!(!out.exists());
}

/// A random list: entries over the digits 1 and 2 (so keys collide and nest a lot).
fn list() -> impl Strategy<Value = Vec<(String, bool, u8, u8)>> {
    prop::collection::vec(("[12]{1,6}", any::<bool>(), 0u8..4, 0u8..3), 0..24)
}

fn csv(list: &[(String, bool, u8, u8)]) -> String {
    let actions = ["allow", "tag", "warn", "block"];
    let cats = ["a", "b", ""];
    list.iter()
        .map(|(digits, prefix, action, cat)| {
            format!(
                "+{digits}{},{},{},{},s{}\n",
                if *prefix { "*" } else { "" },
                actions[*action as usize],
                cats[*cat as usize],
                10 * action,
                cat
            )
        })
        .collect()
}

type List = Vec<(String, bool, u8, u8)>;

/// Lists `l[0]`, `l[1]`, `l[2]` published in turn: the layered view (the first as base, the
/// two deltas on top) and the third list compiled whole, which the view must match.
fn three_versions(d: &Path, l: [&List; 3]) -> (Layered, Arc<Snapshot>) {
    let s0 = compile(d, "0.fwb", &csv(l[0]), 1);
    let s1 = compile(d, "1.fwb", &csv(l[1]), 2);
    let s2 = compile(d, "2.fwb", &csv(l[2]), 3);
    let mut deltas = vec![];
    if let Some(x) = delta(d, "d1.fwb", &s0, &s1, &s0) {
        deltas.push(layer("d1", &x));
    }
    if let Some(x) = delta(d, "d2.fwb", &s1, &s2, &s0) {
        deltas.push(layer("d2", &x));
    }
    let view = Layered::new(layer("0", &s0), deltas, 3).expect("stack");
    (view, s2)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn base_plus_deltas_answers_like_the_whole_list(
        l0 in list(), l1 in list(), l2 in list(), queries in prop::collection::vec("[12]{1,8}", 1..40)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (view, s2) = three_versions(dir.path(), [&l0, &l1, &l2]);
        for q in &queries {
            let e: E164 = q.parse().expect("number");
            prop_assert_eq!(answer(view.lookup(&e)), answer(s2.lookup(&e)), "query {}", q);
        }
    }
}

/// A list dense in one allocation block (`+4420 xxxx`), so that the base and the deltas
/// hold leaves (arrays below 512 numbers, bitmaps above), plus a few prefixes over it.
fn dense_list() -> impl Strategy<Value = Vec<(String, bool, u8, u8)>> {
    (
        prop::collection::vec((0u16..900, 0u8..4, 0u8..3), 0..900),
        prop::collection::vec(("4420[0-9]{0,3}", 0u8..4), 0..3),
    )
        .prop_map(|(numbers, prefixes)| {
            let mut l: Vec<_> = numbers
                .into_iter()
                .map(|(t, a, c)| (format!("4420{t:04}"), false, a, c))
                .collect();
            l.extend(prefixes.into_iter().map(|(p, a)| (p, true, a, 0)));
            l
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, .. ProptestConfig::default() })]

    #[test]
    fn dense_blocks_layer_like_the_whole_list(
        l0 in dense_list(), l1 in dense_list(), l2 in dense_list(),
        queries in prop::collection::vec(0u16..1000, 1..200)
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let (view, s2) = three_versions(dir.path(), [&l0, &l1, &l2]);
        for t in &queries {
            let q = format!("4420{t:04}");
            let e: E164 = q.parse().expect("number");
            prop_assert_eq!(answer(view.lookup(&e)), answer(s2.lookup(&e)), "query {}", q);
        }
    }
}
