//! IRQL preconditions as types: a call that must run at PASSIVE_LEVEL takes
//! a [`Passive`] token, one that must run at IRQL <= APC_LEVEL takes any
//! [`AtMostApc`] token ([`Passive`] or [`LowIrql`]). Calls allowed up to
//! DISPATCH_LEVEL take none.
//!
//! A token is a zero-sized value that is `Copy` but neither `Send` nor
//! `Sync`: it cannot move into a closure that runs on another thread (an
//! asynchronous connect's callback, which runs at DISPATCH_LEVEL, requires
//! `Send`), so what it says about the IRQL stays on the thread that checked
//! it. Get one once at the top of a PASSIVE_LEVEL routine (DriverEntry,
//! DriverUnload, a system thread, a work item) and pass it down, as PyO3
//! passes its `Python<'py>` token.
//!
//! safewsk does not rely on a token for memory safety: every call still
//! reads the IRQL (one register read on x64) and fails with
//! [`Error::INVALID_LEVEL`](super::Error::INVALID_LEVEL) above its limit,
//! before it touches the caller's (possibly pageable) memory. A token is the
//! compile-time statement; the check is the guarantee. Code that raises the
//! IRQL while it holds a token (a spin lock taken by an `unsafe` call of its
//! own) gets that error, not undefined behaviour.

use core::marker::PhantomData;

use crate::kernel::nt::{APC_LEVEL, PASSIVE_LEVEL};
use crate::kernel::platform;

/// Proof that the current thread runs at PASSIVE_LEVEL.
///
/// ```no_run
/// use safewsk::net::Passive;
/// // Checked (one IRQL read):
/// if let Some(passive) = Passive::get() {
///     let _ = passive;
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Passive {
    _thread: PhantomData<*mut ()>,
}

/// Proof that the current thread runs at IRQL <= APC_LEVEL (PASSIVE_LEVEL
/// or APC_LEVEL: inside a guarded region or holding a fast mutex).
///
/// ```no_run
/// use safewsk::net::{LowIrql, Passive};
/// if let Some(p) = Passive::get() {
///     let low: LowIrql = p.into();
///     let _ = low;
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LowIrql {
    _thread: PhantomData<*mut ()>,
}

impl Passive {
    /// The token, if the current IRQL is PASSIVE_LEVEL.
    pub fn get() -> Option<Passive> {
        (platform::current_irql() == PASSIVE_LEVEL).then_some(Passive { _thread: PhantomData })
    }

    /// The token without a check: for DriverEntry, DriverUnload, a system
    /// thread's start routine and a work item's routine, which the kernel
    /// calls at PASSIVE_LEVEL.
    ///
    /// # Safety
    /// The current thread runs at PASSIVE_LEVEL and does not raise its IRQL
    /// while this token or a copy of it is used. (Marked `unsafe` so that
    /// the one claim a driver makes about its IRQL is visible and reviewed;
    /// a false claim makes safewsk's calls fail with
    /// `Error::INVALID_LEVEL`: they check again.)
    pub unsafe fn assume() -> Passive {
        Passive { _thread: PhantomData }
    }
}

impl LowIrql {
    /// The token, if the current IRQL is at most APC_LEVEL.
    pub fn get() -> Option<LowIrql> {
        (platform::current_irql() <= APC_LEVEL).then_some(LowIrql { _thread: PhantomData })
    }

    /// The token without a check.
    ///
    /// # Safety
    /// The current thread runs at IRQL <= APC_LEVEL and does not raise it
    /// above while this token or a copy of it is used (see
    /// [`Passive::assume`]).
    pub unsafe fn assume() -> LowIrql {
        LowIrql { _thread: PhantomData }
    }
}

impl From<Passive> for LowIrql {
    fn from(_: Passive) -> LowIrql {
        LowIrql { _thread: PhantomData }
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Passive {}
    impl Sealed for super::LowIrql {}
}

/// A token that proves IRQL <= APC_LEVEL: [`Passive`] or [`LowIrql`]. The
/// calls that wait (send, receive, connect, disconnect, close) take one.
/// Sealed: no other type implements it.
///
/// ```no_run
/// use safewsk::net::{AtMostApc, Passive};
/// fn needs_low_irql(_: impl AtMostApc) {}
/// if let Some(p) = Passive::get() {
///     needs_low_irql(p);
/// }
/// ```
pub trait AtMostApc: Copy + sealed::Sealed {}
impl AtMostApc for Passive {}
impl AtMostApc for LowIrql {}
