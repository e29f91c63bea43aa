//! Parameter validation for `SafeWskSocketConnect`, before any kernel call.
//!
//! Each rejection names the parameter by its position in
//! `PFN_WSK_SOCKET_CONNECT` (Client = 1 ... SecurityDescriptor = 11, Irp = 12,
//! whose place the `Socket` out-pointer takes), so a caller can tell from the
//! status alone which argument was wrong.
//!
//! What is checked, with the documentation it follows (Microsoft Learn,
//! "PFN_WSK_SOCKET_CONNECT callback function (wsk.h)" and "WSK Address
//! Families"):
//! - SocketType: WskSocketConnect creates a connection-oriented socket; for
//!   AF_INET/AF_INET6 that is SOCK_STREAM only.
//! - Protocol: SOCK_STREAM over IP is IPPROTO_TCP.
//! - LocalAddress: required; "the WSK subsystem determines the address family
//!   for the new socket from ... LocalAddress", so it must be AF_INET or
//!   AF_INET6, and it may not be a multicast or broadcast address.
//! - RemoteAddress: required, same family as LocalAddress, a port, and a
//!   unicast address (not unspecified, broadcast or multicast).
//! - Flags: "reserved for system use. A WSK application must set this
//!   parameter to zero."
//! - SocketContext / Dispatch: a context without a dispatch table is never
//!   delivered (parameter 7); a table needs at least one callback (a table
//!   with no callback "should be NULL"), with or without a context
//!   (SocketContext is `_In_opt_`).
//! - SecurityDescriptor: optional; when given it must be "a cached copy of
//!   a security descriptor that was obtained by calling the WskControlClient
//!   function with the WSK_CACHE_SD control code": one this client cached
//!   with SafeWskCacheSecurityDescriptor and has not released (looked up in
//!   the client's table, src/security_descriptor.rs; the descriptor itself
//!   is never read, so a pageable one is safe at DISPATCH_LEVEL). Above
//!   DISPATCH_LEVEL the table (under a spin lock) is not consulted: the IRQL
//!   check that follows refuses the call anyway.
//! - SocketType, Protocol and the family of LocalAddress are also checked
//!   against the provider's own transport list when startup could query it
//!   (src/transports.rs), in that order, as parameters 2, 3 and 4.

use core::ptr;

use crate::client::security_descriptor::CachedSds;
use crate::client::transports::Transports;
use crate::nt::*;

/// A remote or local endpoint read out of the caller's SOCKADDR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    /// Address and port in network byte order as stored.
    V4 { addr: [u8; 4], port: u16 },
    /// Address and port in network byte order as stored.
    V6 { addr: [u8; 16], port: u16 },
}

impl Endpoint {
    pub(crate) fn family(&self) -> ADDRESS_FAMILY {
        match self {
            Endpoint::V4 { .. } => AF_INET,
            Endpoint::V6 { .. } => AF_INET6,
        }
    }

    pub(crate) fn port(&self) -> u16 {
        match *self {
            Endpoint::V4 { port, .. } | Endpoint::V6 { port, .. } => u16::from_be(port),
        }
    }

    /// The IPv4 address this endpoint is, either natively or as an
    /// IPv4-mapped IPv6 address (::ffff:a.b.c.d).
    fn as_v4(&self) -> Option<[u8; 4]> {
        match *self {
            Endpoint::V4 { addr, .. } => Some(addr),
            Endpoint::V6 { addr, .. } => {
                let (head, tail) = addr.split_at(12);
                if head == [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] {
                    let mut v4 = [0u8; 4];
                    v4.copy_from_slice(tail);
                    Some(v4)
                } else {
                    None
                }
            }
        }
    }

    pub(crate) fn is_unspecified(&self) -> bool {
        match (self, self.as_v4()) {
            (_, Some(v4)) => v4 == [0; 4],
            (Endpoint::V6 { addr, .. }, None) => *addr == [0; 16],
            (Endpoint::V4 { .. }, None) => false,
        }
    }

    pub(crate) fn is_multicast_or_broadcast(&self) -> bool {
        match (self, self.as_v4()) {
            // 224.0.0.0/4 multicast, 255.255.255.255 limited broadcast.
            (_, Some([a, b, c, d])) => (a & 0xF0) == 0xE0 || [a, b, c, d] == [255; 4],
            // ff00::/8 multicast; IPv6 has no broadcast.
            (Endpoint::V6 { addr, .. }, None) => addr.first() == Some(&0xFF),
            (Endpoint::V4 { .. }, None) => false,
        }
    }
}

/// Reads a SOCKADDR of a family WSK supports for TCP.
///
/// # Safety
/// `sa` is null or points to a readable SOCKADDR whose size matches its
/// family (16 bytes for AF_INET, 28 for AF_INET6), as the WSK contract
/// requires of the caller.
pub unsafe fn read_endpoint(sa: *const SOCKADDR) -> Option<Endpoint> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: `sa` is non-null and the caller guarantees at least the family
    // field is readable; read_unaligned makes no alignment assumption.
    let family = unsafe { ptr::read_unaligned(sa.cast::<ADDRESS_FAMILY>()) };
    match family {
        AF_INET => {
            // SAFETY: an AF_INET address is a 16-byte SOCKADDR_IN (caller contract).
            let sin = unsafe { ptr::read_unaligned(sa.cast::<SOCKADDR_IN>()) };
            Some(Endpoint::V4 { addr: sin.sin_addr, port: sin.sin_port })
        }
        AF_INET6 => {
            // SAFETY: an AF_INET6 address is a 28-byte SOCKADDR_IN6 (caller contract).
            let sin6 = unsafe { ptr::read_unaligned(sa.cast::<SOCKADDR_IN6>()) };
            Some(Endpoint::V6 { addr: sin6.sin6_addr, port: sin6.sin6_port })
        }
        _ => None,
    }
}

/// Parameters 2 to 11 of `PFN_WSK_SOCKET_CONNECT`, shared by the synchronous
/// and the asynchronous connect: the one connect argument type, built once
/// by the export and validated with [`ConnectArgs::validate`].
#[derive(Clone, Copy)]
pub struct ConnectArgs {
    pub socket_type: USHORT,
    pub protocol: ULONG,
    pub local: *const SOCKADDR,
    pub remote: *const SOCKADDR,
    pub flags: ULONG,
    pub socket_context: PVOID,
    pub dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    pub owning_process: PEPROCESS,
    pub owning_thread: PETHREAD,
    pub security_descriptor: PSECURITY_DESCRIPTOR,
}

/// What validation needs to know besides the arguments.
#[derive(Clone, Copy)]
pub struct Context<'a> {
    /// Parameter 1 is a live client.
    pub client_present: bool,
    /// Parameter 12 (the socket out pointer, or the request) is usable.
    pub twelfth_ok: bool,
    /// The provider's transport list (None: no client).
    pub transports: Option<&'a Transports>,
    /// The client's cached security descriptors; None without a client or
    /// above DISPATCH_LEVEL (where the spin lock may not be taken; the call
    /// is refused for its IRQL right after validation).
    pub sds: Option<&'a CachedSds>,
}

impl ConnectArgs {
    /// Validates parameters 1 to 12; the first failure in parameter order
    /// wins.
    ///
    /// # Safety
    /// Every non-null pointer is readable for the size its type and the WSK
    /// contract imply (see [`read_endpoint`]; the dispatch table is a
    /// WSK_CLIENT_CONNECTION_DISPATCH; the security descriptor is only
    /// compared, never read).
    pub unsafe fn validate(&self, cx: Context<'_>) -> Result<(), NTSTATUS> {
        // SAFETY: forwarded caller guarantee.
        unsafe { validate_connect(self, cx) }
    }
}

/// Validates every argument; the first failure, in parameter order, wins.
///
/// # Safety
/// As [`ConnectArgs::validate`].
unsafe fn validate_connect(args: &ConnectArgs, cx: Context<'_>) -> Result<(), NTSTATUS> {
    if !cx.client_present {
        return Err(STATUS_INVALID_PARAMETER_1);
    }
    if args.socket_type != SOCK_STREAM {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    if args.protocol != IPPROTO_TCP {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    if let Some(t) = cx.transports {
        t.check_type_protocol(args.socket_type, args.protocol)?;
    }
    // SAFETY: forwarded caller guarantee on `local`.
    let local = unsafe { read_endpoint(args.local) }.ok_or(STATUS_INVALID_PARAMETER_4)?;
    if local.is_multicast_or_broadcast() {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    if let Some(t) = cx.transports {
        t.check_family(args.socket_type, args.protocol, local.family())?;
    }
    // SAFETY: forwarded caller guarantee on `remote`.
    let remote = unsafe { read_endpoint(args.remote) }.ok_or(STATUS_INVALID_PARAMETER_5)?;
    if remote.family() != local.family()
        || remote.port() == 0
        || remote.is_unspecified()
        || remote.is_multicast_or_broadcast()
    {
        return Err(STATUS_INVALID_PARAMETER_5);
    }
    if args.flags != 0 {
        return Err(STATUS_INVALID_PARAMETER_6);
    }
    // SAFETY: forwarded caller guarantee on the dispatch table.
    match unsafe { context_and_dispatch(args.socket_context, args.dispatch) } {
        Err(Bad::Context) => return Err(STATUS_INVALID_PARAMETER_7),
        Err(Bad::Dispatch) => return Err(STATUS_INVALID_PARAMETER_8),
        Ok(()) => {}
    }
    if !args.security_descriptor.is_null() {
        if let Some(sds) = cx.sds {
            // SAFETY: `sds` is given only at IRQL <= DISPATCH_LEVEL.
            if !unsafe { sds.contains(args.security_descriptor) } {
                return Err(STATUS_INVALID_PARAMETER_11);
            }
        }
    }
    if !cx.twelfth_ok {
        return Err(STATUS_INVALID_PARAMETER_12);
    }
    Ok(())
}

/// Which of SocketContext and Dispatch is wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bad {
    Context,
    Dispatch,
}

/// The rule every connect applies to SocketContext and Dispatch: a context
/// without a dispatch table is never delivered to anything (the context is
/// wrong); a table needs at least one callback (a table with no callback
/// "should be NULL"), with or without a context (SocketContext is
/// `_In_opt_`).
///
/// # Safety
/// `dispatch` is null or a readable WSK_CLIENT_CONNECTION_DISPATCH.
pub unsafe fn context_and_dispatch(context: PVOID, dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH) -> Result<(), Bad> {
    match (context.is_null(), dispatch.is_null()) {
        (true, true) => Ok(()),
        (false, true) => Err(Bad::Context),
        (_, false) => {
            // SAFETY: non-null and, by the caller's contract, a readable
            // WSK_CLIENT_CONNECTION_DISPATCH.
            let d = unsafe { ptr::read_unaligned(dispatch) };
            if d.WskReceiveEvent.is_none() && d.WskDisconnectEvent.is_none() && d.WskSendBacklogEvent.is_none() {
                Err(Bad::Dispatch)
            } else {
                Ok(())
            }
        }
    }
}
