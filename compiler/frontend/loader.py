"""Reading an ONNX file from disk, with one-line errors for files that are missing or not ONNX."""
from __future__ import annotations

from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ..errors import TinycError


def read_model(path: str | Path) -> onnx.ModelProto:
    """The ModelProto stored at `path` (external data loaded from beside it).

    Raises TinycError when the file is missing, unreadable, truncated or not an ONNX model."""
    path = Path(path)
    if not path.exists():
        raise TinycError(f"{path}: no such file")
    if not path.is_file():
        raise TinycError(f"{path}: not a file")
    try:
        model = onnx.load(str(path))
    except DecodeError as exc:
        raise TinycError(f"{path}: not a valid ONNX file (truncated or not an ONNX protobuf: "
                         f"{_first_line(exc)})") from None
    except OSError as exc:
        raise TinycError(f"{path}: cannot read the model: {_first_line(exc)}") from None
    except Exception as exc:  # onnx raises assorted errors for broken external data and fields
        raise TinycError(f"{path}: not a valid ONNX file ({exc.__class__.__name__}: "
                         f"{_first_line(exc)})") from None
    check_is_model(model, str(path))
    return model


def check_is_model(model: onnx.ModelProto, source: str) -> None:
    """Reject protobufs that parsed but are not ONNX models (any bytes can parse as an empty one)."""
    graph = model.graph
    if not model.opset_import or not (len(graph.node) or len(graph.output)):
        raise TinycError(f"{source}: not an ONNX model (no graph or no opset); is the file truncated?")
    if not graph.output:
        raise TinycError(f"{source}: the ONNX graph declares no outputs; is the file truncated?")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or exc.__class__.__name__
    return text.splitlines()[0]
