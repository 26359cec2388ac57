"""Integer kernels: the TFLite / CMSIS-NN int8 semantics (ops whose output is an integer).

Every kernel reads the fixed-point parameters that the requantize pass stored on the op (never the
float scales), so the interpreter checks exactly what the generated C will compute.
Accumulators are exact int64 and then wrapped to int32, as the C code accumulates in int32.
"""
from __future__ import annotations

import numpy as np

from .. import quant_math as qm
from . import windows as win
from .call import Call


def _clamp(y: np.ndarray, lo: int, hi: int, dtype: str) -> np.ndarray:
    return np.clip(y, lo, hi).astype(dtype)


def _check_symmetric_weight(call: Call) -> None:
    q = call.inputs[1].quant
    call.expect(q is not None and not any(q.zero_point),
                f"weight {call.inputs[1].name!r} must be symmetric (zero point 0)")


def _requantize(call: Call, acc: np.ndarray, channel_axis: int) -> np.ndarray:
    """int32 accumulator -> output: per-channel fixed-point scaling, offset, activation clamp."""
    multiplier, shift, out_offset, lo, hi = call.lowered(
        "multiplier", "shift", "output_offset", "act_min", "act_max")
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    m = np.asarray(multiplier, dtype=np.int64).reshape(shape)
    s = np.asarray(shift, dtype=np.int64).reshape(shape)
    y = qm.multiply_by_quantized_multiplier(acc, m, s) + out_offset
    return _clamp(y, lo, hi, call.output.dtype)


def _finish_accumulator(call: Call, acc: np.ndarray, bias, channel_axis: int) -> np.ndarray:
    if bias is not None:
        shape = [1] * acc.ndim
        shape[channel_axis] = -1
        acc = acc + bias.astype(np.int64).reshape(shape)
    acc = qm.wrap_int32(acc)
    if call.output.dtype == "int32":  # raw accumulator (ConvInteger / MatMulInteger): no scaling
        return acc.astype(np.int32)
    return _requantize(call, acc, channel_axis)


def conv(call: Call, x, w, b=None) -> np.ndarray:
    a = call.attrs
    _check_symmetric_weight(call)
    (input_offset,) = call.lowered("input_offset")
    xs = win.to_nhwc(x, call.inputs[0].layout).astype(np.int64) + input_offset
    w_ohwi = win.weights_ohwi(w, call.inputs[1].layout).astype(np.int64)
    group = a["group"] if call.op.kind == "conv2d" else xs.shape[3]
    # Padding holds the input zero point, i.e. 0 once the offset is applied.
    acc = win.convolve(xs, w_ohwi, a["strides"], a["pads"], a["dilations"], group,
                       win.output_hw(call.output), 0, win.integer_matmul)
    y = _finish_accumulator(call, acc, b, channel_axis=3)
    return win.from_nhwc(y, call.output.layout)


def fully_connected(call: Call, x, w, b=None) -> np.ndarray:
    _check_symmetric_weight(call)
    (input_offset,) = call.lowered("input_offset")
    acc = win.integer_matmul(x.astype(np.int64) + input_offset, w.astype(np.int64).T)
    return _finish_accumulator(call, acc, b, channel_axis=1)


def matmul(call: Call, a, b) -> np.ndarray:
    input_offset, weight_offset = call.lowered("input_offset", "weight_offset")
    call.expect(call.output.dtype == "int32",
                "integer matmul produces the raw int32 accumulator; requantise it with a rescale")
    acc = win.integer_matmul(a.astype(np.int64) + input_offset, b.astype(np.int64) + weight_offset)
    return qm.wrap_int32(acc).astype(np.int32)


def add(call: Call, a, b) -> np.ndarray:
    (off1, off2, out_offset, left_shift, m1, s1, m2, s2, mo, so, lo, hi) = call.lowered(
        "input1_offset", "input2_offset", "output_offset", "left_shift", "input1_multiplier",
        "input1_shift", "input2_multiplier", "input2_shift", "output_multiplier", "output_shift",
        "act_min", "act_max")
    shifted1 = qm.wrap_int32((a.astype(np.int64) + off1) << left_shift)
    shifted2 = qm.wrap_int32((b.astype(np.int64) + off2) << left_shift)
    scaled1 = qm.multiply_by_quantized_multiplier(shifted1, m1, s1)
    scaled2 = qm.multiply_by_quantized_multiplier(shifted2, m2, s2)
    total = qm.wrap_int32(scaled1 + scaled2)
    y = qm.multiply_by_quantized_multiplier(total, mo, so) + out_offset
    return _clamp(y, lo, hi, call.output.dtype)


def mul(call: Call, a, b) -> np.ndarray:
    off1, off2, out_offset, mo, so, lo, hi = call.lowered(
        "input1_offset", "input2_offset", "output_offset", "output_multiplier", "output_shift",
        "act_min", "act_max")
    product = qm.wrap_int32((a.astype(np.int64) + off1) * (b.astype(np.int64) + off2))
    y = qm.multiply_by_quantized_multiplier(product, mo, so) + out_offset
    return _clamp(y, lo, hi, call.output.dtype)


def max_pool2d(call: Call, x) -> np.ndarray:
    a = call.attrs
    lo, hi = call.lowered("act_min", "act_max")
    xs = win.to_nhwc(x, call.inputs[0].layout).astype(np.int64)
    out = None
    # Padding holds a value below every element, so it never wins.
    for view, _ in win.pool_windows(xs, a["kernel"], a["strides"], a["pads"],
                                    win.output_hw(call.output), np.iinfo(np.int64).min):
        out = view if out is None else np.maximum(out, view)
    return win.from_nhwc(_clamp(out, lo, hi, call.output.dtype), call.output.layout)


def avg_pool2d(call: Call, x) -> np.ndarray:
    """Sum of the window divided by the element count, rounded half away from zero. The count is
    the number of real input elements, or the whole kernel with count_include_pad (padding then
    holds the zero point, the integer image of 0.0)."""
    a = call.attrs
    lo, hi = call.lowered("act_min", "act_max")
    # Padded positions add nothing unless they are counted, and then they hold the zero point.
    fill = call.inputs[0].quant.zero_point[0] if a["count_include_pad"] else 0
    xs = win.to_nhwc(x, call.inputs[0].layout).astype(np.int64)
    total = np.int64(0)
    count = np.int64(0)
    for view, inside in win.pool_windows(xs, a["kernel"], a["strides"], a["pads"],
                                         win.output_hw(call.output), fill):
        total = total + view
        count = count + inside.astype(np.int64)
    if a["count_include_pad"]:
        count = np.int64(a["kernel"][0] * a["kernel"][1])
    call.expect(bool(np.all(count > 0)), "a pooling window covers only padding; reduce the pads")
    half = count // 2
    avg = np.where(total > 0, (total + half) // count, -((-total + half) // count))
    return win.from_nhwc(_clamp(avg, lo, hi, call.output.dtype), call.output.layout)


def softmax(call: Call, x) -> np.ndarray:
    """int8 softmax in the gemmlowp fixed-point scheme (TFLite reference, CMSIS-NN arm_softmax_s8)."""
    multiplier, left_shift, diff_min = call.lowered("input_multiplier", "input_left_shift", "diff_min")
    call.expect(call.output.dtype == "int8", "integer softmax produces int8 (scale 1/256, zero point -128)")
    axis = call.attrs["axis"]
    rows = np.moveaxis(x.astype(np.int64), axis, -1)
    diff = rows - rows.max(axis=-1, keepdims=True)
    counted = diff >= diff_min
    # Q5.26 scaled differences; skipped ones are set to 0 only to keep the arithmetic defined.
    scaled = qm.saturating_rounding_doubling_high_mul(
        qm.wrap_int32(np.where(counted, diff, 0) << left_shift), multiplier)
    exps = qm.exp_on_negative_values(scaled, qm.SOFTMAX_DIFF_INTEGER_BITS)
    # Sum of exponentials in Q12.19.
    terms = qm.rounding_divide_by_pot(exps, qm.SOFTMAX_ACCUM_INTEGER_BITS)
    total = qm.wrap_int32(np.where(counted, terms, 0).sum(axis=-1, keepdims=True))
    # 1 / total: normalise total to [1, 2) as 1 + x, take 1 / (1 + x) in Q0.31, and remember how
    # many bits the normalisation moved (the maximal entry alone contributes 1.0, so total >= 2^19).
    bit_length = np.frexp(total.astype(np.float64))[1].astype(np.int64)
    headroom_plus_one = 32 - bit_length
    bits_over_unit = qm.SOFTMAX_ACCUM_INTEGER_BITS - headroom_plus_one
    shifted_minus_one = (total << headroom_plus_one) - (1 << 31)
    reciprocal = qm.one_over_one_plus_x_for_x_in_0_1(shifted_minus_one)
    # probability = reciprocal * exp in Q0.31; the output keeps its top 8 bits (scale 1/256).
    out_bits = 8
    probability = qm.rounding_divide_by_pot(
        qm.saturating_rounding_doubling_high_mul(reciprocal, exps), bits_over_unit + 31 - out_bits)
    y = np.where(counted, probability - 128, -128)
    return np.ascontiguousarray(np.moveaxis(_clamp(y, -128, 127, call.output.dtype), -1, axis))


def lut(call: Call, x) -> np.ndarray:
    table = np.asarray(call.attrs["table"], dtype=np.int64)
    call.expect(table.size == 256 and call.inputs[0].dtype == "int8",
                "lut needs an int8 input and a table of 256 entries")
    return _clamp(table[x.astype(np.int64) + 128], *_dtype_limits(call.output.dtype), call.output.dtype)


def _dtype_limits(dtype: str) -> tuple[int, int]:
    return qm.DTYPE_LIMITS[dtype]


def quantize(call: Call, x) -> np.ndarray:
    q = call.output.quant
    return qm.quantize(x, q.scale, q.zero_point, call.output.dtype, q.axis)


def rescale(call: Call, x) -> np.ndarray:
    multiplier, shift, in_offset, out_offset = call.lowered(
        "multiplier", "shift", "input_offset", "output_offset")
    y = qm.multiply_by_quantized_multiplier(qm.wrap_int32(x.astype(np.int64) + in_offset),
                                            multiplier[0], shift[0]) + out_offset
    return _clamp(y, *_dtype_limits(call.output.dtype), call.output.dtype)


KERNELS = {
    "conv2d": conv, "depthwise_conv2d": conv, "fully_connected": fully_connected, "matmul": matmul,
    "add": add, "mul": mul, "max_pool2d": max_pool2d, "avg_pool2d": avg_pool2d, "softmax": softmax,
    "lut": lut, "quantize": quantize, "rescale": rescale,
}
