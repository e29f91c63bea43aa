//! The host kernel's checks must catch the mistakes they exist for, or the
//! "zero leaks, zero violations" assertions in the other tests prove nothing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

use hostkernel::Session;

extern "system" {
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
    let irp = unsafe { raw::IoAllocateIrp(1, 0) };
    assert!(!irp.is_null());
    assert!(finish_fails(k).contains("leaked"));
    // (the message lists the live objects)
}

#[test]
fn double_free_and_write_after_free_are_caught() {
    let k = Session::begin();
    // Deliberate misuse, to see the checks fire. The host kernel looks a
    // pointer up in its table before touching it, and quarantines freed
    // blocks instead of returning them to the allocator, so the misuse is
    // recorded rather than undefined.
    // SAFETY: IoAllocateIrp has no preconditions at PASSIVE_LEVEL.
    let irp = unsafe { raw::IoAllocateIrp(1, 0) };
    // SAFETY: a live IRP we allocated and no provider owns.
    unsafe { raw::IoFreeIrp(irp) };
    // SAFETY: the double free under test: the host kernel finds no live
    // IRP in its table and reports it without touching the memory.
    unsafe { raw::IoFreeIrp(irp) };
    // SAFETY: ExAllocatePool2 has no preconditions at PASSIVE_LEVEL.
    let p = unsafe { ExAllocatePool2(0x40, 64, 0x6b77_5353) };
    // SAFETY: a live pool block with this tag.
    unsafe { ExFreePoolWithTag(p, 0x6b77_5353) };
    // SAFETY: the write after free under test: the freed block is
    // quarantined (still allocated, 64 bytes), so byte 8 is writable memory.
    unsafe { *p.wrapping_add(8) = 1 };
    assert_eq!(hostkernel::violations().len(), 1, "double free");
    let msg = finish_fails(k);
    assert!(msg.contains("written after it was freed"), "{msg}");
}

#[test]
fn waiting_at_dispatch_level_is_a_violation() {
    let k = Session::begin();
    let mut ev = [0u64; 3];
    let mut zero_wait: i64 = -1;
    // SAFETY: `ev` is a writable, KEVENT-sized (24-byte) local buffer.
    unsafe { KeInitializeEvent(ev.as_mut_ptr().cast(), 0, 1) };
    // SAFETY: the event initialized just above (signalled, so the wait
    // returns at once); `zero_wait` is a writable timeout.
    hostkernel::with_irql(2, || unsafe { KeWaitForSingleObject(ev.as_mut_ptr().cast(), 0, 0, 0, &mut zero_wait) });
    assert!(finish_fails(k).contains("KeWaitForSingleObject at IRQL 2"));
}

mod raw {
    //! Raw WSK use, bypassing safewsk, to commit the mistakes on purpose.
    use safewsk::nt::*;

    extern "system" {
        pub fn IoAllocateIrp(stack: i8, quota: u8) -> *mut IRP;
        pub fn IoFreeIrp(irp: *mut IRP);
        pub fn IoCancelIrp(irp: *mut IRP) -> u8;
        pub fn IoReuseIrp(irp: *mut IRP, status: NTSTATUS);
        pub fn WskRegister(npi: *mut WSK_CLIENT_NPI, reg: *mut WSK_REGISTRATION) -> NTSTATUS;
        pub fn WskCaptureProviderNPI(reg: *mut WSK_REGISTRATION, wait: u32, npi: *mut WSK_PROVIDER_NPI) -> NTSTATUS;
        pub fn WskReleaseProviderNPI(reg: *mut WSK_REGISTRATION);
        pub fn WskDeregister(reg: *mut WSK_REGISTRATION);
    }

    pub unsafe extern "system" fn keep(_: PVOID, _: *mut IRP, _: PVOID) -> NTSTATUS {
        STATUS_MORE_PROCESSING_REQUIRED
    }

    /// An IRP with a completion routine set as IoSetCompletionRoutine does.
    pub unsafe fn irp() -> *mut IRP {
        // SAFETY: IoAllocateIrp has no preconditions at PASSIVE_LEVEL.
        let irp = unsafe { IoAllocateIrp(1, 0) };
        assert!(!irp.is_null());
        // SAFETY: fresh and ours.
        unsafe { set_completion(irp) };
        irp
    }

    /// Sets the completion routine as wdm.h's IoSetCompletionRoutine does.
    ///
    /// # Safety
    /// `irp` is ours, with one stack location, at its initial position.
    pub unsafe fn set_completion(irp: *mut IRP) {
        // SAFETY: a fresh, non-null IRP, ours alone.
        let next = unsafe { (*irp).Tail.CurrentStackLocation }.wrapping_sub(1);
        // SAFETY: a fresh IRP with one stack location starts one past it,
        // so `next` is that (only) stack location, inside the IRP.
        unsafe { (*next).CompletionRoutine = Some(keep) };
        // SAFETY: as above.
        unsafe { (*next).Control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL };
    }

    pub struct Client {
        pub reg: Box<WSK_REGISTRATION>,
        pub npi: WSK_PROVIDER_NPI,
        _client_npi: Box<WSK_CLIENT_NPI>,
        _dispatch: Box<WSK_CLIENT_DISPATCH>,
    }

    pub unsafe fn register() -> Client {
        let mut dispatch = Box::new(WSK_CLIENT_DISPATCH {
            Version: make_wsk_version(1, 0),
            Reserved: 0,
            WskClientEvent: std::ptr::null_mut(),
        });
        let mut client_npi = Box::new(WSK_CLIENT_NPI { ClientContext: std::ptr::null_mut(), Dispatch: &mut *dispatch });
        let mut reg = Box::new(WSK_REGISTRATION::zeroed());
        // SAFETY: the NPI, its dispatch and the registration are boxed and
        // returned in the Client, so they outlive the registration.
        assert_eq!(unsafe { WskRegister(&mut *client_npi, &mut *reg) }, STATUS_SUCCESS);
        let mut npi = WSK_PROVIDER_NPI { Client: std::ptr::null_mut(), Dispatch: std::ptr::null() };
        // SAFETY: the registration just made; `npi` is a writable out parameter.
        assert_eq!(unsafe { WskCaptureProviderNPI(&mut *reg, 0, &mut npi) }, STATUS_SUCCESS);
        Client { reg, npi, _client_npi: client_npi, _dispatch: dispatch }
    }

    pub unsafe fn connect(c: &Client, remote: &[u8; 28], irp: *mut IRP) -> NTSTATUS {
        let local = [2u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        // SAFETY: a captured provider NPI, whose Dispatch points to the
        // provider's static WSK_PROVIDER_DISPATCH.
        let f = unsafe { (*c.npi.Dispatch).WskSocketConnect }.expect("WskSocketConnect");
        // SAFETY: the provider's WskSocketConnect with its captured client,
        // address buffers of SOCKADDR_IN(6) size, and the caller's IRP (the
        // function's contract). The provider reads the addresses again when
        // the connect starts, which in the modes these tests use is before
        // the call returns (Sync) or never (Never), while `local` is alive.
        unsafe {
            f(
                c.npi.Client,
                SOCK_STREAM,
                IPPROTO_TCP,
                local.as_ptr() as *mut SOCKADDR,
                remote.as_ptr() as *mut SOCKADDR,
                0,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                irp,
            )
        }
    }

    /// Reinitializes an IRP that completed (or is fresh) for its next call:
    /// IoReuseIrp, then the completion routine.
    ///
    /// # Safety
    /// `irp` is ours (from [`irp`]) and no provider holds it.
    pub unsafe fn reuse(irp: *mut IRP) {
        // SAFETY: ours and idle (contract).
        unsafe { IoReuseIrp(irp, 0) };
        // SAFETY: reinitialized just now, ours.
        unsafe { set_completion(irp) };
    }

    /// WskSocketConnect to `remote` in the Sync completion mode: the socket.
    ///
    /// # Safety
    /// As [`connect`]; Sync mode (the IRP completes before this returns).
    pub unsafe fn connect_socket(c: &Client, remote: &[u8; 28], irp: *mut IRP) -> *mut WSK_SOCKET {
        // SAFETY: per the caller.
        unsafe { reuse(irp) };
        // SAFETY: per the caller.
        assert_eq!(unsafe { connect(c, remote, irp) }, STATUS_SUCCESS);
        // SAFETY: completed (Sync mode): ours again; Information is the socket.
        unsafe { (*irp).IoStatus.Information as *mut WSK_SOCKET }
    }

    /// WskCloseSocket through the socket's Dispatch (Sync mode), as a driver
    /// calls it, also on a socket already closed (the misuse some tests make).
    ///
    /// # Safety
    /// `socket` is a socket the provider made (open, or a block the host
    /// kept when it was closed); `irp` as for [`reuse`].
    pub unsafe fn close_socket(socket: *mut WSK_SOCKET, irp: *mut IRP) -> NTSTATUS {
        // SAFETY: per the caller.
        unsafe { reuse(irp) };
        // SAFETY: the socket's block is readable (contract); Dispatch is its
        // first member.
        let dispatch = unsafe { (*socket).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
        // SAFETY: the provider's connection dispatch table (a static).
        let close = unsafe { (*dispatch).Basic.WskCloseSocket }.expect("WskCloseSocket");
        // SAFETY: the provider's WskCloseSocket with a socket of its own and
        // our IRP.
        unsafe { close(socket, irp) }
    }
}

fn v4(addr: std::net::SocketAddr) -> [u8; 28] {
    let mut b = [0u8; 28];
    let std::net::SocketAddr::V4(a) = addr else { unreachable!() };
    b[0] = 2;
    b[2..4].copy_from_slice(&a.port().to_be_bytes());
    b[4..8].copy_from_slice(&a.ip().octets());
    b
}

/// safewsk keeps one IRP per socket and reuses it for every call; an IRP
/// issued again after its completion without IoReuseIrp carries a stale
/// Cancel flag, status and stack location ("Using IRPs with Winsock Kernel
/// Functions": reuse "a previously allocated IRP by calling IoReuseIrp").
#[test]
fn reusing_an_irp_without_ioreuseirp_is_caught() {
    let k = Session::begin();
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Sync);
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let mut c = unsafe { raw::register() };
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let irp = unsafe { raw::irp() };
    let closed = v4("127.0.0.1:9".parse().unwrap());
    // SAFETY: a registered client and a fresh IRP with a completion routine;
    // Sync mode completes it before returning.
    let first = unsafe { raw::connect(&c, &closed, irp) };
    assert!(first < 0, "a refused connect: {first:#x}");
    assert!(hostkernel::violations().is_empty());
    // Properly: IoReuseIrp, then the completion routine again.
    // SAFETY: completed, ours again, no cancel routine.
    unsafe { raw::IoReuseIrp(irp, 0) };
    // SAFETY: reinitialized, ours.
    unsafe { raw::set_completion(irp) };
    // SAFETY: as for the first connect.
    assert!(unsafe { raw::connect(&c, &closed, irp) } < 0);
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    // The misuse under test: issued again without IoReuseIrp.
    // SAFETY: completed and ours; the host refuses it before using it.
    unsafe { raw::set_completion(irp) };
    // SAFETY: the host kernel checks the IRP before taking it.
    let _ = unsafe { raw::connect(&c, &closed, irp) };
    assert!(
        hostkernel::violations().iter().any(|v| v.contains("without IoReuseIrp")),
        "{:?}",
        hostkernel::violations()
    );
    // SAFETY: never taken by the provider (refused): ours to free.
    unsafe { raw::IoFreeIrp(irp) };
    // SAFETY: the registration whose provider NPI `register` captured.
    unsafe { raw::WskReleaseProviderNPI(&mut *c.reg) };
    // SAFETY: the live registration, its NPI released.
    unsafe { raw::WskDeregister(&mut *c.reg) };
    assert!(finish_fails(k).contains("without IoReuseIrp"));
}

#[test]
fn freeing_an_irp_the_provider_still_owns_is_caught() {
    let k = Session::begin();
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Never);
    // Deliberate misuse of a raw WSK client, to see the check fire.
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let mut c = unsafe { raw::register() };
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let irp = unsafe { raw::irp() };
    // SAFETY: a registered client and a fresh IRP with a completion routine.
    let status = unsafe { raw::connect(&c, &v4("127.0.0.1:9".parse().unwrap()), irp) };
    assert_eq!(status, safewsk::nt::STATUS_PENDING);
    // SAFETY: the misuse under test: the host kernel sees that the provider
    // owns the IRP and reports it without freeing it.
    unsafe { raw::IoFreeIrp(irp) }; // wrong: still pending
    assert!(hostkernel::violations().iter().any(|v| v.contains("still pending in the provider")));
    // SAFETY: the IRP is still live (the free above was refused).
    unsafe { raw::IoCancelIrp(irp) };
    while hostkernel::violations().len() < 2 && hostkernel::live().irps == 1 {
        // wait for the cancelled completion, then free it properly
        std::thread::sleep(std::time::Duration::from_millis(5));
        // SAFETY: the IRP stays allocated until the IoFreeIrp below (the
        // completion routine `keep` does not free it).
        if unsafe { (*irp).IoStatus.Status } == safewsk::nt::STATUS_CANCELLED {
            break;
        }
    }
    // SAFETY: the IRP, completed and back with its driver.
    unsafe { raw::IoFreeIrp(irp) };
    // SAFETY: the registration whose provider NPI `register` captured.
    unsafe { raw::WskReleaseProviderNPI(&mut *c.reg) };
    // SAFETY: the live registration, its NPI released.
    unsafe { raw::WskDeregister(&mut *c.reg) };
    assert!(finish_fails(k).contains("still pending"));
}

#[test]
fn deregistering_with_a_socket_open_is_caught() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let k = Session::begin();
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Sync);
    // Deliberate misuse of a raw WSK client, to see the check fire.
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let mut c = unsafe { raw::register() };
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let irp = unsafe { raw::irp() };
    // SAFETY: a registered client and a fresh IRP with a completion routine.
    assert_eq!(unsafe { raw::connect(&c, &v4(addr), irp) }, safewsk::nt::STATUS_SUCCESS);
    // SAFETY: completed synchronously (Sync mode), so the IRP is ours again.
    unsafe { raw::IoFreeIrp(irp) };
    // SAFETY: the registration whose provider NPI `register` captured.
    unsafe { raw::WskReleaseProviderNPI(&mut *c.reg) };
    // SAFETY: the live registration; the open socket is the misuse under
    // test (reported; the host keeps the registration's record for it).
    unsafe { raw::WskDeregister(&mut *c.reg) }; // wrong: the socket is still open
    assert_eq!(hostkernel::live().sockets, 1);
    let msg = finish_fails(k);
    assert!(msg.contains("1 open socket"), "{msg}");
}

/// Re-initializing an event while a thread waits on it orphans the wait (on
/// Windows KeInitializeEvent empties the wait list): the host kernel reports
/// it, and the orphaned waiter does not wake on a later KeSetEvent.
#[test]
fn reinitializing_an_event_with_a_waiter_is_a_violation() {
    extern "system" {
        fn KeSetEvent(e: *mut u8, i: i32, w: u8) -> i32;
    }
    struct Ev(Box<[u64; 3]>);
    // SAFETY: a KEVENT is usable from any thread.
    unsafe impl Send for Ev {}
    let k = Session::begin();
    let ev = Ev(Box::new([0u64; 3]));
    let p = ev.0.as_ptr() as usize;
    // SAFETY: a KEVENT-sized buffer that outlives the waiter (joined below).
    unsafe { KeInitializeEvent(p as *mut u8, 0, 0) };
    let waiter = std::thread::spawn(move || {
        let mut timeout: i64 = -5_000_000; // 500 ms

        // SAFETY: as above; `timeout` is a writable local.
        unsafe { KeWaitForSingleObject(p as *mut u8, 0, 0, 0, &mut timeout) }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while hostkernel::waiters_on(p as *const std::ffi::c_void) == 0 {
        assert!(std::time::Instant::now() < deadline, "the waiter never waited");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    // SAFETY: the same live KEVENT buffer; re-initializing it under a
    // waiter is the misuse under test (reported by the host kernel).
    unsafe { KeInitializeEvent(p as *mut u8, 0, 0) };
    // SAFETY: the same live, initialized KEVENT.
    unsafe { KeSetEvent(p as *mut u8, 0, 0) };
    assert_eq!(waiter.join().expect("waiter"), 0x102, "the orphaned waiter must not be woken (STATUS_TIMEOUT)");
    drop(ev);
    assert!(finish_fails(k).contains("wait is orphaned"));
}

/// Driver code that the kernel calls after the image was unloaded (here a
/// DPC whose timer fires after unload) is a violation.
#[test]
fn driver_code_after_unload_is_a_violation() {
    extern "system" {
        fn KeInitializeTimer(t: *mut u8);
        fn KeInitializeDpc(d: *mut u8, r: unsafe extern "system" fn(*mut u8, *mut u8, *mut u8, *mut u8), c: *mut u8);
        fn KeSetTimer(t: *mut u8, due: i64, d: *mut u8) -> u8;
    }
    unsafe extern "system" fn dpc(_: *mut u8, _: *mut u8, _: *mut u8, _: *mut u8) {}
    let k = Session::begin();
    let mut timer = Box::new([0u64; 8]);
    let mut d = Box::new([0u64; 8]);
    // SAFETY: a writable 64-byte KTIMER buffer, alive until after the DPC ran.
    unsafe { KeInitializeTimer(timer.as_mut_ptr().cast()) };
    // SAFETY: a writable 64-byte KDPC buffer, alive until after the DPC ran;
    // `dpc` has the PKDEFERRED_ROUTINE signature.
    unsafe { KeInitializeDpc(d.as_mut_ptr().cast(), dpc, ptr::null_mut()) };
    // SAFETY: the timer and DPC initialized above, both alive until after
    // the DPC ran (waited for below).
    unsafe { KeSetTimer(timer.as_mut_ptr().cast(), -200_000, d.as_mut_ptr().cast()) }; // 20 ms
    hostkernel::unload_image();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while hostkernel::timer_counts().dpcs_returned == 0 {
        assert!(std::time::Instant::now() < deadline, "the DPC never ran");
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    assert!(finish_fails(k).contains("driver code called after its image was unloaded"));
}

/// Unregisters a raw client (its provider NPI first) and frees its IRP.
///
/// # Safety
/// `c` was registered by `raw::register` and has no open socket; `irp` is
/// ours and idle.
unsafe fn unregister(mut c: raw::Client, irp: *mut safewsk::nt::IRP) {
    // SAFETY: ours and idle (contract).
    unsafe { raw::IoFreeIrp(irp) };
    // SAFETY: the registration whose provider NPI `register` captured.
    unsafe { raw::WskReleaseProviderNPI(&mut *c.reg) };
    // SAFETY: the live registration, its NPI released.
    unsafe { raw::WskDeregister(&mut *c.reg) };
}

/// Issue 17: WSK frees the WSK_SOCKET at the close and may hand the same
/// memory to the next socket. With `set_reuse_socket_addresses(true)` the
/// host provider always does: connect -> close -> connect gives the same
/// address, and the most recently freed block goes first.
#[test]
fn with_address_reuse_the_next_socket_gets_the_last_freed_wsk_socket() {
    use safewsk::nt::STATUS_SUCCESS;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = v4(listener.local_addr().unwrap());
    let k = Session::begin();
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Sync);
    hostkernel::set_reuse_socket_addresses(true);
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let c = unsafe { raw::register() };
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let irp = unsafe { raw::irp() };
    // SAFETY: a registered client, our idle IRP, the Sync completion mode;
    // the same for every raw call below, with sockets the provider made.
    let first = unsafe { raw::connect_socket(&c, &remote, irp) };
    // SAFETY: as above.
    assert_eq!(unsafe { raw::close_socket(first, irp) }, STATUS_SUCCESS);
    // SAFETY: as above.
    let second = unsafe { raw::connect_socket(&c, &remote, irp) };
    eprintln!("first {first:p}, after its close the next socket is {second:p}");
    assert_eq!(second, first, "connect -> close -> connect must give the same WSK_SOCKET address");
    // Nothing freed now: a fresh block.
    // SAFETY: as above.
    let third = unsafe { raw::connect_socket(&c, &remote, irp) };
    assert_ne!(third, second);
    // Freed: `second`, then `third`; the most recently freed comes back first.
    // SAFETY: as above.
    assert_eq!(unsafe { raw::close_socket(second, irp) }, STATUS_SUCCESS);
    // SAFETY: as above.
    assert_eq!(unsafe { raw::close_socket(third, irp) }, STATUS_SUCCESS);
    // SAFETY: as above.
    let fourth = unsafe { raw::connect_socket(&c, &remote, irp) };
    // SAFETY: as above.
    let fifth = unsafe { raw::connect_socket(&c, &remote, irp) };
    assert_eq!((fourth, fifth), (third, second), "last freed, first reused");
    // SAFETY: as above.
    assert_eq!(unsafe { raw::close_socket(fourth, irp) }, STATUS_SUCCESS);
    // SAFETY: as above.
    assert_eq!(unsafe { raw::close_socket(fifth, irp) }, STATUS_SUCCESS);
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    // SAFETY: registered by raw::register, no socket open, the IRP idle.
    unsafe { unregister(c, irp) };
    k.finish();
}

/// A freed WSK_SOCKET kept for reuse is poisoned: a call through its stale
/// Dispatch is a violation (not a jump through 0xDDDD...), and a write into
/// the freed block is reported when the block is handed out again.
#[test]
fn a_freed_wsk_socket_kept_for_reuse_catches_use_after_free() {
    use safewsk::nt::STATUS_SUCCESS;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = v4(listener.local_addr().unwrap());
    let k = Session::begin();
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Sync);
    hostkernel::set_reuse_socket_addresses(true);
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let c = unsafe { raw::register() };
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let irp = unsafe { raw::irp() };
    // SAFETY: a registered client, our idle IRP, the Sync completion mode;
    // the same for every raw call below, with sockets the provider made
    // (the stale one kept by the host, so its memory stays readable).
    let socket = unsafe { raw::connect_socket(&c, &remote, irp) };
    // SAFETY: as above.
    assert_eq!(unsafe { raw::close_socket(socket, irp) }, STATUS_SUCCESS);
    // The misuse under test: a second close through the freed socket.
    // SAFETY: as above; the freed Dispatch refuses without taking the IRP.
    let st = unsafe { raw::close_socket(socket, irp) };
    assert_eq!(st, safewsk::nt::STATUS_INVALID_PARAMETER);
    assert!(
        hostkernel::violations().iter().any(|v| v.contains("WskCloseSocket called through a freed WSK_SOCKET")),
        "{:?}",
        hostkernel::violations()
    );
    // The misuse under test: a write into the freed block (byte 8, after
    // Dispatch), seen when the block is reused.
    // SAFETY: the block is kept allocated by the host (16 bytes): byte 8
    // is writable memory.
    unsafe { socket.cast::<u8>().wrapping_add(8).write(0) };
    // SAFETY: as above.
    let again = unsafe { raw::connect_socket(&c, &remote, irp) };
    assert_eq!(again, socket);
    assert!(hostkernel::violations().iter().any(|v| v.contains("written after WskCloseSocket freed it")));
    // SAFETY: as above.
    assert_eq!(unsafe { raw::close_socket(again, irp) }, STATUS_SUCCESS);
    // SAFETY: registered by raw::register, no socket open, the IRP idle.
    unsafe { unregister(c, irp) };
    let msg = finish_fails(k);
    assert!(msg.contains("called through a freed WSK_SOCKET"), "{msg}");
}

/// Issue 17: the spin-lock routines count every acquisition, per thread and
/// in total; the host kernel's own locking does not count.
#[test]
fn spin_lock_acquisitions_are_counted_per_thread_and_in_total() {
    extern "system" {
        fn KeAcquireSpinLockRaiseToDpc(lock: *mut usize) -> u8;
        fn KeReleaseSpinLock(lock: *mut usize, old: u8);
        fn KeAcquireSpinLockAtDpcLevel(lock: *mut usize);
        fn KeReleaseSpinLockFromDpcLevel(lock: *mut usize);
        fn KeAcquireInStackQueuedSpinLock(lock: *mut usize, handle: *mut [usize; 3]);
        fn KeReleaseInStackQueuedSpinLock(handle: *mut [usize; 3]);
        fn KeTryToAcquireSpinLockAtDpcLevel(lock: *mut usize) -> u8;
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let remote = v4(listener.local_addr().unwrap());
    let k = Session::begin();
    assert_eq!(hostkernel::spin_lock_acquisitions(), 0, "reset by Session::begin");
    let here = hostkernel::spin_lock_acquisitions_on_this_thread();
    let lock = Box::into_raw(Box::new(0usize)) as usize;
    for _ in 0..2 {
        // SAFETY: a live, pointer-aligned KSPIN_LOCK word at PASSIVE_LEVEL.
        let old = unsafe { KeAcquireSpinLockRaiseToDpc(lock as *mut usize) };
        // SAFETY: held by this thread; `old` is the IRQL it returned.
        unsafe { KeReleaseSpinLock(lock as *mut usize, old) };
    }
    assert_eq!(hostkernel::spin_lock_acquisitions_on_this_thread() - here, 2);
    let other = std::thread::spawn(move || {
        let mut handle = [0usize; 3];
        // SAFETY: the live KSPIN_LOCK; `handle` is KLOCK_QUEUE_HANDLE-sized.
        unsafe { KeAcquireInStackQueuedSpinLock(lock as *mut usize, &mut handle) };
        // SAFETY: the handle of the acquire just above, on this thread.
        unsafe { KeReleaseInStackQueuedSpinLock(&mut handle) };
        hostkernel::with_irql(2, || {
            // SAFETY: the live KSPIN_LOCK, at DISPATCH_LEVEL.
            unsafe { KeAcquireSpinLockAtDpcLevel(lock as *mut usize) };
            // SAFETY: held by this thread, at DISPATCH_LEVEL; a try on a
            // held lock fails (and counts).
            assert_eq!(unsafe { KeTryToAcquireSpinLockAtDpcLevel(lock as *mut usize) }, 0);
            // SAFETY: held by this thread, at DISPATCH_LEVEL.
            unsafe { KeReleaseSpinLockFromDpcLevel(lock as *mut usize) };
        });
        hostkernel::spin_lock_acquisitions_on_this_thread()
    });
    assert_eq!(other.join().unwrap(), 3, "the other thread's own count");
    assert_eq!(hostkernel::spin_lock_acquisitions_on_this_thread() - here, 2, "not this thread's");
    assert_eq!(hostkernel::spin_lock_acquisitions(), 5, "all threads");
    // The host kernel's own locking (IRPs, the provider, its event loop) is
    // not counted: a raw WSK connect and close through the provider.
    hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Sync);
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let c = unsafe { raw::register() };
    // SAFETY: at PASSIVE_LEVEL, in a session.
    let irp = unsafe { raw::irp() };
    // SAFETY: a registered client, our idle IRP, the Sync completion mode.
    let socket = unsafe { raw::connect_socket(&c, &remote, irp) };
    // SAFETY: as above, with the socket the provider made.
    assert_eq!(unsafe { raw::close_socket(socket, irp) }, safewsk::nt::STATUS_SUCCESS);
    // SAFETY: registered by raw::register, no socket open, the IRP idle.
    unsafe { unregister(c, irp) };
    assert_eq!(hostkernel::spin_lock_acquisitions(), 5, "the host kernel's own locking counted");
    // SAFETY: the Box leaked above, no longer used by anyone.
    drop(unsafe { Box::from_raw(lock as *mut usize) });
    k.finish();
}

/// A spin-lock routine at the wrong IRQL, and a release of a lock not held,
/// are violations.
#[test]
fn spin_lock_misuse_is_a_violation() {
    extern "system" {
        fn KeAcquireSpinLockAtDpcLevel(lock: *mut usize);
        fn KeReleaseSpinLockFromDpcLevel(lock: *mut usize);
    }
    let k = Session::begin();
    let mut lock = 0usize;
    // SAFETY: a live KSPIN_LOCK word; the misuse under test is the IRQL
    // (PASSIVE_LEVEL), which the host reports and otherwise goes on.
    unsafe { KeAcquireSpinLockAtDpcLevel(&mut lock) };
    // SAFETY: held by this thread; the same misuse.
    unsafe { KeReleaseSpinLockFromDpcLevel(&mut lock) };
    // SAFETY: a live word, not held: the misuse under test.
    hostkernel::with_irql(2, || unsafe { KeReleaseSpinLockFromDpcLevel(&mut lock) });
    let msg = finish_fails(k);
    assert!(msg.contains("KeAcquireSpinLockAtDpcLevel at IRQL 0"), "{msg}");
    assert!(msg.contains("not held by this thread"), "{msg}");
}

/// The header of an MDL in caller storage, as MmInitializeMdl writes it
/// (x64 `struct _MDL`), followed by room for 4 PFNs.
#[repr(C, align(16))]
struct StackMdl {
    next: usize,
    size: u16,
    flags: u16,
    processor: u16,
    reserved: u16,
    process: usize,
    mapped_system_va: usize,
    start_va: usize,
    byte_count: u32,
    byte_offset: u32,
    pfns: [u64; 4],
}

impl StackMdl {
    /// MmInitializeMdl(this, va, len), with `Size` off by `size_error`.
    fn new(va: *const u8, len: u32, size_error: i32) -> StackMdl {
        let offset = va as usize & 0xFFF;
        let pages = (offset + len as usize).div_ceil(4096);
        let size = 0x30 + 8 * pages as i32 + size_error;
        StackMdl {
            next: 0,
            size: size as u16,
            flags: 0,
            processor: 0,
            reserved: 0,
            process: 0,
            mapped_system_va: 0,
            start_va: va as usize - offset,
            byte_count: len,
            byte_offset: offset as u32,
            pfns: [0; 4],
        }
    }
}

/// Issue 17: an MDL the driver set up in its own storage (MmInitializeMdl)
/// must carry `Size` = sizeof(MDL) + sizeof(PFN_NUMBER) *
/// ADDRESS_AND_SIZE_TO_SPAN_PAGES(BaseVa, Length) ("MmInitializeMdl",
/// "MmSizeOfMdl", Microsoft Learn). The right Size passes; one PFN more is a
/// violation (the MDL is still used); one PFN less is refused.
#[test]
fn a_caller_storage_mdl_with_a_wrong_size_is_a_violation() {
    extern "system" {
        fn MmProbeAndLockPages(mdl: *mut StackMdl, mode: i8, operation: u32);
        fn MmUnlockPages(mdl: *mut StackMdl);
    }
    let k = Session::begin();
    // Two pages' worth of data spanning three pages.
    let data = vec![7u8; 3 * 4096];
    let va = data.as_ptr().wrapping_add(4096 - (data.as_ptr() as usize & 0xFFF) + 100);
    let mut right = StackMdl::new(va, 8192, 0);
    assert_eq!(right.size, 0x30 + 3 * 8);
    // SAFETY: a header set up as MmInitializeMdl does over `data`, which
    // outlives the lock; KernelMode, IoReadAccess, at PASSIVE_LEVEL.
    unsafe { MmProbeAndLockPages(&mut right, 0, 0) };
    assert!(hostkernel::violations().is_empty(), "{:?}", hostkernel::violations());
    // SAFETY: locked just above.
    unsafe { MmUnlockPages(&mut right) };
    let mut too_big = StackMdl::new(va, 8192, 8);
    // SAFETY: as above; the wrong Size is the misuse under test (reported,
    // and the MDL is still locked: its storage is large enough).
    unsafe { MmProbeAndLockPages(&mut too_big, 0, 0) };
    assert!(hostkernel::violations().iter().any(|v| v.contains("has Size 80")), "{:?}", hostkernel::violations());
    // SAFETY: locked just above.
    unsafe { MmUnlockPages(&mut too_big) };
    let mut too_small = StackMdl::new(va, 8192, -8);
    // SAFETY: as above; refused before anything is written.
    unsafe { MmProbeAndLockPages(&mut too_small, 0, 0) };
    assert_eq!(too_small.flags, 0, "not locked");
    drop(data);
    let msg = finish_fails(k);
    assert!(msg.contains("has Size 80, but MmInitializeMdl sets"), "{msg}");
    assert!(msg.contains("no MmInitializeMdl header: Size 64"), "{msg}");
}
