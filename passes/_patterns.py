"""Graph-matching and editing helpers shared by canonicalize, fuse and qdq-to-integer.

Everything here keeps the graph's interface: a value that is a graph input or output keeps its name,
and an op that disappears hands its output name to the op that takes over its work.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from tinyc.ir import Graph, Op, QuantParams, Value

Rule = Callable[[Graph, Op], bool]


def apply_rule(graph: Graph, rule: Rule) -> None:
    """Offer every op (in order, including ops a rewrite adds) to `rule` until none changes.

    A rule returns True when it edited the graph; the sweep then restarts from the op list's current
    state, so rules can freely add and remove ops."""
    changed = True
    while changed:
        changed = False
        for op in list(graph.ops):
            if not contains(graph, op):
                continue
            if rule(graph, op):
                changed = True


def contains(graph: Graph, op: Op) -> bool:
    return any(o is op for o in graph.ops)


def index_of(graph: Graph, op: Op) -> int:
    for i, o in enumerate(graph.ops):
        if o is op:
            return i
    raise ValueError(f"op {op.name!r} is not in the graph")


def remove_op(graph: Graph, op: Op) -> None:
    graph.ops.pop(index_of(graph, op))


def insert_before(graph: Graph, anchor: Op, new_ops: list[Op]) -> None:
    i = index_of(graph, anchor)
    graph.ops[i:i] = new_ops


def insert_after(graph: Graph, anchor: Op, new_ops: list[Op]) -> None:
    i = index_of(graph, anchor) + 1
    graph.ops[i:i] = new_ops


def fresh_op_name(graph: Graph, base: str) -> str:
    """An op name not used yet, derived from `base` (op names identify kernels in generated C)."""
    taken = {op.name for op in graph.ops}
    if base not in taken:
        return base
    i = 1
    while f"{base}_{i}" in taken:
        i += 1
    return f"{base}_{i}"


def producer(graph: Graph, name: str) -> Op | None:
    for op in graph.ops:
        if name in op.outputs:
            return op
    return None


def readers(graph: Graph, name: str) -> list[Op]:
    """Ops reading `name` (an op reading it twice is listed twice)."""
    return [op for op in graph.ops for n in op.inputs if n == name]


def sole_reader(graph: Graph, name: str) -> Op | None:
    """The one op reading `name` once, provided the value is not also a graph output."""
    if name in graph.outputs:
        return None
    users = readers(graph, name)
    return users[0] if len(users) == 1 else None


def is_graph_boundary(graph: Graph, name: str) -> bool:
    return name in graph.inputs or name in graph.outputs


def plain_const(graph: Graph, name: str, dtype: str = "float32") -> Value | None:
    v = graph.values.get(name)
    if v is not None and v.is_const and v.dtype == dtype:
        return v
    return None


@dataclass
class ConstLike:
    """A value that is a constant, or `dequantize` of a constant (the QDQ form of a weight)."""

    name: str           # what the consumer reads (float32)
    const: Value        # the stored constant (float32, or the quantised integer data)
    dequantize: Op | None

    @property
    def quantized(self) -> bool:
        return self.dequantize is not None


def const_like(graph: Graph, name: str) -> ConstLike | None:
    v = graph.values.get(name)
    if v is None or v.dtype != "float32":
        return None
    if v.is_const:
        return ConstLike(name, v, None)
    op = producer(graph, name)
    if op is not None and op.kind == "dequantize":
        src = graph.values[op.inputs[0]]
        if src.is_const and src.quant is not None:
            return ConstLike(name, src, op)
    return None


def moved_quant(quant: QuantParams | None, axis_map: Callable[[int], int | None]) -> QuantParams | None:
    """`quant` with its per-slice axis renumbered by `axis_map` (per-tensor quantisation is unchanged)."""
    if quant is None or quant.axis is None:
        return quant
    new_axis = axis_map(quant.axis)
    if new_axis is None:
        raise ValueError("quantisation axis does not survive the reshaping")
    return QuantParams(quant.scale, quant.zero_point, new_axis)


def replace_const_like(graph: Graph, reader: Op, old: ConstLike, data: np.ndarray,
                       quant: QuantParams | None, base: str) -> str:
    """Make a const-like input of `reader` hold `data` (float32, or quantised integers with `quant`
    when `old` is a dequantize of a constant). Returns the float32 name `reader` must now read.

    A dequantize that only `reader` uses is edited in place (it keeps its op name); a shared one is
    left for its other readers and a new dequantize is added in front of `reader`."""
    if not old.quantized:
        return graph.add_const(base, data.astype(np.float32)).name
    const = graph.add_const(base, data, quant=quant)
    dq = old.dequantize
    assert dq is not None
    if sole_reader(graph, old.name) is reader:
        dq.inputs = [const.name]
        graph.values[old.name].shape = tuple(data.shape)
        return old.name
    out = graph.add_value(Value(graph.fresh_name(f"{base}_dq"), tuple(data.shape), "float32"))
    new_dq = Op("dequantize", fresh_op_name(graph, f"{dq.name}_{base}"), [const.name], [out.name])
    insert_before(graph, reader, [new_dq])
    return out.name


def rename_value(graph: Graph, old: str, new: str) -> None:
    """Every op writing or reading `old` uses `new` instead; the value `old` is dropped (`new` must
    already be declared with the same type)."""
    for op in graph.ops:
        op.outputs = [new if n == old else n for n in op.outputs]
        op.inputs = [new if n == old else n for n in op.inputs]
    del graph.values[old]


def take_over_output(graph: Graph, doer: Op, removed: Op) -> None:
    """`doer` now writes what `removed` wrote (removed's output name and value are kept); `removed`
    leaves the graph and doer's former output value is dropped. Used when a later op is folded into
    the op that does the work."""
    old = doer.outputs[0]
    doer.outputs = list(removed.outputs)
    remove_op(graph, removed)
    if not any(old in op.inputs for op in graph.ops) and old not in graph.outputs:
        graph.values.pop(old, None)


def bypass(graph: Graph, op: Op) -> bool:
    """Remove a one-input op whose output equals its input (identity, reshape to the same shape).

    Readers of the output read the input instead. If the output is a graph output, the input's
    producer writes it directly. Returns False (graph unchanged) when neither is possible: the input
    is itself a graph input, output or constant and the output is a graph output."""
    x, y = op.inputs[0], op.outputs[0]
    if y not in graph.outputs:
        remove_op(graph, op)
        graph.replace_uses(y, x)
        del graph.values[y]
        return True
    if is_graph_boundary(graph, x) or graph.values[x].is_const:
        return False
    if producer(graph, x) is None:
        return False
    remove_op(graph, op)
    rename_value(graph, x, y)
    return True


def drop_if_unread(graph: Graph, name: str) -> None:
    """Remove the op writing `name` (and the value) when a rewrite left nobody reading it. Used for
    the dequantize of a weight or bias that a rewrite replaced."""
    if name in graph.outputs or any(name in op.inputs for op in graph.ops):
        return
    writer = producer(graph, name)
    if writer is not None:
        remove_op(graph, writer)
    graph.values.pop(name, None)


def remove_unused_constants(graph: Graph) -> None:
    used = set(graph.outputs) | {n for op in graph.ops for n in op.inputs}
    for name in [n for n, v in graph.values.items() if v.is_const and n not in used]:
        del graph.values[name]


def remove_unread_values(graph: Graph) -> None:
    """Drop declared values that no op writes or reads and that are not graph inputs/outputs."""
    referenced = set(graph.inputs) | set(graph.outputs)
    for op in graph.ops:
        referenced.update(op.inputs)
        referenced.update(op.outputs)
    for name in [n for n in graph.values if n not in referenced]:
        del graph.values[name]


def channel_axis(value: Value) -> int:
    """The channel axis of an activation: NHWC keeps channels last, everything else (NCHW, vectors
    [N, C], [N, C, L]) has them at axis 1."""
    if len(value.shape) == 4 and value.layout == "NHWC":
        return 3
    return 1


def weight_out_axis(weight: Value) -> int:
    """The output-channel axis of a conv / fully-connected weight in its layout."""
    return 3 if weight.layout == "IHWO" else 0


def per_channel_vector(data: np.ndarray, out_shape: tuple[int, ...], axis: int) -> np.ndarray | None:
    """If broadcasting `data` to `out_shape` gives values that vary only along `axis`, the vector of
    those values (length out_shape[axis]); otherwise None."""
    if data.ndim > len(out_shape):
        return None
    try:
        full = np.broadcast_to(data, out_shape)
    except ValueError:
        return None
    if np.broadcast_shapes(data.shape, out_shape) != tuple(out_shape):
        return None
    index = tuple(slice(None) if i == axis else 0 for i in range(len(out_shape)))
    vec = np.asarray(full[index])
    expect = vec.reshape([-1 if i == axis else 1 for i in range(len(out_shape))])
    if not np.array_equal(np.broadcast_to(expect, out_shape), full):
        return None
    return vec


def same_quant(a: Value, b: Value) -> bool:
    """Exactly the same stored type and quantisation (no tolerance: equal params mean equal codes)."""
    return a.dtype == b.dtype and a.quant == b.quant
