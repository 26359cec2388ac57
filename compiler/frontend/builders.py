"""IR building blocks shared by the float and the quantised converters: reshapes that add or drop
unit axes (1-D convolutions and pools run as H = 1), convolutions, pools with ceil_mode and
count_include_pad made explicit, softmax with the pre-opset-13 2-D coercion, and rescales."""
from __future__ import annotations

import numpy as np

from ..errors import TinycError, UnsupportedError
from ..ir import QuantParams, Value
from .analysis import NodeInfo
from .context import ImportContext
from .quantization import same_quant
from .spatial import ceil_mode_extra, ir_pads, lift_1d, window_attrs


def reshape(ctx: ImportContext, op_name: str, x: Value, shape: list[int]) -> Value:
    """A reshape op (same bytes, same quantisation)."""
    out = ctx.emit("reshape", ctx.fresh_op(op_name), [x], {"shape": [int(d) for d in shape]},
                   base=f"{x.name}_reshaped", quant=x.quant)
    if x.name in ctx.shifted:
        ctx.shifted.add(out.name)
    return out


def _moved_axis(quant: QuantParams | None, position: int) -> QuantParams | None:
    if quant is None or quant.axis is None or quant.axis < position:
        return quant
    return QuantParams(quant.scale, quant.zero_point, quant.axis + 1)


def insert_unit_axis(ctx: ImportContext, op_name: str, x: Value, position: int) -> Value:
    """`x` with a new axis of size 1 at `position`. Constants (and a dequantize of a constant, the
    QDQ weight pattern) are rewritten as constants so weights stay weights; other values get a
    reshape op."""
    shape = list(x.shape)
    shape.insert(position, 1)
    if x.is_const:
        return ctx.constant(f"{x.name}_{len(shape)}d", x.data.reshape(shape), _moved_axis(x.quant, position),
                            key=("unit_axis", x.name, position))
    producer = ctx.producer(x)
    if producer is not None and producer.kind == "dequantize":
        source = ctx.graph.values[producer.inputs[0]]
        if source.is_const:
            q = insert_unit_axis(ctx, op_name, source, position)
            return ctx.emit("dequantize", ctx.fresh_op(f"{producer.name}_{len(shape)}d"), [q],
                            base=f"{x.name}_{len(shape)}d", dtype="float32")
    return reshape(ctx, op_name, x, shape)


def transpose(ctx: ImportContext, op_name: str, x: Value, perm: list[int]) -> Value:
    out = ctx.emit("transpose", ctx.fresh_op(op_name), [x], {"perm": list(perm)}, base=f"{x.name}_t",
                   quant=x.quant)
    if x.name in ctx.shifted:
        ctx.shifted.add(out.name)
    return out


def rescale(ctx: ImportContext, op_name: str, x: Value, quant: QuantParams, dtype: str = "int8") -> Value:
    """A rescale op giving `x`'s real values with quantisation `quant` (nothing when already equal)."""
    if dtype == x.dtype and same_quant(x.quant, quant):
        return x
    return ctx.emit("rescale", ctx.fresh_op(op_name), [x], base=f"{x.name}_rescaled", dtype=dtype, quant=quant)


def spatial_rank(node: NodeInfo, x: Value) -> int:
    rank = len(x.shape) - 2
    if rank not in (1, 2):
        raise UnsupportedError(f"{node.label}: {rank}-D windows are not supported (only 1-D and 2-D); "
                               f"input {x.name!r} has shape {list(x.shape)}")
    return rank


def mark_weight_layout(ctx: ImportContext, w: Value) -> None:
    """A convolution weight (and the dequantize producing it from an integer constant) is OIHW."""
    while len(w.shape) == 4:
        w.layout = "OIHW"
        producer = ctx.producer(w)
        if producer is None or producer.kind not in ("dequantize", "identity"):
            return
        w = ctx.graph.values[producer.inputs[0]]


def build_conv(ctx: ImportContext, node: NodeInfo, x: Value, w: Value, b: Value | None, *,
               dtype: str, quant: QuantParams | None) -> Value:
    """conv2d over NCHW `x` with OIHW-ordered `w` (a 1-D conv runs as H = 1 between reshapes)."""
    rank = spatial_rank(node, x)
    if len(w.shape) != rank + 2:
        raise TinycError(f"{node.label}: weight {w.name!r} has shape {list(w.shape)}, expected rank {rank + 2}")
    kernel = list(node.attr("kernel_shape", list(w.shape[2:])))
    if kernel != list(w.shape[2:]):
        raise TinycError(f"{node.label}: kernel_shape {kernel} differs from the weight's {list(w.shape[2:])}")
    strides, dilations, pads = window_attrs(node, list(x.shape[2:]), kernel)
    n, _, *spatial = x.shape
    if rank == 1:
        x = insert_unit_axis(ctx, f"{node.name}_to_2d", x, 2)
        w = insert_unit_axis(ctx, f"{node.name}_weight_to_2d", w, 2)
        strides, dilations = lift_1d(strides, 1), lift_1d(dilations, 1)
    mark_weight_layout(ctx, w)
    attrs = {"strides": strides, "dilations": dilations, "pads": ir_pads(pads), "group": int(node.attr("group", 1))}
    inputs = [x, w] + ([b] if b is not None else [])
    y = ctx.emit("conv2d", ctx.claim_op(node.name), inputs, attrs, base=f"{node.name}_out", dtype=dtype,
                 quant=quant)
    if rank == 1:
        y = reshape(ctx, f"{node.name}_to_1d", y, [y.shape[0], y.shape[1], y.shape[3]])
    return y


def build_pool(ctx: ImportContext, node: NodeInfo, kind: str, x: Value, *, count_include_pad: bool = False,
               pad_value: float = 0.0) -> Value:
    """max_pool2d / avg_pool2d over NCHW `x` with ONNX pads, auto_pad and ceil_mode made exact:
    ceil_mode becomes extra end padding that never counts (max: padding never wins; average: the
    divisor counts only positions inside the input plus its explicit pads, as onnxruntime does).
    The result keeps `x`'s dtype and quantisation."""
    rank = spatial_rank(node, x)
    kernel = node.attr("kernel_shape")
    if kernel is None:
        raise TinycError(f"{node.label}: missing kernel_shape")
    strides, dilations, pads = window_attrs(node, list(x.shape[2:]), list(kernel))
    if any(d != 1 for d in dilations):
        raise UnsupportedError(f"{node.label}: pooling with dilations {dilations} is not supported (only 1)")
    kernel = list(kernel)
    if rank == 1:
        x = insert_unit_axis(ctx, f"{node.name}_to_2d", x, 2)
        kernel, strides, pads = lift_1d(kernel, 1), lift_1d(strides, 1), ir_pads(pads)
    top, left, bottom, right = pads
    extra = [0, 0]
    if node.attr("ceil_mode", 0):
        extra = [ceil_mode_extra(x.shape[2], kernel[0], strides[0], top, bottom),
                 ceil_mode_extra(x.shape[3], kernel[1], strides[1], left, right)]
    attrs = {"kernel": kernel, "strides": strides}
    if kind == "max_pool2d":
        attrs["pads"] = [top, left, bottom + extra[0], right + extra[1]]
    elif not any(extra):
        attrs.update(pads=[top, left, bottom, right], count_include_pad=bool(count_include_pad))
    elif not count_include_pad or not any(pads):
        attrs.update(pads=[top, left, bottom + extra[0], right + extra[1]], count_include_pad=False)
    else:
        # Explicit pads count, ceil_mode's overhang does not: make the explicit pads real elements.
        x = ctx.emit("pad", ctx.fresh_op(f"{node.name}_pad"), [x],
                     {"pads": [0, 0, top, left, 0, 0, bottom, right], "value": float(pad_value)},
                     base=f"{x.name}_padded", quant=x.quant)
        attrs.update(pads=[0, 0, extra[0], extra[1]], count_include_pad=False)
    y = ctx.emit(kind, ctx.claim_op(node.name), [x], attrs, base=f"{node.name}_out", quant=x.quant)
    if rank == 1:
        y = reshape(ctx, f"{node.name}_to_1d", y, [y.shape[0], y.shape[1], y.shape[3]])
    return y


def build_global_pool(ctx: ImportContext, node: NodeInfo, kind: str, x: Value) -> Value:
    """Pooling over all of H and W of NCHW `x` (global_avg_pool for float averages, otherwise a
    pool whose kernel is the whole plane)."""
    rank = spatial_rank(node, x)
    if rank == 1:
        x = insert_unit_axis(ctx, f"{node.name}_to_2d", x, 2)
    if kind == "global_avg_pool":
        y = ctx.emit(kind, ctx.claim_op(node.name), [x], base=f"{node.name}_out")
    else:
        y = ctx.emit(kind, ctx.claim_op(node.name), [x], {"kernel": [x.shape[2], x.shape[3]]},
                     base=f"{node.name}_out", quant=x.quant)
    if rank == 1:
        y = reshape(ctx, f"{node.name}_to_1d", y, [y.shape[0], y.shape[1], 1])
    return y


def build_softmax(ctx: ImportContext, node: NodeInfo, x: Value, axis: int, opset: int, *,
                  quant: QuantParams | None = None) -> Value:
    """Softmax of `x` along `axis` with ONNX semantics of `opset`: before opset 13 the input is
    coerced to 2-D [prod(shape[:axis]), prod(shape[axis:])], so a softmax on the last axis runs
    between reshapes unless `axis` already is the last one."""
    rank = len(x.shape)
    if not -rank <= axis < max(rank, 1):
        raise TinycError(f"{node.label}: axis {axis} out of range for rank {rank}")
    axis = axis % rank
    if opset >= 13 or axis == rank - 1:
        return ctx.emit("softmax", ctx.claim_op(node.name), [x], {"axis": -1 if axis == rank - 1 else axis},
                        base=f"{node.name}_out", quant=quant)
    rows = int(np.prod(x.shape[:axis], dtype=np.int64))
    flat = reshape(ctx, f"{node.name}_to_2d", x, [rows, x.size // rows])
    y = ctx.emit("softmax", ctx.claim_op(node.name), [flat], {"axis": -1}, base=f"{node.name}_out", quant=quant)
    return reshape(ctx, f"{node.name}_reshape_back", y, list(x.shape))
