"""The IR verifier: checks a graph against the op table (tinyc.ops) and the typing rules of docs/ir.md.

`verify(graph)` raises VerifyError naming the first offending op/value; tests run it after every pass.
"""
from __future__ import annotations

import math

import numpy as np

from .ir import DTYPES, LAYOUTS, Graph, Op, Value
from .ops import ACTIVATIONS, KERNEL_ATTR, REQUIRED, SPECS, ShapeError, infer_shapes

DTYPE_RANGES = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767),
                "int32": (-(2 ** 31), 2 ** 31 - 1)}
# Ops whose integer form needs an int8 input and a fixed-point requantisation of a wide accumulator.
ACCUMULATING = ("conv2d", "depthwise_conv2d", "fully_connected", "matmul")
# Ops whose integer form only moves or selects bytes: input and output quantisation must be equal.
QUANT_PRESERVING = ("reshape", "transpose", "pad", "max_pool2d", "avg_pool2d", "concat", "identity")
# Ops that slide a window over H and W: the layout label says which axes those are.
WINDOWED = ("conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool")
FLOAT_ONLY = ("gemm", "batch_norm", "relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_swish",
              "global_avg_pool")


class VerifyError(ValueError):
    pass


def _check_attr_type(op: Op, key: str, kind: str, value) -> None:
    ok = {
        "int": lambda v: isinstance(v, (int, np.integer)) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (float, int)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
        "bool": lambda v: isinstance(v, bool),
        "ints": lambda v: isinstance(v, (list, tuple)) and all(
            isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in v),
        "floats": lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) for x in v),
    }[kind](value)
    if not ok:
        raise VerifyError(f"op {op.name!r} ({op.kind}): attribute {key} must be {kind}, got {value!r}")


def _check_value(v: Value) -> None:
    where = f"value {v.name!r}"
    if v.dtype not in DTYPES:
        raise VerifyError(f"{where}: unknown dtype {v.dtype!r}")
    if v.layout not in LAYOUTS:
        raise VerifyError(f"{where}: unknown layout {v.layout!r}")
    if v.layout and len(v.shape) != 4:
        raise VerifyError(f"{where}: layout {v.layout} needs a 4-D shape, has {list(v.shape)}")
    if any(d <= 0 for d in v.shape):
        raise VerifyError(f"{where}: shape {list(v.shape)} has a non-positive dimension")
    if v.data is not None:
        if tuple(v.data.shape) != v.shape or str(v.data.dtype) != v.dtype:
            raise VerifyError(f"{where}: constant data is {v.data.dtype}{list(v.data.shape)}, "
                              f"declared {v.dtype}{list(v.shape)}")
    q = v.quant
    if q is None:
        return
    if v.dtype not in DTYPE_RANGES:
        raise VerifyError(f"{where}: quantisation on a {v.dtype} value")
    if not q.scale or any(not (s > 0 and math.isfinite(s)) for s in q.scale):
        raise VerifyError(f"{where}: scales must be positive and finite, got {q.scale[:4]}")
    lo, hi = DTYPE_RANGES[v.dtype]
    if any(not lo <= z <= hi for z in q.zero_point):
        raise VerifyError(f"{where}: zero point outside the {v.dtype} range")
    if q.axis is None:
        if len(q.scale) != 1:
            raise VerifyError(f"{where}: per-tensor quantisation must have one scale, has {len(q.scale)}")
    else:
        if not 0 <= q.axis < len(v.shape):
            raise VerifyError(f"{where}: quantisation axis {q.axis} outside rank {len(v.shape)}")
        if len(q.scale) != v.shape[q.axis]:
            raise VerifyError(f"{where}: {len(q.scale)} scales for axis {q.axis} of size "
                              f"{v.shape[q.axis]}")


def _same_quant(a: Value, b: Value, b_axis: int | None = None) -> bool:
    """Equal quantisation; a per-axis one may sit on `b_axis` of b (where a transpose moved a's axis)."""
    if a.quant is None or b.quant is None:
        return a.quant is b.quant
    axis = a.quant.axis if a.quant.axis is None or b_axis is None else b_axis
    return (a.quant.zero_point == b.quant.zero_point and b.quant.axis == axis and
            np.allclose(a.quant.scale, b.quant.scale, rtol=1e-6, atol=0))


def _moved_axis(op: Op, v: Value, out: Value) -> int | None:
    """Where a per-axis quantisation axis of input v lands in the output of a byte-moving op."""
    if v.quant is None or v.quant.axis is None:
        return None
    if op.kind == "transpose":
        return list(op.attrs["perm"]).index(v.quant.axis)
    if op.kind == "reshape" and out.quant is not None and out.quant.axis is not None:
        # A reshape keeps the per-axis slices when the output axis has the same extent.
        return out.quant.axis if out.shape[out.quant.axis] == v.shape[v.quant.axis] else None
    return None


def _check_op_types(op: Op, ins: list[Value], outs: list[Value]) -> None:
    where = f"op {op.name!r} ({op.kind})"
    out = outs[0]
    is_float = out.dtype == "float32"
    if op.kind == "quantize":
        if ins[0].dtype != "float32" or out.dtype not in ("int8", "uint8", "int16") or out.quant is None:
            raise VerifyError(f"{where}: quantize maps float32 to a quantised integer value")
        return
    if op.kind == "dequantize":
        if ins[0].quant is None or out.dtype != "float32":
            raise VerifyError(f"{where}: dequantize maps a quantised value to float32")
        return
    if op.kind == "rescale":
        if ins[0].quant is None or out.quant is None or out.dtype not in ("int8", "uint8", "int16"):
            raise VerifyError(f"{where}: rescale maps a quantised value to a quantised 8/16-bit value")
        return
    if is_float:
        for v in ins:
            if v.dtype not in ("float32", "int64"):
                raise VerifyError(f"{where}: float op reads {v.dtype} value {v.name!r}")
        return
    if op.kind in FLOAT_ONLY:
        raise VerifyError(f"{where}: has no integer form; lower it (canonicalize/qdq-to-integer) first")
    if op.kind in ACCUMULATING:
        x, w = ins[0], ins[1]
        if x.dtype not in ("int8", "uint8") or w.dtype not in ("int8", "uint8"):
            raise VerifyError(f"{where}: integer {op.kind} needs int8 input and weight")
        if x.quant is None or w.quant is None:
            raise VerifyError(f"{where}: integer {op.kind} needs quantised input and weight")
        if len(ins) > 2:
            b = ins[2]
            if b.dtype != "int32":
                raise VerifyError(f"{where}: bias {b.name!r} must be int32, is {b.dtype}")
        if out.dtype not in ("int8", "int32") or (out.dtype == "int8" and out.quant is None):
            raise VerifyError(f"{where}: output must be quantised int8, or int32 (raw accumulator)")
        return
    if out.quant is None:
        raise VerifyError(f"{where}: integer output {out.name!r} has no quantisation")
    for v in ins:
        if v.dtype != out.dtype and op.kind != "softmax":
            raise VerifyError(f"{where}: input {v.name!r} is {v.dtype}, output is {out.dtype}")
    if op.kind in QUANT_PRESERVING:
        for v in ins:
            if not _same_quant(v, out, _moved_axis(op, v, out)):
                raise VerifyError(f"{where}: input {v.name!r} and output must share quantisation "
                                  f"(insert a rescale)")


def verify(graph: Graph) -> None:
    """Raise VerifyError unless the graph is well formed: known ops with typed attributes, every value
    defined once before use, declared shapes equal to inferred shapes, dtypes and quantisation that
    fit each op's float or integer form."""
    for name, v in graph.values.items():
        if not name:
            raise VerifyError("a value has an empty name (an empty op input means an omitted optional input)")
        if name != v.name:
            raise VerifyError(f"value stored under {name!r} is named {v.name!r}")
        _check_value(v)
    defined = set(graph.inputs) | {v.name for v in graph.constants()}
    for name in graph.inputs:
        if name not in graph.values:
            raise VerifyError(f"graph input {name!r} has no value")
        if graph.values[name].is_const:
            raise VerifyError(f"graph input {name!r} is a constant")
    for op in graph.ops:
        where = f"op {op.name!r} ({op.kind})"
        spec = SPECS.get(op.kind)
        if spec is None:
            raise VerifyError(f"{where}: unknown op kind")
        n = len(op.inputs)
        if n < spec.min_inputs or (spec.max_inputs >= 0 and n > spec.max_inputs):
            raise VerifyError(f"{where}: takes {spec.min_inputs}..{spec.max_inputs} inputs, has {n}")
        if len(op.outputs) != 1:
            raise VerifyError(f"{where}: must have exactly one output")
        for key, value in op.attrs.items():
            if key in spec.attrs:
                _check_attr_type(op, key, spec.attrs[key][0], value)
            elif key in spec.lowered:
                _check_attr_type(op, key, spec.lowered[key], value)
            elif key == KERNEL_ATTR:
                _check_attr_type(op, key, "str", value)
            else:
                raise VerifyError(f"{where}: unknown attribute {key!r}")
        for key, (_, default) in spec.attrs.items():
            if default is REQUIRED and key not in op.attrs:
                raise VerifyError(f"{where}: missing required attribute {key!r}")
        if "activation" in op.attrs and op.attrs["activation"] not in ACTIVATIONS:
            raise VerifyError(f"{where}: unknown activation {op.attrs['activation']!r}")
        for name in op.inputs:
            if name not in graph.values:
                raise VerifyError(f"{where}: reads undeclared value {name!r}")
            if name not in defined:
                raise VerifyError(f"{where}: reads {name!r} before it is produced")
        for name in op.outputs:
            if name not in graph.values:
                raise VerifyError(f"{where}: writes undeclared value {name!r}")
            if name in defined:
                raise VerifyError(f"{where}: value {name!r} is produced twice")
            defined.add(name)
        ins = [graph.values[n] for n in op.inputs]
        outs = [graph.values[n] for n in op.outputs]
        try:
            shapes = infer_shapes(op, ins)
        except (ShapeError, KeyError) as exc:
            raise VerifyError(f"{where}: {exc}") from None
        for v, s in zip(outs, shapes):
            if tuple(s) != v.shape:
                raise VerifyError(f"{where}: output {v.name!r} declared {list(v.shape)}, op gives {list(s)}")
        if op.kind in WINDOWED and ins[0].layout != outs[0].layout:
            raise VerifyError(f"{where}: reads {ins[0].layout or 'no layout'} but writes "
                              f"{outs[0].layout or 'no layout'}; a windowed op keeps its layout")
        _check_op_types(op, ins, outs)
    for name in graph.outputs:
        if name not in defined:
            raise VerifyError(f"graph output {name!r} is never produced")
