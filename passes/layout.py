"""The `layout` pass: run the graph's activations in NHWC (what CMSIS-NN kernels read) instead of NCHW.

Each value has a *logical* tensor (what the ONNX model means) and, after this pass, a *physical* one
(the bytes the generated code holds): either the logical tensor itself, or for 4-D activations the
logical tensor transposed by (0, 2, 3, 1). Ops are rewritten op by op from the representation of their
inputs; wherever an op needs a representation its input does not have, a transpose is inserted.
A final clean-up composes transposes, turns transposes that move only size-1 axes into reshapes (same
bytes), merges reshapes and drops identities, so the transposes that remain are the ones the model's
semantics need (an interface in NCHW, an NCHW flatten of a tensor with spatial size > 1).
"""
from __future__ import annotations

import heapq
import itertools
from dataclasses import replace
from typing import Sequence

import numpy as np

from tinyc.ir import Graph, Op, QuantParams, Value, unique_name
from tinyc.ops import moves_only_unit_axes
from tinyc.passes import register

from ._patterns import IndexedGraph

TO_NHWC = (0, 2, 3, 1)
TO_NCHW = (0, 3, 1, 2)

# Ops whose shape rule reads the activation's layout (tinyc.ops.spatial_axes).
LAYOUT_READERS = ("conv2d", "depthwise_conv2d", "max_pool2d", "avg_pool2d", "global_avg_pool",
                  "batch_norm")
# Element-wise ops with one input: they compute the same thing in any layout.
LAYOUT_FREE_UNARY = ("relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_swish", "lut", "quantize",
                     "dequantize", "rescale", "identity")
# How each convolution's OIHW weight is permuted for CMSIS-NN, and the layout it then has.
WEIGHT_PERMS = {"conv2d": ((0, 2, 3, 1), "OHWI"), "depthwise_conv2d": ((1, 2, 3, 0), "IHWO")}


# ---- permutation arithmetic ----------------------------------------------------------------------
def compose(first: Sequence[int], then: Sequence[int]) -> tuple[int, ...]:
    """The one perm p with x.transpose(first).transpose(then) == x.transpose(p)."""
    return tuple(first[i] for i in then)


def inverse(perm: Sequence[int]) -> tuple[int, ...]:
    inv = [0] * len(perm)
    for i, p in enumerate(perm):
        inv[p] = i
    return tuple(inv)


def permute(items: Sequence, perm: Sequence[int]) -> tuple:
    return tuple(items[p] for p in perm)


def permuted_quant(quant: QuantParams | None, perm: Sequence[int]) -> QuantParams | None:
    """Quantisation of x.transpose(perm) given x's: a per-axis axis follows its axis."""
    if quant is None or quant.axis is None:
        return quant
    return replace(quant, axis=list(perm).index(quant.axis))


def lifted_quant(quant: QuantParams | None, lift: int) -> QuantParams | None:
    """Quantisation of a value after `lift` leading axes of size 1 are added (or -lift removed)."""
    if quant is None or quant.axis is None:
        return quant
    return replace(quant, axis=quant.axis + lift)


def transposed_value(v: Value, name: str, perm: Sequence[int], layout: str) -> Value:
    data = None if v.data is None else np.ascontiguousarray(v.data.transpose(perm))
    return Value(name, permute(v.shape, perm), v.dtype, layout, permuted_quant(v.quant, perm), data)


# ---- the rewrite ---------------------------------------------------------------------------------
class _NhwcRewriter:
    """Rebuilds the op list of `graph` (a private copy) with NHWC activations."""

    def __init__(self, graph: Graph) -> None:
        self.g = graph
        self.logical = {name: replace(v) for name, v in graph.values.items()}
        self.graph_outputs = set(graph.outputs)
        self.ops: list[Op] = []
        self.op_names = {op.name for op in graph.ops}
        # original value name -> (name of the value holding it now, is that value NHWC?)
        self.current: dict[str, tuple[str, bool]] = {}
        self.other_form: dict[tuple[str, bool], str] = {}
        self.weights: dict[tuple[str, str], str] = {}
        self.selected = self._select_activations()
        # value -> the ops of the graph reading it (while the ops are rewritten, one may stop
        # reading a constant, never start: a superset to filter, instead of a scan of every op)
        self.readers: dict[str, list[Op]] = {}
        for op in graph.ops:
            for name in dict.fromkeys(op.inputs):
                self.readers.setdefault(name, []).append(op)

    # which 4-D values are activations to hold in NHWC
    def _select_activations(self) -> set[str]:
        touched_by_reader: set[str] = set()
        for op in self.g.ops:
            if op.kind in LAYOUT_READERS:
                touched_by_reader.update([op.inputs[0], op.outputs[0]])
        return {name for name, v in self.g.values.items()
                if not v.is_const and len(v.shape) == 4
                and (v.layout == "NCHW" or (v.layout == "" and name in touched_by_reader))}

    def run(self) -> Graph:
        g = self.g
        for v in g.values.values():
            if v.is_const:
                self.current[v.name] = (v.name, False)
        for name in g.inputs:
            self.current[name] = (name, False)
            if name in self.selected:
                # The interface stays NCHW: convert once, right after the input.
                self.current[name] = (self.as_form(name, True), True)
                self.other_form[(name, False)] = name
        for op in g.ops:
            self.handler_for(op)(op)
        for name in g.outputs:
            held, nhwc = self.current[name]
            if nhwc and name not in g.inputs:
                self.emit_transpose(held, name, TO_NCHW, f"{name}_to_nchw")
        g.ops = self.ops
        simplify_moves(g)
        g.remove_dead()
        return g

    def handler_for(self, op: Op):
        if op.kind in LAYOUT_FREE_UNARY:
            return self._op_follow_input
        if op.kind in ("add", "mul"):
            return self._op_broadcasting
        if op.kind in LAYOUT_READERS:
            x = self.logical[op.inputs[0]]
            reads_nchw = len(x.shape) == 4 and x.layout != "NHWC"
            return self._op_layout_reader if reads_nchw else self._op_generic
        return {"concat": self._op_concat, "pad": self._op_pad, "softmax": self._op_softmax,
                "reshape": self._op_reshape, "transpose": self._op_transpose}.get(op.kind, self._op_generic)

    # -- value bookkeeping --
    def op_name(self, base: str) -> str:
        name = unique_name(base, self.op_names)
        self.op_names.add(name)
        return name

    def emit(self, kind: str, name: str, inputs: list[str], output: str, attrs: dict) -> None:
        self.ops.append(Op(kind, name, inputs, [output], attrs))

    def emit_transpose(self, src: str, dst: str, perm: Sequence[int], op_base: str) -> None:
        self.emit("transpose", self.op_name(op_base), [src], dst, {"perm": list(perm)})

    def new_value(self, base: str, shape: Sequence[int], like: Value, layout: str,
                  quant: QuantParams | None) -> str:
        name = self.g.fresh_name(base)
        self.g.add_value(Value(name, tuple(shape), like.dtype, layout, quant))
        return name

    def as_form(self, name: str, nhwc: bool) -> str:
        """The name of a value holding original value `name` in NHWC (or logical) form; inserts a
        transpose (or transposes a constant now) the first time another form is asked for."""
        held, held_nhwc = self.current[name]
        if held_nhwc == nhwc:
            return held
        if (name, nhwc) in self.other_form:
            return self.other_form[(name, nhwc)]
        v = self.g.values[held]
        perm = TO_NHWC if nhwc else TO_NCHW
        layout = "NHWC" if nhwc else self.logical[name].layout
        base = f"{name}_nhwc" if nhwc else f"{name}_nchw"
        if v.is_const:
            out = self.g.add_value(transposed_value(v, self.g.fresh_name(base), perm, layout)).name
        else:
            out = self.new_value(base, permute(v.shape, perm), v, layout, permuted_quant(v.quant, perm))
            self.emit_transpose(held, out, perm, f"{name}_to_{'nhwc' if nhwc else 'nchw'}")
        self.other_form[(name, nhwc)] = out
        return out

    def define_output(self, name: str, nhwc: bool) -> str:
        """Declare the form of an op's output; returns the name the op writes."""
        if not nhwc:
            self.current[name] = (name, False)
            return name
        v = self.g.values[name]
        shape, quant = permute(v.shape, TO_NHWC), permuted_quant(v.quant, TO_NHWC)
        if name in self.graph_outputs:
            # The output keeps its ONNX shape; the op writes an NHWC twin transposed at the end.
            held = self.new_value(f"{name}_nhwc", shape, v, "NHWC", quant)
        else:
            v.shape, v.layout, v.quant = shape, "NHWC", quant
            held = name
        self.current[name] = (held, True)
        return held

    def is_nhwc(self, name: str) -> bool:
        return self.current[name][1]

    # -- op handlers --
    def _op_generic(self, op: Op) -> None:
        """Any op that reads its operands' axes as ONNX defines them: give it logical operands."""
        op.inputs = [self.as_form(n, False) if n else n for n in op.inputs]
        op.outputs = [self.define_output(op.outputs[0], False)]
        self.ops.append(op)

    def _op_layout_reader(self, op: Op) -> None:
        x, *params = op.inputs
        inputs = [self.as_form(x, True)]
        if op.kind in WEIGHT_PERMS:
            inputs.append(self.conv_weight(params[0], op.kind))
            params = params[1:]
        inputs += [self.as_form(n, False) if n else n for n in params]
        op.inputs = inputs
        op.outputs = [self.define_output(op.outputs[0], True)]
        self.ops.append(op)

    def conv_weight(self, name: str, kind: str) -> str:
        v = self.g.values[self.current[name][0]]
        if v.layout not in ("", "OIHW"):
            return v.name  # already in a CMSIS-NN layout
        key = (name, kind)
        if key not in self.weights:
            perm, layout = WEIGHT_PERMS[kind]
            if v.is_const:
                # Only convolutions of this kind read it, as their weight: transform it in place.
                only_here = name not in self.graph_outputs and all(
                    op.kind == kind and [i for i, n in enumerate(op.inputs) if n == name] == [1]
                    for op in self.readers.get(name, ()) if name in op.inputs)
                new = transposed_value(v, name if only_here else self.g.fresh_name(f"{name}_{layout}"),
                                       perm, layout)
                if only_here:
                    self.g.values[name] = new
                else:
                    self.g.add_value(new)
                self.weights[key] = new.name
            else:
                out = self.new_value(f"{name}_{layout}", permute(v.shape, perm), v, layout,
                                     permuted_quant(v.quant, perm))
                self.emit_transpose(v.name, out, perm, f"{name}_to_{layout}")
                self.weights[key] = out
        return self.weights[key]

    def _op_follow_input(self, op: Op) -> None:
        x = op.inputs[0]
        nhwc = self.is_nhwc(x)
        op.inputs = [self.current[x][0]]
        op.outputs = [self.define_output(op.outputs[0], nhwc)]
        self.ops.append(op)

    def _op_broadcasting(self, op: Op) -> None:
        if not any(self.is_nhwc(n) for n in op.inputs) or len(self.g.values[op.outputs[0]].shape) != 4:
            return self._op_generic(op)
        op.inputs = [self.broadcast_operand_nhwc(n) for n in op.inputs]
        op.outputs = [self.define_output(op.outputs[0], True)]
        self.ops.append(op)

    def broadcast_operand_nhwc(self, name: str) -> str:
        """An operand of add/mul whose other operand is NHWC, in a form that broadcasts the same way
        against NHWC (a constant [C,1,1] becomes [1,1,C])."""
        if self.is_nhwc(name):
            return self.current[name][0]
        v = self.g.values[self.current[name][0]]
        if v.size == 1 and (v.quant is None or v.quant.axis is None):
            return v.name  # a scalar broadcasts the same in any layout
        rank = len(v.shape)
        lift = 4 - rank
        if v.is_const:
            if (name, None) in self.other_form:
                return self.other_form[(name, None)]
            data = v.data.reshape((1,) * lift + v.shape).transpose(TO_NHWC)
            quant = permuted_quant(lifted_quant(v.quant, lift), TO_NHWC)
            # Drop the leading 1s the lift added (broadcasting adds them back): [C,1,1] -> [1,1,C].
            drop = 0
            while data.ndim - drop > rank and data.shape[drop] == 1:
                drop += 1
            data = np.ascontiguousarray(data.reshape(data.shape[drop:]))
            quant = lifted_quant(quant, -drop)
            new = self.g.add_const(f"{name}_nhwc", data, "NHWC" if data.ndim == 4 else "", quant)
            self.other_form[(name, None)] = new.name
            return new.name
        if rank < 4:
            # Lift to 4-D NCHW first (a reshape), then transpose like any activation.
            lifted = self.new_value(f"{name}_4d", (1,) * lift + v.shape, v, "", lifted_quant(v.quant, lift))
            self.emit("reshape", self.op_name(f"{name}_to_4d"), [v.name], lifted,
                      {"shape": list(self.g.values[lifted].shape)})
            self.logical[lifted] = replace(self.g.values[lifted])
            self.current[lifted] = (lifted, False)
            return self.as_form(lifted, True)
        return self.as_form(name, True)

    def _op_concat(self, op: Op) -> None:
        if not any(self.is_nhwc(n) for n in op.inputs):
            return self._op_generic(op)
        op.inputs = [self.as_form(n, True) for n in op.inputs]
        op.attrs["axis"] = inverse(TO_NHWC)[op.attrs["axis"] % 4]
        op.outputs = [self.define_output(op.outputs[0], True)]
        self.ops.append(op)

    def _op_pad(self, op: Op) -> None:
        if self.is_nhwc(op.inputs[0]):
            pads = list(op.attrs["pads"])
            op.attrs["pads"] = list(permute(pads[:4], TO_NHWC) + permute(pads[4:], TO_NHWC))
        self._op_follow_input(op)

    def _op_softmax(self, op: Op) -> None:
        if self.is_nhwc(op.inputs[0]):
            op.attrs["axis"] = inverse(TO_NHWC)[op.attrs.get("axis", -1) % 4]
        self._op_follow_input(op)

    def wants_nhwc(self, name: str) -> bool:
        return name in self.selected and name not in self.graph_outputs

    def _op_reshape(self, op: Op) -> None:
        x, y = op.inputs[0], op.outputs[0]
        src = self.as_form(x, False)  # a reshape follows the logical (NCHW) element order
        if not self.wants_nhwc(y):
            self.emit("reshape", op.name, [src], self.define_output(y, False), op.attrs)
            return
        v = self.g.values[y]
        flat = self.new_value(f"{y}_nchw", v.shape, v, v.layout, v.quant)
        self.emit("reshape", op.name, [src], flat, op.attrs)
        self.emit_transpose(flat, self.define_output(y, True), TO_NHWC, f"{y}_to_nhwc")

    def _op_transpose(self, op: Op) -> None:
        x, y = op.inputs[0], op.outputs[0]
        held, x_nhwc = self.current[x]
        # physical x -> logical x -> logical y (-> NHWC y), as one permutation
        perm = tuple(op.attrs["perm"])
        if x_nhwc:
            perm = compose(TO_NCHW, perm)
        choices = [(False, perm)]
        if len(perm) == 4 and y not in self.graph_outputs:
            choices.append((True, compose(perm, TO_NHWC)))
        shape = self.g.values[held].shape
        # Hold y in the form that leaves the least to move (the layout change often undoes the
        # model's own transpose); on a tie, in the form its label asks for.
        into_nhwc, perm = min(choices, key=lambda c: (_move_cost(shape, c[1]),
                                                      c[0] != self.wants_nhwc(y)))
        self.emit("transpose", op.name, [held], self.define_output(y, into_nhwc), {"perm": list(perm)})


def _move_cost(shape: Sequence[int], perm: Sequence[int]) -> int:
    """0 when the transpose will be free (identity, or a reshape), 1 when it moves bytes."""
    return 0 if moves_only_unit_axes(shape, perm) else 1


# ---- clean-up of data movement -------------------------------------------------------------------
def simplify_moves(g: Graph) -> None:
    """Rewrite transposes and reshapes until none of these applies: transpose of a transpose ->
    one transpose; transpose moving only size-1 axes -> reshape; reshape of a reshape -> one reshape;
    reshape to the same shape -> nothing; a float transpose next to a per-tensor quantize or
    dequantize -> the transpose on the int8 side. Keeps the graph's inputs and outputs.

    Each step rewrites the first op (in op order) that one of these applies to, then drops the ops
    and values left dead. Rescanning the whole graph after every step made this quadratic in
    models with a transpose per layer, so a heap holds the ops still to look at, in op order: all
    of them at first, then again every op next to one a step changed (whether a rule applies to
    an op depends only on it, its input's writer and the readers of its input and output). The
    first op the heap yields that a rule applies to is the one a rescan would find."""
    _MoveSimplifier(g).run()


class _MoveSimplifier:
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.ix = IndexedGraph(g)
        self.ix.on_edit = self.edited
        self.heap: list[tuple[int, int, Op]] = []
        self.pushes = itertools.count()   # tie-break, so ops themselves are never compared
        self.keys_seen = self.ix.renumbered
        self.touched: set[str] = set()    # values whose readers or writer an edit changed
        for op in g.ops:
            self.push(op)

    def push(self, op: Op) -> None:
        if self.ix.contains(op):
            heapq.heappush(self.heap, (self.ix.order_key(op), next(self.pushes), op))

    def edited(self, op: Op) -> None:
        """Called before and after every edit of `op`: it and its neighbours are looked at again."""
        ix = self.ix
        neighbours = [op, *(ix.producer(n) for n in op.inputs if n),
                      *(r for n in op.inputs + op.outputs if n for r in ix.readers(n))]
        for other in neighbours:
            if other is not None:
                self.push(other)
        self.touched.update(n for n in op.inputs + op.outputs if n)

    def run(self) -> None:
        cleaned = False
        while self.heap:
            if self.ix.renumbered != self.keys_seen:  # keys changed: order the heap by the new ones
                self.keys_seen = self.ix.renumbered
                ops = [op for _, _, op in self.heap]
                self.heap = []
                for op in ops:
                    self.push(op)
                continue
            key, _, op = heapq.heappop(self.heap)
            if not self.ix.contains(op) or self.ix.order_key(op) != key:
                continue  # removed, or moved (pushed again at its new place)
            if not _simplify(self.ix, op, self.edited):
                continue
            if cleaned:
                self.drop_dead()
            else:  # as Graph.remove_dead, which the first step also owes what was dead before it
                self.drop_all_dead()
                cleaned = True

    def drop_dead(self) -> None:
        """Remove the ops and values the last step left unread (nothing was dead before it)."""
        g, ix = self.g, self.ix
        while self.touched:
            name = self.touched.pop()
            writer = ix.producer(name)
            if writer is not None and not any(ix.is_read(o) or o in g.outputs for o in writer.outputs):
                ix.remove(writer)  # touches the writer's inputs in turn
            elif writer is None and not ix.is_read(name) and name not in g.inputs + g.outputs:
                g.values.pop(name, None)

    def drop_all_dead(self) -> None:
        g = self.g
        live = set(g.outputs)
        dead = []
        for op in reversed(g.ops):
            if any(o in live for o in op.outputs):
                live.update(n for n in op.inputs if n)
            else:
                dead.append(op)
        for op in dead:
            self.ix.remove(op)
        referenced = set(g.inputs) | set(g.outputs)
        for op in g.ops:
            referenced.update(op.inputs + op.outputs)
        for name in [n for n in g.values if n not in referenced]:
            del g.values[name]
        self.touched.clear()


def _simplify(ix: IndexedGraph, op: Op, edited) -> bool:
    """Apply the first rule that fits `op` (calling `edited` for a change that is not an input or
    output edit); False when none does."""
    g = ix.graph
    if op.kind not in ("transpose", "reshape"):
        return False
    src = ix.producer(op.inputs[0])
    if op.kind == "transpose" and src is not None and src.kind == "transpose":
        op.attrs["perm"] = list(compose(src.attrs["perm"], op.attrs["perm"]))
        ix.set_inputs(op, [src.inputs[0]])
        return True
    if op.kind == "transpose" and moves_only_unit_axes(g.values[op.inputs[0]].shape, op.attrs["perm"]):
        op.kind, op.attrs = "reshape", {"shape": list(g.values[op.outputs[0]].shape)}
        edited(op)
        return True
    if op.kind == "reshape" and src is not None and src.kind == "reshape":
        ix.set_inputs(op, [src.inputs[0]])
        return True
    if op.kind == "reshape" and _drop_identity_reshape(ix, op, edited):
        return True
    if op.kind == "transpose" and _move_int8_side(ix, op):
        return True
    return False


def _move_int8_side(ix: IndexedGraph, op: Op) -> bool:
    """Quantize before a transpose and dequantize after one: the transpose then moves int8 bytes
    instead of four times as many float bytes (both orders compute the same values exactly)."""
    g = ix.graph
    src = ix.producer(op.inputs[0])
    readers = ix.readers(op.outputs[0])
    if (len(readers) == 1 and readers[0].kind == "quantize" and op.outputs[0] not in g.outputs
            and g.values[readers[0].outputs[0]].quant.axis is None):
        quantize, x, y = readers[0], g.values[op.inputs[0]], g.values[readers[0].outputs[0]]
        moved = g.add_value(Value(g.fresh_name(f"{y.name}_before_transpose"), x.shape, y.dtype,
                                  x.layout, y.quant))
        old = op.outputs[0]
        ix.set_inputs(quantize, [x.name])
        ix.set_outputs(quantize, [moved.name])
        ix.set_inputs(op, [moved.name])
        ix.set_outputs(op, [y.name])
        ix.remove(quantize)
        ix.insert(ix.index_of(op), [quantize])
        del g.values[old]
        return True
    if (src is not None and src.kind == "dequantize" and ix.readers(src.outputs[0]) == [op]
            and src.outputs[0] not in g.outputs and g.values[src.inputs[0]].quant.axis is None):
        q, y = g.values[src.inputs[0]], g.values[op.outputs[0]]
        moved = g.add_value(Value(g.fresh_name(f"{q.name}_transposed"), y.shape, q.dtype, y.layout,
                                  q.quant))
        old = src.outputs[0]
        ix.set_inputs(op, [q.name])
        ix.set_outputs(op, [moved.name])
        ix.set_inputs(src, [moved.name])
        ix.set_outputs(src, [y.name])
        ix.remove(src)
        ix.insert(ix.index_of(op) + 1, [src])
        del g.values[old]
        return True
    return False


def _drop_identity_reshape(ix: IndexedGraph, op: Op, edited) -> bool:
    g = ix.graph
    src, dst = g.values[op.inputs[0]], g.values[op.outputs[0]]
    if src.shape != dst.shape:
        return False
    writer = ix.producer(src.name)
    # src can take dst's place (be written under dst's name, or take dst's label) when nothing
    # else reads it and its writer's kernel does not read its own output's label.
    src_is_private = (writer is not None and src.name not in g.inputs and src.name not in g.outputs
                      and ix.readers(src.name) == [op]
                      and (writer.kind not in LAYOUT_READERS or src.layout == dst.layout))
    if dst.name in g.outputs:
        if not src_is_private or src.dtype != dst.dtype or src.quant != dst.quant:
            return False
        ix.remove(op)
        ix.set_outputs(writer, [dst.name])
        return True
    if src.layout != dst.layout and any(c.kind in LAYOUT_READERS for c in ix.readers(dst.name)):
        if not src_is_private:
            return False  # the reshape relabels the bytes for a conv or pool: keep it
        src.layout = dst.layout
        edited(op)
    ix.remove(op)
    ix.replace_uses(dst.name, src.name)
    return True


@register("layout")
def to_nhwc(graph: Graph) -> Graph:
    """Hold 4-D activations in NHWC, the layout CMSIS-NN kernels read.

    Guarantees: every 4-D NCHW activation (and every 4-D "" activation a conv/pool reads or writes)
    is NHWC (shape permuted, per-axis quant axis moved); conv2d weights are OHWI and depthwise weights
    IHWO [1, KH, KW, C_out] (constants transposed now, quant axis 0 -> 0 and 0 -> 3); concat and
    softmax axes, pad pads and broadcasting operands of add/mul follow. ONNX transposes are composed
    with the layout change; reshapes keep ONNX's element order (a transpose back to NCHW is inserted
    only where NCHW and NHWC order differ). Inputs and outputs keep their ONNX names, shapes and
    layouts (a transpose, or a reshape when only size-1 axes move, sits at the boundary). Afterwards
    no transpose follows a transpose, no transpose moves only size-1 axes, no reshape follows a
    reshape, and a reshape keeps its shape only to relabel an interface value's bytes as NHWC for a
    conv or pool. Op names are kept (a model's transposes and reshapes may vanish); the result
    verifies.
    """
    return _NhwcRewriter(graph.copy()).run()
