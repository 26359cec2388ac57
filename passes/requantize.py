"""requantize: compute the fixed-point parameters of every integer op.

Guarantees: every integer op (integer output) carries the `lowered` attributes of its kind
(compiler/ops.py, docs/ir.md "Integer forms"), derived from the values' float32 scales exactly as
TFLite derives them (effective scales in double, then `quantize_multiplier`):
- conv2d / depthwise_conv2d / fully_connected with an int8 output: per output channel (or one)
  multiplier/shift for s_x * s_w[c] / s_y, input_offset = -zp_x, output_offset = zp_y, act_min/act_max
  from the fused activation; with an int32 output (raw accumulator) only input_offset;
- add (TFLite ADD scheme, left shift 20), mul (one multiplier for s1 * s2 / s_y), softmax (beta
  multiplier, left shift, diff_min), rescale (s_in / s_out and both offsets), max/avg pools
  (act_min/act_max), integer matmul (input_offset = -zp_a, weight_offset = -zp_b).
Float ops and integer ops without parameters (reshape, lut, quantize, ...) are left untouched.
The graph's interface is unchanged and the result verifies.
"""
from __future__ import annotations

import numpy as np

from tinyc import quant_math as qm
from tinyc.errors import UnsupportedError
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import attr
from tinyc.passes import register

ACCUMULATING = ("conv2d", "depthwise_conv2d", "fully_connected")
POOLS = ("max_pool2d", "avg_pool2d")


def _where(op: Op) -> str:
    return f"op {op.name!r} ({op.kind})"


def _per_tensor(op: Op, value: Value) -> tuple[float, int]:
    q = value.quant
    if q is None:
        raise UnsupportedError(f"{_where(op)}: value {value.name!r} has no quantisation; integer ops "
                               f"need quantised inputs and outputs")
    if len(set(q.scale)) != 1 or len(set(q.zero_point)) != 1:
        raise UnsupportedError(f"{_where(op)}: value {value.name!r} must be quantised per tensor "
                               f"(one scale and zero point), has {len(q.scale)}")
    return q.scale[0], q.zero_point[0]


def _activation_bounds(op: Op, out: Value) -> tuple[int, int]:
    scale, zero_point = _per_tensor(op, out)
    return qm.activation_bounds(attr(op, "activation"), scale, zero_point, out.dtype,
                                attr(op, "clip_min"), attr(op, "clip_max"))


def _weight_channel_axis(op: Op, w: Value) -> int:
    if op.kind == "fully_connected":
        return 0
    return 3 if w.layout == "IHWO" else 0


def _weight_scales(op: Op, w: Value) -> list[float]:
    q: QuantParams | None = w.quant
    if q is None:
        raise UnsupportedError(f"{_where(op)}: weight {w.name!r} has no quantisation")
    if any(q.zero_point):
        raise UnsupportedError(f"{_where(op)}: weight {w.name!r} has a non-zero zero point; the int8 "
                               f"kernels need symmetric weights (re-quantise the model's weights "
                               f"symmetrically)")
    if q.per_tensor:
        return [q.scale[0]]
    axis = _weight_channel_axis(op, w)
    if q.axis != axis:
        raise UnsupportedError(f"{_where(op)}: weight {w.name!r} is quantised along axis {q.axis}; "
                               f"only per-output-channel (axis {axis}) or per-tensor is supported")
    return list(q.scale)


def _lower_accumulating(op: Op, graph: Graph) -> None:
    x, w = graph.values[op.inputs[0]], graph.values[op.inputs[1]]
    out = graph.values[op.outputs[0]]
    x_scale, x_zero_point = _per_tensor(op, x)
    weight_scales = _weight_scales(op, w)
    op.attrs["input_offset"] = -x_zero_point
    if out.dtype == "int32":  # ConvInteger / MatMulInteger: the raw accumulator is the result
        _check_accumulator(op, graph, [0])
        return
    y_scale, y_zero_point = _per_tensor(op, out)
    pairs = [qm.quantize_multiplier(x_scale * s_w / y_scale) for s_w in weight_scales]
    _check_accumulator(op, graph, [s for _, s in pairs])
    op.attrs["multiplier"] = [m for m, _ in pairs]
    op.attrs["shift"] = [s for _, s in pairs]
    op.attrs["output_offset"] = y_zero_point
    op.attrs["act_min"], op.attrs["act_max"] = _activation_bounds(op, out)


def _check_accumulator(op: Op, graph: Graph, shifts: list[int]) -> None:
    """Refuse an op whose int32 accumulator could overflow for some input (undefined behaviour in C):
    per output channel, |bias| + sum |w| * (largest |x - zero point| of an int8 input), scaled by the
    requantisation's left shift (2^shift, shift > 0), must stay within int32 with room for the output
    offset the kernels add after requantising."""
    x, w = graph.values[op.inputs[0]], graph.values[op.inputs[1]]
    axis = _weight_channel_axis(op, w)
    per_channel = np.moveaxis(np.abs(w.data.astype(np.int64)), axis, 0).reshape(w.shape[axis], -1).sum(axis=1)
    zero_point = x.quant.zero_point[0]
    lo, hi = qm.DTYPE_LIMITS[x.dtype]
    bound = per_channel * max(zero_point - lo, hi - zero_point)
    if len(op.inputs) > 2 and op.inputs[2]:
        bound = bound + np.abs(graph.values[op.inputs[2]].data.astype(np.int64))
    bound = bound << np.maximum(np.asarray(shifts, dtype=np.int64), 0)
    worst = int(bound.max(initial=0))
    if worst > qm.INT32_MAX - 256:
        raise UnsupportedError(f"{_where(op)}: its int32 accumulator can overflow (bias plus weights times "
                               f"inputs reach {worst:,} > 2^31 - 1 for some input); the model's bias or weights "
                               f"are too large for int8 arithmetic: re-quantise it")


def _lower_add(op: Op, graph: Graph) -> None:
    (s1, z1), (s2, z2) = (_per_tensor(op, graph.values[n]) for n in op.inputs)
    out = graph.values[op.outputs[0]]
    s_out, z_out = _per_tensor(op, out)
    p = qm.add_params(s1, s2, s_out)
    op.attrs.update({
        "input1_offset": -z1, "input2_offset": -z2, "output_offset": z_out,
        "left_shift": p.left_shift,
        "input1_multiplier": p.input1_multiplier, "input1_shift": p.input1_shift,
        "input2_multiplier": p.input2_multiplier, "input2_shift": p.input2_shift,
        "output_multiplier": p.output_multiplier, "output_shift": p.output_shift,
    })
    op.attrs["act_min"], op.attrs["act_max"] = _activation_bounds(op, out)


def _lower_mul(op: Op, graph: Graph) -> None:
    (s1, z1), (s2, z2) = (_per_tensor(op, graph.values[n]) for n in op.inputs)
    out = graph.values[op.outputs[0]]
    s_out, z_out = _per_tensor(op, out)
    multiplier, shift = qm.quantize_multiplier(s1 * s2 / s_out)
    op.attrs.update({"input1_offset": -z1, "input2_offset": -z2, "output_offset": z_out,
                     "output_multiplier": multiplier, "output_shift": shift})
    op.attrs["act_min"], op.attrs["act_max"] = _activation_bounds(op, out)


def _lower_softmax(op: Op, graph: Graph) -> None:
    x, out = graph.values[op.inputs[0]], graph.values[op.outputs[0]]
    s_in, _ = _per_tensor(op, x)
    s_out, z_out = _per_tensor(op, out)
    if x.dtype != "int8" or out.dtype != "int8" or out.quant != qm.SOFTMAX_OUTPUT:
        raise UnsupportedError(f"{_where(op)}: integer softmax needs an int8 input and an int8 output "
                               f"with scale 1/256 and zero point -128 (got {out.dtype}, {s_out}, "
                               f"{z_out}); quantise the softmax output that way")
    try:
        p = qm.softmax_params(s_in, attr(op, "beta"))
    except ValueError:
        raise UnsupportedError(f"{_where(op)}: input scale {s_in} times beta is too small for the int8 "
                               f"softmax scheme (needs beta * scale >= 2^-26)") from None
    op.attrs.update({"input_multiplier": p.input_multiplier, "input_left_shift": p.input_left_shift,
                     "diff_min": p.diff_min})


def _lower_rescale(op: Op, graph: Graph) -> None:
    s_in, z_in = _per_tensor(op, graph.values[op.inputs[0]])
    s_out, z_out = _per_tensor(op, graph.values[op.outputs[0]])
    multiplier, shift = qm.quantize_multiplier(s_in / s_out)
    op.attrs.update({"multiplier": [multiplier], "shift": [shift], "input_offset": -z_in,
                     "output_offset": z_out})


def _lower_pool(op: Op, graph: Graph) -> None:
    op.attrs["act_min"], op.attrs["act_max"] = _activation_bounds(op, graph.values[op.outputs[0]])


def _lower_matmul(op: Op, graph: Graph) -> None:
    a, b = graph.values[op.inputs[0]], graph.values[op.inputs[1]]
    out = graph.values[op.outputs[0]]
    if out.dtype != "int32":
        raise UnsupportedError(f"{_where(op)}: integer matmul must produce the int32 accumulator "
                               f"(requantise it with a rescale), produces {out.dtype}")
    _, z_a = _per_tensor(op, a)
    _, z_b = _per_tensor(op, b)
    op.attrs.update({"input_offset": -z_a, "weight_offset": -z_b})


_LOWERINGS = {
    **{kind: _lower_accumulating for kind in ACCUMULATING},
    **{kind: _lower_pool for kind in POOLS},
    "add": _lower_add, "mul": _lower_mul, "softmax": _lower_softmax, "rescale": _lower_rescale,
    "matmul": _lower_matmul,
}


@register("requantize")
def requantize(graph: Graph) -> Graph:
    """Add the fixed-point parameters (multipliers, shifts, offsets, activation bounds) to every
    integer op; see the module docstring for what each op receives."""
    graph = graph.copy()
    for op in graph.ops:
        out = graph.values[op.outputs[0]]
        lowering = _LOWERINGS.get(op.kind)
        if lowering is not None and out.dtype != "float32":
            lowering(op, graph)
    return graph
