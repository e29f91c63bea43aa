/*
 * safewsk's contract, exercised by a real kernel-mode driver image under
 * Wine (.ci/wine). Built like the WDM sample and linked with the real
 * library (libsafewsk.a) plus the test-only adapter (wine_adapter.c).
 *
 * DriverEntry reads the loopback ports from its Parameters key and starts a
 * system thread (Wine's `sc start` fails with 1053 if DriverEntry takes more
 * than 10 s). The thread prints one line per case,
 *     wine-test: PASS <case>: <detail>
 *     wine-test: FAIL <case>: <detail>
 *     wine-test: NOT RUN <case>: <why Wine cannot run it>
 * and closes with "wine-test: N passed, M failed", which .ci/wine waits for.
 * A case that cannot run on Wine is never counted as passed.
 *
 * Every wait is bounded: connects and I/O get SafeWsk timeouts, callbacks a
 * KeWaitForSingleObject timeout, and .ci/wine bounds the whole run.
 *
 * Sockets are opaque handles (SAFEWSK_SOCKET *): the calls on a socket take
 * the handle alone, and a handle that is not an open socket's (NULL,
 * forged, closed, of a client cleaned up) is STATUS_INVALID_PARAMETER_1,
 * never passed to WSK. The adapter counts the provider's WskCloseSocket
 * calls, so the cases can tell a refused close (none) from a real one.
 *
 * The same cases are the Windows verification kit's (verify/, docs/verify.md):
 * verify/safewsk_verify.c includes this file, so there is one copy of them.
 * What differs is chosen here at compile time:
 * - SAFEWSK_TEST_WINDOWS (the kit's build): the provider is Windows' own,
 *   not Wine 8's netio.sys with this directory's adapter (wine_adapter.c):
 *   the cases that check Wine's stubs (WskGetLocalAddress,
 *   WskControlClient, WskControlSocket) and its missing datagram sockets
 *   expect what Windows does instead,
 *   IPv6 and the IRQL case must pass, and a receive timeout is checked;
 * - TEST_PRINT / TEST_PREFIX: how a line is printed and its prefix
 *   (DbgPrint, "wine-test: "; the kit also keeps the lines for its result
 *   file);
 * - TEST_SERVICE: the service whose Parameters key holds the ports;
 * - TEST_FINISHED(): called by the test thread after the summary line.
 */
#include <ntddk.h>
#include <wsk.h>
#include <ws2ipdef.h>

#include "safewsk.h"
#ifndef SAFEWSK_TEST_WINDOWS
#include "wine_adapter.h"
#endif

#ifndef TEST_PRINT
#define TEST_PRINT DbgPrint
#endif
#ifndef TEST_PREFIX
#define TEST_PREFIX "wine-test: "
#endif
#ifndef TEST_SERVICE
#define TEST_SERVICE L"SafeWskWineTest"
#endif
#ifndef TEST_FINISHED
#define TEST_FINISHED() ((void)0)
#endif
/* The WDK's kernel headers do not define it; x64 and ARM64 have one
 * calling convention. */
#ifndef WINAPI
#define WINAPI
#endif

#define TEST_TAG 'tWsS'
#define CONNECT_MS 10000
#define IO_MS 10000
#define CALLBACK_WAIT_MS 15000


static ULONG g_EchoPort, g_RefusedPort, g_Echo6Port, g_ListenPort[2];
static ULONG g_Passed, g_Failed, g_NotRun;
static KEVENT g_Finished;
static PDEVICE_OBJECT g_Device; /* safewsk keeps it referenced while its completion routines run */

DRIVER_INITIALIZE DriverEntry;
static DRIVER_UNLOAD TestUnload;
static KSTART_ROUTINE TestThread;

/* ---- reporting ---- */

static VOID
Check(BOOLEAN Ok, const char *Case, const char *What, NTSTATUS Got, NTSTATUS Want)
{
    if (Ok) {
        g_Passed++;
        TEST_PRINT(TEST_PREFIX "PASS %s: %s (0x%08X)\n", Case, What, (unsigned)Got);
    } else {
        g_Failed++;
        TEST_PRINT(TEST_PREFIX "FAIL %s: %s: got 0x%08X, want 0x%08X\n", Case, What, (unsigned)Got, (unsigned)Want);
    }
}

static VOID
Expect(const char *Case, NTSTATUS Got, NTSTATUS Want)
{
    Check(Got == Want, Case, "status", Got, Want);
}

static VOID
NotRun(const char *Case, const char *Why)
{
    g_NotRun++;
    TEST_PRINT(TEST_PREFIX "NOT RUN %s: %s\n", Case, Why);
}

/* ---- addresses ---- */

static VOID
V4(SOCKADDR_IN *A, ULONG Address, ULONG Port)
{
    RtlZeroMemory(A, sizeof(*A));
    A->sin_family = AF_INET;
    A->sin_port = RtlUshortByteSwap((USHORT)Port);
    A->sin_addr.s_addr = RtlUlongByteSwap(Address);
}

static VOID
V6Loopback(SOCKADDR_IN6 *A, ULONG Port)
{
    RtlZeroMemory(A, sizeof(*A));
    A->sin6_family = AF_INET6;
    A->sin6_port = RtlUshortByteSwap((USHORT)Port);
    A->sin6_addr.u.Byte[15] = 1; /* ::1 */
}

static NTSTATUS
Connect(SAFEWSK_CLIENT *Client, const SOCKADDR *Local, const SOCKADDR *Remote, SAFEWSK_SOCKET **Socket)
{
    return SafeWskSocketConnect(Client, SOCK_STREAM, IPPROTO_TCP, Local, Remote, 0, NULL, NULL, NULL, NULL, NULL,
                                Socket, CONNECT_MS);
}

/* Sends Length bytes and reads them back from the echo server. Wine ignores
 * WSK_FLAG_WAITALL, so the reply is read in a bounded loop. */
static VOID
EchoRoundTrip(const char *Case, SAFEWSK_SOCKET *Socket, ULONG Length)
{
    static char out[4096], in[4096];
    ULONG sent = 0, got = 0, n, i, rounds;
    NTSTATUS status;

    for (i = 0; i < Length; i++) {
        out[i] = (char)('a' + i % 26);
    }
    status = SafeWskSend(Socket, out, Length, 0, IO_MS, &sent);
    Check(status == STATUS_SUCCESS && sent == Length, Case, "SafeWskSend status and BytesSent", status,
          STATUS_SUCCESS);
    TEST_PRINT(TEST_PREFIX "  %s: BytesSent %u of %u\n", Case, sent, Length);
    for (rounds = 0; got < Length && rounds < 64; rounds++) {
        n = 0;
        status = SafeWskReceive(Socket, in + got, Length - got, 0, IO_MS, &n);
        if (status != STATUS_SUCCESS || n == 0) {
            break;
        }
        got += n;
    }
    Check(status == STATUS_SUCCESS && got == Length && RtlCompareMemory(in, out, Length) == Length, Case,
          "SafeWskReceive status, BytesReceived and bytes", status, STATUS_SUCCESS);
    TEST_PRINT(TEST_PREFIX "  %s: BytesReceived %u of %u in %u call(s)\n", Case, got, Length, rounds);
}

/* ---- overlapping calls on one socket (full duplex) ---- */

/* A receive waits on a system thread while this thread sends: the send finds
 * the socket's IRP in use and allocates one of its own (freed after), which
 * Wine's netio must accept like any IRP; the receive then gets the echo. */
typedef struct {
    SAFEWSK_SOCKET *Socket;
    char Buf[8];
    ULONG Got;
    NTSTATUS Status;
    KEVENT Done;
} RECEIVER;
static RECEIVER g_Receiver; /* non-paged: the image's data */

static VOID WINAPI
ReceiverThread(PVOID Context)
{
    RECEIVER *r = (RECEIVER *)Context;
    ULONG n;

    r->Got = 0;
    r->Status = STATUS_SUCCESS;
    while (r->Got < sizeof(r->Buf)) {
        n = 0;
        r->Status = SafeWskReceive(r->Socket, r->Buf + r->Got, sizeof(r->Buf) - r->Got, 0, IO_MS, &n);
        if (r->Status != STATUS_SUCCESS || n == 0) {
            break;
        }
        r->Got += n;
    }
    KeSetEvent(&r->Done, IO_NO_INCREMENT, FALSE);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static VOID
FullDuplexCase(SAFEWSK_SOCKET *Socket)
{
    static const char data[8] = {'d', 'u', 'p', 'l', 'e', 'x', '!', '!'};
    LARGE_INTEGER delay, timeout;
    HANDLE thread;
    ULONG sent = 0, round;
    NTSTATUS status;

    for (round = 0; round < 2; round++) {
        KeInitializeEvent(&g_Receiver.Done, NotificationEvent, FALSE);
        g_Receiver.Socket = Socket;
        status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, ReceiverThread, &g_Receiver);
        if (!NT_SUCCESS(status)) {
            NotRun("send while a receive waits", "PsCreateSystemThread failed");
            return;
        }
        ZwClose(thread);
        delay.QuadPart = -100LL * 10 * 1000; /* let the receive reach the provider */
        KeDelayExecutionThread(KernelMode, FALSE, &delay);
        status = SafeWskSend(Socket, (PVOID)data, sizeof(data), 0, IO_MS, &sent);
        Check(status == STATUS_SUCCESS && sent == sizeof(data), "send while a receive waits (full duplex)",
              "SafeWskSend status and BytesSent", status, STATUS_SUCCESS);
        timeout.QuadPart = -20LL * 10 * 1000 * 1000;
        status = KeWaitForSingleObject(&g_Receiver.Done, Executive, KernelMode, FALSE, &timeout);
        Check(status == STATUS_SUCCESS && g_Receiver.Status == STATUS_SUCCESS && g_Receiver.Got == sizeof(data) &&
                  RtlCompareMemory(g_Receiver.Buf, data, sizeof(data)) == sizeof(data),
              "send while a receive waits (full duplex)", "the waiting receive got the echo", g_Receiver.Status,
              STATUS_SUCCESS);
        if (status != STATUS_SUCCESS) {
            return; /* the receiver is still inside: do not reuse its state */
        }
    }
}

/* ---- asynchronous connect ---- */

typedef struct {
    volatile LONG Calls;
    NTSTATUS Status;
    SAFEWSK_SOCKET *Socket;
    KEVENT Done;
} ASYNC_RESULT;

static SAFEWSK_CONNECT_REQUEST g_Request; /* non-paged: the image's data */
static ASYNC_RESULT g_Async;

static VOID WINAPI
AsyncCallback(PVOID Context, NTSTATUS Status, SAFEWSK_SOCKET *Socket)
{
    ASYNC_RESULT *r = (ASYNC_RESULT *)Context;

    r->Status = Status;
    r->Socket = Socket;
    InterlockedIncrement(&r->Calls);
    KeSetEvent(&r->Done, IO_NO_INCREMENT, FALSE); /* last access */
}

static VOID
SleepMs(ULONG Ms)
{
    LARGE_INTEGER t;
    t.QuadPart = -(LONGLONG)Ms * 10000;
    KeDelayExecutionThread(KernelMode, FALSE, &t);
}

/* Starts an asynchronous connect and waits (bounded) for its callback, then
 * 300 ms more to catch a second call. Returns the callback's status. */
static NTSTATUS
AsyncConnect(const char *Case, SAFEWSK_CLIENT *Client, const SOCKADDR *Local, const SOCKADDR *Remote,
             SAFEWSK_SOCKET **Socket)
{
    LARGE_INTEGER timeout;
    NTSTATUS status;

    *Socket = NULL;
    RtlZeroMemory(&g_Async, sizeof(g_Async));
    KeInitializeEvent(&g_Async.Done, NotificationEvent, FALSE);
    RtlZeroMemory(&g_Request, sizeof(g_Request));
    g_Request.Callback = AsyncCallback;
    g_Request.CallbackContext = &g_Async;
    g_Request.TimeoutMs = CONNECT_MS;
    status = SafeWskSocketConnectAsync(Client, SOCK_STREAM, IPPROTO_TCP, Local, Remote, 0, NULL, NULL, NULL, NULL,
                                       NULL, &g_Request);
    Check(status == STATUS_PENDING, Case, "SafeWskSocketConnectAsync returns STATUS_PENDING", status, STATUS_PENDING);
    if (status != STATUS_PENDING) {
        return status;
    }
    timeout.QuadPart = -(LONGLONG)CALLBACK_WAIT_MS * 10000;
    status = KeWaitForSingleObject(&g_Async.Done, Executive, KernelMode, FALSE, &timeout);
    if (status != STATUS_SUCCESS) {
        Check(FALSE, Case, "callback within 15 s", status, STATUS_SUCCESS);
        return STATUS_IO_TIMEOUT;
    }
    SleepMs(300);
    Check(g_Async.Calls == 1, Case, "callback called exactly once", (NTSTATUS)g_Async.Calls, 1);
    *Socket = g_Async.Socket;
    return g_Async.Status;
}

/* ---- the cases ---- */

/* Not a client: zeroed non-paged memory (the image's data), large enough for
 * any read of a client header. */
static ULONG_PTR g_NotAClient[512];

static VOID
ValidationCases(SAFEWSK_CLIENT *Client, SAFEWSK_SOCKET *Socket)
{
    SOCKADDR_IN local, remote, zeroPort, multicast, broadcast;
    SOCKADDR_IN6 remote6;
    SAFEWSK_SOCKET *s = NULL;
    WSK_CLIENT_CONNECTION_DISPATCH empty;
    UCHAR badSd[64];
    char buffer[16];
    ULONG n = 0;
    int context = 0;

    V4(&local, 0, 0);
    V4(&remote, 0x7F000001, g_EchoPort);
    V4(&zeroPort, 0x7F000001, 0);
    V4(&multicast, 0xE0000001, g_EchoPort);
    V4(&broadcast, 0xFFFFFFFF, 0);
    V6Loopback(&remote6, g_EchoPort);
    RtlZeroMemory(&empty, sizeof(empty));
    RtlZeroMemory(badSd, sizeof(badSd)); /* revision 0: not a SECURITY_DESCRIPTOR */

#define CONNECT_ARGS(c, type, proto, l, r, flags, ctx, disp, sd, out)                                               \
    SafeWskSocketConnect((c), (type), (proto), (const SOCKADDR *)(l), (const SOCKADDR *)(r), (flags), (ctx), (disp), \
                         NULL, NULL, (sd), (out), CONNECT_MS)
    Expect("connect param 1 (NULL client)",
           CONNECT_ARGS(NULL, SOCK_STREAM, IPPROTO_TCP, &local, &remote, 0, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_1);
    Expect("connect param 1 (not a client)",
           CONNECT_ARGS((SAFEWSK_CLIENT *)g_NotAClient, SOCK_STREAM, IPPROTO_TCP, &local, &remote, 0, NULL, NULL,
                        NULL, &s),
           STATUS_INVALID_PARAMETER_1);
    Expect("connect param 2 (SOCK_DGRAM)",
           CONNECT_ARGS(Client, SOCK_DGRAM, IPPROTO_TCP, &local, &remote, 0, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_2);
    Expect("connect param 3 (IPPROTO_UDP)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_UDP, &local, &remote, 0, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_3);
    Expect("connect param 4 (NULL local)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, NULL, &remote, 0, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_4);
    Expect("connect param 4 (broadcast local)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &broadcast, &remote, 0, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_4);
    Expect("connect param 5 (family differs from local)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &local, &remote6, 0, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_5);
    Expect("connect param 5 (port 0)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &local, &zeroPort, 0, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_5);
    Expect("connect param 5 (multicast)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &local, &multicast, 0, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_5);
    Expect("connect param 6 (Flags 1)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &local, &remote, 1, NULL, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_6);
    Expect("connect param 7 (context without dispatch)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &local, &remote, 0, &context, NULL, NULL, &s),
           STATUS_INVALID_PARAMETER_7);
    Expect("connect param 8 (empty dispatch)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &local, &remote, 0, &context, &empty, NULL, &s),
           STATUS_INVALID_PARAMETER_8);
    Expect("connect param 11 (not a cached security descriptor)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &local, &remote, 0, NULL, NULL, (PSECURITY_DESCRIPTOR)badSd,
                        &s),
           STATUS_INVALID_PARAMETER_11);
    Expect("connect param 12 (NULL Socket)",
           CONNECT_ARGS(Client, SOCK_STREAM, IPPROTO_TCP, &local, &remote, 0, NULL, NULL, NULL, NULL),
           STATUS_INVALID_PARAMETER_12);
#undef CONNECT_ARGS

    RtlZeroMemory(&g_Request, sizeof(g_Request));
    Expect("async param 1 (NULL client)",
           SafeWskSocketConnectAsync(NULL, SOCK_STREAM, IPPROTO_TCP, (const SOCKADDR *)&local,
                                     (const SOCKADDR *)&remote, 0, NULL, NULL, NULL, NULL, NULL, &g_Request),
           STATUS_INVALID_PARAMETER_1);
    Expect("async param 5 (port 0)",
           SafeWskSocketConnectAsync(Client, SOCK_STREAM, IPPROTO_TCP, (const SOCKADDR *)&local,
                                     (const SOCKADDR *)&zeroPort, 0, NULL, NULL, NULL, NULL, NULL, &g_Request),
           STATUS_INVALID_PARAMETER_5);
    Expect("async param 12 (NULL request)",
           SafeWskSocketConnectAsync(Client, SOCK_STREAM, IPPROTO_TCP, (const SOCKADDR *)&local,
                                     (const SOCKADDR *)&remote, 0, NULL, NULL, NULL, NULL, NULL, NULL),
           STATUS_INVALID_PARAMETER_12);
    Expect("async param 12 (no callback)",
           SafeWskSocketConnectAsync(Client, SOCK_STREAM, IPPROTO_TCP, (const SOCKADDR *)&local,
                                     (const SOCKADDR *)&remote, 0, NULL, NULL, NULL, NULL, NULL, &g_Request),
           STATUS_INVALID_PARAMETER_12);
    g_Request.Callback = AsyncCallback;
    g_Request.Reserved = 1;
    Expect("async param 12 (Reserved not 0)",
           SafeWskSocketConnectAsync(Client, SOCK_STREAM, IPPROTO_TCP, (const SOCKADDR *)&local,
                                     (const SOCKADDR *)&remote, 0, NULL, NULL, NULL, NULL, NULL, &g_Request),
           STATUS_INVALID_PARAMETER_12);
    Expect("cancel param 1 (NULL request)", SafeWskCancelConnect(NULL), STATUS_INVALID_PARAMETER_1);

    /* The socket calls take no client: the socket handle is parameter 1. */
    Expect("send param 1 (NULL socket)", SafeWskSend(NULL, buffer, 1, 0, IO_MS, &n), STATUS_INVALID_PARAMETER_1);
    Expect("send param 2 (NULL buffer)", SafeWskSend(Socket, NULL, 1, 0, IO_MS, &n), STATUS_INVALID_PARAMETER_2);
    Expect("send param 3 (Length 0)", SafeWskSend(Socket, buffer, 0, 0, IO_MS, &n), STATUS_INVALID_PARAMETER_3);
    Expect("send param 4 (bad Flags)", SafeWskSend(Socket, buffer, 1, 0x80, IO_MS, &n),
           STATUS_INVALID_PARAMETER_4);
    Expect("receive param 1 (NULL socket)", SafeWskReceive(NULL, buffer, 1, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_1);
    Expect("receive param 2 (NULL buffer)", SafeWskReceive(Socket, NULL, 1, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_2);
    Expect("receive param 3 (Length 0)", SafeWskReceive(Socket, buffer, 0, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_3);
    Expect("receive param 4 (bad Flags)", SafeWskReceive(Socket, buffer, 1, 0x80, IO_MS, &n),
           STATUS_INVALID_PARAMETER_4);
    Expect("receive param 6 (NULL BytesReceived)", SafeWskReceive(Socket, buffer, 1, 0, IO_MS, NULL),
           STATUS_INVALID_PARAMETER_6);
    Expect("disconnect param 1 (NULL socket)", SafeWskDisconnect(NULL, 0, IO_MS), STATUS_INVALID_PARAMETER_1);
    Expect("disconnect param 2 (bad Flags)", SafeWskDisconnect(Socket, 0x80, IO_MS), STATUS_INVALID_PARAMETER_2);
    Expect("local address param 1 (NULL socket)", SafeWskGetLocalAddress(NULL, (SOCKADDR *)buffer, 16, IO_MS),
           STATUS_INVALID_PARAMETER_1);
    Expect("enable callbacks param 1 (NULL socket)", SafeWskEnableCallbacks(NULL, WSK_EVENT_DISCONNECT),
           STATUS_INVALID_PARAMETER_1);
    Expect("enable callbacks param 2 (EventMask 0)", SafeWskEnableCallbacks(Socket, 0), STATUS_INVALID_PARAMETER_2);
    Expect("disable callbacks param 1 (NULL socket)", SafeWskDisableCallbacks(NULL, WSK_EVENT_DISCONNECT, IO_MS),
           STATUS_INVALID_PARAMETER_1);
    Expect("close param 1 (NULL socket)", SafeWskCloseSocket(NULL), STATUS_INVALID_PARAMETER_1);
    Expect("cleanup param 1 (NULL client)", SafeWskCleanup(NULL), STATUS_INVALID_PARAMETER_1);
    Expect("cleanup param 1 (not a client)", SafeWskCleanup((SAFEWSK_CLIENT *)g_NotAClient),
           STATUS_INVALID_PARAMETER_1);
}

/* ---- socket handles ---- */

/* How often the provider's WskCloseSocket ran on the adapter's sockets.
 * Windows' provider has no adapter in front of it (the kit's build): 0, so
 * the "no provider close" checks hold trivially there and the handle checks
 * stand alone. */
static ULONG
Closes(VOID)
{
#ifdef SAFEWSK_TEST_WINDOWS
    return 0;
#else
    ULONG connects = 0, disconnects = 0, closes = 0;

    WineAdapterCounts(&connects, &disconnects, &closes);
    return closes;
#endif
}

/* A value that is no socket's handle although it has a handle's form: the
 * open socket `Live` with another generation (the top bit of the 24-bit
 * generation, bits 16..39 of the handle in src/handles/mod.rs, flipped).
 * Its slot holds an open socket, but of the generation `Live` names, so no
 * open socket can have this handle. The layout is used only to make a value
 * that is certainly forged; what is checked is the public contract. */
static SAFEWSK_SOCKET *
OtherGeneration(SAFEWSK_SOCKET *Live)
{
    return (SAFEWSK_SOCKET *)((ULONG_PTR)Live ^ ((ULONG_PTR)1 << 39));
}

/* Forged handles while `Socket` is open: a pointer to memory (zeroed image
 * data, as a driver passing a WSK_SOCKET* or a stray pointer would) and a
 * well-formed handle never issued. Each call is refused with
 * STATUS_INVALID_PARAMETER_1 before WSK is called, no close reaches the
 * provider, and the open socket is untouched. */
static VOID
ForgedHandleCases(SAFEWSK_SOCKET *Socket)
{
    SAFEWSK_SOCKET *pointer = (SAFEWSK_SOCKET *)g_NotAClient, *forged = OtherGeneration(Socket);
    SOCKADDR_IN6 address;
    char buffer[8] = {0};
    ULONG n = 0, closes = Closes();

    Expect("send param 1 (a pointer, not a handle)", SafeWskSend(pointer, buffer, 1, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_1);
    Expect("send param 1 (forged handle: an open socket's slot, another generation)",
           SafeWskSend(forged, buffer, 1, 0, IO_MS, &n), STATUS_INVALID_PARAMETER_1);
    Expect("receive param 1 (forged handle)", SafeWskReceive(forged, buffer, 1, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_1);
    Expect("disconnect param 1 (forged handle)", SafeWskDisconnect(forged, WSK_FLAG_ABORTIVE, IO_MS),
           STATUS_INVALID_PARAMETER_1);
    Expect("remote address param 1 (forged handle)",
           SafeWskGetRemoteAddress(forged, (SOCKADDR *)&address, sizeof(address), IO_MS), STATUS_INVALID_PARAMETER_1);
    Expect("enable callbacks param 1 (forged handle)", SafeWskEnableCallbacks(forged, WSK_EVENT_DISCONNECT),
           STATUS_INVALID_PARAMETER_1);
    Expect("close param 1 (a pointer, not a handle)", SafeWskCloseSocket(pointer), STATUS_INVALID_PARAMETER_1);
    Expect("close param 1 (forged handle)", SafeWskCloseSocket(forged), STATUS_INVALID_PARAMETER_1);
    Check(Closes() == closes, "forged handles reach no WskCloseSocket", "provider closes during the forged calls",
          (NTSTATUS)(Closes() - closes), 0);
    EchoRoundTrip("the open socket is untouched by the forged handles", Socket, 16);
}

/* "<What> (<When>)" in Buf (truncated to fit), without the C runtime. */
static const char *
CaseName(char *Buf, ULONG Size, const char *What, const char *When)
{
    ULONG i = 0;

    while (*What != '\0' && i + 1 < Size) {
        Buf[i++] = *What++;
    }
    if (i + 2 < Size) {
        Buf[i++] = ' ';
        Buf[i++] = '(';
    }
    while (*When != '\0' && i + 1 < Size) {
        Buf[i++] = *When++;
    }
    if (i + 1 < Size) {
        Buf[i++] = ')';
    }
    Buf[i] = '\0';
    return Buf;
}

/* `Stale` was closed: every call with it is refused with
 * STATUS_INVALID_PARAMETER_1 (a second close included) and reaches nothing
 * of the provider. */
static VOID
StaleHandleCases(const char *When, SAFEWSK_SOCKET *Stale)
{
    SOCKADDR_IN6 address;
    char buffer[8] = {0};
    ULONG n = 0, closes = Closes();
    char name[96];

#define STALE_CASE(what) CaseName(name, sizeof(name), what, When)
    Expect(STALE_CASE("second close is refused"), SafeWskCloseSocket(Stale), STATUS_INVALID_PARAMETER_1);
    Expect(STALE_CASE("send with a closed socket's handle"), SafeWskSend(Stale, buffer, 1, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_1);
    Expect(STALE_CASE("receive with a closed socket's handle"), SafeWskReceive(Stale, buffer, 1, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_1);
    Expect(STALE_CASE("disconnect with a closed socket's handle"), SafeWskDisconnect(Stale, 0, IO_MS),
           STATUS_INVALID_PARAMETER_1);
    Expect(STALE_CASE("local address with a closed socket's handle"),
           SafeWskGetLocalAddress(Stale, (SOCKADDR *)&address, sizeof(address), IO_MS), STATUS_INVALID_PARAMETER_1);
    Expect(STALE_CASE("disable callbacks with a closed socket's handle"),
           SafeWskDisableCallbacks(Stale, WSK_EVENT_DISCONNECT, IO_MS), STATUS_INVALID_PARAMETER_1);
    Check(Closes() == closes, STALE_CASE("a stale handle reaches no WskCloseSocket"),
          "provider closes during the stale calls", (NTSTATUS)(Closes() - closes), 0);
#undef STALE_CASE
}

/* On x64 the WDK's KeRaiseIrql and KeGetCurrentIrql are inline CR8 writes
 * and reads (wdm.h), and that is how safewsk reads the IRQL. Under Wine the
 * driver runs in a user process and Wine emulates the CR8 access: the case
 * passes only if Wine models the IRQL; otherwise it says what it observed. */
static VOID
IrqlCase(VOID)
{
    SAFEWSK_CLIENT *client = NULL;
    NTSTATUS status;
#ifdef SAFEWSK_TEST_WINDOWS
    KIRQL old;

    KeRaiseIrql(DISPATCH_LEVEL, &old);
    status = SafeWskStartup(g_Device, WSK_NO_WAIT, &client);
    KeLowerIrql(old);
    Check(status == STATUS_INVALID_LEVEL, "startup at DISPATCH_LEVEL", "STATUS_INVALID_LEVEL", status,
          STATUS_INVALID_LEVEL);
    if (NT_SUCCESS(status)) {
        (void)SafeWskCleanup(client);
    }
#else
    ULONG64 raised = 2, seen = 0xFF, zero = 0;

    __asm__ __volatile__("mov %0, %%cr8" : : "r"(raised) : "memory");
    __asm__ __volatile__("mov %%cr8, %0" : "=r"(seen) : : "memory");
    status = SafeWskStartup(g_Device, WSK_NO_WAIT, &client);
    __asm__ __volatile__("mov %0, %%cr8" : : "r"(zero) : "memory");
    if (status == STATUS_INVALID_LEVEL) {
        Check(TRUE, "startup at DISPATCH_LEVEL", "STATUS_INVALID_LEVEL", status, STATUS_INVALID_LEVEL);
        return;
    }
    TEST_PRINT(TEST_PREFIX "  wrote 2 to CR8, read back %u; SafeWskStartup returned 0x%08X\n", (unsigned)seen,
             (unsigned)status);
    if (NT_SUCCESS(status)) {
        (void)SafeWskCleanup(client);
    }
    NotRun("STATUS_INVALID_LEVEL (startup at DISPATCH_LEVEL)",
           "Wine does not model the IRQL: a CR8 write is ignored and CR8 reads 0, so no call can be made above "
           "PASSIVE_LEVEL");
#endif
}

/* SafeWskGetLocalAddress / SafeWskGetRemoteAddress. Wine 8's
 * WskGetLocalAddress and WskGetRemoteAddress are stubs that return
 * STATUS_NOT_IMPLEMENTED without completing the IRP: the library takes the
 * IRP back (after its 50 ms grace), returns that status, writes nothing, and
 * the socket stays usable. */
static VOID
AddressCases(SAFEWSK_SOCKET *Socket)
{
    SOCKADDR_IN6 address;
    NTSTATUS status;

    Expect("local address param 2 (NULL)", SafeWskGetLocalAddress(Socket, NULL, sizeof(address), IO_MS),
           STATUS_INVALID_PARAMETER_2);
    Expect("remote address param 3 (8 bytes)", SafeWskGetRemoteAddress(Socket, (SOCKADDR *)&address, 8, IO_MS),
           STATUS_INVALID_PARAMETER_3);
    RtlFillMemory(&address, sizeof(address), 0xAA);
    status = SafeWskGetLocalAddress(Socket, (SOCKADDR *)&address, sizeof(address), IO_MS);
#ifdef SAFEWSK_TEST_WINDOWS
    {
        const SOCKADDR_IN *v4 = (const SOCKADDR_IN *)&address;
        Check(status == STATUS_SUCCESS && v4->sin_family == AF_INET &&
                  v4->sin_addr.s_addr == RtlUlongByteSwap(0x7F000001) && v4->sin_port != 0,
              "local address", "STATUS_SUCCESS, 127.0.0.1 and a port", status, STATUS_SUCCESS);
        RtlFillMemory(&address, sizeof(address), 0xAA);
        status = SafeWskGetRemoteAddress(Socket, (SOCKADDR *)&address, sizeof(address), IO_MS);
        Check(status == STATUS_SUCCESS && v4->sin_family == AF_INET &&
                  v4->sin_addr.s_addr == RtlUlongByteSwap(0x7F000001) &&
                  v4->sin_port == RtlUshortByteSwap((USHORT)g_EchoPort),
              "remote address", "STATUS_SUCCESS, 127.0.0.1:echo", status, STATUS_SUCCESS);
    }
#else
    Check(status == STATUS_NOT_IMPLEMENTED && ((UCHAR *)&address)[0] == 0xAA,
          "local address on Wine's stub WskGetLocalAddress", "STATUS_NOT_IMPLEMENTED, nothing written", status,
          STATUS_NOT_IMPLEMENTED);
    status = SafeWskGetRemoteAddress(Socket, (SOCKADDR *)&address, sizeof(address), IO_MS);
    Check(status == STATUS_NOT_IMPLEMENTED && ((UCHAR *)&address)[0] == 0xAA,
          "remote address on Wine's stub WskGetRemoteAddress", "STATUS_NOT_IMPLEMENTED, nothing written", status,
          STATUS_NOT_IMPLEMENTED);
#endif
    EchoRoundTrip("socket still usable after the stub address queries", Socket, 8);
}

/* Cached security descriptors. Wine 8's WskControlClient is a stub that
 * returns STATUS_NOT_IMPLEMENTED (dlls/netio.sys/netio.c): the cache returns
 * that status, leaves the out pointer NULL and records nothing, so the same
 * descriptor is still refused by the connect (parameter 11) and by the
 * release (parameter 2). The same stub makes startup fall back to the fixed
 * transport table (.ci/wine checks the DbgPrint line), and every connect of
 * this run went through that fallback. */
static ULONG_PTR g_Sd[8]; /* a SECURITY_DESCRIPTOR (absolute, 40 bytes) of revision 1 */

static VOID
SecurityDescriptorCases(SAFEWSK_CLIENT *Client)
{
    SOCKADDR_IN local, remote;
    PSECURITY_DESCRIPTOR cached = (PSECURITY_DESCRIPTOR)1;
    SAFEWSK_SOCKET *s = NULL;
    NTSTATUS status;

    V4(&local, 0, 0);
    V4(&remote, 0x7F000001, g_EchoPort);
    RtlZeroMemory(g_Sd, sizeof(g_Sd));
    *(UCHAR *)g_Sd = 1; /* SECURITY_DESCRIPTOR_REVISION */
    Expect("cache SD param 1 (NULL client)", SafeWskCacheSecurityDescriptor(NULL, g_Sd, &cached),
           STATUS_INVALID_PARAMETER_1);
    Expect("cache SD param 2 (NULL descriptor)", SafeWskCacheSecurityDescriptor(Client, NULL, &cached),
           STATUS_INVALID_PARAMETER_2);
    Expect("cache SD param 3 (NULL out)", SafeWskCacheSecurityDescriptor(Client, g_Sd, NULL),
           STATUS_INVALID_PARAMETER_3);
    cached = (PSECURITY_DESCRIPTOR)1;
    status = SafeWskCacheSecurityDescriptor(Client, g_Sd, &cached);
#ifdef SAFEWSK_TEST_WINDOWS
    Check(status == STATUS_SUCCESS && cached != NULL && cached != (PSECURITY_DESCRIPTOR)1, "cache SD",
          "STATUS_SUCCESS, the provider's copy", status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        status = SafeWskSocketConnect(Client, SOCK_STREAM, IPPROTO_TCP, (const SOCKADDR *)&local,
                                      (const SOCKADDR *)&remote, 0, NULL, NULL, NULL, NULL, cached, &s, CONNECT_MS);
        Check(status == STATUS_SUCCESS && s != NULL, "connect with the cached SD", "status, Socket set", status,
              STATUS_SUCCESS);
        if (NT_SUCCESS(status)) {
            Expect("close the socket made with the cached SD", SafeWskCloseSocket(s), STATUS_SUCCESS);
        }
        s = NULL;
        Expect("release the cached SD", SafeWskReleaseSecurityDescriptor(Client, cached), STATUS_SUCCESS);
        Expect("release the cached SD again", SafeWskReleaseSecurityDescriptor(Client, cached),
               STATUS_INVALID_PARAMETER_2);
    }
#else
    Check(status == STATUS_NOT_IMPLEMENTED && cached == NULL, "cache SD on Wine's stub WskControlClient",
          "STATUS_NOT_IMPLEMENTED, out NULL", status, STATUS_NOT_IMPLEMENTED);
#endif
    Expect("release SD param 2 (never cached)", SafeWskReleaseSecurityDescriptor(Client, g_Sd),
           STATUS_INVALID_PARAMETER_2);
    status = SafeWskSocketConnect(Client, SOCK_STREAM, IPPROTO_TCP, (const SOCKADDR *)&local,
                                  (const SOCKADDR *)&remote, 0, NULL, NULL, NULL, NULL, g_Sd, &s, CONNECT_MS);
    Check(status == STATUS_INVALID_PARAMETER_11 && s == NULL, "connect with the uncached SD",
          "STATUS_INVALID_PARAMETER_11, no socket", status, STATUS_INVALID_PARAMETER_11);
}

/* SafeWskConnectByName on Wine's native WskGetAddressInfo (a thread-pool
 * GetAddrInfoExW, which reads the UNICODE_STRING buffers as C strings:
 * safewsk passes NUL-terminated copies) and WskFreeAddressInfo
 * (FreeAddrInfoExW). "localhost" may resolve to ::1 before 127.0.0.1; the
 * echo server listens on 127.0.0.1 only, so the address reached must be
 * 127.0.0.1:echo whatever the order (an IPv6 attempt fails on Wine: see
 * the IPv6 case). */
static VOID
ByNameCases(SAFEWSK_CLIENT *Client)
{
    static WCHAR localhost[] = L"localhost", unknown[] = L"no-such-host.invalid";
    WCHAR digits[2][6];
    UNICODE_STRING node, bad, echoService, refusedService;
    SOCKADDR_IN6 reached;
    const UCHAR *b = (const UCHAR *)&reached;
    SAFEWSK_SOCKET *socket = NULL;
    ULONG ports[2], p, i;
    USHORT n, j;
    NTSTATUS status;

    ports[0] = g_EchoPort;
    ports[1] = g_RefusedPort;
    for (i = 0; i < 2; i++) {
        n = 0;
        p = ports[i];
        do {
            digits[i][n++] = (WCHAR)(L'0' + p % 10);
            p /= 10;
        } while (p != 0);
        for (j = 0; j < n / 2; j++) {
            WCHAR t = digits[i][j];
            digits[i][j] = digits[i][n - 1 - j];
            digits[i][n - 1 - j] = t;
        }
        if (i == 0) {
            echoService.Buffer = digits[i];
            echoService.Length = echoService.MaximumLength = (USHORT)(n * sizeof(WCHAR));
        } else {
            refusedService.Buffer = digits[i];
            refusedService.Length = refusedService.MaximumLength = (USHORT)(n * sizeof(WCHAR));
        }
    }
    node.Buffer = localhost;
    node.Length = (USHORT)(sizeof(localhost) - sizeof(WCHAR));
    node.MaximumLength = (USHORT)sizeof(localhost);

    Expect("by name param 2 (NULL NodeName)",
           SafeWskConnectByName(Client, NULL, &echoService, NULL, NULL, &socket, NULL, 0, CONNECT_MS),
           STATUS_INVALID_PARAMETER_2);

    RtlFillMemory(&reached, sizeof(reached), 0xAA);
    status = SafeWskConnectByName(Client, &node, &echoService, NULL, NULL, &socket, (SOCKADDR *)&reached,
                                  sizeof(reached), CONNECT_MS);
    Check(status == STATUS_SUCCESS && socket != NULL, "connect by name to localhost:echo", "status, Socket set",
          status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        TEST_PRINT(TEST_PREFIX "  localhost reached at family %u, %u.%u.%u.%u:%u\n",
                 reached.sin6_family, b[4], b[5], b[6], b[7], (b[2] << 8) | b[3]);
        Check(reached.sin6_family == AF_INET && b[4] == 127 && b[5] == 0 && b[6] == 0 &&
                  b[7] == 1 && (ULONG)((b[2] << 8) | b[3]) == g_EchoPort,
              "connect by name to localhost:echo", "RemoteAddress is 127.0.0.1:echo", status, STATUS_SUCCESS);
        EchoRoundTrip("send/receive on the by-name socket", socket, 32);
        Expect("close the by-name socket", SafeWskCloseSocket(socket), STATUS_SUCCESS);
    }
    socket = NULL;

    status = SafeWskConnectByName(Client, &node, &refusedService, NULL, NULL, &socket, NULL, 0, CONNECT_MS);
    TEST_PRINT(TEST_PREFIX "  localhost:refused by name returned 0x%08X\n", (unsigned)status);
    Check(!NT_SUCCESS(status) && status != STATUS_IO_TIMEOUT && socket == NULL, "connect by name to localhost:refused",
          "the last attempt's failure, Socket NULL", status, STATUS_CONNECTION_REFUSED);

    bad.Buffer = unknown;
    bad.Length = (USHORT)(sizeof(unknown) - sizeof(WCHAR));
    bad.MaximumLength = (USHORT)sizeof(unknown);
    status = SafeWskConnectByName(Client, &bad, &echoService, NULL, NULL, &socket, NULL, 0, CONNECT_MS);
    Check(status == STATUS_NOT_FOUND && socket == NULL, "connect by name to an unknown name",
          "STATUS_NOT_FOUND (Windows 8+), Socket NULL", status, STATUS_NOT_FOUND);
}

/* SafeWskSocketConnectWithOptions under Wine 8's netio.sys, which
 * implements WskSocket, WskBind and WskConnect natively but whose
 * WskControlSocket is a stub: FIXME("... stub.") and STATUS_NOT_IMPLEMENTED,
 * returned without completing the IRP (Wine 8.0, dlls/netio.sys/netio.c).
 * Without options the call is WskSocket -> WskBind -> WskConnect on Wine's
 * own code; with an option it fails at the first WskControlSocket with
 * Wine's STATUS_NOT_IMPLEMENTED (the library takes the IRP back after its
 * 50 ms grace) and closes the half-made socket with Wine's WskCloseSocket
 * (had that close failed, the socket would be the library's, and cleanup
 * would close it). No handle is handed out for a failed connect. */
static VOID
OptionsCases(SAFEWSK_CLIENT *Client, const SOCKADDR *Local, const SOCKADDR *Echo, const SOCKADDR *Refused)
{
    SAFEWSK_SOCKET_OPTIONS options;
    SAFEWSK_SOCKET *socket = NULL;
    NTSTATUS status;

    RtlZeroMemory(&options, sizeof(options));
    options.Size = sizeof(options) + 4;
    status = SafeWskSocketConnectWithOptions(Client, Local, Echo, &options, NULL, NULL, &socket, CONNECT_MS);
    Check(status == STATUS_INVALID_PARAMETER_4 && socket == NULL, "options connect param 4 (Size)",
          "STATUS_INVALID_PARAMETER_4, Socket NULL", status, STATUS_INVALID_PARAMETER_4);

    status = SafeWskSocketConnectWithOptions(Client, Local, Echo, NULL, NULL, NULL, &socket, CONNECT_MS);
    Check(status == STATUS_SUCCESS && socket != NULL, "options connect without options (Wine's WskSocket, WskBind, "
          "WskConnect)", "status, Socket set", status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        EchoRoundTrip("options connect: send/receive", socket, 32);
        Expect("options connect: close", SafeWskCloseSocket(socket), STATUS_SUCCESS);
    }
    socket = NULL;

    status = SafeWskSocketConnectWithOptions(Client, Local, Refused, NULL, NULL, NULL, &socket, CONNECT_MS);
    Check(status == STATUS_CONNECTION_REFUSED && socket == NULL, "options connect to a refused port",
          "Wine's WskConnect status, Socket NULL, socket closed", status, STATUS_CONNECTION_REFUSED);

    options.Size = sizeof(options);
    options.Mask = SAFEWSK_OPTION_KEEPALIVE;
    options.KeepAlive = 1;
    status = SafeWskSocketConnectWithOptions(Client, Local, Echo, &options, NULL, NULL, &socket, CONNECT_MS);
#ifdef SAFEWSK_TEST_WINDOWS
    Check(status == STATUS_SUCCESS && socket != NULL, "options connect with SO_KEEPALIVE", "status, Socket set",
          status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        EchoRoundTrip("options connect with SO_KEEPALIVE: send/receive", socket, 32);
        Expect("options connect with SO_KEEPALIVE: close", SafeWskCloseSocket(socket), STATUS_SUCCESS);
    }
#else
    Check(status == STATUS_NOT_IMPLEMENTED && socket == NULL, "options connect with SO_KEEPALIVE on Wine's stub "
          "WskControlSocket", "STATUS_NOT_IMPLEMENTED, Socket NULL, socket closed", status, STATUS_NOT_IMPLEMENTED);
#endif
}

/* SafeWskEnableCallbacks / SafeWskDisableCallbacks under Wine 8, whose
 * WskControlSocket is a stub (STATUS_NOT_IMPLEMENTED, IRP not completed):
 * enabling (no IRP) returns Wine's status; disabling (one IRP per flag) gets
 * the IRP back after the library's grace and returns the same status; the
 * library's own check of the socket's Dispatch table needs no provider. */
static volatile LONG g_EventCalls;

static NTSTATUS WINAPI
WineTestDisconnectEvent(PVOID SocketContext, ULONG Flags)
{
    UNREFERENCED_PARAMETER(SocketContext);
    UNREFERENCED_PARAMETER(Flags);
    InterlockedIncrement(&g_EventCalls);
    return STATUS_SUCCESS;
}

static const WSK_CLIENT_CONNECTION_DISPATCH g_DisconnectOnly = {NULL, WineTestDisconnectEvent, NULL};

static VOID
EventCases(SAFEWSK_CLIENT *Client, const SOCKADDR *Local, const SOCKADDR *Echo)
{
    SAFEWSK_SOCKET *socket = NULL;
    NTSTATUS status;

    status = SafeWskSocketConnect(Client, SOCK_STREAM, IPPROTO_TCP, Local, Echo, 0, NULL, &g_DisconnectOnly, NULL,
                                  NULL, NULL, &socket, CONNECT_MS);
    Expect("connect with a Dispatch table", status, STATUS_SUCCESS);
    if (!NT_SUCCESS(status)) {
        return;
    }
    Expect("enable a callback the table lacks (WskReceiveEvent)",
           SafeWskEnableCallbacks(socket, WSK_EVENT_RECEIVE), STATUS_INVALID_PARAMETER_2);
#ifdef SAFEWSK_TEST_WINDOWS
    Expect("enable WskDisconnectEvent", SafeWskEnableCallbacks(socket, WSK_EVENT_DISCONNECT),
           STATUS_SUCCESS);
    Expect("disable WskDisconnectEvent", SafeWskDisableCallbacks(socket, WSK_EVENT_DISCONNECT, IO_MS),
           STATUS_SUCCESS);
#else
    Expect("enable WskDisconnectEvent on Wine's stub WskControlSocket",
           SafeWskEnableCallbacks(socket, WSK_EVENT_DISCONNECT), STATUS_NOT_IMPLEMENTED);
    Expect("disable WskDisconnectEvent on Wine's stub WskControlSocket",
           SafeWskDisableCallbacks(socket, WSK_EVENT_DISCONNECT, IO_MS), STATUS_NOT_IMPLEMENTED);
#endif
    EchoRoundTrip("socket still usable after the stub event calls", socket, 16);
    Expect("close the socket with a Dispatch table", SafeWskCloseSocket(socket), STATUS_SUCCESS);
#ifdef SAFEWSK_TEST_WINDOWS
    Check(g_EventCalls == 0, "no disconnect callback", "the peer never disconnected while it was enabled",
          (NTSTATUS)g_EventCalls, 0);
#else
    Check(g_EventCalls == 0, "no callback on Wine", "callbacks never enabled", (NTSTATUS)g_EventCalls, 0);
#endif
}


/* ---- listening and datagram sockets, resolution without a connect ----
 *
 * Wine 8's netio has listening sockets (WskSocket(WSK_FLAG_LISTEN_SOCKET),
 * WskBind, which also listens, and WskAccept over AcceptEx) but no datagram
 * sockets (WskSocket returns and completes STATUS_NOT_IMPLEMENTED for
 * WSK_FLAG_DATAGRAM_SOCKET), and its WskControlSocket and listening
 * WskGetLocalAddress are stubs (STATUS_NOT_IMPLEMENTED, IRP not completed):
 * each such deviation is checked for what Wine returns, and what cannot run
 * is listed as NOT RUN. The listening sockets use fixed free ports
 * (ListenPort1..3 from .ci/wine: Wine cannot report a port the stack
 * chose), and the connections to them are the adapter's WskSocketConnect
 * from this same driver. */

static SAFEWSK_ACCEPT_REQUEST g_AcceptRequest; /* non-paged: the image's data */
static ASYNC_RESULT g_AcceptResult;

static VOID WINAPI
AcceptCallback(PVOID Context, NTSTATUS Status, SAFEWSK_SOCKET *Socket)
{
    ASYNC_RESULT *r = (ASYNC_RESULT *)Context;

    r->Status = Status;
    r->Socket = Socket;
    InterlockedIncrement(&r->Calls);
    KeSetEvent(&r->Done, IO_NO_INCREMENT, FALSE); /* last access */
}

static NTSTATUS
StartAccept(SAFEWSK_SOCKET *Listener)
{
    RtlZeroMemory(&g_AcceptResult, sizeof(g_AcceptResult));
    KeInitializeEvent(&g_AcceptResult.Done, NotificationEvent, FALSE);
    RtlZeroMemory(&g_AcceptRequest, sizeof(g_AcceptRequest));
    g_AcceptRequest.Callback = AcceptCallback;
    g_AcceptRequest.CallbackContext = &g_AcceptResult;
    /* No deadline: Wine's netio sets no cancel routine, an expired accept
     * could not be cancelled. */
    g_AcceptRequest.TimeoutMs = SAFEWSK_NO_TIMEOUT;
    return SafeWskAcceptAsync(Listener, NULL, NULL, &g_AcceptRequest);
}

static BOOLEAN
WaitAccept(const char *Case)
{
    LARGE_INTEGER timeout;
    NTSTATUS status;

    timeout.QuadPart = -(LONGLONG)CALLBACK_WAIT_MS * 10000;
    status = KeWaitForSingleObject(&g_AcceptResult.Done, Executive, KernelMode, FALSE, &timeout);
    Check(status == STATUS_SUCCESS, Case, "accept callback within 15 s", status, STATUS_SUCCESS);
    return status == STATUS_SUCCESS;
}

/* A synchronous accept with no deadline on a system thread, for the close
 * that ends it. */
typedef struct {
    SAFEWSK_SOCKET *Listener;
    SAFEWSK_SOCKET *Socket;
    NTSTATUS Status;
    KEVENT Done;
} ACCEPTER;
static ACCEPTER g_Accepter;

static VOID WINAPI
AccepterThread(PVOID Context)
{
    ACCEPTER *a = (ACCEPTER *)Context;

    a->Status = SafeWskAccept(a->Listener, NULL, NULL, &a->Socket, NULL, NULL, SAFEWSK_NO_TIMEOUT);
    KeSetEvent(&a->Done, IO_NO_INCREMENT, FALSE);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static VOID
ServerValidationCases(SAFEWSK_CLIENT *Client, SAFEWSK_SOCKET *Connection)
{
    SOCKADDR_IN local, multicast;
    SAFEWSK_SOCKET_OPTIONS options;
    SAFEWSK_SOCKET *s = NULL;
    SAFEWSK_ADDRESS addresses[2];
    UNICODE_STRING node, service;
    WSK_CLIENT_CONNECTION_DISPATCH empty;
    char buffer[8];
    ULONG n = 0;

    V4(&local, 0x7F000001, 0);
    V4(&multicast, 0xE0000001, 0);
    RtlZeroMemory(&options, sizeof(options));
    RtlZeroMemory(&empty, sizeof(empty));
    RtlInitUnicodeString(&node, L"localhost");
    RtlInitUnicodeString(&service, L"0");
    Expect("listen param 1 (NULL client)", SafeWskListen(NULL, (SOCKADDR *)&local, NULL, &s, IO_MS),
           STATUS_INVALID_PARAMETER_1);
    Expect("listen param 2 (NULL address)", SafeWskListen(Client, NULL, NULL, &s, IO_MS), STATUS_INVALID_PARAMETER_2);
    Expect("listen param 2 (multicast)", SafeWskListen(Client, (SOCKADDR *)&multicast, NULL, &s, IO_MS),
           STATUS_INVALID_PARAMETER_2);
    options.Size = 3;
    Expect("listen param 3 (options Size)", SafeWskListen(Client, (SOCKADDR *)&local, &options, &s, IO_MS),
           STATUS_INVALID_PARAMETER_3);
    Expect("listen param 4 (NULL Socket)", SafeWskListen(Client, (SOCKADDR *)&local, NULL, NULL, IO_MS),
           STATUS_INVALID_PARAMETER_4);
    Expect("accept param 1 (NULL)", SafeWskAccept(NULL, NULL, NULL, &s, NULL, NULL, 0), STATUS_INVALID_PARAMETER_1);
    Expect("accept param 1 (a connection socket)", SafeWskAccept(Connection, NULL, NULL, &s, NULL, NULL, 0),
           STATUS_INVALID_PARAMETER_1);
    Expect("async accept param 1 (a connection socket)", SafeWskAcceptAsync(Connection, NULL, NULL, &g_AcceptRequest),
           STATUS_INVALID_PARAMETER_1);
    Expect("cancel accept param 1 (NULL)", SafeWskCancelAccept(NULL), STATUS_INVALID_PARAMETER_1);
    Expect("datagram socket param 1 (NULL client)", SafeWskDatagramSocket(NULL, (SOCKADDR *)&local, NULL, &s, IO_MS),
           STATUS_INVALID_PARAMETER_1);
    options.Size = sizeof(options);
    options.Mask = SAFEWSK_OPTION_KEEPALIVE;
    options.KeepAlive = 1;
    Expect("datagram socket param 3 (SO_KEEPALIVE)",
           SafeWskDatagramSocket(Client, (SOCKADDR *)&local, &options, &s, IO_MS), STATUS_INVALID_PARAMETER_3);
    Expect("send-to param 1 (a connection socket)",
           SafeWskSendTo(Connection, buffer, sizeof(buffer), 0, (SOCKADDR *)&local, IO_MS, &n),
           STATUS_INVALID_PARAMETER_1);
    Expect("receive-from param 1 (a connection socket)",
           SafeWskReceiveFrom(Connection, buffer, sizeof(buffer), 0, NULL, IO_MS, &n), STATUS_INVALID_PARAMETER_1);
    Expect("resolve param 4 (family)", SafeWskResolveName(Client, &node, &service, 7, addresses, 2, &n, IO_MS),
           STATUS_INVALID_PARAMETER_4);
    Expect("resolve param 6 (AddressCount 0)", SafeWskResolveName(Client, &node, &service, AF_INET, addresses, 0, &n,
                                                                    IO_MS),
           STATUS_INVALID_PARAMETER_6);
}

static VOID
ServerCases(SAFEWSK_CLIENT *Client, const SOCKADDR *Local, const SOCKADDR *Echo)
{
    SOCKADDR_IN at, any;
    SAFEWSK_SOCKET_OPTIONS none;
    SAFEWSK_SOCKET *listener = NULL, *conn = NULL, *accepted = NULL, *dgram = NULL, *echo = NULL;
    SAFEWSK_CLIENT *other = NULL;
    SAFEWSK_ADDRESS address, resolved[4];
    UNICODE_STRING node, service;
    HANDLE thread;
    LARGE_INTEGER timeout;
    SOCKADDR_IN *sin;
    char buf[16];
    ULONG n = 0, got, rounds;
    NTSTATUS status;

    RtlZeroMemory(&none, sizeof(none));
    none.Size = sizeof(none);
    V4(&at, 0x7F000001, g_ListenPort[0]);
    V4(&any, 0, 0);

    status = SafeWskSocketConnect(Client, SOCK_STREAM, IPPROTO_TCP, Local, Echo, 0, NULL, NULL, NULL, NULL, NULL,
                                  &echo, CONNECT_MS);
    Expect("server cases: a connection socket for the kind checks", status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        ServerValidationCases(Client, echo);
        Expect("server cases: close the connection socket", SafeWskCloseSocket(echo), STATUS_SUCCESS);
    }

    /* The default options set SO_EXCLUSIVEADDRUSE: Wine's stub
     * WskControlSocket refuses it, and the half-made socket is closed;
     * Windows sets it. */
    status = SafeWskListen(Client, (SOCKADDR *)&at, NULL, &listener, IO_MS);
#ifdef SAFEWSK_TEST_WINDOWS
    Check(status == STATUS_SUCCESS && listener != NULL, "listen with the default options (SO_EXCLUSIVEADDRUSE)",
          "status, Socket set", status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        Expect("close the listening socket made with the default options", SafeWskCloseSocket(listener),
               STATUS_SUCCESS);
    }
    listener = NULL;
#else
    Check(status == STATUS_NOT_IMPLEMENTED && listener == NULL,
          "listen with the default options (SO_EXCLUSIVEADDRUSE) on Wine's stub WskControlSocket",
          "STATUS_NOT_IMPLEMENTED, Socket NULL", status, STATUS_NOT_IMPLEMENTED);
#endif

    status = SafeWskListen(Client, (SOCKADDR *)&at, &none, &listener, IO_MS);
    Check(status == STATUS_SUCCESS && listener != NULL, "listen without options (Wine's WskSocket, WskBind)",
          "status, Socket set", status, STATUS_SUCCESS);
    if (!NT_SUCCESS(status)) {
        return;
    }
    Expect("a listening socket refuses SafeWskSend", SafeWskSend(listener, buf, 1, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_1);
    status = SafeWskGetLocalAddress(listener, (SOCKADDR *)&address, sizeof(address), IO_MS);
#ifdef SAFEWSK_TEST_WINDOWS
    sin = (SOCKADDR_IN *)&address;
    Check(status == STATUS_SUCCESS && sin->sin_family == AF_INET &&
              RtlUshortByteSwap(sin->sin_port) == g_ListenPort[0],
          "local address of a listening socket", "STATUS_SUCCESS, the listening port", status, STATUS_SUCCESS);
#else
    Check(status == STATUS_NOT_IMPLEMENTED, "local address of a listening socket on Wine's stub",
          "STATUS_NOT_IMPLEMENTED (Wine's listening WskGetLocalAddress is a stub)", status, STATUS_NOT_IMPLEMENTED);
#endif

    /* Asynchronous accept, then a connection to it. */
    status = StartAccept(listener);
    Expect("async accept returns STATUS_PENDING", status, STATUS_PENDING);
    if (status == STATUS_PENDING) {
        status = SafeWskSocketConnect(Client, SOCK_STREAM, IPPROTO_TCP, (SOCKADDR *)&any, (SOCKADDR *)&at, 0, NULL,
                                      NULL, NULL, NULL, NULL, &conn, CONNECT_MS);
        Expect("connect to the listening socket", status, STATUS_SUCCESS);
        if (WaitAccept("async accept")) {
            SleepMs(300);
            Check(g_AcceptResult.Calls == 1 && g_AcceptResult.Status == STATUS_SUCCESS && g_AcceptResult.Socket,
                  "async accept", "one callback, STATUS_SUCCESS, a socket", g_AcceptResult.Status, STATUS_SUCCESS);
            sin = (SOCKADDR_IN *)&g_AcceptRequest.LocalAddress;
            Check(sin->sin_family == AF_INET && RtlUshortByteSwap(sin->sin_port) == g_ListenPort[0],
                  "async accept", "LocalAddress is the listening port", (NTSTATUS)RtlUshortByteSwap(sin->sin_port),
                  (NTSTATUS)g_ListenPort[0]);
            sin = (SOCKADDR_IN *)&g_AcceptRequest.RemoteAddress;
            Check(sin->sin_family == AF_INET && sin->sin_addr.s_addr == RtlUlongByteSwap(0x7F000001), "async accept",
                  "RemoteAddress is 127.0.0.1", (NTSTATUS)sin->sin_family, AF_INET);
            accepted = g_AcceptResult.Socket;
        }
        if (accepted != NULL && conn != NULL) {
            status = SafeWskSend(conn, "accepted", 8, 0, IO_MS, &n);
            Expect("send to the accepted socket", status, STATUS_SUCCESS);
            got = 0;
            for (rounds = 0; got < 8 && rounds < 16; rounds++) {
                status = SafeWskReceive(accepted, buf + got, 8 - got, 0, IO_MS, &n);
                if (status != STATUS_SUCCESS || n == 0) {
                    break;
                }
                got += n;
            }
            Check(got == 8 && RtlCompareMemory(buf, "accepted", 8) == 8, "receive on the accepted socket",
                  "the 8 bytes", status, STATUS_SUCCESS);
            status = SafeWskSend(accepted, "back", 4, 0, IO_MS, &n);
            Expect("send from the accepted socket", status, STATUS_SUCCESS);
            got = 0;
            for (rounds = 0; got < 4 && rounds < 16; rounds++) {
                status = SafeWskReceive(conn, buf + got, 4 - got, 0, IO_MS, &n);
                if (status != STATUS_SUCCESS || n == 0) {
                    break;
                }
                got += n;
            }
            Check(got == 4 && RtlCompareMemory(buf, "back", 4) == 4, "receive from the accepted socket",
                  "the 4 bytes", status, STATUS_SUCCESS);
        }
        if (accepted != NULL) {
            Expect("close the accepted socket", SafeWskCloseSocket(accepted), STATUS_SUCCESS);
            accepted = NULL;
        }
        if (conn != NULL) {
            Expect("close the connecting socket", SafeWskCloseSocket(conn), STATUS_SUCCESS);
            conn = NULL;
        }
    }

    /* Synchronous accept of a connection already waiting. */
    status = SafeWskSocketConnect(Client, SOCK_STREAM, IPPROTO_TCP, (SOCKADDR *)&any, (SOCKADDR *)&at, 0, NULL, NULL,
                                  NULL, NULL, NULL, &conn, CONNECT_MS);
    Expect("connect to the listening socket again", status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        RtlZeroMemory(&address, sizeof(address));
        status = SafeWskAccept(listener, NULL, NULL, &accepted, NULL, &address, IO_MS);
        sin = (SOCKADDR_IN *)&address;
        Check(status == STATUS_SUCCESS && accepted != NULL && sin->sin_family == AF_INET, "synchronous accept",
              "status, Socket, RemoteAddress", status, STATUS_SUCCESS);
        if (accepted != NULL) {
            Expect("close the synchronously accepted socket", SafeWskCloseSocket(accepted), STATUS_SUCCESS);
        }
        Expect("close its peer", SafeWskCloseSocket(conn), STATUS_SUCCESS);
        conn = NULL;
    }

    /* A synchronous accept waiting (no deadline) on another thread: the
     * close of the listening socket ends it with STATUS_CANCELLED. */
    KeInitializeEvent(&g_Accepter.Done, NotificationEvent, FALSE);
    g_Accepter.Listener = listener;
    g_Accepter.Socket = NULL;
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, AccepterThread, &g_Accepter);
    if (!NT_SUCCESS(status)) {
        NotRun("close of a listening socket with an accept waiting", "PsCreateSystemThread failed");
        Expect("close the listening socket", SafeWskCloseSocket(listener), STATUS_SUCCESS);
    } else {
        ZwClose(thread);
        SleepMs(300); /* let the accept reach Wine's AcceptEx */
        Expect("close the listening socket with an accept waiting", SafeWskCloseSocket(listener), STATUS_SUCCESS);
        timeout.QuadPart = -20LL * 10 * 1000 * 1000;
        status = KeWaitForSingleObject(&g_Accepter.Done, Executive, KernelMode, FALSE, &timeout);
        Check(status == STATUS_SUCCESS && g_Accepter.Status == STATUS_CANCELLED && g_Accepter.Socket == NULL,
              "the waiting accept ends with the close", "STATUS_CANCELLED", g_Accepter.Status, STATUS_CANCELLED);
    }
    Expect("accept on the closed listening socket", SafeWskAccept(listener, NULL, NULL, &accepted, NULL, NULL, 0),
           STATUS_INVALID_PARAMETER_1);
    listener = NULL;

    /* SafeWskCleanup of a client with a listening socket and an accept
     * pending: the listening socket is closed first, the callback comes
     * (STATUS_CANCELLED) before cleanup returns. */
    status = SafeWskStartup(g_Device, WSK_NO_WAIT, &other);
    Expect("a client for the cleanup case", status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        V4(&at, 0x7F000001, g_ListenPort[1]);
        status = SafeWskListen(other, (SOCKADDR *)&at, &none, &listener, IO_MS);
        Expect("listen (cleanup case)", status, STATUS_SUCCESS);
        if (NT_SUCCESS(status)) {
            Expect("async accept (cleanup case)", StartAccept(listener), STATUS_PENDING);
        }
        Expect("cleanup with a listening socket and an accept pending", SafeWskCleanup(other), STATUS_SUCCESS);
        if (listener != NULL) {
            Check(g_AcceptResult.Calls == 1 && g_AcceptResult.Status == STATUS_CANCELLED,
                  "cleanup with a listening socket and an accept pending",
                  "the callback came, STATUS_CANCELLED, before cleanup returned", g_AcceptResult.Status,
                  STATUS_CANCELLED);
        }
        listener = NULL;
    }

#ifdef SAFEWSK_TEST_WINDOWS
    /* Datagram sockets: one sends a datagram to itself. */
    V4(&at, 0x7F000001, 0);
    status = SafeWskDatagramSocket(Client, (SOCKADDR *)&at, &none, &dgram, IO_MS);
    Check(status == STATUS_SUCCESS && dgram != NULL, "datagram socket", "status, Socket set", status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        status = SafeWskGetLocalAddress(dgram, (SOCKADDR *)&address, sizeof(address), IO_MS);
        sin = (SOCKADDR_IN *)&address;
        Check(status == STATUS_SUCCESS && sin->sin_family == AF_INET && sin->sin_port != 0,
              "local address of a datagram socket", "STATUS_SUCCESS, a port", status, STATUS_SUCCESS);
        if (NT_SUCCESS(status)) {
            status = SafeWskSendTo(dgram, "datagram", 8, 0, (SOCKADDR *)&address, IO_MS, &n);
            Check(status == STATUS_SUCCESS && n == 8, "send a datagram to itself", "8 bytes sent", status,
                  STATUS_SUCCESS);
            n = 0;
            RtlZeroMemory(resolved, sizeof(resolved));
            status = SafeWskReceiveFrom(dgram, buf, sizeof(buf), 0, &resolved[0], IO_MS, &n);
            Check(status == STATUS_SUCCESS && n == 8 && RtlCompareMemory(buf, "datagram", 8) == 8 &&
                      ((SOCKADDR_IN *)&resolved[0])->sin_port == sin->sin_port,
                  "receive the datagram", "the 8 bytes, from its own port", status, STATUS_SUCCESS);
            status = SafeWskReceiveFrom(dgram, buf, sizeof(buf), 0, NULL, 200, &n);
            Expect("receive with no datagram waiting", status, STATUS_IO_TIMEOUT);
        }
        Expect("close the datagram socket", SafeWskCloseSocket(dgram), STATUS_SUCCESS);
    }
    dgram = NULL;
#else
    /* Datagram sockets: Wine 8's WskSocket has none. */
    status = SafeWskDatagramSocket(Client, (SOCKADDR *)&any, &none, &dgram, IO_MS);
    Check(status == STATUS_NOT_IMPLEMENTED && dgram == NULL, "datagram socket on Wine's WskSocket",
          "STATUS_NOT_IMPLEMENTED (Wine 8's WskSocket lacks WSK_FLAG_DATAGRAM_SOCKET)", status,
          STATUS_NOT_IMPLEMENTED);
    if (dgram != NULL) {
        (void)SafeWskCloseSocket(dgram);
    }
    NotRun("SafeWskSendTo / SafeWskReceiveFrom",
           "Wine 8's netio has no datagram sockets (WskSocket: STATUS_NOT_IMPLEMENTED for WSK_FLAG_DATAGRAM_SOCKET)");
    NotRun("accept deadline (STATUS_IO_TIMEOUT) and SafeWskCancelAccept",
           "Wine's netio sets no cancel routines: IoCancelIrp cannot complete a pending WskAccept");
    NotRun("IPv6 listening socket", "Wine 8's WskBind passes sizeof(SOCKADDR) (16) as the address length");
    NotRun("a listening socket on port 0", "Wine 8's listening WskGetLocalAddress is a stub: the port is unknown");
#endif

    /* Resolution without a connect. */
    RtlInitUnicodeString(&node, L"localhost");
    RtlInitUnicodeString(&service, L"7");
    RtlZeroMemory(resolved, sizeof(resolved));
    n = 0;
    status = SafeWskResolveName(Client, &node, &service, AF_INET, resolved, 4, &n, IO_MS);
    sin = (SOCKADDR_IN *)&resolved[0];
    Check(status == STATUS_SUCCESS && n >= 1 && sin->sin_family == AF_INET && RtlUshortByteSwap(sin->sin_port) == 7 &&
              sin->sin_addr.s_addr == RtlUlongByteSwap(0x7F000001),
          "resolve localhost (AF_INET) without connecting", "127.0.0.1:7", status, STATUS_SUCCESS);
    TEST_PRINT(TEST_PREFIX "  resolve localhost: %u address(es)\n", n);
    RtlInitUnicodeString(&node, L"nothing.invalid");
    status = SafeWskResolveName(Client, &node, &service, AF_UNSPEC, resolved, 4, &n, IO_MS);
    Check(status != STATUS_SUCCESS && n == 0, "resolve a name that does not exist", "a failure, no address", status,
          STATUS_NOT_FOUND);
}

static VOID
RunCases(VOID)
{
    SAFEWSK_CLIENT *client = NULL, *second = NULL, *cleanedUp;
    SAFEWSK_SOCKET *socket = NULL, *asyncSocket = NULL, *stale = NULL, *leftOpen[2] = {NULL, NULL};
    SOCKADDR_IN local, echo, refused;
    SOCKADDR_IN6 local6, echo6;
    ULONG connects = 0, disconnects = 0, closes = 0, n = 0, i, kept;
    char byte;
    NTSTATUS status;

    V4(&local, 0, 0);
    V4(&echo, 0x7F000001, g_EchoPort);
    V4(&refused, 0x7F000001, g_RefusedPort);

    Expect("startup param 1 (NULL device object)", SafeWskStartup(NULL, WSK_NO_WAIT, &client),
           STATUS_INVALID_PARAMETER_1);
    Expect("startup param 1 (not a device object)",
           SafeWskStartup((PDEVICE_OBJECT)g_NotAClient, WSK_NO_WAIT, &client), STATUS_INVALID_PARAMETER_1);
    Expect("startup param 3 (NULL Client)", SafeWskStartup(g_Device, WSK_NO_WAIT, NULL), STATUS_INVALID_PARAMETER_3);
    status = SafeWskStartup(g_Device, WSK_NO_WAIT, &client);
    Expect("startup", status, STATUS_SUCCESS);
    if (!NT_SUCCESS(status)) {
        return;
    }

    status = Connect(client, (SOCKADDR *)&local, (SOCKADDR *)&refused, &socket);
    Check(status == STATUS_CONNECTION_REFUSED && socket == NULL, "connect to a refused port",
          "Wine's status, Socket NULL", status, STATUS_CONNECTION_REFUSED);

    status = Connect(client, (SOCKADDR *)&local, (SOCKADDR *)&echo, &socket);
    Check(status == STATUS_SUCCESS && socket != NULL, "connect to the IPv4 echo server", "status, Socket set",
          status, STATUS_SUCCESS);
    if (!NT_SUCCESS(status)) {
        (void)SafeWskCleanup(client);
        return;
    }
    ValidationCases(client, socket);
    SecurityDescriptorCases(client);
    EchoRoundTrip("send/receive 1 byte", socket, 1);
    EchoRoundTrip("send/receive 3000 bytes", socket, 3000);
    FullDuplexCase(socket);
    AddressCases(socket);
    ForgedHandleCases(socket);

#ifdef SAFEWSK_TEST_WINDOWS
    {
        /* On a socket of its own (whatever the cancellation does to the
         * connection): nothing was sent, so the echo server sends nothing,
         * the receive times out, its IRP is cancelled and waited for. */
        SAFEWSK_SOCKET *idle = NULL;
        status = Connect(client, (SOCKADDR *)&local, (SOCKADDR *)&echo, &idle);
        Expect("connect for the receive timeout", status, STATUS_SUCCESS);
        if (NT_SUCCESS(status)) {
            n = 0;
            status = SafeWskReceive(idle, &byte, 1, 0, 300, &n);
            Check(status == STATUS_IO_TIMEOUT && n == 0, "receive timeout (300 ms)", "STATUS_IO_TIMEOUT, 0 bytes",
                  status, STATUS_IO_TIMEOUT);
            Expect("close after the receive timeout", SafeWskCloseSocket(idle), STATUS_SUCCESS);
        }
    }
#endif
    Expect("graceful disconnect", SafeWskDisconnect(socket, 0, IO_MS), STATUS_SUCCESS);
    status = SafeWskReceive(socket, &byte, 1, 0, IO_MS, &n);
    Check(status == STATUS_SUCCESS && n == 0, "receive after disconnect sees the peer's close",
          "STATUS_SUCCESS with 0 bytes", status, STATUS_SUCCESS);
    closes = Closes();
    Expect("close", SafeWskCloseSocket(socket), STATUS_SUCCESS);
    Check(Closes() == closes + 1, "close", "one WskCloseSocket", (NTSTATUS)(Closes() - closes), 1);
    /* The close consumed the handle. */
    stale = socket;
    socket = NULL;
    StaleHandleCases("right after the close", stale);

    status = AsyncConnect("async connect to the echo server", client, (SOCKADDR *)&local, (SOCKADDR *)&echo,
                          &asyncSocket);
    Check(status == STATUS_SUCCESS && asyncSocket != NULL, "async connect to the echo server",
          "callback status STATUS_SUCCESS with a socket", status, STATUS_SUCCESS);
    if (asyncSocket != NULL) {
        EchoRoundTrip("send/receive on the async socket", asyncSocket, 100);
        Expect("close the async socket", SafeWskCloseSocket(asyncSocket), STATUS_SUCCESS);
    }
    status = AsyncConnect("async connect to a refused port", client, (SOCKADDR *)&local, (SOCKADDR *)&refused,
                          &asyncSocket);
    Check(status == STATUS_CONNECTION_REFUSED && asyncSocket == NULL, "async connect to a refused port",
          "callback status STATUS_CONNECTION_REFUSED, no socket", status, STATUS_CONNECTION_REFUSED);

    ByNameCases(client);

    if (g_Echo6Port == 0) {
        NotRun("IPv6 connect", "the Linux host has no ::1 loopback");
    } else {
        V6Loopback(&echo6, g_Echo6Port);
        V6Loopback(&local6, 0);
        status = Connect(client, (SOCKADDR *)&local6, (SOCKADDR *)&echo6, &socket);
        if (status == STATUS_SUCCESS) {
            Check(TRUE, "IPv6 connect to [::1]", "status", status, STATUS_SUCCESS);
            EchoRoundTrip("IPv6 send/receive", socket, 64);
            Expect("IPv6 close", SafeWskCloseSocket(socket), STATUS_SUCCESS);
        } else {
            TEST_PRINT(TEST_PREFIX "  IPv6 connect to [::1]:%u returned 0x%08X (Socket %p)\n", g_Echo6Port,
                     (unsigned)status, (void *)socket);
#ifdef SAFEWSK_TEST_WINDOWS
            Check(FALSE, "IPv6 connect to [::1]", "status", status, STATUS_SUCCESS);
#else
            NotRun("IPv6 connect to [::1]",
                   "Wine 8's WskBind fails for every IPv6 address (STATUS_NO_MEMORY, from WSAEFAULT): its netio "
                   "passes sizeof(SOCKADDR) (16) as the address length to bind() and ConnectEx(), too short for "
                   "a 28-byte SOCKADDR_IN6");
#endif
        }
        socket = NULL;
    }

    OptionsCases(client, (SOCKADDR *)&local, (SOCKADDR *)&echo, (SOCKADDR *)&refused);
    EventCases(client, (SOCKADDR *)&local, (SOCKADDR *)&echo);
    ServerCases(client, (SOCKADDR *)&local, (SOCKADDR *)&echo);

    /* The handle closed long ago, after the sockets made since (their
     * slots, and the closed one's, in use or reused meanwhile). */
    StaleHandleCases("after later connects and closes", stale);

    /* SafeWskCleanup never refuses because sockets are open: it closes them
     * (each reported with DbgPrint), then deregisters. */
    kept = 0;
    for (i = 0; i < 2; i++) {
        status = Connect(client, (SOCKADDR *)&local, (SOCKADDR *)&echo, &leftOpen[i]);
        Expect("connect a socket to leave open for cleanup", status, STATUS_SUCCESS);
        kept += NT_SUCCESS(status) ? 1 : 0;
    }
    EchoRoundTrip("send/receive on a socket left open", leftOpen[0], 8);
    closes = Closes();
    Expect("cleanup with sockets left open", SafeWskCleanup(client), STATUS_SUCCESS);
    Check(Closes() == closes + kept, "cleanup with sockets left open", "it closed each (WskCloseSocket)",
          (NTSTATUS)(Closes() - closes), (NTSTATUS)kept);
    cleanedUp = client;
    client = NULL;
    /* After the cleanup: its sockets' handles and its own handle are stale
     * (refused without reading memory), and the driver may unload. */
    closes = Closes();
    Expect("send with a socket handle of a cleaned-up client", SafeWskSend(leftOpen[0], &byte, 1, 0, IO_MS, &n),
           STATUS_INVALID_PARAMETER_1);
    Expect("close of a socket handle of a cleaned-up client", SafeWskCloseSocket(leftOpen[1]),
           STATUS_INVALID_PARAMETER_1);
    Check(Closes() == closes, "handles of a cleaned-up client reach no WskCloseSocket", "provider closes",
          (NTSTATUS)(Closes() - closes), 0);
    Expect("second cleanup of the same client", SafeWskCleanup(cleanedUp), STATUS_INVALID_PARAMETER_1);
    Expect("connect param 1 (a cleaned-up client)",
           Connect(cleanedUp, (SOCKADDR *)&local, (SOCKADDR *)&echo, &socket), STATUS_INVALID_PARAMETER_1);
    socket = NULL;

    status = SafeWskStartup(g_Device, WSK_NO_WAIT, &second);
    Expect("second startup", status, STATUS_SUCCESS);
    if (NT_SUCCESS(status)) {
        status = Connect(second, (SOCKADDR *)&local, (SOCKADDR *)&echo, &socket);
        Expect("second cycle: connect", status, STATUS_SUCCESS);
        if (NT_SUCCESS(status)) {
            /* The first cycle's handles name the socket table of before the
             * cleanup: refused in the new one, whatever its slots hold. */
            StaleHandleCases("second cycle, a handle of the first", stale);
            Expect("second cycle: a first-cycle socket left open is refused",
                   SafeWskSend(leftOpen[0], &byte, 1, 0, IO_MS, &n), STATUS_INVALID_PARAMETER_1);
            EchoRoundTrip("second cycle: send/receive", socket, 10);
            Expect("second cycle: close", SafeWskCloseSocket(socket), STATUS_SUCCESS);
        }
        Expect("second cleanup", SafeWskCleanup(second), STATUS_SUCCESS);
    }

#ifdef SAFEWSK_TEST_WINDOWS
    UNREFERENCED_PARAMETER(connects);
    UNREFERENCED_PARAMETER(disconnects);
    IrqlCase();
    NotRun("STATUS_INSUFFICIENT_RESOURCES",
           "needs Driver Verifier's low resources simulation, which the kit does not turn on (see docs/verify.md)");
    NotRun("STATUS_DELETE_PENDING (a call during cleanup)", "needs a request that keeps cleanup waiting");
    NotRun("connect timeouts and SafeWskCancelConnect", "need an address that drops SYNs; the kit uses loopback only");
#else
    WineAdapterCounts(&connects, &disconnects, &closes);
    TEST_PRINT(TEST_PREFIX "  the adapter's WskSocketConnect ran %u times, its WskDisconnect %u times, its sockets' "
             "WskCloseSocket %u times\n",
             connects, disconnects, closes);
    IrqlCase();
    NotRun("STATUS_INSUFFICIENT_RESOURCES", "Wine's IoAllocateIrp, IoAllocateMdl and pool cannot be made to fail");
    NotRun("STATUS_DELETE_PENDING (a connect during cleanup)",
           "it needs a request that keeps cleanup waiting; on Wine nothing pending can be cancelled, so only a connect "
           "held by Linux's SYN retries (minutes) would do");
    NotRun("connect/send/receive timeouts (STATUS_IO_TIMEOUT) and SafeWskCancelConnect",
           "Wine's netio sets no cancel routines: IoCancelIrp cannot complete a pending WSK IRP");
#endif
}

static VOID WINAPI
TestThread(PVOID Context)
{
    UNREFERENCED_PARAMETER(Context);
    TEST_PRINT(TEST_PREFIX "start (echo %u, refused %u, echo6 %u)\n", g_EchoPort, g_RefusedPort, g_Echo6Port);
    RunCases();
    TEST_PRINT(TEST_PREFIX "%u passed, %u failed\n", g_Passed, g_Failed);
#ifdef SAFEWSK_TEST_WINDOWS
    TEST_PRINT(TEST_PREFIX "%u case(s) not run (listed above, not counted)\n", g_NotRun);
#else
    TEST_PRINT(TEST_PREFIX "%u case(s) not runnable on Wine (listed above, not counted)\n", g_NotRun);
#endif
    TEST_FINISHED();
    KeSetEvent(&g_Finished, IO_NO_INCREMENT, FALSE);
    PsTerminateSystemThread(STATUS_SUCCESS);
}

static NTSTATUS
ReadPorts(VOID)
{
    RTL_QUERY_REGISTRY_TABLE table[6];
    const WCHAR *names[5] = {L"EchoPort", L"RefusedPort", L"Echo6Port", L"ListenPort1", L"ListenPort2"};
    ULONG *values[5] = {&g_EchoPort, &g_RefusedPort, &g_Echo6Port, &g_ListenPort[0], &g_ListenPort[1]};
    int i;

    RtlZeroMemory(table, sizeof(table));
    for (i = 0; i < 5; i++) {
        table[i].Flags = RTL_QUERY_REGISTRY_DIRECT | RTL_QUERY_REGISTRY_REQUIRED;
        table[i].Name = (PWSTR)names[i];
        table[i].EntryContext = values[i];
    }
    return RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, TEST_SERVICE L"\\Parameters", table, NULL, NULL);
}

NTSTATUS
DriverEntry(_In_ PDRIVER_OBJECT DriverObject, _In_ PUNICODE_STRING RegistryPath)
{
    HANDLE thread;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(RegistryPath);
    KeInitializeEvent(&g_Finished, NotificationEvent, FALSE);
    status = ReadPorts();
    if (!NT_SUCCESS(status)) {
        TEST_PRINT(TEST_PREFIX "EchoPort/RefusedPort/Echo6Port/ListenPort1/ListenPort2 missing: 0x%08X\n", (unsigned)status);
        return status;
    }
    /* safewsk references it while its completion routines run. */
    status = IoCreateDevice(DriverObject, 0, NULL, FILE_DEVICE_UNKNOWN, FILE_DEVICE_SECURE_OPEN, FALSE, &g_Device);
    if (!NT_SUCCESS(status)) {
        TEST_PRINT(TEST_PREFIX "IoCreateDevice: 0x%08X\n", (unsigned)status);
        return status;
    }
    status = PsCreateSystemThread(&thread, THREAD_ALL_ACCESS, NULL, NULL, NULL, TestThread, NULL);
    if (!NT_SUCCESS(status)) {
        TEST_PRINT(TEST_PREFIX "PsCreateSystemThread: 0x%08X\n", (unsigned)status);
        IoDeleteDevice(g_Device);
        return status;
    }
    ZwClose(thread);
    DriverObject->DriverUnload = TestUnload;
    return STATUS_SUCCESS;
}

static VOID WINAPI
TestUnload(_In_ PDRIVER_OBJECT DriverObject)
{
    LARGE_INTEGER timeout;

    UNREFERENCED_PARAMETER(DriverObject);
    /* .ci/wine stops the service only after the summary line; bounded anyway. */
    timeout.QuadPart = -60LL * 10 * 1000 * 1000;
    if (KeWaitForSingleObject(&g_Finished, Executive, KernelMode, FALSE, &timeout) != STATUS_SUCCESS) {
        TEST_PRINT(TEST_PREFIX "unload before the test thread finished\n");
    }
    IoDeleteDevice(g_Device);
    TEST_PRINT(TEST_PREFIX "unloaded\n");
}
