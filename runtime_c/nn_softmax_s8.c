/*
 * tinyc runtime_c: int8 softmax of the CMSIS-NN API (the TFLite / gemmlowp fixed-point scheme).
 *
 * Per row: d = x - max(row) <= 0 is scaled into Q5.26 by mult * 2^shift; exp(d) in Q0.31 is summed in
 * Q12.19 (12 integer bits: up to 4096 terms of at most 1); the reciprocal of the sum, normalised to
 * [1, 2), scales every exp(d) to the int8 output with scale 1/256 and zero point -128. Differences
 * below diff_min contribute exp(d) = 0 and give the output -128.
 */
#include "nn_internal.h"

#define SOFTMAX_ACCUM_INTEGER_BITS 12

/* exp(x - max) in Q0.31 for one element that passed the diff_min test. */
static int32_t softmax_exp(int32_t diff, int32_t mult, int32_t shift)
{
    return tinyc_exp_on_negative_values(tinyc_doubling_high_mul(tinyc_shift_left_wrap(diff, shift), mult));
}

void arm_softmax_s8(const int8_t *input,
                    const int32_t num_rows,
                    const int32_t row_size,
                    const int32_t mult,
                    const int32_t shift,
                    const int32_t diff_min,
                    int8_t *output)
{
    int32_t r, i;
    for (r = 0; r < num_rows; ++r)
    {
        const int8_t *in = input + r * row_size;
        int8_t *out = output + r * row_size;
        int32_t largest = in[0];
        uint32_t sum = 0; /* Q12.19; unsigned so that rows of more than 4095 maxima wrap, not trap */
        int32_t headroom;
        int32_t reciprocal;
        int32_t bits_over_unit;

        for (i = 1; i < row_size; ++i)
        {
            largest = tinyc_max_i32(largest, in[i]);
        }
        for (i = 0; i < row_size; ++i)
        {
            const int32_t diff = in[i] - largest;
            if (diff >= diff_min)
            {
                sum += (uint32_t)tinyc_rounding_divide_by_pot(softmax_exp(diff, mult, shift),
                                                              SOFTMAX_ACCUM_INTEGER_BITS);
            }
        }
        /* sum = 2^(bits) * (1 + f) with f in [0, 1): 1 / (1 + f) from the fixed-point reciprocal.
           A row where nothing passed diff_min (only with a positive diff_min) normalises to 0. */
        headroom = tinyc_count_leading_zeros(sum);
        reciprocal = tinyc_one_over_one_plus_x(
            (int32_t)(((int32_t)sum > 0 ? (sum << headroom) : 0u) - 0x80000000u));
        bits_over_unit = SOFTMAX_ACCUM_INTEGER_BITS - headroom + 31 - 8;
        for (i = 0; i < row_size; ++i)
        {
            const int32_t diff = in[i] - largest;
            if (diff >= diff_min)
            {
                const int32_t scaled =
                    tinyc_rounding_divide_by_pot(tinyc_doubling_high_mul(reciprocal, softmax_exp(diff, mult, shift)),
                                                 bits_over_unit);
                out[i] = (int8_t)tinyc_clamp_i32(scaled - 128, -128, 127);
            }
            else
            {
                out[i] = -128;
            }
        }
    }
}
