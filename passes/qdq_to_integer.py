"""qdq-to-integer: lower dequantize -> float op -> quantize islands to the IR's integer ops."""
from __future__ import annotations

from typing import Callable

import numpy as np

from tinyc.interp.float_kernels import unary_function
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import attr
from tinyc.passes import register
from tinyc.quant_math import SOFTMAX_OUTPUT, UINT8_TO_INT8, lut_table, shift_to_int8, uint8_data_to_int8

from ._patterns import (IndexedGraph, apply_rule, const_like, fresh_op_name, insert_after,
                        is_graph_boundary, note_not_lowered, producer, readers, remove_op, remove_unread_values,
                        remove_unused_constants, rename_value, replace_op, same_quant, weight_out_axis)

INT32_RANGE = (-(2 ** 31), 2 ** 31 - 1)


@register("qdq-to-integer")
def qdq_to_integer(graph: Graph) -> Graph:
    """Integer ops in place of quantize/dequantize around float ops, where that is exact to the model.

    Guarantees:
    - uint8 activations become int8 (zero point - 128, same real values); uint8 constants are
      shifted the same way; an integer pad reading uint8 has its value shifted too. A uint8 graph
      input is followed by a `rescale` to int8; a uint8 graph output is written by a `rescale` back.
    - A float op whose data inputs are all dequantize(q) of int8 per-tensor values (weights and bias:
      dequantize of constants) and whose output is read only by quantize ops with equal int8
      per-tensor quantisation (and is not a graph output) becomes the integer op reading q and
      writing the quantize's output, keeping its name and attributes (a fused activation stays in
      `activation`): conv2d, depthwise_conv2d, fully_connected (weight int8 constant with zero point
      0, per tensor or per output channel; bias int32 with scale s_x * s_w[c] and zero point 0 — a
      dequantized int32 bias must already have that scale, a float constant bias is quantised to it),
      add, mul, matmul, softmax (the integer softmax writes s = 1/256, zp = -128; other output
      parameters get a `rescale` after it), and the quantisation-preserving
      avg_pool2d, max_pool2d, reshape, transpose, pad, concat. When such an op's input and output
      quantisation differ, the op runs in the input's quantisation and a `rescale` follows (concat
      with inputs of mixed quantisation rescales the inputs instead). A pad value becomes the
      stored code of the real value (0.0 -> the zero point); it must be exactly representable when a
      rescale follows.
    - relu, clip, sigmoid, tanh, leaky_relu, hard_swish between dequantize and quantize become `lut`
      with 256 entries: each int8 code dequantized in float32, the function applied, quantized with
      round-half-to-even and saturation (the model's float QDQ arithmetic, so exact).
    - quantize(dequantize(q)) with the same dtype and parameters is removed; with other int8
      per-tensor parameters it becomes a `rescale` (keeping the quantize's name).
    - Float graph inputs keep their quantize, float graph outputs their dequantize. Anything not
      covered above stays float, so the graph still verifies (mixed form); numerics never change
      silently.
    - Dequantize ops nobody reads, constants nobody reads and orphaned values are removed."""
    g = IndexedGraph(graph.copy())
    _uint8_to_int8(g)
    for op in list(g.ops):
        if g.contains(op) and op.kind in LOWERINGS and g.values[op.outputs[0]].dtype == "float32":
            _lower(g, op)
    apply_rule(g, _requantize_pair)
    _remove_dead_dequantize(g)
    remove_unused_constants(g.graph)
    remove_unread_values(g.graph)
    return g.graph


# ---- uint8 -> int8 ----------------------------------------------------------------------------

def _is_quantized_uint8(v: Value) -> bool:
    return v.dtype == "uint8" and v.quant is not None


def _uint8_to_int8(g: IndexedGraph) -> None:
    shifted_pads = [op for op in g.ops if op.kind == "pad" and _is_quantized_uint8(g.values[op.inputs[0]])]
    for name in list(g.inputs):
        v = g.values[name]
        if not _is_quantized_uint8(v) or name in g.outputs or not readers(g, name):
            continue
        signed = g.add_value(Value(g.fresh_name(f"{name}_int8"), v.shape, "int8", v.layout,
                                   shift_to_int8(v.quant)))
        g.replace_reads(name, signed.name)
        g.insert(0, [Op("rescale", fresh_op_name(g, f"{name}_to_int8"), [name], [signed.name])])
    for name in list(g.outputs):
        v = g.values[name]
        writer = producer(g, name)
        if not _is_quantized_uint8(v) or name in g.inputs or writer is None:
            continue
        signed = g.add_value(Value(g.fresh_name(f"{name}_int8"), v.shape, "int8", v.layout,
                                   shift_to_int8(v.quant)))
        g.replace_reads(name, signed.name)
        g.set_outputs(writer, [signed.name])
        insert_after(g, writer, [Op("rescale", fresh_op_name(g, f"{name}_to_uint8"), [signed.name],
                                    [name])])
    for name, v in g.values.items():
        if not _is_quantized_uint8(v) or is_graph_boundary(g, name):
            continue
        v.dtype, v.quant = "int8", shift_to_int8(v.quant)
        if v.data is not None:
            v.data = uint8_data_to_int8(v.data)
    for pad in shifted_pads:
        pad.attrs["value"] = float(attr(pad, "value")) - UINT8_TO_INT8


# ---- matching helpers -------------------------------------------------------------------------
# Helpers and lowerings raise StaysFloat saying why an op keeps its float form; the reason is
# recorded on the graph (note_not_lowered) so that a later "no kernel" error can name it.

class StaysFloat(Exception):
    """Why an op cannot take its integer form."""

def _require_int8_per_tensor(q: Value) -> None:
    if q.dtype == "int16":
        raise StaysFloat("16-bit activations (tinyc's kernels take int8)")
    if q.dtype != "int8" or q.quant is None:
        raise StaysFloat(f"it reads or writes a {q.dtype} tensor where int8 is needed")
    if q.quant.axis is not None:
        raise StaysFloat("an activation quantised per axis (tinyc needs one scale per activation)")


def _dequantized(g: IndexedGraph, name: str, allow_const: bool = False) -> Value:
    """q when `name` is dequantize(q) of an int8 per-tensor value (a constant only if allowed)."""
    dq = producer(g, name)
    if dq is None or dq.kind != "dequantize":
        raise StaysFloat("it reads a float tensor that is not dequantized from int8")
    q = g.values[dq.inputs[0]]
    _require_int8_per_tensor(q)
    if q.is_const and not allow_const:
        raise StaysFloat("it reads a constant where an activation is needed")
    return q


def _quantized_output(g: IndexedGraph, op: Op) -> tuple[Value, list[Op]]:
    """The int8 value the op's float output is quantized to, and the quantize ops reading it."""
    f = op.outputs[0]
    if f in g.outputs:
        raise StaysFloat("its float output leaves the model without a QuantizeLinear")
    users = readers(g, f)
    if not users or any(u.kind != "quantize" for u in users):
        raise StaysFloat("its output is read as float, not only by QuantizeLinear")
    outs = [g.values[u.outputs[0]] for u in users]
    if any(not same_quant(o, outs[0]) for o in outs):
        raise StaysFloat("its output is quantised with different parameters by different QuantizeLinear ops")
    at_boundary = [o for o in outs if o.name in g.outputs]
    if len(at_boundary) > 1:
        raise StaysFloat("its output is quantised into several graph outputs")
    y = at_boundary[0] if at_boundary else outs[0]
    _require_int8_per_tensor(y)
    return y, users


def _lower(g: IndexedGraph, op: Op) -> None:
    try:
        y, quantizers = _quantized_output(g, op)
        new_ops = LOWERINGS[op.kind](g, op, y)
    except StaysFloat as why:
        if _touches_quantisation(g, op):  # a float op among float ops is not a failed lowering
            note_not_lowered(g.graph, op, str(why))
        return
    float_out = op.outputs[0]
    replace_op(g, op, new_ops)
    for qop in quantizers:
        remove_op(g, qop)
        if qop.outputs[0] != y.name:
            g.replace_uses(qop.outputs[0], y.name)
            del g.values[qop.outputs[0]]
    del g.values[float_out]


def _touches_quantisation(g: IndexedGraph, op: Op) -> bool:
    """The op reads a dequantized value or its output is quantized."""
    writers = [producer(g, n) for n in op.inputs if n]
    return (any(w is not None and w.kind == "dequantize" for w in writers)
            or any(r.kind == "quantize" for r in readers(g, op.outputs[0])))


def _int8_like(g: IndexedGraph, base: str, shape: tuple[int, ...], layout: str, quant: QuantParams) -> Value:
    return g.add_value(Value(g.fresh_name(base), shape, "int8", layout, quant))


def _rescale(g: IndexedGraph, base_op: str, src: str, dst: str) -> Op:
    return Op("rescale", fresh_op_name(g, f"{base_op}_rescale"), [src], [dst])


# ---- lowerings --------------------------------------------------------------------------------
# Each takes the float op and the int8 output value, and returns the integer ops replacing it
# (writing that value), or raises StaysFloat.

def _lower_accumulating(g: IndexedGraph, op: Op, y: Value) -> list[Op]:
    x = _dequantized(g, op.inputs[0])
    weight = const_like(g, op.inputs[1])
    if weight is None:
        raise StaysFloat("its weights are not a constant")
    if not weight.quantized:
        raise StaysFloat("its weights are float constants, not dequantized int8 ones (a partly quantised model)")
    w = weight.const
    if w.dtype != "int8":
        raise StaysFloat(f"its weights are {w.dtype} (tinyc's kernels take int8 weights)")
    if any(z != 0 for z in w.quant.zero_point):
        raise StaysFloat("its weights have a non-zero zero point (tinyc needs symmetric int8 weights)")
    out_axis = weight_out_axis(w) if op.kind != "fully_connected" else 0
    if w.quant.axis not in (None, out_axis):
        raise StaysFloat(f"its weights are quantised along axis {w.quant.axis}, not per output channel")
    c_out = w.shape[out_axis]
    bias_scales = x.quant.scale[0] * np.asarray(w.quant.scale, dtype=np.float64)
    inputs = [x.name, w.name]
    if len(op.inputs) > 2 and op.inputs[2]:
        inputs.append(_integer_bias(g, op.inputs[2], bias_scales, c_out))
    return [Op(op.kind, op.name, inputs, [y.name], dict(op.attrs))]


def _integer_bias(g: IndexedGraph, name: str, scales: np.ndarray, c_out: int) -> str:
    """An int32 bias constant with scale s_x * s_w[c]: the model's own when it is dequantize(int32
    constant) with that scale, or a float constant bias quantised to it."""
    cl = const_like(g, name)
    if cl is None:
        raise StaysFloat("its bias is not a constant")
    if cl.const.shape != (c_out,):
        raise StaysFloat(f"its bias has shape {list(cl.const.shape)}, not [{c_out}]")
    want = np.broadcast_to(scales, (c_out,))
    b = cl.const
    if cl.quantized:
        if b.dtype != "int32":
            raise StaysFloat(f"its bias is {b.dtype} (tinyc needs an int32 bias)")
        if b.quant.axis not in (None, 0) or any(z != 0 for z in b.quant.zero_point):
            raise StaysFloat("its bias has a non-zero zero point (an int32 bias has zero point 0)")
        have = np.broadcast_to(np.asarray(b.quant.scale, dtype=np.float64), (c_out,))
        # The model stores s_x * s_w as a float32 product; allow for that one rounding.
        if not np.allclose(have, want, rtol=1e-6, atol=0.0):
            raise StaysFloat("its bias scale is not input scale x weight scale")
        return b.name
    codes = np.rint(b.data.astype(np.float64) / want)
    if not np.isfinite(codes).all() or codes.min(initial=0) < INT32_RANGE[0] or codes.max(initial=0) > INT32_RANGE[1]:
        raise StaysFloat("its float bias does not fit int32 at scale input scale x weight scale")
    quant = (QuantParams(tuple(scales), (0,) * len(scales), 0) if len(scales) > 1
             else QuantParams(tuple(scales), (0,), None))
    return g.add_const(f"{name}_int32", codes.astype(np.int32), quant=quant).name


def _lower_binary(g: IndexedGraph, op: Op, y: Value) -> list[Op]:
    a = _dequantized(g, op.inputs[0], allow_const=True)
    b = _dequantized(g, op.inputs[1], allow_const=True)
    if a.is_const and b.is_const:
        raise StaysFloat("both of its operands are constants")
    return [Op(op.kind, op.name, [a.name, b.name], [y.name], dict(op.attrs))]


def _stored_pad_value(op: Op, q: Value, y: Value) -> float | None:
    """The int8 code the pad writes for its float value, or None if that is not exact."""
    value = np.float32(attr(op, "value"))
    scale, zp = np.float32(q.quant.scale[0]), q.quant.zero_point[0]
    if value == 0:
        return float(zp)
    code = int(np.clip(np.rint(value / scale) + zp, -128, 127))
    if not same_quant(q, y) and np.float32(code - zp) * scale != value:
        return None
    return float(code)


def _lower_preserving(g: IndexedGraph, op: Op, y: Value) -> list[Op]:
    q = _dequantized(g, op.inputs[0])
    attrs = dict(op.attrs)
    if op.kind == "pad":
        stored = _stored_pad_value(op, q, y)
        if stored is None:
            raise StaysFloat(f"its pad value {attr(op, 'value')} is not exactly an int8 code of its input")
        attrs["value"] = stored
    return _in_input_quant(g, op, [q.name], q.quant, y, attrs)


def _in_input_quant(g: IndexedGraph, op: Op, inputs: list[str], quant: QuantParams, y: Value,
                    attrs: dict) -> list[Op]:
    """The op computing in `quant` (its inputs' quantisation), then a rescale to y's if different."""
    if quant == y.quant:
        return [Op(op.kind, op.name, inputs, [y.name], attrs)]
    mid = _int8_like(g, f"{y.name}_{op.kind}", y.shape, y.layout, quant)
    return [Op(op.kind, op.name, inputs, [mid.name], attrs), _rescale(g, op.name, mid.name, y.name)]


def _lower_concat(g: IndexedGraph, op: Op, y: Value) -> list[Op]:
    qs = [_dequantized(g, n, allow_const=True) for n in op.inputs]
    if all(q.is_const for q in qs):
        raise StaysFloat("all of its inputs are constants")
    quants = {q.quant for q in qs}
    if len(quants) == 1:
        return _in_input_quant(g, op, [q.name for q in qs], quants.pop(), y, dict(op.attrs))
    # Inputs disagree: bring each one to the output's quantisation first.
    ops, inputs = [], []
    for i, q in enumerate(qs):
        if q.quant == y.quant:
            inputs.append(q.name)
            continue
        mid = _int8_like(g, f"{q.name}_{op.name}", q.shape, q.layout, y.quant)
        ops.append(Op("rescale", fresh_op_name(g, f"{op.name}_rescale_{i}"), [q.name], [mid.name]))
        inputs.append(mid.name)
    return ops + [Op("concat", op.name, inputs, [y.name], dict(op.attrs))]


def _lower_softmax(g: IndexedGraph, op: Op, y: Value) -> list[Op]:
    q = _dequantized(g, op.inputs[0])
    if y.quant == SOFTMAX_OUTPUT:
        return [Op("softmax", op.name, [q.name], [y.name], dict(op.attrs))]
    # The integer softmax always writes (1/256, -128); other output parameters (onnxruntime's
    # quantiser uses 1/255) get an explicit rescale, as the QOperator import does.
    mid = _int8_like(g, f"{y.name}_softmax", y.shape, y.layout, SOFTMAX_OUTPUT)
    return [Op("softmax", op.name, [q.name], [mid.name], dict(op.attrs)),
            _rescale(g, op.name, mid.name, y.name)]


def _lower_unary(g: IndexedGraph, op: Op, y: Value) -> list[Op]:
    q = _dequantized(g, op.inputs[0])
    return [Op("lut", op.name, [q.name], [y.name], {"table": lut_table(unary_function(op), q.quant, y.quant)})]


LOWERINGS: dict[str, Callable[[IndexedGraph, Op, Value], list[Op]]] = {
    "conv2d": _lower_accumulating,
    "depthwise_conv2d": _lower_accumulating,
    "fully_connected": _lower_accumulating,
    "matmul": _lower_binary,
    "add": _lower_binary,
    "mul": _lower_binary,
    "avg_pool2d": _lower_preserving,
    "max_pool2d": _lower_preserving,
    "reshape": _lower_preserving,
    "transpose": _lower_preserving,
    "pad": _lower_preserving,
    "concat": _lower_concat,
    "softmax": _lower_softmax,
    "relu": _lower_unary,
    "clip": _lower_unary,
    "sigmoid": _lower_unary,
    "tanh": _lower_unary,
    "leaky_relu": _lower_unary,
    "hard_swish": _lower_unary,
}


# ---- quantize(dequantize(q)) and clean-up ----------------------------------------------------

def _requantize_pair(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "quantize":
        return False
    dq = producer(g, op.inputs[0])
    if dq is None or dq.kind != "dequantize":
        return False
    q, y = g.values[dq.inputs[0]], g.values[op.outputs[0]]
    if q.is_const:
        return False
    if same_quant(q, y):
        if y.name not in g.outputs:
            remove_op(g, op)
            g.replace_uses(y.name, q.name)
            del g.values[y.name]
            return True
        if not is_graph_boundary(g, q.name) and producer(g, q.name) is not None:
            remove_op(g, op)
            rename_value(g, q.name, y.name)
            return True
    if q.dtype != "int8" or y.dtype != "int8" or q.quant.axis is not None or y.quant.axis is not None:
        return False
    op.kind, op.attrs = "rescale", {}
    g.set_inputs(op, [q.name])
    return True


def _remove_dead_dequantize(g: IndexedGraph) -> None:
    for op in [o for o in g.ops if o.kind == "dequantize" and not g.is_read(o.outputs[0])
               and o.outputs[0] not in g.outputs]:
        remove_op(g, op)
        del g.values[op.outputs[0]]
