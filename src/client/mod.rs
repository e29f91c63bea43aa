//! The WSK client: registration, the captured provider NPI, the device
//! object that keeps the driver loaded while completion routines run, and
//! the client's place in the library's static table of clients.
//!
//! A client is two things:
//! - a slot of [`CLIENTS`], in the library's static data, never freed: the
//!   [`Rundown`] word (the handle's generation, the client's life, its
//!   counts of calls and socket slots), the block's address, and where a
//!   waiting cleanup sleeps. A `SAFEWSK_CLIENT*` is an encoded handle (slot
//!   index and generation under a tag byte, a non-canonical address), so a
//!   stale or forged client handle is refused by one compare-exchange on
//!   static memory, without reading the freed block;
//! - a [`ClientBlock`] in tagged non-paged pool, holding the
//!   WSK_REGISTRATION, WSK_CLIENT_NPI and WSK_CLIENT_DISPATCH that
//!   WskRegister requires to stay valid until WskDeregister, and the
//!   WSK_PROVIDER_NPI captured once at startup and released at cleanup
//!   ("for each call to WskCaptureProviderNPI that returns a success code,
//!   there must be exactly one corresponding call to
//!   WskReleaseProviderNPI").
//!
//! # Invariants
//! - a slot's `block` is a live block exactly while its rundown word is
//!   CLAIMED and was made LIVE by startup, until cleanup's `try_free`; only
//!   a caller inside the client (or cleanup) reads it;
//! - `waiter` is set by cleanup before it sets WAITING, and read by whoever
//!   clears WAITING (who then wakes it, its last access).

#![allow(non_camel_case_types)]

/// cbindgen:ignore
pub(crate) mod rundown;
pub(crate) mod security_descriptor;
pub(crate) mod transports;

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicPtr, Ordering};

use crate::handles;
use crate::io;
use crate::kernel::nt::*;
use crate::kernel::platform;
use crate::kernel::report;
use crate::kernel::status::{require_irql, Status};
use crate::kernel::sync::Event;
use rundown::{Refused, Rundown, Step};
use security_descriptor::CachedSds;
use transports::Transports;

/// How many clients a driver can have at once.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_MAX_CLIENTS: u32 = 64 as u32;
const MAX_CLIENTS: usize = SAFEWSK_MAX_CLIENTS as usize;
/// The tag byte of a client handle (see `handles` for the socket's).
const CLIENT_TAG: u64 = 0xC5;
/// How long cleanup waits before it tries again to close a socket whose
/// close could not be issued (no completion context).
const ORPHAN_RETRY_MS: ULONG = 10;

/// An opaque client handle: a `SAFEWSK_CLIENT*` in C, never dereferenced.
pub struct SAFEWSK_CLIENT {
    _private: [u8; 0],
}

/// One client: what WSK needs to stay put while registered, in pool.
pub(crate) struct ClientBlock {
    device: PDEVICE_OBJECT,
    allocator: platform::PoolAllocator,
    registration: WSK_REGISTRATION,
    client_npi: WSK_CLIENT_NPI,
    client_dispatch: WSK_CLIENT_DISPATCH,
    provider: WSK_PROVIDER_NPI,
    /// Security descriptors cached with SafeWskCacheSecurityDescriptor and
    /// not yet released.
    sds: CachedSds,
    /// The provider's transport list, queried at startup (read-only after).
    transports: Transports,
}

struct ClientSlot {
    rundown: Rundown,
    block: AtomicPtr<ClientBlock>,
    waiter: AtomicPtr<Event>,
}

static CLIENTS: [ClientSlot; MAX_CLIENTS] = [const {
    ClientSlot {
        rundown: Rundown::new(),
        block: AtomicPtr::new(ptr::null_mut()),
        waiter: AtomicPtr::new(ptr::null_mut()),
    }
}; MAX_CLIENTS];

fn encode(index: u32, generation: u32) -> *mut SAFEWSK_CLIENT {
    ((CLIENT_TAG << 56) | (u64::from(generation) << 16) | u64::from(index)) as usize as *mut SAFEWSK_CLIENT
}

/// The slot index and generation a handle names, if it has a client
/// handle's form (nothing is read).
fn decode(h: *mut SAFEWSK_CLIENT) -> Option<(u32, u32)> {
    let h = h as usize as u64;
    let index = (h & 0xFFFF) as u32;
    let generation = ((h >> 16) & 0xFF_FFFF) as u32;
    if h >> 56 != CLIENT_TAG || (h >> 40) & 0xFFFF != 0 || index >= SAFEWSK_MAX_CLIENTS || generation == 0 {
        return None;
    }
    Some((index, generation))
}

/// The rundown word of client slot `index`.
pub(crate) fn rundown(index: u32) -> Option<&'static Rundown> {
    CLIENTS.get(index as usize).map(|c| &c.rundown)
}

/// Wakes cleanup of client slot `index` (its rundown said so).
fn wake(index: u32) {
    let Some(slot) = CLIENTS.get(index as usize) else { return };
    let event = slot.waiter.load(Ordering::Acquire);
    // SAFETY: cleanup published its event before setting WAITING and sleeps
    // until this wake: the event is live. Callers are at IRQL <=
    // DISPATCH_LEVEL (every path into the library checked it).
    if let Some(event) = unsafe { event.as_ref() } {
        // SAFETY: as above; the last access.
        unsafe { event.set() };
    }
}

/// A socket slot of client `index` was freed (see `handles::recycle`).
pub(crate) fn socket_gone(index: u32) {
    if rundown(index).is_some_and(|r| r.socket_gone()) {
        wake(index);
    }
}

/// A call inside a client; leaving (drop) lets cleanup proceed.
#[must_use]
pub(crate) struct Inside {
    index: u32,
    block: &'static ClientBlock,
}

impl Drop for Inside {
    fn drop(&mut self) {
        leave(self.index);
    }
}

/// Leaves client `index` (a call, or an asynchronous request after its
/// callback); the last one out while cleanup sleeps wakes it.
pub(crate) fn leave(index: u32) {
    if rundown(index).is_some_and(|r| r.leave()) {
        wake(index);
    }
}

/// Parameter 1 of the client-level exports. At IRQL <= DISPATCH_LEVEL the
/// client is entered (even during cleanup: the caller refuses connects later,
/// after the other parameters and the IRQL, with [`Inside::connecting`]);
/// above it the handle is checked against its slot's word (static memory)
/// but nothing is entered (Ok(None)), since leaving may have to wake
/// cleanup.
pub(crate) fn pin(handle: *mut SAFEWSK_CLIENT) -> Result<Option<Inside>, NTSTATUS> {
    let (index, generation) = decode(handle).ok_or(STATUS_INVALID_PARAMETER_1)?;
    let slot = CLIENTS.get(index as usize).ok_or(STATUS_INVALID_PARAMETER_1)?;
    if platform::current_irql() > DISPATCH_LEVEL {
        // Static memory only: a stale handle is still parameter 1 here.
        return if slot.rundown.is_live(generation) { Ok(None) } else { Err(STATUS_INVALID_PARAMETER_1) };
    }
    slot.rundown.enter(generation, true).map_err(|_| STATUS_INVALID_PARAMETER_1)?;
    let block = slot.block.load(Ordering::Acquire);
    // SAFETY: entered a LIVE client: its block is live until cleanup's
    // try_free, which waits for this call to leave.
    match unsafe { block.as_ref() } {
        Some(block) => Ok(Some(Inside { index, block })),
        None => {
            leave(index);
            Err(STATUS_INVALID_PARAMETER_1)
        }
    }
}

impl Inside {
    /// The client block.
    pub(crate) fn block(&self) -> &'static ClientBlock {
        self.block
    }

    /// The client's slot index (socket slots record it as their owner).
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// For a call that may make sockets: Err(STATUS_DELETE_PENDING) once
    /// cleanup has begun. (Cleanup waits for calls inside before it closes
    /// the client's sockets, so one that passes this check and makes a
    /// socket gets that socket closed by cleanup.)
    pub(crate) fn connecting(&self) -> Result<(), NTSTATUS> {
        match rundown(self.index) {
            Some(r) if !r.cleaning() => Ok(()),
            _ => Err(STATUS_DELETE_PENDING),
        }
    }

    /// Keeps the call's place after this guard is gone: an asynchronous
    /// request leaves with [`leave`] after its callback.
    pub(crate) fn keep(self) -> u32 {
        let index = self.index;
        core::mem::forget(self);
        index
    }

    /// Reserves a socket slot for a connect of this client.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub(crate) unsafe fn reserve_socket(
        &self,
        dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    ) -> Result<handles::Reserved, NTSTATUS> {
        // SAFETY: forwarded caller guarantee.
        unsafe { self.reserve_socket_of(handles::Kind::Connection, dispatch) }
    }

    /// Reserves a socket slot of `kind` for this client (a listening or
    /// datagram socket records no client dispatch table: NULL).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub(crate) unsafe fn reserve_socket_of(
        &self,
        kind: handles::Kind,
        dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
    ) -> Result<handles::Reserved, NTSTATUS> {
        let b = self.block;
        // SAFETY: IRQL per the caller; inside this client.
        unsafe { handles::reserve(b.allocator, self.index, b.device, kind, dispatch) }
    }
}

/// Reserves a connection slot of client `owner` for a socket that an accept
/// on one of its listening sockets will make. The caller is not inside the
/// client (an accept may wait as long as a receive): it holds the listening
/// socket's slot, whose reference on the client keeps the block live (the
/// client is freed only once its count of socket slots is 0), so the slot
/// reserved here joins a live client. Cleanup closes the client's listening
/// sockets first and waits until every accept pending on them has handed
/// out its socket (see `close_left_open`).
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL; the caller holds a socket slot of client
/// `owner`.
pub(crate) unsafe fn reserve_accepted(
    owner: u32,
    dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH,
) -> Result<handles::Reserved, NTSTATUS> {
    let slot = CLIENTS.get(owner as usize).ok_or(STATUS_INVALID_PARAMETER_1)?;
    let block = slot.block.load(Ordering::Acquire);
    // SAFETY: the caller's socket slot keeps the client, and so its block,
    // live (the module invariant: the block is freed only after cleanup's
    // try_free, which needs the count of socket slots at 0).
    let b = unsafe { block.as_ref() }.ok_or(STATUS_INVALID_PARAMETER_1)?;
    // SAFETY: IRQL per the caller; the client is live (above).
    unsafe { handles::reserve(b.allocator, owner, b.device, handles::Kind::Connection, dispatch) }
}

impl ClientBlock {
    /// The device object whose reference keeps the driver loaded while
    /// completion routines run.
    pub(crate) fn device(&self) -> PDEVICE_OBJECT {
        self.device
    }

    /// How this kernel allocates pool (resolved at startup).
    pub(crate) fn allocator(&self) -> platform::PoolAllocator {
        self.allocator
    }

    /// The cached security descriptors.
    pub(crate) fn sds(&self) -> &CachedSds {
        &self.sds
    }

    /// The provider's transport list (or nothing known).
    pub(crate) fn transports(&self) -> &Transports {
        &self.transports
    }

    /// The captured provider NPI (valid until cleanup releases it).
    pub(crate) fn provider(&self) -> &WSK_PROVIDER_NPI {
        &self.provider
    }
}

/// Registers with WSK and captures the provider NPI into a new block,
/// waiting up to `wait_ms` for it.
///
/// # Safety
/// PASSIVE_LEVEL; `device` is a live DEVICE_OBJECT of the calling driver
/// that outlives the client.
unsafe fn start_block(device: PDEVICE_OBJECT, wait_ms: ULONG) -> Result<*mut ClientBlock, NTSTATUS> {
    // SAFETY: PASSIVE_LEVEL per the caller.
    let allocator = unsafe { platform::PoolAllocator::resolve() };
    // SAFETY: PASSIVE_LEVEL per the caller.
    let p = unsafe { allocator.alloc(size_of::<ClientBlock>()) }.cast::<ClientBlock>();
    if p.is_null() {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    }
    // SAFETY: `p` is a fresh, suitably sized and aligned (pool blocks are
    // 16-byte aligned) block that nothing else references yet.
    unsafe {
        ptr::write(
            p,
            ClientBlock {
                device,
                allocator,
                registration: WSK_REGISTRATION::zeroed(),
                client_npi: WSK_CLIENT_NPI { ClientContext: ptr::null_mut(), Dispatch: ptr::null() },
                client_dispatch: WSK_CLIENT_DISPATCH {
                    Version: make_wsk_version(1, 0),
                    Reserved: 0,
                    WskClientEvent: ptr::null_mut(),
                },
                provider: WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() },
                sds: CachedSds::new(),
                transports: Transports::unknown(),
            },
        )
    };
    // SAFETY: initialized above; nothing else references it until published.
    let c = unsafe { &mut *p };
    // The registration structures stay at this address until deregistration
    // because the block is only freed after WskDeregister.
    c.client_npi.ClientContext = p.cast();
    c.client_npi.Dispatch = ptr::addr_of!(c.client_dispatch);
    // SAFETY: PASSIVE_LEVEL; the NPI and registration live in the block.
    let status = unsafe { platform::wsk_register(&mut c.client_npi, &mut c.registration) };
    if !nt_success(status) {
        // SAFETY: never registered: nothing references the block.
        unsafe { platform::pool_free(p.cast()) };
        return Err(status);
    }
    // SAFETY: registered above; PASSIVE_LEVEL.
    let status = unsafe { platform::wsk_capture(&mut c.registration, wait_ms, &mut c.provider) };
    if !nt_success(status) {
        // SAFETY: registered, nothing captured: deregistering returns at once.
        unsafe { platform::wsk_deregister(&mut c.registration) };
        // SAFETY: deregistered: nothing references the block any more.
        unsafe { platform::pool_free(p.cast()) };
        return Err(status);
    }
    let provider = WSK_PROVIDER_NPI { Client: c.provider.Client, Dispatch: c.provider.Dispatch };
    // SAFETY: PASSIVE_LEVEL; the NPI was captured above.
    unsafe { c.transports.query(&provider) };
    Ok(p)
}

/// Releases the provider, deregisters and frees a block nobody uses any
/// more.
///
/// # Safety
/// PASSIVE_LEVEL; no call is inside the client, no socket of it exists, and
/// nothing can reach the block any more.
unsafe fn stop_block(p: *mut ClientBlock) {
    // SAFETY: per the contract, this thread is the only user of the block.
    let block = unsafe { &*p };
    // Cached security descriptors the driver did not release: release them
    // while the provider NPI is still captured (reported each).
    // SAFETY: PASSIVE_LEVEL; nobody else uses the block.
    unsafe { security_descriptor::release_forgotten(block) };
    // SAFETY: address computation inside the live block.
    let registration = unsafe { ptr::addr_of_mut!((*p).registration) };
    // SAFETY: the capture made at start is released exactly once.
    unsafe { platform::wsk_release(registration) };
    // SAFETY: PASSIVE_LEVEL, the capture released and no socket open, so
    // WskDeregister does not block.
    unsafe { platform::wsk_deregister(registration) };
    // SAFETY: deregistered: nothing references the block any more.
    unsafe { platform::pool_free(p.cast()) };
}

/// SafeWskStartup (after `*client_out` was cleared): parameters 1 and 3, the
/// IRQL, then a client slot, registration and capture.
///
/// # Safety
/// The API contract of SafeWskStartup.
pub unsafe fn startup(device: PDEVICE_OBJECT, wait_ms: ULONG, client_out: *mut *mut SAFEWSK_CLIENT) -> Status {
    // SAFETY: a non-null device points to a DEVICE_OBJECT per the API
    // contract; its first field is the Type.
    if device.is_null() || unsafe { (*device).Type } != IO_TYPE_DEVICE {
        return Err(STATUS_INVALID_PARAMETER_1);
    }
    if client_out.is_null() {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    require_irql(PASSIVE_LEVEL)?;
    let (index, slot, generation) = CLIENTS
        .iter()
        .enumerate()
        .find_map(|(i, s)| s.rundown.claim().map(|g| (i as u32, s, g)))
        .ok_or(STATUS_INSUFFICIENT_RESOURCES)?;
    // SAFETY: PASSIVE_LEVEL.
    if let Err(status) = unsafe { handles::client_started() } {
        slot.rundown.unclaim();
        return Err(status);
    }
    // SAFETY: PASSIVE_LEVEL checked; the device object is live.
    let block = match unsafe { start_block(device, wait_ms) } {
        Ok(block) => block,
        Err(status) => {
            slot.rundown.unclaim();
            // SAFETY: PASSIVE_LEVEL; this client never had a socket slot.
            unsafe { handles::client_stopped() };
            return Err(status);
        }
    };
    slot.block.store(block, Ordering::Release);
    slot.rundown.go_live();
    // SAFETY: non-null and writable per the API contract.
    unsafe { *client_out = encode(index, generation) };
    Ok(STATUS_SUCCESS)
}

/// Cleanup's sleep on its event until woken, reported periodically.
///
/// # Safety
/// PASSIVE_LEVEL; `event` is initialized and WAITING was set with it
/// published, so the wake will come.
unsafe fn sleep(event: &Event, index: u32, waited_ms: &mut ULONG) {
    // SAFETY: per the contract.
    while unsafe { event.wait(Some(platform::REPORT_INTERVAL_MS)) } == STATUS_TIMEOUT {
        *waited_ms = waited_ms.saturating_add(platform::REPORT_INTERVAL_MS);
        let (calls, sockets) = rundown(index).map_or((0, 0), |r| r.counts());
        report::report_values(report::SAFEWSK_REPORT_CLEANUP_WAITING, STATUS_PENDING, *waited_ms, calls, sockets);
    }
}

/// Closes every socket of client `index` that the driver left open, and
/// every orphan (a close that could not be issued). Returns whether an
/// orphan is left (its close could not be issued again).
///
/// # Safety
/// PASSIVE_LEVEL; cleanup of client `index` has waited for its calls (no
/// connect can make a socket of it any more).
unsafe fn close_left_open(index: u32, waited_ms: &mut ULONG) -> bool {
    let mut orphans = false;
    // Listening sockets first. An accept pending on one holds its slot from
    // before the accepted socket's slot is reserved until that socket is
    // handed out (or given up), so once a listening socket's slot is
    // released no accept of it can hand out a socket any more: waiting for
    // that before the walk below means the walk sees every accepted socket.
    // The close completes the pending accepts (WskCloseSocket "cancel[s] and
    // complete[s] all pending IRPs", PFN_WSK_CLOSE_SOCKET); a listening
    // socket whose close could not be issued is an orphan, retried by the
    // caller, which walks again after it.
    handles::for_each_slot(|slot, i| {
        if slot.owner() != index || !slot.is(handles::Kind::Listen) {
            return;
        }
        let Some(generation) = slot.state().open_generation() else { return };
        let Ok(a) = slot.state().acquire(generation, handles::Take::Close) else { return };
        report::report_values(report::SAFEWSK_REPORT_CLEANUP_CLOSING, STATUS_SUCCESS, 0, i, 0);
        // SAFETY: PASSIVE_LEVEL; the close's acquire just made.
        let closed = unsafe { io::close_acquired(slot, i, a) }.is_ok();
        if !closed {
            orphans = true;
            return;
        }
        let pause = Event::new();
        // SAFETY: on this stack, never signalled: a pause between looks.
        unsafe { pause.init() };
        let mut since_report: ULONG = 0;
        while !slot.state().released(generation) {
            // SAFETY: initialized; PASSIVE_LEVEL.
            unsafe { pause.wait(Some(ORPHAN_RETRY_MS)) };
            since_report = since_report.saturating_add(ORPHAN_RETRY_MS);
            if since_report >= platform::REPORT_INTERVAL_MS {
                *waited_ms = waited_ms.saturating_add(since_report);
                since_report = 0;
                let (calls, sockets) = rundown(index).map_or((0, 0), |r| r.counts());
                report::report_values(
                    report::SAFEWSK_REPORT_CLEANUP_WAITING,
                    STATUS_PENDING,
                    *waited_ms,
                    calls,
                    sockets,
                );
            }
        }
    });
    handles::for_each_slot(|slot, i| {
        if let Some(generation) = slot.state().open_generation() {
            if slot.owner() == index {
                if let Ok(a) = slot.state().acquire(generation, handles::Take::Close) {
                    report::report_values(report::SAFEWSK_REPORT_CLEANUP_CLOSING, STATUS_SUCCESS, 0, i, 0);
                    // SAFETY: PASSIVE_LEVEL; the close's acquire just made.
                    let _ = unsafe { io::close_acquired(slot, i, a) };
                    orphans |= slot.state().is_orphan();
                }
            }
        } else if slot.state().is_orphan() && slot.owner() == index {
            if let Some(a) = slot.state().adopt() {
                // SAFETY: as above, for the adopted orphan.
                let _ = unsafe { io::close_acquired(slot, i, a) };
                orphans |= slot.state().is_orphan();
            }
        }
    });
    orphans
}

/// SafeWskCleanup: parameter 1, the IRQL, then: stop connects, wait for the
/// calls inside, close what the driver left open, wait for every socket
/// slot, release and free.
///
/// # Safety
/// The API contract of SafeWskCleanup.
pub unsafe fn cleanup(handle: *mut SAFEWSK_CLIENT) -> Status {
    let (index, generation) = decode(handle).ok_or(STATUS_INVALID_PARAMETER_1)?;
    let slot = CLIENTS.get(index as usize).ok_or(STATUS_INVALID_PARAMETER_1)?;
    if !slot.rundown.is_live(generation) {
        return Err(STATUS_INVALID_PARAMETER_1);
    }
    require_irql(PASSIVE_LEVEL)?;
    slot.rundown.begin_cleanup(generation).map_err(|r| match r {
        Refused::Stale => STATUS_INVALID_PARAMETER_1,
        Refused::Cleaning => STATUS_DELETE_PENDING,
    })?;
    let event = Event::new();
    // SAFETY: on this stack, resident while this thread waits on it in
    // KernelMode; nobody knows it yet.
    unsafe { event.init() };
    slot.waiter.store(ptr::addr_of!(event).cast_mut(), Ordering::Release);
    let mut waited_ms: ULONG = 0;
    let mut closed = false;
    loop {
        // SAFETY: initialized; cleared before WAITING is set, so the wake
        // this round asks for cannot be lost.
        unsafe { event.clear() };
        // First the calls inside (connects finish, asynchronous callbacks
        // return), then, once the client's sockets are closed, every slot.
        match slot.rundown.wait_or_drained(closed) {
            // SAFETY: PASSIVE_LEVEL; WAITING set with the event published.
            Step::Wait => unsafe { sleep(&event, index, &mut waited_ms) },
            Step::Drained if !closed => {
                closed = true;
                // SAFETY: PASSIVE_LEVEL; the calls inside have drained.
                if unsafe { close_left_open(index, &mut waited_ms) } {
                    closed = false;
                    // SAFETY: initialized, never signalled here: a pause.
                    unsafe { event.wait(Some(ORPHAN_RETRY_MS)) };
                }
            }
            Step::Drained => {
                if slot.rundown.try_free(generation) {
                    break;
                }
                // A call that works during cleanup entered: wait again.
                closed = false;
            }
        }
    }
    slot.waiter.store(ptr::null_mut(), Ordering::Release);
    // Nobody is inside, nobody can enter, no socket slot is left. A timer DPC
    // of an asynchronous connect may still be returning from the callback it
    // made; wait until no DPC is executing any more.
    // SAFETY: PASSIVE_LEVEL.
    unsafe { platform::flush_queued_dpcs() };
    let block = slot.block.swap(ptr::null_mut(), Ordering::AcqRel);
    // SAFETY: PASSIVE_LEVEL; try_free succeeded: nothing uses the block.
    unsafe { stop_block(block) };
    slot.rundown.unclaim();
    // SAFETY: PASSIVE_LEVEL; every socket slot of this client is freed.
    unsafe { handles::client_stopped() };
    Ok(STATUS_SUCCESS)
}
