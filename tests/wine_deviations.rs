//! Wine 8's kernel deviations that `.ci/wine` met, reproduced on the host
//! kernel (see README, "Checked on an independent kernel (Wine)"):
//!
//! - Wine's netio sets no cancel routine, so IoCancelIrp cannot end a
//!   pending WSK request: safewsk must still wait for the completion, hand
//!   out or close the socket, and leak nothing. (Passes.)
//! - Wine's KeCancelTimer returns TRUE for a timer that already fired. With
//!   both deviations, an asynchronous connect whose deadline passes before
//!   the provider completes drops its timer reference twice. The test is
//!   `#[ignore]`d: it aborts the test process ("request reference count
//!   underflow") — run it with
//!   `cargo test --test wine_deviations -- --ignored` to see it.

mod common;

use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use common::*;
use safewsk::nt::*;

#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<(NTSTATUS, usize)>>,
    cv: Condvar,
}

unsafe extern "C" fn on_connect(ctx: PVOID, status: NTSTATUS, socket: *mut WSK_SOCKET) {
    // SAFETY: the context is the Arc<Seen> the test keeps alive.
    let seen = unsafe { &*(ctx as *const Seen) };
    seen.calls.lock().unwrap().push((status, socket as usize));
    seen.cv.notify_all();
}

impl Seen {
    fn wait(&self, n: usize, within: Duration) -> Vec<(NTSTATUS, usize)> {
        let deadline = Instant::now() + within;
        let mut g = self.calls.lock().unwrap();
        while g.len() < n && Instant::now() < deadline {
            g = self.cv.wait_timeout(g, deadline - Instant::now()).unwrap().0;
        }
        g.clone()
    }
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
    let mut req = Box::new(new_request(Some(on_connect), Arc::as_ptr(&seen) as *mut c_void, 10));
    assert_eq!(start_async(client, &Addr::wildcard_like(server), &Addr::from(server), &mut *req), STATUS_PENDING);
    let calls = seen.wait(1, Duration::from_secs(5));
    assert_eq!(calls.len(), 1, "one callback");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(seen.calls.lock().unwrap().len(), 1, "callback called more than once");
    // The provider completed successfully after the deadline: the socket is
    // the callee's (STATUS_SUCCESS), or the library closed it (timeout).
    let (status, socket) = calls[0];
    match status {
        STATUS_SUCCESS => assert_eq!(close(client, socket as *mut WSK_SOCKET), STATUS_SUCCESS),
        STATUS_IO_TIMEOUT => assert_eq!(socket, 0),
        other => panic!("unexpected status {other:#x}"),
    }
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
        STATUS_SUCCESS => assert_eq!(close(client, socket), STATUS_SUCCESS),
        STATUS_IO_TIMEOUT => assert!(socket.is_null()),
        other => panic!("unexpected status {other:#x}"),
    }
    cleanup(client);
    k.finish();
}

#[test]
#[ignore = "reproduces a double release under Wine 8's KeCancelTimer; aborts the process"]
fn expired_async_connect_under_wine_kecanceltimer() {
    expired_async_connect_with_an_uncancellable_provider(true);
}
