/*
 * The safewsk verification kit's self-test driver (docs/verify.md).
 *
 * A thin wrapper over the Wine test driver (tests/wine/wine_test_driver.c),
 * which it includes: the cases, DriverEntry, the test thread and the unload
 * are that file's, so there is one copy of them for Wine and for Windows.
 * What this file adds:
 * - the service name SafeWskVerify (its Parameters key holds EchoPort,
 *   RefusedPort, Echo6Port, ListenPort1, ListenPort2 and, optionally,
 *   ResultFile) and the prefix
 *   "safewsk-verify: " on every line;
 * - every line printed is also kept (in the image's data, non-paged) and,
 *   once the summary line "safewsk-verify: N passed, M failed" has been
 *   printed, written to the result file: the Parameters value ResultFile
 *   (an NT path), or \SystemRoot\Temp\safewsk-verify.txt. Verify-SafeWsk.ps1
 *   reads that file, not the debugger.
 *
 * Built with SAFEWSK_TEST_WINDOWS by safewsk_verify.vcxproj (Windows'
 * expectations); .ci/msvc compiles and links it that way for x64 and ARM64,
 * and .ci/wine builds it without (Wine's expectations, with the Wine
 * adapter) and runs it as a kernel service under Wine.
 */
#include <stdarg.h>
#include <ntddk.h>

#define TEST_SERVICE L"SafeWskVerify"
#define TEST_PREFIX "safewsk-verify: "
#define TEST_PRINT KitPrint
#define TEST_FINISHED() KitWriteResults()

static ULONG KitPrint(const char *Format, ...);
static VOID KitWriteResults(VOID);

#include "wine_test_driver.c"

#define KIT_LOG_BYTES (64 * 1024)
#define KIT_LINE_BYTES 512

static char g_KitLog[KIT_LOG_BYTES]; /* non-paged: the image's data */
static volatile LONG g_KitLogLength;
static volatile LONG g_KitLogTruncated;

/* Appends C to the line at *At (at most KIT_LINE_BYTES - 1 characters). */
static VOID
KitPut(char *Line, ULONG *At, char C)
{
    if (*At < KIT_LINE_BYTES - 1) {
        Line[(*At)++] = C;
    }
}

static VOID
KitPutNumber(char *Line, ULONG *At, ULONG64 Value, ULONG Base, ULONG Width, BOOLEAN Upper)
{
    const char *digits = Upper ? "0123456789ABCDEF" : "0123456789abcdef";
    char buffer[24];
    ULONG n = 0;

    do {
        buffer[n++] = digits[Value % Base];
        Value /= Base;
    } while (Value != 0 && n < sizeof(buffer));
    while (n < Width && n < sizeof(buffer)) {
        buffer[n++] = '0';
    }
    while (n > 0) {
        KitPut(Line, At, buffer[--n]);
    }
}

/* The formats the cases use: %s, %u, %d, %x/%X with an optional zero-padded
 * width (%08X), %p. Anything else is copied as it is. */
static ULONG
KitPrint(const char *Format, ...)
{
    char line[KIT_LINE_BYTES];
    ULONG at = 0, width;
    LONG start;
    const char *f, *s;
    va_list args;

    va_start(args, Format);
    for (f = Format; *f != '\0'; f++) {
        if (*f != '%') {
            KitPut(line, &at, *f);
            continue;
        }
        f++;
        width = 0;
        if (*f == '0') {
            f++;
        }
        while (*f >= '0' && *f <= '9') {
            width = width * 10 + (ULONG)(*f - '0');
            f++;
        }
        switch (*f) {
        case 's':
            for (s = va_arg(args, const char *); s != NULL && *s != '\0'; s++) {
                KitPut(line, &at, *s);
            }
            break;
        case 'u':
            KitPutNumber(line, &at, va_arg(args, unsigned int), 10, width, FALSE);
            break;
        case 'd': {
            int v = va_arg(args, int);
            if (v < 0) {
                KitPut(line, &at, '-');
                KitPutNumber(line, &at, (ULONG64)(-(LONG64)v), 10, width, FALSE);
            } else {
                KitPutNumber(line, &at, (ULONG64)v, 10, width, FALSE);
            }
            break;
        }
        case 'x':
        case 'X':
            KitPutNumber(line, &at, va_arg(args, unsigned int), 16, width, *f == 'X');
            break;
        case 'p':
            KitPutNumber(line, &at, (ULONG64)(ULONG_PTR)va_arg(args, void *), 16, 16, TRUE);
            break;
        case '\0':
            f--;
            break;
        default:
            KitPut(line, &at, '%');
            KitPut(line, &at, *f);
            break;
        }
    }
    va_end(args);
    line[at] = '\0';
    DbgPrint("%s", line);
    start = InterlockedExchangeAdd(&g_KitLogLength, (LONG)at);
    if (start >= 0 && (ULONG)start + at <= KIT_LOG_BYTES) {
        RtlCopyMemory(g_KitLog + start, line, at);
    } else {
        InterlockedExchange(&g_KitLogTruncated, 1);
    }
    return STATUS_SUCCESS;
}

/* PASSIVE_LEVEL (the test thread, after the summary line). */
static VOID
KitWriteResults(VOID)
{
    static WCHAR defaultPath[] = L"\\SystemRoot\\Temp\\safewsk-verify.txt";
    static WCHAR path[260];
    static const char truncated[] = TEST_PREFIX "the log was truncated (more than 64 KiB)\n";
    UNICODE_STRING name;
    RTL_QUERY_REGISTRY_TABLE table[2];
    OBJECT_ATTRIBUTES attributes;
    IO_STATUS_BLOCK io;
    HANDLE file;
    ULONG length;
    NTSTATUS status;

    /* ResultFile, if the Parameters key has it; else the default. */
    name.Buffer = path;
    name.Length = 0;
    name.MaximumLength = sizeof(path);
    RtlZeroMemory(table, sizeof(table));
    table[0].Flags = RTL_QUERY_REGISTRY_DIRECT;
    table[0].Name = (PWSTR)L"ResultFile";
    table[0].EntryContext = &name;
    status = RtlQueryRegistryValues(RTL_REGISTRY_SERVICES, TEST_SERVICE L"\\Parameters", table, NULL, NULL);
    if (!NT_SUCCESS(status) || name.Length == 0) {
        name.Buffer = defaultPath;
        name.Length = sizeof(defaultPath) - sizeof(WCHAR);
        name.MaximumLength = sizeof(defaultPath);
    }
    InitializeObjectAttributes(&attributes, &name, OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE, NULL, NULL);
    status = ZwCreateFile(&file, GENERIC_WRITE | SYNCHRONIZE, &attributes, &io, NULL, FILE_ATTRIBUTE_NORMAL,
                          FILE_SHARE_READ, FILE_OVERWRITE_IF, FILE_SYNCHRONOUS_IO_NONALERT | FILE_NON_DIRECTORY_FILE,
                          NULL, 0);
    if (!NT_SUCCESS(status)) {
        DbgPrint(TEST_PREFIX "cannot create the result file: 0x%08X\n", (unsigned)status);
        return;
    }
    length = (ULONG)g_KitLogLength;
    if (length > KIT_LOG_BYTES) {
        length = KIT_LOG_BYTES;
    }
    status = ZwWriteFile(file, NULL, NULL, NULL, &io, g_KitLog, length, NULL, NULL);
    if (NT_SUCCESS(status) && g_KitLogTruncated) {
        status = ZwWriteFile(file, NULL, NULL, NULL, &io, (PVOID)truncated, sizeof(truncated) - 1, NULL, NULL);
    }
    DbgPrint(TEST_PREFIX "result file written: 0x%08X, %u bytes\n", (unsigned)status, length);
    ZwClose(file);
}
