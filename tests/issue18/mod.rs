//! Helpers shared by the issue 18 tests (cleanup, reports, deadline,
//! release, control, short_connect, host_windows): the report callback's
//! recorder, bounded waits, and a loopback server that holds its accepted
//! streams.
#![allow(dead_code)]

use std::ffi::{c_void, CStr};
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ptr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use safewsk::nt::*;
use safewsk::*;

/// One report as the driver's callback received it (copied: the
/// SAFEWSK_REPORT is only valid during the callback).
#[derive(Clone, Debug)]
pub struct Seen {
    pub code: u32,
    pub status: NTSTATUS,
    pub milliseconds: u32,
    pub value1: u32,
    pub value2: u32,
    pub what: Option<String>,
    pub object: usize,
    /// The IRQL the callback ran at.
    pub irql: u8,
}

/// What the callback was given as its context (checked on every call).
static CONTEXT_TAG: u64 = 0x5AFE_5EE5;
static SEEN: Mutex<Vec<Seen>> = Mutex::new(Vec::new());
/// Reports that arrived with another context than the one set.
static WRONG_CONTEXT: Mutex<u32> = Mutex::new(0);

unsafe extern "C" fn on_report(context: PVOID, report: *const SAFEWSK_REPORT) {
    if context != ptr::addr_of!(CONTEXT_TAG).cast_mut().cast() {
        *WRONG_CONTEXT.lock().unwrap_or_else(|e| e.into_inner()) += 1;
    }
    // SAFETY: the library passes a report valid for the call.
    let r = unsafe { &*report };
    let what = if r.What.is_null() {
        None
    } else {
        // SAFETY: a NUL-terminated ASCII literal of the library.
        Some(unsafe { CStr::from_ptr(r.What) }.to_string_lossy().into_owned())
    };
    SEEN.lock().unwrap_or_else(|e| e.into_inner()).push(Seen {
        code: r.Code,
        status: r.Status,
        milliseconds: r.Milliseconds,
        value1: r.Value1,
        value2: r.Value2,
        what,
        object: r.Object as usize,
        irql: hostkernel::irql::current(),
    });
}

/// The report callback, set while this lives (set it before the first
/// SafeWskStartup of a test; it is removed when dropped, after the last
/// cleanup).
pub struct Reports {
    _private: (),
}

impl Reports {
    /// Sets the callback (asserting STATUS_SUCCESS: no client exists) and
    /// forgets earlier reports and debugger lines.
    pub fn install() -> Reports {
        SEEN.lock().unwrap_or_else(|e| e.into_inner()).clear();
        *WRONG_CONTEXT.lock().unwrap_or_else(|e| e.into_inner()) = 0;
        let _ = hostkernel::take_all_dbgprint_log();
        // SAFETY: a callback of the documented type, safe at DISPATCH_LEVEL
        // (it only takes a host mutex), with a static context.
        let st = unsafe { SafeWskSetReportCallback(Some(on_report), ptr::addr_of!(CONTEXT_TAG).cast_mut().cast()) };
        assert_eq!(st, STATUS_SUCCESS, "SafeWskSetReportCallback (no client exists)");
        Reports { _private: () }
    }

    /// Every report so far (kept).
    pub fn all(&self) -> Vec<Seen> {
        let wrong = *WRONG_CONTEXT.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(wrong, 0, "every report arrives with the context that was set");
        SEEN.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The reports with `code` so far.
    pub fn of(&self, code: u32) -> Vec<Seen> {
        self.all().into_iter().filter(|r| r.code == code).collect()
    }

    /// Waits up to `within` until `n` reports with `code` arrived.
    pub fn wait_for(&self, code: u32, n: usize, within: Duration) -> Vec<Seen> {
        let end = Instant::now() + within;
        loop {
            let got = self.of(code);
            if got.len() >= n || Instant::now() >= end {
                return got;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Reports {
    fn drop(&mut self) {
        // SAFETY: removing the callback; refused (and harmless) if a test
        // failed with a client still alive.
        let _ = unsafe { SafeWskSetReportCallback(None, ptr::null_mut()) };
    }
}

/// Starts a fresh window of the debugger lines' rate limit (10 a second,
/// process-wide): waits past the window any earlier report opened, and
/// drops the lines printed so far.
pub fn fresh_report_window() {
    thread::sleep(Duration::from_millis(1100));
    let _ = hostkernel::take_all_dbgprint_log();
}

/// Runs `f` on a thread and waits at most `within` for it: a hang fails the
/// test with `what` instead of hanging it (the thread is left behind).
pub fn bounded<T: Send + 'static>(what: &str, within: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(within) {
        Ok(v) => v,
        Err(_) => panic!("{what} did not return within {within:?}"),
    }
}

/// A client handle that may cross threads (it is an opaque value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientH(pub usize);

impl ClientH {
    pub fn new(c: *mut SAFEWSK_CLIENT) -> ClientH {
        ClientH(c as usize)
    }
    pub fn get(self) -> *mut SAFEWSK_CLIENT {
        self.0 as *mut SAFEWSK_CLIENT
    }
}

/// A socket handle that may cross threads (it is an opaque value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketH(pub usize);

impl SocketH {
    pub fn new(s: *mut SAFEWSK_SOCKET) -> SocketH {
        SocketH(s as usize)
    }
    pub fn get(self) -> *mut SAFEWSK_SOCKET {
        self.0 as *mut SAFEWSK_SOCKET
    }
}

/// SafeWskCleanup on a thread, bounded.
pub fn cleanup_within(client: *mut SAFEWSK_CLIENT, within: Duration) -> NTSTATUS {
    let c = ClientH::new(client);
    // SAFETY: a client handle (any value is safe).
    bounded("SafeWskCleanup", within, move || unsafe { SafeWskCleanup(c.get()) })
}

/// A loopback server that accepts and keeps its streams (neither reading
/// nor writing) until dropped.
pub struct Holder {
    pub addr: SocketAddr,
    streams: Arc<Mutex<Vec<TcpStream>>>,
}

impl Holder {
    pub fn new() -> Holder {
        Holder::on("127.0.0.1:0")
    }

    pub fn on(bind: &str) -> Holder {
        let listener = TcpListener::bind(bind).expect("bind");
        let addr = listener.local_addr().expect("addr");
        let streams = Arc::new(Mutex::new(Vec::new()));
        let s = streams.clone();
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                s.lock().unwrap().push(stream);
            }
        });
        Holder { addr, streams }
    }

    /// Waits up to 5 s until `n` connections were accepted.
    pub fn accepted(&self, n: usize) -> usize {
        let end = Instant::now() + Duration::from_secs(5);
        while self.streams.lock().unwrap().len() < n && Instant::now() < end {
            thread::sleep(Duration::from_millis(2));
        }
        self.streams.lock().unwrap().len()
    }

    /// Takes the accepted streams.
    pub fn take(&self) -> Vec<TcpStream> {
        std::mem::take(&mut *self.streams.lock().unwrap())
    }
}

impl Default for Holder {
    fn default() -> Self {
        Holder::new()
    }
}

/// What the peer of a stream sees next: reads (bounded by 3 s) until the
/// end: Ok(()) for an end of stream or a reset, Err with what came instead.
pub fn peer_sees_end(stream: &mut TcpStream) -> Result<(), String> {
    stream.set_read_timeout(Some(Duration::from_secs(3))).expect("timeout");
    let mut buf = [0u8; 64];
    match stream.read(&mut buf) {
        Ok(0) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Ok(()),
        Ok(n) => Err(format!("{n} bytes")),
        Err(e) => Err(format!("{e}")),
    }
}

/// The WSK sockets (WSK_SOCKET addresses) the host provider has open.
pub fn host_sockets() -> Vec<usize> {
    let mut v = hostkernel::wsk::open_sockets();
    v.sort_unstable();
    v
}

/// The value of `#define <name> (ULONG)<value>` in the generated header.
pub fn header_constant(name: &str) -> u32 {
    let header = include_str!("../../include/safewsk.h");
    let prefix = format!("#define {name} ");
    let line = header.lines().find(|l| l.starts_with(&prefix)).unwrap_or_else(|| panic!("{name} in safewsk.h"));
    let value = line[prefix.len()..].trim().trim_start_matches("(ULONG)").trim_start_matches("(uint32_t)");
    value.parse().unwrap_or_else(|_| panic!("{name}: {value}"))
}

/// A pointer-sized context for thread closures.
pub fn addr_of<T>(v: &T) -> usize {
    v as *const T as usize
}

/// Casts a context back.
///
/// # Safety
/// `p` came from [`addr_of`] of a `T` still alive.
pub unsafe fn from_addr<'a, T>(p: usize) -> &'a T {
    // SAFETY: per the contract.
    unsafe { &*(p as *const T) }
}

/// A void pointer of `v`.
pub fn void_of<T>(v: &T) -> *mut c_void {
    v as *const T as *mut c_void
}
