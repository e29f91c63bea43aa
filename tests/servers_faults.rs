//! Allocation failure injected at every allocation a server's and a
//! datagram exchange's life cycle makes (issue 20, item 8): IRPs, pool,
//! MDLs and the I/O manager's completion contexts, each failed in turn.
//! Every failure is STATUS_INSUFFICIENT_RESOURCES from the step that needed
//! it, nothing is lost or leaked (`Session::finish`), and cleanup closes
//! whatever a failed close left to it.

mod common;

use std::net::TcpStream;
use std::ptr;
use std::time::Duration;

use common::servers::*;
use common::*;
use safewsk::nt::*;
use safewsk::*;

/// The sockets a life cycle has open, closed on the way out.
#[derive(Default)]
struct Open(Vec<*mut SAFEWSK_SOCKET>);

impl Open {
    fn close_all(&mut self) -> Option<(&'static str, NTSTATUS)> {
        let mut first = None;
        for s in self.0.drain(..).rev() {
            let st = close(s);
            if st != STATUS_SUCCESS && first.is_none() {
                first = Some(("SafeWskCloseSocket", st));
            }
        }
        first
    }
}

/// One life cycle: listen, accept (sync and async), a round trip on the
/// accepted socket, a datagram socket with a send-to and a receive-from, a
/// resolution, every close, cleanup. Returns the first step that failed.
fn life_cycle() -> Option<(&'static str, NTSTATUS)> {
    let mut client = ptr::null_mut();
    // SAFETY: a valid out pointer; PASSIVE_LEVEL.
    let st = unsafe { SafeWskStartup(dev(), 0, &mut client) };
    if st != STATUS_SUCCESS {
        return Some(("SafeWskStartup", st));
    }
    let mut open = Open::default();
    let failed = (|| {
        let (st, listener) = listen_with(client, "127.0.0.1:0", None);
        if st != STATUS_SUCCESS {
            return Some(("SafeWskListen", st));
        }
        open.0.push(listener);
        let at = match try_local_address(listener) {
            Ok(at) => at,
            Err(st) => return Some(("SafeWskGetLocalAddress", st)),
        };
        let _p1 = TcpStream::connect(at).expect("connect");
        let _p2 = TcpStream::connect(at).expect("connect");
        let a = accept(listener, 5000);
        if a.status != STATUS_SUCCESS {
            return Some(("SafeWskAccept", a.status));
        }
        open.0.push(a.socket);
        let (ctx, mut req) = accept_request(5000);
        let st = accept_async(listener, &mut req);
        if st != STATUS_PENDING {
            return Some(("SafeWskAcceptAsync", st));
        }
        let calls = ctx.seen.wait(1, Duration::from_secs(10));
        if calls[0].0 != STATUS_SUCCESS {
            return Some(("SafeWskAcceptAsync callback", calls[0].0));
        }
        open.0.push(calls[0].1 as *mut SAFEWSK_SOCKET);
        let (st, _) = send(a.socket, b"round trip");
        if st != STATUS_SUCCESS {
            return Some(("SafeWskSend", st));
        }
        let (st, d) = datagram_with(client, "127.0.0.1:0", None);
        if st != STATUS_SUCCESS {
            return Some(("SafeWskDatagramSocket", st));
        }
        open.0.push(d);
        let d_at = match try_local_address(d) {
            Ok(at) => at,
            Err(st) => return Some(("SafeWskGetLocalAddress", st)),
        };
        let (st, _) = send_to(d, b"to myself", d_at, 2000);
        if st != STATUS_SUCCESS {
            return Some(("SafeWskSendTo", st));
        }
        let mut buf = [0u8; 16];
        let (st, _, _) = receive_from(d, &mut buf, 2000);
        if st != STATUS_SUCCESS {
            return Some(("SafeWskReceiveFrom", st));
        }
        let node: Vec<u16> = "localhost".encode_utf16().collect();
        let service: Vec<u16> = "80".encode_utf16().collect();
        let us = |v: &Vec<u16>| UNICODE_STRING {
            Length: (v.len() * 2) as u16,
            MaximumLength: (v.len() * 2) as u16,
            Buffer: v.as_ptr().cast_mut(),
        };
        let (n, s) = (us(&node), us(&service));
        let mut out = [SAFEWSK_ADDRESS::default(); 2];
        let mut count = 0;
        // SAFETY: valid strings and buffers for the call.
        let st = unsafe { SafeWskResolveName(client, &n, &s, AF_INET, out.as_mut_ptr(), 2, &mut count, 5000) };
        if st != STATUS_SUCCESS {
            return Some(("SafeWskResolveName", st));
        }
        None
    })();
    let closed = open.close_all();
    // SAFETY: a live client.
    let st = unsafe { SafeWskCleanup(client) };
    assert_eq!(st, STATUS_SUCCESS, "cleanup never refuses, and closes what a failed close left");
    assert!(
        hostkernel::wsk::open_sockets().is_empty(),
        "every socket closed: {:?} after {failed:?}",
        hostkernel::wsk::open_sockets()
    );
    failed.or(closed)
}

fn try_local_address(socket: *mut SAFEWSK_SOCKET) -> Result<std::net::SocketAddr, NTSTATUS> {
    let mut a = SAFEWSK_ADDRESS::default();
    // SAFETY: a writable 28-byte buffer.
    let st = unsafe { SafeWskGetLocalAddress(socket, (&mut a as *mut SAFEWSK_ADDRESS).cast(), 28, 2000) };
    if st == STATUS_SUCCESS {
        Ok(addr_of(&a).expect("an address"))
    } else {
        Err(st)
    }
}

fn every_nth_fails_cleanly(site: Site) -> u32 {
    let mut n = 1;
    loop {
        let k = Session::begin();
        k.fail_nth(site, n);
        let failure = life_cycle();
        let hit = k.fault_hit(site);
        k.finish();
        match (hit, failure) {
            (true, Some((step, st))) => {
                assert_eq!(st, STATUS_INSUFFICIENT_RESOURCES, "{site:?} #{n} failed {step} with {st:#x}");
            }
            (true, None) => panic!("{site:?} allocation #{n} failed but every step reported success"),
            (false, None) => {
                eprintln!("{site:?}: {} allocation(s) in a life cycle, each failure handled", n - 1);
                return n - 1;
            }
            (false, Some((step, st))) => panic!("{step} failed with {st:#x} without an injected fault"),
        }
        n += 1;
    }
}

/// IRPs: the listening socket's slot, each accepted socket's slot (the
/// listening socket's IRP is not used by an accept), the datagram socket's
/// slot, and the resolution's (the IRP cache is empty in a fresh table).
#[test]
fn every_irp_allocation_can_fail() {
    assert_eq!(every_nth_fails_cleanly(Site::Irp), 5);
}

/// Pool: the client block, the socket table's first chunk, and the block
/// holding the copies of the resolution's names.
#[test]
fn every_pool_allocation_can_fail() {
    assert_eq!(every_nth_fails_cleanly(Site::Pool), 3);
}

/// Completion contexts: WskSocket, SO_EXCLUSIVEADDRUSE and WskBind for each
/// of the two sockets made (6), the two local address queries, the two
/// accepts, the send, send-to, receive-from, the resolution (14), and the
/// four closes.
#[test]
fn every_completion_context_allocation_can_fail() {
    assert_eq!(every_nth_fails_cleanly(Site::CompletionContext), 18);
}

/// MDLs: none (every buffer is under 64 KiB: its MDL lives on the stack).
#[test]
fn no_mdl_is_allocated() {
    assert_eq!(every_nth_fails_cleanly(Site::Mdl), 0);
}

/// A listening socket whose close cannot get its completion context is left
/// to cleanup (an orphan), which closes it first and waits for the accepts
/// still pending on it; the callback comes once, STATUS_CANCELLED.
#[test]
fn an_orphaned_listening_socket_is_closed_by_cleanup_with_its_accepts() {
    let k = Session::begin();
    let client = startup();
    let (listener, _) = listen(client, "127.0.0.1:0");
    let (ctx, mut req) = accept_request(SAFEWSK_NO_TIMEOUT);
    assert_eq!(accept_async(listener, &mut req), STATUS_PENDING);
    let base = hostkernel::allocations().completion_contexts.0;
    k.fail_nth(Site::CompletionContext, 1);
    assert_eq!(close(listener), STATUS_INSUFFICIENT_RESOURCES, "the close could not be issued");
    assert!(k.fault_hit(Site::CompletionContext));
    k.fail_nth(Site::CompletionContext, 0);
    assert_eq!(hostkernel::allocations().completion_contexts.0, base, "no context was allocated");
    assert_eq!(close(listener), STATUS_INVALID_PARAMETER_1, "the handle is consumed");
    assert!(ctx.seen.calls.lock().unwrap().is_empty(), "the accept is still pending");
    cleanup(client);
    let calls = ctx.seen.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!((calls[0].0, calls[0].1), (STATUS_CANCELLED, 0));
    k.finish();
}
