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

/// Item 1. A close (and a disconnect) must work while SafeWskCleanup waits
/// for a call in progress: before the fix both returned STATUS_DELETE_PENDING
/// without calling the provider, the socket stayed open, and cleanup then
/// refused with STATUS_INVALID_DEVICE_STATE.
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

    // A receive in progress on `waiting` (its peer says nothing) keeps
    // cleanup waiting.
    let (c, s) = (Shared(client), Shared(waiting));
    let receiver = thread::spawn(move || {
        let (c, s) = (c, s);
        let mut buf = [0u8; 4];
        receive(s.0, &mut buf, 0, 3000).0
    });
    thread::sleep(Duration::from_millis(50));
    let c = Shared(client);
    let cleaner = thread::spawn(move || {
        let c = c;
        // SAFETY: a live client.
        unsafe { SafeWskCleanup(c.0) }
    });
    thread::sleep(Duration::from_millis(50));
    assert!(!cleaner.is_finished(), "cleanup must wait for the receive in progress");
    // While it waits: disconnect and close the other socket, then close the
    // one with the receive (which cancels the receive).
    // SAFETY: a live client and an open socket.
    assert_eq!(unsafe { SafeWskDisconnect(other, 0, 1000) }, STATUS_SUCCESS, "disconnect during cleanup");
    assert_eq!(close(other), STATUS_SUCCESS, "close must work while cleanup waits");
    assert!(!cleaner.is_finished());
    assert_eq!(close(waiting), STATUS_SUCCESS);
    assert_eq!(receiver.join().expect("receiver"), STATUS_CANCELLED, "the close cancels the pending receive");
    // Cleanup then finds nobody inside and no socket open.
    assert_eq!(cleaner.join().expect("cleanup"), STATUS_SUCCESS);
    drop(peer);
    k.finish();
}

/// Item 2. A second SafeWskCleanup while the first waits gets
/// STATUS_DELETE_PENDING and touches nothing. Before the fix it
/// re-initialized the event the first one was waiting on: the host kernel
/// reports the orphaned wait ("KeInitializeEvent on event ... while 1
/// thread(s) wait on it").
#[test]
fn a_second_cleanup_is_refused_and_does_not_strand_the_first() {
    let (server, accepted) = silent();
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let peer = accepted.join().expect("accept");
    let (c, s) = (Shared(client), Shared(socket));
    let receiver = thread::spawn(move || {
        let (c, s) = (c, s);
        let mut buf = [0u8; 4];
        receive(s.0, &mut buf, 0, 300).0
    });
    thread::sleep(Duration::from_millis(30));
    let c = Shared(client);
    let first = thread::spawn(move || {
        let c = c;
        let t0 = Instant::now();
        // SAFETY: a live client.
        (unsafe { SafeWskCleanup(c.0) }, t0.elapsed())
    });
    thread::sleep(Duration::from_millis(30));
    // SAFETY: a live client (the first cleanup has not freed it: a socket is
    // open).
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_DELETE_PENDING);
    assert_eq!(receiver.join().expect("receiver"), STATUS_IO_TIMEOUT);
    let (st, took) = first.join().expect("first cleanup");
    assert_eq!(st, STATUS_INVALID_DEVICE_STATE, "the socket is still open");
    assert!(took < Duration::from_millis(1500), "the first cleanup was stranded: {took:?}");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
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

    // Every socket call too; a refused close leaves the socket open.
    hostkernel::set_fail_without_completing(None);
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    let (c, s) = (Shared(client), Shared(socket));
    let statuses = within(Duration::from_secs(3), "the socket calls", move || {
        let (c, s) = (c, s);
        let mut buf = [0u8; 4];
        let sent = send(s.0, b"ping").0;
        let received = receive(s.0, &mut buf, 0, 200).0;
        // SAFETY: a live client and an open socket.
        let disconnected = unsafe { SafeWskDisconnect(s.0, 0, 200) };
        // SAFETY: a live client and an open socket (the refused disconnect
        // left it open); the refused close leaves it open for the retry below.
        let closed = unsafe { SafeWskCloseSocket(s.0) };
        [sent, received, disconnected, closed]
    });
    assert_eq!(statuses, [STATUS_NOT_IMPLEMENTED; 4]);
    // A success-class status without a completion is no success: the close
    // was not carried out, and says so (before: STATUS_SUCCESS with the
    // socket still open, and cleanup then refused for ever).
    hostkernel::set_fail_without_completing(Some(STATUS_SUCCESS));
    assert_eq!(close(socket), STATUS_UNSUCCESSFUL);
    hostkernel::set_fail_without_completing(None);
    assert_eq!(close(socket), STATUS_SUCCESS, "the refused close left the socket open: retry");
    cleanup(client);
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
    let (c, s) = (Shared(client), Shared(socket));
    let t0 = Instant::now();
    let st = within(Duration::from_secs(3), "SafeWskDisconnect", move || {
        let (c, s) = (c, s);
        // SAFETY: a live client and an open socket.
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

/// Item 12. Every socket call checks that the socket is open on this client:
/// a second close, a send after close, or another client's socket gets
/// STATUS_INVALID_PARAMETER_2 and the provider is never handed a freed
/// WSK_SOCKET — also while other sockets are open. Before the fix the second
/// close read the `Dispatch` pointer of the WSK_SOCKET the first close had
/// freed (the host kernel had poisoned it) and the test process died with
/// SIGSEGV inside SafeWskCloseSocket: on Windows, a bugcheck.
#[test]
fn calls_on_closed_or_foreign_sockets_are_refused_with_other_sockets_open() {
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

    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_2, "second close");
    assert_eq!(send(socket, b"x").0, STATUS_INVALID_PARAMETER_2, "send after close");
    let mut buf = [0u8; 1];
    assert_eq!(receive(socket, &mut buf, 0, 100).0, STATUS_INVALID_PARAMETER_2);
    // SAFETY: a live client; the socket pointer is not dereferenced.
    assert_eq!(unsafe { SafeWskDisconnect(socket, 0, 100) }, STATUS_INVALID_PARAMETER_2);
    assert_eq!(close(foreign), STATUS_INVALID_PARAMETER_2, "another client's socket");
    assert_eq!(send(foreign, b"x").0, STATUS_INVALID_PARAMETER_2);

    // The others still work.
    assert_eq!(send(keep, b"k"), (STATUS_SUCCESS, 1));
    assert_eq!(send(foreign, b"f"), (STATUS_SUCCESS, 1));
    assert_eq!(close(keep), STATUS_SUCCESS);
    assert_eq!(close(foreign), STATUS_SUCCESS);
    cleanup(client);
    cleanup(other);
    k.finish();
}

/// Cleanup with many sockets and closes racing it from several threads:
/// every close succeeds, and the last cleanup succeeds.
#[test]
fn closes_racing_a_cleanup_from_several_threads() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let sockets: Vec<_> = (0..16)
        .map(|_| {
            let (st, s) = connect(client, server, 2000);
            assert_eq!(st, STATUS_SUCCESS);
            Shared(s)
        })
        .collect();
    let closed = Arc::new(AtomicUsize::new(0));
    let c = Shared(client);
    let workers: Vec<_> = sockets
        .chunks(4)
        .map(|chunk| {
            let chunk = chunk.to_vec();
            let closed = closed.clone();
            thread::spawn(move || {
                let c = c;
                for s in chunk {
                    assert_eq!(close(s.0), STATUS_SUCCESS);
                    closed.fetch_add(1, Ordering::SeqCst);
                }
            })
        })
        .collect();
    // Cleanup may refuse while sockets remain; it never hangs or fails
    // otherwise, and succeeds once all are closed.
    loop {
        // SAFETY: a live client until this returns STATUS_SUCCESS.
        match unsafe { SafeWskCleanup(client) } {
            STATUS_SUCCESS => break,
            STATUS_INVALID_DEVICE_STATE => thread::sleep(Duration::from_millis(1)),
            other => panic!("cleanup: {other:#x}"),
        }
    }
    for w in workers {
        w.join().expect("worker");
    }
    assert_eq!(closed.load(Ordering::SeqCst), 16);
    let _ = TcpListener::bind("127.0.0.1:0");
    k.finish();
}
