"""softmax kernel (int8 in, int8 out with scale 1/256 and zero point -128, over the last axis)."""
from __future__ import annotations

from tinyc.codegen.cwriter import c_int
from tinyc.codegen.emit import LayerContext
from tinyc.ir import Graph, Op
from tinyc.ops import attr
from tinyc.quant_math import SOFTMAX_OUTPUT

from ..cores import Target
from ..registry import DTypes, Kernel, register
from .conv import CMSIS_HEADER


def emit_cmsis_softmax(op: Op, ctx: LayerContext) -> list[str]:
    x, y = ctx.value(op.inputs[0]), op.outputs[0]
    row = x.shape[-1]
    rows = x.size // row
    at = op.attrs
    return [f"{ctx.function}({ctx.pointer(x.name)}, {rows}, {row}, {c_int(at['input_multiplier'])}, "
            f"{c_int(at['input_left_shift'])}, {c_int(at['diff_min'])}, {ctx.pointer(y)});"]


def _requires(target: Target, op: Op, graph: Graph) -> str | None:
    x, y = graph.values[op.inputs[0]], graph.values[op.outputs[0]]
    if attr(op, "axis") % len(x.shape) != len(x.shape) - 1:
        return "softmax over an axis other than the last (the kernel works on contiguous rows)"
    if y.quant is not None and y.quant != SOFTMAX_OUTPUT:
        return "an output quantisation other than scale 1/256, zero point -128"
    return None


register(Kernel("arm_softmax_s8", "cmsis-nn", ops=("softmax",), dtypes=DTypes(("int8",), "int8"),
                emit=emit_cmsis_softmax, requires=_requires, sources=("nn_softmax_s8.c",), header=CMSIS_HEADER,
                cost_class="softmax", reason="softmax over the last axis"))
