//! The rule chain, sans I/O: every stage, the precedence between each pair of adjacent
//! stages (the earlier one wins), fail open per stage, `explain`, and the property that with
//! empty subscriber and protected lists the chain gives exactly the single-lookup verdict.

use arc_swap::ArcSwapOption;
use fraudwall::blocklist::{compile_csv_text, Action, CompileOptions, EntryKey, Snapshot};
use fraudwall::numbers::{Caller, InvalidReason, E164};
use fraudwall::peers::PeerGroup;
use fraudwall::policy::lists::{
    Level, PersonalAction, PersonalEntry, ProtectedLookup, ProtectedMatch, SubscriberAnswer,
    SubscriberLookup,
};
use fraudwall::policy::{
    CallContext, Callee, CallerActions, Policy, PolicyConfig, Reason, Rule, Rules, Screen,
    StageOutcome, Verstat,
};
use proptest::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;

const BLOCKLIST: &str = "number,action,category,score,source\n\
                         +8613800000001,block,impersonation,95,police\n\
                         +8613800000002,tag,loan,70,reports\n\
                         +8613800000003,warn,investment,60,reports\n\
                         +8617012*,block,fraud-range,80,reports\n\
                         +8617012000009,allow,,0,whitelist\n\
                         +8695588,block,bank-spoof,90,reports\n";

/// A subscriber list in a map: (subscriber, entry digits, exact) -> action, plus levels.
#[derive(Default)]
struct Subs {
    personal: BTreeMap<(String, String, bool), PersonalAction>,
    levels: BTreeMap<String, Level>,
    panics: bool,
}

impl SubscriberLookup for Subs {
    fn version(&self) -> u64 {
        11
    }
    fn lookup(&self, subscriber: &E164, caller: &E164) -> SubscriberAnswer {
        assert!(!self.panics, "corrupt subscriber entry");
        let s = subscriber.digits().to_string();
        let c = caller.digits();
        let mut personal = None;
        for len in (1..=c.len()).rev() {
            for exact in [true, false] {
                if exact && len != c.len() {
                    continue;
                }
                let key = (s.clone(), c[..len].to_string(), exact);
                if let Some(a) = self.personal.get(&key) {
                    let entry = if exact {
                        EntryKey::exact(&c.as_bytes()[..len])
                    } else {
                        EntryKey::prefix(&c.as_bytes()[..len])
                    };
                    personal = entry.map(|entry| PersonalEntry { action: *a, entry });
                    break;
                }
            }
            if personal.is_some() {
                break;
            }
        }
        SubscriberAnswer {
            personal,
            level: self.levels.get(&s).copied(),
        }
    }
}

/// A protected list: prefix digits -> (entitled, category).
#[derive(Default)]
struct Prot(BTreeMap<String, (String, String)>);

impl ProtectedLookup for Prot {
    fn version(&self) -> u64 {
        5
    }
    fn lookup(&self, caller: &E164) -> Option<ProtectedMatch<'_>> {
        let c = caller.digits();
        (1..=c.len()).rev().find_map(|len| {
            self.0
                .get(&c[..len])
                .map(|(entitled, category)| ProtectedMatch {
                    entry: EntryKey::prefix(&c.as_bytes()[..len]).expect("digits"),
                    entitled,
                    category,
                })
        })
    }
}

const ALICE: &str = "8613900000001";
const BOB: &str = "8613900000002";

struct World {
    policy: Policy<Snapshot, Subs, Prot>,
    _dir: tempfile::TempDir,
}

fn world(subs: Subs, prot: Prot, config: PolicyConfig) -> World {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("list.fwb");
    let opts = CompileOptions {
        version: Some(3),
        ..CompileOptions::default()
    };
    compile_csv_text(BLOCKLIST, &opts, &path).expect("compile");
    let snapshot = Arc::new(Snapshot::open(&path).expect("open"));
    let policy = Policy::new(
        Arc::new(ArcSwapOption::from(Some(snapshot))),
        Arc::new(ArcSwapOption::from(Some(Arc::new(subs)))),
        Arc::new(ArcSwapOption::from(Some(Arc::new(prot)))),
        config.compile().expect("valid policy"),
        CallerActions {
            anonymous: Action::Tag,
            invalid: Action::Allow,
        },
    );
    World { policy, _dir: dir }
}

fn standard_subs() -> Subs {
    let mut s = Subs::default();
    // Alice blocks one number, allows a listed one, and blocks a range.
    s.personal.insert(
        (ALICE.into(), "8618800000007".into(), true),
        PersonalAction::Block,
    );
    s.personal.insert(
        (ALICE.into(), "8613800000001".into(), true),
        PersonalAction::Allow,
    );
    s.personal
        .insert((ALICE.into(), "86171".into(), false), PersonalAction::Block);
    s
}

fn standard_prot() -> Prot {
    let mut p = Prot::default();
    p.0.insert("8695588".into(), ("bank-icbc|core".into(), String::new()));
    p.0.insert(
        "86110".into(),
        (String::new(), "police-impersonation".into()),
    );
    p
}

fn config() -> PolicyConfig {
    PolicyConfig {
        home_country: vec!["86".into()],
        verstat_failed: Action::Tag,
        international_origin: Action::Tag,
        ..PolicyConfig::default()
    }
}

fn group(name: &str, international: bool) -> PeerGroup {
    PeerGroup {
        name: name.into(),
        trust_identity: true,
        international,
        profile: None,
    }
}

fn num(s: &str) -> E164 {
    s.parse().expect("number")
}

struct Call {
    caller: Caller,
    callee: Option<E164>,
    callee_user: &'static [u8],
    peer: PeerGroup,
    verstat: Verstat,
}

impl Call {
    fn new(caller: &str, callee: &str) -> Call {
        Call {
            caller: Caller::Number(num(caller)),
            callee: Some(num(callee)),
            callee_user: b"",
            peer: group("core", false),
            verstat: Verstat::Absent,
        }
    }
    fn entering(mut self, name: &str, international: bool) -> Call {
        self.peer = group(name, international);
        self
    }
    fn verstat(mut self, v: Verstat) -> Call {
        self.verstat = v;
        self
    }
    fn judge(&self, w: &World) -> fraudwall::policy::Verdict {
        w.policy.screen(&self.context())
    }
    fn context(&self) -> CallContext<'_> {
        let mut c = CallContext::for_caller(&self.caller, &self.peer);
        c.callee = Callee {
            user: self.callee_user,
            number: self.callee,
        };
        c.verstat = self.verstat;
        c
    }
}

fn rule_action(v: &fraudwall::policy::Verdict) -> (Rule, Action) {
    (v.rule, v.action)
}

#[test]
fn protected_callee_is_never_screened_and_beats_impersonation() {
    let w = world(standard_subs(), standard_prot(), config());
    // A listed caller calling 110 (as dialled, and as +86110).
    let mut c = Call::new("+8613800000001", "+86110");
    assert_eq!(
        rule_action(&c.judge(&w)),
        (Rule::ProtectedCallee, Action::Allow)
    );
    c.callee = None;
    c.callee_user = b"110";
    assert_eq!(
        rule_action(&c.judge(&w)),
        (Rule::ProtectedCallee, Action::Allow)
    );
    // Adjacent pair 1-2: an impersonated number calling an emergency number still rings.
    let c = Call::new("+86110", "+86110").entering("intl-gw", true);
    assert_eq!(
        rule_action(&c.judge(&w)),
        (Rule::ProtectedCallee, Action::Allow)
    );
}

#[test]
fn impersonation_blocks_unentitled_groups_and_passes_entitled_ones() {
    let w = world(standard_subs(), standard_prot(), config());
    let v = Call::new("+8695588", BOB)
        .entering("other-carrier", false)
        .judge(&w);
    assert_eq!(rule_action(&v), (Rule::Impersonation, Action::Block));
    assert_eq!(v.reason, Reason::Impersonation);
    assert_eq!(v.category.as_deref(), Some("impersonation"));
    // The list's own category; empty entitled = nobody (Do Not Originate).
    let v = Call::new("+86110", BOB).judge(&w);
    assert_eq!(v.category.as_deref(), Some("police-impersonation"));
    assert_eq!(v.snapshot_version, Some(5));
    // Entitled: passes on, and the global list then decides (it lists +8695588).
    let v = Call::new("+8695588", BOB)
        .entering("bank-icbc", false)
        .judge(&w);
    assert_eq!(rule_action(&v), (Rule::Global, Action::Block));
    // Adjacent pair 2-3: from an international gateway it is impersonation, not a spoof.
    let v = Call::new("+8695588", BOB)
        .entering("intl-gw", true)
        .judge(&w);
    assert_eq!(v.rule, Rule::Impersonation);
}

#[test]
fn a_domestic_number_from_an_international_group_is_spoofed() {
    let w = world(standard_subs(), standard_prot(), config());
    let v = Call::new("+8618800000099", BOB)
        .entering("intl-gw", true)
        .judge(&w);
    assert_eq!(rule_action(&v), (Rule::InternationalSpoof, Action::Block));
    assert_eq!(v.category.as_deref(), Some("spoofed-domestic"));
    // Domestic group: no spoof.
    let v = Call::new("+8618800000099", BOB).judge(&w);
    assert_eq!(rule_action(&v), (Rule::Default, Action::Allow));
    // Adjacent pair 3-4: Alice allowing a number does not let it in spoofed from abroad.
    let v = Call::new("+8613800000001", ALICE)
        .entering("intl-gw", true)
        .judge(&w);
    assert_eq!(v.rule, Rule::InternationalSpoof);
    // Configurable: warn.
    let w = world(
        Subs::default(),
        Prot::default(),
        PolicyConfig {
            international_spoof: Action::Warn,
            ..config()
        },
    );
    let v = Call::new("+8618800000099", BOB)
        .entering("intl-gw", true)
        .judge(&w);
    assert_eq!(rule_action(&v), (Rule::InternationalSpoof, Action::Warn));
}

#[test]
fn personal_entries_win_over_the_global_list() {
    let w = world(standard_subs(), standard_prot(), config());
    // Personal block of an unlisted number.
    let v = Call::new("+8618800000007", ALICE).judge(&w);
    assert_eq!(rule_action(&v), (Rule::Personal, Action::Block));
    assert_eq!(v.entry.as_deref(), Some("+8618800000007"));
    // Adjacent pair 4-5: personal allow over a global block.
    let v = Call::new("+8613800000001", ALICE).judge(&w);
    assert_eq!(rule_action(&v), (Rule::Personal, Action::Allow));
    assert_eq!(v.reason, Reason::Personal);
    // A personal prefix.
    let v = Call::new("+8617100000000", ALICE).judge(&w);
    assert_eq!(rule_action(&v), (Rule::Personal, Action::Block));
    assert_eq!(v.entry.as_deref(), Some("+86171*"));
    // Another callee: the global list.
    let v = Call::new("+8613800000001", BOB).judge(&w);
    assert_eq!(rule_action(&v), (Rule::Global, Action::Block));
}

#[test]
fn the_callee_level_adjusts_only_what_the_global_list_decides() {
    let mut subs = Subs::default();
    subs.levels.insert("8613900000010".into(), Level::Allow);
    subs.levels.insert("8613900000011".into(), Level::Tag);
    subs.levels.insert("8613900000012".into(), Level::Block);
    let w = world(subs, standard_prot(), config());
    let judge = |caller: &str, callee: &str| rule_action(&Call::new(caller, callee).judge(&w));
    // Opted out: no labels, no blocks.
    assert_eq!(
        judge("+8613800000001", "+8613900000010"),
        (Rule::Global, Action::Allow)
    );
    assert_eq!(
        judge("+8613800000002", "+8613900000010"),
        (Rule::Global, Action::Allow)
    );
    // Label but never block or divert.
    assert_eq!(
        judge("+8613800000001", "+8613900000011"),
        (Rule::Global, Action::Tag)
    );
    assert_eq!(
        judge("+8613800000003", "+8613900000011"),
        (Rule::Global, Action::Tag)
    );
    // Block whatever the list would tag or warn.
    assert_eq!(
        judge("+8613800000002", "+8613900000012"),
        (Rule::Global, Action::Block)
    );
    assert_eq!(
        judge("+8613800000003", "+8613900000012"),
        (Rule::Global, Action::Block)
    );
    // A listed allow stays allow; an unlisted caller is not touched by a level.
    assert_eq!(
        judge("+8617012000009", "+8613900000012"),
        (Rule::Global, Action::Allow)
    );
    assert_eq!(
        judge("+8618800000099", "+8613900000012"),
        (Rule::Default, Action::Allow)
    );
    let v = Call::new("+8613800000002", "+8613900000012").judge(&w);
    assert_eq!(v.level, Some(Level::Block));
    // A level does not reach the impersonation stage (pair 2-5).
    assert_eq!(
        judge("+86110", "+8613900000010"),
        (Rule::Impersonation, Action::Block)
    );
}

#[test]
fn verstat_failed_gets_its_action_after_the_global_list() {
    let w = world(standard_subs(), standard_prot(), config());
    let v = Call::new("+8618800000099", BOB)
        .verstat(Verstat::Failed)
        .judge(&w);
    assert_eq!(rule_action(&v), (Rule::Verstat, Action::Tag));
    assert_eq!(v.reason, Reason::VerstatFailed);
    // Adjacent pair 5-6: a listed caller is decided by the global list.
    let v = Call::new("+8613800000001", BOB)
        .verstat(Verstat::Failed)
        .judge(&w);
    assert_eq!(rule_action(&v), (Rule::Global, Action::Block));
    // Passed, no validation, unknown: no assertion to act on.
    for vs in [Verstat::Passed, Verstat::NoValidation, Verstat::Unknown] {
        let v = Call::new("+8618800000099", BOB).verstat(vs).judge(&w);
        assert_eq!(v.rule, Rule::Default, "{vs:?}");
    }
    // Default action allow: passes on.
    let w = world(Subs::default(), Prot::default(), PolicyConfig::default());
    let v = Call::new("+8618800000099", BOB)
        .verstat(Verstat::Failed)
        .judge(&w);
    assert_eq!(rule_action(&v), (Rule::Default, Action::Allow));
}

#[test]
fn anonymous_and_invalid_then_international_origin_then_default() {
    let w = world(standard_subs(), standard_prot(), config());
    let mut c = Call::new("+8618800000099", BOB);
    c.caller = Caller::Anonymous;
    assert_eq!(rule_action(&c.judge(&w)), (Rule::Anonymous, Action::Tag));
    // Adjacent pair 6-7: verstat decides before anonymous.
    c.verstat = Verstat::Failed;
    assert_eq!(c.judge(&w).rule, Rule::Verstat);
    let mut c = Call::new("+8618800000099", BOB);
    c.caller = Caller::Invalid(InvalidReason::TooShort);
    assert_eq!(rule_action(&c.judge(&w)), (Rule::Invalid, Action::Allow));
    // International origin: tagged with the country label.
    let v = Call::new("+959123456789", BOB)
        .entering("intl-gw", true)
        .judge(&w);
    assert_eq!(rule_action(&v), (Rule::InternationalOrigin, Action::Tag));
    assert_eq!(v.label.as_deref(), Some("Intl: Myanmar"));
    // Adjacent pair 7-8: an anonymous call from abroad is anonymous.
    let mut c = Call::new("+959123456789", BOB).entering("intl-gw", true);
    c.caller = Caller::Anonymous;
    assert_eq!(c.judge(&w).rule, Rule::Anonymous);
    // Pair 8-9: a domestic group gets no origin label: default.
    let v = Call::new("+959123456789", BOB).judge(&w);
    assert_eq!(rule_action(&v), (Rule::Default, Action::Allow));
    assert_eq!(v.reason, Reason::Unlisted);
    assert_eq!(v.snapshot_version, Some(3));
}

#[test]
fn a_panicking_stage_fails_open_under_its_own_name() {
    let subs = Subs {
        panics: true,
        ..Subs::default()
    };
    let w = world(subs, standard_prot(), config());
    let v = Call::new("+8613800000001", BOB).judge(&w);
    assert_eq!(rule_action(&v), (Rule::Personal, Action::Allow));
    assert_eq!(v.reason, Reason::InternalError);
    let e = w
        .policy
        .explain(&Call::new("+8613800000001", BOB).context());
    assert_eq!(
        e.stages.last().map(|s| s.outcome),
        Some(StageOutcome::Failed)
    );
}

#[test]
fn disabled_rules_pass_and_explain_lists_every_stage_up_to_the_decision() {
    let w = world(
        standard_subs(),
        standard_prot(),
        PolicyConfig {
            disabled_rules: vec![Rule::Personal],
            ..config()
        },
    );
    let e = w
        .policy
        .explain(&Call::new("+8613800000001", ALICE).context());
    assert_eq!(
        (e.verdict.rule, e.verdict.action),
        (Rule::Global, Action::Block)
    );
    let seen: Vec<_> = e.stages.iter().map(|s| (s.rule, s.outcome)).collect();
    assert_eq!(
        seen,
        vec![
            (Rule::ProtectedCallee, StageOutcome::Passed),
            (Rule::Impersonation, StageOutcome::Passed),
            (Rule::InternationalSpoof, StageOutcome::Passed),
            (Rule::Personal, StageOutcome::Disabled),
            (Rule::Global, StageOutcome::Decided),
        ]
    );
    assert!(
        e.stages[4].saw.contains("+8613800000001"),
        "{:?}",
        e.stages[4]
    );
    let json = serde_json::to_value(&e).expect("json");
    assert_eq!(json["stages"][4]["rule"], "global");
    assert_eq!(json["stages"][4]["outcome"], "decided");
    let bad = PolicyConfig {
        disabled_rules: vec![Rule::Default],
        ..config()
    };
    assert_eq!(bad.compile().unwrap_err().key, "policy.disabled_rules");
}

#[test]
fn policy_config_errors_name_the_key() {
    let e = |c: PolicyConfig| c.compile().unwrap_err().key;
    assert_eq!(
        e(PolicyConfig {
            home_country: vec!["086".into()],
            ..config()
        }),
        "policy.home_country"
    );
    assert_eq!(
        e(PolicyConfig {
            protected_callees: vec!["11a".into()],
            ..config()
        }),
        "policy.protected_callees"
    );
    assert_eq!(
        e(PolicyConfig {
            international_origin: Action::Block,
            ..config()
        }),
        "policy.international_origin"
    );
    let parsed: PolicyConfig =
        toml::from_str("home_country = [\"86\"]\ndisabled_rules = [\"international-origin\"]")
            .expect("toml");
    assert_eq!(parsed.disabled_rules, vec![Rule::InternationalOrigin]);
    assert!(toml::from_str::<PolicyConfig>("disabled_rules = [\"nope\"]").is_err());
}

/// Today's verdict: one blocklist lookup, then the caller actions (the model the chain must
/// reproduce with empty subscriber and protected lists).
fn single_lookup(snapshot: &Snapshot, callers: CallerActions, caller: &Caller) -> (Action, Reason) {
    match caller {
        Caller::Number(n) => match snapshot.lookup(n) {
            Some(m) if !m.tombstone => (m.action, Reason::Listed),
            _ => (Action::Allow, Reason::Unlisted),
        },
        Caller::Decorated { lenient, .. } => match snapshot.lookup(lenient) {
            Some(m) if !m.tombstone && m.action > callers.invalid => (m.action, Reason::Evasion),
            _ => (callers.invalid, Reason::Invalid),
        },
        Caller::Anonymous => (callers.anonymous, Reason::Anonymous),
        Caller::Invalid(_) => (callers.invalid, Reason::Invalid),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]
    #[test]
    fn with_empty_lists_the_chain_is_the_single_lookup(
        tail in 0u32..40,
        prefix in prop::sample::select(vec!["+86138000000", "+86170120000", "+1202555", "+4420", "+86955"]),
        kind in 0u8..4,
        callee_tail in 0u32..100,
        verstat in prop::sample::select(Verstat::ALL.to_vec()),
        anonymous in prop::sample::select(Action::ALL.to_vec()),
        invalid in prop::sample::select(Action::ALL.to_vec()),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("l.fwb");
        compile_csv_text(BLOCKLIST, &CompileOptions::default(), &path).expect("compile");
        let snapshot = Arc::new(Snapshot::open(&path).expect("open"));
        let callers = CallerActions { anonymous, invalid };
        let policy: Policy<Snapshot, Subs, Prot> = Policy::new(
            Arc::new(ArcSwapOption::from(Some(Arc::clone(&snapshot)))),
            Arc::new(ArcSwapOption::from(Some(Arc::new(Subs::default())))),
            Arc::new(ArcSwapOption::from(Some(Arc::new(Prot::default())))),
            Rules::default(),
            callers,
        );
        let number: E164 = format!("{prefix}{tail:02}").parse().expect("number");
        let caller = match kind {
            0 | 1 => Caller::Number(number),
            2 => Caller::Anonymous,
            _ => Caller::Decorated { reason: InvalidReason::NotANumber, lenient: number },
        };
        let peer = PeerGroup::default_group();
        let callee: E164 = format!("+86139000{callee_tail:04}").parse().expect("callee");
        let mut call = CallContext::for_caller(&caller, &peer);
        call.callee = Callee { user: b"", number: Some(callee) };
        call.verstat = verstat;
        let v = policy.screen(&call);
        prop_assert_eq!((v.action, v.reason), single_lookup(&snapshot, callers, &caller));
    }
}
