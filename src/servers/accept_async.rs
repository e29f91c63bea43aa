//! Asynchronous accept: `SafeWskAcceptAsync` and `SafeWskCancelAccept`.
//!
//! The request lives in caller storage (`SAFEWSK_ACCEPT_REQUEST`,
//! non-paged), as the asynchronous connect's does, and follows the
//! asynchronous connect's protocol step for step: the same
//! [`RequestState`] word (references for the IRP, the starting thread, the
//! timer and a canceller; the timer's reference claimed with one bit, since
//! Wine's KeCancelTimer misreports), the same completion routine, timer DPC
//! and cancel, and the same rule that the last reference finalizes. That
//! protocol is what `connect::request_state`'s loom model checks; nothing
//! here adds a state word.
//!
//! What differs is what the request holds and what finalizing does:
//! - the listening socket's slot, held from SafeWskAcceptAsync until the
//!   request is finalized (counted inside only until WskAccept has
//!   returned): a close of the listening socket does not wait for the
//!   accept, and its WskCloseSocket completes it with STATUS_CANCELLED;
//!   cleanup waits for that hold to go before it closes the client's other
//!   sockets (`client::close_left_open`), so the callback has returned
//!   before cleanup does;
//! - the accepted socket's slot, reserved (with the IRP WskAccept uses)
//!   before the provider is called, published on success or freed;
//! - the request does not enter the client (a pending accept may wait
//!   forever for a connection: entering would make cleanup wait for it
//!   before closing the listening socket that ends it).
//!
//! Finalizing: the socket handed out (or the slot freed and the addresses
//! zeroed), the callback, then the listening socket's hold given back: its
//! last access.

#![allow(non_camel_case_types, non_snake_case)]

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use static_assertions::const_assert;

use super::listen::{accept_entry, check_callbacks};
use super::SAFEWSK_ADDRESS;
use crate::client;
use crate::connect::request_state::{RequestState, CANCELLED, COMPLETED, TIMED_OUT};
use crate::handles::{Kind, RawReserved, Reserved, Take, SAFEWSK_SOCKET};
use crate::io::{check_kind, Hold, SocketCall};
use crate::kernel::deadline::SAFEWSK_NO_TIMEOUT;
use crate::kernel::nt::*;
use crate::kernel::platform;
use crate::kernel::report;
use crate::kernel::status::{require_irql, Status};
use crate::kernel::sync::Timer;

/// Completion callback of `SafeWskAcceptAsync`: `Status` as SafeWskAccept
/// returns it (STATUS_IO_TIMEOUT at the deadline, STATUS_CANCELLED after
/// SafeWskCancelAccept or when the listening socket is closed), `Socket`
/// the accepted connection's handle (owned by the callee, to close with
/// SafeWskCloseSocket) or NULL.
pub type SAFEWSK_ACCEPT_CALLBACK =
    Option<unsafe extern "C" fn(Context: PVOID, Status: NTSTATUS, Socket: *mut SAFEWSK_SOCKET)>;

/// Storage for one asynchronous accept, owned by the caller: non-paged
/// memory (a device context, a pool block, a global) that stays valid from
/// `SafeWskAcceptAsync` until the callback has returned, and is not used by
/// two requests at once. Fill in `Callback`, `CallbackContext` and
/// `TimeoutMs`, and set `Reserved` to 0; `LocalAddress` and `RemoteAddress`
/// are written by the accept (WSK writes them while the accept is pending:
/// do not touch them before the callback); `Private` belongs to safewsk.
/// `CallbackContext` too must stay valid until the callback has *returned*.
#[repr(C)]
pub struct SAFEWSK_ACCEPT_REQUEST {
    /// Called exactly once, at IRQL <= DISPATCH_LEVEL, on any thread.
    pub Callback: SAFEWSK_ACCEPT_CALLBACK,
    /// Passed to `Callback`.
    pub CallbackContext: PVOID,
    /// Deadline in milliseconds, or SAFEWSK_NO_TIMEOUT.
    pub TimeoutMs: ULONG,
    /// Must be 0.
    pub Reserved: ULONG,
    /// On STATUS_SUCCESS: the local address the connection arrived on
    /// (SOCKADDR_IN or SOCKADDR_IN6); zero otherwise. Valid from the
    /// callback on.
    pub LocalAddress: SAFEWSK_ADDRESS,
    /// On STATUS_SUCCESS: the remote address the connection came from;
    /// zero otherwise. Valid from the callback on.
    pub RemoteAddress: SAFEWSK_ADDRESS,
    /// safewsk's state for the request; do not touch.
    pub Private: [ULONG_PTR; 32],
}

/// What `Private` holds.
#[repr(C)]
struct Private {
    timer: Timer,
    irp: *mut IRP,
    /// The listening socket's slot, held until the request is finalized.
    listen: Hold,
    state: RequestState,
    /// IoStatus, written by the completion routine and read by whoever
    /// finalizes (ordered by `state`).
    status: AtomicI32,
    information: AtomicUsize,
    /// The accepted socket's slot, reserved before the accept.
    slot: RawReserved,
}

const_assert!(size_of::<Private>() <= 32 * size_of::<ULONG_PTR>());

/// Where `Private` lives in the request (`Private` is ULONG_PTR-aligned,
/// which is Private's alignment too; the size is asserted above).
fn private_ptr(request: *mut SAFEWSK_ACCEPT_REQUEST) -> *mut Private {
    // SAFETY: address computation only; `request` points to a whole request.
    unsafe { ptr::addr_of_mut!((*request).Private) }.cast::<Private>()
}

/// The started request's state.
///
/// # Safety
/// `start` has initialized it, and the caller holds a reference that keeps
/// the request alive while the returned reference is used.
unsafe fn private<'a>(request: *mut SAFEWSK_ACCEPT_REQUEST) -> &'a Private {
    // SAFETY: per the contract: initialized and alive.
    unsafe { &*private_ptr(request) }
}

/// Zeroes the request's address fields.
///
/// # Safety
/// `request` is caller storage no provider writes to now.
unsafe fn clear_addresses(request: *mut SAFEWSK_ACCEPT_REQUEST) {
    // SAFETY: address computation inside the caller's request.
    let local = unsafe { ptr::addr_of_mut!((*request).LocalAddress) };
    // SAFETY: as above.
    let remote = unsafe { ptr::addr_of_mut!((*request).RemoteAddress) };
    // SAFETY: fields of the caller's writable request.
    unsafe { local.write_unaligned(SAFEWSK_ADDRESS::default()) };
    // SAFETY: as above.
    unsafe { remote.write_unaligned(SAFEWSK_ADDRESS::default()) };
}

/// Drops one reference; the last one finalizes the request: hands out (or
/// frees) the accepted socket's slot, calls back, then gives back the
/// listening socket's hold.
///
/// # Safety
/// The caller holds a reference on a started request.
unsafe fn release(request: *mut SAFEWSK_ACCEPT_REQUEST) {
    // SAFETY: our reference keeps the request alive.
    let pr = unsafe { private(request) };
    let Some(flags) = pr.state.release() else { return };
    // Last reference: nobody else touches the request or its IRP (the IRP's
    // completion routine ran, the timer is not queued). The IRP is the
    // accepted socket's slot's: it stays with the socket, or goes with the
    // slot.
    let mut status = pr.status.load(Ordering::Acquire);
    if status == STATUS_CANCELLED {
        if flags & CANCELLED != 0 {
            status = STATUS_CANCELLED;
        } else if flags & TIMED_OUT != 0 {
            status = STATUS_IO_TIMEOUT;
        }
    }
    let listen = pr.listen;
    // SAFETY: the slot `start` stored, taken back once (last reference).
    let slot = unsafe { Reserved::from_raw(pr.slot) };
    let mut handle: *mut SAFEWSK_SOCKET = ptr::null_mut();
    let socket = pr.information.load(Ordering::Acquire) as *mut WSK_SOCKET;
    if nt_success(status) && socket.is_null() {
        status = STATUS_UNSUCCESSFUL;
    }
    if nt_success(status) {
        slot.set_socket(socket);
        handle = slot.publish();
    } else {
        // IRQL <= DISPATCH_LEVEL (a completion routine, DPC or the caller's
        // thread): the slot is freed.
        drop(slot);
        // SAFETY: the IRP has completed: the provider writes no address now.
        unsafe { clear_addresses(request) };
    }
    // SAFETY: the caller's storage is intact until the callback returns.
    let callback = unsafe { (*request).Callback };
    // SAFETY: as above.
    let context = unsafe { (*request).CallbackContext };
    // After the callback the caller may reuse or free the request.
    if let Some(callback) = callback {
        // SAFETY: the caller's callback with its context, called once.
        unsafe { callback(context, status, handle) };
    }
    // SAFETY: IRQL <= DISPATCH_LEVEL; the request's one hold, given back
    // once. A cleanup waiting for the listening socket's slot may go on
    // from here: nothing of the request is touched after this.
    unsafe { listen.release() };
}

/// Removes a queued timer and, if that worked and nobody claimed the timer's
/// reference before, releases it (KeCancelTimer's TRUE alone is not
/// trusted: `request_state`).
///
/// # Safety
/// The caller holds a reference on a started request.
unsafe fn cancel_timer_and_release(request: *mut SAFEWSK_ACCEPT_REQUEST) {
    // SAFETY: the caller's reference keeps the request alive.
    let pr = unsafe { private(request) };
    // SAFETY: initialized by `start`; IRQL <= DISPATCH_LEVEL.
    if unsafe { pr.timer.cancel() } && pr.state.claim_timer() {
        // SAFETY: the timer's reference, claimed just now.
        unsafe { release(request) };
    }
}

/// IoCompletion routine (IRQL <= DISPATCH_LEVEL), set with
/// IoSetCompletionRoutineEx: the driver stays loaded until it has returned.
unsafe extern "system" fn on_complete(_device: PVOID, irp: *mut IRP, context: PVOID) -> NTSTATUS {
    let request = context.cast::<SAFEWSK_ACCEPT_REQUEST>();
    // SAFETY: the IRP's reference keeps the request alive until `release`.
    let pr = unsafe { private(request) };
    pr.state.set_completed();
    // SAFETY: the IRP has completed; nobody else reads it now.
    let (status, information) = unsafe { platform::irp_result(irp) };
    pr.status.store(status, Ordering::Release);
    pr.information.store(information, Ordering::Release);
    // SAFETY: the IRP's reference is still held.
    unsafe { cancel_timer_and_release(request) };
    // SAFETY: drops the IRP's reference; `pr` is not used after this.
    unsafe { release(request) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Timer DPC (DISPATCH_LEVEL): the deadline passed. SafeWskCleanup calls
/// KeFlushQueuedDpcs, so the driver stays loaded until this has returned.
unsafe extern "system" fn on_timeout(_dpc: *mut KDPC, context: PVOID, _a1: PVOID, _a2: PVOID) {
    let request = context.cast::<SAFEWSK_ACCEPT_REQUEST>();
    // SAFETY: the timer's reference keeps the request and the IRP alive
    // until it is released here, unless a KeCancelTimer claimed it first.
    let pr = unsafe { private(request) };
    if !pr.state.claim_timer() {
        return;
    }
    if pr.state.flags() & COMPLETED == 0 {
        pr.state.set_flag(TIMED_OUT);
        // SAFETY: the timer's reference keeps the IRP alive; DISPATCH_LEVEL.
        unsafe { platform::cancel_irp(pr.irp) };
    }
    // SAFETY: drops the timer's reference, claimed above.
    unsafe { release(request) };
}

/// SafeWskAcceptAsync: parameters 1 to 4, the IRQL, then the listening
/// socket acquired, the accepted socket's slot reserved, the request
/// started.
///
/// # Safety
/// The API contract of SafeWskAcceptAsync.
pub unsafe fn accept_async(
    listen: *mut SAFEWSK_SOCKET,
    context: PVOID,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    request: *mut SAFEWSK_ACCEPT_REQUEST,
) -> Status {
    let h = check_kind(listen, Kind::Listen)?;
    // SAFETY: the table is NULL or readable per the API contract.
    unsafe { check_callbacks(context, dispatch) }?;
    // SAFETY: `request` is NULL or readable per the API contract.
    let request_ok = unsafe { request.as_ref() }.is_some_and(|r| r.Callback.is_some() && r.Reserved == 0);
    if !request_ok {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    require_irql(DISPATCH_LEVEL)?;
    let call = SocketCall::acquire(h, Take::CallWithoutIrp)?;
    let accept = accept_entry(&call)?;
    // The accepted socket's slot first, so that an accepted socket is never
    // lost; it comes with the IRP the accept uses (and the socket's calls
    // reuse).
    // SAFETY: IRQL <= DISPATCH_LEVEL; `call` holds a slot of the listening
    // socket's client.
    let slot = unsafe { client::reserve_accepted(call.slot().owner(), dispatch) }?;
    slot.set_family(call.slot().family());
    let irp = slot.irp();
    // SAFETY: the slot's idle IRP, ours; IRQL <= DISPATCH_LEVEL.
    unsafe { platform::reuse_irp(irp) };
    // SAFETY: the IRP is ours, with one stack location; the client's device
    // object is live while the client is. On failure `slot` and `call` are
    // given back when they go out of scope.
    let st = unsafe { platform::set_completion_routine(slot.device(), irp, on_complete, request.cast()) };
    if !nt_success(st) {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: the caller's storage, not yet shared with anyone.
    unsafe { clear_addresses(request) };
    let state = Private {
        timer: Timer::new(),
        irp,
        // The hold the request keeps: `call`'s, which `keep` below hands
        // over once WskAccept has returned (no finalization can come before
        // the starter's reference is released, at the end).
        listen: call.hold(),
        state: RequestState::new(),
        status: AtomicI32::new(STATUS_PENDING),
        information: AtomicUsize::new(0),
        slot: slot.into_raw(),
    };
    // SAFETY: the request's Private storage is ours until the callback,
    // large and aligned enough (asserted above); nothing else can see it
    // before the IRP is issued.
    unsafe { ptr::write(private_ptr(request), state) };
    // SAFETY: written just above; the starter's reference keeps it alive
    // until the release at the end.
    let pr = unsafe { private(request) };
    // SAFETY: resident caller storage (non-paged, per the contract) whose
    // timer is not queued.
    unsafe { pr.timer.init(Some(on_timeout), request.cast()) };
    // SAFETY: the caller's storage is readable.
    let timeout = unsafe { (*request).TimeoutMs };
    // SAFETY: address computations inside the caller's request.
    let local = unsafe { ptr::addr_of_mut!((*request).LocalAddress) }.cast::<SOCKADDR>();
    // SAFETY: as above.
    let remote = unsafe { ptr::addr_of_mut!((*request).RemoteAddress) }.cast::<SOCKADDR>();
    // SAFETY: the provider's WskAccept of an open (held) listening socket;
    // Flags 0; the address buffers are in the caller's non-paged request,
    // untouched until the callback; context and table stay valid until the
    // accepted socket is closed (the API contract).
    let returned = unsafe { accept(call.socket(), 0, context, dispatch, local, remote, irp) };
    // Returned from WskAccept: no longer inside; the hold is the request's.
    call.keep();
    if returned != STATUS_PENDING && pr.state.flags() & COMPLETED == 0 {
        // Returned without being consumed (see irp.rs): complete it here with
        // the returned status, which the callback then reports.
        report::report_call(report::SAFEWSK_REPORT_UNCONSUMED, b"WskAccept (asynchronous)\0", irp, returned, 0);
        let status = if nt_success(returned) { STATUS_UNSUCCESSFUL } else { returned };
        // SAFETY: not consumed: the IRP is ours again.
        unsafe { platform::complete_unconsumed(irp, status) };
    }
    if timeout != SAFEWSK_NO_TIMEOUT && pr.state.try_acquire_unless_completed(0) {
        // SAFETY: initialized; IRQL per the caller; the timer's reference
        // keeps the storage alive until the expiry or the cancel.
        unsafe { pr.timer.set(timeout) };
        // Completion may have run between the check and KeSetTimer and found
        // no timer to cancel: cancel it here then.
        if pr.state.flags() & COMPLETED != 0 {
            // SAFETY: the starter's reference is still held.
            unsafe { cancel_timer_and_release(request) };
        }
    }
    // SAFETY: drops the starter's reference; `pr` is not used after this.
    unsafe { release(request) };
    Ok(STATUS_PENDING)
}

/// SafeWskCancelAccept: requests cancellation; STATUS_NOT_FOUND if the
/// accept has completed already.
///
/// # Safety
/// The API contract of SafeWskCancelAccept.
pub unsafe fn cancel(request: *mut SAFEWSK_ACCEPT_REQUEST) -> Status {
    if request.is_null() {
        return Err(STATUS_INVALID_PARAMETER_1);
    }
    require_irql(DISPATCH_LEVEL)?;
    // SAFETY: per the contract, the storage is intact and initialized.
    let pr = unsafe { private(request) };
    if !pr.state.try_acquire_unless_completed(CANCELLED) {
        return Err(STATUS_NOT_FOUND);
    }
    // SAFETY: the reference just acquired keeps the IRP alive; IRQL per the
    // caller.
    unsafe { platform::cancel_irp(pr.irp) };
    // SAFETY: drops that reference.
    unsafe { release(request) };
    Ok(STATUS_SUCCESS)
}
