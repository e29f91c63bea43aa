//! Listening, accepting and datagram helpers over the exported C API.
#![allow(dead_code)]

use std::ffi::c_void;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::ptr;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use safewsk::nt::*;
use safewsk::*;

use super::Addr;

/// A SAFEWSK_ADDRESS as a std address (None: all zero or another family).
pub fn addr_of(a: &SAFEWSK_ADDRESS) -> Option<SocketAddr> {
    let mut b = [0u8; 28];
    for (i, w) in a.Storage.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&w.to_ne_bytes());
    }
    let family = u16::from_ne_bytes([b[0], b[1]]);
    let port = u16::from_be_bytes([b[2], b[3]]);
    match family {
        AF_INET => Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), port)),
        AF_INET6 => {
            let mut ip = [0u8; 16];
            ip.copy_from_slice(&b[8..24]);
            Some(SocketAddr::V6(SocketAddrV6::new(Ipv6Addr::from(ip), port, 0, 0)))
        }
        _ => None,
    }
}

/// SAFEWSK_SOCKET_OPTIONS with nothing set (Mask 0): no option at all.
pub fn no_options() -> SAFEWSK_SOCKET_OPTIONS {
    SAFEWSK_SOCKET_OPTIONS { Size: std::mem::size_of::<SAFEWSK_SOCKET_OPTIONS>() as u32, ..Default::default() }
}

/// SafeWskListen on `addr` with `options` (None: NULL, the default).
pub fn listen_with(
    client: *mut SAFEWSK_CLIENT,
    addr: &str,
    options: Option<&SAFEWSK_SOCKET_OPTIONS>,
) -> (NTSTATUS, *mut SAFEWSK_SOCKET) {
    let local = Addr::parse(addr);
    let mut socket = ptr::null_mut();
    let options = options.map_or(ptr::null(), |o| o as *const SAFEWSK_SOCKET_OPTIONS);
    // SAFETY: valid address, options and out pointer for the call.
    let st = unsafe { SafeWskListen(client, local.ptr(), options, &mut socket, 2000) };
    (st, socket)
}

/// SafeWskListen on `addr` with the default options, asserting success;
/// returns the socket and the address it listens on.
pub fn listen(client: *mut SAFEWSK_CLIENT, addr: &str) -> (*mut SAFEWSK_SOCKET, SocketAddr) {
    let (st, socket) = listen_with(client, addr, None);
    assert_eq!(st, STATUS_SUCCESS, "SafeWskListen({addr})");
    (socket, local_address(socket))
}

/// SafeWskGetLocalAddress, asserting success.
pub fn local_address(socket: *mut SAFEWSK_SOCKET) -> SocketAddr {
    let mut a = SAFEWSK_ADDRESS::default();
    // SAFETY: a writable 28-byte buffer.
    let st = unsafe { SafeWskGetLocalAddress(socket, (&mut a as *mut SAFEWSK_ADDRESS).cast(), 28, 2000) };
    assert_eq!(st, STATUS_SUCCESS, "SafeWskGetLocalAddress");
    addr_of(&a).expect("an address")
}

/// What SafeWskAccept returned: status, socket, local and remote address.
pub struct Accepted {
    pub status: NTSTATUS,
    pub socket: *mut SAFEWSK_SOCKET,
    pub local: Option<SocketAddr>,
    pub remote: Option<SocketAddr>,
}

/// SafeWskAccept without callbacks.
pub fn accept(listen: *mut SAFEWSK_SOCKET, timeout_ms: u32) -> Accepted {
    let mut socket = ptr::null_mut();
    let mut local = SAFEWSK_ADDRESS::default();
    let mut remote = SAFEWSK_ADDRESS::default();
    // SAFETY: valid out pointers for the call.
    let status = unsafe {
        SafeWskAccept(listen, ptr::null_mut(), ptr::null(), &mut socket, &mut local, &mut remote, timeout_ms)
    };
    Accepted { status, socket, local: addr_of(&local), remote: addr_of(&remote) }
}

/// One accept callback: (status, socket, IRQL, local, remote).
pub type AcceptCall = (NTSTATUS, usize, u8, Option<SocketAddr>, Option<SocketAddr>);

/// What an accept callback saw.
#[derive(Default)]
pub struct AcceptSeen {
    pub calls: Mutex<Vec<AcceptCall>>,
    pub cv: Condvar,
}

impl AcceptSeen {
    pub fn wait(&self, n: usize, within: Duration) -> Vec<AcceptCall> {
        let deadline = Instant::now() + within;
        let mut g = self.calls.lock().unwrap();
        while g.len() < n && Instant::now() < deadline {
            g = self.cv.wait_timeout(g, deadline - Instant::now()).unwrap().0;
        }
        g.clone()
    }
}

/// A request whose callback records into an AcceptSeen (the context) and
/// reads the request's address fields (the callback finds the request
/// through the context's `request` map: the tests keep one request per
/// AcceptSeen, whose address is stored here).
pub struct AcceptCtx {
    pub seen: AcceptSeen,
    pub request: Mutex<usize>,
}

pub unsafe extern "C" fn on_accept(ctx: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
    // SAFETY: the context is the Arc<AcceptCtx> the test keeps alive.
    let c = unsafe { &*(ctx as *const AcceptCtx) };
    let req = *c.request.lock().unwrap() as *const SAFEWSK_ACCEPT_REQUEST;
    // SAFETY: the request is intact until this callback returns.
    let req = unsafe { &*req };
    let (local, remote) = (addr_of(&req.LocalAddress), addr_of(&req.RemoteAddress));
    let irql = hostkernel::irql::current();
    c.seen.calls.lock().unwrap().push((status, socket as usize, irql, local, remote));
    c.seen.cv.notify_all();
}

/// A boxed accept request with `on_accept` and a fresh context.
pub fn accept_request(timeout_ms: u32) -> (Arc<AcceptCtx>, Box<SAFEWSK_ACCEPT_REQUEST>) {
    let ctx = Arc::new(AcceptCtx { seen: AcceptSeen::default(), request: Mutex::new(0) });
    let req = Box::new(SAFEWSK_ACCEPT_REQUEST {
        Callback: Some(on_accept),
        CallbackContext: Arc::as_ptr(&ctx) as *mut c_void,
        TimeoutMs: timeout_ms,
        Reserved: 0,
        LocalAddress: SAFEWSK_ADDRESS::default(),
        RemoteAddress: SAFEWSK_ADDRESS::default(),
        Private: [0; 32],
    });
    *ctx.request.lock().unwrap() = &*req as *const SAFEWSK_ACCEPT_REQUEST as usize;
    (ctx, req)
}

/// SafeWskAcceptAsync without callbacks for the accepted socket.
pub fn accept_async(listen: *mut SAFEWSK_SOCKET, req: &mut SAFEWSK_ACCEPT_REQUEST) -> NTSTATUS {
    // SAFETY: the request is kept alive by the test until its callback ran.
    unsafe { SafeWskAcceptAsync(listen, ptr::null_mut(), ptr::null(), req) }
}

/// SafeWskDatagramSocket on `addr` with `options` (None: NULL).
pub fn datagram_with(
    client: *mut SAFEWSK_CLIENT,
    addr: &str,
    options: Option<&SAFEWSK_SOCKET_OPTIONS>,
) -> (NTSTATUS, *mut SAFEWSK_SOCKET) {
    let local = Addr::parse(addr);
    let mut socket = ptr::null_mut();
    let options = options.map_or(ptr::null(), |o| o as *const SAFEWSK_SOCKET_OPTIONS);
    // SAFETY: valid address, options and out pointer for the call.
    let st = unsafe { SafeWskDatagramSocket(client, local.ptr(), options, &mut socket, 2000) };
    (st, socket)
}

/// SafeWskDatagramSocket, asserting success; the socket and its address.
pub fn datagram(client: *mut SAFEWSK_CLIENT, addr: &str) -> (*mut SAFEWSK_SOCKET, SocketAddr) {
    let (st, socket) = datagram_with(client, addr, None);
    assert_eq!(st, STATUS_SUCCESS, "SafeWskDatagramSocket({addr})");
    (socket, local_address(socket))
}

/// SafeWskSendTo.
pub fn send_to(socket: *mut SAFEWSK_SOCKET, data: &[u8], to: SocketAddr, timeout_ms: u32) -> (NTSTATUS, u32) {
    let to = Addr::from(to);
    let mut n = 0;
    // SAFETY: `data` and `to` outlive the call.
    let st = unsafe { SafeWskSendTo(socket, data.as_ptr().cast(), data.len() as u32, 0, to.ptr(), timeout_ms, &mut n) };
    (st, n)
}

/// SafeWskReceiveFrom: (status, bytes, sender).
pub fn receive_from(
    socket: *mut SAFEWSK_SOCKET,
    buf: &mut [u8],
    timeout_ms: u32,
) -> (NTSTATUS, u32, Option<SocketAddr>) {
    let mut n = 0;
    let mut from = SAFEWSK_ADDRESS::default();
    // SAFETY: `buf` and `from` outlive the call.
    let st = unsafe {
        SafeWskReceiveFrom(socket, buf.as_mut_ptr().cast(), buf.len() as u32, 0, &mut from, timeout_ms, &mut n)
    };
    (st, n, addr_of(&from))
}

/// The WSK_SOCKET of the only socket the provider has open.
pub fn only_wsk_socket() -> PVOID {
    let open = hostkernel::wsk::open_sockets();
    assert_eq!(open.len(), 1, "exactly one WSK socket open");
    open[0] as PVOID
}
