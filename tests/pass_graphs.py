"""Test helpers for the graph passes: a tiny IR builder and a float/QDQ numpy evaluator.

The evaluator implements the float ops' ONNX meaning plus quantize/dequantize/lut, so tests can check
that a rewrite keeps a graph's numbers (it is the tests' own reference, independent of the passes).
"""
from __future__ import annotations

import numpy as np

from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import infer_shapes, with_defaults


class Builder:
    """Build a Graph op by op; output shapes come from the op table's shape rules."""

    def __init__(self, name: str = "g") -> None:
        self.g = Graph(name, {}, [], [], [])

    def _layout(self, shape, layout):
        if layout is not None:
            return layout
        return "NCHW" if len(shape) == 4 else ""

    def input(self, name, shape, dtype="float32", quant=None, layout=None) -> str:
        self.g.add_value(Value(name, tuple(shape), dtype, self._layout(shape, layout), quant))
        self.g.inputs.append(name)
        return name

    def const(self, name, data, quant=None, layout="") -> str:
        data = np.ascontiguousarray(data)
        self.g.add_value(Value(name, data.shape, str(data.dtype), layout, quant, data))
        return name

    def op(self, kind, name, inputs, out=None, dtype="float32", quant=None, layout=None,
           out_shape=None, **attrs) -> str:
        out = out or f"{name}_out"
        op = Op(kind, name, list(inputs), [out], attrs)
        shape = out_shape
        if shape is None:
            shape = infer_shapes(op, [self.g.values[n] for n in inputs])[0]
        if layout is None:
            layout = (self.g.values[inputs[0]].layout or "NCHW") if len(shape) == 4 else ""
        self.g.add_value(Value(out, tuple(shape), dtype, layout, quant))
        self.g.ops.append(op)
        return out

    def dq(self, q, name=None, out=None) -> str:
        name = name or f"dq_{q}"
        return self.op("dequantize", name, [q], out=out or f"{q}_dq")

    def q(self, x, scale, zp, name=None, out=None, dtype="int8") -> str:
        name = name or f"q_{x}"
        return self.op("quantize", name, [x], out=out or f"{x}_q", dtype=dtype,
                       quant=QuantParams.tensor(scale, zp))

    def output(self, *names) -> Graph:
        self.g.outputs.extend(names)
        return self.g


def qt(scale, zp) -> QuantParams:
    return QuantParams.tensor(scale, zp)


def kinds(graph: Graph) -> list[str]:
    return [op.kind for op in graph.ops]


def op_named(graph: Graph, name: str) -> Op:
    matches = [op for op in graph.ops if op.name == name]
    assert len(matches) == 1, f"expected one op named {name!r}, found {len(matches)}"
    return matches[0]


# ---- numpy evaluation ------------------------------------------------------------------------

def _conv(x, w, b, a, depthwise):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    t, l, bt, r = a["pads"]
    sh, sw = a["strides"]
    dh, dw = a["dilations"]
    group = c if depthwise else a["group"]
    xp = np.pad(x, ((0, 0), (0, 0), (t, bt), (l, r)))
    oh = (h + t + bt - ((kh - 1) * dh + 1)) // sh + 1
    ow = (wd + l + r - ((kw - 1) * dw + 1)) // sw + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    opg, cpg = o // group, c // group
    for gi in range(group):
        xs = xp[:, gi * cpg:(gi + 1) * cpg].astype(np.float64)
        ws = w[gi * opg:(gi + 1) * opg].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh, j * dw:j * dw + sw * (ow - 1) + 1:sw]
                out[:, gi * opg:(gi + 1) * opg] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out


def _activation(y, a):
    act = a.get("activation", "none")
    if act == "relu":
        return np.maximum(y, 0)
    if act == "relu6":
        return np.clip(y, 0, 6)
    if act == "clip":
        return np.clip(y, a["clip_min"], a["clip_max"])
    return y


def _pool(x, a, reduce):
    kh, kw = a["kernel"]
    sh, sw = a["strides"]
    t, l, b, r = a["pads"]
    assert (t, l, b, r) == (0, 0, 0, 0), "test evaluator pools do not pad"
    n, c, h, w = x.shape
    oh, ow = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.empty((n, c, oh, ow), np.float64)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = reduce(x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], axis=(2, 3))
    return out


def _quantize(x, v: Value):
    s, z = v.quant.scale[0], v.quant.zero_point[0]
    info = np.iinfo(v.dtype)
    return np.clip(np.rint(np.float32(x) / np.float32(s)) + z, info.min, info.max).astype(v.dtype)


def _dequantize(q, v: Value):
    qp = v.quant
    scale = np.asarray(qp.scale, np.float32)
    zp = np.asarray(qp.zero_point, np.float32)
    if qp.axis is not None:
        shape = [-1 if i == qp.axis else 1 for i in range(q.ndim)]
        scale, zp = scale.reshape(shape), zp.reshape(shape)
    return ((q.astype(np.float32) - zp) * scale).astype(np.float32)


def evaluate(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run a float / QDQ graph (NCHW) with numpy; returns every graph output."""
    env = {v.name: v.data for v in graph.constants()}
    env.update(feeds)
    for op in graph.ops:
        a = with_defaults(op)
        xs = [env[n] for n in op.inputs]
        out_v = graph.values[op.outputs[0]]
        k = op.kind
        if k in ("conv2d", "depthwise_conv2d"):
            y = _activation(_conv(xs[0], xs[1], xs[2] if len(xs) > 2 else None, a, k == "depthwise_conv2d"), a)
        elif k == "fully_connected":
            y = xs[0].astype(np.float64) @ xs[1].astype(np.float64).T + (xs[2] if len(xs) > 2 else 0)
            y = _activation(y, a)
        elif k == "gemm":
            am = xs[0].T if a["trans_a"] else xs[0]
            bm = xs[1].T if a["trans_b"] else xs[1]
            y = a["alpha"] * (am.astype(np.float64) @ bm) + (a["beta"] * xs[2] if len(xs) > 2 else 0)
        elif k == "matmul":
            y = xs[0].astype(np.float64) @ xs[1]
        elif k == "add":
            y = _activation(xs[0].astype(np.float64) + xs[1], a)
        elif k == "mul":
            y = _activation(xs[0].astype(np.float64) * xs[1], a)
        elif k == "batch_norm":
            x, gamma, beta, mean, var = xs
            shape = [-1 if i == 1 else 1 for i in range(x.ndim)]
            y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + a["epsilon"]) * gamma.reshape(shape) \
                + beta.reshape(shape)
        elif k == "relu":
            y = np.maximum(xs[0], 0)
        elif k == "clip":
            y = np.clip(xs[0], a["min"], a["max"])
        elif k == "sigmoid":
            y = 1 / (1 + np.exp(-xs[0].astype(np.float64)))
        elif k == "tanh":
            y = np.tanh(xs[0].astype(np.float64))
        elif k == "leaky_relu":
            y = np.where(xs[0] >= 0, xs[0], np.float32(a["alpha"]) * xs[0])
        elif k == "hard_swish":
            x64 = xs[0].astype(np.float64)
            y = x64 * np.minimum(np.maximum(x64 / 6 + 0.5, 0), 1)
        elif k in ("reshape",):
            y = xs[0].reshape(a["shape"])
        elif k == "transpose":
            y = xs[0].transpose(a["perm"])
        elif k == "identity":
            y = xs[0]
        elif k == "global_avg_pool":
            y = xs[0].mean(axis=(2, 3), keepdims=True)
        elif k == "avg_pool2d":
            y = _activation(_pool(xs[0], a, np.mean), a)
        elif k == "max_pool2d":
            y = _activation(_pool(xs[0], a, np.max), a)
        elif k == "pad":
            rank = xs[0].ndim
            p = a["pads"]
            y = np.pad(xs[0], [(p[i], p[i + rank]) for i in range(rank)], constant_values=a["value"])
        elif k == "softmax":
            e = np.exp(xs[0] - xs[0].max(axis=a["axis"], keepdims=True))
            y = e / e.sum(axis=a["axis"], keepdims=True)
        elif k == "quantize":
            y = _quantize(xs[0], out_v)
        elif k == "dequantize":
            y = _dequantize(xs[0], graph.values[op.inputs[0]])
        elif k == "lut":
            y = np.asarray(a["table"], np.int64)[xs[0].astype(np.int64) + 128].astype(np.int8)
        else:
            raise NotImplementedError(k)
        # Integer results are only meaningful for the byte-moving ops (pools, reshape, transpose...).
        y = np.asarray(y).astype(out_v.dtype)
        assert y.shape == out_v.shape, (op.name, y.shape, out_v.shape)
        env[op.outputs[0]] = y
    return {n: env[n] for n in graph.outputs}
