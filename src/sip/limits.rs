//! Size limits enforced while parsing and framing.

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
    /// Defaults sized for carrier signalling: 64 KiB messages (the UDP maximum), 128
    /// header fields, 8 KiB per header field, 32 Vias.
    pub const DEFAULT: Limits = Limits {
        max_message_size: 65_535,
        max_headers: 128,
        max_header_line: 8_192,
        max_vias: 32,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}
