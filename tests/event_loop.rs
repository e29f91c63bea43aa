//! Issue 12, goal 3: the host provider's event loop (hostkernel/src/wsk_loop.rs).
//! Pending requests no longer own a thread: an epoll reactor and a pool of
//! two to four threads step and complete them. These tests hold more
//! requests pending than there are pool threads, make a send and a receive
//! wait on one socket at once, and cancel requests parked in the reactor's
//! timer heap with the Inline cancel behaviour (completed inside IoCancelIrp,
//! the loop then undoing its work), with zero leaks each time.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use hostkernel::CancelBehaviour;
use safewsk::nt::*;
use safewsk::*;

/// A listener that accepts `n` connections and holds them, silent, until
/// the handle is joined and the streams dropped.
fn silent_server_for(n: usize) -> (SocketAddr, thread::JoinHandle<Vec<TcpStream>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let local = listener.local_addr().expect("addr");
    let h = thread::spawn(move || (0..n).map(|_| listener.accept().expect("accept").0).collect());
    (local, h)
}

#[test]
fn pending_receives_outnumber_the_pool_threads_and_all_time_out_together() {
    const N: usize = 32;
    let k = Session::begin();
    let client = startup();
    let (addr, server) = silent_server_for(N);
    let c = client as usize;
    let t0 = Instant::now();
    let workers: Vec<_> = (0..N)
        .map(|_| {
            thread::spawn(move || {
                let client = c as *mut SAFEWSK_CLIENT;
                let (st, s) = connect(client, addr, 5000);
                assert_eq!(st, STATUS_SUCCESS);
                let mut buf = [0u8; 16];
                // Nobody sends: every receive stays pending until its deadline.
                let (st, n) = receive(s, &mut buf, 0, 300);
                assert_eq!((st, n), (STATUS_IO_TIMEOUT, 0));
                assert_eq!(close(s), STATUS_SUCCESS);
            })
        })
        .collect();
    for w in workers {
        w.join().expect("worker");
    }
    let took = t0.elapsed();
    // 32 receives of 300 ms, pending together on two pool threads: a loop
    // that held a thread per pending receive would take 32 x 300 / 2 ms.
    assert!(took < Duration::from_millis(3000), "{took:?}");
    // Every closed socket's IRP waits in the table's cache. 32 sockets fit
    // in one chunk of 64 slots, but connects that find the free list empty
    // at the same moment each install a chunk (the allocation is made
    // outside the table's lock), so racing first connects may install more.
    let (chunks, cached) = safewsk::table_usage();
    assert_eq!(cached, N, "cached IRPs");
    assert!((1..=N).contains(&chunks), "{chunks} chunks");
    assert_eq!(hostkernel::live().irps, N);
    drop(server.join());
    cleanup(client);
    k.finish();
}

#[test]
fn a_send_and_a_receive_wait_on_one_socket_at_once() {
    const SIZE: usize = 4 << 20;
    let k = Session::begin();
    let client = startup();
    let addr = echo_server("127.0.0.1:0").expect("echo server");
    let (st, s) = connect(client, addr, 5000);
    assert_eq!(st, STATUS_SUCCESS);
    let data: Arc<Vec<u8>> = Arc::new((0..SIZE).map(|i| (i * 7 + i / 4096) as u8).collect());
    let sock = s as usize;
    let expect = data.clone();
    // The receiver waits for readable data while the sender below waits for
    // room (the echo server stops reading while its replies back up).
    let receiver = thread::spawn(move || {
        let mut got = vec![0u8; SIZE];
        let mut at = 0;
        while at < SIZE {
            let (st, n) = receive(sock as *mut SAFEWSK_SOCKET, &mut got[at..], 0, 10_000);
            assert_eq!(st, STATUS_SUCCESS);
            assert!(n > 0);
            at += n as usize;
        }
        assert!(got == *expect, "the echoed bytes differ");
    });
    let mut n = 0;
    // SAFETY: `data` outlives the call.
    let st = unsafe { SafeWskSend(s, data.as_ptr().cast(), SIZE as u32, 0, 10_000, &mut n) };
    assert_eq!((st, n as usize), (STATUS_SUCCESS, SIZE));
    receiver.join().expect("receiver");
    assert_eq!(close(s), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn inline_cancels_of_connects_parked_in_the_timer_heap_leak_nothing() {
    const N: usize = 200;
    let k = Session::begin();
    hostkernel::set_cancel_behaviour(CancelBehaviour::Inline);
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(150)));
    let client = startup();
    let addr = echo_server("127.0.0.1:0").expect("echo server");
    let seen = Arc::new(Seen::default());
    let mut reqs: Vec<Box<SAFEWSK_CONNECT_REQUEST>> = (0..N).map(|_| request(&seen, SAFEWSK_NO_TIMEOUT)).collect();
    for req in reqs.iter_mut() {
        assert_eq!(start(client, addr, req), STATUS_PENDING);
    }
    // Every other request is cancelled while it waits for its delay; the
    // cancel routine completes its IRP inside IoCancelIrp.
    for req in reqs.iter_mut().step_by(2) {
        // SAFETY: a pending request; its storage lives until the end.
        assert_eq!(unsafe { SafeWskCancelConnect(&mut **req) }, STATUS_SUCCESS);
    }
    let calls = seen.wait(N, Duration::from_secs(10));
    assert_eq!(calls.len(), N);
    let ok: Vec<_> = calls.iter().filter(|c| c.0 == STATUS_SUCCESS).collect();
    let cancelled = calls.iter().filter(|c| c.0 == STATUS_CANCELLED && c.1 == 0).count();
    assert_eq!((ok.len(), cancelled), (N / 2, N / 2));
    assert!(calls.iter().all(|c| c.2 <= DISPATCH_LEVEL));
    for c in ok {
        assert_eq!(close(c.1 as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    }
    // 200 requests held a slot and an IRP at once: four chunks of 64 slots.
    // Their IRPs came back (cancelled requests' at their callback, closed
    // sockets' at the close): the cache keeps 64 and freed the rest.
    assert_eq!(safewsk::table_usage(), (N.div_ceil(64), 64), "(chunks, cached IRPs)");
    assert_eq!(hostkernel::live().irps, 64, "the IRPs beyond the cache's 64 were freed");
    cleanup(client);
    k.finish();
}
