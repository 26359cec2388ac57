"""add and mul kernels (int8, TFLite's ADD / MUL schemes), most preferred first: same shapes, then
broadcasting over up to 4 dimensions."""
from __future__ import annotations

from tinyc.codegen.cwriter import c_int
from tinyc.codegen.emit import LayerContext, checked_call, shape4_const
from tinyc.ir import Graph, Op

from .. import packing
from ..cores import Target
from ..registry import DTypes, Kernel, register
from ._common import all_of, at_most_rank4, shape4, values, when
from .conv import CMSIS_HEADER, TINYC_HEADER

INT8_BINARY = DTypes(("int8", "int8"), "int8")


def in_place_inputs(op: Op, graph: Graph) -> tuple[int, ...]:
    """Inputs with the output's shape (after left-padding to 4-D): the kernels read each of their
    elements before writing the output element at the same position."""
    ins, y = values(op, graph)
    out = shape4(y.shape)
    return tuple(i for i, v in enumerate(ins[:2]) if shape4(v.shape) == out)


def _same_shapes(target: Target, op: Op, graph: Graph) -> bool:
    return in_place_inputs(op, graph) == (0, 1)


def _ints(op: Op, *keys: str) -> str:
    return ", ".join(c_int(op.attrs[k]) for k in keys)


_ADD_INPUTS = ("input1_offset", "input1_multiplier", "input1_shift", "input2_offset", "input2_multiplier",
               "input2_shift", "left_shift")
_OUTPUT = ("output_offset", "output_multiplier", "output_shift", "act_min", "act_max")


def emit_tinyc_add(op: Op, ctx: LayerContext) -> list[str]:
    """tinyc_add_s8: each input's rescaling is a 256-entry table computed at compile time."""
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    at = op.attrs
    tables = [ctx.layer_const(f"input{k}_table", packing.add_input_table(
        at[f"input{k}_offset"], at["left_shift"], at[f"input{k}_multiplier"], at[f"input{k}_shift"]))
        for k in (1, 2)]
    return [f"{ctx.function}({ctx.pointer(a)}, {ctx.pointer(b)}, {tables[0]}, {tables[1]}, {ctx.pointer(y)}, "
            f"{ctx.value(y).size}, {_ints(op, *_OUTPUT)});"]


def emit_elementwise_add(op: Op, ctx: LayerContext) -> list[str]:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    return checked_call(f"{ctx.function}({ctx.pointer(a)}, {ctx.pointer(b)}, {_ints(op, *_ADD_INPUTS)}, "
                        f"{ctx.pointer(y)}, {_ints(op, *_OUTPUT)}, {ctx.value(y).size})")


def emit_elementwise_mul(op: Op, ctx: LayerContext) -> list[str]:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    return checked_call(f"{ctx.function}({ctx.pointer(a)}, {ctx.pointer(b)}, "
                        f"{_ints(op, 'input1_offset', 'input2_offset')}, {ctx.pointer(y)}, "
                        f"{_ints(op, *_OUTPUT)}, {ctx.value(y).size})")


def _broadcast_shapes(op: Op, ctx: LayerContext) -> tuple[str, str, str]:
    """The 4-D shapes (right-aligned, padded with 1) of both inputs and the output, as constants."""
    return (shape4_const(op, ctx, op.inputs[0], "shape1"), shape4_const(op, ctx, op.inputs[1], "shape2"),
            shape4_const(op, ctx, op.outputs[0], "out_shape"))


def emit_add_broadcast(op: Op, ctx: LayerContext) -> list[str]:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    s1, s2, so = _broadcast_shapes(op, ctx)
    return [f"{ctx.function}({ctx.pointer(a)}, {s1}, {ctx.pointer(b)}, {s2}, {_ints(op, *_ADD_INPUTS)}, "
            f"{ctx.pointer(y)}, {so}, {_ints(op, *_OUTPUT)});"]


def emit_mul_broadcast(op: Op, ctx: LayerContext) -> list[str]:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    s1, s2, so = _broadcast_shapes(op, ctx)
    return [f"{ctx.function}({ctx.pointer(a)}, {s1}, {ctx.pointer(b)}, {s2}, "
            f"{_ints(op, 'input1_offset', 'input2_offset')}, {ctx.pointer(y)}, {so}, {_ints(op, *_OUTPUT)});"]


_SAME = all_of(at_most_rank4, when(_same_shapes, "the inputs' shapes differ from the output's (broadcasting)"))
_COMMON = dict(dtypes=INT8_BINARY, in_place_inputs=in_place_inputs)

# Each input has 256 values: its rescaling is a compile-time table (Helium's vector add is faster
# than looking values up one at a time).
register(Kernel(
    "tinyc_add_s8", "tinyc", ops=("add",), emit=emit_tinyc_add, isas=("plain", "dsp"), requires=_SAME,
    sources=("tinyc_add_s8.c",), header=TINYC_HEADER, cost_class="add", reason="same shapes, rescaling tables",
    **_COMMON))
for _kind, _emit in (("add", emit_elementwise_add), ("mul", emit_elementwise_mul)):
    register(Kernel(f"arm_elementwise_{_kind}_s8", "cmsis-nn", ops=(_kind,), emit=_emit, requires=_SAME,
                    sources=("nn_elementwise_s8.c",), header=CMSIS_HEADER, cost_class=_kind, reason="same shapes",
                    **_COMMON))
for _kind, _emit in (("add", emit_add_broadcast), ("mul", emit_mul_broadcast)):
    register(Kernel(f"tinyc_{_kind}_broadcast_s8", "tinyc", ops=(_kind,), emit=_emit, requires=at_most_rank4,
                    sources=("tinyc_kernels.c",), header=TINYC_HEADER, cost_class=_kind, reason="broadcasting",
                    **_COMMON))
