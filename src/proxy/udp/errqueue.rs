//! The socket error queue (Linux `IP_RECVERR`, `IPV6_RECVERR`): which destination an ICMP
//! error was about, so a dead next hop is marked down at the first datagram it refuses.
//!
//! An unconnected UDP socket hears nothing of an ICMP port or host unreachable unless
//! `IP_RECVERR` (`IPV6_RECVERR`) is set. With it, the kernel queues one entry per error on
//! the socket's error queue: the original datagram's destination in `msg_name` and a
//! `sock_extended_err` control message whose origin says who reported it (`ICMP`, `ICMP6`,
//! or `LOCAL` for this host's own refusals, which blame nobody). It also sets the socket's
//! pending error, which the next receive or send on that socket returns (`ECONNREFUSED`,
//! `EHOSTUNREACH`) without saying for which destination.
//!
//! So the workers never act on that bare error: when a receive or send reports one of the
//! destination errors, they call [`drain`], which reads the queue without blocking (a bounded
//! number of entries) and reports each ICMP-origin entry's destination. Draining also clears
//! the pending error, so a send that failed only because of it is retried once. Nothing here
//! runs on the normal packet path.

use super::mmsg::from_storage;
use crate::proxy::SendFault;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;

/// At most this many entries are read per [`drain`] call (the queue is bounded by the
/// socket's receive buffer; what is left is read on the next error).
const MAX_PER_DRAIN: usize = 64;

/// Turns on `IP_RECVERR` (or `IPV6_RECVERR` for an IPv6 socket).
pub(super) fn enable(sock: &impl AsRawFd, ipv6: bool) -> io::Result<()> {
    if ipv6 {
        super::mmsg::set_flag(sock, libc::IPPROTO_IPV6, libc::IPV6_RECVERR)
    } else {
        super::mmsg::set_flag(sock, libc::IPPROTO_IP, libc::IP_RECVERR)
    }
}

/// One queued error that blames a destination: an ICMP (ICMPv6) error about a datagram sent
/// to `destination`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Unreachable {
    /// Where the refused datagram was going.
    pub(super) destination: SocketAddr,
    /// The error the ICMP message maps to (`ECONNREFUSED` for port unreachable).
    pub(super) errno: i32,
}

/// Whether `e` (from a receive or send) is one the error queue may explain.
pub(super) fn is_destination_error(e: &io::Error) -> bool {
    SendFault::of(e) == SendFault::Destination
}

/// Reads the error queue without blocking: calls `found` for each entry that blames a
/// destination, skips the others (local errors, path-MTU news). Returns how many entries
/// were read in all (0: the queue was empty, so an error just returned was not a queued one).
pub(super) fn drain(sock: &UdpSocket, mut found: impl FnMut(Unreachable)) -> usize {
    let mut read = 0;
    while read < MAX_PER_DRAIN {
        // SAFETY: all-zero is valid for these plain C structs.
        let mut name: libc::sockaddr_storage = unsafe { zeroed() };
        let mut control = [0u64; 64];
        let mut payload = [0u8; 64];
        let mut iov = libc::iovec {
            iov_base: payload.as_mut_ptr().cast(),
            iov_len: payload.len(),
        };
        // SAFETY: all-zero is a valid msghdr; the pointers set below outlive the call.
        let mut hdr: libc::msghdr = unsafe { zeroed() };
        hdr.msg_name = (&mut name as *mut libc::sockaddr_storage).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        hdr.msg_control = control.as_mut_ptr().cast();
        hdr.msg_controllen = size_of::<[u64; 64]>() as _;
        // SAFETY: `hdr` points at live buffers of the stated sizes.
        let n = unsafe {
            libc::recvmsg(
                sock.as_raw_fd(),
                &mut hdr,
                libc::MSG_ERRQUEUE | libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            break;
        }
        read += 1;
        // SAFETY: the kernel filled `hdr`'s control area and name for this entry.
        if let Some(u) = unsafe { parse(&hdr, &name) } {
            found(u);
        }
    }
    read
}

/// The destination-blaming error in one error-queue entry, if it holds one.
///
/// # Safety
///
/// `hdr.msg_control` must point at `hdr.msg_controllen` readable bytes of control messages
/// (as `recvmsg` leaves them).
unsafe fn parse(hdr: &libc::msghdr, name: &libc::sockaddr_storage) -> Option<Unreachable> {
    // SAFETY: the caller guarantees the control area; the CMSG macros stay inside it.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(hdr) };
    while !cmsg.is_null() {
        // SAFETY: non-null headers from CMSG_FIRSTHDR/NXTHDR lie inside the control area.
        let c = unsafe { &*cmsg };
        let recverr = (c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_RECVERR)
            || (c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_RECVERR);
        // SAFETY: CMSG_LEN of a constant size is plain arithmetic.
        let need = unsafe { libc::CMSG_LEN(size_of::<libc::sock_extended_err>() as u32) } as usize;
        if recverr && c.cmsg_len as usize >= need {
            // SAFETY: the message is long enough for a sock_extended_err; it may be unaligned.
            let ee: libc::sock_extended_err =
                unsafe { std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast()) };
            let icmp = matches!(
                ee.ee_origin,
                libc::SO_EE_ORIGIN_ICMP | libc::SO_EE_ORIGIN_ICMP6
            );
            let errno = ee.ee_errno as i32;
            if icmp && is_destination_error(&io::Error::from_raw_os_error(errno)) {
                return Some(Unreachable {
                    destination: from_storage(name)?,
                    errno,
                });
            }
            return None;
        }
        // SAFETY: as above.
        cmsg = unsafe { libc::CMSG_NXTHDR(hdr, cmsg) };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A control area holding one error message, and a header pointing at it.
    struct Entry {
        control: [u64; 16],
        name: libc::sockaddr_storage,
    }

    impl Entry {
        fn new(level: i32, kind: i32, origin: u8, errno: i32, to: SocketAddr) -> Entry {
            let mut e = Entry {
                control: [0; 16],
                name: super::super::mmsg::to_storage(to).0,
            };
            let ee = libc::sock_extended_err {
                ee_errno: errno as u32,
                ee_origin: origin,
                ee_type: 3,
                ee_code: 3,
                ee_pad: 0,
                ee_info: 0,
                ee_data: 0,
            };
            let hdr = e.header();
            // SAFETY: the control area is large enough for one header and the struct.
            unsafe {
                let c = libc::CMSG_FIRSTHDR(&hdr);
                (*c).cmsg_level = level;
                (*c).cmsg_type = kind;
                (*c).cmsg_len = libc::CMSG_LEN(size_of::<libc::sock_extended_err>() as u32) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(c).cast(), ee);
            }
            e
        }

        fn header(&mut self) -> libc::msghdr {
            // SAFETY: all-zero is a valid msghdr.
            let mut h: libc::msghdr = unsafe { zeroed() };
            h.msg_control = self.control.as_mut_ptr().cast();
            h.msg_controllen = size_of::<[u64; 16]>() as _;
            h
        }

        fn parse(&mut self) -> Option<Unreachable> {
            let h = self.header();
            // SAFETY: the header points at this entry's control area.
            unsafe { parse(&h, &self.name) }
        }
    }

    #[test]
    fn icmp_errors_blame_their_destination() {
        let to: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        let mut e = Entry::new(
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            libc::SO_EE_ORIGIN_ICMP,
            libc::ECONNREFUSED,
            to,
        );
        assert_eq!(
            e.parse(),
            Some(Unreachable {
                destination: to,
                errno: libc::ECONNREFUSED
            })
        );
        let to6: SocketAddr = "[2001:db8::1]:5070".parse().unwrap();
        let mut e = Entry::new(
            libc::IPPROTO_IPV6,
            libc::IPV6_RECVERR,
            libc::SO_EE_ORIGIN_ICMP6,
            libc::EHOSTUNREACH,
            to6,
        );
        assert_eq!(e.parse().map(|u| u.destination), Some(to6));
    }

    #[test]
    fn local_errors_and_path_mtu_blame_nobody() {
        let to: SocketAddr = "10.0.0.1:5060".parse().unwrap();
        // This host refused the datagram (too big): not the hop's fault.
        let mut e = Entry::new(
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            libc::SO_EE_ORIGIN_LOCAL,
            libc::EMSGSIZE,
            to,
        );
        assert_eq!(e.parse(), None);
        // ICMP "fragmentation needed": path MTU news, the hop is alive.
        let mut e = Entry::new(
            libc::IPPROTO_IP,
            libc::IP_RECVERR,
            libc::SO_EE_ORIGIN_ICMP,
            libc::EMSGSIZE,
            to,
        );
        assert_eq!(e.parse(), None);
        // Another control message: ignored.
        let mut e = Entry::new(
            libc::SOL_SOCKET,
            libc::SCM_RIGHTS,
            libc::SO_EE_ORIGIN_ICMP,
            libc::ECONNREFUSED,
            to,
        );
        assert_eq!(e.parse(), None);
    }

    #[test]
    fn a_closed_port_on_loopback_is_reported_by_address() {
        for ip in ["127.0.0.1:0", "[::1]:0"] {
            let closed = UdpSocket::bind(ip).unwrap();
            let dead = closed.local_addr().unwrap();
            drop(closed);
            let sock = UdpSocket::bind(ip).unwrap();
            enable(&sock, dead.is_ipv6()).unwrap();
            sock.set_read_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            sock.send_to(b"x", dead).unwrap();
            // The ICMP error arrives asynchronously: the pending error shows on a receive.
            let deadline = Instant::now() + Duration::from_secs(2);
            let mut got = Vec::new();
            while got.is_empty() && Instant::now() < deadline {
                let mut buf = [0u8; 16];
                if let Err(e) = sock.recv_from(&mut buf) {
                    if is_destination_error(&e) {
                        drain(&sock, |u| got.push(u));
                    }
                }
            }
            assert_eq!(
                got,
                vec![Unreachable {
                    destination: dead,
                    errno: libc::ECONNREFUSED
                }],
                "{ip}"
            );
            // Drained: nothing left, and the socket works again.
            assert_eq!(drain(&sock, |_| {}), 0);
        }
    }
}
