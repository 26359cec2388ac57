"""Preparing an ONNX model for import: the opset (old models upgraded to 13), static input shapes
(from the model or --input-shape), and ONNX shape inference for the element types of every tensor."""
from __future__ import annotations

import onnx
from onnx import shape_inference, version_converter

from ..errors import TinycError, UnsupportedError
from .dtypes import onnx_dtype_name

MIN_OPSET, MAX_OPSET, UPGRADE_TARGET = 11, 21, 13


def default_opset(model: onnx.ModelProto) -> int | None:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    return None


def normalize_opset(model: onnx.ModelProto, source: str) -> onnx.ModelProto:
    """The model at an opset tinyc reads (11..21): older models are upgraded to 13 and newer ones
    brought down to 21 with onnx.version_converter; a conversion failure is a clear error."""
    opset = default_opset(model)
    if opset is None:
        raise UnsupportedError(f"{source}: the model imports no standard ONNX opset")
    if MIN_OPSET <= opset <= MAX_OPSET:
        return model
    target = UPGRADE_TARGET if opset < MIN_OPSET else MAX_OPSET
    try:
        converted = version_converter.convert_version(model, target)
    except Exception as exc:
        msg = (str(exc).strip().splitlines() or [exc.__class__.__name__])[0]
        msg = msg.split("failed: ")[-1][:160]  # drop the converter's C++ assertion prefix
        raise UnsupportedError(f"{source}: opset {opset} is outside the supported {MIN_OPSET}-{MAX_OPSET} and "
                               f"converting it to opset {target} failed ({msg}); re-export the model with "
                               f"an opset in {MIN_OPSET}-{MAX_OPSET}") from None
    return converted


def declared_dims(value_info: onnx.ValueInfoProto) -> list[int | str | None] | None:
    """The declared shape: ints for static dims, the symbolic name (or None) for dynamic ones;
    None when the rank itself is unknown."""
    tensor_type = value_info.type.tensor_type
    if not tensor_type.HasField("shape"):
        return None
    dims: list[int | str | None] = []
    for d in tensor_type.shape.dim:
        if d.HasField("dim_value") and d.dim_value > 0:
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or None)
    return dims


def _fmt_dims(dims: list) -> str:
    return "[" + ",".join("?" if d is None else str(d) for d in dims) + "]"


def resolve_input_shapes(inputs: list[onnx.ValueInfoProto], overrides: dict[str, list[int]] | None,
                         source: str) -> dict[str, list[int]]:
    """A static shape for every graph input: its declared shape, or the one given with
    --input-shape (which may only fix dynamic dimensions)."""
    overrides = dict(overrides or {})
    names = [vi.name for vi in inputs]
    for name in overrides:
        if name not in names:
            raise TinycError(f"--input-shape names {name!r}, which is not an input of {source} "
                             f"(inputs: {', '.join(names) or 'none'})")
    shapes = {}
    for vi in inputs:
        dims = declared_dims(vi)
        name = vi.name
        if name in overrides:
            shape = [int(d) for d in overrides[name]]
            given = ",".join(str(d) for d in shape)
            if any(d <= 0 for d in shape):
                raise TinycError(f"--input-shape {name}={given}: dimensions must be positive")
            if dims is not None and len(shape) != len(dims):
                raise TinycError(f"--input-shape {name}={given} has rank {len(shape)}, but input {name!r} has "
                                 f"rank {len(dims)} {_fmt_dims(dims)}")
            for i, (want, have) in enumerate(zip(dims or [], shape)):
                if isinstance(want, int) and want != have:
                    raise TinycError(f"--input-shape {name}={given}: dimension {i} of input {name!r} is fixed "
                                     f"to {want} by the model")
            shapes[name] = shape
            continue
        if dims is None:
            raise TinycError(f"input {name!r} has no declared shape; pass --input-shape {name}=D1,D2,...")
        for i, d in enumerate(dims):
            if not isinstance(d, int):
                suggestion = ",".join(str(x) if isinstance(x, int) else "1" for x in dims)
                label = f" ({d!r})" if d else ""
                raise TinycError(f"input {name!r} has a dynamic dimension {i}{label}; pass --input-shape "
                                 f"{name}={suggestion}")
        shapes[name] = [int(d) for d in dims]
    return shapes


def infer_with_fixed_inputs(model: onnx.ModelProto, shapes: dict[str, list[int]],
                            keep_value_info: bool = True) -> onnx.ModelProto | None:
    """A copy of `model` with the named inputs fixed to `shapes`, through ONNX shape inference
    (non-strict, with data propagation); None when inference fails."""
    static = onnx.ModelProto()
    static.CopyFrom(model)
    if not keep_value_info:
        del static.graph.value_info[:]
    for vi in static.graph.input:
        if vi.name in shapes:
            dims = vi.type.tensor_type.shape.dim
            del dims[:]
            for d in shapes[vi.name]:
                dims.add().dim_value = d
    try:
        return shape_inference.infer_shapes(static, strict_mode=False, data_prop=True)
    except Exception:
        return None


def infer_dtypes(model: onnx.ModelProto, shapes: dict[str, list[int]]) -> dict[str, str]:
    """Element type of every tensor ONNX shape inference can type, with the inputs fixed to
    `shapes` (declared value_info fills in what inference cannot, e.g. com.microsoft ops)."""
    dtypes = {}
    for vi in list(model.graph.value_info) + list(model.graph.input) + list(model.graph.output):
        if vi.type.tensor_type.elem_type:
            dtypes[vi.name] = onnx_dtype_name(vi.type.tensor_type.elem_type)
    for t in model.graph.initializer:
        dtypes[t.name] = onnx_dtype_name(t.data_type)
    inferred = infer_with_fixed_inputs(model, shapes, keep_value_info=False)
    if inferred is None:
        return dtypes  # inference is only a source of element types; conversion does not depend on it
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.type.tensor_type.elem_type:
            dtypes[vi.name] = onnx_dtype_name(vi.type.tensor_type.elem_type)
    return dtypes
