//! The life-cycle state of one asynchronous request, as a single atomic word
//! that completion, timeout, cancel and the starting thread race on.
//!
//! Kept free of kernel calls so that `loom` can check every interleaving
//! (the `loom_model` module below: `RUSTFLAGS="--cfg loom" cargo test
//! --release --lib request_state`).
//!
//! The word holds a reference count (low 16 bits) and flags. Each party that
//! may still touch the IRP holds one reference:
//! - the IRP itself, from submission until its completion routine ran;
//! - the starting thread, until it has armed (or not) the timer;
//! - the timer, from arming until its DPC ran or KeCancelTimer removed it.
//!   Whoever drops the timer's reference first *claims* it (`TIMER_CLAIMED`,
//!   one atomic bit): the DPC when it runs, or a party whose KeCancelTimer
//!   returned TRUE. KeCancelTimer's answer alone is not trusted: Wine 8.0
//!   returns TRUE after the timer has already fired and its DPC has run,
//!   which would release the timer's reference twice; with the claim the
//!   second party finds it taken and releases nothing. (Windows returns
//!   FALSE there; Microsoft Learn, "KeCancelTimer".) What no claim can fix
//!   is a kernel that answers TRUE and then still runs the DPC later: the
//!   DPC would touch a request that may already be finished;
//! - a canceller (timeout DPC or explicit cancel), while it calls IoCancelIrp.
//!
//! Whoever drops the last reference finalizes: frees the IRP and calls the
//! callback. So the IRP is freed exactly once, after its completion routine,
//! and IoCancelIrp is only ever called while a reference keeps it alive.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU32, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU32, Ordering};

const REFS: u32 = 0xFFFF;
/// The IRP's completion routine has run.
pub const COMPLETED: u32 = 1 << 16;
/// An explicit cancel was requested.
pub const CANCELLED: u32 = 1 << 17;
/// The deadline passed before completion.
pub const TIMED_OUT: u32 = 1 << 18;
/// The last reference was dropped: the request is finished.
pub const FINAL: u32 = 1 << 19;
/// The timer's reference has been claimed (see the module documentation).
pub const TIMER_CLAIMED: u32 = 1 << 20;

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

    /// Claims the timer's reference: true for the first caller only, who
    /// must then release it.
    pub fn claim_timer(&self) -> bool {
        self.word.fetch_or(TIMER_CLAIMED, Ordering::AcqRel) & TIMER_CLAIMED == 0
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
        #[cfg(loom)]
        assert!(prev & REFS != 0, "request reference count underflow: a reference was released twice");
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
    /// Dequeued by the expiry; its DPC is running.
    const FIRED: u8 = 2;
    const REMOVED: u8 = 3;
    /// The DPC has returned.
    const DONE: u8 = 4;

    struct Sim {
        state: RequestState,
        completion_ran: AtomicBool,
        irp_freed: AtomicBool,
        timer: AtomicU8,
        finals: Counter,
        /// KeCancelTimer also answers TRUE after the DPC has run (Wine 8.0).
        misreports: bool,
    }

    impl Sim {
        fn new(misreports: bool) -> Sim {
            Sim {
                state: RequestState::new(),
                completion_ran: AtomicBool::new(false),
                irp_freed: AtomicBool::new(false),
                timer: AtomicU8::new(UNARMED),
                finals: Counter::new(0),
                misreports,
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
            let removed = self.timer.compare_exchange(QUEUED, REMOVED, Ordering::SeqCst, Ordering::SeqCst).is_ok();
            removed || (self.misreports && self.timer.load(Ordering::SeqCst) == DONE)
        }
        /// `cancel_timer_and_release` in connect_async.
        fn cancel_timer_and_release(&self) {
            if self.ke_cancel_timer() && self.state.claim_timer() {
                self.release();
            }
        }
        /// The timer expires: it leaves the queue, then its DPC runs.
        fn expire(&self) {
            if self.timer.compare_exchange(QUEUED, FIRED, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                // on_timeout
                if self.state.claim_timer() {
                    if self.state.flags() & COMPLETED == 0 {
                        self.state.set_flag(TIMED_OUT);
                        self.io_cancel_irp();
                    }
                    self.release();
                }
                self.timer.store(DONE, Ordering::SeqCst);
            }
        }
        /// on_complete
        fn complete(&self) {
            self.completion_ran.store(true, Ordering::SeqCst);
            self.state.set_completed();
            self.cancel_timer_and_release();
            self.release();
        }
        /// The end of `start`, after the IRP was issued.
        fn arm_and_release_starter(&self) {
            if self.state.try_acquire_unless_completed(0) {
                self.ke_set_timer();
                if self.state.flags() & COMPLETED != 0 {
                    self.cancel_timer_and_release();
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

    fn race(misreports: bool) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(move || {
            let sim = Arc::new(Sim::new(misreports));
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

    #[test]
    fn completion_timeout_cancel_and_start_race_safely() {
        race(false);
    }

    /// KeCancelTimer that answers TRUE after the DPC has already run, as
    /// Wine 8.0's does: the timer claim keeps its reference from being
    /// released twice (without the claim this model fails with "reference
    /// count underflow" or a second finalization).
    #[test]
    fn a_kernel_whose_kecanceltimer_misreports_is_survived() {
        race(true);
    }

    #[test]
    fn without_a_canceller_or_timer_completion_alone_finishes() {
        loom::model(|| {
            let sim = Arc::new(Sim::new(false));
            let s = sim.clone();
            let t = thread::spawn(move || s.complete());
            sim.release(); // a request without a deadline: the starter only releases
            t.join().unwrap();
            assert_eq!(sim.finals.load(Ordering::SeqCst), 1);
        });
    }
}
