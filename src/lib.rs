//! safewsk: a hardened `WskSocketConnect` for Windows kernel drivers written
//! in C, exported through `include/safewsk.h`.
//!
//! The library validates every parameter before the WSK provider sees it,
//! owns the IRP of every call (allocation, completion routine, wait with a
//! deadline, cancellation, free), owns the WSK registration, hands out
//! sockets and clients as checked handles that a stale value cannot fool,
//! and closes what the driver left open before it deregisters.
//!
//! Layout, one folder per concept:
//! - `kernel`: the NT/WSK types that cross the ABI ([`nt`]), the only module
//!   that names kernel symbols (`platform`), kernel objects behind small
//!   wrappers (`sync`), the IRP life cycle of one synchronous call (`irp`),
//!   results turned into an export's NTSTATUS (`status`);
//! - `client`: registration, the provider NPI, the static table of clients
//!   and its rundown word (loom-checked), cached security descriptors, the
//!   provider's transport list;
//! - `handles`: the driver's table of socket slots behind the opaque
//!   `SAFEWSK_SOCKET*` handles, and the slot's state word (loom-checked);
//! - `connect`: the connect family (synchronous, asynchronous with its state
//!   word, by name, with options) and its parameter checks;
//! - `io`: the calls on a connected socket (send, receive, addresses,
//!   disconnect, close, event callbacks) and the MDL of a buffer;
//! - [`api`]: the exported `SafeWsk*` functions and their documentation, and
//!   nothing else;
//! - [`net`]: the safe Rust API over the same machinery (`docs/rust.md`).
//!
//! The crate is `no_std` and allocates nothing but tagged non-paged pool
//! (the client block, and one 4 KiB chunk per 64 socket slots) and what the
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

#[cfg(not(loom))]
pub mod api;
#[cfg(not(loom))]
mod client;
#[cfg(not(loom))]
mod connect;
#[cfg(not(loom))]
mod handles;
#[cfg(not(loom))]
mod io;
#[cfg(not(loom))]
mod kernel;
/// cbindgen:ignore
#[cfg(not(loom))]
pub mod net;
#[cfg(not(loom))]
mod servers;

// The loom build compiles only the kernel-free state words it checks.
/// cbindgen:ignore
#[cfg(loom)]
#[path = "client/rundown.rs"]
#[allow(dead_code)]
mod client_rundown;
/// cbindgen:ignore
#[cfg(loom)]
#[path = "handles/state.rs"]
#[allow(dead_code)]
mod handles_state;
/// cbindgen:ignore
#[cfg(loom)]
#[path = "connect/request_state.rs"]
#[allow(dead_code)]
mod request_state;

#[cfg(not(loom))]
pub use kernel::nt;
#[cfg(not(loom))]
use kernel::{platform, sync};

#[cfg(not(loom))]
pub use api::*;
#[cfg(not(loom))]
pub use client::security_descriptor::SAFEWSK_MAX_CACHED_SECURITY_DESCRIPTORS;
#[cfg(not(loom))]
pub use client::{SAFEWSK_CLIENT, SAFEWSK_MAX_CLIENTS};
#[cfg(not(loom))]
pub use connect::by_name::{
    SAFEWSK_BY_NAME_MAX_ADDRESSES, SAFEWSK_BY_NAME_MAX_NODE_CHARS, SAFEWSK_BY_NAME_MAX_SERVICE_CHARS,
};
#[cfg(not(loom))]
pub use connect::options::{
    SAFEWSK_OPTION_EXCLUSIVEADDRUSE, SAFEWSK_OPTION_KEEPALIVE, SAFEWSK_OPTION_RCVBUF, SAFEWSK_OPTION_REUSEADDR,
    SAFEWSK_SOCKET_OPTIONS,
};
#[cfg(not(loom))]
pub use handles::{table_usage, SAFEWSK_MAX_SOCKETS, SAFEWSK_SOCKET};
#[cfg(not(loom))]
pub use io::buffer::SAFEWSK_FLAG_NONPAGED_BUFFER;
#[cfg(not(loom))]
pub use io::SAFEWSK_DISCONNECT_ABORT_MARGIN_MS;
#[cfg(not(loom))]
pub use kernel::platform::POOL_TAG;
