"""Running a generated model on an emulated Cortex-M core and reading its cost.

The model's C, its kernels (runtime_c or a real CMSIS-NN) and the test harness are linked with the
bare-metal startup for the target's board; QEMU runs the batch once, sandboxed, and the harness
reports executed instructions per inference (and per layer with profiling), peak stack, and the ELF's
flash and RAM figures.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .build import pack_samples, unpack_outputs
from .errors import TinycError
from .ir import Graph


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

    @property
    def ram_bytes(self) -> int:
        """Arena + stack + data/bss other than the arena (which the harness keeps in .bss)."""
        return self.data_bytes + self.bss_bytes + self.stack_bytes

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


def firmware_sources(gen_dir: Path, harness: Path, cmsis_nn: Path | None) -> tuple[list[Path], list[Path]]:
    from .build import _sources
    sources, includes = _sources(gen_dir, cmsis_nn)
    return sources + [harness], includes


def run_on_emulator(lowered: Graph, generated, gen_dir: Path, harness: Path,
                    samples: list[dict[str, np.ndarray]], options, workdir: Path,
                    cmsis_nn: Path | None = None, timeout_s: float = 600):
    from .emulator import build_firmware, elf_sizes, run_firmware
    sources, includes = firmware_sources(gen_dir, harness, cmsis_nn)
    defines = {"TINYC_MEASURE": ""}
    if options.profile:
        defines["TINYC_PROFILE"] = ""
    elf = build_firmware(options.target, sources, includes, workdir / "fw", defines=defines,
                         extra_cflags=("-std=c99",), name=options.name)
    (workdir / "input.bin").write_bytes(pack_samples(lowered, samples))
    result = run_firmware(elf, options.target, timeout_s=timeout_s, workdir=workdir)
    if result.exit_code != 0:
        raise TinycError(f"the model failed on {options.target} (exit {result.exit_code}): "
                         f"{result.stdout.strip().splitlines()[-1] if result.stdout.strip() else 'no output'}")
    outputs = unpack_outputs(lowered, (workdir / "output.bin").read_bytes(), len(samples))
    inference = result.inference
    if inference is None or not inference.calls:
        raise TinycError("the firmware reported no inference measurement")
    sizes = elf_sizes(elf)
    layers = []
    if options.profile:
        by_name = {row["node"]: row for row in generated.report["layers"]}
        for name, region in sorted(result.regions.items(), key=lambda kv: kv[1].id):
            row = by_name.get(name, {})
            layers.append({"index": region.id, "node": name, "kernel": row.get("kernel", "?"),
                           "instructions": region.instructions // max(region.calls, 1)})
    cost = EmulatorCost(
        target=options.target, board=result.board, exact=result.exact, samples=len(samples),
        instructions_per_inference=inference.instructions // inference.calls,
        stack_bytes=int(result.stack_peak or 0), arena_bytes=generated.report["arena_bytes"],
        flash_bytes=int(sizes["flash"]), weight_bytes=generated.report["weight_bytes"],
        text_bytes=int(sizes["text"]), rodata_bytes=int(sizes["rodata"]), data_bytes=int(sizes["data"]),
        bss_bytes=int(sizes["bss"]), layers=layers)
    return outputs, cost
