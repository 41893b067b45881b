"""`make perf` step: what a detector's post-processing (threshold, class-wise NMS, boxes back on the
image) costs on the board beside its invoke, for a raw YOLO-style head with 2,100 boxes x 80
classes (YOLOv8n's layout at 320 x 320). Target: post-processing p50 <= 10 % of invoke p50.

The detector is a real convolutional network of about YOLOv8n's compute at 320 x 320 (a plain
backbone, two 3x3 convolutions per stage, random weights; its MACs are recorded beside the figures),
built once with Keras. Random weights give few boxes above the 0.25 threshold, so the figure is the
cost of reading and thresholding the whole head, which every frame pays. Both figures come
from the agent's own `infer` over many images in one process, as a camera loop would run it.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

TARGET_SHARE = 0.10
INPUT = 320
CLASSES = 80


def build_detector(path: Path) -> Path:
    """A (1, 84, 2100) YOLOv8-style head on three strides (8, 16, 32), saved as float .tflite."""
    if path.is_file():
        return path
    import tensorflow as tf
    keras = tf.keras
    tf.keras.utils.set_random_seed(3)
    inp = keras.Input((INPUT, INPUT, 3), batch_size=1)
    x = inp
    feats = []
    for i, filters in enumerate((16, 32, 64, 128, 256)):
        x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", activation="relu")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        if i >= 2:
            feats.append(x)                      # strides 8, 16, 32 -> 40x40, 20x20, 10x10
    heads = []
    for f in feats:
        box = keras.layers.Conv2D(4, 1)(f)
        cls = keras.layers.Conv2D(CLASSES, 1, bias_initializer=keras.initializers.Constant(-3.0),
                                  kernel_initializer=keras.initializers.RandomNormal(stddev=0.3))(f)
        y = keras.layers.Concatenate()([keras.layers.Activation("sigmoid")(box) * INPUT,
                                        keras.layers.Activation("sigmoid")(cls)])
        heads.append(keras.layers.Reshape((-1, 4 + CLASSES))(y))
    out = keras.layers.Permute((2, 1))(keras.layers.Concatenate(axis=1)(heads))     # (1, 84, 2100)
    net = keras.Model(inp, out)
    data = tf.lite.TFLiteConverter.from_keras_model(net).convert()
    from host.model.architecture import count_macs
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"macs": int(count_macs(net))}))
    path.write_bytes(data)
    return path


def measure(work: Path, repeats: int, env: dict, spread) -> dict:
    """Invoke and post-processing p50 of the agent's infer over 60 photos-like images, per repeat."""
    from PIL import Image
    model = build_detector(work / "yolo_head_2100x80_v2.tflite")
    shares, invoke, post, boxes = [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for i in range(60):
            Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(Path(tmp) / f"{i:03d}.jpg")
        for _ in range(repeats):
            proc = subprocess.run([sys.executable, "-m", "device", "infer", str(model), tmp, "--num_threads", "1",
                                   "--json", "-"], capture_output=True, text=True, env=env, timeout=900)
            preds = json.loads(proc.stdout)["results"][0]["predictions"][5:]      # the first few warm up
            lat = statistics.median(p["latency_us"] for p in preds)
            pp = statistics.median(p["postprocess_us"] for p in preds)
            invoke.append(lat), post.append(pp), shares.append(pp / lat)
            boxes.append(statistics.median(len(p["detections"]) for p in preds))
    return {"model_macs": _macs(model), "invoke_p50_us": spread(invoke), "postprocess_p50_us": spread(post),
            "postprocess_share": spread(shares), "detections_per_image": spread(boxes),
            "head": f"(1, {4 + CLASSES}, 2100)", "target_share_max": TARGET_SHARE,
            "ok": statistics.median(shares) <= TARGET_SHARE}



def _macs(model: Path) -> int | None:
    facts = model.with_suffix(".json")
    return json.loads(facts.read_text())["macs"] if facts.is_file() else None
