"""The reference interpreter: float ops against onnxruntime on single-op ONNX models, integer ops
against slow direct implementations of the int8 formulas, both layouts, and its error messages.
(Bit-exactness against TFLite on real models is in test_bitexact_models.py.)"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from tinyc import passes
from tinyc import quant_math as qm
from tinyc.errors import TinycError
from tinyc.interpreter import run, run_trace
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import infer_shapes
from tinyc.verify import verify

Q = QuantParams.tensor
requantize = passes.get("requantize")
RNG = np.random.default_rng(1234)


class G:
    """A minimal IR builder (shapes from the op table)."""

    def __init__(self):
        self.g = Graph("t", {}, [], [], [])

    def input(self, name, shape, dtype="float32", quant=None, layout=None):
        layout = ("NCHW" if len(shape) == 4 else "") if layout is None else layout
        self.g.add_value(Value(name, tuple(shape), dtype, layout, quant))
        self.g.inputs.append(name)
        return name

    def const(self, name, data, quant=None, layout=""):
        data = np.ascontiguousarray(data)
        self.g.add_value(Value(name, data.shape, str(data.dtype), layout, quant, data))
        return name

    def op(self, kind, inputs, dtype="float32", quant=None, name=None, **attrs):
        name = name or f"{kind}{len(self.g.ops)}"
        op = Op(kind, name, list(inputs), [f"{name}_y"], attrs)
        shape = infer_shapes(op, [self.g.values[n] for n in inputs if n])[0]
        layout = self.g.values[inputs[0]].layout if len(shape) == 4 else ""
        self.g.add_value(Value(f"{name}_y", shape, dtype, layout, quant))
        self.g.ops.append(op)
        return f"{name}_y"

    def done(self, *outputs):
        self.g.outputs = list(outputs)
        verify(self.g)
        return self.g


def onnx_run(op_type, feeds: dict, inits: dict, out_dtype=TensorProto.FLOAT, domain="", **attrs):
    """Run one ONNX node in onnxruntime: feeds are graph inputs, inits initializers (by position)."""
    names = list(feeds) + list(inits)
    node = helper.make_node(op_type, [n if n else "" for n in names], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "single",
        [helper.make_tensor_value_info(k, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
         for k, v in feeds.items()],
        [helper.make_tensor_value_info("y", out_dtype, None)],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def rand(*shape):
    return RNG.standard_normal(shape).astype(np.float32)


def to_nhwc_graph(graph: Graph) -> Graph:
    """The same computation with NHWC activations and OHWI / IHWO weights (conv graphs only)."""
    g = graph.copy()
    for v in g.values.values():
        if v.layout == "NCHW":
            v.layout = "NHWC"
            v.shape = (v.shape[0], v.shape[2], v.shape[3], v.shape[1])
    for op in g.ops:
        if op.kind in ("conv2d", "depthwise_conv2d"):
            w = g.values[op.inputs[1]]
            depthwise = op.kind == "depthwise_conv2d"
            perm = (1, 2, 3, 0) if depthwise else (0, 2, 3, 1)
            w.data = np.ascontiguousarray(w.data.transpose(perm))
            w.shape, w.layout = w.data.shape, "IHWO" if depthwise else "OHWI"
            if w.quant is not None and not w.quant.per_tensor:
                w.quant = QuantParams(w.quant.scale, w.quant.zero_point, 3 if depthwise else 0)
    verify(g)
    return g


def nchw(a):
    return a.transpose(0, 3, 1, 2)


# ---- float ops vs onnxruntime --------------------------------------------------------------------

CONV_CASES = [
    dict(cin=3, cout=4, k=(3, 3), strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=1),
    dict(cin=4, cout=6, k=(3, 2), strides=[2, 1], pads=[0, 1, 2, 0], dilations=[1, 1], group=2),
    dict(cin=2, cout=5, k=(3, 3), strides=[1, 2], pads=[2, 2, 2, 2], dilations=[2, 2], group=1),
    dict(cin=4, cout=8, k=(3, 3), strides=[2, 2], pads=[1, 1, 1, 1], dilations=[1, 1], group=4),
    dict(cin=3, cout=3, k=(1, 5), strides=[1, 1], pads=[0, 2, 0, 2], dilations=[1, 1], group=3),
]


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("bias", [True, False])
def test_float_conv_matches_onnxruntime_in_both_layouts(case, bias):
    x = rand(1, case["cin"], 7, 8)
    w = rand(case["cout"], case["cin"] // case["group"], *case["k"])
    b = rand(case["cout"])
    inits = {"w": w, **({"b": b} if bias else {})}
    want = onnx_run("Conv", {"x": x}, inits, strides=case["strides"], pads=case["pads"],
                    dilations=case["dilations"], group=case["group"], kernel_shape=list(case["k"]))
    g = G()
    xi = g.input("x", x.shape)
    ins = [xi, g.const("w", w, layout="OIHW")] + ([g.const("b", b)] if bias else [])
    depthwise = case["group"] == case["cin"] and case["group"] > 1
    attrs = dict(strides=case["strides"], pads=case["pads"], dilations=case["dilations"])
    if depthwise:
        y = g.op("depthwise_conv2d", ins, depth_multiplier=case["cout"] // case["cin"], **attrs)
    else:
        y = g.op("conv2d", ins, group=case["group"], **attrs)
    graph = g.done(y)
    got = run(graph, {"x": x})[y]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    got_nhwc = run(to_nhwc_graph(graph), {"x": x.transpose(0, 2, 3, 1)})[y]
    np.testing.assert_array_equal(nchw(got_nhwc), got)


@pytest.mark.parametrize("activation, onnx_op, bounds", [
    ("relu", "Relu", None), ("relu6", "Clip", (0.0, 6.0)), ("clip", "Clip", (-0.5, 0.75))])
def test_float_fused_activation(activation, onnx_op, bounds):
    x = rand(1, 2, 5, 5) * 4
    w = rand(3, 2, 3, 3)
    conv = onnx_run("Conv", {"x": x}, {"w": w}, kernel_shape=[3, 3])
    clip_inits = {} if bounds is None else {"lo": np.float32(bounds[0]), "hi": np.float32(bounds[1])}
    want = onnx_run(onnx_op, {"c": conv}, clip_inits)
    g = G()
    extra = {} if activation != "clip" else {"clip_min": bounds[0], "clip_max": bounds[1]}
    y = g.op("conv2d", [g.input("x", x.shape), g.const("w", w, layout="OIHW")], activation=activation,
             **extra)
    np.testing.assert_allclose(run(g.done(y), {"x": x})[y], want, rtol=1e-5, atol=1e-5)


def test_float_gemm_fully_connected_and_matmul():
    a, b, c = rand(3, 5), rand(4, 5), rand(4)
    want = onnx_run("Gemm", {"a": a}, {"b": b, "c": c}, alpha=0.5, beta=2.0, transB=1)
    g = G()
    y = g.op("gemm", [g.input("a", a.shape), g.const("b", b), g.const("c", c)], alpha=0.5, beta=2.0,
             trans_b=True)
    np.testing.assert_allclose(run(g.done(y), {"a": a})[y], want, rtol=1e-5, atol=1e-5)

    at = rand(5, 3)
    want = onnx_run("Gemm", {"a": at}, {"b": b.T.copy()}, transA=1)
    g = G()
    y = g.op("gemm", [g.input("a", at.shape), g.const("b", b.T.copy())], trans_a=True)
    np.testing.assert_allclose(run(g.done(y), {"a": at})[y], want, rtol=1e-5, atol=1e-5)

    want = onnx_run("Gemm", {"a": a}, {"b": b, "c": c}, transB=1)
    g = G()
    y = g.op("fully_connected", [g.input("a", a.shape), g.const("b", b), g.const("c", c)])
    np.testing.assert_allclose(run(g.done(y), {"a": a})[y], want, rtol=1e-5, atol=1e-5)

    m1, m2 = rand(2, 3, 4, 5), rand(3, 5, 2)
    want = onnx_run("MatMul", {"m1": m1}, {"m2": m2})
    g = G()
    y = g.op("matmul", [g.input("m1", m1.shape, layout=""), g.const("m2", m2)])
    np.testing.assert_allclose(run(g.done(y), {"m1": m1})[y], want, rtol=1e-5, atol=1e-5)


def test_float_batch_norm_in_both_layouts():
    x = rand(1, 3, 4, 4)
    scale, bias, mean = rand(3), rand(3), rand(3)
    var = np.abs(rand(3)) + 0.1
    want = onnx_run("BatchNormalization", {"x": x},
                    {"s": scale, "b": bias, "m": mean, "v": var}, epsilon=1e-3)
    for layout, feed, back in (("NCHW", x, lambda a: a), ("NHWC", x.transpose(0, 2, 3, 1), nchw)):
        g = G()
        xi = g.input("x", feed.shape, layout=layout)
        y = g.op("batch_norm", [xi, g.const("s", scale), g.const("b", bias), g.const("m", mean),
                                g.const("v", var)], epsilon=1e-3)
        np.testing.assert_allclose(back(run(g.done(y), {"x": feed})[y]), want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, onnx_op, attrs, onnx_attrs", [
    ("relu", "Relu", {}, {}),
    ("leaky_relu", "LeakyRelu", {"alpha": 0.2}, {"alpha": 0.2}),
    ("sigmoid", "Sigmoid", {}, {}),
    ("tanh", "Tanh", {}, {}),
    ("hard_swish", "HardSwish", {}, {}),
    ("softmax", "Softmax", {"axis": 1}, {"axis": 1}),
    ("softmax", "Softmax", {"axis": -1}, {"axis": -1}),
    ("identity", "Identity", {}, {}),
    ("transpose", "Transpose", {"perm": [0, 2, 1, 3]}, {"perm": [0, 2, 1, 3]}),
])
def test_float_unary_ops(kind, onnx_op, attrs, onnx_attrs):
    x = rand(1, 3, 4, 5) * 5
    x[0, 0, 0, :3] = [0.0, 80.0, -80.0]  # exp overflow territory for sigmoid
    want = onnx_run(onnx_op, {"x": x}, {}, **onnx_attrs)
    g = G()
    y = g.op(kind, [g.input("x", x.shape, layout="")], **attrs)
    np.testing.assert_allclose(run(g.done(y), {"x": x})[y], want, rtol=1e-5, atol=1e-6)


def test_float_clip_reshape_pad_concat():
    x = rand(1, 2, 3, 4) * 3
    g = G()
    xi = g.input("x", x.shape)
    c = g.op("clip", [xi], min=-1.0, max=0.5)
    r = g.op("reshape", [c], shape=[2, 12])
    p = g.op("pad", [xi], pads=[0, 0, 1, 0, 0, 1, 0, 2], value=1.5)
    k = g.op("concat", [xi, xi], axis=-1)
    out = run(g.done(r, p, k), {"x": x})
    want_clip = onnx_run("Clip", {"x": x}, {"lo": np.float32(-1.0), "hi": np.float32(0.5)})
    np.testing.assert_array_equal(out[r], want_clip.reshape(2, 12))
    want_pad = onnx_run("Pad", {"x": x}, {"p": np.array([0, 0, 1, 0, 0, 1, 0, 2], np.int64),
                                          "v": np.float32(1.5)})
    np.testing.assert_array_equal(out[p], want_pad)
    np.testing.assert_array_equal(out[k], onnx_run("Concat", {"x": x, "x2": x}, {}, axis=-1))


def test_float_add_mul_broadcast():
    a, b = rand(1, 3, 4, 4), rand(3, 1, 1)
    for kind, onnx_op in (("add", "Add"), ("mul", "Mul")):
        g = G()
        y = g.op(kind, [g.input("a", a.shape), g.const("b", b)], activation="relu")
        want = np.maximum(onnx_run(onnx_op, {"a": a}, {"b": b}), 0)
        np.testing.assert_allclose(run(g.done(y), {"a": a})[y], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pads, include", [([0, 0, 0, 0], False), ([1, 1, 1, 1], False),
                                           ([1, 0, 2, 1], True)])
def test_float_pools_match_onnxruntime_in_both_layouts(pads, include):
    x = rand(1, 3, 7, 6)
    kernel, strides = [3, 2], [2, 2]
    want_max = onnx_run("MaxPool", {"x": x}, {}, kernel_shape=kernel, strides=strides, pads=pads)
    want_avg = onnx_run("AveragePool", {"x": x}, {}, kernel_shape=kernel, strides=strides, pads=pads,
                        count_include_pad=int(include))
    want_gap = onnx_run("GlobalAveragePool", {"x": x}, {})
    g = G()
    xi = g.input("x", x.shape)
    m = g.op("max_pool2d", [xi], kernel=kernel, strides=strides, pads=pads)
    a = g.op("avg_pool2d", [xi], kernel=kernel, strides=strides, pads=pads, count_include_pad=include)
    gp = g.op("global_avg_pool", [xi])
    graph = g.done(m, a, gp)
    for layout_graph, feed, back in ((graph, x, lambda v: v),
                                     (to_nhwc_graph(graph), x.transpose(0, 2, 3, 1), nchw)):
        out = run(layout_graph, {"x": feed})
        np.testing.assert_array_equal(back(out[m]), want_max)
        np.testing.assert_allclose(back(out[a]), want_avg, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(back(out[gp]), want_gap, rtol=1e-6, atol=1e-6)


def test_quantize_dequantize_match_onnxruntime():
    x = rand(1, 3, 4, 4) * 10
    x.flat[:4] = [0.25, 0.75, -0.25, -0.75]  # exact halves at scale 0.5
    want_q = onnx_run("QuantizeLinear", {"x": x}, {"s": np.float32(0.5), "z": np.int8(-3)},
                      out_dtype=TensorProto.INT8)
    want_u = onnx_run("QuantizeLinear", {"x": x}, {"s": np.float32(0.5), "z": np.uint8(128)},
                      out_dtype=TensorProto.UINT8)
    g = G()
    xi = g.input("x", x.shape)
    q = g.op("quantize", [xi], dtype="int8", quant=Q(0.5, -3))
    u = g.op("quantize", [xi], dtype="uint8", quant=Q(0.5, 128))
    d = g.op("dequantize", [q])
    out = run(g.done(q, u, d), {"x": x})
    np.testing.assert_array_equal(out[q], want_q)
    np.testing.assert_array_equal(out[u], want_u)
    want_d = onnx_run("DequantizeLinear", {"q": want_q}, {"s": np.float32(0.5), "z": np.int8(-3)})
    np.testing.assert_array_equal(out[d], want_d)


# ---- integer ops vs direct formulas --------------------------------------------------------------

def slow_int_conv(x, w_oihw, bias, zp_x, strides, pads, dilations, group):
    """Direct loops: acc[o, i, j] = bias[o] + sum (x - zp_x) * w over the window; padding is 0."""
    _, cin, h, wd = x.shape
    cout, cin_g, kh, kw = w_oihw.shape
    xo = np.zeros((cin, h + pads[0] + pads[2], wd + pads[1] + pads[3]), np.int64)
    xo[:, pads[0]:pads[0] + h, pads[1]:pads[1] + wd] = x[0].astype(np.int64) - zp_x
    oh = (xo.shape[1] - (kh - 1) * dilations[0] - 1) // strides[0] + 1
    ow = (xo.shape[2] - (kw - 1) * dilations[1] - 1) // strides[1] + 1
    acc = np.zeros((cout, oh, ow), np.int64)
    per_group = cout // group
    for o in range(cout):
        g0 = (o // per_group) * cin_g
        for i in range(oh):
            for j in range(ow):
                total = int(bias[o]) if bias is not None else 0
                for c in range(cin_g):
                    for a in range(kh):
                        for b in range(kw):
                            total += int(xo[g0 + c, i * strides[0] + a * dilations[0],
                                            j * strides[1] + b * dilations[1]]) * int(w_oihw[o, c, a, b])
                acc[o, i, j] = total
    return acc[None]


def int_conv_graph(case, depthwise, per_channel=True, activation="none", out_dtype="int8"):
    cin, cout = case["cin"], case["cout"]
    x_q, y_q = Q(0.05, -17), Q(0.11, 9)
    w = RNG.integers(-127, 128, size=(cout, cin // case["group"], *case["k"]), dtype=np.int8)
    w_scales = tuple(float(np.float32(s)) for s in RNG.uniform(0.002, 0.02, cout)) if per_channel \
        else (0.01,)
    w_q = QuantParams(w_scales, (0,) * len(w_scales), 0 if per_channel else None)
    bias = RNG.integers(-3000, 3000, size=cout, dtype=np.int32)
    g = G()
    xi = g.input("x", (1, cin, 9, 8), dtype="int8", quant=x_q)
    ins = [xi, g.const("w", w, w_q, "OIHW"),
           g.const("b", bias, QuantParams(tuple(0.05 * s for s in w_scales), (0,) * len(w_scales),
                                          0 if per_channel else None))]
    attrs = dict(strides=case["strides"], pads=case["pads"], dilations=case["dilations"],
                 activation=activation)
    y_quant = y_q if out_dtype == "int8" else None
    if depthwise:
        y = g.op("depthwise_conv2d", ins, dtype=out_dtype, quant=y_quant,
                 depth_multiplier=cout // cin, **attrs)
    else:
        y = g.op("conv2d", ins, dtype=out_dtype, quant=y_quant, group=case["group"], **attrs)
    return g.done(y), y, w, bias


@pytest.mark.parametrize("case", CONV_CASES)
@pytest.mark.parametrize("per_channel", [True, False])
def test_int_conv_matches_direct_loops_in_both_layouts(case, per_channel):
    depthwise = case["group"] == case["cin"] and case["group"] > 1
    graph, y, w, bias = int_conv_graph(case, depthwise, per_channel, activation="relu")
    lowered = requantize(graph)
    x = RNG.integers(-128, 128, size=graph.values["x"].shape, dtype=np.int8)
    got = run(lowered, {"x": x})[y]
    acc = slow_int_conv(x, w, bias, -17, case["strides"], case["pads"], case["dilations"], case["group"])
    a = lowered.ops[0].attrs
    mult = np.array(a["multiplier"]).reshape(1, -1, 1, 1)
    shift = np.array(a["shift"]).reshape(1, -1, 1, 1)
    want = np.clip(qm.multiply_by_quantized_multiplier(acc, mult, shift) + 9, a["act_min"], 127)
    assert a["act_min"] == 9
    np.testing.assert_array_equal(got, want)
    got_nhwc = run(to_nhwc_graph(lowered), {"x": x.transpose(0, 2, 3, 1)})[y]
    np.testing.assert_array_equal(nchw(got_nhwc), got)


def test_int_conv_with_int32_output_is_the_raw_accumulator():
    case = CONV_CASES[1]
    graph, y, w, bias = int_conv_graph(case, False, out_dtype="int32")
    x = RNG.integers(-128, 128, size=graph.values["x"].shape, dtype=np.int8)
    got = run(requantize(graph), {"x": x})[y]
    assert got.dtype == np.int32
    want = slow_int_conv(x, w, bias, -17, case["strides"], case["pads"], case["dilations"], case["group"])
    np.testing.assert_array_equal(got, want)


def test_int_fully_connected_and_matmul():
    x = RNG.integers(-128, 128, size=(1, 20), dtype=np.int8)
    w = RNG.integers(-127, 128, size=(7, 20), dtype=np.int8)
    bias = RNG.integers(-500, 500, size=7, dtype=np.int32)
    g = G()
    xi = g.input("x", x.shape, dtype="int8", quant=Q(0.3, 5))
    y = g.op("fully_connected", [xi, g.const("w", w, Q(0.01, 0)), g.const("b", bias, Q(0.003, 0))],
             dtype="int8", quant=Q(0.2, -4), activation="relu6")
    a_in = g.input("a", (2, 3, 20), dtype="int8", quant=Q(0.5, 3), layout="")
    mm = g.op("matmul", [a_in, g.const("m", w.T.copy(), Q(0.5, -2))], dtype="int32")
    lowered = requantize(g.done(y, mm))
    a = RNG.integers(-128, 128, size=(2, 3, 20), dtype=np.int8)
    out = run(lowered, {"x": x, "a": a})
    attrs = lowered.ops[0].attrs
    acc = (x.astype(np.int64) - 5) @ w.T.astype(np.int64) + bias
    want = np.clip(qm.multiply_by_quantized_multiplier(acc, attrs["multiplier"][0], attrs["shift"][0]) - 4,
                   attrs["act_min"], attrs["act_max"])
    assert (attrs["act_min"], attrs["act_max"]) == (-4, 26)  # -4 + round(6 / 0.2)
    np.testing.assert_array_equal(out[y], want)
    want_mm = (a.astype(np.int64) - 3) @ (w.T.astype(np.int64) + 2)
    assert out[mm].dtype == np.int32
    np.testing.assert_array_equal(out[mm], want_mm)


def test_int_avg_pool_rounds_half_away_from_zero_over_valid_elements():
    x = np.array([[[[1, 2], [3, 4]]]], np.int8)  # [1, 1, 2, 2]
    g = G()
    xi = g.input("x", x.shape, dtype="int8", quant=Q(0.1, 0))
    full = g.op("avg_pool2d", [xi], dtype="int8", quant=Q(0.1, 0), kernel=[2, 2])
    padded = g.op("avg_pool2d", [xi], dtype="int8", quant=Q(0.1, 0), kernel=[2, 2], pads=[1, 1, 0, 0])
    neg = g.input("n", x.shape, dtype="int8", quant=Q(0.1, 0))
    full_neg = g.op("avg_pool2d", [neg], dtype="int8", quant=Q(0.1, 0), kernel=[1, 2], strides=[1, 2])
    out = run(requantize(g.done(full, padded, full_neg)), {"x": x, "n": -x})
    assert out[full].tolist() == [[[[3]]]]  # 10 / 4 = 2.5 -> 3
    # Windows at the padded corner average only real elements: 1, (1+2)/2=1.5->2, (1+3)/2=2, 10/4->3.
    assert out[padded].tolist() == [[[[1, 2], [2, 3]]]]
    assert out[full_neg].tolist() == [[[[-2], [-4]]]]  # -1.5 -> -2, -3.5 -> -4


def test_int_avg_pool_count_include_pad_counts_zero_point_padding():
    x = np.full((1, 1, 2, 2), 10, np.int8)
    g = G()
    xi = g.input("x", x.shape, dtype="int8", quant=Q(0.1, 4))
    y = g.op("avg_pool2d", [xi], dtype="int8", quant=Q(0.1, 4), kernel=[2, 2], pads=[1, 1, 0, 0],
             count_include_pad=True)
    out = run(requantize(g.done(y)), {"x": x})[y]
    # Corner window: one real 10 and three padded zero points (4): (10 + 12) / 4 = 5.5 -> 6.
    assert out.tolist() == [[[[6, 7], [7, 10]]]]


def test_int_max_pool_padding_never_wins_and_clamps():
    x = np.full((1, 1, 3, 3), -128, np.int8)
    x[0, 0, 1, 1] = -100
    g = G()
    xi = g.input("x", x.shape, dtype="int8", quant=Q(0.1, -120))
    y = g.op("max_pool2d", [xi], dtype="int8", quant=Q(0.1, -120), kernel=[2, 2], pads=[1, 1, 1, 1],
             strides=[2, 2])
    r = g.op("max_pool2d", [xi], dtype="int8", quant=Q(0.1, -120), kernel=[2, 2], activation="relu")
    out = run(requantize(g.done(y, r)), {"x": x})
    assert out[y].tolist() == [[[[-128, -128], [-128, -100]]]]
    assert out[r].tolist() == [[[[-100, -100], [-100, -100]]]]


def test_int_add_and_mul_follow_the_formulas_with_broadcast():
    a = RNG.integers(-128, 128, size=(1, 3, 4, 4), dtype=np.int8)
    b = RNG.integers(-128, 128, size=(1, 3, 1, 1), dtype=np.int8)
    s1, s2, so = 0.04, 0.07, 0.09
    g = G()
    ai = g.input("a", a.shape, dtype="int8", quant=Q(s1, 3))
    bi = g.input("b", b.shape, dtype="int8", quant=Q(s2, -6))
    add = g.op("add", [ai, bi], dtype="int8", quant=Q(so, -2), activation="relu")
    mul = g.op("mul", [ai, bi], dtype="int8", quant=Q(so, 1))
    lowered = requantize(g.done(add, mul))
    out = run(lowered, {"a": a, "b": b})
    p = qm.add_params(s1, s2, so)
    x1 = qm.multiply_by_quantized_multiplier((a.astype(np.int64) - 3) << 20, p.input1_multiplier, p.input1_shift)
    x2 = qm.multiply_by_quantized_multiplier((b.astype(np.int64) + 6) << 20, p.input2_multiplier, p.input2_shift)
    want = np.clip(qm.multiply_by_quantized_multiplier(x1 + x2, p.output_multiplier, p.output_shift) - 2, -2, 127)
    np.testing.assert_array_equal(out[add], want)
    # And the result is the real sum to within one step of the output scale.
    real = np.maximum(s1 * (a.astype(float) - 3) + s2 * (b.astype(float) + 6), 0)
    assert np.all(np.abs(so * (out[add].astype(float) + 2) - np.clip(real, None, so * 129)) <= so * 1.01)
    m, s = qm.quantize_multiplier(s1 * s2 / so)
    want_mul = np.clip(qm.multiply_by_quantized_multiplier((a.astype(np.int64) - 3) * (b.astype(np.int64) + 6), m, s) + 1,
                       -128, 127)
    np.testing.assert_array_equal(out[mul], want_mul)


def test_int_softmax_is_close_to_the_real_softmax_and_drops_far_values():
    x = RNG.integers(-128, 128, size=(3, 10), dtype=np.int8)
    x[0, :] = [100, -128, 99, 0, 0, 0, 0, 0, 0, 0]
    s_in = 0.25
    g = G()
    xi = g.input("x", x.shape, dtype="int8", quant=Q(s_in, 0))
    y = g.op("softmax", [xi], dtype="int8", quant=Q(1 / 256, -128))
    lowered = requantize(g.done(y))
    got = run(lowered, {"x": x})[y]
    xf = x.astype(np.float64)
    z = np.exp(s_in * (xf - xf.max(axis=1, keepdims=True)))
    probs = z / z.sum(axis=1, keepdims=True)
    assert np.all(np.abs(got.astype(float) + 128 - probs * 256) <= 1.0)
    # s = 0.25: 0.25 * 2^26 = 0.5 * 2^25, so differences below -floor(31 * 2^26 / 2^25) are skipped.
    assert lowered.ops[0].attrs["diff_min"] == -62 and got[0, 1] == -128


def test_int_softmax_along_another_axis():
    x = RNG.integers(-128, 128, size=(1, 4, 3), dtype=np.int8)
    g = G()
    xi = g.input("x", x.shape, dtype="int8", quant=Q(0.1, 0))
    y1 = g.op("softmax", [xi], dtype="int8", quant=Q(1 / 256, -128), axis=1)
    y2 = g.op("softmax", [g.op("transpose", [xi], dtype="int8", quant=Q(0.1, 0), perm=[0, 2, 1])],
              dtype="int8", quant=Q(1 / 256, -128), axis=-1)
    out = run(requantize(g.done(y1, y2)), {"x": x})
    np.testing.assert_array_equal(out[y1], out[y2].transpose(0, 2, 1))


def test_lut_rescale_and_movement_ops():
    x = np.arange(-128, 128, dtype=np.int8).reshape(1, 1, 16, 16)
    table = [min(127, max(-128, 2 * v)) for v in range(-128, 128)]
    g = G()
    xi = g.input("x", x.shape, dtype="int8", quant=Q(0.5, -128))
    lut = g.op("lut", [xi], dtype="int8", quant=Q(0.5, -128), table=table)
    to_u8 = g.op("rescale", [xi], dtype="uint8", quant=Q(0.5, 0))
    halved = g.op("rescale", [xi], dtype="int8", quant=Q(1.0, 0))
    pad = g.op("pad", [xi], dtype="int8", quant=Q(0.5, -128), pads=[0, 0, 1, 0, 0, 0, 0, 1], value=-128.0)
    cat = g.op("concat", [xi, xi], dtype="int8", quant=Q(0.5, -128), axis=1)
    tr = g.op("transpose", [xi], dtype="int8", quant=Q(0.5, -128), perm=[0, 1, 3, 2])
    rs = g.op("reshape", [xi], dtype="int8", quant=Q(0.5, -128), shape=[256])
    out = run(requantize(g.done(lut, to_u8, halved, pad, cat, tr, rs)), {"x": x})
    assert out[lut].ravel().tolist() == table
    assert out[to_u8].dtype == np.uint8 and out[to_u8].ravel().tolist() == list(range(256))
    # (q + 128) * 0.5 in steps of 1.0, rounded half away from zero.
    want_half = [min(127, int(qm.rounding_divide_by_pot(v + 128, 1))) for v in range(-128, 128)]
    assert out[halved].ravel().tolist() == want_half
    assert out[pad].shape == (1, 1, 17, 17) and np.all(out[pad][0, 0, 0] == -128)
    np.testing.assert_array_equal(out[pad][:, :, 1:, :16], x)
    np.testing.assert_array_equal(out[cat], np.concatenate([x, x], axis=1))
    np.testing.assert_array_equal(out[tr], x.transpose(0, 1, 3, 2))
    np.testing.assert_array_equal(out[rs], x.ravel())


# ---- interface and errors ------------------------------------------------------------------------

def _small_int_graph():
    g = G()
    xi = g.input("x", (1, 4), dtype="int8", quant=Q(0.5, 0))
    y = g.op("fully_connected", [xi, g.const("w", np.ones((2, 4), np.int8), Q(0.5, 0))], dtype="int8",
             quant=Q(0.25, 0), name="dense")
    return g.done(y), y


def test_run_trace_returns_every_value():
    graph, y = _small_int_graph()
    x = np.array([[1, 2, 3, 4]], np.int8)
    lowered = requantize(graph)
    trace = run_trace(lowered, {"x": x})
    assert set(trace) == set(graph.values)
    assert trace["w"] is lowered.values["w"].data
    assert trace[y].tolist() == [[10, 10]]  # (1+2+3+4) * 0.5 * 0.5 / 0.25
    outputs = run(lowered, {"x": x})
    assert list(outputs) == [y] and outputs[y].tolist() == [[10, 10]]


def test_integer_op_without_requantize_attributes_is_a_clear_error():
    graph, _ = _small_int_graph()
    with pytest.raises(TinycError, match="'dense'.*run the requantize pass"):
        run(graph, {"x": np.zeros((1, 4), np.int8)})


@pytest.mark.parametrize("feeds, message", [
    ({}, "missing"),
    ({"x": np.zeros((1, 4), np.int8), "z": np.zeros(1)}, "unknown"),
    ({"x": np.zeros((1, 4), np.float32)}, "float32"),
    ({"x": np.zeros((4,), np.int8)}, r"\[4\]"),
])
def test_inputs_must_match_the_graph_exactly(feeds, message):
    graph, _ = _small_int_graph()
    with pytest.raises(TinycError, match=message):
        run(requantize(graph), feeds)


# ---- whole float models through the frontend -----------------------------------------------------

MODELS_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "models"
needs_models = pytest.mark.skipif(not MODELS_DIR.is_dir(), reason=f"models not found at {MODELS_DIR}")


def _lowered(path: Path, pipeline) -> Graph:
    from tinyc.frontend import load_model
    graph = load_model(path)
    verify(graph)
    for name in pipeline:
        graph = passes.get(name)(graph)
        verify(graph)
    return graph


@needs_models
@pytest.mark.parametrize("model", ["zoo/mnist-8.onnx", "mlperf_tiny/kws/kws_ref_model_dequant_float.onnx",
                                   "mlperf_tiny/vww/vww_96_float.onnx", "mlperf_tiny/ic/pretrainedResnet.onnx",
                                   "mlperf_tiny/ad/ad01_fp32.onnx"])
def test_float_models_match_onnxruntime_after_the_default_pipeline(model):
    graph = _lowered(MODELS_DIR / model, passes.DEFAULT_PIPELINE)
    session = ort.InferenceSession(str(MODELS_DIR / model), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for _ in range(3):
        feeds = {n: rng.standard_normal(graph.values[n].shape).astype(np.float32) for n in graph.inputs}
        ours = run(graph, feeds)
        for name, want in zip(graph.outputs, session.run(None, feeds)):
            np.testing.assert_allclose(ours[name], want.reshape(ours[name].shape), rtol=1e-4,
                                       atol=1e-5 * float(np.abs(want).max()))


@needs_models
@pytest.mark.parametrize("model", ["kws/kws_ref_model_qdq.onnx", "ad/ad01_int8_qdq.onnx",
                                   "sww/str_ww_ref_model_qdq.onnx"])
def test_qdq_models_in_float_form_match_onnxruntime_reference_ops(model):
    """Before qdq-to-integer a QDQ model is float ops between quantize/dequantize: with graph
    optimisations off, onnxruntime runs exactly that, and the int8 outputs agree."""
    from tinyc.frontend import load_model
    path = MODELS_DIR / "mlperf_tiny" / model
    graph = load_model(path)
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(6)
    for _ in range(5):
        feeds = {n: rng.integers(-128, 128, graph.values[n].shape).astype(np.int8) for n in graph.inputs}
        ours = run(graph, feeds)
        for name, want in zip(graph.outputs, session.run(None, feeds)):
            np.testing.assert_array_equal(ours[name], want.reshape(ours[name].shape))


def test_int_avg_pool_excluded_padding_adds_nothing():
    """Padded positions are neither counted nor summed (regression: they once added the zero point)."""
    from tinyc.interpreter import run as run_graph
    from tinyc.ir import Graph, Op, QuantParams, Value
    q = QuantParams.tensor(0.5, 3)
    values = {"x": Value("x", (1, 1, 1, 1), "int8", "NHWC", q), "y": Value("y", (1, 1, 1, 1), "int8", "NHWC", q)}
    attrs = {"kernel": [2, 1], "strides": [1, 1], "pads": [0, 0, 1, 0], "act_min": -128, "act_max": 127}
    graph = Graph("pool", values, [Op("avg_pool2d", "pool", ["x"], ["y"], attrs)], ["x"], ["y"])
    out = run_graph(graph, {"x": np.array([[[[89]]]], np.int8)})["y"]
    assert out.reshape(-1).tolist() == [89]
