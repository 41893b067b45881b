"""ONNX Runtime's variants: FP32 with an NHWC front, INT8 static QDQ on the calibration images."""
from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import pytest

from host.convert.interop import ort_variants as ov
from tests import onnx_models as om


@pytest.fixture(scope="module")
def mnist_nchw(tmp_path_factory):
    path, params = om.mnist(tmp_path_factory.mktemp("ortv") / "m.onnx", nchw=True)
    return path.read_bytes(), params


def test_an_nchw_model_takes_nhwc_and_computes_the_same(mnist_nchw):
    data, params = mnist_nchw
    model = onnx.ModelProto.FromString(data)
    assert ov.image_layout(model) == "NCHW"
    front = ov.nhwc_front(model)
    assert ov.image_layout(front) == "NHWC"
    dims = [d.dim_param or d.dim_value for d in front.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["N", 28, 28, 1]
    onnx.checker.check_model(front)
    x = np.random.default_rng(1).random((4, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(ov.run(front.SerializeToString(), x), om.ref_mnist(x, params), atol=1e-5)
    assert ov.nhwc_front(front) is front        # already NHWC: left as it is


def test_int8_is_static_qdq_calibrated_and_agrees_with_fp32(mnist_nchw):
    data, _ = mnist_nchw
    rng = np.random.default_rng(2)
    variants = ov.ort_variants(data, rng.random((32, 28, 28, 1), dtype=np.float32))
    assert set(variants) == set(ov.ORT_VARIANTS) and all(ov.is_onnx(b) for b in variants.values())
    ops = Counter(n.op_type for n in onnx.ModelProto.FromString(variants["ort_int8"]).graph.node)
    assert ops["QuantizeLinear"] >= 4 and ops["DequantizeLinear"] >= 4
    scales = {i.name: onnx.numpy_helper.to_array(i) for i in onnx.ModelProto.FromString(variants["ort_int8"])
              .graph.initializer}
    assert any(v.dtype == np.int8 and v.ndim == 4 for v in scales.values())   # int8 conv weights
    x = rng.random((100, 28, 28, 1), dtype=np.float32)
    fp32, int8 = ov.run(variants["ort_fp32"], x), ov.run(variants["ort_int8"], x)
    assert np.mean(fp32.argmax(1) == int8.argmax(1)) >= 0.95
    assert 0 < np.abs(fp32 - int8).max() < 0.05              # quantised: close, not identical


def test_a_model_ort_cannot_quantise_is_one_line(tmp_path):
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Frobnicate", ["x"], ["y"], domain="edgekit.test")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("edgekit.test", 1)])
    for data in (b"\x08\x08 not a model", model.SerializeToString()):
        with pytest.raises(ov.ModelError, match="ONNX Runtime cannot quantise this model to INT8") as err:
            ov.quantize_int8_qdq(data, np.zeros((2, 4, 4, 1), np.float32))
        assert "\n" not in str(err.value)


def test_with_logits_both_variants_end_before_the_softmax(mnist_nchw):
    """The manifest's softmax entry is one for every variant: ORT's must give logits too."""
    data, params = mnist_nchw
    rng = np.random.default_rng(4)
    variants = ov.ort_variants(data, rng.random((32, 28, 28, 1), dtype=np.float32), logits=True)
    x = rng.random((50, 28, 28, 1), dtype=np.float32)
    probs = om.ref_mnist(x, params)
    fp32, int8 = ov.run(variants["ort_fp32"], x), ov.run(variants["ort_int8"], x)
    assert not np.allclose(fp32.sum(1), 1.0, atol=1e-3)            # logits, not probabilities
    e = np.exp(fp32 - fp32.max(1, keepdims=True))
    np.testing.assert_allclose(e / e.sum(1, keepdims=True), probs, atol=1e-5)
    assert np.mean(int8.argmax(1) == probs.argmax(1)) >= 0.95
    names = [o.name for o in onnx.ModelProto.FromString(variants["ort_fp32"]).graph.output]
    assert names == [o.name for o in onnx.ModelProto.FromString(data).graph.output]   # the output keeps its name


def test_logits_asked_of_a_model_without_a_final_softmax_is_one_line(tmp_path):
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 4, 1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    with pytest.raises(ov.ModelError, match="ends in Relu, not Softmax.*--softmax graph") as err:
        ov.ort_variants(model.SerializeToString(), np.zeros((2, 4, 4, 1), np.float32), logits=True)
    assert "\n" not in str(err.value)
