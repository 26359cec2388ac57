/*
 * tinyc runtime_c: float32 kernels (see tinyc_kernels.h, "float32 kernels", for each contract and the
 * order in which sums are accumulated).
 *
 * Single precision only: float variables, float literals, the float functions of libm (expf, tanhf,
 * sqrtf, fabsf); nothing is promoted to double (the file builds with -Wdouble-promotion). With one
 * fixed summation order and no contraction (C99), a kernel gives the same bits on every core with an
 * IEEE single-precision FPU or software floating point; only expf and tanhf come from the C library.
 */
#include "tinyc_kernels.h"

#include <math.h>
#include <string.h>

/* Kernels work on blocks of this many output channels, reading each input element once per block. */
#define BLOCK 4

static float clamp_f32(float value, float lo, float hi)
{
    if (value < lo)
    {
        value = lo;
    }
    if (value > hi)
    {
        value = hi;
    }
    return value;
}

/* The taps [*first, *end) of a window starting at input coordinate `start` (taps `dilation` apart)
   that fall inside [0, extent). */
static void taps_inside(int32_t start, int32_t dilation, int32_t taps, int32_t extent, int32_t *first, int32_t *end)
{
    int32_t lo = start < 0 ? (dilation - 1 - start) / dilation : 0;
    int32_t hi = extent - start <= 0 ? 0 : (extent - start + dilation - 1) / dilation;
    if (hi > taps)
    {
        hi = taps;
    }
    if (lo > hi)
    {
        lo = hi;
    }
    *first = lo;
    *end = hi;
}

/* The running total of a dot product: Kahan's compensated sum (the sum, and what its last addition
   lost, to be taken off the next one). */
typedef struct
{
    float sum;
    float lost;
} total_f32;

static const total_f32 ZERO_TOTAL = {0.0f, 0.0f};

static void add_to_total(total_f32 *total, float value)
{
    const float corrected = value - total->lost;
    const float sum = total->sum + corrected;
    total->lost = (sum - total->sum) - corrected;
    total->sum = sum;
}

/* Products are summed plainly in runs of at most this many, each run's sum then added to the total. */
#define RUN 8

/* total[j] += x[i] * w[j * w_stride + i] for i in [0, n), j < BLOCK: runs of RUN products in order of i. */
static void dot_block(const float *x, const float *w, int32_t w_stride, int32_t n, total_f32 *total)
{
    const float *w0 = w;
    const float *w1 = w + w_stride;
    const float *w2 = w + 2 * w_stride;
    const float *w3 = w + 3 * w_stride;
    /* Local copies: the totals stay in registers (they could alias x or w, as far as C knows). */
    total_f32 t0 = total[0], t1 = total[1], t2 = total[2], t3 = total[3];
    int32_t start, i;
    for (start = 0; start < n; start += RUN)
    {
        const int32_t end = n - start < RUN ? n : start + RUN;
        float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
        for (i = start; i < end; ++i)
        {
            const float v = x[i];
            a0 += v * w0[i];
            a1 += v * w1[i];
            a2 += v * w2[i];
            a3 += v * w3[i];
        }
        add_to_total(&t0, a0);
        add_to_total(&t1, a1);
        add_to_total(&t2, a2);
        add_to_total(&t3, a3);
    }
    total[0] = t0;
    total[1] = t1;
    total[2] = t2;
    total[3] = t3;
}

/* *total += x[i * x_stride] * w[i * w_stride] for i in [0, n): runs of RUN products in order of i. */
static void dot_one(const float *x, int32_t x_stride, const float *w, int32_t w_stride, int32_t n, total_f32 *total)
{
    total_f32 t = *total;
    int32_t start, i;
    for (start = 0; start < n; start += RUN)
    {
        const int32_t end = n - start < RUN ? n : start + RUN;
        float a = 0.0f;
        for (i = start; i < end; ++i)
        {
            a += x[i * x_stride] * w[i * w_stride];
        }
        add_to_total(&t, a);
    }
    *total = t;
}

/* The total plus an optional bias, then the clamp of the fused activation. */
static float biased_activation(total_f32 total, const float *bias, int32_t channel, float act_min, float act_max)
{
    return clamp_f32(bias != NULL ? total.sum + bias[channel] : total.sum, act_min, act_max);
}

/* ---- convolutions ----------------------------------------------------------------------------- */

/* One output pixel of a (grouped) convolution: the window's taps are [ky0, ky1) x [kx0, kx1). */
static void conv_pixel(const tinyc_conv_f32_params *p,
                       const float *image,
                       int32_t iy0,
                       int32_t ix0,
                       int32_t ky0,
                       int32_t ky1,
                       int32_t kx0,
                       int32_t kx1,
                       const float *filter,
                       const float *bias,
                       float *out)
{
    const int32_t group_in = p->input_c / p->groups;
    const int32_t group_out = p->output_c / p->groups;
    const int32_t filter_size = p->kernel_h * p->kernel_w * group_in;
    /* Without dilation and groups, a window row is one run of memory in the input and in the filter. */
    const int32_t row_runs = p->dilation_w == 1 && p->groups == 1;
    int32_t g, oc, j, ky, kx;
    for (g = 0; g < p->groups; ++g)
    {
        for (oc = g * group_out; oc < (g + 1) * group_out; oc += BLOCK)
        {
            const int32_t block = (g + 1) * group_out - oc < BLOCK ? (g + 1) * group_out - oc : BLOCK;
            total_f32 acc[BLOCK];
            for (j = 0; j < BLOCK; ++j)
            {
                acc[j] = ZERO_TOTAL;
            }
            for (ky = ky0; ky < ky1; ++ky)
            {
                const float *x_row = image + (iy0 + ky * p->dilation_h) * p->input_w * p->input_c + g * group_in;
                const float *w_row = filter + oc * filter_size + ky * p->kernel_w * group_in;
                for (kx = kx0; kx < kx1; kx += row_runs ? kx1 - kx0 : 1)
                {
                    const float *x = x_row + (ix0 + kx * p->dilation_w) * p->input_c;
                    const float *w = w_row + kx * group_in;
                    const int32_t n = row_runs ? (kx1 - kx0) * group_in : group_in;
                    if (block == BLOCK)
                    {
                        dot_block(x, w, filter_size, n, acc);
                    }
                    else
                    {
                        for (j = 0; j < block; ++j)
                        {
                            dot_one(x, 1, w + j * filter_size, 1, n, &acc[j]);
                        }
                    }
                }
            }
            for (j = 0; j < block; ++j)
            {
                out[oc + j] = biased_activation(acc[j], bias, oc + j, p->act_min, p->act_max);
            }
        }
    }
}

void tinyc_conv_f32(const tinyc_conv_f32_params *params,
                    const float *input,
                    const float *filter,
                    const float *bias,
                    float *output)
{
    const tinyc_conv_f32_params *p = params;
    int32_t b, oy, ox, ky0, ky1, kx0, kx1;
    for (b = 0; b < p->batches; ++b)
    {
        const float *image = input + b * p->input_h * p->input_w * p->input_c;
        for (oy = 0; oy < p->output_h; ++oy)
        {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            taps_inside(iy0, p->dilation_h, p->kernel_h, p->input_h, &ky0, &ky1);
            for (ox = 0; ox < p->output_w; ++ox)
            {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                taps_inside(ix0, p->dilation_w, p->kernel_w, p->input_w, &kx0, &kx1);
                conv_pixel(p, image, iy0, ix0, ky0, ky1, kx0, kx1, filter, bias, output);
                output += p->output_c;
            }
        }
    }
}

/* Output channels [o, o + BLOCK) of one depthwise pixel with one output per input channel: the
   window's taps are [ky0, ky1) x [kx0, kx1); `origin` is the index in `image` of channel o at the
   window's top left tap (negative when that tap is in the padding: only taps inside are read). */
static void depthwise_block(const tinyc_conv_f32_params *p,
                            const float *image,
                            int32_t origin,
                            const float *filter,
                            int32_t ky0,
                            int32_t ky1,
                            int32_t kx0,
                            int32_t kx1,
                            float *acc)
{
    const int32_t channels = p->output_c;
    const int32_t x_row = p->dilation_h * p->input_w * channels, x_col = p->dilation_w * channels;
    float a0 = 0.0f, a1 = 0.0f, a2 = 0.0f, a3 = 0.0f;
    int32_t ky, kx;
    for (ky = ky0; ky < ky1; ++ky)
    {
        const float *x = image + (origin + ky * x_row + kx0 * x_col);
        const float *w = filter + (ky * p->kernel_w + kx0) * channels;
        for (kx = kx0; kx < kx1; ++kx)
        {
            a0 += x[0] * w[0];
            a1 += x[1] * w[1];
            a2 += x[2] * w[2];
            a3 += x[3] * w[3];
            x += x_col;
            w += channels;
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Output channel o of one depthwise pixel (any channel multiplier): reads input channel o / multiplier;
   `origin` is the index in `image` of channel 0 at the window's top left tap. */
static float depthwise_one(const tinyc_conv_f32_params *p,
                           const float *image,
                           int32_t origin,
                           const float *filter,
                           int32_t o,
                           int32_t ky0,
                           int32_t ky1,
                           int32_t kx0,
                           int32_t kx1)
{
    const int32_t channels = p->input_c, out_c = p->output_c;
    const int32_t start = origin + o / (out_c / channels);
    float acc = 0.0f;
    int32_t ky, kx;
    for (ky = ky0; ky < ky1; ++ky)
    {
        for (kx = kx0; kx < kx1; ++kx)
        {
            acc += image[start + (ky * p->dilation_h * p->input_w + kx * p->dilation_w) * channels] *
                   filter[(ky * p->kernel_w + kx) * out_c + o];
        }
    }
    return acc;
}

void tinyc_depthwise_conv_f32(const tinyc_conv_f32_params *params,
                              const float *input,
                              const float *filter,
                              const float *bias,
                              float *output)
{
    const tinyc_conv_f32_params *p = params;
    const int32_t channels = p->input_c;
    const int32_t out_c = p->output_c;
    /* Blocks of channels need one output per input channel; the rest go one channel at a time. */
    const int32_t blocked = out_c == channels ? out_c - out_c % BLOCK : 0;
    int32_t b, oy, ox, ky0, ky1, kx0, kx1, o, j;
    for (b = 0; b < p->batches; ++b)
    {
        const float *image = input + b * p->input_h * p->input_w * channels;
        for (oy = 0; oy < p->output_h; ++oy)
        {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            taps_inside(iy0, p->dilation_h, p->kernel_h, p->input_h, &ky0, &ky1);
            for (ox = 0; ox < p->output_w; ++ox)
            {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                const int32_t origin = (iy0 * p->input_w + ix0) * channels;
                taps_inside(ix0, p->dilation_w, p->kernel_w, p->input_w, &kx0, &kx1);
                for (o = 0; o < out_c; o += o < blocked ? BLOCK : 1)
                {
                    float acc[BLOCK];
                    const int32_t block = o < blocked ? BLOCK : 1;
                    if (block == BLOCK)
                    {
                        depthwise_block(p, image, origin + o, filter + o, ky0, ky1, kx0, kx1, acc);
                    }
                    else
                    {
                        acc[0] = depthwise_one(p, image, origin, filter, o, ky0, ky1, kx0, kx1);
                    }
                    for (j = 0; j < block; ++j)
                    {
                        const float sum = bias != NULL ? acc[j] + bias[o + j] : acc[j];
                        output[o + j] = clamp_f32(sum, p->act_min, p->act_max);
                    }
                }
                output += out_c;
            }
        }
    }
}

/* ---- matrix products ---------------------------------------------------------------------------- */

void tinyc_fully_connected_f32(const float *input,
                               const float *weights,
                               const float *bias,
                               float *output,
                               int32_t batches,
                               int32_t depth,
                               int32_t units,
                               float act_min,
                               float act_max)
{
    int32_t b, u, j;
    for (b = 0; b < batches; ++b)
    {
        const float *x = input + b * depth;
        for (u = 0; u < units; u += BLOCK)
        {
            const int32_t block = units - u < BLOCK ? units - u : BLOCK;
            total_f32 acc[BLOCK];
            for (j = 0; j < BLOCK; ++j)
            {
                acc[j] = ZERO_TOTAL;
            }
            if (block == BLOCK)
            {
                dot_block(x, weights + u * depth, depth, depth, acc);
            }
            else
            {
                for (j = 0; j < block; ++j)
                {
                    dot_one(x, 1, weights + (u + j) * depth, 1, depth, &acc[j]);
                }
            }
            for (j = 0; j < block; ++j)
            {
                output[b * units + u + j] = biased_activation(acc[j], bias, u + j, act_min, act_max);
            }
        }
    }
}

void tinyc_matmul_f32(const float *a, const int32_t *a_shape, const float *b, const int32_t *b_shape, float *output)
{
    const int32_t m = a_shape[2], k = a_shape[3], n = b_shape[3];
    const int32_t outer0 = a_shape[0] > b_shape[0] ? a_shape[0] : b_shape[0];
    const int32_t outer1 = a_shape[1] > b_shape[1] ? a_shape[1] : b_shape[1];
    int32_t i0, i1, row, col;
    for (i0 = 0; i0 < outer0; ++i0)
    {
        for (i1 = 0; i1 < outer1; ++i1)
        {
            /* A leading axis of size 1 is read again for every index of the output's. */
            const int32_t a_index = (a_shape[0] == 1 ? 0 : i0) * a_shape[1] + (a_shape[1] == 1 ? 0 : i1);
            const int32_t b_index = (b_shape[0] == 1 ? 0 : i0) * b_shape[1] + (b_shape[1] == 1 ? 0 : i1);
            const float *a_mat = a + a_index * m * k;
            const float *b_mat = b + b_index * k * n;
            for (row = 0; row < m; ++row)
            {
                for (col = 0; col < n; ++col)
                {
                    total_f32 acc = ZERO_TOTAL;
                    dot_one(a_mat + row * k, 1, b_mat + col, n, k, &acc);
                    *output++ = acc.sum;
                }
            }
        }
    }
}

void tinyc_gemm_f32(const tinyc_gemm_f32_params *params, const float *a, const float *b, const float *c, float *output)
{
    const tinyc_gemm_f32_params *p = params;
    /* Element strides of a' [m, k] and b' [k, n] in the stored matrices. */
    const int32_t a_row = p->trans_a ? 1 : p->k, a_depth = p->trans_a ? p->m : 1;
    const int32_t b_depth = p->trans_b ? 1 : p->n, b_col = p->trans_b ? p->k : 1;
    int32_t i, j;
    for (i = 0; i < p->m; ++i)
    {
        for (j = 0; j < p->n; ++j)
        {
            total_f32 acc = ZERO_TOTAL;
            float y;
            dot_one(a + i * a_row, a_depth, b + j * b_col, b_depth, p->k, &acc);
            y = p->alpha * acc.sum;
            if (c != NULL)
            {
                y += p->beta * c[i * p->c_row_stride + j * p->c_col_stride];
            }
            output[i * p->n + j] = y;
        }
    }
}

void tinyc_batch_norm_f32(const float *input,
                          const float *scale,
                          const float *bias,
                          const float *mean,
                          const float *var,
                          float *output,
                          int32_t outer,
                          int32_t channels,
                          int32_t inner,
                          float epsilon)
{
    int32_t o, c, i;
    for (o = 0; o < outer; ++o)
    {
        for (c = 0; c < channels; ++c)
        {
            const float inv_std = 1.0f / sqrtf(var[c] + epsilon);
            const int32_t base = (o * channels + c) * inner;
            for (i = 0; i < inner; ++i)
            {
                output[base + i] = (input[base + i] - mean[c]) * inv_std * scale[c] + bias[c];
            }
        }
    }
}

/* ---- broadcasting element-wise ops -------------------------------------------------------------- */

/* Element strides of a 4-D input read along a 4-D output: 0 along the axes it is broadcast on. */
static void strides_along(const int32_t *shape, int32_t *strides)
{
    int32_t stride = 1;
    int32_t i;
    for (i = 3; i >= 0; --i)
    {
        strides[i] = shape[i] == 1 ? 0 : stride;
        stride *= shape[i];
    }
}

/* y = act(x1 op x2) along a row of n output elements, each input read with its stride (0 or 1). */
static void broadcast_row(int32_t multiply,
                          const float *x1,
                          int32_t stride_1,
                          const float *x2,
                          int32_t stride_2,
                          float *y,
                          int32_t n,
                          float act_min,
                          float act_max)
{
    int32_t i;
    if (multiply)
    {
        for (i = 0; i < n; ++i)
        {
            y[i] = clamp_f32(x1[i * stride_1] * x2[i * stride_2], act_min, act_max);
        }
    }
    else
    {
        for (i = 0; i < n; ++i)
        {
            y[i] = clamp_f32(x1[i * stride_1] + x2[i * stride_2], act_min, act_max);
        }
    }
}

static void broadcast_f32(int32_t multiply,
                          const float *input_1,
                          const int32_t *input_1_shape,
                          const float *input_2,
                          const int32_t *input_2_shape,
                          float *output,
                          const int32_t *output_shape,
                          float act_min,
                          float act_max)
{
    int32_t s1[4], s2[4];
    int32_t a, b, c;
    strides_along(input_1_shape, s1);
    strides_along(input_2_shape, s2);
    for (a = 0; a < output_shape[0]; ++a)
        for (b = 0; b < output_shape[1]; ++b)
            for (c = 0; c < output_shape[2]; ++c)
            {
                broadcast_row(multiply, input_1 + a * s1[0] + b * s1[1] + c * s1[2], s1[3],
                              input_2 + a * s2[0] + b * s2[1] + c * s2[2], s2[3], output, output_shape[3], act_min,
                              act_max);
                output += output_shape[3];
            }
}

void tinyc_add_f32(const float *input_1,
                   const int32_t *input_1_shape,
                   const float *input_2,
                   const int32_t *input_2_shape,
                   float *output,
                   const int32_t *output_shape,
                   float act_min,
                   float act_max)
{
    broadcast_f32(0, input_1, input_1_shape, input_2, input_2_shape, output, output_shape, act_min, act_max);
}

void tinyc_mul_f32(const float *input_1,
                   const int32_t *input_1_shape,
                   const float *input_2,
                   const int32_t *input_2_shape,
                   float *output,
                   const int32_t *output_shape,
                   float act_min,
                   float act_max)
{
    broadcast_f32(1, input_1, input_1_shape, input_2, input_2_shape, output, output_shape, act_min, act_max);
}

/* ---- element-wise activations ------------------------------------------------------------------- */

void tinyc_relu_f32(const float *input, float *output, int32_t size)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = input[i] < 0.0f ? 0.0f : input[i];
    }
}

void tinyc_clip_f32(const float *input, float *output, int32_t size, float min, float max)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = clamp_f32(input[i], min, max);
    }
}

void tinyc_leaky_relu_f32(const float *input, float *output, int32_t size, float alpha)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = input[i] < 0.0f ? input[i] * alpha : input[i];
    }
}

void tinyc_sigmoid_f32(const float *input, float *output, int32_t size)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        const float x = input[i];
        const float e = expf(-fabsf(x)); /* in (0, 1]: no overflow for any x */
        output[i] = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

void tinyc_tanh_f32(const float *input, float *output, int32_t size)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        output[i] = tanhf(input[i]);
    }
}

void tinyc_hard_swish_f32(const float *input, float *output, int32_t size)
{
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        const float x = input[i];
        output[i] = x * clamp_f32(x * (1.0f / 6.0f) + 0.5f, 0.0f, 1.0f);
    }
}

/* ---- pooling ------------------------------------------------------------------------------------ */

/* Calls `visit(acc, x, channels, first)` for every tap of every output pixel's window, the pixel's
   output channels as the accumulator, then `finish(acc, channels, taps inside, params)`. */
static void pool_f32(const tinyc_pool_f32_params *p,
                     const float *input,
                     float *output,
                     void (*visit)(float *, const float *, int32_t, int32_t),
                     void (*finish)(float *, int32_t, int32_t, const tinyc_pool_f32_params *))
{
    const int32_t channels = p->channels;
    int32_t b, oy, ox, ky, kx, ky0, ky1, kx0, kx1;
    for (b = 0; b < p->batches; ++b)
    {
        const float *image = input + b * p->input_h * p->input_w * channels;
        for (oy = 0; oy < p->output_h; ++oy)
        {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            taps_inside(iy0, 1, p->kernel_h, p->input_h, &ky0, &ky1);
            for (ox = 0; ox < p->output_w; ++ox)
            {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                taps_inside(ix0, 1, p->kernel_w, p->input_w, &kx0, &kx1);
                for (ky = ky0; ky < ky1; ++ky)
                {
                    for (kx = kx0; kx < kx1; ++kx)
                    {
                        const float *x = image + ((iy0 + ky) * p->input_w + ix0 + kx) * channels;
                        visit(output, x, channels, ky == ky0 && kx == kx0);
                    }
                }
                finish(output, channels, (ky1 - ky0) * (kx1 - kx0), p);
                output += channels;
            }
        }
    }
}

static void max_visit(float *acc, const float *x, int32_t channels, int32_t first)
{
    int32_t c;
    for (c = 0; c < channels; ++c)
    {
        /* NaN wins, as in numpy's maximum. */
        if (first || x[c] > acc[c] || x[c] != x[c])
        {
            acc[c] = x[c];
        }
    }
}

static void max_finish(float *acc, int32_t channels, int32_t taps, const tinyc_pool_f32_params *p)
{
    int32_t c;
    (void)taps;
    for (c = 0; c < channels; ++c)
    {
        acc[c] = clamp_f32(acc[c], p->act_min, p->act_max);
    }
}

static void sum_visit(float *acc, const float *x, int32_t channels, int32_t first)
{
    int32_t c;
    for (c = 0; c < channels; ++c)
    {
        acc[c] = first ? x[c] : acc[c] + x[c];
    }
}

static void average_finish(float *acc, int32_t channels, int32_t taps, const tinyc_pool_f32_params *p)
{
    const float count = (float)(p->count_include_pad ? p->kernel_h * p->kernel_w : taps);
    int32_t c;
    for (c = 0; c < channels; ++c)
    {
        acc[c] = clamp_f32(acc[c] / count, p->act_min, p->act_max);
    }
}

void tinyc_max_pool_f32(const tinyc_pool_f32_params *params, const float *input, float *output)
{
    pool_f32(params, input, output, max_visit, max_finish);
}

void tinyc_avg_pool_f32(const tinyc_pool_f32_params *params, const float *input, float *output)
{
    pool_f32(params, input, output, sum_visit, average_finish);
}

/* ---- softmax ------------------------------------------------------------------------------------ */

void tinyc_softmax_f32(const float *input, float *output, int32_t outer, int32_t axis_size, int32_t inner, float beta)
{
    int32_t o, i, k;
    for (o = 0; o < outer; ++o)
    {
        for (i = 0; i < inner; ++i)
        {
            const float *x = input + o * axis_size * inner + i;
            float *y = output + o * axis_size * inner + i;
            float top = x[0] * beta;
            float sum = 0.0f;
            for (k = 1; k < axis_size; ++k)
            {
                const float z = x[k * inner] * beta;
                top = z > top ? z : top;
            }
            for (k = 0; k < axis_size; ++k)
            {
                /* y[k] is x[k]'s own place: in place, each element is read before it is written. */
                y[k * inner] = expf(x[k * inner] * beta - top);
                sum += y[k * inner];
            }
            for (k = 0; k < axis_size; ++k)
            {
                y[k * inner] = y[k * inner] / sum;
            }
        }
    }
}

/* ---- data movement ------------------------------------------------------------------------------ */

void tinyc_concat_f32(const float *input,
                      float *output,
                      int32_t outer,
                      int32_t input_chunk,
                      int32_t output_chunk,
                      int32_t output_offset)
{
    int32_t i;
    for (i = 0; i < outer; ++i)
    {
        memcpy(output + i * output_chunk + output_offset, input + i * input_chunk, (size_t)input_chunk * sizeof(float));
    }
}

void tinyc_pad_f32(const float *input, float *output, const int32_t *input_shape, const int32_t *pads, float pad_value)
{
    int32_t out_shape[4];
    int32_t a, b, c, i;
    int32_t total = 1;
    for (i = 0; i < 4; ++i)
    {
        out_shape[i] = pads[i] + input_shape[i] + pads[4 + i];
        total *= out_shape[i];
    }
    for (i = 0; i < total; ++i)
    {
        output[i] = pad_value;
    }
    /* Copy each innermost row of the input to its place in the output. */
    for (a = 0; a < input_shape[0]; ++a)
        for (b = 0; b < input_shape[1]; ++b)
            for (c = 0; c < input_shape[2]; ++c)
            {
                const int32_t row = ((a + pads[0]) * out_shape[1] + b + pads[1]) * out_shape[2] + c + pads[2];
                memcpy(output + row * out_shape[3] + pads[3],
                       input + ((a * input_shape[1] + b) * input_shape[2] + c) * input_shape[3],
                       (size_t)input_shape[3] * sizeof(float));
            }
}
