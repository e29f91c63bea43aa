/*
 * Compat wsk.h for the MinGW-w64 cross-check (.ci/windows-gnu). MinGW-w64 10
 * ships ddk/wdm.h and ddk/ntddk.h but no wsk.h: the WSK declarations come
 * from hostkernel/include/wsk_decls.h (shared with the host stand-in), plus
 * the few newer WDK names MinGW 10 lacks, below. Everything else (NTSTATUS,
 * IRP, ULONG, PEPROCESS, the Ke/Ex/Rtl routines) is MinGW's real headers.
 */
#ifndef _WSK_
#define _WSK_

#include <wdm.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ExAllocatePool2 (Windows 10 2004) postdates MinGW-w64 10's wdm.h. */
#ifndef POOL_FLAG_NON_PAGED
typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_NON_PAGED 0x0000000000000040ULL
NTKERNELAPI PVOID NTAPI ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);
#endif

/* RTL_QUERY_REGISTRY_TYPECHECK (Windows 8 WDK) postdates it too. */
#ifndef RTL_QUERY_REGISTRY_TYPECHECK
#define RTL_QUERY_REGISTRY_TYPECHECK 0x00000100
#define RTL_QUERY_REGISTRY_TYPECHECK_SHIFT 24
#endif

/* The WDK maps RtlU*ByteSwap to MSVC intrinsics; MinGW would call
 * msvcrt's _byteswap_* instead, which a driver cannot import. */
#undef RtlUshortByteSwap
#undef RtlUlongByteSwap
#define RtlUshortByteSwap(x) __builtin_bswap16((USHORT)(x))
#define RtlUlongByteSwap(x) __builtin_bswap32((ULONG)(x))

#ifdef __cplusplus
}
#endif

/* The WSK and socket-address declarations, shared with the host stand-in. */
#include "../../hostkernel/include/wsk_decls.h"

#endif /* _WSK_ */
