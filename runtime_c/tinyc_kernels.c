/*
 * tinyc runtime_c: tinyc's own kernels (see tinyc_kernels.h for each contract).
 */
#include "tinyc_kernels.h"

#include <string.h>

#include "tinyc_fixed_point.h"

void tinyc_lut_s8(const int8_t *input, int8_t *output, int32_t size, const int8_t *table)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = table[(int32_t)input[i] + 128];
    }
}

/* ---- quantize / dequantize -------------------------------------------------------------------- */

/* round_half_to_even(x / scale) + zero_point, saturated to [lo, hi]. Written without libm and without
   relying on the FPU rounding mode: only the division rounds (IEEE float32, as numpy's), the rest is
   exact. Quotients beyond +-1024 saturate whatever the zero point, so they are clamped first. */
static int32_t quantize_one(float x, float scale, int32_t zero_point, int32_t lo, int32_t hi)
{
    const float q = x / scale;
    int32_t rounded;
    if (q != q) /* NaN has no integer image: map it to the image of 0 */
    {
        rounded = 0;
    }
    else if (q >= 1024.0f)
    {
        rounded = 1024;
    }
    else if (q <= -1024.0f)
    {
        rounded = -1024;
    }
    else
    {
        const int32_t truncated = (int32_t)q;
        const float fraction = q - (float)truncated; /* exact for |q| < 1024 */
        const int32_t odd = truncated & 1;
        rounded = truncated;
        if (fraction > 0.5f || (fraction == 0.5f && odd))
        {
            rounded = truncated + 1;
        }
        else if (fraction < -0.5f || (fraction == -0.5f && odd))
        {
            rounded = truncated - 1;
        }
    }
    return tinyc_clamp_i32(rounded + zero_point, lo, hi);
}

void tinyc_quantize_f32_s8(const float *input, int8_t *output, int32_t size, float scale, int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = (int8_t)quantize_one(input[i], scale, zero_point, -128, 127);
    }
}

void tinyc_quantize_f32_u8(const float *input, uint8_t *output, int32_t size, float scale, int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = (uint8_t)quantize_one(input[i], scale, zero_point, 0, 255);
    }
}

void tinyc_dequantize_s8_f32(const int8_t *input, float *output, int32_t size, float scale, int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = (float)((int32_t)input[i] - zero_point) * scale;
    }
}

void tinyc_dequantize_u8_f32(const uint8_t *input, float *output, int32_t size, float scale, int32_t zero_point)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = (float)((int32_t)input[i] - zero_point) * scale;
    }
}

/* ---- rescale ---------------------------------------------------------------------------------- */

/* The requantised value is clamped to +-2^16 before the output offset is added: the result is then
   clamped to 8 bits anyway, so this changes nothing but keeps the addition from overflowing for any
   multiplier and shift. */
static int32_t rescale_one(int32_t x, int32_t input_offset, int32_t multiplier, int32_t shift, int32_t output_offset)
{
    return tinyc_clamp_i32(tinyc_requantize(x + input_offset, multiplier, shift), -65536, 65536) + output_offset;
}

void tinyc_rescale_s8(const int8_t *input,
                      int8_t *output,
                      int32_t size,
                      int32_t input_offset,
                      int32_t multiplier,
                      int32_t shift,
                      int32_t output_offset)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = (int8_t)tinyc_clamp_i32(rescale_one(input[i], input_offset, multiplier, shift, output_offset),
                                            -128, 127);
    }
}

void tinyc_rescale_u8_s8(const uint8_t *input,
                         int8_t *output,
                         int32_t size,
                         int32_t input_offset,
                         int32_t multiplier,
                         int32_t shift,
                         int32_t output_offset)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = (int8_t)tinyc_clamp_i32(rescale_one(input[i], input_offset, multiplier, shift, output_offset),
                                            -128, 127);
    }
}

void tinyc_rescale_s8_u8(const int8_t *input,
                         uint8_t *output,
                         int32_t size,
                         int32_t input_offset,
                         int32_t multiplier,
                         int32_t shift,
                         int32_t output_offset)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = (uint8_t)tinyc_clamp_i32(rescale_one(input[i], input_offset, multiplier, shift, output_offset),
                                             0, 255);
    }
}

/* ---- transpose -------------------------------------------------------------------------------- */

/* For output axis i: its extent and the input stride (in elements) that one step along it moves. */
static void transpose_steps(const int32_t *input_shape, const int32_t *perm, int32_t *output_shape, int32_t *steps)
{
    int32_t input_strides[4];
    int32_t i;
    input_strides[3] = 1;
    for (i = 2; i >= 0; --i)
    {
        input_strides[i] = input_strides[i + 1] * input_shape[i + 1];
    }
    for (i = 0; i < 4; ++i)
    {
        output_shape[i] = input_shape[perm[i]];
        steps[i] = input_strides[perm[i]];
    }
}

void tinyc_transpose_s8(const int8_t *input, int8_t *output, const int32_t *input_shape, const int32_t *perm)
{
    int32_t s[4], step[4], a, b, c, d;
    transpose_steps(input_shape, perm, s, step);
    for (a = 0; a < s[0]; ++a)
        for (b = 0; b < s[1]; ++b)
            for (c = 0; c < s[2]; ++c)
                for (d = 0; d < s[3]; ++d)
                {
                    *output++ = input[a * step[0] + b * step[1] + c * step[2] + d * step[3]];
                }
}

void tinyc_transpose_u8(const uint8_t *input, uint8_t *output, const int32_t *input_shape, const int32_t *perm)
{
    int32_t s[4], step[4], a, b, c, d;
    transpose_steps(input_shape, perm, s, step);
    for (a = 0; a < s[0]; ++a)
        for (b = 0; b < s[1]; ++b)
            for (c = 0; c < s[2]; ++c)
                for (d = 0; d < s[3]; ++d)
                {
                    *output++ = input[a * step[0] + b * step[1] + c * step[2] + d * step[3]];
                }
}

void tinyc_transpose_f32(const float *input, float *output, const int32_t *input_shape, const int32_t *perm)
{
    int32_t s[4], step[4], a, b, c, d;
    transpose_steps(input_shape, perm, s, step);
    for (a = 0; a < s[0]; ++a)
        for (b = 0; b < s[1]; ++b)
            for (c = 0; c < s[2]; ++c)
                for (d = 0; d < s[3]; ++d)
                {
                    *output++ = input[a * step[0] + b * step[1] + c * step[2] + d * step[3]];
                }
}

/* ---- pad and concat --------------------------------------------------------------------------- */

void tinyc_pad_s8(const int8_t *input, int8_t *output, const int32_t *input_shape, const int32_t *pads, int8_t pad_value)
{
    int32_t out_shape[4];
    int32_t a, b, c, i;
    int32_t total = 1;
    for (i = 0; i < 4; ++i)
    {
        out_shape[i] = pads[i] + input_shape[i] + pads[4 + i];
        total *= out_shape[i];
    }
    memset(output, (unsigned char)pad_value, (size_t)total);
    /* Copy each innermost row of the input to its place in the output. */
    for (a = 0; a < input_shape[0]; ++a)
        for (b = 0; b < input_shape[1]; ++b)
            for (c = 0; c < input_shape[2]; ++c)
            {
                const int32_t row = ((a + pads[0]) * out_shape[1] + b + pads[1]) * out_shape[2] + c + pads[2];
                memcpy(output + row * out_shape[3] + pads[3],
                       input + ((a * input_shape[1] + b) * input_shape[2] + c) * input_shape[3],
                       (size_t)input_shape[3]);
            }
}

void tinyc_concat_s8(const int8_t *input,
                     int8_t *output,
                     int32_t outer,
                     int32_t input_chunk,
                     int32_t output_chunk,
                     int32_t output_offset)
{
    int32_t i;
    for (i = 0; i < outer; ++i)
    {
        memcpy(output + i * output_chunk + output_offset, input + i * input_chunk, (size_t)input_chunk);
    }
}

/* ---- broadcasting element-wise ops ------------------------------------------------------------ */

/* Element strides of a 4-D input read along a 4-D output: 0 along the axes it is broadcast on. */
static void broadcast_strides(const int32_t *shape, int32_t *strides)
{
    int32_t stride = 1;
    int32_t i;
    for (i = 3; i >= 0; --i)
    {
        strides[i] = shape[i] == 1 ? 0 : stride;
        stride *= shape[i];
    }
}

/* Visits the output in order and hands each element the offsets of its two operands. */
typedef struct
{
    int32_t shape[4];
    int32_t strides_1[4];
    int32_t strides_2[4];
} broadcast_plan;

static broadcast_plan make_broadcast_plan(const int32_t *input_1_shape, const int32_t *input_2_shape,
                                          const int32_t *output_shape)
{
    broadcast_plan plan;
    int32_t i;
    for (i = 0; i < 4; ++i)
    {
        plan.shape[i] = output_shape[i];
    }
    broadcast_strides(input_1_shape, plan.strides_1);
    broadcast_strides(input_2_shape, plan.strides_2);
    return plan;
}

static int32_t plan_offset(const int32_t *strides, int32_t a, int32_t b, int32_t c, int32_t d)
{
    return a * strides[0] + b * strides[1] + c * strides[2] + d * strides[3];
}

void tinyc_add_broadcast_s8(const int8_t *input_1,
                            const int32_t *input_1_shape,
                            const int8_t *input_2,
                            const int32_t *input_2_shape,
                            int32_t input_1_offset,
                            int32_t input_1_mult,
                            int32_t input_1_shift,
                            int32_t input_2_offset,
                            int32_t input_2_mult,
                            int32_t input_2_shift,
                            int32_t left_shift,
                            int8_t *output,
                            const int32_t *output_shape,
                            int32_t out_offset,
                            int32_t out_mult,
                            int32_t out_shift,
                            int32_t out_activation_min,
                            int32_t out_activation_max)
{
    const broadcast_plan plan = make_broadcast_plan(input_1_shape, input_2_shape, output_shape);
    int32_t a, b, c, d;
    for (a = 0; a < plan.shape[0]; ++a)
        for (b = 0; b < plan.shape[1]; ++b)
            for (c = 0; c < plan.shape[2]; ++c)
                for (d = 0; d < plan.shape[3]; ++d)
                {
                    const int32_t x1 = input_1[plan_offset(plan.strides_1, a, b, c, d)];
                    const int32_t x2 = input_2[plan_offset(plan.strides_2, a, b, c, d)];
                    const int32_t s1 = tinyc_requantize(
                        tinyc_shift_left_wrap(x1 + input_1_offset, left_shift), input_1_mult, input_1_shift);
                    const int32_t s2 = tinyc_requantize(
                        tinyc_shift_left_wrap(x2 + input_2_offset, left_shift), input_2_mult, input_2_shift);
                    *output++ =
                        tinyc_requantize_to_s8(s1 + s2, out_mult, out_shift, out_offset, out_activation_min, out_activation_max);
                }
}

void tinyc_mul_broadcast_s8(const int8_t *input_1,
                            const int32_t *input_1_shape,
                            const int8_t *input_2,
                            const int32_t *input_2_shape,
                            int32_t input_1_offset,
                            int32_t input_2_offset,
                            int8_t *output,
                            const int32_t *output_shape,
                            int32_t out_offset,
                            int32_t out_mult,
                            int32_t out_shift,
                            int32_t out_activation_min,
                            int32_t out_activation_max)
{
    const broadcast_plan plan = make_broadcast_plan(input_1_shape, input_2_shape, output_shape);
    int32_t a, b, c, d;
    for (a = 0; a < plan.shape[0]; ++a)
        for (b = 0; b < plan.shape[1]; ++b)
            for (c = 0; c < plan.shape[2]; ++c)
                for (d = 0; d < plan.shape[3]; ++d)
                {
                    const int32_t x1 = input_1[plan_offset(plan.strides_1, a, b, c, d)];
                    const int32_t x2 = input_2[plan_offset(plan.strides_2, a, b, c, d)];
                    const int32_t product = (x1 + input_1_offset) * (x2 + input_2_offset);
                    *output++ =
                        tinyc_requantize_to_s8(product, out_mult, out_shift, out_offset, out_activation_min, out_activation_max);
                }
}
