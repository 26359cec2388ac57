"""The compiler's data flow, one function per stage:

    load (ONNX frontend or textual IR) -> lower (passes by name, verified)
        -> for_target (select-kernels, plan-memory) -> codegen -> build -> run

Each stage takes and returns the IR or plain data; the target is resolved once into a
tinyc.targets.Target that every stage after lowering receives. The CLI and the Python API are thin
layers over these.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from . import interpreter, ptq
from . import passes as registry
from . import targets, tensor_io, textir
from .build import build_host, run_host
from .codegen import generate
from .codegen.harness import harness_source
from .emulator_run import run_on_emulator
from .errors import TinycError
from .frontend import load_model
from .ir import Graph, Value
from .output_dir import write_output_dir
from .quant_math import INT32_MAX
from .passes.plan_memory import plan_graph
from .ptq import Precision
from .targets import Target
from .verify import VerifyError, verify

TEXT_IR_SUFFIXES = (".tir", ".mlir", ".txt")


def parse_input_shapes(items: Iterable[str]) -> dict[str, list[int]]:
    """`NAME=1,3,96,96` strings -> {NAME: [1, 3, 96, 96]}."""
    shapes: dict[str, list[int]] = {}
    for item in items:
        name, sep, dims = item.rpartition("=")
        try:
            values = [int(d) for d in dims.split(",")]
        except ValueError:
            values = []
        if not sep or not name or not values or any(v <= 0 for v in values):
            raise TinycError(f"--input-shape {item!r}: expected NAME=D1,D2,... with positive integers")
        shapes[name] = values
    return shapes


def _looks_like_text_ir(path: Path) -> bool:
    if path.suffix in TEXT_IR_SUFFIXES:
        return True
    with open(path, "rb") as fh:
        head = fh.read(256).lstrip()
    return head.startswith(b"graph @") or head.startswith(b"//")


def load_graph(path: str | Path, input_shapes: dict[str, list[int]] | None = None) -> Graph:
    """Read an ONNX model or a textual IR file into a verified graph."""
    path = Path(path)
    if not path.is_file():
        raise TinycError(f"{path}: no such file")
    if _looks_like_text_ir(path):
        graph = textir.parse(path.read_text(), source=str(path))
    else:
        graph = load_model(path, input_shapes=input_shapes)
    check(graph, f"{path}")
    return graph


def check(graph: Graph, stage: str) -> None:
    try:
        verify(graph)
    except VerifyError as exc:
        raise TinycError(f"{stage}: invalid IR: {exc}") from None


def lower(graph: Graph, passes: Sequence[str] | None = None,
          after_pass: Callable[[str, Graph], None] | None = None) -> Graph:
    """Run passes by name (default: the full pipeline), verifying the IR after each."""
    names = list(registry.DEFAULT_PIPELINE if passes is None else passes)
    fns = []
    for name in names:
        try:
            fns.append((name, registry.get(name)))
        except KeyError as exc:
            raise TinycError(str(exc.args[0])) from None
    for name, fn in fns:
        graph = fn(graph)
        check(graph, f"after pass {name}")
        if after_pass is not None:
            after_pass(name, graph)
    return graph


def input_specs(graph: Graph) -> list[tensor_io.TensorSpec]:
    return [tensor_io.TensorSpec(n, graph.values[n].shape, graph.values[n].dtype) for n in graph.inputs]


def run_reference(graph: Graph, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run user arrays (one sample or a batch, see tensor_io) through the reference interpreter."""
    batch = tensor_io.split_batch(arrays, input_specs(graph))
    outputs = [interpreter.run(graph, sample) for sample in batch.samples]
    return tensor_io.join_batch(outputs, batch.mode)


def use_nhwc_inputs(graph: Graph) -> Graph:
    """Let the caller pass 4-D inputs in NHWC: drop the NCHW->NHWC conversion the layout pass put
    right after each such input, so the input itself becomes the NHWC tensor."""
    g = graph.copy()
    for name in g.inputs:
        v = g.values[name]
        if len(v.shape) != 4 or v.layout not in ("NCHW", ""):
            continue
        users = [op for op in g.ops if name in op.inputs]
        n, c, h, w = v.shape
        nhwc = (n, h, w, c)
        if (len(users) != 1 or users[0].kind not in ("transpose", "reshape")
                or g.values[users[0].outputs[0]].shape != nhwc
                or (users[0].kind == "transpose" and list(users[0].attrs["perm"]) != [0, 2, 3, 1])):
            raise TinycError(f"--input-layout nhwc: input {name!r} is not converted to NHWC at the start "
                             f"of the graph, so it cannot be taken in NHWC; use --input-layout nchw")
        op = users[0]
        converted = op.outputs[0]
        g.ops.remove(op)
        g.replace_uses(converted, name)
        del g.values[converted]
        g.values[name] = Value(name, nhwc, v.dtype, "NHWC", v.quant)
    check(g, "--input-layout nhwc")
    return g


def lower_for_codegen(graph: Graph, input_layout: str = "model", precision: Precision | None = None) -> Graph:
    """The model in `precision` (ptq.prepare: a float model quantised from its calibration data, or
    kept float), through the default pipeline, then inputs taken in the layout the caller passes
    (`--input-layout`). A quantised float model carries graph.meta["accuracy"] (ptq.accuracy)."""
    prepared = ptq.prepare(graph, precision or Precision())
    lowered = lower(prepared.graph)
    if prepared.float_graph is not None:
        lowered.meta["accuracy"] = ptq.accuracy(prepared.float_graph, lowered, prepared.samples, prepared.methods)
    if input_layout == "nhwc":
        lowered = use_nhwc_inputs(lowered)
    elif input_layout not in ("model", "nchw"):
        raise TinycError(f"--input-layout must be nchw or nhwc, not {input_layout!r}")
    return lowered


INT32_SIZES = "2^31 - 1 bytes, the most a C int32_t size holds"


def arena_limit(target: Target, max_arena: int | None) -> tuple[int, str]:
    """The most arena bytes a model may need on `target`, and where that figure comes from: --max-arena,
    else the target's RAM; never more than C's int32 sizes (CMSIS-NN takes sizes as int32_t)."""
    if max_arena is not None:
        return min(max_arena, INT32_MAX), f"--max-arena {max_arena}"
    if target.ram_bytes is not None:
        return target.ram_bytes, f"{target.memory_description}; pass --max-arena BYTES for your device's"
    return INT32_MAX, INT32_SIZES


def for_target(lowered: Graph, target: Target, *, strategy: str = "best", max_arena: int | None = None) -> Graph:
    """A lowered graph prepared for `target`: every op records its kernel (select-kernels) and
    graph.meta["memory_plan"] holds the arena plan made with those kernels (plan-memory); the code
    generator reads both. Raises TinycError when the model cannot fit (arena_limit): a tensor alone
    too large (checked before planning), or an arena above the limit (naming the peak layer)."""
    limit, source = arena_limit(target, max_arena)
    interface = set(lowered.inputs) | set(lowered.outputs)  # in the caller's buffers, not the arena
    for name, where in [(n, "a graph input") for n in lowered.inputs] + [
            (op.outputs[0], f"written by {op.name!r}") for op in lowered.ops]:
        nbytes = lowered.values[name].nbytes
        cap, what = (INT32_MAX, INT32_SIZES) if name in interface else (limit, source)
        if nbytes > cap:
            raise TinycError(f"the model does not fit {target.name}: tensor {name!r} ({where}) alone needs "
                             f"{nbytes:,} bytes, more than {what}")
    g = targets.select_kernels(lowered, target)
    g.meta["target"] = target.name
    plan = plan_graph(g, target, strategy=strategy)
    if plan["arena_bytes"] > limit:
        peak = plan.get("peak", {})
        live = ", ".join(f"{n} ({g.values[n].nbytes:,} B)" for n in peak.get("live", []) if n in g.values)
        raise TinycError(f"the model does not fit {target.name}: its arena needs {plan['arena_bytes']:,} bytes, "
                         f"more than {source}; peak at layer {peak.get('op', '?')} with live tensors "
                         f"{live or 'n/a'}")
    g.meta["memory_plan"] = plan
    return g


def compile_graph(graph: Graph, options, input_layout: str = "model", precision: Precision | None = None):
    """Lower a graph with the default pipeline, prepare it for options.target and generate its C (a
    codegen.GeneratedModel)."""
    return generate_for_target(lower_for_codegen(graph, input_layout, precision), options)


def generate_for_target(lowered: Graph, options):
    """Prepare a lowered graph for options.target (for_target) and generate its C."""
    prepared = for_target(lowered, options.target, strategy=options.plan_strategy, max_arena=options.max_arena)
    return generate(prepared, options)


def build_and_run(lowered: Graph, samples: list[dict[str, np.ndarray]], options, workdir: Path,
                  cmsis_nn: str | None = None, sanitize: bool = False):
    """Generate C for `lowered`, build it for options.target and run the samples through it.

    Returns (per-sample outputs, cost dict or None). Host builds use the strict warning flags."""
    generated = generate_for_target(lowered, options)
    gen_dir = workdir / "gen"
    write_output_dir(generated.files, gen_dir)
    harness = workdir / "harness_main.c"
    align = int(generated.plan.get("alignment", 16))
    harness.write_text(harness_source(lowered, options.name, options.arena, max(align, 16)))
    if options.target.is_host:
        exe = build_host(gen_dir, generated.sources, harness, workdir / "model_host", sanitize=sanitize,
                         cmsis_nn=Path(cmsis_nn) if cmsis_nn else None)
        return run_host(exe, lowered, samples, workdir), None
    return run_on_emulator(lowered, generated, gen_dir, harness, samples, options, workdir,
                           cmsis_nn=Path(cmsis_nn) if cmsis_nn else None)


def run(graph: Graph, input_path: str, target: str, options, input_layout: str = "model",
        cmsis_nn: str | None = None, precision: Precision | None = None):
    """`tinyc run`: the model's outputs for the inputs in `input_path` (one sample or a batch), from
    the reference interpreter (target "ref") or the compiled C built once for the host or an emulated
    core. Returns (outputs, cost or None)."""
    lowered = lower_for_codegen(graph, input_layout, precision)
    arrays = tensor_io.read_inputs(input_path, input_specs(lowered))
    if target == "ref":
        return run_reference(lowered, arrays), None
    batch = tensor_io.split_batch(arrays, input_specs(lowered))
    with tempfile.TemporaryDirectory(prefix="tinyc-run-") as tmp:
        outputs, cost = build_and_run(lowered, batch.samples, options, Path(tmp), cmsis_nn)
    return tensor_io.join_batch(outputs, batch.mode), cost
