"""Targets: every core description loads and matches what its compiler flags really enable; kernel
selection picks the documented CMSIS-NN (or tinyc_) function for representative lowered ops, with
scratch sizes checked against values computed by hand from CMSIS-NN's buffer-size formulas."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from tinyc import targets
from tinyc.errors import TinycError
from tinyc.targets.kernels.fully_connected import fc_kernel_sums
from tinyc.ir import Graph, Op, QuantParams, Value
from tinyc.verify import verify

ARM = ["cortex-m0", "cortex-m0plus", "cortex-m3", "cortex-m4", "cortex-m7", "cortex-m33", "cortex-m55"]
QEMU_BOARDS = {"cortex-m0": None, "cortex-m0plus": None, "cortex-m3": "mps2-an385", "cortex-m4": "mps2-an386",
               "cortex-m7": "mps2-an500", "cortex-m33": "mps2-an505", "cortex-m55": "mps3-an547", "host": None}


# ---- the target table -----------------------------------------------------------------------------

def test_every_target_loads_with_its_documented_description():
    assert targets.names() == ARM + ["host"]
    for name in targets.names():
        t = targets.get(name)
        assert t.name == name
        assert targets.get(t) is t
        assert t.qemu_machine == QEMU_BOARDS[name]
        assert t.alignment in (4, 8, 16)
        if name == "host":
            assert t.is_host and t.cflags == () and t.isa == "plain"
        else:
            assert not t.is_host
            assert f"-mcpu={name}" in t.cflags and "-mthumb" in t.cflags
    assert [targets.get(n).isa for n in ARM] == ["plain", "plain", "plain", "dsp", "dsp", "dsp", "mve"]
    assert targets.get("cortex-m4").cflags == ("-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard",
                                               "-mfpu=fpv4-sp-d16")
    assert "-mfloat-abi=soft" in targets.get("cortex-m3").cflags
    assert targets.get("cortex-m55").alignment == 16


def test_unknown_target_is_a_user_error_naming_the_choices():
    with pytest.raises(TinycError, match=r"unknown target 'cortex-m85'.*cortex-m0, cortex-m0plus"):
        targets.get("cortex-m85")


@pytest.mark.parametrize("name", ARM)
def test_flags_enable_exactly_the_described_features(name):
    """The compiler's ACLE macros under the target's flags agree with dsp / mve / fpu."""
    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc is not installed: cannot check the target's flags")
    t = targets.get(name)
    macros = subprocess.run([t.compiler, *t.cflags, "-dM", "-E", "-x", "c", "/dev/null"], capture_output=True,
                            text=True, check=True).stdout
    defined = set(re.findall(r"#define (\w+)", macros))
    assert ("__ARM_FEATURE_DSP" in defined) == t.dsp
    assert ("__ARM_FEATURE_MVE" in defined) == t.mve
    assert ("__ARM_FP" in defined) == (t.fpu is not None)
    assert ("__ARM_PCS_VFP" in defined) == (t.fpu is not None)  # hard-float ABI whenever there is an FPU


def test_qemu_boards_exist():
    if shutil.which("qemu-system-arm") is None:
        pytest.skip("qemu-system-arm is not installed")
    boards = subprocess.run(["qemu-system-arm", "-M", "help"], capture_output=True, text=True, check=True).stdout
    for name in targets.names():
        board = targets.get(name).qemu_machine
        if board is not None:
            assert re.search(rf"^{re.escape(board)}\s", boards, re.M), board


def test_cost_model_ranks_cores():
    per_mac = {n: targets.get(n).cost_per_work["conv"] for n in targets.names()}
    # runtime_c's kernels: DSP cores run convolutions fastest (it has no Helium path).
    assert per_mac["cortex-m0"] > per_mac["cortex-m3"] > per_mac["cortex-m55"] > per_mac["cortex-m4"] > 0
    m4 = targets.get("cortex-m4")
    assert m4.estimate_instructions("conv", 1000) == round(1000 * per_mac["cortex-m4"])
    every_class = {k.cost_class for k in targets.all_kernels()}
    assert all(every_class <= set(targets.get(n).cost_per_work) for n in targets.names())


# ---- lowered test graphs ---------------------------------------------------------------------------

def _q(scale=0.05, zp=0) -> QuantParams:
    return QuantParams.tensor(scale, zp)


def _conv_out(size, k, stride, dilation, pad_a, pad_b) -> int:
    return (size + pad_a + pad_b - ((k - 1) * dilation + 1)) // stride + 1


def conv_graph(x_shape, out_c, kernel, *, strides=(1, 1), pads=(0, 0, 0, 0), dilations=(1, 1), group=1,
               depthwise=False, dtype="int8") -> tuple[Op, Graph]:
    """A one-op graph: a conv2d (weights OHWI) or depthwise_conv2d (IHWO) in its lowered form."""
    n, h, w, c = x_shape
    kh, kw = kernel
    oh = _conv_out(h, kh, strides[0], dilations[0], pads[0], pads[2])
    ow = _conv_out(w, kw, strides[1], dilations[1], pads[1], pads[3])
    if depthwise:
        w_shape, layout, axis = (1, kh, kw, out_c), "IHWO", 3
    else:
        w_shape, layout, axis = (out_c, kh, kw, c // group), "OHWI", 0
    values = {
        "x": Value("x", x_shape, dtype, "NHWC", _q(0.05, 3)),
        "w": Value("w", w_shape, "int8", layout, QuantParams([0.01] * out_c, [0] * out_c, axis),
                   np.ones(w_shape, np.int8)),
        "b": Value("b", (out_c,), "int32", "", None, np.zeros(out_c, np.int32)),
        "y": Value("y", (n, oh, ow, out_c), dtype, "NHWC", _q(0.1, -2)),
    }
    attrs = {"strides": list(strides), "pads": list(pads), "dilations": list(dilations),
             "multiplier": [1 << 30] * out_c, "shift": [-7] * out_c, "input_offset": -3, "output_offset": -2,
             "act_min": -128, "act_max": 127}
    if depthwise:
        attrs["depth_multiplier"] = out_c // c
    else:
        attrs["group"] = group
    op = Op("depthwise_conv2d" if depthwise else "conv2d", "node", ["x", "w", "b"], ["y"], attrs)
    graph = Graph("g", values, [op], ["x"], ["y"])
    verify(graph)
    return op, graph


def choose(target, op, graph):
    return targets.select_kernel(target, op, graph)


def scratch_by_target(op, graph) -> dict[str, int]:
    return {n: choose(n, op, graph).scratch_bytes for n in targets.names()}


def functions_by_target(op, graph) -> dict[str, str]:
    return {n: choose(n, op, graph).function for n in targets.names()}


def _all(value, names=None) -> dict:
    return {n: value for n in (names or targets.names())}


DSP = ["cortex-m4", "cortex-m7", "cortex-m33"]  # tinyc's packed-filter kernels run there


def _dsp(value) -> dict:
    return _all(value, DSP)


# ---- convolution ----------------------------------------------------------------------------------

def test_pointwise_conv_uses_the_1x1_fast_kernel_without_scratch():
    op, g = conv_graph((1, 8, 8, 16), 32, (1, 1))
    assert functions_by_target(op, g) == {**_all("arm_convolve_1x1_s8_fast"), **_dsp("tinyc_conv_s8")}
    # tinyc_conv_s8: two int16 columns of 16 values
    assert scratch_by_target(op, g) == {**_all(0), **_dsp(2 * 16 * 2)}
    c = choose("cortex-m3", op, g)
    assert c.source == "cmsis-nn" and c.header == "arm_nnfunctions.h" and not c.in_place
    assert c.work == 8 * 8 * 32 * 16


def test_convolutions_on_dsp_cores_use_tinyc_packed_filter_kernel():
    """Every ungrouped convolution on a DSP core, whatever its filter, stride, padding or dilation:
    scratch is two int16 columns of the depth rounded up to 4; 2 output pixels per raster group."""
    for shape, out_c, kernel, kwargs, depth4 in [
            ((1, 8, 8, 16), 32, (1, 1), {}, 16),
            ((1, 49, 10, 1), 64, (10, 4), {"strides": (2, 2), "pads": (4, 1, 5, 1)}, 40),
            ((1, 10, 10, 3), 16, (3, 3), {"strides": (2, 2), "pads": (0, 0, 1, 1)}, 28),
            ((2, 9, 9, 5), 3, (3, 2), {"dilations": (2, 3), "pads": (1, 2, 0, 1)}, 32)]:
        op, g = conv_graph(shape, out_c, kernel, **kwargs)
        for name in DSP:
            c = choose(name, op, g)
            assert (c.function, c.source, c.header) == ("tinyc_conv_s8", "tinyc", "tinyc_kernels.h")
            assert c.scratch_bytes == 4 * depth4 and c.raster_block == 2 and not c.in_place
            assert c.work == op_macs(g)
    op, g = conv_graph((1, 6, 6, 8), 4, (3, 3), pads=(1, 1, 1, 1), group=2)
    assert choose("cortex-m4", op, g).function == "arm_convolve_wrapper_s8"  # grouped: CMSIS-NN


def op_macs(g: Graph) -> int:
    y, w = g.values["y"], g.values["w"]
    return int(np.prod(y.shape)) * int(np.prod(w.shape[1:]))


def test_strided_pointwise_conv_uses_the_strided_1x1_kernel():
    op, g = conv_graph((1, 8, 8, 16), 32, (1, 1), strides=(2, 2))
    assert functions_by_target(op, g) == {**_all("arm_convolve_1x1_s8"), **_dsp("tinyc_conv_s8")}
    assert scratch_by_target(op, g) == {**_all(0), **_dsp(64)}


def test_padded_3x3_conv_uses_the_wrapper_with_im2col_scratch():
    # column = 3 * 3 * 8 = 72 values: two int16 columns (72 is a multiple of 4): 2 * 72 * 2 = 288 bytes;
    # Helium: four int8 columns rounded to 16 bytes: 4 * 80 = 320.
    op, g = conv_graph((1, 10, 10, 8), 16, (3, 3), pads=(1, 1, 1, 1))
    assert functions_by_target(op, g) == {**_all("arm_convolve_wrapper_s8"), **_dsp("tinyc_conv_s8")}
    assert scratch_by_target(op, g) == {**_all(288), "cortex-m55": 320}
    # column = 27: rounded to 28 -> 2 * 28 * 2 = 112; Helium 4 * 32 = 128
    op, g = conv_graph((1, 10, 10, 3), 16, (3, 3), strides=(2, 2), pads=(0, 0, 1, 1))
    assert scratch_by_target(op, g) == {**_all(112), "cortex-m55": 128}


def test_grouped_conv_scratch_uses_the_input_channels():
    # CMSIS-NN sizes the column by the input's channels (8), not the group's (4): 3 * 3 * 8 = 72
    op, g = conv_graph((1, 6, 6, 8), 4, (3, 3), pads=(1, 1, 1, 1), group=2)
    c = choose("cortex-m4", op, g)
    assert c.function == "arm_convolve_wrapper_s8" and c.scratch_bytes == 288
    assert c.work == 6 * 6 * 4 * 9 * 4


def test_pointwise_conv_with_only_trailing_padding_calls_the_general_kernel():
    """The wrapper would route it to a 1x1 kernel, which ignores bottom/right padding."""
    op, g = conv_graph((1, 4, 4, 8), 8, (1, 1), pads=(0, 0, 1, 1))
    c = choose("cortex-m7", op, g)
    assert c.function == "tinyc_conv_s8"
    c = choose("cortex-m55", op, g)
    assert c.function == "arm_convolve_s8"
    assert c.scratch_bytes == 4 * 16  # four int8 columns of 8 values, each rounded up to 16


def test_one_row_conv_uses_the_1xn_kernel():
    # input [1, 1, 10, 4], 1x3 filter, one column of padding each side, 10 outputs.
    op, g = conv_graph((1, 1, 10, 4), 8, (1, 3), pads=(0, 1, 0, 1))
    assert functions_by_target(op, g) == {**_all("arm_convolve_1_x_n_s8"), **_dsp("tinyc_conv_s8")}
    # without Helium: the general kernel's buffer, column 12 -> 2 * 12 * 2 = 48.
    # Helium: a row with its padding: max(3*4 + 1*4, 2*4 + 1*4) = 16.
    assert scratch_by_target(op, g) == {**_all(48), "cortex-m55": 16}


def test_one_row_conv_with_padding_helium_cannot_split_calls_the_general_kernel_there():
    # no left padding, two columns on the right: Helium's 1xN kernel only handles right == left (+1)
    op, g = conv_graph((1, 1, 10, 4), 8, (1, 3), pads=(0, 0, 0, 2))
    assert choose("cortex-m3", op, g).function == "arm_convolve_1_x_n_s8"
    m55 = choose("cortex-m55", op, g)
    assert (m55.function, m55.scratch_bytes) == ("arm_convolve_s8", 4 * 16)


def test_one_row_conv_needs_a_multiple_of_four_input_values_per_step():
    op, g = conv_graph((1, 1, 10, 3), 8, (1, 3), pads=(0, 1, 0, 1))  # stride 1 * 3 channels
    assert choose("cortex-m3", op, g).function == "arm_convolve_wrapper_s8"


def test_conv_without_a_kernel():
    op, g = conv_graph((1, 4, 4, 8), 8, (3, 3), pads=(1, 1, 1, 1))
    del op.attrs["multiplier"]  # not lowered by the requantize pass
    assert choose("cortex-m4", op, g) is None
    x = Value("x", (1, 8, 4, 4), "float32", "NCHW")
    w = Value("w", (8, 8, 3, 3), "float32", "OIHW", None, np.zeros((8, 8, 3, 3), np.float32))
    y = Value("y", (1, 8, 4, 4), "float32", "NCHW")
    float_op = Op("conv2d", "f", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})
    assert choose("cortex-m4", float_op, Graph("g", {"x": x, "w": w, "y": y}, [float_op], ["x"], ["y"])) is None


# ---- depthwise ------------------------------------------------------------------------------------

def test_3x3_depthwise_picks_the_3x3_kernel_except_on_helium():
    op, g = conv_graph((1, 8, 8, 16), 16, (3, 3), pads=(1, 1, 1, 1), depthwise=True)
    assert functions_by_target(op, g) == {**_all("arm_depthwise_conv_3x3_s8"),
                                          "cortex-m55": "arm_depthwise_conv_s8_opt"}
    # Helium: four patches of a 124-channel block: 4 * 124 * 9 = 4464
    assert scratch_by_target(op, g) == {**_all(0), "cortex-m55": 4464}


def test_3x3_depthwise_with_two_columns_of_right_padding_avoids_the_3x3_kernel():
    # width 4, pads left 1 right 2: the last window's middle column (4) lies outside the input
    op, g = conv_graph((1, 4, 4, 8), 8, (3, 3), pads=(1, 1, 1, 2), depthwise=True)
    c = choose("cortex-m4", op, g)
    assert c.function == "arm_depthwise_conv_s8_opt" and c.scratch_bytes == 8 * 9 * 2


def test_5x5_depthwise_uses_opt_with_dsp_and_the_general_kernel_without():
    op, g = conv_graph((1, 8, 8, 16), 16, (5, 5), pads=(2, 2, 2, 2), depthwise=True)
    plain = ["cortex-m0", "cortex-m0plus", "cortex-m3", "host"]
    assert functions_by_target(op, g) == {**_all("arm_depthwise_conv_s8_opt"),
                                          **_all("arm_depthwise_conv_s8", plain)}
    # DSP: each channel's 5x5 patch as int16: 16 * 25 * 2 = 800; Helium: 4 * 124 * 25 = 12400
    assert scratch_by_target(op, g) == {**_all(800), **_all(0, plain), "cortex-m55": 12400}


def test_depthwise_with_channel_multiplier_or_dilation_or_batch_uses_the_general_kernel():
    for shape, out_c, kwargs in [((1, 8, 8, 4), 8, {}), ((1, 8, 8, 4), 4, {"dilations": (2, 2)}),
                                 ((2, 8, 8, 4), 4, {})]:
        op, g = conv_graph(shape, out_c, (3, 3), pads=(1, 1, 1, 1), depthwise=True, **kwargs)
        assert functions_by_target(op, g) == _all("arm_depthwise_conv_s8"), kwargs
        assert scratch_by_target(op, g) == _all(0)


# ---- fully connected ------------------------------------------------------------------------------

def fc_graph(batches, depth, units, per_channel=False) -> tuple[Op, Graph]:
    wq = QuantParams([0.01] * units, [0] * units, 0) if per_channel else _q(0.01, 0)
    rng = np.random.default_rng(0)
    values = {
        "x": Value("x", (batches, depth), "int8", "", _q(0.05, 3)),
        "w": Value("w", (units, depth), "int8", "", wq, rng.integers(-128, 128, (units, depth)).astype(np.int8)),
        "b": Value("b", (units,), "int32", "", None, rng.integers(-100, 100, units).astype(np.int32)),
        "y": Value("y", (batches, units), "int8", "", _q(0.1, 0)),
    }
    n = units if per_channel else 1
    op = Op("fully_connected", "fc", ["x", "w", "b"], ["y"],
            {"multiplier": [1 << 30] * n, "shift": [-7] * n, "input_offset": -3, "output_offset": 0,
             "act_min": -128, "act_max": 127})
    graph = Graph("g", values, [op], ["x"], ["y"])
    verify(graph)
    return op, graph


def test_fully_connected_takes_no_arena_scratch_even_on_helium():
    """Helium's kernels read one int32 kernel sum per unit from ctx.buf: tinyc computes them at compile
    time and passes them from flash (tests/filecheck/codegen/fully_connected.tir), so no arena bytes."""
    op, g = fc_graph(1, 640, 128)
    assert functions_by_target(op, g) == {**_all("arm_fully_connected_s8"), **_dsp("tinyc_fully_connected_s8")}
    assert scratch_by_target(op, g) == _all(0)
    assert choose("cortex-m4", op, g).work == 640 * 128
    w, b = g.values["w"].data, g.values["b"].data
    sums = fc_kernel_sums(w, b, input_offset=-3)
    assert sums.dtype == np.int32
    np.testing.assert_array_equal(sums, b.astype(np.int64) - 3 * w.astype(np.int64).sum(axis=1))


def test_per_channel_fully_connected():
    op, g = fc_graph(2, 16, 8, per_channel=True)
    c = choose("cortex-m3", op, g)
    assert (c.function, c.source, c.scratch_bytes) == ("arm_fully_connected_per_channel_s8", "cmsis-nn", 0)
    c = choose("cortex-m7", op, g)
    assert (c.function, c.source, c.scratch_bytes) == ("tinyc_fully_connected_s8", "tinyc", 0)


# ---- element-wise, pooling, softmax ---------------------------------------------------------------

def binary_graph(kind, a_shape, b_shape, out_shape) -> tuple[Op, Graph]:
    q = _q(0.05, 1)
    values = {"a": Value("a", a_shape, "int8", "", q), "b": Value("b", b_shape, "int8", "", q),
              "y": Value("y", out_shape, "int8", "", _q(0.1, 0))}
    attrs = {"input1_offset": -1, "input2_offset": -1, "output_offset": 0, "output_multiplier": 1 << 30,
             "output_shift": -3, "act_min": -128, "act_max": 127}
    if kind == "add":
        attrs.update({"left_shift": 20, "input1_multiplier": 1 << 30, "input1_shift": 0,
                      "input2_multiplier": 1 << 30, "input2_shift": 0})
    op = Op(kind, "e", ["a", "b"], ["y"], attrs)
    graph = Graph("g", values, [op], ["a", "b"], ["y"])
    verify(graph)
    return op, graph


def test_same_shape_add_and_mul_are_in_place_on_both_inputs():
    """Same-shape add looks the inputs' rescaling up in tables except on Helium (CMSIS-NN's vector
    add); mul is CMSIS-NN's everywhere."""
    expected = {"add": {**_all("tinyc_add_s8"), "cortex-m55": "arm_elementwise_add_s8"},
                "mul": _all("arm_elementwise_mul_s8")}
    for kind in ("add", "mul"):
        op, g = binary_graph(kind, (1, 4, 4, 8), (1, 4, 4, 8), (1, 4, 4, 8))
        assert functions_by_target(op, g) == expected[kind]
        for name in targets.names():
            c = choose(name, op, g)
            assert c.source == ("tinyc" if c.function == "tinyc_add_s8" else "cmsis-nn")
            assert c.in_place_inputs == (0, 1) and c.in_place and c.scratch_bytes == 0
        # shapes equal after left-padding with 1s are the same bytes
        op, g = binary_graph(kind, (4, 8), (1, 4, 8), (1, 4, 8))
        assert functions_by_target(op, g) == expected[kind]


def test_broadcasting_add_and_mul_use_tinyc_kernels_in_place_on_the_full_input():
    for kind in ("add", "mul"):
        op, g = binary_graph(kind, (1, 4, 4, 8), (8,), (1, 4, 4, 8))
        c = choose("cortex-m0", op, g)
        assert (c.function, c.header, c.source) == (f"tinyc_{kind}_broadcast_s8", "tinyc_kernels.h", "tinyc")
        assert c.in_place_inputs == (0,)
        op, g = binary_graph(kind, (1, 4, 1, 8), (1, 1, 4, 1), (1, 4, 4, 8))
        assert choose("cortex-m0", op, g).in_place_inputs == ()


def pool_graph(kind, x_shape, kernel, strides=(1, 1), pads=(0, 0, 0, 0), **extra) -> tuple[Op, Graph]:
    n, h, w, c = x_shape
    oh = _conv_out(h, kernel[0], strides[0], 1, pads[0], pads[2])
    ow = _conv_out(w, kernel[1], strides[1], 1, pads[1], pads[3])
    q = _q(0.05, 2)
    values = {"x": Value("x", x_shape, "int8", "NHWC", q), "y": Value("y", (n, oh, ow, c), "int8", "NHWC", q)}
    op = Op(kind, "p", ["x"], ["y"], {"kernel": list(kernel), "strides": list(strides), "pads": list(pads),
                                      "act_min": -128, "act_max": 127, **extra})
    graph = Graph("g", values, [op], ["x"], ["y"])
    verify(graph)
    return op, graph


def test_average_pool_scratch_is_one_int32_per_channel_with_dsp():
    op, g = pool_graph("avg_pool2d", (1, 5, 5, 64), (5, 5))  # global average pool
    assert functions_by_target(op, g) == _all("arm_avgpool_s8")
    dsp = ["cortex-m4", "cortex-m7", "cortex-m33"]
    assert scratch_by_target(op, g) == {**_all(0), **_all(64 * 4, dsp)}
    assert choose("cortex-m4", op, g).work == 64 * 25


def test_pools_the_kernels_cannot_run():
    op, g = pool_graph("avg_pool2d", (1, 4, 4, 8), (3, 3), pads=(1, 1, 1, 1), count_include_pad=True)
    assert choose("cortex-m4", op, g) is None  # CMSIS-NN never counts the padding
    op, g = pool_graph("avg_pool2d", (1, 4, 4, 8), (3, 3), pads=(1, 1, 1, 1))
    assert choose("cortex-m4", op, g).function == "arm_avgpool_s8"
    op, g = pool_graph("max_pool2d", (1, 4, 4, 8), (2, 2), pads=(2, 2, 2, 2))  # windows of padding only
    assert choose("cortex-m4", op, g) is None
    op, g = pool_graph("max_pool2d", (1, 4, 4, 8), (2, 2), strides=(2, 2))
    c = choose("cortex-m4", op, g)
    assert (c.function, c.scratch_bytes, c.in_place) == ("arm_max_pool_s8", 0, False)


def softmax_graph(shape, axis=-1) -> tuple[Op, Graph]:
    values = {"x": Value("x", shape, "int8", "", _q(0.1, 0)),
              "y": Value("y", shape, "int8", "", QuantParams.tensor(1 / 256, -128))}
    op = Op("softmax", "s", ["x"], ["y"], {"axis": axis, "input_multiplier": 1 << 30, "input_left_shift": 20,
                                            "diff_min": -248})
    graph = Graph("g", values, [op], ["x"], ["y"])
    verify(graph)
    return op, graph


def test_softmax_over_the_last_axis_only():
    op, g = softmax_graph((1, 12))
    c = choose("cortex-m55", op, g)
    assert (c.function, c.scratch_bytes, c.in_place) == ("arm_softmax_s8", 0, False)
    op, g = softmax_graph((1, 12, 3), axis=1)
    assert choose("cortex-m55", op, g) is None


# ---- tinyc's kernels and views --------------------------------------------------------------------

def unary_graph(kind, x, y, attrs) -> tuple[Op, Graph]:
    op = Op(kind, "u", ["x"], ["y"], attrs)
    graph = Graph("g", {"x": x, "y": y}, [op], ["x"], ["y"])
    verify(graph)
    return op, graph


def test_tinyc_kernels_and_their_in_place_flags():
    q = _q(0.05, 1)
    cases = [
        ("lut", Value("x", (1, 10), "int8", "", q), Value("y", (1, 10), "int8", "", q),
         {"table": list(range(-128, 128))}, "tinyc_lut_s8", True),
        ("quantize", Value("x", (1, 10), "float32"), Value("y", (1, 10), "int8", "", q), {},
         "tinyc_quantize_f32_s8", True),
        ("quantize", Value("x", (1, 10), "float32"), Value("y", (1, 10), "uint8", "", _q(0.05, 128)), {},
         "tinyc_quantize_f32_u8", True),
        ("dequantize", Value("x", (1, 10), "int8", "", q), Value("y", (1, 10), "float32"), {},
         "tinyc_dequantize_s8_f32", False),
        ("rescale", Value("x", (1, 10), "uint8", "", _q(0.05, 128)), Value("y", (1, 10), "int8", "", q),
         {"multiplier": [1 << 30], "shift": [1], "input_offset": -128, "output_offset": 1},
         "tinyc_rescale_u8_s8", True),
        ("rescale", Value("x", (1, 10), "int8", "", q), Value("y", (1, 10), "uint8", "", _q(0.05, 129)),
         {"multiplier": [1 << 30], "shift": [1], "input_offset": -1, "output_offset": 129},
         "tinyc_rescale_s8_u8", True),
        ("transpose", Value("x", (1, 3, 4, 5), "float32", "NCHW"), Value("y", (1, 4, 5, 3), "float32", "NHWC"),
         {"perm": [0, 2, 3, 1]}, "tinyc_transpose_f32", False),
        ("transpose", Value("x", (2, 3), "int8", "", q), Value("y", (3, 2), "int8", "", q), {"perm": [1, 0]},
         "tinyc_transpose_s8", False),
        ("pad", Value("x", (1, 4, 4, 2), "int8", "NHWC", q), Value("y", (1, 6, 6, 2), "int8", "NHWC", q),
         {"pads": [0, 1, 1, 0, 0, 1, 1, 0], "value": 1.0}, "tinyc_pad_s8", False),
    ]
    for kind, x, y, attrs, function, in_place in cases:
        op, g = unary_graph(kind, x, y, attrs)
        c = choose("cortex-m3", op, g)
        assert c.function == function, kind
        assert c.header == "tinyc_kernels.h" and c.source == "tinyc" and c.scratch_bytes == 0
        assert c.in_place == in_place, kind
        assert c.work == y.size


def test_ops_tinyc_kernels_cannot_take():
    q = _q(0.05, 1)
    op, g = unary_graph("pad", Value("x", (1, 4), "int8", "", q), Value("y", (1, 6), "int8", "", q),
                        {"pads": [0, 1, 0, 1], "value": 0.5})  # not an int8 value
    assert choose("cortex-m4", op, g) is None
    op, g = unary_graph("transpose", Value("x", (1, 2, 2, 2, 2), "int8", "", q),
                        Value("y", (2, 2, 2, 2, 1), "int8", "", q), {"perm": [1, 2, 3, 4, 0]})
    assert choose("cortex-m4", op, g).is_view  # only the size-1 axis moves
    op, g = unary_graph("transpose", Value("x", (2, 2, 2, 2, 2), "int8", "", q),
                        Value("y", (2, 2, 2, 2, 2), "int8", "", q), {"perm": [4, 3, 2, 1, 0]})
    assert choose("cortex-m4", op, g) is None  # rank 5


def test_reshape_and_unit_axis_transposes_are_views():
    q = _q(0.05, 1)
    op, g = unary_graph("reshape", Value("x", (1, 1, 1, 64), "int8", "NHWC", q), Value("y", (1, 64), "int8", "", q),
                        {"shape": [1, 64]})
    c = choose("cortex-m0", op, g)
    assert c.is_view and c.function == "" and c.scratch_bytes == 0 and c.in_place
    op, g = unary_graph("transpose", Value("x", (1, 64, 1, 1), "int8", "NCHW", q),
                        Value("y", (1, 1, 1, 64), "int8", "NHWC", q), {"perm": [0, 2, 3, 1]})
    assert choose("cortex-m0", op, g).is_view


def test_concat_copies_each_input():
    q = _q(0.05, 1)
    values = {"a": Value("a", (1, 4, 4, 2), "int8", "NHWC", q), "b": Value("b", (1, 4, 4, 3), "int8", "NHWC", q),
              "y": Value("y", (1, 4, 4, 5), "int8", "NHWC", q)}
    op = Op("concat", "c", ["a", "b"], ["y"], {"axis": 3})
    g = Graph("g", values, [op], ["a", "b"], ["y"])
    verify(g)
    c = choose("cortex-m33", op, g)
    assert (c.function, c.in_place) == ("tinyc_concat_s8", False)


def test_ops_without_any_kernel_return_none_so_the_codegen_can_list_them():
    # A float op in a quantised model is one no pass lowered to int8: the float kernels leave it.
    q = _q(0.05, 1)
    values = {"q": Value("q", (1, 8), "int8", "", q), "x": Value("x", (1, 8), "float32"),
              "y": Value("y", (1, 8), "float32")}
    op = Op("sigmoid", "u", ["x"], ["y"])
    g = Graph("g", values, [Op("dequantize", "dq", ["q"], ["x"]), op], ["q"], ["y"])
    verify(g)
    assert [choose(n, op, g) for n in targets.names()] == [None] * len(targets.names())
    assert targets.kernel("tinyc_sigmoid_f32").refusal(targets.get("host"), op, g) == (
        "a float op in a quantised model (float kernels run float models; int8 models run int8 layers)")
    float_model = Graph("g", {"x": values["x"], "y": values["y"]}, [op], ["x"], ["y"])
    assert all(choose(n, op, float_model).function == "tinyc_sigmoid_f32" for n in targets.names())
