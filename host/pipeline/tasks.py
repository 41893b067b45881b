"""The task of a bundled model on the host: which one it is (recognised by the board's own
device/tasks from the model's inputs and outputs, or TASK=), and - for detection, segmentation
and pose - every variant's predictions on an evaluation set in the formats labelling tools export
(EVAL=coco:... | yolo:... | masks:...), scored with the field's standard code (host/metrics).

The predictions come from the board's own code (device.serving.predictor.Predictor: the same
preprocessing, decoding and NMS) run on this machine's LiteRT, so the host's figure and the
board's are the same computation on two machines.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from device.contract.inputs import Preprocess
from device.errors import AgentError
from device.tasks import registry as tasks
from device.tasks.base import Task
from host.convert.source import ModelError
from host.pipeline.options import input_block

TASK_SETS = ("coco:", "yolo:", "masks:")


def choose(forced: str | None, io: dict, where: str) -> tuple[Task, str | None]:
    """(task, note) for a model's io_details; a forced task its outputs do not fit is a ModelError."""
    try:
        return tasks.choose(forced, io["inputs"], io["outputs"])
    except AgentError as exc:
        raise ModelError(f"{where}: {exc}") from None


def is_task_set(spec: str | None) -> bool:
    return bool(spec) and spec.startswith(TASK_SETS)


def predict_set(model: bytes, task: Task, images: list[Path], pre: Preprocess | None, labels: list | None,
                masks_dir: Path | None = None) -> dict:
    """{file name: prediction} of one variant over the set's images, as `infer --json` writes them."""
    from device.runtimes import registry as runtimes
    from device.serving.predictor import Predictor
    from device.tasks import draw
    from device.tasks.segment import encode_runs

    with tempfile.TemporaryDirectory(prefix="edgekit-task-") as tmp:
        path = Path(tmp) / "model.tflite"
        path.write_bytes(model)
        pred = Predictor(str(path), runtimes.resolve(), manifest=None if pre is None else {"input": input_block(pre, "")}, labels=labels, task=task.name)
        out = {}
        for image in images:
            tensor, geometry = pred.fitted_from_file(str(image))
            result, class_map = pred.predict_full(tensor, 5, geometry=geometry, mask=masks_dir is not None)
            if class_map is not None:
                result["mask"] = str(masks_dir / f"{image.stem}.png")
                result["mask_runs"] = encode_runs(class_map)
                draw.write_mask(class_map, result["mask"])
            out[image.name] = dict(result, input=str(image))
    return out


def score_variants(files: dict[str, bytes], task: Task, spec: str, pre: Preprocess | None,
                   labels: list | None, work: Path) -> tuple[dict[str, dict], dict[str, dict], list[Path]]:
    """(variant -> the task's metric on EVAL= (mAP / OKS AP / mIoU) and its agreement with FP32,
    variant -> its predictions {file name: prediction}, the set's images)."""
    from host.evalsets.registry import open_eval
    from host.evalsets.sets import MaskSet
    from host.metrics import results as scoring

    ds = open_eval(spec)
    images = [p for p, _ in ds.pairs] if isinstance(ds, MaskSet) else [Path(im.path) for im in ds.images]
    preds: dict[str, dict] = {}
    out: dict[str, dict] = {}
    for variant, data in files.items():
        masks = work / f"masks-{variant}"
        masks.mkdir(parents=True, exist_ok=True)
        preds[variant] = predict_set(data, task, images, pre, labels, masks)
        if task.name == "detect":
            out[variant] = scoring.score_detect(ds, preds[variant], f"EVAL={spec}")
        elif task.name == "keypoints":
            out[variant] = scoring.score_keypoints(ds, preds[variant], f"EVAL={spec}")
        elif task.name == "segment":
            out[variant] = scoring.score_segment(ds, preds[variant], f"EVAL={spec}", labels)
        else:
            raise ModelError(f"EVAL={spec}: a {task.name} model is not scored on this kind of set")
    ref = "fp32" if "fp32" in preds else next(iter(preds))
    for variant in preds:
        if variant != ref:
            out[variant]["agreement_with_" + ref] = scoring.agreement(task.name, preds[variant], preds[ref])
    return out, preds, images


SHIPPED = ("detect", "keypoints", "segment")     # tasks whose eval images go to the board


def write_eval_images(folder: Path, images: list[Path], preds: dict[str, dict], pre: Preprocess) -> dict:
    """eval.npz for a task bundle: every image already fitted to the model's input (`pixels`, by the
    same rule the host's predictions used, so a board without Pillow sees the same pixels), its
    original size (`sizes`, w h: the board puts boxes back on it), its file name (`names`), and the
    host's predictions per variant (host_<variant>, JSON) the board's are compared with. Returns
    the manifest's `eval` entry."""
    from device.contract.fileio import sha256_file
    from device.contract.inputs import read_image_fitted

    fitted = [read_image_fitted(str(p), pre) for p in images]
    arrays = {"names": np.array([p.name for p in images]),
              "pixels": np.stack([px for px, _ in fitted]),
              "sizes": np.array([[g.src_w, g.src_h] for _, g in fitted], dtype=np.int64)}
    for variant, by_name in preds.items():
        kept = {n: {k: v for k, v in p.items() if k not in ("mask", "input")} for n, p in by_name.items()}
        arrays[f"host_{variant}"] = np.array(json.dumps(kept))
    path = folder / "eval.npz"
    tmp = folder / "eval.tmp.npz"
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return {"file": path.name, "sha256": sha256_file(path), "count": len(images), "kind": "images"}


def ship_tensor_set(folder: Path, spec: str) -> dict:
    """An any-tensor model's npz (checked by host/evalsets/tensors.py) copied into the bundle as its
    eval.npz, for the board to compare its outputs with. Returns the manifest's `eval` entry."""
    import shutil

    from device.contract.fileio import sha256_file
    from host.evalsets.registry import open_eval

    ts = open_eval(spec)
    path = folder / "eval.npz"
    shutil.copyfile(spec.split(":", 1)[1], path)
    return {"file": path.name, "sha256": sha256_file(path), "count": ts.n, "kind": "tensors"}


def score_tensor_set(files: dict[str, bytes], spec: str) -> dict[str, dict]:
    """variant -> the board's own comparison (device/measure/task_eval.py) run here on the npz."""
    from device.measure.task_eval import evaluate_tensors
    from device.runtimes import registry as runtimes
    from host.evalsets.registry import open_eval

    open_eval(spec)                                   # the one-line refusals of a malformed set
    path = spec.split(":", 1)[1]
    rt = runtimes.resolve()
    out = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-raw-") as tmp, np.load(path, allow_pickle=False) as data:
        for variant, model in files.items():
            mp = Path(tmp) / f"{variant}.tflite"
            mp.write_bytes(model)
            job = {"eval_path": path, "model_path": str(mp), "threads": 1,
                   "runtime": {"name": rt.name, "version": rt.version, "module": rt.module}}
            try:
                r = evaluate_tensors(job, data)
            except AgentError as exc:
                raise ModelError(str(exc)) from None
            out[variant] = dict(r["tensors"], **({"top1": r["accuracy"]["top1"]} if r["accuracy"] else {}))
    return out


def rescore(folder: Path, manifest: dict) -> dict:
    """`make evaluate` of a task bundle: every variant's file on disk scored again, on the bundle's
    EVAL= set (detection, pose, masks) or its shipped npz (raw); a figure that moved since the
    bundle was written is one warning line. Returns the manifest with the new figures."""
    from device.contract.inputs import preprocess_for

    task = manifest.get("task", "classify")
    files = {v: (folder / e["file"]).read_bytes() for v, e in manifest["variants"].items()}
    if manifest["eval"]["kind"] == "tensors":
        spec = f"npz:{folder / manifest['eval']['file']}"
        new = score_tensor_set(files, spec)
    else:
        spec = manifest["eval_set"]
        first = next(iter(manifest["variants"].values()))
        pre = preprocess_for({"name": "input", "shape": first["input"]["shape"], "dtype": first["input"]["dtype"],
                              "quantization": None}, manifest)
        with tempfile.TemporaryDirectory(prefix="edgekit-score-") as tmp:
            new = score_variants(files, tasks.get(task), spec, pre, manifest.get("class_names"), Path(tmp))[0]
    for variant, m in new.items():
        entry = manifest["variants"][variant]
        old = entry.get("host_metric")
        if old is not None and metric_line(task, old) != metric_line(task, m):
            print(f"warning: {variant} {task} figure moved: was {metric_line(task, old)}, now {metric_line(task, m)}")
        entry["host_metric"] = m
        print(f"{variant:<8} {task} on {spec}: {metric_line(task, m)}")
    return manifest


def metric_line(task: str, m: dict) -> str:
    """One line of a variant's figure for the bundle summary, with its agreement with FP32 (the
    task's counterpart of the classifier's agree % column) where it was measured."""
    agree = next((v for k, v in m.items() if k.startswith("agreement_with_")), None)
    if not agree:
        return _metric(task, m)
    ref = next(k for k in m if k.startswith("agreement_with_"))[len("agreement_with_"):]
    if "matched" in agree:
        said = (f"{100 * agree['matched']:.1f} % of {ref}'s {agree['host']} boxes matched"
                + (f", mean IoU {agree['mean_iou']:.4f}" if agree.get("mean_iou") is not None else ""))
    elif "pixels_equal" in agree:
        said = f"{100 * agree['pixels_equal']:.2f} % of pixels as {ref}"
    else:
        return _metric(task, m)
    return f"{_metric(task, m)}; vs {ref}: {said}"


def _metric(task: str, m: dict) -> str:
    if task == "detect":
        return f"mAP {m['map']:.4f}, mAP@.5 {m['map50']:.4f}" if m.get("map") is not None else "no objects in the set"
    if task == "keypoints":
        return f"OKS AP {m['ap']:.4f}" if m.get("ap") is not None else "no people in the set"
    if task == "raw":
        parts = [f"{o['name']}: max |error| {o['max_abs_error']:.4g}, cosine {o['mean_cosine']:.6f}" for o in m["outputs"]]
        return "; ".join(parts + ([f"top-1 {m['top1']:.4f}"] if "top1" in m else []))
    return f"mIoU {m['miou']:.4f}, pixel accuracy {m['pixel_accuracy']:.4f}"
