/*
 * The load configuration directory of every driver image .ci/msvc links.
 * In a WDK build it comes from the kernel runtime library the WDK links into
 * every driver (BufferOverflowFastFailK.lib, WindowsDriver.KernelMode.props;
 * a driver has no CRT), with the Control Flow Guard pointers that code
 * compiled for CFG calls through (__guard_dispatch_icall_fptr on x64,
 * __guard_check_icall_fptr on ARM64; Windows' own drivers carry the
 * `_guard_dispatch_icall_nop` they point to until the kernel sets them).
 * safewsk.lib is built with -C control-flow-guard, so every link needs them,
 * /GUARD:CF or not; with /GUARD:CF lld fills in the tables
 * (__guard_fids_table, __guard_flags, ...), which it synthesizes. The field
 * layout is IMAGE_LOAD_CONFIG_DIRECTORY64 (winnt.h), up to the long-jump
 * table; nothing of this runs.
 */
#include <stdint.h>

extern const char __guard_fids_table[], __guard_fids_count[], __guard_flags[];
extern const char __guard_iat_table[], __guard_iat_count[];
extern const char __guard_longjmp_table[], __guard_longjmp_count[];

static void guard_check_icall_nop(uintptr_t target)
{
    (void)target;
}

void (*__guard_check_icall_fptr)(uintptr_t) = guard_check_icall_nop;
void (*__guard_dispatch_icall_fptr)(uintptr_t) = guard_check_icall_nop;

typedef struct {
    uint32_t Size;
    uint32_t TimeDateStamp;
    uint16_t MajorVersion, MinorVersion;
    uint32_t GlobalFlagsClear, GlobalFlagsSet, CriticalSectionDefaultTimeout;
    uint64_t DeCommitFreeBlockThreshold, DeCommitTotalFreeThreshold;
    uint64_t LockPrefixTable, MaximumAllocationSize, VirtualMemoryThreshold, ProcessAffinityMask;
    uint32_t ProcessHeapFlags;
    uint16_t CSDVersion, DependentLoadFlags;
    uint64_t EditList, SecurityCookie, SEHandlerTable, SEHandlerCount;
    uint64_t GuardCFCheckFunctionPointer, GuardCFDispatchFunctionPointer;
    uint64_t GuardCFFunctionTable, GuardCFFunctionCount;
    /* GuardFlags (32 bits) and CodeIntegrity.Flags/Catalog (16 + 16, zero)
     * as one 64-bit field: __guard_flags is an absolute symbol whose value
     * is the flags, and C can only take it as a 64-bit address constant. */
    uint64_t GuardFlags;
    uint32_t CodeIntegrityCatalogOffset, CodeIntegrityReserved;
    uint64_t GuardAddressTakenIatEntryTable, GuardAddressTakenIatEntryCount;
    uint64_t GuardLongJumpTargetTable, GuardLongJumpTargetCount;
} LOAD_CONFIG64;

_Static_assert(__builtin_offsetof(LOAD_CONFIG64, GuardFlags) == 144, "IMAGE_LOAD_CONFIG_DIRECTORY64.GuardFlags");
_Static_assert(sizeof(LOAD_CONFIG64) == 192, "IMAGE_LOAD_CONFIG_DIRECTORY64 up to GuardLongJumpTargetCount");

const LOAD_CONFIG64 _load_config_used = {
    .Size = sizeof(LOAD_CONFIG64),
    .GuardCFCheckFunctionPointer = (uint64_t)(uintptr_t)&__guard_check_icall_fptr,
    .GuardCFDispatchFunctionPointer = (uint64_t)(uintptr_t)&__guard_dispatch_icall_fptr,
    .GuardCFFunctionTable = (uint64_t)(uintptr_t)__guard_fids_table,
    .GuardCFFunctionCount = (uint64_t)(uintptr_t)__guard_fids_count,
    .GuardFlags = (uint64_t)(uintptr_t)__guard_flags,
    .GuardAddressTakenIatEntryTable = (uint64_t)(uintptr_t)__guard_iat_table,
    .GuardAddressTakenIatEntryCount = (uint64_t)(uintptr_t)__guard_iat_count,
    .GuardLongJumpTargetTable = (uint64_t)(uintptr_t)__guard_longjmp_table,
    .GuardLongJumpTargetCount = (uint64_t)(uintptr_t)__guard_longjmp_count,
};
