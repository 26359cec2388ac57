/*
 * Profiling marker table: TINYC_MARKER_COUNT entries, each a `bx lr` padded
 * to TINYC_MARKER_STRIDE bytes. Slot k's begin marker is entry 2k, its end
 * marker entry 2k+1. The harness calls an entry at the edge of a measured
 * region; the QEMU plugin (qemu_plugin/tinyc_insn_count.c) recognises the
 * entries by address and counts the instructions executed between them.
 * Without the plugin a call costs two instructions and does nothing.
 */
    .syntax unified
    .thumb

#include "tinyc_harness_config.h"

    .section .text.tinyc_profile_markers, "ax", %progbits
    .p2align 2
    .global tinyc_profile_markers
    .type tinyc_profile_markers, %object
tinyc_profile_markers:
    .rept TINYC_MARKER_COUNT
    bx      lr
    nop
    .endr
    .size tinyc_profile_markers, . - tinyc_profile_markers
