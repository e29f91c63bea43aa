/*
 * The exchange the safewsk samples perform: connect to an IPv4 address and
 * port, send one request, print the reply, disconnect gracefully, close;
 * and the same by name ("localhost" and the port as a service name). Then,
 * if configured, the other side: a small echo server on a listening socket
 * bound by name, and a UDP exchange on a datagram socket.
 * IRQL: PASSIVE_LEVEL (safewsk waits).
 */
#include <ntddk.h>
#include <wsk.h>

#include "safewsk.h"
#include "sample_exchange.h"

#define SAMPLE_TAG 'lpmS' /* "Smpl" in a pool dump */
#define SAMPLE_CONNECT_TIMEOUT_MS 5000
#define SAMPLE_IO_TIMEOUT_MS 5000
#define SAMPLE_ACCEPT_TIMEOUT_MS 30000

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

/* The port as a decimal service name ("443"), without the C runtime, in
 * Digits (5 characters) described by Service. */
static VOID
SamplePortName(_In_ ULONG Port, WCHAR *Digits, _Out_ UNICODE_STRING *Service)
{
    USHORT n = 0, i;
    ULONG p = Port;

    do {
        Digits[n++] = (WCHAR)(L'0' + p % 10);
        p /= 10;
    } while (p != 0 && n < 5);
    for (i = 0; i < n / 2; i++) {
        WCHAR t = Digits[i];
        Digits[i] = Digits[n - 1 - i];
        Digits[n - 1 - i] = t;
    }
    Service->Buffer = Digits;
    Service->Length = (USHORT)(n * sizeof(WCHAR));
    Service->MaximumLength = (USHORT)(5 * sizeof(WCHAR));
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
    NTSTATUS status;

    if (Port == 0 || Port > 0xFFFF) {
        return STATUS_INVALID_PARAMETER;
    }
    node.Buffer = nodeChars;
    node.Length = (USHORT)(sizeof(nodeChars) - sizeof(WCHAR)); /* without the terminator */
    node.MaximumLength = (USHORT)sizeof(nodeChars);
    SamplePortName(Port, digits, &service);

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

/* An IPv4 SOCKADDR_IN in a SAFEWSK_ADDRESS, printed as a.b.c.d:port. */
static VOID
SamplePrintAddress(_In_ const char *What, _In_ const SAFEWSK_ADDRESS *Address)
{
    const UCHAR *b = (const UCHAR *)Address;

    DbgPrint("safewsk-sample: %s %u.%u.%u.%u:%u\n", What, b[4], b[5], b[6], b[7], (b[2] << 8) | b[3]);
}

NTSTATUS
SampleEchoServer(_In_ SAFEWSK_CLIENT *Client, _In_ ULONG Port)
{
    static WCHAR nodeChars[] = L"localhost";
    UNICODE_STRING node, service;
    WCHAR digits[5];
    SAFEWSK_ADDRESS bindTo[2], remote;
    SAFEWSK_SOCKET *listener = NULL, *peer = NULL;
    ULONG count = 0, received = 0, sent = 0, total = 0;
    char *buffer;
    NTSTATUS status, closeStatus;

    if (Port == 0 || Port > 0xFFFF) {
        return STATUS_INVALID_PARAMETER;
    }
    node.Buffer = nodeChars;
    node.Length = (USHORT)(sizeof(nodeChars) - sizeof(WCHAR));
    node.MaximumLength = (USHORT)sizeof(nodeChars);
    SamplePortName(Port, digits, &service);
    /* Bind by name: resolve "localhost" for IPv4 without connecting (the
     * provider's list is copied and freed inside the call). */
    status = SafeWskResolveName(Client, &node, &service, AF_INET, bindTo, 2, &count, SAMPLE_CONNECT_TIMEOUT_MS);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: resolving localhost:%u failed: 0x%08X\n", Port, (unsigned)status);
        return status;
    }
    /* NULL options: SO_EXCLUSIVEADDRUSE, what a server wants. */
    status = SafeWskListen(Client, (SOCKADDR *)&bindTo[0], NULL, &listener, SAMPLE_CONNECT_TIMEOUT_MS);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: listen on localhost:%u failed: 0x%08X\n", Port, (unsigned)status);
        return status;
    }
    SamplePrintAddress("echo server listening on", &bindTo[0]);
    status = SafeWskAccept(listener, NULL, NULL, &peer, NULL, &remote, SAMPLE_ACCEPT_TIMEOUT_MS);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: accept failed: 0x%08X\n", (unsigned)status);
        goto close_listener;
    }
    SamplePrintAddress("echo server accepted a connection from", &remote);
    /* The listening socket is not needed for one connection: closing it
     * leaves the accepted socket alone. */
    closeStatus = SafeWskCloseSocket(listener);
    listener = NULL;
    if (!NT_SUCCESS(closeStatus)) {
        DbgPrint("safewsk-sample: close failed: 0x%08X\n", (unsigned)closeStatus);
    }
    buffer = (char *)ExAllocatePool2(POOL_FLAG_NON_PAGED, 512, SAMPLE_TAG);
    if (buffer == NULL) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto close_peer;
    }
    for (;;) {
        status = SafeWskReceive(peer, buffer, 512, SAFEWSK_FLAG_NONPAGED_BUFFER, SAMPLE_IO_TIMEOUT_MS, &received);
        if (!NT_SUCCESS(status) || received == 0) {
            break; /* 0 bytes: the client shut its side down */
        }
        status = SafeWskSend(peer, buffer, received, SAFEWSK_FLAG_NONPAGED_BUFFER, SAMPLE_IO_TIMEOUT_MS, &sent);
        if (!NT_SUCCESS(status)) {
            break;
        }
        total += sent;
    }
    ExFreePoolWithTag(buffer, SAMPLE_TAG);
    DbgPrint("safewsk-sample: echo server echoed %u bytes; status 0x%08X\n", total, (unsigned)status);
    if (NT_SUCCESS(status)) {
        status = SafeWskDisconnect(peer, 0, SAMPLE_IO_TIMEOUT_MS);
    }
close_peer:
    closeStatus = SafeWskCloseSocket(peer);
    if (!NT_SUCCESS(closeStatus)) {
        DbgPrint("safewsk-sample: close failed: 0x%08X\n", (unsigned)closeStatus);
    }
close_listener:
    if (listener != NULL) {
        closeStatus = SafeWskCloseSocket(listener);
        if (!NT_SUCCESS(closeStatus)) {
            DbgPrint("safewsk-sample: close failed: 0x%08X\n", (unsigned)closeStatus);
        }
    }
    return status;
}

NTSTATUS
SampleUdpExchange(_In_ SAFEWSK_CLIENT *Client, _In_ ULONG Address, _In_ ULONG Port)
{
    static const char datagram[] = "DGRAM safewsk";
    SOCKADDR_IN local, remote;
    SAFEWSK_ADDRESS from;
    SAFEWSK_SOCKET *socket = NULL;
    char reply[64];
    ULONG sent = 0, received = 0;
    NTSTATUS status, closeStatus;

    status = SampleBuildAddresses(Address, Port, &local, &remote);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = SafeWskDatagramSocket(Client, (SOCKADDR *)&local, NULL, &socket, SAMPLE_CONNECT_TIMEOUT_MS);
    if (!NT_SUCCESS(status)) {
        DbgPrint("safewsk-sample: datagram socket failed: 0x%08X\n", (unsigned)status);
        return status;
    }
    /* The stack buffers are fine: safewsk probes and locks them. */
    status = SafeWskSendTo(socket, datagram, sizeof(datagram) - 1, 0, (SOCKADDR *)&remote, SAMPLE_IO_TIMEOUT_MS, &sent);
    if (NT_SUCCESS(status)) {
        status = SafeWskReceiveFrom(socket, reply, sizeof(reply) - 1, 0, &from, SAMPLE_IO_TIMEOUT_MS, &received);
    }
    if (NT_SUCCESS(status)) {
        reply[received] = '\0';
        DbgPrint("safewsk-sample: udp: sent %u bytes, received %u bytes: %s\n", sent, received, reply);
        SamplePrintAddress("udp: the reply came from", &from);
    } else {
        DbgPrint("safewsk-sample: udp exchange failed: 0x%08X\n", (unsigned)status);
    }
    closeStatus = SafeWskCloseSocket(socket);
    if (!NT_SUCCESS(closeStatus)) {
        DbgPrint("safewsk-sample: close failed: 0x%08X\n", (unsigned)closeStatus);
    }
    return status;
}
