//! [`DeviceObject`]: the driver's device object as [`Client::start`] takes
//! it, with conversions from the raw pointer types a driver has.
//!
//! A driver built with windows-drivers-rs holds a `wdk_sys::PDEVICE_OBJECT`
//! (from `IoCreateDevice` or `WdfDeviceWdmGetDeviceObject`). With the `wdk`
//! feature (Windows with the WDK only: wdk-sys's build needs the WDK and
//! LLVM) `DeviceObject: From<wdk_sys::PDEVICE_OBJECT>`, so the call is
//! `Client::start(p, device, wait)` with no cast. The conversion is a
//! pointer cast between two declarations of the same structure; it is sound
//! because the only fields safewsk reads are `Type` (offset 0, `i16`) and
//! `Size` (offset 2, `u16`), which the `wdk` build asserts against wdk-sys
//! at compile time below, next to the layouts `src/kernel/wdk_check.rs`
//! asserts. NTSTATUS needs no conversion: it is `i32` in both crates.
//!
//! [`Client::start`]: super::Client::start

use crate::kernel::nt::{DEVICE_OBJECT, PDEVICE_OBJECT};

/// A pointer to one of the calling driver's DEVICE_OBJECTs. Only a value:
/// converting to it is safe, and what makes it valid is the contract of
/// [`Client::start`](super::Client::start), which is `unsafe`.
///
/// ```
/// use safewsk::net::DeviceObject;
/// use safewsk::nt::PDEVICE_OBJECT;
///
/// let raw: PDEVICE_OBJECT = core::ptr::null_mut();
/// let device = DeviceObject::from(raw);
/// assert!(device.as_ptr().is_null());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceObject(PDEVICE_OBJECT);

impl DeviceObject {
    /// The raw pointer.
    pub fn as_ptr(self) -> PDEVICE_OBJECT {
        self.0
    }
}

impl From<*mut DEVICE_OBJECT> for DeviceObject {
    fn from(p: *mut DEVICE_OBJECT) -> DeviceObject {
        DeviceObject(p)
    }
}

#[cfg(all(windows, feature = "wdk"))]
mod wdk {
    use core::mem::offset_of;

    use static_assertions::const_assert_eq;
    use wdk_sys as w;

    use super::DeviceObject;

    /// `Client::start(p, device, wait)` with wdk-sys's PDEVICE_OBJECT.
    impl From<w::PDEVICE_OBJECT> for DeviceObject {
        fn from(p: w::PDEVICE_OBJECT) -> DeviceObject {
            DeviceObject(p.cast())
        }
    }

    // The two fields safewsk reads through the pointer, at the same offsets
    // and of the same sizes in wdk-sys's DEVICE_OBJECT.
    const_assert_eq!(offset_of!(w::DEVICE_OBJECT, Type), offset_of!(crate::nt::DEVICE_OBJECT, Type));
    const_assert_eq!(offset_of!(w::DEVICE_OBJECT, Size), offset_of!(crate::nt::DEVICE_OBJECT, Size));
    const_assert_eq!(w::IO_TYPE_DEVICE as i16, crate::nt::IO_TYPE_DEVICE);
    // NTSTATUS is the same type: `Error: Into<wdk_sys::NTSTATUS>` and
    // `Error::from_status(wdk_sys::NTSTATUS)` need no conversion of their own.
    const _: fn(w::NTSTATUS) -> crate::nt::NTSTATUS = |s| s;
}
