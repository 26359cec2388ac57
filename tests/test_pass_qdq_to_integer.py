"""qdq-to-integer on hand-built QDQ graphs: exact resulting ops, attributes, quantisation and data."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyc.ir import QuantParams
from tinyc.passes import get
from tinyc.verify import verify

from pass_graphs import Builder, evaluate, kinds, op_named, qt

lower = get("qdq-to-integer")
rng = np.random.default_rng(5)

S_X, Z_X = 0.5, 3
S_Y, Z_Y = 0.25, -128
W_SCALES = (0.125, 0.0625, 0.25)


def run(graph):
    verify(graph)
    out = lower(graph)
    verify(out)
    return out


def int8(*shape):
    return rng.integers(-127, 128, shape).astype(np.int8)


def conv_graph(bias="int32", w_zp=0, w_axis=0, bias_scale=None, activation="relu"):
    """xq -> dequantize -> conv2d(w = dequantize(int8 per channel), bias) -> quantize -> yq."""
    b = Builder()
    xq = b.input("xq", [1, 2, 5, 5], "int8", qt(S_X, Z_X))
    c_axis_size = 3 if w_axis == 0 else 2
    scales = W_SCALES[:c_axis_size]
    w_q = QuantParams(scales, (w_zp,) * c_axis_size, w_axis)
    w = b.dq(b.const("w", int8(3, 2, 3, 3), w_q, "OIHW"), name="dq_w")
    ins = [b.dq(xq, name="dq_x"), w]
    if bias == "int32":
        bs = bias_scale or tuple(S_X * s for s in W_SCALES)
        ins.append(b.dq(b.const("b", np.array([100, -7, 3], np.int32), QuantParams(bs, (0, 0, 0), 0)),
                        name="dq_b"))
    elif bias == "float":
        ins.append(b.const("b", np.array([1.0, -0.5, 0.03125], np.float32)))
    f = b.op("conv2d", "conv", ins, pads=[1, 1, 1, 1], activation=activation)
    b.q(f, S_Y, Z_Y, name="q_y", out="yq")
    return b.output("yq")


def test_conv_becomes_integer_conv():
    g = conv_graph()
    out = run(g)
    assert kinds(out) == ["conv2d"]
    conv = op_named(out, "conv")
    assert conv.inputs == ["xq", "w", "b"] and conv.outputs == ["yq"]
    assert conv.attrs == {"pads": [1, 1, 1, 1], "activation": "relu"}
    assert out.values["w"].dtype == "int8" and out.values["w"].quant.axis == 0
    assert out.values["b"].dtype == "int32"
    assert set(out.values) == {"xq", "w", "b", "yq"}  # dead dequantize outputs and float values gone
    assert out.inputs == ["xq"] and out.outputs == ["yq"]


def test_float_bias_is_quantised_to_int32():
    out = run(conv_graph(bias="float"))
    conv = op_named(out, "conv")
    b = out.values[conv.inputs[2]]
    assert b.dtype == "int32"
    assert b.quant == QuantParams(tuple(S_X * s for s in W_SCALES), (0, 0, 0), 0)
    np.testing.assert_array_equal(b.data, [16, -16, 0])  # 1/0.0625, -0.5/0.03125, 0.03125/0.125 -> 0.25


@pytest.mark.parametrize("kwargs", [
    {"bias_scale": (0.1, 0.1, 0.1)},   # bias not in the accumulator's scale
    {"w_zp": 1},                        # asymmetric weights
    {"w_axis": 1},                      # per input channel
])
def test_conv_that_cannot_be_lowered_exactly_stays_float(kwargs):
    out = run(conv_graph(**kwargs))
    assert kinds(out).count("conv2d") == 1
    conv = op_named(out, "conv")
    assert out.values[conv.outputs[0]].dtype == "float32"
    assert "quantize" in kinds(out) and "dequantize" in kinds(out)


def test_fully_connected_and_depthwise_with_per_tensor_weights():
    b = Builder()
    xq = b.input("xq", [1, 2, 4, 4], "int8", qt(S_X, Z_X))
    w = b.dq(b.const("w", int8(2, 1, 3, 3), qt(0.125, 0), "OIHW"))
    d = b.op("depthwise_conv2d", "dw", [b.dq(xq), w])
    dq_ = b.q(d, 0.5, 0, out="dq_out")
    r = b.op("reshape", "flat", [b.dq(dq_)], shape=[1, 8])
    rq = b.q(r, 0.5, 0, out="flat_q")
    fw = b.dq(b.const("fw", int8(3, 8), qt(0.25, 0)))
    f = b.op("fully_connected", "fc", [b.dq(rq), fw])
    g = b.output(b.q(f, S_Y, 5, out="yq"))
    out = run(g)
    assert kinds(out) == ["depthwise_conv2d", "reshape", "fully_connected"]
    assert op_named(out, "dw").inputs == ["xq", "w"] and op_named(out, "dw").outputs == ["dq_out"]
    assert op_named(out, "flat").inputs == ["dq_out"] and op_named(out, "flat").outputs == ["flat_q"]
    assert op_named(out, "fc").inputs == ["flat_q", "fw"]


# ---- element-wise and quantisation-preserving ops ---------------------------------------------

def test_add_and_mul_read_the_integer_inputs():
    b = Builder()
    a = b.input("a", [1, 4], "int8", qt(0.1, 1))
    c = b.input("c", [1, 4], "int8", qt(0.2, -1))
    k = b.dq(b.const("k", int8(4), qt(0.05, 0)))
    s = b.op("add", "sum", [b.dq(a), b.dq(c)], activation="relu")
    sq = b.q(s, 0.3, -128, out="sq")
    m = b.op("mul", "prod", [b.dq(sq), k])
    out = run(b.output(b.q(m, 0.01, 0, out="y")))
    assert kinds(out) == ["add", "mul"]
    add, mul = op_named(out, "sum"), op_named(out, "prod")
    assert add.inputs == ["a", "c"] and add.outputs == ["sq"] and add.attrs == {"activation": "relu"}
    assert mul.inputs == ["sq", "k"] and mul.outputs == ["y"]
    assert out.values["k"].data.dtype == np.int8


def pool_graph(out_quant, kind="avg_pool2d"):
    b = Builder()
    x = b.input("x", [1, 2, 4, 4], "int8", qt(S_X, Z_X))
    p = b.op(kind, "pool", [b.dq(x)], kernel=[2, 2], strides=[2, 2])
    return b.output(b.q(p, *out_quant, name="q_pool", out="y"))


@pytest.mark.parametrize("kind", ["avg_pool2d", "max_pool2d"])
def test_pool_with_same_quant_has_no_rescale(kind):
    out = run(pool_graph((S_X, Z_X), kind))
    assert kinds(out) == [kind]
    assert op_named(out, "pool").inputs == ["x"] and op_named(out, "pool").outputs == ["y"]


def test_pool_with_new_quant_is_followed_by_rescale():
    out = run(pool_graph((0.75, -2)))
    assert kinds(out) == ["avg_pool2d", "rescale"]
    pool, rescale = out.ops
    mid = out.values[pool.outputs[0]]
    assert mid.dtype == "int8" and mid.quant == qt(S_X, Z_X) and mid.shape == (1, 2, 2, 2)
    assert rescale.inputs == [mid.name] and rescale.outputs == ["y"]
    assert rescale.name == "pool_rescale"


def test_concat_inputs_of_mixed_quant_are_rescaled_to_output():
    b = Builder()
    a = b.input("a", [1, 2], "int8", qt(0.1, 0))
    c = b.input("c", [1, 3], "int8", qt(0.2, 0))
    cat = b.op("concat", "cat", [b.dq(a), b.dq(c)], axis=1)
    out = run(b.output(b.q(cat, 0.1, 0, out="y")))
    assert kinds(out) == ["rescale", "concat"]
    rescale, concat = out.ops
    assert rescale.inputs == ["c"] and out.values[rescale.outputs[0]].quant == qt(0.1, 0)
    assert concat.inputs == ["a", rescale.outputs[0]] and concat.outputs == ["y"]


def test_concat_of_equal_input_quant_rescales_once_after():
    b = Builder()
    a = b.input("a", [1, 2], "int8", qt(0.1, 0))
    c = b.input("c", [1, 3], "int8", qt(0.1, 0))
    cat = b.op("concat", "cat", [b.dq(a), b.dq(c)], axis=1)
    out = run(b.output(b.q(cat, 0.3, 4, out="y")))
    assert kinds(out) == ["concat", "rescale"]
    assert out.ops[0].inputs == ["a", "c"]


def test_transpose_lowered():
    b = Builder()
    x = b.input("x", [2, 3], "int8", qt(0.1, 0))
    t = b.op("transpose", "tr", [b.dq(x)], perm=[1, 0])
    out = run(b.output(b.q(t, 0.1, 0, out="y")))
    assert kinds(out) == ["transpose"] and op_named(out, "tr").attrs == {"perm": [1, 0]}


@pytest.mark.parametrize("value,out_quant,expect", [
    (0.0, (S_X, Z_X), ["pad"]),
    (1.5, (S_X, Z_X), ["pad"]),
    (1.5, (0.25, 0), ["pad", "rescale"]),      # 1.5 = 0.5 * (6 - 3): exact in the input's quant
    (0.3, (0.25, 0), None),                    # not representable before the rescale
])
def test_pad_value_becomes_stored_code(value, out_quant, expect):
    b = Builder()
    x = b.input("x", [1, 1, 2, 2], "int8", qt(S_X, Z_X))
    p = b.op("pad", "pad", [b.dq(x)], pads=[0, 0, 1, 1, 0, 0, 1, 1], value=value)
    out = run(b.output(b.q(p, *out_quant, out="y")))
    if expect is None:
        assert op_named(out, "pad").kind == "pad" and out.values[op_named(out, "pad").outputs[0]].dtype == "float32"
        return
    assert kinds(out) == expect
    stored = op_named(out, "pad").attrs["value"]
    assert stored == {0.0: float(Z_X), 1.5: 6.0}[value]


def test_softmax_writes_its_fixed_quant_and_rescales_to_others():
    def graph(scale, zp):
        b = Builder()
        x = b.input("x", [1, 10], "int8", qt(0.1, 0))
        s = b.op("softmax", "sm", [b.dq(x)])
        return b.output(b.q(s, scale, zp, out="y"))
    direct = run(graph(1 / 256, -128))
    assert kinds(direct) == ["softmax"] and op_named(direct, "sm").outputs == ["y"]
    rescaled = run(graph(1 / 255, -128))  # what onnxruntime's quantiser writes
    assert kinds(rescaled) == ["softmax", "rescale"]
    mid = rescaled.values[op_named(rescaled, "sm").outputs[0]]
    assert mid.quant == qt(1 / 256, -128) and op_named(rescaled, "sm_rescale").outputs == ["y"]


def test_matmul_of_two_activations():
    b = Builder()
    a = b.input("a", [2, 3], "int8", qt(0.1, 2))
    c = b.input("c", [3, 4], "int8", qt(0.2, -3))
    m = b.op("matmul", "mm", [b.dq(a), b.dq(c)])
    out = run(b.output(b.q(m, 0.5, 0, out="y")))
    assert kinds(out) == ["matmul"] and op_named(out, "mm").inputs == ["a", "c"]


# ---- lut --------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind,attrs", [
    ("sigmoid", {}), ("tanh", {}), ("leaky_relu", {"alpha": 0.1}), ("hard_swish", {}),
    ("relu", {}), ("clip", {"min": -1.0, "max": 2.5}),
])
def test_unary_activation_becomes_lut_matching_float_qdq(kind, attrs):
    b = Builder()
    x = b.input("x", [1, 256], "int8", qt(0.0375, 7))
    f = b.op(kind, "act", [b.dq(x)], **attrs)
    g = b.output(b.q(f, 1 / 128, -3, out="y"))
    out = run(g)
    assert kinds(out) == ["lut"]
    lut = op_named(out, "act")
    assert lut.inputs == ["x"] and len(lut.attrs["table"]) == 256
    codes = {"x": np.arange(-128, 128, dtype=np.int8).reshape(1, 256)}
    np.testing.assert_array_equal(evaluate(out, codes)["y"], evaluate(g, codes)["y"])


def test_lut_table_saturates_and_rounds_half_to_even():
    b = Builder()
    x = b.input("x", [4], "int8", qt(1.0, 0))
    f = b.op("clip", "act", [b.dq(x)], min=-1000.0, max=1000.0)
    out = run(b.output(b.q(f, 2.0, 0, out="y")))
    table = op_named(out, "act").attrs["table"]
    # code c -> round_half_even(c / 2): 1 -> 0, 3 -> 2, -1 -> 0, -3 -> -2; -128 -> -64; 127 -> 64
    assert [table[c + 128] for c in (1, 3, -1, -3, -128, 127)] == [0, 2, 0, -2, -64, 64]
    b = Builder()
    x = b.input("x", [4], "int8", qt(1.0, 0))
    f = b.op("relu", "act", [b.dq(x)])
    out = run(b.output(b.q(f, 0.5, -100, out="y")))
    assert op_named(out, "act").attrs["table"][-1] == 127 and op_named(out, "act").attrs["table"][0] == -100


# ---- quantize(dequantize) ---------------------------------------------------------------------

def test_requantize_pair_same_params_removed_and_different_params_rescale():
    b = Builder()
    x = b.input("x", [4], "int8", qt(0.1, 0))
    r = b.op("relu", "act", [b.dq(x)])
    rq = b.q(r, 0.1, 0, out="rq")
    same = b.q(b.dq(rq, name="dq2", out="rq_f"), 0.1, 0, name="q_same", out="same")
    other = b.q("rq_f", 0.2, 1, name="q_other", out="other")
    s = b.op("add", "sum", [b.dq(same), b.dq(other)])
    g = b.output(b.q(s, 0.3, 0, out="y"))
    out = run(g)
    assert kinds(out) == ["lut", "rescale", "add"]
    rescale = op_named(out, "q_other")
    assert rescale.kind == "rescale" and rescale.inputs == ["rq"] and rescale.outputs == ["other"]
    assert op_named(out, "sum").inputs == ["rq", "other"]


def test_requantize_pair_at_graph_output_renames_the_producer_output():
    b = Builder()
    x = b.input("x", [4], "int8", qt(0.1, 0))
    f = b.op("sigmoid", "act", [b.dq(x)])
    fq = b.q(f, 1 / 256, -128, out="fq")
    g = b.output(b.q(b.dq(fq), 1 / 256, -128, name="q_again", out="y"))
    out = run(g)
    assert kinds(out) == ["lut"] and op_named(out, "act").outputs == ["y"] and "fq" not in out.values


# ---- uint8, float boundaries, mixed graphs ----------------------------------------------------

def test_uint8_graph_becomes_int8_with_boundary_rescales():
    b = Builder()
    x = b.input("x", [1, 4], "uint8", qt(0.1, 130))
    w_data = rng.integers(0, 256, (3, 4)).astype(np.uint8)
    w = b.dq(b.const("w", w_data, qt(0.05, 128)))
    f = b.op("fully_connected", "fc", [b.dq(x), w])
    fq = b.q(f, 0.2, 10, out="fq", dtype="uint8")
    r = b.op("reshape", "r", [b.dq(fq)], shape=[3, 1])
    g = b.output(b.q(r, 0.2, 10, out="y", dtype="uint8"))
    out = run(g)
    assert kinds(out) == ["rescale", "fully_connected", "reshape", "rescale"]
    to_int8, fc, reshape, to_uint8 = out.ops
    assert to_int8.inputs == ["x"] and to_int8.name == "x_to_int8"
    signed_x = out.values[to_int8.outputs[0]]
    assert signed_x.dtype == "int8" and signed_x.quant == qt(0.1, 2)
    assert fc.inputs[0] == signed_x.name
    w_int8 = out.values[fc.inputs[1]]
    assert w_int8.quant == qt(0.05, 0)
    np.testing.assert_array_equal(w_int8.data, w_data.astype(np.int16) - 128)
    assert out.values["fq"].dtype == "int8" and out.values["fq"].quant == qt(0.2, -118)
    assert to_uint8.outputs == ["y"] and out.values["y"].dtype == "uint8"
    assert out.values[to_uint8.inputs[0]].quant == qt(0.2, -118)
    assert out.inputs == ["x"] and out.outputs == ["y"]


def test_float_interface_keeps_quantize_and_dequantize():
    b = Builder()
    x = b.input("x", [1, 4])
    xq = b.q(x, 0.1, 0, name="q_in", out="xq")
    w = b.dq(b.const("w", int8(3, 4), qt(0.05, 0)))
    f = b.op("fully_connected", "fc", [b.dq(xq), w])
    fq = b.q(f, 0.2, 0, out="fq")
    g = b.output(b.dq(fq, name="dq_out", out="y"))
    out = run(g)
    assert kinds(out) == ["quantize", "fully_connected", "dequantize"]
    assert op_named(out, "fc").inputs == ["xq", "w"] and op_named(out, "dq_out").inputs == ["fq"]


def test_mixed_graph_keeps_unlowerable_ops_float():
    b = Builder()
    x = b.input("x", [1, 4], "int8", qt(0.1, 0))
    z = b.input("z", [1, 4])  # a float input without quantisation
    a = b.op("add", "sum", [b.dq(x), z])
    aq = b.q(a, 0.2, 0, out="aq")
    r = b.op("relu", "act", [b.dq(aq)])
    g = b.output(b.q(r, 0.2, 0, out="y"))
    out = run(g)
    assert kinds(out) == ["dequantize", "add", "quantize", "lut"]
    assert out.values[op_named(out, "sum").outputs[0]].dtype == "float32"


def test_two_equal_quantizers_merge_into_one_output():
    b = Builder()
    x = b.input("x", [1, 4], "int8", qt(0.1, 0))
    f = b.op("tanh", "act", [b.dq(x)])
    q1 = b.q(f, 1 / 128, 0, name="q1", out="q1_out")
    q2 = b.q(f, 1 / 128, 0, name="q2", out="q2_out")
    s = b.op("add", "sum", [b.dq(q1), b.dq(q2)])
    g = b.output(b.q(s, 0.5, 0, out="y"))
    out = run(g)
    assert kinds(out) == ["lut", "add"]
    lut = op_named(out, "act")
    assert op_named(out, "sum").inputs == [lut.outputs[0]] * 2


def test_qdq_graph_numbers_survive_where_lowering_is_exact():
    """Reshape/transpose/max pool/lut are exact: the float QDQ graph and the lowered one agree."""
    b = Builder()
    x = b.input("x", [1, 2, 4, 4], "int8", qt(0.1, -5))
    p = b.op("max_pool2d", "pool", [b.dq(x)], kernel=[2, 2], strides=[2, 2])
    pq = b.q(p, 0.1, -5, out="pq")
    t = b.op("transpose", "tr", [b.dq(pq)], perm=[0, 2, 3, 1])
    tq = b.q(t, 0.1, -5, out="tq")
    s = b.op("sigmoid", "sig", [b.dq(tq)])
    g = b.output(b.q(s, 1 / 256, -128, out="y"))
    out = run(g)
    assert kinds(out) == ["max_pool2d", "transpose", "lut"]
    feed = {"x": rng.integers(-128, 128, (1, 2, 4, 4)).astype(np.int8)}
    np.testing.assert_array_equal(evaluate(out, feed)["y"], evaluate(g, feed)["y"])


# ---- the pipeline's first four passes on a KWS-shaped QDQ graph -------------------------------

def kws_like_qdq_graph():
    """The op pattern of the MLPerf Tiny KWS QDQ model, small: conv+relu, grouped conv+relu, average
    pool, reshape, gemm (transB), softmax; every activation quantized, weights dequantized int8."""
    b = Builder("kws_like")
    x = b.input("x", [1, 1, 8, 6], "int8", qt(0.58, 83))
    s1, s2, s3 = 0.07, 0.08, 0.09

    def weights(name, shape, s_in, per_channel=True):
        n = shape[0]
        scales = tuple(0.01 * (i + 1) for i in range(n)) if per_channel else (0.02,)
        wq = QuantParams(scales, (0,) * len(scales), 0 if per_channel else None)
        w = b.dq(b.const(name, int8(*shape), wq, "OIHW" if len(shape) == 4 else ""))
        bias = b.dq(b.const(f"{name}_b", rng.integers(-500, 500, n).astype(np.int32),
                            QuantParams(tuple(s_in * s for s in scales), (0,) * len(scales),
                                        0 if per_channel else None)))
        return w, bias

    w, bias = weights("w0", (4, 1, 3, 3), 0.58)
    c = b.op("conv2d", "conv0", [b.dq(x), w, bias], pads=[1, 1, 1, 1])
    t1 = b.q(b.op("relu", "relu0", [c]), s1, -128, out="t1")
    w, bias = weights("w1", (4, 1, 3, 3), s1)
    d = b.op("conv2d", "dw1", [b.dq(t1), w, bias], pads=[1, 1, 1, 1], group=4)
    t2 = b.q(b.op("relu", "relu1", [d]), s2, -128, out="t2")
    p = b.op("avg_pool2d", "pool", [b.dq(t2)], kernel=[8, 6], strides=[8, 6])
    t3 = b.q(p, s2, -128, out="t3")
    r = b.op("reshape", "flat", [b.dq(t3)], shape=[1, 4])
    t4 = b.q(r, s2, -128, out="t4")
    fw, fb = weights("fw", (5, 4), s2, per_channel=False)
    f = b.op("gemm", "fc", [b.dq(t4), fw, fb], trans_b=True)
    t5 = b.q(f, s3, 14, out="t5")
    sm = b.op("softmax", "softmax", [b.dq(t5)])
    ident = b.op("identity", "out_copy", [sm])
    return b.output(b.q(ident, 1 / 256, -128, out="y"))


def test_front_of_pipeline_leaves_only_integer_ops():
    g = kws_like_qdq_graph()
    verify(g)
    for name in ("canonicalize", "fuse", "qdq-to-integer", "fuse"):
        g = get(name)(g)
        verify(g)
    assert kinds(g) == ["conv2d", "depthwise_conv2d", "avg_pool2d", "reshape", "fully_connected", "softmax"]
    assert [op.name for op in g.ops] == ["conv0", "dw1", "pool", "flat", "fc", "softmax"]
    assert all(g.values[op.outputs[0]].dtype == "int8" for op in g.ops)
    assert [g.values[op.outputs[0]].quant.zero_point[0] for op in g.ops] == [-128, -128, -128, -128, 14, -128]
    assert op_named(g, "conv0").attrs["activation"] == "relu"
    assert op_named(g, "dw1").attrs["activation"] == "relu" and op_named(g, "dw1").attrs["depth_multiplier"] == 1
    assert g.inputs == ["x"] and g.outputs == ["y"] and op_named(g, "softmax").outputs == ["y"]
    assert not any(v.dtype == "float32" for v in g.values.values())


# ---- real models: the QDQ form lowers to the structure of the QOperator form --------------------

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf_tiny"
MODEL_PAIRS = {
    "kws": ("kws/kws_ref_model_qdq.onnx", "kws/kws_ref_model_qop.onnx"),
    "vww": ("vww/vww_96_int8_qdq.onnx", "vww/vww_96_int8_qop.onnx"),
    "ic": ("ic/pretrainedResnet_quant_qdq.onnx", "ic/pretrainedResnet_quant_qop.onnx"),
    "ad": ("ad/ad01_int8_qdq.onnx", "ad/ad01_int8_qop.onnx"),
    "sww": ("sww/str_ww_ref_model_qdq.onnx", "sww/str_ww_ref_model_qop.onnx"),
}


FRONT = ("canonicalize", "fuse", "qdq-to-integer", "fuse")


def front_of_pipeline(path):
    frontend = pytest.importorskip("tinyc.frontend")
    if not hasattr(frontend, "load_model"):
        pytest.skip("the ONNX frontend (tinyc.frontend.load_model) is not available yet")
    graph = frontend.load_model(path)
    verify(graph)
    for name in FRONT:
        graph = get(name)(graph)
        verify(graph)
    return graph


def _same_value_type(a, b):
    if (a.dtype, a.shape, a.layout) != (b.dtype, b.shape, b.layout):
        return False
    if (a.quant is None) != (b.quant is None):
        return False
    if a.quant is None:
        return True
    # Bias scales are s_x * s_w: the QDQ file stores that product rounded to float32.
    return (a.quant.axis == b.quant.axis and a.quant.zero_point == b.quant.zero_point
            and np.allclose(a.quant.scale, b.quant.scale, rtol=1e-6, atol=0))


@pytest.mark.parametrize("model", sorted(MODEL_PAIRS))
def test_qdq_model_lowers_to_the_qoperator_structure(model):
    qdq_path, qop_path = (MODELS / p for p in MODEL_PAIRS[model])
    from_qdq, from_qop = front_of_pipeline(qdq_path), front_of_pipeline(qop_path)
    for g in (from_qdq, from_qop):
        assert not {"quantize", "dequantize"} & set(kinds(g))
        assert all(g.values[op.outputs[0]].dtype != "float32" for op in g.ops)
    assert kinds(from_qdq) == kinds(from_qop)
    for a_op, b_op in zip(from_qdq.ops, from_qop.ops):
        a_vals = [from_qdq.values[n] for n in a_op.inputs + a_op.outputs]
        b_vals = [from_qop.values[n] for n in b_op.inputs + b_op.outputs]
        assert len(a_vals) == len(b_vals), a_op.name
        for a, b in zip(a_vals, b_vals):
            assert _same_value_type(a, b), f"{a_op.name} / {b_op.name}: {a} vs {b}"
            if a.is_const:
                np.testing.assert_array_equal(a.data, b.data, err_msg=a_op.name)


@pytest.mark.parametrize("model", ["kws", "ic", "ad"])
def test_qdq_and_qoperator_forms_compute_the_same_codes(model):
    """Through the whole default pipeline, both forms of a model give bit-identical outputs."""
    from tinyc.interpreter import run as interpret
    from tinyc.passes import DEFAULT_PIPELINE
    assert tuple(DEFAULT_PIPELINE[:len(FRONT)]) == FRONT
    graphs = []
    for path in (MODELS / p for p in MODEL_PAIRS[model]):
        g = front_of_pipeline(path)
        for name in DEFAULT_PIPELINE[len(FRONT):]:
            g = get(name)(g)
        verify(g)
        graphs.append(g)
    feeds = {n: rng.integers(-128, 128, graphs[0].values[n].shape).astype(np.int8) for n in graphs[0].inputs}
    from_qdq, from_qop = (interpret(g, feeds) for g in graphs)
    for name in from_qdq:
        np.testing.assert_array_equal(from_qdq[name], from_qop[name])


# ---- an onnxruntime-quantised model: uint8 activations, float interface ------------------------

def _small_float_onnx(path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    r = np.random.default_rng(3)
    weights = {"W": r.standard_normal((8, 3, 3, 3)) * 0.3, "B": r.standard_normal(8) * 0.1,
               "W2": r.standard_normal((8, 1, 3, 3)) * 0.3, "FW": r.standard_normal((8, 10))}
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Conv", ["r", "W2"], ["d"], pads=[1, 1, 1, 1], group=8, name="dw"),
        helper.make_node("Sigmoid", ["d"], ["s"], name="sig"),
        helper.make_node("MaxPool", ["s"], ["p"], kernel_shape=[2, 2], strides=[2, 2], name="pool"),
        helper.make_node("GlobalAveragePool", ["p"], ["g"], name="gap"),
        helper.make_node("Flatten", ["g"], ["f"], name="flat"),
        helper.make_node("Gemm", ["f", "FW"], ["logits"], name="fc"),
        helper.make_node("Softmax", ["logits"], ["y"], name="sm"),
    ]
    graph = helper.make_graph(
        nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [numpy_helper.from_array(v.astype(np.float32), k) for k, v in weights.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def test_onnxruntime_uint8_qdq_model_lowers_to_int8_and_keeps_its_numbers(tmp_path):
    quantization = pytest.importorskip("onnxruntime.quantization")
    import onnxruntime
    from tinyc.interpreter import run as interpret
    from tinyc.passes import DEFAULT_PIPELINE
    float_path, qdq_path = tmp_path / "small.onnx", tmp_path / "small_qdq.onnx"
    _small_float_onnx(float_path)
    r = np.random.default_rng(4)

    class Calibration(quantization.CalibrationDataReader):
        def __init__(self):
            self.samples = iter([{"x": r.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(8)])

        def get_next(self):
            return next(self.samples, None)

    quantization.quantize_static(str(float_path), str(qdq_path), Calibration(),
                                 quant_format=quantization.QuantFormat.QDQ,
                                 activation_type=quantization.QuantType.QUInt8,
                                 weight_type=quantization.QuantType.QInt8, per_channel=True)
    g = front_of_pipeline(qdq_path)
    assert kinds(g) == ["quantize", "conv2d", "depthwise_conv2d", "lut", "max_pool2d", "avg_pool2d",
                        "rescale", "reshape", "fully_connected", "softmax", "rescale", "dequantize"]
    assert not any(v.dtype == "uint8" for v in g.values.values())
    assert g.values["x"].dtype == g.values["y"].dtype == "float32"
    for name in DEFAULT_PIPELINE[len(FRONT):]:
        g = get(name)(g)
    verify(g)
    session = onnxruntime.InferenceSession(str(qdq_path), providers=["CPUExecutionProvider"])
    for _ in range(5):
        x = r.standard_normal((1, 3, 8, 8)).astype(np.float32)
        ours, theirs = interpret(g, {"x": x})["y"], session.run(None, {"x": x})[0]
        # onnxruntime requantises in float; the integer kernels may differ by a couple of steps.
        np.testing.assert_allclose(ours, theirs, atol=2.5 / 255, rtol=0)
