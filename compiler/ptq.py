"""Precision: compiling a float model in int8 (post-training quantisation) or in float32.

    prepare(graph, options) -> Prepared      the graph to lower: a quantised model as it is; a float
                                             model quantised from its calibration data (int8), or
                                             kept float (float32)
    accuracy(float_graph, lowered, samples)  how far the int8 model's tensors are from the float ones

A float model compiled in int8 goes: canonicalize + fuse (batch norm folded, activations fused) ->
cross-layer equalisation -> calibration (the float graph in the interpreter over the samples) ->
ranges (minmax, percentile, entropy or auto) -> the quantize pass (QDQ form, bias correction) ->
the default pipeline, exactly as a model quantised by another tool.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import calibration as cal
from . import passes as registry
from .errors import TinycError
from .interpreter import run_trace
from .ir import Graph
from .passes.quantize import equalize, quantize_graph

PRECISIONS = ("int8", "float32")
# The float passes a model goes through before calibration (the same as the start of the pipeline).
FLOAT_PREPARATION = ("canonicalize", "fuse")
REPORT_SAMPLES = 16   # calibration samples the accuracy report runs through both models


@dataclass
class Precision:
    """How a model's numbers are represented on the target (the CLI's --precision options)."""

    precision: str = "int8"
    calibration: str | Path | None = None    # .npz, a folder of samples, or "random"
    method: str = "minmax"                   # calibration.METHODS
    bias_correction: bool = True
    equalization: bool = True
    calibration_samples: int = 256           # at most this many samples are used
    show_progress: bool = False              # a progress bar on stderr (the CLI, on a terminal)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise TinycError(f"--precision must be one of {', '.join(PRECISIONS)}, not {self.precision!r}")
        if self.method not in cal.METHODS:
            raise TinycError(f"--calibration-method must be one of {', '.join(cal.METHODS)}, not {self.method!r}")


@dataclass
class Prepared:
    graph: Graph                                  # what the lowering pipeline takes
    float_graph: Graph | None = None              # the float model the int8 one was quantised from
    samples: list = field(default_factory=list)   # calibration samples (for the accuracy report)
    methods: dict[str, str] = field(default_factory=dict)  # tensor -> the range method used


def is_float_model(graph: Graph) -> bool:
    """Ops compute in float and nothing is quantised (a model with no op, or only integer ops, is not)."""
    if any(op.kind in ("quantize", "dequantize", "rescale", "lut") for op in graph.ops):
        return False
    if any(v.quant is not None for v in graph.values.values()):
        return False
    return any(graph.values[op.outputs[0]].dtype == "float32" for op in graph.ops)


def prepare(graph: Graph, options: Precision) -> Prepared:
    """The graph to compile for `options` (see the module docstring); raises TinycError when a float
    model comes without calibration data and --precision int8."""
    float_model = is_float_model(graph)
    if options.precision == "float32":
        if not float_model:
            raise TinycError("--precision float32 compiles float models; this model is already quantised "
                             "(compile it without --precision)")
        return Prepared(graph)
    if not float_model:
        if options.calibration is not None:
            warnings.warn("the model is already quantised: --calibration is not used", stacklevel=2)
        return Prepared(graph)
    if options.calibration is None:
        raise TinycError("the model is float: pass --calibration DATA (an .npz keyed by input name, or a "
                         "folder of samples) to quantise it to int8, or --precision float32 to compile it "
                         "in float")
    float_graph = graph
    for name in FLOAT_PREPARATION:
        float_graph = registry.get(name)(float_graph)
    if options.equalization:
        float_graph = equalize(float_graph)
    samples = cal.load_samples(options.calibration, float_graph)[:options.calibration_samples]
    progress = cal.progress_bar(len(samples)) if options.show_progress else None
    stats = cal.collect(float_graph, samples, progress=progress)
    ranges, methods = cal.choose_ranges(stats, options.method, full_range=float_graph.outputs)
    means = ({name: s.channel_mean for name, s in stats.items() if s.channel_mean is not None}
             if options.bias_correction else None)
    quantised = quantize_graph(float_graph, ranges, input_means=means)
    quantised.meta["calibration"] = {"method": options.method, "samples": len(samples),
                                     "source": str(options.calibration)}
    return Prepared(quantised, float_graph, samples, methods)


def _as_float_layout(array: np.ndarray, layout: str, float_layout: str) -> np.ndarray:
    if array.ndim == 4 and layout == "NHWC" and float_layout != "NHWC":
        return array.transpose(0, 3, 1, 2)
    return array


def accuracy(float_graph: Graph, lowered: Graph, samples: list, methods: dict[str, str] | None = None,
             count: int = REPORT_SAMPLES) -> dict:
    """Per layer, the signal-to-quantisation-noise ratio (dB) and cosine similarity between the float
    model's tensor and the int8 model's (dequantized) one over the first `count` samples; and the same
    for the outputs. The worst layer is named."""
    reference = lowered.meta.get("float_reference", {})
    writers = {op.outputs[0]: op for op in lowered.ops}
    pairs = [(q, f) for q, f in reference.items() if q in lowered.values and q in writers and f in float_graph.values]
    sums = {q: [0.0, 0.0, 0.0, 0.0, 0.0] for q, _ in pairs}  # signal, noise, dot, |f|^2, |q|^2
    outputs = {n: [0.0, 0.0] for n in lowered.outputs}
    used = samples[:count]
    for sample in used:
        f_env = run_trace(float_graph, sample)
        q_env = run_trace(lowered, sample)
        for q, f in pairs:
            v = lowered.values[q]
            real = (q_env[q].astype(np.float64) - v.quant.zero_point[0]) * v.quant.scale[0]
            real = _as_float_layout(real, v.layout, float_graph.values[f].layout).reshape(-1)
            ref = f_env[f].astype(np.float64).reshape(-1)
            s = sums[q]
            s[0] += float(ref @ ref)
            s[1] += float((ref - real) @ (ref - real))
            s[2] += float(ref @ real)
            s[3] += float(ref @ ref)
            s[4] += float(real @ real)
        for n in lowered.outputs:
            ref = f_env[n].astype(np.float64).reshape(-1)
            got = q_env[n].astype(np.float64).reshape(-1)
            outputs[n][0] += float(ref @ ref)
            outputs[n][1] += float((ref - got) @ (ref - got))
    layers = []
    for q, f in pairs:
        signal, noise, dot, ff, qq = sums[q]
        layers.append({"node": writers[q].name, "tensor": f, "sqnr_db": _db(signal, noise),
                       "cosine": dot / math.sqrt(ff * qq) if ff > 0 and qq > 0 else (1.0 if ff == qq else 0.0),
                       "method": (methods or {}).get(f, "")})
    order = {op.name: i for i, op in enumerate(lowered.ops)}
    layers.sort(key=lambda row: order[row["node"]])
    worst = min(layers, key=lambda row: row["sqnr_db"]) if layers else None
    return {"samples": len(used), "layers": layers,
            "outputs": [{"output": n, "sqnr_db": _db(*outputs[n])} for n in lowered.outputs],
            "worst_layer": worst["node"] if worst else None}


def _db(signal: float, noise: float) -> float:
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf
