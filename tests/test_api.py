"""The Python API as an embedding tool uses it: only `import tinyc` and the documented calls."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import tinyc

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "examples" / "digits"
KWS = ROOT / "examples" / "kws" / "kws_ref_model_qdq.onnx"


def test_compile_a_float_model_run_it_three_ways_and_write_it(tmp_path, capsys):
    artifact = tinyc.compile(DIGITS / "digits_cnn.onnx", target="cortex-m4",
                             calibration=DIGITS / "calibration.npz")
    assert artifact.target == "cortex-m4" and artifact.arena_bytes == artifact.report["arena_bytes"] > 0
    assert artifact.weight_bytes > 0 and artifact.warnings == []
    assert set(artifact.files) >= {"model.c", "model.h", "model_weights.c", "Makefile", "report.json"}
    test = np.load(DIGITS / "test.npz")
    x, labels = test["input"][:6], test["label"][:6]
    reference = artifact.run(x, target="ref")["logits"]
    assert reference.shape == (6, 10)  # six samples in place of the model's batch of one
    np.testing.assert_array_equal(artifact.run({"input": x}, target="host")["logits"], reference)
    assert (reference.argmax(axis=1) == labels).mean() >= 5 / 6
    out = artifact.write(tmp_path / "out")
    assert (out / "model.c").read_bytes() == artifact.files["model.c"]
    assert capsys.readouterr() == ("", "")  # the API never prints


def test_calibration_as_arrays_and_a_model_proto():
    data = np.load(DIGITS / "calibration.npz")
    from_arrays = tinyc.compile(onnx.load(DIGITS / "digits_cnn.onnx"), calibration={"input": data["input"]})
    from_file = tinyc.compile(DIGITS / "digits_cnn.onnx", calibration=DIGITS / "calibration.npz")
    assert from_arrays.files["model_weights.c"] == from_file.files["model_weights.c"]
    model = tinyc.load(KWS)
    assert tinyc.compile(model, target="cortex-m0").report["target"] == "cortex-m0"


def test_errors_are_exceptions_with_the_cli_messages():
    with pytest.raises(tinyc.TinycError, match="pass --calibration DATA"):
        tinyc.compile(DIGITS / "digits_cnn.onnx")
    with pytest.raises(tinyc.TinycError, match="unknown target"):
        tinyc.compile(KWS, target="cortex-m85")
    with pytest.raises(tinyc.TinycError, match="no such file"):
        tinyc.load("nothere.onnx")
    assert issubclass(tinyc.UnsupportedError, tinyc.TinycError)
    artifact = tinyc.compile(KWS)
    with pytest.raises(tinyc.TinycError, match="missing input_1"):
        artifact.run({"x": np.zeros((1, 1, 49, 10), np.int8)}, target="ref")


def test_inspect_says_whether_a_model_compiles():
    summary = tinyc.inspect(DIGITS / "digits_cnn.onnx")
    assert "the model is float" in summary["compile_error"]
    summary = tinyc.inspect(DIGITS / "digits_cnn.onnx", calibration=str(DIGITS / "calibration.npz"))
    assert summary["compile_error"] is None and summary["macs"] == 25_600
