//! The life-cycle state of one asynchronous request, as a single atomic word
//! that completion, timeout, cancel and the starting thread race on.
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
