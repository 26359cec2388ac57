/*
 * tinyc runtime_c: int8 convolutions of the CMSIS-NN API.
 *
 * All variants compute the same convolution and differ only in the arguments they accept: each output
 * value is the bias plus, for every filter tap over an input position, the inner product of the
 * filter's channels with the input pixel's channels, then requantised per output channel.
 */
#include <string.h>

#include "nn_internal.h"

/* Index into the stored input for coordinate `index` of an input of `extent` positions that may be
   upscaled by zero insertion (upscale_shift 1: only even coordinates hold data). Returns -1 for a
   padded position or an inserted zero: both contribute nothing to the sum. */
static int32_t stored_index(int32_t index, int32_t extent, int32_t upscale_shift)
{
    if (index < 0 || index >= extent)
    {
        return -1;
    }
    if (upscale_shift != 0 && (index & 1) != 0)
    {
        return -1;
    }
    return index >> upscale_shift;
}

/* The general convolution behind every variant. filter: [C_OUT, KH, KW, KC] with KC input channels
   per group; output channel oc belongs to group oc / (C_OUT / groups). */
static void convolve_s8_general(const cmsis_nn_conv_params *conv_params,
                                const cmsis_nn_per_channel_quant_params *quant_params,
                                const cmsis_nn_dims *input_dims,
                                const int8_t *input_data,
                                const cmsis_nn_dims *filter_dims,
                                const int8_t *filter_data,
                                const int32_t *bias_data,
                                const cmsis_nn_dims *output_dims,
                                int8_t *output_data,
                                int32_t upscale_shift_y,
                                int32_t upscale_shift_x)
{
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t stored_h = in_h >> upscale_shift_y;
    const int32_t stored_w = in_w >> upscale_shift_x;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t k_c = filter_dims->c;
    const int32_t out_h = output_dims->h;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t out_c_per_group = out_c / (in_c / k_c);
    int32_t b, oy, ox, oc, ky, kx;

    for (b = 0; b < input_dims->n; ++b)
    {
        const int8_t *image = input_data + b * stored_h * stored_w * in_c;
        for (oy = 0; oy < out_h; ++oy)
        {
            for (ox = 0; ox < out_w; ++ox)
            {
                int8_t *out = output_data + ((b * out_h + oy) * out_w + ox) * out_c;
                for (oc = 0; oc < out_c; ++oc)
                {
                    const int32_t group_channel = (oc / out_c_per_group) * k_c;
                    const int8_t *filter = filter_data + oc * k_h * k_w * k_c;
                    int32_t acc = tinyc_nn_bias(bias_data, oc);
                    for (ky = 0; ky < k_h; ++ky)
                    {
                        const int32_t y = stored_index(
                            oy * conv_params->stride.h - conv_params->padding.h + ky * conv_params->dilation.h,
                            in_h,
                            upscale_shift_y);
                        if (y < 0)
                        {
                            continue;
                        }
                        for (kx = 0; kx < k_w; ++kx)
                        {
                            const int32_t x = stored_index(
                                ox * conv_params->stride.w - conv_params->padding.w + kx * conv_params->dilation.w,
                                in_w,
                                upscale_shift_x);
                            if (x < 0)
                            {
                                continue;
                            }
                            acc += tinyc_nn_dot_s8(image + (y * stored_w + x) * in_c + group_channel,
                                                   filter + (ky * k_w + kx) * k_c,
                                                   k_c,
                                                   conv_params->input_offset);
                        }
                    }
                    out[oc] = tinyc_requantize_to_s8(acc,
                                                     quant_params->multiplier[oc],
                                                     quant_params->shift[oc],
                                                     conv_params->output_offset,
                                                     conv_params->activation.min,
                                                     conv_params->activation.max);
                }
            }
        }
    }
}

/* All output channels of one pixel of a 1x1 convolution (or of a gathered window of in_c taps).
   filter: [C_OUT][in_c]. */
static void pointwise_pixel(const cmsis_nn_conv_params *conv_params,
                            const cmsis_nn_per_channel_quant_params *quant_params,
                            const int8_t *pixel,
                            int32_t in_c,
                            const int8_t *filter_data,
                            const int32_t *bias_data,
                            int32_t out_c,
                            int8_t *out)
{
    int32_t oc;
    for (oc = 0; oc < out_c; ++oc)
    {
        const int32_t acc = tinyc_nn_bias(bias_data, oc) +
            tinyc_nn_dot_s8(pixel, filter_data + oc * in_c, in_c, conv_params->input_offset);
        out[oc] = tinyc_requantize_to_s8(acc,
                                         quant_params->multiplier[oc],
                                         quant_params->shift[oc],
                                         conv_params->output_offset,
                                         conv_params->activation.min,
                                         conv_params->activation.max);
    }
}

/* The same convolution for one group without upscaling, faster: each output pixel's window is first
   gathered into `window` (KH * KW * C bytes, in the filter's [KH, KW, C] order) so every output channel
   is one long inner product. A padded tap holds the input zero point (-input_offset), which adds
   exactly nothing, as in the general version. */
static void convolve_s8_windowed(const cmsis_nn_conv_params *conv_params,
                                 const cmsis_nn_per_channel_quant_params *quant_params,
                                 const cmsis_nn_dims *input_dims,
                                 const int8_t *input_data,
                                 const cmsis_nn_dims *filter_dims,
                                 const int8_t *filter_data,
                                 const int32_t *bias_data,
                                 const cmsis_nn_dims *output_dims,
                                 int8_t *output_data,
                                 int8_t *window)
{
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t taps = k_h * k_w * in_c;
    const int32_t out_h = output_dims->h;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const int8_t padding_value = (int8_t)(-conv_params->input_offset);
    int32_t b, oy, ox, ky, kx, c;

    for (b = 0; b < input_dims->n; ++b)
    {
        const int8_t *image = input_data + b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; ++oy)
        {
            for (ox = 0; ox < out_w; ++ox)
            {
                int8_t *out = output_data + ((b * out_h + oy) * out_w + ox) * out_c;
                int8_t *dst = window;
                for (ky = 0; ky < k_h; ++ky)
                {
                    const int32_t y = oy * conv_params->stride.h - conv_params->padding.h +
                        ky * conv_params->dilation.h;
                    for (kx = 0; kx < k_w; ++kx)
                    {
                        const int32_t x = ox * conv_params->stride.w - conv_params->padding.w +
                            kx * conv_params->dilation.w;
                        if (y < 0 || y >= in_h || x < 0 || x >= in_w)
                        {
                            for (c = 0; c < in_c; ++c)
                            {
                                dst[c] = padding_value;
                            }
                        }
                        else
                        {
                            memcpy(dst, image + (y * in_w + x) * in_c, (size_t)in_c);
                        }
                        dst += in_c;
                    }
                }
                pointwise_pixel(conv_params, quant_params, window, taps, filter_data, bias_data, out_c, out);
            }
        }
    }
}

arm_cmsis_nn_status arm_convolve_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_conv_params *conv_params,
                                    const cmsis_nn_per_channel_quant_params *quant_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const int8_t *filter_data,
                                    const cmsis_nn_dims *bias_dims,
                                    const int32_t *bias_data,
                                    const cmsis_nn_dims *upscale_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data)
{
    int32_t groups;
    (void)bias_dims;
    /* CMSIS-NN's version packs input columns into this buffer; tinyc's gathers one output pixel's
       window there when it fits, and insists on it the same way, so generated code always reserves what
       the real library will use. */
    if (ctx->buf == NULL)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    groups = filter_dims->c > 0 ? input_dims->c / filter_dims->c : 0;
    if (groups <= 0 || input_dims->c % groups != 0 || output_dims->c % groups != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    if (groups == 1 && (upscale_dims == NULL || (upscale_dims->h == 1 && upscale_dims->w == 1)) &&
        ctx->size >= filter_dims->h * filter_dims->w * input_dims->c)
    {
        convolve_s8_windowed(conv_params,
                             quant_params,
                             input_dims,
                             input_data,
                             filter_dims,
                             filter_data,
                             bias_data,
                             output_dims,
                             output_data,
                             (int8_t *)ctx->buf);
        return ARM_CMSIS_NN_SUCCESS;
    }
    convolve_s8_general(conv_params,
                        quant_params,
                        input_dims,
                        input_data,
                        filter_dims,
                        filter_data,
                        bias_data,
                        output_dims,
                        output_data,
                        (upscale_dims != NULL && upscale_dims->h == 2) ? 1 : 0,
                        (upscale_dims != NULL && upscale_dims->w == 2) ? 1 : 0);
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_convolve_1x1_s8_fast(const cmsis_nn_context *ctx,
                                             const cmsis_nn_conv_params *conv_params,
                                             const cmsis_nn_per_channel_quant_params *quant_params,
                                             const cmsis_nn_dims *input_dims,
                                             const int8_t *input_data,
                                             const cmsis_nn_dims *filter_dims,
                                             const int8_t *filter_data,
                                             const cmsis_nn_dims *bias_dims,
                                             const int32_t *bias_data,
                                             const cmsis_nn_dims *output_dims,
                                             int8_t *output_data)
{
    const int32_t pixels = input_dims->n * input_dims->h * input_dims->w;
    int32_t p;
    (void)ctx;
    (void)filter_dims;
    (void)bias_dims;
    if (conv_params->padding.w != 0 || conv_params->padding.h != 0 || conv_params->stride.w != 1 ||
        conv_params->stride.h != 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (p = 0; p < pixels; ++p)
    {
        pointwise_pixel(conv_params,
                        quant_params,
                        input_data + p * input_dims->c,
                        input_dims->c,
                        filter_data,
                        bias_data,
                        output_dims->c,
                        output_data + p * output_dims->c);
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_convolve_1x1_s8(const cmsis_nn_context *ctx,
                                        const cmsis_nn_conv_params *conv_params,
                                        const cmsis_nn_per_channel_quant_params *quant_params,
                                        const cmsis_nn_dims *input_dims,
                                        const int8_t *input_data,
                                        const cmsis_nn_dims *filter_dims,
                                        const int8_t *filter_data,
                                        const cmsis_nn_dims *bias_dims,
                                        const int32_t *bias_data,
                                        const cmsis_nn_dims *output_dims,
                                        int8_t *output_data)
{
    int32_t b, oy, ox;
    (void)ctx;
    (void)filter_dims;
    (void)bias_dims;
    if (conv_params->padding.w != 0 || conv_params->padding.h != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (b = 0; b < input_dims->n; ++b)
    {
        for (oy = 0; oy < output_dims->h; ++oy)
        {
            for (ox = 0; ox < output_dims->w; ++ox)
            {
                const int32_t y = oy * conv_params->stride.h;
                const int32_t x = ox * conv_params->stride.w;
                pointwise_pixel(conv_params,
                                quant_params,
                                input_data + ((b * input_dims->h + y) * input_dims->w + x) * input_dims->c,
                                input_dims->c,
                                filter_data,
                                bias_data,
                                output_dims->c,
                                output_data + ((b * output_dims->h + oy) * output_dims->w + ox) * output_dims->c);
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_convolve_1_x_n_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_conv_params *conv_params,
                                          const cmsis_nn_per_channel_quant_params *quant_params,
                                          const cmsis_nn_dims *input_dims,
                                          const int8_t *input_data,
                                          const cmsis_nn_dims *filter_dims,
                                          const int8_t *filter_data,
                                          const cmsis_nn_dims *bias_dims,
                                          const int32_t *bias_data,
                                          const cmsis_nn_dims *output_dims,
                                          int8_t *output_data)
{
    if (input_dims->h != 1 || conv_params->dilation.w != 1 || ctx->buf == NULL || conv_params->stride.w == 0 ||
        (conv_params->stride.w * input_dims->c) % 4 != 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    return arm_convolve_s8(ctx,
                           conv_params,
                           quant_params,
                           input_dims,
                           input_data,
                           filter_dims,
                           filter_data,
                           bias_dims,
                           bias_data,
                           NULL,
                           output_dims,
                           output_data);
}

arm_cmsis_nn_status arm_convolve_wrapper_s8(const cmsis_nn_context *ctx,
                                            const cmsis_nn_conv_params *conv_params,
                                            const cmsis_nn_per_channel_quant_params *quant_params,
                                            const cmsis_nn_dims *input_dims,
                                            const int8_t *input_data,
                                            const cmsis_nn_dims *filter_dims,
                                            const int8_t *filter_data,
                                            const cmsis_nn_dims *bias_dims,
                                            const int32_t *bias_data,
                                            const cmsis_nn_dims *output_dims,
                                            int8_t *output_data)
{
    if (tinyc_nn_is_conv_1x1(conv_params, input_dims, filter_dims))
    {
        if (tinyc_nn_is_unit_stride(conv_params))
        {
            return arm_convolve_1x1_s8_fast(ctx,
                                            conv_params,
                                            quant_params,
                                            input_dims,
                                            input_data,
                                            filter_dims,
                                            filter_data,
                                            bias_dims,
                                            bias_data,
                                            output_dims,
                                            output_data);
        }
        return arm_convolve_1x1_s8(ctx,
                                   conv_params,
                                   quant_params,
                                   input_dims,
                                   input_data,
                                   filter_dims,
                                   filter_data,
                                   bias_dims,
                                   bias_data,
                                   output_dims,
                                   output_data);
    }
    if (tinyc_nn_is_conv_1_x_n(conv_params, input_dims, filter_dims))
    {
        return arm_convolve_1_x_n_s8(ctx,
                                     conv_params,
                                     quant_params,
                                     input_dims,
                                     input_data,
                                     filter_dims,
                                     filter_data,
                                     bias_dims,
                                     bias_data,
                                     output_dims,
                                     output_data);
    }
    return arm_convolve_s8(ctx,
                           conv_params,
                           quant_params,
                           input_dims,
                           input_data,
                           filter_dims,
                           filter_data,
                           bias_dims,
                           bias_data,
                           NULL,
                           output_dims,
                           output_data);
}
