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
    // IoInitializeIrp: the current location is one past the last stack location.
    // SAFETY: fresh block of `size` bytes.
    unsafe {
        wr(irp, IRP_TYPE, IO_TYPE_IRP);
        wr(irp, IRP_SIZE_FIELD, size as u16);
        wr(irp, IRP_STACK_COUNT, stack_size);
        wr(irp, IRP_CURRENT_LOCATION, stack_size + 1);
        wr(irp, IRP_CURRENT_STACK_LOCATION, irp.cast::<u8>().add(size) as usize);
    }
    irps(|m| m.insert(irp as usize, IrpRec { owner: Owner::Driver, layout }));
    add_live(Kind::Irp, 1);
    count_allocation(Site::Irp, size);
    irp
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
    // SAFETY: live IRP (checked); CancelRoutine is an 8-byte aligned pointer.
    let routine = unsafe {
        wr(irp, IRP_CANCEL, 1u8);
        AtomicUsize::from_ptr(irp.cast::<u8>().add(IRP_CANCEL_ROUTINE).cast()).swap(0, Ordering::SeqCst)
    };
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

/// Provider side: `IoSetCancelRoutine`. Returns the previous routine.
pub(crate) unsafe fn set_cancel_routine(irp: PVOID, routine: Option<CancelRoutine>) -> usize {
    let v = routine.map_or(0, |r| r as usize);
    // SAFETY: provider-owned live IRP.
    unsafe { AtomicUsize::from_ptr(irp.cast::<u8>().add(IRP_CANCEL_ROUTINE).cast()).swap(v, Ordering::SeqCst) }
}

/// Whether IoCancelIrp has been called on the IRP.
pub(crate) unsafe fn is_cancelled(irp: PVOID) -> bool {
    // SAFETY: provider-owned live IRP.
    unsafe { rd::<u8>(irp, IRP_CANCEL) != 0 }
}

/// Provider side: takes an IRP handed to a WSK function. Checks the WSK rules
/// for application IRPs, then does what IoCallDriver would: moves to the next
/// stack location. Returns false (after recording why) if the IRP is unusable.
pub(crate) unsafe fn take(irp: PVOID, who: &str) -> bool {
    let ok = irps(|m| match m.get_mut(&(irp as usize)) {
        None => Err(format!("{who}: IRP {irp:p} is not live (freed, or never allocated)")),
        Some(r) if r.owner == Owner::Provider => Err(format!("{who}: IRP {irp:p} is already pending in the provider")),
        Some(r) => {
            r.owner = Owner::Provider;
            Ok(())
        }
    });
    if let Err(msg) = ok {
        violation(msg);
        return false;
    }
    // SAFETY: live IRP now owned by the provider.
    unsafe {
        let location: i8 = rd(irp, IRP_CURRENT_LOCATION);
        if location <= 1 {
            violation(format!("{who}: IRP {irp:p} has no stack location left for the WSK subsystem"));
            irps(|m| m.get_mut(&(irp as usize)).map(|r| r.owner = Owner::Driver));
            return false;
        }
        let next = rd::<usize>(irp, IRP_CURRENT_STACK_LOCATION) - STACK_SIZE;
        let control: u8 = rd(next as PVOID, STACK_CONTROL);
        let routine: usize = rd(next as PVOID, STACK_COMPLETION_ROUTINE);
        let all = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL;
        if routine == 0 || control & all != all {
            violation(format!(
                "{who}: IRP {irp:p} needs an IoCompletion routine invoked on success, error and cancel \
                 (Using IRPs with Winsock Kernel Functions)"
            ));
        }
        // IoSetNextIrpStackLocation.
        wr(irp, IRP_CURRENT_LOCATION, location - 1);
        wr(irp, IRP_CURRENT_STACK_LOCATION, next);
        wr(irp, IRP_IOSTATUS_STATUS, STATUS_PENDING);
    }
    true
}

/// Provider side: IoMarkIrpPending on the current stack location.
pub(crate) unsafe fn mark_pending(irp: PVOID) {
    // SAFETY: provider-owned live IRP.
    unsafe {
        let cur = rd::<usize>(irp, IRP_CURRENT_STACK_LOCATION) as PVOID;
        let c: u8 = rd(cur, STACK_CONTROL);
        wr(cur, STACK_CONTROL, c | SL_PENDING_RETURNED);
    }
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
            Ok(())
        }
    });
    if let Err(msg) = ok {
        violation(msg);
        return;
    }
    // SAFETY: the IRP is live until the completion routine runs; every access
    // below happens before that routine is called.
    unsafe {
        if rd::<usize>(irp, IRP_CANCEL_ROUTINE) != 0 {
            violation(format!("IoCompleteRequest: IRP {irp:p} completed with a cancel routine still set"));
        }
        wr(irp, IRP_IOSTATUS_STATUS, status);
        wr(irp, IRP_IOSTATUS_INFORMATION, information);
        let stack_count: i8 = rd(irp, IRP_STACK_COUNT);
        loop {
            let location: i8 = rd(irp, IRP_CURRENT_LOCATION);
            if location > stack_count {
                break;
            }
            let stack = rd::<usize>(irp, IRP_CURRENT_STACK_LOCATION) as PVOID;
            wr(irp, IRP_CURRENT_LOCATION, location + 1);
            wr(irp, IRP_CURRENT_STACK_LOCATION, stack as usize + STACK_SIZE);
            let control: u8 = rd(stack, STACK_CONTROL);
            let routine: usize = rd(stack, STACK_COMPLETION_ROUTINE);
            let context: PVOID = rd(stack, STACK_CONTEXT);
            wr(irp, IRP_PENDING_RETURNED, control & SL_PENDING_RETURNED);
            std::ptr::write_bytes(stack.cast::<u8>(), 0, STACK_SIZE);
            let invoke = (status >= 0 && control & SL_INVOKE_ON_SUCCESS != 0)
                || (status < 0 && control & SL_INVOKE_ON_ERROR != 0)
                || (rd::<u8>(irp, IRP_CANCEL) != 0 && control & SL_INVOKE_ON_CANCEL != 0);
            if routine != 0 && invoke {
                let routine: CompletionRoutine = std::mem::transmute(routine);
                if routine(std::ptr::null_mut(), irp, context) == STATUS_MORE_PROCESSING_REQUIRED {
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
    }
    violation(format!(
        "IRP {irp:p} allocated by the driver reached the I/O manager: its completion routine \
         must return STATUS_MORE_PROCESSING_REQUIRED"
    ));
}

// ---------------------------------------------------------------------------
// MDLs
// ---------------------------------------------------------------------------

static MDLS: Mutex<Option<HashMap<usize, Layout>>> = Mutex::new(None);

fn mdls<R>(f: impl FnOnce(&mut HashMap<usize, Layout>) -> R) -> R {
    let mut g = MDLS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

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
    // SAFETY: fresh block of `size` bytes.
    unsafe {
        wr(mdl, MDL_SIZE, size as u16);
        wr(mdl, MDL_START_VA, start);
        wr(mdl, MDL_BYTE_COUNT, length);
        wr(mdl, MDL_BYTE_OFFSET, offset as u32);
    }
    mdls(|m| m.insert(mdl as usize, layout));
    add_live(Kind::Mdl, 1);
    count_allocation(Site::Mdl, size);
    mdl
}

#[no_mangle]
pub unsafe extern "system" fn MmBuildMdlForNonPagedPool(mdl: PVOID) {
    if mdls(|m| !m.contains_key(&(mdl as usize))) {
        violation(format!("MmBuildMdlForNonPagedPool: {mdl:p} is not a live MDL"));
        return;
    }
    // SAFETY: live MDL.
    unsafe {
        let va = rd::<usize>(mdl, MDL_START_VA) + rd::<u32>(mdl, MDL_BYTE_OFFSET) as usize;
        wr(mdl, MDL_MAPPED_SYSTEM_VA, va);
        let f: u16 = rd(mdl, MDL_FLAGS);
        wr(mdl, MDL_FLAGS, f | MDL_SOURCE_IS_NONPAGED_POOL);
    }
}

#[no_mangle]
pub unsafe extern "system" fn IoFreeMdl(mdl: PVOID) {
    match mdls(|m| m.remove(&(mdl as usize))) {
        None => violation(format!("IoFreeMdl: {mdl:p} is not a live MDL (freed twice?)")),
        Some(layout) => {
            add_live(Kind::Mdl, -1);
            quarantine(mdl.cast(), layout);
        }
    }
}

/// Provider side: the (address, length) pieces a WSK_BUF describes, walking
/// the MDL chain. None (after recording why) if the buffer is malformed.
pub(crate) unsafe fn wsk_buf_pieces(wsk_buf: PVOID) -> Option<Vec<(*mut u8, usize)>> {
    if wsk_buf.is_null() {
        return Some(Vec::new());
    }
    // SAFETY: WSK_BUF { PMDL Mdl; ULONG Offset; SIZE_T Length; } supplied by the caller.
    let (mut mdl, mut skip, mut left) =
        unsafe { (rd::<PVOID>(wsk_buf, 0), rd::<u32>(wsk_buf, 8) as usize, rd::<usize>(wsk_buf, 16)) };
    let mut pieces = Vec::new();
    while left > 0 {
        if mdl.is_null() || mdls(|m| !m.contains_key(&(mdl as usize))) {
            violation(format!("WSK_BUF: MDL {mdl:p} is not a live MDL, or the chain is shorter than Length"));
            return None;
        }
        // SAFETY: live MDL.
        let (flags, va, count, next) = unsafe {
            (
                rd::<u16>(mdl, MDL_FLAGS),
                rd::<usize>(mdl, MDL_MAPPED_SYSTEM_VA),
                rd::<u32>(mdl, MDL_BYTE_COUNT) as usize,
                rd::<PVOID>(mdl, MDL_NEXT),
            )
        };
        if flags & (MDL_SOURCE_IS_NONPAGED_POOL | MDL_MAPPED_TO_SYSTEM_VA) == 0 {
            violation(
                "WSK_BUF: MDL is neither built for non-paged pool nor mapped (MmBuildMdlForNonPagedPool missing)",
            );
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

struct PoolRec {
    layout: Layout,
    tag: u32,
    allocator: PoolAllocator,
}

static POOL: Mutex<Option<HashMap<usize, PoolRec>>> = Mutex::new(None);

fn pool<R>(f: impl FnOnce(&mut HashMap<usize, PoolRec>) -> R) -> R {
    let mut g = POOL.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// The live pool blocks, in no particular order.
pub fn pool_blocks() -> Vec<PoolBlock> {
    pool(|m| {
        m.iter()
            .map(|(a, r)| PoolBlock { address: *a, size: r.layout.size(), tag: r.tag, allocator: r.allocator })
            .collect()
    })
}

/// The common part of both allocators: 16-byte aligned, counted, recorded.
fn pool_allocate(who: &str, size: usize, tag: u32, allocator: PoolAllocator, fill: u8) -> PVOID {
    if irql::current() > DISPATCH_LEVEL {
        violation(format!("{who} above DISPATCH_LEVEL"));
    }
    if tag == 0 {
        violation(format!("{who} with a zero tag"));
    }
    if size == 0 || inject_failure(Site::Pool) {
        return std::ptr::null_mut();
    }
    let Ok(layout) = Layout::from_size_align(size, 16) else { return std::ptr::null_mut() };
    // SAFETY: non-zero size.
    let p = unsafe { std::alloc::alloc(layout) };
    if !p.is_null() {
        // SAFETY: fresh block of `size` bytes.
        unsafe { std::ptr::write_bytes(p, fill, size) };
        pool(|m| m.insert(p as usize, PoolRec { layout, tag, allocator }));
        add_live(Kind::Pool, 1);
        count_allocation(Site::Pool, size);
    }
    p.cast()
}

/// ExAllocatePool2: zeroed memory, 16-byte aligned, tag must be non-zero.
/// Resolved only through MmGetSystemRoutineAddress by the library (which no
/// longer imports it); see [`crate::sysroutine`].
#[no_mangle]
pub unsafe extern "system" fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> PVOID {
    pool_allocate("ExAllocatePool2", size, tag, PoolAllocator::Pool2 { flags }, 0)
}

/// ExAllocatePoolWithTag: like Windows, the memory is *not* zeroed (it is
/// filled with [`UNINITIALIZED_POOL`]). Paged pool types are accepted but
/// recorded, so tests can check which type a caller asked for.
#[no_mangle]
pub unsafe extern "system" fn ExAllocatePoolWithTag(pool_type: i32, size: usize, tag: u32) -> PVOID {
    pool_allocate("ExAllocatePoolWithTag", size, tag, PoolAllocator::WithTag { pool_type }, UNINITIALIZED_POOL)
}

#[no_mangle]
pub unsafe extern "system" fn ExFreePoolWithTag(p: PVOID, tag: u32) {
    match pool(|m| m.remove(&(p as usize))) {
        None => violation(format!("ExFreePoolWithTag: {p:p} is not a live pool block (BAD_POOL_CALLER)")),
        Some(PoolRec { layout, tag: real, .. }) => {
            if real != tag {
                violation(format!("ExFreePoolWithTag: tag {tag:#x} does not match the block's tag {real:#x}"));
            }
            add_live(Kind::Pool, -1);
            quarantine(p.cast(), layout);
        }
    }
}

#[no_mangle]
pub unsafe extern "system" fn ExFreePool(p: PVOID) {
    let tag = pool(|m| m.get(&(p as usize)).map(|r| r.tag)).unwrap_or(0);
    // SAFETY: forwarded; an unknown block is reported inside.
    unsafe { ExFreePoolWithTag(p, tag) }
}
