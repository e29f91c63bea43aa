/*
 * wsk.h over Wine's own ddk/wsk.h: see wdm.h here. Wine 8's wsk.h lacks the
 * WSK_FLAG_* request flags and the WSK_EVENT_* event flags (wsk.h in the WDK);
 * they are added, guarded.
 */
#ifndef SAFEWSK_WINE_WSK_H
#define SAFEWSK_WINE_WSK_H
#include <wdm.h>
#include <ddk/wsk.h>
#ifndef WSK_FLAG_ABORTIVE
#define WSK_FLAG_ABORTIVE 0x00000001
#endif
#ifndef WSK_FLAG_NODELAY
#define WSK_FLAG_NODELAY 0x00000002
#endif
#ifndef WSK_FLAG_WAITALL
#define WSK_FLAG_WAITALL 0x00000002
#endif
/* The connection socket's event flags (SO_WSK_EVENT_CALLBACK). */
#ifndef WSK_EVENT_RECEIVE
#define WSK_EVENT_SEND_BACKLOG 0x00000010
#define WSK_EVENT_RECEIVE 0x00000040
#define WSK_EVENT_DISCONNECT 0x00000080
#define WSK_EVENT_DISABLE 0x80000000
#endif
#endif
