//! IRQL: a per-thread value. Provider threads complete IRPs at
//! DISPATCH_LEVEL, the way WSK completes from DPCs, so a completion routine
//! that waits or touches pageable state is caught.

use std::cell::Cell;

use crate::nt::*;

thread_local! {
    static IRQL: Cell<u8> = const { Cell::new(PASSIVE_LEVEL) };
}

/// A non-zero word that identifies the calling thread (the spin lock owner).
pub(crate) fn thread_token() -> usize {
    thread_local! {
        static TOKEN: u8 = const { 0 };
    }
    TOKEN.with(|t| t as *const u8 as usize)
}

/// The calling thread's IRQL.
pub fn current() -> u8 {
    IRQL.with(|i| i.get())
}

pub(crate) fn set(irql: u8) {
    IRQL.with(|i| i.set(irql));
}

/// Runs `f` with the calling thread at `irql`, then restores the old IRQL.
pub fn with_irql<R>(irql: u8, f: impl FnOnce() -> R) -> R {
    let old = current();
    set(irql);
    let r = f();
    set(old);
    r
}

/// `KeGetCurrentIrql` (an inline reading CR8 on x64 Windows; an export here).
#[no_mangle]
pub extern "system" fn KeGetCurrentIrql() -> u8 {
    current()
}
