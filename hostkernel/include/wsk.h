/*
 * Stand-in for the WDK's wsk.h on Linux, for compiling safewsk.h and the C
 * sample against the host kernel: the declarations are in wsk_decls.h.
 */
#ifndef _WSK_
#define _WSK_

#include <wdm.h>

#include "wsk_decls.h"

#endif /* _WSK_ */
