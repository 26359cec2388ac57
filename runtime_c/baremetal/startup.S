/*
 * Vector table and reset handler for the tinyc bare-metal harness.
 *
 * Written in assembly on purpose: the reset handler must enable the FPU before
 * any compiler-generated code runs (GCC may use FP or MVE registers to copy or
 * clear memory), and it paints the stack while no C frame lives on it.
 */
    .syntax unified
    .thumb

#include "tinyc_harness_config.h"

/* ---- Vector table: the core reads SP and the reset PC from its first two
 * words. Every fault and unexpected exception goes to one reporter. ---- */
    .section .tinyc_vectors, "a", %progbits
    .p2align 7
    .global tinyc_vector_table
tinyc_vector_table:
    .word __tinyc_stack_top
    .word tinyc_reset_handler
    .word tinyc_fault_entry         /* NMI */
    .word tinyc_fault_entry         /* HardFault */
    .word tinyc_fault_entry         /* MemManage */
    .word tinyc_fault_entry         /* BusFault */
    .word tinyc_fault_entry         /* UsageFault */
    .word tinyc_fault_entry         /* SecureFault (Armv8-M), reserved on v7-M */
    .word 0
    .word 0
    .word 0
    .word tinyc_fault_entry         /* SVCall */
    .word tinyc_fault_entry         /* DebugMonitor */
    .word 0
    .word tinyc_fault_entry         /* PendSV */
    .word tinyc_systick_handler     /* SysTick: extends the 24-bit counter */
    .size tinyc_vector_table, . - tinyc_vector_table

/* ---- Reset handler ---- */
    .section .text.tinyc_reset_handler, "ax", %progbits
    .global tinyc_reset_handler
    .type tinyc_reset_handler, %function
    .thumb_func
tinyc_reset_handler:
    ldr     r0, =__tinyc_stack_top
    mov     sp, r0

#if defined(__ARM_FP) || defined(__ARM_FEATURE_MVE)
    /* CPACR: full access to CP10 and CP11 (FPU and MVE), then make sure the
     * write takes effect before the next instruction. */
    ldr     r0, =0xE000ED88
    ldr     r1, [r0]
    orr     r1, r1, #(0xF << 20)
    str     r1, [r0]
    dsb
    isb
#endif

    /* Copy the initialised data from its load image into RAM. */
    ldr     r0, =__tinyc_data_start
    ldr     r1, =__tinyc_data_end
    ldr     r2, =__tinyc_data_load
1:  cmp     r0, r1
    bhs     2f
    ldr     r3, [r2], #4
    str     r3, [r0], #4
    b       1b
2:
    /* Zero .bss. */
    ldr     r0, =__tinyc_bss_start
    ldr     r1, =__tinyc_bss_end
    movs    r2, #0
3:  cmp     r0, r1
    bhs     4f
    str     r2, [r0], #4
    b       3b
4:
    /* Paint the whole stack so its low-water mark can be found later. */
    ldr     r0, =__tinyc_stack_limit
    mov     r1, sp
    ldr     r2, =TINYC_STACK_PAINT
5:  cmp     r0, r1
    bhs     6f
    str     r2, [r0], #4
    b       5b
6:
    bl      tinyc_harness_start
    /* tinyc_harness_start never returns; stop here if it ever does. */
7:  b       7b
    .pool
    .size tinyc_reset_handler, . - tinyc_reset_handler
