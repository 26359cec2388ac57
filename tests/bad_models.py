"""Small ONNX models, good and bad, written the way exporters and quantisers write them, for the bad-input
corpus (tests/test_bad_inputs.py). Each builder writes one model file and returns its path."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

INT8, UINT8, INT16, INT32, FLOAT = TensorProto.INT8, TensorProto.UINT8, TensorProto.INT16, TensorProto.INT32, TensorProto.FLOAT
_NP = {INT8: np.int8, UINT8: np.uint8, INT16: np.int16, INT32: np.int32, FLOAT: np.float32,
       TensorProto.INT64: np.int64}


def save(path: Path, nodes, inputs, outputs, initializers=(), opset: int = 13, check: bool = True) -> Path:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs, list(initializers)),
                              opset_imports=[helper.make_opsetid("", opset)])
    if check:
        onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def tensor(name: str, elem: int, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, list(shape) if shape is not None else None)


def const(name: str, value, elem: int | None = None) -> onnx.TensorProto:
    array = np.asarray(value, dtype=_NP[elem] if elem is not None else None)
    return numpy_helper.from_array(array, name)


def qdq_conv(path: Path, *, channels: int = 4, size: int = 4, act: int = INT8, act_zp: int = 0,
             weights=None, w_scale=0.02, w_zp=0, w_elem: int = INT8, bias=0, bias_elem: int = INT32,
             bias_scale: float | None = None, bias_zp: int = 0, float_bias=None, kernel: int = 1,
             input_shape=None) -> Path:
    """A QDQ convolution as onnxruntime's quantize_static writes it: int8 input -> DequantizeLinear ->
    Conv (weights and bias through DequantizeLinear) -> QuantizeLinear -> int8 output."""
    c = channels
    x_scale = 0.1
    w = np.ones((c, c, kernel, kernel), _NP[w_elem]) if weights is None else np.asarray(weights, _NP[w_elem])
    inits = [const("xs", x_scale, FLOAT), const("xz", act_zp, act), const("w", w), const("ws", w_scale, FLOAT),
             const("wz", w_zp, w_elem), const("ys", 0.2, FLOAT), const("yz", act_zp, act)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "xs", "xz"], ["xf"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="dq_w")]
    conv_inputs = ["xf", "wf"]
    if float_bias is not None:
        inits.append(const("bf", np.full(c, float_bias, np.float32)))
        conv_inputs.append("bf")
    elif bias is not None:
        inits += [const("b", np.full(c, bias), bias_elem),
                  const("bs", x_scale * w_scale if bias_scale is None else bias_scale, FLOAT),
                  const("bz", bias_zp, bias_elem)]
        nodes.append(helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bfq"], name="dq_b"))
        conv_inputs.append("bfq")
    pad = kernel // 2
    nodes += [helper.make_node("Conv", conv_inputs, ["yf"], name="conv", pads=[pad] * 4),
              helper.make_node("QuantizeLinear", ["yf", "ys", "yz"], ["y"], name="q_y")]
    shape = input_shape or [1, c, size, size]
    out_shape = None if input_shape else [1, c, size, size]
    return save(path, nodes, [tensor("x", act, shape)], [tensor("y", act, out_shape)], inits)


def float_relu(path: Path, shape=(1, 4), op: str = "Relu") -> Path:
    return save(path, [helper.make_node(op, ["x"], ["y"], name="act")], [tensor("x", FLOAT, shape)],
                [tensor("y", FLOAT, shape)])


def float_pool_in_padding(path: Path) -> Path:
    """A float MaxPool whose windows lie in the padding (no kernel pools nothing)."""
    node = helper.make_node("MaxPool", ["x"], ["y"], name="pool", kernel_shape=[2, 2], pads=[2, 2, 2, 2],
                            strides=[2, 2])
    return save(path, [node], [tensor("x", FLOAT, (1, 1, 4, 4))], [tensor("y", FLOAT, (1, 1, 3, 3))])


def passthrough(path: Path, elem: int = INT8) -> Path:
    """No nodes: the graph output is the graph input."""
    x = tensor("x", elem, [1, 8])
    return save(path, [], [x], [x])


def int8_relu_also_returning_input(path: Path) -> Path:
    """The input is returned as it is and also passed through a quantised ReLU."""
    inits = [const("s", 0.1, FLOAT), const("z", 0, INT8)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq"),
             helper.make_node("Relu", ["xf"], ["rf"], name="relu"),
             helper.make_node("QuantizeLinear", ["rf", "s", "z"], ["y"], name="q")]
    return save(path, nodes, [tensor("x", INT8, [1, 8])], [tensor("y", INT8, [1, 8]), tensor("x", INT8, [1, 8])],
                inits)


def duplicate_outputs(path: Path) -> Path:
    inits = [const("s", 0.1, FLOAT), const("z", 0, INT8)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq"),
             helper.make_node("Relu", ["xf"], ["rf"], name="relu"),
             helper.make_node("QuantizeLinear", ["rf", "s", "z"], ["y"], name="q")]
    y = tensor("y", INT8, [1, 8])
    return save(path, nodes, [tensor("x", INT8, [1, 8])], [y, y], inits, check=False)


def named_node_conv(path: Path, name: str) -> Path:
    """A QDQ convolution whose Conv node carries `name` (a name that ends up in C comments)."""
    qdq_conv(path)
    model = onnx.load(path)
    for node in model.graph.node:
        if node.name == "conv":
            node.name = name
    onnx.save(model, path)
    return path


def qdq_gemm(path: Path, *, trans_a: int = 0) -> Path:
    inits = [const("s", 0.1, FLOAT), const("z", 0, INT8), const("w", np.ones((4, 4), np.int8)),
             const("ws", 0.02, FLOAT), const("ys", 0.2, FLOAT)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w", "ws", "z"], ["wf"], name="dq_w"),
             helper.make_node("Gemm", ["xf", "wf"], ["yf"], name="gemm", transA=trans_a),
             helper.make_node("QuantizeLinear", ["yf", "ys", "z"], ["y"], name="q_y")]
    return save(path, nodes, [tensor("x", INT8, [4, 4])], [tensor("y", INT8, [4, 4])], inits)


def conv1d(path: Path) -> Path:
    """A QDQ 1-D convolution with an int32 bias, as onnxruntime quantises PyTorch's Conv1d."""
    inits = [const("s", 0.1, FLOAT), const("z", 0, INT8), const("w", np.ones((4, 4, 3), np.int8)),
             const("ws", 0.02, FLOAT), const("b", np.zeros(4, np.int32)), const("bs", 0.002, FLOAT),
             const("bz", 0, INT32), const("ys", 0.2, FLOAT)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w", "ws", "z"], ["wf"], name="dq_w"),
             helper.make_node("DequantizeLinear", ["b", "bs", "bz"], ["bf"], name="dq_b"),
             helper.make_node("Conv", ["xf", "wf", "bf"], ["yf"], name="conv1d", pads=[1, 1]),
             helper.make_node("QuantizeLinear", ["yf", "s", "z"], ["y"], name="q_y")]
    return save(path, nodes, [tensor("x", INT8, [1, 4, 16])], [tensor("y", INT8, [1, 4, 16])], inits)


def float_weights_quantized_in_graph(path: Path, value: float) -> Path:
    """Float weights quantised inside the graph (QuantizeLinear -> DequantizeLinear of an initializer),
    one of them `value`."""
    w = np.ones((4, 4, 1, 1), np.float32)
    w[0, 0, 0, 0] = value
    inits = [const("s", 0.1, FLOAT), const("z", 0, INT8), const("w", w), const("ws", 0.02, FLOAT)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq_x"),
             helper.make_node("QuantizeLinear", ["w", "ws", "z"], ["wq"], name="q_w"),
             helper.make_node("DequantizeLinear", ["wq", "ws", "z"], ["wf"], name="dq_w"),
             helper.make_node("Conv", ["xf", "wf"], ["yf"], name="conv"),
             helper.make_node("QuantizeLinear", ["yf", "s", "z"], ["y"], name="q_y")]
    return save(path, nodes, [tensor("x", INT8, [1, 4, 4, 4])], [tensor("y", INT8, [1, 4, 4, 4])], inits)


def cycle(path: Path) -> Path:
    nodes = [helper.make_node("Relu", ["b"], ["a"], name="r1"), helper.make_node("Relu", ["a"], ["b"], name="r2"),
             helper.make_node("Add", ["x", "a"], ["y"], name="add")]
    return save(path, nodes, [tensor("x", FLOAT, [1, 4])], [tensor("y", FLOAT, [1, 4])], check=False)


def missing_initializer(path: Path) -> Path:
    nodes = [helper.make_node("Add", ["x", "bias"], ["y"], name="add")]
    return save(path, nodes, [tensor("x", FLOAT, [1, 4])], [tensor("y", FLOAT, [1, 4])], check=False)


def external_data_missing(path: Path) -> Path:
    w = TensorProto(name="w", data_type=FLOAT, dims=[4])
    w.data_location = TensorProto.EXTERNAL
    entry = w.external_data.add()
    entry.key, entry.value = "location", "weights_that_are_not_there.bin"
    nodes = [helper.make_node("Add", ["x", "w"], ["y"], name="add")]
    return save(path, nodes, [tensor("x", FLOAT, [1, 4])], [tensor("y", FLOAT, [1, 4])], [w], check=False)


def opset(path: Path, version: int) -> Path:
    return save(path, [helper.make_node("Relu", ["x"], ["y"], name="r")], [tensor("x", FLOAT, [1, 4])],
                [tensor("y", FLOAT, [1, 4])], opset=version, check=False)


def unknown_op(path: Path, op_type: str = "Einsum", domain: str = "") -> Path:
    node = helper.make_node(op_type, ["x"], ["y"], name="odd", domain=domain, equation="ij->ji") if op_type == "Einsum" \
        else helper.make_node(op_type, ["x"], ["y"], name="odd", domain=domain)
    model = helper.make_model(helper.make_graph([node], "g", [tensor("x", FLOAT, [4, 4])], [tensor("y", FLOAT, [4, 4])]),
                              opset_imports=[helper.make_opsetid("", 13)] +
                              ([helper.make_opsetid(domain, 1)] if domain else []))
    onnx.save(model, path)
    return path


def duplicate_node_names(path: Path) -> Path:
    """Two nodes with the same name (onnxruntime refuses the model; the ONNX checker does not)."""
    inits = [const("s", 0.1, FLOAT), const("z", 0, INT8)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="same"),
             helper.make_node("Relu", ["xf"], ["rf"], name="same"),
             helper.make_node("QuantizeLinear", ["rf", "s", "z"], ["y"], name="q")]
    return save(path, nodes, [tensor("x", INT8, [1, 8])], [tensor("y", INT8, [1, 8])], inits, check=False)


def two_producers(path: Path) -> Path:
    nodes = [helper.make_node("Relu", ["x"], ["y"], name="r1"), helper.make_node("Relu", ["x"], ["y"], name="r2")]
    return save(path, nodes, [tensor("x", FLOAT, [1, 4])], [tensor("y", FLOAT, [1, 4])], check=False)


def dynamic_input(path: Path) -> Path:
    return float_relu(path, shape=("batch", 4))


def int64_input(path: Path) -> Path:
    return save(path, [helper.make_node("Identity", ["x"], ["y"], name="id")], [tensor("x", TensorProto.INT64, [1, 4])],
                [tensor("y", TensorProto.INT64, [1, 4])])


def reshape_to_another_size(path: Path) -> Path:
    """A Reshape to a shape with a different number of elements."""
    nodes = [helper.make_node("Reshape", ["x", "shape"], ["y"], name="reshape")]
    return save(path, nodes, [tensor("x", FLOAT, [2, 4])], [tensor("y", FLOAT, None)],
                [const("shape", [3, 3], TensorProto.INT64)], check=False)


def long_dot_product(path: Path, depth: int = 70_000) -> Path:
    """A quantised fully connected layer whose int32 accumulator can overflow: `depth` weights of -128
    times inputs up to 255 away from the zero point."""
    inits = [const("s", 0.1, FLOAT), const("z", -128, INT8), const("w", np.full((1, depth), -128, np.int8)),
             const("ws", 0.001, FLOAT), const("wz", 0, INT8), const("ys", 1.0, FLOAT)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq_x"),
             helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], name="dq_w"),
             helper.make_node("Gemm", ["xf", "wf"], ["yf"], name="fc", transB=1),
             helper.make_node("QuantizeLinear", ["yf", "ys", "z"], ["y"], name="q_y")]
    return save(path, nodes, [tensor("x", INT8, [1, depth])], [tensor("y", INT8, [1, 1])], inits)


def per_axis_activation(path: Path) -> Path:
    """An activation quantised per channel (axis 1), which integer kernels cannot take."""
    inits = [const("s", [0.1, 0.2, 0.3, 0.4], FLOAT), const("z", [0, 0, 0, 0], INT8), const("ys", 0.1, FLOAT),
             const("yz", 0, INT8)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq", axis=1),
             helper.make_node("Relu", ["xf"], ["rf"], name="relu"),
             helper.make_node("QuantizeLinear", ["rf", "ys", "yz"], ["y"], name="q")]
    return save(path, nodes, [tensor("x", INT8, [1, 4, 2, 2])], [tensor("y", INT8, [1, 4, 2, 2])], inits)


def bad_scale(path: Path, scale: float) -> Path:
    inits = [const("s", scale, FLOAT), const("z", 0, INT8), const("ys", 0.1, FLOAT)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq"),
             helper.make_node("Relu", ["xf"], ["rf"], name="relu"),
             helper.make_node("QuantizeLinear", ["rf", "ys", "z"], ["y"], name="q")]
    return save(path, nodes, [tensor("x", INT8, [1, 8])], [tensor("y", INT8, [1, 8])], inits)


def zero_point_out_of_range(path: Path) -> Path:
    """A zero point stored as int32 with a value no int8 tensor can hold."""
    inits = [const("s", 0.1, FLOAT), const("z", 300, INT32), const("ys", 0.1, FLOAT), const("yz", 0, INT8)]
    nodes = [helper.make_node("DequantizeLinear", ["x", "s", "z"], ["xf"], name="dq"),
             helper.make_node("Relu", ["xf"], ["rf"], name="relu"),
             helper.make_node("QuantizeLinear", ["rf", "ys", "yz"], ["y"], name="q")]
    return save(path, nodes, [tensor("x", INT32, [1, 8])], [tensor("y", INT8, [1, 8])], inits, check=False)


def nan_input_model(path: Path) -> Path:
    """Float in, QuantizeLinear first: what a NaN input becomes is defined by the quantiser."""
    inits = [const("s", 0.05, FLOAT), const("z", 3, INT8), const("ys", 0.05, FLOAT)]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="q"),
             helper.make_node("DequantizeLinear", ["q", "s", "z"], ["xf"], name="dq"),
             helper.make_node("Relu", ["xf"], ["rf"], name="relu"),
             helper.make_node("QuantizeLinear", ["rf", "ys", "z"], ["rq"], name="q2"),
             helper.make_node("DequantizeLinear", ["rq", "ys", "z"], ["y"], name="dq2")]
    return save(path, nodes, [tensor("x", FLOAT, [1, 8])], [tensor("y", FLOAT, [1, 8])], inits)
