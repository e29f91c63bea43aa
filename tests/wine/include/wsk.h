/*
 * wsk.h over Wine's own ddk/wsk.h: see wdm.h here. Wine 8's wsk.h lacks the
 * WSK_FLAG_* request flags (wsk.h in the WDK); they are added, guarded.
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
#endif
