"""Static placement of buffers in one memory arena; knows nothing about the IR.

A `Buffer` is a named block of bytes live over an inclusive range of schedule steps. A plan gives every
buffer an offset in one arena so that buffers live at the same step never share a byte. Offsets are
multiples of the alignment, and every size is rounded up to it, so the arena is a multiple of it too.

`lower_bound` is the most bytes (aligned sizes) live at any one step: no plan can use less. Finding the
smallest arena is NP-hard (dynamic storage allocation), so planning is a family of strategies behind
one interface (`STRATEGIES`, name -> function of (buffers, alignment) returning offsets): greedy
placements in several orders; "exact", a search that first tries to fit the lower bound (buffers at
the bottom or top of free gaps) and otherwise runs a branch and bound, both with node budgets; and
"best", which runs the greedy ones, keeps the smallest, and searches only when that is above the
lower bound. Every strategy is deterministic: the same buffers give the same offsets (searches are
capped by node counts, never by time).
"""
from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Callable, Sequence


@dataclass(frozen=True)
class Buffer:
    """`size` bytes that must stay intact from step `first` to step `last`, both included."""

    name: str
    size: int
    first: int
    last: int


@dataclass(frozen=True)
class Plan:
    """Offsets of every buffer in an arena of `arena_bytes` (a multiple of `alignment`).
    `strategy` names the strategy whose placement was kept; `optimal` is True when the arena is
    proved minimal (it equals the lower bound, or the exact search finished)."""

    offsets: dict[str, int]
    arena_bytes: int
    alignment: int
    strategy: str
    optimal: bool


class PlanError(ValueError):
    """A plan is wrong: two buffers live at the same step overlap, or an offset is misaligned."""


Strategy = Callable[[Sequence[Buffer], int], dict[str, int]]

# How many nodes each search of the exact strategy may visit. A node budget (not a time limit)
# keeps the result identical on every machine; these keep each search to a second or two in
# CPython on a hundred buffers, and to milliseconds on the MLPerf Tiny models.
EXACT_NODE_LIMIT = 20000
FIT_NODE_LIMIT = 20000


def align_up(size: int, alignment: int) -> int:
    return -(-size // alignment) * alignment


def lifetimes_overlap(a: Buffer, b: Buffer) -> bool:
    return a.first <= b.last and b.first <= a.last


def overlapping(buffers: Sequence[Buffer]) -> list[list[int]]:
    """For each buffer, the indices (ascending) of the other buffers live at a common step.

    A sweep in order of first step, keeping the buffers still live: the cost is the number of
    overlapping pairs, not every pair (a long chain of layers has few live buffers at any step)."""
    result: list[list[int]] = [[] for _ in buffers]
    live: list[int] = []
    for i in sorted(range(len(buffers)), key=lambda i: buffers[i].first):
        live = [j for j in live if buffers[j].last >= buffers[i].first]
        for j in live:
            result[i].append(j)
            result[j].append(i)
        live.append(i)
    return [sorted(r) for r in result]


def _validate(buffers: Sequence[Buffer], alignment: int) -> None:
    if not isinstance(alignment, int) or alignment <= 0:
        raise ValueError(f"alignment must be a positive integer, got {alignment!r}")
    seen: set[str] = set()
    for b in buffers:
        if b.name in seen:
            raise ValueError(f"two buffers are named {b.name!r}")
        seen.add(b.name)
        if b.size < 0 or not 0 <= b.first <= b.last:
            raise ValueError(f"buffer {b.name!r} needs size >= 0 and 0 <= first <= last, "
                             f"has size {b.size}, steps {b.first}..{b.last}")


def _arena_of(offsets: dict[str, int], buffers: Sequence[Buffer], alignment: int) -> int:
    return max((offsets[b.name] + align_up(b.size, alignment) for b in buffers), default=0)


# ---- lower bound -------------------------------------------------------------------------------

def live_bytes(buffers: Sequence[Buffer], alignment: int) -> dict[int, int]:
    """Aligned bytes live at each step where some buffer starts (the maximum is at one of those)."""
    change: dict[int, int] = {}  # bytes that start (+) and end (-) being live at each step
    for b in buffers:
        change[b.first] = change.get(b.first, 0) + align_up(b.size, alignment)
        change[b.last + 1] = change.get(b.last + 1, 0) - align_up(b.size, alignment)
    starts = {b.first for b in buffers}
    per_step, live = {}, 0
    for step in sorted(change):
        live += change[step]
        if step in starts:
            per_step[step] = live
    return per_step


def lower_bound(buffers: Sequence[Buffer], alignment: int) -> tuple[int, int | None, tuple[str, ...]]:
    """(bytes, step, names): the most aligned bytes live at one step, the earliest step where that
    happens and the buffers live there (in the given order). (0, None, ()) without buffers."""
    _validate(buffers, alignment)
    per_step = live_bytes(buffers, alignment)
    if not per_step:
        return 0, None, ()
    peak = max(per_step.values())
    step = min(s for s, n in per_step.items() if n == peak)
    return peak, step, tuple(b.name for b in buffers if b.first <= step <= b.last)


# ---- checking ----------------------------------------------------------------------------------

def check(plan: Plan, buffers: Sequence[Buffer]) -> None:
    """Raise PlanError unless every buffer has an aligned offset inside the arena and no two buffers
    live at a common step share a byte (actual sizes, not rounded)."""
    names = {b.name for b in buffers}
    extra = sorted(set(plan.offsets) - names)
    if extra:
        raise PlanError(f"plan places unknown buffers: {', '.join(extra[:5])}")
    for b in buffers:
        if b.name not in plan.offsets:
            raise PlanError(f"buffer {b.name!r} has no offset")
        off = plan.offsets[b.name]
        if not isinstance(off, int) or off < 0:
            raise PlanError(f"buffer {b.name!r} has offset {off!r}, not a non-negative integer")
        if off % plan.alignment:
            raise PlanError(f"buffer {b.name!r} at offset {off} is not aligned to {plan.alignment}")
        if off + b.size > plan.arena_bytes:
            raise PlanError(f"buffer {b.name!r} ends at {off + b.size}, past the arena "
                            f"({plan.arena_bytes} bytes)")
    if plan.arena_bytes % plan.alignment:
        raise PlanError(f"arena of {plan.arena_bytes} bytes is not a multiple of {plan.alignment}")
    # Sweep in order of first step: only buffers started earlier and still live can collide.
    ordered = sorted((b for b in buffers if b.size > 0), key=lambda b: (b.first, b.name))
    active: list[Buffer] = []
    for b in ordered:
        active = [a for a in active if a.last >= b.first]
        lo = plan.offsets[b.name]
        for a in active:
            a_lo = plan.offsets[a.name]
            if lo < a_lo + a.size and a_lo < lo + b.size:
                raise PlanError(f"buffers {a.name!r} (steps {a.first}..{a.last}, bytes {a_lo}.."
                                f"{a_lo + a.size}) and {b.name!r} (steps {b.first}..{b.last}, bytes "
                                f"{lo}..{lo + b.size}) are live together and overlap")
        active.append(b)


# ---- greedy placements -------------------------------------------------------------------------

def _lowest_gap(busy: list[tuple[int, int]], size: int, best_fit: bool) -> int:
    """Offset for `size` bytes among the occupied byte ranges `busy` (sorted by start): the smallest
    gap that holds it (best fit) or the lowest (first fit); above everything if no gap does."""
    gaps: list[tuple[int, int]] = []  # (gap size, gap offset)
    top = 0
    for lo, hi in busy:
        if lo > top:
            gaps.append((lo - top, top))
        top = max(top, hi)
    fitting = [g for g in gaps if g[0] >= size]
    if not fitting:
        return top
    if best_fit:
        return min(fitting)[1]
    return min(fitting, key=lambda g: g[1])[1]


def place_in_order(order: Sequence[Buffer], alignment: int, best_fit: bool = True) -> dict[str, int]:
    """Place buffers one by one in `order`, each in a gap left by the already placed buffers whose
    lifetimes overlap its own."""
    placed: list[tuple[int, int]] = []          # byte ranges of the placed buffers
    placed_at: dict[int, list[int]] = {}        # step -> the placed buffers live then
    offsets: dict[str, int] = {}
    for buf in order:
        size = align_up(buf.size, alignment)
        if size == 0:
            offsets[buf.name] = 0
            continue
        steps = range(buf.first, buf.last + 1)
        live_with = {i for step in steps for i in placed_at.get(step, ())}
        offsets[buf.name] = _lowest_gap(sorted(placed[i] for i in live_with), size, best_fit)
        for step in steps:
            placed_at.setdefault(step, []).append(len(placed))
        placed.append((offsets[buf.name], offsets[buf.name] + size))
    return offsets


def _span(b: Buffer) -> int:
    return b.last - b.first + 1


def _by_size(buffers: Sequence[Buffer], alignment: int) -> list[Buffer]:
    return sorted(buffers, key=lambda b: (-align_up(b.size, alignment), -_span(b), b.first, b.name))


def _by_lifetime(buffers: Sequence[Buffer], alignment: int) -> list[Buffer]:
    return sorted(buffers, key=lambda b: (-_span(b), -align_up(b.size, alignment), b.first, b.name))


def _by_conflict(buffers: Sequence[Buffer], alignment: int) -> list[Buffer]:
    """Buffers that share their lifetime with the most bytes first: they are the hardest to fit."""
    sizes = [align_up(b.size, alignment) for b in buffers]
    weight = [sizes[i] + sum(sizes[j] for j in others) for i, others in enumerate(overlapping(buffers))]
    order = sorted(range(len(buffers)), key=lambda i: (-weight[i], -sizes[i], buffers[i].first,
                                                       buffers[i].name))
    return [buffers[i] for i in order]


def _by_peak(buffers: Sequence[Buffer], alignment: int) -> list[Buffer]:
    """Buffers live at the most crowded steps first, so the peak is packed before anything else."""
    per_step = live_bytes(buffers, alignment)
    steps, live = list(per_step), list(per_step.values())  # steps ascending

    def crowd(b: Buffer) -> int:
        return max(live[bisect_left(steps, b.first):bisect_right(steps, b.last)])
    return sorted(buffers, key=lambda b: (-crowd(b), -align_up(b.size, alignment), b.first, b.name))


def _greedy(order: Callable[[Sequence[Buffer], int], list[Buffer]], best_fit: bool) -> Strategy:
    def strategy(buffers: Sequence[Buffer], alignment: int) -> dict[str, int]:
        return place_in_order(order(buffers, alignment), alignment, best_fit)
    return strategy


# ---- exact search ------------------------------------------------------------------------------

def _floors(resting: dict[int, int], last_off: int, last_index: int, sizes: list[int],
            others: list[list[int]]) -> dict[int, int] | None:
    """Lowest offset each unplaced buffer can still get in the search order, or None if one of
    them can no longer be placed.

    A buffer that may come next in the order sits at least where it rests now (and not below the
    last offset placed). One that may not (it rests below the last offset, or at it with a lower
    index) must later rest on an unplaced buffer live with it: its floor is the lowest top such a
    buffer can reach, found like shortest paths (sizes are positive)."""
    floors: dict[int, int] = {}
    frontier: list[tuple[int, int]] = []
    for i, off in resting.items():
        if (off, i) > (last_off, last_index):
            floors[i] = max(off, last_off)
            heapq.heappush(frontier, (floors[i], i))
    done: set[int] = set()
    while frontier:
        floor, j = heapq.heappop(frontier)
        if j in done:
            continue
        done.add(j)
        for i in others[j]:
            if i in resting and i not in done and floor + sizes[j] < floors.get(i, _NEVER):
                floors[i] = floor + sizes[j]
                heapq.heappush(frontier, (floors[i], i))
    if len(floors) < len(resting):
        return None
    return floors


_NEVER = float("inf")


def exact_search(buffers: Sequence[Buffer], alignment: int, incumbent: dict[str, int],
                 node_limit: int = EXACT_NODE_LIMIT) -> tuple[dict[str, int], bool]:
    """Branch and bound for the smallest arena, starting from the placement `incumbent`.
    Returns (offsets, finished): finished means the search proved the offsets minimal.

    Any placement can be pushed down until each buffer sits at 0 or on top of a buffer live with it.
    Listing such a placement by (offset, index) gives an order in which every buffer's offset is
    the highest top among the earlier buffers it overlaps in time. So searching orders, with offsets
    non-decreasing along the order, covers every optimal placement.

    The bound: every unplaced buffer has a floor (`_floors`). The unplaced buffers live at one step
    must stack without overlapping, each above its own floor: the highest top they reach is at
    least that of stacking them in order of their floors (one machine, jobs with release times)."""
    best = dict(incumbent)
    best_arena = _arena_of(best, buffers, alignment)
    items = [b for b in buffers if b.size > 0]
    if not items:
        return best, True
    sizes = [align_up(b.size, alignment) for b in items]
    points = sorted({b.first for b in items})
    spans = [list(range(bisect_left(points, b.first), bisect_right(points, b.last))) for b in items]
    live_at: list[list[int]] = [[] for _ in points]
    for i, span in enumerate(spans):
        for p in span:
            live_at[p].append(i)
    others = overlapping(items)
    floor = max(sum(sizes[i] for i in live) for live in live_at)  # the lower bound
    if best_arena <= floor:
        return best, True
    # Interchangeable buffers (same size, same steps) are tried in index order only.
    shape_of = [(sizes[i], items[i].first, items[i].last) for i in range(len(items))]
    skyline = [0] * len(points)
    offsets = [0] * len(items)
    placed = [False] * len(items)
    unplaced_count = len(items)
    nodes = 0
    exhausted = True

    def bound(floors: dict[int, int]) -> int:
        top = max(skyline)
        for p, live in enumerate(live_at):
            jobs = sorted((floors[i], sizes[i]) for i in live if not placed[i])
            stack = skyline[p]
            for release, size in jobs:
                stack = max(stack, release) + size
            top = max(top, stack)
        return top

    def visit(last_off: int, last_index: int) -> None:
        nonlocal nodes, best_arena, best, exhausted, unplaced_count
        if unplaced_count == 0:
            arena = max(skyline)
            if arena < best_arena:
                best_arena = arena
                best = {items[i].name: offsets[i] for i in range(len(items))}
                best.update({b.name: 0 for b in buffers if b.size == 0})
            return
        resting = {i: max(skyline[p] for p in spans[i]) for i in range(len(items)) if not placed[i]}
        floors = _floors(resting, last_off, last_index, sizes, others)
        if floors is None or bound(floors) >= best_arena:
            return
        candidates = []
        seen_shapes: set[tuple[int, int, int]] = set()
        for i, off in resting.items():
            if shape_of[i] in seen_shapes:
                continue
            seen_shapes.add(shape_of[i])
            if (off, i) > (last_off, last_index) and off + sizes[i] < best_arena:
                candidates.append((off, -sizes[i], i))
        for off, _, i in sorted(candidates):
            if nodes >= node_limit:
                exhausted = False
                return
            nodes += 1
            saved = [skyline[p] for p in spans[i]]
            for p in spans[i]:
                skyline[p] = off + sizes[i]
            placed[i] = True
            unplaced_count -= 1
            offsets[i] = off
            visit(off, i)
            placed[i] = False
            unplaced_count += 1
            for p, old in zip(spans[i], saved):
                skyline[p] = old
            if best_arena <= floor:
                return

    visit(-1, -1)
    return best, exhausted or best_arena <= floor


def fit_search(buffers: Sequence[Buffer], alignment: int, arena: int,
               node_limit: int = FIT_NODE_LIMIT) -> dict[str, int] | None:
    """Offsets that fit every buffer in `arena` bytes, or None if none was found in the budget.

    Depth first over the buffers by decreasing size; each goes at the bottom or at the top of a
    free gap among the buffers live with it (smallest gap first). Trying the top of a gap is what
    greedy placement lacks: it leaves the bottom free for a buffer that comes later in time. After
    each placement, every unplaced buffer live with it must still have a gap that holds it."""
    items = sorted((b for b in buffers if b.size > 0),
                   key=lambda b: (-align_up(b.size, alignment), -_span(b), b.first, b.name))
    sizes = [align_up(b.size, alignment) for b in items]
    others = overlapping(items)
    offsets: list[int | None] = [None] * len(items)
    nodes = 0

    def gaps(i: int) -> list[tuple[int, int]]:
        busy = sorted((offsets[j], offsets[j] + sizes[j]) for j in others[i]
                      if offsets[j] is not None)
        free, low = [], 0
        for lo, hi in busy + [(arena, arena)]:
            if lo - low >= sizes[i]:
                free.append((low, lo))
            low = max(low, hi)
        return free

    def visit(i: int) -> bool:
        nonlocal nodes
        if i == len(items):
            return True
        positions = []
        for lo, hi in sorted(gaps(i), key=lambda g: (g[1] - g[0], g[0])):
            positions += [lo] if hi - lo == sizes[i] else [lo, hi - sizes[i]]
        for off in positions:
            if nodes >= node_limit:
                return False
            nodes += 1
            offsets[i] = off
            if all(offsets[j] is not None or gaps(j) for j in others[i]) and visit(i + 1):
                return True
            offsets[i] = None
        return False

    if not visit(0):
        return None
    placed = {b.name: off for b, off in zip(items, offsets)}
    return {b.name: placed.get(b.name, 0) for b in buffers}


def _exact(buffers: Sequence[Buffer], alignment: int) -> tuple[str, dict[str, int], bool]:
    """Fit in the lower bound if the fit search can; otherwise branch and bound from the best
    greedy placement."""
    start = _best_greedy(buffers, alignment)[1]
    floor = lower_bound(buffers, alignment)[0]
    if _arena_of(start, buffers, alignment) > floor:
        fitted = fit_search(buffers, alignment, floor)
        if fitted is not None:
            return "exact", fitted, True
    offsets, finished = exact_search(buffers, alignment, start)
    return "exact", offsets, finished


# ---- the strategy table ------------------------------------------------------------------------

GREEDY: dict[str, Strategy] = {
    "greedy_size": _greedy(_by_size, best_fit=True),
    "greedy_size_first_fit": _greedy(_by_size, best_fit=False),
    "greedy_conflict": _greedy(_by_conflict, best_fit=True),
    "greedy_peak": _greedy(_by_peak, best_fit=True),
    "greedy_lifetime": _greedy(_by_lifetime, best_fit=True),
}


def _best_greedy(buffers: Sequence[Buffer], alignment: int) -> tuple[str, dict[str, int]]:
    """The greedy placement with the smallest arena (the first in table order on ties)."""
    results = [(name, fn(buffers, alignment)) for name, fn in GREEDY.items()]
    return min(results, key=lambda r: _arena_of(r[1], buffers, alignment))


def _best(buffers: Sequence[Buffer], alignment: int) -> tuple[str, dict[str, int], bool]:
    """(strategy name, offsets, proved optimal): every greedy order, then the exact strategy if the
    best of them is above the lower bound."""
    name, offsets = _best_greedy(buffers, alignment)
    if _arena_of(offsets, buffers, alignment) <= lower_bound(buffers, alignment)[0]:
        return name, offsets, True
    _, searched, finished = _exact(buffers, alignment)
    if _arena_of(searched, buffers, alignment) < _arena_of(offsets, buffers, alignment):
        name, offsets = "exact", searched
    return name, offsets, finished


# Strategies that also say which placement they kept and whether it is proved minimal.
_REPORTING = {"exact": _exact, "best": _best}

STRATEGIES: dict[str, Strategy] = {
    **GREEDY,
    **{name: (lambda fn: lambda buffers, alignment: fn(buffers, alignment)[1])(fn)
       for name, fn in _REPORTING.items()},
}


def plan_offsets(buffers: Sequence[Buffer], alignment: int, strategy: str = "best") -> Plan:
    """Place `buffers` in one arena with the named strategy (see STRATEGIES)."""
    _validate(buffers, alignment)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown memory planning strategy {strategy!r}; known: "
                         f"{', '.join(sorted(STRATEGIES))}")
    if strategy in _REPORTING:
        used, offsets, finished = _REPORTING[strategy](buffers, alignment)
    else:
        used, offsets, finished = strategy, STRATEGIES[strategy](buffers, alignment), False
    arena = _arena_of(offsets, buffers, alignment)
    optimal = finished or arena <= lower_bound(buffers, alignment)[0]
    return Plan(offsets=dict(offsets), arena_bytes=arena, alignment=alignment, strategy=used,
                optimal=optimal)
