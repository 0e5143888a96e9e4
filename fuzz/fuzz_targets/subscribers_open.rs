//! Fuzz the subscriber-list opener and lookup on arbitrary file contents: opening must fail
//! with an error or yield a list whose every lookup answers (possibly nothing: fail open),
//! never panic.
//!
//! The hash check would refuse nearly every input before the directory and blocks are read,
//! so an input whose first byte is odd gets its header's body hash (bytes 48..80) recomputed:
//! the fuzzer then reaches the layout check and the block decoder, as a careless tool that
//! re-hashes a damaged body would.
//!
//! A seed corpus of small compiled lists (mode byte 1, then the file) is in
//! `corpus/subscribers_open/`, so mutations start from real directories and blocks; rebuild
//! it with `fuzz/make_subscribers_corpus.sh`.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run subscribers_open -- -max_total_time=60`

#![no_main]

use fraudwall::numbers::E164;
use fraudwall::subscribers::{SubscriberList, HEADER_LEN};
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn dir() -> &'static tempfile::TempDir {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().expect("temp dir"))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let mut file = rest.to_vec();
    if mode & 1 == 1 && file.len() >= HEADER_LEN {
        let hash = *blake3::hash(&file[HEADER_LEN..]).as_bytes();
        file[48..80].copy_from_slice(&hash);
        let body_len = (file.len() - HEADER_LEN) as u64;
        file[40..48].copy_from_slice(&body_len.to_le_bytes());
    }
    let path = dir().path().join("fuzz-subs.fwb");
    if std::fs::write(&path, &file).is_err() {
        return;
    }
    let Ok(list) = SubscriberList::open(&path) else {
        return;
    };
    let _ = (list.info(), list.header_bytes().len());
    for s in ["8613900000001", "12025550100", "447700900123", "1", "999999999999999"] {
        for c in ["8613800000001", "8617012345678", "1", "999999999999999"] {
            if let (Ok(s), Ok(c)) = (E164::from_digits(s.as_bytes()), E164::from_digits(c.as_bytes())) {
                let a = list.answer(&s, &c);
                let _ = a.personal.map(|p| p.entry.to_string());
            }
        }
    }
});
