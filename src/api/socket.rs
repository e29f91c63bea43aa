//! The exports that act on a connected socket. Each takes the socket's
//! handle as parameter 1 and nothing of the client: the handle names its
//! socket and, through the socket's slot, its client.

use core::ffi::c_void;

use crate::handles::SAFEWSK_SOCKET;
use crate::io::{self, events, Direction, End};
use crate::kernel::nt::*;
use crate::kernel::status::from_result;

/// Sends `Length` bytes from `Buffer` on a connected socket (WskSend) and
/// waits until WSK has sent them all or `TimeoutMs` passes.
///
/// `Socket` is a connection socket's handle, from one of the connects or
/// an accept (parameter 1 of every socket call): a handle of a socket that
/// is closed or being closed, a handle whose slot has since been given to
/// another socket, a listening or datagram socket's handle (another kind:
/// see SafeWskListen, SafeWskDatagramSocket), a forged value or NULL is
/// refused with STATUS_INVALID_PARAMETER_1, and the provider is not
/// called. The check reads only the library's own non-paged table, so it
/// is made at any IRQL, and never acts on another socket.
///
/// `Buffer` may be any kernel-mode memory the caller can read: non-paged
/// pool, paged pool or the caller's stack, valid for the call. The library
/// describes it with an MDL (on its own stack, initialized as MmInitializeMdl
/// does, for a buffer spanning at most 17 pages — any buffer of up to
/// 64 KiB —, else from IoAllocateMdl), probes and locks it
/// (MmProbeAndLockPages(KernelMode, IoReadAccess), which pages paged memory
/// in) and unlocks it (and frees an allocated MDL) after WSK has completed,
/// on every path. For a buffer in non-paged pool, add
/// SAFEWSK_FLAG_NONPAGED_BUFFER to `Flags` to skip the probe and lock
/// (MmBuildMdlForNonPagedPool); never for the stack or paged pool.
///
/// `Flags`: 0 or WSK_FLAG_NODELAY, optionally with
/// SAFEWSK_FLAG_NONPAGED_BUFFER (removed before WSK sees the flags).
/// `BytesSent` (optional) receives the count sent, also on timeout.
/// `TimeoutMs`, as for every call: milliseconds; SAFEWSK_NO_TIMEOUT for no
/// deadline; 0 for not waiting (unless the provider completes the send
/// synchronously, it is cancelled at once: STATUS_IO_TIMEOUT, or its own
/// result if it completed before the cancel took effect).
///
/// Allocations: none of safewsk's own while no other call is in progress on
/// the socket (the call reuses the IRP the socket's connect allocated,
/// IoReuseIrp; a call that overlaps another on the same socket allocates an
/// IRP and frees it); the I/O manager's IoSetCompletionRoutineEx context;
/// an MDL only for more than 64 KiB. No lock is taken: the socket's state
/// is one atomic word of its own.
///
/// IRQL: <= APC_LEVEL (the buffer may be pageable).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (`Socket` is not an
/// open socket's handle, see above), _2 (`Buffer` NULL), _3 (`Length` 0),
/// _4 (`Flags`); STATUS_INVALID_LEVEL; STATUS_INSUFFICIENT_RESOURCES
/// (completion context; an MDL only for more than 64 KiB, an IRP only for
/// overlapping calls; or 65,535 calls already in progress on the socket);
/// STATUS_ACCESS_VIOLATION (the buffer is not readable: MmProbeAndLockPages
/// raised it) or another exception code MmProbeAndLockPages raised (e.g.
/// STATUS_INSUFFICIENT_RESOURCES, STATUS_WORKING_SET_QUOTA: the pages could
/// not be locked) — nothing was sent; STATUS_IO_TIMEOUT (the socket's state
/// is then undefined: close it); STATUS_NOT_SUPPORTED (the provider's
/// dispatch table has no WskSend); or the provider's status (e.g.
/// STATUS_CONNECTION_RESET; STATUS_CANCELLED when the socket is closed
/// meanwhile).
///
/// # Safety
/// `Buffer` is NULL or `Length` bytes of kernel-mode memory that stay
/// allocated for the call (non-paged pool if SAFEWSK_FLAG_NONPAGED_BUFFER is
/// set); `BytesSent` is NULL or writable. Any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 896, x64-Debug 1088, ARM64-Release 720, ARM64-Debug 832 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskSend(
    Socket: *mut SAFEWSK_SOCKET,
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
        io::transfer(Direction::Send, Socket, Buffer.cast_mut(), Length, Flags, TimeoutMs, BytesSent)
    })
}

/// Receives up to `Length` bytes into `Buffer` (WskReceive) and waits until
/// data arrives, the peer closes, or `TimeoutMs` passes.
///
/// `Socket`: as for SafeWskSend. `Buffer` may be any kernel-mode memory the
/// caller can write: non-paged pool, paged pool or the caller's stack, valid
/// for the call. The library describes it with an MDL (on its own stack up
/// to 64 KiB, as for SafeWskSend), probes and locks it
/// (MmProbeAndLockPages(KernelMode, IoWriteAccess)) and unlocks it after WSK
/// has completed, on every path; with SAFEWSK_FLAG_NONPAGED_BUFFER in
/// `Flags` a non-paged pool buffer is described with
/// MmBuildMdlForNonPagedPool instead (never use the flag for the stack or
/// paged pool).
///
/// `Flags`: 0, or WSK_FLAG_WAITALL to wait until `Length` bytes arrived or
/// the peer closed; optionally with SAFEWSK_FLAG_NONPAGED_BUFFER (removed
/// before WSK sees the flags). `*BytesReceived` receives the count; 0 with
/// STATUS_SUCCESS means the peer closed its side gracefully.
///
/// A receive with SAFEWSK_NO_TIMEOUT that is pending when the socket is
/// closed on another thread returns then (WSK completes it, typically with
/// STATUS_CANCELLED): a close does not wait for pending receives, only for
/// calls still inside a WSK function.
///
/// Allocations: as SafeWskSend.
///
/// IRQL: <= APC_LEVEL (the buffer may be pageable).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (`Socket`), _2
/// (`Buffer` NULL), _3 (`Length` 0), _4 (`Flags`), _6 (`BytesReceived`
/// NULL); STATUS_INVALID_LEVEL; STATUS_INSUFFICIENT_RESOURCES (as
/// SafeWskSend); STATUS_ACCESS_VIOLATION (the buffer is not writable:
/// MmProbeAndLockPages raised it) or another exception code
/// MmProbeAndLockPages raised — nothing was received; STATUS_IO_TIMEOUT;
/// STATUS_NOT_SUPPORTED (the provider's dispatch table has no WskReceive);
/// or the provider's status.
///
/// # Safety
/// `Buffer` is NULL or `Length` bytes of kernel-mode memory that stay
/// allocated for the call (non-paged pool if SAFEWSK_FLAG_NONPAGED_BUFFER is
/// set); `BytesReceived` is NULL or writable. Any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 912, x64-Debug 1088, ARM64-Release 720, ARM64-Debug 832 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskReceive(
    Socket: *mut SAFEWSK_SOCKET,
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
    from_result(unsafe { io::transfer(Direction::Receive, Socket, Buffer, Length, Flags, TimeoutMs, BytesReceived) })
}

/// Retrieves the local transport address of a socket (WskGetLocalAddress):
/// the address and port a connection was made from, or that a listening
/// (SafeWskListen) or datagram (SafeWskDatagramSocket) socket is bound to —
/// the port the stack chose for port 0. Every kind of socket handle is
/// accepted.
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
/// IRQL: <= APC_LEVEL.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (`Socket` is not an
/// open socket's handle, of any kind), _2 (`Address` NULL), _3 (`AddressLength` below
/// sizeof(SOCKADDR_IN)); STATUS_BUFFER_TOO_SMALL (an IPv6 address and
/// `AddressLength` below sizeof(SOCKADDR_IN6); nothing written);
/// STATUS_INVALID_LEVEL; STATUS_INSUFFICIENT_RESOURCES (completion context;
/// an IRP only for overlapping calls); STATUS_IO_TIMEOUT;
/// STATUS_NOT_SUPPORTED (the provider's dispatch table has no such
/// function); STATUS_UNSUCCESSFUL (the provider returned an address of
/// another family, or claimed success without completing the IRP); or the
/// provider's status (e.g. STATUS_NOT_IMPLEMENTED from Wine 8, whose
/// WskGetLocalAddress and WskGetRemoteAddress are stubs).
///
/// # Safety
/// `Address` is NULL or `AddressLength` writable bytes that stay allocated
/// for the call. Any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 624, x64-Debug 848, ARM64-Release 464, ARM64-Debug 560 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskGetLocalAddress(
    Socket: *mut SAFEWSK_SOCKET,
    Address: *mut SOCKADDR,
    AddressLength: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { io::address(End::Local, Socket, Address, AddressLength, TimeoutMs) })
}

/// Retrieves the remote transport address of a connected socket
/// (WskGetRemoteAddress): the address and port it is connected to.
///
/// Parameters, allocations, IRQL and statuses: as SafeWskGetLocalAddress,
/// except that `Socket` must be a connection socket's handle (one of the
/// connects', or an accepted one): a listening or datagram socket's is
/// STATUS_INVALID_PARAMETER_1.
///
/// # Safety
/// `Address` is NULL or `AddressLength` writable bytes that stay allocated
/// for the call. Any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 624, x64-Debug 848, ARM64-Release 464, ARM64-Debug 560 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskGetRemoteAddress(
    Socket: *mut SAFEWSK_SOCKET,
    Address: *mut SOCKADDR,
    AddressLength: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { io::address(End::Remote, Socket, Address, AddressLength, TimeoutMs) })
}

/// Disconnects a connected socket (WskDisconnect): gracefully with `Flags` 0
/// (sends FIN after pending data), abortively with WSK_FLAG_ABORTIVE. The
/// socket must still be closed with SafeWskCloseSocket.
///
/// A graceful disconnect "might not complete" (PFN_WSK_DISCONNECT: the peer
/// may never acknowledge), and cancelling it is not the documented way out:
/// at the deadline safewsk resets the connection with an abortive
/// WskDisconnect instead (which ends the graceful one) and returns
/// STATUS_IO_TIMEOUT. A close that began meanwhile ends the graceful one
/// itself (no abortive WskDisconnect is issued then).
///
/// IRQL: <= APC_LEVEL.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (`Socket`, as for
/// SafeWskSend), _2 (`Flags`); STATUS_INVALID_LEVEL;
/// STATUS_INSUFFICIENT_RESOURCES; STATUS_IO_TIMEOUT (the connection was
/// reset); STATUS_NOT_SUPPORTED (the provider's dispatch table has no
/// WskDisconnect); or the provider's status.
///
/// # Safety
/// None beyond the IRQL: any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 640, x64-Debug 816, ARM64-Release 496, ARM64-Debug 592 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskDisconnect(Socket: *mut SAFEWSK_SOCKET, Flags: ULONG, TimeoutMs: ULONG) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { io::disconnect(Socket, Flags, TimeoutMs) })
}

/// Closes a socket (WskCloseSocket) and waits for the close to complete. WSK
/// cancels the socket's pending requests and, on a connection that is not
/// fully disconnected, performs an abortive disconnect; call
/// SafeWskDisconnect first for a graceful one. Every kind of socket handle
/// is accepted: a connection, listening or datagram socket's. Closing a
/// listening socket does not wait for the accepts pending on it: WSK
/// completes them, and they return (or call back) STATUS_CANCELLED; the
/// sockets already accepted stay open.
///
/// The close always consumes the handle: from the moment it is accepted
/// (anything but STATUS_INVALID_PARAMETER_1 and STATUS_INVALID_LEVEL), every
/// call with `Socket` — a second close included — is
/// STATUS_INVALID_PARAMETER_1, even once the slot serves another socket.
/// If the close cannot be issued (the I/O manager's completion context is
/// the one allocation that cannot be made in advance) or the provider
/// refuses it without completing its IRP (a breach of the I/O model,
/// reported), the socket becomes the library's: SafeWskCleanup closes it.
///
/// Calls on one socket may overlap, and this close may be one of them: a
/// receive waiting on another thread is completed by WSK when the socket is
/// closed, and returns. WSK forbids WskCloseSocket while another call is
/// still inside one of the socket's functions ("Closing a Socket"), so the
/// close first waits until the calls that began before it have returned
/// from their WSK function (a call still locking its buffer, say; the wait
/// is reported every few seconds while it lasts); it does not wait for
/// their IRPs, which WskCloseSocket completes. Calls that begin after it are
/// refused, and a graceful disconnect reaching its deadline meanwhile does
/// not start its abortive WskDisconnect.
///
/// Allocations: none of safewsk's own (the socket's IRP, unless another call
/// holds it: then one IRP, freed after); the I/O manager's completion
/// context. A spin lock is taken once, to put the socket's slot (and its
/// IRP) back for the next connect.
///
/// IRQL: <= APC_LEVEL.
///
/// Returns:
/// - STATUS_SUCCESS, or the provider's status for the close (the socket is
///   gone either way);
/// - STATUS_INVALID_PARAMETER_1: `Socket` is not an open socket's handle
///   (NULL, forged, already closed, being closed); the provider is not
///   called;
/// - STATUS_INVALID_LEVEL (the socket stays open);
/// - STATUS_INSUFFICIENT_RESOURCES: the close could not be issued (no
///   completion context or IRP), or 65,535 calls are in progress on the
///   socket; the handle is consumed and SafeWskCleanup closes the socket;
/// - STATUS_NOT_SUPPORTED: the socket's dispatch table has no WskCloseSocket;
/// - STATUS_UNSUCCESSFUL, or the provider's error, when it refused the close
///   without completing the IRP (SafeWskCleanup closes the socket).
///
/// # Safety
/// None beyond the IRQL: any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 416, x64-Debug 672, ARM64-Release 272, ARM64-Debug 400 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCloseSocket(Socket: *mut SAFEWSK_SOCKET) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { io::close(Socket) })
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
/// (WskSendBacklogEvent) — the connection socket's events
/// ("SO_WSK_EVENT_CALLBACK"). Each must have a non-NULL entry in the
/// Dispatch table the socket was created with (which safewsk recorded with
/// the socket): WSK would call a NULL entry.
///
/// The callbacks then run as WSK documents them: at IRQL <= DISPATCH_LEVEL,
/// on arbitrary threads, possibly before this function returns.
/// WskReceiveEvent's data indications belong to WSK; a callback that
/// returns STATUS_PENDING keeps them and must give them back with
/// SafeWskRelease before closing the socket; with
/// STATUS_DATA_NOT_ACCEPTED, WSK stops indicating until SafeWskReceive is
/// called. The context and table must stay valid until the socket is
/// closed.
///
/// Enabling takes no IRP ("A WSK application does not specify a pointer to
/// an IRP when calling the WskControlSocket function to enable event
/// callback functions"), so nothing is allocated and nothing waits. A
/// SafeWskCloseSocket on another thread waits until this call has returned
/// from WskControlSocket ("Closing a Socket").
///
/// IRQL: <= DISPATCH_LEVEL (above it, parameter 1 and the form of 2 are
/// checked before STATUS_INVALID_LEVEL; whether each event's callback is in
/// the socket's table is checked once the socket is acquired).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (`Socket`, as for
/// SafeWskSend), _2 (`EventMask` 0, a flag other than the three above —
/// WSK_EVENT_DISABLE included: use SafeWskDisableCallbacks —, or a flag
/// whose callback the socket's Dispatch table lacks, or any flag on a
/// socket created without a Dispatch table; the provider is not called);
/// STATUS_INVALID_LEVEL; STATUS_INSUFFICIENT_RESOURCES (65,535 calls in
/// progress on the socket); STATUS_NOT_SUPPORTED (the provider's table has
/// no WskControlSocket); STATUS_UNSUCCESSFUL (the provider pended a call it
/// was given no IRP for); or the provider's status (e.g.
/// STATUS_NOT_IMPLEMENTED from Wine 8, whose WskControlSocket is a stub).
///
/// # Safety
/// None beyond the IRQL: any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 272, x64-Debug 624, ARM64-Release 192, ARM64-Debug 400 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(DISPATCH_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskEnableCallbacks(Socket: *mut SAFEWSK_SOCKET, EventMask: ULONG) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { events::enable(Socket, EventMask) })
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
/// one deadline for all the flags; SAFEWSK_NO_TIMEOUT for none.
/// Allocations: per flag an IRP and the I/O manager's
/// IoSetCompletionRoutineEx context.
///
/// A SafeWskCloseSocket on another thread waits until the WskControlSocket
/// call in progress has returned (as for every call on the socket); a flag
/// not yet started when the close began is not disabled (the close ends the
/// callbacks): STATUS_INVALID_PARAMETER_1.
///
/// IRQL: <= APC_LEVEL (it waits).
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 and _2 as for
/// SafeWskEnableCallbacks (_1 also: the socket began to be closed between
/// two flags); STATUS_INVALID_LEVEL; STATUS_INSUFFICIENT_RESOURCES (IRP or
/// completion context); STATUS_IO_TIMEOUT (a callback still running at the
/// deadline: the flags before it are disabled, the rest may not be);
/// STATUS_NOT_SUPPORTED; or the provider's status.
///
/// # Safety
/// None beyond the IRQL: any `Socket` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 464, x64-Debug 832, ARM64-Release 352, ARM64-Debug 592 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskDisableCallbacks(
    Socket: *mut SAFEWSK_SOCKET,
    EventMask: ULONG,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { events::disable(Socket, EventMask, TimeoutMs) })
}

/// Gives back a data indication list that the socket's WskReceiveEvent
/// callback retained by returning STATUS_PENDING: the socket's WskRelease
/// ("PFN_WSK_RELEASE_DATA_INDICATION_LIST"), made through the handle.
///
/// It counts as a call of the socket's functions, so a SafeWskCloseSocket on
/// another thread waits until it has returned ("Closing a Socket"). It takes
/// no IRP, allocates nothing and does not wait, so it may be called at
/// DISPATCH_LEVEL, from a DPC or from another of the socket's callbacks.
///
/// Release every retained list before closing the socket: WSK does not
/// release them at close ("Closing the socket by calling the WskCloseSocket
/// function does not release any outstanding retained linked lists"). Once
/// the socket's close has begun (or SafeWskCleanup closed it) this call is
/// refused with STATUS_INVALID_PARAMETER_1 and a list still held can no
/// longer be given back: it stays with WSK.
///
/// IRQL: <= DISPATCH_LEVEL.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (`Socket`, as for
/// SafeWskSend), _2 (`DataIndication` NULL); STATUS_INVALID_LEVEL;
/// STATUS_INSUFFICIENT_RESOURCES (65,535 calls in progress on the socket);
/// STATUS_NOT_SUPPORTED (the provider's table has no WskRelease); or the
/// provider's status (STATUS_INVALID_PARAMETER for a list it does not know).
///
/// # Safety
/// `DataIndication` is NULL or a list this socket's WskReceiveEvent
/// callback was given and retained, not released yet.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 176, x64-Debug 464, ARM64-Release 112, ARM64-Debug 288 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(DISPATCH_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskRelease(
    Socket: *mut SAFEWSK_SOCKET,
    DataIndication: *mut WSK_DATA_INDICATION,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { io::control::release(Socket, DataIndication) })
}

/// A socket option or socket IOCTL that safewsk does not wrap by name:
/// WskControlSocket through the handle, with the socket's IRP, a deadline
/// and cancellation, as every socket call.
///
/// Only requests whose buffers safewsk knows how to check are accepted, each
/// with the exact sizes its Microsoft Learn page gives:
///
/// | RequestType | ControlCode | Level | InputSize | OutputSize | Socket kinds |
/// |---|---|---|---|---|---|
/// | WskSetOption | SO_KEEPALIVE | SOL_SOCKET | sizeof(ULONG) | 0 | connection, listening |
/// | WskGetOption | SO_KEEPALIVE | SOL_SOCKET | 0 | sizeof(ULONG) | connection, listening |
/// | WskSetOption | SO_RCVBUF | SOL_SOCKET | sizeof(ULONG) | 0 | every kind |
/// | WskGetOption | SO_RCVBUF | SOL_SOCKET | 0 | sizeof(ULONG) | every kind |
/// | WskSetOption | SO_BROADCAST | SOL_SOCKET | sizeof(ULONG) | 0 | datagram |
/// | WskGetOption | SO_BROADCAST | SOL_SOCKET | 0 | sizeof(ULONG) | datagram |
/// | WskSetOption | TCP_NODELAY | IPPROTO_TCP | sizeof(ULONG) | 0 | connection |
/// | WskGetOption | TCP_NODELAY | IPPROTO_TCP | 0 | sizeof(ULONG) | connection |
/// | WskIoctl | SIO_WSK_QUERY_IDEAL_SEND_BACKLOG | 0 | 0 | sizeof(SIZE_T) | connection |
///
/// (The kinds are what each option's WSK page says it applies to; a request
/// not allowed for the socket's kind is STATUS_INVALID_PARAMETER_3.)
///
/// SO_WSK_EVENT_CALLBACK is refused (use SafeWskEnableCallbacks and
/// SafeWskDisableCallbacks, which check the socket's Dispatch table), and so
/// is everything else (client-level controls are WskControlClient's). TCP_NODELAY
/// is a transport option that WSK passes to TCP/IP ("The underlying network
/// protocol might support additional socket options", PFN_WSK_CONTROL_SOCKET).
///
/// `InputBuffer` and `OutputBuffer` may be any kernel-mode memory, paged or
/// on the stack: the value travels through a buffer of safewsk's. The output
/// is written only on STATUS_SUCCESS. `OutputSizeReturned` (optional)
/// receives the bytes written. `TimeoutMs`: as for every call
/// (SAFEWSK_NO_TIMEOUT for none).
///
/// IRQL: <= APC_LEVEL.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_1 (`Socket` is not an
/// open socket's handle, of any kind), _2 (`RequestType` not WskSetOption,
/// WskGetOption or WskIoctl), _3 (`ControlCode` not allowed for that request
/// type on that kind of socket), _4
/// (`Level`), _5 (`InputSize`), _6 (`InputBuffer` NULL where a value is
/// needed, or non-NULL where none is), _7 (`OutputSize`), _8
/// (`OutputBuffer`, likewise); STATUS_INVALID_LEVEL;
/// STATUS_INSUFFICIENT_RESOURCES (completion context; an IRP only for
/// overlapping calls); STATUS_IO_TIMEOUT; STATUS_NOT_SUPPORTED (the
/// provider's table has no WskControlSocket); or the provider's status (e.g.
/// STATUS_NOT_IMPLEMENTED from Wine 8, whose WskControlSocket is a stub).
///
/// # Safety
/// `InputBuffer` is NULL or `InputSize` readable bytes; `OutputBuffer` is
/// NULL or `OutputSize` writable bytes; `OutputSizeReturned` is NULL or
/// writable; all valid for the call.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 400, x64-Debug 640, ARM64-Release 320, ARM64-Debug 448 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_max_(APC_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskControlSocket(
    Socket: *mut SAFEWSK_SOCKET,
    RequestType: WSK_CONTROL_SOCKET_TYPE,
    ControlCode: ULONG,
    Level: ULONG,
    InputSize: SIZE_T,
    InputBuffer: *const c_void,
    OutputSize: SIZE_T,
    OutputBuffer: *mut c_void,
    OutputSizeReturned: *mut SIZE_T,
    TimeoutMs: ULONG,
) -> NTSTATUS {
    if !OutputSizeReturned.is_null() {
        // SAFETY: non-null out pointer per the API contract.
        unsafe { *OutputSizeReturned = 0 };
    }
    let args = io::control::ControlArgs {
        request: RequestType,
        code: ControlCode,
        level: Level,
        input_size: InputSize,
        input: InputBuffer,
        output_size: OutputSize,
        output: OutputBuffer,
        returned: OutputSizeReturned,
        timeout_ms: TimeoutMs,
    };
    // SAFETY: the API contract.
    from_result(unsafe { io::control::control(Socket, args) })
}
