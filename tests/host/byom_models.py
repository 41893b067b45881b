"""Tiny real models and data for the bring-your-own-model tests (built here, nothing downloaded).

`python -m tests.host.byom_models OUT` writes into OUT: model.keras, legacy.h5 (Keras 2 conventions:
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


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    make_all(Path(sys.argv[1]))
