"""A user's model in: Keras 3 `.keras`, Keras 2 / legacy `.h5`, a SavedModel directory, or `.tflite` files.

Everything that is not `.tflite` becomes a SavedModel (Keras files through `model.export`), because
that is the converter path that gives fully integer graphs (host/convert/quantize.py). What cannot work on
the board is refused here with one line naming the cause and the way out.
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from device.contract.fileio import sha256_file

# Keras 2 wrote config keys that Keras 3 layers no longer accept; dropping them changes nothing
# (e.g. DepthwiseConv2D's `groups` was always 1). Applied only to legacy .h5 files, and recorded.
LEGACY_DROP = {"DepthwiseConv2D": ("groups",), "SeparableConv2D": ("groups",)}

TFLITE_VARIANTS = ("fp32", "dynamic", "fp16", "int8", "uint8", "mixed")


class ModelError(Exception):
    """The model cannot be used as given (one line: cause and what to do). Exit 2."""


@dataclass
class Source:
    path: Path
    format: str                       # keras | h5 | saved_model | tflite
    sha256: str
    fixups: list[str] = field(default_factory=list)

    def origin(self) -> dict:
        out = {"path": str(self.path.resolve()), "format": self.format, "sha256": self.sha256}
        if self.fixups:
            out["fixups"] = self.fixups
        return out


def _dir_sha256(root: Path) -> str:
    """One digest over a directory: sorted relative paths and each file's sha256."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(root).as_posix()} {sha256_file(f)}\n".encode())
    return h.hexdigest()


def identify(path: str | Path) -> Source:
    """What kind of model a path is (by its contents where the name is not enough)."""
    p = Path(path)
    if not p.exists():
        raise ModelError(f"model not found: {p} (MODEL= a .keras, .h5, .tflite file or a SavedModel directory)")
    if p.is_file() and p.stat().st_size == 0:
        raise ModelError(f"{p} is an empty file: not a model")
    if p.is_dir():
        if not (p / "saved_model.pb").is_file():
            raise ModelError(f"{p} is a directory without saved_model.pb: not a SavedModel "
                             "(give the directory that holds saved_model.pb and variables/)")
        return Source(p, "saved_model", _dir_sha256(p))
    suffix = p.suffix.lower()
    fmt = {".keras": "keras", ".h5": "h5", ".hdf5": "h5", ".tflite": "tflite"}.get(suffix)
    if fmt is None:
        raise ModelError(f"{p}: unknown model format {suffix or '(no suffix)'}; "
                         "use a .keras, .h5, .tflite file or a SavedModel directory")
    return Source(p, fmt, sha256_file(p))


def _fix_legacy(config: object, fixups: list[str]) -> None:
    """Drop Keras 2 keys Keras 3 refuses, in place, everywhere in a model config."""
    if isinstance(config, dict):
        drop = LEGACY_DROP.get(config.get("class_name", ""))
        inner = config.get("config")
        if drop and isinstance(inner, dict):
            for key in drop:
                if key in inner:
                    del inner[key]
                    fixups.append(f"{config['class_name']} {inner.get('name', '?')}: dropped legacy '{key}'")
        for v in config.values():
            _fix_legacy(v, fixups)
    elif isinstance(config, list):
        for v in config:
            _fix_legacy(v, fixups)


def load_keras(source: Source):
    """A Keras model from .keras or .h5 (legacy configs fixed up in a temp copy, never in place)."""
    if source.format == "keras":
        import keras

        try:
            return keras.models.load_model(source.path, compile=False)
        except Exception as exc:
            raise ModelError(f"{source.path}: cannot load as a Keras 3 model ({_first(exc)}); "
                             "custom layers must be importable, or export a SavedModel") from None
    import h5py

    try:
        with h5py.File(source.path, "r") as f:
            raw = f.attrs.get("model_config")
    except OSError:
        raise ModelError(f"{source.path}: not an HDF5 file; give a Keras .h5 model saved with model.save()") from None
    if raw is None:
        raise ModelError(f"{source.path}: an HDF5 file without a model config (weights only?); "
                         "build the model in code, load the weights, then model.save('model.keras')")
    config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
    _fix_legacy(config, source.fixups)
    import keras

    with tempfile.TemporaryDirectory(prefix="edgekit-h5-") as tmp:
        copy = Path(tmp) / source.path.name
        shutil.copyfile(source.path, copy)
        with h5py.File(copy, "r+") as f:
            f.attrs["model_config"] = json.dumps(config)
        try:
            return keras.models.load_model(copy, compile=False)
        except Exception as exc:
            raise ModelError(f"{source.path}: cannot load this .h5 with Keras 3 ({_first(exc)}); "
                             "re-save it as .keras or a SavedModel with the Keras that wrote it") from None


def check_keras_inputs(model) -> None:
    """One image-like input with a fixed size (the batch is fixed to 1 on the board)."""
    for t in model.inputs:
        shape = list(t.shape)
        if any(d is None for d in shape[1:]):
            raise ModelError(f"input {t.name!r} has a dynamic size {shape} (only the batch may be None); "
                             "rebuild the model with a fixed input size, e.g. keras.Input((224, 224, 3))")


def saved_model_signature(directory: Path, wanted: str | None) -> str:
    """The serving signature to convert: `wanted`, else serving_default (or the only one)."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(directory))
    except Exception as exc:
        raise ModelError(f"{directory}: cannot load the SavedModel ({_first(exc)})") from None
    names = sorted(loaded.signatures.keys())
    if not names:
        raise ModelError(f"{directory}: the SavedModel has no serving signatures; export it with one")
    if wanted:
        if wanted not in names:
            raise ModelError(f"{directory}: no signature {wanted!r}; it has {', '.join(names)} (--signature)")
        return wanted
    if "serving_default" in names:
        return "serving_default"
    if len(names) == 1:
        return names[0]
    raise ModelError(f"{directory}: several signatures ({', '.join(names)}) and no serving_default; "
                     "pick one with --signature")


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
        raise ModelError(f"not a usable .tflite model ({_first(exc)})") from None

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
    from host.convert.quantize import graph_summary

    skip = {"QUANTIZE", "DEQUANTIZE", "DELEGATE"}
    seen: dict[tuple[str, str], None] = {}
    for op, tensor in graph_summary(model_bytes)["float_op_tensors"]:
        if op not in skip:
            seen[(op, layer_of(tensor))] = None
    return list(seen)


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
