//! Loads the C sample driver on the host kernel the way the I/O manager
//! would: its parameters in the service key, a DRIVER_OBJECT, DriverEntry at
//! PASSIVE_LEVEL, and DriverUnload if DriverEntry succeeded and set it.

// missing_docs (a workspace lint, meant for safewsk's public API): the
// DRIVER_OBJECT fields mirror wdm.h; a test component, not a public API.
#![allow(missing_docs)]

// The sample calls the SafeWsk* exports: link the library even though no
// Rust code here names it.
extern crate safewsk;

use std::ffi::c_void;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener};
use std::thread;

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

/// Writes the sample's parameters (TargetAddress, TargetPort) for `target`.
pub fn configure(target: SocketAddrV4) {
    let key = format!("{}\\Parameters", hostkernel::services_key(SERVICE));
    hostkernel::registry_clear();
    hostkernel::registry_set_dword(&key, "TargetAddress", u32::from(*target.ip()));
    hostkernel::registry_set_dword(&key, "TargetPort", u32::from(target.port()));
}

/// Loads the sample (DriverEntry), then unloads it (DriverUnload) if it loaded.
pub fn load_and_unload() -> Report {
    let mut name: Vec<u16> = format!("{}\\{SERVICE}", hostkernel::services_key("")).encode_utf16().collect();
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
    // SAFETY: the sample's DriverEntry with a valid DRIVER_OBJECT and path,
    // at PASSIVE_LEVEL on this thread.
    let status = unsafe { DriverEntry(&mut *driver, &mut registry_path) };
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

/// A loopback server for the sample: reads one line, answers
/// "PONG <rest of the line>", and hands back what it read on the first
/// connection; later ones (the exchange by name) are answered alike.
pub fn pong_server() -> (SocketAddrV4, thread::JoinHandle<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let SocketAddr::V4(addr) = listener.local_addr().expect("local addr") else { unreachable!("bound to IPv4") };
    let handle = thread::spawn(move || {
        let Ok((stream, _)) = listener.accept() else { return String::new() };
        let line = pong(stream);
        // Later connections (the sample's exchange by name) get the same
        // answer, on a detached thread that ends with the process.
        thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                pong(stream);
            }
        });
        line
    });
    (addr, handle)
}

/// Answers one "PING x" line with "PONG x", waits for the client's FIN, and
/// returns the line.
fn pong(stream: std::net::TcpStream) -> String {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    let _ = reader.read_line(&mut line);
    let reply = format!("PONG {}", line.trim_start_matches("PING "));
    let _ = (&stream).write_all(reply.as_bytes());
    // Wait for the client's FIN before closing.
    let mut rest = String::new();
    let _ = reader.read_line(&mut rest);
    line
}
