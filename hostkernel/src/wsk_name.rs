//! Name resolution: WskGetAddressInfo and WskFreeAddressInfo on Linux
//! getaddrinfo, and KeQueryPerformanceCounter (the clock a deadline across
//! several steps needs).
//!
//! Behaviour follows Microsoft Learn, "PFN_WSK_GET_ADDRESS_INFO" and
//! "PFN_WSK_FREE_ADDRESS_INFO" (wsk.h): both are PASSIVE_LEVEL only (a call
//! above is a violation); the result is "a linked list of one or more
//! ADDRINFOEXW structures" that "the caller must call WskFreeAddressInfo" to
//! free. Here each list is a real ADDRINFOEXW chain in host memory, tracked:
//! a list not freed by the end of a test is a leak (counted as one pool
//! block, so `Session::finish` reports it), freeing a list twice or a
//! pointer that is no list is a violation, and freed entries are poisoned
//! (a caller that keeps reading `ai_addr` after the free, as KSOCKET does,
//! reads 0xDD bytes). The strings are read by their Length, not up to a
//! terminator (a UNICODE_STRING need not have one).
//!
//! An unknown name completes with STATUS_NOT_FOUND, as Windows 8 and later
//! do (Wine's dlls/ntoskrnl.exe/tests/driver_netio.c, run on Windows).
//! Names under `.invalid` are unknown without asking the system resolver
//! (RFC 6761 §6.4), so that tests do not depend on DNS.
//!
//! Test controls: the resolution can fail with a status, pend until
//! cancelled, complete only after a delay (cancellation ends the wait unless
//! the provider ignores cancellation, `set_provider_ignores_cancel`), or
//! answer with given addresses instead of asking getaddrinfo.

use std::collections::HashSet;
use std::ffi::CString;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::check::{add_live, quarantine, violation, Kind};
use crate::io::{complete, take};
use crate::irql;
use crate::nt::*;
use crate::wsk::{from_linux, refuse_without_completing, regs, run};

const STATUS_NOT_FOUND: NTSTATUS = 0xC000_0225_u32 as NTSTATUS;

// ---------------------------------------------------------------------------
// KeQueryPerformanceCounter
// ---------------------------------------------------------------------------

static BOOT: OnceLock<Instant> = OnceLock::new();

/// KeQueryPerformanceCounter: a 10 MHz count since "boot" (the first call),
/// from a monotonic clock; the frequency through the optional pointer. Any
/// IRQL.
#[no_mangle]
pub unsafe extern "system" fn KeQueryPerformanceCounter(frequency: *mut i64) -> i64 {
    if !frequency.is_null() {
        // SAFETY: the caller's writable LARGE_INTEGER.
        unsafe { frequency.write_unaligned(10_000_000) };
    }
    let boot = *BOOT.get_or_init(Instant::now);
    (boot.elapsed().as_nanos() / 100) as i64
}

// ---------------------------------------------------------------------------
// Test controls
// ---------------------------------------------------------------------------

struct Config {
    error: Option<NTSTATUS>,
    hangs: bool,
    delay: Option<Duration>,
    answer: Option<Vec<IpAddr>>,
}

static CONFIG: Mutex<Config> = Mutex::new(Config { error: None, hangs: false, delay: None, answer: None });

fn config<R>(f: impl FnOnce(&mut Config) -> R) -> R {
    f(&mut CONFIG.lock().unwrap_or_else(|e| e.into_inner()))
}

static CALLS: AtomicU64 = AtomicU64::new(0);

/// Back to real resolution (called at `Session::begin`).
pub(crate) fn reset() {
    config(|c| {
        c.error = None;
        c.hangs = false;
        c.delay = None;
        c.answer = None;
    });
    CALLS.store(0, Ordering::SeqCst);
}

/// Makes WskGetAddressInfo complete with `status` (None: resolve).
pub fn set_resolver_error(status: Option<NTSTATUS>) {
    config(|c| c.error = status);
}

/// Makes WskGetAddressInfo pend until cancelled (never, if the provider
/// ignores cancellation: use [`set_resolver_delay`] for that case).
pub fn set_resolver_hangs(on: bool) {
    config(|c| c.hangs = on);
}

/// Makes WskGetAddressInfo complete only after `delay` (cancellation ends
/// the wait with STATUS_CANCELLED unless the provider ignores it).
pub fn set_resolver_delay(delay: Option<Duration>) {
    config(|c| c.delay = delay);
}

/// Makes WskGetAddressInfo answer with these addresses, in this order, with
/// the port of the (numeric) service name, instead of asking getaddrinfo.
pub fn set_resolver_answer(answer: Option<Vec<IpAddr>>) {
    config(|c| c.answer = answer);
}

/// How many times WskGetAddressInfo was called since the session began.
pub fn resolver_calls() -> u64 {
    CALLS.load(Ordering::SeqCst)
}

/// How many address lists are allocated and not yet freed.
pub fn address_lists_live() -> usize {
    lists(|l| l.len())
}

// ---------------------------------------------------------------------------
// Address lists
// ---------------------------------------------------------------------------

/// One entry of a list: the ADDRINFOEXW (72 bytes, see safewsk's src/nt.rs)
/// followed by the SOCKADDR it points to.
#[repr(C)]
struct Entry {
    ai_flags: i32,
    ai_family: i32,
    ai_socktype: i32,
    ai_protocol: i32,
    ai_addrlen: usize,
    ai_canonname: PVOID,
    ai_addr: PVOID,
    ai_blob: PVOID,
    ai_bloblen: usize,
    ai_provider: PVOID,
    ai_next: *mut Entry,
    addr: [u8; 28],
}

const _: () = assert!(std::mem::offset_of!(Entry, ai_next) == 64);
const _: () = assert!(std::mem::offset_of!(Entry, addr) == 72);

/// Heads of the lists handed out and not yet freed.
static LISTS: Mutex<Option<HashSet<usize>>> = Mutex::new(None);

fn lists<R>(f: impl FnOnce(&mut HashSet<usize>) -> R) -> R {
    let mut g = LISTS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashSet::new))
}

fn layout() -> std::alloc::Layout {
    std::alloc::Layout::new::<Entry>()
}

/// Builds a tracked list of Windows SOCKADDRs (16 or 28 bytes each);
/// returns its head.
fn build_list(addrs: &[[u8; 28]]) -> usize {
    let mut next: *mut Entry = std::ptr::null_mut();
    for a in addrs.iter().rev() {
        let family = u16::from_ne_bytes([a[0], a[1]]);
        let len = if family == WIN_AF_INET6 { 28 } else { 16 };
        // SAFETY: a non-zero-sized layout.
        let p = unsafe { std::alloc::alloc_zeroed(layout()) }.cast::<Entry>();
        if p.is_null() {
            std::alloc::handle_alloc_error(layout());
        }
        // `ai_addr` points at the entry's own `addr` field.
        let addr_field: PVOID = p.cast::<u8>().wrapping_add(std::mem::offset_of!(Entry, addr)).cast();
        // SAFETY: `p` is a fresh block of an Entry's layout, written whole.
        unsafe {
            p.write(Entry {
                ai_flags: 0,
                ai_family: i32::from(family),
                ai_socktype: i32::from(SOCK_STREAM),
                ai_protocol: IPPROTO_TCP as i32,
                ai_addrlen: len,
                ai_canonname: std::ptr::null_mut(),
                ai_addr: addr_field,
                ai_blob: std::ptr::null_mut(),
                ai_bloblen: 0,
                ai_provider: std::ptr::null_mut(),
                ai_next: next,
                addr: *a,
            })
        };
        next = p;
    }
    let head = next as usize;
    lists(|l| l.insert(head));
    add_live(Kind::Pool, 1);
    head
}

// ---------------------------------------------------------------------------
// WskGetAddressInfo / WskFreeAddressInfo
// ---------------------------------------------------------------------------

/// A UNICODE_STRING's text, read by its Length (no terminator needed).
/// None (after recording why) if it is malformed.
///
/// # Safety
/// `us` is null or a readable UNICODE_STRING.
unsafe fn read_unicode(us: PVOID, who: &str, what: &str) -> Option<Option<String>> {
    if us.is_null() {
        return Some(None);
    }
    // UNICODE_STRING { USHORT Length; USHORT MaximumLength; PWSTR Buffer; }.
    // SAFETY: a readable UNICODE_STRING (contract): Length at 0.
    let len: u16 = unsafe { rd(us, 0) };
    // SAFETY: as above: MaximumLength at 2.
    let max: u16 = unsafe { rd(us, 2) };
    // SAFETY: as above: Buffer at 8.
    let buf: PVOID = unsafe { rd(us, 8) };
    if !len.is_multiple_of(2) || len > max || (len > 0 && buf.is_null()) {
        violation(format!(
            "{who}: malformed {what} UNICODE_STRING (Length {len}, MaximumLength {max}, Buffer {buf:p})"
        ));
        return None;
    }
    let mut chars = vec![0u16; usize::from(len / 2)];
    // SAFETY: Buffer holds Length readable bytes (checked shape; the
    // caller's contract for the contents).
    unsafe { std::ptr::copy_nonoverlapping(buf.cast::<u8>(), chars.as_mut_ptr().cast::<u8>(), usize::from(len)) };
    Some(Some(String::from_utf16_lossy(&chars)))
}

/// getaddrinfo's answer as Windows SOCKADDRs, or the NTSTATUS Windows gives.
fn resolve(node: Option<&str>, service: Option<&str>, family: i32) -> Result<Vec<[u8; 28]>, NTSTATUS> {
    if let Some(answer) = config(|c| c.answer.clone()) {
        let port: u16 = service.and_then(|s| s.parse().ok()).unwrap_or(0);
        if answer.is_empty() {
            // Windows answers a name without addresses with an error, never
            // with an empty list.
            return Err(STATUS_NOT_FOUND);
        }
        return Ok(answer.iter().map(|ip| windows_sockaddr(*ip, port)).collect());
    }
    if node.is_some_and(|n| n.to_ascii_lowercase().trim_end_matches('.').ends_with(".invalid")) {
        return Err(STATUS_NOT_FOUND);
    }
    let node = node.map(CString::new).transpose().map_err(|_| STATUS_NOT_FOUND)?;
    let service = service.map(CString::new).transpose().map_err(|_| STATUS_NOT_FOUND)?;
    // SAFETY: addrinfo is plain C data; all zeroes is a valid hints value.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = match family {
        2 => libc::AF_INET,
        23 => libc::AF_INET6,
        _ => libc::AF_UNSPEC,
    };
    hints.ai_socktype = libc::SOCK_STREAM;
    hints.ai_protocol = libc::IPPROTO_TCP;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: NUL-terminated strings or NULL, valid hints, a writable result.
    let rc = unsafe {
        libc::getaddrinfo(
            node.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            service.as_ref().map_or(std::ptr::null(), |c| c.as_ptr()),
            &hints,
            &mut res,
        )
    };
    match rc {
        0 => {}
        libc::EAI_NONAME | libc::EAI_NODATA | libc::EAI_SERVICE => return Err(STATUS_NOT_FOUND),
        libc::EAI_MEMORY => return Err(STATUS_INSUFFICIENT_RESOURCES),
        _ => return Err(STATUS_UNSUCCESSFUL),
    }
    let mut out = Vec::new();
    let mut p = res;
    while !p.is_null() {
        // SAFETY: an entry of getaddrinfo's live list.
        let ai = unsafe { &*p };
        if !ai.ai_addr.is_null() {
            // SAFETY: sockaddr_storage is plain C data; zeroes are valid.
            let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let n = (ai.ai_addrlen as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
            // SAFETY: `ai_addr` holds `ai_addrlen` bytes; `ss` is large enough.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    ai.ai_addr.cast::<u8>(),
                    (&mut ss as *mut libc::sockaddr_storage).cast::<u8>(),
                    n,
                )
            };
            let mut win = [0u8; 28];
            // SAFETY: `win` is 28 writable bytes.
            if unsafe { from_linux(&ss, win.as_mut_ptr()) } {
                out.push(win);
            }
        }
        p = ai.ai_next;
    }
    // SAFETY: getaddrinfo's list, freed once.
    unsafe { libc::freeaddrinfo(res) };
    if out.is_empty() {
        return Err(STATUS_NOT_FOUND);
    }
    Ok(out)
}

/// A Windows SOCKADDR_IN / SOCKADDR_IN6 for `ip` and `port`.
fn windows_sockaddr(ip: IpAddr, port: u16) -> [u8; 28] {
    let mut w = [0u8; 28];
    w[2..4].copy_from_slice(&port.to_be_bytes());
    match ip {
        IpAddr::V4(v4) => {
            w[0..2].copy_from_slice(&WIN_AF_INET.to_ne_bytes());
            w[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            w[0..2].copy_from_slice(&WIN_AF_INET6.to_ne_bytes());
            w[8..24].copy_from_slice(&v6.octets());
        }
    }
    w
}

struct SendPtr(PVOID);
// SAFETY: the result pointer is written only by the one worker of the IRP,
// before completion, while the caller keeps it valid (WSK contract).
unsafe impl Send for SendPtr {}

/// PFN_WSK_GET_ADDRESS_INFO.
pub(crate) unsafe extern "system" fn wsk_get_address_info(
    client: PVOID,
    node: PVOID,
    service: PVOID,
    _name_space: u32,
    _provider: PVOID,
    hints: PVOID,
    result: PVOID,
    _process: PVOID,
    _thread: PVOID,
    irp: PVOID,
) -> NTSTATUS {
    const WHO: &str = "WskGetAddressInfo";
    CALLS.fetch_add(1, Ordering::SeqCst);
    if irql::current() != PASSIVE_LEVEL {
        violation("WskGetAddressInfo above PASSIVE_LEVEL (PFN_WSK_GET_ADDRESS_INFO: PASSIVE_LEVEL)");
    }
    if let Some(status) = refuse_without_completing() {
        return status;
    }
    // SAFETY: the IRP is the caller's.
    if !unsafe { take(irp, WHO) } {
        return STATUS_INVALID_PARAMETER;
    }
    let fail = |status: NTSTATUS| {
        // SAFETY: provider-owned IRP, completed once.
        unsafe { complete(irp, status, 0) };
        status
    };
    if !regs(|r| r.contains(&(client as usize))) {
        violation(format!("{WHO}: {client:p} is not a captured WSK client"));
        return fail(STATUS_INVALID_PARAMETER);
    }
    if result.is_null() {
        violation(format!("{WHO}: NULL Result"));
        return fail(STATUS_INVALID_PARAMETER);
    }
    // SAFETY: the caller's NodeName UNICODE_STRING, NULL or readable.
    let node = unsafe { read_unicode(node, WHO, "NodeName") };
    // SAFETY: the caller's ServiceName UNICODE_STRING, NULL or readable.
    let service = unsafe { read_unicode(service, WHO, "ServiceName") };
    let (Some(node), Some(service)) = (node, service) else {
        return fail(STATUS_INVALID_PARAMETER);
    };
    // SAFETY: ADDRINFOEXW hints: ai_family at 4 (the only hint used here).
    let family: i32 = if hints.is_null() { 0 } else { unsafe { rd(hints, 4) } };
    let (error, hangs, delay) = config(|c| (c.error, c.hangs, c.delay));
    let result = SendPtr(result);
    run(irp, None, move |op| {
        let result = result;
        if hangs && !op.wait(-1, 0, None) {
            return (STATUS_CANCELLED, 0);
        }
        if let Some(d) = delay {
            if !op.wait(-1, 0, Some(Instant::now() + d)) {
                return (STATUS_CANCELLED, 0);
            }
        }
        if let Some(status) = error {
            return (status, 0);
        }
        match resolve(node.as_deref(), service.as_deref(), family) {
            Err(status) => (status, 0),
            Ok(addrs) => {
                let head = build_list(&addrs);
                // SAFETY: the caller's Result pointer, valid until completion.
                unsafe { wr(result.0, 0, head) };
                (STATUS_SUCCESS, 0)
            }
        }
    })
}

/// PFN_WSK_FREE_ADDRESS_INFO.
pub(crate) unsafe extern "system" fn wsk_free_address_info(client: PVOID, list: PVOID) {
    const WHO: &str = "WskFreeAddressInfo";
    if irql::current() != PASSIVE_LEVEL {
        violation("WskFreeAddressInfo above PASSIVE_LEVEL (PFN_WSK_FREE_ADDRESS_INFO: PASSIVE_LEVEL)");
    }
    if !regs(|r| r.contains(&(client as usize))) {
        violation(format!("{WHO}: {client:p} is not a captured WSK client"));
    }
    if !lists(|l| l.remove(&(list as usize))) {
        violation(format!("{WHO}: {list:p} is not a list from WskGetAddressInfo (freed twice, or foreign)"));
        return;
    }
    let mut p = list.cast::<Entry>();
    while !p.is_null() {
        // SAFETY: an entry of a tracked list, live until quarantined here.
        let next = unsafe { (*p).ai_next };
        quarantine(p.cast(), layout());
        p = next;
    }
    add_live(Kind::Pool, -1);
}

/// The dispatch-table entries (hostkernel's table types them untyped).
pub(crate) type GetAddressInfoFn =
    unsafe extern "system" fn(PVOID, PVOID, PVOID, u32, PVOID, PVOID, PVOID, PVOID, PVOID, PVOID) -> NTSTATUS;
pub(crate) type FreeAddressInfoFn = unsafe extern "system" fn(PVOID, PVOID);
type Untyped = unsafe extern "system" fn() -> NTSTATUS;
// SAFETY: the table's entry is declared untyped; every caller calls it as
// the PFN_WSK_GET_ADDRESS_INFO it is (wsk.h), never through this type.
pub(crate) const GET_ADDRESS_INFO: Untyped =
    unsafe { std::mem::transmute::<GetAddressInfoFn, Untyped>(wsk_get_address_info) };
// SAFETY: likewise, called as a PFN_WSK_FREE_ADDRESS_INFO.
pub(crate) const FREE_ADDRESS_INFO: Untyped =
    unsafe { std::mem::transmute::<FreeAddressInfoFn, Untyped>(wsk_free_address_info) };
