"""Preconditions and measures several kernel families share."""
from __future__ import annotations

from dataclasses import dataclass

from tinyc.ir import Graph, Op, Value
from tinyc.ops import attr

from ..cores import Target


def values(op: Op, graph: Graph) -> tuple[list[Value], Value]:
    """The op's inputs (absent optional ones left out) and its output."""
    return [graph.values[n] for n in op.inputs if n], graph.values[op.outputs[0]]


def nhwc(v: Value) -> bool:
    return len(v.shape) == 4 and v.layout == "NHWC"


def shape4(shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape left-padded with 1s to 4 dimensions, or None above rank 4."""
    if len(shape) > 4:
        return None
    return (1,) * (4 - len(shape)) + tuple(shape)


def per_tensor(v: Value) -> bool:
    return v.quant is not None and len(v.quant.scale) == 1


def at_most_rank4(target: Target, op: Op, graph: Graph) -> str | None:
    ins, y = values(op, graph)
    if any(len(v.shape) > 4 for v in ins + [y]):
        return "the kernel takes at most 4 dimensions"
    return None


@dataclass(frozen=True)
class ConvGeometry:
    """A convolution (or depthwise convolution) as CMSIS-NN describes it, NHWC."""

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

    @property
    def unit_stride(self) -> bool:
        return self.stride_h == 1 and self.stride_w == 1

    @property
    def grouped(self) -> bool:
        return self.kernel_c != self.c

    @property
    def pointwise(self) -> bool:
        """A 1x1 filter with no padding and no dilation."""
        return self.kernel_h == 1 and self.kernel_w == 1 and self.no_padding and self.unit_dilation

    def macs(self) -> int:
        return self.n * self.out_h * self.out_w * self.out_c * self.kernel_h * self.kernel_w * self.kernel_c


def conv_geometry(op: Op, graph: Graph) -> ConvGeometry:
    x, w, y = (graph.values[op.inputs[0]], graph.values[op.inputs[1]], graph.values[op.outputs[0]])
    if op.kind == "conv2d":  # OHWI
        kernel_h, kernel_w, kernel_c = w.shape[1], w.shape[2], w.shape[3]
    else:  # IHWO, [1, KH, KW, C_OUT]
        kernel_h, kernel_w, kernel_c = w.shape[1], w.shape[2], 1
    pt, pl, pb, pr = attr(op, "pads")
    sh, sw = attr(op, "strides")
    dh, dw = attr(op, "dilations")
    n, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    return ConvGeometry(n, h, wd, c, oh, ow, oc, kernel_h, kernel_w, kernel_c, sh, sw, pt, pl, pb, pr, dh, dw)


def conv_macs(op: Op, graph: Graph) -> int:
    return conv_geometry(op, graph).macs()


def conv_layout(weight_layout: str):
    """The precondition of every convolution kernel: NHWC activations, weights in `weight_layout`."""
    def requires(target: Target, op: Op, graph: Graph) -> str | None:
        x, w, y = (graph.values[op.inputs[0]], graph.values[op.inputs[1]], graph.values[op.outputs[0]])
        if not (nhwc(x) and nhwc(y)):
            return "the kernels take NHWC activations (the layout pass makes them)"
        if w.layout != weight_layout:
            return f"the kernels take {weight_layout} weights, not {w.layout or 'unlabelled'} ones"
        return None
    return requires


def all_of(*requirements):
    """A precondition met when every one of `requirements` is (the first unmet one says why)."""
    def requires(target: Target, op: Op, graph: Graph) -> str | None:
        for requirement in requirements:
            why = requirement(target, op, graph)
            if why is not None:
                return why
        return None
    return requires


def when(test, why: str):
    """A precondition from a yes/no test of the op (`test(target, op, graph)`), with its reason."""
    def requires(target: Target, op: Op, graph: Graph) -> str | None:
        return None if test(target, op, graph) else why
    return requires
