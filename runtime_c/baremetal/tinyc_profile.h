/*
 * Cost measurement on the emulated Cortex-M boards.
 *
 * Under QEMU with `-icount shift=0` each executed instruction advances virtual
 * time by 1 ns, so the SysTick timer (clocked by the core clock) counts
 * executed instructions: one tick is 1e9 / core_hz instructions (40 on mps2 at
 * 25 MHz). tinyc_now() extends the 24-bit SysTick to 64 bits with a wrap
 * interrupt. When QEMU runs our instruction-counting plugin the host also
 * gets exact counts for every region (see README.md).
 *
 * Regions: wrap the code of interest in TINYC_PROFILE_BEGIN(id, "name") and
 * TINYC_PROFILE_END(id). They compile to nothing unless TINYC_PROFILE is
 * defined (pass it to every source of the firmware), so a normal build carries
 * no cost. Ids run from 0 to TINYC_PROFILE_MAX_REGIONS-1 (512 unless defined
 * otherwise); a region may run many times (counts add up) and regions may nest
 * up to TINYC_PROFILE_MAX_DEPTH deep, but a region must not be re-entered
 * before it ends. `name` must be a string literal (it is stored, not copied).
 * tinyc_profile_inference_begin/end bracket one inference of a model harness.
 * At exit the harness prints one line per region: calls, ticks, and the peak
 * stack used below the stack pointer at the region's begin.
 */
#ifndef TINYC_PROFILE_H
#define TINYC_PROFILE_H

#include <stdint.h>

#include "tinyc_harness_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Start the SysTick counter (the harness does it before main; idempotent). */
void tinyc_cycles_start(void);

/* SysTick ticks since tinyc_cycles_start(); monotonic, 64-bit. */
uint64_t tinyc_now(void);

/* Peak stack use in bytes since reset, from the painted stack. */
uint32_t tinyc_stack_peak(void);

/* User regions, ids 0 .. TINYC_PROFILE_MAX_REGIONS-1 (use the macros below). */
void tinyc_profile_begin(uint32_t id, const char *name, uintptr_t caller_sp);
void tinyc_profile_end(uint32_t id);

/* Any slot, including the harness's own (TINYC_SLOT_*). */
void tinyc_profile_slot_begin(uint32_t slot, const char *name, uintptr_t caller_sp);
void tinyc_profile_slot_end(uint32_t slot);

static inline __attribute__((always_inline)) uintptr_t tinyc_stack_pointer(void)
{
#if defined(__arm__)
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
#else
    return (uintptr_t)__builtin_frame_address(0);
#endif
}

/* One inference of a generated model (used by its test harness). */
static inline __attribute__((always_inline)) void tinyc_profile_inference_begin(void)
{
    tinyc_profile_slot_begin(TINYC_SLOT_INFERENCE, "inference", tinyc_stack_pointer());
}

static inline __attribute__((always_inline)) void tinyc_profile_inference_end(void)
{
    tinyc_profile_slot_end(TINYC_SLOT_INFERENCE);
}

#if defined(TINYC_PROFILE)
#define TINYC_PROFILE_BEGIN(id, name) tinyc_profile_begin((id), (name), tinyc_stack_pointer())
#define TINYC_PROFILE_END(id) tinyc_profile_end((id))
#else
#define TINYC_PROFILE_BEGIN(id, name) ((void)0)
#define TINYC_PROFILE_END(id) ((void)0)
#endif

#ifdef __cplusplus
}
#endif

#endif
