//! The kernel side: the NT/WSK types and constants that cross the ABI
//! (`nt`, with layout assertions), the only module that names kernel
//! symbols (`platform`), the kernel objects the kernel writes behind small
//! wrappers (`sync`), the IRP life cycle of one synchronous call (`irp`), and
//! results turned into the NTSTATUS an export returns (`status`).

pub mod deadline;
pub(crate) mod irp;
/// cbindgen:ignore
pub mod nt;
/// cbindgen:ignore
pub(crate) mod platform;
pub mod report;
pub(crate) mod status;
pub(crate) mod sync;
#[cfg(all(windows, feature = "wdk"))]
mod wdk_check;
