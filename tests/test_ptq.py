"""Post-training quantisation: calibration data, range choices, the quantize pass, cross-layer
equalisation, bias correction, and the int8 accuracy of real float models against their float
selves and against onnxruntime's own static quantisation."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

from tinyc import calibration as cal
from tinyc import passes
from tinyc.driver import build_and_run, load_graph, lower_for_codegen
from tinyc.codegen import CodegenOptions
from tinyc.errors import TinycError
from tinyc.interpreter import run
from tinyc.ptq import Precision, is_float_model
from tinyc.passes.quantize import equalize, quantize_graph, weight_quant
from tinyc.quant_math import int8_params
from tinyc.verify import verify

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
SHARED = ROOT.parent / "shared" / "models"
MNIST = SHARED / "zoo" / "mnist-8.onnx"
AD = SHARED / "mlperf_tiny" / "ad" / "ad01_fp32.onnx"
AD_DATA = SHARED / "data" / "ad_normal_id_01_00000000_hist_librosa.bin"


def needs(path: Path):
    return pytest.mark.skipif(not path.exists(), reason=f"{path} is not available")


def accuracy_of(graph, x: np.ndarray, labels: np.ndarray, name: str) -> float:
    out = graph.outputs[0]
    return float(np.mean([run(graph, {name: x[i:i + 1]})[out].argmax() == labels[i] for i in range(len(labels))]))


def onnxruntime_int8_accuracy(model: Path, calibration: np.ndarray, x: np.ndarray, labels: np.ndarray,
                              name: str, tmp: Path) -> float:
    """onnxruntime's quantize_static (QDQ, int8, per-channel weights, MinMax) on the same samples."""
    ort = pytest.importorskip("onnxruntime")
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnx import version_converter
    source = onnx.load(model)
    if source.opset_import[0].version < 13:  # per-channel QDQ needs opset 13
        source = version_converter.convert_version(source, 13)
    onnx.save(source, tmp / "source.onnx")

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.samples = iter([{name: calibration[i:i + 1]} for i in range(len(calibration))])

        def get_next(self):
            return next(self.samples, None)
    quantize_static(str(tmp / "source.onnx"), str(tmp / "ort_int8.onnx"), Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    session = ort.InferenceSession(str(tmp / "ort_int8.onnx"), providers=["CPUExecutionProvider"])
    return float(np.mean([session.run(None, {name: x[i:i + 1]})[0].argmax() == labels[i] for i in range(len(labels))]))


# ---- calibration data -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def digits():
    graph = load_graph(DIGITS / "digits_cnn.onnx")
    test = np.load(DIGITS / "test.npz")
    return graph, test["input"], test["label"]


def test_calibration_data_in_every_form(digits, tmp_path):
    graph, x, _ = digits
    np.savez(tmp_path / "batch.npz", input=x[:5])
    assert len(cal.load_samples(tmp_path / "batch.npz", graph)) == 5
    folder = tmp_path / "samples"
    folder.mkdir()
    for i in range(3):
        np.save(folder / f"{i}.npy", x[i:i + 1])
    np.savez(folder / "more.npz", input=x[3:5])
    samples = cal.load_samples(folder, graph)
    assert len(samples) == 5 and all(s["input"].shape == (1, 1, 8, 8) for s in samples)
    assert len(cal.load_samples("random", graph, count=7)) == 7


@pytest.mark.parametrize("data, fragment", [
    ({"image": np.zeros((2, 1, 8, 8), np.float32)}, "missing input"),
    ({"input": np.zeros((2, 1, 9, 9), np.float32)}, "[1, 1, 8, 8]"),
    ({"input": np.zeros((2, 1, 8, 8), np.float64)}, "float64"),
    ({"input": np.zeros((0, 1, 8, 8), np.float32)}, "empty"),
    ({"input": np.full((2, 1, 8, 8), np.nan, np.float32)}, "NaN or infinity"),
])
def test_bad_calibration_data_is_one_clear_error(digits, tmp_path, data, fragment):
    graph = digits[0]
    np.savez(tmp_path / "c.npz", **data)
    with pytest.raises(TinycError, match="--calibration") as caught:
        lower_for_codegen(graph, precision=Precision(calibration=tmp_path / "c.npz"))
    assert fragment in str(caught.value)


def test_a_float_model_needs_calibration_or_float32(digits):
    graph = digits[0]
    assert is_float_model(graph)
    with pytest.raises(TinycError, match=r"--calibration DATA .* or --precision float32"):
        lower_for_codegen(graph)
    with pytest.raises(TinycError, match="no such file or folder"):
        lower_for_codegen(graph, precision=Precision(calibration="nowhere.npz"))


# ---- ranges ---------------------------------------------------------------------------------------

def stats_of(values: np.ndarray) -> cal.TensorStats:
    s = cal.TensorStats()
    s.add(values.astype(np.float32), np.random.default_rng(0), keep=len(values))
    return s


def test_ranges_hold_zero_and_clip_outliers():
    rng = np.random.default_rng(1)
    heavy = np.concatenate([rng.standard_normal(20000) + 5.0, [80.0, -60.0]])
    s = stats_of(heavy)
    assert cal.minmax_range(s) == (-60.0, 80.0)
    lo, hi = cal.percentile_range(s)
    assert -60 < lo <= 0.0 and 5 < hi < 80
    lo, hi = cal.entropy_range(s)
    assert hi < 80 and lo > -60 and hi > 6
    positive = stats_of(rng.uniform(2.0, 3.0, 1000))
    assert cal.minmax_range(positive)[0] == 0.0  # ranges hold 0 exactly
    (lo, hi), method = cal.auto_range(s)
    scores = {name: cal.sqnr_db(s.sample, cal.fake_quantize(s.sample, *int8_params(*f(s))))
              for name, f in (("minmax", cal.minmax_range), ("percentile", cal.percentile_range),
                              ("entropy", cal.entropy_range))}
    assert scores[method] == max(scores.values())  # auto keeps the range that quantises best
    assert int8_params(0.0, 0.0) == (1.0, 0)     # an activation that is always 0


def test_model_outputs_keep_their_full_range():
    s = stats_of(np.random.default_rng(2).laplace(0, 1, 20000))
    ranges, methods = cal.choose_ranges({"logits": s, "hidden": s}, "percentile", full_range=["logits"])
    assert ranges["logits"] == (s.lo, s.hi) and methods["logits"] == "minmax"
    assert methods["hidden"] == "percentile" and ranges["hidden"][1] < s.hi


# ---- the quantize pass ------------------------------------------------------------------------------

def small_float_model(path: Path, w1=None) -> Path:
    rng = np.random.default_rng(0)
    w1 = rng.standard_normal((4, 2, 3, 3)).astype(np.float32) if w1 is None else w1
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(rng.standard_normal(4).astype(np.float32), "b1"),
             numpy_helper.from_array(rng.standard_normal((3, 64)).astype(np.float32), "w2"),
             numpy_helper.from_array(np.zeros(3, np.float32), "b2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["g"], name="fc", transB=1),
             helper.make_node("Softmax", ["g"], ["y"], name="softmax")]
    model = helper.make_model(helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 8, 8])],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


def test_quantize_pass_writes_the_qdq_form_tflite_writes(tmp_path):
    graph = load_graph(small_float_model(tmp_path / "m.onnx"))
    for name in ("canonicalize", "fuse"):
        graph = passes.get(name)(graph)
    ranges = {"x": (-1.0, 1.0), "r": (0.0, 4.0), "p": (0.0, 4.0), "f": (0.0, 4.0), "g": (-3.0, 5.0), "y": (0.0, 1.0)}
    q = quantize_graph(graph, ranges)
    verify(q)
    assert q.inputs == ["x"] and q.outputs == ["y"] and q.values["y"].dtype == "float32"
    conv = next(op for op in q.ops if op.name == "conv")
    weight_dq = next(op for op in q.ops if op.outputs[0] == conv.inputs[1])
    w = q.values[weight_dq.inputs[0]]
    expected = np.abs(graph.values["w1"].data).reshape(4, -1).max(axis=1) / 127
    assert w.dtype == "int8" and w.quant.axis == 0 and np.allclose(w.quant.scale, expected, rtol=1e-6)
    bias = q.values[next(op for op in q.ops if op.outputs[0] == conv.inputs[2]).inputs[0]]
    x_scale = int8_params(-1.0, 1.0)[0]
    assert bias.dtype == "int32" and np.allclose(bias.quant.scale, x_scale * np.asarray(w.quant.scale), rtol=1e-6)
    quant_of = {q.values[op.inputs[0]].name: q.values[op.outputs[0]].quant for op in q.ops if op.kind == "quantize"}
    assert quant_of["p"] == quant_of["r"]                        # max pooling keeps its input's quantisation
    assert quant_of["y_f"].scale == (1 / 256,) and quant_of["y_f"].zero_point == (-128,)  # softmax's fixed one
    lowered = lower_for_codegen(load_graph(tmp_path / "m.onnx"), precision=Precision(calibration="random"))
    assert {op.kind for op in lowered.ops} <= {"quantize", "dequantize", "conv2d", "max_pool2d", "reshape",
                                                "fully_connected", "softmax", "transpose"}
    assert not [op for op in lowered.ops if op.kind not in ("quantize", "dequantize")
                and lowered.values[op.outputs[0]].dtype == "float32"]


def test_all_zero_weights_and_an_always_zero_activation_compile_bit_exact(tmp_path):
    graph = load_graph(small_float_model(tmp_path / "m.onnx", w1=np.zeros((4, 2, 3, 3), np.float32)))
    codes, quant = weight_quant(np.zeros((4, 2, 3, 3), np.float32))
    assert not codes.any() and all(s > 0 for s in quant.scale)
    np.savez(tmp_path / "c.npz", x=np.random.default_rng(0).standard_normal((8, 1, 2, 8, 8)).astype(np.float32))
    lowered = lower_for_codegen(graph, precision=Precision(calibration=tmp_path / "c.npz"))
    samples = [{"x": np.random.default_rng(i).standard_normal((1, 2, 8, 8)).astype(np.float32)} for i in range(3)]
    outputs, _ = build_and_run(lowered, samples, CodegenOptions(target="host"), tmp_path / "build", sanitize=True)
    for sample, got in zip(samples, outputs):
        np.testing.assert_array_equal(got["y"], run(lowered, sample)["y"])


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2 ** 31), c1=st.integers(1, 6), c2=st.integers(1, 6), relu=st.booleans())
def test_cross_layer_equalisation_keeps_the_function_and_evens_the_ranges(seed, c1, c2, relu):
    rng = np.random.default_rng(seed)
    w1 = (rng.standard_normal((c1, 3, 3, 3)) * rng.uniform(0.01, 10, (c1, 1, 1, 1))).astype(np.float32)
    w2 = rng.standard_normal((c2, c1, 1, 1)).astype(np.float32)
    inits = [numpy_helper.from_array(w1, "w1"), numpy_helper.from_array(rng.standard_normal(c1).astype(np.float32), "b1"),
             numpy_helper.from_array(w2, "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["a"], name="c1", pads=[1, 1, 1, 1])]
    nodes += [helper.make_node("Relu", ["a"], ["r"], name="r")] if relu else [helper.make_node("Identity", ["a"], ["r"], name="r")]
    nodes += [helper.make_node("Conv", ["r", "w2"], ["y"], name="c2")]
    model = helper.make_model(helper.make_graph(nodes, "m", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 5])],
                                                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, c2, 5, 5])], inits),
                              opset_imports=[helper.make_opsetid("", 13)])
    graph = passes.get("fuse")(passes.get("canonicalize")(load_model_proto(model)))
    equal = equalize(graph)
    x = {"x": rng.standard_normal((1, 3, 5, 5)).astype(np.float32)}
    before, after = run(graph, x)["y"], run(equal, x)["y"]
    np.testing.assert_allclose(after, before, rtol=1e-4, atol=1e-4 * float(np.abs(before).max() + 1e-6))
    # Each channel between the two layers ends with the same weight range on both sides.
    w1 = equal.values[next(op for op in equal.ops if op.name == "c1").inputs[1]].data
    w2 = equal.values[next(op for op in equal.ops if op.name == "c2").inputs[1]].data
    r1 = np.abs(w1).reshape(c1, -1).max(axis=1)
    r2 = np.abs(np.moveaxis(w2, 1, 0)).reshape(c1, -1).max(axis=1)
    np.testing.assert_allclose(r1, r2, rtol=1e-4)


def load_model_proto(model):
    from tinyc.frontend import import_model
    return import_model(model)


def test_bias_correction_removes_the_mean_error_of_rounded_weights(tmp_path):
    """Inputs with a large mean: the weights' rounding error times that mean is a bias the correction
    takes back out."""
    rng = np.random.default_rng(3)
    w = rng.standard_normal((8, 64)).astype(np.float32)
    model = helper.make_model(helper.make_graph(
        [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)], "m",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 64])], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.zeros(8, np.float32), "b")]),
        opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "m.onnx")
    x = (5.0 + 0.1 * rng.standard_normal((64, 1, 64))).astype(np.float32)
    np.savez(tmp_path / "c.npz", x=x)
    graph = load_graph(tmp_path / "m.onnx")
    errors = {}
    for corrected in (False, True):
        lowered = lower_for_codegen(graph, precision=Precision(calibration=tmp_path / "c.npz", bias_correction=corrected))
        errors[corrected] = np.mean([run(lowered, {"x": s})["y"] - s @ w.T for s in x], axis=0)
    assert np.abs(errors[True]).mean() < 0.5 * np.abs(errors[False]).mean()


# ---- real models -------------------------------------------------------------------------------------

def test_digits_classifier_int8_is_within_a_point_of_float_and_of_onnxruntime(digits, tmp_path):
    graph, x, labels = digits
    calibration = np.load(DIGITS / "calibration.npz")["input"]
    float_acc = accuracy_of(lower_for_codegen(graph, precision=Precision("float32")), x, labels, "input")
    int8 = lower_for_codegen(graph, precision=Precision(calibration=DIGITS / "calibration.npz"))
    int8_acc = accuracy_of(int8, x, labels, "input")
    ort_acc = onnxruntime_int8_accuracy(DIGITS / "digits_cnn.onnx", calibration, x, labels, "input", tmp_path)
    assert float_acc > 0.95 and int8_acc >= float_acc - 0.01 and int8_acc >= ort_acc
    assert int8.meta["accuracy"]["worst_layer"] is not None


@needs(MNIST)
def test_mnist_int8_is_within_a_point_of_float_and_no_worse_than_onnxruntime(tmp_path):
    data = np.load(ROOT / "tests" / "data" / "mnist_5k.npz")
    x = (data["x"].astype(np.float32) / 255.0)[:, None]
    labels = data["y"]
    order = np.random.default_rng(0).permutation(len(labels))
    calibration, evaluate = order[:200], order[200:700]
    np.savez(tmp_path / "c.npz", Input3=x[calibration])
    graph = load_graph(MNIST)
    float_acc = accuracy_of(lower_for_codegen(graph, precision=Precision("float32")), x[evaluate], labels[evaluate], "Input3")
    int8_acc = accuracy_of(lower_for_codegen(graph, precision=Precision(calibration=tmp_path / "c.npz")),
                           x[evaluate], labels[evaluate], "Input3")
    ort_acc = onnxruntime_int8_accuracy(MNIST, x[calibration], x[evaluate], labels[evaluate], "Input3", tmp_path)
    assert float_acc > 0.98 and int8_acc >= float_acc - 0.01 and int8_acc >= ort_acc


@needs(AD)
def test_anomaly_detector_int8_scores_within_two_percent_of_float(tmp_path):
    frames = np.fromfile(AD_DATA, dtype="<f4").reshape(200, 128)
    windows = np.stack([frames[i:i + 5].reshape(1, 640) for i in range(196)]).astype(np.float32)
    np.savez(tmp_path / "even.npz", **{"input_1": windows[0::2]})
    graph = load_graph(AD)
    name = graph.inputs[0]
    np.savez(tmp_path / "even.npz", **{name: windows[0::2]})
    scores = {}
    for label, precision in (("float", Precision("float32")), ("int8", Precision(calibration=tmp_path / "even.npz"))):
        lowered = lower_for_codegen(graph, precision=precision)
        out = lowered.outputs[0]
        scores[label] = np.mean([np.mean((w - run(lowered, {name: w})[out]) ** 2) for w in windows[1::2]])
    assert abs(scores["int8"] - scores["float"]) <= 0.02 * scores["float"]


def test_verify_float_reference_names_the_worst_layer_and_the_report_has_it(tmp_path):
    cli = [sys.executable, "-m", "tinyc.cli"]
    model, data = DIGITS / "digits_cnn.onnx", DIGITS / "calibration.npz"
    proc = subprocess.run([*cli, "verify", model, "--calibration", data, "--float-reference", "--count", "3"],
                          capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "bit-exact: yes" in proc.stdout and "Worst layer: `" in proc.stdout and "| `conv1` |" in proc.stdout
    proc = subprocess.run([*cli, "compile", model, "--calibration", data, "-o", "out"], capture_output=True,
                          text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["calibration"]["samples"] == 100 and report["accuracy"]["layers"]
    assert "## Quantisation: int8 against the float model" in (tmp_path / "out" / "report.md").read_text()
