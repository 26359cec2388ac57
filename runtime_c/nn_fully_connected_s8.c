/*
 * tinyc runtime_c: int8 fully connected layers of the CMSIS-NN API.
 *
 * y[b][o] = requant(bias[o] + sum_k (x[b][k] + input_offset) * (w[o][k] + filter_offset)).
 *
 * Helium (ARM_MATH_MVEI) builds of CMSIS-NN take bias[o] + input_offset * sum_k (w[o][k] +
 * filter_offset) precomputed in ctx->buf (arm_vector_sum_s8) instead of the bias. tinyc's version
 * follows the same contract on such builds, so generated code that forgets the kernel sums fails
 * here too instead of only on the real library.
 */
#include "nn_internal.h"

/* The accumulator of output unit o for one input row of `depth` values. */
static int32_t fully_connected_acc(const cmsis_nn_context *ctx,
                                   const cmsis_nn_fc_params *fc_params,
                                   const int8_t *row,
                                   const int8_t *weights,
                                   const int32_t *bias_data,
                                   int32_t depth,
                                   int32_t o)
{
    const int8_t *w = weights + o * depth;
#if defined(ARM_MATH_MVEI)
    /* kernel sum + sum_k x * (w + filter_offset): the same total, regrouped. */
    const int32_t *kernel_sums = (const int32_t *)ctx->buf;
    int32_t acc = kernel_sums[o];
    int32_t k;
    (void)bias_data;
    for (k = 0; k < depth; ++k)
    {
        acc += (int32_t)row[k] * ((int32_t)w[k] + fc_params->filter_offset);
    }
    return acc;
#else
    (void)ctx;
    if (fc_params->filter_offset == 0)
    {
        return tinyc_nn_bias(bias_data, o) + tinyc_nn_dot_s8(row, w, depth, fc_params->input_offset);
    }
    {
        int32_t acc = tinyc_nn_bias(bias_data, o);
        int32_t k;
        for (k = 0; k < depth; ++k)
        {
            acc += ((int32_t)row[k] + fc_params->input_offset) * ((int32_t)w[k] + fc_params->filter_offset);
        }
        return acc;
    }
#endif
}

/* Shared by the per-tensor and per-channel entry points: multiplier/shift arrays are indexed by
   o * channel_step (0 for one value for all outputs). */
static arm_cmsis_nn_status fully_connected_s8(const cmsis_nn_context *ctx,
                                              const cmsis_nn_fc_params *fc_params,
                                              const int32_t *multiplier,
                                              const int32_t *shift,
                                              int32_t channel_step,
                                              const cmsis_nn_dims *input_dims,
                                              const int8_t *input_data,
                                              const cmsis_nn_dims *filter_dims,
                                              const int8_t *filter_data,
                                              const int32_t *bias_data,
                                              const cmsis_nn_dims *output_dims,
                                              int8_t *output_data)
{
    const int32_t depth = filter_dims->n;
    const int32_t units = output_dims->c;
    int32_t b, o;
#if defined(ARM_MATH_MVEI)
    if (ctx->buf == NULL)
    {
        return ARM_CMSIS_NN_ARG_ERROR;
    }
#endif
    for (b = 0; b < input_dims->n; ++b)
    {
        const int8_t *row = input_data + b * depth;
        int8_t *out = output_data + b * units;
        for (o = 0; o < units; ++o)
        {
            const int32_t acc = fully_connected_acc(ctx, fc_params, row, filter_data, bias_data, depth, o);
            out[o] = tinyc_requantize_to_s8(acc,
                                            multiplier[o * channel_step],
                                            shift[o * channel_step],
                                            fc_params->output_offset,
                                            fc_params->activation.min,
                                            fc_params->activation.max);
        }
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_fully_connected_s8(const cmsis_nn_context *ctx,
                                           const cmsis_nn_fc_params *fc_params,
                                           const cmsis_nn_per_tensor_quant_params *quant_params,
                                           const cmsis_nn_dims *input_dims,
                                           const int8_t *input_data,
                                           const cmsis_nn_dims *filter_dims,
                                           const int8_t *filter_data,
                                           const cmsis_nn_dims *bias_dims,
                                           const int32_t *bias_data,
                                           const cmsis_nn_dims *output_dims,
                                           int8_t *output_data)
{
    (void)bias_dims;
    return fully_connected_s8(ctx,
                              fc_params,
                              &quant_params->multiplier,
                              &quant_params->shift,
                              0,
                              input_dims,
                              input_data,
                              filter_dims,
                              filter_data,
                              bias_data,
                              output_dims,
                              output_data);
}

arm_cmsis_nn_status arm_fully_connected_per_channel_s8(const cmsis_nn_context *ctx,
                                                       const cmsis_nn_fc_params *fc_params,
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
    (void)bias_dims;
    return fully_connected_s8(ctx,
                              fc_params,
                              quant_params->multiplier,
                              quant_params->shift,
                              1,
                              input_dims,
                              input_data,
                              filter_dims,
                              filter_data,
                              bias_data,
                              output_dims,
                              output_data);
}

arm_cmsis_nn_status arm_vector_sum_s8(int32_t *vector_sum_buf,
                                      const int32_t vector_cols,
                                      const int32_t vector_rows,
                                      const int8_t *vector_data,
                                      const int32_t lhs_offset,
                                      const int32_t rhs_offset,
                                      const int32_t *bias_data)
{
    int32_t r, c;
    for (r = 0; r < vector_rows; ++r)
    {
        int32_t sum = 0;
        for (c = 0; c < vector_cols; ++c)
        {
            sum += (int32_t)vector_data[r * vector_cols + c] + rhs_offset;
        }
        vector_sum_buf[r] = tinyc_nn_bias(bias_data, r) + lhs_offset * sum;
    }
    return ARM_CMSIS_NN_SUCCESS;
}
