"""fully_connected kernels (int8 x [N, K], weights [O, K], int32 bias), most preferred first."""
from __future__ import annotations

import numpy as np

from tinyc.codegen.cwriter import c_int
from tinyc.codegen.emit import LayerContext, activation, bias_or_zeros, checked_call, dims, optional_bias, \
    requant_arrays
from tinyc.ir import Graph, Op

from .. import buffer_sizes as bs
from .. import packing
from ..registry import Kernel, register
from ._common import when
from .conv import CMSIS_HEADER, INT8_CONV, TINYC_HEADER


def fc_kernel_sums(weights: np.ndarray, bias: np.ndarray | None, input_offset: int,
                   filter_offset: int = 0) -> np.ndarray:
    """What arm_vector_sum_s8 writes for a fully connected layer's weights [O, K]:
    bias[o] + input_offset * sum_k (w[o, k] + filter_offset), int32 (wrapping like C)."""
    w = np.asarray(weights, dtype=np.int64)
    sums = input_offset * (w.sum(axis=1) + w.shape[1] * filter_offset)
    if bias is not None:
        sums = sums + np.asarray(bias, dtype=np.int64)
    return sums.astype(np.int32)


def _per_channel(op: Op) -> bool:
    return len(op.attrs["multiplier"]) > 1


def emit_cmsis_fc(op: Op, ctx: LayerContext) -> list[str]:
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    batches, depth = x.shape
    units = w.shape[0]
    buf, size = "NULL", bs.fully_connected_s8(ctx.target.isa, units)
    if size:
        # Helium kernels read bias + input_offset * row sums of the weights from ctx.buf (the buffer
        # CMSIS-NN sizes); they are constants, so they are computed here and kept in flash: the
        # layer takes no arena scratch.
        bias = ctx.value(op.inputs[2]).data if len(op.inputs) > 2 and op.inputs[2] else None
        sums = fc_kernel_sums(w.data, bias, op.attrs["input_offset"])
        assert sums.nbytes == size
        buf = f"(void *){ctx.layer_const('kernel_sums', sums)}"
    lines = [
        f"cmsis_nn_context ctx = {{{buf}, {size}}};",
        "static const cmsis_nn_fc_params params = {",
        f"    {c_int(op.attrs['input_offset'])}, 0, {c_int(op.attrs['output_offset'])}, {activation(op)}}};",
    ]
    if not _per_channel(op):
        lines.append(f"static const cmsis_nn_per_tensor_quant_params quant = "
                     f"{{{c_int(op.attrs['multiplier'][0])}, {c_int(op.attrs['shift'][0])}}};")
    else:
        mult, shift = requant_arrays(op, ctx, units)
        lines.append(f"static const cmsis_nn_per_channel_quant_params quant = "
                     f"{{(int32_t *){mult}, (int32_t *){shift}}};")
    lines += [
        f"static const cmsis_nn_dims input_dims = {dims(batches, 1, 1, depth)};",
        f"static const cmsis_nn_dims filter_dims = {dims(depth, 1, 1, units)};",
        f"static const cmsis_nn_dims bias_dims = {dims(1, 1, 1, units)};",
        f"static const cmsis_nn_dims output_dims = {dims(batches, 1, 1, units)};",
    ]
    return lines + checked_call(
        f"{ctx.function}(&ctx, &params, &quant, &input_dims, {ctx.pointer(x.name)}, &filter_dims, "
        f"{ctx.pointer(w.name)}, &bias_dims, {bias_or_zeros(op, ctx, units)}, &output_dims, {ctx.pointer(y.name)})")


def emit_tinyc_fc(op: Op, ctx: LayerContext) -> list[str]:
    """tinyc_fully_connected_s8: the weights packed at compile time (targets.packing)."""
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    batches, depth = x.shape
    units = w.shape[0]
    at = op.attrs
    per_channel = _per_channel(op)
    mult, shift = requant_arrays(op, ctx, units if per_channel else 1)  # per tensor: one entry each
    packed = ctx.layer_const("packed_weights", packing.pack_fc_weights(w.data))
    fields = [batches, depth, units, at["input_offset"], at["output_offset"], at["act_min"], at["act_max"],
              int(per_channel)]
    return [
        "/* batches, depth, units, input offset, output offset, activation min max, per channel */",
        f"static const tinyc_fc_params params = {{{', '.join(c_int(v) for v in fields)}}};",
        f"{ctx.function}(&params, {mult}, {shift}, {ctx.pointer(x.name)}, {packed}, {optional_bias(op, ctx)}, "
        f"{ctx.pointer(y.name)});",
    ]


def fc_macs(op: Op, graph: Graph) -> int:
    batches, depth = graph.values[op.inputs[0]].shape
    return batches * depth * graph.values[op.inputs[1]].shape[0]


_COMMON = dict(ops=("fully_connected",), dtypes=INT8_CONV, cost_class="fc", work=fc_macs)

register(Kernel(
    "tinyc_fully_connected_s8", "tinyc", emit=emit_tinyc_fc, isas=("dsp",), sources=("tinyc_conv_s8.c",),
    header=TINYC_HEADER, reason="packed weights, 4 rows at a time (DSP)", **_COMMON))
register(Kernel(
    "arm_fully_connected_per_channel_s8", "cmsis-nn", emit=emit_cmsis_fc,
    requires=when(lambda t, op, g: _per_channel(op), "per-tensor weights"), sources=("nn_fully_connected_s8.c",),
    header=CMSIS_HEADER, reason="per-channel weights", **_COMMON))
register(Kernel(
    "arm_fully_connected_s8", "cmsis-nn", emit=emit_cmsis_fc,
    requires=when(lambda t, op, g: not _per_channel(op), "per-channel weights"), sources=("nn_fully_connected_s8.c",),
    header=CMSIS_HEADER, reason="per-tensor weights", **_COMMON))
