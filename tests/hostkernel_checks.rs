//! The host kernel's checks must catch the mistakes they exist for, or the
//! "zero leaks, zero violations" assertions in the other tests prove nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use hostkernel::Session;

extern "system" {
    fn IoAllocateIrp(stack: i8, quota: u8) -> *mut u8;
    fn IoFreeIrp(irp: *mut u8);
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
    fn KeInitializeEvent(e: *mut u8, ty: u32, state: u8);
    fn KeWaitForSingleObject(o: *mut u8, r: u32, m: i8, a: u8, t: *mut i64) -> i32;
}

fn finish_fails(k: Session) -> String {
    let err = catch_unwind(AssertUnwindSafe(|| k.finish())).expect_err("finish() must fail");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn a_leaked_irp_fails_the_test() {
    let k = Session::begin();
    // SAFETY: plain allocation.
    let irp = unsafe { IoAllocateIrp(1, 0) };
    assert!(!irp.is_null());
    assert!(finish_fails(k).contains("leaked"));
}

#[test]
fn double_free_and_write_after_free_are_caught() {
    let k = Session::begin();
    // SAFETY: deliberately misusing an IRP we own, to see the check fire.
    unsafe {
        let irp = IoAllocateIrp(1, 0);
        IoFreeIrp(irp);
        IoFreeIrp(irp);
        let p = ExAllocatePool2(0x40, 64, 0x6b77_5353);
        ExFreePoolWithTag(p, 0x6b77_5353);
        *p.add(8) = 1; // write after free (the block is quarantined, so this is safe here)
    }
    assert_eq!(hostkernel::violations().len(), 1, "double free");
    let msg = finish_fails(k);
    assert!(msg.contains("written after it was freed"), "{msg}");
}

#[test]
fn waiting_at_dispatch_level_is_a_violation() {
    let k = Session::begin();
    let mut ev = [0u64; 3];
    let mut zero_wait: i64 = -1;
    // SAFETY: a KEVENT-sized buffer.
    unsafe {
        KeInitializeEvent(ev.as_mut_ptr().cast(), 0, 1);
        hostkernel::with_irql(2, || KeWaitForSingleObject(ev.as_mut_ptr().cast(), 0, 0, 0, &mut zero_wait));
        let _ = ptr::null::<u8>();
    }
    assert!(finish_fails(k).contains("KeWaitForSingleObject at IRQL 2"));
}
