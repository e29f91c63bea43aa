//! WskSocket (connection sockets), WskControlSocket (WskSetOption /
//! WskGetOption), WskBind and WskConnect on real Linux sockets: the calls a
//! WSK application makes instead of WskSocketConnect when it must set a
//! socket option before binding or connecting ("PFN_WSK_SOCKET_CONNECT",
//! Microsoft Learn).
//!
//! Behaviour, with its source:
//! - WskSocket: only WSK_FLAG_CONNECTION_SOCKET, AF_INET / AF_INET6,
//!   SOCK_STREAM + IPPROTO_TCP are emulated ("WSK Address Families": the
//!   connection-oriented combination); other flags are reported as not
//!   emulated (a violation) and fail with STATUS_NOT_SUPPORTED.
//! - WskControlSocket: the SOL_SOCKET options whose WSK pages say they apply
//!   to connection-oriented sockets and that the library sets: SO_REUSEADDR,
//!   SO_EXCLUSIVEADDRUSE (both "must do so before the socket is bound"),
//!   SO_KEEPALIVE and SO_RCVBUF; each takes a ULONG (InputSize
//!   sizeof(ULONG)) and "A WSK application must specify a pointer to an IRP"
//!   (Microsoft Learn, "SO_KEEPALIVE", "SO_RCVBUF", "SO_REUSEADDR",
//!   "SO_EXCLUSIVEADDRUSE"). A wrong size or a NULL buffer completes with
//!   STATUS_INVALID_PARAMETER; an option or request type not emulated with
//!   STATUS_NOT_SUPPORTED; SO_REUSEADDR / SO_EXCLUSIVEADDRUSE after the bind
//!   with STATUS_INVALID_DEVICE_STATE; enabling both (Winsock: "Using
//!   SO_REUSEADDR and SO_EXCLUSIVEADDRUSE" — they exclude each other) with
//!   STATUS_INVALID_PARAMETER. Linux has no SO_EXCLUSIVEADDRUSE (its default
//!   is not to share), so the host records that option and reports it back
//!   through WskGetOption and [`socket_exclusive`].
//!   SO_WSK_EVENT_CALLBACK is left to the event-callback code.
//! - WskBind: Flags 0; an address of the socket's family.
//! - WskConnect before WskBind returns and completes
//!   STATUS_INVALID_DEVICE_STATE (Wine's dlls/ntoskrnl.exe/tests/
//!   driver_netio.c, whose expectations are run on Windows).
//!
//! Test controls: [`set_call_fault`] makes the nth call (or every call) of
//! one of these functions fail with a status (completing its IRP) or never
//! complete until cancelled.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::check::violation;
use crate::io::{complete, take};
use crate::irql;
use crate::nt::*;
use crate::wsk::{
    errno, errno_to_status, new_socket_with, refuse_without_completing, regs, run, run_op, sock_from, sockets,
    to_linux, Op, Sock, SockInner,
};

/// Windows' option levels and names (ws2def.h).
const SOL_SOCKET: u32 = 0xFFFF;
const SO_REUSEADDR: u32 = 0x0004;
const SO_KEEPALIVE: u32 = 0x0008;
const SO_RCVBUF: u32 = 0x1002;
const SO_BROADCAST: u32 = 0x0020;
const SO_EXCLUSIVEADDRUSE: u32 = !SO_REUSEADDR;
/// WSK_SO_BASE + 2 (wsk.h).
pub(crate) const SO_WSK_EVENT_CALLBACK: u32 = 0x4002;
const WSK_FLAG_CONNECTION_SOCKET: u32 = 0x0000_0002;
const WSK_SET_OPTION: i32 = 0;
const WSK_GET_OPTION: i32 = 1;
const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB_u32 as NTSTATUS;
const STATUS_INVALID_DEVICE_STATE: NTSTATUS = 0xC000_0184_u32 as NTSTATUS;

/// One of the emulated calls, for [`set_call_fault`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WskCall {
    Socket,
    ControlSocket,
    Bind,
    Connect,
    /// WskControlSocket(SO_WSK_EVENT_CALLBACK), counted apart from the
    /// options. Enabling takes no IRP: `Fail(status)` returns the status,
    /// `Never` returns STATUS_PENDING (which a provider cannot do without an
    /// IRP). Disabling: as for the other calls (`Delay` acts as `Never`).
    EventCallback,
    /// WskCloseSocket. Only [`CallFault::Refuse`] is honoured (a close that
    /// fails or never completes is not emulated: WSK closes the socket
    /// whatever it completes the IRP with).
    CloseSocket,
    /// WskAccept (`wsk_servers`): `Fail`, `Never`, `Delay` as for the others
    /// (a delayed accept takes its connection after the delay).
    Accept,
    /// WskSendTo.
    SendTo,
    /// WskReceiveFrom.
    ReceiveFrom,
}

/// What a faulted call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallFault {
    /// Completes its IRP with this status (STATUS_PENDING first, as usual).
    Fail(NTSTATUS),
    /// STATUS_PENDING, and no completion until IoCancelIrp.
    Never,
    /// STATUS_PENDING, and the call does its work only after this delay
    /// (cancelled meanwhile: STATUS_CANCELLED).
    Delay(std::time::Duration),
    /// Returns this status without taking or completing the IRP (a breach of
    /// the I/O model, as Wine 8's stubs commit; see
    /// `set_fail_without_completing`, which does it for every call). Only
    /// for [`WskCall::CloseSocket`]: the socket stays open.
    Refuse(NTSTATUS),
}

#[derive(Default)]
struct Faults {
    /// (call, nth (1-based; 0 = every call), fault).
    rules: Vec<(WskCall, u32, CallFault)>,
    counts: HashMap<WskCall, u32>,
}

static FAULTS: Mutex<Option<Faults>> = Mutex::new(None);

fn faults<R>(f: impl FnOnce(&mut Faults) -> R) -> R {
    let mut g = FAULTS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Faults::default))
}

/// Makes the `nth` call (counted from the session's start, 1-based; 0 =
/// every call) of `call` fail or never complete. Rules add up; a session's
/// start clears them.
pub fn set_call_fault(call: WskCall, nth: u32, fault: CallFault) {
    faults(|f| f.rules.push((call, nth, fault)));
}

/// Counts a call and returns the fault it gets, if any.
pub(crate) fn fault_for(call: WskCall) -> Option<CallFault> {
    faults(|f| {
        let n = f.counts.entry(call).or_insert(0);
        *n += 1;
        let n = *n;
        f.rules.iter().find(|(c, nth, _)| *c == call && (*nth == 0 || *nth == n)).map(|r| r.2)
    })
}

/// Counts a WskCloseSocket and returns the status to refuse it with
/// ([`CallFault::Refuse`]), if a rule says so.
pub(crate) fn close_refused() -> Option<NTSTATUS> {
    match fault_for(WskCall::CloseSocket)? {
        CallFault::Refuse(status) => Some(status),
        other => {
            violation(format!("{other:?} is not emulated for WskCloseSocket (only CallFault::Refuse)"));
            None
        }
    }
}

/// The state WskSocket sockets carry beyond a connected one.
#[derive(Clone, Copy)]
struct State {
    family: i32,
    bound: bool,
    exclusive: bool,
    reuse: bool,
    /// WSK_FLAG_CONNECTION_SOCKET, WSK_FLAG_LISTEN_SOCKET or
    /// WSK_FLAG_DATAGRAM_SOCKET.
    flags: u32,
}

/// Whether a socket from WskSocket is a listening socket that is bound
/// (and so listening: `wsk_bind`).
pub(crate) fn is_listening(socket: usize) -> Option<bool> {
    states(|s| s.get(&socket).map(|st| st.flags == WSK_FLAG_LISTEN_SOCKET).map(|l| l && is_bound(socket, s)))
}

fn is_bound(socket: usize, s: &HashMap<usize, State>) -> bool {
    s.get(&socket).is_some_and(|st| st.bound)
}

/// The WskSocket flags a socket was made with (None: a connected socket of
/// WskSocketConnect or WskAccept, or not open).
pub(crate) fn socket_flags(socket: usize) -> Option<u32> {
    states(|s| s.get(&socket).map(|st| st.flags))
}

static STATES: Mutex<Option<HashMap<usize, State>>> = Mutex::new(None);

fn states<R>(f: impl FnOnce(&mut HashMap<usize, State>) -> R) -> R {
    let mut g = STATES.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Called by Session::begin (through the provider's reset).
pub(crate) fn reset() {
    faults(|f| *f = Faults::default());
}

/// Forgets a closed socket's state (and stops its event callbacks).
pub(crate) fn forget(socket: usize) {
    states(|s| s.remove(&socket));
    crate::wsk_events::forget(socket);
}

/// The socket's send buffer size (the ideal send backlog told to
/// WskSendBacklogEvent).
pub(crate) fn sndbuf(fd: i32) -> usize {
    get_int(fd, libc::SOL_SOCKET, libc::SO_SNDBUF).map_or(0, |v| usize::try_from(v).unwrap_or(0))
}

/// The Linux descriptor behind an open WSK socket (from WskSocket or
/// WskSocketConnect), for tests that check options with getsockopt.
pub fn socket_fd(socket: *mut std::ffi::c_void) -> Option<i32> {
    if !sockets(|s| s.contains(&(socket as usize))) {
        return None;
    }
    // SAFETY: open sockets are live Socks until WskCloseSocket.
    Some(unsafe { &*(socket as *const Sock) }.inner.fd)
}

/// Whether SO_EXCLUSIVEADDRUSE is set on a socket from WskSocket (Linux has
/// no such option: the host records it). None for an unknown socket.
pub fn socket_exclusive(socket: *mut std::ffi::c_void) -> Option<bool> {
    states(|s| s.get(&(socket as usize)).map(|st| st.exclusive))
}

type Entry = unsafe extern "system" fn() -> NTSTATUS;
type SocketFn =
    unsafe extern "system" fn(PVOID, u16, u16, u32, u32, PVOID, PVOID, PVOID, PVOID, PVOID, PVOID) -> NTSTATUS;
type ControlFn =
    unsafe extern "system" fn(PVOID, i32, u32, u32, usize, PVOID, usize, PVOID, *mut usize, PVOID) -> NTSTATUS;
type AddressFn = unsafe extern "system" fn(PVOID, PVOID, u32, PVOID) -> NTSTATUS;

// The dispatch tables in nt.rs declare these entries without parameters;
// they are only stored there, and callers call them with their real type.
/// WskSocket for WSK_PROVIDER_DISPATCH.
// SAFETY: function pointers of one size; the entry is called only with
// PFN_WSK_SOCKET's signature, which is `wsk_socket`'s.
pub(crate) const WSK_SOCKET_ENTRY: Entry = unsafe { std::mem::transmute::<SocketFn, Entry>(wsk_socket) };
/// WskControlSocket for WSK_PROVIDER_CONNECTION_DISPATCH.
// SAFETY: as above, PFN_WSK_CONTROL_SOCKET's signature.
pub(crate) const WSK_CONTROL_SOCKET_ENTRY: Entry =
    unsafe { std::mem::transmute::<ControlFn, Entry>(wsk_control_socket) };
/// WskBind for WSK_PROVIDER_CONNECTION_DISPATCH.
// SAFETY: as above, PFN_WSK_BIND's signature.
pub(crate) const WSK_BIND_ENTRY: Entry = unsafe { std::mem::transmute::<AddressFn, Entry>(wsk_bind) };
/// WskConnect for WSK_PROVIDER_CONNECTION_DISPATCH.
// SAFETY: as above, PFN_WSK_CONNECT's signature.
pub(crate) const WSK_CONNECT_ENTRY: Entry = unsafe { std::mem::transmute::<AddressFn, Entry>(wsk_connect) };

/// Completes a taken IRP at once with `status` and returns it.
///
/// # Safety
/// `irp` was taken by the provider and not completed.
unsafe fn fail_now(irp: PVOID, status: NTSTATUS) -> NTSTATUS {
    // SAFETY: provider-owned IRP, completed once.
    unsafe { complete(irp, status, 0) };
    status
}

/// Runs a fault on a taken IRP: completes it with the status, or pends it
/// until cancelled.
pub(crate) fn run_fault(irp: PVOID, sock: Option<Arc<SockInner>>, fault: CallFault) -> NTSTATUS {
    run(irp, sock, move |op: &Op| match fault {
        CallFault::Fail(status) => (status, 0),
        CallFault::Never => {
            op.wait(-1, 0, None);
            (STATUS_CANCELLED, 0)
        }
        // Handled by each call (it does its work after the delay).
        CallFault::Delay(_) => (STATUS_UNSUCCESSFUL, 0),
        CallFault::Refuse(status) => {
            violation("CallFault::Refuse is emulated for WskCall::CloseSocket only");
            (status, 0)
        }
    })
}

fn linux_family(family: u16) -> Option<i32> {
    match family {
        WIN_AF_INET => Some(libc::AF_INET),
        WIN_AF_INET6 => Some(libc::AF_INET6),
        _ => None,
    }
}

unsafe extern "system" fn wsk_socket(
    client: PVOID,
    family: u16,
    socket_type: u16,
    protocol: u32,
    flags: u32,
    context: PVOID,
    dispatch: PVOID,
    _process: PVOID,
    _thread: PVOID,
    _sd: PVOID,
    irp: PVOID,
) -> NTSTATUS {
    if irql::current() > DISPATCH_LEVEL {
        violation("WskSocket above DISPATCH_LEVEL");
    }
    if let Some(status) = refuse_without_completing() {
        return status;
    }
    // Windows, as Wine's dlls/ntoskrnl.exe/tests/driver_netio.c
    // (test_wsk_listen_socket, whose expectations run on Windows) shows:
    // WskSocket(NULL client, ..., NULL Irp) returns STATUS_INVALID_PARAMETER,
    // and WskSocket(NULL client, ..., Irp) returns STATUS_INVALID_HANDLE
    // without completing the IRP (the test reuses it at once, and its next
    // wait on the completion event would end early had it been completed).
    if irp.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let reg = client as usize;
    if !regs(|r| r.contains(&reg)) {
        return STATUS_INVALID_HANDLE;
    }
    // SAFETY: the IRP is the caller's.
    if !unsafe { take(irp, "WskSocket") } {
        return STATUS_INVALID_PARAMETER;
    }
    // Connection and listening sockets are TCP, datagram sockets UDP ("WSK
    // Address Families": SOCK_STREAM + IPPROTO_TCP, SOCK_DGRAM +
    // IPPROTO_UDP); basic and stream sockets are not emulated.
    let (ltype, dispatch_table): (i32, *const WskConnectionDispatch) = match flags {
        WSK_FLAG_CONNECTION_SOCKET => (libc::SOCK_STREAM, &crate::wsk::CONNECTION_DISPATCH),
        WSK_FLAG_LISTEN_SOCKET => (libc::SOCK_STREAM, crate::wsk_servers::listen_dispatch()),
        WSK_FLAG_DATAGRAM_SOCKET => (libc::SOCK_DGRAM, crate::wsk_servers::datagram_dispatch()),
        _ => {
            violation(format!(
                "WskSocket with Flags {flags:#x}: only connection, listening and datagram sockets are emulated"
            ));
            // SAFETY: taken above, not completed.
            return unsafe { fail_now(irp, STATUS_NOT_SUPPORTED) };
        }
    };
    let Some(lfamily) = linux_family(family) else {
        // SAFETY: taken above, not completed.
        return unsafe { fail_now(irp, STATUS_INVALID_PARAMETER) };
    };
    let protocol_ok = if ltype == libc::SOCK_DGRAM {
        socket_type == SOCK_DGRAM && protocol == IPPROTO_UDP
    } else {
        socket_type == SOCK_STREAM && protocol == IPPROTO_TCP
    };
    if !protocol_ok {
        // SAFETY: taken above, not completed.
        return unsafe { fail_now(irp, STATUS_INVALID_PARAMETER) };
    }
    let dispatch_table = dispatch_table as usize;
    let (context, dispatch) = (context as usize, dispatch as usize);
    let mut delay = None;
    match fault_for(WskCall::Socket) {
        Some(CallFault::Delay(d)) => delay = Some(d),
        Some(fault) => return run_fault(irp, None, fault),
        None => {}
    }
    // A WskSocket IRP is a "connect" op for run_op: if a cancel routine
    // completes it inline meanwhile, the socket the work made is destroyed.
    run_op(irp, None, true, move |op| {
        if let Some(d) = delay {
            op.wait(-1, 0, Some(std::time::Instant::now() + d));
        }
        if op.is_cancelled() {
            return (STATUS_CANCELLED, 0);
        }
        // SAFETY: socket() takes no pointers; the descriptor is owned by the
        // socket made below.
        let fd = unsafe { libc::socket(lfamily, ltype | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return (errno_to_status(errno()), 0);
        }
        let sock = new_socket_with(fd, reg, dispatch_table as *const WskConnectionDispatch);
        states(|s| s.insert(sock, State { family: lfamily, bound: false, exclusive: false, reuse: false, flags }));
        crate::wsk_events::register(sock, context, dispatch);
        (STATUS_SUCCESS, sock)
    })
}

/// An int option on a Linux socket.
fn set_int(fd: i32, level: i32, name: i32, value: i32) -> NTSTATUS {
    // SAFETY: a valid int of the right size on our socket.
    let rc =
        unsafe { libc::setsockopt(fd, level, name, (&value as *const i32).cast(), std::mem::size_of::<i32>() as u32) };
    if rc == 0 {
        STATUS_SUCCESS
    } else {
        errno_to_status(errno())
    }
}

fn get_int(fd: i32, level: i32, name: i32) -> Result<i32, NTSTATUS> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as u32;
    // SAFETY: `v` is a writable int and `len` its size.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    if rc == 0 {
        Ok(v)
    } else {
        Err(errno_to_status(errno()))
    }
}

#[allow(clippy::too_many_arguments)] // PFN_WSK_CONTROL_SOCKET's ten parameters
unsafe extern "system" fn wsk_control_socket(
    socket: PVOID,
    request: i32,
    code: u32,
    level: u32,
    in_size: usize,
    in_buf: PVOID,
    out_size: usize,
    out_buf: PVOID,
    out_returned: *mut usize,
    irp: PVOID,
) -> NTSTATUS {
    if irql::current() > DISPATCH_LEVEL {
        violation("WskControlSocket above DISPATCH_LEVEL");
    }
    let _in_call = crate::wsk_in_call::enter(socket, "WskControlSocket");
    crate::wsk_in_call::control_delay();
    if level == SOL_SOCKET && code == SO_WSK_EVENT_CALLBACK {
        // SAFETY: forwarded caller arguments.
        return unsafe { crate::wsk_events::control(socket, request, in_size, in_buf, irp) };
    }
    if let Some(status) = refuse_without_completing() {
        return status;
    }
    if irp.is_null() {
        violation(format!(
            "WskControlSocket (option {code:#x}) without an IRP: \"A WSK application must specify a pointer to an IRP\""
        ));
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the IRP is the caller's.
    if !unsafe { take(irp, "WskControlSocket") } {
        return STATUS_INVALID_PARAMETER;
    }
    let Some(sock) = sock_from(socket, "WskControlSocket") else {
        // SAFETY: taken above, not completed.
        return unsafe { fail_now(irp, STATUS_INVALID_PARAMETER) };
    };
    let delay = match fault_for(WskCall::ControlSocket) {
        Some(CallFault::Delay(d)) => Some(d),
        Some(fault) => return run_fault(irp, Some(sock), fault),
        None => None,
    };
    let key = socket as usize;
    let fd = sock.fd;
    // SAFETY: the caller's buffers, as WskControlSocket's contract gives them.
    let more = unsafe {
        crate::wsk_control_more::control(fd, request, code, level, in_size, in_buf, out_size, out_buf, out_returned)
    };
    if let Some(done) = more {
        return run(irp, Some(sock), move |op| {
            if delay.is_some_and(|d| !op.wait(-1, 0, Some(std::time::Instant::now() + d))) {
                return (STATUS_CANCELLED, 0);
            }
            done
        });
    }
    let known = level == SOL_SOCKET
        && matches!(code, SO_REUSEADDR | SO_EXCLUSIVEADDRUSE | SO_KEEPALIVE | SO_RCVBUF | SO_BROADCAST);
    let (status, info): (NTSTATUS, usize) = match request {
        _ if !known => (STATUS_NOT_SUPPORTED, 0),
        WSK_SET_OPTION => {
            if in_size != 4 || in_buf.is_null() || out_size != 0 || !out_buf.is_null() {
                (STATUS_INVALID_PARAMETER, 0)
            } else {
                // SAFETY: a caller's ULONG (InputSize 4, non-NULL).
                let v: u32 = unsafe { rd(in_buf, 0) };
                (set_option(key, fd, code, v), 0)
            }
        }
        WSK_GET_OPTION => {
            if out_size != 4 || out_buf.is_null() || in_size != 0 {
                (STATUS_INVALID_PARAMETER, 0)
            } else {
                match get_option(key, fd, code) {
                    Ok(v) => {
                        // SAFETY: the caller's ULONG (OutputSize 4, non-NULL).
                        unsafe { wr(out_buf, 0, v) };
                        if !out_returned.is_null() {
                            // SAFETY: the caller's SIZE_T, or NULL.
                            unsafe { out_returned.write_unaligned(4) };
                        }
                        (STATUS_SUCCESS, 4)
                    }
                    Err(st) => (st, 0),
                }
            }
        }
        _ => (STATUS_NOT_SUPPORTED, 0),
    };
    // Completed from a provider thread like every request (STATUS_PENDING).
    run(irp, Some(sock), move |op| {
        if delay.is_some_and(|d| !op.wait(-1, 0, Some(std::time::Instant::now() + d))) {
            return (STATUS_CANCELLED, 0);
        }
        (status, info)
    })
}

fn set_option(key: usize, fd: i32, code: u32, v: u32) -> NTSTATUS {
    let Some(state) = states(|s| s.get(&key).copied()) else {
        // A socket from WskSocketConnect: bound and connected already.
        return match code {
            SO_KEEPALIVE => set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, i32::from(v != 0)),
            SO_RCVBUF => set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, i32::try_from(v).unwrap_or(i32::MAX)),
            _ => STATUS_INVALID_DEVICE_STATE,
        };
    };
    let datagram = state.flags == WSK_FLAG_DATAGRAM_SOCKET;
    match code {
        // "SO_BROADCAST": "applies only to datagram sockets"; "SO_KEEPALIVE":
        // listening and connection-oriented sockets only.
        SO_BROADCAST if !datagram => STATUS_INVALID_PARAMETER,
        SO_KEEPALIVE if datagram => STATUS_INVALID_PARAMETER,
        SO_BROADCAST => set_int(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, i32::from(v != 0)),
        SO_REUSEADDR | SO_EXCLUSIVEADDRUSE if state.bound => STATUS_INVALID_DEVICE_STATE,
        SO_REUSEADDR if v != 0 && state.exclusive => STATUS_INVALID_PARAMETER,
        SO_EXCLUSIVEADDRUSE if v != 0 && state.reuse => STATUS_INVALID_PARAMETER,
        SO_REUSEADDR => {
            let st = set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, i32::from(v != 0));
            if st == STATUS_SUCCESS {
                states(|s| s.get_mut(&key).map(|x| x.reuse = v != 0));
            }
            st
        }
        SO_EXCLUSIVEADDRUSE => {
            states(|s| s.get_mut(&key).map(|x| x.exclusive = v != 0));
            STATUS_SUCCESS
        }
        SO_KEEPALIVE => set_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, i32::from(v != 0)),
        SO_RCVBUF => set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, i32::try_from(v).unwrap_or(i32::MAX)),
        _ => STATUS_NOT_SUPPORTED,
    }
}

fn get_option(key: usize, fd: i32, code: u32) -> Result<u32, NTSTATUS> {
    let to_u32 = |v: i32| u32::try_from(v).unwrap_or(0);
    match code {
        SO_EXCLUSIVEADDRUSE => Ok(u32::from(states(|s| s.get(&key).is_some_and(|x| x.exclusive)))),
        SO_REUSEADDR => get_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR).map(to_u32),
        SO_KEEPALIVE => get_int(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE).map(to_u32),
        SO_RCVBUF => get_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF).map(to_u32),
        SO_BROADCAST if states(|s| s.get(&key).is_some_and(|x| x.flags == WSK_FLAG_DATAGRAM_SOCKET)) => {
            get_int(fd, libc::SOL_SOCKET, libc::SO_BROADCAST).map(to_u32)
        }
        SO_BROADCAST => Err(STATUS_INVALID_PARAMETER),
        _ => Err(STATUS_NOT_SUPPORTED),
    }
}

/// The socket, its Linux address and the delay to apply.
type Begun = (Arc<SockInner>, (libc::sockaddr_storage, u32, i32), Option<std::time::Duration>);

/// The common start of WskBind / WskConnect: take the IRP, find the socket,
/// apply a fault, read the address. Err is the status to return (the IRP is
/// completed or pending then).
///
/// # Safety
/// The caller's socket, address (NULL, or sized by its family) and IRP.
unsafe fn begin_address_call(
    socket: PVOID,
    address: PVOID,
    flags: u32,
    irp: PVOID,
    call: WskCall,
    who: &str,
) -> Result<Begun, NTSTATUS> {
    if irql::current() > DISPATCH_LEVEL {
        violation(format!("{who} above DISPATCH_LEVEL"));
    }
    if let Some(status) = refuse_without_completing() {
        return Err(status);
    }
    // SAFETY: the IRP is the caller's.
    if !unsafe { take(irp, who) } {
        return Err(STATUS_INVALID_PARAMETER);
    }
    let Some(sock) = sock_from(socket, who) else {
        // SAFETY: taken above, not completed.
        return Err(unsafe { fail_now(irp, STATUS_INVALID_PARAMETER) });
    };
    let delay = match fault_for(call) {
        Some(CallFault::Delay(d)) => Some(d),
        Some(fault) => return Err(run_fault(irp, Some(sock), fault)),
        None => None,
    };
    // SAFETY: the caller's SOCKADDR (contract).
    let addr = unsafe { to_linux(address) };
    let family = states(|s| s.get(&(socket as usize)).map(|x| x.family));
    match (addr, flags) {
        (Some(a), 0) if family == Some(a.2) => Ok((sock, a, delay)),
        // SAFETY: taken above, not completed.
        (Some(_), 0) => Err(unsafe { fail_now(irp, STATUS_INVALID_ADDRESS_COMPONENT) }),
        // SAFETY: as above.
        _ => Err(unsafe { fail_now(irp, STATUS_INVALID_PARAMETER) }),
    }
}

unsafe extern "system" fn wsk_bind(socket: PVOID, address: PVOID, flags: u32, irp: PVOID) -> NTSTATUS {
    // SAFETY: the caller's arguments.
    let (sock, addr, delay) = match unsafe { begin_address_call(socket, address, flags, irp, WskCall::Bind, "WskBind") }
    {
        Ok(v) => v,
        Err(status) => return status,
    };
    let key = socket as usize;
    if states(|s| s.get(&key).is_some_and(|x| x.bound)) {
        // SAFETY: taken by begin_address_call, not completed.
        return unsafe { fail_now(irp, STATUS_INVALID_DEVICE_STATE) };
    }
    let fd = sock.fd;
    let listening = states(|s| s.get(&key).is_some_and(|x| x.flags == WSK_FLAG_LISTEN_SOCKET));
    run(irp, Some(sock), move |op| {
        if delay.is_some_and(|d| !op.wait(-1, 0, Some(std::time::Instant::now() + d))) {
            return (STATUS_CANCELLED, 0);
        }
        // SAFETY: `addr.0` holds an address of `addr.1` bytes (to_linux).
        let rc = unsafe { libc::bind(fd, (&addr.0 as *const libc::sockaddr_storage).cast(), addr.1) };
        if rc != 0 {
            return (errno_to_status(errno()), 0);
        }
        // A listening socket listens once it is bound: "After a WSK
        // application has bound a listening socket to a local transport
        // address, the socket ... listen[s] for incoming connections"
        // (Listening for and Accepting Incoming Connections, Microsoft
        // Learn). WSK takes no backlog: the system's.
        // SAFETY: plain syscall on our socket.
        if listening && unsafe { libc::listen(fd, libc::SOMAXCONN) } != 0 {
            return (errno_to_status(errno()), 0);
        }
        states(|s| s.get_mut(&key).map(|x| x.bound = true));
        (STATUS_SUCCESS, 0)
    })
}

unsafe extern "system" fn wsk_connect(socket: PVOID, address: PVOID, flags: u32, irp: PVOID) -> NTSTATUS {
    // SAFETY: the caller's arguments.
    let (sock, addr, delay) =
        match unsafe { begin_address_call(socket, address, flags, irp, WskCall::Connect, "WskConnect") } {
            Ok(v) => v,
            Err(status) => return status,
        };
    let key = socket as usize;
    if !states(|s| s.get(&key).is_some_and(|x| x.bound)) {
        // Windows returns and completes STATUS_INVALID_DEVICE_STATE for a
        // WskConnect before WskBind (Wine's driver_netio.c, run on Windows).
        // SAFETY: taken by begin_address_call, not completed.
        return unsafe { fail_now(irp, STATUS_INVALID_DEVICE_STATE) };
    }
    let fd = sock.fd;
    run(irp, Some(sock), move |op| {
        if delay.is_some_and(|d| !op.wait(-1, 0, Some(std::time::Instant::now() + d))) {
            return (STATUS_CANCELLED, 0);
        }
        // SAFETY: `addr.0` holds an address of `addr.1` bytes (to_linux).
        let rc = unsafe { libc::connect(fd, (&addr.0 as *const libc::sockaddr_storage).cast(), addr.1) };
        if rc != 0 {
            let e = errno();
            if e != libc::EINPROGRESS {
                return (errno_to_status(e), 0);
            }
            if !op.wait(fd, libc::POLLOUT, None) {
                return (STATUS_CANCELLED, 0);
            }
            match get_int(fd, libc::SOL_SOCKET, libc::SO_ERROR) {
                Ok(0) => {}
                Ok(err) => return (errno_to_status(err), 0),
                Err(st) => return (st, 0),
            }
        }
        (STATUS_SUCCESS, 0)
    })
}
