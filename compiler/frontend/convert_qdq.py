"""QuantizeLinear / DequantizeLinear imported faithfully as `quantize` / `dequantize` ops.

The quantised value carries the scale and zero point (per axis when the model gives one scale per
slice). DequantizeLinear of a constant (weights, biases) stays an op reading a quantised constant:
the qdq-to-integer pass folds those patterns into integer ops. uint8 stays uint8 here.
"""
from __future__ import annotations

import numpy as np
from onnx import TensorProto

from ..errors import UnsupportedError
from ..ir import QuantParams, Value
from .analysis import NodeInfo
from .context import ImportContext
from .dtypes import onnx_dtype_name
from ..quant_math import shift_to_int8
from .quantization import quant_params
from .registry import converts

QUANTIZED_DTYPES = ("int8", "uint8", "int16")


def _check_block_size(node: NodeInfo) -> None:
    if node.attr("block_size", 0):
        raise UnsupportedError(f"{node.label}: blocked quantisation (block_size) is not supported")


def _params(ctx: ImportContext, node: NodeInfo, rank: int) -> tuple[QuantParams, np.ndarray | None]:
    scale = ctx.const(node, 1, "scale")
    zero_point = ctx.optional_const(node, 2, "zero point")
    axis = int(node.attr("axis", 1))
    return quant_params(node.label, scale, zero_point, axis, rank), zero_point


@converts("QuantizeLinear")
def quantize_linear(ctx: ImportContext, node: NodeInfo) -> None:
    _check_block_size(node)
    x = ctx.float_input(node, 0)
    quant, zero_point = _params(ctx, node, len(x.shape))
    if zero_point is not None:
        dtype = str(zero_point.dtype)
    elif node.attr("output_dtype", 0):
        dtype = onnx_dtype_name(int(node.attr("output_dtype")))
    else:
        dtype = onnx_dtype_name(TensorProto.UINT8)
    if dtype not in QUANTIZED_DTYPES:
        raise UnsupportedError(f"{node.label}: quantising to {dtype} is not supported "
                               f"(only {', '.join(QUANTIZED_DTYPES)})")
    ctx.emit("quantize", ctx.claim_op(node.name), [x], out=node.outputs[0], dtype=dtype, quant=quant)


@converts("DequantizeLinear")
def dequantize_linear(ctx: ImportContext, node: NodeInfo) -> None:
    _check_block_size(node)
    name = node.input(0)
    if ctx.is_const(name):
        data = np.asarray(ctx.consts[name])
        quant, _ = _params(ctx, node, data.ndim)
        q = ctx.constant(name, data, quant, key=("dequantize", name, quant))
    else:
        q = ctx.input_value(node, 0)
        quant, zero_point = _params(ctx, node, len(q.shape))
        if q.name in ctx.shifted and (zero_point is None or zero_point.dtype == np.uint8):
            quant = shift_to_int8(quant)  # the IR holds this ONNX uint8 tensor as int8
        ctx.assign_quant(q, quant, node.label)
    _check_dtype(node, q)
    ctx.emit("dequantize", ctx.claim_op(node.name), [q], out=node.outputs[0], dtype="float32")


def _check_dtype(node: NodeInfo, q: Value) -> None:
    if q.dtype not in QUANTIZED_DTYPES + ("int32",):
        raise UnsupportedError(f"{node.label}: dequantizing {q.dtype} value {q.name!r} is not supported")
