"""The generated C on the real MLPerf Tiny models: host builds and emulated Cortex-M cores give exactly
the reference interpreter's outputs, which equal TFLite's reference kernels and TFLM's goldens.

One build per model and target runs the whole batch (the harness loops over samples).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from test_bitexact_models import (DATA, DOUBLE_ROUNDING_GAP, MODELS, TFLM, TFLM_NAMES, ad_windows,
                                  compiled, onnx_input, random_inputs, sww_samples, tflite_outputs,
                                  tflm_pattern)
from tinyc.codegen import CodegenOptions
from tinyc.driver import build_and_run
from tinyc.interpreter import run as run_reference

FORMS = ("qdq", "qop")
HAVE_ARM = shutil.which("arm-none-eabi-gcc") is not None and shutil.which("qemu-system-arm") is not None


def _samples(graph, nhwc_batch: np.ndarray) -> list[dict[str, np.ndarray]]:
    return [onnx_input(graph, nhwc_batch[i:i + 1]) for i in range(nhwc_batch.shape[0])]


def _real_inputs(key: str) -> np.ndarray | None:
    if key == "kws":
        return np.load(DATA / "kws_sample_int8_1x49x10x1.npy")
    if key == "sww":
        return sww_samples()[0]
    if key == "ad":
        return ad_windows()
    return None


def _stack(outputs, graph) -> np.ndarray:
    name = graph.outputs[0]
    return np.concatenate([o[name] for o in outputs], axis=0)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("key", list(MODELS))
def test_host_build_is_bit_exact(key, form, tmp_path):
    graph = compiled(key, form)
    batch = random_inputs(key, 100, seed=7)
    real = _real_inputs(key)
    if real is not None:
        batch = np.concatenate([batch, real], axis=0)
    if key in TFLM_NAMES:
        batch = np.concatenate([batch, _tflm_input(key)], axis=0)
    samples = _samples(graph, batch)
    outputs, _ = build_and_run(graph, samples, CodegenOptions(name=f"{key}_{form}", target="host"),
                               tmp_path)
    host = _stack(outputs, graph)
    reference = _stack([run_reference(graph, s) for s in samples], graph)
    np.testing.assert_array_equal(host, reference)
    if DOUBLE_ROUNDING_GAP[key] == 0:
        # Where LiteRT's reference kernels round like CMSIS-NN, compare with TFLite directly too.
        np.testing.assert_array_equal(host[:100], tflite_outputs(key, batch[:100]))
    if key in TFLM_NAMES:
        golden = TFLM["models"][TFLM_NAMES[key]]["outputs_int8"]
        assert host[-1].reshape(-1).tolist() == golden


def _tflm_input(key: str) -> np.ndarray:
    from test_bitexact_models import tflite_input_detail
    shape = tuple(tflite_input_detail(key)["shape"])
    count = int(np.prod(shape))
    return tflm_pattern(count).reshape(shape)


@pytest.mark.parametrize("key", list(MODELS))
def test_host_build_is_clean_under_sanitizers(key, tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no host C compiler")
    graph = compiled(key, "qop")
    samples = _samples(graph, random_inputs(key, 3, seed=11))
    outputs, _ = build_and_run(graph, samples, CodegenOptions(name="sanitized", target="host",
                                                              arena="static"), tmp_path, sanitize=True)
    reference = [run_reference(graph, s) for s in samples]
    np.testing.assert_array_equal(_stack(outputs, graph), _stack(reference, graph))


@pytest.mark.parametrize("dsp", [False, True], ids=["plain_c", "dsp_model"])
@pytest.mark.parametrize("key", list(MODELS))
def test_cortex_m4_code_built_for_the_host_is_bit_exact(key, dsp, tmp_path):
    """The code generated for a DSP core calls tinyc's packed-filter convolution and fully connected
    kernels and the table add; built for the host (plain C, or the DSP algorithm on C models of the
    instructions) under ASan and UBSan, it equals the interpreter on 20 random inputs."""
    from tinyc.build import build_host, run_host
    from tinyc.codegen.harness import harness_source
    from tinyc.driver import generate_for_target
    from tinyc.output_dir import write_output_dir
    graph = compiled(key, "qop")
    samples = _samples(graph, random_inputs(key, 20, seed=13))
    generated = generate_for_target(graph, CodegenOptions(name=key, target="cortex-m4"))
    assert {"tinyc_conv_s8", "tinyc_fully_connected_s8"} & set(generated.kernels)
    write_output_dir(generated.files, tmp_path / "gen")
    harness = tmp_path / "harness_main.c"
    harness.write_text(harness_source(graph, key, "caller", 16))
    exe = build_host(tmp_path / "gen", generated.sources, harness, tmp_path / "model", sanitize=True,
                     defines=("TINYC_USE_DSP=1",) if dsp else ("TINYC_USE_DSP=0",))
    outputs = run_host(exe, graph, samples, tmp_path)
    reference = [run_reference(graph, s) for s in samples]
    np.testing.assert_array_equal(_stack(outputs, graph), _stack(reference, graph))


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc or qemu-system-arm missing (tools/setup.sh)")
@pytest.mark.parametrize("key", list(MODELS))
def test_cortex_m4_is_bit_exact(key, tmp_path):
    graph = compiled(key, "qop")
    batch = random_inputs(key, 2, seed=3)
    if key in TFLM_NAMES:
        batch = np.concatenate([batch, _tflm_input(key)], axis=0)
    samples = _samples(graph, batch)
    outputs, cost = build_and_run(graph, samples, CodegenOptions(name=key, target="cortex-m4"), tmp_path)
    reference = [run_reference(graph, s) for s in samples]
    np.testing.assert_array_equal(_stack(outputs, graph), _stack(reference, graph))
    if key in TFLM_NAMES:
        assert _stack(outputs, graph)[-1].reshape(-1).tolist() == TFLM["models"][TFLM_NAMES[key]]["outputs_int8"]
    assert cost.exact and cost.instructions_per_inference > 0
    assert 0 < cost.stack_bytes < 16384


@pytest.mark.skipif(not HAVE_ARM, reason="arm-none-eabi-gcc or qemu-system-arm missing (tools/setup.sh)")
@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m7", "cortex-m33", "cortex-m55"])
@pytest.mark.parametrize("key", ["kws", "ic"])
def test_other_cores_are_bit_exact(key, target, tmp_path):
    graph = compiled(key, "qdq")
    samples = _samples(graph, random_inputs(key, 2, seed=5))
    outputs, cost = build_and_run(graph, samples, CodegenOptions(name=key, target=target), tmp_path)
    reference = [run_reference(graph, s) for s in samples]
    np.testing.assert_array_equal(_stack(outputs, graph), _stack(reference, graph))
    assert cost.instructions_per_inference > 0
