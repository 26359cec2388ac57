"""Ops that only move bytes: views (no code), transpose, pad and concat (tinyc's own kernels)."""
from __future__ import annotations

import math

import numpy as np

from tinyc.codegen.emit import LayerContext
from tinyc.ir import Graph, Op
from tinyc.ops import attr, is_view

from ..cores import Target
from ..registry import VIEW, DTypes, Kernel, register
from ._common import at_most_rank4, when
from .conv import TINYC_HEADER

_SOURCES = dict(sources=("tinyc_kernels.c",), header=TINYC_HEADER)


def _pad_to_rank4(shape: list[int], *per_axis: list[int]) -> None:
    """Left-pad `shape` with 1s (and each list in `per_axis` with 0s) to 4 entries, so one kernel covers
    ranks 1 to 4."""
    while len(shape) < 4:
        shape.insert(0, 1)
        for entries in per_axis:
            entries.insert(0, 0)


def emit_transpose(op: Op, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    shape = list(x.shape)
    perm = list(attr(op, "perm"))
    while len(shape) < 4:
        shape.insert(0, 1)
        perm = [0] + [p + 1 for p in perm]
    dims = ctx.layer_const("shape", np.asarray(shape, np.int32))
    permutation = ctx.layer_const("perm", np.asarray(perm, np.int32))
    return [f"{ctx.function}({ctx.pointer(x.name)}, {ctx.pointer(op.outputs[0])}, {dims}, {permutation});"]


def emit_pad(op: Op, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    pads = list(attr(op, "pads"))
    rank = len(x.shape)
    shape = list(x.shape)
    begins, ends = pads[:rank], pads[rank:]
    _pad_to_rank4(shape, begins, ends)
    dims = ctx.layer_const("shape", np.asarray(shape, np.int32))
    pad_array = ctx.layer_const("pads", np.asarray(begins + ends, np.int32))
    value = int(round(attr(op, "value")))
    return [f"{ctx.function}({ctx.pointer(x.name)}, {ctx.pointer(op.outputs[0])}, {dims}, {pad_array}, {value});"]


def emit_concat(op: Op, ctx: LayerContext) -> list[str]:
    y = ctx.value(op.outputs[0])
    axis = attr(op, "axis") % len(y.shape)
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    inner = int(np.prod(y.shape[axis + 1:], dtype=np.int64))
    lines = []
    offset = 0
    for name in op.inputs:
        chunk = ctx.value(name).shape[axis] * inner
        lines.append(f"{ctx.function}({ctx.pointer(name)}, {ctx.pointer(y.name)}, {outer}, {chunk}, "
                     f"{y.shape[axis] * inner}, {offset});")
        offset += chunk
    return lines


def _a_view(target: Target, op: Op, graph: Graph) -> bool:
    return is_view(op, graph.values[op.inputs[0]].shape)


def _int8_pad_value(target: Target, op: Op, graph: Graph) -> bool:
    value = float(attr(op, "value"))
    return math.isfinite(value) and value == int(value) and -128 <= value <= 127


register(Kernel(VIEW, "tinyc", ops=("reshape", "identity", "transpose"), dtypes=None, emit=None,
                requires=when(_a_view, "the transpose moves axes of size above 1"), in_place_inputs=(0,),
                work=lambda op, g: 0, reason="same bytes, no code"))
for _dtype, _suffix in (("int8", "s8"), ("uint8", "u8"), ("float32", "f32")):
    register(Kernel(f"tinyc_transpose_{_suffix}", "tinyc", ops=("transpose",), dtypes=DTypes((_dtype,), _dtype),
                    emit=emit_transpose, requires=at_most_rank4, reason="axis permutation", **_SOURCES))
register(Kernel("tinyc_pad_s8", "tinyc", ops=("pad",), dtypes=DTypes(("int8",), "int8"), emit=emit_pad,
                requires=lambda t, op, g: at_most_rank4(t, op, g) or (
                    None if _int8_pad_value(t, op, g) else "a padding value that is not an int8 code"),
                reason="constant padding", **_SOURCES))
register(Kernel("tinyc_concat_s8", "tinyc", ops=("concat",), dtypes=DTypes(("int8",), "int8", repeat=True),
                emit=emit_concat, reason="one copy per input", **_SOURCES))
