//! The transport floor: fraudwall's UDP transport with a relay that does almost no SIP work.
//!
//! This is a measuring tool for the proxy issue's CPU target, not a proxy. It runs the same
//! [`UdpBound`] workers (SO_REUSEPORT sockets, `recvmmsg`/`sendmmsg` batches) as
//! `fraudwall run`, but its handler only:
//! - pushes a fixed `Via` line after the request line of every request and sends it to the
//!   next hop;
//! - drops the first `Via` line of every response and sends it to the last address a request
//!   first came from (one caller, as in the sipp harness).
//!
//! No parsing, no screening, no metrics. What it costs per call is what the kernel and the
//! transport cost, so `fraudwall run` minus this is the part the SIP core can still save.
//! Run it where `fraudwall run` would be, through the harness, with a callers file whose
//! callers are all `allow` (nothing is blocked or tagged here):
//!
//! ```text
//! cargo run --release --example udp_floor -- 127.0.0.1:5060 127.0.0.1:5070
//! ```
//!
//! `--workers N` sets the number of worker threads (default 2).
//!
//! It runs until killed (Ctrl-C, SIGTERM).

use bytes::{Bytes, BytesMut};
use fraudwall::proxy::udp::{UdpBound, UdpConfig};
use fraudwall::proxy::{Dispatch, DropReason, Handler, Inbound, Outbound, Transport};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

const VIA: &[u8] = b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-floor\r\n";

struct Relay {
    next_hop: SocketAddr,
    /// The first request's source: the one caller (no lock on the message path).
    caller: OnceLock<SocketAddr>,
}

impl Handler for Relay {
    fn handle(&self, msg: Inbound, _now: Instant, out: &mut Vec<Outbound>) {
        let data = &msg.data[..];
        let Some(first_eol) = memchr::memchr(b'\n', data).map(|i| i + 1) else {
            return;
        };
        if data.starts_with(b"SIP/2.0 ") {
            // Response: drop the line after the status line if it is a Via (ours).
            let rest = &data[first_eol..];
            let skip = if rest.starts_with(b"Via:") {
                memchr::memchr(b'\n', rest).map_or(0, |i| i + 1)
            } else {
                0
            };
            let mut b = BytesMut::with_capacity(data.len());
            b.extend_from_slice(&data[..first_eol]);
            b.extend_from_slice(&rest[skip..]);
            if let Some(&destination) = self.caller.get() {
                out.push(Outbound {
                    data: b.freeze(),
                    destination,
                    transport: Transport::Udp,
                    source: None,
                });
            }
        } else {
            let _ = self.caller.get_or_init(|| msg.source);
            let mut b = BytesMut::with_capacity(data.len() + VIA.len());
            b.extend_from_slice(&data[..first_eol]);
            b.extend_from_slice(VIA);
            b.extend_from_slice(&data[first_eol..]);
            out.push(Outbound {
                data: Bytes::from(b),
                destination: self.next_hop,
                transport: Transport::Udp,
                source: None,
            });
        }
    }

    fn poll_timeout(&self, _now: Instant, _out: &mut Vec<Outbound>) {}

    fn on_send_error(&self, _destination: SocketAddr, _transport: Transport, _now: Instant) {}

    fn dropped(&self, _source: SocketAddr, _transport: Transport, _reason: DropReason) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage =
        "usage: udp_floor LISTEN NEXT_HOP [--workers N] (e.g. 127.0.0.1:5060 127.0.0.1:5070)";
    let listen: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let next_hop: SocketAddr = args.next().ok_or(usage)?.parse()?;
    let workers: usize = match (args.next().as_deref(), args.next()) {
        (None, _) => 2,
        (Some("--workers"), Some(n)) => n.parse()?,
        _ => return Err(usage.into()),
    };
    let bound = UdpBound::bind(UdpConfig {
        listen: vec![listen],
        workers,
        batch: 32,
        max_message: 65535,
        spread: fraudwall::proxy::udp::UdpSpread::Random,
        queue_delay: false,
        slice: Some(std::time::Duration::from_micros(100)),
        realtime_priority: None,
    })?;
    let relay = Arc::new(Relay {
        next_hop,
        caller: OnceLock::new(),
    });
    let dispatch = Dispatch::new(relay.clone());
    let _transport = bound.start(relay, dispatch)?;
    eprintln!(
        "udp_floor: {listen} -> {next_hop}, pid {}",
        std::process::id()
    );
    loop {
        std::thread::park();
    }
}
