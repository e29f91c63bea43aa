//! Issue 8, item 3: SafeWskSend / SafeWskReceive on buffers of every kind.
//!
//! WSK_BUF requires every MDL to describe "memory that is either locked or
//! from non-paged pool" (WSK_BUF, Microsoft Learn), and
//! MmBuildMdlForNonPagedPool "may not be used with MDLs describing buffers
//! allocated on a kernel stack". The host kernel knows paged from non-paged
//! pool and the calling thread's stack, can page paged pool out
//! (`hostkernel::page_out`), counts locked pages (a page left locked is a
//! leak) and reports an MDL that is neither locked nor non-paged when the
//! provider uses it. These tests send and receive from the stack, paged pool
//! (paged out before the call) and non-paged pool with and without
//! SAFEWSK_FLAG_NONPAGED_BUFFER; inject MmProbeAndLockPages failures; and
//! show that the host kernel's new checks fire.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::Duration;

use common::*;
use safewsk::nt::*;
use safewsk::*;

const POOL_FLAG_NON_PAGED: u64 = 0x40;
const POOL_FLAG_PAGED: u64 = 0x100;
const TAG: u32 = u32::from_le_bytes(*b"Test");
const STATUS_ACCESS_VIOLATION: NTSTATUS = 0xC000_0005_u32 as NTSTATUS;
const STATUS_WORKING_SET_QUOTA: NTSTATUS = 0xC000_00A1_u32 as NTSTATUS;

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
    fn IoAllocateMdl(va: PVOID, len: u32, secondary: u8, quota: u8, irp: *mut IRP) -> *mut MDL;
    fn IoFreeMdl(mdl: *mut MDL);
    fn MmProbeAndLockPages(mdl: *mut MDL, mode: i8, op: u32);
    fn MmUnlockPages(mdl: *mut MDL);
    fn HostKernelTakeRaisedException() -> NTSTATUS;
    fn IoAllocateIrp(stack: i8, quota: u8) -> *mut IRP;
    fn IoFreeIrp(irp: *mut IRP);
}

unsafe extern "system" fn keep(_: PVOID, _: *mut IRP, _: PVOID) -> NTSTATUS {
    STATUS_MORE_PROCESSING_REQUIRED
}

/// A pool block owned by a test, freed on drop.
struct Pool {
    p: *mut u8,
    len: usize,
}

impl Pool {
    fn new(flags: u64, len: usize) -> Pool {
        // SAFETY: plain allocation at PASSIVE_LEVEL.
        let p = unsafe { ExAllocatePool2(flags, len, TAG) };
        assert!(!p.is_null());
        Pool { p, len }
    }

    fn bytes(&mut self) -> &mut [u8] {
        // SAFETY: a live block of `len` zeroed bytes, resident (paged in).
        unsafe { std::slice::from_raw_parts_mut(self.p, self.len) }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: our block, freed once.
        unsafe { ExFreePoolWithTag(self.p, TAG) }
    }
}

fn send_raw(socket: *mut SAFEWSK_SOCKET, p: *const u8, len: usize, flags: u32) -> (NTSTATUS, u32) {
    let mut n = 0;
    // SAFETY: `p..p+len` is the test's buffer, valid for the call (or, in
    // the access-violation tests, deliberately inaccessible).
    let st = unsafe { SafeWskSend(socket, p.cast(), len as u32, flags, 2000, &mut n) };
    (st, n)
}

fn receive_raw(socket: *mut SAFEWSK_SOCKET, p: *mut u8, len: usize, flags: u32) -> (NTSTATUS, u32) {
    let mut n = 0;
    // SAFETY: as send_raw.
    let st = unsafe { SafeWskReceive(socket, p.cast(), len as u32, flags | WSK_FLAG_WAITALL, 2000, &mut n) };
    (st, n)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect()
}

/// Connects to an echo server, runs `f(socket)`, closes and cleans up.
fn with_echo_socket(f: impl FnOnce(*mut SAFEWSK_SOCKET)) {
    let server = echo_server("127.0.0.1:0").expect("server");
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    f(socket);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
}

/// The provider's WSK_SOCKET behind a socket handle. A driver never sees it
/// (the handle is opaque and the WSK_SOCKET stays the library's); a test
/// that calls the provider directly finds it through the host kernel: the
/// open WSK socket whose Linux socket has the handle's local port.
fn wsk_socket_of(socket: *mut SAFEWSK_SOCKET) -> *mut WSK_SOCKET {
    let mut b = [0u8; 28];
    // SAFETY: a 28-byte writable buffer; any handle value is safe.
    let st = unsafe { SafeWskGetLocalAddress(socket, b.as_mut_ptr().cast(), 28, 2000) };
    assert_eq!(st, STATUS_SUCCESS, "the handle names an open socket");
    let port = u16::from_be_bytes([b[2], b[3]]);
    let local_port = |fd: i32| {
        // SAFETY: sockaddr_storage is plain bytes: all zero is a valid value.
        let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: a valid descriptor and a sockaddr_storage-sized buffer.
        let rc = unsafe { libc::getsockname(fd, (&mut ss as *mut libc::sockaddr_storage).cast(), &mut len) };
        assert_eq!(rc, 0, "getsockname");
        // sin_port and sin6_port are both at offset 2, in network order.
        // SAFETY: at least 4 bytes of `ss` were written (any family).
        let bytes = unsafe { std::slice::from_raw_parts((&ss as *const libc::sockaddr_storage).cast::<u8>(), 4) };
        u16::from_be_bytes([bytes[2], bytes[3]])
    };
    let found: Vec<usize> = hostkernel::wsk::open_sockets()
        .into_iter()
        .filter(|&s| hostkernel::socket_fd(s as PVOID).is_some_and(|fd| local_port(fd) == port))
        .collect();
    assert_eq!(found.len(), 1, "one open WSK socket on local port {port}");
    found[0] as *mut WSK_SOCKET
}

fn finish_fails(k: Session) -> String {
    let err = catch_unwind(AssertUnwindSafe(|| k.finish())).expect_err("finish() must fail");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

fn assert_nothing_locked() {
    assert_eq!(hostkernel::live().locked_pages, 0, "pages left locked");
}

// ---------------------------------------------------------------------------
// Buffers of every kind
// ---------------------------------------------------------------------------

#[test]
fn stack_buffers_are_probed_and_locked() {
    let k = Session::begin();
    with_echo_socket(|socket| {
        // 3000 bytes on this thread's stack, spanning a page boundary.
        let mut out = [0u8; 3000];
        out.copy_from_slice(&pattern(3000, 1));
        let mut back = [0u8; 3000];
        assert_eq!(send_raw(socket, out.as_ptr(), out.len(), 0), (STATUS_SUCCESS, 3000));
        assert_eq!(receive_raw(socket, back.as_mut_ptr(), back.len(), 0), (STATUS_SUCCESS, 3000));
        assert_eq!(out, back);
        assert_nothing_locked();
    });
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    k.finish();
}

#[test]
fn paged_pool_buffers_are_paged_in_and_locked() {
    let k = Session::begin();
    with_echo_socket(|socket| {
        let len = 3 * 4096 + 100;
        let mut out = Pool::new(POOL_FLAG_PAGED, len);
        out.bytes().copy_from_slice(&pattern(len, 7));
        let mut back = Pool::new(POOL_FLAG_PAGED, len);
        // Both buffers paged out before the calls: the library must page
        // them in and keep them resident (MmProbeAndLockPages), not hand WSK
        // an MDL of paged-out memory.
        assert_eq!(hostkernel::page_out(out.p, len), 4);
        assert_eq!(hostkernel::page_out(back.p, len), 4);
        assert_eq!(send_raw(socket, out.p, len, 0), (STATUS_SUCCESS, len as u32));
        assert_eq!(receive_raw(socket, back.p, len, 0), (STATUS_SUCCESS, len as u32));
        hostkernel::page_in(out.p, len);
        hostkernel::page_in(back.p, len);
        assert_eq!(back.bytes(), &pattern(len, 7)[..]);
        assert_nothing_locked();
    });
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    k.finish();
}

#[test]
fn nonpaged_pool_buffers_work_with_and_without_the_flag() {
    let k = Session::begin();
    with_echo_socket(|socket| {
        for flag in [0, SAFEWSK_FLAG_NONPAGED_BUFFER] {
            let len = 5000;
            let mut out = Pool::new(POOL_FLAG_NON_PAGED, len);
            out.bytes().copy_from_slice(&pattern(len, flag.count_ones() as u8));
            let mut back = Pool::new(POOL_FLAG_NON_PAGED, len);
            let probes_before = hostkernel::allocations();
            assert_eq!(send_raw(socket, out.p, len, flag), (STATUS_SUCCESS, len as u32), "flag {flag:#x}");
            assert_eq!(receive_raw(socket, back.p, len, flag), (STATUS_SUCCESS, len as u32), "flag {flag:#x}");
            assert_eq!(back.bytes(), out.bytes(), "flag {flag:#x}");
            // No MDL allocated either way: a buffer of up to 64 KiB is
            // described by an MDL on the calling thread's stack.
            assert_eq!(hostkernel::allocations().mdls.0 - probes_before.mdls.0, 0);
            assert_nothing_locked();
        }
    });
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    k.finish();
}

#[test]
fn the_flag_is_stripped_before_wsk_and_still_checked() {
    let k = Session::begin();
    with_echo_socket(|socket| {
        let mut buf = Pool::new(POOL_FLAG_NON_PAGED, 16);
        // Unknown flags are still refused, with or without the new bit:
        // `Flags` is parameter 4 (the socket handle is parameter 1).
        for bad in [0x4, 0x8000_0004] {
            assert_eq!(send_raw(socket, buf.p, 16, bad).0, STATUS_INVALID_PARAMETER_4, "{bad:#x}");
            assert_eq!(receive_raw(socket, buf.p, 16, bad & !WSK_FLAG_WAITALL).0, STATUS_INVALID_PARAMETER_4);
        }
        let flags = WSK_FLAG_NODELAY | SAFEWSK_FLAG_NONPAGED_BUFFER;
        assert_eq!(send_raw(socket, buf.p, 16, flags), (STATUS_SUCCESS, 16));
        assert_eq!(receive_raw(socket, buf.p, 16, SAFEWSK_FLAG_NONPAGED_BUFFER), (STATUS_SUCCESS, 16));
        let _ = buf.bytes();
    });
    k.finish();
}

#[test]
fn a_buffer_stays_locked_while_the_call_is_pending() {
    let k = Session::begin();
    let (server, accepted) = silent_server();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    let len = 2 * 4096;
    let back = Pool::new(POOL_FLAG_PAGED, len);
    let (addr, s) = (back.p as usize, socket as usize);
    let waiter = std::thread::spawn(move || {
        let mut n = 0;
        let socket = s as *mut SAFEWSK_SOCKET;
        // SAFETY: the pool block outlives the call (joined below).
        unsafe { SafeWskReceive(socket, addr as PVOID, len as u32, 0, 300, &mut n) }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while hostkernel::live().locked_pages == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    // While WSK owns the buffer its pages are locked: they cannot be paged out.
    assert_eq!(hostkernel::live().locked_pages, 2);
    assert_eq!(hostkernel::page_out(back.p, len), 0, "locked pages must stay resident");
    assert_eq!(waiter.join().expect("receive thread"), STATUS_IO_TIMEOUT);
    // After the (timed out, cancelled, completed) IRP the pages are unlocked.
    assert_nothing_locked();
    assert_eq!(hostkernel::page_out(back.p, len), 2);
    hostkernel::page_in(back.p, len);
    drop(back);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    drop(accepted.join());
    k.finish();
}

// ---------------------------------------------------------------------------
// MmProbeAndLockPages raising
// ---------------------------------------------------------------------------

#[test]
fn an_injected_probe_exception_becomes_the_status() {
    for code in [STATUS_ACCESS_VIOLATION, STATUS_INSUFFICIENT_RESOURCES, STATUS_WORKING_SET_QUOTA] {
        let k = Session::begin();
        with_echo_socket(|socket| {
            let mut out = [7u8; 64];
            k.fail_probe(1, code);
            assert_eq!(send_raw(socket, out.as_ptr(), 64, 0), (code, 0), "send {code:#x}");
            assert!(k.fault_hit(Site::Probe));
            k.fail_probe(1, code);
            assert_eq!(receive_raw(socket, out.as_mut_ptr(), 64, 0), (code, 0), "receive {code:#x}");
            // Nothing was locked, the MDL was freed, the socket still works.
            assert_nothing_locked();
            assert_eq!(hostkernel::live().mdls, 0);
            assert_eq!(send_raw(socket, out.as_ptr(), 64, 0), (STATUS_SUCCESS, 64));
            assert_eq!(receive_raw(socket, out.as_mut_ptr(), 64, 0), (STATUS_SUCCESS, 64));
        });
        k.finish();
    }
}

#[test]
fn an_inaccessible_buffer_is_status_access_violation() {
    let k = Session::begin();
    with_echo_socket(|socket| {
        // An address range with no access at all: the real probe fails.
        // SAFETY: a fresh PROT_NONE mapping, unmapped below.
        let none = unsafe {
            libc::mmap(ptr::null_mut(), 8192, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0)
        };
        assert_ne!(none, libc::MAP_FAILED);
        assert_eq!(send_raw(socket, none.cast(), 100, 0), (STATUS_ACCESS_VIOLATION, 0));
        assert_eq!(receive_raw(socket, none.cast(), 100, 0), (STATUS_ACCESS_VIOLATION, 0));
        // Read-only memory: fine to send from, probed for write on receive.
        static READ_ONLY: [u8; 32] = [0x42; 32];
        assert_eq!(send_raw(socket, READ_ONLY.as_ptr(), 32, 0), (STATUS_SUCCESS, 32));
        assert_eq!(
            receive_raw(socket, READ_ONLY.as_ptr() as *mut u8, 32, 0),
            (STATUS_ACCESS_VIOLATION, 0),
            "IoWriteAccess probe of read-only memory"
        );
        let mut sink = [0u8; 32];
        assert_eq!(receive_raw(socket, sink.as_mut_ptr(), 32, 0), (STATUS_SUCCESS, 32));
        assert_eq!(sink, READ_ONLY);
        // SAFETY: the mapping made above.
        unsafe { libc::munmap(none, 8192) };
        assert_nothing_locked();
    });
    k.finish();
}

// ---------------------------------------------------------------------------
// The host kernel's new checks fire
// ---------------------------------------------------------------------------

#[test]
fn the_nonpaged_flag_on_a_stack_buffer_is_reported() {
    let k = Session::begin();
    with_echo_socket(|socket| {
        let out = [1u8; 100];
        // Wrong: the caller promises non-paged pool but passes its stack.
        let _ = send_raw(socket, out.as_ptr(), out.len(), SAFEWSK_FLAG_NONPAGED_BUFFER);
    });
    let msg = finish_fails(k);
    assert!(msg.contains("MmBuildMdlForNonPagedPool over the calling thread's stack"), "{msg}");
}

#[test]
fn the_nonpaged_flag_on_paged_pool_is_reported() {
    let k = Session::begin();
    with_echo_socket(|socket| {
        let out = Pool::new(POOL_FLAG_PAGED, 100);
        hostkernel::page_out(out.p, 100);
        // Wrong: paged pool, paged out, described as non-paged. The
        // provider refuses the WSK_BUF instead of faulting on it.
        let (st, _) = send_raw(socket, out.p, 100, SAFEWSK_FLAG_NONPAGED_BUFFER);
        assert_ne!(st, STATUS_SUCCESS);
        hostkernel::page_in(out.p, 100);
    });
    let msg = finish_fails(k);
    assert!(msg.contains("MmBuildMdlForNonPagedPool over paged pool"), "{msg}");
    assert!(msg.contains("describes paged-out memory"), "{msg}");
}

#[test]
fn unlock_misuse_and_locked_leaks_are_caught() {
    let k = Session::begin();
    let mut buf = [0u8; 64];
    // Deliberate misuse of MDLs over a live stack buffer, to see the checks
    // fire; the host kernel looks each MDL up before acting on it.
    // SAFETY: `buf` is 64 live bytes; the MDL only describes them.
    let mdl = unsafe { IoAllocateMdl(buf.as_mut_ptr().cast(), 64, 0, 0, ptr::null_mut()) };
    // SAFETY: a live MDL; unlocking it unlocked is the misuse under test
    // (reported, nothing unlocked).
    unsafe { MmUnlockPages(mdl) }; // wrong: never locked
                                   // SAFETY: the live MDL over `buf`, which stays alive and writable.
    unsafe { MmProbeAndLockPages(mdl, 0, 1) };
    // SAFETY: no preconditions (takes this thread's pending exception).
    assert_eq!(unsafe { HostKernelTakeRaisedException() }, STATUS_SUCCESS);
    assert_eq!(hostkernel::live().locked_pages, 1);
    // SAFETY: the live MDL, freed once; its locked pages are the leak under test.
    unsafe { IoFreeMdl(mdl) }; // wrong: still locked; the page stays locked (leak)
    let msg = finish_fails(k);
    assert!(msg.contains("MmUnlockPages: MDL") && msg.contains("is not locked"), "{msg}");
    assert!(msg.contains("still has its pages locked"), "{msg}");
    assert!(msg.contains("locked_pages: 1"), "{msg}");
}

#[test]
fn an_exception_nobody_handles_is_caught() {
    let k = Session::begin();
    let mut buf = [0u8; 64];
    k.fail_probe(1, STATUS_ACCESS_VIOLATION);
    // Deliberate misuse: the raised exception is never taken.
    // SAFETY: `buf` is 64 live bytes; the MDL only describes them.
    let mdl = unsafe { IoAllocateMdl(buf.as_mut_ptr().cast(), 64, 0, 0, ptr::null_mut()) };
    // SAFETY: the live MDL over `buf` (the injected failure raises instead
    // of locking).
    unsafe { MmProbeAndLockPages(mdl, 0, 1) };
    // SAFETY: the live MDL, not locked (the probe failed), freed once.
    unsafe { IoFreeMdl(mdl) };
    let msg = finish_fails(k);
    assert!(msg.contains("never handled"), "{msg}");
}

#[test]
fn a_wsk_buf_mdl_neither_locked_nor_nonpaged_is_reported() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Sync);
    with_echo_socket(|socket| {
        let data = [9u8; 32];
        // Deliberate misuse, bypassing safewsk: the provider's own WskSend
        // with an MDL that was allocated but neither built nor locked. The
        // IRP is set up as IoSetCompletionRoutine does and freed after the
        // provider completed it (it refuses the buffer at once).
        // SAFETY: `data` is 32 live bytes; the MDL only describes them.
        let mdl = unsafe { IoAllocateMdl(data.as_ptr() as PVOID, 32, 0, 0, ptr::null_mut()) };
        let mut buf = WSK_BUF { Mdl: mdl, Offset: 0, Length: 32 };
        // SAFETY: IoAllocateIrp has no preconditions at PASSIVE_LEVEL.
        let irp = unsafe { IoAllocateIrp(1, 0) };
        assert!(!irp.is_null());
        // SAFETY: a fresh, non-null IRP, ours alone.
        let next = unsafe { (*irp).Tail.CurrentStackLocation }.wrapping_sub(1);
        // SAFETY: a fresh IRP with one stack location starts one past it, so
        // `next` is that (only) stack location, inside the IRP.
        unsafe { (*next).CompletionRoutine = Some(keep) };
        // SAFETY: as above.
        unsafe { (*next).Control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL };
        // The handle is not the WSK_SOCKET: a driver cannot do this any
        // more; the test finds the provider's socket through the host.
        let wsk_socket = wsk_socket_of(socket);
        // SAFETY: an open WSK_SOCKET of the provider (the handle's).
        let dispatch = unsafe { (*wsk_socket).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
        // SAFETY: a connection socket's Dispatch is the provider's static
        // WSK_PROVIDER_CONNECTION_DISPATCH.
        let dispatch = unsafe { &*dispatch };
        let send = dispatch.WskSend.expect("WskSend");
        // SAFETY: the provider's WskSend on its own socket, with a WSK_BUF
        // and an IRP set up as above; it refuses the buffer and completes
        // the IRP before returning.
        assert_eq!(unsafe { send(wsk_socket, &mut buf, 0, irp) }, STATUS_INVALID_PARAMETER);
        // SAFETY: the IRP, completed (keep returned MORE_PROCESSING), ours again.
        unsafe { IoFreeIrp(irp) };
        // SAFETY: the live MDL, never locked, freed once.
        unsafe { IoFreeMdl(mdl) };
    });
    let msg = finish_fails(k);
    assert!(msg.contains("is neither built for non-paged pool, nor locked (MDL_PAGES_LOCKED), nor mapped"), "{msg}");
}

#[test]
fn touching_paged_out_memory_is_a_page_fault_that_is_fatal_only_at_dispatch_level() {
    let k = Session::begin();
    let mut p = Pool::new(POOL_FLAG_PAGED, 4096);
    p.bytes()[0] = 7;
    assert_eq!(hostkernel::page_out(p.p, 4096), 1);
    // At PASSIVE_LEVEL the fault pages the memory back in, as on Windows.
    // SAFETY: a live paged pool block of ours (paged out, not freed).
    assert_eq!(unsafe { ptr::read_volatile(p.p) }, 7);
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    // At DISPATCH_LEVEL the same fault is IRQL_NOT_LESS_OR_EQUAL.
    assert_eq!(hostkernel::page_out(p.p, 4096), 1);
    // SAFETY: as above.
    hostkernel::with_irql(2, || unsafe { ptr::write_volatile(p.p, 8) });
    assert_eq!(p.bytes()[0], 8);
    drop(p);
    let msg = finish_fails(k);
    assert!(msg.contains("page fault on paged-out pageable memory") && msg.contains("at IRQL 2"), "{msg}");
}
