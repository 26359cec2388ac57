"""Quantisation parameters read from ONNX scale/zero-point tensors, and symmetric weights. (The
uint8 -> int8 shift and look-up tables live in tinyc.quant_math, shared with the passes.)"""
from __future__ import annotations

import math

import numpy as np

from ..errors import TinycError, UnsupportedError
from ..ir import QuantParams

def quant_params(where: str, scale: np.ndarray, zero_point: np.ndarray | None, axis: int | None,
                 rank: int) -> QuantParams:
    """QuantParams for a tensor of `rank` from an ONNX scale and zero point (zero point 0 when
    absent). Per axis only when `axis` is given and the scale is 1-D with more than one entry."""
    scales = np.asarray(scale, dtype=np.float32).reshape(-1)
    if scales.size == 0:
        raise TinycError(f"{where}: empty scale")
    if not all(math.isfinite(float(s)) and float(s) > 0 for s in scales):
        raise TinycError(f"{where}: scales must be positive and finite, got {scales[:4].tolist()}")
    if zero_point is None:
        zps = np.zeros(scales.size, dtype=np.int64)
    else:
        zps = np.asarray(zero_point).astype(np.int64).reshape(-1)
        if zps.size == 1 and scales.size > 1:
            zps = np.full(scales.size, zps[0], dtype=np.int64)
        if zps.size != scales.size:
            raise TinycError(f"{where}: {scales.size} scales but {zps.size} zero points")
    per_axis = axis is not None and np.ndim(scale) == 1 and scales.size > 1
    if scales.size > 1 and not per_axis:
        raise UnsupportedError(f"{where}: scale of shape {list(np.shape(scale))} is neither per tensor "
                               f"nor per axis; tinyc supports only those two")
    if per_axis:
        axis = axis % rank if rank else 0
        return QuantParams(tuple(float(s) for s in scales), tuple(int(z) for z in zps), axis)
    return QuantParams((float(scales[0]),), (int(zps[0]),), None)


def same_quant(a: QuantParams | None, b: QuantParams | None) -> bool:
    """Exactly the same parameters (scales are compared as the float32 values of the model)."""
    if a is None or b is None:
        return a is b
    return a.axis == b.axis and a.zero_point == b.zero_point and np.array_equal(
        np.float32(a.scale), np.float32(b.scale))


def describe(q: QuantParams) -> str:
    if q.per_tensor:
        return f"scale {q.scale[0]:.6g}, zero point {q.zero_point[0]}"
    return f"{len(q.scale)} scales on axis {q.axis}"


def symmetric_weights(where: str, data: np.ndarray, zero_point: np.ndarray | None,
                      axis: int) -> np.ndarray:
    """int8 weights with zero point 0 holding the same real values: data - zero_point, where the
    zero point is per tensor or per slice of `axis`. Raises UnsupportedError when that leaves int8."""
    wide = data.astype(np.int32)
    if zero_point is not None and np.any(np.asarray(zero_point) != 0):
        zp = np.asarray(zero_point).astype(np.int32).reshape(-1)
        if zp.size > 1:
            shape = [1] * data.ndim
            shape[axis] = zp.size
            zp = zp.reshape(shape)
        else:
            zp = zp.reshape(())
        wide = wide - zp
    if wide.size and (wide.min() < -128 or wide.max() > 127):
        raise UnsupportedError(f"{where}: weights minus their zero point do not fit int8; tinyc needs "
                               f"symmetric int8 weights (zero point 0): requantise the model with "
                               f"symmetric weights")
    return wide.astype(np.int8)
