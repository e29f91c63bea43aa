/*
 * safewsk sample driver (KMDF, root-enumerated PnP device), asynchronous.
 *
 * EvtDriverDeviceAdd creates the device and reads TargetAddress/TargetPort
 * (REG_DWORD) from the service's Parameters key (the INF writes them).
 * EvtDeviceSelfManagedIoInit (PASSIVE_LEVEL, once the device has started)
 * only queues a work item, so that device start never waits for the WSK
 * provider ("Registering a Winsock Kernel Application"). The work item
 * starts WSK through safewsk (waiting for the provider if need be) and
 * starts SafeWskSocketConnectAsync with the request in the device context:
 * no thread waits for the connection. Its callback (IRQL <= DISPATCH_LEVEL)
 * keeps the result and queues the work item again, which then does the
 * request/reply of ../common/sample_exchange.c at PASSIVE_LEVEL.
 * EvtDeviceSelfManagedIoCleanup flushes the work item, cancels a connect
 * still pending, waits for its callback and for the exchange the callback
 * queued (which closes the socket), then calls SafeWskCleanup; the device
 * object passed to SafeWskStartup outlives the client.
 *
 * The socket is an opaque handle (SAFEWSK_SOCKET *), handed out by the
 * callback; the calls on it take it alone, without the client.
 *
 * On Linux, .ci/windows-gnu compiles it against MinGW's real ntddk.h with a
 * small compat wdf.h (MinGW ships no KMDF headers).
 */
#include <ntddk.h>
#include <wdf.h>
#include <wsk.h>

#include "safewsk.h"
#include "sample_exchange.h"

#define SAMPLE_PROVIDER_WAIT_MS 10000

typedef struct _SAMPLE_DEVICE_CONTEXT {
    SAFEWSK_CLIENT *Client;
    ULONG Address;
    ULONG Port;
    WDFWORKITEM ExchangeWorkItem;
    /* Set by the work item's first run (startup and connect). */
    BOOLEAN Started;
    BOOLEAN ConnectStarted;
    /* Filled by the connect callback, read by the work item. */
    NTSTATUS ConnectStatus;
    SAFEWSK_SOCKET *Socket;
    /* Set by the connect callback, last: the callback has queued the
     * exchange (or reported a failure) and touches nothing any more. */
    KEVENT ConnectDone;
    /* The asynchronous connect's storage: lives as long as the device. */
    SAFEWSK_CONNECT_REQUEST ConnectRequest;
} SAMPLE_DEVICE_CONTEXT;

WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(SAMPLE_DEVICE_CONTEXT, SampleGetContext)

DRIVER_INITIALIZE DriverEntry;
EVT_WDF_DRIVER_DEVICE_ADD SampleEvtDeviceAdd;
EVT_WDF_DEVICE_SELF_MANAGED_IO_INIT SampleEvtSelfManagedIoInit;
EVT_WDF_DEVICE_SELF_MANAGED_IO_CLEANUP SampleEvtSelfManagedIoCleanup;
EVT_WDF_WORKITEM SampleEvtExchangeWorkItem;

NTSTATUS
DriverEntry(_In_ PDRIVER_OBJECT DriverObject, _In_ PUNICODE_STRING RegistryPath)
{
    WDF_DRIVER_CONFIG config;

    WDF_DRIVER_CONFIG_INIT(&config, SampleEvtDeviceAdd);
    return WdfDriverCreate(DriverObject, RegistryPath, WDF_NO_OBJECT_ATTRIBUTES, &config, WDF_NO_HANDLE);
}

static NTSTATUS
SampleReadParameters(_In_ WDFDRIVER Driver, _Out_ SAMPLE_DEVICE_CONTEXT *Context)
{
    DECLARE_CONST_UNICODE_STRING(addressName, L"TargetAddress");
    DECLARE_CONST_UNICODE_STRING(portName, L"TargetPort");
    WDFKEY key;
    NTSTATUS status;

    status = WdfDriverOpenParametersRegistryKey(Driver, KEY_READ, WDF_NO_OBJECT_ATTRIBUTES, &key);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = WdfRegistryQueryULong(key, &addressName, &Context->Address);
    if (NT_SUCCESS(status)) {
        status = WdfRegistryQueryULong(key, &portName, &Context->Port);
    }
    WdfRegistryClose(key);
    return status;
}

NTSTATUS
SampleEvtDeviceAdd(_In_ WDFDRIVER Driver, _Inout_ PWDFDEVICE_INIT DeviceInit)
{
    WDF_PNPPOWER_EVENT_CALLBACKS pnpPower;
    WDF_OBJECT_ATTRIBUTES attributes;
    WDFDEVICE device;
    NTSTATUS status;

    PAGED_CODE();

    WDF_PNPPOWER_EVENT_CALLBACKS_INIT(&pnpPower);
    pnpPower.EvtDeviceSelfManagedIoInit = SampleEvtSelfManagedIoInit;
    pnpPower.EvtDeviceSelfManagedIoCleanup = SampleEvtSelfManagedIoCleanup;
    WdfDeviceInitSetPnpPowerEventCallbacks(DeviceInit, &pnpPower);

    WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE(&attributes, SAMPLE_DEVICE_CONTEXT);
    status = WdfDeviceCreate(&DeviceInit, &attributes, &device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    return SampleReadParameters(Driver, SampleGetContext(device));
}

/* The connect's callback: IRQL <= DISPATCH_LEVEL, exactly once. The socket
 * calls wait, so the exchange runs in a work item at PASSIVE_LEVEL. */
static void
SampleConnectComplete(_In_opt_ PVOID Context, _In_ NTSTATUS Status, _In_opt_ SAFEWSK_SOCKET *Socket)
{
    WDFDEVICE device = (WDFDEVICE)Context;
    SAMPLE_DEVICE_CONTEXT *context = SampleGetContext(device);

    context->ConnectStatus = Status;
    context->Socket = Socket;
    WdfWorkItemEnqueue(context->ExchangeWorkItem);
    KeSetEvent(&context->ConnectDone, IO_NO_INCREMENT, FALSE); /* last access */
}

/* The first run (queued by EvtDeviceSelfManagedIoInit): start WSK, waiting
 * for the provider if need be, and start the connect. PASSIVE_LEVEL. */
static VOID
SampleStart(_In_ WDFDEVICE Device, _Inout_ SAMPLE_DEVICE_CONTEXT *Context)
{
    SOCKADDR_IN local, remote;
    NTSTATUS status;

    /* The device object keeps the driver loaded while safewsk's completion
     * routines run; it outlives the client (cleanup runs first). */
    status = SafeWskStartup(WdfDeviceWdmGetDeviceObject(Device), SAMPLE_PROVIDER_WAIT_MS, &Context->Client);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-kmdf: SafeWskStartup failed: 0x%08X\n", (unsigned)status);
        return;
    }
    /* The device stays started even if the peer is unreachable: the
     * connect's status is only reported. */
    status = SampleBuildAddresses(Context->Address, Context->Port, &local, &remote);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-kmdf: bad TargetPort: %u\n", Context->Port);
        return;
    }
    KeInitializeEvent(&Context->ConnectDone, NotificationEvent, FALSE);
    RtlZeroMemory(&Context->ConnectRequest, sizeof(Context->ConnectRequest));
    Context->ConnectRequest.Callback = SampleConnectComplete;
    Context->ConnectRequest.CallbackContext = Device;
    Context->ConnectRequest.TimeoutMs = 5000;
    /* The addresses are copied by safewsk: locals are fine. */
    status = SafeWskSocketConnectAsync(Context->Client, SOCK_STREAM, IPPROTO_TCP, (SOCKADDR *)&local,
                                       (SOCKADDR *)&remote, 0, NULL, NULL, NULL, NULL, NULL,
                                       &Context->ConnectRequest);
    if (status == STATUS_PENDING) {
        Context->ConnectStarted = TRUE;
    } else {
        DbgPrint("safewsk-kmdf: SafeWskSocketConnectAsync failed: 0x%08X\n", (unsigned)status);
    }
}

VOID
SampleEvtExchangeWorkItem(_In_ WDFWORKITEM WorkItem)
{
    WDFDEVICE device = (WDFDEVICE)WdfWorkItemGetParentObject(WorkItem);
    SAMPLE_DEVICE_CONTEXT *context = SampleGetContext(device);
    SAFEWSK_SOCKET *socket = context->Socket;

    PAGED_CODE();

    if (!context->Started) {
        context->Started = TRUE;
        SampleStart(device, context);
        return;
    }
    if (!NT_SUCCESS(context->ConnectStatus)) {
        DbgPrint("safewsk-kmdf: connect failed: 0x%08X\n", (unsigned)context->ConnectStatus);
        return;
    }
    context->Socket = NULL;
    /* SampleTalk always closes the socket (the handle is consumed). */
    DbgPrint("safewsk-kmdf: exchange finished: 0x%08X\n", (unsigned)SampleTalk(socket));
}

NTSTATUS
SampleEvtSelfManagedIoInit(_In_ WDFDEVICE Device)
{
    SAMPLE_DEVICE_CONTEXT *context = SampleGetContext(Device);
    WDF_WORKITEM_CONFIG workItemConfig;
    WDF_OBJECT_ATTRIBUTES attributes;
    NTSTATUS status;

    PAGED_CODE();

    WDF_WORKITEM_CONFIG_INIT(&workItemConfig, SampleEvtExchangeWorkItem);
    WDF_OBJECT_ATTRIBUTES_INIT(&attributes);
    attributes.ParentObject = Device;
    status = WdfWorkItemCreate(&workItemConfig, &attributes, &context->ExchangeWorkItem);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    /* Device start does not wait for the WSK provider: the work item does. */
    WdfWorkItemEnqueue(context->ExchangeWorkItem);
    return STATUS_SUCCESS;
}

VOID
SampleEvtSelfManagedIoCleanup(_In_ WDFDEVICE Device)
{
    SAMPLE_DEVICE_CONTEXT *context = SampleGetContext(Device);
    NTSTATUS status;

    PAGED_CODE();

    /* The startup stage may still be running: let it finish. */
    WdfWorkItemFlush(context->ExchangeWorkItem);
    if (context->Client == NULL) {
        return;
    }
    if (context->ConnectStarted) {
        /* A connect still pending calls back with STATUS_CANCELLED (possibly
         * inside SafeWskCancelConnect); STATUS_NOT_FOUND (already completed)
         * is fine too. The callback comes exactly once, within the request's
         * deadline at the latest. */
        (void)SafeWskCancelConnect(&context->ConnectRequest);
        (void)KeWaitForSingleObject(&context->ConnectDone, Executive, KernelMode, FALSE, NULL);
        /* The exchange the callback queued: it closes the socket. No call
         * with the client's handles may be in flight once cleanup begins. */
        WdfWorkItemFlush(context->ExchangeWorkItem);
    }
    /* Never refused for open sockets: one left open would be closed here
     * (and reported); it waits for everything in flight, then deregisters. */
    status = SafeWskCleanup(context->Client);
    DbgPrint("safewsk-kmdf: SafeWskCleanup: 0x%08X\n", (unsigned)status);
    context->Client = NULL;
}
