//! Turning a call's result into the NTSTATUS an export returns, in one place
//! (the Rust-for-Linux `kernel` crate's `from_result`, rustls-ffi's `try_*!`
//! macros): every export body is a function that uses `?` on
//! `Result<NTSTATUS, NTSTATUS>` and ends in [`from_result`].

use crate::nt::*;
use crate::platform;

/// A call's outcome: `Ok` with the status it reports (a success, or the
/// provider's own status for an operation that was carried out), `Err` with
/// the status of a call refused or failed on the way.
pub type Status = Result<NTSTATUS, NTSTATUS>;

/// The status an export returns for `r`.
pub fn from_result(r: Status) -> NTSTATUS {
    match r {
        Ok(status) | Err(status) => status,
    }
}

/// Err(STATUS_INVALID_LEVEL) unless the current IRQL is at most `max`.
pub fn require_irql(max: KIRQL) -> Result<(), NTSTATUS> {
    if platform::current_irql() > max {
        Err(STATUS_INVALID_LEVEL)
    } else {
        Ok(())
    }
}
