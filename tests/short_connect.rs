//! Issue 18, item 6: SafeWskConnect, the short connect: the remote address,
//! the socket out, a timeout; the local wildcard of the remote's family; the
//! same as SafeWskSocketConnect with SOCK_STREAM, IPPROTO_TCP, that
//! wildcard, Flags 0 and no context, dispatch table, process, thread or
//! security descriptor (its parameter 5 is SafeWskConnect's 2, its 12 the
//! 3rd).

mod common;
mod issue18;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ptr;
use std::time::Duration;

use common::*;
use issue18::*;
use safewsk::nt::*;
use safewsk::*;

/// SafeWskConnect; (status, socket). The out variable starts as garbage to
/// show it is cleared on failure.
fn short(client: *mut SAFEWSK_CLIENT, remote: *const SOCKADDR, timeout_ms: u32) -> (NTSTATUS, *mut SAFEWSK_SOCKET) {
    let mut s = 0x1234usize as *mut SAFEWSK_SOCKET;
    // SAFETY: `remote` is NULL or a readable SOCKADDR_IN(6) (or what the test
    // means to pass); `s` is writable.
    let st = unsafe { SafeWskConnect(client, remote, &mut s, timeout_ms) };
    (st, s)
}

/// The local and remote addresses of a connected socket, from the library.
fn ends(s: *mut SAFEWSK_SOCKET) -> (SocketAddr, SocketAddr) {
    let decode = |b: &[u8; 28]| {
        let family = u16::from_ne_bytes([b[0], b[1]]);
        let port = u16::from_be_bytes([b[2], b[3]]);
        if family == AF_INET {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), port)
        } else {
            assert_eq!(family, AF_INET6);
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[8..24]);
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)
        }
    };
    let mut l = [0u8; 28];
    let mut r = [0u8; 28];
    // SAFETY: writable 28-byte buffers.
    assert_eq!(unsafe { SafeWskGetLocalAddress(s, l.as_mut_ptr().cast(), 28, 2000) }, STATUS_SUCCESS);
    // SAFETY: as above.
    assert_eq!(unsafe { SafeWskGetRemoteAddress(s, r.as_mut_ptr().cast(), 28, 2000) }, STATUS_SUCCESS);
    (decode(&l), decode(&r))
}

fn round_trip(s: *mut SAFEWSK_SOCKET) {
    assert_eq!(send(s, b"short"), (STATUS_SUCCESS, 5));
    let mut buf = [0u8; 5];
    assert_eq!(receive(s, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 5));
    assert_eq!(&buf, b"short");
}

#[test]
fn connects_over_ipv4_from_the_wildcard() {
    let k = Session::begin();
    let client = startup();
    let server = echo_server("127.0.0.1:0").expect("echo");
    let remote = Addr::from(server);
    let (st, s) = short(client, remote.ptr(), 2000);
    assert_eq!(st, STATUS_SUCCESS);
    round_trip(s);
    let (local, peer) = ends(s);
    println!("SafeWskConnect over IPv4: local {local}, remote {peer}");
    assert_eq!(peer, server);
    assert!(local.is_ipv4() && local.port() != 0, "the stack chose the local address and port");
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn connects_over_ipv6_from_the_wildcard() {
    if !ipv6_loopback_available() {
        println!("no IPv6 loopback here: skipped");
        return;
    }
    let k = Session::begin();
    let client = startup();
    let server = echo_server("[::1]:0").expect("echo");
    let remote = Addr::from(server);
    let (st, s) = short(client, remote.ptr(), 2000);
    assert_eq!(st, STATUS_SUCCESS);
    round_trip(s);
    let (local, peer) = ends(s);
    println!("SafeWskConnect over IPv6: local {local}, remote {peer}");
    assert_eq!(peer, server);
    assert!(local.is_ipv6() && local.port() != 0);
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Each bad parameter: _1 the client, _2 the remote address (NULL, no
/// port, not unicast — also IPv4-mapped —, a family that is not IPv4 or
/// IPv6, or one the provider's transport list lacks), _3 the socket out;
/// by position; the provider is never called and `*Socket` is NULL.
#[test]
fn each_bad_parameter_by_position() {
    let k = Session::begin();
    let client = startup();
    let good = Addr::parse("127.0.0.1:9");
    let before = hostkernel::provider_connect_calls();
    assert_eq!(short(ptr::null_mut(), good.ptr(), 100), (STATUS_INVALID_PARAMETER_1, ptr::null_mut()));
    assert_eq!(short(0xC5usize as *mut _, good.ptr(), 100), (STATUS_INVALID_PARAMETER_1, ptr::null_mut()), "forged");
    assert_eq!(short(ptr::null_mut(), ptr::null(), 100).0, STATUS_INVALID_PARAMETER_1, "_1 before _2");
    assert_eq!(short(client, ptr::null(), 100), (STATUS_INVALID_PARAMETER_2, ptr::null_mut()), "NULL remote");
    for bad in [
        "127.0.0.1:0",
        "0.0.0.0:80",
        "255.255.255.255:80",
        "224.0.0.1:80",
        "[::]:80",
        "[ff02::1]:80",
        "[::ffff:0.0.0.0]:80",
        "[::ffff:224.0.0.1]:80",
        "[::ffff:255.255.255.255]:80",
    ] {
        let a = Addr::parse(bad);
        assert_eq!(short(client, a.ptr(), 100), (STATUS_INVALID_PARAMETER_2, ptr::null_mut()), "{bad}");
    }
    let mut unix = Addr::parse("127.0.0.1:80");
    unix.0[0..2].copy_from_slice(&1u16.to_ne_bytes());
    assert_eq!(short(client, unix.ptr(), 100).0, STATUS_INVALID_PARAMETER_2, "AF_UNIX");
    // SAFETY: a valid address, a NULL out pointer (the parameter checked).
    let st = unsafe { SafeWskConnect(client, good.ptr(), ptr::null_mut(), 100) };
    assert_eq!(st, STATUS_INVALID_PARAMETER_3);
    let port0 = Addr::parse("127.0.0.1:0");
    // SAFETY: as above.
    let st = unsafe { SafeWskConnect(client, port0.ptr(), ptr::null_mut(), 100) };
    assert_eq!(st, STATUS_INVALID_PARAMETER_2, "_2 before _3");
    // IRQL after the parameters.
    let at_dispatch = hostkernel::with_irql(DISPATCH_LEVEL, || short(client, good.ptr(), 100).0);
    assert_eq!(at_dispatch, STATUS_INVALID_LEVEL);
    assert_eq!(hostkernel::provider_connect_calls(), before, "the provider was never called");
    cleanup(client);

    // A provider without IPv6 transports: an IPv6 remote is parameter 2
    // (SafeWskSocketConnect: 4, the local address's family).
    hostkernel::set_transport_list(Some(vec![(AF_INET, SOCK_STREAM, IPPROTO_TCP)]));
    let client = startup();
    let v6 = Addr::parse("[::1]:9");
    assert_eq!(short(client, v6.ptr(), 100).0, STATUS_INVALID_PARAMETER_2);
    let (st, _) = connect(client, "[::1]:9".parse().unwrap(), 100);
    assert_eq!(st, STATUS_INVALID_PARAMETER_4, "the long form's position for the same refusal");
    cleanup(client);
    hostkernel::set_transport_list(None);
    assert_eq!(short(client, good.ptr(), 100).0, STATUS_INVALID_PARAMETER_1, "a stale client");
    k.finish();
}

/// What one connect did: its status, whether it returned a socket, the
/// provider's WskSocketConnect calls and the allocations it made (IRPs,
/// pool, completion contexts), and the family of its local address.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    status: NTSTATUS,
    socket: bool,
    provider_calls: u64,
    irps: u64,
    pool: u64,
    contexts: u64,
    local_v4: Option<bool>,
}

fn outcome(run: impl FnOnce() -> (NTSTATUS, *mut SAFEWSK_SOCKET)) -> Outcome {
    let (a0, c0) = (hostkernel::allocations(), hostkernel::provider_connect_calls());
    let (status, s) = run();
    let (a1, c1) = (hostkernel::allocations(), hostkernel::provider_connect_calls());
    let local_v4 = (!s.is_null()).then(|| ends(s).0.is_ipv4());
    if !s.is_null() {
        assert_eq!(close(s), STATUS_SUCCESS);
    }
    Outcome {
        status,
        socket: !s.is_null(),
        provider_calls: c1 - c0,
        irps: a1.irps.0 - a0.irps.0,
        pool: a1.pool.0 - a0.pool.0,
        contexts: a1.completion_contexts.0 - a0.completion_contexts.0,
        local_v4,
    }
}

/// SafeWskConnect is SafeWskSocketConnect with the constants: for each
/// situation both give the same status, make the same provider calls and
/// allocations, and connect from the same family.
#[test]
fn the_same_as_safewsksocketconnect_with_the_constants() {
    let k = Session::begin();
    let client = startup();
    let server = echo_server("127.0.0.1:0").expect("echo");
    // A steady state: the table's chunk and a cached IRP exist.
    let (st, s) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(s), STATUS_SUCCESS);

    type Setup = Box<dyn Fn(&Session)>;
    let situations: Vec<(&str, SocketAddr, u32, Setup, Setup)> = vec![
        ("connected", server, 2000, Box::new(|_| {}), Box::new(|_| {})),
        ("refused", closed_port(), 2000, Box::new(|_| {}), Box::new(|_| {})),
        (
            "the provider's error",
            server,
            2000,
            Box::new(|_| hostkernel::set_connect_error(Some(STATUS_HOST_UNREACHABLE))),
            Box::new(|_| hostkernel::set_connect_error(None)),
        ),
        (
            "the deadline",
            server,
            100,
            Box::new(|_| hostkernel::set_connect_completion(ConnectCompletion::Never)),
            Box::new(|_| hostkernel::set_connect_completion(ConnectCompletion::Async)),
        ),
        (
            "returned without completing",
            server,
            2000,
            Box::new(|_| hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED))),
            Box::new(|_| hostkernel::set_fail_without_completing(None)),
        ),
        (
            "no completion context",
            server,
            2000,
            Box::new(|k| k.fail_nth(Site::CompletionContext, 1)),
            Box::new(|k| k.fail_nth(Site::CompletionContext, 0)),
        ),
        (
            "synchronous",
            server,
            0,
            Box::new(|_| hostkernel::set_connect_completion(ConnectCompletion::Sync)),
            Box::new(|_| hostkernel::set_connect_completion(ConnectCompletion::Async)),
        ),
    ];
    for (what, remote, timeout, setup, undo) in &situations {
        setup(&k);
        let long = outcome(|| connect(client, *remote, *timeout));
        undo(&k);
        setup(&k);
        let a = Addr::from(*remote);
        let short_form = outcome(|| short(client, a.ptr(), *timeout));
        undo(&k);
        println!("{what}: {long:?}");
        assert_eq!(short_form, long, "{what}: SafeWskConnect vs SafeWskSocketConnect");
    }

    // During cleanup both are refused with STATUS_DELETE_PENDING (an
    // asynchronous connect the provider completes after 500 ms keeps the
    // cleanup waiting meanwhile).
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(500)));
    let seen = std::sync::Arc::new(common::Seen::default());
    let mut req = request(&seen, 5000);
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    let c = ClientH::new(client);
    let cleaning = std::thread::spawn(move || {
        // SAFETY: a live client handle.
        unsafe { SafeWskCleanup(c.get()) }
    });
    std::thread::sleep(Duration::from_millis(150));
    let remote = Addr::from(server);
    assert_eq!(short(client, remote.ptr(), 100), (STATUS_DELETE_PENDING, ptr::null_mut()));
    assert_eq!(connect(client, server, 100).0, STATUS_DELETE_PENDING);
    let st = bounded("cleanup", Duration::from_secs(10), move || cleaning.join().expect("cleanup"));
    assert_eq!(st, STATUS_SUCCESS);
    drop(req);
    k.finish();
}
