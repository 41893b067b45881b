"""When full INT8 loses accuracy: which layers cause it, and a `mixed` model that keeps them in float.

TensorFlow's QuantizationDebugger runs the float and the quantised graph side by side on a few
calibration images and gives each quantised tensor's error; ranked by RMSE over the tensor's own
quantisation step (the measure TensorFlow's guide uses), the top ones are the layers to blame.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from host.convert.quantize import layer_of

DEBUG_SAMPLES = 32


def _dataset(calibration: np.ndarray):
    def gen():
        for img in calibration[:DEBUG_SAMPLES]:
            yield [img[None].astype(np.float32)]
    return gen


def worst_layers(saved_model: Path, calibration: np.ndarray, signature: str | None, top: int = 5) -> list[dict]:
    """The `top` quantised tensors with the largest RMSE/scale, each {layer, op, rmse_over_scale, ...}."""
    import tensorflow as tf

    from host.convert.quantize import make_converter

    conv = make_converter(saved_model, "int8", calibration, signature)
    debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=_dataset(calibration))
    debugger.run()
    buf = io.StringIO()
    debugger.layer_statistics_dump(buf)
    rows = []
    for r in csv.DictReader(io.StringIO(buf.getvalue())):
        try:
            scale = float(r["scale"])
            rmse = float(np.sqrt(float(r["mean_squared_error"])))
        except (KeyError, ValueError):
            continue
        if scale <= 0 or not np.isfinite(rmse):
            continue
        rows.append({"tensor": r["tensor_name"], "layer": layer_of(r["tensor_name"]), "op": r.get("op_name", ""),
                     "rmse_over_scale": round(rmse / scale, 4), "rmse": rmse,
                     "max_abs_error": float(r.get("max_abs_error") or "nan"), "scale": scale})
    rows.sort(key=lambda r: -r["rmse_over_scale"])
    return rows[:top]


def convert_mixed(saved_model: Path, calibration: np.ndarray, signature: str | None, layers: list[str],
                  float_output: bool = False, what: str = "mixed conversion") -> bytes:
    """Full INT8 except `layers`, which stay float; the output stays INT8 unless `float_output`."""
    import tensorflow as tf

    from host.convert.quantize import ConversionError, make_converter

    conv = make_converter(saved_model, "int8", calibration, signature)
    if float_output:
        conv.inference_output_type = tf.float32
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
    options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=list(layers))
    debugger = tf.lite.experimental.QuantizationDebugger(converter=conv, debug_dataset=_dataset(calibration),
                                                         debug_options=options)
    try:
        return debugger.get_nondebug_quantized_model()
    except Exception as exc:
        raise ConversionError(f"{what} failed: {str(exc).strip().splitlines()[0][:300]}") from None


def convert_head_float(saved_model: Path, calibration: np.ndarray, signature: str | None, fp32: bytes,
                       ops: int) -> bytes:
    """Full INT8 up to the graph's last `ops` operators (in execution order), which stay float, and
    a float output. A raw detector head decodes its boxes (pixels, DFL) and squashes its scores
    (0-1) in those last operators and hands both out in one tensor: one INT8 scale cannot hold
    both, and the worst-layer ranking above does not point there (measured on a YOLOv8n from
    Ultralytics: full INT8 mAP 0, the 5 worst layers in float still 0, the last 30 operators in
    float 0.893 against FP32's 0.898)."""
    from device.profiling import flatmodel

    graph = flatmodel.schema().Model.GetRootAs(fp32, 0).Subgraphs(0)
    outputs = [graph.Tensors(graph.Operators(j).Outputs(0)).Name().decode() for j in range(graph.OperatorsLength())]
    return convert_mixed(saved_model, calibration, signature, outputs[len(outputs) - ops:], float_output=True,
                         what="int8 with a float head")
