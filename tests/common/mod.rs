//! Helpers shared by the integration tests: loopback servers, addresses, and
//! thin wrappers over the exported C API.
#![allow(dead_code, unused_imports)]

use std::ffi::c_void;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::ptr;
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use safewsk::nt::*;
use safewsk::*;

pub use hostkernel::{ConnectCompletion, Session, Site};

/// A loopback server that echoes every byte back until the peer closes.
pub fn echo_server(addr: &str) -> Option<SocketAddr> {
    let listener = TcpListener::bind(addr).ok()?;
    let local = listener.local_addr().ok()?;
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    Some(local)
}

/// A loopback server that accepts and then neither reads nor writes until
/// the returned streams are dropped.
pub fn silent_server() -> (SocketAddr, thread::JoinHandle<Vec<TcpStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let local = listener.local_addr().expect("addr");
    let h = thread::spawn(move || {
        let (s, _) = listener.accept().expect("accept");
        vec![s]
    });
    (local, h)
}

/// A loopback port on which nothing listens.
pub fn closed_port() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    drop(l);
    a
}

pub fn ipv6_loopback_available() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// A Windows SOCKADDR_IN / SOCKADDR_IN6 for `addr`, as 28 bytes of storage.
#[repr(C, align(4))]
#[derive(Clone, Copy)]
pub struct Addr(pub [u8; 28]);

impl Addr {
    pub fn from(addr: SocketAddr) -> Addr {
        let mut b = [0u8; 28];
        match addr {
            SocketAddr::V4(a) => {
                let sin = SOCKADDR_IN {
                    sin_family: AF_INET,
                    sin_port: a.port().to_be(),
                    sin_addr: a.ip().octets(),
                    sin_zero: [0; 8],
                };
                // SAFETY: SOCKADDR_IN is 16 plain bytes.
                b[..16].copy_from_slice(unsafe { &std::mem::transmute::<SOCKADDR_IN, [u8; 16]>(sin) });
            }
            SocketAddr::V6(a) => {
                let sin6 = SOCKADDR_IN6 {
                    sin6_family: AF_INET6,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: a.ip().octets(),
                    sin6_scope_id: 0,
                };
                // SAFETY: SOCKADDR_IN6 is 28 plain bytes.
                b.copy_from_slice(unsafe { &std::mem::transmute::<SOCKADDR_IN6, [u8; 28]>(sin6) });
            }
        }
        Addr(b)
    }

    pub fn parse(s: &str) -> Addr {
        Addr::from(s.parse().expect("socket address"))
    }

    pub fn wildcard_like(addr: SocketAddr) -> Addr {
        match addr {
            SocketAddr::V4(_) => Addr::parse("0.0.0.0:0"),
            SocketAddr::V6(_) => Addr::parse("[::]:0"),
        }
    }

    pub fn ptr(&self) -> *const SOCKADDR {
        self.0.as_ptr().cast()
    }
}

/// The device object the tests pass to SafeWskStartup (the host kernel's
/// permanent test device).
pub fn dev() -> PDEVICE_OBJECT {
    hostkernel::test_device().cast()
}

/// SafeWskStartup, asserting success.
pub fn startup() -> *mut SAFEWSK_CLIENT {
    let mut client = ptr::null_mut();
    // SAFETY: valid out pointer; test threads run at PASSIVE_LEVEL.
    let st = unsafe { SafeWskStartup(dev(), 0, &mut client) };
    assert_eq!(st, STATUS_SUCCESS, "SafeWskStartup");
    assert!(!client.is_null());
    client
}

pub fn cleanup(client: *mut SAFEWSK_CLIENT) {
    // SAFETY: a live client from startup().
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_SUCCESS, "SafeWskCleanup");
}

/// SafeWskSocketConnect with the common defaults: TCP, wildcard local address.
pub fn connect(client: *mut SAFEWSK_CLIENT, remote: SocketAddr, timeout_ms: u32) -> (NTSTATUS, *mut SAFEWSK_SOCKET) {
    let local = Addr::wildcard_like(remote);
    let remote = Addr::from(remote);
    let mut socket = ptr::null_mut();
    // SAFETY: valid addresses and out pointer for the duration of the call.
    let st = unsafe {
        SafeWskSocketConnect(
            client,
            SOCK_STREAM,
            IPPROTO_TCP,
            local.ptr(),
            remote.ptr(),
            0,
            ptr::null_mut(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut socket,
            timeout_ms,
        )
    };
    (st, socket)
}

pub fn send(socket: *mut SAFEWSK_SOCKET, data: &[u8]) -> (NTSTATUS, u32) {
    send_with_timeout(socket, data, 2000)
}

/// SafeWskSend with a deadline (SAFEWSK_NO_TIMEOUT: none).
pub fn send_with_timeout(socket: *mut SAFEWSK_SOCKET, data: &[u8], timeout_ms: u32) -> (NTSTATUS, u32) {
    let mut n = 0;
    // SAFETY: `data` outlives the call.
    let st = unsafe { SafeWskSend(socket, data.as_ptr().cast(), data.len() as u32, 0, timeout_ms, &mut n) };
    (st, n)
}

pub fn receive(socket: *mut SAFEWSK_SOCKET, buf: &mut [u8], flags: u32, timeout_ms: u32) -> (NTSTATUS, u32) {
    let mut n = 0;
    // SAFETY: `buf` outlives the call.
    let st = unsafe { SafeWskReceive(socket, buf.as_mut_ptr().cast(), buf.len() as u32, flags, timeout_ms, &mut n) };
    (st, n)
}

pub fn close(socket: *mut SAFEWSK_SOCKET) -> NTSTATUS {
    // SAFETY: any handle value is safe.
    unsafe { SafeWskCloseSocket(socket) }
}

/// A request for SafeWskSocketConnectAsync.
pub fn new_request(callback: SAFEWSK_CONNECT_CALLBACK, context: PVOID, timeout_ms: u32) -> SAFEWSK_CONNECT_REQUEST {
    SAFEWSK_CONNECT_REQUEST {
        Callback: callback,
        CallbackContext: context,
        TimeoutMs: timeout_ms,
        Reserved: 0,
        Private: [0; 32],
    }
}

/// SafeWskSocketConnectAsync with the common defaults: TCP, no context,
/// dispatch table or security descriptor.
pub fn start_async(
    client: *mut SAFEWSK_CLIENT,
    local: &Addr,
    remote: &Addr,
    request: *mut SAFEWSK_CONNECT_REQUEST,
) -> NTSTATUS {
    start_async_with_sd(client, local, remote, ptr::null_mut(), request)
}

/// [`start_async`] with a security descriptor pointer.
pub fn start_async_with_sd(
    client: *mut SAFEWSK_CLIENT,
    local: &Addr,
    remote: &Addr,
    sd: PSECURITY_DESCRIPTOR,
    request: *mut SAFEWSK_CONNECT_REQUEST,
) -> NTSTATUS {
    // SAFETY: valid addresses; the caller keeps `request` (and its callback
    // context) valid until the callback has returned, and `sd` is NULL or
    // what the test means to pass.
    unsafe {
        SafeWskSocketConnectAsync(
            client,
            SOCK_STREAM,
            IPPROTO_TCP,
            local.ptr(),
            remote.ptr(),
            0,
            ptr::null_mut(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
            sd,
            request,
        )
    }
}

/// What the callback saw: (status, socket, IRQL, when).
#[derive(Default)]
pub struct Seen {
    pub calls: Mutex<Vec<(NTSTATUS, usize, u8, Instant)>>,
    pub cv: Condvar,
    /// The thread each call ran on.
    pub threads: Mutex<Vec<std::thread::ThreadId>>,
}

pub unsafe extern "C" fn on_connect(ctx: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
    // SAFETY: the context is the Arc<Seen> the test keeps alive.
    let seen = unsafe { &*(ctx as *const Seen) };
    let irql = hostkernel::irql::current();
    seen.threads.lock().unwrap().push(std::thread::current().id());
    seen.calls.lock().unwrap().push((status, socket as usize, irql, Instant::now()));
    seen.cv.notify_all();
}

impl Seen {
    pub fn wait(&self, n: usize, within: Duration) -> Vec<(NTSTATUS, usize, u8, Instant)> {
        let deadline = Instant::now() + within;
        let mut g = self.calls.lock().unwrap();
        while g.len() < n && Instant::now() < deadline {
            g = self.cv.wait_timeout(g, deadline - Instant::now()).unwrap().0;
        }
        g.clone()
    }
}

pub fn request(seen: &Arc<Seen>, timeout_ms: u32) -> Box<SAFEWSK_CONNECT_REQUEST> {
    Box::new(new_request(Some(on_connect), Arc::as_ptr(seen) as *mut c_void, timeout_ms))
}

pub fn start(client: *mut SAFEWSK_CLIENT, remote: std::net::SocketAddr, req: &mut SAFEWSK_CONNECT_REQUEST) -> NTSTATUS {
    start_async(client, &Addr::wildcard_like(remote), &Addr::from(remote), req)
}

/// SafeWskCancelConnect on a started request whose storage is intact.
pub fn cancel_connect(req: &mut SAFEWSK_CONNECT_REQUEST) -> NTSTATUS {
    // SAFETY: a request passed to SafeWskSocketConnectAsync (the caller's
    // contract), its storage intact (borrowed here).
    unsafe { SafeWskCancelConnect(req) }
}

/// The bound on a test's waits for something the host kernel or the library
/// is about to do: generous (a loaded machine), but a test never hangs.
pub const LONG: Duration = Duration::from_secs(30);

/// Waits until `cond` holds, checking every millisecond; fails the test if
/// it does not within [`LONG`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + LONG;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {LONG:?} waiting for {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Joins `h`, failing the test if the thread has not finished within
/// [`LONG`] (a call that hangs fails the test instead of hanging it).
pub fn join_within<T>(what: &str, h: thread::JoinHandle<T>) -> T {
    wait_until(what, || h.is_finished());
    h.join().unwrap_or_else(|_| panic!("{what} panicked"))
}

/// Helpers for the listening and datagram sockets (tests/listen_accept.rs,
/// tests/datagrams.rs and the others of issue 20).
pub mod servers;
