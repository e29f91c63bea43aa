//! SafeWskDatagramSocket, SafeWskSendTo and SafeWskReceiveFrom: a datagram
//! socket (WskSocket with WSK_FLAG_DATAGRAM_SOCKET, its options, WskBind)
//! and its two calls, which take every kind of kernel buffer (probed and
//! locked as SafeWskSend and SafeWskReceive do, `io::buffer`).
//!
//! From Microsoft Learn:
//! - PFN_WSK_SEND_TO: Flags "reserved for system use. A WSK application
//!   must set this parameter to zero"; RemoteAddress is optional only for a
//!   socket given a fixed remote address (SIO_WSK_SET_REMOTE_ADDRESS, which
//!   safewsk does not offer): it is required here, of the socket's family,
//!   and copied to this thread's stack (resident during the KernelMode wait)
//!   so the caller's may be paged; no control information. The IRP's
//!   IoStatus.Information is the number of bytes sent.
//! - PFN_WSK_RECEIVE_FROM: Flags reserved (zero); RemoteAddress receives
//!   the sender's address (into a buffer on this stack, then copied);
//!   ControlFlags receives MSG_TRUNC when the datagram was larger than the
//!   buffer. A datagram too large for the buffer is reported as
//!   STATUS_BUFFER_OVERFLOW with the bytes that fit (Winsock's WSAEMSGSIZE;
//!   AFD's status for it), whether the provider says so with that status
//!   or with MSG_TRUNC.
//! - Both at IRQL <= DISPATCH_LEVEL; safewsk waits, so <= APC_LEVEL.
//! - "SO_BROADCAST" applies to datagram sockets only: set with
//!   SafeWskControlSocket; "SO_RCVBUF", "SO_EXCLUSIVEADDRUSE" and
//!   "SO_REUSEADDR" can be given at creation.

use core::ffi::c_void;
use core::ptr;

use super::{copy_out, make_socket, ServerSocket, SAFEWSK_ADDRESS};
use crate::client::SAFEWSK_CLIENT;
use crate::connect::options::{DATAGRAM_OPTIONS, SAFEWSK_SOCKET_OPTIONS};
use crate::connect::validate::read_endpoint;
use crate::handles::{Kind, Take, SAFEWSK_SOCKET};
use crate::io::buffer::{BufferMdl, MdlStorage, SAFEWSK_FLAG_NONPAGED_BUFFER};
use crate::io::{cancel_at_deadline, check_kind, SocketCall};
use crate::kernel::nt::*;
use crate::kernel::platform::LockOperation;
use crate::kernel::status::{require_irql, Status};

/// What SafeWskDatagramSocket makes.
const DATAGRAM: ServerSocket = ServerSocket {
    kind: Kind::Datagram,
    flags: WSK_FLAG_DATAGRAM_SOCKET,
    socket_type: SOCK_DGRAM,
    protocol: IPPROTO_UDP,
    options: DATAGRAM_OPTIONS,
};

/// SafeWskDatagramSocket.
///
/// # Safety
/// The API contract of SafeWskDatagramSocket.
pub unsafe fn datagram_socket(
    client: *mut SAFEWSK_CLIENT,
    local: *const SOCKADDR,
    options: *const SAFEWSK_SOCKET_OPTIONS,
    socket_out: *mut *mut SAFEWSK_SOCKET,
    timeout_ms: ULONG,
) -> Status {
    // SAFETY: forwarded API contract.
    unsafe { make_socket(DATAGRAM, client, local, options, socket_out, timeout_ms) }
}

/// Parameters 2 to 4 of both calls: a buffer, a length, and flags
/// (nothing but SAFEWSK_FLAG_NONPAGED_BUFFER: WSK's are reserved).
fn check_buffer(buffer: *const c_void, length: ULONG, flags: ULONG) -> Result<bool, NTSTATUS> {
    if buffer.is_null() {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    if length == 0 {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    if flags & !SAFEWSK_FLAG_NONPAGED_BUFFER != 0 {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    Ok(flags & SAFEWSK_FLAG_NONPAGED_BUFFER != 0)
}

/// A datagram table entry as its function type.
///
/// # Safety
/// `entry` is NULL or a function of type `F` (a function pointer type).
unsafe fn entry<F: Copy>(entry: PFN_UNUSED) -> Result<F, NTSTATUS> {
    if entry.is_null() {
        return Err(STATUS_NOT_SUPPORTED);
    }
    // SAFETY: F is a function pointer type (the size of a pointer), and the
    // entry is such a function per the caller.
    Ok(unsafe { core::mem::transmute_copy::<PFN_UNUSED, F>(&entry) })
}

/// SafeWskSendTo.
///
/// # Safety
/// The API contract of SafeWskSendTo.
#[allow(clippy::too_many_arguments)] // the export's seven parameters
pub unsafe fn send_to(
    socket: *mut SAFEWSK_SOCKET,
    buffer: *const c_void,
    length: ULONG,
    flags: ULONG,
    remote: *const SOCKADDR,
    timeout_ms: ULONG,
    bytes: *mut ULONG,
) -> Status {
    let h = check_kind(socket, Kind::Datagram)?;
    let nonpaged = check_buffer(buffer, length, flags)?;
    // SAFETY: `remote` is NULL or a readable SOCKADDR of its family (the API
    // contract).
    let endpoint = unsafe { read_endpoint(remote) }.ok_or(STATUS_INVALID_PARAMETER_5)?;
    // The socket's family is recorded when it is made, before its handle
    // exists: read after the handle's check.
    if endpoint.family() != h.slot.family() || endpoint.port() == 0 || endpoint.is_unspecified() {
        return Err(STATUS_INVALID_PARAMETER_5);
    }
    // Parameter 6 (TimeoutMs): every value means something; 7 (BytesSent)
    // is optional.
    require_irql(APC_LEVEL)?;
    let mut call = SocketCall::acquire(h, Take::Call)?;
    // SAFETY: the datagram table's WskSendTo is NULL or a PFN_WSK_SEND_TO.
    let send_to = unsafe { entry::<PFN_WSK_SEND_TO>(call.datagram_dispatch()?.WskSendTo) }?;
    let mut to = SAFEWSK_ADDRESS::default();
    let size = if endpoint.family() == AF_INET6 { 28 } else { 16 };
    // SAFETY: `remote` is readable for its family's size (read_endpoint
    // read that much); `to` is 28 bytes of ours.
    unsafe { ptr::copy_nonoverlapping(remote.cast::<u8>(), to.as_sockaddr().cast::<u8>(), size) };
    let to_ptr = to.as_sockaddr();
    let mut storage = MdlStorage::new();
    // SAFETY: buffer validity per the API contract (readable for `length`;
    // non-paged pool if so flagged); IRQL checked; `storage` is on this
    // stack and outlives the IRP.
    let buf = unsafe { BufferMdl::new(&mut storage, buffer.cast_mut(), length, LockOperation::Read, nonpaged) }?;
    let mut wsk_buf = WSK_BUF { Mdl: buf.mdl(), Offset: 0, Length: length as SIZE_T };
    let wsk_buf_ptr = ptr::addr_of_mut!(wsk_buf);
    let wsk_socket = call.socket();
    let issue = |irp| {
        // SAFETY: the provider's WskSendTo of an open (held) datagram socket;
        // Flags 0, no control information; the WSK_BUF, MDL and address
        // outlive the IRP (the call returns only after completion).
        unsafe { send_to(wsk_socket, wsk_buf_ptr, 0, to_ptr, 0, ptr::null_mut(), irp) }
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call.call(b"WskSendTo\0", Some(timeout_ms), issue, cancel_at_deadline) };
    drop(buf);
    let done = done?;
    if !bytes.is_null() {
        // SAFETY: writable per the API contract; never more than `length`.
        unsafe { *bytes = ULONG::try_from(done.information).unwrap_or(length).min(length) };
    }
    Ok(done.status)
}

/// SafeWskReceiveFrom.
///
/// # Safety
/// The API contract of SafeWskReceiveFrom.
#[allow(clippy::too_many_arguments)] // the export's seven parameters
pub unsafe fn receive_from(
    socket: *mut SAFEWSK_SOCKET,
    buffer: *mut c_void,
    length: ULONG,
    flags: ULONG,
    remote_out: *mut SAFEWSK_ADDRESS,
    timeout_ms: ULONG,
    bytes: *mut ULONG,
) -> Status {
    let h = check_kind(socket, Kind::Datagram)?;
    let nonpaged = check_buffer(buffer, length, flags)?;
    // Parameter 5 (RemoteAddress) is optional, 6 (TimeoutMs) any value.
    if bytes.is_null() {
        return Err(STATUS_INVALID_PARAMETER_7);
    }
    require_irql(APC_LEVEL)?;
    let mut call = SocketCall::acquire(h, Take::Call)?;
    // SAFETY: the datagram table's WskReceiveFrom is NULL or a
    // PFN_WSK_RECEIVE_FROM.
    let receive_from = unsafe { entry::<PFN_WSK_RECEIVE_FROM>(call.datagram_dispatch()?.WskReceiveFrom) }?;
    let mut from = SAFEWSK_ADDRESS::default();
    let from_ptr = from.as_sockaddr();
    let mut control_flags: ULONG = 0;
    let control_flags_ptr = ptr::addr_of_mut!(control_flags);
    let mut storage = MdlStorage::new();
    // SAFETY: buffer validity per the API contract (writable for `length`;
    // non-paged pool if so flagged); IRQL checked; `storage` is on this
    // stack and outlives the IRP.
    let buf = unsafe { BufferMdl::new(&mut storage, buffer, length, LockOperation::Write, nonpaged) }?;
    let mut wsk_buf = WSK_BUF { Mdl: buf.mdl(), Offset: 0, Length: length as SIZE_T };
    let wsk_buf_ptr = ptr::addr_of_mut!(wsk_buf);
    let wsk_socket = call.socket();
    let issue = |irp| {
        // SAFETY: the provider's WskReceiveFrom of an open (held) datagram
        // socket; Flags 0, no control buffer; the WSK_BUF, MDL, address and
        // flags buffers are on this resident stack and outlive the IRP.
        unsafe {
            receive_from(wsk_socket, wsk_buf_ptr, 0, from_ptr, ptr::null_mut(), ptr::null_mut(), control_flags_ptr, irp)
        }
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call.call(b"WskReceiveFrom\0", Some(timeout_ms), issue, cancel_at_deadline) };
    drop(buf);
    let done = done?;
    drop(call);
    // SAFETY: writable per the API contract; never more than `length`.
    unsafe { *bytes = ULONG::try_from(done.information).unwrap_or(length).min(length) };
    // SAFETY: written (if at all) by the provider before the completion.
    let control_flags = unsafe { ptr::read_volatile(control_flags_ptr) };
    let truncated =
        done.status == STATUS_BUFFER_OVERFLOW || (nt_success(done.status) && control_flags & MSG_TRUNC != 0);
    if nt_success(done.status) || truncated {
        // SAFETY: NULL or writable (contract).
        unsafe { copy_out(&from, remote_out) };
    }
    if truncated {
        return Err(STATUS_BUFFER_OVERFLOW);
    }
    Ok(done.status)
}
