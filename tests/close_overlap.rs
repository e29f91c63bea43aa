//! Review of issue 12: a close that overlaps other calls on the socket.
//!
//! SafeWskCloseSocket's header promises that calls on one socket may
//! overlap and that the close may be one of them. WSK allows a close while
//! IRPs of earlier calls are *pending*, but not while a call to one of the
//! socket's functions is still *in progress*: "Before calling the
//! WskCloseSocket function, a WSK application must ensure that there are no
//! other function calls in progress to any of the socket's functions [...]
//! However, a WSK application can call WskCloseSocket if there are pending
//! IRPs from prior calls" ("Closing a Socket" and PFN_WSK_CLOSE_SOCKET,
//! Microsoft Learn), because the close frees the WSK_SOCKET. A call that
//! has taken the socket's record but not yet returned from its WskSend /
//! WskReceive / WskDisconnect / WskGet*Address (it is still locking its
//! buffer, say) must therefore hold the close back until it has.
//!
//! No test here relies on a sleep being long enough (issue 17: they failed
//! under CPU load). Each overlap is made with a host-kernel control that
//! holds the first call where it must be (`hostkernel::hold_calls`), or is
//! waited for (`requests_in_flight`, `calls_in_progress`, the close's own
//! "still waiting" report), and a deadline is made to pass when the test
//! says so (`hostkernel::expire_wait_of`); every wait is bounded
//! (`common::LONG`).

mod common;

use std::thread;
use std::time::Duration;

use common::*;
use hostkernel::HoldPoint;
use safewsk::nt::*;
use safewsk::*;

const TAG: u32 = u32::from_le_bytes(*b"Rv12");
const POOL_FLAG_PAGED: u64 = 0x100;

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

/// A connected socket, and the server side of its connection.
fn connected(client: *mut SAFEWSK_CLIENT) -> (*mut SAFEWSK_SOCKET, std::net::TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = listener.local_addr().expect("addr");
    let h = thread::spawn(move || listener.accept().expect("accept").0);
    let (st, socket) = connect(client, server, SAFEWSK_NO_TIMEOUT);
    assert_eq!(st, STATUS_SUCCESS);
    (socket, join_within("the accept", h))
}

/// What the close prints while it waits for the socket's other calls.
const CLOSE_WAITS: &str = "SafeWskCloseSocket: still waiting after";

/// Starts SafeWskCloseSocket on another thread and waits until it either
/// waits for the socket's other calls (it reports that) or has returned
/// (what a close that does not wait does).
fn start_close(client: *mut SAFEWSK_CLIENT, socket: *mut SAFEWSK_SOCKET) -> thread::JoinHandle<NTSTATUS> {
    let (cl, sock) = (client as usize, socket as usize);
    let closer = thread::spawn(move || close(cl as *mut SAFEWSK_CLIENT, sock as *mut SAFEWSK_SOCKET));
    wait_until("the close to wait for the other call (or to return)", || {
        closer.is_finished() || hostkernel::wait_for_dbgprint(CLOSE_WAITS, Duration::ZERO)
    });
    closer
}

/// A receive into paged pool that was paged out: MmProbeAndLockPages is
/// paging it in (a hard fault, which may take any time on Windows; here it
/// is held there: `HoldPoint::PageIn`). The socket is closed on another
/// thread meanwhile: after the receive took the socket's record, before it
/// called WskReceive. The close must wait until the receive has reached WSK
/// (and then ends it, as it ends any pending receive); on the old code it
/// freed the socket under the receive, which then called WskReceive on a
/// closed WSK_SOCKET (a use-after-free on Windows; a violation in the host
/// kernel).
#[test]
fn a_close_waits_for_a_call_that_has_not_reached_wsk_yet() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected(client);
    let len = 4096;
    // SAFETY: plain allocation at PASSIVE_LEVEL.
    let buf = unsafe { ExAllocatePool2(POOL_FLAG_PAGED, len, TAG) };
    assert!(!buf.is_null());
    assert_eq!(hostkernel::page_out(buf, len), 1);
    hostkernel::hold_calls(HoldPoint::PageIn);
    let _ = hostkernel::take_dbgprint_log();
    let (cl, sock, b) = (client as usize, socket as usize, buf as usize);
    let receiver = thread::spawn(move || {
        let mut n = 0xDEAD;
        // SAFETY: `b` is `len` bytes of paged pool that outlive the call; the
        // socket is open when the call starts.
        let st = unsafe {
            SafeWskReceive(
                cl as *mut SAFEWSK_CLIENT,
                sock as *mut SAFEWSK_SOCKET,
                b as *mut core::ffi::c_void,
                len as u32,
                0,
                SAFEWSK_NO_TIMEOUT,
                &mut n,
            )
        };
        (st, n)
    });
    assert!(hostkernel::wait_calls_held(HoldPoint::PageIn, 1, LONG), "the receive never paged its buffer in");
    // The receive is inside MmProbeAndLockPages now: close.
    let closer = start_close(client, socket);
    hostkernel::release_calls(HoldPoint::PageIn);
    assert_eq!(join_within("the close", closer), STATUS_SUCCESS);
    let (st, n) = join_within("the receive", receiver);
    let v = hostkernel::violations();
    assert!(v.is_empty(), "the close freed the socket under a call in progress: {v:#?}");
    assert_eq!((st, n), (STATUS_CANCELLED, 0), "the receive reached WSK before the close and was ended by it");
    // The close's wait reports itself like every other wait.
    let log = hostkernel::take_dbgprint_log();
    assert!(log.iter().any(|l| l.contains(CLOSE_WAITS)), "the close waited silently: {log:#?}");
    // SAFETY: our block, no longer used by any call.
    unsafe { ExFreePoolWithTag(buf, TAG) };
    cleanup(client);
    k.finish();
}

/// A graceful disconnect that the peer never acknowledges is turned into an
/// abortive WskDisconnect at its deadline. When a close of the socket is
/// already under way at that moment (its WskCloseSocket pending: WSK may
/// take its time; here it is held, `HoldPoint::CloseSocket`), that second
/// WskDisconnect is a call of a closed socket's function (the close freed
/// the WSK_SOCKET): it must not be made. The close ends the graceful
/// disconnect anyway; the disconnect still reports its deadline, which
/// passes exactly while the close pends (`expire_wait_of`).
#[test]
fn no_abortive_disconnect_once_a_close_is_under_way() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected(client);
    hostkernel::set_graceful_disconnect_hangs(true);
    hostkernel::hold_calls(HoldPoint::CloseSocket);
    let _ = hostkernel::take_dbgprint_log();
    let (cl, sock) = (client as usize, socket as usize);
    let disconnecter = thread::spawn(move || {
        // SAFETY: the socket is open when the call starts.
        unsafe { SafeWskDisconnect(cl as *mut SAFEWSK_CLIENT, sock as *mut SAFEWSK_SOCKET, 0, 60_000) }
    });
    wait_until("the graceful disconnect to pend in WSK", || hostkernel::requests_in_flight(socket.cast()) == 1);
    let closer = thread::spawn(move || close(cl as *mut SAFEWSK_CLIENT, sock as *mut SAFEWSK_SOCKET));
    assert!(hostkernel::wait_calls_held(HoldPoint::CloseSocket, 1, LONG), "the close never reached WSK");
    // The disconnect's deadline passes now, while the close is under way.
    assert!(
        hostkernel::expire_wait_of(disconnecter.thread().id(), LONG),
        "the disconnect is not waiting for its deadline"
    );
    // It has acted on its deadline when it reports waiting past it.
    assert!(
        hostkernel::wait_for_dbgprint("WskDisconnect (graceful): IRP", LONG),
        "the disconnect did not report its overdue wait"
    );
    hostkernel::release_calls(HoldPoint::CloseSocket);
    assert_eq!(join_within("the close", closer), STATUS_SUCCESS);
    let st = join_within("the disconnect", disconnecter);
    let v = hostkernel::violations();
    assert!(v.is_empty(), "a WSK function of a socket being closed was called: {v:#?}");
    assert_eq!(st, STATUS_IO_TIMEOUT, "the disconnect's deadline passed (the close ended it)");
    cleanup(client);
    k.finish();
}

/// Starts a receive on another thread that waits (no data comes) until the
/// socket is closed; returns its handle once the receive is pending in WSK.
fn waiting_receive(client: *mut SAFEWSK_CLIENT, socket: *mut SAFEWSK_SOCKET) -> thread::JoinHandle<NTSTATUS> {
    let before = hostkernel::requests_in_flight(socket.cast());
    let (cl, sock) = (client as usize, socket as usize);
    let h = thread::spawn(move || {
        let mut got = [0u8; 4];
        receive(cl as *mut SAFEWSK_CLIENT, sock as *mut SAFEWSK_SOCKET, &mut got, 0, SAFEWSK_NO_TIMEOUT).0
    });
    wait_until("the receive to pend in WSK", || hostkernel::requests_in_flight(socket.cast()) > before);
    h
}

/// The IRP an overlapping call allocates (the socket's IRP is held by a
/// waiting receive) is an allocation site too: failing it gives the
/// documented STATUS_INSUFFICIENT_RESOURCES, for a send and for a close
/// (the socket then stays open and the close can be retried), with nothing
/// leaked.
#[test]
fn the_irp_of_an_overlapping_call_can_fail() {
    let k = Session::begin();
    let client = startup();
    let (socket, mut peer) = connected(client);
    let receiver = waiting_receive(client, socket);
    k.fail_nth(hostkernel::Site::Irp, 1);
    assert_eq!(send(socket, b"abcd"), (STATUS_INSUFFICIENT_RESOURCES, 0));
    assert!(k.fault_hit(hostkernel::Site::Irp));
    k.fail_nth(hostkernel::Site::Irp, 1);
    assert_eq!(close(socket), STATUS_INSUFFICIENT_RESOURCES, "an overlapping close without an IRP");
    k.fail_nth(hostkernel::Site::Irp, 0);
    // Still open: a send works (and keeps its IRP as the socket's spare).
    assert_eq!(send(socket, b"abcd"), (STATUS_SUCCESS, 4));
    let mut four = [0u8; 4];
    std::io::Read::read_exact(&mut peer, &mut four).expect("peer read");
    assert_eq!(hostkernel::live().irps, 2, "the socket's IRP and its spare");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(join_within("the receive", receiver), STATUS_CANCELLED);
    cleanup(client);
    k.finish();
}

/// Two receives hold the socket's IRP and its spare; a close (on a
/// temporary IRP) is refused by the provider without completing: the socket
/// stays open with both receives pending, the temporary IRP is freed, and
/// the retried close ends both receives.
#[test]
fn a_close_refused_while_calls_hold_both_irps() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected(client);
    // The first overlapping call allocates the spare and gives it back.
    let first = waiting_receive(client, socket);
    let (st, _) = receive(socket, &mut [0u8; 4], 0, 50);
    assert_eq!(st, STATUS_IO_TIMEOUT);
    let second = waiting_receive(client, socket);
    assert_eq!(hostkernel::live().irps, 2);
    hostkernel::set_fail_without_completing(Some(STATUS_INVALID_DEVICE_REQUEST));
    assert_eq!(close(socket), STATUS_INVALID_DEVICE_REQUEST, "refused without being consumed");
    hostkernel::set_fail_without_completing(None);
    assert_eq!(hostkernel::live().irps, 2, "the close's temporary IRP was freed");
    assert_eq!(close(socket), STATUS_SUCCESS, "the socket stayed open");
    assert_eq!(join_within("the first receive", first), STATUS_CANCELLED);
    assert_eq!(join_within("the second receive", second), STATUS_CANCELLED);
    // Cached with its IRP if the receives let go before the close ended,
    // else freed by the last of them; the spare is freed either way.
    assert!(hostkernel::live().irps <= 1, "{:?}", hostkernel::live());
    let v = hostkernel::violations();
    assert!(v.is_empty(), "{v:#?}");
    cleanup(client);
    k.finish();
}

/// In the host kernel's Sync completion mode every WSK function completes
/// its IRP before it returns, so a receive with no data yet stays *inside*
/// WskReceive until data arrives (the host kernel counts calls in progress
/// per socket and reports a WskCloseSocket made meanwhile). A close from
/// another thread must wait until the receive has returned from WSK, then
/// close; on the old code it called WskCloseSocket at once. The data comes
/// only once the close is waiting.
#[test]
fn a_close_waits_while_a_call_is_inside_the_wsk_function() {
    let k = Session::begin();
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Sync);
    let client = startup();
    let (socket, mut peer) = connected(client);
    let _ = hostkernel::take_dbgprint_log();
    let (cl, sock) = (client as usize, socket as usize);
    let receiver = thread::spawn(move || {
        let mut got = [0u8; 4];
        let r =
            receive(cl as *mut SAFEWSK_CLIENT, sock as *mut SAFEWSK_SOCKET, &mut got, WSK_FLAG_WAITALL, SAFEWSK_NO_TIMEOUT);
        (r, got)
    });
    wait_until("the receive to be inside WskReceive", || hostkernel::calls_in_progress(socket.cast()) == 1);
    let closer = start_close(client, socket);
    // (A close that did not wait has reset the connection: then this fails.)
    let _ = std::io::Write::write_all(&mut peer, b"late");
    assert_eq!(join_within("the close", closer), STATUS_SUCCESS);
    let v = hostkernel::violations();
    assert!(v.is_empty(), "WskCloseSocket was called during a call in progress: {v:#?}");
    assert_eq!(join_within("the receive", receiver), ((STATUS_SUCCESS, 4), *b"late"));
    cleanup(client);
    k.finish();
}

unsafe extern "system" fn ignore_disconnect(_ctx: PVOID, _flags: ULONG) -> NTSTATUS {
    STATUS_SUCCESS
}

static ON_DISCONNECT: WSK_CLIENT_CONNECTION_DISPATCH = WSK_CLIENT_CONNECTION_DISPATCH {
    WskReceiveEvent: None,
    WskDisconnectEvent: Some(ignore_disconnect),
    WskSendBacklogEvent: None,
};

/// SafeWskEnableCallbacks calls the socket's WskControlSocket like any other
/// call on the socket: a close from another thread must not free the socket
/// while that call is in progress (here WskControlSocket is held at its
/// entry, `HoldPoint::ControlSocket`: the caller is preempted, say). The close waits for it; on the old code it
/// only looked the socket up, so the close went ahead and the enable then
/// ran on a freed WSK_SOCKET.
#[test]
fn a_close_waits_for_an_enable_callbacks_in_progress() {
    let k = Session::begin();
    let client = startup();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = listener.local_addr().expect("addr");
    let h = thread::spawn(move || listener.accept().expect("accept").0);
    let (local, remote) = (Addr::parse("0.0.0.0:0"), Addr::from(server));
    let mut socket = std::ptr::null_mut();
    // SAFETY: valid addresses, a static table (no context needed), out pointer.
    let st = unsafe {
        SafeWskSocketConnect(
            client,
            SOCK_STREAM,
            IPPROTO_TCP,
            local.ptr(),
            remote.ptr(),
            0,
            std::ptr::null_mut(),
            &ON_DISCONNECT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut socket,
            SAFEWSK_NO_TIMEOUT,
        )
    };
    assert_eq!(st, STATUS_SUCCESS);
    let _peer = join_within("the accept", h);
    hostkernel::hold_calls(HoldPoint::ControlSocket);
    let _ = hostkernel::take_dbgprint_log();
    let (cl, sock) = (client as usize, socket as usize);
    // SAFETY: the socket is open when the call starts.
    let enabler = thread::spawn(move || unsafe {
        SafeWskEnableCallbacks(cl as *mut SAFEWSK_CLIENT, sock as *mut SAFEWSK_SOCKET, WSK_EVENT_DISCONNECT)
    });
    assert!(hostkernel::wait_calls_held(HoldPoint::ControlSocket, 1, LONG), "the enable never reached WSK");
    // The enable is inside WskControlSocket now: close.
    let closer = start_close(client, socket);
    hostkernel::release_calls(HoldPoint::ControlSocket);
    assert_eq!(join_within("the close", closer), STATUS_SUCCESS);
    let enabled = join_within("the enable", enabler);
    let v = hostkernel::violations();
    assert!(v.is_empty(), "the close overlapped WskControlSocket: {v:#?}");
    assert_eq!(enabled, STATUS_SUCCESS, "the enable ran before the close");
    cleanup(client);
    k.finish();
}
