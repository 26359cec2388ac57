"""ONNX element types as the dtype names tinyc's IR uses, and which of them the IR can carry."""
from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

# dtypes a value may have once it is an IR tensor (int64 and bool only ever appear in folded
# shape computations, which never reach the IR).
TENSOR_DTYPES = ("float32", "int8", "uint8", "int16", "int32")


def onnx_dtype_name(elem_type: int) -> str:
    """'float32', 'int8', ... for an ONNX TensorProto element type; ONNX's own name (lower case)
    for types numpy cannot hold (bfloat16, float8, int4, string, ...)."""
    if elem_type == TensorProto.UNDEFINED:
        return "undefined"
    try:
        np_type = helper.tensor_dtype_to_np_dtype(elem_type)
    except (KeyError, ValueError, TypeError):
        np_type = None
    if np_type is None or np.dtype(np_type).kind in ("V", "O", "U", "S"):
        return TensorProto.DataType.Name(elem_type).lower()
    return str(np.dtype(np_type))


def is_tensor_dtype(name: str) -> bool:
    return name in TENSOR_DTYPES


def supported_list() -> str:
    return ", ".join(TENSOR_DTYPES)
