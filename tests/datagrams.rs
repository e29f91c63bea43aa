//! SafeWskDatagramSocket, SafeWskSendTo and SafeWskReceiveFrom on the host
//! kernel (issue 20, item 2): UDP over real Linux sockets, both addresses,
//! truncation, deadlines, the close of a socket with a receive pending,
//! SO_BROADCAST, parameters by position, the provider's misbehaviour, and
//! the allocations of a steady exchange.

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

use common::servers::*;
use common::*;
use hostkernel::{CallFault, CancelBehaviour, WskCall};
use safewsk::nt::*;
use safewsk::*;

fn exchange(bind: &str) {
    let k = Session::begin();
    let client = startup();
    let (a, a_at) = datagram(client, bind);
    let (b, b_at) = datagram(client, bind);
    assert_ne!(a_at.port(), 0);
    assert_eq!(send_to(a, b"ping over udp", b_at, 2000), (STATUS_SUCCESS, 13));
    let mut buf = [0u8; 64];
    let (st, n, from) = receive_from(b, &mut buf, 2000);
    assert_eq!((st, n), (STATUS_SUCCESS, 13));
    assert_eq!(&buf[..13], b"ping over udp");
    assert_eq!(from, Some(a_at), "the sender's address");
    assert_eq!(send_to(b, b"pong", from.unwrap(), 2000), (STATUS_SUCCESS, 4));
    let (st, n, from) = receive_from(a, &mut buf, 2000);
    assert_eq!((st, n, from), (STATUS_SUCCESS, 4, Some(b_at)));
    // A plain Linux UDP socket on the other side.
    let peer = UdpSocket::bind(if a_at.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" }).unwrap();
    let peer_at = peer.local_addr().unwrap();
    assert_eq!(send_to(a, b"to linux", peer_at, 2000), (STATUS_SUCCESS, 8));
    let (n, from) = peer.recv_from(&mut buf).unwrap();
    assert_eq!((&buf[..n], from), (&b"to linux"[..], a_at));
    peer.send_to(b"from linux", a_at).unwrap();
    let (st, n, from) = receive_from(a, &mut buf, 2000);
    assert_eq!((st, n, from), (STATUS_SUCCESS, 10, Some(peer_at)));
    assert_eq!(close(a), STATUS_SUCCESS);
    assert_eq!(close(b), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn datagrams_go_both_ways_with_their_addresses() {
    exchange("127.0.0.1:0");
}

#[test]
fn ipv6_datagrams_go_both_ways() {
    if !ipv6_loopback_available() {
        eprintln!("no IPv6 loopback: skipped");
        return;
    }
    exchange("[::1]:0");
}

/// A datagram larger than the buffer: the bytes that fit, the sender, and
/// STATUS_BUFFER_OVERFLOW; the next datagram is whole.
#[test]
fn a_truncated_datagram_is_buffer_overflow() {
    let k = Session::begin();
    let client = startup();
    let (s, at) = datagram(client, "127.0.0.1:0");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    peer.send_to(&[7u8; 100], at).unwrap();
    peer.send_to(b"whole", at).unwrap();
    let mut small = [0u8; 10];
    let (st, n, from) = receive_from(s, &mut small, 2000);
    assert_eq!((st, n), (STATUS_BUFFER_OVERFLOW, 10));
    assert_eq!(small, [7u8; 10]);
    assert_eq!(from, Some(peer.local_addr().unwrap()), "the sender also on truncation");
    let mut buf = [0u8; 64];
    let (st, n, _) = receive_from(s, &mut buf, 2000);
    assert_eq!((st, &buf[..n as usize]), (STATUS_SUCCESS, &b"whole"[..]));
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Deadlines, and the close of a socket whose receive waits without one.
#[test]
fn a_receive_times_out_or_ends_with_the_close() {
    let k = Session::begin();
    let client = startup();
    let (s, _) = datagram(client, "127.0.0.1:0");
    let mut buf = [0u8; 16];
    let t0 = Instant::now();
    let (st, n, from) = receive_from(s, &mut buf, 120);
    assert_eq!((st, n, from), (STATUS_IO_TIMEOUT, 0, None));
    assert!(t0.elapsed() >= Duration::from_millis(120));
    assert_eq!(receive_from(s, &mut buf, 0).0, STATUS_IO_TIMEOUT);
    let wsk = only_wsk_socket();
    let handle = s as usize;
    let waiter = thread::spawn(move || {
        let mut buf = [0u8; 16];
        receive_from(handle as *mut SAFEWSK_SOCKET, &mut buf, SAFEWSK_NO_TIMEOUT).0
    });
    wait_until("the receive pending", || hostkernel::requests_in_flight(wsk) == 1);
    assert_eq!(close(s), STATUS_SUCCESS);
    assert_eq!(join_within("the receive", waiter), STATUS_CANCELLED);
    cleanup(client);
    k.finish();
}

/// SO_BROADCAST through SafeWskControlSocket (datagram sockets only), read
/// back from the Linux socket; a broadcast without it is refused by the
/// stack (STATUS_ACCESS_DENIED).
#[test]
fn so_broadcast_is_a_datagram_socket_option() {
    let k = Session::begin();
    let client = startup();
    let (s, _) = datagram(client, "0.0.0.0:0");
    let control = |request, input: Option<u32>| {
        let mut out: u32 = 99;
        let inp = input.unwrap_or(0);
        // SAFETY: valid buffers of the documented sizes for the call.
        let st = unsafe {
            SafeWskControlSocket(
                s,
                request,
                SO_BROADCAST,
                SOL_SOCKET,
                if input.is_some() { 4 } else { 0 },
                if input.is_some() { (&inp as *const u32).cast() } else { ptr::null() },
                if input.is_some() { 0 } else { 4 },
                if input.is_some() { ptr::null_mut() } else { (&mut out as *mut u32).cast() },
                ptr::null_mut(),
                2000,
            )
        };
        (st, out)
    };
    assert_eq!(control(WskGetOption, None), (STATUS_SUCCESS, 0));
    let broadcast: SocketAddr = "255.255.255.255:9".parse().unwrap();
    assert_eq!(send_to(s, b"x", broadcast, 2000).0, STATUS_ACCESS_DENIED, "no SO_BROADCAST");
    assert_eq!(control(WskSetOption, Some(1)).0, STATUS_SUCCESS);
    assert_eq!(control(WskGetOption, None), (STATUS_SUCCESS, 1));
    let fd = hostkernel::socket_fd(only_wsk_socket()).unwrap();
    let mut v: i32 = 0;
    let mut len = 4u32;
    // SAFETY: a writable int and its size.
    unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, libc::SO_BROADCAST, (&mut v as *mut i32).cast(), &mut len) };
    assert_eq!(v, 1, "on the Linux socket");
    // TCP_NODELAY is not a datagram socket's: _3.
    let mut out: u32 = 0;
    // SAFETY: valid buffers for the call.
    let st = unsafe {
        SafeWskControlSocket(
            s,
            WskGetOption,
            TCP_NODELAY,
            IPPROTO_TCP,
            0,
            ptr::null(),
            4,
            (&mut out as *mut u32).cast(),
            ptr::null_mut(),
            2000,
        )
    };
    assert_eq!(st, STATUS_INVALID_PARAMETER_3);
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Each bad parameter is its own STATUS_INVALID_PARAMETER_n, before the
/// provider is called; then the IRQL.
#[test]
fn parameters_are_checked_by_position() {
    let k = Session::begin();
    let client = startup();
    let local = Addr::parse("127.0.0.1:0");
    let mut socket = ptr::null_mut();
    let make = |c, l: *const SOCKADDR, o: *const SAFEWSK_SOCKET_OPTIONS, s: *mut *mut SAFEWSK_SOCKET| {
        // SAFETY: every pointer is NULL or valid; the values are the test.
        unsafe { SafeWskDatagramSocket(c, l, o, s, 1000) }
    };
    assert_eq!(make(ptr::null_mut(), local.ptr(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_1);
    assert_eq!(make(client, ptr::null(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_2);
    let broadcast = Addr::parse("255.255.255.255:0");
    assert_eq!(make(client, broadcast.ptr(), ptr::null(), &mut socket), STATUS_INVALID_PARAMETER_2);
    let keepalive = SAFEWSK_SOCKET_OPTIONS { Mask: SAFEWSK_OPTION_KEEPALIVE, KeepAlive: 1, ..no_options() };
    assert_eq!(make(client, local.ptr(), &keepalive, &mut socket), STATUS_INVALID_PARAMETER_3, "a TCP option");
    assert_eq!(make(client, local.ptr(), ptr::null(), ptr::null_mut()), STATUS_INVALID_PARAMETER_4);
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || make(client, local.ptr(), ptr::null(), &mut socket));
    assert_eq!(st, STATUS_INVALID_LEVEL);
    assert!(hostkernel::wsk::open_sockets().is_empty(), "nothing reached the provider");

    let (s, at) = datagram(client, "127.0.0.1:0");
    let to = Addr::from(at);
    let buf = [0u8; 8];
    let mut n = 0;
    let send = |s, b: *const u8, len, flags, to: *const SOCKADDR| {
        let mut n = 0;
        // SAFETY: every pointer is NULL or valid; the values are the test.
        unsafe { SafeWskSendTo(s, b.cast(), len, flags, to, 1000, &mut n) }
    };
    assert_eq!(send(ptr::null_mut(), buf.as_ptr(), 8, 0, to.ptr()), STATUS_INVALID_PARAMETER_1);
    assert_eq!(send(s, ptr::null(), 8, 0, to.ptr()), STATUS_INVALID_PARAMETER_2);
    assert_eq!(send(s, buf.as_ptr(), 0, 0, to.ptr()), STATUS_INVALID_PARAMETER_3);
    assert_eq!(send(s, buf.as_ptr(), 8, WSK_FLAG_NODELAY, to.ptr()), STATUS_INVALID_PARAMETER_4);
    assert_eq!(send(s, buf.as_ptr(), 8, 0, ptr::null()), STATUS_INVALID_PARAMETER_5);
    let v6 = Addr::parse("[::1]:9");
    assert_eq!(send(s, buf.as_ptr(), 8, 0, v6.ptr()), STATUS_INVALID_PARAMETER_5, "another family");
    let port0 = Addr::parse("127.0.0.1:0");
    assert_eq!(send(s, buf.as_ptr(), 8, 0, port0.ptr()), STATUS_INVALID_PARAMETER_5, "port 0");
    let unspecified = Addr::parse("0.0.0.0:9");
    assert_eq!(send(s, buf.as_ptr(), 8, 0, unspecified.ptr()), STATUS_INVALID_PARAMETER_5, "unspecified");
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || send(s, buf.as_ptr(), 8, 0, to.ptr()));
    assert_eq!(st, STATUS_INVALID_LEVEL);

    let mut rbuf = [0u8; 8];
    let recv = |s, b: *mut u8, len, flags, n: *mut u32| {
        // SAFETY: every pointer is NULL or valid; the values are the test.
        unsafe { SafeWskReceiveFrom(s, b.cast(), len, flags, ptr::null_mut(), 1000, n) }
    };
    assert_eq!(recv(ptr::null_mut(), rbuf.as_mut_ptr(), 8, 0, &mut n), STATUS_INVALID_PARAMETER_1);
    assert_eq!(recv(s, ptr::null_mut(), 8, 0, &mut n), STATUS_INVALID_PARAMETER_2);
    assert_eq!(recv(s, rbuf.as_mut_ptr(), 0, 0, &mut n), STATUS_INVALID_PARAMETER_3);
    assert_eq!(recv(s, rbuf.as_mut_ptr(), 8, WSK_FLAG_WAITALL, &mut n), STATUS_INVALID_PARAMETER_4);
    assert_eq!(recv(s, rbuf.as_mut_ptr(), 8, 0, ptr::null_mut()), STATUS_INVALID_PARAMETER_7);
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || recv(s, rbuf.as_mut_ptr(), 8, 0, &mut n));
    assert_eq!(st, STATUS_INVALID_LEVEL);
    assert_eq!(hostkernel::requests_in_flight(only_wsk_socket()), 0, "nothing reached the provider");
    // A datagram socket is refused by the connection socket's calls.
    assert_eq!(send_with_timeout(s, b"x", 100).0, STATUS_INVALID_PARAMETER_1);
    assert_eq!(accept(s, 100).status, STATUS_INVALID_PARAMETER_1);
    assert_eq!(close(s), STATUS_SUCCESS);
    assert_eq!(send(s, buf.as_ptr(), 8, 0, to.ptr()), STATUS_INVALID_PARAMETER_1, "closed");
    cleanup(client);
    k.finish();
}

/// The provider's misbehaviour: a failure completed, one returned without
/// completing, a call that never completes until cancelled, cancellation
/// ignored (the receive returns the datagram that came after its
/// deadline). Nothing leaks.
#[test]
fn a_misbehaving_provider_is_survived() {
    let k = Session::begin();
    let client = startup();
    let (s, at) = datagram(client, "127.0.0.1:0");
    let peer = UdpSocket::bind("127.0.0.1:0").unwrap();
    let peer_at = peer.local_addr().unwrap();
    hostkernel::set_call_fault(WskCall::SendTo, 1, CallFault::Fail(STATUS_HOST_UNREACHABLE));
    hostkernel::set_call_fault(WskCall::ReceiveFrom, 1, CallFault::Fail(STATUS_CONNECTION_RESET));
    hostkernel::set_call_fault(WskCall::SendTo, 2, CallFault::Never);
    hostkernel::set_call_fault(WskCall::ReceiveFrom, 2, CallFault::Never);
    let mut buf = [0u8; 16];
    assert_eq!(send_to(s, b"a", peer_at, 1000).0, STATUS_HOST_UNREACHABLE);
    assert_eq!(receive_from(s, &mut buf, 1000).0, STATUS_CONNECTION_RESET);
    assert_eq!(send_to(s, b"a", peer_at, 50).0, STATUS_IO_TIMEOUT);
    assert_eq!(receive_from(s, &mut buf, 50).0, STATUS_IO_TIMEOUT);
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    assert_eq!(send_to(s, b"a", peer_at, 1000).0, STATUS_NOT_IMPLEMENTED);
    assert_eq!(receive_from(s, &mut buf, 1000).0, STATUS_NOT_IMPLEMENTED);
    hostkernel::set_fail_without_completing(None);
    hostkernel::set_cancel_behaviour(CancelBehaviour::Ignored);
    let sender = thread::spawn(move || {
        thread::sleep(Duration::from_millis(150));
        peer.send_to(b"late", at).unwrap();
        peer
    });
    let (st, n, from) = receive_from(s, &mut buf, 20);
    let _peer = sender.join().unwrap();
    assert_eq!((st, n, from), (STATUS_SUCCESS, 4, Some(peer_at)), "completed after the ignored cancel");
    hostkernel::set_cancel_behaviour(CancelBehaviour::Deferred);
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// A steady exchange allocates nothing of safewsk's own: each call reuses
/// the socket's IRP and its MDL lives on the stack; what is left is the I/O
/// manager's completion context per call.
#[test]
fn a_steady_exchange_allocates_only_completion_contexts() {
    let k = Session::begin();
    let client = startup();
    let (a, _) = datagram(client, "127.0.0.1:0");
    let (b, b_at) = datagram(client, "127.0.0.1:0");
    let mut buf = [0u8; 64];
    let before = hostkernel::allocations();
    for _ in 0..50 {
        assert_eq!(send_to(a, &[1u8; 64], b_at, 2000), (STATUS_SUCCESS, 64));
        assert_eq!(receive_from(b, &mut buf, 2000).0, STATUS_SUCCESS);
    }
    let after = hostkernel::allocations();
    assert_eq!(after.irps.0 - before.irps.0, 0, "IRPs");
    assert_eq!(after.pool.0 - before.pool.0, 0, "pool");
    assert_eq!(after.mdls.0 - before.mdls.0, 0, "MDLs");
    assert_eq!(after.completion_contexts.0 - before.completion_contexts.0, 100, "one context per call");
    assert_eq!(close(a), STATUS_SUCCESS);
    assert_eq!(close(b), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
