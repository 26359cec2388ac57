/*
 * tinyc runtime_c: int8 depthwise convolutions of the CMSIS-NN API.
 *
 * Output channel oc = ic * ch_mult + m filters input channel ic alone with its own KH x KW taps
 * (filter [1, KH, KW, C_OUT]). The specialised entry points accept fewer argument combinations;
 * after their checks they compute the same convolution.
 */
#include "nn_internal.h"

static void depthwise_conv_s8_general(const cmsis_nn_dw_conv_params *dw_conv_params,
                                      const cmsis_nn_per_channel_quant_params *quant_params,
                                      const cmsis_nn_dims *input_dims,
                                      const int8_t *input_data,
                                      const cmsis_nn_dims *filter_dims,
                                      const int8_t *filter_data,
                                      const int32_t *bias_data,
                                      const cmsis_nn_dims *output_dims,
                                      int8_t *output_data)
{
    const int32_t in_h = input_dims->h;
    const int32_t in_w = input_dims->w;
    const int32_t in_c = input_dims->c;
    const int32_t k_h = filter_dims->h;
    const int32_t k_w = filter_dims->w;
    const int32_t out_h = output_dims->h;
    const int32_t out_w = output_dims->w;
    const int32_t out_c = output_dims->c;
    const int32_t ch_mult = dw_conv_params->ch_mult;
    const int32_t dilation_y = dw_conv_params->dilation.h;
    const int32_t dilation_x = dw_conv_params->dilation.w;
    int32_t b, oy, ox, oc, ky, kx;

    for (b = 0; b < input_dims->n; ++b)
    {
        const int8_t *image = input_data + b * in_h * in_w * in_c;
        for (oy = 0; oy < out_h; ++oy)
        {
            const int32_t base_y = oy * dw_conv_params->stride.h - dw_conv_params->padding.h;
            int32_t ky_start, ky_end;
            tinyc_nn_valid_taps(base_y, k_h, dilation_y, in_h, &ky_start, &ky_end);
            for (ox = 0; ox < out_w; ++ox)
            {
                const int32_t base_x = ox * dw_conv_params->stride.w - dw_conv_params->padding.w;
                int8_t *out = output_data + ((b * out_h + oy) * out_w + ox) * out_c;
                int32_t kx_start, kx_end;
                tinyc_nn_valid_taps(base_x, k_w, dilation_x, in_w, &kx_start, &kx_end);
                for (oc = 0; oc < out_c; ++oc)
                {
                    const int32_t ic = oc / ch_mult;
                    int32_t acc = tinyc_nn_bias(bias_data, oc);
                    for (ky = ky_start; ky < ky_end; ++ky)
                    {
                        const int8_t *row = image + (base_y + ky * dilation_y) * in_w * in_c;
                        for (kx = kx_start; kx < kx_end; ++kx)
                        {
                            const int32_t x = row[(base_x + kx * dilation_x) * in_c + ic];
                            const int32_t w = filter_data[(ky * k_w + kx) * out_c + oc];
                            acc += (x + dw_conv_params->input_offset) * w;
                        }
                    }
                    out[oc] = tinyc_requantize_to_s8(acc,
                                                     quant_params->multiplier[oc],
                                                     quant_params->shift[oc],
                                                     dw_conv_params->output_offset,
                                                     dw_conv_params->activation.min,
                                                     dw_conv_params->activation.max);
                }
            }
        }
    }
}

arm_cmsis_nn_status arm_depthwise_conv_s8(const cmsis_nn_context *ctx,
                                          const cmsis_nn_dw_conv_params *dw_conv_params,
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
    (void)ctx;
    (void)bias_dims;
    depthwise_conv_s8_general(dw_conv_params,
                              quant_params,
                              input_dims,
                              input_data,
                              filter_dims,
                              filter_data,
                              bias_data,
                              output_dims,
                              output_data);
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_depthwise_conv_3x3_s8(const cmsis_nn_context *ctx,
                                              const cmsis_nn_dw_conv_params *dw_conv_params,
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
    if (input_dims->c != output_dims->c || dw_conv_params->padding.w > 1 || filter_dims->w != 3 ||
        filter_dims->h != 3)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    return arm_depthwise_conv_s8(ctx,
                                 dw_conv_params,
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

arm_cmsis_nn_status arm_depthwise_conv_s8_opt(const cmsis_nn_context *ctx,
                                              const cmsis_nn_dw_conv_params *dw_conv_params,
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
    if (input_dims->c != output_dims->c)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    if (ctx->buf == NULL && arm_depthwise_conv_s8_opt_get_buffer_size(input_dims, filter_dims) > 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    return arm_depthwise_conv_s8(ctx,
                                 dw_conv_params,
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

arm_cmsis_nn_status arm_depthwise_conv_wrapper_s8(const cmsis_nn_context *ctx,
                                                  const cmsis_nn_dw_conv_params *dw_conv_params,
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
    const int specialised = dw_conv_params->ch_mult == 1 && input_dims->n == 1 &&
        dw_conv_params->dilation.w == 1 && dw_conv_params->dilation.h == 1;
#if !defined(ARM_MATH_MVEI)
    /* Helium builds prefer the vectorised _opt kernel even for 3x3 filters. */
    if (specialised && tinyc_nn_dw_is_3x3(dw_conv_params, filter_dims))
    {
        return arm_depthwise_conv_3x3_s8(ctx,
                                         dw_conv_params,
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
#endif
    if (specialised)
    {
        return arm_depthwise_conv_s8_opt(ctx,
                                         dw_conv_params,
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
    return arm_depthwise_conv_s8(ctx,
                                 dw_conv_params,
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
