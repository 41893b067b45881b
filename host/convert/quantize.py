"""SavedModel -> TensorFlow Lite variants (fp32, dynamic-range, fp16, full INT8), and the .tflite read back.

The path is Keras 3 `model.export(format="tf_saved_model")` then `TFLiteConverter.from_saved_model`
(quiet, and the only one here that yields a fully integer graph; concrete-function conversion
leaves variable ops behind). A full-INT8 conversion that leaves any float tensor is an error, named
with its layer where the graph says; what a board cannot run is refused with one line.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Iterable

import numpy as np

from deploy.settings import bars_off
from host.config import DEFAULTS
from host.convert.source import ModelError, first_line


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


def _representative(calibration) -> Iterable:
    """Calibration samples one by one, with a progress bar (calibration is the slow part): float
    images for an image model, or per-sample {signature input: array} dicts (tensor_samples)."""
    from tqdm import tqdm

    for sample in tqdm(calibration, desc="calibrating int8", unit="sample", disable=bars_off(), leave=False):
        yield sample if isinstance(sample, dict) else [sample[None].astype(np.float32)]


def signature_inputs(fp32: bytes, signature: str | None) -> list[str]:
    """The signature's input names in the .tflite's input order (the converter sorts them by name,
    which is not always the Keras model's order): what x0, x1, ... of an npz stand for."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=fp32)
    sig = signature or next(iter(interp.get_signature_list()))
    by_index = {d["index"]: name for name, d in interp.get_signature_runner(sig).get_input_details().items()}
    return [by_index[d["index"]] for d in interp.get_input_details()]


def tensor_samples(names: list[str], arrays: list[np.ndarray]) -> list[dict]:
    """Calibration arrays in the .tflite's input order -> one {signature input: (1, ...)} dict per
    sample: the converter matches a several-input model's samples by signature name."""
    return [{name: a[i:i + 1] for name, a in zip(names, arrays)} for i in range(len(arrays[0]))]


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
            raise ConversionError("int8 conversion needs a representative dataset (calibration data)")
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
    """One variant's .tflite bytes; `calibration` is float input images for INT8 (training split).

    A converter failure whose message names the ops (and layers) behind it, or an INT8 graph with a
    compute op left in float, is a ModelError saying which layer to replace.
    """
    try:
        data = run_converter(make_converter(saved_model, variant, calibration, signature), variant)
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


# ---------------------------------------------------------------- a .tflite read back

def io_details(model_bytes: bytes) -> dict:
    """Inputs/outputs of a .tflite (with shape signatures), refusing what a board cannot run."""
    from ai_edge_litert.interpreter import Interpreter

    try:
        interp = Interpreter(model_content=model_bytes)
        interp.allocate_tensors()
    except Exception as exc:
        text = str(exc)
        flex = sorted(set(re.findall(r"\bFlex\w+", text)))
        if flex or "Select TensorFlow op" in text:
            raise ModelError(f"the model needs TensorFlow ops ({', '.join(flex) or 'Flex'}) that no board runtime "
                             "has; rebuild it without them (TFLITE_BUILTINS only)") from None
        raise ModelError(f"not a usable .tflite model ({first_line(exc)})") from None

    def spec(d: dict) -> dict:
        scale, zp = d["quantization"]
        return {"name": d["name"], "shape": [int(s) for s in d["shape"]],
                "shape_signature": [int(s) for s in d.get("shape_signature", d["shape"])],
                "dtype": np.dtype(d["dtype"]).name, "scale": float(scale), "zero_point": int(zp)}

    tensors = interp.get_tensor_details()
    return {"inputs": [spec(d) for d in interp.get_input_details()],
            "outputs": [spec(d) for d in interp.get_output_details()],
            "weight_dtypes": sorted({np.dtype(t["dtype"]).name for t in tensors})}


def check_fixed_inputs(io: dict, what: str) -> None:
    for t in io["inputs"]:
        if any(d == -1 for d in t["shape_signature"][1:]):
            raise ModelError(f"{what}: input {t['name']!r} has a dynamic size {t['shape_signature']} "
                             "(only the batch may vary); export it with a fixed input size")


def image_input(io: dict, what: str) -> tuple[int, int, int]:
    """(H, W, C) of a single NHWC image input, or a ModelError saying why it is not an image model."""
    if len(io["inputs"]) != 1:
        names = ", ".join(t["name"] for t in io["inputs"])
        raise ModelError(f"{what} has {len(io['inputs'])} inputs ({names}): image evaluation needs one image "
                         "input; bundle it without EVAL= and bench with --input NAME=FILE.npy")
    shape = io["inputs"][0]["shape"]
    if len(shape) == 4 and shape[3] in (1, 3):
        return shape[1], shape[2], shape[3]
    if len(shape) == 3:
        return shape[1], shape[2], 1
    raise ModelError(f"{what}: input shape {shape} is not an image (N,H,W,1|3); drop EVAL= "
                     "(bench still measures it)")


def variant_name(path: Path, io: dict) -> str:
    """From the file name when it says (int8, uint8, fp32/float32/float, fp16, dynamic), else the tensors."""
    stem = path.stem.lower()
    for name, words in (("uint8", ("uint8",)), ("int8", ("int8", "quant")), ("fp16", ("fp16", "float16")),
                        ("dynamic", ("dynamic", "drq")), ("mixed", ("mixed",)),
                        ("fp32", ("fp32", "float32", "float"))):
        if any(re.search(rf"(^|[^a-z0-9]){w}($|[^a-z0-9])", stem) for w in words):
            return name
    dtype = io["inputs"][0]["dtype"] if io["inputs"] else "float32"
    if dtype in ("int8", "uint8"):
        return dtype
    if "float16" in io["weight_dtypes"]:
        return "fp16"
    if "int8" in io["weight_dtypes"]:
        return "dynamic"
    return "fp32"


def conversion_cause(exc: BaseException) -> str | None:
    """Name the ops (and their layers) behind a converter failure, when the message says."""
    text = str(exc.__cause__ or exc)
    flex = sorted(set(re.findall(r"\bFlex(\w+)", text)))
    tf_ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", text)))
    # locations read like fused["Igamma:", "functional_1/igamma_layer/Igamma@__inference..."]
    layers = sorted(set(re.findall(r'"[^"/@]+/([^"/@]+)/[^"]*@', text)))[:3]
    if flex or tf_ops:
        return (f"the model needs TensorFlow ops outside TFLite's builtins ({', '.join(flex or tf_ops)}"
                f"{', in ' + ', '.join(layers) if layers else ''}); replace those layers (SELECT_TF_OPS "
                "models do not run on the board runtimes)")
    quant = sorted(set(re.findall(r"'tfl\.(\w+)' op.*?(?:quantiz|int8)", text, re.I)))
    if quant:
        return (f"op {', '.join(quant)}{' in ' + ', '.join(layers) if layers else ''} has no INT8 kernel "
                "(TFLITE_BUILTINS_INT8); replace the layer, or use INT8_FALLBACK / the dynamic variant")
    return None


def layer_of(tensor: str) -> str:
    """'model/conv2d_1/Relu6;model/conv2d_1/BiasAdd' -> 'conv2d_1' (the Keras layer behind a tensor)."""
    parts = tensor.split(";")[0].split("/")
    return parts[1] if len(parts) > 2 else parts[0]


def int8_blockers(model_bytes: bytes) -> list[tuple[str, str]]:
    """(op, layer) for every compute op an INT8 conversion left in float (boundary casts excluded)."""
    skip = {"QUANTIZE", "DEQUANTIZE", "DELEGATE"}
    seen: dict[tuple[str, str], None] = {}
    for op, tensor in graph_summary(model_bytes)["float_op_tensors"]:
        if op not in skip:
            seen[(op, layer_of(tensor))] = None
    return list(seen)
