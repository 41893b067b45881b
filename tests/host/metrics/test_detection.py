"""COCO mAP on hand-computed cases, and host/board detection agreement."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from host.data.builtin import DatasetError
from host.evalsets.coco import read_coco
from host.metrics.detection import agreement, agreement_over, box_iou, coco_map


def _gt(boxes_by_image: dict[int, list[tuple[int, list[float]]]], categories=((1, "cat"), (2, "dog"))) -> dict:
    """A COCO dict: boxes [x, y, w, h] per image id, 200x200 images."""
    items = [(iid, cat, box) for iid, objs in boxes_by_image.items() for cat, box in objs]
    anns = [{"id": k + 1, "image_id": iid, "category_id": cat, "bbox": box, "area": box[2] * box[3], "iscrowd": 0}
            for k, (iid, cat, box) in enumerate(items)]
    return {"images": [{"id": i, "file_name": f"{i}.png", "width": 200, "height": 200} for i in boxes_by_image],
            "annotations": anns, "categories": [{"id": c, "name": n} for c, n in categories]}


def _det(cls, score, x0, y0, x1, y1):
    return {"class_id": cls, "score": score, "box": [x0, y0, x1, y1]}


def test_one_perfect_detection_scores_one():
    gt = _gt({7: [(1, [10, 20, 30, 40])]}, categories=((1, "cat"),))
    r = coco_map(gt, {7: [_det(1, 0.9, 10, 20, 40, 60)]})
    assert (r["map"], r["map50"], r["map75"]) == (pytest.approx(1.0), pytest.approx(1.0), pytest.approx(1.0))
    assert r["per_category"] == {"cat": pytest.approx(1.0)} and r["images"] == 1 and r["detections"] == 1


def test_a_shifted_box_passes_half_the_thresholds_it_overlaps():
    # gt 10x10 at the origin, prediction shifted right by 2: IoU = (8*10) / (200 - 80) = 2/3,
    # so it matches at IoU thresholds .50 .55 .60 .65 and misses .70 ... .95: mAP = 4/10.
    gt = _gt({1: [(1, [0, 0, 10, 10])]}, categories=((1, "cat"),))
    r = coco_map(gt, {1: [_det(1, 0.9, 2, 0, 12, 10)]})
    assert r["map50"] == pytest.approx(1.0) and r["map75"] == pytest.approx(0.0)
    assert r["map"] == pytest.approx(0.4)


def test_a_false_positive_ranked_first_halves_ap50():
    # ranked: FP (0.9), TP (0.8); one object. precision 0 then 1/2, recall 0 then 1; the precision
    # envelope is 1/2 at every recall, so all 101 interpolation points read 1/2.
    gt = _gt({1: [(1, [0, 0, 10, 10])]}, categories=((1, "cat"),))
    r = coco_map(gt, {1: [_det(1, 0.9, 100, 100, 110, 110), _det(1, 0.8, 0, 0, 10, 10)]})
    assert r["map50"] == pytest.approx(0.5)


def test_101_point_interpolation_by_hand():
    # three objects; ranked TP (0.9), FP (0.8), TP (0.7): recall 1/3, 1/3, 2/3; precision 1, 1/2, 2/3.
    # Envelope: 1 up to recall 1/3, 2/3 up to 2/3, nothing beyond. Of the recall points 0, .01, ..., 1:
    # 0..0.33 (34 points) read 1, 0.34..0.66 (33 points) read 2/3, 0.67..1 (34 points) read 0.
    gt = _gt({1: [(1, [0, 0, 10, 10]), (1, [50, 50, 10, 10]), (1, [100, 100, 10, 10])]}, categories=((1, "cat"),))
    preds = {1: [_det(1, 0.9, 0, 0, 10, 10), _det(1, 0.8, 150, 0, 160, 10), _det(1, 0.7, 50, 50, 60, 60)]}
    assert coco_map(gt, preds)["map50"] == pytest.approx((34 * 1 + 33 * 2 / 3) / 101)


def test_per_category_and_images_without_entries():
    gt = _gt({1: [(1, [0, 0, 10, 10])], 2: [(2, [0, 0, 20, 20])]}, categories=((1, "cat"), (2, "dog"), (3, "owl")))
    r = coco_map(gt, {1: [_det(1, 0.9, 0, 0, 10, 10)]})          # image 2 and its dog: never predicted
    assert r["per_category"] == {"cat": pytest.approx(1.0), "dog": pytest.approx(0.0), "owl": None}
    assert r["map"] == pytest.approx(0.5) and r["images"] == 2     # owl has no ground truth: not averaged


def test_zero_predictions_score_zero():
    gt = _gt({1: [(1, [0, 0, 10, 10])]})
    r = coco_map(gt, {})
    assert (r["map"], r["map50"], r["map75"], r["detections"]) == (0.0, 0.0, 0.0, 0)
    assert r["per_category"] == {"cat": 0.0, "dog": None}
    assert coco_map(gt, {1: []})["map"] == 0.0


def test_class_mapping_and_string_image_keys():
    gt = _gt({1: [(5, [0, 0, 10, 10])]}, categories=((5, "person"),))
    preds = {"1": [_det(0, 0.9, 0, 0, 10, 10)]}                     # JSON keys are strings
    assert coco_map(gt, preds, class_to_category={0: 5})["map"] == pytest.approx(1.0)
    with pytest.raises(DatasetError, match="image 1 detection 0: class_id 0 is category 0, which the set"):
        coco_map(gt, preds)
    with pytest.raises(DatasetError, match="class_id 0 has no entry in the class-to-category mapping"):
        coco_map(gt, preds, class_to_category={1: 5})
    with pytest.raises(DatasetError, match="image 9 is not in the evaluation set"):
        coco_map(gt, {9: []})
    with pytest.raises(DatasetError, match="image 1 detection 0: needs class_id, score and box"):
        coco_map(gt, {1: [{"class_id": 5, "score": 0.5}]})


def test_label_studio_ids_from_zero_still_match(tmp_path):
    """Annotation id 0 would read as 'unmatched' inside COCOeval; the reader renumbers ids."""
    Image.new("RGB", (50, 40)).save(tmp_path / "a.png")
    (tmp_path / "i.json").write_text(json.dumps({
        "images": [{"id": 0, "file_name": "a.png", "width": 50, "height": 40}],
        "annotations": [{"id": 0, "image_id": 0, "category_id": 0, "bbox": [5, 5, 20, 10]}],
        "categories": [{"id": 0, "name": "box"}]}))
    ds = read_coco(tmp_path / "i.json")
    assert coco_map(ds.coco, {0: [_det(0, 0.7, 5, 5, 25, 15)]})["map"] == pytest.approx(1.0)


def test_box_iou_matches_pycocotools():
    from pycocotools import mask as mask_utils

    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 50, (12, 2))
    a = np.hstack([xy[:7], xy[:7] + rng.uniform(1, 30, (7, 2))])
    b = np.hstack([xy[7:], xy[7:] + rng.uniform(1, 30, (5, 2))])
    b[0] = a[0]
    to_xywh = lambda z: np.hstack([z[:, :2], z[:, 2:] - z[:, :2]])
    expected = mask_utils.iou(to_xywh(a), to_xywh(b), [0] * len(b))
    assert np.allclose(box_iou(a, b), expected) and box_iou(a, b)[0, 0] == pytest.approx(1.0)
    assert box_iou([0, 0, 10, 10], [2, 0, 12, 10])[0, 0] == pytest.approx(2 / 3)


def test_agreement_same_class_greedy_by_score():
    host = [_det(0, 0.9, 0, 0, 10, 10), _det(1, 0.8, 50, 50, 60, 60)]
    board = [_det(0, 0.85, 2, 0, 12, 10), _det(2, 0.8, 50, 50, 60, 60)]   # second box: other class
    r = agreement(host, board)
    assert r["matched"] == 0.5 and r["mean_iou"] == pytest.approx(2 / 3)
    assert r["max_score_diff"] == pytest.approx(0.05) and r["extra_board"] == 1
    # the higher-scored host box takes the board box first, even though the other overlaps it more
    host = [_det(0, 0.9, 0, 0, 10, 10), _det(0, 0.5, 2, 0, 12, 10)]
    r = agreement(host, [_det(0, 0.6, 2, 0, 12, 10)])
    assert r["matched"] == 0.5 and r["mean_iou"] == pytest.approx(2 / 3)
    assert agreement([], [])["matched"] is None and agreement(host, [], iou=0.5)["mean_iou"] is None


def test_agreement_over_pools_every_detection():
    host = {1: [_det(0, 0.9, 0, 0, 10, 10)], 2: [_det(0, 0.9, 0, 0, 10, 10)] * 3}
    board = {1: [], 2: [_det(0, 0.9, 0, 0, 10, 10)] * 3, 3: [_det(1, 0.2, 0, 0, 1, 1)]}
    r = agreement_over(host, board)
    assert r["per_image"][1]["matched"] == 0.0 and r["per_image"][2]["matched"] == 1.0
    assert r["per_image"][3]["host"] == 0 and r["per_image"][3]["extra_board"] == 1
    assert r["overall"]["matched"] == pytest.approx(3 / 4) and r["overall"]["extra_board"] == 1
    assert r["overall"]["mean_iou"] == pytest.approx(1.0) and r["overall"]["max_score_diff"] == pytest.approx(0.0)
