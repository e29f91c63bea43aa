//! `core::net::SocketAddr` to and from the SOCKADDR_IN / SOCKADDR_IN6 the C
//! layer takes, without `unsafe`: one SOCKADDR_IN6-sized value whose first
//! 16 bytes are laid out as a SOCKADDR_IN for IPv4.

use core::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::kernel::nt::{AF_INET, AF_INET6, SOCKADDR, SOCKADDR_IN6};

/// A SOCKADDR_IN or SOCKADDR_IN6 (28 bytes, 4-aligned). For IPv4 the bytes
/// are SOCKADDR_IN's: family at 0, port at 2, the address at 4 (where
/// SOCKADDR_IN6 has `sin6_flowinfo`), `sin_zero` at 8.
#[derive(Clone, Copy, Default)]
#[repr(transparent)]
pub(crate) struct Sockaddr(pub(crate) SOCKADDR_IN6);

impl Sockaddr {
    pub(crate) fn new(addr: SocketAddr) -> Sockaddr {
        match addr {
            SocketAddr::V4(a) => Sockaddr(SOCKADDR_IN6 {
                sin6_family: AF_INET,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: u32::from_ne_bytes(a.ip().octets()),
                sin6_addr: [0; 16],
                sin6_scope_id: 0,
            }),
            SocketAddr::V6(a) => Sockaddr(SOCKADDR_IN6 {
                sin6_family: AF_INET6,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: a.ip().octets(),
                sin6_scope_id: a.scope_id(),
            }),
        }
    }

    /// The wildcard address of `addr`'s family, port 0.
    pub(crate) fn wildcard_like(addr: SocketAddr) -> Sockaddr {
        match addr {
            SocketAddr::V4(_) => Sockaddr::new(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0))),
            SocketAddr::V6(_) => Sockaddr::new(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, 0, 0, 0))),
        }
    }

    pub(crate) fn get(&self) -> Option<SocketAddr> {
        let s = &self.0;
        let port = u16::from_be(s.sin6_port);
        match s.sin6_family {
            AF_INET => Some(SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::from(s.sin6_flowinfo.to_ne_bytes()), port))),
            AF_INET6 => Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(s.sin6_addr),
                port,
                s.sin6_flowinfo,
                s.sin6_scope_id,
            ))),
            _ => None,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const SOCKADDR {
        core::ptr::addr_of!(self.0).cast()
    }

    pub(crate) fn as_mut_ptr(&mut self) -> *mut SOCKADDR {
        core::ptr::addr_of_mut!(self.0).cast()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for a in ["127.0.0.1:7", "[::1]:443", "10.1.2.3:65535"] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(Sockaddr::new(a).get(), Some(a));
        }
    }

    #[test]
    fn ipv4_bytes_are_a_sockaddr_in() {
        let s = Sockaddr::new("1.2.3.4:258".parse().unwrap());
        // SAFETY: 28 plain bytes.
        let b: [u8; 28] = unsafe { core::mem::transmute(s.0) };
        assert_eq!(&b[..8], &[2, 0, 1, 2, 1, 2, 3, 4]);
        assert_eq!(&b[8..], &[0; 20]);
    }
}
