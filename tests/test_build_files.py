"""The Makefile and CMakeLists.txt written next to the generated C build for the target the model was
compiled for: every object carries the same core and FPU attributes as an object the target's own
compiler and flags (tinyc.targets) produce, and a host build is one variable away."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tinyc import targets
from tinyc.codegen import CodegenOptions
from tinyc.driver import compile_graph, load_graph
from tinyc.output_dir import write_output_dir

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "examples" / "kws" / "kws_ref_model_qdq.onnx"
HAVE_ARM = all(shutil.which(t) for t in ("arm-none-eabi-gcc", "arm-none-eabi-readelf", "make"))
needs_arm = pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc or make missing (tools/setup.sh)")
# The build attributes that say which core and FPU an object is for (arm-none-eabi-readelf -A).
CORE_TAGS = ("Tag_CPU_name", "Tag_CPU_arch", "Tag_CPU_arch_profile", "Tag_THUMB_ISA_use", "Tag_FP_arch",
             "Tag_MVE_arch", "Tag_DSP_extension", "Tag_ABI_VFP_args")


def _run(command: list, cwd: Path) -> str:
    result = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"$ {' '.join(map(str, command))}\n{result.stdout[-2000:]}{result.stderr[-2000:]}"
    return result.stdout


def core_attributes(obj: Path) -> dict[str, str]:
    listing = _run(["arm-none-eabi-readelf", "-A", obj], obj.parent)
    found = dict(re.findall(r"^\s*(Tag_\w+): (.*)$", listing, re.M))
    return {tag: found[tag] for tag in CORE_TAGS if tag in found}


def reference_attributes(target: targets.Target, tmp: Path) -> dict[str, str]:
    """What the target's compiler and flags put in an object."""
    source = tmp / "reference.c"
    source.write_text("int reference(int x) { return x + 1; }\n")
    _run([target.compiler, *target.cflags, "-O2", "-c", source, "-o", tmp / "reference.o"], tmp)
    return core_attributes(tmp / "reference.o")


def elf_machine(obj: Path) -> bytes:
    """e_ident's class byte and e_machine: which machine an ELF object is for."""
    header = obj.read_bytes()[:20]
    assert header[:4] == b"\x7fELF", obj
    return header[4:5] + header[18:20]


@pytest.fixture(scope="module")
def kws():
    return load_graph(MODEL)


def compiled(kws, target: str, out: Path) -> Path:
    write_output_dir(compile_graph(kws, CodegenOptions(name="kws", target=target)).files, out)
    return out


@needs_arm
@pytest.mark.parametrize("name", ["cortex-m0", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"])
def test_make_builds_objects_for_the_compiled_target_and_for_the_host_with_one_variable(kws, name, tmp_path):
    target = targets.get(name)
    out = compiled(kws, name, tmp_path / "out")
    _run(["make", "-j2"], out)
    objects = sorted((out / "build").rglob("*.o"))
    assert len(objects) >= 4 and (out / "libkws.a").exists()
    expected = reference_attributes(target, tmp_path)
    assert "Tag_CPU_arch" in expected
    for obj in objects:
        assert core_attributes(obj) == expected, obj
    if target.fpu:
        assert "Tag_FP_arch" in expected and expected["Tag_ABI_VFP_args"] == "VFP registers"
    assert ("Tag_MVE_arch" in expected) == target.mve

    _run(["make", "clean"], out)
    _run(["make", "-j2", "HOST=1"], out)
    (tmp_path / "host.c").write_text("int host(void) { return 0; }\n")
    _run(["cc", "-c", tmp_path / "host.c", "-o", tmp_path / "host.o"], tmp_path)
    assert {elf_machine(o) for o in (out / "build").rglob("*.o")} == {elf_machine(tmp_path / "host.o")}


@needs_arm
@pytest.mark.skipif(shutil.which("cmake") is None, reason="cmake missing")
def test_cmake_builds_for_the_compiled_target_with_its_toolchain_file_and_for_the_host(kws, tmp_path):
    target = targets.get("cortex-m55")
    out = compiled(kws, target.name, tmp_path / "out")
    assert (out / "cmake" / "arm-none-eabi-cortex-m55.cmake").exists()
    _run(["cmake", "-S", out, "-B", tmp_path / "arm"], tmp_path)
    _run(["cmake", "--build", tmp_path / "arm", "-j2"], tmp_path)
    objects = sorted((tmp_path / "arm").rglob("*.c.obj"))
    assert objects
    expected = reference_attributes(target, tmp_path)
    assert all(core_attributes(obj) == expected for obj in objects)
    _run(["cmake", "-S", out, "-B", tmp_path / "host", "-DTINYC_HOST=ON"], tmp_path)
    _run(["cmake", "--build", tmp_path / "host", "-j2"], tmp_path)
    assert sorted((tmp_path / "host").rglob("*.c.o"))


def test_a_host_model_writes_host_build_files_only(kws, tmp_path):
    out = compiled(kws, "host", tmp_path / "out")
    makefile = (out / "Makefile").read_text()
    assert "CROSS ?=\n" in makefile and "arm-none-eabi" not in makefile
    assert not (out / "cmake").exists()
    assert "CMAKE_TOOLCHAIN_FILE" not in (out / "CMakeLists.txt").read_text()
