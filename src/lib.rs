//! # fraudwall
//!
//! Scam-call interception for telephone carriers: a SIP proxy hop in front of a carrier's
//! switches that reads every incoming call's caller ID, normalizes it to E.164, looks it up in
//! a compiled blocklist and allows, tags, warns or blocks the call inline.
//!
//! ## Architecture
//!
//! Data flows one way: packet in, parse, caller, lookup, verdict, action, packet out.
//!
//! | module | job |
//! |---|---|
//! | [`numbers`] | caller values (SIP/tel URIs, national forms) to validated E.164 |
//! | [`policy`] | from a call (its context) to a verdict: the rule chain over the blocklist, subscriber and protected lists |
//! | [`peers`] | peer groups: where a call entered (trust, international, numbering profile) |
//! | [`blocklist`] | sources, compiled FST snapshots (mmap, signed), lookup |
//! | [`sip`] | zero-copy SIP message view for the hot path |
//! | [`proxy`] | the sans-I/O stateless proxy core and its socket transports |
//! | [`feed`] | the central feed: signed manifests, deltas, publishing, node updates |
//! | [`cli`] | the `fraudwall` command line |
//! | [`config`] | the `fraudwall run` TOML configuration |
//! | [`telemetry`] | pre-registered Prometheus metrics |
//! | [`admin`] | admin HTTP: `/metrics`, `/healthz`, `/status` |
//! | [`decision_log`] | JSON lines per screened call, off the packet path |
//! | [`simulate`] | a generated carrier day replayed through the detector (`fraudwall simulate`) |
//! | [`detection`] | behavioural detection: per-caller features in bounded memory, rules, findings |
//! | [`behaviour`] | behavioural detection in the product: metrics, `/suspects`, shared counters over Redis |

pub mod admin;
pub mod api;
pub mod behaviour;
pub mod blocklist;
pub mod cli;
pub mod config;
pub mod decision_log;
pub mod detection;
pub mod feed;
pub mod file_stamp;
pub mod numbers;
pub mod peers;
pub mod policy;
pub mod protected;
pub mod proxy;
pub mod simulate;
pub mod sip;
pub mod subscribers;
pub mod telemetry;
