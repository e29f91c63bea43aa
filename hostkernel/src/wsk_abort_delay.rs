//! An abortive WskDisconnect whose IRP takes time to complete (issue 18).
//!
//! An abortive disconnect resets the connection at once (the peer gets a
//! RST, and a graceful WskDisconnect still pending on the socket ends);
//! WSK may still complete its IRP later: PFN_WSK_DISCONNECT (Microsoft
//! Learn) allows STATUS_PENDING for every disconnect. With
//! [`set_abortive_disconnect_delay`] the host completes the abortive IRP
//! only after that delay (STATUS_SUCCESS), or when it is cancelled
//! (STATUS_CANCELLED), so a test can measure how long a caller waits for
//! it: safewsk's graceful disconnect that turns abortive at its deadline
//! gives the abortive one SAFEWSK_DISCONNECT_ABORT_MARGIN_MS, not a fresh
//! TimeoutMs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::nt::{STATUS_CANCELLED, WSK_FLAG_ABORTIVE};

static DELAY_MS: AtomicU64 = AtomicU64::new(0);

/// From now on each abortive WskDisconnect resets the connection at once
/// and completes its IRP `delay` later, or when cancelled (None: at once).
/// Reset by `Session::begin`.
pub fn set_abortive_disconnect_delay(delay: Option<Duration>) {
    let ms = delay.map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    DELAY_MS.store(ms, Ordering::SeqCst);
}

/// Per-session reset.
pub(crate) fn reset() {
    DELAY_MS.store(0, Ordering::SeqCst);
}

/// When a WskDisconnect with `flags` issued now may complete (None: when
/// its work is done, as usual).
pub(crate) fn abortive_done_at(flags: u32) -> Option<Instant> {
    let ms = DELAY_MS.load(Ordering::SeqCst);
    (flags & WSK_FLAG_ABORTIVE != 0 && ms > 0).then(|| Instant::now() + Duration::from_millis(ms))
}

/// The step of an abortive disconnect that has reset the connection: wait
/// until `done_at` (None: go on), unless cancelled.
pub(crate) fn pending(done_at: Option<Instant>, cancelled: bool) -> Option<crate::wsk::Step> {
    let at = done_at?;
    if cancelled {
        return Some(crate::wsk::Step::Done(STATUS_CANCELLED, 0));
    }
    (Instant::now() < at).then_some(crate::wsk::Step::Until(at))
}
