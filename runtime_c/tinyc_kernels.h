/*
 * tinyc runtime_c: tinyc's own kernels for the ops CMSIS-NN has no function for.
 *
 * They depend on nothing but the C library's headers (and tinyc_fixed_point.h), so they build next to
 * either runtime_c's CMSIS-NN-API kernels or the real CMSIS-NN. Semantics are those of tinyc's IR
 * (docs/ir.md) as implemented by the reference interpreter; every function is element-for-element
 * bit-exact with it. Shapes are passed left-padded with 1s to 4 dimensions (row-major, last fastest).
 *
 * "In place" below means the output may start at the same address as the (first) input.
 */
#ifndef TINYC_KERNELS_H
#define TINYC_KERNELS_H

#include <math.h> /* INFINITY: the bound of an activation that does not clamp on that side */
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y = table[x + 128] for size elements (table: 256 int8 entries). In place. */
void tinyc_lut_s8(const int8_t *input, int8_t *output, int32_t size, const int8_t *table);

/* ONNX QuantizeLinear: saturate(round_half_to_even(x / scale) + zero_point), the division in float32.
   NaN maps to the zero point. In place (output bytes never overtake unread input elements). */
void tinyc_quantize_f32_s8(const float *input, int8_t *output, int32_t size, float scale, int32_t zero_point);
void tinyc_quantize_f32_u8(const float *input, uint8_t *output, int32_t size, float scale, int32_t zero_point);

/* ONNX DequantizeLinear: (q - zero_point) * scale in float32. Not in place (the output is wider). */
void tinyc_dequantize_s8_f32(const int8_t *input, float *output, int32_t size, float scale, int32_t zero_point);
void tinyc_dequantize_u8_f32(const uint8_t *input, float *output, int32_t size, float scale, int32_t zero_point);

/* Requantise to another quantisation: y = saturate(requant(x + input_offset, multiplier, shift) +
   output_offset) with CMSIS-NN's double rounding, saturating to the output type. In place.
   _s8: int8 -> int8; _u8_s8: uint8 -> int8 (model inputs); _s8_u8: int8 -> uint8 (model outputs). */
void tinyc_rescale_s8(const int8_t *input,
                      int8_t *output,
                      int32_t size,
                      int32_t input_offset,
                      int32_t multiplier,
                      int32_t shift,
                      int32_t output_offset);
void tinyc_rescale_u8_s8(const uint8_t *input,
                         int8_t *output,
                         int32_t size,
                         int32_t input_offset,
                         int32_t multiplier,
                         int32_t shift,
                         int32_t output_offset);
void tinyc_rescale_s8_u8(const int8_t *input,
                         uint8_t *output,
                         int32_t size,
                         int32_t input_offset,
                         int32_t multiplier,
                         int32_t shift,
                         int32_t output_offset);

/* output = input.transpose(perm) for a 4-D input_shape: output axis i is input axis perm[i].
   Not in place. */
void tinyc_transpose_s8(const int8_t *input, int8_t *output, const int32_t *input_shape, const int32_t *perm);
void tinyc_transpose_u8(const uint8_t *input, uint8_t *output, const int32_t *input_shape, const int32_t *perm);
void tinyc_transpose_f32(const float *input, float *output, const int32_t *input_shape, const int32_t *perm);

/* Constant padding of a 4-D input: pads holds the 4 leading pads then the 4 trailing pads; every
   new element is pad_value. Not in place. */
void tinyc_pad_s8(const int8_t *input, int8_t *output, const int32_t *input_shape, const int32_t *pads, int8_t pad_value);

/* One input of a concatenation: the input is `outer` blocks of input_chunk bytes (its extent along the
   axis times the size of the axes after it); block i goes to output + i * output_chunk + output_offset.
   Called once per input with increasing output_offset. Not in place. */
void tinyc_concat_s8(const int8_t *input,
                     int8_t *output,
                     int32_t outer,
                     int32_t input_chunk,
                     int32_t output_chunk,
                     int32_t output_offset);

/* arm_elementwise_add_s8 / arm_elementwise_mul_s8 with numpy broadcasting over 4-D shapes: an input
   dimension of 1 repeats along the output's. The output may be an input whose shape equals
   output_shape. */
void tinyc_add_broadcast_s8(const int8_t *input_1,
                            const int32_t *input_1_shape,
                            const int8_t *input_2,
                            const int32_t *input_2_shape,
                            int32_t input_1_offset,
                            int32_t input_1_mult,
                            int32_t input_1_shift,
                            int32_t input_2_offset,
                            int32_t input_2_mult,
                            int32_t input_2_shift,
                            int32_t left_shift,
                            int8_t *output,
                            const int32_t *output_shape,
                            int32_t out_offset,
                            int32_t out_mult,
                            int32_t out_shift,
                            int32_t out_activation_min,
                            int32_t out_activation_max);
void tinyc_mul_broadcast_s8(const int8_t *input_1,
                            const int32_t *input_1_shape,
                            const int8_t *input_2,
                            const int32_t *input_2_shape,
                            int32_t input_1_offset,
                            int32_t input_2_offset,
                            int8_t *output,
                            const int32_t *output_shape,
                            int32_t out_offset,
                            int32_t out_mult,
                            int32_t out_shift,
                            int32_t out_activation_min,
                            int32_t out_activation_max);

/* ---- kernels with compile-time packed constants (faster than the CMSIS-NN API allows) ----------- */

/* Geometry and quantisation of tinyc_conv_s8 (NHWC input and output, no groups). */
typedef struct
{
    int32_t batches;
    int32_t input_h;
    int32_t input_w;
    int32_t input_c;
    int32_t output_h;
    int32_t output_w;
    int32_t output_c;
    int32_t kernel_h;
    int32_t kernel_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t dilation_h;
    int32_t dilation_w;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
} tinyc_conv_params;

/* Convolution with filters packed by tinyc (see tinyc_conv_s8.c): pairs of output channels interleaved
   word by word, depth kernel_h * kernel_w * input_c padded with zeros to a multiple of 4 (K4).
   multiplier/shift: one per output channel (multipliers other than INT32_MIN, as for every tinyc_
   kernel here); bias may be NULL. scratch: TINYC_CONV_S8_SCRATCH(K4)
   bytes, 4-byte aligned. Output pixels go in raster order two at a time (both windows are read before
   either is written). Not in place otherwise. */
#define TINYC_CONV_S8_SCRATCH(depth4) (4 * (depth4))
void tinyc_conv_s8(const tinyc_conv_params *params,
                   const int32_t *multiplier,
                   const int32_t *shift,
                   const int8_t *input,
                   const int8_t *packed_filter,
                   const int32_t *bias,
                   int8_t *output,
                   int16_t *scratch);

typedef struct
{
    int32_t batches;
    int32_t depth;
    int32_t units;
    int32_t input_offset;
    int32_t output_offset;
    int32_t act_min;
    int32_t act_max;
    int32_t per_channel; /* 0: multiplier[0] and shift[0] apply to every unit */
} tinyc_fc_params;

/* Fully connected layer, weights [units, depth] packed by tinyc (see tinyc_conv_s8.c): blocks of 4
   rows interleaved word by word, depth padded with zeros to a multiple of 4. multiplier/shift: one per
   unit, or one for all (params->per_channel == 0); bias may be NULL. Not in place. */
void tinyc_fully_connected_s8(const tinyc_fc_params *params,
                              const int32_t *multiplier,
                              const int32_t *shift,
                              const int8_t *input,
                              const int8_t *packed_weights,
                              const int32_t *bias,
                              int8_t *output);

/* arm_elementwise_add_s8 with each input's rescaling precomputed: table_k[v + 128] =
   requantize((v + input_k_offset) << left_shift, input_k_mult, input_k_shift) for v in -128..127.
   In place on either input. */
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
                  int32_t out_activation_max);

/* ---- float32 kernels (tinyc_f32.c) ------------------------------------------------------------ */
/*
 * ONNX semantics in single precision (float only, no double anywhere), as tinyc's interpreter defines
 * them. Activations are NHWC, convolution filters OHWI, depthwise filters IHWO [1, KH, KW, C_OUT].
 * Every fused activation is a clamp to [act_min, act_max] (none: -INFINITY, INFINITY; relu: 0,
 * INFINITY; relu6: 0, 6), which keeps NaN.
 *
 * Summation order, the same on every core (built as C99, GCC does not contract a * b + c; do not
 * build with -ffast-math, which would undo the compensation below): a dot product takes its products
 * in the order of the filter's memory (convolution: kernel row, kernel column, input channel; fully
 * connected, matmul and Gemm: along the depth), skipping the taps that fall in padding, in runs of at
 * most 8 consecutive products of one stretch of contiguous memory (a kernel row of the window in an
 * ungrouped convolution without dilation, else one tap's channels; a row of weights). Each run is
 * summed from 0.0f and its sum added to the dot product's total with Kahan's compensated summation, so
 * long products of inputs with a common offset (AD's 640 log-mel values) keep float32 accuracy. A
 * depthwise convolution (one product per tap) adds its taps from 0.0f in order (kernel row, column).
 * The bias is added to the finished total, then the activation applied. Average pooling sums its window
 * in order (row, column) and divides by the count; softmax sums its exponentials along the axis in
 * order.
 */

/* A convolution's geometry (NHWC input and output). groups: 1, or the number of groups a grouped
   convolution splits the channels into (tinyc_conv_f32 only). */
typedef struct
{
    int32_t batches;
    int32_t input_h;
    int32_t input_w;
    int32_t input_c;
    int32_t output_h;
    int32_t output_w;
    int32_t output_c;
    int32_t kernel_h;
    int32_t kernel_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t dilation_h;
    int32_t dilation_w;
    int32_t groups;
    float act_min;
    float act_max;
} tinyc_conv_f32_params;

/* Convolution, filters OHWI [output_c, kernel_h, kernel_w, input_c / groups]; bias may be NULL. Output
   pixels in raster order, each pixel's window read while its channels are written (so the output may
   start below the input by the planner's lag). Not in place. */
void tinyc_conv_f32(const tinyc_conv_f32_params *params,
                    const float *input,
                    const float *filter,
                    const float *bias,
                    float *output);

/* Depthwise convolution, filters IHWO [1, kernel_h, kernel_w, output_c]; output channel o reads input
   channel o / (output_c / input_c). params->groups is ignored. Raster order as tinyc_conv_f32. */
void tinyc_depthwise_conv_f32(const tinyc_conv_f32_params *params,
                              const float *input,
                              const float *filter,
                              const float *bias,
                              float *output);

/* y[b][u] = act(sum_k x[b][k] * w[u][k] + bias[u]) for weights [units, depth]; bias may be NULL.
   Not in place. */
void tinyc_fully_connected_f32(const float *input,
                               const float *weights,
                               const float *bias,
                               float *output,
                               int32_t batches,
                               int32_t depth,
                               int32_t units,
                               float act_min,
                               float act_max);

/* numpy matmul of a [A0, A1, M, K] and b [B0, B1, K, N] (shapes left-padded with 1s to 4 dimensions;
   the two leading axes broadcast) into [max(A0, B0), max(A1, B1), M, N]. Not in place. */
void tinyc_matmul_f32(const float *a, const int32_t *a_shape, const float *b, const int32_t *b_shape, float *output);

typedef struct
{
    int32_t m;
    int32_t n;
    int32_t k;
    int32_t trans_a;      /* a is [k, m] (else [m, k]) */
    int32_t trans_b;      /* b is [n, k] (else [k, n]) */
    int32_t c_row_stride; /* c[i][j] is c[i * c_row_stride + j * c_col_stride]: 0 along a broadcast axis */
    int32_t c_col_stride;
    float alpha;
    float beta;
} tinyc_gemm_f32_params;

/* ONNX Gemm: y = alpha * (a' b') + beta * c, c broadcast to [m, n] (may be NULL). Not in place. */
void tinyc_gemm_f32(const tinyc_gemm_f32_params *params, const float *a, const float *b, const float *c, float *output);

/* Inference batch normalisation over the channel axis of an input seen as [outer, channels, inner]:
   y = (x - mean) * (1 / sqrtf(var + epsilon)) * scale + bias, in that order. In place. */
void tinyc_batch_norm_f32(const float *input,
                          const float *scale,
                          const float *bias,
                          const float *mean,
                          const float *var,
                          float *output,
                          int32_t outer,
                          int32_t channels,
                          int32_t inner,
                          float epsilon);

/* y = act(a + b), y = act(a * b) with numpy broadcasting over 4-D shapes. The output may be an input
   whose shape equals output_shape. */
void tinyc_add_f32(const float *input_1,
                   const int32_t *input_1_shape,
                   const float *input_2,
                   const int32_t *input_2_shape,
                   float *output,
                   const int32_t *output_shape,
                   float act_min,
                   float act_max);
void tinyc_mul_f32(const float *input_1,
                   const int32_t *input_1_shape,
                   const float *input_2,
                   const int32_t *input_2_shape,
                   float *output,
                   const int32_t *output_shape,
                   float act_min,
                   float act_max);

/* Element-wise activations, in place: relu max(x, 0); clip to [min, max]; leaky_relu x < 0 ? alpha x
   : x; sigmoid 1 / (1 + e^-x) (expf of -|x|, never overflowing); tanh (tanhf); hard_swish
   x * clamp(x / 6 + 1 / 2, 0, 1). */
void tinyc_relu_f32(const float *input, float *output, int32_t size);
void tinyc_clip_f32(const float *input, float *output, int32_t size, float min, float max);
void tinyc_leaky_relu_f32(const float *input, float *output, int32_t size, float alpha);
void tinyc_sigmoid_f32(const float *input, float *output, int32_t size);
void tinyc_tanh_f32(const float *input, float *output, int32_t size);
void tinyc_hard_swish_f32(const float *input, float *output, int32_t size);

typedef struct
{
    int32_t batches;
    int32_t input_h;
    int32_t input_w;
    int32_t channels;
    int32_t output_h;
    int32_t output_w;
    int32_t kernel_h;
    int32_t kernel_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t pad_top;
    int32_t pad_left;
    int32_t count_include_pad; /* average pooling: divide by kernel_h * kernel_w (else by the taps inside) */
    float act_min;
    float act_max;
} tinyc_pool_f32_params;

/* Max and average pooling (NHWC); padding never wins a max. Every window must cover an input
   position. Not in place. */
void tinyc_max_pool_f32(const tinyc_pool_f32_params *params, const float *input, float *output);
void tinyc_avg_pool_f32(const tinyc_pool_f32_params *params, const float *input, float *output);

/* Softmax along the middle axis of an input seen as [outer, axis_size, inner]: z = beta * x,
   y = expf(z - max z) / sum expf(z - max z). In place. */
void tinyc_softmax_f32(const float *input, float *output, int32_t outer, int32_t axis_size, int32_t inner, float beta);

/* tinyc_concat_s8 and tinyc_pad_s8 for float elements (chunks and offsets count elements). */
void tinyc_concat_f32(const float *input,
                      float *output,
                      int32_t outer,
                      int32_t input_chunk,
                      int32_t output_chunk,
                      int32_t output_offset);
void tinyc_pad_f32(const float *input, float *output, const int32_t *input_shape, const int32_t *pads, float pad_value);

#ifdef __cplusplus
}
#endif

#endif /* TINYC_KERNELS_H */
