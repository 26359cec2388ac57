"""float32 kernels with ONNX semantics (ops whose output is float32).

Dot products accumulate in float64 and round once to float32: a reference closer to the exact
result than any float32 summation order, so it agrees with onnxruntime to float32 tolerance.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .. import quant_math as qm
from ..ir import Op
from ..ops import spatial_axes, with_defaults
from . import windows as win
from .call import Call

F32 = np.float32


def _activation(call: Call, y: np.ndarray) -> np.ndarray:
    kind = call.attrs.get("activation", "none")
    if kind == "relu":
        return np.maximum(y, 0)
    if kind == "relu6":
        return np.clip(y, 0, 6)
    if kind == "clip":
        return np.clip(y, call.attrs["clip_min"], call.attrs["clip_max"])
    return y


def _float_matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


def conv(call: Call, x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    a = call.attrs
    layout = call.inputs[0].layout
    xs = win.to_nhwc(x, layout).astype(np.float64)
    w_ohwi = win.weights_ohwi(w, call.inputs[1].layout).astype(np.float64)
    group = a["group"] if call.op.kind == "conv2d" else xs.shape[3]
    y = win.convolve(xs, w_ohwi, a["strides"], a["pads"], a["dilations"], group,
                     win.output_hw(call.output), 0.0, _float_matmul)
    if b is not None:
        y = y + b.astype(np.float64)
    return win.from_nhwc(_activation(call, y.astype(F32)), call.output.layout)


def fully_connected(call: Call, x, w, b=None) -> np.ndarray:
    y = _float_matmul(x, w.T)
    if b is not None:
        y = y + b.astype(np.float64)
    return _activation(call, y.astype(F32))


def gemm(call: Call, a, b, c=None) -> np.ndarray:
    at = a.T if call.attrs["trans_a"] else a
    bt = b.T if call.attrs["trans_b"] else b
    y = call.attrs["alpha"] * _float_matmul(at, bt)
    if c is not None:
        y = y + call.attrs["beta"] * c.astype(np.float64)
    return y.astype(F32)


def matmul(call: Call, a, b) -> np.ndarray:
    return _float_matmul(a, b).astype(F32)


def batch_norm(call: Call, x, scale, bias, mean, var) -> np.ndarray:
    c_ax = spatial_axes(call.inputs[0].layout)[0] if x.ndim == 4 else 1
    shape = [1] * x.ndim
    shape[c_ax] = -1

    def per_channel(v):
        return v.astype(F32).reshape(shape)

    inv_std = F32(1) / np.sqrt(per_channel(var) + F32(call.attrs["epsilon"]))
    return ((x - per_channel(mean)) * inv_std * per_channel(scale) + per_channel(bias)).astype(F32)


def add(call: Call, a, b) -> np.ndarray:
    return _activation(call, (a + b).astype(F32))


def mul(call: Call, a, b) -> np.ndarray:
    return _activation(call, (a * b).astype(F32))


def relu(call: Call, x) -> np.ndarray:
    return np.maximum(x, F32(0))


def clip(call: Call, x) -> np.ndarray:
    return np.clip(x, F32(call.attrs["min"]), F32(call.attrs["max"])).astype(F32)


def leaky_relu(call: Call, x) -> np.ndarray:
    return np.where(x >= 0, x, x * F32(call.attrs["alpha"])).astype(F32)


def sigmoid(call: Call, x) -> np.ndarray:
    # Two branches so that exp never overflows for large |x|.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(F32)


def tanh(call: Call, x) -> np.ndarray:
    return np.tanh(x).astype(F32)


def hard_swish(call: Call, x) -> np.ndarray:
    # ONNX HardSwish: x * max(0, min(1, alpha * x + beta)) with alpha = 1/6, beta = 1/2.
    return (x * np.clip(F32(1.0 / 6.0) * x + F32(0.5), 0, 1)).astype(F32)


def max_pool2d(call: Call, x) -> np.ndarray:
    a = call.attrs
    xs = win.to_nhwc(x, call.inputs[0].layout)
    out = None
    for view, _ in win.pool_windows(xs, a["kernel"], a["strides"], a["pads"],
                                    win.output_hw(call.output), -np.inf):
        out = view if out is None else np.maximum(out, view)
    return win.from_nhwc(_activation(call, out.astype(F32)), call.output.layout)


def avg_pool2d(call: Call, x) -> np.ndarray:
    a = call.attrs
    xs = win.to_nhwc(x, call.inputs[0].layout).astype(np.float64)
    total = 0.0
    count = 0
    for view, inside in win.pool_windows(xs, a["kernel"], a["strides"], a["pads"],
                                         win.output_hw(call.output), 0.0):
        total = total + view
        count = count + inside.astype(np.int64)
    if a["count_include_pad"]:
        count = a["kernel"][0] * a["kernel"][1]
    return win.from_nhwc(_activation(call, (total / count).astype(F32)), call.output.layout)


def global_avg_pool(call: Call, x) -> np.ndarray:
    _, h_ax, w_ax = spatial_axes(call.inputs[0].layout)
    return x.astype(np.float64).mean(axis=(h_ax, w_ax), keepdims=True).astype(F32)


def softmax(call: Call, x) -> np.ndarray:
    axis = call.attrs["axis"]
    z = x.astype(np.float64) * call.attrs["beta"]
    e = np.exp(z - z.max(axis=axis, keepdims=True))
    return (e / e.sum(axis=axis, keepdims=True)).astype(F32)


def dequantize(call: Call, q) -> np.ndarray:
    quant = call.inputs[0].quant
    return qm.dequantize(q, quant.scale, quant.zero_point, quant.axis)


def unary_function(op: Op) -> Callable[[np.ndarray], np.ndarray]:
    """The float32 function of a one-input element-wise op (relu, clip, leaky_relu, sigmoid, tanh,
    hard_swish): this interpreter's kernel, which look-up tables of the op's integer form evaluate."""
    kernel = UNARY[op.kind]
    call = Call(op, with_defaults(op), [], None)  # element-wise kernels read only the attributes
    return lambda x: kernel(call, np.asarray(x, dtype=F32))


UNARY = {"relu": relu, "clip": clip, "leaky_relu": leaky_relu, "sigmoid": sigmoid, "tanh": tanh,
         "hard_swish": hard_swish}

KERNELS = {
    "conv2d": conv, "depthwise_conv2d": conv, "fully_connected": fully_connected, "gemm": gemm,
    "matmul": matmul, "batch_norm": batch_norm, "add": add, "mul": mul, "relu": relu, "clip": clip,
    "leaky_relu": leaky_relu, "sigmoid": sigmoid, "tanh": tanh, "hard_swish": hard_swish,
    "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d, "global_avg_pool": global_avg_pool,
    "softmax": softmax, "dequantize": dequantize,
}
