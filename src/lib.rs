//! safewsk: a hardened `WskSocketConnect` for Windows kernel drivers written
//! in C, exported through `include/safewsk.h`.
//!
//! The library validates every parameter before the WSK provider sees it,
//! owns the IRP of every call (allocation, completion routine, wait with a
//! deadline, cancellation, free), owns the WSK registration, and refuses to
//! deregister while sockets are open.
//!
//! Layout:
//! - [`nt`]: the NT/WSK types and constants that cross the ABI, with layout
//!   assertions;
//! - `platform`: the only module that names kernel symbols;
//! - `sync`: the kernel objects the kernel writes (KEVENT, KSPIN_LOCK)
//!   behind small wrappers;
//! - `validate`: parameter checks (pure, no kernel calls);
//! - `irp`: the IRP life cycle of one synchronous call;
//! - `rundown`: the client's rundown word (no kernel calls; loom-checked);
//! - `sockets`: the open sockets of a client;
//! - `client`: registration, provider capture, cleanup;
//! - `request_state` and `connect_async`: the asynchronous connect's state
//!   word (loom-checked) and its IRP, timer and callback;
//! - `buffer`: the MDL of a send/receive buffer (probed and locked, or built
//!   for non-paged pool with SAFEWSK_FLAG_NONPAGED_BUFFER);
//! - `by_name`: SafeWskConnectByName (WskGetAddressInfo, the list copied
//!   and freed, then the addresses tried in order under one deadline);
//! - `connect` and `socket`: the machinery behind the connect exports and the
//!   socket calls; `status`: results turned into the NTSTATUS an export
//!   returns, in one place;
//! - [`api`]: the exported `SafeWsk*` functions and their documentation, and
//!   nothing else.
//!
//! The crate is `no_std` and allocates nothing but tagged non-paged pool
//! (the client block, and one small record per open socket) and what the
//! kernel allocates for it (IRPs, IoSetCompletionRoutineEx contexts, MDLs).
//! On Windows it contains one hand-written assembly function (x64 and
//! ARM64, `platform/seh.rs`): the `__try/__except` around
//! MmProbeAndLockPages. On
//! Windows a panic bugchecks (KeBugCheckEx with code 0x52504E43, "RPNC", the
//! code wdk-panic uses); no exported function can reach a panic (the crate
//! denies unwrap/expect/panic/indexing). On other targets the crate links
//! `std` only so that the host build (tests against the `hostkernel` crate)
//! has a panic handler; no library code uses it.
#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![deny(clippy::undocumented_unsafe_blocks, clippy::ptr_cast_constness)]

#[cfg(not(windows))]
extern crate std;

// The layouts in `nt` and the calling convention of the exports are those of
// 64-bit Windows (x64, ARM64). On 32-bit x86 "system" would be stdcall while
// the header's declarations are cdecl, and the structure layouts differ: a
// build there would corrupt the stack, so there is none.
#[cfg(not(target_pointer_width = "64"))]
compile_error!("safewsk supports 64-bit Windows only (x64 and ARM64)");

/// The kernel panic handler. wdk-panic 0.5 compiles its handler only when
/// built under wdk-build's `driver_model` cfg, which a static library linked
/// by MSBuild does not have, so safewsk carries the same ten lines itself.
#[cfg(windows)]
#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let (file, line, column) = match info.location() {
        Some(l) => (l.file(), l.line(), l.column()),
        None => ("", 0, 0),
    };
    platform::bugcheck(file, line, column)
}

pub mod api;
mod buffer;
mod by_name;
mod client;
mod connect;
mod connect_async;
mod events;
mod irp;
/// cbindgen:ignore
pub mod nt;
mod options;
/// cbindgen:ignore
mod platform;
/// cbindgen:ignore
mod request_state;
/// cbindgen:ignore
mod rundown;
mod security_descriptor;
mod socket;
mod sockets;
mod status;
mod sync;
mod transports;
mod validate;
#[cfg(all(windows, feature = "wdk"))]
mod wdk_check;

pub use api::*;
pub use buffer::SAFEWSK_FLAG_NONPAGED_BUFFER;
pub use by_name::{SAFEWSK_BY_NAME_MAX_ADDRESSES, SAFEWSK_BY_NAME_MAX_NODE_CHARS, SAFEWSK_BY_NAME_MAX_SERVICE_CHARS};
pub use client::SAFEWSK_CLIENT;
pub use options::{
    SAFEWSK_OPTION_EXCLUSIVEADDRUSE, SAFEWSK_OPTION_KEEPALIVE, SAFEWSK_OPTION_RCVBUF, SAFEWSK_OPTION_REUSEADDR,
    SAFEWSK_SOCKET_OPTIONS,
};
pub use platform::POOL_TAG;
pub use security_descriptor::SAFEWSK_MAX_CACHED_SECURITY_DESCRIPTORS;
