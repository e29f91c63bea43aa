//! WSK_SOCKET address reuse (issue 17).
//!
//! WskCloseSocket frees the WSK_SOCKET ("The WSK subsystem deallocates the
//! memory for the socket object, WSK_SOCKET", and after the close the
//! application "should not make any further calls to any of the socket's
//! functions": PFN_WSK_CLOSE_SOCKET, Remarks, Microsoft Learn), and the pool
//! allocator is free to hand the same block to the next socket: a new
//! socket may have exactly the address of one just closed. A
//! driver (or a library) that identifies its sockets by their WSK_SOCKET
//! address then mistakes a stale pointer for the new, live socket. The Rust
//! allocator behind the host kernel reuses addresses only by chance; with
//! [`set_reuse_socket_addresses`] on, it is certain:
//!
//! - a socket closed (WskCloseSocket, or a socket nobody received because
//!   its connect was completed as cancelled) keeps its block: the block is
//!   poisoned (0xDD) except its `Dispatch`, which points to
//!   `FREED_DISPATCH`, a table whose every function records "called
//!   through a freed WSK_SOCKET" as a violation (so a use after free that
//!   reaches the provider is reported, not a jump through 0xDDDD...); the
//!   provider's own functions already report a socket that is not open;
//! - the next socket made by WskSocketConnect or WskSocket gets the most
//!   recently freed block, at the same address; a block written after it was
//!   freed is reported then (and at the end of the session for blocks never
//!   reused).
//!
//! Off by default and at every `Session::begin`.

use std::alloc::Layout;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use crate::check::{violation, POISON};
use crate::nt::*;
use crate::wsk::Sock;

static REUSE: AtomicBool = AtomicBool::new(false);
/// Freed WSK_SOCKET blocks kept for reuse, the most recently freed last.
static FREED: Mutex<Vec<usize>> = Mutex::new(Vec::new());

/// With `on`, a socket made by the host provider (WskSocketConnect,
/// WskSocket) gets the memory of the most recently freed WSK_SOCKET, the
/// same address; closed sockets keep their (poisoned) block for that. Off:
/// fresh blocks, freed at the close (the allocator may still reuse them).
/// Reset by `Session::begin`.
pub fn set_reuse_socket_addresses(on: bool) {
    REUSE.store(on, Ordering::SeqCst);
}

fn freed<R>(f: impl FnOnce(&mut Vec<usize>) -> R) -> R {
    f(&mut FREED.lock().unwrap_or_else(|e| e.into_inner()))
}

/// What a freed block holds after its `Dispatch`: all POISON.
const TAIL: std::ops::Range<usize> = std::mem::size_of::<usize>()..std::mem::size_of::<Sock>();

/// Why a kept block is no longer as it was freed, if it is not.
fn written_after_free(block: usize) -> Option<String> {
    // SAFETY: a kept block: allocated for a Sock (size_of::<Sock>() bytes),
    // never deallocated while kept, so readable; Dispatch is its first word.
    let dispatch = unsafe { rd::<usize>(block as PVOID, 0) };
    // Address computation only: the bytes after Dispatch, inside the block.
    let after_dispatch = (block as *const u8).wrapping_add(TAIL.start);
    // SAFETY: as above: TAIL.len() readable bytes of the kept block.
    let tail = unsafe { std::slice::from_raw_parts(after_dispatch, TAIL.len()) };
    let intact =
        dispatch == &FREED_DISPATCH as *const WskConnectionDispatch as usize && tail.iter().all(|b| *b == POISON);
    (!intact).then(|| format!("WSK_SOCKET {block:#x} was written after WskCloseSocket freed it"))
}

/// The block for a new socket: the most recently freed one (reuse on), or a
/// fresh one.
pub(crate) fn allocate(sock: Sock) -> *mut Sock {
    if REUSE.load(Ordering::SeqCst) {
        if let Some(block) = freed(|f| f.pop()) {
            if let Some(problem) = written_after_free(block) {
                violation(problem);
            }
            let block = block as *mut Sock;
            // SAFETY: a kept block, allocated (by Box) with Sock's layout and
            // holding no live Sock (it was moved out when freed): writing a
            // new one is initializing it.
            unsafe { block.write(sock) };
            return block;
        }
    }
    Box::into_raw(Box::new(sock))
}

/// Frees an open socket's block (its Sock is moved out and returned): kept,
/// poisoned, for reuse when the mode is on; else deallocated.
///
/// # Safety
/// `socket` is an open socket's block (from [`allocate`]) that was just
/// removed from the open sockets: nothing else frees or uses it.
pub(crate) unsafe fn free(socket: *mut Sock) -> Sock {
    // SAFETY: a live Sock (contract); moved out, the block is not read as
    // a Sock again.
    let sock = unsafe { socket.read() };
    if REUSE.load(Ordering::SeqCst) {
        // SAFETY: the block is ours (contract) and size_of::<Sock>() long.
        unsafe { std::ptr::write_bytes(socket.cast::<u8>(), POISON, std::mem::size_of::<Sock>()) };
        // SAFETY: as above; Dispatch is the first (pointer-sized) word.
        unsafe { wr(socket.cast(), 0, &FREED_DISPATCH as *const WskConnectionDispatch as usize) };
        freed(|f| f.push(socket as usize));
    } else {
        // SAFETY: allocated by Box with this layout (allocate), the Sock
        // moved out above, so nothing is dropped twice.
        unsafe { std::alloc::dealloc(socket.cast(), Layout::new::<Sock>()) };
    }
    sock
}

/// Deallocates the kept blocks and turns the mode off; returns the blocks
/// written after they were freed. Called at every session's start and end.
pub(crate) fn release() -> Vec<String> {
    REUSE.store(false, Ordering::SeqCst);
    let blocks = freed(std::mem::take);
    let mut problems = Vec::new();
    for block in blocks {
        problems.extend(written_after_free(block));
        // SAFETY: a kept block, allocated by Box with Sock's layout, holding
        // no live Sock; removed from the list, so deallocated once.
        unsafe { std::alloc::dealloc(block as *mut u8, Layout::new::<Sock>()) };
    }
    problems
}

fn called_through_freed(who: &str, socket: PVOID) -> NTSTATUS {
    violation(format!(
        "{who} called through a freed WSK_SOCKET{}: the socket was closed (use after free)",
        if socket.is_null() { String::new() } else { format!(" ({socket:p})") }
    ));
    STATUS_INVALID_PARAMETER
}

unsafe extern "system" fn freed_control_socket() -> NTSTATUS {
    called_through_freed("WskControlSocket", std::ptr::null_mut())
}
unsafe extern "system" fn freed_close_socket(socket: PVOID, _irp: PVOID) -> NTSTATUS {
    called_through_freed("WskCloseSocket", socket)
}
unsafe extern "system" fn freed_bind() -> NTSTATUS {
    called_through_freed("WskBind", std::ptr::null_mut())
}
unsafe extern "system" fn freed_connect() -> NTSTATUS {
    called_through_freed("WskConnect", std::ptr::null_mut())
}
unsafe extern "system" fn freed_get_local_address(socket: PVOID, _address: PVOID, _irp: PVOID) -> NTSTATUS {
    called_through_freed("WskGetLocalAddress", socket)
}
unsafe extern "system" fn freed_get_remote_address(socket: PVOID, _address: PVOID, _irp: PVOID) -> NTSTATUS {
    called_through_freed("WskGetRemoteAddress", socket)
}
unsafe extern "system" fn freed_send(socket: PVOID, _buf: PVOID, _flags: u32, _irp: PVOID) -> NTSTATUS {
    called_through_freed("WskSend", socket)
}
unsafe extern "system" fn freed_receive(socket: PVOID, _buf: PVOID, _flags: u32, _irp: PVOID) -> NTSTATUS {
    called_through_freed("WskReceive", socket)
}
unsafe extern "system" fn freed_disconnect(socket: PVOID, _buf: PVOID, _flags: u32, _irp: PVOID) -> NTSTATUS {
    called_through_freed("WskDisconnect", socket)
}
unsafe extern "system" fn freed_release() -> NTSTATUS {
    called_through_freed("WskRelease", std::ptr::null_mut())
}

/// The `Dispatch` of a freed WSK_SOCKET: every function is a violation (it
/// returns STATUS_INVALID_PARAMETER without touching an IRP it was given).
pub(crate) static FREED_DISPATCH: WskConnectionDispatch = WskConnectionDispatch {
    WskControlSocket: freed_control_socket,
    WskCloseSocket: freed_close_socket,
    WskBind: freed_bind,
    WskConnect: freed_connect,
    WskGetLocalAddress: freed_get_local_address,
    WskGetRemoteAddress: freed_get_remote_address,
    WskSend: freed_send,
    WskReceive: freed_receive,
    WskDisconnect: freed_disconnect,
    WskRelease: freed_release,
};
