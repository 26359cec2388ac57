"""Hypothesis strategies for tinyc graphs, and an exact graph comparison for property tests.

`graphs()` draws random graphs that pass tinyc.verify.verify: float ops and integer (int8, quantised)
ops of every kind in tinyc.ops, random shapes, attributes (defaults sometimes spelled out, sometimes
omitted) and constants, several inputs and outputs, and branches that join again (add, mul and concat
read earlier values). Values flow float -> quantize -> int8 -> dequantize -> float, so one graph mixes
both forms. Names are plain identifiers or arbitrary text (slashes, quotes, newlines, unicode).

Import from tests as `from strategies import graphs, assert_graphs_equal`.
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable

import numpy as np
from hypothesis import strategies as st

from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import ACTIVATIONS, ShapeError, broadcast_shapes, infer_shapes, spatial_axes

SIMPLE_NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)
# Any text, including characters the printer must quote or escape.
ODD_NAMES = st.text(min_size=1, max_size=10) | st.sampled_from(
    ["model/conv;relu", 'quote"d', "back\\slash", "new\nline", "tab\t", "ünïcødé", "%@{}", "1x2xf32"])
ATTR_FLOATS = st.floats(-8.0, 8.0) | st.sampled_from(
    [math.inf, -math.inf, -0.0, 0.0, 1e-300, 5e-324, 1e300, 0.1, 1.0, 3.0, math.nan])
SCALES = (st.floats(2.0 ** -20, 16.0) |
          st.floats(2.0 ** -20, 16.0).map(lambda s: float(np.float32(s))) |
          st.sampled_from([1.0, 1 / 256, 0.5847030282020569, 0.1]))
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8)
DTYPE_RANGE = {"int8": (-128, 127), "uint8": (0, 255), "int16": (-32768, 32767)}


def _is_float(v: Value) -> bool:
    return v.dtype == "float32"


def _is_q8(v: Value) -> bool:
    """An int8 activation with per-tensor quantisation: what integer ops read."""
    return v.dtype == "int8" and v.quant is not None and v.quant.per_tensor


def _numeric(v: Value) -> bool:
    return _is_float(v) or _is_q8(v)


class _Draft:
    """A graph under construction plus the drawing helpers the op generators share."""

    def __init__(self, draw: Callable, names: st.SearchStrategy) -> None:
        self.draw = draw
        self.names = names
        self.rng = np.random.default_rng(draw(st.integers(0, 2 ** 32 - 1)))
        self.graph = Graph(draw(names), {}, [], [], [])
        self.activations: list[Value] = []  # values ops may read (inputs and op outputs)

    # -- small draws -------------------------------------------------------------------------------
    def int(self, lo: int, hi: int) -> int:
        return self.draw(st.integers(lo, hi))

    def flag(self) -> bool:
        return self.draw(st.booleans())

    def pick(self, options: list) -> Any:
        return self.draw(st.sampled_from(options))

    def name(self) -> str:
        return self.graph.fresh_name(self.draw(self.names))

    def quant(self, dtype: str = "int8") -> QuantParams:
        lo, hi = DTYPE_RANGE.get(dtype, (0, 0))
        zero_point = 0 if dtype == "int16" else self.int(lo, hi)
        return QuantParams.tensor(self.draw(SCALES), zero_point)

    def channel_quant(self, count: int, axis: int) -> QuantParams:
        """Symmetric weight quantisation, per tensor or per slice of `axis`."""
        if self.flag():
            return QuantParams.tensor(self.draw(SCALES), 0)
        scales = self.draw(st.lists(SCALES, min_size=count, max_size=count))
        return QuantParams(tuple(scales), (0,) * count, axis)

    def maybe(self, attrs: dict, key: str, value: Any, default: Any) -> None:
        """Set the attribute, or leave it out when it equals its default (half of the time)."""
        if value != default or self.flag():
            attrs[key] = value

    def activation(self, attrs: dict) -> None:
        act = self.pick(list(ACTIVATIONS))
        self.maybe(attrs, "activation", act, "none")
        if act == "clip":
            attrs["clip_min"] = self.draw(st.floats(-6.0, 0.0))
            attrs["clip_max"] = self.draw(st.floats(0.5, 6.0))

    # -- data --------------------------------------------------------------------------------------
    def float_data(self, shape: tuple[int, ...], positive: bool = False) -> np.ndarray:
        data = self.rng.standard_normal(shape).astype(np.float32)
        if positive:
            return np.abs(data) + np.float32(0.5)
        if data.size and self.draw(st.integers(0, 4)) == 0:
            special = self.pick([np.nan, np.inf, -np.inf, -0.0, 1e-45, 3.4028235e38])
            data.reshape(-1)[self.int(0, data.size - 1)] = special
        return data

    def int_data(self, shape: tuple[int, ...], dtype: str) -> np.ndarray:
        info = np.iinfo(dtype)
        return self.rng.integers(int(info.min), int(info.max) + 1, size=shape, dtype=dtype)

    def const(self, data: np.ndarray, layout: str = "", quant: QuantParams | None = None) -> Value:
        return self.graph.add_const(self.draw(self.names), data, layout, quant)

    def weight(self, x: Value, shape: tuple[int, ...], layout: str = "", axis: int = 0) -> Value:
        """A weight matching x's form: float32, or int8 with symmetric quantisation."""
        if _is_float(x):
            return self.const(self.float_data(shape), layout)
        return self.const(self.int_data(shape, "int8"), layout, self.channel_quant(shape[axis], axis))

    def bias(self, x: Value, w: Value, count: int) -> Value:
        if _is_float(x):
            return self.const(self.float_data((count,)))
        quant = None
        if self.flag():
            scales = [x.quant.scale[0] * (w.quant.scale[0] if w.quant.per_tensor else w.quant.scale[c])
                      for c in range(count)]
            quant = QuantParams(tuple(scales), (0,) * count, 0)
        return self.const(self.int_data((count,), "int32"), "", quant)

    # -- values and ops ----------------------------------------------------------------------------
    def add_input(self, floating: bool, integer: bool) -> None:
        rank = self.pick([4, 4, 2, 2, 3, 1])
        if rank == 4:
            shape = (self.int(1, 2), self.int(1, 4), self.int(1, 6), self.int(1, 6))
            layout = self.pick(["NCHW", "NHWC"])
        else:
            shape, layout = tuple(self.int(1, 6) for _ in range(rank)), ""
        use_float = floating and (not integer or self.flag())
        dtype, quant = ("float32", None) if use_float else ("int8", self.quant())
        value = self.graph.add_value(Value(self.name(), shape, dtype, layout, quant))
        self.graph.inputs.append(value.name)
        self.activations.append(value)

    def emit(self, kind: str, inputs: list[Value], attrs: dict, dtype: str,
             quant: QuantParams | None, layout: str | None = None) -> Value:
        """Append the op, declaring its output with the shape the op table infers."""
        op = Op(kind, self.draw(self.names), [v.name for v in inputs], [], attrs)
        (shape,) = infer_shapes(op, inputs)
        if layout is None:
            layout = inputs[0].layout if len(shape) == 4 and len(inputs[0].shape) == 4 else ""
        out = self.graph.add_value(Value(self.name(), shape, dtype, layout, quant))
        op.outputs = [out.name]
        self.graph.ops.append(op)
        self.activations.append(out)
        return out

    def emit_like(self, kind: str, x: Value, inputs: list[Value], attrs: dict,
                  int_out: QuantParams | None = None, layout: str | None = None) -> Value:
        """Float in, float out; int8 in, int8 out with `int_out` quantisation (default: a new one)."""
        if _is_float(x):
            return self.emit(kind, inputs, attrs, "float32", None, layout)
        return self.emit(kind, inputs, attrs, "int8", int_out or self.quant(), layout)


def _kernel(d: _Draft, extent: int, pad_total: int, dilation: int = 1) -> int:
    """A kernel size whose dilated window fits the padded extent."""
    largest = (extent + pad_total - 1) // dilation + 1
    return d.int(1, min(3, largest))


def _window_attrs(d: _Draft, attrs: dict, x: Value, dilated: bool) -> tuple[int, int]:
    _, h_ax, w_ax = spatial_axes(x.layout)
    pads = [d.int(0, 2) for _ in range(4)]
    strides = [d.int(1, 2), d.int(1, 2)]
    dilations = [d.int(1, 2), d.int(1, 2)] if dilated else [1, 1]
    kh = _kernel(d, x.shape[h_ax], pads[0] + pads[2], dilations[0])
    kw = _kernel(d, x.shape[w_ax], pads[1] + pads[3], dilations[1])
    d.maybe(attrs, "pads", pads, [0, 0, 0, 0])
    d.maybe(attrs, "strides", strides, [1, 1])
    if dilated:
        d.maybe(attrs, "dilations", dilations, [1, 1])
    return kh, kw


def _requant_attrs(d: _Draft, attrs: dict, x: Value, out: QuantParams | None, channels: int) -> None:
    """Sometimes add the attributes the requantize pass would compute (types only matter here)."""
    if out is None or not d.flag():
        return
    n = d.pick([1, channels])
    attrs["multiplier"] = [d.int(2 ** 30, 2 ** 31 - 1) for _ in range(n)]
    attrs["shift"] = [d.int(-31, 30) for _ in range(n)]
    attrs["input_offset"] = -x.quant.zero_point[0]
    attrs["output_offset"] = out.zero_point[0]
    attrs["act_min"], attrs["act_max"] = -128, 127


def _accumulator_out(d: _Draft, x: Value) -> tuple[str, QuantParams | None]:
    if _is_float(x):
        return "float32", None
    return ("int32", None) if d.draw(st.integers(0, 5)) == 0 else ("int8", d.quant())


def gen_conv(d: _Draft, x: Value, kind: str) -> None:
    attrs: dict = {}
    c_ax = spatial_axes(x.layout)[0]
    cin = x.shape[c_ax]
    kh, kw = _window_attrs(d, attrs, x, dilated=True)
    if kind == "conv2d":
        group = d.pick([g for g in range(1, cin + 1) if cin % g == 0])
        cout, cin_g = group * d.int(1, 3), cin // group
        d.maybe(attrs, "group", group, 1)
        layout = d.pick(["OIHW", "OHWI", ""])
    else:
        mult = d.int(1, 2)
        cout, cin_g = cin * mult, 1
        d.maybe(attrs, "depth_multiplier", mult, 1)
        layout = d.pick(["OIHW", "IHWO"])
    shape = {"OIHW": (cout, cin_g, kh, kw), "": (cout, cin_g, kh, kw), "OHWI": (cout, kh, kw, cin_g),
             "IHWO": (cin_g, kh, kw, cout)}[layout]
    w = d.weight(x, shape, layout, axis=3 if layout == "IHWO" else 0)
    inputs = [x, w] + ([d.bias(x, w, cout)] if d.flag() else [])
    d.activation(attrs)
    dtype, quant = _accumulator_out(d, x)
    _requant_attrs(d, attrs, x, quant, cout)
    d.emit(kind, inputs, attrs, dtype, quant)


def gen_fully_connected(d: _Draft, x: Value, kind: str) -> None:
    attrs: dict = {}
    out_features = d.int(1, 6)
    w = d.weight(x, (out_features, x.shape[1]))
    inputs = [x, w] + ([d.bias(x, w, out_features)] if d.flag() else [])
    d.activation(attrs)
    dtype, quant = _accumulator_out(d, x)
    _requant_attrs(d, attrs, x, quant, out_features)
    d.emit(kind, inputs, attrs, dtype, quant)


def gen_gemm(d: _Draft, x: Value, kind: str) -> None:
    attrs: dict = {}
    trans_a, trans_b = d.flag(), d.flag()
    k = x.shape[0] if trans_a else x.shape[1]
    n = d.int(1, 5)
    b = d.const(d.float_data((n, k) if trans_b else (k, n)))
    inputs = [x, b] + ([d.const(d.float_data((n,)))] if d.flag() else [])
    d.maybe(attrs, "trans_a", trans_a, False)
    d.maybe(attrs, "trans_b", trans_b, False)
    d.maybe(attrs, "alpha", d.draw(ATTR_FLOATS), 1.0)
    d.maybe(attrs, "beta", d.draw(ATTR_FLOATS), 1.0)
    d.emit(kind, inputs, attrs, "float32", None)


def gen_matmul(d: _Draft, x: Value, kind: str) -> None:
    attrs: dict = {}
    b = d.weight(x, (x.shape[-1], d.int(1, 5)))
    dtype, quant = _accumulator_out(d, x)
    if not _is_float(x) and d.flag():
        attrs["input_offset"] = -x.quant.zero_point[0]
        attrs["weight_offset"] = 0
    d.emit(kind, [x, b], attrs, dtype, quant, layout="")


def gen_batch_norm(d: _Draft, x: Value, kind: str) -> None:
    c = x.shape[spatial_axes(x.layout)[0] if len(x.shape) == 4 else 1]
    params = [d.const(d.float_data((c,))) for _ in range(3)]
    params.append(d.const(d.float_data((c,), positive=True)))
    attrs: dict = {}
    d.maybe(attrs, "epsilon", d.pick([1e-5, 1e-3, 0.0010000000474974513]), 1e-5)
    d.emit(kind, [x, *params], attrs, "float32", None)


def _broadcasts(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    try:
        broadcast_shapes(a, b)
        return True
    except ShapeError:
        return False


def gen_elementwise(d: _Draft, x: Value, kind: str) -> None:
    """add / mul of x with an earlier value (a join) or with a constant."""
    attrs: dict = {}
    partners = [v for v in d.activations if (_is_float(v) == _is_float(x)) and _numeric(v)
                and _broadcasts(v.shape, x.shape)]
    if d.flag():
        other = d.pick(partners)  # x itself is always a partner
    else:
        rank = len(x.shape)
        shapes = [x.shape, (1,), x.shape[-1:]]
        if rank == 4:
            c_ax = spatial_axes(x.layout)[0]
            shapes.append(tuple(x.shape[c_ax] if i == c_ax else 1 for i in range(1, 4)))
        shape = d.pick(shapes)
        other = (d.const(d.float_data(shape)) if _is_float(x)
                 else d.const(d.int_data(shape, "int8"), "", d.quant()))
    inputs = [x, other] if d.flag() else [other, x]
    d.activation(attrs)
    quant = None if _is_float(x) else d.quant()
    if quant is not None and d.flag():
        lowered = (["input1_offset", "input2_offset", "output_offset", "left_shift", "input1_multiplier",
                    "input1_shift", "input2_multiplier", "input2_shift", "output_multiplier",
                    "output_shift", "act_min", "act_max"] if kind == "add" else
                   ["input1_offset", "input2_offset", "output_offset", "output_multiplier", "output_shift",
                    "act_min", "act_max"])
        for key in lowered:
            attrs[key] = d.int(-(2 ** 31), 2 ** 31 - 1)
    layout = inputs[0].layout if len(inputs[0].shape) == 4 else x.layout
    out_rank = max(len(v.shape) for v in inputs)
    d.emit_like(kind, x, inputs, attrs, quant, layout=layout if out_rank == 4 else "")


def gen_unary_float(d: _Draft, x: Value, kind: str) -> None:
    attrs: dict = {}
    if kind == "clip":
        d.maybe(attrs, "min", d.draw(ATTR_FLOATS), -math.inf)
        d.maybe(attrs, "max", d.draw(ATTR_FLOATS), math.inf)
    elif kind == "leaky_relu":
        d.maybe(attrs, "alpha", d.draw(ATTR_FLOATS), 0.01)
    d.emit(kind, [x], attrs, "float32", None)


def gen_lut(d: _Draft, x: Value, kind: str) -> None:
    table = [int(t) for t in d.int_data((256,), "int8")]
    d.emit(kind, [x], {"table": table}, "int8", d.quant())


def gen_pool(d: _Draft, x: Value, kind: str) -> None:
    attrs: dict = {}
    kh, kw = _window_attrs(d, attrs, x, dilated=False)
    attrs["kernel"] = [kh, kw]
    d.activation(attrs)
    if kind == "avg_pool2d":
        d.maybe(attrs, "count_include_pad", d.flag(), False)
    if not _is_float(x) and d.flag():
        attrs["act_min"], attrs["act_max"] = d.int(-128, 0), d.int(0, 127)
    d.emit_like(kind, x, [x], attrs, x.quant)


def gen_global_avg_pool(d: _Draft, x: Value, kind: str) -> None:
    d.emit(kind, [x], {}, "float32", None)


def gen_softmax(d: _Draft, x: Value, kind: str) -> None:
    attrs: dict = {}
    rank = len(x.shape)
    d.maybe(attrs, "axis", d.int(-rank, rank - 1), -1)
    d.maybe(attrs, "beta", d.pick([1.0, 0.5, 2.0]), 1.0)
    if _is_float(x):
        d.emit(kind, [x], attrs, "float32", None)
        return
    if d.flag():
        attrs.update(input_multiplier=d.int(2 ** 30, 2 ** 31 - 1), input_left_shift=d.int(0, 31),
                     diff_min=d.int(-(2 ** 31), 0))
    d.emit(kind, [x], attrs, "int8", QuantParams.tensor(1 / 256, -128))


def gen_concat(d: _Draft, x: Value, kind: str) -> None:
    """Concatenate x with earlier values (a join), itself, or constants along one axis."""
    rank = len(x.shape)
    axis = d.int(-rank, rank - 1)
    ax = axis % rank

    def fits(v: Value) -> bool:
        return (v.dtype == x.dtype and v.quant == x.quant and len(v.shape) == rank and
                all(v.shape[i] == x.shape[i] for i in range(rank) if i != ax))

    inputs = [x]
    for _ in range(d.int(0, 2)):
        if d.flag():
            inputs.append(d.pick([v for v in d.activations if fits(v)]))  # x always fits
        else:
            shape = tuple(d.int(1, 3) if i == ax else s for i, s in enumerate(x.shape))
            data = d.float_data(shape) if _is_float(x) else d.int_data(shape, "int8")
            inputs.append(d.const(data, x.layout, x.quant))
    d.emit_like(kind, x, d.draw(st.permutations(inputs)), {"axis": axis}, x.quant)


def gen_reshape(d: _Draft, x: Value, kind: str) -> None:
    size = x.size
    shape = d.pick([(size,), (1, size), tuple(reversed(x.shape)), x.shape + (1,), (1,) + x.shape])
    layout = d.pick(["", "NCHW", "NHWC"]) if len(shape) == 4 else ""
    d.emit_like(kind, x, [x], {"shape": list(shape)}, x.quant, layout=layout)


def gen_transpose(d: _Draft, x: Value, kind: str) -> None:
    perm = d.draw(st.permutations(range(len(x.shape))))
    d.emit_like(kind, x, [x], {"perm": list(perm)}, x.quant, layout="")


def gen_pad(d: _Draft, x: Value, kind: str) -> None:
    attrs: dict = {"pads": [d.int(0, 2) for _ in range(2 * len(x.shape))]}
    value = d.draw(ATTR_FLOATS) if _is_float(x) else float(x.quant.zero_point[0])
    d.maybe(attrs, "value", value, 0.0)
    d.emit_like(kind, x, [x], attrs, x.quant)


def gen_identity(d: _Draft, x: Value, kind: str) -> None:
    d.emit_like(kind, x, [x], {}, x.quant)


def gen_quantize(d: _Draft, x: Value, kind: str) -> None:
    dtype = d.pick(["int8", "int8", "uint8", "int16"])
    d.emit(kind, [x], {}, dtype, d.quant(dtype))


def gen_dequantize(d: _Draft, x: Value, kind: str) -> None:
    d.emit(kind, [x], {}, "float32", None)


def gen_rescale(d: _Draft, x: Value, kind: str) -> None:
    dtype = d.pick(["int8", "int8", "uint8"])
    attrs: dict = {}
    if d.flag():
        attrs.update(multiplier=[d.int(2 ** 30, 2 ** 31 - 1)], shift=[d.int(-31, 30)],
                     input_offset=-x.quant.zero_point[0], output_offset=d.int(-128, 127))
    d.emit(kind, [x], attrs, dtype, d.quant(dtype))


def _rank4(v: Value) -> bool:
    return len(v.shape) == 4


# For every op kind: which values it can read as its first input, and how to draw the rest.
GENERATORS: dict[str, tuple[Callable[[Value], bool], Callable[[_Draft, Value, str], None]]] = {
    "conv2d": (lambda v: _rank4(v) and _numeric(v), gen_conv),
    "depthwise_conv2d": (lambda v: _rank4(v) and _numeric(v), gen_conv),
    "fully_connected": (lambda v: len(v.shape) == 2 and _numeric(v), gen_fully_connected),
    "gemm": (lambda v: len(v.shape) == 2 and _is_float(v), gen_gemm),
    "matmul": (lambda v: len(v.shape) >= 2 and _numeric(v), gen_matmul),
    "batch_norm": (lambda v: len(v.shape) in (2, 4) and _is_float(v), gen_batch_norm),
    "add": (_numeric, gen_elementwise),
    "mul": (_numeric, gen_elementwise),
    **{k: (_is_float, gen_unary_float)
       for k in ("relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_swish")},
    "lut": (_is_q8, gen_lut),
    "max_pool2d": (lambda v: _rank4(v) and _numeric(v), gen_pool),
    "avg_pool2d": (lambda v: _rank4(v) and _numeric(v), gen_pool),
    "global_avg_pool": (lambda v: _rank4(v) and _is_float(v), gen_global_avg_pool),
    "softmax": (lambda v: len(v.shape) >= 1 and _numeric(v), gen_softmax),
    "concat": (lambda v: len(v.shape) >= 1 and _numeric(v), gen_concat),
    "reshape": (_numeric, gen_reshape),
    "transpose": (_numeric, gen_transpose),
    "pad": (lambda v: len(v.shape) >= 1 and _numeric(v), gen_pad),
    "identity": (_numeric, gen_identity),
    "quantize": (_is_float, gen_quantize),
    "dequantize": (lambda v: v.quant is not None, gen_dequantize),
    "rescale": (lambda v: v.quant is not None, gen_rescale),
}


@st.composite
def graphs(draw, max_ops: int = 8, max_inputs: int = 3, max_outputs: int = 3, floating: bool = True,
           integer: bool = True, odd_names: bool = True, kinds: tuple[str, ...] | None = None) -> Graph:
    """A random graph that verifies.

    floating / integer: allow float32 and int8 (quantised) values; with only one of them the graph
    stays in that form (no quantize / dequantize). odd_names: names of arbitrary text as well as plain
    identifiers. kinds: restrict the op kinds (default: all of tinyc.ops).
    """
    names = SIMPLE_NAMES | ODD_NAMES if odd_names else SIMPLE_NAMES
    d = _Draft(draw, names)
    for _ in range(d.int(1, max_inputs)):
        d.add_input(floating, integer)
    allowed = sorted(kinds or GENERATORS)
    if not (floating and integer):
        allowed = [k for k in allowed if k not in ("quantize", "dequantize")]
    for _ in range(d.int(1, max_ops)):
        usable = [k for k in allowed if any(GENERATORS[k][0](v) for v in d.activations)]
        if not usable:
            break
        kind = d.pick(usable)
        accepts, generate = GENERATORS[kind]
        generate(d, d.pick([v for v in d.activations if accepts(v)]), kind)
    last = d.activations[-1].name
    others = draw(st.lists(st.sampled_from([v.name for v in d.activations]), unique=True,
                           max_size=max_outputs - 1))
    outputs = [last] + [n for n in others if n != last]
    d.graph.outputs = draw(st.permutations(outputs))
    d.graph.meta = draw(st.dictionaries(st.text(max_size=6), JSON, max_size=3))
    return d.graph


# ---- exact comparison ----------------------------------------------------------------------------

def _exact(x: Any) -> Any:
    """A key equal for two attribute values exactly when they are the same in type and bits
    (so 1 != 1.0 != True, -0.0 != 0.0, nan == nan); tuples count as lists."""
    if isinstance(x, (list, tuple)):
        return ("list", [_exact(v) for v in x])
    if isinstance(x, float):
        return ("float", x.hex() if math.isfinite(x) else repr(x))
    return (type(x).__name__, x)


def _value_key(v: Value) -> tuple:
    quant = None
    if v.quant is not None:
        quant = ([s.hex() if math.isfinite(s) else repr(s) for s in v.quant.scale],
                 list(v.quant.zero_point), v.quant.axis)
    data = None
    if v.data is not None:
        data = (str(v.data.dtype), tuple(v.data.shape), np.ascontiguousarray(v.data).tobytes())
    return v.name, v.shape, v.dtype, v.layout, quant, data


def assert_graphs_equal(a: Graph, b: Graph) -> None:
    """Assert a and b are the same graph: names, interface, every value (quant scales and constant
    bytes bit-exact), every op in order with attributes equal in type and bits, and meta (as JSON)."""
    assert a.name == b.name
    assert a.inputs == b.inputs
    assert a.outputs == b.outputs
    assert json.dumps(a.meta, sort_keys=True) == json.dumps(b.meta, sort_keys=True)
    assert sorted(a.values) == sorted(b.values)
    for name in a.values:
        assert _value_key(a.values[name]) == _value_key(b.values[name]), f"value {name!r} differs"
    assert len(a.ops) == len(b.ops)
    for op_a, op_b in zip(a.ops, b.ops):
        assert (op_a.kind, op_a.name, op_a.inputs, op_a.outputs) == (op_b.kind, op_b.name, op_b.inputs,
                                                                     op_b.outputs)
        assert {k: _exact(v) for k, v in op_a.attrs.items()} == {k: _exact(v) for k, v in op_b.attrs.items()}, \
            f"attributes of op {op_a.name!r} differ"
