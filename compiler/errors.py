"""User-facing errors: one line saying what is wrong, where in the model, and what to do.

The CLI prints `error: <message>` and exits with code 2 for these; anything else is a bug.
"""


class TinycError(Exception):
    """An error caused by the user's input (model, options, files), not by tinyc."""


class UnsupportedError(TinycError):
    """The model uses something tinyc does not implement (ops, dtypes, attributes)."""
