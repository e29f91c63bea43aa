//! The WSK client: registration, the captured provider NPI, and the accounting
//! that lets cleanup refuse to leave sockets or calls behind.
//!
//! A [`SAFEWSK_CLIENT`] is one tagged non-paged pool block. It holds the
//! WSK_REGISTRATION, WSK_CLIENT_NPI and WSK_CLIENT_DISPATCH that WskRegister
//! requires to stay valid until WskDeregister, and the WSK_PROVIDER_NPI
//! captured once at startup and released at cleanup ("for each call to
//! WskCaptureProviderNPI that returns a success code, there must be exactly
//! one corresponding call to WskReleaseProviderNPI").
//!
//! Invariants:
//! - `signature == SIGNATURE` exactly while the block is a live client;
//! - `rundown` counts calls and asynchronous requests inside the library that
//!   use the provider (a request counts until its callback has returned);
//!   `open` counts sockets returned by connect and not yet closed;
//! - once cleanup has begun no call enters; cleanup then waits on
//!   `rundown_event` until the count is 0, so after that nothing can use the
//!   provider any more and releasing it is safe. The count and the cleaning
//!   bit share one atomic word (`Rundown`, model-checked with loom), so the
//!   last call out signals only when cleanup is waiting, and touches the
//!   client no more after a decrement that lets cleanup free it.

#![allow(non_camel_case_types)]

use core::mem::size_of;
use core::ptr;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::request_state::Rundown;

use crate::nt::*;
use crate::platform;

const SIGNATURE: u32 = u32::from_le_bytes(*b"SWcl");

/// An opaque safewsk client, created by `SafeWskStartup` and destroyed by
/// `SafeWskCleanup`.
pub struct SAFEWSK_CLIENT {
    signature: AtomicU32,
    rundown: Rundown,
    open: AtomicUsize,
    registration: WSK_REGISTRATION,
    client_npi: WSK_CLIENT_NPI,
    client_dispatch: WSK_CLIENT_DISPATCH,
    provider: WSK_PROVIDER_NPI,
    rundown_event: KEVENT,
}

/// A call inside the client; leaving it (drop) lets cleanup proceed.
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

    /// Records a socket the provider returned.
    pub fn socket_opened(&self) {
        self.client.open.fetch_add(1, Ordering::AcqRel);
    }

    /// Records that a socket is being closed; false if this client has no
    /// open socket (a double close or a foreign socket).
    pub fn socket_closing(&self) -> bool {
        self.client.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1)).is_ok()
    }
}

impl SAFEWSK_CLIENT {
    /// Records a socket delivered by an asynchronous request.
    pub fn socket_opened(&self) {
        self.open.fetch_add(1, Ordering::AcqRel);
    }

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

    /// Enters a call; Err(STATUS_DELETE_PENDING) once cleanup has begun.
    pub fn enter(&self) -> Result<Entered<'_>, NTSTATUS> {
        if self.rundown.try_enter() {
            Ok(Entered { client: self })
        } else {
            Err(STATUS_DELETE_PENDING)
        }
    }

    /// Leaves a call or a finished asynchronous request; the last one out
    /// during cleanup wakes it. Callable at IRQL <= DISPATCH_LEVEL.
    pub fn leave(&self) {
        if self.rundown.leave() {
            // SAFETY: cleanup initialized the event before it began, and it
            // waits for this signal before it frees the block; KeSetEvent is
            // the last access to the client here.
            unsafe { platform::set_event(ptr::addr_of!(self.rundown_event) as *mut KEVENT) };
        }
    }

    /// Registers with WSK and captures the provider NPI, waiting up to
    /// `wait_ms` for it (WSK_NO_WAIT and WSK_INFINITE_WAIT as WSK defines).
    ///
    /// # Safety
    /// PASSIVE_LEVEL.
    pub unsafe fn start(wait_ms: ULONG) -> Result<*mut SAFEWSK_CLIENT, NTSTATUS> {
        // SAFETY: PASSIVE_LEVEL per the caller.
        let p = unsafe { platform::pool_alloc(size_of::<SAFEWSK_CLIENT>()) }.cast::<SAFEWSK_CLIENT>();
        if p.is_null() {
            return Err(STATUS_INSUFFICIENT_RESOURCES);
        }
        // SAFETY: `p` is a fresh, suitably sized and aligned (pool blocks are
        // 16-byte aligned) block that nothing else references yet. The
        // registration structures stay at this address until deregistration
        // because the block is only freed after WskDeregister.
        unsafe {
            ptr::write(
                p,
                SAFEWSK_CLIENT {
                    signature: AtomicU32::new(0),
                    rundown: Rundown::new(),
                    open: AtomicUsize::new(0),
                    registration: WSK_REGISTRATION::zeroed(),
                    client_npi: WSK_CLIENT_NPI { ClientContext: ptr::null_mut(), Dispatch: ptr::null() },
                    client_dispatch: WSK_CLIENT_DISPATCH {
                        Version: make_wsk_version(1, 0),
                        Reserved: 0,
                        WskClientEvent: ptr::null_mut(),
                    },
                    provider: WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() },
                    rundown_event: KEVENT::zeroed(),
                },
            );
            (*p).client_npi.ClientContext = p.cast();
            (*p).client_npi.Dispatch = ptr::addr_of!((*p).client_dispatch);

            let status =
                platform::wsk_register(ptr::addr_of_mut!((*p).client_npi), ptr::addr_of_mut!((*p).registration));
            if !nt_success(status) {
                platform::pool_free(p.cast());
                return Err(status);
            }
            let status =
                platform::wsk_capture(ptr::addr_of_mut!((*p).registration), wait_ms, ptr::addr_of_mut!((*p).provider));
            if !nt_success(status) {
                platform::wsk_deregister(ptr::addr_of_mut!((*p).registration));
                platform::pool_free(p.cast());
                return Err(status);
            }
            (*p).signature.store(SIGNATURE, Ordering::Release);
        }
        Ok(p)
    }

    /// Stops new calls, waits until every call in progress and every
    /// asynchronous request has finished (its callback returned), then
    /// releases the provider, deregisters and frees the client — unless a
    /// socket is still open, in which case the client is reopened and
    /// Err(STATUS_INVALID_DEVICE_STATE) is returned.
    ///
    /// # Safety
    /// PASSIVE_LEVEL; `p` is a live client (checked with [`Self::from_ptr`]).
    /// On Ok the pointer is dangling.
    pub unsafe fn stop(p: *mut SAFEWSK_CLIENT) -> Result<(), NTSTATUS> {
        // SAFETY: `p` is live per the caller. Nobody can be signalling the
        // event before cleanup begins (a leave signals only while cleaning),
        // so (re)initializing it first is sound.
        let client = unsafe {
            platform::init_event(ptr::addr_of_mut!((*p).rundown_event));
            &*p
        };
        match client.rundown.begin_cleanup() {
            Err(()) => return Err(STATUS_DELETE_PENDING),
            Ok(true) => {
                // SAFETY: initialized above; PASSIVE_LEVEL per the caller.
                unsafe { platform::wait_event(ptr::addr_of!(client.rundown_event) as *mut KEVENT, None) };
            }
            Ok(false) => {}
        }
        if client.open.load(Ordering::Acquire) != 0 {
            client.rundown.reopen();
            return Err(STATUS_INVALID_DEVICE_STATE);
        }
        // SAFETY: no call is inside and none can enter (cleanup has begun), so
        // this thread is the only user of the block. The capture made at start
        // is released exactly once, then the registration is removed, then the
        // block (which held the registration) is freed.
        unsafe {
            (*p).signature.store(0, Ordering::Release);
            platform::wsk_release(ptr::addr_of_mut!((*p).registration));
            platform::wsk_deregister(ptr::addr_of_mut!((*p).registration));
            platform::pool_free(p.cast());
        }
        Ok(())
    }
}
