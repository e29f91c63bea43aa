/*
 * Compat wsk.h for the MinGW-w64 cross-check (.ci/windows-gnu). MinGW-w64 10
 * ships ddk/wdm.h and ddk/ntddk.h but no wsk.h, so the WSK declarations
 * safewsk.h and the samples use are written here after the WDK's wsk.h and
 * ws2def.h. Everything else (NTSTATUS, IRP, ULONG, PEPROCESS, the Ke/Ex/Rtl
 * routines) comes from MinGW's real kernel headers.
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

typedef USHORT ADDRESS_FAMILY;
#define AF_INET 2
#define AF_INET6 23
#define SOCK_STREAM 1
#define IPPROTO_TCP 6

typedef struct sockaddr {
    ADDRESS_FAMILY sa_family;
    CHAR sa_data[14];
} SOCKADDR, *PSOCKADDR;

typedef struct in_addr {
    union {
        struct { UCHAR s_b1, s_b2, s_b3, s_b4; } S_un_b;
        ULONG S_addr;
    } S_un;
} IN_ADDR;
#define s_addr S_un.S_addr

typedef struct sockaddr_in {
    ADDRESS_FAMILY sin_family;
    USHORT sin_port;
    IN_ADDR sin_addr;
    CHAR sin_zero[8];
} SOCKADDR_IN, *PSOCKADDR_IN;

#define WSK_NO_WAIT 0
#define WSK_INFINITE_WAIT 0xffffffff
#define WSK_FLAG_ABORTIVE 0x00000001
#define WSK_FLAG_NODELAY 0x00000002
#define WSK_FLAG_WAITALL 0x00000002

typedef struct _WSK_SOCKET {
    const VOID *Dispatch;
} WSK_SOCKET, *PWSK_SOCKET;

typedef NTSTATUS (NTAPI *PFN_WSK_RECEIVE_EVENT)(PVOID SocketContext, ULONG Flags, PVOID DataIndication,
                                                SIZE_T BytesIndicated, SIZE_T *BytesAccepted);
typedef NTSTATUS (NTAPI *PFN_WSK_DISCONNECT_EVENT)(PVOID SocketContext, ULONG Flags);
typedef NTSTATUS (NTAPI *PFN_WSK_SEND_BACKLOG_EVENT)(PVOID SocketContext, SIZE_T IdealBacklogSize);

typedef struct _WSK_CLIENT_CONNECTION_DISPATCH {
    PFN_WSK_RECEIVE_EVENT WskReceiveEvent;
    PFN_WSK_DISCONNECT_EVENT WskDisconnectEvent;
    PFN_WSK_SEND_BACKLOG_EVENT WskSendBacklogEvent;
} WSK_CLIENT_CONNECTION_DISPATCH, *PWSK_CLIENT_CONNECTION_DISPATCH;

#ifdef __cplusplus
}
#endif

#endif /* _WSK_ */
