//! Size limits enforced while parsing and framing.
//!
//! # Why these defaults
//!
//! The limits bound the work one message can cause; they are not where legitimate traffic
//! should ever be refused. Sized from what a carrier path can legitimately carry:
//!
//! - **Vias, 128.** Every proxy on the path adds one Via, and Max-Forwards (70 when the
//!   caller sets it, RFC 3261 §8.1.1.6) bounds the path to 70 proxies: 71 Vias at most on a
//!   request that was not refused with 483 on the way. 128 leaves room for elements that
//!   do not decrement Max-Forwards or that add two Vias (a proxy that forks internally),
//!   and stays far from what costs anything (each Via is parsed once, for the loop check).
//!   Kamailio, OpenSIPS and PJSIP have no Via count limit at all, only a message-size one.
//! - **Header fields, 256.** A 70-hop path writes up to 71 Vias and 70 Record-Routes on
//!   separate lines; with the few dozen other headers of a carrier INVITE (P-Asserted-Identity,
//!   Identity, P-Charging-Vector, Diversion, History-Info ...) that is under 200. The index
//!   costs 28 bytes per field, and grows only as fields are found.
//! - **Header line, 16 KiB.** A Via or Record-Route list written on one line (up to 70
//!   entries of ~100 bytes) and an Identity header with a PASSporT (1-2 KiB) fit with room.
//!   Kamailio and OpenSIPS limit only the whole message.
//! - **Message, 65,535 bytes.** The largest UDP payload, and Kamailio's and OpenSIPS's
//!   `BUF_SIZE` (65535); PJSIP's default `PJSIP_MAX_PKT_LEN` is 4000 (Asterisk raises it to
//!   32000).

/// Bounds on what one message may cost. Anything over a limit is rejected with a typed
/// error before more work is spent on it, so nothing from the network can make parsing
/// slow or memory grow without bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message (start line, headers and body) in bytes.
    pub max_message_size: usize,
    /// Most header fields (lines, not comma-separated values) in one message.
    pub max_headers: usize,
    /// Longest start line or header field (including continuation lines) in bytes.
    pub max_header_line: usize,
    /// Most Via values (counting comma-separated values) in one message.
    pub max_vias: usize,
}

impl Limits {
    /// Defaults sized for carrier signalling (see the module docs): 64 KiB messages (the UDP
    /// maximum), 256 header fields, 16 KiB per header field, 128 Vias.
    pub const DEFAULT: Limits = Limits {
        max_message_size: 65_535,
        max_headers: 256,
        max_header_line: 16_384,
        max_vias: 128,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
