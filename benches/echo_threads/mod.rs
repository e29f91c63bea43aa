//! Multi-threaded 64-byte echoes (issue 17: "a row with T threads, each with
//! its own socket doing 64-byte echoes, T = 1, 2, 4, ops/s safewsk ÷
//! hand-written, side by side in one run"):
//!
//!     cargo bench --bench safewsk_bench -- --threads-only
//!
//! prints just these rows (the full bench prints them in its one table).
//!
//! For each T, T worker threads each connect one socket through safewsk and
//! one through the hand-written IRP sequence (`icount/handwritten.rs`, the
//! same code the instruction count compares with) to one loopback echo
//! server (a server thread per connection). Then, in rounds, the two sides
//! take turns (which goes first alternates per round): all T threads start
//! together at a barrier, each does N echoes on its own socket of that side
//! (send 64 bytes, receive 64 bytes with WSK_FLAG_WAITALL, both from its own
//! 64 bytes of non-paged pool: SAFEWSK_FLAG_NONPAGED_BUFFER on safewsk's
//! side, IoAllocateMdl + MmBuildMdlForNonPagedPool on the hand-written side,
//! as in the instruction count) and checks the echoed sequence number, and
//! the phase ends when the last thread has finished. ops/s is T x N / the
//! phase's time; a row gives each side's median over the measured rounds
//! and the median of the per-round ratios (safewsk ÷ hand-written, above 1
//! means safewsk is faster), with their range. Round 0 is a warm-up, not
//! counted.
//!
//! The host kernel counts every spin-lock acquisition by driver code, on
//! every thread (`hostkernel::spin_lock_acquisitions`: the completion
//! routines run on provider threads); read before and after each safewsk
//! phase, it shows whether the T threads' sends and receives meet on a
//! client-wide lock (0 expected: each socket call touches only its own
//! socket's state word). The throughput itself cannot show scaling on a
//! machine with fewer cores than the threads involved: every echo also
//! keeps an echo-server thread and a provider pool thread busy.
//!
//! Phases are short (N = 500 echoes per thread by default, tens of
//! milliseconds) and rounds many (21), so that the two sides of a round
//! see the same load from whatever else runs on the machine; the per-round
//! ratios' range shows how much that load moved them.
//!
//! Environment: SAFEWSK_BENCH_ECHO_N (default 500) echoes per thread per
//! phase, SAFEWSK_BENCH_ECHO_ROUNDS (default 21) measured rounds.

use std::ptr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Barrier;
use std::time::Instant;

use crate::common::{self, Addr};
use crate::icount::handwritten::Handwritten;
use crate::icount::{Side, PAYLOAD, TIMEOUT_MS};
use crate::median;
use safewsk::nt::*;
use safewsk::*;

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

const TAG: u32 = u32::from_le_bytes(*b"Echo");
const POOL_FLAG_NON_PAGED: u64 = 0x40;

/// The thread counts of the rows.
pub const THREADS: [usize; 3] = [1, 2, 4];

/// The workers' next phase ([`Phase::code`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Echo(Side),
    Stop,
}

impl Phase {
    fn code(self) -> u8 {
        match self {
            Phase::Echo(Side::Safewsk) => 0,
            Phase::Echo(Side::Handwritten) => 1,
            Phase::Stop => 2,
        }
    }

    fn from_code(c: u8) -> Phase {
        match c {
            0 => Phase::Echo(Side::Safewsk),
            1 => Phase::Echo(Side::Handwritten),
            _ => Phase::Stop,
        }
    }
}

/// Echoes per thread per phase and measured rounds.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub n: usize,
    pub rounds: usize,
}

impl Settings {
    pub fn from_env() -> Settings {
        let get = |var: &str, default: usize| {
            std::env::var(var).ok().and_then(|v| v.parse().ok()).filter(|&v: &usize| v > 0).unwrap_or(default)
        };
        Settings { n: get("SAFEWSK_BENCH_ECHO_N", 500), rounds: get("SAFEWSK_BENCH_ECHO_ROUNDS", 21) }
    }
}

/// What the T threads share.
struct Shared<'a> {
    client: *mut SAFEWSK_CLIENT,
    hand: &'a Handwritten,
    server: std::net::SocketAddr,
    n: usize,
    phase: AtomicU8,
    /// All workers connected (main thread too).
    ready: Barrier,
    /// A phase starts (workers and the main thread).
    start: Barrier,
    /// A phase has ended on every worker.
    end: Barrier,
}

// SAFETY: the only member that is not Sync is the client pointer, which the
// workers only pass to SafeWskSocketConnect (a client may be used on any
// thread at PASSIVE_LEVEL, concurrently); the client outlives the workers
// (they are scoped, and SafeWskCleanup comes after the scope).
unsafe impl Sync for Shared<'_> {}

/// Ends the process if a worker panics (the main thread would otherwise
/// wait at a barrier forever); the panic message is printed first.
struct AbortOnPanic;

impl Drop for AbortOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::process::abort();
        }
    }
}

/// One of a worker's two sockets.
#[derive(Clone, Copy)]
enum Socket {
    Safewsk(*mut SAFEWSK_SOCKET),
    Handwritten(*mut WSK_SOCKET),
}

impl Socket {
    /// One echo: send PAYLOAD bytes of `buf`, receive PAYLOAD bytes into it
    /// with WSK_FLAG_WAITALL.
    fn echo(self, hand: &Handwritten, buf: *mut u8) {
        let (sent, received) = match self {
            Socket::Safewsk(s) => {
                let (mut sent, mut received) = (0, 0);
                let flags = SAFEWSK_FLAG_NONPAGED_BUFFER;
                // SAFETY: `buf` is PAYLOAD bytes of non-paged pool, live for
                // the call; `s` is this worker's open socket.
                let st = unsafe { SafeWskSend(s, buf.cast(), PAYLOAD, flags, TIMEOUT_MS, &mut sent) };
                assert_eq!(st, STATUS_SUCCESS, "SafeWskSend");
                let flags = flags | WSK_FLAG_WAITALL;
                // SAFETY: as above.
                let st = unsafe { SafeWskReceive(s, buf.cast(), PAYLOAD, flags, TIMEOUT_MS, &mut received) };
                assert_eq!(st, STATUS_SUCCESS, "SafeWskReceive");
                (sent as usize, received as usize)
            }
            Socket::Handwritten(s) => {
                // SAFETY: PASSIVE_LEVEL (a plain thread); `s` is this
                // worker's open connection socket; `buf` as above.
                let sent = unsafe { hand.transfer_with_flags(false, s, buf, PAYLOAD, 0, TIMEOUT_MS) };
                // SAFETY: as above.
                let received = unsafe { hand.transfer_with_flags(true, s, buf, PAYLOAD, WSK_FLAG_WAITALL, TIMEOUT_MS) };
                (sent.expect("hand-written send"), received.expect("hand-written receive"))
            }
        };
        assert_eq!((sent, received), (PAYLOAD as usize, PAYLOAD as usize));
    }
}

/// A worker: connects its two sockets, then runs the phases the main
/// thread starts until told to stop, then closes them.
fn worker(sh: &Shared) {
    let _guard = AbortOnPanic;
    // SAFETY: a plain non-paged pool allocation, freed below.
    let buf = unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, PAYLOAD as usize, TAG) };
    assert!(!buf.is_null());
    let (st, ours) = common::connect(sh.client, sh.server, TIMEOUT_MS);
    assert_eq!(st, STATUS_SUCCESS, "SafeWskSocketConnect");
    let (local, remote) = (Addr::wildcard_like(sh.server), Addr::from(sh.server));
    // SAFETY: PASSIVE_LEVEL; the addresses outlive the call.
    let theirs = unsafe { sh.hand.connect(local.ptr(), remote.ptr(), TIMEOUT_MS) }.expect("hand-written connect");
    sh.ready.wait();
    let mut seq = 0u64;
    loop {
        sh.start.wait();
        let socket = match Phase::from_code(sh.phase.load(Ordering::SeqCst)) {
            Phase::Echo(Side::Safewsk) => Socket::Safewsk(ours),
            Phase::Echo(Side::Handwritten) => Socket::Handwritten(theirs),
            Phase::Stop => break,
        };
        for _ in 0..sh.n {
            seq += 1;
            // SAFETY: `buf` is PAYLOAD (>= 8) writable bytes, ours.
            unsafe { ptr::write_unaligned(buf.cast::<u64>(), seq) };
            socket.echo(sh.hand, buf);
            // SAFETY: as above; the receive wrote it (the echo of our send).
            assert_eq!(unsafe { ptr::read_unaligned(buf.cast::<u64>()) }, seq, "echoed sequence number");
        }
        sh.end.wait();
    }
    assert_eq!(common::close(ours), STATUS_SUCCESS);
    // SAFETY: the socket this worker connected, closed once.
    assert_eq!(unsafe { sh.hand.close(theirs) }, STATUS_SUCCESS);
    // SAFETY: our block, no longer used (every IRP on it has completed).
    unsafe { ExFreePoolWithTag(buf, TAG) };
}

/// One T's measurement.
struct Measured {
    threads: usize,
    /// Median echoes/s per side.
    ours: f64,
    theirs: f64,
    /// Median and range of the per-round ratios (ours / theirs).
    ratio: f64,
    lo: f64,
    hi: f64,
    /// Spin-lock acquisitions during the measured phases of each side, and
    /// the echoes they did.
    spins: (u64, u64),
    echoes: u64,
}

/// T threads, rounds of the two sides' phases.
fn measure(
    client: *mut SAFEWSK_CLIENT,
    hand: &Handwritten,
    server: std::net::SocketAddr,
    threads: usize,
    s: Settings,
) -> Measured {
    let sh = Shared {
        client,
        hand,
        server,
        n: s.n,
        phase: AtomicU8::new(Phase::Stop.code()),
        ready: Barrier::new(threads + 1),
        start: Barrier::new(threads + 1),
        end: Barrier::new(threads + 1),
    };
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut spins = (0, 0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| worker(&sh));
        }
        sh.ready.wait();
        for round in 0..=s.rounds {
            let order =
                if round % 2 == 0 { [Side::Safewsk, Side::Handwritten] } else { [Side::Handwritten, Side::Safewsk] };
            // echoes/s of (safewsk, hand-written) in this round
            let mut rate = (0.0, 0.0);
            for side in order {
                sh.phase.store(Phase::Echo(side).code(), Ordering::SeqCst);
                let spins0 = hostkernel::spin_lock_acquisitions();
                sh.start.wait();
                let t = Instant::now();
                sh.end.wait();
                let secs = t.elapsed().as_secs_f64();
                let spun = hostkernel::spin_lock_acquisitions() - spins0;
                let (r, spin) = match side {
                    Side::Safewsk => (&mut rate.0, &mut spins.0),
                    Side::Handwritten => (&mut rate.1, &mut spins.1),
                };
                *r = (threads * s.n) as f64 / secs;
                if round > 0 {
                    *spin += spun;
                }
            }
            if round > 0 {
                ours.push(rate.0);
                theirs.push(rate.1);
                ratios.push(rate.0 / rate.1);
            }
        }
        sh.phase.store(Phase::Stop.code(), Ordering::SeqCst);
        sh.start.wait();
    });
    let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = ratios.iter().copied().fold(0.0, f64::max);
    Measured {
        threads,
        ours: median(ours),
        theirs: median(theirs),
        ratio: median(ratios),
        lo,
        hi,
        spins,
        echoes: (threads * s.n * s.rounds) as u64,
    }
}

/// The rows for the bench's table and the note printed under it.
pub struct Rows {
    pub rows: Vec<String>,
    pub note: String,
}

/// The 1-minute load average (/proc/loadavg), as printed there.
fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().unwrap_or("unknown").to_string()
}

/// The rows of the bench's table, one per T, in a host-kernel session of
/// their own (zero leaks checked at the end).
pub fn rows(s: Settings) -> Rows {
    let load0 = load_average();
    let k = common::Session::begin();
    let client = common::startup();
    let hand = Handwritten::new(common::dev());
    let server = common::echo_server("127.0.0.1:0").expect("echo server");
    let measured: Vec<Measured> = THREADS.iter().map(|&t| measure(client, &hand, server, t, s)).collect();
    drop(hand);
    common::cleanup(client);
    k.finish();
    let load1 = load_average();
    let rows = measured
        .iter()
        .map(|m| {
            let per = |spun: u64| spun as f64 / m.echoes as f64;
            format!(
                "| 64-byte echoes, {t} thread{plural} each with its own socket (send 64 + receive 64 WAITALL, non-paged pool), {t} x {n} echoes per phase, median of {r} interleaved rounds | {o:.0} echoes/s; spin-lock acquisitions {so:.3} per echo ({s0} in {e}) | {h:.0} echoes/s (hand-written IRP sequence); spin-lock acquisitions {sh:.3} per echo | {ratio:.3} ops/s safewsk ÷ hand-written (median of per-round ratios; {lo:.3}-{hi:.3}) |",
                t = m.threads,
                plural = if m.threads == 1 { "" } else { "s" },
                n = s.n,
                r = s.rounds,
                o = m.ours,
                so = per(m.spins.0),
                s0 = m.spins.0,
                e = m.echoes,
                h = m.theirs,
                sh = per(m.spins.1),
                ratio = m.ratio,
                lo = m.lo,
                hi = m.hi,
            )
        })
        .collect();
    Rows { rows, note: note(&load0, &load1) }
}

/// The note printed under the table about these rows.
fn note(load0: &str, load1: &str) -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "Note (echo rows): ops/s = echoes (one 64-byte send + one 64-byte receive) per second, all T threads together; \
         a ratio above 1 means safewsk did more. This machine has {cores} cores (1-minute load average {load0} before the \
         echo rows, {load1} after them), and every echo keeps, besides its client thread, an echo-server thread and a \
         host-kernel provider pool thread busy: throughput cannot grow with T here, so these rows cannot show the \
         scaling itself. What shows that the T threads do not serialise on a client-wide lock is the spin-lock count \
         during the safewsk phases (the host kernel's, all threads; 0 expected on send and receive)."
    )
}
