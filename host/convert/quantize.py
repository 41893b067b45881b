"""Keras model -> TensorFlow Lite variants: fp32, dynamic-range, fp16 and full INT8.

The path is Keras 3 `model.export(format="tf_saved_model")` then `TFLiteConverter.from_saved_model`
(quiet, and the only one here that yields a fully integer graph; concrete-function conversion
leaves variable ops behind). A full-INT8 conversion that leaves any float tensor is an error.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from deploy.settings import bars_off
from host.config import DEFAULTS


class ConversionError(Exception):
    """Conversion failed or produced something other than what was asked for (one line)."""


VARIANT_HELP = {
    "fp32": "float32 weights and activations",
    "dynamic": "INT8 weights, float activations (dynamic-range)",
    "fp16": "float16 weights, float compute",
    "int8": "full integer: INT8 weights and activations, int8 input/output",
}


def export_saved_model(model, directory: Path) -> Path:
    model.export(str(directory), format="tf_saved_model", verbose=False)
    return directory


def _representative(images: np.ndarray) -> Iterable[list[np.ndarray]]:
    """Calibration samples one by one, with a progress bar (calibration is the slow part)."""
    from tqdm import tqdm

    for img in tqdm(images, desc="calibrating int8", unit="img", disable=bars_off(), leave=False):
        yield [img[None].astype(np.float32)]


def make_converter(saved_model: Path, variant: str, calibration: np.ndarray | None = None,
                   signature: str | None = None):
    """A TFLiteConverter set up for one variant (also what the INT8 debugger starts from)."""
    import tensorflow as tf

    keys = [signature] if signature else None
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=keys)
    if variant == "fp32":
        pass
    elif variant == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
    elif variant == "fp16":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.target_spec.supported_types = [tf.float16]
    elif variant == "int8":
        if calibration is None or len(calibration) == 0:
            raise ConversionError("int8 conversion needs a representative dataset (calibration images)")
        conv.optimizations = [tf.lite.Optimize.DEFAULT]
        conv.representative_dataset = lambda: _representative(calibration)
        conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        conv.inference_input_type = tf.int8
        conv.inference_output_type = tf.int8
    else:
        raise ConversionError(f"unknown variant '{variant}'; choose from {', '.join(VARIANT_HELP)}")
    return conv


def run_converter(conv, variant: str) -> bytes:
    try:
        return conv.convert()
    except Exception as exc:  # the converter raises ConverterError, RuntimeError, ValueError...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConversionError(f"{variant} conversion failed: {first}") from exc


def convert(saved_model: Path, variant: str, calibration: np.ndarray | None = None,
            signature: str | None = None) -> bytes:
    """One variant's .tflite bytes; `calibration` is float input images for INT8 (training split)."""
    data = run_converter(make_converter(saved_model, variant, calibration, signature), variant)
    if variant == "int8":
        check_full_int8(data)
    return data


def graph_summary(model_bytes: bytes) -> dict:
    """Ops, tensor dtypes and input/output specs read back through a TFLite interpreter."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=model_bytes)
    interp.allocate_tensors()
    tensors = {t["index"]: t for t in interp.get_tensor_details()}
    ops = interp._get_ops_details()  # noqa: SLF001 - the only API that lists ops and their tensors

    def spec(d: dict) -> dict:
        scale, zp = d["quantization"]
        return {"name": d["name"], "shape": [int(s) for s in d["shape"]], "dtype": np.dtype(d["dtype"]).name,
                "scale": float(scale), "zero_point": int(zp)}

    floating = [op for op in ops if any(i >= 0 and np.dtype(tensors[i]["dtype"]).kind == "f"
                                        for i in list(op["inputs"]) + list(op["outputs"]) if i in tensors)]
    float_ops = sorted({op["op_name"] for op in floating})
    # where each float op sits: its output tensor's name carries the layer's name
    float_at = [(op["op_name"], tensors[op["outputs"][0]]["name"]) for op in floating
                if len(op["outputs"]) and op["outputs"][0] in tensors]
    return {"ops": [op["op_name"] for op in ops], "float_ops": float_ops, "float_op_tensors": float_at,
            "inputs": [spec(d) for d in interp.get_input_details()],
            "outputs": [spec(d) for d in interp.get_output_details()]}


def check_full_int8(model_bytes: bytes) -> None:
    """Fail loudly unless every op is integer and the input/output are int8."""
    g = graph_summary(model_bytes)
    if g["float_ops"]:
        where = "; ".join(f"{op} at {t}" for op, t in g["float_op_tensors"][:5])
        raise ConversionError(f"int8 model still has float ops: {', '.join(g['float_ops'])} ({where})")
    bad = [f"{t['name']}:{t['dtype']}" for t in g["inputs"] + g["outputs"] if t["dtype"] != "int8"]
    if bad:
        raise ConversionError(f"int8 model input/output are not int8: {', '.join(bad)}")


def convert_all(model, calibration: np.ndarray, variants: Iterable[str] = DEFAULTS.variants) -> dict[str, bytes]:
    """Export once, convert every requested variant."""
    from tqdm import tqdm

    out: dict[str, bytes] = {}
    with tempfile.TemporaryDirectory(prefix="edgekit-savedmodel-") as tmp:
        saved = export_saved_model(model, Path(tmp) / "saved_model")
        for variant in tqdm(list(variants), desc="converting", unit="variant", disable=bars_off()):
            out[variant] = convert(saved, variant, calibration if variant == "int8" else None)
    return out
