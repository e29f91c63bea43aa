/*
 * safewsk sample driver (KMDF, root-enumerated PnP device).
 *
 * EvtDriverDeviceAdd creates the device and reads TargetAddress/TargetPort
 * (REG_DWORD) from the service's Parameters key (the INF writes them).
 * EvtDeviceSelfManagedIoInit (PASSIVE_LEVEL, once the device has started)
 * starts WSK through safewsk and runs the request/reply exchange of
 * ../common/sample_exchange.c with the synchronous safewsk calls;
 * EvtDeviceSelfManagedIoCleanup calls SafeWskCleanup.
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
} SAMPLE_DEVICE_CONTEXT;

WDF_DECLARE_CONTEXT_TYPE_WITH_NAME(SAMPLE_DEVICE_CONTEXT, SampleGetContext)

DRIVER_INITIALIZE DriverEntry;
EVT_WDF_DRIVER_DEVICE_ADD SampleEvtDeviceAdd;
EVT_WDF_DEVICE_SELF_MANAGED_IO_INIT SampleEvtSelfManagedIoInit;
EVT_WDF_DEVICE_SELF_MANAGED_IO_CLEANUP SampleEvtSelfManagedIoCleanup;

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

NTSTATUS
SampleEvtSelfManagedIoInit(_In_ WDFDEVICE Device)
{
    SAMPLE_DEVICE_CONTEXT *context = SampleGetContext(Device);
    NTSTATUS status;

    PAGED_CODE();

    status = SafeWskStartup(SAMPLE_PROVIDER_WAIT_MS, &context->Client);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-kmdf: SafeWskStartup failed: 0x%08X\n", (unsigned)status);
        return status;
    }
    /* The device stays started even if the peer is unreachable: the
     * exchange's status is only reported. */
    status = SampleExchange(context->Client, context->Address, context->Port);
    DbgPrint("safewsk-kmdf: exchange finished: 0x%08X\n", (unsigned)status);
    return STATUS_SUCCESS;
}

VOID
SampleEvtSelfManagedIoCleanup(_In_ WDFDEVICE Device)
{
    SAMPLE_DEVICE_CONTEXT *context = SampleGetContext(Device);

    PAGED_CODE();

    if (context->Client != NULL) {
        /* SampleExchange closed its socket, so cleanup cannot refuse. */
        (void)SafeWskCleanup(context->Client);
        context->Client = NULL;
    }
}
