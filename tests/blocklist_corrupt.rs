//! Every corrupt or untrusted snapshot is refused with a typed error that says how to fix
//! it, never a panic.

use fraudwall::blocklist::sign::{self, SignError};
use fraudwall::blocklist::{
    compile_csv_text, format::HeaderError, CompileOptions, Load, Snapshot, SnapshotError,
};
use std::path::{Path, PathBuf};

const CSV: &str = "number,action,category,score,source\n\
    +8613800000001,block,impersonation,95,police\n\
    +8613800000002,tag,loan,70,reports\n\
    +8617012*,block,range,80,carrier\n\
    +12025550100,warn,irs,90,ftc\n";

fn good(dir: &Path) -> (PathBuf, Vec<u8>) {
    let p = dir.join("good.fwb");
    compile_csv_text(CSV, &CompileOptions::default(), &p).unwrap();
    let bytes = std::fs::read(&p).unwrap();
    (p, bytes)
}

/// Opens with both loaders; they must agree on accepting or refusing.
fn open_bytes(dir: &Path, name: &str, bytes: &[u8]) -> Result<Snapshot, SnapshotError> {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    let mapped = Snapshot::open_with(&p, Load::Map);
    let copied = Snapshot::open_with(&p, Load::HugePages);
    assert_eq!(mapped.is_ok(), copied.is_ok(), "loaders disagree on {name}");
    copied
}

fn header_len(bytes: &[u8]) -> usize {
    u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]) as usize
}

#[test]
fn good_file_opens() {
    let dir = tempfile::tempdir().unwrap();
    let (p, _) = good(dir.path());
    let s = Snapshot::open(&p).unwrap();
    assert_eq!(s.len(), 4);
}

#[test]
fn empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let e = open_bytes(dir.path(), "e.fwb", b"").unwrap_err();
    assert!(matches!(e, SnapshotError::Empty { .. }), "{e}");
    assert!(e.to_string().contains("fraudwall compile"), "{e}");
}

#[test]
fn missing_file() {
    let e = Snapshot::open("/nonexistent/x.fwb").unwrap_err();
    assert!(matches!(e, SnapshotError::Io { .. }), "{e}");
}

#[test]
fn wrong_magic() {
    let dir = tempfile::tempdir().unwrap();
    let (_, mut b) = good(dir.path());
    b[0] = b'X';
    let e = open_bytes(dir.path(), "m.fwb", &b).unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::Header {
                source: HeaderError::BadMagic,
                ..
            }
        ),
        "{e}"
    );
    let e = open_bytes(dir.path(), "csv.fwb", CSV.as_bytes()).unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::Header {
                source: HeaderError::BadMagic,
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn wrong_format_version() {
    // Version 1 (the per-number FST before leaves) and a future version are both refused.
    for found in [1u8, 3] {
        let dir = tempfile::tempdir().unwrap();
        let (_, mut b) = good(dir.path());
        b[8] = found;
        let e = open_bytes(dir.path(), "v.fwb", &b).unwrap_err();
        assert!(
            matches!(
                e,
                SnapshotError::Header {
                    source: HeaderError::UnsupportedVersion { found: f },
                    ..
                } if f == u32::from(found)
            ),
            "{e}"
        );
        assert!(
            e.to_string().contains("recompile") && e.to_string().contains("upgrade"),
            "{e}"
        );
    }
}

#[test]
fn truncated_anywhere() {
    let dir = tempfile::tempdir().unwrap();
    let (_, b) = good(dir.path());
    for n in 1..b.len() {
        let e = open_bytes(dir.path(), "t.fwb", &b[..n]).unwrap_err();
        assert!(
            matches!(
                e,
                SnapshotError::Header { .. } | SnapshotError::Length { .. }
            ),
            "truncated to {n}: {e}"
        );
    }
    let mut longer = b.clone();
    longer.extend_from_slice(b"junk");
    let e = open_bytes(dir.path(), "l.fwb", &longer).unwrap_err();
    assert!(matches!(e, SnapshotError::Length { .. }), "{e}");
}

#[test]
fn flipped_byte_in_header_strings_or_body() {
    let dir = tempfile::tempdir().unwrap();
    let (_, b) = good(dir.path());
    let h = header_len(&b);
    // A byte in the fixed header, one in the string tables, one in the body.
    let strings_at = b.windows(5).position(|w| w == b"loan\x00").unwrap_or(190);
    for (i, want_header) in [
        (20, true),
        (strings_at, true),
        (h + 3, false),
        (b.len() - 1, false),
    ] {
        let mut c = b.clone();
        c[i] ^= 0x01;
        let e = open_bytes(dir.path(), "f.fwb", &c).unwrap_err();
        if want_header {
            assert!(matches!(e, SnapshotError::Header { .. }), "byte {i}: {e}");
        } else {
            assert!(
                matches!(e, SnapshotError::BodyCorrupt { .. }),
                "byte {i}: {e}"
            );
        }
        assert!(e.to_string().contains("again"), "{e}");
    }
}

#[test]
fn every_single_bit_flip_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (_, b) = good(dir.path());
    for i in 0..b.len() {
        for bit in [0x01u8, 0x80] {
            let mut c = b.clone();
            c[i] ^= bit;
            assert!(
                open_bytes(dir.path(), "x.fwb", &c).is_err(),
                "flip {bit:#x} at {i} accepted"
            );
        }
    }
}

#[test]
fn signatures() {
    let dir = tempfile::tempdir().unwrap();
    let (p, b) = good(dir.path());
    let op = dir.path().join("op");
    let public = sign::keygen(&op, false).unwrap();
    let other = sign::keygen(&dir.path().join("other"), false).unwrap();
    let (key, _) = sign::key_paths(&op);

    // Missing signature.
    let e = Snapshot::open_signed(&p, &[public]).unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::Signature {
                source: SignError::Missing { .. },
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("fraudwall sign"), "{e}");

    // Good signature; wrong key refused.
    let s = Snapshot::open(&p).unwrap();
    let sk = sign::read_signing_key(&key).unwrap();
    sign::sign_to_file(&sk, s.header_bytes(), &sign::sig_path(&p)).unwrap();
    drop(s);
    Snapshot::open_signed(&p, &[public]).unwrap();
    Snapshot::open_signed(&p, &[other, public]).unwrap();
    let e = Snapshot::open_signed(&p, &[other]).unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::Signature {
                source: SignError::Invalid { .. },
                ..
            }
        ),
        "{e}"
    );

    // A different (validly compiled) snapshot under the old signature.
    let csv2 = CSV.replace("95,police", "96,police");
    let p2 = dir.path().join("good.fwb");
    compile_csv_text(&csv2, &CompileOptions::default(), &p2).unwrap();
    let e = Snapshot::open_signed(&p2, &[public]).unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::Signature {
                source: SignError::Invalid { .. },
                ..
            }
        ),
        "{e}"
    );
    std::fs::write(&p, &b).unwrap();
    Snapshot::open_signed(&p, &[public]).unwrap();

    // Garbage and bit-flipped signature files.
    let sig = sign::sig_path(&p);
    let text = std::fs::read_to_string(&sig).unwrap();
    std::fs::write(&sig, "not a signature\n").unwrap();
    let e = Snapshot::open_signed(&p, &[public]).unwrap_err();
    assert!(
        matches!(
            e,
            SnapshotError::Signature {
                source: SignError::Malformed { .. },
                ..
            }
        ),
        "{e}"
    );
    let at = text.find("\nsig ").unwrap() + 5;
    let mut flipped = text.clone().into_bytes();
    flipped[at] = if flipped[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(&sig, &flipped).unwrap();
    let e = Snapshot::open_signed(&p, &[public]).unwrap_err();
    assert!(matches!(e, SnapshotError::Signature { .. }), "{e}");
}

/// A dense list: array and bitmap leaves, exceptions, a prefix and a short code.
fn dense_csv() -> String {
    let mut csv = String::from(
        "number,action,category,score,source\n+4420*,tag,range,40,x\n+112,allow,,0,x\n",
    );
    for t in (0..10_000).step_by(7) {
        let action = if t % 11 == 0 { "warn" } else { "block" };
        csv.push_str(&format!("+44201234{t:04},{action},c,{},s\n", 50 + t % 3));
    }
    for t in (0..10_000).step_by(97) {
        csv.push_str(&format!("+44205678{t:04},tag,c,{},s\n", t % 100));
    }
    csv
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// An unsigned local file is untrusted too: bytes changed in the body, with both hashes
    /// recomputed so that open accepts the file, never make a lookup or the entry stream
    /// panic.
    #[test]
    fn rehashed_garbage_in_the_body_never_panics(
        edits in proptest::collection::vec((0.0f64..1.0, proptest::prelude::any::<u8>()), 1..64),
    ) {
        use fraudwall::blocklist::format::Header;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dense.fwb");
        compile_csv_text(&dense_csv(), &CompileOptions::default(), &p).unwrap();
        let mut bytes = std::fs::read(&p).unwrap();
        let (mut header, h) = Header::decode(&bytes).unwrap();
        let body_len = bytes.len() - h;
        for (at, b) in &edits {
            let i = h + ((*at * body_len as f64) as usize).min(body_len - 1);
            bytes[i] = *b;
        }
        header.body_hash = *blake3::hash(&bytes[h..]).as_bytes();
        let head = header.encode();
        proptest::prop_assert_eq!(head.len(), h);
        bytes[..h].copy_from_slice(&head);
        if let Ok(snap) = open_bytes(dir.path(), "edited.fwb", &bytes) {
            for q in ["+442012340000", "+442012340007", "+442056780097", "+442099990000", "+112", "+4420"] {
                let _ = snap.lookup(&q.parse().unwrap());
            }
            for t in (0..10_000).step_by(13) {
                let _ = snap.lookup(&format!("+44201234{t:04}").parse().unwrap());
            }
            let _ = snap.entries().count();
        }
    }
}
