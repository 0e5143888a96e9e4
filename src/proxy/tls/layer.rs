//! [`TlsLayer`]: SIP over TLS as a [`StreamLayer`], so the stream-connection loop that serves
//! TCP serves TLS too (framing, deadlines, write queues, the shared connection pool).
//!
//! - Accepted connections run the server handshake ([`TlsServer::accept`], bounded by
//!   `tls.handshake_timeout`) in their own task; a failure closes the connection, counted by
//!   reason in `fraudwall_tls_handshake_failures_total` and as `dropped_total{reason=
//!   "tls_handshake"}`. A client certificate whose identity is in `tls.trusted_identities`
//!   makes the connection a trusted peer ([`crate::proxy::Inbound::verified_peer`]).
//! - Connections to next hops run the client handshake ([`TlsClient::connect`]) against the
//!   name the hop is configured with (`server_name` in `proxy.next_hops`), else its IP
//!   address (which the certificate must then carry as an IP SAN).

use super::{RecordWatch, TlsClient, TlsServer};
use crate::proxy::stream::StreamLayer;
use crate::proxy::{DropReason, Transport};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// A SIP-over-TLS connection, accepted or opened.
pub enum TlsSipStream {
    /// Accepted by our listener (renegotiation attempts fail the next read).
    Server(Box<tokio_rustls::server::TlsStream<RecordWatch<TcpStream>>>),
    /// Opened to a next hop.
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for TlsSipStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TlsSipStream::Server(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            TlsSipStream::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for TlsSipStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            TlsSipStream::Server(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            TlsSipStream::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TlsSipStream::Server(s) => Pin::new(s.as_mut()).poll_flush(cx),
            TlsSipStream::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            TlsSipStream::Server(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            TlsSipStream::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The TLS stream layer: a server context for the listener, a client context for next hops.
pub struct TlsLayer {
    server: Arc<TlsServer>,
    client: Option<Arc<TlsClient>>,
    /// The name each next hop's certificate must carry (`server_name`), by address.
    names: HashMap<SocketAddr, String>,
}

impl TlsLayer {
    /// A layer accepting with `server` and, when next hops use TLS, connecting with `client`
    /// and verifying each hop against `names` (its configured `server_name`; hops not in
    /// the map are verified against their IP address).
    pub fn new(
        server: Arc<TlsServer>,
        client: Option<Arc<TlsClient>>,
        names: HashMap<SocketAddr, String>,
    ) -> TlsLayer {
        TlsLayer {
            server,
            client,
            names,
        }
    }

    /// The name a destination's certificate must carry.
    fn name_of(&self, destination: SocketAddr) -> String {
        self.names
            .get(&destination)
            .cloned()
            .unwrap_or_else(|| destination.ip().to_string())
    }
}

impl StreamLayer for TlsLayer {
    type Stream = TlsSipStream;

    fn transport(&self) -> Transport {
        Transport::Tls
    }

    async fn accept(
        &self,
        tcp: TcpStream,
        _peer: SocketAddr,
    ) -> Result<(TlsSipStream, bool), DropReason> {
        match self.server.accept(tcp).await {
            Ok(accepted) => Ok((
                TlsSipStream::Server(Box::new(accepted.stream)),
                accepted.peer.trusted,
            )),
            // Counted by reason by the server; logged there at debug level.
            Err(_) => Err(DropReason::TlsHandshake),
        }
    }

    async fn connect(&self, tcp: TcpStream, destination: SocketAddr) -> io::Result<TlsSipStream> {
        let Some(client) = &self.client else {
            return Err(io::Error::other(
                "no TLS client context: no next hop uses TLS (proxy.next_hops transport)",
            ));
        };
        let name = self.name_of(destination);
        client
            .connect(tcp, &name)
            .await
            .map(|s| TlsSipStream::Client(Box::new(s)))
            .map_err(|e| {
                tracing::warn!("tls: {e}");
                // A certificate that does not verify is the destination's fault.
                io::Error::new(io::ErrorKind::ConnectionRefused, e.to_string())
            })
    }
}
