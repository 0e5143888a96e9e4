//! National numbering plans: which digit strings are real numbers in China (+86) and the
//! North American Numbering Plan (+1), and the length check for every other country.
//!
//! The plans apply to international numbers whatever the profile (so `+8613800138000` is the
//! same key under `cn`, `nanp` and `generic`); the profile only decides how a *national* form
//! (no `+`) is read.

use super::e164::{E164, MAX_DIGITS};
use super::InvalidReason;

/// Shortest international number of a country without a plan here. Niue (+683) and Tokelau
/// (+690) have four-digit subscriber numbers, so seven digits in all.
pub(crate) const MIN_OTHER_DIGITS: usize = 7;

/// China's country code.
pub(crate) const CN_CC: &[u8] = b"86";
/// The North American Numbering Plan's country code.
pub(crate) const NANP_CC: &[u8] = b"1";

/// How a national significant number (NSN, the digits after the country code) was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Form {
    /// After the country code (`+86...`): every kind of number.
    International,
    /// After the trunk prefix (`0...` in China): geographic numbers and mobiles.
    Trunk,
    /// National digits with no prefix at all: mobiles and non-geographic numbers only.
    Bare,
}

/// Checks international digits (country code first, no `+`) and builds the [`E164`].
pub(crate) fn international(d: &[u8]) -> Result<E164, InvalidReason> {
    let Some(&first) = d.first() else {
        return Err(InvalidReason::TooShort);
    };
    if first == b'0' {
        return Err(InvalidReason::NotANumber);
    }
    if d.len() > MAX_DIGITS {
        return Err(InvalidReason::TooLong);
    }
    if let Some(nsn) = d.strip_prefix(CN_CC) {
        // `+86 0755...`: a trunk 0 kept after the country code is a common misconfiguration,
        // and no Chinese NSN starts with 0, so it is dropped.
        let nsn = nsn.strip_prefix(b"0").unwrap_or(nsn);
        cn_nsn(nsn, Form::International)?;
        return join(CN_CC, nsn);
    }
    if let Some(nsn) = d.strip_prefix(NANP_CC) {
        nanp_nsn(nsn)?;
        return join(NANP_CC, nsn);
    }
    if d.len() < MIN_OTHER_DIGITS {
        return Err(InvalidReason::TooShort);
    }
    E164::from_digits(d).map_err(|_| InvalidReason::NotANumber)
}

/// Country code and NSN (checked digits) into one [`E164`].
pub(crate) fn join(cc: &[u8], nsn: &[u8]) -> Result<E164, InvalidReason> {
    E164::from_cc_nsn(cc, nsn).map_err(|_| InvalidReason::TooLong)
}

/// Longest international number (all digits) that a known country code allows, for prefixes.
pub(crate) fn max_international_len(d: &[u8]) -> usize {
    if d.starts_with(CN_CC) {
        CN_CC.len() + 11
    } else if d.starts_with(NANP_CC) {
        NANP_CC.len() + 10
    } else {
        MAX_DIGITS
    }
}

/// NANP: `NXX NXX XXXX`, N = 2..9 (area code and exchange never start with 0 or 1).
pub(crate) fn nanp_nsn(nsn: &[u8]) -> Result<(), InvalidReason> {
    if !nsn.first().is_some_and(|&b| is_n(b)) {
        return Err(InvalidReason::NotANumber);
    }
    exact_len(nsn, 10)?;
    if is_n(nsn[3]) {
        Ok(())
    } else {
        Err(InvalidReason::NotANumber)
    }
}

/// China, by the national significant number:
/// - mobiles: `1[3-9]` then 9 digits;
/// - geographic: area code (`10`, `2x`, else three digits) then a 7 or 8 digit subscriber
///   not starting with 0;
/// - service codes: `1[0-2]` (3 to 6 digits in all), `95` (5 to 8), `96` (5 or 6);
/// - non-geographic: `400`/`800` then 7 digits.
///
/// Which kinds a [`Form`] may carry: mobiles all; geographic after trunk or country code;
/// service and non-geographic bare or after the country code.
pub(crate) fn cn_nsn(nsn: &[u8], form: Form) -> Result<(), InvalidReason> {
    let (Some(&a), second) = (nsn.first(), nsn.get(1).copied()) else {
        return Err(InvalidReason::TooShort);
    };
    if a == b'1' && matches!(second, Some(b'3'..=b'9')) {
        return exact_len(nsn, 11);
    }
    if form != Form::Trunk && (is_cn_service(nsn) || is_cn_non_geographic(nsn)) {
        return Ok(());
    }
    match form {
        Form::International | Form::Trunk => cn_geographic(nsn),
        // A bare 7 or 8 digit local number lacks its area code; a bare 400/800 number or a
        // service code has the wrong length; anything else is no national form we know.
        Form::Bare => match (a, second) {
            (b'4' | b'8', Some(b'0')) if nsn.starts_with(b"400") || nsn.starts_with(b"800") => {
                exact_len(nsn, 10)
            }
            (b'2'..=b'9', _) if nsn.len() <= 8 => Err(InvalidReason::TooShort),
            _ => Err(InvalidReason::NotANumber),
        },
    }
}

/// Area code then subscriber number.
fn cn_geographic(nsn: &[u8]) -> Result<(), InvalidReason> {
    let area_len = match nsn {
        [b'1', b'0', ..] | [b'2', ..] => 2,
        [b'3'..=b'9', ..] => 3,
        _ => return Err(InvalidReason::NotANumber),
    };
    let Some(subscriber) = nsn.get(area_len..) else {
        return Err(InvalidReason::TooShort);
    };
    len_between(subscriber, 7, 8)?;
    if subscriber[0] != b'0' {
        Ok(())
    } else {
        Err(InvalidReason::NotANumber)
    }
}

/// Emergency and service short codes (110, 119, 120, 12315, 10086, 95555, 96xxx, ...).
fn is_cn_service(nsn: &[u8]) -> bool {
    match nsn {
        [b'1', b'0'..=b'2', ..] => (3..=6).contains(&nsn.len()),
        [b'9', b'5', ..] => (5..=8).contains(&nsn.len()),
        [b'9', b'6', ..] => (5..=6).contains(&nsn.len()),
        _ => false,
    }
}

/// Nationwide 400 and 800 numbers (10 digits).
fn is_cn_non_geographic(nsn: &[u8]) -> bool {
    (nsn.starts_with(b"400") || nsn.starts_with(b"800")) && nsn.len() == 10
}

fn is_n(b: u8) -> bool {
    matches!(b, b'2'..=b'9')
}

fn exact_len(d: &[u8], n: usize) -> Result<(), InvalidReason> {
    len_between(d, n, n)
}

fn len_between(d: &[u8], min: usize, max: usize) -> Result<(), InvalidReason> {
    if d.len() < min {
        Err(InvalidReason::TooShort)
    } else if d.len() > max {
        Err(InvalidReason::TooLong)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use InvalidReason::*;

    #[test]
    fn cn_forms() {
        let table: &[(&[u8], Form, Result<(), InvalidReason>)] = &[
            (b"13800138000", Form::Bare, Ok(())),
            (b"13800138000", Form::Trunk, Ok(())),
            (b"1380013800", Form::Bare, Err(TooShort)),
            (b"138001380001", Form::International, Err(TooLong)),
            (b"1012345678", Form::Trunk, Ok(())),
            (b"1012345678", Form::Bare, Err(NotANumber)),
            (b"75512345678", Form::Trunk, Ok(())),
            (b"7551234567", Form::Trunk, Ok(())),
            (b"755123456", Form::Trunk, Err(TooShort)),
            (b"755012345678", Form::Trunk, Err(TooLong)),
            (b"75502345678", Form::Trunk, Err(NotANumber)),
            (b"75512345678", Form::International, Ok(())),
            (b"110", Form::Bare, Ok(())),
            (b"110", Form::International, Ok(())),
            (b"110", Form::Trunk, Err(NotANumber)),
            (b"95555", Form::Bare, Ok(())),
            (b"4001234567", Form::Bare, Ok(())),
            (b"400123456", Form::Bare, Err(TooShort)),
            (b"8001234567", Form::International, Ok(())),
            (b"12345678", Form::Bare, Err(NotANumber)),
            (b"5551234", Form::Bare, Err(TooShort)),
            (b"", Form::Bare, Err(TooShort)),
        ];
        for (nsn, form, want) in table {
            assert_eq!(
                cn_nsn(nsn, *form),
                *want,
                "{} as {form:?}",
                String::from_utf8_lossy(nsn)
            );
        }
    }

    #[test]
    fn nanp_forms() {
        assert_eq!(nanp_nsn(b"2125550100"), Ok(()));
        assert_eq!(nanp_nsn(b"212555010"), Err(TooShort));
        assert_eq!(nanp_nsn(b"21255501000"), Err(TooLong));
        assert_eq!(nanp_nsn(b"1125550100"), Err(NotANumber));
        assert_eq!(nanp_nsn(b"2121550100"), Err(NotANumber));
    }

    #[test]
    fn international_numbers() {
        let ok = |d: &[u8], want: &str| {
            assert_eq!(
                international(d).map(|e| e.to_string()),
                Ok(want.to_string())
            )
        };
        ok(b"8613800138000", "+8613800138000");
        ok(b"86075512345678", "+8675512345678");
        ok(b"12125550100", "+12125550100");
        ok(b"447700900123", "+447700900123");
        ok(b"6834002", "+6834002");
        assert_eq!(international(b"683400"), Err(TooShort));
        assert_eq!(international(b"0447700900123"), Err(NotANumber));
        assert_eq!(international(b"4477009001231234"), Err(TooLong));
        assert_eq!(international(b""), Err(TooShort));
        assert_eq!(international(b"1212555010"), Err(TooShort));
    }
}
