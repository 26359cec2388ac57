"""C code generation: lowered IR + memory plan + target -> the files of a C library.

`generate(graph, options)` returns every output file as bytes (deterministic: same input, same bytes):
  <name>.h            API: arena size, input/output shapes, sizes, scales, zero points, invoke()
  <name>.c            one kernel call per layer, each commented with its ONNX node
  <name>_weights.c    const (flash) weights, biases, requantisation tables
  runtime_c/...       the kernels' C the model needs: tinyc's own, and runtime_c's implementations of
                      the CMSIS-NN functions it calls (replaced by a real CMSIS-NN with CMSIS_NN=...)
  Makefile, CMakeLists.txt, cmake/...   a static library for the target (build_files.py)
  report.json, report.md
Each layer's C comes from the emitter of the kernel select-kernels recorded on its op
(tinyc.targets.kernels).
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import runtime_c, targets
from ..errors import TinycError
from ..ir import Graph, Op, Value
from ..targets import KernelChoice, Target
from .build_files import BuildSources, build_files
from .cwriter import C_TYPES, Namer, c_float, comment, const_array
from .emit import LayerContext
from .report import layer_macs, render_markdown

STATUS_OK = 0


@dataclass
class CodegenOptions:
    name: str = "model"
    target: Target | str = "cortex-m4"   # a target name is resolved once, here
    arena: str = "caller"            # "caller": invoke() takes the arena; "static": a static array
    profile: bool = False            # wrap each layer in TINYC_PROFILE_BEGIN/END hooks
    max_arena: int | None = None
    plan_strategy: str = "best"
    cmsis_nn: str = ""                # default CMSIS-NN checkout for the written Makefile/CMakeLists

    def __post_init__(self) -> None:
        self.target = targets.get(self.target)


@dataclass
class GeneratedModel:
    files: dict[str, bytes]
    report: dict
    plan: dict
    graph: Graph
    kernels: list[str] = field(default_factory=list)
    sources: BuildSources | None = None   # the C files to compile, by role


def _check_name(name: str) -> None:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", name):
        raise TinycError(f"--name {name!r} must be a C identifier (letters, digits, _; not starting "
                         f"with a digit)")


def _finite_json(data):
    """`data` with infinite floats (an exact SQNR) as None: JSON has no infinity."""
    if isinstance(data, dict):
        return {k: _finite_json(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_finite_json(v) for v in data]
    if isinstance(data, float) and not math.isfinite(data):
        return None
    return data


def _alias_roots(graph: Graph, choices: dict[str, KernelChoice]) -> dict[str, str]:
    """Value -> the value whose storage it shares (views share their input's bytes)."""
    root: dict[str, str] = {}

    def find(name: str) -> str:
        while root.get(name, name) != name:
            name = root[name]
        return name

    for op in graph.ops:
        if choices[op.name].is_view:
            root[find(op.outputs[0])] = find(op.inputs[0])
    return {name: find(name) for name in graph.values}


def generate(graph: Graph, options: CodegenOptions) -> GeneratedModel:
    """Emit the C library of a graph prepared for options.target: lowered (integer ops with
    requantisation, NHWC), every op carrying its kernel (select-kernels) and graph.meta["memory_plan"]
    (plan-memory) planned with those kernels; tinyc.driver.for_target does both."""
    _check_name(options.name)
    if options.arena not in ("caller", "static"):
        raise TinycError(f"--arena must be 'caller' or 'static', not {options.arena!r}")
    target = options.target
    plan = graph.meta.get("memory_plan")
    if plan is None or graph.meta.get("target") != target.name:
        raise ValueError(f"the graph is not prepared for {target.name}: run select-kernels and plan-memory "
                         f"with meta target {target.name!r} (tinyc.driver.for_target)")
    return _Writer(graph, options, target, targets.kernel_choices(graph, target), plan).write()


class _Writer:
    def __init__(self, graph: Graph, options: CodegenOptions, target: Target, choices: dict[str, KernelChoice],
                 plan: dict) -> None:
        self.g = graph
        self.opt = options
        self.target = target
        self.choices = choices
        self.plan = plan
        self.namer = Namer(reserved=(options.name, "arena", "status"))
        self.weights: list[str] = []          # C definitions for <name>_weights.c
        self.weight_decls: list[str] = []     # extern declarations for <name>.c
        self.const_symbols: dict[str, str] = {}
        self.weight_bytes = 0
        self.roots = _alias_roots(graph, choices)
        self.members: dict[str, set[str]] = {}   # root -> the values sharing its storage
        for name, root in self.roots.items():
            self.members.setdefault(root, set()).add(name)
        self.align = max(4, target.alignment)
        # One C parameter per graph input and per graph output; an output that is also an input (a model
        # that returns its input) gets a parameter of its own and a copy.
        io_names = Namer(reserved=("arena",))
        self.in_params = {n: io_names(n) for n in graph.inputs}
        self.out_params = {n: io_names(f"\0output {n}", base=n) for n in graph.outputs}

    # ---- where values live ---------------------------------------------------------------------
    def external_param(self, name: str) -> str | None:
        root = self.roots[name]
        members = self.members[root]
        for out in self.g.outputs:
            if out in members and root not in self.g.inputs:
                return self.out_params[out]
        for inp in self.g.inputs:
            if inp in members:
                return self.in_params[inp]
        return None

    def pointer(self, name: str) -> str:
        v = self.g.values[name]
        if v.is_const:
            return self.constant(v)
        ctype = C_TYPES[v.dtype]
        param = self.external_param(name)
        if param is not None:
            return param if self.g.values[self.roots[name]].dtype == v.dtype else f"(({ctype} *){param})"
        offsets = self.plan["offsets"]
        key = name if name in offsets else self.roots[name]
        if key not in offsets:
            raise RuntimeError(f"memory plan has no offset for {name}")
        return f"(({ctype} *)(arena + {offsets[key]}))"

    def constant(self, v: Value) -> str:
        if v.name in self.const_symbols:
            return self.const_symbols[v.name]
        symbol = self.namer(v.name, prefix=f"{self.opt.name}_w_")
        self._add_weight(symbol, C_TYPES[v.dtype], v.data)
        self.const_symbols[v.name] = symbol
        return symbol

    def layer_const(self, key: str, suffix: str, data: np.ndarray) -> str:
        symbol = self.namer(f"{key}_{suffix}")
        self._add_weight(symbol, C_TYPES[str(data.dtype)], data)
        return symbol

    def _add_weight(self, symbol: str, ctype: str, data: np.ndarray) -> None:
        self.weights.append(const_array(ctype, symbol, data, self.align))
        self.weight_decls.append(f"extern const {ctype} {symbol}[{np.asarray(data).size}];")
        self.weight_bytes += int(np.asarray(data).nbytes)

    def scratch(self, op: Op) -> tuple[str, int]:
        entry = self.plan.get("scratch", {}).get(op.name)
        if not entry or not entry.get("size"):
            return "NULL", 0
        return f"(arena + {entry['offset']})", int(entry["size"])

    # ---- files ---------------------------------------------------------------------------------
    def write(self) -> GeneratedModel:
        name = self.opt.name
        body, layers = self.layers()
        files = {
            f"{name}.h": self.header().encode(),
            f"{name}.c": self.source(body).encode(),
            f"{name}_weights.c": self.weights_source().encode(),
        }
        used = [c.kernel for c in self.choices.values() if not c.is_view]
        tinyc_sources = runtime_c.closure(s for k in used if k.source != "cmsis-nn" for s in k.sources)
        cmsis_sources = [s for s in runtime_c.closure(s for k in used if k.source == "cmsis-nn" for s in k.sources)
                         if s not in tinyc_sources]
        runtime = {"tinyc": [f"runtime_c/{s}" for s in tinyc_sources],
                   "cmsis-nn": [f"runtime_c/{s}" for s in cmsis_sources]}
        for rel, data in runtime_c.runtime_files(tinyc_sources + cmsis_sources).items():
            files[f"runtime_c/{rel}"] = data
        model_sources = sorted(k for k in files if k.endswith(".c") and not k.startswith("runtime_c/"))
        build = BuildSources(model_sources, runtime["tinyc"], runtime["cmsis-nn"])
        files.update(build_files(name, build, self.target, self.opt.cmsis_nn))
        kernels = sorted({row["kernel"] for row in layers if row["kernel"] != "view"})
        report = {
            "model": name,
            "target": self.target.name,
            "arena_bytes": self.plan["arena_bytes"],
            "arena_lower_bound": self.plan["lower_bound"],
            "weight_bytes": self.weight_bytes,
            "macs": sum(row["macs"] for row in layers),
            "estimated_instructions": sum(row["estimated_instructions"] for row in layers),
            "kernels": kernels,
            "runtime_sources": runtime,
            "layers": layers,
            "plan": {k: self.plan[k] for k in ("strategy", "alignment") if k in self.plan},
        }
        if "accuracy" in self.g.meta:  # a float model quantised by tinyc: int8 vs float, per layer
            report["accuracy"] = _finite_json(self.g.meta["accuracy"])
        if "calibration" in self.g.meta:
            report["calibration"] = self.g.meta["calibration"]
        files["report.json"] = (json.dumps(report, indent=2, sort_keys=True) + "\n").encode()
        files["report.md"] = render_markdown(report).encode()
        return GeneratedModel(files, report, self.plan, self.g, kernels, build)

    def layers(self) -> tuple[list[str], list[dict]]:
        body: list[str] = []
        rows: list[dict] = []
        for index, op in enumerate(self.g.ops):
            choice = self.choices[op.name]
            out = op.outputs[0]
            row = {"index": index, "node": op.name, "op": op.kind, "kernel": "view",
                   "kernel_source": choice.source, "macs": layer_macs(op, self.g), "weight_bytes": sum(
                       self.g.values[n].nbytes for n in op.inputs if n and self.g.values[n].is_const),
                   "output": out, "output_bytes": self.g.values[out].nbytes,
                   "output_offset": self._offset_text(out), "scratch_bytes": 0,
                   "estimated_instructions": self.target.estimate_instructions(choice.kernel.cost_class,
                                                                               choice.work)}
            if choice.is_view:
                body.append(f"    {comment(f'{op.name}: {op.kind} (a view: no code, same bytes)')}")
                rows.append(row)
                continue
            fn = choice.function
            row["kernel"] = fn
            row["scratch_bytes"] = self.scratch(op)[1]
            ctx = LayerContext(self.g, self.pointer, self.layer_const, self.scratch,
                               key=self.namer(f"{self.opt.name}_l{index}", prefix=""), function=fn,
                               target=self.target)
            stmts = choice.kernel.emit(op, ctx)
            body.append(f"    {comment(f'{op.name}: {op.kind} -> {fn}')}")
            if self.opt.profile:
                body.append(f"    TINYC_PROFILE_BEGIN({index}, \"{_c_string(op.name)}\");")
            body.append("    {")
            body.extend(f"        {s}" for s in stmts)
            body.append("    }")
            if self.opt.profile:
                body.append(f"    TINYC_PROFILE_END({index});")
            rows.append(row)
        body.extend(self.output_copies())
        return body, rows

    def _offset_text(self, name: str) -> str:
        param = self.external_param(name)
        if param is not None:
            return f"caller:{param}"
        offsets = self.plan["offsets"]
        key = name if name in offsets else self.roots[name]
        return str(offsets.get(key, "?"))

    def output_copies(self) -> list[str]:
        """Graph outputs that share storage with an input or another output need a copy."""
        lines = []
        for out in self.g.outputs:
            src = self.pointer(out)
            if src != self.out_params[out]:
                nbytes = self.g.values[out].nbytes
                lines.append(f"    {comment(f'output {out} is a view of another buffer: copy it')}")
                lines.append(f"    memcpy({self.out_params[out]}, {src}, {nbytes});")
        return lines

    def signature(self) -> str:
        args = []
        for n in self.g.inputs:
            args.append(f"const {C_TYPES[self.g.values[n].dtype]} *{self.in_params[n]}")
        for n in self.g.outputs:
            args.append(f"{C_TYPES[self.g.values[n].dtype]} *{self.out_params[n]}")
        if self.opt.arena == "caller":
            args.append("uint8_t *arena")
        return f"int {self.opt.name}_invoke({', '.join(args)})"

    def header(self) -> str:
        up = self.opt.name.upper()
        guard = f"{up}_H"
        lines = [f"/* Generated by tinyc for target {self.target.name}. Do not edit. */",
                 f"#ifndef {guard}", f"#define {guard}", "", "#include <stdint.h>", "",
                 f"/* Bytes of the activation arena (aligned to {self.align}); the planner's lower bound "
                 f"is {self.plan['lower_bound']}. */",
                 f"#define {up}_ARENA_SIZE {self.plan['arena_bytes']}",
                 f"#define {up}_ARENA_ALIGN {self.align}",
                 f"#define {up}_NUM_INPUTS {len(self.g.inputs)}",
                 f"#define {up}_NUM_OUTPUTS {len(self.g.outputs)}", ""]
        for kind, names in (("INPUT", self.g.inputs), ("OUTPUT", self.g.outputs)):
            for i, n in enumerate(names):
                v = self.g.values[n]
                p = f"{up}_{kind}{i}"
                lines.append(comment(f"{kind.lower()} {i}: {n!r} {v.dtype} {list(v.shape)} {v.layout}"))
                lines.append(f"#define {p}_SIZE {v.size}")
                lines.append(f"#define {p}_BYTES {v.nbytes}")
                lines.append(f"#define {p}_RANK {len(v.shape)}")
                for d, dim in enumerate(v.shape):
                    lines.append(f"#define {p}_DIM{d} {dim}")
                if v.quant is not None and v.quant.axis is None:
                    lines.append(f"#define {p}_SCALE {c_float(v.quant.scale[0])}")
                    lines.append(f"#define {p}_ZERO_POINT {v.quant.zero_point[0]}")
                lines.append("")
        lines += [f"#define {up}_OK 0", f"#define {up}_KERNEL_ERROR 1", "",
                  "#ifdef __cplusplus", 'extern "C" {', "#endif", "",
                  "/* Runs one inference. Returns 0 on success, nonzero if a kernel rejected its arguments."]
        if self.opt.arena == "caller":
            lines.append(f"   arena: {up}_ARENA_SIZE bytes, aligned to {up}_ARENA_ALIGN, owned by the caller. */")
        else:
            lines.append("   The arena is a static array inside the model (not reentrant). */")
        lines += [f"{self.signature()};", "", "#ifdef __cplusplus", "}", "#endif", "", f"#endif /* {guard} */", ""]
        return "\n".join(lines)

    def source(self, body: list[str]) -> str:
        name, up = self.opt.name, self.opt.name.upper()
        lines = [f"/* Generated by tinyc for target {self.target.name}: one call per layer. Do not edit. */",
                 "#include <stddef.h>", "#include <stdint.h>", "#include <string.h>", "",
                 '#include "arm_nnfunctions.h"', '#include "tinyc_kernels.h"', f'#include "{name}.h"', ""]
        if self.opt.profile:
            lines += ['#include "tinyc_profile.h"', ""]
        lines += ["#define TINYC_STATUS_KERNEL_ERROR 1", ""]
        lines += ["#if defined(__GNUC__) || defined(__clang__)",
                  "#define TINYC_ALIGN(n) __attribute__((aligned(n)))", "#else", "#define TINYC_ALIGN(n)",
                  "#endif", ""]
        lines += self.weight_decls + [""]
        if self.opt.arena == "static":
            lines += [f"static uint8_t {name}_arena[{up}_ARENA_SIZE > 0 ? {up}_ARENA_SIZE : 1] "
                      f"TINYC_ALIGN({self.align});", ""]
        lines.append(f"{self.signature()}")
        lines.append("{")
        if self.opt.arena == "static":
            lines.append(f"    uint8_t *arena = {name}_arena;")
        lines.append("    (void)arena;")
        read = {n for op in self.g.ops for n in op.inputs} | set(self.g.outputs)
        for n in self.g.inputs:
            if n not in read:  # the model declares it but computes nothing from it
                lines.append(f"    (void){self.in_params[n]};")
        lines.extend(body)
        lines.append(f"    return {up}_OK;")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def weights_source(self) -> str:
        lines = [f"/* Generated by tinyc: constant data of model {self.opt.name} (flash). Do not edit. */",
                 "#include <stdint.h>", "",
                 "#if defined(__GNUC__) || defined(__clang__)",
                 "#define TINYC_ALIGN(n) __attribute__((aligned(n)))", "#else", "#define TINYC_ALIGN(n)",
                 "#endif", ""]
        # Declarations first so every definition has a prior prototype (-Wmissing-variable-declarations).
        lines += self.weight_decls + [""]
        lines += self.weights
        return "\n".join(lines)


def _c_string(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
