//! Fuzz the feed manifest verifier and parser: arbitrary `manifest.json` and
//! `manifest.json.sig` bytes must be refused with an error, never panic. To reach the
//! parser and its validation past the signature check, the body is also verified with a
//! valid signature made by the fuzzer's own key.
//!
//! The input is the body, then optionally 0xFF 0x00 and the signature file.
//!
//! Run: `cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run manifest_verify -- -max_total_time=60`

#![no_main]

use ed25519_dalek::SigningKey;
use fraudwall::feed::manifest::sign_bytes;
use fraudwall::feed::{ManifestError, UncheckedManifest};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (body, sig) = match data.windows(2).position(|w| w == [0xFF, 0x00]) {
        Some(at) => (&data[..at], &data[at + 2..]),
        None => (data, &[][..]),
    };
    let key = SigningKey::from_bytes(&[7; 32]);
    let keys = [key.verifying_key()];
    let _ = UncheckedManifest::new(body.to_vec(), sig.to_vec()).verify(&keys);
    // Signed for real: the JSON parser and the manifest's own checks see every body.
    let signed = sign_bytes(body, &key);
    if let Ok(m) = UncheckedManifest::new(body.to_vec(), signed).verify(&keys) {
        // What verifies must sign and verify again (the parser and serializer agree).
        let (body, sig) = m.sign(&key);
        match UncheckedManifest::new(body, sig).verify(&keys) {
            // Pretty-printing may outgrow the size limit a compact body met.
            Ok(_) | Err(ManifestError::TooLarge(_)) => {}
            Err(e) => panic!("a verified manifest, signed again, is refused: {e}"),
        }
    }
});
