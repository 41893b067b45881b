"""A user's model: what the user asked for (`Options`, the make variables / CLI flags), the pixel rule
it is evaluated and calibrated with, and what the manifest records of that rule.

The rule comes from PREPROCESS= (a preset) or PIXEL_SCALE=/PIXEL_OFFSET=, else from a quantised
.tflite input's own quantisation (as the agent does), else `unit` ([0, 1]); COLOR_ORDER= and
RESIZE= say how images are fitted to the model's input (device/contract/inputs.py applies them).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from device.contract.inputs import COLOR_ORDERS, PRESETS, RESIZE_MODES, Preprocess
from host.config import DEFAULTS
from host.data.builtin import DatasetError


@dataclass
class Options:
    """What the user asked for (the make variables / CLI flags)."""
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
    task: str | None = None                # TASK=: classify | detect | segment | keypoints | raw (default: recognised)
    softmax: str = "host"                  # SOFTMAX=: a classifier's final softmax on the host or in the graph
    input: str | None = None               # INPUT=1x3x224x224: an ONNX model's input shape (dynamic dims)
    weights: str | None = None             # WEIGHTS=sd.pt: the state_dict for MODEL=net.py:build_fn
    notes: list[str] = field(default_factory=list)


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


def convention(spec: dict) -> tuple[float, float] | None:
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
