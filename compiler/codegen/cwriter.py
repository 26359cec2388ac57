"""Small helpers for writing deterministic, readable C: identifiers, literals and constant arrays."""
from __future__ import annotations

import re

import numpy as np

C_TYPES = {"int8": "int8_t", "uint8": "uint8_t", "int16": "int16_t", "int32": "int32_t",
           "float32": "float"}
C_KEYWORDS = frozenset("""auto break case char const continue default do double else enum extern float for
goto if inline int long register restrict return short signed sizeof static struct switch typedef union
unsigned void volatile while _Bool _Complex _Imaginary""".split())


class Namer:
    """Turns arbitrary model names into unique C identifiers, deterministically."""

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self.used: set[str] = set(reserved)
        self.names: dict[str, str] = {}
        # base -> the suffix to try first: names are never released, so every smaller one is taken
        # (long model names cut to 48 characters share a base by the thousand)
        self.next_suffix: dict[str, int] = {}

    def __call__(self, key: str, prefix: str = "", base: str | None = None) -> str:
        """The identifier of `key` (the same on every call), made from `prefix` + `base` (default: the
        key itself)."""
        if key in self.names:
            return self.names[key]
        base = re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{key if base is None else base}").strip("_") or "v"
        base = re.sub(r"_+", "_", base)[:48]
        if base[0].isdigit() or base in C_KEYWORDS:
            base = f"v_{base}"
        name, i = base, self.next_suffix.get(base, 1)
        while name in self.used:
            name = f"{base}_{i}"
            i += 1
        self.next_suffix[base] = i
        self.used.add(name)
        self.names[key] = name
        return name


def comment(text: str) -> str:
    """A C block comment that the text can neither close early nor nest (`/*` inside a comment is a
    -Wcomment warning), on one line."""
    for bad, harmless in (("*/", "* /"), ("/*", "/ *"), ("\n", " "), ("\r", " ")):
        text = text.replace(bad, harmless)
    return f"/* {text} */"


def c_float(x: float) -> str:
    """A float literal that reads back as exactly the same float32."""
    f = np.float32(x)
    if not np.isfinite(f):
        raise ValueError(f"non-finite float {x} cannot be a C literal")
    text = np.format_float_positional(f, unique=True, trim="0") if abs(f) >= 1e-4 or f == 0 \
        else np.format_float_scientific(f, unique=True, trim="0")
    if "." not in text and "e" not in text:
        text += ".0"
    if text.endswith("."):
        text += "0"
    return text + "f"


def c_int(x: int) -> str:
    x = int(x)
    if x == -(2 ** 31):
        return "(-2147483647 - 1)"
    return str(x)


def c_array_body(values: np.ndarray, per_line: int = 16, indent: str = "    ") -> str:
    """The `{...}` initialiser for a flat array, fixed width per line (deterministic bytes)."""
    flat = np.asarray(values).reshape(-1)
    if flat.dtype == np.float32:
        items = [c_float(v) for v in flat]
    else:
        items = [c_int(v) for v in flat.tolist()]
    lines = [indent + ", ".join(items[i:i + per_line]) + "," for i in range(0, len(items), per_line)]
    return "{\n" + "\n".join(lines) + "\n}"


def const_array(c_type: str, name: str, values: np.ndarray, align: int, storage: str = "") -> str:
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        raise ValueError(f"empty constant array {name}")
    prefix = f"{storage} " if storage else ""
    return (f"{prefix}const {c_type} {name}[{flat.size}] TINYC_ALIGN({align}) = "
            f"{c_array_body(flat)};\n")
