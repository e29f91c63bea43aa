//! Wine 8's kernel deviations that `.ci/wine` met, reproduced on the host
//! kernel (see docs/testing.md, "Checked on an independent kernel (Wine)"):
//!
//! - Wine's netio sets no cancel routine, so IoCancelIrp cannot end a
//!   pending WSK request: safewsk must still wait for the completion, hand
//!   out or close the socket, and leak nothing. (Passes.)
//! - Wine's KeCancelTimer returns TRUE for a timer that already fired. With
//!   both deviations, an asynchronous connect whose deadline passes before
//!   the provider completes dropped its timer reference twice (the test
//!   process aborted with "request reference count underflow"); the timer
//!   reference is now claimed with one atomic bit (src/connect/request_state.rs), and
//!   the test passes.
//! - Listening and datagram sockets (issue 20): Wine's WskControlSocket is a
//!   stub (SafeWskListen's default SO_EXCLUSIVEADDRUSE fails with
//!   STATUS_NOT_IMPLEMENTED, the half-made socket is closed; Mask 0
//!   listens), its listening WskGetLocalAddress is a stub, its WskSocket
//!   has no datagram sockets, and an accept's deadline cannot cancel it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use safewsk::nt::*;
use safewsk::{SafeWskGetLocalAddress, SAFEWSK_ADDRESS, SAFEWSK_SOCKET};

/// Whichever way the connect ended (timed out, or connected late and closed
/// since), its IRP was not freed but went back to the socket table's cache
/// for the next connect: the only live IRP is the cached one.
fn assert_the_irp_waits_in_the_cache() {
    assert_eq!(safewsk::table_usage(), (1, 1), "(chunks, cached IRPs)");
    assert_eq!(hostkernel::live().irps, 1, "no IRP but the cached one");
}

/// A provider like Wine's netio (no cancel routine, completion 200 ms after
/// the call), a 10 ms deadline, an echo server: the deadline passes, the
/// cancel has no effect, the connect succeeds later.
fn expired_async_connect_with_an_uncancellable_provider(wine_timer: bool) {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_provider_ignores_cancel(true);
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(200)));
    hostkernel::set_cancel_timer_like_wine(wine_timer);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 10);
    assert_eq!(start_async(client, &Addr::wildcard_like(server), &Addr::from(server), &mut *req), STATUS_PENDING);
    let calls = seen.wait(1, Duration::from_secs(5));
    assert_eq!(calls.len(), 1, "one callback");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(seen.calls.lock().unwrap().len(), 1, "callback called more than once");
    // The provider completed successfully after the deadline: the socket is
    // the callee's (STATUS_SUCCESS), or the library closed it (timeout).
    let (status, socket, _, _) = calls[0];
    match status {
        STATUS_SUCCESS => assert_eq!(close(socket as *mut SAFEWSK_SOCKET), STATUS_SUCCESS),
        STATUS_IO_TIMEOUT => assert_eq!(socket, 0),
        other => panic!("unexpected status {other:#x}"),
    }
    assert_the_irp_waits_in_the_cache();
    cleanup(client);
    drop(req);
    k.finish();
}

#[test]
fn expired_async_connect_when_the_provider_ignores_cancel() {
    expired_async_connect_with_an_uncancellable_provider(false);
}

#[test]
fn expired_sync_connect_when_the_provider_ignores_cancel() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_provider_ignores_cancel(true);
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(200)));
    let client = startup();
    let (status, socket) = connect(client, server, 10);
    match status {
        STATUS_SUCCESS => assert_eq!(close(socket), STATUS_SUCCESS),
        STATUS_IO_TIMEOUT => assert!(socket.is_null()),
        other => panic!("unexpected status {other:#x}"),
    }
    assert_the_irp_waits_in_the_cache();
    cleanup(client);
    k.finish();
}

#[test]
fn expired_async_connect_under_wine_kecanceltimer() {
    expired_async_connect_with_an_uncancellable_provider(true);
}

// ---------------------------------------------------------------------------
// Listening and datagram sockets (issue 20): what the Wine test driver's
// server cases met in Wine 8's netio, reproduced here.
// ---------------------------------------------------------------------------

use common::servers::*;
use hostkernel::{CallFault, WskCall};

/// Wine 8's WskControlSocket is a stub: SafeWskListen with its default
/// options (SO_EXCLUSIVEADDRUSE) fails with the provider's status and
/// closes the half-made socket; with an options structure of Mask 0 it
/// listens.
#[test]
fn listening_with_a_stub_wsk_control_socket() {
    let k = Session::begin();
    let client = startup();
    hostkernel::set_call_fault(WskCall::ControlSocket, 1, CallFault::Fail(STATUS_NOT_IMPLEMENTED));
    let (st, socket) = listen_with(client, "127.0.0.1:0", None);
    assert_eq!((st, socket.is_null()), (STATUS_NOT_IMPLEMENTED, true));
    assert!(hostkernel::wsk::open_sockets().is_empty(), "the half-made socket was closed");
    let none = no_options();
    let (st, socket) = listen_with(client, "127.0.0.1:0", Some(&none));
    assert_eq!(st, STATUS_SUCCESS, "no option: no WskControlSocket");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Wine 8's listening WskGetLocalAddress is a stub that returns
/// STATUS_NOT_IMPLEMENTED without completing the IRP: the library takes the
/// IRP back and returns the status; the listening socket goes on working.
#[test]
fn a_stub_local_address_query_on_a_listening_socket() {
    let k = Session::begin();
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    let mut a = SAFEWSK_ADDRESS::default();
    // SAFETY: a writable 28-byte buffer.
    let st = unsafe { SafeWskGetLocalAddress(listener, (&mut a as *mut SAFEWSK_ADDRESS).cast(), 28, 2000) };
    hostkernel::set_fail_without_completing(None);
    assert_eq!(st, STATUS_NOT_IMPLEMENTED);
    let _peer = std::net::TcpStream::connect(at).expect("connect");
    let acc = accept(listener, 5000);
    assert_eq!(acc.status, STATUS_SUCCESS);
    assert_eq!(close(acc.socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Wine 8's WskSocket has no datagram sockets: it returns (and completes)
/// STATUS_NOT_IMPLEMENTED for WSK_FLAG_DATAGRAM_SOCKET. The slot reserved
/// for the socket is given back; nothing leaks.
#[test]
fn no_datagram_sockets() {
    let k = Session::begin();
    let client = startup();
    hostkernel::set_call_fault(WskCall::Socket, 1, CallFault::Fail(STATUS_NOT_IMPLEMENTED));
    let (st, socket) = datagram_with(client, "127.0.0.1:0", Some(&no_options()));
    assert_eq!((st, socket.is_null()), (STATUS_NOT_IMPLEMENTED, true));
    assert_the_irp_waits_in_the_cache();
    cleanup(client);
    k.finish();
}

/// Wine's netio sets no cancel routine, so an asynchronous accept's deadline
/// cannot end it: the request waits for a connection, and hands it out (the
/// callback reports STATUS_SUCCESS with the socket): never lost.
#[test]
fn an_expired_async_accept_when_the_provider_ignores_cancel() {
    let k = Session::begin();
    hostkernel::set_provider_ignores_cancel(true);
    let client = startup();
    let (listener, at) = listen(client, "127.0.0.1:0");
    let (ctx, mut req) = accept_request(10);
    assert_eq!(accept_async(listener, &mut req), STATUS_PENDING);
    std::thread::sleep(Duration::from_millis(100));
    assert!(ctx.seen.calls.lock().unwrap().is_empty(), "the deadline passed; the accept still pends");
    let _peer = std::net::TcpStream::connect(at).expect("connect");
    let calls = ctx.seen.wait(1, Duration::from_secs(10));
    assert_eq!(calls[0].0, STATUS_SUCCESS, "completed successfully after the ignored cancel: handed out");
    assert_eq!(close(calls[0].1 as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
