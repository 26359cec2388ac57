"""Kernel selection: which C function runs each lowered IR op on a target, with how much scratch.

`select_kernel(target, op, graph)` looks at one op of a fully lowered graph (NHWC, integer ops with
the `requantize` attributes) and returns a `KernelChoice`, or None when no kernel implements the op in
that form. Specialised CMSIS-NN kernels check their preconditions at run time and return
ARM_CMSIS_NN_ARG_ERROR (or compute garbage) when they do not hold; tinyc checks the same conditions
here, at compile time, and only then names the specialised function, so generated code calls it
directly. Scratch sizes mirror CMSIS-NN's *_get_buffer_size() for the target's instruction set
(tinyc.targets.buffer_sizes), so the same code is correct with runtime_c's kernels or real CMSIS-NN.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import packing
from tinyc.ir import Graph, Op, Value
from tinyc.ops import attr

from . import buffer_sizes as bs
from .cores import Target

CMSIS_HEADER = "arm_nnfunctions.h"
TINYC_HEADER = "tinyc_kernels.h"

# The attributes `requantize` adds, per op kind: without them an op is not in its lowered form.
_LOWERED = {
    "conv2d": ("multiplier", "shift", "input_offset", "output_offset", "act_min", "act_max"),
    "depthwise_conv2d": ("multiplier", "shift", "input_offset", "output_offset", "act_min", "act_max"),
    "fully_connected": ("multiplier", "shift", "input_offset", "output_offset", "act_min", "act_max"),
    "add": ("input1_offset", "input2_offset", "output_offset", "left_shift", "input1_multiplier",
            "input1_shift", "input2_multiplier", "input2_shift", "output_multiplier", "output_shift",
            "act_min", "act_max"),
    "mul": ("input1_offset", "input2_offset", "output_offset", "output_multiplier", "output_shift",
            "act_min", "act_max"),
    "max_pool2d": ("act_min", "act_max"),
    "avg_pool2d": ("act_min", "act_max"),
    "softmax": ("input_multiplier", "input_left_shift", "diff_min"),
    "rescale": ("multiplier", "shift", "input_offset", "output_offset"),
}


@dataclass(frozen=True)
class KernelChoice:
    """How one op runs.

    function: the C function ("" for a view: no code, the output shares the input's bytes).
    signature: the argument list the call takes, for the code generator:
      "conv"          arm_convolve_wrapper_s8 / _1x1_s8_fast / _1x1_s8 / _1_x_n_s8 (ctx, conv_params,
                      quant, input_dims, input, filter_dims, filter, bias_dims, bias, output_dims, output)
      "conv_upscale"  arm_convolve_s8: as "conv" plus upscale_dims (NULL) before output_dims
      "dw_conv"       the depthwise kernels, as "conv" with cmsis_nn_dw_conv_params
      "fc", "fc_per_channel"  arm_fully_connected_s8 (per-tensor quant) / _per_channel_s8
      "elementwise_add", "elementwise_mul"          same-shape arm_elementwise_*_s8
      "add_broadcast", "mul_broadcast"              tinyc_*_broadcast_s8 (4-D shapes)
      "tinyc_conv"    tinyc_conv_s8 (params, multiplier, shift, input, packed filters, bias, output,
                      scratch): filters packed by tinyc.codegen.packing
      "tinyc_fc"      tinyc_fully_connected_s8 (params, multiplier, shift, input, packed weights, bias,
                      output)
      "tinyc_add"     tinyc_add_s8: same shapes, each input's rescaling in a compile-time table
      "pool", "softmax", "lut", "quantize", "dequantize", "rescale", "transpose", "pad", "concat"
      "view"
    header: the header declaring it.
    scratch_bytes: size of the ctx buffer (cmsis_nn_context.size) on this target; 0 means ctx.buf may
      be NULL.
    in_place_inputs: indices of inputs whose buffer the output may reuse (output starting at the same
      address): the kernel reads every input element before writing over it.
    kernel_sums: the ctx buffer must hold arm_vector_sum_s8(buf, K, O, weights, input_offset, 0, bias)
      before the call (fully connected on Helium); `fc_kernel_sums()` computes it at compile time.
    raster_block: the kernel (runtime_c's and CMSIS-NN's, on every ISA) computes output pixels in
      raster order in groups of at most this many: a group reads its windows and writes its own
      pixels (in any interleaving) and never touches later pixels; the planner may then start the
      output a little below the input, overlapping it (0: unknown order, no overlap).
    work: multiply-accumulates (convolutions, fully connected) or output elements, for cost estimates.
    reason: why this kernel, in a few words (for reports).
    """

    function: str
    signature: str
    header: str
    scratch_bytes: int = 0
    in_place_inputs: tuple[int, ...] = ()
    kernel_sums: bool = False
    raster_block: int = 0
    work: int = 0
    reason: str = ""

    @property
    def is_view(self) -> bool:
        return self.signature == "view"

    @property
    def in_place(self) -> bool:
        """The output may be written over (the first of) its inputs."""
        return bool(self.in_place_inputs)


def _cmsis(function: str, signature: str, **kw) -> KernelChoice:
    return KernelChoice(function, signature, CMSIS_HEADER, **kw)


def _tinyc(function: str, signature: str, **kw) -> KernelChoice:
    return KernelChoice(function, signature, TINYC_HEADER, **kw)


def _view(reason: str) -> KernelChoice:
    return KernelChoice("", "view", "", in_place_inputs=(0,), reason=reason)


def fc_kernel_sums(weights: np.ndarray, bias: np.ndarray | None, input_offset: int,
                   filter_offset: int = 0) -> np.ndarray:
    """What arm_vector_sum_s8 writes for a fully connected layer's weights [O, K]:
    bias[o] + input_offset * sum_k (w[o, k] + filter_offset), int32 (wrapping like C)."""
    w = np.asarray(weights, dtype=np.int64)
    sums = input_offset * (w.sum(axis=1) + w.shape[1] * filter_offset)
    if bias is not None:
        sums = sums + np.asarray(bias, dtype=np.int64)
    return sums.astype(np.int32)


# ---- helpers ----------------------------------------------------------------------------------

def _lowered(op: Op) -> bool:
    return all(k in op.attrs for k in _LOWERED.get(op.kind, ()))


def _values(op: Op, graph: Graph) -> tuple[list[Value], Value]:
    return [graph.values[n] for n in op.inputs if n], graph.values[op.outputs[0]]


def _dtypes(values: list[Value], dtype: str) -> bool:
    return all(v.dtype == dtype for v in values)


def _nhwc(v: Value) -> bool:
    return len(v.shape) == 4 and v.layout == "NHWC"


def _shape4(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape left-padded with 1s to 4 dimensions, or None above rank 4."""
    if len(shape) > 4:
        return None
    return (1,) * (4 - len(shape)) + tuple(shape)


@dataclass(frozen=True)
class _ConvGeometry:
    n: int
    h: int
    w: int
    c: int
    out_h: int
    out_w: int
    out_c: int
    kernel_h: int
    kernel_w: int
    kernel_c: int          # input channels each filter reads (C / group; 1 for depthwise)
    stride_h: int
    stride_w: int
    pad_top: int
    pad_left: int
    pad_bottom: int
    pad_right: int
    dilation_h: int
    dilation_w: int

    @property
    def no_padding(self) -> bool:
        return not (self.pad_top or self.pad_left or self.pad_bottom or self.pad_right)

    @property
    def unit_dilation(self) -> bool:
        return self.dilation_h == 1 and self.dilation_w == 1

    def macs(self) -> int:
        return self.n * self.out_h * self.out_w * self.out_c * self.kernel_h * self.kernel_w * self.kernel_c


def _conv_geometry(op: Op, x: Value, w: Value, y: Value) -> _ConvGeometry:
    if op.kind == "conv2d":  # OHWI
        kernel_h, kernel_w, kernel_c = w.shape[1], w.shape[2], w.shape[3]
    else:  # IHWO, [1, KH, KW, C_OUT]
        kernel_h, kernel_w, kernel_c = w.shape[1], w.shape[2], 1
    pt, pl, pb, pr = attr(op, "pads")
    sh, sw = attr(op, "strides")
    dh, dw = attr(op, "dilations")
    n, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    return _ConvGeometry(n, h, wd, c, oh, ow, oc, kernel_h, kernel_w, kernel_c, sh, sw, pt, pl, pb, pr, dh, dw)


def _int8_weighted(op: Op, graph: Graph) -> tuple[list[Value], Value] | None:
    """Inputs and output of a lowered int8 op with int8 weights and an optional int32 bias."""
    ins, y = _values(op, graph)
    x, w = ins[0], ins[1]
    if not (_lowered(op) and x.dtype == "int8" and w.dtype == "int8" and y.dtype == "int8"):
        return None
    if len(ins) > 2 and ins[2].dtype != "int32":
        return None
    return ins, y


def _integer_conv_values(op: Op, graph: Graph, weight_layout: str) -> tuple[Value, Value, Value] | None:
    values = _int8_weighted(op, graph)
    if values is None:
        return None
    ins, y = values
    x, w = ins[0], ins[1]
    if not (_nhwc(x) and _nhwc(y) and w.layout == weight_layout):
        return None
    return x, w, y


# ---- convolutions ---------------------------------------------------------------------------------

def _mve_1_x_n_safe(g: _ConvGeometry) -> bool:
    """Helium's 1xN kernel handles one output row and splits it by the left padding alone; it is
    right only when the right padding is the left one or one more."""
    total_pad = (g.out_w - 1) * g.stride_w + g.kernel_w - g.w
    extra = bs._c_rem(total_pad, 2)
    return g.pad_top == 0 and g.pad_bottom == 0 and total_pad >= 0 and 2 * g.pad_left + extra == total_pad


def _select_conv(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    values = _integer_conv_values(op, graph, "OHWI")
    if values is None:
        return None
    g = _conv_geometry(op, *values)
    isa = target.isa
    grouped = g.kernel_c != g.c
    work = g.macs()
    if not grouped and isa == "dsp":
        # Compile-time packed filters and int16 windows: 17 instructions per 16 MACs in the inner
        # loop and a cheaper requantisation; CMSIS-NN's 1x1 and general kernels need ~2.1-3.5
        # instructions per MAC on the same layers (docs/kernels.md).
        depth4 = packing.conv_depth4(values[1].shape)
        return _tinyc("tinyc_conv_s8", "tinyc_conv", scratch_bytes=4 * depth4, work=work,
                      raster_block=_TINYC_CONV_PIXELS, reason="packed filters, 2 pixels x 2 channels (DSP)")
    if not grouped and g.kernel_h == 1 and g.kernel_w == 1 and g.no_padding and g.unit_dilation:
        if g.stride_h == 1 and g.stride_w == 1:
            return _cmsis("arm_convolve_1x1_s8_fast", "conv", scratch_bytes=bs.convolve_1x1_s8_fast(isa, g.c),
                          work=work, reason="1x1, stride 1, no padding")
        return _cmsis("arm_convolve_1x1_s8", "conv", work=work, reason="1x1, strided, no padding")
    one_row = bs.is_convolve_1_x_n(input_h=g.h, dilation_w=g.dilation_w, kernel_h=g.kernel_h,
                                   stride_w=g.stride_w, input_c=g.c, kernel_c=g.kernel_c)
    if one_row and (isa != "mve" or _mve_1_x_n_safe(g)):
        scratch = bs.convolve_1_x_n_s8(isa, pad_left=g.pad_left, stride_w=g.stride_w, kernel_w=g.kernel_w,
                                       input_w=g.w, input_c=g.c, output_w=g.out_w, kernel_h=g.kernel_h)
        return _cmsis("arm_convolve_1_x_n_s8", "conv", scratch_bytes=scratch, work=work,
                      reason="one-row input and filter")
    scratch = bs.convolve_s8(isa, g.c, g.kernel_h, g.kernel_w)
    # The wrapper would send a 1x1 filter with only bottom/right padding, or a one-row case Helium's
    # 1xN kernel gets wrong, to a kernel that ignores that padding: call the general kernel then.
    wrapper_goes_general = not one_row and not bs.is_convolve_1x1(
        pad_top=g.pad_top, pad_left=g.pad_left, kernel_h=g.kernel_h, kernel_w=g.kernel_w,
        dilation_h=g.dilation_h, dilation_w=g.dilation_w, input_c=g.c, kernel_c=g.kernel_c)
    if wrapper_goes_general:
        return _cmsis("arm_convolve_wrapper_s8", "conv", scratch_bytes=scratch, work=work,
                      raster_block=0 if grouped else _GENERAL_CONV_PIXELS,
                      reason="general convolution" + (" (grouped)" if grouped else ""))
    return _cmsis("arm_convolve_s8", "conv_upscale", scratch_bytes=scratch, work=work,
                  raster_block=0 if grouped else _GENERAL_CONV_PIXELS,
                  reason="general convolution (padding the specialised kernels ignore)")


# tinyc_conv_s8 reads the windows of 2 output pixels before writing them.
_TINYC_CONV_PIXELS = 2

# arm_convolve_s8 gathers the windows of 2 output pixels (4 on Helium) and then writes those pixels'
# channels; runtime_c's version works one pixel at a time. Both go in raster order (CMSIS-NN's grouped
# convolution loops over groups outside the pixels, so it gets no overlap).
_GENERAL_CONV_PIXELS = 4


def _dw_3x3_applies(g: _ConvGeometry) -> bool:
    """arm_depthwise_conv_3x3_s8 reads the middle filter column at every output position and accepts
    at most one column of left padding: right padding must be at most one column too."""
    last_column = (g.out_w - 1) * g.stride_w - g.pad_left + 1
    return (g.kernel_h == 3 and g.kernel_w == 3 and g.pad_top <= 1 and g.pad_left <= 1
            and last_column <= g.w - 1)


def _select_depthwise(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    values = _integer_conv_values(op, graph, "IHWO")
    if values is None:
        return None
    g = _conv_geometry(op, *values)
    isa = target.isa
    work = g.macs()
    multiplier_one = g.out_c == g.c and attr(op, "depth_multiplier") == 1
    specialised = multiplier_one and g.n == 1 and g.unit_dilation
    # Helium's wrapper prefers the vectorised _opt kernel even for 3x3 filters.
    if specialised and isa != "mve" and _dw_3x3_applies(g):
        return _cmsis("arm_depthwise_conv_3x3_s8", "dw_conv", scratch_bytes=bs.depthwise_conv_3x3_s8(isa),
                      work=work, reason="3x3 depthwise, channel multiplier 1")
    if specialised and isa != "plain":
        return _cmsis("arm_depthwise_conv_s8_opt", "dw_conv",
                      scratch_bytes=bs.depthwise_conv_s8_opt(isa, g.c, g.kernel_h, g.kernel_w), work=work,
                      reason="depthwise, channel multiplier 1")
    # On cores without DSP the _opt kernel only forwards to the general one.
    return _cmsis("arm_depthwise_conv_s8", "dw_conv", scratch_bytes=bs.depthwise_conv_s8(isa), work=work,
                  reason="general depthwise")


def _select_fully_connected(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    values = _int8_weighted(op, graph)
    if values is None:
        return None
    ins, y = values
    x, w = ins[0], ins[1]
    batches, depth = x.shape
    units = w.shape[0]
    per_channel = len(op.attrs["multiplier"]) > 1
    if target.isa == "dsp":
        return _tinyc("tinyc_fully_connected_s8", "tinyc_fc", work=batches * depth * units,
                      reason="packed weights, 4 rows at a time (DSP)")
    scratch = bs.fully_connected_s8(target.isa, units)
    return _cmsis("arm_fully_connected_per_channel_s8" if per_channel else "arm_fully_connected_s8",
                  "fc_per_channel" if per_channel else "fc", scratch_bytes=scratch,
                  kernel_sums=target.isa == "mve", work=batches * depth * units,
                  reason="per-channel weights" if per_channel else "per-tensor weights")


# ---- element-wise, pooling, softmax ---------------------------------------------------------------

def _select_elementwise(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    if not (_lowered(op) and _dtypes(ins + [y], "int8")):
        return None
    shapes = [_shape4(v.shape) for v in ins + [y]]
    if any(s is None for s in shapes):
        return None
    in_place = tuple(i for i, s in enumerate(shapes[:2]) if s == shapes[2])
    name = op.kind  # add / mul
    if len(in_place) == 2 and name == "add" and target.isa != "mve":
        # Each input has 256 values: its rescaling is a compile-time table (Helium's vector add is
        # faster than looking values up one at a time).
        return _tinyc("tinyc_add_s8", "tinyc_add", in_place_inputs=in_place, work=y.size,
                      reason="same shapes, rescaling tables")
    if len(in_place) == 2:
        return _cmsis(f"arm_elementwise_{name}_s8", f"elementwise_{name}", in_place_inputs=in_place,
                      work=y.size, reason="same shapes")
    return _tinyc(f"tinyc_{name}_broadcast_s8", f"{name}_broadcast", in_place_inputs=in_place, work=y.size,
                  reason="broadcasting")


def _windows_nonempty(g_h: int, g_w: int, out_h: int, out_w: int, kernel: list[int], strides: list[int],
                      pads: list[int]) -> bool:
    """Every pooling window covers at least one input position (CMSIS-NN's pools need it)."""
    kh, kw = kernel
    sh, sw = strides
    pt, pl = pads[0], pads[1]
    return pt < kh and pl < kw and (out_h - 1) * sh - pt < g_h and (out_w - 1) * sw - pl < g_w


def _select_pool(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    x = ins[0]
    if not (_lowered(op) and x.dtype == "int8" and y.dtype == "int8" and _nhwc(x) and _nhwc(y)):
        return None
    kernel, strides, pads = attr(op, "kernel"), attr(op, "strides"), attr(op, "pads")
    n, h, w, c = x.shape
    _, oh, ow, _ = y.shape
    if not _windows_nonempty(h, w, oh, ow, kernel, strides, pads):
        return None
    work = y.size * kernel[0] * kernel[1]
    if op.kind == "max_pool2d":
        return _cmsis("arm_max_pool_s8", "pool", work=work, reason="max pooling")
    if attr(op, "count_include_pad") and any(pads):
        return None  # CMSIS-NN averages over the input positions only
    return _cmsis("arm_avgpool_s8", "pool", scratch_bytes=bs.avgpool_s8(target.isa, c), work=work,
                  reason="average pooling")


def _select_softmax(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    x = ins[0]
    if not (_lowered(op) and x.dtype == "int8" and y.dtype == "int8"):
        return None
    if attr(op, "axis") % len(x.shape) != len(x.shape) - 1:
        return None  # arm_softmax_s8 works on contiguous rows
    q = y.quant
    if q is not None and (q.zero_point != (-128,) or q.scale != (1.0 / 256.0,)):
        return None  # the kernel's output quantisation is fixed
    return _cmsis("arm_softmax_s8", "softmax", work=y.size, reason="softmax over the last axis")


# ---- tinyc's own kernels --------------------------------------------------------------------------

def _select_lut(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    if ins[0].dtype != "int8" or y.dtype != "int8" or len(attr(op, "table")) != 256:
        return None
    return _tinyc("tinyc_lut_s8", "lut", in_place_inputs=(0,), work=y.size, reason="table look-up")


_QUANTIZE = {"int8": "tinyc_quantize_f32_s8", "uint8": "tinyc_quantize_f32_u8"}
_DEQUANTIZE = {"int8": "tinyc_dequantize_s8_f32", "uint8": "tinyc_dequantize_u8_f32"}
_RESCALE = {("int8", "int8"): "tinyc_rescale_s8", ("uint8", "int8"): "tinyc_rescale_u8_s8",
            ("int8", "uint8"): "tinyc_rescale_s8_u8"}
_TRANSPOSE = {"int8": "tinyc_transpose_s8", "uint8": "tinyc_transpose_u8", "float32": "tinyc_transpose_f32"}


def _per_tensor(v: Value) -> bool:
    return v.quant is not None and len(v.quant.scale) == 1


def _select_quantize(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    if ins[0].dtype != "float32" or y.dtype not in _QUANTIZE or not _per_tensor(y):
        return None
    # Each output byte lands on input bytes already read, so the output may start on the input.
    return _tinyc(_QUANTIZE[y.dtype], "quantize", in_place_inputs=(0,), work=y.size,
                  reason="float32 to integer")


def _select_dequantize(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    x = ins[0]
    if y.dtype != "float32" or x.dtype not in _DEQUANTIZE or not _per_tensor(x):
        return None
    return _tinyc(_DEQUANTIZE[x.dtype], "dequantize", work=y.size, reason="integer to float32")


def _select_rescale(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    function = _RESCALE.get((ins[0].dtype, y.dtype))
    if function is None or not _lowered(op) or len(op.attrs["multiplier"]) != 1:
        return None
    return _tinyc(function, "rescale", in_place_inputs=(0,), work=y.size, reason="requantisation")


def _moves_only_unit_axes(shape: tuple[int, ...], perm: list[int]) -> bool:
    """A transpose whose non-1 axes keep their order leaves the bytes where they are."""
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


def _select_transpose(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    x = ins[0]
    perm = list(attr(op, "perm"))
    if _moves_only_unit_axes(x.shape, perm):
        return _view("transpose of size-1 axes only")
    if len(x.shape) > 4 or x.dtype not in _TRANSPOSE:
        return None
    return _tinyc(_TRANSPOSE[x.dtype], "transpose", work=y.size, reason="axis permutation")


def _select_pad(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    value = float(attr(op, "value"))
    if ins[0].dtype != "int8" or len(ins[0].shape) > 4:
        return None
    if not math.isfinite(value) or value != int(value) or not -128 <= value <= 127:
        return None
    return _tinyc("tinyc_pad_s8", "pad", work=y.size, reason="constant padding")


def _select_concat(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    ins, y = _values(op, graph)
    if not _dtypes(ins + [y], "int8"):
        return None
    return _tinyc("tinyc_concat_s8", "concat", work=y.size, reason="one copy per input")


def _select_view(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    return _view(f"{op.kind}: same bytes")


_SELECTORS = {
    "conv2d": _select_conv,
    "depthwise_conv2d": _select_depthwise,
    "fully_connected": _select_fully_connected,
    "add": _select_elementwise,
    "mul": _select_elementwise,
    "max_pool2d": _select_pool,
    "avg_pool2d": _select_pool,
    "softmax": _select_softmax,
    "lut": _select_lut,
    "quantize": _select_quantize,
    "dequantize": _select_dequantize,
    "rescale": _select_rescale,
    "transpose": _select_transpose,
    "pad": _select_pad,
    "concat": _select_concat,
    "reshape": _select_view,
    "identity": _select_view,
}


def select_kernel(target: Target, op: Op, graph: Graph) -> KernelChoice | None:
    """The kernel that runs `op` (of `graph`) on `target`, or None when no kernel implements it in
    this form (float ops, unlowered integer ops, NCHW layouts, shapes the kernels cannot take)."""
    selector = _SELECTORS.get(op.kind)
    return None if selector is None else selector(target, op, graph)
