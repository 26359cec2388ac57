"""Graph.copy: an independent graph that shares constant arrays copy-on-write."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings

from pass_graphs import Builder
from strategies import assert_graphs_equal, graphs


def small_graph():
    b = Builder()
    x = b.input("x", (1, 4))
    w = b.const("w", np.arange(12, dtype=np.float32).reshape(3, 4))
    y = b.op("fully_connected", "fc", [x, w], activation="none")
    return b.output(y)


def test_copy_shares_constant_arrays_read_only():
    g = small_graph()
    c = g.copy()
    assert c.values["w"].data is g.values["w"].data
    for graph in (g, c):
        with pytest.raises(ValueError, match="read-only"):
            graph.values["w"].data[0, 0] = 7.0
    assert g.values["w"].data[0, 0] == 0.0


def test_assigning_new_constant_data_leaves_the_other_graph_alone():
    g = small_graph()
    c = g.copy()
    c.values["w"].data = c.values["w"].data + 1.0
    c.values["w"].shape = (3, 4)
    assert g.values["w"].data[0, 0] == 0.0 and c.values["w"].data[0, 0] == 1.0


def test_editing_the_copy_leaves_the_original_alone():
    g = small_graph()
    before = g.copy()
    c = g.copy()
    op = c.ops[0]
    op.inputs[0] = "z"
    op.outputs.append("extra")
    op.attrs["activation"] = "relu"
    c.values["x"].shape = (2, 4)
    c.outputs.append("w")
    c.meta["note"] = [1]
    assert_graphs_equal(g, before)


@settings(max_examples=30, deadline=None)
@given(graphs())
def test_copy_equals_the_original(graph):
    assert_graphs_equal(graph.copy(), graph)
