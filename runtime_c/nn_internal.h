/*
 * tinyc runtime_c: helpers shared by the CMSIS-NN-API kernels (not part of the public API).
 */
#ifndef TINYC_NN_INTERNAL_H
#define TINYC_NN_INTERNAL_H

#include "arm_nnfunctions.h"
#include "tinyc_fixed_point.h"
#include "tinyc_simd.h"

/* sum over i < n of (x[i] + x_offset) * w[i]: the inner product every convolution and fully
   connected layer is made of. The integer result does not depend on the order of the additions, so
   the DSP version (tinyc_simd.h) gives the same bits. */
static inline int32_t tinyc_nn_dot_s8(const int8_t *x, const int8_t *w, int32_t n, int32_t x_offset)
{
#if TINYC_USE_DSP
    return tinyc_dsp_dot_s8(x, w, n, x_offset);
#else
    int32_t acc = 0;
    int32_t i;
    for (i = 0; i < n; ++i)
    {
        acc += ((int32_t)x[i] + x_offset) * (int32_t)w[i];
    }
    return acc;
#endif
}

/* The bias of output channel c, or 0 without a bias. */
static inline int32_t tinyc_nn_bias(const int32_t *bias, int32_t c)
{
    return bias != NULL ? bias[c] : 0;
}

/* Start and end (exclusive) of the kernel taps k in [0, kernel) whose input coordinate
   base + k * dilation lies in [0, extent). */
static inline void tinyc_nn_valid_taps(int32_t base, int32_t kernel, int32_t dilation, int32_t extent,
                                       int32_t *start, int32_t *end)
{
    int32_t k_start = 0;
    int32_t k_end = kernel;
    while (k_start < kernel && base + k_start * dilation < 0)
    {
        ++k_start;
    }
    while (k_end > k_start && base + (k_end - 1) * dilation >= extent)
    {
        --k_end;
    }
    *start = k_start;
    *end = k_end;
}

/* The tests CMSIS-NN's wrappers use to pick a convolution kernel; the buffer sizes follow the same
   choice, so both live here. */
static inline int tinyc_nn_is_conv_1x1(const cmsis_nn_conv_params *conv_params, const cmsis_nn_dims *input_dims,
                                       const cmsis_nn_dims *filter_dims)
{
    return conv_params->padding.w == 0 && conv_params->padding.h == 0 && filter_dims->w == 1 &&
        filter_dims->h == 1 && conv_params->dilation.w == 1 && conv_params->dilation.h == 1 &&
        input_dims->c == filter_dims->c;
}

static inline int tinyc_nn_is_unit_stride(const cmsis_nn_conv_params *conv_params)
{
    return conv_params->stride.w == 1 && conv_params->stride.h == 1;
}

static inline int tinyc_nn_is_conv_1_x_n(const cmsis_nn_conv_params *conv_params, const cmsis_nn_dims *input_dims,
                                         const cmsis_nn_dims *filter_dims)
{
    return input_dims->h == 1 && conv_params->dilation.w == 1 && filter_dims->h == 1 &&
        (conv_params->stride.w * input_dims->c) % 4 == 0 && input_dims->c == filter_dims->c;
}

/* Depthwise: the 3x3 kernel applies to 3x3 filters with at most one row/column of top/left padding;
   both specialised kernels need channel multiplier 1, batch 1 and no dilation. */
static inline int tinyc_nn_dw_is_multiplier_one_batch_one(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                          const cmsis_nn_dims *input_dims,
                                                          const cmsis_nn_dims *output_dims)
{
    return input_dims->c == output_dims->c && input_dims->n == 1 && dw_conv_params->dilation.w == 1 &&
        dw_conv_params->dilation.h == 1;
}

static inline int tinyc_nn_dw_is_3x3(const cmsis_nn_dw_conv_params *dw_conv_params, const cmsis_nn_dims *filter_dims)
{
    return filter_dims->w == 3 && filter_dims->h == 3 && dw_conv_params->padding.h <= 1 &&
        dw_conv_params->padding.w <= 1;
}

/* Helium builds of CMSIS-NN turn a depthwise convolution of a one-channel input into a convolution
   when it has more output channels than this (the GCC build's value). */
#define TINYC_NN_DW_TO_CONV_MIN_OUTPUT_CHANNELS 1

#endif /* TINYC_NN_INTERNAL_H */
