//! Every export checks in one order: parameters by position, then the IRQL,
//! then entering the client. For each export: a call wrong in two places
//! reports the lower position, and a call with a wrong parameter made above
//! the allowed IRQL reports the parameter, not STATUS_INVALID_LEVEL.

mod common;

use std::ffi::c_void;
use std::ptr;

use common::*;
use safewsk::nt::*;
use safewsk::*;

/// One row: the export, what is wrong, the status, the status wanted.
type Row = (&'static str, &'static str, NTSTATUS, NTSTATUS);

fn check(rows: &[Row]) {
    let mut bad = Vec::new();
    for &(export, what, got, want) in rows {
        eprintln!("{export:<26} {what:<58} {got:#010x}");
        if got != want {
            bad.push(format!("{export}: {what}: got {got:#x}, want {want:#x}"));
        }
    }
    assert!(bad.is_empty(), "{bad:#?}");
}

// One table of calls into the C API whose pointers are all null, valid, or a
// socket the library only looks up: one unsafe block for the table.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn every_export_checks_parameters_by_position_then_the_irql() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let (st, closed) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(closed), STATUS_SUCCESS);

    let local = Addr::parse("0.0.0.0:0");
    let remote = Addr::from(server);
    let bad_remote = Addr::parse("127.0.0.1:0");
    let mut buf = [0u8; 8];
    let b = buf.as_mut_ptr().cast::<c_void>();
    let mut sa_buf = [0u8; 28];
    let sa = sa_buf.as_mut_ptr().cast::<SOCKADDR>();
    let mut n = 0u32;
    let mut out: *mut SAFEWSK_SOCKET = ptr::null_mut();
    let mut new_client: *mut SAFEWSK_CLIENT = ptr::null_mut();
    let high = |f: &mut dyn FnMut() -> NTSTATUS| hostkernel::with_irql(3, f);
    let connect_with =
        |c: *mut SAFEWSK_CLIENT, ty: u16, proto: u32, r: &Addr, flags: u32, o: *mut *mut SAFEWSK_SOCKET| {
            // SAFETY: valid addresses; `o` is null or valid.
            unsafe {
                SafeWskSocketConnect(
                    c,
                    ty,
                    proto,
                    local.ptr(),
                    r.ptr(),
                    flags,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    o,
                    100,
                )
            }
        };
    let mut req = new_request(None, ptr::null_mut(), 100);
    // A SECURITY_DESCRIPTOR of revision 1 (never cached), a misaligned
    // pointer into it, and an out variable for a cached copy.
    let mut sd_buf = [1u64, 0, 0, 0, 0];
    let sd = sd_buf.as_mut_ptr().cast::<c_void>();
    let sd_misaligned = sd.cast::<u8>().wrapping_add(1).cast::<c_void>();
    let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();

    // SAFETY: every pointer below is null, valid, or a socket pointer the
    // library only looks up (never dereferences) when it is not open.
    let rows: Vec<Row> = unsafe {
        vec![
            (
                "SafeWskStartup",
                "1 NULL device, 3 NULL Client",
                SafeWskStartup(ptr::null_mut(), 0, ptr::null_mut()),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskStartup",
                "3 NULL Client at IRQL 3",
                high(&mut || SafeWskStartup(dev(), 0, ptr::null_mut())),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "SafeWskStartup",
                "valid at IRQL 3",
                high(&mut || SafeWskStartup(dev(), 0, &mut new_client)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskCleanup",
                "1 NULL client at IRQL 3",
                high(&mut || SafeWskCleanup(ptr::null_mut())),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskSocketConnect",
                "2 SOCK_DGRAM, 3 UDP",
                connect_with(client, SOCK_DGRAM, IPPROTO_UDP, &remote, 0, &mut out),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskSocketConnect",
                "1 NULL client, 5 port 0",
                connect_with(ptr::null_mut(), SOCK_STREAM, IPPROTO_TCP, &bad_remote, 0, &mut out),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskSocketConnect",
                "5 port 0, 6 Flags, 12 NULL",
                connect_with(client, SOCK_STREAM, IPPROTO_TCP, &bad_remote, 1, ptr::null_mut()),
                STATUS_INVALID_PARAMETER_5,
            ),
            (
                "SafeWskSocketConnect",
                "6 Flags at IRQL 3",
                high(&mut || connect_with(client, SOCK_STREAM, IPPROTO_TCP, &remote, 1, &mut out)),
                STATUS_INVALID_PARAMETER_6,
            ),
            (
                "SafeWskSocketConnect",
                "12 NULL Socket at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || {
                    connect_with(client, SOCK_STREAM, IPPROTO_TCP, &remote, 0, ptr::null_mut())
                }),
                STATUS_INVALID_PARAMETER_12,
            ),
            (
                "SafeWskSocketConnectAsync",
                "5 port 0, 12 no callback",
                start_async(client, &local, &bad_remote, &mut req),
                STATUS_INVALID_PARAMETER_5,
            ),
            (
                "SafeWskSocketConnectAsync",
                "12 no callback at IRQL 3",
                high(&mut || start_async(client, &local, &remote, &mut req)),
                STATUS_INVALID_PARAMETER_12,
            ),
            (
                "SafeWskCancelConnect",
                "1 NULL request at IRQL 3",
                high(&mut || SafeWskCancelConnect(ptr::null_mut())),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskSend",
                "1 NULL socket, 2 NULL buffer",
                SafeWskSend(ptr::null_mut(), ptr::null(), 8, 0, 100, &mut n),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskSend",
                "1 closed socket, 2 NULL buffer",
                SafeWskSend(closed, ptr::null(), 8, 0, 100, &mut n),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskSend",
                "2 NULL buffer, 3 Length 0",
                SafeWskSend(socket, ptr::null(), 0, 0, 100, &mut n),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskSend",
                "3 Length 0, 4 Flags",
                SafeWskSend(socket, b, 0, 0x80, 100, &mut n),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "SafeWskSend",
                "4 Flags at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskSend(socket, b, 8, 0x80, 100, &mut n)),
                STATUS_INVALID_PARAMETER_4,
            ),
            (
                "SafeWskSend",
                "valid at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskSend(socket, b, 8, 0, 100, &mut n)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskReceive",
                "1 closed socket, 6 NULL BytesReceived",
                SafeWskReceive(closed, b, 8, 0, 100, ptr::null_mut()),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskReceive",
                "4 Flags, 6 NULL BytesReceived",
                SafeWskReceive(socket, b, 8, 0x80, 100, ptr::null_mut()),
                STATUS_INVALID_PARAMETER_4,
            ),
            (
                "SafeWskReceive",
                "6 NULL BytesReceived at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskReceive(socket, b, 8, 0, 100, ptr::null_mut())),
                STATUS_INVALID_PARAMETER_6,
            ),
            (
                "SafeWskReceive",
                "valid at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskReceive(socket, b, 8, 0, 100, &mut n)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskGetLocalAddress",
                "1 NULL socket, 2 NULL address",
                SafeWskGetLocalAddress(ptr::null_mut(), ptr::null_mut(), 28, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskGetLocalAddress",
                "1 closed socket, 3 length 0",
                SafeWskGetLocalAddress(closed, sa, 0, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskGetLocalAddress",
                "2 NULL address, 3 length 0",
                SafeWskGetLocalAddress(socket, ptr::null_mut(), 0, 100),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskGetLocalAddress",
                "3 length 8 at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskGetLocalAddress(socket, sa, 8, 100)),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "SafeWskGetLocalAddress",
                "valid at IRQL 3",
                high(&mut || SafeWskGetLocalAddress(socket, sa, 28, 100)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskGetRemoteAddress",
                "1 NULL socket, 2 NULL address",
                SafeWskGetRemoteAddress(ptr::null_mut(), ptr::null_mut(), 28, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskGetRemoteAddress",
                "1 closed socket, 3 length 0",
                SafeWskGetRemoteAddress(closed, sa, 0, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskGetRemoteAddress",
                "2 NULL address, 3 length 0",
                SafeWskGetRemoteAddress(socket, ptr::null_mut(), 0, 100),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskGetRemoteAddress",
                "3 length 8 at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskGetRemoteAddress(socket, sa, 8, 100)),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "SafeWskGetRemoteAddress",
                "valid at IRQL 3",
                high(&mut || SafeWskGetRemoteAddress(socket, sa, 28, 100)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskDisconnect",
                "1 NULL socket, 2 Flags",
                SafeWskDisconnect(ptr::null_mut(), 0x80, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskDisconnect",
                "1 closed socket, 2 Flags",
                SafeWskDisconnect(closed, 0x80, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskDisconnect",
                "2 Flags at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskDisconnect(socket, 0x80, 100)),
                STATUS_INVALID_PARAMETER_2,
            ),
            ("SafeWskCloseSocket", "1 NULL socket", SafeWskCloseSocket(ptr::null_mut()), STATUS_INVALID_PARAMETER_1),
            (
                "SafeWskCloseSocket",
                "1 closed socket at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskCloseSocket(closed)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskCloseSocket",
                "valid at DISPATCH_LEVEL (the socket stays open)",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskCloseSocket(socket)),
                STATUS_INVALID_LEVEL,
            ),
            // Above DISPATCH_LEVEL too, parameter 1 is checked in full: the handle
            // check reads only the library's own table (issue 17; before, only
            // NULL was checked there, since it needed the client's spin lock).
            (
                "SafeWskSend",
                "1 NULL socket at IRQL 3",
                high(&mut || SafeWskSend(ptr::null_mut(), b, 8, 0, 100, &mut n)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskSend",
                "1 closed socket at IRQL 3",
                high(&mut || SafeWskSend(closed, b, 8, 0, 100, &mut n)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskSend",
                "4 Flags at IRQL 3",
                high(&mut || SafeWskSend(socket, b, 8, 0x80, 100, &mut n)),
                STATUS_INVALID_PARAMETER_4,
            ),
            (
                "SafeWskSend",
                "valid at IRQL 3",
                high(&mut || SafeWskSend(socket, b, 8, 0, 100, &mut n)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskReceive",
                "1 closed socket at IRQL 3",
                high(&mut || SafeWskReceive(closed, b, 8, 0, 100, &mut n)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskReceive",
                "valid at IRQL 3",
                high(&mut || SafeWskReceive(socket, b, 8, 0, 100, &mut n)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskDisconnect",
                "1 closed socket at IRQL 3",
                high(&mut || SafeWskDisconnect(closed, 0, 100)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskDisconnect",
                "valid at IRQL 3",
                high(&mut || SafeWskDisconnect(socket, 0, 100)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskCloseSocket",
                "1 closed socket at IRQL 3",
                high(&mut || SafeWskCloseSocket(closed)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskCloseSocket",
                "valid at IRQL 3 (the socket stays open)",
                high(&mut || SafeWskCloseSocket(socket)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskCacheSecurityDescriptor",
                "1 NULL client, 2 NULL descriptor",
                SafeWskCacheSecurityDescriptor(ptr::null_mut(), ptr::null_mut(), &mut cached),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskCacheSecurityDescriptor",
                "2 misaligned descriptor, 3 NULL out",
                SafeWskCacheSecurityDescriptor(client, sd_misaligned, ptr::null_mut()),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskCacheSecurityDescriptor",
                "3 NULL out at IRQL 3",
                high(&mut || SafeWskCacheSecurityDescriptor(client, sd, ptr::null_mut())),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "SafeWskCacheSecurityDescriptor",
                "valid at DISPATCH_LEVEL (the descriptor is not read)",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskCacheSecurityDescriptor(client, sd, &mut cached)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskReleaseSecurityDescriptor",
                "1 NULL client, 2 NULL descriptor",
                SafeWskReleaseSecurityDescriptor(ptr::null_mut(), ptr::null_mut()),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskReleaseSecurityDescriptor",
                "2 NULL descriptor at IRQL 3",
                high(&mut || SafeWskReleaseSecurityDescriptor(client, ptr::null_mut())),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskReleaseSecurityDescriptor",
                "uncached at DISPATCH_LEVEL (looked up after the IRQL)",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskReleaseSecurityDescriptor(client, sd)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskReleaseSecurityDescriptor",
                "2 never cached",
                SafeWskReleaseSecurityDescriptor(client, sd),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskSocketConnect",
                "11 uncached descriptor, 12 NULL at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || {
                    SafeWskSocketConnect(
                        client,
                        SOCK_STREAM,
                        IPPROTO_TCP,
                        local.ptr(),
                        remote.ptr(),
                        0,
                        ptr::null_mut(),
                        ptr::null(),
                        ptr::null_mut(),
                        ptr::null_mut(),
                        sd,
                        ptr::null_mut(),
                        100,
                    )
                }),
                STATUS_INVALID_PARAMETER_11,
            ),
        ]
    };
    check(&rows);
    assert!(out.is_null() && new_client.is_null() && cached.is_null());
    assert_eq!(hostkernel::cached_sd_count(), 0, "no descriptor reached the provider's cache");
    assert_eq!(hostkernel::provider_connect_calls(), 2, "only the two set-up connects reached the provider");
    // The close refused at DISPATCH_LEVEL left the socket open and usable.
    assert_eq!(send(socket, b"still"), (STATUS_SUCCESS, 5));
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// SafeWskConnectByName (PASSIVE_LEVEL only): parameters by position, then
/// the IRQL; above APC_LEVEL the strings are not read, only their pointers.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn connect_by_name_checks_parameters_by_position_then_the_irql() {
    let k = Session::begin();
    let client = startup();
    let mut node_chars: Vec<u16> = "localhost".encode_utf16().collect();
    let node = UNICODE_STRING { Length: 18, MaximumLength: 18, Buffer: node_chars.as_mut_ptr() };
    let mut svc_chars: Vec<u16> = "80".encode_utf16().collect();
    let svc = UNICODE_STRING { Length: 4, MaximumLength: 4, Buffer: svc_chars.as_mut_ptr() };
    let odd = UNICODE_STRING { Length: 3, MaximumLength: 4, Buffer: svc_chars.as_mut_ptr() };
    let mut out: *mut SAFEWSK_SOCKET = ptr::null_mut();
    let o: *mut *mut SAFEWSK_SOCKET = &mut out;
    let mut sa_buf = [0u8; 28];
    let sa = sa_buf.as_mut_ptr().cast::<SOCKADDR>();
    let nul = ptr::null::<UNICODE_STRING>();
    let none = ptr::null_mut::<c_void>();
    let high = |irql: u8, f: &mut dyn FnMut() -> NTSTATUS| hostkernel::with_irql(irql, f);
    // SAFETY: every pointer below is NULL or valid for the call.
    let rows: Vec<Row> = unsafe {
        vec![
            (
                "SafeWskConnectByName",
                "1 NULL client, 2 NULL node, 6 NULL Socket",
                SafeWskConnectByName(ptr::null_mut(), nul, &svc, none, ptr::null(), ptr::null_mut(), sa, 28, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskConnectByName",
                "2 NULL node, 3 odd service",
                SafeWskConnectByName(client, nul, &odd, none, ptr::null(), o, sa, 28, 100),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskConnectByName",
                "3 odd service, 4 context without table, 8 short",
                SafeWskConnectByName(client, &node, &odd, 0x10 as PVOID, ptr::null(), o, sa, 1, 100),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "SafeWskConnectByName",
                "6 NULL Socket, 8 short",
                SafeWskConnectByName(client, &node, &svc, none, ptr::null(), ptr::null_mut(), sa, 1, 100),
                STATUS_INVALID_PARAMETER_6,
            ),
            (
                "SafeWskConnectByName",
                "3 NULL service at IRQL 3",
                high(3, &mut || SafeWskConnectByName(client, &node, nul, none, ptr::null(), o, sa, 28, 100)),
                STATUS_INVALID_PARAMETER_3,
            ),
            (
                "SafeWskConnectByName",
                "8 short RemoteAddress at DISPATCH_LEVEL",
                high(DISPATCH_LEVEL, &mut || {
                    SafeWskConnectByName(client, &node, &svc, none, ptr::null(), o, sa, 16, 100)
                }),
                STATUS_INVALID_PARAMETER_8,
            ),
            (
                "SafeWskConnectByName",
                "valid at APC_LEVEL",
                high(APC_LEVEL, &mut || SafeWskConnectByName(client, &node, &svc, none, ptr::null(), o, sa, 28, 100)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskConnectByName",
                "valid at IRQL 3",
                high(3, &mut || SafeWskConnectByName(client, &node, &svc, none, ptr::null(), o, sa, 28, 100)),
                STATUS_INVALID_LEVEL,
            ),
        ]
    };
    check(&rows);
    assert!(out.is_null());
    assert_eq!(hostkernel::resolver_calls(), 0, "no call reached the provider");
    cleanup(client);
    k.finish();
}

/// SafeWskSocketConnectWithOptions (issue 10, item 2): parameters 1 to 7 by
/// position, then the IRQL, then the client.
// One table of calls whose pointers are all null or valid.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn socket_connect_with_options_checks_parameters_by_position_then_the_irql() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let local = Addr::parse("0.0.0.0:0");
    let remote = Addr::from(server);
    let bad_remote = Addr::parse("127.0.0.1:0");
    let size = std::mem::size_of::<SAFEWSK_SOCKET_OPTIONS>() as u32;
    let good =
        SAFEWSK_SOCKET_OPTIONS { Size: size, Mask: SAFEWSK_OPTION_KEEPALIVE, KeepAlive: 1, ..Default::default() };
    let bad = SAFEWSK_SOCKET_OPTIONS { Size: size + 4, ..Default::default() };
    let mut out: *mut SAFEWSK_SOCKET = ptr::null_mut();
    let high = |f: &mut dyn FnMut() -> NTSTATUS| hostkernel::with_irql(3, f);
    let call =
        |c: *mut SAFEWSK_CLIENT, r: &Addr, o: &SAFEWSK_SOCKET_OPTIONS, ctx: PVOID, s: *mut *mut SAFEWSK_SOCKET| {
            // SAFETY: valid addresses and options; `s` is null or valid; `ctx`
            // is never dereferenced (no dispatch table).
            unsafe { SafeWskSocketConnectWithOptions(c, local.ptr(), r.ptr(), o, ctx, ptr::null(), s, 100) }
        };
    let ctx = 0x1000 as PVOID;
    let rows: Vec<Row> = vec![
        (
            "SafeWskSocketConnectWithOptions",
            "1 NULL client, 3 port 0",
            call(ptr::null_mut(), &bad_remote, &good, ptr::null_mut(), &mut out),
            STATUS_INVALID_PARAMETER_1,
        ),
        (
            "SafeWskSocketConnectWithOptions",
            "3 port 0, 4 Size",
            call(client, &bad_remote, &bad, ptr::null_mut(), &mut out),
            STATUS_INVALID_PARAMETER_3,
        ),
        (
            "SafeWskSocketConnectWithOptions",
            "4 Size, 5 context without table, 7 NULL",
            call(client, &remote, &bad, ctx, ptr::null_mut()),
            STATUS_INVALID_PARAMETER_4,
        ),
        (
            "SafeWskSocketConnectWithOptions",
            "5 context without table, 7 NULL",
            call(client, &remote, &good, ctx, ptr::null_mut()),
            STATUS_INVALID_PARAMETER_5,
        ),
        (
            "SafeWskSocketConnectWithOptions",
            "4 Size at IRQL 3",
            high(&mut || call(client, &remote, &bad, ptr::null_mut(), &mut out)),
            STATUS_INVALID_PARAMETER_4,
        ),
        (
            "SafeWskSocketConnectWithOptions",
            "7 NULL Socket at DISPATCH_LEVEL",
            hostkernel::with_irql(DISPATCH_LEVEL, || call(client, &remote, &good, ptr::null_mut(), ptr::null_mut())),
            STATUS_INVALID_PARAMETER_7,
        ),
        (
            "SafeWskSocketConnectWithOptions",
            "valid at DISPATCH_LEVEL",
            hostkernel::with_irql(DISPATCH_LEVEL, || call(client, &remote, &good, ptr::null_mut(), &mut out)),
            STATUS_INVALID_LEVEL,
        ),
    ];
    check(&rows);
    assert!(out.is_null());
    assert!(hostkernel::wsk::open_sockets().is_empty(), "nothing reached the provider");
    cleanup(client);
    k.finish();
}

/// SafeWskEnableCallbacks / SafeWskDisableCallbacks (issue 10, item 3).
// One table of calls whose pointers are null or looked up only.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn event_callback_exports_check_parameters_by_position_then_the_irql() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let (st, closed) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(closed), STATUS_SUCCESS);
    let high = |f: &mut dyn FnMut() -> NTSTATUS| hostkernel::with_irql(3, f);
    // SAFETY: null pointers, or sockets the library only looks up.
    let rows: Vec<Row> = unsafe {
        vec![
            (
                "SafeWskEnableCallbacks",
                "1 NULL socket, 2 mask 0",
                SafeWskEnableCallbacks(ptr::null_mut(), 0),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskEnableCallbacks",
                "1 closed socket, 2 mask 0",
                SafeWskEnableCallbacks(closed, 0),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskEnableCallbacks",
                "1 closed socket at IRQL 3",
                high(&mut || SafeWskEnableCallbacks(closed, WSK_EVENT_RECEIVE)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskEnableCallbacks",
                "2 WSK_EVENT_DISABLE at IRQL 3 (the form of 2)",
                high(&mut || SafeWskEnableCallbacks(socket, WSK_EVENT_DISABLE | WSK_EVENT_RECEIVE)),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskEnableCallbacks",
                "2 no Dispatch table, at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskEnableCallbacks(socket, WSK_EVENT_RECEIVE)),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskEnableCallbacks",
                "valid form at IRQL 3 (the table is checked once acquired)",
                high(&mut || SafeWskEnableCallbacks(socket, WSK_EVENT_RECEIVE)),
                STATUS_INVALID_LEVEL,
            ),
            (
                "SafeWskDisableCallbacks",
                "1 NULL socket, 2 mask 0",
                SafeWskDisableCallbacks(ptr::null_mut(), 0, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskDisableCallbacks",
                "1 closed socket, 2 mask 0",
                SafeWskDisableCallbacks(closed, 0, 100),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskDisableCallbacks",
                "2 mask 0",
                SafeWskDisableCallbacks(socket, 0, 100),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskDisableCallbacks",
                "2 mask 0 at DISPATCH_LEVEL",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskDisableCallbacks(socket, 0, 100)),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskDisableCallbacks",
                "1 NULL socket at IRQL 3",
                high(&mut || SafeWskDisableCallbacks(ptr::null_mut(), 0, 100)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskDisableCallbacks",
                "1 closed socket at IRQL 3",
                high(&mut || SafeWskDisableCallbacks(closed, WSK_EVENT_RECEIVE, 100)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "SafeWskDisableCallbacks",
                "2 no Dispatch table at DISPATCH_LEVEL (acquired there: a parameter before the IRQL)",
                hostkernel::with_irql(DISPATCH_LEVEL, || SafeWskDisableCallbacks(socket, WSK_EVENT_RECEIVE, 100)),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "SafeWskDisableCallbacks",
                "valid form at IRQL 3 (the table is checked once acquired)",
                high(&mut || SafeWskDisableCallbacks(socket, WSK_EVENT_RECEIVE, 100)),
                STATUS_INVALID_LEVEL,
            ),
        ]
    };
    check(&rows);
    assert!(hostkernel::violations().is_empty(), "the provider never saw a bad request");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

unsafe extern "system" fn on_receive(_: PVOID, _: ULONG, _: PVOID, _: SIZE_T, _: *mut SIZE_T) -> NTSTATUS {
    STATUS_SUCCESS
}

/// A Dispatch table with a receive callback: a socket made with it accepts
/// SafeWskEnableCallbacks(WSK_EVENT_RECEIVE), so a stale handle that were
/// taken for its socket would reach the provider.
static DISPATCH: WSK_CLIENT_CONNECTION_DISPATCH = WSK_CLIENT_CONNECTION_DISPATCH {
    WskReceiveEvent: Some(on_receive),
    WskDisconnectEvent: None,
    WskSendBacklogEvent: None,
};

/// SafeWskSocketConnect with [`DISPATCH`] (and no context).
fn connect_with_dispatch(client: *mut SAFEWSK_CLIENT, server: std::net::SocketAddr) -> *mut SAFEWSK_SOCKET {
    let (local, remote) = (Addr::wildcard_like(server), Addr::from(server));
    let mut socket = ptr::null_mut();
    // SAFETY: valid addresses, table and out pointer for the call; the table
    // is static.
    let st = unsafe {
        SafeWskSocketConnect(
            client,
            SOCK_STREAM,
            IPPROTO_TCP,
            local.ptr(),
            remote.ptr(),
            0,
            ptr::null_mut(),
            &DISPATCH,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut socket,
            2000,
        )
    };
    assert_eq!(st, STATUS_SUCCESS);
    socket
}

/// The slot index a socket handle names (its low 16 bits: issue 17's
/// encoding, slot index + generation + epoch under the tag byte 0xA5).
fn slot_of(h: *mut SAFEWSK_SOCKET) -> usize {
    h as usize & 0xFFFF
}

/// Every socket export called with `h` and otherwise valid arguments: `b`
/// 8 writable bytes, `sa` 28 writable bytes, `n` writable.
fn every_socket_export(
    h: *mut SAFEWSK_SOCKET,
    b: *mut c_void,
    sa: *mut SOCKADDR,
    n: &mut u32,
) -> Vec<(&'static str, NTSTATUS)> {
    // SAFETY: every pointer is valid for the call; any handle value is safe.
    #[allow(clippy::multiple_unsafe_ops_per_block)]
    unsafe {
        vec![
            ("SafeWskSend", SafeWskSend(h, b, 8, 0, 100, n)),
            ("SafeWskReceive", SafeWskReceive(h, b, 8, 0, 100, n)),
            ("SafeWskGetLocalAddress", SafeWskGetLocalAddress(h, sa, 28, 100)),
            ("SafeWskGetRemoteAddress", SafeWskGetRemoteAddress(h, sa, 28, 100)),
            ("SafeWskDisconnect", SafeWskDisconnect(h, 0, 100)),
            ("SafeWskEnableCallbacks", SafeWskEnableCallbacks(h, WSK_EVENT_RECEIVE)),
            ("SafeWskDisableCallbacks", SafeWskDisableCallbacks(h, WSK_EVENT_RECEIVE, 100)),
            ("SafeWskCloseSocket", SafeWskCloseSocket(h)),
        ]
    }
}

/// Issue 17: a handle that outlived its socket is STATUS_INVALID_PARAMETER_1
/// for every socket export at PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL and
/// above (the check reads only the library's table), both while its slot is
/// free and once the slot serves another socket, and the provider is never
/// called: every provider socket function is made to fail with
/// STATUS_NOT_IMPLEMENTED meanwhile (so a call that reached it would not
/// return _1), the socket now in the slot stays open and untouched, and
/// nothing reaches its peer.
#[test]
fn a_stale_socket_handle_is_parameter_1_at_every_irql_for_every_socket_export() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let stale = connect_with_dispatch(client, server);
    assert_eq!(close(stale), STATUS_SUCCESS);
    // Slots are reused first in, first out: connect and close until the
    // stale handle's slot serves a new socket.
    let mut free_slot = ptr::null_mut();
    let mut live = ptr::null_mut();
    for _ in 0..200 {
        let s = connect_with_dispatch(client, server);
        if slot_of(s) == slot_of(stale) {
            live = s;
            break;
        }
        assert_eq!(close(s), STATUS_SUCCESS);
        free_slot = s;
    }
    assert!(!live.is_null(), "the stale handle's slot was never reused");
    assert_ne!(live, stale, "a new generation");
    assert!(!free_slot.is_null() && slot_of(free_slot) != slot_of(stale));
    assert_eq!(hostkernel::live().sockets, 1);

    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    hostkernel::set_call_fault(
        hostkernel::WskCall::EventCallback,
        0,
        hostkernel::CallFault::Fail(STATUS_NOT_IMPLEMENTED),
    );
    let mut buf = [0u8; 8];
    let b = buf.as_mut_ptr().cast::<c_void>();
    let mut sa_buf = [0xA5u8; 28];
    let sa = sa_buf.as_mut_ptr().cast::<SOCKADDR>();
    let mut n = 0u32;
    let mut rows: Vec<Row> = Vec::new();
    for (kind, h) in [("closed, slot free", free_slot), ("closed, slot reused", stale)] {
        for irql in [PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL, 3] {
            for (export, got) in hostkernel::with_irql(irql, || every_socket_export(h, b, sa, &mut n)) {
                let what: &'static str = Box::leak(format!("{kind} at IRQL {irql}").into_boxed_str());
                rows.push((export, what, got, STATUS_INVALID_PARAMETER_1));
            }
        }
    }
    hostkernel::set_fail_without_completing(None);
    check(&rows);
    assert_eq!(n, 0, "no refused call wrote a count");
    assert_eq!(sa_buf, [0xA5; 28], "no refused call wrote an address");
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    // The socket in the reused slot: still open, nothing was sent on it, and
    // it works.
    assert_eq!(hostkernel::live().sockets, 1, "no close reached the socket in the reused slot");
    let mut echo = [0u8; 4];
    assert_eq!(receive(live, &mut echo, 0, 100), (STATUS_IO_TIMEOUT, 0), "a stale send reached the live socket");
    assert_eq!(send(live, b"live"), (STATUS_SUCCESS, 4));
    assert_eq!(receive(live, &mut echo, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 4));
    assert_eq!(&echo, b"live");
    assert_eq!(close(live), STATUS_SUCCESS);
    assert_eq!(close(live), STATUS_INVALID_PARAMETER_1);
    cleanup(client);
    k.finish();
}

/// What the client-level exports are given besides the client: valid
/// arguments throughout, so that only parameter 1 can be refused.
struct ClientArgs {
    local: Addr,
    remote: Addr,
    node: Vec<u16>,
    service: Vec<u16>,
    sa: [u8; 28],
    sd: [u64; 5],
    /// A descriptor cached by another, live, client.
    cached: PSECURITY_DESCRIPTOR,
    out: *mut SAFEWSK_SOCKET,
    cached_out: PSECURITY_DESCRIPTOR,
}

/// Every client-level export called with client handle `c` and the valid
/// arguments in `a`; `req` must never be called back.
fn every_client_export(
    c: *mut SAFEWSK_CLIENT,
    a: &mut ClientArgs,
    req: &mut SAFEWSK_CONNECT_REQUEST,
) -> Vec<(&'static str, NTSTATUS)> {
    let node = UNICODE_STRING {
        Length: (a.node.len() * 2) as u16,
        MaximumLength: (a.node.len() * 2) as u16,
        Buffer: a.node.as_mut_ptr(),
    };
    let service = UNICODE_STRING {
        Length: (a.service.len() * 2) as u16,
        MaximumLength: (a.service.len() * 2) as u16,
        Buffer: a.service.as_mut_ptr(),
    };
    let sa = a.sa.as_mut_ptr().cast::<SOCKADDR>();
    let sd = a.sd.as_mut_ptr().cast::<c_void>();
    // SAFETY: every pointer is valid for the call (the request until its
    // callback, which a refused call never makes); any client value is safe.
    #[allow(clippy::multiple_unsafe_ops_per_block)]
    unsafe {
        vec![
            (
                "SafeWskSocketConnect",
                SafeWskSocketConnect(
                    c,
                    SOCK_STREAM,
                    IPPROTO_TCP,
                    a.local.ptr(),
                    a.remote.ptr(),
                    0,
                    ptr::null_mut(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    ptr::null_mut(),
                    &mut a.out,
                    100,
                ),
            ),
            ("SafeWskSocketConnectAsync", start_async(c, &a.local, &a.remote, req)),
            (
                "SafeWskConnectByName",
                SafeWskConnectByName(c, &node, &service, ptr::null_mut(), ptr::null(), &mut a.out, sa, 28, 100),
            ),
            (
                "SafeWskSocketConnectWithOptions",
                SafeWskSocketConnectWithOptions(
                    c,
                    a.local.ptr(),
                    a.remote.ptr(),
                    ptr::null(),
                    ptr::null_mut(),
                    ptr::null(),
                    &mut a.out,
                    100,
                ),
            ),
            ("SafeWskCacheSecurityDescriptor", SafeWskCacheSecurityDescriptor(c, sd, &mut a.cached_out)),
            ("SafeWskReleaseSecurityDescriptor", SafeWskReleaseSecurityDescriptor(c, a.cached)),
            ("SafeWskCleanup", SafeWskCleanup(c)),
        ]
    }
}

/// Issue 17: a client handle after SafeWskCleanup is
/// STATUS_INVALID_PARAMETER_1 for every client-level export, at every IRQL
/// up to DISPATCH_LEVEL (SafeWskCleanup at any IRQL), also once a new client
/// has the same client slot; nothing reaches the provider and the new client
/// is untouched. The handle is not a pointer (tag byte 0xC5: non-canonical),
/// so the check reads the library's static table of clients, never the freed
/// client block. Above DISPATCH_LEVEL the connect and descriptor exports
/// check only the handle's form (documented for SafeWskSocketConnectAsync)
/// and refuse the IRQL instead (STATUS_INVALID_LEVEL; _1 accepted too).
#[test]
fn a_stale_client_handle_is_parameter_1_for_every_client_export() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    // Another client keeps the driver's socket table and provider alive.
    let keeper = startup();
    let mut sd = [1u64, 0, 0, 0, 0];
    let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: a live client, a readable descriptor, a writable out pointer.
    assert_eq!(unsafe { SafeWskCacheSecurityDescriptor(keeper, sd.as_mut_ptr().cast(), &mut cached) }, STATUS_SUCCESS);
    let stale = startup();
    assert_eq!(stale as usize >> 56, 0xC5, "a client handle is an encoded value, not an address");
    let (st, s) = connect(stale, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(stale);
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    let connects = hostkernel::provider_connect_calls();
    let sds = hostkernel::cached_sd_count();

    let seen = std::sync::Arc::new(Seen::default());
    let mut req = request(&seen, 100);
    let mut args = ClientArgs {
        local: Addr::wildcard_like(server),
        remote: Addr::from(server),
        node: "localhost".encode_utf16().collect(),
        service: server.port().to_string().encode_utf16().collect(),
        sa: [0xA5; 28],
        sd: [1, 0, 0, 0, 0],
        cached,
        out: ptr::null_mut(),
        cached_out: ptr::null_mut(),
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut table = |what: &'static str, irql: u8, c: *mut SAFEWSK_CLIENT, rows: &mut Vec<Row>| {
        for (export, got) in hostkernel::with_irql(irql, || every_client_export(c, &mut args, &mut req)) {
            // Above DISPATCH_LEVEL the exports that enter the client check
            // only the handle's form (documented for
            // SafeWskSocketConnectAsync) and a stale handle has the right
            // form: STATUS_INVALID_LEVEL today. Issue 17 describes the
            // stale client handle as parameter 1 "always" (its slot's word
            // is static memory, which SafeWskCleanup reads at any IRQL):
            // either is accepted there, nothing else.
            let want = if irql > DISPATCH_LEVEL && export != "SafeWskCleanup" && got == STATUS_INVALID_LEVEL {
                STATUS_INVALID_LEVEL
            } else {
                STATUS_INVALID_PARAMETER_1
            };
            let what: &'static str = Box::leak(format!("{what} at IRQL {irql}").into_boxed_str());
            rows.push((export, what, got, want));
        }
    };
    for irql in [PASSIVE_LEVEL, APC_LEVEL, DISPATCH_LEVEL, 3] {
        table("cleaned-up client", irql, stale, &mut rows);
    }
    // A new client in the same client slot: the stale handle names the slot
    // but not its generation.
    hostkernel::set_fail_without_completing(None);
    let again = startup();
    assert_eq!(again as usize & 0xFFFF, stale as usize & 0xFFFF, "the new client has the stale handle's slot");
    assert_ne!(again, stale);
    hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
    for irql in [PASSIVE_LEVEL, DISPATCH_LEVEL] {
        table("cleaned-up client, slot reused", irql, stale, &mut rows);
    }
    hostkernel::set_fail_without_completing(None);
    check(&rows);
    assert!(args.out.is_null() && args.cached_out.is_null());
    assert_eq!(args.sa, [0xA5; 28]);
    assert_eq!(hostkernel::provider_connect_calls(), connects, "no connect reached the provider");
    assert_eq!(hostkernel::resolver_calls(), 0, "no resolution reached the provider");
    assert_eq!(hostkernel::cached_sd_count(), sds, "the keeper's descriptor is still cached");
    std::thread::sleep(std::time::Duration::from_millis(20));
    assert!(seen.calls.lock().unwrap().is_empty(), "a refused request called back");
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());

    // The new client was not cleaned up by the stale handle's cleanups.
    let (st, s) = connect(again, server, 2000);
    assert_eq!(st, STATUS_SUCCESS, "the new client works");
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(again);
    // SAFETY: the keeper's cached descriptor, no connect in flight.
    assert_eq!(unsafe { SafeWskReleaseSecurityDescriptor(keeper, cached) }, STATUS_SUCCESS);
    cleanup(keeper);
    k.finish();
}
