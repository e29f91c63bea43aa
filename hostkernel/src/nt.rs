//! The kernel's view of the NT structures: offsets into the x64 layouts as the
//! public ntoskrnl symbols give them (`dt nt!_IRP`, `dt nt!_IO_STACK_LOCATION`,
//! `dt nt!_MDL`), and the WSK tables as wsk.h declares them.
//!
//! Deliberately independent of the safewsk crate's own declarations: the host
//! kernel reads and writes IRPs by these offsets, so a wrong offset in the
//! library shows up as a failing test instead of agreeing with itself.
#![allow(non_camel_case_types, non_snake_case, missing_docs)]

use std::ffi::c_void;

pub type NTSTATUS = i32;
pub type PVOID = *mut c_void;

const fn st(v: u32) -> NTSTATUS {
    v as NTSTATUS
}
pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_TIMEOUT: NTSTATUS = st(0x0000_0102);
pub const STATUS_PENDING: NTSTATUS = st(0x0000_0103);
pub const STATUS_UNSUCCESSFUL: NTSTATUS = st(0xC000_0001);
pub const STATUS_NOT_IMPLEMENTED: NTSTATUS = st(0xC000_0002);
pub const STATUS_INVALID_PARAMETER: NTSTATUS = st(0xC000_000D);
pub const STATUS_MORE_PROCESSING_REQUIRED: NTSTATUS = st(0xC000_0016);
pub const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = st(0xC000_0034);
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = st(0xC000_009A);
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = st(0xC000_00A3);
pub const STATUS_IO_TIMEOUT: NTSTATUS = st(0xC000_00B5);
pub const STATUS_CANCELLED: NTSTATUS = st(0xC000_0120);
pub const STATUS_INVALID_ADDRESS_COMPONENT: NTSTATUS = st(0xC000_0207);
pub const STATUS_ADDRESS_ALREADY_EXISTS: NTSTATUS = st(0xC000_020A);
pub const STATUS_CONNECTION_RESET: NTSTATUS = st(0xC000_020D);
pub const STATUS_CONNECTION_REFUSED: NTSTATUS = st(0xC000_0236);
pub const STATUS_NETWORK_UNREACHABLE: NTSTATUS = st(0xC000_023C);
pub const STATUS_HOST_UNREACHABLE: NTSTATUS = st(0xC000_023D);
pub const STATUS_INVALID_HANDLE: NTSTATUS = st(0xC000_0008);
pub const STATUS_CONNECTION_ABORTED: NTSTATUS = st(0xC000_0241);
pub const STATUS_NOINTERFACE: NTSTATUS = st(0xC000_02B9);
pub const STATUS_INVALID_DEVICE_REQUEST: NTSTATUS = st(0xC000_0010);
pub const STATUS_ACCESS_VIOLATION: NTSTATUS = st(0xC000_0005);

pub const PASSIVE_LEVEL: u8 = 0;
pub const APC_LEVEL: u8 = 1;
pub const DISPATCH_LEVEL: u8 = 2;

/// Windows address families (ws2def.h): AF_INET6 is 23 there, 10 on Linux.
pub const WIN_AF_INET: u16 = 2;
pub const WIN_AF_INET6: u16 = 23;

// IRP (x64): sizeof 0xD0.
pub const IRP_SIZE: usize = 0xD0;
pub const IRP_TYPE: usize = 0x00;
pub const IRP_SIZE_FIELD: usize = 0x02;
pub const IRP_IOSTATUS_STATUS: usize = 0x30;
pub const IRP_IOSTATUS_INFORMATION: usize = 0x38;
pub const IRP_PENDING_RETURNED: usize = 0x41;
pub const IRP_STACK_COUNT: usize = 0x42;
pub const IRP_CURRENT_LOCATION: usize = 0x43;
pub const IRP_CANCEL: usize = 0x44;
pub const IRP_CANCEL_ROUTINE: usize = 0x68;
pub const IRP_CURRENT_STACK_LOCATION: usize = 0xB8;
/// IO_TYPE_IRP.
pub const IO_TYPE_IRP: i16 = 6;
/// IO_TYPE_DEVICE (DEVICE_OBJECT.Type).
pub const IO_TYPE_DEVICE: i16 = 3;

// IO_STACK_LOCATION (x64): sizeof 0x48.
pub const STACK_SIZE: usize = 0x48;
pub const STACK_CONTROL: usize = 0x03;
pub const STACK_COMPLETION_ROUTINE: usize = 0x38;
pub const STACK_CONTEXT: usize = 0x40;
pub const SL_PENDING_RETURNED: u8 = 0x01;
pub const SL_INVOKE_ON_CANCEL: u8 = 0x20;
pub const SL_INVOKE_ON_SUCCESS: u8 = 0x40;
pub const SL_INVOKE_ON_ERROR: u8 = 0x80;

// MDL (x64): Next 0, Size 8, MdlFlags 0xA, Process 0x10, MappedSystemVa 0x18,
// StartVa 0x20, ByteCount 0x28, ByteOffset 0x2C; sizeof 0x30 + PFN array.
pub const MDL_NEXT: usize = 0x00;
pub const MDL_SIZE: usize = 0x08;
pub const MDL_FLAGS: usize = 0x0A;
pub const MDL_MAPPED_SYSTEM_VA: usize = 0x18;
pub const MDL_START_VA: usize = 0x20;
pub const MDL_BYTE_COUNT: usize = 0x28;
pub const MDL_BYTE_OFFSET: usize = 0x2C;
pub const MDL_HEADER: usize = 0x30;
pub const MDL_MAPPED_TO_SYSTEM_VA: u16 = 0x0001;
pub const MDL_PAGES_LOCKED: u16 = 0x0002;
pub const MDL_SOURCE_IS_NONPAGED_POOL: u16 = 0x0004;
pub const PAGE_SIZE: usize = 0x1000;

// POOL_FLAGS (wdm.h, "POOL_FLAGS" on Microsoft Learn): the pool type bits.
pub const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;
pub const POOL_FLAG_NON_PAGED_EXECUTE: u64 = 0x0000_0000_0000_0080;
pub const POOL_FLAG_PAGED: u64 = 0x0000_0000_0000_0100;

// KPROCESSOR_MODE and LOCK_OPERATION (wdm.h).
pub const KERNEL_MODE: i8 = 0;
pub const IO_READ_ACCESS: u32 = 0;
pub const IO_WRITE_ACCESS: u32 = 1;
pub const IO_MODIFY_ACCESS: u32 = 2;

// KEVENT = DISPATCHER_HEADER: Type at 0, Size (in ULONGs) at 2, SignalState
// (LONG) at 4; sizeof 0x18.
pub const EVENT_TYPE: usize = 0;
pub const EVENT_SIZE: usize = 2;
pub const EVENT_SIGNAL_STATE: usize = 4;
pub const EVENT_SIZE_ULONGS: u8 = 6;

// WSK (wsk.h)
pub const WSK_FLAG_ABORTIVE: u32 = 1;
pub const WSK_FLAG_WAITALL: u32 = 2;
pub const WSK_NO_WAIT: u32 = 0;
pub const WSK_INFINITE_WAIT: u32 = 0xFFFF_FFFF;
pub const SOCK_STREAM: u16 = 1;
pub const IPPROTO_TCP: u32 = 6;

/// Read a field of type T at `off` bytes into the object at `base`.
///
/// # Safety
/// `base + off` is inside a live object and suitably aligned for T.
pub unsafe fn rd<T: Copy>(base: *const c_void, off: usize) -> T {
    // SAFETY: `base + off` is inside the live object at `base` (contract),
    // so the offset stays within that one allocation.
    let field = unsafe { base.cast::<u8>().add(off) }.cast::<T>();
    // SAFETY: the field is inside a live object (contract); read_unaligned
    // needs no alignment, and T is Copy.
    unsafe { field.read_unaligned() }
}

/// Write a field of type T at `off` bytes into the object at `base`.
///
/// # Safety
/// As [`rd`], and the memory is writable.
pub unsafe fn wr<T: Copy>(base: *mut c_void, off: usize, v: T) {
    // SAFETY: `base + off` is inside the live object at `base` (contract),
    // so the offset stays within that one allocation.
    let field = unsafe { base.cast::<u8>().add(off) }.cast::<T>();
    // SAFETY: the field is inside a live, writable object (contract);
    // write_unaligned needs no alignment, and T is Copy (nothing to drop).
    unsafe { field.write_unaligned(v) }
}

pub type CompletionRoutine = unsafe extern "system" fn(PVOID, PVOID, PVOID) -> NTSTATUS;
pub type CancelRoutine = unsafe extern "system" fn(PVOID, PVOID);

/// WSK_PROVIDER_DISPATCH (NTDDI_WIN7 and later), provider side.
#[repr(C)]
pub struct WskProviderDispatch {
    pub Version: u16,
    pub Reserved: u16,
    pub WskSocket: unsafe extern "system" fn() -> NTSTATUS,
    pub WskSocketConnect: unsafe extern "system" fn(
        PVOID,
        u16,
        u32,
        PVOID,
        PVOID,
        u32,
        PVOID,
        PVOID,
        PVOID,
        PVOID,
        PVOID,
        PVOID,
    ) -> NTSTATUS,
    pub WskControlClient: ControlClientFn,
    pub WskGetAddressInfo: unsafe extern "system" fn() -> NTSTATUS,
    pub WskFreeAddressInfo: unsafe extern "system" fn() -> NTSTATUS,
    pub WskGetNameInfo: unsafe extern "system" fn() -> NTSTATUS,
}

pub type SocketIrpFn = unsafe extern "system" fn(PVOID, PVOID, u32, PVOID) -> NTSTATUS;
/// PFN_WSK_GET_LOCAL_ADDRESS / PFN_WSK_GET_REMOTE_ADDRESS: socket, SOCKADDR
/// buffer, IRP.
pub type GetAddressFn = unsafe extern "system" fn(PVOID, PVOID, PVOID) -> NTSTATUS;

/// WSK_PROVIDER_CONNECTION_DISPATCH up to WskRelease, provider side.
#[repr(C)]
pub struct WskConnectionDispatch {
    pub WskControlSocket: unsafe extern "system" fn() -> NTSTATUS,
    pub WskCloseSocket: unsafe extern "system" fn(PVOID, PVOID) -> NTSTATUS,
    pub WskBind: unsafe extern "system" fn() -> NTSTATUS,
    pub WskConnect: unsafe extern "system" fn() -> NTSTATUS,
    pub WskGetLocalAddress: GetAddressFn,
    pub WskGetRemoteAddress: GetAddressFn,
    pub WskSend: SocketIrpFn,
    pub WskReceive: SocketIrpFn,
    pub WskDisconnect: SocketIrpFn,
    pub WskRelease: unsafe extern "system" fn() -> NTSTATUS,
}

const _: () = assert!(std::mem::size_of::<WskProviderDispatch>() == 56);
const _: () = assert!(std::mem::size_of::<WskConnectionDispatch>() == 80);

// ---------------------------------------------------------------------------
// Client control (hostkernel/src/wsk_client_control.rs)
// ---------------------------------------------------------------------------

/// PFN_WSK_CONTROL_CLIENT: client, control code, input size, input buffer,
/// output size, output buffer, output size returned, IRP.
pub type ControlClientFn =
    unsafe extern "system" fn(PVOID, u32, usize, PVOID, usize, PVOID, *mut usize, PVOID) -> NTSTATUS;

pub const WSK_TRANSPORT_LIST_QUERY: u32 = 2;
pub const WSK_CACHE_SD: u32 = 4;
pub const WSK_RELEASE_SD: u32 = 5;
pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = st(0x8000_0005);
pub const SOCK_DGRAM: u16 = 2;
pub const SOCK_RAW: u16 = 3;
pub const IPPROTO_UDP: u32 = 17;

// ---------------------------------------------------------------------------
// Listening and datagram sockets (hostkernel/src/wsk_servers.rs)
// ---------------------------------------------------------------------------

/// PFN_WSK_ACCEPT: listening socket, flags, accept socket context, accept
/// socket dispatch, local address buffer, remote address buffer, IRP.
pub type AcceptFn = unsafe extern "system" fn(PVOID, u32, PVOID, PVOID, PVOID, PVOID, PVOID) -> NTSTATUS;
/// PFN_WSK_SEND_TO: socket, WSK_BUF, flags, remote address, control info
/// length, control info, IRP.
pub type SendToFn = unsafe extern "system" fn(PVOID, PVOID, u32, PVOID, u32, PVOID, PVOID) -> NTSTATUS;
/// PFN_WSK_RECEIVE_FROM: socket, WSK_BUF, flags, remote address buffer,
/// control length, control info, control flags, IRP.
pub type ReceiveFromFn =
    unsafe extern "system" fn(PVOID, PVOID, u32, PVOID, *mut u32, PVOID, *mut u32, PVOID) -> NTSTATUS;

/// WSK_PROVIDER_LISTEN_DISPATCH, provider side.
#[repr(C)]
pub struct WskListenDispatch {
    pub WskControlSocket: unsafe extern "system" fn() -> NTSTATUS,
    pub WskCloseSocket: unsafe extern "system" fn(PVOID, PVOID) -> NTSTATUS,
    pub WskBind: unsafe extern "system" fn() -> NTSTATUS,
    pub WskAccept: AcceptFn,
    pub WskInspectComplete: unsafe extern "system" fn() -> NTSTATUS,
    pub WskGetLocalAddress: GetAddressFn,
}

/// WSK_PROVIDER_DATAGRAM_DISPATCH up to WskGetLocalAddress, provider side.
#[repr(C)]
pub struct WskDatagramDispatch {
    pub WskControlSocket: unsafe extern "system" fn() -> NTSTATUS,
    pub WskCloseSocket: unsafe extern "system" fn(PVOID, PVOID) -> NTSTATUS,
    pub WskBind: unsafe extern "system" fn() -> NTSTATUS,
    pub WskSendTo: SendToFn,
    pub WskReceiveFrom: ReceiveFromFn,
    pub WskRelease: unsafe extern "system" fn() -> NTSTATUS,
    pub WskGetLocalAddress: GetAddressFn,
}

const _: () = assert!(std::mem::size_of::<WskListenDispatch>() == 48);
const _: () = assert!(std::mem::size_of::<WskDatagramDispatch>() == 56);

/// WskSocket's Flags (wsk.h).
pub const WSK_FLAG_LISTEN_SOCKET: u32 = 0x0000_0001;
pub const WSK_FLAG_CONNECTION_SOCKET: u32 = 0x0000_0002;
pub const WSK_FLAG_DATAGRAM_SOCKET: u32 = 0x0000_0004;
/// WskReceiveFrom's ControlFlags (ws2def.h): the datagram was truncated.
pub const MSG_TRUNC: u32 = 0x0100;
pub const STATUS_ACCESS_DENIED: NTSTATUS = st(0xC000_0022);
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = st(0xC000_0184);
pub const STATUS_NOT_SUPPORTED: NTSTATUS = st(0xC000_00BB);
