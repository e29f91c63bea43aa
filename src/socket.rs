//! The calls on a connected socket behind SafeWskSend, SafeWskReceive,
//! SafeWskGetLocalAddress, SafeWskGetRemoteAddress, SafeWskDisconnect and
//! SafeWskCloseSocket.
//!
//! Check order, as for every export: parameters by position (the socket,
//! parameter 2, is checked to be an open socket of this client, which needs
//! the client's spin lock and so IRQL <= DISPATCH_LEVEL: above that it is
//! left to the IRQL check), then the IRQL, then the call. Calls on sockets
//! enter the client's rundown in its socket mode, which cleanup does not
//! refuse: closing the sockets is how a driver lets cleanup succeed.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use crate::buffer::{BufferMdl, MdlStorage, SAFEWSK_FLAG_NONPAGED_BUFFER};
use crate::client::{Entered, SAFEWSK_CLIENT};
use crate::irp::{self, call_and_wait, call_and_wait_on};
use crate::nt::*;
use crate::platform::LockOperation;
use crate::sockets::Claim;
use crate::status::{require_irql, Status};

/// Which way the bytes go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Send,
    Receive,
}

/// What a call on a socket takes from the socket's record.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Take {
    /// One of its IRPs (send, receive, the address queries, disconnect).
    Irp,
    /// The record marked as being closed, and an IRP for the close.
    Close,
    /// No IRP: the call only counts as in progress (the event callbacks).
    NoIrp,
}

/// A call on an open socket of an entered client, holding one of the
/// socket's IRPs (given back when the call is dropped, or by the close).
pub(crate) struct SocketCall<'a> {
    pub(crate) entered: Entered<'a>,
    pub(crate) socket: *mut WSK_SOCKET,
    /// The socket's IRP for this call; None once a close has handed it to
    /// `finish_close` / `abort_close`.
    pub(crate) claim: Option<Claim>,
}

impl Drop for SocketCall<'_> {
    fn drop(&mut self) {
        if let Some(claim) = self.claim.take() {
            // SAFETY: IRQL <= DISPATCH_LEVEL (`enter` claimed the IRP only
            // there, and a call returns at the IRQL it was entered at); the
            // IRP's completion has been waited for, or it was never issued.
            unsafe { self.entered.client().sockets().release(claim) };
        }
    }
}

impl<'a> SocketCall<'a> {
    /// Parameters 1 (the client) and 2 (an open socket of it; with
    /// [`Take::Close`], marked as being closed). The socket is not
    /// dereferenced here.
    ///
    /// Whether the socket is open is looked up under the client's spin lock,
    /// so above DISPATCH_LEVEL nothing past the NULL checks is done: the call
    /// is refused with STATUS_INVALID_LEVEL without entering the client
    /// (whose last leave could otherwise signal cleanup's event at that
    /// IRQL).
    ///
    /// # Safety
    /// `client` is null or from SafeWskStartup.
    pub(crate) unsafe fn enter(
        client: *mut SAFEWSK_CLIENT,
        socket: *mut WSK_SOCKET,
        take: Take,
    ) -> Result<Self, NTSTATUS> {
        // SAFETY: forwarded caller guarantee.
        let client = unsafe { SAFEWSK_CLIENT::from_ptr(client) }.ok_or(STATUS_INVALID_PARAMETER_1)?;
        if socket.is_null() {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        require_irql(DISPATCH_LEVEL)?;
        let entered = client.enter_socket_call()?;
        let sockets = client.sockets();
        let claim = match take {
            // SAFETY: IRQL <= DISPATCH_LEVEL checked just above.
            Take::Close => unsafe { sockets.begin_close(socket) },
            // SAFETY: as above.
            Take::Irp => unsafe { sockets.claim(socket) },
            // SAFETY: as above.
            Take::NoIrp => unsafe { sockets.claim_without_irp(socket) },
        };
        let claim = claim.ok_or(STATUS_INVALID_PARAMETER_2)?;
        Ok(SocketCall { entered, socket, claim: Some(claim) })
    }

    pub(crate) fn device(&self) -> PDEVICE_OBJECT {
        self.entered.client().device()
    }

    /// Runs one WSK call on the socket's IRP (see [`call_and_wait_on`]).
    /// Once `issue` has returned (the WSK function has returned: its IRP may
    /// still be pending), a close waiting for this call may go on; for
    /// another call on the socket, `at_deadline` must use
    /// [`Sockets::call_again`](crate::sockets::Sockets::call_again) with the
    /// claim it is given.
    ///
    /// # Safety
    /// As [`call_and_wait_on`] (IRQL <= APC_LEVEL; `issue` hands the IRP to
    /// exactly one WSK function).
    unsafe fn call(
        &mut self,
        what: &'static [u8],
        timeout_ms: Option<ULONG>,
        issue: impl FnOnce(*mut IRP) -> NTSTATUS,
        at_deadline: impl FnOnce(*mut IRP, &Claim),
    ) -> Result<irp::Completion, NTSTATUS> {
        let device = self.device();
        let sockets = self.entered.client().sockets();
        let claim = self.claim.as_mut().ok_or(STATUS_INVALID_PARAMETER_2)?;
        // SAFETY: IRQL <= APC_LEVEL per the caller.
        let irp = unsafe { claim.irp() }?;
        let claim: &Claim = claim;
        let issue = |irp| {
            let returned = issue(irp);
            // SAFETY: IRQL <= APC_LEVEL; the claim is live until the call is
            // dropped.
            unsafe { sockets.returned(claim) };
            returned
        };
        let at_deadline = |irp| at_deadline(irp, claim);
        // SAFETY: the claimed IRP is ours and idle (no provider holds it);
        // the rest per the caller.
        unsafe { call_and_wait_on(irp, device, what, timeout_ms, issue, at_deadline) }
    }

    /// The provider's connection dispatch table of the socket.
    ///
    /// # Safety
    /// Only after the IRQL check: then [`Self::enter`] has checked that the
    /// socket is open, so its Dispatch is the provider's connection table,
    /// valid until the close.
    pub(crate) unsafe fn dispatch(&self) -> Result<&'a WSK_PROVIDER_CONNECTION_DISPATCH, NTSTATUS> {
        // SAFETY: per the function's contract, an open WSK_SOCKET.
        let dispatch = unsafe { (*self.socket).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
        // SAFETY: the provider's connection dispatch table, valid until the
        // close (null is handled).
        unsafe { dispatch.as_ref() }.ok_or(STATUS_INVALID_PARAMETER_2)
    }
}

/// The default action at a deadline: cancel the IRP.
fn cancel_at_deadline(irp: *mut IRP, _: &Claim) {
    // SAFETY: call_and_wait_on passes the still-live IRP, at IRQL <=
    // APC_LEVEL.
    unsafe { irp::cancel(irp) }
}

/// SafeWskSend / SafeWskReceive: one path for both directions.
///
/// # Safety
/// The API contract of SafeWskSend (`Buffer` readable) or SafeWskReceive
/// (`Buffer` writable).
#[allow(clippy::too_many_arguments)] // the export's seven parameters and the direction
pub unsafe fn transfer(
    direction: Direction,
    client: *mut SAFEWSK_CLIENT,
    socket: *mut WSK_SOCKET,
    buffer: *mut c_void,
    length: ULONG,
    flags: ULONG,
    timeout_ms: ULONG,
    bytes: *mut ULONG,
) -> Status {
    // SAFETY: forwarded API contract.
    let mut call = unsafe { SocketCall::enter(client, socket, Take::Irp) }?;
    if buffer.is_null() {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    if length == 0 {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    let (allowed, operation, what): (ULONG, LockOperation, &'static [u8]) = match direction {
        Direction::Send => (WSK_FLAG_NODELAY, LockOperation::Read, b"WskSend\0"),
        Direction::Receive => (WSK_FLAG_WAITALL, LockOperation::Write, b"WskReceive\0"),
    };
    if flags & !(allowed | SAFEWSK_FLAG_NONPAGED_BUFFER) != 0 {
        return Err(STATUS_INVALID_PARAMETER_5);
    }
    if direction == Direction::Receive && bytes.is_null() {
        return Err(STATUS_INVALID_PARAMETER_7);
    }
    require_irql(APC_LEVEL)?;
    // SAFETY: after the IRQL check.
    let dispatch = unsafe { call.dispatch() }?;
    let provider = match direction {
        Direction::Send => dispatch.WskSend,
        Direction::Receive => dispatch.WskReceive,
    }
    .ok_or(STATUS_NOT_SUPPORTED)?;
    let nonpaged = flags & SAFEWSK_FLAG_NONPAGED_BUFFER != 0;
    let flags = flags & !SAFEWSK_FLAG_NONPAGED_BUFFER;
    // The MDL on this stack: it stays resident because the wait for the IRP
    // is a KernelMode wait (see `buffer`).
    let mut storage = MdlStorage::new();
    // SAFETY: buffer validity and kind per the API contract; IRQL checked;
    // `storage` is on this thread's stack and outlives the IRP.
    let buf = unsafe { BufferMdl::new(&mut storage, buffer, length, operation, nonpaged) }?;
    let mut wsk_buf = WSK_BUF { Mdl: buf.mdl(), Offset: 0, Length: length as SIZE_T };
    let wsk_buf_ptr = ptr::addr_of_mut!(wsk_buf);
    let issue = |irp| {
        // SAFETY: the provider's WskSend/WskReceive of an open socket; the
        // WSK_BUF and MDL outlive the IRP (call_and_wait returns only after
        // completion).
        unsafe { provider(socket, wsk_buf_ptr, flags, irp) }
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call.call(what, Some(timeout_ms), issue, cancel_at_deadline) };
    // The IRP that used the MDL has completed: unlock, free.
    drop(buf);
    let done = done?;
    if !bytes.is_null() {
        // SAFETY: non-null out pointer per the API contract. The provider
        // never reports more than `length` (a ULONG).
        unsafe { *bytes = ULONG::try_from(done.information).unwrap_or(length) };
    }
    Ok(done.status)
}

/// Which end of the connection an address query asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// WskGetLocalAddress.
    Local,
    /// WskGetRemoteAddress.
    Remote,
}

/// SafeWskGetLocalAddress / SafeWskGetRemoteAddress: one path for both.
///
/// The provider writes into a SOCKADDR_IN6-sized buffer on this thread's
/// stack, not into the caller's: PFN_WSK_GET_LOCAL_ADDRESS requires "The
/// buffer must be located in non-paged memory" (Microsoft Learn), and the
/// stack stays resident because the wait is a KernelMode wait. The address
/// is copied to the caller's buffer, which may then be paged, at the
/// caller's IRQL (<= APC_LEVEL) once the IRP has completed.
///
/// # Safety
/// The API contract of SafeWskGetLocalAddress / SafeWskGetRemoteAddress.
pub unsafe fn address(
    end: End,
    client: *mut SAFEWSK_CLIENT,
    socket: *mut WSK_SOCKET,
    address: *mut SOCKADDR,
    length: ULONG,
    timeout_ms: ULONG,
) -> Status {
    // SAFETY: forwarded API contract.
    let mut call = unsafe { SocketCall::enter(client, socket, Take::Irp) }?;
    if address.is_null() {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    if (length as usize) < size_of::<SOCKADDR_IN>() {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    require_irql(APC_LEVEL)?;
    // SAFETY: after the IRQL check.
    let dispatch = unsafe { call.dispatch() }?;
    let (provider, what): (_, &'static [u8]) = match end {
        End::Local => (dispatch.WskGetLocalAddress, b"WskGetLocalAddress\0"),
        End::Remote => (dispatch.WskGetRemoteAddress, b"WskGetRemoteAddress\0"),
    };
    let provider = provider.ok_or(STATUS_NOT_SUPPORTED)?;
    // Large enough for every family SafeWskSocketConnect accepts.
    let mut found = SOCKADDR_IN6::default();
    let found_ptr = ptr::addr_of_mut!(found).cast::<SOCKADDR>();
    let issue = |irp| {
        // SAFETY: the provider's WskGet*Address of an open socket; `found`
        // is resident (KernelMode wait) and outlives the IRP (call_and_wait
        // returns only after completion).
        unsafe { provider(socket, found_ptr, irp) }
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call.call(what, Some(timeout_ms), issue, cancel_at_deadline) }?;
    if !nt_success(done.status) {
        return Err(done.status);
    }
    let size = match found.sin6_family {
        AF_INET => size_of::<SOCKADDR_IN>(),
        AF_INET6 => size_of::<SOCKADDR_IN6>(),
        // Not a family SafeWskSocketConnect accepts: a provider fault.
        _ => return Err(STATUS_UNSUCCESSFUL),
    };
    if (length as usize) < size {
        return Err(STATUS_BUFFER_TOO_SMALL);
    }
    // SAFETY: `address` is `length` >= `size` writable bytes per the API
    // contract and checks above; `found` is a local of at least `size` bytes
    // that the caller's buffer cannot overlap.
    unsafe { ptr::copy_nonoverlapping(ptr::addr_of!(found).cast::<u8>(), address.cast::<u8>(), size) };
    // The header promises STATUS_SUCCESS whenever the address was written,
    // whatever success-class status the provider completed with.
    Ok(STATUS_SUCCESS)
}

/// SafeWskDisconnect; a graceful disconnect past its deadline is turned
/// into an abortive one.
///
/// # Safety
/// The API contract of SafeWskDisconnect.
pub unsafe fn disconnect(
    client: *mut SAFEWSK_CLIENT,
    socket: *mut WSK_SOCKET,
    flags: ULONG,
    timeout_ms: ULONG,
) -> Status {
    // SAFETY: forwarded API contract.
    let mut call = unsafe { SocketCall::enter(client, socket, Take::Irp) }?;
    if flags & !WSK_FLAG_ABORTIVE != 0 {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    require_irql(APC_LEVEL)?;
    // SAFETY: after the IRQL check.
    let disconnect = unsafe { call.dispatch() }?.WskDisconnect.ok_or(STATUS_NOT_SUPPORTED)?;
    let device = call.device();
    let sockets = call.entered.client().sockets();
    let graceful = flags & WSK_FLAG_ABORTIVE == 0;
    let at_deadline = |irp: *mut IRP, claim: &Claim| {
        // A second call of the socket's functions: not once a close has
        // begun (it may have freed the socket; it completes the graceful
        // disconnect anyway).
        // SAFETY: IRQL <= APC_LEVEL; the claim is live during the call.
        if graceful && unsafe { sockets.call_again(claim) } {
            let abort = |irp2| {
                // SAFETY: the provider's WskDisconnect of an open socket: no
                // close can begin its WskCloseSocket before `returned`.
                let st = unsafe { disconnect(socket, ptr::null_mut(), WSK_FLAG_ABORTIVE, irp2) };
                // SAFETY: as above.
                unsafe { sockets.returned(claim) };
                st
            };
            // SAFETY: IRQL <= APC_LEVEL; a second IRP (allocated: this is
            // the deadline path) for the abortive disconnect, waited for like
            // any call; the graceful IRP stays live (the socket's, given
            // back only after its completion).
            let _ = unsafe {
                call_and_wait(
                    device,
                    b"WskDisconnect (abortive, after the graceful one's deadline)\0",
                    Some(timeout_ms),
                    abort,
                )
            };
            // If no IRP or context could be allocated, `abort` never ran.
            // SAFETY: as above.
            unsafe { sockets.returned(claim) };
        }
        // SAFETY: the IRP is live until its completion has been waited for.
        unsafe { irp::cancel(irp) };
    };
    let what: &'static [u8] = if graceful { b"WskDisconnect (graceful)\0" } else { b"WskDisconnect (abortive)\0" };
    let issue = |irp| {
        // SAFETY: the provider's WskDisconnect of an open socket.
        unsafe { disconnect(socket, ptr::null_mut(), flags, irp) }
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call.call(what, Some(timeout_ms), issue, at_deadline) }?;
    if done.timed_out {
        Err(STATUS_IO_TIMEOUT)
    } else {
        Ok(done.status)
    }
}

/// SafeWskCloseSocket. The socket leaves the client's open sockets if the
/// close was issued and consumed; otherwise it stays open (retry).
///
/// # Safety
/// The API contract of SafeWskCloseSocket.
pub unsafe fn close(client: *mut SAFEWSK_CLIENT, socket: *mut WSK_SOCKET) -> Status {
    // SAFETY: forwarded API contract.
    let mut call = unsafe { SocketCall::enter(client, socket, Take::Close) }?;
    let result = close_marked(&mut call);
    let sockets = call.entered.client().sockets();
    // IRQL <= DISPATCH_LEVEL: `enter` refused anything above, and
    // close_marked fails before any wait above APC_LEVEL.
    if let Some(claim) = call.claim.take() {
        match result {
            // SAFETY: IRQL as above; the claim of this call's `begin_close`,
            // whose IRP has completed (or was never issued).
            Closed::Gone(_) => unsafe { sockets.finish_close(claim) },
            // SAFETY: as above.
            Closed::StillOpen(_) => unsafe { sockets.abort_close(claim) },
        }
    }
    match result {
        Closed::Gone(status) => Ok(status),
        Closed::StillOpen(status) => Err(status),
    }
}

/// What became of a socket marked as being closed.
#[derive(Clone, Copy)]
enum Closed {
    /// The close was issued and consumed: the socket is gone.
    Gone(NTSTATUS),
    /// The close was never issued, or the provider refused it without
    /// consuming its IRP: the socket is still open.
    StillOpen(NTSTATUS),
}

/// The close of a socket that [`SocketCall::enter`] marked as closing.
fn close_marked(call: &mut SocketCall<'_>) -> Closed {
    if let Err(status) = require_irql(APC_LEVEL) {
        return Closed::StillOpen(status);
    }
    // SAFETY: after the IRQL check: an open socket of this client, marked as
    // closing.
    let close = match unsafe { call.dispatch() }.map(|d| d.Basic.WskCloseSocket) {
        Ok(Some(close)) => close,
        Ok(None) | Err(_) => return Closed::StillOpen(STATUS_NOT_SUPPORTED),
    };
    let socket = call.socket;
    // WSK forbids the close while another call is still calling one of the
    // socket's functions ("Closing a Socket"): wait until those that began
    // before this close have returned from WSK (their IRPs may stay pending;
    // the close completes them). No new one begins: the socket is marked.
    if let Some(claim) = call.claim.as_ref() {
        // SAFETY: IRQL <= APC_LEVEL checked above; the claim of this close.
        unsafe { call.entered.client().sockets().wait_for_calls(claim) };
    }
    let issue = |irp| {
        // SAFETY: the provider's WskCloseSocket of a socket of this client,
        // marked as being closed, with no other call in a WSK function of it.
        unsafe { close(socket, irp) }
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call.call(b"WskCloseSocket\0", None, issue, cancel_at_deadline) };
    match done {
        Ok(d) if !d.consumed => Closed::StillOpen(d.status),
        Ok(d) => Closed::Gone(d.status),
        // No IRP: the close was never issued, the socket is still open.
        Err(status) => Closed::StillOpen(status),
    }
}
