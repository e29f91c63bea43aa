//! SO_WSK_EVENT_CALLBACK: enabling and disabling a connection socket's event
//! callbacks (Microsoft Learn, "SO_WSK_EVENT_CALLBACK").

use crate::io::{complete, take};
use crate::nt::*;

const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB_u32 as NTSTATUS;

/// WskControlSocket(SOL_SOCKET, SO_WSK_EVENT_CALLBACK).
///
/// # Safety
/// The caller's WskControlSocket arguments.
pub(crate) unsafe fn control(_socket: PVOID, _request: i32, _in_size: usize, _in_buf: PVOID, irp: PVOID) -> NTSTATUS {
    // SAFETY: the caller's IRP, or NULL.
    if !irp.is_null() && unsafe { take(irp, "WskControlSocket(SO_WSK_EVENT_CALLBACK)") } {
        // SAFETY: taken just now, completed once.
        unsafe { complete(irp, STATUS_NOT_SUPPORTED, 0) };
    }
    STATUS_NOT_SUPPORTED
}
