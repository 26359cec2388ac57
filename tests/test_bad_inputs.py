"""The bad-input corpus: bad or unusual models, files and options, each tried as a user would (the
`tinyc` command in a folder of its own), with the exit code and a fragment of the one line it must
print. Every case also checks that no traceback appears, that a user error is one line with exit 2
(never the internal-error exit 3), and that nothing outside the path the command may write changed.

Cases are (id, setup, command, exit code, message fragment, output path). `setup(work)` makes the
files the command uses in the work folder and returns their names for the command's placeholders.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

import bad_models as bm

ROOT = Path(__file__).resolve().parents[1]
KWS = ROOT / "examples" / "kws" / "kws_ref_model_qdq.onnx"
KWS_INPUT = ROOT / "examples" / "kws" / "input.npy"
SHARED = ROOT.parent / "shared" / "models"


@dataclass
class Case:
    id: str
    setup: Callable[[Path], dict]
    command: list[str]
    exit: int
    fragment: str
    output: str | None = None            # the one path (relative to the work folder) it may write
    check: Callable[[Path, subprocess.CompletedProcess], None] | None = None
    marks: list = field(default_factory=list)


def model(builder, *args, name="m.onnx", **kwargs):
    def setup(work: Path) -> dict:
        builder(work / name, *args, **kwargs)
        return {}
    return setup


def files(**contents):
    """Files with the given bytes (or a builder of them)."""
    def setup(work: Path) -> dict:
        for name, data in contents.items():
            path = work / name.replace("__", ".")
            path.parent.mkdir(parents=True, exist_ok=True)
            if callable(data):
                data(path)
            elif isinstance(data, np.ndarray):
                np.save(path, data)
            else:
                path.write_bytes(data)
        return {}
    return setup


def both(*setups):
    def setup(work: Path) -> dict:
        for s in setups:
            s(work)
        return {}
    return setup


def kws(work: Path) -> dict:
    (work / "kws.onnx").write_bytes(KWS.read_bytes())
    return {}


def kws_and(*setups):
    return both(kws, *setups)


def a_tinyc_output(work: Path) -> dict:
    """A previous tinyc output in out/, and the model."""
    kws(work)
    proc = subprocess.run([sys.executable, "-m", "tinyc.cli", "compile", "kws.onnx", "-o", "out"], cwd=work,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return {}


def builds_strict(work: Path, proc) -> None:
    """The output directory's C compiles with -Wall -Wextra -Werror for the host."""
    out = work / "out"
    for source in sorted(out.glob("*.c")):
        result = subprocess.run(["cc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-c", str(source),
                                 f"-I{out}", f"-I{out / 'runtime_c'}", "-o", os.devnull], capture_output=True,
                                text=True)
        assert result.returncode == 0, result.stderr


def runs_equal_to_reference(work: Path, proc) -> None:
    assert np.array_equal(np.load(work / "y_host.npy"), np.load(work / "y_ref.npy"))


def truncated_kws(path: Path) -> None:
    path.write_bytes(KWS.read_bytes()[:len(KWS.read_bytes()) // 2])


NAN_INPUT = np.array([[np.nan, 1.0, -1.0, np.inf, -np.inf, 0.0, 0.3, np.nan]], np.float32)

CASES = [
    # ---- files that are not models ------------------------------------------------------------------
    Case("missing-model", files(), ["compile", "nothere.onnx", "-o", "out"], 2, "no such file"),
    Case("model-is-a-directory", files(**{"d/x": b""}), ["compile", "d", "-o", "out"], 2, "is a directory"),
    Case("empty-file", files(**{"m.onnx": b""}), ["compile", "m.onnx", "-o", "out"], 2, "m.onnx"),
    Case("truncated-onnx", files(**{"m.onnx": truncated_kws}), ["compile", "m.onnx", "-o", "out"], 2, "m.onnx"),
    Case("random-bytes", files(**{"m.onnx": bytes(range(256)) * 8}), ["compile", "m.onnx", "-o", "out"], 2, "m.onnx"),
    Case("text-ir-syntax-error", files(**{"g.tir": b"graph @g( -> {\n"}), ["compile", "g.tir", "-o", "out"], 2, "g.tir"),
    Case("text-ir-that-does-not-verify", files(**{"g.tir": b"graph @g(%x: tensor<4xf32>) -> (%y) {\n"
                                                          b"  %y = relu(%x) : tensor<5xf32>\n  return %y\n}\n"}),
         ["compile", "g.tir", "-o", "out"], 2, "declared [5]"),
    # ---- graphs that are not well formed ---------------------------------------------------------------
    Case("cycle", model(bm.cycle), ["compile", "m.onnx", "-o", "out"], 2, "cycle"),
    Case("missing-initializer", model(bm.missing_initializer), ["compile", "m.onnx", "-o", "out"], 2, "bias"),
    Case("external-data-missing", model(bm.external_data_missing), ["compile", "m.onnx", "-o", "out"], 2,
         "weights_that_are_not_there.bin"),
    Case("opset-from-the-future", model(bm.opset, 99), ["compile", "m.onnx", "-o", "out"], 2, "opset"),
    Case("unknown-op", model(bm.unknown_op), ["compile", "m.onnx", "-o", "out"], 2, "Einsum"),
    Case("unknown-domain", model(bm.unknown_op, "Frob", "com.example"), ["compile", "m.onnx", "-o", "out"], 2, "Frob"),
    Case("two-nodes-write-one-value", model(bm.two_producers), ["compile", "m.onnx", "-o", "out"], 2, "'y'"),
    Case("duplicate-graph-outputs", model(bm.duplicate_outputs), ["compile", "m.onnx", "-o", "out"], 2,
         "graph output 'y' is listed twice"),
    Case("dynamic-dimension", model(bm.dynamic_input), ["compile", "m.onnx", "-o", "out"], 2, "--input-shape"),
    Case("bad-input-shape-option", model(bm.dynamic_input),
         ["compile", "m.onnx", "-o", "out", "--input-shape", "x=1,-4"], 2, "--input-shape"),
    Case("input-shape-for-no-input", model(bm.dynamic_input),
         ["compile", "m.onnx", "-o", "out", "--input-shape", "nope=1,4"], 2, "nope"),
    Case("int64-input", model(bm.int64_input), ["compile", "m.onnx", "-o", "out"], 2, "int64"),
    Case("reshape-to-another-size", model(bm.reshape_to_another_size), ["compile", "m.onnx", "-o", "out"], 2,
         "reshape"),
    # ---- numbers that would give wrong or undefined C ------------------------------------------------
    Case("nan-weight", model(bm.float_weights_quantized_in_graph, float("nan")), ["compile", "m.onnx", "-o", "out"],
         2, "constant 'w'"),
    Case("inf-weight", model(bm.float_weights_quantized_in_graph, float("inf")), ["compile", "m.onnx", "-o", "out"],
         2, "infinite"),
    Case("nan-float-bias", model(bm.qdq_conv, float_bias=float("nan")), ["compile", "m.onnx", "-o", "out"], 2,
         "constant 'bf'"),
    Case("inf-float-bias", model(bm.qdq_conv, float_bias=float("inf")), ["compile", "m.onnx", "-o", "out"], 2,
         "infinite"),
    Case("float-bias-overflowing-int32", model(bm.qdq_conv, float_bias=1e9), ["compile", "m.onnx", "-o", "out"], 2,
         "does not fit int32"),
    Case("int32-bias-at-its-limit", model(bm.qdq_conv, bias=2 ** 31 - 1), ["compile", "m.onnx", "-o", "out"], 2,
         "accumulator can overflow"),
    Case("long-dot-product-of-extreme-weights", model(bm.long_dot_product), ["compile", "m.onnx", "-o", "out"], 2,
         "accumulator can overflow"),
    Case("zero-scale", model(bm.bad_scale, 0.0), ["compile", "m.onnx", "-o", "out"], 2, "scale"),
    Case("negative-scale", model(bm.bad_scale, -0.1), ["compile", "m.onnx", "-o", "out"], 2, "scale"),
    Case("nan-scale", model(bm.bad_scale, float("nan")), ["compile", "m.onnx", "-o", "out"], 2, "scale"),
    Case("zero-point-out-of-range", model(bm.zero_point_out_of_range), ["compile", "m.onnx", "-o", "out"], 2, "int32"),
    # ---- what the kernels cannot take: the real reason ---------------------------------------------------
    Case("float-model", model(bm.float_relu), ["compile", "m.onnx", "-o", "out"], 2, "the model is float"),
    Case("float-pool-window-in-padding", model(bm.float_pool_in_padding),
         ["compile", "m.onnx", "-o", "out", "--precision", "float32"], 2,
         "max_pool2d: a window that covers only padding (node pool)"),
    Case("weight-zero-point", model(bm.qdq_conv, w_zp=3), ["compile", "m.onnx", "-o", "out"], 2,
         "non-zero zero point (tinyc needs symmetric int8 weights)"),
    Case("bias-scale-mismatch", model(bm.qdq_conv, bias_scale=0.5), ["compile", "m.onnx", "-o", "out"], 2,
         "bias scale is not input scale x weight scale"),
    Case("bias-zero-point", model(bm.qdq_conv, bias_zp=5), ["compile", "m.onnx", "-o", "out"], 2,
         "bias has a non-zero zero point"),
    Case("int16-activations", model(bm.qdq_conv, act=bm.INT16), ["compile", "m.onnx", "-o", "out"], 2,
         "16-bit activations"),
    Case("uint8-weights-with-zero-point-128-are-symmetric", model(bm.qdq_conv, w_elem=bm.UINT8, w_zp=128),
         ["compile", "m.onnx", "-o", "out"], 0, "-> out/", "out"),
    Case("uint8-weights-with-zero-point-100", model(bm.qdq_conv, w_elem=bm.UINT8, w_zp=100),
         ["compile", "m.onnx", "-o", "out"], 2, "non-zero zero point"),
    Case("gemm-trans-a", model(bm.qdq_gemm, trans_a=1), ["compile", "m.onnx", "-o", "out"], 2, "transA=1"),
    Case("per-axis-activation", model(bm.per_axis_activation), ["compile", "m.onnx", "-o", "out"], 2, "per axis"),
    Case("one-dimensional-convolution", model(bm.conv1d), ["compile", "m.onnx", "-o", "out"], 2, "conv1d"),
    Case("inspect-says-what-compile-refuses", model(bm.qdq_conv, w_zp=3), ["inspect", "m.onnx"], 0,
         "compiles for cortex-m4: error: no cortex-m4 kernel"),
    Case("inspect-of-a-float-model", model(bm.float_relu), ["inspect", "m.onnx", "--target", "cortex-m0"], 0,
         "compiles for cortex-m0: error: the model is float"),
    Case("inspect-of-a-float-model-in-float32", model(bm.float_relu),
         ["inspect", "m.onnx", "--target", "cortex-m0", "--precision", "float32"], 0, "compiles for cortex-m0: yes"),
    # ---- models too large for the target ------------------------------------------------------------------
    Case("does-not-fit-cortex-m4", model(bm.qdq_conv, channels=64, size=8192), ["compile", "m.onnx", "-o", "out"], 2,
         "does not fit cortex-m4"),
    Case("beyond-int32-sizes", model(bm.qdq_conv, channels=64, size=65536),
         ["compile", "m.onnx", "-o", "out", "--target", "host"], 2, "2^31 - 1 bytes"),
    Case("arena-above-max-arena", kws, ["compile", "kws.onnx", "-o", "out", "--max-arena", "15000"], 2,
         "peak at layer"),
    Case("cortex-m0-ram", model(bm.qdq_conv, channels=16, size=100), ["compile", "m.onnx", "-o", "out",
                                                                      "--target", "cortex-m0"], 2,
         "256 KiB of RAM tinyc assumes for cortex-m0"),
    # ---- unusual but valid: compiled right -----------------------------------------------------------------
    Case("output-is-the-input", model(bm.passthrough), ["compile", "m.onnx", "-o", "out", "--target", "host"], 0, "",
         "out", builds_strict),
    Case("output-is-the-input-verified", model(bm.passthrough), ["verify", "m.onnx", "--count", "3"], 0,
         "bit-exact: yes"),
    Case("model-also-returns-its-input", model(bm.int8_relu_also_returning_input), ["verify", "m.onnx", "--count", "3"],
         0, "bit-exact: yes"),
    Case("comment-breaking-node-name", model(bm.named_node_conv, "conv */ int x = 1; /* y"),
         ["compile", "m.onnx", "-o", "out", "--target", "host"], 0, "", "out", builds_strict),
    Case("nan-inputs-same-everywhere", both(model(bm.nan_input_model), files(x__npy=NAN_INPUT)),
         ["run", "m.onnx", "--target", "ref", "--input", "x.npy", "--output", "y_ref.npy"], 0, "", "y_ref.npy"),
    Case("verify-a-model-onnxruntime-refuses", model(bm.duplicate_node_names), ["verify", "m.onnx", "--count", "2"],
         0, "onnxruntime refuses the model"),
    # ---- output paths ---------------------------------------------------------------------------------
    Case("force-on-the-working-directory", kws_and(files(**{"notes.txt": b"mine"})),
         ["compile", "kws.onnx", "-o", ".", "--force"], 2, "working directory"),
    Case("force-on-a-folder-holding-the-model", files(**{"models/kws.onnx": KWS.read_bytes(), "models/notes.txt": b"x"}),
         ["compile", "models/kws.onnx", "-o", "models", "--force"], 2, "models"),
    Case("force-on-a-folder-tinyc-did-not-write", kws_and(files(**{"out/main.c": b"int main;"})),
         ["compile", "kws.onnx", "-o", "out", "--force"], 2, "tinyc did not write main.c"),
    Case("no-force-on-a-full-folder", kws_and(files(**{"out/main.c": b"int main;"})),
         ["compile", "kws.onnx", "-o", "out"], 2, "--force"),
    Case("force-replaces-its-own-output", a_tinyc_output, ["compile", "kws.onnx", "-o", "out", "--force"], 0, "-> out/",
         "out"),
    Case("output-is-a-file", kws_and(files(**{"out": b"x"})), ["compile", "kws.onnx", "-o", "out"], 2,
         "is a file"),
    Case("output-parents-created", kws, ["compile", "kws.onnx", "-o", "build/models/kws"], 0, "-> build/models/kws/",
         "build"),
    Case("output-unwritable", kws, ["compile", "kws.onnx", "-o", "/proc/self/tinyc-out"], 2,
         "cannot create output directory"),
    Case("run-output-unwritable", kws, ["run", "kws.onnx", "--input", str(KWS_INPUT), "--output", "/proc/self/y.npy"],
         2, "cannot write"),
    Case("run-output-folder-missing", kws, ["run", "kws.onnx", "--input", str(KWS_INPUT), "--output", "no/y.npy"], 2,
         "does not exist"),
    Case("run-output-wrong-suffix", kws, ["run", "kws.onnx", "--input", str(KWS_INPUT), "--output", "y.txt"], 2,
         ".npy or .npz"),
    Case("opt-output-unwritable", kws, ["opt", "kws.onnx", "-p", "canonicalize", "-o", "/proc/self/x.tir"], 2,
         "cannot write"),
    # ---- options -----------------------------------------------------------------------------------------
    Case("negative-max-arena", kws, ["compile", "kws.onnx", "-o", "out", "--max-arena", "-5"], 2, "--max-arena"),
    Case("unknown-target", kws, ["compile", "kws.onnx", "-o", "out", "--target", "cortex-m85"], 2, "unknown target"),
    Case("bad-name", kws, ["compile", "kws.onnx", "-o", "out", "--name", "9lives"], 2, "C identifier"),
    Case("unknown-option", kws, ["compile", "kws.onnx", "-o", "out", "--turbo"], 2, "No such option"),
    Case("missing-option", kws, ["compile", "kws.onnx"], 2, "Missing option"),
    Case("unknown-command", files(), ["frobnicate"], 2, "No such command"),
    Case("unknown-pass", kws, ["opt", "kws.onnx", "-p", "nopass"], 2, "unknown pass"),
    Case("cmsis-nn-not-a-checkout", kws_and(files(**{"cmsis/readme": b"x"})),
         ["compile", "kws.onnx", "-o", "out", "--cmsis-nn", "cmsis"], 2, "CMSIS-NN checkout"),
    Case("profile-on-the-reference", kws, ["run", "kws.onnx", "--target", "ref", "--profile", "--input",
                                            str(KWS_INPUT), "--output", "y.npy"], 2, "--profile"),
    Case("bench-unknown-model", files(), ["bench", "nomodel"], 2, "nomodel"),
    # ---- input data ------------------------------------------------------------------------------------------
    Case("nhwc-sample-for-an-nchw-model", kws_and(files(x__npy=np.zeros((1, 49, 10, 1), np.int8))),
         ["run", "kws.onnx", "--input", "x.npy", "--output", "y.npy"], 2, "--input-layout nhwc"),
    Case("wrong-input-dtype", kws_and(files(x__npy=np.zeros((1, 1, 49, 10), np.float32))),
         ["run", "kws.onnx", "--input", "x.npy", "--output", "y.npy"], 2, "float32"),
    Case("npz-without-the-input", kws_and(files(**{"x.npz": lambda p: np.savez(p, other=np.zeros(3))})),
         ["run", "kws.onnx", "--input", "x.npz", "--output", "y.npy"], 2, "input_1"),
    Case("input-file-missing", kws, ["run", "kws.onnx", "--input", "x.npy", "--output", "y.npy"], 2, "does not exist"),
    Case("input-not-numpy", kws_and(files(**{"x.npy": b"hello"})),
         ["run", "kws.onnx", "--input", "x.npy", "--output", "y.npy"], 2, "not a .npy/.npz"),
    Case("empty-batch", kws_and(files(x__npy=np.zeros((0, 1, 49, 10), np.int8))),
         ["run", "kws.onnx", "--input", "x.npy", "--output", "y.npy"], 2, "empty"),
]


def _snapshot(root: Path) -> dict[str, str]:
    state = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            path = Path(dirpath) / name
            rel = path.relative_to(root).as_posix()
            data = path.read_bytes() if path.is_file() else b"link:" + os.readlink(path).encode()
            state[rel] = hashlib.sha256(data).hexdigest() + oct(path.lstat().st_mode)
        for name in dirnames:
            state[(Path(dirpath) / name).relative_to(root).as_posix() + "/"] = "dir"
    return state


def tinyc(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONWARNINGS="default")
    return subprocess.run([sys.executable, "-m", "tinyc.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    case.setup(work)
    before = _snapshot(work)
    proc = tinyc(case.command, work)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == case.exit, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    if case.exit == 2:
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
        assert case.fragment in lines[0], lines[0]
    else:
        assert case.fragment in proc.stdout + proc.stderr, proc.stdout + proc.stderr
        assert "Warning" not in proc.stderr, proc.stderr  # numpy warnings must not leak to the user
    after = _snapshot(work)
    allowed = (case.output or "\0").rstrip("/")
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    outside = {k for k in changed if not (k == allowed or k == allowed + "/" or k.startswith(allowed + "/"))}
    assert not outside, f"changed outside {case.output}: {sorted(outside)[:5]}"
    if case.exit == 2 and case.output is None:
        assert not changed
    if case.check is not None:
        case.check(work, proc)


def test_a_nan_input_gives_the_same_outputs_on_the_host_as_in_the_reference(tmp_path):
    """NaN quantises to the zero point (docs/ir.md), in the interpreter and in runtime_c alike."""
    bm.nan_input_model(tmp_path / "m.onnx")
    np.save(tmp_path / "x.npy", NAN_INPUT)
    for target in ("ref", "host"):
        proc = tinyc(["run", "m.onnx", "--target", target, "--input", "x.npy", "--output", f"y_{target}.npy"], tmp_path)
        assert proc.returncode == 0, proc.stderr
    runs_equal_to_reference(tmp_path, None)
    y = np.load(tmp_path / "y_ref.npy")
    assert y[0, 0] == 0.0 and y[0, 7] == 0.0  # NaN -> zero point -> 0.0 after the ReLU


def test_the_corpus_is_large_enough():
    assert len(CASES) >= 60 and len({c.id for c in CASES}) == len(CASES)
