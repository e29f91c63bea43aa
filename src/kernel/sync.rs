//! Kernel synchronization objects the kernel writes, behind small wrappers.
//!
//! As in the Rust-for-Linux `kernel` crate (`Opaque<T>`, `sync/completion.rs`),
//! a KEVENT or KSPIN_LOCK that the kernel modifies through a pointer lives in
//! an `UnsafeCell`, so handing its address to the kernel from a shared
//! reference is sound, and every kernel call on it goes through one method
//! with one `// SAFETY:` argument.

use core::cell::UnsafeCell;
use core::mem::MaybeUninit;

use crate::nt::*;
use crate::platform;

/// A notification KEVENT in resident storage.
///
/// # Invariants
/// Once [`Event::init`] has run, the event is initialized for as long as the
/// storage lives, and it is never initialized again while someone may wait
/// on it (KeInitializeEvent empties the wait list: a waiter would never wake;
/// ReactOS `ntoskrnl/ke/eventobj.c`).
#[repr(transparent)]
pub struct Event(UnsafeCell<MaybeUninit<KEVENT>>);

// SAFETY: a KEVENT is designed to be signalled, cleared and waited on from
// any thread; every access goes through the kernel's own synchronization.
unsafe impl Sync for Event {}
// SAFETY: as above; the storage itself carries no thread affinity.
unsafe impl Send for Event {}

impl Event {
    /// Storage for an event (left for KeInitializeEvent to write);
    /// [`Event::init`] must run before any other use.
    pub const fn new() -> Event {
        Event(UnsafeCell::new(MaybeUninit::uninit()))
    }

    fn raw(&self) -> *mut KEVENT {
        self.0.get().cast()
    }

    /// `KeInitializeEvent(NotificationEvent, FALSE)`.
    ///
    /// # Safety
    /// The storage is resident and stays at this address while the event is
    /// used; nobody waits on it or signals it now.
    pub unsafe fn init(&self) {
        // SAFETY: per the caller: resident storage with no waiter.
        unsafe { platform::init_event(self.raw()) }
    }

    /// `KeSetEvent(.., IO_NO_INCREMENT, FALSE)`; IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// Initialized and live.
    pub unsafe fn set(&self) {
        // SAFETY: per the caller.
        unsafe { platform::set_event(self.raw()) }
    }

    /// `KeClearEvent`; IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// Initialized and live.
    pub unsafe fn clear(&self) {
        // SAFETY: per the caller.
        unsafe { platform::clear_event(self.raw()) }
    }

    /// Waits up to `timeout_ms` (None: no limit); STATUS_SUCCESS or
    /// STATUS_TIMEOUT.
    ///
    /// # Safety
    /// Initialized and live until this returns; IRQL <= APC_LEVEL.
    pub unsafe fn wait(&self, timeout_ms: Option<ULONG>) -> NTSTATUS {
        // SAFETY: per the caller.
        unsafe { platform::wait_event(self.raw(), timeout_ms) }
    }
}

/// A KSPIN_LOCK. Holding it raises to DISPATCH_LEVEL.
#[repr(transparent)]
pub struct SpinLock(UnsafeCell<KSPIN_LOCK>);

// SAFETY: a spin lock exists to be taken from any thread.
unsafe impl Sync for SpinLock {}
// SAFETY: as above.
unsafe impl Send for SpinLock {}

/// A held [`SpinLock`]; dropping it releases the lock and restores the IRQL.
#[must_use]
pub struct SpinGuard<'a> {
    lock: &'a SpinLock,
    old: KIRQL,
}

impl SpinLock {
    /// An unlocked spin lock (KeInitializeSpinLock stores 0).
    pub const fn new() -> SpinLock {
        SpinLock(UnsafeCell::new(0))
    }

    /// Acquires the lock at IRQL <= DISPATCH_LEVEL.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL, and this thread does not hold the lock.
    pub unsafe fn lock(&self) -> SpinGuard<'_> {
        // SAFETY: per the caller; the KSPIN_LOCK lives in this UnsafeCell.
        let old = unsafe { platform::acquire_spin_lock(self.0.get()) };
        SpinGuard { lock: self, old }
    }
}

impl Drop for SpinGuard<'_> {
    fn drop(&mut self) {
        // SAFETY: this guard holds the lock, acquired with `old`.
        unsafe { platform::release_spin_lock(self.lock.0.get(), self.old) }
    }
}

/// A KTIMER with its KDPC, in resident storage (the asynchronous connect's
/// deadline).
///
/// # Invariants
/// Once [`Timer::init`] has run, timer and DPC are initialized for as long as
/// the storage lives; the kernel writes both while the timer is queued.
#[repr(C)]
pub struct Timer {
    timer: UnsafeCell<KTIMER>,
    dpc: UnsafeCell<KDPC>,
}

// SAFETY: a KTIMER and its KDPC are designed to be set and cancelled from
// any thread at IRQL <= DISPATCH_LEVEL; the kernel synchronizes them.
unsafe impl Sync for Timer {}
// SAFETY: as above.
unsafe impl Send for Timer {}

impl Timer {
    /// Storage for a timer; [`Timer::init`] must run, at its final address,
    /// before any other use.
    pub const fn new() -> Timer {
        Timer { timer: UnsafeCell::new(KTIMER { Opaque: [0; 0x40] }), dpc: UnsafeCell::new(KDPC { Opaque: [0; 0x40] }) }
    }

    /// `KeInitializeTimer` + `KeInitializeDpc(routine, context)`.
    ///
    /// # Safety
    /// Resident storage that stays at this address while the timer is used;
    /// the timer is not queued.
    pub unsafe fn init(&self, routine: PKDEFERRED_ROUTINE, context: PVOID) {
        // SAFETY: per the caller: resident, not queued; both live in this
        // value's UnsafeCells.
        unsafe { platform::init_timer(self.timer.get(), self.dpc.get(), routine, context) }
    }

    /// Queues the timer to run the DPC in `ms` milliseconds.
    ///
    /// # Safety
    /// Initialized; IRQL <= DISPATCH_LEVEL; the storage outlives the expiry.
    pub unsafe fn set(&self, ms: ULONG) -> bool {
        // SAFETY: per the caller.
        unsafe { platform::set_timer(self.timer.get(), self.dpc.get(), ms) }
    }

    /// `KeCancelTimer`: true if it removed a queued timer (see
    /// `request_state` for why that answer is not trusted alone).
    ///
    /// # Safety
    /// Initialized; IRQL <= DISPATCH_LEVEL.
    pub unsafe fn cancel(&self) -> bool {
        // SAFETY: per the caller.
        unsafe { platform::cancel_timer(self.timer.get()) }
    }
}
