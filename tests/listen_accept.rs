//! SafeWskListen, SafeWskAccept, SafeWskAcceptAsync and SafeWskCancelAccept
//! on the host kernel (issue 20, item 1): a listening socket made and bound
//! under one deadline, the accepted socket an ordinary connection socket,
//! the deadlines, and what closing the listening socket does to pending
//! accepts (they complete with STATUS_CANCELLED; the close does not wait).

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

use common::servers::*;
use common::*;
use hostkernel::{CallFault, CancelBehaviour, WskCall};
use safewsk::nt::*;
use safewsk::*;

/// An accepted connection carries bytes both ways, knows both addresses,
/// disconnects gracefully and closes; the listening socket closes; nothing
/// leaks.
fn accept_and_exchange(listen_on: &str) {
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, listen_on);
    assert_ne!(at.port(), 0, "the stack chose a port");
    let mut peer = TcpStream::connect(at).expect("connect");
    let a = accept(listener, SAFEWSK_NO_TIMEOUT);
    assert_eq!(a.status, STATUS_SUCCESS);
    assert!(!a.socket.is_null());
    assert_eq!(a.remote, Some(peer.local_addr().unwrap()), "the remote address is the peer's");
    assert_eq!(a.local, Some(peer.peer_addr().unwrap()), "the local address is the one connected to");
    let s = a.socket;
    assert_eq!(send(s, b"hello from the kernel"), (STATUS_SUCCESS, 21));
    let mut buf = [0u8; 21];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello from the kernel");
    peer.write_all(b"pong").unwrap();
    let mut got = [0u8; 4];
    assert_eq!(receive(s, &mut got, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 4));
    assert_eq!(&got, b"pong");
    // The address queries work on the accepted socket.
    let mut remote = SAFEWSK_ADDRESS::default();
    // SAFETY: a writable 28-byte buffer.
    let st = unsafe { SafeWskGetRemoteAddress(s, (&mut remote as *mut SAFEWSK_ADDRESS).cast(), 28, 2000) };
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(addr_of(&remote), Some(peer.local_addr().unwrap()));
    // SAFETY: any handle value is safe.
    assert_eq!(unsafe { SafeWskDisconnect(s, 0, 2000) }, STATUS_SUCCESS);
    let mut rest = Vec::new();
    peer.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty(), "the graceful disconnect reached the peer as FIN");
    assert_eq!(close(s), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_INVALID_PARAMETER_1, "the handle is consumed");
    cleanup(client);
    k.finish();
}

#[test]
fn an_accepted_connection_is_an_ordinary_connection_socket() {
    accept_and_exchange("127.0.0.1:0");
}

#[test]
fn an_ipv6_listening_socket_accepts() {
    if !ipv6_loopback_available() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    accept_and_exchange("[::1]:0");
}

/// Several clients queue up; each accept takes one; the listening socket
/// keeps listening between accepts.
#[test]
fn one_listening_socket_accepts_many_connections() {
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    let peers: Vec<TcpStream> = (0..8).map(|_| TcpStream::connect(at).expect("connect")).collect();
    let mut accepted = Vec::new();
    for _ in 0..8 {
        let a = accept(listener, 5000);
        assert_eq!(a.status, STATUS_SUCCESS);
        accepted.push(a.socket);
    }
    let mut remotes: Vec<SocketAddr> = accepted
        .iter()
        .map(|&s| {
            let mut r = SAFEWSK_ADDRESS::default();
            // SAFETY: a writable 28-byte buffer.
            let st = unsafe { SafeWskGetRemoteAddress(s, (&mut r as *mut SAFEWSK_ADDRESS).cast(), 28, 2000) };
            assert_eq!(st, STATUS_SUCCESS);
            addr_of(&r).unwrap()
        })
        .collect();
    let mut locals: Vec<SocketAddr> = peers.iter().map(|p| p.local_addr().unwrap()).collect();
    remotes.sort();
    locals.sort();
    assert_eq!(remotes, locals, "each connection accepted once");
    for s in accepted {
        assert_eq!(close(s), STATUS_SUCCESS);
    }
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// The options: NULL is SO_EXCLUSIVEADDRUSE 1 ("Using SO_EXCLUSIVEADDRUSE");
/// an options structure is applied exactly (Mask 0: nothing); each option
/// reaches the Linux socket; a second socket on the same port is refused.
#[test]
fn the_default_is_exclusive_and_options_are_applied_exactly() {
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    assert_eq!(hostkernel::wsk_control::socket_exclusive(only_wsk_socket()), Some(true), "NULL options: exclusive");
    let (st, second) = listen_with(client, &at.to_string(), None);
    assert_eq!(st, STATUS_ADDRESS_ALREADY_EXISTS, "the address is in use");
    assert!(second.is_null());
    assert_eq!(close(listener), STATUS_SUCCESS);

    let none = no_options();
    let (st, listener) = listen_with(client, "127.0.0.1:0", Some(&none));
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(hostkernel::wsk_control::socket_exclusive(only_wsk_socket()), Some(false), "Mask 0: no option");
    assert_eq!(close(listener), STATUS_SUCCESS);

    let o = SAFEWSK_SOCKET_OPTIONS {
        Mask: SAFEWSK_OPTION_REUSEADDR | SAFEWSK_OPTION_KEEPALIVE | SAFEWSK_OPTION_RCVBUF,
        ReuseAddress: 1,
        KeepAlive: 1,
        ReceiveBufferSize: 65536,
        ..no_options()
    };
    let (st, listener) = listen_with(client, "127.0.0.1:0", Some(&o));
    assert_eq!(st, STATUS_SUCCESS);
    let fd = hostkernel::socket_fd(only_wsk_socket()).expect("fd");
    let get = |name| {
        let mut v: i32 = 0;
        let mut len = 4u32;
        // SAFETY: a writable int and its size.
        assert_eq!(unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut v as *mut i32).cast(), &mut len) }, 0);
        v
    };
    assert_eq!(get(libc::SO_REUSEADDR), 1);
    assert_eq!(get(libc::SO_KEEPALIVE), 1);
    assert!(get(libc::SO_RCVBUF) >= 65536, "SO_RCVBUF (Linux doubles it)");
    // SO_KEEPALIVE through SafeWskControlSocket on the listening socket.
    let mut v: u32 = 7;
    // SAFETY: valid buffers for the call.
    let st = unsafe {
        SafeWskControlSocket(
            listener,
            WskGetOption,
            SO_KEEPALIVE,
            SOL_SOCKET,
            0,
            ptr::null(),
            4,
            (&mut v as *mut u32).cast(),
            ptr::null_mut(),
            2000,
        )
    };
    assert_eq!((st, v), (STATUS_SUCCESS, 1));
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Deadlines: a finite TimeoutMs with nobody connecting is STATUS_IO_TIMEOUT
/// within the deadline plus scheduling; 0 is not waited for; the listening
/// socket still accepts afterwards.
#[test]
fn an_accept_times_out_and_the_listening_socket_goes_on() {
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    let t0 = Instant::now();
    let a = accept(listener, 150);
    let took = t0.elapsed();
    assert_eq!(a.status, STATUS_IO_TIMEOUT);
    assert!(a.socket.is_null() && a.local.is_none() && a.remote.is_none(), "nothing written on failure");
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(5), "{took:?}");
    assert_eq!(accept(listener, 0).status, STATUS_IO_TIMEOUT, "0: not waited for");
    let _peer = TcpStream::connect(at).expect("connect");
    let a = accept(listener, 5000);
    assert_eq!(a.status, STATUS_SUCCESS);
    assert_eq!(close(a.socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// A provider that completes synchronously hands out a connection that is
/// already waiting even with TimeoutMs 0.
#[test]
fn timeout_zero_takes_a_waiting_connection_from_a_synchronous_provider() {
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    let _peer = TcpStream::connect(at).expect("connect");
    thread::sleep(Duration::from_millis(20));
    hostkernel::set_connect_completion(ConnectCompletion::Sync);
    let a = accept(listener, 0);
    hostkernel::set_connect_completion(ConnectCompletion::Async);
    assert_eq!(a.status, STATUS_SUCCESS);
    assert_eq!(close(a.socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Closing the listening socket while an accept waits (no deadline): the
/// close does not wait for the accept, and WSK completes the accept with
/// STATUS_CANCELLED ("Calling the WskCloseSocket function causes the WSK
/// subsystem to cancel and complete all pending IRPs").
#[test]
fn closing_the_listening_socket_completes_a_pending_accept_with_cancelled() {
    let k = Session::begin();
    let client = startup();
    let (listener, _) = listen(client, "127.0.0.1:0");
    let wsk = only_wsk_socket();
    let handle = listener as usize;
    let waiter = thread::spawn(move || accept(handle as *mut SAFEWSK_SOCKET, SAFEWSK_NO_TIMEOUT).status);
    wait_until("the accept pending in the provider", || hostkernel::requests_in_flight(wsk) == 1);
    let t0 = Instant::now();
    assert_eq!(close(listener), STATUS_SUCCESS);
    assert!(t0.elapsed() < Duration::from_secs(5), "the close did not wait for the accept");
    assert_eq!(join_within("the accept", waiter), STATUS_CANCELLED);
    assert_eq!(accept(listener, 0).status, STATUS_INVALID_PARAMETER_1, "a closed listening socket");
    cleanup(client);
    k.finish();
}

/// A handle of another kind is parameter 1 of every call that does not take
/// that kind; the listening socket's handle works where it should.
// One table of calls into the C API with valid buffers (the handles are the
// test): one unsafe block for the table, as tests/check_order.rs does.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn wrong_kind_handles_are_parameter_1() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (listener, _) = listen(client, "127.0.0.1:0");
    let (st, conn) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut buf = [0u8; 4];
    let mut n = 0;
    // SAFETY: every call below gets valid buffers; the handles are the test.
    unsafe {
        assert_eq!(SafeWskSend(listener, buf.as_ptr().cast(), 4, 0, 100, &mut n), STATUS_INVALID_PARAMETER_1);
        assert_eq!(SafeWskReceive(listener, buf.as_mut_ptr().cast(), 4, 0, 100, &mut n), STATUS_INVALID_PARAMETER_1);
        assert_eq!(SafeWskDisconnect(listener, 0, 100), STATUS_INVALID_PARAMETER_1);
        assert_eq!(SafeWskEnableCallbacks(listener, WSK_EVENT_RECEIVE), STATUS_INVALID_PARAMETER_1);
        assert_eq!(SafeWskDisableCallbacks(listener, WSK_EVENT_RECEIVE, 100), STATUS_INVALID_PARAMETER_1);
        assert_eq!(SafeWskRelease(listener, 8 as *mut WSK_DATA_INDICATION), STATUS_INVALID_PARAMETER_1);
        let mut a = SAFEWSK_ADDRESS::default();
        let pa = (&mut a as *mut SAFEWSK_ADDRESS).cast();
        assert_eq!(SafeWskGetRemoteAddress(listener, pa, 28, 100), STATUS_INVALID_PARAMETER_1);
        assert_eq!(SafeWskGetLocalAddress(listener, pa, 28, 100), STATUS_SUCCESS, "a listening socket's");
        let to = Addr::from(server);
        assert_eq!(
            SafeWskSendTo(listener, buf.as_ptr().cast(), 4, 0, to.ptr(), 100, &mut n),
            STATUS_INVALID_PARAMETER_1
        );
        assert_eq!(
            SafeWskReceiveFrom(listener, buf.as_mut_ptr().cast(), 4, 0, ptr::null_mut(), 100, &mut n),
            STATUS_INVALID_PARAMETER_1
        );
        let mut v: u32 = 0;
        let pv = (&mut v as *mut u32).cast();
        // TCP_NODELAY is a connection socket's option: _3 on a listening one.
        let st = SafeWskControlSocket(
            listener,
            WskGetOption,
            TCP_NODELAY,
            IPPROTO_TCP,
            0,
            ptr::null(),
            4,
            pv,
            ptr::null_mut(),
            100,
        );
        assert_eq!(st, STATUS_INVALID_PARAMETER_3);
    }
    assert_eq!(accept(conn, 100).status, STATUS_INVALID_PARAMETER_1, "a connection socket is not a listening one");
    let (ctx, mut req) = accept_request(100);
    assert_eq!(accept_async(conn, &mut req), STATUS_INVALID_PARAMETER_1);
    assert!(ctx.seen.calls.lock().unwrap().is_empty(), "no callback for a refused request");
    assert_eq!(close(conn), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Each bad parameter is its own STATUS_INVALID_PARAMETER_n, before the
/// provider is called; then the IRQL; a closed or forged handle is _1.
#[test]
fn parameters_are_checked_by_position() {
    let k = Session::begin();
    let client = startup();
    let local = Addr::parse("127.0.0.1:0");
    let mut socket = ptr::null_mut();
    let listen_call =
        |c: *mut SAFEWSK_CLIENT, l: *const SOCKADDR, o: *const SAFEWSK_SOCKET_OPTIONS, s: *mut *mut SAFEWSK_SOCKET| {
            // SAFETY: every pointer is NULL or valid; the values are the test.
            unsafe { SafeWskListen(c, l, o, s, 1000) }
        };
    assert_eq!(listen_call(ptr::null_mut(), local.ptr(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_1);
    assert_eq!(listen_call(client, ptr::null(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_2);
    let bad_family = Addr([7u8; 28]);
    assert_eq!(listen_call(client, bad_family.ptr(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_2);
    let multicast = Addr::parse("224.0.0.1:0");
    assert_eq!(listen_call(client, multicast.ptr(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_2);
    let bad_size = SAFEWSK_SOCKET_OPTIONS { Size: 3, ..Default::default() };
    assert_eq!(listen_call(client, local.ptr(), &bad_size, &mut socket), STATUS_INVALID_PARAMETER_3);
    let both = SAFEWSK_SOCKET_OPTIONS {
        Mask: SAFEWSK_OPTION_EXCLUSIVEADDRUSE | SAFEWSK_OPTION_REUSEADDR,
        ExclusiveAddressUse: 1,
        ReuseAddress: 1,
        ..no_options()
    };
    assert_eq!(listen_call(client, local.ptr(), &both, &mut socket), STATUS_INVALID_PARAMETER_3);
    assert_eq!(listen_call(client, local.ptr(), ptr::null(), ptr::null_mut()), STATUS_INVALID_PARAMETER_4);
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || listen_call(client, local.ptr(), ptr::null(), &mut socket));
    assert_eq!(st, STATUS_INVALID_LEVEL);
    assert!(hostkernel::wsk::open_sockets().is_empty(), "nothing reached the provider");

    let (listener, _) = listen(client, "127.0.0.1:0");
    let table =
        WSK_CLIENT_CONNECTION_DISPATCH { WskReceiveEvent: None, WskDisconnectEvent: None, WskSendBacklogEvent: None };
    let accept_call =
        |l: *mut SAFEWSK_SOCKET, c: PVOID, d: *const WSK_CLIENT_CONNECTION_DISPATCH, s: *mut *mut SAFEWSK_SOCKET| {
            // SAFETY: every pointer is NULL or valid; the values are the test.
            unsafe { SafeWskAccept(l, c, d, s, ptr::null_mut(), ptr::null_mut(), 0) }
        };
    assert_eq!(accept_call(ptr::null_mut(), ptr::null_mut(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_1);
    assert_eq!(accept_call(0x1234 as *mut _, ptr::null_mut(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_1);
    assert_eq!(accept_call(listener, 8 as PVOID, ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_2);
    assert_eq!(accept_call(listener, ptr::null_mut(), &table, &mut socket), STATUS_INVALID_PARAMETER_3);
    assert_eq!(accept_call(listener, ptr::null_mut(), ptr::null(), ptr::null_mut()), STATUS_INVALID_PARAMETER_4);
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || accept_call(listener, ptr::null_mut(), ptr::null(), &mut socket));
    assert_eq!(st, STATUS_INVALID_LEVEL);

    let (_, mut req) = accept_request(100);
    // SAFETY: the values are the test.
    let async_call = |l, r| unsafe { SafeWskAcceptAsync(l, ptr::null_mut(), ptr::null(), r) };
    assert_eq!(async_call(ptr::null_mut(), &mut *req), STATUS_INVALID_PARAMETER_1);
    assert_eq!(async_call(listener, ptr::null_mut()), STATUS_INVALID_PARAMETER_4);
    req.Reserved = 1;
    assert_eq!(async_call(listener, &mut *req), STATUS_INVALID_PARAMETER_4);
    req.Reserved = 0;
    req.Callback = None;
    assert_eq!(async_call(listener, &mut *req), STATUS_INVALID_PARAMETER_4);
    // SAFETY: the values are the test.
    assert_eq!(unsafe { SafeWskCancelAccept(ptr::null_mut()) }, STATUS_INVALID_PARAMETER_1);
    assert_eq!(hostkernel::requests_in_flight(only_wsk_socket()), 0, "no accept reached the provider");
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// The asynchronous accept calls back once, at IRQL <= DISPATCH_LEVEL, with
/// a working socket and both addresses in the request.
#[test]
fn an_async_accept_calls_back_once_with_a_working_socket() {
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    let (ctx, mut req) = accept_request(SAFEWSK_NO_TIMEOUT);
    // Started at DISPATCH_LEVEL, as from a DPC.
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || accept_async(listener, &mut req));
    assert_eq!(st, STATUS_PENDING);
    let mut peer = TcpStream::connect(at).expect("connect");
    let calls = ctx.seen.wait(1, LONG);
    let (status, socket, irql, local, remote) = calls[0];
    assert_eq!(status, STATUS_SUCCESS);
    assert!(irql <= DISPATCH_LEVEL);
    assert_eq!(remote, Some(peer.local_addr().unwrap()));
    assert_eq!(local, Some(at));
    let socket = socket as *mut SAFEWSK_SOCKET;
    assert_eq!(send(socket, b"async"), (STATUS_SUCCESS, 5));
    let mut buf = [0u8; 5];
    peer.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"async");
    // SAFETY: the request finished; its storage is intact.
    assert_eq!(unsafe { SafeWskCancelAccept(&mut *req) }, STATUS_NOT_FOUND);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    thread::sleep(Duration::from_millis(20));
    assert_eq!(ctx.seen.calls.lock().unwrap().len(), 1, "exactly one callback");
    k.finish();
}

/// The asynchronous accept's deadline (timer DPC) and explicit cancel.
#[test]
fn an_async_accept_times_out_or_is_cancelled() {
    let k = Session::begin();
    let client = startup();
    let (listener, _) = listen(client, "127.0.0.1:0");
    let (ctx, mut req) = accept_request(100);
    let t0 = Instant::now();
    assert_eq!(accept_async(listener, &mut req), STATUS_PENDING);
    let calls = ctx.seen.wait(1, LONG);
    assert_eq!((calls[0].0, calls[0].1), (STATUS_IO_TIMEOUT, 0));
    assert!(calls[0].3.is_none() && calls[0].4.is_none(), "no address on failure");
    assert!(t0.elapsed() >= Duration::from_millis(100));

    let (ctx, mut req) = accept_request(SAFEWSK_NO_TIMEOUT);
    assert_eq!(accept_async(listener, &mut req), STATUS_PENDING);
    thread::sleep(Duration::from_millis(20));
    assert!(ctx.seen.calls.lock().unwrap().is_empty());
    // SAFETY: a pending request, intact.
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || unsafe { SafeWskCancelAccept(&mut *req) });
    assert_eq!(st, STATUS_SUCCESS);
    let calls = ctx.seen.wait(1, LONG);
    assert_eq!((calls[0].0, calls[0].1), (STATUS_CANCELLED, 0));
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Several asynchronous accepts pending on one listening socket: its close
/// does not wait for them and each calls back once with STATUS_CANCELLED.
#[test]
fn closing_the_listening_socket_cancels_every_pending_async_accept() {
    let k = Session::begin();
    let client = startup();
    let (listener, _) = listen(client, "127.0.0.1:0");
    let wsk = only_wsk_socket();
    let reqs: Vec<_> = (0..4).map(|_| accept_request(SAFEWSK_NO_TIMEOUT)).collect();
    let mut reqs = reqs;
    for (_, req) in reqs.iter_mut() {
        assert_eq!(accept_async(listener, req), STATUS_PENDING);
    }
    wait_until("four accepts pending", || hostkernel::requests_in_flight(wsk) == 4);
    assert_eq!(close(listener), STATUS_SUCCESS);
    for (ctx, _) in &reqs {
        let calls = ctx.seen.wait(1, LONG);
        assert_eq!(calls.len(), 1);
        assert_eq!((calls[0].0, calls[0].1), (STATUS_CANCELLED, 0));
    }
    cleanup(client);
    k.finish();
}

/// SafeWskCleanup with an asynchronous accept pending (no deadline) and a
/// synchronous one waiting on another thread: cleanup closes the listening
/// socket first, both end with STATUS_CANCELLED, the callback has returned
/// before cleanup does, and nothing is left open.
#[test]
fn cleanup_closes_the_listening_socket_and_waits_for_its_accepts() {
    let k = Session::begin();
    let client = startup();
    let (listener, _) = listen(client, "127.0.0.1:0");
    let wsk = only_wsk_socket();
    let (ctx, mut req) = accept_request(SAFEWSK_NO_TIMEOUT);
    assert_eq!(accept_async(listener, &mut req), STATUS_PENDING);
    let handle = listener as usize;
    let waiter = thread::spawn(move || accept(handle as *mut SAFEWSK_SOCKET, SAFEWSK_NO_TIMEOUT).status);
    wait_until("both accepts pending", || hostkernel::requests_in_flight(wsk) == 2);
    cleanup(client);
    let calls = ctx.seen.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "the callback returned before SafeWskCleanup did");
    assert_eq!(calls[0].0, STATUS_CANCELLED);
    assert_eq!(join_within("the synchronous accept", waiter), STATUS_CANCELLED);
    assert!(hostkernel::wsk::open_sockets().is_empty());
    k.finish();
}

/// A server that re-arms its accept from the callback (the usual pattern):
/// each connection accepted once, the chain ends with STATUS_CANCELLED (or
/// _1 for a re-arm refused) when the listening socket closes.
#[test]
fn a_callback_rearms_the_accept() {
    struct Server {
        listener: usize,
        req: std::sync::Mutex<Box<SAFEWSK_ACCEPT_REQUEST>>,
        accepted: std::sync::Mutex<Vec<usize>>,
        ends: std::sync::Mutex<Vec<NTSTATUS>>,
        cv: std::sync::Condvar,
    }
    unsafe extern "C" fn on(ctx: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
        // SAFETY: the boxed Server the test keeps alive.
        let s = unsafe { &*(ctx as *const Server) };
        if status == STATUS_SUCCESS {
            s.accepted.lock().unwrap().push(socket as usize);
            // The request is ours again once we are called: re-arm it. The
            // lock is not held across the call: with a connection already
            // waiting the next callback comes inside it, on this thread (a
            // lock held here deadlocked this test in 1 of 6 runs).
            let r: *mut SAFEWSK_ACCEPT_REQUEST = {
                let mut g = s.req.lock().unwrap();
                &mut **g
            };
            // SAFETY: the request's storage, boxed and intact; the next
            // callback comes after this one returns or inside this call.
            let st = unsafe { SafeWskAcceptAsync(s.listener as *mut _, ptr::null_mut(), ptr::null(), r) };
            if st != STATUS_PENDING {
                s.ends.lock().unwrap().push(st);
            }
        } else {
            s.ends.lock().unwrap().push(status);
        }
        s.cv.notify_all();
    }
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    let server = Box::new(Server {
        listener: listener as usize,
        req: std::sync::Mutex::new(Box::new(SAFEWSK_ACCEPT_REQUEST {
            Callback: Some(on),
            CallbackContext: ptr::null_mut(),
            TimeoutMs: SAFEWSK_NO_TIMEOUT,
            Reserved: 0,
            LocalAddress: SAFEWSK_ADDRESS::default(),
            RemoteAddress: SAFEWSK_ADDRESS::default(),
            Private: [0; 32],
        })),
        accepted: Default::default(),
        ends: Default::default(),
        cv: Default::default(),
    });
    let r: *mut SAFEWSK_ACCEPT_REQUEST = {
        let mut g = server.req.lock().unwrap();
        g.CallbackContext = &*server as *const Server as PVOID;
        &mut **g
    };
    // SAFETY: the request lives in `server`, kept alive below.
    assert_eq!(unsafe { SafeWskAcceptAsync(listener, ptr::null_mut(), ptr::null(), r) }, STATUS_PENDING);
    let peers: Vec<TcpStream> = (0..5).map(|_| TcpStream::connect(at).expect("connect")).collect();
    wait_until("five connections accepted", || server.accepted.lock().unwrap().len() == 5);
    assert_eq!(close(listener), STATUS_SUCCESS);
    wait_until("the chain ended", || !server.ends.lock().unwrap().is_empty());
    assert_eq!(server.ends.lock().unwrap()[0], STATUS_CANCELLED);
    for s in server.accepted.lock().unwrap().drain(..) {
        assert_eq!(close(s as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    }
    drop(peers);
    cleanup(client);
    k.finish();
}

/// The provider's ways of misbehaving: cancellation ignored (the accept
/// waits for a connection past its deadline, and hands it out: never lost),
/// completed inside IoCancelIrp, a failure returned without completing the
/// IRP, a failure completed, an accept that never completes until
/// cancelled. Nothing leaks in any of them.
#[test]
fn a_misbehaving_provider_never_loses_a_connection_or_a_slot() {
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    hostkernel::set_call_fault(WskCall::Accept, 4, CallFault::Fail(STATUS_FILE_FORCED_CLOSED));
    hostkernel::set_call_fault(WskCall::Accept, 5, CallFault::Fail(STATUS_FILE_FORCED_CLOSED));
    hostkernel::set_call_fault(WskCall::Accept, 6, CallFault::Never);

    // Cancellation ignored: the deadline passes, the IRP stays pending until
    // a connection arrives; the socket is handed out.
    hostkernel::set_cancel_behaviour(CancelBehaviour::Ignored);
    let connector = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        TcpStream::connect(at).expect("connect")
    });
    let a = accept(listener, 20);
    let _peer = connector.join().unwrap();
    assert_eq!(a.status, STATUS_SUCCESS, "completed successfully after the cancel: handed out");
    assert_eq!(close(a.socket), STATUS_SUCCESS);

    // Completed inline by the cancel routine.
    hostkernel::set_cancel_behaviour(CancelBehaviour::Inline);
    assert_eq!(accept(listener, 20).status, STATUS_IO_TIMEOUT);
    let (ctx, mut req) = accept_request(20);
    assert_eq!(accept_async(listener, &mut req), STATUS_PENDING);
    assert_eq!(ctx.seen.wait(1, LONG)[0].0, STATUS_IO_TIMEOUT);
    hostkernel::set_cancel_behaviour(CancelBehaviour::Deferred);

    // A failure completed with the IRP (the 4th and 5th WskAccept), one
    // returned without taking it (not counted: refused before), and one
    // that never completes until cancelled (the 6th).
    assert_eq!(accept(listener, 1000).status, STATUS_FILE_FORCED_CLOSED);
    let (ctx, mut req) = accept_request(1000);
    assert_eq!(accept_async(listener, &mut req), STATUS_PENDING);
    assert_eq!(ctx.seen.wait(1, LONG)[0].0, STATUS_FILE_FORCED_CLOSED);
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    assert_eq!(accept(listener, 1000).status, STATUS_NOT_IMPLEMENTED);
    let (ctx, mut req) = accept_request(1000);
    assert_eq!(accept_async(listener, &mut req), STATUS_PENDING);
    assert_eq!(ctx.seen.wait(1, LONG)[0].0, STATUS_NOT_IMPLEMENTED);
    hostkernel::set_fail_without_completing(None);
    assert_eq!(accept(listener, 50).status, STATUS_IO_TIMEOUT);
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
