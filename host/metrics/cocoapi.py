"""pycocotools run quietly on in-memory dicts: the one place detection and keypoint AP come from.

Scores are computed by the COCO API itself (COCO, loadRes, COCOeval) rather than by a
re-implementation, so numbers match what papers and model cards report. Its progress prints are
swallowed; its inputs are deep-copied because COCOeval writes flags into the annotations it reads.
"""
from __future__ import annotations

import contextlib
import copy
import io


def evaluate(gt: dict, results: list[dict], iou_type: str, cat_ids: list[int] | None = None):
    """A COCOeval after evaluate/accumulate/summarize; no results scores 0 (loadRes cannot take [])."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        if results:
            coco_dt = coco_gt.loadRes(copy.deepcopy(results))
        else:
            coco_dt = COCO()
            coco_dt.dataset = {"images": list(gt["images"]), "categories": copy.deepcopy(gt["categories"]),
                               "annotations": []}
            coco_dt.createIndex()
        ev = COCOeval(coco_gt, coco_dt, iou_type)
        if cat_ids is not None:
            ev.params.catIds = list(cat_ids)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def defined(value: float) -> float | None:
    """COCOeval writes -1 where a score is undefined (no ground truth): None says so plainly."""
    return None if value < 0 else float(value)


def category_ap(ev, index: int) -> float | None:
    """AP@[.5:.95] of one category: area 'all', the largest maxDets, as COCOeval's summary averages."""
    p = ev.eval["precision"][:, :, index, 0, -1]
    p = p[p > -1]
    return float(p.mean()) if p.size else None
