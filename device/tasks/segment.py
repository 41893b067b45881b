"""Semantic segmentation: one output of class ids (1,H,W) or per-class scores (1,H,W,C), at the
input's resolution or a fraction of it. The answer is a class map at the source image's size
(resize or letterbox undone, nearest neighbour: class ids must not blend) and each class's share
of the image's pixels."""
from __future__ import annotations

from typing import Any

import numpy as np

from device.tasks.base import Context, Task, image_hw, label_for, read_all


def matches(in_specs: list, out_specs: list) -> bool:
    """One spatial output whose aspect ratio is the input image's: (1,h,w) or (1,h,w,C)."""
    hw = image_hw(in_specs)
    if hw is None or len(out_specs) != 1:
        return False
    shape = list(out_specs[0]["shape"])
    if len(shape) not in (3, 4) or shape[0] != 1 or min(shape[1:3]) < 4:
        return False
    h, w = shape[1], shape[2]
    return h <= hw[0] and w <= hw[1] and abs(h / w - hw[0] / hw[1]) <= 0.1 * hw[0] / hw[1]


def classes(out_specs: list) -> Any:
    shape = out_specs[0]["shape"]
    return shape[3] if len(shape) == 4 and shape[3] > 1 else None


def class_map(out: np.ndarray, ctx: Context) -> np.ndarray:
    """(H,W) uint8/int class ids at the source image's size (model-input size without a Geometry)."""
    ids = np.argmax(out, axis=-1) if out.ndim == 3 and out.shape[-1] > 1 else \
        np.rint(out.reshape(out.shape[:2])).astype(np.int64)
    in_h, in_w = ctx.input_hw
    g = ctx.geometry
    if g is None:
        xs, ys = np.arange(in_w) + 0.5, np.arange(in_h) + 0.5
    else:   # the model-input point each source pixel centre lands on
        xs = (np.arange(g.src_w) + 0.5 - g.off_x) * g.sx + g.pad_x
        ys = (np.arange(g.src_h) + 0.5 - g.off_y) * g.sy + g.pad_y
    cols = np.clip((xs * ids.shape[1] / in_w).astype(np.int64), 0, ids.shape[1] - 1)
    rows = np.clip((ys * ids.shape[0] / in_h).astype(np.int64), 0, ids.shape[0] - 1)
    out_map = ids[rows][:, cols]
    return out_map.astype(np.uint8) if out_map.max(initial=0) < 255 else out_map.astype(np.int32)


def read(interp: Any, out_specs: list) -> np.ndarray:
    return read_all(interp, out_specs)[0]


def answer(out: np.ndarray, ctx: Context) -> dict:
    cmap = class_map(out, ctx)
    counts = np.bincount(cmap.ravel())
    present = np.nonzero(counts)[0]
    share = {label_for(int(c), ctx.labels): round(float(counts[c]) / cmap.size, 6)
             for c in present[np.argsort(-counts[present], kind="stable")]}
    return {"segmentation": {"classes": share, "size": [int(cmap.shape[1]), int(cmap.shape[0])]}}


def encode_runs(cmap: np.ndarray) -> dict:
    """A class map as row-major runs of equal ids: how a board's mask crosses to the host inside
    the result JSON (no image codec needed on the board; a few KB for a typical map)."""
    flat = np.ravel(cmap)
    starts = np.flatnonzero(np.r_[True, flat[1:] != flat[:-1]]) if flat.size else np.zeros(0, np.int64)
    counts = np.diff(np.r_[starts, flat.size])
    return {"size": [int(cmap.shape[1]), int(cmap.shape[0])], "values": flat[starts].tolist(),
            "counts": counts.tolist()}


def decode_runs(runs: dict) -> np.ndarray:
    """encode_runs' map back as (H,W) int32; a malformed entry raises ValueError."""
    w, h = (int(v) for v in runs["size"])
    values, counts = np.asarray(runs["values"], np.int64), np.asarray(runs["counts"], np.int64)
    if values.shape != counts.shape or (counts < 0).any() or int(counts.sum()) != w * h:
        raise ValueError(f"mask runs do not cover {w}x{h} pixels")
    return np.repeat(values, counts).astype(np.int32).reshape(h, w)


TASK = Task(name="segment", matches=matches, read=read, answer=answer, classes=classes, mask=class_map)
