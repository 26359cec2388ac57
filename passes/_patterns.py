"""Graph-matching and editing helpers shared by canonicalize, fuse and qdq-to-integer.

Those passes rewrite an `IndexedGraph`: the graph plus use-lists (each op's place in the op list, the
op writing each value, the ops reading it), so that asking who reads a value or whether an op is still
in the graph costs the number of uses, not a scan of every op; a scan per query made compiling a
model of n layers cost n^2. The use-lists stay right because, while a pass rewrites, ops, op inputs
and op outputs change only through the methods of `IndexedGraph` and the helpers here.

Everything here keeps the graph's interface: a value that is a graph input or output keeps its name,
and an op that disappears hands its output name to the op that takes over its work.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np

from tinyc.ir import NOT_LOWERED, Graph, Op, QuantParams, Value, unique_name

# Sort keys of consecutive ops start this far apart, so ops inserted between two others get keys
# in between without renumbering the list (which happens only when a gap is used up).
_KEY_GAP = 1 << 32

# Tests set this: apply_rule then compares the use-lists with freshly built ones after every edit.
CHECK_INDEX = False


class IndexedGraph:
    """`graph` under rewriting, with use-lists kept current by the edit methods.

    Values, attributes, op kinds and the graph's outputs may be changed directly; the op list, op
    inputs and op outputs only through `insert`, `remove`, `set_inputs`, `set_outputs` (and the
    helpers built on them). `graph` is the plain graph, current at every moment."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        # id(op) -> a key that increases along graph.ops: positions by bisection, membership by id.
        self._key: dict[int, int] = {}
        self._producer: dict[str, Op] = {}
        self._readers: dict[str, list[Op]] = {}   # one entry per input slot reading the value
        self._op_names: Counter[str] = Counter()
        self.renumbered = 0  # how many times the keys were renumbered (order_key values changed)
        # Called with an op before and after each edit of its inputs or outputs, after it is
        # inserted and before it is removed: a rewrite that revisits changed ops listens here.
        self.on_edit: Callable[[Op], None] = lambda op: None
        self._renumber()
        for op in graph.ops:
            self._register(op)

    # ---- the graph's own fields and value helpers ----------------------------------------------
    @property
    def values(self) -> dict[str, Value]:
        return self.graph.values

    @property
    def inputs(self) -> list[str]:
        return self.graph.inputs

    @property
    def outputs(self) -> list[str]:
        return self.graph.outputs

    @property
    def ops(self) -> list[Op]:
        """The op list, for reading (edit it through the methods)."""
        return self.graph.ops

    def add_value(self, value: Value) -> Value:
        return self.graph.add_value(value)

    def add_const(self, base: str, data: np.ndarray, layout: str = "",
                  quant: QuantParams | None = None) -> Value:
        return self.graph.add_const(base, data, layout, quant)

    def fresh_name(self, base: str) -> str:
        return self.graph.fresh_name(base)

    # ---- queries -------------------------------------------------------------------------------
    def contains(self, op: Op) -> bool:
        return id(op) in self._key

    def order_key(self, op: Op) -> int:
        """A number that increases along the op list (until the keys are renumbered)."""
        return self._key[id(op)]

    def index_of(self, op: Op) -> int:
        if id(op) not in self._key:
            raise ValueError(f"op {op.name!r} is not in the graph")
        return bisect_left(self.graph.ops, self._key[id(op)], key=lambda o: self._key[id(o)])

    def producer(self, name: str) -> Op | None:
        return self._producer.get(name)

    def readers(self, name: str) -> list[Op]:
        """Ops reading `name`, in op order (an op reading it twice is listed twice)."""
        return sorted(self._readers.get(name, ()), key=lambda o: self._key[id(o)])

    def is_read(self, name: str) -> bool:
        return name in self._readers

    def has_op_named(self, name: str) -> bool:
        return name in self._op_names

    # ---- edits ---------------------------------------------------------------------------------
    def insert(self, index: int, new_ops: list[Op]) -> None:
        """Put `new_ops` (not in the graph yet) before the op at `index` (at the end: len(ops))."""
        ops, m = self.graph.ops, len(new_ops)
        lo = self._key[id(ops[index - 1])] if index > 0 else None
        hi = self._key[id(ops[index])] if index < len(ops) else None
        if lo is None:
            lo = (hi if hi is not None else 0) - (m + 1) * _KEY_GAP
        if hi is None:
            hi = lo + (m + 1) * _KEY_GAP
        ops[index:index] = new_ops  # a memmove of pointers: negligible next to the Python work
        if hi - lo > m:
            for j, op in enumerate(new_ops, 1):
                self._key[id(op)] = lo + (hi - lo) * j // (m + 1)
        else:
            self._renumber()
        for op in new_ops:
            self._register(op)
            self.on_edit(op)

    def remove(self, op: Op) -> None:
        self.on_edit(op)
        del self.graph.ops[self.index_of(op)]
        self._unregister(op)
        del self._key[id(op)]

    def set_inputs(self, op: Op, names: Iterable[str]) -> None:
        self._rewire(op, "inputs", names)

    def set_outputs(self, op: Op, names: Iterable[str]) -> None:
        self._rewire(op, "outputs", names)

    def replace_reads(self, old: str, new: str) -> None:
        """Make every op input that reads `old` read `new`."""
        for op in {id(o): o for o in self._readers.get(old, ())}.values():
            self.set_inputs(op, [new if n == old else n for n in op.inputs])

    def replace_uses(self, old: str, new: str) -> None:
        """Make every op input and graph output that reads `old` read `new` (as Graph.replace_uses)."""
        self.replace_reads(old, new)
        self.graph.outputs = [new if n == old else n for n in self.graph.outputs]

    def check(self) -> None:
        """Raise AssertionError unless the use-lists equal ones built afresh from the graph."""
        fresh = IndexedGraph(self.graph)
        keys = [self._key.get(id(op)) for op in self.graph.ops]
        assert None not in keys and len(self._key) == len(keys), "op keys do not match the op list"
        assert all(a < b for a, b in zip(keys, keys[1:])), "op keys do not increase along the op list"
        assert {n: id(op) for n, op in self._producer.items()} == \
            {n: id(op) for n, op in fresh._producer.items()}, "producers differ"
        assert {n: [id(o) for o in self.readers(n)] for n in self._readers} == \
            {n: [id(o) for o in fresh.readers(n)] for n in fresh._readers}, "readers differ"
        assert self._op_names == fresh._op_names, "op names differ"

    # ---- bookkeeping ---------------------------------------------------------------------------
    def _rewire(self, op: Op, field: str, names: Iterable[str]) -> None:
        self.on_edit(op)
        self._unregister(op)
        setattr(op, field, list(names))
        self._register(op)
        self.on_edit(op)

    def _renumber(self) -> None:
        self._key = {id(op): i * _KEY_GAP for i, op in enumerate(self.graph.ops)}
        self.renumbered += 1

    def _register(self, op: Op) -> None:
        if id(op) not in self._key:
            return  # not in the graph (yet): only the op itself changes
        for name in op.inputs:
            if name:
                self._readers.setdefault(name, []).append(op)
        for name in op.outputs:
            self._producer[name] = op
        self._op_names[op.name] += 1

    def _unregister(self, op: Op) -> None:
        if id(op) not in self._key:
            return
        for name in op.inputs:
            if name:
                users = self._readers[name]
                del users[next(i for i, u in enumerate(users) if u is op)]
                if not users:
                    del self._readers[name]
        for name in op.outputs:
            if self._producer.get(name) is op:
                del self._producer[name]
        self._op_names[op.name] -= 1
        if not self._op_names[op.name]:
            del self._op_names[op.name]


Rule = Callable[[IndexedGraph, Op], bool]


def apply_rule(graph: IndexedGraph, rule: Rule) -> None:
    """Offer every op (in order, including ops a rewrite adds) to `rule` until none changes.

    A rule returns True when it edited the graph; the sweep then restarts from the op list's current
    state, so rules can freely add and remove ops."""
    changed = True
    while changed:
        changed = False
        for op in list(graph.ops):
            if graph.contains(op) and rule(graph, op):
                changed = True
                if CHECK_INDEX:
                    graph.check()


def note_not_lowered(graph: Graph, op: Op, reason: str) -> None:
    """Record why `op` keeps a form no kernel may run (graph.meta[NOT_LOWERED], read by the error
    that lists ops without a kernel)."""
    graph.meta.setdefault(NOT_LOWERED, {})[op.name] = reason


def remove_op(graph: IndexedGraph, op: Op) -> None:
    graph.remove(op)


def insert_before(graph: IndexedGraph, anchor: Op, new_ops: list[Op]) -> None:
    graph.insert(graph.index_of(anchor), new_ops)


def insert_after(graph: IndexedGraph, anchor: Op, new_ops: list[Op]) -> None:
    graph.insert(graph.index_of(anchor) + 1, new_ops)


def replace_op(graph: IndexedGraph, op: Op, new_ops: list[Op]) -> None:
    """`new_ops` take the place of `op` in the op list."""
    insert_before(graph, op, new_ops)
    graph.remove(op)


class _OpNames:
    def __init__(self, graph: IndexedGraph) -> None:
        self.graph = graph

    def __contains__(self, name: object) -> bool:
        return self.graph.has_op_named(str(name))


def fresh_op_name(graph: IndexedGraph, base: str) -> str:
    """An op name not used yet, derived from `base` (op names identify kernels in generated C)."""
    return unique_name(base, _OpNames(graph))


def producer(graph: IndexedGraph, name: str) -> Op | None:
    return graph.producer(name)


def readers(graph: IndexedGraph, name: str) -> list[Op]:
    """Ops reading `name` (an op reading it twice is listed twice)."""
    return graph.readers(name)


def sole_reader(graph: IndexedGraph, name: str) -> Op | None:
    """The one op reading `name` once, provided the value is not also a graph output."""
    if name in graph.outputs:
        return None
    users = readers(graph, name)
    return users[0] if len(users) == 1 else None


def is_graph_boundary(graph: IndexedGraph, name: str) -> bool:
    return name in graph.inputs or name in graph.outputs


def plain_const(graph: IndexedGraph, name: str, dtype: str = "float32") -> Value | None:
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


def const_like(graph: IndexedGraph, name: str) -> ConstLike | None:
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


def replace_const_like(graph: IndexedGraph, reader: Op, old: ConstLike, data: np.ndarray,
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
        graph.set_inputs(dq, [const.name])
        graph.values[old.name].shape = tuple(data.shape)
        return old.name
    out = graph.add_value(Value(graph.fresh_name(f"{base}_dq"), tuple(data.shape), "float32"))
    new_dq = Op("dequantize", fresh_op_name(graph, f"{dq.name}_{base}"), [const.name], [out.name])
    insert_before(graph, reader, [new_dq])
    return out.name


def rename_value(graph: IndexedGraph, old: str, new: str) -> None:
    """Every op writing or reading `old` uses `new` instead; the value `old` is dropped (`new` must
    already be declared with the same type)."""
    writer = graph.producer(old)
    if writer is not None:
        graph.set_outputs(writer, [new if n == old else n for n in writer.outputs])
    graph.replace_reads(old, new)
    del graph.values[old]


def take_over_output(graph: IndexedGraph, doer: Op, removed: Op) -> None:
    """`doer` now writes what `removed` wrote (removed's output name and value are kept); `removed`
    leaves the graph and doer's former output value is dropped. Used when a later op is folded into
    the op that does the work."""
    old = doer.outputs[0]
    graph.set_outputs(doer, removed.outputs)
    remove_op(graph, removed)
    if not graph.is_read(old) and old not in graph.outputs:
        graph.values.pop(old, None)


def bypass(graph: IndexedGraph, op: Op) -> bool:
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


def drop_if_unread(graph: IndexedGraph, name: str) -> None:
    """Remove the op writing `name` (and the value) when a rewrite left nobody reading it. Used for
    the dequantize of a weight or bias that a rewrite replaced."""
    if name in graph.outputs or graph.is_read(name):
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
