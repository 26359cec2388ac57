"""The ONNX frontend: real models (float, QDQ, QOperator) and small synthetic ones built with
onnx.helper, checked op by op, attribute by attribute and, where the reference interpreter exists,
numerically against onnxruntime."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper, shape_inference

from tinyc.errors import TinycError, UnsupportedError
from tinyc.frontend import find_unsupported, import_model, load_model
from tinyc.ir import QuantParams
from tinyc.verify import verify

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
MLPERF = MODELS / "mlperf_tiny"
ALL_MODELS = sorted(MODELS.rglob("*.onnx"))
FLOAT_MODELS = [MLPERF / "kws/kws_ref_model_dequant_float.onnx", MLPERF / "ic/pretrainedResnet.onnx",
                MLPERF / "vww/vww_96_float.onnx", MLPERF / "ad/ad01_fp32.onnx", MODELS / "zoo/mnist-8.onnx"]
F, I8, U8, I32, I64 = TensorProto.FLOAT, TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32, TensorProto.INT64
rng = np.random.default_rng(7)


# ---- helpers -------------------------------------------------------------------------------------------
def make_model(nodes, inputs, outputs, inits=(), opset=13, ms=False):
    """A model from nodes; inputs/outputs are (name, elem type, shape) with shape None = unknown."""
    graph = helper.make_graph(
        nodes, "test",
        [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    return model


def kinds(graph):
    return [op.kind for op in graph.ops]


def op_named(graph, name):
    (op,) = [op for op in graph.ops if op.name == name]
    return op


def producer(graph, value_name):
    return graph.producers()[value_name]


def interpreter():
    """The reference interpreter (written separately); tests that need it skip until it exists."""
    return pytest.importorskip("tinyc.interpreter")


def ort_run(model, feeds):
    ort = pytest.importorskip("onnxruntime")
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


def assert_matches_ort(model, feeds, graph=None, atol=1e-5):
    run = interpreter().run
    graph = graph or import_model(model)
    ours = run(graph, feeds)
    ref = ort_run(model, feeds)
    assert list(ours) == list(ref)
    for name in ref:
        assert ours[name].shape == ref[name].shape, name
        np.testing.assert_allclose(ours[name], ref[name], atol=atol, rtol=1e-5, err_msg=name)
    return graph


def one_line(exc_info) -> str:
    text = str(exc_info.value)
    assert "\n" not in text and text
    return text


# ---- every real model ------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ALL_MODELS, ids=lambda p: p.name)
def test_real_model_imports_and_keeps_its_interface(path):
    model = onnx.load(str(path))
    graph = load_model(path)
    verify(graph)
    initializers = {t.name for t in model.graph.initializer}
    onnx_inputs = [i for i in model.graph.input if i.name not in initializers]
    assert graph.inputs == [i.name for i in onnx_inputs]
    assert graph.outputs == [o.name for o in model.graph.output]
    for vi, meta in zip(onnx_inputs, graph.meta["onnx_inputs"]):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        assert meta == {"name": vi.name, "shape": dims,
                        "dtype": str(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))}
        assert graph.values[vi.name].shape == tuple(dims)
        assert graph.values[vi.name].dtype == meta["dtype"]
    for vi, meta in zip(model.graph.output, graph.meta["onnx_outputs"]):
        assert meta["dtype"] == str(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
        assert list(graph.values[vi.name].shape) == meta["shape"]
    assert graph.meta["opset"] == model.opset_import[0].version
    assert graph.meta["source"] == str(path)
    # Every ONNX tensor that survives keeps the shape ONNX shape inference gives it.
    inferred = shape_inference.infer_shapes(model)
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim]
        if vi.name in graph.values and dims and all(dims):
            assert graph.values[vi.name].shape == tuple(dims), vi.name
    # Op names are ONNX node names.
    node_names = {n.name for n in model.graph.node}
    assert {op.name for op in graph.ops if op.kind not in ("reshape", "rescale")} <= node_names


def test_kws_qoperator_is_integer_convs_and_one_fully_connected():
    graph = load_model(MLPERF / "kws/kws_ref_model_qop.onnx")
    counts = Counter(kinds(graph))
    assert counts["conv2d"] + counts["depthwise_conv2d"] == 9
    assert counts["fully_connected"] == 1
    assert counts["softmax"] == 1 and counts["avg_pool2d"] == 1
    x = graph.values["input_1"]
    assert x.dtype == "int8" and x.quant.zero_point == (83,)
    assert x.quant.scale[0] == pytest.approx(0.584703, rel=1e-6)
    assert x.quant.scale[0] == float(np.float32(0.5847029))  # the model's float32, exactly
    y = graph.values["Identity"]
    assert y.dtype == "int8" and y.quant == QuantParams.tensor(1 / 256, -128)
    first = op_named(graph, "op0_CONV_2D_11")
    assert first.inputs[0] == "input_1"
    w, b = graph.values[first.inputs[1]], graph.values[first.inputs[2]]
    assert w.dtype == "int8" and w.shape == (64, 1, 10, 4) and w.layout == "OIHW"
    assert w.quant.axis == 0 and len(w.quant.scale) == 64 and set(w.quant.zero_point) == {0}
    assert b.dtype == "int32" and b.quant.axis == 0 and set(b.quant.zero_point) == {0}
    assert b.quant.scale == pytest.approx([x.quant.scale[0] * s for s in w.quant.scale], rel=1e-12)
    assert first.attrs["pads"] == [4, 1, 5, 1] and first.attrs["strides"] == [2, 2]
    dw = op_named(graph, "op1_DEPTHWISE_CONV_2D_22")
    assert dw.kind == "conv2d" and dw.attrs["group"] == 64  # canonicalize makes it depthwise
    fc = op_named(graph, "op11_FULLY_CONNECTED_120")
    fw = graph.values[fc.inputs[1]]
    assert fw.shape == (12, 64) and fw.quant.axis is None and fw.quant.zero_point == (0,)
    assert graph.values[fc.outputs[0]].quant.zero_point == (14,)


def test_kws_qdq_keeps_quantize_and_dequantize_faithfully():
    graph = load_model(MLPERF / "kws/kws_ref_model_qdq.onnx")
    counts = Counter(kinds(graph))
    assert counts["quantize"] == 13 and counts["dequantize"] == 33 and counts["conv2d"] == 9
    x = graph.values["input_1"]
    assert x.quant.zero_point == (83,) and x.quant.scale[0] == float(np.float32(0.5847029))
    weight_dq = op_named(graph, "DequantizeLinear_9")
    w = graph.values[weight_dq.inputs[0]]
    assert w.is_const and w.dtype == "int8" and w.quant.axis == 0 and len(w.quant.scale) == 64
    assert w.layout == "OIHW" and graph.values[weight_dq.outputs[0]].layout == "OIHW"
    bias = graph.values[op_named(graph, "DequantizeLinear_14").inputs[0]]
    assert bias.dtype == "int32" and bias.quant.axis == 0
    q = graph.values[op_named(graph, "QuantizeLinear_22").outputs[0]]
    assert q.dtype == "int8" and q.quant == QuantParams.tensor(float(np.float32(0.0787254)), -128)


def test_ic_qoperator_adds_are_integer_with_their_quantisation():
    graph = load_model(MLPERF / "ic/pretrainedResnet_quant_qop.onnx")
    adds = [op for op in graph.ops if op.kind == "add"]
    assert [op.name for op in adds] == ["op3_ADD_42", "op7_ADD_84", "op11_ADD_126"]
    first = adds[0]
    a, b, y = (graph.values[n] for n in first.inputs + first.outputs)
    assert (a.name, b.name) == ("t22_q_9", "t24_q_31")
    assert a.quant.zero_point == (-128,) and b.quant.zero_point == (4,)
    assert b.quant.scale[0] == float(np.float32(0.10419496))
    assert y.dtype == "int8" and y.quant == QuantParams.tensor(float(np.float32(0.050945673)), -128)
    assert "rescale" not in kinds(graph)  # every pool keeps its quantisation in this model


def test_mnist8_is_upgraded_and_its_initializer_inputs_are_constants():
    graph = load_model(MODELS / "zoo/mnist-8.onnx")
    assert graph.meta["opset"] == 8
    assert graph.inputs == ["Input3"]
    conv = op_named(graph, "Convolution28")
    w = graph.values[conv.inputs[1]]
    assert w.is_const and w.name == "Parameter5" and w.layout == "OIHW"
    assert conv.attrs["pads"] == [2, 2, 2, 2]  # auto_pad SAME_UPPER, 5x5 kernel
    assert kinds(graph) == ["conv2d", "add", "relu", "max_pool2d", "conv2d", "add", "relu", "max_pool2d",
                            "reshape", "matmul", "add"]
    # The Reshape of the constant Parameter193 was folded at import.
    matmul = op_named(graph, "Times212")
    assert graph.values[matmul.inputs[1]].is_const and graph.values[matmul.inputs[1]].shape == (256, 10)


@pytest.mark.parametrize("path", FLOAT_MODELS, ids=lambda p: p.name)
def test_float_model_matches_onnxruntime(path):
    model = onnx.load(str(path))
    graph = load_model(path)
    feeds = {n: rng.standard_normal(graph.values[n].shape).astype(np.float32) for n in graph.inputs}
    assert_matches_ort(model, feeds, graph, atol=1e-4)


# ---- constant folding -----------------------------------------------------------------------------------
def test_pytorch_style_shape_subgraph_is_folded_into_reshape_and_pad():
    """Shape/Gather/Unsqueeze/Concat/Cast/ConstantOfShape/Slice/Range/arithmetic computing a Pad's
    pads and a Reshape's shape, as torch.onnx exports F.pad and x.view(x.size(0), -1)."""
    i64 = lambda name, v: (name, np.array(v, dtype=np.int64))  # noqa: E731
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"], name="Shape_0"),
        helper.make_node("Gather", ["shape", "zero"], ["batch"], axis=0, name="Gather_1"),
        helper.make_node("Unsqueeze", ["batch", "axes0"], ["batch1"], name="Unsqueeze_2"),
        helper.make_node("Concat", ["batch1", "minus_one"], ["view_shape"], axis=0, name="Concat_3"),
        # pads built from a reversed, transposed [[4,3],[2,1],[0,0],[0,0]] like F.pad's export
        helper.make_node("Size", ["shape"], ["rank"], name="Size_4"),
        helper.make_node("Mul", ["rank", "two"], ["n_pads"], name="Mul_5"),
        helper.make_node("Sub", ["n_pads", "four"], ["n_zeros"], name="Sub_6"),
        helper.make_node("Unsqueeze", ["n_zeros", "axes0"], ["zeros_shape"], name="Unsqueeze_7"),
        helper.make_node("ConstantOfShape", ["zeros_shape"], ["zeros"],
                         value=numpy_helper.from_array(np.array([0], np.int64)), name="ConstantOfShape_8"),
        helper.make_node("Range", ["start", "limit", "delta"], ["range"], name="Range_9"),
        helper.make_node("Concat", ["range", "zeros"], ["flat"], axis=0, name="Concat_10"),
        helper.make_node("Reshape", ["flat", "pairs"], ["pairs2"], name="Reshape_11"),
        helper.make_node("Slice", ["pairs2", "s_start", "s_end", "axes0", "s_step"], ["rev"], name="Slice_12"),
        helper.make_node("Transpose", ["rev"], ["revT"], perm=[1, 0], name="Transpose_13"),
        helper.make_node("Reshape", ["revT", "minus_one"], ["pads_f"], name="Reshape_14"),
        helper.make_node("Cast", ["pads_f"], ["pads"], to=TensorProto.INT64, name="Cast_15"),
        helper.make_node("Pad", ["x", "pads", "pad_value"], ["padded"], mode="constant", name="Pad_16"),
        helper.make_node("Relu", ["padded"], ["relu"], name="Relu_17"),
        helper.make_node("Reshape", ["relu", "view_shape"], ["y"], name="Reshape_18"),
    ]
    inits = [i64("zero", 0), i64("axes0", [0]), i64("minus_one", [-1]), i64("two", 2), i64("four", 4),
             i64("start", 4), i64("limit", 0), i64("delta", -1), i64("pairs", [-1, 2]),
             i64("s_start", [-1]), i64("s_end", [-(2 ** 62)]), i64("s_step", [-1]),
             ("pad_value", np.array(0.5, np.float32))]
    model = make_model(nodes, [("x", F, [2, 3, 4, 5])], [("y", F, None)], inits, opset=13)
    graph = import_model(model)
    assert kinds(graph) == ["pad", "relu", "reshape"]
    pad = op_named(graph, "Pad_16")
    # range(4, 0, -1) + zeros -> [[4,3],[2,1],[0,0],[0,0]] reversed and transposed: begins [0,0,2,4], ends [0,0,1,3]
    assert pad.attrs == {"pads": [0, 0, 2, 4, 0, 0, 1, 3], "value": 0.5}
    assert graph.values["padded"].shape == (2, 3, 7, 12)
    assert op_named(graph, "Reshape_18").attrs["shape"] == [2, 252]
    assert not any(v.dtype == "int64" for v in graph.values.values())
    assert_matches_ort(model, {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32)}, graph)


def test_unnamed_nodes_get_unique_op_type_names():
    nodes = [helper.make_node("Relu", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["b"]),
             helper.make_node("Sigmoid", ["b"], ["y"])]
    graph = import_model(make_model(nodes, [("x", F, [1, 4])], [("y", F, [1, 4])]))
    assert [op.name for op in graph.ops] == ["Relu_0", "Relu_1", "Sigmoid_0"]


# ---- float ops ---------------------------------------------------------------------------------------------
def test_conv1d_runs_as_conv2d_with_height_one():
    w = rng.standard_normal((4, 2, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 2], strides=[2], dilations=[2], name="conv")
    model = make_model([node], [("x", F, [1, 2, 11])], [("y", F, None)], {"w": w, "b": b})
    graph = import_model(model)
    assert kinds(graph) == ["reshape", "conv2d", "reshape"]
    conv = op_named(graph, "conv")
    assert conv.attrs == {"strides": [1, 2], "dilations": [1, 2], "pads": [0, 1, 0, 2], "group": 1}
    weight = graph.values[conv.inputs[1]]
    assert weight.is_const and weight.shape == (4, 2, 1, 3) and weight.layout == "OIHW"
    np.testing.assert_array_equal(weight.data[:, :, 0, :], w)
    assert graph.values[conv.inputs[0]].shape == (1, 2, 1, 11)
    assert graph.values["y"].shape == (1, 4, 5)  # (11 + 3 - 5) // 2 + 1
    assert_matches_ort(model, {"x": rng.standard_normal((1, 2, 11)).astype(np.float32)}, graph)


def test_conv1d_of_dequantized_weights_keeps_the_dequantize_pattern():
    wq = rng.integers(-127, 128, (4, 2, 3)).astype(np.int8)
    scales = np.array([0.1, 0.2, 0.05, 0.3], np.float32)
    nodes = [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["w"], axis=0, name="dq_w"),
             helper.make_node("Conv", ["x", "w"], ["y"], name="conv")]
    model = make_model(nodes, [("x", F, [1, 2, 9])], [("y", F, None)],
                       {"wq": wq, "ws": scales, "wz": np.zeros(4, np.int8)})
    graph = import_model(model)
    conv = op_named(graph, "conv")
    dq = producer(graph, conv.inputs[1])
    assert dq.kind == "dequantize"
    q = graph.values[dq.inputs[0]]
    assert q.is_const and q.shape == (4, 2, 1, 3) and q.quant.axis == 0 and q.layout == "OIHW"
    assert q.quant.scale == tuple(float(s) for s in scales)


@pytest.mark.parametrize("auto_pad,pads", [("SAME_UPPER", [0, 0, 1, 1]), ("SAME_LOWER", [1, 1, 0, 0]),
                                           ("VALID", [0, 0, 0, 0])])
def test_conv_auto_pad_becomes_explicit_pads(auto_pad, pads):
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], auto_pad=auto_pad, strides=[2, 2], name="conv")
    model = make_model([node], [("x", F, [1, 3, 8, 8])], [("y", F, None)], {"w": w})
    graph = import_model(model)
    assert op_named(graph, "conv").attrs["pads"] == pads
    assert_matches_ort(model, {"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)}, graph)


def test_conv_asymmetric_onnx_pads_map_to_top_left_bottom_right():
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    node = helper.make_node("Conv", ["x", "w"], ["y"], pads=[1, 2, 0, 3], name="conv")  # h0, w0, h1, w1
    model = make_model([node], [("x", F, [1, 1, 5, 6])], [("y", F, None)], {"w": w})
    graph = import_model(model)
    assert op_named(graph, "conv").attrs["pads"] == [1, 2, 0, 3]
    assert graph.values["y"].shape == (1, 2, 4, 9)
    assert_matches_ort(model, {"x": rng.standard_normal((1, 1, 5, 6)).astype(np.float32)}, graph)


@pytest.mark.parametrize("op,size,kernel,stride,pads,cip", [
    ("MaxPool", 4, 2, 2, [0, 0, 1, 1], 0),     # last window would start in the padding: dropped
    ("MaxPool", 5, 2, 2, [0, 0, 0, 0], 0),
    ("AveragePool", 5, 2, 2, [0, 0, 0, 0], 1),
    ("AveragePool", 6, 3, 2, [1, 1, 1, 1], 1),  # explicit pads count, the ceil overhang does not
    ("AveragePool", 6, 3, 2, [1, 1, 1, 1], 0),
    ("AveragePool", 7, 3, 2, [1, 1, 1, 1], 1),  # no overhang: plain count_include_pad
])
def test_pool_ceil_mode_is_exact(op, size, kernel, stride, pads, cip):
    attrs = dict(kernel_shape=[kernel, kernel], strides=[stride, stride], pads=pads, ceil_mode=1)
    if op == "AveragePool":
        attrs["count_include_pad"] = cip
    model = make_model([helper.make_node(op, ["x"], ["y"], name="pool", **attrs)],
                       [("x", F, [1, 2, size, size])], [("y", F, None)])
    graph = import_model(model)
    x = rng.standard_normal((1, 2, size, size)).astype(np.float32)
    expected_shape = ort_run(model, {"x": x})["y"].shape
    assert graph.values["y"].shape == expected_shape
    pool = op_named(graph, "pool")
    if op == "AveragePool" and cip and any(pads) and size == 6:
        assert kinds(graph) == ["pad", "avg_pool2d"]
        assert pool.attrs["count_include_pad"] is False and pool.attrs["pads"] == [0, 0, 1, 1]
    assert_matches_ort(model, {"x": x}, graph)


def test_pool_dilations_are_rejected():
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], dilations=[2, 2], name="mp")
    model = make_model([node], [("x", F, [1, 1, 6, 6])], [("y", F, None)])
    with pytest.raises(UnsupportedError, match="'mp'.*dilations") as exc:
        import_model(model)
    one_line(exc)


def test_softmax_before_opset_13_coerces_to_2d():
    model = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=1, name="sm")],
                       [("x", F, [2, 3, 4, 5])], [("y", F, None)], opset=11)
    graph = import_model(model)
    assert kinds(graph) == ["reshape", "softmax", "reshape"]
    assert graph.values[op_named(graph, "sm").inputs[0]].shape == (2, 60)
    assert op_named(graph, "sm").attrs["axis"] == -1
    assert_matches_ort(model, {"x": rng.standard_normal((2, 3, 4, 5)).astype(np.float32)}, graph)
    last = make_model([helper.make_node("Softmax", ["x"], ["y"], axis=3, name="sm")],
                      [("x", F, [2, 3, 4, 5])], [("y", F, None)], opset=11)
    assert kinds(import_model(last)) == ["softmax"]


@pytest.mark.parametrize("opset", [11, 13])
def test_flatten_squeeze_unsqueeze_become_reshapes(opset):
    axes_as_input = opset >= 13
    squeeze = (helper.make_node("Squeeze", ["f", "sq_axes"], ["s"], name="squeeze") if axes_as_input
               else helper.make_node("Squeeze", ["f"], ["s"], axes=[0], name="squeeze"))
    unsqueeze = (helper.make_node("Unsqueeze", ["s", "unsq_axes"], ["y"], name="unsqueeze") if axes_as_input
                 else helper.make_node("Unsqueeze", ["s"], ["y"], axes=[0, -1], name="unsqueeze"))
    nodes = [helper.make_node("Flatten", ["x"], ["f"], axis=0, name="flatten"), squeeze, unsqueeze]
    inits = {"sq_axes": np.array([0], np.int64), "unsq_axes": np.array([0, -1], np.int64)} if axes_as_input else {}
    model = make_model(nodes, [("x", F, [2, 3, 4])], [("y", F, None)], inits, opset=opset)
    graph = import_model(model)
    assert kinds(graph) == ["reshape"] * 3
    assert [op.attrs["shape"] for op in graph.ops] == [[1, 24], [24], [1, 24, 1]]
    assert_matches_ort(model, {"x": rng.standard_normal((2, 3, 4)).astype(np.float32)}, graph)


def test_two_inputs_two_outputs_keep_names_and_order():
    nodes = [helper.make_node("Add", ["b", "a"], ["sum"], name="add"),
             helper.make_node("Clip", ["sum", "lo", "hi"], ["clipped"], name="clip"),
             helper.make_node("Mul", ["a", "scale"], ["prod"], name="mul"),
             helper.make_node("LeakyRelu", ["prod"], ["leaky"], alpha=0.2, name="leaky")]
    model = make_model(nodes, [("b", F, [1, 3]), ("a", F, [2, 1, 3])], [("leaky", F, None), ("clipped", F, None)],
                       {"lo": np.array(-0.5, np.float32), "hi": np.array(0.25, np.float32),
                        "scale": np.array([1.0, -2.0, 3.0], np.float32)})
    graph = import_model(model)
    assert graph.inputs == ["b", "a"] and graph.outputs == ["leaky", "clipped"]
    assert op_named(graph, "clip").attrs == {"min": -0.5, "max": 0.25}
    assert graph.values[op_named(graph, "mul").inputs[1]].is_const
    assert [m["name"] for m in graph.meta["onnx_outputs"]] == ["leaky", "clipped"]
    feeds = {"b": rng.standard_normal((1, 3)).astype(np.float32),
             "a": rng.standard_normal((2, 1, 3)).astype(np.float32)}
    assert_matches_ort(model, feeds, graph)


def test_gemm_matmul_batchnorm_and_activations():
    nodes = [helper.make_node("Gemm", ["x", "w", "c"], ["g"], transB=1, alpha=0.5, beta=2.0, name="gemm"),
             helper.make_node("MatMul", ["g", "v"], ["m"], name="matmul"),  # [1,4] x [4] -> [1]
             helper.make_node("Reshape", ["x", "shape4"], ["x4"], name="to4d"),
             helper.make_node("BatchNormalization", ["x4", "s", "bias", "mean", "var"], ["bn"], epsilon=1e-3,
                              name="bn"),
             helper.make_node("HardSwish", ["bn"], ["hs"], name="hs"),
             helper.make_node("Tanh", ["hs"], ["th"], name="tanh"),
             helper.make_node("GlobalAveragePool", ["th"], ["gap"], name="gap"),
             helper.make_node("Dropout", ["gap"], ["dr"], name="drop")]
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    inits = {"w": f32(4, 6), "c": f32(4), "v": f32(4), "shape4": np.array([1, 6, 1, 1], np.int64),
             "s": f32(6), "bias": f32(6), "mean": f32(6), "var": np.abs(f32(6)) + 0.1}
    model = make_model(nodes, [("x", F, [1, 6])], [("m", F, None), ("dr", F, None)], inits, opset=14)
    graph = import_model(model)
    # the constant 1-D right operand of the MatMul becomes a [4, 1] constant; the result is reshaped to [1]
    assert kinds(graph) == ["gemm", "matmul", "reshape", "reshape", "batch_norm", "hard_swish", "tanh",
                            "global_avg_pool", "identity"]
    assert graph.values[op_named(graph, "matmul").inputs[1]].shape == (4, 1)
    assert op_named(graph, "gemm").attrs == {"alpha": 0.5, "beta": 2.0, "trans_a": False, "trans_b": True}
    assert graph.values["m"].shape == (1,)
    assert_matches_ort(model, {"x": f32(1, 6)}, graph)


def test_matmul_of_two_vectors_is_a_scalar():
    model = make_model([helper.make_node("MatMul", ["a", "b"], ["y"], name="dot")], [("a", F, [5]), ("b", F, [5])],
                       [("y", F, None)], {}, opset=13)
    graph = import_model(model)
    assert kinds(graph) == ["reshape", "reshape", "matmul", "reshape"] and graph.values["y"].shape == ()
    assert_matches_ort(model, {"a": rng.standard_normal(5).astype(np.float32),
                               "b": rng.standard_normal(5).astype(np.float32)}, graph)


def test_pad_and_transpose_and_concat():
    nodes = [helper.make_node("Pad", ["x", "pads"], ["p"], name="pad"),
             helper.make_node("Transpose", ["p"], ["t"], perm=[0, 2, 3, 1], name="transpose"),
             helper.make_node("Concat", ["t", "k"], ["y"], axis=-1, name="concat")]
    model = make_model(nodes, [("x", F, [1, 2, 3, 3])], [("y", F, None)],
                       {"pads": np.array([0, 0, 1, 0, 0, 0, 0, 2], np.int64),
                        "k": rng.standard_normal((1, 4, 5, 1)).astype(np.float32)})
    graph = import_model(model)
    assert op_named(graph, "pad").attrs == {"pads": [0, 0, 1, 0, 0, 0, 0, 2], "value": 0.0}
    assert op_named(graph, "concat").attrs == {"axis": 3}
    assert_matches_ort(model, {"x": rng.standard_normal((1, 2, 3, 3)).astype(np.float32)}, graph)
    reflect = make_model([helper.make_node("Pad", ["x", "pads"], ["y"], mode="reflect", name="pad")],
                         [("x", F, [1, 2, 3, 3])], [("y", F, None)],
                         {"pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64)})
    with pytest.raises(UnsupportedError, match="'pad'.*reflect"):
        import_model(reflect)


# ---- QDQ from onnxruntime's quantiser -----------------------------------------------------------------------
def _float_conv_model(path: Path) -> None:
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "w2"], ["c2"], name="conv2"),
             helper.make_node("Add", ["c2", "r"], ["a"], name="add"),
             helper.make_node("GlobalAveragePool", ["a"], ["y"], name="gap")]
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "b": rng.standard_normal(4).astype(np.float32),
             "w2": rng.standard_normal((4, 4, 1, 1)).astype(np.float32)}
    onnx.save(make_model(nodes, [("x", F, [1, 3, 8, 8])], [("y", F, [1, 4, 1, 1])], inits), str(path))


def _quantize(tmp_path: Path, fmt: str, activation: str) -> Path:
    q = pytest.importorskip("onnxruntime.quantization")

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.samples = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

        def get_next(self):
            return next(self.samples, None)

    src, dst = tmp_path / "float.onnx", tmp_path / f"{fmt}_{activation}.onnx"
    _float_conv_model(src)
    q.quantize_static(str(src), str(dst), Reader(), quant_format=getattr(q.QuantFormat, fmt),
                      activation_type=getattr(q.QuantType, activation), weight_type=q.QuantType.QInt8,
                      per_channel=True)
    return dst


@pytest.mark.parametrize("activation", ["QUInt8", "QInt8"])
def test_onnxruntime_qdq_model_keeps_float_interface(tmp_path, activation):
    path = _quantize(tmp_path, "QDQ", activation)
    graph = load_model(path)
    assert graph.values["x"].dtype == "float32" and graph.values["y"].dtype == "float32"
    act = "uint8" if activation == "QUInt8" else "int8"
    quantized = [graph.values[op.outputs[0]] for op in graph.ops if op.kind == "quantize"]
    assert quantized and all(v.dtype == act and v.quant.per_tensor for v in quantized)
    conv = op_named(graph, "conv")
    dq_w = producer(graph, conv.inputs[1])
    w = graph.values[dq_w.inputs[0]]
    assert dq_w.kind == "dequantize" and w.dtype == "int8" and w.quant.axis == 0 and len(w.quant.scale) == 4
    assert graph.values[producer(graph, conv.inputs[2]).inputs[0]].dtype == "int32"
    x = rng.standard_normal((1, 3, 8, 8)).astype(np.float32)
    assert_matches_ort(onnx.load(str(path)), {"x": x}, graph, atol=1e-5)


@pytest.mark.parametrize("activation", ["QUInt8", "QInt8"])
def test_onnxruntime_qoperator_model_becomes_int8(tmp_path, activation):
    path = _quantize(tmp_path, "QOperator", activation)
    graph = load_model(path)
    counts = Counter(kinds(graph))
    assert counts["conv2d"] == 2 and counts["add"] == 1 and counts["avg_pool2d"] == 1
    for op in graph.ops:
        if op.kind in ("conv2d", "add", "avg_pool2d"):
            assert all(graph.values[n].dtype in ("int8", "int32") for n in op.inputs + op.outputs)
    if activation == "QUInt8":
        # QuantizeLinear gives uint8 (faithful); QLinearConv reads it through an exact rescale.
        q = graph.values[op_named(graph, "x_QuantizeLinear").outputs[0]]
        assert q.dtype == "uint8"
        to_int8 = graph.consumers()[q.name]
        assert [op.kind for op in to_int8] == ["rescale"]
        s8 = graph.values[to_int8[0].outputs[0]]
        assert s8.quant.zero_point[0] == q.quant.zero_point[0] - 128 and s8.quant.scale == q.quant.scale
    # QLinearGlobalAveragePool's output quantisation differs from its input's: pool, then rescale.
    pool = next(op for op in graph.ops if op.kind == "avg_pool2d")
    assert graph.consumers()[pool.outputs[0]][0].kind == "rescale"


# ---- QOperator ops built by hand -------------------------------------------------------------------------------
def _scalar(v, dtype):
    return np.array(v, dtype=dtype)


def test_uint8_qlinearconv_input_and_output_are_converted_by_rescales():
    w = rng.integers(1, 255, (3, 2, 3, 3)).astype(np.uint8)  # minus zero points 127..129 fits int8
    inits = {"xs": _scalar(0.02, np.float32), "xz": _scalar(130, np.uint8), "w": w,
             "ws": np.array([0.01, 0.02, 0.03], np.float32), "wz": np.array([128, 127, 129], np.uint8),
             "ys": _scalar(0.05, np.float32), "yz": _scalar(120, np.uint8), "b": np.array([5, -6, 7], np.int32)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"], ["y"],
                            pads=[1, 1, 1, 1], name="qconv")
    model = make_model([node], [("x", U8, [1, 2, 5, 5])], [("y", U8, [1, 3, 5, 5])], inits)
    graph = import_model(model)
    assert kinds(graph) == ["rescale", "conv2d", "rescale"]
    assert graph.values["x"].dtype == "uint8" and graph.values["x"].quant == QuantParams.tensor(np.float32(0.02), 130)
    conv = op_named(graph, "qconv")
    x8, w8, b = (graph.values[n] for n in conv.inputs)
    assert x8.dtype == "int8" and x8.quant.zero_point == (2,)
    assert w8.dtype == "int8" and w8.quant.zero_point == (0, 0, 0) and w8.quant.axis == 0
    zero_points = np.array([128, 127, 129]).reshape(3, 1, 1, 1)
    np.testing.assert_array_equal(w8.data.astype(np.int32), w.astype(np.int32) - zero_points)
    assert b.quant.scale == pytest.approx([float(np.float32(0.02)) * float(np.float32(s)) for s in (0.01, 0.02, 0.03)])
    y8 = graph.values[conv.outputs[0]]
    assert y8.dtype == "int8" and y8.quant.zero_point == (-8,)
    y = graph.values["y"]
    assert y.dtype == "uint8" and y.quant.zero_point == (120,) and producer(graph, "y").kind == "rescale"
    assert graph.meta["onnx_outputs"] == [{"name": "y", "shape": [1, 3, 5, 5], "dtype": "uint8"}]


def test_uint8_weights_that_do_not_fit_int8_are_rejected_naming_the_node():
    inits = {"xs": _scalar(0.02, np.float32), "xz": _scalar(0, np.int8), "w": np.full((1, 1, 1, 1), 250, np.uint8),
             "ws": _scalar(0.01, np.float32), "wz": _scalar(0, np.uint8), "ys": _scalar(0.05, np.float32),
             "yz": _scalar(0, np.int8)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], name="bad_conv")
    model = make_model([node], [("x", I8, [1, 1, 2, 2])], [("y", I8, None)], inits)
    with pytest.raises(UnsupportedError, match="'bad_conv'.*zero point") as exc:
        import_model(model)
    one_line(exc)


def test_qlinear_matmul_with_constant_b_is_fully_connected():
    b = rng.integers(-127, 128, (6, 4)).astype(np.int8)  # [K, N]
    inits = {"as": _scalar(0.1, np.float32), "az": _scalar(-3, np.int8), "b": b,
             "bs": np.array([0.01, 0.02, 0.03, 0.04], np.float32), "bz": np.zeros(4, np.int8),
             "ys": _scalar(0.2, np.float32), "yz": _scalar(5, np.int8)}
    node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qmm")
    graph = import_model(make_model([node], [("a", I8, [3, 6])], [("y", I8, None)], inits))
    assert kinds(graph) == ["fully_connected"]
    fc = op_named(graph, "qmm")
    w = graph.values[fc.inputs[1]]
    np.testing.assert_array_equal(w.data, b.T)
    assert w.quant.axis == 0 and w.quant.scale == tuple(float(s) for s in np.float32([0.01, 0.02, 0.03, 0.04]))
    assert graph.values["y"].shape == (3, 4) and graph.values["y"].quant.zero_point == (5,)


def test_qlinear_matmul_with_runtime_b_is_integer_matmul():
    inits = {"as": _scalar(0.1, np.float32), "az": _scalar(-3, np.int8), "bs": _scalar(0.05, np.float32),
             "bz": _scalar(2, np.int8), "ys": _scalar(0.2, np.float32), "yz": _scalar(5, np.int8)}
    node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qmm")
    graph = import_model(make_model([node], [("a", I8, [2, 3, 6]), ("b", I8, [2, 6, 4])], [("y", I8, None)], inits))
    assert kinds(graph) == ["matmul"]
    assert graph.values["b"].quant == QuantParams.tensor(np.float32(0.05), 2)
    assert graph.values["y"].dtype == "int8" and graph.values["y"].shape == (2, 3, 4)


def test_matmul_integer_and_conv_integer_give_raw_int32():
    w = rng.integers(0, 256, (2, 3, 1, 1)).astype(np.uint8)
    nodes = [helper.make_node("ConvInteger", ["x", "w", "xz", "wz"], ["c"], name="convint"),
             helper.make_node("MatMulInteger", ["x2", "m", "xz"], ["mm"], name="mmint")]
    inits = {"w": w, "xz": _scalar(100, np.uint8), "wz": _scalar(128, np.uint8),
             "m": rng.integers(-100, 100, (5, 2)).astype(np.int8)}
    model = make_model(nodes, [("x", U8, [1, 3, 4, 4]), ("x2", U8, [3, 5])], [("c", I32, None), ("mm", I32, None)],
                       inits)
    graph = import_model(model)
    conv, mm = op_named(graph, "convint"), op_named(graph, "mmint")
    assert graph.values["c"].dtype == "int32" and graph.values["c"].quant is None
    assert graph.values["mm"].dtype == "int32" and graph.values["mm"].shape == (3, 2)
    x8 = graph.values[conv.inputs[0]]
    assert x8.dtype == "int8" and x8.quant.zero_point == (100 - 128,)
    np.testing.assert_array_equal(graph.values[conv.inputs[1]].data, (w.astype(np.int32) - 128).astype(np.int8))
    assert graph.values[mm.inputs[1]].quant.zero_point == (0,)
    run = interpreter().run
    requantize = pytest.importorskip("tinyc.passes").get("requantize")
    feeds = {"x": rng.integers(0, 256, (1, 3, 4, 4)).astype(np.uint8),
             "x2": rng.integers(0, 256, (3, 5)).astype(np.uint8)}
    ours, ref = run(requantize(graph), feeds), ort_run(model, feeds)
    np.testing.assert_array_equal(ours["c"], ref["c"])
    np.testing.assert_array_equal(ours["mm"], ref["mm"])


def test_qgemm_transposes_weights_and_folds_alpha_into_their_scale():
    b = rng.integers(-127, 128, (5, 3)).astype(np.int8)  # [K, N], transB = 0
    inits = {"as": _scalar(0.1, np.float32), "az": _scalar(0, np.int8), "b": b, "bs": _scalar(0.02, np.float32),
             "bz": _scalar(0, np.int8), "c": np.array([1, 2, 3], np.int32), "ys": _scalar(0.3, np.float32),
             "yz": _scalar(-1, np.int8)}
    node = helper.make_node("QGemm", ["a", "as", "az", "b", "bs", "bz", "c", "ys", "yz"], ["y"], alpha=0.5,
                            domain="com.microsoft", name="qgemm")
    graph = import_model(make_model([node], [("a", I8, [2, 5])], [("y", I8, None)], inits, ms=True))
    fc = op_named(graph, "qgemm")
    w, bias = graph.values[fc.inputs[1]], graph.values[fc.inputs[2]]
    np.testing.assert_array_equal(w.data, b.T)
    assert w.quant.scale == (0.5 * float(np.float32(0.02)),)
    assert bias.quant.scale == (float(np.float32(0.1)) * 0.5 * float(np.float32(0.02)),)
    np.testing.assert_array_equal(bias.data, [1, 2, 3])


def test_qlinear_lookup_tables_match_onnxruntime():
    for op, attrs, ys, yz in (("QLinearSigmoid", {}, 1 / 256, 0), ("QLinearLeakyRelu", {"alpha": 0.1}, 0.04, 10)):
        inits = {"xs": _scalar(0.05, np.float32), "xz": _scalar(3, np.uint8), "ys": _scalar(ys, np.float32),
                 "yz": _scalar(yz, np.uint8)}
        node = helper.make_node(op, ["x", "xs", "xz", "ys", "yz"], ["y"], domain="com.microsoft", name="f", **attrs)
        model = make_model([node], [("x", U8, [1, 256])], [("y", U8, [1, 256])], inits, ms=True)
        graph = import_model(model)
        assert kinds(graph) == ["rescale", "lut", "rescale"]
        table = np.array(op_named(graph, "f").attrs["table"])
        assert table.shape == (256,) and table.min() >= -128 and table.max() <= 127
        codes = np.arange(256, dtype=np.uint8).reshape(1, 256)
        expected = ort_run(model, {"x": codes})["y"].reshape(-1).astype(np.int32)
        # uint8 code u is int8 code u - 128, i.e. table index u; the table holds uint8 outputs - 128.
        np.testing.assert_array_equal(table + 128, expected)


def test_qlinear_concat_rescales_inputs_to_the_output_quantisation():
    inits = {"ys": _scalar(0.1, np.float32), "yz": _scalar(0, np.int8), "as": _scalar(0.1, np.float32),
             "az": _scalar(0, np.int8), "bs": _scalar(0.2, np.float32), "bz": _scalar(4, np.int8)}
    node = helper.make_node("QLinearConcat", ["ys", "yz", "a", "as", "az", "b", "bs", "bz"], ["y"], axis=1,
                            domain="com.microsoft", name="qcat")
    graph = import_model(make_model([node], [("a", I8, [1, 2, 3]), ("b", I8, [1, 4, 3])], [("y", I8, None)],
                                    inits, ms=True))
    assert kinds(graph) == ["rescale", "concat"]  # a already has the output's quantisation
    cat = op_named(graph, "qcat")
    assert cat.inputs[0] == "a" and producer(graph, cat.inputs[1]).kind == "rescale"
    assert all(graph.values[n].quant == graph.values["y"].quant for n in cat.inputs)
    assert graph.values["y"].shape == (1, 6, 3)


def test_qlinear_concat_of_inputs_sharing_a_quantisation_rescales_after():
    inits = {"ys": _scalar(0.3, np.float32), "yz": _scalar(-5, np.int8), "s": _scalar(0.1, np.float32),
             "z": _scalar(0, np.int8)}
    node = helper.make_node("QLinearConcat", ["ys", "yz", "a", "s", "z", "b", "s", "z"], ["y"], axis=-1,
                            domain="com.microsoft", name="qcat")
    graph = import_model(make_model([node], [("a", I8, [1, 2]), ("b", I8, [1, 3])], [("y", I8, None)], inits,
                                    ms=True))
    assert kinds(graph) == ["concat", "rescale"]
    cat = op_named(graph, "qcat")
    assert cat.inputs == ["a", "b"] and cat.attrs == {"axis": 1}
    assert graph.values[cat.outputs[0]].quant == QuantParams.tensor(np.float32(0.1), 0)
    assert graph.values["y"].quant == QuantParams.tensor(np.float32(0.3), -5)


def test_old_and_new_opsets_are_converted():
    relu = [helper.make_node("Relu", ["x"], ["y"], name="relu")]
    for opset in (7, 23):
        graph = import_model(make_model(relu, [("x", F, [1, 4])], [("y", F, None)], opset=opset))
        assert kinds(graph) == ["relu"] and graph.meta["opset"] == opset


def test_qlinear_global_average_pool_channels_last():
    inits = {"xs": _scalar(0.1, np.float32), "xz": _scalar(1, np.int8), "ys": _scalar(0.1, np.float32),
             "yz": _scalar(1, np.int8)}
    node = helper.make_node("QLinearGlobalAveragePool", ["x", "xs", "xz", "ys", "yz"], ["y"], channels_last=1,
                            domain="com.microsoft", name="gap")
    graph = import_model(make_model([node], [("x", I8, [1, 5, 6, 3])], [("y", I8, None)], inits, ms=True))
    assert kinds(graph) == ["transpose", "avg_pool2d", "transpose"]
    pool = op_named(graph, "gap")
    assert pool.attrs["kernel"] == [5, 6] and graph.values[pool.inputs[0]].shape == (1, 3, 5, 6)
    assert graph.values["y"].shape == (1, 1, 1, 3)


def test_qlinear_mul_and_add_with_a_constant_operand():
    inits = {"as": _scalar(0.1, np.float32), "az": _scalar(0, np.uint8), "k": np.array([10, 200], np.uint8),
             "ks": _scalar(0.5, np.float32), "kz": _scalar(100, np.uint8), "ys": _scalar(0.3, np.float32),
             "yz": _scalar(128, np.uint8)}
    node = helper.make_node("QLinearMul", ["a", "as", "az", "k", "ks", "kz", "ys", "yz"], ["y"],
                            domain="com.microsoft", name="qmul")
    graph = import_model(make_model([node], [("a", U8, [3, 2])], [("y", U8, None)], inits, ms=True))
    mul = op_named(graph, "qmul")
    k = graph.values[mul.inputs[1]]
    assert mul.kind == "mul" and k.is_const and k.dtype == "int8"
    np.testing.assert_array_equal(k.data, [-118, 72])
    assert k.quant.zero_point == (-28,)


def test_qlinear_add_without_output_zero_point_keeps_uint8_meaning():
    inits = {"as": _scalar(0.1, np.float32), "az": _scalar(3, np.uint8), "bs": _scalar(0.2, np.float32),
             "bz": _scalar(200, np.uint8), "ys": _scalar(0.25, np.float32)}
    node = helper.make_node("QLinearAdd", ["a", "as", "az", "b", "bs", "bz", "ys"], ["y"], domain="com.microsoft",
                            name="qadd")
    model = make_model([node], [("a", U8, [2, 3]), ("b", U8, [2, 3])], [("y", U8, None)], inits, ms=True)
    graph = import_model(model)
    assert kinds(graph) == ["rescale", "rescale", "add", "rescale"]
    add = op_named(graph, "qadd")
    assert [graph.values[n].quant.zero_point for n in add.inputs + add.outputs] == [(-125,), (72,), (-128,)]
    assert graph.values["y"].dtype == "uint8" and graph.values["y"].quant.zero_point == (0,)
    run = interpreter().run
    requantize = pytest.importorskip("tinyc.passes").get("requantize")
    feeds = {"a": rng.integers(0, 256, (2, 3)).astype(np.uint8), "b": rng.integers(0, 256, (2, 3)).astype(np.uint8)}
    diff = run(requantize(graph), feeds)["y"].astype(int) - ort_run(model, feeds)["y"].astype(int)
    assert np.abs(diff).max() <= 1  # onnxruntime requantises in float, the IR in fixed point


def test_plain_ops_on_uint8_qoperator_results_stay_int8_and_pad_with_the_shifted_value():
    inits = {"xs": _scalar(0.02, np.float32), "xz": _scalar(128, np.uint8),
             "w": rng.integers(-127, 128, (2, 1, 1, 1)).astype(np.int8), "ws": _scalar(0.05, np.float32),
             "wz": _scalar(0, np.int8), "ys": _scalar(0.04, np.float32), "yz": _scalar(100, np.uint8),
             "pads": np.array([0, 0, 1, 1, 0, 0, 0, 0], np.int64), "value": _scalar(7, np.uint8)}
    nodes = [helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["c"], name="qconv"),
             helper.make_node("Pad", ["c", "pads", "value"], ["p"], name="pad"),
             helper.make_node("MaxPool", ["p"], ["y"], kernel_shape=[2, 2], name="pool")]
    model = make_model(nodes, [("x", U8, [1, 1, 3, 3])], [("y", U8, None)], inits)
    graph = import_model(model)
    assert kinds(graph) == ["rescale", "conv2d", "pad", "max_pool2d", "rescale"]
    pad = op_named(graph, "pad")
    assert pad.attrs["value"] == 7 - 128 and graph.values[pad.outputs[0]].dtype == "int8"
    assert graph.values[pad.outputs[0]].quant == QuantParams.tensor(np.float32(0.04), 100 - 128)
    run = interpreter().run
    requantize = pytest.importorskip("tinyc.passes").get("requantize")
    feeds = {"x": rng.integers(0, 256, (1, 1, 3, 3)).astype(np.uint8)}
    ours, ref = run(requantize(graph), feeds)["y"], ort_run(model, feeds)["y"]
    assert ours.dtype == np.uint8 and ours.shape == ref.shape
    assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1


# ---- errors -----------------------------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(TinycError, match="no such file") as exc:
        load_model(tmp_path / "absent.onnx")
    one_line(exc)


def test_truncated_file(tmp_path):
    data = (MLPERF / "kws/kws_ref_model_qop.onnx").read_bytes()
    path = tmp_path / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TinycError, match="truncated") as exc:
        load_model(path)
    one_line(exc)


def test_file_that_is_not_onnx(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n")
    with pytest.raises(TinycError, match="not .*ONNX") as exc:
        load_model(path)
    one_line(exc)


def test_all_unsupported_ops_are_listed_at_once():
    nodes = [helper.make_node("Erf", ["x"], ["e"], name="erf1"), helper.make_node("Cos", ["e"], ["c"], name="cos1"),
             helper.make_node("Relu", ["c"], ["r"], name="relu"), helper.make_node("Erf", ["r"], ["y"], name="erf2")]
    model = make_model(nodes, [("x", F, [1, 4])], [("y", F, None)])
    assert find_unsupported(model) == {"Erf": ["erf1", "erf2"], "Cos": ["cos1"]}
    with pytest.raises(UnsupportedError) as exc:
        import_model(model)
    text = one_line(exc)
    for name in ("Erf", "Cos", "'erf1'", "'erf2'", "'cos1'"):
        assert name in text
    assert "relu" not in text


def test_unsupported_dtype_of_an_input():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", TensorProto.FLOAT16, [1, 4])],
                       [("y", TensorProto.FLOAT16, None)])
    with pytest.raises(UnsupportedError, match="input 'x' has dtype float16") as exc:
        import_model(model)
    one_line(exc)


def test_unsupported_dtype_of_a_value_names_value_and_node():
    node = helper.make_node("QuantizeLinear", ["x", "s"], ["q"], output_dtype=TensorProto.INT4, name="to_int4")
    model = make_model([node, helper.make_node("DequantizeLinear", ["q", "s"], ["y"], name="dq")],
                       [("x", F, [1, 4])], [("y", F, None)], {"s": _scalar(0.1, np.float32)}, opset=21)
    with pytest.raises(UnsupportedError, match="'q'.*'to_int4'.*int4") as exc:
        import_model(model)
    one_line(exc)


def test_dynamic_dimension_needs_input_shape():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, ["N", 3, 96, 96])], [("y", F, None)])
    with pytest.raises(TinycError, match=r"input 'x'.*dimension 0 \('N'\).*--input-shape x=1,3,96,96") as exc:
        import_model(model)
    one_line(exc)
    graph = import_model(model, {"x": [2, 3, 96, 96]})
    assert graph.values["x"].shape == (2, 3, 96, 96) and graph.values["y"].shape == (2, 3, 96, 96)
    assert graph.meta["onnx_inputs"] == [{"name": "x", "shape": [2, 3, 96, 96], "dtype": "float32"}]


def test_input_shape_errors():
    model = make_model([helper.make_node("Relu", ["x"], ["y"])], [("x", F, ["N", 3])], [("y", F, None)])
    with pytest.raises(TinycError, match="'nope'.*not an input.*x") as exc:
        import_model(model, {"nope": [1, 3]})
    one_line(exc)
    with pytest.raises(TinycError, match="rank 3.*rank 2") as exc:
        import_model(model, {"x": [1, 3, 1]})
    one_line(exc)
    with pytest.raises(TinycError, match="dimension 1.*fixed to 3") as exc:
        import_model(model, {"x": [1, 4]})
    one_line(exc)


def test_missing_initializer_names_the_node():
    node = helper.make_node("Conv", ["x", "W"], ["y"], name="conv_without_weights")
    model = make_model([node], [("x", F, [1, 1, 4, 4])], [("y", F, None)])
    with pytest.raises(TinycError, match="'conv_without_weights'.*'W'.*no node") as exc:
        import_model(model)
    one_line(exc)


def test_shapes_computed_at_run_time_are_refused():
    nodes = [helper.make_node("Reshape", ["x", "s"], ["y"], name="dyn_reshape")]
    model = make_model(nodes, [("x", F, [1, 4]), ("s", I64, [2])], [("y", F, None)])
    with pytest.raises(TinycError, match="int64"):
        import_model(model)  # an int64 graph input is refused before anything else
    model = make_model([helper.make_node("Cast", ["x"], ["sf"], to=TensorProto.INT64, name="cast"),
                        helper.make_node("Reshape", ["x", "sf"], ["y"], name="dyn_reshape")],
                       [("x", F, [2])], [("y", F, None)])
    with pytest.raises(UnsupportedError, match="Cast.*'cast'"):
        import_model(model)


def test_one_tensor_read_with_two_quantisations_is_refused():
    inits = {"s1": _scalar(0.1, np.float32), "s2": _scalar(0.2, np.float32), "z": _scalar(0, np.int8)}
    nodes = [helper.make_node("QLinearSigmoid", ["x", "s1", "z", "s1", "z"], ["a"], domain="com.microsoft", name="f1"),
             helper.make_node("QLinearSigmoid", ["x", "s2", "z", "s1", "z"], ["b"], domain="com.microsoft", name="f2")]
    model = make_model(nodes, [("x", I8, [4])], [("a", I8, None), ("b", I8, None)], inits, ms=True)
    with pytest.raises(UnsupportedError, match="'f2'.*'x'.*one quantisation per tensor") as exc:
        import_model(model)
    one_line(exc)
