"""The op vocabulary of tinyc's IR: for each op kind, its inputs, typed attributes and shape rule.

One table is the single source of truth used by the verifier, the textual IR parser and the passes.
Arithmetic meaning (float or integer, decided by the dtypes of the values) is documented in
docs/ir.md and implemented by `tinyc.interpreter`.

Attribute types: int, float, str, bool, ints (list of int), floats (list of float).
Attributes marked REQUIRED must be present; others fall back to the default shown.
The attributes that `requantize` adds to integer ops are listed under `lowered`; they are optional
for the verifier (present only after that pass) but, when present, must have these types.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from .ir import Op, Value

REQUIRED = object()
ACTIVATIONS = ("none", "relu", "relu6", "clip")
# Every op may carry the kernel chosen for it on the compile's target (tinyc.targets.select_kernels),
# the name of a kernel declared in tinyc.targets.kernels.
KERNEL_ATTR = "impl"
# Ops whose output is, by definition, the input's bytes (docs/ir.md). A transpose that moves only
# axes of size 1 is one too (`is_view`).
VIEW_KINDS = ("reshape", "identity")


class ShapeError(ValueError):
    """An op's inputs or attributes do not give a valid output shape."""


@dataclass(frozen=True)
class OpSpec:
    kind: str
    min_inputs: int
    max_inputs: int  # -1: variadic
    attrs: dict[str, tuple[str, Any]]
    infer: Callable[[Op, Sequence[Value]], list[tuple[int, ...]]]
    lowered: dict[str, str] = field(default_factory=dict)
    doc: str = ""


def spatial_axes(layout: str) -> tuple[int, int, int]:
    """(channel axis, height axis, width axis) of a 4-D activation in `layout`."""
    if layout == "NHWC":
        return 3, 1, 2
    return 1, 2, 3


def _conv_out(size: int, k: int, stride: int, dil: int, pad_a: int, pad_b: int) -> int:
    eff = (k - 1) * dil + 1
    out = (size + pad_a + pad_b - eff) // stride + 1
    if out <= 0:
        raise ShapeError(f"window {eff} does not fit input extent {size} with pads {pad_a},{pad_b}")
    return out


def _weight_dims(w: Value) -> tuple[int, int, int, int]:
    """(out channels, in channels per group, KH, KW) of a conv weight in its layout."""
    s = w.shape
    if len(s) != 4:
        raise ShapeError(f"weight {w.name} must be 4-D, has shape {list(s)}")
    if w.layout in ("", "OIHW"):
        return s[0], s[1], s[2], s[3]
    if w.layout == "OHWI":
        return s[0], s[3], s[1], s[2]
    if w.layout == "IHWO":
        return s[3], s[0], s[1], s[2]
    raise ShapeError(f"weight {w.name} has layout {w.layout!r}, which convolutions cannot read")


def _infer_conv(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    x, w = ins[0], ins[1]
    if len(x.shape) != 4:
        raise ShapeError(f"input {x.name} must be 4-D, has shape {list(x.shape)}")
    c_ax, h_ax, w_ax = spatial_axes(x.layout)
    cout, cin_g, kh, kw = _weight_dims(w)
    sh, sw = op.attrs["strides"]
    dh, dw = op.attrs["dilations"]
    pt, pl, pb, pr = op.attrs["pads"]
    cin = x.shape[c_ax]
    if op.kind == "conv2d":
        group = op.attrs["group"]
        if cin_g * group != cin or cout % group:
            raise ShapeError(f"weight {w.name} (in/group {cin_g}, out {cout}) does not fit input "
                             f"channels {cin} with group {group}")
    else:
        mult = op.attrs["depth_multiplier"]
        if cin_g != 1 or cout != cin * mult:
            raise ShapeError(f"depthwise weight {w.name} must have {cin * mult} outputs and one input "
                             f"channel per group, has {cout} and {cin_g}")
    if len(ins) > 2 and ins[2].shape != (cout,):
        raise ShapeError(f"bias {ins[2].name} must have shape [{cout}], has {list(ins[2].shape)}")
    oh = _conv_out(x.shape[h_ax], kh, sh, dh, pt, pb)
    ow = _conv_out(x.shape[w_ax], kw, sw, dw, pl, pr)
    out = list(x.shape)
    out[c_ax], out[h_ax], out[w_ax] = cout, oh, ow
    return [tuple(out)]


def _infer_pool(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    x = ins[0]
    if len(x.shape) != 4:
        raise ShapeError(f"input {x.name} must be 4-D, has shape {list(x.shape)}")
    _, h_ax, w_ax = spatial_axes(x.layout)
    kh, kw = op.attrs["kernel"]
    sh, sw = op.attrs["strides"]
    pt, pl, pb, pr = op.attrs["pads"]
    out = list(x.shape)
    out[h_ax] = _conv_out(x.shape[h_ax], kh, sh, 1, pt, pb)
    out[w_ax] = _conv_out(x.shape[w_ax], kw, sw, 1, pl, pr)
    return [tuple(out)]


def _infer_global_pool(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    x = ins[0]
    if len(x.shape) != 4:
        raise ShapeError(f"input {x.name} must be 4-D, has shape {list(x.shape)}")
    _, h_ax, w_ax = spatial_axes(x.layout)
    out = list(x.shape)
    out[h_ax] = out[w_ax] = 1
    return [tuple(out)]


def _infer_fc(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    x, w = ins[0], ins[1]
    if len(x.shape) != 2 or len(w.shape) != 2 or x.shape[1] != w.shape[1]:
        raise ShapeError(f"fully_connected needs x [N,K] and weight [O,K]; got {list(x.shape)} and "
                         f"{list(w.shape)}")
    if len(ins) > 2 and ins[2].shape != (w.shape[0],):
        raise ShapeError(f"bias {ins[2].name} must have shape [{w.shape[0]}]")
    return [(x.shape[0], w.shape[0])]


def _infer_gemm(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    a, b = ins[0].shape, ins[1].shape
    if len(a) != 2 or len(b) != 2:
        raise ShapeError("gemm needs 2-D operands")
    m, k = (a[1], a[0]) if op.attrs["trans_a"] else a
    k2, n = (b[1], b[0]) if op.attrs["trans_b"] else b
    if k != k2:
        raise ShapeError(f"gemm inner dimensions differ: {k} and {k2}")
    return [(m, n)]


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    rank = max(len(s) for s in shapes)
    out = []
    for i in range(rank):
        dims = {s[len(s) - rank + i] for s in shapes if len(s) - rank + i >= 0} - {1}
        if len(dims) > 1:
            raise ShapeError(f"shapes {[list(s) for s in shapes]} do not broadcast")
        out.append(dims.pop() if dims else 1)
    return tuple(out)


def _infer_matmul(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    a, b = ins[0].shape, ins[1].shape
    if len(a) < 2 or len(b) < 2:
        raise ShapeError("matmul operands must be at least 2-D (1-D operands are reshaped by the frontend)")
    if a[-1] != b[-2]:
        raise ShapeError(f"matmul inner dimensions differ: {a[-1]} and {b[-2]}")
    return [broadcast_shapes(a[:-2], b[:-2]) + (a[-2], b[-1])]


def _infer_same(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    return [ins[0].shape]


def _infer_broadcast(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    return [broadcast_shapes(*(v.shape for v in ins))]


def _norm_axis(axis: int, rank: int) -> int:
    if not -rank <= axis < rank:
        raise ShapeError(f"axis {axis} out of range for rank {rank}")
    return axis % rank


def _infer_concat(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    rank = len(ins[0].shape)
    axis = _norm_axis(op.attrs["axis"], rank)
    out = list(ins[0].shape)
    for v in ins[1:]:
        if len(v.shape) != rank or any(v.shape[i] != out[i] for i in range(rank) if i != axis):
            raise ShapeError(f"concat input {v.name} shape {list(v.shape)} does not match {out}")
        out[axis] += v.shape[axis]
    return [tuple(out)]


def _infer_reshape(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    shape = tuple(op.attrs["shape"])
    if any(d <= 0 for d in shape):
        raise ShapeError(f"reshape target {list(shape)} must be fully static and positive")
    if ins[0].size != (int(__import__("numpy").prod(shape)) if shape else 1):
        raise ShapeError(f"reshape of {list(ins[0].shape)} to {list(shape)} changes the element count")
    return [shape]


def _infer_transpose(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    perm = list(op.attrs["perm"])
    if sorted(perm) != list(range(len(ins[0].shape))):
        raise ShapeError(f"perm {perm} is not a permutation of the input's {len(ins[0].shape)} axes")
    return [tuple(ins[0].shape[p] for p in perm)]


def _infer_pad(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    pads = list(op.attrs["pads"])
    rank = len(ins[0].shape)
    if len(pads) != 2 * rank or any(p < 0 for p in pads):
        raise ShapeError(f"pad needs {2 * rank} non-negative pads (begins then ends), got {pads}")
    return [tuple(d + pads[i] + pads[i + rank] for i, d in enumerate(ins[0].shape))]


def _infer_softmax(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    _norm_axis(op.attrs["axis"], len(ins[0].shape))
    return [ins[0].shape]


def _infer_batch_norm(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    c_ax = spatial_axes(ins[0].layout)[0] if len(ins[0].shape) == 4 else 1
    c = ins[0].shape[c_ax]
    for v in ins[1:]:
        if v.shape != (c,):
            raise ShapeError(f"batch_norm parameter {v.name} must have shape [{c}]")
    return [ins[0].shape]


_CONV_ATTRS = {
    "strides": ("ints", [1, 1]),
    "pads": ("ints", [0, 0, 0, 0]),
    "dilations": ("ints", [1, 1]),
    "activation": ("str", "none"),
    "clip_min": ("float", 0.0),
    "clip_max": ("float", 6.0),
}
_REQUANT_LOWERED = {
    "multiplier": "ints", "shift": "ints", "input_offset": "int", "output_offset": "int",
    "act_min": "int", "act_max": "int",
}
_POOL_ATTRS = {
    "kernel": ("ints", REQUIRED),
    "strides": ("ints", [1, 1]),
    "pads": ("ints", [0, 0, 0, 0]),
    "activation": ("str", "none"),
    "clip_min": ("float", 0.0),
    "clip_max": ("float", 6.0),
}

_SPECS = [
    OpSpec("conv2d", 2, 3, {**_CONV_ATTRS, "group": ("int", 1)}, _infer_conv, _REQUANT_LOWERED,
           "2-D convolution (1-D convolutions are imported with H == 1); optional fused activation."),
    OpSpec("depthwise_conv2d", 2, 3, {**_CONV_ATTRS, "depth_multiplier": ("int", 1)}, _infer_conv,
           _REQUANT_LOWERED, "Depthwise convolution: group == input channels."),
    OpSpec("fully_connected", 2, 3, {"activation": ("str", "none"), "clip_min": ("float", 0.0),
                                     "clip_max": ("float", 6.0)}, _infer_fc, _REQUANT_LOWERED,
           "y[N,O] = x[N,K] . w[O,K]^T + b[O]; optional fused activation."),
    OpSpec("gemm", 2, 3, {"alpha": ("float", 1.0), "beta": ("float", 1.0), "trans_a": ("bool", False),
                          "trans_b": ("bool", False)}, _infer_gemm, {}, "ONNX Gemm (float only)."),
    OpSpec("matmul", 2, 2, {}, _infer_matmul, {"input_offset": "int", "weight_offset": "int"},
           "numpy matmul; integer form accumulates (a - za) * (b - zb) into int32."),
    OpSpec("batch_norm", 5, 5, {"epsilon": ("float", 1e-5)}, _infer_batch_norm, {},
           "Inference batch norm over the channel axis: inputs x, scale, bias, mean, var (float only)."),
    OpSpec("add", 2, 2, {"activation": ("str", "none"), "clip_min": ("float", 0.0),
                         "clip_max": ("float", 6.0)}, _infer_broadcast,
           {"input1_offset": "int", "input2_offset": "int", "output_offset": "int", "left_shift": "int",
            "input1_multiplier": "int", "input1_shift": "int", "input2_multiplier": "int",
            "input2_shift": "int", "output_multiplier": "int", "output_shift": "int",
            "act_min": "int", "act_max": "int"},
           "Element-wise add with broadcasting; integer form uses the TFLite ADD scheme."),
    OpSpec("mul", 2, 2, {"activation": ("str", "none"), "clip_min": ("float", 0.0),
                         "clip_max": ("float", 6.0)}, _infer_broadcast,
           {"input1_offset": "int", "input2_offset": "int", "output_offset": "int",
            "output_multiplier": "int", "output_shift": "int", "act_min": "int", "act_max": "int"},
           "Element-wise multiply with broadcasting."),
    OpSpec("relu", 1, 1, {}, _infer_same, {}, "max(x, 0) (float only; integer graphs fuse or use lut)."),
    OpSpec("clip", 1, 1, {"min": ("float", float("-inf")), "max": ("float", float("inf"))}, _infer_same,
           {}, "clamp(x, min, max) (float only)."),
    OpSpec("leaky_relu", 1, 1, {"alpha": ("float", 0.01)}, _infer_same, {}, "x if x >= 0 else alpha*x."),
    OpSpec("sigmoid", 1, 1, {}, _infer_same, {}, "1 / (1 + exp(-x))."),
    OpSpec("tanh", 1, 1, {}, _infer_same, {}, "tanh(x)."),
    OpSpec("hard_swish", 1, 1, {}, _infer_same, {}, "x * relu6(x + 3) / 6."),
    OpSpec("lut", 1, 1, {"table": ("ints", REQUIRED)}, _infer_same, {},
           "int8 -> int8 table look-up: y = table[x + 128] (256 entries)."),
    OpSpec("max_pool2d", 1, 1, dict(_POOL_ATTRS), _infer_pool, {"act_min": "int", "act_max": "int"},
           "Max pooling; padded positions never win."),
    OpSpec("avg_pool2d", 1, 1, {**_POOL_ATTRS, "count_include_pad": ("bool", False)}, _infer_pool,
           {"act_min": "int", "act_max": "int"},
           "Average pooling; integer form rounds the sum / count half away from zero."),
    OpSpec("global_avg_pool", 1, 1, {}, _infer_global_pool, {}, "Mean over H and W (keeps dims)."),
    OpSpec("softmax", 1, 1, {"axis": ("int", -1), "beta": ("float", 1.0)}, _infer_softmax,
           {"input_multiplier": "int", "input_left_shift": "int", "diff_min": "int"},
           "Softmax along axis; integer form is the TFLite/CMSIS-NN fixed-point scheme."),
    OpSpec("concat", 1, -1, {"axis": ("int", REQUIRED)}, _infer_concat, {},
           "Concatenate along axis; integer inputs share the output's quantisation."),
    OpSpec("reshape", 1, 1, {"shape": ("ints", REQUIRED)}, _infer_reshape, {},
           "Same bytes, new static shape (Flatten, Squeeze, Unsqueeze, Reshape)."),
    OpSpec("transpose", 1, 1, {"perm": ("ints", REQUIRED)}, _infer_transpose, {}, "Permute axes."),
    OpSpec("pad", 1, 1, {"pads": ("ints", REQUIRED), "value": ("float", 0.0)}, _infer_pad, {},
           "Constant pad; pads are begins then ends per axis; value is the stored element value."),
    OpSpec("identity", 1, 1, {}, _infer_same, {}, "y = x (Identity, Dropout); removed by canonicalize."),
    OpSpec("quantize", 1, 1, {}, _infer_same, {},
           "float -> int8/uint8 with the output's quantisation: saturate(round_half_even(x/s) + zp)."),
    OpSpec("dequantize", 1, 1, {}, _infer_same, {}, "int -> float32: s * (q - zp)."),
    OpSpec("rescale", 1, 1, {}, _infer_same,
           {"multiplier": "ints", "shift": "ints", "input_offset": "int", "output_offset": "int"},
           "int -> int8 (or uint8 at a graph output) with another quantisation: uint8 <-> int8, or a scale change."),
]

SPECS: dict[str, OpSpec] = {s.kind: s for s in _SPECS}


def spec(kind: str) -> OpSpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise KeyError(f"unknown op kind {kind!r}") from None


def attr(op: Op, key: str) -> Any:
    """The attribute's value, or its default from the op's spec."""
    if key in op.attrs:
        return op.attrs[key]
    default = spec(op.kind).attrs[key][1]
    if default is REQUIRED:
        raise KeyError(f"{op.kind} {op.name!r} lacks required attribute {key!r}")
    return list(default) if isinstance(default, list) else default


def with_defaults(op: Op) -> dict[str, Any]:
    """All of the op's attributes, defaults filled in (lowered attributes only if present)."""
    out = {k: attr(op, k) for k in spec(op.kind).attrs if k in op.attrs or spec(op.kind).attrs[k][1] is not REQUIRED}
    out.update({k: v for k, v in op.attrs.items() if k not in out})
    return out


def moves_only_unit_axes(shape: Sequence[int], perm: Sequence[int]) -> bool:
    """True when transposing `shape` by `perm` keeps the bytes in the same order (it only moves axes
    of size 1), so a reshape does the same job."""
    kept = [p for p in perm if shape[p] != 1]
    return kept == sorted(kept)


def is_view(op: Op, input_shape: Sequence[int]) -> bool:
    """The op's output is its input's bytes, whatever the target: a reshape or identity, or a transpose
    of `input_shape` that moves only axes of size 1."""
    if op.kind in VIEW_KINDS:
        return True
    return op.kind == "transpose" and moves_only_unit_axes(input_shape, attr(op, "perm"))


def infer_shapes(op: Op, ins: Sequence[Value]) -> list[tuple[int, ...]]:
    """Output shapes of `op` for input values `ins` (raises ShapeError)."""
    full = Op(op.kind, op.name, op.inputs, op.outputs, with_defaults(op))
    return spec(op.kind).infer(full, ins)
