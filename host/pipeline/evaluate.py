"""Host-side evaluation of every variant, with exactly the preprocessing the board applies.

The quantisation rule here is the one in docs/contracts.md and device/: if the two ever differ,
on-device accuracy stops matching the host's, which the end-to-end tests check.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from deploy.settings import bars_off
from device.contract.inputs import Preprocess
from host.data.builtin import PIXEL_OFFSET, PIXEL_SCALE
from host.data.user import EvalSet


def quantise_input(x_uint8: np.ndarray, dtype: str, scale: float, zero_point: int) -> np.ndarray:
    """The built-in model's pixels -> its input tensor, by the board's own rule (device/contract/inputs.py)."""
    from device.contract.inputs import Preprocess, pixels_to_input

    pre = Preprocess(1, 1, 1, PIXEL_SCALE, PIXEL_OFFSET, "manifest")   # one scalar rule for every pixel
    spec = {"name": "input", "dtype": dtype, "quantization": {"scale": scale, "zero_point": zero_point}}
    return pixels_to_input(x_uint8.reshape(-1, 1, 1, 1), spec, pre).reshape(x_uint8.shape)


@dataclass
class VariantEval:
    predictions: np.ndarray
    top1: float


def predict_tflite(model_bytes: bytes, x_uint8: np.ndarray, desc: str = "evaluating") -> np.ndarray:
    """Top-1 class per image, one image per invoke (as on the board)."""
    from ai_edge_litert.interpreter import Interpreter
    from tqdm import tqdm

    interp = Interpreter(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    scale, zp = inp["quantization"]
    x = quantise_input(x_uint8, np.dtype(inp["dtype"]).name, scale, zp)
    preds = np.empty(len(x), dtype=np.int64)
    for i in tqdm(range(len(x)), desc=desc, unit="img", disable=bars_off(), leave=False):
        interp.set_tensor(inp["index"], x[i:i + 1])
        interp.invoke()
        preds[i] = int(np.argmax(interp.get_tensor(out["index"])[0]))
    return preds


def evaluate_variants(variants: dict[str, bytes], x_uint8: np.ndarray, y: np.ndarray) -> dict[str, VariantEval]:
    return {name: _eval(predict_tflite(data, x_uint8, f"evaluating {name}"), y) for name, data in variants.items()}


def _eval(preds: np.ndarray, y: np.ndarray) -> VariantEval:
    return VariantEval(preds, float(np.mean(preds == y)))


def summary_table(rows: list[dict]) -> str:
    """variant | size KB | weights KB / arena KB (static memory plan) | x FP32 | top-1 | delta vs FP32 (pp)
    | agreement with FP32."""
    head = (f"{'variant':<8} {'size KB':>9} {'weights KB':>10} {'arena KB':>9} {'x fp32':>7} {'top-1 %':>8} "
            f"{'Δ pp':>7} {'agree %':>8}")
    lines = [head, "-" * len(head)]
    for r in rows:
        plan = r.get("plan") or {}
        kb = (lambda b: f"{b / 1024:.1f}" if b is not None else "-")
        lines.append(f"{r['variant']:<8} {r['size_bytes'] / 1024:>9.1f} {kb(plan.get('weights_bytes')):>10} "
                     f"{kb(plan.get('arena_bytes')):>9} {r['size_ratio']:>7.3f} "
                     f"{100 * r['top1']:>8.2f} {r['delta_pp']:>+7.2f} {100 * r['agreement']:>8.2f}")
    return "\n".join(lines)


# ---------------------------------------------------------------- any model, with its own preprocessing

@dataclass
class Scored:
    predictions: np.ndarray | None
    top1: float | None
    host_us: float


def predict(model_bytes: bytes, x: np.ndarray | None, pre: Preprocess | None, desc: str) -> Scored:
    """Top-1 per image with the board's own preprocessing and output reading; host latency per invoke."""
    from ai_edge_litert.interpreter import Interpreter
    from tqdm import tqdm

    from device.contract.inputs import pixels_to_input, random_input
    from device.runtimes.graph import tensor_spec
    from device.serving.predictor import output_scores

    interp = Interpreter(model_content=model_bytes, num_threads=1)
    interp.allocate_tensors()
    ins = [tensor_spec(d) for d in interp.get_input_details()]
    out = tensor_spec(interp.get_output_details()[0])
    if x is None:   # no eval set: only a host latency figure, on random inputs
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


def evaluate_model(variants: dict[str, bytes], ev: EvalSet | None, pre: Preprocess | None) -> dict[str, Scored]:
    out = {}
    for name, data in variants.items():
        s = predict(data, None if ev is None else ev.x, pre, f"evaluating {name}")
        if ev is not None:
            s.top1 = float(np.mean(s.predictions == ev.y))
        out[name] = s
    return out
