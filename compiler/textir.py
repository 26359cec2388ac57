"""tinyc's textual IR: an MLIR-like printer and parser for `tinyc.ir.Graph`.

    graph @kws(%input_1: tensor<1x1x49x10xi8, NCHW, q<0.5847030282020569, 83>>) -> (%y) {
      meta {"opset": 13}
      %w0 = const tensor<64x1x10x4xi8, OIHW, q<[0.1, 0.2, ...], [0, 0, ...], axis=0>> dense<"0a0bff...">
      %b0 = const tensor<4xi32> dense<[1, -2, 3, 0]>
      %y = conv2d(%input_1, %w0, %b0) {activation = "relu", pads = [4, 1, 5, 1]} : tensor<1x64x25x5xi8, NCHW, q<0.1, -128>> loc("conv0")
      return %y
    }

Forms (grammar in textir.lark; `//` starts a comment):
- Names: `%value` and `@graph` print bare when they only use letters, digits and `_ . $ -`, otherwise
  quoted with JSON escapes: `%"model/conv;relu"`. Op names live in `loc("...")`; a hand-written op
  without `loc` is named after its first result.
- Types: `tensor<DIMSxELEM[, LAYOUT][, QUANT]>`, e.g. `tensor<1x3x8x8xf32, NCHW>`, `tensor<f32>` for a
  scalar. Element types: i1 (bool), i8, ui8, i16, i32, i64, f32. QUANT is `q<scale, zero_point>` per tensor
  or `q<[scales], [zero_points], axis=A>` per slice. Floats print with repr(), which round-trips doubles.
- Attributes: `{key = value, ...}` sorted by key, omitted when empty. Values: ints (`3`), floats (always
  with `.`, an exponent, `inf` or `nan`: `3.0`, `1e-05`), strings (`"relu"`), `true`/`false`, and lists of
  these (`[1, 2]`, `[0.5]`). An empty list `[]` parses as an empty Python list (read it as a list of ints).
  Tuples print as lists and come back as lists.
- Constants: `%w = const TYPE dense<...>`, printed right before the first op that reads them. The literal
  is a flat list of elements when there are at most 16 (floats in their shortest exact form) and
  otherwise the little-endian bytes in hex: `dense<"0a0bff">`. Float constants holding NaN always print
  in hex so the exact bits survive. The parser also accepts one element repeated: `dense<0.0>`.
- `print_graph(graph, elide_constants=True)` prints constants of more than 16 elements as
  `dense_resource<__elided__>` (as MLIR does). Parsing that gives a constant of ZEROS of the declared
  shape and dtype: the text stays readable and parsable, the numbers are gone.
- `meta {...}`: the graph's meta dict as one line of JSON (keys sorted). Tuples in meta come back as lists.
- `%v = decl TYPE`: a value the graph declares but no op produces and that is neither an input nor a
  constant (left by a pass that forgot to drop it); printed after the ops so the text shows the graph
  exactly as it is.
- `return %a, %b` repeats the outputs listed in the header `-> (%a, %b)`; the parser checks they agree.

print -> parse -> print is the identity, and parse(print(g)) equals g. The parser only builds Values and
Ops; callers run tinyc.verify.verify. A name defined twice (an op writing a graph input, a value produced
twice) is accepted when both definitions declare the same type, so the verifier can name the problem.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from .errors import TinycError
from .ir import Graph, Op, QuantParams, Value

ELIDE_ABOVE = 16  # constants with more elements than this print elided (elide_constants=True) or in hex
ELEMENT_TYPES = {"bool": "i1", "int8": "i8", "uint8": "ui8", "int16": "i16", "int32": "i32",
                 "int64": "i64", "float32": "f32"}
DTYPE_OF_ELEMENT = {text: dtype for dtype, text in ELEMENT_TYPES.items()}
_BARE_NAME = re.compile(r"[A-Za-z0-9_.$-]+")
_BARE_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


# ---- printing ------------------------------------------------------------------------------------

def quote(text: str) -> str:
    """`text` as a double-quoted string with JSON escapes; every unprintable character is escaped so
    a quoted string never spans lines."""
    out = ['"']
    for ch in text:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            if code > 0xFFFF:  # JSON spells astral characters as a surrogate pair
                code -= 0x10000
                out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
            else:
                out.append(f"\\u{code:04x}")
    out.append('"')
    return "".join(out)


def _ref(sigil: str, name: str) -> str:
    return sigil + (name if _BARE_NAME.fullmatch(name) else quote(name))


def _float(x: float) -> str:
    # repr() is the shortest text that reads back as the same double; it always contains '.', 'e',
    # 'inf' or 'nan', which is how the parser tells floats from ints.
    return repr(float(x))


def _type(value: Value) -> str:
    if value.dtype not in ELEMENT_TYPES:
        raise ValueError(f"value {value.name!r} has dtype {value.dtype!r}, which the textual IR cannot print")
    parts = ["".join(f"{d}x" for d in value.shape) + ELEMENT_TYPES[value.dtype]]
    if value.layout:
        parts.append(value.layout)
    if value.quant is not None:
        parts.append(_quant(value.quant))
    return f"tensor<{', '.join(parts)}>"


def _quant(q: QuantParams) -> str:
    if q.axis is None and len(q.scale) == 1:
        return f"q<{_float(q.scale[0])}, {q.zero_point[0]}>"
    text = (f"q<[{', '.join(_float(s) for s in q.scale)}], "
            f"[{', '.join(str(z) for z in q.zero_point)}]")
    if q.axis is not None:
        text += f", axis={q.axis}"
    return text + ">"


def _attr_scalar(value: Any, where: str) -> str:
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return _float(value)
    if isinstance(value, str):
        return quote(value)
    raise TypeError(f"{where} has a value of type {type(value).__name__}; attributes are int, float, "
                    f"str, bool or lists of these")


def _attr_value(value: Any, where: str) -> str:
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_attr_scalar(v, where) for v in value) + "]"
    return _attr_scalar(value, where)


def _attrs(op: Op) -> str:
    if not op.attrs:
        return ""
    items = []
    for key in sorted(op.attrs):
        shown = key if _BARE_KEY.fullmatch(key) else quote(key)
        items.append(f"{shown} = {_attr_value(op.attrs[key], f'attribute {key!r} of op {op.name!r}')}")
    return " {" + ", ".join(items) + "}"


def _element(x: Any, dtype: str) -> str:
    if dtype == "bool":
        return "true" if x else "false"
    if dtype == "float32":
        short = str(np.float32(x))  # numpy's shortest text for a float32
        exact = short if np.float32(float(short)).tobytes() == np.float32(x).tobytes() else repr(float(x))
        return exact
    return str(int(x))


def _dense(value: Value, elide: bool) -> str:
    data = np.asarray(value.data)
    if data.size > ELIDE_ABOVE:
        if elide:
            return "dense_resource<__elided__>"
    elif str(data.dtype) in ELEMENT_TYPES and not (data.dtype.kind == "f" and np.isnan(data).any()):
        return "dense<[" + ", ".join(_element(x, str(data.dtype)) for x in data.reshape(-1)) + "]>"
    little = np.ascontiguousarray(data).astype(data.dtype.newbyteorder("<"), copy=False)
    return f'dense<"{little.tobytes().hex()}">'


def print_graph(graph: Graph, elide_constants: bool = False) -> str:
    """The graph in textual IR (see the module docstring). Deterministic: equal graphs print equal text."""
    values = graph.values
    for name in graph.inputs:
        if name not in values:
            raise ValueError(f"graph input {name!r} has no value")
    args = ", ".join(f"{_ref('%', n)}: {_type(values[n])}" for n in graph.inputs)
    outs = ", ".join(_ref("%", n) for n in graph.outputs)
    lines = [f"graph {_ref('@', graph.name)}({args}) -> ({outs}) {{"]
    if graph.meta:
        lines.append(f"  meta {json.dumps(graph.meta, sort_keys=True)}")

    # Names whose whole definition (data included) is in the text already.
    written = {n for n in graph.inputs if not values[n].is_const}

    def const_line(name: str) -> str:
        written.add(name)
        v = values[name]
        return f"  {_ref('%', name)} = const {_type(v)} {_dense(v, elide_constants)}"

    for op in graph.ops:
        for name in op.inputs:
            if name in values and values[name].is_const and name not in written:
                lines.append(const_line(name))
        lines.append("  " + _op_line(op, values))
        written.update(n for n in op.outputs if n in values and not values[n].is_const)

    rest = [n for n in graph.outputs if n in values and n not in written]
    rest += sorted(n for n in values if n not in written and n not in rest)
    for name in rest:
        if values[name].is_const:
            lines.append(const_line(name))
        else:
            lines.append(f"  {_ref('%', name)} = decl {_type(values[name])}")
            written.add(name)
    lines.append(f"  return {outs}".rstrip())
    lines.append("}")
    return "\n".join(lines) + "\n"


def _op_line(op: Op, values: dict[str, Value]) -> str:
    text = ""
    if op.outputs:
        text = ", ".join(_ref("%", n) for n in op.outputs) + " = "
    text += f"{op.kind}({', '.join(_ref('%', n) for n in op.inputs)}){_attrs(op)}"
    declared = [n in values for n in op.outputs]
    if all(declared) and op.outputs:
        text += " : " + ", ".join(_type(values[n]) for n in op.outputs)
    elif any(declared):
        raise ValueError(f"op {op.name!r} ({op.kind}) has outputs both with and without a value")
    return text + f" loc({quote(op.name)})"


# ---- parsing -------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _lark() -> Lark:
    grammar = (Path(__file__).with_name("textir.lark")).read_text()
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True,
                maybe_placeholders=False)


# How a syntax error names what the parser expected instead.
_TERMINAL_WORDS = {
    "VALUE_NAME": "a value name (%name)", "GLOBAL_NAME": "a graph name (@name)",
    "NAME": "a name", "SHAPE_DTYPE": "a shape and element type (e.g. 1x3xf32)",
    "LAYOUT": "a layout (e.g. NCHW)", "FLOAT": "a float", "INT": "an integer", "STRING": "a string",
    "HEX_STRING": "a hex string", "JSON_OBJECT": "a JSON object", "$END": "end of input",
}


def parse(text: str, source: str = "<input>") -> Graph:
    """Build the Graph that `text` (textual IR) describes. Raises TinycError with one line
    `<source>:LINE:COL: what is wrong` for malformed text. Does not verify the graph."""
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as exc:
        raise TinycError(_syntax_message(exc, text, source)) from None
    return _Builder(source).graph(tree)


def _describe(terminal: str) -> str:
    if terminal in _TERMINAL_WORDS:
        return _TERMINAL_WORDS[terminal]
    try:
        pattern = _lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal
    return f"'{pattern.value}'" if pattern.type == "str" else terminal


def _expected(names: set[str]) -> str:
    words = sorted({_describe(n) for n in names})
    if not words:
        return ""
    shown = ", ".join(words[:8]) + (", ..." if len(words) > 8 else "")
    return f"; expected {shown}"


def _syntax_message(exc: UnexpectedInput, text: str, source: str) -> str:
    line, col = exc.line, exc.column
    at_end = isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END")
    if isinstance(exc, UnexpectedCharacters):
        what = f"unexpected character {text[exc.pos_in_stream]!r}{_expected(exc.allowed or set())}"
    elif isinstance(exc, UnexpectedToken) and not at_end:
        shown = exc.token.value if len(exc.token.value) <= 40 else exc.token.value[:37] + "..."
        what = f"unexpected {shown!r}{_expected(exc.expected)}"
    else:
        expected = exc.expected if isinstance(exc, (UnexpectedEOF, UnexpectedToken)) else set()
        what = f"unexpected end of input{_expected(set(expected) - {'$END'})}"
    if at_end or not isinstance(line, int) or line < 1:
        line = text.count("\n") + 1
        col = len(text) - (text.rfind("\n") + 1) + 1
    return f"{source}:{line}:{col}: {what}"


class _Builder:
    """Turns a parse tree into a Graph, reporting semantic errors at their line and column."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.values: dict[str, Value] = {}
        self.ops: list[Op] = []
        self.meta: dict[str, Any] | None = None

    def error(self, at: Token | Tree, message: str) -> TinycError:
        if isinstance(at, Tree):
            line, col = at.meta.line, at.meta.column
        else:
            line, col = at.line, at.column
        return TinycError(f"{self.source}:{line}:{col}: {message}")

    # -- leaves ------------------------------------------------------------------------------------
    def string(self, token: Token, skip: int = 0) -> str:
        """Decode a quoted string token (after `skip` sigil characters)."""
        body = token.value[skip:]
        try:
            return json.loads(body, strict=False)
        except json.JSONDecodeError as exc:
            raise self.error(token, f"bad string {body[:40]}: {exc.msg}") from None

    def name(self, token: Token) -> str:
        if token.value[1:2] == '"':
            return self.string(token, skip=1)
        return token.value[1:]

    def names(self, tree: Tree) -> list[str]:
        return [self.name(t) for t in tree.children]

    def scalar(self, token: Token) -> Any:
        if token.type == "INT":
            return int(token.value)
        if token.type == "FLOAT":
            return float(token.value)
        if token.type == "STRING":
            return self.string(token)
        return token.type == "TRUE"

    # -- types -------------------------------------------------------------------------------------
    def type(self, name: str, tree: Tree) -> Value:
        shape_dtype = tree.children[0]
        *dims, element = shape_dtype.value.split("x")
        if element not in DTYPE_OF_ELEMENT:
            raise self.error(shape_dtype, f"unknown element type {element!r}; known: "
                                          f"{', '.join(DTYPE_OF_ELEMENT)}")
        layout, quant = "", None
        for child in tree.children[1:]:
            if isinstance(child, Token):
                layout = child.value
            else:
                quant = self.quant(child)
        return Value(name, tuple(int(d) for d in dims), DTYPE_OF_ELEMENT[element], layout, quant)

    def quant(self, tree: Tree) -> QuantParams:
        if tree.data == "quant_tensor":
            scale, zero_point = tree.children
            return QuantParams((float(scale.value),), (int(zero_point.value),), None)
        scales, zero_points, *axis = tree.children
        if len(scales.children) != len(zero_points.children):
            raise self.error(tree, f"quantisation has {len(scales.children)} scales but "
                                   f"{len(zero_points.children)} zero points")
        return QuantParams(tuple(float(t.value) for t in scales.children),
                           tuple(int(t.value) for t in zero_points.children),
                           int(axis[0].value) if axis else None)

    def define(self, value: Value, at: Token) -> None:
        """Record a definition; a repeated name must repeat the type (the verifier judges the rest)."""
        old = self.values.get(value.name)
        if old is None:
            self.values[value.name] = value
            return
        if (old.shape, old.dtype, old.layout, old.quant) != (value.shape, value.dtype, value.layout, value.quant):
            raise self.error(at, f"{_ref('%', value.name)} is defined again with a different type "
                                 f"({_type(value)}, was {_type(old)})")
        if value.data is not None:
            if old.data is not None:
                raise self.error(at, f"constant {_ref('%', value.name)} is defined twice")
            old.data = value.data

    # -- constants ---------------------------------------------------------------------------------
    def dense(self, value: Value, tree: Tree, at: Token) -> np.ndarray:
        """The constant's data; errors point at `at` (the type) when the literal has no token."""
        dtype = np.dtype(value.dtype)
        if any(d < 0 for d in value.shape):
            raise self.error(at, f"constant shape {list(value.shape)} has a negative dimension")
        size = value.size
        if tree.data == "dense_elided":
            return np.zeros(value.shape, dtype)
        if tree.data == "dense_hex":
            token = tree.children[0]
            digits = token.value[1:-1]
            if len(digits) % 2:
                raise self.error(token, "hex data has an odd number of digits")
            raw = bytes.fromhex(digits)
            if len(raw) != size * dtype.itemsize:
                raise self.error(token, f"hex data has {len(raw)} bytes, {_type(value)} needs "
                                        f"{size * dtype.itemsize}")
            return np.frombuffer(raw, dtype.newbyteorder("<")).astype(dtype).reshape(value.shape)
        elements = [self.element(t, value.dtype) for t in tree.children]
        if tree.data == "dense_splat":
            return np.full(value.shape, elements[0], dtype)
        if len(elements) != size:
            raise self.error(at, f"dense list has {len(elements)} elements, {_type(value)} needs {size}")
        return np.array(elements, dtype).reshape(value.shape)

    def element(self, token: Token, dtype: str) -> Any:
        if dtype == "float32":
            if token.type not in ("INT", "FLOAT"):
                raise self.error(token, f"{token.value} is not a number")
            return np.float32(float(token.value))
        if dtype == "bool":
            if token.type in ("TRUE", "FALSE"):
                return token.type == "TRUE"
            if token.value in ("0", "1"):
                return token.value == "1"
            raise self.error(token, f"{token.value} is not a bool (true, false, 0 or 1)")
        if token.type != "INT":
            raise self.error(token, f"{token.value} is not an integer, which {dtype} data needs")
        info = np.iinfo(dtype)
        number = int(token.value)
        if not info.min <= number <= info.max:
            raise self.error(token, f"{number} is outside the {dtype} range [{info.min}, {info.max}]")
        return number

    # -- statements --------------------------------------------------------------------------------
    def graph(self, tree: Tree) -> Graph:
        graph_name, args, header_outputs, *statements, returned = tree.children
        inputs = []
        for arg in args.children:
            name = self.name(arg.children[0])
            self.define(self.type(name, arg.children[1]), arg.children[0])
            inputs.append(name)
        for statement in statements:
            getattr(self, "stmt_" + statement.data)(statement)
        outputs = self.names(header_outputs)
        if self.names(returned) != outputs:
            raise self.error(returned if returned.children else tree,
                             f"return lists ({', '.join(_ref('%', n) for n in self.names(returned))}) "
                             f"but the header lists ({', '.join(_ref('%', n) for n in outputs)})")
        name = self.string(graph_name, skip=1) if graph_name.value[1:2] == '"' else graph_name.value[1:]
        return Graph(name, self.values, self.ops, inputs, outputs, self.meta or {})

    def stmt_meta(self, tree: Tree) -> None:
        token = tree.children[0]
        if self.meta is not None:
            raise self.error(token, "meta is given twice")
        try:
            meta = json.loads(token.value)
        except json.JSONDecodeError as exc:
            raise TinycError(f"{self.source}:{token.line}:{token.column + exc.pos}: bad meta JSON: "
                             f"{exc.msg}") from None
        if not isinstance(meta, dict):
            raise self.error(token, "meta must be a JSON object")
        self.meta = meta

    def single_result(self, results: Tree, what: str) -> Token:
        if len(results.children) != 1:
            raise self.error(results, f"{what} defines exactly one value")
        return results.children[0]

    def stmt_const(self, tree: Tree) -> None:
        results, type_tree, dense = tree.children
        token = self.single_result(results, "const")
        value = self.type(self.name(token), type_tree)
        value.data = self.dense(value, dense, type_tree.children[0])
        self.define(value, token)

    def stmt_decl(self, tree: Tree) -> None:
        results, type_tree = tree.children
        token = self.single_result(results, "decl")
        self.define(self.type(self.name(token), type_tree), token)

    def stmt_op(self, tree: Tree) -> None:
        *results, operation = tree.children
        result_tokens = results[0].children if results else []
        kind, operands, *rest = operation.children
        attrs: dict[str, Any] = {}
        types: list[Tree] | None = None
        op_name = self.name(result_tokens[0]) if result_tokens else ""
        for part in rest:
            if part.data == "attrs":
                attrs = self.attrs(part)
            elif part.data == "types":
                types = part.children
            else:
                op_name = self.string(part.children[0])
        outputs = [self.name(t) for t in result_tokens]
        if types is not None:
            if len(types) != len(outputs):
                raise self.error(operation, f"{kind} has {len(outputs)} results but {len(types)} types")
            for token, out, type_tree in zip(result_tokens, outputs, types):
                self.define(self.type(out, type_tree), token)
        self.ops.append(Op(kind.value, op_name, self.names(operands), outputs, attrs))

    def attrs(self, tree: Tree) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        for attr in tree.children:
            key_token, value = attr.children
            key = self.string(key_token) if key_token.type == "STRING" else key_token.value
            if key in attrs:
                raise self.error(key_token, f"attribute {key!r} is given twice")
            if isinstance(value, Tree):  # a list
                attrs[key] = [self.scalar(t) for t in value.children]
            else:
                attrs[key] = self.scalar(value)
        return attrs
