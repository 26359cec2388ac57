"""canonicalize: rewrite imported ONNX idioms into the IR's preferred op forms."""
from __future__ import annotations

import numpy as np

from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import attr, moves_only_unit_axes
from tinyc.passes import register

from ._patterns import (ConstLike, IndexedGraph, apply_rule, bypass, channel_axis, const_like,
                        drop_if_unread, fresh_op_name, insert_after, moved_quant, note_not_lowered,
                        per_channel_vector,
                        plain_const, producer, remove_op, remove_unused_constants, replace_const_like,
                        sole_reader, take_over_output, weight_out_axis)

CONVS = ("conv2d", "depthwise_conv2d")


@register("canonicalize")
def canonicalize(graph: Graph) -> Graph:
    """Canonical op forms, same numbers (up to float rounding of folded constants).

    Guarantees on the result (float and integer graphs alike unless stated):
    - no `identity` op, except one copying a graph input straight to a graph output;
    - `gemm` with trans_a == 0 and B constant-like ("constant-like" = a constant or dequantize of a
      constant) becomes `fully_connected` (weight [O, K]: transposed at compile time when trans_b == 0,
      for a dequantized weight the integer data is transposed and the quantisation axis moved); alpha
      and beta are folded into float constants; with a dequantized operand it is rewritten only when
      alpha == beta == 1; a bias C must be constant-like and equal on every row; otherwise gemm stays;
    - float `matmul(x [N,K], W [K,O] constant-like)` read only by `add` of a constant-like bias [O]
      becomes `fully_connected(x, W^T, bias)` named after the matmul;
    - float conv2d / depthwise_conv2d read only by `add` of a float constant that is the same on
      every position of each channel ([C,1,1], [1,C,1,1], ...) gets that constant folded into its bias;
    - `batch_norm` reading a float conv2d / depthwise_conv2d / fully_connected (float constant weight
      and bias, no fused activation) that only it reads is folded into that op's weight and bias;
      any other batch_norm with constant parameters becomes `mul` (keeps the name) + `add` by
      per-channel constants;
    - `global_avg_pool` becomes `avg_pool2d` with kernel = (H, W);
    - conv2d with group == C_in > 1 and C_out a multiple of group becomes depthwise_conv2d with
      depth_multiplier = C_out / C_in (weight unchanged, OIHW [C_out, 1, KH, KW]);
    - a transpose that only moves axes of size 1 (the bytes keep their order) becomes a reshape;
    - reshape of reshape reads the inner input directly; a reshape to its input's shape and layout is
      removed;
    - constants no op reads any more are dropped.
    The op doing the work keeps its name and writes the output name of the ops folded into it, so the
    graph interface is unchanged."""
    g = IndexedGraph(graph.copy())
    apply_rule(g, _remove_identity)
    apply_rule(g, _gemm_to_fully_connected)
    apply_rule(g, _matmul_add_to_fully_connected)
    apply_rule(g, _fold_conv_bias_add)
    apply_rule(g, _fold_batch_norm)
    apply_rule(g, _grouped_conv_to_depthwise)
    apply_rule(g, _global_pool_to_avg_pool)
    apply_rule(g, _unit_transpose_to_reshape)
    apply_rule(g, _collapse_reshapes)
    remove_unused_constants(g.graph)
    return g.graph


def _stays(g: IndexedGraph, op: Op, reason: str) -> bool:
    """Leave `op` as it is, recording why (the rule did not apply)."""
    note_not_lowered(g.graph, op, reason)
    return False


# ---- identity ---------------------------------------------------------------------------------

def _remove_identity(g: IndexedGraph, op: Op) -> bool:
    return op.kind == "identity" and bypass(g, op)


# ---- gemm / matmul -> fully_connected ---------------------------------------------------------

def _transposed_2d(cl: ConstLike) -> tuple[np.ndarray, QuantParams | None]:
    """The constant's data transposed, with its quantisation axis following the data."""
    return np.ascontiguousarray(cl.const.data.T), moved_quant(cl.const.quant, lambda a: 1 - a)


def _bias_vector(g: IndexedGraph, name: str, rows: int, cols: int, scale: float
                 ) -> tuple[ConstLike, np.ndarray, QuantParams | None] | None:
    """A constant-like bias that broadcasts to [rows, cols] with every row equal, as a [cols] vector
    (times `scale`, float constants only) with its quantisation. None when the bias is not of that
    form."""
    cl = const_like(g, name)
    if cl is None:
        return None
    data = cl.const.data
    if not cl.quantized:
        vec = per_channel_vector(data, (rows, cols), 1)
        if vec is None:
            return None
        return cl, (vec.astype(np.float64) * scale).astype(np.float32), None
    # Quantised data cannot absorb broadcasting or a scale factor without new rounding.
    quant = cl.const.quant
    if data.shape == (cols,):
        return cl, data, quant
    if data.shape == (1, cols):
        if quant.axis == 1:
            quant = QuantParams(quant.scale, quant.zero_point, 0)
        elif quant.axis == 0:  # one slice: a single scale for the whole row
            quant = QuantParams(quant.scale, quant.zero_point, None)
        return cl, data.reshape(cols), quant
    return None


def _gemm_to_fully_connected(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "gemm":
        return False
    if attr(op, "trans_a"):
        return _stays(g, op, "Gemm with transA=1 (tinyc runs Gemm as a fully connected layer: A not transposed)")
    out = g.values[op.outputs[0]]
    if out.dtype != "float32":
        return False
    alpha, beta, trans_b = float(attr(op, "alpha")), float(attr(op, "beta")), attr(op, "trans_b")
    weight = const_like(g, op.inputs[1])
    if weight is None or len(weight.const.shape) != 2:
        return _stays(g, op, "Gemm whose B is not a constant matrix (tinyc runs Gemm as a fully connected layer)")
    rows, cols = out.shape
    bias = None
    if len(op.inputs) > 2 and op.inputs[2]:
        bias = _bias_vector(g, op.inputs[2], rows, cols, beta)
        if bias is None:
            return _stays(g, op, "Gemm whose C is not a constant equal on every row (a fully connected bias)")
    quantized = weight.quantized or (bias is not None and bias[0].quantized)
    if quantized and (alpha != 1.0 or (bias is not None and beta != 1.0)):
        return _stays(g, op, "Gemm with quantised operands and alpha or beta other than 1")

    op_inputs_before = list(op.inputs[1:])
    inputs = [op.inputs[0]]
    if trans_b and (weight.quantized or alpha == 1.0):
        inputs.append(op.inputs[1])
    else:
        data, quant = _transposed_2d(weight) if not trans_b else (weight.const.data, weight.const.quant)
        if not weight.quantized:
            data = (data.astype(np.float64) * alpha).astype(np.float32)
        inputs.append(replace_const_like(g, op, weight, data, quant, f"{weight.const.name}_fc"))
    if bias is not None:
        cl, vec, quant = bias
        unchanged = cl.const.data.shape == vec.shape and (cl.quantized or beta == 1.0)
        inputs.append(cl.name if unchanged else
                      replace_const_like(g, op, cl, vec, quant, f"{cl.const.name}_fc"))
    op.kind, op.attrs = "fully_connected", {}
    g.set_inputs(op, inputs)
    for replaced in op_inputs_before:
        drop_if_unread(g, replaced)
    return True


def _matmul_add_to_fully_connected(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "matmul":
        return False
    x, w = g.values[op.inputs[0]], op.inputs[1]
    out = g.values[op.outputs[0]]
    if out.dtype != "float32" or len(x.shape) != 2:
        return False
    weight = const_like(g, w)
    if weight is None or len(weight.const.shape) != 2:
        return False
    add = sole_reader(g, out.name)
    if add is None or add.kind != "add" or attr(add, "activation") != "none":
        return False
    if add.inputs[0] == add.inputs[1]:
        return False
    other = add.inputs[1] if add.inputs[0] == out.name else add.inputs[0]
    if g.values[add.outputs[0]].shape != out.shape:
        return False
    bias = _bias_vector(g, other, *out.shape, 1.0)
    if bias is None:
        return False
    data, quant = _transposed_2d(weight)
    new_w = replace_const_like(g, op, weight, data, quant, f"{weight.const.name}_fc")
    cl, vec, bquant = bias
    new_b = cl.name if cl.const.data.shape == vec.shape else \
        replace_const_like(g, op, cl, vec, bquant, f"{cl.const.name}_fc")
    op.kind, op.attrs = "fully_connected", {}
    g.set_inputs(op, [op.inputs[0], new_w, new_b])
    take_over_output(g, op, add)
    drop_if_unread(g, w)
    drop_if_unread(g, other)
    return True


# ---- conv + per-channel add -------------------------------------------------------------------

def _fold_conv_bias_add(g: IndexedGraph, op: Op) -> bool:
    if op.kind not in CONVS or attr(op, "activation") != "none":
        return False
    out = g.values[op.outputs[0]]
    if out.dtype != "float32":
        return False
    add = sole_reader(g, out.name)
    if add is None or add.kind != "add" or attr(add, "activation") != "none":
        return False
    if add.inputs[0] == add.inputs[1] or g.values[add.outputs[0]].shape != out.shape:
        return False
    other = plain_const(g, add.inputs[1] if add.inputs[0] == out.name else add.inputs[0])
    if other is None:
        return False
    vec = per_channel_vector(other.data, out.shape, channel_axis(out))
    if vec is None:
        return False
    if len(op.inputs) > 2:
        old_bias = plain_const(g, op.inputs[2])
        if old_bias is None:
            return False
        vec = old_bias.data + vec
    bias = g.add_const(f"{op.name}_bias", np.asarray(vec, dtype=np.float32))
    g.set_inputs(op, op.inputs[:2] + [bias.name])
    take_over_output(g, op, add)
    return True


# ---- batch_norm -------------------------------------------------------------------------------

def _fold_batch_norm(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "batch_norm":
        return False
    x = g.values[op.inputs[0]]
    if x.dtype != "float32":
        return False
    params = [plain_const(g, n) for n in op.inputs[1:]]
    if any(p is None for p in params):
        return False
    gamma, beta, mean, var = (p.data.astype(np.float64) for p in params)  # type: ignore[union-attr]
    factor = gamma / np.sqrt(var + float(attr(op, "epsilon")))
    shift = beta - mean * factor
    if _fold_into_producer(g, op, factor, shift):
        return True
    _batch_norm_to_mul_add(g, op, x, factor, shift)
    return True


def _fold_into_producer(g: IndexedGraph, bn: Op, factor: np.ndarray, shift: np.ndarray) -> bool:
    x = bn.inputs[0]
    prod = producer(g, x)
    if prod is None or prod.kind not in CONVS + ("fully_connected",):
        return False
    if sole_reader(g, x) is not bn or attr(prod, "activation") != "none":
        return False
    weight = plain_const(g, prod.inputs[1])
    bias = plain_const(g, prod.inputs[2]) if len(prod.inputs) > 2 else None
    if weight is None or (len(prod.inputs) > 2 and bias is None):
        return False
    axis = weight_out_axis(weight)
    if weight.shape[axis] != factor.shape[0]:
        return False
    shape = [-1 if i == axis else 1 for i in range(len(weight.shape))]
    new_w = (weight.data.astype(np.float64) * factor.reshape(shape)).astype(np.float32)
    old_b = bias.data.astype(np.float64) if bias is not None else 0.0
    new_b = (old_b * factor + shift).astype(np.float32)
    w_val = g.add_const(f"{weight.name}_bn", new_w, layout=weight.layout)
    b_val = g.add_const(f"{prod.name}_bias", new_b)
    g.set_inputs(prod, [prod.inputs[0], w_val.name, b_val.name])
    take_over_output(g, prod, bn)
    return True


def _batch_norm_to_mul_add(g: IndexedGraph, bn: Op, x: Value, factor: np.ndarray, shift: np.ndarray) -> None:
    axis = channel_axis(x)
    shape = (factor.shape[0],) + (1,) * (len(x.shape) - axis - 1)
    k = g.add_const(f"{bn.name}_scale", factor.astype(np.float32).reshape(shape))
    s = g.add_const(f"{bn.name}_shift", shift.astype(np.float32).reshape(shape))
    out = g.values[bn.outputs[0]]
    scaled = g.add_value(Value(g.fresh_name(f"{out.name}_scaled"), out.shape, "float32", out.layout))
    add = Op("add", fresh_op_name(g, f"{bn.name}_shift"), [scaled.name, s.name], list(bn.outputs))
    bn.kind, bn.attrs = "mul", {}
    g.set_inputs(bn, [x.name, k.name])
    g.set_outputs(bn, [scaled.name])
    insert_after(g, bn, [add])


# ---- single-op rewrites -----------------------------------------------------------------------

def _grouped_conv_to_depthwise(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "conv2d":
        return False
    x, w = g.values[op.inputs[0]], g.values[op.inputs[1]]
    group = int(attr(op, "group"))
    c_in = x.shape[channel_axis(x)]
    c_out = w.shape[weight_out_axis(w)]
    if not (group == c_in > 1 and c_out % group == 0):
        return False
    attrs = {k: v for k, v in op.attrs.items() if k != "group"}
    attrs["depth_multiplier"] = c_out // c_in
    op.kind, op.attrs = "depthwise_conv2d", attrs
    return True


def _global_pool_to_avg_pool(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "global_avg_pool":
        return False
    x = g.values[op.inputs[0]]
    h_ax, w_ax = (1, 2) if x.layout == "NHWC" else (2, 3)
    op.kind, op.attrs = "avg_pool2d", {"kernel": [x.shape[h_ax], x.shape[w_ax]]}
    return True


def _unit_transpose_to_reshape(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "transpose":
        return False
    if not moves_only_unit_axes(g.values[op.inputs[0]].shape, op.attrs["perm"]):
        return False
    op.kind, op.attrs = "reshape", {"shape": list(g.values[op.outputs[0]].shape)}
    return True


def _collapse_reshapes(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "reshape":
        return False
    inner = producer(g, op.inputs[0])
    if inner is not None and inner.kind == "reshape":
        g.set_inputs(op, [inner.inputs[0]])
        if not g.is_read(inner.outputs[0]) and inner.outputs[0] not in g.outputs:
            remove_op(g, inner)
            del g.values[inner.outputs[0]]
        return True
    x, y = g.values[op.inputs[0]], g.values[op.outputs[0]]
    # Same shape but another layout label is a relabelling that convolutions and pools read: keep it.
    if x.shape == y.shape and x.layout == y.layout:
        return bypass(g, op)
    return False
