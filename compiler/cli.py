"""The `tinyc` command line. Each command is a thin layer over tinyc.driver.

User errors (TinycError) print one line `error: ...` and exit with code 2, never a traceback.
Each command imports what it uses when it runs (deliberately: `tinyc --help` and option errors stay
fast without loading onnx, numpy and the compiler).
"""
from __future__ import annotations

import json
import os
import sys
import traceback
from functools import wraps
from pathlib import Path

import click

from . import __version__
from .errors import TinycError

EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3


def _user_errors(fn):
    """Turn TinycError into one line on stderr and exit code 2; other exceptions are tinyc bugs."""
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except TinycError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except KeyboardInterrupt:
            click.echo("error: interrupted", err=True)
            sys.exit(130)
        except MemoryError:
            click.echo("error: this machine ran out of memory compiling the model; the model is too large "
                       "for tinyc here", err=True)
            sys.exit(EXIT_USER_ERROR)
        except Exception as exc:  # a bug in tinyc: say so, show the trace only on request
            if os.environ.get("TINYC_DEBUG"):
                traceback.print_exc()
            click.echo(f"internal error (a tinyc bug, please report; TINYC_DEBUG=1 shows the trace): "
                       f"{exc.__class__.__name__}: {exc}", err=True)
            sys.exit(EXIT_INTERNAL_ERROR)
    return wrapper


input_shape_option = click.option(
    "--input-shape", "input_shapes", multiple=True, metavar="NAME=D1,D2,..",
    help="Fix a dynamic input shape, e.g. --input-shape input=1,3,96,96 (repeatable).")


class _OneLineErrors(click.Group):
    """Option and argument mistakes are one line `error: ...` with exit code 2, like every other user
    error (click's own report is a usage block of three lines)."""

    def main(self, *args, standalone_mode: bool = True, **kwargs):
        if not standalone_mode:
            return super().main(*args, standalone_mode=False, **kwargs)
        try:
            code = super().main(*args, standalone_mode=False, **kwargs)
        except click.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see {ctx.command_path} --help)" if ctx is not None else ""
            click.echo(f"error: {exc.format_message()}{where}", err=True)
            sys.exit(EXIT_USER_ERROR)
        except click.Abort:
            click.echo("error: aborted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyc")
def main() -> None:
    """tinyc: compile ONNX models to small, fast C for Arm Cortex-M."""


def precision_options(fn):
    """--precision and the calibration options, passed to the command as one `precision`
    (tinyc.ptq.Precision)."""
    @wraps(fn)
    def wrapper(*args, precision_name, calibration, calibration_method, bias_correction, equalization, **kwargs):
        from .ptq import Precision
        if calibration == "random":
            click.echo("warning: --calibration random quantises with ranges from random inputs, which say "
                       "nothing about real data: expect poor int8 accuracy; give real samples", err=True)
        return fn(*args, precision=Precision(precision_name, calibration, calibration_method, bias_correction,
                                             equalization, show_progress=True), **kwargs)
    options = [
        click.option("--precision", "precision_name", type=click.Choice(["int8", "float32"]), default="int8",
                     show_default=True, help="int8: integer kernels (a float model needs --calibration); float32: "
                     "float kernels, for a float model."),
        click.option("--calibration", default=None, metavar="DATA",
                     help="Quantise a float model from these samples: an .npz keyed by input name (leading batch "
                     "axis), a folder of .npy/.npz samples, or 'random' (poor accuracy)."),
        click.option("--calibration-method", type=click.Choice(["minmax", "percentile", "entropy", "auto"]),
                     default="minmax", show_default=True, help="How activation ranges are chosen (auto: per "
                     "tensor, the one with the best SQNR on the calibration data)."),
        click.option("--bias-correction/--no-bias-correction", default=True, show_default=True,
                     help="Correct biases for the mean error of the weights' rounding."),
        click.option("--equalization/--no-equalization", default=True, show_default=True,
                     help="Cross-layer equalisation of consecutive convolutions before calibration."),
    ]
    for option in reversed(options):
        wrapper = option(wrapper)
    return wrapper


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (every refused op included).")
@click.option("--target", default="cortex-m4", show_default=True, help="Core to check compilation for.")
@input_shape_option
@precision_options
@_user_errors
def inspect(model: str, as_json: bool, target: str, input_shapes: tuple[str, ...], precision) -> None:
    """Summarise MODEL: inputs/outputs with quantisation, ops, MACs, parameters, unsupported ops, and
    whether it compiles for --target (and why not)."""
    from .driver import parse_input_shapes
    from .inspect_model import format_summary, summarize
    summary = summarize(model, input_shapes=parse_input_shapes(input_shapes) or None, target=target,
                        precision=precision)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        click.echo(format_summary(summary))


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-p", "--passes", default="", help="Comma-separated pass names, run in order "
              "(default: none; 'default' = the lowering pipeline, 'target' = select-kernels,plan-memory).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the IR here instead of stdout.")
@click.option("--print-after-all", is_flag=True, help="Print the IR after every pass (to stdout).")
@click.option("--elide-constants", is_flag=True, help="Print large constants as elided resources.")
@click.option("--target", default=None, help="Target of the target passes (select-kernels, plan-memory); "
              "default: the graph's meta target, else host.")
@input_shape_option
@_user_errors
def opt(model: str, passes: str, output: str | None, print_after_all: bool, elide_constants: bool,
        target: str | None, input_shapes: tuple[str, ...]) -> None:
    """Read MODEL (ONNX or textual IR), run passes, print tinyc IR."""
    from tinyc import passes as registry
    from .driver import load_graph, lower, parse_input_shapes
    from .textir import print_graph
    names = [p.strip() for p in passes.split(",") if p.strip()]
    names = [n for name in names for n in (registry.DEFAULT_PIPELINE if name == "default" else
                                            registry.TARGET_PIPELINE if name == "target" else [name])]
    graph = load_graph(model, parse_input_shapes(input_shapes) or None)
    if target is not None:
        from .targets import get as get_target
        graph.meta["target"] = get_target(target).name

    def after(name, g):
        click.echo(f"// ----- IR after {name} -----")
        click.echo(print_graph(g, elide_constants=elide_constants), nl=False)

    graph = lower(graph, names, after_pass=after if print_after_all else None)
    text = print_graph(graph, elide_constants=elide_constants)
    if output:
        _write_text_atomically(Path(output), text)
    elif not print_after_all:
        click.echo(text, nl=False)


def _write_text_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tinyc-tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise TinycError(f"cannot write {path}: {exc.strerror or exc}") from None


def compile_options(fn):
    """Options shared by compile, run and verify."""
    options = [
        click.option("--name", default="model", show_default=True, help="C name prefix of the model."),
        click.option("--arena", "arena_mode", type=click.Choice(["caller", "static"]), default="caller",
                     show_default=True, help="Who owns the activation arena."),
        click.option("--cmsis-nn", "cmsis_nn", type=click.Path(file_okay=False), default=None,
                     help="Build against a real CMSIS-NN checkout instead of runtime_c."),
        click.option("--input-layout", type=click.Choice(["model", "nchw", "nhwc"]), default="model",
                     show_default=True, help="Layout of 4-D inputs the caller passes."),
        click.option("--max-arena", type=click.IntRange(min=0), default=None, metavar="BYTES",
                     help="Fail if the activation arena needs more bytes (default: the target's RAM)."),
        input_shape_option,
    ]
    for option in reversed(options):
        fn = option(fn)
    return precision_options(fn)


def _codegen_options(target: str, name: str, arena_mode: str, max_arena: int | None, profile=False,
                     cmsis_nn: str | None = None):
    from .codegen import CodegenOptions
    if cmsis_nn:
        from .build import check_cmsis_nn
        cmsis_nn = str(check_cmsis_nn(cmsis_nn).resolve())
    return CodegenOptions(name=name, target=target, arena=arena_mode, max_arena=max_arena, profile=profile,
                          cmsis_nn=cmsis_nn or "")


@main.command("compile")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", default="cortex-m4", show_default=True, help="Core to compile for (or host).")
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output directory, created if missing (must be empty unless --force).")
@click.option("--force", is_flag=True, help="Replace an output directory tinyc wrote before (never one holding "
              "other files, the working directory or the model).")
@compile_options
@_user_errors
def compile_cmd(model, target, out_dir, force, name, arena_mode, cmsis_nn, input_layout, max_arena,
                input_shapes, precision):
    """Compile MODEL to C: OUT/<name>.h, <name>.c, <name>_weights.c, runtime_c/, Makefile, report."""
    import time
    from .driver import compile_graph, load_graph, parse_input_shapes
    from .output_dir import check_output_dir, write_output_dir
    start = time.perf_counter()
    out = Path(out_dir)
    check_output_dir(out, force, protect=[model])  # before the work: the same check guards the write
    graph = load_graph(model, parse_input_shapes(input_shapes) or None)
    generated = compile_graph(graph, _codegen_options(target, name, arena_mode, max_arena, cmsis_nn=cmsis_nn),
                              input_layout, precision)
    write_output_dir(generated.files, out, force=force, protect=[model])
    r = generated.report
    click.echo(f"{name}: arena {r['arena_bytes']:,} B (lower bound {r['arena_lower_bound']:,} B), "
               f"weights {r['weight_bytes']:,} B, {r['macs']:,} MACs, {len(r['layers'])} layers "
               f"-> {out}/ ({time.perf_counter() - start:.2f} s)")


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", default="ref", show_default=True,
              help="ref (reference interpreter), host (compiled C on this machine), or a Cortex-M core.")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help=".npy (one input) or .npz keyed by input name; a batch adds a leading axis.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help=".npy (one output) or .npz keyed by output name.")
@click.option("--profile", is_flag=True, help="On a Cortex-M target: print instructions per layer.")
@compile_options
@_user_errors
def run(model, target, input_path, output_path, profile, name, arena_mode, cmsis_nn, input_layout,
        max_arena, input_shapes, precision):
    """Run MODEL on inputs and write its outputs."""
    from . import driver, tensor_io
    if profile and target in ("ref", "host"):
        raise TinycError(f"--profile counts instructions per layer on an emulated core; --target {target} has "
                         f"none (use --target cortex-m4 or another Cortex-M core)")
    graph = driver.load_graph(model, driver.parse_input_shapes(input_shapes) or None)
    options = None if target == "ref" else _codegen_options(target, name, arena_mode, max_arena, profile=profile)
    outputs, cost = driver.run(graph, input_path, target, options, input_layout, cmsis_nn, precision)
    if cost:
        click.echo(cost)
    tensor_io.write_outputs(output_path, outputs)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--inputs", "inputs_path", type=click.Path(dir_okay=False), default=None,
              help="Real inputs to check too (.npy/.npz, batches allowed).")
@click.option("--count", default=20, show_default=True, help="Random inputs to check.")
@click.option("--seed", default=0, show_default=True)
@click.option("--sanitize", is_flag=True, help="Build with -fsanitize=address,undefined.")
@click.option("--float-reference", is_flag=True, help="For a float model quantised with --calibration: how far "
              "each layer of the int8 model is from the float one (SQNR, cosine), worst layer named.")
@compile_options
@_user_errors
def verify(model, inputs_path, count, seed, sanitize, float_reference, name, arena_mode, cmsis_nn, input_layout,
           max_arena, input_shapes, precision):
    """Build MODEL's C for this machine and prove it equals the reference interpreter bit for bit."""
    from .driver import load_graph, parse_input_shapes
    from .verify_host import format_accuracy, format_table, verify_model
    graph = load_graph(model, parse_input_shapes(input_shapes) or None)
    result = verify_model(model, graph, _codegen_options("host", name, arena_mode, max_arena),
                          count=count, seed=seed, inputs_path=inputs_path, input_layout=input_layout,
                          cmsis_nn=cmsis_nn, sanitize=sanitize, precision=precision)
    click.echo(format_table(result))
    if float_reference:
        if result.get("accuracy") is None:
            raise TinycError("--float-reference compares a float model with its int8 quantisation: give a float "
                             "model and --calibration DATA")
        click.echo(format_accuracy(result["accuracy"]))
    if not result["agrees"]:
        what = "within 1e-5 of its largest output" if result.get("float32") else "bit for bit"
        click.echo(f"error: the compiled C differs from the reference interpreter ({what})", err=True)
        sys.exit(1)


@main.command()
@click.argument("models", nargs=-1)
@click.option("--models-dir", type=click.Path(file_okay=False), default=None,
              help="The MLPerf Tiny models folder (default: ../shared/models/mlperf_tiny when present).")
@click.option("--form", type=click.Choice(["qop", "qdq"]), default="qop", show_default=True,
              help="Which ONNX form of the models: QOperator or QDQ.")
@click.option("--targets", "targets_csv", default="cortex-m4", show_default=True,
              help="Comma-separated cores to run on (emulated).")
@click.option("--cmsis-nn", "cmsis_nn", type=click.Path(file_okay=False), default=None,
              help="Build against a real CMSIS-NN checkout instead of runtime_c.")
@click.option("--input-layout", type=click.Choice(["nhwc", "model"]), default="nhwc", show_default=True,
              help="Feed 4-D inputs in NHWC like TFLM (when the model allows) or as the model declares.")
@click.option("--tflm-outputs", type=click.Path(dir_okay=False), default=None,
              help="tflm_outputs.json to check outputs against (default: next to the models dir).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Write bench.json and bench.md here.")
@precision_options
@_user_errors
def bench(models, models_dir, form, targets_csv, cmsis_nn, input_layout, tflm_outputs, out_dir, precision):
    """Measure MODELS (kws, vww, ic, ad, sww or ONNX files; default: all five MLPerf Tiny models) on
    emulated cores and compare with TFLM + CMSIS-NN on Cortex-M4. Exit 1 unless every run is
    bit-exact."""
    from tinyc.tools import bench as tool
    directory = Path(models_dir) if models_dir else tool.default_models_dir()
    resolved = tool.resolve_models(list(models), directory, form)
    targets = [t.strip() for t in targets_csv.split(",") if t.strip()]
    result = tool.run_bench(resolved, targets, cmsis_nn=cmsis_nn, form=form, input_layout=input_layout,
                            tflm_outputs_path=tflm_outputs or tool.default_tflm_outputs(directory),
                            progress=tool.progress_to_stderr, precision=precision)
    click.echo(tool.format_markdown(result), nl=False)
    if out_dir:
        json_path, md_path = tool.write_reports(result, out_dir)
        click.echo(f"wrote {json_path} and {md_path}")
    summary = result["summary"]
    if summary["errors"] or not summary["all_bit_exact"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
