"""ONNX ModelProto -> tinyc IR Graph.

Order of work: opset normalisation, static input shapes, shape inference (element types), the live
nodes in topological order, one error listing every unsupported op, then a walk that folds
constant nodes and converts the rest, and a final step that fixes the graph's interface (ONNX
output names and dtypes), drops dead values and verifies.
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import TinycError, UnsupportedError
from ..ir import Graph, QuantParams, Value
from ..verify import verify
from .analysis import (NodeInfo, find_unsupported, fold_plan, format_unsupported, live_nodes, node_infos,
                       topo_order, unsupported_nodes)
from .context import ImportContext, default_layout
from .dtypes import is_tensor_dtype, onnx_dtype_name, supported_list
from .folding import evaluate, shape_query
from .loader import check_is_model
from .prepare import default_opset, infer_dtypes, normalize_opset, resolve_input_shapes
from ..quant_math import UINT8_TO_INT8
from .registry import converter_for


def import_model(model: onnx.ModelProto, input_shapes: dict[str, list[int]] | None = None,
                 source: str = "model") -> Graph:
    """Convert `model` into a verified IR graph whose inputs and outputs keep the ONNX names, shapes
    (after `input_shapes`) and dtypes. Raises TinycError / UnsupportedError (one line) for models
    tinyc cannot take."""
    check_is_model(model, source)
    original_opset = default_opset(model)
    unsupported = find_unsupported(model)  # before any opset conversion, which would fail on them
    if unsupported:
        raise UnsupportedError(format_unsupported(unsupported))
    model = normalize_opset(model, source)
    opset = default_opset(model)
    gp = model.graph

    initializer_names = {t.name for t in gp.initializer}
    graph_inputs = [vi for vi in gp.input if vi.name not in initializer_names]
    shapes = resolve_input_shapes(graph_inputs, input_shapes, source)
    input_dtypes = {}
    for vi in graph_inputs:
        dtype = onnx_dtype_name(vi.type.tensor_type.elem_type)
        if not is_tensor_dtype(dtype):
            raise UnsupportedError(f"input {vi.name!r} has dtype {dtype}; tinyc supports {supported_list()} inputs")
        input_dtypes[vi.name] = dtype
    onnx_dtypes = infer_dtypes(model, shapes)

    output_names = [o.name for o in gp.output]
    for kind, names in (("input", [vi.name for vi in graph_inputs]), ("output", output_names)):
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise TinycError(f"graph {kind} {twice[0]!r} is listed twice; a model's {kind}s need distinct names")
    nodes = node_infos(gp)
    writers: dict[str, NodeInfo] = {}
    for node in nodes:
        for name in node.outputs:
            if name and name in writers:
                raise TinycError(f"tensor {name!r} is written by two nodes, {writers[name].label} and {node.label}; "
                                 f"an ONNX graph defines each tensor once")
            writers[name] = node
    live = live_nodes(nodes, output_names)
    ordered = topo_order(live, initializer_names | set(shapes))
    defined = initializer_names | set(shapes) | {o for n in ordered for o in n.outputs if o}
    for name in output_names:
        if name not in defined:
            raise TinycError(f"graph output {name!r} is not produced by any node, input or initializer")
    folded = fold_plan(ordered, set(initializer_names))
    unsupported = unsupported_nodes(ordered, folded)
    if unsupported:
        raise UnsupportedError(format_unsupported(unsupported))

    used = set(output_names) | {n for node in ordered for n in node.inputs if n}
    _check_value_dtypes(ordered, folded, used, onnx_dtypes)

    graph = Graph(gp.name or "model", {}, [], list(shapes), [])
    reserved = {n for node in nodes for n in node.outputs} | initializer_names | set(output_names)
    ctx = ImportContext(graph, opset, onnx_dtypes, reserved, {n.name for n in ordered})
    ctx.used = used
    for name, shape in shapes.items():
        ctx.bind(name, graph.add_value(Value(name, shape, input_dtypes[name], default_layout(shape))))
    readers: dict[str, list[NodeInfo]] = {}
    for node in ordered:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    ctx.readers = readers
    for tensor in gp.initializer:
        if tensor.name in used:
            ctx.consts[tensor.name] = _finite(tensor.name, numpy_helper.to_array(tensor), readers)

    protos = list(gp.node)
    for node in ordered:
        if node.index in folded:
            _fold(ctx, node, protos[node.index])
        else:
            converter_for(node.domain, node.op_type)(ctx, node)

    _bind_outputs(ctx, gp)
    graph.remove_dead()
    graph.meta = {
        "onnx_inputs": [{"name": n, "shape": list(shapes[n]), "dtype": input_dtypes[n]} for n in shapes],
        "onnx_outputs": [{"name": n, "shape": list(graph.values[n].shape), "dtype": graph.values[n].dtype}
                         for n in graph.outputs],
        "opset": original_opset,
        "source": source,
    }
    _check_quantised(graph)
    verify(graph)
    return graph


def _check_value_dtypes(ordered: list[NodeInfo], folded: set[int], used: set[str],
                        onnx_dtypes: dict[str, str]) -> None:
    """Reject run-time tensors of a dtype the IR cannot carry, naming the value and its node."""
    for node in ordered:
        if node.index in folded:
            continue
        for name in node.outputs:
            dtype = onnx_dtypes.get(name)
            if name in used and dtype is not None and dtype != "undefined" and not is_tensor_dtype(dtype):
                raise UnsupportedError(f"value {name!r} produced by {node.label} has dtype {dtype}; tinyc "
                                       f"supports {supported_list()} tensors")


def _fold(ctx: ImportContext, node: NodeInfo, proto: onnx.NodeProto) -> None:
    if node.op_type in ("Shape", "Size"):
        name = node.input(0)
        shape = ctx.consts[name].shape if ctx.is_const(name) else ctx.value(name).shape
        ctx.consts[node.outputs[0]] = shape_query(node, tuple(shape))
        return
    values = {n: ctx.consts[n] for n in node.inputs if n}
    for name, result in zip(node.outputs, evaluate(node, proto, values, ctx.opset)):
        if name and result is not None:
            ctx.consts[name] = _finite(name, result, ctx.readers)


# An infinite constant read by these ops would become a weight, a bias or a folded code.
_NO_INFINITY = {"Conv", "ConvTranspose", "ConvInteger", "Gemm", "MatMul", "BatchNormalization", "QuantizeLinear",
                "DequantizeLinear", "Add", "Sub", "Mul", "Div", "PRelu", "QLinearConv", "QGemm", "QLinearMatMul"}


def _finite(name: str, data, readers: dict[str, list[NodeInfo]]):
    """`data` (a constant of the model), unless it holds NaN, or an infinity an op would compute with."""
    data = np.asarray(data)
    if data.dtype.kind != "f" or not data.size:
        return data
    users = readers.get(name, [])
    where = f"constant {name!r}" + (f" (read by {users[0].label})" if users else "")
    if np.isnan(data).any():
        raise UnsupportedError(f"{where} holds NaN; tinyc cannot compile a model with NaN weights, biases "
                               f"or scales: fix the model")
    if np.isinf(data).any() and (not users or any(u.op_type in _NO_INFINITY for u in users)):
        raise UnsupportedError(f"{where} holds an infinite value; tinyc cannot compile it as a weight, bias "
                               f"or scale: fix the model")
    return data


def _bind_outputs(ctx: ImportContext, gp: onnx.GraphProto) -> None:
    """Graph outputs under their ONNX names and dtypes: a uint8 output the IR computed as int8
    (QOperator results) is produced by a final rescale; a constant output becomes a constant."""
    graph = ctx.graph
    for vi in gp.output:
        name = vi.name
        if name not in ctx.ir:
            if name not in ctx.consts:
                raise TinycError(f"graph output {name!r} is not produced by any node")
            ctx.value(name)
        ir_name = ctx.ir[name]
        if ir_name != name:
            ctx.finish(graph.values[ir_name], name)
        value = graph.values[name]
        want = onnx_dtype_name(vi.type.tensor_type.elem_type)
        if want == "uint8" and value.dtype == "int8" and name in ctx.shifted:
            internal = ctx.fresh_value(f"{name}_s8")
            ctx.rename(name, internal)
            q = graph.values[internal].quant
            uint8_quant = QuantParams(q.scale, tuple(z + UINT8_TO_INT8 for z in q.zero_point), q.axis)
            ctx.emit("rescale", ctx.fresh_op(f"{name}_to_uint8"), [graph.values[internal]], out=name,
                     dtype="uint8", quant=uint8_quant)
        elif want not in ("undefined", graph.values[name].dtype):
            raise UnsupportedError(f"graph output {name!r} is declared {want} but computes "
                                   f"{graph.values[name].dtype}")
        graph.outputs.append(name)


def _check_quantised(graph: Graph) -> None:
    """Every int8/uint8/int16 tensor an integer op reads needs a scale and zero point; a model that
    never says (e.g. an integer input no quantised op reads) cannot be compiled."""
    for op in graph.ops:
        for name in op.inputs + op.outputs:
            v = graph.values[name]
            if v.dtype in ("int8", "uint8", "int16") and v.quant is None:
                raise UnsupportedError(f"value {name!r} ({v.dtype}, used by op {op.name!r}) has no scale and "
                                       f"zero point: no QuantizeLinear/DequantizeLinear or QLinear op defines them")
