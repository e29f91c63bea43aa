//! The server and datagram exports: listening sockets and their accepts,
//! datagram sockets with send-to and receive-from, and a name resolution
//! without a connect. See docs/servers-and-datagrams.md.

use core::ffi::c_void;
use core::ptr;

use crate::client::SAFEWSK_CLIENT;
use crate::connect::options::SAFEWSK_SOCKET_OPTIONS;
use crate::handles::SAFEWSK_SOCKET;
use crate::kernel::nt::*;
use crate::kernel::status::from_result;
pub use crate::servers::accept_async::{SAFEWSK_ACCEPT_CALLBACK, SAFEWSK_ACCEPT_REQUEST};
pub use crate::servers::SAFEWSK_ADDRESS;
use crate::servers::{accept_async, datagram, listen, resolve};

/// Creates a listening TCP socket bound to `LocalAddress`: WskSocket with
/// WSK_FLAG_LISTEN_SOCKET, then WskControlSocket(WskSetOption) per option,
/// then WskBind, each with its IRP, completion routine, wait and
/// cancellation done for you, under ONE deadline. A listening socket
/// listens from its bind on ("Listening for and Accepting Incoming
/// Connections", Microsoft Learn); take connections off it with
/// SafeWskAccept or SafeWskAcceptAsync.
///
/// Parameters, each checked before the provider is called; a bad one fails
/// with STATUS_INVALID_PARAMETER_n for its position n:
/// 1. `Client`: a live client's handle from SafeWskStartup.
/// 2. `LocalAddress`: a SOCKADDR_IN or SOCKADDR_IN6 (AF_INET / AF_INET6),
///    not multicast or broadcast, of a family the provider lists for TCP
///    (see SafeWskSocketConnect's parameter 4); the wildcard address to
///    listen on every interface, port 0 to let the stack choose (find it
///    with SafeWskGetLocalAddress). Only read during the call.
/// 3. `Options`: NULL for the server default, SO_EXCLUSIVEADDRUSE 1 (no
///    other socket can then be bound to the same address and port: "Using
///    SO_EXCLUSIVEADDRUSE" and "Sharing Transport Addresses", Microsoft
///    Learn); or a SAFEWSK_SOCKET_OPTIONS, checked as for
///    SafeWskSocketConnectWithOptions (every SAFEWSK_OPTION_* bit applies to
///    listening sockets; SO_KEEPALIVE and SO_RCVBUF are inherited by the
///    accepted sockets), set exactly as given (a Mask of 0: no option at
///    all). Only read during the call.
/// 4. `Socket`: receives the listening socket's handle, or NULL on any
///    failure. The caller owns it and closes it with SafeWskCloseSocket
///    (or leaves it to SafeWskCleanup, which closes listening sockets first
///    and waits for their pending accepts).
/// 5. `TimeoutMs`: one deadline for all the steps; SAFEWSK_NO_TIMEOUT for
///    none; 0: each step not waited for (see SafeWskSocketConnect).
///
/// The handle is a socket handle of the listening kind: SafeWskAccept,
/// SafeWskAcceptAsync, SafeWskCloseSocket, SafeWskGetLocalAddress and
/// SafeWskControlSocket (SO_KEEPALIVE, SO_RCVBUF) take it; every other
/// socket call refuses it with STATUS_INVALID_PARAMETER_1.
///
/// On any failure after WskSocket made the socket, it is closed before this
/// returns (or, if that close cannot be issued, left to SafeWskCleanup).
/// Allocations: a socket slot and its IRP (as SafeWskSocketConnect), made
/// before WskSocket; the I/O manager's completion context per step.
///
/// IRQL: <= APC_LEVEL (it waits).
///
/// Returns:
/// - STATUS_SUCCESS: `*Socket` is listening;
/// - STATUS_INVALID_PARAMETER_1 .. _4: as above;
/// - STATUS_INVALID_LEVEL: called at DISPATCH_LEVEL or above;
/// - STATUS_DELETE_PENDING: SafeWskCleanup has begun on `Client`;
/// - STATUS_INSUFFICIENT_RESOURCES: an allocation above failed, or
///   SAFEWSK_MAX_SOCKETS sockets of the driver are open;
/// - STATUS_IO_TIMEOUT: not done within `TimeoutMs`;
/// - STATUS_NOT_SUPPORTED: the provider's dispatch table lacks WskSocket,
///   WskControlSocket or WskBind, or its transport list has no TCP;
/// - STATUS_UNSUCCESSFUL: the provider reported success without a socket;
/// - the provider's status of the failing step otherwise: WskSocket's;
///   WskControlSocket's for an option (STATUS_NOT_IMPLEMENTED from Wine 8,
///   whose WskControlSocket is a stub: pass an Options with Mask 0 there);
///   WskBind's (STATUS_ADDRESS_ALREADY_EXISTS: the address is in use;
///   STATUS_ACCESS_DENIED: another socket has it exclusively).
///
/// # Safety
/// Any `Client` value is safe. Every other non-NULL pointer is a valid
/// kernel-mode pointer to what is described above, valid for the call.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 1056, x64-Debug 1424, ARM64-Release 752, ARM64-Debug 1088 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskListen(
    Client: *mut SAFEWSK_CLIENT,
    LocalAddress: *const SOCKADDR,
    Options: *const SAFEWSK_SOCKET_OPTIONS,
    Socket: *mut *mut SAFEWSK_SOCKET,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe { listen::listen(Client, LocalAddress, Options, Socket, TimeoutMs) })
}

/// Accepts one incoming connection on a listening socket (WskAccept) and
/// waits until one arrives, the listening socket is closed, or `TimeoutMs`
/// passes. The accepted socket is an ordinary connection socket of the
/// listening socket's client: SafeWskSend, SafeWskReceive,
/// SafeWskDisconnect, SafeWskCloseSocket, the callbacks and the address
/// queries all take it.
///
/// Parameters, each checked before the provider is called:
/// 1. `ListenSocket`: a listening socket's handle from SafeWskListen; a
///    handle of another kind (a connection or datagram socket), of a closed
///    socket, forged or NULL is STATUS_INVALID_PARAMETER_1.
/// 2. `SocketContext`, 3. `Dispatch`: the accepted socket's context and
///    callback table, as SafeWskSocketConnect's parameters 7 and 8 (a
///    context needs a table; a table needs a callback; callbacks start
///    disabled: enable them with SafeWskEnableCallbacks). Both must stay
///    valid until the accepted socket is closed.
/// 4. `Socket`: receives the accepted socket's handle, or NULL on any
///    failure. The caller owns it.
/// 5. `LocalAddress`, 6. `RemoteAddress`: optional (NULL); on
///    STATUS_SUCCESS they receive the connection's local and remote address
///    (SOCKADDR_IN or SOCKADDR_IN6 in a SAFEWSK_ADDRESS). WSK writes into
///    non-paged buffers of safewsk's; these may be any writable kernel
///    memory. Written only on success.
/// 7. `TimeoutMs`: SAFEWSK_NO_TIMEOUT to wait for a connection as long as
///    it takes; 0: only a connection already waiting is taken (the accept
///    is cancelled at once unless WSK completes it before returning);
///    otherwise milliseconds.
///
/// The accept holds the listening socket as a pending receive holds its
/// socket: SafeWskCloseSocket on the listening socket (from another thread)
/// does not wait for it, and WSK completes it then ("Calling the
/// WskCloseSocket function causes the WSK subsystem to cancel and complete
/// all pending IRPs", PFN_WSK_CLOSE_SOCKET): it returns STATUS_CANCELLED.
/// Several accepts may be pending on one listening socket at once.
///
/// Allocations: a socket slot for the accepted socket and its IRP (the
/// accept uses it, the socket's calls reuse it), made before the provider
/// is called, so an accepted connection is never lost to a failed
/// allocation; the I/O manager's completion context.
///
/// IRQL: <= APC_LEVEL (it waits).
///
/// Returns:
/// - STATUS_SUCCESS: `*Socket` is the accepted connection;
/// - STATUS_INVALID_PARAMETER_1 .. _4: as above;
/// - STATUS_INVALID_LEVEL;
/// - STATUS_INSUFFICIENT_RESOURCES: an allocation failed,
///   SAFEWSK_MAX_SOCKETS sockets are open, or 65,535 calls are in progress
///   on the listening socket;
/// - STATUS_IO_TIMEOUT: no connection within `TimeoutMs`;
/// - STATUS_CANCELLED: the listening socket was closed meanwhile;
/// - STATUS_NOT_SUPPORTED: the provider's listening table has no WskAccept;
/// - STATUS_UNSUCCESSFUL: the provider reported success without a socket,
///   or returned without completing the IRP;
/// - the provider's status otherwise (e.g. STATUS_FILE_FORCED_CLOSED).
///
/// # Safety
/// Any `ListenSocket` value is safe; `Dispatch` is NULL or a readable
/// WSK_CLIENT_CONNECTION_DISPATCH; `Socket` is NULL or writable;
/// `LocalAddress` and `RemoteAddress` are NULL or writable; all valid for
/// the call (and context and table until the accepted socket is closed).
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 720, x64-Debug 912, ARM64-Release 576, ARM64-Debug 672 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskAccept(
    ListenSocket: *mut SAFEWSK_SOCKET,
    SocketContext: PVOID,
    Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    Socket: *mut *mut SAFEWSK_SOCKET,
    LocalAddress: *mut SAFEWSK_ADDRESS,
    RemoteAddress: *mut SAFEWSK_ADDRESS,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe {
        listen::accept(ListenSocket, SocketContext, Dispatch, Socket, LocalAddress, RemoteAddress, TimeoutMs)
    })
}

/// Starts an accept like SafeWskAccept but returns at once: the result
/// arrives through `Request->Callback`, so a server can keep accepts
/// pending from a DPC or a work item without a thread waiting per accept.
///
/// Parameters 1 to 3 are checked exactly as for SafeWskAccept. Parameter 4,
/// `Request`, is caller storage (see SAFEWSK_ACCEPT_REQUEST: non-paged,
/// valid until the callback returns, one request at a time) with `Callback`
/// set, `TimeoutMs` (or SAFEWSK_NO_TIMEOUT) and `Reserved` 0; otherwise
/// STATUS_INVALID_PARAMETER_4.
///
/// If it returns STATUS_PENDING, `Callback(CallbackContext, Status, Socket)`
/// is called exactly once, at IRQL <= DISPATCH_LEVEL, on an arbitrary
/// thread, possibly before this function returns (the provider completed at
/// once, or returned an error without completing the IRP: its status is
/// reported) and possibly inside SafeWskCancelAccept or SafeWskCloseSocket
/// of the listening socket. `Status`/`Socket` are what SafeWskAccept would
/// return: STATUS_SUCCESS and the accepted socket's handle (the callee owns
/// it; `Request->LocalAddress` and `Request->RemoteAddress` then hold the
/// connection's addresses), STATUS_IO_TIMEOUT at the deadline,
/// STATUS_CANCELLED after SafeWskCancelAccept or when the listening socket
/// is closed (SafeWskCloseSocket, or SafeWskCleanup), or the provider's
/// status. The callback may start the next accept on the same listening
/// socket (a closed one refuses it with STATUS_INVALID_PARAMETER_1). If a
/// connection is already waiting, that accept may complete at once and its
/// callback run inside the SafeWskAcceptAsync the callback called, on the
/// same thread: hold no lock across that call, and where many connections
/// can be waiting at once start the next accept from a work item instead,
/// since each nesting adds the callback's frame and this function's stack
/// (below) to the thread's stack (the library does not flatten the
/// recursion).
///
/// If it returns anything else, the callback is never called.
///
/// Unload safety: the request holds the listening socket until its callback
/// has returned, and SafeWskCleanup closes listening sockets first and
/// waits for that, so no callback runs once SafeWskCleanup has returned.
/// The request is not counted as a call inside the client: a pending accept
/// never keeps SafeWskCleanup from closing the listening socket that ends
/// it. Never call SafeWskCleanup from the callback.
///
/// Allocations: as SafeWskAccept (a socket slot with its IRP, the I/O
/// manager's completion context), before the provider is called.
///
/// IRQL: <= DISPATCH_LEVEL.
///
/// Returns STATUS_PENDING; STATUS_INVALID_PARAMETER_1 .. _4;
/// STATUS_INVALID_LEVEL (above DISPATCH_LEVEL); STATUS_INSUFFICIENT_RESOURCES
/// (an allocation above failed, SAFEWSK_MAX_SOCKETS sockets are open, or
/// 65,535 calls are in progress on the listening socket);
/// STATUS_NOT_SUPPORTED (the provider's listening table has no WskAccept).
///
/// # Safety
/// As SafeWskAccept for parameters 1 to 3; `Request` is NULL or valid
/// storage as described, not in use by another request.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 448, x64-Debug 656, ARM64-Release 320, ARM64-Debug 416 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(DISPATCH_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskAcceptAsync(
    ListenSocket: *mut SAFEWSK_SOCKET,
    SocketContext: PVOID,
    Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    Request: *mut SAFEWSK_ACCEPT_REQUEST,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { accept_async::accept_async(ListenSocket, SocketContext, Dispatch, Request) })
}

/// Cancels an asynchronous accept started with SafeWskAcceptAsync. Its
/// callback still comes, exactly once, with STATUS_CANCELLED (or with the
/// result if the accept completed first).
///
/// The callback may run *inside* this call, on the caller's thread and at
/// the caller's IRQL (a WSK cancel routine may complete the IRP within
/// IoCancelIrp): do not hold a lock the callback takes. Call it only while
/// the request's storage is intact.
///
/// IRQL: <= DISPATCH_LEVEL.
///
/// Returns STATUS_SUCCESS (cancellation requested); STATUS_NOT_FOUND (the
/// accept has completed already: the callback is on its way or done);
/// STATUS_INVALID_PARAMETER_1 (`Request` is NULL); STATUS_INVALID_LEVEL.
///
/// # Safety
/// `Request` is NULL or storage passed to SafeWskAcceptAsync that returned
/// STATUS_PENDING, intact as described.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 208, x64-Debug 480, ARM64-Release 128, ARM64-Debug 272 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(DISPATCH_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCancelAccept(Request: *mut SAFEWSK_ACCEPT_REQUEST) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { accept_async::cancel(Request) })
}

/// Creates a UDP socket bound to `LocalAddress`: WskSocket with
/// WSK_FLAG_DATAGRAM_SOCKET, then WskControlSocket(WskSetOption) per
/// option, then WskBind, under ONE deadline, as SafeWskListen does.
///
/// Parameters, each checked before the provider is called:
/// 1. `Client`: a live client's handle from SafeWskStartup.
/// 2. `LocalAddress`: a SOCKADDR_IN or SOCKADDR_IN6, not multicast or
///    broadcast, of a family the provider lists for UDP; the wildcard
///    address and port 0 for a client socket (the stack chooses). It
///    decides the socket's family: SafeWskSendTo takes addresses of that
///    family only.
/// 3. `Options`: NULL for SO_EXCLUSIVEADDRUSE 1 (as SafeWskListen), or a
///    SAFEWSK_SOCKET_OPTIONS as for SafeWskSocketConnectWithOptions without
///    SAFEWSK_OPTION_KEEPALIVE (a connection option: _3). SO_BROADCAST is
///    set afterwards with SafeWskControlSocket.
/// 4. `Socket`: receives the datagram socket's handle, or NULL.
/// 5. `TimeoutMs`: one deadline for all steps, as SafeWskListen's.
///
/// The handle is a socket handle of the datagram kind: SafeWskSendTo,
/// SafeWskReceiveFrom, SafeWskCloseSocket, SafeWskGetLocalAddress and
/// SafeWskControlSocket (SO_RCVBUF, SO_BROADCAST) take it; every other
/// socket call refuses it with STATUS_INVALID_PARAMETER_1.
///
/// IRQL: <= APC_LEVEL (it waits).
///
/// Returns as SafeWskListen (STATUS_NOT_SUPPORTED: no UDP in the
/// provider's transport list, or a table entry missing; Wine 8's WskSocket
/// returns STATUS_NOT_IMPLEMENTED for datagram sockets).
///
/// # Safety
/// Any `Client` value is safe. Every other non-NULL pointer is a valid
/// kernel-mode pointer to what is described above, valid for the call.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 1056, x64-Debug 1424, ARM64-Release 752, ARM64-Debug 1088 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskDatagramSocket(
    Client: *mut SAFEWSK_CLIENT,
    LocalAddress: *const SOCKADDR,
    Options: *const SAFEWSK_SOCKET_OPTIONS,
    Socket: *mut *mut SAFEWSK_SOCKET,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !Socket.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *Socket = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe { datagram::datagram_socket(Client, LocalAddress, Options, Socket, TimeoutMs) })
}

/// Sends one datagram of `Length` bytes from `Buffer` to `RemoteAddress`
/// (WskSendTo) and waits until WSK has sent it or `TimeoutMs` passes.
///
/// Parameters:
/// 1. `Socket`: a datagram socket's handle from SafeWskDatagramSocket
///    (another kind, or a closed socket's handle: _1).
/// 2. `Buffer`: the datagram, any kernel-mode memory the caller can read
///    (non-paged or paged pool, the stack); described, probed and locked as
///    SafeWskSend does (SAFEWSK_FLAG_NONPAGED_BUFFER for non-paged pool).
/// 3. `Length`: 1 or more (a datagram larger than the transport allows is
///    the provider's error).
/// 4. `Flags`: 0 or SAFEWSK_FLAG_NONPAGED_BUFFER (WskSendTo's own Flags are
///    reserved).
/// 5. `RemoteAddress`: a SOCKADDR_IN or SOCKADDR_IN6 of the socket's
///    family, with a port, not unspecified (broadcast needs SO_BROADCAST).
///    Copied: it may be any readable kernel memory.
/// 6. `TimeoutMs`: as for every call (SAFEWSK_NO_TIMEOUT, 0, milliseconds).
/// 7. `BytesSent`: optional; receives the bytes sent, also on failure (0).
///
/// Allocations: none of safewsk's own (the socket's IRP; an IRP for a call
/// overlapping another on the same socket; an MDL above 64 KiB); the I/O
/// manager's completion context.
///
/// IRQL: <= APC_LEVEL (the buffer may be pageable).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 .. _5;
/// STATUS_INVALID_LEVEL; STATUS_INSUFFICIENT_RESOURCES (as SafeWskSend);
/// STATUS_ACCESS_VIOLATION or another exception code of
/// MmProbeAndLockPages (nothing sent); STATUS_IO_TIMEOUT;
/// STATUS_NOT_SUPPORTED (no WskSendTo in the provider's table); or the
/// provider's status (e.g. STATUS_ACCESS_DENIED for a broadcast without
/// SO_BROADCAST, STATUS_CANCELLED when the socket is closed meanwhile).
///
/// # Safety
/// `Buffer` is NULL or `Length` readable bytes (non-paged pool if
/// SAFEWSK_FLAG_NONPAGED_BUFFER); `RemoteAddress` is NULL or a readable
/// SOCKADDR of its family; `BytesSent` is NULL or writable; all valid for
/// the call. Any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 848, x64-Debug 1024, ARM64-Release 752, ARM64-Debug 832 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskSendTo(
    Socket: *mut SAFEWSK_SOCKET,
    Buffer: *const c_void,
    Length: ULONG,
    Flags: ULONG,
    RemoteAddress: *const SOCKADDR,
    TimeoutMs: ULONG,
    BytesSent: *mut ULONG,
) -> NTSTATUS {
    if !BytesSent.is_null() {
        // SAFETY: non-null out pointer per the API contract.
        unsafe { *BytesSent = 0 };
    }
    // SAFETY: the API contract.
    from_result(unsafe { datagram::send_to(Socket, Buffer, Length, Flags, RemoteAddress, TimeoutMs, BytesSent) })
}

/// Receives one datagram into `Buffer` (WskReceiveFrom) and waits until one
/// arrives, the socket is closed, or `TimeoutMs` passes.
///
/// Parameters:
/// 1. `Socket`: a datagram socket's handle (as SafeWskSendTo's).
/// 2. `Buffer`: any kernel-mode memory the caller can write, described,
///    probed and locked as SafeWskReceive does.
/// 3. `Length`: 1 or more.
/// 4. `Flags`: 0 or SAFEWSK_FLAG_NONPAGED_BUFFER.
/// 5. `RemoteAddress`: optional; receives the sender's address (SOCKADDR_IN
///    or SOCKADDR_IN6) on STATUS_SUCCESS and STATUS_BUFFER_OVERFLOW. WSK
///    writes into a non-paged buffer of safewsk's; this may be any
///    writable kernel memory.
/// 6. `TimeoutMs`: as for every call.
/// 7. `BytesReceived`: receives the datagram's length (at most `Length`).
///
/// A datagram larger than `Length` is truncated: its first `Length` bytes
/// are received, the rest is lost, and the call returns
/// STATUS_BUFFER_OVERFLOW (a warning: NT_SUCCESS is false), whether WSK
/// reports it with that status or with MSG_TRUNC.
///
/// IRQL: <= APC_LEVEL.
///
/// Returns STATUS_SUCCESS; STATUS_BUFFER_OVERFLOW (truncated, see above);
/// STATUS_INVALID_PARAMETER_1 .. _4, _7; STATUS_INVALID_LEVEL;
/// STATUS_INSUFFICIENT_RESOURCES; STATUS_ACCESS_VIOLATION or another
/// exception code of MmProbeAndLockPages (nothing received);
/// STATUS_IO_TIMEOUT; STATUS_NOT_SUPPORTED (no WskReceiveFrom); or the
/// provider's status (STATUS_CANCELLED when the socket is closed
/// meanwhile).
///
/// # Safety
/// `Buffer` is NULL or `Length` writable bytes (non-paged pool if
/// SAFEWSK_FLAG_NONPAGED_BUFFER); `RemoteAddress` and `BytesReceived` are
/// NULL or writable; all valid for the call. Any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 928, x64-Debug 1088, ARM64-Release 768, ARM64-Debug 880 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskReceiveFrom(
    Socket: *mut SAFEWSK_SOCKET,
    Buffer: *mut c_void,
    Length: ULONG,
    Flags: ULONG,
    RemoteAddress: *mut SAFEWSK_ADDRESS,
    TimeoutMs: ULONG,
    BytesReceived: *mut ULONG,
) -> NTSTATUS {
    if !BytesReceived.is_null() {
        // SAFETY: non-null out pointer per the API contract.
        unsafe { *BytesReceived = 0 };
    }
    // SAFETY: the API contract.
    from_result(unsafe {
        datagram::receive_from(Socket, Buffer, Length, Flags, RemoteAddress, TimeoutMs, BytesReceived)
    })
}

/// Resolves `NodeName` and `ServiceName` with the provider's
/// WskGetAddressInfo, without connecting: the addresses are copied into
/// the caller's array and the provider's list is freed (WskFreeAddressInfo)
/// before this returns, on every path. For a server that binds by name, or
/// a datagram exchange by name.
///
/// Parameters, each checked by position before anything else:
/// 1. `Client`: a live client's handle.
/// 2. `NodeName`, 3. `ServiceName`: as SafeWskConnectByName's (copied and
///    NUL-terminated before the provider sees them; "0" for port 0).
/// 4. `Family`: AF_UNSPEC (both), AF_INET or AF_INET6: the addresses
///    wanted (the resolver's hints; entries of another family are skipped).
/// 5. `Addresses`: an array of `AddressCount` SAFEWSK_ADDRESS, any writable
///    kernel memory. Entries past `*AddressesReturned` are not written.
/// 6. `AddressCount`: 1 or more; the answer's first `AddressCount` distinct
///    addresses, in the resolver's order (which Windows sorts by RFC 6724),
///    are kept, the rest ignored.
/// 7. `AddressesReturned`: receives how many entries were written (0 on
///    failure).
/// 8. `TimeoutMs`: the deadline of the resolution (SAFEWSK_NO_TIMEOUT for
///    none, 0 for not waiting).
///
/// Hints: SOCK_STREAM and IPPROTO_TCP (the address and port of a numeric or
/// well-known service are the same for UDP); NS_ALL.
///
/// IRQL: PASSIVE_LEVEL (WskGetAddressInfo's). Above APC_LEVEL the strings
/// are not read: parameters 2 and 3 are only checked for NULL, the others
/// as above, before STATUS_INVALID_LEVEL.
///
/// Allocations: one non-paged pool block for the copies of the names (as
/// SafeWskConnectByName's, freed before this returns), one IRP and the I/O
/// manager's completion context. The provider allocates the list, freed
/// before this returns.
///
/// Returns STATUS_SUCCESS (at least one address); STATUS_INVALID_PARAMETER_1
/// .. _7; STATUS_INVALID_LEVEL; STATUS_DELETE_PENDING (SafeWskCleanup has
/// begun); STATUS_NOT_SUPPORTED (the provider's table lacks
/// WskGetAddressInfo or WskFreeAddressInfo); STATUS_INSUFFICIENT_RESOURCES;
/// STATUS_IO_TIMEOUT; STATUS_NOT_FOUND (no such name, or no IPv4/IPv6
/// address of `Family` in the answer); or the resolver's status.
///
/// # Safety
/// Any `Client` value is safe; `NodeName` and `ServiceName` are NULL or
/// readable UNICODE_STRINGs whose Buffer holds Length readable bytes;
/// `Addresses` is NULL or `AddressCount` writable entries;
/// `AddressesReturned` is NULL or writable. All valid for the call.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 768, x64-Debug 1008, ARM64-Release 592, ARM64-Debug 800 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskResolveName(
    Client: *mut SAFEWSK_CLIENT,
    NodeName: *const UNICODE_STRING,
    ServiceName: *const UNICODE_STRING,
    Family: ADDRESS_FAMILY,
    Addresses: *mut SAFEWSK_ADDRESS,
    AddressCount: ULONG,
    AddressesReturned: *mut ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !AddressesReturned.is_null() {
        // SAFETY: non-null out pointer per the API contract.
        unsafe { *AddressesReturned = 0 };
    }
    let args = resolve::ResolveArgs {
        node: NodeName,
        service: ServiceName,
        family: Family,
        addresses: Addresses,
        count: AddressCount,
        returned: AddressesReturned,
        timeout_ms: TimeoutMs,
    };
    // SAFETY: the API contract.
    from_result(unsafe { resolve::resolve_name(Client, args) })
}
