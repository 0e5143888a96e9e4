//! The blocklist engine: sources, compiled FST snapshots, lookup.
//!
//! (Skeleton: the shared vocabulary. The blocklist work fills in compile, snapshot and lookup.)

mod action;

pub use action::{Action, ActionParseError};
