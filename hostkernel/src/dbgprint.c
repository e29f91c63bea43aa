/* DbgPrint for the host kernel: formats like printf (the subset of DbgPrint's
 * format language the sample uses) and hands the line to Rust, which prints
 * it and keeps it for tests. Variadic, hence C. */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

extern void hostkernel_dbgprint_sink(const char *line);

uint32_t DbgPrint(const char *format, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, format);
    vsnprintf(line, sizeof(line), format, ap);
    va_end(ap);
    hostkernel_dbgprint_sink(line);
    return 0;
}
