/*
 * tinyc runtime_c: scratch-buffer sizes of the CMSIS-NN API.
 *
 * CMSIS-NN's optimised kernels need scratch memory whose size depends on the instruction set the
 * library is built for: plain Armv6-M/v7-M C, the DSP extension (Cortex-M4/M7/M33) or Helium
 * (Cortex-M55). These functions return CMSIS-NN's sizes for its GCC build (two sizes differ under Arm
 * Compiler 6; see README.md), so a caller that sizes its buffers with them is correct for both
 * libraries. The un-suffixed functions answer for the ISA of this build; *_dsp and *_mve answer for
 * that ISA from any build (the compiler uses the same numbers, in tinyc/targets, at compile time).
 */
#include "nn_internal.h"

typedef enum
{
    ISA_PLAIN,
    ISA_DSP,
    ISA_MVE
} nn_isa;

#if defined(ARM_MATH_MVEI)
    #define BUILD_ISA ISA_MVE
#elif defined(ARM_MATH_DSP)
    #define BUILD_ISA ISA_DSP
#else
    #define BUILD_ISA ISA_PLAIN
#endif

/* Helium's depthwise kernel processes this many channels at a time. */
#define MVE_DW_CHANNEL_BLOCK 124

static int32_t round_up(int32_t x, int32_t multiple)
{
    return ((x + multiple - 1) / multiple) * multiple;
}

/* arm_convolve_s8: without Helium two columns of the im2col matrix as int16 (rows padded to a multiple
   of 4); with Helium four int8 columns padded to a multiple of 16 bytes. */
static int32_t convolve_s8_size(nn_isa isa, const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims)
{
    const int32_t column = filter_dims->w * filter_dims->h * input_dims->c;
    if (isa == ISA_MVE)
    {
        return 4 * round_up(column, 16) * (int32_t)sizeof(int8_t);
    }
    return 2 * round_up(column, 4) * (int32_t)sizeof(int16_t);
}

/* arm_convolve_1_x_n_s8 on Helium: one row of input including the padding at either end, or the
   general kernel's buffer when the padding does not split the row into left / middle / right parts. */
static int32_t convolve_1_x_n_mve_size(const cmsis_nn_conv_params *conv_params,
                                       const cmsis_nn_dims *input_dims,
                                       const cmsis_nn_dims *filter_dims,
                                       const cmsis_nn_dims *output_dims)
{
    const int32_t pad = conv_params->padding.w;
    const int32_t stride = conv_params->stride.w;
    const int32_t kernel = filter_dims->w;
    const int32_t channels = input_dims->c;
    const int32_t total_pad = (output_dims->w - 1) * stride + kernel - input_dims->w;
    const int32_t extra_right = total_pad % 2;
    const int32_t right_outputs = (pad + extra_right) != 0 ? tinyc_max_i32(1, (pad + extra_right + stride - 1) / stride) : 0;
    const int32_t left_outputs = pad != 0 ? tinyc_max_i32(1, (pad + stride - 1) / stride) : 0;
    const int32_t middle_outputs = tinyc_max_i32(output_dims->w - (right_outputs + left_outputs), 0);
    int32_t left_bytes, right_bytes;
    if (right_outputs + middle_outputs + left_outputs != output_dims->w)
    {
        return convolve_s8_size(ISA_MVE, input_dims, filter_dims);
    }
    left_bytes = kernel * channels + pad * channels;
    right_bytes = (kernel - 1) * channels + (extra_right != 0 ? right_outputs * channels : pad * channels);
    return tinyc_max_i32(left_bytes, right_bytes);
}

static int32_t convolve_1_x_n_size(nn_isa isa,
                                   const cmsis_nn_conv_params *conv_params,
                                   const cmsis_nn_dims *input_dims,
                                   const cmsis_nn_dims *filter_dims,
                                   const cmsis_nn_dims *output_dims)
{
    if (isa == ISA_MVE)
    {
        return convolve_1_x_n_mve_size(conv_params, input_dims, filter_dims, output_dims);
    }
    return convolve_s8_size(isa, input_dims, filter_dims);
}

static int32_t convolve_wrapper_size(nn_isa isa,
                                     const cmsis_nn_conv_params *conv_params,
                                     const cmsis_nn_dims *input_dims,
                                     const cmsis_nn_dims *filter_dims,
                                     const cmsis_nn_dims *output_dims)
{
    if (tinyc_nn_is_conv_1x1(conv_params, input_dims, filter_dims))
    {
        /* The 1x1 kernels need no scratch (the DSP fast kernel does only under Arm Compiler 6). */
        return 0;
    }
    if (tinyc_nn_is_conv_1_x_n(conv_params, input_dims, filter_dims))
    {
        return convolve_1_x_n_size(isa, conv_params, input_dims, filter_dims, output_dims);
    }
    return convolve_s8_size(isa, input_dims, filter_dims);
}

/* arm_depthwise_conv_s8_opt: DSP keeps the input patch of every channel as int16; Helium keeps four
   patches of one block of channels. */
static int32_t depthwise_opt_size(nn_isa isa, const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims)
{
    if (isa == ISA_MVE)
    {
        return 4 * MVE_DW_CHANNEL_BLOCK * filter_dims->w * filter_dims->h * (int32_t)sizeof(int8_t);
    }
    if (isa == ISA_DSP)
    {
        return input_dims->c * filter_dims->w * filter_dims->h * (int32_t)sizeof(int16_t);
    }
    return 0;
}

/* Helium's wrapper runs a one-input-channel depthwise convolution as a convolution: the
   convolution's scratch followed by the filter transposed to [C_OUT, KH, KW, 1]. */
static int32_t depthwise_as_conv_mve_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                          const cmsis_nn_dims *input_dims,
                                          const cmsis_nn_dims *filter_dims,
                                          const cmsis_nn_dims *output_dims)
{
    cmsis_nn_conv_params conv_params;
    cmsis_nn_dims conv_filter_dims;
    conv_params.input_offset = dw_conv_params->input_offset;
    conv_params.output_offset = dw_conv_params->output_offset;
    conv_params.stride = dw_conv_params->stride;
    conv_params.padding = dw_conv_params->padding;
    conv_params.dilation = dw_conv_params->dilation;
    conv_params.activation = dw_conv_params->activation;
    conv_filter_dims.n = filter_dims->c;
    conv_filter_dims.h = filter_dims->h;
    conv_filter_dims.w = filter_dims->w;
    conv_filter_dims.c = filter_dims->n;
    return convolve_wrapper_size(ISA_MVE, &conv_params, input_dims, &conv_filter_dims, output_dims) +
        filter_dims->c * filter_dims->h * filter_dims->w * filter_dims->n;
}

static int32_t depthwise_wrapper_size(nn_isa isa,
                                      const cmsis_nn_dw_conv_params *dw_conv_params,
                                      const cmsis_nn_dims *input_dims,
                                      const cmsis_nn_dims *filter_dims,
                                      const cmsis_nn_dims *output_dims)
{
    int32_t size = 0;
    if (tinyc_nn_dw_is_multiplier_one_batch_one(dw_conv_params, input_dims, output_dims))
    {
        if (isa != ISA_MVE && tinyc_nn_dw_is_3x3(dw_conv_params, filter_dims))
        {
            return 0;
        }
        size = depthwise_opt_size(isa, input_dims, filter_dims);
    }
    if (isa == ISA_MVE && input_dims->c == 1 && output_dims->c > TINYC_NN_DW_TO_CONV_MIN_OUTPUT_CHANNELS)
    {
        size = tinyc_max_i32(size, depthwise_as_conv_mve_size(dw_conv_params, input_dims, filter_dims, output_dims));
    }
    return size;
}

/* ---- public API ------------------------------------------------------------------------------- */

int32_t arm_convolve_s8_get_buffer_size(const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims)
{
    return convolve_s8_size(BUILD_ISA, input_dims, filter_dims);
}

int32_t arm_convolve_1x1_s8_fast_get_buffer_size(const cmsis_nn_dims *input_dims)
{
    (void)input_dims;
    return 0;
}

int32_t arm_convolve_1_x_n_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                              const cmsis_nn_dims *input_dims,
                                              const cmsis_nn_dims *filter_dims,
                                              const cmsis_nn_dims *output_dims)
{
    return convolve_1_x_n_size(BUILD_ISA, conv_params, input_dims, filter_dims, output_dims);
}

int32_t arm_convolve_wrapper_s8_get_buffer_size(const cmsis_nn_conv_params *conv_params,
                                                const cmsis_nn_dims *input_dims,
                                                const cmsis_nn_dims *filter_dims,
                                                const cmsis_nn_dims *output_dims)
{
    return convolve_wrapper_size(BUILD_ISA, conv_params, input_dims, filter_dims, output_dims);
}

int32_t arm_convolve_wrapper_s8_get_buffer_size_dsp(const cmsis_nn_conv_params *conv_params,
                                                    const cmsis_nn_dims *input_dims,
                                                    const cmsis_nn_dims *filter_dims,
                                                    const cmsis_nn_dims *output_dims)
{
    return convolve_wrapper_size(ISA_DSP, conv_params, input_dims, filter_dims, output_dims);
}

int32_t arm_convolve_wrapper_s8_get_buffer_size_mve(const cmsis_nn_conv_params *conv_params,
                                                    const cmsis_nn_dims *input_dims,
                                                    const cmsis_nn_dims *filter_dims,
                                                    const cmsis_nn_dims *output_dims)
{
    return convolve_wrapper_size(ISA_MVE, conv_params, input_dims, filter_dims, output_dims);
}

int32_t arm_depthwise_conv_s8_opt_get_buffer_size(const cmsis_nn_dims *input_dims, const cmsis_nn_dims *filter_dims)
{
    return depthwise_opt_size(BUILD_ISA, input_dims, filter_dims);
}

int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                      const cmsis_nn_dims *input_dims,
                                                      const cmsis_nn_dims *filter_dims,
                                                      const cmsis_nn_dims *output_dims)
{
    return depthwise_wrapper_size(BUILD_ISA, dw_conv_params, input_dims, filter_dims, output_dims);
}

int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                          const cmsis_nn_dims *input_dims,
                                                          const cmsis_nn_dims *filter_dims,
                                                          const cmsis_nn_dims *output_dims)
{
    return depthwise_wrapper_size(ISA_DSP, dw_conv_params, input_dims, filter_dims, output_dims);
}

int32_t arm_depthwise_conv_wrapper_s8_get_buffer_size_mve(const cmsis_nn_dw_conv_params *dw_conv_params,
                                                          const cmsis_nn_dims *input_dims,
                                                          const cmsis_nn_dims *filter_dims,
                                                          const cmsis_nn_dims *output_dims)
{
    return depthwise_wrapper_size(ISA_MVE, dw_conv_params, input_dims, filter_dims, output_dims);
}

/* Fully connected: Helium keeps one int32 kernel sum per output unit (filter_dims->c). */
int32_t arm_fully_connected_s8_get_buffer_size_dsp(const cmsis_nn_dims *filter_dims)
{
    (void)filter_dims;
    return 0;
}

int32_t arm_fully_connected_s8_get_buffer_size_mve(const cmsis_nn_dims *filter_dims)
{
    return filter_dims->c * (int32_t)sizeof(int32_t);
}

int32_t arm_fully_connected_s8_get_buffer_size(const cmsis_nn_dims *filter_dims)
{
    return BUILD_ISA == ISA_MVE ? arm_fully_connected_s8_get_buffer_size_mve(filter_dims)
                                : arm_fully_connected_s8_get_buffer_size_dsp(filter_dims);
}

/* Average pooling: the DSP kernel sums one window row of channels in int32. */
int32_t arm_avgpool_s8_get_buffer_size_dsp(const int dim_dst_width, const int ch_src)
{
    (void)dim_dst_width;
    return ch_src * (int32_t)sizeof(int32_t);
}

int32_t arm_avgpool_s8_get_buffer_size_mve(const int dim_dst_width, const int ch_src)
{
    (void)dim_dst_width;
    (void)ch_src;
    return 0;
}

int32_t arm_avgpool_s8_get_buffer_size(const int dim_dst_width, const int ch_src)
{
    if (BUILD_ISA == ISA_MVE)
    {
        return arm_avgpool_s8_get_buffer_size_mve(dim_dst_width, ch_src);
    }
    if (BUILD_ISA == ISA_DSP)
    {
        return arm_avgpool_s8_get_buffer_size_dsp(dim_dst_width, ch_src);
    }
    return 0;
}
