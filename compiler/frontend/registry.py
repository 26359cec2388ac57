"""Which ONNX op types the frontend converts, and the function converting each.

A converter is `fn(ctx: ImportContext, node: NodeInfo) -> None`; it reads the node's inputs through
the context and emits IR ops. Converters register themselves with `@converts("Conv", ...)`.
"""
from __future__ import annotations

import importlib
from typing import Callable

DEFAULT_DOMAIN = ""
MS_DOMAIN = "com.microsoft"

_CONVERTERS: dict[tuple[str, str], Callable] = {}
_MODULES = ("convert_float", "convert_qdq", "convert_qop")
_loaded = False


def normalize_domain(domain: str) -> str:
    return DEFAULT_DOMAIN if domain in ("", "ai.onnx") else domain


def converts(*op_types: str, domain: str = DEFAULT_DOMAIN) -> Callable[[Callable], Callable]:
    def wrap(fn: Callable) -> Callable:
        for op_type in op_types:
            _CONVERTERS[(domain, op_type)] = fn
        return fn
    return wrap


def _load() -> None:
    global _loaded
    if not _loaded:
        for module in _MODULES:
            importlib.import_module(f"{__package__}.{module}")
        _loaded = True


def converter_for(domain: str, op_type: str) -> Callable | None:
    _load()
    return _CONVERTERS.get((normalize_domain(domain), op_type))
