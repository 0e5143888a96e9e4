//! The blocklist engine: operator lists compiled into signed, memory-mapped FST snapshots,
//! and the lookup the proxy runs for every call.
//!
//! ## Guide
//!
//! - **Sources** ([`compile`](mod@compile)): CSV `number,action,category,score,source` with a header row,
//!   or plain one-number-per-line lists with a default action. `number` is an exact number or
//!   a prefix (`+8617012*`), in E.164 or in the national form of the chosen
//!   [`NumberingProfile`](crate::numbers::NumberingProfile). The format is documented in
//!   `blocklists/FORMAT.md`.
//! - **Snapshot** ([`format`](mod@format)): header (magic, versions, counts, string tables, hashes) then
//!   the body ([`body`]): leaves holding the numbers of dense allocation blocks, and an `fst`
//!   map over prefixes, sparse numbers and block heads. Keys pack two digits per byte
//!   ([`key`]); values pack action, tombstone, score, category and source into the low bits
//!   ([`value`]) and live in a table the FST and leaves index.
//! - **Lookup** ([`Snapshot::lookup`]): one FST walk down the number's head, then at most two
//!   cache lines of a leaf; longest match wins (exact beats any prefix, longer prefix beats
//!   shorter), no allocation, never panics.
//! - **Trust** ([`sign`]): a detached ed25519 signature over the header, `<file>.sig`.
//!
//! ```no_run
//! use fraudwall::blocklist::{compile_csv_text, Action, CompileOptions, Snapshot};
//! let csv = "number,action,category,score,source\n\
//!            +8617012*,block,fraud-range,80,reports\n\
//!            +8617012345678,allow,,0,whitelist\n";
//! compile_csv_text(csv, &CompileOptions::default(), "/tmp/l.fwb".as_ref())?;
//! let snap = Snapshot::open("/tmp/l.fwb")?;
//! assert_eq!(snap.lookup(&"+8617012000000".parse()?).unwrap().action, Action::Block);
//! assert_eq!(snap.lookup(&"+8617012345678".parse()?).unwrap().action, Action::Allow);
//! assert!(snap.lookup(&"+8613900000000".parse()?).is_none());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod action;
pub mod body;
pub mod compile;
pub mod diff;
pub mod format;
pub mod hex;
pub mod key;
pub mod sign;
pub mod snapshot;
pub mod synth;
pub mod value;
pub mod write;

pub use action::{Action, ActionParseError};
pub use compile::{
    compile, compile_csv_text, compile_files, CompileError, CompileOptions, CompileReport, Input,
    RowError,
};
pub use format::{Counts, Kind};
pub use key::EntryKey;
pub use sign::SignError;
pub use snapshot::{Load, Match, Snapshot, SnapshotError, SnapshotInfo};
