/*
 * Functions shared between the harness translation units; not for user code.
 */
#ifndef TINYC_HARNESS_INTERNAL_H
#define TINYC_HARNESS_INTERNAL_H

#include <stdint.h>

/* Print "TINYC_FAULT harness <message>" and stop the emulator. */
void tinyc_harness_fail(const char *message) __attribute__((noreturn));

/* Measure an empty region once, so the host can remove the fixed cost of a
 * begin/end pair from every region. */
void tinyc_profile_calibrate(void);

/* Bracket the call of main() (slot TINYC_SLOT_MAIN). */
void tinyc_profile_main_begin(void);
void tinyc_profile_main_end(void);

/* Print the TINYC_MAIN, TINYC_CALIBRATION and TINYC_REGION report lines. */
void tinyc_profile_report(void);

/* SysTick exception handler, referenced from the vector table. */
void tinyc_systick_handler(void);

/* Linker-script symbols (see ld/sections.ld). */
extern uint32_t __tinyc_ram_start[];
extern uint32_t __tinyc_stack_limit[];
extern uint32_t __tinyc_stack_top[];
extern char __tinyc_heap_start[];
extern char __tinyc_heap_limit[];

#endif
