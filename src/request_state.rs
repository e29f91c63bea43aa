//! The life-cycle state of one asynchronous request, as a single atomic word
//! that completion, timeout, cancel and the starting thread race on; and the
//! client's rundown protection ([`Rundown`]) that cleanup waits on.
//!
//! Kept free of kernel calls so that `loom` can check every interleaving
//! (tests/loom.rs, built with `RUSTFLAGS="--cfg loom"`).
//!
//! The word holds a reference count (low 16 bits) and flags. Each party that
//! may still touch the IRP holds one reference:
//! - the IRP itself, from submission until its completion routine ran;
//! - the starting thread, until it has armed (or not) the timer;
//! - the timer, from arming until its DPC ran or KeCancelTimer removed it;
//! - a canceller (timeout DPC or explicit cancel), while it calls IoCancelIrp.
//!
//! Whoever drops the last reference finalizes: frees the IRP and calls the
//! callback. So the IRP is freed exactly once, after its completion routine,
//! and IoCancelIrp is only ever called while a reference keeps it alive.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

const REFS: u32 = 0xFFFF;
/// The IRP's completion routine has run.
pub const COMPLETED: u32 = 1 << 16;
/// An explicit cancel was requested.
pub const CANCELLED: u32 = 1 << 17;
/// The deadline passed before completion.
pub const TIMED_OUT: u32 = 1 << 18;
/// The last reference was dropped: the request is finished.
pub const FINAL: u32 = 1 << 19;

/// See the module documentation.
pub struct RequestState {
    word: AtomicU32,
}

impl RequestState {
    /// A submitted request: references for the IRP and the starting thread.
    pub fn new() -> RequestState {
        RequestState { word: AtomicU32::new(2) }
    }

    /// Takes a reference if the IRP has not completed yet (and the request is
    /// not finished), and sets `flag`. False: too late, nothing changed.
    pub fn try_acquire_unless_completed(&self, flag: u32) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                if w & (COMPLETED | FINAL) != 0 || w & REFS == 0 || w & REFS == REFS {
                    None
                } else {
                    Some((w + 1) | flag)
                }
            })
            .is_ok()
    }

    /// The completion routine ran.
    pub fn set_completed(&self) {
        self.word.fetch_or(COMPLETED, Ordering::AcqRel);
    }

    /// Sets a flag without taking a reference (the caller holds one).
    pub fn set_flag(&self, flag: u32) {
        self.word.fetch_or(flag, Ordering::AcqRel);
    }

    /// The current flags.
    pub fn flags(&self) -> u32 {
        self.word.load(Ordering::Acquire) & !REFS
    }

    /// Drops one reference. Returns the flags if this was the last one: the
    /// caller must then finalize the request (and is the only one who does).
    pub fn release(&self) -> Option<u32> {
        let prev = self.word.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(prev & REFS != 0, "request reference count underflow");
        if prev & REFS == 1 {
            let w = self.word.fetch_or(FINAL, Ordering::AcqRel);
            Some(w & !REFS)
        } else {
            None
        }
    }
}

impl Default for RequestState {
    fn default() -> Self {
        Self::new()
    }
}

/// Rundown protection for the client (the idea of EX_RUNDOWN_REF): the
/// number of calls and requests inside, and a CLEANING bit, in one word.
/// Because the count and the bit change together, the last one out learns in
/// the same atomic operation whether cleanup is waiting for it, and touches
/// the client (to signal) only then; otherwise cleanup may free the client
/// the moment the count reaches zero.
pub struct Rundown {
    word: AtomicUsize,
}

const CLEANING_BIT: usize = 1 << (usize::BITS - 1);

impl Rundown {
    /// Open, nobody inside.
    pub fn new() -> Rundown {
        Rundown { word: AtomicUsize::new(0) }
    }

    /// Enters unless cleanup has begun.
    pub fn try_enter(&self) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                if w & CLEANING_BIT != 0 {
                    None
                } else {
                    w.checked_add(1).filter(|n| n & CLEANING_BIT == 0)
                }
            })
            .is_ok()
    }

    /// Leaves. True if this was the last one out while cleanup waits: the
    /// caller must then wake it (and touch nothing else of the client).
    pub fn leave(&self) -> bool {
        let prev = self.word.fetch_sub(1, Ordering::AcqRel);
        debug_assert!(prev & !CLEANING_BIT != 0, "rundown count underflow");
        prev == CLEANING_BIT | 1
    }

    /// Starts cleanup: no one enters any more. Ok(true) if calls are still
    /// inside (wait for the last `leave` to return true); Err if cleanup had
    /// already begun.
    pub fn begin_cleanup(&self) -> Result<bool, ()> {
        match self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            if w & CLEANING_BIT != 0 {
                None
            } else {
                Some(w | CLEANING_BIT)
            }
        }) {
            Ok(prev) => Ok(prev != 0),
            Err(_) => Err(()),
        }
    }

    /// Reopens after a cleanup that waited and then refused.
    pub fn reopen(&self) {
        self.word.fetch_and(!CLEANING_BIT, Ordering::AcqRel);
    }
}

/// Model check with loom of the protocol `connect_async` follows:
/// `RUSTFLAGS="--cfg loom" cargo test --release --lib request_state`.
/// The four parties run the same steps, in the same order, as in
/// src/connect_async.rs, against a simulated IRP and timer queue.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::{AtomicBool, AtomicU32 as Counter, AtomicU8};
    use loom::sync::Arc;
    use loom::thread;
    use std::vec::Vec;

    const UNARMED: u8 = 0;
    const QUEUED: u8 = 1;
    const FIRED: u8 = 2;
    const REMOVED: u8 = 3;

    struct Sim {
        state: RequestState,
        completion_ran: AtomicBool,
        irp_freed: AtomicBool,
        timer: AtomicU8,
        finals: Counter,
    }

    impl Sim {
        fn new() -> Sim {
            Sim {
                state: RequestState::new(),
                completion_ran: AtomicBool::new(false),
                irp_freed: AtomicBool::new(false),
                timer: AtomicU8::new(UNARMED),
                finals: Counter::new(0),
            }
        }
        /// `release` in connect_async: the last reference frees the IRP and
        /// calls back.
        fn release(&self) {
            if self.state.release().is_some() {
                assert!(self.completion_ran.load(Ordering::SeqCst), "IRP freed before its completion routine");
                assert!(!self.irp_freed.swap(true, Ordering::SeqCst), "IRP freed twice");
                assert_ne!(self.timer.load(Ordering::SeqCst), QUEUED, "finished with the timer still queued");
                self.finals.fetch_add(1, Ordering::SeqCst);
            }
        }
        fn io_cancel_irp(&self) {
            assert!(!self.irp_freed.load(Ordering::SeqCst), "IoCancelIrp after IoFreeIrp");
        }
        fn ke_set_timer(&self) {
            self.timer.store(QUEUED, Ordering::SeqCst);
        }
        fn ke_cancel_timer(&self) -> bool {
            self.timer.compare_exchange(QUEUED, REMOVED, Ordering::SeqCst, Ordering::SeqCst).is_ok()
        }
        /// The timer expires: it leaves the queue, then its DPC runs.
        fn expire(&self) {
            if self.timer.compare_exchange(QUEUED, FIRED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                // on_timeout
                if self.state.flags() & COMPLETED == 0 {
                    self.state.set_flag(TIMED_OUT);
                    self.io_cancel_irp();
                }
                self.release();
            }
        }
        /// on_complete
        fn complete(&self) {
            self.completion_ran.store(true, Ordering::SeqCst);
            self.state.set_completed();
            if self.ke_cancel_timer() {
                self.release();
            }
            self.release();
        }
        /// The end of `start`, after the IRP was issued.
        fn arm_and_release_starter(&self) {
            if self.state.try_acquire_unless_completed(0) {
                self.ke_set_timer();
                if self.state.flags() & COMPLETED != 0 && self.ke_cancel_timer() {
                    self.release();
                }
            }
            self.release();
        }
        /// `cancel`
        fn cancel(&self) {
            if self.state.try_acquire_unless_completed(CANCELLED) {
                self.io_cancel_irp();
                self.release();
            }
        }
    }

    #[test]
    fn completion_timeout_cancel_and_start_race_safely() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let sim = Arc::new(Sim::new());
            let threads: Vec<_> = [Sim::complete as fn(&Sim), Sim::expire, Sim::cancel]
                .into_iter()
                .map(|step| {
                    let s = sim.clone();
                    thread::spawn(move || step(&s))
                })
                .collect();
            sim.arm_and_release_starter();
            for t in threads {
                t.join().unwrap();
            }
            // A timer armed after the expiry thread ran still expires later.
            sim.expire();
            assert_eq!(sim.finals.load(Ordering::SeqCst), 1, "callback not called exactly once");
            assert!(sim.irp_freed.load(Ordering::SeqCst));
        });
    }

    /// Cleanup against calls leaving and a call trying to enter: cleanup
    /// never frees the client while someone still touches it, never misses
    /// the last leave (loom reports a deadlock if it waits forever), and no
    /// call enters once cleanup has begun.
    #[test]
    fn cleanup_waits_for_the_last_leave_and_frees_safely() {
        use loom::sync::{Condvar, Mutex};
        struct Client {
            rundown: Rundown,
            freed: AtomicBool,
            event: Mutex<bool>,
            wake: Condvar,
            entered_after_cleanup: AtomicBool,
            cleaning: AtomicBool,
        }
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let c = Arc::new(Client {
                rundown: Rundown::new(),
                freed: AtomicBool::new(false),
                event: Mutex::new(false),
                wake: Condvar::new(),
                entered_after_cleanup: AtomicBool::new(false),
                cleaning: AtomicBool::new(false),
            });
            // Two calls/requests already inside.
            assert!(c.rundown.try_enter());
            assert!(c.rundown.try_enter());
            let leavers: Vec<_> = (0..2)
                .map(|_| {
                    let c = c.clone();
                    thread::spawn(move || {
                        assert!(!c.freed.load(Ordering::SeqCst), "client used after free");
                        if c.rundown.leave() {
                            assert!(!c.freed.load(Ordering::SeqCst), "signalled a freed client");
                            *c.event.lock().unwrap() = true;
                            c.wake.notify_all();
                        }
                    })
                })
                .collect();
            let c2 = c.clone();
            let late = thread::spawn(move || {
                let was_cleaning = c2.cleaning.load(Ordering::SeqCst);
                if c2.rundown.try_enter() {
                    if was_cleaning {
                        c2.entered_after_cleanup.store(true, Ordering::SeqCst);
                    }
                    assert!(!c2.freed.load(Ordering::SeqCst), "entered a freed client");
                    if c2.rundown.leave() {
                        *c2.event.lock().unwrap() = true;
                        c2.wake.notify_all();
                    }
                }
            });
            // Cleanup.
            let must_wait = c.rundown.begin_cleanup().unwrap();
            // From here on no enter may succeed.
            c.cleaning.store(true, Ordering::SeqCst);
            if must_wait {
                let mut signalled = c.event.lock().unwrap();
                while !*signalled {
                    signalled = c.wake.wait(signalled).unwrap();
                }
            }
            c.freed.store(true, Ordering::SeqCst);
            for t in leavers {
                t.join().unwrap();
            }
            late.join().unwrap();
            assert!(!c.entered_after_cleanup.load(Ordering::SeqCst), "entered after cleanup began");
        });
    }

    #[test]
    fn without_a_canceller_or_timer_completion_alone_finishes() {
        loom::model(|| {
            let sim = Arc::new(Sim::new());
            let s = sim.clone();
            let t = thread::spawn(move || s.complete());
            sim.release(); // a request without a deadline: the starter only releases
            t.join().unwrap();
            assert_eq!(sim.finals.load(Ordering::SeqCst), 1);
        });
    }
}
