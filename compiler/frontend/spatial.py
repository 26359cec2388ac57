"""Window arithmetic shared by convolutions and pools: ONNX auto_pad and pads to explicit pads,
ceil_mode as extra end padding, and lifting 1-D attributes to the 2-D form of the IR (H = 1)."""
from __future__ import annotations

import math

from ..errors import TinycError, UnsupportedError
from .analysis import NodeInfo


def window_attrs(node: NodeInfo, spatial: list[int], kernel: list[int]) -> tuple[list[int], list[int], list[int]]:
    """(strides, dilations, pads) of a conv/pool node over `spatial` input dims with `kernel`; pads are
    explicit in ONNX order (all begins, then all ends), auto_pad resolved."""
    n = len(spatial)
    strides = list(node.attr("strides", [1] * n))
    dilations = list(node.attr("dilations", [1] * n))
    if len(strides) != n or len(dilations) != n or len(kernel) != n:
        raise TinycError(f"{node.label}: strides/dilations/kernel do not match {n} spatial dimensions")
    if any(s <= 0 for s in strides) or any(d <= 0 for d in dilations):
        raise TinycError(f"{node.label}: strides and dilations must be positive")
    auto_pad = node.attr("auto_pad", "NOTSET") or "NOTSET"
    if auto_pad == "NOTSET":
        pads = list(node.attr("pads", [0] * (2 * n)))
        if len(pads) != 2 * n:
            raise TinycError(f"{node.label}: pads has {len(pads)} entries, expected {2 * n}")
        if any(p < 0 for p in pads):
            raise UnsupportedError(f"{node.label}: negative pads are not supported")
    elif auto_pad == "VALID":
        pads = [0] * (2 * n)
    elif auto_pad in ("SAME_UPPER", "SAME_LOWER"):
        begins, ends = [], []
        for size, k, s, d in zip(spatial, kernel, strides, dilations):
            out = math.ceil(size / s)
            total = max((out - 1) * s + (k - 1) * d + 1 - size, 0)
            small, big = total // 2, total - total // 2
            # SAME_UPPER puts the odd extra pad at the end, SAME_LOWER at the beginning.
            begins.append(small if auto_pad == "SAME_UPPER" else big)
            ends.append(big if auto_pad == "SAME_UPPER" else small)
        pads = begins + ends
    else:
        raise UnsupportedError(f"{node.label}: auto_pad {auto_pad!r} is not supported")
    return strides, dilations, pads


def ceil_mode_extra(size: int, kernel: int, stride: int, pad_begin: int, pad_end: int) -> int:
    """Extra end padding that makes the floor output-size formula give ceil_mode's size. As in
    onnxruntime and PyTorch, a last window that would start inside the end padding is dropped."""
    span = size + pad_begin + pad_end - kernel
    if span < 0:
        return 0
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return max(0, (out - 1) * stride + kernel - (size + pad_begin + pad_end))


def lift_1d(values: list[int], fill: int) -> list[int]:
    """A 1-D attribute [a] as the 2-D [fill, a] (the IR imports a 1-D window with H = 1)."""
    return [fill] + list(values)


def ir_pads(onnx_pads: list[int]) -> list[int]:
    """IR pads [top, left, bottom, right] from ONNX pads (begins then ends) of 1 or 2 spatial dims."""
    if len(onnx_pads) == 2:
        return [0, onnx_pads[0], 0, onnx_pads[1]]
    return list(onnx_pads)
