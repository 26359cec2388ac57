/*
 * tinyc runtime_c: same-shape int8 addition with the inputs' rescaling looked up in tables.
 *
 * TFLite's int8 addition moves each input to a common scale (offset, shift left, multiply, round)
 * before adding and requantising the sum. An input has only 256 values, so tinyc computes that first
 * step at compile time, bit for bit as the kernel would, into a table of 256 int32 per input; per
 * element there is left two table look-ups, one add and the output requantisation (about a third of
 * the instructions of computing all three requantisations). Results equal arm_elementwise_add_s8's.
 */
#include "tinyc_fixed_point.h"
#include "tinyc_kernels.h"

void tinyc_add_s8(const int8_t *input_1,
                  const int8_t *input_2,
                  const int32_t *table_1,
                  const int32_t *table_2,
                  int8_t *output,
                  int32_t size,
                  int32_t out_offset,
                  int32_t out_mult,
                  int32_t out_shift,
                  int32_t out_activation_min,
                  int32_t out_activation_max)
{
    /* Index the tables by the signed byte itself. */
    const int32_t *scaled_1 = table_1 + 128;
    const int32_t *scaled_2 = table_2 + 128;
    const tinyc_output_range range = {out_offset, out_activation_min, out_activation_max};
    int32_t i;
    for (i = 0; i < size; ++i)
    {
        /* Wrapping like the reference (and CMSIS-NN's int32 add) without C's signed overflow. */
        const int32_t sum = (int32_t)((uint32_t)scaled_1[input_1[i]] + (uint32_t)scaled_2[input_2[i]]);
        output[i] = tinyc_requantize_one_to_s8(sum, out_mult, out_shift, &range);
    }
}
