"""Writing an output directory: atomic, and never a file tinyc did not write."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tinyc.errors import TinycError
from tinyc.output_dir import MARKER, check_output_dir, write_output_dir

FILES = {"model.c": b"int x;\n", "runtime_c/k.c": b"int k;\n"}


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_writes_a_new_directory_and_its_parents_with_ordinary_permissions(tmp_path):
    out = tmp_path / "a" / "b" / "out"
    write_output_dir(FILES, out)
    assert {k: v for k, v in tree(out).items() if k != MARKER} == FILES
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.tinyc")]  # no leftovers


def test_replaces_its_own_output_only_with_force(tmp_path):
    out = tmp_path / "out"
    write_output_dir(FILES, out)
    with pytest.raises(TinycError, match="not empty; pass --force"):
        write_output_dir({"model.c": b"new"}, out)
    write_output_dir({"model.c": b"new"}, out, force=True)
    assert tree(out)["model.c"] == b"new" and "runtime_c/k.c" not in tree(out)


@pytest.mark.parametrize("foreign", ["notes.txt", "runtime_c/mine.c", MARKER])
def test_never_deletes_a_file_tinyc_did_not_write(tmp_path, foreign):
    out = tmp_path / "out"
    write_output_dir(FILES, out)
    if foreign == MARKER:
        (out / MARKER).unlink()  # no marker: nothing in the directory is known to be tinyc's
        expected = "tinyc did not write"
    else:
        (out / foreign).write_text("mine")
        expected = f"tinyc did not write {foreign}"
    before = tree(out)
    with pytest.raises(TinycError, match=expected):
        write_output_dir(FILES, out, force=True)
    assert tree(out) == before


def test_never_replaces_the_working_directory_home_or_a_folder_holding_the_model(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    write_output_dir(FILES, work / "sub")
    (work / "model.onnx").write_bytes(b"x")
    monkeypatch.chdir(work / "sub")
    for target in (Path("."), Path(".."), work / "sub"):
        with pytest.raises(TinycError, match="working directory"):
            check_output_dir(target, force=True)
    monkeypatch.chdir(tmp_path)
    write_output_dir(FILES, tmp_path / "out")
    (tmp_path / "out" / "model.onnx").write_bytes(b"x")
    with pytest.raises(TinycError, match="holds"):
        check_output_dir(tmp_path / "out", force=True, protect=[tmp_path / "out" / "model.onnx"])
    monkeypatch.setenv("HOME", str(tmp_path / "out"))
    with pytest.raises(TinycError, match="home directory"):
        check_output_dir(tmp_path / "out", force=True)


def test_a_file_or_symlink_in_the_way_is_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(TinycError, match="not a directory"):
        write_output_dir(FILES, tmp_path / "f", force=True)
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(TinycError, match="not a directory"):
        write_output_dir(FILES, tmp_path / "link", force=True)


def test_an_interrupted_write_leaves_the_previous_output(tmp_path, monkeypatch):
    out = tmp_path / "out"
    write_output_dir(FILES, out)
    before = tree(out)
    calls = []
    real = Path.write_bytes

    def failing(self, data):
        calls.append(self)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, data)
    monkeypatch.setattr(Path, "write_bytes", failing)
    with pytest.raises(KeyboardInterrupt):
        write_output_dir({"a.c": b"1", "b.c": b"2"}, out, force=True)
    monkeypatch.undo()
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_unwritable_place_is_a_user_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(TinycError, match="cannot create output directory"):
        write_output_dir(FILES, tmp_path / "file" / "out")  # a parent that is a file
    if Path("/proc/self").is_dir():  # not writable even for root
        with pytest.raises(TinycError, match="cannot create output directory"):
            write_output_dir(FILES, Path("/proc/self/tinyc-out"))
