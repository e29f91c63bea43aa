//! The Rust sample driver (samples/rust_driver: the C sample's exchange
//! through `safewsk::net`), loaded and unloaded on the host kernel against
//! a real loopback server, with the same checks as the C sample's test:
//! every wait bounded, a watchdog against a hang, and `Session::finish`
//! (no leak, no contract violation) at the end of each test.

use std::time::Duration;

use harness::Watchdog;
use hostkernel::Session;

/// Far beyond what a run takes: only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn rust_sample_loads_exchanges_data_and_unloads_cleanly() {
    let _watchdog = Watchdog::arm("rust_sample_loads_exchanges_data_and_unloads_cleanly", LIMIT);
    let k = Session::begin();
    // Completion routines pause after signalling, so that the driver races
    // ahead to unload while they have not returned.
    hostkernel::set_delay_after_signal(Duration::from_millis(20));
    let (addr, server) = harness::pong_server();
    harness::configure_service(harness::RUST_SERVICE, addr);
    let report = harness::load_and_unload_rust();
    assert_eq!(report.driver_entry, 0, "DriverEntry failed: {:#?}", report.dbgprint);
    assert!(report.unloaded, "DriverUnload was not set or not called");
    let line = harness::join_within(server, Duration::from_secs(10));
    assert_eq!(line.as_deref(), Some("PING safewsk\r\n"), "{:#?}", report.dbgprint);
    let log = report.dbgprint.join("");
    assert!(log.contains(&format!("safewsk-rust-sample: connected to {addr}")), "{log}");
    assert!(log.contains("local address 127.0.0.1:"), "{log}");
    assert!(log.contains("sent 14 bytes, received 14 bytes: PONG safewsk"), "{log}");
    assert!(log.contains("exchange finished: 0x00000000"), "{log}");
    assert!(log.contains(&format!("localhost reached at 127.0.0.1:{}", addr.port())), "{log}");
    assert!(log.contains("exchange by name finished: 0x00000000"), "{log}");
    assert_eq!(log.matches("received 14 bytes: PONG safewsk").count(), 2, "{log}");
    assert!(log.contains("unloaded, Client::cleanup: 0x00000000"), "{log}");
    // Both sockets closed by the driver: no close failed, cleanup closed none.
    assert!(!log.contains("close failed"), "{log}");
    assert!(!log.contains("left open"), "{log}");
    k.finish();
}

#[test]
fn rust_sample_reports_a_refused_connect_and_unloads_cleanly() {
    let _watchdog = Watchdog::arm("rust_sample_reports_a_refused_connect_and_unloads_cleanly", LIMIT);
    let k = Session::begin();
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        match l.local_addr().expect("addr") {
            std::net::SocketAddr::V4(a) => a,
            std::net::SocketAddr::V6(_) => unreachable!(),
        }
    };
    harness::configure_service(harness::RUST_SERVICE, closed);
    let report = harness::load_and_unload_rust();
    assert_eq!(report.driver_entry, 0, "{:#?}", report.dbgprint);
    assert!(report.unloaded);
    let log = report.dbgprint.join("");
    assert!(log.contains("failed: STATUS_CONNECTION_REFUSED (0xC0000236)"), "{log}");
    assert!(log.contains("exchange finished: 0xC0000236"), "{log}");
    assert!(log.contains("exchange by name finished: 0xC0000236"), "{log}");
    assert!(log.contains("unloaded, Client::cleanup: 0x00000000"), "{log}");
    k.finish();
}

#[test]
fn rust_sample_without_parameters_fails_with_object_name_not_found() {
    let _watchdog = Watchdog::arm("rust_sample_without_parameters_fails_with_object_name_not_found", LIMIT);
    let k = Session::begin();
    hostkernel::registry_clear();
    let report = harness::load_and_unload_rust();
    assert_eq!(report.driver_entry as u32, 0xC000_0034);
    assert!(!report.unloaded);
    k.finish();
}
