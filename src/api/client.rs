//! The client-level exports: startup, cleanup, cached security descriptors.

use core::ptr;

use crate::client::{self, security_descriptor, SAFEWSK_CLIENT};
use crate::handles;
use crate::kernel::nt::*;
pub use crate::kernel::report::*;
use crate::kernel::status::from_result;

/// Registers the driver as a WSK client and captures the WSK provider.
///
/// `DeviceObject` is one of the calling driver's device objects (a WDM
/// driver without one creates an unnamed one with IoCreateDevice; a KMDF
/// driver passes WdfDeviceWdmGetDeviceObject or a control device's). Every
/// IRP safewsk issues gets its completion routine through
/// IoSetCompletionRoutineEx with this device object, which keeps the driver
/// image loaded until each completion routine has returned: without it, the
/// last instructions of a completion routine could run after DriverUnload
/// has let the image go. It must stay valid until SafeWskCleanup has
/// returned STATUS_SUCCESS (delete it after that, not before).
///
/// `ProviderWaitMs` is how long to wait for the WSK provider to become
/// available, as WskCaptureProviderNPI's WaitTimeout: `WSK_NO_WAIT` (0) fails
/// at once if it is not ready, `WSK_INFINITE_WAIT` waits as long as it takes,
/// any other value is milliseconds. A driver that starts early in boot
/// calls this from a worker thread (PsCreateSystemThread or a work item), not
/// from DriverEntry, which should not wait ("Registering a Winsock Kernel
/// Application").
///
/// On success `*Client` receives a client handle that the caller owns until it
/// passes it to SafeWskCleanup. The handle is opaque (not a pointer to
/// memory: never dereference it); a stale or forged one is refused by every
/// export. On failure `*Client` is set to NULL and nothing is left
/// registered or allocated. A driver may have up to SAFEWSK_MAX_CLIENTS (64)
/// clients at once.
///
/// IRQL: PASSIVE_LEVEL.
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `DeviceObject` is NULL or not a
///   DEVICE_OBJECT (its Type is not IO_TYPE_DEVICE);
/// - STATUS_INVALID_PARAMETER_3: `Client` is NULL;
/// - STATUS_INVALID_LEVEL: called above PASSIVE_LEVEL;
/// - STATUS_INSUFFICIENT_RESOURCES: the client block (one non-paged pool
///   allocation, tag 'kwSS') could not be allocated, or
///   SAFEWSK_MAX_CLIENTS clients exist;
/// - STATUS_DEVICE_NOT_READY: the provider did not become available within
///   `ProviderWaitMs`;
/// - STATUS_NOINTERFACE: the WSK subsystem does not support WSK version 1.0;
/// - any other status WskRegister or WskCaptureProviderNPI returned.
///
/// # Safety
/// `DeviceObject` is NULL or a live DEVICE_OBJECT of the calling driver;
/// `Client` is NULL or points to writable storage for one pointer.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 288, x64-Debug 1392, ARM64-Release 192, ARM64-Debug 1200 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskStartup(
    DeviceObject: PDEVICE_OBJECT,
    ProviderWaitMs: ULONG,
    Client: *mut *mut SAFEWSK_CLIENT,
) -> NTSTATUS {
    if !Client.is_null() {
        // SAFETY: non-null and, per the API contract, writable.
        unsafe { *Client = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe { client::startup(DeviceObject, ProviderWaitMs, Client) })
}

/// Releases the WSK provider, deregisters and frees `Client`. It never
/// refuses because sockets are open: a DriverUnload that calls it always gets
/// a driver it may unload.
///
/// In order:
/// 1. New connects are refused at once (STATUS_DELETE_PENDING); calls on
///    sockets keep working until step 3 closes their socket.
/// 2. It waits until every call inside the client has returned (connects,
///    security-descriptor calls) and every asynchronous connect has called
///    back; their deadlines bound that wait, which is reported every few
///    seconds while it lasts.
/// 3. It closes every socket of this client that is still open
///    (WskCloseSocket: an abortive disconnect on a connection not yet
///    disconnected), each reported, and every socket the library owns (one
///    whose close could not be issued, a half-made socket of
///    SafeWskSocketConnectWithOptions whose close the provider refused),
///    retrying those until the close is issued.
/// 4. It waits until every call on those sockets has returned and every IRP
///    has completed (a receive pending with SAFEWSK_NO_TIMEOUT is completed
///    by the close), however long the provider and the driver's callbacks
///    take, reported periodically; it never returns early, since returning
///    would let the image unload under a thread still inside it.
/// 5. It waits for queued DPCs (KeFlushQueuedDpcs) so that no safewsk timer
///    routine is still running, releases every cached security descriptor
///    the driver did not release (reported), releases the provider and
///    deregisters. The last client's cleanup also frees the driver's socket
///    table (its chunks and cached IRPs).
///
/// After STATUS_SUCCESS the handle is invalid (refused by every export,
/// also once a new client has the same slot), and no safewsk code runs any
/// more on behalf of this client: the driver may delete the device object
/// and unload.
///
/// Preconditions: never call it from a safewsk callback (an asynchronous
/// connect's, or a WSK event callback of one of the client's sockets): it
/// waits for those to return and would wait for itself. Release every data
/// indication a WskReceiveEvent callback retained first (closing a socket
/// does not release them: PFN_WSK_RELEASE_DATA_INDICATION_LIST;
/// SafeWskRelease). Calls with this client's handles after it returns are
/// refused (STATUS_INVALID_PARAMETER_1), but the last client's cleanup frees
/// the driver's socket table in its final step: a call made with a stale
/// socket handle *while* that step runs is outside the contract (it could
/// read the table as it is freed); a driver that is unloading makes none.
///
/// One cleanup at a time: a second call made while the first is still
/// running returns STATUS_DELETE_PENDING at once and changes nothing.
///
/// IRQL: PASSIVE_LEVEL.
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `Client` is not a live client's handle
///   (NULL, forged, already cleaned up);
/// - STATUS_INVALID_LEVEL: called above PASSIVE_LEVEL;
/// - STATUS_DELETE_PENDING: another cleanup of this client is in progress.
///
/// # Safety
/// None beyond the preconditions above: any `Client` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 672, x64-Debug 928, ARM64-Release 480, ARM64-Debug 608 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCleanup(Client: *mut SAFEWSK_CLIENT) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { client::cleanup(Client) })
}

/// Obtains a cached copy of a security descriptor from the WSK provider
/// (WskControlClient, WSK_CACHE_SD), for the `SecurityDescriptor` parameter
/// of SafeWskSocketConnect and SafeWskSocketConnectAsync: WSK accepts only
/// such cached copies there ("PFN_WSK_SOCKET_CONNECT"), and safewsk checks
/// that the pointer a connect is given is one this client cached and has not
/// released.
///
/// `SecurityDescriptor` is the caller's SECURITY_DESCRIPTOR (any
/// kernel-mode memory, paged or not; only read during the call; the caller
/// keeps owning it). On success `*CachedSecurityDescriptor` receives the
/// provider's cached copy, which the caller owns until it passes it to
/// SafeWskReleaseSecurityDescriptor; on failure it is set to NULL. The
/// provider may return the same cached pointer for equal descriptors: each
/// successful call is one reference, and needs one release.
///
/// A client holds at most 16 cached copies at once (a fixed table in the
/// client block: no allocation by safewsk; the provider allocates the
/// copy). SafeWskCleanup releases any copy still held, and reports each
/// (SAFEWSK_REPORT_FORGOTTEN_SD; a driver should release its own).
///
/// IRQL: PASSIVE_LEVEL (the descriptor may be pageable, and the provider
/// captures it).
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `Client` is not a live client's handle;
/// - STATUS_INVALID_PARAMETER_2: `SecurityDescriptor` is NULL or not 4-byte
///   aligned, or (read after the IRQL check, at PASSIVE_LEVEL) its Revision
///   is not SECURITY_DESCRIPTOR_REVISION (1);
/// - STATUS_INVALID_PARAMETER_3: `CachedSecurityDescriptor` is NULL;
/// - STATUS_INVALID_LEVEL: called above PASSIVE_LEVEL;
/// - STATUS_DELETE_PENDING: SafeWskCleanup has begun on `Client`;
/// - STATUS_QUOTA_EXCEEDED: the client already holds 16 cached copies;
/// - STATUS_NOT_SUPPORTED: the provider's dispatch table has no
///   WskControlClient;
/// - STATUS_UNSUCCESSFUL: the provider claimed success without returning a
///   copy;
/// - the provider's status otherwise (STATUS_NOT_IMPLEMENTED from Wine 8,
///   whose WskControlClient is a stub; STATUS_INSUFFICIENT_RESOURCES, ...).
///
/// # Safety
/// `SecurityDescriptor` is NULL or a
/// readable SECURITY_DESCRIPTOR; `CachedSecurityDescriptor` is NULL or
/// writable.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 240, x64-Debug 528, ARM64-Release 144, ARM64-Debug 336 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskCacheSecurityDescriptor(
    Client: *mut SAFEWSK_CLIENT,
    SecurityDescriptor: PSECURITY_DESCRIPTOR,
    CachedSecurityDescriptor: *mut PSECURITY_DESCRIPTOR,
) -> NTSTATUS {
    if !CachedSecurityDescriptor.is_null() {
        // SAFETY: non-null and writable per the API contract.
        unsafe { *CachedSecurityDescriptor = ptr::null_mut() };
    }
    // SAFETY: the API contract.
    from_result(unsafe { security_descriptor::cache_export(Client, SecurityDescriptor, CachedSecurityDescriptor) })
}

/// Releases a cached security descriptor obtained with
/// SafeWskCacheSecurityDescriptor (WskControlClient, WSK_RELEASE_SD).
///
/// WSK requires that a cached copy passed to WskSocketConnect is not
/// released "until after the IRP for the call to WskSocketConnect is
/// completed": safewsk enforces it. While a SafeWskSocketConnect using it
/// has not returned, or a SafeWskSocketConnectAsync using it has not reached
/// its callback (the IRP completes before the callback; releasing from the
/// callback is fine), the release is refused with STATUS_DEVICE_BUSY and
/// nothing changes: release it later. (If the same pointer was cached
/// twice, one of its references not used by a connect in flight can be
/// released.)
///
/// After STATUS_SUCCESS the pointer is no longer a cached copy of this
/// client: a connect given it fails with STATUS_INVALID_PARAMETER_11 and a
/// second release with STATUS_INVALID_PARAMETER_2. Works during
/// SafeWskCleanup's wait.
///
/// IRQL: PASSIVE_LEVEL.
///
/// Returns:
/// - STATUS_SUCCESS;
/// - STATUS_INVALID_PARAMETER_1: `Client` is not a live client's handle;
/// - STATUS_INVALID_PARAMETER_2: `CachedSecurityDescriptor` is NULL, or
///   (looked up after the IRQL check) not a copy this client cached and has
///   not released: never cached, already released, or another client's; the
///   provider is not called;
/// - STATUS_INVALID_LEVEL: called above PASSIVE_LEVEL;
/// - STATUS_DEVICE_BUSY (a warning-class status: NT_SUCCESS is FALSE): a
///   connect using it is still in flight; nothing was released;
/// - STATUS_NOT_SUPPORTED: the provider's dispatch table has no
///   WskControlClient;
/// - the provider's status if it refused the release (the copy then stays
///   cached and recorded).
///
/// # Safety
/// None beyond the IRQL: any `Client` value is safe.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 192, x64-Debug 544, ARM64-Release 144, ARM64-Debug 304 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskReleaseSecurityDescriptor(
    Client: *mut SAFEWSK_CLIENT,
    CachedSecurityDescriptor: PSECURITY_DESCRIPTOR,
) -> NTSTATUS {
    // SAFETY: the API contract.
    from_result(unsafe { security_descriptor::release_export(Client, CachedSecurityDescriptor) })
}

/// Routes safewsk's reports into the driver's own tracing (WPP,
/// TraceLogging): `Callback(Context, Report)` is called for every report
/// (see SAFEWSK_REPORT and the SAFEWSK_REPORT_* codes: a provider that
/// misbehaves, a wait that lasts, a socket SafeWskCleanup had to close), at
/// IRQL <= DISPATCH_LEVEL, on any thread, possibly inside a safewsk call. It
/// must not call safewsk, must not block, and must copy what it keeps of
/// `Report`. NULL `Callback` removes it.
///
/// Independently of the callback, every report is also sent to the kernel
/// debugger with DbgPrintEx(DPFLTR_IHVNETWORK_ID, DPFLTR_ERROR_LEVEL),
/// which a stock Windows shows (plain DbgPrint is filtered out since
/// Windows Vista: "Reading and Filtering Debugging Messages"); those lines
/// are rate-limited to 10 a second for each kind of report, the callback is not.
///
/// Set it before the first SafeWskStartup (or after the last
/// SafeWskCleanup): while a client exists it cannot change, so that a
/// report in progress never sees half a setting. It stays set until changed
/// (the driver must remove it, or keep `Context` valid, until its last
/// client is cleaned up).
///
/// IRQL: PASSIVE_LEVEL.
///
/// Returns STATUS_SUCCESS; STATUS_INVALID_PARAMETER_2 (a `Context` without
/// a `Callback`: it would never be delivered); STATUS_INVALID_LEVEL;
/// STATUS_INVALID_DEVICE_STATE (a client exists).
///
/// # Safety
/// `Callback` is NULL or a function of the documented type, callable at
/// IRQL <= DISPATCH_LEVEL; it and `Context` stay valid while set.
/// Stack (bytes used inside the library, docs/stack.md): x64-Release 64, x64-Debug 64, ARM64-Release 48, ARM64-Debug 48 (budget 1536).
/// cbindgen:prefix=_IRQL_requires_(PASSIVE_LEVEL)
#[no_mangle]
pub unsafe extern "C" fn SafeWskSetReportCallback(Callback: SAFEWSK_REPORT_CALLBACK, Context: PVOID) -> NTSTATUS {
    if Callback.is_none() && !Context.is_null() {
        return STATUS_INVALID_PARAMETER_2;
    }
    if let Err(status) = crate::kernel::status::require_irql(PASSIVE_LEVEL) {
        return status;
    }
    // SAFETY: PASSIVE_LEVEL checked.
    if unsafe { handles::without_clients(|| crate::kernel::report::set_callback(Callback, Context)) } {
        STATUS_SUCCESS
    } else {
        STATUS_INVALID_DEVICE_STATE
    }
}
