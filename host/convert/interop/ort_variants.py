"""ONNX Runtime's own variants of a model: FP32 as it is and INT8 the way ORT quantises.

ort_fp32 is the ONNX model taking the same NHWC input as the .tflite variants (a Transpose is put
in front of an NCHW image input), so the board feeds both runtimes the same tensor and the
manifest's input block holds for every variant. ort_int8 is onnxruntime.quantization's static
QDQ model (int8 activations and per-channel int8 weights, MinMax calibration) calibrated on the
same images as the .tflite INT8 variant; its input and output stay float, as ORT's QDQ models do.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from host.convert.source import ModelError

ORT_VARIANTS = ("ort_fp32", "ort_int8")


def _onnx():
    import onnx
    return onnx


def is_onnx(data: bytes) -> bool:
    """ONNX bytes (a ModelProto starts with its ir_version field), as opposed to a .tflite."""
    return data[:1] == b"\x08" and data[4:8] != b"TFL3"


def image_layout(model) -> str | None:
    """'NCHW' or 'NHWC' for a single 4-D image input (channels 1 or 3 on one side only), else None."""
    inputs = [i for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    if len(inputs) != 1:
        return None
    dims = [d.dim_value if d.HasField("dim_value") else None for d in inputs[0].type.tensor_type.shape.dim]
    if len(dims) != 4:
        return None
    if dims[1] in (1, 3) and dims[3] not in (1, 3):
        return "NCHW"
    if dims[3] in (1, 3):
        return "NHWC"
    return None


def nhwc_front(model):
    """The model with an NCHW image input taking NHWC instead (a Transpose in front), else as it is."""
    onnx = _onnx()
    from onnx import helper

    if image_layout(model) != "NCHW":
        return model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    graph = model.graph
    inp = next(i for i in graph.input if i.name not in {t.name for t in graph.initializer})
    inner = inp.name + "_nchw"
    for node in graph.node:
        node.input[:] = [inner if name == inp.name else name for name in node.input]
    graph.node.insert(0, helper.make_node("Transpose", [inp.name], [inner], perm=[0, 3, 1, 2],
                                          name="edgekit_nhwc_to_nchw"))
    dims = inp.type.tensor_type.shape.dim
    n, c, h, w = [(d.dim_value if d.HasField("dim_value") else None, d.dim_param) for d in dims]
    for dim, (value, param) in zip(dims, (n, h, w, c)):
        dim.Clear()
        if value is None:
            dim.dim_param = param
        else:
            dim.dim_value = value
    return model


class _Reader:
    """onnxruntime.quantization's CalibrationDataReader over (N,H,W,C) float images, one per call."""

    def __init__(self, name: str, images: np.ndarray):
        self.name, self.images, self.i = name, images.astype(np.float32), 0

    def get_next(self):
        if self.i >= len(self.images):
            return None
        self.i += 1
        return {self.name: self.images[self.i - 1:self.i]}

    def rewind(self):
        self.i = 0


def quantize_int8_qdq(fp32: bytes, calib: np.ndarray) -> bytes:
    """Static QDQ INT8 of an ONNX model (NHWC float input) calibrated on `calib` images."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    onnx = _onnx()
    try:
        model = onnx.ModelProto.FromString(fp32)
        name = next(i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer})
    except Exception as exc:
        raise ModelError(f"ONNX Runtime cannot quantise this model to INT8: not a readable ONNX model "
                         f"({type(exc).__name__})") from None
    with tempfile.TemporaryDirectory(prefix="edgekit-ortq-") as tmp:
        src, pre, out = Path(tmp, "fp32.onnx"), Path(tmp, "pre.onnx"), Path(tmp, "int8.onnx")
        src.write_bytes(fp32)
        try:
            quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
        except Exception:  # shape inference is an optimisation: quantise the model as it is
            pre = src
        try:
            quantize_static(str(pre), str(out), _Reader(name, calib), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                            calibrate_method=CalibrationMethod.MinMax,
                            extra_options={"ActivationSymmetric": False, "WeightSymmetric": True})
        except Exception as exc:
            raise ModelError(f"ONNX Runtime cannot quantise this model to INT8: {str(exc).splitlines()[0]}") from None
        return out.read_bytes()


def ort_variants(onnx_bytes: bytes, calib: np.ndarray, logits: bool = False) -> dict[str, bytes]:
    """{"ort_fp32": NHWC-input FP32, "ort_int8": static QDQ INT8} from an ONNX model's bytes;
    with `logits`, both end before the model's final Softmax (taken out before quantising, so
    the INT8 model's last Q/DQ pair sits on the logits)."""
    onnx = _onnx()
    fp32 = nhwc_front(onnx.ModelProto.FromString(onnx_bytes)).SerializeToString()
    if logits:
        from host.convert.logits import strip_onnx_softmax

        fp32, note = strip_onnx_softmax(fp32)
        if note["where"] != "host":
            raise ModelError(f"the .tflite variants end at their logits but ONNX Runtime's cannot ({note['why']}): "
                             "keep the softmax in every graph with --softmax graph (SOFTMAX=graph)")
    return {"ort_fp32": fp32, "ort_int8": quantize_int8_qdq(fp32, calib)}


def interpreter(model: bytes, threads: int = 1):
    """The agent's own ORT interpreter (TFLite Interpreter methods) over ONNX bytes."""
    from device.runtimes import registry

    module = registry.load_module(registry.resolve("onnxruntime"))
    with tempfile.NamedTemporaryFile(suffix=".onnx") as f:
        f.write(model)
        f.flush()
        return registry.make_interpreter(module, f.name, threads, False)


def run(model: bytes, feeds: np.ndarray, threads: int = 1) -> np.ndarray:
    """The model's first output for a batch of inputs."""
    interp = interpreter(model, threads)
    interp.set_tensor(0, np.ascontiguousarray(feeds, dtype=np.float32))
    interp.invoke()
    return interp.get_tensor(len(interp.get_input_details()))


def io_details(model: bytes) -> dict:
    """host/convert/quantize.io_details' fields for an ONNX model (float I/O: scale 0, zero point 0)."""
    interp = interpreter(model)

    def spec(d: dict) -> dict:
        return {"name": d["name"], "shape": [int(s) for s in d["shape"]],
                "shape_signature": [int(s) for s in d["shape_signature"]],
                "dtype": np.dtype(d["dtype"]).name, "scale": 0.0, "zero_point": 0}

    weights = sorted({numpy_dtype(t) for t in _onnx().ModelProto.FromString(model).graph.initializer})
    return {"inputs": [spec(d) for d in interp.get_input_details()],
            "outputs": [spec(d) for d in interp.get_output_details()], "weight_dtypes": weights}


def numpy_dtype(tensor) -> str:
    from onnx import helper
    return np.dtype(helper.tensor_dtype_to_np_dtype(tensor.data_type)).name
