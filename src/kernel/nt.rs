//! The NT and WSK types, constants and status codes that cross safewsk's ABI.
//!
//! wdk-sys 0.5 generates no bindings for `wsk.h` (its API subsets are gpio,
//! hid, parallel-ports, spb, storage and usb), so the WSK structures are
//! declared here, field for field, after the WDK's `wsk.h`. The IRP and
//! IO_STACK_LOCATION are declared here too, with exactly the fields the
//! library touches at their real x64/ARM64 offsets, so that the inline
//! `IoSetCompletionRoutine` of `wdm.h` can be reproduced (src/platform).
//!
//! Every layout that matters is pinned by `static_assertions` at the bottom of
//! this file, with the source of each number.
#![allow(non_camel_case_types, non_snake_case, missing_docs)]

use core::ffi::c_void;

pub type NTSTATUS = i32;
pub type BOOLEAN = u8;
pub type UCHAR = u8;
pub type CHAR = i8;
pub type USHORT = u16;
pub type ULONG = u32;
pub type LONG = i32;
pub type ULONG_PTR = usize;
pub type SIZE_T = usize;
pub type KIRQL = u8;
pub type PVOID = *mut c_void;
pub type ADDRESS_FAMILY = USHORT;
/// Opaque kernel objects the library only passes through.
pub type PEPROCESS = *mut c_void;
pub type PETHREAD = *mut c_void;
pub type PSECURITY_DESCRIPTOR = *mut c_void;
pub type PWSK_CLIENT = *mut c_void;
/// KSPIN_LOCK (wdm.h): a ULONG_PTR the kernel owns.
pub type KSPIN_LOCK = ULONG_PTR;

/// DEVICE_OBJECT: the library reads only its header (`Type`, `Size`) to
/// check that a caller's pointer is one, and otherwise passes it through.
#[repr(C)]
pub struct DEVICE_OBJECT {
    pub Type: i16,
    pub Size: USHORT,
}
pub type PDEVICE_OBJECT = *mut DEVICE_OBJECT;
/// `IO_TYPE_DEVICE` (wdm.h): DEVICE_OBJECT.Type.
pub const IO_TYPE_DEVICE: i16 = 3;

// ---------------------------------------------------------------------------
// NTSTATUS values (ntstatus.h). Severity 0xC = error, 0x8 = warning.
// ---------------------------------------------------------------------------
const fn st(v: u32) -> NTSTATUS {
    v as NTSTATUS
}
pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_TIMEOUT: NTSTATUS = st(0x0000_0102);
pub const STATUS_PENDING: NTSTATUS = st(0x0000_0103);
pub const STATUS_UNSUCCESSFUL: NTSTATUS = st(0xC000_0001);
pub const STATUS_ACCESS_VIOLATION: NTSTATUS = st(0xC000_0005);
pub const STATUS_NOT_IMPLEMENTED: NTSTATUS = st(0xC000_0002);
pub const STATUS_BUFFER_TOO_SMALL: NTSTATUS = st(0xC000_0023);
pub const STATUS_INVALID_PARAMETER: NTSTATUS = st(0xC000_000D);
pub const STATUS_INVALID_DEVICE_REQUEST: NTSTATUS = st(0xC000_0010);
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = st(0xC000_009A);
pub const STATUS_IO_TIMEOUT: NTSTATUS = st(0xC000_00B5);
pub const STATUS_NOT_SUPPORTED: NTSTATUS = st(0xC000_00BB);
pub const STATUS_INVALID_PARAMETER_1: NTSTATUS = st(0xC000_00EF);
pub const STATUS_INVALID_PARAMETER_2: NTSTATUS = st(0xC000_00F0);
pub const STATUS_INVALID_PARAMETER_3: NTSTATUS = st(0xC000_00F1);
pub const STATUS_INVALID_PARAMETER_4: NTSTATUS = st(0xC000_00F2);
pub const STATUS_INVALID_PARAMETER_5: NTSTATUS = st(0xC000_00F3);
pub const STATUS_INVALID_PARAMETER_6: NTSTATUS = st(0xC000_00F4);
pub const STATUS_INVALID_PARAMETER_7: NTSTATUS = st(0xC000_00F5);
pub const STATUS_INVALID_PARAMETER_8: NTSTATUS = st(0xC000_00F6);
pub const STATUS_INVALID_PARAMETER_9: NTSTATUS = st(0xC000_00F7);
pub const STATUS_INVALID_PARAMETER_10: NTSTATUS = st(0xC000_00F8);
pub const STATUS_INVALID_PARAMETER_11: NTSTATUS = st(0xC000_00F9);
pub const STATUS_INVALID_PARAMETER_12: NTSTATUS = st(0xC000_00FA);
pub const STATUS_CANCELLED: NTSTATUS = st(0xC000_0120);
pub const STATUS_DELETE_PENDING: NTSTATUS = st(0xC000_0056);
pub const STATUS_NOT_FOUND: NTSTATUS = st(0xC000_0225);
pub const STATUS_INVALID_LEVEL: NTSTATUS = st(0xC000_0148);
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = st(0xC000_0184);
pub const STATUS_DEVICE_NOT_READY: NTSTATUS = st(0xC000_00A3);
pub const STATUS_NOINTERFACE: NTSTATUS = st(0xC000_02B9);
pub const STATUS_INVALID_ADDRESS_COMPONENT: NTSTATUS = st(0xC000_0207);
pub const STATUS_ADDRESS_ALREADY_EXISTS: NTSTATUS = st(0xC000_020A);
pub const STATUS_CONNECTION_DISCONNECTED: NTSTATUS = st(0xC000_020C);
pub const STATUS_CONNECTION_RESET: NTSTATUS = st(0xC000_020D);
pub const STATUS_CONNECTION_REFUSED: NTSTATUS = st(0xC000_0236);
pub const STATUS_NETWORK_UNREACHABLE: NTSTATUS = st(0xC000_023C);
pub const STATUS_HOST_UNREACHABLE: NTSTATUS = st(0xC000_023D);
pub const STATUS_CONNECTION_ABORTED: NTSTATUS = st(0xC000_0241);
pub const STATUS_MORE_PROCESSING_REQUIRED: NTSTATUS = st(0xC000_0016);

/// `NT_SUCCESS` from ntdef.h.
#[inline]
pub const fn nt_success(status: NTSTATUS) -> bool {
    status >= 0
}

// IRQLs (wdm.h, x64/ARM64).
pub const PASSIVE_LEVEL: KIRQL = 0;
pub const APC_LEVEL: KIRQL = 1;
pub const DISPATCH_LEVEL: KIRQL = 2;

// Address families, socket types and protocols as Windows defines them
// (ws2def.h). Note AF_INET6 is 23 on Windows, not Linux's 10.
pub const AF_INET: ADDRESS_FAMILY = 2;
pub const AF_INET6: ADDRESS_FAMILY = 23;
pub const SOCK_STREAM: USHORT = 1;
pub const SOCK_DGRAM: USHORT = 2;
pub const SOCK_RAW: USHORT = 3;
pub const IPPROTO_TCP: ULONG = 6;
pub const IPPROTO_UDP: ULONG = 17;

// wsk.h
pub const WSK_NO_WAIT: ULONG = 0;
pub const WSK_INFINITE_WAIT: ULONG = 0xFFFF_FFFF;
pub const WSK_FLAG_ABORTIVE: ULONG = 0x0000_0001;
pub const WSK_FLAG_NODELAY: ULONG = 0x0000_0002;
pub const WSK_FLAG_WAITALL: ULONG = 0x0000_0002;
pub const WSK_FLAG_DRAIN: ULONG = 0x0000_0004;

/// `MAKE_WSK_VERSION(Mj, Mn)` from wsk.h.
pub const fn make_wsk_version(major: u8, minor: u8) -> USHORT {
    ((major as USHORT) << 8) | (minor as USHORT)
}

// IO_STACK_LOCATION.Control bits (wdm.h).
pub const SL_PENDING_RETURNED: UCHAR = 0x01;
pub const SL_INVOKE_ON_CANCEL: UCHAR = 0x20;
pub const SL_INVOKE_ON_SUCCESS: UCHAR = 0x40;
pub const SL_INVOKE_ON_ERROR: UCHAR = 0x80;

// KEVENT types and wait reasons (wdm.h).
pub const NOTIFICATION_EVENT: u32 = 0;
pub const SYNCHRONIZATION_EVENT: u32 = 1;
pub const EXECUTIVE: u32 = 0;
pub const KERNEL_MODE: i8 = 0;

// ExAllocatePool2 flags (wdm.h, Windows 10 2004 and later).
pub const POOL_FLAG_NON_PAGED: u64 = 0x0000_0000_0000_0040;

/// POOL_TYPE (wdm.h), for the ExAllocatePoolWithTag fallback.
pub type POOL_TYPE = i32;
/// NonPagedPoolNx (Windows 8 and later).
pub const NON_PAGED_POOL_NX: POOL_TYPE = 512;

/// UNICODE_STRING (ntdef.h): lengths in bytes, no terminator required.
#[repr(C)]
#[derive(Debug)]
pub struct UNICODE_STRING {
    pub Length: USHORT,
    pub MaximumLength: USHORT,
    pub Buffer: *mut u16,
}

// ---------------------------------------------------------------------------
// Socket addresses (ws2def.h / ws2ipdef.h).
// ---------------------------------------------------------------------------
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR {
    pub sa_family: ADDRESS_FAMILY,
    pub sa_data: [u8; 14],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR_IN {
    pub sin_family: ADDRESS_FAMILY,
    /// Port in network byte order.
    pub sin_port: USHORT,
    /// IN_ADDR, in network byte order.
    pub sin_addr: [u8; 4],
    pub sin_zero: [u8; 8],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SOCKADDR_IN6 {
    pub sin6_family: ADDRESS_FAMILY,
    /// Port in network byte order.
    pub sin6_port: USHORT,
    pub sin6_flowinfo: ULONG,
    /// IN6_ADDR, in network byte order.
    pub sin6_addr: [u8; 16],
    /// The `sin6_scope_id` / `sin6_scope_struct` union.
    pub sin6_scope_id: ULONG,
}

// ---------------------------------------------------------------------------
// Kernel objects the library allocates or embeds.
// ---------------------------------------------------------------------------
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct LIST_ENTRY {
    pub Flink: *mut LIST_ENTRY,
    pub Blink: *mut LIST_ENTRY,
}

/// KEVENT: a DISPATCHER_HEADER and nothing else. The library only ever hands
/// it to KeInitializeEvent / KeSetEvent / KeWaitForSingleObject.
#[repr(C, align(8))]
pub struct KEVENT {
    pub Header: [u8; 24],
}

impl KEVENT {
    /// Storage for an event, to be passed to KeInitializeEvent before use.
    pub const fn zeroed() -> Self {
        KEVENT { Header: [0; 24] }
    }
}

/// KTIMER (0x40 on 64-bit): only passed to KeInitializeTimer/KeSetTimer/KeCancelTimer.
#[repr(C, align(8))]
pub struct KTIMER {
    pub Opaque: [u8; 0x40],
}

/// KDPC (0x40 on 64-bit): only passed to KeInitializeDpc/KeSetTimer.
#[repr(C, align(8))]
pub struct KDPC {
    pub Opaque: [u8; 0x40],
}

pub type PKDEFERRED_ROUTINE =
    Option<unsafe extern "system" fn(Dpc: *mut KDPC, DeferredContext: PVOID, Arg1: PVOID, Arg2: PVOID)>;

/// The MDL is opaque to the library: it only allocates, builds and frees it.
#[repr(C)]
pub struct MDL {
    _opaque: [u8; 0],
}

/// IO_STATUS_BLOCK: `union { NTSTATUS Status; PVOID Pointer; }` then Information.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct IO_STATUS_BLOCK {
    pub Status: NTSTATUS,
    _union_pad: u32,
    pub Information: ULONG_PTR,
}

pub type PIO_COMPLETION_ROUTINE =
    Option<unsafe extern "system" fn(DeviceObject: PVOID, Irp: *mut IRP, Context: PVOID) -> NTSTATUS>;
pub type PDRIVER_CANCEL = Option<unsafe extern "system" fn(DeviceObject: PVOID, Irp: *mut IRP)>;

/// The IRP, field for field as in wdm.h for 64-bit Windows. Unions are
/// represented by the member the library and the host kernel use.
#[repr(C)]
pub struct IRP {
    pub Type: i16,
    pub Size: USHORT,
    pub AllocationProcessorNumber: USHORT,
    pub Reserved: USHORT,
    pub MdlAddress: *mut MDL,
    pub Flags: ULONG,
    pub AssociatedIrp: PVOID,
    pub ThreadListEntry: LIST_ENTRY,
    pub IoStatus: IO_STATUS_BLOCK,
    pub RequestorMode: CHAR,
    pub PendingReturned: BOOLEAN,
    pub StackCount: CHAR,
    pub CurrentLocation: CHAR,
    pub Cancel: BOOLEAN,
    pub CancelIrql: KIRQL,
    pub ApcEnvironment: CHAR,
    pub AllocationFlags: UCHAR,
    pub UserIosb: PVOID,
    pub UserEvent: *mut KEVENT,
    pub Overlay: [ULONG_PTR; 2],
    pub CancelRoutine: PDRIVER_CANCEL,
    pub UserBuffer: PVOID,
    pub Tail: IRP_TAIL_OVERLAY,
}

/// `IRP.Tail.Overlay`, padded to the size of the `Tail` union (KAPC, 0x58).
#[repr(C)]
pub struct IRP_TAIL_OVERLAY {
    pub DriverContext: [PVOID; 4],
    pub Thread: PETHREAD,
    pub AuxiliaryBuffer: *mut u8,
    pub ListEntry: LIST_ENTRY,
    pub CurrentStackLocation: *mut IO_STACK_LOCATION,
    pub OriginalFileObject: PVOID,
    /// `IrpExtension` on current builds; padding to sizeof(KAPC) on older ones.
    pub IrpExtension: PVOID,
}

/// IO_STACK_LOCATION (wdm.h, 64-bit). `Parameters` is a 32-byte union.
#[repr(C)]
pub struct IO_STACK_LOCATION {
    pub MajorFunction: UCHAR,
    pub MinorFunction: UCHAR,
    pub Flags: UCHAR,
    pub Control: UCHAR,
    pub Parameters: [ULONG_PTR; 4],
    pub DeviceObject: PVOID,
    pub FileObject: PVOID,
    pub CompletionRoutine: PIO_COMPLETION_ROUTINE,
    pub Context: PVOID,
}

// ---------------------------------------------------------------------------
// WSK (wsk.h)
// ---------------------------------------------------------------------------
#[repr(C)]
pub struct WSK_SOCKET {
    pub Dispatch: *const c_void,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct WSK_BUF {
    pub Mdl: *mut MDL,
    pub Offset: ULONG,
    pub Length: SIZE_T,
}

pub type PFN_WSK_RECEIVE_EVENT = Option<
    unsafe extern "system" fn(
        SocketContext: PVOID,
        Flags: ULONG,
        DataIndication: PVOID,
        BytesIndicated: SIZE_T,
        BytesAccepted: *mut SIZE_T,
    ) -> NTSTATUS,
>;
pub type PFN_WSK_DISCONNECT_EVENT = Option<unsafe extern "system" fn(SocketContext: PVOID, Flags: ULONG) -> NTSTATUS>;
pub type PFN_WSK_SEND_BACKLOG_EVENT =
    Option<unsafe extern "system" fn(SocketContext: PVOID, IdealBacklogSize: SIZE_T) -> NTSTATUS>;

#[repr(C)]
pub struct WSK_CLIENT_CONNECTION_DISPATCH {
    pub WskReceiveEvent: PFN_WSK_RECEIVE_EVENT,
    pub WskDisconnectEvent: PFN_WSK_DISCONNECT_EVENT,
    pub WskSendBacklogEvent: PFN_WSK_SEND_BACKLOG_EVENT,
}

pub type PFN_WSK_SOCKET_CONNECT = Option<
    unsafe extern "system" fn(
        Client: PWSK_CLIENT,
        SocketType: USHORT,
        Protocol: ULONG,
        LocalAddress: *mut SOCKADDR,
        RemoteAddress: *mut SOCKADDR,
        Flags: ULONG,
        SocketContext: PVOID,
        Dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
        OwningProcess: PEPROCESS,
        OwningThread: PETHREAD,
        SecurityDescriptor: PSECURITY_DESCRIPTOR,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;
pub type PFN_WSK_CLOSE_SOCKET = Option<unsafe extern "system" fn(Socket: *mut WSK_SOCKET, Irp: *mut IRP) -> NTSTATUS>;
pub type PFN_WSK_SEND = Option<
    unsafe extern "system" fn(Socket: *mut WSK_SOCKET, Buffer: *mut WSK_BUF, Flags: ULONG, Irp: *mut IRP) -> NTSTATUS,
>;
pub type PFN_WSK_RECEIVE = PFN_WSK_SEND;
/// PFN_WSK_GET_LOCAL_ADDRESS; PFN_WSK_GET_REMOTE_ADDRESS has the same shape.
pub type PFN_WSK_GET_ADDRESS =
    Option<unsafe extern "system" fn(Socket: *mut WSK_SOCKET, Address: *mut SOCKADDR, Irp: *mut IRP) -> NTSTATUS>;
pub type PFN_WSK_DISCONNECT = PFN_WSK_SEND;
/// A dispatch entry the library never calls; kept as an untyped pointer so
/// that the table's layout is exact without declaring every signature.
pub type PFN_UNUSED = PVOID;

#[repr(C)]
pub struct WSK_PROVIDER_BASIC_DISPATCH {
    pub WskControlSocket: PFN_UNUSED,
    pub WskCloseSocket: PFN_WSK_CLOSE_SOCKET,
}

/// The prefix of WSK_PROVIDER_CONNECTION_DISPATCH that every WSK version has
/// (Windows 10 RS2 appends WskConnectEx, WskSendEx, WskReceiveEx). The library
/// reads only these members, never past WskRelease.
#[repr(C)]
pub struct WSK_PROVIDER_CONNECTION_DISPATCH {
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    pub WskBind: PFN_UNUSED,
    pub WskConnect: PFN_UNUSED,
    pub WskGetLocalAddress: PFN_WSK_GET_ADDRESS,
    pub WskGetRemoteAddress: PFN_WSK_GET_ADDRESS,
    pub WskSend: PFN_WSK_SEND,
    pub WskReceive: PFN_WSK_RECEIVE,
    pub WskDisconnect: PFN_WSK_DISCONNECT,
    pub WskRelease: PFN_UNUSED,
}

/// WSK_PROVIDER_DISPATCH as declared for NTDDI_VERSION >= NTDDI_WIN7.
#[repr(C)]
pub struct WSK_PROVIDER_DISPATCH {
    pub Version: USHORT,
    pub Reserved: USHORT,
    pub WskSocket: PFN_UNUSED,
    pub WskSocketConnect: PFN_WSK_SOCKET_CONNECT,
    pub WskControlClient: PFN_WSK_CONTROL_CLIENT,
    pub WskGetAddressInfo: PFN_UNUSED,
    pub WskFreeAddressInfo: PFN_UNUSED,
    pub WskGetNameInfo: PFN_UNUSED,
}

#[repr(C)]
pub struct WSK_CLIENT_DISPATCH {
    pub Version: USHORT,
    pub Reserved: USHORT,
    pub WskClientEvent: PFN_UNUSED,
}

#[repr(C)]
pub struct WSK_CLIENT_NPI {
    pub ClientContext: PVOID,
    pub Dispatch: *const WSK_CLIENT_DISPATCH,
}

#[repr(C)]
pub struct WSK_PROVIDER_NPI {
    pub Client: PWSK_CLIENT,
    pub Dispatch: *const WSK_PROVIDER_DISPATCH,
}

#[repr(C)]
pub struct WSK_REGISTRATION {
    pub ReservedRegistrationState: u64,
    pub ReservedRegistrationContext: PVOID,
    /// KSPIN_LOCK (ULONG_PTR).
    pub ReservedRegistrationLock: ULONG_PTR,
}

impl WSK_REGISTRATION {
    pub const fn zeroed() -> Self {
        WSK_REGISTRATION {
            ReservedRegistrationState: 0,
            ReservedRegistrationContext: core::ptr::null_mut(),
            ReservedRegistrationLock: 0,
        }
    }
}

// ---------------------------------------------------------------------------
// Layout pins. The library targets 64-bit Windows (x64 and ARM64), whose
// LLP64 layouts are what these numbers are; the host build on x86_64 Linux has
// the same pointer size and alignment rules, so the same pins hold there.
//
// Sources:
// - SOCKADDR 16, SOCKADDR_IN 16, SOCKADDR_IN6 28: ws2def.h / ws2ipdef.h
//   (Microsoft Learn, "SOCKADDR_IN6": "28 bytes"; `sizeof(SOCKADDR_IN)` is
//   the 16 every Winsock program passes as namelen).
// - IRP 0xD0, IoStatus at 0x30, StackCount 0x42, CurrentLocation 0x43,
//   Cancel 0x44, CancelRoutine 0x68, Tail at 0x78, CurrentStackLocation at
//   0xB8: `dt nt!_IRP` from the public ntoskrnl symbols (x64).
// - IO_STACK_LOCATION 0x48, Control at 3, CompletionRoutine 0x38, Context
//   0x40: `dt nt!_IO_STACK_LOCATION`, same source.
// - KEVENT 0x18 (DISPATCHER_HEADER), KTIMER 0x40, KDPC 0x40: same source.
// - WSK tables: wsk.h declares them as arrays of function pointers after two
//   USHORTs where shown; sizes follow: WSK_PROVIDER_DISPATCH 8 + 6*8 = 56,
//   WSK_PROVIDER_CONNECTION_DISPATCH prefix 10*8 = 80, the client connection
//   dispatch 3*8 = 24, WSK_BUF 24, WSK_REGISTRATION 24.
// ---------------------------------------------------------------------------
#[cfg(target_pointer_width = "64")]
mod layout {
    use super::*;
    use core::mem::size_of;
    use static_assertions::const_assert_eq;

    const_assert_eq!(size_of::<SOCKADDR>(), 16);
    const_assert_eq!(size_of::<SOCKADDR_IN>(), 16);
    const_assert_eq!(size_of::<SOCKADDR_IN6>(), 28);
    const_assert_eq!(size_of::<KEVENT>(), 0x18);
    const_assert_eq!(size_of::<KTIMER>(), 0x40);
    const_assert_eq!(size_of::<KDPC>(), 0x40);
    const_assert_eq!(size_of::<IO_STATUS_BLOCK>(), 0x10);
    const_assert_eq!(size_of::<IRP>(), 0xD0);
    const_assert_eq!(size_of::<IO_STACK_LOCATION>(), 0x48);
    const_assert_eq!(size_of::<WSK_SOCKET>(), 8);
    const_assert_eq!(size_of::<WSK_BUF>(), 24);
    const_assert_eq!(size_of::<WSK_CLIENT_CONNECTION_DISPATCH>(), 24);
    const_assert_eq!(size_of::<WSK_PROVIDER_BASIC_DISPATCH>(), 16);
    const_assert_eq!(size_of::<WSK_PROVIDER_CONNECTION_DISPATCH>(), 80);
    const_assert_eq!(size_of::<WSK_PROVIDER_DISPATCH>(), 56);
    const_assert_eq!(size_of::<WSK_CLIENT_DISPATCH>(), 16);
    const_assert_eq!(size_of::<WSK_CLIENT_NPI>(), 16);
    const_assert_eq!(size_of::<WSK_PROVIDER_NPI>(), 16);
    const_assert_eq!(size_of::<WSK_REGISTRATION>(), 24);
    const_assert_eq!(size_of::<UNICODE_STRING>(), 16);
}

/// Field offsets.
#[cfg(target_pointer_width = "64")]
mod offsets {
    use super::*;
    use core::mem::offset_of;
    use static_assertions::const_assert_eq;

    const_assert_eq!(offset_of!(SOCKADDR_IN6, sin6_addr), 8);
    const_assert_eq!(offset_of!(SOCKADDR_IN6, sin6_scope_id), 24);
    const_assert_eq!(offset_of!(IRP, MdlAddress), 0x08);
    const_assert_eq!(offset_of!(IRP, IoStatus), 0x30);
    const_assert_eq!(offset_of!(IRP, StackCount), 0x42);
    const_assert_eq!(offset_of!(IRP, CurrentLocation), 0x43);
    const_assert_eq!(offset_of!(IRP, Cancel), 0x44);
    const_assert_eq!(offset_of!(IRP, CancelRoutine), 0x68);
    const_assert_eq!(offset_of!(IRP, Tail), 0x78);
    const_assert_eq!(offset_of!(IRP, Tail) + offset_of!(IRP_TAIL_OVERLAY, CurrentStackLocation), 0xB8);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, Control), 0x03);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, CompletionRoutine), 0x38);
    const_assert_eq!(offset_of!(IO_STACK_LOCATION, Context), 0x40);
    const_assert_eq!(offset_of!(WSK_BUF, Length), 16);
    const_assert_eq!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskSend), 48);
    const_assert_eq!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskReceive), 56);
    const_assert_eq!(offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskDisconnect), 64);
    const_assert_eq!(offset_of!(WSK_PROVIDER_DISPATCH, WskSocketConnect), 16);
}

// ---------------------------------------------------------------------------
// Client control (WskControlClient): cached security descriptors and the
// transport list (src/security_descriptor.rs, src/transports.rs)
// ---------------------------------------------------------------------------

/// PFN_WSK_CONTROL_CLIENT (wsk.h).
pub type PFN_WSK_CONTROL_CLIENT = Option<
    unsafe extern "system" fn(
        Client: PWSK_CLIENT,
        ControlCode: ULONG,
        InputSize: SIZE_T,
        InputBuffer: PVOID,
        OutputSize: SIZE_T,
        OutputBuffer: PVOID,
        OutputSizeReturned: *mut SIZE_T,
        Irp: *mut IRP,
    ) -> NTSTATUS,
>;

/// Client-level control codes (wsk.h).
pub const WSK_TRANSPORT_LIST_QUERY: ULONG = 2;
pub const WSK_CACHE_SD: ULONG = 4;
pub const WSK_RELEASE_SD: ULONG = 5;

pub const STATUS_BUFFER_OVERFLOW: NTSTATUS = st(0x8000_0005);
pub const STATUS_DEVICE_BUSY: NTSTATUS = st(0x8000_0011);
pub const STATUS_QUOTA_EXCEEDED: NTSTATUS = st(0xC000_0044);

/// GUID.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GUID {
    pub Data1: ULONG,
    pub Data2: USHORT,
    pub Data3: USHORT,
    pub Data4: [u8; 8],
}

/// WSK_TRANSPORT (wsk.h): one transport of WSK_TRANSPORT_LIST_QUERY's list.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WSK_TRANSPORT {
    pub Version: USHORT,
    pub SocketType: USHORT,
    pub Protocol: ULONG,
    pub AddressFamily: ADDRESS_FAMILY,
    pub ProviderId: GUID,
}

#[cfg(target_pointer_width = "64")]
mod client_control_layout {
    use super::*;
    use core::mem::size_of;
    use static_assertions::const_assert_eq;
    const_assert_eq!(size_of::<GUID>(), 16);
    // USHORT, USHORT, ULONG, USHORT (+2 padding: GUID is 4-aligned), GUID.
    const_assert_eq!(size_of::<WSK_TRANSPORT>(), 28);
}

// ---------------------------------------------------------------------------
// Connect by name (issue 10, item 1): WskGetAddressInfo / WskFreeAddressInfo.
// ---------------------------------------------------------------------------

/// AF_UNSPEC (ws2def.h): any address family, in resolver hints.
pub const AF_UNSPEC: ADDRESS_FAMILY = 0;
/// NS_ALL (ws2def.h): every name space.
pub const NS_ALL: ULONG = 0;

/// ADDRINFOEXW (ws2def.h), the list WskGetAddressInfo returns: "identical
/// to the addrinfoex structure" (PFN_WSK_GET_ADDRESS_INFO).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ADDRINFOEXW {
    pub ai_flags: i32,
    pub ai_family: i32,
    pub ai_socktype: i32,
    pub ai_protocol: i32,
    pub ai_addrlen: SIZE_T,
    pub ai_canonname: *mut u16,
    pub ai_addr: *mut SOCKADDR,
    pub ai_blob: PVOID,
    pub ai_bloblen: SIZE_T,
    pub ai_provider: PVOID,
    pub ai_next: *mut ADDRINFOEXW,
}

/// PFN_WSK_GET_ADDRESS_INFO (wsk.h). The provider dispatch declares the
/// entry as [`PFN_UNUSED`]; the by-name connect reads it as this type.
pub type PFN_WSK_GET_ADDRESS_INFO = unsafe extern "system" fn(
    Client: PWSK_CLIENT,
    NodeName: *mut UNICODE_STRING,
    ServiceName: *mut UNICODE_STRING,
    NameSpace: ULONG,
    Provider: PVOID,
    Hints: *mut ADDRINFOEXW,
    Result: *mut *mut ADDRINFOEXW,
    OwningProcess: PEPROCESS,
    OwningThread: PETHREAD,
    Irp: *mut IRP,
) -> NTSTATUS;

/// PFN_WSK_FREE_ADDRESS_INFO (wsk.h).
pub type PFN_WSK_FREE_ADDRESS_INFO = unsafe extern "system" fn(Client: PWSK_CLIENT, AddrInfo: *mut ADDRINFOEXW);

#[cfg(target_pointer_width = "64")]
mod by_name_layout {
    use super::*;
    use core::mem::{offset_of, size_of};
    use static_assertions::const_assert_eq;

    const_assert_eq!(size_of::<ADDRINFOEXW>(), 72);
    const_assert_eq!(offset_of!(ADDRINFOEXW, ai_addrlen), 16);
    const_assert_eq!(offset_of!(ADDRINFOEXW, ai_addr), 32);
    const_assert_eq!(offset_of!(ADDRINFOEXW, ai_next), 64);
    const_assert_eq!(offset_of!(WSK_PROVIDER_DISPATCH, WskGetAddressInfo), 32);
    const_assert_eq!(offset_of!(WSK_PROVIDER_DISPATCH, WskFreeAddressInfo), 40);
}

// ---------------------------------------------------------------------------
// Options before connect (issue 10, item 2): WskSocket, WskControlSocket,
// WskBind, WskConnect. The dispatch tables above keep these entries as
// PFN_UNUSED (so that the tables' declarations stay as they are); the
// library reads such an entry and turns it into one of these types.
// ---------------------------------------------------------------------------

/// WSK_FLAG_CONNECTION_SOCKET (wsk.h): WskSocket's Flags for a
/// connection-oriented socket.
pub const WSK_FLAG_CONNECTION_SOCKET: ULONG = 0x0000_0002;

/// WSK_CONTROL_SOCKET_TYPE (wsk.h).
pub type WSK_CONTROL_SOCKET_TYPE = i32;
#[allow(non_upper_case_globals)] // wsk.h's enumerator name
pub const WskSetOption: WSK_CONTROL_SOCKET_TYPE = 0;
#[allow(non_upper_case_globals)] // wsk.h's enumerator name
pub const WskGetOption: WSK_CONTROL_SOCKET_TYPE = 1;
#[allow(non_upper_case_globals)] // wsk.h's enumerator name
pub const WskIoctl: WSK_CONTROL_SOCKET_TYPE = 2;

/// Socket option levels and names as Windows defines them (ws2def.h,
/// ws2ipdef.h): SOL_SOCKET is 0xffff there, and SO_EXCLUSIVEADDRUSE is
/// `((int)(~SO_REUSEADDR))`.
pub const SOL_SOCKET: ULONG = 0xFFFF;
pub const SO_REUSEADDR: ULONG = 0x0004;
pub const SO_KEEPALIVE: ULONG = 0x0008;
pub const SO_RCVBUF: ULONG = 0x1002;
pub const SO_EXCLUSIVEADDRUSE: ULONG = !SO_REUSEADDR;

/// PFN_WSK_SOCKET.
pub type PFN_WSK_SOCKET = unsafe extern "system" fn(
    Client: PWSK_CLIENT,
    AddressFamily: ADDRESS_FAMILY,
    SocketType: USHORT,
    Protocol: ULONG,
    Flags: ULONG,
    SocketContext: PVOID,
    Dispatch: *const c_void,
    OwningProcess: PEPROCESS,
    OwningThread: PETHREAD,
    SecurityDescriptor: PSECURITY_DESCRIPTOR,
    Irp: *mut IRP,
) -> NTSTATUS;

/// PFN_WSK_CONTROL_SOCKET.
pub type PFN_WSK_CONTROL_SOCKET = unsafe extern "system" fn(
    Socket: *mut WSK_SOCKET,
    RequestType: WSK_CONTROL_SOCKET_TYPE,
    ControlCode: ULONG,
    Level: ULONG,
    InputSize: SIZE_T,
    InputBuffer: PVOID,
    OutputSize: SIZE_T,
    OutputBuffer: PVOID,
    OutputSizeReturned: *mut SIZE_T,
    Irp: *mut IRP,
) -> NTSTATUS;

/// PFN_WSK_BIND; PFN_WSK_CONNECT has the same shape.
pub type PFN_WSK_BIND =
    unsafe extern "system" fn(Socket: *mut WSK_SOCKET, Address: *mut SOCKADDR, Flags: ULONG, Irp: *mut IRP) -> NTSTATUS;
pub type PFN_WSK_CONNECT = PFN_WSK_BIND;

// ---------------------------------------------------------------------------
// Event callbacks (issue 10, item 3): SO_WSK_EVENT_CALLBACK.
// ---------------------------------------------------------------------------

/// SO_WSK_EVENT_CALLBACK = WSK_SO_BASE + 2 (wsk.h; WSK_SO_BASE 0x4000).
pub const SO_WSK_EVENT_CALLBACK: ULONG = 0x4002;
/// Event flags of a connection-oriented socket (wsk.h).
pub const WSK_EVENT_SEND_BACKLOG: ULONG = 0x0000_0010;
pub const WSK_EVENT_RECEIVE: ULONG = 0x0000_0040;
pub const WSK_EVENT_DISCONNECT: ULONG = 0x0000_0080;
pub const WSK_EVENT_DISABLE: ULONG = 0x8000_0000;

/// NPIID (netioddk.h): a GUID.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NPIID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

/// NPI_WSK_INTERFACE_ID (wsk.h): {2227E803-8D8B-11D4-ABAD-009027719E09}.
pub static NPI_WSK_INTERFACE_ID: NPIID =
    NPIID { Data1: 0x2227_E803, Data2: 0x8D8B, Data3: 0x11D4, Data4: [0xAB, 0xAD, 0x00, 0x90, 0x27, 0x71, 0x9E, 0x09] };

/// WSK_EVENT_CALLBACK_CONTROL (wsk.h): 16 bytes on 64-bit Windows.
#[repr(C)]
pub struct WSK_EVENT_CALLBACK_CONTROL {
    pub NpiId: *const NPIID,
    pub EventMask: ULONG,
}

/// PFN_WSK_RELEASE_DATA_INDICATION_LIST (wsk.h), the connection socket's
/// WskRelease.
pub type PFN_WSK_RELEASE_DATA_INDICATION_LIST =
    unsafe extern "system" fn(Socket: *mut WSK_SOCKET, DataIndication: *mut WSK_DATA_INDICATION) -> NTSTATUS;

/// WSK_DATA_INDICATION (wsk.h): only passed through, never read.
#[repr(C)]
pub struct WSK_DATA_INDICATION {
    _opaque: [u8; 0],
}

/// `TCP_NODELAY` (ws2ipdef.h / mstcpip.h: 0x0001).
pub const TCP_NODELAY: ULONG = 0x0001;
/// `SIO_WSK_QUERY_IDEAL_SEND_BACKLOG` (wsk.h: `_WSAIOR(IOC_WSK, 0x3)`,
/// IOC_WSK = IOC_WS2 | 0x07000000 = 0x0F000000, IOC_OUT = 0x40000000).
pub const SIO_WSK_QUERY_IDEAL_SEND_BACKLOG: ULONG = 0x4F00_0003;

// ---------------------------------------------------------------------------
// Servers and datagrams (issue 20): listening sockets and WskAccept,
// datagram sockets and WskSendTo / WskReceiveFrom.
// ---------------------------------------------------------------------------

/// WskSocket's Flags (wsk.h): a listening socket ("PFN_WSK_SOCKET").
pub const WSK_FLAG_LISTEN_SOCKET: ULONG = 0x0000_0001;
/// WskSocket's Flags (wsk.h): a datagram socket.
pub const WSK_FLAG_DATAGRAM_SOCKET: ULONG = 0x0000_0004;
/// SO_BROADCAST (ws2def.h): "SO_BROADCAST" (WSK socket options, Microsoft
/// Learn) applies to datagram sockets only, a ULONG, with an IRP.
pub const SO_BROADCAST: ULONG = 0x0020;
/// WskReceiveFrom's ControlFlags (ws2def.h): the datagram was truncated.
pub const MSG_TRUNC: ULONG = 0x0100;
/// ... the control data was truncated.
pub const MSG_CTRUNC: ULONG = 0x0200;
/// `STATUS_ACCESS_DENIED` (ntstatus.h): "Sharing Transport Addresses"
/// (Microsoft Learn), a bind DENIED by another socket's exclusive use.
pub const STATUS_ACCESS_DENIED: NTSTATUS = st(0xC000_0022);
/// `STATUS_FILE_FORCED_CLOSED` (ntstatus.h): "The socket is no longer
/// functional" (PFN_WSK_ACCEPT and every socket function).
pub const STATUS_FILE_FORCED_CLOSED: NTSTATUS = st(0xC000_00B6);

/// WSK_PROVIDER_LISTEN_DISPATCH (wsk.h): a listening socket's functions.
#[repr(C)]
pub struct WSK_PROVIDER_LISTEN_DISPATCH {
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    pub WskBind: PFN_UNUSED,
    pub WskAccept: PFN_UNUSED,
    pub WskInspectComplete: PFN_UNUSED,
    pub WskGetLocalAddress: PFN_WSK_GET_ADDRESS,
}

/// WSK_PROVIDER_DATAGRAM_DISPATCH (wsk.h) up to WskGetLocalAddress (Windows
/// 10 RS2 appends WskSendMessages, which the library never reads).
#[repr(C)]
pub struct WSK_PROVIDER_DATAGRAM_DISPATCH {
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    pub WskBind: PFN_UNUSED,
    pub WskSendTo: PFN_UNUSED,
    pub WskReceiveFrom: PFN_UNUSED,
    pub WskRelease: PFN_UNUSED,
    pub WskGetLocalAddress: PFN_WSK_GET_ADDRESS,
}

/// The prefix every socket's provider dispatch table shares (wsk.h): the
/// basic functions, then WskBind (listening, datagram and connection
/// sockets alike). Read through this type when the kind does not matter.
#[repr(C)]
pub struct WSK_PROVIDER_BIND_PREFIX {
    pub Basic: WSK_PROVIDER_BASIC_DISPATCH,
    pub WskBind: PFN_UNUSED,
}

/// PFN_WSK_ACCEPT (wsk.h).
pub type PFN_WSK_ACCEPT = unsafe extern "system" fn(
    ListenSocket: *mut WSK_SOCKET,
    Flags: ULONG,
    AcceptSocketContext: PVOID,
    AcceptSocketDispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    LocalAddress: *mut SOCKADDR,
    RemoteAddress: *mut SOCKADDR,
    Irp: *mut IRP,
) -> NTSTATUS;

/// PFN_WSK_SEND_TO (wsk.h). ControlInfo is a PCMSGHDR the library never
/// passes (NULL, length 0).
pub type PFN_WSK_SEND_TO = unsafe extern "system" fn(
    Socket: *mut WSK_SOCKET,
    Buffer: *mut WSK_BUF,
    Flags: ULONG,
    RemoteAddress: *mut SOCKADDR,
    ControlInfoLength: ULONG,
    ControlInfo: PVOID,
    Irp: *mut IRP,
) -> NTSTATUS;

/// PFN_WSK_RECEIVE_FROM (wsk.h).
pub type PFN_WSK_RECEIVE_FROM = unsafe extern "system" fn(
    Socket: *mut WSK_SOCKET,
    Buffer: *mut WSK_BUF,
    Flags: ULONG,
    RemoteAddress: *mut SOCKADDR,
    ControlLength: *mut ULONG,
    ControlInfo: PVOID,
    ControlFlags: *mut ULONG,
    Irp: *mut IRP,
) -> NTSTATUS;

#[cfg(target_pointer_width = "64")]
mod servers_layout {
    use super::*;
    use core::mem::{offset_of, size_of};
    use static_assertions::const_assert_eq;

    // wsk.h: Basic (2 pointers) then one pointer per function.
    const_assert_eq!(size_of::<WSK_PROVIDER_LISTEN_DISPATCH>(), 48);
    const_assert_eq!(offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskAccept), 24);
    const_assert_eq!(offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskGetLocalAddress), 40);
    const_assert_eq!(size_of::<WSK_PROVIDER_DATAGRAM_DISPATCH>(), 56);
    const_assert_eq!(offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskSendTo), 24);
    const_assert_eq!(offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskReceiveFrom), 32);
    const_assert_eq!(offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskGetLocalAddress), 48);
    const_assert_eq!(
        offset_of!(WSK_PROVIDER_BIND_PREFIX, WskBind),
        offset_of!(WSK_PROVIDER_CONNECTION_DISPATCH, WskBind)
    );
    const_assert_eq!(offset_of!(WSK_PROVIDER_BIND_PREFIX, WskBind), offset_of!(WSK_PROVIDER_LISTEN_DISPATCH, WskBind));
    const_assert_eq!(
        offset_of!(WSK_PROVIDER_BIND_PREFIX, WskBind),
        offset_of!(WSK_PROVIDER_DATAGRAM_DISPATCH, WskBind)
    );
}
