//! The WSK client: registration, the captured provider NPI, the device
//! object that keeps the driver loaded while completion routines run, the
//! open sockets, and the rundown that lets cleanup wait for calls in
//! progress.
//!
//! A [`SAFEWSK_CLIENT`] is one tagged non-paged pool block. It holds the
//! WSK_REGISTRATION, WSK_CLIENT_NPI and WSK_CLIENT_DISPATCH that WskRegister
//! requires to stay valid until WskDeregister, and the WSK_PROVIDER_NPI
//! captured once at startup and released at cleanup ("for each call to
//! WskCaptureProviderNPI that returns a success code, there must be exactly
//! one corresponding call to WskReleaseProviderNPI").
//!
//! # Invariants
//! - `signature == SIGNATURE` exactly while the block is a live client (set
//!   last by `start`, cleared first by `stop` once nothing can enter);
//! - `rundown` counts calls and asynchronous requests inside the library (a
//!   request counts until its callback has returned); `sockets` holds every
//!   socket returned and not yet closed;
//! - `rundown_event` is initialized once, in `start`, and only cleanup waits
//!   on it (a second cleanup is refused before it touches the event);
//! - the block is freed only after `Rundown::try_free` succeeded with no
//!   socket open: nobody is inside, nobody can enter, and no call is still on
//!   its way to signal the event.

#![allow(non_camel_case_types)]

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicU32, Ordering};

use crate::nt::*;
use crate::platform;
use crate::rundown::{Rundown, Step};
use crate::security_descriptor::{self, CachedSds};
use crate::sockets::Sockets;
use crate::status::{require_irql, Status};
use crate::sync::Event;
use crate::transports::Transports;

const SIGNATURE: u32 = u32::from_le_bytes(*b"SWcl");

/// An opaque safewsk client, created by `SafeWskStartup` and destroyed by
/// `SafeWskCleanup`.
///
/// `repr(C)` with the signature first: telling a caller's pointer that is
/// not a client apart reads only its first four bytes, whatever the size of
/// the block behind it (the fuzzer found Rust's own field order putting the
/// signature past the end of a 512-byte block that was not a client).
#[repr(C)]
pub struct SAFEWSK_CLIENT {
    signature: AtomicU32,
    rundown: Rundown,
    device: PDEVICE_OBJECT,
    allocator: platform::PoolAllocator,
    sockets: Sockets,
    registration: WSK_REGISTRATION,
    client_npi: WSK_CLIENT_NPI,
    client_dispatch: WSK_CLIENT_DISPATCH,
    provider: WSK_PROVIDER_NPI,
    rundown_event: Event,
    /// Security descriptors cached with SafeWskCacheSecurityDescriptor and
    /// not yet released.
    sds: CachedSds,
    /// The provider's transport list, queried at startup (read-only after).
    transports: Transports,
}

/// A call inside the client; leaving it (drop) lets cleanup proceed.
#[must_use]
pub struct Entered<'a> {
    client: &'a SAFEWSK_CLIENT,
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.client.leave();
    }
}

impl<'a> Entered<'a> {
    /// The captured provider NPI.
    pub fn provider(&self) -> &'a WSK_PROVIDER_NPI {
        &self.client.provider
    }

    /// The client.
    pub fn client(&self) -> &'a SAFEWSK_CLIENT {
        self.client
    }

    /// Keeps the call's place in the rundown after this guard is gone: an
    /// asynchronous request leaves with [`SAFEWSK_CLIENT::leave`] after its
    /// callback.
    pub fn keep(self) {
        core::mem::forget(self);
    }
}

impl SAFEWSK_CLIENT {
    /// Borrows a live client from a caller's pointer, or None if the pointer is
    /// null or does not carry a live client's signature.
    ///
    /// # Safety
    /// `p` is null or points to memory readable for a SAFEWSK_CLIENT: a
    /// pointer `SafeWskStartup` returned and `SafeWskCleanup` has not freed.
    pub unsafe fn from_ptr<'a>(p: *mut SAFEWSK_CLIENT) -> Option<&'a SAFEWSK_CLIENT> {
        if p.is_null() || (p as usize) % core::mem::align_of::<SAFEWSK_CLIENT>() != 0 {
            return None;
        }
        // SAFETY: non-null and aligned; readable per the caller's contract.
        let client = unsafe { &*p };
        if client.signature.load(Ordering::Acquire) != SIGNATURE {
            return None;
        }
        Some(client)
    }

    /// Enters a call that may create a socket (a connect);
    /// Err(STATUS_DELETE_PENDING) once cleanup has begun.
    pub fn enter(&self) -> Result<Entered<'_>, NTSTATUS> {
        if self.rundown.try_enter() {
            Ok(Entered { client: self })
        } else {
            Err(STATUS_DELETE_PENDING)
        }
    }

    /// Enters a call on a socket (send, receive, disconnect, close). These
    /// keep working while cleanup waits: closing the sockets is how a driver
    /// lets cleanup succeed. Err(STATUS_DELETE_PENDING) only while the client
    /// is being freed, which no caller with an open socket can see.
    pub fn enter_socket_call(&self) -> Result<Entered<'_>, NTSTATUS> {
        if self.rundown.try_enter_socket_call() {
            Ok(Entered { client: self })
        } else {
            Err(STATUS_DELETE_PENDING)
        }
    }

    /// Leaves a call or a finished asynchronous request; the last one out
    /// while cleanup sleeps wakes it. Callable at IRQL <= DISPATCH_LEVEL.
    pub fn leave(&self) {
        if self.rundown.leave() {
            // SAFETY: initialized in `start`; cleanup sleeps until this
            // signal and frees the block only after it, so the event is live,
            // and signalling is the last access to the client here.
            unsafe { self.rundown_event.set() };
        }
    }

    /// The device object whose reference keeps the driver loaded while
    /// completion routines run.
    pub fn device(&self) -> PDEVICE_OBJECT {
        self.device
    }

    /// How this kernel allocates pool (resolved at startup).
    pub fn allocator(&self) -> platform::PoolAllocator {
        self.allocator
    }

    /// The open sockets.
    pub fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    /// The cached security descriptors.
    pub fn sds(&self) -> &CachedSds {
        &self.sds
    }

    /// The provider's transport list (or nothing known).
    pub fn transports(&self) -> &Transports {
        &self.transports
    }

    /// The captured provider NPI (valid until cleanup releases it).
    pub fn provider_npi(&self) -> &WSK_PROVIDER_NPI {
        &self.provider
    }

    /// Registers with WSK and captures the provider NPI, waiting up to
    /// `wait_ms` for it (WSK_NO_WAIT and WSK_INFINITE_WAIT as WSK defines).
    ///
    /// # Safety
    /// PASSIVE_LEVEL; `device` is a live DEVICE_OBJECT of the calling
    /// driver that outlives the client.
    pub unsafe fn start(device: PDEVICE_OBJECT, wait_ms: ULONG) -> Result<*mut SAFEWSK_CLIENT, NTSTATUS> {
        // SAFETY: PASSIVE_LEVEL per the caller.
        let allocator = unsafe { platform::PoolAllocator::resolve() };
        // SAFETY: PASSIVE_LEVEL per the caller.
        let p = unsafe { allocator.alloc(size_of::<SAFEWSK_CLIENT>()) }.cast::<SAFEWSK_CLIENT>();
        if p.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: `p` is a fresh, suitably sized and aligned (pool blocks are
        // 16-byte aligned) block that nothing else references yet.
        unsafe {
            ptr::write(
                p,
                SAFEWSK_CLIENT {
                    signature: AtomicU32::new(0),
                    rundown: Rundown::new(),
                    device,
                    allocator,
                    sockets: Sockets::new(),
                    registration: WSK_REGISTRATION::zeroed(),
                    client_npi: WSK_CLIENT_NPI { ClientContext: ptr::null_mut(), Dispatch: ptr::null() },
                    client_dispatch: WSK_CLIENT_DISPATCH {
                        Version: make_wsk_version(1, 0),
                        Reserved: 0,
                        WskClientEvent: ptr::null_mut(),
                    },
                    provider: WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() },
                    rundown_event: Event::new(),
                    sds: CachedSds::new(),
                    transports: Transports::unknown(),
                },
            )
        };
        // SAFETY: `p` was just initialized above and nothing else references
        // it until it is published (returned).
        let c = unsafe { &mut *p };
        // SAFETY: the block is resident pool that stays at this address until
        // it is freed after the last wait on the event; nobody can wait on it
        // or signal it before the client is published.
        unsafe { c.rundown_event.init() };
        // The registration structures stay at this address until
        // deregistration because the block is only freed after WskDeregister.
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
            // SAFETY: registered, nothing captured: deregistering returns at
            // once (no socket can exist yet).
            unsafe { platform::wsk_deregister(&mut c.registration) };
            // SAFETY: deregistered: nothing references the block any more.
            unsafe { platform::pool_free(p.cast()) };
            return Err(status);
        }
        // The transport list, once, before the client is published.
        let provider = WSK_PROVIDER_NPI { Client: c.provider.Client, Dispatch: c.provider.Dispatch };
        // SAFETY: PASSIVE_LEVEL; the NPI was captured above.
        unsafe { c.transports.query(&provider) };
        // INVARIANT: the client is complete; from here on it is live.
        c.signature.store(SIGNATURE, Ordering::Release);
        Ok(p)
    }

    /// Stops connects, waits until every call in progress and every
    /// asynchronous request has finished (its callback returned), reporting
    /// the wait in the debugger output while it lasts; then, if a socket is
    /// still open, reopens the client and returns
    /// Err(STATUS_INVALID_DEVICE_STATE); otherwise waits for queued DPCs,
    /// releases the provider, deregisters and frees the client. A cleanup
    /// already in progress makes this one return Err(STATUS_DELETE_PENDING)
    /// without touching anything.
    ///
    /// # Safety
    /// PASSIVE_LEVEL; `p` is a live client (checked with [`Self::from_ptr`]).
    /// On Ok the pointer is dangling.
    pub unsafe fn stop(p: *mut SAFEWSK_CLIENT) -> Result<(), NTSTATUS> {
        // SAFETY: `p` is live per the caller.
        let client = unsafe { &*p };
        client.rundown.begin_cleanup().map_err(|()| STATUS_DELETE_PENDING)?;
        let mut waited_ms: ULONG = 0;
        loop {
            // SAFETY: initialized in `start`; only this cleanup waits on it.
            // Cleared before WAITING is set, so the signal this round asks for
            // cannot be lost, and no earlier signal is still pending (each one
            // was waited for).
            unsafe { client.rundown_event.clear() };
            match client.rundown.wait_or_drained() {
                Step::Wait => loop {
                    // SAFETY: initialized; PASSIVE_LEVEL per the caller.
                    let st = unsafe { client.rundown_event.wait(Some(platform::REPORT_INTERVAL_MS)) };
                    if st != STATUS_TIMEOUT {
                        break;
                    }
                    waited_ms = waited_ms.saturating_add(platform::REPORT_INTERVAL_MS);
                    platform::report_cleanup_waiting(waited_ms, client.rundown.inside());
                },
                Step::Drained => {
                    // SAFETY: PASSIVE_LEVEL per the caller.
                    if unsafe { client.sockets.open() } != 0 {
                        client.rundown.reopen();
                        return Err(STATUS_INVALID_DEVICE_STATE);
                    }
                    if client.rundown.try_free() {
                        break;
                    }
                }
            }
        }
        // Nobody is inside and nobody can enter. A timer DPC of an
        // asynchronous connect may still be returning from the callback it
        // made; wait until no DPC is executing any more.
        // SAFETY: PASSIVE_LEVEL per the caller.
        unsafe { platform::flush_queued_dpcs() };
        // No socket is open and nobody can connect: free the cached records.
        // SAFETY: PASSIVE_LEVEL per the caller.
        unsafe { client.sockets.drain_cache() };
        // Cached security descriptors the driver did not release: release
        // them while the provider NPI is still captured (reported each).
        // SAFETY: PASSIVE_LEVEL; nobody is inside and nobody can enter.
        unsafe { security_descriptor::release_forgotten(client) };
        // INVARIANT: cleared before the block goes away.
        client.signature.store(0, Ordering::Release);
        // SAFETY: address computation inside the live block.
        let registration = unsafe { ptr::addr_of_mut!((*p).registration) };
        // SAFETY: this thread is the only user of the block; the capture made
        // at start is released exactly once.
        unsafe { platform::wsk_release(registration) };
        // SAFETY: PASSIVE_LEVEL, the capture released and no socket open
        // (checked above), so WskDeregister does not block.
        unsafe { platform::wsk_deregister(registration) };
        // SAFETY: deregistered: nothing references the block (which held the
        // registration) any more.
        unsafe { platform::pool_free(p.cast()) };
        Ok(())
    }
}

/// SafeWskStartup (after `*client_out` was cleared): parameters 1 and 3, the
/// IRQL, then registration and capture.
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
    // SAFETY: PASSIVE_LEVEL checked; the device object is live.
    let p = unsafe { SAFEWSK_CLIENT::start(device, wait_ms) }?;
    // SAFETY: non-null and writable per the API contract.
    unsafe { *client_out = p };
    Ok(STATUS_SUCCESS)
}

/// SafeWskCleanup: parameter 1, the IRQL, then [`SAFEWSK_CLIENT::stop`].
///
/// # Safety
/// The API contract of SafeWskCleanup.
pub unsafe fn cleanup(client: *mut SAFEWSK_CLIENT) -> Status {
    // SAFETY: null or a pointer from SafeWskStartup.
    if unsafe { SAFEWSK_CLIENT::from_ptr(client) }.is_none() {
        return Err(STATUS_INVALID_PARAMETER_1);
    }
    require_irql(PASSIVE_LEVEL)?;
    // SAFETY: a live client, PASSIVE_LEVEL.
    unsafe { SAFEWSK_CLIENT::stop(client) }?;
    Ok(STATUS_SUCCESS)
}
