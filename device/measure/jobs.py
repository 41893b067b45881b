"""The work done for one model inside the child process: bench, eval and infer.

Each function takes the job spec (plain JSON from the parent) and returns a JSON-able dict.
Timing wraps invoke() only, with perf_counter_ns, so the figures match a bare invoke() loop.
"""
from __future__ import annotations

import gc
import os
import time
from typing import Any, Optional

import numpy as np

from device import report
from device.contract import feeds, inputs
from device.errors import EXIT_USAGE, AgentError, one_line
from device.measure import memory, stats
from device.runtimes import graph, registry as runtime

# eval and infer import what only they need (tasks, sources, the Predictor) inside: whatever this
# module imports is in the bench child's peak RSS, which must stay within a bare invoke loop's + 2 MB.

_clock = time.perf_counter_ns
_ANALYSE_KEYS = ("ops_total", "ops_delegated", "delegate_nodes", "ops_not_delegated", "quantized", "op_types")


def _open(module: Any, path: str, threads: int, xnnpack: bool, feeds: Optional[list] = None):
    """Load + allocate (resizing dynamic inputs to the feeds' shapes); returns (interp, init_us)."""
    t0 = _clock()
    interp = runtime.make_interpreter(module, path, threads, xnnpack)
    if feeds is not None:
        for detail, array in zip(interp.get_input_details(), feeds):
            if list(detail["shape"]) != list(array.shape):
                try:
                    interp.resize_tensor_input(detail["index"], list(array.shape))
                except Exception as exc:
                    raise AgentError(f"cannot resize input {detail['name']!r} to {list(array.shape)}: "
                                     f"{one_line(exc)}", kind="input") from None
    runtime.allocate(interp)
    return interp, (_clock() - t0) / 1000.0


def _specs(interp: Any) -> tuple:
    ins = [graph.tensor_spec(d) for d in interp.get_input_details()]
    outs = [graph.tensor_spec(d) for d in interp.get_output_details()]
    return ins, outs


def _bench_feeds(in_specs: list, input_files: list, seed: int) -> list:
    """Arrays for every input: from --input files (positional, or NAME=FILE), else random."""
    if not input_files:
        rng = np.random.default_rng(seed)
        return [inputs.random_input(s, rng) for s in in_specs]
    if len(input_files) != len(in_specs):
        raise AgentError(f"model has {len(in_specs)} input(s) "
                         f"({', '.join(feeds.short_name(s['name']) for s in in_specs)}) but {len(input_files)} "
                         "--input file(s) were given", kind="input")
    named = dict(f.split("=", 1) for f in input_files if "=" in f and not os.path.exists(f))
    if named:
        if len(named) != len(input_files):
            raise AgentError("use NAME=FILE for every --input or for none", kind="input")
        input_files = [named[n] for n in feeds.match(list(named), in_specs, "--input", kind="input")]
    return [inputs.check_fits(inputs.load_npy(p), s, p) for p, s in zip(input_files, in_specs)]


def _time_runs(interp: Any, num_runs: int, min_secs: float, max_samples: int) -> list:
    """The timed loop: at least num_runs and min_secs, never more than max_samples."""
    invoke = interp.invoke
    clock = _clock
    samples = []
    append = samples.append
    deadline = clock() + int(min_secs * 1e9)
    n = 0
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        append(t1 - t0)
        n += 1
        if (n >= num_runs and t1 >= deadline) or n >= max_samples:
            break
    return samples


def _warm_up(interp: Any, runs: int, keep: int) -> list:
    """Warm-up runs; only the first `keep` are timed for the warm-up stats, so memory stays bounded."""
    samples = _time_runs(interp, min(runs, keep), 0.0, keep) if runs > 0 else []
    invoke = interp.invoke
    for _ in range(runs - len(samples)):
        invoke()
    return samples


def _measure(interp: Any, feeds: list, spec: dict) -> dict:
    """First inference, warm-up, then the timed runs with their statistics and raw samples."""
    for detail, array in zip(interp.get_input_details(), feeds):
        interp.set_tensor(detail["index"], array)
    t0 = _clock()
    runtime.invoke(interp)
    first_us = (_clock() - t0) / 1000.0
    warm = _warm_up(interp, spec["warmup_runs"], spec["max_samples"])
    samples_us = [round(s / 1000.0, 3) for s in
                  _time_runs(interp, spec["num_runs"], spec["min_secs"], spec["max_samples"])]
    result = {"first_us": round(first_us, 3), "warmup": stats.summarize([w / 1000.0 for w in warm])}
    result.update(stats.summarize(samples_us))
    result["samples_us"] = samples_us
    return result


def bench(spec: dict) -> dict:
    """Every threads x XNNPACK setting of one model, plus its memory, in this (fresh) process."""
    module = runtime.load_module(runtime.RuntimeInfo(**spec["runtime"]))
    mem = {"rss_start_mb": spec.get("rss_start_mb"), "rss_imports_mb": memory.rss_mb()}
    baseline = memory.peak_rss_mb()
    path = spec["model_path"]
    runs, model, warnings = [], {}, []
    feeds = None  # made from the first interpreter's input specs, then reused by every setting
    for xnnpack in spec["xnnpack"]:
        for threads in spec["threads"]:
            if spec.get("progress_fd") is not None:
                report.progress(f"{spec.get('progress_label', os.path.basename(path))} threads={threads} "
                                f"xnnpack={'on' if xnnpack else 'off'}", spec["progress_fd"])
            interp, init_us = _open(module, path, threads, xnnpack, feeds)
            if feeds is None:
                in_specs, _ = _specs(interp)
                feeds = _bench_feeds(in_specs, spec.get("input_files") or [], spec.get("seed", 0))
                if any(s["shape"] != list(a.shape) for s, a in zip(in_specs, feeds)):
                    del interp  # a dynamic dimension: reload with the inputs' shapes
                    gc.collect()
                    interp, init_us = _open(module, path, threads, xnnpack, feeds)
            delegation = graph.analyse(interp)
            if not model:
                in_specs, out_specs = _specs(interp)
                model = {"inputs": [graph.public_spec(s) for s in in_specs],
                         "outputs": [graph.public_spec(s) for s in out_specs],
                         "quantized": delegation["quantized"], "op_types": delegation["op_types"],
                         "ops_total": delegation["ops_total"]}
                # a runtime's own facts beyond graph.analyse's (ONNX Runtime: providers, optimisation level)
                model.update({k: v for k, v in delegation.items() if k not in _ANALYSE_KEYS})
            if xnnpack and "ops_delegated" not in model:
                model.update({k: delegation[k] for k in ("ops_delegated", "delegate_nodes",
                                                         "ops_not_delegated", "not_delegated_why")})
            mem.setdefault("rss_loaded_mb", memory.rss_mb())
            run = {"threads": threads, "xnnpack": xnnpack, "init_us": round(init_us, 3),
                   "ops_delegated": delegation["ops_delegated"], "delegate_nodes": delegation["delegate_nodes"]}
            run.update(_measure(interp, feeds, spec))
            runs.append(run)
            del interp
            gc.collect()
    model.setdefault("ops_delegated", 0)
    model.setdefault("delegate_nodes", 0)
    model.setdefault("ops_not_delegated", model.get("op_types", {}))
    peak = memory.peak_rss_mb()
    mem["peak_rss_mb"] = peak
    mem["model_mb"] = round(peak - baseline, 2) if peak is not None and baseline is not None else None
    return {"model": model, "runs": runs, "memory": mem, "warnings": warnings}


def _check_eval_arrays(x: np.ndarray, y: np.ndarray, where: str) -> None:
    """The eval set's own shape rules (docs/contracts.md): x uint8 (N,H,W[,C]), y integer (N,).

    Checked up front because a wrong y does not fail loudly later: a -1 label would be counted
    in the last class's confusion row, and one-hot labels would break deep inside NumPy.
    """
    if x.dtype != np.uint8:
        raise AgentError(f"{where}: x must be uint8 pixels, got {x.dtype.name}", kind="eval_set")
    if x.ndim not in (3, 4):
        raise AgentError(f"{where}: x must be images (N,H,W[,C]), got shape {list(x.shape)}", kind="eval_set")
    if y.ndim != 1 or y.dtype.kind not in "iu":
        hint = " (one-hot labels? store their argmax)" if y.ndim == 2 else ""
        raise AgentError(f"{where}: y must be integer class indices of shape (N,), got "
                         f"{y.dtype.name}{list(y.shape)}{hint}", kind="eval_set")
    if len(x) == 0:
        raise AgentError(f"{where}: eval set is empty", kind="eval_set")
    if len(x) != len(y):
        raise AgentError(f"{where}: x has {len(x)} images but y has {len(y)} labels", kind="eval_set")


def evaluate(spec: dict) -> dict:
    from device.contract import results
    from device.tasks import registry as tasks
    module = runtime.load_module(runtime.RuntimeInfo(**spec["runtime"]))
    manifest = inputs.load_manifest(spec.get("manifest"))
    try:
        data = np.load(spec["eval_path"], allow_pickle=False)
        x, y = data["x"], data["y"]
    except KeyError as exc:
        raise AgentError(f"{spec['eval_path']}: eval set has no array {exc}", kind="eval_set") from None
    except Exception as exc:
        raise AgentError(f"{spec['eval_path']}: not a readable .npz eval set ({type(exc).__name__})",
                         kind="eval_set") from None
    where = spec["eval_path"]
    _check_eval_arrays(x, y, where)
    interp, init_us = _open(module, spec["model_path"], spec["threads"], True)
    in_specs, out_specs = _specs(interp)
    if len(in_specs) != 1:
        raise AgentError(f"eval needs a single-input model, this one has {len(in_specs)}", kind="input")
    pre = inputs.preprocess_for(in_specs[0], manifest)
    try:
        first = inputs.pixels_to_input(x[:1], in_specs[0], pre)  # checks the shape once, up front
    except AgentError as exc:
        raise AgentError(f"{where}: {exc}", kind="eval_set") from None
    signature = in_specs[0].get("shape_signature") or in_specs[0]["shape"]
    if len(signature) != first.ndim or any(s not in (-1, n) for s, n in zip(signature, first.shape)):
        raise AgentError(f"{where}: images preprocess to {list(first.shape)} but the model expects "
                         f"{list(signature)}", kind="eval_set")
    if list(in_specs[0]["shape"]) != list(first.shape):
        interp, init_us = _open(module, spec["model_path"], spec["threads"], True, [first])
        in_specs, out_specs = _specs(interp)
    task, _ = tasks.choose(spec.get("task") or (manifest or {}).get("task"), in_specs, out_specs)
    if task.scorer is None:
        raise AgentError(f"{where}: eval.npz holds class labels, but this is a {task.name} model; its "
                         "predictions are scored on the host (make bench with its EVAL=)", kind="eval_set")
    scorer = task.scorer(out_specs, y, where)
    index = in_specs[0]["index"]
    samples = []
    for i in range(len(x)):  # one image at a time: a big eval set never becomes one float array
        interp.set_tensor(index, inputs.pixels_to_input(x[i:i + 1], in_specs[0], pre))
        t0 = _clock()
        runtime.invoke(interp)
        samples.append((_clock() - t0) / 1000.0)
        scorer.add(i, task.read(interp, out_specs))
    acc = scorer.summary(preprocess=pre.__dict__, latency=stats.summarize(samples))
    variant = results.variant_for(manifest, spec["model_path"], spec.get("sha256"))
    acc["host_variant"] = variant
    if f"pred_{variant}" in data.files:
        acc.update(scorer.agreement(data[f"pred_{variant}"]))
    if manifest:
        host_top1 = (manifest.get("variants", {}).get(variant) or {}).get("host_top1")
        if host_top1 is not None:
            acc["host_top1"] = host_top1
    model = {"inputs": [graph.public_spec(s) for s in in_specs],
             "outputs": [graph.public_spec(s) for s in out_specs]}
    model.update({k: v for k, v in graph.analyse(interp).items()})
    return {"model": model, "accuracy": acc, "init_us": round(init_us, 3),
            "memory": {"peak_rss_mb": memory.peak_rss_mb()}, "warnings": []}


def infer(spec: dict) -> dict:
    """Answer every input file with one Predictor (the task recognised or forced); a bad file is an
    error entry, not a failure. --draw / --mask_out pictures are written per input."""
    from device.serving.predictor import Predictor
    from device.sources import files            # not the registry: that imports the camera sources too
    from device.sources.base import Options
    manifest = inputs.load_manifest(spec.get("manifest"))
    t0 = _clock()
    pred = Predictor(spec["model_path"], runtime.RuntimeInfo(**spec["runtime"]), 1, spec["threads"],
                     manifest, spec.get("labels"), spec.get("pixel_scale"), spec.get("pixel_offset"),
                     spec.get("task"), spec.get("threshold"), spec.get("iou"))
    init_us = (_clock() - t0) / 1000.0
    items = [item.path for item in files.open_files(spec["inputs"], Options())]
    if not items:
        raise AgentError("no input files found", kind="input")
    if (spec.get("mask_out") and pred.task.name != "segment"):
        raise AgentError(f"--mask_out is for segmentation; this model's task is {pred.task.name}",
                         EXIT_USAGE, "usage")
    predictions, failed = [], 0
    for path in items:
        try:
            tensor, geometry = pred.fitted_from_file(path)
            result, class_map = pred.predict_full(tensor, spec["top_k"], geometry=geometry,
                                                  mask=bool(spec.get("draw") or spec.get("mask_out")))
            result.pop("model")
            _pictures(path, class_map, result, spec, len(items))
            predictions.append(dict({"input": path}, **result))
        except AgentError as exc:
            failed += 1
            message = str(exc) if str(exc).startswith(path) else f"{path}: {exc}"
            predictions.append({"input": path, "error": message})
    model = {"inputs": [graph.public_spec(s) for s in pred.in_specs],
             "outputs": [graph.public_spec(s) for s in pred.out_specs]}
    model.update(pred.delegation)
    return {"model": model, "predictions": predictions, "failed_inputs": failed, "task": pred.task.name,
            "preprocess": pred.pre.__dict__ if pred.pre else None, "init_us": round(init_us, 3),
            "memory": {"peak_rss_mb": memory.peak_rss_mb()}, "warnings": list(pred.notes)}


def _picture_path(dest: str, path: str, many: bool, ext: str) -> str:
    """--draw OUT for one input is the file; for several, OUT is a folder of <input stem><ext>."""
    if not many:
        return dest
    os.makedirs(dest, exist_ok=True)
    return os.path.join(dest, os.path.splitext(os.path.basename(path))[0] + ext)


def _pictures(path: str, cmap: Any, result: dict, spec: dict, n: int) -> None:
    if not (spec.get("draw") or spec.get("mask_out")):
        return
    from device.tasks import draw
    if spec.get("mask_out") and cmap is not None:
        out = _picture_path(spec["mask_out"], path, n > 1, ".png")
        draw.write_mask(cmap, out)
        result["mask"] = out
    if spec.get("draw"):
        if path.lower().endswith(".npy"):
            raise AgentError(f"{path}: --draw needs an image input, not a .npy tensor", kind="input")
        out = _picture_path(spec["draw"], path, n > 1, ".jpg")
        draw.write_picture(draw.annotate(draw.open_image(path), result, cmap), out)
        result["drawn"] = out
