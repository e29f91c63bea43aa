//! Issue 10, item 2: SafeWskSocketConnectWithOptions — WskSocket, then
//! WskControlSocket(WskSetOption) per option, then WskBind, then WskConnect,
//! under one deadline, the half-made socket closed on every failure.
//!
//! Options are checked from the Linux side (getsockopt on the host socket
//! behind the WSK socket, `hostkernel::socket_fd`). Every test ends with
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

fn round_trip(client: *mut SAFEWSK_CLIENT, socket: *mut SAFEWSK_SOCKET) {
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
        let fd = hostkernel::socket_fd(socket.cast()).expect("a host socket");
        assert_eq!(getsockopt_int(fd, libc::SO_KEEPALIVE), 0);
        assert_eq!(getsockopt_int(fd, libc::SO_REUSEADDR), 0);
        round_trip(client, socket);
        assert_eq!(close(socket), STATUS_SUCCESS);

        let o = three_options();
        let (st, socket) = connect_opts(client, server, Some(&o), 2000);
        assert_eq!(st, STATUS_SUCCESS, "{bind}: three options");
        let fd = hostkernel::socket_fd(socket.cast()).expect("a host socket");
        assert_eq!(getsockopt_int(fd, libc::SO_KEEPALIVE), 1, "SO_KEEPALIVE");
        assert_eq!(getsockopt_int(fd, libc::SO_REUSEADDR), 1, "SO_REUSEADDR");
        // Linux doubles the value it is given (socket(7)).
        assert!(getsockopt_int(fd, libc::SO_RCVBUF) >= 65536, "SO_RCVBUF");
        assert_eq!(hostkernel::wsk_control::socket_exclusive(socket.cast()), Some(false));
        round_trip(client, socket);
        assert_eq!(close(socket), STATUS_SUCCESS);

        let o = four_options();
        let (st, socket) = connect_opts(client, server, Some(&o), 2000);
        assert_eq!(st, STATUS_SUCCESS, "{bind}: four options");
        let fd = hostkernel::socket_fd(socket.cast()).expect("a host socket");
        assert_eq!(hostkernel::wsk_control::socket_exclusive(socket.cast()), Some(true), "SO_EXCLUSIVEADDRUSE");
        assert_eq!(getsockopt_int(fd, libc::SO_REUSEADDR), 0);
        assert_eq!(getsockopt_int(fd, libc::SO_KEEPALIVE), 1);
        assert!(getsockopt_int(fd, libc::SO_RCVBUF) >= 32768);
        round_trip(client, socket);
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
    round_trip(client, socket);
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
    round_trip(client, socket);
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
            failure = failure.or(Some(("close", st)));
            assert_eq!(close(socket), STATUS_SUCCESS, "retrying the close must work");
        }
    }
    cleanup(client);
    failure
}

/// Every allocation of a life cycle with the options connect (its pool
/// record, and per step an IRP and a completion context) failed in turn.
#[test]
fn every_allocation_can_fail() {
    let server = echo_server("127.0.0.1:0").expect("server");
    for site in [Site::Irp, Site::Pool, Site::CompletionContext, Site::Mdl] {
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
                    assert!(n > 1 || site == Site::Mdl, "{site:?}: no allocation there");
                    break;
                }
                (false, Some((step, st))) => panic!("{step} failed with {st:#x} without an injected fault"),
            }
            n += 1;
        }
    }
}

/// The close of a half-made socket that cannot get its completion context
/// is retried: the socket is still closed, nothing leaks. Four options:
/// WskSocket, 4 x WskControlSocket, WskBind and WskConnect use completion
/// contexts 1 to 7; the close's is the 8th. (The close reuses the socket
/// record's IRP: it allocates none.)
#[test]
fn a_close_that_cannot_get_its_completion_context_is_retried() {
    let server = echo_server("127.0.0.1:0").expect("server");
    {
        let site = Site::CompletionContext;
        let k = Session::begin();
        let client = startup();
        hostkernel::set_call_fault(WskCall::Connect, 1, CallFault::Fail(STATUS_CONNECTION_REFUSED));
        k.fail_nth(site, 8);
        let o = four_options();
        let (st, socket) = connect_opts(client, server, Some(&o), 2000);
        assert_eq!(st, STATUS_CONNECTION_REFUSED, "{site:?}: the step's status, not the close's");
        assert!(socket.is_null());
        assert!(k.fault_hit(site), "{site:?}: the close's first attempt failed");
        assert!(hostkernel::wsk::open_sockets().is_empty(), "{site:?}: closed on the retry");
        cleanup(client);
        k.finish();
    }
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
    type AddrFn = unsafe extern "system" fn(*mut SAFEWSK_SOCKET, *const SOCKADDR, u32, *mut IRP) -> NTSTATUS;
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
        let socket = info as *mut SAFEWSK_SOCKET;
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
        let (_, st, _) = with_irp(|irp| close(irp));
        assert_eq!(st, STATUS_SUCCESS);
        WskReleaseProviderNPI(&mut reg);
        WskDeregister(&mut reg);
    }
    k.finish();
}

/// Every step (WskSocket, each option, WskBind, WskConnect) runs on the
/// socket record's IRP: a connect with three options allocates one IRP (the
/// record's, none once a closed socket's record is cached) and one
/// completion context per step.
#[test]
fn the_steps_reuse_the_socket_records_irp() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let o = three_options();
    for (round, irps) in [(0, 1u64), (1, 0)] {
        let before = hostkernel::allocations();
        let (st, socket) = connect_opts(client, server, Some(&o), 2000);
        assert_eq!(st, STATUS_SUCCESS);
        let a = hostkernel::allocations();
        let got = (a.irps.0 - before.irps.0, a.completion_contexts.0 - before.completion_contexts.0);
        // WskSocket, 3 options, WskBind, WskConnect: 6 steps.
        assert_eq!(got, (irps, 6), "round {round}: (IRPs, completion contexts)");
        assert_eq!(close(socket), STATUS_SUCCESS);
    }
    cleanup(client);
    k.finish();
}
