//! [`Error`]: an NTSTATUS that is not a success, as the Rust-for-Linux
//! `kernel::error::Error` is an errno.

use core::fmt;
use core::num::NonZeroI32;

use crate::kernel::nt::{self, NTSTATUS};

/// The result of every call of the safe API: `Ok` with the call's value, or
/// `Err` with the NTSTATUS the C export of the same call would return.
///
/// ```
/// use safewsk::net::{Error, Result};
///
/// fn check(port: u16) -> Result<u16> {
///     if port == 0 { Err(Error::INVALID_PARAMETER) } else { Ok(port) }
/// }
/// assert_eq!(check(0), Err(Error::INVALID_PARAMETER));
/// ```
pub type Result<T = (), E = Error> = core::result::Result<T, E>;

/// An error status: an NTSTATUS for which `NT_SUCCESS` is false (severity
/// warning or error: the top bit set, a negative `i32`).
///
/// Its value is exactly the status the matching C export returns, so the
/// documentation of `SafeWsk*` in `include/safewsk.h` lists every error a
/// call of the safe API can give (the `STATUS_INVALID_PARAMETER_<n>` of a
/// parameter the safe API builds itself, such as an address, cannot occur).
///
/// `NTSTATUS` is `i32` in wdk-sys as it is here, so a driver built with
/// wdk-sys converts without casts: `NTSTATUS::from(e)`,
/// `Error::from_status(st)`, and `status_of(result)` for a routine that
/// returns NTSTATUS.
///
/// ```
/// use safewsk::net::Error;
///
/// let e = Error::from_status(0xC000_0236_u32 as i32);
/// assert_eq!(e, Error::CONNECTION_REFUSED);
/// assert_eq!(i32::from(e), e.to_status());
/// // A success code is not an error: it maps to STATUS_UNSUCCESSFUL, as the
/// // `kernel` crate maps an errno out of range to EINVAL.
/// assert_eq!(Error::from_status(0), Error::UNSUCCESSFUL);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Error(NonZeroI32);

macro_rules! statuses {
    ($($(#[$doc:meta])* $name:ident = $status:ident;)*) => {
        impl Error {
            $(
                $(#[$doc])*
                pub const $name: Error = Error::from_const(nt::$status);
            )*
        }

        /// The `STATUS_*` name of a status this module knows.
        fn name(status: NTSTATUS) -> Option<&'static str> {
            match status {
                $(nt::$status => Some(stringify!($status)),)*
                _ => None,
            }
        }
    };
}

statuses! {
    /// STATUS_UNSUCCESSFUL.
    UNSUCCESSFUL = STATUS_UNSUCCESSFUL;
    /// STATUS_NOT_IMPLEMENTED (e.g. Wine 8's stub WSK functions).
    NOT_IMPLEMENTED = STATUS_NOT_IMPLEMENTED;
    /// STATUS_ACCESS_VIOLATION: a buffer could not be probed and locked.
    ACCESS_VIOLATION = STATUS_ACCESS_VIOLATION;
    /// STATUS_BUFFER_TOO_SMALL.
    BUFFER_TOO_SMALL = STATUS_BUFFER_TOO_SMALL;
    /// STATUS_INVALID_PARAMETER.
    INVALID_PARAMETER = STATUS_INVALID_PARAMETER;
    /// STATUS_INVALID_PARAMETER_1: a handle that is not a live client's or
    /// open socket's (cleaned up, closed, or closed by cleanup).
    INVALID_PARAMETER_1 = STATUS_INVALID_PARAMETER_1;
    /// STATUS_INVALID_PARAMETER_2.
    INVALID_PARAMETER_2 = STATUS_INVALID_PARAMETER_2;
    /// STATUS_INVALID_PARAMETER_3.
    INVALID_PARAMETER_3 = STATUS_INVALID_PARAMETER_3;
    /// STATUS_INVALID_PARAMETER_4.
    INVALID_PARAMETER_4 = STATUS_INVALID_PARAMETER_4;
    /// STATUS_INVALID_PARAMETER_5.
    INVALID_PARAMETER_5 = STATUS_INVALID_PARAMETER_5;
    /// STATUS_INSUFFICIENT_RESOURCES.
    INSUFFICIENT_RESOURCES = STATUS_INSUFFICIENT_RESOURCES;
    /// STATUS_IO_TIMEOUT: the deadline passed (never STATUS_TIMEOUT, a
    /// success code).
    IO_TIMEOUT = STATUS_IO_TIMEOUT;
    /// STATUS_NOT_SUPPORTED.
    NOT_SUPPORTED = STATUS_NOT_SUPPORTED;
    /// STATUS_CANCELLED: an asynchronous connect was cancelled.
    CANCELLED = STATUS_CANCELLED;
    /// STATUS_DELETE_PENDING: the client's cleanup has begun.
    DELETE_PENDING = STATUS_DELETE_PENDING;
    /// STATUS_NOT_FOUND: a name that does not resolve; a cancel that came
    /// too late.
    NOT_FOUND = STATUS_NOT_FOUND;
    /// STATUS_INVALID_LEVEL: called at too high an IRQL.
    INVALID_LEVEL = STATUS_INVALID_LEVEL;
    /// STATUS_INVALID_DEVICE_STATE.
    INVALID_DEVICE_STATE = STATUS_INVALID_DEVICE_STATE;
    /// STATUS_DEVICE_NOT_READY: the WSK provider did not become available.
    DEVICE_NOT_READY = STATUS_DEVICE_NOT_READY;
    /// STATUS_DEVICE_BUSY (a warning-class status): the storage of an
    /// asynchronous connect is still in use.
    DEVICE_BUSY = STATUS_DEVICE_BUSY;
    /// STATUS_NOINTERFACE.
    NOINTERFACE = STATUS_NOINTERFACE;
    /// STATUS_ADDRESS_ALREADY_EXISTS.
    ADDRESS_ALREADY_EXISTS = STATUS_ADDRESS_ALREADY_EXISTS;
    /// STATUS_CONNECTION_DISCONNECTED.
    CONNECTION_DISCONNECTED = STATUS_CONNECTION_DISCONNECTED;
    /// STATUS_CONNECTION_RESET.
    CONNECTION_RESET = STATUS_CONNECTION_RESET;
    /// STATUS_CONNECTION_REFUSED.
    CONNECTION_REFUSED = STATUS_CONNECTION_REFUSED;
    /// STATUS_NETWORK_UNREACHABLE.
    NETWORK_UNREACHABLE = STATUS_NETWORK_UNREACHABLE;
    /// STATUS_HOST_UNREACHABLE.
    HOST_UNREACHABLE = STATUS_HOST_UNREACHABLE;
    /// STATUS_CONNECTION_ABORTED.
    CONNECTION_ABORTED = STATUS_CONNECTION_ABORTED;
}

impl Error {
    /// For the constants: `status` is known to be an error status.
    const fn from_const(status: NTSTATUS) -> Error {
        match NonZeroI32::new(status) {
            Some(v) if status < 0 => Error(v),
            // Unreachable for the constants above (all have the top bit set).
            _ => Error::UNSUCCESSFUL_RAW,
        }
    }

    const UNSUCCESSFUL_RAW: Error = match NonZeroI32::new(nt::STATUS_UNSUCCESSFUL) {
        Some(v) => Error(v),
        None => Error(NonZeroI32::MIN),
    };

    /// The error for `status`. A status for which `NT_SUCCESS` is true
    /// (STATUS_SUCCESS, STATUS_PENDING, STATUS_TIMEOUT, ...) is not an error
    /// and becomes [`Error::UNSUCCESSFUL`]; use [`to_result`] to turn any
    /// status into a `Result`.
    pub const fn from_status(status: NTSTATUS) -> Error {
        match NonZeroI32::new(status) {
            Some(v) if status < 0 => Error(v),
            _ => Error::UNSUCCESSFUL_RAW,
        }
    }

    /// The NTSTATUS (never a success code).
    pub const fn to_status(self) -> NTSTATUS {
        self.0.get()
    }

    /// The `STATUS_*` name, for the statuses this module has a constant for.
    pub fn name(self) -> Option<&'static str> {
        name(self.to_status())
    }
}

impl From<Error> for NTSTATUS {
    fn from(e: Error) -> NTSTATUS {
        e.to_status()
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "{name} (0x{:08X})", self.to_status() as u32),
            None => write!(f, "NTSTATUS 0x{:08X}", self.to_status() as u32),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// `Ok(())` for a status for which `NT_SUCCESS` is true, else the error
/// (the `kernel` crate's `to_result`).
///
/// ```
/// use safewsk::net::{to_result, Error};
/// assert_eq!(to_result(0), Ok(()));
/// assert_eq!(to_result(0xC000_00B5_u32 as i32), Err(Error::IO_TIMEOUT));
/// ```
pub const fn to_result(status: NTSTATUS) -> Result {
    if nt::nt_success(status) {
        Ok(())
    } else {
        Err(Error::from_status(status))
    }
}

/// The NTSTATUS a routine returns for `r`: STATUS_SUCCESS or the error (the
/// `kernel` crate's `from_result`), e.g. at the end of a DriverEntry.
///
/// ```
/// use safewsk::net::{status_of, Error};
/// assert_eq!(status_of(Ok(())), 0);
/// assert_eq!(status_of(Err(Error::IO_TIMEOUT)), 0xC000_00B5_u32 as i32);
/// ```
pub const fn status_of(r: Result) -> NTSTATUS {
    match r {
        Ok(()) => nt::STATUS_SUCCESS,
        Err(e) => e.to_status(),
    }
}

/// An internal call's outcome (`Ok` may carry a provider's error status for
/// an operation that was carried out) as a `Result`.
pub(crate) fn from_internal(r: crate::kernel::status::Status) -> Result {
    match r {
        Ok(status) => to_result(status),
        Err(status) => Err(Error::from_status(status)),
    }
}
