/* DbgPrint and DbgPrintEx for the host kernel: format like printf (the subset
 * of DbgPrint's format language the library and samples use) and hand the
 * line, with its component and level, to Rust, which filters it as a stock
 * Windows does and keeps it for tests. Variadic, hence C. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

extern void hostkernel_dbgprint_sink(uint32_t component, uint32_t level, const char *line);

/* dpfilter.h: DPFLTR_DEFAULT_ID (the component of plain DbgPrint) and
 * DPFLTR_INFO_LEVEL: "DbgPrint ( Format, arguments ) is equivalent to
 * DbgPrintEx ( DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, Format, arguments )"
 * (Reading and Filtering Debugging Messages, Microsoft Learn). */
#define DPFLTR_DEFAULT_ID 101
#define DPFLTR_INFO_LEVEL 3

static void sink(uint32_t component, uint32_t level, const char *format, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof(line), format, ap);
    hostkernel_dbgprint_sink(component, level, line);
}

uint32_t DbgPrint(const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    sink(DPFLTR_DEFAULT_ID, DPFLTR_INFO_LEVEL, format, ap);
    va_end(ap);
    return 0;
}

uint32_t DbgPrintEx(uint32_t component, uint32_t level, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    sink(component, level, format, ap);
    va_end(ap);
    return 0;
}
