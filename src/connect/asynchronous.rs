//! Asynchronous connect: `SafeWskSocketConnectAsync` and `SafeWskCancelConnect`.
//!
//! The request lives in caller storage (`SAFEWSK_CONNECT_REQUEST`, non-paged),
//! so a connect allocates only the socket's record with its IRP (which the
//! socket's later calls reuse) and the I/O manager's completion context. It holds the IRP, a
//! KTIMER + KDPC for the deadline, and a [`RequestState`] that completion,
//! the timer DPC, an explicit cancel and the submitting thread race on; the
//! last reference finalizes: IoFreeIrp, then the callback, exactly once, then
//! the client's rundown is left (so SafeWskCleanup waits for callbacks).

#![allow(non_camel_case_types, non_snake_case)]

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

use static_assertions::const_assert;

use super::request_state::{RequestState, CANCELLED, COMPLETED, TIMED_OUT};
use crate::client::{self, ClientBlock, Inside};
use crate::handles::{RawReserved, Reserved, SAFEWSK_SOCKET};
pub use crate::kernel::deadline::SAFEWSK_NO_TIMEOUT;
use crate::kernel::nt::*;
use crate::kernel::platform;
use crate::kernel::report;
use crate::kernel::sync::Timer;

/// Completion callback of `SafeWskSocketConnectAsync`: `Status` as
/// SafeWskSocketConnect returns it (STATUS_IO_TIMEOUT at the deadline,
/// STATUS_CANCELLED after SafeWskCancelConnect), `Socket` the connected
/// socket's handle (owned by the callee, to close with SafeWskCloseSocket)
/// or NULL.
pub type SAFEWSK_CONNECT_CALLBACK =
    Option<unsafe extern "C" fn(Context: PVOID, Status: NTSTATUS, Socket: *mut SAFEWSK_SOCKET)>;

/// Storage for one asynchronous connect, owned by the caller: non-paged
/// memory (a device context, a pool block, a global) that stays valid from
/// `SafeWskSocketConnectAsync` until the callback has returned, and is not
/// used by two requests at once. Fill in `Callback`, `CallbackContext` and
/// `TimeoutMs`, and set `Reserved` to 0; `Private` belongs to safewsk.
/// `CallbackContext` too must stay valid until the callback has *returned*:
/// a waiter woken by the callback must not free what the callback is still
/// using (signal last, or hand ownership to it).
#[repr(C)]
pub struct SAFEWSK_CONNECT_REQUEST {
    /// Called exactly once, at IRQL <= DISPATCH_LEVEL, on any thread.
    pub Callback: SAFEWSK_CONNECT_CALLBACK,
    /// Passed to `Callback`.
    pub CallbackContext: PVOID,
    /// Deadline in milliseconds, or SAFEWSK_NO_TIMEOUT.
    pub TimeoutMs: ULONG,
    /// Must be 0.
    pub Reserved: ULONG,
    /// safewsk's state for the request; do not touch.
    pub Private: [ULONG_PTR; 32],
}

/// What `Private` holds.
#[repr(C)]
struct Private {
    timer: Timer,
    irp: *mut IRP,
    /// The client's block (the request is inside the client until its
    /// callback has returned) and its slot index.
    client: *const ClientBlock,
    client_index: u32,
    state: RequestState,
    /// IoStatus, written by the completion routine and read by whoever
    /// finalizes (ordered by `state`).
    status: AtomicI32,
    information: AtomicUsize,
    /// The socket slot reserved before the connect.
    slot: RawReserved,
    /// Copies of the addresses: the provider may read them until the IRP
    /// completes, longer than the caller's buffers need to live.
    local: Sockaddr,
    remote: Sockaddr,
    /// The pinned cached security descriptor (NULL: none), unpinned once
    /// the IRP has completed, before the callback.
    sd: PSECURITY_DESCRIPTOR,
}

/// Room for a SOCKADDR_IN or SOCKADDR_IN6, 4-byte aligned like both.
#[repr(C, align(4))]
struct Sockaddr([u8; size_of::<SOCKADDR_IN6>()]);

const_assert!(size_of::<Private>() <= 32 * size_of::<ULONG_PTR>());

/// Copies a validated SOCKADDR_IN / SOCKADDR_IN6 (its family says which).
///
/// # Safety
/// `from` is a validated address: readable for its family's size.
unsafe fn copy_sockaddr(to: &mut Sockaddr, from: *const SOCKADDR) {
    // SAFETY: `sa_family` is the first field of a readable SOCKADDR.
    let family = unsafe { ptr::read_unaligned(from.cast::<ADDRESS_FAMILY>()) };
    let len = if family == AF_INET6 { size_of::<SOCKADDR_IN6>() } else { size_of::<SOCKADDR_IN>() };
    // SAFETY: `from` is readable for `len` bytes (its family's size); `to`
    // holds at least that many and does not overlap the caller's address.
    unsafe { ptr::copy_nonoverlapping(from.cast::<u8>(), to.0.as_mut_ptr(), len) };
}

/// Where `Private` lives in the request (`Private` is ULONG_PTR-aligned,
/// which is Private's alignment too; the size is asserted above).
fn private_ptr(request: *mut SAFEWSK_CONNECT_REQUEST) -> *mut Private {
    // SAFETY: address computation only; `request` points to a whole request.
    unsafe { ptr::addr_of_mut!((*request).Private) }.cast::<Private>()
}

/// The started request's state.
///
/// # Safety
/// `start` has initialized it, and the caller holds a reference that keeps
/// the request alive while the returned reference is used.
unsafe fn private<'a>(request: *mut SAFEWSK_CONNECT_REQUEST) -> &'a Private {
    // SAFETY: per the contract: initialized and alive.
    unsafe { &*private_ptr(request) }
}

/// Drops one reference; the last one finalizes the request: frees the IRP,
/// records the socket, calls back, then leaves the client.
///
/// # Safety
/// The caller holds a reference on a started request.
unsafe fn release(request: *mut SAFEWSK_CONNECT_REQUEST) {
    // SAFETY: our reference keeps the request alive.
    let pr = unsafe { private(request) };
    let Some(flags) = pr.state.release() else { return };
    // Last reference: nobody else touches the request or its IRP. The IRP's
    // completion routine ran (the IRP's reference is gone) and the timer is
    // not queued (its reference is gone). The IRP is the socket record's:
    // it stays with the socket, or is freed with the record.
    let mut status = pr.status.load(Ordering::Acquire);
    if status == STATUS_CANCELLED {
        if flags & CANCELLED != 0 {
            status = STATUS_CANCELLED;
        } else if flags & TIMED_OUT != 0 {
            status = STATUS_IO_TIMEOUT;
        }
    }
    // SAFETY: the client outlives its requests: cleanup waits for this
    // request to leave (below).
    let block = unsafe { &*pr.client };
    let client_index = pr.client_index;
    if !pr.sd.is_null() {
        // SAFETY: pinned by the connect for this request; IRQL <=
        // DISPATCH_LEVEL. The IRP has completed: the driver may release
        // the descriptor from the callback on.
        unsafe { block.sds().unpin(pr.sd) };
    }
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
    client::leave(client_index);
}

/// Removes a queued timer and, if that worked and nobody claimed the timer's
/// reference before, releases it (see `request_state`: KeCancelTimer's TRUE
/// alone is not trusted).
///
/// # Safety
/// The caller holds a reference on a started request.
unsafe fn cancel_timer_and_release(request: *mut SAFEWSK_CONNECT_REQUEST) {
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
    let request = context.cast::<SAFEWSK_CONNECT_REQUEST>();
    // SAFETY: the IRP's reference keeps the request alive until `release`.
    let pr = unsafe { private(request) };
    // First, so that `start` sees at once that the IRP was consumed.
    pr.state.set_completed();
    // SAFETY: the IRP has completed; nobody else reads it now.
    let (status, information) = unsafe { platform::irp_result(irp) };
    pr.status.store(status, Ordering::Release);
    pr.information.store(information, Ordering::Release);
    // A timer still queued will not fire now: drop its reference here.
    // SAFETY: the IRP's reference is still held.
    unsafe { cancel_timer_and_release(request) };
    // SAFETY: drops the IRP's reference; `pr` is not used after this.
    unsafe { release(request) };
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Timer DPC (DISPATCH_LEVEL): the deadline passed. SafeWskCleanup calls
/// KeFlushQueuedDpcs, so the driver stays loaded until this has returned.
unsafe extern "system" fn on_timeout(_dpc: *mut KDPC, context: PVOID, _a1: PVOID, _a2: PVOID) {
    let request = context.cast::<SAFEWSK_CONNECT_REQUEST>();
    // SAFETY: the timer's reference keeps the request and the IRP alive
    // until it is released here, unless a KeCancelTimer claimed it first
    // (then this DPC touches nothing but the state word; see
    // `request_state`).
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

/// Starts an asynchronous connect whose arguments were validated. The
/// addresses are copied into the request; `issue` gets the copies.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL; `request` is valid caller storage (see the type);
/// `local` and `remote` were validated; `client` has been entered for this
/// request (it leaves after the callback); `issue` hands the IRP to exactly
/// one WSK function; `sd` is NULL or pinned for this request (it is
/// unpinned when the request finishes, on Ok).
pub unsafe fn start(
    inside: &Inside,
    request: *mut SAFEWSK_CONNECT_REQUEST,
    local: *const SOCKADDR,
    remote: *const SOCKADDR,
    sd: PSECURITY_DESCRIPTOR,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    issue: impl FnOnce(*mut IRP, *const SOCKADDR, *const SOCKADDR) -> NTSTATUS,
) -> Result<(), NTSTATUS> {
    // The socket's record first, so that a connected socket is never lost;
    // it comes with the IRP the connect uses (and the socket's calls reuse).
    // SAFETY: IRQL <= DISPATCH_LEVEL per the caller.
    let slot = unsafe { inside.reserve_socket(dispatch) }?;
    let irp = slot.irp();
    let block = inside.block();
    // The slot's IRP may come from a closed socket: it was used before.
    // SAFETY: the slot's idle IRP, ours; IRQL <= DISPATCH_LEVEL.
    unsafe { platform::reuse_irp(irp) };
    // SAFETY: the IRP is ours, with one stack location; the client's device
    // object is live while the client is. On failure `slot` is freed when it
    // goes out of scope.
    let st = unsafe { platform::set_completion_routine(block.device(), irp, on_complete, request.cast()) };
    if !nt_success(st) {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    let mut state = Private {
        timer: Timer::new(),
        irp,
        client: block,
        client_index: inside.index(),
        state: RequestState::new(),
        status: AtomicI32::new(STATUS_PENDING),
        information: AtomicUsize::new(0),
        slot: slot.into_raw(),
        local: Sockaddr([0; size_of::<SOCKADDR_IN6>()]),
        remote: Sockaddr([0; size_of::<SOCKADDR_IN6>()]),
        sd,
    };
    // SAFETY: a validated address, readable for its family's size.
    unsafe { copy_sockaddr(&mut state.local, local) };
    // SAFETY: as above.
    unsafe { copy_sockaddr(&mut state.remote, remote) };
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
    let returned = issue(irp, ptr::addr_of!(pr.local).cast::<SOCKADDR>(), ptr::addr_of!(pr.remote).cast::<SOCKADDR>());
    if returned != STATUS_PENDING && pr.state.flags() & COMPLETED == 0 {
        // Returned without being consumed (see irp.rs): complete it here with
        // the returned status, which the callback then reports.
        report::report_call(report::SAFEWSK_REPORT_UNCONSUMED, b"WskSocketConnect (asynchronous)\0", irp, returned, 0);
        // A success-class status without a completion is no success.
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
    Ok(())
}

/// Requests cancellation; true if the request had not completed yet.
///
/// # Safety
/// `request` was started and its callback has not returned yet (or the
/// storage is still intact); IRQL <= DISPATCH_LEVEL.
pub unsafe fn cancel(request: *mut SAFEWSK_CONNECT_REQUEST) -> bool {
    // SAFETY: per the caller, the storage is intact and initialized.
    let pr = unsafe { private(request) };
    if !pr.state.try_acquire_unless_completed(CANCELLED) {
        return false;
    }
    // SAFETY: the reference just acquired keeps the IRP alive; IRQL per the
    // caller.
    unsafe { platform::cancel_irp(pr.irp) };
    // SAFETY: drops that reference.
    unsafe { release(request) };
    true
}
