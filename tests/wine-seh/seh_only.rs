//! Builds safewsk's `safewsk_probe_and_lock_pages` (src/kernel/platform/seh.rs, the
//! very file the library compiles) alone, for a user-mode PE test under Wine:
//! see .ci/wine-seh.
#![no_std]
#![allow(dead_code)]

mod nt {
    pub type CHAR = i8;
    pub type NTSTATUS = i32;
    pub enum MDL {}
}

#[path = "../../src/kernel/platform/seh.rs"]
mod seh;

#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    loop {}
}
