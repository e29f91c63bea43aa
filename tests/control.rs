//! Issue 18, item 3: SafeWskControlSocket, for what safewsk does not wrap by
//! name: an allowlist of requests whose buffers safewsk checks, with the
//! socket's IRP, a deadline and cancellation.
//!
//! The host kernel implements each allowed request on the real Linux socket
//! (hostkernel/src/wsk_control.rs for SO_KEEPALIVE and SO_RCVBUF,
//! hostkernel/src/wsk_control_more.rs for TCP_NODELAY and
//! SIO_WSK_QUERY_IDEAL_SEND_BACKLOG, which it answers with the socket's
//! SO_SNDBUF); the tests read every value back with getsockopt on
//! `hostkernel::socket_fd`.

mod common;
mod issue18;

use std::ffi::c_void;
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hostkernel::{CallFault, WskCall};
use issue18::*;
use safewsk::nt::*;
use safewsk::*;

/// STATUS_DEVICE_DATA_ERROR: what a call that reached the provider fails
/// with here.
const STATUS_DEVICE_DATA_ERROR: NTSTATUS = 0xC000_009C_u32 as NTSTATUS;

/// SafeWskControlSocket with its ten parameters.
#[allow(clippy::too_many_arguments)]
fn control(
    s: *mut SAFEWSK_SOCKET,
    request: WSK_CONTROL_SOCKET_TYPE,
    code: u32,
    level: u32,
    in_size: usize,
    input: *const c_void,
    out_size: usize,
    output: *mut c_void,
    returned: *mut SIZE_T,
    timeout_ms: u32,
) -> NTSTATUS {
    // SAFETY: the callers pass NULL or buffers of the sizes they give.
    unsafe { SafeWskControlSocket(s, request, code, level, in_size, input, out_size, output, returned, timeout_ms) }
}

fn set_ulong(s: *mut SAFEWSK_SOCKET, code: u32, level: u32, v: u32) -> NTSTATUS {
    control(s, WskSetOption, code, level, 4, (&v as *const u32).cast(), 0, ptr::null_mut(), ptr::null_mut(), 2000)
}

/// (status, value, OutputSizeReturned)
fn get_ulong(s: *mut SAFEWSK_SOCKET, code: u32, level: u32) -> (NTSTATUS, u32, usize) {
    let mut v: u32 = 0xDEAD_BEEF;
    let mut n: SIZE_T = 99;
    let st = control(s, WskGetOption, code, level, 0, ptr::null(), 4, (&mut v as *mut u32).cast(), &mut n, 2000);
    (st, v, n)
}

fn getsockopt(fd: i32, level: i32, name: i32) -> i32 {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: a writable int and its size.
    let rc = unsafe { libc::getsockopt(fd, level, name, (&mut v as *mut i32).cast(), &mut len) };
    assert_eq!(rc, 0, "getsockopt");
    v
}

/// One connected socket, its Linux descriptor.
fn connected(client: *mut SAFEWSK_CLIENT, server: std::net::SocketAddr) -> (*mut SAFEWSK_SOCKET, i32) {
    let (st, s) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let wsk = host_sockets();
    assert_eq!(wsk.len(), 1);
    let fd = hostkernel::socket_fd(wsk[0] as *mut _).expect("a host socket");
    (s, fd)
}

/// Every allowed request works, and the Linux socket agrees.
#[test]
fn each_allowed_request_works_against_the_provider() {
    let k = Session::begin();
    let client = startup();
    let server = echo_server("127.0.0.1:0").expect("echo");
    let (s, fd) = connected(client, server);

    for on in [1u32, 0, 1] {
        assert_eq!(set_ulong(s, SO_KEEPALIVE, SOL_SOCKET, on), STATUS_SUCCESS);
        assert_eq!(getsockopt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE), on as i32, "SO_KEEPALIVE set");
        assert_eq!(get_ulong(s, SO_KEEPALIVE, SOL_SOCKET), (STATUS_SUCCESS, on, 4), "SO_KEEPALIVE read back");
    }

    assert_eq!(set_ulong(s, SO_RCVBUF, SOL_SOCKET, 65536), STATUS_SUCCESS);
    let linux = getsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF);
    assert!(linux >= 65536, "SO_RCVBUF set (Linux doubles it): {linux}");
    assert_eq!(get_ulong(s, SO_RCVBUF, SOL_SOCKET), (STATUS_SUCCESS, linux as u32, 4));

    for on in [1u32, 0] {
        assert_eq!(set_ulong(s, TCP_NODELAY, IPPROTO_TCP, on), STATUS_SUCCESS);
        assert_eq!(getsockopt(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY), on as i32, "TCP_NODELAY set");
        assert_eq!(get_ulong(s, TCP_NODELAY, IPPROTO_TCP), (STATUS_SUCCESS, on, 4), "TCP_NODELAY read back");
    }

    let mut backlog: SIZE_T = 0xDEAD;
    let mut n: SIZE_T = 0;
    let st = control(
        s,
        WskIoctl,
        SIO_WSK_QUERY_IDEAL_SEND_BACKLOG,
        0,
        0,
        ptr::null(),
        std::mem::size_of::<SIZE_T>(),
        (&mut backlog as *mut SIZE_T).cast(),
        &mut n,
        2000,
    );
    assert_eq!(st, STATUS_SUCCESS);
    let sndbuf = getsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUF) as SIZE_T;
    println!("SIO_WSK_QUERY_IDEAL_SEND_BACKLOG: {backlog} (the host answers SO_SNDBUF: {sndbuf})");
    assert_eq!((backlog, n), (sndbuf, 8));

    // OutputSizeReturned is optional.
    let mut v: u32 = 7;
    let st = control(
        s,
        WskGetOption,
        SO_KEEPALIVE,
        SOL_SOCKET,
        0,
        ptr::null(),
        4,
        (&mut v as *mut u32).cast(),
        ptr::null_mut(),
        2000,
    );
    assert_eq!((st, v), (STATUS_SUCCESS, 1));

    // The socket still works.
    assert_eq!(send(s, b"ok"), (STATUS_SUCCESS, 2));
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Each bad parameter gets its own STATUS_INVALID_PARAMETER_n, by position,
/// before the provider is called (no WskControlSocket reaches it: a fault
/// rule on every call would show).
#[test]
fn each_bad_parameter_gets_its_own_status() {
    let k = Session::begin();
    let client = startup();
    let server = echo_server("127.0.0.1:0").expect("echo");
    let (s, _fd) = connected(client, server);
    // Any call that reached the provider would fail with this.
    hostkernel::set_call_fault(WskCall::ControlSocket, 0, CallFault::Fail(STATUS_DEVICE_DATA_ERROR));
    let v: u32 = 1;
    let input: *const c_void = (&v as *const u32).cast();
    let mut out: u32 = 0xAAAA_AAAA;
    let output: *mut c_void = (&mut out as *mut u32).cast();
    let mut ret: SIZE_T = 77;
    let cases: Vec<(&str, NTSTATUS, NTSTATUS)> = vec![
        (
            "_1: NULL socket",
            control(
                ptr::null_mut(),
                WskSetOption,
                SO_KEEPALIVE,
                SOL_SOCKET,
                4,
                input,
                0,
                ptr::null_mut(),
                &mut ret,
                2000,
            ),
            STATUS_INVALID_PARAMETER_1,
        ),
        (
            "_1: forged socket",
            control(
                0xA5usize as *mut _,
                WskSetOption,
                SO_KEEPALIVE,
                SOL_SOCKET,
                4,
                input,
                0,
                ptr::null_mut(),
                &mut ret,
                2000,
            ),
            STATUS_INVALID_PARAMETER_1,
        ),
        (
            "_2: request type 3",
            control(s, 3, SO_KEEPALIVE, SOL_SOCKET, 4, input, 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_2,
        ),
        (
            "_2: request type -1",
            control(s, -1, SO_KEEPALIVE, SOL_SOCKET, 4, input, 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_2,
        ),
        (
            "_3: SO_SNDBUF (not allowed)",
            control(s, WskSetOption, 0x1001, SOL_SOCKET, 4, input, 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_3,
        ),
        (
            "_3: SIO_WSK_QUERY_IDEAL_SEND_BACKLOG as an option",
            control(s, WskGetOption, SIO_WSK_QUERY_IDEAL_SEND_BACKLOG, 0, 0, ptr::null(), 8, output, &mut ret, 2000),
            STATUS_INVALID_PARAMETER_3,
        ),
        (
            "_3: SO_KEEPALIVE as an IOCTL",
            control(s, WskIoctl, SO_KEEPALIVE, SOL_SOCKET, 0, ptr::null(), 4, output, &mut ret, 2000),
            STATUS_INVALID_PARAMETER_3,
        ),
        (
            "_3: SO_WSK_EVENT_CALLBACK (use SafeWskEnableCallbacks)",
            control(s, WskSetOption, SO_WSK_EVENT_CALLBACK, SOL_SOCKET, 16, input, 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_3,
        ),
        (
            "_4: SO_KEEPALIVE at IPPROTO_TCP",
            control(s, WskSetOption, SO_KEEPALIVE, IPPROTO_TCP, 4, input, 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_4,
        ),
        (
            "_4: TCP_NODELAY at SOL_SOCKET",
            control(s, WskSetOption, TCP_NODELAY, SOL_SOCKET, 4, input, 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_4,
        ),
        (
            "_4: the IOCTL with a level",
            control(
                s,
                WskIoctl,
                SIO_WSK_QUERY_IDEAL_SEND_BACKLOG,
                SOL_SOCKET,
                0,
                ptr::null(),
                8,
                output,
                &mut ret,
                2000,
            ),
            STATUS_INVALID_PARAMETER_4,
        ),
        (
            "_5: InputSize 8 for a set",
            control(s, WskSetOption, SO_KEEPALIVE, SOL_SOCKET, 8, input, 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_5,
        ),
        (
            "_5: InputSize 4 for a get",
            control(s, WskGetOption, SO_KEEPALIVE, SOL_SOCKET, 4, input, 4, output, &mut ret, 2000),
            STATUS_INVALID_PARAMETER_5,
        ),
        (
            "_6: NULL InputBuffer for a set",
            control(s, WskSetOption, SO_RCVBUF, SOL_SOCKET, 4, ptr::null(), 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_6,
        ),
        (
            "_6: an InputBuffer for a get",
            control(s, WskGetOption, SO_RCVBUF, SOL_SOCKET, 0, input, 4, output, &mut ret, 2000),
            STATUS_INVALID_PARAMETER_6,
        ),
        (
            "_7: OutputSize 8 for a get",
            control(s, WskGetOption, TCP_NODELAY, IPPROTO_TCP, 0, ptr::null(), 8, output, &mut ret, 2000),
            STATUS_INVALID_PARAMETER_7,
        ),
        (
            "_7: OutputSize 4 for the IOCTL (a SIZE_T)",
            control(s, WskIoctl, SIO_WSK_QUERY_IDEAL_SEND_BACKLOG, 0, 0, ptr::null(), 4, output, &mut ret, 2000),
            STATUS_INVALID_PARAMETER_7,
        ),
        (
            "_7: an output for a set",
            control(s, WskSetOption, TCP_NODELAY, IPPROTO_TCP, 4, input, 4, output, &mut ret, 2000),
            STATUS_INVALID_PARAMETER_7,
        ),
        (
            "_8: NULL OutputBuffer for a get",
            control(s, WskGetOption, TCP_NODELAY, IPPROTO_TCP, 0, ptr::null(), 4, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_8,
        ),
        (
            "_1 before _2 (bad socket and bad request)",
            control(ptr::null_mut(), 9, 0, 0, 0, ptr::null(), 0, ptr::null_mut(), &mut ret, 2000),
            STATUS_INVALID_PARAMETER_1,
        ),
    ];
    for (what, got, want) in &cases {
        assert_eq!(got, want, "{what}: {got:#x}");
    }
    assert_eq!(out, 0xAAAA_AAAA, "no output written on a refusal");
    assert_eq!(ret, 0, "OutputSizeReturned is 0 on a refusal");
    // Above APC_LEVEL: the parameters first, then STATUS_INVALID_LEVEL.
    let at_dispatch = hostkernel::with_irql(DISPATCH_LEVEL, || {
        control(s, WskGetOption, SO_KEEPALIVE, SOL_SOCKET, 0, ptr::null(), 4, output, ptr::null_mut(), 2000)
    });
    assert_eq!(at_dispatch, STATUS_INVALID_LEVEL);
    let bad_at_dispatch = hostkernel::with_irql(DISPATCH_LEVEL, || {
        control(s, WskGetOption, SO_KEEPALIVE, SOL_SOCKET, 0, ptr::null(), 8, output, ptr::null_mut(), 2000)
    });
    assert_eq!(bad_at_dispatch, STATUS_INVALID_PARAMETER_7);
    // An allowed request does reach the provider (and gets its status).
    assert_eq!(get_ulong(s, SO_KEEPALIVE, SOL_SOCKET).0, STATUS_DEVICE_DATA_ERROR);
    assert_eq!(close(s), STATUS_SUCCESS);
    assert_eq!(
        control(s, WskGetOption, SO_KEEPALIVE, SOL_SOCKET, 0, ptr::null(), 4, output, &mut ret, 2000),
        STATUS_INVALID_PARAMETER_1,
        "after the close"
    );
    cleanup(client);
    k.finish();
}

/// A provider that never completes the request: at the deadline the IRP is
/// cancelled and STATUS_IO_TIMEOUT returned; the output is not written. A
/// close on another thread completes a request without deadline.
#[test]
fn deadline_and_cancel_with_a_provider_that_never_completes() {
    let k = Session::begin();
    let client = startup();
    let server = echo_server("127.0.0.1:0").expect("echo");
    let (s, _fd) = connected(client, server);
    hostkernel::set_call_fault(WskCall::ControlSocket, 0, CallFault::Never);
    let mut v: u32 = 0x5555_5555;
    let mut n: SIZE_T = 5;
    let t0 = Instant::now();
    let st =
        control(s, WskGetOption, SO_KEEPALIVE, SOL_SOCKET, 0, ptr::null(), 4, (&mut v as *mut u32).cast(), &mut n, 150);
    let took = t0.elapsed();
    println!("SafeWskControlSocket, provider never completes, TimeoutMs 150: {st:#x} after {took:?}");
    assert_eq!(st, STATUS_IO_TIMEOUT);
    assert!(took >= Duration::from_millis(150) && took < Duration::from_millis(400), "{took:?}");
    assert_eq!((v, n), (0x5555_5555, 0), "nothing written");
    let st = control(
        s,
        WskSetOption,
        TCP_NODELAY,
        IPPROTO_TCP,
        4,
        (&v as *const u32).cast(),
        0,
        ptr::null_mut(),
        ptr::null_mut(),
        0,
    );
    assert_eq!(st, STATUS_IO_TIMEOUT, "TimeoutMs 0 against a provider that pends");

    // SAFEWSK_NO_TIMEOUT: the close (WSK cancels the socket's requests)
    // ends it.
    let h = SocketH::new(s);
    let waiter = thread::spawn(move || {
        let mut v: u32 = 0;
        control(
            h.get(),
            WskGetOption,
            SO_RCVBUF,
            SOL_SOCKET,
            0,
            ptr::null(),
            4,
            (&mut v as *mut u32).cast(),
            ptr::null_mut(),
            SAFEWSK_NO_TIMEOUT,
        )
    });
    thread::sleep(Duration::from_millis(150));
    assert!(!waiter.is_finished(), "no deadline: it waits");
    assert_eq!(close(s), STATUS_SUCCESS);
    let st = bounded("the control without deadline", Duration::from_secs(5), move || waiter.join().expect("waiter"));
    assert_eq!(st, STATUS_CANCELLED, "completed by the close");
    cleanup(client);
    k.finish();
}
