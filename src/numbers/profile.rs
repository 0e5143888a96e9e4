//! Numbering profiles: national rules that turn what a caller-ID field carries into E.164.

use std::fmt;
use std::str::FromStr;

use super::lenient;
use super::plan::{self, Form, CN_CC, NANP_CC};
use super::scan::{self, Context, Digits, NotNumber, Subscriber};
use super::E164;

/// International prefixes the lenient reading drops whatever the profile (`00` under `nanp`
/// is a decoration, not a way to dial), longest first.
const LENIENT_EXIT_PREFIXES: [&[u8]; 2] = [b"011", b"00"];

/// The outcome of reading a caller identity. Anonymous and invalid callers are never numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A valid E.164 number.
    Number(E164),
    /// Withheld or anonymous (`anonymous`, `unknown`, `restricted`, `private`, `withheld`,
    /// `unavailable`, any user at `anonymous.invalid`, or an empty value). `Privacy: id` is a
    /// header, so the SIP layer decides that one.
    Anonymous,
    /// Present but not a usable number, and why.
    Invalid(InvalidReason),
    /// Not a number as presented (`reason`), but a decorated one: read leniently (dialling
    /// codes, pauses, parameters and stray characters dropped, extra zeros too) it is
    /// `lenient` (`*672025550100` is `+12025550100` under `nanp`). A screen treats it as
    /// [`Caller::Invalid`], except that a list entry matching `lenient` is acted on, with
    /// reason `evasion` (see the module docs, "Lenient reading").
    Decorated {
        /// Why the strict reading refused it.
        reason: InvalidReason,
        /// The number the decorations hide: a candidate for a list match, never a caller ID.
        lenient: E164,
    },
}

impl Caller {
    /// The number, if the caller is one (a [`Caller::Decorated`] caller is not).
    pub fn number(&self) -> Option<E164> {
        match self {
            Caller::Number(n) => Some(*n),
            Caller::Anonymous | Caller::Invalid(_) | Caller::Decorated { .. } => None,
        }
    }

    /// Why the value is not a number, for [`Caller::Invalid`] and [`Caller::Decorated`].
    pub fn invalid_reason(&self) -> Option<InvalidReason> {
        match self {
            Caller::Invalid(r) | Caller::Decorated { reason: r, .. } => Some(*r),
            Caller::Number(_) | Caller::Anonymous => None,
        }
    }
}

/// Why a caller value is not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum InvalidReason {
    /// Nothing where the number belongs: `tel:`, `sip:@host`, `sip:host` (no user part).
    #[error("empty")]
    Empty,
    /// Letters, dial-string characters (`*`, `#`, `p`), non-ASCII bytes, `+0...`, or digits in
    /// no shape the numbering plan knows (such as a bare national number under `generic`).
    #[error("not a phone number")]
    NotANumber,
    /// Fewer digits than the numbering plan allows (a local number without its area code).
    #[error("too short")]
    TooShort,
    /// More digits than the numbering plan (or E.164's 15) allows.
    #[error("too long")]
    TooLong,
    /// A URI that could not be read: a scheme other than `sip`/`sips`/`tel`, a broken
    /// percent-escape, an empty or malformed `phone-context`.
    #[error("malformed URI")]
    MalformedUri,
}

impl InvalidReason {
    /// A short stable label (for metrics and logs): `empty`, `not_a_number`, `too_short`,
    /// `too_long`, `malformed_uri`.
    pub fn as_str(&self) -> &'static str {
        match self {
            InvalidReason::Empty => "empty",
            InvalidReason::NotANumber => "not_a_number",
            InvalidReason::TooShort => "too_short",
            InvalidReason::TooLong => "too_long",
            InvalidReason::MalformedUri => "malformed_uri",
        }
    }
}

/// A profile name in config that fraudwall does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown numbering profile {0:?}: expected one of cn, nanp, generic")]
pub struct ProfileError(pub String);

/// A prefix setting in config that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProfileConfigError {
    /// An international prefix that is not 1 to 6 ASCII digits.
    #[error("international prefix {0:?} must be 1 to 6 digits, such as \"00\" or \"011\"")]
    BadInternationalPrefix(String),
    /// A trunk prefix that is not 1 to 6 ASCII digits.
    #[error("trunk prefix {0:?} must be 1 to 6 digits, such as \"0\" (cn) or \"1\" (nanp)")]
    BadTrunkPrefix(String),
    /// The `generic` profile reads no national numbers, so a trunk prefix means nothing.
    #[error("the generic profile reads no national numbers and takes no trunk prefix: remove it, or choose the cn or nanp profile")]
    TrunkWithoutCountry,
    /// The trunk prefix is also an international prefix, so national numbers could never be read.
    #[error("trunk prefix {0:?} is also listed as an international prefix: remove it from one of the two lists")]
    TrunkIsInternational(String),
}

/// Longest configurable prefix, in digits.
const MAX_PREFIX_DIGITS: usize = 6;

/// An international or trunk prefix: 1 to 6 ASCII digits, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Prefix {
    len: u8,
    digits: [u8; MAX_PREFIX_DIGITS],
}

impl Prefix {
    fn parse(s: &str) -> Option<Prefix> {
        let b = s.as_bytes();
        if b.is_empty() || b.len() > MAX_PREFIX_DIGITS || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let mut digits = [0; MAX_PREFIX_DIGITS];
        digits[..b.len()].copy_from_slice(b);
        Some(Prefix {
            len: b.len() as u8,
            digits,
        })
    }

    fn as_bytes(&self) -> &[u8] {
        &self.digits[..self.len as usize]
    }

    fn as_str(&self) -> &str {
        // Only ASCII digits are stored.
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.as_str())
    }
}

/// Which national plan reads numbers written without `+`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum National {
    Cn,
    Nanp,
    None,
}

/// National numbering rules (country code, trunk prefix, international prefixes, lengths).
///
/// Built once from config ([`NumberingProfile::by_name`], then optionally
/// [`with_international_prefixes`](Self::with_international_prefixes) and
/// [`with_trunk_prefix`](Self::with_trunk_prefix)), then shared read-only; reading a number
/// never allocates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberingProfile {
    name: &'static str,
    national: National,
    /// Longest first, so `0011` is tried before `00`.
    international: Vec<Prefix>,
    trunk: Option<Prefix>,
}

impl NumberingProfile {
    /// The names [`by_name`](Self::by_name) knows.
    pub const NAMES: [&'static str; 3] = ["cn", "nanp", "generic"];

    /// Looks a profile up by its config name (`cn`, `nanp`, `generic`), with its default
    /// prefixes: cn international `00`, trunk `0`; nanp international `011`, trunk `1`;
    /// generic international `00` and `011`, no trunk.
    pub fn by_name(name: &str) -> Result<Self, ProfileError> {
        let (name, national, international, trunk): (_, _, &[&str], _) = match name {
            "cn" => ("cn", National::Cn, &["00"], Some("0")),
            "nanp" => ("nanp", National::Nanp, &["011"], Some("1")),
            "generic" => ("generic", National::None, &["00", "011"], None),
            other => return Err(ProfileError(other.to_string())),
        };
        let mut p = NumberingProfile {
            name,
            national,
            international: Vec::new(),
            trunk: trunk.and_then(Prefix::parse),
        };
        p.set_international(international.iter().filter_map(|s| Prefix::parse(s)));
        Ok(p)
    }

    /// Replaces the international (exit) prefixes, such as `["00", "011"]`. An empty list
    /// means only `+` marks an international number.
    pub fn with_international_prefixes(
        mut self,
        prefixes: &[&str],
    ) -> Result<Self, ProfileConfigError> {
        let mut parsed = Vec::with_capacity(prefixes.len());
        for s in prefixes {
            let p = Prefix::parse(s)
                .ok_or_else(|| ProfileConfigError::BadInternationalPrefix(s.to_string()))?;
            parsed.push(p);
        }
        self.set_international(parsed);
        self.check()?;
        Ok(self)
    }

    /// Replaces the trunk (national) prefix, such as `"0"`; `None` when national numbers are
    /// written without one.
    pub fn with_trunk_prefix(mut self, trunk: Option<&str>) -> Result<Self, ProfileConfigError> {
        self.trunk = match trunk {
            None => None,
            Some(s) => Some(
                Prefix::parse(s)
                    .ok_or_else(|| ProfileConfigError::BadTrunkPrefix(s.to_string()))?,
            ),
        };
        self.check()?;
        Ok(self)
    }

    /// The profile's config name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The country code national numbers get (`86`, `1`), none for `generic`.
    pub fn country_code(&self) -> Option<&'static str> {
        match self.national {
            National::Cn => Some("86"),
            National::Nanp => Some("1"),
            National::None => None,
        }
    }

    /// The international prefixes, longest first.
    pub fn international_prefixes(&self) -> impl Iterator<Item = &str> {
        self.international.iter().map(Prefix::as_str)
    }

    /// The trunk prefix, if national numbers use one.
    pub fn trunk_prefix(&self) -> Option<&str> {
        self.trunk.as_ref().map(Prefix::as_str)
    }

    /// Normalizes a caller value: a URI (`sip:`, `sips:`, `tel:`, optionally in `<...>`) or a
    /// bare number. Never allocates, never panics; any bytes are accepted.
    ///
    /// A value the strict rules refuse is read once more, leniently; when that finds a
    /// number the caller is [`Caller::Decorated`], else [`Caller::Invalid`].
    pub fn normalize(&self, raw: &[u8]) -> Caller {
        let reason = match scan::subscriber(raw) {
            Ok(sub) => match self.resolve(&sub) {
                Ok(n) => return Caller::Number(n),
                Err(r) => r,
            },
            Err(NotNumber::Anonymous) => return Caller::Anonymous,
            Err(NotNumber::Invalid(r)) => r,
        };
        match self.lenient(raw) {
            Some(lenient) => Caller::Decorated { reason, lenient },
            None => Caller::Invalid(reason),
        }
    }

    /// The lenient reading (module docs, "Lenient reading"): the digits left once the
    /// decorations are dropped; after a `+` read as international with leading zeros
    /// dropped (`+0…`); else read under this profile, else after an international prefix
    /// (`011`, `00`, whatever the profile), else under this profile with leading zeros (a
    /// trunk `0`) dropped. Bare digits are never read as international without a prefix:
    /// `61234567` is a Chinese local number, not a candidate for a `+61*` range.
    fn lenient(&self, raw: &[u8]) -> Option<E164> {
        let read = lenient::digits(raw)?;
        let d = read.digits.as_slice();
        if read.plus {
            return plan::international(trim_zeros(d)).ok();
        }
        if let Ok(n) = self.national(d) {
            return Some(n);
        }
        let exit = LENIENT_EXIT_PREFIXES
            .iter()
            .find_map(|p| d.strip_prefix(*p))
            .and_then(|rest| plan::international(trim_zeros(rest)).ok());
        exit.or_else(|| self.national(trim_zeros(d)).ok())
    }

    /// Normalizes a blocklist prefix (the part before `*`), returning its E.164 digits
    /// (country code first, no `+`): `+8617012`, `008617012` and, under `cn`, `017012` all
    /// give `8617012`; `0755` gives `86755`. Only `+`, digits and visual separators are
    /// accepted (no URI). A national prefix without trunk prefix is accepted where its kind is
    /// clear: under `cn` one starting with `1` (mobiles, service codes), `95`, `96`, `400` or
    /// `800`, or with the country code `86` (international without `+`); under `nanp` one
    /// starting with 2..9 (an area code). Whenever [`normalize`](Self::normalize) reads a bare
    /// number as `Number(n)`, `normalize_prefix` of the same text gives `n`'s digits, so exact
    /// entries and prefixes land in the same key space. A trunk prefix alone (`0`, or `1`
    /// under `nanp`) and `+860` are refused as [`InvalidReason::TooShort`]: they would list a
    /// whole country, which takes an explicit `+86` or `+1`.
    pub fn normalize_prefix(&self, raw: &[u8]) -> Result<Vec<u8>, InvalidReason> {
        let (global, digits) = scan::prefix_digits(raw)?;
        let d = digits.as_slice();
        let international = if global {
            digits
        } else if let Some(rest) = self.strip_international(d) {
            Digits::from_parts(&[rest])
        } else {
            let (cc, nsn) = match (self.national, self.strip_trunk(d)) {
                (National::None, _) => return Err(InvalidReason::NotANumber),
                // A bare trunk prefix would list a whole country: that takes `+86`, `+1`.
                (_, Some([])) => return Err(InvalidReason::TooShort),
                (National::Cn, Some(nsn)) => (CN_CC, nsn),
                (National::Nanp, Some(nsn)) => (NANP_CC, nsn),
                (National::Cn, None) if cn_bare_prefix(d) => (CN_CC, d),
                // `8617012`: international without `+`, as for numbers.
                (National::Cn, None) if d.starts_with(CN_CC) => (&[][..], d),
                (National::Nanp, None) if d.first().is_some_and(|&b| b >= b'2') => (NANP_CC, d),
                (_, None) => return Err(InvalidReason::NotANumber),
            };
            Digits::from_parts(&[cc, nsn])
        };
        let d = international.as_slice();
        let d = match d.strip_prefix(CN_CC) {
            // A kept trunk 0 alone would widen `+860` to all of China.
            Some([b'0']) => return Err(InvalidReason::TooShort),
            // The same `+86 0` quirk as for numbers: the kept trunk 0 is dropped.
            Some([b'0', rest @ ..]) => Digits::from_parts(&[CN_CC, rest]),
            _ => international,
        };
        let d = d.as_slice();
        match d.first() {
            None => Err(InvalidReason::Empty),
            Some(b'0') => Err(InvalidReason::NotANumber),
            Some(_) if d.len() > plan::max_international_len(d) => Err(InvalidReason::TooLong),
            Some(_) => Ok(d.to_vec()),
        }
    }

    /// Resolves scanned digits to E.164 under this profile.
    fn resolve(&self, sub: &Subscriber) -> Result<E164, InvalidReason> {
        let d = sub.digits.as_slice();
        if sub.global {
            return plan::international(d);
        }
        match sub.context {
            Context::Global(ctx) => {
                let ctx = ctx.as_slice();
                // `tel:0755...;phone-context=+86`: a trunk prefix under our own country code.
                let local = match self.strip_trunk(d) {
                    Some(rest) if self.country_code().map(str::as_bytes) == Some(ctx) => rest,
                    _ => d,
                };
                let all = Digits::from_parts(&[ctx, local]);
                if all.overflowed() {
                    return Err(InvalidReason::TooLong);
                }
                plan::international(all.as_slice())
            }
            Context::Domain | Context::None => self.national(d),
        }
    }

    /// Digits written without `+`: international prefix, trunk prefix, or bare national.
    fn national(&self, d: &[u8]) -> Result<E164, InvalidReason> {
        if let Some(rest) = self.strip_international(d) {
            return plan::international(rest);
        }
        match (self.national, self.strip_trunk(d)) {
            (National::None, _) => Err(InvalidReason::NotANumber),
            (National::Cn, Some(nsn)) => {
                plan::cn_nsn(nsn, Form::Trunk)?;
                plan::join(CN_CC, nsn)
            }
            (National::Cn, None) => match plan::cn_nsn(d, Form::Bare) {
                Ok(()) => plan::join(CN_CC, d),
                // `8613800138000`: international without `+`, as Chinese trunks often send.
                Err(e) => match d.strip_prefix(CN_CC) {
                    Some(nsn) if plan::cn_nsn(nsn, Form::International).is_ok() => {
                        plan::join(CN_CC, nsn)
                    }
                    _ => Err(e),
                },
            },
            (National::Nanp, nsn) => {
                let nsn = nsn.unwrap_or(d);
                plan::nanp_nsn(nsn)?;
                plan::join(NANP_CC, nsn)
            }
        }
    }

    fn strip_international<'a>(&self, d: &'a [u8]) -> Option<&'a [u8]> {
        self.international
            .iter()
            .find_map(|p| d.strip_prefix(p.as_bytes()))
    }

    fn strip_trunk<'a>(&self, d: &'a [u8]) -> Option<&'a [u8]> {
        self.trunk
            .as_ref()
            .and_then(|p| d.strip_prefix(p.as_bytes()))
    }

    fn set_international(&mut self, prefixes: impl IntoIterator<Item = Prefix>) {
        let mut v: Vec<Prefix> = prefixes.into_iter().collect();
        v.sort_by(|a, b| b.len.cmp(&a.len).then(a.digits.cmp(&b.digits)));
        v.dedup();
        self.international = v;
    }

    fn check(&self) -> Result<(), ProfileConfigError> {
        let Some(trunk) = self.trunk else {
            return Ok(());
        };
        if self.national == National::None {
            return Err(ProfileConfigError::TrunkWithoutCountry);
        }
        if self.international.contains(&trunk) {
            return Err(ProfileConfigError::TrunkIsInternational(
                trunk.as_str().to_string(),
            ));
        }
        Ok(())
    }
}

impl FromStr for NumberingProfile {
    type Err = ProfileError;

    /// Same as [`NumberingProfile::by_name`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NumberingProfile::by_name(s)
    }
}

/// `d` without its leading zeros.
fn trim_zeros(d: &[u8]) -> &[u8] {
    let zeros = d.iter().take_while(|&&b| b == b'0').count();
    &d[zeros..]
}

/// A Chinese national prefix without trunk 0 whose kind is clear (see `normalize_prefix`).
fn cn_bare_prefix(d: &[u8]) -> bool {
    matches!(d, [b'1', ..] | [b'9', b'5' | b'6', ..])
        || d.starts_with(b"400")
        || d.starts_with(b"800")
}
