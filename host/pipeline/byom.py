"""Bring your own model: `make quantize MODEL=...` and `make bundle MODEL=a.tflite,...`.

The user's model is one more model source on the shared path (load -> convert -> evaluate ->
bundle -> summary): it comes in through an importer (host/convert/importers.py), its data from the
user's files (host/data/user.py), its pixel rule from the flags (host/pipeline/options.py). The
bundle records the model's origin and that rule, and is built beside its final place and swapped
in when complete: a refused input or a failed conversion never leaves a half-written bundle.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from device.contract.fileio import atomic_write_text
from device.contract.inputs import Preprocess, pixels_to_float
from device.tasks.detect import yolo_layout
from host.convert.interop import onnx_file, torch_file
from host.convert.importers import identify, importer
from host.convert.interop.ort_variants import io_details as ort_io_details, is_onnx
from host.convert.quantize import check_fixed_inputs, convert, image_input, io_details, variant_name
from host.convert.source import ModelError, Source
from host.data.builtin import DatasetError
from host.data.user import NO_CALIBRATION, RANDOM, EvalSet, load_calibration, load_eval, read_labels
from host.pipeline.bundle import ManifestParts, bundle_dir, staged, write_bundle
from host.pipeline.evaluate import Scored, evaluate
from host.pipeline.options import Options, convention, input_block, make_preprocess
from host.pipeline.summary import print_summary
from host.pipeline.tasks import (SHIPPED, choose as choose_task, is_task_set, metric_line, score_tensor_set,
                                  score_variants, ship_tensor_set, write_eval_images)

AGREEMENT_MIN = 0.98
HEAD_FLOAT_OPS = 30     # a raw YOLO head's decoding, kept float in `mixed` when full INT8 loses it


def check_labels(labels: list[str] | None, n_outputs: int, path: str | None) -> None:
    if labels is not None and len(labels) != n_outputs:
        fewer = "fewer" if len(labels) < n_outputs else "more"
        raise DatasetError(f"labels file {path} has {len(labels)} lines, {fewer} than the model's "
                           f"{n_outputs} outputs; give one label per output (e.g. 'background' first)")


def check_eval_labels(ev: EvalSet, n_outputs: int) -> None:
    if ev.y.min() < 0 or ev.y.max() >= n_outputs:
        raise DatasetError(f"EVAL={ev.spec}: labels run {int(ev.y.min())}..{int(ev.y.max())} but the model has "
                           f"{n_outputs} outputs (0..{n_outputs - 1})")


def _n_outputs(io: dict) -> int:
    shape = io["outputs"][0]["shape"]
    return int(np.prod([max(1, d) for d in (shape[1:] if len(shape) > 1 else shape)]))


def _bundle(opts: Options, files: dict[str, bytes], ev: EvalSet | None, pre: Preprocess | None,
            pre_name: str | None, labels: list[str] | None, origin: dict, extra: dict,
            scored: dict[str, Scored] | None = None, task: str = "classify") -> dict:
    """The shared end of the path for a user's model: evaluate, bundle (staged), summary."""
    if scored is None:
        scored = evaluate(files, None if ev is None else ev.x, None if ev is None else ev.y, pre)
    metrics, preds, images = _task_metrics(opts, files, task, pre, labels)
    ios = {v: (ort_io_details if is_onnx(b) else io_details)(b) for v, b in files.items()}
    head = {"dataset": {"spec": ev.spec if ev else None, "name": ev.spec if ev else None,
                        "n_test": int(len(ev.y)) if ev else 0},
            "class_names": labels or (ev.class_names if ev else None)}
    if pre is not None:
        head["input"] = input_block(pre, pre_name)
    head["task"] = task
    if extra.get("softmax"):
        head["softmax"] = extra["softmax"]
    if metrics:
        head["eval_set"] = opts.eval
    tail = {k: extra[k] for k in ("calibration", "fidelity", "int8_debug", "accuracy_checked", "notes") if k in extra}
    parts = ManifestParts(head, {"origin": origin, "model": extra.get("model", {})}, tail,
                          before={v: {"inputs": len(ios[v]["inputs"])} for v in files},
                          after={v: {"host_us": round(scored[v].host_us, 2), **extra["variant_info"].get(v, {}),
                                     **({"host_metric": metrics[v]} if v in metrics else {})}
                                 for v in files})
    final = bundle_dir(opts.name)
    with staged(final) as tmp:
        manifest = write_bundle(tmp, opts.name, files, scored, ios, parts, None if ev is None else (ev.x, ev.y))
        if preds and task in SHIPPED:     # the board predicts on the same images; `make score` compares
            manifest["eval"] = write_eval_images(tmp, images, preds, pre)
            atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2))
        elif task == "raw" and opts.eval:  # the board compares its outputs with the same arrays
            manifest["eval"] = ship_tensor_set(tmp, opts.eval)
            atomic_write_text(tmp / "manifest.json", json.dumps(manifest, indent=2))
    print_summary(manifest)
    for v, m in metrics.items():
        print(f"{v:<8} {task} on {opts.eval}: {metric_line(task, m)}")
    print(f"bundle -> {final}")
    return manifest


def _task_metrics(opts: Options, files: dict[str, bytes], task: str, pre: Preprocess | None,
                  labels: list[str] | None) -> tuple[dict, dict, list]:
    """Each variant's detection / segmentation / pose figure on EVAL= (coco:, yolo:, masks:), its
    predictions and the set's images; nothing without such a set."""
    if task == "raw" and opts.eval:
        return score_tensor_set(files, opts.eval), {}, []
    if not is_task_set(opts.eval):
        return {}, {}, []
    with tempfile.TemporaryDirectory(prefix="edgekit-score-") as tmp:
        return score_variants(files, choose_task(task, _io_of(files), opts.model)[0], opts.eval, pre, labels,
                              Path(tmp))


def _io_of(files: dict[str, bytes]) -> dict:
    return io_details(next(iter(files.values())))


def _check_task_inputs(task: str, opts: Options, labels: list[str] | None, io: dict,
                       model: bytes | None = None) -> None:
    """A classifier's labels must match its outputs; any other task gets one warning when they do
    not, and an EVAL= of the kind its metric needs."""
    from device.tasks import registry as tasks

    if task == "classify":
        check_labels(labels, _n_outputs(io), opts.labels)
        if is_task_set(opts.eval):
            raise DatasetError(f"EVAL={opts.eval}: a classifier is evaluated on folder:, npz: or csv: sets")
        return
    warning = tasks.label_warning(tasks.get(task), io["outputs"], labels, f"LABELS={opts.labels}", model)
    if warning:
        print(f"warning: {warning}")
    if task == "raw":
        if opts.eval and not opts.eval.startswith("npz:"):
            raise DatasetError(f"EVAL={opts.eval}: a raw (any-tensor) model is evaluated on npz:PATH "
                               "(inputs by the model's input names or x0, x1, ...; expected outputs y0, y1, ... and/or labels)")
        return
    if opts.eval and not is_task_set(opts.eval):
        raise DatasetError(f"EVAL={opts.eval}: a {task} model is evaluated on coco:JSON:IMAGES, yolo:PATH or "
                           "masks:IMAGES:MASKS")


# ---------------------------------------------------------------- make quantize MODEL=...

def run_quantize_model(opts: Options) -> dict:
    from host.convert.quantize import graph_summary

    src = identify(opts.model)
    to_saved_model = importer(src.format).to_saved_model
    if to_saved_model is None:
        raise ModelError(f"{src.path} is already a .tflite: use `make bundle MODEL={opts.model}` "
                         "(python -m host bundle) to bundle it as it is")
    bundle_dir(opts.name)
    labels = read_labels(opts.labels) if opts.labels else None
    if not opts.calib:                  # never random data silently
        raise DatasetError(NO_CALIBRATION)
    with tempfile.TemporaryDirectory(prefix="edgekit-byom-") as tmp:
        converted = _onnx_of(src, opts, Path(tmp))
        if converted is not None:       # ONNX, or PyTorch exported to ONNX: onnx2tf in its own venv
            saved, signature = onnx_file.to_saved_model(converted, Path(tmp), None)
        else:
            saved, signature = to_saved_model(src, Path(tmp), opts.signature)
        fp32 = convert(saved, "fp32", None, signature)
        io_fp32 = io_details(fp32)
        check_fixed_inputs(io_fp32, str(src.path))
        try:
            hwc = image_input(io_fp32, str(src.path))
        except ModelError as exc:
            hwc, not_image = None, exc
        n_out = _n_outputs(io_fp32)
        task, note = choose_task(opts.task, io_fp32, str(src.path))
        if note:
            print(f"note: {note}")
        if hwc is None or task.name == "raw":
            if task.name != "raw":
                raise ModelError(f"{not_image} — a {task.name} model takes one image; quantize other models "
                                 "as TASK=raw with CALIB=npz:PATH")
            return _quantize_tensors(opts, src, saved, signature, fp32, io_fp32, labels)
        _check_task_inputs(task.name, opts, labels, io_fp32, fp32)
        pre, pre_name = make_preprocess(opts, hwc, None)
        ev = load_eval(opts.eval, pre, labels) if opts.eval and task.name == "classify" else None
        if ev is not None:
            check_eval_labels(ev, n_out)
        calib = pixels_to_float(load_calibration(opts.calib, opts.calib_n, pre), pre)
        outs = (f"{n_out} outputs" if task.name == "classify"      # a class count; other tasks: their shapes
                else "output " + ", ".join("x".join(str(d) for d in o["shape"]) for o in io_fp32["outputs"]))
        print(f"{src.format} model {src.path} ({task.name}): input {hwc[0]}x{hwc[1]}x{hwc[2]}, {outs}, "
              f"preprocess {pre_name}, {len(calib)} calibration images from {opts.calib}"
              + (f", {len(ev.y)} eval images" if ev else ""))
        files = {v: fp32 if v == "fp32" else convert(saved, v, calib if v == "int8" else None, signature)
                 for v in opts.variants}
        softmax = None
        if task.name == "classify":     # the logits give the same top-1; the probabilities come on the board
            from host.convert import logits
            files, softmax = logits.apply(files, opts.softmax)
        x, y = (None, None) if ev is None else (ev.x, ev.y)
        extra = {"calibration": {"source": opts.calib, "count": int(len(calib))},
                 "model": _model_info(src, io_fp32), "softmax": softmax}
        if converted is not None:         # ONNX Runtime's own variants, after the converter's fidelity check
            from host.convert.interop.onnx_fidelity import add_ort_variants
            extra["fidelity"] = add_ort_variants(files, converted.path.read_bytes(), calib, task.name,
                                                 logits=bool(softmax) and softmax["where"] == "host")
            src.fixups = converted.fixups
        scored = evaluate(files, x, y, pre)
        if opts.calib == RANDOM or (ev is None and not is_task_set(opts.eval)):
            extra["accuracy_checked"] = False
        debug = None
        if "int8" in scored and "fp32" in scored and ev is not None:
            debug = _int8_debug(saved, calib, signature, _top1_loss(scored, opts), opts)
        elif "int8" in files and "fp32" in files and task.name != "classify" and is_task_set(opts.eval):
            pair = _task_metrics(opts, {v: files[v] for v in ("fp32", "int8")}, task.name, pre, labels)[0]
            debug = _int8_debug(saved, calib, signature, _task_loss(task.name, pair, opts), opts)
        if debug:
            extra["int8_debug"] = debug
            if opts.int8_fallback > 0:
                from host.convert.debug_int8 import convert_mixed

                keep = [r["tensor"] for r in debug["worst_layers"][:opts.int8_fallback]]
                debug["kept_float"] = [r["layer"] for r in debug["worst_layers"][:opts.int8_fallback]]
                files["mixed"] = convert_mixed(saved, calib, signature, keep)
                if softmax and softmax["where"] == "host":
                    files["mixed"] = logits.strip_softmax(files["mixed"])[0]
                scored.update(evaluate({"mixed": files["mixed"]}, x, y, pre))
            elif task.name == "detect" and yolo_layout(io_fp32["outputs"]) is not None:
                from host.convert.debug_int8 import convert_head_float

                files["mixed"] = convert_head_float(saved, calib, signature, fp32, HEAD_FLOAT_OPS)
                debug["kept_float"] = [f"the last {HEAD_FLOAT_OPS} operators (the head's decoding; float output)"]
                scored.update(evaluate({"mixed": files["mixed"]}, x, y, pre))
        extra["variant_info"] = {v: {"runtime": "onnxruntime"} if is_onnx(b) else
                                 {"float_ops": graph_summary(b)["float_ops"]} for v, b in files.items()}
        return _bundle(opts, files, ev, pre, pre_name, labels, src.origin(), extra, scored, task.name)


def _quantize_tensors(opts: Options, src: Source, saved: Path, signature: str | None, fp32: bytes, io: dict,
                      labels: list[str] | None) -> dict:
    """A model whose inputs are not one image (several inputs, audio features, sensor windows):
    calibrated from CALIB=npz: arrays by position, scored on EVAL=npz: by the board's own
    comparison of outputs; no pixel rule in the bundle."""
    from host.convert.quantize import graph_summary, signature_inputs, tensor_samples
    from host.data.user import load_tensor_calibration

    _check_task_inputs("raw", opts, labels, io)
    names = signature_inputs(fp32, signature)
    arrays = load_tensor_calibration(opts.calib, opts.calib_n, io["inputs"], names)
    samples = tensor_samples(names, arrays)
    order = ", ".join(f"x{i}={n} {t['shape']} {t['dtype']}" for i, (n, t) in enumerate(zip(names, io["inputs"])))
    print(f"{src.format} model {src.path} (raw): inputs {order}; {len(samples)} calibration samples from {opts.calib}")
    files = {v: fp32 if v == "fp32" else convert(saved, v, samples if v == "int8" else None, signature)
             for v in opts.variants}
    extra = {"calibration": {"source": opts.calib, "count": len(samples)}, "model": _model_info(src, io),
             "variant_info": {v: {"float_ops": graph_summary(b)["float_ops"]} for v, b in files.items()}}
    if not opts.eval:
        extra["accuracy_checked"] = False
    return _bundle(opts, files, None, None, None, labels, src.origin(), extra, task="raw")


def _onnx_of(src: Source, opts: Options, scratch: Path) -> Source | None:
    """The ONNX model to convert (dynamic dims fixed), for an ONNX or PyTorch source; None otherwise."""
    shape = opts.input
    if src.format == "torch":
        src = torch_file.to_onnx(src, opts.weights, opts.input, scratch)
        onnx_file.check(src.path)
        shape = None                    # INPUT= was the export's example shape
    elif src.format != "onnx":
        return None
    return onnx_file.fixed(src, shape, opts.calib, scratch)


def _model_info(src: Source, io: dict) -> dict:
    return {"source_format": src.format, "inputs": [t["shape"] for t in io["inputs"]],
            "outputs": [t["shape"] for t in io["outputs"]]}


def _top1_loss(scored: dict, opts: Options) -> tuple[list[str], dict]:
    """(why INT8 needs a look, its figures) for a classifier: a top-1 drop over MAX_DROP_PP or
    agreement with FP32 under 98 %."""
    i8, f32 = scored["int8"], scored["fp32"]
    drop = 100 * (f32.top1 - i8.top1)
    agree = float(np.mean(i8.predictions == f32.predictions))
    reasons = []
    if drop > opts.max_drop_pp:
        reasons.append(f"top-1 drop {drop:.2f} pp > {opts.max_drop_pp} pp")
    if agree < AGREEMENT_MIN:
        reasons.append(f"agreement with fp32 {100 * agree:.2f} % < {100 * AGREEMENT_MIN:.0f} %")
    return reasons, {"drop_pp": round(drop, 3), "agreement_with_fp32": round(agree, 4)}


# The figure a task's INT8 drop is read on (points, as MAX_DROP_PP), and its agreement measure.
_HEADLINE = {"detect": ("map", "mAP"), "keypoints": ("ap", "OKS AP"), "segment": ("miou", "mIoU")}
_AGREEMENT = {"detect": ("matched", "boxes matched"), "segment": ("pixels_equal", "pixels equal")}


def _task_loss(task: str, metrics: dict, opts: Options) -> tuple[list[str], dict]:
    """The same for a detector, pose model or segmenter, on the EVAL= set: its metric's drop in
    points and its agreement with FP32 (boxes matched, pixels equal). A detector whose boxes and
    scores share one INT8 scale in its head keeps its boxes and loses every score: this is where
    that shows, instead of a bundle of zero detections that exits 0."""
    i8, f32 = metrics.get("int8") or {}, metrics.get("fp32") or {}
    key, name = _HEADLINE[task]
    reasons, figures = [], {}
    if i8.get(key) is not None and f32.get(key) is not None:
        drop = 100 * (f32[key] - i8[key])
        figures["drop_pp"] = round(drop, 3)
        if drop > opts.max_drop_pp:
            reasons.append(f"{name} drop {drop:.2f} pp > {opts.max_drop_pp} pp")
    if task in _AGREEMENT:
        field, said = _AGREEMENT[task]
        agree = (i8.get("agreement_with_fp32") or {}).get(field)
        if agree is not None:
            figures["agreement_with_fp32"] = round(agree, 4)
            if agree < AGREEMENT_MIN:
                reasons.append(f"{said} with fp32 {100 * agree:.2f} % < {100 * AGREEMENT_MIN:.0f} %")
    return reasons, figures


def _int8_debug(saved: Path, calib: np.ndarray, signature: str | None, loss: tuple[list[str], dict],
                opts: Options) -> dict | None:
    """Per-layer error when INT8 loses accuracy (loss: the reasons and figures), or INT8_FALLBACK asks; else None."""
    reasons, figures = loss
    if not reasons and opts.int8_fallback <= 0:
        return None
    from host.convert.debug_int8 import worst_layers

    print("int8: " + ("; ".join(reasons) or "INT8_FALLBACK asked") + " -> running the quantization debugger")
    return {"reason": "; ".join(reasons) or "INT8_FALLBACK asked", **figures,
            "worst_layers": worst_layers(saved, calib, signature, max(5, opts.int8_fallback))}


# ---------------------------------------------------------------- make bundle MODEL=a.tflite,b.tflite

def run_bundle(opts: Options) -> dict:
    """Third-party .tflite files as they are, with their own shapes and quantisation."""
    paths = [p for p in (s.strip() for s in opts.model.split(",")) if p]
    if not paths:
        raise ModelError("MODEL= one or more .tflite files, comma-separated")
    bundle_dir(opts.name)
    labels = read_labels(opts.labels) if opts.labels else None
    files: dict[str, bytes] = {}
    ios: dict[str, dict] = {}
    sources: dict[str, Source] = {}
    for p in paths:
        src = identify(p)
        if src.format != "tflite":
            raise ModelError(f"{p}: make bundle takes .tflite files; use make quantize MODEL={p} for {src.format} models")
        data = src.path.read_bytes()
        try:
            io = io_details(data)
        except ModelError as exc:
            raise ModelError(f"{p}: {exc}") from None
        check_fixed_inputs(io, p)
        v = variant_name(src.path, io)
        if v in files:
            raise ModelError(f"{p} and {sources[v].path} are both variant {v!r}; put the variant in one file "
                             f"name (e.g. model_{'fp32' if v != 'fp32' else 'int8'}.tflite)")
        files[v], ios[v], sources[v] = data, io, src
    first = next(iter(ios.values()))
    n_out = _n_outputs(first)
    task, note = choose_task(opts.task, first, paths[0])
    if note:
        print(f"note: {note}")
    _check_task_inputs(task.name, opts, labels, first, next(iter(files.values())))
    pre = pre_name = ev = None
    try:
        hwc = image_input(first, paths[0])
        image_error = None
    except ModelError as exc:
        hwc, image_error = None, exc
    if opts.eval and image_error is not None and task.name != "raw":
        raise image_error
    if hwc is not None:
        rules = {c for c in (convention(io["inputs"][0]) for io in ios.values()) if c is not None}
        explicit = opts.preprocess or opts.pixel_scale or opts.pixel_offset
        if len(rules) > 1 and not explicit:
            raise DatasetError("the files' input quantisations imply different pixel rules; "
                               "say which with PREPROCESS= or PIXEL_SCALE=/PIXEL_OFFSET=")
        pre, pre_name = make_preprocess(opts, hwc, next(iter(rules)) if rules else None)
        if opts.eval and task.name == "classify":
            ev = load_eval(opts.eval, pre, labels)
            check_eval_labels(ev, n_out)
    origin = {"format": "tflite", "files": {v: {"path": str(s.path.resolve()), "sha256": s.sha256}
                                            for v, s in sources.items()},
              "path": ", ".join(str(s.path) for s in sources.values())}
    extra = {"model": {"source_format": "tflite", "inputs": [t["shape"] for t in first["inputs"]],
                       "outputs": [t["shape"] for t in first["outputs"]]},
             "variant_info": {v: {"origin_file": s.path.name} for v, s in sources.items()}}
    if ev is None and not is_task_set(opts.eval) and not (task.name == "raw" and opts.eval):
        extra["accuracy_checked"] = False
    return _bundle(opts, files, ev, pre, pre_name, labels, origin, extra, task=task.name)
