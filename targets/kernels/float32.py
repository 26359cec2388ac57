"""float32 kernels: every float op of a float model (`--precision float32`), on every core.

tinyc's own portable C (runtime_c/tinyc_f32.c, declared in tinyc_kernels.h): single precision, ONNX
semantics, one fixed summation order (docs/kernels.md). They run the float ops of float models only:
a float op left in a quantised model is one no pass lowered to int8, and stays an error there
(tinyc.targets.unsupported says why), so int8 models compile exactly as before. The float transpose
(tinyc_transpose_f32, movement.py) and the quantize/dequantize conversions (conversions.py) are
declared with their families.
"""
from __future__ import annotations

import math
import weakref

import numpy as np

from tinyc.codegen.cwriter import c_float
from tinyc.codegen.emit import LayerContext, shape4_const
from tinyc.ir import Graph, Op
from tinyc.ops import attr, spatial_axes

from ..cores import Target
from ..registry import DTypes, Kernel, register
from ..unsupported import quantised
from ._common import all_of, at_most_rank4, conv_layout, conv_macs, when
from .conv import TINYC_HEADER
from .elementwise import in_place_inputs as broadcast_in_place_inputs
from .movement import emit_concat
from .pooling import WINDOWS, nhwc_activations, pool_work

F32 = "float32"
_SOURCES = dict(sources=("tinyc_f32.c",), header=TINYC_HEADER)


# ---- which graphs ---------------------------------------------------------------------------------

_last_graph: tuple[weakref.ref, int, int, bool] | None = None


def _float_model(target: Target, op: Op, graph: Graph) -> str | None:
    # Selection asks once per op of the same graph: remember the last graph's answer, so selecting
    # kernels stays linear in the model's size.
    global _last_graph
    last = _last_graph
    if last is None or last[0]() is not graph or last[1:3] != (len(graph.values), len(graph.ops)):
        last = _last_graph = (weakref.ref(graph), len(graph.values), len(graph.ops), quantised(graph))
    if last[3]:
        return "a float op in a quantised model (float kernels run float models; int8 models run int8 layers)"
    return None


# ---- C pieces -------------------------------------------------------------------------------------

def c_bound(x: float) -> str:
    """A float bound as C: INFINITY / -INFINITY (<math.h>, through tinyc_kernels.h) or a literal."""
    if math.isinf(x):
        return "INFINITY" if x > 0 else "-INFINITY"
    return c_float(x)


def activation_bounds(op: Op) -> tuple[str, str]:
    """The fused activation as the clamp [min, max] the kernels apply."""
    kind = attr(op, "activation")
    if kind == "none":
        return "-INFINITY", "INFINITY"
    if kind == "relu":
        return c_float(0.0), "INFINITY"
    if kind == "relu6":
        return c_float(0.0), c_float(6.0)
    return c_bound(attr(op, "clip_min")), c_bound(attr(op, "clip_max"))


def _bias(op: Op, ctx: LayerContext) -> str:
    return ctx.pointer(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else "NULL"


def _struct(c_type: str, comment: str, fields: list[str]) -> list[str]:
    return [f"/* {comment} */", f"static const {c_type} params = {{{', '.join(fields)}}};"]


# ---- emitters ---------------------------------------------------------------------------------------

def emit_conv(op: Op, ctx: LayerContext) -> list[str]:
    """tinyc_conv_f32 / tinyc_depthwise_conv_f32: the geometry as a constant struct."""
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    n, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    pt, pl, _, _ = attr(op, "pads")
    sh, sw = attr(op, "strides")
    dh, dw = attr(op, "dilations")
    groups = attr(op, "group") if op.kind == "conv2d" else 1
    ints = [n, h, wd, c, oh, ow, oc, w.shape[1], w.shape[2], sh, sw, pt, pl, dh, dw, groups]
    return _struct("tinyc_conv_f32_params", "batches, input h w c, output h w c, kernel h w, stride h w, pad top "
                   "left, dilation h w, groups, activation min max",
                   [str(v) for v in ints] + list(activation_bounds(op))) + [
        f"{ctx.function}(&params, {ctx.pointer(x.name)}, {ctx.pointer(w.name)}, {_bias(op, ctx)}, "
        f"{ctx.pointer(y.name)});"]


def emit_fully_connected(op: Op, ctx: LayerContext) -> list[str]:
    x, w = ctx.value(op.inputs[0]), ctx.value(op.inputs[1])
    batches, depth = x.shape
    lo, hi = activation_bounds(op)
    return [f"{ctx.function}({ctx.pointer(x.name)}, {ctx.pointer(w.name)}, {_bias(op, ctx)}, "
            f"{ctx.pointer(op.outputs[0])}, {batches}, {depth}, {w.shape[0]}, {lo}, {hi});"]


def emit_matmul(op: Op, ctx: LayerContext) -> list[str]:
    a, b = op.inputs
    return [f"{ctx.function}({ctx.pointer(a)}, {shape4_const(op, ctx, a, 'shape1')}, {ctx.pointer(b)}, "
            f"{shape4_const(op, ctx, b, 'shape2')}, {ctx.pointer(op.outputs[0])});"]


def gemm_c_strides(c_shape: tuple[int, ...]) -> tuple[int, int]:
    """(row, column) element strides of Gemm's C read as [M, N] (0 along a broadcast axis)."""
    shape = (1,) * (2 - len(c_shape)) + tuple(c_shape)
    return (shape[1] if shape[0] > 1 else 0), (1 if shape[1] > 1 else 0)


def emit_gemm(op: Op, ctx: LayerContext) -> list[str]:
    a, b, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    m, n = y.shape
    k = a.shape[0] if attr(op, "trans_a") else a.shape[1]
    has_c = len(op.inputs) > 2 and op.inputs[2]
    row, col = gemm_c_strides(ctx.value(op.inputs[2]).shape) if has_c else (0, 0)
    fields = [str(v) for v in (m, n, k, int(attr(op, "trans_a")), int(attr(op, "trans_b")), row, col)]
    fields += [c_float(attr(op, "alpha")), c_float(attr(op, "beta"))]
    c = ctx.pointer(op.inputs[2]) if has_c else "NULL"
    return _struct("tinyc_gemm_f32_params", "m, n, k, trans a b, c row and column strides, alpha, beta", fields) + [
        f"{ctx.function}(&params, {ctx.pointer(a.name)}, {ctx.pointer(b.name)}, {c}, {ctx.pointer(y.name)});"]


def channel_split(shape: tuple[int, ...], axis: int) -> tuple[int, int, int]:
    """(outer, extent, inner): the shape seen as three axes around `axis`."""
    return (int(np.prod(shape[:axis], dtype=np.int64)), shape[axis],
            int(np.prod(shape[axis + 1:], dtype=np.int64)))


def emit_batch_norm(op: Op, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    axis = spatial_axes(x.layout)[0] if len(x.shape) == 4 else 1
    outer, channels, inner = channel_split(x.shape, axis)
    scale, bias, mean, var = (ctx.pointer(n) for n in op.inputs[1:])
    return [f"{ctx.function}({ctx.pointer(x.name)}, {scale}, {bias}, {mean}, {var}, {ctx.pointer(op.outputs[0])}, "
            f"{outer}, {channels}, {inner}, {c_float(attr(op, 'epsilon'))});"]


def emit_binary(op: Op, ctx: LayerContext) -> list[str]:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    lo, hi = activation_bounds(op)
    return [f"{ctx.function}({ctx.pointer(a)}, {shape4_const(op, ctx, a, 'shape1')}, {ctx.pointer(b)}, "
            f"{shape4_const(op, ctx, b, 'shape2')}, {ctx.pointer(y)}, {shape4_const(op, ctx, y, 'out_shape')}, "
            f"{lo}, {hi});"]


def emit_unary(op: Op, ctx: LayerContext) -> list[str]:
    """relu, sigmoid, tanh, hard_swish (no parameter), clip (its bounds), leaky_relu (alpha)."""
    extra = ""
    if op.kind == "clip":
        extra = f", {c_bound(attr(op, 'min'))}, {c_bound(attr(op, 'max'))}"
    elif op.kind == "leaky_relu":
        extra = f", {c_float(attr(op, 'alpha'))}"
    y = ctx.value(op.outputs[0])
    return [f"{ctx.function}({ctx.pointer(op.inputs[0])}, {ctx.pointer(y.name)}, {y.size}{extra});"]


def emit_pool(op: Op, ctx: LayerContext) -> list[str]:
    x, y = ctx.value(op.inputs[0]), ctx.value(op.outputs[0])
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    kh, kw = attr(op, "kernel")
    sh, sw = attr(op, "strides")
    pt, pl, _, _ = attr(op, "pads")
    counted = int(op.kind == "avg_pool2d" and attr(op, "count_include_pad"))
    ints = [n, h, w, c, oh, ow, kh, kw, sh, sw, pt, pl, counted]
    return _struct("tinyc_pool_f32_params", "batches, input h w, channels, output h w, kernel h w, stride h w, "
                   "pad top left, padding counted, activation min max",
                   [str(v) for v in ints] + list(activation_bounds(op))) + [
        f"{ctx.function}(&params, {ctx.pointer(x.name)}, {ctx.pointer(y.name)});"]


def emit_softmax(op: Op, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    outer, extent, inner = channel_split(x.shape, attr(op, "axis") % len(x.shape))
    return [f"{ctx.function}({ctx.pointer(x.name)}, {ctx.pointer(op.outputs[0])}, {outer}, {extent}, {inner}, "
            f"{c_float(attr(op, 'beta'))});"]


def emit_pad(op: Op, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    rank = len(x.shape)
    pads = list(attr(op, "pads"))
    lift = 4 - rank
    begins, ends = [0] * lift + pads[:rank], [0] * lift + pads[rank:]
    shape = ctx.layer_const("shape", np.asarray([1] * lift + list(x.shape), np.int32))
    pad_array = ctx.layer_const("pads", np.asarray(begins + ends, np.int32))
    return [f"{ctx.function}({ctx.pointer(x.name)}, {ctx.pointer(op.outputs[0])}, {shape}, {pad_array}, "
            f"{c_bound(attr(op, 'value'))});"]


# ---- preconditions and measures -------------------------------------------------------------------

def _finite(*keys: str):
    return when(lambda t, op, g: all(math.isfinite(float(attr(op, k))) for k in keys),
                f"a non-finite {' or '.join(keys)}")


def _numbers(*keys: str):
    """The attributes are numbers (an infinite bound is C's INFINITY; NaN has no literal)."""
    return when(lambda t, op, g: not any(math.isnan(float(attr(op, k))) for k in keys),
                f"a NaN {' or '.join(keys)}")


def fc_macs(op: Op, graph: Graph) -> int:
    batches, depth = graph.values[op.inputs[0]].shape
    return batches * depth * graph.values[op.inputs[1]].shape[0]


def matmul_macs(op: Op, graph: Graph) -> int:
    return graph.values[op.outputs[0]].size * graph.values[op.inputs[0]].shape[-1]


def gemm_macs(op: Op, graph: Graph) -> int:
    a = graph.values[op.inputs[0]]
    return graph.values[op.outputs[0]].size * (a.shape[0] if attr(op, "trans_a") else a.shape[1])


def _declare(name: str, ops: tuple[str, ...], emit, inputs: int, *, requires=None, repeat: bool = False,
             **kw) -> None:
    """One float32 kernel: float inputs and output, float models only."""
    checks = (_float_model,) + ((requires,) if requires is not None else ())
    register(Kernel(name, "tinyc", ops=ops, dtypes=DTypes((F32,) * inputs, F32, repeat=repeat), emit=emit,
                    requires=all_of(*checks), **_SOURCES, **kw))


# ---- the kernels ------------------------------------------------------------------------------------

_declare("tinyc_conv_f32", ("conv2d",), emit_conv, 3, requires=conv_layout("OHWI"), raster_block=1, cost_class="conv_f32", work=conv_macs, reason="float convolution (any groups)")
_declare("tinyc_depthwise_conv_f32", ("depthwise_conv2d",), emit_conv, 3,
         requires=conv_layout("IHWO"), raster_block=1,
         cost_class="depthwise_f32", work=conv_macs, reason="float depthwise convolution")
_declare("tinyc_fully_connected_f32", ("fully_connected",), emit_fully_connected, 3, cost_class="fc_f32", work=fc_macs, reason="float fully connected")
_declare("tinyc_matmul_f32", ("matmul",), emit_matmul, 2, requires=at_most_rank4, cost_class="fc_f32",
         work=matmul_macs, reason="float matrix product")
_declare("tinyc_gemm_f32", ("gemm",), emit_gemm, 3, requires=_finite("alpha", "beta"), cost_class="fc_f32",
         work=gemm_macs, reason="float Gemm (transposed or non-constant operands)")
_declare("tinyc_batch_norm_f32", ("batch_norm",), emit_batch_norm, 5, requires=_finite("epsilon"),
         in_place_inputs=(0,), cost_class="eltwise_f32", reason="batch normalisation with non-constant parameters")
for _kind in ("add", "mul"):
    _declare(f"tinyc_{_kind}_f32", (_kind,), emit_binary, 2,
             requires=at_most_rank4, in_place_inputs=broadcast_in_place_inputs,
             cost_class="eltwise_f32", reason="float element-wise, broadcasting")
for _kind, _cost in (("relu", "eltwise_f32"), ("clip", "eltwise_f32"), ("leaky_relu", "eltwise_f32"),
                     ("sigmoid", "exp_f32"), ("tanh", "exp_f32"), ("hard_swish", "eltwise_f32")):
    _declare(f"tinyc_{_kind}_f32", (_kind,), emit_unary, 1,
             requires={"leaky_relu": _finite("alpha"), "clip": _numbers("min", "max")}.get(_kind),
             in_place_inputs=(0,), cost_class=_cost,
             reason="float activation")
_POOL = all_of(nhwc_activations, WINDOWS)
_declare("tinyc_max_pool_f32", ("max_pool2d",), emit_pool, 1, requires=_POOL, cost_class="pool_f32", work=pool_work,
         reason="float max pooling")
_declare("tinyc_avg_pool_f32", ("avg_pool2d",), emit_pool, 1, requires=_POOL, cost_class="pool_f32", work=pool_work,
         reason="float average pooling")
_declare("tinyc_softmax_f32", ("softmax",), emit_softmax, 1, requires=_finite("beta"), in_place_inputs=(0,),
         cost_class="exp_f32", reason="float softmax, any axis")
_declare("tinyc_concat_f32", ("concat",), emit_concat, 1, repeat=True, reason="one copy per input")
_declare("tinyc_pad_f32", ("pad",), emit_pad, 1, requires=all_of(at_most_rank4, _numbers("value")),
         reason="constant padding")
