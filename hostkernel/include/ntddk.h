/* Stand-in for the WDK's ntddk.h: everything the sample needs is in wdm.h. */
#include <wdm.h>
