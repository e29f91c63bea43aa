//! The C sample driver, compiled with the system C compiler, loaded and
//! unloaded on the host kernel against a real loopback server.
//!
//! Every test here waits: for DriverEntry's worker thread (DriverUnload
//! waits for it), for the library's calls and its cleanup, for the loopback
//! server. A library that hangs (a wait that never ends, a cleanup that
//! never drains) would hang `cargo test` for ever, so each test runs under a
//! watchdog ([`bounded`]): still running after [`watchdog`] (60 s, or
//! `SAFEWSK_TEST_WATCHDOG_SECS`), it fails with what the driver printed so
//! far. The hung thread cannot be stopped: it keeps the host kernel's
//! session, so the tests after it fail by their watchdogs too (each after
//! its own limit), and the run ends.

use std::sync::mpsc::{channel, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use hostkernel::Session;

/// How long a test may run: generous (a normal run takes well under a
/// second, a loaded machine a few), never for ever.
fn watchdog() -> Duration {
    let secs = std::env::var("SAFEWSK_TEST_WATCHDOG_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    Duration::from_secs(secs)
}

/// Runs `test` on a thread of its own and fails if it has not finished
/// within [`watchdog`] (a panic in it fails the test as usual).
fn bounded(name: &str, test: impl FnOnce() + Send + 'static) {
    let limit = watchdog();
    let (done, finished) = channel();
    let h = thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || {
            test();
            let _ = done.send(());
        })
        .expect("spawn the test thread");
    match finished.recv_timeout(limit) {
        Ok(()) => h.join().expect("test thread"),
        Err(RecvTimeoutError::Disconnected) => match h.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("the test thread ended without reporting"),
        },
        Err(RecvTimeoutError::Timeout) => panic!(
            "{name}: still running after {limit:?}: the library (or the sample) hangs. DbgPrint so far:\n{}",
            hostkernel::take_dbgprint_log().join("")
        ),
    }
}

#[test]
fn sample_driver_loads_exchanges_data_and_unloads_cleanly() {
    bounded("sample_driver_loads_exchanges_data_and_unloads_cleanly", || {
        let k = Session::begin();
        // Completion routines pause after signalling, so that the driver races
        // ahead to unload while they have not returned: the image must not go
        // away under them (IoSetCompletionRoutineEx keeps it).
        hostkernel::set_delay_after_signal(std::time::Duration::from_millis(20));
        let (addr, server) = harness::pong_server();
        harness::configure(addr);
        let report = harness::load_and_unload();
        assert_eq!(report.driver_entry, 0, "DriverEntry failed: {:#?}", report.dbgprint);
        assert!(report.unloaded, "DriverUnload was not set or not called");
        assert_eq!(server.join().expect("server"), "PING safewsk\r\n");
        let log = report.dbgprint.join("");
        assert!(log.contains("sent 14 bytes, received 14 bytes: PONG safewsk"), "{log}");
        assert!(log.contains("SafeWskCleanup: 0x00000000"), "{log}");
        assert!(log.contains("exchange finished: 0x00000000"), "{log}");
        // SafeWskGetLocalAddress: the loopback connection's local end.
        assert!(log.contains("local address 127.0.0.1:"), "{log}");
        // SafeWskConnectByName: "localhost" and the port as a service name,
        // resolved by the host kernel's WskGetAddressInfo (getaddrinfo).
        assert!(log.contains(&format!("localhost reached at 127.0.0.1:{}", addr.port())), "{log}");
        assert!(log.contains("exchange by name finished: 0x00000000"), "{log}");
        assert_eq!(log.matches("received 14 bytes: PONG safewsk").count(), 2, "{log}");
        k.finish();
    });
}

/// DriverEntry no longer touches the network (it starts a worker thread), so
/// a refused connect is reported by the worker, and the driver still loads
/// and unloads cleanly.
#[test]
fn sample_driver_reports_a_refused_connect_and_unloads_cleanly() {
    bounded("sample_driver_reports_a_refused_connect_and_unloads_cleanly", || {
        let k = Session::begin();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            match l.local_addr().expect("addr") {
                std::net::SocketAddr::V4(a) => a,
                std::net::SocketAddr::V6(_) => unreachable!(),
            }
        };
        harness::configure(closed);
        let report = harness::load_and_unload();
        assert_eq!(report.driver_entry, 0, "{:#?}", report.dbgprint);
        assert!(report.unloaded);
        let log = report.dbgprint.join("");
        assert!(log.contains("exchange finished: 0xC0000236"), "STATUS_CONNECTION_REFUSED expected: {log}");
        assert!(log.contains("exchange by name finished: 0xC0000236"), "by name too: {log}");
        assert!(log.contains("SafeWskCleanup: 0x00000000"), "{log}");
        k.finish(); // nothing registered, allocated or open after unload
    });
}

#[test]
fn sample_driver_without_parameters_fails_with_object_name_not_found() {
    bounded("sample_driver_without_parameters_fails_with_object_name_not_found", || {
        let k = Session::begin();
        hostkernel::registry_clear();
        let report = harness::load_and_unload();
        assert_eq!(report.driver_entry as u32, 0xC000_0034);
        k.finish();
    });
}
