"""ONNX's own node tests (onnx.backend.test) run through tinyc.backend: float32 C built for the host.

A node test runs when tinyc claims every op in it (its frontend converts the op) and no rule below
takes it out; each rule is a reason tinyc cannot compile the test's model as ONNX gives it (another
dtype, a parameter fed at run time, ...), and a test it takes out is skipped with that reason. Every
test that runs must pass: it is never skipped for failing. Node tests of ops tinyc does not claim
are skipped as such, the CUDA variants for want of the device; the other kinds of backend tests
(whole models to download) are not collected. The session ends with the count of passed and skipped
node tests by reason (tests/conftest.py).
"""
from __future__ import annotations

import functools
import unittest
import warnings
from typing import Callable

import numpy as np
import onnx
import onnx.backend.test
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.backend.test.loader import load_model_tests

import tinyc.backend
from tinyc.backend import TinycBackend
from tinyc.errors import TinycError
from tinyc.frontend.registry import converter_for

NOT_CLAIMED = "not claimed: an op tinyc does not import"
FLOAT = TensorProto.FLOAT
# Inputs tinyc compiles as constants (an initializer, or computed at import from them).
PARAMETER_INPUTS = {"Reshape": (1,), "Pad": (1, 2, 3), "Clip": (1, 2), "Squeeze": (1,), "Unsqueeze": (1,),
                    "QuantizeLinear": (1, 2), "DequantizeLinear": (1, 2)}


def _tensors(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    return list(model.graph.input) + list(model.graph.output)


def _not_tensor(model):
    return any(not v.type.HasField("tensor_type") for v in _tensors(model))


def _runtime_parameter(model):
    inputs = {v.name for v in model.graph.input} - {t.name for t in model.graph.initializer}
    return any(i < len(n.input) and n.input[i] in inputs
               for n in model.graph.node for i in PARAMETER_INPUTS.get(n.op_type, ()))


def _not_float32(model):
    return any(v.type.tensor_type.elem_type != FLOAT for v in _tensors(model))


def _dynamic_dimension(model):
    return any(not d.HasField("dim_value") or d.dim_value == 0
               for v in model.graph.input for d in v.type.tensor_type.shape.dim)


def _attribute(model, op_types, name) -> list:
    return [onnx.helper.get_attribute_value(a) for n in model.graph.node if n.op_type in op_types
            for a in n.attribute if a.name == name]


def _three_d_windows(model):
    return any(len(k) > 2 for k in _attribute(model, ("Conv", "MaxPool", "AveragePool"), "kernel_shape"))


def _pool_dilations(model):
    return any(set(d) != {1} for d in _attribute(model, ("MaxPool", "AveragePool"), "dilations"))


def _training(model):
    return any(_attribute(model, ("BatchNormalization",), "training_mode"))


# In order: the first rule a claimed test meets is its reason.
RULES: list[tuple[str, Callable[[onnx.ModelProto], bool]]] = [
    ("sequence or optional values (tinyc compiles tensors)", _not_tensor),
    ("a shape, axes, pads, bounds or scale fed at run time (tinyc compiles them as constants)",
     _runtime_parameter),
    ("not float32: integer, bool or quantised tensors at the interface (the float32 path; tinyc's "
     "integer ops are the quantised int8 ones)", _not_float32),
    ("a dynamic or empty input dimension (tinyc compiles static shapes)", _dynamic_dimension),
    ("3-D windows (tinyc imports 1-D and 2-D convolutions and pools)", _three_d_windows),
    ("pooling with dilations (tinyc's pools have none)", _pool_dilations),
    ("training mode (tinyc compiles inference)", _training),
]
# Claimed tests no rule describes, by name.
NAMED = {
    "test_globalmaxpool": "opset 22, which onnx's version converter cannot bring down to the opsets tinyc "
                          "imports (11-21) for GlobalMaxPool",
    "test_globalmaxpool_precomputed": "opset 22, as test_globalmaxpool",
}


@functools.lru_cache(maxsize=None)
def node_tests() -> dict[str, onnx.ModelProto]:
    with warnings.catch_warnings():  # the generators of some other ops' test data overflow casts
        warnings.simplefilter("ignore")
        return {t.name: t.model for t in load_model_tests(kind="node")}


def claimed(model: onnx.ModelProto) -> bool:
    return all(converter_for(n.domain, n.op_type) is not None for n in model.graph.node)


def skip_reason(name: str, model: onnx.ModelProto) -> str | None:
    """Why tinyc does not run a node test (None: it runs and must pass)."""
    if not claimed(model):
        return NOT_CLAIMED
    for reason, applies in RULES:
        if applies(model):
            return reason
    return NAMED.get(name)


def _node_test_case() -> type[unittest.TestCase]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backend_test = onnx.backend.test.BackendTest(TinycBackend, __name__)
    cases = backend_test.test_cases["OnnxBackendNodeModelTest"]
    for name, model in node_tests().items():
        reason = skip_reason(name, model)
        method = f"{name}_cpu"
        if reason is not None and hasattr(cases, method):
            setattr(cases, method, unittest.skip(reason)(getattr(cases, method)))
    return cases


OnnxBackendNodeModelTest = _node_test_case()


def test_the_claimed_node_tests_that_run_cover_the_float_ops():
    tests = node_tests()
    assert set(NAMED) <= set(tests) and all(claimed(tests[name]) for name in NAMED)
    runs = [name for name, model in tests.items() if skip_reason(name, model) is None]
    assert len(runs) >= 100
    ops = {n.op_type for name in runs for n in tests[name].graph.node}
    assert {"Conv", "Gemm", "MatMul", "Add", "Mul", "BatchNormalization", "Relu", "Sigmoid", "Tanh", "HardSwish",
            "LeakyRelu", "MaxPool", "AveragePool", "GlobalAveragePool", "Softmax", "Flatten", "Concat", "Transpose",
            "Identity", "Dropout"} <= ops


def test_a_rep_builds_once_and_takes_inputs_by_position_or_name():
    rng = np.random.default_rng(0)
    w = onnx.numpy_helper.from_array(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]), helper.make_node("Relu", ["c"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 5, 5])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 5, 5])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    assert tinyc.backend.supports_device("CPU") and not tinyc.backend.supports_device("CUDA")
    rep = tinyc.backend.prepare(model)
    assert rep.executable is None  # generated, not built yet
    x = rng.standard_normal((1, 2, 5, 5)).astype(np.float32)
    (first,) = rep.run([x])
    executable, built = rep.executable, rep.executable.stat().st_mtime_ns
    (second,) = rep.run({"x": x})
    assert rep.executable == executable and executable.stat().st_mtime_ns == built
    np.testing.assert_array_equal(first, second)
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(TinycError, match=r"input 'x' is float64\[1, 2, 5, 5\], the model takes float32"):
        rep.run([x.astype(np.float64)])
    with pytest.raises(TinycError, match="takes 1 inputs"):
        rep.run([x, x])
