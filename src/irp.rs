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
//!    completion routine has run.
//!
//! Invariant: the IRP is freed on every path, and never before its completion
//! routine ran. The completion context (a KEVENT) lives on the waiting
//! thread's stack; that is sound because the wait is a KernelMode wait (the
//! stack stays resident) and the waiter does not return until the completion
//! routine has signalled, which is the routine's last access to the context.

use core::ptr;

use crate::nt::*;
use crate::platform;

/// The result of one completed IRP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Completion {
    /// `IoStatus.Status`, except that a cancellation this module made at the
    /// deadline is reported as STATUS_IO_TIMEOUT.
    pub status: NTSTATUS,
    /// `IoStatus.Information`.
    pub information: ULONG_PTR,
    /// Whether the deadline passed and the IRP was cancelled.
    pub timed_out: bool,
}

/// The completion context, on the waiter's stack.
#[repr(C)]
struct WaitContext {
    event: KEVENT,
}

/// IoCompletion routine: runs at IRQL <= DISPATCH_LEVEL on any thread.
unsafe extern "system" fn on_complete(_device: PVOID, _irp: *mut IRP, context: PVOID) -> NTSTATUS {
    let ctx = context.cast::<WaitContext>();
    // SAFETY: `context` is the WaitContext that call_and_wait passed to
    // IoSetCompletionRoutine; it is live because call_and_wait does not return
    // before this signal. Signalling is the last access to it.
    unsafe { platform::set_event(ptr::addr_of_mut!((*ctx).event)) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Allocates an IRP, lets `issue` hand it to one WSK function, waits up to
/// `timeout_ms` (None: no deadline) for its completion, cancels it at the
/// deadline and waits for the completion that the cancellation causes, then
/// frees it.
///
/// Returns Err(STATUS_INSUFFICIENT_RESOURCES) if no IRP could be allocated
/// (then `issue` was not called).
///
/// # Safety
/// IRQL <= APC_LEVEL. `issue` must pass the IRP to exactly one WSK provider
/// function (which completes it, as WSK documents for every return value) and
/// must not keep it.
pub unsafe fn call_and_wait(
    timeout_ms: Option<ULONG>,
    issue: impl FnOnce(*mut IRP) -> NTSTATUS,
) -> Result<Completion, NTSTATUS> {
    // SAFETY: IRQL <= APC_LEVEL per the caller.
    let irp = unsafe { platform::allocate_irp() };
    if irp.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    let mut ctx = WaitContext { event: KEVENT::zeroed() };
    let event = ptr::addr_of_mut!(ctx.event);
    // SAFETY: `event` is local storage that outlives every use below (see the
    // module invariant); the IRP is fresh and ours, with one stack location.
    unsafe {
        platform::init_event(event);
        platform::set_completion_routine(irp, on_complete, ptr::addr_of_mut!(ctx).cast());
    }

    // The provider returns STATUS_PENDING, or completes the IRP before it
    // returns; either way the completion routine runs exactly once, so the
    // waits below are the only synchronisation needed and the returned status
    // itself is not trusted over IoStatus.
    let _ = issue(irp);

    let mut timed_out = false;
    // SAFETY: `event` is initialized and live; IRQL <= APC_LEVEL.
    if unsafe { platform::wait_event(event, timeout_ms) } == STATUS_TIMEOUT {
        timed_out = true;
        // SAFETY: the completion routine has not signalled, so the IRP is still
        // in flight and live. After cancelling, wait for the completion the
        // cancellation causes: until then the provider owns the IRP.
        unsafe {
            platform::cancel_irp(irp);
            platform::wait_event(event, None);
        }
    }
    // SAFETY: the completion routine has run (the event is signalled), so the
    // IRP is ours again; it is read once and freed once.
    let (status, information) = unsafe {
        let result = platform::irp_result(irp);
        platform::free_irp(irp);
        result
    };
    let status = if timed_out && status == STATUS_CANCELLED { STATUS_IO_TIMEOUT } else { status };
    Ok(Completion { status, information, timed_out })
}
