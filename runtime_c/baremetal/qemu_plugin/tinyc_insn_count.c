/*
 * QEMU TCG plugin: exact executed-instruction counts for the tinyc harness's
 * profiling slots. Built for the host (not the target) by compiler/emulator.py.
 *
 * Every guest instruction increments one counter (an inline add, so the cost
 * stays low). The firmware's marker table (runtime_c/baremetal/tinyc_markers.S)
 * has two entries per slot; executing entry 2k opens slot k, entry 2k+1 closes
 * it and adds the instructions executed in between. Instructions inside the
 * SysTick wrap handler can be excluded so that counts do not depend on the
 * timer. At exit the plugin writes, one line each:
 *     total <instructions executed by the whole run>
 *     slot <k> calls <n> insns <instructions inside slot k, summed over calls>
 *
 * Arguments (-plugin path,markers=0x...,count=N,out=FILE[,skip=0xLO-0xHI]):
 *     markers  address of the marker table   count  number of entries
 *     out      file to write                  skip   address range not counted
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tinyc_qemu_plugin_api.h"

TINYC_PLUGIN_EXPORT int qemu_plugin_version = TINYC_QEMU_PLUGIN_API_VERSION;

#define MARKER_STRIDE 4u
#define MAX_MARKERS 4096u

static uint64_t executed;
static uint64_t marker_base;
static uint64_t marker_count;
static uint64_t skip_low;
static uint64_t skip_high;
static char output_path[4096];

static uint64_t slot_start[MAX_MARKERS / 2];
static uint64_t slot_total[MAX_MARKERS / 2];
static uint64_t slot_calls[MAX_MARKERS / 2];
static unsigned char slot_open[MAX_MARKERS / 2];

static void on_marker(unsigned int vcpu_index, void *userdata)
{
    (void)vcpu_index;
    uint64_t entry = (uint64_t)(uintptr_t)userdata;
    uint64_t slot = entry / 2u;
    if (entry % 2u == 0u) {
        slot_open[slot] = 1u;
        slot_start[slot] = executed;
    } else if (slot_open[slot] != 0u) {
        slot_open[slot] = 0u;
        slot_total[slot] += executed - slot_start[slot];
        slot_calls[slot] += 1u;
    }
}

static void on_translate(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t count = qemu_plugin_tb_n_insns(tb);
    for (size_t index = 0; index < count; ++index) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, index);
        uint64_t address = qemu_plugin_insn_vaddr(insn);
        if (address >= skip_low && address < skip_high) {
            continue;
        }
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &executed, 1);
        uint64_t offset = address - marker_base;
        if (address >= marker_base && offset < marker_count * MARKER_STRIDE &&
            offset % MARKER_STRIDE == 0u) {
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_marker, QEMU_PLUGIN_CB_NO_REGS,
                                                   (void *)(uintptr_t)(offset / MARKER_STRIDE));
        }
    }
}

static void on_qemu_exit(qemu_plugin_id_t id, void *userdata)
{
    (void)id;
    (void)userdata;
    FILE *file = fopen(output_path, "w");
    if (file == NULL) {
        return;
    }
    fprintf(file, "total %" PRIu64 "\n", executed);
    for (uint64_t slot = 0; slot < marker_count / 2u; ++slot) {
        if (slot_calls[slot] != 0u) {
            fprintf(file, "slot %" PRIu64 " calls %" PRIu64 " insns %" PRIu64 "\n", slot,
                    slot_calls[slot], slot_total[slot]);
        }
    }
    fclose(file);
}

static int parse_u64(const char *text, uint64_t *value)
{
    char *end = NULL;
    *value = strtoull(text, &end, 0);
    return end != text && *end == '\0';
}

static int parse_argument(const char *argument)
{
    const char *equals = strchr(argument, '=');
    if (equals == NULL) {
        return 0;
    }
    size_t key_length = (size_t)(equals - argument);
    const char *value = equals + 1;
    if (key_length == 7 && strncmp(argument, "markers", 7) == 0) {
        return parse_u64(value, &marker_base);
    }
    if (key_length == 5 && strncmp(argument, "count", 5) == 0) {
        return parse_u64(value, &marker_count) && marker_count <= MAX_MARKERS;
    }
    if (key_length == 3 && strncmp(argument, "out", 3) == 0) {
        size_t length = strlen(value);
        if (length == 0 || length >= sizeof output_path) {
            return 0;
        }
        memcpy(output_path, value, length + 1);
        return 1;
    }
    if (key_length == 4 && strncmp(argument, "skip", 4) == 0) {
        char low_text[32];
        const char *dash = strchr(value, '-');
        if (dash == NULL || (size_t)(dash - value) >= sizeof low_text) {
            return 0;
        }
        memcpy(low_text, value, (size_t)(dash - value));
        low_text[dash - value] = '\0';
        return parse_u64(low_text, &skip_low) && parse_u64(dash + 1, &skip_high);
    }
    return 0;
}

TINYC_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info,
                                            int argc, char **argv)
{
    (void)info;
    for (int index = 0; index < argc; ++index) {
        if (!parse_argument(argv[index])) {
            fprintf(stderr, "tinyc_insn_count: bad argument '%s'\n", argv[index]);
            return -1;
        }
    }
    if (output_path[0] == '\0') {
        fprintf(stderr, "tinyc_insn_count: missing out=FILE\n");
        return -1;
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_atexit_cb(id, on_qemu_exit, NULL);
    return 0;
}
