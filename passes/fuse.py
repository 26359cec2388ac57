"""fuse: fold activations and explicit zero padding into the op that does the work."""
from __future__ import annotations

import math

from tinyc.ir import Graph, Op
from tinyc.ops import attr
from tinyc.passes import register

from ._patterns import IndexedGraph, apply_rule, producer, remove_op, sole_reader, take_over_output

# Ops whose kernels apply an activation to their own output (an `activation` attribute).
ACTIVATION_HOSTS = ("conv2d", "depthwise_conv2d", "fully_connected", "add", "mul", "max_pool2d",
                    "avg_pool2d")
CONVS = ("conv2d", "depthwise_conv2d")


@register("fuse")
def fuse(graph: Graph) -> Graph:
    """Fused activations and paddings; same numbers.

    Guarantees, in float and integer graphs alike:
    - a float `relu` or `clip` whose input is written by conv2d / depthwise_conv2d / fully_connected /
      add / mul / max_pool2d / avg_pool2d with activation "none", and read by nothing else (and not a
      graph output), is removed and the producer gets activation "relu" (relu, clip(0, +inf)),
      "relu6" (clip(0, 6)) or "clip" with clip_min/clip_max (other finite bounds); a clip with one
      infinite bound other than clip(0, +inf) is left alone, clip(-inf, +inf) is fused as no-op
      ("none"); the producer keeps its name and writes the activation's output;
    - a 4-D `pad` that pads only the two spatial axes with the real value 0 (value 0.0 in a float
      graph, value == the zero point in an integer graph) and whose output is read only by a conv2d /
      depthwise_conv2d as its data input is removed and its pads are added to the conv's pads;
    - everything else (e.g. an integer op with nothing to fuse) is left as it is."""
    g = IndexedGraph(graph.copy())
    apply_rule(g, _fuse_activation)
    apply_rule(g, _fuse_pad)
    return g.graph


def _activation_of(op: Op) -> dict | None:
    """The producer attributes equivalent to a relu/clip op, or None if it has no fused form."""
    if op.kind == "relu":
        return {"activation": "relu"}
    lo, hi = float(attr(op, "min")), float(attr(op, "max"))
    if lo == -math.inf and hi == math.inf:
        return {"activation": "none"}
    if lo == 0.0 and hi == math.inf:
        return {"activation": "relu"}
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo > hi:
        return None
    if lo == 0.0 and hi == 6.0:
        return {"activation": "relu6"}
    return {"activation": "clip", "clip_min": lo, "clip_max": hi}


def _fuse_activation(g: IndexedGraph, op: Op) -> bool:
    if op.kind not in ("relu", "clip") or g.values[op.outputs[0]].dtype != "float32":
        return False
    x = op.inputs[0]
    host = producer(g, x)
    if host is None or host.kind not in ACTIVATION_HOSTS or attr(host, "activation") != "none":
        return False
    if sole_reader(g, x) is not op or g.values[x].dtype != "float32":
        return False
    fused = _activation_of(op)
    if fused is None:
        return False
    host.attrs.update(fused)
    take_over_output(g, host, op)
    return True


def _pad_value_is_zero(g: IndexedGraph, pad: Op) -> bool:
    value = float(attr(pad, "value"))
    x = g.values[pad.inputs[0]]
    if x.dtype == "float32":
        return value == 0.0
    q = x.quant
    return q is not None and q.axis is None and value == float(q.zero_point[0])


def _fuse_pad(g: IndexedGraph, op: Op) -> bool:
    if op.kind != "pad":
        return False
    x = g.values[op.inputs[0]]
    if len(x.shape) != 4:
        return False
    conv = sole_reader(g, op.outputs[0])
    if conv is None or conv.kind not in CONVS or conv.inputs[0] != op.outputs[0]:
        return False
    if not _pad_value_is_zero(g, op):
        return False
    h_ax, w_ax = (1, 2) if x.layout == "NHWC" else (2, 3)
    pads = list(op.attrs["pads"])
    begins, ends = pads[:4], pads[4:]
    if any(begins[i] or ends[i] for i in range(4) if i not in (h_ax, w_ax)):
        return False
    top, left, bottom, right = attr(conv, "pads")
    conv.attrs["pads"] = [top + begins[h_ax], left + begins[w_ax], bottom + ends[h_ax],
                          right + ends[w_ax]]
    g.set_inputs(conv, [op.inputs[0], *conv.inputs[1:]])
    remove_op(g, op)
    del g.values[op.outputs[0]]
    return True
