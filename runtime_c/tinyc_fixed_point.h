/*
 * tinyc runtime_c: fixed-point arithmetic of the TFLite int8 scheme (gemmlowp's primitives), shared by
 * every kernel. The Python statement of the same arithmetic is tinyc/quant_math.py; the two must agree
 * bit for bit.
 *
 * Every operation is written so that it has no undefined behaviour in C99: shifts that C leaves
 * undefined for negative or overflowing values go through uint32_t and wrap exactly like the
 * hardware's two's complement arithmetic (the conversion back to int32_t is modular on every compiler
 * tinyc supports).
 */
#ifndef TINYC_FIXED_POINT_H
#define TINYC_FIXED_POINT_H

#include <stdint.h>

#define TINYC_INT32_MIN (-0x7FFFFFFF - 1)
#define TINYC_INT32_MAX 0x7FFFFFFF

static inline int32_t tinyc_min_i32(int32_t a, int32_t b)
{
    return a < b ? a : b;
}

static inline int32_t tinyc_max_i32(int32_t a, int32_t b)
{
    return a > b ? a : b;
}

static inline int32_t tinyc_clamp_i32(int32_t x, int32_t lo, int32_t hi)
{
    return tinyc_min_i32(tinyc_max_i32(x, lo), hi);
}

/* x * 2^shift in 32-bit two's complement (wraps on overflow, like the CPU's LSL). */
static inline int32_t tinyc_shift_left_wrap(int32_t x, int32_t shift)
{
    return (int32_t)((uint32_t)x << shift);
}

/* round(a * b / 2^31), halves away from zero: the high word of the doubled 64-bit product.
   The only overflowing case, INT32_MIN * INT32_MIN, saturates to INT32_MAX. */
static inline int32_t tinyc_doubling_high_mul(int32_t a, int32_t b)
{
    const int64_t product = (int64_t)a * (int64_t)b;
    const int64_t nudge = product >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    if (a == TINYC_INT32_MIN && b == TINYC_INT32_MIN)
    {
        return TINYC_INT32_MAX;
    }
    /* C division truncates toward zero, which with the signed nudge rounds halves away from zero. */
    return (int32_t)((product + nudge) / ((int64_t)1 << 31));
}

/* round(x / 2^exponent), halves away from zero, for exponent >= 0. Exponents above 31 occur only in
   int8 softmax with very long rows; the exact result there is 0 except for -2^31 / 2^32 = -0.5. */
static inline int32_t tinyc_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    uint32_t mask;
    int32_t remainder;
    int32_t threshold;
    if (exponent > 31)
    {
        return (exponent == 32 && x == TINYC_INT32_MIN) ? -1 : 0;
    }
    mask = (exponent == 0) ? 0u : (0xFFFFFFFFu >> (32 - exponent));
    remainder = (int32_t)((uint32_t)x & mask);
    threshold = (int32_t)(mask >> 1) + (x < 0 ? 1 : 0);
    /* x >> exponent is an arithmetic shift (floor) on every supported compiler. */
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^exponent saturated to int32 (exponent in 0..31). */
static inline int32_t tinyc_saturating_shift_left(int32_t x, int32_t exponent)
{
    const int32_t limit = (int32_t)((0xFFFFFFFFu >> (exponent + 1)));  /* 2^(31-exponent) - 1 */
    if (x > limit)
    {
        return TINYC_INT32_MAX;
    }
    if (x < -limit)
    {
        return TINYC_INT32_MIN;
    }
    return tinyc_shift_left_wrap(x, exponent);
}

/* Requantise an int32 accumulator by a Q31 multiplier and a power-of-two shift with CMSIS-NN's default
   double rounding: a positive shift scales x up before the rounding high multiply, a negative one
   divides (rounding again) after it. */
static inline int32_t tinyc_requantize(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    return tinyc_rounding_divide_by_pot(tinyc_doubling_high_mul(tinyc_shift_left_wrap(x, left), multiplier),
                                        right);
}

/* requantise, add the output zero point, clamp to the activation range (itself within int8). */
static inline int8_t tinyc_requantize_to_s8(int32_t acc, int32_t multiplier, int32_t shift, int32_t output_offset,
                                            int32_t act_min, int32_t act_max)
{
    const int32_t y = tinyc_requantize(acc, multiplier, shift) + output_offset;
    return (int8_t)tinyc_clamp_i32(y, act_min, act_max);
}

/* Number of leading zero bits of x (32 for 0). */
static inline int32_t tinyc_count_leading_zeros(uint32_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return x == 0u ? 32 : (int32_t)__builtin_clz(x);
#else
    int32_t n = 0;
    if (x == 0u)
    {
        return 32;
    }
    while ((x & 0x80000000u) == 0u)
    {
        x <<= 1;
        ++n;
    }
    return n;
#endif
}

/* ---- exp and reciprocal for int8 softmax (gemmlowp's fixed-point algorithms) -------------------- */

/* exp(-1/8), 1/3 in Q0.31: round(value * 2^31). */
#define TINYC_Q31_EXP_MINUS_ONE_EIGHTH 1895147668
#define TINYC_Q31_ONE_THIRD 715827883

/* exp(a) for a in [-1/4, 0), a and result in Q0.31: fourth-order Taylor expansion around -1/8. */
static inline int32_t tinyc_exp_on_quarter_interval(int32_t a)
{
    const int32_t x = a + (1 << 28); /* x = a + 1/8 */
    const int32_t x2 = tinyc_doubling_high_mul(x, x);
    const int32_t x3 = tinyc_doubling_high_mul(x2, x);
    const int32_t x4 = tinyc_doubling_high_mul(x2, x2);
    const int32_t x4_over_4 = tinyc_rounding_divide_by_pot(x4, 2);
    /* x^4/24 + x^3/6 + x^2/2 = ((x^4/4 + x^3) / 3 + x^2) / 2 */
    const int32_t poly =
        tinyc_rounding_divide_by_pot(tinyc_doubling_high_mul(x4_over_4 + x3, TINYC_Q31_ONE_THIRD) + x2, 1);
    return TINYC_Q31_EXP_MINUS_ONE_EIGHTH + tinyc_doubling_high_mul(TINYC_Q31_EXP_MINUS_ONE_EIGHTH, x + poly);
}

/* exp(a) for a <= 0 given in Q5.26 (5 integer bits), result in Q0.31.
   a = q + r with r in [-1/4, 0) and -q a non-negative multiple of 1/4: exp(r) comes from the
   polynomial, and each set bit 2^k of -q (k = -2..4) multiplies by exp(-2^k). */
static inline int32_t tinyc_exp_on_negative_values(int32_t a)
{
    /* round(exp(-2^k) * 2^31) for k = -2, -1, 0, 1, 2, 3, 4 */
    static const int32_t exp_of_minus_power_of_two[7] = {1672461947, 1302514674, 790015084, 290630308,
                                                         39332535,   720401,     242};
    const int32_t quarter = 1 << 24; /* 1/4 in Q5.26 */
    const int32_t r = (int32_t)((uint32_t)a & (uint32_t)(quarter - 1)) - quarter;
    const int32_t minus_q = r - a;
    int32_t result = tinyc_exp_on_quarter_interval(r * 32); /* Q5.26 -> Q0.31, exact for |r| <= 1/4 */
    int32_t k;
    for (k = 0; k < 7; ++k)
    {
        if (((uint32_t)minus_q >> (24 + k)) & 1u)
        {
            result = tinyc_doubling_high_mul(result, exp_of_minus_power_of_two[k]);
        }
    }
    return a == 0 ? TINYC_INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), input and result in Q0.31: three Newton-Raphson steps for the
   reciprocal of d = (1 + a) / 2 in [1/2, 1), computed in Q2.29 from the start 48/17 - 32/17 * d. */
static inline int32_t tinyc_one_over_one_plus_x(int32_t a)
{
    const int32_t q29_48_over_17 = 1515870810;   /* round(48/17 * 2^29) */
    const int32_t q29_neg_32_over_17 = -1010580540; /* -round(32/17 * 2^29) */
    const int32_t q29_one = 1 << 29;
    const int64_t total = (int64_t)a + TINYC_INT32_MAX;
    /* (a + 1) / 2 rounded half away from zero */
    const int32_t half_denominator = (int32_t)((total + (total >= 0 ? 1 : -1)) / 2);
    int32_t x = q29_48_over_17 + tinyc_doubling_high_mul(half_denominator, q29_neg_32_over_17);
    int32_t i;
    for (i = 0; i < 3; ++i)
    {
        const int32_t half_denominator_times_x = tinyc_doubling_high_mul(half_denominator, x);
        const int32_t one_minus_half_denominator_times_x = q29_one - half_denominator_times_x;
        x += tinyc_saturating_shift_left(tinyc_doubling_high_mul(x, one_minus_half_denominator_times_x), 2);
    }
    return tinyc_saturating_shift_left(x, 1);
}

#endif /* TINYC_FIXED_POINT_H */
