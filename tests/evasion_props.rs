//! The evasion rule as a property: no decoration of a listed number in the URI's user part
//! yields `allow`.
//!
//! Decorations are generated around the listed numbers `+12025550100` (nanp) and
//! `+8613800000001` (cn): the number in any of its written forms (E.164, national, with an
//! international prefix, `+0…`), each digit ASCII, fullwidth, Arabic-Indic, Extended
//! Arabic-Indic, Devanagari or percent-encoded, the plus sign fullwidth or escaped, visual
//! separators anywhere, a dialling code before it (`*67`, `*82`, `#31#`, `*31#`) and a pause
//! or parameter after it (`p123`, `w1`, `,5`, `#`, `%00`, `;ext=12`, `x9`). Two levels:
//!
//! - the normalizer reads every decoration to the listed number, strictly or leniently;
//! - a `ProxyCore` over the rule chain (`Policy`) of a compiled list answers every such INVITE 608
//!   and forwards none of them.

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use fraudwall::blocklist::{compile_csv_text, CompileOptions, Snapshot};
use fraudwall::numbers::{Caller, NumberingProfile, E164};
use fraudwall::policy::{CallerActions, Policy, Reason};
use fraudwall::proxy::core::{CoreConfig, Disposition, ProxyCore};
use fraudwall::proxy::{Inbound, Transport};
use proptest::prelude::*;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

const NANP: &str = "12025550100";
const CN: &str = "8613800000001";

/// A listed number as written before decoration, and the profiles that read it so.
#[derive(Debug, Clone)]
struct Base {
    /// The E.164 digits it stands for.
    e164: &'static str,
    /// The written form: digits, optionally `+` first.
    text: String,
    profiles: &'static [&'static str],
}

const ALL: &[&str] = &["cn", "nanp", "generic"];

/// Written forms of both listed numbers: international ones read under every profile,
/// national ones under their own.
fn base() -> impl Strategy<Value = Base> {
    let international = prop_oneof![Just(NANP), Just(CN)].prop_flat_map(|e164| {
        prop_oneof![
            Just(format!("+{e164}")),
            Just(format!("+0{e164}")),
            Just(format!("+00{e164}")),
            Just(format!("00{e164}")),
            Just(format!("011{e164}")),
        ]
        .prop_map(move |text| Base {
            e164,
            text,
            profiles: ALL,
        })
    });
    let national = prop_oneof![
        Just((NANP, NANP, &["nanp"][..])),
        Just((CN, CN, &["cn"][..])),
        Just(("2025550100", NANP, &["nanp"][..])),
        Just(("02025550100", NANP, &["nanp"][..])),
        Just(("13800000001", CN, &["cn"][..])),
        Just(("013800000001", CN, &["cn"][..])),
    ]
    .prop_map(|(text, e164, profiles)| Base {
        e164,
        text: text.to_string(),
        profiles,
    });
    prop_oneof![3 => international, 1 => national]
}

/// How one digit is written.
fn digit(d: u8, style: u8) -> String {
    let v = u32::from(d - b'0');
    let from = |zero: u32| char::from_u32(zero + v).expect("a digit").to_string();
    match style % 7 {
        0 => (d as char).to_string(),
        1 => from('０' as u32),
        2 => from('٠' as u32),
        3 => from('۰' as u32),
        4 => from('०' as u32),
        // Percent-encoded: ASCII, or fullwidth in UTF-8.
        5 => format!("%3{}", d as char),
        _ => from('０' as u32)
            .bytes()
            .map(|b| format!("%{b:02X}"))
            .collect(),
    }
}

const PLUS: [&str; 4] = ["+", "＋", "%2B", "%EF%BC%8B"];
const SEPARATORS: [&str; 4] = ["-", ".", "(", ")"];
const PREFIXES: [&str; 7] = ["", "*67", "*82", "#31#", "*31#", "%2A67", "*67*82"];
const SUFFIXES: [&str; 10] = [
    "", "p123", "w1", "%2C5", "#", "%00", ";ext=12", "x9", "%23", "P",
];

/// A decoration: styles per character, separators, a dialling code and a tail.
#[derive(Debug, Clone)]
struct Decoration {
    styles: Vec<u8>,
    separators: Vec<(usize, usize)>,
    plus: usize,
    prefix: usize,
    suffix: usize,
}

fn decoration() -> impl Strategy<Value = Decoration> {
    (
        proptest::collection::vec(any::<u8>(), 16),
        proptest::collection::vec((0..18usize, 0..SEPARATORS.len()), 0..4),
        0..PLUS.len(),
        0..PREFIXES.len(),
        0..SUFFIXES.len(),
    )
        .prop_map(|(styles, separators, plus, prefix, suffix)| Decoration {
            styles,
            separators,
            plus,
            prefix,
            suffix,
        })
}

/// The decorated user part.
fn decorate(base: &Base, d: &Decoration) -> String {
    let mut out = String::from(PREFIXES[d.prefix]);
    for (i, b) in base.text.bytes().enumerate() {
        for &(at, sep) in &d.separators {
            if at == i {
                out.push_str(SEPARATORS[sep]);
            }
        }
        if b == b'+' {
            out.push_str(PLUS[d.plus]);
        } else {
            out.push_str(&digit(b, d.styles[i % d.styles.len()]));
        }
    }
    out.push_str(SUFFIXES[d.suffix]);
    out
}

/// The URI the decorated user part travels in.
fn uri(user: &str, form: usize) -> String {
    match form % 3 {
        0 => format!("sip:{user}@192.0.2.1"),
        1 => format!("sip:{user}@192.0.2.1;user=phone"),
        _ => format!("sip:{user}"),
    }
}

fn profile(name: &str) -> NumberingProfile {
    NumberingProfile::by_name(name).expect("shipped profile")
}

/// One core per profile over one compiled list holding both numbers as block.
fn cores() -> &'static [(&'static str, ProxyCore)] {
    static CORES: OnceLock<(tempfile::TempDir, Vec<(&'static str, ProxyCore)>)> = OnceLock::new();
    let (_, cores) = CORES.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("list.fwb");
        let csv = format!(
            "number,action,category,score,source\n\
             +{NANP},block,impersonation,95,police\n\
             +{CN},block,impersonation,95,police\n"
        );
        let opts = CompileOptions {
            version: Some(1),
            ..CompileOptions::default()
        };
        compile_csv_text(&csv, &opts, &path).expect("list compiles");
        let snapshot = Arc::new(Snapshot::open(&path).expect("list opens"));
        let cores = ALL
            .iter()
            .map(|&name| {
                let slot = Arc::new(ArcSwapOption::from(Some(Arc::clone(&snapshot))));
                let screen = Arc::new(Policy::over(slot, CallerActions::default()));
                let mut config = CoreConfig::default();
                config.proxy.numbering_profile = name.to_string();
                (name, ProxyCore::new(config, screen).expect("core config"))
            })
            .collect();
        (dir, cores)
    });
    cores
}

fn invite(from_uri: &str) -> Bytes {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    Bytes::from(format!(
        "INVITE sip:+15550001@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-ev{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <{from_uri}>;tag=f{n}\r\n\
         To: <sip:+15550001@127.0.0.1>\r\n\
         Call-ID: ev{n}@192.0.2.1\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// The normalizer reads every decoration to the listed number: strictly
    /// ([`Caller::Number`]) or as a [`Caller::Decorated`] candidate.
    #[test]
    fn every_decoration_reads_as_the_listed_number(
        base in base(),
        d in decoration(),
        form in 0..3usize,
    ) {
        let want: E164 = base.e164.parse().expect("listed number");
        let raw = uri(&decorate(&base, &d), form);
        for &name in base.profiles {
            let got = match profile(name).normalize(raw.as_bytes()) {
                Caller::Number(n) | Caller::Decorated { lenient: n, .. } => Some(n),
                Caller::Anonymous | Caller::Invalid(_) => None,
            };
            prop_assert_eq!(got, Some(want), "{} under {}", raw, name);
        }
    }

    /// End to end through the protocol core: every decorated INVITE from a listed number is
    /// answered 608, none is forwarded, and the decision names the entry.
    #[test]
    fn no_decoration_of_a_listed_number_is_allowed(
        base in base(),
        d in decoration(),
        form in 0..3usize,
    ) {
        let raw = uri(&decorate(&base, &d), form);
        for (name, core) in cores().iter().filter(|(n, _)| base.profiles.contains(n)) {
            let mut out = Vec::new();
            let o = core.handle(
                Inbound {
                    data: invite(&raw),
                    source: "192.0.2.1:5060".parse().expect("address"),
                    local: "127.0.0.1:5060".parse().expect("address"),
                    transport: Transport::Udp,
                    verified_peer: false,
                    queued: None,
                },
                Instant::now(),
                &mut out,
            );
            prop_assert_eq!(&o.disposition, &Disposition::Answered(608), "{} under {}", raw, name);
            prop_assert_eq!(out.len(), 1);
            let decision = o.decision.expect("a screened call");
            let entry = format!("+{}", base.e164);
            prop_assert_eq!(decision.verdict.entry.as_deref(), Some(entry.as_str()));
            prop_assert!(
                matches!(decision.verdict.reason, Reason::Listed | Reason::Evasion),
                "{:?}", decision.verdict.reason
            );
        }
    }
}

/// The rule's two edges, named: a decorated number is acted on as `evasion`, a clean one as
/// `listed`, and a decoration of an unlisted number stays invalid.
#[test]
fn evasion_is_its_own_reason_and_unlisted_decorations_stay_invalid() {
    let (_, nanp) = cores()
        .iter()
        .find(|(n, _)| *n == "nanp")
        .expect("nanp core");
    let reason = |uri: &str| {
        let mut out = Vec::new();
        let o = nanp.handle(
            Inbound {
                data: invite(uri),
                source: "192.0.2.1:5060".parse().expect("address"),
                local: "127.0.0.1:5060".parse().expect("address"),
                transport: Transport::Udp,
                verified_peer: false,
                queued: None,
            },
            Instant::now(),
            &mut out,
        );
        let d = o.decision.expect("a screened call");
        (o.disposition, d.verdict.reason)
    };
    assert_eq!(
        reason("sip:+12025550100@x"),
        (Disposition::Answered(608), Reason::Listed)
    );
    assert_eq!(
        reason("sip:*672025550100@x"),
        (Disposition::Answered(608), Reason::Evasion)
    );
    assert_eq!(
        reason("sip:*672025550199@x"),
        (Disposition::Forwarded, Reason::Invalid)
    );
    assert_eq!(
        reason("sip:alice@x"),
        (Disposition::Forwarded, Reason::Invalid)
    );
}
