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
 * Copy it: everything about IRPs, completion routines, events, timeouts and
 * cancellation is inside safewsk. What is left is the driver's own logic.
 *
 * Build on Windows with the WDK (see README, "Use it in your driver"); on
 * Linux the tests build it against the host kernel's stand-in headers.
 */
#include <ntddk.h>
#include <wsk.h>

#include "safewsk.h"

#define SAMPLE_TAG 'lpmS' /* "Smpl" in a pool dump */
#define SAMPLE_CONNECT_TIMEOUT_MS 5000
#define SAMPLE_IO_TIMEOUT_MS 5000
#define SAMPLE_PROVIDER_WAIT_MS 10000 /* boot-start: wait for NETIO */

static const char SampleRequest[] = "PING safewsk\r\n";

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

/* Connects, sends the request, prints the reply, closes. */
static NTSTATUS
SampleExchange(_In_ ULONG Address, _In_ ULONG Port)
{
    SOCKADDR_IN local, remote;
    WSK_SOCKET *socket = NULL;
    char *buffer;
    ULONG sent = 0, received = 0;
    NTSTATUS status, closeStatus;

    if (Port == 0 || Port > 0xFFFF) {
        return STATUS_INVALID_PARAMETER;
    }
    RtlZeroMemory(&local, sizeof(local));
    local.sin_family = AF_INET; /* 0.0.0.0:0, the stack picks */
    RtlZeroMemory(&remote, sizeof(remote));
    remote.sin_family = AF_INET;
    remote.sin_port = RtlUshortByteSwap((USHORT)Port);
    remote.sin_addr.s_addr = RtlUlongByteSwap(Address);

    status = SafeWskSocketConnect(g_Client, SOCK_STREAM, IPPROTO_TCP, (SOCKADDR *)&local, (SOCKADDR *)&remote, 0,
                                  NULL, NULL, NULL, NULL, NULL, &socket, SAMPLE_CONNECT_TIMEOUT_MS);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: connect to %u.%u.%u.%u:%u failed: 0x%08X\n", (Address >> 24) & 0xFF,
                 (Address >> 16) & 0xFF, (Address >> 8) & 0xFF, Address & 0xFF, Port, (unsigned)status);
        return status;
    }
    DbgPrint("safewsk-sample: connected to %u.%u.%u.%u:%u\n", (Address >> 24) & 0xFF, (Address >> 16) & 0xFF,
             (Address >> 8) & 0xFF, Address & 0xFF, Port);

    /* WSK describes buffers with MDLs built for non-paged memory. */
    buffer = (char *)ExAllocatePool2(POOL_FLAG_NON_PAGED, 256, SAMPLE_TAG);
    if (buffer == NULL) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto close;
    }
    RtlCopyMemory(buffer, SampleRequest, sizeof(SampleRequest) - 1);
    status = SafeWskSend(g_Client, socket, buffer, sizeof(SampleRequest) - 1, 0, SAMPLE_IO_TIMEOUT_MS, &sent);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: send failed: 0x%08X after %u bytes\n", (unsigned)status, sent);
        goto free;
    }
    status = SafeWskReceive(g_Client, socket, buffer, 255, 0, SAMPLE_IO_TIMEOUT_MS, &received);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: receive failed: 0x%08X\n", (unsigned)status);
        goto free;
    }
    buffer[received] = '\0';
    DbgPrint("safewsk-sample: sent %u bytes, received %u bytes: %s\n", sent, received, buffer);
    if (received == 0) {
        status = STATUS_UNSUCCESSFUL; /* the server closed without answering */
    } else {
        /* Graceful shutdown of our side; the close below then frees the socket. */
        status = SafeWskDisconnect(g_Client, socket, 0, SAMPLE_IO_TIMEOUT_MS);
    }

free:
    ExFreePoolWithTag(buffer, SAMPLE_TAG);
close:
    closeStatus = SafeWskCloseSocket(g_Client, socket);
    if (!NT_SUCCESS(closeStatus)) {
        DbgPrint("safewsk-sample: close failed: 0x%08X\n", (unsigned)closeStatus);
    }
    return status;
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
    status = SampleExchange(address, port);
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
