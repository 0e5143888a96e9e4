//! Framing messages on a stream transport (TCP) by Content-Length (RFC 3261 §18.3).
//!
//! The transport appends received bytes to a buffer and asks [`message_len`] where the first
//! message ends. `Ok(None)` means "read more"; `Ok(Some(n))` means `buf[..n]` is one message
//! (leading keep-alive CRLFs included, which [`SipMessage::parse`](super::SipMessage::parse)
//! skips); an error means the stream cannot be resynchronised and should be closed.
//! A buffer holding nothing but CRLF keep-alives (RFC 5626 §4.4.1) is drained with
//! [`keepalive_len`].
//!
//! ```
//! use fraudwall::sip::{framing, Limits};
//! let stream = b"\r\n\r\nOPTIONS sip:p SIP/2.0\r\nContent-Length: 2\r\n\r\nhiINVITE";
//! let n = framing::message_len(stream, &Limits::default()).unwrap();
//! assert_eq!(n, Some(stream.len() - 6));
//! ```

use super::error::FramingError;
use super::header::HeaderName;
use super::limits::Limits;
use super::scan::{parse_u32, trim};

/// Number of leading CR/LF bytes (keep-alives) at the start of `buf`.
pub fn keepalive_len(buf: &[u8]) -> usize {
    buf.iter()
        .position(|&c| c != b'\r' && c != b'\n')
        .unwrap_or(buf.len())
}

/// Where the first message in `buf` ends, if it is complete. See the module docs.
pub fn message_len(buf: &[u8], limits: &Limits) -> Result<Option<usize>, FramingError> {
    let skip = keepalive_len(buf);
    let rest = &buf[skip..];
    if rest.is_empty() {
        return Ok(None);
    }
    let too_large = FramingError::TooLarge {
        max: limits.max_message_size,
    };
    // Walk the header lines until the empty line, noting Content-Length.
    let mut pos = 0;
    let mut content_length: Option<usize> = None;
    let body_start = loop {
        let Some(lf) = rest[pos..].iter().position(|&c| c == b'\n') else {
            return if rest.len() > limits.max_message_size {
                Err(too_large)
            } else {
                Ok(None)
            };
        };
        let line_end = pos + lf;
        let line = &rest[pos..line_end];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos = line_end + 1;
        if pos > limits.max_message_size {
            return Err(too_large);
        }
        if line.is_empty() {
            break pos;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            continue;
        }
        if let Some(colon) = line.iter().position(|&c| c == b':') {
            if HeaderName::from_bytes(trim(&line[..colon])) == HeaderName::ContentLength {
                let n = parse_u32(trim(&line[colon + 1..])).ok_or(FramingError::BadContentLength)?
                    as usize;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(FramingError::BadContentLength);
                }
                content_length = Some(n);
            }
        }
    };
    let n = content_length.ok_or(FramingError::MissingContentLength)?;
    let total = body_start.checked_add(n).ok_or(too_large.clone())?;
    if total > limits.max_message_size {
        return Err(too_large);
    }
    Ok((rest.len() >= total).then_some(skip + total))
}

#[cfg(test)]
mod tests {
    use super::*;

    const L: Limits = Limits::DEFAULT;

    #[test]
    fn frames_by_content_length() {
        let m = b"MESSAGE sip:a@b SIP/2.0\r\nl: 5\r\n\r\nhelloNEXT";
        assert_eq!(message_len(m, &L), Ok(Some(m.len() - 4)));
        assert_eq!(message_len(&m[..m.len() - 6], &L), Ok(None));
        assert_eq!(message_len(&m[..20], &L), Ok(None));
    }

    #[test]
    fn bare_lf_and_keepalives() {
        let m = b"\r\n\r\nBYE sip:a@b SIP/2.0\ncontent-length:0\n\n";
        assert_eq!(message_len(m, &L), Ok(Some(m.len())));
        assert_eq!(keepalive_len(b"\r\n\r\n"), 4);
        assert_eq!(message_len(b"\r\n\r\n", &L), Ok(None));
    }

    #[test]
    fn errors() {
        assert_eq!(
            message_len(b"BYE sip:a@b SIP/2.0\r\n\r\n", &L),
            Err(FramingError::MissingContentLength)
        );
        assert_eq!(
            message_len(b"BYE sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n", &L),
            Err(FramingError::BadContentLength)
        );
        assert_eq!(
            message_len(
                b"BYE sip:a@b SIP/2.0\r\nl: 1\r\nContent-Length: 2\r\n\r\n",
                &L
            ),
            Err(FramingError::BadContentLength)
        );
        let small = Limits {
            max_message_size: 64,
            ..L
        };
        assert_eq!(
            message_len(
                b"BYE sip:a@b SIP/2.0\r\nContent-Length: 100\r\n\r\n",
                &small
            ),
            Err(FramingError::TooLarge { max: 64 })
        );
        let endless = vec![b'a'; 100];
        assert_eq!(
            message_len(&endless, &small),
            Err(FramingError::TooLarge { max: 64 })
        );
    }
}
