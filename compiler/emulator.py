"""Build C for an emulated Cortex-M board and run it under QEMU, measuring its cost.

`build_firmware` compiles sources together with our bare-metal harness (runtime_c/baremetal:
startup, linker script per board, semihosting glue, profiling) into an ELF. `run_firmware` runs it
in qemu-system-arm, always sandboxed and under a timeout, and returns the exit code, the program's
output and the measurements the harness printed: executed instructions of main() and of each
TINYC_PROFILE region, and peak stack use. Instruction counts are exact when our QEMU plugin
(runtime_c/baremetal/qemu_plugin) can be built with the host C compiler; otherwise they come from
SysTick ticks, which count instructions at a resolution of 1e9 / core_hz (40 on mps2).
Counts are executed instructions, not cycles. runtime_c/baremetal/README.md has the protocol.
"""
from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import targets
from .build import cache_dir
from .errors import TinycError
from .runtime_c import BAREMETAL as BAREMETAL_DIR
from .targets import Board, Target

LINKER_SCRIPT_DIR = BAREMETAL_DIR / "ld"
PLUGIN_SOURCE = BAREMETAL_DIR / "qemu_plugin" / "tinyc_insn_count.c"
HARNESS_SOURCES = ("startup.S", "tinyc_markers.S", "tinyc_harness.c", "tinyc_profile.c",
                   "tinyc_semihost.c")

# Values shared with runtime_c/baremetal/tinyc_harness_config.h.
MARKER_STRIDE = 4
DEFAULT_STACK_SIZE = 0x10000

GCC = "arm-none-eabi-gcc"
SIZE = "arm-none-eabi-size"
NM = "arm-none-eabi-nm"
ADDR2LINE = "arm-none-eabi-addr2line"
QEMU = "qemu-system-arm"


class EmulatorError(TinycError):
    """Building or running firmware failed (tool missing, build error, hang, crash)."""


def _board_and_flags(target: Target | str) -> tuple[Board, tuple[str, ...]]:
    """The board that emulates `target` and the GCC flags selecting its core and FPU, both from the
    target (tinyc.targets: Target.board and Target.cflags)."""
    spec = targets.get(target)
    if spec.board is None:
        raise TinycError(f"target {spec.name} has no emulated board: run on one of "
                         f"{', '.join(emulated_targets())}")
    return spec.board, tuple(spec.cflags)


def emulated_targets() -> tuple[str, ...]:
    """Names of the targets that run_firmware can run, smallest core first."""
    return tuple(name for name in targets.names() if targets.get(name).board is not None)


# ----------------------------------------------------------------------------------- tools

_DEBIAN_PACKAGES = {GCC: "gcc-arm-none-eabi", SIZE: "binutils-arm-none-eabi",
                    NM: "binutils-arm-none-eabi", QEMU: "qemu-system-arm"}


def _install_hint(package: str) -> str:
    return f"install the Debian package {package} (apt-get install --no-install-recommends {package})"


def check_tools(target: Target | str) -> None:
    """Raise TinycError naming the Debian package to install if a tool for `target` is missing."""
    board, flags = _board_and_flags(target)
    target = targets.get(target).name
    for tool, package in _DEBIAN_PACKAGES.items():
        if shutil.which(tool) is None:
            raise TinycError(f"{tool} not found on PATH: {_install_hint(package)}")
    missing = _missing_newlib_files(flags, os.environ.get("PATH", ""))
    if missing:
        raise TinycError(f"{GCC} has no newlib ({missing} not found for {target}): "
                         f"{_install_hint('libnewlib-arm-none-eabi')}")
    if board.machine not in _qemu_machines(shutil.which(QEMU)):
        raise TinycError(f"{QEMU} does not emulate the board {board.machine} needed for {target}: "
                         f"install QEMU 7.2 or newer ({_install_hint('qemu-system-arm')})")


@functools.lru_cache(maxsize=None)
def _missing_newlib_files(flags: tuple[str, ...], path: str) -> str | None:
    """The first newlib-nano/rdimon library GCC cannot find for these flags, or None."""
    del path  # part of the cache key only: a different PATH may mean a different compiler
    for library in ("libc_nano.a", "librdimon_nano.a"):
        found = subprocess.run([GCC, *flags, f"-print-file-name={library}"], capture_output=True,
                               text=True, check=False).stdout.strip()
        if not os.path.isabs(found) or not os.path.exists(found):
            return library
    return None


@functools.lru_cache(maxsize=None)
def _qemu_machines(qemu_path: str | None) -> frozenset[str]:
    listing = subprocess.run([qemu_path or QEMU, "-machine", "help"], capture_output=True, text=True,
                             check=False, stdin=subprocess.DEVNULL, timeout=30).stdout
    return frozenset(line.split()[0] for line in listing.splitlines()[1:] if line.strip())


# ----------------------------------------------------------------------------------- build

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def build_firmware(target: Target | str, sources: list[Path], include_dirs: list[Path], out_dir: Path,
                   defines: dict[str, str] | None = None, opt: str = "-O2", extra_cflags=(),
                   *, name: str = "firmware", stack_size: int = DEFAULT_STACK_SIZE) -> Path:
    """Compile `sources` with the harness for `target` and link an ELF; return its path.

    Every source gets the target's core/FPU flags, `opt`, -ffunction-sections -fdata-sections, the
    defines (a value of "" gives -DNAME) and `extra_cflags`; the link uses newlib-nano (libc, libm) with
    semihosting (rdimon), our startup and the board's linker script, with --gc-sections. Pass
    defines={"TINYC_PROFILE": ""} to enable the TINYC_PROFILE_BEGIN/END regions. `stack_size`
    (bytes) is reserved at the top of RAM. The build log is kept as <out_dir>/<name>.build.log.
    """
    check_tools(target)
    board, flags = _board_and_flags(target)
    target = targets.get(target).name
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if stack_size < 1024 or stack_size % 8:
        raise TinycError(f"stack_size {stack_size} must be a multiple of 8 and at least 1024 bytes")
    define_flags = []
    for key, value in (defines or {}).items():
        if not _IDENTIFIER.match(key):
            raise TinycError(f"define name {key!r} is not a C identifier")
        define_flags.append(f"-D{key}" if value in ("", None) else f"-D{key}={value}")
    elf = out_dir / f"{name}.elf"
    command = [
        GCC, *flags, opt, "-g", "-ffunction-sections", "-fdata-sections",
        *define_flags, *[f"-I{Path(d)}" for d in include_dirs], f"-I{BAREMETAL_DIR}",
        *extra_cflags,
        *[str(Path(s)) for s in sources], *[str(BAREMETAL_DIR / s) for s in HARNESS_SOURCES],
        "-nostartfiles", "--specs=nano.specs", "--specs=rdimon.specs", "-lm",
        f"-L{LINKER_SCRIPT_DIR}", "-T", str(LINKER_SCRIPT_DIR / board.linker_script),
        "-Wl,--gc-sections", f"-Wl,--defsym=__tinyc_stack_size={stack_size}",
        f"-Wl,-Map={out_dir / (name + '.map')}", "-o", str(elf),
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False,
                            stdin=subprocess.DEVNULL)
    log = out_dir / f"{name}.build.log"
    log.write_text(" ".join(command) + "\n\n" + result.stdout + result.stderr)
    if result.returncode != 0:
        raise EmulatorError(_build_failure(result.stderr, target, board, log))
    return elf


def _build_failure(stderr: str, target: str, board: Board, log: Path) -> str:
    overflow = re.search(r"region `(\w+)' overflowed by (\d+) bytes", stderr)
    if overflow:
        return (f"firmware does not fit {board.machine} ({target}): memory region {overflow.group(1)} "
                f"overflowed by {overflow.group(2)} bytes; shrink the model or pick a bigger target "
                f"(log: {log})")
    assertion = re.search(r"tinyc: [^\n]*", stderr)
    if assertion:
        return f"firmware does not fit {board.machine} ({target}): {assertion.group(0)} (log: {log})"
    first = next((line for line in stderr.splitlines() if "error" in line.lower()),
                 stderr.strip().splitlines()[-1] if stderr.strip() else "no message")
    return f"firmware build for {target} failed: {first.strip()} (log: {log})"


# ------------------------------------------------------------------------------------ sizes

_SECTION_KINDS = {".vectors": "text", ".text": "text", ".rodata": "rodata", ".ARM.extab": "rodata",
                  ".ARM.exidx": "rodata", ".init_array": "rodata", ".data": "data", ".bss": "bss"}


def elf_sizes(elf: Path) -> dict:
    """Bytes per kind: text (code and vectors), rodata, data, bss; flash = text + rodata + data
    (the load image of .data lives in flash), ram = data + bss (static RAM, without stack/heap)."""
    result = subprocess.run([SIZE, "-A", str(elf)], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise EmulatorError(f"{SIZE} could not read {elf}: {result.stderr.strip()}")
    sizes = {"text": 0, "rodata": 0, "data": 0, "bss": 0}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] in _SECTION_KINDS and parts[1].isdigit():
            sizes[_SECTION_KINDS[parts[0]]] += int(parts[1])
    sizes["flash"] = sizes["text"] + sizes["rodata"] + sizes["data"]
    sizes["ram"] = sizes["data"] + sizes["bss"]
    return sizes


# ------------------------------------------------------------------------------------- run

@dataclass
class RegionCost:
    """Cost of one profiling region, summed over its calls."""
    id: int
    name: str
    calls: int
    instructions: int  # executed instructions, fixed cost of the begin/end pair removed
    ticks: int  # raw SysTick ticks (1e9 / core_hz instructions each)
    stack_bytes: int  # peak stack below the stack pointer at the region's begin (+ ~40 B of probe)


@dataclass
class RunResult:
    """What one firmware run printed and measured."""
    exit_code: int
    stdout: str
    stderr: str
    board: str
    exact: bool  # True: instruction counts from the QEMU plugin; False: from SysTick ticks
    resolution: float  # instructions per count unit: 1 when exact, else 1e9 / core_hz
    instructions: int | None  # main() from entry to return (or exit), startup excluded
    total_instructions: int | None  # whole run including startup (plugin only)
    stack_peak: int | None  # bytes of stack used at the deepest point of the run
    stack_size: int | None  # bytes reserved for the stack
    inference: RegionCost | None = None  # tinyc_profile_inference_begin/end, if used
    regions: dict[str, RegionCost] = field(default_factory=dict)  # TINYC_PROFILE regions by name
    wall_seconds: float = 0.0

    @property
    def stack_overflow(self) -> bool:
        return self.stack_peak is not None and self.stack_size is not None and \
            self.stack_peak >= self.stack_size


def run_firmware(elf: Path, target: Target | str, timeout_s: float = 60, workdir: Path | None = None,
                 *, exact: bool | None = None) -> RunResult:
    """Run `elf` on the target's board in QEMU (sandboxed, under `timeout_s`) and parse its report.

    QEMU runs in `workdir` (a fresh temporary directory when None), so semihosting file names are
    relative to it. `exact`: None uses the instruction-counting plugin when it can be built, True
    requires it, False uses SysTick only. Raises EmulatorError when the firmware hangs (timeout),
    faults, is stopped by the sandbox, or QEMU fails; a non-zero exit of main() is returned as is.
    """
    check_tools(target)
    board, _ = _board_and_flags(target)
    target = targets.get(target).name
    elf = Path(elf).resolve()
    if not elf.exists():
        raise TinycError(f"firmware {elf} does not exist: build it with build_firmware first")
    plugin = None if exact is False or _plugin_rejected else _plugin_library()
    if exact and plugin is None:
        raise EmulatorError("exact instruction counts need the QEMU plugin, which could not be built: "
                            f"{_install_hint('gcc')} (host C compiler)")
    with tempfile.TemporaryDirectory(prefix="tinyc-qemu-") as scratch:
        run_dir = Path(workdir).resolve() if workdir is not None else Path(scratch)
        run_dir.mkdir(parents=True, exist_ok=True)
        plugin_out = Path(scratch) / "insn_count.txt"
        command = _qemu_command(board, elf, plugin, plugin_out)
        started = time.monotonic()
        try:
            completed = subprocess.run(command, cwd=run_dir, capture_output=True,
                                       stdin=subprocess.DEVNULL, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise EmulatorError(f"firmware {elf.name} did not finish within {timeout_s:g} s on "
                                f"{board.machine} ({target}): it hangs, or needs a larger "
                                f"timeout_s") from None
        wall = time.monotonic() - started
        stdout = completed.stdout.decode("utf-8", errors="replace")
        stderr = completed.stderr.decode("utf-8", errors="replace")
        if plugin is not None and _PLUGIN_LOAD_FAILURE in stderr:
            if exact:
                raise EmulatorError(f"QEMU could not load the instruction-counting plugin: "
                                    f"{_qemu_message(stderr)}")
            _reject_plugin()  # e.g. a QEMU with another plugin API: use SysTick from now on
            return run_firmware(elf, target, timeout_s, workdir, exact=False)
        plugin_counts = _read_plugin_counts(plugin_out) if plugin is not None else None
    _raise_on_abnormal_end(completed.returncode, stdout, stderr, elf, board, target)
    return _parse_report(completed.returncode, stdout, stderr, board, plugin_counts, wall)


def _qemu_command(board: Board, elf: Path, plugin: Path | None, plugin_out: Path) -> list[str]:
    command = [QEMU, "-M", board.machine, "-display", "none", "-serial", "null", "-monitor", "none",
               "-semihosting-config", "enable=on,target=native", "-icount", "shift=0,sleep=off",
               "-sandbox", "on,spawn=deny"]
    if plugin is not None:
        symbols = _symbols(elf)
        markers, marker_bytes = symbols["tinyc_profile_markers"]
        handler, handler_bytes = symbols["tinyc_systick_handler"]
        handler &= ~1  # Thumb bit
        for path in (plugin, plugin_out):
            if "," in str(path):
                raise EmulatorError(f"path {path} contains a comma, which QEMU's -plugin cannot take")
        command += ["-plugin", f"{plugin},markers={markers:#x},count={marker_bytes // MARKER_STRIDE},"
                               f"out={plugin_out},skip={handler:#x}-{handler + handler_bytes:#x}"]
    return command + ["-kernel", str(elf)]


_HARNESS_SYMBOLS = ("tinyc_profile_markers", "tinyc_systick_handler")


def _symbols(elf: Path) -> dict[str, tuple[int, int]]:
    """Address and size of the harness symbols the plugin needs."""
    result = subprocess.run([NM, "-S", str(elf)], capture_output=True, text=True, check=False)
    found = {}
    for line in result.stdout.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3] in _HARNESS_SYMBOLS:
            found[parts[3]] = (int(parts[0], 16), int(parts[1], 16))
    missing = [name for name in _HARNESS_SYMBOLS if name not in found]
    if missing:
        raise EmulatorError(f"{elf.name} has no symbol {missing[0]}: it was not built by build_firmware")
    return found


def _qemu_message(stderr: str) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    ours = [line for line in lines if "qemu" in line.lower() or "plugin" in line.lower()]
    return (ours or lines or ["no message"])[-1]


def _raise_on_abnormal_end(code: int, stdout: str, stderr: str, elf: Path, board: Board,
                           target: str) -> None:
    where = f"firmware {elf.name} on {board.machine} ({target})"
    fault = re.search(r"TINYC_FAULT([^\n]*)", stderr)
    if fault:
        harness_error = re.search(r"error=(.*)", fault.group(1))
        if harness_error:
            raise EmulatorError(f"{where} stopped: {harness_error.group(1).strip()}")
        fields = _fields(fault.group(1))
        location = _code_location(elf, fields.get("pc"))
        causes = _fault_causes(fields.get("cfsr", "0"))
        raise EmulatorError(f"{where} crashed: {fields.get('exception', 'fault')} at pc "
                            f"{fields.get('pc', '?')}{location}{': ' + causes if causes else ''} "
                            f"(cfsr={fields.get('cfsr', '?')}, hfsr={fields.get('hfsr', '?')}, "
                            f"bfar={fields.get('bfar', '?')})")
    if code in (159, -31):  # 128 + SIGSYS, or killed by SIGSYS: the seccomp sandbox
        raise EmulatorError(f"{where} was stopped by QEMU's sandbox: it tried to make QEMU run a "
                            f"host command (semihosting SYS_SYSTEM), most likely memory corruption")
    if code < 0:
        raise EmulatorError(f"{where}: QEMU died from signal {-code}: {_qemu_message(stderr)}")
    if "TINYC_MAIN" not in stderr and re.search(r"^qemu[^\n]*:", stderr, re.MULTILINE):
        raise EmulatorError(f"{where}: QEMU failed: {_qemu_message(stderr)}")


# Configurable Fault Status Register bits (Armv7-M / Armv8-M) and what they mean.
_CFSR_BITS = {
    0: "instruction fetch from a protected region", 1: "data access to a protected region",
    3: "MemManage fault on exception return", 4: "MemManage fault on exception entry",
    8: "instruction fetch bus error", 9: "precise data bus error", 10: "imprecise data bus error",
    11: "bus fault on exception return", 12: "bus fault on exception entry (stack overflow?)",
    16: "undefined instruction (wrong -mcpu for this core?)", 17: "invalid state (ARM mode, bad "
    "function pointer?)", 18: "invalid exception return", 19: "coprocessor instruction with the "
    "FPU disabled or absent", 20: "stack limit overflow", 24: "unaligned access",
    25: "integer division by zero",
}


def _fault_causes(cfsr: str) -> str:
    try:
        value = int(cfsr, 16)
    except ValueError:
        return ""
    return "; ".join(text for bit, text in _CFSR_BITS.items() if value >> bit & 1)


def _code_location(elf: Path, pc: str | None) -> str:
    if not pc or shutil.which(ADDR2LINE) is None:
        return ""
    result = subprocess.run([ADDR2LINE, "-f", "-s", "-e", str(elf), pc], capture_output=True,
                            text=True, check=False)
    lines = result.stdout.split()
    if result.returncode != 0 or len(lines) < 2 or lines[0] == "??":
        return ""
    return f" in {lines[0]} ({lines[1]})"


# "TINYC_<KIND> key=value ... [name=<rest of the line>]"
_REPORT_LINE = re.compile(r"TINYC_(MAIN|CALIBRATION|INFERENCE|REGION)"
                          r"((?: (?!name=)\w+=\S*)*)(?: name=([^\n]*))?")


def _fields(text: str) -> dict[str, str]:
    return dict(item.split("=", 1) for item in text.split() if "=" in item)


def _parse_report(code: int, stdout: str, stderr: str, board: Board,
                  plugin_counts: dict | None, wall: float) -> RunResult:
    exact = plugin_counts is not None
    per_tick = board.instructions_per_tick
    lines = [(kind, _fields(values), name) for kind, values, name in _REPORT_LINE.findall(stderr)]
    main = next((fields for kind, fields, _ in lines if kind == "MAIN"), None)
    calibration = next((fields for kind, fields, _ in lines if kind == "CALIBRATION"), None)
    slots = plugin_counts["slots"] if exact else {}
    overhead = 0
    if exact and calibration is not None and int(calibration["id"]) in slots:
        calls, insns = slots[int(calibration["id"])]
        overhead = insns // max(calls, 1)

    def cost(fields: dict[str, str], name: str) -> RegionCost:
        slot, calls, ticks = int(fields["id"]), int(fields["calls"]), int(fields["ticks"])
        if exact:
            instructions = slots.get(slot, (0, 0))[1] - calls * overhead
        else:
            instructions = round(ticks * per_tick)
        return RegionCost(slot, name, calls, max(instructions, 0), ticks, int(fields["stack"]))

    regions: dict[str, RegionCost] = {}
    for kind, fields, name in lines:
        if kind != "REGION":
            continue
        region = cost(fields, name)
        if region.name in regions:
            raise EmulatorError(f"profile regions {regions[region.name].id} and {region.id} share the "
                                f"name {region.name!r}: give every region its own name")
        regions[region.name] = region
    inference = next((cost(fields, name) for kind, fields, name in lines if kind == "INFERENCE"), None)

    instructions = None
    if main is not None:
        main_slot = int(main["id"])
        instructions = slots[main_slot][1] if exact and main_slot in slots \
            else round(int(main["ticks"]) * per_tick)
    return RunResult(
        exit_code=code, stdout=stdout, stderr=stderr, board=board.machine, exact=exact,
        resolution=1.0 if exact else per_tick, instructions=instructions,
        total_instructions=plugin_counts["total"] if exact else None,
        stack_peak=int(main["stack_peak"]) if main else None,
        stack_size=int(main["stack_size"]) if main else None,
        inference=inference, regions=regions, wall_seconds=wall)


# ---------------------------------------------------------------------------------- plugin

_PLUGIN_LOAD_FAILURE = "Could not load plugin"  # QEMU's message when it refuses a plugin
_plugin_rejected = False  # set once QEMU refused to load the plugin


def _reject_plugin() -> None:
    global _plugin_rejected
    _plugin_rejected = True


@functools.lru_cache(maxsize=None)
def _plugin_library() -> Path | None:
    """Build (once, cached on disk by source hash) the instruction-counting plugin for the host."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    sources = [PLUGIN_SOURCE, PLUGIN_SOURCE.with_name("tinyc_qemu_plugin_api.h")]
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()[:16]
    library = cache_dir() / f"tinyc_insn_count-{digest}.so"
    if library.exists():
        return library
    library.parent.mkdir(parents=True, exist_ok=True)
    partial = library.with_name(f"{library.name}.{os.getpid()}.tmp")
    result = subprocess.run([compiler, "-shared", "-fPIC", "-O2", "-o", str(partial), str(PLUGIN_SOURCE)],
                            capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        return None
    os.replace(partial, library)  # atomic: concurrent builders never see a half-written file
    return library


def _read_plugin_counts(path: Path) -> dict | None:
    """{"total": n, "slots": {slot: (calls, instructions)}} from the plugin's file, or None."""
    if not path.exists():
        return None
    total, slots = None, {}
    for line in path.read_text().splitlines():
        parts = line.split()
        if parts[:1] == ["total"]:
            total = int(parts[1])
        elif parts[:1] == ["slot"] and len(parts) == 6:
            slots[int(parts[1])] = (int(parts[3]), int(parts[5]))
    return None if total is None else {"total": total, "slots": slots}
