/* Compiles safewsk.h as a driver would use it, in C11 and C++, so that every
 * declaration is checked by the compiler with -Wall -Wextra -Werror -pedantic. */
#include <wdm.h>
#include <wsk.h>

#include "safewsk.h"

#ifdef __cplusplus
extern "C"
#endif
    NTSTATUS
    HeaderCheck(PDEVICE_OBJECT device, SAFEWSK_CLIENT *client, const SOCKADDR *local, const SOCKADDR *remote,
                void *buffer);

/* The asynchronous connect's callback hands out the socket's handle. */
static void
HeaderCheckConnected(PVOID Context, NTSTATUS Status, SAFEWSK_SOCKET *Socket)
{
    (void)Context;
    if (NT_SUCCESS(Status)) {
        (void)SafeWskCloseSocket(Socket);
    }
}

NTSTATUS
HeaderCheck(PDEVICE_OBJECT device, SAFEWSK_CLIENT *client, const SOCKADDR *local, const SOCKADDR *remote,
            void *buffer)
{
    static SAFEWSK_CONNECT_REQUEST request;
    /* An opaque handle, not the WSK_SOCKET: the socket calls take only it. */
    SAFEWSK_SOCKET *socket = NULL;
    SOCKADDR address;
    ULONG n = 0;
    NTSTATUS status = SafeWskStartup(device, WSK_NO_WAIT, &client);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = SafeWskSocketConnect(client, SOCK_STREAM, IPPROTO_TCP, local, remote, 0, NULL, NULL, NULL, NULL, NULL,
                                  &socket, 1000);
    if (NT_SUCCESS(status)) {
        (void)SafeWskSend(socket, buffer, 4, WSK_FLAG_NODELAY, 1000, &n);
        (void)SafeWskReceive(socket, buffer, 4, WSK_FLAG_WAITALL, 1000, &n);
        (void)SafeWskGetLocalAddress(socket, &address, sizeof(address), 1000);
        (void)SafeWskGetRemoteAddress(socket, &address, sizeof(address), 1000);
        (void)SafeWskDisconnect(socket, WSK_FLAG_ABORTIVE, 1000);
        (void)SafeWskCloseSocket(socket);
    }
    request.Callback = HeaderCheckConnected;
    request.TimeoutMs = SAFEWSK_NO_TIMEOUT;
    /* STATUS_PENDING is its only success status. */
    if (NT_SUCCESS(SafeWskSocketConnectAsync(client, SOCK_STREAM, IPPROTO_TCP, local, remote, 0, NULL, NULL, NULL,
                                             NULL, NULL, &request))) {
        (void)SafeWskCancelConnect(&request);
    }
    /* Closes any socket still open (none here), then deregisters. */
    return SafeWskCleanup(client);
}
