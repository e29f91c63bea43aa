//! Servers and datagrams: listening sockets and their accepts
//! (`listen`, `accept_async`), datagram sockets with send-to and
//! receive-from (`datagram`), and a name resolution without a connect
//! (`resolve`).
//!
//! They are built on the same pieces as the connect family: a socket slot
//! of the socket table reserved before the provider is called (with the IRP
//! every step reuses), WskSocket + options + WskBind under one deadline
//! (`connect::options::make_bound`), `irp::call_and_wait_on` for every
//! synchronous step, and the asynchronous request's state word
//! (`connect::request_state`, loom-checked) for the asynchronous accept.
//!
//! What is particular to a listening socket:
//! - a pending accept holds the listening socket's slot (like a pending
//!   receive: counted inside only while inside WskAccept), so a close of the
//!   listening socket does not wait for it, and WskCloseSocket completes it
//!   ("Calling the WskCloseSocket function causes the WSK subsystem to
//!   cancel and complete all pending IRPs", PFN_WSK_CLOSE_SOCKET): the
//!   accept returns, or calls back, with STATUS_CANCELLED;
//! - the accepted socket's slot is reserved (with its IRP, which WskAccept
//!   uses) before WskAccept is called, so an accepted socket is never lost
//!   to a failed allocation; it is an ordinary connection socket of the
//!   listening socket's client;
//! - an accept does not enter the client (it may wait as long as a receive
//!   does): the listening socket's slot keeps the client alive, and cleanup
//!   closes listening sockets first and waits until their accepts have
//!   handed out their sockets before it closes the rest (`client`).

pub(crate) mod accept_async;
pub(crate) mod datagram;
pub(crate) mod listen;
pub(crate) mod resolve;

use core::ptr;

use crate::client::transports::Transports;
use crate::client::{self, SAFEWSK_CLIENT};
use crate::connect::options::{make_bound, read_options_of, Make, Settings, SAFEWSK_SOCKET_OPTIONS};
use crate::connect::validate::read_endpoint;
use crate::handles::{Kind, SAFEWSK_SOCKET};
use crate::kernel::deadline::Deadline;
use crate::kernel::nt::*;
use crate::kernel::status::{require_irql, Status};

/// Room for one SOCKADDR_IN (16 bytes) or SOCKADDR_IN6 (28 bytes), 4-byte
/// aligned as both are: cast its address to `SOCKADDR *`; the first USHORT,
/// the family (AF_INET or AF_INET6), says which it holds. All zero: no
/// address.
#[repr(C)]
#[allow(non_snake_case)] // the C header's field name
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SAFEWSK_ADDRESS {
    /// The address, as the provider wrote it.
    pub Storage: [ULONG; 7],
}

static_assertions::const_assert_eq!(core::mem::size_of::<SAFEWSK_ADDRESS>(), core::mem::size_of::<SOCKADDR_IN6>());

impl SAFEWSK_ADDRESS {
    /// As a SOCKADDR for the provider to write (or read).
    pub(crate) fn as_sockaddr(&mut self) -> *mut SOCKADDR {
        ptr::addr_of_mut!(self.Storage).cast()
    }

    /// The family the address holds.
    pub(crate) fn family(&self) -> ADDRESS_FAMILY {
        let [w, ..] = self.Storage;
        // The family is the first USHORT in memory.
        let bytes = w.to_ne_bytes();
        let [a, b, ..] = bytes;
        ADDRESS_FAMILY::from_ne_bytes([a, b])
    }
}

/// Copies an address the provider wrote into `from` out to the caller's
/// `to` (if not NULL).
///
/// # Safety
/// `to` is NULL or a writable SAFEWSK_ADDRESS.
pub(crate) unsafe fn copy_out(from: &SAFEWSK_ADDRESS, to: *mut SAFEWSK_ADDRESS) {
    if !to.is_null() {
        // SAFETY: writable per the caller; write_unaligned needs no
        // alignment.
        unsafe { ptr::write_unaligned(to, *from) };
    }
}

/// The socket a server export makes: listening or datagram.
#[derive(Clone, Copy)]
pub(crate) struct ServerSocket {
    pub(crate) kind: Kind,
    pub(crate) flags: ULONG,
    pub(crate) socket_type: USHORT,
    pub(crate) protocol: ULONG,
    /// The SAFEWSK_OPTION_* bits the kind takes.
    pub(crate) options: ULONG,
}

/// SafeWskListen and SafeWskDatagramSocket: parameters 1 (client), 2 (local
/// address), 3 (options), 4 (socket out), then the IRQL, then entering the
/// client; then WskSocket + options + WskBind under one deadline
/// (`make_bound`), and the socket published.
///
/// # Safety
/// The API contract of SafeWskListen / SafeWskDatagramSocket.
pub(crate) unsafe fn make_socket(
    what: ServerSocket,
    client: *mut SAFEWSK_CLIENT,
    local: *const SOCKADDR,
    options: *const SAFEWSK_SOCKET_OPTIONS,
    socket_out: *mut *mut SAFEWSK_SOCKET,
    timeout_ms: ULONG,
) -> Status {
    let pinned = client::pin(client)?;
    let transports: Option<&Transports> = pinned.as_ref().map(|i| i.block().transports());
    // SAFETY: `local` is NULL or a readable SOCKADDR of its family (the API
    // contract).
    let endpoint = unsafe { read_endpoint(local) }.ok_or(STATUS_INVALID_PARAMETER_2)?;
    if endpoint.is_multicast_or_broadcast() {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    // SAFETY: read_endpoint read the family: the first USHORT.
    let family = unsafe { ptr::read_unaligned(local.cast::<ADDRESS_FAMILY>()) };
    if let Some(t) = transports {
        // A family the provider lists no transport of this kind for (a stack
        // without IPv6); no such transport at all is STATUS_NOT_SUPPORTED,
        // after the parameters.
        if t.check_type_protocol(what.socket_type, what.protocol).is_ok()
            && t.check_family(what.socket_type, what.protocol, family).is_err()
        {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
    }
    let settings = if options.is_null() {
        Settings::exclusive()
    } else {
        // SAFETY: `options` is readable per the API contract.
        unsafe { read_options_of(options, what.options) }.map_err(|_| STATUS_INVALID_PARAMETER_3)?
    };
    if socket_out.is_null() {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    // Parameter 5 (TimeoutMs): every value means something.
    require_irql(APC_LEVEL)?;
    let inside = pinned.ok_or(STATUS_INVALID_LEVEL)?;
    inside.connecting()?;
    if let Some(t) = transports {
        t.check_type_protocol(what.socket_type, what.protocol).map_err(|_| STATUS_NOT_SUPPORTED)?;
    }
    let deadline = Deadline::start(timeout_ms);
    let make = Make {
        kind: what.kind,
        flags: what.flags,
        family,
        socket_type: what.socket_type,
        protocol: what.protocol,
        context: ptr::null_mut(),
        dispatch: ptr::null(),
    };
    // SAFETY: IRQL <= APC_LEVEL; inside the client, which may make sockets;
    // `local` was validated and lives until this call returns.
    let slot = unsafe { make_bound(&inside, &make, &settings, local, deadline) }?;
    // SAFETY: checked non-NULL as parameter 4; writable (contract).
    unsafe { *socket_out = slot.publish() };
    Ok(STATUS_SUCCESS)
}
