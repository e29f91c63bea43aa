//! The main job, end to end on Linux: start a loopback TCP server, "load" the
//! C sample driver on the host kernel (it connects through safewsk, sends a
//! request, reads the reply and closes; then runs a small echo server on a
//! listening socket bound by name, which this program connects to, and a
//! UDP exchange with this program's datagram server), unload it, and print
//! what happened, including the host kernel's leak and contract checks;
//! then the same exchange for the Rust sample driver (samples/rust_driver,
//! through the safe Rust API `safewsk::net`), beside it.
//!
//!     cargo run -p harness --example sample_driver [-- HOST:PORT]
//!
//! With HOST:PORT (an IPv4 loopback address) both connect there instead of
//! to their own servers (and the C sample skips the echo server and the UDP
//! exchange).

use std::net::SocketAddrV4;
use std::time::Duration;

/// Loads one sample against its own pong server (or `fixed`), prints the
/// outcome and the host kernel's checks; false if DriverEntry failed.
fn run(name: &str, service: &str, fixed: Option<SocketAddrV4>, load: fn() -> harness::Report) -> bool {
    println!("== the {name} sample driver");
    let session = hostkernel::Session::begin();
    let (target, server) = match fixed {
        Some(addr) => (addr, None),
        None => {
            let (addr, handle) = harness::pong_server();
            println!("loopback server listening on {addr}");
            (addr, Some(handle))
        }
    };
    harness::configure_service(service, target);
    println!("loading the {name} sample driver (TargetAddress={}, TargetPort={})", target.ip(), target.port());
    // The other side of the network for the C sample: its echo server (this
    // program is its client) and a UDP exchange (this program answers).
    let others = (server.is_some() && service == harness::SERVICE).then(|| {
        let server_port = harness::free_port();
        let (udp, udp_server) = harness::udp_pong_server();
        harness::configure_servers(server_port, udp.port());
        println!("the sample's echo server will listen on localhost:{server_port}; UDP server on {udp}");
        (harness::echo_client(server_port, b"ECHO safewsk\n"), udp_server)
    });
    let report = load();
    for line in &report.dbgprint {
        print!("  {line}");
    }
    println!("DriverEntry returned 0x{:08X}", report.driver_entry as u32);
    println!("DriverUnload called: {}", report.unloaded);
    if let Some(server) = server {
        let line = harness::join_within(server, Duration::from_secs(10));
        println!("server received: {:?}", line.unwrap_or_default());
    }
    if let Some((echo, udp)) = others {
        let back = harness::join_within(echo, Duration::from_secs(10)).unwrap_or_default();
        println!("the sample's echo server sent back: {:?}", String::from_utf8_lossy(&back));
        match harness::join_within(udp, Duration::from_secs(10)).flatten() {
            Some((data, from)) => println!("UDP server received {:?} from {from}", String::from_utf8_lossy(&data)),
            None => println!("UDP server received nothing"),
        }
    }
    let live = hostkernel::live();
    println!(
        "host kernel after unload: {} IRPs, {} pool blocks, {} MDLs, {} sockets, {} registrations live; {} contract violations",
        live.irps,
        live.pool_blocks,
        live.mdls,
        live.sockets,
        live.registrations,
        hostkernel::violations().len()
    );
    session.finish();
    report.driver_entry >= 0
}

fn main() {
    // A hang anywhere (a driver, a server) ends the run with a failure.
    let _watchdog = harness::Watchdog::arm("the sample driver example", Duration::from_secs(120));
    let fixed = std::env::args().nth(1).map(|arg| arg.parse::<SocketAddrV4>().expect("HOST:PORT, IPv4"));
    let c = run("C", harness::SERVICE, fixed, harness::load_and_unload);
    let rust = run("Rust", harness::RUST_SERVICE, fixed, harness::load_and_unload_rust);
    if !(c && rust) {
        std::process::exit(1);
    }
    println!("ok");
}
