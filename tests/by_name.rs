//! Issue 10, item 1: SafeWskConnectByName.
//!
//! The host kernel resolves with Linux getaddrinfo (`localhost`, /etc/hosts;
//! names under `.invalid` are unknown without DNS), hands out real
//! ADDRINFOEXW lists it tracks (a list not freed is a leak at
//! `Session::finish`, a double or foreign free a violation, freed entries
//! are poisoned), and can fail, pend or delay the resolution or answer with
//! chosen addresses. Every test ends with `Session::finish`: zero leaks.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ptr;
use std::time::{Duration, Instant};

use common::*;
use safewsk::nt::*;
use safewsk::*;

const STATUS_NO_MATCH: NTSTATUS = 0xC000_0272_u32 as NTSTATUS;

/// A UTF-16 copy of `s` and a UNICODE_STRING over it (no terminator).
struct Us {
    _chars: Vec<u16>,
    us: UNICODE_STRING,
}

impl Us {
    fn new(s: &str) -> Us {
        let mut chars: Vec<u16> = s.encode_utf16().collect();
        let bytes = (chars.len() * 2) as u16;
        let us = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: chars.as_mut_ptr() };
        Us { _chars: chars, us }
    }

    fn ptr(&self) -> *const UNICODE_STRING {
        &self.us
    }
}

/// The Windows SOCKADDR_IN / SOCKADDR_IN6 in `b` as a SocketAddr.
fn decode(b: &[u8; 28]) -> SocketAddr {
    let family = u16::from_ne_bytes([b[0], b[1]]);
    let port = u16::from_be_bytes([b[2], b[3]]);
    match family {
        AF_INET => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), port),
        AF_INET6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[8..24]);
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)
        }
        f => panic!("unexpected family {f}"),
    }
}

/// SafeWskConnectByName(node, service); the status, socket and the address
/// reported.
fn by_name_raw(
    client: *mut SAFEWSK_CLIENT,
    node: *const UNICODE_STRING,
    service: *const UNICODE_STRING,
    timeout_ms: u32,
) -> (NTSTATUS, *mut SAFEWSK_SOCKET, Option<SocketAddr>) {
    let mut socket = 0x1 as *mut SAFEWSK_SOCKET; // must be reset to NULL on failure
    let mut remote = [0xAAu8; 28];
    // SAFETY: valid (or deliberately NULL) strings, out pointers live for
    // the call.
    let st = unsafe {
        SafeWskConnectByName(
            client,
            node,
            service,
            ptr::null_mut(),
            ptr::null(),
            &mut socket,
            remote.as_mut_ptr().cast(),
            28,
            timeout_ms,
        )
    };
    if st == STATUS_SUCCESS {
        assert!(!socket.is_null());
        (st, socket, Some(decode(&remote)))
    } else {
        assert!(socket.is_null(), "the socket is NULL on failure ({st:#x})");
        assert_eq!(remote, [0xAA; 28], "RemoteAddress is written only on success");
        (st, socket, None)
    }
}

fn by_name(
    client: *mut SAFEWSK_CLIENT,
    node: &str,
    service: &str,
    timeout_ms: u32,
) -> (NTSTATUS, *mut SAFEWSK_SOCKET, Option<SocketAddr>) {
    let (n, s) = (Us::new(node), Us::new(service));
    by_name_raw(client, n.ptr(), s.ptr(), timeout_ms)
}

fn echo_round_trip(socket: *mut SAFEWSK_SOCKET) {
    assert_eq!(send(socket, b"by name"), (STATUS_SUCCESS, 7));
    let mut buf = [0u8; 7];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 7));
    assert_eq!(&buf, b"by name");
}

#[test]
fn localhost_resolves_connects_and_echoes() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, socket, reached) = by_name(client, "localhost", &server.port().to_string(), 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(reached, Some(server), "the address reached is the echo server's");
    assert_eq!(hostkernel::resolver_calls(), 1);
    assert_eq!(hostkernel::address_lists_live(), 0, "the list is freed before the call returns");
    echo_round_trip(socket);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// A UNICODE_STRING need not be terminated: the name is "localhost" even
/// though the buffer goes on ("localhostXYZ" with Length 9 characters), and
/// RemoteAddress is optional.
#[test]
fn an_unterminated_name_and_no_remote_address() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let mut chars: Vec<u16> = "localhostXYZ".encode_utf16().collect();
    let node = UNICODE_STRING { Length: 18, MaximumLength: 24, Buffer: chars.as_mut_ptr() };
    let service = Us::new(&server.port().to_string());
    let mut socket = ptr::null_mut();
    // SAFETY: valid strings and out pointer for the call.
    let st = unsafe {
        SafeWskConnectByName(
            client,
            &node,
            service.ptr(),
            ptr::null_mut(),
            ptr::null(),
            &mut socket,
            ptr::null_mut(),
            0,
            2000,
        )
    };
    assert_eq!(st, STATUS_SUCCESS);
    echo_round_trip(socket);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn an_unknown_name_is_not_found_and_nothing_is_connected() {
    let k = Session::begin();
    let client = startup();
    let (st, _, _) = by_name(client, "no-such-host.invalid", "80", 2000);
    assert_eq!(st, STATUS_NOT_FOUND);
    assert_eq!(hostkernel::provider_connect_calls(), 0);
    cleanup(client);
    k.finish();
}

/// The resolver's own failure is passed through (Windows 7 answers an
/// unknown name with STATUS_NO_MATCH), as is a provider that refuses without
/// completing the IRP.
#[test]
fn a_resolver_failure_is_passed_through() {
    let k = Session::begin();
    let client = startup();
    hostkernel::set_resolver_error(Some(STATUS_NO_MATCH));
    assert_eq!(by_name(client, "localhost", "80", 2000).0, STATUS_NO_MATCH);
    hostkernel::set_resolver_error(None);
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    assert_eq!(by_name(client, "localhost", "80", 2000).0, STATUS_NOT_IMPLEMENTED);
    hostkernel::set_fail_without_completing(None);
    assert_eq!(hostkernel::provider_connect_calls(), 0);
    cleanup(client);
    k.finish();
}

/// An answer whose addresses no connect accepts (unspecified, multicast,
/// port 0) is STATUS_NOT_FOUND: nothing is tried, the list is freed.
#[test]
fn an_answer_without_a_usable_address_is_not_found() {
    let k = Session::begin();
    let client = startup();
    hostkernel::set_resolver_answer(Some(vec![
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V4(Ipv4Addr::new(224, 0, 0, 1)),
        IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    ]));
    assert_eq!(by_name(client, "anything", "80", 2000).0, STATUS_NOT_FOUND);
    hostkernel::set_resolver_answer(Some(vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]));
    assert_eq!(by_name(client, "anything", "0", 2000).0, STATUS_NOT_FOUND, "port 0");
    assert_eq!(hostkernel::provider_connect_calls(), 0);
    cleanup(client);
    k.finish();
}

/// The addresses are tried in the resolver's order: refused ones first,
/// then the one where the server listens; the address reported is that one.
/// When every address is refused, the last attempt's status is returned.
#[test]
fn refused_addresses_are_skipped_in_the_resolvers_order() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let mut answer = Vec::new();
    if ipv6_loopback_available() {
        answer.push(IpAddr::V6(Ipv6Addr::LOCALHOST)); // nothing listens on [::1]:port
    }
    answer.push(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))); // nor on 127.0.0.2:port
    answer.push(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let tries = answer.len() as u64;
    hostkernel::set_resolver_answer(Some(answer.clone()));
    let (st, socket, reached) = by_name(client, "dual.example", &server.port().to_string(), 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(reached, Some(server));
    assert_eq!(hostkernel::provider_connect_calls(), tries, "one attempt per address, in order");
    echo_round_trip(socket);
    assert_eq!(close(socket), STATUS_SUCCESS);

    answer.pop();
    hostkernel::set_resolver_answer(Some(answer));
    let (st, _, _) = by_name(client, "dual.example", &server.port().to_string(), 2000);
    assert_eq!(st, STATUS_CONNECTION_REFUSED, "the last attempt's status");
    cleanup(client);
    k.finish();
}

#[test]
fn a_resolver_that_never_completes_times_out_at_the_deadline() {
    let k = Session::begin();
    let client = startup();
    hostkernel::set_resolver_hangs(true);
    let t = Instant::now();
    let (st, _, _) = by_name(client, "localhost", "80", 150);
    let took = t.elapsed();
    eprintln!("resolver never completes, 150 ms deadline: {st:#x} after {took:?}");
    assert_eq!(st, STATUS_IO_TIMEOUT, "never STATUS_TIMEOUT (a success code)");
    assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(hostkernel::provider_connect_calls(), 0);
    cleanup(client);
    k.finish();
}

/// A provider that ignores the cancel completes the resolution late, with a
/// list: the call still returns STATUS_IO_TIMEOUT, and frees that list.
#[test]
fn a_late_answer_after_an_ignored_cancel_is_freed() {
    let k = Session::begin();
    let client = startup();
    hostkernel::set_provider_ignores_cancel(true);
    hostkernel::set_resolver_delay(Some(Duration::from_millis(600)));
    let _ = hostkernel::take_dbgprint_log();
    let t = Instant::now();
    let (st, _, _) = by_name(client, "localhost", "80", 100);
    let took = t.elapsed();
    assert_eq!(st, STATUS_IO_TIMEOUT);
    assert!(took >= Duration::from_millis(600), "it waited for the provider's completion: {took:?}");
    let log = hostkernel::take_dbgprint_log();
    let reports = log.iter().filter(|l| l.contains("WskGetAddressInfo: IRP") && l.contains("not completed")).count();
    assert!(reports >= 1, "the overdue wait reports itself: {log:?}");
    assert_eq!(hostkernel::address_lists_live(), 0, "the late list was freed");
    assert_eq!(hostkernel::provider_connect_calls(), 0);
    cleanup(client);
    k.finish();
}

/// One deadline covers the resolution and every attempt: a resolution of
/// 150 ms and connects that take 250 ms each, under a 300 ms deadline, end
/// at about 300 ms with STATUS_IO_TIMEOUT after one attempt (per-step
/// deadlines would give the connect its own 300 ms and then try the second
/// address).
#[test]
fn one_deadline_across_resolution_and_attempts() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    hostkernel::set_resolver_delay(Some(Duration::from_millis(150)));
    hostkernel::set_resolver_answer(Some(vec![IpAddr::V4(Ipv4Addr::LOCALHOST), IpAddr::V4(Ipv4Addr::LOCALHOST)]));
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(250)));
    let t = Instant::now();
    let (st, _, _) = by_name(client, "slow.example", &server.port().to_string(), 300);
    let took = t.elapsed();
    eprintln!("300 ms deadline, 150 ms resolution, 250 ms connects: {st:#x} after {took:?}");
    assert_eq!(st, STATUS_IO_TIMEOUT);
    assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(420), "took {took:?}");
    assert_eq!(hostkernel::provider_connect_calls(), 1, "no attempt starts after the deadline");

    // The resolution alone can use up the deadline.
    hostkernel::set_resolver_delay(Some(Duration::from_millis(400)));
    let t = Instant::now();
    assert_eq!(by_name(client, "slow.example", "80", 100).0, STATUS_IO_TIMEOUT);
    assert!(t.elapsed() < Duration::from_millis(350), "took {:?}", t.elapsed());

    // Within the deadline everything works, SAFEWSK_NO_TIMEOUT included.
    hostkernel::set_resolver_delay(Some(Duration::from_millis(20)));
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(20)));
    for timeout in [2000, SAFEWSK_NO_TIMEOUT] {
        let (st, socket, reached) = by_name(client, "slow.example", &server.port().to_string(), timeout);
        assert_eq!((st, reached), (STATUS_SUCCESS, Some(server)));
        assert_eq!(close(socket), STATUS_SUCCESS);
    }
    cleanup(client);
    k.finish();
}

/// Every allocation of the path failed in turn, with two attempts (the
/// first refused): each gives STATUS_INSUFFICIENT_RESOURCES, the list is
/// freed, nothing leaks. On a fresh socket table the path allocates: the
/// call's block for the names and addresses (pool); the resolution's IRP and
/// completion context; for the first attempt the table's chunk (pool), the
/// slot's IRP and a completion context; for the second only a completion
/// context (the refused attempt's slot IRP went back to the table's cache
/// and is taken again).
#[test]
fn every_allocation_on_the_path_can_fail() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let answer = vec![IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)), IpAddr::V4(Ipv4Addr::LOCALHOST)];
    for (site, count) in [(Site::Irp, 2), (Site::CompletionContext, 3), (Site::Pool, 2)] {
        let mut n = 1;
        loop {
            let k = Session::begin();
            let client = startup();
            hostkernel::set_resolver_answer(Some(answer.clone()));
            k.fail_nth(site, n);
            let (st, socket, reached) = by_name(client, "two.example", &server.port().to_string(), 2000);
            let hit = k.fault_hit(site);
            k.fail_nth(site, 0);
            if st == STATUS_SUCCESS {
                assert_eq!(reached, Some(server));
                assert_eq!(close(socket), STATUS_SUCCESS);
            }
            cleanup(client);
            k.finish();
            if !hit {
                assert_eq!(st, STATUS_SUCCESS);
                eprintln!("{site:?}: {} allocation(s) on the path, each failure handled", n - 1);
                assert_eq!(n - 1, count, "{site:?}: allocations on the path");
                break;
            }
            assert_eq!(st, STATUS_INSUFFICIENT_RESOURCES, "{site:?} #{n}");
            n += 1;
        }
    }
}

/// Parameters by position, then the IRQL (PASSIVE_LEVEL only).
#[test]
fn every_parameter_by_position_then_passive_level() {
    let k = Session::begin();
    let client = startup();
    let good = Us::new("localhost");
    let svc = Us::new("80");
    let call = |c: *mut SAFEWSK_CLIENT,
                node: *const UNICODE_STRING,
                service: *const UNICODE_STRING,
                ctx: PVOID,
                dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
                out: *mut *mut SAFEWSK_SOCKET,
                remote: *mut SOCKADDR,
                remote_len: u32| {
        // SAFETY: every pointer is NULL or valid for the call.
        unsafe { SafeWskConnectByName(c, node, service, ctx, dispatch, out, remote, remote_len, 100) }
    };
    let mut out = ptr::null_mut();
    let o: *mut *mut SAFEWSK_SOCKET = &mut out;
    let mut sa = [0u8; 28];
    let r = sa.as_mut_ptr().cast::<SOCKADDR>();
    let nul = ptr::null::<UNICODE_STRING>();
    let mut chars: Vec<u16> = "local\0host".encode_utf16().collect();
    let p = chars.as_mut_ptr();
    let bad_strings = [
        ("empty", UNICODE_STRING { Length: 0, MaximumLength: 2, Buffer: p }),
        ("odd length", UNICODE_STRING { Length: 3, MaximumLength: 4, Buffer: p }),
        ("Length > MaximumLength", UNICODE_STRING { Length: 4, MaximumLength: 2, Buffer: p }),
        ("NULL Buffer", UNICODE_STRING { Length: 4, MaximumLength: 4, Buffer: ptr::null_mut() }),
        ("embedded NUL", UNICODE_STRING { Length: 20, MaximumLength: 20, Buffer: p }),
    ];
    let long = Us::new(&"a".repeat(256));
    let long_service = Us::new(&"1".repeat(33));
    let empty_dispatch =
        WSK_CLIENT_CONNECTION_DISPATCH { WskReceiveEvent: None, WskDisconnectEvent: None, WskSendBacklogEvent: None };
    let ctx = 0x10 as PVOID;
    assert_eq!(call(ptr::null_mut(), nul, nul, ctx, ptr::null(), ptr::null_mut(), r, 1), STATUS_INVALID_PARAMETER_1);
    assert_eq!(call(client, nul, nul, ptr::null_mut(), ptr::null(), o, r, 28), STATUS_INVALID_PARAMETER_2);
    for (what, s) in &bad_strings {
        assert_eq!(
            call(client, s, svc.ptr(), ptr::null_mut(), ptr::null(), o, r, 28),
            STATUS_INVALID_PARAMETER_2,
            "{what}"
        );
        assert_eq!(
            call(client, good.ptr(), s, ptr::null_mut(), ptr::null(), o, r, 28),
            STATUS_INVALID_PARAMETER_3,
            "{what}"
        );
    }
    assert_eq!(call(client, long.ptr(), svc.ptr(), ptr::null_mut(), ptr::null(), o, r, 28), STATUS_INVALID_PARAMETER_2);
    assert_eq!(
        call(client, good.ptr(), long_service.ptr(), ptr::null_mut(), ptr::null(), o, r, 28),
        STATUS_INVALID_PARAMETER_3
    );
    assert_eq!(call(client, good.ptr(), nul, ptr::null_mut(), ptr::null(), o, r, 28), STATUS_INVALID_PARAMETER_3);
    assert_eq!(call(client, good.ptr(), svc.ptr(), ctx, ptr::null(), o, r, 28), STATUS_INVALID_PARAMETER_4);
    assert_eq!(call(client, good.ptr(), svc.ptr(), ctx, &empty_dispatch, o, r, 28), STATUS_INVALID_PARAMETER_5);
    assert_eq!(
        call(client, good.ptr(), svc.ptr(), ptr::null_mut(), ptr::null(), ptr::null_mut(), r, 28),
        STATUS_INVALID_PARAMETER_6
    );
    assert_eq!(call(client, good.ptr(), svc.ptr(), ptr::null_mut(), ptr::null(), o, r, 27), STATUS_INVALID_PARAMETER_8);
    assert_eq!(
        call(client, good.ptr(), svc.ptr(), ptr::null_mut(), ptr::null(), o, ptr::null_mut(), 28),
        STATUS_INVALID_PARAMETER_8
    );
    // The IRQL after the parameters: PASSIVE_LEVEL only.
    for irql in [APC_LEVEL, DISPATCH_LEVEL] {
        let st =
            hostkernel::with_irql(irql, || call(client, good.ptr(), svc.ptr(), ptr::null_mut(), ptr::null(), o, r, 28));
        assert_eq!(st, STATUS_INVALID_LEVEL, "IRQL {irql}");
        let st =
            hostkernel::with_irql(irql, || call(client, good.ptr(), svc.ptr(), ptr::null_mut(), ptr::null(), o, r, 3));
        assert_eq!(st, STATUS_INVALID_PARAMETER_8, "a bad parameter wins over the IRQL at {irql}");
    }
    assert_eq!(hostkernel::resolver_calls(), 0, "no call reached the provider");
    cleanup(client);
    k.finish();
}

/// A call in progress holds cleanup off until it returns; a call made while
/// cleanup waits is refused with STATUS_DELETE_PENDING. No sleep orders the
/// steps: the first call is known to be inside the resolver once the host
/// counted its resolution, and cleanup to have begun once a connect is
/// refused with STATUS_DELETE_PENDING.
#[test]
fn a_call_during_cleanup_is_delete_pending() {
    let k = Session::begin();
    let client = startup();
    hostkernel::set_resolver_hangs(true);
    let c = client as usize;
    // Its deadline only has to outlast the steps below (it bounds the test).
    let first = std::thread::spawn(move || by_name(c as *mut SAFEWSK_CLIENT, "localhost", "80", 2000).0);
    wait_until("the first call reached the resolver", || hostkernel::resolver_calls() == 1);
    let cleaning = std::thread::spawn(move || {
        // SAFETY: a live client; nothing uses it after this returns.
        unsafe { SafeWskCleanup(c as *mut SAFEWSK_CLIENT) }
    });
    let refused = closed_port();
    wait_until("cleanup began", || {
        let (st, socket) = connect(client, refused, 2000);
        assert!(socket.is_null());
        assert!(st == STATUS_CONNECTION_REFUSED || st == STATUS_DELETE_PENDING, "{st:#x}");
        st == STATUS_DELETE_PENDING
    });
    assert!(!first.is_finished() && !cleaning.is_finished(), "cleanup waits for the call inside");
    assert_eq!(by_name(client, "localhost", "80", 100).0, STATUS_DELETE_PENDING);
    assert_eq!(first.join().expect("first call"), STATUS_IO_TIMEOUT);
    assert_eq!(cleaning.join().expect("cleanup"), STATUS_SUCCESS);
    assert_eq!(hostkernel::resolver_calls(), 1);
    k.finish();
}

/// Polls `cond` (every millisecond, for up to 10 seconds) until it holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The host kernel's own checks on the resolver: freeing a pointer that is
/// no list from WskGetAddressInfo (or a list freed already: the same
/// lookup) is a violation, and so is WskFreeAddressInfo above
/// PASSIVE_LEVEL. Called on the provider's dispatch table directly.
#[test]
fn the_host_kernel_catches_a_foreign_free_and_a_free_above_passive() {
    extern "system" {
        fn WskRegister(npi: *mut WSK_CLIENT_NPI, reg: *mut WSK_REGISTRATION) -> NTSTATUS;
        fn WskCaptureProviderNPI(reg: *mut WSK_REGISTRATION, wait: u32, npi: *mut WSK_PROVIDER_NPI) -> NTSTATUS;
        fn WskReleaseProviderNPI(reg: *mut WSK_REGISTRATION);
        fn WskDeregister(reg: *mut WSK_REGISTRATION);
    }
    let k = Session::begin();
    let dispatch =
        WSK_CLIENT_DISPATCH { Version: make_wsk_version(1, 0), Reserved: 0, WskClientEvent: ptr::null_mut() };
    let mut client_npi = WSK_CLIENT_NPI { ClientContext: ptr::null_mut(), Dispatch: &dispatch };
    let mut reg = WSK_REGISTRATION {
        ReservedRegistrationState: 0,
        ReservedRegistrationContext: ptr::null_mut(),
        ReservedRegistrationLock: 0,
    };
    let mut provider = WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() };
    // SAFETY: valid NPI and registration storage, PASSIVE_LEVEL.
    assert_eq!(unsafe { WskRegister(&mut client_npi, &mut reg) }, STATUS_SUCCESS);
    // SAFETY: a registered registration; no wait.
    assert_eq!(unsafe { WskCaptureProviderNPI(&mut reg, 0, &mut provider) }, STATUS_SUCCESS);
    // SAFETY: the captured provider's dispatch table (static in the host).
    let entry = unsafe { (*provider.Dispatch).WskFreeAddressInfo };
    assert!(!entry.is_null());
    // SAFETY: the entry is a PFN_WSK_FREE_ADDRESS_INFO.
    let free = unsafe { std::mem::transmute::<PVOID, PFN_WSK_FREE_ADDRESS_INFO>(entry) };
    let mut foreign = [0u8; 72];
    // SAFETY: the misuse under test: the host looks the pointer up before
    // touching it.
    unsafe { free(provider.Client, foreign.as_mut_ptr().cast()) };
    assert!(hostkernel::violations().iter().any(|v| v.contains("is not a list from WskGetAddressInfo")));
    // SAFETY: as above, at DISPATCH_LEVEL.
    hostkernel::with_irql(DISPATCH_LEVEL, || unsafe { free(provider.Client, foreign.as_mut_ptr().cast()) });
    assert!(hostkernel::violations().iter().any(|v| v.contains("WskFreeAddressInfo above PASSIVE_LEVEL")));
    // SAFETY: the capture above, released once; then deregistered.
    unsafe { WskReleaseProviderNPI(&mut reg) };
    // SAFETY: registered, nothing captured or open.
    unsafe { WskDeregister(&mut reg) };
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| k.finish())).expect_err("violations fail");
    let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("not a list"), "{msg}");
}
