"""Reading and writing the tensors a user hands to `tinyc run` / `tinyc verify`.

Files: `.npy` holds one tensor (for a model with one input or output), `.npz` holds tensors keyed by
the model's input/output names. Tensors are in the ONNX model's own layout and dtype.

Batches: for a model input of shape S, an array of shape S is one sample; an array of shape [N, *S] is a
batch of N; where S[0] == 1, an array of shape [N, *S[1:]] is also a batch of N (N in place of the
leading 1). Outputs come back stacked the same way.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TinycError


@dataclass(frozen=True)
class TensorSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str


# How a batch was given, so outputs can be returned the same way.
SINGLE, STACKED, LEADING = "single", "stacked", "leading"


@dataclass
class Batch:
    samples: list[dict[str, np.ndarray]]
    mode: str


def read_inputs(path: str | Path, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
    """Load `path` (.npy or .npz) into arrays keyed by input name, checking names."""
    path = Path(path)
    if not path.is_file():
        raise TinycError(f"input file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises several types for corrupt files
        raise TinycError(f"cannot read {path}: not a .npy/.npz file ({exc.__class__.__name__})") from None
    if isinstance(loaded, np.ndarray):
        if len(specs) != 1:
            names = ", ".join(s.name for s in specs)
            raise TinycError(f"{path} holds one tensor but the model has {len(specs)} inputs ({names}); "
                             f"pass an .npz keyed by input name")
        return {specs[0].name: loaded}
    with loaded:
        arrays = {k: loaded[k] for k in loaded.files}
    wanted = {s.name for s in specs}
    missing = sorted(wanted - set(arrays))
    extra = sorted(set(arrays) - wanted)
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing)}")
        if extra:
            parts.append(f"unknown {', '.join(extra)}")
        raise TinycError(f"{path}: {'; '.join(parts)} (the model's inputs are "
                         f"{', '.join(s.name for s in specs)})")
    return arrays


def split_batch(arrays: dict[str, np.ndarray], specs: list[TensorSpec]) -> Batch:
    """Split user arrays into per-sample inputs exactly of the model's shapes and dtypes."""
    modes: dict[str, tuple[str, int]] = {}
    for spec in specs:
        a = arrays[spec.name]
        if str(a.dtype) != spec.dtype:
            raise TinycError(f"input {spec.name!r} is {a.dtype}, the model expects {spec.dtype} "
                             f"(convert it with .astype(np.{spec.dtype}))")
        s = spec.shape
        if a.shape == s:
            modes[spec.name] = (SINGLE, 1)
        elif a.ndim == len(s) + 1 and a.shape[1:] == s:
            modes[spec.name] = (STACKED, a.shape[0])
        elif len(s) >= 1 and s[0] == 1 and a.ndim == len(s) and a.shape[1:] == s[1:]:
            modes[spec.name] = (LEADING, a.shape[0])
        else:
            raise TinycError(f"input {spec.name!r} has shape {list(a.shape)}, the model expects "
                             f"{list(s)} (or a batch [N, {', '.join(map(str, s))}]){_layout_hint(a.shape, s)}")
    kinds = {m for m, _ in modes.values()}
    counts = {n for _, n in modes.values()}
    if len(kinds) > 1 or len(counts) > 1:
        raise TinycError("inputs disagree on the batch: give every input the same number of samples "
                         "in the same form")
    mode, count = modes[specs[0].name]
    if count == 0:
        raise TinycError("the input batch is empty")
    samples = []
    for i in range(count):
        sample = {}
        for spec in specs:
            a = arrays[spec.name]
            if mode == SINGLE:
                sample[spec.name] = np.ascontiguousarray(a)
            elif mode == STACKED:
                sample[spec.name] = np.ascontiguousarray(a[i])
            else:
                sample[spec.name] = np.ascontiguousarray(a[i:i + 1])
        samples.append(sample)
    return Batch(samples, mode)


def _layout_hint(got: tuple[int, ...], want: tuple[int, ...]) -> str:
    """A hint when a 4-D input is the model's NCHW shape in NHWC order (TFLite-style data)."""
    if len(want) == 4 and len(got) in (4, 5):
        n, c, h, w = want
        if tuple(got[-3:]) == (h, w, c) and (h, w, c) != (c, h, w):
            return "; the data looks NHWC: pass --input-layout nhwc"
    return ""


def join_batch(outputs: list[dict[str, np.ndarray]], mode: str) -> dict[str, np.ndarray]:
    """Stack per-sample outputs the way the inputs were given."""
    names = list(outputs[0])
    if mode == SINGLE:
        return dict(outputs[0])
    if mode == STACKED:
        return {n: np.stack([o[n] for o in outputs]) for n in names}
    return {n: np.concatenate([o[n] for o in outputs], axis=0) for n in names}


def write_outputs(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write outputs atomically: .npy for a single output, .npz keyed by name otherwise."""
    path = Path(path)
    if path.suffix not in (".npy", ".npz"):
        raise TinycError(f"output file {path} must end in .npy or .npz")
    if path.suffix == ".npy" and len(arrays) != 1:
        raise TinycError(f"the model has {len(arrays)} outputs; write them to an .npz file")
    if path.parent and not path.parent.exists():
        raise TinycError(f"output directory {path.parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".tinyc-", suffix=path.suffix, dir=path.parent or ".")
    except OSError as exc:
        raise TinycError(f"cannot write {path}: {exc.strerror}") from None
    try:
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)  # mkstemp's file is private; the output is an ordinary file
        with os.fdopen(fd, "wb") as fh:
            if path.suffix == ".npy":
                np.save(fh, next(iter(arrays.values())))
            else:
                np.savez(fh, **arrays)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise TinycError(f"cannot write {path}: {exc.strerror or exc}") from None
        raise
