/* User-mode test of safewsk_probe_and_lock_pages (src/kernel/platform/seh.rs) under
 * Wine: this program supplies its own "MmProbeAndLockPages" that raises the
 * way the kernel's does (RaiseException, or a real fault), and checks that
 * the trampoline's .pdata/.xdata scope table makes __C_specific_handler catch
 * the exception and return an error status, with the caller's non-volatile
 * registers intact. Run by .ci/wine-seh. */
#include <windows.h>
#include <stdio.h>

LONG safewsk_probe_and_lock_pages(void *Mdl, CHAR AccessMode, ULONG Operation);

static int mode;
static volatile int *volatile null_ptr;

void MmProbeAndLockPages(void *Mdl, CHAR AccessMode, ULONG Operation)
{
    (void)Mdl;
    (void)AccessMode;
    (void)Operation;
    switch (mode) {
    case 0: return;                                   /* locked */
    case 1: RaiseException(0xC0000005u, 0, 0, NULL); break; /* ExRaiseStatus-like */
    case 2: RaiseException(0xC00000A1u, 0, 0, NULL); break; /* STATUS_WORKING_SET_QUOTA */
    case 3: *null_ptr = 1; break;                     /* a real access violation */
    }
}

/* Keeps values live in callee-saved registers across the call. */
static __attribute__((noinline)) int call(int m, LONG *status)
{
    register long long a asm("rbx") = 0x1111;
    register long long b asm("rsi") = 0x2222;
    register long long c asm("rdi") = 0x3333;
    register long long d asm("r12") = 0x4444;
    register long long e asm("r15") = 0x5555;
    asm volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d), "+r"(e));
    mode = m;
    *status = safewsk_probe_and_lock_pages(NULL, 0, 1);
    asm volatile("" : "+r"(a), "+r"(b), "+r"(c), "+r"(d), "+r"(e));
    return a == 0x1111 && b == 0x2222 && c == 0x3333 && d == 0x4444 && e == 0x5555;
}

int main(void)
{
    static const char *what[] = {"no exception", "RaiseException(STATUS_ACCESS_VIOLATION)",
                                 "RaiseException(STATUS_WORKING_SET_QUOTA)", "write through NULL"};
    int failures = 0;
    for (int m = 0; m < 4; m++) {
        LONG st = 0x12345678;
        int regs = call(m, &st);
        int ok = regs && (m == 0 ? st == 0 : st < 0);
        printf("%-42s -> status 0x%08lX, non-volatile registers %s: %s\n", what[m], (unsigned long)st,
               regs ? "intact" : "CLOBBERED", ok ? "ok" : "FAIL");
        failures += !ok;
    }
    printf("%s\n", failures ? "FAILED" : "all caught");
    return failures != 0;
}
