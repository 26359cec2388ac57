"""Tests of the `layout` pass (NCHW -> NHWC): exact shapes, layouts, weights and transpose counts on
hand-built float and integer graphs, the same results before and after (reference interpreter), and
the real MLPerf Tiny models."""
from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from strategies import assert_graphs_equal, graphs
from tinyc.interpreter import run
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import infer_shapes
from tinyc.passes import get
from tinyc.passes import layout as layout_pass
from tinyc.passes._patterns import IndexedGraph
from tinyc.passes.layout import _simplify, simplify_moves
from tinyc.verify import verify

to_nhwc = get("layout")
MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf_tiny"
RNG = np.random.default_rng(7)


# ---- a tiny graph builder ------------------------------------------------------------------------
class Builder:
    """Builds a Graph op by op; output shapes come from the op table, 4-D values default to NCHW."""

    def __init__(self, name: str = "g") -> None:
        self.g = Graph(name, {}, [], [], [])

    def input(self, name: str, shape, dtype: str = "float32", layout: str | None = None,
              quant: QuantParams | None = None) -> str:
        self.g.add_value(Value(name, shape, dtype, _default_layout(shape, layout), quant))
        self.g.inputs.append(name)
        return name

    def const(self, name: str, data: np.ndarray, layout: str = "", quant: QuantParams | None = None) -> str:
        return self.g.add_const(name, data, layout, quant).name

    def weight(self, name: str, shape, dtype: str = "float32", quant: QuantParams | None = None) -> str:
        if dtype == "float32":
            data = RNG.standard_normal(shape).astype(np.float32)
        else:
            data = RNG.integers(-127, 128, size=shape).astype(dtype)
        return self.const(name, data, "OIHW" if len(shape) == 4 else "", quant)

    def op(self, kind: str, name: str, inputs: list[str], dtype: str | None = None,
           layout: str | None = None, quant: QuantParams | None = None, **attrs) -> str:
        op = Op(kind, name, list(inputs), [f"{name}_out"], attrs)
        shape = infer_shapes(op, [self.g.values[n] for n in inputs])[0]
        first = self.g.values[inputs[0]]
        dtype = dtype or first.dtype
        if quant is None and dtype != "float32" and kind not in ("conv2d", "depthwise_conv2d",
                                                                 "fully_connected"):
            quant = first.quant
        self.g.add_value(Value(op.outputs[0], shape, dtype, _default_layout(shape, layout), quant))
        self.g.ops.append(op)
        return op.outputs[0]

    def build(self, *outputs: str) -> Graph:
        self.g.outputs = list(outputs)
        verify(self.g)
        return self.g


def _default_layout(shape, layout):
    return layout if layout is not None else ("NCHW" if len(shape) == 4 else "")


def random_feeds(graph: Graph) -> dict[str, np.ndarray]:
    feeds = {}
    for name in graph.inputs:
        v = graph.values[name]
        if v.dtype == "float32":
            feeds[name] = RNG.standard_normal(v.shape).astype(np.float32)
        else:
            feeds[name] = RNG.integers(-128, 128, size=v.shape).astype(v.dtype)
    return feeds


def assert_same_results(before: Graph, after: Graph) -> None:
    feeds = random_feeds(before)
    want, got = run(before, feeds), run(after, feeds)
    for name in before.outputs:
        assert got[name].shape == want[name].shape
        if want[name].dtype == np.float32:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-4)
        else:
            np.testing.assert_array_equal(got[name], want[name])


# ---- helpers on results --------------------------------------------------------------------------
def kinds(graph: Graph) -> list[str]:
    return [op.kind for op in graph.ops]


def op_named(graph: Graph, name: str) -> Op:
    (op,) = [op for op in graph.ops if op.name == name]
    return op


def value_of(graph: Graph, op_name: str, index: int = 0) -> Value:
    return graph.values[op_named(graph, op_name).inputs[index]]


def output_of(graph: Graph, op_name: str) -> Value:
    return graph.values[op_named(graph, op_name).outputs[0]]


def run_layout(graph: Graph) -> Graph:
    before = graph.copy()
    out = to_nhwc(graph)
    verify(out)
    # The pass works on a copy and keeps the interface and the op names.
    assert kinds(graph) == kinds(before) and graph.values.keys() == before.values.keys()
    assert all((v.shape, v.layout) == (before.values[n].shape, before.values[n].layout)
               for n, v in graph.values.items())
    assert out.inputs == graph.inputs and out.outputs == graph.outputs
    for name in graph.inputs + graph.outputs:
        a, b = graph.values[name], out.values[name]
        assert (a.shape, a.dtype, a.layout, a.quant) == (b.shape, b.dtype, b.layout, b.quant)
    # Op names survive; only data movement (transpose, reshape) may vanish.
    computing = {op.name for op in graph.ops if op.kind not in ("transpose", "reshape")}
    assert computing <= {op.name for op in out.ops}
    assert len({op.name for op in out.ops}) == len(out.ops)
    return out


# ---- float graphs --------------------------------------------------------------------------------
def floats(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def conv_chain(spatial_after_pool: int) -> Graph:
    """input [1,3,8,8] -> conv(4) -> relu -> pool -> reshape [1, K] -> fc(5)."""
    b = Builder()
    x = b.input("x", (1, 3, 8, 8))
    y = b.op("conv2d", "conv", [x, b.weight("w", (4, 3, 3, 3)), b.const("b", floats(4))], pads=[1, 1, 1, 1])
    y = b.op("relu", "relu", [y])
    k = 8 // spatial_after_pool
    y = b.op("max_pool2d", "pool", [y], kernel=[k, k], strides=[k, k])
    flat = 4 * spatial_after_pool * spatial_after_pool
    y = b.op("reshape", "flatten", [y], shape=[1, flat])
    y = b.op("fully_connected", "fc", [y, b.weight("fw", (5, flat)), b.const("fb", floats(5))])
    return b.build(y)


def test_conv_chain_global_pool_needs_only_the_input_transpose():
    g = conv_chain(spatial_after_pool=1)
    out = run_layout(g)
    assert kinds(out) == ["transpose", "conv2d", "relu", "max_pool2d", "reshape", "fully_connected"]
    assert value_of(out, "conv").shape == (1, 8, 8, 3) and value_of(out, "conv").layout == "NHWC"
    assert output_of(out, "conv").shape == (1, 8, 8, 4) and output_of(out, "conv").layout == "NHWC"
    assert output_of(out, "relu").shape == (1, 8, 8, 4) and output_of(out, "relu").layout == "NHWC"
    assert output_of(out, "pool").shape == (1, 1, 1, 4)
    assert value_of(out, "flatten").name == output_of(out, "pool").name
    w = value_of(out, "conv", 1)
    assert w.layout == "OHWI" and w.shape == (4, 3, 3, 3)
    assert np.array_equal(w.data, g.values["w"].data.transpose(0, 2, 3, 1))
    fc_w = value_of(out, "fc", 1)  # fully_connected is left alone
    assert (fc_w.shape, fc_w.layout) == ((5, 4), "") and np.array_equal(fc_w.data, g.values["fw"].data)
    assert out.ops[0].inputs == ["x"] and out.ops[0].attrs["perm"] == [0, 2, 3, 1]
    assert_same_results(g, out)


def test_flatten_with_spatial_and_channels_needs_a_transpose_back():
    g = conv_chain(spatial_after_pool=2)
    out = run_layout(g)
    assert kinds(out) == ["transpose", "conv2d", "relu", "max_pool2d", "transpose", "reshape",
                          "fully_connected"]
    back = op_named(out, out.ops[4].name)
    assert back.attrs["perm"] == [0, 3, 1, 2]
    assert out.values[back.inputs[0]].shape == (1, 2, 2, 4)
    assert out.values[back.outputs[0]].shape == (1, 4, 2, 2)
    assert op_named(out, "flatten").inputs == back.outputs
    assert_same_results(g, out)


def test_depthwise_weights_become_ihwo_with_quant_axis_3():
    b = Builder()
    x = b.input("x", (1, 4, 6, 6))
    w = b.weight("dw", (8, 1, 3, 3))
    y = b.op("depthwise_conv2d", "dw_conv", [x, w, b.const("db", np.ones(8, np.float32))],
             depth_multiplier=2, strides=[2, 2], pads=[0, 0, 1, 1])
    g = b.build(y)
    out = run_layout(g)
    wv = value_of(out, "dw_conv", 1)
    assert (wv.shape, wv.layout) == ((1, 3, 3, 8), "IHWO")
    assert np.array_equal(wv.data, g.values["dw"].data.transpose(1, 2, 3, 0))
    assert output_of(out, "dw_conv").shape == (1, 3, 3, 8)
    # Input and output of the graph stay NCHW: one transpose each side.
    assert kinds(out) == ["transpose", "depthwise_conv2d", "transpose"]
    assert out.ops[-1].outputs == [y] and out.values[y].shape == (1, 8, 3, 3)
    assert_same_results(g, out)


def test_tflite2onnx_transpose_before_flatten_vanishes():
    """tflite2onnx puts Transpose(0,2,3,1) before the Reshape feeding Gemm to get TF's NHWC flatten
    order; in an NHWC graph that transpose is exactly the layout change and must disappear."""
    for pooled in (1, 2):
        b = Builder()
        x = b.input("x", (1, 3, 8, 8))
        y = b.op("conv2d", "conv", [x, b.weight("w", (6, 3, 1, 1))])
        k = 8 // pooled
        y = b.op("avg_pool2d", "pool", [y], kernel=[k, k], strides=[k, k])
        y = b.op("transpose", "to_tf_order", [y], perm=[0, 2, 3, 1])
        y = b.op("reshape", "flatten", [y], shape=[1, 6 * pooled * pooled])
        y = b.op("fully_connected", "fc", [y, b.weight("fw", (2, 6 * pooled * pooled))])
        g = b.build(y)
        out = run_layout(g)
        assert kinds(out).count("transpose") == 1, kinds(out)  # the input's, nothing else
        assert kinds(out)[-2:] == ["reshape", "fully_connected"]
        assert op_named(out, "flatten").inputs == op_named(out, "pool").outputs
        assert_same_results(g, out)


@pytest.mark.parametrize("label", ["", "NCHW"])
def test_transposes_that_cancel_disappear(label):
    """tf2onnx style: an NHWC graph input transposed to NCHW for the conv, and back at the end (the
    frontend labels every 4-D value NCHW, even this NHWC input)."""
    b = Builder()
    x = b.input("x", (1, 8, 8, 3), layout=label)
    y = b.op("transpose", "in_to_nchw", [x], perm=[0, 3, 1, 2])
    y = b.op("conv2d", "conv", [y, b.weight("w", (4, 3, 3, 3))], pads=[1, 1, 1, 1])
    y = b.op("relu", "relu", [y])
    y = b.op("transpose", "out_to_nhwc", [y], perm=[0, 2, 3, 1], layout=label)
    g = b.build(y)
    out = run_layout(g)
    # No transpose is left; the input's bytes are read as they are (a reshape only relabels the
    # NHWC bytes of the interface value "x" as an NHWC activation) and relu writes the output.
    assert kinds(out) == ["reshape", "conv2d", "relu"]
    assert out.ops[0].inputs == ["x"] and out.ops[0].attrs["shape"] == [1, 8, 8, 3]
    assert out.values[out.ops[0].outputs[0]].layout == "NHWC"
    assert out.ops[-1].outputs == [y]
    assert_same_results(g, out)


def test_model_transposes_around_elementwise_ops_vanish():
    """NHWC islands inside an NCHW model: Transpose(0,2,3,1) -> relu -> Transpose(0,3,1,2)."""
    b = Builder()
    x = b.input("x", (1, 3, 6, 6))
    y = b.op("conv2d", "conv", [x, b.weight("w", (5, 3, 3, 3))])
    y = b.op("transpose", "to_nhwc", [y], perm=[0, 2, 3, 1])
    y = b.op("relu", "relu", [y])
    y = b.op("transpose", "to_nchw", [y], perm=[0, 3, 1, 2])
    y = b.op("conv2d", "conv2", [y, b.weight("w2", (2, 5, 1, 1))])
    g = b.build(y)
    out = run_layout(g)
    assert kinds(out) == ["transpose", "conv2d", "relu", "conv2d", "transpose"]
    assert op_named(out, "conv2").inputs[0] == op_named(out, "relu").outputs[0]
    assert_same_results(g, out)


def test_unit_moving_transpose_becomes_a_reshape():
    b = Builder()
    x = b.input("x", (2, 5, 1, 1))
    y = b.op("transpose", "unit_move", [x], perm=[0, 2, 3, 1], layout="")
    g = b.build(y)
    out = run_layout(g)
    assert kinds(out) == ["reshape"] and out.ops[0].attrs["shape"] == [2, 1, 1, 5]
    assert_same_results(g, out)


def test_concat_on_channels_and_pad():
    b = Builder()
    x = b.input("x", (1, 2, 5, 5))
    a = b.op("conv2d", "conv_a", [x, b.weight("wa", (3, 2, 1, 1))])
    c = b.op("conv2d", "conv_c", [x, b.weight("wc", (4, 2, 3, 3))], pads=[1, 1, 1, 1])
    y = b.op("concat", "cat", [a, c], axis=1)
    y = b.op("pad", "pad", [y], pads=[0, 0, 1, 2, 0, 0, 3, 4])
    y = b.op("max_pool2d", "pool", [y], kernel=[2, 2], strides=[2, 2])
    g = b.build(y)
    out = run_layout(g)
    assert op_named(out, "cat").attrs["axis"] == 3
    assert output_of(out, "cat").shape == (1, 5, 5, 7) and output_of(out, "cat").layout == "NHWC"
    assert op_named(out, "pad").attrs["pads"] == [0, 1, 2, 0, 0, 3, 4, 0]
    assert output_of(out, "pad").shape == (1, 9, 11, 7)
    assert kinds(out).count("transpose") == 2  # input and output of the graph
    assert_same_results(g, out)


def test_broadcast_constants_of_add_and_mul_follow():
    b = Builder()
    x = b.input("x", (1, 3, 4, 4))
    y = b.op("conv2d", "conv", [x, b.weight("w", (5, 3, 1, 1))])
    y = b.op("add", "bias3d", [y, b.const("c3", floats(5, 1, 1))])
    y = b.op("mul", "scale4d", [b.const("c4", floats(1, 5, 1, 1), "NCHW"), y])
    y = b.op("add", "rowwise", [y, b.const("c1", floats(4))])
    y = b.op("mul", "scalar", [y, b.const("s", np.array(2.0, np.float32))])
    g = b.build(y)
    out = run_layout(g)
    assert value_of(out, "bias3d", 1).shape == (1, 1, 5)
    assert np.array_equal(value_of(out, "bias3d", 1).data, g.values["c3"].data.reshape(1, 1, 5))
    assert value_of(out, "scale4d", 0).shape == (1, 1, 1, 5)
    # A vector broadcasts along W: W is axis 2 of NHWC, so it becomes [W, 1].
    assert value_of(out, "rowwise", 1).shape == (4, 1)
    assert op_named(out, "scalar").inputs[1] == "s"  # one element broadcasts the same in any layout
    assert kinds(out).count("transpose") == 2
    assert_same_results(g, out)


def test_reshape_into_conv_and_kws_style_input_becomes_a_reshape():
    # KWS: [1,1,49,10] NCHW input is the same bytes as NHWC [1,49,10,1]: a reshape, no transpose.
    b = Builder()
    x = b.input("x", (1, 1, 49, 10))
    y = b.op("conv2d", "conv", [x, b.weight("w", (8, 1, 10, 4))], strides=[2, 2], pads=[4, 1, 5, 1])
    y = b.op("avg_pool2d", "pool", [y], kernel=[25, 5], strides=[25, 5])
    y = b.op("reshape", "flatten", [y], shape=[1, 8])
    g = b.build(y)
    out = run_layout(g)
    assert kinds(out) == ["reshape", "conv2d", "avg_pool2d", "reshape"]
    assert out.ops[0].inputs == ["x"] and out.ops[0].attrs["shape"] == [1, 49, 10, 1]
    assert value_of(out, "conv").layout == "NHWC"
    assert_same_results(g, out)

    # A 2-D input reshaped to 4-D NCHW feeding a conv: reshape, then transpose to NHWC where needed.
    # (the conv's output goes back to NCHW at the graph output: a transpose unless C == 1 or HW == 1)
    for shape4, transposes in (((1, 3, 4, 5), 2), ((1, 1, 4, 15), 1), ((1, 60, 1, 1), 0)):
        b = Builder()
        x = b.input("x", (1, 60))
        y = b.op("reshape", "unflatten", [x], shape=list(shape4))
        y = b.op("conv2d", "conv", [y, b.weight("w", (2, shape4[1], 1, 1))])
        g = b.build(y)
        out = run_layout(g)
        assert kinds(out).count("transpose") == transposes, (shape4, kinds(out))
        assert value_of(out, "conv").shape == (1, shape4[2], shape4[3], shape4[1])
        assert_same_results(g, out)


def test_softmax_axis_and_float_chain_with_batch():
    b = Builder()
    x = b.input("x", (2, 3, 4, 4))
    y = b.op("conv2d", "conv", [x, b.weight("w", (6, 3, 3, 3))])
    y = b.op("softmax", "sm", [y], axis=1)
    g = b.build(y)
    out = run_layout(g)
    assert op_named(out, "sm").attrs["axis"] == 3
    assert output_of(out, "sm").shape == (2, 2, 2, 6)
    assert_same_results(g, out)


def test_pass_is_idempotent():
    g = conv_chain(spatial_after_pool=2)
    once = run_layout(g)
    twice = run_layout(once)
    assert kinds(twice) == kinds(once)
    assert [v.shape for v in twice.values.values()] == [v.shape for v in once.values.values()]


# ---- integer graphs ------------------------------------------------------------------------------
def test_integer_graph_keeps_requant_attrs_and_moves_weight_quant():
    b = Builder()
    q_in = QuantParams.tensor(0.05, -3)
    x = b.input("x", (1, 3, 6, 6), dtype="int8", quant=q_in)
    wq = QuantParams(tuple(0.01 * (i + 1) for i in range(4)), (0,) * 4, 0)
    w = b.weight("w", (4, 3, 3, 3), dtype="int8", quant=wq)
    bias = b.const("b", np.arange(4, dtype=np.int32))
    req = dict(multiplier=[1 << 30, 1 << 29, 3 << 28, 1 << 30], shift=[-7, -6, -8, -7], input_offset=3,
               output_offset=-1, act_min=-128, act_max=127)
    y = b.op("conv2d", "conv", [x, w, bias], dtype="int8", quant=QuantParams.tensor(0.1, -1),
             pads=[1, 1, 1, 1], **req)
    dq = QuantParams(tuple(0.02 for _ in range(4)), (0,) * 4, 0)
    dw = b.weight("dw", (4, 1, 3, 3), dtype="int8", quant=dq)
    y = b.op("depthwise_conv2d", "dwc", [y, dw], dtype="int8", quant=QuantParams.tensor(0.1, -1),
             **{**req, "input_offset": 1})
    y = b.op("max_pool2d", "pool", [y], kernel=[2, 2], strides=[2, 2], act_min=-128, act_max=127)
    y = b.op("reshape", "flatten", [y], shape=[1, 16])
    g = b.build(y)
    out = run_layout(g)
    conv = op_named(out, "conv")
    assert {k: conv.attrs[k] for k in req} == req
    wv = out.values[conv.inputs[1]]
    assert (wv.shape, wv.layout, wv.quant) == ((4, 3, 3, 3), "OHWI", wq)
    assert np.array_equal(wv.data, g.values["w"].data.transpose(0, 2, 3, 1))
    dwv = value_of(out, "dwc", 1)
    assert (dwv.shape, dwv.layout, dwv.quant.axis, dwv.quant.scale) == ((1, 3, 3, 4), "IHWO", 3, dq.scale)
    assert np.array_equal(dwv.data, g.values["dw"].data.transpose(1, 2, 3, 0))
    assert output_of(out, "pool").shape == (1, 2, 2, 4)
    assert output_of(out, "pool").quant == QuantParams.tensor(0.1, -1)
    # [1,4,2,2] NCHW flatten differs from NHWC order: one transpose back, plus the input's.
    assert kinds(out) == ["transpose", "conv2d", "depthwise_conv2d", "max_pool2d", "transpose", "reshape"]
    assert out.values[out.ops[0].outputs[0]].quant == q_in
    assert_same_results(g, out)


def test_integer_raw_accumulator_graph_computes_the_same():
    b = Builder()
    q = QuantParams.tensor(0.5, 4)
    x = b.input("x", (1, 2, 5, 4), dtype="int8", quant=q)
    p = b.op("pad", "pad", [x], pads=[0, 0, 1, 0, 0, 0, 0, 2], value=4.0)
    m = b.op("max_pool2d", "pool", [p], kernel=[2, 2], strides=[1, 1], act_min=-128, act_max=127)
    c = b.op("concat", "cat", [m, m], axis=1)
    w = b.weight("w", (3, 4, 2, 2), dtype="int8", quant=QuantParams.tensor(0.1, 0))
    y = b.op("conv2d", "conv", [c, w, b.const("b", np.array([5, -5, 9], np.int32))], dtype="int32",
             quant=QuantParams.tensor(0.05, 0), input_offset=-4)
    g = b.build(y)
    out = run_layout(g)
    assert output_of(out, "conv").dtype == "int32" and output_of(out, "conv").layout == "NHWC"
    assert op_named(out, "cat").attrs["axis"] == 3
    assert_same_results(g, out)


def test_non_constant_broadcast_operand_and_graph_output_read_inside():
    b = Builder()
    x = b.input("x", (1, 3, 4, 4))
    per_channel = b.input("gain", (3, 1, 1))
    y = b.op("relu", "relu_in", [x])
    conv = b.op("conv2d", "conv", [y, b.weight("w", (3, 3, 3, 3))], pads=[1, 1, 1, 1])
    y = b.op("mul", "gain_mul", [conv, per_channel])
    y = b.op("add", "residual", [y, conv])
    g = b.build(y, conv)
    out = run_layout(g)
    # x -> NHWC once at the input; relu runs on NHWC; the [3,1,1] input is lifted to [1,1,1,3]
    # (same bytes: a reshape); both graph outputs go back to NCHW.
    assert output_of(out, "relu_in").layout == "NHWC"
    assert value_of(out, "gain_mul", 1).shape == (1, 1, 1, 3)
    assert kinds(out).count("transpose") == 3
    assert out.values[conv].shape == (1, 3, 4, 4) and out.values[conv].layout == "NCHW"
    assert value_of(out, "residual", 1).layout == "NHWC"
    assert_same_results(g, out)


def test_reshape_between_convs_and_float_batch_norm_and_global_pool():
    b = Builder()
    x = b.input("x", (1, 4, 6, 6))
    y = b.op("conv2d", "conv", [x, b.weight("w", (8, 4, 1, 1))])
    y = b.op("reshape", "regroup", [y], shape=[1, 2, 24, 6])
    y = b.op("batch_norm", "bn", [y] + [b.const(f"bn{i}", (RNG.random(2) + 0.5).astype(np.float32))
                                         for i in range(4)])
    y = b.op("conv2d", "conv2", [y, b.weight("w2", (3, 2, 3, 3))])
    y = b.op("global_avg_pool", "gap", [y])
    y = b.op("reshape", "flatten", [y], shape=[1, 3])
    g = b.build(y)
    out = run_layout(g)
    assert output_of(out, "bn").shape == (1, 24, 6, 2) and output_of(out, "bn").layout == "NHWC"
    assert output_of(out, "gap").shape == (1, 1, 1, 3)
    # input, back to NCHW before the 4-D reshape, forward to NHWC after it; the flatten is free.
    assert kinds(out).count("transpose") == 3
    assert_same_results(g, out)


def test_shared_weight_is_transposed_once():
    b = Builder()
    x = b.input("x", (1, 2, 5, 5))
    w = b.weight("w", (2, 2, 3, 3))
    y = b.op("conv2d", "c1", [x, w], pads=[1, 1, 1, 1])
    y = b.op("conv2d", "c2", [y, w], pads=[1, 1, 1, 1])
    g = b.build(y)
    out = run_layout(g)
    assert op_named(out, "c1").inputs[1] == op_named(out, "c2").inputs[1] == "w"
    assert out.values["w"].layout == "OHWI"
    assert np.array_equal(out.values["w"].data, g.values["w"].data.transpose(0, 2, 3, 1))
    assert_same_results(g, out)


# ---- real models ---------------------------------------------------------------------------------
# (model, transposes the semantics need after layout): the only one left is an NCHW graph input with
# C > 1 and H*W > 1 going to NHWC. KWS's [1,1,49,10] input is a reshape; every flatten after global
# pooling is a plain reshape; tflite2onnx's Transpose before the flatten vanishes.
REAL_MODELS = [
    ("kws/kws_ref_model_qdq.onnx", 0),
    ("kws/kws_ref_model_dequant_float.onnx", 0),
    ("vww/vww_96_int8_qdq.onnx", 1),
    ("vww/vww_96_float.onnx", 1),
    ("ic/pretrainedResnet_quant_qdq.onnx", 1),
    ("ic/pretrainedResnet.onnx", 1),
    ("ad/ad01_int8_qdq.onnx", 0),
    ("sww/str_ww_ref_model_qdq.onnx", 1),
]


def lowered_model(path: str) -> Graph:
    """The model after the default pipeline up to (not including) layout."""
    from tinyc.frontend import load_model
    from tinyc.passes import DEFAULT_PIPELINE
    assert DEFAULT_PIPELINE[-1] == "layout"
    graph = load_model(MODELS / path)
    for name in DEFAULT_PIPELINE[:-1]:
        graph = get(name)(graph)
    verify(graph)
    return graph


def as_nchw(array: np.ndarray, value: Value) -> np.ndarray:
    return array.transpose(0, 3, 1, 2) if value.layout == "NHWC" else array


@pytest.mark.parametrize("path,transposes", REAL_MODELS)
def test_real_model_keeps_only_needed_transposes_and_every_result(path, transposes):
    if not (MODELS / path).exists():
        pytest.skip(f"{path} not in ../shared/models")
    before = lowered_model(path)
    out = run_layout(before)
    moves = [op for op in out.ops if op.kind == "transpose"]
    assert len(moves) == transposes, [(op.name, op.attrs) for op in moves]
    for op in moves:  # the one left converts a graph input
        assert op.inputs[0] in out.inputs and op.attrs["perm"] == [0, 2, 3, 1]
    for op in out.ops:
        if op.kind in ("conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d"):
            assert out.values[op.inputs[0]].layout == "NHWC", op.name
            assert out.values[op.outputs[0]].layout == "NHWC", op.name
        if op.kind in ("conv2d", "depthwise_conv2d"):
            assert out.values[op.inputs[1]].layout == {"conv2d": "OHWI", "depthwise_conv2d": "IHWO"}[op.kind]
        if op.kind == "reshape":  # the model's own, or the same-bytes conversion of an input
            assert op.name in {o.name for o in before.ops if o.kind == "reshape"} or \
                op.inputs[0] in out.inputs, op.name
    # Every activation both graphs hold is the same tensor (NHWC ones transposed back).
    rng = np.random.default_rng(1)
    feeds = {}
    for name in before.inputs:
        v = before.values[name]
        feeds[name] = (rng.standard_normal(v.shape).astype(np.float32) if v.dtype == "float32"
                       else rng.integers(-128, 128, size=v.shape).astype(v.dtype))
    from tinyc.interpreter import run_trace
    want, got = run_trace(before, feeds), run_trace(out, feeds)
    compared = 0
    for op in before.ops:
        name = op.outputs[0]
        if name in got and out.values[name].size == before.values[name].size:
            np.testing.assert_array_equal(as_nchw(got[name], out.values[name]), want[name], err_msg=name)
            compared += 1
    assert compared >= len([op for op in before.ops if op.kind not in ("reshape", "transpose")])


# ---- the clean-up revisits only what changed, with the result of rescanning everything ------------
# simplify_moves rewrites the first op (in op order) a rule applies to, drops what is dead and
# repeats. It finds that op with a heap of the ops next to earlier changes and drops dead ops as they
# appear; the definition it must agree with rescans the whole graph, with use-lists built afresh,
# after every rewrite and then runs Graph.remove_dead (what it did before: quadratic in models with a
# transpose per layer).

def rescanning_simplify_moves(g: Graph) -> None:
    while True:
        ix = IndexedGraph(g)
        if not any(_simplify(ix, op, lambda op: None) for op in list(g.ops)):
            return
        g.remove_dead()


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MOVES = ("transpose", "reshape", "quantize", "dequantize", "identity", "relu", "conv2d", "add")


@PROPERTY
@given(graphs(max_ops=16, kinds=MOVES))
def test_simplify_moves_equals_rescanning_after_every_rewrite(graph):
    heap, rescan = graph.copy(), graph.copy()
    simplify_moves(heap)
    rescanning_simplify_moves(rescan)
    assert_graphs_equal(heap, rescan)


@PROPERTY
@given(graphs(max_ops=12))
def test_layout_pass_equals_its_rescanning_form(graph):
    with mock.patch.object(layout_pass, "simplify_moves", rescanning_simplify_moves):
        rescanned = to_nhwc(graph)
    assert_graphs_equal(to_nhwc(graph), rescanned)
