//! The traffic simulator behind `fraudwall simulate`: a carrier day generated from a
//! [`Scenario`] (deterministic by its seed) and replayed through the behavioural
//! [`Detector`] with a simulated clock.
//!
//! The day holds ordinary subscribers (Poisson arrivals on a diurnal profile, a few calls a
//! day, mostly to their own contacts, long calls, now and then a redial burst to a busy
//! number), busy legitimate lines that are in no list (small businesses, sales staff),
//! enterprises and call centres with legitimate high volume declared `allow` in the global
//! list (so exempt, as the policy makes them: their findings are ignored), robocall
//! campaigns (hundreds of calls an hour per number, harvested or sequential callees, most
//! under 10 s), Wangiri (one ring from international ranges, then cancel) and
//! number-rotating campaigns (each number used for 20 to 200 calls, then dropped).
//!
//! Every call becomes the events the proxy would see (INVITE, 180, 200 and BYE, or CANCEL,
//! or an error response), replayed in time order. A call the detector's finding blocks
//! is answered 608 at once, as the proxy would, and rings no one. The replay goes through the
//! detector directly, not through the proxy core and policy, but the way the core asks it
//! ([`Detector::visit`]: the call counted, the finding of the caller's calls before it): the
//! verdict is that finding unless the caller is exempt.

use crate::blocklist::Action;
use crate::detection::{
    CallEvent, CallEventKind, CallKey, DetectionConfig, DetectionConfigError, Detector,
    DetectorStats,
};
use crate::numbers::E164;
use serde::{Deserialize, Serialize};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

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

/// The simulator's traffic classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Class {
    Subscriber,
    BusyLine,
    Enterprise,
    Robocall,
    Wangiri,
    Rotating,
}

impl Class {
    fn is_fraud(self) -> bool {
        matches!(self, Class::Robocall | Class::Wangiri | Class::Rotating)
    }
}

/// How a generated call ends.
#[derive(Debug, Clone, Copy)]
enum End {
    /// Answered after ringing, then BYE after the conversation.
    Answered { talk_ms: u32 },
    /// The caller cancels while it rings.
    Cancelled,
    /// A final error (busy, unavailable) after the ring time.
    Failed { status: u16 },
}

/// One generated call.
#[derive(Debug, Clone, Copy)]
struct Call {
    start_ms: u64,
    caller: u64,
    callee: u64,
    /// Index of the caller's fraud number (`u32::MAX` for legitimate callers).
    number: u32,
    class: Class,
    /// Post-dial delay (INVITE to 180) and ring time (180 to answer, cancel or error).
    pdd_ms: u32,
    ring_ms: u32,
    end: End,
}

/// The splitmix64 finalizer.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// splitmix64: a small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix(self.0)
    }
    /// Uniform in [0, 1).
    fn f(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
        }
    }
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.f()).ln()
    }
    fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.f();
        let u2 = self.f();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }
    /// Log-normal with this median and sigma.
    fn lognormal(&mut self, median: f64, sigma: f64) -> f64 {
        median * (sigma * self.normal()).exp()
    }
    fn poisson(&mut self, mean: f64) -> u32 {
        // Knuth's method: means here are small.
        let l = (-mean).exp();
        let mut k = 0;
        let mut p = 1.0;
        loop {
            p *= self.f();
            if p <= l || k > 10_000 {
                return k;
            }
            k += 1;
        }
    }
}

/// Number spaces: subscriber i is +86 138 xxxxxxxx, scattered over the range.
fn subscriber_number(i: u64) -> u64 {
    8_613_800_000_000 + (i * 7919) % 100_000_000
}

const HOUR_MS: u64 = 3_600_000;

/// A legitimate call's ending: answered with a log-normal talk time, else a cancel after
/// ringing or busy.
fn legit_end(rng: &mut Rng, answer_ratio: f64, talk_median: Duration) -> (u32, End) {
    let ring = (rng.exp(8_000.0) as u32).clamp(1_000, 40_000);
    if rng.f() < answer_ratio {
        let talk = rng
            .lognormal(talk_median.as_millis() as f64, 1.0)
            .clamp(2_000.0, 4.0 * 3_600_000.0);
        (
            ring,
            End::Answered {
                talk_ms: talk as u32,
            },
        )
    } else if rng.f() < 0.7 {
        // Unanswered: the caller gives up after 15 to 40 s of ringing.
        (15_000 + rng.below(25_000) as u32, End::Cancelled)
    } else {
        (
            ring.min(5_000),
            End::Failed {
                status: if rng.f() < 0.6 { 486 } else { 480 },
            },
        )
    }
}

/// A fraud call's ending: rarely answered, and then hung up quickly.
fn fraud_end(rng: &mut Rng, answer_ratio: f64, talk_median: Duration) -> (u32, End) {
    let ring = (rng.exp(6_000.0) as u32).clamp(1_000, 30_000);
    if rng.f() < answer_ratio {
        let talk = rng
            .lognormal(talk_median.as_millis() as f64, 0.8)
            .clamp(1_000.0, 600_000.0);
        (
            ring,
            End::Answered {
                talk_ms: talk as u32,
            },
        )
    } else if rng.f() < 0.6 {
        (15_000 + rng.below(20_000) as u32, End::Cancelled)
    } else {
        (
            ring.min(5_000),
            End::Failed {
                status: if rng.f() < 0.5 { 486 } else { 480 },
            },
        )
    }
}

struct Day {
    calls: Vec<Call>,
    /// Per fraud number: its class.
    numbers: Vec<Class>,
}

fn gen_day(s: &Scenario) -> Day {
    let mut rng = Rng(s.seed ^ 0x5eed_da7a);
    let day_ms = s.duration.as_millis() as u64;
    let mut calls = Vec::new();
    let mut numbers = Vec::new();
    let subs = u64::from(s.subscribers.count.max(1));
    let random_sub = |rng: &mut Rng| subscriber_number(rng.below(subs));

    // Ordinary subscribers.
    let weights = &s.subscribers.hourly_profile;
    let total: f64 = weights.iter().sum();
    let cumulative: Vec<f64> = weights
        .iter()
        .scan(0.0, |acc, w| {
            *acc += w / total;
            Some(*acc)
        })
        .collect();
    let days = s.duration.as_secs_f64() / 86_400.0;
    let pick_time = |rng: &mut Rng| -> u64 {
        let u = rng.f();
        let hour = cumulative.iter().position(|&c| u < c).unwrap_or(23) as u64;
        let day = rng.below(days.ceil().max(1.0) as u64);
        (day * 24 + hour) * HOUR_MS + rng.below(HOUR_MS)
    };
    for i in 0..u64::from(s.subscribers.count) {
        let me = subscriber_number(i);
        // The subscriber's contacts: fixed per subscriber, drawn from everyone.
        let contact = |j: u64| subscriber_number(mix(i * 1000 + j) % subs);
        let n = rng.poisson(s.subscribers.calls_per_day * days);
        for _ in 0..n {
            let start = pick_time(&mut rng);
            let callee = if rng.f() < s.subscribers.contact_share {
                contact(rng.below(u64::from(s.subscribers.contacts)))
            } else {
                random_sub(&mut rng)
            };
            let (ring, end) = legit_end(
                &mut rng,
                s.subscribers.answer_ratio,
                s.subscribers.talk_median,
            );
            calls.push(Call {
                start_ms: start,
                caller: me,
                callee,
                number: u32::MAX,
                class: Class::Subscriber,
                pdd_ms: 1_000 + rng.below(2_000) as u32,
                ring_ms: ring,
                end,
            });
        }
        if rng.f() < s.subscribers.redial_share {
            // Redialling a number that does not answer (or is busy), every 10 to 60 s.
            let callee = random_sub(&mut rng);
            let mut t = pick_time(&mut rng);
            for _ in 0..s.subscribers.redial_calls {
                let busy = rng.f() < 0.5;
                calls.push(Call {
                    start_ms: t,
                    caller: me,
                    callee,
                    number: u32::MAX,
                    class: Class::Subscriber,
                    pdd_ms: 1_000,
                    ring_ms: if busy {
                        500
                    } else {
                        5_000 + rng.below(20_000) as u32
                    },
                    end: if busy {
                        End::Failed { status: 486 }
                    } else {
                        End::Cancelled
                    },
                });
                t += 10_000 + rng.below(50_000);
            }
        }
    }

    // Busy legitimate lines: business hours, each at its own rate.
    for i in 0..u64::from(s.busy_lines.count) {
        let me = 861_000_000_000 + (i * 7919) % 100_000_000;
        let rate = s.busy_lines.calls_per_hour * (0.25 + 1.75 * rng.f());
        for day in 0..days.ceil().max(1.0) as u64 {
            let [h0, h1] = s.busy_lines.hours;
            let mut t = (day * 24 + u64::from(h0)) * HOUR_MS;
            let stop = (day * 24 + u64::from(h1)) * HOUR_MS;
            loop {
                t += rng.exp(HOUR_MS as f64 / rate) as u64;
                if t >= stop || t >= day_ms {
                    break;
                }
                let (ring, end) = legit_end(
                    &mut rng,
                    s.busy_lines.answer_ratio,
                    s.busy_lines.talk_median,
                );
                calls.push(Call {
                    start_ms: t,
                    caller: me,
                    callee: random_sub(&mut rng),
                    number: u32::MAX,
                    class: Class::BusyLine,
                    pdd_ms: 1_500,
                    ring_ms: ring,
                    end,
                });
            }
        }
    }

    // Enterprises and call centres (exempt): predictive diallers, many short attempts.
    for i in 0..u64::from(s.enterprises.count) {
        let me = 864_000_000_000 + i * 37;
        for day in 0..days.ceil().max(1.0) as u64 {
            let [h0, h1] = s.enterprises.hours;
            let mut t = (day * 24 + u64::from(h0)) * HOUR_MS;
            let stop = (day * 24 + u64::from(h1)) * HOUR_MS;
            loop {
                t += rng.exp(HOUR_MS as f64 / s.enterprises.calls_per_hour) as u64;
                if t >= stop || t >= day_ms {
                    break;
                }
                let (ring, end) = fraud_end(
                    &mut rng,
                    s.enterprises.answer_ratio,
                    s.enterprises.talk_median,
                );
                calls.push(Call {
                    start_ms: t,
                    caller: me,
                    callee: random_sub(&mut rng),
                    number: u32::MAX,
                    class: Class::Enterprise,
                    pdd_ms: 1_500,
                    ring_ms: ring,
                    end,
                });
            }
        }
    }

    // Robocall and Wangiri campaigns.
    let mut fraud_seq = 0u64;
    for (class, c) in [(Class::Robocall, &s.robocall), (Class::Wangiri, &s.wangiri)] {
        for _ in 0..c.campaigns {
            let len_ms = (c.hours * (0.5 + 0.5 * rng.f()) * HOUR_MS as f64) as u64;
            let start = rng.below(day_ms.saturating_sub(len_ms).max(1));
            let sequential = rng.f() < c.sequential_share;
            let mut next_seq = random_sub(&mut rng);
            for _ in 0..c.numbers_per_campaign {
                fraud_seq += 1;
                let cc = &c.country_codes[rng.below(c.country_codes.len() as u64) as usize];
                let me = fraud_number(cc, fraud_seq, class);
                let id = numbers.len() as u32;
                numbers.push(class);
                let rate = c.calls_per_hour * (0.5 + 1.5 * rng.f());
                let mut t = start;
                loop {
                    t += rng.exp(HOUR_MS as f64 / rate) as u64;
                    if t >= start + len_ms || t >= day_ms {
                        break;
                    }
                    let callee = if sequential {
                        next_seq += 1;
                        next_seq
                    } else {
                        random_sub(&mut rng)
                    };
                    let (pdd, ring, end) = if class == Class::Wangiri {
                        // One ring (or two), then cancel before anyone can answer.
                        (1_500, 1_000 + rng.below(4_000) as u32, End::Cancelled)
                    } else {
                        let (ring, end) = fraud_end(&mut rng, c.answer_ratio, c.talk_median);
                        (1_500, ring, end)
                    };
                    calls.push(Call {
                        start_ms: t,
                        caller: me,
                        callee,
                        number: id,
                        class,
                        pdd_ms: pdd,
                        ring_ms: ring,
                        end,
                    });
                }
            }
        }
    }

    // Number-rotating campaigns.
    let r = &s.rotating;
    for _ in 0..r.campaigns {
        let len_ms = (r.hours * (0.5 + 0.5 * rng.f()) * HOUR_MS as f64) as u64;
        let start = rng.below(day_ms.saturating_sub(len_ms).max(1));
        let mut t = start;
        'campaign: loop {
            fraud_seq += 1;
            let me = fraud_number("86", fraud_seq, Class::Rotating);
            let id = numbers.len() as u32;
            numbers.push(Class::Rotating);
            let uses = r.calls_per_number[0]
                + rng.below(u64::from(r.calls_per_number[1] - r.calls_per_number[0]) + 1) as u32;
            for _ in 0..uses {
                t += rng.exp(HOUR_MS as f64 / r.calls_per_hour) as u64;
                if t >= start + len_ms || t >= day_ms {
                    break 'campaign;
                }
                let (ring, end) = fraud_end(&mut rng, r.answer_ratio, r.talk_median);
                calls.push(Call {
                    start_ms: t,
                    caller: me,
                    callee: random_sub(&mut rng),
                    number: id,
                    class: Class::Rotating,
                    pdd_ms: 1_500,
                    ring_ms: ring,
                    end,
                });
            }
        }
    }
    calls.retain(|c| c.start_ms < day_ms);
    calls.sort_by_key(|c| c.start_ms);
    Day { calls, numbers }
}

/// A fraud number: the country code, then a number in a range of its own per class.
fn fraud_number(cc: &str, seq: u64, class: Class) -> u64 {
    let cc: u64 = cc.parse().unwrap_or(86);
    let range = match class {
        Class::Robocall => 171,
        Class::Wangiri => 7,
        _ => 170,
    };
    let digits_after = 8u32; // eight digits after the range prefix
    let prefix = cc * 10u64.pow(range_digits(range)) + range;
    prefix * 10u64.pow(digits_after) + (seq * 7919) % 10u64.pow(digits_after)
}

fn range_digits(range: u64) -> u32 {
    range.to_string().len() as u32
}

fn e164(n: u64) -> Option<E164> {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = n;
    while v > 0 && i > 0 {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    E164::from_digits(&buf[i..]).ok()
}

/// Calls and flags of one class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ClassReport {
    /// Calls placed.
    pub calls: u64,
    /// Calls the detector flagged (tag, warn or block).
    pub flagged: u64,
    /// `flagged / calls`.
    pub flagged_ratio: f64,
    /// Of the flagged, blocked.
    pub blocked: u64,
    /// Distinct calling numbers.
    pub numbers: u64,
    /// Numbers flagged at least once.
    pub numbers_flagged: u64,
}

/// Catch figures of a fraud class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct CatchReport {
    /// Calls after a number's 30th call.
    pub calls_after_30: u64,
    /// Of those, flagged.
    pub flagged_after_30: u64,
    /// `flagged_after_30 / calls_after_30`.
    pub recall_after_30: f64,
    /// Median over the class's numbers of the call a number was first flagged on (a
    /// number never flagged counts as never; `null` when more than half never were).
    pub median_calls_to_catch: Option<u64>,
    /// Numbers never flagged.
    pub numbers_never_flagged: u64,
}

/// What `fraudwall simulate --json` prints.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// Calls in the day.
    pub calls: u64,
    /// Events replayed (INVITE, 180, 200, BYE, CANCEL, errors).
    pub events: u64,
    /// Legitimate callers: subscribers, busy lines and exempt enterprises.
    pub legitimate: ClassReport,
    /// Ordinary subscribers.
    pub legitimate_subscribers: ClassReport,
    /// Busy lines in no list.
    pub legitimate_busy_lines: ClassReport,
    /// Enterprises allowed by the list (exempt: never flagged; `findings_ignored` says how
    /// often the detector alone would have).
    pub legitimate_enterprises: ClassReport,
    /// Findings on exempt enterprise calls that the exemption overrode.
    pub enterprise_findings_ignored: u64,
    /// Robocall campaigns.
    pub robocall: ClassReport,
    /// Wangiri campaigns.
    pub wangiri: ClassReport,
    /// Number-rotating campaigns.
    pub rotating: ClassReport,
    /// All campaign classes together: recall after a number's 30th call and calls to catch.
    pub campaigns: CatchReport,
    /// Per fraud class.
    pub robocall_catch: CatchReport,
    /// Per fraud class.
    pub wangiri_catch: CatchReport,
    /// Per fraud class.
    pub rotating_catch: CatchReport,
    /// Flagged legitimate calls / legitimate calls.
    pub legitimate_false_positive_ratio: f64,
    /// Legitimate numbers flagged at least once (up to 20 shown in `legitimate_flagged_examples`).
    pub legitimate_flagged_examples: Vec<String>,
    /// Bytes the detector allocated.
    pub detector_bytes: usize,
    /// The detector's counters at the end.
    pub detector_stats: DetectorStats,
    /// Whether each target of issue 13 is met.
    pub targets: Targets,
    /// Seconds spent generating and replaying.
    pub generate_secs: f64,
    /// Seconds spent replaying.
    pub replay_secs: f64,
}

/// The targets on the simulated day.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Targets {
    /// At least 95 % of campaign calls after a number's 30th call flagged.
    pub recall_after_30: bool,
    /// At most 0.01 % of legitimate callers' calls flagged.
    pub legitimate_false_positives: bool,
    /// Median campaign number caught within its first 20 calls.
    pub median_calls_to_catch: bool,
    /// Detector memory at most 256 MiB.
    pub memory: bool,
}

impl Targets {
    /// Every target met.
    pub fn all(&self) -> bool {
        self.recall_after_30
            && self.legitimate_false_positives
            && self.median_calls_to_catch
            && self.memory
    }
}

#[derive(Default, Clone, Copy)]
struct NumberStat {
    calls: u64,
    first_flagged: Option<u64>,
}

/// Follow-up events of a call, in the replay's heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Next {
    Ringing,
    Answered,
    Cancelled,
    Failed(u16),
    Bye,
}

/// Generates the scenario's day and replays it through a detector built from `config`.
pub fn run(s: &Scenario, config: &DetectionConfig) -> Result<Report, SimulateError> {
    s.validate()?;
    let detector = Detector::new(config)?;
    let t_gen = Instant::now();
    let day = gen_day(s);
    let generate_secs = t_gen.elapsed().as_secs_f64();
    let t_replay = Instant::now();
    let base = Instant::now();
    let at = |ms: u64| base + Duration::from_millis(ms);

    let mut per_number = vec![NumberStat::default(); day.numbers.len()];
    let mut classes = [ClassReport::default(); 6];
    let mut seen_numbers: [std::collections::HashSet<u64>; 6] = Default::default();
    let mut flagged_numbers: [std::collections::HashSet<u64>; 6] = Default::default();
    let mut ignored = 0u64;
    let mut events = 0u64;
    let mut heap: BinaryHeap<Reverse<(u64, u32, Next)>> = BinaryHeap::new();
    let mut examples = Vec::new();
    // Per class: calls after their number's 30th, and how many of those were flagged.
    let mut after_30 = [(0u64, 0u64); 6];

    let deliver =
        |heap: &mut BinaryHeap<Reverse<(u64, u32, Next)>>, until: u64, events: &mut u64| {
            while let Some(&Reverse((t, i, next))) = heap.peek() {
                if t > until {
                    break;
                }
                heap.pop();
                *events += 1;
                let kind = match next {
                    Next::Ringing => CallEventKind::Ringing,
                    Next::Answered => CallEventKind::Answered,
                    Next::Cancelled => CallEventKind::Cancelled,
                    Next::Failed(status) => CallEventKind::Failed { status },
                    Next::Bye => CallEventKind::Bye,
                };
                detector.observe(
                    CallEvent {
                        call: CallKey::new(u64::from(i) + 1),
                        kind,
                    },
                    at(t),
                );
            }
        };

    for (i, c) in day.calls.iter().enumerate() {
        deliver(&mut heap, c.start_ms, &mut events);
        let (Some(caller), Some(callee)) = (e164(c.caller), e164(c.callee)) else {
            continue;
        };
        let key = i as u32;
        events += 1;
        // What the proxy core does per INVITE: one visit that counts the call and answers
        // the finding of the caller's calls before it.
        let finding = detector.visit(
            CallKey::new(u64::from(key) + 1),
            &caller,
            &callee,
            at(c.start_ms),
        );
        let exempt = c.class == Class::Enterprise;
        // The policy exempts callers the global list allows before the finding counts.
        let action = match finding {
            Some(_) if exempt => {
                ignored += 1;
                None
            }
            f => f.map(|f| f.action),
        };
        let cls = c.class as usize;
        let rep = &mut classes[cls];
        rep.calls += 1;
        seen_numbers[cls].insert(c.caller);
        if action.is_some() {
            rep.flagged += 1;
            if flagged_numbers[cls].insert(c.caller) && !c.class.is_fraud() && examples.len() < 20 {
                examples.push(format!("+{}", c.caller));
            }
        }
        if action == Some(Action::Block) {
            rep.blocked += 1;
        }
        if let Some(n) = per_number.get_mut(c.number as usize) {
            n.calls += 1;
            if action.is_some() && n.first_flagged.is_none() {
                n.first_flagged = Some(n.calls);
            }
            if n.calls > 30 {
                after_30[cls].0 += 1;
                after_30[cls].1 += u64::from(action.is_some());
            }
        }
        // What the callee's side answers.
        let t0 = c.start_ms;
        if action == Some(Action::Block) {
            heap.push(Reverse((t0, key, Next::Failed(608))));
            continue;
        }
        let ring_at = t0 + u64::from(c.pdd_ms);
        let end_at = ring_at + u64::from(c.ring_ms);
        match c.end {
            End::Answered { talk_ms } => {
                heap.push(Reverse((ring_at, key, Next::Ringing)));
                heap.push(Reverse((end_at, key, Next::Answered)));
                heap.push(Reverse((end_at + u64::from(talk_ms), key, Next::Bye)));
            }
            End::Cancelled => {
                heap.push(Reverse((ring_at, key, Next::Ringing)));
                heap.push(Reverse((end_at, key, Next::Cancelled)));
                heap.push(Reverse((end_at + 20, key, Next::Failed(487))));
            }
            End::Failed { status } => {
                if status == 480 {
                    heap.push(Reverse((ring_at, key, Next::Ringing)));
                }
                heap.push(Reverse((end_at, key, Next::Failed(status))));
            }
        }
    }
    deliver(&mut heap, u64::MAX, &mut events);

    for (i, rep) in classes.iter_mut().enumerate() {
        rep.numbers = seen_numbers[i].len() as u64;
        rep.numbers_flagged = flagged_numbers[i].len() as u64;
        rep.flagged_ratio = ratio(rep.flagged, rep.calls);
    }
    let sum = |reps: &[ClassReport]| {
        let mut t = ClassReport::default();
        for r in reps {
            t.calls += r.calls;
            t.flagged += r.flagged;
            t.blocked += r.blocked;
            t.numbers += r.numbers;
            t.numbers_flagged += r.numbers_flagged;
        }
        t.flagged_ratio = ratio(t.flagged, t.calls);
        t
    };
    let legitimate = sum(&classes[..3]);
    let catch = |filter: &dyn Fn(Class) -> bool| -> CatchReport {
        let mut r = CatchReport::default();
        let mut firsts = Vec::new();
        for (i, n) in per_number.iter().enumerate() {
            if !filter(day.numbers[i]) || n.calls == 0 {
                continue;
            }
            firsts.push(n.first_flagged.unwrap_or(u64::MAX));
            if n.first_flagged.is_none() {
                r.numbers_never_flagged += 1;
            }
        }
        firsts.sort_unstable();
        r.median_calls_to_catch = firsts
            .get(firsts.len() / 2)
            .copied()
            .filter(|&m| m != u64::MAX);
        r
    };
    let mut report_catch = [
        catch(&|c| c == Class::Robocall),
        catch(&|c| c == Class::Wangiri),
        catch(&|c| c == Class::Rotating),
    ];
    let mut all = catch(&|c| c.is_fraud());
    for (k, class) in [Class::Robocall, Class::Wangiri, Class::Rotating]
        .into_iter()
        .enumerate()
    {
        let (n, f) = after_30[class as usize];
        report_catch[k].calls_after_30 = n;
        report_catch[k].flagged_after_30 = f;
        report_catch[k].recall_after_30 = ratio(f, n);
        all.calls_after_30 += n;
        all.flagged_after_30 += f;
    }
    all.recall_after_30 = ratio(all.flagged_after_30, all.calls_after_30);
    let detector_bytes = detector.memory_bytes();
    let fp = ratio(legitimate.flagged, legitimate.calls);
    let targets = Targets {
        recall_after_30: all.recall_after_30 >= 0.95,
        legitimate_false_positives: fp <= 0.0001,
        median_calls_to_catch: all.median_calls_to_catch.is_some_and(|m| m <= 20),
        memory: detector_bytes <= 256 << 20,
    };
    Ok(Report {
        calls: day.calls.len() as u64,
        events,
        legitimate,
        legitimate_subscribers: classes[Class::Subscriber as usize],
        legitimate_busy_lines: classes[Class::BusyLine as usize],
        legitimate_enterprises: classes[Class::Enterprise as usize],
        enterprise_findings_ignored: ignored,
        robocall: classes[Class::Robocall as usize],
        wangiri: classes[Class::Wangiri as usize],
        rotating: classes[Class::Rotating as usize],
        campaigns: all,
        robocall_catch: report_catch[0],
        wangiri_catch: report_catch[1],
        rotating_catch: report_catch[2],
        legitimate_false_positive_ratio: fp,
        legitimate_flagged_examples: examples,
        detector_bytes,
        detector_stats: detector.stats(),
        targets,
        generate_secs,
        replay_secs: t_replay.elapsed().as_secs_f64(),
    })
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shipped scenario, scaled down to run in a debug test.
    fn small() -> Scenario {
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

    fn on() -> DetectionConfig {
        DetectionConfig {
            enabled: true,
            ..DetectionConfig::default()
        }
    }

    #[test]
    fn a_small_day_is_deterministic_and_catches_campaigns_only() {
        let s = small();
        let a = run(&s, &on()).unwrap();
        let b = run(&s, &on()).unwrap();
        assert_eq!((a.calls, a.events), (b.calls, b.events));
        assert_eq!(a.robocall, b.robocall);
        assert_eq!(a.campaigns, b.campaigns);
        assert!(a.calls > 100_000, "{}", a.calls);
        for class in [&a.robocall, &a.wangiri, &a.rotating] {
            assert!(class.calls > 0 && class.flagged > 0, "{class:?}");
        }
        assert_eq!(
            a.legitimate.flagged, 0,
            "{:?}",
            a.legitimate_flagged_examples
        );
        assert_eq!(a.legitimate_enterprises.flagged, 0, "exempt");
        assert!(
            a.enterprise_findings_ignored > 0,
            "the exemption is exercised"
        );
        assert!(a.campaigns.recall_after_30 > 0.95, "{:?}", a.campaigns);
        assert!(a.campaigns.median_calls_to_catch.is_some_and(|m| m <= 20));
        let json = serde_json::to_value(&a).unwrap();
        for key in [
            "calls",
            "detector_bytes",
            "legitimate",
            "robocall",
            "wangiri",
            "rotating",
        ] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert!(json["robocall"]["flagged_ratio"].as_f64().is_some());
        let other = run(&Scenario { seed: 7, ..s }, &on()).unwrap();
        assert_ne!(other.calls, a.calls, "another seed, another day");
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
