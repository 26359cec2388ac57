"""Compile time against model size (`python -m tinyc.tools.compile_time`).

Generates a synthetic chain of depthwise-separable residual blocks as a real ONNX QDQ model (the
form onnxruntime's quantiser and TFLite converters write) and compiles it for a core through the
same stages as `tinyc compile` (import, lowering, code generation; in process, files not written),
at several sizes, printing layers against seconds. It also times the shared MLPerf Tiny models (QDQ
and QOperator forms) so a change can be checked to slow none of them down.

The chain: int8 input [1, 3, 16, 16] -> stem conv 3x3 (3 -> C) + ReLU -> blocks -> global average
pool -> flatten -> Gemm (C -> 10). A block is depthwise 3x3 + ReLU, pointwise 1x1 + ReLU, and the
residual add of the block's input. Every activation is QuantizeLinear -> DequantizeLinear (int8, per
tensor), every weight an int8 per-output-channel initializer + DequantizeLinear, every bias an int32
initializer (scale s_x * s_w[c]) + DequantizeLinear. Compiled, a chain of B blocks has 3 B + 5 layers
(the input's NCHW -> NHWC transpose, the stem, the blocks, the pool, the flatten view and the fully
connected layer).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from tinyc.codegen import CodegenOptions
from tinyc.driver import generate_for_target, load_graph, lower_for_codegen
from tinyc.tools.bench import default_models_dir

LAYERS_OUTSIDE_BLOCKS = 5
LAYERS_PER_BLOCK = 3
DEFAULT_LAYERS = (35, 125, 485, 1925, 2000)
CLASSES = 10
IN_CHANNELS = 3


def blocks_for(layers: int) -> int:
    """The number of blocks whose compiled chain has at least `layers` layers."""
    return max(0, -(-(layers - LAYERS_OUTSIDE_BLOCKS) // LAYERS_PER_BLOCK))


def chain_layers(blocks: int) -> int:
    return LAYERS_PER_BLOCK * blocks + LAYERS_OUTSIDE_BLOCKS


class _QdqBuilder:
    """Appends QDQ nodes and initializers; every name derives from a per-layer prefix."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, name: str, array: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def qdq(self, x: str, name: str, scale: float, zero_point: int) -> tuple[str, float]:
        """QuantizeLinear then DequantizeLinear of the float tensor `x` (int8, per tensor)."""
        s = self.init(f"{name}_scale", np.float32(scale))
        z = self.init(f"{name}_zp", np.int8(zero_point))
        self.nodes.append(helper.make_node("QuantizeLinear", [x, s, z], [f"{name}_q"], name=f"{name}_Q"))
        self.nodes.append(helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [f"{name}_dq"],
                                           name=f"{name}_DQ"))
        return f"{name}_dq", float(np.float32(scale))

    def weight(self, name: str, shape: tuple[int, ...], axis: int = 0) -> tuple[str, np.ndarray]:
        """An int8 weight, symmetric per output channel (`axis`), dequantized; returns its scales."""
        data = self.rng.integers(-127, 128, size=shape, dtype=np.int8)
        scales = self.rng.uniform(0.002, 0.01, size=shape[axis]).astype(np.float32)
        q = self.init(f"{name}_quantized", data)
        s = self.init(f"{name}_scale", scales)
        z = self.init(f"{name}_zp", np.zeros(shape[axis], np.int8))
        self.nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [f"{name}_dq"], name=f"{name}_DQ",
                                           axis=axis))
        return f"{name}_dq", scales

    def bias(self, name: str, x_scale: float, w_scales: np.ndarray) -> str:
        """An int32 bias with scale s_x * s_w[c] (the product in float32, as quantisers store it)."""
        scales = (np.float32(x_scale) * w_scales).astype(np.float32)
        data = self.rng.integers(-2000, 2000, size=w_scales.shape, dtype=np.int32)
        q = self.init(f"{name}_quantized", data)
        s = self.init(f"{name}_scale", scales)
        z = self.init(f"{name}_zp", np.zeros(w_scales.shape, np.int32))
        self.nodes.append(helper.make_node("DequantizeLinear", [q, s, z], [f"{name}_dq"], name=f"{name}_DQ",
                                           axis=0))
        return f"{name}_dq"

    def conv_relu(self, x: str, x_scale: float, name: str, c_in: int, c_out: int, kernel: int,
                  group: int) -> tuple[str, float]:
        w, w_scales = self.weight(f"{name}_w", (c_out, c_in // group, kernel, kernel))
        b = self.bias(f"{name}_b", x_scale, w_scales)
        pad = kernel // 2
        self.nodes.append(helper.make_node("Conv", [x, w, b], [f"{name}_conv"], name=name, group=group,
                                           kernel_shape=[kernel, kernel], pads=[pad] * 4, strides=[1, 1]))
        self.nodes.append(helper.make_node("Relu", [f"{name}_conv"], [f"{name}_relu"], name=f"{name}_relu"))
        return self.qdq(f"{name}_relu", f"{name}_out", 0.02, -128)


def chain_model(blocks: int, channels: int = 16, size: int = 16, seed: int = 0) -> onnx.ModelProto:
    """The synthetic QDQ chain (module docstring) with `blocks` residual blocks."""
    b = _QdqBuilder(seed)
    in_scale, in_zp = 0.05, 0
    s = b.init("input_scale", np.float32(in_scale))
    z = b.init("input_zp", np.int8(in_zp))
    b.nodes.append(helper.make_node("DequantizeLinear", ["input", s, z], ["input_dq"], name="input_DQ"))
    x, x_scale = b.conv_relu("input_dq", float(np.float32(in_scale)), "stem", IN_CHANNELS, channels, 3, 1)
    for i in range(blocks):
        name = f"block{i}"
        h, h_scale = b.conv_relu(x, x_scale, f"{name}_dw", channels, channels, 3, channels)
        h, h_scale = b.conv_relu(h, h_scale, f"{name}_pw", channels, channels, 1, 1)
        b.nodes.append(helper.make_node("Add", [x, h], [f"{name}_sum"], name=f"{name}_add"))
        # Sums of two non-negative tensors grow along the chain; a fixed output scale saturates,
        # which is fine for timing and keeps every block's quantisation the same.
        x, x_scale = b.qdq(f"{name}_sum", f"{name}_out", 0.04, -128)
    b.nodes.append(helper.make_node("GlobalAveragePool", [x], ["pool"], name="pool"))
    x, x_scale = b.qdq("pool", "pool_out", 0.04, -128)
    b.nodes.append(helper.make_node("Flatten", [x], ["flat"], name="flatten", axis=1))
    x, x_scale = b.qdq("flat", "flat_out", 0.04, -128)
    w, w_scales = b.weight("fc_w", (CLASSES, channels))
    bias = b.bias("fc_b", x_scale, w_scales)
    b.nodes.append(helper.make_node("Gemm", [x, w, bias], ["logits"], name="fc", transB=1))
    s = b.init("output_scale", np.float32(0.1))
    z = b.init("output_zp", np.int8(0))
    b.nodes.append(helper.make_node("QuantizeLinear", ["logits", s, z], ["output"], name="output_Q"))
    graph = helper.make_graph(
        b.nodes, f"ds_chain_{blocks}",
        [helper.make_tensor_value_info("input", TensorProto.INT8, [1, IN_CHANNELS, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.INT8, [1, CLASSES])], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)],
                              producer_name="tinyc.tools.compile_time")
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------------------------------------
# Timing

def time_compile(path: Path, target: str) -> dict:
    """Seconds of each stage of `tinyc compile` for the model at `path` (files not written): import,
    lowering, and the target stages with code generation."""
    t0 = time.perf_counter()
    graph = load_graph(path)
    t1 = time.perf_counter()
    lowered = lower_for_codegen(graph)
    t2 = time.perf_counter()
    generated = generate_for_target(lowered, CodegenOptions(name="model", target=target))
    t3 = time.perf_counter()
    return {"import": t1 - t0, "lower": t2 - t1, "codegen": t3 - t2, "total": t3 - t0,
            "layers": len(generated.report["layers"])}


def best_of(path: Path, target: str, repeat: int) -> dict:
    """The fastest of `repeat` compilations (the machine's noise only ever adds time)."""
    return min((time_compile(path, target) for _ in range(repeat)), key=lambda r: r["total"])


def chain_rows(layer_counts: list[int], target: str, repeat: int, workdir: Path) -> list[dict]:
    rows = []
    for layers in layer_counts:
        blocks = blocks_for(layers)
        path = workdir / f"chain_{blocks}.onnx"
        onnx.save(chain_model(blocks), str(path))
        rows.append({"blocks": blocks, **best_of(path, target, repeat)})
    return rows


def shared_models(models_dir: Path) -> list[Path]:
    return sorted(models_dir.glob("*/*_qdq.onnx")) + sorted(models_dir.glob("*/*_qop.onnx"))


def format_chain_table(rows: list[dict]) -> str:
    lines = ["| layers | blocks | import s | lower s | codegen s | total s | ms per layer |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['layers']} | {r['blocks']} | {r['import']:.2f} | {r['lower']:.2f} | "
                     f"{r['codegen']:.2f} | {r['total']:.2f} | {1000 * r['total'] / r['layers']:.2f} |")
    return "\n".join(lines)


def format_model_table(rows: list[tuple[str, dict]]) -> str:
    lines = ["| model | layers | import s | lower s | codegen s | total s |", "|---|---:|---:|---:|---:|---:|"]
    for name, r in rows:
        lines.append(f"| {name} | {r['layers']} | {r['import']:.3f} | {r['lower']:.3f} | {r['codegen']:.3f} | "
                     f"{r['total']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:

    parser = argparse.ArgumentParser(prog="python -m tinyc.tools.compile_time", description=__doc__.split("\n\n")[0])
    parser.add_argument("--layers", default=",".join(str(n) for n in DEFAULT_LAYERS),
                        help="comma-separated layer counts of the synthetic chain (rounded up to whole blocks)")
    parser.add_argument("--target", default="cortex-m4")
    parser.add_argument("--repeat", type=int, default=1, help="compile each model this many times, keep the fastest")
    parser.add_argument("--models-dir", type=Path, default=None,
                        help="MLPerf Tiny models to time too (default: ../shared/models/mlperf_tiny when present)")
    parser.add_argument("--no-models", action="store_true", help="time only the synthetic chain")
    parser.add_argument("--save", type=Path, default=None, help="also write the chain models into this folder")
    args = parser.parse_args(argv)

    counts = [int(n) for n in args.layers.split(",") if n.strip()]
    with tempfile.TemporaryDirectory(prefix="tinyc-compile-time-") as tmp:
        workdir = args.save or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        rows = chain_rows(counts, args.target, args.repeat, workdir)
    print(f"Synthetic depthwise-separable residual chain, {args.target}:\n")
    print(format_chain_table(rows))
    models_dir = args.models_dir or default_models_dir()
    if not args.no_models and models_dir is not None:
        model_rows = [(p.stem, best_of(p, args.target, args.repeat)) for p in shared_models(models_dir)]
        print(f"\nShared models ({models_dir}), {args.target}, best of {args.repeat}:\n")
        print(format_model_table(model_rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
