//! Numbering profiles: national rules that turn what a caller-ID field carries into E.164.

use super::E164;

/// The outcome of reading a caller identity. Anonymous and invalid callers are never numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caller {
    /// A valid E.164 number.
    Number(E164),
    /// Withheld or anonymous (`anonymous`, `unknown`, `restricted`, `Privacy: id`).
    Anonymous,
    /// Present but not a usable number, and why.
    Invalid(InvalidReason),
}

/// Why a caller value is not a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    /// Nothing there.
    #[error("empty")]
    Empty,
    /// Letters or other characters a phone number cannot hold.
    #[error("not a phone number")]
    NotANumber,
    /// Fewer digits than the profile allows.
    #[error("too short")]
    TooShort,
    /// More digits than the profile (or E.164) allows.
    #[error("too long")]
    TooLong,
    /// A URI that could not be read.
    #[error("malformed URI")]
    MalformedUri,
}

/// A profile name in config that fraudwall does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown numbering profile {0:?}: expected one of cn, nanp, generic")]
pub struct ProfileError(pub String);

/// National numbering rules (country code, trunk prefix, international prefixes, lengths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberingProfile {
    name: &'static str,
}

impl NumberingProfile {
    /// Looks a profile up by its config name (`cn`, `nanp`, `generic`).
    pub fn by_name(name: &str) -> Result<Self, ProfileError> {
        match name {
            "cn" => Ok(NumberingProfile { name: "cn" }),
            "nanp" => Ok(NumberingProfile { name: "nanp" }),
            "generic" => Ok(NumberingProfile { name: "generic" }),
            other => Err(ProfileError(other.to_string())),
        }
    }

    /// The profile's config name.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// Normalizes a caller value: a URI (`sip:`, `sips:`, `tel:`) or a bare number.
    pub fn normalize(&self, raw: &[u8]) -> Caller {
        let s = raw.strip_prefix(b"+").unwrap_or(raw);
        match E164::from_digits(s) {
            Ok(n) => Caller::Number(n),
            Err(_) => Caller::Invalid(InvalidReason::NotANumber),
        }
    }

    /// Normalizes a blocklist prefix (the part before `*`), returning its E.164 digits.
    pub fn normalize_prefix(&self, raw: &[u8]) -> Result<Vec<u8>, InvalidReason> {
        let s = raw.strip_prefix(b"+").unwrap_or(raw);
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return Err(InvalidReason::NotANumber);
        }
        Ok(s.to_vec())
    }
}
