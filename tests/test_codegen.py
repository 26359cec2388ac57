"""`tinyc compile`: the files it writes, their determinism, strict C, builds, and its errors."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper

ROOT = Path(__file__).resolve().parents[1]
KWS = ROOT / "examples" / "kws" / "kws_ref_model_qdq.onnx"
KWS_INPUT = ROOT / "examples" / "kws" / "input.npy"
ARM_GCC = shutil.which("arm-none-eabi-gcc")
STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def tinyc(*args):
    return subprocess.run([sys.executable, "-m", "tinyc.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=600)


def compile_kws(out, *extra):
    proc = tinyc("compile", KWS, "-o", out, *extra)
    assert proc.returncode == 0, proc.stderr
    return proc


def read_tree(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


def test_compile_writes_the_promised_files(tmp_path):
    out = tmp_path / "out"
    proc = compile_kws(out, "--name", "kws")
    assert "arena" in proc.stdout and "lower bound" in proc.stdout
    files = read_tree(out)
    for name in ("kws.h", "kws.c", "kws_weights.c", "Makefile", "CMakeLists.txt", "report.json", "report.md",
                 "runtime_c/arm_nnfunctions.h", "runtime_c/tinyc_kernels.h"):
        assert name in files, name
    source = files["kws.c"].decode()
    assert "malloc" not in source
    # cortex-m4 (the default): tinyc's packed-filter convolution, CMSIS-NN's 3x3 depthwise
    assert source.count("tinyc_conv_s8(") == 5 and source.count("arm_depthwise_conv_3x3_s8(") == 4
    assert "/* op0_CONV_2D_16: conv2d -> tinyc_conv_s8 */" in source
    assert "runtime_c/tinyc_conv_s8.c" in files
    header = files["kws.h"].decode()
    assert "int kws_invoke(const int8_t *input_1, int8_t *Identity, uint8_t *arena);" in header
    assert "#define KWS_INPUT0_ZERO_POINT 83" in header
    weights = files["kws_weights.c"].decode()
    assert weights.count("const int8_t") >= 10 and "TINYC_ALIGN" in weights
    import json
    report = json.loads(files["report.json"])
    assert report["arena_bytes"] >= report["arena_lower_bound"] > 0
    assert report["macs"] >= 2_656_768
    assert [layer["node"] for layer in report["layers"]][1] == "op0_CONV_2D_16"


def test_same_input_same_bytes(tmp_path):
    compile_kws(tmp_path / "a")
    compile_kws(tmp_path / "b")
    assert read_tree(tmp_path / "a") == read_tree(tmp_path / "b")


def test_static_arena_variant(tmp_path):
    compile_kws(tmp_path / "out", "--arena", "static")
    header = (tmp_path / "out" / "model.h").read_text()
    assert "int model_invoke(const int8_t *input_1, int8_t *Identity);" in header
    assert "static uint8_t model_arena[" in (tmp_path / "out" / "model.c").read_text()


@pytest.mark.skipif(ARM_GCC is None, reason="arm-none-eabi-gcc missing (tools/setup.sh)")
@pytest.mark.parametrize("cpu", [["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"],
                                 ["-mcpu=cortex-m0", "-mthumb"], ["-mcpu=cortex-m55", "-mthumb"]])
def test_generated_c_builds_strict_for_cortex_m(tmp_path, cpu):
    out = tmp_path / "out"
    compile_kws(out)
    for source in sorted(out.rglob("*.c")):
        proc = subprocess.run([ARM_GCC, *cpu, "-O2", *STRICT, f"-I{out}", f"-I{out / 'runtime_c'}", "-c",
                               str(source), "-o", str(tmp_path / (source.stem + ".o"))],
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"{source.name}: {proc.stderr}"


@pytest.mark.skipif(shutil.which("make") is None, reason="make missing")
def test_makefile_builds_the_library(tmp_path):
    out = tmp_path / "out"
    compile_kws(out)
    proc = subprocess.run(["make", "-s", "CFLAGS=" + " ".join(STRICT)], cwd=out, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert (out / "libmodel.a").stat().st_size > 0


def test_output_directory_rules(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    proc = tinyc("compile", KWS, "-o", out)
    assert proc.returncode == 2 and "--force" in proc.stderr and "Traceback" not in proc.stderr
    proc = tinyc("compile", KWS, "-o", out, "--force")  # tinyc did not write keep.txt: never deleted
    assert proc.returncode == 2 and "keep.txt" in proc.stderr
    assert (out / "keep.txt").read_text() == "mine"
    (out / "keep.txt").unlink()
    compile_kws(out)
    compile_kws(out, "--force")  # tinyc's own output is replaced
    assert (out / "model.c").exists() and (out / ".tinyc-output").exists()


def test_max_arena_names_the_peak_layer(tmp_path):
    out = tmp_path / "out"
    proc = tinyc("compile", KWS, "-o", out, "--max-arena", "15000")  # KWS needs 16,256 B, at most 8,000 B per tensor
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert line.count("\n") == 0 and "--max-arena 15000" in line and "peak at layer" in line
    assert "16,256 bytes" in line and "live tensors" in line
    proc = tinyc("compile", KWS, "-o", out, "--max-arena", "1000")
    assert proc.returncode == 2 and "alone needs 8,000 bytes, more than --max-arena 1000" in proc.stderr
    assert not out.exists()


def test_a_float_model_is_told_to_quantise_in_one_line(tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Sigmoid", ["x"], ["a"], name="sig"), helper.make_node("Tanh", ["a"], ["y"], name="th")]
    model = helper.make_model(helper.make_graph(nodes, "g", [x], [y]), opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "float.onnx")
    out = tmp_path / "out"
    proc = tinyc("compile", tmp_path / "float.onnx", "-o", out)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "the model is float" in proc.stderr and "quantise it" in proc.stderr
    assert not out.exists()
    # In float32: tinyc's float kernels, float pointers in the API.
    proc = tinyc("compile", tmp_path / "float.onnx", "-o", out, "--precision", "float32")
    assert proc.returncode == 0, proc.stderr
    source = (out / "model.c").read_text()
    assert "tinyc_sigmoid_f32(x, ((float *)(arena + 0)), 4);" in source
    assert "tinyc_tanh_f32(((float *)(arena + 0)), y, 4);" in source
    assert "int model_invoke(const float *x, float *y, uint8_t *arena)" in source


def test_an_input_the_model_does_not_read_compiles_cleanly(tmp_path):
    """A declared input nothing reads (Dropout's ratio in inference) is a parameter C must not warn about."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    r = helper.make_tensor_value_info("r", TensorProto.FLOAT, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Dropout", ["x", "r"], ["d"], name="drop"), helper.make_node("Relu", ["d"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "g", [x, r], [y]), opset_imports=[helper.make_opsetid("", 13)])
    onnx.save(model, tmp_path / "m.onnx")
    np.savez(tmp_path / "in.npz", x=np.array([[-1, 2, -3, 4]], np.float32), r=np.array(0.5, np.float32))
    proc = tinyc("run", tmp_path / "m.onnx", "--target", "host", "--precision", "float32", "--input",
                 tmp_path / "in.npz", "--output", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), [[0, 2, 0, 4]])


def test_bad_name_is_rejected(tmp_path):
    proc = tinyc("compile", KWS, "-o", tmp_path / "out", "--name", "9lives")
    assert proc.returncode == 2 and "C identifier" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_run_host_and_nhwc_input_layout(tmp_path):
    x = np.load(KWS_INPUT)
    np.save(tmp_path / "x.npy", np.concatenate([x, x[:, :, ::-1]], axis=0))  # a batch of two
    proc = tinyc("run", KWS, "--target", "host", "--input", tmp_path / "x.npy", "--output", tmp_path / "y.npy")
    assert proc.returncode == 0, proc.stderr
    y = np.load(tmp_path / "y.npy")
    ref = tinyc("run", KWS, "--target", "ref", "--input", tmp_path / "x.npy", "--output", tmp_path / "r.npy")
    assert ref.returncode == 0, ref.stderr
    assert np.array_equal(y, np.load(tmp_path / "r.npy")) and int(y[0].argmax()) == 5
    np.save(tmp_path / "x_nhwc.npy", np.load(tmp_path / "x.npy").transpose(0, 2, 3, 1))
    proc = tinyc("run", KWS, "--target", "host", "--input-layout", "nhwc", "--input", tmp_path / "x_nhwc.npy",
                 "--output", tmp_path / "y2.npy")
    assert proc.returncode == 0, proc.stderr
    assert np.array_equal(np.load(tmp_path / "y2.npy"), y)


def test_verify_command(tmp_path):
    proc = tinyc("verify", KWS, "--count", "4", "--inputs", KWS_INPUT)
    assert proc.returncode == 0, proc.stderr
    assert "| Identity | 5 | 5/5 | 0 |" in proc.stdout and "bit-exact: yes" in proc.stdout


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["", "model_w_", "x" * 47, "StatefulPartitionedCall/model/"]),
                          st.sampled_from(["", "1", "_1", "conv", "conv_1", "conv_2", "a/b", "int"])),
                max_size=40))
def test_namer_suffixes_are_the_smallest_free_ones(keys):
    """The Namer remembers where each base's suffixes continue; the names are those of trying
    every suffix from 1."""
    import re

    from tinyc.codegen.cwriter import C_KEYWORDS, Namer

    def naive(used, key, prefix):
        base = re.sub(r"_+", "_", re.sub(r"[^A-Za-z0-9_]", "_", f"{prefix}{key}").strip("_") or "v")[:48]
        base = f"v_{base}" if base[0].isdigit() or base in C_KEYWORDS else base
        name, i = base, 1
        while name in used:
            name, i = f"{base}_{i}", i + 1
        used.add(name)
        return name

    namer, used, seen = Namer(reserved=("model",)), {"model"}, {}
    for prefix, key in keys:
        want = seen.get(key) or naive(used, key, prefix)  # a key keeps its first name
        seen[key] = want
        assert namer(key, prefix=prefix) == want
