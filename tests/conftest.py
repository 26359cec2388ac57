"""Shared test set-up: the rewrite passes check their use-lists after every edit (passes/_patterns)."""
from tinyc.passes import _patterns

_patterns.CHECK_INDEX = True
