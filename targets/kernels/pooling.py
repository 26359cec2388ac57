"""max_pool2d and avg_pool2d kernels (int8, NHWC)."""
from __future__ import annotations

from tinyc.codegen.emit import LayerContext, activation, checked_call, dims, nhwc_dims, tile
from tinyc.ir import Graph, Op
from tinyc.ops import attr

from .. import buffer_sizes as bs
from ..cores import Target
from ..registry import DTypes, Kernel, register
from ._common import all_of, nhwc, values, when
from .conv import CMSIS_HEADER


def emit_cmsis_pool(op: Op, ctx: LayerContext) -> list[str]:
    x, y = ctx.value(op.inputs[0]), ctx.value(op.outputs[0])
    n, h, w, c = nhwc_dims(x)
    _, oh, ow, _ = nhwc_dims(y)
    kh, kw = attr(op, "kernel")
    sh, sw = attr(op, "strides")
    pt, pl, _, _ = attr(op, "pads")
    buf, size = ctx.scratch(op)
    lines = [
        f"cmsis_nn_context ctx = {{{buf}, {size}}};",
        f"static const cmsis_nn_pool_params params = {{{tile(sw, sh)}, {tile(pl, pt)}, {activation(op)}}};",
        f"static const cmsis_nn_dims input_dims = {dims(n, h, w, c)};",
        f"static const cmsis_nn_dims filter_dims = {dims(1, kh, kw, 1)};",
        f"static const cmsis_nn_dims output_dims = {dims(n, oh, ow, c)};",
    ]
    return lines + checked_call(f"{ctx.function}(&ctx, &params, &input_dims, {ctx.pointer(x.name)}, &filter_dims, "
                                f"&output_dims, {ctx.pointer(y.name)})")


def nhwc_activations(target: Target, op: Op, graph: Graph) -> str | None:
    ins, y = values(op, graph)
    return None if nhwc(ins[0]) and nhwc(y) else "the kernels take NHWC activations (the layout pass makes them)"


def windows_nonempty(target: Target, op: Op, graph: Graph) -> bool:
    """Every pooling window covers at least one input position (CMSIS-NN's pools need it)."""
    ins, y = values(op, graph)
    _, h, w, _ = ins[0].shape
    _, oh, ow, _ = y.shape
    kh, kw = attr(op, "kernel")
    sh, sw = attr(op, "strides")
    pt, pl = attr(op, "pads")[:2]
    return pt < kh and pl < kw and (oh - 1) * sh - pt < h and (ow - 1) * sw - pl < w


def pool_work(op: Op, graph: Graph) -> int:
    kh, kw = attr(op, "kernel")
    return graph.values[op.outputs[0]].size * kh * kw


WINDOWS = when(windows_nonempty, "a window that covers only padding")
_COMMON = dict(dtypes=DTypes(("int8",), "int8"), emit=emit_cmsis_pool, sources=("nn_pooling_s8.c",),
               header=CMSIS_HEADER, cost_class="pool", work=pool_work)

register(Kernel("arm_max_pool_s8", "cmsis-nn", ops=("max_pool2d",), requires=all_of(nhwc_activations, WINDOWS),
                reason="max pooling", **_COMMON))
_PADDING_NOT_COUNTED = when(lambda t, op, g: not (attr(op, "count_include_pad") and any(attr(op, "pads"))),
                           "padding counted in the average (CMSIS-NN averages over the input positions only)")

register(Kernel(
    "arm_avgpool_s8", "cmsis-nn", ops=("avg_pool2d",), requires=all_of(nhwc_activations, WINDOWS, _PADDING_NOT_COUNTED),
    scratch=lambda t, op, g: bs.avgpool_s8(t.isa, g.values[op.inputs[0]].shape[3]), reason="average pooling",
    **_COMMON))
