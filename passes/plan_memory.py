"""plan-memory: give every activation and kernel scratch buffer an offset in one arena.

The schedule is the graph's op order (step i runs graph.ops[i]). Where each value's bytes live:
- constants are in flash: no arena;
- a view (reshape, or any op whose kernel the target marks as a view) shares its input's bytes, so
  values joined by views form one alias class with one home;
- a class holding a graph input lives in the caller's input buffer, else a class holding a graph
  output lives in the caller's buffer of its first output (graph output order): no arena bytes.
  A further graph output in such a class (an output that is a view of the input, or of another
  output) is copied into its own caller buffer at the end of invoke: `output_copies`;
- every other class is an arena buffer live from the step that writes it to the last step that
  reads any of its values. An op whose kernel is in-place safe writes over an input whose class
  dies at that op (not external, at least as large as the output): the two share one buffer;
- a kernel's scratch buffer is live only at its op's step.

`plan_graph` returns the plan as a JSON-able dict (see its docstring); the pass stores it in
graph.meta["memory_plan"], where the code generator reads it. Target facts (alignment, views, scratch
bytes, in-place safety) come from the kernels `select-kernels` recorded on the ops, through
`target_memory`, the one place that reads them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from tinyc import targets
from tinyc.errors import TinycError
from tinyc.ir import Graph, Op
from tinyc.memplan import STRATEGIES, Buffer, check, lower_bound, plan_offsets
from tinyc.ops import is_view
from tinyc.passes import register
from tinyc.targets import Target


@dataclass(frozen=True)
class KernelMemory:
    """What the memory planner needs to know about the kernel chosen for one op."""

    scratch_bytes: int = 0
    # Positions in op.inputs whose buffer the output may start at (the kernel reads each element
    # before writing over it), in order of preference.
    in_place_inputs: tuple[int, ...] = ()
    is_view: bool = False   # no code: the output is the input's bytes
    raster_block: int = 0   # see targets.KernelChoice.raster_block: lets the output overlap its input


@dataclass(frozen=True)
class TargetMemory:
    alignment: int
    kernel_memory: Callable[[Op, Graph], KernelMemory]


def target_memory(target: Target | str) -> TargetMemory:
    """The memory facts of a target: its arena alignment and, per op, the facts of the kernel
    `select_kernels` recorded on it (scratch bytes, in-place inputs, view, raster order). An op without
    a recorded kernel (a graph that was not annotated) is planned as a kernel without scratch that
    cannot work in place, or as a view when the IR defines it as one (tinyc.ops.is_view)."""
    target = targets.get(target)

    def kernel_memory(op: Op, graph: Graph) -> KernelMemory:
        choice = targets.kernel_choice(target, op, graph)
        if choice is None:
            return KernelMemory(is_view=is_view(op, graph.values[op.inputs[0]].shape))
        return KernelMemory(scratch_bytes=choice.scratch_bytes, in_place_inputs=choice.in_place_inputs,
                            is_view=choice.is_view, raster_block=choice.raster_block)

    return TargetMemory(target.alignment, kernel_memory)


@register("plan-memory")
def plan_memory(graph: Graph) -> Graph:
    """Attach the memory plan for the target named by graph.meta["target"] (default "host") as
    graph.meta["memory_plan"] (the dict `plan_graph` returns), using the kernels `select-kernels`
    recorded. Ops and values are unchanged; the code generator lays the arena out by this plan."""
    g = graph.copy()
    g.meta["memory_plan"] = plan_graph(g, g.meta.get("target", "host"))
    return g


def plan_graph(graph: Graph, target: Target | str, strategy: str = "best") -> dict[str, Any]:
    """The memory plan of `graph` on `target` (see `plan_graph_for`)."""
    return plan_graph_for(graph, target_memory(target), strategy)


class _AliasClasses:
    """Union-find over value names; the representative is the class's first value (its root)."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, name: str) -> str:
        while self.parent.get(name, name) != name:
            name = self.parent[name]
        return name

    def join(self, root: str, other: str) -> None:
        self.parent[self.find(other)] = self.find(root)


@dataclass
class _Homes:
    """Where each alias class lives: in the arena, or in a caller's buffer (or flash)."""

    arena_classes: list[str] = field(default_factory=list)
    external: dict[str, str] = field(default_factory=dict)
    external_buffer: dict[str, str] = field(default_factory=dict)
    output_copies: dict[str, str] = field(default_factory=dict)


def _alias_classes(graph: Graph, kernels: list[KernelMemory]) -> tuple[_AliasClasses, dict[str, list[str]]]:
    """Values joined by views, and the values of each class (keyed by its root)."""
    classes = _AliasClasses()
    for op, kernel in zip(graph.ops, kernels):
        if kernel.is_view:
            classes.join(op.inputs[0], op.outputs[0])
    # Every value the schedule touches ("" names an absent optional input).
    touched = [*graph.inputs,
               *(n for op in graph.ops for n in [*op.inputs, *op.outputs] if n in graph.values)]
    members: dict[str, list[str]] = {}
    for name in dict.fromkeys(touched):
        members.setdefault(classes.find(name), []).append(name)
    return classes, members


def _homes(graph: Graph, members: dict[str, list[str]]) -> _Homes:
    homes = _Homes()
    for root, vals in members.items():
        outputs_here = [o for o in dict.fromkeys(graph.outputs) if o in vals]
        if graph.values[root].is_const:  # a view of a constant: flash
            home, kind = root, None
        elif root in graph.inputs:
            home, kind = root, "input"
        elif outputs_here:
            home, kind = outputs_here[0], "output"
        else:
            homes.arena_classes.append(root)
            continue
        for out in outputs_here:
            if out != home:
                homes.output_copies[out] = home
        if kind is not None:
            for v in vals:
                homes.external[v] = kind
                homes.external_buffer[v] = home
    return homes


def _lifetimes(graph: Graph, kernels: list[KernelMemory],
               classes: _AliasClasses) -> tuple[dict[str, int], dict[str, int]]:
    """Per class root: the step that writes it and the last step that reads any of its values."""
    first: dict[str, int] = {}
    last: dict[str, int] = {}
    for step, (op, kernel) in enumerate(zip(graph.ops, kernels)):
        for name in op.inputs:
            if name in graph.values:
                root = classes.find(name)
                last[root] = max(last.get(root, step), step)
        if not kernel.is_view:
            root = classes.find(op.outputs[0])
            first.setdefault(root, step)
            last.setdefault(root, step)
    return first, last


def overlap_lag(op: Op, graph: Graph, block: int, alignment: int) -> int | None:
    """Bytes by which the output of a raster-order convolution must start below its input so that no
    group of `block` output pixels overwrites input bytes that it or a later group still reads
    (None when the op is not an NHWC convolution, or depthwise convolution, with input and output of
    one dtype)."""
    x, y = graph.values[op.inputs[0]], graph.values[op.outputs[0]]
    if (op.kind not in ("conv2d", "depthwise_conv2d") or len(x.shape) != 4 or x.layout != "NHWC"
            or y.layout != "NHWC" or x.dtype != y.dtype):
        return None
    item = np.dtype(x.dtype).itemsize
    n, h, w, c = x.shape
    _, oh, ow, oc = y.shape
    kh, kw = graph.values[op.inputs[1]].shape[1:3]
    sh, sw = op.attrs.get("strides", [1, 1])
    dh, dw = op.attrs.get("dilations", [1, 1])
    pads = op.attrs.get("pads", [0, 0, 0, 0])
    never = np.iinfo(np.int64).max

    def first_valid(out: int, stride: int, pad: int, taps: int, dilation: int, extent: int) -> np.ndarray:
        """Per output coordinate, the lowest input coordinate its window reads (never: none)."""
        coords = np.arange(out)[:, None] * stride - pad + np.arange(taps)[None, :] * dilation
        return np.where((coords >= 0) & (coords < extent), coords, never).min(axis=1)

    rows = first_valid(oh, sh, pads[0], kh, dh, h)
    cols = first_valid(ow, sw, pads[1], kw, dw, w)
    # The lowest input byte each output pixel reads: its first valid row, then its first valid column.
    reads = (rows[None, :, None] != never) & (cols[None, None, :] != never)
    row, col = np.where(rows == never, 0, rows), np.where(cols == never, 0, cols)
    first = np.where(reads, ((np.arange(n)[:, None, None] * h + row[None, :, None]) * w
                             + col[None, None, :]) * c * item, never).reshape(-1)
    still_read = np.minimum.accumulate(first[::-1])[::-1]   # lowest byte read from pixel q onwards
    starts = np.arange(0, first.size, block)
    written_end = np.minimum(starts + block, first.size) * oc * item
    lag = int(max(0, (written_end - still_read[starts]).max()))
    return -(-lag // alignment) * alignment


def _share_in_place(graph: Graph, kernels: list[KernelMemory], classes: _AliasClasses,
                    arena_classes: list[str], last: dict[str, int], alignment: int, overlap: bool
                    ) -> tuple[dict[str, list[str]], dict[str, int], list[str], list[str]]:
    """Arena buffers as lists of class roots ({buffer root: roots}), each root's byte position in its
    buffer (relative, may be negative), the ops that work in place and those whose output overlaps
    their input. An op's output class joins the buffer of an input whose buffer is read for the last
    time by this op: at the input's position when its kernel may overwrite that input (and the output
    is not larger), or, with `overlap`, a lag below it when its kernel computes pixels in raster order
    (overlap_lag)."""
    buffer_of = {root: root for root in arena_classes}
    buffers: dict[str, list[str]] = {root: [root] for root in arena_classes}
    position = {root: 0 for root in arena_classes}
    # The last step reading any class of each buffer (kept as buffers grow: a long chain of in-place
    # layers makes one buffer of thousands of classes).
    read_until = {root: last[root] for root in arena_classes}
    in_place: list[str] = []
    overlapped: list[str] = []

    def dies_here(name: str, step: int) -> bool:
        # Earlier classes of the buffer died where the next one was written, so the buffer is free
        # after this op exactly when its last read is here.
        return read_until[buffer_of[classes.find(name)]] == step

    def join(out_root: str, name: str, offset: int) -> None:
        shared = buffer_of[classes.find(name)]
        buffers[shared].append(out_root)
        del buffers[out_root]
        read_until[shared] = max(read_until[shared], read_until.pop(out_root))
        buffer_of[out_root] = shared
        position[out_root] = position[classes.find(name)] + offset

    for step, (op, kernel) in enumerate(zip(graph.ops, kernels)):
        out_root = classes.find(op.outputs[0])
        if kernel.is_view or out_root not in buffer_of:
            continue
        candidates = [op.inputs[i] for i in kernel.in_place_inputs]
        for name in candidates:
            if name not in graph.values or classes.find(name) not in buffer_of:
                continue
            if dies_here(name, step) and graph.values[op.outputs[0]].nbytes <= graph.values[name].nbytes:
                join(out_root, name, 0)
                in_place.append(op.name)
                break
        else:
            name = op.inputs[0]
            if (overlap and kernel.raster_block and classes.find(name) in buffer_of
                    and dies_here(name, step)):
                lag = overlap_lag(op, graph, kernel.raster_block, alignment)
                if lag is not None and lag < graph.values[op.outputs[0]].nbytes:
                    join(out_root, name, -lag)
                    overlapped.append(op.name)
    return buffers, position, in_place, overlapped


def plan_graph_for(graph: Graph, target: TargetMemory, strategy: str = "best") -> dict[str, Any]:
    """Plan the arena of `graph` run in graph.ops order. Returns a JSON-able dict:
    arena_bytes, lower_bound (most aligned bytes live at one step), alignment, strategy (asked for),
    placed_by (strategy whose placement was kept), optimal (arena proved minimal),
    offsets {value: arena offset} (views and in-place outputs included),
    scratch {op name: {offset, size}}, in_place [op names whose output overwrites an input],
    overlapped [op names whose output starts a lag below its input and overlaps it],
    peak {step, op, bytes, live: [values], scratch: [op names]} (the step of the lower bound),
    external {value: "input" | "output"} (bytes in a caller's buffer),
    external_buffer {value: graph input/output whose caller buffer holds it},
    views {value: the value whose bytes it is}, output_copies {graph output: value to copy from}."""
    if strategy not in STRATEGIES:
        raise TinycError(f"unknown memory planning strategy {strategy!r}; choose one of "
                         f"{', '.join(sorted(STRATEGIES))}")
    names = [op.name for op in graph.ops]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"op names must be unique to plan memory; repeated: {', '.join(dup[:5])}")
    kernels = [target.kernel_memory(op, graph) for op in graph.ops]
    classes, members = _alias_classes(graph, kernels)
    homes = _homes(graph, members)
    first, last = _lifetimes(graph, kernels, classes)

    def attempt(overlap: bool):
        shared, position, in_place, overlapped = _share_in_place(
            graph, kernels, classes, homes.arena_classes, last, target.alignment, overlap)
        base = {root: min(position[r] for r in roots) for root, roots in shared.items()}
        buffers = [Buffer(f"value:{root}",
                          max(position[r] - base[root] + graph.values[v].nbytes
                              for r in roots for v in members[r]),
                          min(first[r] for r in roots), max(last[r] for r in roots))
                   for root, roots in shared.items()]
        for step, (op, kernel) in enumerate(zip(graph.ops, kernels)):
            if kernel.scratch_bytes > 0 and not kernel.is_view:
                buffers.append(Buffer(f"scratch:{op.name}", kernel.scratch_bytes, step, step))
        plan = plan_offsets(buffers, target.alignment, strategy)
        check(plan, buffers)
        offsets = {v: plan.offsets[f"value:{root}"] + position[r] - base[root]
                   for root, roots in shared.items() for r in roots for v in members[r]}
        return plan, buffers, offsets, in_place, overlapped

    # Overlapping outputs with inputs lengthens some buffers' lives: keep it only when it pays.
    plan, buffers, offsets, in_place, overlapped = attempt(overlap=False)
    with_overlap = attempt(overlap=True)
    if with_overlap[0].arena_bytes < plan.arena_bytes:
        plan, buffers, offsets, in_place, overlapped = with_overlap
    scratch_of = {f"scratch:{op.name}": op.name for op, kernel in zip(graph.ops, kernels)
                  if kernel.scratch_bytes > 0 and not kernel.is_view}
    floor, peak_step, peak_live = lower_bound(buffers, target.alignment)

    scratch = {scratch_of[b.name]: {"offset": plan.offsets[b.name], "size": b.size}
               for b in buffers if b.name in scratch_of}
    peak: dict[str, Any] = {"step": peak_step, "op": None, "bytes": floor, "live": [], "scratch": []}
    if peak_step is not None:
        peak["op"] = graph.ops[peak_step].name
        peak["live"] = [r for r in homes.arena_classes if first[r] <= peak_step <= last[r]]
        peak["scratch"] = [scratch_of[n] for n in peak_live if n in scratch_of]
    return {
        "arena_bytes": plan.arena_bytes,
        "lower_bound": floor,
        "alignment": target.alignment,
        "strategy": strategy,
        "placed_by": plan.strategy,
        "optimal": plan.optimal,
        "offsets": offsets,
        "scratch": scratch,
        "in_place": in_place,
        "overlapped": overlapped,
        "peak": peak,
        "external": homes.external,
        "external_buffer": homes.external_buffer,
        "views": {v: root for root, vals in members.items() for v in vals if v != root},
        "output_copies": homes.output_copies,
    }
