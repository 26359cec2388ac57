/*
 * tinyc runtime_c: limits and ISA feature switches of the CMSIS-NN API.
 *
 * ARM_MATH_DSP and ARM_MATH_MVEI are the switches CMSIS-NN's sources test; they follow the compiler's
 * ACLE feature macros unless the build sets them. tinyc's kernels are portable C either way, but the
 * *_get_buffer_size() functions and a few argument checks depend on them exactly as CMSIS-NN's do, so
 * that generated code sized for one library is correct for the other.
 */
#ifndef ARM_NN_MATH_TYPES_H
#define ARM_NN_MATH_TYPES_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && (__ARM_FEATURE_DSP == 1)
    #ifndef ARM_MATH_DSP
        #define ARM_MATH_DSP 1
    #endif
#endif

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
    #ifndef ARM_MATH_MVEI
        #define ARM_MATH_MVEI 1
    #endif
#endif

#define NN_Q31_MAX ((int32_t)(0x7FFFFFFFL))
#define NN_Q15_MAX ((int16_t)(0x7FFF))
#define NN_Q7_MAX ((int8_t)(0x7F))
#define NN_Q31_MIN ((int32_t)(-0x7FFFFFFFL - 1))
#define NN_Q15_MIN ((int16_t)(-0x7FFF - 1))
#define NN_Q7_MIN ((int8_t)(-0x7F - 1))

#endif /* ARM_NN_MATH_TYPES_H */
