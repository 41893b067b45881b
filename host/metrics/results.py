"""Scoring the predictions in agent result files (`python -m device infer ... --json`, from the
board and from the host) against an evaluation set, with the field's standard code: COCO mAP
(pycocotools) for boxes, OKS AP for keypoints, mIoU for masks. Two result files of the same model
(board first, host second) are also compared with each other: the share of host detections the
board matched and their mean IoU, or the share of equal mask pixels.

Predictions are matched to the set's images by file name, so the board may keep the images
anywhere.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from host.data.builtin import DatasetError
from host.evalsets.registry import open_eval
from host.evalsets.sets import DetectionSet, MaskSet
from host.metrics import detection, keypoints, segmentation


@dataclass(frozen=True)
class Headline:
    """The figures a task's report row and compare gate use, from its score dict."""
    key: str
    label: str
    key2: str
    label2: str
    agreement: tuple[tuple[str, str], ...]     # (key, column label) of `agreement`'s dict
    standard: str                              # whose code computed it


HEADLINES = {
    "detect": Headline("map", "mAP@[.5:.95]", "map50", "mAP@.5",
                       (("matched", "host boxes matched on the board"), ("mean_iou", "mean IoU")), "pycocotools"),
    "keypoints": Headline("ap", "OKS AP", "ap50", "OKS AP@.5", (), "pycocotools"),
    "segment": Headline("miou", "mIoU", "pixel_accuracy", "pixel accuracy",
                        (("pixels_equal", "mask pixels equal to the host's"),), "confusion-matrix IoU"),
}


def load_predictions(path: str) -> tuple[str, dict]:
    """(task, {file name: prediction}) from one agent result file of `infer`."""
    try:
        doc = json.loads(Path(path).read_text())
        result = doc["results"][0]
        preds = result["predictions"]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        raise DatasetError(f"{path}: not an agent infer result (results[0].predictions)") from None
    by_name = {}
    for p in preds:
        if "error" in p:
            raise DatasetError(f"{path}: {p['error']}")
        by_name[Path(p["input"]).name] = p
    return result.get("task", "classify"), by_name


def class_mapping(ds: DetectionSet, preds: dict) -> dict[int, int] | None:
    """Model class id -> the set's category id, by label name when the detections carry names the
    set has (a COCO detector's 90 ids vs COCO's gapped 1..90), else None (the ids are the same)."""
    names = dict(zip(ds.category_names, ds.category_ids))
    mapping: dict[int, int] = {}
    for p in preds.values():
        for d in p.get("detections", []):
            if d.get("label") in names:
                mapping[int(d["class_id"])] = names[d["label"]]
    return mapping or None


def _by_image(ds: DetectionSet, preds: dict, path: str, field: str, keep=lambda d: True) -> dict:
    out = {}
    for im in ds.images:
        p = preds.get(Path(im.path).name)
        if p is None:
            raise DatasetError(f"{path}: no prediction for {Path(im.path).name} of the evaluation set")
        out[im.image_id] = [d for d in p.get(field, []) if keep(d)]
    return out


def score_detect(ds: DetectionSet, preds: dict, path: str) -> dict:
    mapping = class_mapping(ds, preds)
    usable = (lambda d: int(d["class_id"]) in mapping) if mapping else (lambda d: True)
    return detection.coco_map(ds.coco, _by_image(ds, preds, path, "detections", usable), mapping)


def score_keypoints(ds: DetectionSet, preds: dict, path: str) -> dict:
    return keypoints.oks_ap(ds.coco, _by_image(ds, preds, path, "poses"))


def predicted_mask(p: dict | None, name: str, path: str) -> np.ndarray:
    """A prediction's class map: its runs (a bench result, a bundle's host predictions) or the PNG
    `infer --mask_out` wrote."""
    from device.tasks.segment import decode_runs
    from host.evalsets.masks import read_mask
    if p is not None and "mask_runs" in p:
        try:
            return decode_runs(p["mask_runs"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DatasetError(f"{path}: {name}: {exc}") from None
    if p is None or "mask" not in p:
        raise DatasetError(f"{path}: no mask for {name} (run infer with --mask_out DIR)")
    return read_mask(Path(p["mask"]))


def score_segment(ms: MaskSet, preds: dict, path: str, labels: list[str] | None = None) -> dict:
    """mIoU and per-class IoU, keyed by the bundle's label names when it has them (else "0", "1", ...)."""
    from host.evalsets.masks import read_mask
    pairs = []
    for image, mask in ms.pairs:
        pairs.append((predicted_mask(preds.get(image.name), image.name, path), read_mask(mask)))
    n = int(max(max(int(a.max()), int(b[b != ms.ignore].max(initial=0))) for a, b in pairs)) + 1
    n = max(n, len(labels or []))
    names = [labels[i] if labels and i < len(labels) else str(i) for i in range(n)]
    if len(set(names)) != n:            # repeated label lines would merge classes: keep the indices
        names = None
    return segmentation.segmentation_scores(segmentation.accumulate(pairs, n, ms.ignore), names)


def score(eval_spec: str, paths: list[str]) -> dict:
    """The task's metric for every result file, and (two files) their agreement."""
    ds = open_eval(eval_spec)
    loaded = [load_predictions(p) for p in paths]
    out: dict = {"eval": eval_spec, "results": {}}
    for path, (task, preds) in zip(paths, loaded):
        if task == "detect" and isinstance(ds, DetectionSet):
            out["results"][path] = score_detect(ds, preds, path)
        elif task == "keypoints" and isinstance(ds, DetectionSet) and ds.has_keypoints:
            out["results"][path] = score_keypoints(ds, preds, path)
        elif task == "segment" and isinstance(ds, MaskSet):
            out["results"][path] = score_segment(ds, preds, path)
        else:
            raise DatasetError(f"{path}: a {task} result cannot be scored on {eval_spec} "
                               f"({type(ds).__name__})")
        out["task"] = task
    if len(loaded) == 2:
        (_, a), (_, b) = loaded
        out["agreement"] = agreement(out["task"], a, b)
    return out


def agreement(task: str, board: dict, host: dict) -> dict:
    """How closely one set of predictions follows another ({file name: prediction} each)."""
    names = sorted(set(board) & set(host))
    if task == "detect":
        return detection.agreement_over({n: host[n]["detections"] for n in names},
                                        {n: board[n]["detections"] for n in names})["overall"]
    if task == "segment":
        return {"pixels_equal": float(np.mean([segmentation.mask_agreement(
            predicted_mask(board[n], n, "board"), predicted_mask(host[n], n, "host")) for n in names]))}
    return {}


def score_bench(result_path: str, bundle: Path) -> dict:
    """`make bench` of a task bundle: per variant, the board's figure beside the host's. Detection,
    pose, segmentation: the board's predictions (from the stored result) and the host's (in the
    bundle's eval.npz), each scored on the bundle's EVAL= set, and their agreement. Raw (any-tensor)
    models: the board's own comparison with the shipped npz (per output largest abs error, mean
    cosine; top-1 with labels) beside the host's, recorded in the manifest at bundle time."""
    from host.pipeline.bundle import load_manifest

    manifest = load_manifest(bundle)
    spec = manifest.get("eval_set")
    kind = (manifest.get("eval") or {}).get("kind")
    if not spec or kind not in ("images", "tensors"):
        raise DatasetError(f"{bundle}: not a bundle with a detection, pose, segmentation or any-tensor evaluation "
                           "set (make bundle ... EVAL=coco:...|yolo:...|masks:...|npz:...)")
    try:
        doc = json.loads(Path(result_path).read_text())
        entries = [r for r in doc["results"] if r.get("predictions" if kind == "images" else "tensors")]
    except (OSError, ValueError, KeyError, TypeError):
        raise DatasetError(f"{result_path}: not a stored bench result") from None
    if not entries:
        raise DatasetError(f"{result_path}: no {'predictions' if kind == 'images' else 'figures'} on the evaluation "
                           f"set (was it benched with {bundle}'s eval.npz?)")
    out: dict = {"eval": spec, "task": manifest.get("task"), "result": result_path, "variants": {}}
    if kind == "tensors":
        for r in entries:
            host = (manifest.get("variants", {}).get(r["variant"]) or {}).get("host_metric")
            out["variants"][r["variant"]] = {"board": tensor_figures(dict(r["tensors"], **(r.get("accuracy") or {}))),
                                             "host": tensor_figures(host) if host else None, "agreement": None}
        return out
    ds = open_eval(spec)
    labels = manifest.get("class_names")
    fn = {"detect": score_detect, "keypoints": score_keypoints,
          "segment": lambda d, p, w: score_segment(d, p, w, labels)}[manifest.get("task")]
    for r in entries:
        board = {p["input"]: p for p in r["predictions"]}
        host = host_predictions(bundle / "eval.npz", r["variant"])
        out["variants"][r["variant"]] = {"board": fn(ds, board, result_path),
                                         "host": fn(ds, host, str(bundle / "eval.npz")) if host else None,
                                         "agreement": agreement(out["task"], board, host) if host else None}
    return out


def tensor_figures(m: dict) -> dict:
    """An any-tensor eval's figures (the board's `tensors` + accuracy, or a manifest's host_metric)
    flat: `top1` (with labels), then `<output> max_abs_error` and `<output> mean_cosine` per output."""
    flat: dict = {"top1": m["top1"]} if m.get("top1") is not None else {}
    for o in m.get("outputs") or []:
        flat[f"{o['name']} max_abs_error"] = o["max_abs_error"]
        flat[f"{o['name']} mean_cosine"] = o["mean_cosine"]
    return flat


def host_predictions(eval_npz: Path, variant: str) -> dict:
    """The host's predictions of one variant kept in a task bundle's eval.npz ({file name: prediction})."""
    with np.load(eval_npz, allow_pickle=False) as data:
        key = f"host_{variant}"
        return json.loads(str(data[key])) if key in data.files else {}
