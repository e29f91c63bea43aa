//! The exported C API. cbindgen turns these doc comments into
//! include/safewsk.h; keep them the reference a C driver author reads.
#![allow(non_snake_case)]

use core::ffi::c_void;
use core::ptr;

use crate::buffer::{BufferMdl, SAFEWSK_FLAG_NONPAGED_BUFFER};
use crate::client::{Entered, SAFEWSK_CLIENT};
use crate::connect_async;
pub use crate::connect_async::{SAFEWSK_CONNECT_CALLBACK, SAFEWSK_CONNECT_REQUEST, SAFEWSK_NO_TIMEOUT};
use crate::irp::{self, call_and_wait};
use crate::nt::*;
use crate::platform::{self, LockOperation};
use crate::sockets::{Lookup, Reserved};
use crate::validate::{validate_connect, ConnectArgs};

/// Fails with STATUS_INVALID_LEVEL unless the current IRQL is at most `max`.
fn require_irql(max: KIRQL) -> Result<(), NTSTATUS> {
    if platform::current_irql() > max {
        Err(STATUS_INVALID_LEVEL)
    } else {
        Ok(())
    }
}

fn into_status(r: Result<(), NTSTATUS>) -> NTSTATUS {
    match r {
        Ok(()) => STATUS_SUCCESS,
        Err(status) => status,
    }
}

/// Registers the driver as a WSK client and captures the WSK provider.
///
/// `DeviceObject` is one of the calling driver's device objects (a WDM
/// driver without one creates an unnamed one with IoCreateDevice; a KMDF
/// driver passes WdfDeviceWdmGetDeviceObject or a control device's). Every
/// IRP safewsk issues gets its completion routine through
/// IoSetCompletionRoutineEx with this device object, which keeps the driver
/// image loaded until each completion routine has returned: without it, the
/// last instructions of a completion routine could run after DriverUnload
/// has let the image go. It must stay valid until SafeWskCleanup has
/// returned STATUS_SUCCESS (delete it after that, not before).
///
/// `ProviderWaitMs` is how long to wait for the WSK provider to become
/// available, as WskCaptureProviderNPI's WaitTimeout: `WSK_NO_WAIT` (0) fails
/// at once if it is not ready, `WSK_INFINITE_WAIT` waits as long as it takes,
/// any other value is milliseconds. A driver that starts early in boot
/// calls this from a worker thread (PsCreateSystemThread or a work item), not
/// from DriverEntry, which should not wait ("Registering a Winsock Kernel
/// Application").
///
/// On success `*Client` receives a client handle that the caller owns until it
/// passes it to SafeWskCleanup. On failure `*Client` is set to NULL and nothing
/// is left registered or allocated.
///
/// IRQL: PASSIVE_LEVEL.
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `DeviceObject` is NULL or not a
///   DEVICE_OBJECT (its Type is not IO_TYPE_DEVICE);
/// - STATUS_INVALID_PARAMETER_3: `Client` is NULL;
/// - STATUS_INVALID_LEVEL: called above PASSIVE_LEVEL;
/// - STATUS_INSUFFICIENT_RESOURCES: the client block (one non-paged pool
///   allocation, tag 'kwSS') could not be allocated;
/// - STATUS_DEVICE_NOT_READY: the provider did not become available within
///   `ProviderWaitMs`;
/// - STATUS_NOINTERFACE: the WSK subsystem does not support WSK version 1.0;
/// - any other status WskRegister or WskCaptureProviderNPI returned.
///
/// # Safety
/// `DeviceObject` is NULL or a live DEVICE_OBJECT of the calling driver;
/// `Client` is NULL or points to writable storage for one pointer.
#[no_mangle]
pub unsafe extern "C" fn SafeWskStartup(
    DeviceObject: PDEVICE_OBJECT,
    ProviderWaitMs: ULONG,
    Client: *mut *mut SAFEWSK_CLIENT,
) -> NTSTATUS {
    if !Client.is_null() {
        // SAFETY: non-null and, per the API contract, writable.
        unsafe { *Client = ptr::null_mut() };
    }
    // SAFETY: a non-null DeviceObject points to a DEVICE_OBJECT per the API
    // contract; its first field is the Type.
    if DeviceObject.is_null() || unsafe { ptr::read(ptr::addr_of!((*DeviceObject).Type)) } != IO_TYPE_DEVICE {
        return STATUS_INVALID_PARAMETER_1;
    }
    if Client.is_null() {
        return STATUS_INVALID_PARAMETER_3;
    }
    if let Err(status) = require_irql(PASSIVE_LEVEL) {
        return status;
    }
    // SAFETY: PASSIVE_LEVEL checked above; the device object is live.
    match unsafe { SAFEWSK_CLIENT::start(DeviceObject, ProviderWaitMs) } {
        Ok(p) => {
            // SAFETY: as above.
            unsafe { *Client = p };
            STATUS_SUCCESS
        }
        Err(status) => status,
    }
}

/// Releases the WSK provider, deregisters and frees `Client`.
///
/// Stops new connects at once (they fail with STATUS_DELETE_PENDING), then
/// waits until every call in progress has returned and every asynchronous
/// connect has called back (their deadlines bound that wait; while it lasts
/// it is reported with DbgPrint every few seconds). Calls on open sockets —
/// send, receive, disconnect and above all close — keep working during that
/// wait: closing its sockets is how a driver lets cleanup succeed. Then, if a
/// socket is still open, cleanup refuses: the client is reopened, nothing is
/// released, and STATUS_INVALID_DEVICE_STATE is returned — close every socket
/// and call it again. This keeps WskDeregister (which blocks until every
/// socket is closed) from hanging DriverUnload. Finally it waits for queued
/// DPCs (KeFlushQueuedDpcs) so that no safewsk timer routine is still
/// running, releases the provider and deregisters. After STATUS_SUCCESS the
/// handle is invalid, and no safewsk code runs any more on behalf of this
/// client: the driver may then delete the device object and unload.
///
/// One cleanup at a time: a second call while one is in progress returns
/// STATUS_DELETE_PENDING at once and changes nothing.
///
/// IRQL: PASSIVE_LEVEL.
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `Client` is NULL or not a live client;
/// - STATUS_INVALID_LEVEL: called above PASSIVE_LEVEL;
/// - STATUS_INVALID_DEVICE_STATE: a socket is still open;
/// - STATUS_DELETE_PENDING: another cleanup of this client is in progress.
///
/// # Safety
/// `Client` is NULL or a handle from SafeWskStartup that has not been
/// cleaned up.
#[no_mangle]
pub unsafe extern "C" fn SafeWskCleanup(Client: *mut SAFEWSK_CLIENT) -> NTSTATUS {
    // SAFETY: `Client` is null or a pointer the caller got from SafeWskStartup.
    if unsafe { SAFEWSK_CLIENT::from_ptr(Client) }.is_none() {
        return STATUS_INVALID_PARAMETER_1;
    }
    if let Err(status) = require_irql(PASSIVE_LEVEL) {
        return status;
    }
    // SAFETY: live client, PASSIVE_LEVEL.
    into_status(unsafe { SAFEWSK_CLIENT::stop(Client) })
}

/// Creates a TCP socket, binds it to `LocalAddress`, connects it to
/// `RemoteAddress` and returns it: WskSocketConnect, with the IRP, its
/// completion routine, the wait and the cancellation done for you.
///
/// Parameters 1 to 11 are those of PFN_WSK_SOCKET_CONNECT, with `Client` being
/// the safewsk client; a bad one fails with STATUS_INVALID_PARAMETER_<n> for
/// its position n, before the WSK provider is called:
/// 1. `Client`: a live client from SafeWskStartup.
/// 2. `SocketType`: SOCK_STREAM.
/// 3. `Protocol`: IPPROTO_TCP.
/// 4. `LocalAddress`: a SOCKADDR_IN or SOCKADDR_IN6 (AF_INET / AF_INET6), not
///    multicast or broadcast; use the wildcard address and port 0 to let the
///    stack choose. It decides the socket's address family.
/// 5. `RemoteAddress`: same family as `LocalAddress`, a non-zero port, and a
///    unicast address (not unspecified, broadcast or multicast, also when
///    IPv4-mapped).
/// 6. `Flags`: reserved, must be 0.
/// 7. `SocketContext`: optional (WSK's `_In_opt_`); a context without a
///    `Dispatch` table is never delivered to anything and is rejected.
/// 8. `Dispatch`: NULL, or a table with at least one callback. Context and
///    table must stay valid until the socket is closed. Note that WSK
///    creates every socket with all its event callbacks *disabled*
///    ("PFN_WSK_SOCKET_CONNECT": "all event callback functions on the new
///    socket are disabled by default"): a table given here does nothing
///    until the callbacks are enabled with WskControlSocket
///    (SO_WSK_EVENT_CALLBACK), which safewsk does not do yet.
/// 9. `OwningProcess`, 10. `OwningThread`: optional, passed through.
/// 11. `SecurityDescriptor`: NULL, or a cached copy from WskControlClient
///     (WSK_CACHE_SD): a 4-byte aligned SECURITY_DESCRIPTOR, whose revision
///     (1) is checked when the call is made at IRQL <= APC_LEVEL (at
///     DISPATCH_LEVEL, from the asynchronous connect, it is not read: it may
///     be pageable). Keep it until the IRP has completed: until this call
///     returns.
/// 12. `Socket`: receives the new socket, or NULL on any failure. The caller
///     owns the socket and must pass it to SafeWskCloseSocket.
/// 13. `TimeoutMs`: how long to wait for the connection. At the deadline the
///     IRP is cancelled and the call returns once the provider has completed
///     it (WSK completes cancelled IRPs; a provider that does not is named in
///     the debugger output every few seconds while the call keeps waiting,
///     since an IRP the provider owns cannot be freed). 0 cancels at once
///     unless the provider completed synchronously. A provider that returns
///     an error without completing the IRP (a breach of the I/O model that
///     Wine's stub WskSocketConnect commits) gets its status returned here.
///
/// All pointers are kernel-mode addresses; addresses are only read during the
/// call. Allocations: the IRP, the I/O manager's IoSetCompletionRoutineEx
/// context, and one small non-paged pool block (tag 'kwSS') that records
/// the socket among the client's open sockets until it is closed; each is
/// made before the provider is called, so a connected socket is never lost
/// to a failed allocation.
///
/// IRQL: <= APC_LEVEL (it waits).
///
/// Returns:
/// - STATUS_SUCCESS: `*Socket` is the connected socket;
/// - STATUS_INVALID_PARAMETER_1 .. _12: as above;
/// - STATUS_INVALID_LEVEL: called at DISPATCH_LEVEL or above;
/// - STATUS_DELETE_PENDING: SafeWskCleanup has begun on `Client`;
/// - STATUS_INSUFFICIENT_RESOURCES: an allocation above failed;
/// - STATUS_IO_TIMEOUT: not connected within `TimeoutMs`;
/// - the provider's status otherwise, e.g. STATUS_CONNECTION_REFUSED,
///   STATUS_HOST_UNREACHABLE, STATUS_NETWORK_UNREACHABLE,
///   STATUS_ADDRESS_ALREADY_EXISTS (local address in use).
///
/// # Safety
/// `Client` is NULL or a live handle. Every other non-NULL pointer is a
/// valid kernel-mode pointer to what is described above (an address is a
/// SOCKADDR_IN or SOCKADDR_IN6 as its family says), valid for the call.
#[no_mangle]
pub unsafe extern "C" fn SafeWskSocketConnect(
    Client: *mut SAFEWSK_CLIENT,
    SocketType: USHORT,
    Protocol: ULONG,
    LocalAddress: *const SOCKADDR,
    RemoteAddress: *const SOCKADDR,
    Flags: ULONG,
    SocketContext: PVOID,
    Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    OwningProcess: PEPROCESS,
    OwningThread: PETHREAD,
    SecurityDescriptor: PSECURITY_DESCRIPTOR,
    Socket: *mut *mut WSK_SOCKET,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    let call = ConnectCall {
        socket_type: SocketType,
        protocol: Protocol,
        local: LocalAddress,
        remote: RemoteAddress,
        flags: Flags,
        socket_context: SocketContext,
        dispatch: Dispatch,
        owning_process: OwningProcess,
        owning_thread: OwningThread,
        security_descriptor: SecurityDescriptor,
    };
    // SAFETY: pointers per the API contract.
    let (entered, socket_connect) = match unsafe { call.enter(Client, !Socket.is_null(), APC_LEVEL) } {
        Ok(v) => v,
        Err(status) => return status,
    };
    let node = match Reserved::new(entered.client().allocator()) {
        Ok(node) => node,
        Err(status) => return status,
    };
    let npi = entered.provider();
    let client = entered.client();
    // SAFETY: IRQL <= APC_LEVEL; the closure hands the IRP to exactly one WSK
    // function. The caller's addresses live until this call returns, after
    // completion.
    let done = unsafe {
        call_and_wait(
            client.device(),
            b"WskSocketConnect\0",
            Some(TimeoutMs),
            |irp| call.issue(socket_connect, npi, irp, call.local, call.remote),
            |irp| irp::cancel(irp),
        )
    };
    let done = match done {
        Ok(d) => d,
        Err(status) => return status,
    };
    if !nt_success(done.status) {
        return done.status;
    }
    let socket = done.information as *mut WSK_SOCKET;
    if socket.is_null() {
        // A provider that reports success without a socket: nothing to close.
        return STATUS_UNSUCCESSFUL;
    }
    // SAFETY: IRQL <= APC_LEVEL; a new socket, not yet recorded.
    unsafe { client.sockets().insert(node, socket) };
    // SAFETY: `Socket` was checked non-null by validation.
    unsafe { *Socket = socket };
    STATUS_SUCCESS
}

/// The PFN_WSK_SOCKET_CONNECT arguments shared by the synchronous and the
/// asynchronous connect.
struct ConnectCall {
    socket_type: USHORT,
    protocol: ULONG,
    local: *const SOCKADDR,
    remote: *const SOCKADDR,
    flags: ULONG,
    socket_context: PVOID,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    owning_process: PEPROCESS,
    owning_thread: PETHREAD,
    security_descriptor: PSECURITY_DESCRIPTOR,
}

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

impl ConnectCall {
    /// Validates the arguments (parameter 12 is present or not as
    /// `twelfth_ok` says), checks the IRQL against `max_irql`, and enters the
    /// client. Returns the entered client and the provider's WskSocketConnect.
    ///
    /// # Safety
    /// Pointers per the API contract of the connect functions.
    unsafe fn enter<'a>(
        &self,
        client: *mut SAFEWSK_CLIENT,
        twelfth_ok: bool,
        max_irql: KIRQL,
    ) -> Result<(Entered<'a>, SocketConnectFn), NTSTATUS> {
        // SAFETY: `client` is null or a pointer from SafeWskStartup.
        let client = unsafe { SAFEWSK_CLIENT::from_ptr(client) };
        let args = ConnectArgs {
            client_present: client.is_some(),
            // A security descriptor may be pageable: read it only where a
            // page fault is allowed.
            may_read_pageable: platform::current_irql() <= APC_LEVEL,
            socket_type: self.socket_type,
            protocol: self.protocol,
            local: self.local,
            remote: self.remote,
            flags: self.flags,
            socket_context: self.socket_context,
            dispatch: self.dispatch,
            security_descriptor: self.security_descriptor,
            socket_out_present: twelfth_ok,
        };
        // SAFETY: the pointers are null or readable per the API contract.
        unsafe { validate_connect(&args) }?;
        let client = client.ok_or(STATUS_INVALID_PARAMETER_1)?;
        require_irql(max_irql)?;
        let entered = client.enter()?;
        // SAFETY: the provider dispatch captured at startup stays valid until
        // the NPI is released at cleanup, which waits for us to leave.
        match unsafe { (*entered.provider().Dispatch).WskSocketConnect } {
            Some(f) => Ok((entered, f)),
            None => Err(STATUS_NOT_SUPPORTED),
        }
    }

    /// Hands `irp` to the provider's WskSocketConnect, with `local` and
    /// `remote` as the addresses (the caller's, or copies that live until
    /// the IRP completes).
    ///
    /// # Safety
    /// `f` and `npi` come from [`Self::enter`] on a client still entered; the
    /// IRP is fresh with a completion routine set; the addresses are valid
    /// until the IRP completes (WSK may read them until then).
    unsafe fn issue(
        &self,
        f: SocketConnectFn,
        npi: &WSK_PROVIDER_NPI,
        irp: *mut IRP,
        local: *const SOCKADDR,
        remote: *const SOCKADDR,
    ) -> NTSTATUS {
        // SAFETY: per the function's contract.
        unsafe {
            f(
                npi.Client,
                self.socket_type,
                self.protocol,
                local as *mut SOCKADDR,
                remote as *mut SOCKADDR,
                self.flags,
                self.socket_context,
                self.dispatch,
                self.owning_process,
                self.owning_thread,
                self.security_descriptor,
                irp,
            )
        }
    }
}

/// Starts a connect like SafeWskSocketConnect but returns at once: the
/// result arrives through `Request->Callback`, so it can be called from a
/// DPC or a work item and no thread waits per connection.
///
/// Parameters 1 to 11 are checked exactly as for SafeWskSocketConnect, each
/// with its STATUS_INVALID_PARAMETER_<n>. Parameter 12, `Request`, is caller
/// storage (see SAFEWSK_CONNECT_REQUEST: non-paged, valid until the callback
/// returns, one request at a time) with `Callback` set, `TimeoutMs` (or
/// SAFEWSK_NO_TIMEOUT) and `Reserved` 0; otherwise
/// STATUS_INVALID_PARAMETER_12. The library allocates nothing but the IRP.
///
/// If it returns STATUS_PENDING, `Callback(CallbackContext, Status, Socket)`
/// is called exactly once, at IRQL <= DISPATCH_LEVEL, on an arbitrary thread,
/// possibly before this function returns (when the provider completes
/// synchronously, or returns an error without completing the IRP — whose
/// status the callback then reports) and possibly inside
/// SafeWskCancelConnect. `Status`/`Socket` are what SafeWskSocketConnect would
/// return: STATUS_SUCCESS and the socket (the callee owns it and closes it
/// with SafeWskCloseSocket), STATUS_IO_TIMEOUT at the deadline,
/// STATUS_CANCELLED after SafeWskCancelConnect, or the provider's status.
/// SafeWskCleanup waits until every callback has returned.
///
/// If it returns anything else, the callback is never called.
///
/// The addresses are copied: they need to be valid only during this call.
/// `SecurityDescriptor`, `SocketContext` and `Dispatch` are passed through
/// and must stay valid until the callback (the security descriptor, WSK says,
/// until the IRP completes; context and dispatch until the socket is closed).
///
/// IRQL: <= DISPATCH_LEVEL.
///
/// Returns STATUS_PENDING; STATUS_INVALID_PARAMETER_1 .. _12;
/// STATUS_INVALID_LEVEL (above DISPATCH_LEVEL); STATUS_DELETE_PENDING
/// (cleanup has begun); STATUS_INSUFFICIENT_RESOURCES (no IRP).
///
/// # Safety
/// As SafeWskSocketConnect for parameters 1 to 11; `Request` is NULL or
/// valid storage as described, not in use by another request.
#[no_mangle]
pub unsafe extern "C" fn SafeWskSocketConnectAsync(
    Client: *mut SAFEWSK_CLIENT,
    SocketType: USHORT,
    Protocol: ULONG,
    LocalAddress: *const SOCKADDR,
    RemoteAddress: *const SOCKADDR,
    Flags: ULONG,
    SocketContext: PVOID,
    Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    OwningProcess: PEPROCESS,
    OwningThread: PETHREAD,
    SecurityDescriptor: PSECURITY_DESCRIPTOR,
    Request: *mut SAFEWSK_CONNECT_REQUEST,
) -> NTSTATUS {
    // SAFETY: `Request` is null or readable per the API contract.
    let request_ok = match unsafe { Request.as_ref() } {
        Some(r) => r.Callback.is_some() && r.Reserved == 0,
        None => false,
    };
    let call = ConnectCall {
        socket_type: SocketType,
        protocol: Protocol,
        local: LocalAddress,
        remote: RemoteAddress,
        flags: Flags,
        socket_context: SocketContext,
        dispatch: Dispatch,
        owning_process: OwningProcess,
        owning_thread: OwningThread,
        security_descriptor: SecurityDescriptor,
    };
    // SAFETY: pointers per the API contract.
    let (entered, socket_connect) = match unsafe { call.enter(Client, request_ok, DISPATCH_LEVEL) } {
        Ok(v) => v,
        Err(status) => return status,
    };
    let client = entered.client();
    let npi = entered.provider();
    let issue = |irp, local, remote| {
        // SAFETY: `start` passes the request's own copies of the addresses,
        // valid until the callback.
        unsafe { call.issue(socket_connect, npi, irp, local, remote) }
    };
    // SAFETY: IRQL <= DISPATCH_LEVEL; the request storage is valid per the
    // contract; the addresses were validated (and are copied into the
    // request, so the caller's may go away when this returns); the client
    // stays entered for the request (kept below).
    match unsafe { connect_async::start(client, Request, call.local, call.remote, issue) } {
        Ok(()) => {
            // The request leaves the client's rundown after its callback.
            entered.keep();
            STATUS_PENDING
        }
        Err(status) => status,
    }
}

/// Cancels an asynchronous connect started with SafeWskSocketConnectAsync.
/// Its callback still comes, exactly once, with STATUS_CANCELLED (or with
/// the result if the connect completed first).
///
/// The callback may run *inside* this call, on the caller's thread and at
/// the caller's IRQL: a WSK cancel routine may complete the IRP within
/// IoCancelIrp ("Implementing a Cancel Routine"), and then the request
/// finishes before this returns. Do not call it while holding a lock that the
/// callback takes (that would deadlock), and do not touch the request after
/// the callback may have returned unless its storage is still intact.
///
/// Call it only while the request's storage is intact: before the callback
/// returns, or after it if the storage has not been reused or freed.
///
/// IRQL: <= DISPATCH_LEVEL.
///
/// Returns STATUS_SUCCESS (cancellation requested); STATUS_NOT_FOUND (the
/// connect has already completed: the callback is on its way or done);
/// STATUS_INVALID_PARAMETER_1 (`Request` is NULL).
///
/// # Safety
/// `Request` is NULL or storage passed to SafeWskSocketConnectAsync that
/// returned STATUS_PENDING, intact as described.
#[no_mangle]
pub unsafe extern "C" fn SafeWskCancelConnect(Request: *mut SAFEWSK_CONNECT_REQUEST) -> NTSTATUS {
    if Request.is_null() {
        return STATUS_INVALID_PARAMETER_1;
    }
    if let Err(status) = require_irql(DISPATCH_LEVEL) {
        return status;
    }
    // SAFETY: a started request with intact storage, per the contract.
    if unsafe { connect_async::cancel(Request) } {
        STATUS_SUCCESS
    } else {
        STATUS_NOT_FOUND
    }
}

/// Checks the client and socket arguments of the socket calls (parameters 1
/// and 2) and enters the client. The socket must be one this client opened
/// and has not closed (nor is closing); with `close`, it is marked as being
/// closed. The socket is not dereferenced here.
///
/// The lookup takes the client's spin lock, so it is made only at IRQL <=
/// DISPATCH_LEVEL; above that the IRQL check that follows the parameter
/// checks refuses the call anyway.
///
/// # Safety
/// `client` is null or from SafeWskStartup.
unsafe fn enter_socket_call<'a>(
    client: *mut SAFEWSK_CLIENT,
    socket: *mut WSK_SOCKET,
    close: bool,
) -> Result<Entered<'a>, NTSTATUS> {
    // SAFETY: forwarded caller guarantee.
    let client = unsafe { SAFEWSK_CLIENT::from_ptr(client) }.ok_or(STATUS_INVALID_PARAMETER_1)?;
    if socket.is_null() {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    let entered = client.enter_socket_call()?;
    if platform::current_irql() <= DISPATCH_LEVEL {
        let sockets = client.sockets();
        // SAFETY: IRQL <= DISPATCH_LEVEL checked just above.
        let known = unsafe {
            if close {
                sockets.begin_close(socket)
            } else {
                sockets.lookup(socket) == Lookup::Open
            }
        };
        if !known {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
    }
    Ok(entered)
}

/// The provider's connection dispatch table of a socket.
///
/// # Safety
/// `socket` is an open socket of the client (checked by
/// [`enter_socket_call`] at a legal IRQL): its Dispatch is the provider's
/// connection table, valid until the close.
unsafe fn socket_dispatch<'a>(socket: *mut WSK_SOCKET) -> Result<&'a WSK_PROVIDER_CONNECTION_DISPATCH, NTSTATUS> {
    // SAFETY: per the function's contract.
    unsafe { (*socket).Dispatch.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>().as_ref() }.ok_or(STATUS_INVALID_PARAMETER_2)
}

/// Shared body of send and receive: describe the caller's buffer with an MDL
/// (probed and locked for `operation`, or built for non-paged pool when
/// `flags` has SAFEWSK_FLAG_NONPAGED_BUFFER) and run one WSK data call on it
/// with the remaining flags.
///
/// # Safety
/// `buffer..buffer+length` is readable (send) or writable (receive) for the
/// duration of the call, and non-paged pool if the flag is set; IRQL <=
/// APC_LEVEL; `socket` is an open socket of the entered client.
#[allow(clippy::too_many_arguments)] // one data-call path for both directions
unsafe fn data_call(
    entered: &Entered<'_>,
    what: &'static [u8],
    socket: *mut WSK_SOCKET,
    call: PFN_WSK_SEND,
    buffer: *mut c_void,
    length: ULONG,
    operation: LockOperation,
    flags: ULONG,
    timeout_ms: ULONG,
    bytes: *mut ULONG,
) -> NTSTATUS {
    let call = match call {
        Some(f) => f,
        None => return STATUS_NOT_SUPPORTED,
    };
    let nonpaged = flags & SAFEWSK_FLAG_NONPAGED_BUFFER != 0;
    let flags = flags & !SAFEWSK_FLAG_NONPAGED_BUFFER;
    // SAFETY: buffer validity and kind, and the IRQL, per the caller.
    let buf = match unsafe { BufferMdl::new(buffer, length, operation, nonpaged) } {
        Ok(b) => b,
        Err(status) => return status,
    };
    let mut wsk_buf = WSK_BUF { Mdl: buf.mdl(), Offset: 0, Length: length as SIZE_T };
    let wsk_buf_ptr = ptr::addr_of_mut!(wsk_buf);
    let device = entered.client().device();
    // SAFETY: the WSK_BUF and MDL outlive the IRP (call_and_wait returns only
    // after completion); IRQL per the caller.
    let done = unsafe {
        call_and_wait(
            device,
            what,
            Some(timeout_ms),
            |irp| call(socket, wsk_buf_ptr, flags, irp),
            |irp| irp::cancel(irp),
        )
    };
    // The IRP that used the MDL has completed and been freed: unlock, free.
    drop(buf);
    match done {
        Ok(d) => {
            if !bytes.is_null() {
                // SAFETY: non-null out pointer per the API contract. The
                // provider never reports more than `length` (a ULONG).
                unsafe { *bytes = ULONG::try_from(d.information).unwrap_or(length) };
            }
            d.status
        }
        Err(status) => status,
    }
}

/// Sends `Length` bytes from `Buffer` on a connected socket (WskSend) and
/// waits until WSK has sent them all or `TimeoutMs` passes.
///
/// `Buffer` may be any kernel-mode memory the caller can read: non-paged
/// pool, paged pool or the caller's stack, valid for the call. The library
/// probes and locks it (IoAllocateMdl + MmProbeAndLockPages(KernelMode,
/// IoReadAccess), which pages paged memory in) and unlocks and frees the MDL
/// after WSK has completed, on every path. For a buffer in non-paged pool,
/// add SAFEWSK_FLAG_NONPAGED_BUFFER to `Flags` to skip the probe and lock
/// (MmBuildMdlForNonPagedPool); never for the stack or paged pool.
///
/// `Flags`: 0 or WSK_FLAG_NODELAY, optionally with
/// SAFEWSK_FLAG_NONPAGED_BUFFER (removed before WSK sees the flags).
/// `BytesSent` (optional) receives the count sent, also on timeout.
///
/// Works during SafeWskCleanup (on a socket still open).
///
/// IRQL: <= APC_LEVEL (the buffer may be pageable).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client),
/// _2 (`Socket` NULL, or not an open socket of this client: never opened,
/// closed, being closed, or another client's), _3 (`Buffer` NULL), _4
/// (`Length` 0), _5 (`Flags`); STATUS_INVALID_LEVEL;
/// STATUS_INSUFFICIENT_RESOURCES (IRP, completion context or MDL);
/// STATUS_ACCESS_VIOLATION (the buffer is not readable: MmProbeAndLockPages
/// raised it) or another exception code MmProbeAndLockPages raised (e.g.
/// STATUS_INSUFFICIENT_RESOURCES, STATUS_WORKING_SET_QUOTA: the pages could
/// not be locked) — nothing was sent; STATUS_IO_TIMEOUT (the socket's state
/// is then undefined: close it); or the provider's status (e.g.
/// STATUS_CONNECTION_RESET).
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer
/// with no other call in progress on it; `Buffer` is NULL or `Length` bytes
/// of kernel-mode memory that stay allocated for the call (non-paged pool if
/// SAFEWSK_FLAG_NONPAGED_BUFFER is set); `BytesSent` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn SafeWskSend(
    Client: *mut SAFEWSK_CLIENT,
    Socket: *mut WSK_SOCKET,
    Buffer: *const c_void,
    Length: ULONG,
    Flags: ULONG,
    TimeoutMs: ULONG,
    BytesSent: *mut ULONG,
) -> NTSTATUS {
    if !BytesSent.is_null() {
        // SAFETY: non-null out pointer per the API contract.
        unsafe { *BytesSent = 0 };
    }
    // SAFETY: pointers per the API contract.
    let entered = match unsafe { enter_socket_call(Client, Socket, false) } {
        Ok(v) => v,
        Err(status) => return status,
    };
    if Buffer.is_null() {
        return STATUS_INVALID_PARAMETER_3;
    }
    if Length == 0 {
        return STATUS_INVALID_PARAMETER_4;
    }
    if Flags & !(WSK_FLAG_NODELAY | SAFEWSK_FLAG_NONPAGED_BUFFER) != 0 {
        return STATUS_INVALID_PARAMETER_5;
    }
    if let Err(status) = require_irql(APC_LEVEL) {
        return status;
    }
    // SAFETY: an open socket of this client (checked at this legal IRQL).
    let dispatch = match unsafe { socket_dispatch(Socket) } {
        Ok(d) => d,
        Err(status) => return status,
    };
    // SAFETY: buffer contract per the API; IRQL checked.
    unsafe {
        data_call(
            &entered,
            b"WskSend\0",
            Socket,
            dispatch.WskSend,
            Buffer as *mut c_void,
            Length,
            LockOperation::Read,
            Flags,
            TimeoutMs,
            BytesSent,
        )
    }
}

/// Receives up to `Length` bytes into `Buffer` (WskReceive) and waits until
/// data arrives, the peer closes, or `TimeoutMs` passes.
///
/// `Buffer` may be any kernel-mode memory the caller can write: non-paged
/// pool, paged pool or the caller's stack, valid for the call. The library
/// probes and locks it (MmProbeAndLockPages(KernelMode, IoWriteAccess)) and
/// unlocks and frees the MDL after WSK has completed, on every path; with
/// SAFEWSK_FLAG_NONPAGED_BUFFER in `Flags` a non-paged pool buffer is
/// described with MmBuildMdlForNonPagedPool instead (never use the flag for
/// the stack or paged pool).
///
/// `Flags`: 0, or WSK_FLAG_WAITALL to wait until `Length` bytes arrived or
/// the peer closed; optionally with SAFEWSK_FLAG_NONPAGED_BUFFER (removed
/// before WSK sees the flags). `*BytesReceived` receives the count; 0 with
/// STATUS_SUCCESS means the peer closed its side gracefully.
///
/// Works during SafeWskCleanup (on a socket still open).
///
/// IRQL: <= APC_LEVEL (the buffer may be pageable).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client),
/// _2 (`Socket` NULL or not an open socket of this client), _3 (`Buffer`
/// NULL), _4 (`Length` 0), _5 (`Flags`), _7 (`BytesReceived` NULL);
/// STATUS_INVALID_LEVEL; STATUS_INSUFFICIENT_RESOURCES (IRP, completion
/// context or MDL); STATUS_ACCESS_VIOLATION (the buffer is not writable:
/// MmProbeAndLockPages raised it) or another exception code
/// MmProbeAndLockPages raised — nothing was received; STATUS_IO_TIMEOUT; or
/// the provider's status.
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer
/// with no other call in progress on it; `Buffer` is NULL or `Length` bytes
/// of kernel-mode memory that stay allocated for the call (non-paged pool if
/// SAFEWSK_FLAG_NONPAGED_BUFFER is set); `BytesReceived` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn SafeWskReceive(
    Client: *mut SAFEWSK_CLIENT,
    Socket: *mut WSK_SOCKET,
    Buffer: *mut c_void,
    Length: ULONG,
    Flags: ULONG,
    TimeoutMs: ULONG,
    BytesReceived: *mut ULONG,
) -> NTSTATUS {
    if !BytesReceived.is_null() {
        // SAFETY: non-null out pointer per the API contract.
        unsafe { *BytesReceived = 0 };
    }
    // SAFETY: pointers per the API contract.
    let entered = match unsafe { enter_socket_call(Client, Socket, false) } {
        Ok(v) => v,
        Err(status) => return status,
    };
    if Buffer.is_null() {
        return STATUS_INVALID_PARAMETER_3;
    }
    if Length == 0 {
        return STATUS_INVALID_PARAMETER_4;
    }
    if Flags & !(WSK_FLAG_WAITALL | SAFEWSK_FLAG_NONPAGED_BUFFER) != 0 {
        return STATUS_INVALID_PARAMETER_5;
    }
    if BytesReceived.is_null() {
        return STATUS_INVALID_PARAMETER_7;
    }
    if let Err(status) = require_irql(APC_LEVEL) {
        return status;
    }
    // SAFETY: an open socket of this client (checked at this legal IRQL).
    let dispatch = match unsafe { socket_dispatch(Socket) } {
        Ok(d) => d,
        Err(status) => return status,
    };
    // SAFETY: buffer contract per the API; IRQL checked.
    unsafe {
        data_call(
            &entered,
            b"WskReceive\0",
            Socket,
            dispatch.WskReceive,
            Buffer,
            Length,
            LockOperation::Write,
            Flags,
            TimeoutMs,
            BytesReceived,
        )
    }
}

/// Disconnects a connected socket (WskDisconnect): gracefully with `Flags` 0
/// (sends FIN after pending data), abortively with WSK_FLAG_ABORTIVE. The
/// socket must still be closed with SafeWskCloseSocket.
///
/// A graceful disconnect "might not complete" (PFN_WSK_DISCONNECT: the peer
/// may never acknowledge), and cancelling it is not the documented way out:
/// at the deadline safewsk resets the connection with an abortive
/// WskDisconnect instead (which ends the graceful one) and returns
/// STATUS_IO_TIMEOUT. Works during SafeWskCleanup (on a socket still open).
///
/// IRQL: <= APC_LEVEL.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client), _2 (`Socket`
/// NULL or not an open socket of this client), _3 (`Flags`);
/// STATUS_INVALID_LEVEL; STATUS_INSUFFICIENT_RESOURCES; STATUS_IO_TIMEOUT
/// (the connection was reset); or the provider's status.
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer
/// with no other call in progress on it.
#[no_mangle]
pub unsafe extern "C" fn SafeWskDisconnect(
    Client: *mut SAFEWSK_CLIENT,
    Socket: *mut WSK_SOCKET,
    Flags: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    // SAFETY: pointers per the API contract.
    let entered = match unsafe { enter_socket_call(Client, Socket, false) } {
        Ok(v) => v,
        Err(status) => return status,
    };
    if Flags & !WSK_FLAG_ABORTIVE != 0 {
        return STATUS_INVALID_PARAMETER_3;
    }
    if let Err(status) = require_irql(APC_LEVEL) {
        return status;
    }
    // SAFETY: an open socket of this client (checked at this legal IRQL).
    let dispatch = match unsafe { socket_dispatch(Socket) } {
        Ok(d) => d,
        Err(status) => return status,
    };
    let disconnect = match dispatch.WskDisconnect {
        Some(f) => f,
        None => return STATUS_NOT_SUPPORTED,
    };
    let device = entered.client().device();
    let at_deadline = |irp: *mut IRP| {
        if Flags & WSK_FLAG_ABORTIVE == 0 {
            // SAFETY: IRQL <= APC_LEVEL; a second IRP for the abortive
            // disconnect, waited for like any call; the graceful IRP stays
            // live (call_and_wait frees it only after its completion).
            let _ = unsafe {
                call_and_wait(
                    device,
                    b"WskDisconnect (abortive, after the graceful one's deadline)\0",
                    Some(TimeoutMs),
                    |irp2| disconnect(Socket, ptr::null_mut(), WSK_FLAG_ABORTIVE, irp2),
                    |irp2| irp::cancel(irp2),
                )
            };
        }
        // SAFETY: the IRP is live until its completion has been waited for.
        unsafe { irp::cancel(irp) };
    };
    let what: &'static [u8] =
        if Flags & WSK_FLAG_ABORTIVE == 0 { b"WskDisconnect (graceful)\0" } else { b"WskDisconnect (abortive)\0" };
    // SAFETY: IRQL checked; the IRP goes to exactly one WSK call.
    match unsafe {
        call_and_wait(device, what, Some(TimeoutMs), |irp| disconnect(Socket, ptr::null_mut(), Flags, irp), at_deadline)
    } {
        Ok(d) if d.timed_out => STATUS_IO_TIMEOUT,
        Ok(d) => d.status,
        Err(status) => status,
    }
}

/// Closes a socket from SafeWskSocketConnect (WskCloseSocket) and waits for
/// the close to complete. WSK cancels the socket's pending requests and, on a
/// connection that is not fully disconnected, performs an abortive disconnect;
/// call SafeWskDisconnect first for a graceful one. It works while
/// SafeWskCleanup waits: closing its sockets is how a driver lets cleanup
/// succeed.
///
/// Once the close was issued — any status but the argument and IRQL errors
/// and STATUS_INSUFFICIENT_RESOURCES below — `Socket` is gone: never use it
/// again (safewsk answers any later call on it with
/// STATUS_INVALID_PARAMETER_2). A close that the provider refuses without
/// completing its IRP (a breach of the I/O model, reported with DbgPrint)
/// leaves the socket open: its status is returned and the close may be
/// retried.
///
/// IRQL: <= APC_LEVEL.
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `Client` is NULL or not a live client;
/// - STATUS_INVALID_PARAMETER_2: `Socket` is NULL, or not an open socket of
///   this client (never opened, already closed, being closed, or another
///   client's); the provider is not called;
/// - STATUS_INVALID_LEVEL;
/// - STATUS_INSUFFICIENT_RESOURCES: no IRP or completion context; the socket
///   is still open, retry;
/// - the provider's status for the close.
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer
/// with no other call in progress on it.
#[no_mangle]
pub unsafe extern "C" fn SafeWskCloseSocket(Client: *mut SAFEWSK_CLIENT, Socket: *mut WSK_SOCKET) -> NTSTATUS {
    // SAFETY: pointers per the API contract.
    let entered = match unsafe { enter_socket_call(Client, Socket, true) } {
        Ok(v) => v,
        Err(status) => return status,
    };
    let sockets = entered.client().sockets();
    let result = close_marked(&entered, Socket);
    // SAFETY: IRQL <= DISPATCH_LEVEL (the socket was marked at a legal IRQL,
    // and close_marked fails before any wait above APC_LEVEL).
    unsafe {
        match result {
            Closed::Gone(_) => sockets.finish_close(Socket),
            Closed::StillOpen(_) => sockets.abort_close(Socket),
        }
    }
    match result {
        Closed::Gone(status) | Closed::StillOpen(status) => status,
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

/// The close of a socket that [`enter_socket_call`] marked as closing.
fn close_marked(entered: &Entered<'_>, socket: *mut WSK_SOCKET) -> Closed {
    if let Err(status) = require_irql(APC_LEVEL) {
        return Closed::StillOpen(status);
    }
    // SAFETY: an open socket of this client, marked as closing.
    let close = match unsafe { socket_dispatch(socket) }.map(|d| d.Basic.WskCloseSocket) {
        Ok(Some(close)) => close,
        Ok(None) | Err(_) => return Closed::StillOpen(STATUS_NOT_SUPPORTED),
    };
    // SAFETY: IRQL checked; the IRP goes to exactly one WSK call.
    let done = unsafe {
        call_and_wait(
            entered.client().device(),
            b"WskCloseSocket\0",
            None,
            |irp| close(socket, irp),
            |irp| irp::cancel(irp),
        )
    };
    match done {
        Ok(d) if !d.consumed => Closed::StillOpen(d.status),
        Ok(d) => Closed::Gone(d.status),
        // No IRP: the close was never issued, the socket is still open.
        Err(status) => Closed::StillOpen(status),
    }
}
