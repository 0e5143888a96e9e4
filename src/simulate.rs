//! The traffic simulator behind `fraudwall simulate`: a carrier day generated from a
//! [`Scenario`] (deterministic by its seed) and replayed through the behavioural
//! [`Detector`] with a simulated clock.
//!
//! The day holds ordinary subscribers (Poisson arrivals on a diurnal profile, a few calls a
//! day, mostly to their own contacts, long calls, now and then a redial burst to a busy
//! number), busy legitimate lines that are in no list (small businesses, sales staff),
//! enterprises and call centres with legitimate high volume declared `allow` in the global
//! list (so exempt, as the policy makes them: their findings are ignored), robocall
//! campaigns (hundreds of calls an hour per number, harvested or sequential callees, most
//! under 10 s), Wangiri (one ring from international ranges, then cancel) and
//! number-rotating campaigns (each number used for 20 to 200 calls, then dropped).
//!
//! Every call becomes the events the proxy would see (INVITE, 180, 200 and BYE, or CANCEL,
//! or an error response), replayed in time order. A call the detector's finding blocks
//! is answered 608 at once, as the proxy would, and rings no one. The replay goes through the
//! detector directly, not through the proxy core and policy, but the way the core asks it
//! ([`Detector::visit`]: the call counted, the finding of the caller's calls before it): the
//! verdict is that finding unless the caller is exempt.
//!
//! [`Detector`]: crate::detection::Detector
//! [`Detector::visit`]: crate::detection::Detector::visit

mod day;
mod replay;
mod report;
mod scenario;

pub use replay::run;
pub use report::{CatchReport, ClassReport, Report, Targets};
pub use scenario::{
    BusyLines, Campaigns, Enterprises, Rotating, Scenario, SimulateError, Subscribers,
};
