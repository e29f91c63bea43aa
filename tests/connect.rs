//! End-to-end behaviour of the exported API against the host kernel and real
//! loopback sockets. Every test ends with `Session::finish`, which fails on
//! any leaked IRP, pool block, MDL, socket or registration and on any
//! contract violation.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::*;
use safewsk::nt::*;
use safewsk::*;

fn roundtrip(server: std::net::SocketAddr) {
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert!(!socket.is_null());
    assert_eq!(hostkernel::live().sockets, 1);

    let msg = b"GET /safewsk HTTP/1.0\r\n\r\n";
    assert_eq!(send(socket, msg), (STATUS_SUCCESS, msg.len() as u32));
    let mut buf = [0u8; 64];
    let (st, n) = receive(socket, &mut buf[..msg.len()], WSK_FLAG_WAITALL, 2000);
    assert_eq!((st, n), (STATUS_SUCCESS, msg.len() as u32));
    assert_eq!(&buf[..msg.len()], msg);

    // SAFETY: live client and socket.
    assert_eq!(unsafe { SafeWskDisconnect(socket, 0, 2000) }, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    assert_eq!(hostkernel::provider_connect_calls(), 1);
    k.finish();
}

#[test]
fn ipv4_connect_send_receive_close() {
    roundtrip(echo_server("127.0.0.1:0").expect("v4 loopback"));
}

#[test]
fn ipv6_connect_send_receive_close() {
    // A silent skip would let this test pass without testing anything: a
    // machine without [::1] must opt out explicitly.
    if !ipv6_loopback_available() {
        assert!(
            std::env::var_os("SAFEWSK_NO_IPV6").is_some(),
            "no IPv6 loopback ([::1]) here; set SAFEWSK_NO_IPV6=1 to skip this test knowingly"
        );
        eprintln!("SKIPPED (SAFEWSK_NO_IPV6 is set): no IPv6 loopback");
        return;
    }
    roundtrip(echo_server("[::1]:0").expect("v6 loopback"));
}

#[test]
fn synchronous_provider_completion_works_too() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Sync);
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(send(socket, b"ping"), (STATUS_SUCCESS, 4));
    let mut buf = [0u8; 4];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 4));
    assert_eq!(&buf, b"ping");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn refused_port_gives_connection_refused_and_leaks_nothing() {
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, closed_port(), 2000);
    assert_eq!(st, STATUS_CONNECTION_REFUSED);
    assert!(socket.is_null());
    cleanup(client);
    k.finish();
}

/// The IRP of a connect that timed out is not freed but goes to the socket
/// table's cache for the next connect (issue 17): every live IRP is a cached
/// one, and the last cleanup frees it.
#[test]
fn provider_that_never_completes_times_out_and_the_irp_is_cancelled_and_recycled() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let client = startup();
    let t0 = Instant::now();
    let (st, socket) = connect(client, "127.0.0.1:9".parse().expect("addr"), 250);
    let took = t0.elapsed();
    eprintln!("never-completing provider, 250 ms timeout: returned after {took:?}");
    assert_eq!(st, STATUS_IO_TIMEOUT);
    assert!(socket.is_null());
    assert!(took >= Duration::from_millis(250), "returned before the deadline: {took:?}");
    assert!(took < Duration::from_millis(1500), "cancellation took too long: {took:?}");
    assert_eq!(hostkernel::live().sockets, 0);
    assert_eq!(safewsk::table_usage(), (1, 1), "the cancelled IRP went back to the table's cache");
    assert_eq!(hostkernel::live().irps, safewsk::table_usage().1, "every live IRP is a cached one");
    cleanup(client);
    assert_eq!(safewsk::table_usage(), (0, 0), "the last cleanup frees the table");
    assert_eq!(hostkernel::live().irps, 0, "the cached IRP was freed by the last cleanup");
    k.finish();
}

/// A listener whose accept queue is full drops further SYNs, so a connect to
/// it never completes: the "server that never accepts".
#[test]
fn server_that_never_accepts_times_out() {
    // SAFETY: socket() takes no pointers; the descriptor is this test's.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0) };
    // SAFETY: sockaddr_in is plain C data; all zeroes is valid.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    // SAFETY: `sin` is an initialized sockaddr_in of 16 bytes.
    assert_eq!(unsafe { libc::bind(fd, (&sin as *const libc::sockaddr_in).cast(), 16) }, 0);
    // SAFETY: listen() takes no pointers; `fd` is our bound socket.
    assert_eq!(unsafe { libc::listen(fd, 0) }, 0);
    let mut len = 16u32;
    // SAFETY: `sin` is a writable 16-byte sockaddr_in and `len` says so.
    unsafe { libc::getsockname(fd, (&mut sin as *mut libc::sockaddr_in).cast(), &mut len) };
    let (lfd, port) = (fd, u16::from_be(sin.sin_port));
    let target: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    // Fill the accept queue until a connect no longer completes.
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match std::net::TcpStream::connect_timeout(&target, Duration::from_millis(200)) {
            Ok(s) => fillers.push(s),
            Err(_) => break,
        }
    }
    let k = Session::begin();
    let client = startup();
    let t0 = Instant::now();
    let (st, socket) = connect(client, target, 300);
    let took = t0.elapsed();
    eprintln!("full accept queue ({} queued), 300 ms timeout: returned after {took:?}", fillers.len());
    assert_eq!(st, STATUS_IO_TIMEOUT, "after {} queued connections", fillers.len());
    assert!(socket.is_null());
    assert!(took >= Duration::from_millis(300) && took < Duration::from_millis(2000), "{took:?}");
    cleanup(client);
    k.finish();
    drop(fillers);
    // SAFETY: our listening socket.
    unsafe { libc::close(lfd) };
}

#[test]
fn late_provider_completion_within_the_deadline_succeeds() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(100)));
    let client = startup();
    let (st, socket) = connect(client, server, 3000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Completion and the deadline race: whichever wins, a socket that was
/// connected is returned (not leaked) and the IRP is freed once.
#[test]
fn completion_racing_the_deadline_never_leaks_the_socket() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (mut ok, mut timed_out) = (0, 0);
    for i in 0..40u32 {
        hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(u64::from(i % 4) + 1)));
        let (st, socket) = connect(client, server, 2 + i % 3);
        match st {
            STATUS_SUCCESS => {
                ok += 1;
                assert_eq!(close(socket), STATUS_SUCCESS);
            }
            STATUS_IO_TIMEOUT => {
                timed_out += 1;
                assert!(socket.is_null());
            }
            other => panic!("unexpected status {other:#x}"),
        }
    }
    eprintln!("race: {ok} connected, {timed_out} timed out");
    assert_eq!(ok + timed_out, 40);
    cleanup(client);
    k.finish();
}

#[test]
fn connect_at_dispatch_level_is_refused_without_calling_the_provider() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, socket) = hostkernel::with_irql(DISPATCH_LEVEL, || connect(client, server, 1000));
    assert_eq!(st, STATUS_INVALID_LEVEL);
    assert!(socket.is_null());
    assert_eq!(hostkernel::provider_connect_calls(), 0);
    // APC_LEVEL may wait, so it works.
    let (st, socket) = hostkernel::with_irql(APC_LEVEL, || connect(client, server, 1000));
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn irp_allocation_failure_is_reported_and_the_provider_is_not_called() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    k.fail_nth(Site::Irp, 1);
    let (st, socket) = connect(client, server, 1000);
    assert_eq!(st, STATUS_INSUFFICIENT_RESOURCES);
    assert!(socket.is_null());
    assert_eq!(hostkernel::provider_connect_calls(), 0);
    cleanup(client);
    k.finish();
}

#[test]
fn receive_times_out_when_the_peer_sends_nothing() {
    let (server, accepted) = silent_server();
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let _peer = accepted.join().expect("accept");
    let mut buf = [0u8; 16];
    let t0 = Instant::now();
    assert_eq!(receive(socket, &mut buf, 0, 150), (STATUS_IO_TIMEOUT, 0));
    assert!(t0.elapsed() >= Duration::from_millis(150));
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn receive_reports_a_graceful_close_as_zero_bytes() {
    let (server, accepted) = silent_server();
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut peer = accepted.join().expect("accept");
    peer[0].write_all(b"bye").expect("write");
    drop(peer);
    let mut buf = [0u8; 16];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 3));
    assert_eq!(&buf[..3], b"bye");
    assert_eq!(receive(socket, &mut buf, 0, 2000), (STATUS_SUCCESS, 0));
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Issue 17: SafeWskCleanup no longer refuses while a socket is open
/// (before: STATUS_INVALID_DEVICE_STATE, and nothing changed). It closes the
/// socket (reported), so the peer sees the connection end, the host socket is
/// gone, and the handle is refused afterwards like any stale handle.
#[test]
fn cleanup_with_a_socket_open_closes_it_and_the_handle_is_then_refused() {
    let (server, accepted) = silent_server();
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut peer = accepted.join().expect("accept").remove(0);
    let wsk_sockets = hostkernel::wsk::open_sockets();
    assert_eq!(wsk_sockets.len(), 1);
    assert!(hostkernel::socket_fd(wsk_sockets[0] as *mut _).is_some(), "the host socket is open");
    let _ = hostkernel::take_dbgprint_log();

    // SAFETY: a live client.
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_SUCCESS, "cleanup never refuses because of open sockets");
    let live = hostkernel::live();
    assert_eq!((live.sockets, live.registrations), (0, 0), "the socket is closed and the client deregistered");
    assert!(hostkernel::wsk::open_sockets().is_empty());
    assert_eq!(hostkernel::socket_fd(wsk_sockets[0] as *mut _), None, "the provider closed the WSK socket");
    let slot = socket as usize & 0xFFFF;
    let log = hostkernel::take_dbgprint_log();
    assert!(
        log.iter().any(|l| l.contains(&format!("SafeWskCleanup: closing socket (slot {slot}) the driver left open"))),
        "the close is reported: {log:?}"
    );
    // The peer sees the end of the connection (an abortive close: a reset,
    // or an end of stream), not a read timeout.
    peer.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    let mut b = [0u8; 1];
    match std::io::Read::read(&mut peer, &mut b) {
        Ok(0) => {}
        Err(e) => assert!(
            !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
            "the host socket was not closed: {e}"
        ),
        Ok(n) => panic!("{n} unexpected byte(s) from a socket that was closed"),
    }
    // The handle was consumed by the cleanup.
    assert_eq!(send(socket, b"x").0, STATUS_INVALID_PARAMETER_1, "send with the handle after cleanup");
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "close with the handle after cleanup");
    // SAFETY: any handle value is safe; the client's is stale now.
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_INVALID_PARAMETER_1, "a second cleanup");
    // SAFETY: NULL is always a valid argument.
    assert_eq!(unsafe { SafeWskCleanup(std::ptr::null_mut()) }, STATUS_INVALID_PARAMETER_1);
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    k.finish();
}

/// A second close of the same handle is refused without reaching the
/// provider (whose WskCloseSocket records a violation for a socket it no
/// longer knows), and the handle is consumed by the first.
#[test]
fn close_twice_is_caught_and_the_provider_closes_once() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(hostkernel::live().sockets, 1);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(hostkernel::live().sockets, 0);
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "second close must not reach the provider");
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    cleanup(client);
    k.finish();
}

#[test]
fn startup_waits_for_a_provider_that_becomes_ready() {
    let k = Session::begin();
    hostkernel::provider_ready_after(Duration::from_millis(80));
    let mut client = std::ptr::null_mut();
    // SAFETY: valid out pointer at PASSIVE_LEVEL.
    assert_eq!(unsafe { SafeWskStartup(dev(), 0, &mut client) }, STATUS_DEVICE_NOT_READY);
    assert!(client.is_null());
    assert_eq!(hostkernel::live().registrations, 0, "a failed startup must deregister");
    let t0 = Instant::now();
    // SAFETY: as above.
    assert_eq!(unsafe { SafeWskStartup(dev(), 2000, &mut client) }, STATUS_SUCCESS);
    assert!(t0.elapsed() < Duration::from_millis(1500));
    cleanup(client);
    k.finish();
}

#[test]
fn startup_gives_up_after_its_wait_when_the_provider_never_comes() {
    let k = Session::begin();
    hostkernel::set_provider_ready(false);
    let mut client = std::ptr::null_mut();
    let t0 = Instant::now();
    // SAFETY: valid out pointer at PASSIVE_LEVEL.
    assert_eq!(unsafe { SafeWskStartup(dev(), 120, &mut client) }, STATUS_DEVICE_NOT_READY);
    let took = t0.elapsed();
    assert!(took >= Duration::from_millis(120) && took < Duration::from_millis(1000), "{took:?}");
    assert!(client.is_null());
    k.finish();
}

#[test]
fn startup_checks_irql_out_pointer_and_pool_failure() {
    let k = Session::begin();
    let mut client = std::ptr::null_mut();
    // SAFETY: valid out pointer.
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || unsafe { SafeWskStartup(dev(), 0, &mut client) });
    assert_eq!(st, STATUS_INVALID_LEVEL);
    // SAFETY: NULL out pointer is rejected before use.
    assert_eq!(unsafe { SafeWskStartup(dev(), 0, std::ptr::null_mut()) }, STATUS_INVALID_PARAMETER_3);
    // SAFETY: a NULL device object, and a pointer to something that is not one.
    assert_eq!(unsafe { SafeWskStartup(std::ptr::null_mut(), 0, &mut client) }, STATUS_INVALID_PARAMETER_1);
    let mut not_a_device = [0u64; 8];
    // SAFETY: a readable 64-byte buffer that is not a DEVICE_OBJECT: the
    // library must reject it (it checks Type first) without writing to it.
    assert_eq!(unsafe { SafeWskStartup(not_a_device.as_mut_ptr().cast(), 0, &mut client) }, STATUS_INVALID_PARAMETER_1);
    assert!(client.is_null());
    k.fail_nth(Site::Pool, 1);
    // SAFETY: valid out pointer.
    assert_eq!(unsafe { SafeWskStartup(dev(), 0, &mut client) }, STATUS_INSUFFICIENT_RESOURCES);
    assert!(client.is_null());
    k.finish();
}
