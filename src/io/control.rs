//! SafeWskRelease and SafeWskControlSocket: the calls on a socket that
//! drivers made through the raw WSK_SOCKET before sockets became handles.

use core::mem::size_of;
use core::ptr;

use crate::handles::{Kind, Take, SAFEWSK_SOCKET};
use crate::io::{cancel_at_deadline, check, check_any, SocketCall};
use crate::kernel::nt::*;
use crate::kernel::status::{require_irql, Status};

/// SafeWskRelease: the socket's WskRelease for a data indication list a
/// WskReceiveEvent callback retained, counted as a call inside one of the
/// socket's functions (a close waits for it). No IRP, no wait.
///
/// # Safety
/// The API contract of SafeWskRelease.
pub unsafe fn release(socket: *mut SAFEWSK_SOCKET, list: *mut WSK_DATA_INDICATION) -> Status {
    let h = check(socket)?;
    if list.is_null() {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    require_irql(DISPATCH_LEVEL)?;
    let call = SocketCall::acquire(h, Take::CallWithoutIrp)?;
    let entry = call.dispatch()?.WskRelease;
    if entry.is_null() {
        return Err(STATUS_NOT_SUPPORTED);
    }
    // SAFETY: the connection dispatch table's WskRelease is a
    // PFN_WSK_RELEASE_DATA_INDICATION_LIST (wsk.h), a function pointer.
    let f = unsafe { core::mem::transmute_copy::<PFN_UNUSED, PFN_WSK_RELEASE_DATA_INDICATION_LIST>(&entry) };
    // SAFETY: the provider's WskRelease of an open (held) socket with a list
    // the driver retained from it (the API contract), at IRQL <=
    // DISPATCH_LEVEL ("PFN_WSK_RELEASE_DATA_INDICATION_LIST").
    let status = unsafe { f(call.socket(), list) };
    call.returned();
    drop(call);
    if nt_success(status) {
        Ok(STATUS_SUCCESS)
    } else {
        Err(status)
    }
}

/// What SafeWskControlSocket accepts: each request with the exact buffer
/// sizes its Microsoft Learn page gives, on the kinds of socket the page
/// says it applies to.
struct Allowed {
    request: WSK_CONTROL_SOCKET_TYPE,
    code: ULONG,
    level: ULONG,
    input: usize,
    output: usize,
    /// KIND_* bits.
    kinds: u8,
}

const CONNECTION: u8 = 1;
const LISTEN: u8 = 2;
const DATAGRAM: u8 = 4;

fn kind_bit(kind: Kind) -> u8 {
    match kind {
        Kind::Connection => CONNECTION,
        Kind::Listen => LISTEN,
        Kind::Datagram => DATAGRAM,
    }
}

const ULONG_SIZE: usize = size_of::<ULONG>();

/// The allowlist: "SO_KEEPALIVE" (listening and connection-oriented
/// sockets) and "SO_RCVBUF" (listening, datagram and connection-oriented
/// sockets), WSK socket options, a ULONG either way; "SO_BROADCAST"
/// (datagram sockets only, a ULONG); TCP_NODELAY (a transport-level option,
/// which WSK passes to the transport: "The underlying network protocol
/// might support additional socket options", PFN_WSK_CONTROL_SOCKET; a
/// ULONG as Winsock's "IPPROTO_TCP socket options" gives it; connection
/// sockets), and "SIO_WSK_QUERY_IDEAL_SEND_BACKLOG" (a SIZE_T out, Level 0;
/// connection sockets).
const ALLOWED: [Allowed; 9] = [
    Allowed {
        request: WskSetOption,
        code: SO_KEEPALIVE,
        level: SOL_SOCKET,
        input: ULONG_SIZE,
        output: 0,
        kinds: CONNECTION | LISTEN,
    },
    Allowed {
        request: WskGetOption,
        code: SO_KEEPALIVE,
        level: SOL_SOCKET,
        input: 0,
        output: ULONG_SIZE,
        kinds: CONNECTION | LISTEN,
    },
    Allowed {
        request: WskSetOption,
        code: SO_RCVBUF,
        level: SOL_SOCKET,
        input: ULONG_SIZE,
        output: 0,
        kinds: CONNECTION | LISTEN | DATAGRAM,
    },
    Allowed {
        request: WskGetOption,
        code: SO_RCVBUF,
        level: SOL_SOCKET,
        input: 0,
        output: ULONG_SIZE,
        kinds: CONNECTION | LISTEN | DATAGRAM,
    },
    Allowed {
        request: WskSetOption,
        code: SO_BROADCAST,
        level: SOL_SOCKET,
        input: ULONG_SIZE,
        output: 0,
        kinds: DATAGRAM,
    },
    Allowed {
        request: WskGetOption,
        code: SO_BROADCAST,
        level: SOL_SOCKET,
        input: 0,
        output: ULONG_SIZE,
        kinds: DATAGRAM,
    },
    Allowed {
        request: WskSetOption,
        code: TCP_NODELAY,
        level: IPPROTO_TCP,
        input: ULONG_SIZE,
        output: 0,
        kinds: CONNECTION,
    },
    Allowed {
        request: WskGetOption,
        code: TCP_NODELAY,
        level: IPPROTO_TCP,
        input: 0,
        output: ULONG_SIZE,
        kinds: CONNECTION,
    },
    Allowed {
        request: WskIoctl,
        code: SIO_WSK_QUERY_IDEAL_SEND_BACKLOG,
        level: 0,
        input: 0,
        output: size_of::<SIZE_T>(),
        kinds: CONNECTION,
    },
];

/// The arguments of SafeWskControlSocket after the socket.
#[derive(Clone, Copy)]
pub struct ControlArgs {
    pub request: WSK_CONTROL_SOCKET_TYPE,
    pub code: ULONG,
    pub level: ULONG,
    pub input_size: SIZE_T,
    pub input: *const core::ffi::c_void,
    pub output_size: SIZE_T,
    pub output: *mut core::ffi::c_void,
    pub returned: *mut SIZE_T,
    pub timeout_ms: ULONG,
}

/// Parameters 2 to 8 against the allowlist, for a socket of `kind`.
fn allowed(a: &ControlArgs, kind: Kind) -> Result<&'static Allowed, NTSTATUS> {
    if !(WskSetOption..=WskIoctl).contains(&a.request) {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    let bit = kind_bit(kind);
    let mut entries = ALLOWED.iter().filter(|e| e.request == a.request && e.code == a.code && e.kinds & bit != 0);
    let entry = entries.next().ok_or(STATUS_INVALID_PARAMETER_3)?;
    if entry.level != a.level {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    if a.input_size != entry.input {
        return Err(STATUS_INVALID_PARAMETER_5);
    }
    if a.input.is_null() != (entry.input == 0) {
        return Err(STATUS_INVALID_PARAMETER_6);
    }
    if a.output_size != entry.output {
        return Err(STATUS_INVALID_PARAMETER_7);
    }
    if a.output.is_null() != (entry.output == 0) {
        return Err(STATUS_INVALID_PARAMETER_8);
    }
    Ok(entry)
}

/// SafeWskControlSocket: one allowed WskControlSocket with the socket's IRP,
/// its deadline and cancellation. The values travel through a buffer on
/// this thread's stack (resident: the wait is a KernelMode wait), so the
/// caller's buffers may be paged.
///
/// # Safety
/// The API contract of SafeWskControlSocket.
pub unsafe fn control(socket: *mut SAFEWSK_SOCKET, a: ControlArgs) -> Status {
    let (h, kind) = check_any(socket)?;
    let entry = allowed(&a, kind)?;
    require_irql(APC_LEVEL)?;
    let mut call = SocketCall::acquire(h, Take::Call)?;
    let table_entry = call.basic()?.WskControlSocket;
    if table_entry.is_null() {
        return Err(STATUS_NOT_SUPPORTED);
    }
    // SAFETY: WskControlSocket is a PFN_WSK_CONTROL_SOCKET (wsk.h).
    let f = unsafe { core::mem::transmute_copy::<PFN_UNUSED, PFN_WSK_CONTROL_SOCKET>(&table_entry) };
    let mut input: u64 = 0;
    if entry.input != 0 {
        // SAFETY: `a.input` is `entry.input` (<= 8) readable bytes (checked
        // non-NULL; the API contract), copied into a local of 8 bytes.
        unsafe { ptr::copy_nonoverlapping(a.input.cast::<u8>(), ptr::addr_of_mut!(input).cast::<u8>(), entry.input) };
    }
    let mut output: u64 = 0;
    let in_ptr = if entry.input == 0 { ptr::null_mut() } else { ptr::addr_of_mut!(input).cast() };
    let out_ptr = if entry.output == 0 { ptr::null_mut() } else { ptr::addr_of_mut!(output).cast() };
    let wsk_socket = call.socket();
    let issue = |irp| {
        // SAFETY: the provider's WskControlSocket of an open (held) socket
        // with an allowed request and its documented sizes; the buffers live
        // on this resident stack until the IRP has completed; no
        // OutputSizeReturned (the IRP's Information carries it).
        unsafe {
            f(wsk_socket, a.request, a.code, a.level, entry.input, in_ptr, entry.output, out_ptr, ptr::null_mut(), irp)
        }
    };
    // SAFETY: IRQL <= APC_LEVEL; `issue` hands the IRP to exactly one WSK
    // call.
    let done = unsafe { call.call(b"WskControlSocket\0", Some(a.timeout_ms), issue, cancel_at_deadline) }?;
    drop(call);
    if done.timed_out && !nt_success(done.status) {
        return Err(STATUS_IO_TIMEOUT);
    }
    if !nt_success(done.status) {
        return Err(done.status);
    }
    if entry.output != 0 {
        // SAFETY: `a.output` is `entry.output` (<= 8) writable bytes (checked
        // non-NULL; the API contract); `output` is a local of 8 bytes.
        unsafe { ptr::copy_nonoverlapping(ptr::addr_of!(output).cast::<u8>(), a.output.cast::<u8>(), entry.output) };
    }
    if !a.returned.is_null() {
        // SAFETY: writable per the API contract.
        unsafe { *a.returned = done.information.min(entry.output) };
    }
    Ok(STATUS_SUCCESS)
}
