"""tinyc's Python API: what other tools embed (docs/api.md states what stays stable).

    model = tinyc.load("model.onnx")                       # or an onnx.ModelProto, or textual IR
    artifact = tinyc.compile(model, target="cortex-m4", calibration="data.npz")
    artifact.files, artifact.report, artifact.arena_bytes, artifact.weight_bytes
    artifact.write("out/")                                 # the output directory `tinyc compile` writes
    outputs = artifact.run({"input": x}, target="host")    # "ref", "host" or an emulated core
    tinyc.inspect("model.onnx", target="cortex-m4")        # the summary `tinyc inspect --json` prints

Functions never print and never exit: problems are exceptions (TinycError and its subclass
UnsupportedError) carrying the one-line messages the CLI prints; warnings are collected on the result
(`Artifact.warnings`). The CLI is a thin layer over the same driver functions.
"""
from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import onnx

from . import driver, tensor_io
from .codegen import CodegenOptions, GeneratedModel
from .errors import TinycError
from .frontend import import_model
from .inspect_model import summarize
from .ir import Graph
from .output_dir import write_output_dir
from .ptq import Precision

__all__ = ["Artifact", "Model", "compile", "inspect", "load"]


@dataclass(frozen=True)
class Model:
    """A model read into tinyc's IR (the graph straight from the frontend, before any pass)."""

    graph: Graph
    source: str


def load(model: str | Path | onnx.ModelProto | Model, input_shapes: Mapping[str, list[int]] | None = None) -> Model:
    """An ONNX file, an onnx.ModelProto or a textual IR file (.tir) as a Model. `input_shapes` fixes
    dynamic input dimensions ({input name: shape})."""
    if isinstance(model, Model):
        return model
    shapes = {k: list(v) for k, v in input_shapes.items()} if input_shapes else None
    if isinstance(model, onnx.ModelProto):
        return Model(import_model(model, shapes, source="<onnx.ModelProto>"), "<onnx.ModelProto>")
    return Model(driver.load_graph(model, shapes), str(model))


@dataclass
class Artifact:
    """A compiled model: every file of the output directory, the report as data, and what it needs."""

    model: Model
    generated: GeneratedModel
    lowered: Graph
    options: CodegenOptions
    input_layout: str
    warnings: list[str] = field(default_factory=list)

    @property
    def files(self) -> dict[str, bytes]:
        return self.generated.files

    @property
    def report(self) -> dict[str, Any]:
        return self.generated.report

    @property
    def target(self) -> str:
        return self.options.target.name

    @property
    def arena_bytes(self) -> int:
        return int(self.report["arena_bytes"])

    @property
    def weight_bytes(self) -> int:
        return int(self.report["weight_bytes"])

    def write(self, directory: str | Path, force: bool = False) -> Path:
        """Write the output directory (atomically; `force` replaces only a directory tinyc wrote)."""
        write_output_dir(self.files, directory, force=force)
        return Path(directory)

    def run(self, inputs: Mapping[str, np.ndarray] | np.ndarray, target: str | None = None,
            cmsis_nn: str | None = None) -> dict[str, np.ndarray]:
        """The outputs for `inputs` ({input name: array}, or one array for a one-input model; one
        sample or a batch, as `tinyc run` takes them) from the reference interpreter ("ref"), the C built
        for this machine ("host") or run on an emulated core (the artifact's target by default)."""
        arrays = self._arrays(inputs)
        specs = driver.input_specs(self.lowered)
        target = target or self.target
        if target == "ref":
            return driver.run_reference(self.lowered, arrays)
        batch = tensor_io.split_batch(arrays, specs)
        options = CodegenOptions(name=self.options.name, target=target, arena=self.options.arena,
                                 max_arena=self.options.max_arena)
        with tempfile.TemporaryDirectory(prefix="tinyc-api-") as tmp:
            outputs, _ = driver.build_and_run(self.lowered, batch.samples, options, Path(tmp), cmsis_nn)
        return tensor_io.join_batch(outputs, batch.mode)

    def _arrays(self, inputs) -> dict[str, np.ndarray]:
        if isinstance(inputs, np.ndarray):
            if len(self.lowered.inputs) != 1:
                raise TinycError(f"the model has {len(self.lowered.inputs)} inputs: pass a dict keyed by "
                                 f"{', '.join(self.lowered.inputs)}")
            return {self.lowered.inputs[0]: inputs}
        unknown = sorted(set(inputs) - set(self.lowered.inputs))
        missing = sorted(set(self.lowered.inputs) - set(inputs))
        if unknown or missing:
            raise TinycError(f"inputs: missing {', '.join(missing) or 'none'}, unknown {', '.join(unknown) or 'none'} "
                             f"(the model's inputs are {', '.join(self.lowered.inputs)})")
        return {k: np.asarray(v) for k, v in inputs.items()}


def compile(model: str | Path | onnx.ModelProto | Model, target: str = "cortex-m4", *,  # noqa: A001 (the verb)
            calibration: str | Path | Mapping[str, np.ndarray] | None = None, precision: str = "int8",
            calibration_method: str = "minmax", bias_correction: bool = True, equalization: bool = True,
            name: str = "model", arena: str = "caller", max_arena: int | None = None, cmsis_nn: str | None = None,
            input_layout: str = "model", input_shapes: Mapping[str, list[int]] | None = None) -> Artifact:
    """Compile `model` for `target` (the options of `tinyc compile`). `calibration` may also be
    arrays ({input name: batch}) instead of a file."""
    loaded = load(model, input_shapes)
    with warnings.catch_warnings(record=True) as caught, tempfile.TemporaryDirectory(prefix="tinyc-api-") as tmp:
        warnings.simplefilter("always")
        if isinstance(calibration, Mapping):
            path = Path(tmp) / "calibration.npz"
            np.savez(path, **{k: np.asarray(v) for k, v in calibration.items()})
            calibration = path
        options = CodegenOptions(name=name, target=target, arena=arena, max_arena=max_arena,
                                 cmsis_nn=str(cmsis_nn or ""))
        lowered = driver.lower_for_codegen(loaded.graph, input_layout,
                                           Precision(precision, calibration, calibration_method, bias_correction,
                                                     equalization))
        generated = driver.generate_for_target(lowered, options)
    return Artifact(loaded, generated, lowered, options, input_layout, [str(w.message) for w in caught])


def inspect(model: str | Path, target: str = "cortex-m4", input_shapes: Mapping[str, list[int]] | None = None,
            **precision: Any) -> dict[str, Any]:
    """The summary `tinyc inspect --json` prints (interface, ops, MACs, parameters, and whether and
    why not it compiles for `target`); `precision` takes compile's precision keywords."""
    shapes = {k: list(v) for k, v in input_shapes.items()} if input_shapes else None
    options = Precision(precision.get("precision", "int8"), precision.get("calibration"),
                        precision.get("calibration_method", "minmax"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return summarize(model, input_shapes=shapes, target=target, precision=options)
