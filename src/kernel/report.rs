//! Reports: what the library tells the driver developer about a provider
//! that misbehaves, a wait that lasts, or a socket cleanup had to close.
//!
//! Every report goes two ways:
//! - to the driver's own tracing, through the callback it set with
//!   SafeWskSetReportCallback (a [`SAFEWSK_REPORT`] with the facts as
//!   fields, so WPP or TraceLogging can record them as data), every report;
//! - to the kernel debugger with `DbgPrintEx(DPFLTR_IHVNETWORK_ID,
//!   DPFLTR_ERROR_LEVEL, ...)`. Since Windows Vista, DbgPrint is filtered as
//!   `DbgPrintEx(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, ...)` and not shown on
//!   a stock machine ("Reading and Filtering Debugging Messages", Microsoft
//!   Learn): a message of level 0 to 31 is sent when its bit (1 << Level)
//!   is set in the component's mask or in the system-wide mask, whose
//!   default is 1 (DPFLTR_ERROR_LEVEL only). So the error level is the one
//!   level a stock machine shows, and DPFLTR_IHVNETWORK_ID the component
//!   DbgPrintEx's page names for network drivers. These lines are
//!   rate-limited, each kind of report on its own ([`BURST`] per
//!   [`WINDOW_MS`]; the next line of that kind says how many were left
//!   out): a cleanup that closes 10,000 sockets prints a few lines, not
//!   10,000, and still shows every other kind of report.

#![allow(non_camel_case_types, non_snake_case)]

use core::ffi::{c_char, c_void};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, AtomicU64, Ordering};

use crate::kernel::nt::*;
use crate::kernel::platform;

/// `SAFEWSK_REPORT.Code`: a wait past its deadline: the provider has not
/// completed the cancelled IRP `Object` of call `What` after `Milliseconds`
/// (also made for a close, which has no deadline, once it has lasted a
/// report interval). Repeated while the wait lasts.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_REPORT_OVERDUE: ULONG = 1 as ULONG;
/// `SAFEWSK_REPORT.Code`: the provider's `What` returned `Status` without
/// completing IRP `Object` (a breach of the I/O model); the IRP was taken
/// back as not consumed.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_REPORT_UNCONSUMED: ULONG = 2 as ULONG;
/// `SAFEWSK_REPORT.Code`: SafeWskCleanup still waits after `Milliseconds`
/// for `Value1` calls (and asynchronous connects) and `Value2` sockets.
/// Repeated while the wait lasts.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_REPORT_CLEANUP_WAITING: ULONG = 3 as ULONG;
/// `SAFEWSK_REPORT.Code`: SafeWskCloseSocket still waits after
/// `Milliseconds` for other calls on the socket to return from WSK.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_REPORT_CLOSE_WAITING: ULONG = 4 as ULONG;
/// `SAFEWSK_REPORT.Code`: SafeWskCleanup closes a socket the driver left
/// open (`Value1`: the socket's slot number).
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_REPORT_CLEANUP_CLOSING: ULONG = 5 as ULONG;
/// `SAFEWSK_REPORT.Code`: a close could not be issued (`Status`); the
/// socket in slot `Value1` (0xFFFFFFFF: a half-made socket of
/// SafeWskSocketConnectWithOptions) is the library's until SafeWskCleanup
/// closes it.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_REPORT_ORPHAN: ULONG = 6 as ULONG;
/// `SAFEWSK_REPORT.Code`: SafeWskCleanup released the cached security
/// descriptor `Object` the driver had not released (`Status`: the
/// provider's answer).
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_REPORT_FORGOTTEN_SD: ULONG = 7 as ULONG;
/// `SAFEWSK_REPORT.Code`: SafeWskStartup got no transport list from the
/// provider (`Status`, `Value1` bytes returned): connects are checked
/// against the fixed rules only.
#[allow(clippy::unnecessary_cast)] // the cast makes cbindgen write a typed C constant
pub const SAFEWSK_REPORT_NO_TRANSPORT_LIST: ULONG = 8 as ULONG;

/// One report, as the driver's callback receives it. Only valid during the
/// callback: copy what you keep.
#[repr(C)]
pub struct SAFEWSK_REPORT {
    /// One of SAFEWSK_REPORT_*.
    pub Code: ULONG,
    /// The status concerned, or STATUS_SUCCESS.
    pub Status: NTSTATUS,
    /// How long a wait has lasted, or 0.
    pub Milliseconds: ULONG,
    /// Per code (see each SAFEWSK_REPORT_* code), else 0.
    pub Value1: ULONG,
    /// Per code, else 0.
    pub Value2: ULONG,
    /// The WSK call concerned, NUL-terminated ASCII, or NULL.
    pub What: *const c_char,
    /// The IRP or security descriptor concerned, or NULL.
    pub Object: *const c_void,
}

impl SAFEWSK_REPORT {
    /// A report with only its code set.
    pub(crate) const fn new(code: ULONG) -> SAFEWSK_REPORT {
        SAFEWSK_REPORT {
            Code: code,
            Status: STATUS_SUCCESS,
            Milliseconds: 0,
            Value1: 0,
            Value2: 0,
            What: ptr::null(),
            Object: ptr::null(),
        }
    }
}

/// The driver's report callback: called for every report, at IRQL <=
/// DISPATCH_LEVEL, on any thread, possibly while a safewsk call is in
/// progress on it. It must not call safewsk, block, or keep `Report`.
pub type SAFEWSK_REPORT_CALLBACK = Option<unsafe extern "C" fn(Context: PVOID, Report: *const SAFEWSK_REPORT)>;

/// The callback and its context (set while no client exists, so never
/// while a report is being made).
static CALLBACK: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());
static CONTEXT: AtomicPtr<c_void> = AtomicPtr::new(ptr::null_mut());

/// At most this many debugger lines of one kind of report per window.
pub(crate) const BURST: u32 = 10;
/// The rate limit's window.
pub(crate) const WINDOW_MS: u64 = 1000;
/// The kinds of report (SAFEWSK_REPORT_* codes 1 to 8; slot 0 for any
/// other), each limited on its own: a flood of one kind (a cleanup closing
/// 10,000 sockets) does not silence the others.
const KINDS: usize = 9;

/// One kind's rate limit.
struct Limit {
    window_start: AtomicU64,
    in_window: AtomicU32,
    suppressed: AtomicU32,
}

static LIMITS: [Limit; KINDS] =
    [const { Limit { window_start: AtomicU64::new(0), in_window: AtomicU32::new(0), suppressed: AtomicU32::new(0) } };
        KINDS];

/// Sets the callback (see SafeWskSetReportCallback, which makes sure no
/// client exists).
pub(crate) fn set_callback(callback: SAFEWSK_REPORT_CALLBACK, context: PVOID) {
    let f = callback.map_or(ptr::null_mut(), |f| f as *mut c_void);
    CONTEXT.store(context, Ordering::Release);
    CALLBACK.store(f, Ordering::Release);
}

/// Makes a report: to the driver's callback, and (rate-limited) to the
/// kernel debugger. Callable at IRQL <= DISPATCH_LEVEL.
pub(crate) fn report(r: &SAFEWSK_REPORT) {
    let f = CALLBACK.load(Ordering::Acquire);
    if !f.is_null() {
        // SAFETY: a non-null value stored by set_callback from a
        // SAFEWSK_REPORT_CALLBACK's function pointer.
        let f = unsafe { core::mem::transmute::<*mut c_void, unsafe extern "C" fn(PVOID, *const SAFEWSK_REPORT)>(f) };
        // SAFETY: the driver's callback with its context and a report that
        // lives for the call (the callback's contract: IRQL <= DISPATCH_LEVEL).
        unsafe { f(CONTEXT.load(Ordering::Acquire), r) };
    }
    let limit = LIMITS.get(r.Code as usize).or(LIMITS.first());
    if let Some(left_out) = limit.and_then(admit) {
        if left_out != 0 {
            platform::print_suppressed(left_out);
        }
        platform::print_report(r);
    }
}

/// The rate limit of one kind: Some(number of its lines left out since the
/// last one printed) if this line may be printed. Approximate under races
/// (two reports may both start a new window), never more than twice the
/// burst per window.
fn admit(limit: &Limit) -> Option<u32> {
    let now = platform::now_ms();
    let start = limit.window_start.load(Ordering::Relaxed);
    if now.saturating_sub(start) >= WINDOW_MS
        && limit.window_start.compare_exchange(start, now, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    {
        limit.in_window.store(0, Ordering::Relaxed);
    }
    if limit.in_window.fetch_add(1, Ordering::Relaxed) < BURST {
        Some(limit.suppressed.swap(0, Ordering::Relaxed))
    } else {
        limit.suppressed.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// A report about call `what` (a NUL-terminated literal).
pub(crate) fn report_call(code: ULONG, what: &'static [u8], irp: *mut IRP, status: NTSTATUS, ms: ULONG) {
    debug_assert!(what.last() == Some(&0));
    report(&SAFEWSK_REPORT {
        Status: status,
        Milliseconds: ms,
        What: what.as_ptr().cast(),
        Object: irp.cast_const().cast(),
        ..SAFEWSK_REPORT::new(code)
    });
}

/// A report with values only.
pub(crate) fn report_values(code: ULONG, status: NTSTATUS, ms: ULONG, value1: ULONG, value2: ULONG) {
    report(&SAFEWSK_REPORT {
        Status: status,
        Milliseconds: ms,
        Value1: value1,
        Value2: value2,
        ..SAFEWSK_REPORT::new(code)
    });
}
