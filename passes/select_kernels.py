"""select-kernels: record on every op the kernel that runs it on the graph's target."""
from __future__ import annotations

from tinyc import targets
from tinyc.ir import Graph
from tinyc.passes import register


@register("select-kernels")
def select_kernels(graph: Graph) -> Graph:
    """For the target named by graph.meta["target"] (default "host"), every op gets the attribute
    `kernel`: the name of the declared kernel (tinyc.targets.kernels) that runs it, the first in order
    of preference whose dtypes, instruction sets and preconditions it meets ("view" for an op whose
    output is its input's bytes). The planner, code generator and report read this choice; nothing
    selects again. Ops and values are otherwise unchanged; an op no kernel runs is an error that
    lists every such op."""
    return targets.select_kernels(graph, targets.get(graph.meta.get("target", "host")))
