//! The provider's machinery for pending IRPs (issue 12, goal 3): an epoll
//! reactor, the registry of pending operations, and a small pool of threads
//! that complete IRPs at DISPATCH_LEVEL.
//!
//! Two ways to run a request's work:
//! - [`run_ready`] (connect, send, receive, disconnect, close, address
//!   queries): the work is a non-blocking *step* that either finishes
//!   ([`Step::Done`]) or says what it waits for: readiness of a socket
//!   ([`Step::Wait`], registered with the reactor's epoll instance, one shot),
//!   a point in time ([`Step::Until`], the reactor's timer heap), or only a
//!   wake-up ([`Step::Park`]: cancellation, an abortive disconnect, the end of
//!   a socket's other requests). A pending request then costs a few hundred
//!   bytes of heap and no thread; a pool thread steps it again when the
//!   reactor (or a cancel routine) wakes it, and completes the IRP at
//!   DISPATCH_LEVEL. Windows may complete a WSK IRP on any thread at
//!   IRQL <= DISPATCH_LEVEL: "A driver's IoCompletion routine executes in an
//!   arbitrary thread or DPC context, and at an IRQL that is less than or
//!   equal to DISPATCH_LEVEL" (IO_COMPLETION_ROUTINE callback function,
//!   Remarks, Microsoft Learn); "The WSK subsystem completes the IRP after
//!   the operation performed by the WSK function is complete" (Using IRPs
//!   with Winsock Kernel Functions). Completion from a pool thread is what
//!   Windows is allowed to do.
//! - [`run_blocking`] (the `run(irp, sock, work)` of wsk.rs): work that may
//!   block (a name resolution, for instance) runs on a thread of its own,
//!   as every request did before; [`Op::wait`] lets it wait for a socket and
//!   still see cancellation.
//!
//! Both share the same contract handling: IoMarkIrpPending and the cancel
//! routine before STATUS_PENDING is returned, the cancel behaviours
//! ([`super::CancelBehaviour`]), the socket's list of requests in flight
//! (which WskCloseSocket cancels and drains), and in the Sync completion mode
//! the work runs, and the IRP completes, on the caller's thread before the
//! call returns.

use std::cmp::Ordering as CmpOrdering;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::Instant;

use super::{config, destroy_socket, CancelBehaviour, ConnectCompletion, SockInner};
use crate::check::violation;
use crate::io::{complete, is_cancelled, mark_pending, set_cancel_routine};
use crate::irql;
use crate::nt::*;

/// What a readiness-driven request's step asks for next.
pub(crate) enum Step {
    /// Complete the IRP with this status and Information.
    Done(NTSTATUS, usize),
    /// As `Done`, and run this first, only if this completion is the IRP's
    /// (not if a cancel routine completed it inline meanwhile): what writes
    /// the caller's output buffers (WskAccept's addresses), which the
    /// caller may free as soon as the IRP has completed.
    DoneWith(NTSTATUS, usize, Deliver),
    /// Step again when `fd` has one of `events` (EPOLLIN, EPOLLOUT; errors
    /// and hang-ups always wake), or when woken.
    Wait(i32, u32),
    /// Step again at this instant, or when woken.
    Until(Instant),
    /// Step again only when woken ([`Op::wake`], [`Op::cancel`]).
    Park,
}

/// Output written at completion ([`Step::DoneWith`]).
pub(crate) type Deliver = Box<dyn FnOnce() + Send>;

/// A readiness-driven request's work: called on a pool thread (or, in the
/// Sync completion mode, on the caller's) each time the request may make
/// progress; must not block.
type Task = Box<dyn FnMut(&Arc<Op>) -> Step + Send>;

// Scheduling states of a readiness-driven Op.
const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
/// Running, and woken meanwhile: step again before parking.
const NOTIFIED: u8 = 2;
const WAITING: u8 = 3;
const DONE: u8 = 4;

/// One pending IRP.
pub(crate) struct Op {
    /// Driven by the reactor and the pool (else: a blocking worker, or a
    /// Sync-mode caller, polls its socket and `efd`).
    by_loop: bool,
    /// The eventfd through which a blocking worker or Sync-mode caller is
    /// woken; -1 for a request driven by the reactor (or if eventfd failed:
    /// then its waits recheck every 10 ms).
    efd: i32,
    cancelled: AtomicBool,
    /// Whoever completes the IRP claims it first: the worker, or a cancel
    /// routine that completes inline.
    completion_claimed: AtomicBool,
    /// A WskSocketConnect IRP (the one kind the Inline cancel behaviour
    /// completes inside IoCancelIrp).
    connect: bool,
    irp: usize,
    sock: Option<Arc<SockInner>>,
    sched: AtomicU8,
    /// epoll events seen since the step last looked ([`Op::take_ready`]).
    ready: AtomicU32,
    /// The descriptor whose waiter list holds this Op, or -1.
    waiting_fd: AtomicI32,
    task: Mutex<Option<Task>>,
}

impl Op {
    fn new(irp: PVOID, sock: Option<Arc<SockInner>>, connect: bool, with_eventfd: bool, task: Option<Task>) -> Op {
        let efd = if with_eventfd {
            // SAFETY: plain syscall.
            unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) }
        } else {
            -1
        };
        Op {
            by_loop: !with_eventfd,
            efd,
            cancelled: AtomicBool::new(false),
            completion_claimed: AtomicBool::new(false),
            connect,
            irp: irp as usize,
            sock,
            sched: AtomicU8::new(QUEUED),
            ready: AtomicU32::new(0),
            waiting_fd: AtomicI32::new(-1),
            task: Mutex::new(task),
        }
    }

    fn claim_completion(&self) -> bool {
        !self.completion_claimed.swap(true, Ordering::SeqCst)
    }

    /// Marks the request cancelled and wakes it.
    pub(crate) fn cancel(self: &Arc<Self>) {
        self.cancelled.store(true, Ordering::SeqCst);
        self.wake();
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }

    /// The epoll events the reactor saw for this request since the last call
    /// (0: woken for another reason, or spuriously).
    pub(crate) fn take_ready(&self) -> u32 {
        self.ready.swap(0, Ordering::SeqCst)
    }

    /// Makes the request look at its state again: a blocking worker's wait
    /// returns, a parked readiness-driven request is stepped again.
    pub(crate) fn wake(self: &Arc<Self>) {
        if !self.by_loop {
            if self.efd < 0 {
                return;
            }
            let one: u64 = 1;
            // SAFETY: writing 8 bytes to our eventfd.
            unsafe { libc::write(self.efd, (&one as *const u64).cast(), 8) };
            return;
        }
        let mut s = self.sched.load(Ordering::SeqCst);
        loop {
            let to = match s {
                WAITING => QUEUED,
                RUNNING => NOTIFIED,
                _ => return,
            };
            match self.sched.compare_exchange(s, to, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    if to == QUEUED {
                        engine().push(self.clone());
                    }
                    return;
                }
                Err(now) => s = now,
            }
        }
    }

    /// Blocking path: waits until `fd` has `events`, the op is cancelled, or
    /// `deadline`. Returns false if cancelled. (Used by blocking work given to
    /// `run` in wsk.rs, WskGetAddressInfo's; no socket operation needs it.)
    pub(crate) fn wait(&self, fd: i32, events: i16, deadline: Option<Instant>) -> bool {
        loop {
            if self.is_cancelled() {
                return false;
            }
            if self.poll_once(fd, events, deadline) {
                return true;
            }
            if self.is_cancelled() {
                return false;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return true;
            }
        }
    }

    /// One poll of `fd` (if >= 0) and the eventfd, until `deadline`. Returns
    /// whether `fd` is ready (its events are added to `ready`); a wake-up is
    /// consumed.
    fn poll_once(&self, fd: i32, events: i16, deadline: Option<Instant>) -> bool {
        let ms = deadline.map_or(-1, |d| {
            let left = d.saturating_duration_since(Instant::now());
            // Round up, so that a wait does not spin before its deadline.
            (left.as_micros().div_ceil(1000)).min(60_000) as i32
        });
        // Without an eventfd (EMFILE), nothing interrupts the poll: recheck.
        let ms = if self.efd < 0 && !(0..=10).contains(&ms) { 10 } else { ms };
        let mut fds =
            [libc::pollfd { fd, events, revents: 0 }, libc::pollfd { fd: self.efd, events: libc::POLLIN, revents: 0 }];
        let base = if fd < 0 { 1 } else { 0 };
        let used = &mut fds[base..];
        // SAFETY: `used` is a valid, writable array of used.len() entries.
        unsafe { libc::poll(used.as_mut_ptr(), used.len() as libc::nfds_t, ms) };
        if fds[1].revents != 0 {
            let mut v: u64 = 0;
            // SAFETY: reading 8 bytes from our non-blocking eventfd into `v`.
            unsafe { libc::read(self.efd, (&mut v as *mut u64).cast(), 8) };
        }
        if fd >= 0 && fds[0].revents != 0 {
            self.ready.fetch_or(fds[0].revents as u16 as u32, Ordering::SeqCst);
            return true;
        }
        false
    }
}

impl Drop for Op {
    fn drop(&mut self) {
        if self.efd >= 0 {
            // SAFETY: our eventfd.
            unsafe { libc::close(self.efd) };
        }
    }
}

// ---------------------------------------------------------------------------
// Registry of pending IRPs, cancellation, completion
// ---------------------------------------------------------------------------

static PENDING: Mutex<Option<HashMap<usize, Arc<Op>>>> = Mutex::new(None);

fn pending<R>(f: impl FnOnce(&mut HashMap<usize, Arc<Op>>) -> R) -> R {
    let mut g = PENDING.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// The cancel routine the provider sets on pending IRPs (IoCancelIrp has
/// already cleared it). Deferred: it signals the request, whose worker (or
/// pool thread) completes the IRP. Inline (connect IRPs): it completes the
/// IRP here, on the canceller's thread, and the worker then only undoes its
/// work. Ignored: nothing.
unsafe extern "system" fn provider_cancel(_device: PVOID, irp: PVOID) {
    let behaviour = config(|c| c.cancel);
    if behaviour == CancelBehaviour::Ignored {
        return;
    }
    let Some(op) = pending(|p| p.get(&(irp as usize)).cloned()) else { return };
    if behaviour == CancelBehaviour::Held {
        held_cancels(|h| h.push(op));
        return;
    }
    if behaviour == CancelBehaviour::Inline && op.connect && op.claim_completion() {
        pending(|p| p.remove(&(irp as usize)));
        // SAFETY: the IRP is provider-owned and this claim makes this the
        // only completion; its cancel routine was cleared by IoCancelIrp.
        unsafe { complete(irp, STATUS_CANCELLED, 0) };
    }
    op.cancel();
}

/// Requests whose cancel routine ran under [`CancelBehaviour::Held`].
static HELD_CANCELS: Mutex<Vec<Arc<Op>>> = Mutex::new(Vec::new());

fn held_cancels<R>(f: impl FnOnce(&mut Vec<Arc<Op>>) -> R) -> R {
    f(&mut HELD_CANCELS.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Cancels the requests whose cancellation was held; returns how many.
pub(crate) fn release_held_cancels() -> usize {
    let held = held_cancels(std::mem::take);
    for op in &held {
        op.cancel();
    }
    held.len()
}

/// Closes waiting for a socket's requests to drain ([`idle_or_notify`]),
/// by SockInner address; `CLOSING` counts them so that a completion looks
/// here only when a close waits.
static CLOSERS: Mutex<Option<HashMap<usize, Arc<Op>>>> = Mutex::new(None);
static CLOSING: AtomicUsize = AtomicUsize::new(0);

fn closers<R>(f: impl FnOnce(&mut HashMap<usize, Arc<Op>>) -> R) -> R {
    let mut g = CLOSERS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// For WskCloseSocket's step: true if the socket has no request in flight;
/// otherwise `closer` is woken when the last one completes.
pub(crate) fn idle_or_notify(sock: &Arc<SockInner>, closer: &Arc<Op>) -> bool {
    let v = sock.inflight.lock().unwrap_or_else(|e| e.into_inner());
    let key = Arc::as_ptr(sock) as usize;
    if v.is_empty() {
        if closers(|c| c.remove(&key)).is_some() {
            CLOSING.fetch_sub(1, Ordering::SeqCst);
        }
        return true;
    }
    if closers(|c| c.insert(key, closer.clone())).is_none() {
        CLOSING.fetch_add(1, Ordering::SeqCst);
    }
    false
}

/// Wakes every request in flight on `sock` (an abortive disconnect ends a
/// graceful one that hangs).
pub(crate) fn wake_inflight(sock: &SockInner) {
    let v = sock.inflight.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for op in &v {
        op.wake();
    }
}

/// Cancels every request in flight on `sock` (WskCloseSocket).
pub(crate) fn cancel_inflight(sock: &SockInner) {
    let v = sock.inflight.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for op in &v {
        op.cancel();
    }
}

/// Completes the request's IRP (once), or, if a cancel routine completed it
/// inline meanwhile, undoes the socket a connect made.
fn finish(op: &Arc<Op>, status: NTSTATUS, info: usize) {
    finish_with(op, status, info, None);
}

/// [`finish`], running `deliver` first if this completion is the IRP's.
fn finish_with(op: &Arc<Op>, status: NTSTATUS, info: usize, deliver: Option<Deliver>) {
    if !op.claim_completion() {
        // Completed inside IoCancelIrp already: undo what the work made (and
        // write none of the caller's buffers: they may be gone); the request
        // is no longer in flight on its socket (a WskAccept's: its listening
        // socket's close waits for that).
        if op.connect && status >= 0 && info != 0 {
            destroy_socket(info);
        }
        leave_socket(op);
        return;
    }
    if let Some(deliver) = deliver {
        deliver();
    }
    let irp = op.irp as PVOID;
    // SAFETY: the IRP is provider-owned until `complete`.
    unsafe { set_cancel_routine(irp, None) };
    pending(|p| p.remove(&op.irp));
    leave_socket(op);
    // SAFETY: provider-owned IRP, completed exactly once.
    unsafe { complete(irp, status, info) };
}

/// The request is no longer in flight on its socket: a close waiting for
/// the socket's requests to drain is woken by the last one.
fn leave_socket(op: &Arc<Op>) {
    if let Some(s) = &op.sock {
        let mut v = s.inflight.lock().unwrap_or_else(|e| e.into_inner());
        v.retain(|o| !Arc::ptr_eq(o, op));
        if v.is_empty() && CLOSING.load(Ordering::SeqCst) != 0 {
            if let Some(closer) = closers(|c| c.remove(&(Arc::as_ptr(s) as usize))) {
                CLOSING.fetch_sub(1, Ordering::SeqCst);
                closer.wake();
            }
        }
        s.idle.notify_all();
    }
}

/// Registers a taken IRP's request; in the asynchronous modes marks the IRP
/// pending and sets the cancel routine (seeing a cancel that came first).
/// Returns whether the request completes on the caller's thread (Sync).
fn register(op: &Arc<Op>) -> bool {
    pending(|p| p.insert(op.irp, op.clone()));
    if let Some(s) = &op.sock {
        s.inflight.lock().unwrap_or_else(|e| e.into_inner()).push(op.clone());
    }
    if config(|c| c.mode) == ConnectCompletion::Sync {
        return true;
    }
    let irp = op.irp as PVOID;
    // SAFETY: a live IRP the provider owns (taken, not yet completed).
    unsafe { mark_pending(irp) };
    // SAFETY: as above; only the provider sets its cancel routine.
    unsafe { set_cancel_routine(irp, Some(provider_cancel)) };
    // SAFETY: as above.
    if unsafe { is_cancelled(irp) } {
        op.cancelled.store(true, Ordering::SeqCst);
    }
    false
}

/// Stack of a blocking worker thread (completion routines and callbacks run
/// on it; Windows kernel stacks are 24 KiB on x64, test callbacks need more).
const WORKER_STACK: usize = 128 * 1024;

/// Stack of a pool thread (the same job as a blocking worker's).
const POOL_STACK: usize = 256 * 1024;

/// Runs `work`, which may block, for a provider-owned IRP and completes it:
/// on a thread of its own (returns STATUS_PENDING), or inline in Sync mode.
/// `connect`: a WskSocketConnect IRP (if a cancel routine completed it
/// inline meanwhile, the socket the work made is closed again).
pub(crate) fn run_blocking(
    irp: PVOID,
    sock: Option<Arc<SockInner>>,
    connect: bool,
    work: impl FnOnce(&Op) -> (NTSTATUS, usize) + Send + 'static,
) -> NTSTATUS {
    let op = Arc::new(Op::new(irp, sock, connect, true, None));
    if register(&op) {
        let (status, info) = work(&op);
        finish(&op, status, info);
        return status;
    }
    let spawned = std::thread::Builder::new().stack_size(WORKER_STACK).spawn(move || {
        let (status, info) = work(&op);
        irql::with_irql(DISPATCH_LEVEL, || finish(&op, status, info));
    });
    if let Err(e) = spawned {
        violation(format!("host kernel: cannot start a provider thread: {e}"));
    }
    STATUS_PENDING
}

/// Runs a non-blocking, readiness-driven `task` for a provider-owned IRP:
/// on the pool, completing the IRP at DISPATCH_LEVEL from a pool thread
/// (returns STATUS_PENDING), or on the caller's thread in Sync mode.
pub(crate) fn run_ready(
    irp: PVOID,
    sock: Option<Arc<SockInner>>,
    connect: bool,
    task: impl FnMut(&Arc<Op>) -> Step + Send + 'static,
) -> NTSTATUS {
    let sync = config(|c| c.mode) == ConnectCompletion::Sync;
    // Sync mode: the caller's thread waits with poll() on the socket and an
    // eventfd, through which it is woken.
    let op = Arc::new(Op::new(irp, sock, connect, sync, Some(Box::new(task))));
    if register(&op) {
        let mut task = op.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut deliver = None;
        let (status, info) = loop {
            let Some(t) = task.as_mut() else { break (STATUS_UNSUCCESSFUL, 0) };
            match t(&op) {
                Step::Done(status, info) => break (status, info),
                Step::DoneWith(status, info, d) => {
                    deliver = Some(d);
                    break (status, info);
                }
                Step::Wait(fd, events) => {
                    op.poll_once(fd, events as i16, None);
                }
                Step::Until(t) => {
                    op.poll_once(-1, 0, Some(t));
                }
                Step::Park => {
                    op.poll_once(-1, 0, None);
                }
            }
        };
        drop(task);
        finish_with(&op, status, info, deliver);
        return status;
    }
    engine().push(op);
    STATUS_PENDING
}

// ---------------------------------------------------------------------------
// The reactor and the completion pool
// ---------------------------------------------------------------------------

/// The epoll token of the reactor's own wake-up eventfd.
const WAKE_TOKEN: u64 = u64::MAX;
const SHARDS: usize = 64;

#[derive(Default)]
struct FdEntry {
    /// Whether the descriptor is (believed to be) in the epoll set.
    registered: bool,
    /// Incremented at each EPOLL_CTL_ADD and carried in the event's token, so
    /// that an event of an earlier descriptor with the same number (closed,
    /// and the number reused, while the event was in the reactor's batch)
    /// wakes nobody: a stale "writable" would end a connect too early.
    generation: u32,
    waiters: Vec<(u32, Arc<Op>)>,
}

struct Timer {
    at: Instant,
    seq: u64,
    op: Arc<Op>,
}

impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        (self.at, self.seq) == (o.at, o.seq)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    // Reversed: BinaryHeap is a max-heap, the earliest timer goes first.
    fn cmp(&self, o: &Self) -> CmpOrdering {
        (o.at, o.seq).cmp(&(self.at, self.seq))
    }
}

struct Engine {
    epfd: i32,
    wake_fd: i32,
    fds: Vec<Mutex<HashMap<i32, FdEntry>>>,
    timers: Mutex<(BinaryHeap<Timer>, u64)>,
    /// Queued requests, and the number of pool threads waiting for one.
    queue: Mutex<(VecDeque<Arc<Op>>, usize)>,
    work: Condvar,
}

static ENGINE: OnceLock<&'static Engine> = OnceLock::new();

/// Number of pool threads besides the reactor (which also steps and
/// completes the requests it finds ready): the machine's cores, at least 2,
/// at most 4.
fn pool_size() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get()).clamp(2, 4)
}

fn engine() -> &'static Engine {
    ENGINE.get_or_init(|| {
        // SAFETY: plain syscall.
        let epfd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        // SAFETY: plain syscall.
        let wake_fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if epfd < 0 || wake_fd < 0 {
            violation("host kernel: cannot create the provider's epoll instance");
        }
        let mut ev = libc::epoll_event { events: libc::EPOLLIN as u32, u64: WAKE_TOKEN };
        // SAFETY: `ev` is a valid epoll_event; both descriptors are ours.
        unsafe { libc::epoll_ctl(epfd, libc::EPOLL_CTL_ADD, wake_fd, &mut ev) };
        let e: &'static Engine = Box::leak(Box::new(Engine {
            epfd,
            wake_fd,
            fds: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            timers: Mutex::new((BinaryHeap::new(), 0)),
            queue: Mutex::new((VecDeque::new(), 0)),
            work: Condvar::new(),
        }));
        let started =
            std::thread::Builder::new().name("wsk-reactor".into()).stack_size(POOL_STACK).spawn(move || e.reactor());
        if let Err(err) = started {
            violation(format!("host kernel: cannot start the provider's reactor: {err}"));
        }
        for i in 0..pool_size() {
            let started = std::thread::Builder::new()
                .name(format!("wsk-pool-{i}"))
                .stack_size(POOL_STACK)
                .spawn(move || e.pool_thread());
            if let Err(err) = started {
                violation(format!("host kernel: cannot start a provider pool thread: {err}"));
            }
        }
        e
    })
}

impl Engine {
    fn shard(&self, fd: i32) -> &Mutex<HashMap<i32, FdEntry>> {
        &self.fds[fd.unsigned_abs() as usize % SHARDS]
    }

    fn push(&self, op: Arc<Op>) {
        let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        q.0.push_back(op);
        let idle = q.1 != 0;
        drop(q);
        // A futex wake only when a pool thread sleeps.
        if idle {
            self.work.notify_one();
        }
    }

    fn wake_reactor(&self) {
        let one: u64 = 1;
        // SAFETY: writing 8 bytes to our eventfd.
        unsafe { libc::write(self.wake_fd, (&one as *const u64).cast(), 8) };
    }

    /// (Re)arms `fd` for the union of its waiters' events, one shot.
    fn arm(&self, fd: i32, entry: &mut FdEntry) -> bool {
        let events = entry.waiters.iter().fold(0, |a, (e, _)| a | e) | libc::EPOLLONESHOT as u32;
        let ctl = |op: i32, generation: u32| {
            let token = u64::from(generation) << 32 | u64::from(fd as u32);
            let mut ev = libc::epoll_event { events, u64: token };
            // SAFETY: `ev` is a valid epoll_event; `fd` is a descriptor a
            // request waits on, open while it waits.
            unsafe { libc::epoll_ctl(self.epfd, op, fd, &mut ev) }
        };
        let mut rc = -1;
        if entry.registered {
            rc = ctl(libc::EPOLL_CTL_MOD, entry.generation);
        }
        if rc != 0 {
            // First time, or the descriptor was closed and its number
            // reused (ENOENT): a new registration, a new generation.
            entry.generation = entry.generation.wrapping_add(1);
            rc = ctl(libc::EPOLL_CTL_ADD, entry.generation);
            if rc != 0 {
                // EEXIST: registered under a belief lost after a failure.
                rc = ctl(libc::EPOLL_CTL_MOD, entry.generation);
            }
        }
        entry.registered = rc == 0;
        rc == 0
    }

    /// Makes `op` wait for `events` on `fd`.
    fn wait_fd(&self, op: &Arc<Op>, fd: i32, events: u32) {
        let mut shard = self.shard(fd).lock().unwrap_or_else(|e| e.into_inner());
        let entry = shard.entry(fd).or_default();
        entry.waiters.retain(|(_, o)| !Arc::ptr_eq(o, op));
        entry.waiters.push((events, op.clone()));
        op.waiting_fd.store(fd, Ordering::SeqCst);
        if !self.arm(fd, entry) {
            // Not pollable (closed?): let the step see the error itself.
            entry.waiters.retain(|(_, o)| !Arc::ptr_eq(o, op));
            drop(shard);
            op.ready.fetch_or(libc::EPOLLERR as u32, Ordering::SeqCst);
            op.wake();
        }
    }

    /// Forgets `op`'s wait on its descriptor (it completed).
    fn unwait_fd(&self, op: &Arc<Op>) {
        let fd = op.waiting_fd.swap(-1, Ordering::SeqCst);
        if fd < 0 {
            return;
        }
        let mut shard = self.shard(fd).lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = shard.get_mut(&fd) {
            entry.waiters.retain(|(_, o)| !Arc::ptr_eq(o, op));
        }
    }

    fn add_timer(&self, op: &Arc<Op>, at: Instant) {
        let mut t = self.timers.lock().unwrap_or_else(|e| e.into_inner());
        t.1 += 1;
        let seq = t.1;
        let first = t.0.peek().is_none_or(|top| at < top.at);
        t.0.push(Timer { at, seq, op: op.clone() });
        drop(t);
        if first {
            self.wake_reactor();
        }
    }

    fn reactor(&self) {
        const BATCH: usize = 512;
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; BATCH];
        let mut mine = Vec::new();
        loop {
            let timeout = {
                let t = self.timers.lock().unwrap_or_else(|e| e.into_inner());
                t.0.peek().map_or(-1, |top| {
                    let left = top.at.saturating_duration_since(Instant::now());
                    left.as_micros().div_ceil(1000).min(60_000) as i32
                })
            };
            // SAFETY: `events` is a writable array of BATCH epoll_events.
            let n = unsafe { libc::epoll_wait(self.epfd, events.as_mut_ptr(), BATCH as i32, timeout) };
            for ev in events.iter().take(n.max(0) as usize) {
                let (bits, token) = (ev.events, ev.u64);
                if token == WAKE_TOKEN {
                    let mut v: u64 = 0;
                    // SAFETY: reading 8 bytes from our eventfd into `v`.
                    unsafe { libc::read(self.wake_fd, (&mut v as *mut u64).cast(), 8) };
                    continue;
                }
                self.fd_ready(token as u32 as i32, (token >> 32) as u32, bits, &mut mine);
            }
            for op in mine.drain(..) {
                self.step(op);
            }
            self.expire_timers();
        }
    }

    /// The requests waiting on `fd` that `bits` wakes: those the reactor
    /// takes to step itself go to `mine` (no hand-over to the pool: the
    /// reactor thread is one of the completing threads).
    fn fd_ready(&self, fd: i32, generation: u32, bits: u32, mine: &mut Vec<Arc<Op>>) {
        let always = (libc::EPOLLERR | libc::EPOLLHUP) as u32;
        let mut ready = Vec::new();
        {
            let mut shard = self.shard(fd).lock().unwrap_or_else(|e| e.into_inner());
            let Some(entry) = shard.get_mut(&fd) else { return };
            if entry.generation != generation {
                return;
            }
            let mut i = 0;
            while i < entry.waiters.len() {
                if entry.waiters[i].0 & bits != 0 || bits & always != 0 {
                    ready.push(entry.waiters.swap_remove(i).1);
                } else {
                    i += 1;
                }
            }
            if !entry.waiters.is_empty() {
                self.arm(fd, entry);
            }
        }
        for op in ready {
            op.ready.fetch_or(bits, Ordering::SeqCst);
            if op.by_loop && op.sched.compare_exchange(WAITING, QUEUED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                mine.push(op);
            } else {
                op.wake();
            }
        }
    }

    fn expire_timers(&self) {
        let now = Instant::now();
        let mut due = Vec::new();
        {
            let mut t = self.timers.lock().unwrap_or_else(|e| e.into_inner());
            while t.0.peek().is_some_and(|top| top.at <= now) {
                if let Some(top) = t.0.pop() {
                    due.push(top.op);
                }
            }
        }
        for op in due {
            op.wake();
        }
    }

    fn pool_thread(&self) {
        loop {
            let op = {
                let mut q = self.queue.lock().unwrap_or_else(|e| e.into_inner());
                loop {
                    if let Some(op) = q.0.pop_front() {
                        break op;
                    }
                    q.1 += 1;
                    q = self.work.wait(q).unwrap_or_else(|e| e.into_inner());
                    q.1 -= 1;
                }
            };
            self.step(op);
        }
    }

    /// Steps a queued request until it waits or completes.
    fn step(&self, op: Arc<Op>) {
        op.sched.store(RUNNING, Ordering::SeqCst);
        let mut slot = op.task.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let Some(task) = slot.as_mut() else { return };
            let step = task(&op);
            let (done, deliver) = match step {
                Step::Done(status, info) => (Some((status, info)), None),
                Step::DoneWith(status, info, d) => (Some((status, info)), Some(d)),
                Step::Wait(fd, events) => {
                    self.wait_fd(&op, fd, events);
                    (None, None)
                }
                Step::Until(at) => {
                    self.add_timer(&op, at);
                    (None, None)
                }
                Step::Park => (None, None),
            };
            if let Some((status, info)) = done {
                op.sched.store(DONE, Ordering::SeqCst);
                // The work's captures (buffers, socket references) go
                // before the completion, as a finished worker's did.
                let task = slot.take();
                drop(slot);
                drop(task);
                self.unwait_fd(&op);
                irql::with_irql(DISPATCH_LEVEL, || finish_with(&op, status, info, deliver));
                return;
            }
            // Park, unless woken while running: then step again.
            if op.sched.compare_exchange(RUNNING, WAITING, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                return;
            }
            op.sched.store(RUNNING, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The blocking path (`run` in wsk.rs) that no socket operation uses any
    //! more but WSK functions added later (a name resolution) will: its work
    //! waits with [`Op::wait`], completes on its own thread at
    //! DISPATCH_LEVEL, and still sees IoCancelIrp.

    use super::*;
    use crate::io::{take, IoAllocateIrp, IoCancelIrp, IoFreeIrp};
    use std::sync::atomic::AtomicI32;

    static SEEN: AtomicI32 = AtomicI32::new(0);
    static COMPLETED: AtomicBool = AtomicBool::new(false);
    static SEEN_IRQL: AtomicU8 = AtomicU8::new(0xFF);

    unsafe extern "system" fn done(_dev: PVOID, irp: PVOID, _ctx: PVOID) -> NTSTATUS {
        // SAFETY: the completed IRP, still allocated (the routine returns
        // STATUS_MORE_PROCESSING_REQUIRED and the test frees it later).
        let status: NTSTATUS = unsafe { rd(irp, IRP_IOSTATUS_STATUS) };
        SEEN_IRQL.store(irql::current(), Ordering::SeqCst);
        SEEN.store(status, Ordering::SeqCst);
        COMPLETED.store(true, Ordering::SeqCst);
        STATUS_MORE_PROCESSING_REQUIRED
    }

    /// A fresh IRP with `done` as its completion routine, taken by the provider.
    fn irp() -> PVOID {
        // SAFETY: no preconditions at PASSIVE_LEVEL.
        let irp = unsafe { IoAllocateIrp(1, 0) };
        assert!(!irp.is_null());
        // SAFETY: a fresh IRP with one stack location: it is just below
        // CurrentStackLocation, inside the IRP.
        let next = unsafe { rd::<usize>(irp, IRP_CURRENT_STACK_LOCATION) } - STACK_SIZE;
        // SAFETY: as above; CompletionRoutine is in that stack location.
        unsafe { wr(next as PVOID, STACK_COMPLETION_ROUTINE, done as CompletionRoutine as usize) };
        // SAFETY: as above; Control is in that stack location.
        unsafe { wr(next as PVOID, STACK_CONTROL, SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL) };
        // SAFETY: a live IRP of ours, handed to the provider.
        assert!(unsafe { take(irp, "test") });
        irp
    }

    fn wait_seen() -> NTSTATUS {
        let t = Instant::now();
        while !COMPLETED.swap(false, Ordering::SeqCst) {
            assert!(t.elapsed() < std::time::Duration::from_secs(5), "no completion");
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        SEEN.swap(0, Ordering::SeqCst)
    }

    #[test]
    fn blocking_work_waits_for_its_socket_completes_at_dispatch_and_sees_cancel() {
        let k = crate::Session::begin();
        let mut fds = [0i32; 2];
        // SAFETY: `fds` is a writable array of two ints.
        assert_eq!(unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_STREAM, 0, fds.as_mut_ptr()) }, 0);
        let fd = fds[0];

        // Readiness: the work blocks until the peer writes.
        let a = irp();
        let st = run_blocking(a, None, false, move |op| {
            if !op.wait(fd, libc::POLLIN, None) {
                return (STATUS_CANCELLED, 0);
            }
            (STATUS_SUCCESS, 7)
        });
        assert_eq!(st, STATUS_PENDING);
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(!COMPLETED.load(Ordering::SeqCst), "completed before its socket was ready");
        // SAFETY: one byte from a local to our socket pair.
        assert_eq!(unsafe { libc::write(fds[1], b"x".as_ptr().cast(), 1) }, 1);
        assert_eq!(wait_seen(), STATUS_SUCCESS);
        assert_eq!(SEEN_IRQL.load(Ordering::SeqCst), DISPATCH_LEVEL);
        // SAFETY: the completed IRP, ours again, freed once.
        unsafe { IoFreeIrp(a) };

        // Cancellation: a wait that never ends by itself.
        let b = irp();
        let st = run_blocking(b, None, false, move |op| {
            if !op.wait(-1, 0, None) {
                return (STATUS_CANCELLED, 0);
            }
            (STATUS_SUCCESS, 0)
        });
        assert_eq!(st, STATUS_PENDING);
        // SAFETY: a pending IRP of ours.
        unsafe { IoCancelIrp(b) };
        assert_eq!(wait_seen(), STATUS_CANCELLED);
        // SAFETY: the completed IRP, ours again, freed once.
        unsafe { IoFreeIrp(b) };

        for f in fds {
            // SAFETY: our descriptors.
            unsafe { libc::close(f) };
        }
        k.finish();
    }
}
