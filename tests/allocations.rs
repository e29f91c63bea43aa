//! Allocations on the operation path (issues 12 and 17).
//!
//! Sockets live in the driver's socket table: 4 KiB chunks of 64 slots
//! (tagged non-paged pool), installed when the free list is empty and kept
//! until the last client's cleanup. Each reserved slot gets one IRP, from a
//! cache of up to 64 idle IRPs or from IoAllocateIrp; the socket's calls
//! reuse it (IoReuseIrp) and its close gives it back to the cache. So:
//!
//! - the first connect on a fresh table allocates one pool block (the
//!   chunk) and one IRP; a connect after a connect and close allocates
//!   nothing of safewsk's own;
//! - send, receive, the address queries, disconnect and close allocate no
//!   IRP, no pool and no MDL (the MDL of a buffer of up to 64 KiB lives on
//!   the calling thread's stack; a larger buffer gets one from
//!   IoAllocateMdl);
//! - a call that overlaps another on the same socket (full duplex: a send
//!   while a receive waits; a close while a receive waits) allocates one
//!   IRP and frees it when it returns (there is no per-socket spare IRP);
//! - what is left per call is the I/O manager's IoSetCompletionRoutineEx
//!   context (the unload-safety mechanism), counted here;
//! - the cache never holds more than 64 IRPs, and counts do not drift;
//! - slots are handed out first in, first out: the slot just freed is the
//!   last one reused, which the handles show.
//!
//! No test sleeps to order its threads: a call is known to be pending in
//! the provider once its completion context has been allocated (the last
//! thing before the WSK call, after the socket was acquired).

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ptr;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hostkernel::Allocations;
use safewsk::nt::*;
use safewsk::*;

/// How many idle IRPs the socket table keeps (src/handles: IRP_CACHE).
const IRP_CACHE: usize = 64;
/// Slots per chunk of the socket table.
const CHUNK_SLOTS: usize = 64;

/// Allocation counts made between two snapshots: (IRPs, pool blocks, MDLs,
/// completion contexts).
fn delta(before: Allocations, after: Allocations) -> (u64, u64, u64, u64) {
    (
        after.irps.0 - before.irps.0,
        after.pool.0 - before.pool.0,
        after.mdls.0 - before.mdls.0,
        after.completion_contexts.0 - before.completion_contexts.0,
    )
}

/// A connected socket, and the server side of its connection.
fn connected(client: *mut SAFEWSK_CLIENT) -> (*mut SAFEWSK_SOCKET, TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = listener.local_addr().expect("addr");
    let h = thread::spawn(move || listener.accept().expect("accept").0);
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    (socket, h.join().expect("accept"))
}

/// A listener that accepts every connection and keeps it open (silent)
/// until the process ends.
fn holding_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let held = Arc::new(Mutex::new(Vec::new()));
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(s) = stream else { return };
            held.lock().unwrap().push(s);
        }
    });
    addr
}

/// Polls until `n` more completion contexts than `base` have been allocated:
/// the calls that allocated them have acquired their socket and are about
/// to call (or are pending in) the provider.
fn wait_for_contexts(base: u64, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while hostkernel::allocations().completion_contexts.0 < base + n {
        assert!(Instant::now() < deadline, "{n} call(s) never reached the provider");
        thread::sleep(Duration::from_millis(1));
    }
}

/// The slot index a socket handle carries (its low 16 bits).
fn slot_of(socket: *mut SAFEWSK_SOCKET) -> usize {
    socket as usize & 0xFFFF
}

/// The first connect of a fresh socket table installs a chunk and allocates
/// the slot's IRP; every call after that reuses the IRP: each costs one
/// completion context and nothing else; the close puts the IRP in the cache,
/// where the next connect finds it.
#[test]
fn socket_calls_allocate_no_irp_and_no_pool() {
    let k = Session::begin();
    assert_eq!(safewsk::table_usage(), (0, 0), "a fresh socket table");
    let before = hostkernel::allocations();
    let client = startup();
    assert_eq!(delta(before, hostkernel::allocations()), (0, 1, 0, 0), "startup: the client block");

    let before = hostkernel::allocations();
    let (socket, mut peer) = connected(client);
    let after_connect = hostkernel::allocations();
    // The table's first chunk, the slot's IRP, one completion context.
    assert_eq!(delta(before, after_connect), (1, 1, 0, 1), "the first connect on a fresh table");
    assert_eq!(safewsk::table_usage(), (1, 0), "one chunk; the IRP is the socket's");

    const N: u64 = 50;
    let mut echo = [0u8; 8];
    for i in 0..N {
        let data = i.to_le_bytes();
        assert_eq!(send(socket, &data), (STATUS_SUCCESS, 8));
        peer.read_exact(&mut echo).expect("peer read");
        peer.write_all(&echo).expect("peer write");
        let mut got = [0u8; 8];
        assert_eq!(receive(socket, &mut got, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 8));
        assert_eq!(got, data);
        let mut addr = [0u8; 28];
        // SAFETY: a 28-byte writable buffer; any handle value is safe.
        let st = unsafe { SafeWskGetLocalAddress(socket, addr.as_mut_ptr().cast(), 28, 2000) };
        assert_eq!(st, STATUS_SUCCESS);
        // SAFETY: as above.
        let st = unsafe { SafeWskGetRemoteAddress(socket, addr.as_mut_ptr().cast(), 28, 2000) };
        assert_eq!(st, STATUS_SUCCESS);
    }
    let after_calls = hostkernel::allocations();
    // One completion context per call, and nothing else: no IRP, no pool
    // block, no MDL (the buffer's MDL is on the stack).
    assert_eq!(delta(after_connect, after_calls), (0, 0, 0, 4 * N), "{N} sends, receives and address queries");

    // SAFETY: any handle value is safe.
    assert_eq!(unsafe { SafeWskDisconnect(socket, 0, 2000) }, STATUS_SUCCESS);
    let after_disconnect = hostkernel::allocations();
    assert_eq!(delta(after_calls, after_disconnect), (0, 0, 0, 1), "a disconnect");
    assert_eq!(close(socket), STATUS_SUCCESS);
    let after_close = hostkernel::allocations();
    assert_eq!(delta(after_disconnect, after_close), (0, 0, 0, 1), "a close");
    assert_eq!(safewsk::table_usage(), (1, 1), "the closed socket's IRP waits in the cache");
    assert_eq!(hostkernel::live().irps, 1, "no IRP but the cached one");

    // The next connect takes a free slot and the cached IRP: connect + close
    // in a steady state allocates nothing but the completion contexts.
    let (socket, _peer) = connected(client);
    assert_eq!(safewsk::table_usage(), (1, 0));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(delta(after_close, hostkernel::allocations()), (0, 0, 0, 2), "a second connect + close");
    assert_eq!(safewsk::table_usage(), (1, 1));

    cleanup(client);
    assert_eq!(safewsk::table_usage(), (0, 0), "the last cleanup freed the chunk and the cached IRP");
    k.finish();
}

/// A buffer that spans more pages than the stack MDL holds gets an MDL from
/// IoAllocateMdl, freed after the call; 64 KiB at any alignment does not.
#[test]
fn only_buffers_over_64_kib_allocate_an_mdl() {
    let k = Session::begin();
    let client = startup();
    let (socket, mut peer) = connected(client);
    let reader = thread::spawn(move || {
        let mut sink = vec![0u8; 200_000];
        let mut total = 0;
        while total < 65_536 + 65_537 + 65_536 {
            total += peer.read(&mut sink).expect("peer read");
        }
        total
    });
    let big = vec![7u8; 70_000];
    for (offset, len) in [(0usize, 65_536usize), (1, 65_537), (4095, 65_536)] {
        let before = hostkernel::allocations();
        let data = &big[offset..offset + len];
        assert_eq!(send(socket, data), (STATUS_SUCCESS, len as u32));
        let d = delta(before, hostkernel::allocations());
        // 65,537 bytes at offset 1 of a heap block may span 17 or 18 pages:
        // only count what cannot fit.
        let start = data.as_ptr() as usize % 4096;
        let pages = (start + len).div_ceil(4096) as u64;
        let want = u64::from(pages > 17);
        assert_eq!(d, (0, 0, want, 1), "{len} bytes at page offset {start} ({pages} pages)");
    }
    assert_eq!(reader.join().expect("reader"), 65_536 + 65_537 + 65_536);
    assert_eq!(hostkernel::live().mdls, 0, "the allocated MDL was freed");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// An asynchronous connect reserves the same slot and IRP as a synchronous
/// one; the socket's calls reuse the IRP, and after the close the next
/// asynchronous connect allocates nothing of safewsk's own.
#[test]
fn an_asynchronous_connect_hands_its_irp_to_the_socket() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    assert_eq!(safewsk::table_usage(), (0, 0), "a fresh socket table");
    let client = startup();
    for (round, first) in [(0, true), (1, false)] {
        let seen = Arc::new(Seen::default());
        let mut req = request(&seen, 2000);
        let before = hostkernel::allocations();
        assert_eq!(start(client, server, &mut req), STATUS_PENDING);
        let (st, sock, _, _) = seen.wait(1, Duration::from_secs(5))[0];
        assert_eq!(st, STATUS_SUCCESS);
        let socket = sock as *mut SAFEWSK_SOCKET;
        let want = if first { (1, 1, 0, 1) } else { (0, 0, 0, 1) };
        assert_eq!(delta(before, hostkernel::allocations()), want, "round {round}: an asynchronous connect");
        let mark = hostkernel::allocations();
        assert_eq!(send(socket, b"async"), (STATUS_SUCCESS, 5));
        let mut got = [0u8; 5];
        assert_eq!(receive(socket, &mut got, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 5));
        assert_eq!(&got, b"async");
        assert_eq!(close(socket), STATUS_SUCCESS);
        assert_eq!(delta(mark, hostkernel::allocations()), (0, 0, 0, 3), "round {round}: send, receive, close");
        assert_eq!(safewsk::table_usage(), (1, 1), "round {round}");
    }
    cleanup(client);
    k.finish();
}

/// A receive waits on one thread while another sends: the send finds the
/// socket's IRP in use, allocates one IRP and frees it when it returns.
/// Every overlapping send does so (no spare IRP is kept with the socket):
/// between rounds only the socket's own IRP is live.
#[test]
fn an_overlapping_call_allocates_an_irp_and_frees_it() {
    let k = Session::begin();
    let client = startup();
    let (socket, mut peer) = connected(client);
    let sock = socket as usize;
    assert_eq!(hostkernel::live().irps, 1, "the socket's IRP");
    for round in 0..3u8 {
        let contexts = hostkernel::allocations().completion_contexts.0;
        let receiver = thread::spawn(move || {
            let mut got = [0u8; 4];
            let (st, n) = receive(sock as *mut SAFEWSK_SOCKET, &mut got, WSK_FLAG_WAITALL, 5000);
            (st, n, got)
        });
        // The receive holds the socket's IRP and waits in the provider.
        wait_for_contexts(contexts, 1);
        let before = hostkernel::allocations();
        assert_eq!(send(socket, &[round; 4]), (STATUS_SUCCESS, 4));
        let (irps, pool, mdls, _) = delta(before, hostkernel::allocations());
        assert_eq!((irps, pool, mdls), (1, 0, 0), "round {round}: the overlapping send's own IRP");
        assert_eq!(hostkernel::live().irps, 1, "round {round}: the overlapping send freed its IRP");
        let mut echo = [0u8; 4];
        peer.read_exact(&mut echo).expect("peer read");
        peer.write_all(&echo).expect("peer write");
        assert_eq!(receiver.join().expect("receiver"), (STATUS_SUCCESS, 4, [round; 4]));
        assert_eq!(hostkernel::live().irps, 1, "round {round}: the socket's IRP only");
    }
    // Calls that do not overlap allocate no IRP.
    let before = hostkernel::allocations();
    assert_eq!(send(socket, b"once"), (STATUS_SUCCESS, 4));
    assert_eq!(delta(before, hostkernel::allocations()).0, 0);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(safewsk::table_usage(), (1, 1), "the socket's IRP went back to the cache");
    assert_eq!(hostkernel::live().irps, 1);
    cleanup(client);
    k.finish();
}

/// Closing a socket while another thread's receive waits on it: the close
/// overlaps the receive, so it allocates one IRP of its own; WSK completes
/// the receive (the host kernel with STATUS_CANCELLED, as Windows does
/// according to Wine's WSK tests), the close succeeds, and the receive's
/// return, the last hold on the slot, frees it (its IRP to the cache). The
/// handle is consumed: every later call with it is parameter 1.
#[test]
fn a_close_while_a_receive_waits_ends_the_receive() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected(client);
    let sock = socket as usize;
    let contexts = hostkernel::allocations().completion_contexts.0;
    let receiver = thread::spawn(move || {
        let mut got = [0u8; 4];
        let mut n = 0xDEAD;
        // SAFETY: `got` outlives the call; any handle value is safe.
        let st = unsafe {
            SafeWskReceive(sock as *mut SAFEWSK_SOCKET, got.as_mut_ptr().cast(), 4, 0, SAFEWSK_NO_TIMEOUT, &mut n)
        };
        (st, n)
    });
    wait_for_contexts(contexts, 1);
    let before = hostkernel::allocations();
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(delta(before, hostkernel::allocations()), (1, 0, 0, 1), "the overlapping close's own IRP");
    let (st, n) = receiver.join().expect("receiver");
    assert_eq!((st, n), (STATUS_CANCELLED, 0), "the waiting receive ends when the socket is closed");
    assert_eq!(safewsk::table_usage(), (1, 1), "the slot's IRP is cached, the close's freed");
    assert_eq!(hostkernel::live().irps, 1);
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_1, "closed");
    // SAFETY: any handle value is safe: a closed socket is refused before it
    // is used.
    let st = unsafe { SafeWskSend(socket, b"x".as_ptr().cast(), 1, 0, 100, ptr::null_mut()) };
    assert_eq!(st, STATUS_INVALID_PARAMETER_1);
    cleanup(client);
    k.finish();
}

/// Three receives wait on one socket (one on the socket's IRP, two on IRPs
/// of their own) while another thread closes it (on an IRP of its own),
/// twenty times: every receive ends, the close succeeds, and the slot is
/// freed only after the last of them has let go of it (the host kernel's
/// pool quarantine reports a chunk written after it was freed; the state
/// word refuses a release of a free slot). Every overlapping IRP is freed;
/// the slot's IRP goes back to the cache each round.
#[test]
fn overlapping_calls_and_a_close_let_go_of_the_slot_in_any_order() {
    let k = Session::begin();
    let client = startup();
    for round in 0..20 {
        let (socket, _peer) = connected(client);
        let sock = socket as usize;
        let contexts = hostkernel::allocations().completion_contexts.0;
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                thread::spawn(move || {
                    let mut got = [0u8; 4];
                    receive(sock as *mut SAFEWSK_SOCKET, &mut got, 0, SAFEWSK_NO_TIMEOUT).0
                })
            })
            .collect();
        wait_for_contexts(contexts, 3);
        assert_eq!(hostkernel::live().irps, 3, "round {round}: the slot's IRP and two of the receives' own");
        assert_eq!(close(socket), STATUS_SUCCESS, "round {round}");
        for r in receivers {
            assert_eq!(r.join().expect("receiver"), STATUS_CANCELLED, "round {round}");
        }
        let v = hostkernel::violations();
        assert!(v.is_empty(), "round {round}: {v:#?}");
        assert_eq!(safewsk::table_usage(), (1, 1), "round {round}");
        assert_eq!(hostkernel::live().irps, 1, "round {round}: every overlapping IRP was freed");
    }
    cleanup(client);
    k.finish();
}

/// The IRP cache is bounded: 70 sockets open at once hold 70 IRPs (and two
/// chunks); closing them fills the cache up to 64 idle IRPs and frees the
/// rest, and never holds more. Opening 70 again takes the 64 cached IRPs
/// and allocates 6, in the chunks already installed.
#[test]
fn the_irp_cache_keeps_at_most_64_idle_irps() {
    const N: usize = IRP_CACHE + 6;
    let server = holding_server();
    let k = Session::begin();
    let client = startup();
    let before = hostkernel::allocations();
    let sockets: Vec<_> = (0..N)
        .map(|i| {
            let (st, s) = connect(client, server, 5000);
            assert_eq!(st, STATUS_SUCCESS, "connect {i}");
            s
        })
        .collect();
    let (irps, pool, _, _) = delta(before, hostkernel::allocations());
    assert_eq!((irps, pool), (N as u64, 2), "{N} sockets: an IRP each, two chunks");
    assert_eq!(safewsk::table_usage(), (2, 0));
    for (closed, s) in sockets.into_iter().enumerate().map(|(i, s)| (i + 1, s)) {
        assert_eq!(close(s), STATUS_SUCCESS);
        let (chunks, cached) = safewsk::table_usage();
        assert_eq!(chunks, 2, "chunks stay until the last cleanup");
        assert_eq!(cached, closed.min(IRP_CACHE), "after {closed} closes");
        assert_eq!(hostkernel::live().irps, (N - closed) + cached, "after {closed} closes: open + cached, no more");
    }
    assert_eq!(hostkernel::live().irps, IRP_CACHE, "the IRPs beyond the cache's 64 were freed");

    let before = hostkernel::allocations();
    let sockets: Vec<_> = (0..N)
        .map(|_| {
            let (st, s) = connect(client, server, 5000);
            assert_eq!(st, STATUS_SUCCESS);
            s
        })
        .collect();
    let (irps, pool, _, _) = delta(before, hostkernel::allocations());
    assert_eq!((irps, pool), ((N - IRP_CACHE) as u64, 0), "64 cached IRPs taken, 6 allocated, no chunk");
    assert_eq!(safewsk::table_usage(), (2, 0));
    for s in sockets {
        assert_eq!(close(s), STATUS_SUCCESS);
        assert!(safewsk::table_usage().1 <= IRP_CACHE);
    }
    assert_eq!(safewsk::table_usage(), (2, IRP_CACHE));
    assert_eq!(hostkernel::live().irps, IRP_CACHE);
    cleanup(client);
    assert_eq!(safewsk::table_usage(), (0, 0));
    k.finish();
}

/// Counts do not drift: 200 connect/close cycles, past three trips around
/// the chunk's 64 slots, keep one chunk and one cached IRP, and after the
/// first cycle allocate only a completion context per connect and close.
#[test]
fn connect_close_cycles_do_not_drift() {
    let server = holding_server();
    let k = Session::begin();
    let client = startup();
    let mut steady = None;
    for cycle in 0..200 {
        let (st, s) = connect(client, server, 5000);
        assert_eq!(st, STATUS_SUCCESS, "cycle {cycle}");
        assert_eq!(close(s), STATUS_SUCCESS, "cycle {cycle}");
        assert_eq!(safewsk::table_usage(), (1, 1), "cycle {cycle}");
        assert_eq!(hostkernel::live().irps, 1, "cycle {cycle}");
        // (The host's live pool count also holds the I/O manager's
        // completion contexts while their completion routines return.)
        let blocks = hostkernel::pool_blocks();
        assert_eq!(blocks.len(), 2, "cycle {cycle}: the client block and the chunk: {blocks:?}");
        if cycle == 0 {
            steady = Some(hostkernel::allocations());
        }
    }
    let d = delta(steady.expect("first cycle"), hostkernel::allocations());
    assert_eq!(d, (0, 0, 0, 2 * 199), "199 steady-state cycles");
    cleanup(client);
    k.finish();
}

/// Slots are handed out first in, first out: a slot just freed goes to the
/// tail of the free list, so while other slots are free the next socket
/// gets another one (its handle differs in the low 16 bits, the slot
/// index). With one chunk, 64 cycles use 64 different slots before the
/// first comes back, at a new generation: its old handle stays refused.
#[test]
fn a_freed_slot_is_the_last_to_be_reused() {
    let server = holding_server();
    let k = Session::begin();
    let client = startup();
    // One socket stays open throughout: its slot is never handed out.
    let (st, kept) = connect(client, server, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    let mut handles = Vec::new();
    let mut previous: Option<*mut SAFEWSK_SOCKET> = None;
    for cycle in 0..CHUNK_SLOTS {
        let (st, s) = connect(client, server, 5000);
        assert_eq!(st, STATUS_SUCCESS, "cycle {cycle}");
        assert_eq!((s as usize) >> 56, 0xA5, "a socket handle's tag byte");
        assert_ne!(slot_of(s), slot_of(kept), "cycle {cycle}: the open socket's slot");
        if let Some(p) = previous {
            assert_ne!(slot_of(s), slot_of(p), "cycle {cycle}: the slot just freed was handed out again");
        }
        assert_eq!(close(s), STATUS_SUCCESS);
        previous = Some(s);
        handles.push(s);
    }
    let slots: HashSet<usize> = handles[..CHUNK_SLOTS - 1].iter().map(|&h| slot_of(h)).collect();
    assert_eq!(slots.len(), CHUNK_SLOTS - 1, "63 cycles used the 63 free slots once each");
    assert_eq!(slot_of(handles[CHUNK_SLOTS - 1]), slot_of(handles[0]), "then the oldest freed slot came back");
    assert_ne!(handles[CHUNK_SLOTS - 1], handles[0], "at a new generation");
    assert_eq!(safewsk::table_usage().0, 1, "all in one chunk");
    // The first cycle's handle names a slot that serves another socket
    // since: refused, and the open socket is untouched.
    assert_eq!(close(handles[0]), STATUS_INVALID_PARAMETER_1);
    assert_eq!(send(handles[0], b"x").0, STATUS_INVALID_PARAMETER_1);
    let mut addr = [0u8; 28];
    // SAFETY: a 28-byte writable buffer; any handle value is safe.
    let st = unsafe { SafeWskGetLocalAddress(kept, addr.as_mut_ptr().cast(), 28, 2000) };
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(kept), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
