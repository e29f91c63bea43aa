//! The connect exports: synchronous, asynchronous, by name, with options.

use core::ptr;

use crate::client::SAFEWSK_CLIENT;
pub use crate::connect::asynchronous::{SAFEWSK_CONNECT_CALLBACK, SAFEWSK_CONNECT_REQUEST, SAFEWSK_NO_TIMEOUT};
use crate::connect::{self, validate::ConnectArgs};
use crate::handles::SAFEWSK_SOCKET;
use crate::kernel::nt::*;
use crate::kernel::status::from_result;

/// Creates a TCP socket, binds it to `LocalAddress`, connects it to
/// `RemoteAddress` and returns it: WskSocketConnect, with the IRP, its
/// completion routine, the wait and the cancellation done for you.
///
/// Parameters 1 to 11 are those of PFN_WSK_SOCKET_CONNECT, with `Client` being
/// the safewsk client; a bad one fails with `STATUS_INVALID_PARAMETER_<n>` for
/// its position n, before the WSK provider is called:
/// 1. `Client`: a live client's handle from SafeWskStartup.
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
///    no list (Wine 8's WskControlClient is a stub; startup reports it once:
///    SAFEWSK_REPORT_NO_TRANSPORT_LIST) only the fixed rules above apply.
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
///    until the callbacks are enabled with SafeWskEnableCallbacks.
/// 9. `OwningProcess`, 10. `OwningThread`: optional, passed through.
/// 11. `SecurityDescriptor`: NULL, or a cached copy that this client got
///     from SafeWskCacheSecurityDescriptor and has not released (WSK accepts
///     only copies cached with WSK_CACHE_SD). It is looked up in the
///     client's table, never read. From the check until the IRP has
///     completed (until this call returns) it is pinned: a
///     SafeWskReleaseSecurityDescriptor of it meanwhile returns
///     STATUS_DEVICE_BUSY.
/// 12. `Socket`: receives the new socket's handle, or NULL on any failure.
///     The caller owns the socket and must pass it to SafeWskCloseSocket
///     (or leave it to SafeWskCleanup). The handle is opaque (not a
///     pointer: never dereference it); the WSK_SOCKET stays the library's.
/// 13. `TimeoutMs`: how long to wait for the connection. At the deadline the
///     IRP is cancelled and the call returns once the provider has completed
///     it (WSK completes cancelled IRPs; a provider that does not is
///     reported every few seconds, SAFEWSK_REPORT_OVERDUE, while the call
///     keeps waiting, since an IRP the provider owns cannot be freed).
///     SAFEWSK_NO_TIMEOUT: no deadline. 0: the connect is not waited for:
///     unless the provider completes it synchronously (WskSocketConnect
///     returns something other than STATUS_PENDING), the IRP is cancelled
///     at once and, once it has completed, STATUS_IO_TIMEOUT is returned, or
///     the IRP's own result if it completed before the cancel took effect
///     (then the socket is returned, not lost). A provider that returns
///     an error without completing the IRP (a breach of the I/O model that
///     Wine's stub WskSocketConnect commits) gets its status returned here.
///
/// All pointers are kernel-mode addresses; addresses are only read during the
/// call. Allocations: a slot in the driver's socket table (a 4 KiB
/// non-paged pool chunk, tag 'kwSS', for every 64 sockets open at once,
/// kept until the last SafeWskCleanup) and an IRP, which the connect uses
/// and the socket's later calls reuse (after the close it waits in a cache
/// of up to 64 idle IRPs for the next connect); and the I/O manager's
/// IoSetCompletionRoutineEx context. Each is made before the provider is
/// called, so a connected socket is never lost to a failed allocation. A
/// connect in a steady state (sockets closed as others open) allocates
/// nothing of safewsk's own.
///
/// IRQL: <= APC_LEVEL (it waits).
///
/// Returns:
/// - STATUS_SUCCESS: `*Socket` is the connected socket;
/// - STATUS_INVALID_PARAMETER_1 .. _12: as above;
/// - STATUS_INVALID_LEVEL: called at DISPATCH_LEVEL or above;
/// - STATUS_DELETE_PENDING: SafeWskCleanup has begun on `Client`;
/// - STATUS_INSUFFICIENT_RESOURCES: an allocation above failed, or
///   SAFEWSK_MAX_SOCKETS (65,536) sockets of the driver are open;
/// - STATUS_IO_TIMEOUT: not connected within `TimeoutMs`;
/// - the provider's status otherwise, e.g. STATUS_CONNECTION_REFUSED,
///   STATUS_HOST_UNREACHABLE, STATUS_NETWORK_UNREACHABLE,
///   STATUS_ADDRESS_ALREADY_EXISTS (local address in use).
///
/// # Safety
/// Any `Client` value is safe. Every other non-NULL pointer is a valid
/// kernel-mode pointer to what is described above (an address is a
/// SOCKADDR_IN or SOCKADDR_IN6 as its family says), valid for the call.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 848, x64-Debug 1104, ARM64-Release 704, ARM64-Debug 832 (budget 1536).
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
    Socket: *mut *mut SAFEWSK_SOCKET,
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
/// with its `STATUS_INVALID_PARAMETER_<n>`. Parameter 12, `Request`, is caller
/// storage (see SAFEWSK_CONNECT_REQUEST: non-paged, valid until the callback
/// returns, one request at a time) with `Callback` set, `TimeoutMs` (or
/// SAFEWSK_NO_TIMEOUT) and `Reserved` 0; otherwise
/// STATUS_INVALID_PARAMETER_12. Allocations: as SafeWskSocketConnect (a
/// socket slot, an IRP, the I/O manager's IoSetCompletionRoutineEx
/// context), all made before the provider is called.
///
/// If it returns STATUS_PENDING, `Callback(CallbackContext, Status, Socket)`
/// is called exactly once, at IRQL <= DISPATCH_LEVEL, on an arbitrary thread,
/// possibly before this function returns (when the provider completes
/// synchronously, or returns an error without completing the IRP — whose
/// status the callback then reports) and possibly inside
/// SafeWskCancelConnect. `Status`/`Socket` are what SafeWskSocketConnect would
/// return: STATUS_SUCCESS and the socket's handle (the callee owns it and
/// closes it with SafeWskCloseSocket, or leaves it to SafeWskCleanup), STATUS_IO_TIMEOUT at the deadline,
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
/// DISPATCH_LEVEL the client is not entered (its handle is checked against
/// the library's static client table, so a stale one is still _1) and its
/// tables are not consulted: the call fails with STATUS_INVALID_LEVEL
/// instead.
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
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 816, x64-Debug 1200, ARM64-Release 656, ARM64-Debug 1024 (budget 1536).
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
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 208, x64-Debug 448, ARM64-Release 128, ARM64-Debug 240 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(DISPATCH_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCancelConnect(Request: *mut SAFEWSK_CONNECT_REQUEST) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { connect::cancel(Request) })
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
///    drops SYNs can use up the whole deadline (see src/connect/by_name.rs).
///
/// Parameters, each checked by position before anything else:
/// 1. `Client`: a live client's handle from SafeWskStartup.
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
/// 6. `Socket`: receives the connected socket's handle, or NULL on any
///    failure. The caller owns it and closes it with SafeWskCloseSocket.
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
///    SAFEWSK_NO_TIMEOUT: no deadline. 0: each step is not waited for (see
///    SafeWskSocketConnect's `TimeoutMs`).
///
/// Above APC_LEVEL the strings are not read (they may be pageable):
/// parameters 2 and 3 are then only checked for NULL, the others as above,
/// before STATUS_INVALID_LEVEL.
///
/// Allocations: one IRP and one IoSetCompletionRoutineEx context for the
/// resolution, and per attempt what SafeWskSocketConnect allocates;
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
/// Any `Client` value is safe; `NodeName` and `ServiceName` are NULL
/// or readable UNICODE_STRINGs whose Buffer holds Length readable bytes;
/// `Dispatch` is NULL or a readable WSK_CLIENT_CONNECTION_DISPATCH (kept
/// valid, with `SocketContext`, until the socket is closed); `Socket` is NULL
/// or writable; `RemoteAddress` is NULL or `RemoteAddressLength` writable
/// bytes. All valid for the call.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 832, x64-Debug 1120, ARM64-Release 736, ARM64-Debug 880 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskConnectByName(
    Client: *mut SAFEWSK_CLIENT,
    NodeName: *const UNICODE_STRING,
    ServiceName: *const UNICODE_STRING,
    SocketContext: PVOID,
    Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    Socket: *mut *mut SAFEWSK_SOCKET,
    RemoteAddress: *mut SOCKADDR,
    RemoteAddressLength: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    let args = connect::by_name::ByNameArgs {
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
    from_result(unsafe { connect::by_name::connect_by_name(Client, args) })
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
/// fails with `STATUS_INVALID_PARAMETER_<n>` for its position n:
/// 1. `Client`: a live client's handle from SafeWskStartup.
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
/// 7. `Socket`: receives the connected socket's handle, or NULL on any
///    failure. The caller owns it and closes it with SafeWskCloseSocket.
/// 8. `TimeoutMs`: one deadline for all the steps together;
///    SAFEWSK_NO_TIMEOUT for none. At the deadline the step in progress is
///    cancelled and waited for, the socket closed, and STATUS_IO_TIMEOUT
///    returned.
///
/// On any failure after WskSocket made the socket, the half-made socket is
/// closed (WskCloseSocket, waited for) before this returns: it is never
/// leaked and never returned half-configured. Should that close fail to get
/// its completion context, or the provider refuse it without completing it,
/// the socket becomes the library's and SafeWskCleanup closes it.
///
/// Allocations: a socket slot and its IRP as for SafeWskSocketConnect, made
/// before WskSocket is called; every step reuses that IRP (IoReuseIrp); the
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
/// Any `Client` value is safe. Every other non-NULL pointer is a
/// valid kernel-mode pointer to what is described above, valid for the call.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 1104, x64-Debug 1440, ARM64-Release 864, ARM64-Debug 1216 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskSocketConnectWithOptions(
    Client: *mut SAFEWSK_CLIENT,
    LocalAddress: *const SOCKADDR,
    RemoteAddress: *const SOCKADDR,
    Options: *const crate::connect::options::SAFEWSK_SOCKET_OPTIONS,
    SocketContext: PVOID,
    Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    Socket: *mut *mut SAFEWSK_SOCKET,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe {
        crate::connect::options::connect_with_options(
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

/// The common case in one call: connects a TCP socket to `RemoteAddress`
/// from the wildcard address of its family (the stack picks the local
/// address and port), without socket context, event callbacks or security
/// descriptor, and waits up to `TimeoutMs`. Everything else is as
/// SafeWskSocketConnect (which it is, with the constants filled in).
///
/// Parameters, each checked before the provider is called:
/// 1. `Client`: a live client's handle from SafeWskStartup.
/// 2. `RemoteAddress`: a SOCKADDR_IN or SOCKADDR_IN6 with a port, unicast
///    (not unspecified, broadcast or multicast, also when IPv4-mapped), of a
///    family the provider lists (see SafeWskSocketConnect's parameter 4).
/// 3. `Socket`: receives the connected socket's handle, or NULL on any
///    failure; the caller owns it and closes it with SafeWskCloseSocket.
/// 4. `TimeoutMs`: as SafeWskSocketConnect's (SAFEWSK_NO_TIMEOUT: no
///    deadline; 0: not waited for).
///
/// IRQL: <= APC_LEVEL (it waits).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 .. _3 as above;
/// STATUS_INVALID_LEVEL; STATUS_DELETE_PENDING (SafeWskCleanup has begun);
/// STATUS_INSUFFICIENT_RESOURCES; STATUS_IO_TIMEOUT; STATUS_NOT_SUPPORTED
/// (the provider's transport list has no TCP, or its table no
/// WskSocketConnect); or the provider's status (e.g.
/// STATUS_CONNECTION_REFUSED).
///
/// # Safety
/// `RemoteAddress` is NULL or a readable SOCKADDR_IN / SOCKADDR_IN6 (as its
/// family says); `Socket` is NULL or writable; both valid for the call. Any
/// `Client` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 848, x64-Debug 1104, ARM64-Release 752, ARM64-Debug 880 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskConnect(
    Client: *mut SAFEWSK_CLIENT,
    RemoteAddress: *const SOCKADDR,
    Socket: *mut *mut SAFEWSK_SOCKET,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe { connect::connect_short(Client, RemoteAddress, Socket, TimeoutMs) })
}
