//! The normalization table: real forms seen in carrier traffic, per profile.

use super::{Caller, InvalidReason, NumberingProfile, ProfileConfigError};
use InvalidReason::*;

/// What a row expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Num(&'static str),
    Anon,
    Bad(InvalidReason),
    /// Invalid as presented (the reason), a number when read leniently.
    Lenient(InvalidReason, &'static str),
}

fn outcome(c: Caller) -> Want {
    match c {
        Caller::Number(n) => Want::Num(Box::leak(n.to_string().into_boxed_str())),
        Caller::Anonymous => Want::Anon,
        Caller::Invalid(r) => Want::Bad(r),
        Caller::Decorated { reason, lenient } => {
            Want::Lenient(reason, Box::leak(lenient.to_string().into_boxed_str()))
        }
    }
}

fn check(profile: &str, table: &[(&[u8], Want)]) {
    let p = NumberingProfile::by_name(profile).expect("known profile");
    let mut failures = Vec::new();
    for &(raw, want) in table {
        let got = outcome(p.normalize(raw));
        if got != want {
            failures.push(format!(
                "{profile}: {:?} gave {got:?}, want {want:?}",
                String::from_utf8_lossy(raw)
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Forms every profile reads the same way: international numbers, URIs, anonymous callers.
const EVERY_PROFILE: &[(&[u8], Want)] = &[
    (
        b"sip:+8613800138000@10.0.0.1;user=phone",
        Want::Num("+8613800138000"),
    ),
    (
        b"<sip:+8613800138000@ims.example.cn;user=phone>",
        Want::Num("+8613800138000"),
    ),
    (b"SIP:+8613800138000@host", Want::Num("+8613800138000")),
    (
        b"\"Zhang San\" <sip:+8613800138000@10.0.0.1;user=phone>;tag=a73kszlfl",
        Want::Num("+8613800138000"),
    ),
    (b"\"a<b\" <tel:+8613800138000>", Want::Num("+8613800138000")),
    (b"<sip:+8613800138000@h", Want::Num("+8613800138000")),
    (
        b"sips:+8613800138000@host:5061;transport=tls",
        Want::Num("+8613800138000"),
    ),
    (
        b"sip:%2B8613800138000@host;user=phone",
        Want::Num("+8613800138000"),
    ),
    (
        b"sip:%2b86%31%33800138000@host",
        Want::Num("+8613800138000"),
    ),
    (
        b"sip:+86-138-0013-8000@host;user=phone",
        Want::Num("+8613800138000"),
    ),
    (
        b"sip:+8613800138000;cpc=ordinary@host;user=phone",
        Want::Num("+8613800138000"),
    ),
    (
        b"sip:+8613800138000;npdi;rn=+8613900000000@host;user=phone",
        Want::Num("+8613800138000"),
    ),
    (
        b"sip:+8613800138000:secret@host",
        Want::Num("+8613800138000"),
    ),
    (
        b"sip:+8613800138000@host;user=phone?Subject=x",
        Want::Num("+8613800138000"),
    ),
    (b"sip:+8613800138000", Want::Num("+8613800138000")),
    (b"+8613800138000@10.0.0.1", Want::Num("+8613800138000")),
    (
        b"sip:+12125550100@host;user=phone;verstat=TN-Validation-Passed",
        Want::Num("+12125550100"),
    ),
    (
        b"tel:+12125550100;verstat=TN-Validation-Passed",
        Want::Num("+12125550100"),
    ),
    (b"tel:+1-212-555-0100", Want::Num("+12125550100")),
    (b"TEL:+1.212.555.0100", Want::Num("+12125550100")),
    (b"tel:+1(212)555-0100;ext=12", Want::Num("+12125550100")),
    (
        b"tel:+1-212-555-0100;isub=1234;ext=5",
        Want::Num("+12125550100"),
    ),
    (
        b"tel:5550100;phone-context=+1-212",
        Want::Num("+12125550100"),
    ),
    (
        b"tel:555-0100;phone-context=%2B1212",
        Want::Num("+12125550100"),
    ),
    (
        b"sip:5550100;phone-context=+1212@host;user=phone",
        Want::Num("+12125550100"),
    ),
    (
        b"tel:+8613800138000;phone-context=+1212",
        Want::Num("+8613800138000"),
    ),
    (b"  +1 212 555 0100  ", Want::Num("+12125550100")),
    (b"+1 (212) 555-0100", Want::Num("+12125550100")),
    (b"+447700900123", Want::Num("+447700900123")),
    (b"tel:+44-7700-900123", Want::Num("+447700900123")),
    (b"+6834002", Want::Num("+6834002")),
    (b"+86 0755 1234 5678", Want::Num("+8675512345678")),
    (b"+86110", Want::Num("+86110")),
    (b"+8695555", Want::Num("+8695555")),
    (b"+864001234567", Want::Num("+864001234567")),
    // Anonymous and withheld.
    (b"", Want::Anon),
    (b"   ", Want::Anon),
    (b"<>", Want::Anon),
    (b"anonymous", Want::Anon),
    (b"Anonymous", Want::Anon),
    (b"ANONYMOUS", Want::Anon),
    (b"unknown", Want::Anon),
    (b"restricted", Want::Anon),
    (b"Private", Want::Anon),
    (b"withheld", Want::Anon),
    (b"unavailable", Want::Anon),
    (b"sip:anonymous@anonymous.invalid", Want::Anon),
    (b"<sip:anonymous@anonymous.invalid;user=phone>", Want::Anon),
    (b"sip:anonymous@localhost", Want::Anon),
    (b"sips:Anonymous@10.1.1.1:5061", Want::Anon),
    // A number at the anonymous host is still the number: it must not hide a listed caller.
    (
        b"sip:+8613800138000@anonymous.invalid",
        Want::Num("+8613800138000"),
    ),
    (b"sip:anonymous.invalid", Want::Anon),
    (b"sip:anonymous.invalid?x=1", Want::Anon),
    (
        b"\"Anonymous\" <sip:anonymous@anonymous.invalid>;tag=1",
        Want::Anon,
    ),
    (b"sip:unknown@192.0.2.1", Want::Anon),
    (b"tel:anonymous", Want::Anon),
    // Invalid.
    (b"sip:alice@example.com", Want::Bad(NotANumber)),
    (b"sip:+86138abc38000@host", Want::Bad(NotANumber)),
    (b"tel:+1-212-555-CALL", Want::Bad(NotANumber)),
    (
        b"+1 212 555 0100 x12",
        Want::Lenient(NotANumber, "+12125550100"),
    ),
    (
        b"+0447700900123",
        Want::Lenient(NotANumber, "+447700900123"),
    ),
    (
        b"++8613800138000",
        Want::Lenient(NotANumber, "+8613800138000"),
    ),
    (b"+", Want::Bad(NotANumber)),
    (b"-()-", Want::Bad(NotANumber)),
    (b"+12345", Want::Bad(TooShort)),
    (b"+44770090012345678", Want::Bad(TooLong)),
    (b"+8613800138000123", Want::Bad(TooLong)),
    (b"+123456789012345678901234567890123456", Want::Bad(TooLong)),
    (b"+1212555010", Want::Bad(TooShort)),
    (b"+121255501000", Want::Bad(TooLong)),
    // International form is checked by length: a spoofed NANP number whose area code or
    // exchange starts with 0/1 is still a key a fraud list can hold (see plan.rs).
    (b"+11125550100", Want::Num("+11125550100")),
    (b"+17010201857", Want::Num("+17010201857")),
    (b"+862123456789", Want::Num("+862123456789")),
    (b"+861380013800", Want::Bad(TooShort)),
    (b"\xff\xfe\x00\x01", Want::Bad(NotANumber)),
    (b"+86\xe4\xb8\xad138", Want::Bad(NotANumber)),
    (b"sip:\xff@host", Want::Bad(NotANumber)),
    (b"sip:%2@host", Want::Bad(MalformedUri)),
    (b"sip:%zz8613800138000@host", Want::Bad(MalformedUri)),
    (
        b"mailto:+8613800138000@example.com",
        Want::Bad(MalformedUri),
    ),
    (b"urn:service:sos", Want::Bad(MalformedUri)),
    (b"tel:5550100;phone-context=", Want::Bad(MalformedUri)),
    (b"tel:5550100;phone-context=+", Want::Bad(MalformedUri)),
    (b"tel:", Want::Bad(Empty)),
    (b"tel:;phone-context=+1212", Want::Bad(Empty)),
    (b"sip:@host", Want::Bad(Empty)),
    (b"sip:10.0.0.1:5060", Want::Bad(Empty)),
    (b"sip:", Want::Bad(Empty)),
    (b"sip:?a@b", Want::Bad(Empty)),
];

#[test]
fn every_profile_reads_international_forms_alike() {
    for profile in NumberingProfile::NAMES {
        check(profile, EVERY_PROFILE);
    }
}

#[test]
fn cn_national_forms() {
    check(
        "cn",
        &[
            // Mobiles, with and without trunk 0, and international without `+`.
            (b"13800138000", Want::Num("+8613800138000")),
            (b"013800138000", Want::Num("+8613800138000")),
            (b"138 0013 8000", Want::Num("+8613800138000")),
            (
                b"sip:13800138000@10.0.0.1;user=phone",
                Want::Num("+8613800138000"),
            ),
            (
                b"tel:13800138000;phone-context=ims.mnc000.mcc460.3gppnetwork.org",
                Want::Num("+8613800138000"),
            ),
            (b"8613800138000", Want::Num("+8613800138000")),
            (b"008613800138000", Want::Num("+8613800138000")),
            (b"0086-138-0013-8000", Want::Num("+8613800138000")),
            (b"sip:008613800138000@gw", Want::Num("+8613800138000")),
            (b"19912345678", Want::Num("+8619912345678")),
            (b"17012345678", Want::Num("+8617012345678")),
            // Geographic: Beijing 010, Shanghai 021, Shenzhen 0755, Guiyang 0851 (7 digits).
            (b"01012345678", Want::Num("+861012345678")),
            (b"010-1234-5678", Want::Num("+861012345678")),
            (b"(010) 12345678", Want::Num("+861012345678")),
            (b"02161234567", Want::Num("+862161234567")),
            (b"075512345678", Want::Num("+8675512345678")),
            (b"0755-2345678", Want::Num("+867552345678")),
            (b"08515123456", Want::Num("+868515123456")),
            (b"8675512345678", Want::Num("+8675512345678")),
            (
                b"tel:075512345678;phone-context=+86",
                Want::Num("+8675512345678"),
            ),
            (
                b"tel:75512345678;phone-context=+86",
                Want::Num("+8675512345678"),
            ),
            // Service and short codes: +86 followed by the code.
            (b"110", Want::Num("+86110")),
            (b"119", Want::Num("+86119")),
            (b"120", Want::Num("+86120")),
            (b"122", Want::Num("+86122")),
            (b"12315", Want::Num("+8612315")),
            (b"12345", Want::Num("+8612345")),
            (b"10086", Want::Num("+8610086")),
            (b"10010", Want::Num("+8610010")),
            (b"95555", Want::Num("+8695555")),
            (b"95588", Want::Num("+8695588")),
            (b"sip:95555@10.0.0.1", Want::Num("+8695555")),
            (b"4008123123", Want::Num("+864008123123")),
            (b"400-812-3123", Want::Num("+864008123123")),
            (b"8008123123", Want::Num("+868008123123")),
            // Another country, through the international prefix.
            (b"00447700900123", Want::Num("+447700900123")),
            (b"0012125550100", Want::Num("+12125550100")),
            // Invalid under cn.
            (b"1380013800", Want::Bad(TooShort)),
            (b"138001380000", Want::Bad(TooLong)),
            (b"0138001380", Want::Bad(TooShort)),
            (b"12345678", Want::Bad(NotANumber)),
            (b"1012345678", Want::Bad(NotANumber)),
            (b"61234567", Want::Bad(TooShort)),
            (b"0755123456", Want::Bad(TooShort)),
            (b"0755123456789", Want::Bad(TooLong)),
            (b"075502345678", Want::Bad(NotANumber)),
            (b"0", Want::Bad(TooShort)),
            (b"00", Want::Bad(TooShort)),
            (b"000000000", Want::Bad(NotANumber)),
            (b"400812312", Want::Bad(TooShort)),
            (b"0110", Want::Lenient(NotANumber, "+86110")),
        ],
    );
}

#[test]
fn nanp_national_forms() {
    check(
        "nanp",
        &[
            (b"2125550100", Want::Num("+12125550100")),
            (b"12125550100", Want::Num("+12125550100")),
            (b"(212) 555-0100", Want::Num("+12125550100")),
            (b"212.555.0100", Want::Num("+12125550100")),
            (b"1-212-555-0100", Want::Num("+12125550100")),
            (b"+1 (934) 947-9605", Want::Num("+19349479605")),
            (b"9349479605", Want::Num("+19349479605")),
            (b"8009423767", Want::Num("+18009423767")),
            (
                b"sip:2125550100@gw.example.com;user=phone",
                Want::Num("+12125550100"),
            ),
            (b"sip:12125550100@gw.example.com", Want::Num("+12125550100")),
            (b"tel:2125550100", Want::Num("+12125550100")),
            (b"01144 7700 900123", Want::Num("+447700900123")),
            (b"0118613800138000", Want::Num("+8613800138000")),
            // The dirty rows of the FTC list.
            (b"0", Want::Bad(NotANumber)),
            (b"000000000", Want::Bad(NotANumber)),
            (b"812", Want::Bad(TooShort)),
            (b"2991577", Want::Bad(TooShort)),
            (b"904842714", Want::Bad(TooShort)),
            (b"525556979284", Want::Bad(TooLong)),
            (b"4409063055440906271", Want::Bad(TooLong)),
            (b"07453775817", Want::Lenient(NotANumber, "+17453775817")),
            (b"1125550100", Want::Bad(NotANumber)),
            (b"2121550100", Want::Bad(NotANumber)),
            (b"13800138000", Want::Bad(NotANumber)),
        ],
    );
}

#[test]
fn generic_reads_no_national_forms() {
    check(
        "generic",
        &[
            (b"00447700900123", Want::Num("+447700900123")),
            (b"01144 7700 900123", Want::Num("+447700900123")),
            (b"0086 138 0013 8000", Want::Num("+8613800138000")),
            (b"447700900123", Want::Bad(NotANumber)),
            (b"2125550100", Want::Bad(NotANumber)),
            (b"013800138000", Want::Bad(NotANumber)),
            (
                b"tel:5550100;phone-context=example.com",
                Want::Bad(NotANumber),
            ),
            (
                b"tel:7700900123;phone-context=+44",
                Want::Num("+447700900123"),
            ),
        ],
    );
}

#[test]
fn configured_prefixes() {
    let p = NumberingProfile::by_name("cn")
        .expect("cn")
        .with_international_prefixes(&["00", "0011"])
        .expect("valid prefixes");
    assert_eq!(
        p.international_prefixes().collect::<Vec<_>>(),
        ["0011", "00"]
    );
    assert_eq!(
        p.normalize(b"0011447700900123"),
        Caller::Number("+447700900123".parse().unwrap())
    );
    assert_eq!(
        p.normalize(b"00447700900123"),
        Caller::Number("+447700900123".parse().unwrap())
    );

    let no_trunk = NumberingProfile::by_name("cn")
        .expect("cn")
        .with_trunk_prefix(None)
        .expect("no trunk is valid");
    assert_eq!(no_trunk.trunk_prefix(), None);
    assert_eq!(
        no_trunk.normalize(b"13800138000"),
        Caller::Number("+8613800138000".parse().unwrap())
    );
    assert!(matches!(
        no_trunk.normalize(b"075512345678"),
        Caller::Invalid(_)
    ));

    let plus_only = NumberingProfile::by_name("generic")
        .expect("generic")
        .with_international_prefixes(&[])
        .expect("empty list is valid");
    // Not a number to this profile, but a decorated one to the lenient reading.
    assert_eq!(
        plus_only.normalize(b"00447700900123"),
        Caller::Decorated {
            reason: NotANumber,
            lenient: "+447700900123".parse().unwrap()
        }
    );
    assert!(matches!(
        plus_only.normalize(b"+447700900123"),
        Caller::Number(_)
    ));
}

#[test]
fn bad_prefix_config_is_refused() {
    let cn = NumberingProfile::by_name("cn").expect("cn");
    assert_eq!(
        cn.clone().with_international_prefixes(&["00", "+00"]),
        Err(ProfileConfigError::BadInternationalPrefix("+00".into()))
    );
    assert_eq!(
        cn.clone().with_international_prefixes(&["0"]),
        Err(ProfileConfigError::TrunkIsInternational("0".into()))
    );
    assert_eq!(
        cn.clone().with_trunk_prefix(Some("")),
        Err(ProfileConfigError::BadTrunkPrefix(String::new()))
    );
    assert_eq!(
        cn.with_trunk_prefix(Some("0000000")),
        Err(ProfileConfigError::BadTrunkPrefix("0000000".into()))
    );
    assert_eq!(
        NumberingProfile::by_name("generic")
            .expect("generic")
            .with_trunk_prefix(Some("0")),
        Err(ProfileConfigError::TrunkWithoutCountry)
    );
    assert!(NumberingProfile::by_name("uk").is_err());
    assert_eq!(
        "nanp".parse::<NumberingProfile>().map(|p| p.name()),
        Ok("nanp")
    );
}

#[test]
fn profile_defaults() {
    let cn = NumberingProfile::by_name("cn").expect("cn");
    assert_eq!(
        (cn.country_code(), cn.trunk_prefix()),
        (Some("86"), Some("0"))
    );
    let nanp = NumberingProfile::by_name("nanp").expect("nanp");
    assert_eq!(
        (nanp.country_code(), nanp.trunk_prefix()),
        (Some("1"), Some("1"))
    );
    assert_eq!(nanp.international_prefixes().collect::<Vec<_>>(), ["011"]);
    let generic = NumberingProfile::by_name("generic").expect("generic");
    assert_eq!(generic.country_code(), None);
    assert_eq!(
        generic.international_prefixes().collect::<Vec<_>>(),
        ["011", "00"]
    );
}

fn prefix(profile: &str, raw: &str) -> Result<String, InvalidReason> {
    let p = NumberingProfile::by_name(profile).expect("known profile");
    p.normalize_prefix(raw.as_bytes())
        .map(|v| String::from_utf8(v).expect("digits"))
}

#[test]
fn blocklist_prefixes() {
    let ok = |profile, raw, want: &str| {
        assert_eq!(
            prefix(profile, raw),
            Ok(want.to_string()),
            "{profile} {raw}"
        )
    };
    let bad = |profile, raw, want| assert_eq!(prefix(profile, raw), Err(want), "{profile} {raw}");
    ok("cn", "+8617012", "8617012");
    ok("cn", "+86 170-12", "8617012");
    ok("cn", "008617012", "8617012");
    ok("cn", "017012", "8617012");
    ok("cn", "17012", "8617012");
    ok("cn", "0755", "86755");
    ok("cn", "010", "8610");
    ok("cn", "+860755", "86755");
    ok("cn", "400", "86400");
    ok("cn", "95", "8695");
    ok("cn", "+44", "44");
    ok("cn", "+1212", "1212");
    bad("cn", "755", NotANumber);
    bad("cn", "0", TooShort);
    bad("cn", "+860", TooShort);
    bad("nanp", "1", TooShort);
    ok("cn", "+86", "86");
    ok("nanp", "+1", "1");
    bad("cn", "", Empty);
    bad("cn", "  ", Empty);
    bad("cn", "+", NotANumber);
    bad("cn", "00", Empty);
    bad("cn", "+0", NotANumber);
    bad("cn", "+86138001380001", TooLong);
    bad("cn", "0138abc", NotANumber);
    bad("cn", "sip:+86138@h", NotANumber);
    ok("nanp", "212", "1212");
    ok("nanp", "1212", "1212");
    ok("nanp", "(212) 555", "1212555");
    ok("nanp", "+1 900", "1900");
    ok("nanp", "01144", "44");
    bad("nanp", "+1212555010012", TooLong);
    bad("nanp", "012", NotANumber);
    ok("generic", "+44", "44");
    ok("generic", "0044", "44");
    bad("generic", "44", NotANumber);
    bad("generic", "+1234567890123456", TooLong);
}

#[test]
fn invalid_reason_labels_are_distinct() {
    let all = [Empty, NotANumber, TooShort, TooLong, MalformedUri];
    let mut labels: Vec<_> = all.iter().map(|r| r.as_str()).collect();
    labels.sort_unstable();
    labels.dedup();
    assert_eq!(labels.len(), all.len());
}

// The forms issue 9 found the strict reader calling invalid, and so allowed: each one now
// reads as the listed number, strictly (Unicode digits, a host of digits) or leniently.

#[test]
fn fullwidth_digits_fold_to_the_number() {
    check(
        "nanp",
        &[
            (
                "sip:＋１２０２５５５０１００@x".as_bytes(),
                Want::Num("+12025550100"),
            ),
            (
                "tel:２０２-５５５-０１００".as_bytes(),
                Want::Num("+12025550100"),
            ),
            // Percent-encoded UTF-8, as a URI carries it: `１` is %EF%BC%91.
            (
                b"sip:%EF%BC%8B%EF%BC%91202555%EF%BC%90100@x",
                Want::Num("+12025550100"),
            ),
        ],
    );
}

#[test]
fn fullwidth_plus_folds_to_plus() {
    check(
        "cn",
        &[
            (
                "sip:＋8613800000001@x".as_bytes(),
                Want::Num("+8613800000001"),
            ),
            (b"sip:%EF%BC%8B8613800000001@x", Want::Num("+8613800000001")),
            // A second plus is no part of a number, fullwidth or not.
            (
                "sip:＋＋8613800000001@x".as_bytes(),
                Want::Lenient(NotANumber, "+8613800000001"),
            ),
        ],
    );
}

#[test]
fn arabic_indic_digits_fold_to_the_number() {
    check(
        "nanp",
        &[
            ("sip:+١٢٠٢٥٥٥٠١٠٠@x".as_bytes(), Want::Num("+12025550100")),
            ("sip:+۱۲۰۲۵۵۵۰۱۰۰@x".as_bytes(), Want::Num("+12025550100")),
            ("sip:+१२०२५५५०१००@x".as_bytes(), Want::Num("+12025550100")),
            ("tel:٢٠٢٥٥٥٠١٠٠".as_bytes(), Want::Num("+12025550100")),
        ],
    );
    check(
        "cn",
        &[("sip:١٣٨٠٠٠٠٠٠٠١@x".as_bytes(), Want::Num("+8613800000001"))],
    );
}

#[test]
fn trailing_nul_is_read_leniently() {
    check(
        "nanp",
        &[
            (
                b"sip:+12025550100%00@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:2025550100%00@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
        ],
    );
}

#[test]
fn trailing_hash_is_read_leniently() {
    check(
        "nanp",
        &[
            (
                b"sip:+12025550100#@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:2025550100%23@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
        ],
    );
}

#[test]
fn pause_and_post_dial_digits_are_read_leniently() {
    check(
        "nanp",
        &[
            (
                b"sip:+12025550100p123@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:2025550100w9@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:2025550100,,123@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"tel:2025550100x77",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
        ],
    );
    // `;ext=` is a parameter, ignored by the strict reading already.
    check(
        "nanp",
        &[(b"sip:2025550100;ext=123@x", Want::Num("+12025550100"))],
    );
}

#[test]
fn star_67_prefix_is_read_leniently() {
    check(
        "nanp",
        &[
            (
                b"sip:*672025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:*67+12025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:%2A67%2A822025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:#31#2025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
        ],
    );
    check(
        "cn",
        &[(
            b"sip:*31#13800000001@x",
            Want::Lenient(NotANumber, "+8613800000001"),
        )],
    );
}

#[test]
fn plus_zero_is_read_leniently() {
    check(
        "nanp",
        &[
            (
                b"sip:+012025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:+0012025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
        ],
    );
    check(
        "cn",
        &[(
            b"sip:+08613800000001@x",
            Want::Lenient(NotANumber, "+8613800000001"),
        )],
    );
}

#[test]
fn double_zero_under_nanp_is_read_leniently() {
    check(
        "nanp",
        &[
            (
                b"sip:0012025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
            (
                b"sip:008613800000001@x",
                Want::Lenient(NotANumber, "+8613800000001"),
            ),
            // A trunk 0 (operator-assisted dialling) before a national number.
            (
                b"sip:02025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
        ],
    );
    check(
        "cn",
        &[(
            b"sip:01112025550100@x",
            Want::Lenient(NotANumber, "+12025550100"),
        )],
    );
}

#[test]
fn digits_in_the_host_are_the_number() {
    check(
        "nanp",
        &[
            (b"<sip:6788675309>", Want::Num("+16788675309")),
            (b"sip:6788675309;user=phone", Want::Num("+16788675309")),
            (b"sip:16788675309:5060", Want::Num("+16788675309")),
            // A dotted host is an address, not a number.
            (b"sip:10.0.0.1", Want::Bad(Empty)),
        ],
    );
    check("cn", &[(b"<sip:13800000001>", Want::Num("+8613800000001"))]);
}

#[test]
fn values_without_a_hidden_number_stay_invalid() {
    check(
        "nanp",
        &[
            (b"sip:alice@example.com", Want::Bad(NotANumber)),
            (b"sip:*67@x", Want::Bad(NotANumber)),
            ("sip:１２@x".as_bytes(), Want::Bad(TooShort)),
            ("sip:½@x".as_bytes(), Want::Bad(NotANumber)),
            (b"sip:%EF%BC@x", Want::Bad(NotANumber)),
            (
                b"sip:%FF2025550100@x",
                Want::Lenient(NotANumber, "+12025550100"),
            ),
        ],
    );
}

#[test]
fn lenient_readings_follow_the_profile() {
    // Bare national digits are read under the profile only: one profile's decorated number
    // is another's unreadable value.
    check(
        "nanp",
        &[
            (
                b"tel:*31#2125550100",
                Want::Lenient(NotANumber, "+12125550100"),
            ),
            (b"86+13800138000", Want::Bad(NotANumber)),
        ],
    );
    check(
        "cn",
        &[
            (b"tel:*31#2125550100", Want::Bad(NotANumber)),
            (
                b"86+13800138000",
                Want::Lenient(NotANumber, "+8613800138000"),
            ),
            // A bare local number is never a candidate for another country's range.
            (b"6123456#", Want::Bad(NotANumber)),
        ],
    );
    check("generic", &[(b"tel:*31#2125550100", Want::Bad(NotANumber))]);
}
