//! KeQueryPerformanceCounter: a monotonic counter and its frequency (here
//! nanoseconds since the first call in this process, at 1 GHz), callable at
//! any IRQL.

use std::sync::OnceLock;
use std::time::Instant;

static BOOT: OnceLock<Instant> = OnceLock::new();

/// Counts per second.
const FREQUENCY: i64 = 1_000_000_000;

#[no_mangle]
pub unsafe extern "system" fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64 {
    if !frequency.is_null() {
        // SAFETY: the caller's LARGE_INTEGER, or NULL (checked).
        unsafe { frequency.write_unaligned(FREQUENCY) };
    }
    let boot = BOOT.get_or_init(Instant::now);
    // Start at one second rather than zero, as a machine that booted does.
    i64::try_from(boot.elapsed().as_nanos()).unwrap_or(i64::MAX).saturating_add(FREQUENCY)
}
