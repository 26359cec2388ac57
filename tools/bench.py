"""`tinyc bench` (also `python -m tinyc.tools.bench`): the MLPerf Tiny models on emulated Cortex-M
cores, measured and compared with TensorFlow Lite Micro + CMSIS-NN on Cortex-M4.

For every model and target: compile time (lowering + code generation, in process), executed
instructions of one inference of TFLM's deterministic input pattern (exact counts from our QEMU
plugin), instructions per MAC, flash (whole firmware, and the model's code + kernels without the
weights and without the test harness), weight bytes, RAM (arena + stack + the model's and kernels'
static data), arena and its lower bound, the inference's peak stack, and whether the outputs equal
the reference interpreter's bit for bit (and TFLM's golden outputs, when given). docs/benchmarks.md
says how each figure is measured.

    run_bench(models, targets, ...) -> dict          the JSON document
    format_markdown(result) -> str                   the tables
    write_reports(result, out_dir)                   bench.json and bench.md
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from tinyc import __version__
from tinyc.build import check_cmsis_nn
from tinyc.codegen import CodegenOptions
from tinyc.driver import build_and_run, generate_for_target, load_graph, lower_for_codegen
from tinyc.emulator import emulated_targets
from tinyc.errors import TinycError
from tinyc.interpreter import run as run_reference
from tinyc.ptq import Precision
from tinyc.verify_host import input_range

# ---------------------------------------------------------------------------------------------
# The models and TFLM's figures for them

FORMS = ("qop", "qdq")


@dataclass(frozen=True)
class BenchModel:
    key: str
    title: str
    directory: str       # under the MLPerf Tiny models directory
    stem: str            # file name without _<form>.onnx; also the .tflite name
    tflm_name: str       # key in tflm_outputs.json ("" when TFLM's outputs are not known)

    def path(self, models_dir: Path, form: str) -> Path:
        return Path(models_dir) / self.directory / f"{self.stem}_{form}.onnx"


MODELS = {m.key: m for m in (
    BenchModel("kws", "KWS DS-CNN", "kws", "kws_ref_model", "kws_ref_model"),
    BenchModel("vww", "VWW MobileNetV1-0.25", "vww", "vww_96_int8", "vww_96_int8"),
    BenchModel("ic", "IC ResNet-8", "ic", "pretrainedResnet_quant", "pretrainedResnet_quant"),
    BenchModel("ad", "AD FC autoencoder", "ad", "ad01_int8", "ad01_int8"),
    BenchModel("sww", "SWW streaming wake word", "sww", "str_ww_ref_model", ""),
)}


@dataclass(frozen=True)
class TflmFigures:
    """TFLM + CMSIS-NN on Cortex-M4 (the reference submission's build): executed instructions per
    inference, arena bytes, stack bytes (None: not measured), flash bytes of the whole image, bytes of
    the .tflite flatbuffer, flash bytes of TFLM's runtime and kernels (the image without the model),
    and the model's multiply-accumulates."""
    instructions: int
    arena: int
    stack: int | None
    flash: int
    flatbuffer: int
    runtime_flash: int
    macs: int | None


TFLM_CORTEX_M4 = {
    "kws": TflmFigures(7_696_400, 22_820, 1_764, 148_408, 53_940, 76_359, 2_656_768),
    "vww": TflmFigures(24_101_961, 100_708, 1_764, 427_760, 333_292, 76_359, 7_489_664),
    "ic": TflmFigures(29_865_659, 54_996, None, 187_696, 98_500, 71_121, 12_501_632),
    "ad": TflmFigures(582_981, 2_580, None, 319_268, 276_980, 26_577, 264_192),
}
TFLM_TARGET = "cortex-m4"
MAC_OPS = ("conv2d", "depthwise_conv2d", "fully_connected")

# The issue's goals: tinyc's figure / TFLM's figure must not exceed these.
GOALS = {
    "instructions": 0.95,        # vs TFLM's instructions per inference (Cortex-M4 only)
    "arena": 0.8,                # vs TFLM's arena
    "flash_non_weights": 0.3,    # tinyc's flash other than weights vs TFLM's runtime flash
    "weights": 1.0,              # tinyc's weight bytes vs the flatbuffer
}


def model_key(path: str | Path) -> str | None:
    """The MLPerf Tiny model a file is (by its name), or None."""
    name = Path(path).name
    return next((m.key for m in MODELS.values() if name.startswith(m.stem)), None)


# ---------------------------------------------------------------------------------------------
# Inputs

def tflm_input_pattern(count: int) -> np.ndarray:
    """TFLM's deterministic input: s = 0x12345678; repeat s = s * 1664525 + 1013904223 (mod 2^32),
    byte = s >> 24, as int8; `count` bytes in TFLite's (NHWC) tensor order."""
    out = np.empty(count, np.uint8)
    s = 0x12345678
    for i in range(count):
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        out[i] = s >> 24
    return out.view(np.int8)


def pattern_input(graph, name: str) -> np.ndarray:
    """The pattern for input `name` of a lowered graph: generated in NHWC order, transposed when the
    graph takes the input in NCHW."""
    v = graph.values[name]
    data = tflm_input_pattern(v.size)
    if v.dtype == "float32":  # a float model: the pattern's codes mapped over its input quantiser's range
        lo, hi = input_range(graph, name)
        data = (lo + (data.astype(np.float32) + 128.0) * np.float32((hi - lo) / 255.0)).astype(np.float32)
    elif v.dtype != "int8":
        raise TinycError(f"input {name!r} is {v.dtype}: the benchmark feeds int8 or float32 inputs")
    if len(v.shape) == 4 and v.layout != "NHWC":
        n, c, h, w = v.shape
        return data.reshape(n, h, w, c).transpose(0, 3, 1, 2).copy()
    return data.reshape(v.shape)


# ---------------------------------------------------------------------------------------------
# Resolving the models to run

def default_models_dir() -> Path | None:
    """../shared/models/mlperf_tiny next to the working directory or to the repository, if present."""
    repo = Path(__file__).resolve().parents[1]
    for candidate in (Path.cwd().parent / "shared" / "models" / "mlperf_tiny",
                      repo.parent / "shared" / "models" / "mlperf_tiny"):
        if candidate.is_dir():
            return candidate
    return None


def resolve_models(specs: list[str] | tuple[str, ...], models_dir: str | Path | None,
                   form: str) -> list[tuple[str | None, Path]]:
    """(key, file) per model: a spec is a model key (kws, vww, ic, ad, sww) looked up in models_dir,
    or the path of an ONNX (or textual IR) file. No specs: every key."""
    if form not in FORMS:
        raise TinycError(f"--form must be one of {', '.join(FORMS)}, not {form!r}")
    resolved = []
    for spec in specs or list(MODELS):
        if spec in MODELS:
            if models_dir is None:
                raise TinycError(f"model {spec!r}: no models directory; pass --models-dir (the "
                                 f"mlperf_tiny folder) or the model's file")
            path = MODELS[spec].path(Path(models_dir), form)
            if not path.is_file():
                raise TinycError(f"model {spec!r}: {path} not found; check --models-dir and --form")
            resolved.append((spec, path))
        elif Path(spec).is_file():
            resolved.append((model_key(spec), Path(spec)))
        else:
            raise TinycError(f"model {spec!r} is neither a file nor one of {', '.join(MODELS)}")
    return resolved


def default_tflm_outputs(models_dir: Path | None) -> Path | None:
    if models_dir is None:
        return None
    path = Path(models_dir).parent / "data" / "tflm_outputs.json"
    return path if path.is_file() else None


def load_tflm_outputs(path: str | Path | None) -> dict[str, list[int]]:
    """TFLM's int8 outputs for the pattern, by TFLM model name, from tflm_outputs.json."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
        return {name: list(entry["outputs_int8"]) for name, entry in data["models"].items()}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TinycError(f"--tflm-outputs {path}: not a tflm_outputs.json file ({exc})") from None


# ---------------------------------------------------------------------------------------------
# Measuring

def _lower(graph, input_layout: str, precision: Precision | None = None):
    """The lowered graph, taking 4-D inputs in NHWC when asked and possible; and the layout used."""
    if input_layout == "nhwc":
        try:
            return lower_for_codegen(graph, "nhwc", precision), "nhwc"
        except TinycError:
            pass  # the model cannot take NHWC inputs directly: feed them as the model declares
    return lower_for_codegen(graph, "model", precision), "model"


def bench_model(key: str | None, path: Path, targets: list[str], *, cmsis_nn: str | None = None,
                input_layout: str = "nhwc", tflm_outputs: dict[str, list[int]] | None = None,
                progress: Callable[[str], None] | None = None, precision: Precision | None = None) -> list[dict]:
    """One result row per target for the model in `path` (see module docstring)."""
    def new_row(target: str) -> dict:
        return {"model": key or path.stem, "file": str(path), "target": target,
                "kernels": "CMSIS-NN" if cmsis_nn else "runtime_c"}

    try:
        started = time.perf_counter()
        graph = load_graph(path)
        import_seconds = time.perf_counter() - started
        lowered, layout = _lower(graph, input_layout, precision)
        sample = {name: pattern_input(lowered, name) for name in lowered.inputs}
        reference = run_reference(lowered, sample)
    except TinycError as exc:  # the model cannot be benchmarked at all: one error row per target
        rows = [dict(new_row(target), error=str(exc)) for target in targets]
        for row in rows:
            if progress:
                progress(_progress_line(row))
        return rows
    tflm_golden = (tflm_outputs or {}).get(MODELS[key].tflm_name) if key else None
    rows = []
    for target in targets:
        row = dict(new_row(target), input_layout=layout, import_seconds=round(import_seconds, 3))
        try:
            options = CodegenOptions(name=f"{key or 'model'}_bench", target=target)
            started = time.perf_counter()
            compiled_graph, _ = _lower(graph, input_layout, precision)
            generated = generate_for_target(compiled_graph, options)
            row["compile_seconds"] = round(time.perf_counter() - started, 3)
            with tempfile.TemporaryDirectory(prefix="tinyc-bench-") as tmp:
                outputs, cost = build_and_run(lowered, [sample], options, Path(tmp), cmsis_nn)
            row.update(_measurements(generated.report, cost, lowered))
            row["bit_exact"] = all(np.array_equal(outputs[0][n], reference[n]) for n in lowered.outputs)
            row["matches_tflm"] = None if tflm_golden is None else (
                len(lowered.outputs) == 1
                and outputs[0][lowered.outputs[0]].reshape(-1).tolist() == list(tflm_golden))
            row.update(compare_with_tflm(row, key))
        except TinycError as exc:
            row["error"] = str(exc)
        rows.append(row)
        if progress:
            progress(_progress_line(row))
    return rows


def _measurements(report: dict, cost, graph) -> dict:
    fp = cost.footprint
    own_ram = sum(fp.get(part, {}).get("ram", 0) for part in ("model", "kernels"))
    # tinyc's arena holds no model input or output (the caller passes them); TFLM's arena does.
    io_bytes = sum(graph.values[n].nbytes for n in list(graph.inputs) + list(graph.outputs))
    # MACs as TFLM's figures count them: convolutions and fully connected layers (not pooling).
    macs = sum(int(layer["macs"]) for layer in report["layers"] if layer["op"] in MAC_OPS)
    return {
        "instructions": cost.instructions_per_inference,
        "exact_counts": cost.exact,
        "macs": macs,
        "macs_with_pooling": int(report["macs"]),
        "instructions_per_mac": round(cost.instructions_per_inference / macs, 3) if macs else None,
        "flash_bytes": cost.flash_bytes,
        "flash_non_weight_bytes": cost.flash_non_weight_bytes,
        "weight_bytes": int(report["weight_bytes"]),
        "ram_bytes": int(report["arena_bytes"]) + io_bytes + cost.inference_stack_bytes + own_ram,
        "arena_bytes": int(report["arena_bytes"]),
        "io_bytes": io_bytes,
        "arena_lower_bound": int(report["arena_lower_bound"]),
        "stack_bytes": cost.inference_stack_bytes,
        "footprint": fp,
        "elf": {"text": cost.text_bytes, "rodata": cost.rodata_bytes, "data": cost.data_bytes,
                "bss": cost.bss_bytes, "flash": cost.flash_bytes, "stack_whole_run": cost.stack_bytes},
        "board": cost.board,
    }


def compare_with_tflm(row: dict, key: str | None) -> dict:
    """Ratios tinyc / TFLM (Cortex-M4) and, on cortex-m4, whether each meets its goal. Instructions
    are compared on cortex-m4 only; memory figures on every core (for information)."""
    ref = TFLM_CORTEX_M4.get(key or "")
    if ref is None:
        return {"tflm": None, "ratios": {}, "goals_met": {}}
    ratios = {
        "arena": row["arena_bytes"] / ref.arena,
        "arena_with_io": (row["arena_bytes"] + row["io_bytes"]) / ref.arena,
        "flash_non_weights": row["flash_non_weight_bytes"] / ref.runtime_flash,
        "weights": row["weight_bytes"] / ref.flatbuffer,
        "ram": row["ram_bytes"] / (ref.arena + ref.stack) if ref.stack else None,
        "stack": row["stack_bytes"] / ref.stack if ref.stack else None,
    }
    if row["target"] == TFLM_TARGET:
        ratios["instructions"] = row["instructions"] / ref.instructions
    ratios = {k: round(v, 4) for k, v in ratios.items() if v is not None}
    goals = {k: ratios[k] <= limit for k, limit in GOALS.items() if k in ratios} \
        if row["target"] == TFLM_TARGET else {}
    return {"tflm": asdict(ref), "ratios": ratios, "goals_met": goals}


def run_bench(models: list[tuple[str | None, Path]], targets: list[str], *, cmsis_nn: str | None = None,
              form: str = "qop", input_layout: str = "nhwc", tflm_outputs_path: str | Path | None = None,
              progress: Callable[[str], None] | None = None, precision: Precision | None = None) -> dict:
    """Benchmark every model on every target; the JSON document (see docs/benchmarks.md). `precision`
    applies to float models given as files (e.g. --calibration for a float ONNX file)."""
    runnable = emulated_targets()
    for target in targets:
        if target not in runnable:
            raise TinycError(f"--targets: {target!r} cannot be emulated; choose from {', '.join(runnable)}")
    if input_layout not in ("nhwc", "model"):
        raise TinycError(f"--input-layout must be nhwc or model, not {input_layout!r}")
    if cmsis_nn:
        cmsis_nn = str(check_cmsis_nn(cmsis_nn))
    tflm_outputs = load_tflm_outputs(tflm_outputs_path)
    rows = []
    for key, path in models:
        rows += bench_model(key, path, targets, cmsis_nn=cmsis_nn, input_layout=input_layout,
                            tflm_outputs=tflm_outputs, progress=progress, precision=precision)
    ok = [r for r in rows if "error" not in r]
    return {
        "tool": "tinyc bench",
        "tinyc_version": __version__,
        "form": form,
        "kernels": "CMSIS-NN" if cmsis_nn else "runtime_c",
        "cmsis_nn": cmsis_nn,
        "targets": list(targets),
        "goals": GOALS,
        "tflm_reference_target": TFLM_TARGET,
        "results": rows,
        "summary": {
            "rows": len(rows),
            "errors": len(rows) - len(ok),
            "bit_exact": sum(1 for r in ok if r["bit_exact"]),
            "all_bit_exact": bool(ok) and all(r["bit_exact"] for r in ok),
            # Judged on the reference core's rows only (None: no such row).
            "goals_met": {goal: (all(met) if met else None) for goal in GOALS
                          for met in [[r["goals_met"][goal] for r in ok if goal in r.get("goals_met", {})]]},
        },
    }


# ---------------------------------------------------------------------------------------------
# Reports

def _progress_line(row: dict) -> str:
    if "error" in row:
        return f"{row['model']} on {row['target']}: error: {row['error']}"
    return (f"{row['model']} on {row['target']} ({row['kernels']}): {row['instructions']:,} instructions, "
            f"arena {row['arena_bytes']:,} B, flash w/o weights {row['flash_non_weight_bytes']:,} B, "
            f"bit-exact {'yes' if row['bit_exact'] else 'NO'}")


def _n(value) -> str:
    return "n/a" if value is None else f"{value:,}"


def _ratio(row: dict, name: str) -> str:
    value = row.get("ratios", {}).get(name)
    if value is None:
        return "-"
    met = row.get("goals_met", {}).get(name)
    return f"{value:.3f}" + ("" if met is None else (" ok" if met else " MISS"))


def format_markdown(result: dict) -> str:
    """The measurements table and the comparison with TFLM + CMSIS-NN on Cortex-M4."""
    lines = [f"tinyc {result['tinyc_version']} bench: {result['form']} models, kernels: {result['kernels']}"
             + (f" ({result['cmsis_nn']})" if result.get("cmsis_nn") else ""), "",
             "| model | target | compile s | instructions | instr/MAC | flash | flash w/o weights | weights "
             "| RAM | arena | arena LB | stack | bit-exact | = TFLM |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    errors = []
    for r in result["results"]:
        if "error" in r:
            errors.append(f"- {r['model']} on {r['target']}: {r['error']}")
            continue
        tflm = {None: "n/a", True: "yes", False: "NO"}[r["matches_tflm"]]
        lines.append(
            f"| {r['model']} | {r['target']} | {r['compile_seconds']:.2f} | {_n(r['instructions'])} | "
            f"{r['instructions_per_mac'] or 'n/a'} | {_n(r['flash_bytes'])} | "
            f"{_n(r['flash_non_weight_bytes'])} | "
            f"{_n(r['weight_bytes'])} | {_n(r['ram_bytes'])} | {_n(r['arena_bytes'])} | "
            f"{_n(r['arena_lower_bound'])} | {_n(r['stack_bytes'])} | {'yes' if r['bit_exact'] else 'NO'} | "
            f"{tflm} |")
    goals = result["goals"]
    lines += ["", f"Ratios tinyc / TFLM + CMSIS-NN on Cortex-M4 (goal in the header; instructions on "
                  f"{TFLM_TARGET} only):", "",
              f"| model | target | instructions (<= {goals['instructions']}) | arena (<= {goals['arena']}) | "
              f"flash w/o weights / TFLM runtime (<= {goals['flash_non_weights']}) | weights / flatbuffer "
              f"(<= {goals['weights']}) | arena + I/O | RAM / (arena + stack) | stack |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in result["results"]:
        if "error" in r or not r.get("ratios"):
            continue
        lines.append(f"| {r['model']} | {r['target']} | {_ratio(r, 'instructions')} | {_ratio(r, 'arena')} | "
                     f"{_ratio(r, 'flash_non_weights')} | {_ratio(r, 'weights')} | "
                     f"{_ratio(r, 'arena_with_io')} | "
                     f"{_ratio(r, 'ram')} | "
                     f"{_ratio(r, 'stack')} |")
    summary = result["summary"]
    runs = summary["rows"] - summary["errors"]
    failed = f" ({summary['errors']} failed to run)" if summary["errors"] else ""
    goals_met = ", ".join(f"{k} {'n/a' if v is None else 'yes' if v else 'NO'}"
                          for k, v in summary["goals_met"].items())
    lines += ["", f"bit-exact with the reference interpreter: {summary['bit_exact']} of {runs} runs{failed}; "
                  f"goals met on {TFLM_TARGET}: {goals_met}"]
    if errors:
        lines += ["", "Errors:", *errors]
    return "\n".join(lines) + "\n"


def write_reports(result: dict, out_dir: str | Path) -> tuple[Path, Path]:
    """bench.json and bench.md in out_dir (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / "bench.json", out / "bench.md"
    for path, text in ((json_path, json.dumps(result, indent=2) + "\n"), (md_path, format_markdown(result))):
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
    return json_path, md_path


def progress_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


if __name__ == "__main__":
    from tinyc.cli import bench
    bench(prog_name="python -m tinyc.tools.bench")
