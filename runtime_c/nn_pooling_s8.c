/*
 * tinyc runtime_c: int8 max and average pooling of the CMSIS-NN API.
 *
 * Input and output share their quantisation, so no requantisation: a window's positions outside the
 * input (padding) are ignored, the maximum or the rounded mean of the rest is clamped to the
 * activation range. padding holds the top/left padding; bottom/right follows from the output size.
 */
#include "nn_internal.h"

/* The window of output (oy, ox) clipped to the input: rows [*y0, *y1), columns [*x0, *x1). */
static void pool_window(const cmsis_nn_pool_params *pool_params,
                        const cmsis_nn_dims *input_dims,
                        const cmsis_nn_dims *filter_dims,
                        int32_t oy,
                        int32_t ox,
                        int32_t *y0,
                        int32_t *y1,
                        int32_t *x0,
                        int32_t *x1)
{
    const int32_t base_y = oy * pool_params->stride.h - pool_params->padding.h;
    const int32_t base_x = ox * pool_params->stride.w - pool_params->padding.w;
    *y0 = tinyc_max_i32(base_y, 0);
    *y1 = tinyc_min_i32(base_y + filter_dims->h, input_dims->h);
    *x0 = tinyc_max_i32(base_x, 0);
    *x1 = tinyc_min_i32(base_x + filter_dims->w, input_dims->w);
}

arm_cmsis_nn_status arm_avgpool_s8(const cmsis_nn_context *ctx,
                                   const cmsis_nn_pool_params *pool_params,
                                   const cmsis_nn_dims *input_dims,
                                   const int8_t *input_data,
                                   const cmsis_nn_dims *filter_dims,
                                   const cmsis_nn_dims *output_dims,
                                   int8_t *output_data)
{
    const int32_t channels = input_dims->c;
    int32_t b, oy, ox, c, y, x;
    if (input_dims->n < 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    if (ctx->buf == NULL && arm_avgpool_s8_get_buffer_size(output_dims->w, input_dims->c) > 0)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (b = 0; b < input_dims->n; ++b)
    {
        const int8_t *image = input_data + b * input_dims->h * input_dims->w * channels;
        for (oy = 0; oy < output_dims->h; ++oy)
        {
            for (ox = 0; ox < output_dims->w; ++ox)
            {
                int8_t *out = output_data + ((b * output_dims->h + oy) * output_dims->w + ox) * channels;
                int32_t y0, y1, x0, x1, count;
                pool_window(pool_params, input_dims, filter_dims, oy, ox, &y0, &y1, &x0, &x1);
                if (y1 <= y0 || x1 <= x0)
                {
                    return ARM_CMSIS_NN_ARG_ERROR;
                }
                count = (y1 - y0) * (x1 - x0);
                for (c = 0; c < channels; ++c)
                {
                    int32_t sum = 0;
                    int32_t mean;
                    for (y = y0; y < y1; ++y)
                    {
                        for (x = x0; x < x1; ++x)
                        {
                            sum += image[(y * input_dims->w + x) * channels + c];
                        }
                    }
                    /* round half away from zero; C division truncates toward zero */
                    mean = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    out[c] = (int8_t)tinyc_clamp_i32(mean, pool_params->activation.min, pool_params->activation.max);
                }
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_max_pool_s8(const cmsis_nn_context *ctx,
                                    const cmsis_nn_pool_params *pool_params,
                                    const cmsis_nn_dims *input_dims,
                                    const int8_t *input_data,
                                    const cmsis_nn_dims *filter_dims,
                                    const cmsis_nn_dims *output_dims,
                                    int8_t *output_data)
{
    const int32_t channels = input_dims->c;
    int32_t b, oy, ox, c, y, x;
    (void)ctx;
    if (input_dims->n < 1)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
    for (b = 0; b < input_dims->n; ++b)
    {
        const int8_t *image = input_data + b * input_dims->h * input_dims->w * channels;
        for (oy = 0; oy < output_dims->h; ++oy)
        {
            for (ox = 0; ox < output_dims->w; ++ox)
            {
                int8_t *out = output_data + ((b * output_dims->h + oy) * output_dims->w + ox) * channels;
                int32_t y0, y1, x0, x1;
                pool_window(pool_params, input_dims, filter_dims, oy, ox, &y0, &y1, &x0, &x1);
                /* CMSIS-NN leaves such an output unwritten; tinyc reports it. */
                if (y1 <= y0 || x1 <= x0)
                {
                    return ARM_CMSIS_NN_ARG_ERROR;
                }
                for (c = 0; c < channels; ++c)
                {
                    int32_t largest = image[(y0 * input_dims->w + x0) * channels + c];
                    for (y = y0; y < y1; ++y)
                    {
                        for (x = x0; x < x1; ++x)
                        {
                            largest = tinyc_max_i32(largest, image[(y * input_dims->w + x) * channels + c]);
                        }
                    }
                    out[c] = (int8_t)tinyc_clamp_i32(largest, pool_params->activation.min, pool_params->activation.max);
                }
            }
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}
