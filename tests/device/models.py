"""Tiny real .tflite models for the agent tests, generated with TensorFlow (seconds, not minutes)."""
from __future__ import annotations

import json
import os

import numpy as np

H = W = 12
CLASSES = 6


def _keras_cnn(tf, channels: int = 1):
    keras = tf.keras
    inp = keras.Input((H, W, channels))
    x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
    x = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(CLASSES, activation="softmax")(x)
    model = keras.Model(inp, out)
    rng = np.random.default_rng(7)
    model.set_weights([rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()])
    return model


def _convert(tf, model, quant: str = "float", io_type=None) -> bytes:
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    if quant == "int8":
        rng = np.random.default_rng(3)

        def rep():
            for _ in range(16):
                yield [rng.random((1,) + tuple(model.input_shape[1:]), dtype=np.float32)]

        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = rep
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = io_type
        conv.inference_output_type = io_type
    return conv.convert()


def _two_inputs(tf) -> bytes:
    keras = tf.keras
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    x = keras.layers.Concatenate()([keras.layers.Dense(5)(a), keras.layers.Dense(5)(b)])
    return _convert(tf, keras.Model([a, b], keras.layers.Dense(2)(x)))


def _hang(tf) -> bytes:
    """A WHILE loop whose condition never changes for positive inputs: invoke() never returns."""

    @tf.function(input_signature=[tf.TensorSpec([1], tf.float32)])
    def spin(x):
        return tf.while_loop(lambda i: i < x[0] + 1.0, lambda i: i * 1.0, [tf.constant(0.0)])

    conv = tf.lite.TFLiteConverter.from_concrete_functions([spin.get_concrete_function()], spin)
    return conv.convert()


def _custom_op(tf) -> bytes:
    """A model with an op no TFLite runtime implements (kept as a custom op)."""

    @tf.function(input_signature=[tf.TensorSpec([1, 4], tf.float32)])
    def f(x):
        return tf.math.igamma(x, x + 1.0)

    conv = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f)
    conv.allow_custom_ops = True
    return conv.convert()


def _invoke_fails(tf) -> bytes:
    """An image-shaped model that loads and allocates, then fails every invoke(): it gathers
    entry 50 of a 6-entry table (the index depends on the input, so conversion cannot catch it)."""
    table = tf.constant(np.arange(CLASSES, dtype=np.float32))

    @tf.function(input_signature=[tf.TensorSpec([1, H, W, 1], tf.float32)])
    def f(x):
        index = tf.cast(tf.reduce_mean(x, axis=[1, 2, 3]) * 0.0 + 50.0, tf.int32)
        return tf.gather(table, index)

    return tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()], f).convert()


def build_all(out_dir: str) -> dict:
    """Write every test model (and a small bundle) to out_dir; returns name -> path."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    tf.keras.utils.set_random_seed(1)
    paths = {}
    cnn = _keras_cnn(tf)
    blobs = {
        "fp32": _convert(tf, cnn),
        "int8": _convert(tf, cnn, "int8", tf.int8),
        "uint8": _convert(tf, cnn, "int8", tf.uint8),
        "two_inputs": _two_inputs(tf),
        "hang": _hang(tf),
        "custom_op": _custom_op(tf),
        "invoke_fails": _invoke_fails(tf),
    }
    for name, blob in blobs.items():
        paths[name] = os.path.join(out_dir, f"{name}.tflite")
        with open(paths[name], "wb") as f:
            f.write(blob)
    paths["bundle"] = _bundle(tf, out_dir, paths)
    return paths


def host_predictions(tf, model_path: str, pixels: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """The host side of the contract, computed independently with TensorFlow's interpreter."""
    interp = tf.lite.Interpreter(model_path=model_path)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    f = pixels.astype(np.float32) * np.float32(scale) + np.float32(offset)
    if inp["dtype"] != np.float32:
        s, zp = inp["quantization"]
        info = np.iinfo(inp["dtype"])
        f = np.clip(np.round(f / np.float32(s)) + zp, info.min, info.max)
    preds = []
    for i in range(len(pixels)):
        interp.set_tensor(inp["index"], f[i:i + 1].astype(inp["dtype"]))
        interp.invoke()
        preds.append(int(np.argmax(interp.get_tensor(out["index"])[0])))
    return np.asarray(preds, dtype=np.int64)


def _bundle(tf, out_dir: str, paths: dict) -> str:
    """A bundle per docs/contracts.md: variants, manifest.json and eval.npz with pred_<variant>."""
    import hashlib
    import shutil

    bundle = os.path.join(out_dir, "bundle")
    os.makedirs(bundle, exist_ok=True)
    rng = np.random.default_rng(11)
    x = rng.integers(0, 256, size=(60, H, W, 1), dtype=np.uint8)
    scale, offset = 1.0 / 255.0, 0.0
    variants, preds = {}, {}
    for v in ("fp32", "int8"):
        dst = os.path.join(bundle, f"{v}.tflite")
        shutil.copy(paths[v], dst)
        preds[v] = host_predictions(tf, dst, x, scale, offset)
        with open(dst, "rb") as f:
            variants[v] = {"file": f"{v}.tflite", "sha256": hashlib.sha256(f.read()).hexdigest(),
                           "size_bytes": os.path.getsize(dst), "host_top1": None}
    y = preds["fp32"].copy()        # labels = the float model's answers: fp32 top-1 must be exactly 1.0
    y[:6] = (y[:6] + 1) % CLASSES  # ... except for the first six images: top-1 = 54/60
    np.savez(os.path.join(bundle, "eval.npz"), x=x, y=y, **{f"pred_{v}": p for v, p in preds.items()})
    for v in variants:
        variants[v]["host_top1"] = float((preds[v] == y).mean())
    manifest = {"schema": "edgekit/bundle-v1", "name": "testbundle",
                "class_names": [f"class{i}" for i in range(CLASSES)],
                "input": {"height": H, "width": W, "channels": 1, "color": "grayscale", "layout": "NHWC",
                          "pixel_scale": scale, "pixel_offset": offset},
                "variants": variants, "eval": {"file": "eval.npz", "count": len(x)}}
    with open(os.path.join(bundle, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return bundle
