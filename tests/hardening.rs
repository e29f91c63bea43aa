//! The hardening review (issue 8): for each defect, the host kernel is made
//! to do what Windows is *allowed* to do, and the library must survive it.
//! Every test ends with `Session::finish` (zero IRPs, pool, MDLs, sockets,
//! timers, devices, threads and contract violations).

mod common;

use std::net::TcpListener;
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hostkernel::CancelBehaviour;
use safewsk::nt::*;
use safewsk::*;

/// Client pointers cross threads in these tests.
struct Shared<T>(*mut T);
impl<T> Clone for Shared<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Shared<T> {}
// SAFETY: the pointee is a safewsk object meant to be used from any thread.
unsafe impl<T> Send for Shared<T> {}

/// A server that accepts and then says nothing until the returned
/// connection is dropped: a receive on it waits for its deadline.
fn silent() -> (std::net::SocketAddr, thread::JoinHandle<Vec<std::net::TcpStream>>) {
    silent_server()
}

fn log_contains(needle: &str) -> bool {
    hostkernel::take_dbgprint_log().iter().any(|l| l.contains(needle))
}

/// Item 1. A close (and a disconnect, and any call on a socket) must work
/// while SafeWskCleanup waits: before the fix both returned
/// STATUS_DELETE_PENDING without calling the provider. Since issue 17
/// cleanup waits for the calls inside the client (connects, asynchronous
/// callbacks), not for calls on sockets, which keep working until it closes
/// their socket: here it waits for an asynchronous connect that never
/// completes (1 s deadline) while the driver sends, receives,
/// disconnects and closes, and a close cancels a receive in progress.
#[test]
fn close_and_disconnect_work_while_cleanup_waits() {
    let (server, accepted) = silent();
    let echo = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, waiting) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let peer = accepted.join().expect("accept");
    let (st, other) = connect(client, echo, 2000);
    assert_eq!(st, STATUS_SUCCESS);

    // A receive in progress on `waiting` (its peer says nothing).
    let s = Shared(waiting);
    let receiver = thread::spawn(move || {
        let s = s;
        let mut buf = [0u8; 4];
        receive(s.0, &mut buf, 0, 3000).0
    });
    // An asynchronous connect that keeps cleanup waiting until its deadline.
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 1000);
    assert_eq!(start(client, "127.0.0.1:9".parse().expect("addr"), &mut req), STATUS_PENDING);
    thread::sleep(Duration::from_millis(50));
    let t0 = Instant::now();
    let c = Shared(client);
    let cleaner = thread::spawn(move || {
        let c = c;
        // SAFETY: a live client.
        (unsafe { SafeWskCleanup(c.0) }, Instant::now())
    });
    thread::sleep(Duration::from_millis(50));
    assert!(!cleaner.is_finished(), "cleanup must wait for the connect in flight");
    let (st, _) = connect(client, echo, 100);
    assert_eq!(st, STATUS_DELETE_PENDING, "new connects are refused once cleanup has begun");
    // While it waits: use, disconnect and close the other socket, then close
    // the one with the receive (which cancels the receive).
    assert_eq!(send(other, b"ping"), (STATUS_SUCCESS, 4), "send during cleanup");
    let mut buf = [0u8; 4];
    assert_eq!(receive(other, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 4), "receive during cleanup");
    // SAFETY: an open socket.
    assert_eq!(unsafe { SafeWskDisconnect(other, 0, 1000) }, STATUS_SUCCESS, "disconnect during cleanup");
    assert_eq!(close(other), STATUS_SUCCESS, "close must work while cleanup waits");
    assert!(!cleaner.is_finished());
    assert_eq!(close(waiting), STATUS_SUCCESS);
    assert_eq!(receiver.join().expect("receiver"), STATUS_CANCELLED, "the close cancels the pending receive");
    // Cleanup then finds nobody inside and no socket open.
    let (st, done) = cleaner.join().expect("cleanup");
    assert_eq!(st, STATUS_SUCCESS);
    assert!(done - t0 >= Duration::from_millis(850), "cleanup returned before the connect's deadline");
    let calls = seen.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, STATUS_IO_TIMEOUT);
    assert!(calls[0].3 <= done, "cleanup returned before the callback");
    drop(peer);
    k.finish();
}

/// Issue 17: a receive pending with no deadline when cleanup begins does not
/// keep cleanup waiting for ever: cleanup closes the socket, WSK completes the
/// receive (STATUS_CANCELLED), and cleanup returns once it has, with the
/// host socket closed.
#[test]
fn cleanup_closes_a_socket_with_a_receive_pending_and_the_receive_returns() {
    let (server, accepted) = silent();
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let peer = accepted.join().expect("accept");
    let s = Shared(socket);
    let receiver = thread::spawn(move || {
        let s = s;
        let mut buf = [0u8; 4];
        receive(s.0, &mut buf, 0, SAFEWSK_NO_TIMEOUT)
    });
    thread::sleep(Duration::from_millis(50));
    assert!(!receiver.is_finished(), "the receive waits for data");
    let c = Shared(client);
    let st = within(Duration::from_secs(5), "SafeWskCleanup with a receive pending", move || {
        let c = c;
        // SAFETY: a live client.
        unsafe { SafeWskCleanup(c.0) }
    });
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(receiver.join().expect("receiver"), (STATUS_CANCELLED, 0), "the close completes the receive");
    assert_eq!(hostkernel::live().sockets, 0);
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "the handle was consumed by cleanup");
    drop(peer);
    k.finish();
}

/// Item 2. A second SafeWskCleanup while the first waits gets
/// STATUS_DELETE_PENDING and touches nothing. Before the fix it
/// re-initialized the event the first one was waiting on: the host kernel
/// reports the orphaned wait ("KeInitializeEvent on event ... while 1
/// thread(s) wait on it"). Here the first waits for an asynchronous connect
/// (300 ms deadline); since issue 17 it then closes the socket left open
/// (before: STATUS_INVALID_DEVICE_STATE) and succeeds, and the handle is
/// stale afterwards.
#[test]
fn a_second_cleanup_is_refused_and_does_not_strand_the_first() {
    let (server, accepted) = silent();
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let peer = accepted.join().expect("accept");
    let s = Shared(socket);
    let receiver = thread::spawn(move || {
        let s = s;
        let mut buf = [0u8; 4];
        receive(s.0, &mut buf, 0, 3000).0
    });
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 300);
    assert_eq!(start(client, "127.0.0.1:9".parse().expect("addr"), &mut req), STATUS_PENDING);
    thread::sleep(Duration::from_millis(30));
    let c = Shared(client);
    let first = thread::spawn(move || {
        let c = c;
        let t0 = Instant::now();
        // SAFETY: a live client.
        (unsafe { SafeWskCleanup(c.0) }, t0.elapsed())
    });
    thread::sleep(Duration::from_millis(30));
    assert!(!first.is_finished(), "the first cleanup waits for the connect");
    // SAFETY: a live client (the first cleanup has not freed it).
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_DELETE_PENDING);
    let (st, took) = first.join().expect("first cleanup");
    assert_eq!(st, STATUS_SUCCESS, "the socket left open is closed, not refused");
    assert!(took < Duration::from_millis(1500), "the first cleanup was stranded: {took:?}");
    assert_eq!(receiver.join().expect("receiver"), STATUS_CANCELLED, "cleanup's close ended the receive");
    assert_eq!(seen.wait(1, Duration::from_secs(1))[0].0, STATUS_IO_TIMEOUT);
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "cleanup consumed the socket's handle");
    // SAFETY: any client value is safe; this one is stale.
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_INVALID_PARAMETER_1);
    drop(peer);
    k.finish();
}

/// Item 4, synchronous path. KeSetEvent in the completion routine is followed
/// by a pause (the host kernel's test switch), so the waiting thread closes,
/// cleans up and "unloads" while the routine has not returned yet. With
/// IoSetCompletionRoutineEx the device object stays referenced until it has,
/// and the image is not unloaded under it. Before the fix: "1 driver
/// routine(s) ... still executing when the driver image was unloaded".
#[test]
fn no_library_code_runs_after_cleanup_and_unload_sync() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    hostkernel::set_delay_after_signal(Duration::from_millis(30));
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    hostkernel::unload_image();
    k.finish();
}

/// Item 4, asynchronous path through the timer DPC: the provider's cancel
/// routine completes inline, so the DPC drops the last reference, calls back
/// and wakes cleanup from the DPC. SafeWskCleanup's KeFlushQueuedDpcs keeps
/// it from returning before the DPC has.
#[test]
fn no_library_code_runs_after_cleanup_and_unload_dpc() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    hostkernel::set_cancel_behaviour(CancelBehaviour::Inline);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 50);
    assert_eq!(start(client, "127.0.0.1:9".parse().expect("addr"), &mut req), STATUS_PENDING);
    hostkernel::set_delay_after_signal(Duration::from_millis(30));
    cleanup(client); // waits for the callback
    hostkernel::unload_image();
    let calls = seen.wait(1, Duration::from_secs(2));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, STATUS_IO_TIMEOUT);
    k.finish();
}

/// Item 5. A cancel routine may complete the IRP inside IoCancelIrp: then the
/// callback runs inside SafeWskCancelConnect, on the canceller's thread
/// (documented in the header). It must still run exactly once, with
/// STATUS_CANCELLED, and leave nothing behind.
#[test]
fn the_callback_may_run_inside_cancel_connect() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    hostkernel::set_cancel_behaviour(CancelBehaviour::Inline);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, SAFEWSK_NO_TIMEOUT);
    assert_eq!(start(client, "127.0.0.1:9".parse().expect("addr"), &mut req), STATUS_PENDING);
    thread::sleep(Duration::from_millis(20));
    // SAFETY: a started request whose storage is intact.
    assert_eq!(unsafe { SafeWskCancelConnect(&mut *req) }, STATUS_SUCCESS);
    // Already called back, on this thread, before the cancel returned.
    assert_eq!(seen.calls.lock().unwrap().len(), 1);
    assert_eq!(seen.calls.lock().unwrap()[0].0, STATUS_CANCELLED);
    assert_eq!(seen.threads.lock().unwrap()[0], thread::current().id());
    cleanup(client);
    k.finish();
}

/// The synchronous connect's deadline with a cancel routine that completes
/// inline: the same thread is woken from inside its own IoCancelIrp.
#[test]
fn a_sync_deadline_survives_inline_cancel_completion() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    hostkernel::set_cancel_behaviour(CancelBehaviour::Inline);
    let client = startup();
    let (st, socket) = connect(client, "127.0.0.1:9".parse().expect("addr"), 50);
    assert_eq!(st, STATUS_IO_TIMEOUT);
    assert!(socket.is_null());
    cleanup(client);
    k.finish();
}

/// Item 6. A provider that ignores cancellation: the call waits for the
/// completion (an IRP the provider owns cannot be freed) but never silently:
/// the wait is reported with DbgPrint while it lasts. Before the fix the wait
/// after IoCancelIrp was silent.
#[test]
fn a_provider_that_ignores_cancel_is_reported_not_hung_on_silently() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(700)));
    hostkernel::set_cancel_behaviour(CancelBehaviour::Ignored);
    let client = startup();
    let _ = hostkernel::take_dbgprint_log();
    let t0 = Instant::now();
    let (st, socket) = connect(client, server, 100);
    let took = t0.elapsed();
    eprintln!("cancel ignored: returned {st:#x} after {took:?}");
    // The provider completed late but successfully: the socket is returned.
    assert_eq!(st, STATUS_SUCCESS);
    assert!(took >= Duration::from_millis(600), "{took:?}");
    let log = hostkernel::take_dbgprint_log();
    let reports = log.iter().filter(|l| l.contains("WskSocketConnect: IRP") && l.contains("not completed")).count();
    eprintln!("{reports} report(s): {log:?}");
    assert!(reports >= 2, "the overdue wait must report itself repeatedly: {log:?}");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Runs `f` on a thread and fails the test if it has not returned within
/// `limit` (a hang before the fix would otherwise hang the test run).
fn within<T: Send + 'static>(limit: Duration, what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let h = thread::spawn(f);
    let t0 = Instant::now();
    while !h.is_finished() {
        assert!(t0.elapsed() < limit, "{what} hung (more than {limit:?})");
        thread::sleep(Duration::from_millis(5));
    }
    h.join().expect("thread")
}

/// Item 6. A provider that returns an error without completing the IRP (Wine
/// 8.0's stub WskSocketConnect and WskDisconnect): by the I/O model the IRP
/// was never consumed, so the returned status is the answer. Before the fix
/// the synchronous connect waited for a completion that never came, for ever.
#[test]
fn an_error_returned_without_completing_the_irp_is_the_answer() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let _ = hostkernel::take_dbgprint_log();
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    let c = Shared(client);
    let (st, socket) = within(Duration::from_secs(3), "SafeWskSocketConnect", move || {
        let c = c;
        let (st, s) = connect(c.0, server, 200);
        (st, s as usize)
    });
    assert_eq!(st, STATUS_NOT_IMPLEMENTED);
    assert_eq!(socket, 0);
    assert!(log_contains("WskSocketConnect returned 0xC0000002 without completing IRP"));

    // The asynchronous connect reports it through its callback.
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 200);
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    let calls = seen.wait(1, Duration::from_secs(2));
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, STATUS_NOT_IMPLEMENTED);

    // Every socket call too. A close the provider refuses without
    // completing its IRP consumes the handle all the same (issue 17: before,
    // the socket stayed open for a retry): the socket becomes an orphan that
    // the library owns and SafeWskCleanup closes.
    hostkernel::set_fail_without_completing(None);
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let _ = hostkernel::take_dbgprint_log();
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    let s = Shared(socket);
    let statuses = within(Duration::from_secs(3), "the socket calls", move || {
        let s = s;
        let mut buf = [0u8; 4];
        let sent = send(s.0, b"ping").0;
        let received = receive(s.0, &mut buf, 0, 200).0;
        // SAFETY: an open socket.
        let disconnected = unsafe { SafeWskDisconnect(s.0, 0, 200) };
        // SAFETY: an open socket (the refused disconnect left it open).
        let closed = unsafe { SafeWskCloseSocket(s.0) };
        [sent, received, disconnected, closed]
    });
    assert_eq!(statuses, [STATUS_NOT_IMPLEMENTED; 4]);
    let slot = socket as usize & 0xFFFF;
    assert!(
        log_contains(&format!("WskCloseSocket of slot {slot} could not be issued (0xC0000002)")),
        "the orphan is reported"
    );
    hostkernel::set_fail_without_completing(None);
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "the refused close consumed the handle");
    assert_eq!(send(socket, b"x").0, STATUS_INVALID_PARAMETER_1);
    assert_eq!(hostkernel::live().sockets, 1, "the orphan stays open until cleanup");
    // A success-class status without a completion is no success: the close
    // was not carried out, and says so (before: STATUS_SUCCESS with the
    // socket still open, and cleanup then refused for ever). The handle is
    // consumed too.
    let (st, second) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    hostkernel::set_fail_without_completing(Some(STATUS_SUCCESS));
    assert_eq!(close(second), STATUS_UNSUCCESSFUL);
    hostkernel::set_fail_without_completing(None);
    assert_eq!(close(second), STATUS_INVALID_PARAMETER_1, "the handle is consumed: no retry");
    assert_eq!(hostkernel::live().sockets, 2);
    // Cleanup closes both orphans.
    cleanup(client);
    assert_eq!(hostkernel::live().sockets, 0, "cleanup closed the orphans");
    k.finish();
}

/// Issue 17: an orphan whose close the provider keeps refusing is retried by
/// SafeWskCleanup until the provider takes it; cleanup never returns with
/// the socket open (the image could unload under it) and never gives up.
/// Also an orphan made because the close's completion context could not be
/// allocated (STATUS_INSUFFICIENT_RESOURCES, handle consumed).
#[test]
fn cleanup_retries_an_orphan_close_until_the_provider_takes_it() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, refused) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let (st, unissued) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    k.fail_nth(Site::CompletionContext, 1);
    assert_eq!(close(unissued), STATUS_INSUFFICIENT_RESOURCES, "the close could not be issued");
    assert!(k.fault_hit(Site::CompletionContext));
    assert_eq!(close(unissued), STATUS_INVALID_PARAMETER_1, "consumed all the same");
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    assert_eq!(close(refused), STATUS_NOT_IMPLEMENTED);
    assert_eq!(close(refused), STATUS_INVALID_PARAMETER_1);
    assert_eq!(hostkernel::live().sockets, 2, "both orphans are still open");
    let c = Shared(client);
    let cleaner = thread::spawn(move || {
        let c = c;
        // SAFETY: a live client.
        unsafe { SafeWskCleanup(c.0) }
    });
    thread::sleep(Duration::from_millis(150));
    assert!(!cleaner.is_finished(), "cleanup returned with an orphan still open");
    assert_eq!(hostkernel::live().sockets, 2, "the provider still refuses every close");
    hostkernel::set_fail_without_completing(None);
    let st = within(Duration::from_secs(3), "SafeWskCleanup", move || cleaner.join().expect("cleanup"));
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(hostkernel::live().sockets, 0);
    k.finish();
}

/// Item 6. A graceful disconnect that never completes (the peer never
/// acknowledges; the host provider also ignores its cancellation): at the
/// deadline safewsk resets the connection with an abortive disconnect, which
/// ends the graceful one, and returns STATUS_IO_TIMEOUT. Before the fix it
/// cancelled and then waited for ever.
#[test]
fn a_graceful_disconnect_that_never_completes_falls_back_to_abortive() {
    let (server, accepted) = silent();
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut peer = accepted.join().expect("accept");
    hostkernel::set_graceful_disconnect_hangs(true);
    let s = Shared(socket);
    let t0 = Instant::now();
    let st = within(Duration::from_secs(3), "SafeWskDisconnect", move || {
        let s = s;
        // SAFETY: an open socket.
        unsafe { SafeWskDisconnect(s.0, 0, 150) }
    });
    let took = t0.elapsed();
    eprintln!("graceful disconnect that hangs, 150 ms deadline: {st:#x} after {took:?}");
    assert_eq!(st, STATUS_IO_TIMEOUT);
    assert!(took < Duration::from_millis(1000), "{took:?}");
    // The peer sees the reset.
    use std::io::Read;
    let mut b = [0u8; 1];
    let peer = peer.remove(0);
    peer.set_read_timeout(Some(Duration::from_secs(2))).expect("timeout");
    assert!(matches!((&peer).read(&mut b), Ok(0) | Err(_)));
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Item 6. SafeWskCleanup waiting for an asynchronous connect reports the
/// wait while it lasts.
#[test]
fn a_waiting_cleanup_reports_itself() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, SAFEWSK_NO_TIMEOUT);
    assert_eq!(start(client, "127.0.0.1:9".parse().expect("addr"), &mut req), STATUS_PENDING);
    let _ = hostkernel::take_dbgprint_log();
    let c = Shared(client);
    let cleaner = thread::spawn(move || {
        let c = c;
        // SAFETY: a live client.
        unsafe { SafeWskCleanup(c.0) }
    });
    thread::sleep(Duration::from_millis(500));
    assert!(log_contains("SafeWskCleanup: still waiting"), "cleanup waited silently");
    // SAFETY: a started request whose storage is intact.
    assert_eq!(unsafe { SafeWskCancelConnect(&mut *req) }, STATUS_SUCCESS);
    assert_eq!(cleaner.join().expect("cleanup"), STATUS_SUCCESS);
    assert_eq!(seen.wait(1, Duration::from_secs(1))[0].0, STATUS_CANCELLED);
    k.finish();
}

/// Item 9. The security descriptor may be pageable: at DISPATCH_LEVEL (the
/// asynchronous connect) it must not be read. Here a pointer given to the
/// connect lies on a page that is not mapped (PROT_NONE), as a paged-out
/// page would be: reading it faults. Before the fix the process died with
/// SIGSEGV. Since connects accept only descriptors this client cached
/// (tests/security_descriptor.rs), the pointer is compared with the
/// client's table and never dereferenced: the unmapped one is refused as
/// parameter 11 without a fault, and a cached one is accepted at
/// DISPATCH_LEVEL.
#[test]
fn the_security_descriptor_is_not_read_at_dispatch_level() {
    // SAFETY: a fresh anonymous mapping this test owns.
    let page =
        unsafe { libc::mmap(ptr::null_mut(), 4096, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
    assert_ne!(page, libc::MAP_FAILED);
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, SAFEWSK_NO_TIMEOUT);
    let (local, remote) = (Addr::parse("0.0.0.0:0"), Addr::parse("127.0.0.1:9"));
    // The SD pointer is 4-byte aligned and must not be dereferenced at this
    // IRQL: it is not a cached one, so it is refused, without a fault.
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || start_async_with_sd(client, &local, &remote, page, &mut *req));
    assert_eq!(st, STATUS_INVALID_PARAMETER_11);
    let mut sd = [1u64, 0, 0, 0, 0];
    let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: a live client, a readable descriptor, a writable out pointer.
    assert_eq!(unsafe { SafeWskCacheSecurityDescriptor(client, sd.as_mut_ptr().cast(), &mut cached) }, STATUS_SUCCESS);
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || start_async_with_sd(client, &local, &remote, cached, &mut *req));
    assert_eq!(st, STATUS_PENDING);
    // SAFETY: a started request.
    assert_eq!(unsafe { SafeWskCancelConnect(&mut *req) }, STATUS_SUCCESS);
    assert_eq!(seen.wait(1, Duration::from_secs(2))[0].0, STATUS_CANCELLED);
    // SAFETY: a live client and its cached descriptor, no connect in flight.
    assert_eq!(unsafe { SafeWskReleaseSecurityDescriptor(client, cached) }, STATUS_SUCCESS);
    cleanup(client);
    k.finish();
    // SAFETY: our mapping.
    unsafe { libc::munmap(page, 4096) };
}

/// Item 11. A KeCancelTimer that answers TRUE after the timer has fired and
/// its DPC has run (Wine 8.0). The provider ignores cancellation and
/// completes after the deadline, so the completion routine calls
/// KeCancelTimer after the DPC. Before the fix the timer's reference was
/// released twice: "request reference count underflow" (a debug assertion,
/// which aborts the test process from inside the completion routine).
#[test]
fn a_misreporting_kecanceltimer_does_not_release_twice() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_cancel_timer_like_wine(true);
    hostkernel::set_cancel_behaviour(CancelBehaviour::Ignored);
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(60)));
    let client = startup();
    for _ in 0..5 {
        let seen = Arc::new(Seen::default());
        let mut req = request(&seen, 10);
        assert_eq!(start(client, server, &mut req), STATUS_PENDING);
        let calls = seen.wait(1, Duration::from_secs(2));
        thread::sleep(Duration::from_millis(20));
        assert_eq!(seen.calls.lock().unwrap().len(), 1, "exactly one callback");
        // The late completion won: connected.
        assert_eq!(calls[0].0, STATUS_SUCCESS);
        assert_eq!(close(calls[0].1 as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    }
    cleanup(client);
    k.finish();
}

/// Item 12. Every socket call checks that its socket is open: a second
/// close, or a send, receive or disconnect after the close, gets
/// STATUS_INVALID_PARAMETER_1 (issue 17; _2 before, when the client was
/// parameter 1) and the provider is never handed a freed WSK_SOCKET — also
/// while other sockets are open. Before the fix the second close read the
/// `Dispatch` pointer of the WSK_SOCKET the first close had freed (the host
/// kernel had poisoned it) and the test process died with SIGSEGV inside
/// SafeWskCloseSocket: on Windows, a bugcheck.
///
/// Since issue 17 a socket call takes no client: the handle names its
/// socket (and, through its slot, its client), so another client's socket
/// is used by its handle like any other. A client handle passed as a socket
/// handle, and a socket handle passed as a client handle, are refused.
#[test]
fn calls_on_closed_sockets_are_refused_with_other_sockets_open() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let other = startup();
    let (st, keep) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let (st, foreign) = connect(other, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);

    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "second close");
    assert_eq!(send(socket, b"x").0, STATUS_INVALID_PARAMETER_1, "send after close");
    let mut buf = [0u8; 1];
    assert_eq!(receive(socket, &mut buf, 0, 100).0, STATUS_INVALID_PARAMETER_1);
    // SAFETY: any handle value is safe.
    assert_eq!(unsafe { SafeWskDisconnect(socket, 0, 100) }, STATUS_INVALID_PARAMETER_1);
    // Handles of the other kind.
    assert_eq!(close(client.cast()), STATUS_INVALID_PARAMETER_1, "a client handle as a socket");
    assert_eq!(send(other.cast(), b"x").0, STATUS_INVALID_PARAMETER_1, "a client handle as a socket");
    // SAFETY: any client value is safe.
    assert_eq!(unsafe { SafeWskCleanup(keep.cast()) }, STATUS_INVALID_PARAMETER_1, "a socket handle as a client");
    let (st, none) = connect(foreign.cast(), server, 100);
    assert_eq!((st, none), (STATUS_INVALID_PARAMETER_1, std::ptr::null_mut()), "a socket handle as a client");
    assert_eq!(hostkernel::live().sockets, 2);
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());

    // The others still work, each by its handle alone.
    assert_eq!(send(keep, b"k"), (STATUS_SUCCESS, 1));
    assert_eq!(send(foreign, b"f"), (STATUS_SUCCESS, 1));
    assert_eq!(receive(keep, &mut buf, 0, 2000), (STATUS_SUCCESS, 1));
    assert_eq!(&buf, b"k");
    assert_eq!(receive(foreign, &mut buf, 0, 2000), (STATUS_SUCCESS, 1));
    assert_eq!(&buf, b"f");
    assert_eq!(close(keep), STATUS_SUCCESS);
    assert_eq!(close(foreign), STATUS_SUCCESS);
    cleanup(client);
    cleanup(other);
    k.finish();
}

/// Closes racing a cleanup from several threads: each socket is closed
/// exactly once, by its SafeWskCloseSocket (STATUS_SUCCESS) or by the
/// cleanup (then the close is STATUS_INVALID_PARAMETER_1: the handle was
/// consumed); the provider never sees a second WskCloseSocket of one socket
/// (the host kernel would record it), and cleanup succeeds at once (since
/// issue 17 it never refuses: before, it returned STATUS_INVALID_DEVICE_STATE
/// until the last close). Another client keeps the socket table alive: a
/// call may race the cleanup of its own client, not the last client's
/// (which frees the table).
#[test]
fn closes_racing_a_cleanup_from_several_threads() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let keeper = startup();
    let client = startup();
    let sockets: Vec<_> = (0..16)
        .map(|_| {
            let (st, s) = connect(client, server, 2000);
            assert_eq!(st, STATUS_SUCCESS);
            Shared(s)
        })
        .collect();
    assert_eq!(hostkernel::live().sockets, 16);
    let closed = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = sockets
        .chunks(4)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let (closed, refused) = (closed.clone(), refused.clone());
            thread::spawn(move || {
                for s in chunk {
                    match close(s.0) {
                        STATUS_SUCCESS => closed.fetch_add(1, Ordering::SeqCst),
                        STATUS_INVALID_PARAMETER_1 => refused.fetch_add(1, Ordering::SeqCst),
                        other => panic!("close: {other:#x}"),
                    };
                }
            })
        })
        .collect();
    // SAFETY: a live client.
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_SUCCESS);
    for w in workers {
        w.join().expect("worker");
    }
    let (closed, refused) = (closed.load(Ordering::SeqCst), refused.load(Ordering::SeqCst));
    eprintln!("{closed} closed by the driver, {refused} by the cleanup");
    assert_eq!(closed + refused, 16);
    assert_eq!(hostkernel::live().sockets, 0);
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    for s in &sockets {
        assert_eq!(close(s.0), STATUS_INVALID_PARAMETER_1, "every handle is consumed");
    }
    let _ = TcpListener::bind("127.0.0.1:0");
    cleanup(keeper);
    k.finish();
}

/// Every socket export called with `h` and otherwise valid arguments: `b`
/// 8 writable bytes, `sa` 28 writable bytes, `n` writable.
fn every_socket_export(
    h: *mut SAFEWSK_SOCKET,
    b: *mut std::ffi::c_void,
    sa: *mut SOCKADDR,
    n: &mut u32,
) -> Vec<(&'static str, NTSTATUS)> {
    // SAFETY: every pointer is valid for the call; any handle value is safe.
    #[allow(clippy::multiple_unsafe_ops_per_block)]
    unsafe {
        vec![
            ("SafeWskSend", SafeWskSend(h, b, 8, 0, 100, n)),
            ("SafeWskReceive", SafeWskReceive(h, b, 8, 0, 100, n)),
            ("SafeWskGetLocalAddress", SafeWskGetLocalAddress(h, sa, 28, 100)),
            ("SafeWskGetRemoteAddress", SafeWskGetRemoteAddress(h, sa, 28, 100)),
            ("SafeWskDisconnect", SafeWskDisconnect(h, 0, 100)),
            ("SafeWskEnableCallbacks", SafeWskEnableCallbacks(h, WSK_EVENT_RECEIVE)),
            ("SafeWskDisableCallbacks", SafeWskDisableCallbacks(h, WSK_EVENT_RECEIVE, 100)),
            ("SafeWskCloseSocket", SafeWskCloseSocket(h)),
        ]
    }
}

/// Calls every socket export with each handle of `handles` at PASSIVE_LEVEL,
/// APC_LEVEL, DISPATCH_LEVEL and IRQL 3 and returns the calls that were not
/// refused with STATUS_INVALID_PARAMETER_1. Every provider socket function
/// fails with STATUS_NOT_IMPLEMENTED meanwhile, so a call that reached the
/// provider cannot look refused; the out buffers must stay untouched.
fn refused_at_every_irql(handles: &[(String, *mut SAFEWSK_SOCKET)]) -> Vec<String> {
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    hostkernel::set_call_fault(
        hostkernel::WskCall::EventCallback,
        0,
        hostkernel::CallFault::Fail(STATUS_NOT_IMPLEMENTED),
    );
    let mut buf = [0x5Au8; 8];
    let mut sa_buf = [0x5Au8; 28];
    let mut n = 0u32;
    let mut bad = Vec::new();
    for (what, h) in handles {
        for irql in [PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL, 3] {
            let (b, sa) = (buf.as_mut_ptr().cast(), sa_buf.as_mut_ptr().cast());
            for (export, got) in hostkernel::with_irql(irql, || every_socket_export(*h, b, sa, &mut n)) {
                if got != STATUS_INVALID_PARAMETER_1 {
                    bad.push(format!("{export}({what} = {:#x}) at IRQL {irql}: {got:#x}", *h as usize));
                }
            }
        }
    }
    hostkernel::set_fail_without_completing(None);
    if n != 0 || buf != [0x5A; 8] || sa_buf != [0x5A; 28] {
        bad.push("a refused call wrote to its out parameters".into());
    }
    bad
}

/// xorshift64: the same "random" handles on every run.
fn pseudo_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Issue 17: any value is safe as a socket handle. Forged ones — NULL,
/// all ones, pseudo-random values (also with the socket tag and the table's
/// epoch, naming slots of the installed chunk at random generations), a
/// heap pointer, a stack pointer, a client handle, and near misses of a
/// live handle (another generation, index, epoch or tag) — are refused by
/// every socket export at every IRQL, without a crash, without writing to
/// the memory a pointer-like value points to, without an allocation or a
/// leak, and without touching the live socket.
#[test]
fn forged_socket_handles_are_refused_without_a_crash_or_a_leak() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, live) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let l = live as usize;
    assert_eq!(l >> 56, 0xA5, "a socket handle is an encoded value under the tag 0xA5, not an address");
    let mut heap = Box::new([0x5A5A_5A5A_5A5A_5A5Au64; 16]);
    let mut stack = [0x5A5A_5A5A_5A5A_5A5Au64; 16];
    let mut handles: Vec<(String, *mut SAFEWSK_SOCKET)> = vec![
        ("NULL".into(), ptr::null_mut()),
        ("all ones".into(), usize::MAX as *mut SAFEWSK_SOCKET),
        ("a heap pointer".into(), heap.as_mut_ptr().cast()),
        ("a stack pointer".into(), stack.as_mut_ptr().cast()),
        ("the client handle".into(), client.cast()),
        ("generation + 1".into(), (l + (1 << 16)) as *mut SAFEWSK_SOCKET),
        ("generation 0".into(), (l & !(0xFF_FFFF << 16)) as *mut SAFEWSK_SOCKET),
        ("generation max".into(), (l | (0xFF_FFFF << 16)) as *mut SAFEWSK_SOCKET),
        ("the next slot (free)".into(), (l + 1) as *mut SAFEWSK_SOCKET),
        ("slot 64 (chunk not installed)".into(), ((l & !0xFFFF) | 64) as *mut SAFEWSK_SOCKET),
        ("slot 65535".into(), (l | 0xFFFF) as *mut SAFEWSK_SOCKET),
        ("epoch + 1".into(), (l + (1 << 40)) as *mut SAFEWSK_SOCKET),
        ("epoch - 1".into(), (l - (1 << 40)) as *mut SAFEWSK_SOCKET),
        ("epoch 0".into(), (l & !(0xFFFF << 40)) as *mut SAFEWSK_SOCKET),
        ("another tag".into(), (l ^ (0xFF << 56)) as *mut SAFEWSK_SOCKET),
        ("the client tag".into(), ((l & 0x00FF_FFFF_FFFF_FFFF) | (0xC5 << 56)) as *mut SAFEWSK_SOCKET),
        ("no tag".into(), (l & 0x00FF_FFFF_FFFF_FFFF) as *mut SAFEWSK_SOCKET),
    ];
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for i in 0..48 {
        let r = pseudo_random(&mut state) as usize;
        let h = match i % 3 {
            0 => r,
            // The socket tag and the table's epoch: a slot anywhere.
            1 => (l & !0xFF_FFFF_FFFF) | (r & 0xFF_FFFF_FFFF),
            // ... a slot of the installed chunk, at a random generation.
            _ => (l & !0xFF_FFFF_FFFF) | (r & (0xFF_FFFF << 16)) | (r % 64),
        };
        if h != l {
            handles.push((format!("pseudo-random #{i}"), h as *mut SAFEWSK_SOCKET));
        }
    }
    let before = hostkernel::live();
    let allocated = hostkernel::allocations();
    let bad = refused_at_every_irql(&handles);
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(hostkernel::live(), before, "a refused call left something behind");
    let after = hostkernel::allocations();
    assert_eq!(
        (after.irps.0, after.pool.0, after.mdls.0, after.completion_contexts.0),
        (allocated.irps.0, allocated.pool.0, allocated.mdls.0, allocated.completion_contexts.0),
        "a refused call allocated"
    );
    assert_eq!(*heap, [0x5A5A_5A5A_5A5A_5A5A; 16], "the heap block behind a forged handle was written");
    assert_eq!(stack, [0x5A5A_5A5A_5A5A_5A5A; 16], "the stack behind a forged handle was written");
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    // The live socket is untouched: open, nothing sent on it, working.
    let mut echo = [0u8; 4];
    assert_eq!(receive(live, &mut echo, 0, 100), (STATUS_IO_TIMEOUT, 0), "a forged send reached the live socket");
    assert_eq!(send(live, b"live"), (STATUS_SUCCESS, 4));
    assert_eq!(receive(live, &mut echo, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 4));
    assert_eq!(close(live), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// What a client-level export is given besides the client (all valid).
struct ClientArgs {
    local: Addr,
    remote: Addr,
    node: Vec<u16>,
    service: Vec<u16>,
    sa: [u8; 28],
    sd: [u64; 5],
    cached: PSECURITY_DESCRIPTOR,
    out: *mut SAFEWSK_SOCKET,
    cached_out: PSECURITY_DESCRIPTOR,
}

/// Every client-level export with client handle `c` and the valid
/// arguments `a`; `req` must never be called back.
fn every_client_export(
    c: *mut SAFEWSK_CLIENT,
    a: &mut ClientArgs,
    req: &mut SAFEWSK_CONNECT_REQUEST,
) -> Vec<(&'static str, NTSTATUS)> {
    let len = |v: &Vec<u16>| (v.len() * 2) as u16;
    let node = UNICODE_STRING { Length: len(&a.node), MaximumLength: len(&a.node), Buffer: a.node.as_mut_ptr() };
    let service =
        UNICODE_STRING { Length: len(&a.service), MaximumLength: len(&a.service), Buffer: a.service.as_mut_ptr() };
    let sa = a.sa.as_mut_ptr().cast::<SOCKADDR>();
    let sd = a.sd.as_mut_ptr().cast::<std::ffi::c_void>();
    // SAFETY: every pointer is valid for the call (the request until its
    // callback, which a refused call never makes); any client value is safe.
    #[allow(clippy::multiple_unsafe_ops_per_block)]
    unsafe {
        vec![
            (
                "SafeWskSocketConnect",
                SafeWskSocketConnect(
                    c,
                    SOCK_STREAM,
                    IPPROTO_TCP,
                    a.local.ptr(),
                    a.remote.ptr(),
                    0,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    &mut a.out,
                    100,
                ),
            ),
            ("SafeWskSocketConnectAsync", start_async(c, &a.local, &a.remote, req)),
            (
                "SafeWskConnectByName",
                SafeWskConnectByName(c, &node, &service, ptr::null_mut(), ptr::null(), &mut a.out, sa, 28, 100),
            ),
            (
                "SafeWskSocketConnectWithOptions",
                SafeWskSocketConnectWithOptions(
                    c,
                    a.local.ptr(),
                    a.remote.ptr(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null(),
                    &mut a.out,
                    100,
                ),
            ),
            ("SafeWskCacheSecurityDescriptor", SafeWskCacheSecurityDescriptor(c, sd, &mut a.cached_out)),
            ("SafeWskReleaseSecurityDescriptor", SafeWskReleaseSecurityDescriptor(c, a.cached)),
            ("SafeWskCleanup", SafeWskCleanup(c)),
        ]
    }
}

/// Issue 17: any value is safe as a client handle. Forged ones — NULL, all
/// ones, pseudo-random values (also with the client tag, naming client
/// slots at random generations), a heap pointer, a stack pointer, a socket
/// handle, near misses of the live client's handle — are refused with
/// STATUS_INVALID_PARAMETER_1 by every client-level export at PASSIVE_LEVEL
/// and DISPATCH_LEVEL; above DISPATCH_LEVEL the connect and descriptor
/// exports check only the handle's form (documented), so there a forged
/// handle of the right form is STATUS_INVALID_LEVEL, and SafeWskCleanup
/// still STATUS_INVALID_PARAMETER_1. Nothing reaches the provider, nothing
/// is written behind a pointer-like value, nothing leaks, and the live
/// client (which none of the forged cleanups may clean up) keeps working.
#[test]
fn forged_client_handles_are_refused_without_a_crash_or_a_leak() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut sd = [1u64, 0, 0, 0, 0];
    let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: a live client, a readable descriptor, a writable out pointer.
    assert_eq!(unsafe { SafeWskCacheSecurityDescriptor(client, sd.as_mut_ptr().cast(), &mut cached) }, STATUS_SUCCESS);
    let c = client as usize;
    assert_eq!(c >> 56, 0xC5, "a client handle is an encoded value under the tag 0xC5, not an address");
    let mut heap = Box::new([0x5A5A_5A5A_5A5A_5A5Au64; 64]);
    let mut stack = [0x5A5A_5A5A_5A5A_5A5Au64; 64];
    let mut handles: Vec<(String, *mut SAFEWSK_CLIENT)> = vec![
        ("NULL".into(), ptr::null_mut()),
        ("all ones".into(), usize::MAX as *mut SAFEWSK_CLIENT),
        ("a heap pointer".into(), heap.as_mut_ptr().cast()),
        ("a stack pointer".into(), stack.as_mut_ptr().cast()),
        ("a socket handle".into(), socket.cast()),
        ("generation + 1".into(), (c + (1 << 16)) as *mut SAFEWSK_CLIENT),
        ("generation 0".into(), (c & !(0xFF_FFFF << 16)) as *mut SAFEWSK_CLIENT),
        ("the next client slot (free)".into(), (c + 1) as *mut SAFEWSK_CLIENT),
        ("client slot 64".into(), ((c & !0xFFFF) | 64) as *mut SAFEWSK_CLIENT),
        ("bits 40..56 set".into(), (c | (1 << 40)) as *mut SAFEWSK_CLIENT),
        ("the socket tag".into(), ((c & 0x00FF_FFFF_FFFF_FFFF) | (0xA5 << 56)) as *mut SAFEWSK_CLIENT),
        ("no tag".into(), (c & 0x00FF_FFFF_FFFF_FFFF) as *mut SAFEWSK_CLIENT),
    ];
    let mut state = 0xD1B5_4A32_D192_ED03u64;
    for i in 0..24 {
        let r = pseudo_random(&mut state) as usize;
        let h = match i % 2 {
            0 => r,
            // The client tag, a client slot, a random generation.
            _ => (0xC5 << 56) | (r & (0xFF_FFFF << 16)) | (r % 64),
        };
        if h != c {
            handles.push((format!("pseudo-random #{i}"), h as *mut SAFEWSK_CLIENT));
        }
    }
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 100);
    let mut args = ClientArgs {
        local: Addr::wildcard_like(server),
        remote: Addr::from(server),
        node: "localhost".encode_utf16().collect(),
        service: server.port().to_string().encode_utf16().collect(),
        sa: [0x5A; 28],
        sd: [1, 0, 0, 0, 0],
        cached,
        out: ptr::null_mut(),
        cached_out: ptr::null_mut(),
    };
    let before = hostkernel::live();
    let allocated = hostkernel::allocations();
    let connects = hostkernel::provider_connect_calls();
    let sds = hostkernel::cached_sd_count();
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    let mut bad = Vec::new();
    for (what, h) in &handles {
        for irql in [PASSIVE_LEVEL, DISPATCH_LEVEL, 3] {
            for (export, got) in hostkernel::with_irql(irql, || every_client_export(*h, &mut args, &mut req)) {
                let ok = got == STATUS_INVALID_PARAMETER_1
                    || (irql > DISPATCH_LEVEL && export != "SafeWskCleanup" && got == STATUS_INVALID_LEVEL);
                if !ok {
                    bad.push(format!("{export}({what} = {:#x}) at IRQL {irql}: {got:#x}", *h as usize));
                }
            }
        }
    }
    hostkernel::set_fail_without_completing(None);
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(args.out.is_null() && args.cached_out.is_null(), "a refused call wrote its out parameter");
    assert_eq!(args.sa, [0x5A; 28]);
    assert_eq!(hostkernel::live(), before, "a refused call left something behind");
    let after = hostkernel::allocations();
    assert_eq!(
        (after.irps.0, after.pool.0, after.mdls.0, after.completion_contexts.0),
        (allocated.irps.0, allocated.pool.0, allocated.mdls.0, allocated.completion_contexts.0),
        "a refused call allocated"
    );
    assert_eq!(hostkernel::provider_connect_calls(), connects, "a connect reached the provider");
    assert_eq!(hostkernel::resolver_calls(), 0, "a resolution reached the provider");
    assert_eq!(hostkernel::cached_sd_count(), sds, "the live client's descriptor was released");
    assert_eq!(*heap, [0x5A5A_5A5A_5A5A_5A5A; 64], "the heap block behind a forged handle was written");
    assert_eq!(stack, [0x5A5A_5A5A_5A5A_5A5A; 64], "the stack behind a forged handle was written");
    thread::sleep(Duration::from_millis(20));
    assert!(seen.calls.lock().unwrap().is_empty(), "a refused request called back");
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    // The live client and its socket are untouched.
    assert_eq!(send(socket, b"ok"), (STATUS_SUCCESS, 2));
    let (st, second) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS, "the live client still connects");
    assert_eq!(close(second), STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    // SAFETY: the live client's cached descriptor, no connect in flight.
    assert_eq!(unsafe { SafeWskReleaseSecurityDescriptor(client, cached) }, STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Issue 17: a socket handle outlives its client's cleanup as a stale
/// handle: refused by every socket export at every IRQL while another
/// client keeps the socket table (the slot was freed with a new
/// generation), and also after the last client's cleanup freed the table
/// and a new client rebuilt it, when a new socket sits in the same slot at
/// the same generation (only the table's epoch tells them apart): the new
/// socket is not touched.
#[test]
fn a_socket_handle_of_a_cleaned_up_client_is_refused() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let keeper = startup();
    let client = startup();
    let (st, orphaned) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    cleanup(client);
    assert_eq!(hostkernel::live().sockets, 0, "cleanup closed the socket left open");
    let bad = refused_at_every_irql(&[("a socket of a cleaned-up client (table kept)".into(), orphaned)]);
    assert!(bad.is_empty(), "{bad:#?}");

    // The last client's cleanup frees the table; a new client rebuilds it.
    cleanup(keeper);
    assert_eq!(safewsk::table_usage(), (0, 0), "the last cleanup freed the table");
    let client = startup();
    let (st, fresh) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let (o, f) = (orphaned as usize, fresh as usize);
    eprintln!("handle before the rebuild {o:#x}, after {f:#x}");
    assert_eq!(o & 0xFFFF, f & 0xFFFF, "the new socket has the old handle's slot");
    assert_ne!(o, f);
    let bad = refused_at_every_irql(&[("a socket from before the table was rebuilt".into(), orphaned)]);
    assert!(bad.is_empty(), "{bad:#?}");
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    let mut echo = [0u8; 5];
    assert_eq!(receive(fresh, &mut echo, 0, 100), (STATUS_IO_TIMEOUT, 0), "a stale send reached the new socket");
    assert_eq!(send(fresh, b"fresh"), (STATUS_SUCCESS, 5));
    assert_eq!(receive(fresh, &mut echo, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 5));
    assert_eq!(close(fresh), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Issue 17: SafeWskCloseSocket always consumes the handle. A second close
/// is STATUS_INVALID_PARAMETER_1 and the provider's WskCloseSocket runs once
/// (a second one of the same WSK_SOCKET is a violation the host kernel
/// records; and with every provider socket function failing meanwhile, a
/// second close that reached it would not return _1). The same while the
/// first close is still in progress (the provider pends it 500 ms): calls
/// and closes that begin after it are refused at once. And eight threads
/// closing one handle at once: one succeeds, seven are refused.
#[test]
fn double_close_is_parameter_1_and_the_provider_closes_once() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, bystander) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);

    // One after the other.
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(hostkernel::live().sockets, 2);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(hostkernel::live().sockets, 1);
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "second close");
    hostkernel::set_fail_without_completing(None);
    assert_eq!(hostkernel::live().sockets, 1, "the second close closed nothing");

    // While the first is in progress.
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    hostkernel::set_close_delay(Some(Duration::from_millis(500)));
    let s = Shared(socket);
    let t0 = Instant::now();
    let first = thread::spawn(move || {
        let s = s;
        (close(s.0), Instant::now())
    });
    thread::sleep(Duration::from_millis(50));
    assert!(!first.is_finished(), "the provider pends the close");
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "a close while the first is in progress");
    assert_eq!(send(socket, b"x").0, STATUS_INVALID_PARAMETER_1, "a send while the close is in progress");
    let (st, done) = first.join().expect("first close");
    assert_eq!(st, STATUS_SUCCESS);
    assert!(done - t0 >= Duration::from_millis(450), "the first close returned before the provider completed it");
    hostkernel::set_close_delay(None);

    // Eight at once.
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    hostkernel::set_close_delay(Some(Duration::from_millis(50)));
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let closers: Vec<_> = (0..8)
        .map(|_| {
            let (s, barrier) = (Shared(socket), barrier.clone());
            thread::spawn(move || {
                let s = s;
                barrier.wait();
                close(s.0)
            })
        })
        .collect();
    let mut statuses: Vec<NTSTATUS> = closers.into_iter().map(|t| t.join().expect("closer")).collect();
    statuses.sort();
    hostkernel::set_close_delay(None);
    let successes = statuses.iter().filter(|s| **s == STATUS_SUCCESS).count();
    let refusals = statuses.iter().filter(|s| **s == STATUS_INVALID_PARAMETER_1).count();
    assert_eq!((successes, refusals), (1, 7), "{statuses:x?}");

    assert_eq!(hostkernel::live().sockets, 1, "only the bystander is open");
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    assert_eq!(send(bystander, b"ok"), (STATUS_SUCCESS, 2));
    assert_eq!(close(bystander), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
