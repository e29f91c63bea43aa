//! A WskCloseSocket that takes time (review of issue 12).
//!
//! PFN_WSK_CLOSE_SOCKET (Microsoft Learn) allows STATUS_PENDING: "The WSK
//! subsystem could not close the socket immediately. The WSK subsystem will
//! complete the IRP after it has closed the socket." The host kernel's close
//! normally cancels the socket's pending requests at once; with
//! [`set_close_delay`] it waits that long first (the WSK_SOCKET is already
//! gone for the caller: no function of it may be called any more), so tests
//! can make a close overlap another call's deadline deterministically.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// From now on, each WskCloseSocket pends for `delay` before it cancels the
/// socket's requests and completes (None: at once). Reset by
/// `Session::begin`.
pub fn set_close_delay(delay: Option<Duration>) {
    let ms = delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    DELAY_MS.store(ms, Ordering::SeqCst);
}

/// Per-session reset.
pub(crate) fn reset() {
    DELAY_MS.store(0, Ordering::SeqCst);
}

/// When a WskCloseSocket issued now may begin to end the socket's requests
/// (None: at once). The close's step waits for it on the reactor's timer
/// heap (`Step::Until`), without blocking a pool thread.
pub(crate) fn close_not_before() -> Option<Instant> {
    let ms = DELAY_MS.load(Ordering::SeqCst);
    (ms > 0).then(|| Instant::now() + Duration::from_millis(ms))
}
