//! One fuzz input = one call of the server and datagram exports (issue 20):
//! SafeWskListen, SafeWskAccept, SafeWskAcceptAsync, SafeWskCancelAccept,
//! SafeWskDatagramSocket, SafeWskSendTo, SafeWskReceiveFrom or
//! SafeWskResolveName, with an arbitrary handle (the live listening socket,
//! the live datagram socket, a live connection socket of the wrong kind,
//! forged and stale values), address (NULL, a fuzzed family, or an IPv4 /
//! IPv6 address kept on loopback or one of the special addresses, with a
//! fuzzed port), options (NULL, or a fuzzed SAFEWSK_SOCKET_OPTIONS), buffer
//! (NULL, the stack, paged pool paged out, non-paged pool), length, flags,
//! strings, family, array count, IRQL (0 to 3) and deadline (0 to 3 ms).
//! Shared by the libFuzzer target and tests/fuzz_server_regressions.rs,
//! which replays fuzz/regressions-server/* and a table of hand-made inputs.
//!
//! No input reaches the network: addresses are loopback (or unspecified,
//! multicast, broadcast: refused, or failing in the stack), and the
//! resolver answers from a fixed list (hostkernel::set_resolver_answer).
//!
//! Checked on every input: the status is one the header documents for that
//! export; a handle that is not a live socket of the right kind is
//! STATUS_INVALID_PARAMETER_1; out values are cleared on failure (socket
//! NULL, counts 0, addresses unwritten); a socket made by a successful call
//! closes; an asynchronous accept calls back exactly once; afterwards no
//! IRP, MDL, socket or locked page is live beyond the world's, and the host
//! kernel saw no contract violation.

use std::net::TcpListener;
use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use safewsk::nt::*;
use safewsk::*;

const POOL_FLAG_NON_PAGED: u64 = 0x40;
const POOL_FLAG_PAGED: u64 = 0x100;
const TAG: u32 = u32::from_le_bytes(*b"Fuzs");

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

#[path = "fuzz_input.rs"]
mod fuzz_input;
use fuzz_input::Input;

/// The live client, a listening socket, a datagram socket, a connection
/// socket (the wrong kind for every call here), a closed socket's handle;
/// and what is live once they are made.
struct World {
    client: usize,
    listener: usize,
    datagram: usize,
    connection: usize,
    closed: usize,
    sockets: usize,
    irps: usize,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        hostkernel::set_resolver_answer(Some(vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()]));
        let mut c = ptr::null_mut();
        // SAFETY: valid out pointer, PASSIVE_LEVEL.
        assert_eq!(unsafe { SafeWskStartup(hostkernel::test_device().cast(), 0, &mut c) }, STATUS_SUCCESS);
        let local = SOCKADDR_IN { sin_family: AF_INET, sin_addr: [127, 0, 0, 1], ..Default::default() };
        let local_ptr: *const SOCKADDR = ptr::addr_of!(local).cast();
        let mut listener = ptr::null_mut();
        // SAFETY: valid address and out pointer.
        assert_eq!(unsafe { SafeWskListen(c, local_ptr, ptr::null(), &mut listener, 2000) }, STATUS_SUCCESS);
        let mut datagram = ptr::null_mut();
        // SAFETY: as above.
        assert_eq!(unsafe { SafeWskDatagramSocket(c, local_ptr, ptr::null(), &mut datagram, 2000) }, STATUS_SUCCESS);
        let server = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = server.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for s in server.incoming().flatten() {
                held.push(s);
            }
        });
        let connect = || {
            let remote =
                SOCKADDR_IN { sin_family: AF_INET, sin_port: port.to_be(), sin_addr: [127, 0, 0, 1], sin_zero: [0; 8] };
            let mut s = ptr::null_mut();
            // SAFETY: valid addresses and out pointer.
            let st = unsafe { SafeWskConnect(c, ptr::addr_of!(remote).cast(), &mut s, 2000) };
            assert_eq!(st, STATUS_SUCCESS);
            s
        };
        let connection = connect();
        let closed = connect();
        // SAFETY: an open socket.
        assert_eq!(unsafe { SafeWskCloseSocket(closed) }, STATUS_SUCCESS);
        let live = hostkernel::live();
        assert_eq!(live.sockets, 3);
        World {
            client: c as usize,
            listener: listener as usize,
            datagram: datagram as usize,
            connection: connection as usize,
            closed: closed as usize,
            sockets: live.sockets,
            irps: live.irps,
        }
    })
}

/// How many calls there are.
pub const CALLS: u8 = 8;
/// How many handle selectors there are.
pub const HANDLES: u8 = 10;
/// The selector of the live socket of the call's own kind.
pub const RIGHT: u8 = 8;

/// What each export may return (besides _1 .. _n by position).
fn documented(call: u8, status: NTSTATUS) -> bool {
    let params = [
        STATUS_INVALID_PARAMETER_1,
        STATUS_INVALID_PARAMETER_2,
        STATUS_INVALID_PARAMETER_3,
        STATUS_INVALID_PARAMETER_4,
        STATUS_INVALID_PARAMETER_5,
        STATUS_INVALID_PARAMETER_6,
        STATUS_INVALID_PARAMETER_7,
    ];
    let last = match call {
        0 | 4 => 4,
        1 | 2 => 4,
        3 => 1,
        5 => 5,
        6 => 4,
        _ => 7,
    };
    if params[..last].contains(&status) || (call == 6 && status == STATUS_INVALID_PARAMETER_7) {
        return true;
    }
    let common = [STATUS_SUCCESS, STATUS_INVALID_LEVEL, STATUS_IO_TIMEOUT, STATUS_INSUFFICIENT_RESOURCES];
    if common.contains(&status) {
        return true;
    }
    match call {
        // Listen / datagram socket: WskBind's and the option's statuses.
        0 | 4 => [
            STATUS_ADDRESS_ALREADY_EXISTS,
            STATUS_INVALID_ADDRESS_COMPONENT,
            STATUS_ACCESS_DENIED,
            STATUS_INVALID_PARAMETER,
            STATUS_INVALID_DEVICE_STATE,
        ]
        .contains(&status),
        2 => status == STATUS_PENDING,
        3 => status == STATUS_NOT_FOUND,
        // Send-to: the stack's answer (loopback only).
        5 => [
            STATUS_ACCESS_DENIED,
            STATUS_NETWORK_UNREACHABLE,
            STATUS_HOST_UNREACHABLE,
            STATUS_INVALID_ADDRESS_COMPONENT,
            STATUS_INVALID_PARAMETER,
            STATUS_BUFFER_OVERFLOW,
            STATUS_CONNECTION_REFUSED,
            STATUS_CONNECTION_RESET,
            STATUS_ACCESS_VIOLATION,
        ]
        .contains(&status),
        6 => [STATUS_BUFFER_OVERFLOW, STATUS_ACCESS_VIOLATION, STATUS_CONNECTION_RESET, STATUS_CONNECTION_REFUSED]
            .contains(&status),
        7 => [STATUS_NOT_FOUND, STATUS_DELETE_PENDING].contains(&status),
        _ => false,
    }
}

/// A fuzzed address in 28 bytes of storage: None (NULL), or (bytes). For a
/// send-to (`sending`), the IPv4 multicast address is a loopback one
/// instead: a datagram to it could leave the machine.
fn address(inp: &mut Input, sending: bool) -> Option<[u8; 28]> {
    let mut b = [0u8; 28];
    let port = inp.u16();
    match inp.u8() % 8 {
        0 => return None,
        1 => {
            // Any family, any bytes.
            for x in b.iter_mut() {
                *x = inp.u8();
            }
        }
        k => {
            let v6 = k >= 5;
            let family = if v6 { AF_INET6 } else { AF_INET };
            b[0..2].copy_from_slice(&family.to_ne_bytes());
            b[2..4].copy_from_slice(&port.to_be_bytes());
            let special = inp.u8() % 4;
            if v6 {
                // ::1, ::, ff02::1, ::ffff:127.0.0.1
                let a: [u8; 16] = match special {
                    0 => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    1 => [0; 16],
                    2 => [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                    _ => [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1],
                };
                b[8..24].copy_from_slice(&a);
            } else {
                // 127.x.y.z, 0.0.0.0, 224.0.0.1, 255.255.255.255
                let a: [u8; 4] = match special {
                    0 => [127, inp.u8(), inp.u8(), inp.u8()],
                    1 => [0; 4],
                    2 if !sending => [224, 0, 0, 1],
                    2 => [127, 0, 0, 2],
                    _ => [255; 4],
                };
                b[4..8].copy_from_slice(&a);
            }
        }
    }
    Some(b)
}

/// A fuzzed SAFEWSK_SOCKET_OPTIONS (None: NULL).
fn options(inp: &mut Input) -> Option<SAFEWSK_SOCKET_OPTIONS> {
    match inp.u8() % 3 {
        0 => None,
        1 => Some(SAFEWSK_SOCKET_OPTIONS {
            Size: std::mem::size_of::<SAFEWSK_SOCKET_OPTIONS>() as u32,
            Mask: u32::from(inp.u8() & 0x1F),
            ExclusiveAddressUse: u32::from(inp.u8() % 3),
            ReuseAddress: u32::from(inp.u8() % 3),
            KeepAlive: u32::from(inp.u8() % 3),
            ReceiveBufferSize: u32::from(inp.u16()),
        }),
        _ => Some(SAFEWSK_SOCKET_OPTIONS {
            Size: inp.u32(),
            Mask: inp.u32(),
            ExclusiveAddressUse: inp.u32(),
            ReuseAddress: inp.u32(),
            KeepAlive: inp.u32(),
            ReceiveBufferSize: inp.u32(),
        }),
    }
}

/// A UTF-16 string of fuzzed length and content (None: NULL).
fn string(inp: &mut Input, chars: &mut Vec<u16>) -> Option<UNICODE_STRING> {
    match inp.u8() % 4 {
        0 => None,
        1 => {
            chars.clear();
            chars.extend("localhost".encode_utf16());
            let n = (chars.len() * 2) as u16;
            Some(UNICODE_STRING { Length: n, MaximumLength: n, Buffer: chars.as_mut_ptr() })
        }
        2 => {
            chars.clear();
            chars.extend(inp.u16().to_string().encode_utf16());
            let n = (chars.len() * 2) as u16;
            Some(UNICODE_STRING { Length: n, MaximumLength: n, Buffer: chars.as_mut_ptr() })
        }
        _ => {
            let len = usize::from(inp.u8() % 40);
            chars.clear();
            for _ in 0..len {
                chars.push(u16::from(inp.u8()));
            }
            let max = (len * 2) as u16;
            // A fuzzed Length that may lie about the buffer: no more than
            // the buffer holds (a caller contract the library cannot check).
            let length = inp.u16() % (max + 1);
            Some(UNICODE_STRING { Length: length, MaximumLength: max, Buffer: chars.as_mut_ptr() })
        }
    }
}

static CALLBACKS: AtomicU32 = AtomicU32::new(0);
static LAST: AtomicU32 = AtomicU32::new(0);
static SOCKET: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

unsafe extern "C" fn on_accept(_ctx: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
    LAST.store(status as u32, Ordering::SeqCst);
    SOCKET.store(socket as usize, Ordering::SeqCst);
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
}

pub fn run(data: &[u8]) {
    let w = world();
    let mut inp = Input(data);
    let call = inp.u8() % CALLS;
    let mut not_a_socket = Box::new([0x5A5A_5A5A_5A5A_5A5Au64; 16]);
    let right = match call {
        1..=3 => w.listener,
        5 | 6 => w.datagram,
        _ => 0,
    };
    let selector = inp.u8() % HANDLES;
    let handle: usize = match selector {
        0 => 0,
        1 => usize::MAX,
        2 => inp.u64() as usize,
        3 => not_a_socket.as_mut_ptr() as usize,
        4 => w.client,
        5 => w.closed,
        6 => w.connection,
        7 => [w.listener, w.datagram][usize::from(inp.u8() % 2)],
        _ => right,
    };
    let good_handle = handle == right && right != 0;
    let client = match inp.u8() % 4 {
        0 => ptr::null_mut(),
        1 => w.listener as *mut SAFEWSK_CLIENT,
        _ => w.client as *mut SAFEWSK_CLIENT,
    };
    let addr = address(&mut inp, call == 5);
    let opts = options(&mut inp);
    let kind = inp.u8() % 4;
    let length = match inp.u8() % 4 {
        0 => 0,
        1 => u32::from(inp.u8()),
        2 => 64,
        _ => inp.u32() % 4096,
    };
    let flags = match inp.u8() % 3 {
        0 => 0,
        1 => inp.u32(),
        _ => SAFEWSK_FLAG_NONPAGED_BUFFER * u32::from(kind == 3),
    };
    let flags = if kind == 3 { flags } else { flags & !SAFEWSK_FLAG_NONPAGED_BUFFER };
    let family = match inp.u8() % 4 {
        0 => AF_UNSPEC,
        1 => AF_INET,
        2 => AF_INET6,
        _ => inp.u16(),
    };
    let count = u32::from(inp.u8() % 6);
    let mut node_chars = Vec::new();
    let mut service_chars = Vec::new();
    let node = string(&mut inp, &mut node_chars);
    let service = string(&mut inp, &mut service_chars);
    let out_kind = inp.u8() % 2;
    let irql = inp.u8() % 4;
    let timeout = u32::from(inp.u8() % 4);

    let cap = 4096usize;
    let mut stack = [0xA5u8; 4096];
    let (buffer, pool): (*mut u8, *mut u8) = match kind {
        0 => (ptr::null_mut(), ptr::null_mut()),
        1 => (stack.as_mut_ptr(), ptr::null_mut()),
        k => {
            let f = if k == 2 { POOL_FLAG_PAGED } else { POOL_FLAG_NON_PAGED };
            // SAFETY: plain allocation at PASSIVE_LEVEL.
            let p = unsafe { ExAllocatePool2(f, cap, TAG) };
            assert!(!p.is_null());
            // SAFETY: a live block of `cap` bytes.
            unsafe { ptr::write_bytes(p, 0xA5, cap) };
            if k == 2 {
                hostkernel::page_out(p, cap);
            }
            (p, p)
        }
    };
    let length = length.min(cap as u32);
    let addr_ptr: *const SOCKADDR = addr.as_ref().map_or(ptr::null(), |a| a.as_ptr().cast());
    let opts_ptr: *const SAFEWSK_SOCKET_OPTIONS = opts.as_ref().map_or(ptr::null(), |o| o as *const _);
    let node_ptr: *const UNICODE_STRING = node.as_ref().map_or(ptr::null(), |s| s as *const _);
    let service_ptr: *const UNICODE_STRING = service.as_ref().map_or(ptr::null(), |s| s as *const _);
    const MARK: SAFEWSK_ADDRESS = SAFEWSK_ADDRESS { Storage: [0x7777_7777; 7] };
    let mut addresses = [MARK; 6];
    let mut out_socket: *mut SAFEWSK_SOCKET = 0x1234 as *mut _;
    let out_socket_ptr: *mut *mut SAFEWSK_SOCKET = if out_kind == 0 { ptr::null_mut() } else { &mut out_socket };
    let mut out_count = 0xDEAD_u32;
    let mut remote = MARK;
    let remote_ptr: *mut SAFEWSK_ADDRESS = if out_kind == 0 { ptr::null_mut() } else { &mut remote };
    let mut request = Box::new(SAFEWSK_ACCEPT_REQUEST {
        Callback: if inp.u8() % 4 == 0 { None } else { Some(on_accept) },
        CallbackContext: ptr::null_mut(),
        TimeoutMs: timeout,
        Reserved: u32::from(inp.u8() % 4 == 0),
        LocalAddress: SAFEWSK_ADDRESS::default(),
        RemoteAddress: SAFEWSK_ADDRESS::default(),
        Private: [0; 32],
    });
    let callbacks_before = CALLBACKS.load(Ordering::SeqCst);
    let socket = handle as *mut SAFEWSK_SOCKET;
    let status = hostkernel::with_irql(irql, || match call {
        // SAFETY: every pointer is NULL or valid for what it describes; any
        // handle value is safe.
        0 => unsafe { SafeWskListen(client, addr_ptr, opts_ptr, out_socket_ptr, timeout) },
        // SAFETY: as above.
        1 => unsafe {
            SafeWskAccept(socket, ptr::null_mut(), ptr::null(), out_socket_ptr, ptr::null_mut(), remote_ptr, timeout)
        },
        // SAFETY: as above; the request lives until its callback (waited for below).
        2 => unsafe { SafeWskAcceptAsync(socket, ptr::null_mut(), ptr::null(), &mut *request) },
        // SAFETY: a request never started: NULL only (a started one is
        // cancelled in call 2's path below).
        3 => unsafe { SafeWskCancelAccept(ptr::null_mut()) },
        // SAFETY: as above.
        4 => unsafe { SafeWskDatagramSocket(client, addr_ptr, opts_ptr, out_socket_ptr, timeout) },
        // SAFETY: as above.
        5 => unsafe {
            SafeWskSendTo(
                socket,
                buffer.cast(),
                length,
                flags,
                addr_ptr,
                timeout,
                if out_kind == 0 { ptr::null_mut() } else { &mut out_count },
            )
        },
        // SAFETY: as above.
        6 => unsafe {
            SafeWskReceiveFrom(
                socket,
                buffer.cast(),
                length,
                flags,
                remote_ptr,
                timeout,
                if out_kind == 0 { ptr::null_mut() } else { &mut out_count },
            )
        },
        // SAFETY: as above; the array holds `count` <= 5 entries.
        _ => unsafe {
            SafeWskResolveName(
                client,
                node_ptr,
                service_ptr,
                family,
                if out_kind == 0 { ptr::null_mut() } else { addresses.as_mut_ptr() },
                count,
                &mut out_count,
                timeout,
            )
        },
    });
    if std::env::var_os("SAFEWSK_FUZZ_TRACE").is_some() {
        eprintln!("call {call} handle {handle:#x} irql {irql} len {length} flags {flags:#x}: {status:#x}");
    }
    assert!(documented(call, status), "call {call}: undocumented status {status:#x}");
    if matches!(call, 1 | 2 | 5 | 6) && !good_handle {
        assert_eq!(status, STATUS_INVALID_PARAMETER_1, "call {call} with handle {handle:#x}");
    }
    match call {
        0 | 1 | 4 => {
            if !out_socket_ptr.is_null() {
                if status == STATUS_SUCCESS {
                    assert!(!out_socket.is_null());
                    // SAFETY: the socket just made.
                    assert_eq!(unsafe { SafeWskCloseSocket(out_socket) }, STATUS_SUCCESS);
                } else {
                    assert!(out_socket.is_null(), "call {call}: a socket after {status:#x}");
                }
            }
            if call == 1 && status != STATUS_SUCCESS {
                assert_eq!(remote, MARK, "an address written after {status:#x}");
            }
        }
        2 => {
            if status == STATUS_PENDING {
                // SAFETY: a started request, intact until its callback.
                let _ = unsafe { SafeWskCancelAccept(&mut *request) };
                let deadline = Instant::now() + Duration::from_secs(10);
                while CALLBACKS.load(Ordering::SeqCst) == callbacks_before {
                    assert!(Instant::now() < deadline, "no accept callback");
                    std::thread::sleep(Duration::from_millis(1));
                }
                let s = SOCKET.swap(0, Ordering::SeqCst);
                if LAST.load(Ordering::SeqCst) as NTSTATUS == STATUS_SUCCESS {
                    // SAFETY: the socket the callback handed out.
                    assert_eq!(unsafe { SafeWskCloseSocket(s as *mut SAFEWSK_SOCKET) }, STATUS_SUCCESS);
                }
            }
            std::thread::sleep(Duration::from_millis(2));
            assert_eq!(
                CALLBACKS.load(Ordering::SeqCst) - callbacks_before,
                u32::from(status == STATUS_PENDING),
                "callbacks"
            );
        }
        5..=7
            if out_kind == 1
                && !nt_success(status)
                && status != STATUS_IO_TIMEOUT
                && (call == 7 || status != STATUS_BUFFER_OVERFLOW) =>
        {
            assert_eq!(out_count, 0, "call {call}: a count after {status:#x}");
        }
        _ => {}
    }
    if call == 7 {
        let n = if status == STATUS_SUCCESS { out_count as usize } else { 0 };
        assert!(n <= count as usize);
        for a in &addresses[n..] {
            assert_eq!(*a, MARK, "an entry past those returned was written");
        }
    }
    if call == 6 && !nt_success(status) && status != STATUS_BUFFER_OVERFLOW {
        assert_eq!(remote, MARK, "a sender written after {status:#x}");
    }
    assert_eq!(*not_a_socket, [0x5A5A_5A5A_5A5A_5A5A; 16], "the block behind a forged handle was written");
    if !pool.is_null() {
        // SAFETY: our block, freed once.
        unsafe { ExFreePoolWithTag(pool, TAG) };
    }
    // Datagrams sent to the datagram socket itself are drained, so that a
    // later receive-from does not depend on an earlier input.
    drain(w.datagram as *mut SAFEWSK_SOCKET);
    let live = hostkernel::live();
    assert_eq!((live.mdls, live.sockets, live.locked_pages), (0, w.sockets, 0), "after call {call} ({status:#x})");
    assert!(live.irps >= w.irps, "after call {call}");
    let v = hostkernel::violations();
    assert!(v.is_empty(), "call {call} ({status:#x}): {v:#?}");
}

/// Receives whatever datagrams wait on the world's datagram socket.
fn drain(socket: *mut SAFEWSK_SOCKET) {
    let mut b = [0u8; 64];
    let mut n = 0;
    // SAFETY: the live datagram socket, a stack buffer, a 0 ms deadline.
    while unsafe { SafeWskReceiveFrom(socket, b.as_mut_ptr().cast(), 64, 0, ptr::null_mut(), 0, &mut n) }
        == STATUS_SUCCESS
    {}
}
