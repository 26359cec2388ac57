"""The state of one import: ONNX names bound to IR values or to constants, and the few primitives
converters use to read inputs and emit IR ops (shapes come from the op table's shape rules)."""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

import numpy as np

from ..errors import TinycError, UnsupportedError
from ..ir import Graph, Op, QuantParams, Value
from ..ops import ShapeError, infer_shapes
from ..verify import QUANT_PRESERVING
from .analysis import NodeInfo
from .dtypes import is_tensor_dtype, supported_list
from ..quant_math import shift_to_int8, uint8_data_to_int8
from .quantization import describe, same_quant

INTEGER_ACTIVATION_DTYPES = ("int8", "uint8", "int16")


def default_layout(shape: Sequence[int]) -> str:
    """Every 4-D tensor imported from ONNX is NCHW; the convolution reading a weight relabels it OIHW."""
    return "NCHW" if len(shape) == 4 else ""


class ImportContext:
    """Import state: `consts` holds ONNX tensors known at import (initializers, folded results) as
    numpy arrays; `ir` maps the other ONNX tensor names to IR value names. Constants become graph
    values only when an IR op reads them (`value`, `constant`)."""

    def __init__(self, graph: Graph, opset: int, onnx_dtypes: dict[str, str], reserved: set[str],
                 reserved_ops: set[str]) -> None:
        self.graph = graph
        self.opset = opset
        self.onnx_dtypes = onnx_dtypes
        self.consts: dict[str, np.ndarray] = {}
        self.ir: dict[str, str] = {}  # written only through _map, which counts the IR names used
        self._ir_uses: Counter[str] = Counter()
        self._reserved = reserved
        self._reserved_ops = reserved_ops
        self._op_names: set[str] = set()
        self._materialised: dict[Any, str] = {}
        self._int8_views: dict[str, str] = {}
        self._producers: dict[str, Op] = {}
        # ONNX names read by live nodes or graph outputs (an unread optional output may be ignored).
        self.used: set[str] = set()
        self.readers: dict[str, list] = {}  # ONNX tensor name -> the nodes reading it
        # IR values that hold an ONNX uint8 tensor as int8 (zero point - 128): QOperator results.
        self.shifted: set[str] = set()

    # ---- names -------------------------------------------------------------------------------
    def fresh_value(self, base: str) -> str:
        """A value name unused so far and not the name of any ONNX tensor still to come."""
        name, i = base, 1
        while name in self.graph.values or name in self._reserved:
            name = f"{base}_{i}"
            i += 1
        return name

    def fresh_op(self, base: str) -> str:
        name, i = base, 1
        while name in self._op_names or name in self._reserved_ops:
            name = f"{base}_{i}"
            i += 1
        return name

    def claim_op(self, name: str) -> str:
        """Reserve an ONNX node's own name for the op that does its work."""
        self._op_names.add(name)
        return name

    # ---- reading inputs ------------------------------------------------------------------------
    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, node: NodeInfo, i: int, what: str) -> np.ndarray:
        name = node.input(i)
        if not name:
            raise TinycError(f"{node.label}: missing required input {what}")
        if name not in self.consts:
            raise UnsupportedError(f"{node.label}: {what} ({name!r}) is computed at run time; tinyc "
                                   f"needs it to be a constant (an initializer or computable at import)")
        return self.consts[name]

    def optional_const(self, node: NodeInfo, i: int, what: str) -> np.ndarray | None:
        return self.const(node, i, what) if node.has_input(i) else None

    def onnx_dtype(self, name: str) -> str:
        """The ONNX element type of tensor `name` (uint8 for the int8 IR values that hold uint8)."""
        if name in self.onnx_dtypes:
            return self.onnx_dtypes[name]
        if name in self.consts:
            return str(self.consts[name].dtype)
        if name in self.ir:
            ir_name = self.ir[name]
            return "uint8" if ir_name in self.shifted else self.graph.values[ir_name].dtype
        return "undefined"

    def value(self, name: str) -> Value:
        """The IR value holding ONNX tensor `name` (a constant becomes a graph constant)."""
        if name in self.ir:
            return self.graph.values[self.ir[name]]
        if name in self.consts:
            return self.constant(name, self.consts[name], key=("plain", name))
        raise TinycError(f"value {name!r} is read before any node defines it")

    def input_value(self, node: NodeInfo, i: int) -> Value:
        name = node.input(i)
        if not name:
            raise TinycError(f"{node.label}: missing required input {i}")
        return self.value(name)

    def float_input(self, node: NodeInfo, i: int) -> Value:
        """Input i, which this op only accepts as float32."""
        v = self.input_value(node, i)
        if v.dtype != "float32":
            raise UnsupportedError(f"{node.label}: input {node.input(i)!r} is {v.dtype}; tinyc supports "
                                   f"{node.op_type} on float32 tensors only")
        return v

    def constant(self, base: str, data: np.ndarray, quant: QuantParams | None = None, layout: str | None = None,
                 key: Any = None) -> Value:
        """A graph constant holding `data` (one per `key`: the same key gives the same value)."""
        if key is not None and key in self._materialised:
            return self.graph.values[self._materialised[key]]
        data = np.ascontiguousarray(data)
        if not is_tensor_dtype(str(data.dtype)):
            raise UnsupportedError(f"constant {base!r} has dtype {data.dtype}; tinyc supports {supported_list()} "
                                   f"tensors")
        if base in self.consts and base not in self.graph.values:
            name = base  # the constant's own ONNX name
        else:
            name = self.fresh_value(base)
        value = Value(name, data.shape, str(data.dtype), default_layout(data.shape) if layout is None else layout,
                      quant, data)
        self.graph.add_value(value)
        if key is not None:
            self._materialised[key] = name
            if key == ("plain", base):
                self._map(base, name)
        return value

    # ---- emitting ops ----------------------------------------------------------------------------
    def emit(self, kind: str, name: str, inputs: Sequence[Value], attrs: dict[str, Any] | None = None, *,
             out: str | None = None, base: str | None = None, dtype: str | None = None,
             quant: QuantParams | None = None) -> Value:
        """Append op `kind` named `name` reading `inputs`; its output is the ONNX tensor `out` (bound
        to a value of that name) or a fresh value named after `base`. The output shape comes from
        the op table; dtype defaults to the first input's."""
        attrs = dict(attrs or {})
        out_name = out if out is not None and out not in self.graph.values else self.fresh_value(
            base or out or f"{name}_out")
        op = Op(kind, name, [v.name for v in inputs], [out_name], attrs)
        try:
            (shape,) = infer_shapes(op, list(inputs))
        except (ShapeError, KeyError) as exc:
            raise TinycError(f"node {name!r} ({kind}): {exc}") from None
        dtype = dtype or inputs[0].dtype
        value = Value(out_name, shape, dtype, default_layout(shape), quant)
        self.graph.add_value(value)
        self.graph.ops.append(op)
        self._op_names.add(name)
        self._producers[out_name] = op
        if out is not None:
            self._map(out, out_name)
        return value

    def bind(self, onnx_name: str, value: Value) -> None:
        self._map(onnx_name, value.name)

    def _map(self, onnx_name: str, ir_name: str) -> None:
        old = self.ir.get(onnx_name)
        if old is not None:
            self._ir_uses[old] -= 1
        self.ir[onnx_name] = ir_name
        self._ir_uses[ir_name] += 1

    def finish(self, value: Value, out: str) -> Value:
        """Make `value`, just produced by the converter's last op, the ONNX tensor `out`: the value
        takes the ONNX name (or, when it already stands for another tensor, an identity op writes it)."""
        if value.name == out:
            self._map(out, out)
            return value
        op = self._producers.get(value.name)
        if op is None or out in self.graph.values or self._ir_uses[value.name] > 0:
            result = self.emit("identity", self.fresh_op(f"{out}_identity"), [value], out=out,
                               quant=value.quant)
            if value.name in self.shifted:
                self.shifted.add(result.name)
            return result
        old = value.name
        del self.graph.values[old]
        value.name = out
        self.graph.values[out] = value
        op.outputs = [out]
        del self._producers[old]
        self._producers[out] = op
        if old in self.shifted:
            self.shifted.discard(old)
            self.shifted.add(out)
        self._map(out, out)
        return value

    def rename(self, old: str, new: str) -> None:
        """Rename value `old` everywhere (its producer, readers, graph outputs)."""
        value = self.graph.values.pop(old)
        value.name = new
        self.graph.values[new] = value
        for op in self.graph.ops:
            op.inputs = [new if n == old else n for n in op.inputs]
            op.outputs = [new if n == old else n for n in op.outputs]
        self.graph.outputs = [new if n == old else n for n in self.graph.outputs]
        if old in self._producers:
            self._producers[new] = self._producers.pop(old)
        if old in self.shifted:
            self.shifted.discard(old)
            self.shifted.add(new)
        self.ir = {k: (new if v == old else v) for k, v in self.ir.items()}
        self._ir_uses = Counter(self.ir.values())

    def require_unused(self, node: NodeInfo, index: int, what: str) -> None:
        """Reject a node whose optional output `index` (which tinyc does not compute) is read."""
        if index < len(node.outputs) and node.outputs[index] in self.used:
            raise UnsupportedError(f"{node.label}: its {what} output ({node.outputs[index]!r}) is used; tinyc "
                                   f"computes only the first output")

    def producer(self, value: Value) -> Op | None:
        return self._producers.get(value.name)

    # ---- quantisation ----------------------------------------------------------------------------
    def assign_quant(self, value: Value, quant: QuantParams, where: str) -> None:
        """Give `value` quantisation `quant` (the first op that reads it with a scale decides for
        tensors nothing quantised yet, e.g. integer graph inputs); a different existing
        quantisation is an error. Quant-preserving producers (reshape, transpose, ...) pass it back
        to their inputs."""
        if value.quant is not None:
            if not same_quant(value.quant, quant):
                raise UnsupportedError(f"{where} reads {value.name!r} with {describe(quant)}, but it is "
                                       f"defined with {describe(value.quant)}; tinyc needs one "
                                       f"quantisation per tensor")
            return
        if value.dtype not in INTEGER_ACTIVATION_DTYPES + ("int32",):
            raise UnsupportedError(f"{where} reads {value.name!r} ({value.dtype}) as a quantised tensor")
        value.quant = quant
        producer = self._producers.get(value.name)
        if producer is not None and producer.kind in QUANT_PRESERVING and quant.per_tensor:
            for name in producer.inputs:
                source = self.graph.values[name]
                if source.quant is None and source.dtype == value.dtype:
                    self.assign_quant(source, quant, where)

    def int8_view(self, value: Value) -> Value:
        """`value` as int8: itself when int8; for uint8 (whose quantisation must be known) a
        `rescale` op (zero point - 128, exact) or, for a constant, data - 128."""
        if value.dtype == "int8":
            return value
        if value.dtype != "uint8" or value.quant is None:
            raise UnsupportedError(f"value {value.name!r} ({value.dtype}) cannot be used as a quantised "
                                   f"int8 tensor")
        if value.name in self._int8_views:
            return self.graph.values[self._int8_views[value.name]]
        quant = shift_to_int8(value.quant)
        if value.is_const:
            view = self.constant(f"{value.name}_s8", uint8_data_to_int8(value.data), quant, value.layout)
        else:
            view = self.emit("rescale", self.fresh_op(f"{value.name}_to_int8"), [value],
                             base=f"{value.name}_s8", dtype="int8", quant=quant)
        self._int8_views[value.name] = view.name
        return view
