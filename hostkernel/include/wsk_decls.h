/*
 * The WSK and socket-address declarations safewsk.h and the samples use,
 * written after the WDK's wsk.h and ws2def.h/ws2ipdef.h with Windows' values
 * (AF_INET6 is 23) and x64 layouts. Shared by the host stand-in wsk.h (this
 * directory) and the MinGW compat wsk.h (tests/mingw/), neither of which has
 * a real wsk.h. Needs the NT base types (NTSTATUS, ULONG, ...) and NTAPI
 * declared first by a wdm.h.
 */
#ifndef SAFEWSK_WSK_DECLS_H
#define SAFEWSK_WSK_DECLS_H

#ifdef __cplusplus
extern "C" {
#endif

typedef USHORT ADDRESS_FAMILY;
#define AF_UNSPEC 0
#define AF_INET 2
#define AF_INET6 23
#define SOCK_STREAM 1
#define SOCK_DGRAM 2
#define IPPROTO_TCP 6
#define INADDR_ANY ((ULONG)0x00000000)

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

typedef struct in6_addr {
    union { UCHAR Byte[16]; USHORT Word[8]; } u;
} IN6_ADDR;

typedef struct sockaddr_in6 {
    ADDRESS_FAMILY sin6_family;
    USHORT sin6_port;
    ULONG sin6_flowinfo;
    IN6_ADDR sin6_addr;
    ULONG sin6_scope_id;
} SOCKADDR_IN6, *PSOCKADDR_IN6;

#define MAKE_WSK_VERSION(Mj, Mn) ((USHORT)((Mj) << 8) | (USHORT)((Mn) & 0xff))
#define WSK_NO_WAIT 0
#define WSK_INFINITE_WAIT 0xffffffff
#define WSK_FLAG_ABORTIVE 0x00000001
#define WSK_FLAG_NODELAY 0x00000002
#define WSK_FLAG_WAITALL 0x00000002

typedef struct _WSK_SOCKET {
    const VOID *Dispatch;
} WSK_SOCKET, *PWSK_SOCKET;

/* The data indication list of WskReceiveEvent (wsk.h); opaque here. */
typedef struct _WSK_DATA_INDICATION WSK_DATA_INDICATION, *PWSK_DATA_INDICATION;

typedef enum {
    WskSetOption,
    WskGetOption,
    WskIoctl,
    WskControlMax
} WSK_CONTROL_SOCKET_TYPE, *PWSK_CONTROL_SOCKET_TYPE;

typedef NTSTATUS (NTAPI *PFN_WSK_RECEIVE_EVENT)(PVOID SocketContext, ULONG Flags, PVOID DataIndication,
                                                SIZE_T BytesIndicated, SIZE_T *BytesAccepted);
typedef NTSTATUS (NTAPI *PFN_WSK_DISCONNECT_EVENT)(PVOID SocketContext, ULONG Flags);
typedef NTSTATUS (NTAPI *PFN_WSK_SEND_BACKLOG_EVENT)(PVOID SocketContext, SIZE_T IdealBacklogSize);

typedef struct _WSK_CLIENT_CONNECTION_DISPATCH {
    PFN_WSK_RECEIVE_EVENT WskReceiveEvent;
    PFN_WSK_DISCONNECT_EVENT WskDisconnectEvent;
    PFN_WSK_SEND_BACKLOG_EVENT WskSendBacklogEvent;
} WSK_CLIENT_CONNECTION_DISPATCH, *PWSK_CLIENT_CONNECTION_DISPATCH;

#if !defined(__cplusplus)
_Static_assert(sizeof(SOCKADDR_IN) == 16, "SOCKADDR_IN is 16 bytes");
_Static_assert(sizeof(SOCKADDR_IN6) == 28, "SOCKADDR_IN6 is 28 bytes");
_Static_assert(sizeof(WSK_CLIENT_CONNECTION_DISPATCH) == 3 * sizeof(void *), "three callbacks");
#endif

#ifdef __cplusplus
}
#endif

#endif /* SAFEWSK_WSK_DECLS_H */
