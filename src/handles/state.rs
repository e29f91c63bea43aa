//! The state word of one socket slot: everything a call on a socket needs to
//! know about the socket's life, in one 64-bit atomic, so that a send or a
//! receive costs three atomic operations on the socket's own cache line and
//! no lock (acquire, "returned from WSK", release).
//!
//! Kept free of kernel calls so that loom checks every interleaving
//! (`RUSTFLAGS="--cfg loom" cargo test --release --lib handles::state`).
//!
//! ```text
//! bit  0..16  held     calls holding the slot (or its IRP): from acquire to release
//! bit 16..32  inside   calls that may still be inside one of the socket's WSK functions
//! bit 32      IRP      the slot's cached IRP is claimed by a call
//! bit 33      OPEN     published: the driver has the handle, calls may acquire
//! bit 34      CLOSING  a close began: nothing acquires any more
//! bit 35      WAITING  the close sleeps until `inside` reaches 0
//! bit 36      ORPHAN   the close could not be issued: cleanup issues it
//! bit 40..64  generation (1 ..= GENERATION_MAX); the handle carries it
//! ```
//!
//! # Invariants
//! - `inside <= held`: every call counted inside also holds the slot.
//! - `inside` only rises while CLOSING is clear; so once a close has seen
//!   it at 0 (or the last call out has woken it), no call of the socket's
//!   functions is in progress ("Closing a Socket", Microsoft Learn: no
//!   WskCloseSocket while another call of the socket's functions is in
//!   progress; pending IRPs are allowed, WskCloseSocket completes them).
//! - The generation changes only in the atomic step that frees the slot
//!   (`held` reaching 0 after a close), so a handle's acquire, which is one
//!   compare-exchange against the whole word, can never pin the next socket
//!   in the slot. A slot whose generation would pass GENERATION_MAX is
//!   retired instead: a stale handle is refused always, not until a wrap.
//! - A slot that is not OPEN (free, reserved by a connect, retired) refuses
//!   every handle; only its owner writes its word then.

#[cfg(not(loom))]
use core::sync::atomic::{AtomicU64, Ordering};
#[cfg(loom)]
use loom::sync::atomic::{AtomicU64, Ordering};

const HELD_ONE: u64 = 1;
const HELD: u64 = 0xFFFF;
const INSIDE_ONE: u64 = 1 << 16;
const INSIDE: u64 = 0xFFFF << 16;
const IRP: u64 = 1 << 32;
const OPEN: u64 = 1 << 33;
const CLOSING: u64 = 1 << 34;
const WAITING: u64 = 1 << 35;
const ORPHAN: u64 = 1 << 36;
const GENERATION_SHIFT: u32 = 40;

/// The last generation a slot is used with (24 bits); then it is retired.
pub const GENERATION_MAX: u32 = (1 << 24) - 1;

fn generation(w: u64) -> u32 {
    (w >> GENERATION_SHIFT) as u32
}

fn with_generation(g: u32) -> u64 {
    u64::from(g) << GENERATION_SHIFT
}

/// What a call takes when it acquires the slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Take {
    /// A call of the socket's functions (send, receive, disconnect, the
    /// address queries): counted inside and holding; claims the slot's IRP
    /// if it is free.
    Call,
    /// The same without the IRP (the event-callback controls).
    CallWithoutIrp,
    /// The close: marks the slot CLOSING, holds it, claims the IRP if free.
    /// Not counted inside: it is the one that waits for those.
    Close,
}

/// A successful acquire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Acquired {
    /// The call claimed the slot's IRP (it gives the claim back on release).
    pub irp: bool,
    /// A close only: other calls were inside WSK when it began; it must
    /// wait for them ([`SlotState::wait_for_calls`]).
    pub must_wait: bool,
}

/// Why an acquire was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// Not this handle's socket any more (closed, being closed, another
    /// generation), or not published.
    Stale,
    /// A count would overflow (65,535 calls on one socket at once).
    Busy,
}

/// What a release did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Released {
    /// The slot is still in use.
    Kept,
    /// This was the last hold on a closed socket: the slot is free again,
    /// with the next generation; the caller recycles it.
    Free,
    /// As Free, but the generation is exhausted: the caller retires the
    /// slot (never handed out again).
    Retired,
}

/// See the module documentation.
pub struct SlotState {
    word: AtomicU64,
}

impl SlotState {
    /// A fresh slot: free, generation 1.
    pub fn new() -> SlotState {
        SlotState { word: AtomicU64::new(with_generation(1)) }
    }

    /// A free slot at generation `g` (tests of retirement).
    #[cfg(any(test, loom))]
    pub fn at_generation(g: u32) -> SlotState {
        SlotState { word: AtomicU64::new(with_generation(g)) }
    }

    /// The current generation.
    #[cfg(any(test, loom))]
    pub fn generation(&self) -> u32 {
        generation(self.word.load(Ordering::Acquire))
    }

    /// Reserves a free slot for a connect, which holds it and its IRP until
    /// [`SlotState::publish`] or [`SlotState::abandon`]. Returns the
    /// generation the socket's handle will carry.
    ///
    /// Only the owner of a free slot (the free list handed it out) calls
    /// this; nobody else writes a slot that is not OPEN.
    pub fn reserve(&self) -> u32 {
        let g = generation(self.word.load(Ordering::Acquire));
        self.word.store(with_generation(g) | HELD_ONE | IRP, Ordering::Release);
        g
    }

    /// The connect hands the socket to the driver: OPEN, the connect's hold
    /// and IRP claim given back. Release: the slot's fields written before
    /// are visible to whoever acquires the slot.
    pub fn publish(&self) {
        let g = generation(self.word.load(Ordering::Acquire));
        self.word.store(with_generation(g) | OPEN, Ordering::Release);
    }

    /// A reserved slot whose socket the library still has to close (a
    /// half-made socket whose close could not be issued): published as an
    /// orphan that no handle can acquire and cleanup closes.
    pub fn publish_orphan(&self) {
        let g = generation(self.word.load(Ordering::Acquire));
        self.word.store(with_generation(g) | OPEN | CLOSING | ORPHAN | HELD_ONE, Ordering::Release);
    }

    /// A reserved slot given up (the connect failed): free again with the
    /// next generation, or retired.
    pub fn abandon(&self) -> Released {
        let g = generation(self.word.load(Ordering::Acquire));
        let (next, released) = next_generation(g);
        self.word.store(next, Ordering::Release);
        released
    }

    /// Acquires the slot for a call of `take` with a handle of generation
    /// `g`: one compare-exchange against the whole word.
    pub fn acquire(&self, g: u32, take: Take) -> Result<Acquired, Refused> {
        let mut w = self.word.load(Ordering::Acquire);
        loop {
            if generation(w) != g || w & OPEN == 0 || w & CLOSING != 0 {
                return Err(Refused::Stale);
            }
            if w & HELD == HELD || (take != Take::Close && w & INSIDE == INSIDE) {
                return Err(Refused::Busy);
            }
            let mut next = w + HELD_ONE;
            let irp = take != Take::CallWithoutIrp && w & IRP == 0;
            if irp {
                next |= IRP;
            }
            if take == Take::Close {
                next |= CLOSING;
            } else {
                next += INSIDE_ONE;
            }
            #[cfg(loom)]
            if mutation::active(mutation::Mutation::CheckThenAdd) {
                // The check-then-act race the issue names: checked above, then
                // added without comparing the generation again.
                let prev = self.word.fetch_add(next - w, Ordering::AcqRel);
                return Ok(Acquired { irp, must_wait: take == Take::Close && prev & INSIDE != 0 });
            }
            match self.word.compare_exchange_weak(w, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(Acquired { irp, must_wait: take == Take::Close && w & INSIDE != 0 }),
                Err(now) => w = now,
            }
        }
    }

    /// Whether a handle of generation `g` names an open socket now (the
    /// parameter check before the IRQL check; the acquire decides).
    pub fn is_open(&self, g: u32) -> bool {
        let w = self.word.load(Ordering::Acquire);
        generation(w) == g && w & OPEN != 0 && w & CLOSING == 0
    }

    /// Whether the socket of generation `g` is gone from the slot: freed
    /// (another generation) or retired (nothing held, not OPEN). Cleanup
    /// waits for this after closing a listening socket: the accepts pending
    /// on it hold the slot until their socket is handed out.
    pub fn released(&self, g: u32) -> bool {
        let w = self.word.load(Ordering::Acquire);
        #[cfg(loom)]
        if mutation::active(mutation::Mutation::ReleasedWhileHeld) {
            // Looks at the close only, not at the holds still pending.
            return generation(w) != g || w & OPEN == 0 || w & CLOSING != 0;
        }
        generation(w) != g || w & (OPEN | HELD) == 0
    }

    /// The generation of an open socket that is not being closed (cleanup's
    /// walk), or None.
    pub fn open_generation(&self) -> Option<u32> {
        let w = self.word.load(Ordering::Acquire);
        (w & OPEN != 0 && w & CLOSING == 0).then(|| generation(w))
    }

    /// A call counted inside has returned from its WSK function (its IRP may
    /// still be pending). True if it was the last one a waiting close waited
    /// for: the caller must wake that close (and touch the slot no more
    /// than its release).
    pub fn returned(&self) -> bool {
        #[cfg(loom)]
        if mutation::active(mutation::Mutation::ReturnedForgetsWaiter) {
            self.word.fetch_sub(INSIDE_ONE, Ordering::AcqRel);
            return false;
        }
        let prev = self.word.fetch_sub(INSIDE_ONE, Ordering::AcqRel);
        debug_assert!(prev & INSIDE != 0, "inside count underflow");
        // WAITING stays set: `inside` never rises again once CLOSING is set,
        // so exactly one call sees this transition.
        prev & WAITING != 0 && prev & INSIDE == INSIDE_ONE
    }

    /// Before a call that already returned from one of the socket's
    /// functions calls another (the abortive disconnect at a graceful one's
    /// deadline, the next flag of a disable): counted inside again, unless a
    /// close has begun (false: the call must not be made).
    pub fn call_again(&self) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                if w & CLOSING != 0 || w & INSIDE == INSIDE {
                    None
                } else {
                    Some(w + INSIDE_ONE)
                }
            })
            .is_ok()
    }

    /// The close (which acquired with `must_wait`), after storing where it
    /// waits: true if calls are still inside and it must sleep until the
    /// last one's [`SlotState::returned`] wakes it; false if they have all
    /// returned meanwhile.
    pub fn wait_for_calls(&self) -> bool {
        self.word
            .fetch_update(
                Ordering::AcqRel,
                Ordering::Acquire,
                |w| {
                    if w & INSIDE == 0 {
                        None
                    } else {
                        Some(w | WAITING)
                    }
                },
            )
            .is_ok()
    }

    /// How many calls are inside (for the model).
    #[cfg(loom)]
    pub fn calls_inside(&self) -> u32 {
        ((self.word.load(Ordering::Acquire) & INSIDE) >> 16) as u32
    }

    /// A close that could not be issued: the slot becomes the library's
    /// (ORPHAN; the close's hold stays, as the library's), its IRP claim is
    /// given back if `irp`.
    pub fn orphan(&self, irp: bool) {
        let clear = if irp { IRP } else { 0 };
        let _ = self.word.fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| Some((w & !clear) | ORPHAN));
    }

    /// Cleanup takes an orphan over (its hold becomes cleanup's close's), or
    /// None if the slot is not an orphan.
    pub fn adopt(&self) -> Option<Acquired> {
        let mut irp = false;
        let prev = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                if w & ORPHAN == 0 {
                    return None;
                }
                irp = w & IRP == 0;
                Some((w & !ORPHAN) | IRP)
            })
            .ok()?;
        Some(Acquired { irp, must_wait: prev & INSIDE != 0 })
    }

    /// Whether the slot is an orphan (cleanup's walk).
    pub fn is_orphan(&self) -> bool {
        self.word.load(Ordering::Acquire) & ORPHAN != 0
    }

    /// Gives back a hold (and the IRP claim if `irp`): one subtraction. The
    /// last hold on a closing slot frees it with the next generation (or
    /// retires it): once `held` is 0 on a closing slot nothing else writes
    /// the word (acquires and `call_again` refuse CLOSING, and every other
    /// write is a holder's), so the store that follows is the only one.
    pub fn release(&self, irp: bool) -> Released {
        let sub = HELD_ONE + if irp { IRP } else { 0 };
        let prev = self.word.fetch_sub(sub, Ordering::AcqRel);
        debug_assert!(prev & HELD != 0, "hold count underflow");
        let n = prev - sub;
        #[cfg(loom)]
        if mutation::active(mutation::Mutation::FreeWithCallsHeld) && n & CLOSING != 0 && n & INSIDE == 0 {
            // Frees when no call is inside, ignoring those still holding.
            let (next, r) = next_generation(generation(prev));
            self.word.store(next, Ordering::Release);
            return r;
        }
        if n & CLOSING == 0 || n & HELD != 0 {
            return Released::Kept;
        }
        let (next, released) = next_generation(generation(prev));
        self.word.store(next, Ordering::Release);
        released
    }
}

impl Default for SlotState {
    fn default() -> Self {
        Self::new()
    }
}

/// The free word after generation `g`, and whether the slot is retired.
fn next_generation(g: u32) -> (u64, Released) {
    #[cfg(loom)]
    if mutation::active(mutation::Mutation::WrapGeneration) && g >= GENERATION_MAX {
        return (with_generation(1), Released::Free);
    }
    if g >= GENERATION_MAX {
        (with_generation(g), Released::Retired)
    } else {
        (with_generation(g + 1), Released::Free)
    }
}

/// Deliberate defects, switched on one at a time by the loom tests to show
/// that the model catches each (`#[should_panic]`). Compiled only under
/// loom; run those tests with `--test-threads=1` (one process-wide switch).
#[cfg(loom)]
pub(crate) mod mutation {
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Copy, PartialEq, Eq)]
    #[repr(usize)]
    pub enum Mutation {
        None = 0,
        CheckThenAdd,
        ReturnedForgetsWaiter,
        FreeWithCallsHeld,
        WrapGeneration,
        ReleasedWhileHeld,
    }

    static ACTIVE: AtomicUsize = AtomicUsize::new(0);

    pub fn active(m: Mutation) -> bool {
        ACTIVE.load(Ordering::SeqCst) == m as usize
    }

    /// Runs `f` with `m` switched on.
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

/// The transitions one thread at a time.
#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_socket_life() {
        let s = SlotState::new();
        let g = s.reserve();
        assert_eq!(g, 1);
        assert_eq!(s.acquire(g, Take::Call), Err(Refused::Stale), "not published yet");
        s.publish();
        let a = s.acquire(g, Take::Call);
        assert_eq!(a, Ok(Acquired { irp: true, must_wait: false }));
        let b = s.acquire(g, Take::Call);
        assert_eq!(b, Ok(Acquired { irp: false, must_wait: false }), "the IRP is claimed once");
        assert_eq!(s.acquire(g + 1, Take::Call), Err(Refused::Stale), "another generation");
        assert!(!s.returned());
        assert_eq!(s.release(true), Released::Kept);
        let c = s.acquire(g, Take::Close);
        assert_eq!(c, Ok(Acquired { irp: true, must_wait: true }), "b is still inside");
        assert_eq!(s.acquire(g, Take::Call), Err(Refused::Stale), "closing");
        assert_eq!(s.acquire(g, Take::Close), Err(Refused::Stale), "a second close");
        assert!(!s.call_again(), "nothing calls the socket's functions once it closes");
        assert!(s.wait_for_calls());
        assert!(s.returned(), "b was the last one inside: it wakes the close");
        assert_eq!(s.release(true), Released::Kept, "b still holds");
        assert_eq!(s.release(false), Released::Free, "the last hold frees the slot");
        assert_eq!(s.generation(), 2);
        assert_eq!(s.acquire(g, Take::Call), Err(Refused::Stale), "a stale handle");
    }

    #[test]
    fn a_pending_call_keeps_the_slot_but_not_the_close() {
        let s = SlotState::new();
        let g = s.reserve();
        s.publish();
        // A receive pending with no timeout: returned from WskReceive, holds
        // the slot until its IRP completes.
        assert!(s.acquire(g, Take::Call).is_ok());
        assert!(!s.returned());
        let close = s.acquire(g, Take::Close);
        assert_eq!(close, Ok(Acquired { irp: false, must_wait: false }), "nothing inside: no wait");
        assert_eq!(s.release(false), Released::Kept, "the close ends, the receive still holds");
        assert!(!s.released(g), "a pending call (an accept) still holds the closed socket's slot");
        assert_eq!(s.release(true), Released::Free, "the receive's release frees the slot");
        assert!(s.released(g), "freed: the next generation");
        let r = SlotState::at_generation(GENERATION_MAX);
        let g = r.reserve();
        assert!(!r.released(g), "reserved");
        r.publish();
        assert!(!r.released(g), "open");
        assert!(r.acquire(g, Take::Close).is_ok());
        assert_eq!(r.release(true), Released::Retired);
        assert!(r.released(g), "retired: same generation, nothing held");
    }

    #[test]
    fn generations_retire_instead_of_wrapping() {
        let s = SlotState::at_generation(GENERATION_MAX);
        let g = s.reserve();
        s.publish();
        assert!(s.acquire(g, Take::Close).is_ok());
        assert_eq!(s.release(true), Released::Retired);
        assert_eq!(s.generation(), GENERATION_MAX);
        assert_eq!(s.acquire(g, Take::Call), Err(Refused::Stale), "a retired slot refuses its last handle");
        let t = SlotState::at_generation(GENERATION_MAX);
        assert_eq!(t.abandon(), Released::Retired);
    }

    #[test]
    fn orphans_are_adopted_once() {
        let s = SlotState::new();
        let g = s.reserve();
        s.publish();
        let c = s.acquire(g, Take::Close);
        assert!(c.is_ok());
        s.orphan(true);
        assert!(s.is_orphan());
        assert_eq!(s.acquire(g, Take::Call), Err(Refused::Stale));
        assert_eq!(s.adopt(), Some(Acquired { irp: true, must_wait: false }), "cleanup adopts it");
        assert!(!s.is_orphan());
        assert_eq!(s.release(true), Released::Free, "the adopted close's release frees it");
        let s = SlotState::new();
        s.reserve();
        s.publish_orphan();
        assert_eq!(s.adopt(), Some(Acquired { irp: true, must_wait: false }));
        assert_eq!(s.adopt(), None, "adopted once");
        assert_eq!(s.release(true), Released::Free);
    }

    #[test]
    fn counts_that_would_overflow_are_refused() {
        let s = SlotState::new();
        let g = s.reserve();
        s.publish();
        for _ in 0..0xFFFF {
            assert!(s.acquire(g, Take::CallWithoutIrp).is_ok());
        }
        assert_eq!(s.acquire(g, Take::CallWithoutIrp), Err(Refused::Busy));
        assert_eq!(s.acquire(g, Take::Close), Err(Refused::Busy));
        assert!(!s.call_again());
    }
}

/// The socket's calls against its close, the slot's reuse and the handle
/// that outlived its socket. Run with `RUSTFLAGS="--cfg loom" cargo test
/// --release --lib handles::state -- --test-threads=1`.
#[cfg(all(test, loom))]
mod loom_model {
    use super::mutation::{self, Mutation};
    use super::*;
    use loom::sync::atomic::AtomicBool;
    use loom::sync::{Arc, Condvar, Mutex};
    use loom::thread;

    /// One socket in a slot, with the things the kernel would do to it: a
    /// WSK function that must not run after WskCloseSocket, and the slot's
    /// reuse by the next socket.
    struct Socket {
        state: SlotState,
        /// WskCloseSocket has run: the WSK_SOCKET is freed.
        closed: AtomicBool,
        /// The slot was freed and may belong to the next socket.
        recycled: AtomicBool,
        /// The close's KEVENT.
        event: Mutex<bool>,
        wake: Condvar,
    }

    impl Socket {
        fn open() -> (Arc<Socket>, u32) {
            let s = Arc::new(Socket {
                state: SlotState::new(),
                closed: AtomicBool::new(false),
                recycled: AtomicBool::new(false),
                event: Mutex::new(false),
                wake: Condvar::new(),
            });
            let g = s.state.reserve();
            s.state.publish();
            (s, g)
        }

        fn release(&self, irp: bool) {
            match self.state.release(irp) {
                Released::Kept => {}
                Released::Free | Released::Retired => {
                    assert!(!self.recycled.swap(true, Ordering::SeqCst), "a slot freed twice");
                }
            }
        }

        /// A send: acquire, call the WSK function, returned, release.
        fn call(&self, g: u32) {
            if let Ok(a) = self.state.acquire(g, Take::Call) {
                assert_eq!(self.state.generation(), g, "a handle acquired another generation's socket");
                assert!(!self.recycled.load(Ordering::SeqCst), "a call acquired a recycled slot");
                assert!(!self.closed.load(Ordering::SeqCst), "WskSend after WskCloseSocket");
                if self.state.returned() {
                    *self.event.lock().unwrap() = true;
                    self.wake.notify_all();
                }
                // The IRP may still pend here: the close does not wait for it.
                assert!(!self.recycled.load(Ordering::SeqCst), "the slot was recycled under a holder");
                self.release(a.irp);
            }
        }

        /// SafeWskCloseSocket.
        fn close(&self, g: u32) -> bool {
            let Ok(a) = self.state.acquire(g, Take::Close) else { return false };
            if a.must_wait && self.state.wait_for_calls() {
                let mut set = self.event.lock().unwrap();
                while !*set {
                    set = self.wake.wait(set).unwrap();
                }
            }
            assert!(!self.closed.swap(true, Ordering::SeqCst), "closed twice");
            self.release(a.irp);
            true
        }
    }

    fn model(f: impl Fn() + Sync + Send + 'static) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(f);
    }

    /// Two calls and a close: the close waits for the calls inside, never
    /// for a missed signal (loom reports a deadlock), runs exactly once, and
    /// the slot is freed exactly once, after the last hold.
    fn calls_against_close() {
        model(|| {
            let (s, g) = Socket::open();
            let t1 = {
                let s = s.clone();
                thread::spawn(move || s.call(g))
            };
            let t2 = {
                let s = s.clone();
                thread::spawn(move || s.call(g))
            };
            assert!(s.close(g), "the only close must succeed");
            t1.join().unwrap();
            t2.join().unwrap();
            assert!(s.recycled.load(Ordering::SeqCst), "the slot must be freed once everyone let go");
            assert_eq!(s.state.generation(), g + 1);
        });
    }

    #[test]
    fn calls_race_the_close() {
        calls_against_close();
    }

    #[test]
    #[should_panic]
    fn the_model_catches_a_returned_that_forgets_the_waiting_close() {
        mutation::with(Mutation::ReturnedForgetsWaiter, calls_against_close);
    }

    #[test]
    #[should_panic]
    fn the_model_catches_freeing_while_a_pending_call_holds() {
        mutation::with(Mutation::FreeWithCallsHeld, calls_against_close);
    }

    /// A stale handle (a double close, a send after close) racing the slot's
    /// reuse by the next socket: it never acquires the new socket.
    fn stale_handle_against_reuse() {
        model(|| {
            let (s, g) = Socket::open();
            let stale = {
                let s = s.clone();
                thread::spawn(move || {
                    // A send with the old handle: refused, or it got in
                    // before the close and the close waited for it.
                    s.call(g);
                    // A second close: only ever one.
                    let _ = s.close(g);
                })
            };
            let closed = s.close(g);
            // The next connect reuses the slot as soon as it is free.
            if s.recycled.load(Ordering::SeqCst) {
                s.recycled.store(false, Ordering::SeqCst);
                s.closed.store(false, Ordering::SeqCst);
                let g2 = s.state.reserve();
                assert_ne!(g2, g);
                s.state.publish();
                // The old handle must not reach the new socket.
                assert_eq!(s.state.acquire(g, Take::Call), Err(Refused::Stale));
                assert!(s.state.acquire(g2, Take::Call).is_ok(), "the new socket's own handle works");
            }
            stale.join().unwrap();
            let _ = closed;
        });
    }

    #[test]
    fn a_stale_handle_never_reaches_the_next_socket() {
        stale_handle_against_reuse();
    }

    #[test]
    #[should_panic]
    fn the_model_catches_check_then_add() {
        mutation::with(Mutation::CheckThenAdd, stale_handle_against_reuse);
    }

    /// A pending receive (returned from WSK, IRP still pending) does not
    /// hold the close back, and the slot is freed only when it lets go.
    #[test]
    fn a_close_with_a_pending_irp() {
        model(|| {
            let (s, g) = Socket::open();
            let a = s.state.acquire(g, Take::Call).unwrap();
            let _ = s.state.returned();
            let closer = {
                let s = s.clone();
                thread::spawn(move || assert!(s.close(g)))
            };
            // The receive's IRP completes (the close completes it) and it
            // lets go.
            closer.join().unwrap();
            assert!(!s.recycled.load(Ordering::SeqCst), "freed while the receive holds");
            s.release(a.irp);
            assert!(s.recycled.load(Ordering::SeqCst));
        });
    }

    /// A listening socket with an accept pending (returned from WskAccept,
    /// holding the slot until it has handed out its accepted socket) against
    /// cleanup, which closes the listening socket and then waits until its
    /// slot is released before it walks the table for the sockets left
    /// open: the walk never runs before the accepted socket is handed out
    /// (else that socket would be left open and cleanup would wait for it
    /// for ever).
    fn accept_against_cleanup() {
        model(|| {
            let (s, g) = Socket::open();
            // SafeWskAccept / SafeWskAcceptAsync: acquired, inside WskAccept,
            // returned (the IRP pends), still holding.
            let a = s.state.acquire(g, Take::Call).unwrap();
            let _ = s.state.returned();
            let handed_out = Arc::new(AtomicBool::new(false));
            let acceptor = {
                let (s, handed_out) = (s.clone(), handed_out.clone());
                thread::spawn(move || {
                    // The accept's IRP completes: the socket is published,
                    // then the listening socket's hold given back.
                    handed_out.store(true, Ordering::SeqCst);
                    s.release(a.irp);
                })
            };
            // Cleanup: close the listening socket (does not wait for the
            // pending accept), then wait until its slot is released.
            assert!(s.close(g));
            while !s.state.released(g) {
                thread::yield_now();
            }
            let walked_early = !handed_out.load(Ordering::SeqCst);
            acceptor.join().unwrap();
            assert!(!walked_early, "cleanup walked before the accept handed out its socket");
            assert!(s.recycled.load(Ordering::SeqCst));
        });
    }

    #[test]
    fn cleanup_waits_for_the_accepts_of_a_listening_socket() {
        accept_against_cleanup();
    }

    #[test]
    #[should_panic]
    fn the_model_catches_a_release_check_that_ignores_holds() {
        mutation::with(Mutation::ReleasedWhileHeld, accept_against_cleanup);
    }

    /// Retirement: the last generation's slot never comes back, and its
    /// handle stays refused.
    fn retirement() {
        model(|| {
            let s = Arc::new(SlotState::at_generation(GENERATION_MAX));
            let g = s.reserve();
            s.publish();
            let t = {
                let s = s.clone();
                thread::spawn(move || {
                    if let Ok(a) = s.acquire(g, Take::Call) {
                        let _ = s.returned();
                        let _ = s.release(a.irp);
                    }
                })
            };
            let c = s.acquire(g, Take::Close).unwrap();
            if c.must_wait {
                // (no event in this model: spin until the call returned)
                while s.calls_inside() != 0 {
                    thread::yield_now();
                }
            }
            let r = s.release(c.irp);
            t.join().unwrap();
            if r == Released::Kept {
                // The call released last and freed it.
            }
            assert_eq!(s.acquire(g, Take::Call), Err(Refused::Stale), "the last generation's handle");
            assert_eq!(s.generation(), GENERATION_MAX, "a retired slot keeps its last generation");
        });
    }

    #[test]
    fn exhausted_generations_retire() {
        retirement();
    }

    #[test]
    #[should_panic]
    fn the_model_catches_a_generation_that_wraps() {
        mutation::with(Mutation::WrapGeneration, retirement);
    }
}
