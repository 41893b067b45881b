"""Semantic segmentation scores from one confusion matrix accumulated over a whole set.

Accumulating pixel counts (rather than averaging per-image IoUs) is how PASCAL VOC, Cityscapes and
mmsegmentation report mIoU: a class seen in a few pixels of one image does not weigh as much as a
whole image. Ground-truth pixels equal to `ignore` (255, VOC's object borders) are not scored.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np

from host.data.builtin import DatasetError


def confusion_matrix(pred: np.ndarray, gt: np.ndarray, num_classes: int, ignore: int = 255) -> np.ndarray:
    """(num_classes, num_classes) int64 counts, rows = ground-truth class, columns = predicted class."""
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape:
        raise DatasetError(f"prediction map is {pred.shape[::-1]} but its mask is {gt.shape[::-1]} (width x height)")
    keep = gt != ignore
    g, p = gt[keep].astype(np.int64), pred[keep].astype(np.int64)
    if g.size and (g.min() < 0 or g.max() >= num_classes):
        raise DatasetError(f"mask has class {int(g.max() if g.max() >= num_classes else g.min())}, "
                           f"outside 0..{num_classes - 1} (and not the ignore value {ignore})")
    if p.size and (p.min() < 0 or p.max() >= num_classes):
        raise DatasetError(f"prediction has class {int(p.max() if p.max() >= num_classes else p.min())}, "
                           f"outside 0..{num_classes - 1}")
    return np.bincount(g * num_classes + p, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def accumulate(pairs: Iterable[tuple[np.ndarray, np.ndarray]], num_classes: int, ignore: int = 255) -> np.ndarray:
    """One confusion matrix over every (prediction map, ground-truth mask) pair."""
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for pred, gt in pairs:
        total += confusion_matrix(pred, gt, num_classes, ignore)
    return total


def segmentation_scores(conf: np.ndarray, class_names: list[str] | None = None) -> dict:
    """mIoU, per-class IoU and pixel accuracy of a confusion matrix.

    A class absent from both ground truth and predictions has no IoU (None) and is left out of the
    mean, as in the VOC and Cityscapes evaluations; a class only predicted has IoU 0.
    """
    conf = np.asarray(conf, dtype=np.int64)
    tp = np.diag(conf).astype(np.float64)
    union = conf.sum(axis=0) + conf.sum(axis=1) - tp
    names = class_names or [str(i) for i in range(len(conf))]
    if len(names) != len(conf):
        raise DatasetError(f"{len(names)} class names for {len(conf)} classes")
    iou = [float(t / u) if u > 0 else None for t, u in zip(tp, union)]
    seen = [v for v in iou if v is not None]
    total = int(conf.sum())
    return {"miou": float(np.mean(seen)) if seen else None,
            "per_class": dict(zip(names, iou)),
            "pixel_accuracy": float(tp.sum() / total) if total else None,
            "pixels": total}


def mask_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Share of pixels where two class maps (e.g. host and board predictions) agree."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise DatasetError(f"class maps differ in size: {a.shape} and {b.shape}")
    return float(np.mean(a == b)) if a.size else 1.0
