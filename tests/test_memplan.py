"""The arena placement algorithm (tinyc.memplan), independent of the IR."""
from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tinyc.memplan import (GREEDY, STRATEGIES, Buffer, Plan, PlanError, align_up, check,
                           exact_search, fit_search, lower_bound, place_in_order, plan_offsets)

# ---- strategies --------------------------------------------------------------------------------


@st.composite
def buffer_sets(draw, max_buffers=14, max_step=12, max_span=5, sizes=None):
    n = draw(st.integers(0, max_buffers))
    size = sizes if sizes is not None else st.one_of(
        st.integers(0, 64), st.integers(1, 5000), st.sampled_from([16, 100, 1024, 4096]))
    buffers = []
    for i in range(n):
        first = draw(st.integers(0, max_step))
        buffers.append(Buffer(f"b{i}", draw(size), first, first + draw(st.integers(0, max_span))))
    return buffers


alignments = st.sampled_from([1, 4, 8, 16])


@st.composite
def chains(draw):
    """A chain of ops: buffer i is written at step i and read at step i + 1; some steps also have a
    scratch buffer. Placing the buffers alternately at the bottom and the top of the arena, scratch
    between them, reaches the lower bound, so the best strategy must too."""
    n = draw(st.integers(1, 25))
    sizes = st.sampled_from([1, 8, 12, 100, 640, 1000, 8000, 18432, 36864])
    buffers = [Buffer(f"t{i}", draw(sizes), i, i + 1) for i in range(n)]
    for step in range(1, n + 1):
        scratch = draw(st.sampled_from([0, 0, 40, 576, 3000]))
        if scratch:
            buffers.append(Buffer(f"s{step}", scratch, step, step))
    return buffers


def brute_force_arena(buffers: list[Buffer]) -> int:
    """The smallest arena by trying every offset assignment (alignment 1, tiny inputs only)."""
    floor = lower_bound(buffers, 1)[0]
    for arena in range(floor, sum(b.size for b in buffers) + 1):
        for offsets in itertools.product(*(range(arena - b.size + 1) for b in buffers)):
            plan = Plan(dict(zip((b.name for b in buffers), offsets)), arena, 1, "brute", False)
            try:
                check(plan, buffers)
            except PlanError:
                continue
            return arena
    return 0


# ---- lower bound -------------------------------------------------------------------------------

def test_lower_bound_is_the_most_crowded_step_with_aligned_sizes():
    buffers = [Buffer("a", 10, 0, 1), Buffer("b", 3, 1, 2), Buffer("c", 20, 2, 2), Buffer("d", 1, 3, 3)]
    # step 1: a + b = 16 + 16; step 2: b + c = 16 + 32
    assert lower_bound(buffers, 16) == (48, 2, ("b", "c"))
    assert lower_bound(buffers, 1) == (23, 2, ("b", "c"))


def test_lower_bound_of_nothing_is_zero():
    assert lower_bound([], 4) == (0, None, ())
    plan = plan_offsets([], 4)
    assert plan.arena_bytes == 0 and plan.offsets == {} and plan.optimal


def test_earliest_peak_step_is_reported():
    buffers = [Buffer("a", 8, 0, 0), Buffer("b", 8, 1, 1), Buffer("c", 8, 2, 2)]
    assert lower_bound(buffers, 4) == (8, 0, ("a",))


# ---- check ---------------------------------------------------------------------------------------

def test_check_rejects_live_buffers_that_overlap():
    buffers = [Buffer("a", 10, 0, 2), Buffer("b", 10, 2, 3)]
    with pytest.raises(PlanError, match="overlap"):
        check(Plan({"a": 0, "b": 8}, 24, 4, "hand", False), buffers)
    check(Plan({"a": 0, "b": 12}, 24, 4, "hand", False), buffers)
    # Disjoint lifetimes may share bytes.
    check(Plan({"a": 0, "b": 0}, 12, 4, "hand", False), [Buffer("a", 10, 0, 1), Buffer("b", 10, 2, 3)])


def test_check_rejects_misaligned_missing_and_out_of_arena_offsets():
    buffers = [Buffer("a", 10, 0, 0), Buffer("b", 4, 0, 0)]
    with pytest.raises(PlanError, match="not aligned"):
        check(Plan({"a": 0, "b": 10}, 16, 4, "hand", False), buffers)
    with pytest.raises(PlanError, match="no offset"):
        check(Plan({"a": 0}, 16, 4, "hand", False), buffers)
    with pytest.raises(PlanError, match="past the arena"):
        check(Plan({"a": 0, "b": 12}, 12, 4, "hand", False), buffers)
    with pytest.raises(PlanError, match="unknown"):
        check(Plan({"a": 0, "b": 12, "c": 0}, 16, 4, "hand", False), buffers)


def test_invalid_buffers_and_strategies_are_refused():
    with pytest.raises(ValueError, match="two buffers"):
        plan_offsets([Buffer("a", 1, 0, 0), Buffer("a", 1, 1, 1)], 4)
    with pytest.raises(ValueError, match="first <= last"):
        plan_offsets([Buffer("a", 1, 3, 2)], 4)
    with pytest.raises(ValueError, match="alignment"):
        plan_offsets([Buffer("a", 1, 0, 0)], 0)
    with pytest.raises(ValueError, match="unknown memory planning strategy 'nope'"):
        plan_offsets([Buffer("a", 1, 0, 0)], 4, "nope")


# ---- placements ------------------------------------------------------------------------------

def test_best_fit_takes_the_smallest_hole():
    # Holes of 32 bytes (0..32) and 16 bytes (48..64) at step 1; a 16-byte buffer goes in the
    # 16-byte hole with best fit and in the lowest hole with first fit.
    placed = [Buffer("low", 32, 0, 0), Buffer("mid", 16, 0, 1), Buffer("hole", 16, 0, 0),
              Buffer("top", 16, 0, 1)]
    order = placed + [Buffer("new", 16, 1, 1)]
    best = place_in_order(order, 16, best_fit=True)
    first = place_in_order(order, 16, best_fit=False)
    assert (best["mid"], best["top"]) == (32, 64)
    assert best["new"] == 48
    assert first["new"] == 0


def test_exact_search_fixes_greedy_parity_on_a_chain():
    # The anomaly-detection autoencoder's chain of activations (FC 128 x4, 8, 128 x4): every greedy
    # order puts the 8-byte code layer above a 128-byte pair, 16 bytes over the lower bound.
    sizes = [128, 128, 128, 128, 8, 128, 128, 128, 128]
    buffers = [Buffer(f"fc{i}", s, i, i + 1) for i, s in enumerate(sizes)]
    assert lower_bound(buffers, 16)[0] == 256
    assert all(plan_offsets(buffers, 16, name).arena_bytes == 272 for name in GREEDY)
    for name in ("best", "exact"):
        plan = plan_offsets(buffers, 16, name)
        check(plan, buffers)
        assert plan.arena_bytes == 256 and plan.optimal and plan.strategy == "exact"


def test_fit_search_uses_the_top_of_a_gap():
    # d must sit at the top so that c (live between b and d) fits below it; every greedy order puts
    # d at the bottom and c above everything.
    buffers = [Buffer("a", 18432, 0, 1), Buffer("b", 8000, 1, 2), Buffer("c", 1000, 2, 3),
               Buffer("d", 18432, 3, 4)]
    assert lower_bound(buffers, 16)[0] == 26432
    assert all(plan_offsets(buffers, 16, name).arena_bytes == 27440 for name in GREEDY)
    assert fit_search(buffers, 16, 26432) == {"a": 0, "b": 18432, "c": 0, "d": 8000}
    assert fit_search(buffers, 16, 26416) is None
    plan = plan_offsets(buffers, 16, "best")
    assert (plan.arena_bytes, plan.strategy, plan.optimal) == (26432, "exact", True)


def test_branch_and_bound_lifts_buffers_that_are_too_low_to_come_next():
    # On the way to the minimum the search meets a buffer that cannot come next in the order (too
    # low) and must be kept for later, when a buffer placed after it lifts it. Pruning such
    # branches instead ends at 8 bytes.
    buffers = [Buffer("b0", 4, 2, 2), Buffer("b1", 3, 0, 0), Buffer("b2", 1, 1, 3),
               Buffer("b3", 1, 4, 5), Buffer("b4", 3, 0, 1), Buffer("b5", 1, 1, 2)]
    assert brute_force_arena(buffers) == 6
    stacked = dict(zip((b.name for b in buffers), itertools.accumulate((b.size for b in buffers),
                                                                       initial=0)))
    offsets, finished = exact_search(buffers, 1, stacked)
    check(Plan(offsets, 6, 1, "exact", True), buffers)
    assert finished


def test_exact_search_returns_the_incumbent_when_out_of_nodes():
    sizes = [128, 128, 128, 128, 8, 128, 128, 128, 128]
    buffers = [Buffer(f"fc{i}", s, i, i + 1) for i, s in enumerate(sizes)]
    start = STRATEGIES["greedy_size"](buffers, 16)
    offsets, finished = exact_search(buffers, 16, start, node_limit=0)
    assert offsets == start and not finished


def test_plans_are_deterministic():
    buffers = [Buffer(f"b{i}", (i * 7919) % 300 + 1, i % 5, i % 5 + i % 3) for i in range(30)]
    for name in STRATEGIES:
        assert plan_offsets(buffers, 8, name) == plan_offsets(list(buffers), 8, name)


# ---- properties --------------------------------------------------------------------------------

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(buffer_sets(), alignments)
def test_every_strategy_gives_a_valid_plan_no_smaller_than_the_bound(buffers, alignment):
    floor = lower_bound(buffers, alignment)[0]
    arenas = {}
    for name in STRATEGIES:
        plan = plan_offsets(buffers, alignment, name)
        check(plan, buffers)
        assert plan.arena_bytes >= floor
        assert plan.arena_bytes % alignment == 0
        assert plan.arena_bytes == max(
            (plan.offsets[b.name] + align_up(b.size, alignment) for b in buffers), default=0)
        if plan.optimal and plan.arena_bytes > floor:
            assert name in ("best", "exact")
        arenas[name] = plan.arena_bytes
    assert arenas["best"] == min(arenas.values())
    assert arenas["exact"] == arenas["best"]


@settings(max_examples=60, deadline=None)
@given(chains(), alignments)
def test_best_reaches_the_lower_bound_on_chains(buffers, alignment):
    plan = plan_offsets(buffers, alignment, "best")
    check(plan, buffers)
    assert plan.arena_bytes == lower_bound(buffers, alignment)[0]
    assert plan.optimal


@settings(max_examples=100, deadline=None)
@given(buffer_sets(max_buffers=6, max_step=4, max_span=2, sizes=st.integers(1, 4)))
def test_exact_strategy_and_branch_and_bound_find_the_true_minimum_on_tiny_sets(buffers):
    smallest = brute_force_arena(buffers)
    plan = plan_offsets(buffers, 1, "exact")
    check(plan, buffers)
    assert plan.optimal and plan.arena_bytes == smallest
    # The branch and bound alone, from the worst start (every buffer stacked on the previous one).
    stacked = dict(zip((b.name for b in buffers), itertools.accumulate((b.size for b in buffers),
                                                                       initial=0)))
    offsets, finished = exact_search(buffers, 1, stacked)
    check(Plan(offsets, smallest, 1, "exact", True), buffers)
    assert finished


# ---- the sweeps equal the pairwise definitions ---------------------------------------------------
# The planner finds buffers live together by sweeping over steps (a chain of thousands of layers has
# few live buffers at any step); these are the definitions the sweeps must agree with.

def pairwise_place_in_order(order, alignment, best_fit=True):
    from tinyc.memplan import _lowest_gap, lifetimes_overlap
    placed, offsets = [], {}
    for buf in order:
        size = align_up(buf.size, alignment)
        if size == 0:
            offsets[buf.name] = 0
            continue
        busy = sorted((off, off + s) for other, off, s in placed if lifetimes_overlap(buf, other))
        offsets[buf.name] = _lowest_gap(busy, size, best_fit)
        placed.append((buf, offsets[buf.name], size))
    return offsets


@settings(max_examples=150, deadline=None)
@given(buffer_sets(max_buffers=20, max_span=8), alignments, st.booleans())
def test_sweeps_equal_the_pairwise_definitions(buffers, alignment, best_fit):
    from tinyc.memplan import _by_conflict, _by_peak, lifetimes_overlap, live_bytes, overlapping
    assert overlapping(buffers) == [[j for j, o in enumerate(buffers) if j != i and lifetimes_overlap(b, o)]
                                    for i, b in enumerate(buffers)]
    assert live_bytes(buffers, alignment) == {
        step: sum(align_up(b.size, alignment) for b in buffers if b.first <= step <= b.last)
        for step in sorted({b.first for b in buffers})}
    assert place_in_order(buffers, alignment, best_fit) == pairwise_place_in_order(buffers, alignment, best_fit)
    per_step = live_bytes(buffers, alignment)
    assert _by_peak(buffers, alignment) == sorted(buffers, key=lambda b: (
        -max(n for s, n in per_step.items() if b.first <= s <= b.last), -align_up(b.size, alignment),
        b.first, b.name))
    assert _by_conflict(buffers, alignment) == sorted(buffers, key=lambda b: (
        -sum(align_up(o.size, alignment) for o in buffers if lifetimes_overlap(b, o)),
        -align_up(b.size, alignment), b.first, b.name))
