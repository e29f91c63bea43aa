/* ntddk.h over Wine's DDK headers: see wdm.h here. */
#ifndef SAFEWSK_WINE_NTDDK_H
#define SAFEWSK_WINE_NTDDK_H
#include <wdm.h>
#include <ddk/ntddk.h>
#endif
