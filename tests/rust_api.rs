//! The safe Rust API (`safewsk::net`) against the host kernel and real
//! loopback sockets. Every test ends with `Session::finish`, which fails on
//! any leaked IRP, pool block, MDL, socket or registration and on any
//! contract violation, exactly as for the C exports' tests.

mod common;

use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::{closed_port, echo_server, silent_server, Session, LONG};
use hostkernel::ConnectCompletion;
use safewsk::net::{
    status_of, to_result, Client, ConnectRequest, DeviceObject, Error, LowIrql, NonPagedBuf, NonPagedSlice, Passive,
    TcpSocket, Timeout,
};
use safewsk::nt::*;

const T: Duration = Duration::from_secs(5);

/// Ends the process with a failure if the test has not finished within
/// [`LONG`] (a wait inside the library that never ends, such as a drop
/// waiting for a callback, would otherwise hold the host kernel's session
/// and every later test with it). Disarmed when dropped.
struct Watchdog(Option<std::sync::mpsc::Sender<()>>);

fn watchdog(what: &'static str) -> Watchdog {
    let (disarm, armed) = std::sync::mpsc::channel::<()>();
    std::thread::spawn(move || {
        if armed.recv_timeout(LONG) == Err(std::sync::mpsc::RecvTimeoutError::Timeout) {
            eprintln!("watchdog: {what} did not finish within {LONG:?}; failing the test process");
            std::process::exit(1);
        }
    });
    Watchdog(Some(disarm))
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.0.take());
    }
}

fn passive() -> Passive {
    Passive::get().expect("test threads run at PASSIVE_LEVEL")
}

fn device() -> DeviceObject {
    DeviceObject::from(hostkernel::test_device().cast::<DEVICE_OBJECT>())
}

fn start() -> Client {
    // SAFETY: the host kernel's permanent test device outlives every client.
    unsafe { Client::start(passive(), device(), Timeout::IMMEDIATE) }.expect("Client::start")
}

/// Connect, send, receive, both addresses, graceful disconnect, close,
/// cleanup: the C sample's exchange, and the statuses come back as `Ok`.
fn exchange(server: SocketAddr) {
    let _watchdog = watchdog("exchange");
    let k = Session::begin();
    let p = passive();
    let client = start();
    let socket = client.connect(p, server, T).expect("connect");
    assert_eq!(hostkernel::live().sockets, 1);
    let msg = b"PING safewsk\r\n";
    assert_eq!(socket.send(p, msg, T), Ok(msg.len()));
    let mut reply = [0u8; 14];
    assert_eq!(socket.receive_all(p, &mut reply, T), Ok(msg.len()));
    assert_eq!(&reply, msg);
    assert_eq!(socket.peer_addr(p, T), Ok(server));
    let local = socket.local_addr(p, T).expect("local address");
    assert_eq!(local.ip(), server.ip());
    assert_ne!(local.port(), 0);
    assert_eq!(socket.disconnect(p, T), Ok(()));
    assert_eq!(socket.close(p), Ok(()));
    assert_eq!(hostkernel::live().sockets, 0);
    assert_eq!(client.cleanup(p), Ok(()));
    k.finish();
}

#[test]
fn ipv4_exchange() {
    let _watchdog = watchdog("ipv4_exchange");
    exchange(echo_server("127.0.0.1:0").expect("v4 loopback"));
}

#[test]
fn ipv6_exchange() {
    let _watchdog = watchdog("ipv6_exchange");
    if !common::ipv6_loopback_available() {
        assert!(std::env::var_os("SAFEWSK_NO_IPV6").is_some(), "no [::1]; set SAFEWSK_NO_IPV6=1 to skip knowingly");
        return;
    }
    exchange(echo_server("[::1]:0").expect("v6 loopback"));
}

/// Drop closes the socket and cleans the client up: nothing is left, and
/// cleanup did not have to close the socket behind the driver's back.
#[test]
fn drop_closes_the_socket_and_cleans_up_the_client() {
    let _watchdog = watchdog("drop_closes_the_socket_and_cleans_up_the_client");
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("server");
    let _ = hostkernel::take_dbgprint_log();
    {
        let client = start();
        let socket = client.connect(passive(), server, T).expect("connect");
        assert_eq!(hostkernel::live().sockets, 1);
        drop(socket);
        assert_eq!(hostkernel::live().sockets, 0, "the drop closed the socket");
        assert_eq!(hostkernel::live().registrations, 1);
    }
    assert_eq!(hostkernel::live().registrations, 0, "the drop cleaned the client up");
    let log = hostkernel::take_dbgprint_log().join("");
    assert!(!log.contains("closing"), "cleanup closed a socket the drop should have: {log}");
    k.finish();
}

/// A socket given up with `into_raw` is the caller's: the client's cleanup
/// closes it (reported), and nothing leaks.
#[test]
fn cleanup_closes_a_socket_given_up_with_into_raw() {
    let _watchdog = watchdog("cleanup_closes_a_socket_given_up_with_into_raw");
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("server");
    let p = passive();
    let client = start();
    let raw = client.connect(p, server, T).expect("connect").into_raw();
    assert_eq!(hostkernel::live().sockets, 1);
    assert_eq!(client.cleanup(p), Ok(()));
    assert_eq!(hostkernel::live().sockets, 0);
    // The handle is refused now, through the C API as through the Rust one.
    // SAFETY: any handle value is safe.
    assert_eq!(unsafe { safewsk::SafeWskCloseSocket(raw) }, STATUS_INVALID_PARAMETER_1);
    k.finish();
}

#[test]
fn errors_are_the_c_exports_statuses() {
    let _watchdog = watchdog("errors_are_the_c_exports_statuses");
    let k = Session::begin();
    let p = passive();
    let client = start();
    let refused = client.connect(p, closed_port(), T).map(|_| ());
    assert_eq!(refused, Err(Error::CONNECTION_REFUSED));
    assert_eq!(format!("{:?}", Error::CONNECTION_REFUSED), "STATUS_CONNECTION_REFUSED (0xC0000236)");
    assert_eq!(status_of(refused), STATUS_CONNECTION_REFUSED);
    assert_eq!(to_result(STATUS_PENDING), Ok(()));
    // Port 0 is not an address a connect accepts: SafeWskConnect's _2.
    let zero: SocketAddr = "127.0.0.1:0".parse().unwrap();
    assert_eq!(client.connect(p, zero, T).map(|_| ()), Err(Error::INVALID_PARAMETER_2));
    // connect_from: a bad local address is _4 (SafeWskSocketConnect's).
    let multicast: SocketAddr = "224.0.0.1:0".parse().unwrap();
    assert_eq!(client.connect_from(p, multicast, closed_port(), T).map(|_| ()), Err(Error::INVALID_PARAMETER_4));
    assert_eq!(client.cleanup(p), Ok(()));
    // A null device object: SafeWskStartup's _1.
    // SAFETY: NULL is refused before anything is done with it.
    let null =
        unsafe { Client::start(p, DeviceObject::from(std::ptr::null_mut::<DEVICE_OBJECT>()), Timeout::IMMEDIATE) };
    assert_eq!(null.map(|_| ()), Err(Error::INVALID_PARAMETER_1));
    k.finish();
}

/// `Duration::ZERO` is `TimeoutMs` 0 (not waited for), a short duration is
/// a deadline, `None` is no deadline: each maps exactly.
#[test]
fn timeouts_map_onto_timeout_ms() {
    let _watchdog = watchdog("timeouts_map_onto_timeout_ms");
    let k = Session::begin();
    let (server, accepted) = silent_server();
    let p = passive();
    let client = start();
    let socket = client.connect(p, server, T).expect("connect");
    let mut buf = [0u8; 16];
    let t0 = Instant::now();
    assert_eq!(socket.receive(p, &mut buf, Duration::ZERO), Err(Error::IO_TIMEOUT));
    assert!(t0.elapsed() < Duration::from_secs(2), "Duration::ZERO waited");
    let t0 = Instant::now();
    assert_eq!(socket.receive(p, &mut buf, Duration::from_millis(100)), Err(Error::IO_TIMEOUT));
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_millis(95) && waited < LONG, "{waited:?}");
    // No deadline: the receive waits until data arrives (on a thread of its
    // own, joined within LONG: the test itself never waits unbounded).
    let raw = socket.into_raw() as usize;
    let reader = std::thread::spawn(move || {
        // SAFETY: the handle of `client`'s socket, given up above; the client
        // is cleaned up only after this thread has been joined.
        let socket = unsafe { TcpSocket::from_raw(raw as *mut safewsk::SAFEWSK_SOCKET) }.expect("non-null");
        let mut buf = [0u8; 16];
        let r = socket.receive(passive(), &mut buf, None::<Duration>);
        (r, buf) // the socket's drop closes it
    });
    let streams = common::join_within("the silent server's accept", accepted);
    std::thread::sleep(Duration::from_millis(100));
    use std::io::Write;
    (&streams[0]).write_all(b"late").unwrap();
    let (r, buf) = common::join_within("the receive without a deadline", reader);
    assert_eq!(r, Ok(4));
    assert_eq!(&buf[..4], b"late");
    drop(streams);
    drop(client);
    k.finish();
}

/// Buffers: an empty one makes no call; a NonPagedBuf (pool the type
/// allocated) and a NonPagedSlice take the non-paged path; a LowIrql token
/// does for the calls that need IRQL <= APC_LEVEL.
#[test]
fn buffers_of_every_kind() {
    let _watchdog = watchdog("buffers_of_every_kind");
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("server");
    let p = passive();
    let low: LowIrql = p.into();
    let client = start();
    let socket = client.connect(low, server, T).expect("connect");
    assert_eq!(socket.send(low, &[][..], T), Ok(0));
    let mut buf = NonPagedBuf::new(p, 64).expect("pool");
    assert_eq!(hostkernel::live().pool_blocks, 3, "the client block, a socket chunk and the buffer");
    buf[..5].copy_from_slice(b"hello");
    assert_eq!(socket.send(low, &buf.sub(..5).expect("in bounds"), T), Ok(5));
    assert!(buf.sub(..65).is_none());
    assert_eq!(socket.send(low, &buf[..0], T), Ok(0));
    let mut back = NonPagedBuf::new(p, 5).expect("pool");
    assert_eq!(socket.receive_all(low, &mut back, T), Ok(5));
    assert_eq!(&back[..], b"hello");
    // A NonPagedSlice over the pool block the first buffer owns.
    // SAFETY: `buf` is non-paged pool (NonPagedBuf), borrowed for the slice.
    let slice = unsafe { NonPagedSlice::new(&mut buf[..]) };
    assert_eq!(socket.send(low, &slice, T), Ok(64));
    let mut echo = [0u8; 64];
    assert_eq!(socket.receive_all(low, &mut echo[..], T), Ok(64));
    assert_eq!(&echo[..5], b"hello");
    drop((buf, back));
    socket.close(low).expect("close");
    client.cleanup(p).expect("cleanup");
    k.finish();
}

/// Above the IRQL a call allows it fails with INVALID_LEVEL: the tokens
/// are statements, the library still checks.
#[test]
fn the_irql_is_checked_behind_the_tokens() {
    let _watchdog = watchdog("the_irql_is_checked_behind_the_tokens");
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("server");
    let p = passive();
    let client = start();
    let socket = client.connect(p, server, T).expect("connect");
    hostkernel::with_irql(DISPATCH_LEVEL, || {
        assert!(Passive::get().is_none());
        assert!(LowIrql::get().is_none());
        assert_eq!(socket.send(p, b"x", T), Err(Error::INVALID_LEVEL));
        assert_eq!(client.connect(p, server, T).map(|_| ()), Err(Error::INVALID_LEVEL));
    });
    hostkernel::with_irql(APC_LEVEL, || {
        assert!(Passive::get().is_none());
        let low = LowIrql::get().expect("APC_LEVEL");
        assert_eq!(socket.send(low, b"x", T), Ok(1));
    });
    drop(socket);
    client.cleanup(p).expect("cleanup");
    k.finish();
}

#[test]
fn connect_by_name_reaches_localhost() {
    let _watchdog = watchdog("connect_by_name_reaches_localhost");
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("server");
    let p = passive();
    let client = start();
    let (socket, reached) = client.connect_by_name(p, "localhost", &server.port().to_string(), T).expect("by name");
    assert_eq!(reached, server);
    assert_eq!(socket.send(p, b"ping", T), Ok(4));
    let mut buf = [0u8; 4];
    assert_eq!(socket.receive_all(p, &mut buf, T), Ok(4));
    drop(socket);
    // Names that do not fit, or are empty, are the export's _2 / _3.
    let long = "a".repeat(256);
    assert_eq!(client.connect_by_name(p, &long, "7", T).map(|_| ()), Err(Error::INVALID_PARAMETER_2));
    assert_eq!(client.connect_by_name(p, "", "7", T).map(|_| ()), Err(Error::INVALID_PARAMETER_2));
    assert_eq!(client.connect_by_name(p, "localhost", &"9".repeat(33), T).map(|_| ()), Err(Error::INVALID_PARAMETER_3));
    assert_eq!(client.connect_by_name(p, "local\0host", "7", T).map(|_| ()), Err(Error::INVALID_PARAMETER_2));
    client.cleanup(p).expect("cleanup");
    k.finish();
}

/// What an asynchronous callback saw.
#[derive(Default)]
struct Outcome {
    results: Mutex<Vec<Result<usize, Error>>>,
    cv: Condvar,
}

impl Outcome {
    fn push(&self, r: Result<usize, Error>) {
        self.results.lock().unwrap().push(r);
        self.cv.notify_all();
    }

    fn wait(&self, n: usize) -> Vec<Result<usize, Error>> {
        let deadline = Instant::now() + LONG;
        let mut g = self.results.lock().unwrap();
        while g.len() < n && Instant::now() < deadline {
            g = self.cv.wait_timeout(g, deadline - Instant::now()).unwrap().0;
        }
        g.clone()
    }
}

/// The callback runs once with the socket, which it hands back (as a raw
/// handle, the way a driver would queue it to a worker); the socket works
/// at PASSIVE_LEVEL afterwards. The storage is pinned on the stack.
#[test]
fn async_connect_calls_back_once_with_the_socket() {
    let _watchdog = watchdog("async_connect_calls_back_once_with_the_socket");
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("server");
    let p = passive();
    let client = start();
    let outcome = Arc::new(Outcome::default());
    let handed = Arc::new(Mutex::new(None));
    {
        let (o, h) = (outcome.clone(), handed.clone());
        let mut request = pin!(ConnectRequest::new(move |r: safewsk::net::Result<TcpSocket<'_>>| {
            // The callback keeps the socket (as a raw handle, the way a
            // driver would queue it to a worker); a failure is recorded.
            o.push(r.map(|s| {
                *h.lock().unwrap() = Some(s.into_raw() as usize);
                0
            }));
        }));
        request.as_mut().start(&client, server, T).expect("start");
        assert_eq!(outcome.wait(1), vec![Ok(0)]);
        common::wait_until("the request to go idle", || !request.is_pending());
        assert!(!request.cancel(), "nothing left to cancel");
        // The same storage starts a second connect (refused: a closed port).
        request.as_mut().start(&client, closed_port(), T).expect("restart");
        assert_eq!(outcome.wait(2)[1], Err(Error::CONNECTION_REFUSED));
    }
    let raw = handed.lock().unwrap().take().expect("socket handed over");
    // SAFETY: the handle the callback gave up, of `client`, which outlives it.
    let socket = unsafe { TcpSocket::from_raw(raw as *mut safewsk::SAFEWSK_SOCKET) }.expect("non-null");
    assert_eq!(socket.send(p, b"async", T), Ok(5));
    let mut buf = [0u8; 5];
    assert_eq!(socket.receive_all(p, &mut buf, T), Ok(5));
    socket.close(p).expect("close");
    client.cleanup(p).expect("cleanup");
    assert_eq!(outcome.wait(2).len(), 2, "exactly once per start");
    k.finish();
}

/// A pending connect: a second start on the same storage is DEVICE_BUSY
/// (and calls nothing back); dropping the storage cancels
/// and waits for the callback, which runs once with CANCELLED. Also from
/// a Box::pin and started at DISPATCH_LEVEL.
#[test]
fn dropping_a_pending_request_cancels_and_waits_for_its_callback() {
    let _watchdog = watchdog("dropping_a_pending_request_cancels_and_waits_for_its_callback");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let p = passive();
    let client = start();
    let outcome = Arc::new(Outcome::default());
    {
        let o = outcome.clone();
        let mut request = Box::pin(ConnectRequest::new(move |r| o.push(r.map(|_| 0))));
        let started =
            hostkernel::with_irql(DISPATCH_LEVEL, || request.as_mut().start(&client, closed_port(), Timeout::NEVER));
        assert_eq!(started, Ok(()));
        assert!(request.is_pending());
        let busy = request.as_mut().start(&client, closed_port(), T);
        assert_eq!(busy, Err(Error::DEVICE_BUSY));
        std::thread::sleep(Duration::from_millis(20));
        assert!(outcome.results.lock().unwrap().is_empty());
    } // dropped here: cancel, wait
    assert_eq!(*outcome.results.lock().unwrap(), vec![Err(Error::CANCELLED)]);
    client.cleanup(p).expect("cleanup");
    k.finish();
}

/// The deadline of an asynchronous connect: IO_TIMEOUT, once; and an
/// explicit cancel: CANCELLED.
#[test]
fn async_connect_deadline_and_cancel() {
    let _watchdog = watchdog("async_connect_deadline_and_cancel");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let p = passive();
    let client = start();
    let outcome = Arc::new(Outcome::default());
    {
        let o = outcome.clone();
        let mut request = pin!(ConnectRequest::new(move |r| o.push(r.map(|_| 0))));
        request.as_mut().start(&client, closed_port(), Duration::from_millis(50)).unwrap();
        assert_eq!(outcome.wait(1), vec![Err(Error::IO_TIMEOUT)]);
        common::wait_until("the request to go idle", || !request.is_pending());
        request.as_mut().start(&client, closed_port(), None::<Duration>).unwrap();
        assert!(request.cancel());
        assert_eq!(outcome.wait(2)[1], Err(Error::CANCELLED));
        common::wait_until("the request to go idle", || !request.is_pending());
    } // the request borrows the client: it must be gone before the cleanup
    client.cleanup(p).expect("cleanup");
    k.finish();
}

/// The buffer's type chooses the path: with every probe made to fail, a
/// `[u8]` send fails with the probe's exception (it was probed and locked),
/// while a NonPagedBuf's goes through (MmBuildMdlForNonPagedPool, no probe;
/// the host kernel would flag that path on a stack or paged buffer).
#[test]
fn the_buffer_type_chooses_probe_and_lock_or_the_nonpaged_path() {
    let _watchdog = watchdog("the_buffer_type_chooses_probe_and_lock_or_the_nonpaged_path");
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("server");
    let p = passive();
    let client = start();
    let socket = client.connect(p, server, T).expect("connect");
    let mut pool = NonPagedBuf::new(p, 4).expect("pool");
    pool.copy_from_slice(b"pool");
    k.fail_probe(1, STATUS_ACCESS_VIOLATION);
    assert_eq!(socket.send(p, &pool, T), Ok(4), "a NonPagedBuf is not probed");
    let stack = *b"stak";
    assert_eq!(socket.send(p, &stack, T), Err(Error::ACCESS_VIOLATION), "a [u8] is probed");
    let mut back = [0u8; 4];
    assert_eq!(socket.receive_all(p, &mut back, T), Ok(4));
    assert_eq!(&back, b"pool");
    drop(pool);
    drop(socket);
    client.cleanup(p).expect("cleanup");
    k.finish();
}

/// A socket is `Sync`: a receive waiting on one thread while another sends
/// on the same socket (the C API allows overlapping calls); each thread gets
/// its own token (tokens are not `Send`).
#[test]
fn overlapping_calls_on_one_socket_from_two_threads() {
    let _watchdog = watchdog("overlapping_calls_on_one_socket_from_two_threads");
    let k = Session::begin();
    let server = echo_server("127.0.0.1:0").expect("server");
    let client = start();
    let socket = client.connect(passive(), server, T).expect("connect");
    std::thread::scope(|s| {
        let receiver = s.spawn(|| {
            let mut buf = [0u8; 6];
            let n = socket.receive_all(passive(), &mut buf, T);
            (n, buf)
        });
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(socket.send(passive(), b"thread", T), Ok(6));
        let (n, buf) = receiver.join().expect("receiver");
        assert_eq!(n, Ok(6));
        assert_eq!(&buf, b"thread");
    });
    drop(socket);
    drop(client);
    k.finish();
}
