#include "tinyc_semihost.h"

#define SEMIHOST_SYS_WRITE0 0x04u
#define SEMIHOST_SYS_EXIT_EXTENDED 0x20u
#define SEMIHOST_APPLICATION_EXIT 0x20026u

static uint32_t semihost_call(uint32_t operation, const void *argument)
{
    register uint32_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    /* BKPT 0xAB is the M-profile semihosting trap. */
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void tinyc_semihost_write(const char *text)
{
    semihost_call(SEMIHOST_SYS_WRITE0, text);
}

void tinyc_semihost_exit(int status)
{
    const uint32_t block[2] = {SEMIHOST_APPLICATION_EXIT, (uint32_t)status};
    semihost_call(SEMIHOST_SYS_EXIT_EXTENDED, block);
    for (;;) {
    }
}

static void line_append(tinyc_line *line, const char *text)
{
    /* Keep one byte for the newline and one for the terminator. */
    while (*text != '\0' && line->length + 2 < sizeof line->text) {
        line->text[line->length++] = *text++;
    }
    line->text[line->length] = '\0';
}

static void line_key(tinyc_line *line, const char *key)
{
    line_append(line, " ");
    line_append(line, key);
    line_append(line, "=");
}

void tinyc_line_start(tinyc_line *line, const char *tag)
{
    line->length = 0;
    line->text[0] = '\0';
    line_append(line, tag);
}

void tinyc_line_str(tinyc_line *line, const char *key, const char *value)
{
    line_key(line, key);
    line_append(line, value != 0 ? value : "?");
}

void tinyc_line_u64(tinyc_line *line, const char *key, uint64_t value)
{
    char digits[21];
    unsigned position = sizeof digits - 1;
    digits[position] = '\0';
    do {
        digits[--position] = (char)('0' + (unsigned)(value % 10u));
        value /= 10u;
    } while (value != 0u);
    line_key(line, key);
    line_append(line, &digits[position]);
}

void tinyc_line_hex(tinyc_line *line, const char *key, uint32_t value)
{
    static const char hex[] = "0123456789abcdef";
    char digits[11];
    digits[0] = '0';
    digits[1] = 'x';
    for (int nibble = 0; nibble < 8; ++nibble) {
        digits[2 + nibble] = hex[(value >> (28 - 4 * nibble)) & 0xFu];
    }
    digits[10] = '\0';
    line_key(line, key);
    line_append(line, digits);
}

void tinyc_line_emit(tinyc_line *line)
{
    line->text[line->length++] = '\n';
    line->text[line->length] = '\0';
    tinyc_semihost_write(line->text);
}
