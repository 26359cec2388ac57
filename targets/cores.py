"""The cores tinyc compiles for: compiler flags, ISA features, arena alignment, emulator board and a
rough cost model.

A `Target` is plain data. Its `isa` ("plain", "dsp" or "mve") decides which CMSIS-NN kernels pay off
and how much scratch they need (tinyc.targets.kernels, tinyc.targets.buffer_sizes).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping

# ---- cost model -----------------------------------------------------------------------------------
# Estimated instructions per unit of work (one multiply-accumulate for convolutions and fully
# connected layers, one output element for everything else), by kernel and instruction set. First
# estimates from the kernels' inner loops (loads, sign extension, multiply-accumulate, loop overhead;
# SMLAD does two 16x16 MACs, Helium's VMLADAVA sixteen 8x8); meant to rank choices and to be
# calibrated against measured cycle counts later.
_PLAIN_V6M = {"conv": 9.0, "depthwise": 10.0, "fc": 8.0, "add": 40.0, "mul": 20.0, "pool": 6.0,
              "softmax": 120.0, "lut": 4.0, "quantize": 40.0, "dequantize": 30.0, "rescale": 20.0,
              "move": 3.0}
_PLAIN_V7M = {"conv": 6.0, "depthwise": 7.0, "fc": 5.0, "add": 25.0, "mul": 12.0, "pool": 4.0,
              "softmax": 80.0, "lut": 3.0, "quantize": 25.0, "dequantize": 15.0, "rescale": 12.0,
              "move": 2.0}
_DSP = {"conv": 1.5, "depthwise": 3.0, "fc": 1.5, "add": 12.0, "mul": 6.0, "pool": 2.0,
        "softmax": 60.0, "lut": 3.0, "quantize": 10.0, "dequantize": 4.0, "rescale": 8.0, "move": 1.5}
_MVE = {"conv": 0.3, "depthwise": 0.6, "fc": 0.3, "add": 1.5, "mul": 1.0, "pool": 0.5,
        "softmax": 20.0, "lut": 3.0, "quantize": 4.0, "dequantize": 2.0, "rescale": 2.0, "move": 0.5}
_HOST = {"conv": 0.5, "depthwise": 1.0, "fc": 0.5, "add": 10.0, "mul": 5.0, "pool": 1.0,
         "softmax": 40.0, "lut": 2.0, "quantize": 5.0, "dequantize": 2.0, "rescale": 5.0, "move": 1.0}

# Which cost class each kernel function belongs to.
_KERNEL_CLASS = {
    "arm_convolve_wrapper_s8": "conv", "arm_convolve_s8": "conv", "arm_convolve_1x1_s8_fast": "conv",
    "arm_convolve_1x1_s8": "conv", "arm_convolve_1_x_n_s8": "conv", "tinyc_conv_s8": "conv",
    "tinyc_fully_connected_s8": "fc", "tinyc_add_s8": "add",
    "arm_depthwise_conv_wrapper_s8": "depthwise", "arm_depthwise_conv_s8": "depthwise",
    "arm_depthwise_conv_3x3_s8": "depthwise", "arm_depthwise_conv_s8_opt": "depthwise",
    "arm_fully_connected_s8": "fc", "arm_fully_connected_per_channel_s8": "fc",
    "arm_elementwise_add_s8": "add", "tinyc_add_broadcast_s8": "add",
    "arm_elementwise_mul_s8": "mul", "tinyc_mul_broadcast_s8": "mul",
    "arm_avgpool_s8": "pool", "arm_max_pool_s8": "pool", "arm_softmax_s8": "softmax",
    "tinyc_lut_s8": "lut", "tinyc_quantize_f32_s8": "quantize", "tinyc_quantize_f32_u8": "quantize",
    "tinyc_dequantize_s8_f32": "dequantize", "tinyc_dequantize_u8_f32": "dequantize",
    "tinyc_rescale_s8": "rescale", "tinyc_rescale_u8_s8": "rescale", "tinyc_rescale_s8_u8": "rescale",
    "tinyc_transpose_s8": "move", "tinyc_transpose_u8": "move", "tinyc_transpose_f32": "move",
    "tinyc_pad_s8": "move", "tinyc_concat_s8": "move",
}


@dataclass(frozen=True)
class CostModel:
    """Instructions per unit of work by kernel class (see module comment)."""

    per_work: Mapping[str, float]

    def instructions_per_work(self, function: str) -> float:
        """Estimated instructions per MAC (convolutions, fully connected) or per output element."""
        if not function:
            return 0.0  # a view: no code
        return self.per_work[_KERNEL_CLASS.get(function, "move")]


@dataclass(frozen=True)
class Target:
    """One core (or the host) that generated code is built for."""

    name: str
    description: str
    compiler: str                      # C compiler driver
    cflags: tuple[str, ...]            # CPU / ABI flags for every compile and link
    arch: str
    dsp: bool                          # Armv7E-M / v8-M DSP extension (SMLAD, SXTB16, ...)
    mve: bool                          # Helium (M-profile vector extension)
    fpu: str | None                    # None: no FPU (software floating point)
    alignment: int                     # arena and constant alignment in bytes
    qemu_machine: str | None           # qemu-system-arm -M value, None when QEMU has no board
    cost: CostModel = field(repr=False, compare=False)

    @property
    def isa(self) -> str:
        """The instruction set CMSIS-NN's kernels are built for: "mve", "dsp" or "plain"."""
        if self.mve:
            return "mve"
        return "dsp" if self.dsp else "plain"

    @property
    def arena_alignment(self) -> int:
        return self.alignment

    @property
    def is_host(self) -> bool:
        return self.arch == "host"

    def estimate_instructions(self, function: str, work: int) -> int:
        """Rough instruction count of one kernel call doing `work` units (KernelChoice.work)."""
        return int(round(self.cost.instructions_per_work(function) * work))


def _cost(table: dict[str, float]) -> CostModel:
    return CostModel(MappingProxyType(dict(table)))


def _arm(cpu: str, *abi: str) -> tuple[str, ...]:
    return (f"-mcpu={cpu}", "-mthumb") + abi


_TARGETS = (
    Target("cortex-m0", "Arm Cortex-M0 (Armv6-M, no DSP, no FPU)", "arm-none-eabi-gcc",
           _arm("cortex-m0", "-mfloat-abi=soft"), "armv6-m", False, False, None, 4, None, _cost(_PLAIN_V6M)),
    Target("cortex-m0plus", "Arm Cortex-M0+ (Armv6-M, no DSP, no FPU)", "arm-none-eabi-gcc",
           _arm("cortex-m0plus", "-mfloat-abi=soft"), "armv6-m", False, False, None, 4, None,
           _cost(_PLAIN_V6M)),
    Target("cortex-m3", "Arm Cortex-M3 (Armv7-M, no DSP, no FPU)", "arm-none-eabi-gcc",
           _arm("cortex-m3", "-mfloat-abi=soft"), "armv7-m", False, False, None, 4, "mps2-an385",
           _cost(_PLAIN_V7M)),
    Target("cortex-m4", "Arm Cortex-M4F (Armv7E-M, DSP, single-precision FPU)", "arm-none-eabi-gcc",
           _arm("cortex-m4", "-mfloat-abi=hard", "-mfpu=fpv4-sp-d16"), "armv7e-m", True, False,
           "fpv4-sp-d16", 4, "mps2-an386", _cost(_DSP)),
    Target("cortex-m7", "Arm Cortex-M7 (Armv7E-M, DSP, double-precision FPU)", "arm-none-eabi-gcc",
           _arm("cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16"), "armv7e-m", True, False, "fpv5-d16", 4,
           "mps2-an500", _cost(_DSP)),
    # Cortex-M33 runs on mps2-an505: QEMU 7.2's mps3-an524 starts the core of its SSE-200 that has no
    # FPU, so hard-float code faults there (see runtime_c/baremetal/README.md).
    Target("cortex-m33", "Arm Cortex-M33 (Armv8-M Mainline, DSP, single-precision FPU)", "arm-none-eabi-gcc",
           _arm("cortex-m33", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"), "armv8-m.main", True, False,
           "fpv5-sp-d16", 4, "mps2-an505", _cost(_DSP)),
    # -mcpu=cortex-m55 enables Helium (integer and float) and the FPU by itself.
    Target("cortex-m55", "Arm Cortex-M55 (Armv8.1-M Mainline, DSP, Helium, FPU)", "arm-none-eabi-gcc",
           _arm("cortex-m55", "-mfloat-abi=hard"), "armv8.1-m.main", True, True, "mve.fp", 16, "mps3-an547",
           _cost(_MVE)),
    Target("host", "the build machine (plain C kernels; for tests and the reference run)", "gcc", (),
           "host", False, False, "native", 16, None, _cost(_HOST)),
)

TARGETS: Mapping[str, Target] = MappingProxyType({t.name: t for t in _TARGETS})
