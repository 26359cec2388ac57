"""The float32 path: float models compiled with tinyc's float kernels (runtime_c/tinyc_f32.c).

- every float model of ../shared/models, built for the host under ASan and UBSan, matches onnxruntime
  and tinyc's interpreter within 1e-5 of the largest output magnitude, on random inputs and on the
  real data shared has; on emulated Cortex-M4 and M7 too, and there bit for bit equal to the host
  where no libm function is involved (one summation order everywhere);
- expf and tanhf of newlib (Cortex-M) and of the host's libm within 2 ulp in sigmoid and tanh;
- each float kernel against the interpreter on hypothesis-drawn shapes and attributes, through
  ctypes (bit for bit where the interpreter computes in float32 too), and again under the sanitizers.
"""
from __future__ import annotations

import ctypes
import functools
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tinyc import interpreter, targets
from tinyc.codegen import CodegenOptions
from tinyc.driver import build_and_run, load_graph, lower_for_codegen
from tinyc.emulator import check_tools
from tinyc.errors import TinycError
from tinyc.interp import float_kernels, movement
from tinyc.ir import Graph, Op, Value
from tinyc.ptq import Precision
from tinyc.verify import verify
from tinyc.verify_host import FLOAT32_TOLERANCE, format_table, verify_model

from test_runtime_c import rerun_under_sanitizers

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "runtime_c"
SHARED = REPO.parent / "shared" / "models"
DATA = SHARED / "data"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wconversion", "-Wdouble-promotion"]
SANITIZE = os.environ.get("TINYC_RUNTIME_SANITIZE") == "1"
EXAMPLES = int(os.environ.get("TINYC_RUNTIME_EXAMPLES", "40"))
TOLERANCE = FLOAT32_TOLERANCE  # 1e-5 of the largest output magnitude

# ---- the float models -----------------------------------------------------------------------------

MODELS = {
    "mnist": "zoo/mnist-8.onnx",
    "kws": "mlperf_tiny/kws/kws_ref_model_dequant_float.onnx",
    "vww": "mlperf_tiny/vww/vww_96_float.onnx",
    "ic": "mlperf_tiny/ic/pretrainedResnet.onnx",
    "ad": "mlperf_tiny/ad/ad01_fp32.onnx",
}
# Models whose kernels call no libm function: the same bits on every core.
NO_LIBM = ("mnist", "ad")
# The int8 KWS input's quantisation (MANIFEST.md): real = scale * (q - zero_point).
KWS_INPUT = (0.584703, 83)

needs_models = pytest.mark.skipif(not SHARED.is_dir(), reason=f"models not found at {SHARED}")


def _random(key: str, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Inputs in each model's own range: pixels 0..255 (MNIST, IC) or 0..1 (VWW), dequantized int8
    features (KWS), log-mel-like values (AD)."""
    if key in ("mnist", "ic"):
        x = rng.uniform(0, 255, shape)
    elif key == "vww":
        x = rng.uniform(0, 1, shape)
    elif key == "kws":
        x = KWS_INPUT[0] * (rng.integers(-128, 128, shape) - KWS_INPUT[1])
    else:
        x = rng.normal(-20, 10, shape)
    return x.astype(np.float32)


def _real(key: str) -> list[np.ndarray]:
    """The real inputs shared has for a model (its ONNX layout)."""
    if key == "kws":
        q = np.load(DATA / "kws_sample_int8_1x49x10x1.npy").astype(np.float32)
        return [(KWS_INPUT[0] * (q - KWS_INPUT[1])).transpose(0, 3, 1, 2).astype(np.float32)]
    if key == "ad":
        frames = np.fromfile(DATA / "ad_normal_id_01_00000000_hist_librosa.bin", dtype="<f4").reshape(200, 128)
        return [frames[i:i + 5].reshape(1, 640) for i in range(196)]
    return []


FLOAT32 = Precision("float32")


@functools.lru_cache(maxsize=None)
def lowered(key: str) -> Graph:
    return lower_for_codegen(load_graph(SHARED / MODELS[key]), precision=FLOAT32)


def samples(key: str, count: int, seed: int, real: int | None = None) -> list[dict[str, np.ndarray]]:
    """`count` random inputs, then the first `real` real ones (all by default)."""
    graph = lowered(key)
    name = graph.inputs[0]
    rng = np.random.default_rng(seed)
    inputs = [_random(key, graph.values[name].shape, rng) for _ in range(count)] + _real(key)[:real]
    return [{name: x} for x in inputs]


def onnxruntime_outputs(key: str, batch: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
    import onnxruntime as ort
    session = ort.InferenceSession(str(SHARED / MODELS[key]), providers=["CPUExecutionProvider"])
    return [session.run(None, sample)[0] for sample in batch]


def relative_error(got: np.ndarray, ref: np.ndarray) -> float:
    """The largest difference relative to the largest magnitude of the reference."""
    return float(np.abs(got.astype(np.float64) - ref).max() / np.abs(ref).max())


def assert_matches(key: str, batch, outputs, what: str) -> list[np.ndarray]:
    """Each sample's output within TOLERANCE of the interpreter's (float64 sums: within about 1e-7 of
    the exact result) and of onnxruntime's. onnxruntime's own float32 sums stray further than that on a
    few real AD windows (6 of 196, up to 9.3e-5 of the largest output; onnxruntime 1.32, x86-64): where
    it is more than TOLERANCE / 10 from the interpreter, the bound against it grows by that distance
    (no float32 evaluation order follows onnxruntime's more closely than the exact result does)."""
    graph = lowered(key)
    got = [o[graph.outputs[0]] for o in outputs]
    for i, (ours, theirs) in enumerate(zip(got, onnxruntime_outputs(key, batch))):
        assert ours.shape == theirs.shape and ours.dtype == np.float32
        reference = interpreter.run(graph, batch[i])[graph.outputs[0]]
        assert relative_error(ours, reference) <= TOLERANCE, f"{key} {what}, sample {i}: vs the interpreter"
        own = relative_error(theirs, reference)
        bound = TOLERANCE if own <= TOLERANCE / 10 else TOLERANCE + own
        assert relative_error(ours, theirs) <= bound, (
            f"{key} {what}, sample {i}: vs onnxruntime (itself {own:.1e} from the interpreter)")
    return got


@needs_models
@pytest.mark.parametrize("key", list(MODELS))
def test_host_build_matches_onnxruntime_under_sanitizers(key, tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no host C compiler")
    batch = samples(key, 4, seed=1)
    outputs, _ = build_and_run(lowered(key), batch, CodegenOptions(name=key, target="host"), tmp_path,
                               sanitize=True)
    assert_matches(key, batch, outputs, "host (ASan, UBSan)")


def _emulated(target: str) -> str:
    try:
        check_tools(target)
    except TinycError as exc:
        pytest.skip(f"cannot emulate {target}: {exc}")
    return target


@needs_models
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
@pytest.mark.parametrize("key", list(MODELS))
def test_emulated_core_matches_onnxruntime(key, target, tmp_path):
    batch = samples(key, 1, seed=2, real=1)
    outputs, cost = build_and_run(lowered(key), batch, CodegenOptions(name=key, target=_emulated(target)),
                                  tmp_path / "fw")
    got = assert_matches(key, batch, outputs, target)
    assert cost.exact and cost.instructions_per_inference > 0
    if key in NO_LIBM:
        host, _ = build_and_run(lowered(key), batch, CodegenOptions(name=key, target="host"), tmp_path / "host")
        for ours, theirs in zip(got, host):
            np.testing.assert_array_equal(ours, theirs[lowered(key).outputs[0]])


@needs_models
def test_verify_reports_relative_errors_for_a_float_model():
    graph = load_graph(SHARED / MODELS["mnist"])
    result = verify_model(str(SHARED / MODELS["mnist"]), graph, CodegenOptions(name="m", target="host"), count=3,
                          precision=FLOAT32)
    assert result["float32"] and result["agrees"] and not result["bit_exact"]
    row = result["rows"][0]
    assert 0 < row["max_relative_error_vs_reference"] <= FLOAT32_TOLERANCE
    assert 0 < row["max_relative_error_vs_onnxruntime"] <= FLOAT32_TOLERANCE
    assert format_table(result).endswith("float32: within 1e-05 of the reference (relative to the largest output): yes")


@pytest.mark.parametrize("target", ["host", "cortex-m4", "cortex-m7"])
def test_libm_functions_are_within_two_ulp(target, tmp_path):
    """sigmoid and tanh (expf, tanhf from the C library: newlib on the cores) within 2 ulp of the
    exact function, softmax (64 exponentials summed) within 8, over -30..30."""
    if target != "host":
        _emulated(target)
    names = ("s", "t", "m")
    values = {n: Value(n, (64, 64), "float32") for n in ("x",) + names}
    graph = Graph("libm", values, [Op("sigmoid", "sigmoid", ["x"], ["s"]), Op("tanh", "tanh", ["x"], ["t"]),
                                   Op("softmax", "softmax", ["x"], ["m"], {"axis": -1})], ["x"], list(names))
    verify(graph)
    x = np.linspace(-30, 30, 64 * 64, dtype=np.float32).reshape(64, 64)
    outputs, _ = build_and_run(graph, [{"x": x}], CodegenOptions(name="libm", target=target), tmp_path)
    exact = x.astype(np.float64)
    e = np.exp(exact - exact.max(axis=1, keepdims=True))
    for name, ref, ulps in (("s", 1 / (1 + np.exp(-exact)), 2), ("t", np.tanh(exact), 2),
                            ("m", e / e.sum(axis=1, keepdims=True), 8)):
        error = np.abs(outputs[0][name] - ref) / np.spacing(np.abs(ref).astype(np.float32))
        assert error.max() <= ulps, f"{name}: {error.max():.2f} ulp"


def test_every_float_op_has_a_float32_kernel():
    """Each op kind with a float form in the interpreter (but those canonicalize always rewrites)
    has a float32 kernel for every core."""
    rewritten = {"global_avg_pool", "identity"}  # avg_pool2d; removed (or a view)
    kinds = (set(float_kernels.KERNELS) | set(movement.KERNELS)) - rewritten - {"dequantize", "reshape"}
    for kind in sorted(kinds):
        float_kernels_of_kind = [k for k in targets.candidates(kind) if k.dtypes and k.dtypes.output == "float32"
                                 and all(d == "float32" for d in k.dtypes.inputs)]
        assert float_kernels_of_kind, kind
        assert all(set(k.isas) == set(targets.ISAS) for k in float_kernels_of_kind), kind


# ---- the kernels through ctypes -------------------------------------------------------------------

_I, _F, _P = ctypes.c_int32, ctypes.c_float, ctypes.c_void_p


class ConvParams(ctypes.Structure):
    _fields_ = [(n, _I) for n in ("batches", "input_h", "input_w", "input_c", "output_h", "output_w", "output_c",
                                  "kernel_h", "kernel_w", "stride_h", "stride_w", "pad_top", "pad_left",
                                  "dilation_h", "dilation_w", "groups")] + [("act_min", _F), ("act_max", _F)]


class GemmParams(ctypes.Structure):
    _fields_ = [(n, _I) for n in ("m", "n", "k", "trans_a", "trans_b", "c_row_stride", "c_col_stride")] + [
        ("alpha", _F), ("beta", _F)]


class PoolParams(ctypes.Structure):
    _fields_ = [(n, _I) for n in ("batches", "input_h", "input_w", "channels", "output_h", "output_w", "kernel_h",
                                  "kernel_w", "stride_h", "stride_w", "pad_top", "pad_left",
                                  "count_include_pad")] + [("act_min", _F), ("act_max", _F)]


_SIGNATURES = {
    "tinyc_conv_f32": [_P] * 5,
    "tinyc_depthwise_conv_f32": [_P] * 5,
    "tinyc_fully_connected_f32": [_P] * 4 + [_I] * 3 + [_F] * 2,
    "tinyc_matmul_f32": [_P] * 5,
    "tinyc_gemm_f32": [_P] * 5,
    "tinyc_batch_norm_f32": [_P] * 6 + [_I] * 3 + [_F],
    "tinyc_add_f32": [_P] * 6 + [_F] * 2,
    "tinyc_mul_f32": [_P] * 6 + [_F] * 2,
    "tinyc_relu_f32": [_P, _P, _I],
    "tinyc_clip_f32": [_P, _P, _I, _F, _F],
    "tinyc_leaky_relu_f32": [_P, _P, _I, _F],
    "tinyc_sigmoid_f32": [_P, _P, _I],
    "tinyc_tanh_f32": [_P, _P, _I],
    "tinyc_hard_swish_f32": [_P, _P, _I],
    "tinyc_max_pool_f32": [_P] * 3,
    "tinyc_avg_pool_f32": [_P] * 3,
    "tinyc_softmax_f32": [_P, _P, _I, _I, _I, _F],
    "tinyc_concat_f32": [_P, _P] + [_I] * 4,
    "tinyc_pad_f32": [_P] * 4 + [_F],
}


@pytest.fixture(scope="module")
def lib(tmp_path_factory) -> ctypes.CDLL:
    out = tmp_path_factory.mktemp("f32") / "libtinyc_f32.so"
    flags = ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
             "-fno-sanitize-recover=all"] if SANITIZE else ["-O2"]
    result = subprocess.run(["gcc", "-fPIC", "-shared", *STRICT, *flags, f"-I{RUNTIME}", str(RUNTIME / "tinyc_f32.c"),
                             "-o", str(out), "-lm"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    library = ctypes.CDLL(str(out))
    for name, argtypes in _SIGNATURES.items():
        getattr(library, name).restype = None
        getattr(library, name).argtypes = argtypes
    return library


def ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(_P)


def shape4(shape) -> np.ndarray:
    return np.asarray([1] * (4 - len(shape)) + list(shape), np.int32)


examples = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def reference(kind: str, attrs: dict, inputs: list[tuple[str, np.ndarray, str, bool]], out_shape,
              out_layout: str = "") -> np.ndarray:
    """One float op through the interpreter: inputs are (name, data, layout, constant)."""
    values = {name: Value(name, data.shape, "float32", layout, None, data if const else None)
              for name, data, layout, const in inputs}
    values["y"] = Value("y", tuple(out_shape), "float32", out_layout)
    graph = Graph("case", values, [Op(kind, "node", [i[0] for i in inputs], ["y"], attrs)],
                  [name for name, _, _, const in inputs if not const], ["y"])
    verify(graph)
    return interpreter.run(graph, {name: data for name, data, _, const in inputs if not const})["y"]


EPS = float(np.finfo(np.float32).eps)
RUN = 8  # products summed plainly before joining a dot product's compensated total (tinyc_f32.c)


TINY = float(np.finfo(np.float32).smallest_subnormal)


def assert_within(got: np.ndarray, ref: np.ndarray, bound) -> None:
    """|got - ref| <= bound (plus a few steps of the smallest subnormal), element by element."""
    assert got.shape == ref.shape and got.dtype == np.float32
    error = np.abs(got.astype(np.float64) - ref)
    bound = np.asarray(bound, np.float64) + 4 * TINY
    worst = np.unravel_index(np.argmax(error - bound), error.shape)
    assert (error <= bound).all(), f"error {error[worst]:.3g} above the bound {np.broadcast_to(bound, error.shape)[worst]:.3g}"


def absolute(inputs: list[tuple[str, np.ndarray, str, bool]]) -> list[tuple[str, np.ndarray, str, bool]]:
    return [(name, np.abs(data), layout, const) for name, data, layout, const in inputs]


@st.composite
def fused_activation(draw) -> tuple[dict, float, float]:
    """(the op's activation attributes, the clamp the kernel applies)."""
    kind = draw(st.sampled_from(["none", "relu", "relu6", "clip"]))
    if kind == "clip":
        lo = draw(st.floats(-3, 1, width=32))
        hi = draw(st.floats(1, 4, width=32))
        return {"activation": "clip", "clip_min": lo, "clip_max": hi}, lo, hi
    return {"activation": kind}, {"none": -np.inf, "relu": 0.0, "relu6": 0.0}[kind], \
        {"none": np.inf, "relu": np.inf, "relu6": 6.0}[kind]


def floats(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def _extent(size: int, k: int, stride: int, dilation: int, pad_a: int, pad_b: int) -> int:
    return (size + pad_a + pad_b - (k - 1) * dilation - 1) // stride + 1


@examples
@given(depthwise=st.booleans(), n=st.integers(1, 2), h=st.integers(1, 7), w=st.integers(1, 7),
       k=st.tuples(st.integers(1, 3), st.integers(1, 3)), stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
       dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)), pads=st.lists(st.integers(0, 2), min_size=4,
                                                                                   max_size=4),
       groups=st.integers(1, 3), per_group=st.tuples(st.integers(1, 5), st.integers(1, 6)), bias=st.booleans(),
       act=fused_activation(), seed=st.integers(0, 2 ** 32 - 1))
def test_convolutions_match_interpreter(lib, depthwise, n, h, w, k, stride, dilation, pads, groups, per_group,
                                        bias, act, seed):
    oh = _extent(h, k[0], stride[0], dilation[0], pads[0], pads[2])
    ow = _extent(w, k[1], stride[1], dilation[1], pads[1], pads[3])
    assume(oh > 0 and ow > 0)
    rng = np.random.default_rng(seed)
    if depthwise:  # groups input channels, per_group[1] % 3 + 1 outputs each
        c, oc = groups, groups * (per_group[1] % 3 + 1)
        w_data, w_layout = floats(rng, (1, *k, oc)), "IHWO"
        attrs = {"depth_multiplier": oc // c}
    else:
        c, oc = groups * per_group[0], groups * per_group[1]
        w_data, w_layout = floats(rng, (oc, *k, per_group[0])), "OHWI"
        attrs = {"group": groups}
    x = floats(rng, (n, h, w, c))
    b = floats(rng, (oc,)) if bias else None
    attrs.update({"strides": list(stride), "pads": list(pads), "dilations": list(dilation), **act[0]})
    inputs = [("x", x, "NHWC", False), ("w", w_data, w_layout, True)] + ([("b", b, "", True)] if bias else [])
    want = reference("depthwise_conv2d" if depthwise else "conv2d", attrs, inputs, (n, oh, ow, oc), "NHWC")
    got = np.full((n, oh, ow, oc), np.nan, np.float32)
    params = ConvParams(n, h, w, c, oh, ow, oc, k[0], k[1], stride[0], stride[1], pads[0], pads[1], dilation[0],
                        dilation[1], 1 if depthwise else groups, act[1], act[2])
    fn = lib.tinyc_depthwise_conv_f32 if depthwise else lib.tinyc_conv_f32
    fn(ctypes.byref(params), ptr(x), ptr(w_data), ptr(b), ptr(got))
    # Runs of at most RUN products (depthwise: at most 9 taps) and a compensated total: within
    # (RUN + 2) eps of the sum of the terms' magnitudes.
    plain = {k: v for k, v in attrs.items() if k not in ("activation", "clip_min", "clip_max")}
    magnitude = reference("depthwise_conv2d" if depthwise else "conv2d", plain, absolute(inputs), (n, oh, ow, oc),
                          "NHWC")
    assert_within(got, want, (max(RUN, k[0] * k[1]) + 2) * EPS * magnitude)


@examples
@given(batches=st.integers(1, 3), depth=st.integers(1, 70), units=st.integers(1, 11), bias=st.booleans(),
       act=fused_activation(), seed=st.integers(0, 2 ** 32 - 1))
def test_fully_connected_matches_interpreter(lib, batches, depth, units, bias, act, seed):
    rng = np.random.default_rng(seed)
    x, w = floats(rng, (batches, depth)), floats(rng, (units, depth))
    b = floats(rng, (units,)) if bias else None
    inputs = [("x", x, "", False), ("w", w, "", True)] + ([("b", b, "", True)] if bias else [])
    want = reference("fully_connected", act[0], inputs, (batches, units))
    got = np.empty((batches, units), np.float32)
    lib.tinyc_fully_connected_f32(ptr(x), ptr(w), ptr(b), ptr(got), batches, depth, units, act[1], act[2])
    assert_within(got, want, (RUN + 2) * EPS * reference("fully_connected", {}, absolute(inputs), (batches, units)))


@examples
@given(a_batch=st.lists(st.integers(1, 3), max_size=2), b_batch=st.lists(st.integers(1, 3), max_size=2),
       m=st.integers(1, 5), k=st.integers(1, 9), n=st.integers(1, 5), seed=st.integers(0, 2 ** 32 - 1))
def test_matmul_matches_interpreter(lib, a_batch, b_batch, m, k, n, seed):
    # Leading axes broadcast where one of them is 1 (or absent).
    rank = max(len(a_batch), len(b_batch))
    a_lead = [1] * (rank - len(a_batch)) + a_batch
    b_lead = [1] * (rank - len(b_batch)) + b_batch
    assume(all(p == q or 1 in (p, q) for p, q in zip(a_lead, b_lead)))
    rng = np.random.default_rng(seed)
    a, b = floats(rng, (*a_batch, m, k)), floats(rng, (*b_batch, k, n))
    out_shape = tuple(max(p, q) for p, q in zip(a_lead, b_lead)) + (m, n)
    want = reference("matmul", {}, [("a", a, "", False), ("b", b, "", False)], out_shape)
    got = np.empty(out_shape, np.float32)
    lib.tinyc_matmul_f32(ptr(a), ptr(shape4(a.shape)), ptr(b), ptr(shape4(b.shape)), ptr(got))
    magnitude = reference("matmul", {}, absolute([("a", a, "", False), ("b", b, "", False)]), out_shape)
    assert_within(got, want, (RUN + 2) * EPS * magnitude)


@examples
@given(m=st.integers(1, 5), n=st.integers(1, 5), k=st.integers(1, 9), trans_a=st.booleans(), trans_b=st.booleans(),
       c_form=st.sampled_from(["none", "scalar", "row", "column", "matrix", "one"]),
       alpha=st.floats(-2, 2, width=32), beta=st.floats(-2, 2, width=32), seed=st.integers(0, 2 ** 32 - 1))
def test_gemm_matches_interpreter(lib, m, n, k, trans_a, trans_b, c_form, alpha, beta, seed):
    from tinyc.targets.kernels.float32 import gemm_c_strides
    rng = np.random.default_rng(seed)
    a = floats(rng, (k, m) if trans_a else (m, k))
    b = floats(rng, (n, k) if trans_b else (k, n))
    c_shape = {"scalar": (), "one": (1,), "row": (n,), "column": (m, 1), "matrix": (m, n), "none": None}[c_form]
    c = floats(rng, c_shape) if c_shape is not None else None
    inputs = [("a", a, "", False), ("b", b, "", False)] + ([("c", c, "", False)] if c is not None else [])
    want = reference("gemm", {"alpha": alpha, "beta": beta, "trans_a": trans_a, "trans_b": trans_b}, inputs, (m, n))
    row, col = gemm_c_strides(c_shape) if c is not None else (0, 0)
    got = np.empty((m, n), np.float32)
    lib.tinyc_gemm_f32(ctypes.byref(GemmParams(m, n, k, trans_a, trans_b, row, col, alpha, beta)), ptr(a), ptr(b),
                       ptr(c), ptr(got))
    magnitude = reference("gemm", {"alpha": abs(alpha), "beta": abs(beta), "trans_a": trans_a, "trans_b": trans_b},
                          absolute(inputs), (m, n))
    assert_within(got, want, (RUN + 4) * EPS * magnitude)


@examples
@given(shape=st.lists(st.integers(1, 5), min_size=2, max_size=4), epsilon=st.sampled_from([1e-5, 1e-3, 0.25]),
       seed=st.integers(0, 2 ** 32 - 1))
def test_batch_norm_matches_interpreter_bit_for_bit_in_place(lib, shape, epsilon, seed):
    rng = np.random.default_rng(seed)
    layout = "NHWC" if len(shape) == 4 and rng.integers(2) else ("NCHW" if len(shape) == 4 else "")
    axis = 3 if layout == "NHWC" else 1
    c = shape[axis]
    x = floats(rng, shape)
    params = [floats(rng, (c,)), floats(rng, (c,)), floats(rng, (c,)), np.abs(floats(rng, (c,)))]
    inputs = [("x", x, layout, False)] + [(name, p, "", False) for name, p in zip(("s", "b", "m", "v"), params)]
    want = reference("batch_norm", {"epsilon": epsilon}, inputs, shape, layout)
    outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    got = x.copy()
    lib.tinyc_batch_norm_f32(ptr(got), *(ptr(p) for p in params), ptr(got), outer, c, inner, epsilon)
    np.testing.assert_array_equal(got, want)


@st.composite
def broadcast_shapes(draw):
    """Two shapes of rank <= 4 that broadcast to a third."""
    out = draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    shapes = []
    for _ in range(2):
        rank = draw(st.integers(0, len(out)))
        tail = out[len(out) - rank:]
        shapes.append([d if draw(st.booleans()) else 1 for d in tail])
    return shapes


@examples
@given(kind=st.sampled_from(["add", "mul"]), shapes=broadcast_shapes(), act=fused_activation(),
       in_place=st.booleans(), seed=st.integers(0, 2 ** 32 - 1))
def test_add_and_mul_match_interpreter_bit_for_bit(lib, kind, shapes, act, in_place, seed):
    rng = np.random.default_rng(seed)
    a, b = floats(rng, shapes[0]), floats(rng, shapes[1])
    out_shape = np.broadcast_shapes(a.shape, b.shape)
    want = reference(kind, act[0], [("a", a, "", False), ("b", b, "", False)], out_shape)
    in_place = in_place and a.shape == out_shape
    got = a.copy() if in_place else np.empty(out_shape, np.float32)
    fn = lib.tinyc_add_f32 if kind == "add" else lib.tinyc_mul_f32
    fn(ptr(got if in_place else a), ptr(shape4(a.shape)), ptr(b), ptr(shape4(b.shape)), ptr(got),
       ptr(shape4(out_shape)), act[1], act[2])
    np.testing.assert_array_equal(got, want)


@examples
@given(kind=st.sampled_from(["relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_swish"]),
       size=st.integers(1, 300), scale=st.sampled_from([1.0, 10.0, 100.0]),
       bounds=st.tuples(st.floats(-5, 0, width=32), st.floats(0, 5, width=32)),
       alpha=st.floats(-1, 1, width=32), seed=st.integers(0, 2 ** 32 - 1))
def test_activations_match_interpreter_in_place(lib, kind, size, scale, bounds, alpha, seed):
    x = (floats(np.random.default_rng(seed), (size,)) * np.float32(scale)).astype(np.float32)
    attrs, extra = {}, ()
    if kind == "clip":
        attrs, extra = {"min": bounds[0], "max": bounds[1]}, bounds
    elif kind == "leaky_relu":
        attrs, extra = {"alpha": alpha}, (alpha,)
    want = reference(kind, attrs, [("x", x, "", False)], x.shape)
    got = x.copy()
    getattr(lib, f"tinyc_{kind}_f32")(ptr(got), ptr(got), size, *extra)
    if kind in ("sigmoid", "tanh"):  # expf, tanhf of the C library against numpy's
        np.testing.assert_allclose(got, want, rtol=4 * np.finfo(np.float32).eps, atol=1e-37)
    else:
        np.testing.assert_array_equal(got, want)


@examples
@given(kind=st.sampled_from(["max_pool2d", "avg_pool2d"]), n=st.integers(1, 2), h=st.integers(1, 7),
       w=st.integers(1, 7), c=st.integers(1, 6), k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
       stride=st.tuples(st.integers(1, 3), st.integers(1, 3)), pad_fractions=st.lists(st.floats(0, 0.99), min_size=4,
                                                                                      max_size=4),
       counted=st.booleans(), act=fused_activation(), seed=st.integers(0, 2 ** 32 - 1))
def test_pools_match_interpreter(lib, kind, n, h, w, c, k, stride, pad_fractions, counted, act, seed):
    # Pads below the window size: every window covers an input position (the kernels' precondition).
    pads = [int(f * k[i % 2]) for i, f in enumerate(pad_fractions)]
    oh = _extent(h, k[0], stride[0], 1, pads[0], pads[2])
    ow = _extent(w, k[1], stride[1], 1, pads[1], pads[3])
    assume(oh > 0 and ow > 0)
    x = floats(np.random.default_rng(seed), (n, h, w, c))
    attrs = {"kernel": list(k), "strides": list(stride), "pads": list(pads), **act[0]}
    if kind == "avg_pool2d":
        attrs["count_include_pad"] = counted
    want = reference(kind, attrs, [("x", x, "NHWC", False)], (n, oh, ow, c), "NHWC")
    got = np.empty((n, oh, ow, c), np.float32)
    params = PoolParams(n, h, w, c, oh, ow, k[0], k[1], stride[0], stride[1], pads[0], pads[1],
                        int(kind == "avg_pool2d" and counted), act[1], act[2])
    (lib.tinyc_max_pool_f32 if kind == "max_pool2d" else lib.tinyc_avg_pool_f32)(ctypes.byref(params), ptr(x),
                                                                                 ptr(got))
    if kind == "max_pool2d":
        np.testing.assert_array_equal(got, want)
    else:  # a plain sum of at most 16 values, then a division
        plain = {k: v for k, v in attrs.items() if k not in ("activation", "clip_min", "clip_max")}
        magnitude = reference(kind, plain, [("x", np.abs(x), "NHWC", False)], (n, oh, ow, c), "NHWC")
        assert_within(got, want, (k[0] * k[1] + 1) * EPS * magnitude)


@examples
@given(shape=st.lists(st.integers(1, 6), min_size=1, max_size=4), axis=st.integers(0, 3),
       beta=st.sampled_from([1.0, 0.5, 2.0]), scale=st.sampled_from([1.0, 30.0]), seed=st.integers(0, 2 ** 32 - 1))
def test_softmax_matches_interpreter_in_place(lib, shape, axis, beta, scale, seed):
    axis %= len(shape)
    x = (floats(np.random.default_rng(seed), shape) * np.float32(scale)).astype(np.float32)
    want = reference("softmax", {"axis": axis, "beta": beta}, [("x", x, "", False)], x.shape)
    got = x.copy()
    lib.tinyc_softmax_f32(ptr(got), ptr(got), int(np.prod(shape[:axis])), shape[axis],
                          int(np.prod(shape[axis + 1:])), beta)
    # Relative to each output: the rounding of z - max z (as much as |z| + |z - max z| ulp of the
    # exponent), expf within 2 ulp, a plain sum of shape[axis] terms, a division.
    z = x.astype(np.float64) * beta
    spread = np.abs(z - z.max(axis=axis, keepdims=True))
    assert_within(got, want, (np.abs(z) + spread + shape[axis] + 6) * EPS * want)


@examples
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), pads=st.lists(st.integers(0, 2), min_size=8,
                                                                                max_size=8),
       value=st.floats(-10, 10, width=32), axis=st.integers(0, 3), parts=st.lists(st.integers(1, 3), min_size=1,
                                                                                   max_size=3),
       seed=st.integers(0, 2 ** 32 - 1))
def test_pad_and_concat_match_interpreter_bit_for_bit(lib, shape, pads, value, axis, parts, seed):
    rng = np.random.default_rng(seed)
    rank = len(shape)
    x = floats(rng, shape)
    begins, ends = pads[:rank], pads[4:4 + rank]
    out_shape = tuple(d + p + q for d, p, q in zip(shape, begins, ends))
    want = reference("pad", {"pads": begins + ends, "value": value}, [("x", x, "", False)], out_shape)
    got = np.empty(out_shape, np.float32)
    lib.tinyc_pad_f32(ptr(x), ptr(got), ptr(shape4(shape)), ptr(np.asarray([0] * (4 - rank) + begins + [0] * (4 - rank)
                                                                            + ends, np.int32)), value)
    np.testing.assert_array_equal(got, want)
    # Concatenate pieces of x's shape along one axis, one call per input.
    axis %= rank
    pieces = [floats(rng, [p if i == axis else d for i, d in enumerate(shape)]) for p in parts]
    out_shape = list(shape)
    out_shape[axis] = sum(parts)
    want = reference("concat", {"axis": axis}, [(f"x{i}", p, "", False) for i, p in enumerate(pieces)], out_shape)
    got = np.full(out_shape, np.nan, np.float32)
    outer, inner = int(np.prod(shape[:axis])), int(np.prod(shape[axis + 1:]))
    offset = 0
    for piece in pieces:
        lib.tinyc_concat_f32(ptr(piece), ptr(got), outer, piece.shape[axis] * inner, sum(parts) * inner, offset)
        offset += piece.shape[axis] * inner
    np.testing.assert_array_equal(got, want)


def test_kernels_build_strictly_for_every_core(tmp_path):
    """tinyc_f32.c with -Wconversion and -Wdouble-promotion, for the host and for each core: no double
    arithmetic on single-precision FPUs (no call of the software double routines)."""
    for target in targets.names():
        t = targets.get(target)
        if not t.is_host and shutil.which(t.compiler) is None:
            continue
        obj = tmp_path / f"{target}.o"
        result = subprocess.run([t.compiler if not t.is_host else "gcc", *t.cflags, *STRICT, "-O2", f"-I{RUNTIME}",
                                 "-c", str(RUNTIME / "tinyc_f32.c"), "-o", str(obj)], capture_output=True, text=True)
        assert result.returncode == 0, f"{target}:\n{result.stderr}"
        if not t.is_host:
            symbols = subprocess.run(["arm-none-eabi-nm", str(obj)], capture_output=True, text=True).stdout
            assert "__aeabi_d" not in symbols, f"{target} calls double-precision routines"


def test_clean_under_sanitizers():
    """The kernel tests again with AddressSanitizer and UBSan in the library (fewer examples)."""
    if SANITIZE:
        pytest.skip("already running under the sanitizers")
    rerun_under_sanitizers(__file__, "interpreter", examples=10)
