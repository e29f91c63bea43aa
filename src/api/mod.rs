//! The exported C API, in four files: the client (`client`), the connect
//! family (`connect`), the calls on a socket (`socket`), and the server and
//! datagram sockets (`servers`). cbindgen turns
//! these doc comments into include/safewsk.h; keep them the reference a C
//! driver author reads.
//!
//! Every export checks in one order: parameters by position, then the IRQL,
//! then entering the client (or acquiring the socket). Handles are opaque
//! values, never pointers to memory, checked against the library's own
//! tables: a stale or forged handle is refused, never acted on.
#![allow(non_snake_case)]

mod client;
mod connect;
mod servers;
mod socket;

pub use client::*;
pub use connect::*;
pub use servers::*;
pub use socket::*;
