//! Issue 18, item 1: SafeWskCleanup never refuses because sockets are open.
//!
//! It closes every socket the driver left open (each reported through the
//! report callback and a debugger line a stock Windows shows), the sockets
//! the library owns (a half-made socket of SafeWskSocketConnectWithOptions
//! whose close the provider refused without completing the IRP; a socket
//! whose close could not be issued), waits for every call and IRP, and
//! leaves nothing behind. Every test ends with `Session::finish` (zero
//! leaks, no contract violation); every wait is bounded.

mod common;
mod issue18;

use std::io::{Read, Write};
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hostkernel::{CallFault, WskCall};
use issue18::*;
use safewsk::nt::*;
use safewsk::*;

const CLEANUP_BOUND: Duration = Duration::from_secs(10);

/// Three sockets left open: cleanup returns STATUS_SUCCESS, closes each in
/// the provider (the peer sees the connection end, the host socket is
/// gone), reports each (callback and visible DbgPrintEx line, same slot),
/// and the handles are refused afterwards.
#[test]
fn cleanup_closes_every_socket_left_open_reports_each_and_leaks_nothing() {
    let k = Session::begin();
    fresh_report_window();
    let reports = Reports::install();
    let client = startup();
    let server = Holder::new();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let (st, s) = connect(client, server.addr, 2000);
        assert_eq!(st, STATUS_SUCCESS);
        sockets.push(s);
    }
    assert_eq!(server.accepted(3), 3);
    let wsk_sockets = host_sockets();
    assert_eq!(wsk_sockets.len(), 3);
    assert_eq!(hostkernel::live().sockets, 3);

    let t0 = Instant::now();
    let st = cleanup_within(client, CLEANUP_BOUND);
    println!("SafeWskCleanup with 3 sockets left open: {st:#x} after {:?}", t0.elapsed());
    assert_eq!(st, STATUS_SUCCESS, "cleanup never refuses because sockets are open");

    // Closed in the provider: no host socket left, the descriptors closed
    // (the peers see the end of their connections).
    assert_eq!(hostkernel::live().sockets, 0);
    assert!(host_sockets().is_empty());
    for w in wsk_sockets {
        assert_eq!(hostkernel::socket_fd(w as *mut _), None, "WSK socket {w:#x} closed");
    }
    for mut peer in server.take() {
        assert_eq!(peer_sees_end(&mut peer), Ok(()), "the peer sees the connection end");
    }

    // Reported: the callback got one CLEANUP_CLOSING per socket, with its
    // slot, and the debugger shows one line per socket at the default mask.
    let closing = reports.of(SAFEWSK_REPORT_CLEANUP_CLOSING);
    assert_eq!(closing.len(), 3, "{closing:#?}");
    let mut slots: Vec<u32> = closing.iter().map(|r| r.value1).collect();
    slots.sort_unstable();
    slots.dedup();
    assert_eq!(slots.len(), 3, "three different slots: {closing:#?}");
    for r in &closing {
        assert_eq!((r.status, r.milliseconds, r.value2, r.what.as_deref(), r.object), (STATUS_SUCCESS, 0, 0, None, 0));
    }
    let lines = hostkernel::take_dbgprint_log();
    for slot in &slots {
        let want = format!("safewsk: SafeWskCleanup: closing socket (slot {slot}) the driver left open");
        assert!(lines.iter().any(|l| l.contains(&want)), "visible line {want:?} in {lines:#?}");
    }

    // The handles died with their client.
    for s in sockets {
        assert_eq!(send(s, b"x").0, STATUS_INVALID_PARAMETER_1);
        assert_eq!(close(s), STATUS_INVALID_PARAMETER_1);
    }
    drop(reports);
    k.finish();
}

/// A receive pending with SAFEWSK_NO_TIMEOUT on another thread returns
/// (STATUS_CANCELLED: WSK completes it when cleanup closes the socket), and
/// only then does cleanup return.
#[test]
fn a_receive_pending_without_deadline_returns_when_cleanup_closes_its_socket() {
    let k = Session::begin();
    let reports = Reports::install();
    let client = startup();
    let server = Holder::new();
    let (st, s) = connect(client, server.addr, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let h = SocketH::new(s);
    let receiver = thread::spawn(move || {
        let mut buf = [0u8; 16];
        let r = receive(h.get(), &mut buf, 0, SAFEWSK_NO_TIMEOUT);
        (r, Instant::now())
    });
    // The receive is pending in the provider (nothing is ever sent).
    thread::sleep(Duration::from_millis(200));
    assert!(!receiver.is_finished(), "the receive waits (no deadline)");
    let st = cleanup_within(client, CLEANUP_BOUND);
    let cleanup_returned = Instant::now();
    assert_eq!(st, STATUS_SUCCESS);
    let ((status, n), receive_returned) =
        bounded("the pending receive", Duration::from_secs(5), move || receiver.join().expect("receiver"));
    println!("receive returned {status:#x} ({n} bytes)");
    assert_eq!((status, n), (STATUS_CANCELLED, 0), "WSK completes the pending receive at the close");
    // The receiver's time is taken after the call has returned, so it may
    // trail cleanup's by that thread's own return and scheduling (it did
    // once in a full workspace run after the issue 20 merge): the order is
    // checked with room for that, far below the 5 s bound of the receive.
    assert!(
        receive_returned <= cleanup_returned + Duration::from_millis(250),
        "cleanup returns only after the receive has returned"
    );
    assert_eq!(reports.of(SAFEWSK_REPORT_CLEANUP_CLOSING).len(), 1);
    assert_eq!(hostkernel::live().sockets, 0);
    drop(server);
    drop(reports);
    k.finish();
}

/// The review's leak: SafeWskSocketConnectWithOptions' WskBind fails (the
/// local address is in use), and the provider refuses the half-made
/// socket's WskCloseSocket without completing the IRP. The socket becomes
/// the library's (reported: UNCONSUMED, ORPHAN with slot 0xFFFFFFFF), and
/// cleanup closes it, retrying while the provider still refuses (here the
/// first two of its attempts), then succeeds: nothing leaks.
#[test]
fn the_half_made_socket_whose_close_the_provider_refuses_is_closed_by_cleanup() {
    let k = Session::begin();
    let reports = Reports::install();
    let client = startup();
    let server = Holder::new();
    // The local address is taken by a listener: WskBind fails.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let local = Addr::from(taken.local_addr().expect("addr"));
    let remote = Addr::from(server.addr);
    // WskCloseSocket #1 (the half-made socket's), #2 and #3 (cleanup's first
    // attempts) are refused without completing; #4 is accepted.
    for nth in 1..=3 {
        hostkernel::set_call_fault(WskCall::CloseSocket, nth, CallFault::Refuse(STATUS_UNSUCCESSFUL));
    }
    let mut socket = ptr::null_mut();
    // SAFETY: valid addresses and out pointer for the call.
    let st = unsafe {
        SafeWskSocketConnectWithOptions(
            client,
            local.ptr(),
            remote.ptr(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null(),
            &mut socket,
            2000,
        )
    };
    assert_eq!(st, STATUS_ADDRESS_ALREADY_EXISTS, "WskBind's status (local address in use)");
    assert!(socket.is_null());
    assert_eq!(hostkernel::live().sockets, 1, "the half-made socket is still open in the provider");
    let unconsumed = reports.of(SAFEWSK_REPORT_UNCONSUMED);
    assert_eq!(unconsumed.len(), 1, "{unconsumed:#?}");
    assert_eq!(unconsumed[0].what.as_deref(), Some("WskCloseSocket (half-made)"));
    assert_eq!(unconsumed[0].status, STATUS_UNSUCCESSFUL);
    let orphan = reports.of(SAFEWSK_REPORT_ORPHAN);
    assert_eq!(orphan.len(), 1, "{orphan:#?}");
    assert_eq!((orphan[0].status, orphan[0].value1), (STATUS_UNSUCCESSFUL, u32::MAX));

    let st = cleanup_within(client, CLEANUP_BOUND);
    println!("SafeWskCleanup with an orphaned half-made socket: {st:#x}");
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(hostkernel::live().sockets, 0, "cleanup closed the orphan");
    let closes_refused = reports
        .of(SAFEWSK_REPORT_UNCONSUMED)
        .iter()
        .filter(|r| r.what.as_deref().is_some_and(|w| w.starts_with("WskCloseSocket")))
        .count();
    assert_eq!(closes_refused, 3, "cleanup retried until the provider accepted the close");
    assert!(reports.of(SAFEWSK_REPORT_CLEANUP_CLOSING).is_empty(), "not a socket the driver left open");
    drop(taken);
    drop(reports);
    k.finish();
}

/// A close that cannot be issued (the I/O manager's completion context
/// cannot be allocated) consumes the handle: STATUS_INSUFFICIENT_RESOURCES,
/// then STATUS_INVALID_PARAMETER_1 for every call with it; the socket stays
/// open as the library's (reported ORPHAN with its slot) and cleanup closes
/// it.
#[test]
fn a_close_that_cannot_be_issued_consumes_the_handle_and_cleanup_closes_the_socket() {
    let k = Session::begin();
    let reports = Reports::install();
    let client = startup();
    let server = Holder::new();
    let (st, s) = connect(client, server.addr, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    k.fail_nth(Site::CompletionContext, 1);
    assert_eq!(close(s), STATUS_INSUFFICIENT_RESOURCES);
    assert!(k.fault_hit(Site::CompletionContext));
    k.fail_nth(Site::CompletionContext, 0);
    assert_eq!(close(s), STATUS_INVALID_PARAMETER_1, "the handle was consumed");
    assert_eq!(send(s, b"x").0, STATUS_INVALID_PARAMETER_1);
    let mut buf = [0u8; 4];
    assert_eq!(receive(s, &mut buf, 0, 100).0, STATUS_INVALID_PARAMETER_1);
    assert_eq!(hostkernel::live().sockets, 1, "still open in the provider: the library's now");
    let orphan = reports.of(SAFEWSK_REPORT_ORPHAN);
    assert_eq!(orphan.len(), 1, "{orphan:#?}");
    assert_eq!(orphan[0].status, STATUS_INSUFFICIENT_RESOURCES);
    assert_ne!(orphan[0].value1, u32::MAX, "the slot of a published socket");

    assert_eq!(cleanup_within(client, CLEANUP_BOUND), STATUS_SUCCESS);
    assert_eq!(hostkernel::live().sockets, 0);
    for mut peer in server.take() {
        assert_eq!(peer_sees_end(&mut peer), Ok(()));
    }
    drop(reports);
    k.finish();
}

/// After cleanup the client handle is refused by every export with
/// STATUS_INVALID_PARAMETER_1 (a second cleanup too), also once a new client
/// has the same slot; the new client works.
#[test]
fn a_stale_client_handle_after_cleanup_is_refused() {
    let k = Session::begin();
    let old = startup();
    let server = echo_server("127.0.0.1:0").expect("echo server");
    let (st, s) = connect(old, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    cleanup(old);
    assert_eq!(close(s), STATUS_INVALID_PARAMETER_1, "its socket died with it");
    let check_stale = |client: *mut SAFEWSK_CLIENT| {
        // SAFETY: any client value is safe.
        assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_INVALID_PARAMETER_1, "a second cleanup");
        assert_eq!(connect(client, server, 2000).0, STATUS_INVALID_PARAMETER_1, "SafeWskSocketConnect");
        let remote = Addr::from(server);
        let mut socket = ptr::null_mut();
        // SAFETY: valid address and out pointer.
        assert_eq!(unsafe { SafeWskConnect(client, remote.ptr(), &mut socket, 2000) }, STATUS_INVALID_PARAMETER_1);
        let mut sd = [1u64, 0, 0, 0, 0];
        let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();
        // SAFETY: a readable descriptor and a writable out variable.
        let st = unsafe { SafeWskCacheSecurityDescriptor(client, sd.as_mut_ptr().cast(), &mut cached) };
        assert_eq!(st, STATUS_INVALID_PARAMETER_1, "SafeWskCacheSecurityDescriptor");
    };
    check_stale(old);
    let new = startup();
    assert_ne!(new, old, "a new handle (generation), even for the same slot");
    check_stale(old);
    let (st, s) = connect(new, server, 2000);
    assert_eq!(st, STATUS_SUCCESS, "the new client works");
    assert_eq!(send(s, b"ping"), (STATUS_SUCCESS, 4));
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(new);
    check_stale(new);
    k.finish();
}

/// Two clients share the driver's socket table: while the first is cleaned
/// up (its two sockets left open, closed by cleanup), the second keeps
/// exchanging data on its socket, and makes a new connection afterwards;
/// only the first client's sockets are reported and closed. The last
/// cleanup frees the table.
#[test]
fn a_second_client_keeps_working_while_the_first_is_cleaned_up() {
    let k = Session::begin();
    let reports = Reports::install();
    let server = echo_server("127.0.0.1:0").expect("echo server");
    let first = startup();
    let second = startup();
    let mut a = Vec::new();
    for _ in 0..2 {
        let (st, s) = connect(first, server, 2000);
        assert_eq!(st, STATUS_SUCCESS);
        a.push(s);
    }
    let (st, b) = connect(second, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(hostkernel::live().sockets, 3);

    // Each WskCloseSocket takes 400 ms, so the first client's cleanup lasts
    // while the second client works.
    hostkernel::set_close_delay(Some(Duration::from_millis(400)));
    let f = ClientH::new(first);
    let cleaning = thread::spawn(move || {
        // SAFETY: a live client handle.
        unsafe { SafeWskCleanup(f.get()) }
    });
    let mut rounds = 0u32;
    let end = Instant::now() + CLEANUP_BOUND;
    // Echo round trips on the second client's socket during the cleanup, and
    // a few more after it.
    let mut after = 0;
    let mut during = 0;
    while after < 3 {
        assert!(Instant::now() < end, "the first client's cleanup did not return");
        if cleaning.is_finished() {
            after += 1;
        } else {
            during += 1;
        }
        let msg = rounds.to_le_bytes();
        assert_eq!(send(b, &msg), (STATUS_SUCCESS, 4), "round {rounds}");
        let mut got = [0u8; 4];
        assert_eq!(receive(b, &mut got, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 4), "round {rounds}");
        assert_eq!(got, msg);
        rounds += 1;
    }
    assert_eq!(cleaning.join().expect("cleanup thread"), STATUS_SUCCESS);
    println!("{during} echo round trips on the second client's socket during the first one's cleanup, {after} after");
    assert!(during >= 3, "the second client worked during the cleanup ({during} round trips)");
    hostkernel::set_close_delay(None);
    assert_eq!(hostkernel::live().sockets, 1, "only the first client's sockets were closed");
    let closing = reports.of(SAFEWSK_REPORT_CLEANUP_CLOSING);
    assert_eq!(closing.len(), 2, "{closing:#?}");
    for s in a {
        assert_eq!(send(s, b"x").0, STATUS_INVALID_PARAMETER_1);
    }
    assert_eq!(table_usage().0, 1, "the table stays while a client exists");
    // The second client connects again (in a slot the first one freed, or
    // another: either way it works).
    let (st, b2) = connect(second, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(send(b2, b"more"), (STATUS_SUCCESS, 4));
    assert_eq!(close(b2), STATUS_SUCCESS);
    assert_eq!(close(b), STATUS_SUCCESS);
    cleanup(second);
    assert_eq!(table_usage(), (0, 0), "the last cleanup frees the table");
    drop(reports);
    k.finish();
}

/// The peer of a socket cleanup closed abortively gets a reset, not data.
#[test]
fn the_peer_of_a_socket_left_open_sees_it_closed_abortively() {
    let k = Session::begin();
    let client = startup();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accept = thread::spawn(move || listener.accept().expect("accept").0);
    let (st, s) = connect(client, addr, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut peer = accept.join().expect("accept");
    assert_eq!(send(s, b"hello"), (STATUS_SUCCESS, 5));
    let mut got = [0u8; 5];
    peer.read_exact(&mut got).expect("read");
    assert_eq!(cleanup_within(client, CLEANUP_BOUND), STATUS_SUCCESS);
    peer.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let mut buf = [0u8; 8];
    let r = peer.read(&mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "an abortive close (WskCloseSocket on a connection not disconnected): {r:?}"
    );
    let _ = peer.write_all(b"late");
    k.finish();
}
