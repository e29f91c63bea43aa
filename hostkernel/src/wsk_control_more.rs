//! WskControlSocket beyond the SOL_SOCKET options of `wsk_control`: the
//! transport option TCP_NODELAY and the IOCTL
//! SIO_WSK_QUERY_IDEAL_SEND_BACKLOG, the two other requests safewsk's
//! SafeWskControlSocket allows (issue 18).
//!
//! Behaviour, with its source:
//! - TCP_NODELAY (level IPPROTO_TCP, a ULONG, 0 or not): a transport option
//!   WSK passes to the transport ("The underlying network protocol might
//!   support additional socket options", PFN_WSK_CONTROL_SOCKET, Microsoft
//!   Learn; Winsock's "IPPROTO_TCP socket options" gives its ULONG/BOOL
//!   form). WskSetOption: InputSize sizeof(ULONG), no output;
//!   WskGetOption: OutputSize sizeof(ULONG), no input; set and read back
//!   with setsockopt/getsockopt(IPPROTO_TCP, TCP_NODELAY) on the Linux
//!   socket. Another IPPROTO_TCP option: STATUS_NOT_SUPPORTED (not
//!   emulated).
//! - SIO_WSK_QUERY_IDEAL_SEND_BACKLOG (WskIoctl, `_WSAIOR(IOC_WSK, 3)`):
//!   no input, a SIZE_T out ("SIO_WSK_QUERY_IDEAL_SEND_BACKLOG", Microsoft
//!   Learn: "OutputSize: sizeof(SIZE_T)"); Level is not used by an IOCTL.
//!   Windows computes the ideal send backlog from the connection's
//!   bandwidth-delay product; Linux has no such figure, so the host answers
//!   the socket's send buffer size, getsockopt(SOL_SOCKET, SO_SNDBUF) — the
//!   same value its WskSendBacklogEvent reports. Another IOCTL:
//!   STATUS_NOT_SUPPORTED (not emulated).
//! - A wrong size or a missing (or superfluous) buffer: STATUS_INVALID_PARAMETER,
//!   as `wsk_control` does for the SOL_SOCKET options.
//!
//! The status is computed on the caller's thread; the IRP is completed from
//! a provider thread like every request (STATUS_PENDING), so a
//! `set_call_fault(WskCall::ControlSocket, ..)` applies as to the other
//! options (it is checked before this module is consulted).

use crate::nt::*;
use crate::wsk::{errno, errno_to_status};

const WSK_SET_OPTION: i32 = 0;
const WSK_GET_OPTION: i32 = 1;
const WSK_IOCTL: i32 = 2;
/// IPPROTO_TCP (ws2def.h), the level of TCP's options.
const LEVEL_TCP: u32 = 6;
/// TCP_NODELAY (ws2ipdef.h).
const TCP_NODELAY: u32 = 0x0001;
/// SIO_WSK_QUERY_IDEAL_SEND_BACKLOG = _WSAIOR(IOC_WSK, 0x3) (wsk.h):
/// IOC_OUT 0x40000000 | IOC_WSK 0x0F000000 | 3.
pub const SIO_WSK_QUERY_IDEAL_SEND_BACKLOG: u32 = 0x4F00_0003;
const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB_u32 as NTSTATUS;

/// The answer to a WskControlSocket this module emulates, or None for one
/// it leaves to `wsk_control` (every SOL_SOCKET option).
///
/// # Safety
/// The caller's WskControlSocket buffers: `in_buf` NULL or `in_size`
/// readable bytes, `out_buf` NULL or `out_size` writable bytes,
/// `out_returned` NULL or a writable SIZE_T.
#[allow(clippy::too_many_arguments)] // PFN_WSK_CONTROL_SOCKET's buffers
pub(crate) unsafe fn control(
    fd: i32,
    request: i32,
    code: u32,
    level: u32,
    in_size: usize,
    in_buf: PVOID,
    out_size: usize,
    out_buf: PVOID,
    out_returned: *mut usize,
) -> Option<(NTSTATUS, usize)> {
    let returned = |n: usize| {
        if !out_returned.is_null() {
            // SAFETY: the caller's SIZE_T (contract).
            unsafe { out_returned.write_unaligned(n) };
        }
    };
    if request == WSK_IOCTL {
        if code != SIO_WSK_QUERY_IDEAL_SEND_BACKLOG {
            return Some((STATUS_NOT_SUPPORTED, 0));
        }
        let size = std::mem::size_of::<usize>();
        if in_size != 0 || !in_buf.is_null() || out_size != size || out_buf.is_null() {
            return Some((STATUS_INVALID_PARAMETER, 0));
        }
        let backlog = crate::wsk_control::sndbuf(fd);
        // SAFETY: the caller's SIZE_T (OutputSize checked, non-NULL).
        unsafe { out_buf.cast::<usize>().write_unaligned(backlog) };
        returned(size);
        return Some((STATUS_SUCCESS, size));
    }
    if level != LEVEL_TCP {
        return None;
    }
    if code != TCP_NODELAY || !(request == WSK_SET_OPTION || request == WSK_GET_OPTION) {
        return Some((STATUS_NOT_SUPPORTED, 0));
    }
    if request == WSK_SET_OPTION {
        if in_size != 4 || in_buf.is_null() || out_size != 0 || !out_buf.is_null() {
            return Some((STATUS_INVALID_PARAMETER, 0));
        }
        // SAFETY: the caller's ULONG (InputSize 4, non-NULL).
        let v = unsafe { in_buf.cast::<u32>().read_unaligned() };
        let on = i32::from(v != 0);
        // SAFETY: a valid int of the right size on our socket.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&on as *const i32).cast(),
                std::mem::size_of::<i32>() as u32,
            )
        };
        return Some((if rc == 0 { STATUS_SUCCESS } else { errno_to_status(errno()) }, 0));
    }
    if out_size != 4 || out_buf.is_null() || in_size != 0 || !in_buf.is_null() {
        return Some((STATUS_INVALID_PARAMETER, 0));
    }
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as u32;
    // SAFETY: `v` is a writable int and `len` its size.
    let rc =
        unsafe { libc::getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, (&mut v as *mut i32).cast(), &mut len) };
    if rc != 0 {
        return Some((errno_to_status(errno()), 0));
    }
    // SAFETY: the caller's ULONG (OutputSize 4, non-NULL).
    unsafe { out_buf.cast::<u32>().write_unaligned(u32::from(v != 0)) };
    returned(4);
    Some((STATUS_SUCCESS, 4))
}
