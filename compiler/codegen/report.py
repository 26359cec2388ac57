"""Per-layer cost figures and the human-readable report of a compiled model."""
from __future__ import annotations

import numpy as np

from ..ir import Graph, Op
from ..ops import attr


def layer_macs(op: Op, graph: Graph) -> int:
    """Multiply-accumulates of one layer (0 for ops that only move bytes)."""
    out = graph.values[op.outputs[0]]
    if op.kind in ("conv2d", "depthwise_conv2d"):
        w = graph.values[op.inputs[1]]
        out_channels = w.shape[3] if w.layout == "IHWO" else w.shape[0]
        return out.size * (int(np.prod(w.shape, dtype=np.int64)) // out_channels)
    if op.kind == "fully_connected":
        return out.size * graph.values[op.inputs[1]].shape[1]
    if op.kind == "matmul":
        return out.size * graph.values[op.inputs[0]].shape[-1]
    if op.kind in ("avg_pool2d", "max_pool2d"):
        kh, kw = attr(op, "kernel")
        return out.size * kh * kw
    return 0


def render_markdown(report: dict) -> str:
    lines = [f"# tinyc report: {report['model']} ({report['target']})", "",
             f"- arena: {report['arena_bytes']:,} bytes (lower bound of this schedule: "
             f"{report['arena_lower_bound']:,} bytes)",
             f"- weights and constants (flash): {report['weight_bytes']:,} bytes",
             f"- MACs per inference: {report['macs']:,}",
             f"- kernels: {', '.join(report['kernels'])}", ""]
    gap = report["arena_bytes"] - report["arena_lower_bound"]
    if gap > 0:
        lines += [f"The arena is {gap:,} bytes above the lower bound: the best placement found by the "
                  f"planner's strategies could not pack the live tensors of every step without gaps.", ""]
    else:
        lines += ["The arena equals the lower bound: no schedule-preserving plan can use less.", ""]
    lines += ["| # | ONNX node | op | kernel | MACs | weight bytes | output bytes | arena offset | scratch |",
              "|---:|---|---|---|---:|---:|---:|---:|---:|"]
    for row in report["layers"]:
        lines.append(f"| {row['index']} | `{row['node']}` | {row['op']} | {row['kernel']} | {row['macs']:,} | "
                     f"{row['weight_bytes']:,} | {row['output_bytes']:,} | {row['output_offset']} | "
                     f"{row['scratch_bytes']:,} |")
    if "accuracy" in report:
        lines += ["", *accuracy_markdown(report["accuracy"], report.get("calibration", {}))]
    return "\n".join(lines) + "\n"


def accuracy_markdown(accuracy: dict, calibration: dict) -> list[str]:
    """How far the int8 model is from the float model it was quantised from, per layer."""
    def db(value) -> str:
        return "exact" if value is None or value == float("inf") else f"{value:.1f}"
    source = f" ({calibration['samples']} samples of {calibration['source']}, ranges: {calibration['method']})" \
        if calibration else ""
    lines = ["## Quantisation: int8 against the float model",
             f"Calibrated{source}; compared over {accuracy['samples']} of those samples. SQNR is the "
             "float tensor's energy over the quantisation error's, in dB (higher is better; exact: no error).", "",
             "| layer | SQNR dB | cosine | range |", "|---|---:|---:|---|"]
    for row in accuracy["layers"]:
        lines.append(f"| `{row['node']}` | {db(row['sqnr_db'])} | {row['cosine']:.5f} | {row['method']} |")
    for row in accuracy["outputs"]:
        lines.append(f"| output `{row['output']}` | {db(row['sqnr_db'])} | | |")
    if accuracy["worst_layer"]:
        lines += ["", f"Worst layer: `{accuracy['worst_layer']}`."]
    return lines
