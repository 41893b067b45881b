"""Tiny real models and data for the bring-your-own-model tests (built here, nothing downloaded).

`python -m tests.host.pipeline.byom_models OUT` writes into OUT: model.keras, legacy.h5 (Keras 2 conventions:
the model_config JSON rewritten to the form Keras 2 wrote, including DepthwiseConv2D's `groups`),
saved_model/ (a SavedModel with serving_default), eval/ (one PNG folder per class), calib/
(unlabelled PNGs), eval.csv (MLPerf Tiny y_labels.csv layout), test.npz, labels.txt.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np

CLASSES = [str(i) for i in range(10)]


def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits as uint8 (N,8,8) pixels, labels 0..9 (offline)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.round(d.images * (255.0 / 16.0)).astype(np.uint8), d.target.astype(np.int64)


def build_and_train(x: np.ndarray, y: np.ndarray, seconds_of_training: int = 12):
    """A tiny MobileNet-ish net (DepthwiseConv2D included), trained briefly on [0,1] pixels."""
    import keras

    keras.utils.set_random_seed(0)
    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(16, 3, padding="same", activation="relu6")(inp)
    h = keras.layers.DepthwiseConv2D(3, padding="same", activation="relu6")(h)
    h = keras.layers.Conv2D(32, 1, activation="relu6")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(10, activation="softmax")(h)
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x[..., None].astype("float32") / 255.0, y, epochs=seconds_of_training, batch_size=64, verbose=0)
    return model


def _keras2_initializer(v):
    if isinstance(v, dict) and "class_name" in v and "module" in v:
        return {"class_name": v["class_name"], "config": v.get("config", {})}
    return v


def keras2_config(cfg: dict) -> dict:
    """A Keras 3 functional config rewritten in the shape Keras 2.x wrote into .h5 files."""
    for layer in cfg["config"]["layers"]:
        c = layer["config"]
        if isinstance(c.get("dtype"), dict):
            c["dtype"] = c["dtype"].get("config", {}).get("name", "float32")
        for k in list(c):
            c[k] = _keras2_initializer(c[k])
        if layer["class_name"] == "InputLayer":
            c["batch_input_shape"] = c.pop("batch_shape")
            c.pop("optional", None)
        if layer["class_name"] == "DepthwiseConv2D":
            c["groups"] = 1   # Keras 2 wrote it; Keras 3 refuses it
        c.pop("quantization_config", None)
        nodes = []
        for node in layer.get("inbound_nodes", []):
            nodes.append([[a["config"]["keras_history"][0], a["config"]["keras_history"][1],
                           a["config"]["keras_history"][2], {}] for a in node["args"]])
        layer["inbound_nodes"] = nodes
    cfg["config"]["input_layers"] = [cfg["config"]["input_layers"]]
    cfg["config"]["output_layers"] = [cfg["config"]["output_layers"]]
    cfg["class_name"] = "Functional"
    return cfg


def write_legacy_h5(model, path: Path) -> None:
    import h5py

    model.save(path)
    with h5py.File(path, "r+") as f:
        cfg = json.loads(f.attrs["model_config"])
        f.attrs["model_config"] = json.dumps(keras2_config(cfg))
        f.attrs["keras_version"] = "2.13.1"
        f.attrs["backend"] = "tensorflow"


def write_images(root: Path, x: np.ndarray, y: np.ndarray | None, names: list[str] = CLASSES) -> list[Path]:
    from PIL import Image

    out = []
    for i, img in enumerate(x):
        d = root / names[y[i]] if y is not None else root
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"img{i:04d}.png"
        Image.fromarray(img).save(p)
        out.append(p)
    return out


def make_all(out: Path, n_eval: int = 60) -> None:
    out.mkdir(parents=True, exist_ok=True)
    x, y = digits()
    rng = np.random.default_rng(1)
    order = rng.permutation(len(y))
    test, train = order[:n_eval], order[n_eval:]
    model = build_and_train(x[train], y[train])
    model.save(out / "model.keras")
    write_legacy_h5(model, out / "legacy.h5")
    model.export(str(out / "saved_model"), format="tf_saved_model", verbose=False)
    write_images(out / "eval", x[test], y[test])
    write_images(out / "calib", x[train[:80]], None)
    paths = write_images(out / "csv", x[test], None)
    (out / "csv" / "y_labels.csv").write_text("".join(f"{p.name}, 10, {y[test][i]}\n" for i, p in enumerate(paths)))
    np.savez(out / "test.npz", x_test=x[test], y_test=y[test])
    np.savez(out / "calib.npz", x_train=x[train[:80]])
    (out / "labels.txt").write_text("\n".join(CLASSES) + "\n")


def imagenet_labels() -> list[str]:
    """1,001 lines like a model zoo's labels.txt: 'background' first, then 'name, alias' lines."""
    lines = ["background", "tench, Tinca tinca", "goldfish, Carassius auratus"]
    return lines + [f"class{i}, alias{i}" for i in range(3, 1001)]


def write_uint8_zoo(out: Path, n_per_class: int = 4) -> None:
    """zoo/model_uint8.tflite (uint8 input 24x24x3, 1,001 outputs), labels.txt, eval/{tench,goldfish}/."""
    import keras
    import tensorflow as tf

    # A model that reads colour: class 1 ('tench') for red images, 2 ('goldfish') for green ones.
    inp = keras.Input((24, 24, 3))
    h = keras.layers.GlobalAveragePooling2D()(inp)
    out_t = keras.layers.Dense(1001, activation="softmax")(h)
    model = keras.Model(inp, out_t)
    w = np.full((3, 1001), -1.0, dtype="float32")
    w[0, 1], w[1, 2] = 8.0, 8.0
    model.layers[-1].set_weights([w, np.zeros(1001, dtype="float32")])
    saved = out / "zoo_saved"
    model.export(str(saved), format="tf_saved_model", verbose=False)
    rng = np.random.default_rng(5)
    calib = rng.random((20, 24, 24, 3)).astype("float32")
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c[None]] for c in calib)
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.uint8
    conv.inference_output_type = tf.uint8
    (out / "zoo").mkdir(parents=True, exist_ok=True)
    (out / "zoo" / "model_uint8.tflite").write_bytes(conv.convert())
    (out / "zoo" / "labels.txt").write_text("\n".join(imagenet_labels()) + "\n")
    from PIL import Image

    for channel, cls in enumerate(("tench", "goldfish")):
        d = out / "zoo" / "eval" / cls
        d.mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):   # sizes differ from the model's input: the resize rule applies
            arr = rng.integers(0, 90, size=(30 + 7 * i, 40, 3), dtype=np.uint8)
            arr[..., channel] += 150
            Image.fromarray(arr).save(d / f"{cls}{i}.jpg" if i % 2 else d / f"{cls}{i}.png")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if sys.argv[2:] == ["zoo"]:
        write_uint8_zoo(Path(sys.argv[1]))
    else:
        make_all(Path(sys.argv[1]))
