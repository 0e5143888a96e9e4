//! Closes a connection on a renegotiation attempt, which rustls by itself only answers with a
//! warning: below the TLS layer, the record headers of the inbound bytes are followed, and once
//! the handshake is done a record of content type `handshake` (22) is an error. After the
//! handshake, TLS 1.2 sends no handshake record but a renegotiation (ClientHello); TLS 1.3 sends
//! every post-handshake message (KeyUpdate, tickets) inside `application_data` records.

use metrics::Counter;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// TLS record content type `handshake`.
const HANDSHAKE_RECORD: u8 = 22;

/// The error a read returns when the peer tries to renegotiate (read it back with
/// `io::Error::get_ref()` / `downcast_ref`).
#[derive(Debug, thiserror::Error)]
#[error("TLS peer tried to renegotiate after the handshake; fraudwall never renegotiates, connection closed")]
pub struct RenegotiationAttempt;

/// Where the inbound byte stream is in its record sequence.
#[derive(Debug, Default)]
struct RecordScan {
    header: [u8; 5],
    have: usize,
    body_left: usize,
}

impl RecordScan {
    /// Follows `data`; true when a handshake record starts while `armed`.
    fn feed(&mut self, mut data: &[u8], armed: bool) -> bool {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = self.body_left.min(data.len());
                self.body_left -= n;
                data = &data[n..];
                continue;
            }
            self.header[self.have] = data[0];
            self.have += 1;
            data = &data[1..];
            if self.have == self.header.len() {
                self.have = 0;
                self.body_left = usize::from(u16::from_be_bytes([self.header[3], self.header[4]]));
                if armed && self.header[0] == HANDSHAKE_RECORD {
                    return true;
                }
            }
        }
        false
    }
}

/// The byte stream under a server-side TLS session, watching for renegotiation.
#[derive(Debug)]
pub struct RecordWatch<S> {
    inner: S,
    scan: RecordScan,
    armed: bool,
    tripped: bool,
    counter: Counter,
}

impl<S> RecordWatch<S> {
    pub(crate) fn new(inner: S, counter: Counter) -> RecordWatch<S> {
        RecordWatch {
            inner,
            scan: RecordScan::default(),
            armed: false,
            tripped: false,
            counter,
        }
    }

    /// From now on (the handshake is done) a handshake record is a renegotiation attempt.
    pub(crate) fn arm(&mut self) {
        self.armed = true;
    }

    /// The wrapped stream (e.g. the `TcpStream`, for its addresses).
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for RecordWatch<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.tripped {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                RenegotiationAttempt,
            )));
        }
        let before = buf.filled().len();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let armed = this.armed;
                if this.scan.feed(&buf.filled()[before..], armed) {
                    this.tripped = true;
                    this.counter.increment(1);
                    tracing::debug!("tls: renegotiation attempt, closing");
                    buf.set_filled(before);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        RenegotiationAttempt,
                    )));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for RecordWatch<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(kind: u8, len: u16) -> Vec<u8> {
        let mut r = vec![kind, 3, 3];
        r.extend_from_slice(&len.to_be_bytes());
        r.extend(std::iter::repeat_n(0xAA, usize::from(len)));
        r
    }

    #[test]
    fn handshake_records_only_count_once_armed() {
        let mut s = RecordScan::default();
        assert!(!s.feed(&record(22, 40), false));
        assert!(!s.feed(&record(23, 300), true));
        // Split across reads, byte by byte.
        let bytes = [record(23, 7), record(22, 3)].concat();
        let mut tripped = false;
        for b in &bytes {
            tripped |= s.feed(std::slice::from_ref(b), true);
        }
        assert!(tripped);
    }

    #[test]
    fn body_bytes_that_look_like_headers_are_skipped() {
        let mut s = RecordScan::default();
        let mut r = vec![23, 3, 3, 0, 5];
        r.extend_from_slice(&[22, 3, 3, 0, 1]);
        assert!(!s.feed(&r, true));
        assert!(s.feed(&record(22, 0), true));
    }
}
