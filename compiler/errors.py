"""User-facing errors: one line saying what is wrong, where in the model, and what to do.

The CLI prints `error: <message>` and exits with code 2 for these; anything else is a bug.
"""
from __future__ import annotations

from typing import Any


class TinycError(Exception):
    """An error caused by the user's input (model, options, files), not by tinyc."""


class UnsupportedError(TinycError):
    """The model uses something tinyc does not implement (ops, dtypes, attributes). `details` lists
    every case when the one-line message shows only some (e.g. {"node", "op", "cause"} per op)."""

    def __init__(self, message: str, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.details = details or []
