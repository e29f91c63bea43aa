//! `__try { MmProbeAndLockPages(..); } __except (EXCEPTION_EXECUTE_HANDLER)
//! { return GetExceptionCode(); }` for Windows, without a C compiler.
//!
//! Rust has no `__try`, and the static library must build with nothing but
//! rustc (MinGW's gcc cannot compile `__try` either). So the guarded call is
//! a small assembly function, `safewsk_probe_and_lock_pages`, that carries
//! exactly the unwind and exception data a C compiler emits for that `__try`
//! (clang's own output for it was the model: `clang --target=<arch>-pc-
//! windows-msvc -S`): `.pdata`/`.xdata` with `__C_specific_handler` as the
//! language handler and a C scope table as its handler data:
//!
//! ```text
//! ULONG Count;                        1
//! struct { ULONG BeginAddress;        image-relative start of the call
//!          ULONG EndAddress;          image-relative end of the call, + 1
//!          ULONG HandlerAddress;      1 = EXCEPTION_EXECUTE_HANDLER (no filter)
//!          ULONG JumpTarget; }        image-relative address of the __except code
//! ```
//!
//! When MmProbeAndLockPages raises, the kernel's dispatcher finds this frame
//! through `.pdata`, calls `__C_specific_handler`, which sees the return
//! address inside [Begin, End) (End is +1, as clang writes it, because the
//! return address is the first byte after the call) and, the filter being the
//! constant EXCEPTION_EXECUTE_HANDLER, calls `RtlUnwindEx(EstablisherFrame,
//! ImageBase + JumpTarget, ExceptionRecord, ExceptionCode, ..)`: the stack is
//! unwound to this frame (SP as after the prologue, non-volatile registers
//! restored) and execution resumes at the jump target with the exception code
//! as the return value register (RAX on x64, X0 on ARM64). That is how
//! ReactOS's `__C_specific_handler` (sdk/lib/crt/except/amd64/
//! c_specific_handler.c) passes it, and what clang's and MSVC's code for
//! `GetExceptionCode()` in an `__except` block relies on. Wine 8.0's x64
//! `__C_specific_handler` passes 0 instead; a code that is not an error
//! status is therefore returned as STATUS_UNSUCCESSFUL, so that a caught
//! exception can never look like success.
//!
//! The MDL is not locked when an exception was caught (MmProbeAndLockPages
//! locks only after every page was probed), so the caller frees it without
//! MmUnlockPages.
//!
//! Both COFF targets assemble this with LLVM's integrated assembler:
//! x86_64-pc-windows-msvc, x86_64-pc-windows-gnu (the same `.seh_*`
//! directives) and aarch64-pc-windows-msvc (LLVM's ARM64 SEH directives).

use crate::nt::{CHAR, MDL, NTSTATUS};

extern "C" {
    /// `MmProbeAndLockPages(Mdl, AccessMode, Operation)` under
    /// `__try/__except`: STATUS_SUCCESS, or the code of the exception it
    /// raised (an error status, or STATUS_UNSUCCESSFUL; see the module docs).
    pub(super) fn safewsk_probe_and_lock_pages(Mdl: *mut MDL, AccessMode: CHAR, Operation: u32) -> NTSTATUS;
}

// x64: Microsoft x64 calling convention; the three arguments arrive in
// RCX, RDX, R8 and are passed on unchanged. The frame is 40 bytes: 32 of
// home space for the callee, 8 to keep RSP 16-byte aligned at the call.
#[cfg(target_arch = "x86_64")]
core::arch::global_asm!(
    ".text",
    ".def safewsk_probe_and_lock_pages",
    ".scl 2",
    ".type 32",
    ".endef",
    ".globl safewsk_probe_and_lock_pages",
    ".p2align 4",
    "safewsk_probe_and_lock_pages:",
    ".seh_proc safewsk_probe_and_lock_pages",
    ".seh_handler __C_specific_handler, @unwind, @except",
    "sub rsp, 40",
    ".seh_stackalloc 40",
    ".seh_endprologue",
    ".Lsafewsk_probe_try_begin:",
    "call MmProbeAndLockPages",
    ".Lsafewsk_probe_try_end:",
    "xor eax, eax",
    ".Lsafewsk_probe_return:",
    "add rsp, 40",
    "ret",
    // __except: RSP is this frame's again, EAX the exception code.
    ".Lsafewsk_probe_except:",
    "test eax, eax",
    "js .Lsafewsk_probe_return",
    "mov eax, 0xC0000001",
    "jmp .Lsafewsk_probe_return",
    ".seh_handlerdata",
    ".long 1",
    ".long .Lsafewsk_probe_try_begin@IMGREL",
    ".long .Lsafewsk_probe_try_end@IMGREL+1",
    ".long 1",
    ".long .Lsafewsk_probe_except@IMGREL",
    ".text",
    ".seh_endproc",
);

// ARM64: the arguments arrive in X0, W1, W2 and are passed on unchanged;
// the frame record (FP, LR) is the only thing saved.
#[cfg(target_arch = "aarch64")]
core::arch::global_asm!(
    ".text",
    ".def safewsk_probe_and_lock_pages",
    ".scl 2",
    ".type 32",
    ".endef",
    ".globl safewsk_probe_and_lock_pages",
    ".p2align 2",
    "safewsk_probe_and_lock_pages:",
    ".seh_proc safewsk_probe_and_lock_pages",
    ".seh_handler __C_specific_handler, @unwind, @except",
    "stp x29, x30, [sp, #-16]!",
    ".seh_save_fplr_x 16",
    "mov x29, sp",
    ".seh_set_fp",
    ".seh_endprologue",
    ".Lsafewsk_probe_try_begin:",
    "bl MmProbeAndLockPages",
    ".Lsafewsk_probe_try_end:",
    "mov w0, wzr",
    ".Lsafewsk_probe_return:",
    ".seh_startepilogue",
    "ldp x29, x30, [sp], #16",
    ".seh_save_fplr_x 16",
    ".seh_endepilogue",
    "ret",
    // __except: SP and FP are this frame's again, W0 the exception code.
    ".Lsafewsk_probe_except:",
    "cmp w0, #0",
    "b.lt .Lsafewsk_probe_return",
    "movz w0, #0x0001",
    "movk w0, #0xC000, lsl #16",
    "b .Lsafewsk_probe_return",
    ".seh_endfunclet",
    ".seh_handlerdata",
    ".word 1",
    ".word .Lsafewsk_probe_try_begin@IMGREL",
    ".word .Lsafewsk_probe_try_end@IMGREL+1",
    ".word 1",
    ".word .Lsafewsk_probe_except@IMGREL",
    ".text",
    ".seh_endproc",
);

// Control Flow Guard: the exception dispatcher calls the language handler
// (`__C_specific_handler`, through the image's import thunk) indirectly, so
// in a driver linked with /guard:cf it must be a valid call target. clang
// marks it exactly so when it compiles a `__try` with CFG on (`.gfids$y`
// entry); this does the same. link.exe reads `.gfids$y` only for /guard:cf
// images (MSVC's own CRT objects carry it into non-CFG images too); MinGW's
// ld does not know the section, so it is emitted for the MSVC targets only.
// The __except target needs no entry: it is reached by RtlUnwindEx's context
// restore, not by an indirect call (clang emits none for it either, even
// with -ehcontguard).
#[cfg(target_env = "msvc")]
core::arch::global_asm!(".section .gfids$y,\"dr\"", ".symidx __C_specific_handler", ".text");

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("safewsk's MmProbeAndLockPages exception handler exists for x64 and ARM64 Windows only");

// Control Flow Guard and `__CxxFrameHandler3`. The precompiled `core` that
// LTO compiles into this library was built with panic=unwind, so its
// functions name the MSVC C++ personality routine, `__CxxFrameHandler3`;
// inlined into the library's functions (built with panic=abort, so with no
// landing pad), the personality stays attached although no unwind data ever
// uses it (no `.xdata` of the library names it). Without CFG nothing
// references the symbol. With `-C control-flow-guard`, LLVM's CFG table
// (`.gfids$y`, WinCFGuard.cpp) lists every function whose address escapes,
// and a personality reference counts as an escape: the object then needs a
// `__CxxFrameHandler3` that no driver has (it is the C++ runtime's), and the
// kernel link fails. The alternatives: rebuilding `core` with panic=abort
// (`-Zbuild-std`, nightly only), stripping the entry from the object after
// the build (a tool step that safewsk.targets would have to run on every
// Windows build), or defining `__CxxFrameHandler3` (which would claim a C++
// runtime symbol in every driver that links the library). Instead the
// library tells the linker, in its own object's `.drectve` (what `#pragma
// comment(linker, "/alternatename:...")` emits; link.exe and lld-link both
// honour it), to resolve `__CxxFrameHandler3` to the library's
// `safewsk_unused_cxx_frame_handler` only if nothing else defines it. That
// function returns ExceptionContinueSearch (1), a personality routine's
// answer for a frame with nothing to handle; .ci/msvc checks that no unwind
// data of the linked image names it, so nothing calls it, and that it is the
// only symbol the `/ALTERNATENAME` resolves.
#[cfg(all(target_env = "msvc", target_arch = "x86_64"))]
core::arch::global_asm!(
    ".section .drectve,\"yn\"",
    ".ascii \" /ALTERNATENAME:__CxxFrameHandler3=safewsk_unused_cxx_frame_handler\"",
    ".text",
    ".def safewsk_unused_cxx_frame_handler",
    ".scl 2",
    ".type 32",
    ".endef",
    ".globl safewsk_unused_cxx_frame_handler",
    ".p2align 4",
    "safewsk_unused_cxx_frame_handler:",
    "mov eax, 1",
    "ret",
);

#[cfg(all(target_env = "msvc", target_arch = "aarch64"))]
core::arch::global_asm!(
    ".section .drectve,\"yn\"",
    ".ascii \" /ALTERNATENAME:__CxxFrameHandler3=safewsk_unused_cxx_frame_handler\"",
    ".text",
    ".def safewsk_unused_cxx_frame_handler",
    ".scl 2",
    ".type 32",
    ".endef",
    ".globl safewsk_unused_cxx_frame_handler",
    ".p2align 4",
    "safewsk_unused_cxx_frame_handler:",
    "mov w0, #1",
    "ret",
);
