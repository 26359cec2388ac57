"""Textual IR: print -> parse -> print is the identity and parse(print(g)) == g, on random graphs,
hand-picked corner cases, every op kind and the shared real models; parse errors name line and column."""
from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from strategies import GENERATORS, assert_graphs_equal, graphs
from tinyc.errors import TinycError
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.ops import SPECS
from tinyc.textir import ELIDE_ABOVE, parse, print_graph
from tinyc.verify import verify

MODELS = Path(__file__).resolve().parents[1].parent / "shared" / "models"
PROPERTY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def round_trip(graph: Graph) -> Graph:
    """Assert both round-trip laws and return the parsed graph."""
    text = print_graph(graph)
    parsed = parse(text)
    assert_graphs_equal(graph, parsed)
    assert print_graph(parsed) == text
    return parsed


# ---- properties on random graphs ---------------------------------------------------------------

@PROPERTY
@given(graphs())
def test_random_graphs_round_trip(graph):
    verify(graph)  # the strategy promises valid graphs
    verify(round_trip(graph))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(odd_names=False))
def test_elided_constants_parse_as_zeros_of_the_declared_type(graph):
    text = print_graph(graph, elide_constants=True)
    parsed = parse(text)
    for name, value in graph.values.items():
        got = parsed.values[name]
        assert (got.shape, got.dtype, got.layout, got.quant) == (value.shape, value.dtype, value.layout,
                                                                  value.quant)
        if value.is_const and value.size > ELIDE_ABOVE:
            assert "dense_resource<__elided__>" in text
            assert got.data.dtype == value.data.dtype and got.data.shape == value.data.shape
            assert not got.data.any()
        elif value.is_const:
            assert got.data.tobytes() == value.data.tobytes()
        else:
            assert got.data is None
    assert print_graph(parsed, elide_constants=True) == text
    verify(parsed)


def test_strategy_has_a_generator_for_every_op_kind():
    assert set(GENERATORS) == set(SPECS)


# ---- the format itself ---------------------------------------------------------------------------

def small_graph() -> Graph:
    g = Graph("net", {}, [], ["x"], ["y"], {"opset": 13, "inputs": [{"name": "x", "layout": "NCHW"}]})
    g.add_value(Value("x", (1, 2, 3, 3), "int8", "NCHW", QuantParams.tensor(0.5847030282020569, 83)))
    g.add_const("w", np.arange(-8, 28, dtype=np.int8).reshape(2, 2, 3, 3), "OIHW",
                QuantParams((0.25, 0.125), (0, 0), 0))
    g.add_const("b", np.array([100, -1], np.int32))
    g.add_value(Value("model/conv;relu", (1, 2, 1, 1), "int8", "NCHW", QuantParams.tensor(0.1, -128)))
    g.add_value(Value("y", (1, 2), "int8", "", QuantParams.tensor(0.1, -128)))
    g.ops = [Op("conv2d", "conv0", ["x", "w", "b"], ["model/conv;relu"],
                {"strides": [1, 1], "activation": "relu"}),
             Op("reshape", "flatten", ["model/conv;relu"], ["y"], {"shape": [1, 2]})]
    return g


GOLDEN = '''\
graph @net(%x: tensor<1x2x3x3xi8, NCHW, q<0.5847030282020569, 83>>) -> (%y) {
  meta {"inputs": [{"layout": "NCHW", "name": "x"}], "opset": 13}
  %w = const tensor<2x2x3x3xi8, OIHW, q<[0.25, 0.125], [0, 0], axis=0>> dense<"f8f9fafbfcfdfeff000102030405060708090a0b0c0d0e0f101112131415161718191a1b">
  %b = const tensor<2xi32> dense<[100, -1]>
  %"model/conv;relu" = conv2d(%x, %w, %b) {activation = "relu", strides = [1, 1]} : tensor<1x2x1x1xi8, NCHW, q<0.1, -128>> loc("conv0")
  %y = reshape(%"model/conv;relu") {shape = [1, 2]} : tensor<1x2xi8, q<0.1, -128>> loc("flatten")
  return %y
}
'''


def test_printed_text_is_the_documented_format():
    graph = small_graph()
    verify(graph)
    assert print_graph(graph) == GOLDEN
    round_trip(graph)


def test_elided_constant_text():
    lines = print_graph(small_graph(), elide_constants=True).splitlines()
    assert lines[2] == "  %w = const tensor<2x2x3x3xi8, OIHW, q<[0.25, 0.125], [0, 0], axis=0>> dense_resource<__elided__>"
    assert lines[3] == "  %b = const tensor<2xi32> dense<[100, -1]>"  # small constants stay


HANDWRITTEN = '''\
// A comment line; RUN and CHECK lines of FileCheck tests are comments too.
graph @hand(%in: tensor<1x4xf32>, %"in/2": tensor<2x4xf32>) -> (%sum, %in) {
  %w = const tensor<3x4xf32> dense<0.5>          // one element repeated
  %b = const tensor<3xf32> dense<[1, 2.5, -inf]> // ints are fine in float data
  %mask = const tensor<2xi1> dense<[true, 0]>
  %fc = fully_connected(%in, %w, %b) {activation = "relu6"} : tensor<1x3xf32>
  %q = quantize(%fc) : tensor<1x3xi8, q<1, -3>>
  %sum = add(%q, %q) : tensor<1x3xi8, q<0.25, 0>> loc("add/0")
  return %sum, %in
}
'''


def test_parse_handwritten_text():
    g = parse(HANDWRITTEN)
    assert g.name == "hand" and g.inputs == ["in", "in/2"] and g.outputs == ["sum", "in"]
    assert g.values["w"].data.tolist() == [[0.5] * 4] * 3 and g.values["w"].data.dtype == np.float32
    assert g.values["b"].data.tolist() == [1.0, 2.5, -math.inf]
    assert g.values["mask"].data.tolist() == [True, False]
    assert g.values["q"].quant == QuantParams((1.0,), (-3,), None)
    assert [(op.kind, op.name, op.inputs, op.outputs) for op in g.ops] == [
        ("fully_connected", "fc", ["in", "w", "b"], ["fc"]),  # no loc: named after its result
        ("quantize", "q", ["fc"], ["q"]),
        ("add", "add/0", ["q", "q"], ["sum"])]
    assert g.ops[0].attrs == {"activation": "relu6"}
    assert g.meta == {}
    verify(g)
    round_trip(g)


def one_op_graph(attrs: dict, kind: str = "identity") -> Graph:
    g = Graph("g", {}, [], ["x"], ["y"])
    g.add_value(Value("x", (2,), "float32"))
    g.add_value(Value("y", (2,), "float32"))
    g.ops.append(Op(kind, "op", ["x"], ["y"], attrs))
    return g


def test_attribute_types_round_trip_exactly():
    attrs = {"int": 3, "negative": -2 ** 40, "whole_float": 3.0, "tiny": 5e-324, "huge": 1e300,
             "neg_zero": -0.0, "inf": math.inf, "ninf": -math.inf, "nan": math.nan, "yes": True,
             "no": False, "text": 'say "hi"\\\n\tü', "empty_text": "", "ints": [1, -2, 3],
             "floats": [0.5, 2.0, 1e-05], "empty": [], "mixed": [1, 2.0, True, "s"],
             "tuple": (4, 5), "numpy_int": np.int64(7), "numpy_float": np.float32(0.1),
             "quoted key/;": 1, "dotted.key": 2, "true": 3, "axis": 4, "loc": 5, "inf": 6, "const": 7}
    parsed = parse(print_graph(one_op_graph(attrs))).ops[0].attrs
    expected_types = {"int": int, "negative": int, "whole_float": float, "tiny": float, "huge": float,
                      "neg_zero": float, "inf": float, "ninf": float, "nan": float, "yes": bool, "no": bool,
                      "text": str, "empty_text": str, "ints": list, "floats": list, "empty": list,
                      "mixed": list, "tuple": list, "numpy_int": int, "numpy_float": float,
                      "quoted key/;": int, "dotted.key": int, "true": int, "axis": int, "loc": int,
                      "inf": int, "const": int}
    assert {k: type(v) for k, v in parsed.items()} == expected_types
    assert [type(x) for x in parsed["ints"]] == [int, int, int]
    assert [type(x) for x in parsed["floats"]] == [float, float, float]
    assert [type(x) for x in parsed["mixed"]] == [int, float, bool, str]
    assert parsed["empty"] == [] and parsed["tuple"] == [4, 5]
    assert math.copysign(1, parsed["neg_zero"]) == -1 and math.isnan(parsed["nan"])
    assert parsed["tiny"] == 5e-324 and parsed["numpy_float"] == float(np.float32(0.1))
    assert parsed["text"] == 'say "hi"\\\n\tü' and parsed["negative"] == -2 ** 40
    # The tuple comes back as a list; everything else is equal in type and bits.
    round_trip(one_op_graph({k: v for k, v in attrs.items() if k not in ("tuple", "numpy_int",
                                                                        "numpy_float")}))


def test_attribute_text_distinguishes_ints_and_floats():
    text = print_graph(one_op_graph({"a": 1, "b": 1.0, "c": [1.0], "d": 1e20, "e": True, "f": []}))
    assert "{a = 1, b = 1.0, c = [1.0], d = 1e+20, e = true, f = []}" in text


@pytest.mark.parametrize("name, printed", [
    ("input_1", "%input_1"), ("a.b-c$0", "%a.b-c$0"), ("0", "%0"),
    ("model/activation/Relu;model/batch_normalization/FusedBatchNormV3",
     '%"model/activation/Relu;model/batch_normalization/FusedBatchNormV3"'),
    ("", '%""'), ('q"uote', '%"q\\"uote"'), ("back\\slash", '%"back\\\\slash"'),
    ("line\nbreak", '%"line\\nbreak"'), ("bell\x07", '%"bell\\u0007"'), ("é clair", '%"é clair"'),
    ("\U0001F600", '%"\U0001F600"'), ("\U000E0001", '%"\\udb40\\udc01"'),
])
def test_value_names_print_bare_or_quoted_and_round_trip(name, printed):
    g = Graph(name, {}, [], [name], [name])
    g.add_value(Value(name, (1,), "float32"))
    text = print_graph(g)
    assert text.splitlines()[0] == f"graph @{printed[1:]}({printed}: tensor<1xf32>) -> ({printed}) {{"
    assert len(text.splitlines()) == 3  # a quoted name never breaks a line
    round_trip(g)


def test_quantisation_round_trips_exact_doubles():
    scales = (0.1 + 0.2, 5e-324, float(np.float32(0.003701)), 1 / 3, 2.0 ** 60)
    g = Graph("g", {}, [], ["x"], ["x"])
    g.add_value(Value("x", (1, 5, 1, 1), "int8", "NCHW", QuantParams(scales, (0, -128, 127, 1, -1), 1)))
    g.add_value(Value("unlisted", (2,), "int8", "", QuantParams((0.5, 0.25), (1, 2), None)))
    g.add_value(Value("one_slice", (1,), "int8", "", QuantParams((0.5,), (0,), 0)))
    text = print_graph(g)
    assert "q<[0.30000000000000004, 5e-324, 0.0037010000087320805, 0.3333333333333333, " \
           "1.152921504606847e+18], [0, -128, 127, 1, -1], axis=1>" in text
    assert "tensor<2xi8, q<[0.5, 0.25], [1, 2]>>" in text  # several scales without an axis
    assert "tensor<1xi8, q<[0.5], [0], axis=0>>" in text
    parsed = round_trip(g)
    assert parsed.values["x"].quant.scale == scales


@pytest.mark.parametrize("dtype", ["bool", "int8", "uint8", "int16", "int32", "int64", "float32"])
@pytest.mark.parametrize("size", [0, 1, ELIDE_ABOVE, ELIDE_ABOVE + 1, 300])
def test_constant_data_round_trips_bit_exactly(dtype, size):
    rng = np.random.default_rng(size)
    if dtype == "float32":
        data = rng.standard_normal(size).astype(np.float32)
        data[: 4][data[:4] > 0] = np.float32(-0.0)
    elif dtype == "bool":
        data = rng.integers(0, 2, size).astype(bool)
    else:
        info = np.iinfo(dtype)
        data = rng.integers(int(info.min), int(info.max), size, dtype=dtype, endpoint=True)
        data[:2] = [info.min, info.max][: len(data[:2])]
    g = Graph("g", {}, [], [], [])
    g.add_const("c", data)
    g.outputs = ["c"]
    text = print_graph(g)
    assert ('dense<"' in text) == (size > ELIDE_ABOVE)
    parsed = round_trip(g)
    assert parsed.values["c"].data.dtype == np.dtype(dtype)
    assert parsed.values["c"].data.tobytes() == data.tobytes()


def test_float_constants_with_nan_keep_their_bits():
    bits = np.array([0x7FC00001, 0xFFC00000, 0x7F800000, 0x80000000], np.uint32)
    g = Graph("g", {}, [], [], ["c"])
    g.add_const("c", bits.view(np.float32))
    assert 'dense<"0100c07f0000c0ff0000807f00000080">' in print_graph(g)
    assert parse(print_graph(g)).values["c"].data.view(np.uint32).tolist() == bits.tolist()


def test_float32_elements_print_in_shortest_exact_form():
    g = Graph("g", {}, [], [], ["c"])
    values = np.array([0.1, 1.0, 1e20, 3.4028235e38, 1e-45, 16777217.0], np.float32)
    g.add_const("c", values)
    assert "dense<[0.1, 1.0, 1e+20, 3.4028235e+38, 1e-45, 1.6777216e+07]>" in print_graph(g)
    assert parse(print_graph(g)).values["c"].data.tobytes() == values.tobytes()


def test_dangling_values_and_repeated_definitions_survive():
    g = Graph("g", {}, [], ["x"], ["x", "k"], {"note": [1, 2.5]})
    g.add_value(Value("x", (2,), "float32"))
    g.add_value(Value("dangling", (3,), "int8", "", QuantParams.tensor(0.5, 1)))
    g.add_const("k", np.array([1.5], np.float32))
    g.ops.append(Op("relu", "writes_input", ["x"], ["x"]))  # invalid: the verifier names it
    g.ops.append(Op("relu", "reads_nothing", ["undeclared"], ["x"]))
    text = print_graph(g)
    assert "  %dangling = decl tensor<3xi8, q<0.5, 1>>" in text
    assert text.index("%k = const") > text.index("reads_nothing")  # only the output reads k
    round_trip(g)


def test_ops_without_declared_outputs_print_without_types():
    g = Graph("g", {}, [], ["x"], [])
    g.add_value(Value("x", (2,), "float32"))
    g.ops.append(Op("relu", "r", ["x"], ["ghost"]))
    g.ops.append(Op("relu", "sink", ["x"], []))
    text = print_graph(g)
    assert '  %ghost = relu(%x) loc("r")' in text and '  relu(%x) loc("sink")' in text
    assert "  return\n" in text
    round_trip(g)


def synthetic(kind_of_attr: str):
    return {"int": -3, "float": 0.25, "str": "relu", "bool": True, "ints": [2, 1], "floats": [0.5, -1.0]}[
        kind_of_attr]


@pytest.mark.parametrize("kind", sorted(SPECS))
def test_every_op_kind_prints_and_parses_with_all_its_attributes(kind):
    spec = SPECS[kind]
    attrs = {key: synthetic(type_) for key, (type_, _) in spec.attrs.items()}
    attrs.update({key: synthetic(type_) for key, type_ in spec.lowered.items()})
    inputs = [f"in{i}" for i in range(max(spec.min_inputs, 1))]
    g = Graph("g", {}, [], list(inputs), ["y"])
    for name in inputs:
        g.add_value(Value(name, (1, 2, 3, 4), "int8", "NCHW", QuantParams.tensor(0.5, 0)))
    g.add_value(Value("y", (1, 2, 3, 4), "int8", "NHWC", QuantParams.tensor(0.25, 3)))
    g.ops.append(Op(kind, f"{kind}_op", inputs, ["y"], attrs))
    parsed = round_trip(g)
    assert parsed.ops[0].kind == kind and parsed.ops[0].attrs.keys() == attrs.keys()


# ---- errors --------------------------------------------------------------------------------------

HEADER = "graph @g(%x: tensor<2xf32>) -> (%x) {\n"


@pytest.mark.parametrize("body, line, col, message", [
    ("  %y = relu(%x : tensor<2xf32>\n  return %x\n}\n", 2, 16, "unexpected ':'"),
    ("  %y = relu(%x) : tensor<2xf16>\n  return %x\n}\n", 2, 26, "unknown element type 'f16'"),
    ("  %w = const tensor<2xi8> dense<\"01ff03\">\n  return %x\n}\n", 2, 33, "hex data has 3 bytes"),
    ("  %w = const tensor<2xi8> dense<\"0\">\n  return %x\n}\n", 2, 33, "odd number of digits"),
    ("  %w = const tensor<2xi8> dense<[1, 300]>\n  return %x\n}\n", 2, 37, "outside the int8 range"),
    ("  %w = const tensor<2xi8> dense<[1, 2, 3]>\n  return %x\n}\n", 2, 21, "has 3 elements"),
    ("  %w = const tensor<2xi32> dense<[1, 2.5]>\n  return %x\n}\n", 2, 38, "not an integer"),
    ("  return %y\n}\n", 2, 10, "return lists (%y) but the header lists (%x)"),
    ("  meta {\"a\": 1,}\n  return %x\n}\n", 2, 16, "bad meta JSON"),
    ("  meta [1]\n  return %x\n}\n", 2, 8, "unexpected '['; expected a JSON object"),
    ("  %y = relu(%x) {a = 1, a = 2} : tensor<2xf32>\n  return %x\n}\n", 2, 25, "'a' is given twice"),
    ("  %x = relu(%x) : tensor<3xf32>\n  return %x\n}\n", 2, 3, "defined again with a different type"),
    ("  %y = relu(%\"a\\qb\") : tensor<2xf32>\n  return %x\n}\n", 2, 13, "Invalid \\escape"),
    ("  %y = relu(%x) {pads = [1, [2]]} : tensor<2xf32>\n  return %x\n}\n", 2, 29, "unexpected '['"),
    ("  %y = relu(%x) : tensor<2xf32, q<[0.5], [1, 2], axis=0>>\n  return %x\n}\n", 2, 33,
     "1 scales but 2 zero points"),
    ("  %a, %b = const tensor<2xf32> dense<0.0>\n  return %x\n}\n", 2, 3, "exactly one value"),
    ("  %y = relu(%x) : tensor<2xf32>, tensor<2xf32>\n  return %x\n}\n", 2, 8, "1 results but 2 types"),
    ("  return %x\n", 3, 1, "unexpected end of input"),
])
def test_parse_errors_name_line_and_column(body, line, col, message):
    with pytest.raises(TinycError) as info:
        parse(HEADER + body, source="model.tir")
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"model.tir:{line}:{col}: "), text
    assert message in text


def test_unknown_character_in_the_header():
    with pytest.raises(TinycError, match=r"^<input>:1:10: unexpected character '#'"):
        parse("graph @g(#")


# ---- real models ---------------------------------------------------------------------------------

MODEL_FILES = sorted(MODELS.glob("**/*.onnx"))


@pytest.mark.parametrize("path", MODEL_FILES, ids=[p.name for p in MODEL_FILES])
def test_shared_models_round_trip(path):
    try:
        frontend = importlib.import_module("tinyc.frontend")
        load_model = frontend.load_model
    except (ImportError, AttributeError):
        pytest.skip("tinyc.frontend.load_model is not written yet")
    graph = load_model(path)
    text = print_graph(graph)
    parsed = round_trip(graph)
    verify(parsed)
    # A quoted name must not swallow a line: one statement per line, braces balanced.
    assert re.match(r"graph @", text) and text.endswith("}\n")
    assert len(text.splitlines()) == 3 + bool(graph.meta) + len(graph.ops) + len(graph.constants()) + \
        sum(1 for n, v in graph.values.items() if not v.is_const and n not in graph.inputs
            and all(n not in op.outputs for op in graph.ops))


def test_shared_models_exist():
    assert MODEL_FILES, f"no ONNX models under {MODELS}"
