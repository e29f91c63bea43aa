//! The connect family: SafeWskSocketConnect and SafeWskSocketConnectAsync
//! (here and in `asynchronous`), SafeWskConnectByName (`by_name`),
//! SafeWskSocketConnectWithOptions (`options`), and the parameter checks
//! they share (`validate`).
//!
//! Every connect: parameters by position (the client handle is checked, and
//! the client entered so that its transport list and cached security
//! descriptors can be read), then the IRQL, then refusing a client whose
//! cleanup has begun; then a socket slot is reserved (with its IRP, before
//! the provider is called, so a connected socket is never lost to a failed
//! allocation) and the provider's WskSocketConnect waited for or started
//! asynchronously; on success the slot is published and its handle handed
//! out.

pub(crate) mod asynchronous;
pub(crate) mod by_name;
pub(crate) mod options;
/// cbindgen:ignore
pub(crate) mod request_state;
pub(crate) mod validate;

use crate::client::security_descriptor::SdPin;
use crate::client::{self, Inside, SAFEWSK_CLIENT};
use crate::handles::SAFEWSK_SOCKET;
use crate::kernel::irp::{self, call_and_wait_on};
use crate::kernel::nt::*;
use crate::kernel::status::{require_irql, Status};
use asynchronous::SAFEWSK_CONNECT_REQUEST;
use validate::{ConnectArgs, Context};

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
struct Connect {
    inside: Inside,
    args: ConnectArgs,
    socket_connect: SocketConnectFn,
    /// The security descriptor's pin, held until the IRP has completed.
    pin: SdPin<'static>,
}

/// Parameter 1 and the validation context of a connect: the client entered
/// (at IRQL <= DISPATCH_LEVEL; above it only the handle's form is checked,
/// and the call fails for its IRQL right after validation).
pub(crate) fn client_context(
    client: *mut SAFEWSK_CLIENT,
    twelfth_ok: bool,
) -> (Result<Option<Inside>, NTSTATUS>, Context<'static>) {
    let pinned = client::pin(client);
    let block = match &pinned {
        Ok(Some(inside)) => Some(inside.block()),
        _ => None,
    };
    let cx = Context {
        client_present: pinned.is_ok(),
        twelfth_ok,
        transports: block.map(|b| b.transports()),
        sds: block.map(|b| b.sds()),
    };
    (pinned, cx)
}

impl Connect {
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
    ) -> Result<Connect, NTSTATUS> {
        let (pinned, cx) = client_context(client, twelfth_ok);
        // SAFETY: the pointers are null or readable per the API contract.
        unsafe { args.validate(cx) }?;
        require_irql(max_irql)?;
        let inside = pinned?.ok_or(STATUS_INVALID_LEVEL)?;
        inside.connecting()?;
        let block = inside.block();
        // SAFETY: the provider dispatch captured at startup stays valid until
        // the NPI is released at cleanup, which waits for us to leave.
        let socket_connect = unsafe { (*block.provider().Dispatch).WskSocketConnect }.ok_or(STATUS_NOT_SUPPORTED)?;
        // Validation found the descriptor cached; pin it so that no release
        // can happen before the IRP has completed (a release that won the
        // race since then makes it _11 after all).
        // SAFETY: IRQL <= max_irql <= DISPATCH_LEVEL, checked above; the pin
        // is dropped in this call or handed to the request (same bound).
        let pin = unsafe { SdPin::new(block.sds(), args.security_descriptor) }?;
        Ok(Connect { inside, args, socket_connect, pin })
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
        unsafe { issue(&self.inside, self.socket_connect, &self.args, irp, local, remote) }
    }
}

/// Hands `irp` to the provider's WskSocketConnect (`socket_connect`, the
/// entered client's) with the arguments of `a` and the addresses given.
///
/// # Safety
/// As [`Connect::issue`]; `a` was validated.
unsafe fn issue(
    inside: &Inside,
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
            inside.block().provider().Client,
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
    inside: &Inside,
    args: &ConnectArgs,
    timeout_ms: ULONG,
) -> Result<*mut SAFEWSK_SOCKET, NTSTATUS> {
    let block = inside.block();
    // SAFETY: the provider dispatch captured at startup stays valid until
    // the NPI is released at cleanup, which waits for the entered call.
    let socket_connect = unsafe { (*block.provider().Dispatch).WskSocketConnect }.ok_or(STATUS_NOT_SUPPORTED)?;
    // SAFETY: IRQL <= APC_LEVEL per the caller.
    let slot = unsafe { inside.reserve_socket(args.dispatch) }?;
    let issue = |irp| {
        // SAFETY: the slot's IRP with its completion routine set; the
        // addresses live until this call returns, which is after completion.
        unsafe { issue(inside, socket_connect, args, irp, args.local, args.remote) }
    };
    let cancel = |irp| {
        // SAFETY: call_and_wait_on passes the still-live IRP.
        unsafe { irp::cancel(irp) }
    };
    // SAFETY: the record's IRP, idle and ours (reinitialized by
    // call_and_wait_on); IRQL <= APC_LEVEL; `issue` hands the IRP to exactly
    // one WSK function.
    let done = unsafe {
        call_and_wait_on(slot.irp(), block.device(), b"WskSocketConnect\0", Some(timeout_ms), issue, cancel)
    }?;
    if !nt_success(done.status) {
        return Err(done.status);
    }
    let socket = done.information as *mut WSK_SOCKET;
    if socket.is_null() {
        // A provider that reports success without a socket: nothing to close.
        return Err(STATUS_UNSUCCESSFUL);
    }
    slot.set_socket(socket);
    Ok(slot.publish())
}

/// SafeWskSocketConnect: connects and waits up to `timeout_ms`; on success
/// `*socket_out` is the socket, recorded among the client's open sockets.
///
/// # Safety
/// The API contract of SafeWskSocketConnect (`socket_out` null or writable).
pub unsafe fn connect_and_wait(
    client: *mut SAFEWSK_CLIENT,
    args: ConnectArgs,
    socket_out: *mut *mut SAFEWSK_SOCKET,
    timeout_ms: ULONG,
) -> Status {
    // SAFETY: forwarded API contract.
    let connect = unsafe { Connect::begin(client, args, !socket_out.is_null(), APC_LEVEL) }?;
    // SAFETY: IRQL <= APC_LEVEL (checked by begin); validated arguments.
    let socket = unsafe { connect_entered(&connect.inside, &connect.args, timeout_ms) }?;
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
        asynchronous::start(
            &connect.inside,
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
    let Connect { inside, pin, .. } = connect;
    let _ = pin.keep();
    let _ = inside.keep();
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
    if unsafe { asynchronous::cancel(request) } {
        Ok(STATUS_SUCCESS)
    } else {
        Err(STATUS_NOT_FOUND)
    }
}

/// SafeWskConnect: SafeWskSocketConnect to `remote` from the wildcard
/// address of its family, TCP, without context, callbacks or security
/// descriptor; the statuses renumbered to this export's positions.
///
/// # Safety
/// The API contract of SafeWskConnect.
pub unsafe fn connect_short(
    client: *mut SAFEWSK_CLIENT,
    remote: *const SOCKADDR,
    socket_out: *mut *mut SAFEWSK_SOCKET,
    timeout_ms: ULONG,
) -> Status {
    // The family decides the wildcard; an unreadable or unknown one is the
    // remote address's fault, which validation reports as such.
    let family = if remote.is_null() {
        AF_INET
    } else {
        // SAFETY: non-NULL and readable per the API contract; `sa_family` is
        // a SOCKADDR's first field.
        unsafe { core::ptr::read_unaligned(remote.cast::<ADDRESS_FAMILY>()) }
    };
    let v4 = SOCKADDR_IN { sin_family: AF_INET, sin_port: 0, sin_addr: [0; 4], sin_zero: [0; 8] };
    let v6 = SOCKADDR_IN6 { sin6_family: AF_INET6, ..SOCKADDR_IN6::default() };
    let local: *const SOCKADDR =
        if family == AF_INET6 { core::ptr::addr_of!(v6).cast() } else { core::ptr::addr_of!(v4).cast() };
    let args = ConnectArgs {
        socket_type: SOCK_STREAM,
        protocol: IPPROTO_TCP,
        local,
        remote,
        flags: 0,
        socket_context: core::ptr::null_mut(),
        dispatch: core::ptr::null(),
        owning_process: core::ptr::null_mut(),
        owning_thread: core::ptr::null_mut(),
        security_descriptor: core::ptr::null_mut(),
    };
    // SAFETY: forwarded API contract; `local` lives for the call.
    unsafe { connect_and_wait(client, args, socket_out, timeout_ms) }.map_err(|st| match st {
        // The provider's transport list has no TCP.
        STATUS_INVALID_PARAMETER_2 | STATUS_INVALID_PARAMETER_3 => STATUS_NOT_SUPPORTED,
        // The family of the remote address (which chose the local one).
        STATUS_INVALID_PARAMETER_4 | STATUS_INVALID_PARAMETER_5 => STATUS_INVALID_PARAMETER_2,
        STATUS_INVALID_PARAMETER_12 => STATUS_INVALID_PARAMETER_3,
        other => other,
    })
}
