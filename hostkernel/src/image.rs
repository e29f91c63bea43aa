//! The driver image and the objects that keep it loaded: device objects
//! (IoCreateDevice, IoDeleteDevice), object references (ObfReferenceObject,
//! ObfDereferenceObject), IoSetCompletionRoutineEx, and the moment the image
//! is unloaded.
//!
//! On Windows a driver's image is unmapped when its DRIVER_OBJECT goes away,
//! which is after DriverUnload has returned *and* the last reference to it,
//! or to one of its device objects, has been dropped. Code of the image that
//! runs after that — a completion routine finishing its last instructions, a
//! DPC, a work item — executes unmapped memory: a bugcheck. The host kernel
//! models this:
//! - every call the host kernel makes into driver code (completion routines,
//!   DPC routines, work items, system threads) is counted while it runs;
//! - [`unload_image`] (called by the harness after DriverUnload, and by tests
//!   after SafeWskCleanup) waits up to two seconds for the references on the
//!   device objects to go, as the object manager would, then marks the image
//!   unloaded: a driver routine still executing then, or called later, is a
//!   contract violation;
//! - [`set_delay_after_signal`] makes KeSetEvent called from driver code on a
//!   kernel thread pause right after signalling, so that a waiter that races
//!   ahead to unload really does so while the routine is still running.

use std::cell::Cell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::check::{add_live, count_allocation, inject_failure, violation, Kind, Site};
use crate::irql;
use crate::nt::*;

static IN_DRIVER: AtomicUsize = AtomicUsize::new(0);
static UNLOADED: AtomicBool = AtomicBool::new(false);
static DELAY_AFTER_SIGNAL_US: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static DEPTH: Cell<u32> = const { Cell::new(0) };
}

/// Runs `f`, a call into driver code from a kernel thread, counted.
pub(crate) fn call_driver<R>(what: &str, f: impl FnOnce() -> R) -> R {
    if UNLOADED.load(Ordering::SeqCst) {
        violation(format!("{what}: driver code called after its image was unloaded"));
    }
    IN_DRIVER.fetch_add(1, Ordering::SeqCst);
    DEPTH.with(|d| d.set(d.get() + 1));
    let r = f();
    DEPTH.with(|d| d.set(d.get() - 1));
    if UNLOADED.load(Ordering::SeqCst) {
        violation(format!("{what}: driver code was still running when its image was unloaded"));
    }
    IN_DRIVER.fetch_sub(1, Ordering::SeqCst);
    r
}

/// Whether the calling thread is inside driver code called by the kernel.
pub(crate) fn in_driver_callback() -> bool {
    DEPTH.with(|d| d.get() > 0)
}

/// Test switch: KeSetEvent called from driver code on a kernel thread sleeps
/// this long after signalling (zero: off).
pub fn set_delay_after_signal(delay: Duration) {
    DELAY_AFTER_SIGNAL_US.store(delay.as_micros() as u64, Ordering::SeqCst);
}

pub(crate) fn delay_after_signal() {
    let us = DELAY_AFTER_SIGNAL_US.load(Ordering::SeqCst);
    if us != 0 && in_driver_callback() {
        std::thread::sleep(Duration::from_micros(us));
    }
}

// ---------------------------------------------------------------------------
// Device objects and references
// ---------------------------------------------------------------------------

/// sizeof(DEVICE_OBJECT) on x64.
const DEVICE_OBJECT_SIZE: usize = 0x150;

struct Device {
    refs: usize,
    deleted: bool,
    layout: std::alloc::Layout,
    counted: bool,
}

static DEVICES: Mutex<Option<HashMap<usize, Device>>> = Mutex::new(None);

fn devices<R>(f: impl FnOnce(&mut HashMap<usize, Device>) -> R) -> R {
    let mut g = DEVICES.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

fn new_device(extension: usize, counted: bool) -> PVOID {
    let size = DEVICE_OBJECT_SIZE + extension;
    let Ok(layout) = std::alloc::Layout::from_size_align(size, 16) else { return std::ptr::null_mut() };
    // SAFETY: non-zero size.
    let dev = unsafe { std::alloc::alloc_zeroed(layout) }.cast::<std::ffi::c_void>();
    if dev.is_null() {
        return dev;
    }
    // SAFETY: a fresh, writable block of `size` >= DEVICE_OBJECT_SIZE bytes;
    // Type is at 0 (wdm.h).
    unsafe { wr(dev, 0, IO_TYPE_DEVICE) };
    // SAFETY: as above; Size is at 2.
    unsafe { wr(dev, 2, DEVICE_OBJECT_SIZE as u16) };
    if extension != 0 {
        // SAFETY: as above; DeviceExtension is at 0x40, and points just past
        // the DEVICE_OBJECT, at the `extension` bytes allocated with it.
        unsafe { wr(dev, 0x40, dev as usize + DEVICE_OBJECT_SIZE) };
    }
    devices(|m| m.insert(dev as usize, Device { refs: 1, deleted: false, layout, counted }));
    if counted {
        add_live(Kind::Device, 1);
    }
    dev
}

/// A device object for tests that have no driver: created once, never
/// deleted, not counted as a leak.
pub fn test_device() -> PVOID {
    static DEV: Mutex<usize> = Mutex::new(0);
    let mut d = DEV.lock().unwrap_or_else(|e| e.into_inner());
    if *d == 0 {
        *d = new_device(0, false) as usize;
    }
    *d as PVOID
}

fn drop_ref(obj: PVOID, who: &str) {
    let freed = devices(|m| match m.get_mut(&(obj as usize)) {
        None => Err(()),
        Some(d) => {
            if d.refs == 0 {
                return Err(());
            }
            d.refs -= 1;
            if d.refs == 0 && d.deleted {
                let d = m.remove(&(obj as usize)).map(|d| (d.layout, d.counted));
                Ok(d)
            } else {
                Ok(None)
            }
        }
    });
    match freed {
        Err(()) => violation(format!("{who}: {obj:p} is not a referenced object")),
        Ok(Some((layout, counted))) => {
            if counted {
                add_live(Kind::Device, -1);
            }
            // SAFETY: allocated with this layout in new_device; the last
            // reference is gone.
            unsafe { std::alloc::dealloc(obj.cast(), layout) };
        }
        Ok(None) => {}
    }
}

fn add_ref(obj: PVOID, who: &str) {
    let ok = devices(|m| match m.get_mut(&(obj as usize)) {
        Some(d) if d.refs > 0 => {
            d.refs += 1;
            true
        }
        _ => false,
    });
    if !ok {
        violation(format!("{who}: {obj:p} is not a live object"));
    }
}

/// References still held on device objects (beyond their creation's).
fn extra_refs() -> usize {
    devices(|m| m.values().map(|d| if d.deleted { d.refs } else { d.refs.saturating_sub(1) }).sum())
}

#[no_mangle]
pub unsafe extern "system" fn IoCreateDevice(
    _driver: PVOID,
    extension: u32,
    _name: PVOID,
    _ty: u32,
    _characteristics: u32,
    _exclusive: u8,
    out: *mut PVOID,
) -> NTSTATUS {
    if irql::current() != PASSIVE_LEVEL {
        violation("IoCreateDevice above PASSIVE_LEVEL");
    }
    if out.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    let dev = new_device(extension as usize, true);
    // SAFETY: the caller's out pointer.
    unsafe { *out = dev };
    if dev.is_null() {
        STATUS_INSUFFICIENT_RESOURCES
    } else {
        STATUS_SUCCESS
    }
}

#[no_mangle]
pub unsafe extern "system" fn IoDeleteDevice(dev: PVOID) {
    let ok = devices(|m| match m.get_mut(&(dev as usize)) {
        Some(d) if !d.deleted => {
            d.deleted = true;
            true
        }
        _ => false,
    });
    if !ok {
        violation(format!("IoDeleteDevice: {dev:p} is not a live device object (deleted twice?)"));
        return;
    }
    // The creation's reference; the object goes with the last one.
    drop_ref(dev, "IoDeleteDevice");
}

#[no_mangle]
pub unsafe extern "system" fn ObfReferenceObject(obj: PVOID) -> isize {
    if !crate::thread::add_ref(obj) {
        add_ref(obj, "ObfReferenceObject");
    }
    0
}

#[no_mangle]
pub unsafe extern "system" fn ObfDereferenceObject(obj: PVOID) -> isize {
    if !crate::thread::drop_ref(obj) {
        drop_ref(obj, "ObfDereferenceObject");
    }
    0
}

// ---------------------------------------------------------------------------
// IoSetCompletionRoutineEx
// ---------------------------------------------------------------------------

/// What IoSetCompletionRoutineEx allocates (IO_UNLOAD_SAFE_COMPLETION_CONTEXT
/// in ReactOS `ntoskrnl/io/iomgr/irp.c`).
struct ExContext {
    device: usize,
    routine: CompletionRoutine,
    context: PVOID,
}

static EX_CONTEXTS: AtomicUsize = AtomicUsize::new(0);

/// Whether a completion routine is the I/O manager's own wrapper (which
/// counts the driver's routine itself).
pub(crate) fn is_unload_safe_completion(routine: usize) -> bool {
    routine == unload_safe_completion as CompletionRoutine as usize
}

unsafe extern "system" fn unload_safe_completion(device: PVOID, irp: PVOID, context: PVOID) -> NTSTATUS {
    // SAFETY: the Box made by IoSetCompletionRoutineEx, passed back once.
    let ctx = unsafe { Box::from_raw(context.cast::<ExContext>()) };
    // SAFETY: the driver's completion routine, called as the I/O manager does.
    let status = call_driver("IoCompletion routine", || unsafe { (ctx.routine)(device, irp, ctx.context) });
    drop_ref(ctx.device as PVOID, "IoSetCompletionRoutineEx's completion");
    EX_CONTEXTS.fetch_sub(1, Ordering::SeqCst);
    add_live(Kind::Pool, -1);
    status
}

/// IoSetCompletionRoutineEx: references the device object, allocates a
/// context (which can fail: STATUS_INSUFFICIENT_RESOURCES), and sets a
/// routine of the I/O manager's own that calls the driver's and then drops
/// the reference — after the driver's routine has returned.
#[no_mangle]
pub unsafe extern "system" fn IoSetCompletionRoutineEx(
    device: PVOID,
    irp: PVOID,
    routine: Option<CompletionRoutine>,
    context: PVOID,
    on_success: u8,
    on_error: u8,
    on_cancel: u8,
) -> NTSTATUS {
    if irql::current() > DISPATCH_LEVEL {
        violation("IoSetCompletionRoutineEx above DISPATCH_LEVEL");
    }
    let Some(routine) = routine else {
        violation("IoSetCompletionRoutineEx without a routine");
        return STATUS_INVALID_PARAMETER;
    };
    if devices(|m| !m.contains_key(&(device as usize))) {
        violation(format!("IoSetCompletionRoutineEx: {device:p} is not a device object"));
        return STATUS_INVALID_PARAMETER;
    }
    if inject_failure(Site::CompletionContext) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    add_ref(device, "IoSetCompletionRoutineEx");
    let ctx = Box::into_raw(Box::new(ExContext { device: device as usize, routine, context }));
    EX_CONTEXTS.fetch_add(1, Ordering::SeqCst);
    add_live(Kind::Pool, 1);
    count_allocation(Site::CompletionContext, std::mem::size_of::<ExContext>());
    // The inline IoSetCompletionRoutine, with the I/O manager's routine.
    // SAFETY: a live IRP (the caller's, as IoSetCompletionRoutineEx
    // requires); CurrentStackLocation is in its header.
    let next = unsafe { rd::<usize>(irp, IRP_CURRENT_STACK_LOCATION) } - STACK_SIZE;
    let mut control = 0u8;
    if on_success != 0 {
        control |= SL_INVOKE_ON_SUCCESS;
    }
    if on_error != 0 {
        control |= SL_INVOKE_ON_ERROR;
    }
    if on_cancel != 0 {
        control |= SL_INVOKE_ON_CANCEL;
    }
    let routine = unload_safe_completion as CompletionRoutine as usize;
    // SAFETY: the caller's IRP has a stack location below the current one
    // (the one it is about to pass down to); CompletionRoutine is in it.
    unsafe { wr(next as PVOID, STACK_COMPLETION_ROUTINE, routine) };
    // SAFETY: as above; Context is in the same stack location.
    unsafe { wr(next as PVOID, STACK_CONTEXT, ctx as usize) };
    // SAFETY: as above; Control is in the same stack location.
    unsafe { wr(next as PVOID, STACK_CONTROL, control) };
    STATUS_SUCCESS
}

// ---------------------------------------------------------------------------
// Unload
// ---------------------------------------------------------------------------

/// The driver's image goes away: waits up to two seconds for the references
/// on its device objects (IoSetCompletionRoutineEx's, work items') to be
/// dropped, as the object manager would before unmapping, then marks the
/// image unloaded. Driver code still running then, or called later, is a
/// violation. [`crate::Session::begin`] loads it again.
pub fn unload_image() {
    let deadline = Instant::now() + Duration::from_secs(2);
    while extra_refs() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
    UNLOADED.store(true, Ordering::SeqCst);
    let running = IN_DRIVER.load(Ordering::SeqCst);
    if running != 0 {
        violation(format!(
            "{running} driver routine(s) (completion routine, DPC, work item) still executing when the driver \
             image was unloaded: on Windows that code runs in unmapped memory"
        ));
    }
}

/// Loads the image again (a new session).
pub(crate) fn reset() {
    UNLOADED.store(false, Ordering::SeqCst);
    DELAY_AFTER_SIGNAL_US.store(0, Ordering::SeqCst);
}
