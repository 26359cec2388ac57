"""The reference interpreter: executes a verified graph in numpy, one sample at a time.

Float ops (float32 output) follow ONNX semantics; integer ops follow the TFLite / CMSIS-NN int8
arithmetic bit for bit, reading the fixed-point parameters added by the `requantize` pass. Values may
be in NCHW or NHWC layout and convolution weights in OIHW, OHWI or IHWO: kernels read `Value.layout`.

    run(graph, inputs)        -> {output name: array}
    run_trace(graph, inputs)  -> {value name: array} for every value (constants, inputs, op results)
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .errors import TinycError, UnsupportedError
from .interp import float_kernels, int_kernels, movement
from .interp.call import Call
from .ir import Graph, Op

Kernel = Callable[..., np.ndarray]


def _kernel(op: Op, call: Call) -> Kernel:
    if op.kind in movement.KERNELS:
        return movement.KERNELS[op.kind]
    table = float_kernels.KERNELS if call.output.dtype == "float32" else int_kernels.KERNELS
    form = "float" if call.output.dtype == "float32" else "integer"
    if op.kind not in table:
        raise UnsupportedError(f"{call.where}: the interpreter has no {form} form of {op.kind}")
    return table[op.kind]


def _check_inputs(graph: Graph, inputs: dict[str, np.ndarray]) -> None:
    missing = [n for n in graph.inputs if n not in inputs]
    extra = [n for n in inputs if n not in graph.inputs]
    if missing or extra:
        raise TinycError(f"interpreter inputs: missing {missing or 'none'}, unknown {extra or 'none'} "
                         f"(the graph's inputs are {', '.join(graph.inputs)})")
    for name in graph.inputs:
        value = graph.values[name]
        array = np.asarray(inputs[name])
        if array.shape != value.shape or str(array.dtype) != value.dtype:
            raise TinycError(f"input {name!r} is {array.dtype}{list(array.shape)}, the graph expects "
                             f"{value.dtype}{list(value.shape)}")


def run_trace(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute the graph on one sample; return every value by name (constants, inputs, results)."""
    _check_inputs(graph, inputs)
    env: dict[str, np.ndarray] = {v.name: v.data for v in graph.constants()}
    env.update({name: np.asarray(inputs[name]) for name in graph.inputs})
    for op in graph.ops:
        ins = [graph.values[n] if n else None for n in op.inputs]  # "" is an omitted optional input
        call = Call.of(op, ins, graph.values[op.outputs[0]])
        kernel = _kernel(op, call)
        result = kernel(call, *(env[n] if n else None for n in op.inputs))
        out = call.output
        if result.shape != out.shape or str(result.dtype) != out.dtype:
            raise AssertionError(f"{call.where}: kernel produced {result.dtype}{list(result.shape)}, "
                                 f"value {out.name!r} is {out.dtype}{list(out.shape)}")
        env[out.name] = result
    return env


def run(graph: Graph, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Execute the graph on one sample (inputs exactly of the graph's input shapes and dtypes)."""
    env = run_trace(graph, inputs)
    return {name: env[name] for name in graph.outputs}
