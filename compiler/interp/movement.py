"""Ops that only move or select elements: identical in float and integer form (integer inputs share
the output's quantisation, so bytes are copied unchanged)."""
from __future__ import annotations

import numpy as np

from .call import Call


def concat(call: Call, *xs: np.ndarray) -> np.ndarray:
    return np.concatenate(xs, axis=call.attrs["axis"]).astype(call.output.dtype)


def reshape(call: Call, x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x).reshape(call.attrs["shape"])


def transpose(call: Call, x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(call.attrs["perm"]))


def pad(call: Call, x: np.ndarray) -> np.ndarray:
    pads = call.attrs["pads"]
    rank = x.ndim
    widths = [(pads[i], pads[i + rank]) for i in range(rank)]
    fill = np.array(call.attrs["value"]).astype(x.dtype)
    return np.pad(x, widths, constant_values=fill)


def identity(call: Call, x: np.ndarray) -> np.ndarray:
    return x.copy()


KERNELS = {"concat": concat, "reshape": reshape, "transpose": transpose, "pad": pad,
           "identity": identity}
