//! The driver's own kernel boundary: the NT routines a WDM driver calls
//! around safewsk (its device object, its worker thread, its parameters,
//! DbgPrint), declared by hand because wdk-sys cannot be built here (it
//! needs the WDK and LLVM). A driver built with windows-drivers-rs takes
//! these from wdk-sys instead; this is the part of the sample that is
//! `unsafe` by nature, and the only part.
#![allow(non_camel_case_types, non_snake_case, missing_docs)]

use core::ffi::{c_char, c_void};

pub use safewsk::nt::{NTSTATUS, PDEVICE_OBJECT, UNICODE_STRING};

pub type PVOID = *mut c_void;
pub type HANDLE = *mut c_void;

/// DRIVER_OBJECT (wdm.h, 64-bit): only `DriverUnload` (offset 0x68) is
/// written by the sample.
#[repr(C)]
pub struct DRIVER_OBJECT {
    _header: [u8; 0x68],
    pub DriverUnload: Option<unsafe extern "system" fn(*mut DRIVER_OBJECT)>,
}
const _: () = assert!(core::mem::offset_of!(DRIVER_OBJECT, DriverUnload) == 0x68);

/// RTL_QUERY_REGISTRY_TABLE (wdm.h, 64-bit: 56 bytes).
#[repr(C)]
pub struct RTL_QUERY_REGISTRY_TABLE {
    pub QueryRoutine: PVOID,
    pub Flags: u32,
    pub Name: *const u16,
    pub EntryContext: PVOID,
    pub DefaultType: u32,
    pub DefaultData: PVOID,
    pub DefaultLength: u32,
}
const _: () = assert!(core::mem::size_of::<RTL_QUERY_REGISTRY_TABLE>() == 56);

pub const RTL_REGISTRY_SERVICES: u32 = 1;
pub const RTL_QUERY_REGISTRY_REQUIRED: u32 = 0x4;
pub const RTL_QUERY_REGISTRY_DIRECT: u32 = 0x20;
pub const RTL_QUERY_REGISTRY_TYPECHECK: u32 = 0x100;
pub const RTL_QUERY_REGISTRY_TYPECHECK_SHIFT: u32 = 24;
pub const REG_NONE: u32 = 0;
pub const REG_DWORD: u32 = 4;
pub const FILE_DEVICE_UNKNOWN: u32 = 0x22;
pub const FILE_DEVICE_SECURE_OPEN: u32 = 0x100;
pub const THREAD_ALL_ACCESS: u32 = 0x001F_FFFF;
pub const KERNEL_MODE: i8 = 0;
pub const EXECUTIVE: u32 = 0;

extern "system" {
    pub fn IoCreateDevice(
        DriverObject: *mut DRIVER_OBJECT,
        DeviceExtensionSize: u32,
        DeviceName: *mut UNICODE_STRING,
        DeviceType: u32,
        DeviceCharacteristics: u32,
        Exclusive: u8,
        DeviceObject: *mut PDEVICE_OBJECT,
    ) -> NTSTATUS;
    pub fn IoDeleteDevice(DeviceObject: PDEVICE_OBJECT);
    pub fn PsCreateSystemThread(
        ThreadHandle: *mut HANDLE,
        DesiredAccess: u32,
        ObjectAttributes: PVOID,
        ProcessHandle: HANDLE,
        ClientId: PVOID,
        StartRoutine: Option<unsafe extern "system" fn(PVOID)>,
        StartContext: PVOID,
    ) -> NTSTATUS;
    pub fn ObReferenceObjectByHandle(
        Handle: HANDLE,
        DesiredAccess: u32,
        ObjectType: PVOID,
        AccessMode: i8,
        Object: *mut PVOID,
        HandleInformation: PVOID,
    ) -> NTSTATUS;
    pub fn ObfDereferenceObject(Object: PVOID) -> isize;
    pub fn ZwClose(Handle: HANDLE) -> NTSTATUS;
    pub fn KeWaitForSingleObject(
        Object: PVOID,
        WaitReason: u32,
        WaitMode: i8,
        Alertable: u8,
        Timeout: *mut i64,
    ) -> NTSTATUS;
    pub fn RtlQueryRegistryValues(
        RelativeTo: u32,
        Path: *const u16,
        QueryTable: *mut RTL_QUERY_REGISTRY_TABLE,
        Context: PVOID,
        Environment: PVOID,
    ) -> NTSTATUS;
}

extern "C" {
    pub fn DbgPrint(Format: *const c_char, ...) -> u32;
}

/// `s` (ASCII) as a NUL-terminated UTF-16 array of `N` = `s.len() + 1`
/// units; a wrong `N` fails the build (constant evaluation).
pub const fn wide<const N: usize>(s: &str) -> [u16; N] {
    let b = s.as_bytes();
    assert!(b.len() + 1 == N, "N must be the length plus the terminator");
    let mut out = [0u16; N];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i] as u16;
        i += 1;
    }
    out
}
