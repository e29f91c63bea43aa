//! Issue 18, item 7: the host kernel behaves as Windows does, where the
//! facts are known.
//!
//! - WskSocket with a NULL (or unknown) client and an IRP returns
//!   STATUS_INVALID_HANDLE without completing the IRP; with no IRP,
//!   STATUS_INVALID_PARAMETER. Source: Wine's
//!   dlls/ntoskrnl.exe/tests/driver_netio.c, test_wsk_listen_socket (its
//!   expectations are run on Windows): the IRP is reused at once, and the
//!   next WskSocket's wait on the completion event would end early, with
//!   IoStatus still 0xdeadbeef, had it been completed.
//! - A bind to a local address in use completes with
//!   STATUS_ADDRESS_ALREADY_EXISTS (0xC000020A), the status Microsoft Learn's
//!   "Sharing Transport Addresses" gives WSK for INUSE, and the one
//!   WireGuard-NT's driver/socket.c (SocketInit) retries on when the port it
//!   bound over IPv4 is taken over IPv6, on Windows. Wine's driver_netio.c
//!   loops on STATUS_ADDRESS_ALREADY_ASSOCIATED (0xC0000328) around its
//!   WskBind to a fixed port, but that status is what Wine's own netio.sys
//!   maps WSAEADDRINUSE to (dlls/netio.sys/netio.c, sock_error_to_ntstatus),
//!   the loop body only runs when the port is taken (not a case Windows test
//!   runs meet), and on Windows STATUS_ADDRESS_ALREADY_ASSOCIATED is AFD's
//!   answer for a socket that is already bound (Wine's
//!   dlls/ws2_32/tests/afd.c, test_bind: a second IOCTL_AFD_BIND on a bound
//!   socket), while a second socket binding an address in use gets
//!   STATUS_SHARING_VIOLATION from AFD — the TDI translation of TCP/IP's
//!   STATUS_ADDRESS_ALREADY_EXISTS.

mod common;
mod issue18;

use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};

use common::*;
use issue18::*;
use safewsk::nt::*;
use safewsk::*;

const STATUS_INVALID_HANDLE: NTSTATUS = 0xC000_0008_u32 as NTSTATUS;
const STATUS_ADDRESS_ALREADY_ASSOCIATED: NTSTATUS = 0xC000_0328_u32 as NTSTATUS;
const AF_INET_: u16 = 2;

mod raw {
    //! Raw WSK use, bypassing safewsk.
    use super::*;

    extern "system" {
        pub fn IoAllocateIrp(stack: i8, quota: u8) -> *mut IRP;
        pub fn IoFreeIrp(irp: *mut IRP);
        pub fn IoReuseIrp(irp: *mut IRP, status: NTSTATUS);
        pub fn WskRegister(npi: *mut WSK_CLIENT_NPI, reg: *mut WSK_REGISTRATION) -> NTSTATUS;
        pub fn WskCaptureProviderNPI(reg: *mut WSK_REGISTRATION, wait: u32, npi: *mut WSK_PROVIDER_NPI) -> NTSTATUS;
        pub fn WskReleaseProviderNPI(reg: *mut WSK_REGISTRATION);
        pub fn WskDeregister(reg: *mut WSK_REGISTRATION);
    }

    /// Completions seen by [`counted`].
    pub static COMPLETIONS: AtomicU32 = AtomicU32::new(0);

    pub unsafe extern "system" fn counted(_: PVOID, _: *mut IRP, _: PVOID) -> NTSTATUS {
        COMPLETIONS.fetch_add(1, Ordering::SeqCst);
        STATUS_MORE_PROCESSING_REQUIRED
    }

    /// Sets [`counted`] as the completion routine, as IoSetCompletionRoutine
    /// does.
    ///
    /// # Safety
    /// `irp` is ours, with one stack location, at its initial position.
    pub unsafe fn set_completion(irp: *mut IRP) {
        // SAFETY: a non-null IRP, ours alone.
        let next = unsafe { (*irp).Tail.CurrentStackLocation }.wrapping_sub(1);
        // SAFETY: a fresh (or reused) IRP with one stack location starts one
        // past it, so `next` is that stack location, inside the IRP.
        unsafe { (*next).CompletionRoutine = Some(counted) };
        // SAFETY: as above.
        unsafe { (*next).Control = SL_INVOKE_ON_SUCCESS | SL_INVOKE_ON_ERROR | SL_INVOKE_ON_CANCEL };
    }

    pub struct Client {
        pub reg: Box<WSK_REGISTRATION>,
        pub npi: WSK_PROVIDER_NPI,
        _client_npi: Box<WSK_CLIENT_NPI>,
        _dispatch: Box<WSK_CLIENT_DISPATCH>,
    }

    /// # Safety
    /// PASSIVE_LEVEL.
    pub unsafe fn register() -> Client {
        let mut dispatch = Box::new(WSK_CLIENT_DISPATCH {
            Version: make_wsk_version(1, 0),
            Reserved: 0,
            WskClientEvent: ptr::null_mut(),
        });
        let mut client_npi = Box::new(WSK_CLIENT_NPI { ClientContext: ptr::null_mut(), Dispatch: &mut *dispatch });
        let mut reg = Box::new(WSK_REGISTRATION::zeroed());
        // SAFETY: boxed NPI, dispatch and registration, returned in the Client
        // so they outlive the registration.
        assert_eq!(unsafe { WskRegister(&mut *client_npi, &mut *reg) }, STATUS_SUCCESS);
        let mut npi = WSK_PROVIDER_NPI { Client: ptr::null_mut(), Dispatch: ptr::null() };
        // SAFETY: the registration just made; a writable out parameter.
        assert_eq!(unsafe { WskCaptureProviderNPI(&mut *reg, 0, &mut npi) }, STATUS_SUCCESS);
        Client { reg, npi, _client_npi: client_npi, _dispatch: dispatch }
    }

    /// The provider's WskSocket.
    pub fn wsk_socket(c: &Client) -> PFN_WSK_SOCKET {
        // SAFETY: a captured NPI's static provider dispatch table.
        let entry = unsafe { (*c.npi.Dispatch).WskSocket };
        assert!(!entry.is_null());
        // SAFETY: WSK_PROVIDER_DISPATCH's WskSocket is a PFN_WSK_SOCKET.
        unsafe { std::mem::transmute::<PVOID, PFN_WSK_SOCKET>(entry) }
    }
}

/// WskSocket(client, AF_INET, SOCK_STREAM, IPPROTO_TCP,
/// WSK_FLAG_CONNECTION_SOCKET, ..., irp).
///
/// # Safety
/// `irp` is NULL or a live IRP of ours with its completion routine set.
unsafe fn socket(c: &raw::Client, client: PWSK_CLIENT, irp: *mut IRP) -> NTSTATUS {
    let f = raw::wsk_socket(c);
    // SAFETY: the provider's WskSocket with constant arguments; the caller's
    // IRP.
    unsafe {
        f(
            client,
            AF_INET_,
            SOCK_STREAM,
            IPPROTO_TCP,
            WSK_FLAG_CONNECTION_SOCKET,
            ptr::null_mut(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            irp,
        )
    }
}

#[test]
fn wsk_socket_with_a_null_or_unknown_client_returns_invalid_handle_without_completing_the_irp() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Sync);
    // SAFETY: PASSIVE_LEVEL, in a session.
    let mut c = unsafe { raw::register() };
    // SAFETY: no precondition at PASSIVE_LEVEL.
    let irp = unsafe { raw::IoAllocateIrp(1, 0) };
    assert!(!irp.is_null());

    // SAFETY: no IRP: the provider must not touch one.
    let st = unsafe { socket(&c, ptr::null_mut(), ptr::null_mut()) };
    assert_eq!(st, STATUS_INVALID_PARAMETER, "NULL client, no IRP");

    for (what, client) in [("NULL client", ptr::null_mut()), ("unknown client", 0x1234_5678usize as PWSK_CLIENT)] {
        // SAFETY: ours, idle.
        unsafe { raw::IoReuseIrp(irp, STATUS_UNSUCCESSFUL) };
        // SAFETY: reinitialized, ours.
        unsafe { raw::set_completion(irp) };
        // SAFETY: ours; a sentinel in its IoStatus, as driver_netio.c's
        // 0xdeadbeef.
        unsafe { (*irp).IoStatus.Status = 0x0BAD_BEEF };
        let before = raw::COMPLETIONS.load(Ordering::SeqCst);
        // SAFETY: a live IRP with its completion routine.
        let st = unsafe { socket(&c, client, irp) };
        println!("WskSocket, {what}, with an IRP: {st:#x}");
        assert_eq!(st, STATUS_INVALID_HANDLE, "{what}");
        assert_eq!(raw::COMPLETIONS.load(Ordering::SeqCst), before, "{what}: the IRP was not completed");
        // SAFETY: ours (never taken).
        assert_eq!(unsafe { (*irp).IoStatus.Status }, 0x0BAD_BEEF, "{what}: IoStatus untouched");
    }

    // The captured client works with the same IRP (Sync: completed before
    // WskSocket returns).
    // SAFETY: ours, idle.
    unsafe { raw::IoReuseIrp(irp, STATUS_UNSUCCESSFUL) };
    // SAFETY: reinitialized, ours.
    unsafe { raw::set_completion(irp) };
    let before = raw::COMPLETIONS.load(Ordering::SeqCst);
    // SAFETY: a live IRP with its completion routine.
    assert_eq!(unsafe { socket(&c, c.npi.Client, irp) }, STATUS_SUCCESS);
    assert_eq!(raw::COMPLETIONS.load(Ordering::SeqCst), before + 1);
    // SAFETY: completed: ours again.
    let made = unsafe { (*irp).IoStatus.Information } as *mut WSK_SOCKET;
    assert!(!made.is_null());
    // SAFETY: a socket the provider made (live until its close).
    let table = unsafe { (*made).Dispatch }.cast::<WSK_PROVIDER_CONNECTION_DISPATCH>();
    // SAFETY: a connection socket's Dispatch is its provider's static
    // connection table.
    let close = unsafe { (*table).Basic.WskCloseSocket }.expect("WskCloseSocket");
    // SAFETY: ours, completed.
    unsafe { raw::IoReuseIrp(irp, STATUS_UNSUCCESSFUL) };
    // SAFETY: reinitialized, ours.
    unsafe { raw::set_completion(irp) };
    // SAFETY: the open socket, no call in progress; our IRP.
    assert_eq!(unsafe { close(made, irp) }, STATUS_SUCCESS);
    // SAFETY: completed (Sync): ours to free.
    unsafe { raw::IoFreeIrp(irp) };
    // SAFETY: the registration whose provider NPI was captured.
    unsafe { raw::WskReleaseProviderNPI(&mut *c.reg) };
    // SAFETY: the live registration, its NPI released, no socket open.
    unsafe { raw::WskDeregister(&mut *c.reg) };
    let v = hostkernel::violations();
    assert!(v.is_empty(), "{v:#?}");
    k.finish();
}

/// Binding to a local address in use: STATUS_ADDRESS_ALREADY_EXISTS, through
/// WskSocketConnect (SafeWskSocketConnect with that LocalAddress) and
/// through WskBind (SafeWskSocketConnectWithOptions); never
/// STATUS_ADDRESS_ALREADY_ASSOCIATED.
#[test]
fn a_bind_to_an_address_in_use_is_address_already_exists() {
    let k = Session::begin();
    let client = startup();
    let server = echo_server("127.0.0.1:0").expect("echo");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let local = Addr::from(taken.local_addr().expect("addr"));
    let remote = Addr::from(server);
    let mut s = ptr::null_mut();
    // SAFETY: valid addresses and out pointer.
    let st = unsafe {
        SafeWskSocketConnect(
            client,
            SOCK_STREAM,
            IPPROTO_TCP,
            local.ptr(),
            remote.ptr(),
            0,
            ptr::null_mut(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            &mut s,
            2000,
        )
    };
    println!("WskSocketConnect from an address in use: {st:#x}");
    assert_eq!(st, STATUS_ADDRESS_ALREADY_EXISTS);
    assert_ne!(st, STATUS_ADDRESS_ALREADY_ASSOCIATED);
    // SAFETY: valid addresses and out pointer.
    let st = unsafe {
        SafeWskSocketConnectWithOptions(
            client,
            local.ptr(),
            remote.ptr(),
            ptr::null(),
            ptr::null_mut(),
            ptr::null(),
            &mut s,
            2000,
        )
    };
    println!("WskBind to an address in use: {st:#x}");
    assert_eq!(st, STATUS_ADDRESS_ALREADY_EXISTS);
    assert!(s.is_null());
    assert!(host_sockets().is_empty(), "the half-made socket was closed");
    cleanup(client);
    drop(taken);
    k.finish();
}
