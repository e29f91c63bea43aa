//! The connect behind SafeWskSocketConnectWithOptions: WskSocket, then
//! WskControlSocket(WskSetOption) for each option asked for, then WskBind,
//! then WskConnect, each through `irp::call_and_wait_on` on the socket
//! record's IRP (no IRP allocated per step), under one deadline.
//!
//! Why: "if the WSK application must set a socket option or issue an IOCTL
//! before binding or connecting, it must call WskSocket, WskBind and
//! WskConnect instead of WskSocketConnect" (Microsoft Learn,
//! "PFN_WSK_SOCKET_CONNECT").
//!
//! The options, each checked against its own WSK page on Microsoft Learn
//! (all at level SOL_SOCKET, a ULONG value, set with an IRP, and documented
//! as applying to connection-oriented sockets):
//! - SO_EXCLUSIVEADDRUSE ("SO_EXCLUSIVEADDRUSE": "it must do so before the
//!   socket is bound to a local transport address");
//! - SO_REUSEADDR ("SO_REUSEADDR": likewise before the bind);
//! - SO_KEEPALIVE ("SO_KEEPALIVE": listening and connection-oriented
//!   sockets);
//! - SO_RCVBUF ("SO_RCVBUF": listening, datagram and connection-oriented
//!   sockets; "Some transports might not support this socket option").
//!
//! All four are applied between WskSocket and WskBind: the two address
//! options must be, and applying the others there too means the connection
//! exists only once every option is in effect. Left out: TCP_NODELAY (WSK
//! sends take WSK_FLAG_NODELAY per call instead; no WSK option page for it
//! was found), SO_SNDBUF (no WSK page for it was found), and IPV6_V6ONLY
//! (documented for Winsock's dual-stack sockets, not on a WSK option page;
//! a connecting socket has one family anyway, chosen by the local address).
//!
//! A socket that WskSocket made is recorded among the client's open sockets
//! at once (its record is reserved before WskSocket is called) and, on any
//! later failure, closed through the library's own close path
//! (`socket::close`): it is never leaked and never handed out before the
//! connect succeeded.

use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use super::client_context;
use super::validate::ConnectArgs;
use crate::client::{Inside, SAFEWSK_CLIENT};
use crate::handles::{Kind, Reserved, SAFEWSK_SOCKET};
use crate::kernel::deadline::Deadline;
use crate::kernel::irp::{self, call_and_wait_on, Completion};
use crate::kernel::nt::*;
use crate::kernel::report;
use crate::kernel::status::{require_irql, Status};

/// `SAFEWSK_SOCKET_OPTIONS.Mask`: set SO_EXCLUSIVEADDRUSE to
/// `ExclusiveAddressUse`.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_OPTION_EXCLUSIVEADDRUSE: ULONG = 0x0000_0001 as ULONG;
/// `SAFEWSK_SOCKET_OPTIONS.Mask`: set SO_REUSEADDR to `ReuseAddress`.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_OPTION_REUSEADDR: ULONG = 0x0000_0002 as ULONG;
/// `SAFEWSK_SOCKET_OPTIONS.Mask`: set SO_KEEPALIVE to `KeepAlive`.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_OPTION_KEEPALIVE: ULONG = 0x0000_0004 as ULONG;
/// `SAFEWSK_SOCKET_OPTIONS.Mask`: set SO_RCVBUF to `ReceiveBufferSize`.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_OPTION_RCVBUF: ULONG = 0x0000_0008 as ULONG;

const ALL_OPTIONS: ULONG =
    SAFEWSK_OPTION_EXCLUSIVEADDRUSE | SAFEWSK_OPTION_REUSEADDR | SAFEWSK_OPTION_KEEPALIVE | SAFEWSK_OPTION_RCVBUF;

/// The socket options SafeWskSocketConnectWithOptions sets before it binds
/// and connects. Zero it, set `Size` to sizeof(SAFEWSK_SOCKET_OPTIONS), then
/// for each option set its bit in `Mask` and its field. A field whose bit
/// is clear must be 0.
#[repr(C)]
#[allow(non_snake_case)] // the C header's field names
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SAFEWSK_SOCKET_OPTIONS {
    /// sizeof(SAFEWSK_SOCKET_OPTIONS) (24): the version of this structure.
    pub Size: ULONG,
    /// SAFEWSK_OPTION_* bits: which of the fields below are set.
    pub Mask: ULONG,
    /// SO_EXCLUSIVEADDRUSE: 0 or 1. Not 1 together with `ReuseAddress` 1.
    pub ExclusiveAddressUse: ULONG,
    /// SO_REUSEADDR: 0 or 1.
    pub ReuseAddress: ULONG,
    /// SO_KEEPALIVE: 0 or 1.
    pub KeepAlive: ULONG,
    /// SO_RCVBUF: the receive buffer size in bytes, 1 to 0x7FFFFFFF.
    pub ReceiveBufferSize: ULONG,
}

/// The options a listening socket takes ("SO_EXCLUSIVEADDRUSE",
/// "SO_REUSEADDR", "SO_KEEPALIVE", "SO_RCVBUF": each WSK page lists
/// listening sockets).
pub(crate) const LISTEN_OPTIONS: ULONG = ALL_OPTIONS;
/// The options a datagram socket takes: not SO_KEEPALIVE, a
/// connection-oriented option.
pub(crate) const DATAGRAM_OPTIONS: ULONG =
    SAFEWSK_OPTION_EXCLUSIVEADDRUSE | SAFEWSK_OPTION_REUSEADDR | SAFEWSK_OPTION_RCVBUF;

/// One option to set: name and value.
type Setting = (ULONG, ULONG, &'static [u8]);

/// The validated options, in the order they are applied.
pub(crate) struct Settings {
    list: [Option<Setting>; 4],
}

impl Settings {
    /// SO_EXCLUSIVEADDRUSE 1 and nothing else: what a server socket made
    /// without options gets ("Using SO_EXCLUSIVEADDRUSE": it keeps other
    /// sockets from being bound to the same address and port; "Sharing
    /// Transport Addresses": a later bind to the port is then INUSE or
    /// DENIED instead of CHECK).
    pub(crate) fn exclusive() -> Settings {
        Settings {
            list: [Some((SO_EXCLUSIVEADDRUSE, 1, b"WskControlSocket(SO_EXCLUSIVEADDRUSE)\0")), None, None, None],
        }
    }
}

/// Reads and checks the options (parameter 4).
///
/// # Safety
/// `options` is NULL or points to readable memory of at least its `Size`
/// field, and of sizeof(SAFEWSK_SOCKET_OPTIONS) when `Size` says so.
unsafe fn read_options(options: *const SAFEWSK_SOCKET_OPTIONS) -> Result<Settings, NTSTATUS> {
    // SAFETY: forwarded caller guarantee.
    unsafe { read_options_of(options, ALL_OPTIONS) }
}

/// Reads and checks options of which `allowed` (SAFEWSK_OPTION_* bits) are
/// allowed: Err(STATUS_INVALID_PARAMETER_4) for anything else (the caller
/// renumbers it to its own position). NULL: no option.
///
/// # Safety
/// As [`read_options`].
pub(crate) unsafe fn read_options_of(
    options: *const SAFEWSK_SOCKET_OPTIONS,
    allowed: ULONG,
) -> Result<Settings, NTSTATUS> {
    let mut s = Settings { list: [None; 4] };
    if options.is_null() {
        return Ok(s);
    }
    // SAFETY: non-null; its first ULONG, Size, is readable (contract).
    let size = unsafe { ptr::read_unaligned(options.cast::<ULONG>()) };
    if size as usize != size_of::<SAFEWSK_SOCKET_OPTIONS>() {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    // SAFETY: Size says the whole structure is there (contract).
    let o = unsafe { ptr::read_unaligned(options) };
    if o.Mask & !(ALL_OPTIONS & allowed) != 0 {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    let set = |bit: ULONG| o.Mask & bit != 0;
    let flag_ok = |bit: ULONG, v: ULONG| if set(bit) { v <= 1 } else { v == 0 };
    if !flag_ok(SAFEWSK_OPTION_EXCLUSIVEADDRUSE, o.ExclusiveAddressUse)
        || !flag_ok(SAFEWSK_OPTION_REUSEADDR, o.ReuseAddress)
        || !flag_ok(SAFEWSK_OPTION_KEEPALIVE, o.KeepAlive)
    {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    let rcvbuf_ok = if set(SAFEWSK_OPTION_RCVBUF) {
        (1..=0x7FFF_FFFF).contains(&o.ReceiveBufferSize)
    } else {
        o.ReceiveBufferSize == 0
    };
    // Winsock: SO_EXCLUSIVEADDRUSE and SO_REUSEADDR exclude each other
    // ("Using SO_REUSEADDR and SO_EXCLUSIVEADDRUSE").
    if !rcvbuf_ok || (o.ExclusiveAddressUse == 1 && o.ReuseAddress == 1) {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    let [a, b, c, d] = &mut s.list;
    if set(SAFEWSK_OPTION_EXCLUSIVEADDRUSE) {
        *a = Some((SO_EXCLUSIVEADDRUSE, o.ExclusiveAddressUse, b"WskControlSocket(SO_EXCLUSIVEADDRUSE)\0"));
    }
    if set(SAFEWSK_OPTION_REUSEADDR) {
        *b = Some((SO_REUSEADDR, o.ReuseAddress, b"WskControlSocket(SO_REUSEADDR)\0"));
    }
    if set(SAFEWSK_OPTION_KEEPALIVE) {
        *c = Some((SO_KEEPALIVE, o.KeepAlive, b"WskControlSocket(SO_KEEPALIVE)\0"));
    }
    if set(SAFEWSK_OPTION_RCVBUF) {
        *d = Some((SO_RCVBUF, o.ReceiveBufferSize, b"WskControlSocket(SO_RCVBUF)\0"));
    }
    Ok(s)
}

/// SafeWskSocketConnect's parameter statuses renumbered to this export's
/// positions (Client 1, LocalAddress 2, RemoteAddress 3, SocketContext 5,
/// Dispatch 6, Socket 7).
/// SocketType (2) and Protocol (3) are not this export's parameters: they
/// are refused only when the provider's transport list has no TCP, which is
/// STATUS_NOT_SUPPORTED here.
fn renumber(status: NTSTATUS) -> NTSTATUS {
    match status {
        STATUS_INVALID_PARAMETER_2 | STATUS_INVALID_PARAMETER_3 => STATUS_NOT_SUPPORTED,
        STATUS_INVALID_PARAMETER_4 => STATUS_INVALID_PARAMETER_2,
        STATUS_INVALID_PARAMETER_5 => STATUS_INVALID_PARAMETER_3,
        STATUS_INVALID_PARAMETER_7 => STATUS_INVALID_PARAMETER_5,
        STATUS_INVALID_PARAMETER_8 => STATUS_INVALID_PARAMETER_6,
        STATUS_INVALID_PARAMETER_12 => STATUS_INVALID_PARAMETER_7,
        other => other,
    }
}

/// A step's completion as a result: a step that ran into the deadline is
/// STATUS_IO_TIMEOUT even if the provider completed it successfully after
/// the cancel.
fn step(done: Completion) -> Result<Completion, NTSTATUS> {
    if done.timed_out {
        Err(STATUS_IO_TIMEOUT)
    } else if nt_success(done.status) {
        Ok(done)
    } else {
        Err(done.status)
    }
}

/// A provider dispatch entry declared PFN_UNUSED, as the function type it is.
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

/// Closes a half-made socket: its slot is reserved by this connect and was
/// never handed out, so nothing else can call it. If the close cannot be
/// issued (no completion context) or the provider does not consume it, the
/// slot becomes an orphan, which cleanup closes: the socket is never leaked
/// and never reaches the driver.
///
/// # Safety
/// IRQL <= APC_LEVEL; `slot` holds a socket WskSocket made, with no call in
/// progress on it and its IRP idle.
pub(crate) unsafe fn close_half_made(slot: Reserved, device: PDEVICE_OBJECT) {
    let socket = slot.socket();
    // SAFETY: a socket from WskSocket (or WskAccept): its Dispatch is one of
    // the provider's tables, each beginning with the basic functions, valid
    // until the close.
    let table = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_BASIC_DISPATCH>();
    // SAFETY: as above; NULL is handled.
    let Some(close) = unsafe { table.as_ref() }.and_then(|t| t.WskCloseSocket) else {
        // Nothing can close it: the slot is given up.
        return;
    };
    let issue = |irp| {
        // SAFETY: the provider's WskCloseSocket of a socket with no call in
        // progress.
        unsafe { close(socket, irp) }
    };
    // SAFETY: IRQL <= APC_LEVEL; the slot's idle IRP; `issue` hands it to
    // exactly one WSK function.
    match unsafe { call_and_wait_on(slot.irp(), device, b"WskCloseSocket (half-made)\0", None, issue, cancel) } {
        Ok(done) if done.consumed => drop(slot),
        Ok(done) => {
            report::report_values(report::SAFEWSK_REPORT_ORPHAN, done.status, 0, u32::MAX, 0);
            slot.orphan();
        }
        Err(status) => {
            report::report_values(report::SAFEWSK_REPORT_ORPHAN, status, 0, u32::MAX, 0);
            slot.orphan();
        }
    }
}

/// SafeWskSocketConnectWithOptions.
///
/// # Safety
/// The API contract of SafeWskSocketConnectWithOptions (`socket_out` null or
/// writable).
#[allow(clippy::too_many_arguments)] // the export's eight parameters
pub unsafe fn connect_with_options(
    client: *mut SAFEWSK_CLIENT,
    local: *const SOCKADDR,
    remote: *const SOCKADDR,
    options: *const SAFEWSK_SOCKET_OPTIONS,
    socket_context: PVOID,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    socket_out: *mut *mut SAFEWSK_SOCKET,
    timeout_ms: ULONG,
) -> Status {
    let args = ConnectArgs {
        socket_type: SOCK_STREAM,
        protocol: IPPROTO_TCP,
        local,
        remote,
        flags: 0,
        socket_context,
        dispatch,
        owning_process: ptr::null_mut(),
        owning_thread: ptr::null_mut(),
        security_descriptor: ptr::null_mut(),
    };
    let (pinned, mut cx) = client_context(client, !socket_out.is_null());
    // No security descriptor is passed: nothing to look up.
    cx.sds = None;
    // SAFETY: the pointers are null or readable per the API contract.
    let others = unsafe { args.validate(cx) }.map_err(renumber);
    if let Err(st @ (STATUS_INVALID_PARAMETER_1 | STATUS_INVALID_PARAMETER_2 | STATUS_INVALID_PARAMETER_3)) = others {
        return Err(st);
    }
    // SAFETY: `options` is null or readable per the API contract.
    let settings = unsafe { read_options(options) }?;
    others?;
    require_irql(APC_LEVEL)?;
    let inside = pinned?.ok_or(STATUS_INVALID_LEVEL)?;
    inside.connecting()?;
    let block = inside.block();
    // SAFETY: validated as parameter 2: a SOCKADDR_IN or SOCKADDR_IN6.
    let family = unsafe { ptr::read_unaligned(local.cast::<ADDRESS_FAMILY>()) };
    let deadline = Deadline::start(timeout_ms);
    let device = block.device();
    let make = Make {
        kind: Kind::Connection,
        flags: WSK_FLAG_CONNECTION_SOCKET,
        family,
        socket_type: SOCK_STREAM,
        protocol: IPPROTO_TCP,
        context: socket_context,
        dispatch,
    };
    // SAFETY: IRQL <= APC_LEVEL; the local address was validated and lives
    // until this call returns.
    let slot = unsafe { make_bound(&inside, &make, &settings, local, deadline) }?;
    // SAFETY: a socket WskSocket just made (WSK_FLAG_CONNECTION_SOCKET), no
    // call on it; the remote address was validated and lives until this
    // call returns.
    match unsafe { connect_step(device, slot.irp(), slot.socket(), remote, deadline) } {
        Ok(()) => {
            // SAFETY: `socket_out` was checked non-null as parameter 7.
            unsafe { *socket_out = slot.publish() };
            Ok(STATUS_SUCCESS)
        }
        Err(status) => {
            // SAFETY: IRQL <= APC_LEVEL; no call on it any more (every
            // step's IRP has completed).
            unsafe { close_half_made(slot, device) };
            Err(status)
        }
    }
}

/// What WskSocket is asked to make: a socket of `kind` (whose slot records
/// the client `dispatch` table, for a connection socket's callbacks).
pub(crate) struct Make {
    pub(crate) kind: Kind,
    /// WSK_FLAG_CONNECTION_SOCKET, WSK_FLAG_LISTEN_SOCKET or
    /// WSK_FLAG_DATAGRAM_SOCKET, matching `kind`.
    pub(crate) flags: ULONG,
    pub(crate) family: ADDRESS_FAMILY,
    pub(crate) socket_type: USHORT,
    pub(crate) protocol: ULONG,
    pub(crate) context: PVOID,
    pub(crate) dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
}

/// WskSocket, then each option, then WskBind, on a socket slot reserved
/// first, each step through `call_and_wait_on` on the slot's IRP under one
/// deadline. Returns the slot with its socket recorded and its family set,
/// not yet published; on any failure after WskSocket the half-made socket
/// is closed (or left to cleanup as an orphan) and the step's status
/// returned.
///
/// # Safety
/// IRQL <= APC_LEVEL; inside a client that may make sockets
/// ([`Inside::connecting`]); `local` is a validated address of `m.family`
/// that lives until this returns.
pub(crate) unsafe fn make_bound(
    inside: &Inside,
    m: &Make,
    settings: &Settings,
    local: *const SOCKADDR,
    deadline: Deadline,
) -> Result<Reserved, NTSTATUS> {
    let block = inside.block();
    let provider = block.provider();
    // SAFETY: the provider dispatch captured at startup stays valid until
    // the NPI is released at cleanup, which waits for us to leave; its
    // WskSocket entry is NULL or a PFN_WSK_SOCKET.
    let socket_entry = unsafe { (*provider.Dispatch).WskSocket };
    // SAFETY: WSK_PROVIDER_DISPATCH's WskSocket is NULL or a PFN_WSK_SOCKET.
    let wsk_socket = unsafe { entry::<PFN_WSK_SOCKET>(socket_entry) }?;
    let device = block.device();
    // SAFETY: IRQL <= APC_LEVEL.
    let slot = unsafe { inside.reserve_socket_of(m.kind, m.dispatch) }?;
    slot.set_family(m.family);
    // Every step runs on the slot's IRP (IoReuseIrp before each): the socket
    // is not handed out before the last step, so no other call can use it.
    let irp = slot.irp();
    let issue = |irp| {
        // SAFETY: the provider's WskSocket of the entered client, with
        // validated arguments and the slot's idle IRP.
        unsafe {
            wsk_socket(
                provider.Client,
                m.family,
                m.socket_type,
                m.protocol,
                m.flags,
                m.context,
                m.dispatch.cast::<c_void>(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                irp,
            )
        }
    };
    // SAFETY: IRQL <= APC_LEVEL; `issue` hands the IRP to exactly one WSK
    // function.
    let done = unsafe { call_and_wait_on(irp, device, b"WskSocket\0", Some(deadline.remaining()), issue, cancel) }?;
    let socket = done.information as *mut WSK_SOCKET;
    if !nt_success(done.status) || socket.is_null() {
        // A provider that reports success without a socket: nothing to close.
        return Err(step(done).map_or_else(|e| e, |_| STATUS_UNSUCCESSFUL));
    }
    slot.set_socket(socket);
    if let Err(status) = step(done) {
        // SAFETY: IRQL <= APC_LEVEL; the socket WskSocket made, no call on it.
        unsafe { close_half_made(slot, device) };
        return Err(status);
    }
    // SAFETY: a socket WskSocket just made, with no call on it; the address
    // was validated and lives until this call returns.
    match unsafe { configure_bind(device, irp, socket, settings, local, deadline) } {
        Ok(()) => Ok(slot),
        Err(status) => {
            // SAFETY: IRQL <= APC_LEVEL; no call on it any more (every
            // step's IRP has completed).
            unsafe { close_half_made(slot, device) };
            Err(status)
        }
    }
}

/// The default action at a step's deadline: cancel its IRP.
fn cancel(irp: *mut IRP) {
    // SAFETY: call_and_wait_on passes the still-live IRP, at IRQL <=
    // APC_LEVEL.
    unsafe { irp::cancel(irp) }
}

/// Steps 2 and 3: each option, then WskBind (the same for every kind of
/// socket: every provider table begins with the basic functions and
/// WskBind, wsk.h).
///
/// # Safety
/// IRQL <= APC_LEVEL; `socket` is a socket from WskSocket with no call in
/// progress; `irp` is its record's IRP, idle and used by nobody else until
/// this returns; `local` is a valid address of its family, live until this
/// returns.
unsafe fn configure_bind(
    device: PDEVICE_OBJECT,
    irp: *mut IRP,
    socket: *mut WSK_SOCKET,
    settings: &Settings,
    local: *const SOCKADDR,
    deadline: Deadline,
) -> Result<(), NTSTATUS> {
    // SAFETY: a socket from WskSocket: its Dispatch is one of the provider's
    // tables, each beginning with the basic functions and WskBind; valid
    // until the close.
    let table = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_BIND_PREFIX>();
    // SAFETY: as above: NULL or the provider's table, valid until the close.
    let table = unsafe { table.as_ref() }.ok_or(STATUS_UNSUCCESSFUL)?;
    for &(name, value, what) in settings.list.iter().flatten() {
        // SAFETY: the entry is NULL or a PFN_WSK_CONTROL_SOCKET.
        let control = unsafe { entry::<PFN_WSK_CONTROL_SOCKET>(table.Basic.WskControlSocket) }?;
        let mut value: ULONG = value;
        let input: PVOID = ptr::addr_of_mut!(value).cast();
        let issue = |irp| {
            // SAFETY: the provider's WskControlSocket of an open socket; the
            // ULONG lives on this resident stack (KernelMode wait) until the
            // IRP has completed.
            unsafe {
                control(
                    socket,
                    WskSetOption,
                    name,
                    SOL_SOCKET,
                    size_of::<ULONG>(),
                    input,
                    0,
                    ptr::null_mut(),
                    ptr::null_mut(),
                    irp,
                )
            }
        };
        // SAFETY: IRQL <= APC_LEVEL; `issue` hands the IRP to one WSK call.
        step(unsafe { call_and_wait_on(irp, device, what, Some(deadline.remaining()), issue, cancel) }?)?;
    }
    // SAFETY: the entry is NULL or a PFN_WSK_BIND.
    let bind = unsafe { entry::<PFN_WSK_BIND>(table.WskBind) }?;
    let issue = |irp| {
        // SAFETY: the provider's WskBind of an open socket with a validated
        // address that lives until the IRP has completed.
        unsafe { bind(socket, local.cast_mut(), 0, irp) }
    };
    // SAFETY: as above.
    step(unsafe { call_and_wait_on(irp, device, b"WskBind\0", Some(deadline.remaining()), issue, cancel) }?)?;
    Ok(())
}

/// Step 4 of SafeWskSocketConnectWithOptions: WskConnect.
///
/// # Safety
/// As [`configure_bind`], for a connection socket that is bound, and its
/// remote address.
unsafe fn connect_step(
    device: PDEVICE_OBJECT,
    irp: *mut IRP,
    socket: *mut WSK_SOCKET,
    remote: *const SOCKADDR,
    deadline: Deadline,
) -> Result<(), NTSTATUS> {
    // SAFETY: a socket from WskSocket(WSK_FLAG_CONNECTION_SOCKET): its
    // Dispatch is the provider's connection table, valid until the close.
    let table = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
    // SAFETY: as above: NULL or the provider's table, valid until the close.
    let table = unsafe { table.as_ref() }.ok_or(STATUS_UNSUCCESSFUL)?;
    // SAFETY: the entry is NULL or a PFN_WSK_CONNECT.
    let connect = unsafe { entry::<PFN_WSK_CONNECT>(table.WskConnect) }?;
    let issue = |irp| {
        // SAFETY: the provider's WskConnect of an open, bound socket with a
        // validated address that lives until the IRP has completed.
        unsafe { connect(socket, remote.cast_mut(), 0, irp) }
    };
    // SAFETY: IRQL <= APC_LEVEL; `issue` hands the IRP to one WSK call.
    step(unsafe { call_and_wait_on(irp, device, b"WskConnect\0", Some(deadline.remaining()), issue, cancel) }?)?;
    Ok(())
}
