"""What a kernel sees of one op: its attributes with defaults, its input and output values."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import TinycError
from ..ir import Op, Value
from ..ops import with_defaults


@dataclass(frozen=True)
class Call:
    op: Op
    attrs: dict[str, Any]
    inputs: list[Value | None]
    output: Value

    @staticmethod
    def of(op: Op, inputs: list[Value], output: Value) -> "Call":
        return Call(op, with_defaults(op), inputs, output)

    @property
    def where(self) -> str:
        return f"op {self.op.name!r} ({self.op.kind})"

    def lowered(self, *keys: str) -> list[Any]:
        """The values of attributes added by the requantize pass; a clear error when absent."""
        missing = [k for k in keys if k not in self.op.attrs]
        if missing:
            raise TinycError(f"{self.where}: integer form lacks {', '.join(missing)}; run the "
                             f"requantize pass before interpreting it")
        return [self.op.attrs[k] for k in keys]

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            raise TinycError(f"{self.where}: {message}")

