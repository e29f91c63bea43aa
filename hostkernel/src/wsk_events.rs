//! SO_WSK_EVENT_CALLBACK on connection sockets, and the event callbacks
//! really called from the socket's readiness, at DISPATCH_LEVEL.
//!
//! Behaviour, with its source (Microsoft Learn):
//! - "SO_WSK_EVENT_CALLBACK": WskSetOption, level SOL_SOCKET, InputSize
//!   sizeof(WSK_EVENT_CALLBACK_CONTROL), NpiId = &NPI_WSK_INTERFACE_ID; on a
//!   connection-oriented socket only once it is connected (else
//!   STATUS_INVALID_DEVICE_STATE here). Enabling takes no IRP (one given is
//!   a violation). Disabling, one event at a time ("a WSK application must
//!   disable event callback functions individually", WSK_EVENT_CALLBACK_CONTROL;
//!   several flags with WSK_EVENT_DISABLE are a violation and
//!   STATUS_INVALID_PARAMETER): no callback of the socket running ->
//!   STATUS_SUCCESS (an IRP completes with it); one running and an IRP ->
//!   STATUS_PENDING, the IRP completed once the running callbacks returned;
//!   one running and no IRP -> STATUS_EVENT_PENDING.
//! - Enabling an event whose entry in the socket's client dispatch table is
//!   NULL (or a socket created without a table) would make WSK call NULL: a
//!   violation here, and STATUS_INVALID_PARAMETER.
//! - "PFN_WSK_RECEIVE_EVENT": called at IRQL <= DISPATCH_LEVEL (here always
//!   at DISPATCH_LEVEL) with a WSK_DATA_INDICATION list (non-paged buffer
//!   described by an MDL built with MmBuildMdlForNonPagedPool). Its return:
//!   STATUS_SUCCESS — the data was consumed; STATUS_DATA_NOT_ACCEPTED — the
//!   data stays in the socket and "the WSK subsystem ... will not call
//!   WskReceiveEvent again until the WSK application calls WskReceive";
//!   STATUS_PENDING — the application keeps the indication list and must
//!   give it back with WskRelease ("PFN_WSK_RELEASE_DATA_INDICATION_LIST").
//!   Any other return is a violation. An indication still retained when the
//!   socket is closed is a leak (a violation).
//! - "PFN_WSK_DISCONNECT_EVENT": called once when the peer's FIN arrives,
//!   Flags 0 (graceful).
//! - "PFN_WSK_SEND_BACKLOG_EVENT": called once after it is enabled with the
//!   socket's send buffer size as the ideal backlog.
//!
//! While a request (WskReceive, WskSend, ...) is pending on the socket no
//! data is indicated: the request gets the data first, as on Windows a
//! pending WskReceive does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::check::violation;
use crate::io::{
    complete, take, ExAllocatePool2, ExFreePoolWithTag, IoAllocateMdl, IoFreeMdl, MmBuildMdlForNonPagedPool,
};
use crate::irql;
use crate::nt::*;
use crate::wsk::{run, sock_from, SockInner};
use crate::wsk_control::{CallFault, WskCall};

const WSK_SET_OPTION: i32 = 0;
const WSK_EVENT_SEND_BACKLOG: u32 = 0x10;
const WSK_EVENT_RECEIVE: u32 = 0x40;
const WSK_EVENT_DISCONNECT: u32 = 0x80;
const WSK_EVENT_DISABLE: u32 = 0x8000_0000;
const CONNECTION_EVENTS: u32 = WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT | WSK_EVENT_SEND_BACKLOG;
const STATUS_DATA_NOT_ACCEPTED: NTSTATUS = 0xC000_021B_u32 as NTSTATUS;
const STATUS_EVENT_PENDING: NTSTATUS = 0x4000_0013;
const STATUS_INVALID_DEVICE_STATE: NTSTATUS = 0xC000_0184_u32 as NTSTATUS;
/// NPI_WSK_INTERFACE_ID {2227E803-8D8B-11D4-ABAD-009027719E09} as stored.
const NPI_WSK_INTERFACE_ID: [u8; 16] =
    [0x03, 0xE8, 0x27, 0x22, 0x8B, 0x8D, 0xD4, 0x11, 0xAB, 0xAD, 0x00, 0x90, 0x27, 0x71, 0x9E, 0x09];
/// The provider's pool tag for indications.
const TAG: u32 = u32::from_le_bytes(*b"WskI");
/// WSK_DATA_INDICATION: Next, then WSK_BUF { Mdl, Offset, Length }.
const INDICATION_SIZE: usize = 32;
/// The most one indication carries.
const INDICATE_MAX: usize = 16 * 1024;

type ReceiveEvent = unsafe extern "system" fn(PVOID, u32, PVOID, usize, *mut usize) -> NTSTATUS;
type DisconnectEvent = unsafe extern "system" fn(PVOID, u32) -> NTSTATUS;
type BacklogEvent = unsafe extern "system" fn(PVOID, usize) -> NTSTATUS;

/// One socket's event state.
struct Events {
    context: usize,
    /// The client's WSK_CLIENT_CONNECTION_DISPATCH (0: none).
    dispatch: usize,
    enabled: u32,
    /// Callbacks running now.
    running: u32,
    /// STATUS_DATA_NOT_ACCEPTED: no indication until the next WskReceive.
    stalled: bool,
    /// Indications the application kept (STATUS_PENDING), not yet released.
    retained: Vec<usize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

static EVENTS: Mutex<Option<HashMap<usize, Events>>> = Mutex::new(None);

fn events<R>(f: impl FnOnce(&mut HashMap<usize, Events>) -> R) -> R {
    let mut g = EVENTS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Records the context and client dispatch table a new socket was created
/// with (WskSocket, WskSocketConnect).
pub(crate) fn register(socket: usize, context: usize, dispatch: usize) {
    let e = Events {
        context,
        dispatch,
        enabled: 0,
        running: 0,
        stalled: false,
        retained: Vec::new(),
        stop: Arc::new(AtomicBool::new(false)),
        thread: None,
    };
    events(|m| m.insert(socket, e));
}

/// [`register`], returning the socket (for WskSocketConnect's steps).
pub(crate) fn registered(socket: usize, context: usize, dispatch: usize) -> usize {
    register(socket, context, dispatch);
    socket
}

/// A WskReceive on the socket: indications resume after a
/// STATUS_DATA_NOT_ACCEPTED.
pub(crate) fn on_receive(socket: usize) {
    events(|m| m.get_mut(&socket).map(|e| e.stalled = false));
}

/// The socket is being closed: no callback runs after this returns; an
/// indication still retained is reported as a leak (and freed).
pub(crate) fn forget(socket: usize) {
    // Stop the event thread first (outside the lock: it takes it), so that
    // whatever its last callback kept is on the list checked below.
    let Some((stop, thread)) = events(|m| m.get_mut(&socket).map(|e| (e.stop.clone(), e.thread.take()))) else {
        return;
    };
    stop.store(true, Ordering::SeqCst);
    if let Some(t) = thread {
        let _ = t.join();
    }
    let Some(e) = events(|m| m.remove(&socket)) else { return };
    if !e.retained.is_empty() {
        violation(format!(
            "WskCloseSocket with {} data indication(s) kept by WskReceiveEvent (STATUS_PENDING) and never given \
             back with WskRelease: a leak",
            e.retained.len()
        ));
        for ind in e.retained {
            // SAFETY: an indication this provider built and nobody else frees.
            unsafe { free_indication(ind as PVOID) };
        }
    }
}

/// WskControlSocket(SOL_SOCKET, SO_WSK_EVENT_CALLBACK).
///
/// # Safety
/// The caller's WskControlSocket arguments.
pub(crate) unsafe fn control(socket: PVOID, request: i32, in_size: usize, in_buf: PVOID, irp: PVOID) -> NTSTATUS {
    let who = "WskControlSocket(SO_WSK_EVENT_CALLBACK)";
    // SAFETY: the caller's IRP, if any.
    if !irp.is_null() && !unsafe { take(irp, who) } {
        return STATUS_INVALID_PARAMETER;
    }
    let finish = |status: NTSTATUS| {
        if !irp.is_null() {
            // SAFETY: taken above, completed once.
            unsafe { complete(irp, status, 0) };
        }
        status
    };
    let Some(sock) = sock_from(socket, who) else { return finish(STATUS_INVALID_PARAMETER) };
    match (crate::wsk_control::fault_for(WskCall::EventCallback), irp.is_null()) {
        (None, _) => {}
        (Some(CallFault::Fail(status)), true) => return status,
        (Some(_), true) => return STATUS_PENDING,
        (Some(CallFault::Delay(_)), false) => return crate::wsk_control::run_fault(irp, Some(sock), CallFault::Never),
        (Some(fault), false) => return crate::wsk_control::run_fault(irp, Some(sock), fault),
    }
    if request != WSK_SET_OPTION || in_size != 16 || in_buf.is_null() {
        return finish(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: a caller's WSK_EVENT_CALLBACK_CONTROL (16 bytes, checked).
    let npi: PVOID = unsafe { rd(in_buf, 0) };
    // SAFETY: as above; EventMask at 8.
    let mask: u32 = unsafe { rd(in_buf, 8) };
    // SAFETY: an NPIID (16 bytes) when non-NULL.
    if npi.is_null() || unsafe { rd::<[u8; 16]>(npi, 0) } != NPI_WSK_INTERFACE_ID {
        return finish(STATUS_INVALID_PARAMETER);
    }
    if !connected(sock.fd) {
        return finish(STATUS_INVALID_DEVICE_STATE);
    }
    let key = socket as usize;
    if mask & WSK_EVENT_DISABLE != 0 {
        let event = mask & !WSK_EVENT_DISABLE;
        if event.count_ones() != 1 || event & !CONNECTION_EVENTS != 0 {
            violation(format!("{who}: disabling {event:#x}: callbacks must be disabled one at a time"));
            return finish(STATUS_INVALID_PARAMETER);
        }
        let running = events(|m| {
            m.get_mut(&key).map(|e| {
                e.enabled &= !event;
                e.running
            })
        })
        .unwrap_or(0);
        if running == 0 {
            return finish(STATUS_SUCCESS);
        }
        if irp.is_null() {
            return STATUS_EVENT_PENDING;
        }
        // Completed once the running callbacks have returned.
        return run(irp, Some(sock), move |_op| {
            while events(|m| m.get(&key).map_or(0, |e| e.running)) != 0 {
                std::thread::sleep(Duration::from_millis(1));
            }
            (STATUS_SUCCESS, 0)
        });
    }
    if !irp.is_null() {
        violation(format!("{who}: enabling with an IRP (\"does not specify a pointer to an IRP\")"));
        return finish(STATUS_INVALID_PARAMETER);
    }
    if mask == 0 || mask & !CONNECTION_EVENTS != 0 {
        return STATUS_INVALID_PARAMETER;
    }
    let Some(dispatch) = events(|m| m.get(&key).map(|e| e.dispatch)) else {
        violation(format!("{who}: the socket {socket:p} was not made by this provider's WskSocket(Connect)"));
        return STATUS_INVALID_PARAMETER;
    };
    // Offsets of WSK_CLIENT_CONNECTION_DISPATCH's entries.
    for (flag, offset, name) in [
        (WSK_EVENT_RECEIVE, 0, "WskReceiveEvent"),
        (WSK_EVENT_DISCONNECT, 8, "WskDisconnectEvent"),
        (WSK_EVENT_SEND_BACKLOG, 16, "WskSendBacklogEvent"),
    ] {
        // SAFETY: the client's table (24 bytes) when non-NULL; the client
        // keeps it valid until the socket is closed.
        if mask & flag != 0 && (dispatch == 0 || unsafe { rd::<usize>(dispatch as PVOID, offset) } == 0) {
            violation(format!("{who}: enabling {name}, which the socket's dispatch table lacks: WSK would call NULL"));
            return STATUS_INVALID_PARAMETER;
        }
    }
    let start = events(|m| {
        let e = m.get_mut(&key)?;
        e.enabled |= mask;
        if e.thread.is_some() {
            return None;
        }
        Some(e.stop.clone())
    });
    if let Some(stop) = start {
        let inner = sock.clone();
        let spawned = std::thread::Builder::new().stack_size(128 * 1024).spawn(move || indicate(key, inner, stop));
        match spawned {
            Ok(t) => events(|m| m.get_mut(&key).map(|e| e.thread = Some(t))).unwrap_or(()),
            Err(e) => violation(format!("host kernel: cannot start an event thread: {e}")),
        }
    }
    STATUS_SUCCESS
}

fn connected(fd: i32) -> bool {
    // SAFETY: sockaddr_storage is plain C data; all zeroes is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: our socket; `ss` and `len` describe a writable buffer.
    unsafe { libc::getpeername(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) == 0 }
}

/// Builds a WSK_DATA_INDICATION over a non-paged copy of `data`.
fn build_indication(data: &[u8]) -> Option<PVOID> {
    // SAFETY: host pool allocation (non-paged), freed by free_indication.
    let buf = unsafe { ExAllocatePool2(0x40, data.len(), TAG) };
    if buf.is_null() {
        return None;
    }
    // SAFETY: `buf` holds data.len() bytes, a fresh block.
    unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), buf.cast::<u8>(), data.len()) };
    // SAFETY: an MDL over the whole block, no IRP.
    let mdl = unsafe { IoAllocateMdl(buf, data.len() as u32, 0, 0, std::ptr::null_mut()) };
    if mdl.is_null() {
        // SAFETY: allocated above.
        unsafe { ExFreePoolWithTag(buf, TAG) };
        return None;
    }
    // SAFETY: a live MDL over non-paged pool.
    unsafe { MmBuildMdlForNonPagedPool(mdl) };
    // SAFETY: host pool allocation for the WSK_DATA_INDICATION.
    let ind = unsafe { ExAllocatePool2(0x40, INDICATION_SIZE, TAG) };
    if ind.is_null() {
        // SAFETY: allocated above, not shared.
        unsafe { IoFreeMdl(mdl) };
        // SAFETY: as above.
        unsafe { ExFreePoolWithTag(buf, TAG) };
        return None;
    }
    // SAFETY: `ind` is INDICATION_SIZE writable bytes: Next 0, Mdl 8,
    // Offset 16, Length 24.
    unsafe {
        wr(ind, 0, 0usize);
    }
    // SAFETY: as above.
    unsafe { wr(ind, 8, mdl as usize) };
    // SAFETY: as above.
    unsafe { wr(ind, 16, 0u64) };
    // SAFETY: as above.
    unsafe { wr(ind, 24, data.len()) };
    Some(ind)
}

/// Frees an indication list built by [`build_indication`].
///
/// # Safety
/// `ind` heads a list of this provider's indications, freed once.
unsafe fn free_indication(mut ind: PVOID) {
    while !ind.is_null() {
        // SAFETY: a live indication (contract).
        let next: PVOID = unsafe { rd(ind, 0) };
        // SAFETY: as above.
        let mdl: PVOID = unsafe { rd(ind, 8) };
        // SAFETY: the MDL's buffer is the non-paged block it describes.
        let buf: PVOID = unsafe { rd(mdl, MDL_MAPPED_SYSTEM_VA) };
        // SAFETY: built by build_indication, freed once.
        unsafe { IoFreeMdl(mdl) };
        // SAFETY: as above.
        unsafe { ExFreePoolWithTag(buf, TAG) };
        // SAFETY: as above.
        unsafe { ExFreePoolWithTag(ind, TAG) };
        ind = next;
    }
}

/// Marks a callback as running (if `flag` is still enabled) and returns the
/// context and the entry at `offset` of the client's table.
fn begin_callback(key: usize, flag: u32, offset: usize) -> Option<(usize, usize)> {
    events(|m| {
        let e = m.get_mut(&key)?;
        if e.enabled & flag == 0 || (flag == WSK_EVENT_RECEIVE && e.stalled) || e.dispatch == 0 {
            return None;
        }
        // SAFETY: the client's table, valid until the socket is closed
        // (which stops this thread first).
        let entry: usize = unsafe { rd(e.dispatch as PVOID, offset) };
        if entry == 0 {
            return None;
        }
        e.running += 1;
        Some((e.context, entry))
    })
}

fn end_callback(key: usize) {
    events(|m| m.get_mut(&key).map(|e| e.running = e.running.saturating_sub(1)));
}

/// The socket's event thread: waits for readiness and calls the enabled
/// callbacks at DISPATCH_LEVEL until the socket is closed.
fn indicate(key: usize, sock: Arc<SockInner>, stop: Arc<AtomicBool>) {
    let fd = sock.fd;
    let mut backlog_told = false;
    let mut fin = false;
    let mut buf = vec![0u8; INDICATE_MAX];
    while !stop.load(Ordering::SeqCst) {
        if !backlog_told {
            if let Some((ctx, entry)) = begin_callback(key, WSK_EVENT_SEND_BACKLOG, 16) {
                backlog_told = true;
                let size = crate::wsk_control::sndbuf(fd);
                // SAFETY: the client's PFN_WSK_SEND_BACKLOG_EVENT.
                let f: BacklogEvent = unsafe { std::mem::transmute::<usize, BacklogEvent>(entry) };
                // SAFETY: the client's callback and context, at DISPATCH_LEVEL.
                irql::with_irql(DISPATCH_LEVEL, || unsafe { f(ctx as PVOID, size) });
                end_callback(key);
            }
        }
        let busy = !sock.inflight.lock().unwrap_or_else(|e| e.into_inner()).is_empty();
        if fin || busy {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let mut pfd = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut pfd, 1, 10) } <= 0 {
            continue;
        }
        // SAFETY: our socket and a buffer of buf.len() bytes.
        let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), libc::MSG_PEEK | libc::MSG_DONTWAIT) };
        if n == 0 {
            fin = true;
            sock.got_fin.store(true, Ordering::SeqCst);
            if let Some((ctx, entry)) = begin_callback(key, WSK_EVENT_DISCONNECT, 8) {
                // SAFETY: the client's PFN_WSK_DISCONNECT_EVENT.
                let f: DisconnectEvent = unsafe { std::mem::transmute::<usize, DisconnectEvent>(entry) };
                // SAFETY: the client's callback and context, at DISPATCH_LEVEL.
                irql::with_irql(DISPATCH_LEVEL, || unsafe { f(ctx as PVOID, 0) });
                end_callback(key);
            }
            continue;
        }
        if n < 0 {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        }
        let n = n as usize;
        let Some((ctx, entry)) = begin_callback(key, WSK_EVENT_RECEIVE, 0) else {
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        let Some(ind) = build_indication(&buf[..n]) else {
            end_callback(key);
            std::thread::sleep(Duration::from_millis(2));
            continue;
        };
        // SAFETY: the client's PFN_WSK_RECEIVE_EVENT.
        let f: ReceiveEvent = unsafe { std::mem::transmute::<usize, ReceiveEvent>(entry) };
        let mut accepted: usize = 0;
        let accepted_ptr = &mut accepted as *mut usize;
        // SAFETY: the client's callback and context, at DISPATCH_LEVEL, with a
        // live indication list of `n` bytes.
        let status = irql::with_irql(DISPATCH_LEVEL, || unsafe { f(ctx as PVOID, 0, ind, n, accepted_ptr) });
        let consume = |count: usize| {
            let mut sink = vec![0u8; count];
            // SAFETY: our socket; the peeked bytes are there to be read.
            unsafe { libc::recv(fd, sink.as_mut_ptr().cast(), count, libc::MSG_DONTWAIT) };
        };
        match status {
            STATUS_SUCCESS => {
                consume(n);
                // SAFETY: ours again: the callback returned without keeping it.
                unsafe { free_indication(ind) };
            }
            STATUS_DATA_NOT_ACCEPTED => {
                events(|m| m.get_mut(&key).map(|e| e.stalled = true));
                // SAFETY: as above; the data stays in the socket.
                unsafe { free_indication(ind) };
            }
            STATUS_PENDING => {
                consume(n);
                events(|m| m.get_mut(&key).map(|e| e.retained.push(ind as usize)));
            }
            other => {
                violation(format!(
                    "WskReceiveEvent returned {other:#x}: only STATUS_SUCCESS, STATUS_DATA_NOT_ACCEPTED and \
                     STATUS_PENDING are allowed"
                ));
                // SAFETY: as for STATUS_SUCCESS.
                unsafe { free_indication(ind) };
            }
        }
        end_callback(key);
    }
}

/// PFN_WSK_RELEASE_DATA_INDICATION_LIST: the application gives back an
/// indication list it kept (its WskReceiveEvent returned STATUS_PENDING).
/// A call in progress in the socket's functions ("Closing a Socket"): a
/// WskCloseSocket meanwhile is a violation; `set_release_delay` makes it
/// last.
unsafe extern "system" fn wsk_release(socket: PVOID, indication: PVOID) -> NTSTATUS {
    if irql::current() > DISPATCH_LEVEL {
        violation("WskRelease above DISPATCH_LEVEL");
    }
    let _in_call = crate::wsk_in_call::enter(socket, "WskRelease");
    crate::wsk_in_call::release_delay();
    let key = socket as usize;
    let found = events(|m| {
        let e = m.get_mut(&key)?;
        let i = e.retained.iter().position(|&p| p == indication as usize)?;
        Some(e.retained.swap_remove(i))
    });
    match found {
        Some(ind) => {
            // SAFETY: an indication this provider built, released once.
            unsafe { free_indication(ind as PVOID) };
            RELEASED.fetch_add(1, Ordering::SeqCst);
            STATUS_SUCCESS
        }
        None => {
            violation(format!("WskRelease: {indication:p} is not an indication kept on socket {socket:p}"));
            STATUS_INVALID_PARAMETER
        }
    }
}

/// Indication lists given back with WskRelease since the process started.
static RELEASED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many retained indication lists WskRelease has taken back (cumulative,
/// never reset: compare before and after).
pub fn indications_released() -> u64 {
    RELEASED.load(Ordering::SeqCst)
}

/// How many indication lists the socket's WskReceiveEvent kept
/// (STATUS_PENDING) and WskRelease has not taken back yet; None for a socket
/// this provider does not know (closed).
pub fn indications_retained(socket: *mut std::ffi::c_void) -> Option<usize> {
    events(|m| m.get(&(socket as usize)).map(|e| e.retained.len()))
}

type Entry = unsafe extern "system" fn() -> NTSTATUS;
type ReleaseFn = unsafe extern "system" fn(PVOID, PVOID) -> NTSTATUS;
/// WskRelease for WSK_PROVIDER_CONNECTION_DISPATCH (declared there without
/// parameters; callers call it with its real type).
// SAFETY: function pointers of one size; called only with
// PFN_WSK_RELEASE_DATA_INDICATION_LIST's signature, `wsk_release`'s.
pub(crate) const WSK_RELEASE_ENTRY: Entry = unsafe { std::mem::transmute::<ReleaseFn, Entry>(wsk_release) };
