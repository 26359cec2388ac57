"""`tinyc bench` and building against a real CMSIS-NN.

The bench runs AD and KWS on an emulated Cortex-M4 with runtime_c; the real-CMSIS-NN variants run only
when TINYC_CMSIS_NN names a CMSIS-NN checkout. CMSIS-NN source selection and its cached library are
tested on a small fake checkout.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyc.build import check_cmsis_nn, cmsis_nn_library, cmsis_nn_sources
from tinyc.errors import TinycError
from tinyc.tools import bench

MLPERF = Path(__file__).resolve().parents[1].parent / "shared" / "models" / "mlperf_tiny"
TFLM_OUTPUTS = MLPERF.parent / "data" / "tflm_outputs.json"
HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None
CMSIS_NN = os.environ.get("TINYC_CMSIS_NN")

needs_models = pytest.mark.skipif(not MLPERF.is_dir(), reason="../shared/models/mlperf_tiny not present")
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc or qemu-system-arm missing")
needs_cmsis_nn = pytest.mark.skipif(not CMSIS_NN, reason="TINYC_CMSIS_NN (a CMSIS-NN checkout) not set")

ROW_FIELDS = ("model", "file", "target", "kernels", "input_layout", "compile_seconds", "instructions",
              "macs", "instructions_per_mac", "flash_bytes", "flash_non_weight_bytes", "weight_bytes",
              "ram_bytes", "arena_bytes", "arena_lower_bound", "stack_bytes", "io_bytes", "footprint",
              "bit_exact", "matches_tflm", "tflm", "ratios", "goals_met")


def tinyc(*args):
    return subprocess.run([sys.executable, "-m", "tinyc.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


# ---- inputs and model resolution -----------------------------------------------------------------

def test_tflm_input_pattern_starts_with_the_documented_bytes():
    pattern = bench.tflm_input_pattern(1000)
    assert pattern.dtype == np.int8 and pattern.shape == (1000,)
    assert pattern[:8].view(np.uint8).tolist() == [0x75, 0xCD, 0x25, 0x4B, 0x84, 0xE2, 0xEA, 0xF2]
    assert np.array_equal(bench.tflm_input_pattern(8), pattern[:8])


@needs_models
def test_the_pattern_is_laid_out_in_nhwc_order_for_nchw_inputs():
    from tinyc.driver import load_graph, lower_for_codegen
    lowered = lower_for_codegen(load_graph(MLPERF / "ic" / "pretrainedResnet_quant_qop.onnx"), "model")
    name = lowered.inputs[0]
    assert lowered.values[name].shape == (1, 3, 32, 32)
    x = bench.pattern_input(lowered, name)
    assert x.shape == (1, 3, 32, 32)
    assert np.array_equal(x.transpose(0, 2, 3, 1).reshape(-1), bench.tflm_input_pattern(3 * 32 * 32))


@needs_models
def test_models_resolve_by_key_or_by_file():
    ad_file = MLPERF / "ad" / "ad01_int8_qdq.onnx"
    resolved = bench.resolve_models(["kws", str(ad_file)], MLPERF, "qdq")
    assert resolved == [("kws", MLPERF / "kws" / "kws_ref_model_qdq.onnx"), ("ad", ad_file)]
    assert [key for key, _ in bench.resolve_models([], MLPERF, "qop")] == ["kws", "vww", "ic", "ad", "sww"]
    with pytest.raises(TinycError, match="neither a file nor one of"):
        bench.resolve_models(["resnet"], MLPERF, "qop")
    with pytest.raises(TinycError, match="--models-dir"):
        bench.resolve_models(["kws"], None, "qop")
    with pytest.raises(TinycError, match="--form"):
        bench.resolve_models(["kws"], MLPERF, "float")


def test_ratios_against_tflm_and_goals():
    row = {"target": "cortex-m4", "instructions": 7_000_000, "arena_bytes": 20_000, "io_bytes": 502,
           "flash_non_weight_bytes": 30_000, "weight_bytes": 60_000, "ram_bytes": 21_000,
           "stack_bytes": 500}
    result = bench.compare_with_tflm(row, "kws")
    ratios, goals = result["ratios"], result["goals_met"]
    assert ratios["instructions"] == round(7_000_000 / 7_696_400, 4)
    assert ratios["arena"] == round(20_000 / 22_820, 4)
    assert ratios["flash_non_weights"] == round(30_000 / 76_359, 4)
    assert ratios["weights"] == round(60_000 / 53_940, 4)
    assert ratios["ram"] == round(21_000 / (22_820 + 1_764), 4)
    assert goals == {"instructions": True, "arena": False, "flash_non_weights": False, "weights": False}
    other_core = bench.compare_with_tflm(dict(row, target="cortex-m7"), "kws")
    assert "instructions" not in other_core["ratios"] and other_core["goals_met"] == {}
    assert bench.compare_with_tflm(row, "sww") == {"tflm": None, "ratios": {}, "goals_met": {}}
    assert "stack" not in bench.compare_with_tflm(row, "ic")["ratios"]  # TFLM's IC stack is unknown


def test_unemulated_target_is_rejected():
    with pytest.raises(TinycError, match="cannot be emulated"):
        bench.run_bench([], ["host"])


def test_a_model_that_cannot_be_benchmarked_gives_error_rows(tmp_path):
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="r")], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), tmp_path / "f.onnx")
    rows = bench.bench_model(None, tmp_path / "f.onnx", ["cortex-m4", "cortex-m7"])
    assert [(r["model"], r["target"]) for r in rows] == [("f", "cortex-m4"), ("f", "cortex-m7")]
    assert all("float32" in r["error"] and "int8" in r["error"] for r in rows)


# ---- CMSIS-NN source selection (a fake checkout) -----------------------------------------------

def _fake_cmsis_nn(root: Path, scale: int = 3) -> Path:
    (root / "Include" / "Internal").mkdir(parents=True)
    (root / "Include" / "arm_nnfunctions.h").write_text("int arm_scale_s8(int x);\n")
    (root / "Include" / "Internal" / "arm_nn_compiler.h").write_text("#define FAKE_SCALE %d\n" % scale)
    sources = root / "Source" / "BasicMathFunctions"
    sources.mkdir(parents=True)
    (sources / "arm_scale_s8.c").write_text(
        '#include "arm_nnfunctions.h"\n#include "Internal/arm_nn_compiler.h"\n'
        "int arm_scale_s8(int x) { return FAKE_SCALE * x; }\n")
    # Float kernels are left out of CMSIS-NN's default build; these would not even compile.
    (sources / "arm_scale_f16.c").write_text("float16_t broken;\n")
    (sources / "arm_scale_f32.c").write_text("#error float32 extension is off\n")
    (root / "Source" / "NNSupportFunctions").mkdir()
    (root / "Source" / "NNSupportFunctions" / "arm_nntables_flt.c").write_text("#error off\n")
    return root


def test_cmsis_nn_sources_leave_out_the_float_extensions(tmp_path):
    root = _fake_cmsis_nn(tmp_path / "cmsis")
    assert [p.name for p in cmsis_nn_sources(root)] == ["arm_scale_s8.c"]
    with pytest.raises(TinycError, match="root of a CMSIS-NN checkout"):
        check_cmsis_nn(tmp_path)


@pytest.mark.skipif(shutil.which("cc") is None or shutil.which("ar") is None, reason="no host cc/ar")
def test_cmsis_nn_library_is_built_once_and_rebuilt_when_the_checkout_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    root = _fake_cmsis_nn(tmp_path / "cmsis")
    library = cmsis_nn_library(root, "cc", ["-O2"], "ar")
    assert library.is_file() and str(library).startswith(str(tmp_path / "cache"))
    stamp = library.stat().st_mtime_ns
    assert cmsis_nn_library(root, "cc", ["-O2"], "ar") == library and library.stat().st_mtime_ns == stamp
    assert cmsis_nn_library(root, "cc", ["-O1"], "ar") != library  # other flags, other library
    main = tmp_path / "main.c"
    main.write_text('#include "arm_nnfunctions.h"\nint main(void) { return arm_scale_s8(14) == 42 ? 0 : 1; }\n')
    exe = tmp_path / "prog"
    subprocess.run(["cc", f"-I{root / 'Include'}", str(main), str(library), "-o", str(exe)], check=True)
    assert subprocess.run([str(exe)]).returncode == 0
    (root / "Include" / "Internal" / "arm_nn_compiler.h").write_text("#define FAKE_SCALE 4\n")
    assert cmsis_nn_library(root, "cc", ["-O2"], "ar") != library


# ---- the bench on AD and KWS (Cortex-M4, runtime_c) ----------------------------------------------

@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    if not (MLPERF.is_dir() and HAVE_ARM):
        pytest.skip("needs ../shared/models and arm-none-eabi-gcc + qemu-system-arm")
    out = tmp_path_factory.mktemp("bench")
    proc = tinyc("bench", "ad", "kws", "--models-dir", MLPERF, "--out", out)
    return proc, json.loads((out / "bench.json").read_text()), (out / "bench.md").read_text()


def test_bench_measures_ad_and_kws(bench_run):
    proc, result, _ = bench_run
    assert proc.returncode == 0, proc.stderr
    assert result["kernels"] == "runtime_c" and result["form"] == "qop" and result["targets"] == ["cortex-m4"]
    assert [r["model"] for r in result["results"]] == ["ad", "kws"]
    summary = result["summary"]
    assert (summary["rows"], summary["errors"], summary["bit_exact"], summary["all_bit_exact"]) == (2, 0, 2, True)
    assert set(summary["goals_met"]) == set(bench.GOALS)
    for row in result["results"]:
        assert set(ROW_FIELDS) <= set(row), row
        assert row["target"] == "cortex-m4" and row["board"] == "mps2-an386" and row["exact_counts"]
        assert row["bit_exact"] is True and row["matches_tflm"] is True
        # MACs counted like TFLM's figures; instructions are exact, one inference.
        assert row["macs"] == row["tflm"]["macs"]
        assert row["instructions_per_mac"] == round(row["instructions"] / row["macs"], 3)
        assert 0 < row["compile_seconds"] < 60
        # Flash: whole image = weights + model + kernels + harness + libc + padding.
        fp = row["footprint"]
        assert fp["weights"]["flash"] == row["weight_bytes"]
        assert row["flash_non_weight_bytes"] == fp["model"]["flash"] + fp["kernels"]["flash"] > 0
        assert row["flash_bytes"] == sum(fp[p]["flash"] for p in ("weights", "model", "kernels", "harness",
                                                                   "libc")) + fp["unattributed_flash"]
        assert fp["unattributed_flash"] < 1024 and fp["harness"]["flash"] > 0
        assert row["arena_bytes"] >= row["arena_lower_bound"] > 0
        assert 0 < row["stack_bytes"] < 4096
        assert row["ram_bytes"] >= row["arena_bytes"] + row["io_bytes"] + row["stack_bytes"]
        ref = bench.TFLM_CORTEX_M4[row["model"]]
        assert row["ratios"]["instructions"] == round(row["instructions"] / ref.instructions, 4)
        assert row["ratios"]["arena"] == round(row["arena_bytes"] / ref.arena, 4)
        assert row["goals_met"]["weights"] == (row["weight_bytes"] <= ref.flatbuffer)
    ad, kws = result["results"]
    assert ad["io_bytes"] == 640 + 640 and kws["io_bytes"] == 490 + 12


def test_bench_prints_and_writes_the_tables(bench_run):
    proc, result, markdown = bench_run
    assert proc.stdout.startswith(markdown)
    assert "| model | target | compile s | instructions |" in markdown
    for row in result["results"]:
        assert f"| {row['model']} | cortex-m4 | " in markdown
        assert f"{row['instructions']:,}" in markdown
    assert "instructions (<= 0.95)" in markdown
    assert "bit-exact with the reference interpreter: 2 of 2 runs;" in markdown
    assert proc.stderr.count("bit-exact yes") == 2  # one progress line per run


# ---- real CMSIS-NN (TINYC_CMSIS_NN) ----------------------------------------------------------------

@needs_cmsis_nn
@needs_models
def test_verify_with_real_cmsis_nn_on_the_host():
    proc = tinyc("verify", MLPERF / "kws" / "kws_ref_model_qop.onnx", "--cmsis-nn", CMSIS_NN, "--count", "5")
    assert proc.returncode == 0, proc.stderr
    assert "bit-exact: yes" in proc.stdout


@needs_cmsis_nn
@needs_models
@needs_arm
def test_bench_with_real_cmsis_nn_matches_tflm(tmp_path):
    models = bench.resolve_models(["ad", "kws"], MLPERF, "qop")
    result = bench.run_bench(models, ["cortex-m4"], cmsis_nn=CMSIS_NN, tflm_outputs_path=TFLM_OUTPUTS)
    assert result["kernels"] == "CMSIS-NN" and result["summary"]["all_bit_exact"]
    for row in result["results"]:
        assert row["bit_exact"] and row["matches_tflm"], row
        # Same kernels as TFLM + CMSIS-NN, without an interpreter: never more instructions.
        assert row["ratios"]["instructions"] <= 1.0, row["ratios"]
        assert row["footprint"]["kernels"]["flash"] > 0

