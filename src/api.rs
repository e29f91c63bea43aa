//! The exported C API. cbindgen turns these doc comments into
//! include/safewsk.h; keep them the reference a C driver author reads.
#![allow(non_snake_case)]

use core::ffi::c_void;
use core::ptr;

use crate::by_name;
use crate::client::{self, SAFEWSK_CLIENT};
use crate::connect;
pub use crate::connect_async::{SAFEWSK_CONNECT_CALLBACK, SAFEWSK_CONNECT_REQUEST, SAFEWSK_NO_TIMEOUT};
use crate::nt::*;
use crate::security_descriptor;
use crate::socket::{self, Direction, End};
use crate::status::from_result;
use crate::validate::ConnectArgs;

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
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
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
    // SAFETY: the API contract.
    from_result(unsafe { client::startup(DeviceObject, ProviderWaitMs, Client) })
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
/// running, frees the records (and IRPs) of closed sockets that the client
/// kept for its next connects (at most 16), releases every cached security
/// descriptor the driver did not release with
/// SafeWskReleaseSecurityDescriptor (WSK_RELEASE_SD, reported with DbgPrint
/// for each), releases the provider and deregisters. After STATUS_SUCCESS the
/// handle is invalid, and no safewsk code runs any more on behalf of this
/// client: the driver may then delete the device object and unload.
///
/// One cleanup at a time: a second call made while the first is still
/// waiting returns STATUS_DELETE_PENDING at once and changes nothing (a call
/// racing the first one's successful end uses a handle that is going away:
/// don't). Never call it from a SafeWskSocketConnectAsync callback (see
/// there).
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
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCleanup(Client: *mut SAFEWSK_CLIENT) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { client::cleanup(Client) })
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
///
///    Parameters 2, 3 and 4 are also checked against the provider's own
///    transport list (WskControlClient, WSK_TRANSPORT_LIST_QUERY, queried
///    once by SafeWskStartup): no listed transport of that SocketType is _2,
///    none of that type and Protocol _3 (an entry with Protocol 0, the
///    type's default, matches any), none of those over the family of
///    `LocalAddress` _4 (e.g. a stack without IPv6). When the provider gives
///    no list (Wine 8's WskControlClient is a stub; startup reports it once
///    with DbgPrint) only the fixed rules above apply.
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
/// 11. `SecurityDescriptor`: NULL, or a cached copy that this client got
///     from SafeWskCacheSecurityDescriptor and has not released (WSK accepts
///     only copies cached with WSK_CACHE_SD). It is looked up in the
///     client's table, never read. From the check until the IRP has
///     completed (until this call returns) it is pinned: a
///     SafeWskReleaseSecurityDescriptor of it meanwhile returns
///     STATUS_DEVICE_BUSY.
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
/// call. Allocations: the socket's record (one small non-paged pool block,
/// tag 'kwSS', among the client's open sockets) and its IRP, which the
/// connect uses and the socket's later calls reuse, both kept until the
/// socket is closed and then (up to 16 per client) for the next connect,
/// which allocates neither, until SafeWskCleanup; and the I/O manager's
/// IoSetCompletionRoutineEx context.
/// Each is made before the provider is called, so a connected socket is
/// never lost to a failed allocation.
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
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
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
    let args = ConnectArgs {
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
    // SAFETY: the API contract.
    from_result(unsafe { connect::connect_and_wait(Client, args, Socket, TimeoutMs) })
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
/// STATUS_INVALID_PARAMETER_12. Allocations: the socket's record (one small
/// 'kwSS' non-paged pool block) and its IRP, which the socket's later calls
/// reuse, both kept until the socket is closed (then cached for the next
/// connect, as for SafeWskSocketConnect), and the I/O manager's
/// IoSetCompletionRoutineEx context; all are made before the provider is
/// called.
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
/// `SocketContext` and `Dispatch` are passed through and must stay valid
/// until the socket is closed. `SecurityDescriptor` (a cached copy, as for
/// SafeWskSocketConnect; looked up, never read, so a DISPATCH_LEVEL caller
/// is fine) is pinned until the IRP has completed, which is before the
/// callback: SafeWskReleaseSecurityDescriptor returns STATUS_DEVICE_BUSY
/// until then, and may be called from the callback on. Above
/// DISPATCH_LEVEL the client's table is not consulted (its spin lock cannot
/// be taken there): the call fails with STATUS_INVALID_LEVEL instead.
///
/// IRQL: <= DISPATCH_LEVEL.
///
/// Returns STATUS_PENDING; STATUS_INVALID_PARAMETER_1 .. _12;
/// STATUS_INVALID_LEVEL (above DISPATCH_LEVEL); STATUS_DELETE_PENDING
/// (cleanup has begun); STATUS_INSUFFICIENT_RESOURCES (one of the
/// allocations above failed).
///
/// Never call SafeWskCleanup from the callback: the callback may run inside
/// this call or inside SafeWskCancelConnect (at PASSIVE_LEVEL then), and
/// cleanup waits for the request, which finishes only when the callback has
/// returned: it would wait for itself.
///
/// # Safety
/// As SafeWskSocketConnect for parameters 1 to 11; `Request` is NULL or
/// valid storage as described, not in use by another request.
/// cbindgen:prefix=_IRQL_requires_max_(DISPATCH_LEVEL)
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
    let args = ConnectArgs {
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
    // SAFETY: the API contract.
    from_result(unsafe { connect::connect_async(Client, args, Request) })
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
/// cbindgen:prefix=_IRQL_requires_max_(DISPATCH_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCancelConnect(Request: *mut SAFEWSK_CONNECT_REQUEST) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { connect::cancel(Request) })
}

/// Sends `Length` bytes from `Buffer` on a connected socket (WskSend) and
/// waits until WSK has sent them all or `TimeoutMs` passes.
///
/// `Buffer` may be any kernel-mode memory the caller can read: non-paged
/// pool, paged pool or the caller's stack, valid for the call. The library
/// describes it with an MDL (on its own stack, initialized as MmInitializeMdl
/// does, for a buffer spanning at most 17 pages — any buffer of up to
/// 64 KiB —, else from IoAllocateMdl), probes and locks it
/// (MmProbeAndLockPages(KernelMode, IoReadAccess), which pages paged memory
/// in) and unlocks it (and frees an allocated MDL) after WSK has completed,
/// on every path. For a buffer in non-paged pool,
/// add SAFEWSK_FLAG_NONPAGED_BUFFER to `Flags` to skip the probe and lock
/// (MmBuildMdlForNonPagedPool); never for the stack or paged pool.
///
/// `Flags`: 0 or WSK_FLAG_NODELAY, optionally with
/// SAFEWSK_FLAG_NONPAGED_BUFFER (removed before WSK sees the flags).
/// `BytesSent` (optional) receives the count sent, also on timeout.
///
/// Works during SafeWskCleanup (on a socket still open).
///
/// IRQL: <= APC_LEVEL (the buffer may be pageable). Above DISPATCH_LEVEL only
/// parameters 1 and 2 are checked (for NULL) before STATUS_INVALID_LEVEL:
/// whether the socket is open is looked up under the client's spin lock.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client),
/// _2 (`Socket` NULL, or not an open socket of this client: never opened,
/// closed, being closed, or another client's), _3 (`Buffer` NULL), _4
/// (`Length` 0), _5 (`Flags`); STATUS_INVALID_LEVEL; STATUS_DELETE_PENDING
/// (the client is being freed: a call racing the end of SafeWskCleanup);
/// STATUS_INSUFFICIENT_RESOURCES (completion context; an MDL only for
/// more than 64 KiB, an IRP only for overlapping calls: see
/// SafeWskCloseSocket);
/// STATUS_ACCESS_VIOLATION (the buffer is not readable: MmProbeAndLockPages
/// raised it) or another exception code MmProbeAndLockPages raised (e.g.
/// STATUS_INSUFFICIENT_RESOURCES, STATUS_WORKING_SET_QUOTA: the pages could
/// not be locked) — nothing was sent; STATUS_IO_TIMEOUT (the socket's state
/// is then undefined: close it); STATUS_NOT_SUPPORTED (the provider's
/// dispatch table has no WskSend); or the provider's status (e.g.
/// STATUS_CONNECTION_RESET).
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer
/// (other calls on it may be in progress); `Buffer` is NULL or `Length` bytes
/// of kernel-mode memory that stay allocated for the call (non-paged pool if
/// SAFEWSK_FLAG_NONPAGED_BUFFER is set); `BytesSent` is NULL or writable.
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
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
    // SAFETY: the API contract (the buffer is only read).
    from_result(unsafe {
        socket::transfer(Direction::Send, Client, Socket, Buffer.cast_mut(), Length, Flags, TimeoutMs, BytesSent)
    })
}

/// Receives up to `Length` bytes into `Buffer` (WskReceive) and waits until
/// data arrives, the peer closes, or `TimeoutMs` passes.
///
/// `Buffer` may be any kernel-mode memory the caller can write: non-paged
/// pool, paged pool or the caller's stack, valid for the call. The library
/// describes it with an MDL (on its own stack up to 64 KiB, as for
/// SafeWskSend), probes and locks it (MmProbeAndLockPages(KernelMode,
/// IoWriteAccess)) and unlocks it after WSK has completed, on every path; with
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
/// IRQL: <= APC_LEVEL (the buffer may be pageable). Above DISPATCH_LEVEL only
/// parameters 1 and 2 are checked (for NULL) before STATUS_INVALID_LEVEL:
/// whether the socket is open is looked up under the client's spin lock.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client),
/// _2 (`Socket` NULL or not an open socket of this client), _3 (`Buffer`
/// NULL), _4 (`Length` 0), _5 (`Flags`), _7 (`BytesReceived` NULL);
/// STATUS_INVALID_LEVEL; STATUS_DELETE_PENDING (the client is being freed);
/// STATUS_INSUFFICIENT_RESOURCES (completion context; an MDL only for
/// more than 64 KiB, an IRP only for overlapping calls: see
/// SafeWskCloseSocket); STATUS_ACCESS_VIOLATION (the buffer is not writable:
/// MmProbeAndLockPages raised it) or another exception code
/// MmProbeAndLockPages raised — nothing was received; STATUS_IO_TIMEOUT;
/// STATUS_NOT_SUPPORTED (the provider's dispatch table has no WskReceive);
/// or the provider's status.
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer
/// (other calls on it may be in progress); `Buffer` is NULL or `Length` bytes
/// of kernel-mode memory that stay allocated for the call (non-paged pool if
/// SAFEWSK_FLAG_NONPAGED_BUFFER is set); `BytesReceived` is NULL or writable.
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
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
    // SAFETY: the API contract.
    from_result(unsafe {
        socket::transfer(Direction::Receive, Client, Socket, Buffer, Length, Flags, TimeoutMs, BytesReceived)
    })
}

/// Retrieves the local transport address of a socket from
/// SafeWskSocketConnect (WskGetLocalAddress): the address and port the
/// connection was made from, for logging.
///
/// `Address` receives a SOCKADDR_IN (16 bytes, IPv4) or a SOCKADDR_IN6 (28
/// bytes, IPv6); `AddressLength` is the size of the buffer behind it, at
/// least sizeof(SOCKADDR_IN). Pass a SOCKADDR_INET or SOCKADDR_STORAGE to fit
/// either. It may be any kernel-mode memory the caller can write, paged or
/// on the stack: WSK writes into a non-paged buffer of safewsk's and the
/// address is copied to `Address` after the IRP has completed. `Address` is
/// written only on STATUS_SUCCESS.
///
/// `TimeoutMs` bounds the wait (WSK may pend the query); at the deadline the
/// IRP is cancelled and STATUS_IO_TIMEOUT returned; SAFEWSK_NO_TIMEOUT for
/// none.
///
/// Works during SafeWskCleanup (on a socket still open).
///
/// IRQL: <= APC_LEVEL (above DISPATCH_LEVEL only parameters 1 and 2 are
/// checked, for NULL, before STATUS_INVALID_LEVEL).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client), _2 (`Socket`
/// NULL or not an open socket of this client), _3 (`Address` NULL), _4
/// (`AddressLength` below sizeof(SOCKADDR_IN)); STATUS_BUFFER_TOO_SMALL (an
/// IPv6 address and `AddressLength` below sizeof(SOCKADDR_IN6); nothing
/// written); STATUS_INVALID_LEVEL; STATUS_DELETE_PENDING (the client is being
/// freed); STATUS_INSUFFICIENT_RESOURCES (completion context; an IRP only
/// for overlapping calls, see SafeWskCloseSocket);
/// STATUS_IO_TIMEOUT; STATUS_NOT_SUPPORTED (the provider's dispatch table
/// has no such function); STATUS_UNSUCCESSFUL (the provider returned an
/// address of another family, or claimed success without completing the
/// IRP); or the provider's status (e.g.
/// STATUS_FILE_FORCED_CLOSED; STATUS_NOT_IMPLEMENTED from Wine 8, whose
/// WskGetLocalAddress and WskGetRemoteAddress are stubs).
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer
/// (other calls on it may be in progress); `Address` is NULL or
/// `AddressLength` writable bytes that stay allocated for the call.
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskGetLocalAddress(
    Client: *mut SAFEWSK_CLIENT,
    Socket: *mut WSK_SOCKET,
    Address: *mut SOCKADDR,
    AddressLength: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { socket::address(End::Local, Client, Socket, Address, AddressLength, TimeoutMs) })
}

/// Retrieves the remote transport address of a socket from
/// SafeWskSocketConnect (WskGetRemoteAddress): the address and port it is
/// connected to.
///
/// `Address` receives a SOCKADDR_IN (16 bytes, IPv4) or a SOCKADDR_IN6 (28
/// bytes, IPv6); `AddressLength` is the size of the buffer behind it, at
/// least sizeof(SOCKADDR_IN). Pass a SOCKADDR_INET or SOCKADDR_STORAGE to fit
/// either. It may be any kernel-mode memory the caller can write, paged or
/// on the stack: WSK writes into a non-paged buffer of safewsk's and the
/// address is copied to `Address` after the IRP has completed. `Address` is
/// written only on STATUS_SUCCESS.
///
/// `TimeoutMs` bounds the wait (WSK may pend the query); at the deadline the
/// IRP is cancelled and STATUS_IO_TIMEOUT returned; SAFEWSK_NO_TIMEOUT for
/// none.
///
/// Works during SafeWskCleanup (on a socket still open).
///
/// IRQL: <= APC_LEVEL (above DISPATCH_LEVEL only parameters 1 and 2 are
/// checked, for NULL, before STATUS_INVALID_LEVEL).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client), _2 (`Socket`
/// NULL or not an open socket of this client), _3 (`Address` NULL), _4
/// (`AddressLength` below sizeof(SOCKADDR_IN)); STATUS_BUFFER_TOO_SMALL (an
/// IPv6 address and `AddressLength` below sizeof(SOCKADDR_IN6); nothing
/// written); STATUS_INVALID_LEVEL; STATUS_DELETE_PENDING (the client is being
/// freed); STATUS_INSUFFICIENT_RESOURCES (completion context; an IRP only
/// for overlapping calls, see SafeWskCloseSocket);
/// STATUS_IO_TIMEOUT; STATUS_NOT_SUPPORTED (the provider's dispatch table
/// has no such function); STATUS_UNSUCCESSFUL (the provider returned an
/// address of another family, or claimed success without completing the
/// IRP); or the provider's status (e.g.
/// STATUS_FILE_FORCED_CLOSED; STATUS_NOT_IMPLEMENTED from Wine 8, whose
/// WskGetLocalAddress and WskGetRemoteAddress are stubs).
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer
/// (other calls on it may be in progress); `Address` is NULL or
/// `AddressLength` writable bytes that stay allocated for the call.
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskGetRemoteAddress(
    Client: *mut SAFEWSK_CLIENT,
    Socket: *mut WSK_SOCKET,
    Address: *mut SOCKADDR,
    AddressLength: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { socket::address(End::Remote, Client, Socket, Address, AddressLength, TimeoutMs) })
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
/// IRQL: <= APC_LEVEL (above DISPATCH_LEVEL only parameters 1 and 2 are
/// checked, for NULL, before STATUS_INVALID_LEVEL).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client), _2 (`Socket`
/// NULL or not an open socket of this client), _3 (`Flags`);
/// STATUS_INVALID_LEVEL; STATUS_DELETE_PENDING (the client is being freed);
/// STATUS_INSUFFICIENT_RESOURCES; STATUS_IO_TIMEOUT (the connection was
/// reset); STATUS_NOT_SUPPORTED (the provider's dispatch table has no
/// WskDisconnect); or the provider's status.
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer.
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskDisconnect(
    Client: *mut SAFEWSK_CLIENT,
    Socket: *mut WSK_SOCKET,
    Flags: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { socket::disconnect(Client, Socket, Flags, TimeoutMs) })
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
/// Calls on one socket may overlap, and this close may be one of them: a
/// receive waiting on another thread is completed by WSK when the socket is
/// closed (with STATUS_CANCELLED, say), and returns. WSK forbids
/// WskCloseSocket while another call is still inside one of the socket's
/// functions ("Closing a Socket"), so the close first waits until the calls
/// that began before it have handed their requests to WSK (a call that is
/// still locking its buffer, say); calls that begin after it are refused
/// with STATUS_INVALID_PARAMETER_2, and a graceful disconnect reaching its
/// deadline meanwhile does not start its abortive WskDisconnect.
/// Allocations of the socket calls (send, receive, the address queries,
/// disconnect, close): none of safewsk's own while no other call is in
/// progress on the socket,
/// because each call reuses the IRP the socket's connect allocated
/// (IoReuseIrp, as "Using IRPs with Winsock Kernel Functions" allows). The
/// I/O manager allocates its IoSetCompletionRoutineEx context for each call
/// (what keeps the driver image loaded until the completion routine has
/// returned), and a send or receive of more than 64 KiB an MDL (IoAllocateMdl).
/// The second of two
/// overlapping calls on a socket allocates an IRP once, which the socket
/// keeps; a third overlapping call allocates and frees its own.
///
/// IRQL: <= APC_LEVEL (above DISPATCH_LEVEL only parameters 1 and 2 are
/// checked, for NULL, before STATUS_INVALID_LEVEL; the socket stays open).
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `Client` is NULL or not a live client;
/// - STATUS_INVALID_PARAMETER_2: `Socket` is NULL, or not an open socket of
///   this client (never opened, already closed, being closed, or another
///   client's); the provider is not called;
/// - STATUS_INVALID_LEVEL;
/// - STATUS_INSUFFICIENT_RESOURCES: no completion context (or, for an
///   overlapping close, no IRP); the socket is still open, retry;
/// - STATUS_DELETE_PENDING: the client is being freed (a call racing the end
///   of SafeWskCleanup);
/// - STATUS_NOT_SUPPORTED: the socket's dispatch table has no WskCloseSocket
///   (or no table); the provider is not called and the socket stays open;
/// - the provider's status for the close (STATUS_UNSUCCESSFUL if it claimed
///   success without completing the close's IRP: the socket is still open).
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer.
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCloseSocket(Client: *mut SAFEWSK_CLIENT, Socket: *mut WSK_SOCKET) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { socket::close(Client, Socket) })
}

/// Resolves `NodeName` and `ServiceName` with the provider's
/// WskGetAddressInfo, then connects a TCP socket to the resulting addresses,
/// one after the other in the resolver's order, and returns the first
/// connected socket and the address it reached.
///
/// What happens, in order:
/// 1. The names are copied, NUL-terminated, into buffers of safewsk's (the
///    provider never reads past a caller's unterminated string).
/// 2. WskGetAddressInfo (hints: AF_UNSPEC, SOCK_STREAM, IPPROTO_TCP;
///    NS_ALL) through one IRP, with the deadline below.
/// 3. The IPv4 and IPv6 addresses of the answer — at most
///    SAFEWSK_BY_NAME_MAX_ADDRESSES (8), in its order — are copied, and the
///    provider's list is freed with WskFreeAddressInfo at once, whatever the
///    outcome (success, failure, timeout, an answer without a usable
///    address). No pointer into the list is kept or returned.
/// 4. Each address is tried with WskSocketConnect (as SafeWskSocketConnect
///    does: its own IRP, and the socket's record reserved first), from the
///    wildcard local address of its family, until one connects. The
///    resolver's order, not Happy Eyeballs: Windows' resolver sorts by the
///    RFC 6724 rules already, and one attempt at a time needs no IRP, record
///    or socket per parallel attempt; the price is that an address that
///    drops SYNs can use up the whole deadline (see src/by_name.rs).
///
/// Parameters, each checked by position before anything else:
/// 1. `Client`: a live client from SafeWskStartup.
/// 2. `NodeName`: a host name or numeric address: Length non-zero and even,
///    Length <= MaximumLength, Buffer non-NULL, at most
///    SAFEWSK_BY_NAME_MAX_NODE_CHARS (255) characters, no NUL character
///    inside (a terminator need not be present, and must not be counted in
///    Length).
/// 3. `ServiceName`: a port number ("443") or service name, as `NodeName`,
///    at most SAFEWSK_BY_NAME_MAX_SERVICE_CHARS (32) characters.
/// 4. `SocketContext`, 5. `Dispatch`: as parameters 7 and 8 of
///    SafeWskSocketConnect (a context needs a table; a table needs a
///    callback; callbacks start disabled).
/// 6. `Socket`: receives the connected socket, or NULL on any failure. The
///    caller owns it and closes it with SafeWskCloseSocket.
/// 7. `RemoteAddress`: optional; on STATUS_SUCCESS receives the address
///    reached, a SOCKADDR_IN (16 bytes) or SOCKADDR_IN6 (28 bytes). Any
///    writable kernel memory; written only on success.
/// 8. `RemoteAddressLength`: the size of `RemoteAddress`: at least
///    sizeof(SOCKADDR_IN6) (28; pass a SOCKADDR_INET or SOCKADDR_STORAGE),
///    or 0 when `RemoteAddress` is NULL.
/// 9. `TimeoutMs`: ONE deadline for the resolution and all attempts
///    together; each step gets what is left. When it passes, the step in
///    progress is cancelled (and waited for, as in SafeWskSocketConnect), no
///    further address is tried, and STATUS_IO_TIMEOUT is returned.
///    SAFEWSK_NO_TIMEOUT: no deadline. 0 gives STATUS_IO_TIMEOUT unless the
///    provider completes synchronously.
///
/// Above APC_LEVEL the strings are not read (they may be pageable):
/// parameters 2 and 3 are then only checked for NULL, the others as above,
/// before STATUS_INVALID_LEVEL.
///
/// Allocations: one IRP and one IoSetCompletionRoutineEx context for the
/// resolution, and per attempt the same two plus the socket's record (one
/// small 'kwSS' non-paged pool block, kept until the socket is closed);
/// about 1 KiB of stack. The provider allocates the address list, which is
/// freed before this returns.
///
/// IRQL: PASSIVE_LEVEL (WskGetAddressInfo and WskFreeAddressInfo are
/// PASSIVE_LEVEL only: "PFN_WSK_GET_ADDRESS_INFO", Microsoft Learn).
///
/// Returns:
/// - STATUS_SUCCESS: `*Socket` is connected to `*RemoteAddress`;
/// - STATUS_INVALID_PARAMETER_1 .. _6, _8: as above;
/// - STATUS_INVALID_LEVEL: not called at PASSIVE_LEVEL;
/// - STATUS_DELETE_PENDING: SafeWskCleanup has begun on `Client`;
/// - STATUS_NOT_SUPPORTED: the provider's dispatch table lacks
///   WskGetAddressInfo, WskFreeAddressInfo or WskSocketConnect;
/// - STATUS_INSUFFICIENT_RESOURCES: an allocation above failed (no further
///   address is tried);
/// - STATUS_IO_TIMEOUT: the deadline passed (never STATUS_TIMEOUT, which is
///   a success code);
/// - the resolver's status when resolution fails: STATUS_NOT_FOUND for a
///   name that does not exist (Windows 8 and later; Windows 7 reports
///   STATUS_NO_MATCH — per Wine's WSK tests run on Windows), or another
///   provider status;
/// - STATUS_NOT_FOUND also when the answer holds no IPv4 or IPv6 address
///   that a connect accepts (port 0, unspecified, multicast, broadcast);
/// - otherwise, when every address failed, the status of the last attempt
///   (e.g. STATUS_CONNECTION_REFUSED, STATUS_HOST_UNREACHABLE).
///
/// # Safety
/// `Client` is NULL or a live handle; `NodeName` and `ServiceName` are NULL
/// or readable UNICODE_STRINGs whose Buffer holds Length readable bytes;
/// `Dispatch` is NULL or a readable WSK_CLIENT_CONNECTION_DISPATCH (kept
/// valid, with `SocketContext`, until the socket is closed); `Socket` is NULL
/// or writable; `RemoteAddress` is NULL or `RemoteAddressLength` writable
/// bytes. All valid for the call.
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskConnectByName(
    Client: *mut SAFEWSK_CLIENT,
    NodeName: *const UNICODE_STRING,
    ServiceName: *const UNICODE_STRING,
    SocketContext: PVOID,
    Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    Socket: *mut *mut WSK_SOCKET,
    RemoteAddress: *mut SOCKADDR,
    RemoteAddressLength: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    let args = by_name::ByNameArgs {
        node: NodeName,
        service: ServiceName,
        socket_context: SocketContext,
        dispatch: Dispatch,
        socket_out: Socket,
        remote_out: RemoteAddress,
        remote_out_len: RemoteAddressLength,
        timeout_ms: TimeoutMs,
    };
    // SAFETY: the API contract.
    from_result(unsafe { by_name::connect_by_name(Client, args) })
}

/// Obtains a cached copy of a security descriptor from the WSK provider
/// (WskControlClient, WSK_CACHE_SD), for the `SecurityDescriptor` parameter
/// of SafeWskSocketConnect and SafeWskSocketConnectAsync: WSK accepts only
/// such cached copies there ("PFN_WSK_SOCKET_CONNECT"), and safewsk checks
/// that the pointer a connect is given is one this client cached and has not
/// released.
///
/// `SecurityDescriptor` is the caller's SECURITY_DESCRIPTOR (any
/// kernel-mode memory, paged or not; only read during the call; the caller
/// keeps owning it). On success `*CachedSecurityDescriptor` receives the
/// provider's cached copy, which the caller owns until it passes it to
/// SafeWskReleaseSecurityDescriptor; on failure it is set to NULL. The
/// provider may return the same cached pointer for equal descriptors: each
/// successful call is one reference, and needs one release.
///
/// A client holds at most 16 cached copies at once (a fixed table in the
/// client block: no allocation by safewsk; the provider allocates the
/// copy). SafeWskCleanup releases any copy still held, and reports each
/// with DbgPrint (a driver should release its own).
///
/// IRQL: PASSIVE_LEVEL (the descriptor may be pageable, and the provider
/// captures it).
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `Client` is NULL or not a live client;
/// - STATUS_INVALID_PARAMETER_2: `SecurityDescriptor` is NULL or not 4-byte
///   aligned, or (read after the IRQL check, at PASSIVE_LEVEL) its Revision
///   is not SECURITY_DESCRIPTOR_REVISION (1);
/// - STATUS_INVALID_PARAMETER_3: `CachedSecurityDescriptor` is NULL;
/// - STATUS_INVALID_LEVEL: called above PASSIVE_LEVEL;
/// - STATUS_DELETE_PENDING: SafeWskCleanup has begun on `Client`;
/// - STATUS_QUOTA_EXCEEDED: the client already holds 16 cached copies;
/// - STATUS_NOT_SUPPORTED: the provider's dispatch table has no
///   WskControlClient;
/// - STATUS_UNSUCCESSFUL: the provider claimed success without returning a
///   copy;
/// - the provider's status otherwise (STATUS_NOT_IMPLEMENTED from Wine 8,
///   whose WskControlClient is a stub; STATUS_INSUFFICIENT_RESOURCES, ...).
///
/// # Safety
/// `Client` is NULL or a live handle; `SecurityDescriptor` is NULL or a
/// readable SECURITY_DESCRIPTOR; `CachedSecurityDescriptor` is NULL or
/// writable.
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCacheSecurityDescriptor(
    Client: *mut SAFEWSK_CLIENT,
    SecurityDescriptor: PSECURITY_DESCRIPTOR,
    CachedSecurityDescriptor: *mut PSECURITY_DESCRIPTOR,
) -> NTSTATUS {
    if !CachedSecurityDescriptor.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *CachedSecurityDescriptor = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe { security_descriptor::cache_export(Client, SecurityDescriptor, CachedSecurityDescriptor) })
}

/// Releases a cached security descriptor obtained with
/// SafeWskCacheSecurityDescriptor (WskControlClient, WSK_RELEASE_SD).
///
/// WSK requires that a cached copy passed to WskSocketConnect is not
/// released "until after the IRP for the call to WskSocketConnect is
/// completed": safewsk enforces it. While a SafeWskSocketConnect using it
/// has not returned, or a SafeWskSocketConnectAsync using it has not reached
/// its callback (the IRP completes before the callback; releasing from the
/// callback is fine), the release is refused with STATUS_DEVICE_BUSY and
/// nothing changes: release it later. (If the same pointer was cached
/// twice, one of its references not used by a connect in flight can be
/// released.)
///
/// After STATUS_SUCCESS the pointer is no longer a cached copy of this
/// client: a connect given it fails with STATUS_INVALID_PARAMETER_11 and a
/// second release with STATUS_INVALID_PARAMETER_2. Works during
/// SafeWskCleanup's wait.
///
/// IRQL: PASSIVE_LEVEL.
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `Client` is NULL or not a live client;
/// - STATUS_INVALID_PARAMETER_2: `CachedSecurityDescriptor` is NULL, or
///   (looked up after the IRQL check) not a copy this client cached and has
///   not released: never cached, already released, or another client's; the
///   provider is not called;
/// - STATUS_INVALID_LEVEL: called above PASSIVE_LEVEL;
/// - STATUS_DELETE_PENDING: the client is being freed (a call racing the
///   end of SafeWskCleanup);
/// - STATUS_DEVICE_BUSY (a warning-class status: NT_SUCCESS is FALSE): a
///   connect using it is still in flight; nothing was released;
/// - STATUS_NOT_SUPPORTED: the provider's dispatch table has no
///   WskControlClient;
/// - the provider's status if it refused the release (the copy then stays
///   cached and recorded).
///
/// # Safety
/// `Client` is NULL or a live handle.
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskReleaseSecurityDescriptor(
    Client: *mut SAFEWSK_CLIENT,
    CachedSecurityDescriptor: PSECURITY_DESCRIPTOR,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { security_descriptor::release_export(Client, CachedSecurityDescriptor) })
}

/// Creates a TCP socket, sets socket options on it, binds it to
/// `LocalAddress` and connects it to `RemoteAddress`: WskSocket, then
/// WskControlSocket(WskSetOption) per option, then WskBind, then
/// WskConnect, each with its IRP, completion routine, wait and cancellation
/// done for you, all under ONE deadline. This is the sequence Microsoft
/// prescribes instead of WskSocketConnect "if the WSK application must set
/// a socket option ... before binding or connecting" (PFN_WSK_SOCKET_CONNECT).
///
/// The options (see SAFEWSK_SOCKET_OPTIONS), each documented on its own WSK
/// page on Microsoft Learn for connection-oriented sockets, all at level
/// SOL_SOCKET with a ULONG value, and all set after WskSocket and before
/// WskBind (the address options must be set before the bind; the others are
/// set there too, so that the connection exists only with every option in
/// effect), in this order:
/// - SAFEWSK_OPTION_EXCLUSIVEADDRUSE: SO_EXCLUSIVEADDRUSE ("SO_EXCLUSIVEADDRUSE");
/// - SAFEWSK_OPTION_REUSEADDR: SO_REUSEADDR ("SO_REUSEADDR");
/// - SAFEWSK_OPTION_KEEPALIVE: SO_KEEPALIVE ("SO_KEEPALIVE");
/// - SAFEWSK_OPTION_RCVBUF: SO_RCVBUF ("SO_RCVBUF"; some transports do not
///   support it: then the provider's status is returned).
///
/// Not offered: TCP_NODELAY (use WSK_FLAG_NODELAY on SafeWskSend),
/// SO_SNDBUF and IPV6_V6ONLY (no WSK option page was found for them).
///
/// Parameters, each checked before the WSK provider is called; a bad one
/// fails with STATUS_INVALID_PARAMETER_<n> for its position n:
/// 1. `Client`: a live client from SafeWskStartup.
/// 2. `LocalAddress`: as SafeWskSocketConnect's (SOCKADDR_IN or
///    SOCKADDR_IN6, not multicast or broadcast); it decides the family.
/// 3. `RemoteAddress`: as SafeWskSocketConnect's (same family, a port, a
///    unicast address).
/// 4. `Options`: NULL (no option), or a SAFEWSK_SOCKET_OPTIONS with `Size`
///    = sizeof(SAFEWSK_SOCKET_OPTIONS), no unknown `Mask` bit, each flag
///    0 or 1, `ReceiveBufferSize` 1 to 0x7FFFFFFF, every field whose bit is
///    clear 0, and not both `ExclusiveAddressUse` and `ReuseAddress` 1 (they
///    exclude each other). Only read during the call.
/// 5. `SocketContext`, 6. `Dispatch`: as SafeWskSocketConnect's 7 and 8
///    (passed to WskSocket; callbacks stay disabled).
/// 7. `Socket`: receives the connected socket, or NULL on any failure. The
///    caller owns it and closes it with SafeWskCloseSocket.
/// 8. `TimeoutMs`: one deadline for all the steps together;
///    SAFEWSK_NO_TIMEOUT for none. At the deadline the step in progress is
///    cancelled and waited for, the socket closed, and STATUS_IO_TIMEOUT
///    returned.
///
/// On any failure after WskSocket made the socket, the half-made socket is
/// closed (through SafeWskCloseSocket's path, waited for) before this
/// returns: it is never leaked and never returned half-configured. (Should
/// even that close fail to get its completion context for half a second
/// (50 tries, 10 ms apart), the socket stays
/// among the client's open sockets, and SafeWskCleanup refuses with
/// STATUS_INVALID_DEVICE_STATE rather than hang in WskDeregister.)
///
/// Allocations: the socket's record (one small non-paged pool block, tag
/// 'kwSS') with its IRP, made before WskSocket is called (none when a closed
/// socket's record is cached); every step reuses that IRP (IoReuseIrp); the
/// I/O manager allocates its IoSetCompletionRoutineEx context per step.
///
/// IRQL: <= APC_LEVEL (it waits).
///
/// Returns:
/// - STATUS_SUCCESS: `*Socket` is the connected socket, every option set;
/// - STATUS_INVALID_PARAMETER_1 .. _7: as above;
/// - STATUS_INVALID_LEVEL: called at DISPATCH_LEVEL or above;
/// - STATUS_DELETE_PENDING: SafeWskCleanup has begun on `Client`;
/// - STATUS_INSUFFICIENT_RESOURCES: an allocation above failed;
/// - STATUS_IO_TIMEOUT: not done within `TimeoutMs`;
/// - STATUS_NOT_SUPPORTED: the provider's dispatch table lacks WskSocket,
///   WskControlSocket, WskBind or WskConnect, or the transport list it gave
///   at startup has no TCP (an address family it lacks is parameter 2);
/// - STATUS_UNSUCCESSFUL: the provider reported success without a socket;
/// - the provider's status of the failing step otherwise: WskSocket's;
///   WskControlSocket's for an option (e.g. STATUS_NOT_SUPPORTED,
///   STATUS_INVALID_PARAMETER; STATUS_NOT_IMPLEMENTED from Wine 8, whose
///   WskControlSocket is a stub); WskBind's (e.g.
///   STATUS_ADDRESS_ALREADY_EXISTS); WskConnect's (e.g.
///   STATUS_CONNECTION_REFUSED).
///
/// # Safety
/// `Client` is NULL or a live handle. Every other non-NULL pointer is a
/// valid kernel-mode pointer to what is described above, valid for the call.
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskSocketConnectWithOptions(
    Client: *mut SAFEWSK_CLIENT,
    LocalAddress: *const SOCKADDR,
    RemoteAddress: *const SOCKADDR,
    Options: *const crate::options::SAFEWSK_SOCKET_OPTIONS,
    SocketContext: PVOID,
    Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    Socket: *mut *mut WSK_SOCKET,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe {
        crate::options::connect_with_options(
            Client,
            LocalAddress,
            RemoteAddress,
            Options,
            SocketContext,
            Dispatch,
            Socket,
            TimeoutMs,
        )
    })
}

/// Enables event callbacks of a connected socket: WskControlSocket(
/// WskSetOption, SO_WSK_EVENT_CALLBACK) with NPI_WSK_INTERFACE_ID and
/// `EventMask`. WSK creates every socket with all its callbacks disabled
/// ("PFN_WSK_SOCKET_CONNECT"): until this is called, the `Dispatch` table
/// given to SafeWskSocketConnect, SafeWskSocketConnectAsync or
/// SafeWskSocketConnectWithOptions is never called.
///
/// `EventMask`: one or more of WSK_EVENT_RECEIVE (WskReceiveEvent),
/// WSK_EVENT_DISCONNECT (WskDisconnectEvent) and WSK_EVENT_SEND_BACKLOG
/// (WskSendBacklogEvent) — the connection socket's events ("SO_WSK_EVENT_CALLBACK").
/// Each must have a non-NULL entry in the Dispatch table the socket was
/// created with (which safewsk recorded with the socket): WSK would call a
/// NULL entry.
///
/// The callbacks then run as WSK documents them: at IRQL <= DISPATCH_LEVEL,
/// on arbitrary threads, possibly before this function returns.
/// WskReceiveEvent's data indications belong to WSK; a callback that
/// returns STATUS_PENDING keeps them and must give them back with the
/// socket's WskRelease (`((PWSK_PROVIDER_CONNECTION_DISPATCH)
/// Socket->Dispatch)->WskRelease`) before closing the socket; with
/// STATUS_DATA_NOT_ACCEPTED, WSK stops indicating until SafeWskReceive is
/// called. The context and table must stay valid until the socket is
/// closed.
///
/// Enabling takes no IRP ("A WSK application does not specify a pointer to
/// an IRP when calling the WskControlSocket function to enable event
/// callback functions"), so nothing is allocated and nothing waits. A
/// SafeWskCloseSocket on another thread waits until this call has returned
/// from WskControlSocket (WSK forbids closing a socket during a call of one
/// of its functions, "Closing a Socket").
///
/// Works during SafeWskCleanup (on a socket still open).
///
/// IRQL: <= DISPATCH_LEVEL (above it only parameters 1 and 2 are checked,
/// for NULL, before STATUS_INVALID_LEVEL).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (client), _2
/// (`Socket` NULL or not an open socket of this client), _3 (`EventMask` 0,
/// a flag other than the three above — WSK_EVENT_DISABLE included: use
/// SafeWskDisableCallbacks —, or a flag whose callback the socket's
/// Dispatch table lacks, or any flag on a socket created without a Dispatch
/// table; the provider is not called); STATUS_INVALID_LEVEL;
/// STATUS_DELETE_PENDING (the client is being freed); STATUS_NOT_SUPPORTED
/// (the provider's table has no WskControlSocket); or the provider's status
/// (e.g. STATUS_NOT_IMPLEMENTED from Wine 8, whose WskControlSocket is a
/// stub).
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer.
/// cbindgen:prefix=_IRQL_requires_max_(DISPATCH_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskEnableCallbacks(
    Client: *mut SAFEWSK_CLIENT,
    Socket: *mut WSK_SOCKET,
    EventMask: ULONG,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { crate::events::enable(Client, Socket, EventMask) })
}

/// Disables event callbacks of a socket enabled with
/// SafeWskEnableCallbacks. WSK requires that each callback be disabled
/// individually ("Enabling and Disabling Event Callback Functions"): for
/// each flag of `EventMask` safewsk issues one WskControlSocket(
/// SO_WSK_EVENT_CALLBACK, flag | WSK_EVENT_DISABLE) with an IRP and waits
/// for it; WSK completes such an IRP only "after all in-progress calls to
/// the event callback function have returned" ("SO_WSK_EVENT_CALLBACK"). So
/// on STATUS_SUCCESS the disabled callbacks are neither running nor called
/// again. Never call it from one of the socket's callbacks (it would wait
/// for itself; they run at DISPATCH_LEVEL anyway, where it is refused).
///
/// `EventMask`: as for SafeWskEnableCallbacks (same checks). `TimeoutMs`:
/// one deadline for all the flags; SAFEWSK_NO_TIMEOUT for none. Allocations:
/// per flag an IRP and the I/O manager's IoSetCompletionRoutineEx context.
///
/// Works during SafeWskCleanup (on a socket still open).
///
/// IRQL: <= APC_LEVEL (it waits; above DISPATCH_LEVEL only parameters 1 and
/// 2 are checked, for NULL, before STATUS_INVALID_LEVEL).
///
/// A SafeWskCloseSocket on another thread waits until the WskControlSocket
/// call in progress has returned (as for every call on the socket); a flag
/// not yet started when the close began is not disabled (the close ends the
/// callbacks): STATUS_INVALID_PARAMETER_2.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 .. _3 as for
/// SafeWskEnableCallbacks (_2 also: the socket began to be closed between
/// two flags); STATUS_INVALID_LEVEL; STATUS_DELETE_PENDING;
/// STATUS_INSUFFICIENT_RESOURCES (IRP or completion context);
/// STATUS_IO_TIMEOUT (a callback still running at the deadline: the flags
/// before it are disabled, the rest may not be); STATUS_NOT_SUPPORTED; or
/// the provider's status.
///
/// # Safety
/// `Client` is NULL or a live handle; `Socket` is NULL or a socket pointer.
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskDisableCallbacks(
    Client: *mut SAFEWSK_CLIENT,
    Socket: *mut WSK_SOCKET,
    EventMask: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { crate::events::disable(Client, Socket, EventMask, TimeoutMs) })
}
