/*
 * C side of the bare-metal harness: runs after startup.S has enabled the FPU,
 * initialised RAM and painted the stack. Sets up newlib's semihosting I/O,
 * starts the instruction counter, calls main() and exits through semihosting
 * with main's return value. Also reports faults instead of hanging.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>

#include "tinyc_harness_config.h"
#include "tinyc_harness_internal.h"
#include "tinyc_profile.h"
#include "tinyc_semihost.h"

extern void initialise_monitor_handles(void); /* librdimon: opens stdin/stdout/stderr */
extern void __libc_init_array(void);
extern int main(int argc, char **argv);

void tinyc_harness_start(void) __attribute__((noreturn));

/* Called by __libc_init_array / __libc_fini_array; crti.o is not linked. */
void _init(void) {}
void _fini(void) {}

/* Heap for malloc: from the end of .bss up to the stack (see sections.ld). */
void *_sbrk(ptrdiff_t increment)
{
    static char *heap_end;
    if (heap_end == NULL) {
        heap_end = __tinyc_heap_start;
    }
    if ((increment > 0 && increment > __tinyc_heap_limit - heap_end) ||
        (increment < 0 && -increment > heap_end - __tinyc_heap_start)) {
        errno = ENOMEM;
        return (void *)-1;
    }
    char *previous = heap_end;
    heap_end += increment;
    return previous;
}

static void harness_report_at_exit(void)
{
    tinyc_profile_report();
}

void tinyc_harness_start(void)
{
    static char program_name[] = "firmware";
    static char *argv[] = {program_name, NULL};

    initialise_monitor_handles();
    __libc_init_array();
    tinyc_cycles_start();
    tinyc_profile_calibrate();
    atexit(harness_report_at_exit);

    tinyc_profile_main_begin();
    int status = main(1, argv);
    tinyc_profile_main_end();
    exit(status);
}

void tinyc_harness_fail(const char *message)
{
    tinyc_line line;
    tinyc_line_start(&line, "TINYC_FAULT harness");
    tinyc_line_str(&line, "error", message);
    tinyc_line_emit(&line);
    tinyc_semihost_exit(TINYC_FAULT_EXIT_CODE);
}

/* ----------------------------------------------------------------- faults */

#define SCB_CFSR (*(volatile uint32_t *)0xE000ED28u)
#define SCB_HFSR (*(volatile uint32_t *)0xE000ED2Cu)
#define SCB_MMFAR (*(volatile uint32_t *)0xE000ED34u)
#define SCB_BFAR (*(volatile uint32_t *)0xE000ED38u)
#define SAU_SFSR (*(volatile uint32_t *)0xE000EDE4u)

static const char *exception_name(uint32_t number)
{
    switch (number) {
    case 2: return "NMI";
    case 3: return "HardFault";
    case 4: return "MemManage";
    case 5: return "BusFault";
    case 6: return "UsageFault";
    case 7: return "SecureFault";
    case 11: return "SVCall";
    case 12: return "DebugMonitor";
    case 14: return "PendSV";
    default: return "exception";
    }
}

void tinyc_fault_report(const uint32_t *frame, uint32_t exc_return) __attribute__((noreturn, used));

void tinyc_fault_report(const uint32_t *frame, uint32_t exc_return)
{
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    uint32_t number = ipsr & 0x1FFu;

    tinyc_line line;
    tinyc_line_start(&line, "TINYC_FAULT");
    tinyc_line_str(&line, "exception", exception_name(number));
    tinyc_line_u64(&line, "number", number);
    /* The stacked frame is only trustworthy if it lies inside RAM. */
    uintptr_t address = (uintptr_t)frame;
    if (address >= (uintptr_t)__tinyc_ram_start && address + 32u <= (uintptr_t)__tinyc_stack_top) {
        tinyc_line_hex(&line, "pc", frame[6]);
        tinyc_line_hex(&line, "lr", frame[5]);
    }
    tinyc_line_hex(&line, "sp", (uint32_t)address);
    tinyc_line_hex(&line, "cfsr", SCB_CFSR);
    tinyc_line_hex(&line, "hfsr", SCB_HFSR);
    tinyc_line_hex(&line, "mmfar", SCB_MMFAR);
    tinyc_line_hex(&line, "bfar", SCB_BFAR);
#if defined(__ARM_ARCH_8M_MAIN__) || defined(__ARM_ARCH_8_1M_MAIN__)
    tinyc_line_hex(&line, "sfsr", SAU_SFSR);
#endif
    tinyc_line_hex(&line, "exc_return", exc_return);
    tinyc_line_emit(&line);
    tinyc_semihost_exit(TINYC_FAULT_EXIT_CODE);
}

/* Entry for every fault: pass the stacked frame (MSP or PSP, per EXC_RETURN
 * bit 2) to the reporter. Naked so no prologue touches a possibly bad stack. */
__attribute__((naked)) void tinyc_fault_entry(void)
{
    __asm__ volatile(
        "tst lr, #4\n"
        "ite eq\n"
        "mrseq r0, msp\n"
        "mrsne r0, psp\n"
        "mov r1, lr\n"
        "b tinyc_fault_report\n");
}
