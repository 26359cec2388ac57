"""Constants that tinyc's own kernels take in a kernel-specific form, computed at compile time.

Each function here is the Python statement of a layout documented next to the C kernel that reads it
(runtime_c/tinyc_conv_s8.c, runtime_c/tinyc_add_s8.c), which tinyc.targets.kernels selects; tests
run both against the reference interpreter, so the two cannot drift apart silently.
"""
from __future__ import annotations

import numpy as np

from tinyc import quant_math as qm


def _depth4(depth: int) -> int:
    return -(-depth // 4) * 4


def _rows_padded(weights: np.ndarray) -> np.ndarray:
    """[O, ...] int8 weights as [O, K4]: the depth flattened and zero-padded to a multiple of 4."""
    w = np.asarray(weights, dtype=np.int8).reshape(weights.shape[0], -1)
    return np.pad(w, ((0, 0), (0, _depth4(w.shape[1]) - w.shape[1])))


def pack_conv_filters(weights: np.ndarray) -> np.ndarray:
    """OHWI filters for tinyc_conv_s8: channels in pairs, each group of 4 depth bytes of the even
    channel followed by the same group of the odd one; an odd last channel keeps its own K4 bytes."""
    w = _rows_padded(weights)
    out_c, depth4 = w.shape
    paired = out_c - out_c % 2
    pairs = w[:paired].reshape(paired // 2, 2, depth4 // 4, 4).transpose(0, 2, 1, 3).reshape(-1)
    return np.concatenate([pairs, w[paired:].reshape(-1)]).astype(np.int8)


def pack_fc_weights(weights: np.ndarray) -> np.ndarray:
    """[units, depth] weights for tinyc_fully_connected_s8: blocks of 4 rows (the last may have fewer),
    each group of 4 depth bytes of every row of the block in turn."""
    w = _rows_padded(weights)
    units, depth4 = w.shape
    blocks = [w[u:u + 4].reshape(-1, depth4 // 4, 4).transpose(1, 0, 2).reshape(-1) for u in range(0, units, 4)]
    return np.concatenate(blocks).astype(np.int8)


def conv_depth4(weights_shape: tuple[int, ...]) -> int:
    """K4 of an OHWI filter: kernel_h * kernel_w * input_c rounded up to a multiple of 4."""
    return _depth4(int(np.prod(weights_shape[1:])))


def add_input_table(offset: int, left_shift: int, multiplier: int, shift: int) -> np.ndarray:
    """tinyc_add_s8's table for one input: entry v + 128 is that input's rescaled value for the int8 v,
    exactly as the reference computes it (offset, wrapping shift left, requantisation)."""
    values = np.arange(-128, 128, dtype=np.int64)
    shifted = qm.wrap_int32((values + offset) << left_shift)
    return np.asarray(qm.multiply_by_quantized_multiplier(shifted, multiplier, shift), dtype=np.int32)
