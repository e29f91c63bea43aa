//! KeQueryInterruptTime: 100 ns units since "boot" (here: since the first
//! call in this process), monotonic, callable at any IRQL.

use std::sync::OnceLock;
use std::time::Instant;

static BOOT: OnceLock<Instant> = OnceLock::new();

#[no_mangle]
pub extern "system" fn KeQueryInterruptTime() -> u64 {
    let boot = BOOT.get_or_init(Instant::now);
    // Start at one second rather than zero, as a machine that booted does.
    u64::try_from(boot.elapsed().as_nanos() / 100).unwrap_or(u64::MAX).saturating_add(10_000_000)
}
