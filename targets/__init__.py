"""Targets: the cores tinyc generates code for, and the kernels that run each op on them.

    get(name) -> Target                      one of names(); TinycError for an unknown name
    names() -> list[str]                     cortex-m0, cortex-m0plus, cortex-m3, cortex-m4, cortex-m7,
                                             cortex-m33, cortex-m55, host
    select_kernels(graph, target) -> Graph   records the kernel of every op (op.attrs["impl"])
    kernel_choices(graph, target)            {op name: KernelChoice} of a graph select_kernels annotated
    select_kernel(target, op, graph)         the kernel for one op (KernelChoice), or None
    kernel(name), all_kernels()              the declarations (tinyc.targets.kernels)

A Target carries the toolchain and flags, ISA features (DSP, Helium, FPU), arena alignment, the QEMU
board and instructions per unit of work; a Kernel is one C function's declaration; a KernelChoice
the facts of running one op with it (scratch bytes, in-place inputs, raster order, work).
See cores.py, registry.py and kernels/.
"""
from __future__ import annotations

from tinyc.errors import TinycError
from tinyc.ir import Graph, Op
from tinyc.ops import KERNEL_ATTR

from .cores import ISAS, TARGETS, Board, Target
from .registry import (VIEW, DTypes, Kernel, KernelChoice, all_kernels, candidates, kernel, kernel_choice,
                       refusals)
from .registry import select_kernel as _select_kernel
from .unsupported import unsupported_error

__all__ = ["Board", "DTypes", "ISAS", "Kernel", "KernelChoice", "Target", "VIEW", "all_kernels", "candidates",
           "get", "kernel", "kernel_choice", "kernel_choices", "names", "refusals", "select_kernel",
           "select_kernels"]


def names() -> list[str]:
    """Every target name, in the order of the table (smallest core first, host last)."""
    return list(TARGETS)


def get(name: str | Target) -> Target:
    """The target called `name` (a Target is returned unchanged)."""
    if isinstance(name, Target):
        return name
    try:
        return TARGETS[name]
    except KeyError:
        raise TinycError(f"unknown target {name!r}; choose one of {', '.join(TARGETS)}") from None


def select_kernel(target: str | Target, op: Op, graph: Graph) -> KernelChoice | None:
    """The kernel that runs `op` on `target` (a Target or its name), or None when there is none."""
    return _select_kernel(get(target), op, graph)


def select_kernels(graph: Graph, target: Target) -> Graph:
    """A copy of `graph` whose every op records the kernel that runs it on `target`
    (op.attrs["impl"], the name of a declared kernel). Raises UnsupportedError naming, grouped by
    cause, every op without one (tinyc.targets.unsupported)."""
    g = graph.copy()
    missing, why_not = [], {}
    for op in g.ops:
        choice = _select_kernel(target, op, g)
        if choice is None:
            missing.append(op)
            why_not[op.name] = _reasons(target, op, g)
        else:
            op.attrs[KERNEL_ATTR] = choice.kernel.name
    if missing:
        raise unsupported_error(g, target, missing, why_not)
    return g


def _reasons(target: Target, op: Op, graph: Graph) -> list[str]:
    """Why each candidate kernel does not run `op`, most preferred first: those that read and write the
    op's dtypes (an int8 convolution's reasons end with the most general int8 kernel's, not with the
    float kernel's dtypes), or every candidate when none does."""
    found = refusals(target, op, graph)
    ins = [graph.values[n] for n in op.inputs if n]
    out = graph.values[op.outputs[0]]
    same = [why for kern, why in found if kern.dtypes is None or kern.dtypes.mismatch(ins, out) is None]
    return same or [why for _, why in found]


def kernel_choices(graph: Graph, target: Target) -> dict[str, KernelChoice]:
    """The recorded kernel of every op of a graph `select_kernels` annotated, with its facts."""
    choices = {}
    for op in graph.ops:
        choice = kernel_choice(target, op, graph)
        if choice is None:
            raise ValueError(f"op {op.name!r} has no kernel: run select_kernels first")
        choices[op.name] = choice
    return choices
