"""The command line as a user meets it: real commands, exit codes, one-line errors, no partial output."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
KWS = ROOT / "examples" / "kws" / "kws_ref_model_qdq.onnx"
KWS_INPUT = ROOT / "examples" / "kws" / "input.npy"


def tinyc(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "tinyc.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def assert_user_error(proc, *fragments):
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def _relu_model(path, dims=(1, 4), op="Relu"):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(dims))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(dims))
    node = helper.make_node(op, ["x"], ["y"], name="the_node")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, path)
    return path


def test_run_reference_on_the_bundled_example(tmp_path):
    out = tmp_path / "y.npy"
    proc = tinyc("run", KWS, "--target", "ref", "--input", KWS_INPUT, "--output", out)
    assert proc.returncode == 0, proc.stderr
    y = np.load(out)
    assert y.shape == (1, 12) and y.dtype == np.int8
    assert int(y.argmax()) == 5 and int(y.max()) == 127  # the reference submission's answer


def test_run_batch_with_leading_axis(tmp_path):
    x = np.load(KWS_INPUT)
    batch = np.concatenate([x, x, np.zeros_like(x)], axis=0)  # [3,1,49,10] for model input [1,1,49,10]
    np.save(tmp_path / "x.npy", batch)
    proc = tinyc("run", KWS, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (3, 12)
    assert np.array_equal(y[0], y[1]) and int(y[0].argmax()) == 5


def test_truncated_model(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(KWS.read_bytes()[:1000])
    out = tmp_path / "y.npy"
    proc = tinyc("run", bad, "--input", KWS_INPUT, "--output", out)
    assert_user_error(proc, "bad.onnx")
    assert not out.exists()


def test_not_onnx(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("hello, I am not a model\n")
    assert_user_error(tinyc("inspect", bad), "notes.onnx")


def test_unsupported_ops_are_all_listed(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Erf", ["x"], ["a"], name="erf_node"),
             helper.make_node("Floor", ["a"], ["b"], name="floor_node"),
             helper.make_node("Relu", ["b"], ["y"], name="relu_node")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    proc = tinyc("run", tmp_path / "m.onnx", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_user_error(proc, "Erf", "erf_node", "Floor", "floor_node")
    assert not (tmp_path / "y.npy").exists()


def test_dynamic_dimension_needs_input_shape(tmp_path):
    model = _relu_model(tmp_path / "dyn.onnx", dims=("N", 4))
    np.save(tmp_path / "x.npy", np.ones((2, 4), np.float32))
    proc = tinyc("run", model, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert_user_error(proc, "--input-shape")
    proc = tinyc("run", model, "--input-shape", "x=2,4", "--input", tmp_path / "x.npy",
                 "--output", tmp_path / "y.npy")
    assert_user_error(proc, "--calibration", "--precision float32")  # a float model
    proc = tinyc("run", model, "--input-shape", "x=2,4", "--input", tmp_path / "x.npy",
                 "--output", tmp_path / "y.npy", "--precision", "float32")
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "y.npy").shape == (2, 4)


def test_wrong_input_shape_and_dtype(tmp_path):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 49, 11), np.int8))
    assert_user_error(tinyc("run", KWS, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy"),
                      "input_1", "[1, 1, 49, 11]")
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 49, 10), np.float32))
    assert_user_error(tinyc("run", KWS, "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy"),
                      "input_1", "float32", "int8")
    assert not (tmp_path / "y.npy").exists()


def test_missing_initializer(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    node = helper.make_node("Add", ["x", "bias"], ["y"], name="add_node")
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "m.onnx", )
    assert_user_error(tinyc("inspect", tmp_path / "m.onnx") if False else
                      tinyc("opt", tmp_path / "m.onnx"), "bias", "add_node")


def test_opt_unknown_pass_and_print_after_all(tmp_path):
    assert_user_error(tinyc("opt", KWS, "-p", "canonicalize,frobnicate"), "frobnicate")
    proc = tinyc("opt", KWS, "-p", "canonicalize,fuse", "--print-after-all", "--elide-constants")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("// ----- IR after") == 2
    assert "dense_resource<__elided__>" in proc.stdout


def test_opt_writes_ir_that_reads_back(tmp_path):
    out = tmp_path / "lowered.tir"
    proc = tinyc("opt", KWS, "-p", "default", "-o", out)
    assert proc.returncode == 0, proc.stderr
    again = tinyc("opt", out)
    assert again.returncode == 0, again.stderr
    assert again.stdout == out.read_text()
    assert "conv2d" in again.stdout and "quantize(" not in again.stdout


def test_inspect_json(tmp_path):
    import json
    proc = tinyc("inspect", KWS, "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["macs"] == 2656768
    assert summary["unsupported"] == {}
