//! [`Timeout`]: how long a call may wait, mapped exactly onto the C API's
//! `TimeoutMs`.

use core::time::Duration;

use crate::kernel::deadline::SAFEWSK_NO_TIMEOUT;
use crate::kernel::nt::ULONG;

/// How long a call may wait: the `TimeoutMs` of the C export, as a type.
///
/// - [`Timeout::NEVER`] (or `None::<Duration>`): no deadline
///   (`SAFEWSK_NO_TIMEOUT`, 0xFFFFFFFF); the call waits as long as the
///   provider takes.
/// - [`Timeout::IMMEDIATE`] (or `Duration::ZERO`): `TimeoutMs` 0, *not
///   waited for*: unless the provider completes the operation
///   synchronously, it is cancelled at once and the call fails with
///   [`Error::IO_TIMEOUT`](super::Error::IO_TIMEOUT) (or returns the
///   operation's own result if it completed before the cancel took effect).
/// - any other `Duration`: whole milliseconds, **rounded up** (1 µs waits
///   1 ms: a non-zero duration never means "do not wait"), and at most
///   0xFFFFFFFE ms (about 49.7 days: a longer duration is clamped there and
///   never becomes "no deadline").
///
/// Every call that takes `impl Into<Timeout>` accepts a `Duration`, an
/// `Option<Duration>` or a `Timeout`. For [`Client::start`]'s wait for the
/// provider the same value is WskCaptureProviderNPI's `WaitTimeout`:
/// `IMMEDIATE` is `WSK_NO_WAIT`, `NEVER` is `WSK_INFINITE_WAIT` (the same
/// numbers, 0 and 0xFFFFFFFF).
///
/// [`Client::start`]: super::Client::start
///
/// ```
/// use core::time::Duration;
/// use safewsk::net::Timeout;
///
/// assert_eq!(Timeout::from(Duration::from_secs(5)).as_millis(), Some(5000));
/// assert_eq!(Timeout::from(Duration::from_micros(1)).as_millis(), Some(1));
/// assert_eq!(Timeout::from(Duration::ZERO), Timeout::IMMEDIATE);
/// assert_eq!(Timeout::from(None::<Duration>), Timeout::NEVER);
/// assert_eq!(Timeout::from(Duration::MAX).as_millis(), Some(0xFFFF_FFFE));
/// assert_eq!(Timeout::NEVER.as_millis(), None);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Timeout(ULONG);

impl Timeout {
    /// No deadline (`SAFEWSK_NO_TIMEOUT`).
    pub const NEVER: Timeout = Timeout(SAFEWSK_NO_TIMEOUT);
    /// Not waited for (`TimeoutMs` 0); see the type's documentation.
    pub const IMMEDIATE: Timeout = Timeout(0);
    /// The longest finite timeout, 0xFFFFFFFE ms.
    pub const MAX: Timeout = Timeout(SAFEWSK_NO_TIMEOUT - 1);

    /// `ms` milliseconds (clamped to [`Timeout::MAX`]; 0 is
    /// [`Timeout::IMMEDIATE`]).
    pub const fn from_millis(ms: u32) -> Timeout {
        if ms == SAFEWSK_NO_TIMEOUT {
            Timeout::MAX
        } else {
            Timeout(ms)
        }
    }

    /// The milliseconds, or `None` for [`Timeout::NEVER`].
    pub const fn as_millis(self) -> Option<u32> {
        if self.0 == SAFEWSK_NO_TIMEOUT {
            None
        } else {
            Some(self.0)
        }
    }

    /// The C API's `TimeoutMs`.
    pub const fn to_timeout_ms(self) -> ULONG {
        self.0
    }
}

impl From<Duration> for Timeout {
    fn from(d: Duration) -> Timeout {
        if d.is_zero() {
            return Timeout::IMMEDIATE;
        }
        let whole = d.as_millis();
        let ms = if Duration::from_millis(u64::try_from(whole).unwrap_or(u64::MAX)) < d { whole + 1 } else { whole };
        Timeout(u32::try_from(ms).unwrap_or(u32::MAX).min(SAFEWSK_NO_TIMEOUT - 1))
    }
}

impl From<Option<Duration>> for Timeout {
    fn from(d: Option<Duration>) -> Timeout {
        d.map_or(Timeout::NEVER, Timeout::from)
    }
}
