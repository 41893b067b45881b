"""Small ONNX models built with onnx.helper, and NumPy references for what they compute.

Why our own: no model hub is reachable, and a model whose every weight the test knows gives a
reference the runtime can be checked against. Image models take NHWC input (a leading Transpose,
as the host's ONNX variants have) unless nchw=True (how PyTorch exports them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

OPSET = 17


def _onnx():
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    return onnx, TensorProto, helper, numpy_helper


class Graph:
    """Nodes and weights added in order; `save` writes a checked model."""

    def __init__(self, rng: np.random.Generator):
        self.rng, self.nodes, self.inits, self.params = rng, [], [], {}

    def weight(self, name: str, shape: tuple, scale: float = 0.5) -> str:
        _, _, _, numpy_helper = _onnx()
        value = self.rng.normal(0, scale, shape).astype(np.float32)
        self.params[name] = value
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list, output: str, **attrs) -> str:
        _, _, helper, _ = _onnx()
        self.nodes.append(helper.make_node(op, inputs, [output], name=f"{op.lower()}_{len(self.nodes)}", **attrs))
        return output

    def save(self, path: Path, in_shape: list, out: str, out_shape: list, opset: int = OPSET) -> Path:
        onnx, TensorProto, helper, _ = _onnx()
        graph = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                                  [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, str(path))
        return Path(path)


def _image_input(g: Graph, nchw: bool) -> str:
    return "x" if nchw else g.node("Transpose", ["x"], "x_nchw", perm=[0, 3, 1, 2])


def conv(path: Path, size: int = 16, channels: int = 3, nchw: bool = False, seed: int = 0) -> tuple:
    """Conv 3x3 (8 filters, pad 1) + ReLU + global average pool: (path, params)."""
    g = Graph(np.random.default_rng(seed))
    x = _image_input(g, nchw)
    c = g.node("Conv", [x, g.weight("w", (8, channels, 3, 3)), g.weight("b", (8,))], "c", pads=[1, 1, 1, 1])
    p = g.node("GlobalAveragePool", [g.node("Relu", [c], "r")], "p")
    shape = ["N", channels, size, size] if nchw else ["N", size, size, channels]
    return g.save(path, shape, g.node("Flatten", [p], "y"), ["N", 8]), g.params


def depthwise(path: Path, size: int = 12, channels: int = 4, seed: int = 1) -> tuple:
    """Depthwise 3x3 conv (group = channels, pad 1), output kept NCHW: (path, params)."""
    g = Graph(np.random.default_rng(seed))
    x = _image_input(g, False)
    g.node("Conv", [x, g.weight("w", (channels, 1, 3, 3)), g.weight("b", (channels,))], "y",
           pads=[1, 1, 1, 1], group=channels)
    return g.save(path, [1, size, size, channels], "y", [1, channels, size, size]), g.params


def linear(path: Path, n_in: int = 16, n_out: int = 4, seed: int = 2) -> tuple:
    """y = x W + b (Gemm): (path, params)."""
    g = Graph(np.random.default_rng(seed))
    g.node("Gemm", ["x", g.weight("w", (n_in, n_out)), g.weight("b", (n_out,))], "y")
    return g.save(path, [1, n_in], "y", [1, n_out]), g.params


def mnist(path: Path, nchw: bool = False, seed: int = 3, opset: int = OPSET) -> tuple:
    """An MNIST-size classifier, 28x28x1 -> 10 softmax: conv s2, depthwise, pointwise, dense."""
    g = Graph(np.random.default_rng(seed))
    x = _image_input(g, nchw)
    a = g.node("Relu", [g.node("Conv", [x, g.weight("w1", (8, 1, 3, 3)), g.weight("b1", (8,))], "c1",
                               strides=[2, 2], pads=[1, 1, 1, 1])], "r1")
    a = g.node("Relu", [g.node("Conv", [a, g.weight("w2", (8, 1, 3, 3)), g.weight("b2", (8,))], "c2",
                               pads=[1, 1, 1, 1], group=8)], "r2")
    a = g.node("Relu", [g.node("Conv", [a, g.weight("w3", (16, 8, 1, 1), 0.3), g.weight("b3", (16,))], "c3")], "r3")
    a = g.node("Flatten", [g.node("GlobalAveragePool", [a], "p")], "f")
    logits = g.node("Gemm", [a, g.weight("w4", (16, 10)), g.weight("b4", (10,))], "logits")
    shape = ["N", 1, 28, 28] if nchw else ["N", 28, 28, 1]
    return g.save(path, shape, g.node("Softmax", [logits], "y", axis=1), ["N", 10], opset), g.params


# ------------------------------------------------------------------ NumPy references

def ref_conv(x_nchw: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int = 1, pad: int = 1,
             group: int = 1) -> np.ndarray:
    """ONNX Conv (square kernel, symmetric padding) by explicit patches."""
    n, c, h, wd = x_nchw.shape
    k = w.shape[2]
    xp = np.pad(x_nchw, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    oh, ow = (h + 2 * pad - k) // stride + 1, (wd + 2 * pad - k) // stride + 1
    out = np.zeros((n, w.shape[0], oh, ow), np.float64)
    per_in, per_out = c // group, w.shape[0] // group
    for o in range(w.shape[0]):
        gi = o // per_out
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, gi * per_in:(gi + 1) * per_in, i * stride:i * stride + k, j * stride:j * stride + k]
                out[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3)) + b[o]
    return out


def ref_mnist(x_nhwc: np.ndarray, p: dict) -> np.ndarray:
    relu = lambda v: np.maximum(v, 0)  # noqa: E731
    a = relu(ref_conv(x_nhwc.transpose(0, 3, 1, 2), p["w1"], p["b1"], stride=2))
    a = relu(ref_conv(a, p["w2"], p["b2"], group=8))
    a = relu(ref_conv(a, p["w3"], p["b3"], pad=0))
    logits = a.mean(axis=(2, 3)) @ p["w4"] + p["b4"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)
