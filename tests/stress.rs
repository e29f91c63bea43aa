//! Stress: thousands of asynchronous connects against a loopback server with
//! random deadlines and random explicit cancels, in three provider modes
//! (real asynchronous connects, late completion, never completing). Bounded
//! in count (3 x 3000) and time (asserted). Every request must call back
//! exactly once with SUCCESS (and a socket), IO_TIMEOUT or CANCELLED, and the
//! host kernel must end with zero IRPs, pool blocks, sockets and timers.

mod common;

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use safewsk::nt::*;
use safewsk::*;

/// xorshift64*: deterministic, seedable, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

type Msg = (usize, NTSTATUS, usize);

unsafe extern "C" fn on_connect(ctx: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
    // SAFETY: ctx is a Box<(index, Sender)> handed to this one callback.
    let b = unsafe { Box::from_raw(ctx as *mut (usize, mpsc::Sender<Msg>)) };
    let _ = b.1.send((b.0, status, socket as usize));
}

fn phase(mode: ConnectCompletion, count: usize, in_flight: usize, seed: u64) -> HashMap<NTSTATUS, usize> {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_connect_completion(mode);
    let client = startup();
    let mut rng = Rng(seed);
    let (tx, rx) = mpsc::channel::<Msg>();
    let mut requests: Vec<Box<SAFEWSK_CONNECT_REQUEST>> = Vec::with_capacity(count);
    let mut outcomes: HashMap<NTSTATUS, usize> = HashMap::new();
    let (mut started, mut done, mut pending) = (0usize, 0usize, 0usize);
    let mut seen = vec![false; count];
    let local = Addr::parse("0.0.0.0:0");
    let remote = Addr::from(server);
    while done < count {
        while pending < in_flight && started < count {
            let ctx = Box::into_raw(Box::new((started, tx.clone())));
            requests.push(Box::new(new_request(Some(on_connect), ctx as PVOID, 1 + rng.below(20) as u32)));
            let req: *mut SAFEWSK_CONNECT_REQUEST = &mut **requests.last_mut().expect("just pushed");
            let st = start_async(client, &local, &remote, req);
            assert_eq!(st, STATUS_PENDING);
            if rng.below(3) == 0 {
                if rng.below(2) == 0 {
                    std::thread::sleep(Duration::from_micros(rng.below(3000)));
                }
                // SAFETY: the storage is intact (kept until the end).
                let c = unsafe { SafeWskCancelConnect(req) };
                assert!(c == STATUS_SUCCESS || c == STATUS_NOT_FOUND, "{c:#x}");
            }
            started += 1;
            pending += 1;
        }
        let (i, status, socket) = rx.recv_timeout(Duration::from_secs(10)).expect("a callback within 10 s");
        assert!(!std::mem::replace(&mut seen[i], true), "request {i} called back twice");
        match status {
            STATUS_SUCCESS => {
                assert_ne!(socket, 0);
                assert_eq!(close(socket as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
            }
            STATUS_IO_TIMEOUT | STATUS_CANCELLED => assert_eq!(socket, 0),
            other => panic!("request {i}: unexpected status {other:#x}"),
        }
        *outcomes.entry(status).or_default() += 1;
        done += 1;
        pending -= 1;
    }
    // No drift over 3000 connects: at most 64 requests (so 64 slots) were in
    // flight at once and all were started from this thread, so one chunk;
    // the cache never holds more than its 64 IRPs, and no IRP lives outside
    // it once every socket is closed.
    let (chunks, cached) = safewsk::table_usage();
    assert_eq!(chunks, 1, "chunks after {count} requests");
    assert!((1..=64).contains(&cached), "{cached} cached IRPs");
    assert_eq!(hostkernel::live().irps, cached, "an IRP outside the cache");
    cleanup(client);
    assert!(rx.try_recv().is_err(), "a callback after all requests completed");
    k.finish();
    outcomes
}

#[test]
fn thousands_of_async_connects_with_random_deadlines_and_cancels() {
    let t0 = Instant::now();
    for (mode, seed) in [
        (ConnectCompletion::Async, 1),
        (ConnectCompletion::Delay(Duration::from_millis(5)), 2),
        (ConnectCompletion::Never, 3),
    ] {
        let t = Instant::now();
        let outcomes = phase(mode, 3000, 64, seed);
        let show = |s| outcomes.get(&s).copied().unwrap_or(0);
        eprintln!(
            "{mode:?}: 3000 requests in {:?}: {} connected, {} timed out, {} cancelled",
            t.elapsed(),
            show(STATUS_SUCCESS),
            show(STATUS_IO_TIMEOUT),
            show(STATUS_CANCELLED)
        );
        assert_eq!(outcomes.values().sum::<usize>(), 3000);
    }
    assert!(t0.elapsed() < Duration::from_secs(120), "stress took {:?}", t0.elapsed());
}
