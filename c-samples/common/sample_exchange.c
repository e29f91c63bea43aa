/*
 * The exchange the safewsk samples perform: connect to an IPv4 address and
 * port, send one request, print the reply, disconnect gracefully, close;
 * and the same by name ("localhost" and the port as a service name).
 * IRQL: PASSIVE_LEVEL (safewsk waits).
 */
#include <ntddk.h>
#include <wsk.h>

#include "safewsk.h"
#include "sample_exchange.h"

#define SAMPLE_TAG 'lpmS' /* "Smpl" in a pool dump */
#define SAMPLE_CONNECT_TIMEOUT_MS 5000
#define SAMPLE_IO_TIMEOUT_MS 5000

static const char SampleRequest[] = "PING safewsk\r\n";

NTSTATUS
SampleBuildAddresses(_In_ ULONG Address, _In_ ULONG Port, _Out_ SOCKADDR_IN *Local, _Out_ SOCKADDR_IN *Remote)
{
    RtlZeroMemory(Local, sizeof(*Local));
    RtlZeroMemory(Remote, sizeof(*Remote));
    if (Port == 0 || Port > 0xFFFF) {
        return STATUS_INVALID_PARAMETER;
    }
    Local->sin_family = AF_INET; /* 0.0.0.0:0, the stack picks */
    Remote->sin_family = AF_INET;
    Remote->sin_port = RtlUshortByteSwap((USHORT)Port);
    Remote->sin_addr.s_addr = RtlUlongByteSwap(Address);
    return STATUS_SUCCESS;
}

NTSTATUS
SampleTalk(_In_ SAFEWSK_SOCKET *Socket)
{
    char *buffer;
    ULONG sent = 0, received = 0;
    NTSTATUS status, closeStatus;

    /* Any kernel buffer works (safewsk probes and locks it); this one is
     * non-paged pool, so SAFEWSK_FLAG_NONPAGED_BUFFER skips the probe and lock. */
    buffer = (char *)ExAllocatePool2(POOL_FLAG_NON_PAGED, 256, SAMPLE_TAG);
    if (buffer == NULL) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto close;
    }
    RtlCopyMemory(buffer, SampleRequest, sizeof(SampleRequest) - 1);
    status = SafeWskSend(Socket, buffer, sizeof(SampleRequest) - 1, SAFEWSK_FLAG_NONPAGED_BUFFER, SAMPLE_IO_TIMEOUT_MS,
                         &sent);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: send failed: 0x%08X after %u bytes\n", (unsigned)status, sent);
        goto free;
    }
    status = SafeWskReceive(Socket, buffer, 255, SAFEWSK_FLAG_NONPAGED_BUFFER, SAMPLE_IO_TIMEOUT_MS, &received);
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
        status = SafeWskDisconnect(Socket, 0, SAMPLE_IO_TIMEOUT_MS);
    }

free:
    ExFreePoolWithTag(buffer, SAMPLE_TAG);
close:
    /* The close consumes the handle whatever it returns: Socket must not be
     * used again (any later call with it is STATUS_INVALID_PARAMETER_1). On
     * an error the library keeps the socket and SafeWskCleanup closes it. */
    closeStatus = SafeWskCloseSocket(Socket);
    if (!NT_SUCCESS(closeStatus)) {
        DbgPrint("safewsk-sample: close failed: 0x%08X\n", (unsigned)closeStatus);
    }
    return status;
}

NTSTATUS
SampleExchange(_In_ SAFEWSK_CLIENT *Client, _In_ ULONG Address, _In_ ULONG Port)
{
    SOCKADDR_IN local, remote;
    SAFEWSK_SOCKET *socket = NULL;
    NTSTATUS status;

    status = SampleBuildAddresses(Address, Port, &local, &remote);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = SafeWskSocketConnect(Client, SOCK_STREAM, IPPROTO_TCP, (SOCKADDR *)&local, (SOCKADDR *)&remote, 0,
                                  NULL, NULL, NULL, NULL, NULL, &socket, SAMPLE_CONNECT_TIMEOUT_MS);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: connect to %u.%u.%u.%u:%u failed: 0x%08X\n", (Address >> 24) & 0xFF,
                 (Address >> 16) & 0xFF, (Address >> 8) & 0xFF, Address & 0xFF, Port, (unsigned)status);
        return status;
    }
    DbgPrint("safewsk-sample: connected to %u.%u.%u.%u:%u\n", (Address >> 24) & 0xFF, (Address >> 16) & 0xFF,
             (Address >> 8) & 0xFF, Address & 0xFF, Port);
    /* Where from: an IPv4 socket's address fits a SOCKADDR_IN (use a
     * SOCKADDR_INET or SOCKADDR_STORAGE for either family). Informational
     * only: a provider without WskGetLocalAddress (Wine 8) says so. */
    status = SafeWskGetLocalAddress(socket, (SOCKADDR *)&local, sizeof(local), SAMPLE_IO_TIMEOUT_MS);
    if (NT_SUCCESS(status)) {
        const UCHAR *a = (const UCHAR *)&local.sin_addr;
        DbgPrint("safewsk-sample: local address %u.%u.%u.%u:%u\n", a[0], a[1], a[2], a[3],
                 RtlUshortByteSwap(local.sin_port));
    } else {
        DbgPrint("safewsk-sample: local address unavailable: 0x%08X\n", (unsigned)status);
    }
    return SampleTalk(socket);
}

NTSTATUS
SampleExchangeByName(_In_ SAFEWSK_CLIENT *Client, _In_ ULONG Port)
{
    /* The host name, as a counted string: a UNICODE_STRING need not be
     * NUL-terminated, and safewsk does not rely on it. */
    static WCHAR nodeChars[] = L"localhost";
    UNICODE_STRING node, service;
    WCHAR digits[5];
    /* 28 bytes, 4-aligned: fits the SOCKADDR_IN or SOCKADDR_IN6 reached
     * (sizeof(SOCKADDR_IN6); not every WDK-like header set declares it). */
    ULONG reached[7];
    const UCHAR *b = (const UCHAR *)reached;
    SAFEWSK_SOCKET *socket = NULL;
    USHORT n = 0, i;
    ULONG p = Port;
    NTSTATUS status;

    if (Port == 0 || Port > 0xFFFF) {
        return STATUS_INVALID_PARAMETER;
    }
    node.Buffer = nodeChars;
    node.Length = (USHORT)(sizeof(nodeChars) - sizeof(WCHAR)); /* without the terminator */
    node.MaximumLength = (USHORT)sizeof(nodeChars);
    /* The port as a decimal service name ("443"), without the C runtime. */
    do {
        digits[n++] = (WCHAR)(L'0' + p % 10);
        p /= 10;
    } while (p != 0);
    for (i = 0; i < n / 2; i++) {
        WCHAR t = digits[i];
        digits[i] = digits[n - 1 - i];
        digits[n - 1 - i] = t;
    }
    service.Buffer = digits;
    service.Length = (USHORT)(n * sizeof(WCHAR));
    service.MaximumLength = (USHORT)sizeof(digits);

    /* Resolves with WskGetAddressInfo, frees the provider's list, then tries
     * the addresses in the resolver's order under one deadline. */
    status = SafeWskConnectByName(Client, &node, &service, NULL, NULL, &socket, (SOCKADDR *)reached,
                                  sizeof(reached), SAMPLE_CONNECT_TIMEOUT_MS);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: connect by name to localhost:%u failed: 0x%08X\n", Port, (unsigned)status);
        return status;
    }
    if ((USHORT)(b[0] | (b[1] << 8)) == AF_INET) { /* sa_family, little-endian */
        DbgPrint("safewsk-sample: localhost reached at %u.%u.%u.%u:%u\n", b[4], b[5], b[6], b[7],
                 (b[2] << 8) | b[3]);
    } else {
        DbgPrint("safewsk-sample: localhost reached at [%x:%x:%x:%x:%x:%x:%x:%x]:%u\n", (b[8] << 8) | b[9],
                 (b[10] << 8) | b[11], (b[12] << 8) | b[13], (b[14] << 8) | b[15], (b[16] << 8) | b[17],
                 (b[18] << 8) | b[19], (b[20] << 8) | b[21], (b[22] << 8) | b[23], (b[2] << 8) | b[3]);
    }
    return SampleTalk(socket);
}
