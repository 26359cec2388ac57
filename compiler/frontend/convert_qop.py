"""QOperator ops (QLinearConv, QGemm, QLinearAdd, ...) imported directly in the IR's integer forms
(docs/ir.md "Integer forms").

Every quantised tensor becomes int8: uint8 data is shifted exactly (q - 128, zero point - 128); a
uint8 graph input is converted by a `rescale` op, a uint8 graph output produced by one (see the
importer). Weights end symmetric (zero point 0); biases are int32 with scale s_x * s_w[c].
Ops whose integer form shares input and output quantisation (pools, concat) get a `rescale` where
the model changes it.
"""
from __future__ import annotations

import numpy as np

from ..errors import TinycError, UnsupportedError
from ..interp.float_kernels import unary_function
from ..ir import Op, QuantParams, Value
from ..quant_math import SOFTMAX_OUTPUT, UINT8_TO_INT8, lut_table, shift_to_int8, uint8_data_to_int8
from .analysis import NodeInfo
from .builders import build_conv, build_global_pool, build_pool, build_softmax, rescale, reshape, transpose
from .context import ImportContext
from .convert_float import matmul_operands
from .quantization import quant_params, same_quant, symmetric_weights
from .registry import MS_DOMAIN, converts


# Where the quantisation of each QOperator op's tensors is given: for every quantised input,
# (tensor, scale, zero point) input indices, and (scale, zero point) of the output. QLinearConcat's
# inputs repeat in triples after the output's pair. Used by the converters and by `tinyc inspect`.
QOP_QUANT_SLOTS: dict[str, tuple[list[tuple[int, int, int]], tuple[int, int]]] = {
    "QLinearConv": ([(0, 1, 2)], (6, 7)),
    "QLinearMatMul": ([(0, 1, 2), (3, 4, 5)], (6, 7)),
    "QGemm": ([(0, 1, 2)], (7, 8)),
    "QLinearAdd": ([(0, 1, 2), (3, 4, 5)], (6, 7)),
    "QLinearMul": ([(0, 1, 2), (3, 4, 5)], (6, 7)),
    "QLinearAveragePool": ([(0, 1, 2)], (3, 4)),
    "QLinearGlobalAveragePool": ([(0, 1, 2)], (3, 4)),
    "QLinearSoftmax": ([(0, 1, 2)], (3, 4)),
    "QLinearSigmoid": ([(0, 1, 2)], (3, 4)),
    "QLinearLeakyRelu": ([(0, 1, 2)], (3, 4)),
    "QLinearConcat": ([], (0, 1)),
}


def quant_input_slots(op_type: str, n_inputs: int) -> list[tuple[int, int, int]]:
    slots, _ = QOP_QUANT_SLOTS[op_type]
    if op_type == "QLinearConcat":
        return [(i, i + 1, i + 2) for i in range(2, n_inputs, 3)]
    return slots


# ---- reading quantised tensors ----------------------------------------------------------------------
def _quant(ctx: ImportContext, node: NodeInfo, scale_index: int, zp_index: int, rank: int,
           axis: int | None = None) -> tuple[QuantParams, str | None]:
    scale = ctx.const(node, scale_index, "scale")
    zero_point = ctx.optional_const(node, zp_index, "zero point")
    quant = quant_params(node.label, scale, zero_point, axis, rank)
    return quant, (str(zero_point.dtype) if zero_point is not None else None)


def q_input(ctx: ImportContext, node: NodeInfo, x_index: int, scale_index: int, zp_index: int) -> Value:
    """Input `x_index` as an int8 value carrying the quantisation the node gives it."""
    name = node.input(x_index)
    if not name:
        raise TinycError(f"{node.label}: missing input {x_index}")
    if ctx.is_const(name):
        data = np.asarray(ctx.consts[name])
        quant, _ = _quant(ctx, node, scale_index, zp_index, data.ndim)
        if data.dtype == np.uint8:
            data, quant = uint8_data_to_int8(data), shift_to_int8(quant)
        elif data.dtype != np.int8:
            raise UnsupportedError(f"{node.label}: quantised input {name!r} is {data.dtype}, not int8/uint8")
        return ctx.constant(name, data, quant, key=("qconst", name, quant))
    x = ctx.value(name)
    quant, zp_dtype = _quant(ctx, node, scale_index, zp_index, len(x.shape))
    if x.dtype not in ("int8", "uint8"):
        raise UnsupportedError(f"{node.label}: quantised input {name!r} is {x.dtype}, not int8/uint8")
    if x.name in ctx.shifted and zp_dtype in (None, "uint8"):
        quant = shift_to_int8(quant)
    ctx.assign_quant(x, quant, node.label)
    return ctx.int8_view(x)


def q_output(ctx: ImportContext, node: NodeInfo, scale_index: int, zp_index: int,
             like: int = 0) -> tuple[QuantParams, bool]:
    """The int8 quantisation of the node's output, and whether ONNX stores that output as uint8
    (told by the zero point's type; without a zero point, the output has input `like`'s type)."""
    quant, zp_dtype = _quant(ctx, node, scale_index, zp_index, 0)
    if zp_dtype is None:
        zp_dtype = ctx.onnx_dtypes.get(node.outputs[0]) or ctx.onnx_dtype(node.input(like))
    if zp_dtype == "uint8":
        return shift_to_int8(quant), True
    if zp_dtype != "int8":
        raise UnsupportedError(f"{node.label}: quantised output of type {zp_dtype} is not supported")
    return quant, False


def _finish(ctx: ImportContext, node: NodeInfo, y: Value, quant: QuantParams, was_uint8: bool) -> None:
    """Bind `y` (int8) to the node's output, with a rescale when the output's quantisation differs."""
    y = rescale(ctx, f"{node.name}_requantize", y, quant)
    y = ctx.finish(y, node.outputs[0])
    if was_uint8:
        ctx.shifted.add(y.name)


def _weights(ctx: ImportContext, node: NodeInfo, w_index: int, scale_index: int, zp_index: int,
             data: np.ndarray, scale_factor: float = 1.0) -> Value:
    """Symmetric int8 weights [O, ...] (per tensor, or per output channel on axis 0)."""
    scale = np.asarray(ctx.const(node, scale_index, "weight scale"), dtype=np.float32).reshape(-1)
    zero_point = ctx.optional_const(node, zp_index, "weight zero point")
    if data.dtype not in (np.int8, np.uint8):
        raise UnsupportedError(f"{node.label}: weights {node.input(w_index)!r} are {data.dtype}, not int8/uint8")
    if scale.size not in (1, data.shape[0]):
        raise TinycError(f"{node.label}: {scale.size} weight scales for {data.shape[0]} output channels")
    where = f"{node.label}: weight {node.input(w_index)!r}"
    ints = symmetric_weights(where, data, zero_point, axis=0)
    scales = tuple(float(s) * scale_factor for s in scale)
    quant = QuantParams(scales, (0,) * len(scales), 0 if len(scales) > 1 else None)
    return ctx.constant(node.input(w_index), ints, quant, key=("weights", node.name, node.input(w_index)))


def _bias(ctx: ImportContext, node: NodeInfo, index: int, x: Value, w: Value, channels: int) -> Value | None:
    """int32 bias [O] with scale s_x * s_w[c] and zero point 0."""
    if not node.has_input(index):
        return None
    data = np.asarray(ctx.const(node, index, "bias"))
    if data.dtype != np.int32:
        raise UnsupportedError(f"{node.label}: bias {node.input(index)!r} is {data.dtype}, not int32")
    if data.size == 1:
        data = np.full(channels, data.reshape(-1)[0], dtype=np.int32)
    if data.size != channels:
        raise UnsupportedError(f"{node.label}: bias of shape {list(data.shape)} for {channels} output channels")
    s_x = x.quant.scale[0]
    scales = tuple(s_x * s for s in w.quant.scale)
    quant = QuantParams(scales, (0,) * len(scales), w.quant.axis)
    return ctx.constant(node.input(index), data.reshape(channels), quant,
                        key=("bias", node.name, node.input(index)))


# ---- convolutions and matrix products -----------------------------------------------------------------
@converts("QLinearConv")
def qlinear_conv(ctx: ImportContext, node: NodeInfo) -> None:
    x = q_input(ctx, node, 0, 1, 2)
    w = _weights(ctx, node, 3, 4, 5, np.asarray(ctx.const(node, 3, "weights")))
    b = _bias(ctx, node, 8, x, w, w.shape[0])
    quant, was_uint8 = q_output(ctx, node, 6, 7)
    y = build_conv(ctx, node, x, w, b, dtype="int8", quant=quant)
    _finish(ctx, node, y, quant, was_uint8)


def _raw_integer_input(ctx: ImportContext, node: NodeInfo, index: int, zp_index: int) -> Value:
    """An input of ConvInteger/MatMulInteger: only its zero point matters (the int32 result is the
    raw sum of (x - zp) products), so its scale is 1 unless a producer already quantised it."""
    name = node.input(index)
    zero_point = ctx.optional_const(node, zp_index, "zero point")
    zp = np.asarray(zero_point).reshape(-1) if zero_point is not None else np.zeros(1, np.int64)
    if zp.size > 1 and np.any(zp != zp[0]):
        raise UnsupportedError(f"{node.label}: per-row/column zero points of {name!r} are not supported")
    zp_value = int(zp[0])
    if ctx.is_const(name):
        data = np.asarray(ctx.consts[name])
        quant = QuantParams.tensor(1.0, zp_value)
        if data.dtype == np.uint8:
            data, quant = uint8_data_to_int8(data), shift_to_int8(quant)
        return ctx.constant(name, data, quant, key=("raw", name, quant))
    x = ctx.value(name)
    if x.dtype not in ("int8", "uint8"):
        raise UnsupportedError(f"{node.label}: input {name!r} is {x.dtype}, not int8/uint8")
    if x.name in ctx.shifted and (zero_point is None or zero_point.dtype == np.uint8):
        zp_value -= UINT8_TO_INT8
    if x.quant is None:
        ctx.assign_quant(x, QuantParams.tensor(1.0, zp_value), node.label)
    elif not x.quant.per_tensor or x.quant.zero_point[0] != zp_value:
        raise UnsupportedError(f"{node.label}: reads {name!r} with zero point {zp_value}, but it is defined "
                               f"with zero point {x.quant.zero_point[0]}")
    return ctx.int8_view(x)


@converts("ConvInteger")
def conv_integer(ctx: ImportContext, node: NodeInfo) -> None:
    x = _raw_integer_input(ctx, node, 0, 2)
    data = np.asarray(ctx.const(node, 1, "weights"))
    w_zp = ctx.optional_const(node, 3, "weight zero point")
    if data.dtype not in (np.int8, np.uint8):
        raise UnsupportedError(f"{node.label}: weights are {data.dtype}, not int8/uint8")
    ints = symmetric_weights(f"{node.label}: weight {node.input(1)!r}", data, w_zp, axis=0)
    w = ctx.constant(node.input(1), ints, QuantParams.tensor(1.0, 0), key=("weights", node.name, node.input(1)))
    y = build_conv(ctx, node, x, w, None, dtype="int32", quant=None)
    ctx.finish(y, node.outputs[0])


@converts("MatMulInteger")
def matmul_integer(ctx: ImportContext, node: NodeInfo) -> None:
    a = _raw_integer_input(ctx, node, 0, 2)
    b = _raw_integer_input(ctx, node, 1, 3)
    a, b, final = matmul_operands(ctx, node, a, b)
    y = ctx.emit("matmul", ctx.claim_op(node.name), [a, b], base=f"{node.name}_out", dtype="int32")
    if final is not None:
        y = reshape(ctx, f"{node.name}_to_1d", y, final)
    ctx.finish(y, node.outputs[0])


def _fully_connected(ctx: ImportContext, node: NodeInfo, x: Value, w: Value, b: Value | None,
                     quant: QuantParams) -> Value:
    """fully_connected on the last axis of `x` (other leading axes are flattened around it)."""
    lead = list(x.shape[:-1])
    if len(x.shape) != 2:
        rows = int(np.prod(lead, dtype=np.int64)) if lead else 1
        x = reshape(ctx, f"{node.name}_to_2d", x, [rows, x.shape[-1]])
    y = ctx.emit("fully_connected", ctx.claim_op(node.name), [x, w] + ([b] if b is not None else []),
                 base=f"{node.name}_out", dtype="int8", quant=quant)
    if len(lead) + 1 != 2:
        y = reshape(ctx, f"{node.name}_reshape_back", y, lead + [w.shape[0]])
    return y


@converts("QLinearMatMul")
def qlinear_matmul(ctx: ImportContext, node: NodeInfo) -> None:
    a = q_input(ctx, node, 0, 1, 2)
    quant, was_uint8 = q_output(ctx, node, 6, 7)
    b_name = node.input(3)
    if ctx.is_const(b_name) and np.ndim(ctx.consts[b_name]) == 2:
        # A constant [K, N] right operand is a fully connected layer with weights [N, K].
        w = _weights(ctx, node, 3, 4, 5, np.asarray(ctx.consts[b_name]).T)
        y = _fully_connected(ctx, node, a, w, None, quant)
    else:
        b = q_input(ctx, node, 3, 4, 5)
        if not b.quant.per_tensor:
            raise UnsupportedError(f"{node.label}: per-column quantisation of a run-time operand is not supported")
        a, b, final = matmul_operands(ctx, node, a, b)
        y = ctx.emit("matmul", ctx.claim_op(node.name), [a, b], base=f"{node.name}_out", dtype="int8", quant=quant)
        if final is not None:
            y = reshape(ctx, f"{node.name}_to_1d", y, final)
    _finish(ctx, node, y, quant, was_uint8)


@converts("QGemm", domain=MS_DOMAIN)
def qgemm(ctx: ImportContext, node: NodeInfo) -> None:
    if not node.has_input(7):
        raise UnsupportedError(f"{node.label}: QGemm with a float output (no y_scale) is not supported")
    a = q_input(ctx, node, 0, 1, 2)
    if len(a.shape) != 2:
        raise TinycError(f"{node.label}: A must be 2-D, has shape {list(a.shape)}")
    if node.attr("transA", 0):
        a = transpose(ctx, f"{node.name}_transpose_a", a, [1, 0])
    data = np.asarray(ctx.const(node, 3, "B"))
    if data.ndim != 2:
        raise TinycError(f"{node.label}: B must be 2-D, has shape {list(data.shape)}")
    if not node.attr("transB", 0):
        data = data.T  # [K, N] -> weights [N, K]
    # y = alpha * a_s * b_s * (C + sum((a - za)(b - zb))): alpha belongs to the weight scale.
    w = _weights(ctx, node, 3, 4, 5, data, scale_factor=float(np.float32(node.attr("alpha", 1.0))))
    b = None
    if node.has_input(6):
        c = np.asarray(ctx.const(node, 6, "C"))
        if c.size not in (1, w.shape[0]) or (c.ndim == 2 and c.shape[0] != 1):
            raise UnsupportedError(f"{node.label}: C of shape {list(c.shape)} is not a per-output bias")
        b = _bias(ctx, node, 6, a, w, w.shape[0])
    quant, was_uint8 = q_output(ctx, node, 7, 8)
    y = ctx.emit("fully_connected", ctx.claim_op(node.name), [a, w] + ([b] if b is not None else []),
                 base=f"{node.name}_out", dtype="int8", quant=quant)
    _finish(ctx, node, y, quant, was_uint8)


# ---- element-wise -----------------------------------------------------------------------------------
@converts("QLinearAdd", "QLinearMul", domain=MS_DOMAIN)
def qlinear_binary(ctx: ImportContext, node: NodeInfo) -> None:
    a = q_input(ctx, node, 0, 1, 2)
    b = q_input(ctx, node, 3, 4, 5)
    quant, was_uint8 = q_output(ctx, node, 6, 7)
    kind = {"QLinearAdd": "add", "QLinearMul": "mul"}[node.op_type]
    y = ctx.emit(kind, ctx.claim_op(node.name), [a, b], base=f"{node.name}_out", dtype="int8", quant=quant)
    _finish(ctx, node, y, quant, was_uint8)


# The float op each quantised activation stands for (its table evaluates the interpreter's kernel).
_LUT_FUNCTIONS = {
    "QLinearSigmoid": lambda node: Op("sigmoid", node.name, [], []),
    "QLinearLeakyRelu": lambda node: Op("leaky_relu", node.name, [], [], {"alpha": float(node.attr("alpha", 0.01))}),
}


@converts(*_LUT_FUNCTIONS, domain=MS_DOMAIN)
def qlinear_lut(ctx: ImportContext, node: NodeInfo) -> None:
    x = q_input(ctx, node, 0, 1, 2)
    quant, was_uint8 = q_output(ctx, node, 3, 4)
    table = lut_table(unary_function(_LUT_FUNCTIONS[node.op_type](node)), x.quant, quant)
    y = ctx.emit("lut", ctx.claim_op(node.name), [x], {"table": table}, base=f"{node.name}_out", dtype="int8",
                 quant=quant)
    _finish(ctx, node, y, quant, was_uint8)


# ---- pooling, concat, softmax ----------------------------------------------------------------------
def _channels_first(ctx: ImportContext, node: NodeInfo, x: Value) -> Value:
    """An NHWC (channels_last) input as NCHW."""
    rank = len(x.shape)
    return transpose(ctx, f"{node.name}_to_channels_first", x, [0, rank - 1] + list(range(1, rank - 1)))


def _channels_last(ctx: ImportContext, node: NodeInfo, y: Value) -> Value:
    rank = len(y.shape)
    return transpose(ctx, f"{node.name}_to_channels_last", y, [0] + list(range(2, rank)) + [1])


@converts("QLinearAveragePool", domain=MS_DOMAIN)
def qlinear_average_pool(ctx: ImportContext, node: NodeInfo) -> None:
    x = q_input(ctx, node, 0, 1, 2)
    quant, was_uint8 = q_output(ctx, node, 3, 4)
    channels_last = bool(node.attr("channels_last", 0))
    if channels_last:
        x = _channels_first(ctx, node, x)
    y = build_pool(ctx, node, "avg_pool2d", x, count_include_pad=bool(node.attr("count_include_pad", 0)),
                   pad_value=float(x.quant.zero_point[0]))
    if channels_last:
        y = _channels_last(ctx, node, y)
    _finish(ctx, node, y, quant, was_uint8)


@converts("QLinearGlobalAveragePool", domain=MS_DOMAIN)
def qlinear_global_average_pool(ctx: ImportContext, node: NodeInfo) -> None:
    x = q_input(ctx, node, 0, 1, 2)
    quant, was_uint8 = q_output(ctx, node, 3, 4)
    channels_last = bool(node.attr("channels_last", 0))
    if channels_last:
        x = _channels_first(ctx, node, x)
    y = build_global_pool(ctx, node, "avg_pool2d", x)
    if channels_last:
        y = _channels_last(ctx, node, y)
    _finish(ctx, node, y, quant, was_uint8)


@converts("QLinearConcat", domain=MS_DOMAIN)
def qlinear_concat(ctx: ImportContext, node: NodeInfo) -> None:
    quant, was_uint8 = q_output(ctx, node, 0, 1, like=2)
    inputs = [q_input(ctx, node, x, s, z) for x, s, z in quant_input_slots(node.op_type, len(node.inputs))]
    if not inputs:
        raise TinycError(f"{node.label}: no inputs")
    shared = inputs[0].quant
    if not all(same_quant(v.quant, shared) for v in inputs):
        # Inputs disagree: bring each to the output's quantisation before concatenating.
        inputs = [rescale(ctx, f"{node.name}_rescale_input{i}", v, quant) for i, v in enumerate(inputs)]
        shared = quant
    rank = len(inputs[0].shape)
    axis = int(node.attr("axis"))
    y = ctx.emit("concat", ctx.claim_op(node.name), inputs, {"axis": axis + rank if axis < 0 else axis},
                 base=f"{node.name}_out", dtype="int8", quant=shared)
    _finish(ctx, node, y, quant, was_uint8)


@converts("QLinearSoftmax", domain=MS_DOMAIN)
def qlinear_softmax(ctx: ImportContext, node: NodeInfo) -> None:
    x = q_input(ctx, node, 0, 1, 2)
    quant, was_uint8 = q_output(ctx, node, 3, 4)
    opset = int(node.attr("opset", ctx.opset))
    axis = int(node.attr("axis", -1 if opset >= 13 else 1))
    # The integer softmax always produces scale 1/256, zero point -128 (rescaled if the model differs).
    y = build_softmax(ctx, node, x, axis, opset, quant=SOFTMAX_OUTPUT)
    _finish(ctx, node, y, quant, was_uint8)
