"""Evaluating a node whose inputs are constant (PyTorch-style shape arithmetic, Constant, weight
transposes, ...) with ONNX's reference implementation, so no such node reaches the IR."""
from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from ..errors import TinycError
from .analysis import NodeInfo


def shape_query(node: NodeInfo, shape: tuple[int, ...]) -> np.ndarray:
    """The value of a Shape or Size node reading a tensor of static `shape`."""
    if node.op_type == "Size":
        return np.array(int(np.prod(shape, dtype=np.int64)), dtype=np.int64)
    rank = len(shape)
    start = node.attr("start", 0)
    end = node.attr("end", rank)
    # ONNX clamps start/end into [0, rank] after adding rank to negatives: Python slicing does the same.
    return np.array(shape[start:end], dtype=np.int64)


def evaluate(node: NodeInfo, proto: onnx.NodeProto, values: dict[str, np.ndarray], opset: int) -> list:
    """The outputs of `proto` (one entry per output name; None for an absent optional output) given
    the constant `values` of its inputs, computed by onnx.reference on a one-node model."""
    feeds = {}
    graph_inputs = []
    for name in proto.input:
        if name and name not in feeds:
            arr = np.asarray(values[name])
            feeds[name] = arr
            graph_inputs.append(helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(arr.dtype), list(arr.shape)))
    outputs = [o for o in proto.output if o]
    graph = helper.make_graph([proto], f"fold_{node.name}", graph_inputs,
                              [helper.make_empty_tensor_value_info(o) for o in outputs])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        results = ReferenceEvaluator(model).run(None, feeds)
    except Exception as exc:
        msg = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        raise TinycError(f"{node.label}: cannot evaluate this constant computation at import: {msg}") from None
    by_name = dict(zip(outputs, results))
    return [None if not o else _as_array(by_name[o]) for o in proto.output]


def _as_array(value) -> np.ndarray:
    if isinstance(value, list):  # sequence outputs are not tensors the IR can hold
        raise TinycError("constant folding produced a sequence, which tinyc cannot represent")
    return np.asarray(value)
