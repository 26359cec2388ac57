"""`tinyc verify`: build the generated C for this machine and compare it with the reference interpreter
(must be bit-exact) and with onnxruntime on the original model (a tolerance figure, in LSB).

A float model's float32 C agrees with the interpreter when each output is within FLOAT32_TOLERANCE
of it, relative to the output's largest magnitude (float sums in another order, docs/kernels.md):
its table gives those relative errors instead of LSB."""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from . import tensor_io
from .codegen.report import accuracy_markdown
from .driver import build_and_run, input_specs, lower_for_codegen
from .errors import TinycError
from .interpreter import run as run_reference
from .ir import Graph
from .ptq import Precision, is_float_model

FLOAT32_TOLERANCE = 1e-5  # of the largest output magnitude


def random_samples(graph: Graph, count: int, seed: int) -> list[dict[str, np.ndarray]]:
    """Inputs spread over each input's whole range: int codes uniformly, float inputs of a quantised
    model over its quantisation range, other float inputs standard normal."""
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(count):
        sample = {}
        for name in graph.inputs:
            v = graph.values[name]
            if v.dtype in ("int8", "uint8", "int16"):
                info = np.iinfo(v.dtype)
                sample[name] = rng.integers(info.min, info.max + 1, size=v.shape).astype(v.dtype)
            else:
                lo, hi = input_range(graph, name)
                sample[name] = rng.uniform(lo, hi, size=v.shape).astype(np.float32)
        samples.append(sample)
    return samples


def input_range(graph: Graph, name: str) -> tuple[float, float]:
    """The real range the quantize reading float input `name` (through reshapes and transposes) can
    represent; -3..3 when no quantize reads it."""
    frontier = [name]
    while frontier:
        current = frontier.pop()
        for op in [op for op in graph.ops if current in op.inputs]:
            if op.kind == "quantize":
                q = graph.values[op.outputs[0]].quant
                info = np.iinfo(graph.values[op.outputs[0]].dtype)
                s, z = q.scale[0], q.zero_point[0]
                return s * (info.min - z), s * (info.max - z)
            if op.kind in ("reshape", "transpose"):
                frontier.append(op.outputs[0])
    return -3.0, 3.0


def _onnxruntime_outputs(model_path: str, lowered: Graph, samples, input_layout: str):
    """onnxruntime's outputs for the samples, or a string saying why there are none (it is an
    optional tolerance reference: not installed, not an ONNX file, or a model it refuses)."""
    try:
        import onnxruntime as ort  # optional (the test extra): imported only when verifying
    except ImportError:
        return "onnxruntime is not installed"
    if not str(model_path).endswith(".onnx"):
        return "not an ONNX file"
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for models it refuses
        first = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        return f"onnxruntime refuses the model: {first[:160]}"
    results = []
    for sample in samples:
        feed = {}
        for name in lowered.inputs:
            x = sample[name]
            if input_layout == "nhwc" and x.ndim == 4:
                x = x.transpose(0, 3, 1, 2)
            feed[name] = np.ascontiguousarray(x)
        outs = session.run(list(lowered.outputs), feed)
        results.append(dict(zip(lowered.outputs, outs)))
    return results


def _lsb(a: np.ndarray, b: np.ndarray, graph: Graph, name: str) -> float:
    """Largest difference in units of the output's last bit (its scale for float outputs)."""
    v = graph.values[name]
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    if v.dtype == "float32":
        scale = _output_scale(graph, name)
        return float(diff.max() / scale) if scale else float(diff.max())
    return float(diff.max())


def _output_scale(graph: Graph, name: str) -> float | None:
    for op in graph.ops:
        if op.kind == "dequantize" and op.outputs[0] == name:
            return graph.values[op.inputs[0]].quant.scale[0]
    return None


def _relative(a: np.ndarray, b: np.ndarray) -> float:
    """The largest difference relative to the largest magnitude of `b` (0 when both are all zero)."""
    diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max(initial=0.0))
    scale = float(np.abs(b.astype(np.float64)).max(initial=0.0))
    return diff / scale if scale else diff


def verify_model(model_path: str, graph: Graph, options, *, count: int = 20, seed: int = 0,
                 inputs_path: str | None = None, input_layout: str = "model", cmsis_nn: str | None = None,
                 sanitize: bool = False, precision: Precision | None = None) -> dict:
    lowered = lower_for_codegen(graph, input_layout, precision)
    samples = random_samples(lowered, count, seed)
    if inputs_path:
        specs = input_specs(lowered)
        samples += tensor_io.split_batch(tensor_io.read_inputs(inputs_path, specs), specs).samples
    if not samples:
        raise TinycError("nothing to verify: pass --count N or --inputs FILE")
    with tempfile.TemporaryDirectory(prefix="tinyc-verify-") as tmp:
        compiled, _ = build_and_run(lowered, samples, options, Path(tmp), cmsis_nn, sanitize=sanitize)
    reference = [run_reference(lowered, s) for s in samples]
    ort = _onnxruntime_outputs(model_path, lowered, samples, input_layout)
    ort_note = ort if isinstance(ort, str) else None
    ort = None if isinstance(ort, str) else ort
    float32 = is_float_model(lowered)
    measure = _relative if float32 else (lambda a, b, name: _lsb(a, b, lowered, name))
    rows = []
    exact_all = agrees = True
    for name in lowered.outputs:
        exact = sum(np.array_equal(c[name], r[name]) for c, r in zip(compiled, reference))
        max_ref = max(measure(c[name], r[name], *(() if float32 else (name,))) for c, r in zip(compiled, reference))
        max_ort = (max(measure(c[name], o[name], *(() if float32 else (name,))) for c, o in zip(compiled, ort))
                   if ort is not None else None)
        exact_all &= exact == len(samples)
        agrees &= max_ref <= FLOAT32_TOLERANCE if float32 else exact == len(samples)
        rows.append({"output": name, "samples": len(samples), "bit_exact": exact,
                     "max_lsb_vs_reference": None if float32 else max_ref,
                     "max_lsb_vs_onnxruntime": None if float32 else max_ort,
                     "max_relative_error_vs_reference": max_ref if float32 else None,
                     "max_relative_error_vs_onnxruntime": max_ort if float32 else None})
    return {"rows": rows, "bit_exact": exact_all, "float32": float32, "agrees": agrees, "samples": len(samples),
            "onnxruntime_note": ort_note, "accuracy": lowered.meta.get("accuracy")}


def format_accuracy(accuracy: dict) -> str:
    """The int8 model against the float one it was quantised from, per layer (ptq.accuracy): the
    table report.md has."""
    return "\n".join(accuracy_markdown(accuracy, {}))


def format_table(result: dict) -> str:
    unit = "rel. error" if result.get("float32") else "LSB"
    key = "max_relative_error_vs_" if result.get("float32") else "max_lsb_vs_"
    number = ".3g" if result.get("float32") else "g"
    lines = [f"| output | samples | bit-exact vs reference | max {unit} vs reference | max {unit} vs onnxruntime |",
             "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        ort = "n/a" if r[key + "onnxruntime"] is None else format(r[key + "onnxruntime"], number)
        lines.append(f"| {r['output']} | {r['samples']} | {r['bit_exact']}/{r['samples']} | "
                     f"{format(r[key + 'reference'], number)} | {ort} |")
    if result.get("onnxruntime_note"):
        lines.append(f"onnxruntime: n/a ({result['onnxruntime_note']})")
    if result.get("float32"):
        lines.append(f"float32: within {FLOAT32_TOLERANCE:g} of the reference (relative to the largest output): "
                     + ("yes" if result["agrees"] else "NO"))
    else:
        lines.append("bit-exact: " + ("yes" if result["bit_exact"] else "NO"))
    return "\n".join(lines)
