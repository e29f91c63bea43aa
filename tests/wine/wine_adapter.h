/* The Wine test adapter (wine_adapter.c): test-only, never shipped. */
#ifndef SAFEWSK_WINE_ADAPTER_H
#define SAFEWSK_WINE_ADAPTER_H
#include <wdm.h>
/* How often the adapter's WskSocketConnect and WskDisconnect were called,
 * and WskCloseSocket on the sockets its WskSocketConnect made. */
VOID WineAdapterCounts(ULONG *SocketConnects, ULONG *Disconnects, ULONG *Closes);
#endif
