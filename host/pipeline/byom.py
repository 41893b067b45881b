"""Bring your own model: `make quantize MODEL=...` and `make bundle MODEL=a.tflite,...`.

The same bundle as the built-in path (variants, eval.npz, manifest.json with checksums), plus the
model's origin and the preprocessing it was evaluated with. The bundle is built in a temp
directory beside its final place and moved there only when complete: a refused input or a failed
conversion never leaves a half-written bundle (an earlier bundle of the same name stays).
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.contract.inputs import COLOR_ORDERS, PRESETS, Preprocess, RESIZE_MODES, pixels_to_float
from host.config import DEFAULTS
from host.data.builtin import DatasetError
from host.data.user import EvalSet, NO_CALIBRATION, RANDOM, load_calibration, load_eval, read_labels
from host.convert.importers import (ModelError, Source, check_fixed_inputs, check_keras_inputs, conversion_cause,
                            identify, image_input, io_details, load_keras, saved_model_signature, variant_name)
from host.convert.quantize import ConversionError
from host.pipeline.bundle import bundle_dir as _bundle_dir, print_model_table as print_table, write_model_bundle as write_bundle
from host.pipeline.evaluate import evaluate_model as evaluate, predict

AGREEMENT_MIN = 0.98


@dataclass
class Options:
    """What the user asked for (the make variables / CLI flags of issue 12)."""
    model: str
    name: str
    calib: str | None = None
    eval: str | None = None
    labels: str | None = None
    preprocess: str | None = None          # unit | signed | raw | imagenet
    pixel_scale: str | None = None         # "s" or "s1,s2,s3"
    pixel_offset: str | None = None
    color_order: str = "RGB"
    resize: str = "stretch"
    calib_n: int = DEFAULTS.calibration_samples
    max_drop_pp: float = 1.0
    int8_fallback: int = 0
    signature: str | None = None
    variants: tuple = DEFAULTS.variants
    notes: list[str] = field(default_factory=list)


# ---------------------------------------------------------------- preprocessing

def _numbers(text: str, what: str) -> float | list[float]:
    try:
        vals = [float(v) for v in str(text).split(",")]
    except ValueError:
        raise DatasetError(f"{what}={text!r}: expected a number or three comma-separated numbers") from None
    if len(vals) not in (1, 3):
        raise DatasetError(f"{what}={text!r}: one value, or one per channel (3)")
    return vals[0] if len(vals) == 1 else vals


def make_preprocess(opts: Options, hwc: tuple[int, int, int], convention: tuple[float, float] | None) -> tuple[Preprocess, str]:
    """The pixel rule for this model and what to call it in the manifest.

    Explicit PREPROCESS= or PIXEL_SCALE=/PIXEL_OFFSET= win; else a quantised .tflite input's own
    quantisation (`convention`, as the agent does); else `unit` ([0, 1]).
    """
    h, w, c = hwc
    if opts.color_order.upper() not in COLOR_ORDERS:
        raise DatasetError(f"COLOR_ORDER={opts.color_order}: one of {', '.join(COLOR_ORDERS)}")
    if opts.resize not in RESIZE_MODES:
        raise DatasetError(f"RESIZE={opts.resize}: one of {', '.join(RESIZE_MODES)}")
    if opts.preprocess and (opts.pixel_scale or opts.pixel_offset):
        raise DatasetError("give PREPROCESS= or PIXEL_SCALE=/PIXEL_OFFSET=, not both")
    if opts.preprocess:
        if opts.preprocess not in PRESETS:
            raise DatasetError(f"PREPROCESS={opts.preprocess}: one of {', '.join(PRESETS)} "
                               "(or PIXEL_SCALE=/PIXEL_OFFSET=)")
        scale, offset = PRESETS[opts.preprocess]
        name = opts.preprocess
    elif opts.pixel_scale or opts.pixel_offset:
        scale = _numbers(opts.pixel_scale, "PIXEL_SCALE") if opts.pixel_scale else 1.0
        offset = _numbers(opts.pixel_offset, "PIXEL_OFFSET") if opts.pixel_offset else 0.0
        name = "custom"
    elif convention is not None:
        (scale, offset), name = convention, "input-quantisation"
    else:
        (scale, offset), name = PRESETS["unit"], "unit"
    if c != 3 and (isinstance(scale, list) or isinstance(offset, list)):
        raise DatasetError(f"per-channel PREPROCESS/PIXEL_* values need a 3-channel model, this one has {c}")
    return Preprocess(h, w, c, scale, offset, "manifest", opts.color_order.upper(), opts.resize), name


def _convention(spec: dict) -> tuple[float, float] | None:
    """A quantised input's own rule: uint8 q = pixel, int8 q = pixel - 128 (device/contract/inputs.py)."""
    if spec["dtype"] not in ("int8", "uint8") or not spec["scale"]:
        return None
    shift = -128 if spec["dtype"] == "int8" else 0
    return spec["scale"], (shift - spec["zero_point"]) * spec["scale"]


def input_block(pre: Preprocess, name: str) -> dict:
    return {"height": pre.height, "width": pre.width, "channels": pre.channels,
            "color": "grayscale" if pre.channels == 1 else "rgb", "layout": "NHWC",
            "pixel_scale": pre.pixel_scale, "pixel_offset": pre.pixel_offset,
            "color_order": pre.color_order, "resize": pre.resize, "preprocess": name}


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


# ---------------------------------------------------------------- make quantize MODEL=...

def _convert(saved: Path, variant: str, calib: np.ndarray | None, signature: str | None) -> bytes:
    """One variant; for int8, an op left in float is named with its layer (TFLITE_BUILTINS_INT8 only)."""
    from host.convert.importers import int8_blockers
    from host.convert.quantize import check_full_int8, make_converter, run_converter

    try:
        data = run_converter(make_converter(saved, variant, calib, signature), variant)
    except ConversionError as exc:
        cause = conversion_cause(exc)
        raise (ModelError(f"{variant}: {cause}") if cause else exc) from None
    if variant == "int8":
        blockers = int8_blockers(data)
        if blockers:
            named = ", ".join(f"{op} in layer {layer!r}" for op, layer in blockers[:4])
            raise ModelError(f"int8: {named} has no INT8 kernel (TFLITE_BUILTINS_INT8); replace that layer, "
                             "or bundle without int8 (--variants fp32,dynamic,fp16)")
        check_full_int8(data)
    return data


def run_quantize_model(opts: Options) -> dict:
    from host.convert.quantize import export_saved_model

    src = identify(opts.model)
    if src.format == "tflite":
        raise ModelError(f"{src.path} is already a .tflite: use `make bundle MODEL={opts.model}` "
                         "(python -m host bundle) to bundle it as it is")
    _bundle_dir(opts.name)
    labels = read_labels(opts.labels) if opts.labels else None
    if not opts.calib:                  # never random data silently
        raise DatasetError(NO_CALIBRATION)
    with tempfile.TemporaryDirectory(prefix="edgekit-byom-") as tmp:
        signature = None
        if src.format in ("keras", "h5"):
            model = load_keras(src)
            check_keras_inputs(model)
            if len(model.inputs) != 1:
                raise ModelError(f"{src.path} has {len(model.inputs)} inputs: quantize calibrates single-image-input "
                                 "models; convert it yourself and bundle the .tflite (make bundle)")
            saved = export_saved_model(model, Path(tmp) / "saved_model")
            for fix in src.fixups:
                print(f"legacy .h5: {fix}")
        else:
            saved = src.path
            signature = saved_model_signature(saved, opts.signature)
        fp32 = _convert(saved, "fp32", None, signature)
        io_fp32 = io_details(fp32)
        check_fixed_inputs(io_fp32, str(src.path))
        try:
            hwc = image_input(io_fp32, str(src.path))
        except ModelError as exc:
            raise ModelError(f"{exc} — quantize calibrates image models only; convert other models yourself "
                             "and bundle the .tflite (make bundle)") from None
        n_out = _n_outputs(io_fp32)
        check_labels(labels, n_out, opts.labels)
        pre, pre_name = make_preprocess(opts, hwc, None)
        ev = load_eval(opts.eval, pre, labels) if opts.eval else None
        if ev is not None:
            check_eval_labels(ev, n_out)
        calib_px = load_calibration(opts.calib, opts.calib_n, pre)
        calib = pixels_to_float(calib_px, pre)
        print(f"{src.format} model {src.path}: input {hwc[0]}x{hwc[1]}x{hwc[2]}, {n_out} outputs, "
              f"preprocess {pre_name}, {len(calib)} calibration images from {opts.calib}"
              + (f", {len(ev.y)} eval images" if ev else ""))
        variants = {}
        for v in opts.variants:
            variants[v] = fp32 if v == "fp32" else _convert(saved, v, calib if v == "int8" else None, signature)
        scored = evaluate(variants, ev, pre)
        extra = {"calibration": {"source": opts.calib, "count": int(len(calib))},
                 "model": _model_info(src, io_fp32)}
        if opts.calib == RANDOM or ev is None:
            extra["accuracy_checked"] = False
        if "int8" in scored and "fp32" in scored and ev is not None:
            debug = _int8_debug(saved, calib, signature, scored, opts)
            if debug:
                extra["int8_debug"] = debug
                if opts.int8_fallback > 0:
                    from host.convert.debug_int8 import convert_mixed

                    keep = [r["tensor"] for r in debug["worst_layers"][:opts.int8_fallback]]
                    debug["kept_float"] = [r["layer"] for r in debug["worst_layers"][:opts.int8_fallback]]
                    variants["mixed"] = convert_mixed(saved, calib, signature, keep)
                    scored.update(evaluate({"mixed": variants["mixed"]}, ev, pre))
        ios = {v: io_details(b) for v, b in variants.items()}
        extra["variant_info"] = {v: {"float_ops": _float_ops(b)} for v, b in variants.items()}
        manifest = write_bundle(opts.name, variants, scored, ios, ev, input_block(pre, pre_name),
                                labels or (ev.class_names if ev else None), src.origin(), extra)
    print_table(manifest)
    print(f"bundle -> {_bundle_dir(opts.name)}")
    return manifest


def _float_ops(model_bytes: bytes) -> list[str]:
    from host.convert.quantize import graph_summary

    return graph_summary(model_bytes)["float_ops"]


def _model_info(src: Source, io: dict) -> dict:
    return {"source_format": src.format, "inputs": [t["shape"] for t in io["inputs"]],
            "outputs": [t["shape"] for t in io["outputs"]]}


def _int8_debug(saved: Path, calib: np.ndarray, signature: str | None, scored: dict, opts: Options) -> dict | None:
    """Per-layer error when INT8 drops more than MAX_DROP_PP or agrees < 98 % with FP32; else None."""
    i8, f32 = scored["int8"], scored["fp32"]
    drop = 100 * (f32.top1 - i8.top1)
    agree = float(np.mean(i8.predictions == f32.predictions))
    reasons = []
    if drop > opts.max_drop_pp:
        reasons.append(f"top-1 drop {drop:.2f} pp > {opts.max_drop_pp} pp")
    if agree < AGREEMENT_MIN:
        reasons.append(f"agreement with fp32 {100 * agree:.2f} % < {100 * AGREEMENT_MIN:.0f} %")
    if not reasons and opts.int8_fallback <= 0:
        return None
    from host.convert.debug_int8 import worst_layers

    print("int8: " + ("; ".join(reasons) or "INT8_FALLBACK asked") + " -> running the quantization debugger")
    return {"reason": "; ".join(reasons) or "INT8_FALLBACK asked", "drop_pp": round(drop, 3),
            "agreement_with_fp32": round(agree, 4),
            "worst_layers": worst_layers(saved, calib, signature, max(5, opts.int8_fallback))}


# ---------------------------------------------------------------- make bundle MODEL=a.tflite,b.tflite

def run_bundle(opts: Options) -> dict:
    """Third-party .tflite files as they are, with their own shapes and quantisation."""
    paths = [p for p in (s.strip() for s in opts.model.split(",")) if p]
    if not paths:
        raise ModelError("MODEL= one or more .tflite files, comma-separated")
    _bundle_dir(opts.name)
    labels = read_labels(opts.labels) if opts.labels else None
    variants: dict[str, bytes] = {}
    ios: dict[str, dict] = {}
    files: dict[str, Source] = {}
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
        if v in variants:
            raise ModelError(f"{p} and {files[v].path} are both variant {v!r}; put the variant in one file "
                             f"name (e.g. model_{'fp32' if v != 'fp32' else 'int8'}.tflite)")
        variants[v], ios[v], files[v] = data, io, src
    first = next(iter(ios.values()))
    n_out = _n_outputs(first)
    check_labels(labels, n_out, opts.labels)
    pre = pre_name = ev = None
    input_info = None
    try:
        hwc = image_input(first, paths[0])
        image_error = None
    except ModelError as exc:
        hwc, image_error = None, exc
    if opts.eval and image_error is not None:
        raise image_error
    if hwc is not None:
        rules = {c for c in (_convention(io["inputs"][0]) for io in ios.values()) if c is not None}
        explicit = opts.preprocess or opts.pixel_scale or opts.pixel_offset
        if len(rules) > 1 and not explicit:
            raise DatasetError("the files' input quantisations imply different pixel rules; "
                               "say which with PREPROCESS= or PIXEL_SCALE=/PIXEL_OFFSET=")
        pre, pre_name = make_preprocess(opts, hwc, next(iter(rules)) if rules else None)
        input_info = input_block(pre, pre_name)
        if opts.eval:
            ev = load_eval(opts.eval, pre, labels)
            check_eval_labels(ev, n_out)
    scored = evaluate(variants, ev, pre)
    origin = {"format": "tflite", "files": {v: {"path": str(s.path.resolve()), "sha256": s.sha256}
                                            for v, s in files.items()}}
    origin["path"] = ", ".join(str(s.path) for s in files.values())
    extra = {"model": {"source_format": "tflite", "inputs": [t["shape"] for t in first["inputs"]],
                       "outputs": [t["shape"] for t in first["outputs"]]},
             "variant_info": {v: {"origin_file": s.path.name} for v, s in files.items()}}
    if ev is None:
        extra["accuracy_checked"] = False
    manifest = write_bundle(opts.name, variants, scored, ios, ev, input_info,
                            labels or (ev.class_names if ev else None), origin, extra)
    print_table(manifest)
    print(f"bundle -> {_bundle_dir(opts.name)}")
    return manifest


def reevaluate(out: Path, manifest: dict) -> dict:
    """`make evaluate` on a bring-your-own bundle: the files on disk, with the manifest's own rule."""
    from device.contract.inputs import preprocess_for

    if not manifest.get("eval"):
        print_table(manifest)
        return manifest
    data = np.load(out / manifest["eval"]["file"])
    for variant, v in manifest["variants"].items():
        model = (out / v["file"]).read_bytes()
        pre = preprocess_for({"name": "input", "shape": v["input"]["shape"], "dtype": v["input"]["dtype"],
                              "quantization": None}, manifest)
        top1 = float(np.mean(predict(model, data["x"], pre, f"evaluating {variant}").predictions == data["y"]))
        if v["host_top1"] is not None and abs(top1 - v["host_top1"]) > 1e-9:
            print(f"warning: {variant} top-1 {top1:.4f} differs from the manifest's {v['host_top1']:.4f}")
        v["host_top1"] = top1
    print_table(manifest)
    return manifest
