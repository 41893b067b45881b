"""Is the converted model the ONNX model? FP32 .tflite against ONNX Runtime's FP32, checked not assumed.

A converter that mistranslates a layout or an op still writes a model that runs; only comparing
outputs on real inputs shows it. The calibration images are the inputs (the user's own data, at
hand for every conversion). A classifier's conversion is refused below AGREEMENT_MIN top-1
agreement; any other task's (a detector's head of coordinates and scores has no top-1) when the
largest difference passes RANGE_SHARE_MAX of the output's range. The figures go into the manifest
either way.
"""
from __future__ import annotations

import numpy as np

from host.convert.interop.ort_variants import ort_variants, run
from host.convert.source import ModelError

RANGE_SHARE_MAX = 0.01     # a task model's outputs: the largest difference, as a share of their range
AGREEMENT_MIN = 0.99


def _tflite_outputs(model: bytes, images: np.ndarray) -> np.ndarray:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model, num_threads=1)
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    rows = []
    for i in range(len(images)):
        interp.set_tensor(inp["index"], images[i:i + 1].astype(np.float32))
        interp.invoke()
        rows.append(interp.get_tensor(out["index"]).reshape(-1).astype(np.float64))
    return np.stack(rows)


def fidelity(tflite_fp32: bytes, ort_fp32: bytes, images: np.ndarray) -> dict:
    """max abs difference and top-1 agreement of the two FP32 models' (first) outputs on `images`."""
    ref = np.stack([run(ort_fp32, images[i:i + 1]).reshape(-1) for i in range(len(images))]).astype(np.float64)
    got = _tflite_outputs(tflite_fp32, images)
    if got.shape != ref.shape:
        raise ModelError(f"the converted .tflite gives outputs of {got.shape[1]} values, ONNX Runtime {ref.shape[1]}: "
                         "the conversion changed the model's output")
    diff = float(np.abs(got - ref).max())
    return {"compared_with": "onnxruntime fp32", "images": int(len(images)), "max_abs_diff": diff,
            "range_share": diff / max(float(ref.max() - ref.min()), 1e-12),
            "top1_agreement": float(np.mean(got.argmax(axis=1) == ref.argmax(axis=1)))}


def add_ort_variants(files: dict[str, bytes], onnx_bytes: bytes, calib: np.ndarray, task: str,
                     logits: bool = False) -> dict:
    """Check the FP32 conversion against ONNX Runtime (refusing an unfaithful one), then add ONNX
    Runtime's own variants (ort_fp32, ort_int8) to `files` for a classifier. Returns the figures.
    `logits`: the .tflite variants had their final softmax taken out, so ORT's lose theirs too
    (compared, and later read by the agent, as the same logits)."""
    ort = ort_variants(onnx_bytes, calib, logits)
    fid = fidelity(files["fp32"], ort["ort_fp32"], calib)
    if task != "classify":    # a top-1 of a detector's flattened head would pick its largest coordinate
        fid.pop("top1_agreement")
        if fid["range_share"] > RANGE_SHARE_MAX:
            raise ModelError(f"the converted FP32 .tflite differs from ONNX Runtime's FP32 by up to "
                             f"{fid['max_abs_diff']:.4g} ({100 * fid['range_share']:.2f} % of the output's range, "
                             f"> {100 * RANGE_SHARE_MAX:g} %) on {fid['images']} calibration images: the conversion "
                             "is not faithful; nothing was written")
        print(f"fidelity: fp32 .tflite vs ONNX Runtime fp32 on {fid['images']} calibration images: max abs "
              f"difference {fid['max_abs_diff']:.3g} ({100 * fid['range_share']:.4f} % of the output's range)")
        fid["note"] = f"no ONNX Runtime variants for a {task} model (the board scores those on LiteRT)"
        return fid
    if fid["top1_agreement"] < AGREEMENT_MIN:
        raise ModelError(f"the converted FP32 .tflite agrees with ONNX Runtime's FP32 on "
                         f"{100 * fid['top1_agreement']:.2f} % of {fid['images']} calibration images "
                         f"(< {100 * AGREEMENT_MIN:.0f} %), max abs difference {fid['max_abs_diff']:.4g}: "
                         "the conversion is not faithful; nothing was written")
    print(f"fidelity: fp32 .tflite vs ONNX Runtime fp32 on {fid['images']} calibration images: top-1 agreement "
          f"{100 * fid['top1_agreement']:.2f} %, max abs difference {fid['max_abs_diff']:.3g}")
    files.update(ort)
    return fid
