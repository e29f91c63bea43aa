//! [`Client`]: a WSK client (SafeWskStartup / SafeWskCleanup) and the
//! connects that make its sockets.

use core::marker::PhantomData;
use core::net::SocketAddr;
use core::ptr;

use super::addr::Sockaddr;
use super::device::DeviceObject;
use super::error::from_internal;
use super::irql::{AtMostApc, Passive};
use super::socket::TcpSocket;
use super::time::Timeout;
use super::{Error, Result};
use crate::client::{self, SAFEWSK_CLIENT};
use crate::connect::{self, by_name, validate::ConnectArgs};
use crate::handles::SAFEWSK_SOCKET;
use crate::kernel::nt::*;

/// A WSK client: the driver's registration with WSK and the captured
/// provider, as [`SafeWskStartup`](crate::SafeWskStartup) makes it.
///
/// Its sockets ([`TcpSocket<'c>`](TcpSocket)) borrow it, so the client
/// cannot be cleaned up (dropped, or [`Client::cleanup`]) while one of its
/// sockets is still open: that is a compile error, not a socket that
/// cleanup has to close behind the driver's back.
///
/// ```compile_fail,E0505
/// # use safewsk::net::{Client, Passive};
/// # fn f(p: Passive, client: Client, to: core::net::SocketAddr) -> safewsk::net::Result {
/// let socket = client.connect(p, to, core::time::Duration::from_secs(5))?;
/// client.cleanup(p)?; // error[E0505]: cannot move out of `client` because it is borrowed
/// socket.send(p, b"late", core::time::Duration::from_secs(5))?;
/// # Ok(()) }
/// ```
///
/// Dropping it with a socket open does not compile either:
///
/// ```compile_fail,E0505
/// # use safewsk::net::{Client, Passive};
/// # fn f(p: Passive, client: Client, to: core::net::SocketAddr) -> safewsk::net::Result {
/// let socket = client.connect(p, to, None)?;
/// drop(client); // error[E0505]: cannot move out of `client` because it is borrowed
/// drop(socket);
/// # Ok(()) }
/// ```
///
/// Dropping the client cleans it up ([`SafeWskCleanup`](crate::SafeWskCleanup)):
/// it waits until every call inside the client has returned and every
/// asynchronous connect has called back, closes what is left, releases the
/// provider and deregisters. Drop it (or call [`Client::cleanup`]) at
/// PASSIVE_LEVEL before the device object given to [`Client::start`] is
/// deleted. Dropped above PASSIVE_LEVEL, the cleanup fails with
/// `STATUS_INVALID_LEVEL` and the client stays registered (the driver must
/// then not unload): use `cleanup` with a [`Passive`] token to make the
/// IRQL a type.
///
/// A client is `Send` and `Sync`: its handle is a value checked by every
/// call, and every call on it may be made from any thread.
///
/// ```no_run
/// use core::time::Duration;
/// use safewsk::net::{Client, DeviceObject, Passive};
///
/// # fn f(device: DeviceObject) -> safewsk::net::Result {
/// // SAFETY: DriverEntry and system threads run at PASSIVE_LEVEL.
/// let p = unsafe { Passive::assume() };
/// // SAFETY: `device` is this driver's device object, deleted only after
/// // the client is cleaned up.
/// let client = unsafe { Client::start(p, device, Duration::from_secs(10)) }?;
/// let socket = client.connect(p, "127.0.0.1:7".parse().unwrap(), Duration::from_secs(5))?;
/// socket.send(p, b"PING\r\n", Duration::from_secs(5))?;
/// socket.close(p)?;
/// client.cleanup(p)
/// # }
/// ```
pub struct Client {
    handle: *mut SAFEWSK_CLIENT,
}

// SAFETY: the handle is an opaque value checked against the library's static
// client table by every call; the calls are made for any thread.
unsafe impl Send for Client {}
// SAFETY: as above: every call taking the handle is thread-safe.
unsafe impl Sync for Client {}

impl Client {
    /// Registers the driver as a WSK client and captures the provider,
    /// waiting up to `provider_wait` for it (WskCaptureProviderNPI's
    /// `WaitTimeout`: [`Timeout::IMMEDIATE`] is `WSK_NO_WAIT`,
    /// [`Timeout::NEVER`] is `WSK_INFINITE_WAIT`). Up to 64 clients may exist
    /// at once.
    ///
    /// Errors as SafeWskStartup: [`Error::INVALID_PARAMETER_1`] (the device
    /// is NULL or not a DEVICE_OBJECT), [`Error::INVALID_LEVEL`],
    /// [`Error::INSUFFICIENT_RESOURCES`], [`Error::DEVICE_NOT_READY`]
    /// (the provider did not come in time), [`Error::NOINTERFACE`], or the
    /// status of WskRegister / WskCaptureProviderNPI.
    ///
    /// # Safety
    /// `device` is NULL or a live DEVICE_OBJECT of the calling driver, and
    /// stays valid until this client's cleanup has returned (drop or
    /// [`Client::cleanup`]): every IRP safewsk issues holds a reference on
    /// it (IoSetCompletionRoutineEx) so that the image stays loaded while a
    /// completion routine runs. This is the one `unsafe` entry point of the
    /// client: everything else the client does is safe.
    pub unsafe fn start(
        _irql: Passive,
        device: impl Into<DeviceObject>,
        provider_wait: impl Into<Timeout>,
    ) -> Result<Client> {
        let mut handle = ptr::null_mut();
        // SAFETY: the device per this function's contract; `handle` is
        // writable.
        from_internal(unsafe {
            client::startup(device.into().as_ptr(), provider_wait.into().to_timeout_ms(), &mut handle)
        })?;
        if handle.is_null() {
            return Err(Error::UNSUCCESSFUL);
        }
        Ok(Client { handle })
    }

    /// Cleans the client up now and returns SafeWskCleanup's status (drop
    /// does the same and ignores it). Every socket of the client is gone by
    /// then (the borrow checker sees to it), so cleanup closes none of the
    /// driver's; it waits for asynchronous connects' callbacks.
    ///
    /// An error means an `unsafe` contract was broken elsewhere (a
    /// [`Passive`] token made above PASSIVE_LEVEL:
    /// [`Error::INVALID_LEVEL`]; the handle duplicated with
    /// [`Client::from_raw`] and cleaned up twice); the client is then left
    /// as it is.
    pub fn cleanup(self, _irql: Passive) -> Result {
        let handle = self.handle;
        core::mem::forget(self);
        // SAFETY: any handle value is safe; PASSIVE_LEVEL per the token (and
        // checked again).
        from_internal(unsafe { client::cleanup(handle) })
    }

    /// Connects a TCP socket to `remote` from the wildcard address of its
    /// family, waiting up to `timeout` ([`SafeWskConnect`](crate::SafeWskConnect)).
    ///
    /// Errors: [`Error::IO_TIMEOUT`], [`Error::CONNECTION_REFUSED`],
    /// [`Error::HOST_UNREACHABLE`], [`Error::NETWORK_UNREACHABLE`], ...
    /// (the provider's status); [`Error::INVALID_PARAMETER_2`] for an
    /// address a connect refuses (port 0, unspecified, broadcast or
    /// multicast, a family the provider lacks); [`Error::DELETE_PENDING`],
    /// [`Error::INSUFFICIENT_RESOURCES`], [`Error::NOT_SUPPORTED`].
    pub fn connect(
        &self,
        _irql: impl AtMostApc,
        remote: SocketAddr,
        timeout: impl Into<Timeout>,
    ) -> Result<TcpSocket<'_>> {
        let remote = Sockaddr::new(remote);
        let mut socket: *mut SAFEWSK_SOCKET = ptr::null_mut();
        // SAFETY: `remote` is a SOCKADDR_IN / SOCKADDR_IN6 as its family says,
        // `socket` is writable; both live for the call.
        from_internal(unsafe {
            connect::connect_short(self.handle, remote.as_ptr(), &mut socket, timeout.into().to_timeout_ms())
        })?;
        self.adopt(socket)
    }

    /// Connects a TCP socket from `local` (e.g. a chosen source address or
    /// port) to `remote` ([`SafeWskSocketConnect`](crate::SafeWskSocketConnect)
    /// without context, callbacks or security descriptor). Both addresses
    /// must be of the same family.
    ///
    /// Errors as [`Client::connect`], and [`Error::ADDRESS_ALREADY_EXISTS`]
    /// (the local address is in use); a bad `local` is
    /// [`Error::INVALID_PARAMETER_4`], a bad `remote`
    /// [`Error::INVALID_PARAMETER_5`].
    pub fn connect_from(
        &self,
        _irql: impl AtMostApc,
        local: SocketAddr,
        remote: SocketAddr,
        timeout: impl Into<Timeout>,
    ) -> Result<TcpSocket<'_>> {
        let local = Sockaddr::new(local);
        let remote = Sockaddr::new(remote);
        let args = ConnectArgs {
            socket_type: SOCK_STREAM,
            protocol: IPPROTO_TCP,
            local: local.as_ptr(),
            remote: remote.as_ptr(),
            flags: 0,
            socket_context: ptr::null_mut(),
            dispatch: ptr::null(),
            owning_process: ptr::null_mut(),
            owning_thread: ptr::null_mut(),
            security_descriptor: ptr::null_mut(),
        };
        let mut socket: *mut SAFEWSK_SOCKET = ptr::null_mut();
        // SAFETY: the addresses are SOCKADDR_IN / SOCKADDR_IN6 that live for
        // the call; `socket` is writable.
        from_internal(unsafe {
            connect::connect_and_wait(self.handle, args, &mut socket, timeout.into().to_timeout_ms())
        })?;
        self.adopt(socket)
    }

    /// Resolves `node` (a host name or numeric address) and `service` (a
    /// port number such as `"443"`, or a service name) with the provider's
    /// WskGetAddressInfo, then connects to the addresses in the resolver's
    /// order until one answers, all under one `timeout`
    /// ([`SafeWskConnectByName`](crate::SafeWskConnectByName)). Returns the
    /// socket and the address it reached.
    ///
    /// `node` may have at most 255 UTF-16 code units and `service` at most
    /// 32, without NUL characters; otherwise [`Error::INVALID_PARAMETER_2`]
    /// or [`Error::INVALID_PARAMETER_3`] (also for an empty string). The
    /// strings are copied (as UTF-16, on the stack) before anything else.
    ///
    /// Errors: [`Error::NOT_FOUND`] (no such name, or no usable address),
    /// [`Error::IO_TIMEOUT`], the last attempt's status (e.g.
    /// [`Error::CONNECTION_REFUSED`]), [`Error::DELETE_PENDING`],
    /// [`Error::NOT_SUPPORTED`], [`Error::INSUFFICIENT_RESOURCES`].
    ///
    /// IRQL: PASSIVE_LEVEL (WskGetAddressInfo's), hence the [`Passive`]
    /// token.
    pub fn connect_by_name(
        &self,
        _irql: Passive,
        node: &str,
        service: &str,
        timeout: impl Into<Timeout>,
    ) -> Result<(TcpSocket<'_>, SocketAddr)> {
        let mut node_chars = [0u16; by_name::SAFEWSK_BY_NAME_MAX_NODE_CHARS as usize];
        let mut service_chars = [0u16; by_name::SAFEWSK_BY_NAME_MAX_SERVICE_CHARS as usize];
        let node = utf16(node, &mut node_chars).ok_or(Error::INVALID_PARAMETER_2)?;
        let service = utf16(service, &mut service_chars).ok_or(Error::INVALID_PARAMETER_3)?;
        let mut socket: *mut SAFEWSK_SOCKET = ptr::null_mut();
        let mut reached = Sockaddr::default();
        let args = by_name::ByNameArgs {
            node: &node,
            service: &service,
            socket_context: ptr::null_mut(),
            dispatch: ptr::null(),
            socket_out: &mut socket,
            remote_out: reached.as_mut_ptr(),
            remote_out_len: core::mem::size_of::<Sockaddr>() as ULONG,
            timeout_ms: timeout.into().to_timeout_ms(),
        };
        // SAFETY: the UNICODE_STRINGs describe `Length` readable bytes of
        // the arrays above; `socket` and `reached` (28 bytes) are writable;
        // all live for the call.
        from_internal(unsafe { by_name::connect_by_name(self.handle, args) })?;
        let socket = self.adopt(socket)?;
        // The library writes a SOCKADDR_IN or SOCKADDR_IN6 on success.
        let reached = reached.get().ok_or(Error::UNSUCCESSFUL)?;
        Ok((socket, reached))
    }

    /// A socket handle a connect of this client returned.
    fn adopt(&self, socket: *mut SAFEWSK_SOCKET) -> Result<TcpSocket<'_>> {
        // SAFETY: a socket this client's connect just made; it borrows the
        // client.
        unsafe { TcpSocket::from_raw(socket) }.ok_or(Error::UNSUCCESSFUL)
    }

    /// The C handle, for the `SafeWsk*` exports (it stays owned by `self`).
    pub fn as_raw(&self) -> *mut SAFEWSK_CLIENT {
        self.handle
    }

    /// Gives the handle up without cleaning up: the caller owns it (for
    /// [`SafeWskCleanup`](crate::SafeWskCleanup), or
    /// [`Client::from_raw`] later), e.g. to keep it in a global from a
    /// worker thread until DriverUnload.
    pub fn into_raw(self) -> *mut SAFEWSK_CLIENT {
        let handle = self.handle;
        core::mem::forget(self);
        handle
    }

    /// A client from a handle of [`SafeWskStartup`](crate::SafeWskStartup) or
    /// [`Client::into_raw`]; `None` for NULL.
    ///
    /// # Safety
    /// The handle is owned by the caller and given to this value: no other
    /// `Client` has it, and no socket of this client made through the C
    /// API or [`TcpSocket::from_raw`] is still used when this value is
    /// cleaned up (the last client's cleanup frees the socket table: a
    /// socket call running then is outside the library's contract).
    pub unsafe fn from_raw(handle: *mut SAFEWSK_CLIENT) -> Option<Client> {
        (!handle.is_null()).then_some(Client { handle })
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        // SAFETY: any handle value is safe; the IRQL is checked (above
        // PASSIVE_LEVEL the cleanup is refused, see the type's docs).
        let _ = unsafe { client::cleanup(self.handle) };
    }
}

/// `s` as a counted UTF-16 string in `buf`; None if it does not fit.
fn utf16(s: &str, buf: &mut [u16]) -> Option<UNICODE_STRING> {
    let mut n = 0usize;
    for c in s.encode_utf16() {
        *buf.get_mut(n)? = c;
        n += 1;
    }
    let bytes = USHORT::try_from(n * 2).ok()?;
    Some(UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: buf.as_mut_ptr() })
}

/// A `TcpSocket` borrows its client for `'c`.
pub(crate) type ClientBorrow<'c> = PhantomData<&'c Client>;
