//! The client's rundown protection (the idea of EX_RUNDOWN_REF): how many
//! calls and asynchronous requests are inside the client, and where cleanup
//! stands, in one atomic word. Kept free of kernel calls so that loom checks
//! every interleaving (`RUSTFLAGS="--cfg loom" cargo test --release --lib
//! rundown`).
//!
//! The word holds a count and three bits:
//! - `CLEANING`: SafeWskCleanup has begun. Connects no longer enter; calls on
//!   open sockets still do, because closing the sockets is how a driver lets
//!   cleanup succeed.
//! - `WAITING`: cleanup is asleep on its event and must be woken by the call
//!   that brings the count to zero. Only cleanup sets it; that last call
//!   clears it in the same atomic step as its decrement and then signals:
//!   the signal is its last access to the client.
//! - `FREEING`: cleanup found nobody inside and no socket open, and is
//!   freeing the client; nothing enters any more.
//!
//! Because cleanup frees the client only after a compare-exchange from
//! "CLEANING, count 0, not WAITING", and sleeps only with `WAITING` set, every
//! signal it asked for is one it waits for: no call can still be on its way to
//! signal a client that cleanup has freed.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicUsize, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicUsize, Ordering};

const CLEANING: usize = 1 << (usize::BITS - 1);
const WAITING: usize = 1 << (usize::BITS - 2);
const FREEING: usize = 1 << (usize::BITS - 3);
const COUNT: usize = FREEING - 1;

/// See the module documentation.
pub struct Rundown {
    word: AtomicUsize,
}

/// What cleanup should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Nobody is inside: decide (check the sockets), then [`Rundown::try_free`].
    Drained,
    /// `WAITING` is set: sleep until the last call out signals.
    Wait,
}

impl Rundown {
    /// Open, nobody inside.
    pub fn new() -> Rundown {
        Rundown { word: AtomicUsize::new(0) }
    }

    fn enter_unless(&self, refused: usize) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                if w & refused != 0 || w & COUNT == COUNT {
                    None
                } else {
                    Some(w + 1)
                }
            })
            .is_ok()
    }

    /// Enters a call that may create sockets (a connect); refused once
    /// cleanup has begun.
    pub fn try_enter(&self) -> bool {
        self.enter_unless(CLEANING | FREEING)
    }

    /// Enters a call on an open socket; refused only while the client is
    /// being freed (which a caller with an open socket cannot observe:
    /// cleanup frees nothing while a socket is open).
    pub fn try_enter_socket_call(&self) -> bool {
        self.enter_unless(FREEING)
    }

    /// Leaves. True if this was the last call out while cleanup sleeps: the
    /// caller must then signal cleanup's event and touch nothing else of the
    /// client.
    pub fn leave(&self) -> bool {
        let prev = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                let n = (w & COUNT).checked_sub(1)?;
                let mut next = (w & !COUNT) | n;
                if n == 0 {
                    next &= !WAITING;
                }
                Some(next)
            })
            .unwrap_or(0);
        debug_assert!(prev & COUNT != 0, "rundown count underflow");
        prev & COUNT == 1 && prev & WAITING != 0
    }

    /// Starts cleanup. Err if another cleanup has begun (it is not touched).
    pub fn begin_cleanup(&self) -> Result<(), ()> {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                if w & CLEANING != 0 {
                    None
                } else {
                    Some(w | CLEANING)
                }
            })
            .map(|_| ())
            .map_err(|_| ())
    }

    /// During cleanup: Drained if nobody is inside; otherwise sets `WAITING`
    /// and answers Wait (the caller cleared its event before calling this).
    pub fn wait_or_drained(&self) -> Step {
        match self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
            if w & COUNT == 0 {
                None
            } else {
                Some(w | WAITING)
            }
        }) {
            Ok(_) => Step::Wait,
            Err(_) => Step::Drained,
        }
    }

    /// Nobody inside and not waiting: from now on nothing enters and the
    /// caller may free the client. False if a call entered meanwhile.
    pub fn try_free(&self) -> bool {
        self.word.compare_exchange(CLEANING, CLEANING | FREEING, Ordering::AcqRel, Ordering::Acquire).is_ok()
    }

    /// Ends a cleanup that refused (a socket is still open).
    pub fn reopen(&self) {
        self.word.fetch_and(!CLEANING, Ordering::AcqRel);
    }

    /// Calls inside now (for reports).
    pub fn inside(&self) -> usize {
        self.word.load(Ordering::Acquire) & COUNT
    }
}

impl Default for Rundown {
    fn default() -> Self {
        Self::new()
    }
}

/// The states, one thread at a time: connects are refused from the start of
/// cleanup, socket calls until the client is being freed.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn who_may_enter_when() {
        let r = Rundown::new();
        assert!(r.try_enter() && r.try_enter_socket_call());
        assert!(r.begin_cleanup().is_ok());
        assert!(r.begin_cleanup().is_err(), "one cleanup at a time");
        assert!(!r.try_enter(), "connects are refused once cleanup has begun");
        assert!(r.try_enter_socket_call(), "socket calls still get in");
        assert_eq!(r.wait_or_drained(), Step::Wait);
        assert!(!r.leave());
        assert!(!r.leave());
        assert!(r.leave(), "the last one out while cleanup waits must signal");
        assert_eq!(r.wait_or_drained(), Step::Drained);
        r.reopen();
        assert!(r.try_enter(), "a refused cleanup lets connects in again");
        assert!(!r.leave());
        assert!(r.begin_cleanup().is_ok());
        assert!(r.try_free());
        assert!(!r.try_enter() && !r.try_enter_socket_call(), "nothing enters a client being freed");
    }
}

/// Cleanup against a call leaving, a connect trying to enter, and a socket
/// call (a close) entering while cleanup waits: cleanup never frees the
/// client while someone is inside or still on the way to signal it, never
/// misses the last signal (loom reports a deadlock if it sleeps forever), no
/// connect enters once cleanup has begun, and the close gets in.
#[cfg(all(test, loom))]
mod loom_model {
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;
    use std::vec::Vec;

    struct Client {
        rundown: Rundown,
        freed: AtomicBool,
        /// The KEVENT: a notification event (stays set until cleared).
        event: Mutex<bool>,
        wake: Condvar,
        open: loom::sync::atomic::AtomicUsize,
    }

    impl Client {
        fn signal(&self) {
            assert!(!self.freed.load(Ordering::SeqCst), "signalled a freed client");
            *self.event.lock().unwrap() = true;
            self.wake.notify_all();
        }
        fn leave(&self) {
            assert!(!self.freed.load(Ordering::SeqCst), "client used after free");
            if self.rundown.leave() {
                self.signal();
            }
        }
    }

    #[test]
    fn cleanup_waits_for_every_call_and_frees_safely() {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(2);
        builder.check(|| {
            let c = Arc::new(Client {
                rundown: Rundown::new(),
                freed: AtomicBool::new(false),
                event: Mutex::new(false),
                wake: Condvar::new(),
                open: loom::sync::atomic::AtomicUsize::new(1),
            });
            // A call or request already inside.
            assert!(c.rundown.try_enter());
            let mut threads: Vec<_> = (0..1)
                .map(|_| {
                    let c = c.clone();
                    thread::spawn(move || c.leave())
                })
                .collect();
            // A connect that may come too late: if it gets in, cleanup must
            // wait for it (the asserts in `leave` catch a use after free).
            let c2 = c.clone();
            threads.push(thread::spawn(move || {
                if c2.rundown.try_enter() {
                    assert!(!c2.freed.load(Ordering::SeqCst), "entered a freed client");
                    c2.leave();
                }
            }));
            // A close of the one open socket: it must get in even while
            // cleanup waits, and cleanup frees nothing while it is open.
            let c3 = c.clone();
            threads.push(thread::spawn(move || {
                assert!(c3.rundown.try_enter_socket_call(), "a close was refused during cleanup");
                c3.open.fetch_sub(1, Ordering::SeqCst);
                c3.leave();
            }));

            // SafeWskCleanup.
            c.rundown.begin_cleanup().unwrap();
            assert!(c.rundown.begin_cleanup().is_err(), "a second cleanup must be refused");
            let mut freed = false;
            loop {
                *c.event.lock().unwrap() = false; // KeClearEvent
                match c.rundown.wait_or_drained() {
                    Step::Wait => {
                        let mut set = c.event.lock().unwrap();
                        while !*set {
                            set = c.wake.wait(set).unwrap();
                        }
                    }
                    Step::Drained => {
                        if c.open.load(Ordering::SeqCst) != 0 {
                            // STATUS_INVALID_DEVICE_STATE: connects may enter again.
                            c.rundown.reopen();
                            break;
                        }
                        if c.rundown.try_free() {
                            freed = true;
                            break;
                        }
                    }
                }
            }
            if freed {
                c.freed.store(true, Ordering::SeqCst);
            }
            for t in threads {
                t.join().unwrap();
            }
            if freed {
                assert!(!c.rundown.try_enter_socket_call(), "entered a client being freed");
            }
        });
    }
}
