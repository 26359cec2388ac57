"""runtime_c: tinyc's portable C99 implementations of the CMSIS-NN functions generated code calls,
plus tinyc's own small kernels (tinyc_*.c), and the bare-metal harness (baremetal/).

`runtime_files(functions)` picks the sources a generated model needs: every header, and the .c files
that define the called functions or anything those files call in turn.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent
BAREMETAL = ROOT / "baremetal"

_DEFINITION = re.compile(r"^[A-Za-z_][\w \t\*]*?\b((?:arm|tinyc)_\w+)\s*\([^;]*?\)\s*\{", re.M | re.S)
_CALL = re.compile(r"\b((?:arm|tinyc)_\w+)\s*\(")


@lru_cache(maxsize=None)
def _index() -> tuple[dict[str, str], dict[str, frozenset[str]]]:
    """(function -> defining file, file -> functions it calls), over the top-level .c files."""
    defined_in: dict[str, str] = {}
    calls: dict[str, frozenset[str]] = {}
    for path in sorted(ROOT.glob("*.c")):
        text = path.read_text()
        for name in _DEFINITION.findall(text):
            defined_in.setdefault(name, path.name)
        calls[path.name] = frozenset(_CALL.findall(text))
    return defined_in, calls


def runtime_files(functions: list[str] | tuple[str, ...]) -> dict[str, bytes]:
    """Headers plus the .c files needed for `functions`, as {relative path: bytes}."""
    defined_in, calls = _index()
    needed: set[str] = set()
    pending = [defined_in[f] for f in functions if f in defined_in]
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed.add(name)
        pending.extend(defined_in[f] for f in calls[name] if f in defined_in)
    files = {p.name: p.read_bytes() for p in sorted(ROOT.glob("*.h"))}
    files.update({name: (ROOT / name).read_bytes() for name in sorted(needed)})
    return files
