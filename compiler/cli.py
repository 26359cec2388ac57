"""The `tinyc` command line. Each command is a thin layer over tinyc.driver.

User errors (TinycError) print one line `error: ...` and exit with code 2, never a traceback.
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tinyc")
def main() -> None:
    """tinyc: compile ONNX models to small, fast C for Arm Cortex-M."""


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@input_shape_option
@_user_errors
def inspect(model: str, as_json: bool, input_shapes: tuple[str, ...]) -> None:
    """Summarise MODEL: inputs/outputs with quantisation, ops, MACs, parameters, unsupported ops."""
    from .driver import parse_input_shapes
    from .inspect_model import format_summary, summarize
    summary = summarize(model, input_shapes=parse_input_shapes(input_shapes) or None)
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    else:
        click.echo(format_summary(summary))


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("-p", "--passes", default="", help="Comma-separated pass names, run in order "
              "(default: none; 'default' = the full pipeline).")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write the IR here instead of stdout.")
@click.option("--print-after-all", is_flag=True, help="Print the IR after every pass (to stdout).")
@click.option("--elide-constants", is_flag=True, help="Print large constants as elided resources.")
@input_shape_option
@_user_errors
def opt(model: str, passes: str, output: str | None, print_after_all: bool, elide_constants: bool,
        input_shapes: tuple[str, ...]) -> None:
    """Read MODEL (ONNX or textual IR), run passes, print tinyc IR."""
    from tinyc import passes as registry
    from .driver import load_graph, lower, parse_input_shapes
    from .textir import print_graph
    names = [p.strip() for p in passes.split(",") if p.strip()]
    if names == ["default"]:
        names = list(registry.DEFAULT_PIPELINE)
    graph = load_graph(model, parse_input_shapes(input_shapes) or None)

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
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@main.command()
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--target", default="ref", show_default=True,
              help="ref (reference interpreter), host (compiled C on this machine), or a Cortex-M core.")
@click.option("--input", "input_path", required=True, type=click.Path(dir_okay=False),
              help=".npy (one input) or .npz keyed by input name; a batch adds a leading axis.")
@click.option("--output", "output_path", required=True, type=click.Path(dir_okay=False),
              help=".npy (one output) or .npz keyed by output name.")
@input_shape_option
@_user_errors
def run(model: str, target: str, input_path: str, output_path: str, input_shapes: tuple[str, ...]) -> None:
    """Run MODEL on inputs and write its outputs."""
    from . import tensor_io
    from .driver import input_specs, load_graph, lower, parse_input_shapes, run_reference
    graph = load_graph(model, parse_input_shapes(input_shapes) or None)
    arrays = tensor_io.read_inputs(input_path, input_specs(graph))
    if target != "ref":
        raise TinycError(f"unknown target {target!r}; this build runs --target ref")
    lowered = lower(graph)
    outputs = run_reference(lowered, arrays)
    tensor_io.write_outputs(output_path, outputs)


if __name__ == "__main__":
    main()
