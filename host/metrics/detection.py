"""Detection scores: COCO mAP of a model's boxes, and how closely the board's boxes follow the host's.

Predictions are what the board's `infer` JSON gives per detection: {"class_id", "score",
"box": [x0, y0, x1, y1]} in the ORIGINAL image's pixels. A model's class index is not always the
set's category id (COCO's 80 classes use ids 1..90 with gaps), so the mapping is an explicit
argument, identity when not given.
"""
from __future__ import annotations

import numpy as np

from host.data.builtin import DatasetError
from host.metrics.cocoapi import category_ap, defined, evaluate


def coco_map(gt: dict, predictions: dict, class_to_category: dict[int, int] | None = None) -> dict:
    """COCO mAP@[.5:.95], mAP@.5, mAP@.75 and per-category AP of `predictions` {image_id: [detection]}.

    Every image of `gt` is scored: an image without an entry has no detections, so its objects
    count as missed. Image ids may be given as strings (JSON object keys). COCOeval keeps the 100
    highest-scoring detections per image. Per-category AP is None for a category with no ground
    truth, and the means are None when the set has no objects at all.
    """
    results = to_results(gt, predictions, class_to_category)
    ev = evaluate(gt, results, "bbox")
    names = _category_names(gt)
    per_category = {names[cid]: category_ap(ev, k) for k, cid in enumerate(ev.params.catIds)}
    return {"map": defined(ev.stats[0]), "map50": defined(ev.stats[1]), "map75": defined(ev.stats[2]),
            "per_category": per_category, "images": len(gt["images"]), "detections": len(results)}


def to_results(gt: dict, predictions: dict, class_to_category: dict[int, int] | None = None) -> list[dict]:
    """Board detections -> COCO result dicts (bbox [x, y, w, h]); anything unmappable is an error,
    because COCOeval would otherwise drop it silently and report a better score than the model has."""
    ids = {str(im["id"]): im["id"] for im in gt["images"]}
    cats = {c["id"] for c in gt["categories"]}
    out: list[dict] = []
    for key, dets in predictions.items():
        if str(key) not in ids:
            raise DatasetError(f"predictions: image {key} is not in the evaluation set")
        for j, d in enumerate(dets):
            what = f"predictions: image {key} detection {j}"
            try:
                cls, score = int(d["class_id"]), float(d["score"])
                x0, y0, x1, y1 = (float(v) for v in d["box"])
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{what}: needs class_id, score and box [x0, y0, x1, y1]") from None
            if class_to_category is None:
                cat = cls
            elif cls in class_to_category:
                cat = class_to_category[cls]
            else:
                raise DatasetError(f"{what}: class_id {cls} has no entry in the class-to-category mapping")
            if cat not in cats:
                raise DatasetError(f"{what}: class_id {cls} is category {cat}, which the set does not have "
                                   f"(categories {sorted(cats)})")
            if x1 < x0 or y1 < y0:
                raise DatasetError(f"{what}: box {d['box']} has x1 < x0 or y1 < y0")
            out.append({"image_id": ids[str(key)], "category_id": cat, "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "score": score})
    return out


def _category_names(gt: dict) -> dict[int, str]:
    """Names as keys; a name two categories share gets its id added so neither is lost."""
    counts: dict[str, int] = {}
    for c in gt["categories"]:
        counts[c["name"]] = counts.get(c["name"], 0) + 1
    return {c["id"]: c["name"] if counts[c["name"]] == 1 else f"{c['name']} ({c['id']})" for c in gt["categories"]}


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` (N, 4) with every box in `b` (M, 4), both [x0, y0, x1, y1] -> (N, M)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _match(host: list[dict], board: list[dict], iou: float) -> list[tuple[dict, dict, float]]:
    """Greedy pairs: host detections by falling score each take the free same-class board box of
    highest IoU (at least `iou`), the way COCOeval matches detections to ground truth."""
    if not host or not board:
        return []
    ious = box_iou([d["box"] for d in host], [d["box"] for d in board])
    free = np.ones(len(board), dtype=bool)
    pairs = []
    for i in sorted(range(len(host)), key=lambda k: -float(host[k]["score"])):
        same = np.array([int(b["class_id"]) == int(host[i]["class_id"]) for b in board])
        cand = np.where(free & same & (ious[i] >= iou), ious[i], -1.0)
        j = int(np.argmax(cand))
        if cand[j] >= 0:
            free[j] = False
            pairs.append((host[i], board[j], float(ious[i, j])))
    return pairs


def _summary(pairs: list[tuple[dict, dict, float]], n_host: int, n_board: int) -> dict:
    return {"host": n_host, "board": n_board, "matched": len(pairs) / n_host if n_host else None,
            "extra_board": n_board - len(pairs),
            "mean_iou": float(np.mean([p[2] for p in pairs])) if pairs else None,
            "max_score_diff": max((abs(float(h["score"]) - float(b["score"])) for h, b, _ in pairs),
                                  default=None)}


def agreement(host: list[dict], board: list[dict], iou: float = 0.5) -> dict:
    """How far the board's detections of one image follow the host's (the reference run).

    matched: share of host detections the board also found (same class, IoU >= `iou`; None when
    the host found nothing); extra_board: board detections without a host partner; mean_iou and
    max_score_diff over the matched pairs (None without pairs).
    """
    return _summary(_match(host, board, iou), len(host), len(board))


def agreement_over(host: dict, board: dict, iou: float = 0.5) -> dict:
    """`agreement` per image ({image_id: [detection]} on both sides) and pooled over all images:
    overall matched counts every host detection once, so a crowded image weighs more than an empty one."""
    keys = list(dict.fromkeys(list(host) + list(board)))
    per_image, pairs, n_host, n_board = {}, [], 0, 0
    for k in keys:
        h, b = host.get(k, []), board.get(k, [])
        p = _match(h, b, iou)
        per_image[k] = _summary(p, len(h), len(b))
        pairs += p
        n_host += len(h)
        n_board += len(b)
    return {"per_image": per_image, "overall": _summary(pairs, n_host, n_board)}
