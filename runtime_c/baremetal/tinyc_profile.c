#include "tinyc_profile.h"

#include "tinyc_harness_internal.h"
#include "tinyc_semihost.h"

/* ---------------------------------------------------------------- SysTick */

#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define SCB_ICSR (*(volatile uint32_t *)0xE000ED04u)

#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE_CORE (1u << 2)
#define SCB_ICSR_PENDSTSET (1u << 26)
#define SYSTICK_RELOAD 0x00FFFFFFu
#define SYSTICK_PERIOD (SYSTICK_RELOAD + 1u)

static volatile uint32_t systick_wraps;

void tinyc_systick_handler(void)
{
    systick_wraps = systick_wraps + 1u;
}

void tinyc_cycles_start(void)
{
    if ((SYST_CSR & SYST_CSR_ENABLE) != 0u) {
        return;
    }
    systick_wraps = 0u;
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0u; /* any write clears the counter; it reloads on the next tick */
    /* Core clock (on the SSE boards the reference clock is not wired). */
    SYST_CSR = SYST_CSR_CLKSOURCE_CORE | SYST_CSR_TICKINT | SYST_CSR_ENABLE;
}

uint64_t tinyc_now(void)
{
    uint32_t wraps;
    uint32_t value;
    uint32_t pending;
    do {
        wraps = systick_wraps;
        value = SYST_CVR;
        pending = SCB_ICSR & SCB_ICSR_PENDSTSET;
    } while (wraps != systick_wraps);
    /* A wrap whose interrupt has not run yet (interrupts masked): the counter
     * has just reloaded, so it reads high. */
    if (pending != 0u && value >= SYSTICK_PERIOD / 2u) {
        wraps += 1u;
    }
    return (uint64_t)wraps * SYSTICK_PERIOD + (SYSTICK_RELOAD - value);
}

/* ------------------------------------------------------------------ stack */

static uintptr_t stack_deepest = 0; /* lowest touched address seen; 0: none yet */

/* Lowest stack address that no longer holds the paint pattern. Inlined so no
 * extra frame of ours sits below the caller's stack pointer. */
static inline __attribute__((always_inline)) uintptr_t stack_low_water(void)
{
    const volatile uint32_t *word = __tinyc_stack_limit;
    while (word < __tinyc_stack_top && *word == TINYC_STACK_PAINT) {
        ++word;
    }
    uintptr_t low = (uintptr_t)word;
    if (stack_deepest == 0u || low < stack_deepest) {
        stack_deepest = low;
    }
    return low;
}

uint32_t tinyc_stack_peak(void)
{
    stack_low_water();
    return (uint32_t)((uintptr_t)__tinyc_stack_top - stack_deepest);
}

/* --------------------------------------------------------------- markers */

extern const uint16_t tinyc_profile_markers[];

typedef void (*marker_fn)(void);

static inline __attribute__((always_inline)) void call_marker(uint32_t index)
{
    /* +1: the entries are Thumb code. */
    uintptr_t address = (uintptr_t)tinyc_profile_markers + index * TINYC_MARKER_STRIDE + 1u;
    ((marker_fn)address)();
}

/* ---------------------------------------------------------------- regions */

typedef struct {
    const char *name;
    uint64_t ticks;
    uint64_t start;
    uint32_t calls;
    uint32_t stack_peak;
    uintptr_t entry_sp; /* caller's stack pointer at begin */
    uintptr_t deepest;  /* lowest stack address used during the current call */
    uint32_t open;
} region_record;

static region_record slots[TINYC_SLOT_COUNT];
static uint32_t open_slots[TINYC_PROFILE_MAX_DEPTH];
static uint32_t open_depth;
static uint32_t main_finished;

/* Every begin repaints the stack, which erases the traces of what the regions
 * already open have used; fold the low-water mark into them first. */
static void note_low_water_for_open_regions(uintptr_t low)
{
    for (uint32_t index = 0; index < open_depth; ++index) {
        region_record *record = &slots[open_slots[index]];
        if (low < record->deepest) {
            record->deepest = low;
        }
    }
}

static inline __attribute__((always_inline)) void slot_begin(uint32_t slot, uint32_t limit,
                                                             const char *name, uintptr_t caller_sp)
{
    if (slot >= limit) {
        tinyc_harness_fail("profile region id out of range (see TINYC_PROFILE_MAX_REGIONS)");
    }
    region_record *record = &slots[slot];
    if (record->open != 0u) {
        tinyc_harness_fail("profile region begun again before its end");
    }
    if (open_depth == TINYC_PROFILE_MAX_DEPTH) {
        tinyc_harness_fail("profile regions nested deeper than TINYC_PROFILE_MAX_DEPTH");
    }
    uintptr_t low = stack_low_water();
    note_low_water_for_open_regions(low);
    /* Repaint what earlier code dirtied, up to our own stack pointer (memory
     * below it is free), so that the end sees only this region's use. */
    uintptr_t here = tinyc_stack_pointer() & ~(uintptr_t)3u;
    for (volatile uint32_t *word = (volatile uint32_t *)low; (uintptr_t)word < here; ++word) {
        *word = TINYC_STACK_PAINT;
    }
    record->name = name;
    record->entry_sp = caller_sp;
    record->deepest = caller_sp;
    record->open = 1u;
    open_slots[open_depth++] = slot;
    record->start = tinyc_now();
    call_marker(2u * slot);
}

static inline __attribute__((always_inline)) void slot_end(uint32_t slot, uint32_t limit)
{
    if (slot >= limit) {
        tinyc_harness_fail("profile region id out of range (see TINYC_PROFILE_MAX_REGIONS)");
    }
    call_marker(2u * slot + 1u);
    uint64_t stop = tinyc_now();
    region_record *record = &slots[slot];
    if (record->open == 0u) {
        tinyc_harness_fail("profile region ended without a begin");
    }
    note_low_water_for_open_regions(stack_low_water());
    uint32_t position = 0;
    while (open_slots[position] != slot) {
        ++position;
    }
    for (; position + 1u < open_depth; ++position) {
        open_slots[position] = open_slots[position + 1u];
    }
    open_depth -= 1u;
    record->open = 0u;
    record->ticks += stop - record->start;
    record->calls += 1u;
    uint32_t used = record->entry_sp > record->deepest ? (uint32_t)(record->entry_sp - record->deepest) : 0u;
    if (used > record->stack_peak) {
        record->stack_peak = used;
    }
}

void tinyc_profile_begin(uint32_t id, const char *name, uintptr_t caller_sp)
{
    slot_begin(id, TINYC_PROFILE_MAX_REGIONS, name, caller_sp);
}

void tinyc_profile_end(uint32_t id)
{
    slot_end(id, TINYC_PROFILE_MAX_REGIONS);
}

void tinyc_profile_slot_begin(uint32_t slot, const char *name, uintptr_t caller_sp)
{
    slot_begin(slot, TINYC_SLOT_COUNT, name, caller_sp);
}

void tinyc_profile_slot_end(uint32_t slot)
{
    slot_end(slot, TINYC_SLOT_COUNT);
}

/* An empty region through the same call shape as TINYC_PROFILE_BEGIN/END. */
void tinyc_profile_calibrate(void)
{
    tinyc_profile_slot_begin(TINYC_SLOT_CALIBRATION, "calibration", tinyc_stack_pointer());
    tinyc_profile_slot_end(TINYC_SLOT_CALIBRATION);
}

void tinyc_profile_main_begin(void)
{
    region_record *record = &slots[TINYC_SLOT_MAIN];
    record->name = "main";
    record->start = tinyc_now();
    call_marker(2u * TINYC_SLOT_MAIN);
}

void tinyc_profile_main_end(void)
{
    call_marker(2u * TINYC_SLOT_MAIN + 1u);
    uint64_t stop = tinyc_now();
    if (main_finished == 0u) {
        main_finished = 1u;
        slots[TINYC_SLOT_MAIN].ticks = stop - slots[TINYC_SLOT_MAIN].start;
        slots[TINYC_SLOT_MAIN].calls = 1u;
    }
}

static void report_slot(const char *tag, uint32_t slot)
{
    const region_record *record = &slots[slot];
    tinyc_line line;
    tinyc_line_start(&line, tag);
    tinyc_line_u64(&line, "id", slot);
    tinyc_line_u64(&line, "calls", record->calls);
    tinyc_line_u64(&line, "ticks", record->ticks);
    tinyc_line_u64(&line, "stack", record->stack_peak);
    tinyc_line_str(&line, "name", record->name);
    tinyc_line_emit(&line);
}

/* ----------------------------------------------------------------- report */

void tinyc_profile_report(void)
{
    if (main_finished == 0u) {
        /* exit() was called from inside main: close the main slot here. */
        tinyc_profile_main_end();
    }
    uint32_t stack_size = (uint32_t)((uintptr_t)__tinyc_stack_top - (uintptr_t)__tinyc_stack_limit);

    tinyc_line line;
    tinyc_line_start(&line, "TINYC_MAIN");
    tinyc_line_u64(&line, "id", TINYC_SLOT_MAIN);
    tinyc_line_u64(&line, "ticks", slots[TINYC_SLOT_MAIN].ticks);
    tinyc_line_u64(&line, "stack_peak", tinyc_stack_peak());
    tinyc_line_u64(&line, "stack_size", stack_size);
    tinyc_line_emit(&line);

    report_slot("TINYC_CALIBRATION", TINYC_SLOT_CALIBRATION);
    if (slots[TINYC_SLOT_INFERENCE].calls != 0u) {
        report_slot("TINYC_INFERENCE", TINYC_SLOT_INFERENCE);
    }
#if TINYC_PROFILE_MAX_REGIONS > 0
    for (uint32_t id = 0; id < TINYC_PROFILE_MAX_REGIONS; ++id) {
        if (slots[id].calls != 0u) {
            report_slot("TINYC_REGION", id);
        }
    }
#endif
}
