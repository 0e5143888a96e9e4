//! Caller numbers: from what arrives in SIP to a validated E.164 number.

mod e164;
mod plan;
mod profile;
mod scan;

pub use e164::{E164Error, E164};
pub use profile::{Caller, InvalidReason, NumberingProfile, ProfileConfigError, ProfileError};

#[cfg(test)]
mod tests;
