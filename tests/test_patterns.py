"""IndexedGraph (passes/_patterns.py): the use-lists the rewrite passes query stay equal to ones built
afresh from the graph, whatever sequence of edits a rewrite makes."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pass_graphs import Builder
from strategies import graphs
from tinyc.ir import Op, QuantParams, Value
from tinyc.passes import _patterns, get
from tinyc.passes._patterns import (IndexedGraph, fresh_op_name, insert_after, insert_before, readers,
                                    rename_value, replace_op, take_over_output)
from tinyc.verify import verify

PROPERTY = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def chain():
    b = Builder()
    x = b.input("x", (1, 4))
    a = b.op("relu", "a", [x])
    s = b.op("add", "s", [a, a], activation="none")
    y = b.op("relu", "c", [s])
    return b.output(y)


def scan_readers(graph, name):
    return [op for op in graph.ops for n in op.inputs if n == name]


def scan_producer(graph, name):
    return next((op for op in graph.ops if name in op.outputs), None)


def assert_matches_scans(g: IndexedGraph) -> None:
    """The index answers what scanning every op answers, and equals a freshly built index."""
    g.check()
    names = set(g.values) | {n for op in g.ops for n in op.inputs + op.outputs}
    for name in names:
        assert [id(o) for o in g.readers(name)] == [id(o) for o in scan_readers(g.graph, name)], name
        assert g.producer(name) is scan_producer(g.graph, name), name
        assert g.is_read(name) == bool(scan_readers(g.graph, name))
    for i, op in enumerate(g.ops):
        assert g.contains(op) and g.index_of(op) == i


def test_queries_follow_edits():
    g = IndexedGraph(chain())
    a, s, c = g.ops
    assert [o.name for o in readers(g, "a_out")] == ["s", "s"]
    new = Op("relu", fresh_op_name(g, "a"), ["x"], ["a2"])
    assert new.name == "a_1"
    insert_after(g, a, [new])
    g.set_inputs(s, ["a_out", "a2"])
    assert [o.name for o in g.readers("a_out")] == ["s"] and g.readers("a2") == [s]
    g.remove(c)
    assert not g.contains(c) and not g.is_read("s_out")
    with pytest.raises(ValueError, match="not in the graph"):
        g.index_of(c)
    assert [op.name for op in g.ops] == ["a", "a_1", "s"]
    assert_matches_scans(g)


def test_readers_come_in_op_order_whatever_the_edit_order():
    g = IndexedGraph(chain())
    a, s, c = g.ops
    early = Op("relu", "early", ["x"], ["e"])
    insert_before(g, a, [early])
    g.set_inputs(c, ["x"])
    g.set_inputs(s, ["x", "x"])
    assert [o.name for o in g.readers("x")] == ["early", "a", "s", "s", "c"]
    assert_matches_scans(g)


def test_many_inserts_at_one_place_renumber_the_keys():
    g = IndexedGraph(chain())
    anchor = g.ops[1]
    for i in range(80):  # each insert halves the gap before the anchor: renumbered on the way
        insert_before(g, anchor, [Op("relu", f"r{i}", ["x"], [f"r{i}_out"])])
    assert [op.name for op in g.ops[1:81]] == [f"r{i}" for i in range(80)]
    assert_matches_scans(g)


def test_rename_take_over_and_replace_keep_the_index():
    g = IndexedGraph(chain())
    a, s, c = g.ops
    take_over_output(g, s, c)  # s now writes c's output; c leaves
    assert g.producer("c_out") is s and "s_out" not in g.values
    g.values["a2_out"] = Value("a2_out", (1, 4), "float32")
    rename_value(g, "a_out", "a2_out")
    assert g.readers("a2_out") == [s, s] and g.producer("a2_out") is a
    replace_op(g, a, [Op("relu", "a", ["x"], ["a2_out"])])
    assert g.producer("a2_out") is g.ops[0] and g.ops[0] is not a
    g.replace_uses("c_out", "x")
    assert g.outputs == ["x"]
    assert_matches_scans(g)


# ---- random edits ------------------------------------------------------------------------------

@st.composite
def edits(draw):
    return draw(st.lists(st.tuples(st.sampled_from(["insert", "remove", "inputs", "outputs", "uses",
                                                    "rename", "replace"]),
                                   st.integers(0, 1 << 16), st.integers(0, 1 << 16)),
                         max_size=25))


@PROPERTY
@given(graphs(max_ops=8), edits())
def test_random_edits_keep_the_index_equal_to_a_fresh_one(graph, steps):
    g = IndexedGraph(graph)
    fresh = 0

    def new_name(base: str) -> str:
        nonlocal fresh
        fresh += 1
        return f"{base}#{fresh}"

    for kind, i, j in steps:
        names = sorted(g.values)
        ops = g.ops
        if kind == "insert" or not ops:
            op = Op("relu", fresh_op_name(g, "new"), [names[i % len(names)]], [new_name("v")])
            g.insert(j % (len(ops) + 1), [op])
        elif kind == "remove":
            g.remove(ops[i % len(ops)])
        elif kind == "inputs":
            op = ops[i % len(ops)]
            g.set_inputs(op, [names[(j + k) % len(names)] for k in range(1 + j % 3)])
        elif kind == "outputs":
            g.set_outputs(ops[i % len(ops)], [new_name("out")])
        elif kind == "uses":
            g.replace_uses(names[i % len(names)], names[j % len(names)])
        elif kind == "rename":
            old = ops[i % len(ops)].outputs[0]
            if old in g.values:
                new = new_name("renamed")
                g.values[new] = g.values[old]
                rename_value(g, old, new)
        else:
            op = ops[i % len(ops)]
            replace_op(g, op, [Op(op.kind, op.name, list(op.inputs), list(op.outputs), dict(op.attrs)),
                               Op("relu", fresh_op_name(g, op.name), list(op.outputs), [new_name("after")])])
        assert_matches_scans(g)


@PROPERTY
@given(graphs(max_ops=10))
def test_rewrite_passes_keep_their_use_lists_on_any_graph(graph):
    """canonicalize, fuse and qdq-to-integer, with the use-lists checked after every edit."""
    assert _patterns.CHECK_INDEX  # tests/conftest.py
    for name in ("canonicalize", "fuse", "qdq-to-integer", "fuse"):
        graph = get(name)(graph)
        verify(graph)


def test_qdq_lowering_checks_its_use_lists():
    b = Builder()
    x = b.input("x", (1, 4), dtype="int8", quant=QuantParams.tensor(0.5, 0))
    w = b.const("w", np.ones((3, 4), np.int8), quant=QuantParams.tensor(0.25, 0))
    y = b.op("fully_connected", "fc", [b.dq(x), b.dq(w)], activation="none")
    out = b.q(b.op("relu", "relu", [y]), 0.5, -128)
    graph = get("qdq-to-integer")(get("fuse")(get("canonicalize")(b.output(out))))
    assert [op.kind for op in graph.ops] == ["fully_connected"]
