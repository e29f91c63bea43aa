//! The check order of the server and datagram exports (issue 20), as
//! tests/check_order.rs shows it for the others: parameters by position,
//! then the IRQL, then the client or the socket. A call wrong in two places
//! reports the lower position; a call with a wrong parameter made above the
//! allowed IRQL reports the parameter, not STATUS_INVALID_LEVEL; a stale
//! socket handle (closed listening or datagram socket, of every kind) and a
//! stale client handle (cleaned up) are parameter 1 at every IRQL, and
//! nothing reaches the provider.

mod common;

use std::ptr;

use common::servers::*;
use common::*;
use safewsk::nt::*;
use safewsk::*;

/// One row: the export, what is wrong, the status, the status wanted.
type Row = (&'static str, String, NTSTATUS, NTSTATUS);

fn check(rows: &[Row]) {
    let mut bad = Vec::new();
    for (export, what, got, want) in rows {
        eprintln!("{export:<24} {what:<60} {got:#010x}");
        if got != want {
            bad.push(format!("{export}: {what}: got {got:#x}, want {want:#x}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

/// A UTF-16 copy of `s` and a UNICODE_STRING over it.
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
}

#[test]
fn two_bad_parameters_report_the_lower_and_a_bad_parameter_wins_over_the_irql() {
    let k = Session::begin();
    let client = startup();
    let (listener, _) = listen(client, "127.0.0.1:0");
    let (dgram, at) = datagram(client, "127.0.0.1:0");
    let local = Addr::parse("127.0.0.1:0");
    let to = Addr::from(at);
    let bad_options = SAFEWSK_SOCKET_OPTIONS { Size: 1, ..Default::default() };
    let table =
        WSK_CLIENT_CONNECTION_DISPATCH { WskReceiveEvent: None, WskDisconnectEvent: None, WskSendBacklogEvent: None };
    let (node, service) = (Us::new("localhost"), Us::new("80"));
    let mut out = ptr::null_mut();
    let mut buf = [0u8; 8];
    let mut n = 0u32;
    let mut addrs = [SAFEWSK_ADDRESS::default(); 2];
    let (_, mut req) = accept_request(100);
    let mut rows: Vec<Row> = Vec::new();
    for irql in [PASSIVE_LEVEL, DISPATCH_LEVEL, 3] {
        let at_irql = |f: &mut dyn FnMut() -> NTSTATUS| hostkernel::with_irql(irql, f);
        let w = |what: &str| format!("{what} at IRQL {irql}");
        rows.push((
            "SafeWskListen",
            w("NULL address, bad options"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskListen(client, ptr::null(), &bad_options, &mut out, 100) }),
            STATUS_INVALID_PARAMETER_2,
        ));
        rows.push((
            "SafeWskListen",
            w("bad options, NULL Socket"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskListen(client, local.ptr(), &bad_options, ptr::null_mut(), 100) }),
            STATUS_INVALID_PARAMETER_3,
        ));
        rows.push((
            "SafeWskDatagramSocket",
            w("NULL client, NULL address"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskDatagramSocket(ptr::null_mut(), ptr::null(), ptr::null(), &mut out, 100) }),
            STATUS_INVALID_PARAMETER_1,
        ));
        rows.push((
            "SafeWskDatagramSocket",
            w("bad options, NULL Socket"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskDatagramSocket(client, local.ptr(), &bad_options, ptr::null_mut(), 100) }),
            STATUS_INVALID_PARAMETER_3,
        ));
        rows.push((
            "SafeWskAccept",
            w("context without table, NULL Socket"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe {
                SafeWskAccept(listener, 8 as PVOID, ptr::null(), ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), 0)
            }),
            STATUS_INVALID_PARAMETER_2,
        ));
        rows.push((
            "SafeWskAccept",
            w("empty table, NULL Socket"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe {
                SafeWskAccept(listener, ptr::null_mut(), &table, ptr::null_mut(), ptr::null_mut(), ptr::null_mut(), 0)
            }),
            STATUS_INVALID_PARAMETER_3,
        ));
        rows.push((
            "SafeWskAccept",
            w("NULL Socket"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe {
                SafeWskAccept(
                    listener,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    0,
                )
            }),
            STATUS_INVALID_PARAMETER_4,
        ));
        rows.push((
            "SafeWskAcceptAsync",
            w("empty table, NULL request"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskAcceptAsync(listener, ptr::null_mut(), &table, ptr::null_mut()) }),
            STATUS_INVALID_PARAMETER_3,
        ));
        if irql == 3 {
            rows.push((
                "SafeWskAcceptAsync",
                w("all valid"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe { SafeWskAcceptAsync(listener, ptr::null_mut(), ptr::null(), &mut *req) }),
                STATUS_INVALID_LEVEL,
            ));
            rows.push((
                "SafeWskCancelAccept",
                w("NULL"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe { SafeWskCancelAccept(ptr::null_mut()) }),
                STATUS_INVALID_PARAMETER_1,
            ));
        }
        rows.push((
            "SafeWskSendTo",
            w("NULL buffer, length 0"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskSendTo(dgram, ptr::null(), 0, 0, to.ptr(), 100, &mut n) }),
            STATUS_INVALID_PARAMETER_2,
        ));
        rows.push((
            "SafeWskSendTo",
            w("bad flags, NULL address"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskSendTo(dgram, buf.as_ptr().cast(), 8, 0x10, ptr::null(), 100, &mut n) }),
            STATUS_INVALID_PARAMETER_4,
        ));
        rows.push((
            "SafeWskSendTo",
            w("NULL address"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskSendTo(dgram, buf.as_ptr().cast(), 8, 0, ptr::null(), 100, &mut n) }),
            STATUS_INVALID_PARAMETER_5,
        ));
        rows.push((
            "SafeWskReceiveFrom",
            w("length 0, NULL BytesReceived"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe {
                SafeWskReceiveFrom(dgram, buf.as_mut_ptr().cast(), 0, 0, ptr::null_mut(), 100, ptr::null_mut())
            }),
            STATUS_INVALID_PARAMETER_3,
        ));
        rows.push((
            "SafeWskReceiveFrom",
            w("NULL BytesReceived"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe {
                SafeWskReceiveFrom(dgram, buf.as_mut_ptr().cast(), 8, 0, ptr::null_mut(), 100, ptr::null_mut())
            }),
            STATUS_INVALID_PARAMETER_7,
        ));
        rows.push((
            "SafeWskResolveName",
            w("bad family, NULL array"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe {
                SafeWskResolveName(client, &node.us, &service.us, 9, ptr::null_mut(), 2, &mut n, 100)
            }),
            STATUS_INVALID_PARAMETER_4,
        ));
        rows.push((
            "SafeWskResolveName",
            w("count 0, NULL AddressesReturned"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe {
                SafeWskResolveName(client, &node.us, &service.us, AF_INET, addrs.as_mut_ptr(), 0, ptr::null_mut(), 100)
            }),
            STATUS_INVALID_PARAMETER_6,
        ));
    }
    check(&rows);
    assert_eq!(hostkernel::requests_in_flight(only_wsk_socket_of(2, 0)), 0);
    assert_eq!(hostkernel::resolver_calls(), 0, "no resolution reached the provider");
    assert_eq!(close(listener), STATUS_SUCCESS);
    assert_eq!(close(dgram), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// The `i`th of `n` open WSK sockets (any, for a count that must be 0 on
/// all).
fn only_wsk_socket_of(n: usize, i: usize) -> PVOID {
    let open = hostkernel::wsk::open_sockets();
    assert_eq!(open.len(), n);
    open[i] as PVOID
}

/// Stale handles: a closed listening socket's and a closed datagram
/// socket's, for every socket export that takes them (and the others), at
/// every IRQL: parameter 1, nothing reaches the provider; a cleaned-up
/// client's handle for the client exports of issue 20.
#[test]
fn stale_handles_are_parameter_1_at_every_irql() {
    let k = Session::begin();
    let client = startup();
    let (listener, _) = listen(client, "127.0.0.1:0");
    let (dgram, at) = datagram(client, "127.0.0.1:0");
    assert_eq!(close(listener), STATUS_SUCCESS);
    assert_eq!(close(dgram), STATUS_SUCCESS);
    let other = startup();
    cleanup(other);
    let to = Addr::from(at);
    let local = Addr::parse("127.0.0.1:0");
    let (node, service) = (Us::new("localhost"), Us::new("80"));
    let mut out = ptr::null_mut();
    let mut buf = [0u8; 8];
    let mut n = 0u32;
    let mut a = SAFEWSK_ADDRESS::default();
    let mut addrs = [SAFEWSK_ADDRESS::default(); 2];
    let (ctx, mut req) = accept_request(100);
    let mut v: u32 = 0;
    let mut rows: Vec<Row> = Vec::new();
    for irql in 0..4u8 {
        let at_irql = |f: &mut dyn FnMut() -> NTSTATUS| hostkernel::with_irql(irql, f);
        for (kind, stale) in [("listening", listener), ("datagram", dgram)] {
            let w = |what: &str| format!("{what}, a closed {kind} socket, IRQL {irql}");
            rows.push((
                "SafeWskAccept",
                w("accept"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe {
                    SafeWskAccept(stale, ptr::null_mut(), ptr::null(), &mut out, &mut a, &mut a, 0)
                }),
                STATUS_INVALID_PARAMETER_1,
            ));
            rows.push((
                "SafeWskAcceptAsync",
                w("async accept"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe { SafeWskAcceptAsync(stale, ptr::null_mut(), ptr::null(), &mut *req) }),
                STATUS_INVALID_PARAMETER_1,
            ));
            rows.push((
                "SafeWskSendTo",
                w("send-to"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe { SafeWskSendTo(stale, buf.as_ptr().cast(), 8, 0, to.ptr(), 0, &mut n) }),
                STATUS_INVALID_PARAMETER_1,
            ));
            rows.push((
                "SafeWskReceiveFrom",
                w("receive-from"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe { SafeWskReceiveFrom(stale, buf.as_mut_ptr().cast(), 8, 0, &mut a, 0, &mut n) }),
                STATUS_INVALID_PARAMETER_1,
            ));
            rows.push((
                "SafeWskCloseSocket",
                w("close"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe { SafeWskCloseSocket(stale) }),
                STATUS_INVALID_PARAMETER_1,
            ));
            rows.push((
                "SafeWskGetLocalAddress",
                w("local address"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe {
                    SafeWskGetLocalAddress(stale, (&mut a as *mut SAFEWSK_ADDRESS).cast(), 28, 0)
                }),
                STATUS_INVALID_PARAMETER_1,
            ));
            rows.push((
                "SafeWskControlSocket",
                w("SO_RCVBUF"),
                // SAFETY: pointers NULL or valid for the call; the values are the test.
                at_irql(&mut || unsafe {
                    SafeWskControlSocket(
                        stale,
                        WskGetOption,
                        SO_RCVBUF,
                        SOL_SOCKET,
                        0,
                        ptr::null(),
                        4,
                        (&mut v as *mut u32).cast(),
                        ptr::null_mut(),
                        0,
                    )
                }),
                STATUS_INVALID_PARAMETER_1,
            ));
        }
        let w = |what: &str| format!("{what}, a cleaned-up client, IRQL {irql}");
        rows.push((
            "SafeWskListen",
            w("listen"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskListen(other, local.ptr(), ptr::null(), &mut out, 0) }),
            STATUS_INVALID_PARAMETER_1,
        ));
        rows.push((
            "SafeWskDatagramSocket",
            w("datagram socket"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe { SafeWskDatagramSocket(other, local.ptr(), ptr::null(), &mut out, 0) }),
            STATUS_INVALID_PARAMETER_1,
        ));
        rows.push((
            "SafeWskResolveName",
            w("resolve"),
            // SAFETY: pointers NULL or valid for the call; the values are the test.
            at_irql(&mut || unsafe {
                SafeWskResolveName(other, &node.us, &service.us, AF_INET, addrs.as_mut_ptr(), 2, &mut n, 0)
            }),
            STATUS_INVALID_PARAMETER_1,
        ));
    }
    check(&rows);
    assert!(ctx.seen.calls.lock().unwrap().is_empty(), "no callback for a refused request");
    assert!(hostkernel::wsk::open_sockets().is_empty(), "nothing was made");
    assert_eq!(hostkernel::resolver_calls(), 0);
    assert!(out.is_null());
    cleanup(client);
    k.finish();
}
