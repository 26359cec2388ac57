"""Value conversions, tinyc's own small kernels: table look-up (integer activations), quantize,
dequantize and rescale (requantisation, uint8 <-> int8)."""
from __future__ import annotations

import numpy as np

from tinyc.codegen.cwriter import c_float, c_int
from tinyc.codegen.emit import LayerContext
from tinyc.ir import Graph, Op
from tinyc.ops import attr

from ..cores import Target
from ..registry import DTypes, Kernel, register
from ._common import per_tensor, when
from .conv import TINYC_HEADER

_SOURCES = dict(sources=("tinyc_kernels.c",), header=TINYC_HEADER)


def emit_lut(op: Op, ctx: LayerContext) -> list[str]:
    x, y = op.inputs[0], op.outputs[0]
    table = ctx.layer_const("table", np.asarray(op.attrs["table"], np.int8))
    return [f"{ctx.function}({ctx.pointer(x)}, {ctx.pointer(y)}, {ctx.value(y).size}, {table});"]


def emit_quantize(op: Op, ctx: LayerContext) -> list[str]:
    y = ctx.value(op.outputs[0])
    q = y.quant
    return [f"{ctx.function}({ctx.pointer(op.inputs[0])}, {ctx.pointer(y.name)}, {y.size}, {c_float(q.scale[0])}, "
            f"{c_int(q.zero_point[0])});"]


def emit_dequantize(op: Op, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    q = x.quant
    return [f"{ctx.function}({ctx.pointer(x.name)}, {ctx.pointer(op.outputs[0])}, {x.size}, {c_float(q.scale[0])}, "
            f"{c_int(q.zero_point[0])});"]


def emit_rescale(op: Op, ctx: LayerContext) -> list[str]:
    at = op.attrs
    y = ctx.value(op.outputs[0])
    return [f"{ctx.function}({ctx.pointer(op.inputs[0])}, {ctx.pointer(y.name)}, {y.size}, "
            f"{c_int(at['input_offset'])}, {c_int(at['multiplier'][0])}, {c_int(at['shift'][0])}, "
            f"{c_int(at['output_offset'])});"]


def _table_of_256(target: Target, op: Op, graph: Graph) -> bool:
    return len(attr(op, "table")) == 256


def _output_per_tensor(target: Target, op: Op, graph: Graph) -> bool:
    return per_tensor(graph.values[op.outputs[0]])


def _input_per_tensor(target: Target, op: Op, graph: Graph) -> bool:
    return per_tensor(graph.values[op.inputs[0]])


def _one_multiplier(target: Target, op: Op, graph: Graph) -> bool:
    return len(op.attrs["multiplier"]) == 1


register(Kernel("tinyc_lut_s8", "tinyc", ops=("lut",), dtypes=DTypes(("int8",), "int8"), emit=emit_lut,
                requires=when(_table_of_256, "a table without 256 entries"), in_place_inputs=(0,),
                cost_class="lut", reason="table look-up", **_SOURCES))

# Each output byte lands on input bytes already read, so the output may start on the input.
for _dtype, _suffix in (("int8", "s8"), ("uint8", "u8")):
    register(Kernel(f"tinyc_quantize_f32_{_suffix}", "tinyc", ops=("quantize",),
                    dtypes=DTypes(("float32",), _dtype), emit=emit_quantize,
                    requires=when(_output_per_tensor, "per-axis quantisation of the output"), in_place_inputs=(0,),
                    cost_class="quantize", reason="float32 to integer", **_SOURCES))
for _dtype, _suffix in (("int8", "s8"), ("uint8", "u8")):
    register(Kernel(f"tinyc_dequantize_{_suffix}_f32", "tinyc", ops=("dequantize",),
                    dtypes=DTypes((_dtype,), "float32"), emit=emit_dequantize,
                    requires=when(_input_per_tensor, "per-axis quantisation of the input"),
                    cost_class="dequantize", reason="integer to float32", **_SOURCES))
for _in, _out, _name in (("int8", "int8", "tinyc_rescale_s8"), ("uint8", "int8", "tinyc_rescale_u8_s8"),
                         ("int8", "uint8", "tinyc_rescale_s8_u8")):
    register(Kernel(_name, "tinyc", ops=("rescale",), dtypes=DTypes((_in,), _out), emit=emit_rescale,
                    requires=when(_one_multiplier, "per-axis requantisation"), in_place_inputs=(0,),
                    cost_class="rescale", reason="requantisation", **_SOURCES))
