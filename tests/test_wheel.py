"""tinyc as users install it: a wheel built from this tree, installed into a fresh virtual environment
(no access to the source tree or to the development install), used from a directory outside the
source tree: every module imports, `tinyc run` works with the reference interpreter, the host build and
an emulated Cortex-M4, and `make` builds a compiled output directory.

The dependencies come from PyPI (or pip's cache); the test is skipped when they cannot be installed.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "kws"
HAVE_ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "qemu-system-arm", "make"))

IMPORT_EVERY_MODULE = """
import importlib, pkgutil, sys, tinyc
home = tinyc.__path__[0]
assert home.startswith(sys.prefix), f"tinyc imported from {home}, not from the virtual environment"
names = [m.name for m in pkgutil.walk_packages(tinyc.__path__, "tinyc.")]
for name in names:
    importlib.import_module(name)
print(len(names), "modules")
"""


def _run(command: list, cwd: Path, env: dict, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=timeout, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, (f"$ {' '.join(map(str, command))}\nexit {result.returncode}\n"
                                    f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
    return result


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc, qemu-system-arm or make missing (tools/setup.sh)")
def test_installed_wheel_runs_from_outside_the_source_tree(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    dist, venv, work, tree = tmp_path / "dist", tmp_path / "venv", tmp_path / "work", tmp_path / "tree"
    work.mkdir()
    # Built from a copy, so the build leaves nothing behind in the source tree.
    shutil.copytree(REPO, tree, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "out", "__pycache__",
                                                              ".pytest_cache", ".hypothesis"))
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", dist, tree], work, env)
    wheel = next(dist.glob("tinyc-*.whl"))
    _run([sys.executable, "-m", "venv", venv], work, env)
    bin_dir = venv / "bin"
    install = subprocess.run([bin_dir / "python", "-m", "pip", "install", "-q", wheel], cwd=work, env=env,
                             capture_output=True, text=True, timeout=900)
    if install.returncode != 0 and "No matching distribution" in install.stderr + install.stdout:
        pytest.skip(f"the dependencies cannot be installed here: {install.stderr.strip()[-300:]}")
    assert install.returncode == 0, install.stderr[-3000:]
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"

    modules = _run([bin_dir / "python", "-c", IMPORT_EVERY_MODULE], work, env)
    assert int(modules.stdout.split()[0]) > 40

    model, sample = EXAMPLE / "kws_ref_model_qdq.onnx", EXAMPLE / "input.npy"
    outputs = {}
    for target in ("ref", "host", "cortex-m4"):
        out = work / f"y_{target}.npy"
        _run(["tinyc", "run", model, "--target", target, "--input", sample, "--output", out], work, env)
        outputs[target] = np.load(out)
    np.testing.assert_array_equal(outputs["host"], outputs["ref"])
    np.testing.assert_array_equal(outputs["cortex-m4"], outputs["ref"])
    assert int(outputs["ref"].argmax()) == 5  # the reference submission's answer for this input

    _run(["tinyc", "compile", model, "--target", "cortex-m4", "--name", "kws", "-o", work / "out"], work, env)
    _run(["make", "-C", work / "out", "-j2"], work, env)
    assert (work / "out" / "libkws.a").stat().st_size > 0
