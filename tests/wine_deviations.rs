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

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use safewsk::nt::*;
use safewsk::SAFEWSK_SOCKET;

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
