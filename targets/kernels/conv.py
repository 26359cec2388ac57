"""conv2d kernels (int8, NHWC, OHWI filters), most preferred first.

CMSIS-NN's specialised kernels check their preconditions at run time and return
ARM_CMSIS_NN_ARG_ERROR (or compute garbage) when they do not hold; tinyc checks the same conditions
here, at compile time, and names the specialised function only then, so generated code calls it
directly. Scratch sizes are CMSIS-NN's *_get_buffer_size() for the target's instruction set
(tinyc.targets.buffer_sizes), so the same code is right with runtime_c's kernels or a real CMSIS-NN.
"""
from __future__ import annotations

from tinyc.codegen.cwriter import c_int
from tinyc.codegen.emit import (LayerContext, activation, bias_or_zeros, checked_call, dims, nhwc_dims,
                                optional_bias, requant_arrays, tile)
from tinyc.ir import Graph, Op
from tinyc.ops import attr

from .. import buffer_sizes as bs
from .. import packing
from ..cores import Target
from ..registry import DTypes, Kernel, register
from ._common import all_of, conv_geometry, conv_layout, conv_macs, when

CMSIS_HEADER = "arm_nnfunctions.h"
TINYC_HEADER = "tinyc_kernels.h"
INT8_CONV = DTypes(("int8", "int8", "int32"), "int8")

# tinyc_conv_s8 reads the windows of 2 output pixels before writing them.
TINYC_CONV_PIXELS = 2
# arm_convolve_s8 gathers the windows of 2 output pixels (4 on Helium) and then writes those pixels'
# channels; runtime_c's version works one pixel at a time. Both go in raster order (CMSIS-NN's grouped
# convolution loops over groups outside the pixels, so it gets no overlap).
GENERAL_CONV_PIXELS = 4

_form = conv_layout("OHWI")
_ungrouped = when(lambda t, op, g: not conv_geometry(op, g).grouped, "grouped convolution")
_pointwise = when(lambda t, op, g: conv_geometry(op, g).pointwise,
                  "not a 1x1 filter without padding and dilation")


# ---- C ----------------------------------------------------------------------------------------

def cmsis_conv_call(op: Op, ctx: LayerContext, params: list[str], filter_dims: str, upscale: bool) -> list[str]:
    """The call of a CMSIS-NN (depthwise) convolution: its context, `params` (the lines declaring the
    params struct), per-channel quantisation, dims, and the pointers."""
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    n, h, wd, c = nhwc_dims(x)
    _, oh, ow, oc = nhwc_dims(y)
    mult, shift = requant_arrays(op, ctx, oc)
    buf, size = ctx.scratch(op)
    lines = [f"cmsis_nn_context ctx = {{{buf}, {size}}};", *params,
             f"static const cmsis_nn_per_channel_quant_params quant = {{(int32_t *){mult}, (int32_t *){shift}}};",
             f"static const cmsis_nn_dims input_dims = {dims(n, h, wd, c)};",
             f"static const cmsis_nn_dims filter_dims = {filter_dims};",
             f"static const cmsis_nn_dims bias_dims = {dims(1, 1, 1, oc)};",
             f"static const cmsis_nn_dims output_dims = {dims(n, oh, ow, oc)};"]
    # arm_convolve_s8 takes upscale dims (transposed convolution); NULL means none.
    upscale_arg = "NULL, " if upscale else ""
    return lines + checked_call(
        f"{ctx.function}(&ctx, &params, &quant, &input_dims, {ctx.pointer(x.name)}, &filter_dims, "
        f"{ctx.pointer(w.name)}, &bias_dims, {bias_or_zeros(op, ctx, oc)}, {upscale_arg}&output_dims, "
        f"{ctx.pointer(y.name)})")


def _conv_params(op: Op) -> list[str]:
    sh, sw = attr(op, "strides")
    pt, pl, _, _ = attr(op, "pads")
    dh, dw = attr(op, "dilations")
    return ["static const cmsis_nn_conv_params params = {",
            f"    {c_int(op.attrs['input_offset'])}, {c_int(op.attrs['output_offset'])}, "
            f"{tile(sw, sh)}, {tile(pl, pt)}, {tile(dw, dh)}, {activation(op)}}};"]


def _filter_dims(op: Op, ctx: LayerContext) -> str:
    w = ctx.value(op.inputs[1])
    return dims(w.shape[0], w.shape[1], w.shape[2], w.shape[3])


def emit_cmsis_conv(op: Op, ctx: LayerContext) -> list[str]:
    return cmsis_conv_call(op, ctx, _conv_params(op), _filter_dims(op, ctx), upscale=False)


def emit_cmsis_conv_upscale(op: Op, ctx: LayerContext) -> list[str]:
    return cmsis_conv_call(op, ctx, _conv_params(op), _filter_dims(op, ctx), upscale=True)


def emit_tinyc_conv(op: Op, ctx: LayerContext) -> list[str]:
    """tinyc_conv_s8: the filters packed at compile time (targets.packing), int16 windows in the
    scratch buffer."""
    x, w, y = ctx.value(op.inputs[0]), ctx.value(op.inputs[1]), ctx.value(op.outputs[0])
    n, h, wd, c = nhwc_dims(x)
    _, oh, ow, oc = nhwc_dims(y)
    pt, pl, _, _ = attr(op, "pads")
    sh, sw = attr(op, "strides")
    dh, dw = attr(op, "dilations")
    at = op.attrs
    mult, shift = requant_arrays(op, ctx, oc)
    packed = ctx.layer_const("packed_filter", packing.pack_conv_filters(w.data))
    buf, _ = ctx.scratch(op)
    fields = [n, h, wd, c, oh, ow, oc, w.shape[1], w.shape[2], sh, sw, pt, pl, dh, dw,
              at["input_offset"], at["output_offset"], at["act_min"], at["act_max"]]
    return [
        "/* batches, input h w c, output h w c, kernel h w, stride h w, pad top left, dilation h w,",
        "   input offset, output offset, activation min max */",
        f"static const tinyc_conv_params params = {{{', '.join(c_int(v) for v in fields)}}};",
        f"{ctx.function}(&params, {mult}, {shift}, {ctx.pointer(x.name)}, {packed}, {optional_bias(op, ctx)}, "
        f"{ctx.pointer(y.name)}, (int16_t *){buf});",
    ]


# ---- preconditions and scratch ------------------------------------------------------------------

def _one_row(target: Target, op: Op, graph: Graph) -> bool:
    g = conv_geometry(op, graph)
    return bs.is_convolve_1_x_n(input_h=g.h, dilation_w=g.dilation_w, kernel_h=g.kernel_h,
                                stride_w=g.stride_w, input_c=g.c, kernel_c=g.kernel_c)


def _mve_1_x_n_safe(target: Target, op: Op, graph: Graph) -> bool:
    """Helium's 1xN kernel handles one output row and splits it by the left padding alone; it is
    right only when the right padding is the left one or one more."""
    if target.isa != "mve":
        return True
    g = conv_geometry(op, graph)
    total_pad = (g.out_w - 1) * g.stride_w + g.kernel_w - g.w
    extra = bs._c_rem(total_pad, 2)
    return g.pad_top == 0 and g.pad_bottom == 0 and total_pad >= 0 and 2 * g.pad_left + extra == total_pad


def _wrapper_goes_general(target: Target, op: Op, graph: Graph) -> bool:
    """arm_convolve_wrapper_s8 sends a 1x1 filter with only bottom/right padding, and a one-row case
    Helium's 1xN kernel gets wrong, to kernels that ignore that padding: the wrapper is right only
    when it dispatches to the general kernel."""
    g = conv_geometry(op, graph)
    return not _one_row(target, op, graph) and not bs.is_convolve_1x1(
        pad_top=g.pad_top, pad_left=g.pad_left, kernel_h=g.kernel_h, kernel_w=g.kernel_w,
        dilation_h=g.dilation_h, dilation_w=g.dilation_w, input_c=g.c, kernel_c=g.kernel_c)


def _general_scratch(target: Target, op: Op, graph: Graph) -> int:
    g = conv_geometry(op, graph)
    return bs.convolve_s8(target.isa, g.c, g.kernel_h, g.kernel_w)


def _general_raster_block(op: Op, graph: Graph) -> int:
    return 0 if conv_geometry(op, graph).grouped else GENERAL_CONV_PIXELS


def _one_row_scratch(target: Target, op: Op, graph: Graph) -> int:
    g = conv_geometry(op, graph)
    return bs.convolve_1_x_n_s8(target.isa, pad_left=g.pad_left, stride_w=g.stride_w, kernel_w=g.kernel_w,
                                input_w=g.w, input_c=g.c, output_w=g.out_w, kernel_h=g.kernel_h)


# ---- the kernels, most preferred first --------------------------------------------------------------

_COMMON = dict(ops=("conv2d",), dtypes=INT8_CONV, cost_class="conv", work=conv_macs)

# Compile-time packed filters and int16 windows: 17 instructions per 16 MACs in the inner loop and a
# cheaper requantisation; CMSIS-NN's 1x1 and general kernels need ~2.1-3.5 instructions per MAC on
# the same layers (docs/kernels.md).
register(Kernel(
    "tinyc_conv_s8", "tinyc", emit=emit_tinyc_conv, isas=("dsp",), requires=all_of(_form, _ungrouped),
    scratch=lambda t, op, g: 4 * packing.conv_depth4(g.values[op.inputs[1]].shape),
    raster_block=TINYC_CONV_PIXELS, sources=("tinyc_conv_s8.c",), header=TINYC_HEADER,
    reason="packed filters, 2 pixels x 2 channels (DSP)", **_COMMON))
register(Kernel(
    "arm_convolve_1x1_s8_fast", "cmsis-nn", emit=emit_cmsis_conv,
    requires=all_of(_form, _ungrouped, _pointwise,
                    when(lambda t, op, g: conv_geometry(op, g).unit_stride, "strided")),
    scratch=lambda t, op, g: bs.convolve_1x1_s8_fast(t.isa, conv_geometry(op, g).c),
    sources=("nn_convolve_s8.c",), header=CMSIS_HEADER, reason="1x1, stride 1, no padding", **_COMMON))
register(Kernel(
    "arm_convolve_1x1_s8", "cmsis-nn", emit=emit_cmsis_conv, requires=all_of(_form, _ungrouped, _pointwise),
    sources=("nn_convolve_s8.c",), header=CMSIS_HEADER, reason="1x1, strided, no padding", **_COMMON))
register(Kernel(
    "arm_convolve_1_x_n_s8", "cmsis-nn", emit=emit_cmsis_conv,
    requires=all_of(_form, when(_one_row, "not a one-row input and filter"),
                    when(_mve_1_x_n_safe, "padding Helium's 1xN kernel splits wrongly")),
    scratch=_one_row_scratch, sources=("nn_convolve_s8.c",), header=CMSIS_HEADER,
    reason="one-row input and filter", **_COMMON))
register(Kernel(
    "arm_convolve_wrapper_s8", "cmsis-nn", emit=emit_cmsis_conv,
    requires=all_of(_form, when(_wrapper_goes_general, "the wrapper would pick a kernel that ignores "
                                                       "some of the padding")),
    scratch=_general_scratch, raster_block=_general_raster_block, sources=("nn_convolve_s8.c",),
    header=CMSIS_HEADER, reason="general convolution", **_COMMON))
register(Kernel(
    "arm_convolve_s8", "cmsis-nn", emit=emit_cmsis_conv_upscale, requires=_form, scratch=_general_scratch,
    raster_block=_general_raster_block, sources=("nn_convolve_s8.c",), header=CMSIS_HEADER,
    reason="general convolution (padding the specialised kernels ignore)", **_COMMON))
