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

/* gemmlowp's SaturatingRoundingDoublingHighMul: (a * b + 2^30) / 2^31 in 64 bits, the division
   truncating toward zero after a nudge of +2^30 (product >= 0) or 1 - 2^30 (product < 0). Both cases
   equal floor((a * b + 2^30) / 2^31): for a negative product p, trunc((p + 1 - 2^30) / 2^31) =
   ceil((p + 1 - 2^30) / 2^31) = floor((p + 2^30) / 2^31). So one 64-bit add and an arithmetic shift,
   which is what the Cortex-M inner loops want (SMLAL-like code, no division). The only overflowing
   case, INT32_MIN * INT32_MIN, saturates to INT32_MAX. */
static inline int32_t tinyc_doubling_high_mul(int32_t a, int32_t b)
{
    if (a == TINYC_INT32_MIN && b == TINYC_INT32_MIN)
    {
        return TINYC_INT32_MAX;
    }
    /* >> on a negative int64_t is an arithmetic shift (floor) on every supported compiler. */
    return (int32_t)(((int64_t)a * (int64_t)b + ((int64_t)1 << 30)) >> 31);
}

/* round(x / 2^exponent), halves away from zero, for exponent >= 0. Exponents above 31 occur only in
   int8 softmax with very long rows; the exact result there is 0 except for -2^31 / 2^32 = -0.5. */
static inline int32_t tinyc_rounding_divide_by_pot(int32_t x, int32_t exponent)
{
    int32_t floor_quotient;
    int32_t remainder;
    if (exponent <= 0)
    {
        return x;
    }
    if (exponent > 31)
    {
        return (exponent == 32 && x == TINYC_INT32_MIN) ? -1 : 0;
    }
    /* x >> exponent is an arithmetic shift (floor) on every supported compiler; the remainder is in
       [0, 2^exponent). Round up when it is above one half, or exactly one half and x >= 0. */
    floor_quotient = x >> exponent;
    remainder = (int32_t)((uint32_t)x - ((uint32_t)floor_quotient << exponent));
    return floor_quotient + ((remainder + (x >= 0 ? 1 : 0)) > ((int32_t)1 << (exponent - 1)) ? 1 : 0);
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

/* ---- requantisation for tinyc's own kernels -------------------------------------------------------
   The same arithmetic as tinyc_requantize_to_s8 for multipliers in [0, 2^31) (all that tinyc's
   requantisation produces), in fewer instructions:
   - the rounding high multiply cannot saturate, so it is one 64-bit multiply-add and a shift;
   - rounding x / 2^r (r >= 1) halves away from zero is ((((x - [x < 0]) >> (r - 1)) + 1) >> 1): with
     t = x - [x < 0] it is floor((t + 2^(r-1)) / 2^r), and floor((t / 2^(r-1) + 1) / 2) only depends on
     floor(t / 2^(r-1)). Nothing overflows: |x| < 2^31 - 1 after a multiplier below 2^31. */
typedef struct
{
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} tinyc_output_range;

static inline int32_t tinyc_high_mul_unsaturated(int32_t x, int32_t multiplier)
{
    return (int32_t)(((int64_t)x * (int64_t)multiplier + ((int64_t)1 << 30)) >> 31);
}

static inline int32_t tinyc_round_shift_right(int32_t x, int32_t right_minus_one)
{
    const int32_t t = x - (int32_t)((uint32_t)x >> 31);
    return ((t >> right_minus_one) + 1) >> 1;
}

static inline int8_t tinyc_clamp_to_s8(int32_t y, const tinyc_output_range *range)
{
    return (int8_t)tinyc_clamp_i32(y + range->output_offset, range->act_min, range->act_max);
}

/* Two accumulators that share a channel's multiplier and shift: the shift is tested once for both
   (written as two calls of tinyc_requantize_one_to_s8, GCC 12 tests it twice: KWS +0.9 %). */
static inline void tinyc_requantize_pair_to_s8(int32_t a, int32_t b, int32_t multiplier, int32_t shift,
                                               const tinyc_output_range *range, int8_t *out_a, int8_t *out_b)
{
    if (shift >= 0)
    {
        a = tinyc_high_mul_unsaturated(tinyc_shift_left_wrap(a, shift), multiplier);
        b = tinyc_high_mul_unsaturated(tinyc_shift_left_wrap(b, shift), multiplier);
    }
    else if (shift >= -31)
    {
        a = tinyc_round_shift_right(tinyc_high_mul_unsaturated(a, multiplier), -shift - 1);
        b = tinyc_round_shift_right(tinyc_high_mul_unsaturated(b, multiplier), -shift - 1);
    }
    else
    {
        a = tinyc_rounding_divide_by_pot(tinyc_high_mul_unsaturated(a, multiplier), -shift);
        b = tinyc_rounding_divide_by_pot(tinyc_high_mul_unsaturated(b, multiplier), -shift);
    }
    *out_a = tinyc_clamp_to_s8(a, range);
    *out_b = tinyc_clamp_to_s8(b, range);
}

static inline int8_t tinyc_requantize_one_to_s8(int32_t a, int32_t multiplier, int32_t shift,
                                                const tinyc_output_range *range)
{
    if (shift >= 0)
    {
        a = tinyc_high_mul_unsaturated(tinyc_shift_left_wrap(a, shift), multiplier);
    }
    else if (shift >= -31)
    {
        a = tinyc_round_shift_right(tinyc_high_mul_unsaturated(a, multiplier), -shift - 1);
    }
    else
    {
        a = tinyc_rounding_divide_by_pot(tinyc_high_mul_unsaturated(a, multiplier), -shift);
    }
    return tinyc_clamp_to_s8(a, range);
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
