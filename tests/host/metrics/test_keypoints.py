"""Keypoint OKS AP through COCOeval, on cases whose OKS is worked out from the COCO definition."""
from __future__ import annotations

import math

import pytest

from host.data.builtin import DatasetError
from host.metrics.keypoints import COCO17, oks_ap

NOSE_SIGMA = 0.026          # COCO's per-keypoint constant for the nose (cocodataset.org keypoint eval)
AREA = 1000.0


def _gt(nose_only: bool = False) -> dict:
    kps = []
    for i in range(17):
        visible = 2 if (i == 0 or not nose_only) else 0
        kps += [20.0 + 3 * i, 30.0 + 2 * i, visible] if visible else [0, 0, 0]
    person = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [10, 10, 50, 40], "area": AREA, "iscrowd": 0,
              "keypoints": kps, "num_keypoints": sum(1 for v in kps[2::3] if v)}
    no_keypoints = {"id": 2, "image_id": 1, "category_id": 1, "bbox": [150, 150, 20, 20], "area": 400.0,
                    "iscrowd": 0}                                   # a person drawn without keypoints: ignored
    return {"images": [{"id": 1, "file_name": "p.png", "width": 200, "height": 200}],
            "annotations": [person, no_keypoints],
            "categories": [{"id": 1, "name": "person", "keypoints": list(COCO17)}]}


def _person(gt: dict, dx: float = 0.0, score: float = 0.9) -> list[dict]:
    kps = gt["annotations"][0]["keypoints"]
    return [{"name": n, "x": kps[3 * i] + dx, "y": kps[3 * i + 1], "score": score}
            for i, n in enumerate(COCO17) if kps[3 * i + 2]]


def test_exact_keypoints_score_one():
    gt = _gt()
    r = oks_ap(gt, {1: [_person(gt)[::-1]]})                       # order does not matter: names do
    assert (r["ap"], r["ap50"], r["ap75"]) == (pytest.approx(1.0),) * 3 and r["people"] == 1


def test_a_nose_off_by_oks_062():
    # OKS of one keypoint = exp(-d^2 / (2 * area * (2 * sigma)^2)). Pick d for OKS 0.62: it passes the
    # OKS thresholds .50 .55 .60 and fails .65 ... .95, so AP = 3/10, AP50 = 1, AP75 = 0.
    gt = _gt(nose_only=True)
    d = math.sqrt(-math.log(0.62) * 2 * AREA * (2 * NOSE_SIGMA) ** 2)
    r = oks_ap(gt, {1: [{"keypoints": _person(gt, dx=d), "score": 0.8}]})
    assert r["ap50"] == pytest.approx(1.0) and r["ap75"] == pytest.approx(0.0) and r["ap"] == pytest.approx(0.3)


def test_no_people_found_scores_zero_and_bad_input():
    gt = _gt()
    assert oks_ap(gt, {})["ap"] == 0.0 and oks_ap(gt, {1: []})["people"] == 0
    with pytest.raises(DatasetError, match="image 1 person 0: unknown keypoint 'snout'"):
        oks_ap(gt, {1: [[{"name": "snout", "x": 1, "y": 2, "score": 1}]]})
    with pytest.raises(DatasetError, match="image 1 person 0: keypoints need name, x, y"):
        oks_ap(gt, {1: [[{"name": "nose", "y": 2}]]})
    gt["categories"][0]["keypoints"] = COCO17[::-1]
    with pytest.raises(DatasetError, match="OKS needs COCO's 17 body keypoints in COCO order"):
        oks_ap(gt, {})
    del gt["categories"][0]["keypoints"]
    with pytest.raises(DatasetError, match="no keypoint annotations"):
        oks_ap(gt, {})
