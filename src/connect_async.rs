//! Asynchronous connect: `SafeWskSocketConnectAsync` and `SafeWskCancelConnect`.
//!
//! The request lives in caller storage (`SAFEWSK_CONNECT_REQUEST`, non-paged),
//! so a connect needs no allocation beyond its IRP. It holds the IRP, a
//! KTIMER + KDPC for the deadline, and a [`RequestState`] that completion,
//! the timer DPC, an explicit cancel and the submitting thread race on; the
//! last reference finalizes: IoFreeIrp, then the callback, exactly once, then
//! the client's rundown is left (so SafeWskCleanup waits for callbacks).

#![allow(non_camel_case_types, non_snake_case)]

use core::mem::size_of;
use core::ptr;

use static_assertions::const_assert;

use crate::client::SAFEWSK_CLIENT;
use crate::nt::*;
use crate::platform;
use crate::request_state::{RequestState, CANCELLED, COMPLETED, TIMED_OUT};
use crate::sockets::Reserved;
use crate::sync::Timer;

/// Completion callback of `SafeWskSocketConnectAsync`: `Status` as
/// SafeWskSocketConnect returns it (STATUS_IO_TIMEOUT at the deadline,
/// STATUS_CANCELLED after SafeWskCancelConnect), `Socket` the connected socket
/// (owned by the callee, to close with SafeWskCloseSocket) or NULL.
pub type SAFEWSK_CONNECT_CALLBACK =
    Option<unsafe extern "C" fn(Context: PVOID, Status: NTSTATUS, Socket: *mut WSK_SOCKET)>;

/// `TimeoutMs` value for no deadline.
pub const SAFEWSK_NO_TIMEOUT: ULONG = 0xFFFF_FFFF;

/// Storage for one asynchronous connect, owned by the caller: non-paged
/// memory (a device context, a pool block, a global) that stays valid from
/// `SafeWskSocketConnectAsync` until the callback has returned, and is not
/// used by two requests at once. Fill in `Callback`, `CallbackContext` and
/// `TimeoutMs`, and set `Reserved` to 0; `Private` belongs to safewsk. `CallbackContext` too must stay valid until the
/// callback has *returned*: a waiter woken by the callback must not free
/// what the callback is still using (signal last, or hand ownership to it).
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
    client: *const SAFEWSK_CLIENT,
    state: RequestState,
    status: NTSTATUS,
    information: ULONG_PTR,
    /// The node that records the socket in the client's open sockets
    /// (`sockets::Reserved::into_raw`), reserved before the connect.
    node: *mut core::ffi::c_void,
    /// Copies of the addresses: the provider may read them until the IRP
    /// completes, longer than the caller's buffers need to live.
    local: Sockaddr,
    remote: Sockaddr,
}

/// Room for a SOCKADDR_IN or SOCKADDR_IN6, 4-byte aligned like both.
#[repr(C, align(4))]
struct Sockaddr([u8; size_of::<SOCKADDR_IN6>()]);

const_assert!(size_of::<Private>() <= 32 * size_of::<ULONG_PTR>());

/// Copies a validated SOCKADDR_IN / SOCKADDR_IN6 (its family says which).
///
/// # Safety
/// `from` is a validated address: readable for its family's size.
unsafe fn copy_sockaddr(to: *mut Sockaddr, from: *const SOCKADDR) {
    // SAFETY: per the contract, `from` is readable for `len` bytes; `to` is
    // our storage of at least that size.
    unsafe {
        let family = ptr::read_unaligned(ptr::addr_of!((*from).sa_family));
        let len = if family == AF_INET6 { size_of::<SOCKADDR_IN6>() } else { size_of::<SOCKADDR_IN>() };
        ptr::copy_nonoverlapping(from.cast::<u8>(), to.cast::<u8>(), len);
    }
}

fn private(request: *mut SAFEWSK_CONNECT_REQUEST) -> *mut Private {
    // `Private` is ULONG_PTR-aligned, which is Private's alignment too.
    // SAFETY: address computation only; `request` points to a whole request.
    unsafe { ptr::addr_of_mut!((*request).Private) }.cast::<Private>()
}

/// Drops one reference; the last one finalizes the request.
///
/// # Safety
/// The caller holds a reference on a started request.
unsafe fn release(request: *mut SAFEWSK_CONNECT_REQUEST) {
    let p = private(request);
    // SAFETY: our reference keeps the request alive.
    let flags = match unsafe { (*p).state.release() } {
        Some(flags) => flags,
        None => return,
    };
    // SAFETY: last reference: nobody else touches the request or its IRP.
    // The IRP's completion routine ran (the IRP's reference is gone), so it
    // is ours to free; the timer is not queued (its reference is gone).
    unsafe {
        platform::free_irp((*p).irp);
        let mut status = (*p).status;
        if status == STATUS_CANCELLED {
            if flags & CANCELLED != 0 {
                status = STATUS_CANCELLED;
            } else if flags & TIMED_OUT != 0 {
                status = STATUS_IO_TIMEOUT;
            }
        }
        let client = &*(*p).client;
        let node = Reserved::from_raw((*p).node);
        let mut socket: *mut WSK_SOCKET = ptr::null_mut();
        if nt_success(status) {
            socket = (*p).information as *mut WSK_SOCKET;
            if socket.is_null() {
                status = STATUS_UNSUCCESSFUL;
                drop(node);
            } else {
                client.sockets().insert(node, socket);
            }
        } else {
            drop(node);
        }
        let callback = (*request).Callback;
        let context = (*request).CallbackContext;
        // After the callback the caller may reuse or free the request.
        if let Some(callback) = callback {
            callback(context, status, socket);
        }
        client.leave();
    }
}

/// Removes a queued timer and, if that worked and nobody claimed the timer's
/// reference before, releases it (see `request_state`: KeCancelTimer's TRUE
/// alone is not trusted).
///
/// # Safety
/// The caller holds a reference on a started request whose timer was
/// initialized.
unsafe fn cancel_timer_and_release(request: *mut SAFEWSK_CONNECT_REQUEST) {
    let p = private(request);
    // SAFETY: the caller's reference keeps the request alive.
    unsafe {
        if (*p).timer.cancel() && (*p).state.claim_timer() {
            release(request);
        }
    }
}

/// IoCompletion routine (IRQL <= DISPATCH_LEVEL), set with
/// IoSetCompletionRoutineEx: the driver stays loaded until it has returned.
unsafe extern "system" fn on_complete(_device: PVOID, irp: *mut IRP, context: PVOID) -> NTSTATUS {
    let request = context.cast::<SAFEWSK_CONNECT_REQUEST>();
    let p = private(request);
    // SAFETY: the IRP's reference keeps the request alive until `release`.
    unsafe {
        let (status, information) = platform::irp_result(irp);
        (*p).status = status;
        (*p).information = information;
        (*p).state.set_completed();
        // A timer still queued will not fire now: drop its reference here.
        cancel_timer_and_release(request);
        release(request);
    }
    STATUS_MORE_PROCESSING_REQUIRED
}

/// Timer DPC (DISPATCH_LEVEL): the deadline passed. SafeWskCleanup calls
/// KeFlushQueuedDpcs, so the driver stays loaded until this has returned.
unsafe extern "system" fn on_timeout(_dpc: *mut KDPC, context: PVOID, _a1: PVOID, _a2: PVOID) {
    let request = context.cast::<SAFEWSK_CONNECT_REQUEST>();
    let p = private(request);
    // SAFETY: the timer's reference keeps the request and the IRP alive
    // until it is released here, unless a KeCancelTimer claimed it first (then
    // this DPC touches nothing but the state word; see `request_state`).
    unsafe {
        if !(*p).state.claim_timer() {
            return;
        }
        if (*p).state.flags() & COMPLETED == 0 {
            (*p).state.set_flag(TIMED_OUT);
            platform::cancel_irp((*p).irp);
        }
        release(request);
    }
}

/// Starts an asynchronous connect whose arguments were validated. The
/// addresses are copied into the request; `issue` gets the copies.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL; `request` is valid caller storage (see the type);
/// `local` and `remote` were validated; `client` has been entered for this
/// request (it leaves after the callback); `issue` hands the IRP to exactly
/// one WSK function.
pub unsafe fn start(
    client: &SAFEWSK_CLIENT,
    request: *mut SAFEWSK_CONNECT_REQUEST,
    local: *const SOCKADDR,
    remote: *const SOCKADDR,
    issue: impl FnOnce(*mut IRP, *const SOCKADDR, *const SOCKADDR) -> NTSTATUS,
) -> Result<(), NTSTATUS> {
    // The socket's record first, so that a connected socket is never lost.
    let node = Reserved::new(client.allocator())?;
    // SAFETY: IRQL per the caller.
    let irp = unsafe { platform::allocate_irp() };
    if irp.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: the IRP is fresh and ours, with one stack location; the client's
    // device object is live while the client is.
    let st = unsafe { platform::set_completion_routine(client.device(), irp, on_complete, request.cast()) };
    if !nt_success(st) {
        // SAFETY: never issued: ours to free.
        unsafe { platform::free_irp(irp) };
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    let p = private(request);
    // SAFETY: the request is ours until the callback; the fields are written
    // before any other party can see them (the IRP is not issued yet).
    let timeout = unsafe {
        ptr::write(ptr::addr_of_mut!((*p).irp), irp);
        ptr::write(ptr::addr_of_mut!((*p).client), client as *const SAFEWSK_CLIENT);
        ptr::write(ptr::addr_of_mut!((*p).status), STATUS_PENDING);
        ptr::write(ptr::addr_of_mut!((*p).information), 0);
        ptr::write(ptr::addr_of_mut!((*p).node), node.into_raw());
        ptr::write(ptr::addr_of_mut!((*p).state), RequestState::new());
        copy_sockaddr(ptr::addr_of_mut!((*p).local), local);
        copy_sockaddr(ptr::addr_of_mut!((*p).remote), remote);
        (*p).timer.init(Some(on_timeout), request.cast());
        (*request).TimeoutMs
    };
    // SAFETY: address computation only, inside the request.
    let (local, remote) =
        unsafe { (ptr::addr_of!((*p).local).cast::<SOCKADDR>(), ptr::addr_of!((*p).remote).cast::<SOCKADDR>()) };
    let returned = issue(irp, local, remote);
    // SAFETY: the starter's reference keeps the request alive until the
    // release at the end.
    unsafe {
        if returned != STATUS_PENDING && (*p).state.flags() & COMPLETED == 0 {
            // Returned without being consumed (see irp.rs): complete it here
            // with the returned status, which the callback then reports.
            platform::report_unconsumed(b"WskSocketConnect (asynchronous)\0", irp, returned);
            platform::complete_unconsumed(irp, returned);
        }
        if timeout != SAFEWSK_NO_TIMEOUT && (*p).state.try_acquire_unless_completed(0) {
            (*p).timer.set(timeout);
            // Completion may have run between the check and KeSetTimer and
            // found no timer to cancel: cancel it here then.
            if (*p).state.flags() & COMPLETED != 0 {
                cancel_timer_and_release(request);
            }
        }
        release(request);
    }
    Ok(())
}

/// Requests cancellation; true if the request had not completed yet.
///
/// # Safety
/// `request` was started and its callback has not returned yet (or the
/// storage is still intact); IRQL <= DISPATCH_LEVEL.
pub unsafe fn cancel(request: *mut SAFEWSK_CONNECT_REQUEST) -> bool {
    let p = private(request);
    // SAFETY: per the caller, the storage is intact; a successful acquire
    // keeps the request and its IRP alive until the release.
    unsafe {
        if !(*p).state.try_acquire_unless_completed(CANCELLED) {
            return false;
        }
        platform::cancel_irp((*p).irp);
        release(request);
    }
    true
}
