//! Time: the one deadline type every call that takes several steps uses
//! (by name, with options, disabling callbacks, a graceful disconnect that
//! turns abortive), and the meaning of `TimeoutMs` everywhere.
//!
//! Every `TimeoutMs` of the API means the same:
//! - SAFEWSK_NO_TIMEOUT (0xFFFFFFFF): no deadline; the call waits as long
//!   as the provider takes;
//! - 0: the call is not waited for: unless the provider completes it
//!   synchronously (its WSK function returns a status other than
//!   STATUS_PENDING), its IRP is cancelled at once and, once the cancelled
//!   IRP has completed, STATUS_IO_TIMEOUT returned (or the IRP's own status
//!   if it completed before the cancel took effect). Deterministic for a
//!   given provider: a completion racing in on another processor after the
//!   function returned STATUS_PENDING does not count as synchronous;
//! - anything else: milliseconds, measured with KeQueryPerformanceCounter
//!   (a monotonic clock), for the whole call: each step gets what is left.

use crate::kernel::nt::*;
use crate::kernel::platform;

/// `TimeoutMs` value for no deadline.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_NO_TIMEOUT: ULONG = 0xFFFF_FFFF as ULONG;

/// One deadline over the steps of a call.
#[derive(Clone, Copy)]
pub struct Deadline {
    /// In [`platform::now_ms`] time; None: no deadline.
    end_ms: Option<u64>,
}

impl Deadline {
    /// The deadline `timeout_ms` from now (SAFEWSK_NO_TIMEOUT: none).
    pub fn start(timeout_ms: ULONG) -> Deadline {
        let end_ms =
            (timeout_ms != SAFEWSK_NO_TIMEOUT).then(|| platform::now_ms().saturating_add(u64::from(timeout_ms)));
        Deadline { end_ms }
    }

    /// What is left, as the next step's `TimeoutMs`: SAFEWSK_NO_TIMEOUT for
    /// no deadline, 0 once it has passed (the step is then not waited for),
    /// otherwise below SAFEWSK_NO_TIMEOUT (never mistaken for "none").
    pub fn remaining(&self) -> ULONG {
        match self.end_ms {
            None => SAFEWSK_NO_TIMEOUT,
            Some(end) => {
                let left = end.saturating_sub(platform::now_ms());
                ULONG::try_from(left).unwrap_or(SAFEWSK_NO_TIMEOUT - 1).min(SAFEWSK_NO_TIMEOUT - 1)
            }
        }
    }

    /// Whether the deadline has passed (never, without one).
    pub fn passed(&self) -> bool {
        self.end_ms.is_some() && self.remaining() == 0
    }
}
