"""The bare-metal harness and QEMU runner (tinyc.emulator) on every emulated board.

A small C program reads input.bin through semihosting, computes an int8 dot product and a float
division (hard-float targets must run it on the FPU), writes output.bin, and marks profiling
regions whose instruction counts and stack use the tests check.
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tinyc import emulator
from tinyc.errors import TinycError

TARGETS = emulator.emulated_targets()


def _toolchain_problem() -> str | None:
    try:
        for target in TARGETS:
            emulator.check_tools(target)
    except TinycError as error:
        return str(error)
    return None


_PROBLEM = _toolchain_problem()
pytestmark = pytest.mark.skipif(_PROBLEM is not None, reason=f"Arm toolchain or QEMU missing: {_PROBLEM}")

HOST_CC = shutil.which("cc") or shutil.which("gcc")
SPIN = 20_000  # loop iterations of the "spin_n" region; "spin_2n" runs twice as many

PROGRAM = r"""
#include <stdint.h>
#include <stdio.h>
#include "tinyc_profile.h"

/* input.bin: uint32 n, int8 a[n], int8 b[n], float x.  output.bin: int32 dot, float x / 3. */

__attribute__((noipa)) int32_t dot_int8(const int8_t *a, const int8_t *b, uint32_t n)
{
    int32_t sum = 0;
    for (uint32_t i = 0; i < n; ++i) {
        sum += (int32_t)a[i] * (int32_t)b[i];
    }
    return sum;
}

__attribute__((noipa)) float divide_by_three(float x)
{
    return x / 3.0f;
}

__attribute__((noipa)) uint32_t spin(uint32_t iterations)
{
    uint32_t total = 0;
    for (uint32_t i = 0; i < iterations; ++i) {
        __asm__ volatile("" : "+r"(total));
        total += i;
    }
    return total;
}

__attribute__((noipa)) int32_t use_1k_of_stack(int32_t seed)
{
    volatile int8_t buffer[1024];
    for (int i = 0; i < 1024; ++i) {
        buffer[i] = (int8_t)(seed + i);
    }
    int32_t sum = 0;
    for (int i = 0; i < 1024; i += 97) {
        sum += buffer[i];
    }
    return sum;
}

static int8_t a[4096];
static int8_t b[4096];

int main(void)
{
    FILE *in = fopen("input.bin", "rb");
    if (in == NULL) {
        printf("cannot open input.bin\n");
        return 3;
    }
    uint32_t n = 0;
    float x = 0.0f;
    if (fread(&n, 4, 1, in) != 1 || n > sizeof a || fread(a, 1, n, in) != n ||
        fread(b, 1, n, in) != n || fread(&x, 4, 1, in) != 1) {
        printf("bad input.bin\n");
        return 4;
    }
    fclose(in);

    TINYC_PROFILE_BEGIN(0, "dot");
    int32_t dot = dot_int8(a, b, n);
    TINYC_PROFILE_END(0);
    float third = divide_by_three(x);

    TINYC_PROFILE_BEGIN(1, "spin_n");
    uint32_t s1 = spin(SPIN);
    TINYC_PROFILE_END(1);
    TINYC_PROFILE_BEGIN(2, "spin_2n");
    uint32_t s2 = spin(2 * SPIN);
    TINYC_PROFILE_END(2);
    TINYC_PROFILE_BEGIN(3, "stack_1k");
    int32_t s3 = use_1k_of_stack((int32_t)n);
    TINYC_PROFILE_END(3);
    TINYC_PROFILE_BEGIN(4, "empty");
    TINYC_PROFILE_END(4);
    for (int repeat = 0; repeat < 3; ++repeat) {
        TINYC_PROFILE_BEGIN(5, "repeated");
        s1 += spin(100);
        TINYC_PROFILE_END(5);
    }

    FILE *out = fopen("output.bin", "wb");
    if (out == NULL || fwrite(&dot, 4, 1, out) != 1 || fwrite(&third, 4, 1, out) != 1) {
        return 5;
    }
    fclose(out);
    printf("done %lu\n", (unsigned long)((s1 + s2 + (uint32_t)s3) & 1u));
    return 0;
}
"""


def _write_program(directory: Path, text: str, name: str = "program.c") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    source = directory / name
    source.write_text(text)
    return source


def _inputs(workdir: Path, n: int = 1000, seed: int = 7):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, n, dtype=np.int8)
    b = rng.integers(-128, 128, n, dtype=np.int8)
    x = np.float32(1.7)
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "input.bin").write_bytes(struct.pack("<I", n) + a.tobytes() + b.tobytes() + x.tobytes())
    return int(np.dot(a.astype(np.int64), b.astype(np.int64))), np.float32(x) / np.float32(3.0)


@pytest.fixture(scope="module")
def firmware(tmp_path_factory):
    """The test program built with profiling for every target: {target: elf}."""
    root = tmp_path_factory.mktemp("firmware")
    source = _write_program(root, PROGRAM)
    return {target: emulator.build_firmware(target, [source], [], root / target,
                                            defines={"TINYC_PROFILE": "", "SPIN": str(SPIN)})
            for target in TARGETS}


@pytest.mark.parametrize("target", TARGETS)
def test_program_runs_and_measures_on_every_board(target, firmware, tmp_path):
    expected_dot, expected_third = _inputs(tmp_path)
    result = emulator.run_firmware(firmware[target], target, timeout_s=30, workdir=tmp_path)

    assert result.exit_code == 0, result.stdout + result.stderr
    assert re.fullmatch(r"done [01]", result.stdout.strip())
    dot, third = struct.unpack("<if", (tmp_path / "output.bin").read_bytes())
    assert dot == expected_dot
    assert np.float32(third).tobytes() == expected_third.tobytes()

    # Exact counts come from our QEMU plugin, which needs a host C compiler to build.
    assert result.exact == (HOST_CC is not None)
    slack = 40 if result.exact else 3 * result.resolution
    assert result.board == {"cortex-m3": "mps2-an385", "cortex-m4": "mps2-an386", "cortex-m7": "mps2-an500",
                            "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547"}[target]
    regions = result.regions
    assert set(regions) == {"dot", "spin_n", "spin_2n", "stack_1k", "empty", "repeated"}
    # A loop of 2n iterations costs twice a loop of n, up to the call's fixed cost.
    n_cost, two_n_cost = regions["spin_n"].instructions, regions["spin_2n"].instructions
    assert n_cost >= 2 * SPIN
    assert abs(two_n_cost - 2 * n_cost) < slack
    # The fixed cost of a begin/end pair is calibrated away.
    assert regions["empty"].instructions <= (4 if result.exact else result.resolution)
    assert regions["repeated"].calls == 3
    assert regions["dot"].instructions >= 1000  # at least one instruction per element
    # Stack: the 1 KiB local array shows, and an empty region uses almost nothing.
    assert 1024 <= regions["stack_1k"].stack_bytes < 1024 + 160
    assert regions["empty"].stack_bytes < 64
    assert result.stack_peak >= 1024 and result.stack_peak < result.stack_size
    assert not result.stack_overflow
    assert result.instructions > sum(r.instructions for r in regions.values())
    assert result.total_instructions > result.instructions


def test_hard_float_targets_use_the_fpu(firmware):
    """The float division compiles to an FPU instruction, which faults unless startup enabled it."""
    for target, elf in firmware.items():
        listing = subprocess.run(["arm-none-eabi-objdump", "-d", "--no-show-raw-insn", str(elf)],
                                 capture_output=True, text=True, check=True).stdout
        body = listing.split("<divide_by_three>:", 1)[1].split("\n\n", 1)[0]
        if target == "cortex-m3":
            assert "vdiv" not in body
        else:
            assert "vdiv.f32" in body, target


def test_counts_are_deterministic(firmware, tmp_path):
    _inputs(tmp_path)
    runs = [emulator.run_firmware(firmware["cortex-m4"], "cortex-m4", workdir=tmp_path) for _ in range(2)]
    first, second = ({name: (r.instructions, r.ticks, r.stack_bytes) for name, r in run.regions.items()}
                     for run in runs)
    assert first == second
    assert runs[0].instructions == runs[1].instructions
    assert runs[0].total_instructions == runs[1].total_instructions


@pytest.mark.skipif(HOST_CC is None, reason="no host C compiler to build the QEMU counting plugin")
def test_systick_counts_agree_with_exact_counts(firmware, tmp_path):
    _inputs(tmp_path)
    exact = emulator.run_firmware(firmware["cortex-m55"], "cortex-m55", workdir=tmp_path, exact=True)
    ticks = emulator.run_firmware(firmware["cortex-m55"], "cortex-m55", workdir=tmp_path, exact=False)
    assert not ticks.exact and ticks.total_instructions is None
    assert ticks.resolution == pytest.approx(31.25)  # mps3-an547 SysTick runs at 32 MHz
    for name in ("spin_n", "spin_2n", "dot"):
        assert abs(ticks.regions[name].instructions - exact.regions[name].instructions) <= 2 * 31.25 + 16
    assert abs(ticks.regions["spin_2n"].instructions - 2 * ticks.regions["spin_n"].instructions) < 100
    assert ticks.regions["stack_1k"].stack_bytes == exact.regions["stack_1k"].stack_bytes


def test_a_plugin_qemu_refuses_falls_back_to_systick(firmware, tmp_path, monkeypatch):
    not_a_plugin = tmp_path / "not_a_plugin.so"
    not_a_plugin.write_text("not a shared library")
    monkeypatch.setattr(emulator, "_plugin_library", lambda: not_a_plugin)
    monkeypatch.setattr(emulator, "_plugin_rejected", False)  # restored after the test
    _inputs(tmp_path)
    with pytest.raises(emulator.EmulatorError, match="could not load the instruction-counting plugin"):
        emulator.run_firmware(firmware["cortex-m7"], "cortex-m7", workdir=tmp_path, exact=True)
    result = emulator.run_firmware(firmware["cortex-m7"], "cortex-m7", workdir=tmp_path)
    assert result.exit_code == 0 and not result.exact and result.resolution == 40
    assert result.regions["spin_n"].instructions == 40 * result.regions["spin_n"].ticks


def test_elf_sizes_split_flash_and_ram(tmp_path):
    source = _write_program(tmp_path, r"""
        #include <stdint.h>
        const int8_t weights[65536] = {1, 2, 3};
        int32_t counter = 5;
        static uint8_t arena[32768];
        int main(void) { arena[counter] = (uint8_t)weights[counter]; return arena[5]; }
        """)
    elf = emulator.build_firmware("cortex-m4", [source], [], tmp_path / "out")
    sizes = emulator.elf_sizes(elf)
    assert 65536 <= sizes["rodata"] < 65536 + 4096
    assert sizes["bss"] >= 32768
    assert sizes["data"] >= 4
    assert sizes["flash"] == sizes["text"] + sizes["rodata"] + sizes["data"]
    assert sizes["ram"] == sizes["data"] + sizes["bss"]
    profile_free = emulator.run_firmware(elf, "cortex-m4", timeout_s=30)
    assert profile_free.exit_code == 0 and profile_free.regions == {}


def test_a_hanging_firmware_is_stopped_by_the_timeout(tmp_path):
    source = _write_program(tmp_path, "int main(void) { for (;;) { __asm__ volatile(\"\"); } }\n")
    elf = emulator.build_firmware("cortex-m4", [source], [], tmp_path / "out")
    with pytest.raises(emulator.EmulatorError, match=r"did not finish within 1 s on mps2-an386"):
        emulator.run_firmware(elf, "cortex-m4", timeout_s=1)


def test_a_crashing_firmware_reports_the_fault(tmp_path):
    source = _write_program(tmp_path, r"""
        #include <stdint.h>
        __attribute__((noipa)) void poke(uint32_t address) { *(volatile uint32_t *)address = 1u; }
        int main(void) { poke(0xF0000000u); return 0; }
        """)
    elf = emulator.build_firmware("cortex-m7", [source], [], tmp_path / "out")
    with pytest.raises(emulator.EmulatorError,
                       match=r"crashed: HardFault at pc 0x[0-9a-f]+ in poke .*: precise data bus error"):
        emulator.run_firmware(elf, "cortex-m7", timeout_s=10)


def test_the_sandbox_stops_host_commands(tmp_path):
    """Semihosting SYS_SYSTEM (what a corrupted program may call by accident) kills QEMU instead."""
    marker = tmp_path / "must_not_exist"
    source = _write_program(tmp_path, r"""
        #include <stdint.h>
        static const char command[] = "touch MARKER";
        int main(void)
        {
            uint32_t block[2] = {(uint32_t)command, sizeof command - 1u};
            register uint32_t r0 __asm__("r0") = 0x12u; /* SYS_SYSTEM */
            register void *r1 __asm__("r1") = block;
            __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
            return (int)r0;
        }
        """.replace("MARKER", str(marker)))
    elf = emulator.build_firmware("cortex-m4", [source], [], tmp_path / "out")
    with pytest.raises(emulator.EmulatorError, match="stopped by QEMU's sandbox"):
        emulator.run_firmware(elf, "cortex-m4", timeout_s=10)
    assert not marker.exists()


def test_profile_misuse_is_a_clear_error(tmp_path):
    source = _write_program(tmp_path, '#include "tinyc_profile.h"\n'
                                      'int main(void) { TINYC_PROFILE_END(3); return 0; }\n')
    elf = emulator.build_firmware("cortex-m3", [source], [], tmp_path / "out",
                                  defines={"TINYC_PROFILE": ""})
    with pytest.raises(emulator.EmulatorError, match="profile region ended without a begin"):
        emulator.run_firmware(elf, "cortex-m3", timeout_s=10)


def test_firmware_too_big_for_the_board(tmp_path):
    source = _write_program(tmp_path, "#include <stdint.h>\nuint8_t big[5u << 20];\n"
                                      "int main(void) { big[12345] = 1; return big[12345]; }\n")
    with pytest.raises(emulator.EmulatorError,
                       match=r"does not fit mps3-an547 \(cortex-m55\): memory region RAM overflowed"):
        emulator.build_firmware("cortex-m55", [source], [], tmp_path / "out")


def _fake_bin(tmp_path: Path, names: list[str], scripts: dict[str, str] | None = None) -> str:
    """A PATH directory holding links to some real tools and some fake scripts."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for name in names:
        (directory / name).symlink_to(shutil.which(name))
    for name, text in (scripts or {}).items():
        (directory / name).write_text("#!/bin/sh\n" + text)
        (directory / name).chmod(0o755)
    return str(directory)


def test_missing_compiler_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(TinycError, match=r"arm-none-eabi-gcc not found.*gcc-arm-none-eabi") as error:
        emulator.check_tools("cortex-m4")
    assert "\n" not in str(error.value)


def test_missing_qemu_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", _fake_bin(tmp_path, ["arm-none-eabi-gcc", "arm-none-eabi-size",
                                                    "arm-none-eabi-nm"]))
    with pytest.raises(TinycError, match=r"qemu-system-arm not found.*package qemu-system-arm"):
        emulator.check_tools("cortex-m33")


def test_missing_newlib_names_the_debian_package(tmp_path, monkeypatch):
    # A compiler without newlib answers -print-file-name with the bare file name.
    gcc = 'for a in "$@"; do case "$a" in -print-file-name=*) echo "${a#-print-file-name=}";; esac; done\n'
    monkeypatch.setenv("PATH", _fake_bin(tmp_path, ["arm-none-eabi-size", "arm-none-eabi-nm",
                                                    "qemu-system-arm"], {"arm-none-eabi-gcc": gcc}))
    with pytest.raises(TinycError, match=r"libnewlib-arm-none-eabi"):
        emulator.check_tools("cortex-m55")


def test_unknown_or_unemulated_target_is_rejected():
    assert TARGETS == ("cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55")
    with pytest.raises(TinycError, match="unknown target 'cortex-m99'"):
        emulator.check_tools("cortex-m99")
    with pytest.raises(TinycError, match="target cortex-m0 has no emulated board: run on one of cortex-m3"):
        emulator.check_tools("cortex-m0")
