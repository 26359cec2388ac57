"""Properties of the float front of the pipeline on random graphs (tests/strategies.py): canonicalize,
fuse and layout, chained as in the pipeline and each alone, keep every promise of passes/__init__.py
on any valid float graph: the result verifies, the interface (input and output names, shapes,
dtypes, layouts) is unchanged, the argument graph is not mutated, and the reference interpreter
computes the same outputs before and after on random inputs (up to float32 reassociation:
rtol = atol = 1e-4). Bugs these properties found are pinned at the end on their smallest graphs."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strategies import graphs
from tinyc.interpreter import run
from tinyc.ir import Graph
from tinyc.passes import get
from tinyc.textir import parse, print_graph
from tinyc.verify import verify

PIPELINE = ("canonicalize", "fuse", "layout")
# Every op kind with a float form (docs/ir.md); lut, quantize, dequantize and rescale are integer
# only and the strategy draws no integer values here.
FLOAT_KINDS = ("conv2d", "depthwise_conv2d", "fully_connected", "gemm", "matmul", "batch_norm", "add",
               "mul", "relu", "clip", "leaky_relu", "sigmoid", "tanh", "hard_swish", "max_pool2d",
               "avg_pool2d", "global_avg_pool", "softmax", "concat", "reshape", "transpose", "pad",
               "identity")
RTOL = ATOL = 1e-4
# Attributes that scale values (gemm's alpha/beta, leaky_relu's alpha): kept finite and moderate.
SCALING_ATTRS = {"gemm": ("alpha", "beta"), "leaky_relu": ("alpha",)}
PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def with_finite_numbers(graph: Graph) -> Graph:
    """The graph with every float constant and scaling attribute finite and in [-8, 8].

    The strategy also draws inf, NaN and 3.4e38 weights; with those, forms the passes rightly treat
    as equal differ in float arithmetic (a folded batch_norm computes x*inf + (-inf) where the
    original computed inf*(x - mean)), so the equivalence property is stated on finite numbers."""
    graph = graph.copy()
    for value in graph.constants():
        if value.dtype == "float32":
            data = np.nan_to_num(value.data, nan=0.5, posinf=2.0, neginf=-2.0)
            value.data = np.clip(data, -8.0, 8.0).astype(np.float32)
    for op in graph.ops:
        for key in SCALING_ATTRS.get(op.kind, ()):
            if key in op.attrs and not (math.isfinite(op.attrs[key]) and abs(op.attrs[key]) <= 8.0):
                op.attrs[key] = 1.5
    return graph


def relabels_in_place(graph: Graph) -> bool:
    """True when a reshape or transpose keeps the shape but changes the layout label (NHWC bytes
    read as NCHW, say). canonicalize once dropped such ops and broke the graph (the tests below)."""
    for op in graph.ops:
        x, y = graph.values[op.inputs[0]], graph.values[op.outputs[0]]
        if op.kind in ("reshape", "transpose") and x.shape == y.shape and x.layout != y.layout:
            return True
    return False


def interface(graph: Graph) -> list[tuple]:
    return [(role, name, v.shape, v.dtype, v.layout)
            for role, names in (("input", graph.inputs), ("output", graph.outputs))
            for name in names for v in [graph.values[name]]]


def random_inputs(graph: Graph, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal(graph.values[name].shape).astype(np.float32)
            for name in graph.inputs}


def assert_same_outputs(before: dict[str, np.ndarray], after: dict[str, np.ndarray], step: str) -> None:
    assert before.keys() == after.keys()
    for name, expected in before.items():
        got = after[name]
        assert got.shape == expected.shape and got.dtype == expected.dtype, (step, name)
        assert np.allclose(got, expected, rtol=RTOL, atol=ATOL, equal_nan=True), (
            f"after {step}, output {name!r} differs by up to "
            f"{np.nanmax(np.abs(got.astype(np.float64) - expected)) if got.size else 0}")


def runnable_float_graph(graph: Graph) -> Graph:
    """The drawn graph, made finite; discards graphs no run could check (see the assumptions)."""
    graph = with_finite_numbers(graph)
    verify(graph)
    return graph


def check_pass(name: str, graph: Graph, feeds: dict[str, np.ndarray],
               expected: dict[str, np.ndarray], interface_of: Graph) -> Graph:
    """Run pass `name` on `graph` and assert its promises; return its result."""
    text_before = print_graph(graph)
    result = get(name)(graph)
    assert print_graph(graph) == text_before, f"{name} mutated its argument"
    verify(result)
    assert interface(result) == interface(interface_of), f"{name} changed the interface"
    assert_same_outputs(expected, run(result, feeds), name)
    return result


FLOAT_GRAPHS = graphs(max_ops=8, floating=True, integer=False, kinds=FLOAT_KINDS)
SEEDS = st.integers(0, 2 ** 32 - 1)


@PROPERTY
@given(FLOAT_GRAPHS, SEEDS)
def test_float_front_of_pipeline_keeps_its_promises(graph: Graph, seed: int) -> None:
    """canonicalize, then fuse on its result, then layout on that."""
    graph = runnable_float_graph(graph)
    feeds = random_inputs(graph, seed)
    expected = run(graph, feeds)
    current = graph
    for name in PIPELINE:
        current = check_pass(name, current, feeds, expected, interface_of=graph)


@pytest.mark.parametrize("name", PIPELINE)
@PROPERTY
@given(graph=FLOAT_GRAPHS, seed=SEEDS)
def test_each_pass_keeps_its_promises_on_any_float_graph(name: str, graph: Graph, seed: int) -> None:
    """Each pass alone on the drawn graph: fuse and layout also meet identity, gemm, batch_norm and
    global_avg_pool, which canonicalize removes before them in the pipeline."""
    graph = runnable_float_graph(graph)
    feeds = random_inputs(graph, seed)
    check_pass(name, graph, feeds, run(graph, feeds), interface_of=graph)


# ---- bugs the properties found, pinned on their smallest graphs ----------------------------------
# A reshape (or a transpose moving only size-1 axes) that keeps the shape but changes the layout
# label is not a no-op when a conv or pool reads or writes the value: it decides which axis is the
# channel. canonicalize removes it as "a reshape to its input's shape" all the same.

RELABEL_READ_BY_POOL = """
graph @relabel_in(%x: tensor<1x1x3x1xf32, NHWC>) -> (%y) {
  %t = reshape(%x) {shape = [1, 1, 3, 1]} : tensor<1x1x3x1xf32, NCHW> loc("relabel")
  %y = max_pool2d(%t) {kernel = [1, 1], pads = [0, 1, 0, 1]} : tensor<1x1x3x3xf32, NCHW> loc("pool")
  return %y
}
"""

RELABEL_OF_POOL_OUTPUT = """
graph @relabel_out(%x: tensor<1x2x2x3xf32, NHWC>) -> (%y) {
  %p = max_pool2d(%x) {kernel = [1, 1]} : tensor<1x2x2x3xf32, NHWC> loc("pool")
  %y = reshape(%p) {shape = [1, 2, 2, 3]} : tensor<1x2x2x3xf32, NCHW> loc("relabel")
  return %y
}
"""


def assert_pass_keeps_promises(name: str, graph: Graph) -> None:
    feeds = random_inputs(graph, seed=0)
    check_pass(name, graph, feeds, run(graph, feeds), interface_of=graph)


def test_canonicalize_keeps_a_relabelling_reshape_read_by_a_pool() -> None:
    graph = parse(RELABEL_READ_BY_POOL)
    verify(graph)
    assert_pass_keeps_promises("canonicalize", graph)


def test_canonicalize_keeps_a_relabelling_reshape_of_a_pool_output() -> None:
    graph = parse(RELABEL_OF_POOL_OUTPUT)
    verify(graph)
    assert_pass_keeps_promises("canonicalize", graph)


@pytest.mark.parametrize("text", [RELABEL_READ_BY_POOL, RELABEL_OF_POOL_OUTPUT])
def test_the_pinned_graphs_keep_their_meaning_through_fuse_and_layout(text: str) -> None:
    graph = parse(text)
    verify(graph)
    assert relabels_in_place(graph)
    for name in ("fuse", "layout"):
        assert_pass_keeps_promises(name, graph)
