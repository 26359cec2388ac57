/*
 * Minimal direct semihosting calls used by the harness itself, so that its
 * reports and fault messages work without printf and even when the C library
 * state is broken. User programs use stdio (newlib + librdimon) as usual.
 */
#ifndef TINYC_SEMIHOST_H
#define TINYC_SEMIHOST_H

#include <stdint.h>

/* Write a NUL-terminated string to the host console (SYS_WRITE0). */
void tinyc_semihost_write(const char *text);

/* Stop the emulator with the given exit status (SYS_EXIT_EXTENDED). */
void tinyc_semihost_exit(int status) __attribute__((noreturn));

/* Small line builder for "KEY key=value ..." report lines. */
typedef struct {
    char text[256];
    unsigned length;
} tinyc_line;

void tinyc_line_start(tinyc_line *line, const char *tag);
void tinyc_line_str(tinyc_line *line, const char *key, const char *value);
void tinyc_line_u64(tinyc_line *line, const char *key, uint64_t value);
void tinyc_line_hex(tinyc_line *line, const char *key, uint32_t value);
/* Append a newline and write the line to the console. */
void tinyc_line_emit(tinyc_line *line);

#endif
