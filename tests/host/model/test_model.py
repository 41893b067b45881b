"""The model builder for several widths and input shapes: structure, ops and output."""
from __future__ import annotations

import numpy as np
import pytest

import keras  # required: a broken install must fail here, not skip

from host.model.architecture import build_model, count_macs  # noqa: E402


@pytest.mark.parametrize("shape,classes,alpha", [((28, 28, 1), 10, 1.0), ((28, 28, 1), 10, 0.5),
                                                 ((8, 8, 1), 10, 0.25), ((32, 32, 3), 4, 0.75),
                                                 ((96, 96, 3), 2, 0.25)])
def test_build(shape, classes, alpha):
    m = build_model(shape, classes, alpha=alpha)
    assert tuple(m.input_shape[1:]) == shape and m.output_shape == (None, classes)
    kinds = {type(layer).__name__ for layer in m.layers}
    assert {"DepthwiseConv2D", "Conv2D", "BatchNormalization", "ReLU", "GlobalAveragePooling2D",
            "Dropout", "Dense"} <= kinds
    assert all(layer.momentum == 0.9 for layer in m.layers if type(layer).__name__ == "BatchNormalization")
    out = m(np.random.rand(2, *shape).astype("float32"), training=False).numpy()
    assert out.shape == (2, classes) and np.allclose(out.sum(axis=1), 1, atol=1e-5)
    assert count_macs(m) > 0


def test_alpha_scales_width():
    small = build_model((28, 28, 1), 10, alpha=0.5).count_params()
    big = build_model((28, 28, 1), 10, alpha=1.0).count_params()
    assert big > 2.5 * small  # pointwise convs grow with alpha squared


def test_macs_counts_depthwise_and_pointwise():
    m = build_model((16, 16, 1), 2, alpha=1.0, blocks=((16, 1),), stem_filters=8, stem_stride=1)
    # stem 16*16*3*3*1*8 + dw 16*16*3*3*8 + pw 16*16*8*16 + dense 16*2
    assert count_macs(m) == 16 * 16 * 9 * 8 + 16 * 16 * 9 * 8 + 16 * 16 * 8 * 16 + 16 * 2


def test_block_kinds():
    """sep = depthwise + 1x1, pw = a 1x1 conv alone, conv = one full conv; MACs say which was built."""
    s = 8 * 8 * 9 * 8                                       # stem on 8x8x1, 8 filters
    sep = build_model((8, 8, 1), 2, blocks=((16, 1),), stem_filters=8)
    pw = build_model((8, 8, 1), 2, blocks=((16, 1, "pw"),), stem_filters=8)
    conv = build_model((8, 8, 1), 2, blocks=((16, 1, "conv"),), stem_filters=8)
    assert count_macs(sep) == s + 8 * 8 * 9 * 8 + 8 * 8 * 8 * 16 + 16 * 2
    assert count_macs(pw) == s + 8 * 8 * 8 * 16 + 16 * 2
    assert count_macs(conv) == s + 8 * 8 * 9 * 8 * 16 + 16 * 2
    assert not any(type(layer).__name__ == "DepthwiseConv2D" for layer in pw.layers + conv.layers)
    with pytest.raises(ValueError, match="stride 1"):
        build_model((8, 8, 1), 2, blocks=((16, 2, "pw"),), stem_filters=8)
    with pytest.raises(ValueError, match="not sep, pw or conv"):
        build_model((8, 8, 1), 2, blocks=((16, 1, "dw"),), stem_filters=8)
