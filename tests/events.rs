//! Issue 10, item 3: SafeWskEnableCallbacks / SafeWskDisableCallbacks.
//!
//! The host kernel calls a socket's enabled callbacks from its readiness,
//! at DISPATCH_LEVEL, with WSK_DATA_INDICATION lists over non-paged memory
//! (hostkernel/src/wsk_events.rs). Every test ends with `Session::finish`
//! (zero leaks, no contract violation).

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use safewsk::nt::*;
use safewsk::*;

const STATUS_DATA_NOT_ACCEPTED: NTSTATUS = 0xC000_021B_u32 as NTSTATUS;
const MDL_MAPPED_SYSTEM_VA: usize = 0x18;

/// What the callbacks saw.
#[derive(Default)]
struct Recorder {
    bytes: Mutex<Vec<u8>>,
    receives: AtomicU32,
    disconnects: AtomicU32,
    backlogs: AtomicU32,
    /// IRQL of every call.
    irqls: Mutex<Vec<u8>>,
    /// What WskReceiveEvent returns: 0 STATUS_SUCCESS, 1 STATUS_DATA_NOT_ACCEPTED
    /// (then back to 0), 2 STATUS_PENDING (keeps the indication).
    mode: AtomicU32,
    /// How long WskReceiveEvent takes (ms).
    linger_ms: AtomicU32,
    kept: Mutex<Vec<usize>>,
    /// Signalled after every call (the condition variable's own mutex).
    signal: Mutex<()>,
    cv: Condvar,
}

impl Recorder {
    fn wait_for(&self, what: impl Fn(&Recorder) -> bool, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut g = self.signal.lock().unwrap();
        while !what(self) && Instant::now() < deadline {
            g = self.cv.wait_timeout(g, Duration::from_millis(10)).unwrap().0;
        }
        drop(g);
        what(self)
    }
}

/// The bytes of a WSK_DATA_INDICATION list (Next 0, Buffer.Mdl 8,
/// Buffer.Offset 16, Buffer.Length 24; the MDL's MappedSystemVa at 0x18, set
/// by MmBuildMdlForNonPagedPool).
///
/// # Safety
/// `ind` heads a live indication list.
// Reads of one structure with one precondition: one unsafe block each.
#[allow(clippy::multiple_unsafe_ops_per_block)]
unsafe fn indication_bytes(mut ind: PVOID) -> Vec<u8> {
    let mut out = Vec::new();
    while !ind.is_null() {
        // SAFETY: a live WSK_DATA_INDICATION (contract).
        let (next, mdl, offset, length) = unsafe {
            (
                ind.cast::<PVOID>().read(),
                ind.cast::<u8>().add(8).cast::<PVOID>().read(),
                ind.cast::<u8>().add(16).cast::<u32>().read(),
                ind.cast::<u8>().add(24).cast::<usize>().read(),
            )
        };
        // SAFETY: the indication's MDL, live with it.
        let va = unsafe { mdl.cast::<u8>().add(MDL_MAPPED_SYSTEM_VA).cast::<*const u8>().read() };
        // SAFETY: the MDL describes `length` bytes from `offset`.
        out.extend_from_slice(unsafe { std::slice::from_raw_parts(va.add(offset as usize), length) });
        ind = next;
    }
    out
}

unsafe extern "system" fn on_receive(
    ctx: PVOID,
    _flags: ULONG,
    ind: PVOID,
    bytes: SIZE_T,
    _accepted: *mut SIZE_T,
) -> NTSTATUS {
    // SAFETY: the Recorder the test keeps alive until the socket is closed.
    let r = unsafe { &*(ctx as *const Recorder) };
    r.irqls.lock().unwrap().push(hostkernel::irql::current());
    let linger = r.linger_ms.load(Ordering::SeqCst);
    if linger > 0 {
        thread::sleep(Duration::from_millis(linger.into()));
    }
    let status = match r.mode.load(Ordering::SeqCst) {
        1 => {
            r.mode.store(0, Ordering::SeqCst);
            STATUS_DATA_NOT_ACCEPTED
        }
        2 => {
            r.kept.lock().unwrap().push(ind as usize);
            STATUS_PENDING
        }
        _ => STATUS_SUCCESS,
    };
    if status != STATUS_DATA_NOT_ACCEPTED {
        // SAFETY: a live indication list for the duration of the call.
        let data = unsafe { indication_bytes(ind) };
        assert_eq!(data.len(), bytes, "BytesIndicated is the list's total");
        r.bytes.lock().unwrap().extend_from_slice(&data);
    }
    r.receives.fetch_add(1, Ordering::SeqCst);
    r.cv.notify_all();
    status
}

unsafe extern "system" fn on_disconnect(ctx: PVOID, _flags: ULONG) -> NTSTATUS {
    // SAFETY: as for on_receive.
    let r = unsafe { &*(ctx as *const Recorder) };
    r.irqls.lock().unwrap().push(hostkernel::irql::current());
    r.disconnects.fetch_add(1, Ordering::SeqCst);
    r.cv.notify_all();
    STATUS_SUCCESS
}

unsafe extern "system" fn on_backlog(ctx: PVOID, _ideal: SIZE_T) -> NTSTATUS {
    // SAFETY: as for on_receive.
    let r = unsafe { &*(ctx as *const Recorder) };
    r.irqls.lock().unwrap().push(hostkernel::irql::current());
    r.backlogs.fetch_add(1, Ordering::SeqCst);
    r.cv.notify_all();
    STATUS_SUCCESS
}

static ALL: WSK_CLIENT_CONNECTION_DISPATCH = WSK_CLIENT_CONNECTION_DISPATCH {
    WskReceiveEvent: Some(on_receive),
    WskDisconnectEvent: Some(on_disconnect),
    WskSendBacklogEvent: Some(on_backlog),
};
static DISCONNECT_ONLY: WSK_CLIENT_CONNECTION_DISPATCH = WSK_CLIENT_CONNECTION_DISPATCH {
    WskReceiveEvent: None,
    WskDisconnectEvent: Some(on_disconnect),
    WskSendBacklogEvent: None,
};

/// Connects to a fresh listener with `dispatch` and the recorder as context;
/// returns the socket and the server's end.
fn connect_with(
    client: *mut SAFEWSK_CLIENT,
    dispatch: Option<&'static WSK_CLIENT_CONNECTION_DISPATCH>,
    rec: &Arc<Recorder>,
) -> (*mut SAFEWSK_SOCKET, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server: SocketAddr = listener.local_addr().expect("addr");
    let h = thread::spawn(move || listener.accept().expect("accept").0);
    let local = Addr::parse("0.0.0.0:0");
    let remote = Addr::from(server);
    let mut socket = ptr::null_mut();
    let (ctx, table) = match dispatch {
        Some(d) => (Arc::as_ptr(rec) as PVOID, d as *const WSK_CLIENT_CONNECTION_DISPATCH),
        None => (ptr::null_mut(), ptr::null()),
    };
    // SAFETY: valid addresses, context and table (alive until the close),
    // out pointer.
    let st = unsafe {
        SafeWskSocketConnect(
            client,
            SOCK_STREAM,
            IPPROTO_TCP,
            local.ptr(),
            remote.ptr(),
            0,
            ctx,
            table,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut socket,
            2000,
        )
    };
    assert_eq!(st, STATUS_SUCCESS);
    (socket, h.join().expect("accept"))
}

fn enable(socket: *mut SAFEWSK_SOCKET, mask: u32) -> NTSTATUS {
    // SAFETY: any socket handle value is safe (looked up, not trusted).
    unsafe { SafeWskEnableCallbacks(socket, mask) }
}

fn disable(socket: *mut SAFEWSK_SOCKET, mask: u32) -> NTSTATUS {
    // SAFETY: as above.
    unsafe { SafeWskDisableCallbacks(socket, mask, 2000) }
}

/// The provider's WSK_SOCKET behind a socket handle. A driver never sees it
/// (the handle is opaque and the WSK_SOCKET stays the library's); a test
/// that calls the provider directly finds it through the host kernel: the
/// open WSK socket whose Linux socket has the handle's local port.
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

#[test]
fn the_receive_callback_gets_exactly_the_peers_bytes_at_dispatch_level() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    let (socket, mut peer) = connect_with(client, Some(&ALL), &rec);
    // Nothing is called before the callbacks are enabled.
    peer.write_all(b"before").unwrap();
    thread::sleep(Duration::from_millis(100));
    assert_eq!(rec.receives.load(Ordering::SeqCst), 0, "callbacks start disabled");
    let mut buf = [0u8; 6];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 6));

    assert_eq!(enable(socket, WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT | WSK_EVENT_SEND_BACKLOG), STATUS_SUCCESS);
    let message: Vec<u8> = (0..5000u32).map(|i| (i % 251) as u8).collect();
    peer.write_all(&message).unwrap();
    assert!(rec.wait_for(|r| r.bytes.lock().unwrap().len() >= message.len(), Duration::from_secs(5)));
    assert_eq!(*rec.bytes.lock().unwrap(), message, "exactly the peer's bytes, in order");
    assert!(rec.wait_for(|r| r.backlogs.load(Ordering::SeqCst) == 1, Duration::from_secs(2)), "send backlog told once");
    drop(peer); // FIN
    assert!(rec.wait_for(|r| r.disconnects.load(Ordering::SeqCst) == 1, Duration::from_secs(5)), "WskDisconnectEvent");
    let irqls = rec.irqls.lock().unwrap().clone();
    assert!(
        !irqls.is_empty() && irqls.iter().all(|&i| i == DISPATCH_LEVEL),
        "every callback at DISPATCH_LEVEL: {irqls:?}"
    );
    eprintln!(
        "{} bytes in {} WskReceiveEvent call(s), then WskDisconnectEvent",
        message.len(),
        rec.receives.load(Ordering::SeqCst)
    );
    assert_eq!(disable(socket, WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT | WSK_EVENT_SEND_BACKLOG), STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn disabling_stops_the_callback_and_the_data_goes_to_receive() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    let (socket, mut peer) = connect_with(client, Some(&ALL), &rec);
    assert_eq!(enable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    peer.write_all(b"one").unwrap();
    assert!(rec.wait_for(|r| *r.bytes.lock().unwrap() == b"one", Duration::from_secs(5)));
    assert_eq!(disable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    let calls = rec.receives.load(Ordering::SeqCst);
    peer.write_all(b"two").unwrap();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(rec.receives.load(Ordering::SeqCst), calls, "no call after the disable");
    let mut buf = [0u8; 3];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 3));
    assert_eq!(&buf, b"two");
    // Enabled again, it is called again.
    assert_eq!(enable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    peer.write_all(b"three").unwrap();
    assert!(rec.wait_for(|r| *r.bytes.lock().unwrap() == b"onethree", Duration::from_secs(5)));
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// SafeWskDisableCallbacks waits for a running callback: when it returns,
/// the callback has returned.
#[test]
fn disabling_waits_for_a_running_callback() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    rec.linger_ms.store(300, Ordering::SeqCst);
    let (socket, mut peer) = connect_with(client, Some(&ALL), &rec);
    assert_eq!(enable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    peer.write_all(b"slow").unwrap();
    assert!(rec.wait_for(|r| !r.irqls.lock().unwrap().is_empty(), Duration::from_secs(5)), "the callback started");
    let t = Instant::now();
    assert_eq!(disable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    assert_eq!(rec.receives.load(Ordering::SeqCst), 1, "the running callback had returned");
    eprintln!("SafeWskDisableCallbacks waited {:?} for the running callback", t.elapsed());
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn data_not_accepted_stops_indications_until_receive() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    rec.mode.store(1, Ordering::SeqCst);
    let (socket, mut peer) = connect_with(client, Some(&ALL), &rec);
    assert_eq!(enable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    peer.write_all(b"refused").unwrap();
    assert!(rec.wait_for(|r| r.receives.load(Ordering::SeqCst) == 1, Duration::from_secs(5)));
    peer.write_all(b"+more").unwrap();
    thread::sleep(Duration::from_millis(200));
    assert_eq!(rec.receives.load(Ordering::SeqCst), 1, "no indication until SafeWskReceive");
    let mut buf = [0u8; 12];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 12));
    assert_eq!(&buf, b"refused+more", "the data not accepted stayed for WskReceive");
    peer.write_all(b"again").unwrap();
    assert!(rec.wait_for(|r| *r.bytes.lock().unwrap() == b"again", Duration::from_secs(5)), "indications resumed");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// STATUS_PENDING keeps the indication until WskRelease (the socket's own
/// dispatch entry); released, nothing leaks.
///
/// WskRelease takes the WSK_SOCKET, which a driver no longer has since the
/// connects hand out opaque handles (issue 17), and safewsk exports no call
/// that releases an indication: a C driver cannot do what this test does.
/// The test finds the WSK_SOCKET through the host kernel (`wsk_socket_of`)
/// to show the release itself is clean.
// The socket's own table read through its Dispatch: one unsafe block.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn a_kept_indication_is_given_back_with_wsk_release() {
    type Release = unsafe extern "system" fn(*mut WSK_SOCKET, PVOID) -> NTSTATUS;
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    rec.mode.store(2, Ordering::SeqCst);
    let (socket, mut peer) = connect_with(client, Some(&ALL), &rec);
    assert_eq!(enable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    peer.write_all(b"kept").unwrap();
    assert!(rec.wait_for(|r| *r.bytes.lock().unwrap() == b"kept", Duration::from_secs(5)));
    assert_eq!(disable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    let kept = rec.kept.lock().unwrap().clone();
    assert!(!kept.is_empty());
    let wsk_socket = wsk_socket_of(socket);
    // SAFETY: an open WSK socket: its Dispatch is the provider's connection
    // table, whose WskRelease is a PFN_WSK_RELEASE_DATA_INDICATION_LIST.
    let release: Release = unsafe {
        let table = &*(*wsk_socket).Dispatch.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
        std::mem::transmute::<PVOID, Release>(table.WskRelease)
    };
    for ind in kept {
        // SAFETY: an indication this socket's WskReceiveEvent kept.
        assert_eq!(unsafe { release(wsk_socket, ind as PVOID) }, STATUS_SUCCESS);
    }
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// An indication kept and never released is a leak the host kernel reports.
#[test]
fn an_indication_never_released_is_reported() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    rec.mode.store(2, Ordering::SeqCst);
    let (socket, mut peer) = connect_with(client, Some(&ALL), &rec);
    assert_eq!(enable(socket, WSK_EVENT_RECEIVE), STATUS_SUCCESS);
    peer.write_all(b"leak").unwrap();
    assert!(rec.wait_for(|r| *r.bytes.lock().unwrap() == b"leak", Duration::from_secs(5)));
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    let v = hostkernel::violations();
    assert!(v.iter().any(|m| m.contains("never given back with WskRelease")), "{v:#?}");
    let finished = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| k.finish()));
    assert!(finished.is_err(), "Session::finish fails on the leak");
}

/// `EventMask` is parameter 2 now that the calls take no client.
#[test]
fn a_callback_the_table_lacks_is_parameter_2_and_the_provider_is_not_called() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    let (partial, _p1) = connect_with(client, Some(&DISCONNECT_ONLY), &rec);
    let (bare, _p2) = connect_with(client, None, &rec);
    let (full, _p3) = connect_with(client, Some(&ALL), &rec);
    for (what, socket, mask) in [
        ("WskReceiveEvent missing from the table", partial, WSK_EVENT_RECEIVE),
        ("WskSendBacklogEvent missing", partial, WSK_EVENT_SEND_BACKLOG | WSK_EVENT_DISCONNECT),
        ("no table at all", bare, WSK_EVENT_DISCONNECT),
        ("mask 0", full, 0),
        ("WSK_EVENT_DISABLE", full, WSK_EVENT_RECEIVE | WSK_EVENT_DISABLE),
        ("a listening socket's WSK_EVENT_ACCEPT", full, 0x200),
    ] {
        assert_eq!(enable(socket, mask), STATUS_INVALID_PARAMETER_2, "enable: {what}");
        assert_eq!(disable(socket, mask), STATUS_INVALID_PARAMETER_2, "disable: {what}");
    }
    assert_eq!(enable(partial, WSK_EVENT_DISCONNECT), STATUS_SUCCESS, "what the table has");
    assert!(hostkernel::violations().is_empty(), "the provider never saw a bad request");
    for s in [partial, bare, full] {
        assert_eq!(close(s), STATUS_SUCCESS);
    }
    cleanup(client);
    k.finish();
}

/// Parameter 1 (the socket handle: NULL, closed or forged is _1, at any
/// IRQL: the check reads only the library's table), then the form of the
/// mask (_2), then the IRQL, then (once the socket is acquired) whether the
/// socket's table has each callback (_2).
// A table of calls with null or valid handles: one unsafe block.
#[allow(clippy::multiple_unsafe_ops_per_block)]
#[test]
fn parameters_by_position_then_the_irql() {
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    let (socket, _peer) = connect_with(client, Some(&ALL), &rec);
    let (partial, _p1) = connect_with(client, Some(&DISCONNECT_ONLY), &rec);
    let (closed, _p2) = connect_with(client, Some(&ALL), &rec);
    assert_eq!(close(closed), STATUS_SUCCESS);
    let forged = ((socket as usize) | 0xFFFF) as *mut SAFEWSK_SOCKET;
    let high = |f: &mut dyn FnMut() -> NTSTATUS| hostkernel::with_irql(3, f);
    let dispatch = |f: &mut dyn FnMut() -> NTSTATUS| hostkernel::with_irql(DISPATCH_LEVEL, f);
    let r = WSK_EVENT_RECEIVE;
    // SAFETY: any handle value is safe; handles are only looked up.
    let rows: Vec<(&str, NTSTATUS, NTSTATUS)> = unsafe {
        vec![
            ("enable 1 NULL, 2 mask 0", SafeWskEnableCallbacks(ptr::null_mut(), 0), STATUS_INVALID_PARAMETER_1),
            ("enable 1 closed, 2 mask 0", SafeWskEnableCallbacks(closed, 0), STATUS_INVALID_PARAMETER_1),
            ("enable 1 forged", SafeWskEnableCallbacks(forged, r), STATUS_INVALID_PARAMETER_1),
            ("enable 1 the client's handle", SafeWskEnableCallbacks(client.cast(), r), STATUS_INVALID_PARAMETER_1),
            (
                "enable 2 mask 0 at DISPATCH_LEVEL",
                dispatch(&mut || SafeWskEnableCallbacks(socket, 0)),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "enable 1 NULL at IRQL 3",
                high(&mut || SafeWskEnableCallbacks(ptr::null_mut(), r)),
                STATUS_INVALID_PARAMETER_1,
            ),
            ("enable 1 closed at IRQL 3", high(&mut || SafeWskEnableCallbacks(closed, r)), STATUS_INVALID_PARAMETER_1),
            ("enable 2 mask 0 at IRQL 3", high(&mut || SafeWskEnableCallbacks(socket, 0)), STATUS_INVALID_PARAMETER_2),
            ("enable valid at IRQL 3", high(&mut || SafeWskEnableCallbacks(socket, r)), STATUS_INVALID_LEVEL),
            (
                "enable a callback the table lacks at IRQL 3",
                high(&mut || SafeWskEnableCallbacks(partial, r)),
                STATUS_INVALID_LEVEL,
            ),
            ("enable a callback the table lacks", SafeWskEnableCallbacks(partial, r), STATUS_INVALID_PARAMETER_2),
            ("disable 1 NULL, 2 mask 0", SafeWskDisableCallbacks(ptr::null_mut(), 0, 100), STATUS_INVALID_PARAMETER_1),
            ("disable 1 closed, 2 mask 0", SafeWskDisableCallbacks(closed, 0, 100), STATUS_INVALID_PARAMETER_1),
            (
                "disable 1 closed at IRQL 3",
                high(&mut || SafeWskDisableCallbacks(closed, r, 100)),
                STATUS_INVALID_PARAMETER_1,
            ),
            (
                "disable 2 mask 0 at DISPATCH_LEVEL",
                dispatch(&mut || SafeWskDisableCallbacks(socket, 0, 100)),
                STATUS_INVALID_PARAMETER_2,
            ),
            (
                "disable valid at DISPATCH_LEVEL",
                dispatch(&mut || SafeWskDisableCallbacks(socket, r, 100)),
                STATUS_INVALID_LEVEL,
            ),
        ]
    };
    for (what, got, want) in rows {
        assert_eq!(got, want, "{what}: got {got:#x}");
    }
    assert!(hostkernel::violations().is_empty(), "the provider never saw a bad request");
    // Enabling is allowed at DISPATCH_LEVEL (no IRP, no wait).
    let st = hostkernel::with_irql(DISPATCH_LEVEL, || enable(socket, WSK_EVENT_RECEIVE));
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(close(partial), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// Every allocation of SafeWskDisableCallbacks (per flag an IRP and a
/// completion context) failed in turn: STATUS_INSUFFICIENT_RESOURCES, zero
/// leaks. Enabling allocates nothing.
#[test]
fn every_allocation_of_disable_can_fail() {
    for site in [Site::Irp, Site::CompletionContext, Site::Pool] {
        let mut n = 1;
        loop {
            let k = Session::begin();
            let client = startup();
            let rec = Arc::new(Recorder::default());
            let (socket, _peer) = connect_with(client, Some(&ALL), &rec);
            assert_eq!(enable(socket, WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT), STATUS_SUCCESS);
            k.fail_nth(site, n);
            let st = disable(socket, WSK_EVENT_RECEIVE | WSK_EVENT_DISCONNECT);
            let hit = k.fault_hit(site);
            k.fail_nth(site, 0);
            assert_eq!(close(socket), STATUS_SUCCESS);
            cleanup(client);
            k.finish();
            if hit {
                assert_eq!(st, STATUS_INSUFFICIENT_RESOURCES, "{site:?} #{n}");
                n += 1;
            } else {
                assert_eq!(st, STATUS_SUCCESS);
                eprintln!("{site:?}: {} allocation(s) in a two-flag disable, each failure handled", n - 1);
                break;
            }
        }
    }
}

/// The provider failing or never completing the SO_WSK_EVENT_CALLBACK
/// request: enabling returns the provider's status (a STATUS_PENDING
/// without an IRP is no success: STATUS_UNSUCCESSFUL); disabling returns the
/// status, or STATUS_IO_TIMEOUT at its deadline. The socket stays usable,
/// nothing leaks.
#[test]
fn the_provider_failing_or_never_completing_the_request() {
    use hostkernel::{CallFault, WskCall};
    let k = Session::begin();
    let client = startup();
    let rec = Arc::new(Recorder::default());
    let (socket, mut peer) = connect_with(client, Some(&ALL), &rec);

    hostkernel::set_call_fault(WskCall::EventCallback, 1, CallFault::Fail(STATUS_INVALID_DEVICE_STATE));
    assert_eq!(enable(socket, WSK_EVENT_RECEIVE), STATUS_INVALID_DEVICE_STATE);
    hostkernel::set_call_fault(WskCall::EventCallback, 2, CallFault::Never);
    assert_eq!(enable(socket, WSK_EVENT_RECEIVE), STATUS_UNSUCCESSFUL);

    hostkernel::set_call_fault(WskCall::EventCallback, 3, CallFault::Fail(STATUS_INSUFFICIENT_RESOURCES));
    assert_eq!(disable(socket, WSK_EVENT_RECEIVE), STATUS_INSUFFICIENT_RESOURCES);
    hostkernel::set_call_fault(WskCall::EventCallback, 4, CallFault::Never);
    let t = Instant::now();
    // SAFETY: any socket handle value is safe.
    let st = unsafe { SafeWskDisableCallbacks(socket, WSK_EVENT_RECEIVE, 300) };
    let took = t.elapsed();
    assert_eq!(st, STATUS_IO_TIMEOUT);
    assert!(took >= Duration::from_millis(290) && took < Duration::from_millis(1500), "took {took:?}");

    peer.write_all(b"ok").unwrap();
    let mut buf = [0u8; 2];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 2));
    assert_eq!(rec.receives.load(Ordering::SeqCst), 0, "never enabled");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
