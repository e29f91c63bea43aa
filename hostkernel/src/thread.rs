//! System threads: PsCreateSystemThread, ObReferenceObjectByHandle, ZwClose,
//! and thread objects that KeWaitForSingleObject can wait on (signalled when
//! the thread has terminated, after its start routine returned: Microsoft
//! Learn, "PsCreateSystemThread"; since Windows XP the start routine may
//! return instead of calling PsTerminateSystemThread).
//!
//! A thread object is a DISPATCHER_HEADER (Type 6, ThreadObject) in a block
//! the host kernel owns, referenced by its handle, by each
//! ObReferenceObjectByHandle, and by the running thread itself.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::check::{add_live, violation, Kind};
use crate::irql;
use crate::nt::*;

/// DISPATCHER_HEADER.Type of a thread object.
pub(crate) const THREAD_OBJECT_TYPE: u8 = 6;
/// Handles are the object's address with this bit set (kernel handles have
/// the high bit set on Windows; any non-pointer marker will do here).
const HANDLE_BIT: usize = 1;

struct ThreadObj {
    refs: usize,
    /// The object's storage, freed with the last reference.
    _block: Box<[u64; 8]>,
}

static THREADS: Mutex<Option<HashMap<usize, ThreadObj>>> = Mutex::new(None);

fn threads<R>(f: impl FnOnce(&mut HashMap<usize, ThreadObj>) -> R) -> R {
    let mut g = THREADS.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(HashMap::new))
}

/// Adds a reference to a thread object; false if `obj` is not one.
pub(crate) fn add_ref(obj: PVOID) -> bool {
    threads(|m| match m.get_mut(&(obj as usize)) {
        Some(t) if t.refs > 0 => {
            t.refs += 1;
            true
        }
        _ => false,
    })
}

/// Drops a reference to a thread object; false if `obj` is not one.
pub(crate) fn drop_ref(obj: PVOID) -> bool {
    let r = threads(|m| match m.get_mut(&(obj as usize)) {
        None => None,
        Some(t) => {
            t.refs = t.refs.saturating_sub(1);
            if t.refs == 0 {
                m.remove(&(obj as usize));
                Some(true)
            } else {
                Some(false)
            }
        }
    });
    match r {
        None => false,
        Some(freed) => {
            if freed {
                add_live(Kind::Thread, -1);
            }
            true
        }
    }
}

struct SendPtr(usize);

#[no_mangle]
pub unsafe extern "system" fn PsCreateSystemThread(
    handle: *mut usize,
    _access: u32,
    _attributes: PVOID,
    process: PVOID,
    _client_id: PVOID,
    start: Option<unsafe extern "system" fn(PVOID)>,
    context: PVOID,
) -> NTSTATUS {
    if irql::current() != PASSIVE_LEVEL {
        violation("PsCreateSystemThread above PASSIVE_LEVEL");
    }
    if !process.is_null() {
        violation("PsCreateSystemThread: drivers pass a NULL ProcessHandle (the system process)");
    }
    let (Some(start), false) = (start, handle.is_null()) else {
        return STATUS_INVALID_PARAMETER;
    };
    let mut block = Box::new([0u64; 8]);
    let obj = block.as_mut_ptr() as usize;
    // SAFETY: a fresh, writable 64-byte block (owned by `block`, alive
    // below); the dispatcher header's Type is at 0.
    unsafe { wr(obj as PVOID, EVENT_TYPE, THREAD_OBJECT_TYPE) };
    // SAFETY: as above; the header's Size is at 2.
    unsafe { wr(obj as PVOID, EVENT_SIZE, EVENT_SIZE_ULONGS) };
    // One reference for the handle, one for the running thread.
    threads(|m| m.insert(obj, ThreadObj { refs: 2, _block: block }));
    add_live(Kind::Thread, 1);
    // SAFETY: the caller's out pointer.
    unsafe { *handle = obj | HANDLE_BIT };
    let ctx = SendPtr(context as usize);
    let spawned = std::thread::Builder::new().name("hostkernel-system-thread".into()).spawn(move || {
        let ctx = ctx;
        // SAFETY: the driver's start routine with its context, at PASSIVE_LEVEL.
        crate::image::call_driver("system thread", || unsafe { start(ctx.0 as PVOID) });
        // Terminated: the object is signalled.
        crate::event::signal(obj as PVOID);
        drop_ref(obj as PVOID);
    });
    if spawned.is_err() {
        violation("PsCreateSystemThread: the host cannot start a thread");
    }
    STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn ObReferenceObjectByHandle(
    handle: usize,
    _access: u32,
    _object_type: PVOID,
    _mode: i8,
    object: *mut PVOID,
    _info: PVOID,
) -> NTSTATUS {
    let obj = (handle & !HANDLE_BIT) as PVOID;
    if handle & HANDLE_BIT == 0 || object.is_null() || !add_ref(obj) {
        return STATUS_INVALID_HANDLE;
    }
    // SAFETY: the caller's out pointer.
    unsafe { *object = obj };
    STATUS_SUCCESS
}

#[no_mangle]
pub unsafe extern "system" fn ZwClose(handle: usize) -> NTSTATUS {
    if handle & HANDLE_BIT == 0 || !drop_ref((handle & !HANDLE_BIT) as PVOID) {
        violation(format!("ZwClose: {handle:#x} is not an open handle"));
        return STATUS_INVALID_HANDLE;
    }
    STATUS_SUCCESS
}
