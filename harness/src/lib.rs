//! Loads the C sample driver, or the Rust one (samples/rust_driver), on the
//! host kernel the way the I/O manager would: its parameters in the service
//! key, a DRIVER_OBJECT, DriverEntry at PASSIVE_LEVEL, and DriverUnload if
//! DriverEntry succeeded and set it.

// missing_docs (a workspace lint, meant for safewsk's public API): the
// DRIVER_OBJECT fields mirror wdm.h; a test component, not a public API.
#![allow(missing_docs)]

// The sample calls the SafeWsk* exports: link the library even though no
// Rust code here names it.
extern crate safewsk;

use std::ffi::c_void;
use std::io::Read;
use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// DRIVER_OBJECT, x64 layout (wdm.h; sizeof 0x150, DriverUnload at 0x68).
#[repr(C)]
pub struct DriverObject {
    pub ty: i16,
    pub size: i16,
    pub device_object: *mut c_void,
    pub flags: u32,
    pub driver_start: *mut c_void,
    pub driver_size: u32,
    pub driver_section: *mut c_void,
    pub driver_extension: *mut c_void,
    pub driver_name: UnicodeString,
    pub hardware_database: *mut c_void,
    pub fast_io_dispatch: *mut c_void,
    pub driver_init: *mut c_void,
    pub driver_start_io: *mut c_void,
    pub driver_unload: Option<unsafe extern "system" fn(*mut DriverObject)>,
    pub major_function: [*mut c_void; 28],
}

#[repr(C)]
pub struct UnicodeString {
    pub length: u16,
    pub maximum_length: u16,
    pub buffer: *mut u16,
}

const _: () = assert!(std::mem::offset_of!(DriverObject, driver_unload) == 0x68);
const _: () = assert!(std::mem::size_of::<DriverObject>() == 0x150);

extern "system" {
    fn DriverEntry(driver: *mut DriverObject, registry_path: *mut UnicodeString) -> i32;
}

/// The service name the sample reads its parameters under.
pub const SERVICE: &str = "SafeWskSample";

/// What a load/unload cycle did.
#[derive(Debug)]
pub struct Report {
    pub driver_entry: i32,
    pub unloaded: bool,
    pub dbgprint: Vec<String>,
}

/// The service name the Rust sample (samples/rust_driver) reads its
/// parameters under.
pub const RUST_SERVICE: &str = safewsk_rust_sample::SERVICE;

/// Writes the sample's parameters (TargetAddress, TargetPort) for `target`.
pub fn configure(target: SocketAddrV4) {
    configure_service(SERVICE, target);
}

/// Writes `service`'s parameters (TargetAddress, TargetPort) for `target`
/// (the registry holds one service's parameters at a time).
pub fn configure_service(service: &str, target: SocketAddrV4) {
    let key = format!("{}\\Parameters", hostkernel::services_key(service));
    hostkernel::registry_clear();
    hostkernel::registry_set_dword(&key, "TargetAddress", u32::from(*target.ip()));
    hostkernel::registry_set_dword(&key, "TargetPort", u32::from(target.port()));
}

/// A driver's entry point, as the I/O manager calls it.
pub type DriverEntryFn = unsafe extern "system" fn(*mut DriverObject, *mut UnicodeString) -> i32;

/// The C sample's DriverEntry.
fn c_driver_entry() -> DriverEntryFn {
    DriverEntry
}

/// The Rust sample's DriverEntry (exported under that name only on
/// Windows: here it sits beside the C sample's).
fn rust_driver_entry() -> DriverEntryFn {
    /// Passes the loader's objects on as the Rust sample declares them.
    unsafe extern "system" fn entry(driver: *mut DriverObject, registry_path: *mut UnicodeString) -> i32 {
        // SAFETY: the loader's DRIVER_OBJECT (x64, DriverUnload at 0x68, as
        // asserted here and in the sample) and UNICODE_STRING (the same
        // three fields as safewsk's), per this routine's caller.
        unsafe { safewsk_rust_sample::driver_entry(driver.cast(), registry_path.cast()) }
    }
    entry
}

/// Adds the sample's optional parameters (after [`configure`]): its echo
/// server listens on `server_port` (by name, "localhost"), its UDP exchange
/// sends to the target address at `udp_port`.
pub fn configure_servers(server_port: u16, udp_port: u16) {
    let key = format!("{}\\Parameters", hostkernel::services_key(SERVICE));
    hostkernel::registry_set_dword(&key, "ServerPort", u32::from(server_port));
    hostkernel::registry_set_dword(&key, "UdpPort", u32::from(udp_port));
}

/// A free loopback TCP port (bound and closed).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    l.local_addr().expect("local addr").port()
}

/// The client of the sample's echo server: connects to 127.0.0.1:`port`
/// once the server listens (retrying while refused, for up to
/// [`SERVER_WAIT`]), sends `message`, shuts its side down, and returns what
/// came back before the server's FIN (empty if it never connected).
pub fn echo_client(port: u16, message: &'static [u8]) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let deadline = Instant::now() + SERVER_WAIT;
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Err(_) => return Vec::new(),
            }
        };
        let _ = stream.set_read_timeout(Some(SERVER_WAIT));
        let _ = (&stream).write_all(message);
        let _ = stream.shutdown(Shutdown::Write);
        let mut back = Vec::new();
        let _ = (&stream).read_to_end(&mut back);
        back
    })
}

/// A datagram the UDP server received, and its sender.
pub type Datagram = (Vec<u8>, SocketAddr);

/// A UDP server for the sample's datagram exchange: answers the first
/// datagram with "PONG <datagram>" and returns what it received and from
/// where (None if nothing came within [`SERVER_WAIT`]).
pub fn udp_pong_server() -> (SocketAddrV4, thread::JoinHandle<Option<Datagram>>) {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let SocketAddr::V4(addr) = socket.local_addr().expect("local addr") else { unreachable!("bound to IPv4") };
    let handle = thread::spawn(move || {
        socket.set_read_timeout(Some(SERVER_WAIT)).ok()?;
        let mut buf = [0u8; 512];
        let (n, from) = socket.recv_from(&mut buf).ok()?;
        let data = buf[..n].to_vec();
        let mut reply = b"PONG ".to_vec();
        reply.extend_from_slice(data.strip_prefix(b"DGRAM ").unwrap_or(&data));
        socket.send_to(&reply, from).ok()?;
        Some((data, from))
    });
    (addr, handle)
}

/// Loads the C sample (DriverEntry), then unloads it (DriverUnload) if it loaded.
pub fn load_and_unload() -> Report {
    load_and_unload_driver(SERVICE, c_driver_entry())
}

/// Loads the Rust sample, then unloads it if it loaded.
pub fn load_and_unload_rust() -> Report {
    load_and_unload_driver(RUST_SERVICE, rust_driver_entry())
}

/// Loads the driver whose entry point is `entry` as service `service`, then
/// unloads it (DriverUnload) if it loaded.
pub fn load_and_unload_driver(service: &str, entry: DriverEntryFn) -> Report {
    let mut name: Vec<u16> = format!("{}\\{service}", hostkernel::services_key("")).encode_utf16().collect();
    let mut registry_path = UnicodeString {
        length: (name.len() * 2) as u16,
        maximum_length: (name.len() * 2) as u16,
        buffer: name.as_mut_ptr(),
    };
    // SAFETY: DRIVER_OBJECT is plain data; all-zero is the I/O manager's start.
    let mut driver: Box<DriverObject> = Box::new(unsafe { std::mem::zeroed() });
    driver.ty = 4; // IO_TYPE_DRIVER
    driver.size = std::mem::size_of::<DriverObject>() as i16;
    let _ = hostkernel::take_dbgprint_log();
    // SAFETY: the driver's DriverEntry with a valid DRIVER_OBJECT and path,
    // at PASSIVE_LEVEL on this thread.
    let status = unsafe { entry(&mut *driver, &mut registry_path) };
    let mut unloaded = false;
    if status >= 0 {
        if let Some(unload) = driver.driver_unload {
            // SAFETY: the driver loaded and registered this unload routine.
            unsafe { unload(&mut *driver) };
            unloaded = true;
        }
    }
    // The image goes once the references on its objects are gone; any of
    // its code still running then (or called later) is a violation.
    hostkernel::unload_image();
    // The sample's own lines are DbgPrint (filtered out on a stock machine):
    // the demo shows every line.
    let dbgprint = hostkernel::take_all_dbgprint_log().into_iter().map(|(line, _)| line).collect();
    Report { driver_entry: status, unloaded, dbgprint }
}

/// How long the pong server waits for the sample's first connection, and
/// for each line on a connection: far beyond the sample's own deadlines
/// (5 s per call), so only a hang reaches it.
pub const SERVER_WAIT: Duration = Duration::from_secs(60);

/// A loopback server for the sample: reads one line, answers
/// "PONG <rest of the line>", and hands back what it read on the first
/// connection (an empty string if none came within [`SERVER_WAIT`]); later
/// ones (the exchange by name) are answered alike. Every wait of the server
/// is bounded: the accept of the first connection and every read.
pub fn pong_server() -> (SocketAddrV4, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let SocketAddr::V4(addr) = listener.local_addr().expect("local addr") else { unreachable!("bound to IPv4") };
    let handle = thread::spawn(move || {
        let Some(stream) = accept_within(&listener, SERVER_WAIT) else { return String::new() };
        let line = pong(stream);
        // Later connections (the sample's exchange by name) get the same
        // answer, on a detached thread that ends with the process (it waits
        // in accept, blocking again; each connection's reads are bounded).
        if listener.set_nonblocking(false).is_ok() {
            thread::spawn(move || {
                for stream in listener.incoming().flatten() {
                    pong(stream);
                }
            });
        }
        line
    });
    (addr, handle)
}

/// The first connection to `listener` within `limit`, or None.
fn accept_within(listener: &TcpListener, limit: Duration) -> Option<TcpStream> {
    listener.set_nonblocking(true).ok()?;
    let deadline = Instant::now() + limit;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).ok()?;
                return Some(stream);
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock && Instant::now() < deadline => {
                thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    }
}

/// Answers one "PING x" line with "PONG x", waits for the client's FIN, and
/// returns the line. Each read gives up after [`SERVER_WAIT`].
fn pong(stream: TcpStream) -> String {
    let _ = stream.set_read_timeout(Some(SERVER_WAIT));
    let _ = stream.set_write_timeout(Some(SERVER_WAIT));
    let Ok(clone) = stream.try_clone() else { return String::new() };
    let mut reader = BufReader::new(clone);
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let reply = format!("PONG {}", line.trim_start_matches("PING "));
    let _ = (&stream).write_all(reply.as_bytes());
    // Wait for the client's FIN before closing.
    let mut rest = String::new();
    let _ = reader.read_line(&mut rest);
    line
}

/// `handle`'s result if its thread finishes within `limit`; None if it does
/// not (the thread is left running) or panicked.
pub fn join_within<T>(handle: thread::JoinHandle<T>, limit: Duration) -> Option<T> {
    let deadline = Instant::now() + limit;
    while !handle.is_finished() {
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(5));
    }
    handle.join().ok()
}

/// Ends the whole process with a failure if it is still armed after its
/// limit: a test whose driver hangs (a wait inside the C sample that never
/// ends, say) fails instead of hanging `cargo test`. A panic in the hung
/// test's thread would not do: that thread keeps the host kernel's session,
/// and the next test would wait for it forever. Disarmed when dropped.
pub struct Watchdog {
    disarm: Option<mpsc::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Watchdog {
    /// Arms a watchdog for `what` that fires after `limit`.
    pub fn arm(what: &str, limit: Duration) -> Watchdog {
        let (disarm, armed) = mpsc::channel::<()>();
        let what = what.to_string();
        let thread = thread::spawn(move || {
            if armed.recv_timeout(limit) != Err(mpsc::RecvTimeoutError::Timeout) {
                return; // disarmed in time
            }
            eprintln!("watchdog: {what} did not finish within {} s; failing the test process", limit.as_secs());
            // The sample's DbgPrint output so far, if the log can be taken
            // within a second (a hung thread might hold its lock).
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                let _ = tx.send(hostkernel::take_dbgprint_log());
            });
            if let Ok(log) = rx.recv_timeout(Duration::from_secs(1)) {
                eprintln!("watchdog: the driver's DbgPrint output:\n{}", log.join(""));
            }
            std::process::exit(1);
        });
        Watchdog { disarm: Some(disarm), thread: Some(thread) }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        drop(self.disarm.take()); // the watchdog thread sees the disconnect
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
