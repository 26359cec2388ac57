"""Writing an output directory without ever losing a user's file.

tinyc writes a whole directory at once: into a temporary sibling first, then renamed into place, so
an interrupted or failed write leaves the previous state (no directory, or the previous output)
untouched. Every directory it writes holds a marker (`MARKER`) listing the files it wrote. A
directory that already holds files is replaced only when asked (`force`), only when the marker says
tinyc wrote every file in it, and never when it is the working directory or one of its ancestors, the
home directory, the root, or a directory holding one of the `protect` paths (such as the input model).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

from .errors import TinycError

MARKER = ".tinyc-output"


def _files_under(root: Path) -> list[str]:
    """Every file and symlink under `root`, as POSIX paths relative to it."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        found += [(base / f).relative_to(root).as_posix() for f in filenames]
        found += [(base / d).relative_to(root).as_posix() for d in dirnames if (base / d).is_symlink()]
    return sorted(found)


def _written_by_tinyc(root: Path) -> set[str]:
    """The files tinyc's marker in `root` says it wrote (empty when there is no readable marker)."""
    try:
        listed = json.loads((root / MARKER).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return set()
    return {str(f) for f in listed} | {MARKER} if isinstance(listed, list) else set()


def _is_inside(path: Path, directory: Path) -> bool:
    return path == directory or directory in path.parents


def check_output_dir(out_dir: str | Path, force: bool, protect: Iterable[str | Path] = ()) -> None:
    """Raise TinycError unless tinyc may write `out_dir` (see the module docstring). Cheap: callers
    check before compiling, and write_output_dir checks again before replacing anything."""
    out = Path(out_dir)
    if not out.exists() and not out.is_symlink():
        return
    if not out.is_dir() or out.is_symlink():
        raise TinycError(f"output {out} exists and is not a directory; choose another -o")
    try:
        present = _files_under(out)
    except OSError as exc:
        raise TinycError(f"cannot read output directory {out}: {exc.strerror}") from None
    if not present:
        return
    if not force:
        raise TinycError(f"output directory {out} is not empty; pass --force to replace a directory tinyc "
                         f"wrote, or choose another -o")
    resolved = out.resolve()
    cwd = Path.cwd().resolve()
    if _is_inside(cwd, resolved) or resolved == Path.home().resolve() or resolved == Path(resolved.anchor):
        raise TinycError(f"--force will not replace {out}: it is the working directory, one of its parents, "
                         f"the home directory or the root; choose a new -o")
    for path in protect:
        if _is_inside(Path(path).resolve(), resolved):
            raise TinycError(f"--force will not replace {out}: it holds {path}; choose another -o")
    foreign = [f for f in present if f not in _written_by_tinyc(out)]
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise TinycError(f"--force will not replace {out}: tinyc did not write {shown}; move those files "
                         f"or choose another -o")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_output_dir(files: Mapping[str, bytes], out_dir: str | Path, force: bool = False,
                     protect: Iterable[str | Path] = ()) -> None:
    """Write `files` ({relative path: bytes}) as the directory `out_dir`, atomically, creating its
    parents; replace an existing directory only as check_output_dir allows."""
    out = Path(out_dir)
    check_output_dir(out, force, protect)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tinyc-", dir=out.parent))
    except OSError as exc:
        raise TinycError(f"cannot create output directory {out}: {exc.strerror}") from None
    old = None
    try:
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes it private; the output is an ordinary folder
        for rel, data in sorted(files.items()):
            path = tmp / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        (tmp / MARKER).write_text(json.dumps({"tool": "tinyc", "files": sorted(files)}, indent=1) + "\n")
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.tinyc-old-", dir=out.parent))
            os.replace(out, old)
        os.replace(tmp, out)
    except BaseException as exc:
        if old is not None and not out.exists():
            os.replace(old, out)  # put the previous output back
            old = None
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        if isinstance(exc, OSError):
            raise TinycError(f"cannot write output directory {out}: {exc.strerror or exc}") from None
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
