"""FileCheck tests: every tests/filecheck/**/*.tir file is one test.

A test file is textual IR whose `//` comments carry the test (the IR parser ignores comments):

    // RUN: tinyc opt %s --passes canonicalize | filecheck %s
    // CHECK: %y = relu(%x)

Each `// RUN:` line (a trailing `\\` continues it on the next line) runs with bash from the repository
root under `set -o pipefail`. Substitutions: `%s` the test file, `%S` its directory, `%t` a scratch
path unique to the test. `not CMD` succeeds when CMD fails, as in LLVM's lit:
`// RUN: not tinyc opt %s 2>&1 | filecheck %s` checks an error message. A file without RUN lines fails.
"""
from __future__ import annotations

import functools
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ROOT = Path(__file__).resolve().parent / "filecheck"
TESTS = sorted(ROOT.glob("**/*.tir"))
RUN = re.compile(r"^\s*//\s*RUN:(.*)$")
TIMEOUT_S = 120
# lit's `not`: succeed exactly when the command fails.
PRELUDE = "set -o pipefail\nnot() { if \"$@\"; then return 1; else return 0; fi; }\n"


def run_lines(path: Path) -> list[str]:
    """The commands of a test file, continuation lines joined."""
    commands, pending = [], ""
    for line in path.read_text().splitlines():
        match = RUN.match(line)
        if not match:
            continue
        part = match.group(1).strip()
        if part.endswith("\\"):
            pending += part[:-1] + " "
            continue
        commands.append(pending + part)
        pending = ""
    if pending:
        commands.append(pending)
    return commands


def substitute(command: str, path: Path, scratch: Path) -> str:
    table = {"%s": shlex.quote(str(path)), "%S": shlex.quote(str(path.parent)),
             "%t": shlex.quote(str(scratch))}
    return re.sub(r"%[sSt]", lambda m: table[m.group(0)], command)


@functools.lru_cache(maxsize=None)
def missing_tool(tool: str) -> str | None:
    """Why `tool` cannot run yet, or None when it can."""
    if shutil.which(tool) is None:
        return f"`{tool}` is not on PATH"
    probe = ["tinyc", "opt", "--help"] if tool == "tinyc" else [tool, "--help"]
    result = subprocess.run(probe, capture_output=True, text=True, cwd=REPO, timeout=TIMEOUT_S)
    if result.returncode != 0:
        return f"`{' '.join(probe)}` does not work yet: {(result.stderr or result.stdout).strip()[-200:]}"
    return None


@pytest.mark.parametrize("path", TESTS, ids=[str(p.relative_to(ROOT)) for p in TESTS])
def test_filecheck(path: Path, tmp_path: Path) -> None:
    commands = run_lines(path)
    assert commands, f"{path} has no // RUN: line"
    for tool in ("tinyc", "filecheck"):
        if any(re.search(rf"(^|[|;&(\s]){tool}\s", c) for c in commands):
            reason = missing_tool(tool)
            if reason:
                pytest.skip(reason)
    for command in commands:
        script = substitute(command, path, tmp_path / "t")
        result = subprocess.run(["bash", "-c", PRELUDE + script], cwd=REPO, capture_output=True,
                                text=True, timeout=TIMEOUT_S)
        assert result.returncode == 0, (
            f"RUN: {command}\n$ {script}\nexit code {result.returncode}\n"
            f"--- stdout ---\n{result.stdout}\n--- stderr ---\n{result.stderr}")


def test_runner_finds_tests_and_understands_run_lines(tmp_path: Path) -> None:
    assert TESTS, f"no FileCheck tests under {ROOT}"
    sample = tmp_path / "a b.tir"
    sample.write_text("// RUN: not tinyc opt %s \\\n// RUN:   --passes x 2>&1 | filecheck %s\n"
                      "// RUN: cat %S/x > %t\ngraph @g() -> () {\n  return\n}\n")
    commands = run_lines(sample)
    assert commands == ["not tinyc opt %s  --passes x 2>&1 | filecheck %s", "cat %S/x > %t"]
    assert substitute(commands[0], sample, tmp_path / "t") == (
        f"not tinyc opt '{sample}'  --passes x 2>&1 | filecheck '{sample}'")
    for script, code in (("not false", 0), ("not true", 1), ("false | cat", 1)):
        assert subprocess.run(["bash", "-c", PRELUDE + script]).returncode == code
