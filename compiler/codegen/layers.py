"""One C call per layer: how each lowered IR op becomes a call of a CMSIS-NN (or tinyc_) function.

Every emitter receives the op, its kernel choice and a `LayerContext` that knows where each value
lives (arena offset, caller buffer, or flash constant); it returns the C statements of the layer.
Everything computable at compile time (dims, offsets, multipliers) is emitted as constants.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..ir import Graph, Op, Value
from ..ops import attr
from .cwriter import C_TYPES, c_float, c_int


@dataclass
class LayerContext:
    graph: Graph
    pointer: Callable[[str], str]          # value name -> C pointer expression
    const_array: Callable[[str, str, np.ndarray], str]  # (layer key, suffix, data) -> C symbol
    scratch: Callable[[Op], tuple[str, int]]  # op -> (C pointer expression or "NULL", bytes)
    key: str                               # a C-identifier-safe prefix for this layer's constants
    choice: object = None                  # the targets.KernelChoice of the layer

    def value(self, name: str) -> Value:
        return self.graph.values[name]


def _nhwc_dims(v: Value) -> tuple[int, int, int, int]:
    """(n, h, w, c) of a value as CMSIS-NN sees it: NHWC, or [N, C] as N x 1 x 1 x C."""
    s = v.shape
    if len(s) == 4:
        if v.layout not in ("NHWC", ""):
            raise ValueError(f"value {v.name} is {v.layout}; kernels need NHWC (run the layout pass)")
        return s[0], s[1], s[2], s[3]
    if len(s) == 2:
        return s[0], 1, 1, s[1]
    if len(s) == 3:
        return s[0], 1, s[1], s[2]
    if len(s) == 1:
        return 1, 1, 1, s[0]
    raise ValueError(f"value {v.name} of rank {len(s)} has no CMSIS-NN dims")


def _dims(n: int, h: int, w: int, c: int) -> str:
    return f"{{{n}, {h}, {w}, {c}}}"


def _act(op: Op) -> str:
    return f"{{{c_int(op.attrs['act_min'])}, {c_int(op.attrs['act_max'])}}}"


def _tile(w: int, h: int) -> str:
    return f"{{{w}, {h}}}"


def _bias(op: Op, ctx: LayerContext, channels: int) -> str:
    if len(op.inputs) > 2 and op.inputs[2]:
        return ctx.pointer(op.inputs[2])
    return ctx.const_array(ctx.key, "zero_bias", np.zeros(channels, np.int32))


def _requant_arrays(op: Op, ctx: LayerContext, channels: int) -> tuple[str, str]:
    mult = np.asarray(op.attrs["multiplier"], np.int32)
    shift = np.asarray(op.attrs["shift"], np.int32)
    if mult.size == 1 and channels > 1:
        mult, shift = np.repeat(mult, channels), np.repeat(shift, channels)
    return (ctx.const_array(ctx.key, "multiplier", mult), ctx.const_array(ctx.key, "shift", shift))


def _call_status(call: str) -> list[str]:
    return [f"if ({call} != ARM_CMSIS_NN_SUCCESS) {{", "    return TINYC_STATUS_KERNEL_ERROR;", "}"]


def emit_conv(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    if _signature(ctx) == "tinyc_conv":
        return emit_tinyc_conv(op, fn, ctx)
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    n, h, wd, c = _nhwc_dims(x)
    _, oh, ow, oc = _nhwc_dims(y)
    kh, kw = (w.shape[1], w.shape[2])  # OHWI or IHWO
    pt, pl, _, _ = attr(op, "pads")
    sh, sw = attr(op, "strides")
    dh, dw = attr(op, "dilations")
    mult, shift = _requant_arrays(op, ctx, oc)
    buf, size = ctx.scratch(op)
    lines = [f"cmsis_nn_context ctx = {{{buf}, {size}}};"]
    if op.kind == "conv2d":
        lines += [
            "static const cmsis_nn_conv_params params = {",
            f"    {c_int(op.attrs['input_offset'])}, {c_int(op.attrs['output_offset'])}, "
            f"{_tile(sw, sh)}, {_tile(pl, pt)}, {_tile(dw, dh)}, {_act(op)}}};",
        ]
        filter_dims = _dims(oc, kh, kw, w.shape[3])
    else:
        lines += [
            "static const cmsis_nn_dw_conv_params params = {",
            f"    {c_int(op.attrs['input_offset'])}, {c_int(op.attrs['output_offset'])}, "
            f"{attr(op, 'depth_multiplier')}, {_tile(sw, sh)}, {_tile(pl, pt)}, {_tile(dw, dh)}, "
            f"{_act(op)}}};",
        ]
        filter_dims = _dims(1, kh, kw, oc)
    lines += [
        f"static const cmsis_nn_per_channel_quant_params quant = {{(int32_t *){mult}, (int32_t *){shift}}};",
        f"static const cmsis_nn_dims input_dims = {_dims(n, h, wd, c)};",
        f"static const cmsis_nn_dims filter_dims = {filter_dims};",
        f"static const cmsis_nn_dims bias_dims = {_dims(1, 1, 1, oc)};",
        f"static const cmsis_nn_dims output_dims = {_dims(n, oh, ow, oc)};",
    ]
    # arm_convolve_s8 takes upscale dims (transposed convolution); NULL means none.
    upscale = "NULL, " if _signature(ctx) == "conv_upscale" else ""
    lines += _call_status(
        f"{fn}(&ctx, &params, &quant, &input_dims, {ctx.pointer(x.name)}, &filter_dims, "
        f"{ctx.pointer(w.name)}, &bias_dims, {_bias(op, ctx, oc)}, {upscale}&output_dims, "
        f"{ctx.pointer(y.name)})")
    return lines


def _signature(ctx: LayerContext) -> str:
    return getattr(ctx.choice, "signature", "")


def _optional_bias(op: Op, ctx: LayerContext) -> str:
    return ctx.pointer(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else "NULL"


def emit_tinyc_conv(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    """tinyc_conv_s8: the filters packed at compile time (tinyc.targets.packing), int16 windows in
    the scratch buffer."""
    from tinyc.targets import packing
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    n, h, wd, c = _nhwc_dims(x)
    _, oh, ow, oc = _nhwc_dims(y)
    pt, pl, _, _ = attr(op, "pads")
    sh, sw = attr(op, "strides")
    dh, dw = attr(op, "dilations")
    at = op.attrs
    mult, shift = _requant_arrays(op, ctx, oc)
    packed = ctx.const_array(ctx.key, "packed_filter", packing.pack_conv_filters(w.data))
    buf, _ = ctx.scratch(op)
    fields = [n, h, wd, c, oh, ow, oc, w.shape[1], w.shape[2], sh, sw, pt, pl, dh, dw,
              at["input_offset"], at["output_offset"], at["act_min"], at["act_max"]]
    return [
        "/* batches, input h w c, output h w c, kernel h w, stride h w, pad top left, dilation h w,",
        "   input offset, output offset, activation min max */",
        f"static const tinyc_conv_params params = {{{', '.join(c_int(v) for v in fields)}}};",
        f"{fn}(&params, {mult}, {shift}, {ctx.pointer(x.name)}, {packed}, {_optional_bias(op, ctx)}, "
        f"{ctx.pointer(y.name)}, (int16_t *){buf});",
    ]


def emit_tinyc_fc(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    """tinyc_fully_connected_s8: the weights packed at compile time (tinyc.targets.packing)."""
    from tinyc.targets import packing
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    batches, depth = x.shape
    units = w.shape[0]
    at = op.attrs
    per_channel = len(at["multiplier"]) > 1
    mult, shift = _requant_arrays(op, ctx, units if per_channel else 1)  # per tensor: one entry each
    packed = ctx.const_array(ctx.key, "packed_weights", packing.pack_fc_weights(w.data))
    fields = [batches, depth, units, at["input_offset"], at["output_offset"], at["act_min"], at["act_max"],
              int(per_channel)]
    return [
        "/* batches, depth, units, input offset, output offset, activation min max, per channel */",
        f"static const tinyc_fc_params params = {{{', '.join(c_int(v) for v in fields)}}};",
        f"{fn}(&params, {mult}, {shift}, {ctx.pointer(x.name)}, {packed}, {_optional_bias(op, ctx)}, "
        f"{ctx.pointer(y.name)});",
    ]


def emit_fully_connected(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    if _signature(ctx) == "tinyc_fc":
        return emit_tinyc_fc(op, fn, ctx)
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    batches, depth = x.shape
    units = w.shape[0]
    buf, size = ctx.scratch(op)
    if getattr(ctx.choice, "kernel_sums", False):
        # Helium kernels read bias + input_offset * row sums of the weights from ctx.buf; they are
        # constants, so compute them here and keep them in flash instead of the arena.
        from tinyc.targets.kernels import fc_kernel_sums
        bias = ctx.value(op.inputs[2]).data if len(op.inputs) > 2 and op.inputs[2] else None
        sums = fc_kernel_sums(w.data, bias, op.attrs["input_offset"])
        buf, size = f"(void *){ctx.const_array(ctx.key, 'kernel_sums', sums)}", int(sums.nbytes)
    lines = [
        f"cmsis_nn_context ctx = {{{buf}, {size}}};",
        "static const cmsis_nn_fc_params params = {",
        f"    {c_int(op.attrs['input_offset'])}, 0, {c_int(op.attrs['output_offset'])}, {_act(op)}}};",
    ]
    if len(op.attrs["multiplier"]) == 1:
        lines.append(f"static const cmsis_nn_per_tensor_quant_params quant = "
                     f"{{{c_int(op.attrs['multiplier'][0])}, {c_int(op.attrs['shift'][0])}}};")
    else:
        mult, shift = _requant_arrays(op, ctx, units)
        lines.append(f"static const cmsis_nn_per_channel_quant_params quant = "
                     f"{{(int32_t *){mult}, (int32_t *){shift}}};")
    lines += [
        f"static const cmsis_nn_dims input_dims = {_dims(batches, 1, 1, depth)};",
        f"static const cmsis_nn_dims filter_dims = {_dims(depth, 1, 1, units)};",
        f"static const cmsis_nn_dims bias_dims = {_dims(1, 1, 1, units)};",
        f"static const cmsis_nn_dims output_dims = {_dims(batches, 1, 1, units)};",
    ]
    lines += _call_status(
        f"{fn}(&ctx, &params, &quant, &input_dims, {ctx.pointer(x.name)}, &filter_dims, "
        f"{ctx.pointer(w.name)}, &bias_dims, {_bias(op, ctx, units)}, &output_dims, {ctx.pointer(y.name)})")
    return lines


def emit_pool(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    x, y = ctx.value(op.inputs[0]), ctx.value(op.outputs[0])
    n, h, w, c = _nhwc_dims(x)
    _, oh, ow, _ = _nhwc_dims(y)
    kh, kw = attr(op, "kernel")
    sh, sw = attr(op, "strides")
    pt, pl, _, _ = attr(op, "pads")
    buf, size = ctx.scratch(op)
    lines = [
        f"cmsis_nn_context ctx = {{{buf}, {size}}};",
        f"static const cmsis_nn_pool_params params = {{{_tile(sw, sh)}, {_tile(pl, pt)}, {_act(op)}}};",
        f"static const cmsis_nn_dims input_dims = {_dims(n, h, w, c)};",
        f"static const cmsis_nn_dims filter_dims = {_dims(1, kh, kw, 1)};",
        f"static const cmsis_nn_dims output_dims = {_dims(n, oh, ow, c)};",
    ]
    lines += _call_status(f"{fn}(&ctx, &params, &input_dims, {ctx.pointer(x.name)}, &filter_dims, "
                          f"&output_dims, {ctx.pointer(y.name)})")
    return lines


def _broadcast_shapes(op: Op, ctx: LayerContext) -> tuple[str, str, str]:
    """The 4-D shapes (right-aligned, padded with 1) of both inputs and the output, as constants."""
    def shape4(name: str, suffix: str) -> str:
        shape = list(ctx.value(name).shape)
        if len(shape) > 4:
            raise ValueError(f"broadcasting over rank {len(shape)} in {op.name}")
        return ctx.const_array(ctx.key, suffix, np.asarray([1] * (4 - len(shape)) + shape, np.int32))
    return shape4(op.inputs[0], "shape1"), shape4(op.inputs[1], "shape2"), shape4(op.outputs[0], "out_shape")


def emit_add(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    at = op.attrs
    size = ctx.value(y).size
    if _signature(ctx) == "tinyc_add":
        from tinyc.targets import packing
        tables = [ctx.const_array(ctx.key, f"input{k}_table", packing.add_input_table(
            at[f"input{k}_offset"], at["left_shift"], at[f"input{k}_multiplier"], at[f"input{k}_shift"]))
            for k in (1, 2)]
        return [f"{fn}({ctx.pointer(a)}, {ctx.pointer(b)}, {tables[0]}, {tables[1]}, {ctx.pointer(y)}, {size}, "
                f"{c_int(at['output_offset'])}, {c_int(at['output_multiplier'])}, {c_int(at['output_shift'])}, "
                f"{c_int(at['act_min'])}, {c_int(at['act_max'])});"]
    if _signature(ctx) == "add_broadcast":
        s1, s2, so = _broadcast_shapes(op, ctx)
        return [f"{fn}({ctx.pointer(a)}, {s1}, {ctx.pointer(b)}, {s2}, {c_int(at['input1_offset'])}, "
                f"{c_int(at['input1_multiplier'])}, {c_int(at['input1_shift'])}, {c_int(at['input2_offset'])}, "
                f"{c_int(at['input2_multiplier'])}, {c_int(at['input2_shift'])}, {c_int(at['left_shift'])}, "
                f"{ctx.pointer(y)}, {so}, {c_int(at['output_offset'])}, {c_int(at['output_multiplier'])}, "
                f"{c_int(at['output_shift'])}, {c_int(at['act_min'])}, {c_int(at['act_max'])});"]
    return _call_status(
        f"{fn}({ctx.pointer(a)}, {ctx.pointer(b)}, {c_int(at['input1_offset'])}, "
        f"{c_int(at['input1_multiplier'])}, {c_int(at['input1_shift'])}, {c_int(at['input2_offset'])}, "
        f"{c_int(at['input2_multiplier'])}, {c_int(at['input2_shift'])}, {c_int(at['left_shift'])}, "
        f"{ctx.pointer(y)}, {c_int(at['output_offset'])}, {c_int(at['output_multiplier'])}, "
        f"{c_int(at['output_shift'])}, {c_int(at['act_min'])}, {c_int(at['act_max'])}, {size})")


def emit_mul(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    a, b, y = op.inputs[0], op.inputs[1], op.outputs[0]
    at = op.attrs
    size = ctx.value(y).size
    if _signature(ctx) == "mul_broadcast":
        s1, s2, so = _broadcast_shapes(op, ctx)
        return [f"{fn}({ctx.pointer(a)}, {s1}, {ctx.pointer(b)}, {s2}, {c_int(at['input1_offset'])}, "
                f"{c_int(at['input2_offset'])}, {ctx.pointer(y)}, {so}, {c_int(at['output_offset'])}, "
                f"{c_int(at['output_multiplier'])}, {c_int(at['output_shift'])}, {c_int(at['act_min'])}, "
                f"{c_int(at['act_max'])});"]
    return _call_status(
        f"{fn}({ctx.pointer(a)}, {ctx.pointer(b)}, {c_int(at['input1_offset'])}, "
        f"{c_int(at['input2_offset'])}, {ctx.pointer(y)}, {c_int(at['output_offset'])}, "
        f"{c_int(at['output_multiplier'])}, {c_int(at['output_shift'])}, {c_int(at['act_min'])}, "
        f"{c_int(at['act_max'])}, {size})")


def emit_softmax(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    x, y = ctx.value(op.inputs[0]), op.outputs[0]
    row = x.shape[-1]
    rows = x.size // row
    at = op.attrs
    return [f"{fn}({ctx.pointer(x.name)}, {rows}, {row}, {c_int(at['input_multiplier'])}, "
            f"{c_int(at['input_left_shift'])}, {c_int(at['diff_min'])}, {ctx.pointer(y)});"]


def emit_lut(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    x, y = op.inputs[0], op.outputs[0]
    table = ctx.const_array(ctx.key, "table", np.asarray(op.attrs["table"], np.int8))
    return [f"{fn}({ctx.pointer(x)}, {ctx.pointer(y)}, {ctx.value(y).size}, {table});"]


def emit_quantize(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    y = ctx.value(op.outputs[0])
    q = y.quant
    return [f"{fn}({ctx.pointer(op.inputs[0])}, {ctx.pointer(y.name)}, {y.size}, {c_float(q.scale[0])}, "
            f"{c_int(q.zero_point[0])});"]


def emit_dequantize(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    q = x.quant
    return [f"{fn}({ctx.pointer(x.name)}, {ctx.pointer(op.outputs[0])}, {x.size}, {c_float(q.scale[0])}, "
            f"{c_int(q.zero_point[0])});"]


def emit_rescale(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    at = op.attrs
    y = ctx.value(op.outputs[0])
    return [f"{fn}({ctx.pointer(op.inputs[0])}, {ctx.pointer(y.name)}, {y.size}, {c_int(at['input_offset'])}, "
            f"{c_int(at['multiplier'][0])}, {c_int(at['shift'][0])}, {c_int(at['output_offset'])});"]


def emit_transpose(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    perm = list(attr(op, "perm"))
    shape = list(x.shape)
    # Pad to 4-D on the left so one kernel covers ranks 1..4.
    while len(shape) < 4:
        shape.insert(0, 1)
        perm = [0] + [p + 1 for p in perm]
    dims = ctx.const_array(ctx.key, "shape", np.asarray(shape, np.int32))
    permutation = ctx.const_array(ctx.key, "perm", np.asarray(perm, np.int32))
    return [f"{fn}({ctx.pointer(x.name)}, {ctx.pointer(op.outputs[0])}, {dims}, {permutation});"]


def emit_pad(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    x = ctx.value(op.inputs[0])
    pads = list(attr(op, "pads"))
    rank = len(x.shape)
    shape = list(x.shape)
    begins, ends = pads[:rank], pads[rank:]
    while len(shape) < 4:
        shape.insert(0, 1)
        begins.insert(0, 0)
        ends.insert(0, 0)
    dims = ctx.const_array(ctx.key, "shape", np.asarray(shape, np.int32))
    pad_array = ctx.const_array(ctx.key, "pads", np.asarray(begins + ends, np.int32))
    value = int(round(attr(op, "value")))
    return [f"{fn}({ctx.pointer(x.name)}, {ctx.pointer(op.outputs[0])}, {dims}, {pad_array}, {value});"]


def emit_concat(op: Op, fn: str, ctx: LayerContext) -> list[str]:
    y = ctx.value(op.outputs[0])
    axis = attr(op, "axis") % len(y.shape)
    outer = int(np.prod(y.shape[:axis], dtype=np.int64))
    inner = int(np.prod(y.shape[axis + 1:], dtype=np.int64))
    lines = []
    offset = 0
    for name in op.inputs:
        v = ctx.value(name)
        chunk = v.shape[axis] * inner
        lines.append(f"{fn}({ctx.pointer(name)}, {ctx.pointer(y.name)}, {outer}, {chunk}, "
                     f"{y.shape[axis] * inner}, {offset});")
        offset += chunk
    return lines


EMITTERS: dict[str, Callable[[Op, str, LayerContext], list[str]]] = {
    "conv2d": emit_conv,
    "depthwise_conv2d": emit_conv,
    "fully_connected": emit_fully_connected,
    "avg_pool2d": emit_pool,
    "max_pool2d": emit_pool,
    "add": emit_add,
    "mul": emit_mul,
    "softmax": emit_softmax,
    "lut": emit_lut,
    "quantize": emit_quantize,
    "dequantize": emit_dequantize,
    "rescale": emit_rescale,
    "transpose": emit_transpose,
    "pad": emit_pad,
    "concat": emit_concat,
}


def c_type(v: Value) -> str:
    return C_TYPES[v.dtype]
