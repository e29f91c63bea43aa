//! IRPs, MDLs and pool: IoAllocateIrp, IoFreeIrp, IoCancelIrp, the
//! IoCompleteRequest walk, IoAllocateMdl, MmBuildMdlForNonPagedPool,
//! IoFreeMdl, ExAllocatePool2, ExAllocatePoolWithTag, ExFreePoolWithTag.
//!
//! Each live IRP has an owner: the driver that allocated it, or the provider
//! between taking it (WSK sets up the next stack location "on behalf of the
//! application") and completing it. Checks, as Driver Verifier makes them:
//! an IRP freed while the provider owns it, freed twice, cancelled or
//! completed after free, completed twice, a WSK IRP without a completion
//! routine that is invoked on success, error and cancel, or a completion
//! routine that lets a driver-allocated IRP reach the I/O manager (it must
//! return STATUS_MORE_PROCESSING_REQUIRED).

use std::alloc::Layout;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::check::{add_live, count_allocation, inject_failure, quarantine, violation, Kind, Site};
use crate::irql;
use crate::nt::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Owner {
    Driver,
    Provider,
}

struct IrpRec {
    owner: Owner,
    layout: Layout,
    /// Completed since it was allocated or last reinitialized: issuing it
    /// again needs IoReuseIrp first.
    completed: bool,
}

static IRPS: Mutex<Option<HashMap<usize, IrpRec>>> = Mutex::new(None);

fn irps<R>(f: impl FnOnce(&mut HashMap<usize, IrpRec>) -> R) -> R {
    let mut g = IRPS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

#[no_mangle]
pub unsafe extern "system" fn IoAllocateIrp(stack_size: i8, _charge_quota: u8) -> PVOID {
    if irql::current() > DISPATCH_LEVEL {
        violation("IoAllocateIrp above DISPATCH_LEVEL");
    }
    if stack_size < 1 || inject_failure(Site::Irp) {
        return std::ptr::null_mut();
    }
    let size = IRP_SIZE + stack_size as usize * STACK_SIZE;
    let Ok(layout) = Layout::from_size_align(size, 16) else { return std::ptr::null_mut() };
    // SAFETY: non-zero size.
    let irp = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<std::ffi::c_void>();
    if irp.is_null() {
        return irp;
    }
    // SAFETY: a fresh, writable, zeroed block of `size` bytes.
    unsafe { initialize_irp(irp, size, stack_size) };
    irps(|m| m.insert(irp as usize, IrpRec { owner: Owner::Driver, layout, completed: false }));
    add_live(Kind::Irp, 1);
    count_allocation(Site::Irp, size);
    irp
}

/// IoInitializeIrp on a zeroed block: the current location is one past the
/// last stack location.
///
/// # Safety
/// `irp` is a writable, zeroed block of `size` >= IRP_SIZE + `stack_size` *
/// STACK_SIZE bytes.
unsafe fn initialize_irp(irp: PVOID, size: usize, stack_size: i8) {
    // SAFETY: `irp` is a writable block of `size` >= IRP_SIZE bytes;
    // Type is a field of the IRP header.
    unsafe { wr(irp, IRP_TYPE, IO_TYPE_IRP) };
    // SAFETY: as above; Size is in the IRP header.
    unsafe { wr(irp, IRP_SIZE_FIELD, size as u16) };
    // SAFETY: as above; StackCount is in the IRP header.
    unsafe { wr(irp, IRP_STACK_COUNT, stack_size) };
    // SAFETY: as above; CurrentLocation is in the IRP header.
    unsafe { wr(irp, IRP_CURRENT_LOCATION, stack_size + 1) };
    // One past the end of the block, which `wrapping_add` computes without
    // a pointer into the block (the value is only stored, never read through).
    let past_last_location = irp.cast::<u8>().wrapping_add(size) as usize;
    // SAFETY: as above; CurrentStackLocation is in the IRP header.
    unsafe { wr(irp, IRP_CURRENT_STACK_LOCATION, past_last_location) };
}

/// IoReuseIrp(Irp, Iostatus): reinitializes an IRP the driver allocated, for
/// its next use ("IoReuseIrp", Microsoft Learn: the IRP "must have been
/// allocated by IoAllocateIrp" [...] "the driver must not call IoReuseIrp on
/// an IRP that is still pending"; IRQL <= DISPATCH_LEVEL). Clears the whole
/// IRP (Cancel, CancelRoutine, PendingReturned, the stack locations) as
/// IoInitializeIrp does, then sets IoStatus.Status.
#[no_mangle]
pub unsafe extern "system" fn IoReuseIrp(irp: PVOID, status: NTSTATUS) {
    if irql::current() > DISPATCH_LEVEL {
        violation("IoReuseIrp above DISPATCH_LEVEL");
    }
    let size = irps(|m| match m.get_mut(&(irp as usize)) {
        None => Err(format!("IoReuseIrp: IRP {irp:p} is not live (freed, or not from IoAllocateIrp)")),
        Some(r) if r.owner == Owner::Provider => {
            Err(format!("IoReuseIrp: IRP {irp:p} is still pending in the provider"))
        }
        Some(r) => {
            r.completed = false;
            Ok(r.layout.size())
        }
    });
    let size = match size {
        Ok(size) => size,
        Err(msg) => return violation(msg),
    };
    // SAFETY: a live IRP the driver owns (checked in the table); its
    // CancelRoutine is a field of it.
    if unsafe { cancel_routine(irp) }.load(Ordering::SeqCst) != 0 {
        violation(format!("IoReuseIrp: IRP {irp:p} still has a cancel routine"));
    }
    // SAFETY: as above; StackCount is in the header.
    let stack_size: i8 = unsafe { rd(irp, IRP_STACK_COUNT) };
    // SAFETY: the live IRP is a block of `size` bytes that only its owner
    // (the caller) touches now.
    unsafe { std::ptr::write_bytes(irp.cast::<u8>(), 0, size) };
    // SAFETY: zeroed just above, `size` bytes allocated for `stack_size`
    // locations by IoAllocateIrp.
    unsafe { initialize_irp(irp, size, stack_size) };
    // SAFETY: as above; IoStatus.Status is in the header.
    unsafe { wr(irp, IRP_IOSTATUS_STATUS, status) };
}

#[no_mangle]
pub unsafe extern "system" fn IoFreeIrp(irp: PVOID) {
    let rec = irps(|m| match m.get(&(irp as usize)).map(|r| r.owner) {
        None => Err("IoFreeIrp: not a live IRP (freed twice, or never allocated)"),
        Some(Owner::Provider) => Err("IoFreeIrp: the IRP is still pending in the provider (freed before completion)"),
        Some(Owner::Driver) => Ok(m.remove(&(irp as usize))),
    });
    match rec {
        Err(msg) => violation(format!("{msg}: {irp:p}")),
        Ok(Some(rec)) => {
            add_live(Kind::Irp, -1);
            quarantine(irp.cast(), rec.layout);
        }
        Ok(None) => {}
    }
}

/// IoCancelIrp: sets Irp->Cancel, takes the cancel routine and calls it.
/// (The cancel spin lock is not modelled: the host provider's cancel routine
/// only signals its worker, which is the only code that completes the IRP.)
#[no_mangle]
pub unsafe extern "system" fn IoCancelIrp(irp: PVOID) -> u8 {
    if irql::current() > DISPATCH_LEVEL {
        violation("IoCancelIrp above DISPATCH_LEVEL");
    }
    if irps(|m| !m.contains_key(&(irp as usize))) {
        violation(format!("IoCancelIrp: not a live IRP (used after free?): {irp:p}"));
        return 0;
    }
    // SAFETY: the IRP is live (checked just above), which is cancel_flag's
    // only requirement.
    unsafe { cancel_flag(irp) }.store(1, Ordering::SeqCst);
    // SAFETY: the IRP is live (checked); CancelRoutine is an 8-byte aligned
    // pointer field of it.
    let routine = unsafe { cancel_routine(irp) }.swap(0, Ordering::SeqCst);
    if routine == 0 {
        return 0;
    }
    // SAFETY: a non-zero CancelRoutine was stored by the provider as a CancelRoutine.
    let routine: CancelRoutine = unsafe { std::mem::transmute(routine) };
    // SAFETY: the provider's cancel routine, called as IoCancelIrp does, at
    // DISPATCH_LEVEL, with the live IRP.
    irql::with_irql(DISPATCH_LEVEL, || unsafe { routine(std::ptr::null_mut(), irp) });
    1
}

/// `Irp->Cancel`, which IoCancelIrp sets while the provider and the
/// completion path read it: accessed atomically (Windows sets it under the
/// cancel spin lock).
///
/// # Safety
/// `irp` is a live IRP.
unsafe fn cancel_flag<'a>(irp: PVOID) -> &'a std::sync::atomic::AtomicU8 {
    // SAFETY: IRP_CANCEL is inside the live IRP (contract).
    let cancel = unsafe { irp.cast::<u8>().add(IRP_CANCEL) };
    // SAFETY: Cancel is a byte of the live IRP (alignment 1), and every
    // concurrent access to it goes through this atomic view.
    unsafe { std::sync::atomic::AtomicU8::from_ptr(cancel) }
}

/// `Irp->CancelRoutine`, swapped by IoCancelIrp and IoSetCancelRoutine.
///
/// # Safety
/// `irp` is a live IRP.
unsafe fn cancel_routine<'a>(irp: PVOID) -> &'a AtomicUsize {
    // SAFETY: IRP_CANCEL_ROUTINE is inside the live IRP (contract).
    let field = unsafe { irp.cast::<u8>().add(IRP_CANCEL_ROUTINE) };
    // SAFETY: CancelRoutine is an 8-byte aligned pointer of the live IRP (the
    // IRP is 16-byte aligned, the offset 0x68), and every concurrent access
    // to it goes through this atomic view.
    unsafe { AtomicUsize::from_ptr(field.cast()) }
}

/// Provider side: `IoSetCancelRoutine`. Returns the previous routine.
pub(crate) unsafe fn set_cancel_routine(irp: PVOID, routine: Option<CancelRoutine>) -> usize {
    let v = routine.map_or(0, |r| r as usize);
    // SAFETY: provider-owned live IRP.
    unsafe { cancel_routine(irp).swap(v, Ordering::SeqCst) }
}

/// Whether IoCancelIrp has been called on the IRP.
pub(crate) unsafe fn is_cancelled(irp: PVOID) -> bool {
    // SAFETY: provider-owned live IRP.
    unsafe { cancel_flag(irp).load(Ordering::SeqCst) != 0 }
}

/// Provider side: takes an IRP handed to a WSK function. Checks the WSK rules
/// for application IRPs, then does what IoCallDriver would: moves to the next
/// stack location. Returns false (after recording why) if the IRP is unusable.
pub(crate) unsafe fn take(irp: PVOID, who: &str) -> bool {
    let ok = irps(|m| match m.get_mut(&(irp as usize)) {
        None => Err(format!("{who}: IRP {irp:p} is not live (freed, or never allocated)")),
        Some(r) if r.owner == Owner::Provider => Err(format!("{who}: IRP {irp:p} is already pending in the provider")),
        Some(r) if r.completed => Err(format!(
            "{who}: IRP {irp:p} was completed before and issued again without IoReuseIrp (its Cancel flag, \
             status and stack locations are stale)"
        )),
        Some(r) => {
            r.owner = Owner::Provider;
            Ok(())
        }
    });
    if let Err(msg) = ok {
        violation(msg);
        return false;
    }
    // SAFETY: the IRP is live (checked in the table), now owned by the
    // provider; CurrentLocation is in its header.
    let location: i8 = unsafe { rd(irp, IRP_CURRENT_LOCATION) };
    if location <= 1 {
        violation(format!("{who}: IRP {irp:p} has no stack location left for the WSK subsystem"));
        irps(|m| m.get_mut(&(irp as usize)).map(|r| r.owner = Owner::Driver));
        return false;
    }
    // SAFETY: as above; CurrentStackLocation is in the header.
    let next = unsafe { rd::<usize>(irp, IRP_CURRENT_STACK_LOCATION) } - STACK_SIZE;
    // SAFETY: location > 1, so the next stack location is one of the IRP's
    // own (IoAllocateIrp allocated StackCount of them); Control is in it.
    let control: u8 = unsafe { rd(next as PVOID, STACK_CONTROL) };
    // SAFETY: as for Control; CompletionRoutine is in the same stack location.
    let routine: usize = unsafe { rd(next as PVOID, STACK_COMPLETION_ROUTINE) };
    let all = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;
    if routine == 0 || control & all != all {
        violation(format!(
            "{who}: IRP {irp:p} needs an IoCompletion routine invoked on success, error and cancel \
             (Using IRPs with Winsock Kernel Functions)"
        ));
    }
    // IoSetNextIrpStackLocation.
    // SAFETY: the live, provider-owned IRP; CurrentLocation is in its header.
    unsafe { wr(irp, IRP_CURRENT_LOCATION, location - 1) };
    // SAFETY: as above; CurrentStackLocation is in the header.
    unsafe { wr(irp, IRP_CURRENT_STACK_LOCATION, next) };
    // SAFETY: as above; IoStatus.Status is in the header.
    unsafe { wr(irp, IRP_IOSTATUS_STATUS, STATUS_PENDING) };
    true
}

/// Provider side: IoMarkIrpPending on the current stack location.
pub(crate) unsafe fn mark_pending(irp: PVOID) {
    // SAFETY: a live IRP the provider owns (the caller took it);
    // CurrentStackLocation is in its header.
    let cur = unsafe { rd::<usize>(irp, IRP_CURRENT_STACK_LOCATION) } as PVOID;
    // SAFETY: `take` moved the IRP to a stack location of its own, so `cur`
    // is inside the IRP; Control is in that location.
    let c: u8 = unsafe { rd(cur, STACK_CONTROL) };
    // SAFETY: as for the read; the IRP is writable.
    unsafe { wr(cur, STACK_CONTROL, c | SL_PENDING_RETURNED) };
}

/// IofCompleteRequest (IoCompleteRequest) called by a driver on an IRP it
/// owns that no provider has: the caller has moved to the stack location
/// whose completion routine it set (IoSetNextIrpStackLocation) and filled in
/// IoStatus. Walks the stack as for a provider's completion.
#[no_mangle]
pub unsafe extern "system" fn IofCompleteRequest(irp: PVOID, _boost: i8) {
    if irql::current() > DISPATCH_LEVEL {
        violation("IoCompleteRequest above DISPATCH_LEVEL");
    }
    let ok = irps(|m| match m.get_mut(&(irp as usize)) {
        None => Err(format!("IoCompleteRequest: IRP {irp:p} is not live")),
        Some(r) if r.owner == Owner::Provider => {
            Err(format!("IoCompleteRequest: IRP {irp:p} is pending in the provider, which must complete it"))
        }
        Some(r) => {
            r.owner = Owner::Provider;
            Ok(())
        }
    });
    if let Err(msg) = ok {
        violation(msg);
        return;
    }
    // SAFETY: a live IRP (checked in the table) the caller owns;
    // CurrentLocation is in its header.
    let location = unsafe { rd::<i8>(irp, IRP_CURRENT_LOCATION) };
    // SAFETY: as above; StackCount is in the header.
    let count = unsafe { rd::<i8>(irp, IRP_STACK_COUNT) };
    // SAFETY: as above; IoStatus.Status is in the header.
    let status = unsafe { rd::<i32>(irp, IRP_IOSTATUS_STATUS) };
    // SAFETY: as above; IoStatus.Information is in the header.
    let info = unsafe { rd::<usize>(irp, IRP_IOSTATUS_INFORMATION) };
    if location > count {
        violation(format!(
            "IoCompleteRequest: IRP {irp:p} has no current stack location (IoSetNextIrpStackLocation missing): \
             MULTIPLE_IRP_COMPLETE_REQUESTS on Windows"
        ));
        irps(|m| m.get_mut(&(irp as usize)).map(|r| r.owner = Owner::Driver));
        return;
    }
    // SAFETY: as above; `complete` walks the stack locations.
    unsafe { complete(irp, status, info) };
}

/// Provider side: IoCompleteRequest. Sets IoStatus and walks the stack
/// locations upwards, calling each completion routine whose Control bits
/// match, exactly as the I/O manager does. Does not touch the IRP after a
/// routine returns STATUS_MORE_PROCESSING_REQUIRED (it may have been freed).
pub(crate) unsafe fn complete(irp: PVOID, status: NTSTATUS, information: usize) {
    let ok = irps(|m| match m.get_mut(&(irp as usize)) {
        None => Err(format!("IoCompleteRequest: IRP {irp:p} is not live")),
        Some(r) if r.owner != Owner::Provider => Err(format!("IoCompleteRequest: IRP {irp:p} completed twice")),
        Some(r) => {
            // From here the driver owns it again: its completion routine may free it.
            r.owner = Owner::Driver;
            r.completed = true;
            Ok(())
        }
    });
    if let Err(msg) = ok {
        violation(msg);
        return;
    }
    // Every access to the IRP below happens while it is live: before a
    // completion routine is called, or after one returned something other
    // than STATUS_MORE_PROCESSING_REQUIRED and the IRP is still in the table.
    // SAFETY: the live IRP (checked in the table), cancel_routine's only
    // requirement.
    if unsafe { cancel_routine(irp) }.load(Ordering::SeqCst) != 0 {
        violation(format!("IoCompleteRequest: IRP {irp:p} completed with a cancel routine still set"));
    }
    // SAFETY: the live IRP; IoStatus.Status is in its header.
    unsafe { wr(irp, IRP_IOSTATUS_STATUS, status) };
    // SAFETY: the live IRP; IoStatus.Information is in its header.
    unsafe { wr(irp, IRP_IOSTATUS_INFORMATION, information) };
    // SAFETY: the live IRP; StackCount is in its header.
    let stack_count: i8 = unsafe { rd(irp, IRP_STACK_COUNT) };
    loop {
        // SAFETY: the live IRP; CurrentLocation is in its header.
        let location: i8 = unsafe { rd(irp, IRP_CURRENT_LOCATION) };
        if location > stack_count {
            break;
        }
        // SAFETY: the live IRP; CurrentStackLocation is in its header.
        let stack = unsafe { rd::<usize>(irp, IRP_CURRENT_STACK_LOCATION) } as PVOID;
        // SAFETY: the live IRP; CurrentLocation is in its header.
        unsafe { wr(irp, IRP_CURRENT_LOCATION, location + 1) };
        // SAFETY: the live IRP; CurrentStackLocation is in its header.
        unsafe { wr(irp, IRP_CURRENT_STACK_LOCATION, stack as usize + STACK_SIZE) };
        // SAFETY: location <= StackCount, so `stack` is one of the IRP's own
        // stack locations; Control is in it.
        let control: u8 = unsafe { rd(stack, STACK_CONTROL) };
        // SAFETY: as for Control; CompletionRoutine is in the same location.
        let routine: usize = unsafe { rd(stack, STACK_COMPLETION_ROUTINE) };
        // SAFETY: as for Control; Context is in the same location.
        let context: PVOID = unsafe { rd(stack, STACK_CONTEXT) };
        // SAFETY: the live IRP; PendingReturned is in its header.
        unsafe { wr(irp, IRP_PENDING_RETURNED, control & SL_PENDING_RETURNED) };
        // SAFETY: `stack` is a whole IO_STACK_LOCATION (STACK_SIZE bytes)
        // inside the live IRP, which nobody else writes during completion.
        unsafe { std::ptr::write_bytes(stack.cast::<u8>(), 0, STACK_SIZE) };
        // SAFETY: the live IRP (cancel_flag's only requirement).
        let cancelled = unsafe { cancel_flag(irp) }.load(Ordering::SeqCst) != 0;
        let invoke = (status >= 0 && control & SL_INVOKE_ON_SUCCESS != 0)
            || (status < 0 && control & SL_INVOKE_ON_ERROR != 0)
            || (cancelled && control & SL_INVOKE_ON_CANCEL != 0);
        if routine != 0 && invoke {
            let host_wrapper = crate::image::is_unload_safe_completion(routine);
            // SAFETY: a non-zero CompletionRoutine was stored by
            // IoSetCompletionRoutine(Ex) from a PIO_COMPLETION_ROUTINE.
            let routine: CompletionRoutine = unsafe { std::mem::transmute(routine) };
            // SAFETY: the driver's completion routine, called as the I/O
            // manager calls it: no device object, the IRP being completed
            // (live until the routine returns) and the context it registered.
            let call = || unsafe { routine(std::ptr::null_mut(), irp, context) };
            let result = if host_wrapper { call() } else { crate::image::call_driver("IoCompletion routine", call) };
            if result == STATUS_MORE_PROCESSING_REQUIRED {
                return;
            }
            if irps(|m| !m.contains_key(&(irp as usize))) {
                violation(format!(
                    "completion routine freed IRP {irp:p} but did not return STATUS_MORE_PROCESSING_REQUIRED"
                ));
                return;
            }
        }
    }
    violation(format!(
        "IRP {irp:p} allocated by the driver reached the I/O manager: its completion routine \
         must return STATUS_MORE_PROCESSING_REQUIRED"
    ));
}

// ---------------------------------------------------------------------------
// Memory: what kind of memory a range is, paging, page locks
// ---------------------------------------------------------------------------
//
// Windows is allowed to page out paged pool (and a waiting thread's kernel
// stack) whenever nothing holds it resident, and to trade the physical pages
// of a kernel stack. The host models the part a driver can get wrong:
// - paged pool blocks are page-aligned `mmap` mappings that `page_out` makes
//   inaccessible (PROT_NONE), as if paged out; MmProbeAndLockPages pages them
//   back in and keeps them resident until MmUnlockPages;
// - MmBuildMdlForNonPagedPool over paged pool or over the calling thread's
//   stack is a contract violation ("MmBuildMdlForNonPagedPool may not be used
//   with MDLs describing buffers allocated on a kernel stack", and its MDL
//   "must describe a buffer in nonpaged system memory or in memory that is
//   locked down": MmBuildMdlForNonPagedPool, Microsoft Learn);
// - memory that is neither pool nor the calling thread's stack (the test's
//   Rust heap, statics) stands for memory the host cannot classify: it is
//   treated as pageable by the IRQL checks and accepted by
//   MmBuildMdlForNonPagedPool.

/// What a virtual address range is, as far as the host kernel knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Region {
    NonPagedPool,
    PagedPool,
    /// The calling thread's stack (a kernel stack on Windows).
    Stack,
    /// Anything else (Rust heap, statics): unknown to the host kernel.
    Other,
}

enum PoolMem {
    /// Non-paged pool: a Rust heap block, quarantined when freed.
    NonPaged(Layout),
    /// Paged pool: its own page-aligned mapping of `mapped` bytes, so that
    /// it can be "paged out"; unmapped when freed.
    Paged { mapped: usize },
}

struct PoolRec {
    size: usize,
    tag: u32,
    mem: PoolMem,
    allocator: PoolAllocator,
}

struct MdlRec {
    /// None: caller storage initialized with MmInitializeMdl (a macro, so
    /// the host learns of the MDL when it is first used), not IoAllocateMdl.
    layout: Option<Layout>,
    /// First page and page count locked by MmProbeAndLockPages.
    locked: Option<(usize, usize)>,
}

#[derive(Default)]
struct Mem {
    /// Pool blocks by start address.
    pool: std::collections::BTreeMap<usize, PoolRec>,
    /// Pages of paged pool that are paged out (PROT_NONE).
    paged_out: std::collections::HashSet<usize>,
    /// Page -> number of MDLs that hold it locked.
    locks: HashMap<usize, usize>,
}

static MEM: Mutex<Option<Mem>> = Mutex::new(None);

fn mem<R>(f: impl FnOnce(&mut Mem) -> R) -> R {
    let mut g = MEM.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Mem::default))
}

static MDLS: Mutex<Option<HashMap<usize, MdlRec>>> = Mutex::new(None);

fn mdls<R>(f: impl FnOnce(&mut HashMap<usize, MdlRec>) -> R) -> R {
    let mut g = MDLS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Exception code the injected probe failure raises (Session::fail_probe).
static PROBE_EXCEPTION: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(STATUS_ACCESS_VIOLATION);
/// Exceptions raised by MmProbeAndLockPages and not yet taken by
/// HostKernelTakeRaisedException (an unhandled kernel exception on Windows).
static UNHANDLED: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// The exception the last MmProbeAndLockPages on this thread raised.
    static RAISED: std::cell::Cell<NTSTATUS> = const { std::cell::Cell::new(STATUS_SUCCESS) };
    /// This thread's stack range, found once with pthread_getattr_np.
    static STACK: std::cell::Cell<Option<(usize, usize)>> = const { std::cell::Cell::new(None) };
}

pub(crate) fn set_probe_exception(code: NTSTATUS) {
    PROBE_EXCEPTION.store(code, Ordering::SeqCst);
}

pub(crate) fn unhandled_exceptions() -> usize {
    UNHANDLED.load(Ordering::SeqCst)
}

/// Per-session reset: no pending exception, the default injected code, and
/// no page locks left over from a test that leaked them (already reported).
pub(crate) fn reset_memory() {
    UNHANDLED.store(0, Ordering::SeqCst);
    set_probe_exception(STATUS_ACCESS_VIOLATION);
    RAISED.with(|r| r.set(STATUS_SUCCESS));
    mem(|m| m.locks.clear());
}

/// The calling thread's stack as (low, high).
fn thread_stack() -> Option<(usize, usize)> {
    if let Some(range) = STACK.with(|s| s.get()) {
        return Some(range);
    }
    // SAFETY: pthread_attr_t is a C struct of plain data, for which all
    // zeroes is a valid (if uninitialized-for-pthread) value.
    let mut attr: libc::pthread_attr_t = unsafe { std::mem::zeroed() };
    // SAFETY: pthread_self has no preconditions.
    let this_thread = unsafe { libc::pthread_self() };
    // SAFETY: `attr` is writable; pthread_getattr_np initializes it for the
    // calling thread (which is running, so its id is valid).
    if unsafe { libc::pthread_getattr_np(this_thread, &mut attr) } != 0 {
        return None;
    }
    let mut addr: *mut libc::c_void = std::ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `attr` was initialized by pthread_getattr_np; `addr` and
    // `size` are writable locals.
    let rc = unsafe { libc::pthread_attr_getstack(&attr, &mut addr, &mut size) };
    // SAFETY: `attr` was initialized by pthread_getattr_np and is destroyed
    // once, here, after its last use.
    unsafe { libc::pthread_attr_destroy(&mut attr) };
    if rc != 0 {
        return None;
    }
    let range = (addr as usize, addr as usize + size);
    STACK.with(|s| s.set(Some(range)));
    Some(range)
}

fn pages_of(va: usize, len: usize) -> (usize, usize) {
    let first = va & !(PAGE_SIZE - 1);
    let end = (va + len.max(1)).div_ceil(PAGE_SIZE) * PAGE_SIZE;
    (first, (end - first) / PAGE_SIZE)
}

/// Whether `ptr..ptr+len` lies in a paged pool block (memory a provider
/// must not write at DISPATCH_LEVEL).
pub(crate) fn is_paged_pool(ptr: *const u8, len: usize) -> bool {
    mem(|m| classify(m, ptr as usize, len) == Region::PagedPool)
}

/// Classifies `va..va+len` (by its first byte; a range that straddles pool
/// blocks is reported by the pool check of the caller).
fn classify(m: &Mem, va: usize, len: usize) -> Region {
    if let Some((&start, rec)) = m.pool.range(..=va).next_back() {
        // A paged block owns its whole pages (its own mapping).
        let extent = match rec.mem {
            PoolMem::NonPaged(_) => rec.size,
            PoolMem::Paged { mapped } => mapped,
        };
        if va < start + extent.max(1) && va + len <= start + extent {
            return match rec.mem {
                PoolMem::NonPaged(_) => Region::NonPagedPool,
                PoolMem::Paged { .. } => Region::PagedPool,
            };
        }
    }
    if let Some((lo, hi)) = thread_stack() {
        if va < hi && va + len > lo {
            return Region::Stack;
        }
    }
    Region::Other
}

/// Makes the pages of `ptr..ptr+len` that belong to paged pool blocks
/// inaccessible (PROT_NONE), as if the memory manager had paged them out.
/// Pages locked by MmProbeAndLockPages stay resident, as on Windows. Other
/// memory (non-paged pool, stacks, the Rust heap) is left alone. Returns how
/// many pages were paged out.
///
/// A later access is a page fault, handled like Windows handles one: at
/// IRQL <= APC_LEVEL the page is paged back in and the access completes; at
/// DISPATCH_LEVEL or above (where Windows bugchecks with
/// IRQL_NOT_LESS_OR_EQUAL) it is recorded as a contract violation, then paged
/// in so that the test can go on and report it. (A SIGSEGV handler, chained
/// to the one it replaces, installed by the first call.) A WSK_BUF that
/// describes paged-out memory is reported when the provider takes it.
///
/// Use it to check that a driver locks paged memory before handing it to
/// WSK, and that nothing touches pageable memory at DISPATCH_LEVEL.
pub fn page_out(ptr: *const u8, len: usize) -> usize {
    install_page_fault_handler();
    let (first, count) = pages_of(ptr as usize, len);
    mem(|m| {
        let mut n = 0;
        for page in (0..count).map(|i| first + i * PAGE_SIZE) {
            let paged = matches!(classify(m, page, PAGE_SIZE), Region::PagedPool);
            if !paged || m.locks.get(&page).is_some_and(|c| *c > 0) || m.paged_out.contains(&page) {
                continue;
            }
            // SAFETY: a whole page of a paged pool mapping this module made.
            if unsafe { libc::mprotect(page as *mut libc::c_void, PAGE_SIZE, libc::PROT_NONE) } == 0 {
                m.paged_out.insert(page);
                n += 1;
            }
        }
        n
    })
}

/// The SIGSEGV disposition in force before [`install_page_fault_handler`].
static PREVIOUS_SEGV: std::sync::OnceLock<libc::sigaction> = std::sync::OnceLock::new();

fn install_page_fault_handler() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        // The old disposition is published for chaining before the new
        // handler is installed. SA_ONSTACK keeps Rust's stack-overflow report
        // (run on the alternate stack) working.
        // SAFETY: struct sigaction is plain C data; all zeroes is valid.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a query only (no new action); `old` is a writable sigaction.
        unsafe { libc::sigaction(libc::SIGSEGV, std::ptr::null(), &mut old) };
        let _ = PREVIOUS_SEGV.set(old);
        // SAFETY: as for `old`.
        let mut new: libc::sigaction = unsafe { std::mem::zeroed() };
        new.sa_sigaction = on_page_fault as *const () as libc::sighandler_t;
        new.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
        // SAFETY: `sa_mask` is a writable sigset_t inside `new`.
        unsafe { libc::sigemptyset(&mut new.sa_mask) };
        // SAFETY: `new` is fully initialized; on_page_fault has the
        // SA_SIGINFO signature and only touches what it documents as
        // signal-safe enough for the host (see its comment).
        unsafe { libc::sigaction(libc::SIGSEGV, &new, std::ptr::null_mut()) };
    });
}

/// SIGSEGV: a fault on a page that `page_out` paged out is a page fault the
/// host kernel resolves (and reports above APC_LEVEL); anything else goes to
/// the previous handler (Rust's stack-overflow check), or kills the process.
/// It runs synchronously on the faulting thread, which never holds the
/// memory lock while touching pool memory.
extern "C" fn on_page_fault(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler,
    // alive for the duration of the handler.
    let info_ref = unsafe { &*info };
    // SAFETY: for SIGSEGV the kernel fills si_addr, the union member read.
    let addr = unsafe { info_ref.si_addr() } as usize;
    let page = addr & !(PAGE_SIZE - 1);
    let resolved = {
        let mut g = MEM.lock().unwrap_or_else(|e| e.into_inner());
        g.as_mut().is_some_and(|m| {
            m.paged_out.remove(&page)
                // SAFETY: a page of a live paged pool mapping, paged out by page_out.
                && unsafe { libc::mprotect(page as *mut libc::c_void, PAGE_SIZE, libc::PROT_READ | libc::PROT_WRITE) } == 0
        })
    };
    if resolved {
        let irql = irql::current();
        if irql > APC_LEVEL {
            violation(format!(
                "page fault on paged-out pageable memory at {addr:#x} at IRQL {irql} (IRQL_NOT_LESS_OR_EQUAL): \
                 pageable memory may only be touched at IRQL <= APC_LEVEL"
            ));
        }
        return;
    }
    match PREVIOUS_SEGV.get() {
        Some(prev) if prev.sa_flags & libc::SA_SIGINFO != 0 && prev.sa_sigaction > libc::SIG_IGN => {
            // SAFETY: the previous SA_SIGINFO handler, called as the kernel would.
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                unsafe { std::mem::transmute(prev.sa_sigaction) };
            f(sig, info, ctx);
        }
        Some(prev) if prev.sa_sigaction > libc::SIG_IGN => {
            // SAFETY: the previous plain handler.
            let f: extern "C" fn(libc::c_int) = unsafe { std::mem::transmute(prev.sa_sigaction) };
            f(sig);
        }
        _ => {
            // Back to the default action; returning re-executes the
            // faulting access, which then kills the process as it would have.
            // SAFETY: struct sigaction is plain C data; all zeroes is valid.
            let mut dfl: libc::sigaction = unsafe { std::mem::zeroed() };
            dfl.sa_sigaction = libc::SIG_DFL;
            // SAFETY: `dfl` is a fully initialized sigaction naming SIG_DFL.
            unsafe { libc::sigaction(libc::SIGSEGV, &dfl, std::ptr::null_mut()) };
        }
    }
}

/// Pages `ptr..ptr+len` back in (undoes [`page_out`]). Returns how many
/// pages were paged in.
pub fn page_in(ptr: *const u8, len: usize) -> usize {
    let (first, count) = pages_of(ptr as usize, len);
    mem(|m| page_in_locked(m, first, count))
}

fn page_in_locked(m: &mut Mem, first: usize, count: usize) -> usize {
    let mut n = 0;
    for page in (0..count).map(|i| first + i * PAGE_SIZE) {
        if m.paged_out.remove(&page) {
            // SAFETY: a page of a live paged pool mapping, paged out by page_out.
            unsafe { libc::mprotect(page as *mut libc::c_void, PAGE_SIZE, libc::PROT_READ | libc::PROT_WRITE) };
            n += 1;
        }
    }
    n
}

/// Whether any page of the range is paged out.
fn any_paged_out(m: &Mem, va: usize, len: usize) -> bool {
    let (first, count) = pages_of(va, len);
    !m.paged_out.is_empty() && (0..count).any(|i| m.paged_out.contains(&(first + i * PAGE_SIZE)))
}

/// Whether every page of the range can be read (and written, for `write`),
/// checked without faulting through process_vm_readv/writev on ourselves.
/// None if those calls are unavailable (then the range is assumed valid).
fn accessible(va: usize, len: usize, write: bool) -> Option<bool> {
    let (first, count) = pages_of(va, len);
    for i in 0..count {
        let at = (first + i * PAGE_SIZE).max(va);
        let mut byte = 0u8;
        let local = libc::iovec { iov_base: (&mut byte as *mut u8).cast(), iov_len: 1 };
        let remote = libc::iovec { iov_base: at as *mut libc::c_void, iov_len: 1 };
        // SAFETY: getpid has no preconditions.
        let pid = unsafe { libc::getpid() };
        // SAFETY: reads one byte of our own address space into `byte`;
        // the kernel reports EFAULT instead of faulting.
        let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
        if n != 1 {
            let e = std::io::Error::last_os_error().raw_os_error();
            return if e == Some(libc::EFAULT) { Some(false) } else { None };
        }
        if write {
            // Writes back the byte just read: the caller owns the buffer
            // for the call (no concurrent writer), so the content is unchanged.
            // SAFETY: as above; EFAULT on a read-only page.
            let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
            if n != 1 {
                return Some(false);
            }
        }
    }
    Some(true)
}

// ---------------------------------------------------------------------------
// MDLs
// ---------------------------------------------------------------------------

#[no_mangle]
pub unsafe extern "system" fn IoAllocateMdl(va: PVOID, length: u32, secondary: u8, _quota: u8, irp: PVOID) -> PVOID {
    if secondary != 0 || !irp.is_null() {
        violation("IoAllocateMdl: secondary buffers / IRP association are not emulated");
    }
    if length == 0 || inject_failure(Site::Mdl) {
        return std::ptr::null_mut();
    }
    let start = (va as usize) & !(PAGE_SIZE - 1);
    let offset = (va as usize) - start;
    let pages = (offset + length as usize).div_ceil(PAGE_SIZE);
    let size = MDL_HEADER + pages * 8;
    let Ok(layout) = Layout::from_size_align(size, 16) else { return std::ptr::null_mut() };
    // SAFETY: non-zero size.
    let mdl = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<std::ffi::c_void>();
    if mdl.is_null() {
        return mdl;
    }
    // SAFETY: `mdl` is a fresh, writable block of `size` >= MDL_HEADER
    // bytes; Size is in the MDL header.
    unsafe { wr(mdl, MDL_SIZE, size as u16) };
    // SAFETY: as above; StartVa is in the header.
    unsafe { wr(mdl, MDL_START_VA, start) };
    // SAFETY: as above; ByteCount is in the header.
    unsafe { wr(mdl, MDL_BYTE_COUNT, length) };
    // SAFETY: as above; ByteOffset is in the header.
    unsafe { wr(mdl, MDL_BYTE_OFFSET, offset as u32) };
    mdls(|m| m.insert(mdl as usize, MdlRec { layout: Some(layout), locked: None }));
    add_live(Kind::Mdl, 1);
    count_allocation(Site::Mdl, size);
    mdl
}

/// The (virtual address, length) an MDL describes.
///
/// # Safety
/// `mdl` is a live MDL.
unsafe fn mdl_range(mdl: PVOID) -> (usize, usize) {
    // SAFETY: a live MDL (contract); StartVa is in its header.
    let start = unsafe { rd::<usize>(mdl, MDL_START_VA) };
    // SAFETY: as above; ByteOffset is in the header.
    let offset = unsafe { rd::<u32>(mdl, MDL_BYTE_OFFSET) } as usize;
    // SAFETY: as above; ByteCount is in the header.
    let count = unsafe { rd::<u32>(mdl, MDL_BYTE_COUNT) } as usize;
    (start + offset, count)
}

/// Whether `mdl` is a live MDL: one from IoAllocateMdl, or caller storage
/// that MmInitializeMdl (a wdm.h macro: no call the host could see) set up,
/// which is recorded here at its first use after checking what the macro's
/// documentation requires ("MmInitializeMdl", Microsoft Learn, Remarks):
/// the storage "must be allocated in nonpaged memory" (a paged-pool block is
/// a violation; a kernel stack is resident while its thread waits in
/// KernelMode, which is how safewsk uses it) and its size "must be at least
/// sizeof(MDL) + sizeof(PFN_NUMBER) * ADDRESS_AND_SIZE_TO_SPAN_PAGES(BaseVa,
/// Length)", which is exactly what the macro writes into `Size` (wdm.h's
/// definition: `Size = (CSHORT)(sizeof(MDL) + (sizeof(PFN_NUMBER) *
/// ADDRESS_AND_SIZE_TO_SPAN_PAGES(BaseVa, Length)))`; the same number
/// MmSizeOfMdl(Base, Length) returns, "the number of bytes required to
/// contain the MDL", Microsoft Learn "MmSizeOfMdl"). So `Size` must equal
/// that value for the range the header describes: smaller, and the MDL is
/// refused (the PFN array would overrun the storage); any other value is a
/// violation too (the header was not set up as MmInitializeMdl sets it up,
/// or its range was changed afterwards), and the MDL is used. A
/// caller-storage record that is not locked is replaced (and checked again)
/// when the same storage is initialized again.
///
/// # Safety
/// `mdl` is null or points to at least MDL_HEADER readable bytes when it is
/// not a recorded MDL.
unsafe fn known_mdl(mdl: PVOID, who: &str) -> bool {
    if mdl.is_null() {
        return false;
    }
    let existing = mdls(|m| m.get(&(mdl as usize)).map(|r| (r.layout.is_some(), r.locked.is_some())));
    match existing {
        Some((true, _)) | Some((false, true)) => return true,
        Some((false, false)) | None => {}
    }
    // SAFETY: caller storage of at least MDL_HEADER bytes (contract).
    let size = unsafe { rd::<u16>(mdl, MDL_SIZE) } as usize;
    // SAFETY: as above.
    let (va, len) = unsafe { mdl_range(mdl) };
    let (_, pages) = pages_of(va, len.max(1));
    if len == 0 || size < MDL_HEADER + pages * 8 {
        violation(format!(
            "{who}: {mdl:p} is not a live MDL (not from IoAllocateMdl, and no MmInitializeMdl header: Size {size} \
             for {len} bytes over {pages} page(s))"
        ));
        return false;
    }
    let expected = MDL_HEADER + pages * 8;
    if size != expected {
        violation(format!(
            "{who}: MDL {mdl:p} (caller storage) has Size {size}, but MmInitializeMdl sets sizeof(MDL) + \
             sizeof(PFN_NUMBER) * ADDRESS_AND_SIZE_TO_SPAN_PAGES(BaseVa, Length) = {expected} for its {len} bytes \
             over {pages} page(s)"
        ));
    }
    if mem(|m| classify(m, mdl as usize, size)) == Region::PagedPool {
        violation(format!("{who}: the MDL at {mdl:p} is in paged pool: MmInitializeMdl storage must be nonpaged"));
    }
    mdls(|m| m.insert(mdl as usize, MdlRec { layout: None, locked: None }));
    true
}

#[no_mangle]
pub unsafe extern "system" fn MmBuildMdlForNonPagedPool(mdl: PVOID) {
    if irql::current() > DISPATCH_LEVEL {
        violation("MmBuildMdlForNonPagedPool above DISPATCH_LEVEL");
    }
    // SAFETY: the caller's MDL (or caller storage of one).
    if !unsafe { known_mdl(mdl, "MmBuildMdlForNonPagedPool") } {
        return;
    }
    // SAFETY: live MDL.
    let (va, len) = unsafe { mdl_range(mdl) };
    // SAFETY: live MDL.
    let flags: u16 = unsafe { rd(mdl, MDL_FLAGS) };
    if flags & MDL_PAGES_LOCKED != 0 {
        violation(format!("MmBuildMdlForNonPagedPool: MDL {mdl:p} is locked by MmProbeAndLockPages"));
    }
    match mem(|m| classify(m, va, len)) {
        Region::PagedPool => violation(format!(
            "MmBuildMdlForNonPagedPool over paged pool ({va:#x}, {len} bytes): paged pool can be paged out; \
             probe and lock it (MmProbeAndLockPages)"
        )),
        Region::Stack => violation(format!(
            "MmBuildMdlForNonPagedPool over the calling thread's stack ({va:#x}, {len} bytes): it \"may not be \
             used with MDLs describing buffers allocated on a kernel stack\"; probe and lock it (MmProbeAndLockPages)"
        )),
        Region::NonPagedPool | Region::Other => {}
    }
    // SAFETY: a live MDL (checked in the table); MappedSystemVa is in its header.
    unsafe { wr(mdl, MDL_MAPPED_SYSTEM_VA, va) };
    // SAFETY: as above; MdlFlags is in the header.
    unsafe { wr(mdl, MDL_FLAGS, flags | MDL_SOURCE_IS_NONPAGED_POOL) };
}

/// Records that MmProbeAndLockPages raised `code` on this thread. The host
/// has no structured exception handling, so the "exception" is a
/// thread-local that the caller's emulated `__except` collects with
/// [`HostKernelTakeRaisedException`].
fn raise(code: NTSTATUS) {
    RAISED.with(|r| r.set(code));
    UNHANDLED.fetch_add(1, Ordering::SeqCst);
}

/// Host-only export (no Windows counterpart): returns and clears the
/// exception the last MmProbeAndLockPages on this thread raised, or
/// STATUS_SUCCESS if it raised none. safewsk's host build calls it right
/// after MmProbeAndLockPages, which is how it emulates
/// `__try { MmProbeAndLockPages(..) } __except (EXCEPTION_EXECUTE_HANDLER)
/// { status = GetExceptionCode(); }`. An exception nobody takes fails the
/// test at Session::finish (KMODE_EXCEPTION_NOT_HANDLED on Windows).
#[no_mangle]
pub extern "system" fn HostKernelTakeRaisedException() -> NTSTATUS {
    let code = RAISED.with(|r| r.replace(STATUS_SUCCESS));
    if code != STATUS_SUCCESS {
        let _ = UNHANDLED.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    }
    code
}

/// MmProbeAndLockPages(Mdl, AccessMode, Operation): makes the pages resident
/// (pages paged-out paged pool back in), checks the access, locks them and
/// sets MDL_PAGES_LOCKED. On failure it "raises" (see
/// [`HostKernelTakeRaisedException`]): STATUS_ACCESS_VIOLATION for a range
/// that is not accessible for the operation, or the injected exception
/// (Session::fail_probe). Contract checks (MmProbeAndLockPages, Microsoft
/// Learn): IRQL <= APC_LEVEL for pageable memory, <= DISPATCH_LEVEL for
/// non-paged; not on an MDL that is already locked or was built by
/// MmBuildMdlForNonPagedPool.
#[no_mangle]
pub unsafe extern "system" fn MmProbeAndLockPages(mdl: PVOID, mode: i8, operation: u32) {
    let irql = irql::current();
    if irql > DISPATCH_LEVEL {
        violation("MmProbeAndLockPages above DISPATCH_LEVEL");
        return;
    }
    // SAFETY: the caller's MDL (or caller storage of one).
    if !unsafe { known_mdl(mdl, "MmProbeAndLockPages") } {
        return;
    }
    if mode != KERNEL_MODE || operation > IO_MODIFY_ACCESS {
        violation(format!("MmProbeAndLockPages: mode {mode} / operation {operation} not emulated (KernelMode only)"));
        return;
    }
    // SAFETY: live MDL.
    let (va, len) = unsafe { mdl_range(mdl) };
    // SAFETY: live MDL.
    let flags: u16 = unsafe { rd(mdl, MDL_FLAGS) };
    if flags & (MDL_PAGES_LOCKED | MDL_SOURCE_IS_NONPAGED_POOL) != 0 {
        violation(format!(
            "MmProbeAndLockPages: MDL {mdl:p} is already locked or was built by MmBuildMdlForNonPagedPool \
             (flags {flags:#06x})"
        ));
        return;
    }
    let region = mem(|m| classify(m, va, len));
    if region != Region::NonPagedPool && irql > APC_LEVEL {
        violation(format!(
            "MmProbeAndLockPages of pageable memory ({region:?}, {va:#x}) at IRQL {irql}: pageable addresses \
             need IRQL <= APC_LEVEL"
        ));
    }
    if inject_failure(Site::Probe) {
        raise(PROBE_EXCEPTION.load(Ordering::SeqCst));
        return;
    }
    let (first, count) = pages_of(va, len);
    // Page in what was paged out, then check the access.
    let paged_in = mem(|m| page_in_locked(m, first, count));
    crate::hard_fault::after_page_in(paged_in);
    if accessible(va, len, operation != IO_READ_ACCESS) == Some(false) {
        raise(STATUS_ACCESS_VIOLATION);
        return;
    }
    mem(|m| {
        for page in (0..count).map(|i| first + i * PAGE_SIZE) {
            *m.locks.entry(page).or_insert(0) += 1;
        }
    });
    for i in 0..count {
        // SAFETY: a live MDL (checked in the table) with room for `count`
        // PFNs after the header (IoAllocateMdl sized it for this range).
        // The "PFN" is the page number.
        unsafe { wr(mdl, MDL_HEADER + i * 8, ((first + i * PAGE_SIZE) / PAGE_SIZE) as u64) };
    }
    // SAFETY: the live MDL; MdlFlags is in its header.
    unsafe { wr(mdl, MDL_FLAGS, flags | MDL_PAGES_LOCKED) };
    mdls(|m| m.get_mut(&(mdl as usize)).map(|r| r.locked = Some((first, count))));
    add_live(Kind::LockedPage, count as isize);
}

fn unlock_pages(first: usize, count: usize) {
    mem(|m| {
        for page in (0..count).map(|i| first + i * PAGE_SIZE) {
            if let Some(c) = m.locks.get_mut(&page) {
                *c -= 1;
                if *c == 0 {
                    m.locks.remove(&page);
                }
            }
        }
    });
    add_live(Kind::LockedPage, -(count as isize));
}

/// MmUnlockPages: the MDL must have been locked by MmProbeAndLockPages
/// ("The memory described by the specified MDL must have been locked
/// previously by a call to MmProbeAndLockPages", MmUnlockPages, Microsoft
/// Learn). Releases the system mapping too.
#[no_mangle]
pub unsafe extern "system" fn MmUnlockPages(mdl: PVOID) {
    if irql::current() > DISPATCH_LEVEL {
        violation("MmUnlockPages above DISPATCH_LEVEL");
    }
    let locked = mdls(|m| m.get_mut(&(mdl as usize)).map(|r| r.locked.take()));
    match locked {
        None => violation(format!("MmUnlockPages: {mdl:p} is not a live MDL")),
        Some(None) => violation(format!(
            "MmUnlockPages: MDL {mdl:p} is not locked (never locked by MmProbeAndLockPages, unlocked twice, \
             or built by MmBuildMdlForNonPagedPool)"
        )),
        Some(Some((first, count))) => {
            unlock_pages(first, count);
            // SAFETY: a live MDL (found in the table); MdlFlags is in its header.
            let f: u16 = unsafe { rd(mdl, MDL_FLAGS) };
            // SAFETY: as above.
            unsafe { wr(mdl, MDL_FLAGS, f & !(MDL_PAGES_LOCKED | MDL_MAPPED_TO_SYSTEM_VA)) };
            // SAFETY: as above; MappedSystemVa is in the header.
            unsafe { wr(mdl, MDL_MAPPED_SYSTEM_VA, 0usize) };
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn IoFreeMdl(mdl: PVOID) {
    let rec = mdls(|m| match m.get(&(mdl as usize)).map(|r| r.layout.is_some()) {
        Some(true) => m.remove(&(mdl as usize)),
        _ => None,
    });
    match rec {
        None => violation(format!(
            "IoFreeMdl: {mdl:p} is not an MDL from IoAllocateMdl (freed twice, or caller storage set up with \
             MmInitializeMdl)"
        )),
        Some(rec) => {
            if rec.locked.is_some() {
                // The pages stay locked (and are reported as leaked), as on
                // Windows, where nothing can unlock them any more.
                violation(format!("IoFreeMdl: MDL {mdl:p} still has its pages locked (MmUnlockPages first)"));
            }
            add_live(Kind::Mdl, -1);
            if let Some(layout) = rec.layout {
                quarantine(mdl.cast(), layout);
            }
        }
    }
}

/// Provider side: the (address, length) pieces a WSK_BUF describes, walking
/// the MDL chain. None (after recording why) if the buffer is malformed.
/// "Each MDL in the MDL chain [...] describes memory that is either locked or
/// from non-paged pool" (WSK_BUF, Microsoft Learn): an MDL that is neither
/// built for non-paged pool, nor locked, nor mapped, or that describes
/// memory that is paged out, is a violation. A locked MDL that is not mapped
/// is read where the provider's MmGetSystemAddressForMdlSafe would map it
/// (the same pages, at the same address in this single address space).
pub(crate) unsafe fn wsk_buf_pieces(wsk_buf: PVOID) -> Option<Vec<(*mut u8, usize)>> {
    if wsk_buf.is_null() {
        return Some(Vec::new());
    }
    // SAFETY: a non-null WSK_BUF { PMDL Mdl; ULONG Offset; SIZE_T Length; }
    // supplied by the caller (this function's contract); Mdl is at 0.
    let mut mdl = unsafe { rd::<PVOID>(wsk_buf, 0) };
    // SAFETY: as above; Offset is at 8.
    let mut skip = unsafe { rd::<u32>(wsk_buf, 8) } as usize;
    // SAFETY: as above; Length is at 16.
    let mut left = unsafe { rd::<usize>(wsk_buf, 16) };
    let mut pieces = Vec::new();
    while left > 0 {
        if mdl.is_null() || mdls(|m| !m.contains_key(&(mdl as usize))) {
            violation(format!("WSK_BUF: MDL {mdl:p} is not a live MDL, or the chain is shorter than Length"));
            return None;
        }
        // SAFETY: a live MDL (checked in the table); MdlFlags is in its header.
        let flags = unsafe { rd::<u16>(mdl, MDL_FLAGS) };
        // SAFETY: as above; MappedSystemVa is in the header.
        let mapped = unsafe { rd::<usize>(mdl, MDL_MAPPED_SYSTEM_VA) };
        // SAFETY: as above (mdl_range's only requirement).
        let (described, count) = unsafe { mdl_range(mdl) };
        // SAFETY: as above; Next is in the header.
        let next = unsafe { rd::<PVOID>(mdl, MDL_NEXT) };
        let va = if flags & (MDL_SOURCE_IS_NONPAGED_POOL | MDL_MAPPED_TO_SYSTEM_VA) != 0 {
            mapped
        } else if flags & MDL_PAGES_LOCKED != 0 {
            described
        } else {
            violation(format!(
                "WSK_BUF: MDL {mdl:p} is neither built for non-paged pool, nor locked (MDL_PAGES_LOCKED), nor \
                 mapped: each MDL must describe memory that is locked or from non-paged pool"
            ));
            return None;
        };
        if mem(|m| any_paged_out(m, va, count)) {
            violation(format!(
                "WSK_BUF: MDL {mdl:p} describes paged-out memory ({va:#x}, {count} bytes): it was not locked"
            ));
            return None;
        }
        if skip < count {
            let n = (count - skip).min(left);
            pieces.push(((va + skip) as *mut u8, n));
            left -= n;
            skip = 0;
        } else {
            skip -= count;
        }
        mdl = next;
    }
    Some(pieces)
}

// ---------------------------------------------------------------------------
// Pool
// ---------------------------------------------------------------------------

/// Which routine allocated a pool block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PoolAllocator {
    /// ExAllocatePool2 with these POOL_FLAGS.
    Pool2 { flags: u64 },
    /// ExAllocatePoolWithTag with this POOL_TYPE.
    WithTag { pool_type: i32 },
}

/// A live pool block, as [`pool_blocks`] reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolBlock {
    pub address: usize,
    pub size: usize,
    pub tag: u32,
    pub allocator: PoolAllocator,
}

/// NonPagedPoolNx (wdm.h POOL_TYPE).
pub const NON_PAGED_POOL_NX_TYPE: i32 = 512;
/// What ExAllocatePoolWithTag fills a new block with: its memory is not
/// zeroed on Windows, so a caller that relies on zeroes reads garbage here.
pub const UNINITIALIZED_POOL: u8 = 0xA5;

/// The live pool blocks, in address order.
pub fn pool_blocks() -> Vec<PoolBlock> {
    mem(|m| {
        m.pool
            .iter()
            .map(|(a, r)| PoolBlock { address: *a, size: r.size, tag: r.tag, allocator: r.allocator })
            .collect()
    })
}

/// The common part of both allocators: 16-byte aligned (page-aligned whole
/// pages from mmap for paged pool, so that [`page_out`] can page it out),
/// filled with `fill`, counted and recorded.
fn pool_allocate(who: &str, paged: bool, size: usize, tag: u32, allocator: PoolAllocator, fill: u8) -> PVOID {
    let irql = irql::current();
    if irql > DISPATCH_LEVEL {
        violation(format!("{who} above DISPATCH_LEVEL"));
    }
    if tag == 0 {
        violation(format!("{who} with a zero tag"));
    }
    if paged && irql > APC_LEVEL {
        violation(format!("{who} of paged pool at IRQL {irql}"));
    }
    if size == 0 || inject_failure(Site::Pool) {
        return std::ptr::null_mut();
    }
    let (p, mem_kind) = if paged {
        let mapped = size.div_ceil(PAGE_SIZE) * PAGE_SIZE;
        // SAFETY: a fresh anonymous mapping.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return std::ptr::null_mut();
        }
        (p.cast::<u8>(), PoolMem::Paged { mapped })
    } else {
        let Ok(layout) = Layout::from_size_align(size, 16) else { return std::ptr::null_mut() };
        // SAFETY: non-zero size.
        let p = unsafe { std::alloc::alloc(layout) };
        if p.is_null() {
            return std::ptr::null_mut();
        }
        (p, PoolMem::NonPaged(layout))
    };
    // SAFETY: a fresh block of at least `size` bytes.
    unsafe { std::ptr::write_bytes(p, fill, size) };
    mem(|m| m.pool.insert(p as usize, PoolRec { size, tag, mem: mem_kind, allocator }));
    add_live(Kind::Pool, 1);
    count_allocation(Site::Pool, size);
    p.cast()
}

/// ExAllocatePool2: zeroed memory, tag must be non-zero, exactly one pool
/// type (POOL_FLAG_NON_PAGED, _NON_PAGED_EXECUTE or _PAGED); paged pool only
/// at IRQL <= APC_LEVEL. The library resolves it only through
/// MmGetSystemRoutineAddress (it no longer imports it); see
/// [`crate::sysroutine`].
#[no_mangle]
pub unsafe extern "system" fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> PVOID {
    let types = flags & (POOL_FLAG_NON_PAGED | POOL_FLAG_NON_PAGED_EXECUTE | POOL_FLAG_PAGED);
    if types.count_ones() != 1 {
        violation(format!("ExAllocatePool2: flags {flags:#x} name no pool type, or more than one"));
        return std::ptr::null_mut();
    }
    pool_allocate("ExAllocatePool2", types == POOL_FLAG_PAGED, size, tag, PoolAllocator::Pool2 { flags }, 0)
}

/// ExAllocatePoolWithTag: like Windows, the memory is *not* zeroed (it is
/// filled with [`UNINITIALIZED_POOL`]). The odd POOL_TYPEs (PagedPool,
/// PagedPoolCacheAligned, ...) are paged pool.
#[no_mangle]
pub unsafe extern "system" fn ExAllocatePoolWithTag(pool_type: i32, size: usize, tag: u32) -> PVOID {
    let paged = pool_type & 1 == 1;
    pool_allocate("ExAllocatePoolWithTag", paged, size, tag, PoolAllocator::WithTag { pool_type }, UNINITIALIZED_POOL)
}

#[no_mangle]
pub unsafe extern "system" fn ExFreePoolWithTag(p: PVOID, tag: u32) {
    let found = mem(|m| {
        let rec = m.pool.remove(&(p as usize))?;
        let (first, count) = pages_of(p as usize, rec.size);
        let locked = (0..count).any(|i| m.locks.contains_key(&(first + i * PAGE_SIZE)));
        if let PoolMem::Paged { mapped } = rec.mem {
            page_in_locked(m, first, mapped / PAGE_SIZE);
        }
        Some((rec, locked))
    });
    match found {
        None => violation(format!("ExFreePoolWithTag: {p:p} is not a live pool block (BAD_POOL_CALLER)")),
        Some((rec, locked)) => {
            if rec.tag != tag {
                violation(format!("ExFreePoolWithTag: tag {tag:#x} does not match the block's tag {:#x}", rec.tag));
            }
            if locked && matches!(rec.mem, PoolMem::Paged { .. }) {
                violation(format!("ExFreePoolWithTag: paged pool block {p:p} is freed with pages still locked"));
            }
            add_live(Kind::Pool, -1);
            match rec.mem {
                PoolMem::NonPaged(layout) => quarantine(p.cast(), layout),
                PoolMem::Paged { mapped } => {
                    // SAFETY: the whole mapping made by ExAllocatePool2;
                    // a later access faults (use after free).
                    unsafe { libc::munmap(p, mapped) };
                }
            }
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn ExFreePool(p: PVOID) {
    let tag = mem(|m| m.pool.get(&(p as usize)).map(|r| r.tag)).unwrap_or(0);
    // SAFETY: forwarded; an unknown block is reported inside.
    unsafe { ExFreePoolWithTag(p, tag) }
}
