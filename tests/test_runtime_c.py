"""runtime_c: the portable CMSIS-NN-API kernels equal tinyc's reference interpreter, bit for bit.

The C library is built once per session for the host (gcc -O2 -fPIC -shared, strict warnings) and
called through ctypes with hypothesis-generated shapes and parameters; every kernel's output must
equal what `tinyc.interpreter` computes for the same IR op. Library variants:
  portable   the default build;
  dsp_model  -DTINYC_USE_DSP=1: the DSP-extension inner product with exact C models of SXTB16,
             SXTAB16 and SMLAD, proving that path bit-exact on the host;
  dsp_build, mve_build  -DARM_MATH_DSP / -DARM_MATH_MVEI: the buffer sizes and argument checks of
             CMSIS-NN builds for DSP and Helium cores.
With TINYC_RUNTIME_SANITIZE=1 the libraries carry AddressSanitizer and UBSan;
test_clean_under_sanitizers runs this module that way in a subprocess.
"""
from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tinyc import interpreter
from tinyc import quant_math as qm
from tinyc import targets
from tinyc.targets.kernels.fully_connected import fc_kernel_sums
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.targets import buffer_sizes as bs
from tinyc.targets import packing

REPO = Path(__file__).resolve().parents[1]
RUNTIME = REPO / "runtime_c"
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZE = os.environ.get("TINYC_RUNTIME_SANITIZE") == "1"
EXAMPLES = int(os.environ.get("TINYC_RUNTIME_EXAMPLES", "30"))
VARIANTS = {"portable": [], "dsp_model": ["-DTINYC_USE_DSP=1"], "dsp_build": ["-DARM_MATH_DSP"],
            "mve_build": ["-DARM_MATH_MVEI"]}

SUCCESS, ARG_ERROR = 0, -1

examples = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ---- the library ------------------------------------------------------------------------------

class Tile(ctypes.Structure):
    _fields_ = [("w", ctypes.c_int32), ("h", ctypes.c_int32)]


class Dims(ctypes.Structure):
    _fields_ = [("n", ctypes.c_int32), ("h", ctypes.c_int32), ("w", ctypes.c_int32), ("c", ctypes.c_int32)]


class Context(ctypes.Structure):
    _fields_ = [("buf", ctypes.c_void_p), ("size", ctypes.c_int32)]


class Activation(ctypes.Structure):
    _fields_ = [("min", ctypes.c_int32), ("max", ctypes.c_int32)]


class ConvParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32), ("stride", Tile),
                ("padding", Tile), ("dilation", Tile), ("activation", Activation)]


class DwConvParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("output_offset", ctypes.c_int32),
                ("ch_mult", ctypes.c_int32), ("stride", Tile), ("padding", Tile), ("dilation", Tile),
                ("activation", Activation)]


class PoolParams(ctypes.Structure):
    _fields_ = [("stride", Tile), ("padding", Tile), ("activation", Activation)]


class FcParams(ctypes.Structure):
    _fields_ = [("input_offset", ctypes.c_int32), ("filter_offset", ctypes.c_int32),
                ("output_offset", ctypes.c_int32), ("activation", Activation)]


class PerChannelQuant(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.c_void_p), ("shift", ctypes.c_void_p)]


class TinycConvParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "batches", "input_h", "input_w", "input_c", "output_h", "output_w", "output_c", "kernel_h", "kernel_w",
        "stride_h", "stride_w", "pad_top", "pad_left", "dilation_h", "dilation_w", "input_offset", "output_offset",
        "act_min", "act_max")]


class TinycFcParams(ctypes.Structure):
    _fields_ = [(name, ctypes.c_int32) for name in (
        "batches", "depth", "units", "input_offset", "output_offset", "act_min", "act_max", "per_channel")]


class PerTensorQuant(ctypes.Structure):
    _fields_ = [("multiplier", ctypes.c_int32), ("shift", ctypes.c_int32)]


_P = ctypes.c_void_p
_I = ctypes.c_int32
_F = ctypes.c_float
_REF = ctypes.POINTER
_CONV_ARGS = [_REF(Context), _REF(ConvParams), _REF(PerChannelQuant), _REF(Dims), _P, _REF(Dims), _P,
              _REF(Dims), _P, _REF(Dims), _P]
_DW_ARGS = [_REF(Context), _REF(DwConvParams), _REF(PerChannelQuant), _REF(Dims), _P, _REF(Dims), _P,
            _REF(Dims), _P, _REF(Dims), _P]
_FC_ARGS = [_REF(Context), _REF(FcParams), _P, _REF(Dims), _P, _REF(Dims), _P, _REF(Dims), _P, _REF(Dims), _P]
_POOL_ARGS = [_REF(Context), _REF(PoolParams), _REF(Dims), _P, _REF(Dims), _REF(Dims), _P]
_SIGNATURES = {
    "arm_convolve_wrapper_s8": (_I, _CONV_ARGS),
    "arm_convolve_1x1_s8_fast": (_I, _CONV_ARGS),
    "arm_convolve_1x1_s8": (_I, _CONV_ARGS),
    "arm_convolve_1_x_n_s8": (_I, _CONV_ARGS),
    "arm_convolve_s8": (_I, _CONV_ARGS[:9] + [_REF(Dims)] + _CONV_ARGS[9:]),
    "arm_depthwise_conv_wrapper_s8": (_I, _DW_ARGS),
    "arm_depthwise_conv_s8": (_I, _DW_ARGS),
    "arm_depthwise_conv_3x3_s8": (_I, _DW_ARGS),
    "arm_depthwise_conv_s8_opt": (_I, _DW_ARGS),
    "arm_fully_connected_s8": (_I, _FC_ARGS),
    "arm_fully_connected_per_channel_s8": (_I, _FC_ARGS),
    "arm_vector_sum_s8": (_I, [_P, _I, _I, _P, _I, _I, _P]),
    "arm_elementwise_add_s8": (_I, [_P, _P, _I, _I, _I, _I, _I, _I, _I, _P, _I, _I, _I, _I, _I, _I]),
    "arm_elementwise_mul_s8": (_I, [_P, _P, _I, _I, _P, _I, _I, _I, _I, _I, _I]),
    "arm_avgpool_s8": (_I, _POOL_ARGS),
    "arm_max_pool_s8": (_I, _POOL_ARGS),
    "arm_softmax_s8": (None, [_P, _I, _I, _I, _I, _I, _P]),
    "arm_convolve_s8_get_buffer_size": (_I, [_REF(Dims), _REF(Dims)]),
    "arm_convolve_1x1_s8_fast_get_buffer_size": (_I, [_REF(Dims)]),
    "arm_convolve_1_x_n_s8_get_buffer_size": (_I, [_REF(ConvParams), _REF(Dims), _REF(Dims), _REF(Dims)]),
    "arm_convolve_wrapper_s8_get_buffer_size": (_I, [_REF(ConvParams), _REF(Dims), _REF(Dims), _REF(Dims)]),
    "arm_convolve_wrapper_s8_get_buffer_size_dsp": (_I, [_REF(ConvParams), _REF(Dims), _REF(Dims), _REF(Dims)]),
    "arm_convolve_wrapper_s8_get_buffer_size_mve": (_I, [_REF(ConvParams), _REF(Dims), _REF(Dims), _REF(Dims)]),
    "arm_depthwise_conv_s8_opt_get_buffer_size": (_I, [_REF(Dims), _REF(Dims)]),
    "arm_depthwise_conv_wrapper_s8_get_buffer_size": (_I, [_REF(DwConvParams), _REF(Dims), _REF(Dims), _REF(Dims)]),
    "arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp": (_I, [_REF(DwConvParams), _REF(Dims), _REF(Dims),
                                                               _REF(Dims)]),
    "arm_depthwise_conv_wrapper_s8_get_buffer_size_mve": (_I, [_REF(DwConvParams), _REF(Dims), _REF(Dims),
                                                               _REF(Dims)]),
    "arm_fully_connected_s8_get_buffer_size": (_I, [_REF(Dims)]),
    "arm_fully_connected_s8_get_buffer_size_dsp": (_I, [_REF(Dims)]),
    "arm_fully_connected_s8_get_buffer_size_mve": (_I, [_REF(Dims)]),
    "arm_avgpool_s8_get_buffer_size": (_I, [ctypes.c_int, ctypes.c_int]),
    "arm_avgpool_s8_get_buffer_size_dsp": (_I, [ctypes.c_int, ctypes.c_int]),
    "arm_avgpool_s8_get_buffer_size_mve": (_I, [ctypes.c_int, ctypes.c_int]),
    "tinyc_lut_s8": (None, [_P, _P, _I, _P]),
    "tinyc_quantize_f32_s8": (None, [_P, _P, _I, _F, _I]),
    "tinyc_quantize_f32_u8": (None, [_P, _P, _I, _F, _I]),
    "tinyc_dequantize_s8_f32": (None, [_P, _P, _I, _F, _I]),
    "tinyc_dequantize_u8_f32": (None, [_P, _P, _I, _F, _I]),
    "tinyc_rescale_s8": (None, [_P, _P, _I, _I, _I, _I, _I]),
    "tinyc_rescale_u8_s8": (None, [_P, _P, _I, _I, _I, _I, _I]),
    "tinyc_rescale_s8_u8": (None, [_P, _P, _I, _I, _I, _I, _I]),
    "tinyc_transpose_s8": (None, [_P, _P, _P, _P]),
    "tinyc_transpose_u8": (None, [_P, _P, _P, _P]),
    "tinyc_transpose_f32": (None, [_P, _P, _P, _P]),
    "tinyc_pad_s8": (None, [_P, _P, _P, _P, ctypes.c_int8]),
    "tinyc_concat_s8": (None, [_P, _P, _I, _I, _I, _I]),
    "tinyc_conv_s8": (None, [_P] * 8),
    "tinyc_fully_connected_s8": (None, [_P] * 7),
    "tinyc_add_s8": (None, [_P, _P, _P, _P, _P, _I, _I, _I, _I, _I, _I]),
    "tinyc_add_broadcast_s8": (None, [_P, _P, _P, _P, _I, _I, _I, _I, _I, _I, _I, _P, _P, _I, _I, _I, _I, _I]),
    "tinyc_mul_broadcast_s8": (None, [_P, _P, _P, _P, _I, _I, _P, _P, _I, _I, _I, _I, _I]),
}


def _sanitizer_flags() -> list[str]:
    return ["-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]


def _build(out_dir: Path, variant: str) -> ctypes.CDLL:
    out = out_dir / f"libtinyc_runtime_{variant}.so"
    flags = ["-fPIC", "-shared", *STRICT, *VARIANTS[variant]]
    flags += ["-O1", *_sanitizer_flags()] if SANITIZE else ["-O2"]
    sources = [str(p) for p in sorted(RUNTIME.glob("*.c"))]
    result = subprocess.run(["gcc", *flags, f"-I{RUNTIME}", *sources, "-o", str(out)],
                            capture_output=True, text=True)
    assert result.returncode == 0, f"building runtime_c ({variant}) failed:\n{result.stderr}"
    lib = ctypes.CDLL(str(out))
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


@pytest.fixture(scope="session")
def build_lib(tmp_path_factory):
    cache: dict[str, ctypes.CDLL] = {}
    out_dir = tmp_path_factory.mktemp("runtime_c")

    def get(variant: str = "portable") -> ctypes.CDLL:
        if variant not in cache:
            cache[variant] = _build(out_dir, variant)
        return cache[variant]

    return get


@pytest.fixture(scope="session")
def lib(build_lib):
    return build_lib("portable")


def ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data_as(ctypes.c_void_p)


def dims(n=1, h=1, w=1, c=1) -> Dims:
    return Dims(n, h, w, c)


def ref(struct):
    return ctypes.byref(struct)


# ---- the reference: one op through tinyc.interpreter --------------------------------------------

def run_op(kind: str, attrs: dict, inputs: list[Value], output: Value, feeds: dict[str, np.ndarray]) -> np.ndarray:
    values = {v.name: v for v in inputs + [output]}
    graph = Graph("case", values, [Op(kind, "node", [v.name for v in inputs], [output.name], attrs)],
                  [v.name for v in inputs if not v.is_const], [output.name])
    return interpreter.run(graph, feeds)[output.name]


def act_value(name: str, array: np.ndarray, layout: str = "", scale: float = 0.05, zero_point: int = 0) -> Value:
    return Value(name, array.shape, str(array.dtype), layout, QuantParams.tensor(scale, zero_point))


def const_value(name: str, array: np.ndarray, layout: str = "", quant: QuantParams | None = None) -> Value:
    return Value(name, array.shape, str(array.dtype), layout, quant, array)


def out_value(shape, dtype="int8", layout="", quant=None) -> Value:
    return Value("y", tuple(shape), dtype, layout, quant or QuantParams.tensor(0.1, 0))


# ---- parameter strategies -------------------------------------------------------------------------

def int8_array(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.integers(-128, 128, size=shape, dtype=np.int64).astype(np.int8)


@st.composite
def requant(draw, channels: int = 1):
    """Multipliers in [2^30, 2^31) and shifts that mostly keep outputs in range (sometimes not)."""
    mult = [draw(st.integers(1 << 30, (1 << 31) - 1)) for _ in range(channels)]
    shift = [draw(st.one_of(st.integers(-14, -4), st.integers(-31, 3))) for _ in range(channels)]
    return mult, shift


@st.composite
def activation(draw):
    if draw(st.booleans()):
        return -128, 127
    lo, hi = sorted((draw(st.integers(-128, 127)), draw(st.integers(-128, 127))))
    return lo, hi


def _out_extent(size: int, kernel: int, stride: int, dilation: int, pad_a: int, pad_b: int) -> int:
    return (size + pad_a + pad_b - ((kernel - 1) * dilation + 1)) // stride + 1


@st.composite
def conv_case(draw, *, depthwise: bool = False, fixed: dict | None = None):
    """A lowered conv2d / depthwise_conv2d: shapes, attributes and data (as a dict)."""
    f = dict(fixed or {})

    def pick(key: str, default: st.SearchStrategy) -> int:
        chosen = f.get(key, default)
        return draw(chosen) if isinstance(chosen, st.SearchStrategy) else chosen

    n = pick("n", st.integers(1, 2))
    h, w = pick("h", st.integers(1, 6)), pick("w", st.integers(1, 6))
    kh, kw = pick("kh", st.integers(1, 3)), pick("kw", st.integers(1, 3))
    sh, sw = pick("sh", st.integers(1, 3)), pick("sw", st.integers(1, 3))
    dh, dw = pick("dh", st.integers(1, 2)), pick("dw", st.integers(1, 2))
    pads = [pick(k, st.integers(0, 2)) for k in ("pt", "pl", "pb", "pr")]
    if depthwise:
        c = pick("c", st.integers(1, 6))
        mult = pick("ch_mult", st.integers(1, 3))
        group, kc, oc = c, 1, c * mult
    else:
        group = pick("group", st.integers(1, 3))
        kc = pick("kc", st.integers(1, 4))
        c = group * kc
        oc = group * pick("oc_per_group", st.integers(1, 3))
        mult = 1
    oh = _out_extent(h, kh, sh, dh, pads[0], pads[2])
    ow = _out_extent(w, kw, sw, dw, pads[1], pads[3])
    assume(oh > 0 and ow > 0)
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    multiplier, shift = draw(requant(oc))
    act_min, act_max = draw(activation())
    return dict(n=n, h=h, w=w, c=c, kh=kh, kw=kw, kc=kc, oc=oc, oh=oh, ow=ow, sh=sh, sw=sw, dh=dh, dw=dw,
                pads=pads, group=group, ch_mult=mult, multiplier=multiplier, shift=shift,
                input_offset=draw(st.integers(-127, 128)), output_offset=draw(st.integers(-128, 127)),
                act_min=act_min, act_max=act_max, bias=draw(st.booleans()),
                x=int8_array(rng, (n, h, w, c)),
                weights=int8_array(rng, (1, kh, kw, oc) if depthwise else (oc, kh, kw, kc)),
                bias_data=rng.integers(-(1 << 16), 1 << 16, size=oc).astype(np.int32))


def interpret_conv(case: dict, depthwise: bool, x: np.ndarray | None = None) -> np.ndarray:
    x = case["x"] if x is None else x
    w = case["weights"]
    kind = "depthwise_conv2d" if depthwise else "conv2d"
    attrs = {"strides": [case["sh"], case["sw"]], "pads": list(case["pads"]),
             "dilations": [case["dh"], case["dw"]], "multiplier": case["multiplier"], "shift": case["shift"],
             "input_offset": case["input_offset"], "output_offset": case["output_offset"],
             "act_min": case["act_min"], "act_max": case["act_max"]}
    if depthwise:
        attrs["depth_multiplier"] = case["ch_mult"]
    else:
        attrs["group"] = case["group"]
    oh = _out_extent(x.shape[1], case["kh"], case["sh"], case["dh"], case["pads"][0], case["pads"][2])
    ow = _out_extent(x.shape[2], case["kw"], case["sw"], case["dw"], case["pads"][1], case["pads"][3])
    xv = act_value("x", x, "NHWC", zero_point=-case["input_offset"])
    wq = QuantParams([0.01] * case["oc"], [0] * case["oc"], 3 if depthwise else 0)
    ins = [xv, const_value("w", w, "IHWO" if depthwise else "OHWI", wq)]
    if case["bias"]:
        ins.append(const_value("b", case["bias_data"]))
    y = out_value((x.shape[0], oh, ow, case["oc"]), layout="NHWC")
    return run_op(kind, attrs, ins, y, {"x": x})


def call_conv(lib, fn: str, case: dict, *, scratch: int = 64, upscale: Dims | None = None,
              x: np.ndarray | None = None, input_dims: Dims | None = None) -> tuple[int, np.ndarray]:
    x = case["x"] if x is None else x
    out = np.full((case["n"], case["oh"], case["ow"], case["oc"]), 99, dtype=np.int8)
    buf = np.zeros(max(scratch, 1), dtype=np.int8)
    ctx = Context(ptr(buf) if scratch else None, scratch)
    pt, pl = case["pads"][0], case["pads"][1]
    params = ConvParams(case["input_offset"], case["output_offset"], Tile(case["sw"], case["sh"]), Tile(pl, pt),
                        Tile(case["dw"], case["dh"]), Activation(case["act_min"], case["act_max"]))
    mult = np.asarray(case["multiplier"], np.int32)
    shift = np.asarray(case["shift"], np.int32)
    quant = PerChannelQuant(ptr(mult), ptr(shift))
    in_dims = input_dims or dims(*x.shape)
    f_dims = dims(case["oc"], case["kh"], case["kw"], case["kc"])
    b_dims = dims(1, 1, 1, case["oc"])
    o_dims = dims(*out.shape)
    bias = case["bias_data"] if case["bias"] else None
    args = [ref(ctx), ref(params), ref(quant), ref(in_dims), ptr(x), ref(f_dims), ptr(case["weights"]),
            ref(b_dims), ptr(bias)]
    if fn == "arm_convolve_s8":
        args.append(ref(upscale) if upscale is not None else None)
    status = getattr(lib, fn)(*args, ref(o_dims), ptr(out))
    return status, out


def call_dw(lib, fn: str, case: dict, *, scratch: int = 8192) -> tuple[int, np.ndarray]:
    out = np.full((case["n"], case["oh"], case["ow"], case["oc"]), 99, dtype=np.int8)
    buf = np.zeros(max(scratch, 1), dtype=np.int8)
    ctx = Context(ptr(buf) if scratch else None, scratch)
    pt, pl = case["pads"][0], case["pads"][1]
    params = DwConvParams(case["input_offset"], case["output_offset"], case["ch_mult"], Tile(case["sw"], case["sh"]),
                          Tile(pl, pt), Tile(case["dw"], case["dh"]), Activation(case["act_min"], case["act_max"]))
    mult = np.asarray(case["multiplier"], np.int32)
    shift = np.asarray(case["shift"], np.int32)
    quant = PerChannelQuant(ptr(mult), ptr(shift))
    bias = case["bias_data"] if case["bias"] else None
    status = getattr(lib, fn)(ref(ctx), ref(params), ref(quant), ref(dims(*case["x"].shape)), ptr(case["x"]),
                              ref(dims(1, case["kh"], case["kw"], case["oc"])), ptr(case["weights"]),
                              ref(dims(1, 1, 1, case["oc"])), ptr(bias), ref(dims(*out.shape)), ptr(out))
    return status, out


# ---- convolution ----------------------------------------------------------------------------------

@pytest.mark.parametrize("scratch", [1, 4096], ids=["tap_by_tap", "gathered_window"])
@pytest.mark.parametrize("variant", ["portable", "dsp_model"])
@examples
@given(case=conv_case())
def test_convolve_s8_general_matches_interpreter(build_lib, variant, scratch, case):
    """Both ways runtime_c computes a general convolution: tap by tap (little scratch, or grouped) and
    with each output pixel's window gathered into the scratch buffer first."""
    status, out = call_conv(build_lib(variant), "arm_convolve_s8", case, scratch=scratch)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_conv(case, depthwise=False))


@examples
@given(case=conv_case(fixed={"pb": 0, "pr": 0}))
def test_convolve_wrapper_s8_matches_interpreter(lib, case):
    # The wrapper's 1x1 and 1xN kernels take their padding from the top/left values only, so the
    # cases here keep bottom/right padding at 0 (what tinyc's kernel selection guarantees too).
    status, out = call_conv(lib, "arm_convolve_wrapper_s8", case)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_conv(case, depthwise=False))


@pytest.mark.parametrize("variant", ["portable", "dsp_model"])
@examples
@given(case=conv_case(fixed={"kh": 1, "kw": 1, "sh": 1, "sw": 1, "dh": 1, "dw": 1, "pt": 0, "pl": 0, "pb": 0,
                             "pr": 0, "group": 1, "h": 3}))
def test_convolve_1x1_s8_fast_matches_interpreter(build_lib, variant, case):
    status, out = call_conv(build_lib(variant), "arm_convolve_1x1_s8_fast", case, scratch=0)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_conv(case, depthwise=False))


@examples
@given(case=conv_case(fixed={"kh": 1, "kw": 1, "dh": 1, "dw": 1, "pt": 0, "pl": 0, "pb": 0, "pr": 0, "group": 1}))
def test_convolve_1x1_s8_strided_matches_interpreter(lib, case):
    status, out = call_conv(lib, "arm_convolve_1x1_s8", case, scratch=0)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_conv(case, depthwise=False))


# ---- tinyc's packed-filter convolution and fully connected, table add ---------------------------

def _with_tiny_scales(data, shift: list[int]) -> list[int]:
    """Now and then a shift below -31 (a scale under 2^-32), which takes the kernels' general
    rounding path."""
    return [data.draw(st.sampled_from([s, s, s, -33, -40])) for s in shift]


GUARD = 64  # canary elements around buffers: numpy's small-block cache hides overruns from ASan


def guarded(size: int, dtype, fill: int) -> tuple[np.ndarray, np.ndarray]:
    """(whole buffer, the `size` elements in its middle); the rest is a canary."""
    whole = np.full(size + 2 * GUARD, fill, dtype=dtype)
    return whole, whole[GUARD:GUARD + size]


def assert_guards_intact(whole: np.ndarray, size: int, fill: int) -> None:
    assert (whole[:GUARD] == fill).all() and (whole[GUARD + size:] == fill).all(), "buffer overrun"


def call_tinyc_conv(lib, case: dict) -> np.ndarray:
    shape = (case["n"], case["oh"], case["ow"], case["oc"])
    out_whole, out = guarded(int(np.prod(shape)), np.int8, 99)
    depth4 = packing.conv_depth4(case["weights"].shape)
    scratch_whole, scratch = guarded(2 * depth4, np.int16, 0x5A5A)  # TINYC_CONV_S8_SCRATCH bytes
    packed = packing.pack_conv_filters(case["weights"])
    pt, pl = case["pads"][0], case["pads"][1]
    params = TinycConvParams(case["n"], case["h"], case["w"], case["c"], case["oh"], case["ow"], case["oc"],
                             case["kh"], case["kw"], case["sh"], case["sw"], pt, pl, case["dh"], case["dw"],
                             case["input_offset"], case["output_offset"], case["act_min"], case["act_max"])
    mult = np.asarray(case["multiplier"], np.int32)
    shift = np.asarray(case["shift"], np.int32)
    bias = case["bias_data"] if case["bias"] else None
    lib.tinyc_conv_s8(ref(params), ptr(mult), ptr(shift), ptr(case["x"]), ptr(packed), ptr(bias), ptr(out),
                      ptr(scratch))
    assert_guards_intact(scratch_whole, scratch.size, 0x5A5A)
    assert_guards_intact(out_whole, out.size, 99)
    return out.reshape(shape)


@pytest.mark.parametrize("variant", ["portable", "dsp_model"])
@examples
@given(case=conv_case(fixed={"group": 1, "kc": st.integers(1, 9), "oc_per_group": st.integers(1, 5),
                             "h": st.integers(1, 7), "w": st.integers(1, 7)}),
       data=st.data())
def test_tinyc_conv_s8_matches_interpreter(build_lib, variant, case, data):
    """Any filter size, stride, dilation and padding; depths that are not multiples of 4; odd
    channel and pixel counts (the 1-channel and 1-pixel tails); batches."""
    case["shift"] = _with_tiny_scales(data, case["shift"])
    np.testing.assert_array_equal(call_tinyc_conv(build_lib(variant), case), interpret_conv(case, depthwise=False))


def test_packed_conv_filters_interleave_channel_pairs_by_groups_of_four():
    w = np.arange(3 * 1 * 1 * 6, dtype=np.int8).reshape(3, 1, 1, 6)  # depth 6 -> 8
    packed = packing.pack_conv_filters(w)
    assert packed.tolist() == [0, 1, 2, 3, 6, 7, 8, 9, 4, 5, 0, 0, 10, 11, 0, 0,   # channels 0 and 1
                               12, 13, 14, 15, 16, 17, 0, 0]                      # channel 2 alone
    assert packing.conv_depth4(w.shape) == 8


@st.composite
def tinyc_fc_case(draw):
    """Up to 11 units: blocks of 4 rows and every size of the last block."""
    return draw(fc_case(per_channel=draw(st.booleans()), max_units=11))


@pytest.mark.parametrize("variant", ["portable", "dsp_model"])
@examples
@given(case=tinyc_fc_case(), data=st.data())
def test_tinyc_fully_connected_s8_matches_interpreter(build_lib, variant, case, data):
    """Blocks of 4 rows and the rows left over; depths with a partial last group (the input is
    never read past its end: the sanitizer build checks it); per-tensor and per-channel."""
    case["shift"] = _with_tiny_scales(data, case["shift"])
    out_whole, out = guarded(case["batches"] * case["units"], np.int8, 99)
    per_channel = len(case["multiplier"]) > 1
    params = TinycFcParams(case["batches"], case["depth"], case["units"], case["input_offset"],
                           case["output_offset"], case["act_min"], case["act_max"], int(per_channel))
    mult = np.asarray(case["multiplier"], np.int32)
    shift = np.asarray(case["shift"], np.int32)
    bias = case["bias_data"] if case["bias"] else None
    x = case["x"].copy()  # exactly batches * depth bytes
    build_lib(variant).tinyc_fully_connected_s8(ref(params), ptr(mult), ptr(shift), ptr(x),
                                                ptr(packing.pack_fc_weights(case["weights"])), ptr(bias), ptr(out))
    assert_guards_intact(out_whole, out.size, 99)
    np.testing.assert_array_equal(out.reshape(case["batches"], case["units"]), interpret_fc(case))


def test_packed_fc_weights_interleave_blocks_of_four_rows():
    w = np.arange(5 * 5, dtype=np.int8).reshape(5, 5)  # depth 5 -> 8; rows 0-3 then row 4
    packed = packing.pack_fc_weights(w).tolist()
    assert packed[:16] == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, 15, 16, 17, 18]
    assert packed[16:32] == [4, 0, 0, 0, 9, 0, 0, 0, 14, 0, 0, 0, 19, 0, 0, 0]
    assert packed[32:] == [20, 21, 22, 23, 24, 0, 0, 0]


@examples
@given(case=conv_case(fixed={"h": 1, "kh": 1, "dw": 1, "pt": 0, "pb": 0, "group": 1, "kc": 4, "w": 7}))
def test_convolve_1_x_n_s8_matches_interpreter(lib, case):
    status, out = call_conv(lib, "arm_convolve_1_x_n_s8", case,
                            scratch=bs.convolve_1_x_n_s8("plain", pad_left=case["pads"][1], stride_w=case["sw"],
                                                         kernel_w=case["kw"], input_w=case["w"], input_c=4,
                                                         output_w=case["ow"]))
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_conv(case, depthwise=False))


@examples
@given(case=conv_case(fixed={"group": 1}), up_h=st.booleans(), up_w=st.booleans())
def test_convolve_s8_upscale_reads_zero_inserted_input(lib, case, up_h, up_w):
    """upscale_dims 2 along an axis: the input behaves as if zero-point rows/columns separated its own."""
    x = case["x"]
    n, h, w, c = x.shape
    # inserted positions hold the input zero point, -input_offset (in int8 range by the API's contract)
    big = np.full((n, h * (2 if up_h else 1), w * (2 if up_w else 1), c), -case["input_offset"], dtype=np.int8)
    big[:, ::2 if up_h else 1, ::2 if up_w else 1, :] = x
    oh = _out_extent(big.shape[1], case["kh"], case["sh"], case["dh"], case["pads"][0], case["pads"][2])
    ow = _out_extent(big.shape[2], case["kw"], case["sw"], case["dw"], case["pads"][1], case["pads"][3])
    assume(oh > 0 and ow > 0)
    case = dict(case, oh=oh, ow=ow)
    status, out = call_conv(lib, "arm_convolve_s8", case, upscale=dims(1, 2 if up_h else 1, 2 if up_w else 1, 1),
                            input_dims=dims(*big.shape))
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_conv(case, depthwise=False, x=big))


def _fixed_conv(**overrides) -> dict:
    rng = np.random.default_rng(7)
    case = dict(n=1, h=4, w=4, c=4, kh=1, kw=1, kc=4, oc=2, oh=4, ow=4, sh=1, sw=1, dh=1, dw=1, pads=[0, 0, 0, 0],
                group=1, ch_mult=1, multiplier=[1 << 30] * 2, shift=[-8] * 2, input_offset=3, output_offset=-2,
                act_min=-128, act_max=127, bias=True, x=int8_array(rng, (1, 4, 4, 4)),
                weights=int8_array(rng, (2, 1, 1, 4)), bias_data=np.array([5, -7], np.int32))
    case.update(overrides)
    return case


def test_convolve_kernels_reject_what_cmsis_nn_rejects(lib):
    ok = _fixed_conv()
    assert call_conv(lib, "arm_convolve_1x1_s8_fast", ok, scratch=0)[0] == SUCCESS
    assert call_conv(lib, "arm_convolve_1x1_s8_fast", dict(ok, pads=[0, 1, 0, 0]), scratch=0)[0] == ARG_ERROR
    assert call_conv(lib, "arm_convolve_1x1_s8_fast", dict(ok, sw=2, ow=2), scratch=0)[0] == ARG_ERROR
    assert call_conv(lib, "arm_convolve_1x1_s8", dict(ok, sh=2, oh=2), scratch=0)[0] == SUCCESS
    assert call_conv(lib, "arm_convolve_1x1_s8", dict(ok, pads=[1, 0, 0, 0]), scratch=0)[0] == ARG_ERROR
    # the general kernel insists on its scratch buffer, as CMSIS-NN's does
    assert call_conv(lib, "arm_convolve_s8", ok, scratch=0)[0] == ARG_ERROR
    assert call_conv(lib, "arm_convolve_s8", ok, scratch=64)[0] == SUCCESS
    # output channels must split into the groups
    grouped = _fixed_conv(kc=2, oc=3, multiplier=[1 << 30] * 3, shift=[-8] * 3,
                          weights=np.zeros((3, 1, 1, 2), np.int8), bias_data=np.zeros(3, np.int32))
    assert call_conv(lib, "arm_convolve_s8", grouped)[0] == ARG_ERROR
    row = _fixed_conv(h=1, oh=1, x=np.zeros((1, 1, 4, 4), np.int8), kw=3, ow=2,
                      weights=np.zeros((2, 1, 3, 4), np.int8))
    assert call_conv(lib, "arm_convolve_1_x_n_s8", row)[0] == SUCCESS
    assert call_conv(lib, "arm_convolve_1_x_n_s8", row, scratch=0)[0] == ARG_ERROR
    assert call_conv(lib, "arm_convolve_1_x_n_s8", dict(row, dw=2, ow=0))[0] == ARG_ERROR
    odd = _fixed_conv(h=1, oh=1, c=3, kc=3, x=np.zeros((1, 1, 4, 3), np.int8), kw=3, ow=2,
                      weights=np.zeros((2, 1, 3, 3), np.int8))
    assert call_conv(lib, "arm_convolve_1_x_n_s8", odd)[0] == ARG_ERROR  # stride.w * C_IN % 4 != 0
    tall = _fixed_conv(kw=3, ow=2)
    assert call_conv(lib, "arm_convolve_1_x_n_s8", tall)[0] == ARG_ERROR  # input height 4


# ---- depthwise ------------------------------------------------------------------------------------

@examples
@given(case=conv_case(depthwise=True))
def test_depthwise_conv_s8_matches_interpreter(lib, case):
    status, out = call_dw(lib, "arm_depthwise_conv_s8", case, scratch=0)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_conv(case, depthwise=True))


@examples
@given(case=conv_case(depthwise=True, fixed={"n": 1, "ch_mult": 1, "dh": 1, "dw": 1}))
def test_depthwise_conv_s8_opt_and_wrapper_match_interpreter(build_lib, case):
    expected = interpret_conv(case, depthwise=True)
    for variant in ("portable", "dsp_build", "mve_build"):
        lib = build_lib(variant)
        for fn in ("arm_depthwise_conv_s8_opt", "arm_depthwise_conv_wrapper_s8"):
            status, out = call_dw(lib, fn, case)
            assert status == SUCCESS, (variant, fn)
            np.testing.assert_array_equal(out, expected, err_msg=f"{variant} {fn}")


@examples
@given(case=conv_case(depthwise=True, fixed={"n": 1, "ch_mult": 1, "dh": 1, "dw": 1, "kh": 3, "kw": 3,
                                              "pt": st.integers(0, 1), "pl": st.integers(0, 1),
                                              "pr": st.integers(0, 1)}))
def test_depthwise_conv_3x3_s8_matches_interpreter(lib, case):
    status, out = call_dw(lib, "arm_depthwise_conv_3x3_s8", case, scratch=0)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_conv(case, depthwise=True))


def test_depthwise_kernels_reject_what_cmsis_nn_rejects(build_lib):
    rng = np.random.default_rng(3)
    base = dict(n=1, h=4, w=4, c=4, kh=3, kw=3, kc=1, oc=4, oh=4, ow=4, sh=1, sw=1, dh=1, dw=1, pads=[1, 1, 1, 1],
                group=4, ch_mult=1, multiplier=[1 << 30] * 8, shift=[-8] * 8, input_offset=0, output_offset=0,
                act_min=-128, act_max=127, bias=False, x=int8_array(rng, (1, 4, 4, 4)),
                weights=int8_array(rng, (1, 3, 3, 4)), bias_data=np.zeros(8, np.int32))
    lib = build_lib("portable")
    assert call_dw(lib, "arm_depthwise_conv_3x3_s8", base, scratch=0)[0] == SUCCESS
    assert call_dw(lib, "arm_depthwise_conv_3x3_s8", dict(base, pads=[1, 2, 1, 0]), scratch=0)[0] == ARG_ERROR
    five = dict(base, kh=5, kw=5, pads=[2, 1, 2, 3], weights=int8_array(rng, (1, 5, 5, 4)))
    assert call_dw(lib, "arm_depthwise_conv_3x3_s8", five, scratch=0)[0] == ARG_ERROR
    doubled = dict(base, ch_mult=2, oc=8, weights=int8_array(rng, (1, 3, 3, 8)))
    assert call_dw(lib, "arm_depthwise_conv_3x3_s8", doubled, scratch=0)[0] == ARG_ERROR
    assert call_dw(lib, "arm_depthwise_conv_s8_opt", doubled)[0] == ARG_ERROR
    assert call_dw(lib, "arm_depthwise_conv_s8", doubled, scratch=0)[0] == SUCCESS
    # without DSP/Helium _opt needs no buffer; with them a NULL buffer is an error
    assert call_dw(lib, "arm_depthwise_conv_s8_opt", base, scratch=0)[0] == SUCCESS
    assert call_dw(build_lib("dsp_build"), "arm_depthwise_conv_s8_opt", base, scratch=0)[0] == ARG_ERROR
    assert call_dw(build_lib("mve_build"), "arm_depthwise_conv_s8_opt", base, scratch=0)[0] == ARG_ERROR


# ---- fully connected ------------------------------------------------------------------------------

@st.composite
def fc_case(draw, per_channel: bool, max_units: int = 9):
    batches, depth, units = draw(st.integers(1, 3)), draw(st.integers(1, 40)), draw(st.integers(1, max_units))
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    multiplier, shift = draw(requant(units if per_channel else 1))
    act_min, act_max = draw(activation())
    return dict(batches=batches, depth=depth, units=units, multiplier=multiplier, shift=shift,
                input_offset=draw(st.integers(-127, 128)), output_offset=draw(st.integers(-128, 127)),
                act_min=act_min, act_max=act_max, bias=draw(st.booleans()),
                x=int8_array(rng, (batches, depth)), weights=int8_array(rng, (units, depth)),
                bias_data=rng.integers(-(1 << 16), 1 << 16, size=units).astype(np.int32))


def interpret_fc(case: dict) -> np.ndarray:
    units = case["units"]
    per_channel = len(case["multiplier"]) > 1
    wq = QuantParams([0.01] * units, [0] * units, 0) if per_channel else QuantParams.tensor(0.01, 0)
    ins = [act_value("x", case["x"]), const_value("w", case["weights"], quant=wq)]
    if case["bias"]:
        ins.append(const_value("b", case["bias_data"]))
    attrs = {k: case[k] for k in ("multiplier", "shift", "input_offset", "output_offset", "act_min", "act_max")}
    return run_op("fully_connected", attrs, ins, out_value((case["batches"], units)), {"x": case["x"]})


def call_fc(lib, case: dict, *, filter_offset: int = 0, kernel_sums: np.ndarray | None = None,
            null_buffer: bool = False) -> tuple[int, np.ndarray]:
    out = np.full((case["batches"], case["units"]), 99, dtype=np.int8)
    buf = kernel_sums if kernel_sums is not None else np.zeros(case["units"], np.int32)
    ctx = Context(None if null_buffer else ptr(buf), 0 if null_buffer else buf.nbytes)
    params = FcParams(case["input_offset"], filter_offset, case["output_offset"],
                      Activation(case["act_min"], case["act_max"]))
    mult = np.asarray(case["multiplier"], np.int32)
    shift = np.asarray(case["shift"], np.int32)
    if len(case["multiplier"]) > 1:
        quant, fn = PerChannelQuant(ptr(mult), ptr(shift)), "arm_fully_connected_per_channel_s8"
    else:
        quant, fn = PerTensorQuant(int(mult[0]), int(shift[0])), "arm_fully_connected_s8"
    bias = case["bias_data"] if case["bias"] else None
    status = getattr(lib, fn)(ref(ctx), ref(params), ctypes.c_void_p(ctypes.addressof(quant)),
                              ref(dims(case["batches"], 1, 1, case["depth"])), ptr(case["x"]),
                              ref(dims(case["depth"], 1, 1, case["units"])), ptr(case["weights"]),
                              ref(dims(1, 1, 1, case["units"])), ptr(bias),
                              ref(dims(case["batches"], 1, 1, case["units"])),
                              ptr(out))
    return status, out


@pytest.mark.parametrize("variant", ["portable", "dsp_model"])
@pytest.mark.parametrize("per_channel", [False, True])
@examples
@given(data=st.data())
def test_fully_connected_matches_interpreter(build_lib, variant, per_channel, data):
    case = data.draw(fc_case(per_channel))
    status, out = call_fc(build_lib(variant), case)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_fc(case))


@examples
@given(case=fc_case(per_channel=False), filter_offset=st.integers(-5, 5))
def test_fully_connected_filter_offset_adds_to_every_weight(lib, case, filter_offset):
    """The interpreter's weights are symmetric; a filter offset equals shifting every weight."""
    shifted = np.clip(case["weights"].astype(np.int64) + filter_offset, -128, 127)
    if np.any(shifted != case["weights"].astype(np.int64) + filter_offset):
        return
    status, out = call_fc(lib, case, filter_offset=filter_offset)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_fc(dict(case, weights=shifted.astype(np.int8))))


@examples
@given(data=st.data())
def test_fully_connected_helium_build_reads_kernel_sums(build_lib, data):
    """On Helium builds the bias comes from arm_vector_sum_s8's kernel sums in ctx->buf."""
    lib = build_lib("mve_build")
    case = data.draw(fc_case(per_channel=data.draw(st.booleans())))
    bias = case["bias_data"] if case["bias"] else None
    sums = np.zeros(case["units"], np.int32)
    assert lib.arm_vector_sum_s8(ptr(sums), case["depth"], case["units"], ptr(case["weights"]),
                                 case["input_offset"], 0, ptr(bias)) == SUCCESS
    np.testing.assert_array_equal(sums, fc_kernel_sums(case["weights"], bias, case["input_offset"]))
    status, out = call_fc(lib, case, kernel_sums=sums)
    assert status == SUCCESS
    np.testing.assert_array_equal(out, interpret_fc(case))
    assert call_fc(lib, case, null_buffer=True)[0] == ARG_ERROR
    assert call_fc(build_lib("portable"), case, null_buffer=True)[0] == SUCCESS


# ---- element-wise ---------------------------------------------------------------------------------

@st.composite
def broadcast_shapes(draw, same: bool):
    rank = draw(st.integers(1, 4))
    out = [draw(st.integers(1, 4)) for _ in range(rank)]
    if same:
        return tuple(out), tuple(out), tuple(out)
    a = [d if draw(st.booleans()) else 1 for d in out]
    b = [d if draw(st.booleans()) else 1 for d in out]
    b = b[draw(st.integers(0, rank - 1)):]  # numpy broadcasting also aligns shorter shapes right
    out = list(np.broadcast_shapes(tuple(a), tuple(b)))
    return tuple(a), tuple(b), tuple(out)


def _pad4(shape) -> np.ndarray:
    return np.asarray((1,) * (4 - len(shape)) + tuple(shape), np.int32)


@st.composite
def add_params(draw):
    s1, s2, so = (draw(st.floats(1e-3, 1.0)) for _ in range(3))
    p = qm.add_params(s1, s2, so)
    lo, hi = draw(activation())
    return {"input1_offset": draw(st.integers(-127, 128)), "input2_offset": draw(st.integers(-127, 128)),
            "output_offset": draw(st.integers(-128, 127)), "left_shift": p.left_shift,
            "input1_multiplier": p.input1_multiplier, "input1_shift": p.input1_shift,
            "input2_multiplier": p.input2_multiplier, "input2_shift": p.input2_shift,
            "output_multiplier": p.output_multiplier, "output_shift": p.output_shift, "act_min": lo, "act_max": hi}


@st.composite
def mul_params(draw):
    mult, shift = qm.quantize_multiplier(draw(st.floats(1e-5, 0.5)))
    lo, hi = draw(activation())
    return {"input1_offset": draw(st.integers(-127, 128)), "input2_offset": draw(st.integers(-127, 128)),
            "output_offset": draw(st.integers(-128, 127)), "output_multiplier": mult, "output_shift": shift,
            "act_min": lo, "act_max": hi}


def _elementwise_inputs(data, same: bool):
    a_shape, b_shape, out_shape = data.draw(broadcast_shapes(same))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    return int8_array(rng, a_shape), int8_array(rng, b_shape), out_shape


def interpret_binary(kind: str, attrs: dict, a: np.ndarray, b: np.ndarray, out_shape) -> np.ndarray:
    return run_op(kind, attrs, [act_value("a", a), act_value("b", b)], out_value(out_shape), {"a": a, "b": b})


@examples
@given(data=st.data())
def test_elementwise_add_and_mul_match_interpreter_in_place(lib, data):
    a, b, shape = _elementwise_inputs(data, same=True)
    p = data.draw(add_params())
    expected = interpret_binary("add", p, a, b, shape)
    out = a.copy()  # the output overwrites input 1
    assert lib.arm_elementwise_add_s8(ptr(out), ptr(b), p["input1_offset"], p["input1_multiplier"], p["input1_shift"],
                                      p["input2_offset"], p["input2_multiplier"], p["input2_shift"], p["left_shift"],
                                      ptr(out), p["output_offset"], p["output_multiplier"], p["output_shift"],
                                      p["act_min"], p["act_max"], a.size) == SUCCESS
    np.testing.assert_array_equal(out, expected)
    m = data.draw(mul_params())
    expected = interpret_binary("mul", m, a, b, shape)
    out = b.copy()  # the output overwrites input 2
    assert lib.arm_elementwise_mul_s8(ptr(a), ptr(out), m["input1_offset"], m["input2_offset"], ptr(out),
                                      m["output_offset"], m["output_multiplier"], m["output_shift"], m["act_min"],
                                      m["act_max"], a.size) == SUCCESS
    np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("variant", ["portable", "dsp_model"])
@examples
@given(data=st.data())
def test_tinyc_add_s8_with_tables_matches_interpreter_in_place(build_lib, variant, data):
    a, b, shape = _elementwise_inputs(data, same=True)
    p = data.draw(add_params())
    if data.draw(st.booleans()):  # any left shift and input shifts, not only what add_params derives
        p["left_shift"] = data.draw(st.integers(0, 20))
        p["input1_shift"], p["input2_shift"] = data.draw(st.integers(-31, 0)), data.draw(st.integers(-31, 0))
    expected = interpret_binary("add", p, a, b, shape)
    tables = [packing.add_input_table(p[f"input{k}_offset"], p["left_shift"], p[f"input{k}_multiplier"],
                                      p[f"input{k}_shift"]) for k in (1, 2)]
    assert all(t.dtype == np.int32 and t.shape == (256,) for t in tables)
    out = b.copy()  # the output overwrites input 2
    build_lib(variant).tinyc_add_s8(ptr(a), ptr(out), ptr(tables[0]), ptr(tables[1]), ptr(out), a.size,
                                    p["output_offset"], p["output_multiplier"], p["output_shift"], p["act_min"],
                                    p["act_max"])
    np.testing.assert_array_equal(out, expected)


@examples
@given(data=st.data())
def test_broadcast_add_and_mul_match_interpreter(lib, data):
    a, b, shape = _elementwise_inputs(data, same=False)
    p = data.draw(add_params())
    out = np.full(shape, 99, np.int8)
    lib.tinyc_add_broadcast_s8(ptr(a), ptr(_pad4(a.shape)), ptr(b), ptr(_pad4(b.shape)), p["input1_offset"],
                               p["input1_multiplier"], p["input1_shift"], p["input2_offset"], p["input2_multiplier"],
                               p["input2_shift"], p["left_shift"], ptr(out), ptr(_pad4(shape)), p["output_offset"],
                               p["output_multiplier"], p["output_shift"], p["act_min"], p["act_max"])
    np.testing.assert_array_equal(out, interpret_binary("add", p, a, b, shape))
    m = data.draw(mul_params())
    out = np.full(shape, 99, np.int8)
    lib.tinyc_mul_broadcast_s8(ptr(a), ptr(_pad4(a.shape)), ptr(b), ptr(_pad4(b.shape)), m["input1_offset"],
                               m["input2_offset"], ptr(out), ptr(_pad4(shape)), m["output_offset"],
                               m["output_multiplier"], m["output_shift"], m["act_min"], m["act_max"])
    np.testing.assert_array_equal(out, interpret_binary("mul", m, a, b, shape))


# ---- pooling --------------------------------------------------------------------------------------

@st.composite
def pool_case(draw):
    n, h, w, c = draw(st.integers(1, 2)), draw(st.integers(1, 6)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    # padding smaller than the window keeps every window on the input (tinyc's selection requires it)
    pads = [draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1)), draw(st.integers(0, kh - 1)),
            draw(st.integers(0, kw - 1))]
    oh, ow = _out_extent(h, kh, sh, 1, pads[0], pads[2]), _out_extent(w, kw, sw, 1, pads[1], pads[3])
    if oh <= 0 or ow <= 0:
        pads, oh, ow = [0, 0, 0, 0], 1, 1
        kh, kw = h, w
    lo, hi = draw(activation())
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
    return dict(x=int8_array(rng, (n, h, w, c)), kernel=[kh, kw], strides=[sh, sw], pads=pads, out=(n, oh, ow, c),
                act_min=lo, act_max=hi)


def call_pool(lib, fn: str, case: dict, scratch: int = 256) -> tuple[int, np.ndarray]:
    out = np.full(case["out"], 99, np.int8)
    buf = np.zeros(max(scratch, 1), np.int8)
    ctx = Context(ptr(buf) if scratch else None, scratch)
    params = PoolParams(Tile(case["strides"][1], case["strides"][0]), Tile(case["pads"][1], case["pads"][0]),
                        Activation(case["act_min"], case["act_max"]))
    kh, kw = case["kernel"]
    status = getattr(lib, fn)(ref(ctx), ref(params), ref(dims(*case["x"].shape)), ptr(case["x"]),
                              ref(dims(1, kh, kw, 1)), ref(dims(*case["out"])), ptr(out))
    return status, out


def interpret_pool(kind: str, case: dict) -> np.ndarray:
    attrs = {"kernel": case["kernel"], "strides": case["strides"], "pads": case["pads"],
             "act_min": case["act_min"], "act_max": case["act_max"]}
    # The kernels never see the zero point (padding is excluded from the window); zero point 0 keeps the
    # interpreter's padded taps at 0 too (it pads avg_pool2d's input with the zero point).
    return run_op(kind, attrs, [act_value("x", case["x"], "NHWC", zero_point=0)],
                  out_value(case["out"], layout="NHWC", quant=QuantParams.tensor(0.05, 0)), {"x": case["x"]})


@examples
@given(case=pool_case())
def test_pools_match_interpreter(build_lib, case):
    expected_max = interpret_pool("max_pool2d", case)
    expected_avg = interpret_pool("avg_pool2d", case)
    for variant in ("portable", "dsp_build"):
        lib = build_lib(variant)
        status, out = call_pool(lib, "arm_max_pool_s8", case)
        assert status == SUCCESS
        np.testing.assert_array_equal(out, expected_max)
        status, out = call_pool(lib, "arm_avgpool_s8", case)
        assert status == SUCCESS
        np.testing.assert_array_equal(out, expected_avg)


def test_pools_reject_what_cmsis_nn_rejects(build_lib):
    x = np.arange(-8, 8, dtype=np.int8).reshape(1, 2, 2, 4)
    case = dict(x=x, kernel=[2, 2], strides=[1, 1], pads=[0, 0, 0, 0], out=(1, 1, 1, 4), act_min=-128, act_max=127)
    lib = build_lib("portable")
    assert call_pool(lib, "arm_avgpool_s8", case, scratch=0)[0] == SUCCESS
    assert call_pool(build_lib("dsp_build"), "arm_avgpool_s8", case, scratch=0)[0] == ARG_ERROR  # needs c*4 bytes
    assert call_pool(build_lib("dsp_build"), "arm_avgpool_s8", case, scratch=16)[0] == SUCCESS
    empty = dict(case, x=np.zeros((0, 2, 2, 4), np.int8), out=(0, 1, 1, 4))
    assert call_pool(lib, "arm_avgpool_s8", empty)[0] == ARG_ERROR
    assert call_pool(lib, "arm_max_pool_s8", empty)[0] == ARG_ERROR
    outside = dict(case, kernel=[1, 1], pads=[1, 1, 0, 0], out=(1, 3, 3, 4))  # window (0, 0) is all padding
    assert call_pool(lib, "arm_avgpool_s8", outside)[0] == ARG_ERROR
    assert call_pool(lib, "arm_max_pool_s8", outside)[0] == ARG_ERROR


# ---- softmax --------------------------------------------------------------------------------------

@examples
@given(rows=st.integers(1, 3), row_size=st.one_of(st.integers(1, 12), st.integers(200, 600)),
       scale=st.floats(1e-4, 4.0), beta=st.sampled_from([1.0, 0.5, 2.0]), seed=st.integers(0, 2 ** 32 - 1),
       narrow=st.booleans())
def test_softmax_matches_interpreter(lib, rows, row_size, scale, beta, seed, narrow):
    rng = np.random.default_rng(seed)
    x = int8_array(rng, (rows, row_size))
    if narrow:  # many equal maxima and near-maxima: the long sums and the reciprocal's full range
        x = np.clip(x // 16 + 120, -128, 127).astype(np.int8)
    p = qm.softmax_params(scale, beta)
    attrs = {"axis": -1, "beta": beta, "input_multiplier": p.input_multiplier,
             "input_left_shift": p.input_left_shift, "diff_min": p.diff_min}
    expected = run_op("softmax", attrs, [act_value("x", x, scale=scale)],
                      out_value(x.shape, quant=QuantParams.tensor(1 / 256, -128)), {"x": x})
    out = np.full(x.shape, 99, np.int8)
    lib.arm_softmax_s8(ptr(x), rows, row_size, p.input_multiplier, p.input_left_shift, p.diff_min, ptr(out))
    np.testing.assert_array_equal(out, expected)


# ---- tinyc's kernels ------------------------------------------------------------------------------

@examples
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(1, 300))
def test_lut_matches_interpreter_in_place(lib, seed, size):
    rng = np.random.default_rng(seed)
    x = int8_array(rng, (size,))
    table = int8_array(rng, (256,))
    expected = run_op("lut", {"table": table.astype(int).tolist()}, [act_value("x", x)], out_value(x.shape), {"x": x})
    out = x.copy()
    lib.tinyc_lut_s8(ptr(out), ptr(out), size, ptr(table))
    np.testing.assert_array_equal(out, expected)


def _float_inputs(rng: np.random.Generator, size: int, scale: float) -> np.ndarray:
    """Random floats plus exact halfway points (q + 0.5) * scale, the cases rounding decides."""
    x = rng.normal(0.0, 100.0 * scale, size).astype(np.float32)
    halves = ((rng.integers(-300, 300, size) + 0.5) * scale).astype(np.float32)
    special = np.array([0.0, -0.0, np.inf, -np.inf, 1e30, -1e30], np.float32)
    return np.concatenate([x, halves, special]).astype(np.float32)


@examples
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(1, 100), scale=st.floats(2.0 ** -14, 10.0, width=32),
       zero_point=st.integers(-128, 127), unsigned=st.booleans())
def test_quantize_and_dequantize_match_interpreter(lib, seed, size, scale, zero_point, unsigned):
    rng = np.random.default_rng(seed)
    dtype = "uint8" if unsigned else "int8"
    zp = zero_point + 128 if unsigned else zero_point
    x = _float_inputs(rng, size, scale)
    q = QuantParams.tensor(scale, zp)
    expected = run_op("quantize", {}, [Value("x", x.shape, "float32")], Value("y", x.shape, dtype, "", q), {"x": x})
    buf = x.copy()  # quantize in place: the int8 output starts on the float input
    fn = lib.tinyc_quantize_f32_u8 if unsigned else lib.tinyc_quantize_f32_s8
    fn(ptr(buf), ptr(buf), x.size, scale, zp)
    np.testing.assert_array_equal(buf.view(np.dtype(dtype))[:x.size], expected)
    back = run_op("dequantize", {}, [Value("x", x.shape, dtype, "", q)], Value("y", x.shape, "float32"),
                  {"x": expected})
    out = np.full(x.shape, np.nan, np.float32)
    fn = lib.tinyc_dequantize_u8_f32 if unsigned else lib.tinyc_dequantize_s8_f32
    fn(ptr(expected), ptr(out), x.size, scale, zp)
    np.testing.assert_array_equal(out.view(np.uint32), back.view(np.uint32))


@examples
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(1, 200), multiplier=st.integers(0, (1 << 31) - 1),
       shift=st.integers(-31, 30), input_offset=st.integers(-255, 255), output_offset=st.integers(-255, 255),
       kind=st.sampled_from([("int8", "int8"), ("uint8", "int8"), ("int8", "uint8")]))
def test_rescale_matches_interpreter_in_place(lib, seed, size, multiplier, shift, input_offset, output_offset, kind):
    """The whole multiplier and shift range: exercises the wrapping left shift and both roundings."""
    rng = np.random.default_rng(seed)
    src, dst = kind
    x = rng.integers(0, 256, size).astype(np.uint8) if src == "uint8" else int8_array(rng, (size,))
    attrs = {"multiplier": [multiplier], "shift": [shift], "input_offset": input_offset,
             "output_offset": output_offset}
    expected = run_op("rescale", attrs, [act_value("x", x)], out_value(x.shape, dtype=dst), {"x": x})
    buf = x.copy()
    fn = {("int8", "int8"): lib.tinyc_rescale_s8, ("uint8", "int8"): lib.tinyc_rescale_u8_s8,
          ("int8", "uint8"): lib.tinyc_rescale_s8_u8}[kind]
    fn(ptr(buf), ptr(buf), size, input_offset, multiplier, shift, output_offset)
    np.testing.assert_array_equal(buf.view(np.dtype(dst)), expected)


def test_rescale_with_extreme_parameters_does_not_overflow(lib):
    """A requantised value near INT32_MIN plus a negative output offset (hypothesis found it): the
    C clamps before adding, the interpreter adds in 64 bits; both give the saturated code."""
    x = np.array([-128, -113, -81, -17, 15, 127], np.int8)  # -113 - 255 = -368 requantises to -2147483394
    attrs = {"multiplier": [2147483394], "shift": [27], "input_offset": -255, "output_offset": -255}
    expected = run_op("rescale", attrs, [act_value("x", x)], out_value(x.shape, dtype="int8"), {"x": x})
    buf = x.copy()
    lib.tinyc_rescale_s8(ptr(buf), ptr(buf), x.size, -255, 2147483394, 27, -255)
    np.testing.assert_array_equal(buf, expected)


@examples
@given(data=st.data(), dtype=st.sampled_from(["int8", "uint8", "float32"]))
def test_transpose_matches_interpreter(lib, data, dtype):
    rank = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.integers(1, 4)) for _ in range(rank))
    perm = data.draw(st.permutations(range(rank)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x = (rng.normal(size=shape) * 100).astype(np.float32) if dtype == "float32" else \
        rng.integers(np.iinfo(dtype).min, np.iinfo(dtype).max + 1, size=shape).astype(dtype)
    expected = run_op("transpose", {"perm": list(perm)}, [Value("x", shape, dtype)],
                      Value("y", tuple(shape[p] for p in perm), dtype), {"x": x})
    shape4 = (1,) * (4 - rank) + shape
    perm4 = list(range(4 - rank)) + [p + 4 - rank for p in perm]
    out = np.zeros(expected.shape, dtype)
    fn = {"int8": lib.tinyc_transpose_s8, "uint8": lib.tinyc_transpose_u8, "float32": lib.tinyc_transpose_f32}[dtype]
    fn(ptr(x), ptr(out), ptr(np.asarray(shape4, np.int32)), ptr(np.asarray(perm4, np.int32)))
    np.testing.assert_array_equal(out, expected)


@examples
@given(data=st.data())
def test_pad_and_concat_match_interpreter(lib, data):
    rank = data.draw(st.integers(1, 4))
    shape = tuple(data.draw(st.integers(1, 4)) for _ in range(rank))
    pads = [data.draw(st.integers(0, 2)) for _ in range(2 * rank)]
    value = data.draw(st.integers(-128, 127))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x = int8_array(rng, shape)
    out_shape = tuple(d + pads[i] + pads[i + rank] for i, d in enumerate(shape))
    expected = run_op("pad", {"pads": pads, "value": float(value)}, [act_value("x", x)], out_value(out_shape),
                      {"x": x})
    shape4 = (1,) * (4 - rank) + shape
    pads4 = [0] * (4 - rank) + pads[:rank] + [0] * (4 - rank) + pads[rank:]
    out = np.full(out_shape, 99, np.int8)
    lib.tinyc_pad_s8(ptr(x), ptr(out), ptr(np.asarray(shape4, np.int32)), ptr(np.asarray(pads4, np.int32)), value)
    np.testing.assert_array_equal(out, expected)

    axis = data.draw(st.integers(0, rank - 1))
    parts = []
    for i in range(data.draw(st.integers(1, 3))):
        part_shape = list(shape)
        part_shape[axis] = data.draw(st.integers(1, 3))
        parts.append(act_value(f"x{i}", int8_array(rng, tuple(part_shape))))
    feeds = {v.name: int8_array(rng, v.shape) for v in parts}
    cat_shape = list(shape)
    cat_shape[axis] = sum(v.shape[axis] for v in parts)
    expected = run_op("concat", {"axis": axis}, parts, out_value(cat_shape), feeds)
    out = np.full(cat_shape, 99, np.int8)
    outer = int(np.prod(cat_shape[:axis]))
    inner = int(np.prod(cat_shape[axis + 1:]))
    offset = 0
    for v in parts:
        chunk = v.shape[axis] * inner
        lib.tinyc_concat_s8(ptr(feeds[v.name]), ptr(out), outer, chunk, cat_shape[axis] * inner, offset)
        offset += chunk
    np.testing.assert_array_equal(out, expected)


# ---- buffer sizes: C and tinyc.targets agree --------------------------------------------------------

@examples
@given(case=conv_case(), depthwise_case=conv_case(depthwise=True), channels=st.integers(1, 300),
       units=st.integers(1, 300))
def test_buffer_sizes_agree_with_targets(build_lib, case, depthwise_case, channels, units):
    g = case
    in_dims, f_dims = dims(g["n"], g["h"], g["w"], g["c"]), dims(g["oc"], g["kh"], g["kw"], g["kc"])
    o_dims = dims(g["n"], g["oh"], g["ow"], g["oc"])
    conv = ConvParams(0, 0, Tile(g["sw"], g["sh"]), Tile(g["pads"][1], g["pads"][0]), Tile(g["dw"], g["dh"]),
                      Activation(-128, 127))
    geometry = dict(input_h=g["h"], input_w=g["w"], input_c=g["c"], kernel_h=g["kh"], kernel_w=g["kw"],
                    kernel_c=g["kc"], pad_top=g["pads"][0], pad_left=g["pads"][1], stride_w=g["sw"],
                    dilation_h=g["dh"], dilation_w=g["dw"], output_w=g["ow"])
    d = depthwise_case
    dw_in, dw_f = dims(d["n"], d["h"], d["w"], d["c"]), dims(1, d["kh"], d["kw"], d["oc"])
    dw_out = dims(d["n"], d["oh"], d["ow"], d["oc"])
    dw = DwConvParams(0, 0, d["ch_mult"], Tile(d["sw"], d["sh"]), Tile(d["pads"][1], d["pads"][0]),
                      Tile(d["dw"], d["dh"]), Activation(-128, 127))
    for variant, isa in (("portable", "plain"), ("dsp_build", "dsp"), ("mve_build", "mve")):
        lib = build_lib(variant)
        assert lib.arm_convolve_s8_get_buffer_size(ref(in_dims), ref(f_dims)) == bs.convolve_s8(
            isa, g["c"], g["kh"], g["kw"])
        assert lib.arm_convolve_wrapper_s8_get_buffer_size(ref(conv), ref(in_dims), ref(f_dims), ref(o_dims)) == \
            bs.convolve_wrapper_s8(isa, **geometry)
        assert lib.arm_convolve_1_x_n_s8_get_buffer_size(ref(conv), ref(in_dims), ref(f_dims), ref(o_dims)) == \
            bs.convolve_1_x_n_s8(isa, pad_left=g["pads"][1], stride_w=g["sw"], kernel_w=g["kw"], input_w=g["w"],
                                 input_c=g["c"], output_w=g["ow"], kernel_h=g["kh"])
        assert lib.arm_convolve_1x1_s8_fast_get_buffer_size(ref(in_dims)) == bs.convolve_1x1_s8_fast(isa, g["c"])
        assert lib.arm_depthwise_conv_s8_opt_get_buffer_size(ref(dw_in), ref(dw_f)) == bs.depthwise_conv_s8_opt(
            isa, d["c"], d["kh"], d["kw"])
        assert lib.arm_fully_connected_s8_get_buffer_size(ref(dims(channels, 1, 1, units))) == \
            bs.fully_connected_s8(isa, units)
        assert lib.arm_avgpool_s8_get_buffer_size(3, channels) == bs.avgpool_s8(isa, channels)
        wrapper_dw = lib.arm_depthwise_conv_wrapper_s8_get_buffer_size(ref(dw), ref(dw_in), ref(dw_f), ref(dw_out))
        explicit = {"dsp": lib.arm_depthwise_conv_wrapper_s8_get_buffer_size_dsp,
                    "mve": lib.arm_depthwise_conv_wrapper_s8_get_buffer_size_mve}
        if isa in explicit:
            assert wrapper_dw == explicit[isa](ref(dw), ref(dw_in), ref(dw_f), ref(dw_out))
            conv_explicit = {"dsp": lib.arm_convolve_wrapper_s8_get_buffer_size_dsp,
                             "mve": lib.arm_convolve_wrapper_s8_get_buffer_size_mve}[isa]
            assert conv_explicit(ref(conv), ref(in_dims), ref(f_dims), ref(o_dims)) == \
                bs.convolve_wrapper_s8(isa, **geometry)
            fc_explicit = {"dsp": lib.arm_fully_connected_s8_get_buffer_size_dsp,
                           "mve": lib.arm_fully_connected_s8_get_buffer_size_mve}[isa]
            assert fc_explicit(ref(dims(channels, 1, 1, units))) == bs.fully_connected_s8(isa, units)
            pool_explicit = {"dsp": lib.arm_avgpool_s8_get_buffer_size_dsp,
                             "mve": lib.arm_avgpool_s8_get_buffer_size_mve}[isa]
            assert pool_explicit(3, channels) == bs.avgpool_s8(isa, channels)
        else:
            assert wrapper_dw == 0  # no DSP, no Helium: the 3x3 and general kernels need no scratch


# ---- builds ---------------------------------------------------------------------------------------

ARM_TARGETS = ["cortex-m0", "cortex-m4", "cortex-m55"]


def _compile_all(compiler: str, flags: list[str], out_dir: Path) -> None:
    for source in sorted(RUNTIME.glob("*.c")):
        result = subprocess.run([compiler, *flags, *STRICT, "-O2", f"-I{RUNTIME}", "-c", str(source), "-o",
                                 str(out_dir / (source.stem + ".o"))], capture_output=True, text=True)
        assert result.returncode == 0, f"{compiler} {' '.join(flags)} {source.name}:\n{result.stderr}"


def test_every_file_compiles_strictly_for_the_host(tmp_path):
    _compile_all("gcc", [], tmp_path)
    _compile_all("gcc", ["-DTINYC_USE_DSP=1", "-DARM_MATH_MVEI"], tmp_path)


@pytest.mark.parametrize("target", ARM_TARGETS)
def test_every_file_compiles_strictly_for_arm(tmp_path, target):
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed: cannot cross-compile runtime_c")
    t = targets.get(target)
    builds = {"default": [], "plain": ["-DTINYC_USE_DSP=0"]}
    for build, flags in builds.items():
        (tmp_path / build).mkdir()
        _compile_all(t.compiler, [*t.cflags, *flags], tmp_path / build)
    # The DSP inner product is on by default exactly on the cores with the DSP extension.
    for build in builds:
        disassembly = subprocess.run(["arm-none-eabi-objdump", "-d", str(tmp_path / build / "nn_convolve_s8.o")],
                                     capture_output=True, text=True, check=True).stdout
        assert ("smlad" in disassembly) == (t.dsp and build == "default"), build


def rerun_under_sanitizers(test_file: str, selection: str, examples: int = 4) -> None:
    """Run the tests of `test_file` that `selection` (pytest -k) picks in a subprocess whose ctypes
    libraries carry AddressSanitizer and UBSan (TINYC_RUNTIME_SANITIZE=1), with `examples` hypothesis
    examples each; fails on any report."""
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    if not os.path.isabs(libasan):
        pytest.skip("gcc has no AddressSanitizer runtime")
    env = dict(os.environ, TINYC_RUNTIME_SANITIZE="1", TINYC_RUNTIME_EXAMPLES=str(examples), LD_PRELOAD=libasan,
               ASAN_OPTIONS="detect_leaks=0:abort_on_error=1", UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1")
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", "-p", "no:xdist",
                             test_file, "-k", selection], env=env, capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "passed" in result.stdout


def test_clean_under_sanitizers():
    """The kernel tests again, with AddressSanitizer and UBSan in the library (fewer examples)."""
    if SANITIZE:
        pytest.skip("already running under the sanitizers")
    rerun_under_sanitizers(__file__, "not sanitizers and not compiles and not emulated")


# ---- on emulated cores ----------------------------------------------------------------------------
# The same kernels compiled for real cores and run under QEMU: the plain build (Cortex-M3, soft float),
# the DSP instructions themselves (Cortex-M4) and a Helium build (Cortex-M55, whose fully connected
# layers read kernel sums). Expected outputs come from the interpreter.

def _c_array(ctype: str, name: str, data, const: bool = True) -> str:
    flat = np.asarray(data).ravel()
    if ctype == "float":
        items = [f"{float(v).hex()}f" for v in flat]
    else:
        items = [str(int(v)) for v in flat]
    body = ", ".join(items) if items else "0"
    return f"{'static const' if const else 'static'} {ctype} {name}[{max(flat.size, 1)}] = {{{body}}};"


def _conv_dict(rng, *, n=1, h=5, w=5, c=8, oc=6, kh=3, kw=3, sh=1, sw=1, dh=1, dw=1, pads=(1, 1, 1, 1),
               group=1, depthwise=False) -> dict:
    kc = 1 if depthwise else c // group
    oh = _out_extent(h, kh, sh, dh, pads[0], pads[2])
    ow = _out_extent(w, kw, sw, dw, pads[1], pads[3])
    return dict(n=n, h=h, w=w, c=c, kh=kh, kw=kw, kc=kc, oc=oc, oh=oh, ow=ow, sh=sh, sw=sw, dh=dh, dw=dw,
                pads=list(pads), group=group, ch_mult=oc // c if depthwise else 1,
                multiplier=rng.integers(1 << 30, 1 << 31, oc).tolist(), shift=rng.integers(-10, -5, oc).tolist(),
                input_offset=int(rng.integers(-127, 129)), output_offset=int(rng.integers(-128, 128)),
                act_min=-100, act_max=120, bias=True, x=int8_array(rng, (n, h, w, c)),
                weights=int8_array(rng, (1, kh, kw, oc) if depthwise else (oc, kh, kw, kc)),
                bias_data=rng.integers(-5000, 5000, oc).astype(np.int32))


def _conv_block(name: str, fn: str, case: dict, depthwise: bool) -> str:
    expected = interpret_conv(case, depthwise)
    pt, pl = case["pads"][0], case["pads"][1]
    params = (f"static const cmsis_nn_dw_conv_params p = {{{case['input_offset']}, {case['output_offset']}, "
              f"{case['ch_mult']}, " if depthwise else
              f"static const cmsis_nn_conv_params p = {{{case['input_offset']}, {case['output_offset']}, ")
    params += (f"{{{case['sw']}, {case['sh']}}}, {{{pl}, {pt}}}, {{{case['dw']}, {case['dh']}}}, "
               f"{{{case['act_min']}, {case['act_max']}}}}};")
    f_dims = (f"{{1, {case['kh']}, {case['kw']}, {case['oc']}}}" if depthwise else
              f"{{{case['oc']}, {case['kh']}, {case['kw']}, {case['kc']}}}")
    extra = "NULL, " if fn == "arm_convolve_s8" else ""
    return "\n".join([
        "    {", "        " + _c_array("int8_t", "x", case["x"]), "        " + _c_array("int8_t", "w", case["weights"]),
        "        " + _c_array("int32_t", "b", case["bias_data"]),
        "        " + _c_array("int32_t", "mult", case["multiplier"], const=False),
        "        " + _c_array("int32_t", "shift", case["shift"], const=False),
        "        " + _c_array("int8_t", "want", expected), f"        static int8_t got[{expected.size}];",
        "        const cmsis_nn_context ctx = {scratch, (int32_t)sizeof(scratch)};", "        " + params,
        "        const cmsis_nn_per_channel_quant_params q = {mult, shift};",
        f"        const cmsis_nn_dims in = {{{case['n']}, {case['h']}, {case['w']}, {case['c']}}};",
        f"        const cmsis_nn_dims f = {f_dims};", f"        const cmsis_nn_dims bd = {{1, 1, 1, {case['oc']}}};",
        f"        const cmsis_nn_dims out = {{{case['n']}, {case['oh']}, {case['ow']}, {case['oc']}}};",
        f"        const int status = {fn}(&ctx, &p, &q, &in, x, &f, w, &bd, b, {extra}&out, got);",
        f'        failures += check("{name}", status, got, want, {expected.size});', "    }"])


def _emulator_program(isa: str) -> str:
    rng = np.random.default_rng(2024)
    blocks = [
        _conv_block("conv3x3", "arm_convolve_wrapper_s8", _conv_dict(rng), False),
        _conv_block("grouped", "arm_convolve_s8",
                    _conv_dict(rng, h=6, w=7, c=6, oc=4, kh=2, kw=3, sw=2, dh=2, pads=(0, 1, 1, 0), group=2), False),
        _conv_block("conv1x1", "arm_convolve_1x1_s8_fast",
                    _conv_dict(rng, h=3, w=4, c=13, oc=7, kh=1, kw=1, pads=(0, 0, 0, 0)), False),
        _conv_block("depthwise", "arm_depthwise_conv_wrapper_s8", _conv_dict(rng, c=8, oc=8, depthwise=True), True),
        _conv_block("depthwise_mult2", "arm_depthwise_conv_s8",
                    _conv_dict(rng, c=3, oc=6, sh=2, depthwise=True), True),
    ]
    fc = dict(batches=2, depth=37, units=5, multiplier=[1518500250], shift=[-8], input_offset=17, output_offset=-3,
              act_min=-128, act_max=127, bias=True, x=int8_array(rng, (2, 37)), weights=int8_array(rng, (5, 37)),
              bias_data=rng.integers(-3000, 3000, 5).astype(np.int32))
    sums = "        arm_vector_sum_s8((int32_t *)scratch, 37, 5, w, 17, 0, b);\n" if isa == "mve" else ""
    blocks.append("\n".join([
        "    {", "        " + _c_array("int8_t", "x", fc["x"]), "        " + _c_array("int8_t", "w", fc["weights"]),
        "        " + _c_array("int32_t", "b", fc["bias_data"]),
        "        " + _c_array("int8_t", "want", interpret_fc(fc)),
        "        static int8_t got[10];", "        const cmsis_nn_context ctx = {scratch, (int32_t)sizeof(scratch)};",
        "        const cmsis_nn_fc_params p = {17, 0, -3, {-128, 127}};",
        "        const cmsis_nn_per_tensor_quant_params q = {1518500250, -8};",
        "        const cmsis_nn_dims in = {2, 1, 1, 37}, f = {37, 1, 1, 5}, bd = {1, 1, 1, 5}, out = {2, 1, 1, 5};",
        sums + "        const int status = arm_fully_connected_s8(&ctx, &p, &q, &in, x, &f, w, &bd, b, &out, got);",
        '        failures += check("fully_connected", status, got, want, 10);', "    }"]))
    x = int8_array(rng, (2, 10))
    p = qm.softmax_params(0.07)
    soft = run_op("softmax", {"axis": -1, "input_multiplier": p.input_multiplier,
                              "input_left_shift": p.input_left_shift, "diff_min": p.diff_min},
                  [act_value("x", x)], out_value(x.shape, quant=QuantParams.tensor(1 / 256, -128)), {"x": x})
    blocks.append("\n".join([
        "    {", "        " + _c_array("int8_t", "x", x), "        " + _c_array("int8_t", "want", soft),
        "        static int8_t got[20];",
        f"        arm_softmax_s8(x, 2, 10, {p.input_multiplier}, {p.input_left_shift}, {p.diff_min}, got);",
        '        failures += check("softmax", 0, got, want, 20);', "    }"]))
    pool = dict(x=int8_array(rng, (1, 5, 5, 8)), kernel=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], out=(1, 3, 3, 8),
                act_min=-128, act_max=127)
    blocks.append("\n".join([
        "    {", "        " + _c_array("int8_t", "x", pool["x"]),
        "        " + _c_array("int8_t", "want", interpret_pool("avg_pool2d", pool)), "        static int8_t got[72];",
        "        const cmsis_nn_context ctx = {scratch, (int32_t)sizeof(scratch)};",
        "        const cmsis_nn_pool_params p = {{2, 2}, {1, 1}, {-128, 127}};",
        "        const cmsis_nn_dims in = {1, 5, 5, 8}, f = {1, 3, 3, 1}, out = {1, 3, 3, 8};",
        "        const int status = arm_avgpool_s8(&ctx, &p, &in, x, &f, &out, got);",
        '        failures += check("avgpool", status, got, want, 72);', "    }"]))
    scale = float(np.float32(0.0625 / 3))
    floats = np.concatenate([rng.normal(0, 2, 40), (rng.integers(-200, 200, 24) + 0.5) * scale,
                             [1e30, -1e30]]).astype(np.float32)
    q = QuantParams.tensor(scale, -5)
    quantized = run_op("quantize", {}, [Value("x", floats.shape, "float32")], Value("y", floats.shape, "int8", "", q),
                       {"x": floats})
    back = run_op("dequantize", {}, [Value("x", floats.shape, "int8", "", q)], Value("y", floats.shape, "float32"),
                  {"x": quantized})
    blocks.append("\n".join([
        "    {", "        " + _c_array("float", "x", floats), "        " + _c_array("int8_t", "want", quantized),
        "        " + _c_array("float", "want_back", back), f"        static int8_t got[{floats.size}];",
        f"        static float got_back[{floats.size}];",
        f"        tinyc_quantize_f32_s8(x, got, {floats.size}, {scale.hex()}f, -5);",
        f'        failures += check("quantize", 0, got, want, {floats.size});',
        f"        tinyc_dequantize_s8_f32(want, got_back, {floats.size}, {scale.hex()}f, -5);",
        f'        failures += check("dequantize", 0, (const int8_t *)got_back, (const int8_t *)want_back, '
        f'{floats.size * 4});', "    }"]))
    return "\n".join([
        "#include <stdint.h>", "#include <stdio.h>", "#include <string.h>", "",
        '#include "arm_nnfunctions.h"', '#include "tinyc_kernels.h"', "",
        "static int8_t scratch[16384] __attribute__((aligned(16)));", "",
        "static int check(const char *name, int status, const int8_t *got, const int8_t *want, int n)", "{",
        "    int i;", "    if (status != 0) {", '        printf("%s: status %d\\n", name, status);',
        "        return 1;",
        "    }", "    for (i = 0; i < n; ++i) {", "        if (got[i] != want[i]) {",
        '            printf("%s: byte %d is %d, expected %d\\n", name, i, got[i], want[i]);', "            return 1;",
        "        }", "    }", '    printf("%s: ok\\n", name);', "    return 0;", "}", "",
        "int main(void)", "{", "    int failures = 0;", *blocks, "    return failures;", "}", ""])


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m4", "cortex-m55"])
def test_kernels_bit_exact_on_emulated_cores(tmp_path, target):
    from tinyc import emulator
    from tinyc.errors import TinycError
    try:
        emulator.check_tools(target)
    except TinycError as exc:
        pytest.skip(f"cannot emulate {target}: {exc}")
    main = tmp_path / "main.c"
    main.write_text(_emulator_program(targets.get(target).isa))
    elf = emulator.build_firmware(target, [main, *sorted(RUNTIME.glob("*.c"))], [RUNTIME], tmp_path / "build",
                                  extra_cflags=STRICT)
    result = emulator.run_firmware(elf, target, timeout_s=120, workdir=tmp_path, exact=False)
    assert result.exit_code == 0, result.stdout
    assert result.stdout.count(": ok") == 10, result.stdout
