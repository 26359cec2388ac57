"""tinyc passes: each file holds one transformation, a function Graph -> Graph registered by name.

A pass never mutates its argument (it works on `graph.copy()`, whose constant arrays are shared and
read-only), keeps the graph's interface (input and output names, shapes, dtypes, layouts) and returns a
graph that verifies. `tinyc opt -p a,b` runs
passes by these names.
"""
from __future__ import annotations

import importlib
from typing import Callable

from tinyc.ir import Graph

PassFn = Callable[[Graph], Graph]
_REGISTRY: dict[str, PassFn] = {}

# Module per pass; imported lazily so `import tinyc.passes` stays cheap.
_MODULES = {
    "canonicalize": "canonicalize",
    "fuse": "fuse",
    "qdq-to-integer": "qdq_to_integer",
    "requantize": "requantize",
    "layout": "layout",
    "quantize": "quantize",
    "select-kernels": "select_kernels",
    "plan-memory": "plan_memory",
}

# What `tinyc compile/run` apply after import, in order: the target-independent lowering. Compiling
# for a target then runs TARGET_PIPELINE with graph.meta["target"] set (tinyc.driver.for_target).
DEFAULT_PIPELINE = ["canonicalize", "fuse", "qdq-to-integer", "fuse", "requantize", "layout"]
TARGET_PIPELINE = ["select-kernels", "plan-memory"]


def register(name: str) -> Callable[[PassFn], PassFn]:
    def wrap(fn: PassFn) -> PassFn:
        _REGISTRY[name] = fn
        fn.pass_name = name  # type: ignore[attr-defined]
        return fn
    return wrap


def get(name: str) -> PassFn:
    if name not in _REGISTRY:
        module = _MODULES.get(name)
        if module is None:
            raise KeyError(f"unknown pass {name!r}; known passes: {', '.join(sorted(_MODULES))}")
        importlib.import_module(f"tinyc.passes.{module}")
    return _REGISTRY[name]


def names() -> list[str]:
    return sorted(_MODULES)
