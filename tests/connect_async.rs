//! SafeWskSocketConnectAsync / SafeWskCancelConnect on the host kernel.

mod common;

use std::ptr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use safewsk::nt::*;
use safewsk::*;

#[test]
fn async_connect_calls_back_once_with_a_working_socket() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 2000);
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    let calls = seen.wait(1, Duration::from_secs(5));
    assert_eq!(calls.len(), 1);
    let (status, socket, irql, _) = calls[0];
    assert_eq!(status, STATUS_SUCCESS);
    assert!(irql <= DISPATCH_LEVEL);
    let socket = socket as *mut SAFEWSK_SOCKET;
    assert_eq!(send(socket, b"async"), (STATUS_SUCCESS, 5));
    let mut buf = [0u8; 5];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 5));
    assert_eq!(&buf, b"async");
    assert_eq!(close(socket), STATUS_SUCCESS);
    // SAFETY: the request finished; its storage is intact.
    assert_eq!(unsafe { SafeWskCancelConnect(&mut *req) }, STATUS_NOT_FOUND);
    cleanup(client);
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(seen.calls.lock().unwrap().len(), 1, "callback called more than once");
    k.finish();
}

#[test]
fn async_connect_times_out_through_the_timer_dpc() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 120);
    let t0 = Instant::now();
    assert_eq!(start(client, closed_port(), &mut req), STATUS_PENDING);
    let calls = seen.wait(1, Duration::from_secs(5));
    let took = calls[0].3 - t0;
    eprintln!("async timeout 120 ms: callback after {took:?}");
    assert_eq!((calls[0].0, calls[0].1), (STATUS_IO_TIMEOUT, 0));
    assert!(took >= Duration::from_millis(120) && took < Duration::from_millis(1000), "{took:?}");
    cleanup(client);
    k.finish();
}

#[test]
fn explicit_cancel_calls_back_with_status_cancelled() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, SAFEWSK_NO_TIMEOUT);
    assert_eq!(start(client, closed_port(), &mut req), STATUS_PENDING);
    std::thread::sleep(Duration::from_millis(20));
    assert!(seen.calls.lock().unwrap().is_empty());
    // Cancel works at DISPATCH_LEVEL too.
    // SAFETY: a pending request.
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || unsafe { SafeWskCancelConnect(&mut *req) });
    assert_eq!(st, STATUS_SUCCESS);
    let calls = seen.wait(1, Duration::from_secs(5));
    assert_eq!((calls[0].0, calls[0].1), (STATUS_CANCELLED, 0));
    cleanup(client);
    k.finish();
}

#[test]
fn synchronous_provider_completion_calls_back_before_returning() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Sync);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 1000);
    assert_eq!(start(client, closed_port(), &mut req), STATUS_PENDING);
    let calls = seen.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "inline completion must call back before returning");
    assert_eq!(calls[0].0, STATUS_CONNECTION_REFUSED);
    cleanup(client);
    k.finish();
}

#[test]
fn async_connect_can_be_issued_at_dispatch_level() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 2000);
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || start(client, server, &mut req));
    assert_eq!(st, STATUS_PENDING);
    let calls = seen.wait(1, Duration::from_secs(5));
    assert_eq!(calls[0].0, STATUS_SUCCESS);
    assert_eq!(close(calls[0].1 as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn bad_request_storage_is_parameter_12_and_never_calls_back() {
    let k = Session::begin();
    let client = startup();
    let seen = Arc::new(Seen::default());
    let target = closed_port();
    let mut no_callback = request(&seen, 100);
    no_callback.Callback = None;
    let mut reserved = request(&seen, 100);
    reserved.Reserved = 1;
    assert_eq!(start(client, target, &mut no_callback), STATUS_INVALID_PARAMETER_12);
    assert_eq!(start(client, target, &mut reserved), STATUS_INVALID_PARAMETER_12);
    let local = Addr::parse("0.0.0.0:0");
    let remote = Addr::from(target);
    let st = start_async(client, &local, &remote, ptr::null_mut());
    assert_eq!(st, STATUS_INVALID_PARAMETER_12);
    let mut ok = request(&seen, 100);
    let bad_remote: std::net::SocketAddr = "0.0.0.0:80".parse().unwrap();
    assert_eq!(start(client, bad_remote, &mut ok), STATUS_INVALID_PARAMETER_5);
    // SAFETY: NULL is rejected.
    assert_eq!(unsafe { SafeWskCancelConnect(ptr::null_mut()) }, STATUS_INVALID_PARAMETER_1);
    k.fail_nth(Site::Irp, 1);
    assert_eq!(start(client, target, &mut ok), STATUS_INSUFFICIENT_RESOURCES);
    assert_eq!(hostkernel::provider_connect_calls(), 0);
    std::thread::sleep(Duration::from_millis(20));
    assert!(seen.calls.lock().unwrap().is_empty(), "a rejected request must not call back");
    cleanup(client);
    k.finish();
}

#[test]
fn cleanup_waits_for_in_flight_requests_and_refuses_new_ones() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 250);
    let t0 = Instant::now();
    assert_eq!(start(client, closed_port(), &mut req), STATUS_PENDING);
    let c = client as usize;
    let cleaner = std::thread::spawn(move || {
        // SAFETY: a live client; the test makes no other call concurrently
        // except the connect below, which must be refused.
        let st = unsafe { SafeWskCleanup(c as *mut SAFEWSK_CLIENT) };
        (st, Instant::now())
    });
    std::thread::sleep(Duration::from_millis(60));
    let mut late = request(&seen, 100);
    assert_eq!(start(client, closed_port(), &mut late), STATUS_DELETE_PENDING);
    let (st, done) = cleaner.join().unwrap();
    assert_eq!(st, STATUS_SUCCESS);
    let calls = seen.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert!(calls[0].3 <= done, "cleanup returned before the callback");
    assert!(done - t0 >= Duration::from_millis(250));
    k.finish();
}

/// Issue 17: the first connect of a fresh socket table allocates the table's
/// chunk (one pool block for 64 slots) and the slot's IRP; the I/O manager
/// adds its IoSetCompletionRoutineEx context. After a connect and a close
/// the chunk stays and the IRP waits in the table's cache, so the next
/// asynchronous connect allocates nothing of safewsk's own: only the
/// completion context.
#[test]
fn an_async_connect_allocates_a_table_chunk_and_an_irp_once_then_only_its_completion_context() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(100)));
    let client = startup();
    assert_eq!(safewsk::table_usage(), (0, 0), "a fresh table");
    let before = hostkernel::live();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 2000);
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    let during = hostkernel::live();
    assert_eq!(during.pool_blocks, before.pool_blocks + 2, "the table's chunk + the completion context");
    assert_eq!(during.irps, before.irps + 1, "exactly one IRP per request");
    assert_eq!(safewsk::table_usage(), (1, 0), "one chunk installed; its IRP is in use");
    let calls = seen.wait(1, Duration::from_secs(5));
    assert_eq!(calls[0].0, STATUS_SUCCESS);
    assert_eq!(close(calls[0].1 as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    assert_eq!(safewsk::table_usage(), (1, 1), "the chunk stays; the IRP is cached for the next connect");

    // The steady state: nothing of safewsk's own.
    let before = hostkernel::live();
    let allocated = hostkernel::allocations();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 2000);
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    let during = hostkernel::live();
    assert_eq!(during.pool_blocks, before.pool_blocks + 1, "only the completion context");
    assert_eq!(during.irps, before.irps, "the cached IRP is reused");
    assert_eq!(hostkernel::allocations().irps.0, allocated.irps.0, "no IRP allocated");
    assert_eq!(safewsk::table_usage(), (1, 0));
    let calls = seen.wait(1, Duration::from_secs(5));
    assert_eq!(calls[0].0, STATUS_SUCCESS);
    assert_eq!(close(calls[0].1 as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    cleanup(client);
    assert_eq!(safewsk::table_usage(), (0, 0), "the last cleanup frees the table");
    k.finish();
}

/// The provider may read the addresses until the IRP completes (the host
/// provider reads them again when the connect starts). The caller's buffers
/// are poisoned as soon as the call returns: the request's own copies must
/// be what the provider reads.
#[test]
fn caller_address_buffers_may_die_when_the_call_returns() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(50)));
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 3000);
    let mut local = Addr::wildcard_like(server);
    let mut remote = Addr::from(server);
    assert_eq!(start_async(client, &local, &remote, &mut *req), STATUS_PENDING);
    // Volatile so that the writes are not optimized out.
    // SAFETY: `&mut local` is a valid, aligned pointer to our own local.
    unsafe { std::ptr::write_volatile(&mut local, Addr([0xEE; 28])) };
    // SAFETY: `&mut remote` is a valid, aligned pointer to our own local.
    unsafe { std::ptr::write_volatile(&mut remote, Addr([0xEE; 28])) };
    let calls = seen.wait(1, Duration::from_secs(5));
    assert_eq!(calls[0].0, STATUS_SUCCESS, "connected with the request's copies");
    assert_eq!(close(calls[0].1 as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Issue 17 (a surviving mutant): an async connect cancelled by the caller
/// and then past its deadline before the provider completes must report
/// STATUS_CANCELLED (the caller asked first), not STATUS_IO_TIMEOUT. The
/// provider holds the cancellation (`CancelBehaviour::Held`) until the
/// deadline's DPC has run (`expire_timers` makes the 60 s deadline pass at
/// once), then completes the IRP with STATUS_CANCELLED.
#[test]
fn cancelled_then_past_the_deadline_reports_cancelled() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    hostkernel::set_cancel_behaviour(hostkernel::CancelBehaviour::Held);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 60_000);
    assert_eq!(start(client, closed_port(), &mut req), STATUS_PENDING);
    assert_eq!(cancel_connect(&mut req), STATUS_SUCCESS);
    assert_eq!(hostkernel::expire_timers(), 1, "the request's deadline timer");
    wait_until("the deadline DPC", || hostkernel::timer_counts().dpcs_returned == 1);
    assert!(seen.calls.lock().unwrap().is_empty(), "no callback before the IRP completes");
    assert_eq!(hostkernel::release_held_cancels(), 1);
    let calls = seen.wait(1, LONG);
    eprintln!("cancelled, then the deadline, then completion: callback status {:#x}", calls[0].0);
    assert_eq!((calls[0].0, calls[0].1), (STATUS_CANCELLED, 0));
    cleanup(client);
    k.finish();
}

/// Issue 17 (a surviving mutant): a second SafeWskCancelConnect must not
/// clear the first one's mark. It returns STATUS_SUCCESS again (the IRP has
/// not completed: cancellation is requested again, IoCancelIrp called again,
/// harmless), and the callback still reports STATUS_CANCELLED after the
/// deadline passed too.
#[test]
fn a_second_cancel_keeps_the_request_cancelled() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    hostkernel::set_cancel_behaviour(hostkernel::CancelBehaviour::Held);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 60_000);
    assert_eq!(start(client, closed_port(), &mut req), STATUS_PENDING);
    assert_eq!(cancel_connect(&mut req), STATUS_SUCCESS);
    let second = cancel_connect(&mut req);
    eprintln!("second SafeWskCancelConnect: {second:#x}");
    assert_eq!(second, STATUS_SUCCESS, "the IRP has not completed: cancellation requested again");
    assert_eq!(hostkernel::expire_timers(), 1);
    wait_until("the deadline DPC", || hostkernel::timer_counts().dpcs_returned == 1);
    assert_eq!(hostkernel::release_held_cancels(), 1);
    let calls = seen.wait(1, LONG);
    assert_eq!((calls[0].0, calls[0].1), (STATUS_CANCELLED, 0));
    assert_eq!(cancel_connect(&mut req), STATUS_NOT_FOUND, "finished: nothing left to cancel");
    cleanup(client);
    k.finish();
}

/// Issue 17 (an untested mutant): an IRP that completed before the deadline
/// could be armed (the provider completes the connect inside
/// WskSocketConnect) must never arm the deadline timer: no KeSetTimer at
/// all. The counter counts: a connect still pending arms its timer once.
#[test]
fn a_completed_irp_never_arms_the_deadline_timer() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Sync);
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 1000);
    assert_eq!(start(client, closed_port(), &mut req), STATUS_PENDING);
    assert_eq!(seen.calls.lock().unwrap().len(), 1, "completed inline, called back before returning");
    assert_eq!(hostkernel::timer_counts().set, 0, "KeSetTimer for a request whose IRP had completed");
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let pending = Arc::new(Seen::default());
    let mut req2 = request(&pending, 60_000);
    assert_eq!(start(client, closed_port(), &mut req2), STATUS_PENDING);
    assert_eq!(hostkernel::timer_counts().set, 1, "a pending connect arms its deadline");
    assert_eq!(cancel_connect(&mut req2), STATUS_SUCCESS);
    assert_eq!(pending.wait(1, LONG)[0].0, STATUS_CANCELLED);
    cleanup(client);
    k.finish();
}

/// Issue 17: the callee owns the socket the callback hands out and may leave
/// it to SafeWskCleanup. A connect that succeeds while cleanup waits for it
/// calls back with a working handle; cleanup then closes that socket (the
/// driver never did), and the handle is refused afterwards.
#[test]
fn a_socket_handed_to_the_callback_during_cleanup_is_closed_by_cleanup() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(150)));
    let client = startup();
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, 3000);
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    let _ = hostkernel::take_dbgprint_log();
    // SAFETY: a live client; the request's storage and context outlive the
    // callback, which cleanup waits for.
    assert_eq!(unsafe { SafeWskCleanup(client) }, STATUS_SUCCESS);
    let calls = seen.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1, "cleanup returned after the callback");
    assert_eq!(calls[0].0, STATUS_SUCCESS, "a connect in flight when cleanup began still completes");
    let socket = calls[0].1 as *mut SAFEWSK_SOCKET;
    assert!(!socket.is_null());
    assert_eq!(hostkernel::live().sockets, 0, "cleanup closed the socket the driver left open");
    let log = hostkernel::take_dbgprint_log();
    assert!(log.iter().any(|l| l.contains("SafeWskCleanup: closing socket")), "{log:?}");
    assert_eq!(send(socket, b"x").0, STATUS_INVALID_PARAMETER_1, "the handle died with its client");
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1);
    k.finish();
}
