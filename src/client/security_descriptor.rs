//! Cached security descriptors: `SafeWskCacheSecurityDescriptor`,
//! `SafeWskReleaseSecurityDescriptor`, and the check that a connect's
//! SecurityDescriptor is one of them.
//!
//! Microsoft Learn, "PFN_WSK_SOCKET_CONNECT": a non-NULL SecurityDescriptor
//! must be "a cached copy of a security descriptor that was obtained by
//! calling the WskControlClient function with the WSK_CACHE_SD control
//! code", and "the WSK application must not release the cached copy of the
//! security descriptor until after the IRP for the call to WskSocketConnect
//! is completed". "WSK_CACHE_SD" / "WSK_RELEASE_SD": WskControlClient with
//! InputSize = OutputSize = sizeof(PSECURITY_DESCRIPTOR) (release: no
//! output), OutputSizeReturned NULL, and "the Irp parameter must be NULL for
//! this client control operation": both are synchronous calls without an
//! IRP, so `irp::call_and_wait` does not apply (there is nothing to wait
//! for or cancel; a provider that blocked inside the call would block the
//! caller, which no library can bound).
//!
//! The client records each cached copy in a fixed table of [`SLOTS`] entries
//! inside the client block (no allocation): a connect accepts a non-NULL
//! descriptor only if it is in the table, and pins it (a per-entry count of
//! connects in flight) from before the provider is called until the IRP has
//! completed; a release of a pinned entry is refused with
//! STATUS_DEVICE_BUSY. The provider may hand out the same cached pointer
//! twice (WSK caches by content): each WSK_CACHE_SD that succeeded is one
//! entry and needs one release, and a release takes an unpinned entry of
//! that pointer, so a connect always holds a reference the provider still
//! counts.
//!
//! # Invariants
//! `slots` is only touched with `lock` held. A slot's `sd` is FREE, RESERVED
//! (a cache or a release in progress owns the slot; nobody else uses it), or
//! a cached pointer the provider returned and that was not yet released;
//! `pins` is non-zero only on a slot holding a pointer.

use core::cell::UnsafeCell;
use core::mem::size_of;
use core::ptr;

use crate::client::{pin, ClientBlock, Inside, SAFEWSK_CLIENT};
use crate::kernel::nt::*;
use crate::kernel::status::{require_irql, Status};
use crate::kernel::sync::SpinLock;

/// `SECURITY_DESCRIPTOR_REVISION` (winnt.h / ntifs.h).
const SECURITY_DESCRIPTOR_REVISION: u8 = 1;

/// SafeWskCacheSecurityDescriptor (after `*out` was cleared): parameters 1
/// to 3, the IRQL, the revision, entering the client, then [`cache`].
///
/// # Safety
/// The API contract of SafeWskCacheSecurityDescriptor.
pub unsafe fn cache_export(
    client: *mut SAFEWSK_CLIENT,
    sd: PSECURITY_DESCRIPTOR,
    out: *mut PSECURITY_DESCRIPTOR,
) -> Status {
    let pinned = pin(client)?;
    if sd.is_null() || (sd as usize) % 4 != 0 {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    if out.is_null() {
        return Err(STATUS_INVALID_PARAMETER_3);
    }
    require_irql(PASSIVE_LEVEL)?;
    // SAFETY: non-null, aligned, a SECURITY_DESCRIPTOR per the contract,
    // whose first byte is its Revision; PASSIVE_LEVEL (it may be paged).
    if unsafe { ptr::read(sd.cast::<u8>()) } != SECURITY_DESCRIPTOR_REVISION {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    let entered = pinned.ok_or(STATUS_INVALID_LEVEL)?;
    entered.connecting()?;
    // SAFETY: PASSIVE_LEVEL; `sd` readable, `out` writable.
    let status = unsafe { cache(&entered, sd, out) };
    if nt_success(status) {
        Ok(status)
    } else {
        Err(status)
    }
}

/// SafeWskReleaseSecurityDescriptor: parameters 1 and 2, the IRQL, entering
/// the client (as a socket call: it works during cleanup's wait), then
/// [`release`].
///
/// # Safety
/// The API contract of SafeWskReleaseSecurityDescriptor.
pub unsafe fn release_export(client: *mut SAFEWSK_CLIENT, sd: PSECURITY_DESCRIPTOR) -> Status {
    let pinned = pin(client)?;
    if sd.is_null() {
        return Err(STATUS_INVALID_PARAMETER_2);
    }
    require_irql(PASSIVE_LEVEL)?;
    let entered = pinned.ok_or(STATUS_INVALID_LEVEL)?;
    // SAFETY: PASSIVE_LEVEL.
    let status = unsafe { release(&entered, sd) };
    if nt_success(status) {
        Ok(status)
    } else {
        Err(status)
    }
}

/// How many cached security descriptors one client may hold at once
/// (SafeWskCacheSecurityDescriptor): a fixed table in the client block, no
/// allocation. A driver caches one descriptor per sharing policy (usually
/// one or two). One more is refused with STATUS_QUOTA_EXCEEDED.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_MAX_CACHED_SECURITY_DESCRIPTORS: u32 = 16 as u32;
const SLOTS: usize = SAFEWSK_MAX_CACHED_SECURITY_DESCRIPTORS as usize;

const FREE: usize = 0;
const RESERVED: usize = 1;

#[derive(Clone, Copy)]
struct Slot {
    sd: usize,
    pins: u32,
}

/// The client's cached security descriptors.
pub struct CachedSds {
    lock: SpinLock,
    slots: UnsafeCell<[Slot; SLOTS]>,
}

// SAFETY: the slots are only touched under the spin lock.
unsafe impl Sync for CachedSds {}
// SAFETY: as above.
unsafe impl Send for CachedSds {}

impl CachedSds {
    /// No descriptor cached.
    pub const fn new() -> CachedSds {
        CachedSds { lock: SpinLock::new(), slots: UnsafeCell::new([Slot { sd: FREE, pins: 0 }; SLOTS]) }
    }

    /// Runs `f` on the slots with the lock held.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    unsafe fn with<R>(&self, f: impl FnOnce(&mut [Slot; SLOTS]) -> R) -> R {
        // SAFETY: IRQL per the caller; no method calls another under the lock.
        let _guard = unsafe { self.lock.lock() };
        // SAFETY: the lock is held: the only reference (type invariant).
        f(unsafe { &mut *self.slots.get() })
    }

    /// Whether `sd` is a cached descriptor of this client, not released.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn contains(&self, sd: PSECURITY_DESCRIPTOR) -> bool {
        let key = sd as usize;
        // SAFETY: IRQL per the caller.
        key > RESERVED && unsafe { self.with(|s| s.iter().any(|x| x.sd == key)) }
    }

    /// Pins `sd` for a connect: true if it is cached (a release is refused
    /// until [`CachedSds::unpin`]).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn pin(&self, sd: PSECURITY_DESCRIPTOR) -> bool {
        let key = sd as usize;
        if key <= RESERVED {
            return false;
        }
        let pin = |s: &mut [Slot; SLOTS]| match s.iter_mut().find(|x| x.sd == key) {
            Some(slot) => {
                slot.pins = slot.pins.saturating_add(1);
                true
            }
            None => false,
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(pin) }
    }

    /// Drops a pin taken with [`CachedSds::pin`].
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; `pin(sd)` returned true and was not unpinned.
    pub unsafe fn unpin(&self, sd: PSECURITY_DESCRIPTOR) {
        let key = sd as usize;
        let unpin = |s: &mut [Slot; SLOTS]| {
            if let Some(slot) = s.iter_mut().find(|x| x.sd == key && x.pins > 0) {
                slot.pins -= 1;
            }
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(unpin) }
    }

    /// Reserves a free slot for a cache in progress.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    unsafe fn reserve(&self) -> Option<usize> {
        let reserve = |s: &mut [Slot; SLOTS]| {
            let i = s.iter().position(|x| x.sd == FREE)?;
            if let Some(slot) = s.get_mut(i) {
                slot.sd = RESERVED;
            }
            Some(i)
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(reserve) }
    }

    /// Sets a reserved slot to `value` (a cached pointer, or FREE).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL; slot `i` is reserved by the caller.
    unsafe fn set(&self, i: usize, value: usize) {
        let set = |s: &mut [Slot; SLOTS]| {
            if let Some(slot) = s.get_mut(i) {
                *slot = Slot { sd: value, pins: 0 };
            }
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(set) }
    }

    /// Takes an unpinned slot holding `sd` for its release (the slot becomes
    /// RESERVED: no connect can pin it any more). Err(STATUS_DEVICE_BUSY) if
    /// every slot of `sd` is pinned, Err(STATUS_INVALID_PARAMETER_2) if none
    /// holds it.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    unsafe fn take_for_release(&self, sd: PSECURITY_DESCRIPTOR) -> Result<usize, NTSTATUS> {
        let key = sd as usize;
        let take = |s: &mut [Slot; SLOTS]| {
            if !s.iter().any(|x| x.sd == key) {
                return Err(STATUS_INVALID_PARAMETER_2);
            }
            let i = s.iter().position(|x| x.sd == key && x.pins == 0).ok_or(STATUS_DEVICE_BUSY)?;
            if let Some(slot) = s.get_mut(i) {
                slot.sd = RESERVED;
            }
            Ok(i)
        };
        if key <= RESERVED {
            return Err(STATUS_INVALID_PARAMETER_2);
        }
        // SAFETY: IRQL per the caller.
        unsafe { self.with(take) }
    }

    /// Takes any cached slot (cleanup: nobody is inside the client, so none
    /// is pinned). Returns its index and pointer.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    unsafe fn take_any(&self) -> Option<(usize, usize)> {
        let take = |s: &mut [Slot; SLOTS]| {
            let i = s.iter().position(|x| x.sd > RESERVED)?;
            let slot = s.get_mut(i)?;
            let sd = slot.sd;
            slot.sd = RESERVED;
            Some((i, sd))
        };
        // SAFETY: IRQL per the caller.
        unsafe { self.with(take) }
    }
}

/// Calls the provider's WskControlClient with a NULL IRP and no
/// OutputSizeReturned.
///
/// # Safety
/// PASSIVE_LEVEL; the client is entered (its provider NPI is captured);
/// the buffers are valid for their sizes.
unsafe fn control(
    client: &ClientBlock,
    code: ULONG,
    input: &mut PSECURITY_DESCRIPTOR,
    output: Option<&mut PSECURITY_DESCRIPTOR>,
) -> NTSTATUS {
    let provider = client.provider();
    // SAFETY: the dispatch captured at startup is valid until the NPI is
    // released at cleanup, after every caller of this function.
    let Some(f) = (unsafe { (*provider.Dispatch).WskControlClient }) else {
        return STATUS_NOT_SUPPORTED;
    };
    let (out_size, out_ptr) = match output {
        Some(o) => (size_of::<PSECURITY_DESCRIPTOR>(), (o as *mut PSECURITY_DESCRIPTOR).cast::<core::ffi::c_void>()),
        None => (0, ptr::null_mut()),
    };
    // SAFETY: the parameters "WSK_CACHE_SD" / "WSK_RELEASE_SD" specify:
    // a PSECURITY_DESCRIPTOR variable in, one out (cache only), no
    // OutputSizeReturned, and a NULL IRP.
    unsafe {
        f(
            provider.Client,
            code,
            size_of::<PSECURITY_DESCRIPTOR>(),
            (input as *mut PSECURITY_DESCRIPTOR).cast(),
            out_size,
            out_ptr,
            ptr::null_mut(),
            ptr::null_mut(),
        )
    }
}

/// SafeWskCacheSecurityDescriptor after the parameters, IRQL and entering:
/// reserves a slot, asks the provider for a cached copy, records it.
///
/// # Safety
/// PASSIVE_LEVEL; `sd` is a readable SECURITY_DESCRIPTOR; `out` is writable.
pub unsafe fn cache(entered: &Inside, sd: PSECURITY_DESCRIPTOR, out: *mut PSECURITY_DESCRIPTOR) -> NTSTATUS {
    let client = entered.block();
    // SAFETY: PASSIVE_LEVEL.
    let Some(slot) = (unsafe { client.sds().reserve() }) else {
        return STATUS_QUOTA_EXCEEDED;
    };
    let mut input = sd;
    let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL, entered; both variables live across the call.
    let status = unsafe { control(client, WSK_CACHE_SD, &mut input, Some(&mut cached)) };
    let status = if nt_success(status) && (cached as usize) <= RESERVED {
        // A success without a cached copy (or STATUS_PENDING, which a call
        // without an IRP cannot mean) is no success.
        STATUS_UNSUCCESSFUL
    } else {
        status
    };
    if !nt_success(status) {
        // SAFETY: PASSIVE_LEVEL; our reservation.
        unsafe { client.sds().set(slot, FREE) };
        return status;
    }
    // SAFETY: PASSIVE_LEVEL; our reservation.
    unsafe { client.sds().set(slot, cached as usize) };
    // SAFETY: writable per the API contract (checked non-NULL).
    unsafe { *out = cached };
    STATUS_SUCCESS
}

/// SafeWskReleaseSecurityDescriptor after the parameters, IRQL and
/// entering.
///
/// # Safety
/// PASSIVE_LEVEL.
pub unsafe fn release(entered: &Inside, sd: PSECURITY_DESCRIPTOR) -> NTSTATUS {
    let client = entered.block();
    // SAFETY: PASSIVE_LEVEL.
    let slot = match unsafe { client.sds().take_for_release(sd) } {
        Ok(i) => i,
        Err(status) => return status,
    };
    let mut input = sd;
    // SAFETY: PASSIVE_LEVEL, entered; the variable lives across the call.
    let status = unsafe { control(client, WSK_RELEASE_SD, &mut input, None) };
    // SAFETY: PASSIVE_LEVEL; the slot taken above. A release the provider
    // refused leaves the copy cached: record it again.
    unsafe { client.sds().set(slot, if nt_success(status) { FREE } else { sd as usize }) };
    if nt_success(status) {
        STATUS_SUCCESS
    } else {
        status
    }
}

/// Cleanup: releases every descriptor the driver did not release, with a
/// DbgPrint for each. Returns how many there were.
///
/// # Safety
/// PASSIVE_LEVEL; nobody is inside the client and nobody can enter; the
/// provider NPI is still captured.
pub unsafe fn release_forgotten(client: &ClientBlock) -> usize {
    let mut n = 0;
    // SAFETY: PASSIVE_LEVEL.
    while let Some((slot, sd)) = unsafe { client.sds().take_any() } {
        n += 1;
        let mut input = sd as PSECURITY_DESCRIPTOR;
        // SAFETY: PASSIVE_LEVEL; the NPI is captured (per the caller).
        let status = unsafe { control(client, WSK_RELEASE_SD, &mut input, None) };
        crate::kernel::report::report(&crate::kernel::report::SAFEWSK_REPORT {
            Status: status,
            Object: input.cast_const(),
            ..crate::kernel::report::SAFEWSK_REPORT::new(crate::kernel::report::SAFEWSK_REPORT_FORGOTTEN_SD)
        });
        // SAFETY: PASSIVE_LEVEL; the slot taken above. Whatever the provider
        // answered, the client is going away: forget it.
        unsafe { client.sds().set(slot, FREE) };
    }
    n
}

/// A connect's pin on its cached security descriptor (none for NULL):
/// unpinned when dropped, or handed to an asynchronous request.
#[must_use]
pub struct SdPin<'a> {
    sds: &'a CachedSds,
    sd: PSECURITY_DESCRIPTOR,
}

impl<'a> SdPin<'a> {
    /// Pins `sd` (NULL: an empty pin). Err(STATUS_INVALID_PARAMETER_11) if
    /// it is not cached (any more: a release may have won the race since
    /// validation).
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL, also when the pin is dropped.
    pub unsafe fn new(sds: &'a CachedSds, sd: PSECURITY_DESCRIPTOR) -> Result<SdPin<'a>, NTSTATUS> {
        // SAFETY: IRQL per the caller.
        if sd.is_null() || unsafe { sds.pin(sd) } {
            Ok(SdPin { sds, sd })
        } else {
            Err(STATUS_INVALID_PARAMETER_11)
        }
    }

    /// Keeps the pin past this guard: the asynchronous request unpins
    /// `sd` itself with [`CachedSds::unpin`] once its IRP has completed.
    pub fn keep(self) -> PSECURITY_DESCRIPTOR {
        let sd = self.sd;
        core::mem::forget(self);
        sd
    }
}

impl Drop for SdPin<'_> {
    fn drop(&mut self) {
        if !self.sd.is_null() {
            // SAFETY: pinned in `new`; IRQL <= DISPATCH_LEVEL per its contract.
            unsafe { self.sds.unpin(self.sd) };
        }
    }
}
