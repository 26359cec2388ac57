"""tools/compile_time.py: the synthetic chain is a valid QDQ model that compiles to the layer count
the benchmark reports (no timing is asserted: machines are noisy)."""
from __future__ import annotations

import onnx

from tinyc.tools import compile_time as tool


def test_chain_compiles_to_its_layer_count(tmp_path):
    model = tool.chain_model(2)
    onnx.checker.check_model(model)
    path = tmp_path / "chain.onnx"
    onnx.save(model, str(path))
    result = tool.time_compile(path, "cortex-m4")
    assert result["layers"] == tool.chain_layers(2) == 11
    assert tool.blocks_for(11) == 2 and tool.blocks_for(12) == 3


def test_benchmark_prints_a_table(capsys):
    assert tool.main(["--layers", "8", "--no-models"]) == 0
    out = capsys.readouterr().out
    assert "| layers | blocks |" in out and "\n| 8 | 1 |" in out
