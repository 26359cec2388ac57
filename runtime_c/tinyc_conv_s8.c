/*
 * tinyc runtime_c: int8 convolution (not grouped) and fully connected layers with filters that tinyc
 * packs at compile time, for cores with the DSP extension (and a plain C path for the others).
 *
 * Why not CMSIS-NN's kernels: tinyc knows the filters at compile time, so it stores them in the order
 * the inner loop reads them (two filters interleaved word by word), and the window of each output
 * pixel is widened to int16 once, in the order SXTB16 produces the filter halves. The inner loop then
 * needs one LDRD per two filter words and no sign extension of activations: 2 output pixels x 2
 * channels per step, 16 multiply-accumulates in 17 instructions (CMSIS-NN's general and 1x1 kernels
 * need about 20). The arithmetic is the same integer arithmetic, so results are bit-exact with
 * CMSIS-NN and the reference interpreter.
 *
 * Layouts (tinyc.targets.packing writes them; docs/kernels.md):
 *   depth K = kernel_h * kernel_w * input_c in (ky, kx, c) order, padded with zero weights to
 *   K4 = K rounded up to a multiple of 4. A "group" is 4 consecutive k.
 *   Filters: channels in pairs (0,1), (2,3), ...: for each group, 4 bytes of the even channel then 4
 *   bytes of the odd one; an odd last channel follows with its K4 bytes.
 *   Window columns (scratch): for each group, the int16 values (x + input_offset) of k0, k2, k1, k3
 *   (the halves SXTB16 and SXTB16 ROR 8 make of a filter word) of pixel A, then those of pixel B.
 */
#include <string.h>

#include "tinyc_fixed_point.h"
#include "tinyc_kernels.h"
#include "tinyc_simd.h"

/* The two hot loops are inline assembly on Arm cores with the DSP extension when optimising (an
   unoptimised build keeps a frame pointer and has too few free registers for them), C otherwise. */
#if TINYC_USE_DSP && TINYC_DSP_INSTRUCTIONS && defined(__OPTIMIZE__)
    #define TINYC_ASM_LOOPS 1
#else
    #define TINYC_ASM_LOOPS 0
#endif

/* int16 index of window element k of pixel `pixel` (0 or 1) in the interleaved columns. */
static inline int32_t column_index(int32_t k, int32_t pixel)
{
    return ((k & ~3) << 1) + (pixel << 2) + ((k & 1) << 1) + ((k >> 1) & 1);
}

/* Columns of `count` window elements from k on: (src[i] + offset), or 0 where src is NULL (padding). */
static void fill_column(int16_t *columns, int32_t pixel, int32_t k, const int8_t *src, int32_t count,
                        int32_t offset)
{
    /* Element by element up to a group boundary, whole groups, then the rest. */
    while (count > 0 && (k & 3) != 0)
    {
        columns[column_index(k, pixel)] = (int16_t)(src ? (int32_t)*src++ + offset : 0);
        ++k;
        --count;
    }
    if (src == NULL)
    {
        for (; count >= 4; count -= 4, k += 4)
        {
            memset(columns + column_index(k, pixel), 0, 4 * sizeof(int16_t));
        }
    }
    else
    {
#if TINYC_USE_DSP
        const uint32_t offset_pair = (uint32_t)(uint16_t)offset | ((uint32_t)(uint16_t)offset << 16);
        for (; count >= 4; count -= 4, k += 4, src += 4)
        {
            uint32_t word;
            uint32_t halves[2];
            memcpy(&word, src, sizeof(word));
            halves[0] = tinyc_sxtab16(offset_pair, word);      /* k0, k2 */
            halves[1] = tinyc_sxtab16_ror8(offset_pair, word); /* k1, k3 */
            memcpy(columns + column_index(k, pixel), halves, sizeof(halves));
        }
#else
        for (; count >= 4; count -= 4, k += 4, src += 4)
        {
            int16_t *dst = columns + column_index(k, pixel);
            dst[0] = (int16_t)((int32_t)src[0] + offset);
            dst[1] = (int16_t)((int32_t)src[2] + offset);
            dst[2] = (int16_t)((int32_t)src[1] + offset);
            dst[3] = (int16_t)((int32_t)src[3] + offset);
        }
#endif
    }
    for (; count > 0; --count, ++k)
    {
        columns[column_index(k, pixel)] = (int16_t)(src ? (int32_t)*src++ + offset : 0);
    }
}

/* The window of output pixel (out_y, out_x) of image `image` into the columns of `pixel`. */
static void gather_window(const tinyc_conv_params *p, const int8_t *image, int32_t out_y, int32_t out_x,
                          int16_t *columns, int32_t pixel)
{
    const int32_t c = p->input_c;
    const int32_t row_len = p->kernel_w * c;
    const int32_t x0 = out_x * p->stride_w - p->pad_left;
    int32_t k = 0;
    int32_t ky;
    for (ky = 0; ky < p->kernel_h; ++ky, k += row_len)
    {
        const int32_t y = out_y * p->stride_h - p->pad_top + ky * p->dilation_h;
        if (y < 0 || y >= p->input_h)
        {
            fill_column(columns, pixel, k, NULL, row_len, 0);
        }
        else if (p->dilation_w == 1)
        {
            /* The filter row covers input columns x0 .. x0 + kernel_w - 1; filter columns
               first .. last - 1 lie inside the input (none when the padding is wider than the
               filter) and are one run of bytes. */
            const int32_t first = tinyc_min_i32(p->kernel_w, tinyc_max_i32(0, -x0));
            const int32_t last = tinyc_max_i32(first, tinyc_min_i32(p->kernel_w, p->input_w - x0));
            fill_column(columns, pixel, k, NULL, first * c, 0);
            if (last > first)
            {
                fill_column(columns, pixel, k + first * c, image + ((int64_t)y * p->input_w + x0 + first) * c,
                            (last - first) * c, p->input_offset);
            }
            fill_column(columns, pixel, k + last * c, NULL, (p->kernel_w - last) * c, 0);
        }
        else
        {
            int32_t kx;
            for (kx = 0; kx < p->kernel_w; ++kx)
            {
                const int32_t x = x0 + kx * p->dilation_w;
                const int8_t *src = (x < 0 || x >= p->input_w) ? NULL : image + ((int64_t)y * p->input_w + x) * c;
                fill_column(columns, pixel, k + kx * c, src, c, p->input_offset);
            }
        }
    }
}

/* Word access to the packed filters and the columns, which tinyc aligns to 4 bytes: a may_alias
   type where the compiler has one (plain LDR/LDRD), memcpy otherwise. */
#if defined(__GNUC__) || defined(__clang__)
typedef uint32_t __attribute__((may_alias)) tinyc_word;
    #define LOAD_WORD(p, i) (((const tinyc_word *)(const void *)(p))[i])
#else
static inline uint32_t load_word_copy(const void *p, int32_t i)
{
    uint32_t w;
    memcpy(&w, (const uint8_t *)p + 4 * i, sizeof(w));
    return w;
}
    #define LOAD_WORD(p, i) load_word_copy((p), (i))
#endif

/* One filter (stride between groups: filter_step bytes) with the columns of `pixels` (1 or 2) pixels. */
static inline void dot_1xn(const int8_t *filter, int32_t filter_step, const int16_t *columns, int32_t groups,
                           int32_t pixels, int32_t *acc)
{
    int32_t a0 = acc[0], a1 = acc[1];
    for (; groups > 0; --groups, filter += filter_step, columns += 8)
    {
        const int16_t *x = columns;
        const int8_t *f = filter;
#if TINYC_USE_DSP
        const uint32_t w = LOAD_WORD(f, 0);
        const uint32_t even = tinyc_sxtb16(w);
        const uint32_t odd = tinyc_sxtb16_ror8(w);
        a0 = tinyc_smlad(LOAD_WORD(x, 0), even, a0);
        a0 = tinyc_smlad(LOAD_WORD(x, 1), odd, a0);
        if (pixels > 1)
        {
            a1 = tinyc_smlad(LOAD_WORD(x, 2), even, a1);
            a1 = tinyc_smlad(LOAD_WORD(x, 3), odd, a1);
        }
#else
        a0 += x[0] * f[0] + x[1] * f[2] + x[2] * f[1] + x[3] * f[3];
        if (pixels > 1)
        {
            a1 += x[4] * f[0] + x[5] * f[2] + x[6] * f[1] + x[7] * f[3];
        }
#endif
    }
    acc[0] = a0;
    acc[1] = a1;
}

/* Dot products of two filters (interleaved pair) with two pixels' columns, `groups` groups. */
static inline void dot_2x2(const int8_t *filters, const int16_t *columns, int32_t groups, int32_t *acc)
{
#if TINYC_ASM_LOOPS
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    /* The hot loop of every convolution, written out so that its cost does not depend on the
       compiler's register allocation: 3 LDRD, 4 SXTB16, 8 SMLAD and 2 loop instructions per 16
       multiply-accumulates, 13 registers. Filters and columns are 4-byte aligned (LDRD needs it). */
    if (groups > 0)
    {
        uint32_t w0, w1, even0, even1, x0, x1;
        __asm__ volatile("1:\n\t"
                         "ldrd %[w0], %[w1], [%[f]], #8\n\t"
                         "ldrd %[x0], %[x1], [%[c]], #8\n\t"
                         "sxtb16 %[e0], %[w0]\n\t"
                         "sxtb16 %[w0], %[w0], ror #8\n\t"
                         "sxtb16 %[e1], %[w1]\n\t"
                         "sxtb16 %[w1], %[w1], ror #8\n\t"
                         "smlad %[a00], %[x0], %[e0], %[a00]\n\t"
                         "smlad %[a00], %[x1], %[w0], %[a00]\n\t"
                         "smlad %[a10], %[x0], %[e1], %[a10]\n\t"
                         "smlad %[a10], %[x1], %[w1], %[a10]\n\t"
                         "ldrd %[x0], %[x1], [%[c]], #8\n\t"
                         "smlad %[a01], %[x0], %[e0], %[a01]\n\t"
                         "smlad %[a01], %[x1], %[w0], %[a01]\n\t"
                         "smlad %[a11], %[x0], %[e1], %[a11]\n\t"
                         "smlad %[a11], %[x1], %[w1], %[a11]\n\t"
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b\n\t"
                         : [a00] "+r"(a00), [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [f] "+r"(filters),
                           [c] "+r"(columns), [n] "+r"(groups), [w0] "=&r"(w0), [w1] "=&r"(w1), [e0] "=&r"(even0),
                           [e1] "=&r"(even1), [x0] "=&r"(x0), [x1] "=&r"(x1)
                         :
                         : "cc", "memory");
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
#else
    /* The same sums: each filter of the pair (4 bytes apart in every 8-byte group) with both
       pixels; acc is {channel 0: pixels A, B; channel 1: pixels A, B}. */
    dot_1xn(filters, 8, columns, groups, 2, acc);
    dot_1xn(filters + 4, 8, columns, groups, 2, acc + 2);
#endif
}

/* Output channels of 1 or 2 pixels whose columns are ready; out points at the first pixel's channels. */
static void pixels_channels(const tinyc_conv_params *p, const int32_t *multiplier, const int32_t *shift,
                            const int8_t *packed_filter, const int32_t *bias, const int16_t *columns,
                            int32_t pixels, int8_t *out)
{
    const int32_t depth4 = (p->kernel_h * p->kernel_w * p->input_c + 3) & ~3;
    const int32_t groups = depth4 >> 2;
    const int32_t channels = p->output_c;
    /* A local copy: stores through int8_t pointers would otherwise make the compiler reload it. */
    const tinyc_output_range range = {p->output_offset, p->act_min, p->act_max};
    int8_t *out_b = out + channels;
    int32_t o;
    for (o = 0; o + 2 <= channels; o += 2)
    {
        const int8_t *pair = packed_filter + (int64_t)o * depth4;
        const int32_t b0 = bias ? bias[o] : 0;
        const int32_t b1 = bias ? bias[o + 1] : 0;
        int32_t acc[4];
        acc[0] = b0;
        acc[1] = b0;
        acc[2] = b1;
        acc[3] = b1;
        if (pixels == 2)
        {
            dot_2x2(pair, columns, groups, acc);
            tinyc_requantize_pair_to_s8(acc[0], acc[1], multiplier[o], shift[o], &range, out + o, out_b + o);
            tinyc_requantize_pair_to_s8(acc[2], acc[3], multiplier[o + 1], shift[o + 1], &range, out + o + 1,
                                        out_b + o + 1);
        }
        else
        {
            dot_1xn(pair, 8, columns, groups, 1, acc);
            dot_1xn(pair + 4, 8, columns, groups, 1, acc + 2);
            out[o] = tinyc_requantize_one_to_s8(acc[0], multiplier[o], shift[o], &range);
            out[o + 1] = tinyc_requantize_one_to_s8(acc[2], multiplier[o + 1], shift[o + 1], &range);
        }
    }
    if (o < channels)
    {
        int32_t acc[2];
        acc[0] = bias ? bias[o] : 0;
        acc[1] = acc[0];
        dot_1xn(packed_filter + (int64_t)o * depth4, 4, columns, groups, pixels, acc);
        out[o] = tinyc_requantize_one_to_s8(acc[0], multiplier[o], shift[o], &range);
        if (pixels == 2)
        {
            out_b[o] = tinyc_requantize_one_to_s8(acc[1], multiplier[o], shift[o], &range);
        }
    }
}

void tinyc_conv_s8(const tinyc_conv_params *params,
                   const int32_t *multiplier,
                   const int32_t *shift,
                   const int8_t *input,
                   const int8_t *packed_filter,
                   const int32_t *bias,
                   int8_t *output,
                   int16_t *scratch)
{
    const int32_t depth = params->kernel_h * params->kernel_w * params->input_c;
    const int32_t depth4 = (depth + 3) & ~3;
    const int32_t pixels = params->output_h * params->output_w;
    const int64_t image_bytes = (int64_t)params->input_h * params->input_w * params->input_c;
    int32_t n;
    int32_t k;
    /* The padding elements of the last group meet zero weights; zero them once all the same. */
    for (k = depth; k < depth4; ++k)
    {
        scratch[column_index(k, 0)] = 0;
        scratch[column_index(k, 1)] = 0;
    }
    for (n = 0; n < params->batches; ++n)
    {
        const int8_t *image = input + n * image_bytes;
        int8_t *out = output + (int64_t)n * pixels * params->output_c;
        int32_t i;
        /* Raster order, two pixels at a time: both windows are read before either output is written. */
        for (i = 0; i < pixels; i += 2)
        {
            const int32_t count = (pixels - i) >= 2 ? 2 : 1;
            int32_t j;
            for (j = 0; j < count; ++j)
            {
                gather_window(params, image, (i + j) / params->output_w, (i + j) % params->output_w, scratch, j);
            }
            pixels_channels(params, multiplier, shift, packed_filter, bias, scratch, count,
                            out + (int64_t)i * params->output_c);
        }
    }
}

/* ---- fully connected ----------------------------------------------------------------------------- */

/* Packed weights: rows in blocks of 4 (the last block may have fewer rows, R): for each group, 4 bytes
   of each of the block's R rows; depth padded with zero weights to a multiple of 4 (K4). */

/* One group of the input as a word; the last group of an unpadded depth is zero-filled. */
static inline uint32_t input_word(const int8_t *x, int32_t g, int32_t depth)
{
    uint32_t word = 0;
    const int32_t left = depth - 4 * g;
    memcpy(&word, x + 4 * g, (size_t)(left < 4 ? left : 4));
    return word;
}

static inline void fc_group(uint32_t word, const int8_t *w, int32_t rows, int32_t offset, int32_t depth_left,
                            int32_t *acc)
{
    int32_t r;
#if TINYC_USE_DSP
    const uint32_t offset_pair = (uint32_t)(uint16_t)offset | ((uint32_t)(uint16_t)offset << 16);
    const uint32_t x_even = tinyc_sxtab16(offset_pair, word);   /* x0, x2 (+ offset) */
    const uint32_t x_odd = tinyc_sxtab16_ror8(offset_pair, word); /* x1, x3 (+ offset) */
    (void)depth_left;  /* padded positions meet zero weights */
    for (r = 0; r < rows; ++r)
    {
        const uint32_t ws = LOAD_WORD(w, r);
        acc[r] = tinyc_smlad(x_even, tinyc_sxtb16(ws), acc[r]);
        acc[r] = tinyc_smlad(x_odd, tinyc_sxtb16_ror8(ws), acc[r]);
    }
#else
    int32_t xs[4];
    int32_t e;
    for (e = 0; e < 4; ++e)
    {
        xs[e] = e < depth_left ? (int32_t)(int8_t)(uint8_t)(word >> (8 * e)) + offset : 0;
    }
    for (r = 0; r < rows; ++r)
    {
        acc[r] += xs[0] * w[4 * r] + xs[1] * w[4 * r + 1] + xs[2] * w[4 * r + 2] + xs[3] * w[4 * r + 3];
    }
#endif
}

#if TINYC_ASM_LOOPS
/* Four rows over the whole groups: per 16 multiply-accumulates one LDR of input, two LDRD of
   weights (4-byte aligned), 2 SXTAB16, 8 SXTB16, 8 SMLAD and 2 loop instructions. */
static inline void fc_block4(const int8_t *x, const int8_t *w, int32_t groups, int32_t offset, int32_t *acc)
{
    const uint32_t offset_pair = (uint32_t)(uint16_t)offset | ((uint32_t)(uint16_t)offset << 16);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    if (groups > 0)
    {
        uint32_t word, x_even, x_odd, w0, w1;
        __asm__ volatile("1:\n\t"
                         "ldr %[t], [%[x]], #4\n\t"
                         "ldrd %[w0], %[w1], [%[w]], #8\n\t"
                         "sxtab16 %[xe], %[op], %[t]\n\t"
                         "sxtab16 %[xo], %[op], %[t], ror #8\n\t"
                         "sxtb16 %[t], %[w0]\n\t"
                         "sxtb16 %[w0], %[w0], ror #8\n\t"
                         "smlad %[a0], %[xe], %[t], %[a0]\n\t"
                         "smlad %[a0], %[xo], %[w0], %[a0]\n\t"
                         "sxtb16 %[t], %[w1]\n\t"
                         "sxtb16 %[w1], %[w1], ror #8\n\t"
                         "smlad %[a1], %[xe], %[t], %[a1]\n\t"
                         "smlad %[a1], %[xo], %[w1], %[a1]\n\t"
                         "ldrd %[w0], %[w1], [%[w]], #8\n\t"
                         "sxtb16 %[t], %[w0]\n\t"
                         "sxtb16 %[w0], %[w0], ror #8\n\t"
                         "smlad %[a2], %[xe], %[t], %[a2]\n\t"
                         "smlad %[a2], %[xo], %[w0], %[a2]\n\t"
                         "sxtb16 %[t], %[w1]\n\t"
                         "sxtb16 %[w1], %[w1], ror #8\n\t"
                         "smlad %[a3], %[xe], %[t], %[a3]\n\t"
                         "smlad %[a3], %[xo], %[w1], %[a3]\n\t"
                         "subs %[n], %[n], #1\n\t"
                         "bne 1b\n\t"
                         : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),
                           [n] "+r"(groups), [t] "=&r"(word), [xe] "=&r"(x_even), [xo] "=&r"(x_odd), [w0] "=&r"(w0),
                           [w1] "=&r"(w1)
                         : [op] "r"(offset_pair)
                         : "cc", "memory");
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}
#endif

void tinyc_fully_connected_s8(const tinyc_fc_params *params,
                              const int32_t *multiplier,
                              const int32_t *shift,
                              const int8_t *input,
                              const int8_t *packed_weights,
                              const int32_t *bias,
                              int8_t *output)
{
    const int32_t depth = params->depth;
    const int32_t depth4 = (depth + 3) & ~3;
    const int32_t groups = depth4 >> 2;
    const int32_t units = params->units;
    const tinyc_output_range range = {params->output_offset, params->act_min, params->act_max};
    int32_t n;
    for (n = 0; n < params->batches; ++n)
    {
        const int8_t *x = input + (int64_t)n * depth;
        int8_t *out = output + (int64_t)n * units;
        int32_t u;
        for (u = 0; u < units; u += 4)
        {
            const int32_t rows = (units - u) >= 4 ? 4 : units - u;
            const int8_t *w = packed_weights + (int64_t)u * depth4;
            int32_t acc[4] = {0, 0, 0, 0};
            int32_t g = 0;
            int32_t r;
#if TINYC_ASM_LOOPS
            if (rows == 4)
            {
                g = depth >> 2; /* the groups with 4 input bytes */
                fc_block4(x, w, g, params->input_offset, acc);
            }
#endif
            for (; g < groups; ++g)
            {
                fc_group(input_word(x, g, depth), w + (int64_t)g * 4 * rows, rows, params->input_offset,
                         depth - 4 * g, acc);
            }
            for (r = 0; r < rows; ++r)
            {
                const int32_t total = acc[r] + (bias ? bias[u + r] : 0);
                const int32_t q = params->per_channel ? u + r : 0;
                out[u + r] = tinyc_requantize_one_to_s8(total, multiplier[q], shift[q], &range);
            }
        }
    }
}
