"""Small real models for each task, with outputs the tests know by heart: a YOLO-style head, a
TFLite_Detection_PostProcess-style four-output detector, a fully convolutional segmenter, MoveNet
single- and multi-pose layouts and a raw any-tensor model. Built with TensorFlow once and cached
(tests/cached_models.py). The heads' values are constants (plus 0 x the input, so the converter
keeps the input), which is what makes hand-computed expectations possible."""
from __future__ import annotations

import os

import numpy as np

YOLO_HW = (64, 64)
YOLO_N = 1200
# (cx, cy, w, h) in input pixels, class id, score
YOLO_ROWS = (((20, 20, 10, 10), 0, 0.9),
             ((21, 20, 10, 10), 0, 0.8),     # IoU 0.818 with the first, same class: suppressed
             ((21, 20, 10, 10), 1, 0.7),     # the same box in another class: kept
             ((50, 50, 8, 12), 2, 0.6),
             ((40, 10, 6, 6), 2, 0.2))       # below the default threshold 0.25
SSD_BOXES = ((0.1, 0.2, 0.5, 0.6), (0.5, 0.5, 0.9, 1.0), (0.0, 0.0, 0.2, 0.2))  # ymin, xmin, ymax, xmax
SSD_CLASSES = (0, 17, 2)
SSD_SCORES = (0.95, 0.6, 0.3)
SEG_HW = (32, 48)
MOVENET = np.linspace(0.05, 0.95, 17 * 3, dtype=np.float32).reshape(1, 1, 17, 3)


def yolo_head() -> np.ndarray:
    """(1, 4+3, N), the (1, 4+C, N) layout of YOLOv8 exports, no objectness."""
    rows = np.zeros((YOLO_N, 7), dtype=np.float32)
    rows[:, :4] = (32, 32, 4, 4)
    for i, (box, cls, score) in enumerate(YOLO_ROWS):
        rows[i, :4] = box
        rows[i, 4 + cls] = score
    return rows.T[None]


def multipose() -> np.ndarray:
    out = np.zeros((1, 6, 56), dtype=np.float32)
    for p, score in enumerate((0.1, 0.8, 0.5)):        # person 0 is below the 0.2 default
        out[0, p, :51] = np.tile([0.25 + 0.1 * p, 0.5, 0.9], 17)
        out[0, p, 51:55] = (0.1, 0.2, 0.6, 0.7)
        out[0, p, 55] = score
    return out


def _const_model(tf, hw: tuple, outputs: list) -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1, hw[0], hw[1], 3], tf.float32)])
    def f(x):
        zero = tf.reduce_mean(x) * 0.0
        return tuple(tf.constant(o) + zero for o in outputs)
    return tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()


def _segmenter(tf) -> bytes:
    keras = tf.keras
    inp = keras.Input((SEG_HW[0], SEG_HW[1], 3), batch_size=1)
    conv = keras.layers.Conv2D(3, 1, use_bias=False)
    x = keras.layers.AveragePooling2D(2)(conv(inp))          # (1, 16, 24, 3): a class score per colour
    model = keras.Model(inp, keras.layers.Softmax()(x))
    conv.set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)])
    return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def _raw(tf) -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1, 16], tf.float32)])
    def f(x):
        return tf.reshape(x[:, :6] * 2.0, [1, 2, 3])
    return tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()


def build_all(out_dir: str) -> dict:
    import tensorflow as tf
    boxes = np.zeros((1, 10, 4), dtype=np.float32)
    boxes[0, :3] = SSD_BOXES
    classes = np.zeros((1, 10), dtype=np.float32)
    classes[0, :3] = SSD_CLASSES
    scores = np.zeros((1, 10), dtype=np.float32)
    scores[0, :3] = SSD_SCORES
    models = {
        "yolo": _const_model(tf, YOLO_HW, [yolo_head()]),
        "ssd": _const_model(tf, (32, 32), [boxes, classes, scores, np.array([3.0], dtype=np.float32)]),
        "segment": _segmenter(tf),
        "movenet": _const_model(tf, (64, 64), [MOVENET]),
        "multipose": _const_model(tf, (64, 64), [multipose()]),
        "raw": _raw(tf),
    }
    paths = {}
    for name, data in models.items():
        paths[name] = os.path.join(out_dir, f"{name}.tflite")
        with open(paths[name], "wb") as f:
            f.write(data)
    return paths
