"""tinyc's graph IR: the contract between every stage of the compiler.

A `Graph` is a list of `Op`s in execution order over named `Value`s. A value is a typed tensor
(shape, dtype, layout, optional quantisation, optional constant data). Ops refer to values by name.
The op vocabulary, each op's attributes and shape rule live in `tinyc.ops`; `tinyc.verify` checks a
graph against them. See docs/ir.md for the meaning of every op.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Container

import numpy as np

DTYPES = ("int8", "uint8", "int16", "int32", "int64", "float32", "bool")
# Layouts a value may carry. "" means no layout (scalars, vectors, matrices, shape tensors).
# Activations: NCHW (ONNX) or NHWC (CMSIS-NN). Conv weights: OIHW (ONNX) or OHWI (CMSIS-NN conv);
# depthwise weights in NHWC graphs are IHWO with I == 1 (CMSIS-NN depthwise, [1, KH, KW, C_out]).
LAYOUTS = ("", "NCHW", "NHWC", "OIHW", "OHWI", "IHWO")
# graph.meta[NOT_LOWERED]: {op name: why a pass left the op in a form no kernel runs}, written by the
# lowering passes and read when an op has no kernel, so that the error names the real cause.
NOT_LOWERED = "not_lowered"


@dataclass(frozen=True)
class QuantParams:
    """real = scale * (q - zero_point). Per tensor when axis is None (one scale, one zero point),
    otherwise per slice along `axis` of the value's shape (one entry per slice)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        object.__setattr__(self, "zero_point", tuple(int(z) for z in self.zero_point))
        if len(self.scale) != len(self.zero_point):
            raise ValueError("quantisation needs as many zero points as scales")

    @property
    def per_tensor(self) -> bool:
        return self.axis is None

    @staticmethod
    def tensor(scale: float, zero_point: int) -> "QuantParams":
        return QuantParams((float(scale),), (int(zero_point),), None)


@dataclass
class Value:
    """A tensor in the graph. `data` is set for constants (weights, biases, tables) and then has
    exactly `shape` and `dtype`."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    layout: str = ""
    quant: QuantParams | None = None
    data: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.shape = tuple(int(d) for d in self.shape)

    @property
    def is_const(self) -> bool:
        return self.data is not None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize


@dataclass
class Op:
    """One operation. `name` is the ONNX node it came from (kept through every pass, so generated C
    and error messages can name it). `attrs` values are int, float, str, bool, or lists of int/float."""

    kind: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)


def unique_name(base: str, taken: Container[str]) -> str:
    """`base`, or `base_1`, `base_2`, ...: the first that is not in `taken`."""
    name, i = base, 1
    while name in taken:
        name, i = f"{base}_{i}", i + 1
    return name


@dataclass
class Graph:
    name: str
    values: dict[str, Value]
    ops: list[Op]
    inputs: list[str]
    outputs: list[str]
    # The ONNX model's own interface, recorded by the frontend and never changed by passes, so
    # drivers can accept and return tensors in the caller's layout and dtype.
    meta: dict[str, Any] = field(default_factory=dict)

    # ---- queries -------------------------------------------------------------------------------
    def value(self, name: str) -> Value:
        return self.values[name]

    def producers(self) -> dict[str, Op]:
        return {out: op for op in self.ops for out in op.outputs}

    def consumers(self) -> dict[str, list[Op]]:
        users: dict[str, list[Op]] = {name: [] for name in self.values}
        for op in self.ops:
            for name in op.inputs:
                if name:
                    users.setdefault(name, []).append(op)
        return users

    def constants(self) -> list[Value]:
        return [v for v in self.values.values() if v.is_const]

    # ---- edits ---------------------------------------------------------------------------------
    def fresh_name(self, base: str) -> str:
        """A value name not used yet, derived from `base`."""
        return unique_name(base, self.values)

    def add_value(self, value: Value) -> Value:
        if value.name in self.values:
            raise ValueError(f"value {value.name!r} already exists")
        self.values[value.name] = value
        return value

    def add_const(self, base: str, data: np.ndarray, layout: str = "",
                  quant: QuantParams | None = None) -> Value:
        data = np.ascontiguousarray(data)
        name = self.fresh_name(base)
        return self.add_value(Value(name, data.shape, str(data.dtype), layout, quant, data))

    def replace_uses(self, old: str, new: str) -> None:
        """Make every op input and graph output that reads `old` read `new`."""
        for op in self.ops:
            op.inputs = [new if n == old else n for n in op.inputs]
        self.outputs = [new if n == old else n for n in self.outputs]

    def remove_dead(self) -> None:
        """Drop ops whose outputs nobody reads and values nobody refers to."""
        live = set(self.outputs)
        kept: list[Op] = []
        for op in reversed(self.ops):
            if any(o in live for o in op.outputs):
                kept.append(op)
                live.update(n for n in op.inputs if n)
        self.ops = kept[::-1]
        referenced = live | set(self.inputs)
        for op in self.ops:
            referenced.update(op.outputs)
        self.values = {k: v for k, v in self.values.items() if k in referenced}

    def copy(self) -> "Graph":
        """A copy a pass may edit freely (values, ops, attributes, meta) without touching this graph.

        Constant arrays are shared, copy-on-write: copying makes them read-only, so writing one in
        place raises in either graph, and code that changes a constant assigns a new array to
        `value.data`. Copying the arrays made every pass cost as much as the weights."""
        for v in self.values.values():
            if v.data is not None:
                v.data.flags.writeable = False
        return Graph(self.name, {name: copy.copy(v) for name, v in self.values.items()},
                     [Op(op.kind, op.name, list(op.inputs), list(op.outputs), _copy_attrs(op.attrs))
                      for op in self.ops],
                     list(self.inputs), list(self.outputs), copy.deepcopy(self.meta))


def _copy_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    # Attribute values are numbers, strings or flat lists of numbers (docs/ir.md).
    return {k: list(v) if isinstance(v, list) else v for k, v in attrs.items()}
