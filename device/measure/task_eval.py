"""Evaluation sets for the tasks beyond classification, on the board.

Detectors and pose models: the set's images (fitted to the input on the host) go through the same
Predictor as `infer`, and the predictions go back to the host, which scores them with the set's
annotations (pycocotools). Any-tensor models: inputs by name or position (device/contract/feeds.py)
and expected outputs by position, compared here (largest absolute error, cosine similarity, argmax
accuracy against labels).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from device.contract import feeds, inputs
from device.errors import AgentError
from device.measure import memory, stats
from device.measure import jobs
from device.measure.jobs import _clock, _open, _specs
from device.runtimes import graph, registry as runtime
from device.serving.predictor import Predictor
from device.tasks.base import read_all
from device.tasks.segment import encode_runs


def evaluate(spec: dict) -> dict:
    """The eval job: which kind of set `eval_path` is decides who scores it - class labels
    (jobs.evaluate), a task's images (evaluate_images) or any-tensor arrays (evaluate_tensors)."""
    try:
        data = np.load(spec["eval_path"], allow_pickle=False)
        names = set(data.files)
    except Exception:
        return jobs.evaluate(spec)          # its own one-line refusal of an unreadable file
    if "names" in names and "x" not in names:
        return evaluate_images(spec, inputs.load_manifest(spec.get("manifest")), data)
    if "x0" in names or (({"y0", "labels"} & names) and "y" not in names):
        return evaluate_tensors(spec, data)
    return jobs.evaluate(spec)


def evaluate_images(spec: dict, manifest: Optional[dict], data: Any) -> dict:
    """The board's predictions on a task eval set: images already fitted to the model's input on
    the host (`pixels`, so a board without Pillow sees the same pixels), their original sizes
    (`sizes`, w h) and file names. The host scores the predictions with the set's annotations (COCO
    mAP, OKS AP, mIoU from the class maps' runs), beside its own predictions of the same model (host_<variant> in the same file)."""
    where = spec["eval_path"]
    pred = Predictor(spec["model_path"], runtime.RuntimeInfo(**spec["runtime"]), 1, spec["threads"], manifest)
    if pred.pre is None:
        raise AgentError(f"{where}: an image eval set, but the model's input is not an image", kind="eval_set")
    try:
        names, pixels, sizes = [str(n) for n in data["names"]], data["pixels"], data["sizes"]
    except KeyError as exc:
        raise AgentError(f"{where}: image eval set has no array {exc}", kind="eval_set") from None
    if not (len(names) == len(pixels) == len(sizes)) or not names:
        raise AgentError(f"{where}: names, pixels and sizes disagree in length or are empty", kind="eval_set")
    predictions, samples = [], []
    for i, name in enumerate(names):
        try:
            tensor = inputs.pixels_to_input(pixels[i:i + 1], pred.in_specs[0], pred.pre)
        except AgentError as exc:
            raise AgentError(f"{where}: {name}: {exc}", kind="eval_set") from None
        geometry = inputs.geometry_for(int(sizes[i][0]), int(sizes[i][1]), pred.pre)
        result, class_map = pred.predict_full(tensor, 5, geometry=geometry, mask=pred.task.mask is not None)
        if class_map is not None:       # the host scores masks (mIoU) from these runs
            result["mask_runs"] = encode_runs(class_map)
        samples.append(result["latency_us"])
        result.pop("model")
        predictions.append(dict({"input": name}, **result))
    model = {"inputs": [graph.public_spec(s) for s in pred.in_specs],
             "outputs": [graph.public_spec(s) for s in pred.out_specs]}
    model.update(pred.delegation)
    return {"model": model, "accuracy": None, "predictions": predictions, "task": pred.task.name,
            "latency": stats.summarize(samples), "memory": {"peak_rss_mb": memory.peak_rss_mb()},
            "warnings": list(pred.notes)}


def _by_position(data: Any, prefix: str) -> list:
    arrays, i = [], 0
    while f"{prefix}{i}" in data.files:
        arrays.append(data[f"{prefix}{i}"])
        i += 1
    return arrays


def evaluate_tensors(spec: dict, data: Any) -> dict:
    """An any-tensor model on an npz: inputs by name or by position (device/contract/feeds.py; float
    samples are quantised for an INT8 input, so one set scores every variant), expected outputs by position
    (y0, y1, ...) and/or integer `labels`. Per output: the largest absolute error and the
    mean cosine similarity to the expected values; with labels, top-1 of output 0's argmax."""
    where = spec["eval_path"]
    module = runtime.load_module(runtime.RuntimeInfo(**spec["runtime"]))
    ys = _by_position(data, "y")
    labels = data["labels"] if "labels" in data.files else None
    interp, _ = _open(module, spec["model_path"], spec["threads"], True)
    in_specs, out_specs = _specs(interp)
    xs = [data[k] for k in feeds.match(feeds.input_keys(data.files), in_specs, where, feeds.signature_names(interp))]
    if ys and len(ys) != len(out_specs):
        raise AgentError(f"{where}: {len(ys)} expected outputs for a model with {len(out_specs)} outputs",
                         kind="eval_set")
    if not ys and labels is None:
        raise AgentError(f"{where}: nothing to score against (y0, y1, ... or labels)", kind="eval_set")
    n = len(xs[0])
    worst = [0.0] * len(out_specs)
    cosines: list = [[] for _ in out_specs]
    hits, samples = 0, []
    for i in range(n):
        for s, x in zip(in_specs, xs):
            want = [max(1, d) for d in s["shape"]]
            row = np.asarray(x[i])
            row = row.reshape(want) if row.size == int(np.prod(want)) else row
            if row.dtype.kind == "f" and np.dtype(s["dtype"]).kind in "iu" and (s.get("quantization") or {}).get("scale"):
                row = inputs.quantize(row, s)       # float samples into an INT8 input, by its own scale
            interp.set_tensor(s["index"], inputs.check_fits(row, s, f"{where}: sample {i}"))
        t0 = _clock()
        runtime.invoke(interp)
        samples.append((_clock() - t0) / 1000.0)
        outs = read_all(interp, out_specs)
        for k, (got, want) in enumerate(zip(outs, ys)):
            g, w = np.ravel(got).astype(np.float64), np.ravel(want[i]).astype(np.float64)
            if g.size != w.size:
                raise AgentError(f"{where}: y{k} holds {w.size} values per sample, output {k} has {g.size}",
                                 kind="eval_set")
            worst[k] = max(worst[k], float(np.max(np.abs(g - w))) if g.size else 0.0)
            norm = float(np.linalg.norm(g) * np.linalg.norm(w))
            cosines[k].append(float(g @ w) / norm if norm else float(np.array_equal(g, w)))
        if labels is not None:
            hits += int(np.argmax(np.ravel(outs[0])) == int(labels[i]))
    tensors = {"count": n, "outputs": [{"name": s["name"], "max_abs_error": round(worst[k], 6),
                                         "mean_cosine": round(float(np.mean(cosines[k])), 6)}
                                        for k, s in enumerate(out_specs)] if ys else []}
    acc = {"top1": round(hits / n, 6), "count": n, "correct": hits} if labels is not None else None
    model = {"inputs": [graph.public_spec(s) for s in in_specs], "outputs": [graph.public_spec(s) for s in out_specs]}
    model.update(graph.analyse(interp))
    return {"model": model, "accuracy": acc, "tensors": tensors, "task": "raw",
            "latency": stats.summarize(samples), "memory": {"peak_rss_mb": memory.peak_rss_mb()}, "warnings": []}
