//! Cached security descriptors (SafeWskCacheSecurityDescriptor,
//! SafeWskReleaseSecurityDescriptor) and the provider's transport list
//! (WSK_TRANSPORT_LIST_QUERY), issue 10 items 4 and 6. The host kernel
//! counts every cached copy as a live object (a leak at the end of a test)
//! and flags a connect given an uncached descriptor, a release of an
//! unknown one and a release while a connect IRP using it is pending.

mod common;

use std::ptr;
use std::sync::Arc;
use std::time::Duration;

use common::*;
use safewsk::nt::*;
use safewsk::*;

/// A SECURITY_DESCRIPTOR of revision 1 (40 bytes, the absolute form);
/// `tag` makes descriptors differ (the provider shares equal ones).
fn descriptor(tag: u64) -> Box<[u64; 5]> {
    Box::new([1 | (tag << 32), 0, 0, 0, 0])
}

fn cache(client: *mut SAFEWSK_CLIENT, sd: &mut [u64; 5]) -> (NTSTATUS, PSECURITY_DESCRIPTOR) {
    let mut cached: PSECURITY_DESCRIPTOR = ptr::null_mut();
    // SAFETY: a live client (or what the test means to pass), a readable
    // descriptor, a writable out variable.
    let st = unsafe { SafeWskCacheSecurityDescriptor(client, sd.as_mut_ptr().cast(), &mut cached) };
    (st, cached)
}

fn release(client: *mut SAFEWSK_CLIENT, sd: PSECURITY_DESCRIPTOR) -> NTSTATUS {
    // SAFETY: a live client; the descriptor is only looked up.
    unsafe { SafeWskReleaseSecurityDescriptor(client, sd) }
}

/// SafeWskSocketConnect to `remote` with `sd`.
fn connect_sd(
    client: *mut SAFEWSK_CLIENT,
    remote: std::net::SocketAddr,
    sd: PSECURITY_DESCRIPTOR,
) -> (NTSTATUS, *mut SAFEWSK_SOCKET) {
    let local = Addr::wildcard_like(remote);
    let remote = Addr::from(remote);
    let mut socket = ptr::null_mut();
    // SAFETY: valid addresses and out pointer for the call.
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
            sd,
            &mut socket,
            2000,
        )
    };
    (st, socket)
}

fn log_contains(needle: &str) -> bool {
    hostkernel::take_dbgprint_log().iter().any(|l| l.contains(needle))
}

#[test]
fn cache_connect_with_it_release() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let mut sd = descriptor(1);
    let (st, cached) = cache(client, &mut sd);
    assert_eq!(st, STATUS_SUCCESS);
    assert!(!cached.is_null());
    assert_ne!(cached, sd.as_mut_ptr().cast(), "the provider's copy, not the caller's descriptor");
    assert_eq!(hostkernel::live().cached_sds, 1);
    let (st, socket) = connect_sd(client, server, cached);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(send(socket, b"sd"), (STATUS_SUCCESS, 2));
    let mut buf = [0u8; 2];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000).0, STATUS_SUCCESS);
    assert_eq!(&buf, b"sd");
    // The connect has returned: its IRP completed; the release is allowed
    // while the socket stays open.
    assert_eq!(release(client, cached), STATUS_SUCCESS);
    assert_eq!(hostkernel::live().cached_sds, 0);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn uncached_released_and_foreign_descriptors_are_parameter_11() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let other = startup();
    let mut sd = descriptor(2);
    // The caller's own descriptor, never cached.
    assert_eq!(connect_sd(client, server, sd.as_mut_ptr().cast()).0, STATUS_INVALID_PARAMETER_11);
    // Another client's cached copy.
    let (st, foreign) = cache(other, &mut sd);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(connect_sd(client, server, foreign).0, STATUS_INVALID_PARAMETER_11);
    assert_eq!(release(client, foreign), STATUS_INVALID_PARAMETER_2, "another client's copy");
    // A released copy.
    let (st, cached) = cache(client, &mut descriptor(3));
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(release(client, cached), STATUS_SUCCESS);
    assert_eq!(connect_sd(client, server, cached).0, STATUS_INVALID_PARAMETER_11);
    // A second release: refused before the provider sees it.
    assert_eq!(release(client, cached), STATUS_INVALID_PARAMETER_2);
    assert_eq!(hostkernel::provider_connect_calls(), 0, "no uncached descriptor reached the provider");
    assert_eq!(release(other, foreign), STATUS_SUCCESS);
    cleanup(other);
    cleanup(client);
    k.finish();
}

/// Equal descriptors share one cached copy at the provider: each cache is
/// one reference, each needs a release.
#[test]
fn the_same_copy_cached_twice_needs_two_releases() {
    let k = Session::begin();
    let client = startup();
    let (mut a, mut b) = (descriptor(4), descriptor(4));
    let (st1, c1) = cache(client, &mut a);
    let (st2, c2) = cache(client, &mut b);
    assert_eq!((st1, st2), (STATUS_SUCCESS, STATUS_SUCCESS));
    assert_eq!(c1, c2, "the host kernel shares equal descriptors, as Windows may");
    assert_eq!(hostkernel::cached_sd_count(), 2);
    assert_eq!(release(client, c1), STATUS_SUCCESS);
    assert_eq!(release(client, c2), STATUS_SUCCESS);
    assert_eq!(release(client, c2), STATUS_INVALID_PARAMETER_2);
    cleanup(client);
    k.finish();
}

/// A release while an asynchronous connect using the copy is still in
/// flight is refused with STATUS_DEVICE_BUSY and changes nothing; after the
/// callback (the IRP has completed) it succeeds.
#[test]
fn release_during_an_in_flight_connect_is_busy() {
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let client = startup();
    let (st, cached) = cache(client, &mut descriptor(5));
    assert_eq!(st, STATUS_SUCCESS);
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, SAFEWSK_NO_TIMEOUT);
    let (local, remote) = (Addr::parse("0.0.0.0:0"), Addr::parse("127.0.0.1:9"));
    assert_eq!(start_async_with_sd(client, &local, &remote, cached, &mut *req), STATUS_PENDING);
    assert_eq!(release(client, cached), STATUS_DEVICE_BUSY);
    assert_eq!(hostkernel::live().cached_sds, 1, "nothing was released");
    // Cached twice: the second reference, not used by the connect, can go.
    let (st, again) = cache(client, &mut descriptor(5));
    assert_eq!((st, again), (STATUS_SUCCESS, cached));
    assert_eq!(release(client, cached), STATUS_SUCCESS);
    assert_eq!(release(client, cached), STATUS_DEVICE_BUSY);
    // SAFETY: a started request with intact storage.
    assert_eq!(unsafe { SafeWskCancelConnect(&mut *req) }, STATUS_SUCCESS);
    assert_eq!(seen.wait(1, Duration::from_secs(2))[0].0, STATUS_CANCELLED);
    assert_eq!(release(client, cached), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// SafeWskCleanup releases copies the driver forgot, reporting each.
#[test]
fn cleanup_releases_forgotten_descriptors() {
    let k = Session::begin();
    let client = startup();
    let _ = hostkernel::take_dbgprint_log();
    for tag in 0..3 {
        assert_eq!(cache(client, &mut descriptor(10 + tag)).0, STATUS_SUCCESS);
    }
    assert_eq!(hostkernel::live().cached_sds, 3);
    cleanup(client);
    assert_eq!(hostkernel::live().cached_sds, 0);
    let log = hostkernel::take_dbgprint_log();
    assert_eq!(log.iter().filter(|l| l.contains("was never released")).count(), 3, "{log:#?}");
    k.finish();
}

#[test]
fn the_table_holds_sixteen_and_a_seventeenth_is_quota_exceeded() {
    let k = Session::begin();
    let client = startup();
    let mut copies = Vec::new();
    for tag in 0..16 {
        let (st, c) = cache(client, &mut descriptor(100 + tag));
        assert_eq!(st, STATUS_SUCCESS);
        copies.push(c);
    }
    assert_eq!(cache(client, &mut descriptor(200)), (STATUS_QUOTA_EXCEEDED, ptr::null_mut()));
    assert_eq!(hostkernel::live().cached_sds, 16, "the provider was not asked for a 17th");
    assert_eq!(release(client, copies[3]), STATUS_SUCCESS);
    let (st, c) = cache(client, &mut descriptor(200));
    assert_eq!(st, STATUS_SUCCESS);
    copies[3] = c;
    for c in copies {
        assert_eq!(release(client, c), STATUS_SUCCESS);
    }
    cleanup(client);
    k.finish();
}

#[test]
fn cache_checks_its_descriptor_and_reports_provider_failures() {
    let k = Session::begin();
    let client = startup();
    let mut bad = [2u64, 0, 0, 0, 0];
    assert_eq!(cache(client, &mut bad), (STATUS_INVALID_PARAMETER_2, ptr::null_mut()), "revision 2");
    // The provider refuses (Wine 8's stub answers STATUS_NOT_IMPLEMENTED).
    hostkernel::set_client_control_fails(WSK_CACHE_SD, Some(STATUS_NOT_IMPLEMENTED));
    assert_eq!(cache(client, &mut descriptor(6)), (STATUS_NOT_IMPLEMENTED, ptr::null_mut()));
    hostkernel::set_client_control_fails(WSK_CACHE_SD, Some(STATUS_INSUFFICIENT_RESOURCES));
    assert_eq!(cache(client, &mut descriptor(6)), (STATUS_INSUFFICIENT_RESOURCES, ptr::null_mut()));
    // A success without a copy, and STATUS_PENDING (meaningless without an
    // IRP), are no success.
    hostkernel::set_client_control_fails(WSK_CACHE_SD, Some(STATUS_SUCCESS));
    assert_eq!(cache(client, &mut descriptor(6)), (STATUS_UNSUCCESSFUL, ptr::null_mut()));
    hostkernel::set_client_control_fails(WSK_CACHE_SD, Some(STATUS_PENDING));
    assert_eq!(cache(client, &mut descriptor(6)), (STATUS_UNSUCCESSFUL, ptr::null_mut()));
    hostkernel::set_client_control_fails(WSK_CACHE_SD, None);
    // A failed cache left its slot free: 16 still fit.
    let mut copies = Vec::new();
    for tag in 0..16 {
        let (st, c) = cache(client, &mut descriptor(300 + tag));
        assert_eq!(st, STATUS_SUCCESS);
        copies.push(c);
    }
    // A release the provider refuses leaves the copy recorded; it can be
    // released afterwards.
    hostkernel::set_client_control_fails(WSK_RELEASE_SD, Some(STATUS_INVALID_DEVICE_REQUEST));
    assert_eq!(release(client, copies[0]), STATUS_INVALID_DEVICE_REQUEST);
    hostkernel::set_client_control_fails(WSK_RELEASE_SD, None);
    for c in copies {
        assert_eq!(release(client, c), STATUS_SUCCESS);
    }
    cleanup(client);
    k.finish();
}

#[test]
fn the_providers_transport_list_is_checked() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    // A provider without TCP over IPv6, and without any stream transport
    // over IPv4 but UDP.
    hostkernel::set_transport_list(Some(vec![(AF_INET6, SOCK_DGRAM, IPPROTO_UDP), (AF_INET, SOCK_DGRAM, IPPROTO_UDP)]));
    let client = startup();
    assert_eq!(connect(client, server, 2000).0, STATUS_INVALID_PARAMETER_2, "no SOCK_STREAM listed");
    cleanup(client);
    // TCP over IPv4 only.
    hostkernel::set_transport_list(Some(vec![(AF_INET, SOCK_STREAM, 132), (AF_INET, SOCK_DGRAM, IPPROTO_UDP)]));
    let client = startup();
    assert_eq!(connect(client, server, 2000).0, STATUS_INVALID_PARAMETER_3, "SOCK_STREAM listed (SCTP), not TCP");
    cleanup(client);
    // An entry with Protocol 0 (the type's default protocol) matches TCP.
    hostkernel::set_transport_list(Some(vec![(AF_INET, SOCK_STREAM, 0)]));
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS, "SOCK_STREAM with protocol 0 listed");
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    hostkernel::set_transport_list(Some(vec![(AF_INET6, SOCK_STREAM, IPPROTO_TCP)]));
    let client = startup();
    assert_eq!(connect(client, server, 2000).0, STATUS_INVALID_PARAMETER_4, "TCP over IPv6 only");
    assert_eq!(hostkernel::provider_connect_calls(), 1, "only the protocol-0 connect reached the provider");
    cleanup(client);
    // The default list (TCP, UDP, raw over both families) lets it through.
    hostkernel::set_transport_list(None);
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// A provider whose WskControlClient fails (Wine 8's stub) or whose list
/// does not fit: connects are checked against the fixed table only, and
/// startup says so once.
#[test]
fn without_the_providers_list_the_fixed_table_is_used() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    for (fail, list) in [
        (Some(STATUS_NOT_IMPLEMENTED), None),
        (Some(STATUS_SUCCESS), None),
        (None, Some(vec![(AF_INET, SOCK_STREAM, IPPROTO_TCP); 33])),
    ] {
        hostkernel::set_client_control_fails(WSK_TRANSPORT_LIST_QUERY, fail);
        hostkernel::set_transport_list(list);
        let _ = hostkernel::take_dbgprint_log();
        let client = startup();
        assert!(log_contains("fixed transport table only"), "the fallback is reported");
        let (st, socket) = connect(client, server, 2000);
        assert_eq!(st, STATUS_SUCCESS);
        assert_eq!(close(socket), STATUS_SUCCESS);
        // The fixed table still refuses what the library does not support.
        let mut out = ptr::null_mut();
        let (local, remote) = (Addr::parse("0.0.0.0:0"), Addr::from(server));
        // SAFETY: valid addresses and out pointer.
        let st = unsafe {
            SafeWskSocketConnect(
                client,
                SOCK_DGRAM,
                IPPROTO_UDP,
                local.ptr(),
                remote.ptr(),
                0,
                ptr::null_mut(),
                ptr::null(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                &mut out,
                100,
            )
        };
        assert_eq!(st, STATUS_INVALID_PARAMETER_2);
        cleanup(client);
    }
    k.finish();
}

// ---------------------------------------------------------------------------
// The host kernel's own checks of the client-control contract (so that the
// zero-violation results above mean something): called directly, as a
// careless driver would.
// ---------------------------------------------------------------------------

mod raw {
    use std::ffi::c_void;
    extern "system" {
        pub fn WskRegister(npi: *mut c_void, registration: *mut c_void) -> i32;
        pub fn WskCaptureProviderNPI(registration: *mut c_void, wait: u32, npi: *mut c_void) -> i32;
        pub fn WskReleaseProviderNPI(registration: *mut c_void);
        pub fn WskDeregister(registration: *mut c_void);
    }
}

type ControlClient = unsafe extern "system" fn(PVOID, u32, usize, PVOID, usize, PVOID, *mut usize, PVOID) -> NTSTATUS;
type SocketConnectRaw =
    unsafe extern "system" fn(PVOID, u16, u32, PVOID, PVOID, u32, PVOID, PVOID, PVOID, PVOID, PVOID, PVOID) -> NTSTATUS;

/// The first entries of WSK_PROVIDER_DISPATCH.
#[repr(C)]
struct ProviderTable {
    _version: u64,
    _socket: usize,
    connect: SocketConnectRaw,
    control: ControlClient,
}

/// A raw WSK registration with the provider captured: (registration,
/// WSK_CLIENT, WskSocketConnect, WskControlClient).
struct RawClient {
    registration: Box<[u64; 3]>,
    _npi: Box<[usize; 2]>,
    _dispatch: Box<[u64; 2]>,
    client: PVOID,
    connect: SocketConnectRaw,
    control: ControlClient,
}

impl RawClient {
    fn new() -> RawClient {
        // WSK_CLIENT_DISPATCH { Version 1.0, Reserved, WskClientEvent NULL }.
        let mut dispatch = Box::new([0x0100u64, 0]);
        let mut npi = Box::new([0usize, dispatch.as_mut_ptr() as usize]);
        let mut registration = Box::new([0u64; 3]);
        // SAFETY: a WSK_CLIENT_NPI and a WSK_REGISTRATION that live as long
        // as the registration (boxed, kept in the returned value).
        assert_eq!(unsafe { raw::WskRegister(npi.as_mut_ptr().cast(), registration.as_mut_ptr().cast()) }, 0);
        let mut provider = [0usize; 2];
        // SAFETY: registered above; a writable WSK_PROVIDER_NPI.
        let st =
            unsafe { raw::WskCaptureProviderNPI(registration.as_mut_ptr().cast(), 0, provider.as_mut_ptr().cast()) };
        assert_eq!(st, 0);
        // SAFETY: the captured WSK_PROVIDER_DISPATCH (static in the host
        // kernel): two USHORTs padded to 8, then the function pointers.
        let table = unsafe { &*(provider[1] as *const ProviderTable) };
        let (connect, control) = (table.connect, table.control);
        RawClient { registration, _npi: npi, _dispatch: dispatch, client: provider[0] as PVOID, connect, control }
    }

    fn control(&self, code: u32, input: PVOID, output: PVOID, irp: PVOID) -> NTSTATUS {
        let size = std::mem::size_of::<PVOID>();
        let out_size = if output.is_null() { 0 } else { size };
        // SAFETY: the provider's WskControlClient with buffers of the sizes
        // given (or NULL), as the test means to pass them.
        unsafe { (self.control)(self.client, code, size, input, out_size, output, ptr::null_mut(), irp) }
    }

    fn cache(&self, sd: &mut [u64; 5]) -> PSECURITY_DESCRIPTOR {
        let mut input: PSECURITY_DESCRIPTOR = sd.as_mut_ptr().cast();
        let mut out: PSECURITY_DESCRIPTOR = ptr::null_mut();
        let st = self.control(
            WSK_CACHE_SD,
            (&mut input as *mut PSECURITY_DESCRIPTOR).cast(),
            (&mut out as *mut PSECURITY_DESCRIPTOR).cast(),
            ptr::null_mut(),
        );
        assert_eq!(st, STATUS_SUCCESS);
        out
    }

    fn release(&self, cached: PSECURITY_DESCRIPTOR) -> NTSTATUS {
        let mut input = cached;
        self.control(WSK_RELEASE_SD, (&mut input as *mut PSECURITY_DESCRIPTOR).cast(), ptr::null_mut(), ptr::null_mut())
    }
}

impl Drop for RawClient {
    fn drop(&mut self) {
        // SAFETY: captured and registered in `new`, released once.
        unsafe { raw::WskReleaseProviderNPI(self.registration.as_mut_ptr().cast()) };
        // SAFETY: as above; no socket open.
        unsafe { raw::WskDeregister(self.registration.as_mut_ptr().cast()) };
    }
}

fn finish_fails(k: Session) -> String {
    let err = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| k.finish())).expect_err("finish() must fail");
    err.downcast_ref::<String>().cloned().unwrap_or_default()
}

#[test]
fn host_a_cached_copy_never_released_is_a_leak() {
    let k = Session::begin();
    let raw = RawClient::new();
    let _ = raw.cache(&mut descriptor(7));
    drop(raw);
    let msg = finish_fails(k);
    assert!(msg.contains("leaked") && msg.contains("cached_sds: 1"), "{msg}");
}

#[test]
fn host_a_second_release_and_an_irp_are_violations() {
    let k = Session::begin();
    let raw = RawClient::new();
    let cached = raw.cache(&mut descriptor(8));
    assert_eq!(raw.release(cached), STATUS_SUCCESS);
    assert!(hostkernel::violations().is_empty());
    assert_eq!(raw.release(cached), STATUS_INVALID_PARAMETER);
    assert!(hostkernel::violations().iter().any(|v| v.contains("released twice")), "{:?}", hostkernel::violations());
    let mut fake_irp = [0u64; 32];
    let mut sd = descriptor(9);
    let mut input: PSECURITY_DESCRIPTOR = sd.as_mut_ptr().cast();
    let mut out: PSECURITY_DESCRIPTOR = ptr::null_mut();
    let st = raw.control(
        WSK_CACHE_SD,
        (&mut input as *mut PSECURITY_DESCRIPTOR).cast(),
        (&mut out as *mut PSECURITY_DESCRIPTOR).cast(),
        fake_irp.as_mut_ptr().cast(),
    );
    assert_eq!(st, STATUS_INVALID_PARAMETER);
    assert!(hostkernel::violations().iter().any(|v| v.contains("Irp parameter must be NULL")));
    drop(raw);
    assert!(finish_fails(k).contains("released twice"));
}

#[test]
fn host_a_connect_with_an_uncached_descriptor_is_a_violation() {
    let k = Session::begin();
    let raw = RawClient::new();
    let mut sd = descriptor(10);
    // SAFETY: the provider's WskSocketConnect with a NULL IRP and NULL
    // addresses: the host checks the descriptor first and refuses the IRP
    // (a second violation) without touching anything else.
    let _ = unsafe {
        (raw.connect)(
            raw.client,
            SOCK_STREAM,
            IPPROTO_TCP,
            ptr::null_mut(),
            ptr::null_mut(),
            0,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            sd.as_mut_ptr().cast(),
            ptr::null_mut(),
        )
    };
    assert!(hostkernel::violations().iter().any(|v| v.contains("not a cached copy")), "{:?}", hostkernel::violations());
    drop(raw);
    let _ = finish_fails(k);
}

/// The library side of the same contract: a connect whose IRP is pending
/// keeps its descriptor pinned, so the host never sees a release of a copy
/// in use (the host would flag it), and the release after completion is
/// clean. (release_during_an_in_flight_connect_is_busy covers the status.)
#[test]
fn host_sees_no_release_of_a_copy_in_use() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    hostkernel::set_connect_completion(ConnectCompletion::Delay(Duration::from_millis(200)));
    let client = startup();
    let (st, cached) = cache(client, &mut descriptor(11));
    assert_eq!(st, STATUS_SUCCESS);
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, SAFEWSK_NO_TIMEOUT);
    let (local, remote) = (Addr::parse("0.0.0.0:0"), Addr::from(server));
    assert_eq!(start_async_with_sd(client, &local, &remote, cached, &mut *req), STATUS_PENDING);
    // Keep trying to release while the IRP is pending: every attempt is
    // refused until the callback.
    let mut busy = 0;
    loop {
        let st = release(client, cached);
        if st == STATUS_SUCCESS {
            break;
        }
        assert_eq!(st, STATUS_DEVICE_BUSY);
        busy += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(busy > 0, "the first release came while the connect was pending");
    let calls = seen.wait(1, Duration::from_secs(2));
    assert_eq!(calls[0].0, STATUS_SUCCESS, "the callback came before the release succeeded");
    assert_eq!(close(calls[0].1 as *mut SAFEWSK_SOCKET), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

struct Shared(*mut SAFEWSK_CLIENT);
// SAFETY: the client handle is used from another thread only as the API
// allows (cleanup on one thread while this one makes calls it permits).
unsafe impl Send for Shared {}

/// While SafeWskCleanup waits (here for an asynchronous connect), a new
/// cache is refused (STATUS_DELETE_PENDING) but a release still works, and
/// so do the calls on an open socket, its close included (cleanup closes
/// only the sockets still open once the connects are done); the copy the
/// pending connect uses is released by cleanup itself once the connect has
/// finished, and reported. No sleep orders the steps: cleanup has begun
/// when a cache is refused, and it cannot finish before the cancel.
#[test]
fn during_cleanup_cache_is_refused_and_release_works() {
    let server = echo_server("127.0.0.1:0").expect("server");
    let k = Session::begin();
    let client = startup();
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS);
    hostkernel::set_connect_completion(ConnectCompletion::Never);
    let (st, used) = cache(client, &mut descriptor(20));
    assert_eq!(st, STATUS_SUCCESS);
    let (st, spare) = cache(client, &mut descriptor(21));
    assert_eq!(st, STATUS_SUCCESS);
    let seen = Arc::new(Seen::default());
    let mut req = request(&seen, SAFEWSK_NO_TIMEOUT);
    let (local, remote) = (Addr::parse("0.0.0.0:0"), Addr::parse("127.0.0.1:9"));
    assert_eq!(start_async_with_sd(client, &local, &remote, used, &mut *req), STATUS_PENDING);
    let c = Shared(client);
    let cleaner = std::thread::spawn(move || {
        let c = c;
        // SAFETY: a live client.
        unsafe { SafeWskCleanup(c.0) }
    });
    // Until cleanup begins a cache succeeds (and is released again).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        match cache(client, &mut descriptor(22)) {
            (STATUS_SUCCESS, copy) => assert_eq!(release(client, copy), STATUS_SUCCESS),
            (st, copy) => {
                assert_eq!((st, copy), (STATUS_DELETE_PENDING, ptr::null_mut()));
                break;
            }
        }
        assert!(std::time::Instant::now() < deadline, "cleanup never began");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(release(client, spare), STATUS_SUCCESS);
    assert_eq!(release(client, used), STATUS_DEVICE_BUSY);
    // The open socket still works, and its close too.
    assert_eq!(send(socket, b"sd"), (STATUS_SUCCESS, 2));
    let mut buf = [0u8; 2];
    assert_eq!(receive(socket, &mut buf, WSK_FLAG_WAITALL, 2000), (STATUS_SUCCESS, 2));
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert!(!cleaner.is_finished(), "cleanup waits for the request");
    let _ = hostkernel::take_dbgprint_log();
    // SAFETY: a started request whose storage is intact.
    assert_eq!(unsafe { SafeWskCancelConnect(&mut *req) }, STATUS_SUCCESS);
    assert_eq!(cleaner.join().expect("cleanup"), STATUS_SUCCESS);
    assert_eq!(seen.wait(1, Duration::from_secs(1))[0].0, STATUS_CANCELLED);
    let log = hostkernel::take_dbgprint_log();
    assert!(log.iter().any(|l| l.contains("was never released")), "cleanup reports the copy it released: {log:#?}");
    assert!(!log.iter().any(|l| l.contains("the driver left open")), "the socket was closed by the driver: {log:#?}");
    assert_eq!(hostkernel::live().cached_sds, 0);
    k.finish();
}
