//! The connect behind SafeWskSocketConnect and SafeWskSocketConnectAsync:
//! parameters by position, then the IRQL, then entering the client; then the
//! provider's WskSocketConnect, waited for or started asynchronously.

use crate::client::{Entered, SAFEWSK_CLIENT};
use crate::connect_async::{self, SAFEWSK_CONNECT_REQUEST};
use crate::irp::{self, call_and_wait_on};
use crate::nt::*;
use crate::platform;
use crate::security_descriptor::SdPin;
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
    /// The security descriptor's pin, held until the IRP has completed.
    pin: SdPin<'a>,
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
        let lockable = platform::current_irql() <= DISPATCH_LEVEL;
        let cx = Context {
            client_present: client.is_some(),
            twelfth_ok,
            transports: client.map(|c| c.transports()),
            sds: client.filter(|_| lockable).map(|c| c.sds()),
        };
        // SAFETY: the pointers are null or readable per the API contract.
        unsafe { args.validate(cx) }?;
        let client = client.ok_or(STATUS_INVALID_PARAMETER_1)?;
        require_irql(max_irql)?;
        let entered = client.enter()?;
        // SAFETY: the provider dispatch captured at startup stays valid until
        // the NPI is released at cleanup, which waits for us to leave.
        let socket_connect = unsafe { (*entered.provider().Dispatch).WskSocketConnect }.ok_or(STATUS_NOT_SUPPORTED)?;
        // Validation found the descriptor cached; pin it so that no release
        // can happen before the IRP has completed (a release that won the
        // race since then makes it _11 after all).
        // SAFETY: IRQL <= max_irql <= DISPATCH_LEVEL, checked above; the pin
        // is dropped in this call or handed to the request (same bound).
        let pin = unsafe { SdPin::new(client.sds(), args.security_descriptor) }?;
        Ok(Connect { entered, args, socket_connect, pin })
    }

    /// Hands `irp` to the provider's WskSocketConnect, with `local` and
    /// `remote` as the addresses (the caller's, or copies that live until
    /// the IRP completes).
    ///
    /// # Safety
    /// The IRP is fresh with a completion routine set; the addresses are
    /// valid until the IRP completes (WSK may read them until then).
    unsafe fn issue(&self, irp: *mut IRP, local: *const SOCKADDR, remote: *const SOCKADDR) -> NTSTATUS {
        // SAFETY: forwarded caller guarantees.
        unsafe { issue(&self.entered, self.socket_connect, &self.args, irp, local, remote) }
    }
}

/// Hands `irp` to the provider's WskSocketConnect (`socket_connect`, the
/// entered client's) with the arguments of `a` and the addresses given.
///
/// # Safety
/// As [`Connect::issue`]; `a` was validated.
unsafe fn issue(
    entered: &Entered<'_>,
    socket_connect: SocketConnectFn,
    a: &ConnectArgs,
    irp: *mut IRP,
    local: *const SOCKADDR,
    remote: *const SOCKADDR,
) -> NTSTATUS {
    // SAFETY: the provider's WskSocketConnect of the entered client, with
    // validated arguments and an IRP per the function's contract.
    unsafe {
        socket_connect(
            entered.provider().Client,
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

/// One synchronous WskSocketConnect inside an entered client: reserves the
/// socket's record (before the provider is called), issues the connect
/// through `call_and_wait` with `timeout_ms`, and records the socket. Used
/// by SafeWskSocketConnect and by each attempt of SafeWskConnectByName.
///
/// # Safety
/// IRQL <= APC_LEVEL; `args` was validated (its addresses are readable and
/// stay valid until this returns).
pub(crate) unsafe fn connect_entered(
    entered: &Entered<'_>,
    args: &ConnectArgs,
    timeout_ms: ULONG,
) -> Result<*mut WSK_SOCKET, NTSTATUS> {
    // SAFETY: the provider dispatch captured at startup stays valid until
    // the NPI is released at cleanup, which waits for the entered call.
    let socket_connect = unsafe { (*entered.provider().Dispatch).WskSocketConnect }.ok_or(STATUS_NOT_SUPPORTED)?;
    let client = entered.client();
    let node = client.sockets().reserve(client.allocator())?.with_dispatch(args.dispatch);
    let issue = |irp| {
        // SAFETY: the record's IRP with its completion routine set; the
        // addresses live until this call returns, which is after completion.
        unsafe { issue(entered, socket_connect, args, irp, args.local, args.remote) }
    };
    let cancel = |irp| {
        // SAFETY: call_and_wait_on passes the still-live IRP.
        unsafe { irp::cancel(irp) }
    };
    // SAFETY: the record's IRP, idle and ours (reinitialized by
    // call_and_wait_on); IRQL <= APC_LEVEL; `issue` hands the IRP to exactly
    // one WSK function.
    let done = unsafe {
        call_and_wait_on(node.irp(), client.device(), b"WskSocketConnect\0", Some(timeout_ms), issue, cancel)
    }?;
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
    Ok(socket)
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
    // SAFETY: IRQL <= APC_LEVEL (checked by begin); validated arguments.
    let socket = unsafe { connect_entered(&connect.entered, &connect.args, timeout_ms) }?;
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
    unsafe {
        connect_async::start(
            connect.entered.client(),
            request,
            args.local,
            args.remote,
            args.security_descriptor,
            args.dispatch,
            issue,
        )
    }?;
    // The request leaves the client's rundown after its callback, and
    // unpins the security descriptor once its IRP has completed.
    let Connect { entered, pin, .. } = connect;
    let _ = pin.keep();
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
