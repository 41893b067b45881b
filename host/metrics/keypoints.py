"""Keypoint AP by object keypoint similarity (OKS), computed by pycocotools' COCOeval.

OKS weighs each keypoint's distance by a per-keypoint constant COCO measured for the 17 body
keypoints, so the set's keypoint category must name exactly those 17 in COCO's order. Predictions
name their keypoints, so a model that outputs them in another order is still scored correctly.
"""
from __future__ import annotations

from host.data.builtin import DatasetError
from host.metrics.cocoapi import defined, evaluate

COCO17 = ["nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
          "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
          "right_knee", "left_ankle", "right_ankle"]


def oks_ap(gt: dict, predictions: dict, category_id: int | None = None) -> dict:
    """COCO keypoint AP@[.5:.95], AP@.5 and AP@.75 of `predictions` {image_id: [person]}.

    A person is a list of {"name", "x", "y", "score"} in original-image pixels, or
    {"keypoints": that list, "score": s}; without "score" the person scores the mean of its keypoint
    scores. A keypoint a person lacks is placed at (0, 0), i.e. counts as far off. Every image of
    `gt` is scored (an image without an entry has no people found); ground-truth people with no
    labelled keypoints are ignored, as COCOeval does. COCOeval keeps 20 people per image.
    """
    cat = _keypoint_category(gt, category_id)
    gt = _with_keypoint_fields(gt, cat["id"])
    results = _to_results(gt, predictions, cat["id"])
    ev = evaluate(gt, results, "keypoints", cat_ids=[cat["id"]])
    return {"ap": defined(ev.stats[0]), "ap50": defined(ev.stats[1]), "ap75": defined(ev.stats[2]),
            "images": len(gt["images"]), "people": len(results)}


def _keypoint_category(gt: dict, category_id: int | None) -> dict:
    with_kps = [c for c in gt["categories"] if c.get("keypoints")]
    if category_id is not None:
        with_kps = [c for c in with_kps if c["id"] == category_id]
    if not with_kps or not any("keypoints" in a for a in gt["annotations"]):
        raise DatasetError("the evaluation set has no keypoint annotations (a COCO JSON category with "
                           "keypoints names and annotations with keypoints)")
    if len(with_kps) > 1:
        raise DatasetError(f"several keypoint categories ({', '.join(str(c['id']) for c in with_kps)}); "
                           "say which one to score")
    cat = with_kps[0]
    if list(cat["keypoints"]) != COCO17:
        raise DatasetError(f"category {cat['id']} ({cat['name']}): OKS needs COCO's 17 body keypoints in "
                           f"COCO order ({', '.join(COCO17[:3])}, ...), got {len(cat['keypoints'])} "
                           f"({', '.join(cat['keypoints'][:3])}, ...)")
    return cat


def _with_keypoint_fields(gt: dict, cat_id: int) -> dict:
    """People annotated without keypoints get 0 keypoints, which COCOeval then ignores (it needs the fields)."""
    anns = []
    for a in gt["annotations"]:
        if a["category_id"] == cat_id and "keypoints" not in a:
            a = dict(a, keypoints=[0] * 3 * len(COCO17), num_keypoints=0)
        anns.append(a)
    return dict(gt, annotations=anns)


def _to_results(gt: dict, predictions: dict, cat_id: int) -> list[dict]:
    ids = {str(im["id"]): im["id"] for im in gt["images"]}
    index = {n: i for i, n in enumerate(COCO17)}
    out = []
    for key, people in predictions.items():
        if str(key) not in ids:
            raise DatasetError(f"predictions: image {key} is not in the evaluation set")
        for j, person in enumerate(people):
            what = f"predictions: image {key} person {j}"
            points = person.get("keypoints") if isinstance(person, dict) else person
            flat = [0.0] * (3 * len(COCO17))
            scores = []
            try:
                for kp in points:
                    if kp["name"] not in index:
                        raise DatasetError(f"{what}: unknown keypoint {kp['name']!r} (COCO-17 names: "
                                           f"{', '.join(COCO17)})")
                    i = index[kp["name"]]
                    flat[3 * i: 3 * i + 3] = [float(kp["x"]), float(kp["y"]), 1.0]
                    scores.append(float(kp.get("score", 1.0)))
                score = float(person["score"]) if isinstance(person, dict) and "score" in person else \
                    (sum(scores) / len(scores) if scores else 0.0)
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"{what}: keypoints need name, x, y (and score)") from None
            out.append({"image_id": ids[str(key)], "category_id": cat_id, "keypoints": flat, "score": score})
    return out
