//! The scenario file: the day's mix and rates, read and checked once.

use crate::detection::DetectionConfigError;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A scenario file (`integration/traffic/*.toml`): the day's mix and rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Seed of the generator: the same scenario and seed give the same day.
    pub seed: u64,
    /// Length of the simulated day.
    #[serde(with = "crate::config::value::duration")]
    pub duration: Duration,
    /// Ordinary subscribers.
    pub subscribers: Subscribers,
    /// Legitimate busy lines in no list.
    pub busy_lines: BusyLines,
    /// Enterprises and call centres, allowed by the global list (exempt).
    pub enterprises: Enterprises,
    /// Robocall campaigns.
    pub robocall: Campaigns,
    /// Wangiri campaigns.
    pub wangiri: Campaigns,
    /// Number-rotating campaigns.
    pub rotating: Rotating,
}

/// Ordinary subscribers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribers {
    /// How many.
    pub count: u32,
    /// Mean calls a subscriber makes a day (Poisson).
    pub calls_per_day: f64,
    /// Share of calls to the subscriber's own contacts (the rest: anyone).
    pub contact_share: f64,
    /// Contacts per subscriber.
    pub contacts: u32,
    /// Share of calls answered.
    pub answer_ratio: f64,
    /// Median conversation (log-normal, sigma 1).
    #[serde(with = "crate::config::value::duration")]
    pub talk_median: Duration,
    /// Share of subscribers who, on the day, redial one unanswering number in a burst.
    pub redial_share: f64,
    /// Calls in a redial burst (one a minute or faster).
    pub redial_calls: u32,
    /// Relative call volume per hour of the day (24 weights, 00:00 first).
    pub hourly_profile: Vec<f64>,
}

/// Legitimate busy lines that are in no list: small businesses, sales staff, clinics.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusyLines {
    /// How many.
    pub count: u32,
    /// Calls an hour during business hours (each line draws its rate up to twice this).
    pub calls_per_hour: f64,
    /// Business hours, as [start, end) hours of the day.
    pub hours: [u32; 2],
    /// Share answered.
    pub answer_ratio: f64,
    /// Median conversation.
    #[serde(with = "crate::config::value::duration")]
    pub talk_median: Duration,
}

/// Enterprises and call centres, declared `allow` in the global list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Enterprises {
    /// How many numbers.
    pub count: u32,
    /// Calls an hour per number during business hours.
    pub calls_per_hour: f64,
    /// Business hours.
    pub hours: [u32; 2],
    /// Share answered (predictive diallers: low).
    pub answer_ratio: f64,
    /// Median conversation.
    #[serde(with = "crate::config::value::duration")]
    pub talk_median: Duration,
}

/// Robocall or Wangiri campaigns: each runs a few numbers for a few hours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Campaigns {
    /// How many campaigns in the day.
    pub campaigns: u32,
    /// Numbers each campaign calls from at once.
    pub numbers_per_campaign: u32,
    /// Calls an hour per number (each number draws from half to twice this).
    pub calls_per_hour: f64,
    /// Hours a campaign runs (each draws from half to all of this).
    pub hours: f64,
    /// Share of campaigns dialling sequentially (the rest: harvested lists).
    pub sequential_share: f64,
    /// Share of calls answered.
    pub answer_ratio: f64,
    /// Median conversation of an answered call.
    #[serde(with = "crate::config::value::duration")]
    pub talk_median: Duration,
    /// Country codes the numbers come from (`86` for domestic).
    pub country_codes: Vec<String>,
}

/// Number-rotating campaigns: each number is used for a few dozen calls, then replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotating {
    /// How many campaigns.
    pub campaigns: u32,
    /// Calls an hour per campaign (one number at a time).
    pub calls_per_hour: f64,
    /// Hours a campaign runs.
    pub hours: f64,
    /// Calls per number, [min, max] (uniform).
    pub calls_per_number: [u32; 2],
    /// Share of calls answered.
    pub answer_ratio: f64,
    /// Median conversation of an answered call.
    #[serde(with = "crate::config::value::duration")]
    pub talk_median: Duration,
}

/// A scenario that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SimulateError {
    /// The file could not be read.
    #[error("cannot read scenario {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// Not a scenario (syntax, type, unknown key).
    #[error("invalid scenario {path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// `toml`'s message, with line and key.
        message: String,
    },
    /// A value out of range.
    #[error("scenario: {key}: {reason}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The detection configuration cannot be used.
    #[error(transparent)]
    Detection(#[from] DetectionConfigError),
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn from_file(path: &std::path::Path) -> Result<Scenario, SimulateError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| SimulateError::Read {
            path: shown.clone(),
            source,
        })?;
        let s: Scenario = toml::from_str(&text).map_err(|e| SimulateError::Syntax {
            path: shown,
            message: e.to_string(),
        })?;
        s.validate()?;
        Ok(s)
    }

    /// Checks ranges.
    pub fn validate(&self) -> Result<(), SimulateError> {
        let bad = |key, reason: String| Err(SimulateError::Invalid { key, reason });
        if self.duration < Duration::from_secs(60)
            || self.duration > Duration::from_secs(7 * 86_400)
        {
            return bad("duration", "must be 1m to 7 days".into());
        }
        if self.subscribers.hourly_profile.len() != 24
            || self
                .subscribers
                .hourly_profile
                .iter()
                .any(|w| w.is_nan() || *w < 0.0)
            || self.subscribers.hourly_profile.iter().sum::<f64>() <= 0.0
        {
            return bad(
                "subscribers.hourly_profile",
                "24 non-negative weights, not all zero".into(),
            );
        }
        if self.subscribers.count > 50_000_000 {
            return bad("subscribers.count", "at most 50000000".into());
        }
        if self.subscribers.contacts == 0 {
            return bad("subscribers.contacts", "at least 1".into());
        }
        for (key, h) in [
            ("busy_lines.hours", self.busy_lines.hours),
            ("enterprises.hours", self.enterprises.hours),
        ] {
            if h[0] >= h[1] || h[1] > 24 {
                return bad(key, format!("{h:?}: [start, end) with start < end <= 24"));
            }
        }
        let r = &self.rotating.calls_per_number;
        if r[0] == 0 || r[0] > r[1] {
            return bad(
                "rotating.calls_per_number",
                format!("{r:?}: [min, max], 1 <= min <= max"),
            );
        }
        for (key, v) in [
            ("subscribers.answer_ratio", self.subscribers.answer_ratio),
            ("subscribers.contact_share", self.subscribers.contact_share),
            ("subscribers.redial_share", self.subscribers.redial_share),
            ("busy_lines.answer_ratio", self.busy_lines.answer_ratio),
            ("enterprises.answer_ratio", self.enterprises.answer_ratio),
            ("robocall.answer_ratio", self.robocall.answer_ratio),
            ("robocall.sequential_share", self.robocall.sequential_share),
            ("wangiri.answer_ratio", self.wangiri.answer_ratio),
            ("wangiri.sequential_share", self.wangiri.sequential_share),
            ("rotating.answer_ratio", self.rotating.answer_ratio),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return bad(key, format!("{v} is out of range 0 to 1"));
            }
        }
        for (key, cc) in [
            ("robocall.country_codes", &self.robocall.country_codes),
            ("wangiri.country_codes", &self.wangiri.country_codes),
        ] {
            if cc.is_empty()
                || cc.iter().any(|c| {
                    c.is_empty()
                        || c.len() > 3
                        || !c.bytes().all(|b| b.is_ascii_digit())
                        || c.starts_with('0')
                })
            {
                return bad(
                    key,
                    "one or more country codes such as \"86\", \"882\"".into(),
                );
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// The shipped scenario, scaled down to run in a debug test.
    pub(in crate::simulate) fn small() -> Scenario {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("integration/traffic/carrier-day.toml");
        let mut s = Scenario::from_file(&path).unwrap();
        s.subscribers.count = 20_000;
        s.busy_lines.count = 100;
        s.enterprises.count = 5;
        s.robocall.campaigns = 4;
        s.wangiri.campaigns = 2;
        s.rotating.campaigns = 3;
        s
    }

    #[test]
    fn bad_scenarios_name_their_key() {
        let mut s = small();
        s.subscribers.hourly_profile.pop();
        assert!(matches!(
            s.validate(),
            Err(SimulateError::Invalid {
                key: "subscribers.hourly_profile",
                ..
            })
        ));
        let mut s = small();
        s.rotating.calls_per_number = [50, 20];
        assert!(matches!(
            s.validate(),
            Err(SimulateError::Invalid {
                key: "rotating.calls_per_number",
                ..
            })
        ));
        let mut s = small();
        s.wangiri.country_codes = vec!["0".into()];
        assert!(matches!(
            s.validate(),
            Err(SimulateError::Invalid {
                key: "wangiri.country_codes",
                ..
            })
        ));
        assert!(toml::from_str::<Scenario>("seed = 1\n").is_err());
    }
}
