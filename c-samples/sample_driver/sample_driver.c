/*
 * safewsk sample driver (WDM).
 *
 * DriverEntry starts WSK through safewsk, connects to the IPv4 address and
 * port configured under the service key
 *     HKLM\System\CurrentControlSet\Services\SafeWskSample\Parameters
 *         TargetAddress  REG_DWORD  e.g. 0x7F000001 for 127.0.0.1
 *         TargetPort     REG_DWORD  e.g. 7
 * sends one request, reads the reply, prints it with DbgPrint and closes the
 * socket. DriverUnload calls SafeWskCleanup.
 *
 * The exchange itself is in ../common/sample_exchange.c, shared with the
 * KMDF sample.
 *
 * Copy it: everything about IRPs, completion routines, events, timeouts and
 * cancellation is inside safewsk. What is left is the driver's own logic.
 *
 * Build on Windows with the WDK (see README, "Use it in your driver"); on
 * Linux the tests build it against the host kernel's stand-in headers.
 */
#include <ntddk.h>
#include <wsk.h>

#include "safewsk.h"
#include "sample_exchange.h"

#define SAMPLE_PROVIDER_WAIT_MS 10000 /* boot-start: wait for NETIO */

static SAFEWSK_CLIENT *g_Client;

DRIVER_INITIALIZE DriverEntry;
static DRIVER_UNLOAD SampleUnload;

static NTSTATUS
SampleReadParameters(_Out_ ULONG *Address, _Out_ ULONG *Port)
{
    RTL_QUERY_REGISTRY_TABLE table[3];

    *Address = 0;
    *Port = 0;
    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK | RTL_QUERY_REGISTRY_REQUIRED;
    table[0].Name = L"TargetAddress";
    table[0].EntryContext = Address;
    table[0].DefaultType = (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
    table[1].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK | RTL_QUERY_REGISTRY_REQUIRED;
    table[1].Name = L"TargetPort";
    table[1].EntryContext = Port;
    table[1].DefaultType = (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
    /* table[2] is zero: the terminator. */
    return RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"SafeWskSample\\Parameters", table, NULL, NULL);
}

NTSTATUS
DriverEntry(_In_ PDRIVER_OBJECT DriverObject, _In_ PUNICODE_STRING RegistryPath)
{
    ULONG address, port;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);

    status = SampleReadParameters(&address, &port);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: TargetAddress/TargetPort missing: 0x%08X\n", (unsigned)status);
        return status;
    }
    status = SafeWskStartup(SAMPLE_PROVIDER_WAIT_MS, &g_Client);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: SafeWskStartup failed: 0x%08X\n", (unsigned)status);
        return status;
    }
    status = SampleExchange(g_Client, address, port);
    if (!NT_SUCCESS(status)) {
        (void)SafeWskCleanup(g_Client);
        g_Client = NULL;
        return status;
    }
    DriverObject->DriverUnload = SampleUnload;
    return STATUS_SUCCESS;
}

static VOID
SampleUnload(_In_ PDRIVER_OBJECT DriverObject)
{
    NTSTATUS status;

    UNREFERENCED_PARAMETER(DriverObject);
    /* Every socket was closed in DriverEntry, so cleanup cannot refuse. */
    status = SafeWskCleanup(g_Client);
    DbgPrint("safewsk-sample: unloaded, SafeWskCleanup: 0x%08X\n", (unsigned)status);
    g_Client = NULL;
}
