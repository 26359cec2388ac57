"""depthwise_conv2d kernels (int8, NHWC, IHWO filters [1, KH, KW, C_OUT]), most preferred first."""
from __future__ import annotations

from tinyc.codegen.cwriter import c_int
from tinyc.codegen.emit import LayerContext, activation, dims, tile
from tinyc.ir import Graph, Op
from tinyc.ops import attr

from .. import buffer_sizes as bs
from ..cores import Target
from ..registry import Kernel, register
from ._common import all_of, conv_geometry, conv_layout, conv_macs, when
from .conv import CMSIS_HEADER, INT8_CONV, cmsis_conv_call


def emit_cmsis_depthwise(op: Op, ctx: LayerContext) -> list[str]:
    sh, sw = attr(op, "strides")
    pt, pl, _, _ = attr(op, "pads")
    dh, dw = attr(op, "dilations")
    params = ["static const cmsis_nn_dw_conv_params params = {",
              f"    {c_int(op.attrs['input_offset'])}, {c_int(op.attrs['output_offset'])}, "
              f"{attr(op, 'depth_multiplier')}, {tile(sw, sh)}, {tile(pl, pt)}, {tile(dw, dh)}, "
              f"{activation(op)}}};"]
    w = ctx.value(op.inputs[1])
    return cmsis_conv_call(op, ctx, params, dims(1, w.shape[1], w.shape[2], w.shape[3]), upscale=False)


def _specialised(target: Target, op: Op, graph: Graph) -> bool:
    """The specialised kernels take one output channel per input channel, one batch, no dilation."""
    g = conv_geometry(op, graph)
    return g.out_c == g.c and attr(op, "depth_multiplier") == 1 and g.n == 1 and g.unit_dilation


def _3x3_applies(target: Target, op: Op, graph: Graph) -> bool:
    """arm_depthwise_conv_3x3_s8 reads the middle filter column at every output position and accepts
    at most one column of left padding: right padding must be at most one column too."""
    g = conv_geometry(op, graph)
    last_column = (g.out_w - 1) * g.stride_w - g.pad_left + 1
    return (g.kernel_h == 3 and g.kernel_w == 3 and g.pad_top <= 1 and g.pad_left <= 1
            and last_column <= g.w - 1)


_form = conv_layout("IHWO")
_COMMON = dict(ops=("depthwise_conv2d",), dtypes=INT8_CONV, emit=emit_cmsis_depthwise, cost_class="depthwise",
               work=conv_macs, sources=("nn_depthwise_conv_s8.c",), header=CMSIS_HEADER)
_SPECIALISED = when(_specialised, "a channel multiplier, batch or dilation the specialised kernels lack")

# Helium's wrapper prefers the vectorised _opt kernel even for 3x3 filters.
register(Kernel(
    "arm_depthwise_conv_3x3_s8", "cmsis-nn", isas=("plain", "dsp"),
    requires=all_of(_form, _SPECIALISED, when(_3x3_applies, "not a 3x3 filter with at most one column "
                                                           "or row of padding")),
    scratch=lambda t, op, g: bs.depthwise_conv_3x3_s8(t.isa), reason="3x3 depthwise, channel multiplier 1",
    **_COMMON))
# On cores without DSP the _opt kernel only forwards to the general one.
register(Kernel(
    "arm_depthwise_conv_s8_opt", "cmsis-nn", isas=("dsp", "mve"), requires=all_of(_form, _SPECIALISED),
    scratch=lambda t, op, g: bs.depthwise_conv_s8_opt(t.isa, *_opt_dims(op, g)),
    reason="depthwise, channel multiplier 1", **_COMMON))
register(Kernel(
    "arm_depthwise_conv_s8", "cmsis-nn", requires=_form, scratch=lambda t, op, g: bs.depthwise_conv_s8(t.isa),
    reason="general depthwise", **_COMMON))


def _opt_dims(op: Op, graph: Graph) -> tuple[int, int, int]:
    g = conv_geometry(op, graph)
    return g.c, g.kernel_h, g.kernel_w
