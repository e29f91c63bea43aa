//! A close that overlaps other calls on the socket (review of issue 12;
//! issue 17: the close always consumes the handle, a close that cannot be
//! issued leaves the socket to SafeWskCleanup, and cleanup closes the
//! sockets a driver left open).
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
//! has taken the socket but not yet returned from its WskSend / WskReceive
//! / WskDisconnect / WskGet*Address / WskControlSocket (it is still locking
//! its buffer, say) must therefore hold the close back until it has. The
//! host kernel reports a WskCloseSocket made while a call is in progress,
//! and a call that reaches a closed WSK socket.
//!
//! No test sleeps to order its threads. A call is known to be in the
//! provider once its completion context is allocated (the last step before
//! the WSK call); a thread is known to be inside one of the host kernel's
//! delays (`set_page_in_delay`, `set_control_delay`: a thread::sleep inside
//! the call) once Linux shows it asleep in nanosleep
//! (/proc/self/task/TID/syscall); a close is known to be waiting for other
//! calls once it reports so (DbgPrint, every 200 ms on the host).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use safewsk::nt::*;
use safewsk::*;

const TAG: u32 = u32::from_le_bytes(*b"Rv12");
const POOL_FLAG_PAGED: u64 = 0x100;
/// What SafeWskCloseSocket prints while it waits for other calls.
const CLOSE_WAITS: &str = "SafeWskCloseSocket: still waiting after";

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

/// A connected socket, and the server side of its connection.
fn connected(client: *mut SAFEWSK_CLIENT) -> (*mut SAFEWSK_SOCKET, TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = listener.local_addr().expect("addr");
    let h = thread::spawn(move || listener.accept().expect("accept").0);
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    (socket, h.join().expect("accept"))
}

/// Polls `cond` (every millisecond, for up to 10 seconds) until it holds.
fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `n` more completion contexts than `base` were allocated: the
/// calls that allocated them hold their socket and are about to call (or
/// are pending in) the provider.
fn wait_for_contexts(base: u64, n: u64) {
    wait_until("the calls reached the provider", || hostkernel::allocations().completion_contexts.0 >= base + n);
}

/// Whether thread `tid` of this process is asleep in nanosleep, where the
/// host kernel's delays hold a call (the calls under test make no other
/// sleep; their waits are condition variables, futex).
fn in_host_delay(tid: libc::pid_t) -> bool {
    std::fs::read_to_string(format!("/proc/self/task/{tid}/syscall"))
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<libc::c_long>().ok()))
        .is_some_and(|n| n == libc::SYS_nanosleep || n == libc::SYS_clock_nanosleep)
}

/// Spawns `f` on a thread and returns once that thread is asleep in one of
/// the host kernel's delays (inside the call `f` makes).
fn spawn_until_delayed<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> thread::JoinHandle<T> {
    let (tx, rx) = mpsc::channel();
    let h = thread::spawn(move || {
        // SAFETY: gettid has no preconditions.
        tx.send(unsafe { libc::gettid() }).expect("tid");
        f()
    });
    let tid = rx.recv().expect("tid");
    wait_until("the call is inside the host kernel's delay", || {
        assert!(!h.is_finished(), "the call returned before it reached the delay");
        in_host_delay(tid)
    });
    h
}

/// Whether the DbgPrint lines taken so far (into `log`) contain `needle`.
fn logged(log: &mut Vec<String>, needle: &str) -> bool {
    log.extend(hostkernel::take_dbgprint_log());
    log.iter().any(|l| l.contains(needle))
}

/// Starts a receive with SAFEWSK_NO_TIMEOUT on another thread, which waits
/// (no data comes) until the socket is closed; returns once it is in the
/// provider.
fn waiting_receive(socket: *mut SAFEWSK_SOCKET) -> thread::JoinHandle<(NTSTATUS, u32)> {
    let sock = socket as usize;
    let contexts = hostkernel::allocations().completion_contexts.0;
    let h = thread::spawn(move || {
        let mut got = [0u8; 4];
        receive(sock as *mut SAFEWSK_SOCKET, &mut got, 0, SAFEWSK_NO_TIMEOUT)
    });
    wait_for_contexts(contexts, 1);
    h
}

/// A receive into paged pool that was paged out: MmProbeAndLockPages takes
/// a second to page it in (a hard fault, which Windows may take that long
/// for). The socket is closed on another thread meanwhile: after the
/// receive took the socket, before it called WskReceive. The close must
/// wait until the receive has reached WSK (and then ends it, as it ends any
/// pending receive); on the old code it freed the socket under the receive,
/// which then called WskReceive on a closed WSK_SOCKET (a use-after-free on
/// Windows; a violation in the host kernel).
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
    hostkernel::set_page_in_delay(Some(Duration::from_millis(1000)));
    let _ = hostkernel::take_dbgprint_log();
    let (sock, b) = (socket as usize, buf as usize);
    let receiver = spawn_until_delayed(move || {
        let mut n = 0xDEAD;
        // SAFETY: `b` is `len` bytes of paged pool that outlive the call; any
        // handle value is safe.
        let st = unsafe {
            SafeWskReceive(sock as *mut SAFEWSK_SOCKET, b as *mut core::ffi::c_void, len as u32, 0, 5000, &mut n)
        };
        (st, n)
    });
    // The receive is inside MmProbeAndLockPages now: it holds the socket.
    assert_eq!(close(socket), STATUS_SUCCESS);
    let (st, n) = receiver.join().expect("receiver");
    let v = hostkernel::violations();
    assert!(v.is_empty(), "the close freed the socket under a call in progress: {v:#?}");
    assert_eq!((st, n), (STATUS_CANCELLED, 0), "the receive reached WSK before the close and was ended by it");
    // The close's wait (most of a second) reports itself like every other
    // wait.
    let log = hostkernel::take_dbgprint_log();
    assert!(log.iter().any(|l| l.contains(CLOSE_WAITS)), "the close waited silently: {log:#?}");
    hostkernel::set_page_in_delay(None);
    // SAFETY: our block, no longer used by any call.
    unsafe { ExFreePoolWithTag(buf, TAG) };
    cleanup(client);
    k.finish();
}

/// A graceful disconnect that the peer never acknowledges is turned into an
/// abortive WskDisconnect at its deadline. When a close of the socket is
/// already under way at that moment (its WskCloseSocket pending: WSK may
/// take its time), that second WskDisconnect is a call of a closed socket's
/// function (the close freed the WSK_SOCKET): it must not be made. The close
/// ends the graceful disconnect anyway; the disconnect still reports its
/// deadline. The abortive WskDisconnect would take an IRP of its own: the
/// only IRP allocated is the close's (the disconnect holds the socket's).
#[test]
fn no_abortive_disconnect_once_a_close_is_under_way() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected(client);
    hostkernel::set_graceful_disconnect_hangs(true);
    // The close is issued long before the disconnect's deadline (1 s) and
    // pends past it.
    hostkernel::set_close_delay(Some(Duration::from_millis(1500)));
    let sock = socket as usize;
    let before = hostkernel::allocations();
    let disconnecter = thread::spawn(move || {
        // SAFETY: any handle value is safe.
        unsafe { SafeWskDisconnect(sock as *mut SAFEWSK_SOCKET, 0, 1000) }
    });
    // The graceful disconnect is pending in WSK; close while it waits.
    wait_for_contexts(before.completion_contexts.0, 1);
    assert_eq!(close(socket), STATUS_SUCCESS);
    let st = disconnecter.join().expect("disconnecter");
    let v = hostkernel::violations();
    assert!(v.is_empty(), "a WSK function of a socket being closed was called: {v:#?}");
    assert_eq!(st, STATUS_IO_TIMEOUT, "the disconnect's deadline passed (the close ended it)");
    assert_eq!(hostkernel::allocations().irps.0 - before.irps.0, 1, "the close's IRP, and no abortive disconnect's");
    cleanup(client);
    k.finish();
}

/// The IRP an overlapping call allocates (the socket's IRP is held by a
/// waiting receive) is an allocation site too: failing it gives the
/// documented STATUS_INSUFFICIENT_RESOURCES for a send (the socket stays
/// usable) and for a close. The close has consumed the handle all the same
/// (a later call is STATUS_INVALID_PARAMETER_1): the socket is the
/// library's, still open with the receive pending, until SafeWskCleanup
/// closes it, which ends the receive. Nothing leaks.
#[test]
fn an_overlapping_close_without_an_irp_leaves_the_socket_to_cleanup() {
    let k = Session::begin();
    let client = startup();
    let (socket, mut peer) = connected(client);
    let receiver = waiting_receive(socket);
    k.fail_nth(hostkernel::Site::Irp, 1);
    assert_eq!(send(socket, b"abcd"), (STATUS_INSUFFICIENT_RESOURCES, 0));
    assert!(k.fault_hit(hostkernel::Site::Irp));
    k.fail_nth(hostkernel::Site::Irp, 0);
    // The failed send changed nothing: the next one works (and frees the
    // IRP it allocated: only the socket's is live).
    assert_eq!(send(socket, b"abcd"), (STATUS_SUCCESS, 4));
    let mut four = [0u8; 4];
    peer.read_exact(&mut four).expect("peer read");
    assert_eq!(hostkernel::live().irps, 1, "the socket's IRP, held by the receive");

    let _ = hostkernel::take_dbgprint_log();
    k.fail_nth(hostkernel::Site::Irp, 1);
    assert_eq!(close(socket), STATUS_INSUFFICIENT_RESOURCES, "an overlapping close without an IRP");
    assert!(k.fault_hit(hostkernel::Site::Irp));
    k.fail_nth(hostkernel::Site::Irp, 0);
    assert!(
        hostkernel::take_dbgprint_log().iter().any(|l| l.contains("SafeWskCleanup will close it")),
        "the socket left to cleanup is reported"
    );
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "the handle is consumed");
    assert_eq!(send(socket, b"abcd").0, STATUS_INVALID_PARAMETER_1, "the handle is consumed");
    assert_eq!(hostkernel::wsk::open_sockets().len(), 1, "still open: the close was never issued");
    assert!(!receiver.is_finished(), "nothing ended the receive");
    cleanup(client);
    assert_eq!(receiver.join().expect("receiver"), (STATUS_CANCELLED, 0), "cleanup's close ended the receive");
    assert!(hostkernel::wsk::open_sockets().is_empty());
    let v = hostkernel::violations();
    assert!(v.is_empty(), "{v:#?}");
    k.finish();
}

/// Two receives wait (one on the socket's IRP, one on its own); a close (on
/// an IRP of its own) is refused by the provider without completing: the
/// close's IRP is freed, the handle is consumed, the socket stays open with
/// both receives pending, and SafeWskCleanup closes it, which ends both.
/// (Before issue 17 the socket stayed the driver's and the close was
/// retried with the same handle.)
#[test]
fn a_close_refused_while_calls_wait_leaves_the_socket_to_cleanup() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected(client);
    let first = waiting_receive(socket);
    let second = waiting_receive(socket);
    assert_eq!(hostkernel::live().irps, 2, "the socket's IRP and the second receive's");
    hostkernel::set_fail_without_completing(Some(STATUS_INVALID_DEVICE_REQUEST));
    assert_eq!(close(socket), STATUS_INVALID_DEVICE_REQUEST, "refused without being consumed");
    hostkernel::set_fail_without_completing(None);
    assert_eq!(hostkernel::live().irps, 2, "the close's IRP was freed");
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "the handle is consumed");
    assert!(!first.is_finished() && !second.is_finished(), "the socket stayed open");
    assert_eq!(hostkernel::wsk::open_sockets().len(), 1);
    cleanup(client);
    assert_eq!(first.join().expect("first"), (STATUS_CANCELLED, 0));
    assert_eq!(second.join().expect("second"), (STATUS_CANCELLED, 0));
    assert!(hostkernel::wsk::open_sockets().is_empty());
    let v = hostkernel::violations();
    assert!(v.is_empty(), "{v:#?}");
    k.finish();
}

/// In the host kernel's Sync completion mode every WSK function completes
/// its IRP before it returns, so a receive with no data yet stays *inside*
/// WskReceive until data arrives (the host kernel counts calls in progress
/// per socket and reports a WskCloseSocket made meanwhile). A close from
/// another thread must wait until the receive has returned from WSK, then
/// close; on the old code it called WskCloseSocket at once. The data is
/// sent only once the close reports that it waits.
#[test]
fn a_close_waits_while_a_call_is_inside_the_wsk_function() {
    let k = Session::begin();
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Sync);
    let client = startup();
    let (socket, mut peer) = connected(client);
    let sock = socket as usize;
    let contexts = hostkernel::allocations().completion_contexts.0;
    let receiver = thread::spawn(move || {
        let mut got = [0u8; 4];
        let r = receive(sock as *mut SAFEWSK_SOCKET, &mut got, WSK_FLAG_WAITALL, 10_000);
        (r, got)
    });
    // The receive is (or is about to be) inside WskReceive, waiting for data.
    wait_for_contexts(contexts, 1);
    let _ = hostkernel::take_dbgprint_log();
    let closer = thread::spawn(move || close(sock as *mut SAFEWSK_SOCKET));
    let mut log = Vec::new();
    wait_until("the close reports that it waits", || logged(&mut log, CLOSE_WAITS));
    assert!(!closer.is_finished() && !receiver.is_finished());
    peer.write_all(b"late").expect("peer write");
    assert_eq!(receiver.join().expect("receiver"), ((STATUS_SUCCESS, 4), *b"late"));
    assert_eq!(closer.join().expect("closer"), STATUS_SUCCESS);
    let v = hostkernel::violations();
    assert!(v.is_empty(), "WskCloseSocket was called during a call in progress: {v:#?}");
    cleanup(client);
    k.finish();
}

unsafe extern "system" fn ignore_disconnect(_ctx: PVOID, _flags: ULONG) -> NTSTATUS {
    STATUS_SUCCESS
}

unsafe extern "system" fn ignore_backlog(_ctx: PVOID, _ideal: SIZE_T) -> NTSTATUS {
    STATUS_SUCCESS
}

static ON_DISCONNECT: WSK_CLIENT_CONNECTION_DISPATCH = WSK_CLIENT_CONNECTION_DISPATCH {
    WskReceiveEvent: None,
    WskDisconnectEvent: Some(ignore_disconnect),
    WskSendBacklogEvent: Some(ignore_backlog),
};

/// A socket connected with the ON_DISCONNECT table, and the peer.
fn connected_with_callbacks(client: *mut SAFEWSK_CLIENT) -> (*mut SAFEWSK_SOCKET, TcpStream) {
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
            2000,
        )
    };
    assert_eq!(st, STATUS_SUCCESS);
    (socket, h.join().expect("accept"))
}

/// SafeWskEnableCallbacks calls the socket's WskControlSocket like any other
/// call on the socket: a close from another thread must not free the socket
/// while that call is in progress (here WskControlSocket takes a second:
/// the caller is preempted, say). The close waits for it; on the old code
/// it only looked the socket up, so the close went ahead and the enable
/// then ran on a freed WSK_SOCKET.
#[test]
fn a_close_waits_for_an_enable_callbacks_in_progress() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected_with_callbacks(client);
    hostkernel::set_control_delay(Some(Duration::from_millis(1000)));
    let _ = hostkernel::take_dbgprint_log();
    let sock = socket as usize;
    // SAFETY: any handle value is safe.
    let enabler = spawn_until_delayed(move || unsafe {
        SafeWskEnableCallbacks(sock as *mut SAFEWSK_SOCKET, WSK_EVENT_DISCONNECT)
    });
    // The enable is inside WskControlSocket now.
    assert_eq!(close(socket), STATUS_SUCCESS);
    let enabled = enabler.join().expect("enabler");
    hostkernel::set_control_delay(None);
    let v = hostkernel::violations();
    assert!(v.is_empty(), "the close overlapped WskControlSocket: {v:#?}");
    assert_eq!(enabled, STATUS_SUCCESS, "the enable ran before the close");
    let log = hostkernel::take_dbgprint_log();
    assert!(log.iter().any(|l| l.contains(CLOSE_WAITS)), "the close did not wait: {log:#?}");
    cleanup(client);
    k.finish();
}

/// SafeWskDisableCallbacks makes one WskControlSocket per flag. A close that
/// begins while the first flag's call is in progress waits for it; the
/// second flag is then not disabled (the socket is being closed, which ends
/// its callbacks anyway) and the disable returns STATUS_INVALID_PARAMETER_1.
#[test]
fn a_close_between_two_flags_of_a_disable_is_parameter_1() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected_with_callbacks(client);
    let mask = WSK_EVENT_DISCONNECT | WSK_EVENT_SEND_BACKLOG;
    // SAFETY: any handle value is safe.
    assert_eq!(unsafe { SafeWskEnableCallbacks(socket, mask) }, STATUS_SUCCESS);
    hostkernel::set_control_delay(Some(Duration::from_millis(1000)));
    let contexts = hostkernel::allocations().completion_contexts.0;
    let sock = socket as usize;
    // SAFETY: any handle value is safe.
    let disabler =
        spawn_until_delayed(move || unsafe { SafeWskDisableCallbacks(sock as *mut SAFEWSK_SOCKET, mask, 5000) });
    assert_eq!(
        hostkernel::allocations().completion_contexts.0 - contexts,
        1,
        "the first flag's WskControlSocket is the one in progress"
    );
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(disabler.join().expect("disabler"), STATUS_INVALID_PARAMETER_1);
    hostkernel::set_control_delay(None);
    assert_eq!(hostkernel::allocations().completion_contexts.0 - contexts, 2, "the first flag's and the close's");
    let v = hostkernel::violations();
    assert!(v.is_empty(), "the close overlapped WskControlSocket: {v:#?}");
    cleanup(client);
    k.finish();
}

/// A close races four threads that send in a loop, one sender whose call
/// is held (its paged-out buffer takes 1.5 s to page in) and a receive
/// pending with SAFEWSK_NO_TIMEOUT. The close waits for the calls in
/// progress, closes, and returns; the pending receive returns
/// STATUS_CANCELLED; the held send, which had the socket before the close,
/// is issued and completes or is cancelled; every loop ends with
/// STATUS_INVALID_PARAMETER_1, having seen only successes (or, for the send
/// in flight at the close, STATUS_CANCELLED) before; nothing is called on a
/// closed WSK socket; the slot is freed after the last call let go of it.
///
/// Ordered without sleeps: the receive is pending before the senders start;
/// each sender has sent before the held one starts; the held one is asleep
/// in its page-in before the close begins; the WskCloseSocket pends 200 ms
/// (set_close_delay), during which every sender is refused.
#[test]
fn a_close_racing_senders_and_a_pending_receive() {
    const SENDERS: usize = 4;
    let k = Session::begin();
    let client = startup();
    let (socket, peer) = connected(client);
    let drain = thread::spawn(move || {
        let mut peer = peer;
        let mut sink = vec![0u8; 1 << 16];
        let mut total = 0usize;
        while let Ok(n) = peer.read(&mut sink) {
            if n == 0 {
                break;
            }
            total += n;
        }
        total
    });
    let sock = socket as usize;
    let receiver = waiting_receive(socket);

    let sent: Arc<Vec<AtomicUsize>> = Arc::new((0..SENDERS).map(|_| AtomicUsize::new(0)).collect());
    let senders: Vec<_> = (0..SENDERS)
        .map(|i| {
            let sent = sent.clone();
            thread::spawn(move || {
                let data = [i as u8; 1024];
                let mut statuses = Vec::new();
                loop {
                    let (st, n) = send(sock as *mut SAFEWSK_SOCKET, &data);
                    statuses.push(st);
                    if st == STATUS_SUCCESS {
                        assert_eq!(n, 1024);
                        sent[i].fetch_add(1, Ordering::SeqCst);
                    }
                    if st == STATUS_INVALID_PARAMETER_1 || statuses.len() > 1_000_000 {
                        return statuses;
                    }
                }
            })
        })
        .collect();
    wait_until("every sender has sent", || sent.iter().all(|n| n.load(Ordering::SeqCst) >= 10));

    let len = 70_000;
    // SAFETY: plain allocation at PASSIVE_LEVEL.
    let buf = unsafe { ExAllocatePool2(POOL_FLAG_PAGED, len, TAG) };
    assert!(!buf.is_null());
    assert!(hostkernel::page_out(buf, len) > 0);
    hostkernel::set_page_in_delay(Some(Duration::from_millis(1500)));
    hostkernel::set_close_delay(Some(Duration::from_millis(200)));
    let _ = hostkernel::take_dbgprint_log();
    let b = buf as usize;
    let held = spawn_until_delayed(move || {
        let mut n = 0;
        // SAFETY: `b` is `len` bytes of paged pool that outlive the call; any
        // handle value is safe.
        let st = unsafe {
            SafeWskSend(sock as *mut SAFEWSK_SOCKET, b as *const core::ffi::c_void, len as u32, 0, 5000, &mut n)
        };
        (st, n)
    });

    assert_eq!(close(socket), STATUS_SUCCESS, "the close returns");
    // From now on the handle is refused.
    assert_eq!(send(socket, b"late").0, STATUS_INVALID_PARAMETER_1);
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1);

    assert_eq!(receiver.join().expect("receiver"), (STATUS_CANCELLED, 0), "the pending receive returns");
    let (st, n) = held.join().expect("held sender");
    assert!(
        (st, n) == (STATUS_SUCCESS, len as u32) || st == STATUS_CANCELLED,
        "the held send had the socket before the close: {st:#x}, {n} bytes"
    );
    for (i, s) in senders.into_iter().enumerate() {
        let statuses = s.join().expect("sender");
        let (last, before) = statuses.split_last().expect("at least one send");
        assert_eq!(*last, STATUS_INVALID_PARAMETER_1, "sender {i} ends refused");
        let cancelled = before.iter().filter(|&&st| st == STATUS_CANCELLED).count();
        assert!(
            before.iter().all(|&st| st == STATUS_SUCCESS || st == STATUS_CANCELLED) && cancelled <= 1,
            "sender {i}: {:?}",
            before.iter().filter(|&&st| st != STATUS_SUCCESS).collect::<Vec<_>>()
        );
        assert!(before.len() >= 10, "sender {i} sent before the close");
    }
    hostkernel::set_page_in_delay(None);
    // SAFETY: our block, no longer used by any call.
    unsafe { ExFreePoolWithTag(buf, TAG) };

    let v = hostkernel::violations();
    assert!(v.is_empty(), "a WSK function was called during or after the close: {v:#?}");
    let log = hostkernel::take_dbgprint_log();
    assert!(log.iter().any(|l| l.contains(CLOSE_WAITS)), "the close did not wait for the held send: {log:#?}");
    assert_eq!(safewsk::table_usage(), (1, 1), "the slot was freed, its IRP cached");
    assert_eq!(hostkernel::live().irps, 1, "every overlapping call's IRP was freed");
    assert!(hostkernel::wsk::open_sockets().is_empty());
    drop(drain.join());
    cleanup(client);
    k.finish();
}

/// A SECURITY_DESCRIPTOR of revision 1 (the absolute form).
fn descriptor() -> Box<[u64; 5]> {
    Box::new([1, 0, 0, 0, 0])
}

/// SafeWskCleanup with sockets left open: calls on them keep working while
/// cleanup waits for a connect in flight; then cleanup closes them (each
/// reported), which ends a receive pending on one of them, and succeeds.
/// Their handles are refused afterwards. Another client's socket is not
/// touched (the socket table is the driver's, the cleanup the client's).
#[test]
fn cleanup_closes_the_sockets_left_open_and_calls_work_until_then() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    // A second client keeps the socket table alive and has a socket of its
    // own.
    let keeper = startup();
    let (st, kept) = connect(keeper, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let client = startup();
    let (st, waiting) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let (st, working) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let receiver = waiting_receive(waiting);
    // A connect that stays in flight until it is cancelled holds cleanup at
    // its step 2 (waiting for the calls inside the client).
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, SAFEWSK_NO_TIMEOUT);
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    let _ = hostkernel::take_dbgprint_log();
    let c = client as usize;
    let cleaning = thread::spawn(move || {
        // SAFETY: a live client, not used by this test after it returns
        // (its socket handles only, which are refused).
        unsafe { SafeWskCleanup(c as *mut SAFEWSK_CLIENT) }
    });
    // Cleanup has begun once a cache of a descriptor is refused.
    let mut sd = descriptor();
    wait_until("cleanup began", || {
        let mut cached: PSECURITY_DESCRIPTOR = std::ptr::null_mut();
        // SAFETY: a readable descriptor and a writable out variable.
        let st = unsafe { SafeWskCacheSecurityDescriptor(client, sd.as_mut_ptr().cast(), &mut cached) };
        if st == STATUS_SUCCESS {
            // SAFETY: the copy just cached.
            assert_eq!(unsafe { SafeWskReleaseSecurityDescriptor(client, cached) }, STATUS_SUCCESS);
        }
        assert!(st == STATUS_SUCCESS || st == STATUS_DELETE_PENDING, "{st:#x}");
        st == STATUS_DELETE_PENDING
    });
    // During cleanup: no new connect, but the open sockets work.
    assert_eq!(connect(client, server, 2000).0, STATUS_DELETE_PENDING);
    assert_eq!(send(working, b"cleanup"), (STATUS_SUCCESS, 7));
    let mut buf = [0u8; 7];
    assert_eq!(receive(working, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 7));
    assert_eq!(&buf, b"cleanup");
    assert!(!cleaning.is_finished() && !receiver.is_finished());
    // SAFETY: the started request, intact.
    assert_eq!(unsafe { SafeWskCancelConnect(&mut *req) }, STATUS_SUCCESS);
    assert_eq!(cleaning.join().expect("cleanup"), STATUS_SUCCESS, "cleanup never refuses");
    assert_eq!(seen.wait(1, Duration::from_secs(5))[0].0, STATUS_CANCELLED);
    assert_eq!(receiver.join().expect("receiver"), (STATUS_CANCELLED, 0), "cleanup's close ended the receive");
    let log = hostkernel::take_dbgprint_log();
    let reports = log.iter().filter(|l| l.contains("SafeWskCleanup: closing socket (slot")).count();
    assert_eq!(reports, 2, "each socket left open is reported: {log:#?}");
    for s in [waiting, working] {
        assert_eq!(send(s, b"x").0, STATUS_INVALID_PARAMETER_1, "closed by cleanup");
        assert_eq!(close(s), STATUS_INVALID_PARAMETER_1, "closed by cleanup");
    }
    // The keeper's socket is open and works.
    assert_eq!(hostkernel::wsk::open_sockets().len(), 1, "only the keeper's socket");
    assert_eq!(send(kept, b"kept"), (STATUS_SUCCESS, 4));
    let mut buf = [0u8; 4];
    assert_eq!(receive(kept, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 4));
    assert_eq!(close(kept), STATUS_SUCCESS);
    cleanup(keeper);
    k.finish();
}
