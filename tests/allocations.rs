//! Allocations on the operation path (issue 12): a socket keeps the IRP its
//! connect used and every later call reuses it (IoReuseIrp), so send,
//! receive, the address queries, disconnect and close allocate no IRP and no
//! pool. What is left per call is named and counted here: the I/O manager's
//! IoSetCompletionRoutineEx context (the unload-safety mechanism). The MDL
//! that describes a send or receive buffer of up to 64 KiB lives on the
//! calling thread's stack; a larger buffer gets one from IoAllocateMdl.
//!
//! Two calls that overlap on one socket (full duplex: a send while a receive
//! waits) get a second IRP, allocated once and then kept by the socket; and
//! a close may now run while another thread's receive waits on the socket
//! (WSK completes that receive when the socket is closed).

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::ptr;
use std::thread;
use std::time::Duration;

use common::*;
use hostkernel::Allocations;
use safewsk::nt::*;
use safewsk::*;

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
fn connected(client: *mut SAFEWSK_CLIENT) -> (*mut SAFEWSK_SOCKET, std::net::TcpStream) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let server = listener.local_addr().expect("addr");
    let h = thread::spawn(move || listener.accept().expect("accept").0);
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    (socket, h.join().expect("accept"))
}

#[test]
fn socket_calls_allocate_no_irp_and_no_pool() {
    let k = Session::begin();
    let client = startup();

    let before = hostkernel::allocations();
    let (socket, mut peer) = connected(client);
    let after_connect = hostkernel::allocations();
    // The connect: the socket's record and its IRP, and one completion context.
    assert_eq!(delta(before, after_connect), (1, 1, 0, 1), "a synchronous connect");

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
        // SAFETY: a 28-byte writable buffer, an open socket.
        let st = unsafe { SafeWskGetLocalAddress(socket, addr.as_mut_ptr().cast(), 28, 2000) };
        assert_eq!(st, STATUS_SUCCESS);
    }
    let after_calls = hostkernel::allocations();
    // One completion context per call, and nothing else: no IRP, no pool
    // block, no MDL (the buffer's MDL is on the stack).
    assert_eq!(delta(after_connect, after_calls), (0, 0, 0, 3 * N), "{N} sends, receives and address queries");

    // SAFETY: an open socket of this client.
    assert_eq!(unsafe { SafeWskDisconnect(socket, 0, 2000) }, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    let after_close = hostkernel::allocations();
    assert_eq!(delta(after_calls, after_close), (0, 0, 0, 2), "a disconnect and a close");
    assert_eq!(hostkernel::live().irps, 1, "the client keeps the closed socket's record and IRP");

    // The next connect takes the cached record: connect + close in a steady
    // state allocates nothing but the I/O manager's completion contexts.
    let (socket, _peer) = connected(client);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(delta(after_close, hostkernel::allocations()), (0, 0, 0, 2), "a second connect + close");

    cleanup(client);
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
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn an_asynchronous_connect_hands_its_irp_to_the_socket() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let seen = std::sync::Arc::new(Seen::default());
    let mut req = request(&seen, 2000);
    let before = hostkernel::allocations();
    assert_eq!(start(client, server, &mut req), STATUS_PENDING);
    let (st, sock, _, _) = seen.wait(1, Duration::from_secs(5))[0];
    assert_eq!(st, STATUS_SUCCESS);
    let socket = sock as *mut SAFEWSK_SOCKET;
    assert_eq!(delta(before, hostkernel::allocations()), (1, 1, 0, 1), "an asynchronous connect");
    let mark = hostkernel::allocations();
    assert_eq!(send(socket, b"async"), (STATUS_SUCCESS, 5));
    let mut got = [0u8; 5];
    assert_eq!(receive(socket, &mut got, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 5));
    assert_eq!(&got, b"async");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(delta(mark, hostkernel::allocations()), (0, 0, 0, 3));
    cleanup(client);
    k.finish();
}

/// A receive waits on one thread while another sends: the send finds the
/// socket's IRP in use and allocates a second one, which the socket keeps,
/// so the next overlapping send allocates nothing.
#[test]
fn full_duplex_allocates_one_spare_irp_once() {
    let k = Session::begin();
    let client = startup();
    let (socket, mut peer) = connected(client);
    let sock = socket as usize;
    let cl = client as usize;
    for round in 0..3u8 {
        let receiver = thread::spawn(move || {
            let mut got = [0u8; 4];
            let (st, n) = receive(sock as *mut SAFEWSK_SOCKET, &mut got, WSK_FLAG_WAITALL, 5000);
            (st, n, got)
        });
        // Let the receive get to the provider first.
        thread::sleep(Duration::from_millis(100));
        let before = hostkernel::allocations();
        assert_eq!(send(socket, &[round; 4]), (STATUS_SUCCESS, 4));
        let irps = delta(before, hostkernel::allocations()).0;
        let mut echo = [0u8; 4];
        peer.read_exact(&mut echo).expect("peer read");
        peer.write_all(&echo).expect("peer write");
        assert_eq!(receiver.join().expect("receiver"), (STATUS_SUCCESS, 4, [round; 4]));
        assert_eq!(irps, u64::from(round == 0), "round {round}: IRPs allocated by the overlapping send");
    }
    assert_eq!(hostkernel::live().irps, 2, "the socket's IRP and its spare");
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(hostkernel::live().irps, 1, "the close freed the spare and cached the record with its IRP");
    cleanup(client);
    k.finish();
}

/// Closing a socket while another thread's receive waits on it: WSK
/// completes the receive (the host kernel with STATUS_CANCELLED, as Windows
/// does according to Wine's WSK tests), the close succeeds, and the socket's
/// record, which the receive still held, is freed by the receive's return.
#[test]
fn a_close_while_a_receive_waits_ends_the_receive() {
    let k = Session::begin();
    let client = startup();
    let (socket, _peer) = connected(client);
    let sock = socket as usize;
    let cl = client as usize;
    let receiver = thread::spawn(move || {
        let mut got = [0u8; 4];
        let mut n = 0xDEAD;
        // SAFETY: `got` outlives the call; the socket is open when the call
        // starts.
        let st = unsafe {
            SafeWskReceive(sock as *mut SAFEWSK_SOCKET, got.as_mut_ptr().cast(), 4, 0, SAFEWSK_NO_TIMEOUT, &mut n)
        };
        (st, n)
    });
    thread::sleep(Duration::from_millis(100));
    assert_eq!(close(socket), STATUS_SUCCESS);
    let (st, n) = receiver.join().expect("receiver");
    assert_eq!((st, n), (STATUS_CANCELLED, 0), "the waiting receive ends when the socket is closed");
    assert_eq!(close(socket), STATUS_INVALID_PARAMETER_2, "closed");
    // SAFETY: a closed socket is refused before it is used.
    let st = unsafe { SafeWskSend(socket, b"x".as_ptr().cast(), 1, 0, 100, ptr::null_mut()) };
    assert_eq!(st, STATUS_INVALID_PARAMETER_2);
    cleanup(client);
    k.finish();
}

/// Three receives wait on one socket (the socket's IRP, its spare, and a
/// temporary IRP) while another thread closes it, twenty times: every
/// receive ends, the close succeeds, and the record is freed or cached only
/// after the last of them has let go of it (a call holding a temporary IRP
/// counts too; the host kernel's pool quarantine reports a record written
/// after it was freed).
#[test]
fn overlapping_calls_and_a_close_let_go_of_the_record_in_any_order() {
    let k = Session::begin();
    let client = startup();
    for round in 0..20 {
        let (socket, _peer) = connected(client);
        let (sock, cl) = (socket as usize, client as usize);
        let receivers: Vec<_> = (0..3)
            .map(|_| {
                thread::spawn(move || {
                    let mut got = [0u8; 4];
                    receive(sock as *mut SAFEWSK_SOCKET, &mut got, 0, SAFEWSK_NO_TIMEOUT).0
                })
            })
            .collect();
        thread::sleep(Duration::from_millis(30));
        assert_eq!(close(socket), STATUS_SUCCESS, "round {round}");
        for r in receivers {
            assert_eq!(r.join().expect("receiver"), STATUS_CANCELLED, "round {round}");
        }
        let v = hostkernel::violations();
        assert!(v.is_empty(), "round {round}: {v:#?}");
    }
    cleanup(client);
    k.finish();
}
