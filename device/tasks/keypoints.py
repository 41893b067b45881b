"""Pose: MoveNet's single-pose output (1,1,17,3) of (y, x, score) and its multi-pose output
(1,6,56) (17 x (y, x, score), then the person's box ymin, xmin, ymax, xmax and score), all
normalised to the input. Points come back as named COCO-17 keypoints in the source image's pixels."""
from __future__ import annotations

from typing import Any

import numpy as np

from device.tasks.base import Context, Task, read_all

NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
         "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
         "left_knee", "right_knee", "left_ankle", "right_ankle")
# the COCO skeleton, as index pairs into NAMES (for drawing)
SKELETON = ((15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7), (6, 8),
            (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6))
DEFAULT_THRESHOLD = 0.2     # a multi-pose person below this score is dropped (MoveNet's demos)


def layout(out_specs: list) -> Any:
    if len(out_specs) != 1:
        return None
    shape = list(out_specs[0]["shape"])
    if shape[-2:] == [17, 3] and int(np.prod(shape[:-2])) == 1:
        return "single"
    if len(shape) == 3 and shape[0] == 1 and shape[2] == 56:
        return "multi"
    return None


def matches(in_specs: list, out_specs: list) -> bool:
    return layout(out_specs) is not None


def read(interp: Any, out_specs: list) -> dict:
    return {"out": read_all(interp, out_specs)[0], "layout": layout(out_specs)}


def _points(yxs: np.ndarray, ctx: Context) -> list:
    h, w = ctx.input_hw
    x, y = yxs[:, 1].astype(np.float64) * w, yxs[:, 0].astype(np.float64) * h
    if ctx.geometry is not None:
        x, y = ctx.geometry.to_source(x, y)
    return [{"name": n, "x": round(float(a), 2), "y": round(float(b), 2), "score": round(float(s), 6)}
            for n, a, b, s in zip(NAMES, x, y, yxs[:, 2])]


def answer(raw: dict, ctx: Context) -> dict:
    out = raw["out"]
    if raw["layout"] == "single":
        yxs = out.reshape(17, 3)
        poses = [{"score": round(float(yxs[:, 2].mean()), 6), "keypoints": _points(yxs, ctx)}]
    else:
        threshold = DEFAULT_THRESHOLD if ctx.threshold is None else ctx.threshold
        poses = []
        for person in out[np.argsort(-out[:, 55], kind="stable")]:
            if person[55] < threshold:
                continue
            corners = np.array([[person[51], person[52], 0], [person[53], person[54], 0]])
            (x0, y0), (x1, y1) = ((p["x"], p["y"]) for p in _points(corners, ctx)[:2])
            poses.append({"score": round(float(person[55]), 6), "box": [x0, y0, x1, y1],
                          "keypoints": _points(person[:51].reshape(17, 3), ctx)})
    return {"keypoints": poses[0]["keypoints"] if poses else [], "poses": poses}


TASK = Task(name="keypoints", matches=matches, read=read, answer=answer)
