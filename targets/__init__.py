"""Targets: the cores tinyc generates code for, and which kernel runs each op on them.

    get(name) -> Target                      one of names(); TinycError for an unknown name
    names() -> list[str]                     cortex-m0, cortex-m0plus, cortex-m3, cortex-m4, cortex-m7,
                                             cortex-m33, cortex-m55, host
    select_kernel(target, op, graph) -> KernelChoice | None
    fc_kernel_sums(weights, bias, input_offset) -> int32 array for Helium fully connected layers

A Target carries the compiler flags, ISA features (DSP, Helium, FPU), arena alignment, the QEMU board
and a cost model; a KernelChoice the function to call, its scratch bytes on that target and whether
it may write its output over its input. See cores.py and kernels.py.
"""
from __future__ import annotations

from tinyc.errors import TinycError
from tinyc.ir import Graph, Op

from .cores import TARGETS, CostModel, Target
from .kernels import KernelChoice, fc_kernel_sums
from .kernels import select_kernel as _select_kernel

__all__ = ["CostModel", "KernelChoice", "Target", "fc_kernel_sums", "get", "names", "select_kernel"]


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
