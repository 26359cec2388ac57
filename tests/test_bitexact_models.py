"""Bit-exactness on the MLPerf Tiny models: tinyc's default pipeline + reference interpreter against
the TFLite reference kernels (LiteRT BUILTIN_REF) and against TensorFlow Lite Micro's outputs.

- layer by layer, independent of the frontend: every int8 layer of each model, rebuilt as a one-op
  IR graph from the QOperator ONNX file, on TFLite's own intermediate tensors;
- whole models, QDQ and QOperator forms, through tinyc.frontend.load_model and DEFAULT_PIPELINE:
  100 random int8 inputs, the real inputs in ../shared/models/data, and the TFLM golden outputs
  (final outputs and the logits before the final softmax).

LiteRT 2.3's fully connected kernel rounds once, where TFLM, CMSIS-NN and tinyc round twice; the two
differ by 1 LSB on a few accumulators, which later layers can amplify (softmax, AD's 10 layers). So:
- with tinyc's own (double) rounding, outputs must equal TFLM's exactly;
- against BUILTIN_REF, the interpreter runs with its fully connected kernel swapped for a
  single-rounding one (`litert_rounding`, same multipliers and offsets) and must match exactly:
  this proves the rounding mode is the only difference.
"""
from __future__ import annotations

import functools
import json
import re
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tinyc import passes
from tinyc import quant_math as qm
from tinyc.interp import int_kernels
from tinyc.interp.call import Call
from tinyc.interpreter import run, run_trace
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.verify import verify

litert = pytest.importorskip("ai_edge_litert.interpreter")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "models"
MLPERF = SHARED / "mlperf_tiny"
DATA = SHARED / "data"
MODELS = {
    "kws": "kws/kws_ref_model",
    "vww": "vww/vww_96_int8",
    "ic": "ic/pretrainedResnet_quant",
    "ad": "ad/ad01_int8",
    "sww": "sww/str_ww_ref_model",
}
FORMS = ("qdq", "qop")
RANDOM_SAMPLES = 100

pytestmark = pytest.mark.skipif(not MLPERF.is_dir(), reason=f"models not found at {MLPERF}")


# ---- TFLite reference ----------------------------------------------------------------------------

def tflite_interpreter(key: str, batch: int = 1, preserve: bool = False):
    interp = litert.Interpreter(model_path=str(MLPERF / f"{MODELS[key]}.tflite"),
                                experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF,
                                experimental_preserve_all_tensors=preserve)
    if batch != 1:
        detail = interp.get_input_details()[0]
        interp.resize_tensor_input(detail["index"], [batch, *detail["shape"][1:]])
    interp.allocate_tensors()
    return interp


@functools.lru_cache(maxsize=None)
def tflite_input_detail(key: str) -> dict:
    return tflite_interpreter(key).get_input_details()[0]


def tflite_outputs(key: str, inputs: np.ndarray) -> np.ndarray:
    """BUILTIN_REF outputs for a batch of NHWC int8 inputs, in one invocation."""
    interp = tflite_interpreter(key, batch=len(inputs))
    interp.set_tensor(interp.get_input_details()[0]["index"], inputs)
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"])


def random_inputs(key: str, count: int, seed: int) -> np.ndarray:
    shape = tflite_input_detail(key)["shape"][1:]
    return np.random.default_rng(seed).integers(-128, 128, size=(count, *shape), dtype=np.int8)


def quantize_input(key: str, real: np.ndarray) -> np.ndarray:
    scale, zero_point = tflite_input_detail(key)["quantization"]
    return qm.quantize(real, scale, zero_point, "int8")


# ---- tinyc ---------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def compiled(key: str, form: str) -> Graph:
    """The model imported and lowered by the default pipeline, verified after every pass."""
    from tinyc.frontend import load_model
    graph = load_model(MLPERF / f"{MODELS[key]}_{form}.onnx")
    verify(graph)
    for name in passes.DEFAULT_PIPELINE:
        graph = passes.get(name)(graph)
        verify(graph)
    return graph


def onnx_input(graph: Graph, sample_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """One TFLite-layout sample ([1, H, W, C] or [1, N]) as the ONNX model's input (NCHW)."""
    x = sample_nhwc.transpose(0, 3, 1, 2) if sample_nhwc.ndim == 4 else sample_nhwc
    name = graph.inputs[0]
    return {name: np.ascontiguousarray(x).reshape(graph.values[name].shape)}


def tinyc_outputs(graph: Graph, inputs: np.ndarray) -> np.ndarray:
    return np.stack([run(graph, onnx_input(graph, x[None]))[graph.outputs[0]].reshape(-1) for x in inputs])


def first_divergence(key: str, graph: Graph, sample_nhwc: np.ndarray) -> str:
    """Where tinyc's trace first departs from TFLite's intermediate tensors, for failure messages.
    The frontend names ops after the ONNX nodes, which carry the TFLite operator index (opN_...)."""
    interp = tflite_interpreter(key, preserve=True)
    interp.set_tensor(interp.get_input_details()[0]["index"], sample_nhwc)
    interp.invoke()
    tfl_ops = interp._get_ops_details()
    trace = run_trace(graph, onnx_input(graph, sample_nhwc))
    for op in graph.ops:
        match = re.match(r"op(\d+)_", op.name)
        out = graph.values[op.outputs[0]]
        if not match or out.dtype != "int8":
            continue
        ref = interp.get_tensor(int(tfl_ops[int(match.group(1))]["outputs"][0]))
        ours = trace[out.name]
        if out.layout == "NCHW":
            ours = ours.transpose(0, 2, 3, 1)
        if ours.size != ref.size:
            continue
        diff = np.abs(ours.reshape(ref.shape).astype(int) - ref.astype(int))
        if diff.max():
            return (f"first divergence at op {op.name!r} ({op.kind}): max |diff| {diff.max()} on "
                    f"{int((diff > 0).sum())} of {diff.size} elements")
    return "no intermediate tensor differs"


def assert_matches_tflite(key: str, graph: Graph, inputs: np.ndarray, what: str) -> np.ndarray:
    ours = tinyc_outputs(graph, inputs)
    ref = tflite_outputs(key, inputs).reshape(len(inputs), -1)
    diff = np.abs(ours.astype(int) - ref.astype(int)).max(axis=1)
    if diff.max():
        worst = int(diff.argmax())
        pytest.fail(f"{key} {what}: {int((diff > 0).sum())} of {len(inputs)} samples differ from TFLite "
                    f"BUILTIN_REF (max {diff.max()}); sample {worst}: "
                    f"{first_divergence(key, graph, inputs[worst:worst + 1])}")
    return ours


def single_rounding_requantize(acc: np.ndarray, multiplier, shift) -> np.ndarray:
    """LiteRT 2.3's fully connected requantisation: (acc * multiplier) / 2^(31 - shift), one rounding
    (half up), in 64 bits."""
    total = 31 - np.asarray(shift, dtype=np.int64)
    return (acc * np.asarray(multiplier, dtype=np.int64) + (np.int64(1) << (total - 1))) >> total


def litert_fully_connected(call, x, w, b=None) -> np.ndarray:
    """A test double of LiteRT's fully connected: tinyc's parameters, LiteRT's single rounding."""
    attrs = call.op.attrs
    acc = (x.astype(np.int64) + attrs["input_offset"]) @ w.astype(np.int64).T
    if b is not None:
        acc = acc + b.astype(np.int64)
    y = single_rounding_requantize(acc, attrs["multiplier"], attrs["shift"]) + attrs["output_offset"]
    return np.clip(y, attrs["act_min"], attrs["act_max"]).astype(call.output.dtype)


@pytest.fixture
def litert_rounding(monkeypatch):
    monkeypatch.setitem(int_kernels.KERNELS, "fully_connected", litert_fully_connected)


# ---- whole models --------------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def random_set(key: str) -> tuple[np.ndarray, np.ndarray]:
    """The model's 100 random inputs and BUILTIN_REF's outputs for them (one batched invocation)."""
    inputs = random_inputs(key, RANDOM_SAMPLES, seed=sum(map(ord, key)))
    return inputs, tflite_outputs(key, inputs).reshape(RANDOM_SAMPLES, -1)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("key", list(MODELS))
def test_random_inputs_match_tflite(key, form, litert_rounding):
    graph = compiled(key, form)
    inputs, _ = random_set(key)
    start = time.perf_counter()
    assert_matches_tflite(key, graph, inputs, f"{form}, random inputs")
    per_sample = (time.perf_counter() - start) / RANDOM_SAMPLES
    # VWW (7.5 M MACs) takes 15-30 ms; the bound only catches a pathological slowdown.
    assert per_sample < 0.5, f"{key}: {per_sample:.3f} s per sample"


# Largest |tinyc - BUILTIN_REF| over the 100 random inputs with tinyc's own double rounding
# (measured, deterministic): the models whose fully connected layers never hit a rounding tie agree
# exactly; IC's softmax amplifies one FC tie to 11 LSB; AD's ties spread through its 10 layers.
DOUBLE_ROUNDING_GAP = {"kws": 0, "vww": 0, "ic": 11, "ad": 3, "sww": 0}


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("key", list(MODELS))
def test_double_rounding_gap_to_builtin_ref(key, form):
    inputs, ref = random_set(key)
    ours = tinyc_outputs(compiled(key, form), inputs)
    assert np.abs(ours.astype(int) - ref.astype(int)).max() == DOUBLE_ROUNDING_GAP[key]


TFLM = json.loads((DATA / "tflm_outputs.json").read_text()) if (DATA / "tflm_outputs.json").is_file() else {}
TFLM_NAMES = {"kws": "kws_ref_model", "vww": "vww_96_int8", "ic": "pretrainedResnet_quant", "ad": "ad01_int8"}


def tflm_pattern(count: int) -> np.ndarray:
    """The golden file's input: bytes of a 32-bit LCG (s = s * 1664525 + 1013904223), top byte each."""
    state = 0x12345678
    out = np.empty(count, np.uint8)
    for i in range(count):
        state = (state * 1664525 + 1013904223) % 2 ** 32
        out[i] = state >> 24
    return out.view(np.int8)


def test_tflm_input_pattern_starts_as_documented():
    assert tflm_pattern(8).view(np.uint8).tolist() == [0x75, 0xCD, 0x25, 0x4B, 0x84, 0xE2, 0xEA, 0xF2]


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("key", list(TFLM_NAMES))
def test_tflm_golden_outputs(key, form):
    golden = TFLM["models"][TFLM_NAMES[key]]
    graph = compiled(key, form)
    shape = tflite_input_detail(key)["shape"]
    sample = tflm_pattern(int(np.prod(shape))).reshape(shape)
    trace = run_trace(graph, onnx_input(graph, sample))
    assert trace[graph.outputs[0]].ravel().tolist() == golden["outputs_int8"]
    if "logits_without_final_softmax_int8" in golden:
        softmaxes = [op for op in graph.ops if op.kind == "softmax"]
        assert softmaxes, f"{key}: no softmax left in the lowered graph"
        logits = trace[softmaxes[-1].inputs[0]].ravel().tolist()
        assert logits == golden["logits_without_final_softmax_int8"]


@pytest.mark.parametrize("form", FORMS)
def test_kws_reference_sample(form, litert_rounding):
    sample = np.load(DATA / "kws_sample_int8_1x49x10x1.npy")
    assert_matches_tflite("kws", compiled("kws", form), sample, f"{form}, reference sample")


@pytest.mark.parametrize("form", FORMS)
def test_kws_reference_sample_answers_on(form):
    sample = np.load(DATA / "kws_sample_int8_1x49x10x1.npy")
    ours = tinyc_outputs(compiled("kws", form), sample)
    assert int(ours[0].argmax()) == 5 and int(ours[0, 5]) == 127  # "On", as the submission answers


def sww_samples() -> tuple[np.ndarray, np.ndarray]:
    data = np.load(DATA / "sww_calibration_samples.npz")
    return quantize_input("sww", data["specs"]), data["labels"]


@pytest.mark.parametrize("form", FORMS)
def test_sww_calibration_samples(form, litert_rounding):
    inputs, _ = sww_samples()
    assert_matches_tflite("sww", compiled("sww", form), inputs, f"{form}, calibration samples")


@pytest.mark.parametrize("form", FORMS)
def test_sww_calibration_accuracy(form):
    inputs, labels = sww_samples()
    ours = tinyc_outputs(compiled("sww", form), inputs)
    assert float(np.mean(ours.argmax(axis=1) == labels)) == pytest.approx(41 / 45)  # documented 0.911


def ad_windows() -> np.ndarray:
    frames = np.fromfile(DATA / "ad_normal_id_01_00000000_hist_librosa.bin", dtype="<f4").reshape(200, 128)
    return quantize_input("ad", np.stack([frames[i:i + 5].reshape(640) for i in range(196)]))


@pytest.mark.parametrize("form", FORMS)
def test_ad_real_windows(form, litert_rounding):
    assert_matches_tflite("ad", compiled("ad", form), ad_windows(), f"{form}, real windows")


# ---- layer by layer (frontend independent) -------------------------------------------------------

def _quant(init, scale, zero_point, axis=0) -> QuantParams:
    s = np.atleast_1d(init[scale]).astype(np.float64)
    z = np.atleast_1d(init[zero_point]).astype(np.int64)
    return QuantParams(tuple(s), tuple(z), None if s.size == 1 else axis)


def layer_graph(node, init, in_shapes, out_shape) -> Graph:
    """One QOperator node as a one-op int8 IR graph (NCHW), before requantize."""
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    values: dict[str, Value] = {}

    def value(name, shape, dtype, layout="", quant=None, data=None):
        values[name] = Value(name, shape, dtype, layout, quant, data)
        return name

    layout = "NCHW" if len(in_shapes[0]) == 4 else ""
    kind, op_attrs = node.op_type, {}
    if kind in ("QLinearConv", "QGemm"):
        # QLinearConv: x, s, z, w, s, z, y_s, y_z[, bias]; QGemm: x, s, z, w, s, z, bias, y_s, y_z.
        x, xs, xz, w, ws, wz = node.input[:6]
        if kind == "QLinearConv":
            ys, yz = node.input[6:8]
            bias = node.input[8] if len(node.input) > 8 else ""
        else:
            bias, ys, yz = node.input[6:9]
        w_data = init[w]
        w_quant = _quant(init, ws, wz, 0)
        ins = [value("x", in_shapes[0], "int8", layout, _quant(init, xs, xz)),
               value("w", w_data.shape, "int8", "OIHW" if w_data.ndim == 4 else "", w_quant, w_data)]
        if bias:
            b_scales = tuple(float(init[xs]) * s for s in w_quant.scale)
            ins.append(value("b", init[bias].shape, "int32", "",
                             QuantParams(b_scales, (0,) * len(b_scales), w_quant.axis), init[bias]))
        if kind == "QGemm":
            op_kind = "fully_connected"
        else:
            op_attrs = dict(strides=list(attrs["strides"]), pads=list(attrs["pads"]),
                            dilations=list(attrs["dilations"]))
            group = int(attrs["group"])
            if group > 1 and group == in_shapes[0][1]:
                op_kind = "depthwise_conv2d"
                op_attrs["depth_multiplier"] = w_data.shape[0] // group
            else:
                op_kind = "conv2d"
                op_attrs["group"] = group
    elif kind == "QLinearAveragePool":
        x, xs, xz, ys, yz = node.input
        ins = [value("x", in_shapes[0], "int8", layout, _quant(init, xs, xz))]
        op_kind = "avg_pool2d"
        op_attrs = dict(kernel=list(attrs["kernel_shape"]), strides=list(attrs["strides"]),
                        pads=list(attrs["pads"]))
    elif kind == "QLinearAdd":
        a, as_, az, b, bs, bz, ys, yz = node.input
        ins = [value("a", in_shapes[0], "int8", layout, _quant(init, as_, az)),
               value("b", in_shapes[1], "int8", layout, _quant(init, bs, bz))]
        op_kind = "add"
    elif kind == "QLinearSoftmax":
        x, xs, xz, ys, yz = node.input
        ins = [value("x", in_shapes[0], "int8", "", _quant(init, xs, xz))]
        op_kind, op_attrs = "softmax", {"axis": -1}
    else:
        raise ValueError(f"unexpected node {kind}")
    value("y", out_shape, "int8", layout, _quant(init, ys, yz))
    graph = Graph(node.name, values, [Op(op_kind, node.name, ins, ["y"], op_attrs)],
                  [n for n in ins if values[n].data is None], ["y"])
    verify(graph)
    return graph


def _tflite_tensor_index(onnx_name: str, io_names: dict[str, int]) -> int:
    """The converter names ONNX activations t<TFLite tensor index>_q_<n>; graph I/O keep TFLite names."""
    match = re.match(r"t(\d+)_q_\d+$", onnx_name)
    return int(match.group(1)) if match else io_names[onnx_name]


def _nchw(a: np.ndarray) -> np.ndarray:
    return a.transpose(0, 3, 1, 2) if a.ndim == 4 else a


def litert_fc_layer(graph: Graph, x: np.ndarray) -> np.ndarray:
    op = graph.ops[0]
    w, b = (graph.values[n].data for n in op.inputs[1:3])
    return litert_fully_connected(Call.of(op, [graph.values[n] for n in op.inputs],
                                          graph.values["y"]), x, w, b)


@pytest.mark.parametrize("key", list(MODELS))
def test_every_layer_matches_tflite(key):
    interp = tflite_interpreter(key, preserve=True)
    io_names = {d["name"].replace(":", "_").replace("/", "_").replace(";", "_"): d["index"]
                for d in interp.get_input_details() + interp.get_output_details()}
    model = onnx.load(str(MLPERF / f"{MODELS[key]}_qop.onnx"))
    init = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type != "Reshape"]
    requantize = passes.get("requantize")
    checked = 0
    for sample in random_inputs(key, 3, seed=7):
        interp.set_tensor(interp.get_input_details()[0]["index"], sample[None])
        interp.invoke()
        for node in nodes:
            sources = [node.input[0]] + ([node.input[3]] if node.op_type == "QLinearAdd" else [])
            xs = [_nchw(interp.get_tensor(_tflite_tensor_index(n, io_names))) for n in sources]
            ref = _nchw(interp.get_tensor(_tflite_tensor_index(node.output[0], io_names)))
            graph = requantize(layer_graph(node, init, [x.shape for x in xs], ref.shape))
            verify(graph)
            ours = run(graph, dict(zip(graph.inputs, xs)))["y"]
            if graph.ops[0].kind == "fully_connected":
                # Same multipliers, LiteRT's rounding: exact; ours (double rounding) within 1 LSB.
                np.testing.assert_array_equal(litert_fc_layer(graph, xs[0]), ref, err_msg=node.name)
                assert np.abs(ours.astype(int) - ref.astype(int)).max() <= 1, node.name
            else:
                np.testing.assert_array_equal(ours, ref, err_msg=f"{key} layer {node.name}")
            checked += 1
    assert checked == 3 * len(nodes) > 0
