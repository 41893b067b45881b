"""Seed models for the fuzz cases, made with TensorFlow in a child process (TF stays out of pytest).

`python -m tests.reliability.make_models OUT_DIR` writes:
  fp32.tflite / int8.tflite   a tiny real bundle (tests.deploy.make_bundle), the mutation seeds
  bad_tensor_index.tflite     a valid flatbuffer whose first operator reads tensor len(tensors)+7
  bad_buffer_index.tflite     a valid flatbuffer whose first tensor points at a buffer that does not exist
  invoke_fails.tflite         loads and allocates fine, but GATHER reads index 100 of 4 at invoke()
  never_returns.tflite        a WHILE loop whose condition never changes: invoke() never returns
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def invoke_fails(tf) -> bytes:
    """The index is computed from the input, so the converter cannot fold (and reject) it."""
    table = tf.constant([1.0, 2.0, 3.0, 4.0])

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def f(x):
        idx = tf.cast(x * 0.0 + 100.0, tf.int32)
        return tf.gather(table, idx)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return conv.convert()


def never_returns(tf) -> bytes:
    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def f(x):
        return tf.while_loop(lambda i: i < 1.0 + 0.0 * x[0], lambda i: i * 1.0, [tf.constant(0.0)])

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    return conv.convert()


def with_bad_index(model_bytes: bytes, what: str) -> bytes:
    from tensorflow.lite.tools import flatbuffer_utils as fb
    model = fb.read_model_from_bytearray(bytearray(model_bytes))
    graph = model.subgraphs[0]
    if what == "tensor":
        graph.operators[0].inputs[0] = len(graph.tensors) + 7
    else:
        graph.tensors[0].buffer = len(model.buffers) + 7
    return bytes(fb.convert_object_to_bytearray(model))


def main(out: Path) -> None:
    import tensorflow as tf
    from tests.deploy.make_bundle import make
    make(out / "bundle")
    for name in ("fp32", "int8"):
        (out / f"{name}.tflite").write_bytes((out / "bundle" / f"{name}.tflite").read_bytes())
    fp32 = (out / "fp32.tflite").read_bytes()
    (out / "bad_tensor_index.tflite").write_bytes(with_bad_index(fp32, "tensor"))
    (out / "bad_buffer_index.tflite").write_bytes(with_bad_index(fp32, "buffer"))
    (out / "invoke_fails.tflite").write_bytes(invoke_fails(tf))
    (out / "never_returns.tflite").write_bytes(never_returns(tf))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
