"""Building generated C and running it: on the host (gcc) and on emulated Cortex-M cores (QEMU).

Both run the same harness (codegen/harness.py): samples go in as one binary file, outputs come back
as one binary file, one build for a whole batch.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np

from .errors import TinycError
from .ir import Graph

STRICT_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]


def pack_samples(graph: Graph, samples: list[dict[str, np.ndarray]]) -> bytes:
    chunks = []
    for sample in samples:
        for name in graph.inputs:
            v = graph.values[name]
            chunks.append(np.ascontiguousarray(sample[name], dtype=v.dtype).tobytes())
    return b"".join(chunks)


def unpack_outputs(graph: Graph, data: bytes, count: int) -> list[dict[str, np.ndarray]]:
    outs = [graph.values[n] for n in graph.outputs]
    per_sample = sum(v.nbytes for v in outs)
    if len(data) != per_sample * count:
        raise TinycError(f"the compiled model wrote {len(data)} bytes, expected {per_sample * count} "
                         f"for {count} samples")
    results, pos = [], 0
    for _ in range(count):
        sample = {}
        for v in outs:
            sample[v.name] = np.frombuffer(data[pos:pos + v.nbytes], dtype=v.dtype).reshape(v.shape).copy()
            pos += v.nbytes
        results.append(sample)
    return results


def _sources(gen_dir: Path, cmsis_nn: Path | None) -> tuple[list[Path], list[Path]]:
    """C sources and include dirs of a generated model (+ the harness), with runtime_c or CMSIS-NN."""
    model = sorted(p for p in gen_dir.glob("*.c"))
    runtime = sorted((gen_dir / "runtime_c").glob("*.c"))
    includes = [gen_dir, gen_dir / "runtime_c"]
    if cmsis_nn is None:
        return model + runtime, includes
    cmsis_nn = Path(cmsis_nn)
    if not (cmsis_nn / "Include" / "arm_nnfunctions.h").is_file():
        raise TinycError(f"--cmsis-nn {cmsis_nn}: no Include/arm_nnfunctions.h there; pass the root of a "
                         f"CMSIS-NN checkout")
    own = [p for p in runtime if p.name.startswith("tinyc_")]
    kernels = sorted(p for p in (cmsis_nn / "Source").rglob("*.c"))
    return model + own + kernels, [gen_dir, cmsis_nn / "Include", gen_dir / "runtime_c"]


def build_host(gen_dir: Path, harness: Path, exe: Path, *, sanitize: bool = False,
               cmsis_nn: Path | None = None, opt: str = "-O2", cc: str = "cc") -> Path:
    """Compile the generated model + harness for this machine with the strict warning flags."""
    if shutil.which(cc) is None:
        raise TinycError(f"no C compiler '{cc}' found; install gcc (apt-get install gcc)")
    sources, includes = _sources(gen_dir, cmsis_nn)
    sources.append(harness)
    flags = list(STRICT_CFLAGS) if cmsis_nn is None else ["-std=c99", "-w"]
    cmd = [cc, opt, *flags, *[f"-I{d}" for d in includes]]
    if sanitize:
        cmd += ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]
    cmd += [str(s) for s in sources] + ["-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise TinycError(f"host build failed: {proc.stderr.strip().splitlines()[0] if proc.stderr else cmd}")
    return exe


def run_host(exe: Path, graph: Graph, samples: list[dict[str, np.ndarray]], workdir: Path,
             timeout_s: float = 600) -> list[dict[str, np.ndarray]]:
    (workdir / "input.bin").write_bytes(pack_samples(graph, samples))
    out = workdir / "output.bin"
    if out.exists():
        out.unlink()
    try:
        proc = subprocess.run([str(exe)], cwd=workdir, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        raise TinycError(f"the host build of the model ran longer than {timeout_s:.0f} s") from None
    if proc.returncode != 0:
        detail = (proc.stdout + proc.stderr).strip().splitlines()
        raise TinycError(f"the host build of the model failed (exit {proc.returncode}): "
                         f"{detail[-1] if detail else 'no output'}")
    return unpack_outputs(graph, out.read_bytes(), len(samples))
