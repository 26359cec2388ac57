"""The kernel registry: every declaration agrees with the C it names, selection happens once (the
recorded choice is what the planner and the code generator use), and refusals say why."""
from __future__ import annotations

import re

import numpy as np
import pytest

from tinyc import runtime_c, targets
from tinyc.codegen import CodegenOptions, generate
from tinyc.driver import for_target
from tinyc.errors import UnsupportedError
from tinyc.ir import NOT_LOWERED, Graph, Op, QuantParams, Value
from tinyc.ops import KERNEL_ATTR, SPECS
from tinyc.passes import get as get_pass
from tinyc.passes.plan_memory import plan_graph
from tinyc.textir import parse, print_graph
from tinyc.verify import verify

from test_targets import conv_graph

M4 = targets.get("cortex-m4")


def test_every_kernel_is_defined_where_it_says_and_declared_in_its_header():
    defined_in, _ = runtime_c.index()
    for kern in targets.all_kernels():
        assert kern.source in ("cmsis-nn", "tinyc", "tvm"), kern.name
        assert set(kern.ops) <= set(SPECS), kern.name
        assert set(kern.isas) <= set(targets.ISAS) and kern.isas, kern.name
        if kern.is_view:
            assert kern.emit is None and not kern.sources
            continue
        assert defined_in.get(kern.name) in kern.sources, f"{kern.name} is not defined in {kern.sources}"
        header = (runtime_c.ROOT / kern.header).read_text()
        assert re.search(rf"\b{kern.name}\s*\(", header), f"{kern.header} does not declare {kern.name}"
        # CMSIS-NN's functions are replaceable by a real CMSIS-NN: runtime_c keeps them out of tinyc's files.
        assert all(s.startswith("nn_" if kern.source == "cmsis-nn" else "tinyc_") for s in kern.sources), kern.name


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="declared twice"):
        targets.registry.register(targets.kernel("tinyc_lut_s8"))
    bad = targets.Kernel("tinyc_nothing", "tinyc", ops=("lut",), dtypes=None, emit=None)
    with pytest.raises(ValueError, match="needs an emitter"):
        targets.registry.register(bad)
    with pytest.raises(ValueError, match="source must be one of"):
        targets.registry.register(targets.Kernel("x", "elsewhere", ops=("lut",), dtypes=None, emit=None))


def test_candidates_keep_the_order_of_preference():
    names = [k.name for k in targets.candidates("conv2d")]
    int8 = [k.name for k in targets.candidates("conv2d") if k.dtypes.output == "int8"]
    assert int8[0] == "tinyc_conv_s8" and int8[-1] == "arm_convolve_s8"
    assert names == int8 + ["tinyc_conv_f32"]  # float kernels after the integer ones
    assert [k.name for k in targets.candidates("transpose")][0] == "view"


def test_select_kernels_records_the_choice_and_stages_read_it_instead_of_selecting_again():
    op, g = conv_graph((1, 8, 8, 16), 32, (1, 1))
    chosen = targets.select_kernels(g, M4)
    assert KERNEL_ATTR not in g.ops[0].attrs          # the argument is not mutated
    assert chosen.ops[0].attrs[KERNEL_ATTR] == "tinyc_conv_s8"
    verify(chosen)
    # Record another kernel that also runs the op: the planner and the code generator follow the record.
    chosen.ops[0].attrs[KERNEL_ATTR] = "arm_convolve_1x1_s8_fast"
    chosen.meta["target"] = M4.name
    chosen.meta["memory_plan"] = plan_graph(chosen, M4)
    assert chosen.meta["memory_plan"]["scratch"] == {}  # tinyc_conv_s8 would need 64 bytes
    generated = generate(chosen, CodegenOptions(target=M4))
    assert generated.kernels == ["arm_convolve_1x1_s8_fast"]
    assert generated.report["layers"][0]["kernel_source"] == "cmsis-nn"
    # A record that cannot run the op is an error, not a silent re-selection.
    chosen.ops[0].attrs[KERNEL_ATTR] = "arm_depthwise_conv_s8"
    with pytest.raises(ValueError, match="cannot run it on cortex-m4"):
        plan_graph(chosen, M4)


def test_the_choice_survives_the_textual_ir():
    op, g = conv_graph((1, 8, 8, 16), 32, (3, 3), pads=(1, 1, 1, 1))
    g.meta["target"] = "cortex-m55"
    text = print_graph(get_pass("select-kernels")(g))
    assert 'impl = "arm_convolve_wrapper_s8"' in text
    assert parse(text).ops[0].attrs[KERNEL_ATTR] == "arm_convolve_wrapper_s8"


def test_ops_without_a_kernel_are_listed_by_cause_with_their_nodes():
    # In a float model: why the float kernel refuses the op.
    x = Value("x", (1, 1, 2, 2, 8), "float32")
    y = Value("y", (1, 1, 2, 2, 8), "float32")
    g = Graph("g", {"x": x, "y": y}, [Op("add", "sum", ["x", "x"], ["y"])], ["x"], ["y"])
    with pytest.raises(UnsupportedError) as caught:
        targets.select_kernels(g, M4)
    assert str(caught.value) == "no cortex-m4 kernel for 1 op: add: the kernel takes at most 4 dimensions (node sum)"
    assert caught.value.details == [{"node": "sum", "op": "add", "cause": "add: the kernel takes at most 4 dimensions"}]
    # In a quantised graph: each cause once, its nodes listed (at most three), the rest counted.
    q = QuantParams.tensor(0.1, 0)
    values = {"x": Value("x", (1, 8), "int8", "", q), "xf": Value("xf", (1, 8), "float32")}
    ops = [Op("dequantize", "dq", ["x"], ["xf"])]
    for i in range(5):
        values[f"s{i}"] = Value(f"s{i}", (1, 8), "float32")
        ops.append(Op("sigmoid", f"sig{i}", ["xf"], [f"s{i}"]))
    g = Graph("g", values, ops, ["x"], [f"s{i}" for i in range(5)])
    g.meta[NOT_LOWERED] = {"sig0": "its float output leaves the model without a QuantizeLinear"}
    with pytest.raises(UnsupportedError) as caught:
        targets.select_kernels(g, M4)
    assert str(caught.value) == (
        "no cortex-m4 kernel for 5 ops: sigmoid: its float output leaves the model without a QuantizeLinear "
        "(node sig0); float sigmoid that no pass lowers to int8 (it is not between DequantizeLinear and "
        "QuantizeLinear) (nodes sig1, sig2, sig3 and 1 more) (tinyc inspect MODEL --json lists every op)")
    assert len(caught.value.details) == 5


def test_refusals_say_why_each_candidate_does_not_run_an_op():
    x = Value("x", (1, 8, 4, 4), "float32", "NCHW")
    w = Value("w", (8, 8, 3, 3), "float32", "OIHW", None, np.zeros((8, 8, 3, 3), np.float32))
    y = Value("y", (1, 8, 4, 4), "float32", "NCHW")
    op = Op("conv2d", "f", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})
    g = Graph("g", {"x": x, "w": w, "y": y}, [op], ["x"], ["y"])
    why = dict((k.name, reason) for k, reason in targets.refusals(M4, op, g))
    assert why["arm_convolve_s8"] == "input 1 is float32, the kernel reads int8"
    op, g = conv_graph((1, 6, 6, 8), 4, (3, 3), pads=(1, 1, 1, 1), group=2)
    why = dict((k.name, reason) for k, reason in targets.refusals(M4, op, g))
    assert why == {}  # a kernel runs it
    m0 = targets.get("cortex-m0")
    why = dict((k.name, reason) for k, reason in targets.registry.refusals(m0, *conv_graph((1, 4, 4, 8), 8, (1, 1))))
    assert why == {}
    reasons = dict((k.name, k.refusal(m0, op, g)) for k in targets.candidates("conv2d"))
    assert reasons["tinyc_conv_s8"] == "it runs on dsp cores, not plain"
    assert reasons["arm_convolve_1x1_s8_fast"] == "grouped convolution"


def test_report_names_each_layers_kernel_and_its_source(tmp_path):
    from test_targets import fc_graph
    op, g = fc_graph(1, 16, 8)
    prepared = for_target(g, targets.get("cortex-m55"))
    report = generate(prepared, CodegenOptions(target="cortex-m55")).report
    assert [(row["kernel"], row["kernel_source"]) for row in report["layers"]] == [("arm_fully_connected_s8",
                                                                                  "cmsis-nn")]
    assert report["runtime_sources"]["cmsis-nn"] == ["runtime_c/nn_fully_connected_s8.c"]
    assert report["layers"][0]["estimated_instructions"] > 0
