"""The cores tinyc compiles for: toolchain and flags, ISA features, arena alignment, the emulator
board, and instructions per unit of work for estimates.

A `Target` is plain data, resolved once from its name (`tinyc.targets.get`) and handed to every stage:
kernel selection, the memory planner, code generation, the build files, the builds and the emulator.
Its `isa` ("plain", "dsp" or "mve") decides which kernels pay off and how much scratch they need
(tinyc.targets.kernels).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

# The instruction sets kernels are written for: no SIMD (Armv6-M, Armv7-M, hosts), the DSP extension
# (Armv7E-M / Armv8-M Mainline: SMLAD, SXTB16...) and Helium (the M-profile vector extension).
ISAS = ("plain", "dsp", "mve")

# ---- cost model -----------------------------------------------------------------------------------
# Instructions per unit of work (one multiply-accumulate for convolutions and fully connected layers,
# one pooling window element for pooling, one output element for everything else) by kernel cost
# class: the weighted means over the layers of the five MLPerf Tiny models built with runtime_c's
# kernels and counted exactly on QEMU (`tinyc run --profile`, December 2026). Classes those models do
# not exercise (lut, quantize, dequantize, rescale, mul) and the cores QEMU does not emulate
# (Cortex-M0/M0+, hosts) keep estimates read off the kernels' inner loops. Good enough to rank
# choices and to size a layer's share; tinyc does not promise more from them.
# The float32 kernels (tinyc_f32.c), measured the same way on the float models of ../shared/models
# (MNIST, KWS, VWW, IC, AD; exp_f32 on their softmax layers): with an FPU on Cortex-M4 (also used for
# the other cores with one), in software floating point on Cortex-M3 (MNIST, KWS, AD; eltwise_f32
# there an estimate).
_HARD_FLOAT = {"conv_f32": 5.9, "depthwise_f32": 9.3, "fc_f32": 5.3, "eltwise_f32": 17.0, "exp_f32": 105.0,
               "pool_f32": 13.5}
_SOFT_FLOAT = {"conv_f32": 95.0, "depthwise_f32": 71.0, "fc_f32": 99.0, "eltwise_f32": 60.0, "exp_f32": 1500.0,
               "pool_f32": 66.0}
_PLAIN_V6M = {"conv": 9.0, "depthwise": 28.0, "fc": 8.0, "add": 45.0, "mul": 30.0, "pool": 10.0,
              "softmax": 280.0, "lut": 4.0, "quantize": 40.0, "dequantize": 30.0, "rescale": 20.0,
              "move": 10.0, **_SOFT_FLOAT}
_PLAIN_V7M = {"conv": 7.1, "depthwise": 22.3, "fc": 6.4, "add": 34.0, "mul": 20.0, "pool": 8.1,
              "softmax": 224.0, "lut": 3.0, "quantize": 25.0, "dequantize": 15.0, "rescale": 12.0,
              "move": 8.3, **_SOFT_FLOAT}
_DSP = {"conv": 1.8, "depthwise": 22.2, "fc": 1.8, "add": 38.0, "mul": 20.0, "pool": 8.1,
        "softmax": 224.0, "lut": 3.0, "quantize": 10.0, "dequantize": 4.0, "rescale": 8.0, "move": 8.3,
        **_HARD_FLOAT}
_MVE = {"conv": 3.6, "depthwise": 21.4, "fc": 5.5, "add": 111.0, "mul": 20.0, "pool": 6.3,
        "softmax": 255.0, "lut": 3.0, "quantize": 4.0, "dequantize": 2.0, "rescale": 2.0, "move": 7.6,
        **_HARD_FLOAT}
_HOST = {"conv": 0.5, "depthwise": 1.0, "fc": 0.5, "add": 10.0, "mul": 5.0, "pool": 1.0,
         "softmax": 40.0, "lut": 2.0, "quantize": 5.0, "dequantize": 2.0, "rescale": 5.0, "move": 1.0,
         "conv_f32": 1.0, "depthwise_f32": 2.0, "fc_f32": 1.0, "eltwise_f32": 2.0, "exp_f32": 20.0,
         "pool_f32": 1.0}


@dataclass(frozen=True)
class Board:
    """A QEMU machine that emulates a core: its linker script (runtime_c/baremetal/ld), the core
    clock that drives SysTick, and the RAM that script gives a program."""

    machine: str
    linker_script: str
    core_clock_hz: int
    ram_bytes: int

    @property
    def instructions_per_tick(self) -> float:
        # With -icount shift=0 one instruction is 1 ns of virtual time.
        return 1e9 / self.core_clock_hz


@dataclass(frozen=True)
class Target:
    """One core (or the host) that generated code is built for."""

    name: str
    description: str
    cross_prefix: str                  # toolchain prefix: "arm-none-eabi-" (gcc, ar, size, nm...) or ""
    cflags: tuple[str, ...]            # CPU / ABI flags for every compile and link
    arch: str
    dsp: bool                          # Armv7E-M / v8-M DSP extension (SMLAD, SXTB16, ...)
    mve: bool                          # Helium (M-profile vector extension)
    fpu: str | None                    # None: no FPU (software floating point)
    alignment: int                     # arena and constant alignment in bytes
    board: Board | None                # the QEMU board that runs it, None when QEMU has none
    # Estimated instructions per unit of work (KernelChoice.work) by kernel cost class.
    cost_per_work: Mapping[str, float] = field(repr=False, compare=False)
    # RAM a compiled model may assume (arena limit unless --max-arena says otherwise): the emulated
    # board's; for a core QEMU does not emulate, the larger parts built on it; None: no limit (host).
    default_ram_bytes: int | None = None

    @property
    def ram_bytes(self) -> int | None:
        return self.board.ram_bytes if self.board else self.default_ram_bytes

    @property
    def memory_description(self) -> str:
        """Where the RAM figure comes from, for messages."""
        if self.board:
            return f"the {self.board.ram_bytes // 1024:,} KiB of RAM of {self.name} ({self.board.machine})"
        if self.default_ram_bytes:
            return f"the {self.default_ram_bytes // 1024:,} KiB of RAM tinyc assumes for {self.name}"
        return "int32 sizes"

    @property
    def compiler(self) -> str:
        """The C compiler driver."""
        return f"{self.cross_prefix}gcc" if self.cross_prefix else "cc"

    @property
    def archiver(self) -> str:
        return f"{self.cross_prefix}ar" if self.cross_prefix else "ar"

    @property
    def qemu_machine(self) -> str | None:
        return self.board.machine if self.board else None

    @property
    def isa(self) -> str:
        """The instruction set kernels are built for: "mve", "dsp" or "plain" (one of ISAS)."""
        if self.mve:
            return "mve"
        return "dsp" if self.dsp else "plain"

    @property
    def is_host(self) -> bool:
        return self.arch == "host"

    def estimate_instructions(self, cost_class: str, work: int) -> int:
        """Rough instruction count of a kernel of `cost_class` doing `work` units."""
        return int(round(self.cost_per_work[cost_class] * work))


def _cost(table: dict[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(table))


# QEMU 7.2 boards (../shared/docs/emulator.md). Cortex-M33 runs on mps2-an505: QEMU 7.2's mps3-an524
# starts the core of its SSE-200 that has no FPU, so hard-float code faults there
# (see runtime_c/baremetal/README.md).
_MIB = 1024 * 1024
_AN385 = Board("mps2-an385", "mps2-an385.ld", 25_000_000, 4 * _MIB)
_AN386 = Board("mps2-an386", "mps2-an386.ld", 25_000_000, 4 * _MIB)
_AN500 = Board("mps2-an500", "mps2-an500.ld", 25_000_000, 4 * _MIB)
_AN505 = Board("mps2-an505", "mps2-an505.ld", 20_000_000, 4 * _MIB)
_AN547 = Board("mps3-an547", "mps3-an547.ld", 32_000_000, 4 * _MIB)
# Cortex-M0/M0+ parts top out around 256 KiB of SRAM (RP2040: 264 KB).
_M0_RAM = 256 * 1024


def _arm(cpu: str, *abi: str) -> tuple[str, ...]:
    return (f"-mcpu={cpu}", "-mthumb") + abi


_ARM = "arm-none-eabi-"

_TARGETS = (
    Target("cortex-m0", "Arm Cortex-M0 (Armv6-M, no DSP, no FPU)", _ARM,
           _arm("cortex-m0", "-mfloat-abi=soft"), "armv6-m", False, False, None, 4, None, _cost(_PLAIN_V6M),
           _M0_RAM),
    Target("cortex-m0plus", "Arm Cortex-M0+ (Armv6-M, no DSP, no FPU)", _ARM,
           _arm("cortex-m0plus", "-mfloat-abi=soft"), "armv6-m", False, False, None, 4, None,
           _cost(_PLAIN_V6M), _M0_RAM),
    Target("cortex-m3", "Arm Cortex-M3 (Armv7-M, no DSP, no FPU)", _ARM,
           _arm("cortex-m3", "-mfloat-abi=soft"), "armv7-m", False, False, None, 4, _AN385, _cost(_PLAIN_V7M)),
    Target("cortex-m4", "Arm Cortex-M4F (Armv7E-M, DSP, single-precision FPU)", _ARM,
           _arm("cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), "armv7e-m", True, False,
           "fpv4-sp-d16", 4, _AN386, _cost(_DSP)),
    Target("cortex-m7", "Arm Cortex-M7 (Armv7E-M, DSP, double-precision FPU)", _ARM,
           _arm("cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16"), "armv7e-m", True, False, "fpv5-d16", 4,
           _AN500, _cost(_DSP)),
    Target("cortex-m33", "Arm Cortex-M33 (Armv8-M Mainline, DSP, single-precision FPU)", _ARM,
           _arm("cortex-m33", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), "armv8-m.main", True, False,
           "fpv5-sp-d16", 4, _AN505, _cost(_DSP)),
    # -mcpu=cortex-m55 enables Helium (integer and float) and the FPU by itself.
    Target("cortex-m55", "Arm Cortex-M55 (Armv8.1-M Mainline, DSP, Helium, FPU)", _ARM,
           _arm("cortex-m55", "-mfloat-abi=hard"), "armv8.1-m.main", True, True, "mve.fp", 16, _AN547,
           _cost(_MVE)),
    Target("host", "the build machine (plain C kernels; for tests and the reference run)", "", (),
           "host", False, False, "native", 16, None, _cost(_HOST)),
)

TARGETS: Mapping[str, Target] = MappingProxyType({t.name: t for t in _TARGETS})
