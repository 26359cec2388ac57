"""The compiler's data flow, one function per stage:

    load (ONNX frontend or textual IR) -> lower (passes by name, verified) -> plan -> codegen -> build -> run

Each stage takes and returns the IR or plain data; the CLI and the Python API are thin layers over these.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from . import tensor_io
from .errors import TinycError
from .ir import Graph
from .verify import VerifyError, verify

TEXT_IR_SUFFIXES = (".tir", ".mlir", ".txt")


def parse_input_shapes(items: Iterable[str]) -> dict[str, list[int]]:
    """`NAME=1,3,96,96` strings -> {NAME: [1, 3, 96, 96]}."""
    shapes: dict[str, list[int]] = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        try:
            values = [int(d) for d in dims.split(",")]
        except ValueError:
            values = []
        if not sep or not name or not values or any(v <= 0 for v in values):
            raise TinycError(f"--input-shape {item!r}: expected NAME=D1,D2,... with positive integers")
        shapes[name] = values
    return shapes


def _looks_like_text_ir(path: Path) -> bool:
    if path.suffix in TEXT_IR_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(256).lstrip()
    return head.startswith(b"graph @") or head.startswith(b"//")


def load_graph(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> Graph:
    """Read an ONNX model or a textual IR file into a verified graph."""
    path = Path(path)
    if not path.is_file():
        raise TinycError(f"{path}: no such file")
    if _looks_like_text_ir(path):
        from .textir import parse
        graph = parse(path.read_text(), source=str(path))
    else:
        from .frontend import load_model
        graph = load_model(path, input_shapes=input_shapes)
    check(graph, f"{path}")
    return graph


def check(graph: Graph, stage: str) -> None:
    try:
        verify(graph)
    except VerifyError as exc:
        raise TinycError(f"{stage}: invalid IR: {exc}") from None


def lower(graph: Graph, passes: Sequence[str] | None = None,
          after_pass: Callable[[str, Graph], None] | None = None) -> Graph:
    """Run passes by name (default: the full pipeline), verifying the IR after each."""
    from tinyc import passes as registry
    names = list(registry.DEFAULT_PIPELINE if passes is None else passes)
    fns = []
    for name in names:
        try:
            fns.append((name, registry.get(name)))
        except KeyError as exc:
            raise TinycError(str(exc.args[0])) from None
    for name, fn in fns:
        graph = fn(graph)
        check(graph, f"after pass {name}")
        if after_pass is not None:
            after_pass(name, graph)
    return graph


def input_specs(graph: Graph) -> list[tensor_io.TensorSpec]:
    return [tensor_io.TensorSpec(n, graph.values[n].shape, graph.values[n].dtype) for n in graph.inputs]


def output_specs(graph: Graph) -> list[tensor_io.TensorSpec]:
    return [tensor_io.TensorSpec(n, graph.values[n].shape, graph.values[n].dtype) for n in graph.outputs]


def run_reference(graph: Graph, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run user arrays (one sample or a batch, see tensor_io) through the reference interpreter."""
    from .interpreter import run
    batch = tensor_io.split_batch(arrays, input_specs(graph))
    outputs = [run(graph, sample) for sample in batch.samples]
    return tensor_io.join_batch(outputs, batch.mode)
