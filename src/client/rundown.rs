//! The state word of one client slot: the client handle's generation, where
//! the client stands in its life, and its rundown counts (the idea of
//! EX_RUNDOWN_REF), in one 64-bit atomic that lives in the library's static
//! data. A client handle is checked and the client entered in one
//! compare-exchange on this word, which is never freed: a stale client
//! handle is refused without touching the freed client block.
//!
//! Kept free of kernel calls so that loom checks every interleaving
//! (`RUSTFLAGS="--cfg loom" cargo test --release --lib client::rundown`).
//!
//! ```text
//! bit  0..20  calls    connects, client-level calls and asynchronous
//!                      connects (until their callback has returned)
//! bit 20..38  sockets  socket slots of this client not yet freed
//! bit 38      CLAIMED  the slot is not free (startup, live, or being freed)
//! bit 39      LIVE     the handle is accepted
//! bit 40      CLEANING SafeWskCleanup has begun: connects are refused
//! bit 41      WAITING  cleanup sleeps until the count it waits for is 0
//! bit 42      ALL      ... and that count is calls + sockets (else calls)
//! bit 43..64  generation (1 ..= GENERATION_MAX)
//! ```
//!
//! Cleanup sleeps only with WAITING set, and whoever brings the count it
//! waits for to zero clears WAITING in the same atomic step and then wakes
//! it: that wake is its last access to anything of the client's. Cleanup
//! frees the client block only after a compare-exchange from "LIVE,
//! CLEANING, both counts 0" to "not LIVE": nobody is inside, nobody can
//! enter, no socket slot is left, and nobody is on the way to wake it.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};

const CALL_ONE: u64 = 1;
const CALLS: u64 = (1 << 20) - 1;
const SOCKET_ONE: u64 = 1 << 20;
const SOCKETS: u64 = ((1 << 18) - 1) << 20;
const CLAIMED: u64 = 1 << 38;
const LIVE: u64 = 1 << 39;
const CLEANING: u64 = 1 << 40;
const WAITING: u64 = 1 << 41;
const ALL: u64 = 1 << 42;
const GENERATION_SHIFT: u32 = 43;

/// The last generation a client slot is used with (21 bits).
pub const GENERATION_MAX: u32 = (1 << 21) - 1;

const fn generation(w: u64) -> u32 {
    (w >> GENERATION_SHIFT) as u32
}

const fn with_generation(g: u32) -> u64 {
    (g as u64) << GENERATION_SHIFT
}

/// Why entering was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not a live client of this generation.
    Stale,
    /// Cleanup has begun (connects), or a count would overflow.
    Cleaning,
}

/// What cleanup should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// The count it waits for is 0.
    Drained,
    /// WAITING is set: sleep until woken.
    Wait,
}

/// See the module documentation.
pub struct Rundown {
    word: AtomicU64,
}

impl Rundown {
    /// A free slot, generation 1 (a `const fn`: the slots are static).
    #[cfg(not(loom))]
    pub const fn new() -> Rundown {
        Rundown { word: AtomicU64::new(with_generation(1)) }
    }

    /// A free slot, generation 1 (loom's atomics are not `const`).
    #[cfg(loom)]
    pub fn new() -> Rundown {
        Rundown { word: AtomicU64::new(with_generation(1)) }
    }

    /// Startup claims a free slot; the generation its handle carries, or
    /// None if the slot is in use or retired.
    pub fn claim(&self) -> Option<u32> {
        let w = self.word.load(Ordering::Acquire);
        if w & CLAIMED != 0 {
            return None;
        }
        self.word.compare_exchange(w, w | CLAIMED, Ordering::AcqRel, Ordering::Acquire).ok().map(|_| generation(w))
    }

    /// The claimed slot's client is complete: its handle is accepted.
    pub fn go_live(&self) {
        self.word.fetch_or(LIVE, Ordering::Release);
    }

    /// Frees a claimed slot that is not live (startup failed, or cleanup has
    /// freed the client): the next generation, or retired (stays claimed).
    pub fn unclaim(&self) {
        let g = generation(self.word.load(Ordering::Acquire));
        let next = if g >= GENERATION_MAX { with_generation(g) | CLAIMED } else { with_generation(g + 1) };
        self.word.store(next, Ordering::Release);
    }

    /// Enters a call with a handle of generation `g`: refused unless the
    /// client is live with that generation, and (unless
    /// `during_cleanup`) cleanup has not begun.
    pub fn enter(&self, g: u32, during_cleanup: bool) -> Result<(), Refused> {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if generation(w) != g || w & LIVE == 0 {
                return Err(Refused::Stale);
            }
            if (w & CLEANING != 0 && !during_cleanup) || w & CALLS == CALLS {
                return Err(Refused::Cleaning);
            }
            match self.word.compare_exchange_weak(w, w + CALL_ONE, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => w = now,
            }
        }
    }

    /// Whether cleanup has begun.
    pub fn cleaning(&self) -> bool {
        self.word.load(Ordering::Acquire) & CLEANING != 0
    }

    /// Whether a handle of generation `g` names a live client now (a check
    /// that changes nothing).
    pub fn is_live(&self, g: u32) -> bool {
        let w = self.word.load(Ordering::Acquire);
        generation(w) == g && w & LIVE != 0
    }

    /// Leaves a call. True if cleanup must be woken (the caller then wakes
    /// it and touches nothing else of the client's).
    pub fn leave(&self) -> bool {
        self.drop_one(CALL_ONE)
    }

    /// A socket slot of this client was reserved. The caller is inside (a
    /// connect), so the client cannot be freed meanwhile. False (nothing
    /// counted) if the count is full.
    pub fn add_socket(&self) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                if w & SOCKETS == SOCKETS {
                    None
                } else {
                    Some(w + SOCKET_ONE)
                }
            })
            .is_ok()
    }

    /// A socket slot of this client was freed. True if cleanup must be
    /// woken.
    pub fn socket_gone(&self) -> bool {
        self.drop_one(SOCKET_ONE)
    }

    fn drop_one(&self, one: u64) -> bool {
        let mut wake = false;
        let _ = self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            debug_assert!(w & if one == CALL_ONE { CALLS } else { SOCKETS } != 0, "count underflow");
            let mut n = w - one;
            let drained = n & CALLS == 0 && (n & ALL == 0 || n & SOCKETS == 0);
            wake = n & WAITING != 0 && drained;
            #[cfg(loom)]
            if mutation::active(mutation::Mutation::WakeWithoutClearing) {
                return Some(n);
            }
            if wake {
                n &= !(WAITING | ALL);
            }
            Some(n)
        });
        wake
    }

    /// Starts cleanup of the client with a handle of generation `g`.
    pub fn begin_cleanup(&self, g: u32) -> Result<(), Refused> {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                if generation(w) != g || w & LIVE == 0 || w & CLEANING != 0 {
                    None
                } else {
                    Some(w | CLEANING)
                }
            })
            .map(|_| ())
            .map_err(|w| if generation(w) == g && w & LIVE != 0 { Refused::Cleaning } else { Refused::Stale })
    }

    /// During cleanup: Drained if the calls (and, with `all`, the sockets)
    /// are 0; otherwise sets WAITING and answers Wait (the caller cleared its
    /// event and published where it waits before calling this).
    pub fn wait_or_drained(&self, all: bool) -> Step {
        let flags = if all { WAITING | ALL } else { WAITING };
        match self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            if w & CALLS == 0 && (!all || w & SOCKETS == 0) {
                None
            } else {
                Some(w | flags)
            }
        }) {
            Ok(_) => Step::Wait,
            Err(_) => Step::Drained,
        }
    }

    /// Nobody inside, no socket slot left, nobody waking: from now on the
    /// handle is refused and the caller may free the client block. False if
    /// a call entered meanwhile.
    pub fn try_free(&self, g: u32) -> bool {
        let from = with_generation(g) | CLAIMED | LIVE | CLEANING;
        #[cfg(loom)]
        if mutation::active(mutation::Mutation::FreeWithCallsInside) {
            let w = self.word.load(Ordering::Acquire);
            self.word.store(with_generation(g) | CLAIMED | (w & (CALLS | SOCKETS)), Ordering::Release);
            return true;
        }
        self.word.compare_exchange(from, with_generation(g) | CLAIMED, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// (calls, sockets), for reports.
    pub fn counts(&self) -> (u32, u32) {
        let w = self.word.load(Ordering::Acquire);
        ((w & CALLS) as u32, ((w & SOCKETS) >> 20) as u32)
    }
}

/// Deliberate defects for the loom tests (see `handles::state::mutation`).
#[cfg(loom)]
pub(crate) mod mutation {
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Copy, PartialEq, Eq)]
    #[repr(usize)]
    pub enum Mutation {
        None = 0,
        WakeWithoutClearing,
        FreeWithCallsInside,
    }

    static ACTIVE: AtomicUsize = AtomicUsize::new(0);

    pub fn active(m: Mutation) -> bool {
        ACTIVE.load(Ordering::SeqCst) == m as usize
    }

    pub fn with<R>(m: Mutation, f: impl FnOnce() -> R) -> R {
        struct Off;
        impl Drop for Off {
            fn drop(&mut self) {
                ACTIVE.store(Mutation::None as usize, Ordering::SeqCst);
            }
        }
        ACTIVE.store(m as usize, Ordering::SeqCst);
        let _off = Off;
        f()
    }
}

/// One thread at a time.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_client_life() {
        let r = Rundown::new();
        assert_eq!(r.enter(1, true), Err(Refused::Stale), "a free slot");
        let g = r.claim();
        assert_eq!(g, Some(1));
        assert_eq!(r.claim(), None, "claimed once");
        assert_eq!(r.enter(1, false), Err(Refused::Stale), "not live yet");
        r.go_live();
        assert_eq!(r.enter(2, false), Err(Refused::Stale), "another generation");
        assert!(r.enter(1, false).is_ok());
        assert!(r.add_socket());
        assert!(r.begin_cleanup(1).is_ok());
        assert_eq!(r.begin_cleanup(1), Err(Refused::Cleaning), "one cleanup at a time");
        assert_eq!(r.begin_cleanup(2), Err(Refused::Stale));
        assert_eq!(r.enter(1, false), Err(Refused::Cleaning), "connects are refused during cleanup");
        assert!(r.enter(1, true).is_ok(), "calls that work during cleanup get in");
        assert!(!r.leave());
        assert_eq!(r.wait_or_drained(false), Step::Wait);
        assert!(r.leave(), "the last call out wakes cleanup");
        assert_eq!(r.wait_or_drained(false), Step::Drained, "calls drained, the socket remains");
        assert_eq!(r.wait_or_drained(true), Step::Wait);
        assert!(!r.try_free(1), "a socket slot is left");
        assert!(r.socket_gone(), "the last socket slot wakes cleanup");
        assert_eq!(r.wait_or_drained(true), Step::Drained);
        assert!(r.try_free(1));
        assert_eq!(r.enter(1, true), Err(Refused::Stale), "nothing enters a client being freed");
        assert_eq!(r.claim(), None, "not free until unclaimed");
        r.unclaim();
        assert_eq!(r.claim(), Some(2), "the next generation");
    }

    #[test]
    fn the_last_generation_retires_the_slot() {
        let r = Rundown { word: AtomicU64::new(with_generation(GENERATION_MAX)) };
        assert_eq!(r.claim(), Some(GENERATION_MAX));
        r.unclaim();
        assert_eq!(r.claim(), None, "retired");
    }
}

/// Cleanup against a call leaving, a connect trying to enter, and a socket
/// slot being freed: cleanup never frees the client while someone is inside
/// or still on the way to wake it, never misses the last wake (loom reports
/// a deadlock if it sleeps forever), and no connect enters once cleanup has
/// begun.
#[cfg(all(test, loom))]
mod loom_model {
    use super::mutation::{self, Mutation};
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    struct Client {
        rundown: Rundown,
        freed: AtomicBool,
        event: Mutex<bool>,
        wake: Condvar,
    }

    impl Client {
        fn wake(&self) {
            assert!(!self.freed.load(Ordering::SeqCst), "woke a freed client");
            *self.event.lock().unwrap() = true;
            self.wake.notify_all();
        }
    }

    fn cleanup_model() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let c = Arc::new(Client {
                rundown: Rundown::new(),
                freed: AtomicBool::new(false),
                event: Mutex::new(false),
                wake: Condvar::new(),
            });
            let g = c.rundown.claim().unwrap();
            c.rundown.go_live();
            // A connect inside, which made one socket slot.
            c.rundown.enter(g, false).unwrap();
            assert!(c.rundown.add_socket());
            let connect = {
                let c = c.clone();
                thread::spawn(move || {
                    assert!(!c.freed.load(Ordering::SeqCst));
                    if c.rundown.leave() {
                        c.wake();
                    }
                })
            };
            // The socket's close frees its slot.
            let close = {
                let c = c.clone();
                thread::spawn(move || {
                    if c.rundown.socket_gone() {
                        c.wake();
                    }
                })
            };
            // A late call: a connect (refused once cleanup has begun) or a
            // call that works during cleanup (a security-descriptor release),
            // which may enter after cleanup found everything drained.
            let late = {
                let c = c.clone();
                thread::spawn(move || {
                    for during_cleanup in [false, true] {
                        if c.rundown.enter(g, during_cleanup).is_ok() {
                            assert!(!c.freed.load(Ordering::SeqCst), "entered a freed client");
                            if c.rundown.leave() {
                                c.wake();
                            }
                        }
                    }
                })
            };
            c.rundown.begin_cleanup(g).unwrap();
            'cleanup: loop {
                for all in [false, true] {
                    loop {
                        *c.event.lock().unwrap() = false;
                        match c.rundown.wait_or_drained(all) {
                            Step::Wait => {
                                let mut set = c.event.lock().unwrap();
                                while !*set {
                                    set = c.wake.wait(set).unwrap();
                                }
                            }
                            Step::Drained => break,
                        }
                    }
                }
                if c.rundown.try_free(g) {
                    break 'cleanup;
                }
            }
            c.freed.store(true, Ordering::SeqCst);
            connect.join().unwrap();
            close.join().unwrap();
            late.join().unwrap();
            assert_eq!(c.rundown.enter(g, true), Err(Refused::Stale));
        });
    }

    #[test]
    fn cleanup_waits_for_calls_and_sockets() {
        cleanup_model();
    }

    #[test]
    #[should_panic]
    fn the_model_catches_a_wake_that_leaves_waiting_set() {
        mutation::with(Mutation::WakeWithoutClearing, cleanup_model);
    }

    #[test]
    #[should_panic]
    fn the_model_catches_a_free_with_calls_inside() {
        mutation::with(Mutation::FreeWithCallsInside, cleanup_model);
    }
}
