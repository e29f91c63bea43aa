//! KEVENT: KeInitializeEvent, KeSetEvent, KeClearEvent, KeWaitForSingleObject.
//!
//! The event's state lives in the caller's KEVENT storage (DISPATCHER_HEADER
//! layout: Type, Size, SignalState), so an event on a driver's stack works
//! as on Windows. Waiters sleep on one global condition variable; KeSetEvent
//! changes the state and notifies while holding its mutex, so a woken waiter
//! cannot return (and pop the stack holding the event) before KeSetEvent has
//! finished touching the event.
//!
//! IRQL rules (Microsoft Learn, KeWaitForSingleObject): callers run at
//! IRQL <= DISPATCH_LEVEL, and at <= APC_LEVEL unless the timeout is zero.
//! KeSetEvent with Wait = FALSE: IRQL <= DISPATCH_LEVEL.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::check::violation;
use crate::irql;
use crate::nt::*;

/// The wait lists: event address -> (threads waiting, generation). Guarded by
/// the one lock every event operation takes, like the dispatcher lock.
static LOCK: Mutex<Option<HashMap<usize, (usize, u64)>>> = Mutex::new(None);
static WAKE: Condvar = Condvar::new();
/// How long a waiter whose event was re-initialized under it (its wait
/// orphaned: on Windows it never wakes) keeps waiting before the host kernel
/// lets it go, so that the test fails on the violation instead of hanging.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

fn signal_state(event: PVOID) -> &'static std::sync::atomic::AtomicI32 {
    // SAFETY: `event` is an initialized, live KEVENT (checked by callers via
    // `initialized`), and SignalState (offset 4) is inside its 24 bytes.
    let field = unsafe { event.cast::<u8>().add(EVENT_SIGNAL_STATE) };
    // SAFETY: SignalState is a 4-byte aligned LONG of that live KEVENT (the
    // KEVENT is 8-byte aligned), accessed concurrently only through this view.
    unsafe { std::sync::atomic::AtomicI32::from_ptr(field.cast()) }
}

fn initialized(event: PVOID, who: &str) -> bool {
    if event.is_null() {
        violation(format!("{who}: NULL event"));
        return false;
    }
    // SAFETY: non-null; the caller passed a KEVENT, whose Header.Type is at 0.
    let ty: u8 = unsafe { rd(event, EVENT_TYPE) };
    // SAFETY: as above; Header.Size is at 2.
    let size: u8 = unsafe { rd(event, EVENT_SIZE) };
    if (ty > 1 && ty != crate::thread::THREAD_OBJECT_TYPE) || size != EVENT_SIZE_ULONGS {
        violation(format!("{who}: event at {event:p} was never initialized with KeInitializeEvent"));
        return false;
    }
    true
}

#[no_mangle]
pub unsafe extern "system" fn KeInitializeEvent(event: PVOID, ty: u32, state: u8) {
    if event.is_null() || ty > 1 {
        violation("KeInitializeEvent: NULL event or bad EVENT_TYPE");
        return;
    }
    // KeInitializeEvent empties the wait list (ReactOS ntoskrnl/ke/eventobj.c,
    // InitializeListHead(&Event->Header.WaitListHead)): a thread waiting on
    // the event never wakes.
    let mut g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let lists = g.get_or_insert_with(HashMap::new);
    if let Some((waiters, generation)) = lists.get_mut(&(event as usize)) {
        if *waiters > 0 {
            violation(format!(
                "KeInitializeEvent on event {event:p} while {waiters} thread(s) wait on it: their wait is orphaned \
                 (on Windows they never wake)"
            ));
            *generation += 1;
        }
    }
    drop(g);
    // SAFETY: the caller provides 24 (0x18) writable bytes for a KEVENT.
    unsafe { std::ptr::write_bytes(event.cast::<u8>(), 0, 0x18) };
    // SAFETY: as above; Header.Type is at 0 of those bytes.
    unsafe { wr(event, EVENT_TYPE, ty as u8) };
    // SAFETY: as above; Header.Size is at 2.
    unsafe { wr(event, EVENT_SIZE, EVENT_SIZE_ULONGS) };
    // SAFETY: as above; Header.SignalState is at 4.
    unsafe { wr(event, EVENT_SIGNAL_STATE, i32::from(state != 0)) };
}

#[no_mangle]
pub unsafe extern "system" fn KeSetEvent(event: PVOID, _increment: i32, wait: u8) -> i32 {
    if irql::current() > DISPATCH_LEVEL || (wait != 0 && irql::current() > APC_LEVEL) {
        violation("KeSetEvent above its IRQL limit");
    }
    if !initialized(event, "KeSetEvent") {
        return 0;
    }
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let prev = signal_state(event).swap(1, std::sync::atomic::Ordering::SeqCst);
    WAKE.notify_all();
    drop(g);
    crate::image::delay_after_signal();
    prev
}

/// Signals a dispatcher object the host kernel owns (a thread object at its
/// termination).
pub(crate) fn signal(object: PVOID) {
    let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    signal_state(object).store(1, std::sync::atomic::Ordering::SeqCst);
    WAKE.notify_all();
}

#[no_mangle]
pub unsafe extern "system" fn KeClearEvent(event: PVOID) {
    if initialized(event, "KeClearEvent") {
        signal_state(event).store(0, std::sync::atomic::Ordering::SeqCst);
    }
}

/// 100 ns units between 1601-01-01 and 1970-01-01.
const EPOCH_DIFF_100NS: i64 = 116_444_736_000_000_000;

fn deadline_from(timeout: *const i64) -> Option<Instant> {
    if timeout.is_null() {
        return None;
    }
    // SAFETY: non-null LARGE_INTEGER supplied by the caller.
    let t = unsafe { timeout.read() };
    let now = Instant::now();
    if t <= 0 {
        // Relative, in 100 ns units.
        Some(now + Duration::from_nanos(t.unsigned_abs().saturating_mul(100)))
    } else {
        // Absolute system time (100 ns since 1601).
        let unix_100ns = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() / 100).unwrap_or(0) as i64;
        let left = (t - EPOCH_DIFF_100NS - unix_100ns).max(0);
        Some(now + Duration::from_nanos((left as u64).saturating_mul(100)))
    }
}

/// The longest finite relative timeout (100 ns units) any
/// KeWaitForSingleObject was given since the session began.
static LONGEST_RELATIVE: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);

/// The longest finite relative timeout any KeWaitForSingleObject was given
/// since the session began: shows whether "no deadline" reached the kernel
/// as an infinite wait (NULL timeout) or as a long finite one.
pub fn longest_finite_wait() -> Duration {
    let units = LONGEST_RELATIVE.load(std::sync::atomic::Ordering::SeqCst);
    Duration::from_nanos(u64::try_from(units).unwrap_or(0).saturating_mul(100))
}

pub(crate) fn reset_longest_finite_wait() {
    LONGEST_RELATIVE.store(0, std::sync::atomic::Ordering::SeqCst);
}

/// How many threads wait on the dispatcher object at `object` now (for
/// tests that must know a waiter is there before they go on).
pub fn waiters_on(object: *const std::ffi::c_void) -> usize {
    let g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    g.as_ref().and_then(|m| m.get(&(object as usize))).map_or(0, |e| e.0)
}

/// Threads inside a KeWaitForSingleObject with a finite timeout, and
/// whether a test asked that wait to time out now ([`expire_wait_of`]).
/// Locked inside LOCK by waiters, never the other way round.
static FINITE_WAITS: Mutex<Option<HashMap<std::thread::ThreadId, bool>>> = Mutex::new(None);

fn finite_waits<R>(f: impl FnOnce(&mut HashMap<std::thread::ThreadId, bool>) -> R) -> R {
    f(FINITE_WAITS.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new))
}

/// Makes `thread`'s KeWaitForSingleObject with a finite timeout return
/// STATUS_TIMEOUT now, as if its deadline had passed (on Windows a waiter
/// can see its deadline pass at any moment: it may have been preempted for
/// that long). Waits up to `within` for the thread to be in such a wait;
/// false if it never was. A wait whose object is signalled still returns
/// STATUS_SUCCESS. For tests that need "the deadline passes now, while X"
/// without sleeping until it does.
pub fn expire_wait_of(thread: std::thread::ThreadId, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    loop {
        let found = finite_waits(|w| w.get_mut(&thread).map(|expire| *expire = true).is_some());
        if found {
            // Under LOCK: the waiter either has not checked its flag yet or
            // is in WAKE.wait, which this reaches.
            let _g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
            WAKE.notify_all();
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

thread_local! {
    static WAITS_ON_THIS_THREAD: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// How many KeWaitForSingleObject calls the calling thread has made (for
/// tests counting the waits of one synchronous call).
pub fn waits_on_this_thread() -> u64 {
    WAITS_ON_THIS_THREAD.with(|w| w.get())
}

#[no_mangle]
pub unsafe extern "system" fn KeWaitForSingleObject(
    object: PVOID,
    _reason: u32,
    _mode: i8,
    _alertable: u8,
    timeout: *mut i64,
) -> NTSTATUS {
    WAITS_ON_THIS_THREAD.with(|w| w.set(w.get() + 1));
    // SAFETY: a non-null timeout is a LARGE_INTEGER supplied by the caller.
    let zero_timeout = !timeout.is_null() && unsafe { timeout.read() } == 0;
    if !timeout.is_null() {
        // SAFETY: as above.
        let t = unsafe { timeout.read() };
        if t < 0 {
            LONGEST_RELATIVE.fetch_max(t.saturating_neg(), std::sync::atomic::Ordering::SeqCst);
        }
    }
    let irql = irql::current();
    if irql > DISPATCH_LEVEL || (!zero_timeout && irql > APC_LEVEL) {
        violation(format!(
            "KeWaitForSingleObject at IRQL {irql} with a non-zero timeout (IRQL_NOT_LESS_OR_EQUAL on Windows)"
        ));
    }
    if !initialized(object, "KeWaitForSingleObject") {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: an initialized KEVENT (checked above); Type is its first byte.
    let synchronization = unsafe { rd::<u8>(object, EVENT_TYPE) } == 1;
    let deadline = deadline_from(timeout);
    let me = std::thread::current().id();
    if deadline.is_some() {
        finite_waits(|w| w.insert(me, false));
    }
    let key = object as usize;
    let mut g = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let generation = {
        let entry = g.get_or_insert_with(HashMap::new).entry(key).or_insert((0, 0));
        entry.0 += 1;
        entry.1
    };
    let mut orphaned_at: Option<Instant> = None;
    let result = loop {
        let current = g.get_or_insert_with(HashMap::new).get(&key).map_or(generation, |e| e.1);
        if current != generation && orphaned_at.is_none() {
            orphaned_at = Some(Instant::now());
        }
        let state = signal_state(object);
        if orphaned_at.is_none() && state.load(std::sync::atomic::Ordering::SeqCst) != 0 {
            if synchronization {
                state.store(0, std::sync::atomic::Ordering::SeqCst);
            }
            break STATUS_SUCCESS;
        }
        let now = Instant::now();
        if let Some(at) = orphaned_at {
            if now >= at + ORPHAN_GRACE {
                break STATUS_SUCCESS;
            }
        }
        if deadline.is_some() && finite_waits(|w| w.get(&me).copied().unwrap_or(false)) {
            break STATUS_TIMEOUT;
        }
        let limit = match (deadline, orphaned_at) {
            (Some(d), _) if now >= d => break STATUS_TIMEOUT,
            (Some(d), None) => d - now,
            (Some(d), Some(at)) => (d - now).min(at + ORPHAN_GRACE - now),
            (None, Some(at)) => at + ORPHAN_GRACE - now,
            (None, None) => Duration::from_secs(3600),
        };
        g = WAKE.wait_timeout(g, limit).unwrap_or_else(|e| e.into_inner()).0;
    };
    if let Some(entry) = g.get_or_insert_with(HashMap::new).get_mut(&key) {
        entry.0 -= 1;
        if entry.0 == 0 {
            g.get_or_insert_with(HashMap::new).remove(&key);
        }
    }
    drop(g);
    if deadline.is_some() {
        finite_waits(|w| w.remove(&me));
    }
    result
}
