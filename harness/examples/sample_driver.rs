//! The main job, end to end on Linux: start a loopback TCP server, "load" the
//! C sample driver on the host kernel (it connects through safewsk, sends a
//! request, reads the reply and closes), unload it, and print what happened,
//! including the host kernel's leak and contract checks.
//!
//!     cargo run -p harness --example sample_driver [-- HOST:PORT]
//!
//! With HOST:PORT (an IPv4 loopback address) it connects there instead of
//! to its own server.

use std::net::SocketAddrV4;
use std::time::Duration;

fn main() {
    // A hang anywhere (the driver, the server) ends the run with a failure.
    let _watchdog = harness::Watchdog::arm("the sample driver example", Duration::from_secs(120));
    let session = hostkernel::Session::begin();
    let (target, server) = match std::env::args().nth(1) {
        Some(arg) => (arg.parse::<SocketAddrV4>().expect("HOST:PORT, IPv4"), None),
        None => {
            let (addr, handle) = harness::pong_server();
            println!("loopback server listening on {addr}");
            (addr, Some(handle))
        }
    };
    harness::configure(target);
    println!("loading the sample driver (TargetAddress={}, TargetPort={})", target.ip(), target.port());
    let report = harness::load_and_unload();
    println!("DriverEntry returned 0x{:08X}", report.driver_entry as u32);
    println!("DriverUnload called: {}", report.unloaded);
    if let Some(server) = server {
        let line = harness::join_within(server, Duration::from_secs(10));
        println!("server received: {:?}", line.unwrap_or_default());
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
    if report.driver_entry < 0 {
        std::process::exit(1);
    }
    println!("ok");
}
