//! SafeWskEnableCallbacks / SafeWskDisableCallbacks: turning on (and off)
//! the event callbacks of a connected socket, which WSK creates with all
//! callbacks disabled ("PFN_WSK_SOCKET_CONNECT").
//!
//! What Microsoft Learn says, and what is done with it:
//! - "SO_WSK_EVENT_CALLBACK": WskControlSocket(WskSetOption,
//!   SO_WSK_EVENT_CALLBACK, SOL_SOCKET) with a WSK_EVENT_CALLBACK_CONTROL
//!   whose NpiId is &NPI_WSK_INTERFACE_ID; on a connection-oriented socket
//!   only after it is connected (every socket safewsk hands out is).
//!   "A WSK application does not specify a pointer to an IRP when calling
//!   the WskControlSocket function to enable event callback functions":
//!   enabling is one synchronous call without an IRP. Disabling may take an
//!   IRP, which then completes only "after all in-progress calls to the
//!   event callback function have returned": safewsk passes one, through
//!   `irp::call_and_wait`, so that when SafeWskDisableCallbacks returns
//!   STATUS_SUCCESS no disabled callback is running any more.
//! - "Enabling and Disabling Event Callback Functions" and
//!   "WSK_EVENT_CALLBACK_CONTROL": several callbacks may be enabled at once,
//!   but "a WSK application must disable each event callback function
//!   individually" (EventMask = one flag | WSK_EVENT_DISABLE): a mask of
//!   several is disabled one WskControlSocket call per flag, under one
//!   deadline.
//! - The connection socket's events: WSK_EVENT_RECEIVE (WskReceiveEvent),
//!   WSK_EVENT_DISCONNECT (WskDisconnectEvent), WSK_EVENT_SEND_BACKLOG
//!   (WskSendBacklogEvent).
//!
//! Each flag is checked against the Dispatch table the socket was created
//! with (recorded in the socket's slot when it was made): WSK
//! would call a NULL entry. A flag whose entry is NULL, or any flag on a
//! socket created without a table, is STATUS_INVALID_PARAMETER_2, and the
//! provider is not called.

use core::mem::size_of;
use core::ptr;

use crate::handles::{Take, SAFEWSK_SOCKET};
use crate::io::{check, SocketCall};
use crate::kernel::deadline::Deadline;
use crate::kernel::irp::call_and_wait;
use crate::kernel::nt::*;
use crate::kernel::status::{require_irql, Status};

/// The events of a connection-oriented socket.
const CONNECTION_EVENTS: ULONG = WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT | WSK_EVENT_SEND_BACKLOG;

/// Parameters 1 (a socket handle) and 2 (a mask of connection events), the
/// IRQL (<= DISPATCH_LEVEL), the socket acquired (counted as a call, without
/// its IRP: a close waits until the WskControlSocket calls have returned,
/// "Closing a Socket"), then each event of the mask checked against the
/// table the socket was made with (read once the socket is held: the
/// driver keeps the table valid until the close).
fn enter(socket: *mut SAFEWSK_SOCKET, mask: ULONG) -> Result<SocketCall, NTSTATUS> {
    let h = check(socket)?;
    if mask == 0 || mask & !CONNECTION_EVENTS != 0 {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    require_irql(DISPATCH_LEVEL)?;
    let call = SocketCall::acquire(h, Take::CallWithoutIrp)?;
    // SAFETY: the table the socket was created with, which the caller keeps
    // valid until the socket is closed (the connect's contract); the socket
    // is held, so not closed; NULL is handled.
    let table = unsafe { call.slot().dispatch().as_ref() }.ok_or(STATUS_INVALID_PARAMETER_2)?;
    let present = (if table.WskReceiveEvent.is_some() { WSK_EVENT_RECEIVE } else { 0 })
        | (if table.WskDisconnectEvent.is_some() { WSK_EVENT_DISCONNECT } else { 0 })
        | (if table.WskSendBacklogEvent.is_some() { WSK_EVENT_SEND_BACKLOG } else { 0 });
    if mask & !present != 0 {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    Ok(call)
}

/// The provider's WskControlSocket for the socket of `call`.
fn control(call: &SocketCall) -> Result<PFN_WSK_CONTROL_SOCKET, NTSTATUS> {
    // SAFETY: the socket is held: an open connection socket whose Dispatch
    // is the provider's connection table, valid until the close.
    let table = unsafe { (*call.socket()).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
    // SAFETY: as above; NULL is handled.
    let entry = unsafe { table.as_ref() }.ok_or(STATUS_NOT_SUPPORTED)?.Basic.WskControlSocket;
    if entry.is_null() {
        return Err(STATUS_NOT_SUPPORTED);
    }
    // SAFETY: WskControlSocket is a PFN_WSK_CONTROL_SOCKET (wsk.h), a
    // function pointer of a pointer's size.
    Ok(unsafe { core::mem::transmute_copy::<PFN_UNUSED, PFN_WSK_CONTROL_SOCKET>(&entry) })
}

/// SafeWskEnableCallbacks.
///
/// # Safety
/// The API contract of SafeWskEnableCallbacks.
pub unsafe fn enable(socket: *mut SAFEWSK_SOCKET, mask: ULONG) -> Status {
    let call = enter(socket, mask)?;
    let control = control(&call)?;
    let wsk_socket = call.socket();
    let mut request = WSK_EVENT_CALLBACK_CONTROL { NpiId: &NPI_WSK_INTERFACE_ID, EventMask: mask };
    let input: PVOID = ptr::addr_of_mut!(request).cast();
    // SAFETY: the provider's WskControlSocket of an open socket, with the
    // documented arguments for enabling, and no IRP (the documented way:
    // the call completes before it returns, while `request` is alive).
    let status = unsafe {
        control(
            wsk_socket,
            WskSetOption,
            SO_WSK_EVENT_CALLBACK,
            SOL_SOCKET,
            size_of::<WSK_EVENT_CALLBACK_CONTROL>(),
            input,
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    call.returned();
    drop(call);
    if nt_success(status) && status != STATUS_PENDING {
        Ok(STATUS_SUCCESS)
    } else if status == STATUS_PENDING {
        // No IRP was given: a provider cannot pend this call.
        Err(STATUS_UNSUCCESSFUL)
    } else {
        Err(status)
    }
}

/// SafeWskDisableCallbacks: one WskControlSocket per flag, each with an IRP,
/// under one deadline.
///
/// # Safety
/// The API contract of SafeWskDisableCallbacks.
pub unsafe fn disable(socket: *mut SAFEWSK_SOCKET, mask: ULONG, timeout_ms: ULONG) -> Status {
    let call = enter(socket, mask)?;
    require_irql(APC_LEVEL)?;
    let control = control(&call)?;
    let deadline = Deadline::start(timeout_ms);
    let device = call.device();
    let wsk_socket = call.socket();
    for flag in [WSK_EVENT_RECEIVE, WSK_EVENT_DISCONNECT, WSK_EVENT_SEND_BACKLOG] {
        if mask & flag == 0 {
            continue;
        }
        let mut request =
            WSK_EVENT_CALLBACK_CONTROL { NpiId: &NPI_WSK_INTERFACE_ID, EventMask: flag | WSK_EVENT_DISABLE };
        let input: PVOID = ptr::addr_of_mut!(request).cast();
        // Not once a close has begun (it may have freed the socket since the
        // previous flag's call returned): the socket is then being closed.
        if !call.call_again() {
            return Err(STATUS_INVALID_PARAMETER_1);
        }
        let issue = |irp| {
            // SAFETY: the provider's WskControlSocket of an open socket (no
            // close can issue WskCloseSocket before `end_control`); the
            // control structure lives on this resident stack (KernelMode
            // wait) until the IRP has completed.
            let returned = unsafe {
                control(
                    wsk_socket,
                    WskSetOption,
                    SO_WSK_EVENT_CALLBACK,
                    SOL_SOCKET,
                    size_of::<WSK_EVENT_CALLBACK_CONTROL>(),
                    input,
                    0,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    irp,
                )
            };
            call.returned();
            returned
        };
        // SAFETY: IRQL <= APC_LEVEL; `issue` hands the IRP to one WSK call.
        let done = unsafe {
            call_and_wait(
                device,
                b"WskControlSocket(SO_WSK_EVENT_CALLBACK, disable)\0",
                Some(deadline.remaining()),
                issue,
            )
        }?;
        if done.timed_out {
            return Err(STATUS_IO_TIMEOUT);
        }
        if !nt_success(done.status) {
            return Err(done.status);
        }
    }
    Ok(STATUS_SUCCESS)
}
