"""quantize: a float graph in QDQ form, from calibrated ranges (post-training quantisation).

`quantize_graph(graph, ranges, ...)` puts quantize -> dequantize pairs on the float graph's tensors
and int8/int32 constants behind dequantize in place of float weights and biases: the same QDQ form
onnxruntime's and TFLite's quantisers produce, which the default pipeline (qdq-to-integer, requantize,
layout) lowers to integer ops. The registered pass reads the ranges from graph.meta["calibration"].
`equalize` (cross-layer equalisation) prepares a float graph before calibration.
"""
from __future__ import annotations

import warnings

import numpy as np

from tinyc.ir import Graph, Op, QuantParams, Value, unique_name
from tinyc.ops import attr
from tinyc.passes import register
from tinyc.quant_math import INT32_MAX, INT32_MIN, SOFTMAX_OUTPUT, int8_params

from ._patterns import IndexedGraph, readers

# Ops whose integer form keeps its input's quantisation (TFLite's quantiser gives them the input's).
SHARES_INPUT_QUANT = ("max_pool2d", "avg_pool2d", "reshape", "transpose", "pad", "identity")
# Outputs whose quantisation is fixed by what the function can produce (TFLite's choices).
FIXED_OUTPUT_QUANT = {"softmax": SOFTMAX_OUTPUT, "sigmoid": QuantParams.tensor(1.0 / 256.0, -128),
                      "tanh": QuantParams.tensor(1.0 / 128.0, 0)}
WEIGHTED = ("conv2d", "depthwise_conv2d", "fully_connected")
# Weights of a channel that is all zeros get this scale: any positive scale stores them exactly.
ZERO_CHANNEL_SCALE = 1.0 / 127.0
CALIBRATION = "calibration"   # graph.meta key of {"ranges": {value: [lo, hi]}} for the registered pass


def activation_quant(lo: float, hi: float) -> QuantParams:
    """Asymmetric int8 quantisation of the real range [lo, hi] (which holds 0)."""
    return QuantParams.tensor(*int8_params(lo, hi))


def weight_quant(w: np.ndarray) -> tuple[np.ndarray, QuantParams]:
    """Symmetric int8 per output channel (axis 0): scale max|w_c| / 127, zero point 0."""
    per_channel = np.abs(w.astype(np.float64)).reshape(w.shape[0], -1).max(axis=1)
    scales = np.where(per_channel > 0, per_channel / 127.0, ZERO_CHANNEL_SCALE).astype(np.float32)
    shape = (-1,) + (1,) * (w.ndim - 1)
    codes = np.clip(np.rint(w / scales.reshape(shape)), -127, 127).astype(np.int8)
    quant = (QuantParams(tuple(float(s) for s in scales), (0,) * len(scales), 0) if len(scales) > 1
             else QuantParams.tensor(float(scales[0]), 0))
    return codes, quant


def constant_quant(data: np.ndarray) -> tuple[np.ndarray, QuantParams]:
    """A float constant read as an activation (an add's or mul's operand): per-tensor int8."""
    q = activation_quant(min(float(data.min(initial=0.0)), 0.0), max(float(data.max(initial=0.0)), 0.0))
    codes = np.clip(np.rint(data / np.float32(q.scale[0])) + q.zero_point[0], -128, 127).astype(np.int8)
    return codes, q


def bias_codes(bias: np.ndarray, scales: np.ndarray, node: str) -> np.ndarray:
    """int32 bias at scale s_x * s_w[c]; a value beyond int32 saturates, with a warning."""
    codes = np.rint(bias.astype(np.float64) / scales)
    if codes.min(initial=0) < INT32_MIN or codes.max(initial=0) > INT32_MAX:
        warnings.warn(f"node {node!r}: its bias does not fit int32 at scale input x weight scale; "
                      f"saturated", stacklevel=2)
    return np.clip(codes, INT32_MIN, INT32_MAX).astype(np.int32)


def _choose_quant(g: Graph, ranges: dict[str, tuple[float, float]]) -> dict[str, QuantParams]:
    """The int8 quantisation of each float activation (graph inputs and op results)."""
    quant: dict[str, QuantParams] = {}
    for name in g.inputs:
        if g.values[name].dtype == "float32" and name in ranges:
            quant[name] = activation_quant(*ranges[name])
    for op in g.ops:
        out = op.outputs[0]
        if g.values[out].dtype != "float32" or not op.inputs or g.values[out].is_const:
            continue
        source = op.inputs[0]
        if op.kind in SHARES_INPUT_QUANT and source in quant:
            quant[out] = quant[source]
        elif op.kind in FIXED_OUTPUT_QUANT:
            quant[out] = FIXED_OUTPUT_QUANT[op.kind]
        elif out in ranges:
            quant[out] = activation_quant(*ranges[out])
    return quant


class _Rewrite:
    """The graph being rewritten and the op names taken (new ops get fresh ones)."""

    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.op_names = {op.name for op in graph.ops}

    def op_name(self, base: str) -> str:
        name = unique_name(base, self.op_names)
        self.op_names.add(name)
        return name

    def q_dq(self, source: str, quant: QuantParams, float_name: str) -> list[Op]:
        """quantize(source) -> int8 value -> dequantize -> float_name (declared here)."""
        g = self.g
        v = g.values[source]
        q = g.add_value(Value(g.fresh_name(f"{source}_q"), v.shape, "int8", v.layout, quant))
        if float_name not in g.values:
            g.add_value(Value(float_name, v.shape, "float32", v.layout))
        return [Op("quantize", self.op_name(f"{source}_quantize"), [source], [q.name]),
                Op("dequantize", self.op_name(f"{source}_dequantize"), [q.name], [float_name])]

    def const_dq(self, base: str, codes: np.ndarray, quant: QuantParams, layout: str) -> tuple[str, Op]:
        """A quantised constant and the dequantize op that reads it (writing a new float value)."""
        g = self.g
        const = g.add_const(f"{base}_q", codes, layout, quant)
        out = g.add_value(Value(g.fresh_name(f"{base}_dq"), codes.shape, "float32", layout))
        return out.name, Op("dequantize", self.op_name(f"{base}_dequantize"), [const.name], [out.name])


def quantize_graph(graph: Graph, ranges: dict[str, tuple[float, float]],
                   input_means: dict[str, np.ndarray] | None = None) -> Graph:
    """The float graph (canonical, activations fused) in QDQ form, quantised TFLite's way:

    - every float activation with a range is quantized to asymmetric int8 and dequantized for its
      readers; ops that only move or select values (pools, reshape, transpose, pad) reuse their
      input's quantisation; softmax, sigmoid and tanh outputs get their fixed TFLite quantisation;
      a float graph input is quantized right after the input, a float graph output is the dequantize
      of its quantized value (the interface stays float);
    - conv2d / depthwise_conv2d / fully_connected weights become symmetric int8 per output channel
      (axis 0) and float biases int32 at scale input x weight scale (saturated with a warning);
      with `input_means` ({op input: mean per channel}) each bias is corrected by the mean error the
      weight rounding makes on that input (bias correction);
    - float constants read as activations (an add's or mul's operand, a matmul's) become per-tensor
      int8 constants behind dequantize.
    Ops and tensors without a range stay float. graph.meta["float_reference"] maps each quantized
    value to the float tensor it stands for (the accuracy report compares them)."""
    g = graph.copy()
    rw = _Rewrite(g)
    quant = _choose_quant(g, ranges)
    reference: dict[str, str] = {}
    quantized: dict[str, str] = {}  # float tensor -> the dequantized copy its readers read

    def dequantized(name: str) -> str:
        if name not in quantized:
            quantized[name] = g.fresh_name(f"{name}_dq")
        return quantized[name]

    new_ops: list[Op] = []
    for name in list(g.inputs):
        if name in quant:
            ops = rw.q_dq(name, quant[name], dequantized(name))
            reference[ops[0].outputs[0]] = name
            new_ops += ops
    for op in list(g.ops):
        out = op.outputs[0]
        inputs = [quantized.get(n, n) if n else n for n in op.inputs]
        if op.kind in WEIGHTED and g.values[op.inputs[1]].is_const and g.values[op.inputs[1]].dtype == "float32":
            inputs, weight_ops = _quantized_weights(rw, op, inputs, quant, input_means)
            new_ops += weight_ops
        elif op.kind in ("add", "mul", "matmul", "concat"):
            for i, n in enumerate(inputs):
                v = g.values[n] if n else None
                if v is not None and v.is_const and v.dtype == "float32":
                    codes, q = constant_quant(v.data)
                    inputs[i], dq = rw.const_dq(n, codes, q, v.layout)
                    new_ops.append(dq)
        op.inputs = inputs
        new_ops.append(op)
        if out in quant:
            if out in g.outputs:  # the interface keeps the name: the op writes a copy, dequantize the name
                written = g.fresh_name(f"{out}_f")
                g.add_value(Value(written, g.values[out].shape, "float32", g.values[out].layout))
                op.outputs = [written]
                ops = rw.q_dq(written, quant[out], out)
            else:
                ops = rw.q_dq(out, quant[out], dequantized(out))
            reference[ops[0].outputs[0]] = out
            new_ops += ops
    g.ops = new_ops
    g.meta["float_reference"] = {**graph.meta.get("float_reference", {}), **reference}
    return g


def _quantized_weights(rw: _Rewrite, op: Op, inputs: list[str], quant: dict[str, QuantParams],
                       input_means: dict[str, np.ndarray] | None) -> tuple[list[str], list[Op]]:
    g = rw.g
    x_quant = quant.get(op.inputs[0])
    w = g.values[op.inputs[1]]
    codes, w_quant = weight_quant(w.data)
    ops = []
    inputs = list(inputs)
    inputs[1], dq = rw.const_dq(w.name, codes, w_quant, w.layout)
    ops.append(dq)
    if len(op.inputs) > 2 and op.inputs[2] and x_quant is not None:
        b = g.values[op.inputs[2]]
        bias = b.data.astype(np.float64)
        if input_means is not None and op.inputs[0] in input_means:
            bias = bias + _rounding_error_on_mean(op, w.data, codes, w_quant, input_means[op.inputs[0]])
        w_scales = np.broadcast_to(np.asarray(w_quant.scale, np.float64), bias.shape)
        scales = np.float64(x_quant.scale[0]) * w_scales
        bq = (QuantParams(tuple(scales), (0,) * len(scales), 0) if len(scales) > 1
              else QuantParams.tensor(float(scales[0]), 0))
        inputs[2], dq = rw.const_dq(b.name, bias_codes(bias, scales, op.name), bq, "")
        ops.append(dq)
    return inputs, ops


def _rounding_error_on_mean(op: Op, w: np.ndarray, codes: np.ndarray, w_quant: QuantParams,
                            mean: np.ndarray) -> np.ndarray:
    """E[(W - dequantize(quantize(W))) x] per output channel, taking x at its per-channel mean."""
    shape = (-1,) + (1,) * (w.ndim - 1)
    error = w.astype(np.float64) - codes.astype(np.float64) * np.asarray(w_quant.scale, np.float64).reshape(shape)
    if op.kind == "fully_connected":
        return error @ mean
    per_input = error.reshape(error.shape[0], error.shape[1], -1).sum(axis=2)  # [C_out, C_in per group]
    if op.kind == "depthwise_conv2d":
        multiplier = error.shape[0] // mean.shape[0]
        return per_input[:, 0] * np.repeat(mean, multiplier)
    group = attr(op, "group")
    per_group = mean.reshape(group, -1)
    out_per_group = error.shape[0] // group
    return np.concatenate([per_input[k * out_per_group:(k + 1) * out_per_group] @ per_group[k]
                           for k in range(group)])


@register("quantize")
def quantize(graph: Graph) -> Graph:
    """quantize_graph with the ranges in graph.meta["calibration"]["ranges"] ({value: [lo, hi]},
    what `tinyc compile --calibration` computes); a graph without them is returned unchanged."""
    ranges = graph.meta.get(CALIBRATION, {}).get("ranges")
    if not ranges:
        return graph.copy()
    return quantize_graph(graph, {k: (float(lo), float(hi)) for k, (lo, hi) in ranges.items()})


# ---- cross-layer equalisation -----------------------------------------------------------------

EQUALIZE_ROUNDS = 4


def equalize(graph: Graph) -> Graph:
    """Cross-layer equalisation (Nagel et al., 2019) of a float graph: for a convolution (or depthwise
    convolution) with no activation or ReLU whose output only a convolution (group 1) or fully
    connected layer reads, scale output channel i of the first by 1/s_i and the matching input
    channel of the second by s_i, s_i = sqrt(r1_i * r2_i) / r2_i with r1, r2 the channels' weight
    ranges: the same function (ReLU(x / s) = ReLU(x) / s for s > 0), with ranges that per-channel
    and per-tensor int8 both quantise better (depthwise layers gain most)."""
    g = IndexedGraph(graph.copy())
    for _ in range(EQUALIZE_ROUNDS):
        for op in list(g.ops):
            pair = _equalizable_pair(g, op)
            if pair is not None:
                _equalize_pair(g, op, pair)
    return g.graph


def _equalizable_pair(g: IndexedGraph, first: Op) -> Op | None:
    if first.kind not in ("conv2d", "depthwise_conv2d") or attr(first, "activation") not in ("none", "relu"):
        return None
    if first.kind == "conv2d" and attr(first, "group") != 1:
        return None
    out = first.outputs[0]
    if out in g.outputs or not g.values[first.inputs[1]].is_const:
        return None
    users = readers(g, out)
    if len(users) != 1:
        return None
    second = users[0]
    if second.kind != "conv2d" or attr(second, "group") != 1 or second.inputs[0] != out:
        return None
    if not g.values[second.inputs[1]].is_const or g.values[out].dtype != "float32":
        return None
    return second


def _equalize_pair(g: IndexedGraph, first: Op, second: Op) -> None:
    w1, w2 = g.values[first.inputs[1]].data.astype(np.float64), g.values[second.inputs[1]].data.astype(np.float64)
    r1 = np.abs(w1).reshape(w1.shape[0], -1).max(axis=1)
    r2 = np.abs(np.moveaxis(w2, 1, 0)).reshape(w2.shape[1], -1).max(axis=1)
    ok = (r1 > 0) & (r2 > 0)
    s = np.ones_like(r1)
    s[ok] = np.sqrt(r1[ok] * r2[ok]) / r2[ok]
    _set_const(g, first, 1, w1 / s.reshape((-1,) + (1,) * (w1.ndim - 1)))
    if len(first.inputs) > 2 and first.inputs[2] and g.values[first.inputs[2]].is_const:
        _set_const(g, first, 2, g.values[first.inputs[2]].data.astype(np.float64) / s)
    _set_const(g, second, 1, w2 * s.reshape((1, -1) + (1,) * (w2.ndim - 2)))


def _set_const(g: IndexedGraph, op: Op, index: int, data: np.ndarray) -> None:
    """Give `op` its own constant holding `data` at input `index` (a shared constant stays as it was)."""
    old = g.values[op.inputs[index]]
    new = g.add_const(f"{old.name}_eq", data.astype(np.float32), old.layout, old.quant)
    inputs = list(op.inputs)
    inputs[index] = new.name
    g.set_inputs(op, inputs)
    if not readers(g, old.name) and old.name not in g.outputs:
        del g.values[old.name]
