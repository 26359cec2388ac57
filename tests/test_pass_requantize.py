"""The requantize pass on hand-built integer graphs: exact multipliers/shifts for known scales,
offsets, activation bounds, and what it refuses."""
from __future__ import annotations

import numpy as np
import pytest

from tinyc import passes
from tinyc.errors import UnsupportedError
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import infer_shapes
from tinyc.verify import verify

requantize = passes.get("requantize")
Q = QuantParams.tensor


class G:
    """A minimal graph builder: values by name, one op at a time, shapes from the op table."""

    def __init__(self):
        self.g = Graph("t", {}, [], [], [])

    def input(self, name, shape, dtype="int8", quant=None, layout=""):
        self.g.add_value(Value(name, shape, dtype, layout, quant))
        self.g.inputs.append(name)
        return name

    def const(self, name, data, quant=None, layout=""):
        self.g.add_value(Value(name, data.shape, str(data.dtype), layout, quant, data))
        return name

    def op(self, kind, inputs, dtype="int8", quant=None, name=None, **attrs):
        name = name or f"{kind}{len(self.g.ops)}"
        op = Op(kind, name, list(inputs), [f"{name}_y"], attrs)
        shape = infer_shapes(op, [self.g.values[n] for n in inputs])[0]
        layout = self.g.values[inputs[0]].layout if len(shape) == 4 else ""
        self.g.add_value(Value(f"{name}_y", shape, dtype, layout, quant))
        self.g.ops.append(op)
        return f"{name}_y"

    def done(self, *outputs):
        self.g.outputs = list(outputs)
        verify(self.g)
        return self.g


def conv_graph(activation="none", out_dtype="int8", w_quant=None, y_quant=Q(1.0, 3), **extra):
    b = G()
    x = b.input("x", (1, 2, 4, 4), quant=Q(0.5, -7), layout="NCHW")
    w_quant = w_quant or QuantParams((0.25, 0.375), (0, 0), 0)
    w = b.const("w", np.ones((2, 2, 3, 3), np.int8), w_quant, layout="OIHW")
    bias = b.const("b", np.zeros(2, np.int32), QuantParams((0.125, 0.1875), (0, 0), 0))
    y = b.op("conv2d", [x, w, bias], dtype=out_dtype, quant=y_quant if out_dtype == "int8" else None,
             name="conv", pads=[1, 1, 1, 1], activation=activation, **extra)
    return b.done(y)


def test_conv_per_channel_multipliers_offsets_and_bounds():
    out = requantize(conv_graph())
    verify(out)
    a = out.ops[0].attrs
    # 0.5 * 0.25 / 1 = 0.125 = 0.5 * 2^-2; 0.5 * 0.375 = 0.1875 = 0.75 * 2^-2.
    assert a["multiplier"] == [2 ** 30, 1610612736]
    assert a["shift"] == [-2, -2]
    assert (a["input_offset"], a["output_offset"]) == (7, 3)
    assert (a["act_min"], a["act_max"]) == (-128, 127)


@pytest.mark.parametrize("activation, extra, bounds", [
    ("relu", {}, (3, 127)),
    ("relu6", {}, (3, 9)),  # 3 + round(6 / 1.0)
    ("clip", {"clip_min": -2.0, "clip_max": 2.5}, (1, 6)),  # 3 - 2, 3 + round_half_away(2.5)
])
def test_conv_fused_activation_bounds(activation, extra, bounds):
    a = requantize(conv_graph(activation, **extra)).ops[0].attrs
    assert (a["act_min"], a["act_max"]) == bounds


def test_per_tensor_weight_gives_one_multiplier():
    a = requantize(conv_graph(w_quant=Q(0.25, 0))).ops[0].attrs
    assert (a["multiplier"], a["shift"]) == ([2 ** 30], [-2])


def test_effective_scale_is_computed_in_double_from_float32_scales():
    s_x, s_w, s_y = (float(np.float32(v)) for v in (0.0235, 0.0042, 0.0711))
    g = conv_graph(w_quant=Q(s_w, 0), y_quant=Q(s_y, 0))
    g.values["x"].quant = Q(s_x, -7)
    a = requantize(g).ops[0].attrs
    # s_x * s_w / s_y in double = 0.71075... * 2^-8; TFLite stores round(0.7107 * 2^31) and shift -8
    # (shift is the frexp exponent, here -9 + 1 since frexp's significand is in [0.5, 1)).
    assert (a["multiplier"], a["shift"]) == ([1526326235], [-9])
    # Rounding the product s_x * s_w to float32 first would give 1526326262: the test tells them apart.


def test_int32_accumulator_output_gets_only_the_input_offset():
    out = requantize(conv_graph(out_dtype="int32"))
    verify(out)
    assert out.ops[0].attrs["input_offset"] == 7
    assert "multiplier" not in out.ops[0].attrs and "act_min" not in out.ops[0].attrs


def test_fully_connected_and_depthwise_nhwc():
    b = G()
    x = b.input("x", (1, 4, 4, 3), quant=Q(0.5, 1), layout="NHWC")
    w = b.const("w", np.ones((1, 3, 3, 3), np.int8), QuantParams((0.5, 1.0, 2.0), (0, 0, 0), 3), "IHWO")
    y = b.op("depthwise_conv2d", [x, w], quant=Q(0.25, -1), name="dw", pads=[1, 1, 1, 1],
             activation="relu")
    flat = b.op("reshape", [y], quant=Q(0.25, -1), shape=[1, 48])
    fw = b.const("fw", np.ones((5, 48), np.int8), Q(0.125, 0))
    z = b.op("fully_connected", [flat, fw], quant=Q(1.0 / 64, 0), name="fc")
    out = requantize(b.done(z))
    verify(out)
    dw, _, fc = out.ops
    assert dw.attrs["multiplier"] == [2 ** 30] * 3
    assert dw.attrs["shift"] == [1, 2, 3]  # 1, 2, 4 = 0.5 * 2^(1..3)
    assert (dw.attrs["input_offset"], dw.attrs["output_offset"], dw.attrs["act_min"]) == (-1, -1, -1)
    assert fc.attrs["multiplier"] == [2 ** 30] and fc.attrs["shift"] == [2]  # 0.25*0.125*64 = 0.5 * 2^2
    assert "multiplier" not in out.ops[1].attrs  # reshape has nothing to lower


def test_add_mul_softmax_rescale_pool_matmul():
    b = G()
    x1 = b.input("x1", (1, 8), quant=Q(0.5, 2))
    x2 = b.input("x2", (1, 8), quant=Q(0.25, -3))
    s = b.op("add", [x1, x2], quant=Q(1.0, 4), name="add", activation="relu")
    m = b.op("mul", [s, x2], quant=Q(0.5, 0), name="mul")
    sm = b.op("softmax", [m], quant=Q(1.0 / 256, -128), name="sm")
    r = b.op("rescale", [sm], dtype="uint8", quant=Q(1.0 / 256, 0), name="rs")
    p_in = b.input("p", (1, 3, 4, 4), quant=Q(0.1, 5), layout="NCHW")
    pool = b.op("avg_pool2d", [p_in], quant=Q(0.1, 5), name="pool", kernel=[2, 2], strides=[2, 2],
                activation="relu6")
    mx = b.op("max_pool2d", [p_in], quant=Q(0.1, 5), name="mpool", kernel=[2, 2])
    a_in = b.input("a", (2, 3), quant=Q(0.5, 9))
    w_in = b.const("mw", np.ones((3, 4), np.int8), Q(0.5, -2))
    mm = b.op("matmul", [a_in, w_in], dtype="int32", name="mm")
    out = requantize(b.done(r, pool, mx, mm))
    verify(out)
    ops = {op.name: op.attrs for op in out.ops}
    assert ops["add"] == {**ops["add"], "input1_offset": -2, "input2_offset": 3, "output_offset": 4,
                          "left_shift": 20, "input1_multiplier": 2 ** 30, "input1_shift": 0,
                          "input2_multiplier": 2 ** 30, "input2_shift": -1,
                          "output_multiplier": 2 ** 30, "output_shift": -19, "act_min": 4, "act_max": 127}
    # 1.0 * 0.25 / 0.5 = 0.5
    assert (ops["mul"]["output_multiplier"], ops["mul"]["output_shift"]) == (2 ** 30, 0)
    assert (ops["mul"]["input1_offset"], ops["mul"]["input2_offset"], ops["mul"]["output_offset"]) == (-4, 3, 0)
    # 0.5 * 2^26 = 0.5 * 2^26: multiplier 2^30, left shift 26, radius floor(31 * 2^26 / 2^26) = 31.
    assert (ops["sm"]["input_multiplier"], ops["sm"]["input_left_shift"], ops["sm"]["diff_min"]) == (2 ** 30, 26, -31)
    # Same scale, int8 -> uint8: multiplier 1.0 = 0.5 * 2^1, offsets carry the zero points.
    assert ops["rs"] == {"multiplier": [2 ** 30], "shift": [1], "input_offset": 128, "output_offset": 0}
    assert (ops["pool"]["act_min"], ops["pool"]["act_max"]) == (5, 65)  # 5 + 60
    assert (ops["mpool"]["act_min"], ops["mpool"]["act_max"]) == (-128, 127)
    assert (ops["mm"]["input_offset"], ops["mm"]["weight_offset"]) == (-9, 2)


def test_float_ops_and_the_input_graph_are_untouched():
    b = G()
    x = b.input("x", (1, 4), dtype="float32")
    w = b.const("w", np.ones((3, 4), np.float32))
    y = b.op("fully_connected", [x, w], dtype="float32", name="fc")
    z = b.op("softmax", [y], dtype="float32", name="sm")
    g = b.done(z)
    out = requantize(g)
    assert [op.attrs for op in out.ops] == [{}, {}]
    conv = conv_graph()
    requantize(conv)
    assert conv.ops[0].attrs == {"pads": [1, 1, 1, 1], "activation": "none"}


def test_refuses_asymmetric_weights():
    with pytest.raises(UnsupportedError, match="'conv'.*zero point"):
        requantize(conv_graph(w_quant=Q(0.25, 3)))


def test_refuses_softmax_output_not_1_over_256():
    b = G()
    x = b.input("x", (1, 8), quant=Q(0.5, 2))
    y = b.op("softmax", [x], quant=Q(1.0 / 128, -128), name="probs")
    with pytest.raises(UnsupportedError, match="'probs'.*1/256"):
        requantize(b.done(y))


def test_refuses_per_channel_activations():
    g = conv_graph()
    g.values["x"].quant = QuantParams((0.5, 0.25), (0, 0), 1)
    with pytest.raises(UnsupportedError, match="'x' must be quantised per tensor"):
        requantize(g)
