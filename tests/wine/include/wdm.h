/*
 * wdm.h for building against Wine's own DDK headers (Debian libwine-dev,
 * /usr/include/wine/wine/windows/ddk), used by .ci/wine: the WSK and NT
 * names safewsk.h, the samples and the Wine test driver use are checked
 * against a wdm.h/wsk.h this project did not write.
 *
 * Wine's ddk/wdm.h expects windef.h and winternl.h first (as Wine's own
 * drivers include them). Only names Wine 8's headers lack are added below,
 * each guarded, none of them used by safewsk.h itself.
 */
#ifndef SAFEWSK_WINE_WDM_H
#define SAFEWSK_WINE_WDM_H

#include <ntstatus.h>
#define WIN32_NO_STATUS
#include <windef.h>
#include <winternl.h>
#include <ddk/wdm.h>

/* The WDK's role types for driver routines (wdm.h); Wine has only the
 * pointer types. */
typedef NTSTATUS NTAPI DRIVER_INITIALIZE(PDRIVER_OBJECT DriverObject, PUNICODE_STRING RegistryPath);
typedef VOID NTAPI DRIVER_UNLOAD(PDRIVER_OBJECT DriverObject);
typedef VOID NTAPI KSTART_ROUTINE(PVOID StartContext);

/* NonPagedPoolNx (POOL_TYPE 512, Windows 8) is missing from Wine 8's enum. */
#define NonPagedPoolNx ((POOL_TYPE)512)

/* PAGED_CODE() is an assertion in checked builds and empty otherwise. */
#ifndef PAGED_CODE
#define PAGED_CODE() ((void)0)
#endif

/* ExAllocatePool2 (Windows 10 2004) postdates Wine 8's wdm.h (and Wine 8's
 * ntoskrnl.exe does not export it). */
#ifndef POOL_FLAG_NON_PAGED
typedef ULONG64 POOL_FLAGS;
#define POOL_FLAG_NON_PAGED 0x0000000000000040ULL
PVOID NTAPI ExAllocatePool2(POOL_FLAGS Flags, SIZE_T NumberOfBytes, ULONG Tag);
#endif

/* The IRQL routines of the WDK's wdm.h, which Wine 8's lacks; only the
 * verification kit's IRQL case uses them (SAFEWSK_TEST_WINDOWS, compiled by
 * .ci/msvc against these headers). As in the WDK: on x64 inline CR8
 * accesses, on ARM64 the HAL's KfRaiseIrql and KfLowerIrql. */
#if defined(SAFEWSK_TEST_WINDOWS) && !defined(KeRaiseIrql)
#ifndef DISPATCH_LEVEL
#define DISPATCH_LEVEL 2
#endif
#if defined(__x86_64__)
static __inline KIRQL SafeWskKitRaiseIrql(KIRQL NewIrql)
{
    ULONG64 old, value = NewIrql;
    __asm__ __volatile__("mov %%cr8, %0" : "=r"(old) : : "memory");
    __asm__ __volatile__("mov %0, %%cr8" : : "r"(value) : "memory");
    return (KIRQL)old;
}
static __inline VOID KeLowerIrql(KIRQL NewIrql)
{
    ULONG64 value = NewIrql;
    __asm__ __volatile__("mov %0, %%cr8" : : "r"(value) : "memory");
}
#define KeRaiseIrql(a, b) (*(b) = SafeWskKitRaiseIrql(a))
#elif defined(__aarch64__)
KIRQL NTAPI KfRaiseIrql(KIRQL NewIrql);
VOID NTAPI KfLowerIrql(KIRQL NewIrql);
#define KeRaiseIrql(a, b) (*(b) = KfRaiseIrql(a))
#define KeLowerIrql(a) KfLowerIrql(a)
#endif
#endif

#endif /* SAFEWSK_WINE_WDM_H */
