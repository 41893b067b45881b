"""`make perf` step: what a detector's post-processing (threshold, class-wise NMS, boxes back on the
image) costs on the board beside its invoke, for a raw YOLO-style head with 2,100 boxes x 80
classes (YOLOv8n's layout at 320 x 320). Target: post-processing p50 <= 10 % of invoke p50 on a
photo's worth of boxes.

The detector is a real convolutional network of about YOLOv8n's compute at 320 x 320 (a plain
backbone, two 3x3 convolutions per stage, random weights; its MACs are recorded beside the figures),
built once with Keras. Random weights put next to no box over the 0.25 threshold, and NMS costs
by the boxes that reach it, so the head's output carries a fixed scene on top of the network's
(a constant mask and offset in the graph; the network still runs in full):
- photo: 20 objects, each seen by 5 neighbouring anchors (100 boxes over the threshold, 20 kept),
  what a trained detector gives on a street or a room; the target is set on this one;
- crowd: 300 objects x 4 anchors (1,200 boxes, 300 kept: the cap), a stadium; shown, not gated.
Both figures come from the agent's own `infer` over many images in one process, as a camera loop
would run it.
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
ANCHORS = 2100
SCENES = {"photo": (20, 5), "crowd": (300, 4)}     # objects, anchors per object
GATED = "photo"


def scene(objects: int, per_object: int, seed: int = 5) -> tuple:
    """(keep, rows): a (84, 2100) mask that is 0 on the scene's anchors and their rows (boxes in
    input pixels, one class score in 0.3-0.9 per anchor). Anchors of one object jitter its box by a
    pixel and 2 %, so they overlap above 0.8 (over YOLOv8's NMS IoU of 0.7) and one of them survives."""
    rng = np.random.default_rng(seed)
    anchors = rng.choice(ANCHORS, objects * per_object, replace=False)
    keep = np.ones((4 + CLASSES, ANCHORS), dtype=np.float32)
    rows = np.zeros((4 + CLASSES, ANCHORS), dtype=np.float32)
    keep[:, anchors] = 0.0
    for o in range(objects):
        cx, cy = rng.uniform(20, INPUT - 20, 2)
        w, h = rng.uniform(20, 60, 2)
        cls = rng.integers(0, CLASSES)
        for a in anchors[o * per_object:(o + 1) * per_object]:
            rows[:4, a] = (cx + rng.uniform(-1, 1), cy + rng.uniform(-1, 1), w * rng.uniform(0.98, 1.02),
                           h * rng.uniform(0.98, 1.02))
            rows[4 + cls, a] = rng.uniform(0.3, 0.9)
    return keep, rows


def build_detector(path: Path, objects: int, per_object: int) -> Path:
    """A (1, 84, 2100) YOLOv8-style head on three strides (8, 16, 32) with a scene on top, saved as
    float .tflite."""
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
    keep, rows = scene(objects, per_object)
    out = keras.layers.Lambda(lambda t: t * keep[None] + rows[None])(out)
    net = keras.Model(inp, out)
    data = tf.lite.TFLiteConverter.from_keras_model(net).convert()
    from host.model.architecture import count_macs
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps({"macs": int(count_macs(net))}))
    path.write_bytes(data)
    return path


def measure(work: Path, repeats: int, env: dict, spread) -> dict:
    """Per scene: invoke and post-processing p50 of the agent's infer over 60 photo-sized images,
    per repeat; the gate on the photo scene."""
    from PIL import Image
    out: dict = {"head": f"(1, {4 + CLASSES}, {ANCHORS})", "target_share_max": TARGET_SHARE, "gated": GATED,
                 "scenes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        rng = np.random.default_rng(0)
        for i in range(60):
            Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)).save(Path(tmp) / f"{i:03d}.jpg")
        for name, (objects, per_object) in SCENES.items():
            model = build_detector(work / f"yolo_head_{ANCHORS}x{CLASSES}_{name}_v4.tflite", objects, per_object)
            out["model_macs"] = _macs(model)
            out["scenes"][name] = _scene_figures(model, tmp, objects * per_object, repeats, env, spread)
    out["ok"] = out["scenes"][GATED]["ok"]
    return out


def _scene_figures(model: Path, images: str, candidates: int, repeats: int, env: dict, spread) -> dict:
    shares, invoke, post, boxes = [], [], [], []
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-m", "device", "infer", str(model), images, "--num_threads", "1",
                               "--json", "-"], capture_output=True, text=True, env=env, timeout=900)
        preds = json.loads(proc.stdout)["results"][0]["predictions"][5:]      # the first few warm up
        lat = statistics.median(p["latency_us"] for p in preds)
        pp = statistics.median(p["postprocess_us"] for p in preds)
        invoke.append(lat), post.append(pp), shares.append(pp / lat)
        boxes.append(statistics.median(len(p["detections"]) for p in preds))
    return {"boxes_over_threshold": candidates, "invoke_p50_us": spread(invoke), "postprocess_p50_us": spread(post),
            "postprocess_share": spread(shares), "detections_per_image": spread(boxes),
            "ok": statistics.median(shares) <= TARGET_SHARE}


def render(fig: dict | None, _line) -> list[str]:
    if not fig or "scenes" not in fig:
        return []
    lines = [f"detector post-processing vs invoke, YOLO head {fig['head']}, "
             f"{(fig.get('model_macs') or 0) / 1e6:.0f} M MACs (target <= {fig['target_share_max']:.0%} "
             f"on the {fig['gated']} scene)"]
    for name, v in fig["scenes"].items():
        verdict = ("ok" if v["ok"] else "MISSED") if name == fig["gated"] else "shown"
        lines.append(f"  {name} ({v['boxes_over_threshold']} boxes over the threshold, "
                     f"{v['detections_per_image']['median']:g} kept; {verdict})")
        lines.append(_line("  post-processing / invoke p50", v["postprocess_share"], "", ".3f"))
        lines.append(_line("  invoke p50", v["invoke_p50_us"], " µs", ".1f"))
        lines.append(_line("  post-processing p50", v["postprocess_p50_us"], " µs", ".1f"))
    return lines


def _macs(model: Path) -> int | None:
    facts = model.with_suffix(".json")
    return json.loads(facts.read_text())["macs"] if facts.is_file() else None
