//! Fuzz the blocklist snapshot opener on arbitrary file contents: opening must fail with an
//! error or yield a snapshot whose every read works, never panic, with and without a
//! signature (`<file>.sig`, the input's tail after a 0xFF 0x00 split marker, if any).
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run snapshot_open -- -max_total_time=60`

#![no_main]

use ed25519_dalek::SigningKey;
use fraudwall::blocklist::{sign, Snapshot};
use fraudwall::numbers::E164;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn dir() -> &'static tempfile::TempDir {
    static D: OnceLock<tempfile::TempDir> = OnceLock::new();
    D.get_or_init(|| tempfile::tempdir().expect("temp dir"))
}

fuzz_target!(|data: &[u8]| {
    let (file, sig) = match data.windows(2).position(|w| w == [0xFF, 0x00]) {
        Some(at) => (&data[..at], Some(&data[at + 2..])),
        None => (data, None),
    };
    let path = dir().path().join("fuzz.fwb");
    if std::fs::write(&path, file).is_err() {
        return;
    }
    let sig_path = sign::sig_path(&path);
    match sig {
        Some(s) => {
            if std::fs::write(&sig_path, s).is_err() {
                return;
            }
        }
        None => {
            let _ = std::fs::remove_file(&sig_path);
        }
    }
    let key = SigningKey::from_bytes(&[7; 32]).verifying_key();
    let _ = Snapshot::open_signed(&path, &[key]);
    let Ok(snap) = Snapshot::open(&path) else {
        return;
    };
    let _ = (snap.version(), snap.header_bytes().len());
    for n in ["+8613800000001", "+12025550100", "+447700900123", "+1"] {
        if let Ok(n) = n.parse::<E164>() {
            let _ = snap.lookup(&n).map(|m| (m.action, m.entry.to_string()));
        }
    }
});
