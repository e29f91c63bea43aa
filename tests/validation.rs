//! Every invalid argument gives its own status and the provider is never
//! called; the first bad argument in parameter order wins.

mod common;

use std::ffi::c_void;
use std::ptr;

use common::*;
use safewsk::nt::*;
use safewsk::*;

unsafe extern "system" fn on_receive(_: PVOID, _: ULONG, _: PVOID, _: SIZE_T, _: *mut SIZE_T) -> NTSTATUS {
    STATUS_SUCCESS
}

#[derive(Clone, Copy)]
struct Args {
    client: *mut SAFEWSK_CLIENT,
    socket_type: USHORT,
    protocol: ULONG,
    local: Option<Addr>,
    remote: Option<Addr>,
    flags: ULONG,
    context: PVOID,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    sd: PVOID,
    want_socket: bool,
}

fn call(a: Args) -> (NTSTATUS, *mut SAFEWSK_SOCKET) {
    let mut socket = 0x1 as *mut SAFEWSK_SOCKET; // must be reset to NULL on failure
    let out = if a.want_socket { &mut socket as *mut _ } else { ptr::null_mut() };
    // SAFETY: every pointer is null or valid for the call.
    let st = unsafe {
        SafeWskSocketConnect(
            a.client,
            a.socket_type,
            a.protocol,
            a.local.as_ref().map_or(ptr::null(), |x| x.ptr()),
            a.remote.as_ref().map_or(ptr::null(), |x| x.ptr()),
            a.flags,
            a.context,
            a.dispatch,
            ptr::null_mut(),
            ptr::null_mut(),
            a.sd,
            out,
            1000,
        )
    };
    (st, socket)
}

#[test]
fn each_bad_parameter_has_its_own_status_and_never_reaches_the_provider() {
    let k = Session::begin();
    let client = startup();
    let mut context = 0u64;
    let ctx = (&mut context as *mut u64).cast::<c_void>();
    let empty =
        WSK_CLIENT_CONNECTION_DISPATCH { WskReceiveEvent: None, WskDisconnectEvent: None, WskSendBacklogEvent: None };
    let full = WSK_CLIENT_CONNECTION_DISPATCH {
        WskReceiveEvent: Some(on_receive),
        WskDisconnectEvent: None,
        WskSendBacklogEvent: None,
    };
    // A SECURITY_DESCRIPTOR (40 bytes, absolute form) of revision 1, and its
    // cached copy: the only kind of descriptor a connect accepts.
    let mut sd_ok = [1u64, 0, 0, 0, 0];
    let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: a live client, a readable descriptor, a writable out pointer.
    let st = unsafe { SafeWskCacheSecurityDescriptor(client, sd_ok.as_mut_ptr().cast(), &mut cached) };
    assert_eq!(st, STATUS_SUCCESS);
    // SAFETY: one byte into a local array: in bounds, deliberately misaligned.
    let sd_misaligned = unsafe { sd_ok.as_mut_ptr().cast::<u8>().add(1) }.cast::<c_void>();
    let mut fake_client = [0u64; 32];

    let good = Args {
        client,
        socket_type: SOCK_STREAM,
        protocol: IPPROTO_TCP,
        local: Some(Addr::parse("0.0.0.0:0")),
        remote: Some(Addr::parse("127.0.0.1:9")),
        flags: 0,
        context: ptr::null_mut(),
        dispatch: ptr::null(),
        sd: ptr::null_mut(),
        want_socket: true,
    };
    let mut family_unspec = Addr::parse("0.0.0.0:0");
    family_unspec.0[0] = 0;
    let v6 = |s: &str| Some(Addr::parse(s));
    let v4 = |s: &str| Some(Addr::parse(s));
    let v6local = Some(Addr::parse("[::]:0"));

    let cases: Vec<(&str, Args, NTSTATUS)> = vec![
        ("null client", Args { client: ptr::null_mut(), ..good }, STATUS_INVALID_PARAMETER_1),
        ("not a client", Args { client: fake_client.as_mut_ptr().cast(), ..good }, STATUS_INVALID_PARAMETER_1),
        ("SOCK_DGRAM", Args { socket_type: SOCK_DGRAM, ..good }, STATUS_INVALID_PARAMETER_2),
        ("SOCK_RAW", Args { socket_type: SOCK_RAW, ..good }, STATUS_INVALID_PARAMETER_2),
        ("UDP protocol", Args { protocol: IPPROTO_UDP, ..good }, STATUS_INVALID_PARAMETER_3),
        ("protocol 0", Args { protocol: 0, ..good }, STATUS_INVALID_PARAMETER_3),
        ("null local", Args { local: None, ..good }, STATUS_INVALID_PARAMETER_4),
        ("AF_UNSPEC local", Args { local: Some(family_unspec), ..good }, STATUS_INVALID_PARAMETER_4),
        ("multicast local", Args { local: v4("224.0.0.1:0"), ..good }, STATUS_INVALID_PARAMETER_4),
        ("broadcast local", Args { local: v4("255.255.255.255:0"), ..good }, STATUS_INVALID_PARAMETER_4),
        ("null remote", Args { remote: None, ..good }, STATUS_INVALID_PARAMETER_5),
        ("remote port 0", Args { remote: v4("127.0.0.1:0"), ..good }, STATUS_INVALID_PARAMETER_5),
        ("remote 0.0.0.0", Args { remote: v4("0.0.0.0:80"), ..good }, STATUS_INVALID_PARAMETER_5),
        ("remote broadcast", Args { remote: v4("255.255.255.255:80"), ..good }, STATUS_INVALID_PARAMETER_5),
        ("remote multicast", Args { remote: v4("239.1.2.3:80"), ..good }, STATUS_INVALID_PARAMETER_5),
        ("family mismatch", Args { remote: v6("[::1]:80"), ..good }, STATUS_INVALID_PARAMETER_5),
        ("remote ::", Args { local: v6local, remote: v6("[::]:80"), ..good }, STATUS_INVALID_PARAMETER_5),
        ("remote ff02::1", Args { local: v6local, remote: v6("[ff02::1]:80"), ..good }, STATUS_INVALID_PARAMETER_5),
        (
            "remote ::ffff:224.0.0.1",
            Args { local: v6local, remote: v6("[::ffff:224.0.0.1]:80"), ..good },
            STATUS_INVALID_PARAMETER_5,
        ),
        ("flags", Args { flags: 1, ..good }, STATUS_INVALID_PARAMETER_6),
        ("context without dispatch", Args { context: ctx, ..good }, STATUS_INVALID_PARAMETER_7),
        ("empty dispatch", Args { context: ctx, dispatch: &empty, ..good }, STATUS_INVALID_PARAMETER_8),
        ("sd not cached", Args { sd: sd_ok.as_mut_ptr().cast(), ..good }, STATUS_INVALID_PARAMETER_11),
        ("sd misaligned", Args { sd: sd_misaligned, ..good }, STATUS_INVALID_PARAMETER_11),
        ("null socket out", Args { want_socket: false, ..good }, STATUS_INVALID_PARAMETER_12),
        (
            "first bad one wins",
            Args { client: ptr::null_mut(), flags: 7, remote: None, ..good },
            STATUS_INVALID_PARAMETER_1,
        ),
    ];
    for (name, args, want) in &cases {
        let (st, socket) = call(*args);
        assert_eq!(st, *want, "{name}: got {st:#x}, want {want:#x}");
        if args.want_socket {
            assert!(socket.is_null(), "{name}: *Socket must be NULL on failure");
        }
        assert_eq!(hostkernel::provider_connect_calls(), 0, "{name}: the provider was called");
    }

    // The same arguments, corrected, do reach the provider (port 9 on
    // loopback is closed, so it is refused): validation is not rejecting all.
    let server = closed_port();
    let (st, _) = call(Args { remote: Some(Addr::from(server)), context: ctx, dispatch: &full, sd: cached, ..good });
    assert_eq!(st, STATUS_CONNECTION_REFUSED);
    assert_eq!(hostkernel::provider_connect_calls(), 1);
    // SAFETY: a live client and its cached descriptor.
    assert_eq!(unsafe { SafeWskReleaseSecurityDescriptor(client, cached) }, STATUS_SUCCESS);
    // WSK marks SocketContext _In_opt_: a dispatch table with a NULL context
    // is legal and reaches the provider (it was rejected as parameter 7
    // before).
    let (st, _) = call(Args { remote: Some(Addr::from(server)), dispatch: &full, ..good });
    assert_eq!(st, STATUS_CONNECTION_REFUSED, "a dispatch table without a context must be accepted");
    assert_eq!(hostkernel::provider_connect_calls(), 2);
    cleanup(client);
    k.finish();
}

/// Every socket call takes the socket handle as parameter 1 (issue 17: no
/// client any more), so each status is one position lower than before: a
/// bad handle is _1, Buffer _2, Length _3, Flags _4, BytesReceived _6,
/// Address _2 and AddressLength _3, disconnect Flags _2, EventMask _2.
#[test]
fn socket_calls_validate_their_arguments() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut buf = [0u8; 8];
    let mut n = 0u32;
    let p = buf.as_mut_ptr().cast::<c_void>();
    let mut sa_buf = [0xA5u8; 28];
    let sa = sa_buf.as_mut_ptr().cast::<SOCKADDR>();
    // Each call passes one invalid argument (or several: the first wins);
    // every other pointer is valid: `socket` open, `p` 8 writable bytes,
    // `sa` 28 writable bytes, `n` writable.
    let calls: Vec<(&str, NTSTATUS, NTSTATUS)> = vec![
        (
            "send: NULL socket",
            // SAFETY: a NULL socket, rejected before anything is used.
            unsafe { SafeWskSend(ptr::null_mut(), p, 8, 0, 100, &mut n) },
            STATUS_INVALID_PARAMETER_1,
        ),
        (
            "send: NULL socket, NULL buffer, length 0, flags",
            // SAFETY: rejected before anything is used.
            unsafe { SafeWskSend(ptr::null_mut(), ptr::null(), 0, 0x80, 100, &mut n) },
            STATUS_INVALID_PARAMETER_1,
        ),
        (
            "send: NULL buffer",
            // SAFETY: a NULL buffer, rejected before use.
            unsafe { SafeWskSend(socket, ptr::null(), 8, 0, 100, &mut n) },
            STATUS_INVALID_PARAMETER_2,
        ),
        // SAFETY: a zero length, rejected before the buffer is used.
        ("send: length 0", unsafe { SafeWskSend(socket, p, 0, 0, 100, &mut n) }, STATUS_INVALID_PARAMETER_3),
        // SAFETY: an unknown flag, rejected before the buffer is used.
        ("send: flags", unsafe { SafeWskSend(socket, p, 8, 0x80, 100, &mut n) }, STATUS_INVALID_PARAMETER_4),
        (
            "receive: NULL socket",
            // SAFETY: a NULL socket, rejected before anything is used.
            unsafe { SafeWskReceive(ptr::null_mut(), p, 8, 0, 100, &mut n) },
            STATUS_INVALID_PARAMETER_1,
        ),
        (
            "receive: NULL buffer",
            // SAFETY: a NULL buffer, rejected before use.
            unsafe { SafeWskReceive(socket, ptr::null_mut(), 8, 0, 100, &mut n) },
            STATUS_INVALID_PARAMETER_2,
        ),
        // SAFETY: a zero length, rejected before the buffer is used.
        ("receive: length 0", unsafe { SafeWskReceive(socket, p, 0, 0, 100, &mut n) }, STATUS_INVALID_PARAMETER_3),
        // SAFETY: an unknown receive flag, rejected before the buffer is used.
        ("receive: flags", unsafe { SafeWskReceive(socket, p, 8, 0x10, 100, &mut n) }, STATUS_INVALID_PARAMETER_4),
        (
            "receive: NULL BytesReceived",
            // SAFETY: a NULL count pointer, rejected before the buffer is used.
            unsafe { SafeWskReceive(socket, p, 8, 0, 100, ptr::null_mut()) },
            STATUS_INVALID_PARAMETER_6,
        ),
        (
            "local address: NULL socket",
            // SAFETY: rejected before the address is used.
            unsafe { SafeWskGetLocalAddress(ptr::null_mut(), sa, 28, 100) },
            STATUS_INVALID_PARAMETER_1,
        ),
        (
            "local address: NULL address",
            // SAFETY: a NULL address, rejected before use.
            unsafe { SafeWskGetLocalAddress(socket, ptr::null_mut(), 28, 100) },
            STATUS_INVALID_PARAMETER_2,
        ),
        (
            "local address: length 8",
            // SAFETY: too short, rejected before the address is written.
            unsafe { SafeWskGetLocalAddress(socket, sa, 8, 100) },
            STATUS_INVALID_PARAMETER_3,
        ),
        (
            "remote address: NULL address",
            // SAFETY: a NULL address, rejected before use.
            unsafe { SafeWskGetRemoteAddress(socket, ptr::null_mut(), 28, 100) },
            STATUS_INVALID_PARAMETER_2,
        ),
        (
            "remote address: length 15",
            // SAFETY: too short, rejected before the address is written.
            unsafe { SafeWskGetRemoteAddress(socket, sa, 15, 100) },
            STATUS_INVALID_PARAMETER_3,
        ),
        // SAFETY: a NULL socket, rejected before use.
        ("disconnect: NULL socket", unsafe { SafeWskDisconnect(ptr::null_mut(), 0, 100) }, STATUS_INVALID_PARAMETER_1),
        // SAFETY: an unknown disconnect flag, rejected before the socket is used.
        ("disconnect: flags", unsafe { SafeWskDisconnect(socket, 0x10, 100) }, STATUS_INVALID_PARAMETER_2),
        (
            "enable: NULL socket",
            // SAFETY: a NULL socket, rejected before use.
            unsafe { SafeWskEnableCallbacks(ptr::null_mut(), WSK_EVENT_RECEIVE) },
            STATUS_INVALID_PARAMETER_1,
        ),
        // SAFETY: an empty mask, rejected before the provider is called.
        ("enable: mask 0", unsafe { SafeWskEnableCallbacks(socket, 0) }, STATUS_INVALID_PARAMETER_2),
        (
            "enable: no Dispatch table for the callback",
            // SAFETY: the socket was made without a table: rejected.
            unsafe { SafeWskEnableCallbacks(socket, WSK_EVENT_RECEIVE) },
            STATUS_INVALID_PARAMETER_2,
        ),
        (
            "disable: NULL socket",
            // SAFETY: a NULL socket, rejected before use.
            unsafe { SafeWskDisableCallbacks(ptr::null_mut(), WSK_EVENT_RECEIVE, 100) },
            STATUS_INVALID_PARAMETER_1,
        ),
        // SAFETY: an empty mask, rejected before the provider is called.
        ("disable: mask 0", unsafe { SafeWskDisableCallbacks(socket, 0, 100) }, STATUS_INVALID_PARAMETER_2),
        (
            "send: valid at DISPATCH_LEVEL",
            // SAFETY: valid arguments; DISPATCH_LEVEL is rejected before the
            // buffer is used.
            hostkernel::with_irql(DISPATCH_LEVEL, || unsafe { SafeWskSend(socket, p, 8, 0, 100, &mut n) }),
            STATUS_INVALID_LEVEL,
        ),
        // SAFETY: a NULL socket, rejected before use.
        ("close: NULL socket", unsafe { SafeWskCloseSocket(ptr::null_mut()) }, STATUS_INVALID_PARAMETER_1),
    ];
    let bad: Vec<String> = calls
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| format!("{what}: got {got:#x}, want {want:#x}"))
        .collect();
    assert!(bad.is_empty(), "{bad:#?}");
    assert_eq!(n, 0, "no rejected call wrote a count");
    assert_eq!(sa_buf, [0xA5; 28], "no rejected call wrote an address");
    // No rejected call allocated anything: the one live IRP is the open
    // socket's own, which its calls reuse.
    assert_eq!(hostkernel::live().irps, 1);
    assert_eq!(hostkernel::live().mdls, 0);
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    // Nothing reached the peer (an echo server): no rejected send was sent.
    let mut echo = [0u8; 8];
    assert_eq!(receive(socket, &mut echo, 0, 100), (STATUS_IO_TIMEOUT, 0), "a rejected send reached the provider");
    // The socket still works.
    assert_eq!(send(socket, b"ok"), (STATUS_SUCCESS, 2));
    assert_eq!(receive(socket, &mut echo[..2], WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 2));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(hostkernel::live().irps, 1, "the close puts the socket's IRP in the table's cache for the next connect");
    assert_eq!(safewsk::table_usage(), (1, 1));
    cleanup(client);
    k.finish();
}
