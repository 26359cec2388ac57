"""The plan-memory pass: arena offsets for the values and scratch buffers of IR graphs.

Plans are checked by `assert_plan_sound`, which replays the schedule and follows every byte written,
independently of the planner: a value read at a step (or a graph output at the end) must not have been
overwritten since it was written, except by an op the plan lists as in place writing exactly over it.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import graphs

from tinyc import targets
from tinyc.errors import TinycError
from tinyc.frontend import load_model
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.memplan import STRATEGIES
from tinyc.ops import broadcast_shapes
from tinyc.passes import DEFAULT_PIPELINE
from tinyc.passes import get as get_pass
from tinyc.passes import plan_memory as plan_memory_module
from tinyc.passes.plan_memory import (KernelMemory, TargetMemory, plan_graph, plan_graph_for,
                                      target_memory)
from tinyc.verify import verify

# ---- graph building ----------------------------------------------------------------------------


class Builder:
    """Small float graphs over 2-D values: fully connected, unary ops, add, reshape."""

    def __init__(self) -> None:
        self.values: dict[str, Value] = {}
        self.ops: list[Op] = []
        self.inputs: list[str] = []

    def input(self, name: str, shape: tuple[int, ...]) -> str:
        self.values[name] = Value(name, shape, "float32")
        self.inputs.append(name)
        return name

    def _op(self, kind: str, name: str, inputs: list[str], out_shape: tuple[int, ...],
            **attrs) -> str:
        self.values[name] = Value(name, out_shape, "float32")
        self.ops.append(Op(kind, name, inputs, [name], attrs))
        return name

    def fc(self, name: str, x: str, features: int) -> str:
        rows, k = self.values[x].shape
        w = Value(f"{name}_w", (features, k), "float32", data=np.ones((features, k), np.float32))
        self.values[w.name] = w
        return self._op("fully_connected", name, [x, w.name], (rows, features))

    def unary(self, kind: str, name: str, x: str) -> str:
        return self._op(kind, name, [x], self.values[x].shape)

    def add(self, name: str, a: str, b: str) -> str:
        return self._op("add", name, [a, b],
                        broadcast_shapes(self.values[a].shape, self.values[b].shape))

    def reshape(self, name: str, x: str, shape: tuple[int, ...]) -> str:
        return self._op("reshape", name, [x], shape, shape=list(shape))

    def graph(self, outputs: list[str]) -> Graph:
        g = Graph("test", dict(self.values), list(self.ops), list(self.inputs), list(outputs))
        verify(g)
        return g


def fake_target(alignment: int = 4, scratch: dict[str, int] | None = None,
                in_place_kinds: tuple[str, ...] = ()) -> TargetMemory:
    """Reshape is a view; ops of `in_place_kinds` may write over any of their inputs."""
    scratch = scratch or {}

    def kernel_memory(op: Op, graph: Graph) -> KernelMemory:
        in_place = tuple(range(len(op.inputs))) if op.kind in in_place_kinds else ()
        return KernelMemory(scratch_bytes=scratch.get(op.name, 0), in_place_inputs=in_place,
                            is_view=op.kind == "reshape")
    return TargetMemory(alignment, kernel_memory)


# ---- independent soundness check ---------------------------------------------------------------

RASTER_GROUP = 4  # output pixels CMSIS-NN's general convolution computes together (targets/kernels.py)


def assert_raster_overlap_safe(graph: Graph, op: Op, out_lo: int, in_lo: int,
                               group: int = RASTER_GROUP) -> None:
    """A convolution whose output overlaps its input is safe when, computing pixels in raster order
    `group` at a time, no group writes a byte that it or a later group still reads. Checked here by
    walking every tap of every window (dilation and padding included)."""
    x, w, y = (graph.values[n] for n in op.inputs[:2] + op.outputs[:1])
    item = np.dtype(x.dtype).itemsize
    n, h, wd, c = x.shape
    _, oh, ow, oc = y.shape
    kh, kw = w.shape[1], w.shape[2]
    sh, sw = op.attrs.get("strides", [1, 1])
    dh, dw = op.attrs.get("dilations", [1, 1])
    pt, pl = op.attrs.get("pads", [0, 0, 0, 0])[:2]
    lowest = []
    for b in range(n):
        for oy in range(oh):
            for ox in range(ow):
                taps = [((b * h + iy) * wd + ix) * c * item
                        for iy in (oy * sh - pt + ky * dh for ky in range(kh)) if 0 <= iy < h
                        for ix in (ox * sw - pl + kx * dw for kx in range(kw)) if 0 <= ix < wd]
                lowest.append(min(taps) if taps else 1 << 60)
    for start in range(0, len(lowest), group):
        written_end = out_lo + min(start + group, len(lowest)) * oc * item
        assert written_end <= in_lo + min(lowest[start:]), (
            f"{op.name}: pixels {start}.. write up to byte {written_end}, input still read from "
            f"byte {in_lo + min(lowest[start:])}")

def assert_plan_sound(graph: Graph, plan: dict, is_view: Callable[[Op], bool],
                      raster_group: Callable[[Op], int] = lambda op: RASTER_GROUP) -> None:
    """`raster_group(op)`: how many output pixels the op's kernel computes together (the kernel's
    documented contract; the byte-level safety of the overlap is checked here tap by tap)."""
    align, arena = plan["alignment"], plan["arena_bytes"]
    assert arena % align == 0

    def where(name: str) -> tuple[str, int]:
        if name in plan["offsets"]:
            assert name not in plan["external"], f"{name} is both in the arena and external"
            return "arena", plan["offsets"][name]
        return f"caller:{plan['external_buffer'][name]}", 0

    def extent(name: str) -> tuple[str, int, int]:
        space, lo = where(name)
        return space, lo, lo + graph.values[name].nbytes

    for name, off in plan["offsets"].items():
        assert off % align == 0 and off + graph.values[name].nbytes <= arena, name
    for entry in plan["scratch"].values():
        assert entry["offset"] % align == 0 and entry["offset"] + entry["size"] <= arena

    def overlap(a: tuple[str, int, int], b: tuple[str, int, int]) -> bool:
        return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]

    written_at = {name: -1 for name in graph.inputs}
    writes: list[tuple[int, tuple[str, int, int], str]] = []

    def assert_intact(name: str, step: int) -> None:
        for when, span, what in writes:
            if written_at[name] < when < step and overlap(span, extent(name)):
                raise AssertionError(f"{name} (written at step {written_at[name]}) is overwritten by "
                                     f"{what} at step {when} before it is read at step {step}")

    for step, op in enumerate(graph.ops):
        reads = [n for n in op.inputs if n and not graph.values[n].is_const]
        for name in reads:
            assert_intact(name, step)
        out = op.outputs[0]
        if is_view(op):
            if graph.values[op.inputs[0]].is_const:
                assert out not in plan["offsets"]
            else:
                assert where(out) == where(op.inputs[0]), f"view {out} does not share its input's bytes"
                written_at[out] = written_at[op.inputs[0]]
            continue
        out_span = extent(out)
        assert not out_span[0].startswith("caller:") or plan["external"][out] == "output", \
            f"{op.name} writes into the caller's input buffer"
        for name in reads:
            if overlap(out_span, extent(name)):
                if op.name in plan.get("overlapped", []) and name == op.inputs[0]:
                    assert_raster_overlap_safe(graph, op, out_span[1], extent(name)[1], raster_group(op))
                    continue
                assert op.name in plan["in_place"] and where(name) == where(out), \
                    f"{op.name} writes its output over its input {name} without being in place"
        writes.append((step, out_span, f"{op.name}'s output"))
        written_at[out] = step
        if op.name in plan["scratch"]:
            entry = plan["scratch"][op.name]
            span = ("arena", entry["offset"], entry["offset"] + entry["size"])
            for name in [*reads, out]:
                assert not overlap(span, extent(name)), f"{op.name}'s scratch overlaps {name}"
            writes.append((step, span, f"{op.name}'s scratch"))
    for out in graph.outputs:
        assert_intact(out, len(graph.ops))
        if out in plan["output_copies"]:
            assert where(out) == where(plan["output_copies"][out])
            assert where(out) != (f"caller:{out}", 0)
        else:
            assert where(out) == (f"caller:{out}", 0), f"output {out} is not in its caller buffer"
    assert plan["arena_bytes"] >= plan["lower_bound"]
    json.dumps(plan)  # JSON-able


def plan_and_check(graph: Graph, target: TargetMemory, strategy: str = "best") -> dict:
    plan = plan_graph_for(graph, target, strategy)
    assert_plan_sound(graph, plan, lambda op: target.kernel_memory(op, graph).is_view)
    return plan


# ---- views -------------------------------------------------------------------------------------

def test_reshape_chain_costs_no_bytes():
    b = Builder()
    x = b.input("x", (1, 64))
    h = b.fc("fc1", x, 32)                       # 128 bytes
    r1 = b.reshape("r1", h, (2, 16))
    r2 = b.reshape("r2", r1, (4, 8))
    r3 = b.reshape("r3", r2, (1, 32))
    y = b.fc("fc2", r3, 10)
    plan = plan_and_check(b.graph([y]), fake_target())
    assert plan["arena_bytes"] == 128 == plan["lower_bound"]
    assert plan["offsets"] == {"fc1": 0, "r1": 0, "r2": 0, "r3": 0}
    assert plan["views"] == {"r1": "fc1", "r2": "fc1", "r3": "fc1"}
    assert plan["external"] == {"x": "input", "fc2": "output"}


def test_view_keeps_its_source_alive_until_the_view_is_read():
    b = Builder()
    x = b.input("x", (1, 16))
    a = b.fc("a", x, 16)                          # 64 bytes, read only through the view r
    r = b.reshape("r", a, (4, 4))
    c = b.fc("c", x, 16)                          # written while r (= a's bytes) is still needed
    d = b.add("d", b.reshape("rc", c, (4, 4)), r)
    plan = plan_and_check(b.graph([d]), fake_target())
    assert plan["offsets"]["a"] == plan["offsets"]["r"] != plan["offsets"]["c"]
    assert plan["arena_bytes"] == 128


def test_graph_output_that_is_a_view_of_the_input_is_copied():
    b = Builder()
    x = b.input("x", (2, 8))
    y = b.reshape("y", x, (4, 4))
    plan = plan_and_check(b.graph([y]), fake_target())
    assert plan["arena_bytes"] == 0 and plan["offsets"] == {}
    assert plan["external"] == {"x": "input", "y": "input"}
    assert plan["external_buffer"] == {"x": "x", "y": "x"}
    assert plan["output_copies"] == {"y": "x"}


def test_second_output_viewing_the_first_is_copied_from_it():
    b = Builder()
    x = b.input("x", (1, 16))
    y = b.fc("y", x, 16)
    z = b.reshape("z", y, (4, 4))
    plan = plan_and_check(b.graph([y, z]), fake_target())
    assert plan["external"] == {"x": "input", "y": "output", "z": "output"}
    assert plan["output_copies"] == {"z": "y"}
    assert plan["arena_bytes"] == 0


def test_op_writes_straight_into_the_caller_output_through_a_view():
    b = Builder()
    x = b.input("x", (1, 16))
    h = b.fc("h", x, 16)
    y = b.reshape("y", h, (4, 4))
    plan = plan_and_check(b.graph([y]), fake_target())
    assert plan["external_buffer"] == {"x": "x", "h": "y", "y": "y"}
    assert plan["output_copies"] == {} and plan["arena_bytes"] == 0


# ---- external buffers and lifetimes ------------------------------------------------------------

def test_inputs_and_outputs_take_no_arena_bytes():
    b = Builder()
    x = b.input("x", (1, 100))
    h1 = b.fc("h1", x, 50)            # 200 bytes, live steps 0..1
    h2 = b.fc("h2", h1, 30)           # 120 bytes, live steps 1..2
    y = b.fc("y", h2, 10)
    plan = plan_and_check(b.graph([y]), fake_target(alignment=16))
    assert set(plan["offsets"]) == {"h1", "h2"}
    assert plan["lower_bound"] == 208 + 128 == plan["arena_bytes"]
    assert plan["peak"] == {"step": 1, "op": "h2", "bytes": 336, "live": ["h1", "h2"], "scratch": []}
    assert plan["optimal"]


def test_values_live_at_different_steps_share_bytes():
    b = Builder()
    x = b.input("x", (1, 64))
    h = x
    for i in range(6):
        h = b.fc(f"fc{i}", h, 64)    # 256 bytes each, each read once by the next
    plan = plan_and_check(b.graph([h]), fake_target())
    assert plan["arena_bytes"] == 512 == plan["lower_bound"]
    assert len(set(plan["offsets"].values())) == 2


def test_value_read_later_stays_live():
    b = Builder()
    x = b.input("x", (1, 32))
    skip = b.fc("skip", x, 32)       # read again three steps later
    h = b.fc("h1", skip, 32)
    h = b.fc("h2", h, 32)
    y = b.add("y", h, skip)
    plan = plan_and_check(b.graph([y]), fake_target())
    assert plan["lower_bound"] == 3 * 128 == plan["arena_bytes"]
    assert plan["peak"]["live"] == ["skip", "h1", "h2"]


# ---- in place ----------------------------------------------------------------------------------

def test_in_place_op_writes_over_an_input_that_dies_there():
    b = Builder()
    x = b.input("x", (1, 64))
    h = b.fc("fc1", x, 64)
    s = b.unary("sigmoid", "act", h)
    y = b.fc("fc2", s, 8)
    graph = b.graph([y])
    plan = plan_and_check(graph, fake_target(in_place_kinds=("sigmoid",)))
    assert plan["in_place"] == ["act"]
    assert plan["offsets"]["act"] == plan["offsets"]["fc1"]
    assert plan["arena_bytes"] == 256
    separate = plan_and_check(graph, fake_target())
    assert separate["in_place"] == [] and separate["arena_bytes"] == 512


def test_in_place_narrowing_op_keeps_the_wider_buffer():
    b = Builder()
    x = b.input("x", (1, 64))
    h = b.fc("fc1", x, 64)                         # float32: 256 bytes
    b.values["q"] = Value("q", (1, 64), "int8", quant=QuantParams.tensor(0.1, 0))
    b.ops.append(Op("quantize", "quant", [h], ["q"]))
    b.values["d"] = Value("d", (1, 64), "float32")
    b.ops.append(Op("dequantize", "dequant", ["q"], ["d"]))
    y = b.fc("fc2", "d", 8)
    graph = b.graph([y])
    plan = plan_and_check(graph, fake_target(in_place_kinds=("quantize",)))
    assert plan["in_place"] == ["quant"]
    assert plan["offsets"]["q"] == plan["offsets"]["fc1"] != plan["offsets"]["d"]
    # the shared buffer stays 256 bytes while q (64 bytes) and d (256 bytes) are live
    assert plan["lower_bound"] == 512 == independent_lower_bound(graph, plan)


def test_no_in_place_while_the_input_is_still_needed_or_external():
    b = Builder()
    x = b.input("x", (1, 64))
    from_input = b.unary("sigmoid", "act0", x)   # input is the caller's: never overwritten
    h = b.fc("fc1", from_input, 64)
    s = b.unary("sigmoid", "act1", h)            # h is read again below
    y = b.add("y", s, h)
    plan = plan_and_check(b.graph([y]), fake_target(in_place_kinds=("sigmoid",)))
    assert plan["in_place"] == []
    assert plan["offsets"]["act1"] != plan["offsets"]["fc1"]


def test_in_place_add_chain_shares_one_buffer():
    b = Builder()
    x = b.input("x", (1, 32))
    a = b.fc("a", x, 32)
    c = b.fc("c", x, 32)
    s1 = b.add("s1", a, c)           # a and c die here: s1 takes a's buffer
    s2 = b.add("s2", s1, s1)         # s1 dies here: s2 takes it too
    y = b.fc("y", s2, 4)
    plan = plan_and_check(b.graph([y]), fake_target(in_place_kinds=("add",)))
    assert plan["in_place"] == ["s1", "s2"]
    assert plan["offsets"]["a"] == plan["offsets"]["s1"] == plan["offsets"]["s2"]
    assert plan["arena_bytes"] == 256


def test_in_place_takes_the_first_listed_input_that_dies():
    b = Builder()
    x = b.input("x", (1, 32))
    a = b.fc("a", x, 32)
    c = b.fc("c", x, 32)
    y = b.fc("y", b.add("s", a, c), 4)
    graph = b.graph([y])

    def target(order: tuple[int, ...]) -> TargetMemory:
        def kernel_memory(op: Op, g: Graph) -> KernelMemory:
            return KernelMemory(in_place_inputs=order if op.kind == "add" else ())
        return TargetMemory(4, kernel_memory)
    second_first = plan_and_check(graph, target((1, 0)))["offsets"]
    assert second_first["s"] == second_first["c"] != second_first["a"]
    first_only = plan_and_check(graph, target((0,)))["offsets"]
    assert first_only["s"] == first_only["a"] != first_only["c"]


def test_in_place_needs_an_output_no_larger_than_the_input():
    b = Builder()
    x = b.input("x", (1, 8))
    small = b.fc("small", x, 8)
    big = b.fc("big", x, 32)
    s = b.add("grow", b.reshape("sv", small, (8, 1)), b.reshape("bv", big, (1, 32)))  # [8, 32]
    y = b.fc("y", b.reshape("flat", s, (1, 256)), 2)
    plan = plan_and_check(b.graph([y]), fake_target(in_place_kinds=("add",)))
    assert plan["in_place"] == []


# ---- scratch -----------------------------------------------------------------------------------

def test_scratch_lives_only_at_its_op():
    b = Builder()
    x = b.input("x", (1, 64))
    h1 = b.fc("fc1", x, 64)                       # 256 bytes
    h2 = b.fc("fc2", h1, 64)
    h3 = b.fc("fc3", h2, 64)
    y = b.fc("fc4", h3, 4)
    target = fake_target(alignment=16, scratch={"fc2": 100, "fc4": 300})
    plan = plan_and_check(b.graph([y]), target)
    assert plan["scratch"]["fc2"]["size"] == 100 and plan["scratch"]["fc4"]["size"] == 300
    assert set(plan["scratch"]) == {"fc2", "fc4"}
    # step 1: fc1 + fc2 + 112; step 3: fc3 + 304
    assert plan["lower_bound"] == 512 + 112 == plan["arena_bytes"]
    assert plan["peak"] == {"step": 1, "op": "fc2", "bytes": 624, "live": ["fc1", "fc2"],
                            "scratch": ["fc2"]}


def test_scratch_reuses_bytes_of_dead_values():
    b = Builder()
    x = b.input("x", (1, 256))
    h1 = b.fc("fc1", x, 256)                      # 1 KiB, dead after step 1
    h2 = b.fc("fc2", h1, 16)
    y = b.fc("fc3", h2, 16)
    plan = plan_and_check(b.graph([y]), fake_target(scratch={"fc3": 1000}))
    assert plan["arena_bytes"] == 1024 + 64
    assert plan["scratch"]["fc3"]["offset"] + 1000 <= 1024 + 64


# ---- the pass ----------------------------------------------------------------------------------

def test_pass_attaches_the_plan_for_the_graph_target(monkeypatch):
    b = Builder()
    x = b.input("x", (1, 64))
    y = b.fc("fc2", b.fc("fc1", x, 64), 4)
    graph = b.graph([y])
    graph.meta["target"] = "fake-m"
    asked = []

    def fake_lookup(name: str) -> TargetMemory:
        asked.append(name)
        return fake_target(alignment=8, scratch={"fc2": 20})
    monkeypatch.setattr(plan_memory_module, "target_memory", fake_lookup)
    out = get_pass("plan-memory")(graph)
    assert asked == ["fake-m"]
    assert "memory_plan" not in graph.meta          # the argument is not mutated
    plan = out.meta["memory_plan"]
    assert plan == plan_graph_for(graph, fake_target(alignment=8, scratch={"fc2": 20}))
    assert plan["alignment"] == 8 and plan["arena_bytes"] == 256 + 24
    assert [op.name for op in out.ops] == ["fc1", "fc2"]
    verify(out)


def test_unknown_target_or_strategy_is_a_user_error():
    b = Builder()
    graph = b.graph([b.fc("y", b.input("x", (1, 4)), 4)])
    graph.meta["target"] = "pdp-11"
    with pytest.raises(TinycError, match="unknown target 'pdp-11'"):
        get_pass("plan-memory")(graph)
    with pytest.raises(TinycError, match="unknown memory planning strategy 'smallest'"):
        plan_graph_for(graph, fake_target(), "smallest")


def test_every_strategy_gives_a_sound_plan():
    b = Builder()
    x = b.input("x", (1, 40))
    a = b.fc("a", x, 24)
    c = b.fc("c", a, 40)
    d = b.fc("d", x, 8)
    e = b.add("e", b.fc("c2", c, 8), d)
    y = b.fc("y", b.reshape("ev", e, (1, 8)), 3)
    graph = b.graph([y])
    target = fake_target(alignment=16, scratch={"c": 40, "y": 200}, in_place_kinds=("add",))
    plans = {name: plan_and_check(graph, target, name) for name in STRATEGIES}
    assert plans["best"]["arena_bytes"] == min(p["arena_bytes"] for p in plans.values())
    assert plans["greedy_size"]["strategy"] == "greedy_size"


def test_repeated_op_names_are_refused():
    b = Builder()
    x = b.input("x", (1, 4))
    b.fc("same", x, 4)
    b.ops.append(Op("relu", "same", ["same"], ["other"]))
    b.values["other"] = Value("other", (1, 4), "float32")
    graph = Graph("g", b.values, b.ops, ["x"], ["other"])
    with pytest.raises(ValueError, match="repeated: same"):
        plan_graph_for(graph, fake_target())


# ---- random graphs -----------------------------------------------------------------------------

@st.composite
def graphs_and_targets(draw):
    """A random verified graph (unique op names, as the frontend guarantees) and a fake target whose
    kernels have random scratch sizes, in-place safety and views (reshape always, identity maybe)."""
    graph = draw(graphs(max_ops=10))
    for i, op in enumerate(graph.ops):
        op.name = f"op{i}"
    identity_is_view = draw(st.booleans())
    scratch = {op.name: draw(st.sampled_from([0, 0, 1, 7, 64, 300])) for op in graph.ops}
    in_place = {op.name: tuple(draw(st.permutations(range(len(op.inputs))))[:draw(st.integers(0, 2))])
                for op in graph.ops}
    alignment = draw(st.sampled_from([1, 4, 16]))

    def kernel_memory(op: Op, g: Graph) -> KernelMemory:
        view = op.kind == "reshape" or (op.kind == "identity" and identity_is_view)
        return KernelMemory(scratch_bytes=0 if view else scratch[op.name],
                            in_place_inputs=in_place[op.name], is_view=view)
    return graph, TargetMemory(alignment, kernel_memory)


def independent_lower_bound(graph: Graph, plan: dict) -> int:
    """Aligned bytes that must be reserved at the busiest step, from the plan's storage decisions:
    the buffers holding a value that is written at or before the step and still read at or after it
    (through views too; in-place ops join their output's buffer to the input's), plus the scratch
    of the op at that step."""
    align = plan["alignment"]
    producer_step = {out: s for s, op in enumerate(graph.ops) for out in op.outputs}
    source = dict(plan["views"])

    def origin(name: str) -> str:
        while name in source:
            name = source[name]
        return name

    reads: dict[str, list[int]] = {}
    for s, op in enumerate(graph.ops):
        for n in op.inputs:
            if n in plan["offsets"]:
                reads.setdefault(origin(n), []).append(s)
    # An in-place op's output shares its input's buffer, which keeps the larger size throughout.
    group = {origin(n): origin(n) for n in plan["offsets"]}

    def find(name: str) -> str:
        while group[name] != name:
            name = group[name]
        return name
    by_name = {op.name: op for op in graph.ops}
    for op_name in plan["in_place"]:
        op = by_name[op_name]
        out = origin(op.outputs[0])
        shared = [origin(n) for n in op.inputs if n in plan["offsets"] and
                  plan["offsets"][n] == plan["offsets"][out]]
        group[find(out)] = find(shared[0])
    # An overlapping op's output starts below its input in the same buffer.
    for op_name in plan.get("overlapped", []):
        op = by_name[op_name]
        group[find(origin(op.outputs[0]))] = find(origin(op.inputs[0]))
    # A buffer reserves the span its members' bytes cover.
    low: dict[str, int] = {}
    high: dict[str, int] = {}
    for root in group:
        g, off = find(root), plan["offsets"][root]
        low[g] = min(low.get(g, off), off)
        high[g] = max(high.get(g, off), off + graph.values[root].nbytes)
    reserved = {g: -(-(high[g] - low[g]) // align) * align for g in low}
    best = 0
    for s, op in enumerate(graph.ops):
        live = set()
        for root in group:
            born = producer_step[root]
            if born <= s <= max(reads.get(root, [born])):
                live.add(find(root))
        live_bytes = sum(reserved[g] for g in live)
        scratch = plan["scratch"].get(op.name, {"size": 0})["size"]
        best = max(best, live_bytes + -(-scratch // align) * align)
    return best


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs_and_targets())
def test_random_graphs_get_sound_plans(graph_and_target):
    graph, target = graph_and_target
    plan = plan_and_check(graph, target)
    assert plan["lower_bound"] == independent_lower_bound(graph, plan)
    assert set(plan["in_place"]) <= {op.name for op in graph.ops
                                     if target.kernel_memory(op, graph).in_place_inputs}
    touched = {n for op in graph.ops for n in [*op.inputs, *op.outputs]} | set(graph.inputs)
    for name in touched:
        if name in graph.values and not graph.values[name].is_const:
            assert (name in plan["offsets"]) != (name in plan["external"]), name


# ---- the MLPerf Tiny models on a real target ---------------------------------------------------

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf_tiny"
# TensorFlow Lite Micro's arena for the same int8 models (its bookkeeping included).
TFLM_ARENA = {"kws/kws_ref_model_qop.onnx": 22820, "vww/vww_96_int8_qop.onnx": 100708,
              "ic/pretrainedResnet_quant_qop.onnx": 54996, "ad/ad01_int8_qop.onnx": 2580,
              "sww/str_ww_ref_model_qop.onnx": None}


def lowered_model(relative: str) -> Graph:
    """The model lowered by the default pipeline, with its Cortex-M4 kernels selected."""
    path = MODELS / relative
    if not path.exists():
        pytest.skip(f"{path} is not available")
    graph = load_model(str(path))
    for name in DEFAULT_PIPELINE:
        graph = get_pass(name)(graph)
    return targets.select_kernels(graph, targets.get("cortex-m4"))


@pytest.mark.parametrize("relative", sorted(TFLM_ARENA))
def test_mlperf_models_reach_the_lower_bound_on_cortex_m4(relative):
    graph = lowered_model(relative)
    target = target_memory("cortex-m4")
    plan = plan_graph(graph, "cortex-m4")
    assert plan_graph(graph, "cortex-m4") == plan  # deterministic
    assert_plan_sound(graph, plan, lambda op: target.kernel_memory(op, graph).is_view,
                      lambda op: target.kernel_memory(op, graph).raster_block)
    assert plan["alignment"] == 4
    assert plan["arena_bytes"] == plan["lower_bound"] and plan["optimal"]
    assert plan["lower_bound"] == independent_lower_bound(graph, plan)
    assert set(plan["external"].values()) == {"input", "output"}
    if TFLM_ARENA[relative] is not None:
        assert plan["arena_bytes"] < 0.95 * TFLM_ARENA[relative]


def test_ic_convolutions_overlap_their_inputs():
    """ResNet's residual blocks keep three 16 KiB tensors live; letting each general convolution
    write its output a row below its dying input brings IC's arena under 0.8 of TFLM's."""
    graph = lowered_model("ic/pretrainedResnet_quant_qop.onnx")
    plan = plan_graph(graph, "cortex-m4")
    assert "op2_CONV_2D_33" in plan["overlapped"]
    assert plan["arena_bytes"] <= 0.8 * TFLM_ARENA["ic/pretrainedResnet_quant_qop.onnx"]
    target = target_memory("cortex-m4")
    assert_plan_sound(graph, plan, lambda op: target.kernel_memory(op, graph).is_view,
                      lambda op: target.kernel_memory(op, graph).raster_block)


@settings(max_examples=60, deadline=None)
@given(h=st.integers(1, 9), w=st.integers(1, 9), c=st.integers(1, 5), oc=st.integers(1, 6),
       k=st.integers(1, 3), stride=st.integers(1, 2), pad=st.integers(0, 2), group=st.integers(1, 4),
       form=st.sampled_from(["int8 conv", "float conv", "float depthwise"]))
def test_overlap_lag_is_safe_and_tight(h, w, c, oc, k, stride, pad, group, form):
    """overlap_lag against the tap-by-tap walk: the lag is safe, and one alignment step less is not."""
    from tinyc.passes.plan_memory import overlap_lag
    assume(h + 2 * pad >= k and w + 2 * pad >= k)
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    dtype, kind = form.split()
    quant = QuantParams.tensor(1.0, 0) if dtype == "int8" else None
    if kind == "depthwise":
        oc = c * (oc % 2 + 1)
    w_shape, w_layout = ((1, k, k, oc), "IHWO") if kind == "depthwise" else ((oc, k, k, c), "OHWI")
    values = {"x": Value("x", (1, h, w, c), dtype, "NHWC", quant),
              "w": Value("w", w_shape, dtype, w_layout, quant, np.zeros(w_shape, dtype)),
              "y": Value("y", (1, oh, ow, oc), dtype, "NHWC", quant)}
    op = Op("conv2d" if kind == "conv" else "depthwise_conv2d", "conv", ["x", "w"], ["y"],
            {"strides": [stride, stride], "pads": [pad] * 4})
    graph = Graph("g", values, [op], ["x"], ["y"])
    lag = overlap_lag(op, graph, group, 1)
    assert lag is not None and lag >= 0
    assert_raster_overlap_safe(graph, op, -lag, 0, group)
    if lag > 0:
        with pytest.raises(AssertionError):
            assert_raster_overlap_safe(graph, op, -(lag - 1), 0, group)
