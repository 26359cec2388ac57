"""`tinyc inspect`: summaries of real and synthetic models (interface, quantisation, ops, MACs,
parameters, unsupported ops reported instead of raised)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper, shape_inference

from tinyc.errors import TinycError
from tinyc.inspect_model import format_summary, summarize

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
KWS = MODELS / "mlperf_tiny" / "kws"
F, U8 = TensorProto.FLOAT, TensorProto.UINT8
rng = np.random.default_rng(3)


def save(tmp_path, nodes, inputs, outputs, inits=(), opset=13, ms=False, name="m.onnx") -> Path:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
                              [numpy_helper.from_array(np.asarray(v), k) for k, v in dict(inits).items()])
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid("com.microsoft", 1)] if ms else [])
    model = helper.make_model(graph, opset_imports=imports)
    model.ir_version = 8
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def conv_gemm_model(tmp_path, batch="N", extra_op=None):
    """conv 3->4 (3x3, pad 1), depthwise conv (group 4), flatten, gemm 256->10; one unused initializer."""
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
             helper.make_node("Conv", ["c", "dw"], ["d"], group=4, pads=[1, 1, 1, 1], name="dwconv"),
             helper.make_node("Flatten", ["d"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "fc"], ["g"], transB=1, name="fc")]
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["g"], ["y"], name="odd"))
    else:
        nodes.append(helper.make_node("Relu", ["g"], ["y"], name="relu"))
    inits = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "b": np.zeros(4, np.float32),
             "dw": rng.standard_normal((4, 1, 3, 3)).astype(np.float32),
             "fc": rng.standard_normal((10, 256)).astype(np.float32),
             "unused": np.zeros(1000, np.float32)}
    return save(tmp_path, nodes, [("x", F, [batch, 3, 8, 8])], [("y", F, [batch, 10])], inits)


CONV_MACS = 4 * 8 * 8 * 3 * 3 * 3   # out elements x (in channels x kernel)
DW_MACS = 4 * 8 * 8 * 1 * 3 * 3     # depthwise: one input channel per group
FC_MACS = 256 * 10
PARAM_ELEMENTS = 4 * 3 * 9 + 4 + 4 * 9 + 2560


def test_kws_qoperator_summary():
    d = summarize(KWS / "kws_ref_model_qop.onnx")
    assert d["opset"] == 13
    (x,) = d["inputs"]
    assert x["name"] == "input_1" and x["shape"] == [1, 1, 49, 10] and x["dtype"] == "int8"
    assert x["quant"]["zero_point"] == [83] and x["quant"]["scale"][0] == pytest.approx(0.584703, rel=1e-6)
    (y,) = d["outputs"]
    assert y["shape"] == [1, 12] and y["quant"] == {"scale": [1 / 256], "zero_point": [-128], "axis": None}
    assert d["op_counts"]["QLinearConv"] == 9 and d["op_counts"]["QGemm"] == 1 and d["nodes"] == 13
    assert d["unsupported"] == {} and d["import_error"] is None
    json.dumps(d)  # JSON-ready


def test_macs_agree_across_float_qdq_and_qoperator_forms_of_kws():
    float_model = shape_inference.infer_shapes(onnx.load(str(KWS / "kws_ref_model_dequant_float.onnx")))
    shapes = {vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
              for vi in list(float_model.graph.value_info) + list(float_model.graph.output)}
    weights = {t.name: list(t.dims) for t in float_model.graph.initializer}
    expected = 0
    for node in float_model.graph.node:
        if node.op_type == "Conv":
            expected += int(np.prod(shapes[node.output[0]])) * int(np.prod(weights[node.input[1]][1:]))
        elif node.op_type == "Gemm":
            expected += int(np.prod(weights[node.input[1]]))  # batch 1
    assert expected == 2_656_768
    for name in ("kws_ref_model_dequant_float.onnx", "kws_ref_model_qdq.onnx", "kws_ref_model_qop.onnx"):
        d = summarize(KWS / name)
        assert d["macs"] == expected and d["macs_unknown"] == [], name


def test_synthetic_macs_and_parameter_bytes(tmp_path):
    d = summarize(conv_gemm_model(tmp_path, batch=1))
    assert d["macs"] == CONV_MACS + DW_MACS + FC_MACS
    assert d["parameter_count"] == PARAM_ELEMENTS          # the unused initializer is not counted
    assert d["parameter_bytes"] == PARAM_ELEMENTS * 4
    assert d["inputs"][0]["quant"] is None and d["outputs"][0]["shape"] == [1, 10]
    assert d["op_counts"] == {"Conv": 2, "Flatten": 1, "Gemm": 1, "Relu": 1}


def test_dynamic_batch_is_taken_as_one_unless_given(tmp_path):
    path = conv_gemm_model(tmp_path, batch="N")
    d = summarize(path)
    assert d["assumed_dims"] == {"x": [0]} and d["macs"] == CONV_MACS + DW_MACS + FC_MACS
    assert d["inputs"][0]["shape"] == [1, 3, 8, 8]
    d2 = summarize(path, input_shapes={"x": [2, 3, 8, 8]})
    assert d2["assumed_dims"] == {} and d2["macs"] == 2 * (CONV_MACS + DW_MACS + FC_MACS)
    assert "taken as 1" in format_summary(d) and "taken as 1" not in format_summary(d2)
    with pytest.raises(TinycError, match="not an input"):
        summarize(path, input_shapes={"nope": [1]})


def test_unsupported_ops_are_reported_not_raised(tmp_path):
    d = summarize(conv_gemm_model(tmp_path, batch=1, extra_op="Erf"))
    assert d["unsupported"] == {"Erf": ["odd"]}
    assert "Erf" in d["import_error"]
    assert d["macs"] == CONV_MACS + DW_MACS + FC_MACS  # from ONNX shape inference instead of the IR
    text = format_summary(d)
    assert "ONNX ops tinyc cannot import:" in text and "Erf: odd" in text


def test_uint8_qoperator_input_and_output_quantisation(tmp_path):
    inits = {"xs": np.array(0.02, np.float32), "xz": np.array(130, np.uint8),
             "w": rng.integers(-100, 100, (2, 1, 1, 1)).astype(np.int8), "ws": np.array(0.1, np.float32),
             "wz": np.array(0, np.int8), "ys": np.array(0.05, np.float32), "yz": np.array(7, np.uint8)}
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["c"], name="qc")
    reshape = helper.make_node("Reshape", ["c", "shape"], ["y"], name="flat")
    inits["shape"] = np.array([1, -1], np.int64)
    d = summarize(save(tmp_path, [node, reshape], [("x", U8, [1, 1, 2, 2])], [("y", U8, None)], inits))
    assert d["inputs"][0]["quant"] == {"scale": [float(np.float32(0.02))], "zero_point": [130], "axis": None}
    assert d["outputs"][0]["quant"]["zero_point"] == [7]  # through the Reshape to the QLinearConv
    assert d["outputs"][0]["shape"] == [1, 8] and d["outputs"][0]["dtype"] == "uint8"
    assert d["macs"] == 2 * 2 * 2 * 1


def test_format_summary_text():
    text = format_summary(summarize(KWS / "kws_ref_model_qop.onnx"))
    assert "input_1: int8[1,1,49,10]  scale=0.584703 zero_point=83" in text
    assert "Identity: int8[1,12]  scale=0.00390625 zero_point=-128" in text
    assert "QLinearConv x9" in text and "MACs: 2,656,768" in text and "ONNX ops tinyc cannot import: none" in text and "compiles for cortex-m4: yes" in text


def test_mnist8_summary_keeps_its_opset_and_only_real_inputs():
    d = summarize(MODELS / "zoo" / "mnist-8.onnx")
    assert d["opset"] == 8 and [i["name"] for i in d["inputs"]] == ["Input3"]
    assert d["macs"] == 8 * 28 * 28 * 25 + 16 * 14 * 14 * 8 * 25 + 256 * 10
    float_elements = 2560 + 3200 + 200 + 8 + 16 + 10
    assert d["parameter_count"] == float_elements + 4  # plus the two int64 shape tensors of 2 entries
    assert d["parameter_bytes"] == float_elements * 4 + 4 * 8


def test_unreadable_model_raises(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(TinycError):
        summarize(bad)
    with pytest.raises(TinycError, match="no such file"):
        summarize(tmp_path / "absent.onnx")


def test_cli_inspect_json(tmp_path):
    cli = pytest.importorskip("tinyc.cli")
    from click.testing import CliRunner
    result = CliRunner().invoke(cli.main, ["inspect", str(KWS / "kws_ref_model_qop.onnx"), "--json"])
    assert result.exit_code == 0, result.output
    d = json.loads(result.output)
    assert d["macs"] == 2_656_768 and d["inputs"][0]["quant"]["zero_point"] == [83]
