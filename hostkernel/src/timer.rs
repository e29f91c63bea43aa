//! KTIMER and KDPC: KeInitializeTimer, KeInitializeDpc, KeSetTimer,
//! KeCancelTimer. One timer thread keeps the queue; an expired timer leaves
//! the queue before its DPC runs (at DISPATCH_LEVEL, on the timer thread), so
//! KeCancelTimer returns TRUE exactly when it removed a queued timer and the
//! DPC will not run for that expiry — the contract drivers rely on
//! (Microsoft Learn, KeCancelTimer: "If the timer object is currently in the
//! system timer queue, it is removed from the queue ... returns TRUE").
//!
//! KDPC layout (x64): DeferredRoutine at 0x18, DeferredContext at 0x20.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::check::violation;
use crate::irql;
use crate::nt::*;

const KDPC_ROUTINE: usize = 0x18;
const KDPC_CONTEXT: usize = 0x20;
/// Timer type byte (DISPATCHER_HEADER.Type) KeInitializeTimer writes:
/// TimerNotificationObject.
const TIMER_TYPE: u8 = 8;

struct Queued {
    due: Instant,
    dpc: usize,
}

static QUEUE: Mutex<Option<HashMap<usize, Queued>>> = Mutex::new(None);
/// DPCs taken off the queue and not yet returned.
static DPCS_RUNNING: AtomicUsize = AtomicUsize::new(0);
/// Wine 8's KeCancelTimer (dlls/ntoskrnl.exe/sync.c) returns the timer's
/// `Header.Inserted`, which only KeCancelTimer clears: TRUE for any timer set
/// since the last cancel, also after it fired and its DPC ran (Windows
/// answers FALSE then: "If the timer object is currently in the system timer
/// queue, it is removed ... returns TRUE", Microsoft Learn, KeCancelTimer).
/// With this switch on the host kernel does the same. Off by default and at
/// every [`crate::Session`] start.
static WINE_CANCEL_TIMER: AtomicBool = AtomicBool::new(false);
/// Timers set since their last KeCancelTimer (Wine's `Header.Inserted`).
static INSERTED: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

/// Makes KeCancelTimer behave as Wine 8's (see [`WINE_CANCEL_TIMER`]).
pub fn set_cancel_timer_like_wine(on: bool) {
    WINE_CANCEL_TIMER.store(on, Ordering::SeqCst);
}

fn inserted<R>(f: impl FnOnce(&mut HashSet<usize>) -> R) -> R {
    f(INSERTED.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashSet::new))
}

pub(crate) fn reset() {
    WINE_CANCEL_TIMER.store(false, Ordering::SeqCst);
    *INSERTED.lock().unwrap_or_else(|e| e.into_inner()) = None;
    for n in [&SET_CALLS, &CANCEL_CALLS, &DPCS_RETURNED] {
        n.store(0, Ordering::SeqCst);
    }
}

static SET_CALLS: AtomicU64 = AtomicU64::new(0);
static CANCEL_CALLS: AtomicU64 = AtomicU64::new(0);
static DPCS_RETURNED: AtomicU64 = AtomicU64::new(0);

/// What the timer routines did since the session began.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimerCounts {
    /// KeSetTimer and KeSetTimerEx calls (each arms, or re-arms, a timer).
    pub set: u64,
    /// KeCancelTimer calls.
    pub cancel: u64,
    /// Timer DPC routines that have run and returned.
    pub dpcs_returned: u64,
}

/// The timer calls made since the session began (issue 17: a test can see
/// that a request whose IRP completed never armed its deadline timer, or
/// wait until a deadline DPC has run).
pub fn timer_counts() -> TimerCounts {
    TimerCounts {
        set: SET_CALLS.load(Ordering::SeqCst),
        cancel: CANCEL_CALLS.load(Ordering::SeqCst),
        dpcs_returned: DPCS_RETURNED.load(Ordering::SeqCst),
    }
}
static WAKE: Condvar = Condvar::new();
static THREAD: std::sync::Once = std::sync::Once::new();

fn start_thread() {
    THREAD.call_once(|| {
        std::thread::Builder::new()
            .name("hostkernel-timers".into())
            .spawn(timer_thread)
            .map(|_| ())
            .unwrap_or_else(|e| violation(format!("cannot start the timer thread: {e}")));
    });
}

fn timer_thread() {
    irql::set(DISPATCH_LEVEL);
    let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let now = Instant::now();
        let map = q.get_or_insert_with(HashMap::new);
        let expired: Vec<(usize, usize)> = map.iter().filter(|(_, e)| e.due <= now).map(|(t, e)| (*t, e.dpc)).collect();
        if !expired.is_empty() {
            for (t, _) in &expired {
                map.remove(t);
            }
            DPCS_RUNNING.fetch_add(expired.len(), Ordering::SeqCst);
            drop(q);
            for (_timer, dpc) in expired {
                let dpc = dpc as PVOID;
                // SAFETY: an initialized KDPC, alive while its timer was
                // queued (the driver's contract); DeferredRoutine is in it.
                let routine: usize = unsafe { rd(dpc, KDPC_ROUTINE) };
                // SAFETY: as above; DeferredContext is in the same KDPC.
                let context: PVOID = unsafe { rd(dpc, KDPC_CONTEXT) };
                if routine != 0 {
                    // SAFETY: a non-zero DeferredRoutine was stored by
                    // KeInitializeDpc from a PKDEFERRED_ROUTINE.
                    let routine: unsafe extern "system" fn(PVOID, PVOID, PVOID, PVOID) =
                        unsafe { std::mem::transmute(routine) };
                    crate::image::call_driver("DPC routine", || {
                        // SAFETY: the driver's DPC routine, called as the
                        // kernel calls it: its KDPC, its context, no system
                        // arguments (a timer DPC's are unused by drivers here).
                        unsafe { routine(dpc, context, std::ptr::null_mut(), std::ptr::null_mut()) }
                    });
                }
                DPCS_RETURNED.fetch_add(1, Ordering::SeqCst);
                DPCS_RUNNING.fetch_sub(1, Ordering::SeqCst);
            }
            q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        let next = map.values().map(|e| e.due).min();
        q = match next {
            None => WAKE.wait(q).unwrap_or_else(|e| e.into_inner()),
            Some(d) => WAKE.wait_timeout(q, d.saturating_duration_since(now)).unwrap_or_else(|e| e.into_inner()).0,
        };
    }
}

#[no_mangle]
pub unsafe extern "system" fn KeInitializeTimer(timer: PVOID) {
    if timer.is_null() {
        violation("KeInitializeTimer: NULL timer");
        return;
    }
    // SAFETY: the caller provides 0x40 writable bytes (sizeof KTIMER).
    unsafe { std::ptr::write_bytes(timer.cast::<u8>(), 0, 0x40) };
    // SAFETY: as above; Header.Type is at 0.
    unsafe { wr(timer, 0, TIMER_TYPE) };
    inserted(|i| i.remove(&(timer as usize)));
}

#[no_mangle]
pub unsafe extern "system" fn KeInitializeDpc(dpc: PVOID, routine: PVOID, context: PVOID) {
    if dpc.is_null() || routine.is_null() {
        violation("KeInitializeDpc: NULL DPC or routine");
        return;
    }
    // SAFETY: the caller provides 0x40 writable bytes (sizeof KDPC).
    unsafe { std::ptr::write_bytes(dpc.cast::<u8>(), 0, 0x40) };
    // SAFETY: as above; Type is at 0.
    unsafe { wr(dpc, 0, 0x13u8) }; // DpcObject
                                   // SAFETY: as above; DeferredRoutine is at KDPC_ROUTINE.
    unsafe { wr(dpc, KDPC_ROUTINE, routine) };
    // SAFETY: as above; DeferredContext is at KDPC_CONTEXT.
    unsafe { wr(dpc, KDPC_CONTEXT, context) };
}

fn check_timer(timer: PVOID, who: &str) -> bool {
    if irql::current() > DISPATCH_LEVEL {
        violation(format!("{who} above DISPATCH_LEVEL"));
    }
    // SAFETY: a caller-supplied KTIMER (0x40 bytes).
    if timer.is_null() || unsafe { rd::<u8>(timer, 0) } != TIMER_TYPE {
        violation(format!("{who}: {timer:p} is not a timer initialized with KeInitializeTimer"));
        return false;
    }
    true
}

/// KeSetTimer: `due` < 0 is relative (100 ns units), > 0 absolute. Returns
/// TRUE if the timer was already queued (it is re-queued).
#[no_mangle]
pub unsafe extern "system" fn KeSetTimer(timer: PVOID, due: i64, dpc: PVOID) -> u8 {
    SET_CALLS.fetch_add(1, Ordering::SeqCst);
    if !check_timer(timer, "KeSetTimer") {
        return 0;
    }
    let after = if due < 0 { Duration::from_nanos(due.unsigned_abs().saturating_mul(100)) } else { Duration::ZERO };
    start_thread();
    inserted(|i| i.insert(timer as usize));
    let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    let was = q
        .get_or_insert_with(HashMap::new)
        .insert(timer as usize, Queued { due: Instant::now() + after, dpc: dpc as usize })
        .is_some();
    WAKE.notify_all();
    u8::from(was)
}

/// KeSetTimerEx(Timer, DueTime, Period, Dpc): KeSetTimer with a period;
/// only one-shot timers (Period 0) are emulated, a periodic one is a
/// violation (and set as a one-shot timer).
#[no_mangle]
pub unsafe extern "system" fn KeSetTimerEx(timer: PVOID, due: i64, period: i32, dpc: PVOID) -> u8 {
    if period != 0 {
        violation(format!("KeSetTimerEx with Period {period}: periodic timers are not emulated"));
    }
    // SAFETY: forwarded; KeSetTimer checks the timer.
    unsafe { KeSetTimer(timer, due, dpc) }
}

#[no_mangle]
pub unsafe extern "system" fn KeCancelTimer(timer: PVOID) -> u8 {
    CANCEL_CALLS.fetch_add(1, Ordering::SeqCst);
    if !check_timer(timer, "KeCancelTimer") {
        return 0;
    }
    let was_inserted = inserted(|i| i.remove(&(timer as usize)));
    let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    let removed = q.get_or_insert_with(HashMap::new).remove(&(timer as usize)).is_some();
    drop(q);
    u8::from(removed || (was_inserted && WINE_CANCEL_TIMER.load(Ordering::SeqCst)))
}

/// KeFlushQueuedDpcs: returns when no expired timer's DPC is waiting or
/// running. PASSIVE_LEVEL.
#[no_mangle]
pub unsafe extern "system" fn KeFlushQueuedDpcs() {
    if irql::current() != PASSIVE_LEVEL {
        violation("KeFlushQueuedDpcs above PASSIVE_LEVEL");
    }
    loop {
        let due = {
            let q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            q.as_ref().is_some_and(|m| m.values().any(|e| e.due <= now))
        };
        if !due && DPCS_RUNNING.load(Ordering::SeqCst) == 0 {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Makes every queued timer due now, as if its due time had passed (the
/// timer thread then runs their DPCs); returns how many there were. For
/// tests that need "the deadline passes now" at a point of their choosing
/// rather than after a sleep.
pub fn expire_timers() -> usize {
    let mut q = QUEUE.lock().unwrap_or_else(|e| e.into_inner());
    let now = Instant::now();
    let map = q.get_or_insert_with(HashMap::new);
    for e in map.values_mut() {
        e.due = e.due.min(now);
    }
    let n = map.len();
    WAKE.notify_all();
    n
}

/// Timers still queued (a request freed with its timer queued is a leak).
pub fn queued_timers() -> usize {
    QUEUE.lock().unwrap_or_else(|e| e.into_inner()).as_ref().map_or(0, |m| m.len())
}
