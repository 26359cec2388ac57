"""The ONNX frontend: reads an ONNX model (float, QDQ or QOperator) into tinyc's IR.

`load_model(path)` reads a file, `import_model(model)` converts a ModelProto, `find_unsupported(model)`
lists the ops tinyc cannot convert (for `tinyc inspect`).
"""
from __future__ import annotations

from pathlib import Path

from ..ir import Graph
from .analysis import find_unsupported
from .importer import import_model
from .loader import read_model


def load_model(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> Graph:
    """Read the ONNX file at `path` and import it (see import_model)."""
    return import_model(read_model(path), input_shapes=input_shapes, source=str(path))


__all__ = ["load_model", "import_model", "find_unsupported", "read_model"]
