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
//! subscribers/        the subscribers' own lists: manifest.json, .sig, base-<v>.fwb
//! protected/          the protected list: manifest.json, .sig, base-<v>.fwb
//! ```
//!
//! The blocklist lives at the root; the other named lists ([`ListKind`]) each have a
//! directory with a manifest of their own, so each is published, versioned, fetched and
//! swapped on its own (`fraudwall publish --list subscribers`, `feed.lists` on the node).
//! They have no delta form and are published whole.
//!
//! ## Example
//!
//! ```text
//! fraudwall keygen --output /tmp/op                                  # op.key, op.pub
//! fraudwall compile --profile generic --output new.fwb list.csv      # the whole list
//! fraudwall publish --feed-dir /tmp/feed --key /tmp/op.key new.fwb   # base or delta
//! fraudwall feed serve --listen 127.0.0.1:8080 /tmp/feed             # or nginx, a CDN, S3
//! fraudwall run --feed http://127.0.0.1:8080/manifest.json --feed-key /tmp/op.pub \
//!     --feed-poll 2s --cache-dir /tmp/fw-cache --next-hop 127.0.0.1:5070
//! curl -s 127.0.0.1:9060/status | jq .feed        # active version, source, age, deltas
//! curl -s -X POST 127.0.0.1:9060/reload           # poll now (or: kill -HUP <pid>)
//! ```
//!
//! Publish again after every compile: a small change becomes a delta (a 1,000-number delta
//! on a 10M-row, 96 MB base is about 13 KB), a large one, or deltas past `--max-delta-fraction` of
//! the base, a new base. A node polls the manifest with `If-None-Match` (a `304` costs a few
//! hundred bytes), downloads only the new files, and swaps with one atomic store; the packet
//! path only ever does an `ArcSwap` load.
//!
//! ## Quirks
//!
//! - Deltas are incremental (each against the state before it) and all name the same base;
//!   a lookup walks every delta then the base, so the publisher caps their number
//!   (`--max-deltas`) as well as their size.
//! - The publisher keeps the last whole list in `.publish/current.fwb` inside the feed
//!   directory to compute the next delta; names starting with `.` are never served.
//! - `manifest.json` and `manifest.json.sig` are two files: a node that fetches them while
//!   a publish replaces them may see a mismatched pair, so on a bad signature it fetches the
//!   pair once more (100 ms later) before refusing it.
//! - Pinning (`--feed-pin V`) makes a node follow `manifest-V.json`, which the publisher
//!   keeps for the last `--keep` versions.
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
//! | [`list_kind`] | the feed's named lists and where each lives | none |
//! | [`whole`] | loaders of the lists published whole (subscribers, protected) | files |
//!
//! The protocol core ([`manifest`], [`poll`], [`policy`]) reads no clock and does no I/O:
//! time, bytes and random numbers are passed in, so every rule is tested deterministically.
//!
//! ## Trust
//!
//! Nothing from the network is used before it is verified, in this order: the manifest's
//! signature against the configured keys ([`manifest::UncheckedManifest::verify`]), its
//! version against the active one (rollback refusal in [`poll::Poller`]), each file's size
//! and blake3 against the signed manifest ([`fetch::Download::finish`]), and finally the
//! snapshot's own header and FST checks when it is opened. Any failure leaves the active snapshot in
//! place and is counted by reason.

pub mod cache;
pub mod delta;
pub mod fetch;
pub mod layered;
pub mod list_kind;
pub mod manifest;
pub mod node;
pub mod policy;
pub mod poll;
pub mod publish;
pub mod run;
pub mod serve;
pub mod whole;

pub use list_kind::ListKind;
pub use manifest::{FileRef, Hash, Manifest, ManifestError, UncheckedManifest};
