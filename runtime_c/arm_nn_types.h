/*
 * tinyc runtime_c: argument types of the CMSIS-NN API (the int8 subset tinyc calls).
 *
 * Written for tinyc from CMSIS-NN's documented interface: same type names, member names and member
 * order, so generated code that initialises these structs positionally compiles unchanged against
 * either these portable kernels or the real CMSIS-NN library. The include guard has the same name as
 * CMSIS-NN's so that only one definition is ever seen when both are on the include path.
 */
#ifndef ARM_NN_TYPES_H
#define ARM_NN_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/* Result of every kernel that can reject its arguments. */
typedef enum
{
    ARM_CMSIS_NN_SUCCESS = 0,
    ARM_CMSIS_NN_ARG_ERROR = -1,   /* an argument violates the kernel's documented constraints */
    ARM_CMSIS_NN_NO_IMPL_ERROR = -2,
    ARM_CMSIS_NN_FAILURE = -3
} arm_cmsis_nn_status;

/* A 2-D extent: width first. Used for strides, paddings and dilations. */
typedef struct
{
    int32_t w;
    int32_t h;
} cmsis_nn_tile;

/* Scratch memory handed to a kernel; size in bytes from the kernel's *_get_buffer_size(). */
typedef struct
{
    void *buf;
    int32_t size;
} cmsis_nn_context;

/* Tensor extents. For activations: batch, height, width, channels (NHWC). Filters reuse n for the
   output channels (convolution) or the accumulation depth (fully connected); see each kernel. */
typedef struct
{
    int32_t n;
    int32_t h;
    int32_t w;
    int32_t c;
} cmsis_nn_dims;

/* One fixed-point multiplier and shift per output channel. The arrays are only read. */
typedef struct
{
    int32_t *multiplier;
    int32_t *shift;
} cmsis_nn_per_channel_quant_params;

/* One fixed-point multiplier and shift for the whole output tensor. */
typedef struct
{
    int32_t multiplier;
    int32_t shift;
} cmsis_nn_per_tensor_quant_params;

/* Output clamp, in the output's integer domain (fused ReLU / ReLU6 / clip). */
typedef struct
{
    int32_t min;
    int32_t max;
} cmsis_nn_activation;

/* Convolution. input_offset is minus the input zero point, output_offset the output zero point.
   padding holds the top/left padding only; bottom/right padding follows from the output size. */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_tile dilation;
    cmsis_nn_activation activation;
} cmsis_nn_conv_params;

/* Depthwise convolution: as cmsis_nn_conv_params plus the channel multiplier
   (output channels = ch_mult * input channels). */
typedef struct
{
    int32_t input_offset;
    int32_t output_offset;
    int32_t ch_mult;
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_tile dilation;
    cmsis_nn_activation activation;
} cmsis_nn_dw_conv_params;

/* Max and average pooling. */
typedef struct
{
    cmsis_nn_tile stride;
    cmsis_nn_tile padding;
    cmsis_nn_activation activation;
} cmsis_nn_pool_params;

/* Fully connected. filter_offset is minus the weight zero point (0 for symmetric int8 weights). */
typedef struct
{
    int32_t input_offset;
    int32_t filter_offset;
    int32_t output_offset;
    cmsis_nn_activation activation;
} cmsis_nn_fc_params;

#endif /* ARM_NN_TYPES_H */
