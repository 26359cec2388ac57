"""Calibration: what the activations of a float model look like on representative data.

    load_samples(source, graph)   -> list of {input name: array}   (.npz, a folder, or "random")
    collect(graph, samples)       -> {value name: TensorStats}      (the float graph in the interpreter)
    choose_ranges(stats, method)  -> {value name: (lo, hi)}         (minmax, percentile, entropy, auto)

Calibration data is an .npz keyed by input name with a leading batch axis (as `tinyc run` takes
batches), or a folder of .npy (one-input models) / .npz files, one sample or a batch each. "random"
draws standard normal inputs, which says nothing about real activations: the CLI warns loudly.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np

from . import quant_math as qm
from . import tensor_io
from .errors import TinycError
from .interpreter import run_trace
from .ir import Graph

METHODS = ("minmax", "percentile", "entropy", "auto")
# Values kept per tensor over all samples (random per sample) for percentiles, histograms and SQNR.
RESERVOIR = 1 << 16
PERCENTILE = 99.99
HISTOGRAM_BINS = 2048
ENTROPY_LEVELS = 128  # quantisation levels on one side of zero that the KL search compares


@dataclass
class TensorStats:
    """Running statistics of one float tensor over the calibration samples."""

    lo: float = math.inf
    hi: float = -math.inf
    seen: int = 0
    sample: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    channel_sum: np.ndarray | None = None   # per channel (axis 1 of NCHW / [N, C]) sum, for bias correction
    channel_count: int = 0

    def add(self, x: np.ndarray, rng: np.random.Generator, keep: int) -> None:
        """Add one sample's values, keeping `keep` of them (chosen at random) for the distribution."""
        flat = np.asarray(x, dtype=np.float32).reshape(-1)
        if not flat.size:
            return
        self.lo = min(self.lo, float(flat.min()))
        self.hi = max(self.hi, float(flat.max()))
        kept = flat if flat.size <= keep else rng.choice(flat, keep, replace=False)
        self.sample = np.concatenate([self.sample, kept])
        self.seen += flat.size
        if x.ndim >= 2:
            per_channel = np.moveaxis(np.asarray(x, np.float64), 1, 0).reshape(x.shape[1], -1)
            total = per_channel.sum(axis=1)
            self.channel_sum = total if self.channel_sum is None else self.channel_sum + total
            self.channel_count += per_channel.shape[1]

    @property
    def channel_mean(self) -> np.ndarray | None:
        return None if self.channel_sum is None else self.channel_sum / max(self.channel_count, 1)


# ---- samples ---------------------------------------------------------------------------------

def load_samples(source: str | Path, graph: Graph, count: int = 64, seed: int = 0) -> list[dict[str, np.ndarray]]:
    """Calibration samples for the graph's inputs (see the module docstring)."""
    specs = [tensor_io.TensorSpec(n, graph.values[n].shape, graph.values[n].dtype) for n in graph.inputs]
    if str(source) == "random":
        rng = np.random.default_rng(seed)
        return [{s.name: rng.standard_normal(s.shape).astype(s.dtype) for s in specs} for _ in range(count)]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in (".npy", ".npz"))
        if not files:
            raise TinycError(f"--calibration {path}: the folder holds no .npy or .npz file")
        samples = [s for f in files for s in _samples_of(f, specs)]
    elif path.is_file():
        samples = _samples_of(path, specs)
    else:
        raise TinycError(f"--calibration {path}: no such file or folder (give an .npz, a folder of samples, "
                         f"or 'random')")
    for i, sample in enumerate(samples):
        for name, array in sample.items():
            if array.dtype.kind == "f" and not np.isfinite(array).all():
                raise TinycError(f"--calibration {path}: sample {i} of input {name!r} holds NaN or infinity; "
                                 f"calibration data must be finite")
    return samples


def _samples_of(path: Path, specs) -> list[dict[str, np.ndarray]]:
    try:
        arrays = tensor_io.read_inputs(path, specs)
        return tensor_io.split_batch(arrays, specs).samples
    except TinycError as exc:
        raise TinycError(f"--calibration: {exc}") from None


# ---- statistics ----------------------------------------------------------------------------

def collect(graph: Graph, samples: list[dict[str, np.ndarray]], seed: int = 0,
            progress: Callable[[Iterable], Iterable] | None = None) -> dict[str, TensorStats]:
    """Statistics of every float tensor of `graph` (inputs and op results) over `samples`."""
    if not samples:
        raise TinycError("--calibration: the calibration data holds no sample")
    rng = np.random.default_rng(seed)
    names = [n for n in graph.inputs if graph.values[n].dtype == "float32"] + [
        op.outputs[0] for op in graph.ops if graph.values[op.outputs[0]].dtype == "float32"]
    stats = {n: TensorStats() for n in names}
    keep = max(256, RESERVOIR // len(samples))  # about RESERVOIR values of each tensor in all
    for sample in (progress or iter)(samples):
        env = run_trace(graph, sample)
        for name in names:
            stats[name].add(env[name], rng, keep)
    return stats


def progress_bar(total: int, what: str = "calibrating") -> Callable[[Iterable], Iterable]:
    """A tqdm progress bar on stderr for long runs (a terminal and more than a few samples)."""
    def wrap(items: Iterable) -> Iterable:
        if total < 8 or not sys.stderr.isatty():
            return items
        from tqdm import tqdm  # only for interactive runs
        return tqdm(items, total=total, desc=what, unit="sample", leave=False)
    return wrap


# ---- ranges ---------------------------------------------------------------------------------

def _with_zero(lo: float, hi: float) -> tuple[float, float]:
    """Quantised ranges hold 0 exactly (padding and ReLU need it)."""
    return min(lo, 0.0), max(hi, 0.0)


def minmax_range(s: TensorStats) -> tuple[float, float]:
    return _with_zero(s.lo, s.hi)


def percentile_range(s: TensorStats, percentile: float = PERCENTILE) -> tuple[float, float]:
    """Each side clipped at the percentile of the kept values (never beyond min/max)."""
    if not s.sample.size:
        return minmax_range(s)
    lo = float(np.percentile(s.sample, 100.0 - percentile))
    hi = float(np.percentile(s.sample, percentile))
    return _with_zero(max(lo, s.lo), min(hi, s.hi))


def entropy_range(s: TensorStats) -> tuple[float, float]:
    """The clipping threshold T of |x| whose quantised histogram (ENTROPY_LEVELS levels over [0, T])
    loses the least information (smallest KL divergence) against the full one, as TensorRT's
    calibrator does; applied to each side of the range. Exact zeros (most of a ReLU's output) are
    left out: every range holds 0 exactly, and their mass would make the search clip hard."""
    values = np.abs(s.sample[s.sample != 0].astype(np.float64))
    peak = float(values.max(initial=0.0))
    if peak == 0.0:
        return minmax_range(s)
    hist, edges = np.histogram(values, bins=HISTOGRAM_BINS, range=(0.0, peak))
    hist = hist.astype(np.float64)
    best_kl, best_bins = math.inf, HISTOGRAM_BINS
    for bins in range(ENTROPY_LEVELS, HISTOGRAM_BINS + 1, 16):
        reference = hist[:bins].copy()
        reference[-1] += hist[bins:].sum()  # what clipping folds into the last bin
        # The same bins merged into ENTROPY_LEVELS levels, spread back over their non-empty bins.
        chunks = np.array_split(np.arange(bins), ENTROPY_LEVELS)
        candidate = np.zeros(bins)
        for chunk in chunks:
            mass = hist[chunk].sum()
            nonzero = chunk[hist[chunk] > 0]
            if nonzero.size:
                candidate[nonzero] = mass / nonzero.size
        p = reference / reference.sum()
        q = candidate / max(candidate.sum(), 1e-300)
        mask = p > 0
        kl = float(np.sum(p[mask] * np.log(p[mask] / np.maximum(q[mask], 1e-12))))
        if kl < best_kl:
            best_kl, best_bins = kl, bins
    threshold = float(edges[best_bins])
    return _with_zero(max(s.lo, -threshold), min(s.hi, threshold))


def sqnr_db(reference: np.ndarray, approximation: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio in dB (inf when exact; -inf for a zero signal with noise)."""
    ref = np.asarray(reference, np.float64)
    noise = float(np.sum((ref - np.asarray(approximation, np.float64)) ** 2))
    signal = float(np.sum(ref ** 2))
    if noise == 0.0:
        return math.inf
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def fake_quantize(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    q = np.clip(np.rint(np.asarray(x, np.float32) / np.float32(scale)) + zero_point, -128, 127)
    return ((q - zero_point) * np.float32(scale)).astype(np.float32)


def auto_range(s: TensorStats) -> tuple[tuple[float, float], str]:
    """The range among minmax, percentile and entropy that quantises the kept values best (SQNR)."""
    best = None
    for name, chooser in (("minmax", minmax_range), ("percentile", percentile_range), ("entropy", entropy_range)):
        lo, hi = chooser(s)
        score = sqnr_db(s.sample, fake_quantize(s.sample, *qm.int8_params(lo, hi))) if s.sample.size else 0.0
        if best is None or score > best[0]:
            best = (score, (lo, hi), name)
    return best[1], best[2]


def choose_ranges(stats: dict[str, TensorStats], method: str,
                  full_range: Iterable[str] = ()) -> tuple[dict[str, tuple[float, float]], dict[str, str]]:
    """The real range quantising each tensor, and the method that chose it (for the report). Tensors
    in `full_range` (the model's outputs: clipping a logit changes the answer) keep min/max."""
    if method not in METHODS:
        raise TinycError(f"--calibration-method must be one of {', '.join(METHODS)}, not {method!r}")
    ranges, chosen = {}, {}
    full_range = set(full_range)
    for name, s in stats.items():
        if s.seen == 0:
            continue
        if name in full_range:
            ranges[name], chosen[name] = minmax_range(s), "minmax"
        elif method == "auto":
            ranges[name], chosen[name] = auto_range(s)
        else:
            ranges[name] = {"minmax": minmax_range, "percentile": percentile_range, "entropy": entropy_range}[method](s)
            chosen[name] = method
    return ranges, chosen
