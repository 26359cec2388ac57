"""Property tests of tinyc.quant_math against slow, exact models of the documented formulas
(Python integers and fractions), plus known values of the TFLite / gemmlowp scheme."""
from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import onnx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from tinyc import quant_math as qm

INT32 = st.integers(qm.INT32_MIN, qm.INT32_MAX)
MULTIPLIER = st.integers(2 ** 30, 2 ** 31 - 1)


def round_half_away(f: Fraction) -> int:
    sign = -1 if f < 0 else 1
    return sign * math.floor(abs(f) + Fraction(1, 2))


def wrap32(v: int) -> int:
    return (v + 2 ** 31) % 2 ** 32 - 2 ** 31


def srdhm_exact(a: int, b: int) -> int:
    """gemmlowp's SaturatingRoundingDoublingHighMul: nearest integer to a*b / 2^31, halves up."""
    if a == b == qm.INT32_MIN:
        return qm.INT32_MAX
    return math.floor(Fraction(a * b, 2 ** 31) + Fraction(1, 2))


def mbqm_exact(x: int, multiplier: int, shift: int) -> int:
    shifted = wrap32(x * 2 ** max(shift, 0))
    return round_half_away(Fraction(srdhm_exact(shifted, multiplier), 2 ** max(-shift, 0)))


# ---- primitives ----------------------------------------------------------------------------------

@given(INT32, INT32)
@example(qm.INT32_MIN, qm.INT32_MIN)
@example(qm.INT32_MIN, qm.INT32_MAX)
@example(3, 2 ** 30)  # 1.5 -> 2
@example(-3, 2 ** 30)  # -1.5 -> -1 (halves go up, unlike rounding_divide_by_pot)
def test_srdhm_is_rounded_doubled_high_product(a, b):
    assert int(qm.saturating_rounding_doubling_high_mul(a, b)) == srdhm_exact(a, b)


@given(INT32, st.integers(0, 31))
@example(5, 1)
@example(-5, 1)
@example(-6, 2)
def test_rounding_divide_by_pot_rounds_half_away_from_zero(x, exponent):
    assert int(qm.rounding_divide_by_pot(x, exponent)) == round_half_away(Fraction(x, 2 ** exponent))


def test_rounding_divide_by_pot_known_values():
    got = qm.rounding_divide_by_pot(np.array([5, -5, 6, -6, 7, -7, 0]), 1).tolist()
    assert got == [3, -3, 3, -3, 4, -4, 0]
    assert qm.rounding_divide_by_pot(np.array([2 ** 31 - 1]), 40).tolist() == [0]


@given(INT32, MULTIPLIER, st.integers(-31, 30))
def test_multiply_by_quantized_multiplier_matches_exact_double_rounding(x, multiplier, shift):
    assert int(qm.multiply_by_quantized_multiplier(x, multiplier, shift)) == mbqm_exact(x, multiplier, shift)


@given(st.integers(-(2 ** 24), 2 ** 24), MULTIPLIER, st.integers(-20, 0))
def test_multiply_by_quantized_multiplier_is_within_one_of_the_real_product(x, multiplier, shift):
    real = Fraction(x * multiplier, 2 ** (31 - shift))
    assert abs(int(qm.multiply_by_quantized_multiplier(x, multiplier, shift)) - real) <= 1


def test_multiply_by_quantized_multiplier_broadcasts_per_channel():
    x = np.array([[100, -100], [7, 9]])
    multipliers = np.array([2 ** 30, 1610612736])
    shifts = np.array([-1, 2])
    got = qm.multiply_by_quantized_multiplier(x, multipliers, shifts)
    want = [[mbqm_exact(int(v), int(m), int(s)) for v, m, s in zip(row, multipliers, shifts)] for row in x]
    assert got.tolist() == want


def test_double_rounding_differs_from_single_rounding_where_documented():
    # 0.5 * 2^-1 applied to 3: the high multiply gives 1.5 -> 2, then 2 / 2 = 1 (single rounding
    # of 3 * 0.25 = 0.75 would also give 1); x = 5: 2.5 -> 3, 3/2 -> 2 whereas 5 * 0.25 = 1.25 -> 1.
    assert int(qm.multiply_by_quantized_multiplier(5, 2 ** 30, -1)) == 2
    assert int(qm.multiply_by_quantized_multiplier(3, 2 ** 30, -1)) == 1


# ---- quantize_multiplier -------------------------------------------------------------------------

@given(st.floats(min_value=2.0 ** -31, max_value=2.0 ** 20, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_round_trips(real):
    multiplier, shift = qm.quantize_multiplier(real)
    assert 2 ** 30 <= multiplier < 2 ** 31
    approx = Fraction(multiplier) * Fraction(2) ** (shift - 31)
    assert abs(approx - Fraction(real)) <= Fraction(real) * Fraction(1, 2 ** 31)


@given(st.floats(min_value=2.0 ** -31, max_value=2.0 ** 20, allow_nan=False, allow_infinity=False))
def test_quantize_multiplier_rounds_the_significand_half_away(real):
    multiplier, shift = qm.quantize_multiplier(real)
    mantissa, exponent = math.frexp(real)
    expected = round_half_away(Fraction(mantissa) * 2 ** 31)
    if expected == 2 ** 31:
        assert (multiplier, shift) == (2 ** 30, exponent + 1)
    else:
        assert (multiplier, shift) == (expected, exponent)


def test_quantize_multiplier_edge_cases():
    assert qm.quantize_multiplier(0.0) == (0, 0)
    assert qm.quantize_multiplier(1.0) == (2 ** 30, 1)
    assert qm.quantize_multiplier(0.5) == (2 ** 30, 0)
    assert qm.quantize_multiplier(0.75) == (1610612736, 0)
    # Just below a power of two: the significand rounds up to 2^31 and moves into the shift.
    assert qm.quantize_multiplier(math.nextafter(1.0, 0.0)) == (2 ** 30, 1)
    # Below 2^-32 every bit would be shifted out.
    assert qm.quantize_multiplier(2.0 ** -40) == (0, 0)
    with pytest.raises(ValueError):
        qm.quantize_multiplier(-0.5)
    with pytest.raises(ValueError):
        qm.quantize_multiplier_greater_than_one(0.25)


# ---- compile-time parameters ---------------------------------------------------------------------

def test_add_params_follow_the_tflite_scheme():
    p = qm.add_params(0.5, 0.25, 1.0)
    assert p.left_shift == 20
    assert (p.input1_multiplier, p.input1_shift) == (2 ** 30, 0)  # 0.5 / 1.0
    assert (p.input2_multiplier, p.input2_shift) == (2 ** 30, -1)  # 0.25 / 1.0
    assert (p.output_multiplier, p.output_shift) == (2 ** 30, -19)  # 1.0 / (2^20 * 1.0)


@given(st.floats(1e-4, 1.0), st.floats(1e-4, 1.0), st.floats(1e-4, 1.0))
@settings(max_examples=50)
def test_add_params_reconstruct_their_reals(s1, s2, s_out):
    s1, s2, s_out = (float(np.float32(v)) for v in (s1, s2, s_out))
    p = qm.add_params(s1, s2, s_out)
    twice_max = 2 * max(s1, s2)

    def real(m, s):
        return m * 2.0 ** (s - 31)

    assert real(p.input1_multiplier, p.input1_shift) == pytest.approx(s1 / twice_max, rel=2 ** -30)
    assert real(p.input2_multiplier, p.input2_shift) == pytest.approx(s2 / twice_max, rel=2 ** -30)
    assert real(p.output_multiplier, p.output_shift) == pytest.approx(twice_max / (2 ** 20 * s_out), rel=2 ** -30)


def test_softmax_params_known_values():
    # beta * s * 2^26 = 2^-4 * 2^26 = 2^22 = 0.5 * 2^23; radius = floor(31 * 2^26 / 2^23) = 248.
    p = qm.softmax_params(1.0 / 16.0)
    assert (p.input_multiplier, p.input_left_shift, p.diff_min) == (2 ** 30, 23, -248)
    # 0.1 * 2^26 = 6710886.4 = 0.8 * 2^23: multiplier round(0.8 * 2^31), radius floor(248) again.
    p = qm.softmax_params(0.1)
    assert (p.input_multiplier, p.input_left_shift, p.diff_min) == (1717986918, 23, -248)
    # A huge input scale is capped at the largest Q31 value: shift 31, radius floor(31 / 32) = 0.
    p = qm.softmax_params(1000.0)
    assert (p.input_multiplier, p.input_left_shift, p.diff_min) == (2 ** 31 - 1, 31, 0)


@pytest.mark.parametrize("activation, scale, zp, clip, expected", [
    ("none", 0.1, 5, (0, 6), (-128, 127)),
    ("relu", 0.1, 5, (0, 6), (5, 127)),
    ("relu", 0.1, -128, (0, 6), (-128, 127)),
    ("relu6", 6.0 / 255.0, -128, (0, 6), (-128, 127)),
    ("relu6", 0.05, -128, (0, 6), (-128, -8)),  # -128 + 120
    ("relu6", 0.05, 100, (0, 6), (100, 127)),
    ("clip", 0.1, 0, (-1.0, 1.0), (-10, 10)),
    ("clip", 0.1, 0, (-1e9, 1e9), (-128, 127)),
    ("clip", 0.1, 0, (float("-inf"), 0.25), (-128, 3)),  # 2.5 rounds away from zero
    ("clip", 0.1, 0, (-0.25, float("inf")), (-3, 127)),
])
def test_activation_bounds(activation, scale, zp, clip, expected):
    got = qm.activation_bounds(activation, scale, zp, "int8", clip_min=clip[0], clip_max=clip[1])
    assert got == expected


def test_activation_bounds_use_the_dtype_range():
    assert qm.activation_bounds("relu", 0.1, 10, "uint8") == (10, 255)
    with pytest.raises(ValueError):
        qm.activation_bounds("gelu", 0.1, 0)


# ---- gemmlowp exp and reciprocal -----------------------------------------------------------------

def test_fixed_point_constants_are_gemmlowps():
    assert [m for _, m in qm._EXP_BARREL] == [1672461947, 1302514674, 790015084, 290630308, 39332535,
                                              720401, 242]
    assert (qm._EXP_MINUS_ONE_EIGHTH, qm._ONE_THIRD) == (1895147668, 715827883)
    assert (qm._NR_48_OVER_17, qm._NR_NEG_32_OVER_17) == (1515870810, -1010580540)


@given(st.integers(qm.INT32_MIN, 0))
@example(0)
@example(-(2 ** 24))
@example(qm.INT32_MIN)
def test_exp_on_negative_values_approximates_exp(a):
    got = int(qm.exp_on_negative_values(a, 5)) / 2 ** 31
    assert 0 <= got <= 1
    # gemmlowp's 4th-order polynomial is accurate to about 2.3e-7 (worst at the interval ends).
    assert got == pytest.approx(math.exp(a / 2 ** 26), abs=3e-7)


def test_exp_on_negative_values_is_exact_at_zero_and_vectorised():
    got = qm.exp_on_negative_values(np.array([0, -(2 ** 26), -(2 ** 27)]), 5)
    assert got[0] == qm.INT32_MAX
    assert got.tolist()[1:] == [int(qm.exp_on_negative_values(-(2 ** 26), 5)),
                                int(qm.exp_on_negative_values(-(2 ** 27), 5))]
    assert got[1] == pytest.approx(math.exp(-1) * 2 ** 31, rel=3e-7)
    assert got[2] == pytest.approx(math.exp(-2) * 2 ** 31, rel=3e-7)


@given(st.integers(0, qm.INT32_MAX))
@example(0)
@example(qm.INT32_MAX)
def test_one_over_one_plus_x(a):
    got = int(qm.one_over_one_plus_x_for_x_in_0_1(a)) / 2 ** 31
    assert got == pytest.approx(1.0 / (1.0 + a / 2 ** 31), abs=4e-9)


# ---- float <-> int -------------------------------------------------------------------------------

def _onnx_quantize(x: np.ndarray, scale, zp, dtype, axis=None) -> np.ndarray:
    elem = TensorProto.INT8 if dtype == "int8" else TensorProto.UINT8
    per_axis = axis is not None
    s = np.asarray(scale, np.float32) if per_axis else np.float32(scale)
    z = np.asarray(zp, dtype) if per_axis else np.array(zp, dtype)
    node = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["y"], **({"axis": axis} if per_axis else {}))
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x.shape)],
                              [helper.make_tensor_value_info("y", elem, x.shape)],
                              [onnx.numpy_helper.from_array(np.asarray(s), "s"),
                               onnx.numpy_helper.from_array(np.asarray(z), "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    return ReferenceEvaluator(model).run(None, {"x": x})[0]


@given(st.lists(st.floats(-300, 300, width=32), min_size=1, max_size=16),
       st.floats(2.0 ** -10, 10, width=32), st.integers(-128, 127))
@settings(max_examples=60, deadline=None)
def test_quantize_matches_onnx_quantize_linear(values, scale, zp):
    x = np.array(values, np.float32)
    assert qm.quantize(x, scale, zp, "int8").tolist() == _onnx_quantize(x, scale, zp, "int8").tolist()


def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0], np.float32)
    assert qm.quantize(x, 1.0, 0, "int8").tolist() == [0, 2, 2, 0, -2, 127, -128]
    assert qm.quantize(x, 1.0, 10, "uint8").tolist() == [10, 12, 12, 10, 8, 255, 0]


def test_quantize_and_dequantize_per_axis():
    x = np.array([[1.0, -2.0], [3.0, 4.0]], np.float32)
    q = qm.quantize(x, [0.5, 0.25], [0, 1], "int8", axis=0)
    assert q.tolist() == [[2, -4], [13, 17]]
    assert q.tolist() == _onnx_quantize(x, [0.5, 0.25], [0, 1], "int8", axis=0).tolist()
    back = qm.dequantize(q, [0.5, 0.25], [0, 1], axis=0)
    assert back.dtype == np.float32
    assert back.tolist() == [[1.0, -2.0], [3.0, 4.0]]


def test_dequantize_is_float32_scale_times_offset_value():
    q = np.array([-128, 0, 127], np.int8)
    got = qm.dequantize(q, 0.1, -3)
    want = (np.array([-125, 3, 130], np.float32) * np.float32(0.1)).astype(np.float32)
    assert got.dtype == np.float32 and got.tolist() == want.tolist()
