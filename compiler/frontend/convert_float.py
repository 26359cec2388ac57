"""Converters for standard ONNX float ops (and the layout ops that also move quantised bytes)."""
from __future__ import annotations

import numpy as np

from ..errors import TinycError, UnsupportedError
from ..ir import Value
from ..ops import broadcast_shapes
from ..quant_math import UINT8_TO_INT8
from .analysis import NodeInfo
from .builders import (build_conv, build_global_pool, build_pool, build_softmax, insert_unit_axis, rescale,
                       reshape)
from .context import ImportContext
from .quantization import same_quant
from .registry import converts


def _axes(ctx: ImportContext, node: NodeInfo, input_index: int) -> list[int] | None:
    """Axes of Squeeze/Unsqueeze/Pad...: an attribute before opset 13, an optional input after."""
    if "axes" in node.attrs:
        return [int(a) for a in node.attrs["axes"]]
    if node.has_input(input_index):
        return [int(a) for a in np.asarray(ctx.const(node, input_index, "axes")).reshape(-1)]
    return None


def _finish_like(ctx: ImportContext, node: NodeInfo, x: Value, y: Value) -> Value:
    """Bind `y` to the node's output; a layout op on a shifted uint8 tensor stays shifted."""
    if x.name in ctx.shifted:
        ctx.shifted.add(y.name)
    return ctx.finish(y, node.outputs[0])


# ---- arithmetic ---------------------------------------------------------------------------------
@converts("Conv")
def conv(ctx: ImportContext, node: NodeInfo) -> None:
    x, w = ctx.float_input(node, 0), ctx.float_input(node, 1)
    b = ctx.float_input(node, 2) if node.has_input(2) else None
    ctx.finish(build_conv(ctx, node, x, w, b, dtype="float32", quant=None), node.outputs[0])


@converts("Gemm")
def gemm(ctx: ImportContext, node: NodeInfo) -> None:
    inputs = [ctx.float_input(node, 0), ctx.float_input(node, 1)]
    if node.has_input(2):
        inputs.append(ctx.float_input(node, 2))
    attrs = {"alpha": float(node.attr("alpha", 1.0)), "beta": float(node.attr("beta", 1.0)),
             "trans_a": bool(node.attr("transA", 0)), "trans_b": bool(node.attr("transB", 0))}
    ctx.emit("gemm", ctx.claim_op(node.name), inputs, attrs, out=node.outputs[0])


def matmul_operands(ctx: ImportContext, node: NodeInfo, a: Value, b: Value
                    ) -> tuple[Value, Value, list[int] | None]:
    """1-D matmul operands made 2-D (a: [K] -> [1,K], b: [K] -> [K,1]); returns the final shape the
    result must be reshaped to (None when nothing was lifted; [] for the scalar of two 1-D operands)."""
    if not a.shape or not b.shape:
        raise TinycError(f"{node.label}: matmul operands must have rank >= 1")
    a_1d, b_1d = len(a.shape) == 1, len(b.shape) == 1
    if a_1d:
        a = insert_unit_axis(ctx, f"{node.name}_a_to_2d", a, 0)
    if b_1d:
        b = insert_unit_axis(ctx, f"{node.name}_b_to_2d", b, 1)
    if not (a_1d or b_1d):
        return a, b, None
    full = list(broadcast_shapes(a.shape[:-2], b.shape[:-2])) + [a.shape[-2], b.shape[-1]]
    if b_1d:
        full.pop(-1)
    if a_1d:
        full.pop(-2 if not b_1d else -1)
    return a, b, full


@converts("MatMul")
def matmul(ctx: ImportContext, node: NodeInfo) -> None:
    a, b, final = matmul_operands(ctx, node, ctx.float_input(node, 0), ctx.float_input(node, 1))
    y = ctx.emit("matmul", ctx.claim_op(node.name), [a, b], base=f"{node.name}_out")
    if final is not None:
        y = reshape(ctx, f"{node.name}_to_1d", y, final)
    ctx.finish(y, node.outputs[0])


@converts("Add", "Mul")
def binary(ctx: ImportContext, node: NodeInfo) -> None:
    kind = {"Add": "add", "Mul": "mul"}[node.op_type]
    a, b = ctx.float_input(node, 0), ctx.float_input(node, 1)
    ctx.emit(kind, ctx.claim_op(node.name), [a, b], out=node.outputs[0])


@converts("BatchNormalization")
def batch_norm(ctx: ImportContext, node: NodeInfo) -> None:
    if node.attr("training_mode", 0):
        raise UnsupportedError(f"{node.label}: training_mode=1 is not supported (inference only)")
    for i, what in ((1, "running mean"), (2, "running variance")):
        ctx.require_unused(node, i, what)
    inputs = [ctx.float_input(node, i) for i in range(5)]
    ctx.emit("batch_norm", ctx.claim_op(node.name), inputs, {"epsilon": float(node.attr("epsilon", 1e-5))},
             out=node.outputs[0])


# ---- activations --------------------------------------------------------------------------------
_UNARY = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hard_swish"}


@converts(*_UNARY)
def unary(ctx: ImportContext, node: NodeInfo) -> None:
    ctx.emit(_UNARY[node.op_type], ctx.claim_op(node.name), [ctx.float_input(node, 0)], out=node.outputs[0])


@converts("LeakyRelu")
def leaky_relu(ctx: ImportContext, node: NodeInfo) -> None:
    ctx.emit("leaky_relu", ctx.claim_op(node.name), [ctx.float_input(node, 0)],
             {"alpha": float(node.attr("alpha", 0.01))}, out=node.outputs[0])


@converts("Clip")
def clip(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.float_input(node, 0)
    attrs = {}
    for key, index in (("min", 1), ("max", 2)):
        if key in node.attrs:  # before opset 11 the bounds are attributes
            attrs[key] = float(node.attrs[key])
        bound = ctx.optional_const(node, index, f"Clip {key}")
        if bound is not None:
            attrs[key] = float(np.asarray(bound).reshape(-1)[0])
    ctx.emit("clip", ctx.claim_op(node.name), [x], attrs, out=node.outputs[0])


@converts("Softmax")
def softmax(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.float_input(node, 0)
    axis = int(node.attr("axis", -1 if ctx.opset >= 13 else 1))
    ctx.finish(build_softmax(ctx, node, x, axis, ctx.opset), node.outputs[0])


# ---- pooling ------------------------------------------------------------------------------------
@converts("MaxPool")
def max_pool(ctx: ImportContext, node: NodeInfo) -> None:
    ctx.require_unused(node, 1, "Indices")
    x = ctx.input_value(node, 0)
    _finish_like(ctx, node, x, build_pool(ctx, node, "max_pool2d", x))


@converts("AveragePool")
def average_pool(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.float_input(node, 0)
    y = build_pool(ctx, node, "avg_pool2d", x, count_include_pad=bool(node.attr("count_include_pad", 0)))
    ctx.finish(y, node.outputs[0])


@converts("GlobalAveragePool")
def global_average_pool(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.float_input(node, 0)
    ctx.finish(build_global_pool(ctx, node, "global_avg_pool", x), node.outputs[0])


@converts("GlobalMaxPool")
def global_max_pool(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.input_value(node, 0)
    _finish_like(ctx, node, x, build_global_pool(ctx, node, "max_pool2d", x))


# ---- layout ops (float or quantised: bytes move, quantisation stays) -----------------------------
def _static_shape(node: NodeInfo, x: Value, target: list[int], allowzero: bool) -> list[int]:
    shape = list(target)
    if allowzero and 0 in shape:
        raise UnsupportedError(f"{node.label}: a reshape to an empty dimension is not supported")
    shape = [x.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    if shape.count(-1) > 1:
        raise TinycError(f"{node.label}: shape {list(target)} has more than one -1")
    if -1 in shape:
        known = int(np.prod([d for d in shape if d != -1], dtype=np.int64))
        if known <= 0 or x.size % known:
            raise TinycError(f"{node.label}: cannot reshape {list(x.shape)} to {list(target)}")
        shape[shape.index(-1)] = x.size // known
    return [int(d) for d in shape]


def _reshape_to(ctx: ImportContext, node: NodeInfo, x: Value, shape: list[int]) -> None:
    y = ctx.emit("reshape", ctx.claim_op(node.name), [x], {"shape": shape}, base=f"{node.name}_out",
                 quant=x.quant)
    _finish_like(ctx, node, x, y)


@converts("Reshape")
def reshape_op(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.input_value(node, 0)
    target = [int(d) for d in np.asarray(ctx.const(node, 1, "shape")).reshape(-1)]
    _reshape_to(ctx, node, x, _static_shape(node, x, target, bool(node.attr("allowzero", 0))))


@converts("Flatten")
def flatten(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.input_value(node, 0)
    rank = len(x.shape)
    axis = int(node.attr("axis", 1))
    axis = axis + rank if axis < 0 else axis
    if not 0 <= axis <= rank:
        raise TinycError(f"{node.label}: axis {node.attr('axis')} out of range for rank {rank}")
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    _reshape_to(ctx, node, x, [outer, x.size // outer])


@converts("Squeeze")
def squeeze(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.input_value(node, 0)
    rank = len(x.shape)
    axes = _axes(ctx, node, 1)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = sorted({a + rank if a < 0 else a for a in axes})
    for a in axes:
        if not 0 <= a < rank or x.shape[a] != 1:
            raise TinycError(f"{node.label}: cannot squeeze axis {a} of shape {list(x.shape)}")
    _reshape_to(ctx, node, x, [d for i, d in enumerate(x.shape) if i not in axes])


@converts("Unsqueeze")
def unsqueeze(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.input_value(node, 0)
    axes = _axes(ctx, node, 1)
    if axes is None:
        raise TinycError(f"{node.label}: Unsqueeze needs axes")
    rank = len(x.shape) + len(axes)
    normalized = [a + rank if a < 0 else a for a in axes]
    axes = sorted(set(normalized))
    if len(axes) != len(normalized) or any(not 0 <= a < rank for a in axes):
        raise TinycError(f"{node.label}: invalid axes {axes} for output rank {rank}")
    dims = iter(x.shape)
    _reshape_to(ctx, node, x, [1 if i in axes else next(dims) for i in range(rank)])


@converts("Transpose")
def transpose_op(ctx: ImportContext, node: NodeInfo) -> None:
    x = ctx.input_value(node, 0)
    perm = node.attr("perm") or list(range(len(x.shape)))[::-1]
    y = ctx.emit("transpose", ctx.claim_op(node.name), [x], {"perm": [int(p) for p in perm]},
                 base=f"{node.name}_out", quant=x.quant)
    _finish_like(ctx, node, x, y)


@converts("Identity", "Dropout")
def identity(ctx: ImportContext, node: NodeInfo) -> None:
    if node.op_type == "Dropout":
        ctx.require_unused(node, 1, "mask")
    x = ctx.input_value(node, 0)
    y = ctx.emit("identity", ctx.claim_op(node.name), [x], base=f"{node.name}_out", quant=x.quant)
    _finish_like(ctx, node, x, y)


@converts("Pad")
def pad(ctx: ImportContext, node: NodeInfo) -> None:
    mode = node.attr("mode", "constant")
    if mode != "constant":
        raise UnsupportedError(f"{node.label}: Pad mode {mode!r} is not supported (only 'constant')")
    x = ctx.input_value(node, 0)
    rank = len(x.shape)
    if "pads" in node.attrs:  # before opset 11
        pads, value = list(node.attrs["pads"]), float(node.attr("value", 0.0))
        value_dtype = None
    else:
        pads = [int(p) for p in np.asarray(ctx.const(node, 1, "pads")).reshape(-1)]
        raw = ctx.optional_const(node, 2, "constant_value")
        value = float(np.asarray(raw).reshape(-1)[0]) if raw is not None and np.size(raw) else 0.0
        value_dtype = str(raw.dtype) if raw is not None else None
    axes = _axes(ctx, node, 3) if "pads" not in node.attrs else None
    if axes is not None:  # opset 18: pads only for the listed axes
        full = [0] * (2 * rank)
        for j, a in enumerate(axes):
            a = a + rank if a < 0 else a
            full[a], full[a + rank] = pads[j], pads[j + len(axes)]
        pads = full
    if len(pads) != 2 * rank:
        raise TinycError(f"{node.label}: {len(pads)} pads for rank {rank}")
    if any(p < 0 for p in pads):
        raise UnsupportedError(f"{node.label}: negative pads (cropping) are not supported")
    if x.name in ctx.shifted and value_dtype in (None, "uint8"):
        value -= UINT8_TO_INT8  # the stored uint8 value, as the int8 the IR holds
    y = ctx.emit("pad", ctx.claim_op(node.name), [x], {"pads": pads, "value": value}, base=f"{node.name}_out",
                 quant=x.quant)
    _finish_like(ctx, node, x, y)


@converts("Concat")
def concat(ctx: ImportContext, node: NodeInfo) -> None:
    inputs = [ctx.value(n) for n in node.inputs if n]
    rank = len(inputs[0].shape)
    axis = int(node.attr("axis"))
    axis = axis + rank if axis < 0 else axis
    if any(v.dtype != "float32" for v in inputs):
        inputs = _integer_concat_inputs(ctx, node, inputs)
    y = ctx.emit("concat", ctx.claim_op(node.name), inputs, {"axis": axis}, base=f"{node.name}_out",
                 quant=inputs[0].quant)
    if all(v.name in ctx.shifted for v in inputs):
        ctx.shifted.add(y.name)
    ctx.finish(y, node.outputs[0])


def _integer_concat_inputs(ctx: ImportContext, node: NodeInfo, inputs: list[Value]) -> list[Value]:
    """Quantised inputs of a plain Concat brought to one int8 quantisation (the first known one)."""
    if len({v.dtype for v in inputs}) > 1:
        inputs = [ctx.int8_view(v) for v in inputs]
    quant = next((v.quant for v in inputs if v.quant is not None), None)
    if quant is None:
        raise UnsupportedError(f"{node.label}: concatenates integer tensors whose quantisation is unknown")
    out = []
    for i, v in enumerate(inputs):
        if v.quant is None:
            ctx.assign_quant(v, quant, node.label)
        elif not same_quant(v.quant, quant):
            v = rescale(ctx, f"{node.name}_rescale_input{i}", v, quant, v.dtype)
        out.append(v)
    return out
