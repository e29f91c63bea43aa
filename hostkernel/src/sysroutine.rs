//! MmGetSystemRoutineAddress over the host kernel's own exports, with a
//! switch that hides ExAllocatePool2 as a kernel older than Windows 10
//! version 2004 (or Wine 8) does.
//!
//! Only the routines a driver on this host may look up are listed; any other
//! name returns NULL, as Windows does for a name it cannot resolve
//! (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-mmgetsystemroutineaddress).

use std::sync::atomic::{AtomicBool, Ordering};

use crate::check::violation;
use crate::irql;
use crate::nt::*;

static POOL2_HIDDEN: AtomicBool = AtomicBool::new(false);

/// Makes MmGetSystemRoutineAddress(L"ExAllocatePool2") return NULL (`true`)
/// or the routine (`false`, the default; every [`crate::Session`] starts
/// with it).
pub fn hide_allocate_pool2(hidden: bool) {
    POOL2_HIDDEN.store(hidden, Ordering::SeqCst);
}

/// Counts the lookups, so a test can tell that the library asked.
static LOOKUPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times MmGetSystemRoutineAddress was called (since process start).
pub fn system_routine_lookups() -> u64 {
    LOOKUPS.load(Ordering::SeqCst)
}

/// UNICODE_STRING { USHORT Length; USHORT MaximumLength; PWSTR Buffer; }.
#[no_mangle]
pub unsafe extern "system" fn MmGetSystemRoutineAddress(name: PVOID) -> PVOID {
    LOOKUPS.fetch_add(1, Ordering::SeqCst);
    if irql::current() != PASSIVE_LEVEL {
        violation("MmGetSystemRoutineAddress above PASSIVE_LEVEL");
    }
    if name.is_null() {
        violation("MmGetSystemRoutineAddress(NULL)");
        return std::ptr::null_mut();
    }
    // SAFETY: the caller passes a UNICODE_STRING (non-null, checked);
    // Length (in bytes) is at 0.
    let len = unsafe { rd::<u16>(name, 0) } as usize;
    // SAFETY: as above; Buffer is at 8.
    let buffer = unsafe { rd::<*const u16>(name, 8) };
    if len & 1 != 0 || (len > 0 && buffer.is_null()) {
        violation("MmGetSystemRoutineAddress: malformed UNICODE_STRING");
        return std::ptr::null_mut();
    }
    let wide = if len == 0 {
        &[][..]
    } else {
        // SAFETY: Buffer holds Length bytes of UTF-16 per the UNICODE_STRING contract.
        unsafe { std::slice::from_raw_parts(buffer, len / 2) }
    };
    let routine = String::from_utf16_lossy(wide);
    match routine.as_str() {
        "ExAllocatePool2" if !POOL2_HIDDEN.load(Ordering::SeqCst) => crate::io::ExAllocatePool2 as PVOID,
        "ExAllocatePoolWithTag" => crate::io::ExAllocatePoolWithTag as PVOID,
        "ExFreePoolWithTag" => crate::io::ExFreePoolWithTag as PVOID,
        _ => std::ptr::null_mut(),
    }
}

pub(crate) fn reset() {
    hide_allocate_pool2(false);
}
