//! [`TcpSocket`]: a connected TCP socket that closes on drop.

use core::net::SocketAddr;
use core::ptr::NonNull;

use super::addr::Sockaddr;
use super::buffer::{ReceiveBuf, SendBuf};
use super::client::ClientBorrow;
use super::error::from_internal;
use super::irql::AtMostApc;
use super::time::Timeout;
use super::{Error, Result};
use crate::handles::SAFEWSK_SOCKET;
use crate::io::buffer::SAFEWSK_FLAG_NONPAGED_BUFFER;
use crate::io::{self, Direction, End};
use crate::kernel::nt::*;

/// A connected TCP socket of a [`Client`](super::Client), which it
/// borrows for `'c`. Dropping it closes it
/// ([`SafeWskCloseSocket`](crate::SafeWskCloseSocket)); [`TcpSocket::close`]
/// does the same and returns the status.
///
/// Every call takes `&self`: calls on one socket may overlap (a receive
/// waiting on one thread while another sends), as the C API allows, so a
/// socket is `Send` and `Sync`. The close takes `self`, so no call can be in
/// progress through this value when it runs.
///
/// Each call that waits takes a token proving IRQL <= APC_LEVEL
/// ([`AtMostApc`]) and a [`Timeout`] (anything `Into<Timeout>`: a
/// `Duration`, `None` for no deadline).
///
/// ```no_run
/// use core::time::Duration;
/// use safewsk::net::{Client, Passive};
///
/// # fn f(p: Passive, client: &Client) -> safewsk::net::Result {
/// let t = Duration::from_secs(5);
/// let socket = client.connect(p, "127.0.0.1:7".parse().unwrap(), t)?;
/// let sent = socket.send(p, b"PING safewsk\r\n", t)?;
/// let mut reply = [0u8; 64];
/// let n = socket.receive(p, &mut reply, t)?; // 0: the peer closed
/// socket.disconnect(p, t)?; // graceful (FIN)
/// socket.close(p)?; // or drop it
/// # let _ = (sent, n); Ok(()) }
/// ```
///
/// A closed socket cannot be used again (the close consumes it):
///
/// ```compile_fail,E0382
/// # use safewsk::net::{Client, Passive};
/// # fn f(p: Passive, client: &Client) -> safewsk::net::Result {
/// let socket = client.connect(p, "127.0.0.1:7".parse().unwrap(), None)?;
/// socket.close(p)?;
/// socket.send(p, b"after the close", None)?; // error[E0382]: use of moved value
/// # Ok(()) }
/// ```
pub struct TcpSocket<'c> {
    handle: NonNull<SAFEWSK_SOCKET>,
    _client: ClientBorrow<'c>,
}

// SAFETY: the handle is an opaque value checked against the library's socket
// table by every call; a socket's calls may be made from any thread.
unsafe impl Send for TcpSocket<'_> {}
// SAFETY: calls on one socket may overlap (the library counts them on the
// slot's state word); every `&self` method is one such call.
unsafe impl Sync for TcpSocket<'_> {}

impl<'c> TcpSocket<'c> {
    /// Sends all of `buf` (WskSend) and waits until WSK has sent it or
    /// `timeout` passes; returns the count sent (`buf.len()`, or up to
    /// 4 GiB - 1 of a larger buffer). An empty `buf` sends nothing and
    /// returns `Ok(0)` without a call.
    ///
    /// `buf` may be any memory: a `[u8]` (stack, paged or non-paged pool)
    /// is probed and locked for the call; a [`NonPagedBuf`] or
    /// [`NonPagedSlice`] is described with MmBuildMdlForNonPagedPool
    /// instead (`SAFEWSK_FLAG_NONPAGED_BUFFER`).
    ///
    /// Errors as SafeWskSend: [`Error::IO_TIMEOUT`] (the socket's state is
    /// then undefined: close it), [`Error::CONNECTION_RESET`] and the
    /// provider's other statuses, [`Error::ACCESS_VIOLATION`],
    /// [`Error::INSUFFICIENT_RESOURCES`], [`Error::INVALID_PARAMETER_1`]
    /// (cleanup closed it, which only an `unsafe` caller can arrange).
    ///
    /// [`NonPagedBuf`]: super::NonPagedBuf
    /// [`NonPagedSlice`]: super::NonPagedSlice
    pub fn send<B: SendBuf + ?Sized>(
        &self,
        _irql: impl AtMostApc,
        buf: &B,
        timeout: impl Into<Timeout>,
    ) -> Result<usize> {
        let flags = if buf.nonpaged() { SAFEWSK_FLAG_NONPAGED_BUFFER } else { 0 };
        let bytes = buf.bytes();
        let len = ULONG::try_from(bytes.len()).unwrap_or(ULONG::MAX);
        if len == 0 {
            return Ok(0);
        }
        let mut sent: ULONG = 0;
        // SAFETY: `bytes` is `len` readable bytes borrowed for the call
        // (non-paged pool when the flag is set: the buffer's type proves
        // it); the transfer only reads it for a send.
        from_internal(unsafe {
            io::transfer(
                Direction::Send,
                self.as_raw(),
                bytes.as_ptr().cast_mut().cast(),
                len,
                flags,
                timeout.into().to_timeout_ms(),
                &mut sent,
            )
        })?;
        Ok(sent as usize)
    }

    /// Receives up to `buf.len()` bytes (WskReceive) and waits until some
    /// arrive, the peer closes, or `timeout` passes. `Ok(0)` means the peer
    /// closed its side gracefully (or `buf` is empty: then no call is made).
    /// Buffers as for [`TcpSocket::send`].
    pub fn receive<B: ReceiveBuf + ?Sized>(
        &self,
        irql: impl AtMostApc,
        buf: &mut B,
        timeout: impl Into<Timeout>,
    ) -> Result<usize> {
        self.receive_flags(irql, buf, 0, timeout.into())
    }

    /// Receives until `buf` is full or the peer closes (WSK_FLAG_WAITALL);
    /// returns the count (below `buf.len()` only if the peer closed).
    pub fn receive_all<B: ReceiveBuf + ?Sized>(
        &self,
        irql: impl AtMostApc,
        buf: &mut B,
        timeout: impl Into<Timeout>,
    ) -> Result<usize> {
        self.receive_flags(irql, buf, WSK_FLAG_WAITALL, timeout.into())
    }

    fn receive_flags<B: ReceiveBuf + ?Sized>(
        &self,
        _irql: impl AtMostApc,
        buf: &mut B,
        flags: ULONG,
        timeout: Timeout,
    ) -> Result<usize> {
        let flags = flags | if buf.nonpaged() { SAFEWSK_FLAG_NONPAGED_BUFFER } else { 0 };
        let bytes = buf.bytes_mut();
        let len = ULONG::try_from(bytes.len()).unwrap_or(ULONG::MAX);
        if len == 0 {
            return Ok(0);
        }
        let mut received: ULONG = 0;
        // SAFETY: `bytes` is `len` writable bytes borrowed mutably for the
        // call (non-paged pool when the flag is set, as the type proves).
        from_internal(unsafe {
            io::transfer(
                Direction::Receive,
                self.as_raw(),
                bytes.as_mut_ptr().cast(),
                len,
                flags,
                timeout.to_timeout_ms(),
                &mut received,
            )
        })?;
        Ok(received as usize)
    }

    /// The local address and port of the connection (WskGetLocalAddress).
    /// [`Error::NOT_IMPLEMENTED`] from Wine 8, whose function is a stub.
    pub fn local_addr(&self, _irql: impl AtMostApc, timeout: impl Into<Timeout>) -> Result<SocketAddr> {
        self.address(End::Local, timeout.into())
    }

    /// The remote address and port of the connection (WskGetRemoteAddress).
    pub fn peer_addr(&self, _irql: impl AtMostApc, timeout: impl Into<Timeout>) -> Result<SocketAddr> {
        self.address(End::Remote, timeout.into())
    }

    fn address(&self, end: End, timeout: Timeout) -> Result<SocketAddr> {
        let mut found = Sockaddr::default();
        // SAFETY: `found` is 28 writable bytes that live for the call.
        from_internal(unsafe {
            io::address(
                end,
                self.as_raw(),
                found.as_mut_ptr(),
                core::mem::size_of::<Sockaddr>() as ULONG,
                timeout.to_timeout_ms(),
            )
        })?;
        found.get().ok_or(Error::UNSUCCESSFUL)
    }

    /// Disconnects gracefully (WskDisconnect, FIN after pending data). At
    /// the deadline the connection is reset with an abortive disconnect and
    /// the call fails with [`Error::IO_TIMEOUT`] (within `timeout` plus
    /// `SAFEWSK_DISCONNECT_ABORT_MARGIN_MS`). The socket stays open until
    /// it is closed or dropped.
    pub fn disconnect(&self, _irql: impl AtMostApc, timeout: impl Into<Timeout>) -> Result {
        // SAFETY: any handle value is safe.
        from_internal(unsafe { io::disconnect(self.as_raw(), 0, timeout.into().to_timeout_ms()) })
    }

    /// Resets the connection (WskDisconnect with WSK_FLAG_ABORTIVE).
    pub fn abort(&self, _irql: impl AtMostApc, timeout: impl Into<Timeout>) -> Result {
        // SAFETY: any handle value is safe.
        from_internal(unsafe { io::disconnect(self.as_raw(), WSK_FLAG_ABORTIVE, timeout.into().to_timeout_ms()) })
    }

    /// Closes the socket (WskCloseSocket, waited for) and returns the
    /// status; dropping the socket does the same and ignores it. The socket
    /// is gone whatever the result: on an error the library keeps it and
    /// the client's cleanup closes it (SafeWskCloseSocket's contract).
    /// A connection not disconnected first is reset.
    pub fn close(self, _irql: impl AtMostApc) -> Result {
        let handle = self.into_raw();
        // SAFETY: any handle value is safe.
        from_internal(unsafe { io::close(handle) })
    }

    /// The C handle, for the `SafeWsk*` exports (it stays owned by `self`:
    /// do not close it through the C API).
    pub fn as_raw(&self) -> *mut SAFEWSK_SOCKET {
        self.handle.as_ptr()
    }

    /// Gives the socket up without closing it; the caller owns the handle
    /// (for [`SafeWskCloseSocket`](crate::SafeWskCloseSocket), or
    /// [`TcpSocket::from_raw`]).
    pub fn into_raw(self) -> *mut SAFEWSK_SOCKET {
        let handle = self.as_raw();
        core::mem::forget(self);
        handle
    }

    /// A socket from a handle of one of the C connects or
    /// [`TcpSocket::into_raw`]; `None` for NULL.
    ///
    /// # Safety
    /// The handle is owned by the caller and given to this value, and it is
    /// a socket of a client that is not cleaned up during `'c` (choose `'c`
    /// as a borrow of that [`Client`](super::Client)).
    pub unsafe fn from_raw(handle: *mut SAFEWSK_SOCKET) -> Option<TcpSocket<'c>> {
        NonNull::new(handle).map(|handle| TcpSocket { handle, _client: ClientBorrow::default() })
    }
}

impl Drop for TcpSocket<'_> {
    fn drop(&mut self) {
        // SAFETY: any handle value is safe. Above APC_LEVEL the close is
        // refused (STATUS_INVALID_LEVEL) and the socket stays open until the
        // client's cleanup closes it (reported).
        let _ = unsafe { io::close(self.as_raw()) };
    }
}

impl core::fmt::Debug for TcpSocket<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("TcpSocket").field(&self.handle).finish()
    }
}
