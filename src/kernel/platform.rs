//! The one module that touches kernel symbols.
//!
//! Every NT and WSK routine the library calls is declared in the `extern`
//! block below under its real exported name: on Windows they resolve against
//! ntoskrnl.exe (Io*, Ke*, Ex*, Mm*) and NETIO.SYS (Wsk*); on the Linux host
//! they resolve against the `hostkernel` test crate, which exports the same
//! names with the same signatures. The rest of the library only calls the
//! safe-ish wrappers here and never names a kernel symbol itself.
//!
//! The structured exception handling MmProbeAndLockPages needs is the
//! assembly in `platform/seh.rs` (Windows only), which names
//! MmProbeAndLockPages and `__C_specific_handler`.
//!
//! Two routines are header inlines in the WDK rather than exports and are
//! reproduced here from wdm.h: `IoSetCompletionRoutine` (and the
//! `IoGetNextIrpStackLocation` it uses) and, on x64, `KeGetCurrentIrql`.

use core::ffi::c_void;
use core::ptr;

use crate::nt::*;

/// Pool tag of every allocation safewsk makes: 'kwSS' reads "SSwk" in
/// a pool dump (tags are stored little-endian).
pub const POOL_TAG: ULONG = u32::from_le_bytes(*b"SSwk");

// The NT/WSK ABI: on 64-bit Windows "system" is the C calling convention.
extern "system" {
    fn IoAllocateIrp(StackSize: CHAR, ChargeQuota: BOOLEAN) -> *mut IRP;
    fn IoFreeIrp(Irp: *mut IRP);
    fn IoReuseIrp(Irp: *mut IRP, Iostatus: NTSTATUS);
    fn IoCancelIrp(Irp: *mut IRP) -> BOOLEAN;
    fn IoAllocateMdl(
        VirtualAddress: PVOID,
        Length: ULONG,
        SecondaryBuffer: BOOLEAN,
        ChargeQuota: BOOLEAN,
        Irp: *mut IRP,
    ) -> *mut MDL;
    fn IoFreeMdl(Mdl: *mut MDL);
    fn MmBuildMdlForNonPagedPool(Mdl: *mut MDL);
    fn IoSetCompletionRoutineEx(
        DeviceObject: PDEVICE_OBJECT,
        Irp: *mut IRP,
        CompletionRoutine: PIO_COMPLETION_ROUTINE,
        Context: PVOID,
        InvokeOnSuccess: BOOLEAN,
        InvokeOnError: BOOLEAN,
        InvokeOnCancel: BOOLEAN,
    ) -> NTSTATUS;
    fn IofCompleteRequest(Irp: *mut IRP, PriorityBoost: CHAR);
    fn KeInitializeEvent(Event: *mut KEVENT, Type: u32, State: BOOLEAN);
    fn KeSetEvent(Event: *mut KEVENT, Increment: LONG, Wait: BOOLEAN) -> LONG;
    fn KeClearEvent(Event: *mut KEVENT);
    fn KeFlushQueuedDpcs();
    fn KeAcquireSpinLockRaiseToDpc(SpinLock: *mut KSPIN_LOCK) -> KIRQL;
    fn KeReleaseSpinLock(SpinLock: *mut KSPIN_LOCK, NewIrql: KIRQL);
    fn KeWaitForSingleObject(
        Object: PVOID,
        WaitReason: u32,
        WaitMode: CHAR,
        Alertable: BOOLEAN,
        Timeout: *mut i64,
    ) -> NTSTATUS;
    fn KeInitializeTimer(Timer: *mut KTIMER);
    fn KeInitializeDpc(Dpc: *mut KDPC, DeferredRoutine: PKDEFERRED_ROUTINE, DeferredContext: PVOID);
    fn KeSetTimer(Timer: *mut KTIMER, DueTime: i64, Dpc: *mut KDPC) -> BOOLEAN;
    fn KeCancelTimer(Timer: *mut KTIMER) -> BOOLEAN;
    fn ExFreePoolWithTag(P: PVOID, Tag: ULONG);
    fn WskRegister(WskClientNpi: *mut WSK_CLIENT_NPI, WskRegistration: *mut WSK_REGISTRATION) -> NTSTATUS;
    fn WskCaptureProviderNPI(
        WskRegistration: *mut WSK_REGISTRATION,
        WaitTimeout: ULONG,
        WskProviderNpi: *mut WSK_PROVIDER_NPI,
    ) -> NTSTATUS;
    fn WskReleaseProviderNPI(WskRegistration: *mut WSK_REGISTRATION);
    fn WskDeregister(WskRegistration: *mut WSK_REGISTRATION);
}

// x64 reads CR8 inline as wdm.h does; elsewhere (ARM64, and the Linux host)
// the ntoskrnl.exe export is called (the WDK's ARM64 inline reads the same
// value from the KPCR).
#[cfg(not(all(windows, target_arch = "x86_64")))]
extern "system" {
    fn KeGetCurrentIrql() -> KIRQL;
}

// DbgPrintEx is variadic, hence the C calling convention (the same as
// "system" on 64-bit Windows).
extern "C" {
    fn DbgPrintEx(ComponentId: ULONG, Level: ULONG, Format: *const u8, ...) -> ULONG;
}

/// `DPFLTR_IHVNETWORK_ID` (dpfilter.h, DPFLTR_TYPE: 80, 0x50): the component
/// DbgPrintEx's page (Microsoft Learn) names for network drivers.
const DPFLTR_IHVNETWORK_ID: ULONG = 80;
/// `DPFLTR_ERROR_LEVEL` (0): the level the default system-wide mask (1)
/// passes ("Reading and Filtering Debugging Messages").
const DPFLTR_ERROR_LEVEL: ULONG = 0;

#[cfg(windows)]
extern "system" {
    fn KeBugCheckEx(Code: ULONG, P1: ULONG_PTR, P2: ULONG_PTR, P3: ULONG_PTR, P4: ULONG_PTR) -> !;
}

/// Stops the system with bugcheck 0x52504E43 ("RPNC": Rust panic), as
/// wdk-panic does, with the panic's location in the parameters so that the
/// crash dump names it: 1 = the source file name's address (not
/// NUL-terminated; in the image's read-only data), 2 = its length in bytes,
/// 3 = the line, 4 = the column. Only reachable through a panic, which the
/// library's lints keep out of every exported path.
#[cfg(windows)]
pub fn bugcheck(file: &str, line: u32, column: u32) -> ! {
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
    unsafe { KeBugCheckEx(0x5250_4E43, file.as_ptr() as ULONG_PTR, file.len(), line as ULONG_PTR, column as ULONG_PTR) }
}

/// The current IRQL.
#[inline]
pub fn current_irql() -> KIRQL {
    #[cfg(not(all(windows, target_arch = "x86_64")))]
    {
        // SAFETY: KeGetCurrentIrql has no preconditions; callable at any IRQL.
        unsafe { KeGetCurrentIrql() }
    }
    #[cfg(all(windows, target_arch = "x86_64"))]
    {
        // wdm.h (AMD64): `KeGetCurrentIrql() { return (KIRQL)ReadCR8(); }`.
        let cr8: u64;
        // SAFETY: reading CR8 is how the WDK's inline KeGetCurrentIrql reads
        // the IRQL on x64; kernel code runs at CPL 0 where it is permitted.
        unsafe { core::arch::asm!("mov {}, cr8", out(reg) cr8, options(nomem, nostack, preserves_flags)) };
        cr8 as KIRQL
    }
}

// ---------------------------------------------------------------------------
// IRPs
// ---------------------------------------------------------------------------

/// `IoAllocateIrp(1, FALSE)`: one stack location, which is what WSK needs
/// ("Using IRPs with Winsock Kernel Functions": at least one I/O stack
/// location). Null when the allocation fails.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL.
pub unsafe fn allocate_irp() -> *mut IRP {
    // SAFETY: the caller is at IRQL <= DISPATCH_LEVEL, IoAllocateIrp's only
    // requirement.
    unsafe { IoAllocateIrp(1, 0) }
}

/// # Safety
/// `irp` came from [`allocate_irp`], is not owned by the provider (its
/// completion routine has run) and is not used again.
pub unsafe fn free_irp(irp: *mut IRP) {
    // SAFETY: the caller guarantees the IRP is ours and quiescent.
    unsafe { IoFreeIrp(irp) }
}

/// `IoReuseIrp(irp, STATUS_SUCCESS)`: reinitializes an IRP from
/// [`allocate_irp`] for its next use (current stack location, Cancel,
/// IoStatus, PendingReturned), as "Using IRPs with Winsock Kernel Functions"
/// (Microsoft Learn) allows: the application "can reuse a previously
/// allocated IRP by calling IoReuseIrp".
///
/// # Safety
/// `irp` came from [`allocate_irp`], is not owned by the provider (its
/// completion routine has run, or it was never issued) and has no cancel
/// routine; IRQL <= DISPATCH_LEVEL.
pub unsafe fn reuse_irp(irp: *mut IRP) {
    // SAFETY: the caller guarantees the IRP is ours and quiescent.
    unsafe { IoReuseIrp(irp, STATUS_SUCCESS) }
}

/// `IoCancelIrp`. Returns whether a cancel routine was called.
///
/// # Safety
/// `irp` is live (not yet freed); IRQL <= DISPATCH_LEVEL.
pub unsafe fn cancel_irp(irp: *mut IRP) -> bool {
    // SAFETY: the caller guarantees the IRP is not freed before this returns.
    unsafe { IoCancelIrp(irp) != 0 }
}

/// `IoSetCompletionRoutineEx(DeviceObject, Irp, Routine, Context, TRUE,
/// TRUE, TRUE)`: WSK requires all three invoke flags for application-allocated
/// IRPs ("Using IRPs with Winsock Kernel Functions").
///
/// The Ex form is what keeps the driver image loaded while `routine` runs:
/// the I/O manager references `device` (and so the driver object that owns
/// it) before the IRP is issued and dereferences it only after `routine` has
/// *returned* (Microsoft Learn, "IoSetCompletionRoutineEx": "ensures that a
/// non-Plug and Play driver is not unloaded before the IoCompletion routine
/// has run"). With the plain IoSetCompletionRoutine the instructions after
/// the routine's last KeSetEvent could run in an image that DriverUnload has
/// already let go. The price is one small allocation by the I/O manager per
/// IRP, which can fail: then STATUS_INSUFFICIENT_RESOURCES is returned and
/// nothing was set.
///
/// # Safety
/// `irp` is a live IRP owned by the caller with one stack location left
/// below the current one (a fresh `IoAllocateIrp(1, ..)` IRP); `device` is a
/// live DEVICE_OBJECT; IRQL <= DISPATCH_LEVEL.
pub unsafe fn set_completion_routine(
    device: PDEVICE_OBJECT,
    irp: *mut IRP,
    routine: unsafe extern "system" fn(PVOID, *mut IRP, PVOID) -> NTSTATUS,
    context: PVOID,
) -> NTSTATUS {
    // SAFETY: forwarded caller guarantees.
    unsafe { IoSetCompletionRoutineEx(device, irp, Some(routine), context, 1, 1, 1) }
}

/// Completes, with `status`, an IRP that a WSK function returned without
/// consuming: it returned a status other than STATUS_PENDING and its
/// completion routine had not run. By the I/O model a routine that returns
/// anything but STATUS_PENDING has completed the IRP before returning, if it
/// completes it at all, so such an IRP is the caller's again. Completing it
/// here (after `IoSetNextIrpStackLocation` when the provider never moved to
/// the stack location whose completion routine was set) runs the completion
/// routine through the I/O manager, which also releases what
/// IoSetCompletionRoutineEx allocated and referenced.
///
/// # Safety
/// `irp` was given a completion routine with [`set_completion_routine`], was
/// returned unconsumed as described, and nobody else touches it.
pub unsafe fn complete_unconsumed(irp: *mut IRP, status: NTSTATUS) {
    // SAFETY: the IRP is ours again (see above) and nobody else touches it.
    let r = unsafe { &mut *irp };
    if r.CurrentLocation > r.StackCount {
        // IoSetNextIrpStackLocation: moving down one stack location stays
        // inside the IRP's single stack location, whose completion routine
        // we set.
        r.CurrentLocation -= 1;
        r.Tail.CurrentStackLocation = r.Tail.CurrentStackLocation.wrapping_sub(1);
    }
    r.IoStatus.Status = status;
    r.IoStatus.Information = 0;
    // SAFETY: IofCompleteRequest walks back up the stack locations exactly
    // as for a provider's completion; IRQL <= DISPATCH_LEVEL.
    unsafe { IofCompleteRequest(irp, 0) };
}

/// Reads `Irp->IoStatus` (Status, Information).
///
/// # Safety
/// `irp` is live and its completion routine has run.
pub unsafe fn irp_result(irp: *const IRP) -> (NTSTATUS, ULONG_PTR) {
    // SAFETY: the caller guarantees the IRP is live and completed, so nobody
    // writes IoStatus concurrently.
    let io_status = unsafe { (*irp).IoStatus };
    (io_status.Status, io_status.Information)
}

// ---------------------------------------------------------------------------
// Events
// ---------------------------------------------------------------------------

/// `KeInitializeEvent(event, NotificationEvent, FALSE)`.
///
/// # Safety
/// `event` points to resident (non-paged or locked stack) storage.
pub unsafe fn init_event(event: *mut KEVENT) {
    // SAFETY: the caller provides valid resident storage for a KEVENT.
    unsafe { KeInitializeEvent(event, NOTIFICATION_EVENT, 0) }
}

/// `KeSetEvent(event, IO_NO_INCREMENT, FALSE)`. Callable at <= DISPATCH_LEVEL.
///
/// # Safety
/// `event` was initialized with [`init_event`] and is still live.
pub unsafe fn set_event(event: *mut KEVENT) {
    // SAFETY: the caller guarantees an initialized, live event.
    unsafe {
        KeSetEvent(event, 0, 0);
    }
}

/// `KeClearEvent`. Callable at <= DISPATCH_LEVEL.
///
/// # Safety
/// `event` was initialized with [`init_event`] and is still live.
pub unsafe fn clear_event(event: *mut KEVENT) {
    // SAFETY: the caller guarantees an initialized, live event.
    unsafe { KeClearEvent(event) }
}

/// `KeFlushQueuedDpcs`: returns once every DPC queued on any processor has
/// run (Microsoft Learn, "KeFlushQueuedDpcs"), so no DPC routine of this
/// image is still executing. PASSIVE_LEVEL.
///
/// # Safety
/// IRQL == PASSIVE_LEVEL.
pub unsafe fn flush_queued_dpcs() {
    // SAFETY: PASSIVE_LEVEL per the caller.
    unsafe { KeFlushQueuedDpcs() }
}

/// `KeAcquireSpinLock` (on 64-bit Windows the export
/// KeAcquireSpinLockRaiseToDpc): raises to DISPATCH_LEVEL and returns the
/// previous IRQL for [`release_spin_lock`].
///
/// # Safety
/// `lock` is a live, zero-initialized KSPIN_LOCK; IRQL <= DISPATCH_LEVEL; the
/// caller does not hold it already.
pub unsafe fn acquire_spin_lock(lock: *mut KSPIN_LOCK) -> KIRQL {
    // SAFETY: forwarded caller guarantees.
    unsafe { KeAcquireSpinLockRaiseToDpc(lock) }
}

/// `KeReleaseSpinLock`.
///
/// # Safety
/// The caller holds `lock`, acquired with [`acquire_spin_lock`] that returned
/// `old`.
pub unsafe fn release_spin_lock(lock: *mut KSPIN_LOCK, old: KIRQL) {
    // SAFETY: forwarded caller guarantees.
    unsafe { KeReleaseSpinLock(lock, old) }
}

/// `KeWaitForSingleObject(event, Executive, KernelMode, FALSE, timeout)`.
/// `timeout_ms = None` waits forever. Returns STATUS_SUCCESS or
/// STATUS_TIMEOUT. A KernelMode wait keeps the waiter's stack resident, so the
/// event may live on that stack.
///
/// # Safety
/// `event` is initialized and live; IRQL <= APC_LEVEL (a non-zero wait).
pub unsafe fn wait_event(event: *mut KEVENT, timeout_ms: Option<ULONG>) -> NTSTATUS {
    // Relative timeouts are negative, in 100 ns units.
    let mut relative: i64 = match timeout_ms {
        Some(ms) => -(i64::from(ms) * 10_000),
        None => 0,
    };
    let timeout = match timeout_ms {
        Some(_) => &mut relative as *mut i64,
        None => ptr::null_mut(),
    };
    // SAFETY: the caller guarantees an initialized event and a legal IRQL;
    // `timeout` is null or points to a local that outlives the call.
    unsafe { KeWaitForSingleObject(event.cast(), EXECUTIVE, KERNEL_MODE, 0, timeout) }
}

// ---------------------------------------------------------------------------
// Reports (DbgPrintEx)
// ---------------------------------------------------------------------------

/// How often a wait that has run past its deadline reports itself: a
/// provider that does not complete a cancelled IRP is named in the debugger
/// output at this interval for as long as it lasts. Shorter on the Linux host
/// so that the tests see several reports quickly.
#[cfg(windows)]
pub const REPORT_INTERVAL_MS: ULONG = 5_000;
/// See the Windows value.
#[cfg(not(windows))]
pub const REPORT_INTERVAL_MS: ULONG = 200;

// The formats are byte literals with an explicit NUL rather than c"" literals
// while .ci/windows-gnu still builds with a Rust older than 1.77.
/// Prints a report to the kernel debugger (DbgPrintEx, DPFLTR_IHVNETWORK_ID,
/// DPFLTR_ERROR_LEVEL: visible on a stock machine), one line per code.
#[allow(clippy::manual_c_str_literals)]
pub fn print_report(r: &crate::kernel::report::SAFEWSK_REPORT) {
    use crate::kernel::report::*;
    let what: *const core::ffi::c_char = if r.What.is_null() { b"?\0".as_ptr().cast() } else { r.What };
    let (id, level) = (DPFLTR_IHVNETWORK_ID, DPFLTR_ERROR_LEVEL);
    let status = r.Status as ULONG;
    // Every arm: a NUL-terminated literal format whose conversions
    // match the arguments' types (%s: a NUL-terminated literal; %p: a
    // pointer; %u/%08X: a ULONG); DbgPrintEx may be called at IRQL <= DIRQL
    // with non-paged arguments.
    match r.Code {
        SAFEWSK_REPORT_OVERDUE => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: %s: IRP %p not completed after %u ms (past its deadline, cancelled if it had one); \
    waiting for the WSK provider to complete it\n\0"
                        .as_ptr(),
                    what,
                    r.Object,
                    r.Milliseconds,
                )
            }
        }
        SAFEWSK_REPORT_UNCONSUMED => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: %s returned 0x%08X without completing IRP %p; it is treated as not consumed\n\0"
                        .as_ptr(),
                    what,
                    status,
                    r.Object,
                )
            }
        }
        SAFEWSK_REPORT_CLEANUP_WAITING => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: SafeWskCleanup: still waiting after %u ms for %u call(s) or asynchronous connect(s) and \
    %u socket(s) to finish\n\0"
                        .as_ptr(),
                    r.Milliseconds,
                    r.Value1,
                    r.Value2,
                )
            }
        }
        SAFEWSK_REPORT_CLOSE_WAITING => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: SafeWskCloseSocket: still waiting after %u ms for other calls on the socket to return \
    from WSK\n\0"
                        .as_ptr(),
                    r.Milliseconds,
                )
            }
        }
        SAFEWSK_REPORT_CLEANUP_CLOSING => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: SafeWskCleanup: closing socket (slot %u) the driver left open\n\0".as_ptr(),
                    r.Value1,
                )
            }
        }
        SAFEWSK_REPORT_ORPHAN if r.Value1 == u32::MAX => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: SafeWskSocketConnectWithOptions: the half-made socket's WskCloseSocket could not be \
issued (0x%08X); SafeWskCleanup will close it\n\0"
                        .as_ptr(),
                    status,
                )
            }
        }
        SAFEWSK_REPORT_ORPHAN => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: WskCloseSocket of slot %u could not be issued (0x%08X); SafeWskCleanup will close it\n\0"
                        .as_ptr(),
                    r.Value1,
                    status,
                )
            }
        }
        SAFEWSK_REPORT_FORGOTTEN_SD => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: SafeWskCleanup: cached security descriptor %p was never released \
    (SafeWskReleaseSecurityDescriptor); released it (WSK_RELEASE_SD: 0x%08X)\n\0"
                        .as_ptr(),
                    r.Object,
                    status,
                )
            }
        }
        SAFEWSK_REPORT_NO_TRANSPORT_LIST => {
            // SAFETY: see above.
            unsafe {
                DbgPrintEx(
                    id,
                    level,
                    b"safewsk: WskControlClient(WSK_TRANSPORT_LIST_QUERY) returned 0x%08X (%u bytes); checking \
    connects against safewsk's fixed transport table only\n\0"
                        .as_ptr(),
                    status,
                    r.Value1,
                )
            }
        }
        _ => {
            // SAFETY: see above.
            unsafe { DbgPrintEx(id, level, b"safewsk: report %u (0x%08X)\n\0".as_ptr(), r.Code, status) }
        }
    };
}

/// Prints how many report lines the rate limit left out.
#[allow(clippy::manual_c_str_literals)]
pub fn print_suppressed(n: u32) {
    // SAFETY: as in print_report.
    unsafe {
        DbgPrintEx(
            DPFLTR_IHVNETWORK_ID,
            DPFLTR_ERROR_LEVEL,
            b"safewsk: %u line(s) of the next kind of report left out (at most 10 a second each; a report callback gets them all)\n\0".as_ptr(),
            n,
        )
    };
}

// ---------------------------------------------------------------------------
// Timers (KTIMER + KDPC)
// ---------------------------------------------------------------------------

/// `KeInitializeTimer` and `KeInitializeDpc(dpc, routine, context)`.
///
/// # Safety
/// `timer` and `dpc` are resident storage that outlives every use of them.
pub unsafe fn init_timer(timer: *mut KTIMER, dpc: *mut KDPC, routine: PKDEFERRED_ROUTINE, context: PVOID) {
    // SAFETY: the caller provides valid resident storage for the KTIMER.
    unsafe { KeInitializeTimer(timer) };
    // SAFETY: and for the KDPC.
    unsafe { KeInitializeDpc(dpc, routine, context) };
}

/// `KeSetTimer` with a relative due time of `ms` milliseconds; the DPC runs
/// at DISPATCH_LEVEL when it expires. Returns whether it was already queued.
///
/// # Safety
/// Initialized with [`init_timer`]; IRQL <= DISPATCH_LEVEL.
pub unsafe fn set_timer(timer: *mut KTIMER, dpc: *mut KDPC, ms: ULONG) -> bool {
    // SAFETY: initialized timer and DPC per the caller.
    unsafe { KeSetTimer(timer, -(i64::from(ms) * 10_000), dpc) != 0 }
}

/// `KeCancelTimer`: true if the timer was queued and is now removed (its DPC
/// will not run for this expiry); false if it was not queued (never set, or
/// already expired and its DPC queued or run).
///
/// # Safety
/// Initialized with [`init_timer`]; IRQL <= DISPATCH_LEVEL.
pub unsafe fn cancel_timer(timer: *mut KTIMER) -> bool {
    // SAFETY: initialized timer per the caller.
    unsafe { KeCancelTimer(timer) != 0 }
}

// ---------------------------------------------------------------------------
// Pool and MDLs
// ---------------------------------------------------------------------------

// ExAllocatePool2 exists from Windows 10 version 2004 on; importing it would
// keep the driver from loading on anything older (and on Wine 8, which does
// not export it). It is therefore looked up at run time, and where it is
// missing the downlevel route Microsoft documents is taken: ExAllocatePool2's
// Remarks send drivers for "versions of Windows prior to Windows 10, version
// 2004" to ExAllocatePoolZero, which "is identical to ExAllocatePoolWithTag
// except it zero initializes the allocated memory"
// (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-exallocatepool2,
// https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-exallocatepoolzero).
// ExAllocatePoolZero is a wdm.h inline, so its two steps are spelled out here:
// ExAllocatePoolWithTag(NonPagedPoolNx, ..) and zeroing. NonPagedPoolNx exists
// from Windows 8 on ("NX and Execute Pool Types",
// https://learn.microsoft.com/windows-hardware/drivers/kernel/nx-and-execute-pool-types).
extern "system" {
    fn MmGetSystemRoutineAddress(SystemRoutineName: *mut UNICODE_STRING) -> PVOID;
    fn ExAllocatePoolWithTag(PoolType: POOL_TYPE, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
}

/// ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag) (wdm.h).
type ExAllocatePool2Fn = unsafe extern "system" fn(u64, SIZE_T, ULONG) -> PVOID;

/// `L"ExAllocatePool2"` without its terminator (UNICODE_STRING needs none).
/// (tests/pool_fallback.rs fails if the host kernel does not recognise it.)
const EX_ALLOCATE_POOL2: [u16; 15] = {
    let [c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14] = *b"ExAllocatePool2";
    [
        c0 as u16, c1 as u16, c2 as u16, c3 as u16, c4 as u16, c5 as u16, c6 as u16, c7 as u16, c8 as u16, c9 as u16,
        c10 as u16, c11 as u16, c12 as u16, c13 as u16, c14 as u16,
    ]
};

/// ExAllocatePool2 if this kernel exports it. `MmGetSystemRoutineAddress`
/// "returns NULL" for a name it cannot resolve and is PASSIVE_LEVEL only
/// (https://learn.microsoft.com/windows-hardware/drivers/ddi/wdm/nf-wdm-mmgetsystemroutineaddress).
///
/// # Safety
/// PASSIVE_LEVEL.
unsafe fn lookup_allocate_pool2() -> Option<ExAllocatePool2Fn> {
    let mut name = EX_ALLOCATE_POOL2;
    let bytes = (name.len() * 2) as USHORT;
    let mut unicode = UNICODE_STRING { Length: bytes, MaximumLength: bytes, Buffer: name.as_mut_ptr() };
    // SAFETY: PASSIVE_LEVEL per the caller; `unicode` describes `name`, both
    // live locals that outlive the call, which only reads them.
    let p = unsafe { MmGetSystemRoutineAddress(&mut unicode) };
    if p.is_null() {
        return None;
    }
    // SAFETY: a non-null result is the address of the kernel's exported
    // ExAllocatePool2, whose prototype is ExAllocatePool2Fn.
    Some(unsafe { core::mem::transmute::<PVOID, ExAllocatePool2Fn>(p) })
}

/// How this kernel allocates zeroed non-paged pool: ExAllocatePool2 where the
/// kernel has it, else ExAllocatePoolWithTag(NonPagedPoolNx) and zeroing.
/// Resolved once per client at PASSIVE_LEVEL ([`PoolAllocator::resolve`]),
/// so that allocations can then be made at DISPATCH_LEVEL.
#[derive(Clone, Copy)]
pub struct PoolAllocator {
    allocate_pool2: Option<ExAllocatePool2Fn>,
}

impl PoolAllocator {
    /// Looks ExAllocatePool2 up.
    ///
    /// # Safety
    /// PASSIVE_LEVEL (MmGetSystemRoutineAddress).
    pub unsafe fn resolve() -> PoolAllocator {
        // SAFETY: PASSIVE_LEVEL per the caller.
        PoolAllocator { allocate_pool2: unsafe { lookup_allocate_pool2() } }
    }

    /// Zeroed non-paged (NX) pool tagged [`POOL_TAG`], or null.
    ///
    /// # Safety
    /// IRQL <= DISPATCH_LEVEL.
    pub unsafe fn alloc(&self, size: usize) -> *mut c_void {
        match self.allocate_pool2 {
            // SAFETY: IRQL <= DISPATCH_LEVEL per the caller; non-paged pool,
            // a non-zero tag.
            Some(allocate_pool2) => unsafe { allocate_pool2(POOL_FLAG_NON_PAGED, size, POOL_TAG) },
            None => {
                // SAFETY: as above; NonPagedPoolNx is valid from Windows 8 on.
                let p = unsafe { ExAllocatePoolWithTag(NON_PAGED_POOL_NX, size, POOL_TAG) };
                if !p.is_null() {
                    // SAFETY: `p` is a fresh block of `size` writable bytes.
                    unsafe { ptr::write_bytes(p.cast::<u8>(), 0, size) };
                }
                p
            }
        }
    }
}

/// # Safety
/// `p` came from [`PoolAllocator::alloc`] and is not used again.
pub unsafe fn pool_free(p: *mut c_void) {
    // SAFETY: the caller guarantees `p` is a live block with our tag.
    unsafe { ExFreePoolWithTag(p, POOL_TAG) }
}

// The MDL rules the library follows (Microsoft Learn):
// - WSK_BUF: "Each MDL in the MDL chain [...] describes memory that is
//   either locked or from non-paged pool."
// - MmBuildMdlForNonPagedPool: the MDL "must describe a buffer in nonpaged
//   system memory or in memory that is locked down"; it "may not be used with
//   MDLs describing buffers allocated on a kernel stack. To build an MDL
//   describing a kernel stack buffer, drivers must call MmProbeAndLockPages
//   [...] even if the driver guarantees that the kernel stack cannot be paged
//   out". Such an MDL must not be locked or unlocked.
// - MmProbeAndLockPages: "Calls to MmProbeAndLockPages must be enclosed in a
//   try/except block. If the pages do not support the specified operation,
//   the routine raises the STATUS_ACCESS_VIOLATION or other exceptions";
//   IRQL <= APC_LEVEL for pageable addresses (<= DISPATCH_LEVEL for
//   non-pageable); every successful call is matched by one MmUnlockPages.
// - MmUnlockPages: "The memory described by the specified MDL must have been
//   locked previously by a call to MmProbeAndLockPages"; IRQL <= DISPATCH_LEVEL.

extern "system" {
    fn MmUnlockPages(Mdl: *mut MDL);
}

// The host kernel has no structured exception handling: its
// MmProbeAndLockPages "raises" by recording the exception code in a
// thread-local, and this host-only export returns and clears it. Calling it
// right after MmProbeAndLockPages is how the host build emulates
// `__try { MmProbeAndLockPages(..); } __except (EXCEPTION_EXECUTE_HANDLER)
// { status = GetExceptionCode(); }`; an exception left untaken fails the test
// (KMODE_EXCEPTION_NOT_HANDLED on Windows).
#[cfg(not(windows))]
extern "system" {
    fn MmProbeAndLockPages(Mdl: *mut MDL, AccessMode: CHAR, Operation: u32);
    fn HostKernelTakeRaisedException() -> NTSTATUS;
}

/// The `LOCK_OPERATION` of MmProbeAndLockPages (wdm.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum LockOperation {
    /// `IoReadAccess`: the buffer is read (a send).
    Read = 0,
    /// `IoWriteAccess`: the buffer is written (a receive).
    Write = 1,
}

/// `IoAllocateMdl(va, len, FALSE, FALSE, NULL)`: an MDL that describes the
/// range but no pages yet, or null.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL.
pub unsafe fn allocate_mdl(va: *mut c_void, len: ULONG) -> *mut MDL {
    // SAFETY: IoAllocateMdl only records the range; IRQL per the caller.
    unsafe { IoAllocateMdl(va, len, 0, 0, ptr::null_mut()) }
}

/// `MmBuildMdlForNonPagedPool`.
///
/// # Safety
/// `mdl` came from [`allocate_mdl`] for a range of non-paged pool (never a
/// stack, never paged pool) that outlives the MDL; IRQL <= DISPATCH_LEVEL.
pub unsafe fn build_mdl_for_nonpaged_pool(mdl: *mut MDL) {
    // SAFETY: the caller guarantees a fresh MDL over non-paged pool.
    unsafe { MmBuildMdlForNonPagedPool(mdl) }
}

/// `MmProbeAndLockPages(mdl, KernelMode, operation)` inside the equivalent
/// of `__try/__except (EXCEPTION_EXECUTE_HANDLER)`: Ok when the pages are
/// resident and locked (the MDL is then locked and must be unlocked with
/// [`unlock_pages`]); Err(the exception code) when it raised, the MDL left
/// unlocked. A raised code that is not an error status (never expected)
/// becomes STATUS_UNSUCCESSFUL, so Err always means "not locked".
///
/// On x64 and ARM64 Windows the call runs in `safewsk_probe_and_lock_pages`,
/// a hand-written assembly function registered with `__C_specific_handler`
/// (`platform/seh.rs`); on the host, see `HostKernelTakeRaisedException`
/// above.
///
/// # Safety
/// `mdl` came from [`allocate_mdl`], is not locked and was not built for
/// non-paged pool; IRQL <= APC_LEVEL (the range may be pageable).
pub unsafe fn probe_and_lock(mdl: *mut MDL, operation: LockOperation) -> Result<(), NTSTATUS> {
    #[cfg(not(windows))]
    // SAFETY: per the caller; the raised exception (if any) is taken at once
    // on this thread, as `__except` would.
    let status = {
        // SAFETY: per the caller (a host kernel call: it records an exception
        // instead of raising it).
        unsafe { MmProbeAndLockPages(mdl, KERNEL_MODE, operation as u32) };
        // SAFETY: takes this thread's recorded exception, if any.
        unsafe { HostKernelTakeRaisedException() }
    };
    #[cfg(windows)]
    // SAFETY: per the caller; the trampoline catches every exception
    // MmProbeAndLockPages raises and returns its code.
    let status = unsafe { seh::safewsk_probe_and_lock_pages(mdl, KERNEL_MODE, operation as u32) };
    if status == STATUS_SUCCESS {
        Ok(())
    } else if nt_success(status) {
        Err(STATUS_UNSUCCESSFUL)
    } else {
        Err(status)
    }
}

/// `MmUnlockPages`.
///
/// # Safety
/// `mdl` was locked by a successful [`probe_and_lock`] and is not in use by
/// an IRP any more; IRQL <= DISPATCH_LEVEL.
pub unsafe fn unlock_pages(mdl: *mut MDL) {
    // SAFETY: the caller guarantees a locked, idle MDL.
    unsafe { MmUnlockPages(mdl) }
}

/// `IoFreeMdl`.
///
/// # Safety
/// `mdl` came from [`allocate_mdl`], is unlocked (never locked, or unlocked
/// with [`unlock_pages`]) and no IRP still uses it.
pub unsafe fn free_mdl(mdl: *mut MDL) {
    // SAFETY: the caller guarantees the MDL is ours, unlocked and unused.
    unsafe { IoFreeMdl(mdl) }
}

#[cfg(windows)]
mod seh;

// ---------------------------------------------------------------------------
// WSK registration (NETIO.SYS)
// ---------------------------------------------------------------------------

/// # Safety
/// PASSIVE_LEVEL; `npi` and `registration` stay valid until deregistration.
pub unsafe fn wsk_register(npi: *mut WSK_CLIENT_NPI, registration: *mut WSK_REGISTRATION) -> NTSTATUS {
    // SAFETY: forwarded caller guarantees.
    unsafe { WskRegister(npi, registration) }
}

/// # Safety
/// `registration` was registered; PASSIVE_LEVEL unless `wait_ms` is WSK_NO_WAIT.
pub unsafe fn wsk_capture(registration: *mut WSK_REGISTRATION, wait_ms: ULONG, npi: *mut WSK_PROVIDER_NPI) -> NTSTATUS {
    // SAFETY: forwarded caller guarantees.
    unsafe { WskCaptureProviderNPI(registration, wait_ms, npi) }
}

/// # Safety
/// One successful [`wsk_capture`] on `registration` is not yet released.
pub unsafe fn wsk_release(registration: *mut WSK_REGISTRATION) {
    // SAFETY: forwarded caller guarantees.
    unsafe { WskReleaseProviderNPI(registration) }
}

/// # Safety
/// PASSIVE_LEVEL; every capture released. Blocks until every socket is closed.
pub unsafe fn wsk_deregister(registration: *mut WSK_REGISTRATION) {
    // SAFETY: forwarded caller guarantees.
    unsafe { WskDeregister(registration) }
}

// ---------------------------------------------------------------------------
// Time (connect by name: one deadline across several steps)
// ---------------------------------------------------------------------------

extern "system" {
    // LARGE_INTEGER is returned in RAX / X0: an i64.
    fn KeQueryPerformanceCounter(PerformanceFrequency: *mut i64) -> i64;
}

/// A monotonic clock in milliseconds, from KeQueryPerformanceCounter
/// ("KeQueryPerformanceCounter function (wdm.h)", Microsoft Learn: any
/// IRQL). Not KeQueryInterruptTime: on x64 that is a wdm.h macro reading
/// KUSER_SHARED_DATA, not an export (MinGW's x64 ntoskrnl import library
/// has no such symbol), while KeQueryPerformanceCounter is exported by
/// HAL.dll (forwarded to ntoskrnl.exe since Windows 10 2004) on x64 and
/// ARM64, and by Wine 8's hal.dll. A few calls per SafeWskConnectByName.
pub fn now_ms() -> u64 {
    let mut frequency: i64 = 0;
    // SAFETY: `frequency` is writable; no other precondition, any IRQL.
    let count = unsafe { KeQueryPerformanceCounter(&mut frequency) };
    let (Ok(count), Ok(frequency)) = (u64::try_from(count), u64::try_from(frequency)) else {
        return 0;
    };
    if frequency == 0 {
        return 0;
    }
    // In 64 bits (no 128-bit division: on ARM64 that is a compiler_builtins
    // routine whose unwind data needs the C++ runtime, which a driver does
    // not link): whole seconds, then the remainder, which is below the
    // frequency (MHz-scale), so `* 1000` cannot overflow.
    let whole = (count / frequency).saturating_mul(1000);
    let part = (count % frequency).saturating_mul(1000) / frequency;
    whole.saturating_add(part)
}
