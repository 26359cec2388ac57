/*
 * tinyc runtime_c: the optional DSP-extension path (Cortex-M4/M7/M33/M55) of the int8 inner product.
 *
 * TINYC_USE_DSP selects it: on by default when the compiler targets a core with the DSP extension,
 * off otherwise; -DTINYC_USE_DSP=0 forces the plain C loop, -DTINYC_USE_DSP=1 forces the DSP
 * algorithm even on a host, where each instruction runs as an exact C model of its definition in the
 * Armv7-M architecture manual (this is how the host tests prove the path bit-exact). On Arm the
 * wrappers are single instructions. The word loads assume a little-endian memory system.
 *
 * The algorithm: four int8 inputs and four int8 weights are loaded as one word each; SXTAB16 adds the
 * input offset to the sign-extended even (or, rotated by 8, odd) bytes, SXTB16 sign-extends the weight
 * bytes the same way, and SMLAD accumulates two 16 x 16 products per instruction. Integer addition is
 * associative, so the result equals the plain loop's exactly.
 */
#ifndef TINYC_SIMD_H
#define TINYC_SIMD_H

#include <stdint.h>
#include <string.h>

#ifndef TINYC_USE_DSP
    #if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1) && (defined(__GNUC__) || defined(__clang__)) && \
        !defined(__ARM_BIG_ENDIAN)
        #define TINYC_USE_DSP 1
    #else
        #define TINYC_USE_DSP 0
    #endif
#endif

#if TINYC_USE_DSP

    #if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1) && (defined(__GNUC__) || defined(__clang__))
        #define TINYC_DSP_INSTRUCTIONS 1
    #else
        #define TINYC_DSP_INSTRUCTIONS 0
    #endif

/* Sign-extend byte (index 0 and 2) of x into two halfwords; *_ror8 takes bytes 1 and 3. */
static inline uint32_t tinyc_sxtb16(uint32_t x)
{
    #if TINYC_DSP_INSTRUCTIONS
    uint32_t r;
    __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
    return r;
    #else
    const uint32_t lo = (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)(x & 0xFFu);
    const uint32_t hi = (uint32_t)(uint16_t)(int16_t)(int8_t)(uint8_t)((x >> 16) & 0xFFu);
    return lo | (hi << 16);
    #endif
}

static inline uint32_t tinyc_sxtb16_ror8(uint32_t x)
{
    #if TINYC_DSP_INSTRUCTIONS
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
    #else
    return tinyc_sxtb16((x >> 8) | (x << 24));
    #endif
}

/* Each halfword of a plus the sign-extended byte 0 (low) or 2 (high) of x, modulo 2^16. */
static inline uint32_t tinyc_sxtab16(uint32_t a, uint32_t x)
{
    #if TINYC_DSP_INSTRUCTIONS
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(x));
    return r;
    #else
    const uint32_t e = tinyc_sxtb16(x);
    const uint32_t lo = ((a & 0xFFFFu) + (e & 0xFFFFu)) & 0xFFFFu;
    const uint32_t hi = ((a >> 16) + (e >> 16)) & 0xFFFFu;
    return lo | (hi << 16);
    #endif
}

static inline uint32_t tinyc_sxtab16_ror8(uint32_t a, uint32_t x)
{
    #if TINYC_DSP_INSTRUCTIONS
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
    #else
    return tinyc_sxtab16(a, (x >> 8) | (x << 24));
    #endif
}

/* acc + a.lo * b.lo + a.hi * b.hi, halfwords signed, modulo 2^32. */
static inline int32_t tinyc_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    #if TINYC_DSP_INSTRUCTIONS
    int32_t r;
    __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
    return r;
    #else
    const int64_t lo = (int64_t)(int16_t)(uint16_t)(a & 0xFFFFu) * (int16_t)(uint16_t)(b & 0xFFFFu);
    const int64_t hi = (int64_t)(int16_t)(uint16_t)(a >> 16) * (int16_t)(uint16_t)(b >> 16);
    return (int32_t)(uint32_t)((uint64_t)((int64_t)acc + lo + hi) & 0xFFFFFFFFu);
    #endif
}

/* sum over i < n of (x[i] + x_offset) * w[i], four elements per step (x_offset in int16 range). */
static inline int32_t tinyc_dsp_dot_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t x_offset)
{
    const uint32_t offset_pair = (uint32_t)(uint16_t)x_offset | ((uint32_t)(uint16_t)x_offset << 16);
    int32_t acc = 0;
    int32_t i = 0;
    for (; i + 4 <= n; i += 4)
    {
        uint32_t x_word;
        uint32_t w_word;
        /* memcpy: an unaligned word load without breaking C's aliasing rules (one LDR on Arm). */
        memcpy(&x_word, x + i, sizeof(x_word));
        memcpy(&w_word, w + i, sizeof(w_word));
        acc = tinyc_smlad(tinyc_sxtab16(offset_pair, x_word), tinyc_sxtb16(w_word), acc);
        acc = tinyc_smlad(tinyc_sxtab16_ror8(offset_pair, x_word), tinyc_sxtb16_ror8(w_word), acc);
    }
    for (; i < n; ++i)
    {
        acc += ((int32_t)x[i] + x_offset) * (int32_t)w[i];
    }
    return acc;
}

#endif /* TINYC_USE_DSP */

#endif /* TINYC_SIMD_H */
