//! WSK registration (WskRegister, WskCaptureProviderNPI, WskReleaseProviderNPI,
//! WskDeregister) and a WSK provider whose sockets are real Linux TCP sockets.
//!
//! Behaviour follows Microsoft Learn's wsk.h reference pages:
//! - WskCaptureProviderNPI: "STATUS_DEVICE_NOT_READY: the provider NPI was not
//!   yet available"; STATUS_NOINTERFACE when the client's WSK version is not
//!   supported; after WskDeregister further calls fail with
//!   STATUS_DEVICE_NOT_READY; a wait other than WSK_NO_WAIT requires
//!   PASSIVE_LEVEL.
//! - WskDeregister "blocks until all captured instances of the provider NPI
//!   are released ... and all sockets are closed": here that is reported as a
//!   violation instead of hanging the test.
//! - Every WSK function completes the IRP whatever it returns; STATUS_PENDING
//!   means it completes later, from another thread (here at DISPATCH_LEVEL).
//! - WskCloseSocket cancels the socket's pending IRPs and, on a connection not
//!   disconnected in both directions, disconnects abortively.
//!
//! Test controls: the provider can be made not ready (for a while), and
//! connects can complete asynchronously (default), synchronously, after a
//! delay, or never (until cancelled).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::check::{add_live, violation, Kind, PROVIDER_CALLS};
use crate::io::{complete, take, wsk_buf_pieces};
use crate::irql;
use crate::nt::*;

/// How the provider completes WskSocketConnect.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnectCompletion {
    /// STATUS_PENDING, then completion from a provider thread (Windows' usual way).
    Async,
    /// Complete before returning (every WSK call, not only connect).
    Sync,
    /// STATUS_PENDING, and the connect starts only after this delay.
    Delay(Duration),
    /// STATUS_PENDING, and no completion until IoCancelIrp.
    Never,
}

/// What the provider's cancel routine does. Windows permits each of these:
/// a cancel routine may complete the IRP on the canceller's thread, inside
/// IoCancelIrp ("Implementing a Cancel Routine"), or the IRP may not be
/// cancelable at all (no cancel routine: IoCancelIrp does nothing, as in
/// Wine 8.0's netio.sys).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CancelBehaviour {
    /// The cancel routine signals the worker, which completes the IRP with
    /// STATUS_CANCELLED on its own thread.
    Deferred,
    /// For WskSocketConnect IRPs, the cancel routine completes the IRP with
    /// STATUS_CANCELLED itself, inside IoCancelIrp (other IRPs: Deferred).
    Inline,
    /// IoCancelIrp has no effect: the IRP completes when its work does.
    Ignored,
    /// The cancel routine runs, but what it sets off (the request is woken
    /// and completes with STATUS_CANCELLED, as with `Deferred`) is held
    /// until [`release_held_cancels`]: a provider whose cancellation takes
    /// as long as a test needs, so that the IRP completes, cancelled, after
    /// the canceller (and a deadline) have moved on.
    Held,
}

/// Lets the cancellations held by [`CancelBehaviour::Held`] take effect:
/// each request whose cancel routine ran is woken and completes with
/// STATUS_CANCELLED (unless its work ended first). Returns how many there
/// were. `Session::begin` releases any left over.
pub fn release_held_cancels() -> usize {
    wsk_loop::release_held_cancels()
}

struct Config {
    ready_at: Option<Instant>,
    never_ready: bool,
    mode: ConnectCompletion,
    connect_error: Option<NTSTATUS>,
    cancel: CancelBehaviour,
    graceful_disconnect_hangs: bool,
    fail_without_completing: Option<NTSTATUS>,
    address_query_hangs: bool,
}

static CONFIG: Mutex<Config> = Mutex::new(Config {
    ready_at: None,
    never_ready: false,
    mode: ConnectCompletion::Async,
    connect_error: None,
    cancel: CancelBehaviour::Deferred,
    graceful_disconnect_hangs: false,
    fail_without_completing: None,
    address_query_hangs: false,
});

fn config<R>(f: impl FnOnce(&mut Config) -> R) -> R {
    f(&mut CONFIG.lock().unwrap_or_else(|e| e.into_inner()))
}

pub(crate) fn reset_provider() {
    config(|c| {
        c.ready_at = None;
        c.never_ready = false;
        c.mode = ConnectCompletion::Async;
        c.connect_error = None;
        c.cancel = CancelBehaviour::Deferred;
        c.graceful_disconnect_hangs = false;
        c.fail_without_completing = None;
        c.address_query_hangs = false;
    });
    crate::wsk_name::reset();
    crate::wsk_close_delay::reset();
    crate::wsk_abort_delay::reset();
    crate::wsk_in_call::reset();
    crate::wsk_control::reset();
    wsk_loop::release_held_cancels();
    // Blocks kept from an earlier session were checked at its end.
    let _ = crate::wsk_reuse::release();
}

/// Makes WskGetLocalAddress / WskGetRemoteAddress pend until cancelled
/// (PFN_WSK_GET_LOCAL_ADDRESS allows STATUS_PENDING: "The WSK subsystem
/// could not retrieve the local transport address for the socket
/// immediately").
pub fn set_address_query_hangs(on: bool) {
    config(|c| c.address_query_hangs = on);
}

/// Chooses what the provider's cancel routine does.
pub fn set_cancel_behaviour(b: CancelBehaviour) {
    config(|c| c.cancel = b);
}

/// As Wine 8's netio.sys (which sets no cancel routine on pending IRPs):
/// IoCancelIrp then has no effect and a request completes only when its work
/// does. The same as `set_cancel_behaviour(CancelBehaviour::Ignored)`.
pub fn set_provider_ignores_cancel(on: bool) {
    set_cancel_behaviour(if on { CancelBehaviour::Ignored } else { CancelBehaviour::Deferred });
}

/// Makes a graceful WskDisconnect never complete by itself (the peer never
/// acknowledges; "PFN_WSK_DISCONNECT": a graceful disconnect might not
/// complete): it ignores cancellation and completes only when the
/// connection is aborted (an abortive WskDisconnect) or the socket closed.
pub fn set_graceful_disconnect_hangs(on: bool) {
    config(|c| c.graceful_disconnect_hangs = on);
}

/// Makes every WSK socket function (connect, send, receive, disconnect,
/// close) return `status` without taking or completing the IRP, as Wine
/// 8.0's stub WskSocketConnect and WskDisconnect do; None restores them.
pub fn set_fail_without_completing(status: Option<NTSTATUS>) {
    config(|c| c.fail_without_completing = status);
}

pub(crate) fn refuse_without_completing() -> Option<NTSTATUS> {
    config(|c| c.fail_without_completing)
}

/// Makes WskSocketConnect fail with `status` (completing the IRP with it,
/// as the transport would) instead of connecting; None restores real connects.
pub fn set_connect_error(status: Option<NTSTATUS>) {
    config(|c| c.connect_error = status);
}

/// Makes the provider NPI unavailable (`false`) or available (`true`).
pub fn set_provider_ready(ready: bool) {
    config(|c| {
        c.never_ready = !ready;
        c.ready_at = None;
    });
}

/// Makes the provider NPI become available `after` from now (a boot-start
/// driver loading before NETIO is ready).
pub fn provider_ready_after(after: Duration) {
    config(|c| {
        c.never_ready = false;
        c.ready_at = Some(Instant::now() + after);
    });
}

/// Chooses how WskSocketConnect completes.
pub fn set_connect_completion(mode: ConnectCompletion) {
    config(|c| c.mode = mode);
}

fn provider_ready() -> bool {
    config(|c| !c.never_ready && c.ready_at.is_none_or(|t| Instant::now() >= t))
}

// ---------------------------------------------------------------------------
// Registration
// ---------------------------------------------------------------------------

pub(crate) struct Reg {
    version: u16,
    captures: AtomicU32,
    pub(crate) sockets: AtomicUsize,
    deregistered: AtomicBool,
}

static REGS: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

pub(crate) fn regs<R>(f: impl FnOnce(&mut HashSet<usize>) -> R) -> R {
    let mut g = REGS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashSet::new))
}

/// WSK_REGISTRATION.ReservedRegistrationContext is at offset 8.
const REG_CONTEXT: usize = 8;

fn reg_from(registration: PVOID, who: &str) -> Option<&'static Reg> {
    if registration.is_null() {
        violation(format!("{who}: NULL WSK_REGISTRATION"));
        return None;
    }
    // SAFETY: a WSK_REGISTRATION is 24 readable bytes.
    let ctx: usize = unsafe { rd(registration, REG_CONTEXT) };
    if !regs(|r| r.contains(&ctx)) {
        violation(format!("{who}: WSK_REGISTRATION at {registration:p} is not registered (or was freed/overwritten)"));
        return None;
    }
    // SAFETY: live registrations are leaked Boxes until WskDeregister.
    Some(unsafe { &*(ctx as *const Reg) })
}

#[no_mangle]
pub unsafe extern "system" fn WskRegister(client_npi: PVOID, registration: PVOID) -> NTSTATUS {
    if irql::current() != PASSIVE_LEVEL {
        violation("WskRegister above PASSIVE_LEVEL");
    }
    if client_npi.is_null() || registration.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: WSK_CLIENT_NPI { PVOID ClientContext; const WSK_CLIENT_DISPATCH *Dispatch; }.
    let dispatch: PVOID = unsafe { rd(client_npi, 8) };
    if dispatch.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: WSK_CLIENT_DISPATCH starts with USHORT Version.
    let version: u16 = unsafe { rd(dispatch, 0) };
    let reg = Box::into_raw(Box::new(Reg {
        version,
        captures: AtomicU32::new(0),
        sockets: AtomicUsize::new(0),
        deregistered: AtomicBool::new(false),
    }));
    regs(|r| r.insert(reg as usize));
    add_live(Kind::Registration, 1);
    // SAFETY: the caller's writable 24-byte WSK_REGISTRATION (non-null,
    // checked); its first 8 bytes hold the host's signature.
    unsafe { wr(registration, 0, 0x5753_4B52_4547_u64) };
    // SAFETY: as above; REG_CONTEXT is within its 24 bytes.
    unsafe { wr(registration, REG_CONTEXT, reg as usize) };
    STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn WskCaptureProviderNPI(registration: PVOID, wait_ms: u32, npi: PVOID) -> NTSTATUS {
    if wait_ms != WSK_NO_WAIT && irql::current() != PASSIVE_LEVEL {
        violation("WskCaptureProviderNPI with a wait above PASSIVE_LEVEL");
    }
    let Some(reg) = reg_from(registration, "WskCaptureProviderNPI") else {
        return STATUS_INVALID_PARAMETER;
    };
    if npi.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    if reg.version >> 8 != 1 {
        return STATUS_NOINTERFACE;
    }
    let deadline = match wait_ms {
        WSK_NO_WAIT => Some(Instant::now()),
        WSK_INFINITE_WAIT => None,
        ms => Some(Instant::now() + Duration::from_millis(u64::from(ms))),
    };
    while !provider_ready() {
        if reg.deregistered.load(Ordering::SeqCst) || deadline.is_some_and(|d| Instant::now() >= d) {
            return STATUS_DEVICE_NOT_READY;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    if reg.deregistered.load(Ordering::SeqCst) {
        return STATUS_DEVICE_NOT_READY;
    }
    reg.captures.fetch_add(1, Ordering::SeqCst);
    // SAFETY: the caller's writable WSK_PROVIDER_NPI (non-null, checked)
    // { PWSK_CLIENT Client; const WSK_PROVIDER_DISPATCH *Dispatch; }: Client at 0.
    unsafe { wr(npi, 0, reg as *const Reg as usize) };
    // SAFETY: as above; Dispatch at 8 (a static, valid for ever).
    unsafe { wr(npi, 8, &PROVIDER_DISPATCH as *const WskProviderDispatch as usize) };
    STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn WskReleaseProviderNPI(registration: PVOID) {
    if let Some(reg) = reg_from(registration, "WskReleaseProviderNPI") {
        if reg.captures.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_err() {
            violation("WskReleaseProviderNPI without a matching successful WskCaptureProviderNPI");
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn WskDeregister(registration: PVOID) {
    if irql::current() != PASSIVE_LEVEL {
        violation("WskDeregister above PASSIVE_LEVEL");
    }
    let Some(reg) = reg_from(registration, "WskDeregister") else { return };
    let captures = reg.captures.load(Ordering::SeqCst);
    let sockets = reg.sockets.load(Ordering::SeqCst);
    if captures != 0 || sockets != 0 {
        violation(format!(
            "WskDeregister with {captures} captured provider NPI(s) and {sockets} open socket(s): \
             on Windows it blocks until they are released and closed (unload hangs)"
        ));
    }
    reg.deregistered.store(true, Ordering::SeqCst);
    let ptr = reg as *const Reg as usize;
    regs(|r| r.remove(&ptr));
    add_live(Kind::Registration, -1);
    // SAFETY: the caller's WSK_REGISTRATION, live (reg_from found its
    // context); REG_CONTEXT is within its 24 bytes.
    unsafe { wr(registration, REG_CONTEXT, 0usize) };
    if sockets == 0 {
        // SAFETY: the Reg was a Box leaked by WskRegister; it was just removed
        // from the table and the registration no longer names it, and with
        // no open socket nothing else holds it, so this is its only free.
        drop(unsafe { Box::from_raw(ptr as *mut Reg) });
    }
}

// ---------------------------------------------------------------------------
// Pending operations and cancellation
// ---------------------------------------------------------------------------

#[path = "wsk_loop.rs"]
mod wsk_loop;
use wsk_loop::run_blocking;
pub(crate) use wsk_loop::run_ready;
pub(crate) use wsk_loop::Op;
pub(crate) use wsk_loop::Step;

struct SendPtr(PVOID);
// SAFETY: the pointer is only used by the one worker that owns the request.
unsafe impl Send for SendPtr {}

/// Runs `work`, which may block, for a provider-owned IRP and completes it:
/// on a provider thread of its own (returns STATUS_PENDING), or inline in
/// Sync mode (WskGetAddressInfo, wsk_name.rs). The socket operations use
/// the event loop instead (wsk_loop.rs, `run_ready`).
pub(crate) fn run(
    irp: PVOID,
    sock: Option<Arc<SockInner>>,
    work: impl FnOnce(&Op) -> (NTSTATUS, usize) + Send + 'static,
) -> NTSTATUS {
    run_op(irp, sock, false, work)
}

/// [`run`] for a WskSocketConnect IRP: if a cancel routine completed it
/// inline meanwhile, a socket the work made is closed again.
pub(crate) fn run_op(
    irp: PVOID,
    sock: Option<Arc<SockInner>>,
    connect: bool,
    work: impl FnOnce(&Op) -> (NTSTATUS, usize) + Send + 'static,
) -> NTSTATUS {
    run_blocking(irp, sock, connect, work)
}

// ---------------------------------------------------------------------------
// Sockets
// ---------------------------------------------------------------------------

pub(crate) struct SockInner {
    pub(crate) fd: i32,
    pub(crate) reg: usize,
    pub(crate) inflight: Mutex<Vec<Arc<Op>>>,
    idle: Condvar,
    sent_fin: AtomicBool,
    pub(crate) got_fin: AtomicBool,
    /// Reset by an abortive disconnect, or being closed.
    aborted: AtomicBool,
}

/// The WSK_SOCKET the provider hands out: `Dispatch` first, as WSK_SOCKET.
#[repr(C)]
pub(crate) struct Sock {
    dispatch: *const WskConnectionDispatch,
    pub(crate) inner: Arc<SockInner>,
}

static SOCKETS: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

pub(crate) fn sockets<R>(f: impl FnOnce(&mut HashSet<usize>) -> R) -> R {
    let mut g = SOCKETS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashSet::new))
}

/// The sockets currently open (WSK_SOCKET addresses), for teardown in
/// benchmarks and tests.
pub fn open_sockets() -> Vec<usize> {
    sockets(|s| s.iter().copied().collect())
}

/// How many requests (IRPs) of `socket` are pending in the provider now:
/// its sends, receives, disconnects and address queries not yet completed
/// (0 for a socket that is not open). For tests that must know a call has
/// reached the provider before they go on.
pub fn requests_in_flight(socket: PVOID) -> usize {
    let inner = sockets(|s| {
        // SAFETY: an open socket's Sock is live while it is in the set,
        // and the set's lock (held here) keeps a close from freeing it.
        s.contains(&(socket as usize)).then(|| unsafe { &*(socket as *const Sock) }.inner.clone())
    });
    inner.map_or(0, |i| i.inflight.lock().unwrap_or_else(|e| e.into_inner()).len())
}

pub(crate) fn sock_from(socket: PVOID, who: &str) -> Option<Arc<SockInner>> {
    if !sockets(|s| s.contains(&(socket as usize))) {
        violation(format!("{who}: {socket:p} is not an open WSK socket (closed already?)"));
        return None;
    }
    // SAFETY: open sockets are live Socks until WskCloseSocket.
    Some(unsafe { &*(socket as *const Sock) }.inner.clone())
}

/// Closes a socket nobody received (its connect was completed as cancelled
/// meanwhile).
fn destroy_socket(socket: usize) {
    if !sockets(|s| s.remove(&socket)) {
        return;
    }
    // SAFETY: an open socket's block; removed from the set just now, so
    // this is its only release.
    let inner = unsafe { crate::wsk_reuse::free(socket as *mut Sock) }.inner;
    crate::wsk_control::forget(socket);
    set_abortive(inner.fd);
    // SAFETY: our socket's descriptor; the Sock that owned it was just
    // dropped and nothing else closes it.
    unsafe { libc::close(inner.fd) };
    // SAFETY: the socket's registration, a leaked Box that WskDeregister
    // does not free while this socket is counted in `sockets`.
    let reg = unsafe { &*(inner.reg as *const Reg) };
    reg.sockets.fetch_sub(1, Ordering::SeqCst);
    add_live(Kind::Socket, -1);
}

/// SO_LINGER {on, 0}: the close (or shutdown) resets the connection, which
/// is what an abortive WSK disconnect does.
fn set_abortive(fd: i32) {
    let l = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: a valid option value of the right size on our socket.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&l as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as u32,
        )
    };
}

pub(crate) fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Linux errno -> the NTSTATUS the Windows transport reports.
pub fn errno_to_status(e: i32) -> NTSTATUS {
    match e {
        libc::ECONNREFUSED => STATUS_CONNECTION_REFUSED,
        libc::ETIMEDOUT => STATUS_IO_TIMEOUT,
        libc::ENETUNREACH | libc::ENETDOWN => STATUS_NETWORK_UNREACHABLE,
        libc::EHOSTUNREACH | libc::EHOSTDOWN => STATUS_HOST_UNREACHABLE,
        // Address in use: STATUS_ADDRESS_ALREADY_EXISTS, per Microsoft Learn's
        // "Sharing Transport Addresses" (WSK, INUSE) and WireGuard-NT's
        // driver/socket.c (retries on it); Wine's ALREADY_ASSOCIATED is its
        // own netio mapping (see tests/host_windows.rs).
        libc::EADDRINUSE => STATUS_ADDRESS_ALREADY_EXISTS,
        libc::EADDRNOTAVAIL | libc::EAFNOSUPPORT => STATUS_INVALID_ADDRESS_COMPONENT,
        libc::ECONNRESET | libc::EPIPE => STATUS_CONNECTION_RESET,
        libc::ECONNABORTED => STATUS_CONNECTION_ABORTED,
        // A broadcast without SO_BROADCAST (Winsock's WSAEACCES).
        libc::EACCES => STATUS_ACCESS_DENIED,
        // A datagram larger than the transport allows (WSAEMSGSIZE).
        libc::EMSGSIZE => STATUS_BUFFER_OVERFLOW,
        libc::ENOMEM | libc::ENOBUFS | libc::EMFILE | libc::ENFILE => STATUS_INSUFFICIENT_RESOURCES,
        libc::EINVAL => STATUS_INVALID_PARAMETER,
        _ => STATUS_UNSUCCESSFUL,
    }
}

/// A Windows SOCKADDR_IN / SOCKADDR_IN6 as a Linux sockaddr_storage.
pub(crate) unsafe fn to_linux(sa: PVOID) -> Option<(libc::sockaddr_storage, libc::socklen_t, i32)> {
    if sa.is_null() {
        return None;
    }
    // SAFETY: sockaddr_storage is plain C data; all zeroes is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let storage = (&mut ss as *mut libc::sockaddr_storage).cast::<u8>();
    // SAFETY: a caller-supplied, non-null SOCKADDR (contract); every family
    // starts with its USHORT sa_family at 0.
    match unsafe { rd::<u16>(sa, 0) } {
        WIN_AF_INET => {
            // The family says the caller's buffer is a 16-byte SOCKADDR_IN.
            // SAFETY: sin_port is at 2 of the SOCKADDR_IN.
            let port = unsafe { rd(sa, 2) };
            // SAFETY: sin_addr is at 4 of the SOCKADDR_IN.
            let addr = unsafe { rd(sa, 4) };
            // SAFETY: sockaddr_in is plain C data; all zeroes is valid.
            let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_port = port;
            sin.sin_addr.s_addr = addr;
            // SAFETY: sockaddr_storage is large and aligned enough for every
            // sockaddr, sockaddr_in among them; `ss` is a writable local.
            unsafe { storage.cast::<libc::sockaddr_in>().write(sin) };
            Some((ss, std::mem::size_of::<libc::sockaddr_in>() as u32, libc::AF_INET))
        }
        WIN_AF_INET6 => {
            // The family says the caller's buffer is a 28-byte SOCKADDR_IN6.
            // SAFETY: sin6_port is at 2 of the SOCKADDR_IN6.
            let port = unsafe { rd(sa, 2) };
            // SAFETY: sin6_flowinfo is at 4 of the SOCKADDR_IN6.
            let flowinfo = unsafe { rd(sa, 4) };
            // SAFETY: the 16 bytes of sin6_addr are at 8 of the SOCKADDR_IN6.
            let addr = unsafe { rd(sa, 8) };
            // SAFETY: sin6_scope_id is at 24 of the SOCKADDR_IN6.
            let scope_id = unsafe { rd(sa, 24) };
            // SAFETY: sockaddr_in6 is plain C data; all zeroes is valid.
            let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_port = port;
            sin6.sin6_flowinfo = flowinfo;
            sin6.sin6_addr.s6_addr = addr;
            sin6.sin6_scope_id = scope_id;
            // SAFETY: sockaddr_storage is large and aligned enough for every
            // sockaddr, sockaddr_in6 among them; `ss` is a writable local.
            unsafe { storage.cast::<libc::sockaddr_in6>().write(sin6) };
            Some((ss, std::mem::size_of::<libc::sockaddr_in6>() as u32, libc::AF_INET6))
        }
        _ => None,
    }
}

/// Opens and binds a non-blocking TCP socket and starts its connect:
/// Ok((fd, true)) while the connect is in progress (the socket becomes
/// writable when it ends), Ok((fd, false)) if it connected at once.
fn connect_start(
    local: (libc::sockaddr_storage, u32, i32),
    remote: (libc::sockaddr_storage, u32, i32),
) -> Result<(i32, bool), NTSTATUS> {
    // SAFETY: socket() takes no pointers; the descriptor it returns is
    // owned by this function until it returns it.
    let fd = unsafe { libc::socket(local.2, libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(errno_to_status(errno()));
    }
    let fail = |status: NTSTATUS| {
        // SAFETY: `fd` was opened above and is still owned here: it is closed
        // only on a failure, which never returns it.
        unsafe { libc::close(fd) };
        Err(status)
    };
    // SAFETY: `local.0` holds an address of `local.1` bytes (to_linux built
    // it), readable for the call.
    if unsafe { libc::bind(fd, (&local.0 as *const libc::sockaddr_storage).cast(), local.1) } != 0 {
        return fail(errno_to_status(errno()));
    }
    // SAFETY: as for bind, with `remote`.
    if unsafe { libc::connect(fd, (&remote.0 as *const libc::sockaddr_storage).cast(), remote.1) } != 0 {
        let e = errno();
        if e != libc::EINPROGRESS {
            return fail(errno_to_status(e));
        }
        return Ok((fd, true));
    }
    Ok((fd, false))
}

/// The result of a connect in progress on `fd` that became writable: Ok, or
/// its error (the descriptor is then closed).
fn connect_end(fd: i32) -> Result<i32, NTSTATUS> {
    let mut err: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as u32;
    // SAFETY: `err` is a writable int and `len` holds its size, as
    // SO_ERROR requires.
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_ERROR, (&mut err as *mut i32).cast(), &mut len) };
    if err != 0 {
        // SAFETY: the connecting descriptor, owned by its request, closed
        // once (it is not returned).
        unsafe { libc::close(fd) };
        return Err(errno_to_status(err));
    }
    Ok(fd)
}

/// A new open WSK socket for the connected `fd` of registration `reg`.
pub(crate) fn new_socket(fd: i32, reg: usize) -> usize {
    new_socket_with(fd, reg, &CONNECTION_DISPATCH)
}

/// A new open WSK socket for `fd` of registration `reg` whose Dispatch is
/// `dispatch` (the connection table, or a listening or datagram socket's,
/// `wsk_servers`): every table begins with WskControlSocket and
/// WskCloseSocket.
pub(crate) fn new_socket_with(fd: i32, reg: usize, dispatch: *const WskConnectionDispatch) -> usize {
    let inner = Arc::new(SockInner {
        fd,
        reg,
        inflight: Mutex::new(Vec::new()),
        idle: Condvar::new(),
        sent_fin: AtomicBool::new(false),
        got_fin: AtomicBool::new(false),
        aborted: AtomicBool::new(false),
    });
    // A fresh block, or the most recently freed one (set_reuse_socket_addresses).
    let sock = crate::wsk_reuse::allocate(Sock { dispatch, inner });
    sockets(|s| s.insert(sock as usize));
    // SAFETY: `reg` is live: checked by WskSocketConnect, and a registration
    // with open sockets is never freed.
    unsafe { &*(reg as *const Reg) }.sockets.fetch_add(1, Ordering::SeqCst);
    add_live(Kind::Socket, 1);
    sock as usize
}

unsafe extern "system" fn wsk_socket_connect(
    client: PVOID,
    socket_type: u16,
    protocol: u32,
    local: PVOID,
    remote: PVOID,
    flags: u32,
    context: PVOID,
    dispatch: PVOID,
    _process: PVOID,
    _thread: PVOID,
    sd: PVOID,
    irp: PVOID,
) -> NTSTATUS {
    PROVIDER_CALLS.fetch_add(1, Ordering::SeqCst);
    if irql::current() > DISPATCH_LEVEL {
        violation("WskSocketConnect above DISPATCH_LEVEL");
    }
    if let Some(status) = refuse_without_completing() {
        return status;
    }
    // A cached security descriptor in use until the IRP completes.
    let sd_use = crate::wsk_client_control::connect_uses(sd);
    // SAFETY: the IRP is the caller's.
    if !unsafe { take(irp, "WskSocketConnect") } {
        return STATUS_INVALID_PARAMETER;
    }
    let reg = client as usize;
    // SAFETY: the caller's local SOCKADDR (NULL, or sized by its family).
    let checked_local = unsafe { to_linux(local) };
    // SAFETY: the caller's remote SOCKADDR (NULL, or sized by its family).
    let checked_remote = unsafe { to_linux(remote) };
    let addrs = (checked_local, checked_remote);
    let bad = !regs(|r| r.contains(&reg)) || socket_type != SOCK_STREAM || protocol != IPPROTO_TCP || flags != 0;
    let (Some(checked_local), Some(checked_remote), false) = (addrs.0, addrs.1, bad) else {
        // SAFETY: provider-owned IRP, completed once.
        unsafe { complete(irp, STATUS_INVALID_PARAMETER, 0) };
        return STATUS_INVALID_PARAMETER;
    };
    if checked_local.2 != checked_remote.2 {
        // SAFETY: provider-owned IRP, completed once.
        unsafe { complete(irp, STATUS_INVALID_ADDRESS_COMPONENT, 0) };
        return STATUS_INVALID_ADDRESS_COMPONENT;
    }
    let (mode, injected) = config(|c| (c.mode, c.connect_error));
    // The addresses were read above to validate them; they are read again
    // when the connect starts, on the worker: WSK may use the caller's
    // buffers until the IRP completes, so a caller that frees them earlier
    // connects to garbage here, as it could on Windows.
    let (local_ptr, remote_ptr) = (local as usize, remote as usize);
    let (context, dispatch) = (context as usize, dispatch as usize);
    // Steps of the connect on the provider's event loop: the delay or hang
    // of the chosen mode, then the connect, then its end (writable socket).
    let mut connecting = -1;
    let mut start_at: Option<Instant> = None;
    run_ready(irp, None, true, move |op| {
        // The cached security descriptor stays in use until the request ends
        // (the task, and this capture, are dropped when it is done).
        let _sd_use = &sd_use;
        if connecting >= 0 {
            let fd = connecting;
            if op.is_cancelled() {
                // SAFETY: the connecting descriptor, owned by this request,
                // closed once (the request ends here).
                unsafe { libc::close(fd) };
                return Step::Done(STATUS_CANCELLED, 0);
            }
            if op.take_ready() == 0 {
                return Step::Wait(fd, libc::EPOLLOUT as u32);
            }
            return match connect_end(fd) {
                Err(status) => Step::Done(status, 0),
                Ok(fd) => {
                    Step::Done(STATUS_SUCCESS, crate::wsk_events::registered(new_socket(fd, reg), context, dispatch))
                }
            };
        }
        if let Some(status) = injected {
            return Step::Done(status, 0);
        }
        match mode {
            ConnectCompletion::Never => {
                return if op.is_cancelled() { Step::Done(STATUS_CANCELLED, 0) } else { Step::Park };
            }
            ConnectCompletion::Delay(d) => {
                let at = *start_at.get_or_insert_with(|| Instant::now() + d);
                if op.is_cancelled() {
                    return Step::Done(STATUS_CANCELLED, 0);
                }
                if Instant::now() < at {
                    return Step::Until(at);
                }
            }
            ConnectCompletion::Async | ConnectCompletion::Sync => {}
        }
        // SAFETY: the caller keeps the local address valid until completion
        // (the WSK contract this re-read exercises).
        let local = unsafe { to_linux(local_ptr as PVOID) };
        // SAFETY: as for the local address.
        let remote = unsafe { to_linux(remote_ptr as PVOID) };
        let addrs = (local, remote);
        let (local, remote) = match addrs {
            (Some(l), Some(r)) if l.2 == r.2 => (l, r),
            _ => return Step::Done(STATUS_INVALID_ADDRESS_COMPONENT, 0),
        };
        match connect_start(local, remote) {
            Err(status) => Step::Done(status, 0),
            Ok((fd, false)) => {
                Step::Done(STATUS_SUCCESS, crate::wsk_events::registered(new_socket(fd, reg), context, dispatch))
            }
            Ok((fd, true)) => {
                if op.is_cancelled() {
                    // SAFETY: the descriptor just opened, owned here, closed once.
                    unsafe { libc::close(fd) };
                    return Step::Done(STATUS_CANCELLED, 0);
                }
                // On loopback the handshake has usually completed inside
                // connect() already: look once before waiting on the loop.
                let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                // SAFETY: `p` is one writable pollfd; a zero timeout.
                if unsafe { libc::poll(&mut p, 1, 0) } == 1 {
                    return match connect_end(fd) {
                        Err(status) => Step::Done(status, 0),
                        Ok(fd) => Step::Done(
                            STATUS_SUCCESS,
                            crate::wsk_events::registered(new_socket(fd, reg), context, dispatch),
                        ),
                    };
                }
                connecting = fd;
                Step::Wait(fd, libc::EPOLLOUT as u32)
            }
        }
    })
}

/// One contiguous piece of an MDL-described buffer: address and length.
pub(crate) type Piece = (*mut u8, usize);

pub(crate) struct Pieces(pub(crate) Vec<Piece>);
// SAFETY: the buffers stay valid until the IRP completes (WSK contract) and
// only the one worker writes them.
unsafe impl Send for Pieces {}

/// The common start of a socket request: take the IRP, find the socket and
/// the buffer pieces. On failure the IRP is completed and the status to
/// return is given back.
pub(crate) unsafe fn begin_socket_io(
    irp: PVOID,
    socket: PVOID,
    buf: PVOID,
    who: &str,
) -> Result<(Arc<SockInner>, Vec<Piece>), NTSTATUS> {
    if let Some(status) = refuse_without_completing() {
        return Err(status);
    }
    // SAFETY: the IRP is the caller's.
    if !unsafe { take(irp, who) } {
        return Err(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: a WSK_BUF from the caller, or NULL.
    match (sock_from(socket, who), unsafe { wsk_buf_pieces(buf) }) {
        (Some(sock), Some(pieces)) => Ok((sock, pieces)),
        _ => {
            // SAFETY: provider-owned IRP, completed once.
            unsafe { complete(irp, STATUS_INVALID_PARAMETER, 0) };
            Err(STATUS_INVALID_PARAMETER)
        }
    }
}

unsafe extern "system" fn wsk_send(socket: PVOID, buf: PVOID, _flags: u32, irp: PVOID) -> NTSTATUS {
    let _in_call = crate::wsk_in_call::enter(socket, "WskSend");
    // SAFETY: the caller's IRP, socket and buffer.
    let (sock, pieces) = match unsafe { begin_socket_io(irp, socket, buf, "WskSend") } {
        Ok(v) => v,
        Err(status) => return status,
    };
    // WSK reads the buffer while sending; a copy taken now is equivalent for
    // a caller that (as required) leaves it alone until completion.
    let mut data = Vec::new();
    for (p, n) in pieces {
        // SAFETY: MDL-described memory, valid until completion.
        data.extend_from_slice(unsafe { std::slice::from_raw_parts(p, n) });
    }
    let s = sock.clone();
    let mut sent = 0;
    run_ready(irp, Some(sock), false, move |op| {
        while sent < data.len() {
            let rest = &data[sent..];
            // SAFETY: `rest` is readable for its length; `s.fd` is our socket.
            let n = unsafe { libc::send(s.fd, rest.as_ptr().cast(), rest.len(), libc::MSG_NOSIGNAL) };
            if n >= 0 {
                sent += n as usize;
                continue;
            }
            let e = errno();
            if e != libc::EAGAIN {
                return Step::Done(errno_to_status(e), sent);
            }
            if op.is_cancelled() {
                return Step::Done(STATUS_CANCELLED, sent);
            }
            return Step::Wait(s.fd, libc::EPOLLOUT as u32);
        }
        Step::Done(STATUS_SUCCESS, sent)
    })
}

unsafe extern "system" fn wsk_receive(socket: PVOID, buf: PVOID, flags: u32, irp: PVOID) -> NTSTATUS {
    let _in_call = crate::wsk_in_call::enter(socket, "WskReceive");
    crate::wsk_events::on_receive(socket as usize);
    // SAFETY: the caller's IRP, socket and buffer.
    let (sock, pieces) = match unsafe { begin_socket_io(irp, socket, buf, "WskReceive") } {
        Ok(v) => v,
        Err(status) => return status,
    };
    let pieces = Pieces(pieces);
    let s = sock.clone();
    let want: usize = pieces.0.iter().map(|(_, n)| n).sum();
    let mut got = Vec::new();
    run_ready(irp, Some(sock), false, move |op| {
        let pieces = &pieces;
        let mut status = STATUS_SUCCESS;
        while got.len() < want {
            let mut tmp = vec![0u8; want - got.len()];
            // SAFETY: our socket and a buffer of tmp.len() bytes.
            let n = unsafe { libc::recv(s.fd, tmp.as_mut_ptr().cast(), tmp.len(), 0) };
            if n > 0 {
                got.extend_from_slice(&tmp[..n as usize]);
                if flags & WSK_FLAG_WAITALL == 0 {
                    break;
                }
                continue;
            }
            if n == 0 {
                s.got_fin.store(true, Ordering::SeqCst);
                break;
            }
            let e = errno();
            if e != libc::EAGAIN {
                status = errno_to_status(e);
                break;
            }
            if op.is_cancelled() {
                status = STATUS_CANCELLED;
                break;
            }
            return Step::Wait(s.fd, libc::EPOLLIN as u32);
        }
        let mut at = 0;
        for (p, n) in &pieces.0 {
            let k = (*n).min(got.len() - at);
            // SAFETY: `*p` is MDL-described writable memory of `*n` >= k
            // bytes, valid until completion; `got[at..]` has at least k
            // bytes; a Vec of ours does not overlap the caller's buffer.
            unsafe { std::ptr::copy_nonoverlapping(got[at..].as_ptr(), *p, k) };
            at += k;
        }
        Step::Done(status, got.len())
    })
}

unsafe extern "system" fn wsk_disconnect(socket: PVOID, buf: PVOID, flags: u32, irp: PVOID) -> NTSTATUS {
    let _in_call = crate::wsk_in_call::enter(socket, "WskDisconnect");
    if !buf.is_null() {
        violation("WskDisconnect with a final buffer is not emulated");
    }
    // SAFETY: the caller's IRP and socket.
    let (sock, _) = match unsafe { begin_socket_io(irp, socket, std::ptr::null_mut(), "WskDisconnect") } {
        Ok(v) => v,
        Err(status) => return status,
    };
    let s = sock.clone();
    let hangs = flags & WSK_FLAG_ABORTIVE == 0 && config(|c| c.graceful_disconnect_hangs);
    let slow_abort = crate::wsk_abort_delay::abortive_done_at(flags);
    let mut reset = false;
    run_ready(irp, Some(sock), false, move |op| {
        if hangs {
            // The peer never acknowledges: cancellation is ignored; only an
            // abortive disconnect or the close ends this (both wake it).
            if !s.aborted.load(Ordering::SeqCst) {
                return Step::Park;
            }
            return Step::Done(STATUS_CONNECTION_ABORTED, 0);
        }
        if flags & WSK_FLAG_ABORTIVE != 0 {
            if !std::mem::replace(&mut reset, true) {
                set_abortive(s.fd);
                // SAFETY: shutdown takes no pointers; `s.fd` is our socket, open
                // until the close drains this request.
                unsafe { libc::shutdown(s.fd, libc::SHUT_RDWR) };
                s.aborted.store(true, Ordering::SeqCst);
                wsk_loop::wake_inflight(&s);
            }
            if let Some(step) = crate::wsk_abort_delay::pending(slow_abort, op.is_cancelled()) {
                return step;
            }
        } else {
            // SAFETY: as above.
            let rc = unsafe { libc::shutdown(s.fd, libc::SHUT_WR) };
            if rc != 0 {
                return Step::Done(errno_to_status(errno()), 0);
            }
        }
        s.sent_fin.store(true, Ordering::SeqCst);
        Step::Done(STATUS_SUCCESS, 0)
    })
}

pub(crate) unsafe extern "system" fn wsk_close_socket(socket: PVOID, irp: PVOID) -> NTSTATUS {
    if let Some(status) = refuse_without_completing().or_else(crate::wsk_control::close_refused) {
        return status;
    }
    // SAFETY: the IRP is the caller's.
    if !unsafe { take(irp, "WskCloseSocket") } {
        return STATUS_INVALID_PARAMETER;
    }
    crate::wsk_in_call::check_close(socket);
    if !sockets(|s| s.remove(&(socket as usize))) {
        violation(format!("WskCloseSocket: {socket:p} is not an open WSK socket (closed twice?)"));
        // SAFETY: provider-owned IRP, completed once.
        unsafe { complete(irp, STATUS_INVALID_PARAMETER, 0) };
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: an open socket's block; it was just removed from the set, so
    // this is its only release.
    let inner = unsafe { crate::wsk_reuse::free(socket as *mut Sock) }.inner;
    let not_before = crate::wsk_close_delay::close_not_before();
    crate::wsk_control::forget(socket as usize);
    run_ready(irp, None, false, move |op| {
        // A close that takes its time (set_close_delay) before it ends
        // anything: the WSK_SOCKET is gone for the caller already.
        if let Some(at) = not_before {
            if Instant::now() < at {
                return Step::Until(at);
            }
        }
        // Or until the test lets it go (hold::HoldPoint::CloseSocket).
        if crate::hold::park(crate::hold::HoldPoint::CloseSocket, op) {
            return Step::Park;
        }
        // Cancel and drain the socket's pending requests: this step runs
        // again when the last of them has completed.
        inner.aborted.store(true, Ordering::SeqCst);
        wsk_loop::cancel_inflight(&inner);
        if !wsk_loop::idle_or_notify(&inner, op) {
            return Step::Park;
        }
        if !(inner.sent_fin.load(Ordering::SeqCst) && inner.got_fin.load(Ordering::SeqCst)) {
            set_abortive(inner.fd);
        }
        // SAFETY: our socket's descriptor; its requests are drained and the
        // Sock is gone, so nothing uses or closes it any more.
        unsafe { libc::close(inner.fd) };
        // SAFETY: the socket's registration, a leaked Box that is freed only
        // once the last of its sockets (this one included) is gone.
        let reg = unsafe { &*(inner.reg as *const Reg) };
        if reg.sockets.fetch_sub(1, Ordering::SeqCst) == 1 && reg.deregistered.load(Ordering::SeqCst) {
            // SAFETY: WskDeregister ran and left the Reg to its last socket,
            // which this is: no other reference remains, and `reg` is not
            // used after this.
            drop(unsafe { Box::from_raw(inner.reg as *mut Reg) });
        }
        add_live(Kind::Socket, -1);
        Step::Done(STATUS_SUCCESS, 0)
    })
}

/// A Linux sockaddr as the Windows SOCKADDR_IN / SOCKADDR_IN6 it stands for,
/// written to `out`. Returns false for another family.
///
/// # Safety
/// `out` is writable for 28 bytes (SOCKADDR_IN6).
pub(crate) unsafe fn from_linux(ss: &libc::sockaddr_storage, out: *mut u8) -> bool {
    let storage = (ss as *const libc::sockaddr_storage).cast::<u8>();
    let mut win = [0u8; 28];
    match i32::from(ss.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says `ss` holds a sockaddr_in; storage is
            // aligned for it.
            let sin = unsafe { &*storage.cast::<libc::sockaddr_in>() };
            win[0..2].copy_from_slice(&WIN_AF_INET.to_ne_bytes());
            win[2..4].copy_from_slice(&sin.sin_port.to_ne_bytes());
            win[4..8].copy_from_slice(&sin.sin_addr.s_addr.to_ne_bytes());
            // SAFETY: `out` is writable for 28 >= 16 bytes (contract).
            unsafe { std::ptr::copy_nonoverlapping(win.as_ptr(), out, 16) };
            true
        }
        libc::AF_INET6 => {
            // SAFETY: the family says `ss` holds a sockaddr_in6.
            let sin6 = unsafe { &*storage.cast::<libc::sockaddr_in6>() };
            win[0..2].copy_from_slice(&WIN_AF_INET6.to_ne_bytes());
            win[2..4].copy_from_slice(&sin6.sin6_port.to_ne_bytes());
            win[4..8].copy_from_slice(&sin6.sin6_flowinfo.to_ne_bytes());
            win[8..24].copy_from_slice(&sin6.sin6_addr.s6_addr);
            win[24..28].copy_from_slice(&sin6.sin6_scope_id.to_ne_bytes());
            // SAFETY: `out` is writable for 28 bytes (contract).
            unsafe { std::ptr::copy_nonoverlapping(win.as_ptr(), out, 28) };
            true
        }
        _ => false,
    }
}

/// WskGetLocalAddress / WskGetRemoteAddress over getsockname / getpeername,
/// completed on a provider thread like every request (STATUS_PENDING), so
/// the buffer must stay valid until completion. "The buffer must be located
/// in non-paged memory" (PFN_WSK_GET_LOCAL_ADDRESS, Microsoft Learn): a
/// buffer in paged pool is a contract violation.
unsafe fn get_address(socket: PVOID, address: PVOID, irp: PVOID, remote: bool) -> NTSTATUS {
    let who = if remote { "WskGetRemoteAddress" } else { "WskGetLocalAddress" };
    let _in_call = crate::wsk_in_call::enter(socket, who);
    // SAFETY: the caller's IRP and socket.
    let (sock, _) = match unsafe { begin_socket_io(irp, socket, std::ptr::null_mut(), who) } {
        Ok(v) => v,
        Err(status) => return status,
    };
    if address.is_null() {
        violation(format!("{who} with a NULL address buffer"));
    } else if crate::io::is_paged_pool(address.cast(), 16) {
        violation(format!("{who}: the address buffer {address:p} is in paged pool; it must be non-paged"));
    }
    let hangs = config(|c| c.address_query_hangs);
    let out = SendPtr(address);
    let s = sock.clone();
    run_ready(irp, Some(sock), false, move |op| {
        let out = &out;
        if hangs {
            return if op.is_cancelled() { Step::Done(STATUS_CANCELLED, 0) } else { Step::Park };
        }
        if out.0.is_null() {
            return Step::Done(STATUS_INVALID_PARAMETER, 0);
        }
        // SAFETY: sockaddr_storage is plain C data; all zeroes is valid.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        let sa = (&mut ss as *mut libc::sockaddr_storage).cast::<libc::sockaddr>();
        let rc = if remote {
            // SAFETY: our socket; `sa` and `len` describe `ss`.
            unsafe { libc::getpeername(s.fd, sa, &mut len) }
        } else {
            // SAFETY: as above.
            unsafe { libc::getsockname(s.fd, sa, &mut len) }
        };
        if rc != 0 {
            return Step::Done(errno_to_status(errno()), 0);
        }
        // SAFETY: the caller's buffer, large enough for the socket's family
        // (WSK contract) and valid until completion.
        if unsafe { from_linux(&ss, out.0.cast()) } {
            Step::Done(STATUS_SUCCESS, 0)
        } else {
            Step::Done(STATUS_INVALID_PARAMETER, 0)
        }
    })
}

pub(crate) unsafe extern "system" fn wsk_get_local_address(socket: PVOID, address: PVOID, irp: PVOID) -> NTSTATUS {
    // SAFETY: the caller's socket, buffer and IRP.
    unsafe { get_address(socket, address, irp, false) }
}

unsafe extern "system" fn wsk_get_remote_address(socket: PVOID, address: PVOID, irp: PVOID) -> NTSTATUS {
    // SAFETY: the caller's socket, buffer and IRP.
    unsafe { get_address(socket, address, irp, true) }
}

pub(crate) unsafe extern "system" fn not_emulated() -> NTSTATUS {
    violation("a WSK function the host kernel does not emulate was called");
    STATUS_NOT_IMPLEMENTED
}

static PROVIDER_DISPATCH: WskProviderDispatch = WskProviderDispatch {
    Version: 0x0100,
    Reserved: 0,
    WskSocket: crate::wsk_control::WSK_SOCKET_ENTRY,
    WskSocketConnect: wsk_socket_connect,
    WskControlClient: crate::wsk_client_control::wsk_control_client,
    WskGetAddressInfo: crate::wsk_name::GET_ADDRESS_INFO,
    WskFreeAddressInfo: crate::wsk_name::FREE_ADDRESS_INFO,
    WskGetNameInfo: not_emulated,
};

pub(crate) static CONNECTION_DISPATCH: WskConnectionDispatch = WskConnectionDispatch {
    WskControlSocket: crate::wsk_control::WSK_CONTROL_SOCKET_ENTRY,
    WskCloseSocket: wsk_close_socket,
    WskBind: crate::wsk_control::WSK_BIND_ENTRY,
    WskConnect: crate::wsk_control::WSK_CONNECT_ENTRY,
    WskGetLocalAddress: wsk_get_local_address,
    WskGetRemoteAddress: wsk_get_remote_address,
    WskSend: wsk_send,
    WskReceive: wsk_receive,
    WskDisconnect: wsk_disconnect,
    WskRelease: crate::wsk_events::WSK_RELEASE_ENTRY,
};
