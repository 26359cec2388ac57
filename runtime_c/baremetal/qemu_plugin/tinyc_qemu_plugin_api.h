/*
 * Declarations of the part of QEMU's TCG plugin interface (API version 1, as
 * in QEMU 7.2) that tinyc_insn_count.c uses, written from QEMU's plugin
 * documentation. Declaring only what we call keeps the build free of QEMU's
 * own header, which distributions do not ship. The functions are resolved
 * from the QEMU executable when it loads the plugin.
 */
#ifndef TINYC_QEMU_PLUGIN_API_H
#define TINYC_QEMU_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

#define TINYC_PLUGIN_EXPORT __attribute__((visibility("default")))

/* Plugin interface version we are written against. */
#define TINYC_QEMU_PLUGIN_API_VERSION 1

typedef uint64_t qemu_plugin_id_t;

struct qemu_info_t;      /* opaque here: we never read it */
struct qemu_plugin_tb;   /* a translation block being translated */
struct qemu_plugin_insn; /* one instruction of such a block */

/* Whether an execution callback reads or writes guest registers. */
enum qemu_plugin_cb_flags {
    QEMU_PLUGIN_CB_NO_REGS = 0,
    QEMU_PLUGIN_CB_R_REGS = 1,
    QEMU_PLUGIN_CB_RW_REGS = 2,
};

/* Inline operations QEMU can emit into translated code. */
enum qemu_plugin_op {
    QEMU_PLUGIN_INLINE_ADD_U64 = 0,
};

typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);

/* Exported by the plugin. */
extern TINYC_PLUGIN_EXPORT int qemu_plugin_version;
TINYC_PLUGIN_EXPORT int qemu_plugin_install(qemu_plugin_id_t id, const struct qemu_info_t *info,
                                            int argc, char **argv);

/* Provided by QEMU. */
void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *insn,
                                            qemu_plugin_vcpu_udata_cb_t cb,
                                            enum qemu_plugin_cb_flags flags, void *userdata);
void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *insn,
                                                enum qemu_plugin_op op, void *ptr, uint64_t imm);
void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *tb, size_t index);
uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *insn);

#endif
