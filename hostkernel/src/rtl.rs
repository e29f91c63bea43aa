//! DbgPrint's sink and a small registry behind RtlQueryRegistryValues.
//!
//! The registry emulation covers what a driver reads its parameters with:
//! RTL_QUERY_REGISTRY_DIRECT entries of type REG_DWORD, with
//! RTL_QUERY_REGISTRY_REQUIRED and RTL_QUERY_REGISTRY_TYPECHECK, relative to
//! RTL_REGISTRY_ABSOLUTE or RTL_REGISTRY_SERVICES. Values are set by the test
//! or loader with [`registry_set_dword`].

use std::collections::HashMap;
use std::ffi::{c_char, CStr};
use std::sync::Mutex;

use crate::check::violation;
use crate::nt::*;

/// Every line, with whether a stock Windows would show it.
static LOG: Mutex<Vec<(String, bool)>> = Mutex::new(Vec::new());
static REGISTRY: Mutex<Option<HashMap<String, u32>>> = Mutex::new(None);
/// The component filter masks a test has set (Kd_<component>_Mask; 0 on a
/// stock machine) and the system-wide mask (Kd_WIN2000_Mask; 1, the error
/// level, on a stock machine).
static MASKS: Mutex<Option<HashMap<u32, u32>>> = Mutex::new(None);
static SYSTEM_MASK: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);

/// Whether a stock Windows (or the masks a test set) shows a message of
/// `component` at `level`. "Reading and Filtering Debugging Messages"
/// (Microsoft Learn): a Level of 0 to 31 stands for the bit `1 << Level`, a
/// larger Level is itself a mask; the message is sent if that bit field and
/// the component's mask or the system-wide mask have a bit in common. Plain
/// DbgPrint is DbgPrintEx(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL): not shown
/// on a stock machine.
pub fn dbgprint_visible(component: u32, level: u32) -> bool {
    let bits = if level < 32 { 1u32 << level } else { level };
    let component_mask =
        MASKS.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|m| m.get(&component).copied()).unwrap_or(0);
    bits & (component_mask | SYSTEM_MASK.load(std::sync::atomic::Ordering::Relaxed)) != 0
}

/// Sets a component's filter mask, as the Debug Print Filter registry key
/// or `ed Kd_<component>_Mask` would (reset by `Session::begin`).
pub fn set_dbgprint_mask(component: u32, mask: u32) {
    MASKS.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(component, mask);
}

/// Back to a stock machine's filter.
pub(crate) fn reset_dbgprint_masks() {
    *MASKS.lock().unwrap_or_else(|e| e.into_inner()) = None;
    SYSTEM_MASK.store(1, std::sync::atomic::Ordering::Relaxed);
}

#[no_mangle]
pub unsafe extern "C" fn hostkernel_dbgprint_sink(component: u32, level: u32, line: *const c_char) {
    // SAFETY: DbgPrint/DbgPrintEx pass a NUL-terminated buffer.
    let s = unsafe { CStr::from_ptr(line) }.to_string_lossy().into_owned();
    let visible = dbgprint_visible(component, level);
    if visible {
        eprint!("[DbgPrint] {s}");
    } else {
        eprint!("[DbgPrint, filtered out on a stock machine] {s}");
    }
    LOG.lock().unwrap_or_else(|e| e.into_inner()).push((s, visible));
}

/// Takes the debugger lines printed so far that a stock Windows shows
/// (DbgPrintEx at a level its filter passes); the others are dropped.
pub fn take_dbgprint_log() -> Vec<String> {
    take_all_dbgprint_log().into_iter().filter(|(_, visible)| *visible).map(|(s, _)| s).collect()
}

/// Takes every debugger line printed so far, with whether a stock Windows
/// shows it (the C sample's own DbgPrint lines are not shown there).
pub fn take_all_dbgprint_log() -> Vec<(String, bool)> {
    std::mem::take(&mut *LOG.lock().unwrap_or_else(|e| e.into_inner()))
}

/// Waits until a DbgPrint line printed so far (and not yet taken) contains
/// `needle`; false if none does within `within`. Takes nothing.
pub fn wait_for_dbgprint(needle: &str, within: std::time::Duration) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if LOG.lock().unwrap_or_else(|e| e.into_inner()).iter().any(|(l, _)| l.contains(needle)) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
}

const SERVICES: &str = r"\registry\machine\system\currentcontrolset\services\";

/// Sets `key\name` (an absolute key such as
/// `\Registry\Machine\System\CurrentControlSet\Services\X\Parameters`) to a
/// REG_DWORD.
pub fn registry_set_dword(key: &str, name: &str, value: u32) {
    let full = format!("{}\\{}", key.trim_end_matches('\\'), name).to_lowercase();
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(full, value);
}

/// Removes every value.
pub fn registry_clear() {
    *REGISTRY.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// The absolute path of a service's key.
pub fn services_key(service: &str) -> String {
    format!("{SERVICES}{service}")
}

unsafe fn wstr(p: *const u16) -> String {
    let mut v = Vec::new();
    let mut i = 0;
    loop {
        // SAFETY: a NUL-terminated UTF-16 string from the caller, and `i`
        // never passes the terminator (the loop stops at it), so p + i is in it.
        let at = unsafe { p.add(i) };
        // SAFETY: `at` is an element of that string, up to the terminator.
        let c = unsafe { *at };
        if c == 0 {
            break;
        }
        v.push(c);
        i += 1;
    }
    String::from_utf16_lossy(&v)
}

const RTL_REGISTRY_ABSOLUTE: u32 = 0;
const RTL_REGISTRY_SERVICES: u32 = 1;
const RTL_QUERY_REGISTRY_REQUIRED: u32 = 0x4;
const RTL_QUERY_REGISTRY_DIRECT: u32 = 0x20;
const RTL_QUERY_REGISTRY_TYPECHECK: u32 = 0x100;
const REG_DWORD: u32 = 4;
const STATUS_OBJECT_TYPE_MISMATCH: NTSTATUS = 0xC000_0024_u32 as i32;
/// sizeof(RTL_QUERY_REGISTRY_TABLE) on x64.
const ENTRY: usize = 56;

#[no_mangle]
pub unsafe extern "system" fn RtlQueryRegistryValues(
    relative_to: u32,
    path: *const u16,
    table: PVOID,
    _context: PVOID,
    _environment: PVOID,
) -> NTSTATUS {
    if path.is_null() || table.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: NUL-terminated path from the caller.
    let path = unsafe { wstr(path) };
    let key = match relative_to {
        RTL_REGISTRY_ABSOLUTE => path,
        RTL_REGISTRY_SERVICES => format!("{SERVICES}{path}"),
        other => {
            violation(format!("RtlQueryRegistryValues: RelativeTo {other} is not emulated"));
            return STATUS_INVALID_PARAMETER;
        }
    };
    let reg = REGISTRY.lock().unwrap_or_else(|e| e.into_inner()).clone().unwrap_or_default();
    let mut entry = table;
    loop {
        // `entry` is an RTL_QUERY_REGISTRY_TABLE entry of the caller's table,
        // which is terminated by an entry with NULL QueryRoutine and NULL
        // Name; the loop stops at that terminator.
        // SAFETY: QueryRoutine is at 0 of the entry.
        let routine = unsafe { rd::<usize>(entry, 0) };
        // SAFETY: as above; Flags is at 8.
        let flags = unsafe { rd::<u32>(entry, 8) };
        // SAFETY: as above; Name is at 16.
        let name = unsafe { rd::<*const u16>(entry, 16) };
        // SAFETY: as above; EntryContext is at 24.
        let target = unsafe { rd::<*mut u32>(entry, 24) };
        // SAFETY: as above; DefaultType is at 32.
        let default_type = unsafe { rd::<u32>(entry, 32) };
        // SAFETY: as above; DefaultData is at 40.
        let default_data = unsafe { rd::<*const u32>(entry, 40) };
        if routine == 0 && name.is_null() {
            return STATUS_SUCCESS;
        }
        if routine != 0 || flags & RTL_QUERY_REGISTRY_DIRECT == 0 || name.is_null() || target.is_null() {
            violation("RtlQueryRegistryValues: only DIRECT entries with a name and EntryContext are emulated");
            return STATUS_INVALID_PARAMETER;
        }
        if flags & RTL_QUERY_REGISTRY_TYPECHECK != 0 && default_type >> 24 != REG_DWORD {
            return STATUS_OBJECT_TYPE_MISMATCH;
        }
        // SAFETY: Name is non-null (checked) and NUL-terminated.
        let value_name = unsafe { wstr(name) };
        let full = format!("{}\\{}", key.trim_end_matches('\\'), value_name).to_lowercase();
        match reg.get(&full) {
            // SAFETY: a DIRECT REG_DWORD entry's EntryContext is a ULONG.
            Some(v) => unsafe { target.write_unaligned(*v) },
            None if flags & RTL_QUERY_REGISTRY_REQUIRED != 0 => return STATUS_OBJECT_NAME_NOT_FOUND,
            None => {
                if default_type & 0xFF_FFFF == REG_DWORD && !default_data.is_null() {
                    // SAFETY: a non-null REG_DWORD default points to a ULONG.
                    let default = unsafe { default_data.read_unaligned() };
                    // SAFETY: a DIRECT REG_DWORD entry's EntryContext (non-null,
                    // checked) is a writable ULONG.
                    unsafe { target.write_unaligned(default) };
                }
            }
        }
        // SAFETY: the table continues until its terminator.
        entry = unsafe { entry.cast::<u8>().add(ENTRY).cast() };
    }
}
