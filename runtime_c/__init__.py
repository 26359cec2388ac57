"""runtime_c: tinyc's portable C99 implementations of the CMSIS-NN functions generated code calls,
tinyc's own kernels (tinyc_*.c), and the bare-metal harness (baremetal/).

Each kernel declares the .c files that define it (tinyc.targets.kernels); `closure(sources)` adds
the files those call into, and `runtime_files(sources)` returns what a generated model copies: every
header and that closure.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

ROOT = Path(__file__).resolve().parent
BAREMETAL = ROOT / "baremetal"

_DEFINITION = re.compile(r"^[A-Za-z_][\w \t\*]*?\b((?:arm|tinyc)_\w+)\s*\([^;]*?\)\s*\{", re.M | re.S)
_CALL = re.compile(r"\b((?:arm|tinyc)_\w+)\s*\(")


@lru_cache(maxsize=None)
def index() -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """(function -> defining file, file -> functions it calls), over the top-level .c files."""
    defined_in: dict[str, str] = {}
    calls: dict[str, frozenset[str]] = {}
    for path in sorted(ROOT.glob("*.c")):
        text = path.read_text()
        for name in _DEFINITION.findall(text):
            defined_in.setdefault(name, path.name)
        calls[path.name] = frozenset(_CALL.findall(text))
    return defined_in, calls


def closure(sources: Iterable[str]) -> list[str]:
    """`sources` (runtime_c .c file names) and, transitively, the files defining what they call."""
    defined_in, calls = index()
    needed: set[str] = set()
    pending = list(sources)
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        if name not in calls:
            raise ValueError(f"runtime_c has no source {name!r}")
        needed.add(name)
        pending.extend(defined_in[f] for f in calls[name] if f in defined_in)
    return sorted(needed)


def runtime_files(sources: Iterable[str]) -> dict[str, bytes]:
    """Every header plus `sources` and what they need (`closure`), as {file name: bytes}."""
    files = {p.name: p.read_bytes() for p in sorted(ROOT.glob("*.h"))}
    files.update({name: (ROOT / name).read_bytes() for name in closure(sources)})
    return files
