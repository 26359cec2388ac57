/*
 * Constants shared by the harness C code, the startup and marker assembly,
 * and (by value) compiler/emulator.py. Only preprocessor definitions: this
 * file is included from assembly too.
 */
#ifndef TINYC_HARNESS_CONFIG_H
#define TINYC_HARNESS_CONFIG_H

/* Word written over the whole stack at reset; words still holding it were
 * never touched, which gives the stack low-water mark. */
#define TINYC_STACK_PAINT 0x5AFEC0DE

/* Number of user profiling regions (ids 0 .. TINYC_PROFILE_MAX_REGIONS-1).
 * Without TINYC_PROFILE no region table is built at all. */
#ifndef TINYC_PROFILE_MAX_REGIONS
#if defined(TINYC_PROFILE)
#define TINYC_PROFILE_MAX_REGIONS 512
#else
#define TINYC_PROFILE_MAX_REGIONS 0
#endif
#endif

/* Three slots after the user regions: the whole of main(), an empty region
 * measured once at start-up to calibrate the fixed cost of a begin/end pair,
 * and one inference of a generated model's test harness. */
#define TINYC_SLOT_MAIN (TINYC_PROFILE_MAX_REGIONS)
#define TINYC_SLOT_CALIBRATION (TINYC_PROFILE_MAX_REGIONS + 1)
#define TINYC_SLOT_INFERENCE (TINYC_PROFILE_MAX_REGIONS + 2)
#define TINYC_SLOT_COUNT (TINYC_PROFILE_MAX_REGIONS + 3)

/* How many regions may be open at once (nested). */
#define TINYC_PROFILE_MAX_DEPTH 8

/* Each slot has a begin and an end marker, 4 bytes apart in the marker table
 * (a `bx lr` padded to 4 bytes). The QEMU plugin counts instructions between
 * the executions of a slot's two markers. */
#define TINYC_MARKER_STRIDE 4
#define TINYC_MARKER_COUNT (2 * TINYC_SLOT_COUNT)

/* Exit status of a firmware stopped by a fault or a harness error. */
#define TINYC_FAULT_EXIT_CODE 125

#endif
