"""tinyc as an ONNX backend (`onnx.backend.base.Backend`), so ONNX's own tests can run it.

    rep = tinyc.backend.prepare(model)   # import, lower, generate the C for the host (no build yet)
    outputs = rep.run([x, ...])          # built once per rep (cc), then run on the host

`prepare` does what `tinyc compile --target host` does, in a temporary folder owned by the rep; a
float model becomes float32 C (`--precision float32`: tinyc's float kernels), a quantised one int8 C. `run` takes the
inputs as a list in the graph's input order (or a dict by name), of the model's exact shapes and
dtypes, and returns the outputs in the graph's output order. Only the CPU device exists. A model
tinyc cannot compile raises TinycError (or UnsupportedError) from `prepare`, as the CLI would
report it.
"""
from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from .build import build_host, run_host
from .codegen import CodegenOptions
from .codegen.harness import harness_source
from .driver import check, generate_for_target, lower_for_codegen
from .errors import TinycError
from .frontend import import_model
from .ir import Graph
from .output_dir import write_output_dir
from .ptq import Precision, is_float_model

NAME = "model"


class TinycBackendRep(BackendRep):
    """One compiled model: its lowered graph and generated C; the host executable once built."""

    def __init__(self, lowered: Graph, generated) -> None:
        self.graph = lowered
        self.generated = generated
        self.workdir = Path(tempfile.mkdtemp(prefix="tinyc-backend-"))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.workdir, ignore_errors=True)
        self.executable: Path | None = None

    def build(self) -> Path:
        """Build the host executable (the model and the test harness), once."""
        if self.executable is None:
            gen_dir = self.workdir / "gen"
            write_output_dir(self.generated.files, gen_dir)
            harness = self.workdir / "harness_main.c"
            align = max(int(self.generated.plan.get("alignment", 16)), 16)
            harness.write_text(harness_source(self.graph, NAME, "caller", align))
            self.executable = build_host(gen_dir, self.generated.sources, harness, self.workdir / NAME)
        return self.executable

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        sample = self._sample(inputs)
        outputs = run_host(self.build(), self.graph, [sample], self.workdir)[0]
        return tuple(outputs[name] for name in self.graph.outputs)

    def _sample(self, inputs: Any) -> dict[str, np.ndarray]:
        names = self.graph.inputs
        if isinstance(inputs, dict):
            arrays = dict(inputs)
        else:
            if isinstance(inputs, np.ndarray):
                inputs = [inputs]
            if len(inputs) != len(names):
                raise TinycError(f"the model takes {len(names)} inputs ({', '.join(names)}), got {len(inputs)}")
            arrays = dict(zip(names, inputs))
        sample = {}
        for name in names:
            if name not in arrays:
                raise TinycError(f"input {name!r} is missing")
            array, value = np.asarray(arrays[name]), self.graph.values[name]
            if array.shape != value.shape or str(array.dtype) != value.dtype:
                raise TinycError(f"input {name!r} is {array.dtype}{list(array.shape)}, the model takes "
                                 f"{value.dtype}{list(value.shape)}")
            sample[name] = array
        return sample


class TinycBackend(Backend):
    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> TinycBackendRep:
        if not cls.supports_device(device):
            raise TinycError(f"tinyc's backend runs on the CPU (host build), not on {device}")
        graph = import_model(model, source=model.graph.name or "model")
        check(graph, "import")
        lowered = lower_for_codegen(graph, precision=Precision("float32") if is_float_model(graph) else None)
        return TinycBackendRep(lowered, generate_for_target(lowered, CodegenOptions(name=NAME, target="host")))

    @classmethod
    def run_model(cls, model: onnx.ModelProto, inputs: Any, device: str = "CPU", **kwargs: Any
                  ) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device, **kwargs).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"


prepare = TinycBackend.prepare
run_model = TinycBackend.run_model
supports_device = TinycBackend.supports_device
