"""Host-side evaluation of every variant, with exactly the preprocessing and output reading the board applies.

One predictor for every model source. The pixel rule (device/contract/inputs.py) is the one in
docs/contracts.md and device/: if the two ever differ, on-device accuracy stops matching the host's,
which the end-to-end tests check.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deploy.settings import bars_off
from device.contract.inputs import Preprocess, pixels_to_input
from host.data.builtin import PIXEL_OFFSET, PIXEL_SCALE


@dataclass
class Scored:
    predictions: np.ndarray | None   # top-1 class per image; None without an eval set
    top1: float | None
    host_us: float                   # host latency per invoke (one thread)


def builtin_rule(hwc: tuple[int, int, int]) -> Preprocess:
    """The built-in datasets' pixel rule (float input = pixel * PIXEL_SCALE + PIXEL_OFFSET)."""
    h, w, c = hwc
    return Preprocess(h, w, c, PIXEL_SCALE, PIXEL_OFFSET, "manifest")


def predict(model_bytes: bytes, x: np.ndarray | None, pre: Preprocess | None, desc: str = "evaluating") -> Scored:
    """Top-1 per image, one image per invoke with the board's preprocessing and output reading; host
    latency per invoke. Without images (`x` None): only a latency figure, on random inputs."""
    from ai_edge_litert.interpreter import Interpreter
    from tqdm import tqdm

    from device.contract.inputs import random_input
    from device.runtimes.graph import tensor_spec
    from device.serving.predictor import output_scores

    from host.convert.interop import ort_variants
    if ort_variants.is_onnx(model_bytes):      # ONNX Runtime's variants, through the agent's own adapter
        interp = ort_variants.interpreter(model_bytes)
    else:
        interp = Interpreter(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    ins = [tensor_spec(d) for d in interp.get_input_details()]
    out = tensor_spec(interp.get_output_details()[0])
    if x is None:
        rng = np.random.default_rng(0)
        for s in ins:
            interp.set_tensor(s["index"], random_input(s, rng))
        t0 = time.perf_counter_ns()
        for _ in range(20):
            interp.invoke()
        return Scored(None, None, (time.perf_counter_ns() - t0) / 20e3)
    preds = np.empty(len(x), dtype=np.int64)
    spent = 0
    for i in tqdm(range(len(x)), desc=desc, unit="img", disable=bars_off(), leave=False):
        interp.set_tensor(ins[0]["index"], pixels_to_input(x[i:i + 1], ins[0], pre))
        t0 = time.perf_counter_ns()
        interp.invoke()
        spent += time.perf_counter_ns() - t0
        preds[i] = int(np.argsort(-output_scores(interp, out)[0], kind="stable")[0])
    return Scored(preds, None, spent / len(x) / 1e3)


def evaluate(variants: dict[str, bytes], x: np.ndarray | None, y: np.ndarray | None,
             pre: Preprocess | None) -> dict[str, Scored]:
    """Every variant on the same images (top-1 against `y`), or latency only when `x` is None."""
    out = {}
    for name, data in variants.items():
        s = predict(data, x, pre, f"evaluating {name}")
        if x is not None:
            s.top1 = float(np.mean(s.predictions == y))
        out[name] = s
    return out


def evaluate_variants(variants: dict[str, bytes], x_uint8: np.ndarray, y: np.ndarray) -> dict[str, Scored]:
    """A model trained on a built-in dataset: its variants on (N,H,W,C) pixels with the built-in rule."""
    return evaluate(variants, x_uint8, y, builtin_rule(tuple(x_uint8.shape[1:4])))


def reevaluate(folder: Path, manifest: dict) -> dict:
    """The bundle's files as they are on disk, with the manifest's own pixel rule; warns where a top-1
    differs from the manifest's and records the new one (in the returned manifest, not on disk)."""
    from device.contract.inputs import preprocess_for

    if not manifest.get("eval"):
        return manifest
    data = np.load(folder / manifest["eval"]["file"])
    for variant, v in manifest["variants"].items():
        model = (folder / v["file"]).read_bytes()
        pre = preprocess_for({"name": "input", "shape": v["input"]["shape"], "dtype": v["input"]["dtype"],
                              "quantization": None}, manifest)
        top1 = float(np.mean(predict(model, data["x"], pre, f"evaluating {variant}").predictions == data["y"]))
        if v["host_top1"] is not None and abs(top1 - v["host_top1"]) > 1e-9:
            print(f"warning: {variant} top-1 {top1:.4f} differs from the manifest's {v['host_top1']:.4f}")
        v["host_top1"] = top1
    return manifest
