"""Building generated C and running it: on the host (gcc) and on emulated Cortex-M cores (QEMU).

Both run the same harness (codegen/harness.py): samples go in as one binary file, outputs come back
as one binary file, one build for a whole batch.

The kernels are runtime_c's (copied next to the generated model) or, with `cmsis_nn=PATH`, those of
a real CMSIS-NN checkout: its integer sources, as CMSIS-NN's own default build selects them (float16
and float32 extensions off), compiled once per compiler and flags into a static library kept in the
user's cache directory, so a link takes only the functions the model calls. tinyc's own helpers
(runtime_c/tinyc_*.c) are compiled in either case.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .codegen.build_files import BuildSources
from .errors import TinycError
from .ir import Graph

STRICT_CFLAGS = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]

# CMSIS-NN's CMake build leaves these out unless ARM_NN_ENABLE_F16/_F32 are on (they are off by
# default): the float16/float32 kernels and the tables only they use.
_CMSIS_NN_FLOAT_SOURCE = re.compile(r"_(f16|f32|flt)\.c$")
CMSIS_NN_LIBRARY = "libcmsisnn.a"


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


# ------------------------------------------------------------------------------------- CMSIS-NN

def check_cmsis_nn(root: str | Path) -> Path:
    """The root of a CMSIS-NN checkout (Include/arm_nnfunctions.h and Source/ present), resolved."""
    root = Path(root).expanduser().resolve()
    if not (root / "Include" / "arm_nnfunctions.h").is_file() or not (root / "Source").is_dir():
        raise TinycError(f"--cmsis-nn {root}: no Include/arm_nnfunctions.h and Source/ there; pass the "
                         f"root of a CMSIS-NN checkout")
    return root


def cmsis_nn_sources(root: str | Path) -> list[Path]:
    """The C sources of CMSIS-NN's default build: every Source/**/*.c but the float extensions."""
    root = check_cmsis_nn(root)
    return sorted(p for p in (root / "Source").rglob("*.c") if not _CMSIS_NN_FLOAT_SOURCE.search(p.name))


def cmsis_nn_include_dirs(root: str | Path) -> list[Path]:
    root = check_cmsis_nn(root)
    return [root / "Include", root / "Include" / "Internal"]


@functools.lru_cache(maxsize=None)
def _compiler_identity(compiler: str) -> str:
    path = shutil.which(compiler)
    if path is None:
        raise TinycError(f"no C compiler '{compiler}' found; install gcc (apt-get install gcc) or, for "
                         f"Cortex-M, gcc-arm-none-eabi")
    version = subprocess.run([path, "--version"], capture_output=True, text=True, check=False,
                             stdin=subprocess.DEVNULL).stdout.splitlines()
    return f"{path} {version[0] if version else ''}"


def _tree_digest(root: Path) -> str:
    """Hash of every C source and header of the checkout: an edited checkout gets a new library."""
    digest = hashlib.sha256()
    for path in sorted(list(root.glob("Source/**/*.[ch]")) + list(root.glob("Include/**/*.h"))):
        digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def cache_dir() -> Path:
    """tinyc's cache (the QEMU plugin, CMSIS-NN libraries): $XDG_CACHE_HOME/tinyc or ~/.cache/tinyc,
    else a per-user folder in the temporary directory."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = Path(base) / "tinyc"
    try:
        path.mkdir(parents=True, exist_ok=True)
        if os.access(path, os.W_OK):
            return path
    except OSError:
        pass
    return Path(tempfile.gettempdir()) / f"tinyc-cache-{os.getuid()}"


def cmsis_nn_library(root: str | Path, compiler: str, cflags: list[str] | tuple[str, ...],
                     archiver: str) -> Path:
    """A static library of CMSIS-NN's default build for `compiler` with `cflags`, built on first use
    and cached (keyed by the checkout's content, the compiler and the flags)."""
    root = check_cmsis_nn(root)
    sources = cmsis_nn_sources(root)
    if shutil.which(archiver) is None:
        raise TinycError(f"no archiver '{archiver}' found; install binutils (or binutils-arm-none-eabi)")
    flags = [*cflags, *[f"-I{d}" for d in cmsis_nn_include_dirs(root)]]
    key = hashlib.sha256("\n".join([_tree_digest(root), _compiler_identity(compiler), *flags]).encode())
    library = cache_dir() / "cmsis-nn" / key.hexdigest()[:20] / CMSIS_NN_LIBRARY
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tinyc-cmsis-nn-") as tmp:
        objects = []
        # One compiler run per Source/ subdirectory: object names are unique within one.
        for directory in sorted({s.parent for s in sources}):
            group = [s for s in sources if s.parent == directory]
            out = Path(tmp) / directory.relative_to(root).as_posix().replace("/", "__")
            out.mkdir()
            proc = subprocess.run([compiler, *flags, "-c", *[str(s) for s in group]], cwd=out,
                                  capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
            if proc.returncode != 0:
                first = next((line for line in proc.stderr.splitlines() if "error" in line),
                             proc.stderr.strip()[-300:])
                raise TinycError(f"--cmsis-nn {root}: building CMSIS-NN with {compiler} failed: {first}")
            objects += sorted(out.glob("*.o"))
        partial = library.with_name(f"{library.name}.{os.getpid()}.tmp")
        proc = subprocess.run([archiver, "rcs", str(partial), *[str(o) for o in objects]],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            partial.unlink(missing_ok=True)
            raise TinycError(f"--cmsis-nn {root}: {archiver} failed: {proc.stderr.strip()}")
        os.replace(partial, library)  # atomic: a concurrent build never sees half an archive
    return library


def model_sources(gen_dir: Path, sources: BuildSources, cmsis_nn: Path | None) -> tuple[list[Path], list[Path]]:
    """C sources and include dirs of a generated model in `gen_dir`: its own files, tinyc's kernels
    and runtime_c's CMSIS-NN functions, or, with a CMSIS-NN checkout, its own files and tinyc's
    kernels only (CMSIS-NN is linked as the library cmsis_nn_library() builds)."""
    model = [gen_dir / p for p in sources.model]
    if cmsis_nn is None:
        runtime = sorted(sources.tinyc + sources.cmsis_nn)
        return model + [gen_dir / p for p in runtime], [gen_dir, gen_dir / "runtime_c"]
    # CMSIS-NN's headers come before runtime_c's, which then only serve tinyc_kernels.h.
    return model + [gen_dir / p for p in sorted(sources.tinyc)], [gen_dir, *cmsis_nn_include_dirs(cmsis_nn),
                                                                    gen_dir / "runtime_c"]


# ----------------------------------------------------------------------------------------- host

def build_host(gen_dir: Path, sources: BuildSources, harness: Path, exe: Path, *, sanitize: bool = False,
               cmsis_nn: Path | None = None, opt: str = "-O2", cc: str = "cc",
               defines: tuple[str, ...] = ()) -> Path:
    """Compile the generated model + harness for this machine with the strict warning flags (which
    CMSIS-NN's headers are exempt from: they are included as system headers). `defines`: extra
    -D flags, e.g. TINYC_USE_DSP=1 to run runtime_c's DSP algorithms on C models of the
    instructions."""
    _compiler_identity(cc)
    files, includes = model_sources(gen_dir, sources, cmsis_nn)
    files.append(harness)
    sanitizer = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"] if sanitize else []
    libraries: list[str] = []
    if cmsis_nn is not None:
        # CMSIS-NN shifts negative values left on purpose (well defined on its targets), so its
        # library gets the address sanitizer only.
        library_sanitizer = ["-fsanitize=address", "-g"] if sanitize else []
        library = cmsis_nn_library(cmsis_nn, cc, [opt, "-std=c99", "-w", *library_sanitizer], "ar")
        libraries.append(str(library))
        system = set(cmsis_nn_include_dirs(cmsis_nn))
        include_flags = [f"-isystem{d}" if d in system else f"-I{d}" for d in includes]
    else:
        include_flags = [f"-I{d}" for d in includes]
    cmd = [cc, opt, *STRICT_CFLAGS, *[f"-D{d}" for d in defines], *include_flags, *sanitizer]
    cmd += [str(s) for s in files] + libraries + ["-o", str(exe), "-lm"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        first = next((line for line in proc.stderr.splitlines() if "error" in line),
                     proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else " ".join(cmd))
        raise TinycError(f"host build failed: {first}")
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
