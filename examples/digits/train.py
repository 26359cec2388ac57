"""Train the small digit classifier of the README's example and export it to ONNX (float).

Data: scikit-learn's bundled digits (1,797 images of 8x8 pixels, values 0..16, labels 0..9; BSD-3-Clause),
read from ../shared/models/data/digits_8x8.npz or, when absent, from scikit-learn itself. The network,
written for this script in numpy (forward and backward by hand, no framework):

    input [N, 1, 8, 8] (pixels / 16) -> Conv 3x3, 8 channels, pad 1 -> ReLU
    -> Conv 3x3, 16 channels, stride 2, pad 1 -> ReLU -> Flatten -> Gemm 256 -> 10 (logits)

trained with Adam on a fixed split (seed 0), then exported with onnx.helper (opset 13). The script
writes, next to itself: digits_cnn.onnx, calibration.npz (100 training images, the --calibration data)
and test.npz (the 360 held-out images and labels). Run once: python examples/digits/train.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
SHARED = HERE.parents[1].parent / "shared" / "models" / "data" / "digits_8x8.npz"
SEED, EPOCHS, BATCH, LEARNING_RATE = 0, 60, 32, 3e-3


def load_digits() -> tuple[np.ndarray, np.ndarray]:
    if SHARED.exists():
        data = np.load(SHARED)
        return data["x"].astype(np.float32), data["y"].astype(np.int64)
    from sklearn.datasets import load_digits as sklearn_digits  # only when the shared copy is absent
    d = sklearn_digits()
    return d.images.astype(np.float32), d.target.astype(np.int64)


def im2col(x: np.ndarray, k: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """[N, C, H, W] -> [N, OH, OW, C*k*k] windows (zero padding)."""
    n, c, h, w = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    cols = np.empty((n, oh, ow, c, k, k), x.dtype)
    for i in range(k):
        for j in range(k):
            cols[:, :, :, :, i, j] = xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride].transpose(0, 2, 3, 1)
    return cols.reshape(n, oh, ow, c * k * k), oh, ow


def col2im(cols: np.ndarray, shape, k: int, stride: int, pad: int) -> np.ndarray:
    n, c, h, w = shape
    oh, ow = cols.shape[1], cols.shape[2]
    cols = cols.reshape(n, oh, ow, c, k, k)
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), cols.dtype)
    for i in range(k):
        for j in range(k):
            xp[:, :, i:i + stride * oh:stride, j:j + stride * ow:stride] += cols[:, :, :, :, i, j].transpose(0, 3, 1, 2)
    return xp[:, :, pad:pad + h, pad:pad + w]


class Net:
    def __init__(self, rng: np.random.Generator) -> None:
        def he(*shape, fan_in):
            return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        self.p = {"w1": he(8, 1, 3, 3, fan_in=9), "b1": np.zeros(8, np.float32),
                  "w2": he(16, 8, 3, 3, fan_in=72), "b2": np.zeros(16, np.float32),
                  "w3": he(10, 256, fan_in=256), "b3": np.zeros(10, np.float32)}

    def forward(self, x: np.ndarray):
        p = self.p
        c1, h1, w1 = im2col(x, 3, 1, 1)
        a1 = np.maximum(c1 @ p["w1"].reshape(8, -1).T + p["b1"], 0)            # [N, 8, 8, 8] NHWC
        a1n = a1.transpose(0, 3, 1, 2)
        c2, _, _ = im2col(a1n, 3, 2, 1)
        a2 = np.maximum(c2 @ p["w2"].reshape(16, -1).T + p["b2"], 0)           # [N, 4, 4, 16]
        flat = a2.transpose(0, 3, 1, 2).reshape(len(x), -1)                     # NCHW flatten, as ONNX
        logits = flat @ p["w3"].T + p["b3"]
        return logits, (x, c1, a1, a1n, c2, a2, flat)

    def backward(self, dlogits: np.ndarray, cache) -> dict[str, np.ndarray]:
        x, c1, a1, a1n, c2, a2, flat = cache
        p, g = self.p, {}
        g["w3"], g["b3"] = dlogits.T @ flat, dlogits.sum(0)
        dflat = dlogits @ p["w3"]
        da2 = dflat.reshape(len(x), 16, 4, 4).transpose(0, 2, 3, 1) * (a2 > 0)
        g["w2"] = (da2.reshape(-1, 16).T @ c2.reshape(-1, c2.shape[-1])).reshape(p["w2"].shape)
        g["b2"] = da2.sum((0, 1, 2))
        dc2 = da2 @ p["w2"].reshape(16, -1)
        da1 = col2im(dc2, a1n.shape, 3, 2, 1).transpose(0, 2, 3, 1) * (a1 > 0)
        g["w1"] = (da1.reshape(-1, 8).T @ c1.reshape(-1, c1.shape[-1])).reshape(p["w1"].shape)
        g["b1"] = da1.sum((0, 1, 2))
        return g


def softmax_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    z = logits - logits.max(1, keepdims=True)
    prob = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    loss = -np.log(prob[np.arange(len(labels)), labels] + 1e-12).mean()
    prob[np.arange(len(labels)), labels] -= 1
    return float(loss), (prob / len(labels)).astype(np.float32)


def train(x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> Net:
    net = Net(rng)
    m = {k: np.zeros_like(v) for k, v in net.p.items()}
    v = {k: np.zeros_like(val) for k, val in net.p.items()}
    step = 0
    for epoch in range(EPOCHS):
        order = rng.permutation(len(x))
        for start in range(0, len(x), BATCH):
            batch = order[start:start + BATCH]
            logits, cache = net.forward(x[batch])
            loss, dlogits = softmax_cross_entropy(logits, y[batch])
            grads = net.backward(dlogits, cache)
            step += 1
            for k in net.p:  # Adam
                m[k] = 0.9 * m[k] + 0.1 * grads[k]
                v[k] = 0.999 * v[k] + 0.001 * grads[k] ** 2
                update = (m[k] / (1 - 0.9 ** step)) / (np.sqrt(v[k] / (1 - 0.999 ** step)) + 1e-8)
                net.p[k] = (net.p[k] - LEARNING_RATE * update).astype(np.float32)
        if epoch % 10 == 9:
            print(f"epoch {epoch + 1}: loss {loss:.4f}")
    return net


def export(net: Net, path: Path) -> None:
    p = net.p
    inits = [numpy_helper.from_array(p[k], k) for k in ("w1", "b1", "w2", "b2", "w3", "b3")]
    nodes = [helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], name="conv2", pads=[1, 1, 1, 1], strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
             helper.make_node("Flatten", ["r2"], ["flat"], name="flatten"),
             helper.make_node("Gemm", ["flat", "w3", "b3"], ["logits"], name="classifier", transB=1)]
    graph = helper.make_graph(nodes, "digits_cnn", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 8, 8])],
                              [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="tinyc examples/digits")
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main() -> None:
    images, labels = load_digits()
    x = (images / 16.0).astype(np.float32)[:, None]  # [N, 1, 8, 8] in 0..1
    rng = np.random.default_rng(SEED)
    order = rng.permutation(len(x))
    test, train_idx = order[:360], order[360:]
    net = train(x[train_idx], labels[train_idx], rng)
    accuracy = float((net.forward(x[test])[0].argmax(1) == labels[test]).mean())
    print(f"held-out accuracy (float, numpy): {accuracy:.4f} on {len(test)} images")
    export(net, HERE / "digits_cnn.onnx")
    np.savez_compressed(HERE / "calibration.npz", input=x[train_idx[:100]])
    np.savez_compressed(HERE / "test.npz", input=x[test], label=labels[test].astype(np.int8))
    print(f"wrote digits_cnn.onnx, calibration.npz, test.npz in {HERE}")


if __name__ == "__main__":
    main()
