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
    fn KeInitializeEvent(Event: *mut KEVENT, Type: u32, State: BOOLEAN);
    fn KeSetEvent(Event: *mut KEVENT, Increment: LONG, Wait: BOOLEAN) -> LONG;
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
    fn ExAllocatePool2(Flags: u64, NumberOfBytes: SIZE_T, Tag: ULONG) -> PVOID;
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

#[cfg(windows)]
extern "system" {
    fn KeBugCheckEx(Code: ULONG, P1: ULONG_PTR, P2: ULONG_PTR, P3: ULONG_PTR, P4: ULONG_PTR) -> !;
}

/// Stops the system with bugcheck 0x52504E43 ("RPNC": Rust panic), as
/// wdk-panic does. Only reachable through a panic, which the library's lints
/// keep out of every exported path.
#[cfg(windows)]
pub fn bugcheck() -> ! {
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
    unsafe { KeBugCheckEx(0x5250_4E43, 0, 0, 0, 0) }
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

/// `IoCancelIrp`. Returns whether a cancel routine was called.
///
/// # Safety
/// `irp` is live (not yet freed); IRQL <= DISPATCH_LEVEL.
pub unsafe fn cancel_irp(irp: *mut IRP) -> bool {
    // SAFETY: the caller guarantees the IRP is not freed before this returns.
    unsafe { IoCancelIrp(irp) != 0 }
}

/// The WDK's inline `IoSetCompletionRoutine(Irp, Routine, Context, TRUE, TRUE,
/// TRUE)`, exactly as wdm.h writes it:
///
/// ```c
/// irpSp = IoGetNextIrpStackLocation(Irp);   // Tail.Overlay.CurrentStackLocation - 1
/// irpSp->CompletionRoutine = CompletionRoutine;
/// irpSp->Context = Context;
/// irpSp->Control = 0;
/// if (InvokeOnSuccess) irpSp->Control = SL_INVOKE_ON_SUCCESS;
/// if (InvokeOnError)   irpSp->Control |= SL_INVOKE_ON_ERROR;
/// if (InvokeOnCancel)  irpSp->Control |= SL_INVOKE_ON_CANCEL;
/// ```
///
/// WSK requires all three invoke flags for application-allocated IRPs.
///
/// # Safety
/// `irp` is a live IRP owned by the caller with at least one stack location
/// left below the current one (true of a fresh `IoAllocateIrp(1, ..)` IRP).
pub unsafe fn set_completion_routine(
    irp: *mut IRP,
    routine: unsafe extern "system" fn(PVOID, *mut IRP, PVOID) -> NTSTATUS,
    context: PVOID,
) {
    // SAFETY: the caller owns the live IRP; CurrentStackLocation of a fresh
    // IRP points one past its last stack location, so `- 1` is the (only)
    // next location and lies inside the IRP's allocation.
    unsafe {
        let next = (*irp).Tail.CurrentStackLocation.wrapping_sub(1);
        (*next).CompletionRoutine = Some(routine);
        (*next).Context = context;
        (*next).Control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;
    }
}

/// Reads `Irp->IoStatus` (Status, Information).
///
/// # Safety
/// `irp` is live and its completion routine has run.
pub unsafe fn irp_result(irp: *const IRP) -> (NTSTATUS, ULONG_PTR) {
    // SAFETY: the caller guarantees the IRP is live and completed, so nobody
    // writes IoStatus concurrently.
    unsafe { ((*irp).IoStatus.Status, (*irp).IoStatus.Information) }
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
// Timers (KTIMER + KDPC)
// ---------------------------------------------------------------------------

/// `KeInitializeTimer` and `KeInitializeDpc(dpc, routine, context)`.
///
/// # Safety
/// `timer` and `dpc` are resident storage that outlives every use of them.
pub unsafe fn init_timer(timer: *mut KTIMER, dpc: *mut KDPC, routine: PKDEFERRED_ROUTINE, context: PVOID) {
    // SAFETY: the caller provides valid resident storage.
    unsafe {
        KeInitializeTimer(timer);
        KeInitializeDpc(dpc, routine, context);
    }
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

/// Zeroed non-paged pool tagged [`POOL_TAG`], or null.
///
/// # Safety
/// IRQL <= DISPATCH_LEVEL.
pub unsafe fn pool_alloc(size: usize) -> *mut c_void {
    // SAFETY: the caller is at IRQL <= DISPATCH_LEVEL; non-paged pool.
    unsafe { ExAllocatePool2(POOL_FLAG_NON_PAGED, size, POOL_TAG) }
}

/// # Safety
/// `p` came from [`pool_alloc`] and is not used again.
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
    let status = unsafe {
        MmProbeAndLockPages(mdl, KERNEL_MODE, operation as u32);
        HostKernelTakeRaisedException()
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
