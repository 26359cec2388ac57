/*
 * tinyc runtime_c: int8 element-wise add and multiply of the CMSIS-NN API (same-shape operands).
 *
 * Each output element depends only on the input elements at the same index, read before it is
 * written, so the output may be either input.
 */
#include "nn_internal.h"

arm_cmsis_nn_status arm_elementwise_add_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_1_mult,
                                           const int32_t input_1_shift,
                                           const int32_t input_2_offset,
                                           const int32_t input_2_mult,
                                           const int32_t input_2_shift,
                                           const int32_t left_shift,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size)
{
    int32_t i;
    for (i = 0; i < block_size; ++i)
    {
        /* Both inputs move to a common fixed-point scale with left_shift bits of headroom. */
        const int32_t a = tinyc_requantize(
            tinyc_shift_left_wrap((int32_t)input_1_vect[i] + input_1_offset, left_shift), input_1_mult, input_1_shift);
        const int32_t b = tinyc_requantize(
            tinyc_shift_left_wrap((int32_t)input_2_vect[i] + input_2_offset, left_shift), input_2_mult, input_2_shift);
        output[i] = tinyc_requantize_to_s8(a + b, out_mult, out_shift, out_offset, out_activation_min,
                                           out_activation_max);
    }
    return ARM_CMSIS_NN_SUCCESS;
}

arm_cmsis_nn_status arm_elementwise_mul_s8(const int8_t *input_1_vect,
                                           const int8_t *input_2_vect,
                                           const int32_t input_1_offset,
                                           const int32_t input_2_offset,
                                           int8_t *output,
                                           const int32_t out_offset,
                                           const int32_t out_mult,
                                           const int32_t out_shift,
                                           const int32_t out_activation_min,
                                           const int32_t out_activation_max,
                                           const int32_t block_size)
{
    int32_t i;
    for (i = 0; i < block_size; ++i)
    {
        const int32_t product = ((int32_t)input_1_vect[i] + input_1_offset) * ((int32_t)input_2_vect[i] + input_2_offset);
        output[i] = tinyc_requantize_to_s8(product, out_mult, out_shift, out_offset, out_activation_min,
                                           out_activation_max);
    }
    return ARM_CMSIS_NN_SUCCESS;
}
