//! One fuzz input = one call of SafeWskSocketConnect or
//! SafeWskSocketConnectAsync (and SafeWskCancelConnect) with arbitrary
//! arguments: client (the live one, or a forged or stale handle: NULL, a
//! heap block that is not a client, all ones, the handle of a client that
//! has been cleaned up, 8 fuzzed bytes, a socket handle, the live handle's
//! next generation), socket type, protocol, flags, SOCKADDR bytes for both addresses, the
//! context/dispatch combination, a security descriptor, the socket out
//! pointer, the deadline. Shared by the libFuzzer target and by
//! tests/fuzz_regressions.rs, which replays fuzz/regressions/*.
//!
//! Checked on every input: the status is one the header documents; a
//! rejected argument (STATUS_INVALID_PARAMETER_n) never reaches the provider;
//! a client handle other than the live one is STATUS_INVALID_PARAMETER_1
//! (the IRQL is at most DISPATCH_LEVEL here, where the handle is checked in
//! full); *Socket is NULL unless the call succeeded; an accepted async
//! request calls back exactly once; nothing leaks once the call is over (no
//! socket open, and every live IRP one the socket table caches for the next
//! connect: issue 17).
//!
//! Addresses are passed in buffers of at least 28 bytes: the API, like WSK,
//! has no length parameter and reads the size the family implies, so a
//! shorter buffer is a caller contract violation it cannot detect.

use std::ptr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;

use safewsk::nt::*;
use safewsk::*;

#[path = "fuzz_input.rs"]
mod fuzz_input;
use fuzz_input::Input;

impl Input<'_> {
    /// A SOCKADDR: None (NULL) or `len` fuzzed bytes in a 28-byte buffer.
    fn sockaddr(&mut self) -> Option<Vec<u8>> {
        let len = self.u8();
        if len == 0 {
            return None;
        }
        let mut v = vec![0u8; 28.max(len as usize)];
        for b in v.iter_mut().take(len as usize) {
            *b = self.u8();
        }
        Some(v)
    }
}

/// The live client, and the handle of a client that has been cleaned up.
fn clients() -> (*mut SAFEWSK_CLIENT, *mut SAFEWSK_CLIENT) {
    static CLIENTS: OnceLock<(usize, usize)> = OnceLock::new();
    let (live, stale) = *CLIENTS.get_or_init(|| {
        // Connects that pass validation reach a provider that never
        // completes: the deadline (0-3 ms) cancels them. No traffic.
        hostkernel::set_connect_completion(hostkernel::ConnectCompletion::Never);
        let startup = || {
            let mut c = ptr::null_mut();
            // SAFETY: valid out pointer, PASSIVE_LEVEL.
            assert_eq!(unsafe { SafeWskStartup(hostkernel::test_device().cast(), 0, &mut c) }, STATUS_SUCCESS);
            c
        };
        let live = startup();
        let stale = startup();
        // SAFETY: a live client.
        assert_eq!(unsafe { SafeWskCleanup(stale) }, STATUS_SUCCESS);
        (live as usize, stale as usize)
    });
    (live as *mut SAFEWSK_CLIENT, stale as *mut SAFEWSK_CLIENT)
}

unsafe extern "system" fn on_receive(_: PVOID, _: ULONG, _: PVOID, _: SIZE_T, _: *mut SIZE_T) -> NTSTATUS {
    STATUS_SUCCESS
}

static CALLBACKS: AtomicU32 = AtomicU32::new(0);
static LAST_STATUS: AtomicU32 = AtomicU32::new(0);

unsafe extern "C" fn on_connect(_: PVOID, status: NTSTATUS, socket: *mut SAFEWSK_SOCKET) {
    assert!(socket.is_null() || status == STATUS_SUCCESS);
    if !socket.is_null() {
        // SAFETY: the connected socket's handle, ours to close (never
        // expected: the provider never completes a connect here).
        unsafe { SafeWskCloseSocket(socket) };
    }
    LAST_STATUS.store(status as u32, Ordering::SeqCst);
    CALLBACKS.fetch_add(1, Ordering::SeqCst);
}

const DOCUMENTED: &[NTSTATUS] = &[
    STATUS_SUCCESS,
    STATUS_PENDING,
    STATUS_IO_TIMEOUT,
    STATUS_CANCELLED,
    STATUS_INVALID_LEVEL,
    STATUS_INVALID_PARAMETER_1,
    STATUS_INVALID_PARAMETER_2,
    STATUS_INVALID_PARAMETER_3,
    STATUS_INVALID_PARAMETER_4,
    STATUS_INVALID_PARAMETER_5,
    STATUS_INVALID_PARAMETER_6,
    STATUS_INVALID_PARAMETER_7,
    STATUS_INVALID_PARAMETER_8,
    STATUS_INVALID_PARAMETER_11,
    STATUS_INVALID_PARAMETER_12,
];

pub fn run(data: &[u8]) {
    let mut inp = Input(data);
    let (live, stale) = clients();
    let mut not_a_client = Box::new([0x5A5A_5A5A_5A5A_5A5Au64; 64]);
    // The first byte keeps its meaning from before issue 17 (so the kept
    // corpus still means what it did): % 3 chooses the live client, NULL or
    // a forged handle; for a forged one, the rest of the byte chooses which.
    let which = inp.u8();
    let mut client_arg = match (which % 3, which / 3 % 6) {
        (0, _) => live,
        (1, _) => ptr::null_mut(),
        (_, 0) => not_a_client.as_mut_ptr().cast(),
        (_, 1) => usize::MAX as *mut SAFEWSK_CLIENT,
        (_, 2) => stale,
        (_, 3) => inp.u64() as usize as *mut SAFEWSK_CLIENT,
        // A socket handle's form (tag 0xA5, epoch 1, generation 1, slot 0).
        (_, 4) => 0xA500_0100_0001_0000_usize as *mut SAFEWSK_CLIENT,
        // The live handle's next generation (issue 17's encoding: the
        // generation is in bits 16..40).
        _ => (live as usize + (1 << 16)) as *mut SAFEWSK_CLIENT,
    };
    if client_arg == live && which % 3 != 0 {
        // Fuzzed bytes that happen to be the live handle.
        client_arg = stale;
    }
    let forged = client_arg != live;
    let socket_type = inp.u16();
    let protocol = inp.u32();
    let flags = if inp.u8() % 4 == 0 { inp.u32() } else { 0 };
    let local = inp.sockaddr();
    let remote = inp.sockaddr();
    let mut context_cell = 0u64;
    let shape = inp.u8();
    let context: PVOID = if shape & 1 != 0 { (&mut context_cell as *mut u64).cast() } else { ptr::null_mut() };
    let empty =
        WSK_CLIENT_CONNECTION_DISPATCH { WskReceiveEvent: None, WskDisconnectEvent: None, WskSendBacklogEvent: None };
    let full = WSK_CLIENT_CONNECTION_DISPATCH {
        WskReceiveEvent: Some(on_receive),
        WskDisconnectEvent: None,
        WskSendBacklogEvent: None,
    };
    let dispatch: *const WSK_CLIENT_CONNECTION_DISPATCH = match (shape >> 1) % 3 {
        0 => ptr::null(),
        1 => &empty,
        _ => &full,
    };
    let mut sd = [0u32; 8];
    sd[0] = u32::from(inp.u8());
    let sd_arg: PVOID = match (shape >> 3) % 3 {
        0 => ptr::null_mut(),
        1 => sd.as_mut_ptr().cast(),
        // SAFETY: one byte into a local array: a misaligned pointer.
        _ => unsafe { sd.as_mut_ptr().cast::<u8>().add(1) }.cast(),
    };
    let want_socket = shape & 0x20 == 0;
    let timeout = u32::from(inp.u8() % 4);
    let asynchronous = shape & 0x40 != 0;
    let irql = if inp.u8() % 8 == 0 { 2 } else { 0 };
    let lp = local.as_ref().map_or(ptr::null(), |v| v.as_ptr().cast::<SOCKADDR>());
    let rp = remote.as_ref().map_or(ptr::null(), |v| v.as_ptr().cast::<SOCKADDR>());

    let calls_before = hostkernel::provider_connect_calls();
    let status = if asynchronous {
        let mut req = SAFEWSK_CONNECT_REQUEST {
            Callback: Some(on_connect),
            CallbackContext: ptr::null_mut(),
            TimeoutMs: timeout,
            Reserved: 0,
            Private: [0; 32],
        };
        let before = CALLBACKS.load(Ordering::SeqCst);
        let reqp: *mut SAFEWSK_CONNECT_REQUEST = if want_socket { &mut req } else { ptr::null_mut() };
        // SAFETY: every pointer is NULL or valid; `req` outlives the callback
        // (waited for below).
        let st = hostkernel::with_irql(irql, || unsafe {
            SafeWskSocketConnectAsync(
                client_arg,
                socket_type,
                protocol,
                lp,
                rp,
                flags,
                context,
                dispatch,
                ptr::null_mut(),
                ptr::null_mut(),
                sd_arg,
                reqp,
            )
        });
        if st == STATUS_PENDING {
            if inp.u8() & 1 != 0 {
                // SAFETY: a started request whose storage is intact.
                let c = unsafe { SafeWskCancelConnect(&mut req) };
                assert!(c == STATUS_SUCCESS || c == STATUS_NOT_FOUND);
            }
            while CALLBACKS.load(Ordering::SeqCst) == before {
                std::thread::yield_now();
            }
            let cb = LAST_STATUS.load(Ordering::SeqCst) as NTSTATUS;
            assert!(cb == STATUS_IO_TIMEOUT || cb == STATUS_CANCELLED, "callback status {cb:#x}");
        } else {
            std::thread::sleep(std::time::Duration::from_micros(50));
            assert_eq!(CALLBACKS.load(Ordering::SeqCst), before, "a rejected request called back");
        }
        st
    } else {
        // Not NULL: the call must reset it to NULL on failure.
        let mut socket: *mut SAFEWSK_SOCKET = ptr::NonNull::dangling().as_ptr();
        let out: *mut *mut SAFEWSK_SOCKET = if want_socket { &mut socket } else { ptr::null_mut() };
        // SAFETY: every pointer is NULL or valid for the call.
        let st = hostkernel::with_irql(irql, || unsafe {
            SafeWskSocketConnect(
                client_arg,
                socket_type,
                protocol,
                lp,
                rp,
                flags,
                context,
                dispatch,
                ptr::null_mut(),
                ptr::null_mut(),
                sd_arg,
                out,
                timeout,
            )
        });
        if want_socket {
            assert!(socket.is_null(), "*Socket not NULL after {st:#x} (the provider never connects here)");
        }
        st
    };
    if std::env::var_os("SAFEWSK_FUZZ_TRACE").is_some() {
        eprintln!("client {which} async {asynchronous} irql {irql}: {status:#x}");
    }
    assert!(DOCUMENTED.contains(&status), "undocumented status {status:#x}");
    let reached = hostkernel::provider_connect_calls() != calls_before;
    let rejected =
        (STATUS_INVALID_PARAMETER_1..=STATUS_INVALID_PARAMETER_12).contains(&status) || status == STATUS_INVALID_LEVEL;
    assert!(!(rejected && reached), "status {status:#x} but the provider was called");
    if forged {
        assert_eq!(status, STATUS_INVALID_PARAMETER_1, "a forged or stale client handle {:#x}", client_arg as usize);
    }
    assert_eq!(*not_a_client, [0x5A5A_5A5A_5A5A_5A5A; 64], "the block behind a forged handle was written");
    let live = hostkernel::live();
    assert_eq!(live.sockets, 0);
    // Every live IRP is one the socket table caches for the next connect
    // (an asynchronous request may still be recycling its slot: briefly).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
    while hostkernel::live().irps != safewsk::table_usage().1 && std::time::Instant::now() < deadline {
        std::thread::yield_now();
    }
    assert_eq!(hostkernel::live().irps, safewsk::table_usage().1, "an IRP leaked");
}
