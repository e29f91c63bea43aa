//! safewsk's Rust sample driver (WDM): the C sample's exchange
//! (`c-samples/common/sample_exchange.c`) through the safe API,
//! [`safewsk::net`].
//!
//! DriverEntry reads the IPv4 address and port configured under
//!
//! ```text
//! HKLM\System\CurrentControlSet\Services\SafeWskRustSample\Parameters
//!     TargetAddress  REG_DWORD  e.g. 0x7F000001 for 127.0.0.1
//!     TargetPort     REG_DWORD  e.g. 7
//! ```
//!
//! creates an unnamed device object and starts a system thread, then returns
//! at once. The thread starts a safewsk [`Client`], connects, sends
//! "PING safewsk\r\n", prints the reply with DbgPrint, disconnects
//! gracefully and closes the socket; then the same by name ("localhost" and
//! the port as a service name). DriverUnload waits for the thread, cleans
//! the client up and deletes the device object.
//!
//! The `unsafe` of the driver is at its boundary with the kernel:
//! DriverEntry and DriverUnload (the device object, the thread, the
//! registry, all in [`kernel`]), and [`Client::start`] (the device object
//! must outlive the client) with the handle kept between the thread and
//! DriverUnload. The exchange itself ([`exchange`], [`exchange_by_name`],
//! [`talk`]) is safe code: it cannot use a closed socket, leak one, or clean
//! up the client under an open one.
#![no_std]

// The host build (the harness) links std, which has the panic handler; on
// Windows safewsk's handler bugchecks.
#[cfg(not(windows))]
extern crate std;

pub mod kernel;
#[doc(hidden)]
pub mod log;

use core::fmt::Write;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use core::ptr;
use core::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use core::time::Duration;

use kernel::*;
use safewsk::net::{status_of, Client, DeviceObject, Error, NonPagedBuf, Passive, Result, TcpSocket, Timeout};
use safewsk::nt::{DEVICE_OBJECT, STATUS_SUCCESS};
use safewsk::SAFEWSK_CLIENT;

/// The service whose Parameters key holds TargetAddress and TargetPort.
pub const SERVICE: &str = "SafeWskRustSample";
static PARAMETERS_PATH: [u16; 29] = wide("SafeWskRustSample\\Parameters");
static TARGET_ADDRESS: [u16; 14] = wide("TargetAddress");
static TARGET_PORT: [u16; 11] = wide("TargetPort");

/// Boot-start drivers wait for NETIO.
const PROVIDER_WAIT: Duration = Duration::from_secs(10);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(5);
const REQUEST: &[u8] = b"PING safewsk\r\n";

static DEVICE: AtomicPtr<DEVICE_OBJECT> = AtomicPtr::new(ptr::null_mut());
static THREAD: AtomicPtr<core::ffi::c_void> = AtomicPtr::new(ptr::null_mut());
/// The client, from the worker thread (which started it) to DriverUnload
/// (which cleans it up after the thread has ended).
static CLIENT: AtomicPtr<SAFEWSK_CLIENT> = AtomicPtr::new(ptr::null_mut());
static ADDRESS: AtomicU32 = AtomicU32::new(0);
static PORT: AtomicU32 = AtomicU32::new(0);

/// On a connected socket: sends the request from non-paged pool, prints the
/// reply, disconnects gracefully and closes the socket (always: it is
/// consumed; an early `?` drops it, which closes it too).
pub fn talk(p: Passive, socket: TcpSocket<'_>) -> Result {
    // Any buffer works (a `[u8]` is probed and locked); a NonPagedBuf is
    // non-paged pool by its type, so the library skips the probe and lock.
    let mut buffer = NonPagedBuf::new(p, 256)?;
    let mut request = buffer.sub(..REQUEST.len()).ok_or(Error::BUFFER_TOO_SMALL)?;
    request.copy_from_slice(REQUEST);
    let sent = socket.send(p, &request, IO_TIMEOUT).inspect_err(|e| log!("send failed: {e:?}"))?;
    let mut reply = buffer.sub(..255).ok_or(Error::BUFFER_TOO_SMALL)?;
    let received = socket.receive(p, &mut reply, IO_TIMEOUT).inspect_err(|e| log!("receive failed: {e:?}"))?;
    let text = reply.get(..received).and_then(|b| core::str::from_utf8(b).ok()).unwrap_or("(not UTF-8)");
    log!("sent {sent} bytes, received {received} bytes: {text}");
    let status = if received == 0 {
        Err(Error::UNSUCCESSFUL) // the server closed without answering
    } else {
        // Graceful shutdown of our side; the close below frees the socket.
        socket.disconnect(p, IO_TIMEOUT)
    };
    if let Err(e) = socket.close(p) {
        log!("close failed: {e:?}");
    }
    status
}

/// Connects to `target`, prints the local address, and talks.
pub fn exchange(p: Passive, client: &Client, target: SocketAddrV4) -> Result {
    let socket = client
        .connect(p, SocketAddr::V4(target), CONNECT_TIMEOUT)
        .inspect_err(|e| log!("connect to {target} failed: {e:?}"))?;
    log!("connected to {target}");
    // Informational: a provider without WskGetLocalAddress (Wine 8) says so.
    match socket.local_addr(p, IO_TIMEOUT) {
        Ok(local) => log!("local address {local}"),
        Err(e) => log!("local address unavailable: 0x{:08X}", e.to_status() as u32),
    }
    talk(p, socket)
}

/// The same exchange with "localhost" and the port as a service name,
/// resolved by the provider (WskGetAddressInfo).
pub fn exchange_by_name(p: Passive, client: &Client, port: u16) -> Result {
    let mut digits = Digits::default();
    let _ = write!(digits, "{port}");
    let (socket, reached) = client
        .connect_by_name(p, "localhost", digits.as_str(), CONNECT_TIMEOUT)
        .inspect_err(|e| log!("connect by name to localhost:{port} failed: {e:?}"))?;
    log!("localhost reached at {reached}");
    talk(p, socket)
}

/// A port number as decimal text, without allocation.
#[derive(Default)]
struct Digits {
    buf: [u8; 5],
    len: usize,
}

impl Digits {
    fn as_str(&self) -> &str {
        self.buf.get(..self.len).and_then(|b| core::str::from_utf8(b).ok()).unwrap_or("")
    }
}

impl Write for Digits {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        let dst = self.buf.get_mut(self.len..self.len + s.len()).ok_or(core::fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len += s.len();
        Ok(())
    }
}

/// The worker thread: PASSIVE_LEVEL, free to wait. Safe code but for the
/// client's start (the device object's lifetime is the driver's to keep).
extern "system" fn worker(_context: *mut core::ffi::c_void) {
    let Some(p) = Passive::get() else {
        log!("worker not at PASSIVE_LEVEL");
        return;
    };
    let device = DeviceObject::from(DEVICE.load(Ordering::Acquire));
    // SAFETY: DEVICE is this driver's device object; DriverUnload deletes it
    // only after the client's cleanup has returned.
    let client = match unsafe { Client::start(p, device, Timeout::from(PROVIDER_WAIT)) } {
        Ok(client) => client,
        Err(e) => {
            log!("Client::start failed: 0x{:08X}", e.to_status() as u32);
            return;
        }
    };
    let target = SocketAddrV4::new(Ipv4Addr::from(ADDRESS.load(Ordering::Relaxed)), port());
    let status = status_of(exchange(p, &client, target));
    log!("exchange finished: 0x{:08X}", status as u32);
    let status = status_of(exchange_by_name(p, &client, port()));
    log!("exchange by name finished: 0x{:08X}", status as u32);
    // Kept for DriverUnload, which cleans it up after this thread has ended.
    CLIENT.store(client.into_raw(), Ordering::Release);
}

fn port() -> u16 {
    u16::try_from(PORT.load(Ordering::Relaxed)).unwrap_or(0)
}

/// Reads TargetAddress and TargetPort (REG_DWORD, both required).
///
/// # Safety
/// PASSIVE_LEVEL.
unsafe fn read_parameters() -> NTSTATUS {
    let (mut address, mut port) = (0u32, 0u32);
    let entry = |name: &'static [u16], target: *mut u32| RTL_QUERY_REGISTRY_TABLE {
        QueryRoutine: ptr::null_mut(),
        Flags: RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK | RTL_QUERY_REGISTRY_REQUIRED,
        Name: name.as_ptr(),
        EntryContext: target.cast(),
        DefaultType: (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE,
        DefaultData: ptr::null_mut(),
        DefaultLength: 0,
    };
    let terminator = RTL_QUERY_REGISTRY_TABLE {
        QueryRoutine: ptr::null_mut(),
        Flags: 0,
        Name: ptr::null(),
        EntryContext: ptr::null_mut(),
        DefaultType: 0,
        DefaultData: ptr::null_mut(),
        DefaultLength: 0,
    };
    let mut table = [entry(&TARGET_ADDRESS, &mut address), entry(&TARGET_PORT, &mut port), terminator];
    // SAFETY: a terminated table whose direct entries point to ULONGs on
    // this stack; NUL-terminated names and path; PASSIVE_LEVEL per the
    // caller.
    let status = unsafe {
        RtlQueryRegistryValues(
            RTL_REGISTRY_SERVICES,
            PARAMETERS_PATH.as_ptr(),
            table.as_mut_ptr(),
            ptr::null_mut(),
            ptr::null_mut(),
        )
    };
    if status >= 0 {
        if port == 0 || port > 0xFFFF {
            return safewsk::nt::STATUS_INVALID_PARAMETER;
        }
        ADDRESS.store(address, Ordering::Relaxed);
        PORT.store(port, Ordering::Relaxed);
    }
    status
}

/// DriverEntry (exported under that name on Windows; the harness calls it
/// by its Rust path on the host kernel, beside the C sample's DriverEntry).
///
/// # Safety
/// Called by the I/O manager: `driver` is this driver's DRIVER_OBJECT,
/// PASSIVE_LEVEL.
#[cfg_attr(windows, export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: *mut DRIVER_OBJECT,
    _registry_path: *mut UNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: PASSIVE_LEVEL (DriverEntry).
    let status = unsafe { read_parameters() };
    if status < 0 {
        log!("TargetAddress/TargetPort missing: 0x{:08X}", status as u32);
        return status;
    }
    let mut device: PDEVICE_OBJECT = ptr::null_mut();
    // SAFETY: this driver's object; an unnamed device, written to `device`.
    let status = unsafe {
        IoCreateDevice(driver, 0, ptr::null_mut(), FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN, 0, &mut device)
    };
    if status < 0 {
        return status;
    }
    DEVICE.store(device, Ordering::Release);
    let mut thread: HANDLE = ptr::null_mut();
    // SAFETY: a system thread running `worker` (which only reads the
    // statics above); PASSIVE_LEVEL.
    let status = unsafe {
        PsCreateSystemThread(
            &mut thread,
            THREAD_ALL_ACCESS,
            ptr::null_mut(),
            ptr::null_mut(),
            ptr::null_mut(),
            Some(worker),
            ptr::null_mut(),
        )
    };
    if status < 0 {
        // SAFETY: created above, used by nothing.
        unsafe { IoDeleteDevice(device) };
        return status;
    }
    let mut object: *mut core::ffi::c_void = ptr::null_mut();
    // SAFETY: a kernel handle to the thread just created, with full access.
    let status = unsafe {
        ObReferenceObjectByHandle(thread, THREAD_ALL_ACCESS, ptr::null_mut(), KERNEL_MODE, &mut object, ptr::null_mut())
    };
    // SAFETY: the handle from PsCreateSystemThread, closed once.
    let _ = unsafe { ZwClose(thread) };
    if status < 0 {
        return status;
    }
    THREAD.store(object, Ordering::Release);
    // SAFETY: this driver's object; the routine below has the type.
    unsafe { (*driver).DriverUnload = Some(driver_unload) };
    STATUS_SUCCESS
}

/// DriverUnload: waits for the worker, cleans the client up, deletes the
/// device object (after the cleanup: the client holds it until then).
unsafe extern "system" fn driver_unload(_driver: *mut DRIVER_OBJECT) {
    let thread = THREAD.swap(ptr::null_mut(), Ordering::AcqRel);
    if !thread.is_null() {
        // SAFETY: the referenced thread object; PASSIVE_LEVEL (DriverUnload).
        let _ = unsafe { KeWaitForSingleObject(thread, EXECUTIVE, KERNEL_MODE, 0, ptr::null_mut()) };
        // SAFETY: the reference DriverEntry took.
        let _ = unsafe { ObfDereferenceObject(thread) };
    }
    let status = match Passive::get() {
        // SAFETY: the handle the worker gave up; it has ended, so no socket
        // of the client is in use (the worker closed both of its sockets).
        Some(p) => match unsafe { Client::from_raw(CLIENT.swap(ptr::null_mut(), Ordering::AcqRel)) } {
            Some(client) => status_of(client.cleanup(p)),
            None => STATUS_SUCCESS,
        },
        None => Error::INVALID_LEVEL.to_status(),
    };
    log!("unloaded, Client::cleanup: 0x{:08X}", status as u32);
    let device = DEVICE.swap(ptr::null_mut(), Ordering::AcqRel);
    if !device.is_null() {
        // SAFETY: created by DriverEntry; the client that used it is gone.
        unsafe { IoDeleteDevice(device) };
    }
}
