/*
 * Test-only adapter for running safewsk drivers under Wine 8 (.ci/wine).
 * Linked ONLY into the Wine test images, never into the shipped library.
 *
 * Wine 8's netio.sys implements WskSocket, WskBind, WskConnect, WskSend,
 * WskReceive and WskCloseSocket over Winsock, but WskSocketConnect and
 * WskDisconnect are stubs that return STATUS_NOT_IMPLEMENTED without
 * completing the IRP. This file supplies exactly those two, composed from
 * Wine's own functions, plus ExAllocatePool2 for the sample driver (which
 * imports it itself; Wine's ntoskrnl.exe does not export it):
 *
 *  - WskCaptureProviderNPI is wrapped at link time (ld --wrap): the real one
 *    runs, then the captured NPI's Dispatch is replaced by a copy of Wine's
 *    WSK_PROVIDER_DISPATCH whose WskSocketConnect is AdapterSocketConnect.
 *    The library itself is untouched: it calls through the table it got.
 *  - AdapterSocketConnect completes the caller's IRP from a system thread
 *    after Wine's WskSocket(WSK_FLAG_CONNECTION_SOCKET) -> WskBind ->
 *    WskConnect (closing the socket with Wine's WskCloseSocket on failure),
 *    exactly as Wine's netio completes IRPs (IoSetNextIrpStackLocation +
 *    IoCompleteRequest). It does not support cancellation: neither does
 *    Wine's netio (no cancel routines).
 *  - Each new socket's Dispatch is pointed at a copy of Wine's connection
 *    dispatch whose WskDisconnect is AdapterDisconnect: a graceful
 *    disconnect is shutdown(SD_SEND), issued as Wine's ws2_32 issues it
 *    (IOCTL_AFD_WINE_SHUTDOWN on the socket handle, which Wine's netio keeps
 *    right after the WSK_SOCKET in its private socket structure). Abortive
 *    disconnects and disconnect-with-data complete with STATUS_NOT_SUPPORTED.
 *    Its WskCloseSocket is Wine's, counted (AdapterCountedClose), so that
 *    the test driver can tell a close that reached the provider (an explicit
 *    one, or SafeWskCleanup closing a socket left open) from one the library
 *    refused (a stale or forged handle).
 *  - IoSetCompletionRoutineEx is a stub in Wine 8's ntoskrnl.exe (calling it
 *    aborts the driver host). The library calls it for every IRP, so the
 *    Wine images link this one instead (--wrap): what ReactOS and Windows
 *    do, a small context that holds a reference on the device object until
 *    the driver's routine has returned (IO_UNLOAD_SAFE_COMPLETION_CONTEXT in
 *    ReactOS ntoskrnl/io/iomgr/irp.c).
 *  - IoCreateDevice is wrapped too: Wine 8's leaves DEVICE_OBJECT.Type 0,
 *    where Windows sets IO_TYPE_DEVICE (3), which SafeWskStartup checks to
 *    reject a pointer that is not a device object. The wrapper sets it.
 *
 * Everything else (send, receive, close, registration, capture) is Wine's.
 */
#include <ntddk.h>
#include <wsk.h>
#include <ws2ipdef.h>

#include "wine_adapter.h"

#define ADAPTER_TAG 'dAwW'

/* Wine's private socket ioctl (include/wine/afd.h in Wine's source):
 * CTL_CODE(FILE_DEVICE_NETWORK, 204, METHOD_BUFFERED, FILE_ANY_ACCESS),
 * input: int how (SD_SEND = 1). */
#define ADAPTER_IOCTL_AFD_WINE_SHUTDOWN CTL_CODE(FILE_DEVICE_NETWORK, 204, METHOD_BUFFERED, FILE_ANY_ACCESS)
#define ADAPTER_SD_SEND 1

NTSTATUS WINAPI __real_IoCreateDevice(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize,
                                      PUNICODE_STRING DeviceName, DEVICE_TYPE DeviceType,
                                      ULONG DeviceCharacteristics, BOOLEAN Exclusive, PDEVICE_OBJECT *DeviceObject);
NTSTATUS WINAPI __wrap_IoCreateDevice(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize,
                                      PUNICODE_STRING DeviceName, DEVICE_TYPE DeviceType,
                                      ULONG DeviceCharacteristics, BOOLEAN Exclusive, PDEVICE_OBJECT *DeviceObject);
NTSTATUS WINAPI __real_WskCaptureProviderNPI(PWSK_REGISTRATION Registration, ULONG WaitTimeout,
                                             PWSK_PROVIDER_NPI ProviderNpi);
NTSTATUS WINAPI __wrap_WskCaptureProviderNPI(PWSK_REGISTRATION Registration, ULONG WaitTimeout,
                                             PWSK_PROVIDER_NPI ProviderNpi);

static const WSK_PROVIDER_DISPATCH *g_WineDispatch;
static WSK_PROVIDER_DISPATCH g_AdapterDispatch;
static const WSK_PROVIDER_CONNECTION_DISPATCH *g_WineConnectionDispatch;
static WSK_PROVIDER_CONNECTION_DISPATCH g_AdapterConnectionDispatch;
static volatile LONG g_SocketConnects, g_Disconnects, g_Closes;
static volatile LONG g_ProviderOnce, g_ConnectionOnce;

/* One-time initialisation: TRUE for the one caller that must initialise;
 * the others wait (bounded by the initialiser's few instructions) until it
 * is done. Wine hands out the same static tables every time. */
static BOOLEAN
AdapterOnceBegin(volatile LONG *Once)
{
    LARGE_INTEGER pause;

    if (InterlockedCompareExchange(Once, 1, 0) == 0) {
        return TRUE;
    }
    pause.QuadPart = -10000; /* 1 ms */
    while (InterlockedCompareExchange(Once, 2, 2) != 2) {
        KeDelayExecutionThread(KernelMode, FALSE, &pause);
    }
    return FALSE;
}

static VOID
AdapterOnceEnd(volatile LONG *Once)
{
    InterlockedExchange(Once, 2);
}

/* ---- ExAllocatePool2 for the sample: ExAllocatePoolZero's two steps. ---- */

static PVOID WINAPI
AdapterExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag)
{
    PVOID p;

    if (Flags != POOL_FLAG_NON_PAGED) {
        return NULL; /* the only flags the sample passes */
    }
    p = ExAllocatePoolWithTag(NonPagedPoolNx, NumberOfBytes, Tag);
    if (p != NULL) {
        RtlZeroMemory(p, NumberOfBytes);
    }
    return p;
}

/* The sample's import slot (it calls through __imp_ExAllocatePool2). */
PVOID(WINAPI *__imp_ExAllocatePool2)(POOL_FLAGS, SIZE_T, ULONG) = AdapterExAllocatePool2;

/* ---- Synchronous calls into Wine's netio with a private IRP. ---- */

static NTSTATUS WINAPI
AdapterIrpDone(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    UNREFERENCED_PARAMETER(DeviceObject);
    UNREFERENCED_PARAMETER(Irp);
    KeSetEvent((PKEVENT)Context, IO_NO_INCREMENT, FALSE);
    return STATUS_MORE_PROCESSING_REQUIRED;
}

typedef struct {
    PIRP Irp;
    KEVENT Done;
} ADAPTER_CALL;

static BOOLEAN
AdapterCallBegin(ADAPTER_CALL *Call)
{
    Call->Irp = IoAllocateIrp(1, FALSE);
    if (Call->Irp == NULL) {
        return FALSE;
    }
    KeInitializeEvent(&Call->Done, NotificationEvent, FALSE);
    IoSetCompletionRoutine(Call->Irp, AdapterIrpDone, &Call->Done, TRUE, TRUE, TRUE);
    return TRUE;
}

/* Waits for Wine to complete the IRP (bounded: 30 s; Wine's loopback
 * operations complete in milliseconds, a refused port in about 1 ms).
 * Returns the IRP's status and frees it, unless the wait timed out: then the
 * IRP stays with Wine (leaked on purpose; the run fails anyway). */
static NTSTATUS
AdapterCallEnd(ADAPTER_CALL *Call, NTSTATUS Returned, ULONG_PTR *Information)
{
    LARGE_INTEGER timeout;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(Returned);
    timeout.QuadPart = -30LL * 10 * 1000 * 1000;
    if (KeWaitForSingleObject(&Call->Done, Executive, KernelMode, FALSE, &timeout) != STATUS_SUCCESS) {
        DbgPrint("wine-adapter: Wine did not complete an IRP within 30 s\n");
        return STATUS_IO_TIMEOUT;
    }
    status = Call->Irp->IoStatus.Status;
    if (Information != NULL) {
        *Information = Call->Irp->IoStatus.Information;
    }
    IoFreeIrp(Call->Irp);
    return status;
}

/* What Wine's netio does to complete a client's IRP (dispatch_irp). */
static VOID
AdapterComplete(PIRP Irp, NTSTATUS Status, ULONG_PTR Information)
{
    Irp->IoStatus.Status = Status;
    Irp->IoStatus.Information = Information;
    /* IoSetNextIrpStackLocation (a WDK inline Wine's wdm.h lacks). */
    Irp->CurrentLocation--;
    Irp->Tail.Overlay.CurrentStackLocation--;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
}

/* ---- WskDisconnect ---- */

static NTSTATUS WINAPI
AdapterDisconnect(PWSK_SOCKET Socket, PWSK_BUF Buffer, ULONG Flags, PIRP Irp)
{
    IO_STATUS_BLOCK iosb;
    HANDLE handle;
    int how = ADAPTER_SD_SEND;
    NTSTATUS status;

    if (Irp == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    InterlockedIncrement(&g_Disconnects);
    if (Flags != 0 || (Buffer != NULL && Buffer->Length != 0)) {
        status = STATUS_NOT_SUPPORTED;
    } else {
        /* Wine's struct wsk_socket_internal: { WSK_SOCKET wsk_socket; SOCKET s; ... }. */
        handle = *(HANDLE *)(Socket + 1);
        RtlZeroMemory(&iosb, sizeof(iosb));
        status = ZwDeviceIoControlFile(handle, NULL, NULL, NULL, &iosb, ADAPTER_IOCTL_AFD_WINE_SHUTDOWN, &how,
                                       sizeof(how), NULL, 0);
    }
    AdapterComplete(Irp, status, 0);
    return STATUS_PENDING;
}

/* ---- WskCloseSocket: Wine's, counted ---- */

static NTSTATUS WINAPI
AdapterCountedClose(PWSK_SOCKET Socket, PIRP Irp)
{
    InterlockedIncrement(&g_Closes);
    return g_WineConnectionDispatch->Basic.WskCloseSocket(Socket, Irp);
}

/* ---- WskSocketConnect ---- */

typedef struct {
    PWSK_CLIENT Client;
    USHORT SocketType;
    ULONG Protocol;
    SOCKADDR_IN6 Local; /* large enough for either family */
    SOCKADDR_IN6 Remote;
    PVOID SocketContext;
    const WSK_CLIENT_CONNECTION_DISPATCH *Dispatch;
    PEPROCESS OwningProcess;
    PETHREAD OwningThread;
    SECURITY_DESCRIPTOR *SecurityDescriptor; /* Wine's wsk.h types it so */
    PIRP Irp;
} ADAPTER_CONNECT;

static VOID
AdapterCopyAddress(SOCKADDR_IN6 *To, const SOCKADDR *From)
{
    RtlZeroMemory(To, sizeof(*To));
    RtlCopyMemory(To, From, From->sa_family == AF_INET6 ? sizeof(SOCKADDR_IN6) : sizeof(SOCKADDR_IN));
}

static VOID
AdapterCloseSocket(PWSK_SOCKET Socket)
{
    ADAPTER_CALL call;
    NTSTATUS status;

    if (!AdapterCallBegin(&call)) {
        DbgPrint("wine-adapter: no IRP to close a socket\n");
        return;
    }
    status = g_WineConnectionDispatch->Basic.WskCloseSocket(Socket, call.Irp);
    (void)AdapterCallEnd(&call, status, NULL);
}

static VOID WINAPI
AdapterConnectThread(PVOID Context)
{
    ADAPTER_CONNECT *c = (ADAPTER_CONNECT *)Context;
    ADAPTER_CALL call;
    ULONG_PTR information = 0;
    PWSK_SOCKET socket = NULL;
    NTSTATUS status;

    /* 1. WskSocket (Wine's). */
    if (!AdapterCallBegin(&call)) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto done;
    }
    status = g_WineDispatch->WskSocket(c->Client, c->Local.sin6_family, c->SocketType, c->Protocol,
                                       WSK_FLAG_CONNECTION_SOCKET, c->SocketContext, c->Dispatch, c->OwningProcess,
                                       c->OwningThread, c->SecurityDescriptor, call.Irp);
    status = AdapterCallEnd(&call, status, &information);
    if (!NT_SUCCESS(status)) {
        goto done;
    }
    socket = (PWSK_SOCKET)information;
    if (AdapterOnceBegin(&g_ConnectionOnce)) {
        g_WineConnectionDispatch = (const WSK_PROVIDER_CONNECTION_DISPATCH *)socket->Dispatch;
        g_AdapterConnectionDispatch = *g_WineConnectionDispatch;
        g_AdapterConnectionDispatch.WskDisconnect = AdapterDisconnect;
        g_AdapterConnectionDispatch.Basic.WskCloseSocket = AdapterCountedClose;
        AdapterOnceEnd(&g_ConnectionOnce);
    }
    socket->Dispatch = &g_AdapterConnectionDispatch;

    /* 2. WskBind (Wine's). */
    if (!AdapterCallBegin(&call)) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto fail;
    }
    status = g_WineConnectionDispatch->WskBind(socket, (PSOCKADDR)&c->Local, 0, call.Irp);
    status = AdapterCallEnd(&call, status, NULL);
    if (!NT_SUCCESS(status)) {
        DbgPrint("wine-adapter: Wine's WskBind: 0x%08X\n", (unsigned)status);
        goto fail;
    }

    /* 3. WskConnect (Wine's). */
    if (!AdapterCallBegin(&call)) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto fail;
    }
    status = g_WineConnectionDispatch->WskConnect(socket, (PSOCKADDR)&c->Remote, 0, call.Irp);
    status = AdapterCallEnd(&call, status, NULL);
    if (NT_SUCCESS(status)) {
        goto done;
    }
    DbgPrint("wine-adapter: Wine's WskConnect: 0x%08X\n", (unsigned)status);

fail:
    /* Closed here, on this thread: closing from inside the socket's own
     * WskConnect completion deadlocks in Wine. */
    AdapterCloseSocket(socket);
    socket = NULL;
done:
    AdapterComplete(c->Irp, status, NT_SUCCESS(status) ? (ULONG_PTR)socket : 0);
    ExFreePoolWithTag(c, ADAPTER_TAG);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static NTSTATUS WINAPI
AdapterSocketConnect(PWSK_CLIENT Client, USHORT SocketType, ULONG Protocol, PSOCKADDR LocalAddress,
                     PSOCKADDR RemoteAddress, ULONG Flags, PVOID SocketContext,
                     const WSK_CLIENT_CONNECTION_DISPATCH *Dispatch, PEPROCESS OwningProcess,
                     PETHREAD OwningThread, SECURITY_DESCRIPTOR *SecurityDescriptor, PIRP Irp)
{
    ADAPTER_CONNECT *c;
    HANDLE thread;
    NTSTATUS status;

    if (Irp == NULL) {
        return STATUS_INVALID_PARAMETER;
    }
    InterlockedIncrement(&g_SocketConnects);
    if (Flags != 0 || LocalAddress == NULL || RemoteAddress == NULL) {
        status = STATUS_INVALID_PARAMETER;
        goto fail;
    }
    c = (ADAPTER_CONNECT *)ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(*c), ADAPTER_TAG);
    if (c == NULL) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto fail;
    }
    RtlZeroMemory(c, sizeof(*c));
    c->Client = Client;
    c->SocketType = SocketType;
    c->Protocol = Protocol;
    AdapterCopyAddress(&c->Local, LocalAddress);
    AdapterCopyAddress(&c->Remote, RemoteAddress);
    c->SocketContext = SocketContext;
    c->Dispatch = Dispatch;
    c->OwningProcess = OwningProcess;
    c->OwningThread = OwningThread;
    c->SecurityDescriptor = SecurityDescriptor;
    c->Irp = Irp;
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, AdapterConnectThread, c);
    if (!NT_SUCCESS(status)) {
        ExFreePoolWithTag(c, ADAPTER_TAG);
        goto fail;
    }
    ZwClose(thread);
    return STATUS_PENDING;

fail:
    AdapterComplete(Irp, status, 0);
    return STATUS_PENDING;
}

/* ---- The capture wrapper. ---- */

NTSTATUS WINAPI
__wrap_WskCaptureProviderNPI(PWSK_REGISTRATION Registration, ULONG WaitTimeout, PWSK_PROVIDER_NPI ProviderNpi)
{
    NTSTATUS status = __real_WskCaptureProviderNPI(Registration, WaitTimeout, ProviderNpi);

    if (NT_SUCCESS(status)) {
        if (AdapterOnceBegin(&g_ProviderOnce)) {
            g_WineDispatch = ProviderNpi->Dispatch;
            g_AdapterDispatch = *g_WineDispatch;
            g_AdapterDispatch.WskSocketConnect = AdapterSocketConnect;
            AdapterOnceEnd(&g_ProviderOnce);
        }
        ProviderNpi->Dispatch = &g_AdapterDispatch;
    }
    return status;
}

NTSTATUS WINAPI
__wrap_IoCreateDevice(PDRIVER_OBJECT DriverObject, ULONG DeviceExtensionSize, PUNICODE_STRING DeviceName,
                      DEVICE_TYPE DeviceType, ULONG DeviceCharacteristics, BOOLEAN Exclusive,
                      PDEVICE_OBJECT *DeviceObject)
{
    NTSTATUS status = __real_IoCreateDevice(DriverObject, DeviceExtensionSize, DeviceName, DeviceType,
                                            DeviceCharacteristics, Exclusive, DeviceObject);

    if (NT_SUCCESS(status) && (*DeviceObject)->Type == 0) {
        (*DeviceObject)->Type = IO_TYPE_DEVICE;
    }
    return status;
}

/* Code compiled against MinGW's ddk headers (the WDM sample) calls
 * IoCreateDevice through its import slot (__declspec(dllimport)), which
 * --wrap=IoCreateDevice does not see: --wrap=__imp_IoCreateDevice points that
 * slot's references at this one, which holds the wrapper. */
typedef NTSTATUS(WINAPI *PADAPTER_IO_CREATE_DEVICE)(PDRIVER_OBJECT, ULONG, PUNICODE_STRING, DEVICE_TYPE, ULONG,
                                                    BOOLEAN, PDEVICE_OBJECT *);
PADAPTER_IO_CREATE_DEVICE __wrap___imp_IoCreateDevice = __wrap_IoCreateDevice;

typedef struct _ADAPTER_EX_CONTEXT {
    PDEVICE_OBJECT DeviceObject;
    PIO_COMPLETION_ROUTINE Routine;
    PVOID Context;
} ADAPTER_EX_CONTEXT;

static NTSTATUS WINAPI
AdapterUnloadSafeCompletion(PDEVICE_OBJECT DeviceObject, PIRP Irp, PVOID Context)
{
    ADAPTER_EX_CONTEXT ex = *(ADAPTER_EX_CONTEXT *)Context;
    NTSTATUS status;

    ExFreePoolWithTag(Context, ADAPTER_TAG);
    status = ex.Routine(DeviceObject, Irp, ex.Context);
    ObDereferenceObject(ex.DeviceObject);
    return status;
}

NTSTATUS WINAPI __wrap_IoSetCompletionRoutineEx(PDEVICE_OBJECT DeviceObject, PIRP Irp,
                                                PIO_COMPLETION_ROUTINE CompletionRoutine, PVOID Context,
                                                BOOLEAN InvokeOnSuccess, BOOLEAN InvokeOnError,
                                                BOOLEAN InvokeOnCancel);
NTSTATUS WINAPI
__wrap_IoSetCompletionRoutineEx(PDEVICE_OBJECT DeviceObject, PIRP Irp, PIO_COMPLETION_ROUTINE CompletionRoutine,
                                PVOID Context, BOOLEAN InvokeOnSuccess, BOOLEAN InvokeOnError,
                                BOOLEAN InvokeOnCancel)
{
    ADAPTER_EX_CONTEXT *ex = ExAllocatePoolWithTag(NonPagedPool, sizeof(*ex), ADAPTER_TAG);

    if (ex == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    ex->DeviceObject = DeviceObject;
    ex->Routine = CompletionRoutine;
    ex->Context = Context;
    ObfReferenceObject(DeviceObject);
    IoSetCompletionRoutine(Irp, AdapterUnloadSafeCompletion, ex, InvokeOnSuccess, InvokeOnError, InvokeOnCancel);
    return STATUS_SUCCESS;
}

VOID
WineAdapterCounts(ULONG *SocketConnects, ULONG *Disconnects, ULONG *Closes)
{
    *SocketConnects = (ULONG)g_SocketConnects;
    *Disconnects = (ULONG)g_Disconnects;
    *Closes = (ULONG)g_Closes;
}
