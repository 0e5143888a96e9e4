//! Property tests of caller-number normalization: no input panics, URI forms agree with the
//! plain `+digits` form, visual separators never matter, and prefixes share numbers' keys.

use fraudwall::numbers::{Caller, NumberingProfile, E164};
use proptest::prelude::*;

fn profiles() -> Vec<NumberingProfile> {
    NumberingProfile::NAMES
        .iter()
        .map(|n| NumberingProfile::by_name(n).expect("shipped profile"))
        .collect()
}

/// Valid numbers of the kinds carriers see: cn mobiles and landlines, NANP, other countries.
fn valid_number() -> impl Strategy<Value = String> {
    prop_oneof![
        "861[3-9][0-9]{9}",
        "86(10|2[0-9])[2-9][0-9]{7}",
        "86[3-9][0-9]{2}[2-9][0-9]{6,7}",
        "1[2-9][0-9]{2}[2-9][0-9]{6}",
        "(44|33|49|61|7|81|234)[1-9][0-9]{7,9}",
    ]
}

/// Any E.164 digit string (country code first), valid under a plan or not.
fn any_e164() -> impl Strategy<Value = E164> {
    "[1-9][0-9]{0,14}".prop_map(|d| d.parse::<E164>().expect("generated E.164"))
}

/// A number as people and switches write it: optional `+`, digits, visual separators.
fn written_number() -> impl Strategy<Value = String> {
    "\\+?[0-9 ().-]{0,22}"
}

/// Inserts separators at the given positions.
fn with_separators(s: &str, seps: &[(usize, char)]) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        for &(at, sep) in seps {
            if at == i {
                out.push(sep);
            }
        }
        out.push(c);
    }
    for &(at, sep) in seps {
        if at >= s.len() {
            out.push(sep);
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn never_panics_on_arbitrary_bytes(raw in proptest::collection::vec(any::<u8>(), 0..200)) {
        for p in profiles() {
            let _ = p.normalize(&raw);
            let _ = p.normalize_prefix(&raw);
        }
    }

    #[test]
    fn never_panics_on_uri_like_text(
        raw in "<?(sips?:|tel:|SIP:|x:)?[+0-9a-z%;=@:().<> -]{0,60}"
    ) {
        for p in profiles() {
            let _ = p.normalize(raw.as_bytes());
            let _ = p.normalize_prefix(raw.as_bytes());
        }
    }

    #[test]
    fn valid_numbers_round_trip_through_sip_and_tel(digits in valid_number()) {
        let n: E164 = digits.parse().expect("generated E.164");
        for p in profiles() {
            for raw in [
                format!("sip:+{digits}@h;user=phone"),
                format!("<sips:+{digits}@10.0.0.1:5061;user=phone>"),
                format!("tel:+{digits}"),
                format!("sip:%2B{digits}@h"),
                format!("{n}"),
            ] {
                prop_assert_eq!(p.normalize(raw.as_bytes()), Caller::Number(n), "{} {}", p.name(), raw);
            }
            prop_assert_eq!(p.normalize_prefix(format!("+{digits}").as_bytes()), Ok(digits.clone().into_bytes()));
        }
    }

    #[test]
    fn any_e164_reads_the_same_in_every_form(n in any_e164()) {
        for p in profiles() {
            let plain = p.normalize(n.to_string().as_bytes());
            // Normalizing is idempotent: a result read back in `+` form is itself.
            if let Caller::Number(m) = plain {
                prop_assert_eq!(p.normalize(m.to_string().as_bytes()), plain);
            }
            prop_assert!(!matches!(plain, Caller::Anonymous));
            for raw in [format!("sip:+{}@h;user=phone", n.digits()), format!("tel:+{}", n.digits())] {
                prop_assert_eq!(p.normalize(raw.as_bytes()), plain, "{} {}", p.name(), raw);
            }
        }
    }

    #[test]
    fn from_international_agrees_with_normalize(digits in "[0-9]{0,20}") {
        let want = match NumberingProfile::by_name("generic").expect("shipped profile").normalize(format!("+{digits}").as_bytes()) {
            Caller::Number(n) => Ok(n),
            Caller::Invalid(r) | Caller::Decorated { reason: r, .. } => Err(r),
            Caller::Anonymous => panic!("+{digits} read as anonymous"),
        };
        prop_assert_eq!(E164::from_international(digits.as_bytes()), want);
    }

    #[test]
    fn visual_separators_never_change_a_tel_number(
        digits in "\\+?[0-9]{1,18}",
        seps in proptest::collection::vec((0usize..20, prop_oneof![Just('-'), Just('.'), Just('('), Just(')')]), 0..6),
    ) {
        let spaced = with_separators(&digits, &seps);
        for p in profiles() {
            let want = p.normalize(format!("tel:{digits}").as_bytes());
            prop_assert_eq!(p.normalize(format!("tel:{spaced}").as_bytes()), want, "{} {}", p.name(), spaced);
            prop_assert_eq!(p.normalize(spaced.as_bytes()), p.normalize(digits.as_bytes()));
        }
    }

    #[test]
    fn prefixes_share_the_key_space_of_numbers(raw in written_number()) {
        for p in profiles() {
            if let Caller::Number(n) = p.normalize(raw.as_bytes()) {
                prop_assert_eq!(p.normalize_prefix(raw.as_bytes()), Ok(n.as_bytes().to_vec()), "{} {}", p.name(), raw);
            }
        }
    }

    #[test]
    fn numbers_are_digits_and_never_start_with_zero(raw in written_number()) {
        for p in profiles() {
            if let Caller::Number(n) = p.normalize(raw.as_bytes()) {
                prop_assert!(n.as_bytes().iter().all(u8::is_ascii_digit));
                prop_assert!(n.as_bytes()[0] != b'0');
                prop_assert!((1..=15).contains(&n.len()));
                prop_assert_eq!(n.to_string().parse::<E164>(), Ok(n));
            }
        }
    }
}

#[test]
fn separator_helper_inserts_everywhere() {
    assert_eq!(
        with_separators("123", &[(0, '('), (1, ')'), (9, '-')]),
        "(1)23-"
    );
}
