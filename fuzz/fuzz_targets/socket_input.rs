//! One fuzz input = one call on a socket handle: SafeWskSend,
//! SafeWskReceive, SafeWskGetLocalAddress, SafeWskGetRemoteAddress,
//! SafeWskDisconnect, SafeWskCloseSocket, SafeWskEnableCallbacks or
//! SafeWskDisableCallbacks, with an arbitrary socket handle (the live
//! connection, or one of the forged or stale values below), buffer (NULL,
//! the stack, paged pool paged out, or non-paged pool), length, flags (the
//! event mask for the callback controls), IRQL (0 to 3) and deadline (0 to
//! 3 ms). Shared by the libFuzzer target and by
//! tests/fuzz_socket_regressions.rs, which replays fuzz/regressions-socket/*
//! and a table of hand-made inputs.
//!
//! Input layout (issue 17: socket calls take no client any more): call,
//! handle selector (the random handle takes 8 more bytes), buffer kind,
//! length selector (+ 1 or 4 bytes), flags selector (+ 4 bytes), IRQL,
//! deadline.
//!
//! Handles other than the live connection, all of which every export must
//! refuse with STATUS_INVALID_PARAMETER_1 at every IRQL without touching
//! anything: NULL, all ones, 8 fuzzed bytes, a heap block (whose contents
//! must stay as they are), the client's handle, the handle of a closed
//! socket, the handle of a socket of a client that has been cleaned up (its
//! cleanup closed it), and near misses of the live handle (the next
//! generation, the next table epoch, another slot of the installed chunk at
//! a fuzzed generation).
//!
//! Disconnect and close never get the live connection (they would end it):
//! they are fuzzed on the other handles and with bad flags. The callback
//! controls may: the live socket has no Dispatch table, so any mask is
//! refused (_2) before the provider is called.
//!
//! Checked on every input: the status is one the header documents; a handle
//! other than the live one is STATUS_INVALID_PARAMETER_1; a rejected
//! argument leaves the out count 0 and the address buffer unwritten; no IRP
//! or MDL is live beyond the live socket's and the table's cache, no page
//! locked, and the table unchanged once the call returned; the host kernel
//! saw no contract violation; the live connection is still open.

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

/// The live client, one connected socket, the handle of a closed socket and
/// that of a socket whose client was cleaned up, made once; and what is
/// live once they are made.
struct World {
    client: usize,
    socket: usize,
    closed: usize,
    gone: usize,
    irps: usize,
    table: (usize, usize),
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
        let startup = || {
            let mut c = ptr::null_mut();
            // SAFETY: valid out pointer, PASSIVE_LEVEL.
            assert_eq!(unsafe { SafeWskStartup(hostkernel::test_device().cast(), 0, &mut c) }, STATUS_SUCCESS);
            c
        };
        let connect = |c: *mut SAFEWSK_CLIENT| {
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
        let c = startup();
        let socket = connect(c);
        let closed = connect(c);
        // SAFETY: an open socket.
        assert_eq!(unsafe { SafeWskCloseSocket(closed) }, STATUS_SUCCESS);
        // A client whose cleanup closes the socket it left open (the live
        // client keeps the socket table).
        let other = startup();
        let gone = connect(other);
        // SAFETY: a live client.
        assert_eq!(unsafe { SafeWskCleanup(other) }, STATUS_SUCCESS);
        let live = hostkernel::live();
        assert_eq!(live.sockets, 1);
        World {
            client: c as usize,
            socket: socket as usize,
            closed: closed as usize,
            gone: gone as usize,
            irps: live.irps,
            table: safewsk::table_usage(),
        }
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
    STATUS_INVALID_PARAMETER_6,
];

/// How many handle selectors there are (the last ones are the live socket).
pub const HANDLE_KINDS: u8 = 12;
/// A selector that names the live socket.
pub const LIVE: u8 = 10;
/// The selector of the 8 fuzzed bytes.
pub const RANDOM: u8 = 2;
/// How many calls there are.
pub const CALLS: u8 = 8;

pub fn run(data: &[u8]) {
    let w = world();
    let mut inp = Input(data);
    let mut not_a_socket = Box::new([0x5A5A_5A5A_5A5A_5A5Au64; 16]);
    let call = inp.u8() % CALLS;
    let live = w.socket;
    // Fields of the live handle (issue 17's encoding: tag 0xA5, table epoch,
    // 24-bit generation, 16-bit slot index).
    let near = |index: usize, generation: usize| (live & !0xFF_FFFF_FFFF) | ((generation & 0xFF_FFFF) << 16) | index;
    let selector = inp.u8() % HANDLE_KINDS;
    let mut handle: usize = match selector {
        0 => 0,
        1 => usize::MAX,
        RANDOM => inp.u64() as usize,
        3 => not_a_socket.as_mut_ptr() as usize,
        4 => w.client,
        5 => w.closed,
        6 => w.gone,
        7 => live + (1 << 16),
        8 => live + (1 << 40),
        9 => near(usize::from(inp.u8() % 64), inp.u32() as usize),
        _ => live,
    };
    if selector < LIVE && handle == live {
        // A forged value that happens to be the live handle.
        handle = w.closed;
    }
    if (4..6).contains(&call) && handle == live {
        handle = w.closed;
    }
    let socket = handle as *mut SAFEWSK_SOCKET;
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
        // SAFETY: every pointer is NULL or valid for `length` bytes; any
        // handle value is safe.
        0 => unsafe { SafeWskSend(socket, buffer.cast(), length, flags, timeout, &mut count) },
        // SAFETY: as above.
        1 => unsafe { SafeWskReceive(socket, buffer.cast(), length, flags, timeout, &mut count) },
        // SAFETY: as above.
        2 => unsafe { SafeWskGetLocalAddress(socket, buffer.cast(), length, timeout) },
        // SAFETY: as above.
        3 => unsafe { SafeWskGetRemoteAddress(socket, buffer.cast(), length, timeout) },
        // SAFETY: never the live connection (see above).
        4 => unsafe { SafeWskDisconnect(socket, flags, timeout) },
        // SAFETY: as above.
        5 => unsafe { SafeWskCloseSocket(socket) },
        // SAFETY: any handle value is safe; the live socket has no table.
        6 => unsafe { SafeWskEnableCallbacks(socket, flags) },
        // SAFETY: as above.
        _ => unsafe { SafeWskDisableCallbacks(socket, flags, timeout) },
    });
    if std::env::var_os("SAFEWSK_FUZZ_TRACE").is_some() {
        eprintln!("call {call} handle {handle:#x} kind {kind} len {length} flags {flags:#x} irql {irql}: {status:#x} count {count:#x}");
    }
    assert!(DOCUMENTED.contains(&status), "call {call}: undocumented status {status:#x}");
    if handle != live {
        assert_eq!(status, STATUS_INVALID_PARAMETER_1, "call {call} on the forged or stale handle {handle:#x}");
    }
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
        assert!(status != STATUS_SUCCESS, "call {call} succeeded on a socket that is not open or has no table");
    }
    assert_eq!(*not_a_socket, [0x5A5A_5A5A_5A5A_5A5A; 16], "the block behind a forged handle was written");
    if !pool.is_null() {
        // SAFETY: our block, freed once.
        unsafe { ExFreePoolWithTag(pool, TAG) };
    }
    let live = hostkernel::live();
    // The open socket keeps the one IRP its calls reuse (no call overlaps
    // another here, so none allocates its own), and the IRPs of the closed
    // sockets wait in the table's cache for the next connect.
    assert_eq!(
        (live.irps, live.mdls, live.sockets, live.locked_pages),
        (w.irps, 0, 1, 0),
        "after call {call} ({status:#x})"
    );
    assert_eq!(safewsk::table_usage(), w.table, "after call {call} ({status:#x})");
    let v = hostkernel::violations();
    assert!(v.is_empty(), "call {call} ({status:#x}): {v:#?}");
}
