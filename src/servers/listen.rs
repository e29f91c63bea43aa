//! SafeWskListen and SafeWskAccept: a listening socket (WskSocket with
//! WSK_FLAG_LISTEN_SOCKET, its options, WskBind: "Once a listening socket is
//! bound to a local transport address, the socket ... listens for incoming
//! connections", Listening for and Accepting Incoming Connections,
//! Microsoft Learn) and the synchronous accept.
//!
//! The accept (PFN_WSK_ACCEPT, Microsoft Learn):
//! - Flags "reserved for system use ... must set this parameter to zero";
//! - AcceptSocketContext / AcceptSocketDispatch: the accepted socket's
//!   callbacks, checked as the connects check theirs (a context needs a
//!   table, a table needs a callback);
//! - LocalAddress / RemoteAddress: "The buffer must be located in non-paged
//!   memory": the provider writes into buffers on this thread's stack
//!   (resident: the wait is a KernelMode wait), copied to the caller's
//!   afterwards;
//! - "If the IRP completes successfully, the IoStatus.Information field of
//!   the IRP contains a pointer to a WSK_SOCKET structure for the accepted
//!   socket": recorded in the slot reserved before WskAccept, whose IRP the
//!   accept uses;
//! - IRQL <= DISPATCH_LEVEL (the synchronous accept waits: <= APC_LEVEL).

use super::{copy_out, make_socket, ServerSocket, SAFEWSK_ADDRESS};
use crate::client::{self, SAFEWSK_CLIENT};
use crate::connect::options::{LISTEN_OPTIONS, SAFEWSK_SOCKET_OPTIONS};
use crate::connect::validate::{context_and_dispatch, Bad};
use crate::handles::{Kind, Take, SAFEWSK_SOCKET};
use crate::io::{cancel_at_deadline, check_kind, SocketCall};
use crate::kernel::irp::call_and_wait_on;
use crate::kernel::nt::*;
use crate::kernel::status::{require_irql, Status};

/// What SafeWskListen makes.
const LISTEN: ServerSocket = ServerSocket {
    kind: Kind::Listen,
    flags: WSK_FLAG_LISTEN_SOCKET,
    socket_type: SOCK_STREAM,
    protocol: IPPROTO_TCP,
    options: LISTEN_OPTIONS,
};

/// SafeWskListen.
///
/// # Safety
/// The API contract of SafeWskListen.
pub unsafe fn listen(
    client: *mut SAFEWSK_CLIENT,
    local: *const SOCKADDR,
    options: *const SAFEWSK_SOCKET_OPTIONS,
    socket_out: *mut *mut SAFEWSK_SOCKET,
    timeout_ms: ULONG,
) -> Status {
    // SAFETY: forwarded API contract.
    unsafe { make_socket(LISTEN, client, local, options, socket_out, timeout_ms) }
}

/// Parameters 2 and 3 of both accepts: the accepted socket's context and
/// callback table, checked as a connect's.
///
/// # Safety
/// `dispatch` is NULL or a readable WSK_CLIENT_CONNECTION_DISPATCH.
pub(crate) unsafe fn check_callbacks(
    context: PVOID,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
) -> Result<(), NTSTATUS> {
    // SAFETY: per the caller.
    match unsafe { context_and_dispatch(context, dispatch) } {
        Err(Bad::Context) => Err(STATUS_INVALID_PARAMETER_2),
        Err(Bad::Dispatch) => Err(STATUS_INVALID_PARAMETER_3),
        Ok(()) => Ok(()),
    }
}

/// The listening socket's WskAccept.
pub(crate) fn accept_entry(call: &SocketCall) -> Result<PFN_WSK_ACCEPT, NTSTATUS> {
    let entry = call.listen_dispatch()?.WskAccept;
    if entry.is_null() {
        return Err(STATUS_NOT_SUPPORTED);
    }
    // SAFETY: a listening socket's table's WskAccept is a PFN_WSK_ACCEPT
    // (wsk.h), a function pointer of a pointer's size.
    Ok(unsafe { core::mem::transmute_copy::<PFN_UNUSED, PFN_WSK_ACCEPT>(&entry) })
}

/// SafeWskAccept: parameters 1 to 4 (5 and 6 are optional, 7 any value),
/// the IRQL, the listening socket acquired (counted inside until WskAccept
/// returns, held until the accepted socket is handed out), the accepted
/// socket's slot reserved, WskAccept through `call_and_wait_on` on that
/// slot's IRP.
///
/// # Safety
/// The API contract of SafeWskAccept.
#[allow(clippy::too_many_arguments)] // the export's seven parameters
pub unsafe fn accept(
    listen: *mut SAFEWSK_SOCKET,
    context: PVOID,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    socket_out: *mut *mut SAFEWSK_SOCKET,
    local_out: *mut SAFEWSK_ADDRESS,
    remote_out: *mut SAFEWSK_ADDRESS,
    timeout_ms: ULONG,
) -> Status {
    let h = check_kind(listen, Kind::Listen)?;
    // SAFETY: the table is NULL or readable per the API contract.
    unsafe { check_callbacks(context, dispatch) }?;
    if socket_out.is_null() {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    require_irql(APC_LEVEL)?;
    let call = SocketCall::acquire(h, Take::CallWithoutIrp)?;
    let accept = accept_entry(&call)?;
    // SAFETY: IRQL <= APC_LEVEL; `call` holds a slot of the listening
    // socket's client.
    let slot = unsafe { client::reserve_accepted(call.slot().owner(), dispatch) }?;
    slot.set_family(call.slot().family());
    let mut local = SAFEWSK_ADDRESS::default();
    let mut remote = SAFEWSK_ADDRESS::default();
    let (local_ptr, remote_ptr) = (local.as_sockaddr(), remote.as_sockaddr());
    let wsk_listen = call.socket();
    let issue = |irp| {
        // SAFETY: the provider's WskAccept of an open (held) listening
        // socket; Flags 0; the address buffers are on this resident stack
        // (KernelMode wait) and outlive the IRP; the context and table stay
        // valid until the accepted socket is closed (the API contract).
        let st = unsafe { accept(wsk_listen, 0, context, dispatch, local_ptr, remote_ptr, irp) };
        call.returned();
        st
    };
    // SAFETY: IRQL <= APC_LEVEL; the reserved slot's idle IRP; `issue`
    // hands it to exactly one WSK function.
    let done = unsafe {
        call_and_wait_on(slot.irp(), slot.device(), b"WskAccept\0", Some(timeout_ms), issue, cancel_at_deadline)
    }?;
    if !nt_success(done.status) {
        // The slot is given up, then the listening socket's hold.
        drop(slot);
        return Err(done.status);
    }
    let socket = done.information as *mut WSK_SOCKET;
    if socket.is_null() {
        // A provider that reports success without a socket: nothing to close.
        return Err(STATUS_UNSUCCESSFUL);
    }
    slot.set_socket(socket);
    // SAFETY: checked non-NULL as parameter 4; writable (contract).
    unsafe { *socket_out = slot.publish() };
    // SAFETY: NULL or writable (contract).
    unsafe { copy_out(&local, local_out) };
    // SAFETY: as above.
    unsafe { copy_out(&remote, remote_out) };
    // Last: the listening socket's hold (a close of it may be waiting for
    // this accept to hand out its socket: cleanup's).
    drop(call);
    Ok(STATUS_SUCCESS)
}
