"""Why ops have no kernel: one cause per op, grouped into one readable line.

The cause of an op no kernel runs is, in a quantised model: what a lowering pass recorded when it
left the op in its float form (graph.meta[NOT_LOWERED]); for another float op, that no pass lowers
it to int8 (float kernels run float models only). Otherwise, and in a float model, it is why the
most general kernel for the op's dtypes refuses it. A quantize or dequantize op left without a
kernel next to such ops is their consequence and is not listed on its own.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

from tinyc.errors import UnsupportedError
from tinyc.ir import NOT_LOWERED, Graph, Op

from .cores import Target
from .registry import candidates

CONVERSIONS = ("quantize", "dequantize")
MAX_CAUSES = 4
MAX_NODES = 3
MAX_NAME = 48  # characters of a node name shown (converted models have very long names)


@dataclass(frozen=True)
class Refusal:
    node: str
    op: str
    cause: str


def quantised(graph: Graph) -> bool:
    """The graph holds a quantised value or a quantize/dequantize op (an int8 model, maybe with float
    inputs or outputs)."""
    return any(op.kind in CONVERSIONS for op in graph.ops) or any(
        v.quant is not None for v in graph.values.values())


def _cause(graph: Graph, target: Target, op: Op, why_not: list[str]) -> str:
    if quantised(graph):
        note = graph.meta.get(NOT_LOWERED, {}).get(op.name)
        if note:
            return f"{op.kind}: {note}"
        if graph.values[op.outputs[0]].dtype == "float32" and op.kind not in CONVERSIONS:
            return (f"float {op.kind} that no pass lowers to int8 (it is not between DequantizeLinear and "
                    f"QuantizeLinear)")
    if not why_not:
        return f"{op.kind}: no {target.name} kernel implements it"
    return f"{op.kind}: {why_not[-1]}"


def refusals(graph: Graph, target: Target, ops: list[Op], why_not: dict[str, list[str]]) -> list[Refusal]:
    """The cause of each op of `ops` (ops no kernel runs on `target`; `why_not[op.name]` the reasons of
    its candidate kernels, most preferred first), dropping conversions that only follow from others."""
    found = [Refusal(op.name, op.kind, _cause(graph, target, op, why_not.get(op.name, []))) for op in ops]
    primary = [r for r in found if r.op not in CONVERSIONS]
    return primary or found


def _short(name: str) -> str:
    return name if len(name) <= MAX_NAME else name[:MAX_NAME - 3] + "..."


def format_refusals(target: Target, found: list[Refusal]) -> str:
    """One line: the causes in order of first appearance, each with (some of) its nodes."""
    causes: dict[str, list[str]] = {}
    for r in found:
        causes.setdefault(r.cause, []).append(r.node)
    parts = []
    for cause, nodes in list(causes.items())[:MAX_CAUSES]:
        shown = ", ".join(_short(n) for n in nodes[:MAX_NODES]) + (
            f" and {len(nodes) - MAX_NODES} more" if len(nodes) > MAX_NODES else "")
        parts.append(f"{cause} (node{'s' if len(nodes) > 1 else ''} {shown})")
    more = len(causes) - MAX_CAUSES
    tail = f"; and {more} more cause{'s' if more > 1 else ''}" if more > 0 else ""
    full = " (tinyc inspect MODEL --json lists every op)" if more > 0 or any(len(n) > MAX_NODES for n in causes.values()) else ""
    ops = len(found)
    return f"no {target.name} kernel for {ops} op{'s' if ops > 1 else ''}: {'; '.join(parts)}{tail}{full}"


def unsupported_error(graph: Graph, target: Target, ops: list[Op], why_not: dict[str, list[str]]) -> UnsupportedError:
    found = refusals(graph, target, ops, why_not)
    return UnsupportedError(format_refusals(target, found), [asdict(r) for r in found])
