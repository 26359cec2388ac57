"""canonicalize: each rewrite on hand-built graphs, checked op by op, numerically where data changes."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tinyc.ir import QuantParams
from tinyc.passes import get
from tinyc.verify import verify

from pass_graphs import Builder, evaluate, kinds, op_named, qt

canonicalize = get("canonicalize")
rng = np.random.default_rng(7)


def rand(*shape):
    return rng.standard_normal(shape).astype(np.float32)


def run(graph):
    verify(graph)
    out = canonicalize(graph)
    verify(out)
    return out


def same_numbers(before, after, feeds, rtol=1e-5, atol=1e-5):
    want, got = evaluate(before, feeds), evaluate(after, feeds)
    assert want.keys() == got.keys()
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=rtol, atol=atol)


# ---- identity ---------------------------------------------------------------------------------

def test_identities_removed_inside_and_at_output():
    b = Builder()
    x = b.input("x", [1, 4])
    i1 = b.op("identity", "drop", [x])
    r = b.op("relu", "act", [i1])
    b.op("identity", "final", [r], out="y")
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["relu"]
    act = op_named(out, "act")
    assert act.inputs == ["x"] and act.outputs == ["y"]
    assert out.outputs == ["y"] and "act_out" not in out.values
    assert kinds(g) == ["identity", "relu", "identity"]  # the caller's graph is untouched


def test_identity_from_input_to_output_is_kept():
    b = Builder()
    x = b.input("x", [2])
    b.op("identity", "copy", [x], out="y")
    out = run(b.output("y"))
    assert kinds(out) == ["identity"]


# ---- gemm -------------------------------------------------------------------------------------

def test_gemm_trans_b_keeps_weight_and_bias():
    b = Builder()
    x = b.input("x", [2, 3])
    w = b.const("w", rand(4, 3))
    c = b.const("c", rand(4))
    b.op("gemm", "fc", [x, w, c], out="y", trans_b=True)
    g = b.output("y")
    out = run(g)
    fc = op_named(out, "fc")
    assert fc.kind == "fully_connected" and fc.inputs == ["x", "w", "c"] and fc.attrs == {}
    same_numbers(g, out, {"x": rand(2, 3)})


def test_gemm_folds_alpha_beta_and_transposes_weight():
    b = Builder()
    x = b.input("x", [2, 3])
    w_data, c_data = rand(3, 4), rand(1, 4)
    w = b.const("w", w_data)
    c = b.const("c", c_data)
    b.op("gemm", "fc", [x, w, c], out="y", alpha=2.0, beta=0.5)
    g = b.output("y")
    out = run(g)
    fc = op_named(out, "fc")
    assert fc.kind == "fully_connected"
    np.testing.assert_array_equal(out.values[fc.inputs[1]].data, (w_data.T * 2).astype(np.float32))
    np.testing.assert_array_equal(out.values[fc.inputs[2]].data, (c_data[0] * 0.5).astype(np.float32))
    assert "w" not in out.values and "c" not in out.values  # unused constants dropped
    same_numbers(g, out, {"x": rand(2, 3)})


def test_gemm_with_rows_of_bias_that_differ_stays_gemm():
    b = Builder()
    x = b.input("x", [2, 3])
    b.op("gemm", "fc", [x, b.const("w", rand(4, 3)), b.const("c", rand(2, 4))], out="y", trans_b=True)
    assert kinds(run(b.output("y"))) == ["gemm"]


def test_gemm_trans_a_stays_gemm():
    b = Builder()
    x = b.input("x", [3, 2])
    b.op("gemm", "fc", [x, b.const("w", rand(3, 4))], out="y", trans_a=True)
    assert kinds(run(b.output("y"))) == ["gemm"]


def qdq_gemm(trans_b, alpha=1.0, axis=None, shared=False):
    """x int8 -> dequantize -> gemm(w = dequantize(int8), c = dequantize(int32)) -> quantize."""
    b = Builder()
    xq = b.input("xq", [1, 3], "int8", qt(0.5, 1))
    wshape = (4, 3) if trans_b else (3, 4)
    w_data = rng.integers(-127, 128, wshape).astype(np.int8)
    if axis is None:
        wq = qt(0.25, 0)
    else:
        n = wshape[axis]
        wq = QuantParams(tuple(0.1 * (i + 1) for i in range(n)), (0,) * n, axis)
    w = b.dq(b.const("w", w_data, wq), name="w_dq")
    bias = b.dq(b.const("bias", np.arange(4, dtype=np.int32), qt(0.125, 0)), name="b_dq")
    x = b.dq(xq)
    f = b.op("gemm", "fc", [x, w, bias], trans_b=trans_b, alpha=alpha)
    outs = [b.q(f, 0.3, -2, out="y")]
    if shared:
        f2 = b.op("gemm", "fc2", [x, w], trans_b=trans_b)
        outs.append(b.q(f2, 0.3, -2, out="y2"))
    return b.output(*outs), w_data


def test_qdq_gemm_transposes_int8_weight_and_moves_axis():
    g, w_data = qdq_gemm(trans_b=False, axis=1)
    out = run(g)
    fc = op_named(out, "fc")
    assert fc.kind == "fully_connected" and fc.inputs == ["xq_dq", "w_dq", "bias_dq"]
    dq = op_named(out, "w_dq")  # the weight's dequantize is edited in place and keeps its name
    w = out.values[dq.inputs[0]]
    assert w.dtype == "int8" and w.shape == (4, 3)
    np.testing.assert_array_equal(w.data, w_data.T)
    assert w.quant == QuantParams((0.1, 0.2, 0.30000000000000004, 0.4), (0,) * 4, 0)
    assert out.values["w_dq"].shape == (4, 3)
    same_numbers(g, out, {"xq": rng.integers(-128, 128, (1, 3)).astype(np.int8)}, atol=0)


def test_qdq_gemm_shared_weight_gets_its_own_dequantize():
    g, w_data = qdq_gemm(trans_b=False, shared=True)
    out = run(g)
    fc, fc2 = op_named(out, "fc"), op_named(out, "fc2")
    assert fc.kind == fc2.kind == "fully_connected"
    assert len([op for op in out.ops if op.kind == "dequantize"]) == 4  # x, bias, two weights
    for op in (fc, fc2):
        np.testing.assert_array_equal(evaluate_const(out, op.inputs[1]), (w_data.T * 0.25).astype(np.float32))
    same_numbers(g, out, {"xq": rng.integers(-128, 128, (1, 3)).astype(np.int8)}, atol=0)


def evaluate_const(graph, name):
    """The float value of a const-like input (a constant, or dequantize of a constant)."""
    for op in graph.ops:
        if op.outputs[0] == name and op.kind == "dequantize":
            src = graph.values[op.inputs[0]]
            q = src.quant
            return ((src.data.astype(np.float32) - np.float32(q.zero_point[0])) * np.float32(q.scale[0]))
    return graph.values[name].data


def test_qdq_gemm_with_alpha_stays_gemm():
    g, _ = qdq_gemm(trans_b=True, alpha=2.0)
    assert "gemm" in kinds(run(g))


# ---- matmul + add -----------------------------------------------------------------------------

@pytest.mark.parametrize("bias_first,bias_shape", [(False, (10,)), (True, (1, 10))])
def test_matmul_add_becomes_fully_connected(bias_first, bias_shape):
    b = Builder()
    x = b.input("x", [1, 16])
    w_data = rand(16, 10)
    m = b.op("matmul", "mm", [x, b.const("w", w_data)])
    bias = b.const("bias", rand(*bias_shape))
    b.op("add", "plus", [bias, m] if bias_first else [m, bias], out="y")
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["fully_connected"]
    fc = op_named(out, "mm")
    assert fc.outputs == ["y"]
    np.testing.assert_array_equal(out.values[fc.inputs[1]].data, w_data.T)
    assert out.values[fc.inputs[2]].shape == (10,)
    same_numbers(g, out, {"x": rand(1, 16)})


def test_matmul_alone_or_with_activation_input_add_stays():
    b = Builder()
    x = b.input("x", [1, 4])
    z = b.input("z", [1, 3])
    m = b.op("matmul", "mm", [x, b.const("w", rand(4, 3))])
    b.op("add", "plus", [m, z], out="y")
    assert kinds(run(b.output("y"))) == ["matmul", "add"]


# ---- conv + add -------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 1, 1), (1, 4, 1, 1)])
@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_add_per_channel_folds_into_bias(shape, with_bias):
    b = Builder()
    x = b.input("x", [1, 2, 5, 5])
    ins = [x, b.const("w", rand(4, 2, 3, 3), layout="OIHW")]
    if with_bias:
        ins.append(b.const("b", rand(4)))
    c = b.op("conv2d", "conv", ins)
    b.op("add", "plus", [c, b.const("k", rand(*shape))], out="y")
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["conv2d"]
    conv = op_named(out, "conv")
    assert conv.outputs == ["y"] and len(conv.inputs) == 3
    same_numbers(g, out, {"x": rand(1, 2, 5, 5)})


def test_conv_add_of_spatial_constant_is_not_folded():
    b = Builder()
    x = b.input("x", [1, 2, 3, 3])
    c = b.op("conv2d", "conv", [x, b.const("w", rand(4, 2, 1, 1), layout="OIHW")])
    b.op("add", "plus", [c, b.const("k", rand(1, 1, 3, 3))], out="y")
    assert kinds(run(b.output("y"))) == ["conv2d", "add"]


# ---- batch_norm -------------------------------------------------------------------------------

def bn_params(b, c, prefix="bn"):
    return [b.const(f"{prefix}_{n}", d) for n, d in
            [("g", rand(c)), ("b", rand(c)), ("m", rand(c)), ("v", np.abs(rand(c)) + 0.5)]]


def test_batch_norm_folds_into_conv():
    b = Builder()
    x = b.input("x", [1, 3, 6, 6])
    c = b.op("conv2d", "conv", [x, b.const("w", rand(4, 3, 3, 3), layout="OIHW"), b.const("b", rand(4))],
             pads=[1, 1, 1, 1])
    b.op("batch_norm", "bn", [c] + bn_params(b, 4), out="y", epsilon=1e-3)
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["conv2d"]
    conv = op_named(out, "conv")
    assert conv.outputs == ["y"] and out.values[conv.inputs[1]].layout == "OIHW"
    same_numbers(g, out, {"x": rand(1, 3, 6, 6)})


def test_batch_norm_folds_into_fully_connected_without_bias():
    b = Builder()
    x = b.input("x", [2, 5])
    f = b.op("fully_connected", "fc", [x, b.const("w", rand(3, 5))])
    b.op("batch_norm", "bn", [f] + bn_params(b, 3), out="y")
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["fully_connected"]
    same_numbers(g, out, {"x": rand(2, 5)})


def test_batch_norm_on_shared_conv_output_becomes_mul_add():
    b = Builder()
    x = b.input("x", [1, 2, 4, 4])
    c = b.op("conv2d", "conv", [x, b.const("w", rand(3, 2, 1, 1), layout="OIHW")])
    bn = b.op("batch_norm", "bn", [c] + bn_params(b, 3))
    b.op("add", "sum", [bn, c], out="y")
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["conv2d", "mul", "add", "add"]
    mul = op_named(out, "bn")
    assert mul.kind == "mul" and out.values[mul.inputs[1]].shape == (3, 1, 1)
    same_numbers(g, out, {"x": rand(1, 2, 4, 4)})


def test_batch_norm_on_graph_input_2d():
    b = Builder()
    x = b.input("x", [2, 3])
    b.op("batch_norm", "bn", [x] + bn_params(b, 3), out="y")
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["mul", "add"]
    assert out.values[op_named(out, "bn").inputs[1]].shape == (3,)
    assert op_named(out, "bn_shift").outputs == ["y"]
    same_numbers(g, out, {"x": rand(2, 3)})


# ---- single-op rewrites -----------------------------------------------------------------------

def test_global_avg_pool_becomes_avg_pool():
    b = Builder()
    x = b.input("x", [1, 3, 5, 7])
    b.op("global_avg_pool", "gap", [x], out="y")
    g = b.output("y")
    out = run(g)
    gap = op_named(out, "gap")
    assert gap.kind == "avg_pool2d" and gap.attrs == {"kernel": [5, 7]}
    same_numbers(g, out, {"x": rand(1, 3, 5, 7)})


def test_grouped_conv_with_group_equal_channels_becomes_depthwise():
    b = Builder()
    x = b.input("x", [1, 4, 5, 5])
    w = b.const("w", rand(8, 1, 3, 3), layout="OIHW")
    b.op("conv2d", "dw", [x, w, b.const("b", rand(8))], out="y", group=4, pads=[1, 1, 1, 1],
         strides=[2, 2])
    g = b.output("y")
    out = run(g)
    dw = op_named(out, "dw")
    assert dw.kind == "depthwise_conv2d"
    assert dw.attrs == {"pads": [1, 1, 1, 1], "strides": [2, 2], "depth_multiplier": 2}
    assert dw.inputs == ["x", "w", "b"] and out.values["w"].shape == (8, 1, 3, 3)
    same_numbers(g, out, {"x": rand(1, 4, 5, 5)})


def test_conv_with_smaller_group_stays_conv():
    b = Builder()
    x = b.input("x", [1, 4, 3, 3])
    b.op("conv2d", "gc", [x, b.const("w", rand(4, 2, 1, 1), layout="OIHW")], out="y", group=2)
    assert kinds(run(b.output("y"))) == ["conv2d"]


def test_integer_grouped_conv_becomes_depthwise():
    b = Builder()
    x = b.input("x", [1, 3, 4, 4], "int8", qt(0.5, -3))
    w = b.const("w", np.ones((3, 1, 3, 3), np.int8), QuantParams((0.1, 0.2, 0.3), (0, 0, 0), 0), "OIHW")
    bias = b.const("b", np.zeros(3, np.int32), QuantParams((0.05, 0.1, 0.15), (0, 0, 0), 0))
    b.op("conv2d", "dw", [x, w, bias], out="y", dtype="int8", quant=qt(0.2, 1), group=3)
    out = run(b.output("y"))
    assert op_named(out, "dw").kind == "depthwise_conv2d"
    assert op_named(out, "dw").attrs == {"depth_multiplier": 1}


def test_reshape_chain_collapses_and_same_shape_reshape_goes():
    b = Builder()
    x = b.input("x", [1, 2, 3, 4])
    r1 = b.op("reshape", "r1", [x], shape=[1, 24])
    r2 = b.op("reshape", "r2", [r1], shape=[2, 12])
    r3 = b.op("reshape", "r3", [r2], shape=[2, 12])
    b.op("relu", "act", [r3], out="y")
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["reshape", "relu"]
    last = op_named(out, "r3")  # the outer reshape survives, reading the chain's input
    assert last.inputs == ["x"] and last.attrs == {"shape": [2, 12]}
    assert op_named(out, "act").inputs == [last.outputs[0]]
    same_numbers(g, out, {"x": rand(1, 2, 3, 4)})


def test_reshape_to_same_shape_at_graph_output_hands_over_its_name():
    b = Builder()
    x = b.input("x", [2, 3])
    r = b.op("relu", "act", [x])
    b.op("reshape", "same", [r], out="y", shape=[2, 3])
    out = run(b.output("y"))
    assert kinds(out) == ["relu"] and op_named(out, "act").outputs == ["y"]


def test_clip_0_6_stays_clip():
    b = Builder()
    x = b.input("x", [4])
    b.op("clip", "c", [x], out="y", min=0.0, max=6.0)
    out = run(b.output("y"))
    assert kinds(out) == ["clip"] and op_named(out, "c").attrs == {"min": 0.0, "max": 6.0}


# ---- real float models --------------------------------------------------------------------------

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
FLOAT_MODELS = {
    "kws": "mlperf_tiny/kws/kws_ref_model_dequant_float.onnx",
    "vww": "mlperf_tiny/vww/vww_96_float.onnx",
    "ic": "mlperf_tiny/ic/pretrainedResnet.onnx",
    "ad": "mlperf_tiny/ad/ad01_fp32.onnx",
    "mnist": "zoo/mnist-8.onnx",
}


def load(path):
    frontend = pytest.importorskip("tinyc.frontend")
    if not hasattr(frontend, "load_model"):
        pytest.skip("the ONNX frontend (tinyc.frontend.load_model) is not available yet")
    graph = frontend.load_model(path)
    verify(graph)
    return graph


@pytest.mark.parametrize("model", sorted(FLOAT_MODELS))
def test_float_model_canonical_and_fused_with_same_outputs(model):
    from tinyc.interpreter import run as interpret
    g = load(SHARED / FLOAT_MODELS[model])
    out = get("fuse")(run(g))
    verify(out)
    assert not {"identity", "gemm", "global_avg_pool", "batch_norm", "relu"} & set(kinds(out))
    feeds = {n: rand(*g.values[n].shape) for n in g.inputs}
    want, got = interpret(g, feeds), interpret(out, feeds)
    for name in g.outputs:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-4, atol=1e-5)


def test_mnist_becomes_conv_pool_fully_connected():
    out = get("fuse")(run(load(SHARED / FLOAT_MODELS["mnist"])))
    assert kinds(out) == ["conv2d", "max_pool2d", "conv2d", "max_pool2d", "reshape", "fully_connected"]
    assert [op.attrs.get("activation") for op in out.ops if op.kind == "conv2d"] == ["relu", "relu"]
    assert all(len(op.inputs) == 3 for op in out.ops if op.kind in ("conv2d", "fully_connected"))


def test_transpose_of_unit_axes_becomes_reshape_and_collapses():
    b = Builder()
    x = b.input("x", [1, 6, 1, 1])
    t = b.op("transpose", "nhwc", [x], perm=[0, 2, 3, 1])
    b.op("reshape", "flat", [t], out="y", shape=[1, 6])
    g = b.output("y")
    out = run(g)
    assert kinds(out) == ["reshape"] and op_named(out, "flat").inputs == ["x"]
    same_numbers(g, out, {"x": rand(1, 6, 1, 1)}, atol=0)


def test_transpose_that_reorders_data_stays():
    b = Builder()
    x = b.input("x", [1, 2, 1, 3])
    b.op("transpose", "tr", [x], out="y", perm=[0, 3, 2, 1])
    assert kinds(run(b.output("y"))) == ["transpose"]


def test_qdq_matmul_add_moves_int8_weight_and_drops_replaced_dequantize():
    b = Builder()
    xq = b.input("xq", [1, 4], "int8", qt(0.5, 0))
    w_data = rng.integers(-127, 128, (4, 3)).astype(np.int8)
    w = b.dq(b.const("w", w_data, QuantParams((0.1, 0.2, 0.3), (0, 0, 0), 1)), name="dq_w")
    bias = b.dq(b.const("bias", np.array([[5, -6, 7]], np.int32), QuantParams((0.05, 0.1, 0.15), (0, 0, 0), 1)),
                name="dq_bias")
    m = b.op("matmul", "mm", [b.dq(xq), w])
    g = b.output(b.q(b.op("add", "plus", [m, bias]), 0.2, 0, out="y"))
    out = run(g)
    assert kinds(out) == ["dequantize", "dequantize", "dequantize", "fully_connected", "quantize"]
    fc = op_named(out, "mm")
    w_new = out.values[op_named(out, "dq_w").inputs[0]]
    np.testing.assert_array_equal(w_new.data, w_data.T)
    assert w_new.quant.axis == 0
    b_dq = [op for op in out.ops if op.outputs[0] == fc.inputs[2]][0]
    b_new = out.values[b_dq.inputs[0]]
    assert b_new.shape == (3,) and b_new.quant == QuantParams((0.05, 0.1, 0.15), (0, 0, 0), 0)
    np.testing.assert_array_equal(b_new.data, [5, -6, 7])
    assert "dq_bias" not in [op.name for op in out.ops] and "bias" not in out.values
    same_numbers(g, out, {"xq": rng.integers(-128, 128, (1, 4)).astype(np.int8)}, atol=0)
