"""fuse: activations and zero pads folded into their producers / consumers, float and integer."""
from __future__ import annotations

import math

import numpy as np
import pytest

from tinyc.ir import QuantParams
from tinyc.passes import get
from tinyc.verify import verify

from pass_graphs import Builder, evaluate, kinds, op_named, qt

fuse = get("fuse")
rng = np.random.default_rng(11)


def rand(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def run(graph):
    verify(graph)
    out = fuse(graph)
    verify(out)
    return out


def conv_graph(act_kind=None, **act_attrs):
    b = Builder()
    x = b.input("x", [1, 2, 5, 5])
    c = b.op("conv2d", "conv", [x, b.const("w", rand(3, 2, 3, 3), layout="OIHW"), b.const("b", rand(3))],
             pads=[1, 1, 1, 1])
    if act_kind:
        b.op(act_kind, "act", [c], out="y", **act_attrs)
        return b.output("y")
    return b.output(c)


@pytest.mark.parametrize("act_kind,act_attrs,expect", [
    ("relu", {}, {"activation": "relu"}),
    ("clip", {"min": 0.0, "max": 6.0}, {"activation": "relu6"}),
    ("clip", {"min": 0.0}, {"activation": "relu"}),
    ("clip", {"min": -1.5, "max": 2.25}, {"activation": "clip", "clip_min": -1.5, "clip_max": 2.25}),
    ("clip", {}, {"activation": "none"}),
])
def test_conv_activation_fused(act_kind, act_attrs, expect):
    g = conv_graph(act_kind, **act_attrs)
    out = run(g)
    assert kinds(out) == ["conv2d"]
    conv = op_named(out, "conv")
    assert conv.outputs == ["y"] and "conv_out" not in out.values
    assert {k: conv.attrs[k] for k in expect} == expect
    x = {"x": rand(1, 2, 5, 5) * 3}
    np.testing.assert_allclose(evaluate(out, x)["y"], evaluate(g, x)["y"], rtol=1e-6, atol=1e-6)


def test_clip_with_one_infinite_bound_is_not_fused():
    out = run(conv_graph("clip", min=-math.inf, max=6.0))
    assert kinds(out) == ["conv2d", "clip"]


@pytest.mark.parametrize("host", ["fully_connected", "add", "mul", "max_pool2d", "avg_pool2d",
                                  "depthwise_conv2d"])
def test_every_host_takes_a_relu(host):
    b = Builder()
    if host == "fully_connected":
        x = b.input("x", [1, 4])
        h = b.op(host, "h", [x, b.const("w", rand(3, 4))])
    elif host in ("add", "mul"):
        x = b.input("x", [1, 4])
        h = b.op(host, "h", [x, b.const("k", rand(4))])
    elif host == "depthwise_conv2d":
        x = b.input("x", [1, 2, 4, 4])
        h = b.op(host, "h", [x, b.const("w", rand(2, 1, 3, 3), layout="OIHW")])
    else:
        x = b.input("x", [1, 2, 4, 4])
        h = b.op(host, "h", [x], kernel=[2, 2], strides=[2, 2])
    b.op("relu", "act", [h], out="y")
    out = run(b.output("y"))
    assert kinds(out) == [host]
    assert op_named(out, "h").attrs["activation"] == "relu" and op_named(out, "h").outputs == ["y"]


def test_relu_not_fused_when_producer_output_has_other_readers():
    b = Builder()
    x = b.input("x", [1, 4])
    f = b.op("fully_connected", "fc", [x, b.const("w", rand(4, 4))])
    r = b.op("relu", "act", [f])
    b.op("add", "sum", [r, f], out="y")
    assert kinds(run(b.output("y"))) == ["fully_connected", "relu", "add"]


def test_relu_not_fused_when_producer_output_is_graph_output():
    b = Builder()
    x = b.input("x", [1, 4])
    f = b.op("fully_connected", "fc", [x, b.const("w", rand(4, 4))])
    r = b.op("relu", "act", [f])
    assert kinds(run(b.output(f, r))) == ["fully_connected", "relu"]


def test_relu_not_fused_twice_or_into_non_hosts():
    b = Builder()
    x = b.input("x", [1, 4])
    f = b.op("fully_connected", "fc", [x, b.const("w", rand(4, 4))], activation="relu6")
    r = b.op("relu", "act", [f])
    s = b.op("sigmoid", "sig", [r])
    b.op("relu", "act2", [s], out="y")
    out = run(b.output("y"))
    assert kinds(out) == ["fully_connected", "relu", "sigmoid", "relu"]
    assert op_named(out, "fc").attrs["activation"] == "relu6"


def test_qdq_relu_fused_before_quantize():
    b = Builder()
    xq = b.input("xq", [1, 4], "int8", qt(0.1, 0))
    w = b.dq(b.const("w", np.ones((3, 4), np.int8), qt(0.05, 0)))
    f = b.op("fully_connected", "fc", [b.dq(xq), w])
    r = b.op("relu", "act", [f])
    b.q(r, 0.02, -128, out="y")
    out = run(b.output("y"))
    assert kinds(out) == ["dequantize", "dequantize", "fully_connected", "quantize"]
    assert op_named(out, "fc").outputs == ["act_out"]
    assert op_named(out, "q_act_out").inputs == ["act_out"]


# ---- pads -------------------------------------------------------------------------------------

def pad_conv_graph(pads, value=0.0, kind="conv2d", extra_reader=False):
    b = Builder()
    x = b.input("x", [1, 2, 4, 4])
    p = b.op("pad", "pad", [x], pads=pads, value=value)
    w = b.const("w", rand(2, 1 if kind == "depthwise_conv2d" else 2, 3, 3), layout="OIHW")
    c = b.op(kind, "conv", [p, w], out="y", pads=[1, 0, 0, 1], strides=[2, 1])
    if extra_reader:
        return b.output(c, p)
    return b.output(c)


@pytest.mark.parametrize("kind", ["conv2d", "depthwise_conv2d"])
def test_zero_pad_folds_into_conv(kind):
    g = pad_conv_graph([0, 0, 1, 2, 0, 0, 3, 0], kind=kind)
    out = run(g)
    assert kinds(out) == [kind]
    conv = op_named(out, "conv")
    assert conv.inputs[0] == "x" and conv.attrs["pads"] == [2, 2, 3, 1]
    x = {"x": rand(1, 2, 4, 4)}
    np.testing.assert_allclose(evaluate(out, x)["y"], evaluate(g, x)["y"], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("pads,value,extra", [
    ([0, 0, 1, 1, 0, 0, 1, 1], 1.0, False),     # not zero
    ([0, 1, 1, 1, 0, 0, 1, 1], 0.0, False),     # pads the channel axis
    ([0, 0, 1, 1, 0, 0, 1, 1], 0.0, True),      # pad output read elsewhere
])
def test_pad_kept_when_not_a_plain_spatial_zero_pad(pads, value, extra):
    g = pad_conv_graph(pads, value, extra_reader=extra) if pads[1] == 0 else None
    if g is None:  # padding channels needs a weight with more input channels
        b = Builder()
        x = b.input("x", [1, 2, 4, 4])
        p = b.op("pad", "pad", [x], pads=pads, value=value)
        b.op("conv2d", "conv", [p, b.const("w", rand(2, 3, 3, 3), layout="OIHW")], out="y")
        g = b.output("y")
    assert kinds(run(g)) == ["pad", "conv2d"]


def integer_pad_conv(pad_value):
    b = Builder()
    xq = qt(0.5, -7)
    x = b.input("x", [1, 2, 4, 4], "int8", xq)
    p = b.op("pad", "pad", [x], dtype="int8", quant=xq, pads=[0, 0, 1, 1, 0, 0, 1, 1], value=pad_value)
    w = b.const("w", np.ones((2, 2, 3, 3), np.int8), QuantParams((0.1, 0.2), (0, 0), 0), "OIHW")
    b.op("conv2d", "conv", [p, w], out="y", dtype="int8", quant=qt(0.3, 2))
    return b.output("y")


def test_integer_pad_of_zero_point_folds_into_integer_conv():
    out = run(integer_pad_conv(-7.0))
    assert kinds(out) == ["conv2d"]
    assert op_named(out, "conv").attrs["pads"] == [1, 1, 1, 1] and op_named(out, "conv").inputs[0] == "x"


def test_integer_pad_of_other_value_is_kept():
    assert kinds(run(integer_pad_conv(0.0))) == ["pad", "conv2d"]


def test_integer_graph_without_fusable_pairs_is_unchanged():
    b = Builder()
    x = b.input("x", [1, 4], "int8", qt(0.5, 0))
    w = b.const("w", np.ones((3, 4), np.int8), qt(0.1, 0))
    f = b.op("fully_connected", "fc", [x, w], dtype="int8", quant=qt(0.2, -128))
    g = b.output(b.op("reshape", "r", [f], dtype="int8", quant=qt(0.2, -128), shape=[3, 1]))
    out = run(g)
    assert out.ops == g.ops and out.values.keys() == g.values.keys()
