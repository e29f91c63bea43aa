//! Issue 10, item 2: SafeWskSocketConnectWithOptions — WskSocket, then
//! WskControlSocket(WskSetOption) per option, then WskBind, then WskConnect,
//! under one deadline, the half-made socket closed on every failure.
//!
//! Options are checked from the Linux side (getsockopt on the host socket
//! behind the WSK socket, `hostkernel::socket_fd`; the WSK socket behind a
//! handle is found through the host, `wsk_socket_of`). Every test ends with
//! `Session::finish` (zero leaked IRPs, pool, sockets; no violation).

mod common;

use std::net::SocketAddr;
use std::ptr;
use std::time::{Duration, Instant};

use common::*;
use hostkernel::{CallFault, WskCall};
use safewsk::nt::*;
use safewsk::*;

fn opts(mask: u32) -> SAFEWSK_SOCKET_OPTIONS {
    SAFEWSK_SOCKET_OPTIONS {
        Size: std::mem::size_of::<SAFEWSK_SOCKET_OPTIONS>() as u32,
        Mask: mask,
        ..Default::default()
    }
}

/// Keep-alive on, a 64 KiB receive buffer, SO_REUSEADDR on.
fn three_options() -> SAFEWSK_SOCKET_OPTIONS {
    SAFEWSK_SOCKET_OPTIONS {
        KeepAlive: 1,
        ReceiveBufferSize: 65536,
        ReuseAddress: 1,
        ..opts(SAFEWSK_OPTION_KEEPALIVE | SAFEWSK_OPTION_RCVBUF | SAFEWSK_OPTION_REUSEADDR)
    }
}

/// Every option, with exclusive use instead of reuse (they exclude each
/// other): four WskControlSocket calls.
fn four_options() -> SAFEWSK_SOCKET_OPTIONS {
    SAFEWSK_SOCKET_OPTIONS {
        ExclusiveAddressUse: 1,
        ReuseAddress: 0,
        KeepAlive: 1,
        ReceiveBufferSize: 32768,
        ..opts(ALL)
    }
}

const ALL: u32 =
    SAFEWSK_OPTION_EXCLUSIVEADDRUSE | SAFEWSK_OPTION_REUSEADDR | SAFEWSK_OPTION_KEEPALIVE | SAFEWSK_OPTION_RCVBUF;

fn connect_opts(
    client: *mut SAFEWSK_CLIENT,
    remote: SocketAddr,
    options: Option<&SAFEWSK_SOCKET_OPTIONS>,
    timeout_ms: u32,
) -> (NTSTATUS, *mut SAFEWSK_SOCKET) {
    let local = Addr::wildcard_like(remote);
    let remote = Addr::from(remote);
    let mut socket = 0x1 as *mut SAFEWSK_SOCKET; // must be overwritten
    let o = options.map_or(ptr::null(), |o| o as *const SAFEWSK_SOCKET_OPTIONS);
    // SAFETY: valid addresses, options and out pointer for the call.
    let st = unsafe {
        SafeWskSocketConnectWithOptions(
            client,
            local.ptr(),
            remote.ptr(),
            o,
            ptr::null_mut(),
            ptr::null(),
            &mut socket,
            timeout_ms,
        )
    };
    (st, socket)
}

fn getsockopt_int(fd: i32, name: i32) -> i32 {
    let mut v: i32 = -1;
    let mut len = 4u32;
    // SAFETY: a writable int and its size.
    let rc = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, name, (&mut v as *mut i32).cast(), &mut len) };
    assert_eq!(rc, 0, "getsockopt({name})");
    v
}

/// The provider's WSK_SOCKET behind a socket handle. A driver never sees it
/// (the handle is opaque and the WSK_SOCKET stays the library's); a test
/// that inspects the host socket finds it through the host kernel: the open
/// WSK socket whose Linux socket has the handle's local port.
fn wsk_socket_of(socket: *mut SAFEWSK_SOCKET) -> *mut WSK_SOCKET {
    let mut b = [0u8; 28];
    // SAFETY: a 28-byte writable buffer; any handle value is safe.
    let st = unsafe { SafeWskGetLocalAddress(socket, b.as_mut_ptr().cast(), 28, 2000) };
    assert_eq!(st, STATUS_SUCCESS, "the handle names an open socket");
    let port = u16::from_be_bytes([b[2], b[3]]);
    let local_port = |fd: i32| {
        // SAFETY: sockaddr_storage is plain bytes: all zero is a valid value.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: a valid descriptor and a sockaddr_storage-sized buffer.
        let rc = unsafe { libc::getsockname(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) };
        assert_eq!(rc, 0, "getsockname");
        // sin_port and sin6_port are both at offset 2, in network order.
        // SAFETY: at least 4 bytes of `ss` were written (any family).
        let bytes = unsafe { std::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), 4) };
        u16::from_be_bytes([bytes[2], bytes[3]])
    };
    let found: Vec<usize> = hostkernel::wsk::open_sockets()
        .into_iter()
        .filter(|&s| hostkernel::socket_fd(s as PVOID).is_some_and(|fd| local_port(fd) == port))
        .collect();
    assert_eq!(found.len(), 1, "one open WSK socket on local port {port}");
    found[0] as *mut WSK_SOCKET
}

fn round_trip(socket: *mut SAFEWSK_SOCKET) {
    assert_eq!(send(socket, b"options!"), (STATUS_SUCCESS, 8));
    let mut buf = [0u8; 8];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 8));
    assert_eq!(&buf, b"options!");
}

#[test]
fn each_option_is_in_effect_on_the_linux_socket_and_bytes_round_trip() {
    let mut binds = vec!["127.0.0.1:0"];
    if ipv6_loopback_available() {
        binds.push("[::1]:0");
    }
    for bind in binds {
        let server = echo_server(bind).expect("server");
        let k = Session::begin();
        let client = startup();

        // No options: the defaults (keep-alive off).
        let (st, socket) = connect_opts(client, server, None, 2000);
        assert_eq!(st, STATUS_SUCCESS, "{bind}: no options");
        let fd = hostkernel::socket_fd(wsk_socket_of(socket).cast()).expect("a host socket");
        assert_eq!(getsockopt_int(fd, libc::SO_KEEPALIVE), 0);
        assert_eq!(getsockopt_int(fd, libc::SO_REUSEADDR), 0);
        round_trip(socket);
        assert_eq!(close(socket), STATUS_SUCCESS);

        let o = three_options();
        let (st, socket) = connect_opts(client, server, Some(&o), 2000);
        assert_eq!(st, STATUS_SUCCESS, "{bind}: three options");
        let fd = hostkernel::socket_fd(wsk_socket_of(socket).cast()).expect("a host socket");
        assert_eq!(getsockopt_int(fd, libc::SO_KEEPALIVE), 1, "SO_KEEPALIVE");
        assert_eq!(getsockopt_int(fd, libc::SO_REUSEADDR), 1, "SO_REUSEADDR");
        // Linux doubles the value it is given (socket(7)).
        assert!(getsockopt_int(fd, libc::SO_RCVBUF) >= 65536, "SO_RCVBUF");
        assert_eq!(hostkernel::wsk_control::socket_exclusive(wsk_socket_of(socket).cast()), Some(false));
        round_trip(socket);
        assert_eq!(close(socket), STATUS_SUCCESS);

        let o = four_options();
        let (st, socket) = connect_opts(client, server, Some(&o), 2000);
        assert_eq!(st, STATUS_SUCCESS, "{bind}: four options");
        let fd = hostkernel::socket_fd(wsk_socket_of(socket).cast()).expect("a host socket");
        assert_eq!(
            hostkernel::wsk_control::socket_exclusive(wsk_socket_of(socket).cast()),
            Some(true),
            "SO_EXCLUSIVEADDRUSE"
        );
        assert_eq!(getsockopt_int(fd, libc::SO_REUSEADDR), 0);
        assert_eq!(getsockopt_int(fd, libc::SO_KEEPALIVE), 1);
        assert!(getsockopt_int(fd, libc::SO_RCVBUF) >= 32768);
        round_trip(socket);
        assert_eq!(close(socket), STATUS_SUCCESS);

        cleanup(client);
        k.finish();
    }
}

#[test]
fn the_local_address_is_bound_after_the_options() {
    // A specific local port: the bind really uses LocalAddress.
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let port = closed_port().port();
    let local = Addr::parse(&format!("127.0.0.1:{port}"));
    let remote = Addr::from(server);
    let o = three_options();
    let mut socket = ptr::null_mut();
    // SAFETY: valid addresses, options and out pointer.
    let st = unsafe {
        SafeWskSocketConnectWithOptions(
            client,
            local.ptr(),
            remote.ptr(),
            &o,
            ptr::null_mut(),
            ptr::null(),
            &mut socket,
            2000,
        )
    };
    assert_eq!(st, STATUS_SUCCESS);
    let mut b = [0u8; 28];
    // SAFETY: a 28-byte buffer.
    let st = unsafe { SafeWskGetLocalAddress(socket, b.as_mut_ptr().cast(), 28, 2000) };
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(u16::from_be_bytes([b[2], b[3]]), port, "bound to the LocalAddress given");
    round_trip(socket);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn an_invalid_options_structure_is_parameter_4_and_nothing_reaches_the_provider() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let bad: Vec<(&str, SAFEWSK_SOCKET_OPTIONS)> = vec![
        ("Size 0", SAFEWSK_SOCKET_OPTIONS { Size: 0, ..opts(0) }),
        ("Size 20 (an older, smaller structure)", SAFEWSK_SOCKET_OPTIONS { Size: 20, ..opts(0) }),
        ("Size 28", SAFEWSK_SOCKET_OPTIONS { Size: 28, ..opts(0) }),
        ("unknown Mask bit", opts(0x10)),
        ("KeepAlive 2", SAFEWSK_SOCKET_OPTIONS { KeepAlive: 2, ..opts(SAFEWSK_OPTION_KEEPALIVE) }),
        ("ReuseAddress 7", SAFEWSK_SOCKET_OPTIONS { ReuseAddress: 7, ..opts(SAFEWSK_OPTION_REUSEADDR) }),
        (
            "ExclusiveAddressUse 2",
            SAFEWSK_SOCKET_OPTIONS { ExclusiveAddressUse: 2, ..opts(SAFEWSK_OPTION_EXCLUSIVEADDRUSE) },
        ),
        ("ReceiveBufferSize 0", opts(SAFEWSK_OPTION_RCVBUF)),
        (
            "ReceiveBufferSize above 0x7FFFFFFF",
            SAFEWSK_SOCKET_OPTIONS { ReceiveBufferSize: 0x8000_0000, ..opts(SAFEWSK_OPTION_RCVBUF) },
        ),
        ("KeepAlive set without its bit", SAFEWSK_SOCKET_OPTIONS { KeepAlive: 1, ..opts(0) }),
        ("ReceiveBufferSize set without its bit", SAFEWSK_SOCKET_OPTIONS { ReceiveBufferSize: 4096, ..opts(0) }),
        (
            "exclusive use and reuse both on",
            SAFEWSK_SOCKET_OPTIONS { ExclusiveAddressUse: 1, ReuseAddress: 1, ..opts(ALL & !SAFEWSK_OPTION_RCVBUF) },
        ),
    ];
    let irps_before = hostkernel::allocations().irps.0;
    for (what, o) in &bad {
        let (st, socket) = connect_opts(client, server, Some(o), 2000);
        assert_eq!(st, STATUS_INVALID_PARAMETER_4, "{what}");
        assert!(socket.is_null(), "{what}: *Socket is NULL on failure");
    }
    assert!(hostkernel::wsk::open_sockets().is_empty());
    assert_eq!(hostkernel::allocations().irps.0, irps_before, "no IRP: the provider was never called");
    cleanup(client);
    k.finish();
}

// A sequence of host-kernel calls with one shared precondition: one unsafe block.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn parameters_are_checked_by_position() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let local = Addr::parse("0.0.0.0:0");
    let local6 = Addr::parse("[::]:0");
    let remote = Addr::from(server);
    let port0 = Addr::parse("127.0.0.1:0");
    let bad_opts = opts(0x100);
    let good = three_options();
    let empty =
        WSK_CLIENT_CONNECTION_DISPATCH { WskReceiveEvent: None, WskDisconnectEvent: None, WskSendBacklogEvent: None };
    let ctx = 0x1000 as PVOID;
    let mut out = ptr::null_mut();
    let irps_before = hostkernel::allocations().irps.0;
    type Call<'a> = (&'a str, NTSTATUS, NTSTATUS);
    // SAFETY: every pointer is null or valid for the call.
    let rows: Vec<Call> = unsafe {
        vec![
            (
                "1 NULL client, 2 NULL local",
                SafeWskSocketConnectWithOptions(
                    ptr::null_mut(),
                    ptr::null(),
                    remote.ptr(),
                    &good,
                    ptr::null_mut(),
                    ptr::null(),
                    &mut out,
                    100,
                ),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "2 NULL local, 4 bad options",
                SafeWskSocketConnectWithOptions(
                    client,
                    ptr::null(),
                    remote.ptr(),
                    &bad_opts,
                    ptr::null_mut(),
                    ptr::null(),
                    &mut out,
                    100,
                ),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "3 port 0, 4 bad options",
                SafeWskSocketConnectWithOptions(
                    client,
                    local.ptr(),
                    port0.ptr(),
                    &bad_opts,
                    ptr::null_mut(),
                    ptr::null(),
                    &mut out,
                    100,
                ),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "3 family differs from local",
                SafeWskSocketConnectWithOptions(
                    client,
                    local6.ptr(),
                    remote.ptr(),
                    &good,
                    ptr::null_mut(),
                    ptr::null(),
                    &mut out,
                    100,
                ),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "4 bad options, 5 context without table, 7 NULL",
                SafeWskSocketConnectWithOptions(
                    client,
                    local.ptr(),
                    remote.ptr(),
                    &bad_opts,
                    ctx,
                    ptr::null(),
                    ptr::null_mut(),
                    100,
                ),
                STATUS_INVALID_PARAMETER_4,
            ),
            (
                "5 context without table, 7 NULL",
                SafeWskSocketConnectWithOptions(
                    client,
                    local.ptr(),
                    remote.ptr(),
                    &good,
                    ctx,
                    ptr::null(),
                    ptr::null_mut(),
                    100,
                ),
                STATUS_INVALID_PARAMETER_5,
            ),
            (
                "6 empty table, 7 NULL",
                SafeWskSocketConnectWithOptions(
                    client,
                    local.ptr(),
                    remote.ptr(),
                    &good,
                    ptr::null_mut(),
                    &empty,
                    ptr::null_mut(),
                    100,
                ),
                STATUS_INVALID_PARAMETER_6,
            ),
            (
                "7 NULL Socket",
                SafeWskSocketConnectWithOptions(
                    client,
                    local.ptr(),
                    remote.ptr(),
                    &good,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    100,
                ),
                STATUS_INVALID_PARAMETER_7,
            ),
            (
                "4 bad options at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || {
                    SafeWskSocketConnectWithOptions(
                        client,
                        local.ptr(),
                        remote.ptr(),
                        &bad_opts,
                        ptr::null_mut(),
                        ptr::null(),
                        &mut out,
                        100,
                    )
                }),
                STATUS_INVALID_PARAMETER_4,
            ),
            (
                "valid at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || {
                    SafeWskSocketConnectWithOptions(
                        client,
                        local.ptr(),
                        remote.ptr(),
                        &good,
                        ptr::null_mut(),
                        ptr::null(),
                        &mut out,
                        100,
                    )
                }),
                STATUS_INVALID_LEVEL,
            ),
        ]
    };
    for (what, got, want) in rows {
        assert_eq!(got, want, "{what}: got {got:#x}");
    }
    assert!(out.is_null());
    assert_eq!(hostkernel::allocations().irps.0, irps_before, "no call reached the provider");
    cleanup(client);
    k.finish();
}

/// Each step failing in turn (WskSocket, each of the four options, WskBind,
/// WskConnect): its status is returned, `*Socket` is NULL, and the half-made
/// socket is closed before the call returns (none is left open).
#[test]
fn a_failure_at_each_step_closes_the_half_made_socket() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let steps = [
        (WskCall::Socket, 1, "WskSocket"),
        (WskCall::ControlSocket, 1, "SO_EXCLUSIVEADDRUSE"),
        (WskCall::ControlSocket, 2, "SO_KEEPALIVE"),
        (WskCall::ControlSocket, 3, "SO_RCVBUF"),
        (WskCall::Bind, 1, "WskBind"),
        (WskCall::Connect, 1, "WskConnect"),
    ];
    for mode in [ConnectCompletion::Async, ConnectCompletion::Sync] {
        for (call, nth, what) in steps {
            for status in [STATUS_INSUFFICIENT_RESOURCES, STATUS_ADDRESS_ALREADY_EXISTS, STATUS_CONNECTION_REFUSED] {
                let k = Session::begin();
                hostkernel::set_connect_completion(mode);
                let client = startup();
                hostkernel::set_call_fault(call, nth, CallFault::Fail(status));
                let o = four_options();
                let (st, socket) = connect_opts(client, server, Some(&o), 2000);
                assert_eq!(st, status, "{mode:?} {what}");
                assert!(socket.is_null(), "{what}: *Socket is NULL on failure");
                assert!(hostkernel::wsk::open_sockets().is_empty(), "{what}: the half-made socket was closed");
                cleanup(client);
                k.finish();
            }
        }
    }
}

/// A real failure, not an injected one: nothing listens. WskConnect fails
/// with STATUS_CONNECTION_REFUSED and the configured socket is closed.
#[test]
fn a_refused_connect_closes_the_configured_socket() {
    let k = Session::begin();
    let client = startup();
    let o = three_options();
    let (st, socket) = connect_opts(client, closed_port(), Some(&o), 2000);
    assert_eq!(st, STATUS_CONNECTION_REFUSED);
    assert!(socket.is_null());
    assert!(hostkernel::wsk::open_sockets().is_empty());
    cleanup(client);
    k.finish();
}

/// A step that never completes: STATUS_IO_TIMEOUT at the deadline (its IRP
/// cancelled and waited for), the socket closed.
#[test]
fn a_step_that_never_completes_times_out_at_the_deadline() {
    let server = echo_server("127.0.0.1:0").expect("server");
    for (call, nth, what) in [
        (WskCall::Socket, 1, "WskSocket"),
        (WskCall::ControlSocket, 2, "SO_KEEPALIVE"),
        (WskCall::Bind, 1, "WskBind"),
        (WskCall::Connect, 1, "WskConnect"),
    ] {
        for cancel in [hostkernel::CancelBehaviour::Deferred, hostkernel::CancelBehaviour::Inline] {
            let k = Session::begin();
            hostkernel::set_cancel_behaviour(cancel);
            let client = startup();
            hostkernel::set_call_fault(call, nth, CallFault::Never);
            let o = four_options();
            let t = Instant::now();
            let (st, socket) = connect_opts(client, server, Some(&o), 300);
            let took = t.elapsed();
            assert_eq!(st, STATUS_IO_TIMEOUT, "{what} {cancel:?}");
            assert!(socket.is_null());
            assert!(took >= Duration::from_millis(290), "{what}: returned after {took:?}, before the deadline");
            assert!(took < Duration::from_millis(1500), "{what}: returned after {took:?}");
            assert!(hostkernel::wsk::open_sockets().is_empty(), "{what}: the half-made socket was closed");
            cleanup(client);
            k.finish();
        }
    }
}

/// ONE deadline: steps that each take 150 ms, none alone past a 400 ms
/// timeout, together past it: STATUS_IO_TIMEOUT at about 400 ms, not 4 x
/// 150 ms or 400 ms per step. With SAFEWSK_NO_TIMEOUT the same steps succeed.
#[test]
fn one_deadline_covers_all_steps() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let slow = |k: &Session| {
        let _ = k;
        let d = CallFault::Delay(Duration::from_millis(150));
        hostkernel::set_call_fault(WskCall::Socket, 0, d);
        hostkernel::set_call_fault(WskCall::ControlSocket, 0, d);
        hostkernel::set_call_fault(WskCall::Bind, 0, d);
        hostkernel::set_call_fault(WskCall::Connect, 0, d);
    };
    let k = Session::begin();
    let client = startup();
    slow(&k);
    let o = three_options();
    let t = Instant::now();
    let (st, socket) = connect_opts(client, server, Some(&o), 400);
    let took = t.elapsed();
    assert_eq!(st, STATUS_IO_TIMEOUT);
    assert!(socket.is_null());
    assert!(took >= Duration::from_millis(390) && took < Duration::from_millis(700), "took {took:?}");
    eprintln!("6 steps of 150 ms under a 400 ms deadline: STATUS_IO_TIMEOUT after {took:?}");
    assert!(hostkernel::wsk::open_sockets().is_empty());

    let t = Instant::now();
    let (st, socket) = connect_opts(client, server, Some(&o), SAFEWSK_NO_TIMEOUT);
    assert_eq!(st, STATUS_SUCCESS);
    eprintln!("the same 6 steps without a deadline: connected after {:?}", t.elapsed());
    let longest = hostkernel::longest_finite_wait();
    assert!(longest < Duration::from_secs(60), "SAFEWSK_NO_TIMEOUT reached a wait as a finite {longest:?}");
    round_trip(socket);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// A provider that returns an error without completing the IRP (Wine 8's
/// stubs do): its status is returned, nothing leaks.
#[test]
fn a_provider_refusing_without_completing() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    let o = three_options();
    let (st, socket) = connect_opts(client, server, Some(&o), 2000);
    assert_eq!(st, STATUS_NOT_IMPLEMENTED);
    assert!(socket.is_null());
    hostkernel::set_fail_without_completing(None);
    cleanup(client);
    let _ = hostkernel::take_dbgprint_log();
    k.finish();
}

/// Runs startup, the options connect, a round trip, close and cleanup;
/// returns the first failing step.
fn life_cycle(server: SocketAddr) -> Option<(&'static str, NTSTATUS)> {
    let mut client = ptr::null_mut();
    // SAFETY: valid out pointer at PASSIVE_LEVEL.
    let st = unsafe { SafeWskStartup(dev(), 0, &mut client) };
    if st != STATUS_SUCCESS {
        return Some(("startup", st));
    }
    let o = four_options();
    let (st, socket) = connect_opts(client, server, Some(&o), 2000);
    let mut failure = None;
    if st != STATUS_SUCCESS {
        assert!(socket.is_null());
        assert!(hostkernel::wsk::open_sockets().is_empty(), "the half-made socket was closed");
        failure = Some(("connect", st));
    } else {
        let (st, _) = send(socket, b"fault");
        if st != STATUS_SUCCESS {
            failure = Some(("send", st));
        } else {
            let mut buf = [0u8; 5];
            let (st, _) = receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000);
            if st != STATUS_SUCCESS {
                failure = Some(("receive", st));
            }
        }
        let st = close(socket);
        if st != STATUS_SUCCESS {
            // The handle is consumed all the same; cleanup closes the socket.
            failure = failure.or(Some(("close", st)));
            assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "a failed close consumed the handle");
            assert_eq!(hostkernel::wsk::open_sockets().len(), 1, "the socket is left for cleanup");
        }
    }
    cleanup(client);
    assert!(hostkernel::wsk::open_sockets().is_empty(), "cleanup closed every socket");
    failure
}

/// Every allocation of a life cycle with the options connect failed in
/// turn: the client block and the table's chunk (pool), the slot's IRP,
/// which every step reuses, and per step a completion context.
#[test]
fn every_allocation_can_fail() {
    let server = echo_server("127.0.0.1:0").expect("server");
    // Four options: WskSocket, 4 x WskControlSocket, WskBind, WskConnect,
    // then a send, a receive and the close: 10 completion contexts.
    for (site, count) in [(Site::Irp, 1), (Site::Pool, 2), (Site::CompletionContext, 10), (Site::Mdl, 0)] {
        let mut n = 1;
        loop {
            let k = Session::begin();
            k.fail_nth(site, n);
            let failure = life_cycle(server);
            let hit = k.fault_hit(site);
            k.finish();
            match (hit, failure) {
                (true, Some((step, st))) => {
                    assert_eq!(st, STATUS_INSUFFICIENT_RESOURCES, "{site:?} #{n} failed {step} with {st:#x}");
                }
                (true, None) => panic!("{site:?} allocation #{n} failed but every step reported success"),
                (false, None) => {
                    eprintln!("{site:?}: {} allocation(s) in a life cycle, each failure handled", n - 1);
                    assert_eq!(n - 1, count, "{site:?}: allocations in a life cycle");
                    break;
                }
                (false, Some((step, st))) => panic!("{step} failed with {st:#x} without an injected fault"),
            }
            n += 1;
        }
    }
}

/// The close of a half-made socket that cannot get its completion context
/// is not retried in a loop any more: the socket becomes the library's (an
/// orphan, reported), the connect returns the failing step's status at
/// once, and SafeWskCleanup closes the socket; nothing leaks. Four options:
/// WskSocket, 4 x WskControlSocket, WskBind and WskConnect use completion
/// contexts 1 to 7; the close's is the 8th. (The close reuses the slot's
/// IRP: it allocates none.) On the old design the close was retried before
/// the connect returned, so no socket was left open after it.
#[test]
fn a_half_made_socket_whose_close_gets_no_completion_context_is_closed_by_cleanup() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let site = Site::CompletionContext;
    let k = Session::begin();
    let client = startup();
    hostkernel::set_call_fault(WskCall::Connect, 1, CallFault::Fail(STATUS_CONNECTION_REFUSED));
    k.fail_nth(site, 8);
    let _ = hostkernel::take_dbgprint_log();
    let o = four_options();
    let (st, socket) = connect_opts(client, server, Some(&o), 2000);
    assert_eq!(st, STATUS_CONNECTION_REFUSED, "the step's status, not the close's");
    assert!(socket.is_null());
    assert!(k.fault_hit(site), "the close's completion context failed");
    k.fail_nth(site, 0);
    assert_eq!(hostkernel::wsk::open_sockets().len(), 1, "the half-made socket is left to cleanup");
    assert_orphan_reported(STATUS_INSUFFICIENT_RESOURCES);
    // The orphan's slot is not handed out: the client goes on working.
    let (st, socket) = connect_opts(client, server, Some(&o), 2000);
    assert_eq!(st, STATUS_SUCCESS);
    round_trip(socket);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(hostkernel::wsk::open_sockets().len(), 1, "the orphan is still open");
    assert_eq!(try_cleanup(client), STATUS_SUCCESS, "cleanup never refuses");
    assert!(hostkernel::wsk::open_sockets().is_empty(), "cleanup closed the orphan");
    k.finish();
}

/// The close of a half-made socket that the provider refuses without
/// completing its IRP (a breach of the I/O model, reported): the socket
/// becomes the library's, the connect returns, and SafeWskCleanup closes it
/// once the provider accepts closes again (it retries while it refuses);
/// nothing leaks. On the old design the close was retried 50 times, 10 ms
/// apart, and then the socket was left open for ever: cleanup refused.
///
/// The provider's refusal is switched on while the connect's last step
/// (WskConnect, which never completes) pends: the switch happens once the
/// sixth completion context (WskSocket, three options, WskBind, WskConnect)
/// has been allocated. If WskConnect itself meets the refusal, the step
/// fails with it and the close is refused all the same.
#[test]
fn a_half_made_socket_whose_close_the_provider_refuses_is_closed_by_cleanup() {
    const REFUSED: NTSTATUS = STATUS_INVALID_DEVICE_REQUEST;
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    hostkernel::set_call_fault(WskCall::Connect, 1, CallFault::Never);
    let _ = hostkernel::take_dbgprint_log();
    let contexts = hostkernel::allocations().completion_contexts.0;
    let c = client as usize;
    let connecting = std::thread::spawn(move || {
        let o = three_options();
        let (st, socket) = connect_opts(c as *mut SAFEWSK_CLIENT, server, Some(&o), 1500);
        (st, socket as usize)
    });
    let t = Instant::now();
    while hostkernel::allocations().completion_contexts.0 < contexts + 6 {
        assert!(t.elapsed() < Duration::from_secs(10), "the connect never reached WskConnect");
        assert!(!connecting.is_finished(), "the connect ended before WskConnect");
        std::thread::sleep(Duration::from_millis(1));
    }
    hostkernel::set_fail_without_completing(Some(REFUSED));
    let (st, socket) = connecting.join().expect("connect");
    assert!(st == STATUS_IO_TIMEOUT || st == REFUSED, "{st:#x}");
    assert_eq!(socket, 0, "*Socket is NULL on failure");
    assert_eq!(hostkernel::wsk::open_sockets().len(), 1, "the half-made socket is left to cleanup");
    assert_orphan_reported(REFUSED);
    // Cleanup retries the close until the provider accepts it.
    let cleaning = std::thread::spawn(move || try_cleanup(c as *mut SAFEWSK_CLIENT));
    std::thread::sleep(Duration::from_millis(50));
    assert!(!cleaning.is_finished(), "cleanup waits while the provider refuses the close");
    hostkernel::set_fail_without_completing(None);
    assert_eq!(cleaning.join().expect("cleanup"), STATUS_SUCCESS, "cleanup never refuses");
    assert!(hostkernel::wsk::open_sockets().is_empty(), "cleanup closed the orphan");
    k.finish();
}

/// DbgPrint reported an orphan whose close could not be issued (`status`).
fn assert_orphan_reported(status: NTSTATUS) {
    let log = hostkernel::take_dbgprint_log();
    let code = format!("0x{:08X}", status as u32);
    assert!(
        log.iter().any(|l| l.contains("could not be issued")
            && l.contains(&code)
            && l.contains("SafeWskCleanup will close it")),
        "the orphan was not reported with {code}: {log:#?}"
    );
}

/// SafeWskCleanup's status (common's `cleanup` asserts success).
fn try_cleanup(client: *mut SAFEWSK_CLIENT) -> NTSTATUS {
    // SAFETY: a live client, not used after this.
    unsafe { SafeWskCleanup(client) }
}

// The host kernel's own symbols, called directly (as a WSK client would).
extern "system" {
    fn WskRegister(npi: *mut WSK_CLIENT_NPI, reg: *mut WSK_REGISTRATION) -> NTSTATUS;
    fn WskCaptureProviderNPI(reg: *mut WSK_REGISTRATION, wait: u32, npi: *mut WSK_PROVIDER_NPI) -> NTSTATUS;
    fn WskReleaseProviderNPI(reg: *mut WSK_REGISTRATION);
    fn WskDeregister(reg: *mut WSK_REGISTRATION);
    fn IoAllocateIrp(stack: i8, quota: u8) -> *mut IRP;
    fn IoFreeIrp(irp: *mut IRP);
    fn IoSetCompletionRoutineEx(
        device: PVOID,
        irp: *mut IRP,
        routine: PIO_COMPLETION_ROUTINE,
        context: PVOID,
        s: u8,
        e: u8,
        c: u8,
    ) -> NTSTATUS;
}

unsafe extern "system" fn mark_done(_d: PVOID, _irp: *mut IRP, ctx: PVOID) -> NTSTATUS {
    // SAFETY: the AtomicBool the test keeps alive until it saw this.
    unsafe { &*(ctx as *const std::sync::atomic::AtomicBool) }.store(true, std::sync::atomic::Ordering::SeqCst);
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Issues one IRP through `f`, waits for its completion, returns (returned
/// status, IoStatus.Status, IoStatus.Information).
// A sequence of host-kernel calls with one shared precondition: one unsafe block.
#[allow(clippy::multiple_unsafe_ops_per_block)]
fn with_irp(f: impl FnOnce(*mut IRP) -> NTSTATUS) -> (NTSTATUS, NTSTATUS, usize) {
    let done = std::sync::atomic::AtomicBool::new(false);
    // SAFETY: host kernel calls at PASSIVE_LEVEL; the IRP is freed after its
    // completion routine ran; `done` outlives it.
    unsafe {
        let irp = IoAllocateIrp(1, 0);
        assert!(!irp.is_null());
        let ctx = &done as *const std::sync::atomic::AtomicBool as PVOID;
        assert_eq!(IoSetCompletionRoutineEx(dev().cast(), irp, Some(mark_done), ctx, 1, 1, 1), STATUS_SUCCESS);
        let returned = f(irp);
        let t = Instant::now();
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            assert!(t.elapsed() < Duration::from_secs(5), "the IRP never completed");
            std::thread::sleep(Duration::from_millis(1));
        }
        let status = (*irp).IoStatus.Status;
        let info = (*irp).IoStatus.Information;
        IoFreeIrp(irp);
        (returned, status, info)
    }
}

/// The host's WskConnect before WskBind returns and completes
/// STATUS_INVALID_DEVICE_STATE, as Windows does (Wine's
/// dlls/ntoskrnl.exe/tests/driver_netio.c, whose expectations are run on
/// Windows); after WskBind it connects.
// A sequence of host-kernel calls with one shared precondition: one unsafe block.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn host_wsk_connect_before_wsk_bind_is_invalid_device_state() {
    type SocketFn =
        unsafe extern "system" fn(PVOID, u16, u16, u32, u32, PVOID, PVOID, PVOID, PVOID, PVOID, *mut IRP) -> NTSTATUS;
    type AddrFn = unsafe extern "system" fn(*mut WSK_SOCKET, *const SOCKADDR, u32, *mut IRP) -> NTSTATUS;
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let dispatch = WSK_CLIENT_DISPATCH { Version: 0x100, Reserved: 0, WskClientEvent: ptr::null_mut() };
    let mut npi = WSK_CLIENT_NPI { ClientContext: ptr::null_mut(), Dispatch: &dispatch };
    let mut reg = WSK_REGISTRATION::zeroed();
    let mut provider = WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() };
    // SAFETY: valid structures at PASSIVE_LEVEL; the dispatch entries are
    // the host's functions of the types they are transmuted to (wsk.h).
    unsafe {
        assert_eq!(WskRegister(&mut npi, &mut reg), STATUS_SUCCESS);
        assert_eq!(WskCaptureProviderNPI(&mut reg, 0, &mut provider), STATUS_SUCCESS);
        let wsk_socket: SocketFn = std::mem::transmute((*provider.Dispatch).WskSocket);
        let (_, st, info) = with_irp(|irp| {
            wsk_socket(
                provider.Client,
                AF_INET,
                SOCK_STREAM,
                IPPROTO_TCP,
                2,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                irp,
            )
        });
        assert_eq!(st, STATUS_SUCCESS);
        let socket = info as *mut WSK_SOCKET;
        let table = &*(*socket).Dispatch.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
        let connect: AddrFn = std::mem::transmute(table.WskConnect);
        let bind: AddrFn = std::mem::transmute(table.WskBind);
        let remote = Addr::from(server);
        let local = Addr::parse("127.0.0.1:0");
        let (returned, st, _) = with_irp(|irp| connect(socket, remote.ptr(), 0, irp));
        assert_eq!((returned, st), (STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_DEVICE_STATE));
        let (_, st, _) = with_irp(|irp| bind(socket, local.ptr(), 0, irp));
        assert_eq!(st, STATUS_SUCCESS);
        let (_, st, _) = with_irp(|irp| connect(socket, remote.ptr(), 0, irp));
        assert_eq!(st, STATUS_SUCCESS, "connects once bound");
        let close = table.Basic.WskCloseSocket.expect("close");
        let (_, st, _) = with_irp(|irp| close(socket, irp));
        assert_eq!(st, STATUS_SUCCESS);
        WskReleaseProviderNPI(&mut reg);
        WskDeregister(&mut reg);
    }
    k.finish();
}

/// Every step (WskSocket, each option, WskBind, WskConnect) runs on the
/// socket slot's IRP: a connect with three options allocates, on a fresh
/// socket table, the table's chunk and the slot's IRP, and after a connect
/// and close none of safewsk's own (the freed slot's IRP waits in the
/// table's cache); one completion context per step either way.
#[test]
fn the_steps_reuse_the_socket_slots_irp() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    assert_eq!(safewsk::table_usage(), (0, 0), "a fresh socket table");
    let client = startup();
    let o = three_options();
    for (round, irps, pool) in [(0, 1u64, 1u64), (1, 0, 0), (2, 0, 0)] {
        let before = hostkernel::allocations();
        let (st, socket) = connect_opts(client, server, Some(&o), 2000);
        assert_eq!(st, STATUS_SUCCESS);
        let a = hostkernel::allocations();
        let got = (
            a.irps.0 - before.irps.0,
            a.pool.0 - before.pool.0,
            a.completion_contexts.0 - before.completion_contexts.0,
        );
        // WskSocket, 3 options, WskBind, WskConnect: 6 steps.
        assert_eq!(got, (irps, pool, 6), "round {round}: (IRPs, pool blocks, completion contexts)");
        assert_eq!(safewsk::table_usage(), (1, 0), "round {round}: the socket holds the cached IRP");
        assert_eq!(close(socket), STATUS_SUCCESS);
        assert_eq!(safewsk::table_usage(), (1, 1), "round {round}: the IRP is cached again");
        assert_eq!(hostkernel::live().irps, 1);
    }
    cleanup(client);
    assert_eq!(safewsk::table_usage(), (0, 0), "the last cleanup freed the table");
    k.finish();
}
