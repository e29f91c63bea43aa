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

NTSTATUS
HeaderCheck(PDEVICE_OBJECT device, SAFEWSK_CLIENT *client, const SOCKADDR *local, const SOCKADDR *remote,
            void *buffer)
{
    WSK_SOCKET *socket = NULL;
    ULONG n = 0;
    NTSTATUS status = SafeWskStartup(device, WSK_NO_WAIT, &client);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = SafeWskSocketConnect(client, SOCK_STREAM, IPPROTO_TCP, local, remote, 0, NULL, NULL, NULL, NULL, NULL,
                                  &socket, 1000);
    if (NT_SUCCESS(status)) {
        (void)SafeWskSend(client, socket, buffer, 4, WSK_FLAG_NODELAY, 1000, &n);
        (void)SafeWskReceive(client, socket, buffer, 4, WSK_FLAG_WAITALL, 1000, &n);
        (void)SafeWskDisconnect(client, socket, WSK_FLAG_ABORTIVE, 1000);
        (void)SafeWskCloseSocket(client, socket);
    }
    return SafeWskCleanup(client);
}
