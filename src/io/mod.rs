//! The calls on a connected socket: SafeWskSend, SafeWskReceive,
//! SafeWskGetLocalAddress, SafeWskGetRemoteAddress, SafeWskDisconnect,
//! SafeWskCloseSocket, and the event-callback controls (`events`).
//!
//! Check order, as for every export: parameters by position (the socket
//! handle, parameter 1, is decoded and its slot's word read: a handle that
//! does not name an open socket is STATUS_INVALID_PARAMETER_1), then the
//! IRQL, then the acquire: one compare-exchange on the socket's own state
//! word that checks the generation again, counts the call and claims the
//! socket's IRP. No client is entered and no lock is taken: a socket's slot
//! holds its client's reference.

pub(crate) mod buffer;
pub(crate) mod control;
pub(crate) mod events;

use core::cell::Cell;
use core::ffi::c_void;
use core::mem::size_of;
use core::ptr;

use crate::handles::{self, Acquired, Handle, Kind, Slot, Take, SAFEWSK_SOCKET};
use crate::kernel::irp::{self, call_and_wait, call_and_wait_on, Completion};
use crate::kernel::nt::*;
use crate::kernel::platform::{self, LockOperation};
use crate::kernel::report;
use crate::kernel::status::{require_irql, Status};
use crate::kernel::sync::Event;
use buffer::{BufferMdl, MdlStorage, SAFEWSK_FLAG_NONPAGED_BUFFER};

/// Which way the bytes go.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Send,
    Receive,
}

/// Parameter 1 of a call on a connection socket: a handle that names an
/// open connection socket now. Reads only static data and the slot's word,
/// so it is made at any IRQL.
pub(crate) fn check(handle: *mut SAFEWSK_SOCKET) -> Result<Handle, NTSTATUS> {
    check_kind(handle, Kind::Connection)
}

/// Parameter 1 of a call on a socket of `kind`: a handle of another kind
/// is STATUS_INVALID_PARAMETER_1, as a stale one is.
pub(crate) fn check_kind(handle: *mut SAFEWSK_SOCKET, kind: Kind) -> Result<Handle, NTSTATUS> {
    let (h, k) = check_any(handle)?;
    if k == kind {
        Ok(h)
    } else {
        Err(STATUS_INVALID_PARAMETER_1)
    }
}

/// Parameter 1 of a call that takes every kind of socket (the close, the
/// local address, the socket options): the handle and its socket's kind.
pub(crate) fn check_any(handle: *mut SAFEWSK_SOCKET) -> Result<(Handle, Kind), NTSTATUS> {
    let h = handles::decode(handle).ok_or(STATUS_INVALID_PARAMETER_1)?;
    match h.slot.kind() {
        Some(kind) if h.slot.state().is_open(h.generation) => Ok((h, kind)),
        _ => Err(STATUS_INVALID_PARAMETER_1),
    }
}

/// A call on an open socket, from its acquire to its release (drop).
///
/// # Invariants
/// The slot is held (its `held` count includes this call), so it is not
/// freed and its socket is not closed under the call's WSK function while
/// `inside`; `irp` is the slot's IRP if `slot_irp`, else null or an IRP this
/// call allocated.
pub(crate) struct SocketCall {
    slot: &'static Slot,
    index: u32,
    socket: *mut WSK_SOCKET,
    irp: *mut IRP,
    slot_irp: bool,
    inside: Cell<bool>,
}

impl SocketCall {
    /// Acquires the socket of a checked handle (after the IRQL check;
    /// IRQL <= DISPATCH_LEVEL).
    pub(crate) fn acquire(h: Handle, take: Take) -> Result<SocketCall, NTSTATUS> {
        let a = h.slot.state().acquire(h.generation, take).map_err(refused)?;
        Ok(SocketCall {
            slot: h.slot,
            index: h.index,
            socket: h.slot.socket(),
            irp: if a.irp { h.slot.irp() } else { ptr::null_mut() },
            slot_irp: a.irp,
            inside: Cell::new(take != Take::Close),
        })
    }

    pub(crate) fn socket(&self) -> *mut WSK_SOCKET {
        self.socket
    }

    pub(crate) fn slot(&self) -> &'static Slot {
        self.slot
    }

    pub(crate) fn device(&self) -> PDEVICE_OBJECT {
        self.slot.device()
    }

    /// The call's IRP: the slot's, or one allocated the first time (a call
    /// that overlaps another on the same socket).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    unsafe fn irp(&mut self) -> Result<*mut IRP, NTSTATUS> {
        if self.irp.is_null() {
            // SAFETY: IRQL per the caller.
            self.irp = unsafe { platform::allocate_irp() };
        }
        if self.irp.is_null() {
            Err(STATUS_INSUFFICIENT_RESOURCES)
        } else {
            Ok(self.irp)
        }
    }

    /// The call has returned from the socket's WSK function (its IRP may
    /// still pend): a close waiting for it may go on.
    pub(crate) fn returned(&self) {
        if self.inside.replace(false) && self.slot.state().returned() {
            // SAFETY: IRQL <= DISPATCH_LEVEL (every socket call); the close
            // sleeps until this wake.
            unsafe { self.slot.wake_closer() };
        }
    }

    /// Counts the call inside again before it calls another of the socket's
    /// functions; false once a close has begun (it must not).
    pub(crate) fn call_again(&self) -> bool {
        if self.inside.get() {
            return true;
        }
        self.inside.set(self.slot.state().call_again());
        self.inside.get()
    }

    /// Runs one WSK call on the call's IRP (see [`call_and_wait_on`]); once
    /// `issue` has returned, the call no longer counts as inside.
    ///
    /// # Safety
    /// As [`call_and_wait_on`] (IRQL <= APC_LEVEL; `issue` hands the IRP to
    /// exactly one WSK function).
    pub(crate) unsafe fn call(
        &mut self,
        what: &'static [u8],
        timeout_ms: Option<ULONG>,
        issue: impl FnOnce(*mut IRP) -> NTSTATUS,
        at_deadline: impl FnOnce(*mut IRP),
    ) -> Result<Completion, NTSTATUS> {
        // SAFETY: IRQL <= APC_LEVEL per the caller.
        let irp = unsafe { self.irp() }?;
        let device = self.device();
        let this = &*self;
        let issue = |irp| {
            let returned = issue(irp);
            this.returned();
            returned
        };
        // SAFETY: the call's IRP, idle; the rest per the caller.
        unsafe { call_and_wait_on(irp, device, what, timeout_ms, issue, at_deadline) }
    }

    /// The provider's connection dispatch table of the socket.
    pub(crate) fn dispatch(&self) -> Result<&'static WSK_PROVIDER_CONNECTION_DISPATCH, NTSTATUS> {
        debug_assert!(self.slot.is(Kind::Connection));
        // SAFETY: the slot is held, so its socket is open (a WSK_SOCKET the
        // provider made as a connection socket, which the caller's check of
        // the kind established): its Dispatch is the provider's connection
        // table, valid until the close.
        let dispatch = unsafe { (*self.socket).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
        // SAFETY: as above; null is handled.
        unsafe { dispatch.as_ref() }.ok_or(STATUS_NOT_SUPPORTED)
    }

    /// The provider's listening-socket dispatch table of the socket.
    pub(crate) fn listen_dispatch(&self) -> Result<&'static WSK_PROVIDER_LISTEN_DISPATCH, NTSTATUS> {
        debug_assert!(self.slot.is(Kind::Listen));
        // SAFETY: as `dispatch`, for a socket made with
        // WSK_FLAG_LISTEN_SOCKET (the caller checked the kind).
        let dispatch = unsafe { (*self.socket).Dispatch }.cast::<WSK_PROVIDER_LISTEN_DISPATCH>();
        // SAFETY: as above; null is handled.
        unsafe { dispatch.as_ref() }.ok_or(STATUS_NOT_SUPPORTED)
    }

    /// The provider's datagram-socket dispatch table of the socket.
    pub(crate) fn datagram_dispatch(&self) -> Result<&'static WSK_PROVIDER_DATAGRAM_DISPATCH, NTSTATUS> {
        debug_assert!(self.slot.is(Kind::Datagram));
        // SAFETY: as `dispatch`, for a socket made with
        // WSK_FLAG_DATAGRAM_SOCKET (the caller checked the kind).
        let dispatch = unsafe { (*self.socket).Dispatch }.cast::<WSK_PROVIDER_DATAGRAM_DISPATCH>();
        // SAFETY: as above; null is handled.
        unsafe { dispatch.as_ref() }.ok_or(STATUS_NOT_SUPPORTED)
    }

    /// The basic functions (WskControlSocket, WskCloseSocket), which every
    /// kind of socket's table begins with (wsk.h).
    pub(crate) fn basic(&self) -> Result<&'static WSK_PROVIDER_BASIC_DISPATCH, NTSTATUS> {
        // SAFETY: the slot is held, so its socket is open: its Dispatch is
        // one of the provider's tables, each of which begins with
        // WSK_PROVIDER_BASIC_DISPATCH; valid until the close.
        let dispatch = unsafe { (*self.socket).Dispatch }.cast::<WSK_PROVIDER_BASIC_DISPATCH>();
        // SAFETY: as above; null is handled.
        unsafe { dispatch.as_ref() }.ok_or(STATUS_NOT_SUPPORTED)
    }

    /// The hold this call has on its slot, as a value that will own it once
    /// [`SocketCall::keep`] has handed it over (an accept pending on a
    /// listening socket keeps it until its IRP has completed and its socket
    /// is handed out). Until then the call still owns it: release the
    /// returned value only after `keep`.
    pub(crate) fn hold(&self) -> Hold {
        Hold { slot: self.slot, index: self.index }
    }

    /// The call has returned from WSK and hands its hold over to the value
    /// [`SocketCall::hold`] returned (the call must not have its own IRP:
    /// acquired with [`Take::CallWithoutIrp`]).
    pub(crate) fn keep(self) {
        self.returned();
        debug_assert!(!self.slot_irp && self.irp.is_null());
        core::mem::forget(self);
    }
}

/// A hold on a socket's slot without a call inside (see
/// [`SocketCall::hold`]): the slot is not freed, and a close of its socket
/// does not wait for it, until [`Hold::release`].
#[derive(Clone, Copy)]
pub(crate) struct Hold {
    slot: &'static Slot,
    index: u32,
}

impl Hold {
    /// Gives the hold back (the last hold on a closed socket frees its
    /// slot).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; called once per hold.
    pub(crate) unsafe fn release(self) {
        let released = self.slot.state().release(false);
        // SAFETY: IRQL per the caller; this release freed it if so.
        unsafe { handles::recycle(self.slot, self.index, released) };
    }
}

impl Drop for SocketCall {
    fn drop(&mut self) {
        self.returned();
        let released = self.slot.state().release(self.slot_irp);
        if !self.slot_irp && !self.irp.is_null() {
            // SAFETY: an IRP this call allocated, idle (its completion was
            // waited for, or it was never issued); IRQL <= DISPATCH_LEVEL.
            unsafe { platform::free_irp(self.irp) };
        }
        // SAFETY: IRQL <= DISPATCH_LEVEL; this release freed it if so.
        unsafe { handles::recycle(self.slot, self.index, released) };
    }
}

/// The status of a refused acquire.
fn refused(r: handles::Refused) -> NTSTATUS {
    match r {
        handles::Refused::Stale => STATUS_INVALID_PARAMETER_1,
        handles::Refused::Busy => STATUS_INSUFFICIENT_RESOURCES,
    }
}

/// The default action at a deadline: cancel the IRP.
pub(crate) fn cancel_at_deadline(irp: *mut IRP) {
    // SAFETY: call_and_wait_on passes the still-live IRP, at IRQL <=
    // APC_LEVEL.
    unsafe { irp::cancel(irp) }
}

/// SafeWskSend / SafeWskReceive: one path for both directions.
///
/// # Safety
/// The API contract of SafeWskSend (`Buffer` readable) or SafeWskReceive
/// (`Buffer` writable).
pub unsafe fn transfer(
    direction: Direction,
    socket: *mut SAFEWSK_SOCKET,
    buffer: *mut c_void,
    length: ULONG,
    flags: ULONG,
    timeout_ms: ULONG,
    bytes: *mut ULONG,
) -> Status {
    let h = check(socket)?;
    if buffer.is_null() {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    if length == 0 {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    let (allowed, operation, what): (ULONG, LockOperation, &'static [u8]) = match direction {
        Direction::Send => (WSK_FLAG_NODELAY, LockOperation::Read, b"WskSend\0"),
        Direction::Receive => (WSK_FLAG_WAITALL, LockOperation::Write, b"WskReceive\0"),
    };
    if flags & !(allowed | SAFEWSK_FLAG_NONPAGED_BUFFER) != 0 {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    if direction == Direction::Receive && bytes.is_null() {
        return Err(STATUS_INVALID_PARAMETER_6);
    }
    require_irql(APC_LEVEL)?;
    let mut call = SocketCall::acquire(h, Take::Call)?;
    let dispatch = call.dispatch()?;
    let provider = match direction {
        Direction::Send => dispatch.WskSend,
        Direction::Receive => dispatch.WskReceive,
    }
    .ok_or(STATUS_NOT_SUPPORTED)?;
    let nonpaged = flags & SAFEWSK_FLAG_NONPAGED_BUFFER != 0;
    let flags = flags & !SAFEWSK_FLAG_NONPAGED_BUFFER;
    // The MDL on this stack: it stays resident because the wait for the IRP
    // is a KernelMode wait (see `buffer`).
    let mut storage = MdlStorage::new();
    // SAFETY: buffer validity and kind per the API contract; IRQL checked;
    // `storage` is on this thread's stack and outlives the IRP.
    let buf = unsafe { BufferMdl::new(&mut storage, buffer, length, operation, nonpaged) }?;
    let mut wsk_buf = WSK_BUF { Mdl: buf.mdl(), Offset: 0, Length: length as SIZE_T };
    let wsk_buf_ptr = ptr::addr_of_mut!(wsk_buf);
    let wsk_socket = call.socket();
    let issue = |irp| {
        // SAFETY: the provider's WskSend/WskReceive of an open socket (held);
        // the WSK_BUF and MDL outlive the IRP (call_and_wait returns only
        // after completion).
        unsafe { provider(wsk_socket, wsk_buf_ptr, flags, irp) }
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call.call(what, Some(timeout_ms), issue, cancel_at_deadline) };
    // The IRP that used the MDL has completed: unlock, free.
    drop(buf);
    let done = done?;
    if !bytes.is_null() {
        // SAFETY: non-null out pointer per the API contract. The provider
        // never reports more than `length` (a ULONG).
        unsafe { *bytes = ULONG::try_from(done.information).unwrap_or(length) };
    }
    Ok(done.status)
}

/// Which end of the connection an address query asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// WskGetLocalAddress.
    Local,
    /// WskGetRemoteAddress.
    Remote,
}

/// SafeWskGetLocalAddress / SafeWskGetRemoteAddress: one path for both.
///
/// The provider writes into a SOCKADDR_IN6-sized buffer on this thread's
/// stack, not into the caller's: PFN_WSK_GET_LOCAL_ADDRESS requires "The
/// buffer must be located in non-paged memory" (Microsoft Learn), and the
/// stack stays resident because the wait is a KernelMode wait. The address
/// is copied to the caller's buffer, which may then be paged, at the
/// caller's IRQL (<= APC_LEVEL) once the IRP has completed.
///
/// # Safety
/// The API contract of SafeWskGetLocalAddress / SafeWskGetRemoteAddress.
pub unsafe fn address(
    end: End,
    socket: *mut SAFEWSK_SOCKET,
    address: *mut SOCKADDR,
    length: ULONG,
    timeout_ms: ULONG,
) -> Status {
    // The local address of every kind of socket; the remote address of a
    // connection socket only (listening and datagram sockets have none).
    let h = match end {
        End::Local => check_any(socket)?.0,
        End::Remote => check(socket)?,
    };
    if address.is_null() {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    if (length as usize) < size_of::<SOCKADDR_IN>() {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    require_irql(APC_LEVEL)?;
    let mut call = SocketCall::acquire(h, Take::Call)?;
    let (provider, what): (_, &'static [u8]) = match (end, call.slot().kind()) {
        (End::Local, Some(Kind::Listen)) => (call.listen_dispatch()?.WskGetLocalAddress, b"WskGetLocalAddress\0"),
        (End::Local, Some(Kind::Datagram)) => (call.datagram_dispatch()?.WskGetLocalAddress, b"WskGetLocalAddress\0"),
        (End::Local, _) => (call.dispatch()?.WskGetLocalAddress, b"WskGetLocalAddress\0"),
        (End::Remote, _) => (call.dispatch()?.WskGetRemoteAddress, b"WskGetRemoteAddress\0"),
    };
    let provider = provider.ok_or(STATUS_NOT_SUPPORTED)?;
    // Large enough for every family SafeWskSocketConnect accepts.
    let mut found = SOCKADDR_IN6::default();
    let found_ptr = ptr::addr_of_mut!(found).cast::<SOCKADDR>();
    let wsk_socket = call.socket();
    let issue = |irp| {
        // SAFETY: the provider's WskGet*Address of an open socket; `found`
        // is resident (KernelMode wait) and outlives the IRP.
        unsafe { provider(wsk_socket, found_ptr, irp) }
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call.call(what, Some(timeout_ms), issue, cancel_at_deadline) }?;
    drop(call);
    if !nt_success(done.status) {
        return Err(done.status);
    }
    let size = match found.sin6_family {
        AF_INET => size_of::<SOCKADDR_IN>(),
        AF_INET6 => size_of::<SOCKADDR_IN6>(),
        // Not a family SafeWskSocketConnect accepts: a provider fault.
        _ => return Err(STATUS_UNSUCCESSFUL),
    };
    if (length as usize) < size {
        return Err(STATUS_BUFFER_TOO_SMALL);
    }
    // SAFETY: `address` is `length` >= `size` writable bytes per the API
    // contract and checks above; `found` is a local of at least `size` bytes
    // that the caller's buffer cannot overlap.
    unsafe { ptr::copy_nonoverlapping(ptr::addr_of!(found).cast::<u8>(), address.cast::<u8>(), size) };
    // The header promises STATUS_SUCCESS whenever the address was written,
    // whatever success-class status the provider completed with.
    Ok(STATUS_SUCCESS)
}

/// How long the abortive WskDisconnect that ends a graceful one at its
/// deadline may take before it is cancelled: SafeWskDisconnect returns
/// within `TimeoutMs` plus this margin (plus the time the provider takes to
/// complete the cancelled IRPs).
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_DISCONNECT_ABORT_MARGIN_MS: ULONG = 100 as ULONG;
const ABORTIVE_GRACE_MS: ULONG = SAFEWSK_DISCONNECT_ABORT_MARGIN_MS;

/// SafeWskDisconnect; a graceful disconnect past its deadline is turned
/// into an abortive one.
///
/// # Safety
/// The API contract of SafeWskDisconnect.
pub unsafe fn disconnect(socket: *mut SAFEWSK_SOCKET, flags: ULONG, timeout_ms: ULONG) -> Status {
    let h = check(socket)?;
    if flags & !WSK_FLAG_ABORTIVE != 0 {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    require_irql(APC_LEVEL)?;
    let mut call = SocketCall::acquire(h, Take::Call)?;
    let disconnect = call.dispatch()?.WskDisconnect.ok_or(STATUS_NOT_SUPPORTED)?;
    let device = call.device();
    let wsk_socket = call.socket();
    let graceful = flags & WSK_FLAG_ABORTIVE == 0;
    let what: &'static [u8] = if graceful { b"WskDisconnect (graceful)\0" } else { b"WskDisconnect (abortive)\0" };
    let irp = call_irp(&mut call)?;
    let issue = |irp| {
        // SAFETY: the provider's WskDisconnect of an open socket.
        let st = unsafe { disconnect(wsk_socket, ptr::null_mut(), flags, irp) };
        call.returned();
        st
    };
    let at_deadline = |irp: *mut IRP| {
        // A second call of the socket's functions: not once a close has
        // begun (it may have freed the socket; it completes the graceful
        // disconnect anyway).
        if graceful && call.call_again() {
            let abort = |irp2| {
                // SAFETY: the provider's WskDisconnect of an open socket: no
                // close can issue WskCloseSocket before `returned`.
                let st = unsafe { disconnect(wsk_socket, ptr::null_mut(), WSK_FLAG_ABORTIVE, irp2) };
                call.returned();
                st
            };
            // SAFETY: IRQL <= APC_LEVEL; a second IRP (allocated: this is
            // the deadline path) for the abortive disconnect, waited for like
            // any call; the graceful IRP stays live (given back only after
            // its completion). The deadline has passed: the abortive step
            // gets ABORTIVE_GRACE_MS, the stated margin, not a fresh
            // TimeoutMs.
            let _ = unsafe {
                call_and_wait(
                    device,
                    b"WskDisconnect (abortive, after the graceful one's deadline)\0",
                    Some(ABORTIVE_GRACE_MS),
                    abort,
                )
            };
            // If no IRP or context could be allocated, `abort` never ran.
            call.returned();
        }
        // SAFETY: the IRP is live until its completion has been waited for.
        unsafe { irp::cancel(irp) };
    };
    // SAFETY: IRQL checked; `issue` hands the IRP to exactly one WSK call.
    let done = unsafe { call_and_wait_on(irp, device, what, Some(timeout_ms), issue, at_deadline) }?;
    if done.timed_out {
        Err(STATUS_IO_TIMEOUT)
    } else {
        Ok(done.status)
    }
}

/// The call's IRP, for a path that shares the call with two closures.
fn call_irp(call: &mut SocketCall) -> Result<*mut IRP, NTSTATUS> {
    // SAFETY: every socket call is at IRQL <= APC_LEVEL here.
    unsafe { call.irp() }
}

/// SafeWskCloseSocket.
///
/// # Safety
/// The API contract of SafeWskCloseSocket.
pub unsafe fn close(socket: *mut SAFEWSK_SOCKET) -> Status {
    let (h, _) = check_any(socket)?;
    require_irql(APC_LEVEL)?;
    let a = h.slot.state().acquire(h.generation, Take::Close).map_err(refused)?;
    // SAFETY: IRQL <= APC_LEVEL; the close's acquire of this slot.
    unsafe { close_acquired(h.slot, h.index, a) }
}

/// The close of a slot acquired for it (by SafeWskCloseSocket, or by
/// cleanup for a socket the driver left open or an orphan it adopted):
/// waits until no other call is inside one of the socket's functions, then
/// WskCloseSocket, waited for. Ok with the provider's status once the close
/// was issued and consumed (the socket is gone, whatever the status); Err
/// if it could not be (no IRP or completion context, or the provider
/// refused it without consuming the IRP): the slot is then an orphan, which
/// cleanup closes.
///
/// # Safety
/// IRQL <= APC_LEVEL; `a` is the acquire (Take::Close) or adoption of slot
/// `index`, given up here.
pub(crate) unsafe fn close_acquired(slot: &'static Slot, index: u32, a: Acquired) -> Status {
    if a.must_wait {
        // WSK forbids the close while another call is still inside one of
        // the socket's functions ("Closing a Socket"): wait until those that
        // began before this close have returned (their IRPs may stay
        // pending; the close completes them). No new one begins.
        let event = Event::new();
        // SAFETY: on this stack, resident while this thread waits in
        // KernelMode; nobody knows it yet.
        unsafe { event.init() };
        slot.set_closer(&event);
        if slot.state().wait_for_calls() {
            let mut waited: ULONG = 0;
            // SAFETY: initialized and live until signalled: the last call to
            // return wakes it, its last access (this loop ends only then).
            while unsafe { event.wait(Some(platform::REPORT_INTERVAL_MS)) } == STATUS_TIMEOUT {
                waited = waited.saturating_add(platform::REPORT_INTERVAL_MS);
                report::report_values(report::SAFEWSK_REPORT_CLOSE_WAITING, STATUS_PENDING, waited, 0, 0);
            }
        }
    }
    let socket = slot.socket();
    let mut call = SocketCall {
        slot,
        index,
        socket,
        irp: if a.irp { slot.irp() } else { ptr::null_mut() },
        slot_irp: a.irp,
        inside: Cell::new(false),
    };
    let close = match call.basic().map(|d| d.WskCloseSocket) {
        Ok(Some(close)) => close,
        // A provider without WskCloseSocket: nothing can close the socket;
        // the slot is given up.
        _ => return Err(STATUS_NOT_SUPPORTED),
    };
    let issue = |irp| {
        // SAFETY: the provider's WskCloseSocket of an open socket, marked as
        // being closed, with no other call inside one of its functions.
        unsafe { close(socket, irp) }
    };
    // SAFETY: IRQL <= APC_LEVEL; `issue` hands the IRP to exactly one WSK
    // call.
    match unsafe { call.call(b"WskCloseSocket\0", None, issue, cancel_at_deadline) } {
        Ok(d) if d.consumed => Ok(d.status),
        Ok(d) => Err(orphan(call, d.status)),
        Err(status) => Err(orphan(call, status)),
    }
}

/// A close that could not be issued: the slot becomes an orphan (the
/// close's hold stays, as the library's); the call's own IRP is freed.
fn orphan(call: SocketCall, status: NTSTATUS) -> NTSTATUS {
    let call = core::mem::ManuallyDrop::new(call);
    call.slot.state().orphan(call.slot_irp);
    if !call.slot_irp && !call.irp.is_null() {
        // SAFETY: an IRP this close allocated, idle (never issued, or
        // completed here as not consumed); IRQL <= APC_LEVEL.
        unsafe { platform::free_irp(call.irp) };
    }
    report::report_values(report::SAFEWSK_REPORT_ORPHAN, status, 0, call.index, 0);
    status
}
