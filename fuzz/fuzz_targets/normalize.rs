//! Fuzz the caller-number normalizer under every profile: `normalize` and `normalize_prefix`
//! must never panic on any bytes, and what they return must hold their promises: a number
//! is 1 to 15 digits not starting with 0, a decorated caller's lenient number too, and a
//! prefix is digits.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run normalize -- -max_total_time=60`

#![no_main]

use fraudwall::numbers::{Caller, NumberingProfile, E164};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn profiles() -> &'static [NumberingProfile] {
    static P: OnceLock<Vec<NumberingProfile>> = OnceLock::new();
    P.get_or_init(|| {
        NumberingProfile::NAMES
            .iter()
            .filter_map(|n| NumberingProfile::by_name(n).ok())
            .collect()
    })
}

fn check(n: &E164) {
    let d = n.as_bytes();
    assert!((1..=15).contains(&d.len()), "{n:?}");
    assert!(d.iter().all(u8::is_ascii_digit) && d[0] != b'0', "{n:?}");
}

fuzz_target!(|data: &[u8]| {
    for p in profiles() {
        match p.normalize(data) {
            Caller::Number(n) | Caller::Decorated { lenient: n, .. } => check(&n),
            Caller::Anonymous | Caller::Invalid(_) => {}
        }
        if let Ok(prefix) = p.normalize_prefix(data) {
            assert!(prefix.iter().all(u8::is_ascii_digit), "{prefix:?}");
        }
    }
});
