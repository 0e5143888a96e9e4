//! Caller numbers: from what arrives in SIP to a validated E.164 number.
//!
//! Everything a caller-ID header carries is hostile until parsed. This module turns a raw
//! value (a `sip:`/`sips:`/`tel:` URI, a bare number with or without `+`, an international or
//! a national number) into one of three outcomes, [`Caller::Number`] with an [`E164`],
//! [`Caller::Anonymous`] or [`Caller::Invalid`], under the national rules of a
//! [`NumberingProfile`] chosen in config.
//!
//! (Contract laid down by the skeleton; the full normalization table is the numbers work.)

mod e164;
mod profile;

pub use e164::{E164Error, E164};
pub use profile::{Caller, InvalidReason, NumberingProfile, ProfileError};
