//! Issue 10, item 5: SafeWskGetLocalAddress / SafeWskGetRemoteAddress.
//!
//! PFN_WSK_GET_LOCAL_ADDRESS (Microsoft Learn): the buffer "must be located
//! in non-paged memory" and large enough for the socket's family; the call
//! may pend. The host kernel implements both over getsockname/getpeername,
//! completes them on a provider thread, reports a buffer in paged pool as a
//! contract violation, and can make them pend until cancelled
//! (`set_address_query_hangs`). Every test ends with `Session::finish`.

mod common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::ptr;
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use safewsk::nt::*;
use safewsk::*;

const POOL_FLAG_PAGED: u64 = 0x100;
const TAG: u32 = u32::from_le_bytes(*b"Test");
const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023_u32 as NTSTATUS;
/// An IRQL above DISPATCH_LEVEL (a device interrupt's).
const DEVICE_IRQL: KIRQL = 5;

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

/// Which end to ask for.
#[derive(Clone, Copy)]
enum End {
    Local,
    Remote,
}

/// Calls the export for `end` on a raw buffer.
fn query(end: End, socket: *mut SAFEWSK_SOCKET, buf: *mut u8, len: u32, timeout_ms: u32) -> NTSTATUS {
    let address = buf.cast::<SOCKADDR>();
    match end {
        // SAFETY: `buf` is NULL or `len` writable bytes, live for the call; any
        // socket handle value is safe.
        End::Local => unsafe { SafeWskGetLocalAddress(socket, address, len, timeout_ms) },
        // SAFETY: as above.
        End::Remote => unsafe { SafeWskGetRemoteAddress(socket, address, len, timeout_ms) },
    }
}

/// The Windows SOCKADDR_IN / SOCKADDR_IN6 in `b` as a SocketAddr.
fn decode(b: &[u8; 28]) -> SocketAddr {
    let family = u16::from_ne_bytes([b[0], b[1]]);
    let port = u16::from_be_bytes([b[2], b[3]]);
    match family {
        AF_INET => SocketAddr::new(IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])), port),
        AF_INET6 => {
            let mut o = [0u8; 16];
            o.copy_from_slice(&b[8..24]);
            SocketAddr::new(IpAddr::V6(Ipv6Addr::from(o)), port)
        }
        f => panic!("unexpected family {f}"),
    }
}

/// Connects to a listener on `bind`; returns the socket, the server's
/// address and the peer address the server saw on accept (our local end).
fn connect_to_listener(
    client: *mut SAFEWSK_CLIENT,
    bind: &str,
) -> (*mut SAFEWSK_SOCKET, SocketAddr, SocketAddr, TcpStream) {
    let listener = TcpListener::bind(bind).expect("bind");
    let server = listener.local_addr().expect("addr");
    let h = thread::spawn(move || listener.accept().expect("accept"));
    let (st, socket) = connect(client, server, 2000);
    assert_eq!(st, STATUS_SUCCESS, "connect to {server}");
    let (stream, peer) = h.join().expect("accept thread");
    (socket, server, peer, stream)
}

#[test]
fn local_and_remote_addresses_of_ipv4_and_ipv6_connections() {
    let k = Session::begin();
    let client = startup();
    let mut binds = vec!["127.0.0.1:0"];
    if ipv6_loopback_available() {
        binds.push("[::1]:0");
    }
    for bind in binds {
        let (socket, server, peer, _stream) = connect_to_listener(client, bind);
        let mut local = [0xAAu8; 28];
        assert_eq!(query(End::Local, socket, local.as_mut_ptr(), 28, 2000), STATUS_SUCCESS);
        assert_eq!(decode(&local), peer, "local address = the peer the server accepted");
        let mut remote = [0xAAu8; 28];
        assert_eq!(query(End::Remote, socket, remote.as_mut_ptr(), 28, 2000), STATUS_SUCCESS);
        assert_eq!(decode(&remote), server, "remote address = the server");
        if server.is_ipv4() {
            assert_eq!(&remote[16..], &[0xAA; 12], "an IPv4 address writes 16 bytes, no more");
            // Exactly sizeof(SOCKADDR_IN) is enough for IPv4.
            let mut exact = [0u8; 16];
            assert_eq!(query(End::Remote, socket, exact.as_mut_ptr(), 16, 2000), STATUS_SUCCESS);
            assert_eq!(&exact[..], &remote[..16]);
        }
        assert_eq!(close(socket), STATUS_SUCCESS);
    }
    cleanup(client);
    k.finish();
}

/// Parameters by position (the socket handle is parameter 1 now that the
/// calls take no client), each before the IRQL; a handle that does not name
/// an open socket (NULL, a pointer, the client's handle, a forged value, a
/// closed socket's) is parameter 1 at any IRQL, also above DISPATCH_LEVEL,
/// since the check reads only the library's own table.
#[test]
fn bad_arguments_get_their_parameter_status_and_nothing_is_written() {
    let k = Session::begin();
    let client = startup();
    let (socket, _server, _peer, _stream) = connect_to_listener(client, "127.0.0.1:0");
    let (closed, _server2, _peer2, _stream2) = connect_to_listener(client, "127.0.0.1:0");
    assert_eq!(close(closed), STATUS_SUCCESS);
    // A value with the handle's tag byte (0xA5) and the open socket's epoch,
    // but a slot index no chunk holds.
    let forged = ((socket as usize) | 0xFFFF) as *mut SAFEWSK_SOCKET;
    for end in [End::Local, End::Remote] {
        let mut b = [0xAAu8; 28];
        let p = b.as_mut_ptr();
        let not_sockets = [
            ("NULL", ptr::null_mut()),
            ("a pointer to memory", p.cast::<SAFEWSK_SOCKET>()),
            ("the client's handle", client.cast::<SAFEWSK_SOCKET>()),
            ("a forged handle", forged),
            ("a closed socket's handle", closed),
        ];
        for (what, s) in not_sockets {
            assert_eq!(query(end, s, p, 28, 100), STATUS_INVALID_PARAMETER_1, "{what}");
            // Parameter 1 wins over the later parameters and over the IRQL.
            assert_eq!(query(end, s, ptr::null_mut(), 0, 100), STATUS_INVALID_PARAMETER_1, "{what}");
            let st = hostkernel::with_irql(DISPATCH_LEVEL, || query(end, s, p, 28, 100));
            assert_eq!(st, STATUS_INVALID_PARAMETER_1, "{what} at DISPATCH_LEVEL");
            let st = hostkernel::with_irql(DEVICE_IRQL, || query(end, s, p, 28, 100));
            assert_eq!(st, STATUS_INVALID_PARAMETER_1, "{what} above DISPATCH_LEVEL");
        }
        assert_eq!(query(end, socket, ptr::null_mut(), 28, 100), STATUS_INVALID_PARAMETER_2);
        assert_eq!(query(end, socket, ptr::null_mut(), 0, 100), STATUS_INVALID_PARAMETER_2, "_2 before _3");
        assert_eq!(query(end, socket, p, 15, 100), STATUS_INVALID_PARAMETER_3);
        assert_eq!(query(end, socket, p, 0, 100), STATUS_INVALID_PARAMETER_3);
        let st = hostkernel::with_irql(DISPATCH_LEVEL, || query(end, socket, p, 28, 100));
        assert_eq!(st, STATUS_INVALID_LEVEL);
        // Parameters before IRQL: a bad length at DISPATCH_LEVEL reports _3.
        let st = hostkernel::with_irql(DISPATCH_LEVEL, || query(end, socket, p, 4, 100));
        assert_eq!(st, STATUS_INVALID_PARAMETER_3);
        assert_eq!(b, [0xAA; 28], "no failed call writes the buffer");
    }
    // The refused calls left the open socket alone.
    let mut b = [0u8; 28];
    assert_eq!(query(End::Local, socket, b.as_mut_ptr(), 28, 2000), STATUS_SUCCESS);
    assert_eq!(close(socket), STATUS_SUCCESS);
    assert_eq!(query(End::Local, socket, b.as_mut_ptr(), 28, 100), STATUS_INVALID_PARAMETER_1, "a socket closed since");
    assert!(hostkernel::violations().is_empty(), "the provider never saw a bad handle");
    cleanup(client);
    k.finish();
}

#[test]
fn an_ipv6_address_in_a_sockaddr_in_sized_buffer_is_buffer_too_small() {
    if !ipv6_loopback_available() {
        eprintln!("skipped: no IPv6 loopback on this machine");
        return;
    }
    let k = Session::begin();
    let client = startup();
    let (socket, _server, _peer, _stream) = connect_to_listener(client, "[::1]:0");
    for end in [End::Local, End::Remote] {
        let mut b = [0xAAu8; 27];
        assert_eq!(query(end, socket, b.as_mut_ptr(), 27, 2000), STATUS_BUFFER_TOO_SMALL);
        assert_eq!(b, [0xAA; 27], "nothing written");
    }
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

/// The caller's buffer may be paged pool, paged out: WSK only ever sees the
/// library's own resident buffer. (Handing the caller's buffer to the
/// provider, as a bare WSK call would, is reported by the host kernel: "the
/// address buffer ... is in paged pool".)
#[test]
fn a_paged_pool_buffer_is_accepted_and_never_handed_to_wsk() {
    let k = Session::begin();
    let client = startup();
    let (socket, server, _peer, _stream) = connect_to_listener(client, "127.0.0.1:0");
    // SAFETY: plain allocation at PASSIVE_LEVEL.
    let p = unsafe { ExAllocatePool2(POOL_FLAG_PAGED, 28, TAG) };
    assert!(!p.is_null());
    assert!(hostkernel::page_out(p, 28) > 0, "the block is paged out before the call");
    assert_eq!(query(End::Remote, socket, p, 28, 2000), STATUS_SUCCESS);
    let mut b = [0u8; 28];
    // SAFETY: the block is 28 bytes, paged back in by the library's copy.
    unsafe { ptr::copy_nonoverlapping(p, b.as_mut_ptr(), 28) };
    assert_eq!(decode(&b), server);
    // SAFETY: our block, freed once.
    unsafe { ExFreePoolWithTag(p, TAG) };
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn a_query_that_never_completes_times_out_at_its_deadline() {
    let k = Session::begin();
    let client = startup();
    let (socket, _server, _peer, _stream) = connect_to_listener(client, "127.0.0.1:0");
    hostkernel::set_address_query_hangs(true);
    for end in [End::Local, End::Remote] {
        let mut b = [0xAAu8; 28];
        let t = Instant::now();
        assert_eq!(query(end, socket, b.as_mut_ptr(), 28, 150), STATUS_IO_TIMEOUT);
        let took = t.elapsed();
        assert!(took >= Duration::from_millis(150) && took < Duration::from_secs(2), "took {took:?}");
        assert_eq!(b, [0xAA; 28]);
    }
    hostkernel::set_address_query_hangs(false);
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}

#[test]
fn allocation_failures_and_a_provider_that_never_completes_its_irp() {
    let k = Session::begin();
    let client = startup();
    let (socket, _server, _peer, _stream) = connect_to_listener(client, "127.0.0.1:0");
    for end in [End::Local, End::Remote] {
        // The query reuses the socket's IRP: no IRP is allocated (issue 12),
        // so a failing IRP allocator is never reached.
        k.fail_nth(Site::Irp, 1);
        let mut b = [0xAAu8; 28];
        assert_eq!(query(end, socket, b.as_mut_ptr(), 28, 2000), STATUS_SUCCESS);
        assert!(!k.fault_hit(Site::Irp), "an address query allocated an IRP");
        k.fail_nth(Site::Irp, 0);
        // The I/O manager's IoSetCompletionRoutineEx context is the one
        // allocation left, and it can fail.
        k.fail_nth(Site::CompletionContext, 1);
        let mut b = [0xAAu8; 28];
        assert_eq!(query(end, socket, b.as_mut_ptr(), 28, 2000), STATUS_INSUFFICIENT_RESOURCES);
        assert!(k.fault_hit(Site::CompletionContext));
        k.fail_nth(Site::CompletionContext, 0);
        assert_eq!(b, [0xAA; 28]);
        // Wine 8's stubs return STATUS_NOT_IMPLEMENTED without completing the
        // IRP: the library takes it back and returns that status.
        hostkernel::set_fail_without_completing(Some(STATUS_NOT_IMPLEMENTED));
        let mut b = [0xAAu8; 28];
        assert_eq!(query(end, socket, b.as_mut_ptr(), 28, 2000), STATUS_NOT_IMPLEMENTED);
        hostkernel::set_fail_without_completing(None);
        assert_eq!(b, [0xAA; 28]);
    }
    assert_eq!(close(socket), STATUS_SUCCESS);
    cleanup(client);
    k.finish();
}
