"""Structure of an ONNX graph before conversion: unique node names, live nodes, a topological order,
which nodes fold into constants at import, and which op types the frontend cannot convert."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import onnx
from onnx import helper

from ..errors import TinycError
from .registry import DEFAULT_DOMAIN, converter_for, normalize_domain

# Ops whose output depends only on the (static) shape of their input, so they fold even when the
# input is an activation.
SHAPE_OPS = ("Shape", "Size")
# DequantizeLinear of weights must stay an op: the qdq-to-integer pass reads the integer weights.
NEVER_FOLDED = ("DequantizeLinear",)
NONDETERMINISTIC_PREFIXES = ("Random", "Bernoulli", "Multinomial")


@dataclass
class NodeInfo:
    """One ONNX node with a unique, non-empty name and decoded attributes."""

    index: int
    name: str
    op_type: str
    domain: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any] = field(default_factory=dict)
    has_subgraph: bool = False

    def input(self, i: int) -> str:
        """The i-th input name, '' when absent (optional inputs may be missing or empty)."""
        return self.inputs[i] if i < len(self.inputs) else ""

    def has_input(self, i: int) -> bool:
        return bool(self.input(i))

    def attr(self, key: str, default: Any = None) -> Any:
        return self.attrs.get(key, default)

    @property
    def label(self) -> str:
        return f"node {self.name!r} ({self.op_type})"


def _decode(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, list):
        return [_decode(v) for v in value]
    return value


def node_infos(graph: onnx.GraphProto) -> list[NodeInfo]:
    """Every node of `graph` with a unique name: the ONNX name, or 'OpType_N' when it has none
    (a duplicated name gets a numeric suffix)."""
    used = {n.name for n in graph.node if n.name}
    seen: set[str] = set()
    counters: dict[str, int] = {}
    infos = []
    for index, node in enumerate(graph.node):
        name = node.name
        if not name or name in seen:
            base = node.name or node.op_type
            n = counters.get(base, 0)
            while f"{base}_{n}" in used or f"{base}_{n}" in seen:
                n += 1
            counters[base] = n + 1
            name = f"{base}_{n}"
        seen.add(name)
        attrs = {}
        has_subgraph = False
        for a in node.attribute:
            if a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS):
                has_subgraph = True
                continue
            attrs[a.name] = _decode(helper.get_attribute_value(a))
        infos.append(NodeInfo(index, name, node.op_type, normalize_domain(node.domain),
                              list(node.input), list(node.output), attrs, has_subgraph))
    return infos


def live_nodes(nodes: list[NodeInfo], outputs: list[str]) -> list[NodeInfo]:
    """The nodes some graph output depends on (dead branches are ignored, never converted)."""
    producer = {out: node for node in nodes for out in node.outputs if out}
    needed = set(outputs)
    live: set[int] = set()
    stack = [producer[o] for o in outputs if o in producer]
    while stack:
        node = stack.pop()
        if node.index in live:
            continue
        live.add(node.index)
        for name in node.inputs:
            if name and name not in needed:
                needed.add(name)
                if name in producer:
                    stack.append(producer[name])
    return [n for n in nodes if n.index in live]


def topo_order(nodes: list[NodeInfo], available: set[str], strict: bool = True) -> list[NodeInfo]:
    """`nodes` ordered so every input is defined before use (stable). With `strict`, a node reading a
    value that nothing defines raises TinycError naming the node and the value; otherwise such
    nodes are appended in their original order."""
    defined = set(available)
    pending = list(nodes)
    ordered: list[NodeInfo] = []
    while pending:
        rest = []
        for node in pending:
            if all((not n) or n in defined for n in node.inputs):
                ordered.append(node)
                defined.update(o for o in node.outputs if o)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            if strict:
                produced = {o for n in rest for o in n.outputs}
                for node in rest:
                    missing = [n for n in node.inputs if n and n not in defined and n not in produced]
                    if missing:
                        raise TinycError(f"{node.label} reads {missing[0]!r}, which no node, graph input "
                                         f"or initializer defines (a missing initializer?)")
                raise TinycError(f"the graph has a cycle through {rest[0].label}")
            ordered.extend(rest)
            break
        pending = rest
    return ordered


def is_foldable_kind(node: NodeInfo) -> bool:
    """Whether this kind of node may be evaluated at import when its inputs are constant."""
    return (node.domain == DEFAULT_DOMAIN and node.op_type not in NEVER_FOLDED and not node.has_subgraph
            and not node.op_type.startswith(NONDETERMINISTIC_PREFIXES))


def folds(node: NodeInfo, is_const) -> bool:
    """Whether the importer evaluates `node` into constants: a foldable kind whose inputs are all
    constant, or a shape query (shapes are static once the inputs' shapes are fixed)."""
    if not is_foldable_kind(node):
        return False
    if node.op_type in SHAPE_OPS:
        return True
    return all(is_const(n) for n in node.inputs if n)


def fold_plan(nodes: list[NodeInfo], constants: set[str]) -> set[int]:
    """Indices of the nodes (in topological order) that fold; `constants` grows by their outputs."""
    folded = set()
    for node in nodes:
        if folds(node, constants.__contains__):
            folded.add(node.index)
            constants.update(o for o in node.outputs if o)
    return folded


def unsupported_nodes(nodes: list[NodeInfo], folded: set[int]) -> dict[str, list[str]]:
    """ONNX op type -> names of the nodes that neither fold nor have a converter."""
    found: dict[str, list[str]] = {}
    for node in nodes:
        if node.index in folded or converter_for(node.domain, node.op_type) is not None:
            continue
        key = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
        found.setdefault(key, []).append(node.name)
    return found


def format_unsupported(found: dict[str, list[str]]) -> str:
    parts = []
    for op_type, names in sorted(found.items()):
        shown = ", ".join(repr(n) for n in names[:5])
        more = f" and {len(names) - 5} more" if len(names) > 5 else ""
        parts.append(f"{op_type} ({shown}{more})")
    return "unsupported ONNX ops: " + "; ".join(parts)


def find_unsupported(model: onnx.ModelProto) -> dict[str, list[str]]:
    """ONNX op type -> node names, for every live node tinyc can neither fold nor convert.
    Never raises for broken graphs (values nobody defines are treated as run-time values)."""
    graph = model.graph
    nodes = node_infos(graph)
    outputs = [o.name for o in graph.output]
    live = live_nodes(nodes, outputs)
    initializers = {t.name for t in graph.initializer}
    inputs = {i.name for i in graph.input}
    ordered = topo_order(live, initializers | inputs, strict=False)
    folded = fold_plan(ordered, set(initializers))
    return unsupported_nodes(ordered, folded)
