"""Running a generated model on an emulated Cortex-M core and reading its cost.

The model's C, its kernels (runtime_c or a real CMSIS-NN) and the test harness are linked with the
bare-metal startup for the target's board; QEMU runs the batch once, sandboxed, and the harness
reports executed instructions per inference (and per layer with profiling), peak stack, and the ELF's
flash and RAM figures. `footprint()` splits the ELF's bytes by where each symbol was defined (the
model's weights, the model's own code and constants, the kernels, the test harness, the C library),
so the model's cost can be told apart from the harness's.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .build import cmsis_nn_library, model_sources, pack_samples, unpack_outputs
from .codegen.build_files import BuildSources
from .emulator import BAREMETAL_DIR, NM, build_firmware, elf_sizes, run_firmware
from .errors import TinycError
from .ir import Graph
from .targets import Target


@dataclass
class EmulatorCost:
    target: str
    board: str
    exact: bool
    samples: int
    instructions_per_inference: int
    stack_bytes: int
    arena_bytes: int
    flash_bytes: int
    weight_bytes: int
    text_bytes: int
    rodata_bytes: int
    data_bytes: int
    bss_bytes: int
    layers: list[dict] = field(default_factory=list)
    inference_stack_bytes: int = 0  # peak stack of the inferences alone (+ ~40 B of the probe)
    footprint: dict = field(default_factory=dict)  # footprint() of the ELF

    @property
    def ram_bytes(self) -> int:
        """Arena + stack + data/bss other than the arena (which the harness keeps in .bss)."""
        return self.data_bytes + self.bss_bytes + self.stack_bytes

    @property
    def flash_non_weight_bytes(self) -> int:
        """Flash of the model's code and constants other than weights, plus its kernels' code and
        tables (the harness and the C library excluded; see footprint())."""
        return sum(self.footprint.get(part, {}).get("flash", 0) for part in ("model", "kernels"))

    def __str__(self) -> str:
        kind = "exact" if self.exact else "SysTick, +-40"
        lines = [f"{self.target} ({self.board}): {self.instructions_per_inference:,} instructions per "
                 f"inference ({kind}); flash {self.flash_bytes:,} B (weights {self.weight_bytes:,} B); "
                 f"RAM {self.ram_bytes:,} B = arena {self.arena_bytes:,} + stack {self.stack_bytes:,} + "
                 f"other data/bss {self.data_bytes + self.bss_bytes - self.arena_bytes:,}"]
        if self.layers:
            total = sum(layer["instructions"] for layer in self.layers) or 1
            lines.append(f"{'#':>3}  {'instructions':>12}  {'share':>6}  layer")
            for layer in self.layers:
                lines.append(f"{layer['index']:>3}  {layer['instructions']:>12,}  "
                             f"{100 * layer['instructions'] / total:5.1f}%  {layer['node']} ({layer['kernel']})")
        return "\n".join(lines)


FIRMWARE_OPT = "-O2"
FIRMWARE_CFLAGS = ("-std=c99",)


def firmware_sources(gen_dir: Path, sources: BuildSources, harness: Path, cmsis_nn: Path | None,
                     target: Target) -> tuple[list[Path], list[Path]]:
    """Sources (and, with CMSIS-NN, its library for `target`, last) and include dirs of a model's
    firmware."""
    files, includes = model_sources(gen_dir, sources, cmsis_nn)
    files.append(harness)
    if cmsis_nn is not None:
        # The same code generation flags build_firmware gives every source.
        flags = [*target.cflags, FIRMWARE_OPT, "-g", "-ffunction-sections", "-fdata-sections",
                 *FIRMWARE_CFLAGS, "-w"]
        files.append(cmsis_nn_library(cmsis_nn, target.compiler, flags, target.archiver))
    return files, includes


def run_on_emulator(lowered: Graph, generated, gen_dir: Path, harness: Path,
                    samples: list[dict[str, np.ndarray]], options, workdir: Path,
                    cmsis_nn: Path | None = None, timeout_s: float = 600):
    gen_dir, harness = Path(gen_dir).resolve(), Path(harness).resolve()
    sources, includes = firmware_sources(gen_dir, generated.sources, harness, cmsis_nn, options.target)
    (workdir / "input.bin").write_bytes(pack_samples(lowered, samples))

    def build_and_run(defines: dict[str, str], build_dir: str):
        elf = build_firmware(options.target, sources, includes, workdir / build_dir, defines=defines,
                             opt=FIRMWARE_OPT, extra_cflags=FIRMWARE_CFLAGS, name=options.name)
        result = run_firmware(elf, options.target, timeout_s=timeout_s, workdir=workdir)
        if result.exit_code != 0:
            last = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "no output"
            raise TinycError(f"the model failed on {options.target.name} (exit {result.exit_code}): {last}")
        return elf, result

    # The headline figures come from a build without the per-layer probes, whose own instructions
    # would otherwise count in the inference; --profile runs a second build for the layers.
    elf, result = build_and_run({"TINYC_MEASURE": ""}, "fw")
    outputs = unpack_outputs(lowered, (workdir / "output.bin").read_bytes(), len(samples))
    inference = result.inference
    if inference is None or not inference.calls:
        raise TinycError("the firmware reported no inference measurement")
    sizes = elf_sizes(elf)
    layers = []
    if options.profile:
        _, profiled = build_and_run({"TINYC_MEASURE": "", "TINYC_PROFILE": ""}, "fw_profile")
        by_name = {row["node"]: row for row in generated.report["layers"]}
        for name, region in sorted(profiled.regions.items(), key=lambda kv: kv[1].id):
            row = by_name.get(name, {})
            layers.append({"index": region.id, "node": name, "kernel": row.get("kernel", "?"),
                           "instructions": region.instructions // max(region.calls, 1)})
    cost = EmulatorCost(
        target=options.target.name, board=result.board, exact=result.exact, samples=len(samples),
        instructions_per_inference=inference.instructions // inference.calls,
        stack_bytes=int(result.stack_peak or 0), arena_bytes=generated.report["arena_bytes"],
        flash_bytes=int(sizes["flash"]), weight_bytes=generated.report["weight_bytes"],
        text_bytes=int(sizes["text"]), rodata_bytes=int(sizes["rodata"]), data_bytes=int(sizes["data"]),
        bss_bytes=int(sizes["bss"]), layers=layers, inference_stack_bytes=int(inference.stack_bytes),
        footprint=footprint(elf, gen_dir, options.name, cmsis_nn, harness))
    return outputs, cost


# ------------------------------------------------------------------------------- footprint

FOOTPRINT_PARTS = ("weights", "model", "kernels", "harness", "libc")
_FLASH_SECTIONS = (".vectors", ".text", ".rodata", ".ARM.extab", ".ARM.exidx", ".init_array")


def footprint(elf: Path, gen_dir: Path, name: str, cmsis_nn: Path | None = None,
              harness: Path | None = None) -> dict:
    """Bytes of flash and RAM per part of the firmware, from the sizes of the ELF's symbols and the
    source file each was defined in (debug information, `nm -l`):

      weights  constants of <gen_dir>/<name>_weights.c (weights, biases, requantisation tables)
      model    everything else of the generated model's own .c files (invoke(), layer parameters)
      kernels  runtime_c's kernels and tinyc_*.c helpers (<gen_dir>/runtime_c), or CMSIS-NN's sources
      harness  the bare-metal harness (startup, semihosting, profiling) and the `harness` main()
               file with its buffers (the arena it provides is counted here; the model's arena size
               is separate)
      libc     the C library and compiler runtime (newlib-nano, libgcc) pulled in by anyone

    Flash counts code, read-only data and the load image of .data; RAM counts .data and .bss.
    `unattributed_flash` is the ELF's flash not covered by any sized symbol (alignment padding).
    """
    result = subprocess.run([NM, "-S", "-l", "-f", "sysv", str(elf)], capture_output=True, text=True,
                            check=False)
    if result.returncode != 0:
        raise TinycError(f"{NM} could not read {elf}: {result.stderr.strip()}")
    gen_dir = os.path.normpath(Path(gen_dir).resolve())
    weights_file = os.path.join(gen_dir, f"{name}_weights.c")
    runtime_dir = os.path.join(gen_dir, "runtime_c")
    kernel_dirs = [runtime_dir] + ([os.path.normpath(Path(cmsis_nn).resolve())] if cmsis_nn else [])
    harness_dir = os.path.normpath(BAREMETAL_DIR)
    harness_file = os.path.normpath(Path(harness).resolve()) if harness is not None else None
    parts = {part: {"flash": 0, "ram": 0} for part in FOOTPRINT_PARTS}

    def part_of(source: str) -> str:
        if not source:
            return "libc"
        source = os.path.normpath(source)
        if source == weights_file:
            return "weights"
        if any(_inside(source, d) for d in kernel_dirs):
            return "kernels"
        if _inside(source, harness_dir) or source == harness_file:
            return "harness"
        if _inside(source, gen_dir):
            return "model"
        return "libc"

    for line in result.stdout.splitlines():
        fields = [f.strip() for f in line.split("|")]
        if len(fields) != 7 or not fields[4]:
            continue
        size = int(fields[4], 16)
        section, _, location = fields[6].partition("\t")
        section = section.strip()
        source = location.strip().rpartition(":")[0]
        part = parts[part_of(source)]
        if section in _FLASH_SECTIONS or section.startswith(".text") or section.startswith(".rodata"):
            part["flash"] += size
        elif section.startswith(".data"):
            part["flash"] += size
            part["ram"] += size
        elif section.startswith(".bss"):
            part["ram"] += size
    result_parts: dict = dict(parts)
    flash = int(elf_sizes(elf)["flash"])
    result_parts["unattributed_flash"] = max(flash - sum(p["flash"] for p in parts.values()), 0)
    return result_parts


def _inside(path: str, directory: str) -> bool:
    return path == directory or path.startswith(directory.rstrip(os.sep) + os.sep)
