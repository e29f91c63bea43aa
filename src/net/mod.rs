//! The safe Rust API: safewsk for drivers written in Rust.
//!
//! The same machinery as the C exports (the same checks, handles, IRP
//! handling, deadlines and cleanup), called directly rather than through the
//! `extern "C"` functions, in the idiom of the Rust-for-Linux `kernel`
//! crate:
//!
//! - [`Result<T>`] with [`Error`], an NTSTATUS that is not a success
//!   (constants such as [`Error::IO_TIMEOUT`], [`Error::from_status`],
//!   [`to_result`], [`status_of`]);
//! - [`Client`]: startup is [`Client::start`], cleanup is its drop or
//!   [`Client::cleanup`], which returns the status;
//! - [`TcpSocket<'c>`](crate::net::TcpSocket): a connected socket that borrows its
//!   client and closes on drop ([`TcpSocket::close`] returns the status), so
//!   cleaning up a client with a socket still open does not compile;
//! - [`Timeout`]: `TimeoutMs` as a type, from a `core::time::Duration`
//!   (`Duration::ZERO`: not waited for; `None`: no deadline);
//! - buffers as `&[u8]` / `&mut [u8]` (probed and locked), or
//!   [`NonPagedBuf`] / [`NonPagedSlice`], whose type proves non-paged pool;
//! - IRQL preconditions as tokens: [`Passive`] and [`LowIrql`]
//!   ([`AtMostApc`]), obtained once per PASSIVE_LEVEL routine;
//! - [`ConnectRequest`]: an asynchronous connect whose closure, stored in
//!   the caller's pinned storage, runs exactly once.
//!
//! The `unsafe` a driver writes is at its boundary with the kernel:
//! [`Client::start`] (the device object must outlive the client), the
//! tokens' unchecked constructors ([`Passive::assume`]), and the raw-handle
//! conversions for mixing with the C API. Everything else is safe: a
//! handle is a value the library checks on every call, so no safe call can
//! act on a closed socket or a cleaned-up client.
//!
//! No function of this module panics: errors are values, and the crate's
//! lints (`clippy::unwrap_used`, `expect_used`, `panic`, `indexing_slicing`)
//! apply here as everywhere in the library.
//!
//! See `docs/rust.md` for a whole driver.
//!
//! [`Result<T>`]: crate::net::Result
//! [`Error`]: crate::net::Error
//! [`Error::IO_TIMEOUT`]: crate::net::Error::IO_TIMEOUT
//! [`Error::from_status`]: crate::net::Error::from_status
//! [`to_result`]: crate::net::to_result
//! [`status_of`]: crate::net::status_of
//! [`Client`]: crate::net::Client
//! [`Client::start`]: crate::net::Client::start
//! [`Client::cleanup`]: crate::net::Client::cleanup
//! [`TcpSocket::close`]: crate::net::TcpSocket::close
//! [`Timeout`]: crate::net::Timeout
//! [`NonPagedBuf`]: crate::net::NonPagedBuf
//! [`NonPagedSlice`]: crate::net::NonPagedSlice
//! [`Passive`]: crate::net::Passive
//! [`Passive::assume`]: crate::net::Passive::assume
//! [`LowIrql`]: crate::net::LowIrql
//! [`AtMostApc`]: crate::net::AtMostApc
//! [`ConnectRequest`]: crate::net::ConnectRequest

mod addr;
mod buffer;
mod client;
mod connect_async;
mod device;
mod error;
mod irql;
mod socket;
mod time;

pub use buffer::{NonPagedBuf, NonPagedSlice, ReceiveBuf, SendBuf};
pub use client::Client;
pub use connect_async::ConnectRequest;
pub use device::DeviceObject;
pub use error::{status_of, to_result, Error, Result};
pub use irql::{AtMostApc, LowIrql, Passive};
pub use socket::TcpSocket;
pub use time::Timeout;
