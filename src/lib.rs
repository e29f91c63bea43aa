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
//! - `validate`: parameter checks (pure, no kernel calls);
//! - `irp`: the IRP life cycle of one call;
//! - `client`: registration, provider capture, open-socket accounting;
//! - [`api`]: the exported `SafeWsk*` functions.
//!
//! The crate is `no_std` and allocates nothing but tagged non-paged pool
//! (the client block) and what the kernel allocates for it (IRPs, MDLs). On
//! Windows the panic handler comes from wdk-panic. On other targets the crate
//! links `std` only so that the host build (tests against the `hostkernel`
//! crate) has a panic handler; no library code uses it.
#![no_std]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]
#![deny(clippy::undocumented_unsafe_blocks)]

#[cfg(not(windows))]
extern crate std;
#[cfg(windows)]
extern crate wdk_panic;

pub mod api;
mod client;
mod irp;
pub mod nt;
mod platform;
mod validate;

pub use api::*;
pub use client::SAFEWSK_CLIENT;
pub use platform::POOL_TAG;
