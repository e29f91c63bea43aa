//! The C sample driver, compiled with the system C compiler, loaded and
//! unloaded on the host kernel against a real loopback server.
//!
//! No test can hang: every wait of the test is bounded (the server's accept
//! and reads, the join of its thread), and a watchdog ends the process with
//! a failure if a test is still running after [`LIMIT`] (a wait inside the
//! driver that never ends would otherwise hold the host kernel's session,
//! and every later test with it).

use std::time::Duration;

use harness::Watchdog;
use hostkernel::Session;

/// Far beyond what a run takes (the sample's calls have 5 s deadlines, and
/// it makes a handful of them): only a hang reaches it.
const LIMIT: Duration = Duration::from_secs(120);

#[test]
fn sample_driver_loads_exchanges_data_and_unloads_cleanly() {
    let _watchdog = Watchdog::arm("sample_driver_loads_exchanges_data_and_unloads_cleanly", LIMIT);
    let k = Session::begin();
    // Completion routines pause after signalling, so that the driver races
    // ahead to unload while they have not returned: the image must not go
    // away under them (IoSetCompletionRoutineEx keeps it).
    hostkernel::set_delay_after_signal(Duration::from_millis(20));
    let (addr, server) = harness::pong_server();
    harness::configure(addr);
    let report = harness::load_and_unload();
    assert_eq!(report.driver_entry, 0, "DriverEntry failed: {:#?}", report.dbgprint);
    assert!(report.unloaded, "DriverUnload was not set or not called");
    // The driver has unloaded: the server's first connection is long over.
    let line = harness::join_within(server, Duration::from_secs(10));
    assert_eq!(line.as_deref(), Some("PING safewsk\r\n"), "{:#?}", report.dbgprint);
    let log = report.dbgprint.join("");
    assert!(log.contains("sent 14 bytes, received 14 bytes: PONG safewsk"), "{log}");
    assert!(log.contains("SafeWskCleanup: 0x00000000"), "{log}");
    assert!(log.contains("exchange finished: 0x00000000"), "{log}");
    // SafeWskGetLocalAddress on the socket handle: the loopback
    // connection's local end.
    assert!(log.contains("local address 127.0.0.1:"), "{log}");
    // SafeWskConnectByName: "localhost" and the port as a service name,
    // resolved by the host kernel's WskGetAddressInfo (getaddrinfo).
    assert!(log.contains(&format!("localhost reached at 127.0.0.1:{}", addr.port())), "{log}");
    assert!(log.contains("exchange by name finished: 0x00000000"), "{log}");
    assert_eq!(log.matches("received 14 bytes: PONG safewsk").count(), 2, "{log}");
    // The sample closes both of its sockets itself: no close failed, and
    // cleanup found none left open.
    assert!(!log.contains("close failed"), "{log}");
    assert!(!log.contains("left open"), "{log}");
    k.finish();
}

/// DriverEntry no longer touches the network (it starts a worker thread), so
/// a refused connect is reported by the worker, and the driver still loads
/// and unloads cleanly.
#[test]
fn sample_driver_reports_a_refused_connect_and_unloads_cleanly() {
    let _watchdog = Watchdog::arm("sample_driver_reports_a_refused_connect_and_unloads_cleanly", LIMIT);
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
}

#[test]
fn sample_driver_without_parameters_fails_with_object_name_not_found() {
    let _watchdog = Watchdog::arm("sample_driver_without_parameters_fails_with_object_name_not_found", LIMIT);
    let k = Session::begin();
    hostkernel::registry_clear();
    let report = harness::load_and_unload();
    assert_eq!(report.driver_entry as u32, 0xC000_0034);
    k.finish();
}

/// The other side (issue 20): the sample's echo server on a listening
/// socket bound by name ("localhost" resolved with SafeWskResolveName,
/// SafeWskListen, SafeWskAccept), which the harness connects to, and its
/// UDP exchange with a harness datagram server (SafeWskDatagramSocket,
/// SafeWskSendTo, SafeWskReceiveFrom).
#[test]
fn sample_driver_runs_an_echo_server_and_a_udp_exchange() {
    let _watchdog = Watchdog::arm("sample_driver_runs_an_echo_server_and_a_udp_exchange", LIMIT);
    let k = Session::begin();
    let (addr, server) = harness::pong_server();
    let (udp, udp_server) = harness::udp_pong_server();
    let server_port = harness::free_port();
    harness::configure(addr);
    harness::configure_servers(server_port, udp.port());
    let client = harness::echo_client(server_port, b"ECHO safewsk, twice over\n");
    let report = harness::load_and_unload();
    assert_eq!(report.driver_entry, 0, "DriverEntry failed: {:#?}", report.dbgprint);
    assert!(report.unloaded);
    let log = report.dbgprint.join("");
    let echoed = harness::join_within(client, std::time::Duration::from_secs(10)).unwrap_or_default();
    assert_eq!(echoed, b"ECHO safewsk, twice over\n", "the echo server's reply: {log}");
    assert!(log.contains(&format!("echo server listening on 127.0.0.1:{server_port}")), "{log}");
    assert!(log.contains("echo server accepted a connection from 127.0.0.1:"), "{log}");
    assert!(log.contains("echo server echoed 25 bytes; status 0x00000000"), "{log}");
    assert!(log.contains("echo server finished: 0x00000000"), "{log}");
    let got = harness::join_within(udp_server, std::time::Duration::from_secs(10)).flatten();
    let (datagram, _) = got.expect("the UDP server got a datagram");
    assert_eq!(datagram, b"DGRAM safewsk");
    assert!(log.contains("udp: sent 13 bytes, received 12 bytes: PONG safewsk"), "{log}");
    assert!(log.contains(&format!("udp: the reply came from 127.0.0.1:{}", udp.port())), "{log}");
    assert!(log.contains("udp exchange finished: 0x00000000"), "{log}");
    assert!(!log.contains("close failed"), "{log}");
    assert!(log.contains("SafeWskCleanup: 0x00000000"), "{log}");
    drop(harness::join_within(server, std::time::Duration::from_secs(10)));
    k.finish();
}
