"""A MobileNet-style CNN built from depthwise-separable blocks, kept INT8-friendly.

ReLU6 bounds activations (good for per-tensor activation ranges), BatchNorm follows every conv so
the converter folds it away, and every op is in the TFLite INT8 builtin set.
"""
from __future__ import annotations

from typing import Sequence

import keras
from keras import layers

from host.config import DEFAULTS


def _filters(n: int, alpha: float) -> int:
    """Width multiplier, rounded to a multiple of 8 like MobileNet (and never below 8)."""
    return max(8, int(n * alpha + 4) // 8 * 8)


def _conv_bn_relu6(x, filters: int, kernel: int, stride: int, momentum: float, name: str):
    x = layers.Conv2D(filters, kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_bn")(x)
    return layers.ReLU(6.0, name=f"{name}_relu6")(x)


def _separable_block(x, filters: int, stride: int, momentum: float, name: str, kernel: int = 3):
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dw")(x)
    x = layers.BatchNormalization(momentum=momentum, name=f"{name}_dw_bn")(x)
    x = layers.ReLU(6.0, name=f"{name}_dw_relu6")(x)
    return _conv_bn_relu6(x, filters, 1, 1, momentum, f"{name}_pw")


def _pointwise_block(x, filters: int, momentum: float, name: str):
    """A 1x1 conv alone (no depthwise before it): mixes channels at full INT8 speed."""
    return _conv_bn_relu6(x, filters, 1, 1, momentum, f"{name}_pw")


def build_model(input_shape: Sequence[int], num_classes: int, alpha: float = DEFAULTS.alpha,
                blocks: Sequence[tuple[int, int]] = DEFAULTS.blocks, stem_filters: int = DEFAULTS.stem_filters,
                dropout: float = DEFAULTS.dropout, bn_momentum: float = DEFAULTS.bn_momentum,
                stem_stride: int = DEFAULTS.stem_stride, kernel: int = DEFAULTS.kernel) -> keras.Model:
    """Stem conv -> blocks (filters, stride[, kind]) -> global average pool -> dropout -> dense.

    A block's optional third element is its kind: "sep" (the default: depthwise 3x3 + 1x1), "pw"
    (a 1x1 conv alone, stride 1 only) or "conv" (one full kernel x kernel conv). Why the default
    mixes them: with XNNPACK, INT8 convs with many input channels (1x1, or a full 3x3) run at
    ~0.27-0.35x their FP32 time, while INT8 depthwise convs, the more so on few channels, and a
    stem conv on one input channel run at 1.0-2x. So the default has a thin 16-filter stem, a full
    conv for its first (few-channel) block, a depthwise conv only where a later block strides, and
    1x1 convs elsewhere: INT8 p50 ~0.32x FP32 (make perf; it was 0.39), mnist5k INT8 top-1 98.4 %
    (was 98.3 %). A stem at stride 2 was faster still but cost ~0.5 pp of top-1 on 28x28 digits.

    The input is float in [0, 1] (pixel / 255); normalisation is outside the model so that the
    INT8 input quantisation maps pixels 1:1 (q = pixel - 128).
    Inputs under 16 px keep their resolution in the stem (stride 1): 8x8 digits have none to spare.
    `kernel` is the depthwise kernel size (the model search varies it; the default is 3).
    """
    h, w, c = (int(d) for d in input_shape)
    if min(h, w) < 16:
        stem_stride = 1
    inputs = keras.Input(shape=(h, w, c), name="image")
    x = _conv_bn_relu6(inputs, _filters(stem_filters, alpha), 3, stem_stride, bn_momentum, "stem")
    size = min(h, w) // stem_stride
    for i, (filters, stride, *rest) in enumerate(blocks):
        if stride > 1 and size < 2:  # never shrink below 1x1 (e.g. 8x8 digits)
            stride = 1
        size = -(-size // stride)
        kind = rest[0] if rest else "sep"
        if kind == "pw":
            if stride != 1:
                raise ValueError(f"block {i + 1}: a pointwise block (\"pw\") has stride 1")
            x = _pointwise_block(x, _filters(filters, alpha), bn_momentum, f"block{i + 1}")
        elif kind == "conv":
            x = _conv_bn_relu6(x, _filters(filters, alpha), kernel, stride, bn_momentum, f"block{i + 1}")
        elif kind != "sep":
            raise ValueError(f"block {i + 1}: kind {kind!r} is not sep, pw or conv")
        else:
            x = _separable_block(x, _filters(filters, alpha), stride, bn_momentum, f"block{i + 1}", kernel)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", name="classifier")(x)
    return keras.Model(inputs, outputs, name=f"mobilenet_style_a{alpha:g}")


def count_macs(model: keras.Model) -> int:
    """Multiply-accumulates of one inference (convs and dense; BN is folded, activations are free)."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D, layers.Dense)):
            out = layer.output.shape
            kernel = layer.kernel.shape
            if isinstance(layer, layers.Dense):
                macs += int(kernel[0] * kernel[1])
            else:  # conv kernel (k, k, in, out); depthwise (k, k, channels, 1): same product
                macs += int(out[1] * out[2] * kernel[0] * kernel[1] * kernel[2] * kernel[3])
    return macs
