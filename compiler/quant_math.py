"""Fixed-point arithmetic of the TFLite / CMSIS-NN int8 quantisation scheme, as plain numpy.

Every function here is a statement of the integer semantics that generated C code (CMSIS-NN) and the
reference interpreter must share bit for bit:

- real multipliers become a Q31 multiplier and a power-of-two shift (`quantize_multiplier`);
- requantisation is "double rounding" (CMSIS-NN's default build): a rounding doubling high multiply
  (halves up) followed by a rounding right shift (halves away from zero)
  (`multiply_by_quantized_multiplier`);
- compile-time parameters of ADD, softmax and fused activations (`add_params`, `softmax_params`,
  `activation_bounds`);
- the gemmlowp fixed-point exp and reciprocal used by int8 softmax (`exp_on_negative_values`,
  `one_over_one_plus_x_for_x_in_0_1`);
- float <-> integer conversion with ONNX QuantizeLinear / DequantizeLinear semantics.

Array functions take Python ints or numpy integer arrays (any integer dtype, broadcasting) and return
int64 arrays holding int32 values: intermediates are exact in int64, and where the C code works in
int32 the result is wrapped to int32 exactly as two's complement hardware does.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .ir import QuantParams

INT32_MIN = -(2 ** 31)
INT32_MAX = 2 ** 31 - 1
DTYPE_LIMITS = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
                "int32": (INT32_MIN, INT32_MAX)}

# Softmax: the scaled input difference is a fixed-point number with 5 integer bits (Q5.26), the sum
# of exponentials one with 12 integer bits (Q12.19): enough for 2^12 terms each at most 1.
SOFTMAX_DIFF_INTEGER_BITS = 5
SOFTMAX_ACCUM_INTEGER_BITS = 12
# TFLite's ADD rescales both int8 inputs into 20 fractional bits of headroom before adding.
ADD_LEFT_SHIFT = 20
# The output quantisation of the integer softmax (TFLite's and CMSIS-NN's): probabilities in 1/256 steps.
SOFTMAX_OUTPUT = QuantParams.tensor(1.0 / 256.0, -128)
# The IR holds uint8 tensors as int8: code - 128 with zero point - 128 is the same real value, exactly.
UINT8_TO_INT8 = 128


def int8_params(lo: float, hi: float) -> tuple[float, int]:
    """Asymmetric int8 (scale, zero point) whose codes span the real range [lo, hi] (which holds 0):
    scale (hi - lo) / 255 as a float32, zero point the code of 0. A range of one point (a tensor that
    is always 0) gets scale 1: any scale holds it exactly."""
    span = hi - lo
    if not span > 0.0:
        return 1.0, 0
    scale = float(np.float32(span / 255.0))
    return scale, int(np.clip(round(-128.0 - lo / scale), -128, 127))


def shift_to_int8(q: QuantParams) -> QuantParams:
    """The quantisation of uint8 data stored as int8 = uint8 - 128 (same real values)."""
    return QuantParams(q.scale, tuple(z - UINT8_TO_INT8 for z in q.zero_point), q.axis)


def uint8_data_to_int8(data: np.ndarray) -> np.ndarray:
    return (np.asarray(data).astype(np.int16) - UINT8_TO_INT8).astype(np.int8)


def lut_table(fn: Callable[[np.ndarray], np.ndarray], x: QuantParams, y: QuantParams) -> list[int]:
    """table[c + 128] = quantize(fn(dequantize(c))) for every int8 code c, with ONNX QDQ arithmetic:
    dequantize (c - zp) * s in float32, `fn` on float32, quantize round_half_even(v / s) + zp
    saturated to int8 (an infinite result saturates; NaN maps to the zero point)."""
    codes = np.arange(-128, 128, dtype=np.int32)
    real = (codes - x.zero_point[0]).astype(np.float32) * np.float32(x.scale[0])
    with np.errstate(over="ignore", invalid="ignore"):
        out = np.asarray(fn(real), dtype=np.float32)
        scaled = np.rint(out / np.float32(y.scale[0])).astype(np.float64)
    stored = np.clip(np.nan_to_num(scaled, nan=0.0) + y.zero_point[0], -128, 127)
    return [int(v) for v in stored]


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x) -> np.ndarray:
    """Two's complement wrap of int64 values to the int32 range (what C's int32 arithmetic does)."""
    return _i64(x).astype(np.int32).astype(np.int64)


def _round_half_away(x: float) -> int:
    """C's round(): nearest integer, halves away from zero (exact for any double)."""
    f = math.floor(abs(x))
    r = f + 1 if abs(x) - f >= 0.5 else f
    return int(r) if x >= 0 else -int(r)


# ---- multipliers --------------------------------------------------------------------------------

def quantize_multiplier(real: float) -> tuple[int, int]:
    """A non-negative real multiplier as (q31 multiplier, shift) with real ~= multiplier * 2^(shift-31).

    The multiplier lies in [2^30, 2^31): frexp gives real = q * 2^shift with q in [0.5, 1), and q is
    rounded to 31 fractional bits (half away from zero). Rounding up to exactly 2^31 is folded into
    the shift. Multipliers below 2^-32 would shift every bit out, so they become (0, 0); so does 0.
    """
    real = float(real)
    if not (real >= 0.0 and math.isfinite(real)):
        raise ValueError(f"multiplier must be a finite non-negative number, got {real!r}")
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_half_away(q * 2.0 ** 31)  # q * 2^31 is exact: a power-of-two scaling
    if q_fixed == 2 ** 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q_fixed, shift


def quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """`quantize_multiplier` for reals >= 1, whose shift is a left shift (never negative)."""
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"multiplier {real!r} is below 1; a left-shift-only encoding cannot hold it")
    return multiplier, shift


# ---- fixed-point primitives (gemmlowp / CMSIS-NN) -----------------------------------------------

def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """High 32 bits of 2*a*b for int32 a, b, rounded to nearest with halves rounded up (toward
    +infinity: the nudge is 2^30 for positive products and 1 - 2^30 for negative ones, then C's
    division truncates): floor(a * b / 2^31 + 1/2). INT32_MIN * INT32_MIN, the only product that
    overflows, saturates to INT32_MAX."""
    a, b = _i64(a), _i64(b)
    product = a * b  # |a*b| <= 2^62: exact in int64
    nudged = product + np.where(product >= 0, 1 << 30, 1 - (1 << 30))
    # C integer division truncates toward zero; numpy's shift floors, so handle negatives by symmetry.
    high = np.where(nudged >= 0, nudged >> 31, -((-nudged) >> 31))
    overflow = (a == INT32_MIN) & (b == INT32_MIN)
    return np.where(overflow, INT32_MAX, high).astype(np.int64)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """x / 2^exponent rounded to nearest, halves away from zero (exponent >= 0, may be an array).

    Exponents above 31 (int8 softmax on rows of more than 256 maximal entries) give the
    mathematically rounded result, 0 for any int32 x."""
    x, exponent = _i64(x), _i64(exponent)
    if np.any((exponent < 0) | (exponent > 62)):
        raise ValueError("rounding_divide_by_pot needs an exponent in 0..62")
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def saturating_left_shift(x, exponent: int) -> np.ndarray:
    """x * 2^exponent saturated to int32 (gemmlowp's SaturatingRoundingMultiplyByPOT, exponent >= 0)."""
    return np.clip(_i64(x) << exponent, INT32_MIN, INT32_MAX)


def multiply_by_quantized_multiplier(x, multiplier, shift) -> np.ndarray:
    """Requantise int32 x by (multiplier, shift) with double rounding, CMSIS-NN's default:
    rounding_divide_by_pot(srdhm(x * 2^max(shift, 0), multiplier), max(-shift, 0)).
    `multiplier` and `shift` broadcast against x (per-channel requantisation)."""
    x, multiplier, shift = _i64(x), _i64(multiplier), _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    scaled = wrap_int32(x << left)  # int32 arithmetic in C: the left shift wraps
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(scaled, multiplier), right)


# ---- compile-time parameters ---------------------------------------------------------------------

@dataclass(frozen=True)
class AddParams:
    """TFLite ADD: both inputs move to a common scale 2*max(s1, s2) / 2^left_shift, are added in int32,
    and the sum is requantised to the output scale."""

    left_shift: int
    input1_multiplier: int
    input1_shift: int
    input2_multiplier: int
    input2_shift: int
    output_multiplier: int
    output_shift: int


def add_params(scale1: float, scale2: float, output_scale: float,
               left_shift: int = ADD_LEFT_SHIFT) -> AddParams:
    """Fixed-point parameters of an int8 ADD for input scales s1, s2 and output scale s_out."""
    twice_max = 2.0 * max(float(scale1), float(scale2))
    m1, sh1 = quantize_multiplier(float(scale1) / twice_max)
    m2, sh2 = quantize_multiplier(float(scale2) / twice_max)
    mo, sho = quantize_multiplier(twice_max / (float(2 ** left_shift) * float(output_scale)))
    return AddParams(left_shift, m1, sh1, m2, sh2, mo, sho)


@dataclass(frozen=True)
class SoftmaxParams:
    """int8 softmax: input differences (x - max) are scaled by input_multiplier * 2^input_left_shift
    into Q5.26; differences below diff_min contribute exp(...) == 0 and are skipped."""

    input_multiplier: int
    input_left_shift: int
    diff_min: int


def softmax_params(input_scale: float, beta: float = 1.0) -> SoftmaxParams:
    """Compile-time parameters of int8 softmax for an input scale and beta."""
    fractional_bits = 31 - SOFTMAX_DIFF_INTEGER_BITS
    # A larger multiplier would only push every non-maximal exp() further below the int8 output's
    # resolution, so capping it at the largest Q31 value does not change results.
    real = min(float(beta) * float(input_scale) * float(2 ** fractional_bits), float(INT32_MAX))
    multiplier, left_shift = quantize_multiplier_greater_than_one(real)
    # The largest input difference whose scaled value still fits Q5.26; floor keeps it strictly inside.
    radius = math.floor((2 ** SOFTMAX_DIFF_INTEGER_BITS - 1) * 2.0 ** fractional_bits / 2.0 ** left_shift)
    return SoftmaxParams(multiplier, left_shift, -radius)


def activation_bounds(activation: str, scale: float, zero_point: int, dtype: str = "int8",
                      clip_min: float = 0.0, clip_max: float = 6.0) -> tuple[int, int]:
    """(act_min, act_max) of a fused activation on an output quantised (scale, zero_point).

    A real bound f maps to zero_point + round(f / scale), the division in float32 and the rounding
    half away from zero (TFLite's rule), then intersects the dtype's range.
    """
    lo, hi = DTYPE_LIMITS[dtype]

    def to_int(f: float) -> int:
        ratio = float(np.float32(f) / np.float32(scale))
        if not math.isfinite(ratio):
            return lo if ratio < 0 else hi
        return int(zero_point) + _round_half_away(ratio)

    if activation == "none":
        return lo, hi
    if activation == "relu":
        return max(lo, to_int(0.0)), hi
    if activation == "relu6":
        return max(lo, to_int(0.0)), min(hi, to_int(6.0))
    if activation == "clip":
        return max(lo, to_int(clip_min)), min(hi, to_int(clip_max))
    raise ValueError(f"unknown activation {activation!r}")


# ---- gemmlowp fixed-point exp and reciprocal (int8 softmax) --------------------------------------

def _q31(real: float) -> int:
    return _round_half_away(real * 2.0 ** 31)


# exp(-2^k) in Q0.31 for k = -2..4: multiplying by these applies one bit of the integer/quarter part.
_EXP_BARREL = [(k, _q31(math.exp(-(2.0 ** k)))) for k in range(-2, 5)]
_EXP_MINUS_ONE_EIGHTH = _q31(math.exp(-1.0 / 8.0))
_ONE_THIRD = _q31(1.0 / 3.0)
# Newton-Raphson start for 1/d, d in [0.5, 1): 48/17 - 32/17 * d, both in Q2.29.
_NR_48_OVER_17 = _round_half_away(48.0 / 17.0 * 2.0 ** 29)
_NR_NEG_32_OVER_17 = -_round_half_away(32.0 / 17.0 * 2.0 ** 29)


def _fixed_mul(a, b) -> np.ndarray:
    return saturating_rounding_doubling_high_mul(a, b)


def _exp_on_quarter_interval(a) -> np.ndarray:
    """exp(a) for a in [-1/4, 0) in Q0.31: a Taylor expansion around -1/8 to 4th order."""
    x = wrap_int32(_i64(a) + (1 << 28))  # x = a + 1/8
    x2 = _fixed_mul(x, x)
    x3 = _fixed_mul(x2, x)
    x4 = _fixed_mul(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(wrap_int32(_fixed_mul(wrap_int32(x4_over_4 + x3), _ONE_THIRD) + x2), 1)
    return wrap_int32(_EXP_MINUS_ONE_EIGHTH + _fixed_mul(_EXP_MINUS_ONE_EIGHTH, wrap_int32(x + poly)))


def exp_on_negative_values(a, integer_bits: int = SOFTMAX_DIFF_INTEGER_BITS) -> np.ndarray:
    """exp(a) in Q0.31 for a <= 0 given in Q(integer_bits).(31 - integer_bits).

    a splits into a multiple of 1/4 and a remainder in [-1/4, 0): the remainder goes through the
    polynomial, and each set bit of the multiple multiplies by a precomputed exp(-2^k).
    """
    if not 0 <= integer_bits <= 5:
        raise ValueError("exp_on_negative_values supports 0..5 integer bits")
    a = _i64(a)
    fractional_bits = 31 - integer_bits
    quarter = 1 << (fractional_bits - 2)
    a_mod_quarter_minus_quarter = (a & (quarter - 1)) - quarter
    result = _exp_on_quarter_interval(saturating_left_shift(a_mod_quarter_minus_quarter, integer_bits))
    remainder = wrap_int32(a_mod_quarter_minus_quarter - a)
    for k, multiplier in _EXP_BARREL:
        if integer_bits > k:
            bit = (remainder >> (fractional_bits + k)) & 1
            result = np.where(bit != 0, _fixed_mul(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result).astype(np.int64)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """1 / (1 + x) for x in [0, 1) in Q0.31 (input and output), by three Newton-Raphson steps on
    half the denominator in Q2.29."""
    a = _i64(a)
    total = a + INT32_MAX
    half_denominator = np.where(total >= 0, (total + 1) // 2, -((-(total - 1)) // 2))
    x = wrap_int32(_NR_48_OVER_17 + _fixed_mul(half_denominator, _NR_NEG_32_OVER_17))
    one_q2_29 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = _fixed_mul(half_denominator, x)
        one_minus = wrap_int32(one_q2_29 - half_denominator_times_x)
        x = wrap_int32(x + saturating_left_shift(_fixed_mul(x, one_minus), 2))
    return saturating_left_shift(x, 1)


# ---- float <-> integer ---------------------------------------------------------------------------

def _along_axis(values, axis: int | None, ndim: int, dtype) -> np.ndarray:
    arr = np.asarray(values, dtype=dtype)
    if axis is None or arr.size == 1:
        return arr.reshape(())
    shape = [1] * ndim
    shape[axis] = arr.size
    return arr.reshape(shape)


def quantize(x, scale, zero_point, dtype: str = "int8", axis: int | None = None) -> np.ndarray:
    """ONNX QuantizeLinear: saturate(round_half_to_even(x / scale) + zero_point), the division in
    float32. `scale`/`zero_point` are scalars or per-slice sequences along `axis`. NaN has no integer
    image: it maps to the zero point (the image of 0), as runtime_c's quantizer does; +-inf saturate."""
    x = np.asarray(x, dtype=np.float32)
    s = _along_axis(scale, axis, x.ndim, np.float32)
    z = _along_axis(zero_point, axis, x.ndim, np.int64)
    lo, hi = DTYPE_LIMITS[dtype]
    with np.errstate(invalid="ignore", divide="ignore"):
        rounded = np.rint(x / s)  # rint rounds halves to even
    rounded = np.where(np.isnan(rounded), 0.0, rounded)
    rounded = np.clip(rounded, -2.0 ** 40, 2.0 ** 40)  # keep the int64 cast defined (saturates below)
    return np.clip(rounded.astype(np.int64) + z, lo, hi).astype(dtype)


def dequantize(q, scale, zero_point, axis: int | None = None) -> np.ndarray:
    """ONNX DequantizeLinear: (q - zero_point) * scale in float32."""
    q = np.asarray(q)
    s = _along_axis(scale, axis, q.ndim, np.float32)
    z = _along_axis(zero_point, axis, q.ndim, np.int64)
    return ((q.astype(np.int64) - z).astype(np.float32) * s).astype(np.float32)
