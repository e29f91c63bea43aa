//! Listening sockets (WskAccept) and datagram sockets (WskSendTo,
//! WskReceiveFrom) on real Linux sockets, driven by the provider's event
//! loop (`wsk_loop`, `run_ready`) like the connection socket's calls.
//! WskSocket makes both kinds (`wsk_control`: WSK_FLAG_LISTEN_SOCKET is a
//! TCP socket, WSK_FLAG_DATAGRAM_SOCKET a UDP one), WskBind binds them (and
//! a listening socket then listens), WskCloseSocket cancels and drains their
//! pending requests as for every socket.
//!
//! Behaviour, with its source (Microsoft Learn):
//! - WskAccept ("PFN_WSK_ACCEPT"): Flags "must set this parameter to zero";
//!   the IRP completes with the accepted socket's WSK_SOCKET in
//!   IoStatus.Information; LocalAddress / RemoteAddress are optional and
//!   "must be located in non-paged memory" (a buffer in paged pool is a
//!   violation); several accepts may pend on one listening socket, each
//!   takes one connection. An accept on a listening socket that is not
//!   bound (not listening) completes with STATUS_INVALID_DEVICE_STATE.
//!   Its IRP is a "connect" IRP for the loop: the Inline cancel behaviour
//!   completes it inside IoCancelIrp, and a connection accepted meanwhile
//!   is then closed again (and the caller's address buffers, which may be
//!   gone, are not written: `Step::DoneWith`).
//! - The accepted socket is a connection socket ("the WSK subsystem ...
//!   accepted socket ... WSK_PROVIDER_CONNECTION_DISPATCH") of the
//!   listening socket's client, with the context and dispatch table given
//!   to WskAccept for its callbacks (disabled until enabled).
//! - WskCloseSocket on the listening socket "cancel[s] and complete[s] all
//!   pending IRPs": the pending accepts complete with STATUS_CANCELLED.
//! - WskSendTo ("PFN_WSK_SEND_TO"): Flags reserved (0), no control
//!   information emulated, RemoteAddress required (no fixed remote address
//!   is emulated); one sendto of the whole buffer; Information is the
//!   bytes sent.
//! - WskReceiveFrom ("PFN_WSK_RECEIVE_FROM"): Flags reserved (0); the
//!   sender's address written to RemoteAddress (optional); a datagram
//!   larger than the buffer fills it, the rest is lost, and ControlFlags
//!   (optional) gets MSG_TRUNC ("WSAMSG": "The datagram was truncated");
//!   the IRP completes with STATUS_SUCCESS and the bytes copied.
//! - All of them at IRQL <= DISPATCH_LEVEL; completed from a provider
//!   thread at DISPATCH_LEVEL (STATUS_PENDING), or on the caller's thread in
//!   the Sync completion mode.
//!
//! Adversarial modes, as for the connection socket's calls: the cancel
//! behaviours (`set_cancel_behaviour`: Deferred, Inline, Ignored, Held),
//! `set_fail_without_completing` (returns without taking the IRP), and
//! `set_call_fault(WskCall::Accept | SendTo | ReceiveFrom, ..)`: `Fail`
//! (completes with a status), `Never` (pends until cancelled), `Delay`.

use std::time::Instant;

use crate::check::violation;
use crate::io::complete;
use crate::irql;
use crate::nt::*;
use crate::wsk::{
    begin_socket_io, errno, errno_to_status, from_linux, new_socket, not_emulated, run_ready, to_linux,
    wsk_close_socket, wsk_get_local_address, Pieces, Step,
};
use crate::wsk_control::{fault_for, is_listening, run_fault, socket_flags, CallFault, WskCall};

struct SendPtr(PVOID);
// SAFETY: the pointer is only used by the one worker that owns the request,
// which writes through it only while the IRP is not completed.
unsafe impl Send for SendPtr {}

type Entry = unsafe extern "system" fn() -> NTSTATUS;

static LISTEN_DISPATCH: WskListenDispatch = WskListenDispatch {
    WskControlSocket: crate::wsk_control::WSK_CONTROL_SOCKET_ENTRY,
    WskCloseSocket: wsk_close_socket,
    WskBind: crate::wsk_control::WSK_BIND_ENTRY,
    WskAccept: wsk_accept,
    WskInspectComplete: not_emulated as Entry,
    WskGetLocalAddress: wsk_get_local_address,
};

static DATAGRAM_DISPATCH: WskDatagramDispatch = WskDatagramDispatch {
    WskControlSocket: crate::wsk_control::WSK_CONTROL_SOCKET_ENTRY,
    WskCloseSocket: wsk_close_socket,
    WskBind: crate::wsk_control::WSK_BIND_ENTRY,
    WskSendTo: wsk_send_to,
    WskReceiveFrom: wsk_receive_from,
    WskRelease: not_emulated as Entry,
    WskGetLocalAddress: wsk_get_local_address,
};

/// The listening socket's table, as the WSK_SOCKET's Dispatch (every table
/// begins with WskControlSocket and WskCloseSocket).
pub(crate) fn listen_dispatch() -> *const WskConnectionDispatch {
    (&LISTEN_DISPATCH as *const WskListenDispatch).cast()
}

/// The datagram socket's table, likewise.
pub(crate) fn datagram_dispatch() -> *const WskConnectionDispatch {
    (&DATAGRAM_DISPATCH as *const WskDatagramDispatch).cast()
}

/// A buffer the caller gave WSK that must be non-paged.
fn check_nonpaged(who: &str, what: &str, buffer: PVOID, len: usize) {
    if !buffer.is_null() && crate::io::is_paged_pool(buffer.cast(), len) {
        violation(format!("{who}: the {what} buffer {buffer:p} is in paged pool; it must be non-paged"));
    }
}

/// The Linux local address of `fd`, as a Windows SOCKADDR written to `out`.
///
/// # Safety
/// `out` is writable for 28 bytes.
unsafe fn write_local(fd: i32, out: *mut u8) {
    // SAFETY: sockaddr_storage is plain C data; all zeroes is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: our socket; `ss` and `len` describe a writable buffer.
    if unsafe { libc::getsockname(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) } == 0 {
        // SAFETY: per the caller.
        unsafe { from_linux(&ss, out) };
    }
}

unsafe extern "system" fn wsk_accept(
    listen: PVOID,
    flags: u32,
    context: PVOID,
    dispatch: PVOID,
    local: PVOID,
    remote: PVOID,
    irp: PVOID,
) -> NTSTATUS {
    let _in_call = crate::wsk_in_call::enter(listen, "WskAccept");
    if irql::current() > DISPATCH_LEVEL {
        violation("WskAccept above DISPATCH_LEVEL");
    }
    if irp.is_null() {
        violation("WskAccept without an IRP");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the caller's IRP and socket; no buffer.
    let (sock, _) = match unsafe { begin_socket_io(irp, listen, std::ptr::null_mut(), "WskAccept") } {
        Ok(v) => v,
        Err(status) => return status,
    };
    check_nonpaged("WskAccept", "local address", local, 16);
    check_nonpaged("WskAccept", "remote address", remote, 16);
    if socket_flags(listen as usize) != Some(WSK_FLAG_LISTEN_SOCKET) {
        violation(format!("WskAccept on {listen:p}, which is not a listening socket"));
        // SAFETY: taken by begin_socket_io, not completed.
        unsafe { complete(irp, STATUS_INVALID_PARAMETER, 0) };
        return STATUS_INVALID_PARAMETER;
    }
    if flags != 0 {
        // SAFETY: as above.
        unsafe { complete(irp, STATUS_INVALID_PARAMETER, 0) };
        return STATUS_INVALID_PARAMETER;
    }
    if is_listening(listen as usize) != Some(true) {
        // SAFETY: as above.
        unsafe { complete(irp, STATUS_INVALID_DEVICE_STATE, 0) };
        return STATUS_INVALID_DEVICE_STATE;
    }
    let mut delay = None;
    match fault_for(WskCall::Accept) {
        Some(CallFault::Delay(d)) => delay = Some(d),
        Some(fault) => return run_fault(irp, Some(sock), fault),
        None => {}
    }
    let (fd, reg) = (sock.fd, sock.reg);
    let (context, dispatch) = (context as usize, dispatch as usize);
    let out = (SendPtr(local), SendPtr(remote));
    let mut start_at: Option<Instant> = None;
    let mut out = Some(out);
    run_ready(irp, Some(sock), true, move |op| {
        if op.is_cancelled() {
            return Step::Done(STATUS_CANCELLED, 0);
        }
        if let Some(d) = delay {
            let at = *start_at.get_or_insert_with(|| Instant::now() + d);
            if Instant::now() < at {
                return Step::Until(at);
            }
        }
        // SAFETY: sockaddr_storage is plain C data; all zeroes is valid.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: our listening socket; `ss` and `len` describe a buffer.
        let new_fd = unsafe {
            libc::accept4(
                fd,
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut len,
                libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            )
        };
        if new_fd < 0 {
            let e = errno();
            if e == libc::EAGAIN || e == libc::ECONNABORTED {
                return Step::Wait(fd, libc::EPOLLIN as u32);
            }
            return Step::Done(errno_to_status(e), 0);
        }
        let socket = crate::wsk_events::registered(new_socket(new_fd, reg), context, dispatch);
        let Some((local, remote)) = out.take() else { return Step::Done(STATUS_UNSUCCESSFUL, 0) };
        // The caller's buffers are written only if this completion is the
        // IRP's (they may be gone after an inline cancel's).
        let deliver = Box::new(move || {
            let (local, remote) = (local, remote);
            if !local.0.is_null() {
                // SAFETY: the caller's non-paged buffer for the listening
                // socket's family (WSK contract), valid until completion.
                unsafe { write_local(new_fd, local.0.cast()) };
            }
            if !remote.0.is_null() {
                // SAFETY: as above.
                unsafe { from_linux(&ss, remote.0.cast()) };
            }
        });
        Step::DoneWith(STATUS_SUCCESS, socket, deliver)
    })
}

unsafe extern "system" fn wsk_send_to(
    socket: PVOID,
    buf: PVOID,
    flags: u32,
    remote: PVOID,
    control_length: u32,
    control: PVOID,
    irp: PVOID,
) -> NTSTATUS {
    let _in_call = crate::wsk_in_call::enter(socket, "WskSendTo");
    if irql::current() > DISPATCH_LEVEL {
        violation("WskSendTo above DISPATCH_LEVEL");
    }
    // SAFETY: the caller's IRP, socket and buffer.
    let (sock, pieces) = match unsafe { begin_socket_io(irp, socket, buf, "WskSendTo") } {
        Ok(v) => v,
        Err(status) => return status,
    };
    if control_length != 0 || !control.is_null() {
        violation("WskSendTo with control information is not emulated");
    }
    // SAFETY: the caller's SOCKADDR (NULL, or sized by its family).
    let to = unsafe { to_linux(remote) };
    let datagram = socket_flags(socket as usize) == Some(WSK_FLAG_DATAGRAM_SOCKET);
    let (Some(to), 0, true) = (to, flags, datagram) else {
        if !datagram {
            violation(format!("WskSendTo on {socket:p}, which is not a datagram socket"));
        }
        // SAFETY: taken by begin_socket_io, not completed.
        unsafe { complete(irp, STATUS_INVALID_PARAMETER, 0) };
        return STATUS_INVALID_PARAMETER;
    };
    let mut delay = None;
    match fault_for(WskCall::SendTo) {
        Some(CallFault::Delay(d)) => delay = Some(d),
        Some(fault) => return run_fault(irp, Some(sock), fault),
        None => {}
    }
    // WSK reads the buffer while sending; a copy taken now is equivalent for
    // a caller that leaves it alone until completion.
    let mut data = Vec::new();
    for (p, n) in pieces {
        // SAFETY: MDL-described memory, valid until completion.
        data.extend_from_slice(unsafe { std::slice::from_raw_parts(p, n) });
    }
    let fd = sock.fd;
    let mut start_at: Option<Instant> = None;
    run_ready(irp, Some(sock), false, move |op| {
        if let Some(d) = delay {
            let at = *start_at.get_or_insert_with(|| Instant::now() + d);
            if op.is_cancelled() {
                return Step::Done(STATUS_CANCELLED, 0);
            }
            if Instant::now() < at {
                return Step::Until(at);
            }
        }
        // SAFETY: `data` is readable for its length; `to` holds an address
        // of `to.1` bytes (to_linux); our socket.
        let n = unsafe {
            libc::sendto(
                fd,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
                (&to.0 as *const libc::sockaddr_storage).cast(),
                to.1,
            )
        };
        if n >= 0 {
            return Step::Done(STATUS_SUCCESS, n as usize);
        }
        let e = errno();
        if e != libc::EAGAIN {
            return Step::Done(errno_to_status(e), 0);
        }
        if op.is_cancelled() {
            return Step::Done(STATUS_CANCELLED, 0);
        }
        Step::Wait(fd, libc::EPOLLOUT as u32)
    })
}

#[allow(clippy::too_many_arguments)] // PFN_WSK_RECEIVE_FROM's eight parameters
unsafe extern "system" fn wsk_receive_from(
    socket: PVOID,
    buf: PVOID,
    flags: u32,
    remote: PVOID,
    control_length: *mut u32,
    control: PVOID,
    control_flags: *mut u32,
    irp: PVOID,
) -> NTSTATUS {
    let _in_call = crate::wsk_in_call::enter(socket, "WskReceiveFrom");
    if irql::current() > DISPATCH_LEVEL {
        violation("WskReceiveFrom above DISPATCH_LEVEL");
    }
    // SAFETY: the caller's IRP, socket and buffer.
    let (sock, pieces) = match unsafe { begin_socket_io(irp, socket, buf, "WskReceiveFrom") } {
        Ok(v) => v,
        Err(status) => return status,
    };
    if !control.is_null() {
        violation("WskReceiveFrom with a control buffer is not emulated");
    }
    if !control_length.is_null() {
        // SAFETY: the caller's ULONG (no control data is ever returned).
        unsafe { control_length.write_unaligned(0) };
    }
    let datagram = socket_flags(socket as usize) == Some(WSK_FLAG_DATAGRAM_SOCKET);
    if flags != 0 || !datagram {
        if !datagram {
            violation(format!("WskReceiveFrom on {socket:p}, which is not a datagram socket"));
        }
        // SAFETY: taken by begin_socket_io, not completed.
        unsafe { complete(irp, STATUS_INVALID_PARAMETER, 0) };
        return STATUS_INVALID_PARAMETER;
    }
    let mut delay = None;
    match fault_for(WskCall::ReceiveFrom) {
        Some(CallFault::Delay(d)) => delay = Some(d),
        Some(fault) => return run_fault(irp, Some(sock), fault),
        None => {}
    }
    let pieces = Pieces(pieces);
    let want: usize = pieces.0.iter().map(|(_, n)| n).sum();
    let out = (SendPtr(remote), SendPtr(control_flags.cast()));
    let fd = sock.fd;
    let mut start_at: Option<Instant> = None;
    run_ready(irp, Some(sock), false, move |op| {
        let pieces = &pieces;
        let out = &out;
        if op.is_cancelled() {
            return Step::Done(STATUS_CANCELLED, 0);
        }
        if let Some(d) = delay {
            let at = *start_at.get_or_insert_with(|| Instant::now() + d);
            if Instant::now() < at {
                return Step::Until(at);
            }
        }
        let mut tmp = vec![0u8; want];
        // SAFETY: sockaddr_storage is plain C data; all zeroes is valid.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // MSG_TRUNC: the datagram's real length, even if longer than `tmp`.
        // SAFETY: our socket; `tmp` holds `want` bytes; `ss`/`len` a buffer.
        let n = unsafe {
            libc::recvfrom(
                fd,
                tmp.as_mut_ptr().cast(),
                tmp.len(),
                libc::MSG_TRUNC,
                (&mut ss as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        };
        if n < 0 {
            let e = errno();
            if e == libc::EAGAIN {
                return Step::Wait(fd, libc::EPOLLIN as u32);
            }
            return Step::Done(errno_to_status(e), 0);
        }
        let real = n as usize;
        let got = real.min(want);
        let mut at = 0;
        for (p, k) in &pieces.0 {
            let k = (*k).min(got - at);
            // SAFETY: `*p` is MDL-described writable memory of at least `k`
            // bytes, valid until completion; `tmp[at..]` has `k` bytes.
            unsafe { std::ptr::copy_nonoverlapping(tmp[at..].as_ptr(), *p, k) };
            at += k;
        }
        if !out.0 .0.is_null() {
            // SAFETY: the caller's buffer, large enough for the socket's
            // family (WSK contract), valid until completion; only this
            // worker completes the IRP (not a "connect" IRP).
            unsafe { from_linux(&ss, out.0 .0.cast()) };
        }
        if !out.1 .0.is_null() {
            let f: u32 = if real > want { MSG_TRUNC } else { 0 };
            // SAFETY: the caller's ULONG, valid until completion.
            unsafe { out.1 .0.cast::<u32>().write_unaligned(f) };
        }
        Step::Done(STATUS_SUCCESS, got)
    })
}

/// For tests: whether `socket` (a WSK_SOCKET of the host provider) is a
/// listening socket that listens.
pub fn listening(socket: PVOID) -> bool {
    is_listening(socket as usize) == Some(true)
}
