"""What a kernel's C emitter works with: where each value lives, and the C pieces calls share.

Each kernel declared in tinyc.targets.kernels has an emitter `emit(op, ctx) -> list[str]` that returns
the C statements of one layer. `LayerContext` tells it where every value lives (arena offset, caller
buffer or flash constant) and lets it add compile-time constants; everything computable at compile
time (dims, offsets, multipliers) is emitted as constants.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

from ..ir import Graph, Op, Value
from .cwriter import c_int

if TYPE_CHECKING:  # the kernel registry imports this module, not the other way round
    from ..targets import Target


@dataclass
class LayerContext:
    graph: Graph
    pointer: Callable[[str], str]          # value name -> C pointer expression
    const_array: Callable[[str, str, np.ndarray], str]  # (layer key, suffix, data) -> C symbol
    scratch: Callable[[Op], tuple[str, int]]  # op -> (C pointer expression or "NULL", bytes)
    key: str                               # a C-identifier-safe prefix for this layer's constants
    function: str                          # the C function the layer calls
    target: "Target"                       # the core the code is for

    def value(self, name: str) -> Value:
        return self.graph.values[name]

    def layer_const(self, suffix: str, data: np.ndarray) -> str:
        """A constant array of this layer (in flash), by suffix."""
        return self.const_array(self.key, suffix, data)


def nhwc_dims(v: Value) -> tuple[int, int, int, int]:
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


def dims(n: int, h: int, w: int, c: int) -> str:
    """A cmsis_nn_dims initialiser."""
    return f"{{{n}, {h}, {w}, {c}}}"


def activation(op: Op) -> str:
    """A cmsis_nn_activation initialiser: the op's clamp in output codes."""
    return f"{{{c_int(op.attrs['act_min'])}, {c_int(op.attrs['act_max'])}}}"


def tile(w: int, h: int) -> str:
    """A cmsis_nn_tile initialiser."""
    return f"{{{w}, {h}}}"


def bias_or_zeros(op: Op, ctx: LayerContext, channels: int) -> str:
    """The bias pointer; CMSIS-NN kernels that need one get a constant of zeros when the op has none."""
    if len(op.inputs) > 2 and op.inputs[2]:
        return ctx.pointer(op.inputs[2])
    return ctx.layer_const("zero_bias", np.zeros(channels, np.int32))


def optional_bias(op: Op, ctx: LayerContext) -> str:
    """The bias pointer, or NULL when the op has none (tinyc's kernels accept that)."""
    return ctx.pointer(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] else "NULL"


def requant_arrays(op: Op, ctx: LayerContext, channels: int) -> tuple[str, str]:
    """Per-channel multiplier and shift constants (a per-tensor pair repeated `channels` times)."""
    mult = np.asarray(op.attrs["multiplier"], np.int32)
    shift = np.asarray(op.attrs["shift"], np.int32)
    if mult.size == 1 and channels > 1:
        mult, shift = np.repeat(mult, channels), np.repeat(shift, channels)
    return ctx.layer_const("multiplier", mult), ctx.layer_const("shift", shift)


def checked_call(call: str) -> list[str]:
    """A CMSIS-NN call whose status is returned to invoke()'s caller when it is not success."""
    return [f"if ({call} != ARM_CMSIS_NN_SUCCESS) {{", "    return TINYC_STATUS_KERNEL_ERROR;", "}"]


def shape4_const(op: Op, ctx: LayerContext, name: str, suffix: str) -> str:
    """A value's shape left-padded with 1s to 4 dimensions, as an int32 constant."""
    shape = list(ctx.value(name).shape)
    if len(shape) > 4:
        raise ValueError(f"rank {len(shape)} in {op.name}: kernels take at most 4 dimensions")
    return ctx.layer_const(suffix, np.asarray([1] * (4 - len(shape)) + shape, np.int32))
