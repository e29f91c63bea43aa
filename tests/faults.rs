//! Fault injection: every allocation a startup, connect, send, receive,
//! close and cleanup make is failed in turn; every status the provider can
//! report is injected. Each case must give a precise status and leave zero
//! IRPs, pool blocks, MDLs and sockets behind (Session::finish).

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use common::*;
use safewsk::nt::*;
use safewsk::*;

/// Runs the whole life cycle once; returns the first failing step's name and
/// status, after undoing what succeeded. A close that fails has still
/// consumed its handle (a second close is STATUS_INVALID_PARAMETER_1): the
/// socket is the library's, and SafeWskCleanup closes it.
fn life_cycle(server: SocketAddr, asynchronous: bool) -> Option<(&'static str, NTSTATUS)> {
    let mut client = std::ptr::null_mut();
    // SAFETY: valid out pointer at PASSIVE_LEVEL.
    let st = unsafe { SafeWskStartup(dev(), 0, &mut client) };
    if st != STATUS_SUCCESS {
        assert!(client.is_null());
        return Some(("startup", st));
    }
    let (st, socket) = if asynchronous { connect_async(client, server) } else { connect(client, server, 2000) };
    let mut failure = None;
    if st != STATUS_SUCCESS {
        assert!(socket.is_null());
        // A failed connect (timed out too) does not free its IRP: it goes
        // back to the socket table's cache; no IRP lives outside it.
        assert_eq!(hostkernel::live().irps, safewsk::table_usage().1, "an IRP outside the cache");
        failure = Some(("connect", st));
    } else {
        let (st, n) = send(socket, b"fault");
        if st != STATUS_SUCCESS {
            failure = Some(("send", st));
        } else {
            assert_eq!(n, 5);
            let mut buf = [0u8; 5];
            let (st, n) = receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000);
            if st != STATUS_SUCCESS {
                failure = Some(("receive", st));
            } else {
                assert_eq!((n, &buf), (5, b"fault"));
            }
        }
        let _ = hostkernel::take_dbgprint_log();
        let st = close(socket);
        if st != STATUS_SUCCESS {
            failure = failure.or(Some(("close", st)));
            assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "a failed close consumed the handle");
            assert_eq!(send(socket, b"x").0, STATUS_INVALID_PARAMETER_1, "a failed close consumed the handle");
            assert_eq!(hostkernel::wsk::open_sockets().len(), 1, "the socket is left for cleanup");
            let log = hostkernel::take_dbgprint_log();
            assert!(log.iter().any(|l| l.contains("SafeWskCleanup will close it")), "not reported: {log:#?}");
        }
    }
    cleanup(client);
    assert!(hostkernel::wsk::open_sockets().is_empty(), "cleanup closed every socket");
    failure
}

fn connect_async(client: *mut SAFEWSK_CLIENT, server: SocketAddr) -> (NTSTATUS, *mut SAFEWSK_SOCKET) {
    // The context must stay valid until the callback *returns*, not only
    // until it has signalled: so the callback owns its Sender and drops it.
    // (A Sender on this stack frame would be freed while the callback is
    // still inside send(), as soon as recv() below returns.)
    unsafe extern "C" fn cb(ctx: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
        // SAFETY: ctx is the Box<Sender> leaked below, handed over once.
        let tx = unsafe { Box::from_raw(ctx as *mut mpsc::Sender<(NTSTATUS, usize)>) };
        let _ = tx.send((status, socket as usize));
    }
    let (tx, rx) = mpsc::channel::<(NTSTATUS, usize)>();
    let ctx = Box::into_raw(Box::new(tx.clone())) as PVOID;
    let mut req = Box::new(new_request(Some(cb), ctx, 2000));
    let st = start_async(client, &Addr::wildcard_like(server), &Addr::from(server), &mut *req);
    if st != STATUS_PENDING {
        // SAFETY: no callback will come: reclaim the context.
        drop(unsafe { Box::from_raw(req.CallbackContext as *mut mpsc::Sender<(NTSTATUS, usize)>) });
        return (st, std::ptr::null_mut());
    }
    let (st, socket) = rx.recv_timeout(Duration::from_secs(5)).expect("callback");
    (st, socket as *mut SAFEWSK_SOCKET)
}

/// Fails each allocation at `site` of a life cycle in turn; returns how many
/// allocations a full life cycle makes there.
fn every_nth_allocation_fails_cleanly(site: Site, asynchronous: bool) -> u32 {
    let server = echo_server("127.0.0.1:0").expect("server");
    let mut n = 1;
    loop {
        let k = Session::begin();
        k.fail_nth(site, n);
        let failure = life_cycle(server, asynchronous);
        let hit = k.fault_hit(site);
        k.finish();
        match (hit, failure) {
            (true, Some((step, st))) => {
                assert_eq!(st, STATUS_INSUFFICIENT_RESOURCES, "{site:?} #{n} failed {step} with {st:#x}");
                eprintln!("{site:?} allocation #{n} failed -> {step}: STATUS_INSUFFICIENT_RESOURCES");
            }
            (true, None) => panic!("{site:?} allocation #{n} failed but every step reported success"),
            (false, None) => {
                eprintln!("{site:?}: {} allocation(s) in a full life cycle, each failure handled", n - 1);
                assert!(n > 1, "{site:?}: the life cycle made no allocation there");
                return n - 1;
            }
            (false, Some((step, st))) => panic!("{step} failed with {st:#x} without an injected fault"),
        }
        n += 1;
    }
}

/// One IRP per life cycle: the connect's, reserved with the socket's slot,
/// which the send, the receive and the close reuse (and which the last
/// cleanup frees with the socket table).
#[test]
fn every_irp_allocation_can_fail() {
    assert_eq!(every_nth_allocation_fails_cleanly(Site::Irp, false), 1);
    assert_eq!(every_nth_allocation_fails_cleanly(Site::Irp, true), 1);
}

/// Two pool blocks per life cycle: the client block (startup) and the
/// socket table's first 4 KiB chunk (the first connect of a fresh table).
#[test]
fn every_pool_allocation_can_fail() {
    assert_eq!(every_nth_allocation_fails_cleanly(Site::Pool, false), 2);
    assert_eq!(every_nth_allocation_fails_cleanly(Site::Pool, true), 2);
}

/// IoSetCompletionRoutineEx allocates a context for every IRP (it is what
/// keeps the driver loaded while the completion routine runs): each of those
/// allocations can fail too. Four per life cycle: connect, send, receive and
/// close; the close's failure leaves the socket to cleanup, which closes it
/// (with a fifth context).
#[test]
fn every_completion_context_allocation_can_fail() {
    assert_eq!(every_nth_allocation_fails_cleanly(Site::CompletionContext, false), 4);
    assert_eq!(every_nth_allocation_fails_cleanly(Site::CompletionContext, true), 4);
}

/// A buffer of up to 64 KiB gets its MDL on the stack: the life cycle
/// (5-byte send and receive) allocates none. A larger buffer gets one from
/// IoAllocateMdl, and its failure is STATUS_INSUFFICIENT_RESOURCES with
/// nothing sent, nothing locked and nothing leaked.
#[test]
fn every_mdl_allocation_can_fail() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    k.fail_nth(Site::Mdl, 1);
    assert_eq!(life_cycle(server, false), None);
    assert!(!k.fault_hit(Site::Mdl), "a small buffer's MDL was allocated");
    k.finish();

    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let big = vec![3u8; 70_000];
    for direction in ["send", "receive"] {
        k.fail_nth(Site::Mdl, 1);
        let mut buf = big.clone();
        let (st, n) = if direction == "send" { send(socket, &buf) } else { receive(socket, &mut buf, 0, 2000) };
        assert!(k.fault_hit(Site::Mdl), "{direction}: a 70,000-byte buffer needs an allocated MDL");
        assert_eq!((st, n), (STATUS_INSUFFICIENT_RESOURCES, 0), "{direction}");
        k.fail_nth(Site::Mdl, 0);
        assert_eq!(hostkernel::live().locked_pages, 0);
    }
    // The socket still works, with an allocated MDL this time.
    assert_eq!(send(socket, &big), (STATUS_SUCCESS, 70_000));
    let mut back = vec![0u8; 70_000];
    assert_eq!(receive(socket, &mut back, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 70_000));
    assert_eq!(back, big);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn every_provider_error_is_returned_as_is() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let errors = [
        STATUS_CONNECTION_REFUSED,
        STATUS_HOST_UNREACHABLE,
        STATUS_NETWORK_UNREACHABLE,
        STATUS_ADDRESS_ALREADY_EXISTS,
        STATUS_INVALID_ADDRESS_COMPONENT,
        STATUS_CONNECTION_ABORTED,
        STATUS_CONNECTION_RESET,
        STATUS_INSUFFICIENT_RESOURCES,
        STATUS_IO_TIMEOUT,
        STATUS_UNSUCCESSFUL,
    ];
    for mode in [ConnectCompletion::Sync, ConnectCompletion::Async, ConnectCompletion::Delay(Duration::from_millis(5))]
    {
        for asynchronous in [false, true] {
            for &error in &errors {
                let k = Session::begin();
                hostkernel::set_connect_completion(mode);
                hostkernel::set_connect_error(Some(error));
                assert_eq!(life_cycle(server, asynchronous), Some(("connect", error)), "{mode:?} {error:#x}");
                k.finish();
            }
        }
    }
}

/// Every MmProbeAndLockPages of a life cycle (the send and the receive
/// buffer) raising in turn: the step fails with the exception code, nothing
/// is left allocated or locked (Session::finish), the close still works.
#[test]
fn every_probe_can_raise() {
    let server = echo_server("127.0.0.1:0").expect("server");
    for (n, step) in [(1, "send"), (2, "receive")] {
        let k = Session::begin();
        k.fail_probe(n, STATUS_INSUFFICIENT_RESOURCES);
        assert_eq!(life_cycle(server, false), Some((step, STATUS_INSUFFICIENT_RESOURCES)), "probe #{n}");
        assert!(k.fault_hit(Site::Probe));
        k.finish();
    }
    let k = Session::begin();
    k.fail_probe(3, STATUS_INSUFFICIENT_RESOURCES);
    assert_eq!(life_cycle(server, false), None, "a life cycle probes exactly two buffers");
    assert!(!k.fault_hit(Site::Probe));
    k.finish();
}
