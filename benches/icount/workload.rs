//! The workload that runs under callgrind: per round and per side (safewsk,
//! then the hand-written sequence), N sends, N receives (64 bytes each, on
//! one connection to an echo server), N synchronous connects and N closes, each phase scoped by callgrind client requests
//! (CALLGRIND_ZERO_STATS before it, CALLGRIND_DUMP_STATS_AT after it), so
//! that each dump holds exactly that phase's instructions on every thread
//! (the host kernel's provider threads and the loopback servers included).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::handwritten::Handwritten;
use super::{Phase, Side, PAYLOAD, TIMEOUT_MS};
use crate::common::{self, Addr};
use safewsk::nt::*;
use safewsk::*;

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

const TAG: u32 = u32::from_le_bytes(*b"Icnt");
const POOL_FLAG_NON_PAGED: u64 = 0x40;

/// A valgrind client request (valgrind.h, VALGRIND_DO_CLIENT_REQUEST_EXPR,
/// amd64-linux): returns `default` when not running under valgrind.
#[cfg(target_arch = "x86_64")]
fn client_request(request: u64, arg1: u64, default: u64) -> u64 {
    let args: [u64; 6] = [request, arg1, 0, 0, 0, 0];
    let result: u64;
    // SAFETY: valgrind's "special instruction preamble" for amd64: the four
    // rotations of rdi (3 + 13 + 61 + 51 = 128 bits) leave it unchanged and
    // `xchg rbx, rbx` is a no-op, so natively this only moves `default` to
    // rdx (and clobbers the flags, which asm! assumes by default). Under
    // valgrind the core reads the six words at rax and puts the answer in
    // rdx. `args` lives across the asm block.
    unsafe {
        std::arch::asm!(
            "rol rdi, 3",
            "rol rdi, 13",
            "rol rdi, 61",
            "rol rdi, 51",
            "xchg rbx, rbx",
            inout("rdx") default => result,
            in("rax") args.as_ptr(),
            inout("rdi") 0u64 => _,
            options(nostack),
        )
    };
    result
}

#[cfg(not(target_arch = "x86_64"))]
fn client_request(_request: u64, _arg1: u64, default: u64) -> u64 {
    default
}

/// RUNNING_ON_VALGRIND (valgrind.h: VG_USERREQ__RUNNING_ON_VALGRIND = 0x1001).
pub fn running_on_valgrind() -> bool {
    client_request(0x1001, 0, 0) != 0
}

/// callgrind.h: VG_USERREQ_TOOL_BASE('C','T') = 0x4354_0000, then
/// DUMP_STATS, ZERO_STATS, TOGGLE_COLLECT, DUMP_STATS_AT.
const CALLGRIND_ZERO_STATS: u64 = 0x4354_0001;
const CALLGRIND_DUMP_STATS_AT: u64 = 0x4354_0003;

/// Zeroes the cost counters of every thread.
fn zero_stats() {
    client_request(CALLGRIND_ZERO_STATS, 0, 0);
}

/// Dumps the counters of every thread since the last zero, with `label` as
/// the dump's trigger ("desc: Trigger: Client Request: <label>").
fn dump_stats(label: &str) {
    let mut c = label.as_bytes().to_vec();
    c.push(0);
    client_request(CALLGRIND_DUMP_STATS_AT, c.as_ptr() as u64, 0);
}

/// A listener that accepts and keeps every connection (blocking accept:
/// the same, deterministic work per connection).
fn holding_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        for s in l.incoming() {
            match s {
                Ok(s) => kept.push(s),
                Err(_) => return,
            }
        }
    });
    a
}

/// A listener that echoes every byte of every connection, counting them.
fn echo_server(echoed: Arc<AtomicUsize>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let a = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s): Result<TcpStream, _> = s else { return };
            let echoed = echoed.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = s.read(&mut buf) {
                    if s.write_all(&buf[..n]).is_err() {
                        return;
                    }
                    echoed.fetch_add(n, Ordering::SeqCst);
                }
            });
        }
    });
    a
}

/// A socket of either side: safewsk's opaque handle, or the provider's
/// WSK_SOCKET the hand-written code holds.
#[derive(Clone, Copy)]
enum Socket {
    Safewsk(*mut SAFEWSK_SOCKET),
    Handwritten(*mut WSK_SOCKET),
}

/// One side's four operations, called in the measured loops.
struct Ops<'a> {
    side: Side,
    client: *mut SAFEWSK_CLIENT,
    hand: &'a Handwritten,
    local: Addr,
}

impl Ops<'_> {
    fn connect(&self, remote: &Addr) -> Socket {
        match self.side {
            Side::Safewsk => {
                let mut s = ptr::null_mut();
                // SAFETY: valid addresses and out pointer for the call.
                let st = unsafe {
                    SafeWskSocketConnect(
                        self.client,
                        SOCK_STREAM,
                        IPPROTO_TCP,
                        self.local.ptr(),
                        remote.ptr(),
                        0,
                        ptr::null_mut(),
                        ptr::null(),
                        ptr::null_mut(),
                        ptr::null_mut(),
                        ptr::null_mut(),
                        &mut s,
                        TIMEOUT_MS,
                    )
                };
                assert_eq!(st, STATUS_SUCCESS);
                Socket::Safewsk(s)
            }
            Side::Handwritten => {
                // SAFETY: PASSIVE_LEVEL; valid addresses for the call.
                let s = unsafe { self.hand.connect(self.local.ptr(), remote.ptr(), TIMEOUT_MS) };
                Socket::Handwritten(s.expect("hand-written connect"))
            }
        }
    }

    fn transfer(&self, receive: bool, socket: Socket, buf: *mut u8) {
        let n = match socket {
            Socket::Safewsk(socket) => {
                let mut n = 0;
                let flags = SAFEWSK_FLAG_NONPAGED_BUFFER;
                let st = if receive {
                    // SAFETY: `buf` is PAYLOAD bytes of non-paged pool, live.
                    unsafe { SafeWskReceive(socket, buf.cast(), PAYLOAD, flags, TIMEOUT_MS, &mut n) }
                } else {
                    // SAFETY: as above.
                    unsafe { SafeWskSend(socket, buf.cast(), PAYLOAD, flags, TIMEOUT_MS, &mut n) }
                };
                assert_eq!(st, STATUS_SUCCESS);
                n as usize
            }
            Socket::Handwritten(socket) => {
                // SAFETY: PASSIVE_LEVEL; an open socket; `buf` as above.
                unsafe { self.hand.transfer(receive, socket, buf, PAYLOAD, TIMEOUT_MS) }.expect("hand-written transfer")
            }
        };
        assert_eq!(n, PAYLOAD as usize);
    }

    fn close(&self, socket: Socket) {
        let st = match socket {
            // SAFETY: any handle value is safe (this one: a socket this side
            // connected, closed once).
            Socket::Safewsk(socket) => unsafe { SafeWskCloseSocket(socket) },
            // SAFETY: a socket this side connected, closed once.
            Socket::Handwritten(socket) => unsafe { self.hand.close(socket) },
        };
        assert_eq!(st, STATUS_SUCCESS);
    }
}

/// Runs `rounds` rounds of `n` operations per phase and side (after a
/// warm-up that is not measured), dumping one callgrind part per phase,
/// labelled `<side> <phase> <round>`.
pub fn run(n: usize, rounds: usize) {
    let k = hostkernel::Session::begin();
    let client = common::startup();
    let hand = Handwritten::new(common::dev());
    let hold = Addr::from(holding_server());
    let echoed = Arc::new(AtomicUsize::new(0));
    let echo = echo_server(echoed.clone());
    // SAFETY: a plain non-paged pool allocation, freed below.
    let buf = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, PAYLOAD as usize, TAG) };
    assert!(!buf.is_null());
    let sides = [Side::Safewsk, Side::Handwritten];
    let ops: Vec<Ops> =
        sides.iter().map(|&side| Ops { side, client, hand: &hand, local: Addr::parse("0.0.0.0:0") }).collect();
    let echo_addr = Addr::from(echo);
    let data: Vec<Socket> = ops.iter().map(|o| o.connect(&echo_addr)).collect();
    let mut sent = 0usize;
    let mut sockets = Vec::with_capacity(n);
    for round in 0..=rounds {
        // Round 0 is the warm-up: first-call costs (lazy binding, the first
        // provider thread, allocator growth) stay out of the figures.
        let per = if round == 0 { n.min(20) } else { n };
        for (o, &data_socket) in ops.iter().zip(&data) {
            let label = |phase: Phase| format!("{} {} {round}", o.side.name(), phase.name());
            // Sends and receives first, while the data socket is the only
            // open one of its side (safewsk's lookup is an index into its
            // socket table, a fixed cost whatever else is open; the order
            // keeps the provider's state the same in every run).
            zero_stats();
            for _ in 0..per {
                o.transfer(false, data_socket, buf);
            }
            dump_stats(&label(Phase::Send));
            // Every byte echoed before the receives: each receive finds its
            // bytes waiting, on either side, in every run.
            sent += per * PAYLOAD as usize;
            while echoed.load(Ordering::SeqCst) < sent {
                std::thread::sleep(Duration::from_millis(1));
            }
            zero_stats();
            for _ in 0..per {
                o.transfer(true, data_socket, buf);
            }
            dump_stats(&label(Phase::Receive));
            zero_stats();
            for _ in 0..per {
                sockets.push(o.connect(&hold));
            }
            dump_stats(&label(Phase::Connect));
            // Closed last first, as before the socket handles (the handle
            // names its slot: the order changes nothing in safewsk's cost;
            // freed slots are reused first in, first out).
            zero_stats();
            while let Some(s) = sockets.pop() {
                o.close(s);
            }
            dump_stats(&label(Phase::Close));
        }
    }
    for (o, s) in ops.iter().zip(data) {
        o.close(s);
    }
    drop(ops);
    drop(hand);
    // SAFETY: our block, no longer used.
    unsafe { ExFreePoolWithTag(buf, TAG) };
    common::cleanup(client);
    k.finish();
    // The servers' threads are left blocked in accept/read: the process
    // ends here.
    let _ = std::io::stdout().flush();
}
