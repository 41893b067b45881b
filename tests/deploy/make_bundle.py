"""Make a tiny but real bundle (fp32 + int8 .tflite, manifest.json, eval.npz) for the deploy tests.

Run as `python -m tests.deploy.make_bundle OUT_DIR` in a child process, so TensorFlow never
enters the pytest process. Follows docs/contracts.md's bundle format.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from device.contract.fileio import sha256_file as sha256  # noqa: E402


def big_copy(bundle: Path, out: Path, mb: int) -> Path:
    """A copy of `bundle` whose eval.npz is `mb` MiB of random bytes (manifest updated): an upload
    that takes long enough to be cut, or to fill a small disk."""
    import shutil

    shutil.copytree(bundle, out)
    (out / "eval.npz").write_bytes(os.urandom(mb << 20))
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["eval"]["sha256"] = sha256(out / "eval.npz")
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def make(out: Path, n_eval: int = 64, seed: int = 0) -> None:
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n_eval, 8, 8, 1), dtype=np.uint8)
    y = (x.reshape(n_eval, -1).mean(axis=1) > 127).astype(np.int64) + 2 * (x[:, 0, 0, 0] > 127)
    tf.random.set_seed(seed)
    model = tf.keras.Sequential([
        tf.keras.Input((8, 8, 1), batch_size=1),
        tf.keras.layers.Conv2D(4, 3, activation="relu"),
        tf.keras.layers.Flatten(),
        tf.keras.layers.Dense(4),
    ])
    scale = 1 / 255.0
    xf = x.astype(np.float32) * scale
    out.mkdir(parents=True, exist_ok=True)
    variants = {}

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (out / "fp32.tflite").write_bytes(conv.convert())

    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([xf[i:i + 1]] for i in range(16))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (out / "int8.tflite").write_bytes(conv.convert())

    preds = {}
    for name in ("fp32", "int8"):
        interp = Interpreter(model_path=str(out / f"{name}.tflite"))
        interp.allocate_tensors()
        inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
        entry = {"file": f"{name}.tflite", "sha256": sha256(out / f"{name}.tflite"),
                 "size_bytes": (out / f"{name}.tflite").stat().st_size}
        top = []
        for i in range(n_eval):
            f = xf[i:i + 1]
            if inp["dtype"] == np.int8:
                s, z = inp["quantization"]
                f = np.clip(np.round(f / s) + z, -128, 127).astype(np.int8)
            interp.set_tensor(inp["index"], f)
            interp.invoke()
            top.append(int(np.argmax(interp.get_tensor(outp["index"])[0])))
        preds[name] = np.array(top, dtype=np.int64)
        if inp["dtype"] == np.int8:
            entry["input"] = {"dtype": "int8", "scale": float(inp["quantization"][0]),
                              "zero_point": int(inp["quantization"][1])}
            entry["output"] = {"dtype": "int8", "scale": float(outp["quantization"][0]),
                               "zero_point": int(outp["quantization"][1])}
        else:
            entry["input"] = {"dtype": "float32"}
            entry["output"] = {"dtype": "float32"}
        entry["host_top1"] = float((preds[name] == y).mean())
        entry["agreement_with_fp32"] = float((preds[name] == preds["fp32"]).mean())
        variants[name] = entry

    np.savez(out / "eval.npz", x=x, y=y, **{f"pred_{k}": v for k, v in preds.items()})
    manifest = {
        "schema": "edgekit/bundle-v1", "name": out.name,
        "created_utc": "2026-11-21T23:59:00Z",
        "dataset": {"name": "synthetic8", "split_seed": seed, "n_train": 0, "n_val": 0, "n_test": n_eval},
        "class_names": ["0", "1", "2", "3"],
        "input": {"height": 8, "width": 8, "channels": 1, "color": "grayscale", "layout": "NHWC",
                  "pixel_scale": scale, "pixel_offset": 0.0},
        "variants": variants,
        "model": {"params": int(model.count_params()), "macs": 0, "alpha": 1.0, "keras_top1": 0.0},
        "eval": {"file": "eval.npz", "sha256": sha256(out / "eval.npz"), "count": n_eval},
        "versions": {"edgekit": "0.1.0", "tensorflow": tf.__version__, "numpy": np.__version__},
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))


if __name__ == "__main__":
    make(Path(sys.argv[1]))
