//! The central feed: signed snapshots and deltas, published, fetched and hot-swapped.
//!
//! Operators update the blocklist in one place; every node enforces the change within
//! seconds, without a restart, and never trusts a file an attacker or a broken disk could
//! have changed.
//!
//! ## What a feed is
//!
//! A directory of static files, so any HTTP server, CDN or object store can serve it to any
//! number of nodes:
//!
//! ```text
//! manifest.json       feed name, version, created/expires, base and deltas (size, blake3)
//! manifest.json.sig   detached ed25519 signature over manifest.json
//! base-40.fwb         the whole list as of version 40
//! delta-41.fwb        additions and tombstones since the previous state
//! delta-42.fwb
//! ```
//!
//! ## Pieces
//!
//! | module | job | I/O |
//! |---|---|---|
//! | [`manifest`] | the manifest, its signature, unchecked → verified | none |
//! | [`poll`] | the node's update state machine (when to poll, what to fetch, what to refuse) | none |
//! | [`policy`] | the publisher's choice: delta, new base (folding), or refresh | none |
//! | [`delta`] | compiling a delta (additions + tombstones) between two full lists | files |
//! | [`layered`] | base + deltas as one lookup; the snapshot [`node::Loader`] | none |
//! | [`cache`] | the node's cache directory: atomic writes, last good state at start | files |
//! | [`fetch`] | HTTP: conditional manifest fetch, bounded downloads, size and hash checks | HTTP |
//! | [`node`] | the node's updater inside `fraudwall run`: restore, poll, fetch, load, swap | HTTP, files |
//! | [`publish`] | `fraudwall publish`: whole list in, delta or base out, signed manifest | files |
//! | [`run`] | the `[feed]` config and start-up inside `fraudwall run`, SIGHUP | — |
//! | [`serve`] | `fraudwall feed serve`: a static server for labs and tests | HTTP |
//!
//! The protocol core ([`manifest`], [`poll`], [`policy`]) reads no clock and does no I/O:
//! time, bytes and random numbers are passed in, so every rule is tested deterministically.
//!
//! ## Trust
//!
//! Nothing from the network is used before it is verified, in this order: the manifest's
//! signature against the configured keys ([`manifest::UncheckedManifest::verify`]), its
//! version against the active one (rollback refusal in [`poll::Poller`]), each file's size
//! and blake3 against the signed manifest ([`fetch::Download::finish`]), and finally the snapshot's
//! own header and FST checks when it is opened. Any failure leaves the active snapshot in
//! place and is counted by reason.

pub mod cache;
pub mod delta;
pub mod fetch;
pub mod layered;
pub mod manifest;
pub mod node;
pub mod policy;
pub mod poll;
pub mod publish;
pub mod run;
pub mod serve;

pub use manifest::{FileRef, Hash, Manifest, ManifestError, UncheckedManifest};
