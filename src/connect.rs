//! The connect behind SafeWskSocketConnect and SafeWskSocketConnectAsync:
//! parameters by position, then the IRQL, then entering the client; then the
//! provider's WskSocketConnect, waited for or started asynchronously.

use crate::client::{Entered, SAFEWSK_CLIENT};
use crate::connect_async::{self, SAFEWSK_CONNECT_REQUEST};
use crate::irp::call_and_wait;
use crate::nt::*;
use crate::platform;
use crate::sockets::Reserved;
use crate::status::{require_irql, Status};
use crate::validate::{ConnectArgs, Context};

type SocketConnectFn = unsafe extern "system" fn(
    PWSK_CLIENT,
    USHORT,
    ULONG,
    *mut SOCKADDR,
    *mut SOCKADDR,
    ULONG,
    PVOID,
    *const WSK_CLIENT_CONNECTION_DISPATCH,
    PEPROCESS,
    PETHREAD,
    PSECURITY_DESCRIPTOR,
    *mut IRP,
) -> NTSTATUS;

/// A connect whose arguments were validated, inside its client.
struct Connect<'a> {
    entered: Entered<'a>,
    args: ConnectArgs,
    socket_connect: SocketConnectFn,
}

impl<'a> Connect<'a> {
    /// Parameters 1 to 12 (12 usable or not as `twelfth_ok` says), then
    /// IRQL <= `max_irql`, then entering the client.
    ///
    /// # Safety
    /// `client` is null or from SafeWskStartup; the pointers in `args` are
    /// null or readable as the connect functions' contract says.
    unsafe fn begin(
        client: *mut SAFEWSK_CLIENT,
        args: ConnectArgs,
        twelfth_ok: bool,
        max_irql: KIRQL,
    ) -> Result<Connect<'a>, NTSTATUS> {
        // SAFETY: `client` is null or a pointer from SafeWskStartup.
        let client = unsafe { SAFEWSK_CLIENT::from_ptr(client) };
        let cx = Context {
            client_present: client.is_some(),
            twelfth_ok,
            // A security descriptor may be pageable: read it only where a
            // page fault is allowed.
            may_read_pageable: platform::current_irql() <= APC_LEVEL,
        };
        // SAFETY: the pointers are null or readable per the API contract.
        unsafe { args.validate(cx) }?;
        let client = client.ok_or(STATUS_INVALID_PARAMETER_1)?;
        require_irql(max_irql)?;
        let entered = client.enter()?;
        // SAFETY: the provider dispatch captured at startup stays valid until
        // the NPI is released at cleanup, which waits for us to leave.
        let socket_connect = unsafe { (*entered.provider().Dispatch).WskSocketConnect }.ok_or(STATUS_NOT_SUPPORTED)?;
        Ok(Connect { entered, args, socket_connect })
    }

    /// Hands `irp` to the provider's WskSocketConnect, with `local` and
    /// `remote` as the addresses (the caller's, or copies that live until
    /// the IRP completes).
    ///
    /// # Safety
    /// The IRP is fresh with a completion routine set; the addresses are
    /// valid until the IRP completes (WSK may read them until then).
    unsafe fn issue(&self, irp: *mut IRP, local: *const SOCKADDR, remote: *const SOCKADDR) -> NTSTATUS {
        let a = &self.args;
        // SAFETY: the provider's WskSocketConnect of the entered client, with
        // validated arguments and an IRP per the function's contract.
        unsafe {
            (self.socket_connect)(
                self.entered.provider().Client,
                a.socket_type,
                a.protocol,
                local.cast_mut(),
                remote.cast_mut(),
                a.flags,
                a.socket_context,
                a.dispatch,
                a.owning_process,
                a.owning_thread,
                a.security_descriptor,
                irp,
            )
        }
    }
}

/// SafeWskSocketConnect: connects and waits up to `timeout_ms`; on success
/// `*socket_out` is the socket, recorded among the client's open sockets.
///
/// # Safety
/// The API contract of SafeWskSocketConnect (`socket_out` null or writable).
pub unsafe fn connect_and_wait(
    client: *mut SAFEWSK_CLIENT,
    args: ConnectArgs,
    socket_out: *mut *mut WSK_SOCKET,
    timeout_ms: ULONG,
) -> Status {
    // SAFETY: forwarded API contract.
    let connect = unsafe { Connect::begin(client, args, !socket_out.is_null(), APC_LEVEL) }?;
    let client = connect.entered.client();
    let node = Reserved::new(client.allocator())?.with_dispatch(args.dispatch);
    let issue = |irp| {
        // SAFETY: a fresh IRP with its completion routine set; the caller's
        // addresses live until this call returns, which is after completion.
        unsafe { connect.issue(irp, args.local, args.remote) }
    };
    // SAFETY: IRQL <= APC_LEVEL; `issue` hands the IRP to exactly one WSK
    // function.
    let done = unsafe { call_and_wait(client.device(), b"WskSocketConnect\0", Some(timeout_ms), issue) }?;
    if !nt_success(done.status) {
        return Err(done.status);
    }
    let socket = done.information as *mut WSK_SOCKET;
    if socket.is_null() {
        // A provider that reports success without a socket: nothing to close.
        return Err(STATUS_UNSUCCESSFUL);
    }
    // SAFETY: IRQL <= APC_LEVEL; a new socket, not yet recorded.
    unsafe { client.sockets().insert(node, socket) };
    // SAFETY: `socket_out` was checked non-null as parameter 12.
    unsafe { *socket_out = socket };
    Ok(STATUS_SUCCESS)
}

/// SafeWskSocketConnectAsync: starts the connect; STATUS_PENDING means the
/// request's callback will come.
///
/// # Safety
/// The API contract of SafeWskSocketConnectAsync.
pub unsafe fn connect_async(
    client: *mut SAFEWSK_CLIENT,
    args: ConnectArgs,
    request: *mut SAFEWSK_CONNECT_REQUEST,
) -> Status {
    // SAFETY: `request` is null or readable per the API contract.
    let request_ok = unsafe { request.as_ref() }.is_some_and(|r| r.Callback.is_some() && r.Reserved == 0);
    // SAFETY: forwarded API contract.
    let connect = unsafe { Connect::begin(client, args, request_ok, DISPATCH_LEVEL) }?;
    let issue = |irp, local, remote| {
        // SAFETY: `start` passes the request's own copies of the addresses,
        // valid until the callback.
        unsafe { connect.issue(irp, local, remote) }
    };
    // SAFETY: IRQL <= DISPATCH_LEVEL; the request storage is valid per the
    // contract; the addresses were validated (and are copied into the
    // request, so the caller's may go away when this returns); the client
    // stays entered for the request (kept below).
    unsafe { connect_async::start(connect.entered.client(), request, args.local, args.remote, args.dispatch, issue) }?;
    // The request leaves the client's rundown after its callback.
    let Connect { entered, .. } = connect;
    entered.keep();
    Ok(STATUS_PENDING)
}

/// SafeWskCancelConnect.
///
/// # Safety
/// The API contract of SafeWskCancelConnect.
pub unsafe fn cancel(request: *mut SAFEWSK_CONNECT_REQUEST) -> Status {
    if request.is_null() {
        return Err(STATUS_INVALID_PARAMETER_1);
    }
    require_irql(DISPATCH_LEVEL)?;
    // SAFETY: a started request with intact storage, per the contract.
    if unsafe { connect_async::cancel(request) } {
        Ok(STATUS_SUCCESS)
    } else {
        Err(STATUS_NOT_FOUND)
    }
}
