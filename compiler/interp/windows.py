"""Layouts and sliding windows shared by the convolution and pooling kernels.

Kernels work on channels-last arrays ([N, H, W, C]) and OHWI weights whatever the graph's layouts:
values are converted on entry and exit, so one implementation serves NCHW and NHWC graphs.
"""
from __future__ import annotations

from typing import Iterator

import numpy as np

from ..ir import Value
from ..ops import spatial_axes

def to_nhwc(x: np.ndarray, layout: str) -> np.ndarray:
    return x if layout == "NHWC" else x.transpose(0, 2, 3, 1)


def from_nhwc(y: np.ndarray, layout: str) -> np.ndarray:
    return np.ascontiguousarray(y if layout == "NHWC" else y.transpose(0, 3, 1, 2))


def weights_ohwi(w: np.ndarray, layout: str) -> np.ndarray:
    """A convolution weight as [O, KH, KW, I] from OIHW (or no layout), OHWI or IHWO."""
    if layout in ("", "OIHW"):
        return w.transpose(0, 2, 3, 1)
    if layout == "OHWI":
        return w
    if layout == "IHWO":
        return w.transpose(3, 1, 2, 0)
    raise ValueError(f"weight layout {layout!r} is not a convolution layout")


def output_hw(out: Value) -> tuple[int, int]:
    _, h_ax, w_ax = spatial_axes(out.layout)
    return out.shape[h_ax], out.shape[w_ax]


def pad_spatial(x: np.ndarray, pads: list[int], value) -> np.ndarray:
    """Pad an NHWC array by pads [top, left, bottom, right] with a constant."""
    top, left, bottom, right = pads
    if not any(pads):
        return x
    return np.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=value)


def windows(x_padded: np.ndarray, kernel: tuple[int, int], strides: list[int], dilations: list[int],
            out_hw: tuple[int, int]) -> Iterator[tuple[int, int, np.ndarray]]:
    """For every kernel tap (kh, kw): the [N, OH, OW, C] view of the padded input that tap reads."""
    sh, sw = strides
    dh, dw = dilations
    oh, ow = out_hw
    for kh in range(kernel[0]):
        for kw in range(kernel[1]):
            h0, w0 = kh * dh, kw * dw
            yield kh, kw, x_padded[:, h0:h0 + sh * (oh - 1) + 1:sh, w0:w0 + sw * (ow - 1) + 1:sw, :]


def im2col(x_padded: np.ndarray, kernel: tuple[int, int], strides: list[int], dilations: list[int],
           out_hw: tuple[int, int]) -> np.ndarray:
    """[N, OH, OW, KH, KW, C]: every output position's receptive field, in OHWI weight order."""
    taps = [view for _, _, view in windows(x_padded, kernel, strides, dilations, out_hw)]
    n, oh, ow, c = taps[0].shape
    return np.stack(taps, axis=3).reshape(n, oh, ow, kernel[0], kernel[1], c)


def integer_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b for integer arrays, exactly, in int64. (numpy's integer matmul is single threaded and,
    at these sizes, faster than float64 BLAS once threads compete for the cores.)"""
    return np.matmul(a.astype(np.int64, copy=False), b.astype(np.int64, copy=False))


def convolve(x: np.ndarray, w_ohwi: np.ndarray, strides: list[int], pads: list[int],
             dilations: list[int], group: int, out_hw: tuple[int, int], pad_value,
             matmul) -> np.ndarray:
    """Grouped 2-D convolution of an NHWC array with OHWI weights, no bias: [N, OH, OW, O].

    `matmul(cols, weights_t)` does the arithmetic (exact integers or float); depthwise convolutions
    (one input channel per group) are computed tap by tap instead, which needs no im2col copy.
    """
    cout, kh, kw, cin_g = w_ohwi.shape
    x_padded = pad_spatial(x, pads, pad_value)
    n = x.shape[0]
    if cin_g == 1 and group == x.shape[3] and group > 1:
        mult = cout // group
        source = np.repeat(x_padded, mult, axis=3) if mult > 1 else x_padded
        acc = None
        for i, j, view in windows(source, (kh, kw), strides, dilations, out_hw):
            term = view * w_ohwi[:, i, j, 0]
            acc = term if acc is None else acc + term
        return acc
    cols = im2col(x_padded, (kh, kw), strides, dilations, out_hw)
    cout_g = cout // group
    outs = []
    for g in range(group):
        cols_g = cols[..., g * cin_g:(g + 1) * cin_g].reshape(-1, kh * kw * cin_g)
        w_g = w_ohwi[g * cout_g:(g + 1) * cout_g].reshape(cout_g, -1)
        outs.append(matmul(cols_g, w_g.T).reshape(n, out_hw[0], out_hw[1], cout_g))
    return outs[0] if group == 1 else np.concatenate(outs, axis=3)


def pool_windows(x: np.ndarray, kernel: list[int], strides: list[int], pads: list[int],
                 out_hw: tuple[int, int], pad_value) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """For every kernel tap: (the [N, OH, OW, C] input view, a [1, OH, OW, 1] mask of positions that
    read real input rather than padding)."""
    x_padded = pad_spatial(x, pads, pad_value)
    inside = pad_spatial(np.ones((1,) + x.shape[1:3] + (1,), dtype=bool), pads, False)
    taps = windows(x_padded, (kernel[0], kernel[1]), strides, [1, 1], out_hw)
    masks = windows(inside, (kernel[0], kernel[1]), strides, [1, 1], out_hw)
    for (_, _, view), (_, _, mask) in zip(taps, masks):
        yield view, mask
