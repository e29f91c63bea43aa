//! The IRP life cycle of one synchronous WSK call, in one place.
//!
//! Every operation (connect, send, receive, disconnect, close) goes through
//! [`call_and_wait`], which follows "Using IRPs with Winsock Kernel
//! Functions" (Microsoft Learn):
//!
//! 1. `IoAllocateIrp(1, FALSE)` — at least one stack location;
//! 2. `IoSetCompletionRoutine(.., TRUE, TRUE, TRUE)` — "must specify TRUE for
//!    the InvokeOnSuccess, InvokeOnError, and InvokeOnCancel parameters";
//! 3. the completion routine "must always return
//!    STATUS_MORE_PROCESSING_REQUIRED", so the I/O manager never touches the
//!    IRP after it, and the IRP stays ours to free;
//! 4. wait on a KEVENT; at the deadline `IoCancelIrp`, then wait again for the
//!    completion routine, because the IRP still belongs to the provider until
//!    it is completed;
//! 5. read `IoStatus`, then `IoFreeIrp` — exactly once, and only after the
//!    completion routine has run — or keep the IRP for the socket's next
//!    call, which reinitializes it with `IoReuseIrp` ([`call_and_wait_on`]).
//!
//! The completion routine is set with IoSetCompletionRoutineEx and the
//! client's device object, so the driver image stays loaded until the routine
//! has returned (see `platform::set_completion_routine`).
//!
//! Two things a provider may do are handled explicitly:
//! - it returns a status other than STATUS_PENDING without having completed
//!   the IRP (Wine 8.0's stubs do; so does Windows' WskSocket for a NULL
//!   client, per Wine's WSK tests run on Windows). By the I/O model such an
//!   IRP was never consumed: it is completed here with the returned status,
//!   which is the answer, and the breach is reported with DbgPrint;
//! - it never completes the IRP, even after cancellation. The library cannot
//!   free an IRP the provider owns, so it keeps waiting, but never silently:
//!   every `platform::REPORT_INTERVAL_MS` the wait reports itself (the call,
//!   the IRP, how long) in the debugger output.
//!
//! # Invariants
//! The IRP is freed on every path, and never before its completion routine
//! ran. The completion context lives on the waiting thread's stack; that is
//! sound because the wait is a KernelMode wait (the stack stays resident) and
//! the waiter does not return until the completion routine has signalled,
//! which is the routine's last access to the context.

use core::sync::atomic::{AtomicBool, Ordering};

use crate::kernel::deadline::SAFEWSK_NO_TIMEOUT;
use crate::kernel::report;
use crate::nt::*;
use crate::platform;
use crate::sync::Event;

/// How long a provider that returned without completing its IRP gets to
/// complete it late before the IRP is taken back as not consumed.
const UNCONSUMED_GRACE_MS: ULONG = 50;

/// The result of one completed IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// `IoStatus.Status`, except that a cancellation this module made at the
    /// deadline is reported as STATUS_IO_TIMEOUT.
    pub status: NTSTATUS,
    /// `IoStatus.Information`.
    pub information: ULONG_PTR,
    /// Whether the deadline passed.
    pub timed_out: bool,
    /// False if the provider returned without consuming the IRP (it was
    /// completed here with the returned status).
    pub consumed: bool,
}

/// The completion context, on the waiter's stack.
struct WaitContext {
    event: Event,
    completed: AtomicBool,
}

/// IoCompletion routine: runs at IRQL <= DISPATCH_LEVEL on any thread.
unsafe extern "system" fn on_complete(_device: PVOID, _irp: *mut IRP, context: PVOID) -> NTSTATUS {
    // SAFETY: `context` is the WaitContext that call_and_wait passed; it is
    // live because call_and_wait does not return before the signal below.
    let ctx = unsafe { &*context.cast::<WaitContext>() };
    ctx.completed.store(true, Ordering::Release);
    // SAFETY: initialized by call_and_wait. Signalling is the last access to
    // the context.
    unsafe { ctx.event.set() };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Cancels `irp`: the default action at a deadline.
///
/// # Safety
/// `irp` is live (its completion has not been waited for).
pub unsafe fn cancel(irp: *mut IRP) {
    // SAFETY: per the caller; IRQL <= APC_LEVEL in call_and_wait.
    unsafe { platform::cancel_irp(irp) };
}

/// [`call_and_wait_with`] that cancels the IRP at the deadline.
///
/// # Safety
/// As [`call_and_wait_with`].
pub unsafe fn call_and_wait(
    device: PDEVICE_OBJECT,
    what: &'static [u8],
    timeout_ms: Option<ULONG>,
    issue: impl FnOnce(*mut IRP) -> NTSTATUS,
) -> Result<Completion, NTSTATUS> {
    let at_deadline = |irp| {
        // SAFETY: call_and_wait_with passes the still-live IRP.
        unsafe { cancel(irp) }
    };
    // SAFETY: forwarded caller guarantees.
    unsafe { call_and_wait_with(device, what, timeout_ms, issue, at_deadline) }
}

/// Allocates an IRP, runs one call on it with [`call_and_wait_on`], then
/// frees it.
///
/// Returns Err(STATUS_INSUFFICIENT_RESOURCES) if no IRP could be allocated
/// or the I/O manager could not allocate the completion context (then
/// `issue` was not called).
///
/// # Safety
/// As [`call_and_wait_on`], but without an IRP of the caller's.
pub unsafe fn call_and_wait_with(
    device: PDEVICE_OBJECT,
    what: &'static [u8],
    timeout_ms: Option<ULONG>,
    issue: impl FnOnce(*mut IRP) -> NTSTATUS,
    at_deadline: impl FnOnce(*mut IRP),
) -> Result<Completion, NTSTATUS> {
    // SAFETY: IRQL <= APC_LEVEL per the caller.
    let irp = unsafe { platform::allocate_irp() };
    if irp.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: a fresh IRP of ours; the rest per the caller.
    let done = unsafe { call_and_wait_on(irp, device, what, timeout_ms, issue, at_deadline) };
    // SAFETY: call_and_wait_on returns only once the IRP is ours again (its
    // completion routine ran, or it was never issued); freed once.
    unsafe { platform::free_irp(irp) };
    done
}

/// Reinitializes `irp` (IoReuseIrp), lets `issue` hand it to one WSK
/// function, waits up to `timeout_ms` (None, or Some(SAFEWSK_NO_TIMEOUT): no
/// deadline) for its completion, runs `at_deadline` (normally [`cancel`])
/// when the deadline passes, and waits for the completion (reporting the
/// wait while it lasts). The IRP is the caller's again when this returns,
/// on every path. `what` names the call in reports: a NUL-terminated
/// literal.
///
/// Returns Err(STATUS_INSUFFICIENT_RESOURCES) if the I/O manager could not
/// allocate the completion context (then `issue` was not called).
///
/// # Safety
/// IRQL <= APC_LEVEL; `irp` is an IRP from IoAllocateIrp(1, ..) that the
/// caller owns and no provider holds; `device` is a live DEVICE_OBJECT.
/// `issue` must pass the IRP to exactly one WSK provider function and must
/// not keep it; `at_deadline` gets the still-live IRP and must not free it.
pub unsafe fn call_and_wait_on(
    irp: *mut IRP,
    device: PDEVICE_OBJECT,
    what: &'static [u8],
    timeout_ms: Option<ULONG>,
    issue: impl FnOnce(*mut IRP) -> NTSTATUS,
    at_deadline: impl FnOnce(*mut IRP),
) -> Result<Completion, NTSTATUS> {
    // A used IRP must be reinitialized before it is issued again ("Using IRPs
    // with Winsock Kernel Functions": reuse "a previously allocated IRP by
    // calling IoReuseIrp"); on a fresh one it is harmless.
    // SAFETY: ours and idle per the caller; IRQL <= APC_LEVEL.
    unsafe { platform::reuse_irp(irp) };
    let ctx = WaitContext { event: Event::new(), completed: AtomicBool::new(false) };
    // SAFETY: the context lives on this stack until the completion routine
    // has signalled (module invariant); nobody else knows the event yet.
    unsafe { ctx.event.init() };
    // The completion routine only uses the context through shared references
    // (an Event and an AtomicBool: interior mutability).
    let context: PVOID = core::ptr::addr_of!(ctx).cast_mut().cast();
    // SAFETY: the IRP is reinitialized and ours, with one stack location;
    // `device` is live per the caller.
    let st = unsafe { platform::set_completion_routine(device, irp, on_complete, context) };
    if !nt_success(st) {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }

    let returned = issue(irp);
    let mut consumed = returned == STATUS_PENDING || ctx.completed.load(Ordering::Acquire);
    if !consumed {
        // A provider that completes on another processor just after it
        // returned breaches the I/O model too, but completing its IRP a
        // second time would bugcheck: give such a completion a moment first.
        // SAFETY: initialized and live; IRQL <= APC_LEVEL.
        consumed = unsafe { ctx.event.wait(Some(UNCONSUMED_GRACE_MS)) } != STATUS_TIMEOUT;
    }
    if !consumed {
        report::report_call(report::SAFEWSK_REPORT_UNCONSUMED, what, irp, returned, 0);
        // A success-class status without a completion is no success: the
        // operation was not carried out.
        let status = if nt_success(returned) { STATUS_UNSUCCESSFUL } else { returned };
        // SAFETY: returned without being consumed: the IRP is ours again.
        unsafe { platform::complete_unconsumed(irp, status) };
    }

    // SAFEWSK_NO_TIMEOUT: no deadline, and a wait nobody bounded is not
    // overdue, so it is not reported either.
    let forever = timeout_ms == Some(SAFEWSK_NO_TIMEOUT);
    let timeout_ms = if forever { None } else { timeout_ms };
    let mut timed_out = false;
    // Whether a wait has returned with the event signalled: then the
    // completion routine has run and no further wait is made (one
    // KeWaitForSingleObject per call, as the hand-written sequence; the
    // instruction count showed a second one on every call).
    let mut signalled = false;
    if forever {
        // SAFETY: initialized and live; IRQL <= APC_LEVEL.
        signalled = unsafe { ctx.event.wait(None) } != STATUS_TIMEOUT;
    }
    if let Some(ms) = timeout_ms {
        // 0: not waited for; only a synchronous completion counts (see
        // `deadline`), decided by what the function returned, not by a
        // completion that may race in on another processor.
        let expired = if ms == 0 {
            returned == STATUS_PENDING
        } else {
            // SAFETY: initialized and live; IRQL <= APC_LEVEL.
            let expired = unsafe { ctx.event.wait(Some(ms)) } == STATUS_TIMEOUT;
            signalled = !expired;
            expired
        };
        if expired {
            timed_out = true;
            at_deadline(irp);
        }
    }
    let mut waited: ULONG = timeout_ms.unwrap_or(0);
    // SAFETY: as above. Until the routine signals, the provider owns the IRP.
    while !signalled && unsafe { ctx.event.wait(Some(platform::REPORT_INTERVAL_MS)) } == STATUS_TIMEOUT {
        waited = waited.saturating_add(platform::REPORT_INTERVAL_MS);
        report::report_call(report::SAFEWSK_REPORT_OVERDUE, what, irp, STATUS_PENDING, waited);
    }
    // SAFETY: the completion routine has run (the event is signalled), so the
    // IRP is ours again and nobody writes its IoStatus.
    let (status, information) = unsafe { platform::irp_result(irp) };
    let status = if timed_out && status == STATUS_CANCELLED { STATUS_IO_TIMEOUT } else { status };
    Ok(Completion { status, information, timed_out, consumed })
}
