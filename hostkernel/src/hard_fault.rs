//! How long a hard page fault takes (review of issue 12).
//!
//! MmProbeAndLockPages "makes the pages resident" (MmProbeAndLockPages,
//! Microsoft Learn): for a paged-out page that is a read from the paging
//! file, which on Windows takes milliseconds to seconds, during which the
//! calling thread is blocked. The host kernel pages in at once unless a test
//! asks for that time with [`set_page_in_delay`]: then every
//! MmProbeAndLockPages that had to page something in sleeps for it (outside
//! the host kernel's locks), which opens the window between a call's start
//! and its WSK function for other threads deterministically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// From now on, each MmProbeAndLockPages that pages in paged-out memory
/// takes `delay` (None: no time). Reset by `Session::begin`.
pub fn set_page_in_delay(delay: Option<Duration>) {
    let ms = delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    DELAY_MS.store(ms, Ordering::SeqCst);
}

/// Per-session reset.
pub(crate) fn reset() {
    DELAY_MS.store(0, Ordering::SeqCst);
}

/// Called by MmProbeAndLockPages after it paged in `pages` pages.
pub(crate) fn after_page_in(pages: usize) {
    if pages > 0 {
        crate::hold::pass(crate::hold::HoldPoint::PageIn);
    }
    let ms = DELAY_MS.load(Ordering::SeqCst);
    if pages > 0 && ms > 0 {
        std::thread::sleep(Duration::from_millis(ms));
    }
}
