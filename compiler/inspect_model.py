"""`tinyc inspect`: what a model is before compiling it. Interface (names, shapes, dtypes,
quantisation), op histogram, multiply-accumulates, parameter bytes, opset and the ops tinyc cannot
convert, reported rather than raised."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from . import targets
from .driver import for_target, lower_for_codegen
from .errors import TinycError, UnsupportedError
from .frontend import find_unsupported, import_model
from .frontend.analysis import fold_plan, live_nodes, node_infos, topo_order
from .frontend.convert_qop import QOP_QUANT_SLOTS, quant_input_slots
from .frontend.dtypes import onnx_dtype_name
from .frontend.loader import read_model
from .frontend.prepare import declared_dims, default_opset, infer_with_fixed_inputs, resolve_input_shapes
from .ptq import Precision
from .targets import Target

# Ops that only move bytes: a graph output behind them has its producer's quantisation.
_PASSTHROUGH = ("Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Dropout")
# (input index of x, input index of the weight) for convolutions.
_CONV_OPERANDS = {"Conv": (0, 1), "ConvInteger": (0, 1), "QLinearConv": (0, 3)}
# (input index of a, input index of b) for matrix products.
_MATMUL_OPERANDS = {"Gemm": (0, 1), "QGemm": (0, 3), "MatMul": (0, 1), "MatMulInteger": (0, 1),
                    "QLinearMatMul": (0, 3)}


def summarize(path: str | Path, input_shapes: dict[str, list[int]] | None = None,
              target: str | Target = "cortex-m4", precision: Precision | None = None) -> dict[str, Any]:
    """A JSON-ready summary of the ONNX model at `path`. Unsupported ops, import problems and what
    `tinyc compile` would refuse for `target` are reported in the result (`unsupported`,
    `import_error`, `compile_error` and `refused`); only unreadable files, bad --input-shape options
    and unknown targets raise TinycError."""
    target = targets.get(target)
    model = read_model(path)
    gp = model.graph
    initializers = {t.name: t for t in gp.initializer}
    real_inputs = [vi for vi in gp.input if vi.name not in initializers]
    shapes, assumed = _analysis_shapes(real_inputs, input_shapes, str(path))

    graph, import_error = None, None
    try:
        graph = import_model(model, shapes, source=str(path))
    except TinycError as exc:
        import_error = str(exc)
    compile_error, refused = _compile_check(graph, target, precision) if graph is not None else (None, [])
    shape_of = _shape_lookup(model, graph, shapes)
    consts = _constant_tensors(gp)

    macs, macs_unknown = _count_macs(model, shape_of)
    param_count, param_bytes = _parameters(model)
    return {
        "model": str(path),
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "ir_version": int(model.ir_version),
        "opset": default_opset(model),
        "inputs": [_tensor_entry(vi, shapes.get(vi.name), _input_quant(gp, consts, vi.name)) for vi in real_inputs],
        "outputs": [_tensor_entry(vi, shape_of(vi.name), _output_quant(gp, consts, vi.name)) for vi in gp.output],
        "nodes": len(gp.node),
        "op_counts": dict(Counter(n.op_type for n in gp.node).most_common()),
        "macs": macs,
        "macs_unknown": macs_unknown,
        "parameter_count": param_count,
        "parameter_bytes": param_bytes,
        "unsupported": find_unsupported(model),
        "import_error": import_error,
        "target": target.name,
        "compile_error": compile_error,
        "refused": refused,
        "assumed_dims": assumed,
    }


def format_summary(d: dict[str, Any]) -> str:
    """The summary as text for a terminal."""
    producer = f", producer {d['producer']}" if d["producer"] else ""
    lines = [f"model: {d['model']}", f"  opset {d['opset']}, IR version {d['ir_version']}{producer}"]
    for title, key in (("inputs", "inputs"), ("outputs", "outputs")):
        lines.append(f"{title}:")
        for t in d[key]:
            shape = "[" + ",".join(str(x) for x in t["shape"]) + "]" if t["shape"] is not None else "[?]"
            lines.append(f"  {t['name']}: {t['dtype']}{shape}{_format_quant(t['quant'])}")
    ops = ", ".join(f"{k} x{v}" for k, v in d["op_counts"].items())
    lines.append(f"ops ({d['nodes']} nodes): {ops}")
    macs = f"{d['macs']:,}"
    if d["macs_unknown"]:
        macs += f" (not counted, shapes unknown: {', '.join(d['macs_unknown'][:5])})"
    lines.append(f"MACs: {macs}")
    lines.append(f"parameters: {d['parameter_count']:,} elements, {d['parameter_bytes']:,} bytes")
    if d["assumed_dims"]:
        fixed = "; ".join(f"{k} dims {v}" for k, v in d["assumed_dims"].items())
        lines.append(f"note: dynamic dimensions taken as 1 ({fixed}); use --input-shape to fix them")
    if d["unsupported"]:
        lines.append("ONNX ops tinyc cannot import:")
        for op_type, names in d["unsupported"].items():
            shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            lines.append(f"  {op_type}: {shown}")
    else:
        lines.append("ONNX ops tinyc cannot import: none")
    if d["import_error"] and not d["unsupported"]:
        lines.append(f"import: {d['import_error']}")
    if d["import_error"] is None:
        verdict = f"error: {d['compile_error']}" if d["compile_error"] else "yes"
        lines.append(f"compiles for {d['target']}: {verdict}")
    return "\n".join(lines)


def _compile_check(graph, target: Target, precision: Precision | None) -> tuple[str | None, list[dict[str, Any]]]:
    """What `tinyc compile --target` would say of the imported graph: None, or its one-line error and,
    for ops without a kernel, every such op with its cause."""
    try:
        for_target(lower_for_codegen(graph, precision=precision), target)
    except UnsupportedError as exc:
        return str(exc), exc.details
    except TinycError as exc:
        return str(exc), []
    return None, []


# ---- interface ------------------------------------------------------------------------------------
def _analysis_shapes(inputs: list[onnx.ValueInfoProto], overrides: dict[str, list[int]] | None,
                     source: str) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
    """Static input shapes for the analysis: declared or given; dynamic dims left open are taken as 1
    (returned as `assumed`: input name -> indices of those dims)."""
    resolved = dict(overrides or {})
    assumed = {}
    for vi in inputs:
        dims = declared_dims(vi)
        if vi.name in resolved or dims is None:
            continue
        dynamic = [i for i, d in enumerate(dims) if not isinstance(d, int)]
        if dynamic:
            assumed[vi.name] = dynamic
            resolved[vi.name] = [d if isinstance(d, int) else 1 for d in dims]
    known = [vi for vi in inputs if vi.name in resolved or declared_dims(vi) is not None]
    shapes = resolve_input_shapes(known, resolved, source)
    return shapes, assumed


def _tensor_entry(vi: onnx.ValueInfoProto, shape, quant) -> dict[str, Any]:
    if shape is None:
        dims = declared_dims(vi)
        shape = None if dims is None else [d if isinstance(d, int) else (d or "?") for d in dims]
    return {"name": vi.name, "shape": None if shape is None else list(shape),
            "dtype": onnx_dtype_name(vi.type.tensor_type.elem_type), "quant": quant}


def _constant_tensors(gp: onnx.GraphProto) -> dict[str, np.ndarray]:
    consts = {t.name: t for t in gp.initializer}
    for node in gp.node:
        if node.op_type == "Constant" and node.output:
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = a.t
    return consts


def _quant_entry(consts, scale_name: str, zp_name: str, axis: int | None) -> dict[str, Any] | None:
    if scale_name not in consts:
        return None
    scale = numpy_helper.to_array(consts[scale_name]).astype(np.float64).reshape(-1)
    zp = (numpy_helper.to_array(consts[zp_name]).astype(np.int64).reshape(-1) if zp_name in consts
          else np.zeros(scale.size, dtype=np.int64))
    return {"scale": [float(s) for s in scale], "zero_point": [int(z) for z in zp],
            "axis": axis if scale.size > 1 else None}


def _input(node: onnx.NodeProto, i: int) -> str:
    return node.input[i] if i < len(node.input) else ""


def _input_quant(gp: onnx.GraphProto, consts, name: str) -> dict[str, Any] | None:
    """Quantisation of a graph input, from the DequantizeLinear or QLinear op that reads it."""
    for node in gp.node:
        if node.op_type == "DequantizeLinear" and _input(node, 0) == name:
            axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
            return _quant_entry(consts, _input(node, 1), _input(node, 2), axis)
        if node.op_type in QOP_QUANT_SLOTS:
            for x, s, z in quant_input_slots(node.op_type, len(node.input)):
                if _input(node, x) == name:
                    return _quant_entry(consts, _input(node, s), _input(node, z), None)
    return None


def _output_quant(gp: onnx.GraphProto, consts, name: str) -> dict[str, Any] | None:
    """Quantisation of a graph output, from the QuantizeLinear or QLinear op producing it (through
    ops that only move bytes)."""
    producers = {o: n for n in gp.node for o in n.output}
    node = producers.get(name)
    while node is not None and node.op_type in _PASSTHROUGH:
        node = producers.get(_input(node, 0))
    if node is None:
        return None
    if node.op_type == "QuantizeLinear":
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        return _quant_entry(consts, _input(node, 1), _input(node, 2), axis)
    if node.op_type in QOP_QUANT_SLOTS:
        s, z = QOP_QUANT_SLOTS[node.op_type][1]
        return _quant_entry(consts, _input(node, s), _input(node, z), None)
    return None


def _format_quant(q: dict[str, Any] | None) -> str:
    if not q:
        return ""
    if len(q["scale"]) == 1:
        return f"  scale={q['scale'][0]:.6g} zero_point={q['zero_point'][0]}"
    return f"  {len(q['scale'])} scales on axis {q['axis']}"


# ---- shapes, MACs, parameters -----------------------------------------------------------------------
def _shape_lookup(model: onnx.ModelProto, graph, input_shapes: dict[str, list[int]]):
    """name -> static shape (list) or None: the imported IR when import worked, otherwise ONNX shape
    inference with the inputs fixed."""
    known: dict[str, list[int]] = {t.name: list(t.dims) for t in model.graph.initializer}
    if graph is not None:
        known.update({name: list(v.shape) for name, v in graph.values.items()})
        return known.get
    static = infer_with_fixed_inputs(model, input_shapes) or model
    for vi in list(static.graph.input) + list(static.graph.value_info) + list(static.graph.output):
        dims = declared_dims(vi)
        if dims is not None and all(isinstance(d, int) for d in dims):
            known.setdefault(vi.name, dims)
    return known.get


def _runtime_nodes(model: onnx.ModelProto) -> list:
    """Live nodes that are not folded into constants at import."""
    gp = model.graph
    nodes = node_infos(gp)
    live = live_nodes(nodes, [o.name for o in gp.output])
    initializers = {t.name for t in gp.initializer}
    ordered = topo_order(live, initializers | {i.name for i in gp.input}, strict=False)
    folded = fold_plan(ordered, set(initializers))
    return [n for n in ordered if n.index not in folded]


def _count_macs(model: onnx.ModelProto, shape_of) -> tuple[int, list[str]]:
    """Multiply-accumulates of convolutions and matrix products (folded nodes excluded), and the
    nodes whose shapes are unknown."""
    total, unknown = 0, []
    for node in _runtime_nodes(model):
        if node.op_type in _CONV_OPERANDS:
            _, w_index = _CONV_OPERANDS[node.op_type]
            w, y = shape_of(node.input(w_index)), shape_of(node.outputs[0])
            if w is None or y is None:
                unknown.append(node.name)
                continue
            total += int(np.prod(y, dtype=np.int64)) * int(np.prod(w[1:], dtype=np.int64))
        elif node.op_type in _MATMUL_OPERANDS:
            a_index, b_index = _MATMUL_OPERANDS[node.op_type]
            a, b = shape_of(node.input(a_index)), shape_of(node.input(b_index))
            if a is None or b is None or not a or not b:
                unknown.append(node.name)
                continue
            total += _matmul_macs(node, a, b)
    return total, unknown


def _matmul_macs(node, a: list[int], b: list[int]) -> int:
    if node.op_type in ("Gemm", "QGemm"):
        m, k = (a[1], a[0]) if node.attr("transA", 0) else (a[0], a[1])
        n = b[0] if node.attr("transB", 0) else b[1]
        return m * n * k
    a2 = [1] + a if len(a) == 1 else a
    b2 = b + [1] if len(b) == 1 else b
    batch = np.broadcast_shapes(tuple(a2[:-2]), tuple(b2[:-2]))
    return int(np.prod(batch, dtype=np.int64)) * a2[-2] * a2[-1] * b2[-1]


def _parameters(model: onnx.ModelProto) -> tuple[int, int]:
    """(elements, bytes) of the initializers some live node or graph output reads."""
    gp = model.graph
    live = live_nodes(node_infos(gp), [o.name for o in gp.output])
    used = {n for node in live for n in node.inputs} | {o.name for o in gp.output}
    count = size = 0
    for t in gp.initializer:
        if t.name not in used:
            continue
        n = int(np.prod(t.dims, dtype=np.int64)) if t.dims else 1
        try:
            itemsize = np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        except Exception:
            itemsize = 1
        count += n
        size += n * itemsize
    return count, size
