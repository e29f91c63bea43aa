//! One fuzz input = one call on a connected socket: SafeWskSend,
//! SafeWskReceive, SafeWskGetLocalAddress, SafeWskGetRemoteAddress,
//! SafeWskDisconnect or SafeWskCloseSocket, with an arbitrary client (live,
//! NULL, or a block that is not a client), socket (the live connection,
//! NULL, a closed socket, or a block that is not a socket), buffer (NULL,
//! the stack, paged pool paged out, or non-paged pool), length, flags,
//! IRQL (0 to 3) and deadline (0 to 3 ms). Shared by the libFuzzer target
//! and by tests/fuzz_socket_regressions.rs, which replays
//! fuzz/regressions-socket/*.
//!
//! Disconnect and close never get the live connection (they would end it):
//! they are fuzzed on the other sockets and with bad flags.
//!
//! Checked on every input: the status is one the header documents; a
//! rejected argument leaves the out count 0 and the address buffer
//! unwritten; no IRP or MDL is live and no page locked once the call
//! returned; the host kernel saw no contract violation; the live connection
//! is still open.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::ptr;
use std::sync::OnceLock;

use safewsk::nt::*;
use safewsk::*;

const POOL_FLAG_NON_PAGED: u64 = 0x40;
const POOL_FLAG_PAGED: u64 = 0x100;
const TAG: u32 = u32::from_le_bytes(*b"Fuzz");
const STATUS_BUFFER_TOO_SMALL: NTSTATUS = 0xC000_0023_u32 as NTSTATUS;

extern "system" {
    fn ExAllocatePool2(flags: u64, size: usize, tag: u32) -> *mut u8;
    fn ExFreePoolWithTag(p: *mut u8, tag: u32);
}

#[path = "fuzz_input.rs"]
mod fuzz_input;
use fuzz_input::Input;

/// The live client, one connected socket and one closed socket, made once.
struct World {
    client: usize,
    socket: usize,
    closed: usize,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        std::thread::spawn(move || {
            for s in listener.incoming() {
                let Ok(mut s) = s else { return };
                std::thread::spawn(move || {
                    let mut b = [0u8; 4096];
                    while let Ok(n) = s.read(&mut b) {
                        if n == 0 || s.write_all(&b[..n]).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let mut c = ptr::null_mut();
        // SAFETY: valid out pointer, PASSIVE_LEVEL.
        assert_eq!(unsafe { SafeWskStartup(hostkernel::test_device().cast(), 0, &mut c) }, STATUS_SUCCESS);
        let connect = || {
            let local = SOCKADDR_IN { sin_family: AF_INET, ..Default::default() };
            let remote =
                SOCKADDR_IN { sin_family: AF_INET, sin_port: port.to_be(), sin_addr: [127, 0, 0, 1], sin_zero: [0; 8] };
            let mut s = ptr::null_mut();
            // SAFETY: valid addresses and out pointer, PASSIVE_LEVEL.
            let st = unsafe {
                SafeWskSocketConnect(
                    c,
                    SOCK_STREAM,
                    IPPROTO_TCP,
                    ptr::addr_of!(local).cast(),
                    ptr::addr_of!(remote).cast(),
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
            assert_eq!(st, STATUS_SUCCESS);
            s
        };
        let socket = connect();
        let closed = connect();
        // SAFETY: a live client and its open socket.
        assert_eq!(unsafe { SafeWskCloseSocket(c, closed) }, STATUS_SUCCESS);
        World { client: c as usize, socket: socket as usize, closed: closed as usize }
    })
}

const DOCUMENTED: &[NTSTATUS] = &[
    STATUS_SUCCESS,
    STATUS_IO_TIMEOUT,
    STATUS_INVALID_LEVEL,
    STATUS_BUFFER_TOO_SMALL,
    STATUS_INVALID_PARAMETER_1,
    STATUS_INVALID_PARAMETER_2,
    STATUS_INVALID_PARAMETER_3,
    STATUS_INVALID_PARAMETER_4,
    STATUS_INVALID_PARAMETER_5,
    STATUS_INVALID_PARAMETER_7,
];

pub fn run(data: &[u8]) {
    let w = world();
    let mut inp = Input(data);
    let mut not_a_client = [0u64; 64];
    let mut not_a_socket = [0u64; 16];
    let call = inp.u8() % 6;
    let client = match inp.u8() % 4 {
        0 => ptr::null_mut(),
        1 => not_a_client.as_mut_ptr().cast::<SAFEWSK_CLIENT>(),
        _ => w.client as *mut SAFEWSK_CLIENT,
    };
    let mut socket = match inp.u8() % 5 {
        0 => ptr::null_mut(),
        1 => w.closed as *mut WSK_SOCKET,
        2 => not_a_socket.as_mut_ptr().cast::<WSK_SOCKET>(),
        _ => w.socket as *mut WSK_SOCKET,
    };
    if call >= 4 && socket == w.socket as *mut WSK_SOCKET {
        socket = w.closed as *mut WSK_SOCKET;
    }
    let kind = inp.u8() % 4;
    let length = match inp.u8() % 4 {
        0 => 0,
        1 => u32::from(inp.u8()),
        2 => 28,
        _ => inp.u32() % 4096,
    };
    let flags = match inp.u8() % 3 {
        0 => 0,
        1 => inp.u32(),
        _ => SAFEWSK_FLAG_NONPAGED_BUFFER * u32::from(kind == 3),
    };
    // SAFEWSK_FLAG_NONPAGED_BUFFER on anything but non-paged pool is a
    // caller contract violation the library cannot detect: not fuzzed.
    let flags = if kind == 3 { flags } else { flags & !SAFEWSK_FLAG_NONPAGED_BUFFER };
    let irql = inp.u8() % 4;
    let timeout = u32::from(inp.u8() % 4);
    let mut stack = [0xA5u8; 4096];
    let cap = 4096usize;
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
    // The buffer holds at least `length` bytes for every call that gets it.
    let length = length.min(cap as u32);
    let mut count = 0xDEAD_u32;
    let status = hostkernel::with_irql(irql, || match call {
        // SAFETY: every pointer is NULL or valid for `length` bytes.
        0 => unsafe { SafeWskSend(client, socket, buffer.cast(), length, flags, timeout, &mut count) },
        // SAFETY: as above.
        1 => unsafe { SafeWskReceive(client, socket, buffer.cast(), length, flags, timeout, &mut count) },
        // SAFETY: as above.
        2 => unsafe { SafeWskGetLocalAddress(client, socket, buffer.cast(), length, timeout) },
        // SAFETY: as above.
        3 => unsafe { SafeWskGetRemoteAddress(client, socket, buffer.cast(), length, timeout) },
        // SAFETY: never the live connection (see above).
        4 => unsafe { SafeWskDisconnect(client, socket, flags, timeout) },
        // SAFETY: as above.
        _ => unsafe { SafeWskCloseSocket(client, socket) },
    });
    if std::env::var_os("SAFEWSK_FUZZ_TRACE").is_some() {
        eprintln!("call {call} kind {kind} len {length} irql {irql}: {status:#x} count {count:#x}");
    }
    assert!(DOCUMENTED.contains(&status), "call {call}: undocumented status {status:#x}");
    if !nt_success(status) && call < 2 && status != STATUS_IO_TIMEOUT {
        assert_eq!(count, 0, "call {call}: a count after {status:#x}");
    }
    if (call == 2 || call == 3) && !buffer.is_null() {
        hostkernel::page_in(buffer, cap);
        // SAFETY: `buffer` is at least `cap` readable bytes.
        let first = unsafe { *buffer };
        if status == STATUS_SUCCESS {
            assert_eq!(u16::from(first), AF_INET, "call {call}: the address family");
        } else {
            assert_eq!(first, 0xA5, "call {call}: the buffer was written after {status:#x}");
        }
    }
    if call >= 4 {
        assert!(status != STATUS_SUCCESS, "call {call} succeeded on a socket that is not open");
    }
    if !pool.is_null() {
        // SAFETY: our block, freed once.
        unsafe { ExFreePoolWithTag(pool, TAG) };
    }
    let live = hostkernel::live();
    // The open socket keeps the one IRP its calls reuse (no call overlaps
    // another here, so it never gets a spare), and the closed socket's record
    // and IRP are cached by the client for its next connect.
    assert_eq!((live.irps, live.mdls, live.sockets), (2, 0, 1), "after call {call} ({status:#x})");
    let v = hostkernel::violations();
    assert!(v.is_empty(), "call {call} ({status:#x}): {v:#?}");
}
