//! The generated day: every call of every class, from the scenario and its seed.

use super::Scenario;
use crate::numbers::E164;
use std::time::Duration;

/// The simulator's traffic classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(super) enum Class {
    Subscriber,
    BusyLine,
    Enterprise,
    Robocall,
    Wangiri,
    Rotating,
}

impl Class {
    pub(super) fn is_fraud(self) -> bool {
        matches!(self, Class::Robocall | Class::Wangiri | Class::Rotating)
    }
}

/// How a generated call ends.
#[derive(Debug, Clone, Copy)]
pub(super) enum End {
    /// Answered after ringing, then BYE after the conversation.
    Answered { talk_ms: u32 },
    /// The caller cancels while it rings.
    Cancelled,
    /// A final error (busy, unavailable) after the ring time.
    Failed { status: u16 },
}

/// One generated call.
#[derive(Debug, Clone, Copy)]
pub(super) struct Call {
    pub(super) start_ms: u64,
    pub(super) caller: u64,
    pub(super) callee: u64,
    /// Index of the caller's fraud number (`u32::MAX` for legitimate callers).
    pub(super) number: u32,
    pub(super) class: Class,
    /// Post-dial delay (INVITE to 180) and ring time (180 to answer, cancel or error).
    pub(super) pdd_ms: u32,
    pub(super) ring_ms: u32,
    pub(super) end: End,
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

pub(super) struct Day {
    pub(super) calls: Vec<Call>,
    /// Per fraud number: its class.
    pub(super) numbers: Vec<Class>,
}

pub(super) fn gen_day(s: &Scenario) -> Day {
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

pub(super) fn e164(n: u64) -> Option<E164> {
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
