//! SafeWskResolveName on the host kernel (issue 20, item 3): the addresses
//! copied into the caller's bounded array (each once, of the family asked
//! for, in the resolver's order), the provider's list freed on every path,
//! one deadline, parameters by position; and a server bound by name (the
//! scenario libwsk's echo server needs).

mod common;

use std::net::{IpAddr, SocketAddr, TcpStream};
use std::ptr;
use std::time::{Duration, Instant};

use common::servers::*;
use common::*;
use safewsk::nt::*;
use safewsk::*;

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

/// A marker in entries that must stay untouched.
const UNTOUCHED: SAFEWSK_ADDRESS = SAFEWSK_ADDRESS { Storage: [0xA5A5_A5A5; 7] };

/// SafeWskResolveName into an array of `count` (+ 1 sentinel) entries:
/// (status, the addresses returned); asserts the sentinel and the entries
/// past the count returned are untouched.
fn resolve(
    client: *mut SAFEWSK_CLIENT,
    node: &str,
    service: &str,
    family: u16,
    count: u32,
    timeout_ms: u32,
) -> (NTSTATUS, Vec<SocketAddr>) {
    let (node, service) = (Us::new(node), Us::new(service));
    let mut out = vec![UNTOUCHED; count as usize + 1];
    let mut returned = 77u32;
    // SAFETY: valid strings, an array of `count` entries, a writable count.
    let st = unsafe {
        SafeWskResolveName(
            client,
            node.ptr(),
            service.ptr(),
            family,
            out.as_mut_ptr(),
            count,
            &mut returned,
            timeout_ms,
        )
    };
    assert!(returned <= count);
    for e in &out[returned as usize..] {
        assert_eq!(*e, UNTOUCHED, "an entry past those returned was written");
    }
    let found = out[..returned as usize].iter().map(|a| addr_of(a).expect("an address")).collect();
    (st, found)
}

#[test]
fn localhost_resolves_and_the_list_is_freed() {
    let k = Session::begin();
    let client = startup();
    let (st, found) = resolve(client, "localhost", "80", AF_UNSPEC, 8, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    assert!(!found.is_empty());
    for a in &found {
        assert!(a.ip().is_loopback(), "{a}");
        assert_eq!(a.port(), 80);
    }
    assert_eq!(hostkernel::address_lists_live(), 0, "the provider's list was freed");
    cleanup(client);
    k.finish();
}

/// The family filter, de-duplication, the bound of the array, and the
/// resolver's order.
#[test]
fn addresses_are_filtered_deduplicated_and_bounded() {
    let k = Session::begin();
    let client = startup();
    let ips: Vec<IpAddr> =
        ["10.0.0.1", "::1", "10.0.0.1", "10.0.0.2", "fe80::1", "10.0.0.3"].iter().map(|s| s.parse().unwrap()).collect();
    hostkernel::set_resolver_answer(Some(ips));
    let v4 = |s: &str| -> SocketAddr { format!("{s}:443").parse().unwrap() };
    let (st, found) = resolve(client, "server.example", "443", AF_INET, 8, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(found, vec![v4("10.0.0.1"), v4("10.0.0.2"), v4("10.0.0.3")], "IPv4 only, each once, in order");
    let (st, found) = resolve(client, "server.example", "443", AF_INET6, 8, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(found.len(), 2);
    assert!(found.iter().all(|a| a.is_ipv6() && a.port() == 443));
    let (st, found) = resolve(client, "server.example", "443", AF_UNSPEC, 2, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(found.len(), 2, "bounded by AddressCount");
    assert_eq!(found[0], v4("10.0.0.1"));
    assert!(found[1].is_ipv6(), "the resolver's order");
    assert_eq!(hostkernel::address_lists_live(), 0);
    hostkernel::set_resolver_answer(Some(vec!["::1".parse().unwrap()]));
    let (st, found) = resolve(client, "server.example", "443", AF_INET, 8, 2000);
    assert_eq!((st, found.len()), (STATUS_NOT_FOUND, 0), "no address of the family asked for");
    assert_eq!(hostkernel::address_lists_live(), 0, "freed on failure too");
    cleanup(client);
    k.finish();
}

#[test]
fn an_unknown_name_a_failure_and_the_deadline() {
    let k = Session::begin();
    let client = startup();
    assert_eq!(resolve(client, "nothing.invalid", "80", AF_UNSPEC, 4, 5000).0, STATUS_NOT_FOUND);
    hostkernel::set_resolver_error(Some(STATUS_NETWORK_UNREACHABLE));
    assert_eq!(resolve(client, "localhost", "80", AF_UNSPEC, 4, 5000).0, STATUS_NETWORK_UNREACHABLE);
    hostkernel::set_resolver_error(None);
    hostkernel::set_resolver_hangs(true);
    let t0 = Instant::now();
    assert_eq!(resolve(client, "localhost", "80", AF_UNSPEC, 4, 100).0, STATUS_IO_TIMEOUT);
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert_eq!(resolve(client, "localhost", "80", AF_UNSPEC, 4, 0).0, STATUS_IO_TIMEOUT);
    hostkernel::set_resolver_hangs(false);
    assert_eq!(hostkernel::address_lists_live(), 0);
    cleanup(client);
    k.finish();
}

#[test]
fn parameters_are_checked_by_position() {
    let k = Session::begin();
    let client = startup();
    let (node, service) = (Us::new("localhost"), Us::new("80"));
    let empty = UNICODE_STRING { Length: 0, MaximumLength: 0, Buffer: ptr::null_mut() };
    let mut out = [SAFEWSK_ADDRESS::default(); 4];
    let mut n = 0u32;
    let call = |c,
                nd: *const UNICODE_STRING,
                sv: *const UNICODE_STRING,
                f: u16,
                o: *mut SAFEWSK_ADDRESS,
                count,
                r: *mut u32| {
        // SAFETY: every pointer is NULL or valid; the values are the test.
        unsafe { SafeWskResolveName(c, nd, sv, f, o, count, r, 1000) }
    };
    let o = out.as_mut_ptr();
    assert_eq!(call(ptr::null_mut(), node.ptr(), service.ptr(), 0, o, 4, &mut n), STATUS_INVALID_PARAMETER_1);
    assert_eq!(call(client, ptr::null(), service.ptr(), 0, o, 4, &mut n), STATUS_INVALID_PARAMETER_2);
    assert_eq!(call(client, &empty, service.ptr(), 0, o, 4, &mut n), STATUS_INVALID_PARAMETER_2);
    assert_eq!(call(client, node.ptr(), ptr::null(), 0, o, 4, &mut n), STATUS_INVALID_PARAMETER_3);
    assert_eq!(call(client, node.ptr(), service.ptr(), 7, o, 4, &mut n), STATUS_INVALID_PARAMETER_4);
    assert_eq!(call(client, node.ptr(), service.ptr(), 0, ptr::null_mut(), 4, &mut n), STATUS_INVALID_PARAMETER_5);
    assert_eq!(call(client, node.ptr(), service.ptr(), 0, o, 0, &mut n), STATUS_INVALID_PARAMETER_6);
    assert_eq!(call(client, node.ptr(), service.ptr(), 0, o, 4, ptr::null_mut()), STATUS_INVALID_PARAMETER_7);
    let st = hostkernel::with_irql(APC_LEVEL, || call(client, node.ptr(), service.ptr(), 0, o, 4, &mut n));
    assert_eq!(st, STATUS_INVALID_LEVEL, "PASSIVE_LEVEL only");
    // Above APC_LEVEL the strings are not read: an empty one is not _2.
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || call(client, &empty, service.ptr(), 0, o, 4, &mut n));
    assert_eq!(st, STATUS_INVALID_LEVEL);
    assert_eq!(hostkernel::resolver_calls(), 0, "nothing reached the provider");
    cleanup(client);
    k.finish();
}

/// A server bound by name: resolve "localhost" for IPv4 with port "0",
/// listen on the answer, accept a connection.
#[test]
fn a_server_binds_by_name() {
    let k = Session::begin();
    let client = startup();
    let (st, found) = resolve(client, "localhost", "0", AF_INET, 1, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    let (listener, at) = listen(client, &found[0].to_string());
    assert!(at.ip().is_loopback());
    let _peer = TcpStream::connect(at).expect("connect");
    let a = accept(listener, 5000);
    assert_eq!(a.status, STATUS_SUCCESS);
    assert_eq!(close(a.socket), STATUS_SUCCESS);
    assert_eq!(close(listener), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
