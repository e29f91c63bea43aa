//! Issue 18, item 2: SafeWskRelease.
//!
//! A WskReceiveEvent callback (called by the host kernel at DISPATCH_LEVEL,
//! hostkernel/src/wsk_events.rs) that returns STATUS_PENDING keeps the data
//! indication list; SafeWskRelease gives it back through the socket's
//! WskRelease, at IRQL <= DISPATCH_LEVEL (also from a callback), counted as
//! a call in the socket's functions: a SafeWskCloseSocket on another thread
//! waits until it has returned ("Closing a Socket"; the host kernel reports
//! a WskCloseSocket made while a WskRelease is in progress). After the
//! close it is refused with STATUS_INVALID_PARAMETER_1.

mod common;
mod issue18;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ptr;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use issue18::*;
use safewsk::nt::*;
use safewsk::*;

/// What the receive callback does and saw.
#[derive(Default)]
struct Recorder {
    /// The socket's handle (set after the connect).
    socket: AtomicUsize,
    /// Indication lists kept (STATUS_PENDING) and not given back.
    kept: Mutex<Vec<usize>>,
    /// 0: keep every indication; 1: give the kept ones back with
    /// SafeWskRelease from inside the callback, and accept the new one.
    mode: AtomicU32,
    /// SafeWskRelease's statuses inside the callback, with the IRQL.
    released_inside: Mutex<Vec<(NTSTATUS, u8)>>,
    calls: AtomicU32,
}

unsafe extern "system" fn on_receive(
    ctx: PVOID,
    _flags: ULONG,
    ind: PVOID,
    _bytes: SIZE_T,
    _accepted: *mut SIZE_T,
) -> NTSTATUS {
    // SAFETY: the Recorder the test keeps alive until the socket is closed.
    let r = unsafe { &*(ctx as *const Recorder) };
    r.calls.fetch_add(1, Ordering::SeqCst);
    if r.mode.load(Ordering::SeqCst) == 1 {
        let socket = r.socket.load(Ordering::SeqCst) as *mut SAFEWSK_SOCKET;
        for old in std::mem::take(&mut *r.kept.lock().unwrap()) {
            // SAFETY: a list this socket's callback kept, not released yet.
            let st = unsafe { SafeWskRelease(socket, old as *mut WSK_DATA_INDICATION) };
            r.released_inside.lock().unwrap().push((st, hostkernel::irql::current()));
        }
        return STATUS_SUCCESS;
    }
    r.kept.lock().unwrap().push(ind as usize);
    STATUS_PENDING
}

static RECEIVE: WSK_CLIENT_CONNECTION_DISPATCH = WSK_CLIENT_CONNECTION_DISPATCH {
    WskReceiveEvent: Some(on_receive),
    WskDisconnectEvent: None,
    WskSendBacklogEvent: None,
};

/// Connects with the receive callback and the recorder, enables it; returns
/// the socket, the peer and the WSK socket behind it.
fn connect_with_callback(client: *mut SAFEWSK_CLIENT, rec: &Arc<Recorder>) -> (*mut SAFEWSK_SOCKET, TcpStream, usize) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server: SocketAddr = listener.local_addr().expect("addr");
    let accept = thread::spawn(move || listener.accept().expect("accept").0);
    let local = Addr::parse("0.0.0.0:0");
    let remote = Addr::from(server);
    let mut socket = ptr::null_mut();
    // SAFETY: valid addresses, a context and table alive until the close,
    // an out pointer.
    let st = unsafe {
        SafeWskSocketConnect(
            client,
            SOCK_STREAM,
            IPPROTO_TCP,
            local.ptr(),
            remote.ptr(),
            0,
            Arc::as_ptr(rec) as PVOID,
            &RECEIVE,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut socket,
            2000,
        )
    };
    assert_eq!(st, STATUS_SUCCESS);
    rec.socket.store(socket as usize, Ordering::SeqCst);
    let peer = accept.join().expect("accept");
    let wsk = host_sockets();
    assert_eq!(wsk.len(), 1);
    // SAFETY: a socket handle.
    assert_eq!(unsafe { SafeWskEnableCallbacks(socket, WSK_EVENT_RECEIVE) }, STATUS_SUCCESS);
    (socket, peer, wsk[0])
}

/// Waits until the callback kept `n` lists.
fn wait_kept(rec: &Recorder, n: usize) -> Vec<usize> {
    let end = Instant::now() + Duration::from_secs(5);
    while rec.kept.lock().unwrap().len() < n && Instant::now() < end {
        thread::sleep(Duration::from_millis(2));
    }
    let kept = rec.kept.lock().unwrap().clone();
    assert_eq!(kept.len(), n, "indications kept");
    kept
}

fn release(socket: *mut SAFEWSK_SOCKET, ind: usize) -> NTSTATUS {
    // SAFETY: a list the socket's callback kept (or what the test means to
    // pass: the library checks the socket first).
    unsafe { SafeWskRelease(socket, ind as *mut WSK_DATA_INDICATION) }
}

/// A kept list is given back at DISPATCH_LEVEL (the provider records the
/// release), and from inside the socket's next WskReceiveEvent callback.
#[test]
fn a_kept_indication_is_given_back_at_dispatch_level_and_from_a_callback() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    let (s, mut peer, wsk) = connect_with_callback(client, &rec);
    peer.write_all(b"kept").expect("write");
    let kept = wait_kept(&rec, 1);
    assert_eq!(hostkernel::indications_retained(wsk as *mut _), Some(1));
    let before = hostkernel::indications_released();
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || release(s, kept[0]));
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(hostkernel::indications_released(), before + 1, "the provider took it back");
    assert_eq!(hostkernel::indications_retained(wsk as *mut _), Some(0));
    rec.kept.lock().unwrap().clear();

    // Keep one more, then let the next callback give it back itself.
    peer.write_all(b"second").expect("write");
    wait_kept(&rec, 1);
    rec.mode.store(1, Ordering::SeqCst);
    peer.write_all(b"third").expect("write");
    let end = Instant::now() + Duration::from_secs(5);
    while rec.released_inside.lock().unwrap().is_empty() && Instant::now() < end {
        thread::sleep(Duration::from_millis(2));
    }
    let inside = rec.released_inside.lock().unwrap().clone();
    assert_eq!(inside, vec![(STATUS_SUCCESS, DISPATCH_LEVEL)], "released from the callback, at DISPATCH_LEVEL");
    assert_eq!(hostkernel::indications_released(), before + 2);
    assert_eq!(hostkernel::indications_retained(wsk as *mut _), Some(0));
    // SAFETY: a socket handle.
    assert_eq!(unsafe { SafeWskDisableCallbacks(s, WSK_EVENT_RECEIVE, 2000) }, STATUS_SUCCESS);
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// SafeWskRelease racing SafeWskCloseSocket: WskRelease takes 300 ms (host
/// `set_release_delay`); the close, made 80 ms into it on another thread,
/// waits until it has returned: no "WskCloseSocket while a call is in
/// progress" and no "indication never given back" (Session::finish checks
/// both). After the close the handle is refused.
#[test]
fn a_close_racing_safewskrelease_waits_for_it() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    let (s, mut peer, _wsk) = connect_with_callback(client, &rec);
    peer.write_all(b"kept").expect("write");
    let kept = wait_kept(&rec, 1);
    // SAFETY: a socket handle.
    assert_eq!(unsafe { SafeWskDisableCallbacks(s, WSK_EVENT_RECEIVE, 2000) }, STATUS_SUCCESS);
    let before = hostkernel::indications_released();
    hostkernel::set_release_delay(Some(Duration::from_millis(300)));
    let h = SocketH::new(s);
    let ind = kept[0];
    let releaser = thread::spawn(move || {
        let st = release(h.get(), ind);
        (st, Instant::now())
    });
    thread::sleep(Duration::from_millis(80));
    let t0 = Instant::now();
    let st = bounded("SafeWskCloseSocket", Duration::from_secs(5), move || close(h.get()));
    let closed = Instant::now();
    let took = closed - t0;
    let (released, _) = releaser.join().expect("releaser");
    println!("the close racing SafeWskRelease took {took:?}");
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(released, STATUS_SUCCESS);
    assert!(took >= Duration::from_millis(150), "the close waited for WskRelease to return: {took:?}");
    assert_eq!(hostkernel::indications_released(), before + 1);
    let v = hostkernel::violations();
    assert!(v.is_empty(), "{v:#?}");
    // After the close: refused, the provider not called.
    assert_eq!(release(s, ind), STATUS_INVALID_PARAMETER_1);
    assert_eq!(hostkernel::with_irql(DISPATCH_LEVEL, || release(s, ind)), STATUS_INVALID_PARAMETER_1);
    cleanup(client);
    k.finish();
}

/// Parameters by position, then the IRQL: NULL, forged or closed socket
/// _1 (checked at any IRQL), NULL list _2, above DISPATCH_LEVEL
/// STATUS_INVALID_LEVEL.
#[test]
fn release_parameters_and_irql() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    let (s, mut peer, _wsk) = connect_with_callback(client, &rec);
    assert_eq!(release(ptr::null_mut(), 0), STATUS_INVALID_PARAMETER_1, "NULL socket first");
    assert_eq!(release(ptr::null_mut(), 0x1000), STATUS_INVALID_PARAMETER_1);
    assert_eq!(
        release(0xA500_0000_0000_1234usize as *mut SAFEWSK_SOCKET, 0x1000),
        STATUS_INVALID_PARAMETER_1,
        "forged"
    );
    assert_eq!(release(s, 0), STATUS_INVALID_PARAMETER_2, "NULL list");
    assert_eq!(hostkernel::with_irql(DISPATCH_LEVEL, || release(s, 0)), STATUS_INVALID_PARAMETER_2);
    assert_eq!(hostkernel::with_irql(DISPATCH_LEVEL + 1, || release(s, 0x1000)), STATUS_INVALID_LEVEL);
    assert_eq!(
        hostkernel::with_irql(DISPATCH_LEVEL + 1, || release(ptr::null_mut(), 0x1000)),
        STATUS_INVALID_PARAMETER_1,
        "the handle is checked at any IRQL"
    );
    // A kept list, given back properly before the close.
    peer.write_all(b"x").expect("write");
    let kept = wait_kept(&rec, 1);
    // SAFETY: a socket handle.
    assert_eq!(unsafe { SafeWskDisableCallbacks(s, WSK_EVENT_RECEIVE, 2000) }, STATUS_SUCCESS);
    assert_eq!(release(s, kept[0]), STATUS_SUCCESS);
    assert_eq!(close(s), STATUS_SUCCESS);
    assert_eq!(release(s, kept[0]), STATUS_INVALID_PARAMETER_1, "after the close");
    cleanup(client);
    k.finish();
}
