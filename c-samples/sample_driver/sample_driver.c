/*
 * safewsk sample driver (WDM).
 *
 * DriverEntry reads the IPv4 address and port configured under the service
 * key
 *     HKLM\System\CurrentControlSet\Services\SafeWskSample\Parameters
 *         TargetAddress  REG_DWORD  e.g. 0x7F000001 for 127.0.0.1
 *         TargetPort     REG_DWORD  e.g. 7
 *         ServerPort     REG_DWORD  optional: run an echo server there
 *         UdpPort        REG_DWORD  optional: a UDP exchange with
 *                                   TargetAddress:UdpPort
 * creates an unnamed device object (safewsk references it while its
 * completion routines run, so the image cannot go away under them) and
 * starts a system thread, then returns at once: it neither waits for the WSK
 * provider nor touches the network ("Registering a Winsock Kernel
 * Application": DriverEntry should not block; a driver that starts early in
 * boot waits for the provider on a worker thread). The thread starts WSK
 * through safewsk, sends one request, reads the reply, prints it with
 * DbgPrint and closes the socket, then does the same by name ("localhost").
 * DriverUnload waits for the thread, calls SafeWskCleanup and deletes the
 * device object.
 *
 * A socket is an opaque handle (SAFEWSK_SOCKET *) that the calls on it take
 * alone, without the client: SafeWskSend(Socket, ...). A handle that
 * outlived its socket (closed, or of a client cleaned up) is refused with
 * STATUS_INVALID_PARAMETER_1, never passed to WSK.
 *
 * The exchange itself is in ../common/sample_exchange.c, shared with the
 * KMDF sample.
 *
 * Copy it: everything about IRPs, completion routines, events, timeouts and
 * cancellation is inside safewsk. What is left is the driver's own logic.
 *
 * Build on Windows with the WDK (see docs/windows-build.md); on
 * Linux the tests build it against the host kernel's stand-in headers.
 */
#include <ntddk.h>
#include <wsk.h>

#include "safewsk.h"
#include "sample_exchange.h"

#define SAMPLE_PROVIDER_WAIT_MS 10000 /* boot-start: wait for NETIO */

static SAFEWSK_CLIENT *g_Client;
static PDEVICE_OBJECT g_Device;
static PVOID g_Thread; /* the worker thread object, referenced */
static ULONG g_Address, g_Port, g_ServerPort, g_UdpPort;

DRIVER_INITIALIZE DriverEntry;
static DRIVER_UNLOAD SampleUnload;
static KSTART_ROUTINE SampleWorker;

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

/* An optional REG_DWORD parameter: *Value stays 0 when it is absent (its
 * own query, REQUIRED, whose failure only means "not configured": kernels
 * differ in how they treat a missing optional DIRECT value). */
static VOID
SampleReadOptional(_In_ PCWSTR Name, _Out_ ULONG *Value)
{
    RTL_QUERY_REGISTRY_TABLE table[2];
    ULONG v = 0;

    *Value = 0;
    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_TYPECHECK | RTL_QUERY_REGISTRY_REQUIRED;
    table[0].Name = (PWSTR)Name;
    table[0].EntryContext = &v;
    table[0].DefaultType = (REG_DWORD << RTL_QUERY_REGISTRY_TYPECHECK_SHIFT) | REG_NONE;
    if (NT_SUCCESS(RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, L"SafeWskSample\\Parameters", table, NULL, NULL))) {
        *Value = v;
    }
}

/* The worker thread: PASSIVE_LEVEL, free to wait. */
static VOID
SampleWorker(_In_ PVOID Context)
{
    NTSTATUS status;

    UNREFERENCED_PARAMETER(Context);
    status = SafeWskStartup(g_Device, SAMPLE_PROVIDER_WAIT_MS, &g_Client);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: SafeWskStartup failed: 0x%08X\n", (unsigned)status);
        g_Client = NULL;
        return;
    }
    status = SampleExchange(g_Client, g_Address, g_Port);
    DbgPrint("safewsk-sample: exchange finished: 0x%08X\n", (unsigned)status);
    /* The same server by name: "localhost" and the port as a service name. */
    status = SampleExchangeByName(g_Client, g_Port);
    DbgPrint("safewsk-sample: exchange by name finished: 0x%08X\n", (unsigned)status);
    /* The other side, if configured: a server, and a datagram exchange. */
    if (g_ServerPort != 0) {
        status = SampleEchoServer(g_Client, g_ServerPort);
        DbgPrint("safewsk-sample: echo server finished: 0x%08X\n", (unsigned)status);
    }
    if (g_UdpPort != 0) {
        status = SampleUdpExchange(g_Client, g_Address, g_UdpPort);
        DbgPrint("safewsk-sample: udp exchange finished: 0x%08X\n", (unsigned)status);
    }
    /* Returning ends the thread (Windows XP and later need no
     * PsTerminateSystemThread); DriverUnload waits for that. */
}

NTSTATUS
DriverEntry(_In_ PDRIVER_OBJECT DriverObject, _In_ PUNICODE_STRING RegistryPath)
{
    HANDLE thread;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);

    status = SampleReadParameters(&g_Address, &g_Port);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: TargetAddress/TargetPort missing: 0x%08X\n", (unsigned)status);
        return status;
    }
    SampleReadOptional(L"ServerPort", &g_ServerPort);
    SampleReadOptional(L"UdpPort", &g_UdpPort);
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN, FALSE, &g_Device);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, SampleWorker, NULL);
    if (!NT_SUCCESS(status)) {
        IoDeleteDevice(g_Device);
        return status;
    }
    /* A kernel handle to a thread just created, opened with full access:
     * referencing it cannot fail. */
    status = ObReferenceObjectByHandle(thread, THREAD_ALL_ACCESS, NULL, KernelMode, &g_Thread, NULL);
    (void)ZwClose(thread);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    DriverObject->DriverUnload = SampleUnload;
    return STATUS_SUCCESS;
}

static VOID
SampleUnload(_In_ PDRIVER_OBJECT DriverObject)
{
    NTSTATUS status = STATUS_SUCCESS;

    UNREFERENCED_PARAMETER(DriverObject);
    /* Wait for the worker first: no safewsk call may be in flight with the
     * client's handles once cleanup has begun (the last cleanup frees the
     * socket table). The worker closes its sockets before it ends; a socket
     * a driver leaves open would be closed by SafeWskCleanup (and reported),
     * which never refuses. */
    (void)KeWaitForSingleObject(g_Thread, Executive, KernelMode, FALSE, NULL);
    ObDereferenceObject(g_Thread);
    if (g_Client != NULL) {
        status = SafeWskCleanup(g_Client);
        g_Client = NULL;
    }
    DbgPrint("safewsk-sample: unloaded, SafeWskCleanup: 0x%08X\n", (unsigned)status);
    /* After SafeWskCleanup no safewsk code runs on behalf of the client. */
    IoDeleteDevice(g_Device);
}
