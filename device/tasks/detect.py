"""Object detection, for the two layouts detectors reach a board in.

1. `TFLite_Detection_PostProcess` (TF Object Detection API, Model Maker, EfficientDet-Lite): four
   outputs, boxes (1,N,4) as normalised (ymin, xmin, ymax, xmax), classes (1,N), scores (1,N) and
   a count (1,). The graph already ran NMS; only the score threshold is applied here.
2. A raw YOLO-style head, one output (1,N,4+C) or (1,4+C,N), rows (cx, cy, w, h[, objectness],
   class scores...) in input pixels or normalised to [0,1]. Thresholding and class-wise
   non-maximum suppression run here, vectorised in NumPy, by each family's own defaults: score
   0.25, at most 300 boxes, NMS IoU 0.7 for YOLOv8 and later (Ultralytics' predict and val) and
   0.45 for YOLOv5 heads (its detect.py).

Boxes are reported as [x0, y0, x1, y1] in the original image's pixels (the resize or letterbox
undone through the input's Geometry).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from device.tasks.base import Context, Task, label_count, label_for, read_all

DEFAULT_THRESHOLD = 0.25
MAX_DETECTIONS = 300
MAX_CANDIDATES = 30000     # boxes above the threshold that go into NMS (the highest scores)
NMS_CHUNK = 64             # boxes settled per NumPy round of NMS
V8_IOU, V5_IOU = 0.7, 0.45  # NMS IoU by default: Ultralytics' YOLOv8+ and YOLOv5's own


# ---------------------------------------------------------------- layouts

def postprocess_layout(out_specs: list) -> Optional[dict]:
    """Output indices of a TFLite_Detection_PostProcess model: boxes, count and the (classes,
    scores) pair in graph order (told apart per inference: classes are whole numbers)."""
    if len(out_specs) != 4:
        return None
    shapes = [[max(1, d) for d in s["shape"]] for s in out_specs]
    boxes = [i for i, s in enumerate(shapes) if len(s) == 3 and s[-1] == 4]
    count = [i for i, s in enumerate(shapes) if len(s) == 1 and s[0] == 1]
    pair = [i for i, s in enumerate(shapes) if len(s) == 2 and s[0] == 1]
    if len(boxes) != 1 or len(count) != 1 or len(pair) != 2:
        return None
    n = shapes[boxes[0]][1]
    if any(shapes[i][1] != n for i in pair):
        return None
    return {"boxes": boxes[0], "count": count[0], "pair": pair}


def yolo_layout(out_specs: list) -> Optional[dict]:
    """(attributes, boxes, transposed) of a raw YOLO head: the smaller non-batch dimension is the
    attributes (4 box values, maybe objectness, the class scores); YOLOv8+ exports (1, 4+C, N)."""
    if len(out_specs) != 1:
        return None
    shape = list(out_specs[0]["shape"])
    if len(shape) != 3 or shape[0] != 1:
        return None
    a, b = shape[1], shape[2]
    attrs, n, transposed = (a, b, True) if a < b else (b, a, False)
    if attrs < 5 or n <= attrs:
        return None
    return {"attrs": attrs, "boxes": n, "transposed": transposed}


def matches(in_specs: list, out_specs: list) -> bool:
    return postprocess_layout(out_specs) is not None or yolo_layout(out_specs) is not None


def classes(out_specs: list) -> Optional[int]:
    """Classes of a YOLO head without objectness (with it, one fewer: the labels decide)."""
    y = yolo_layout(out_specs)
    return None if y is None else y["attrs"] - 4


def file_classes(model: bytes, out_specs: list) -> Optional[int]:
    """A TFLite_Detection_PostProcess model's class count: its shapes do not carry it, the op's
    options (num_classes) do."""
    if postprocess_layout(out_specs) is None:
        return None
    from device.profiling import flatmodel
    n = (flatmodel.custom_options(model, "TFLite_Detection_PostProcess") or {}).get("num_classes")
    return int(n) if isinstance(n, int) and n > 0 else None


def has_objectness(attrs: int, labels: Optional[list]) -> bool:
    """YOLOv5-style heads carry an objectness column, v8 and later do not. A label file says which
    (C or C+1 columns after the box); without one, 85 columns is v5 on COCO's 80 classes."""
    n = label_count(labels)
    if n:
        return attrs - 5 == n
    return attrs == 85


# ---------------------------------------------------------------- decoding

def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (N,4) against every box in b (M,4), boxes as x0, y0, x1, y1."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda z: np.clip(z[:, 2] - z[:, 0], 0, None) * np.clip(z[:, 3] - z[:, 1], 0, None)  # noqa: E731
    union = area(a)[:, None] + area(b)[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, class_ids: np.ndarray, iou: float,
        max_keep: int = MAX_DETECTIONS) -> np.ndarray:
    """Indices kept by class-wise greedy non-maximum suppression, highest score first.

    Boxes of different classes never suppress each other: each class is shifted to its own region
    of the plane (the batched-NMS trick), so one pass handles every class. The greedy answer is
    worked out a chunk of the score order at a time, not one box at a time: a crowd of 1,000
    separate boxes took ~30 ms box by box, one NumPy round per kept box (see _chunk_keep)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    span = float(np.max(np.abs(boxes))) * 2 + 1
    order = np.argsort(-scores, kind="stable")
    shifted = (boxes + (class_ids.astype(np.float64) * span)[:, None])[order]
    area = np.maximum(shifted[:, 2] - shifted[:, 0], 0) * np.maximum(shifted[:, 3] - shifted[:, 1], 0)
    kept = np.zeros(0, dtype=np.int64)           # positions in the score order
    for start in range(0, len(order), NMS_CHUNK):
        chunk = np.arange(start, min(start + NMS_CHUNK, len(order)))
        if kept.size:                            # suppressed by a box kept in an earlier chunk
            chunk = chunk[~np.any(_overlaps(shifted, area, kept, chunk, iou), axis=0)]
        if chunk.size:
            over = np.triu(_overlaps(shifted, area, chunk, chunk, iou), k=1)
            kept = np.concatenate([kept, chunk[_chunk_keep(over)]])
        if kept.size >= max_keep:
            break
    return order[kept[:max_keep]]


def _overlaps(boxes: np.ndarray, area: np.ndarray, a: np.ndarray, b: np.ndarray, iou: float) -> np.ndarray:
    """IoU(boxes[a_i], boxes[b_j]) > iou, as inter > iou * union: no division, and a pair of empty
    boxes (union 0) never overlaps."""
    pa, pb = boxes[a], boxes[b]
    w = np.minimum(pa[:, None, 2], pb[None, :, 2]) - np.maximum(pa[:, None, 0], pb[None, :, 0])
    h = np.minimum(pa[:, None, 3], pb[None, :, 3]) - np.maximum(pa[:, None, 1], pb[None, :, 1])
    inter = np.maximum(w, 0) * np.maximum(h, 0)
    return inter > iou * (area[a][:, None] + area[b][None, :] - inter)


def _chunk_keep(over: np.ndarray) -> np.ndarray:
    """Greedy NMS within a chunk already in score order (over[i, j]: i comes before j and overlaps
    it): box j is kept when no kept box before it overlaps it. That rule has one solution; starting
    from "all kept" and applying it to every box at once reaches it in a few rounds (each round
    settles at least one more box in order, usually all of them)."""
    keep = np.ones(len(over), dtype=bool)
    while True:
        settled = ~np.any(over & keep[:, None], axis=0)
        if np.array_equal(settled, keep):
            return np.nonzero(keep)[0]
        keep = settled


def _to_source(xyxy: np.ndarray, ctx: Context) -> np.ndarray:
    """Boxes in model-input pixels -> the source image's pixels, clipped to it."""
    if ctx.geometry is None:
        return xyxy
    g = ctx.geometry
    x0, y0 = g.to_source(xyxy[:, 0], xyxy[:, 1])
    x1, y1 = g.to_source(xyxy[:, 2], xyxy[:, 3])
    out = np.stack([x0, y0, x1, y1], axis=1)
    out[:, 0::2] = np.clip(out[:, 0::2], 0, g.src_w)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, g.src_h)
    return out


def decode_postprocess(outs: list, layout: dict, ctx: Context, names: tuple = ("", "")) -> tuple:
    """(boxes x0,y0,x1,y1 in model pixels, scores, class ids) above the threshold."""
    threshold = DEFAULT_THRESHOLD if ctx.threshold is None else ctx.threshold
    a, b = (outs[i] for i in layout["pair"])
    classes_first = _classes_first(a, b, names)
    cls, scores = (a, b) if classes_first else (b, a)
    n = int(min(len(scores), max(0, round(float(np.ravel(outs[layout["count"]])[0])))))
    boxes, scores, cls = outs[layout["boxes"]][:n], scores[:n], cls[:n]
    keep = scores >= threshold
    h, w = ctx.input_hw
    yx = boxes[keep].astype(np.float64)
    xyxy = np.stack([yx[:, 1] * w, yx[:, 0] * h, yx[:, 3] * w, yx[:, 2] * h], axis=1)
    return xyxy, scores[keep], np.round(cls[keep]).astype(np.int64)


def _classes_first(a: np.ndarray, b: np.ndarray, names: tuple) -> bool:
    """Which of the two (1,N) outputs holds the classes: by tensor name when it says, else the one
    whose values are whole numbers, else graph order (TF1 exports: classes before scores)."""
    na, nb = (n.lower() for n in names)
    if "class" in na or "score" in nb:
        return True
    if "class" in nb or "score" in na:
        return False
    whole = lambda z: bool(np.all(z == np.round(z)))  # noqa: E731
    if whole(a) != whole(b):
        return whole(a)
    return True


def decode_yolo(out: np.ndarray, layout: dict, ctx: Context) -> tuple:
    """(boxes x0,y0,x1,y1 in model pixels, scores, class ids) after threshold and class-wise NMS.

    Works attribute-major (4+C, N), the layout YOLOv8 exports: the best class score per box is one
    reduction over contiguous rows, and only the boxes above the threshold are looked at further
    (on a real photo a few dozen of thousands), which keeps this a small share of the invoke."""
    threshold = DEFAULT_THRESHOLD if ctx.threshold is None else ctx.threshold
    cols = out if layout["transposed"] else out.T                      # (attrs, N)
    first = 5 if has_objectness(layout["attrs"], ctx.labels) else 4
    cls = cols[first:]
    best = cls.max(axis=0)
    if first == 5:                  # YOLOv5: class score x objectness (objectness >= 0: the argmax holds)
        best = best * cols[4]
    keep = np.nonzero(best >= threshold)[0]
    if keep.size > MAX_CANDIDATES:
        keep = keep[np.argsort(-best[keep], kind="stable")[:MAX_CANDIDATES]]
    class_ids = cls[:, keep].argmax(axis=0)
    scores = best[keep]
    xywh = cols[:4, keep].T.astype(np.float64)
    h, w = ctx.input_hw
    if xywh.size and float(np.max(np.abs(xywh))) <= 2.0:    # normalised (Ultralytics' TFLite exports)
        xywh = xywh * np.array([w, h, w, h], dtype=np.float64)
    xyxy = np.concatenate([xywh[:, :2] - xywh[:, 2:] / 2, xywh[:, :2] + xywh[:, 2:] / 2], axis=1)
    iou = ctx.iou if ctx.iou is not None else (V5_IOU if first == 5 else V8_IOU)
    kept = nms(xyxy, scores, class_ids, iou)
    return xyxy[kept], scores[kept], class_ids[kept]


# ---------------------------------------------------------------- the task

def read(interp: Any, out_specs: list) -> dict:
    """The outputs in place (views): the Predictor decodes them before the interpreter runs again."""
    return {"outputs": read_all(interp, out_specs, view=True), "names": [s["name"] for s in out_specs],
            "post": postprocess_layout(out_specs), "yolo": yolo_layout(out_specs)}


def detections(raw: dict, ctx: Context) -> tuple:
    """(boxes in source pixels, scores, class ids), highest score first."""
    if raw["post"] is not None:
        names = tuple(raw["names"][i] for i in raw["post"]["pair"])
        xyxy, scores, cls = decode_postprocess(raw["outputs"], raw["post"], ctx, names)
        order = np.argsort(-scores, kind="stable")[:MAX_DETECTIONS]
        xyxy, scores, cls = xyxy[order], scores[order], cls[order]
    else:
        xyxy, scores, cls = decode_yolo(raw["outputs"][0], raw["yolo"], ctx)
    return _to_source(xyxy, ctx), scores, cls


def answer(raw: dict, ctx: Context) -> dict:
    boxes, scores, cls = detections(raw, ctx)
    # Python numbers first (tolist): a crowd's 300 boxes cost 1 ms more as NumPy scalars.
    return {"detections": [{"label": label_for(c, ctx.labels), "class_id": c, "score": round(s, 6),
                            "box": [round(v, 2) for v in b]}
                           for b, s, c in zip(boxes.tolist(), scores.tolist(), cls.astype(np.int64).tolist())]}


TASK = Task(name="detect", matches=matches, read=read, answer=answer, classes=classes, file_classes=file_classes)
