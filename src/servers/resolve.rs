//! SafeWskResolveName: a name resolution without a connect, which a server
//! needs to bind by name (libwsk's echo server resolves its own address).
//! The resolver of SafeWskConnectByName (`connect::by_name::resolve_with`):
//! the names copied and NUL-terminated, one WskGetAddressInfo under the
//! deadline, the addresses copied out of the provider's list into the
//! caller's bounded array, and the list freed with WskFreeAddressInfo on
//! every path before this returns; nothing keeps a pointer into it.
//!
//! The answer is walked in the resolver's order (Windows' resolver sorts
//! it by the RFC 6724 rules), at most `connect::by_name::MAX_ENTRIES`
//! entries (a list that loops would otherwise never end): AF_INET entries
//! of at least sizeof(SOCKADDR_IN), AF_INET6 entries of at least
//! sizeof(SOCKADDR_IN6), of the family asked for, each address once.
//! "PFN_WSK_GET_ADDRESS_INFO" and "PFN_WSK_FREE_ADDRESS_INFO" (Microsoft
//! Learn): IRQL PASSIVE_LEVEL.

use core::mem::size_of;
use core::ptr;

use super::SAFEWSK_ADDRESS;
use crate::client::{self, SAFEWSK_CLIENT};
use crate::connect::by_name::{check_names, copy_names, resolve_with, MAX_ENTRIES};
use crate::kernel::nt::*;
use crate::kernel::status::{require_irql, Status};

/// The arguments of SafeWskResolveName after the client.
#[derive(Clone, Copy)]
pub struct ResolveArgs {
    pub node: *const UNICODE_STRING,
    pub service: *const UNICODE_STRING,
    pub family: ADDRESS_FAMILY,
    pub addresses: *mut SAFEWSK_ADDRESS,
    pub count: ULONG,
    pub returned: *mut ULONG,
    pub timeout_ms: ULONG,
}

/// Copies the usable addresses of a provider's list into the caller's
/// array, at most `count`, each once; returns how many.
///
/// # Safety
/// `list` is null or a live list from WskGetAddressInfo; `out` is `count`
/// writable SAFEWSK_ADDRESS entries; PASSIVE_LEVEL (the array may be
/// paged).
unsafe fn copy_into(
    list: *const ADDRINFOEXW,
    family: ADDRESS_FAMILY,
    out: *mut SAFEWSK_ADDRESS,
    count: usize,
) -> usize {
    let mut written = 0;
    let mut entry = list;
    let mut seen = 0;
    while !entry.is_null() && seen < MAX_ENTRIES && written < count {
        seen += 1;
        // SAFETY: an entry of the live list (caller).
        let e = unsafe { ptr::read_unaligned(entry) };
        entry = e.ai_next;
        let (entry_family, want) = match u16::try_from(e.ai_family) {
            Ok(AF_INET) => (AF_INET, size_of::<SOCKADDR_IN>()),
            Ok(AF_INET6) => (AF_INET6, size_of::<SOCKADDR_IN6>()),
            _ => continue,
        };
        if e.ai_addr.is_null() || e.ai_addrlen < want || (family != AF_UNSPEC && family != entry_family) {
            continue;
        }
        let mut a = SAFEWSK_ADDRESS::default();
        // SAFETY: `ai_addr` holds `ai_addrlen` >= `want` readable bytes (the
        // provider's list); `a` is 28 >= `want` bytes of ours.
        unsafe { ptr::copy_nonoverlapping(e.ai_addr.cast::<u8>(), a.as_sockaddr().cast::<u8>(), want) };
        if a.family() != entry_family {
            // The address itself says another family than the entry.
            continue;
        }
        let dup = (0..written).any(|i| {
            // SAFETY: `i` < `written` <= `count`: inside the caller's array.
            let e = unsafe { out.add(i) };
            // SAFETY: an entry written below in an earlier round.
            unsafe { ptr::read_unaligned(e) == a }
        });
        if dup {
            continue;
        }
        // SAFETY: `written` < `count`: inside the caller's array.
        let e = unsafe { out.add(written) };
        // SAFETY: as above; writable per the caller.
        unsafe { ptr::write_unaligned(e, a) };
        written += 1;
    }
    written
}

/// SafeWskResolveName: parameters 1 to 7 in order (8 any value), the IRQL,
/// entering the client, then the resolution.
///
/// # Safety
/// The API contract of SafeWskResolveName.
pub unsafe fn resolve_name(client: *mut SAFEWSK_CLIENT, a: ResolveArgs) -> Status {
    let pinned = client::pin(client)?;
    // SAFETY: forwarded API contract (the strings are null or readable).
    unsafe { check_names(a.node, a.service) }?;
    if !matches!(a.family, AF_UNSPEC | AF_INET | AF_INET6) {
        return Err(STATUS_INVALID_PARAMETER_4);
    }
    if a.addresses.is_null() {
        return Err(STATUS_INVALID_PARAMETER_5);
    }
    if a.count == 0 {
        return Err(STATUS_INVALID_PARAMETER_6);
    }
    if a.returned.is_null() {
        return Err(STATUS_INVALID_PARAMETER_7);
    }
    require_irql(PASSIVE_LEVEL)?;
    let inside = pinned.ok_or(STATUS_INVALID_LEVEL)?;
    // The names go into a non-paged block of this call's (not locals: the
    // stack budget, docs/stack.md), freed when it returns.
    // SAFETY: PASSIVE_LEVEL (checked); forwarded API contract.
    let mut scratch = unsafe { copy_names(&inside, a.node, a.service) }?;
    inside.connecting()?;
    let names = scratch.get();
    let count = a.count as usize;
    let copy = |list| {
        // SAFETY: the live list; the caller's array of `count` entries;
        // PASSIVE_LEVEL (checked).
        let n = unsafe { copy_into(list, a.family, a.addresses, count) };
        if n == 0 {
            Err(STATUS_NOT_FOUND)
        } else {
            Ok(n)
        }
    };
    // SAFETY: PASSIVE_LEVEL (checked); copies of the names; a family
    // checked above; `copy` only reads the list.
    let n = unsafe { resolve_with(&inside, &mut names.node, &mut names.service, a.family, a.timeout_ms, copy) }?;
    // SAFETY: checked non-NULL; writable (contract). At most `count`.
    unsafe { *a.returned = n as ULONG };
    Ok(STATUS_SUCCESS)
}
