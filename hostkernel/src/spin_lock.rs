//! Spin locks: KeInitializeSpinLock, KeAcquireSpinLockRaiseToDpc (what
//! KeAcquireSpinLock is on 64-bit Windows), KeReleaseSpinLock,
//! KeAcquireSpinLockAtDpcLevel, KeReleaseSpinLockFromDpcLevel,
//! KeTryToAcquireSpinLockAtDpcLevel and the in-stack queued spin locks
//! (KeAcquireInStackQueuedSpinLock and its AtDpcLevel form,
//! KeReleaseInStackQueuedSpinLock and its FromDpcLevel form), on the
//! caller's KSPIN_LOCK word (the queue of a queued lock is not modelled:
//! waiters spin on the word, so FIFO fairness is not emulated).
//!
//! Checks (Microsoft Learn, each routine's page): the RaiseToDpc and
//! in-stack forms at IRQL <= DISPATCH_LEVEL, the AtDpcLevel / FromDpcLevel
//! forms at IRQL >= DISPATCH_LEVEL; acquiring a lock this thread already
//! holds (a deadlock on Windows); releasing a lock this thread does not hold.
//!
//! Counted (issue 17: "0 spin-lock acquisitions by safewsk on send/receive"):
//! every call of an acquiring routine (KeTryToAcquireSpinLockAtDpcLevel
//! included, whether or not it gets the lock), in total since the session
//! began ([`spin_lock_acquisitions`]) and per thread
//! ([`spin_lock_acquisitions_on_this_thread`]). The host kernel's own
//! locking (Rust mutexes, atomics) never goes through these exports, so
//! what is counted is driver code: the library, the C sample, or a test
//! that calls the exports itself.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::check::violation;
use crate::irql;
use crate::nt::*;

static ACQUISITIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static ACQUISITIONS_HERE: Cell<u64> = const { Cell::new(0) };
}

/// Calls of the spin-lock acquiring routines (all threads) since the
/// session began.
pub fn spin_lock_acquisitions() -> u64 {
    ACQUISITIONS.load(Ordering::SeqCst)
}

/// Calls of the spin-lock acquiring routines the calling thread has made
/// (since the thread began; never reset).
pub fn spin_lock_acquisitions_on_this_thread() -> u64 {
    ACQUISITIONS_HERE.with(|n| n.get())
}

/// Per-session reset of the total.
pub(crate) fn reset() {
    ACQUISITIONS.store(0, Ordering::SeqCst);
}

fn count() {
    ACQUISITIONS.fetch_add(1, Ordering::SeqCst);
    ACQUISITIONS_HERE.with(|n| n.set(n.get() + 1));
}

/// The KSPIN_LOCK word.
///
/// # Safety
/// `lock` points to a live KSPIN_LOCK (a pointer-sized, pointer-aligned
/// word) accessed only through these routines while they use it.
unsafe fn word<'a>(lock: *mut usize) -> &'a AtomicUsize {
    // SAFETY: per the contract.
    unsafe { AtomicUsize::from_ptr(lock) }
}

fn check_irql(who: &str, at_dpc_level: bool) {
    let irql = irql::current();
    if at_dpc_level && irql < DISPATCH_LEVEL {
        violation(format!("{who} at IRQL {irql}: its callers run at IRQL >= DISPATCH_LEVEL"));
    } else if !at_dpc_level && irql > DISPATCH_LEVEL {
        violation(format!("{who} at IRQL {irql} (above DISPATCH_LEVEL)"));
    }
}

/// Spins until this thread holds `lock` (or, with `once`, tries once).
///
/// # Safety
/// As [`word`].
unsafe fn acquire(lock: *mut usize, who: &str, once: bool) -> bool {
    count();
    // SAFETY: per the caller.
    let word = unsafe { word(lock) };
    let me = irql::thread_token();
    if !once && word.load(Ordering::Relaxed) == me {
        violation(format!("{who}: this thread already holds the lock (a deadlock on Windows)"));
    }
    let mut spins = 0u32;
    while word.compare_exchange_weak(0, me, Ordering::Acquire, Ordering::Relaxed).is_err() {
        if once && word.load(Ordering::Relaxed) != 0 {
            return false;
        }
        spins += 1;
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        }
        std::hint::spin_loop();
    }
    true
}

/// Releases `lock`, which this thread must hold.
///
/// # Safety
/// As [`word`].
unsafe fn release(lock: *mut usize, who: &str) {
    // SAFETY: per the caller.
    let word = unsafe { word(lock) };
    if word.swap(0, Ordering::Release) != irql::thread_token() {
        violation(format!("{who}: the lock is not held by this thread"));
    }
}

/// KeInitializeSpinLock (an inline on x64 wdm.h, an export as well).
#[no_mangle]
pub unsafe extern "system" fn KeInitializeSpinLock(lock: *mut usize) {
    // SAFETY: the caller's KSPIN_LOCK.
    unsafe { word(lock) }.store(0, Ordering::Release);
}

/// KeAcquireSpinLockRaiseToDpc (KeAcquireSpinLock on 64-bit Windows): spins
/// on the KSPIN_LOCK word and raises the IRQL to DISPATCH_LEVEL.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireSpinLockRaiseToDpc(lock: *mut usize) -> u8 {
    let old = irql::current();
    check_irql("KeAcquireSpinLock", false);
    // SAFETY: the caller's KSPIN_LOCK.
    unsafe { acquire(lock, "KeAcquireSpinLock", false) };
    irql::set(DISPATCH_LEVEL);
    old
}

/// KeReleaseSpinLock: releases and restores the IRQL.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseSpinLock(lock: *mut usize, new_irql: u8) {
    // SAFETY: the caller's KSPIN_LOCK.
    unsafe { release(lock, "KeReleaseSpinLock") };
    irql::set(new_irql);
}

/// KeAcquireSpinLockAtDpcLevel: the caller is at DISPATCH_LEVEL already.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireSpinLockAtDpcLevel(lock: *mut usize) {
    check_irql("KeAcquireSpinLockAtDpcLevel", true);
    // SAFETY: the caller's KSPIN_LOCK.
    unsafe { acquire(lock, "KeAcquireSpinLockAtDpcLevel", false) };
}

/// KeReleaseSpinLockFromDpcLevel: the IRQL stays.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseSpinLockFromDpcLevel(lock: *mut usize) {
    check_irql("KeReleaseSpinLockFromDpcLevel", true);
    // SAFETY: the caller's KSPIN_LOCK.
    unsafe { release(lock, "KeReleaseSpinLockFromDpcLevel") };
}

/// KeTryToAcquireSpinLockAtDpcLevel: TRUE if the lock was acquired.
#[no_mangle]
pub unsafe extern "system" fn KeTryToAcquireSpinLockAtDpcLevel(lock: *mut usize) -> u8 {
    check_irql("KeTryToAcquireSpinLockAtDpcLevel", true);
    // SAFETY: the caller's KSPIN_LOCK.
    u8::from(unsafe { acquire(lock, "KeTryToAcquireSpinLockAtDpcLevel", true) })
}

/// KLOCK_QUEUE_HANDLE (x64): { KSPIN_LOCK_QUEUE { Next, Lock }, OldIrql }.
const HANDLE_LOCK: usize = 8;
const HANDLE_OLD_IRQL: usize = 16;

/// KeAcquireInStackQueuedSpinLock(SpinLock, LockHandle): raises to
/// DISPATCH_LEVEL; the handle (caller storage) records the lock and the old
/// IRQL for the release.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireInStackQueuedSpinLock(lock: *mut usize, handle: PVOID) {
    let old = irql::current();
    check_irql("KeAcquireInStackQueuedSpinLock", false);
    // SAFETY: the caller's KSPIN_LOCK.
    unsafe { acquire(lock, "KeAcquireInStackQueuedSpinLock", false) };
    irql::set(DISPATCH_LEVEL);
    // SAFETY: the caller's writable KLOCK_QUEUE_HANDLE (24 bytes); Next at 0.
    unsafe { wr(handle, 0, 0usize) };
    // SAFETY: as above; LockQueue.Lock at 8.
    unsafe { wr(handle, HANDLE_LOCK, lock as usize) };
    // SAFETY: as above; OldIrql at 16.
    unsafe { wr(handle, HANDLE_OLD_IRQL, old) };
}

/// KeReleaseInStackQueuedSpinLock(LockHandle): releases the lock the handle
/// names and restores the IRQL it saved.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseInStackQueuedSpinLock(handle: PVOID) {
    // SAFETY: the caller's KLOCK_QUEUE_HANDLE, filled in by the acquire.
    let lock = unsafe { rd::<usize>(handle, HANDLE_LOCK) } as *mut usize;
    // SAFETY: as above.
    let old = unsafe { rd::<u8>(handle, HANDLE_OLD_IRQL) };
    // SAFETY: the KSPIN_LOCK the acquire recorded.
    unsafe { release(lock, "KeReleaseInStackQueuedSpinLock") };
    irql::set(old);
}

/// KeAcquireInStackQueuedSpinLockAtDpcLevel: the caller is at
/// DISPATCH_LEVEL already.
#[no_mangle]
pub unsafe extern "system" fn KeAcquireInStackQueuedSpinLockAtDpcLevel(lock: *mut usize, handle: PVOID) {
    check_irql("KeAcquireInStackQueuedSpinLockAtDpcLevel", true);
    // SAFETY: the caller's KSPIN_LOCK.
    unsafe { acquire(lock, "KeAcquireInStackQueuedSpinLockAtDpcLevel", false) };
    // SAFETY: the caller's writable KLOCK_QUEUE_HANDLE (24 bytes); Next at 0.
    unsafe { wr(handle, 0, 0usize) };
    // SAFETY: as above; LockQueue.Lock at 8.
    unsafe { wr(handle, HANDLE_LOCK, lock as usize) };
}

/// KeReleaseInStackQueuedSpinLockFromDpcLevel: the IRQL stays.
#[no_mangle]
pub unsafe extern "system" fn KeReleaseInStackQueuedSpinLockFromDpcLevel(handle: PVOID) {
    check_irql("KeReleaseInStackQueuedSpinLockFromDpcLevel", true);
    // SAFETY: the caller's KLOCK_QUEUE_HANDLE, filled in by the acquire.
    let lock = unsafe { rd::<usize>(handle, HANDLE_LOCK) } as *mut usize;
    // SAFETY: the KSPIN_LOCK the acquire recorded.
    unsafe { release(lock, "KeReleaseInStackQueuedSpinLockFromDpcLevel") };
}
