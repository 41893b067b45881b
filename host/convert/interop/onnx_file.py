"""ONNX models (`.onnx`, what PyTorch, Ultralytics and Hugging Face export): to a SavedModel with
onnx2tf, then down the same path as a Keras model.

onnx2tf is what Ultralytics uses for its TFLite export. Its release pins TensorFlow, onnx,
onnxruntime and protobuf versions that clash with ours, so it runs as a program from its own venv
(requirements-onnx2tf.txt, built by `make venv-onnx2tf`, which `make quantize MODEL=*.onnx` does on
first use); only the SavedModel it writes crosses over. It turns NCHW graphs into NHWC ones, so the
board feeds (1,H,W,C) images, as the manifest's input block says.

Refused in one line, before anything is converted: an opset outside OPSETS, an operator onnx2tf has
no converter for (op type and node named), several inputs (the raw task's npz route instead), a
dynamic dimension nothing fixes. Dynamic dimensions are fixed from INPUT= or the calibration images.
"""
from __future__ import annotations

import os
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np

from host.convert.source import Importer, ModelError, Source, first_line

OPSETS = (11, 21)   # default-domain opsets onnx2tf 1.29 converts and ONNX Runtime 1.32 runs
MAKE_TARGET = "make venv-onnx2tf"


def identify(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".onnx"


def venv() -> Path:
    """onnx2tf's own venv: EDGEKIT_ONNX2TF, else <cache>/onnx2tf-venv (where the make target builds it)."""
    from deploy.settings import cache_dir
    return Path(os.environ.get("EDGEKIT_ONNX2TF") or cache_dir() / "onnx2tf-venv")


def converter() -> Path:
    exe = venv() / "bin" / "onnx2tf"
    if not exe.is_file():
        raise ModelError(f"onnx2tf (the ONNX converter) is not installed: `{MAKE_TARGET}` installs it into "
                         f"its own venv at {venv()}")
    return exe


def supported_ops() -> set[str] | None:
    """The op types onnx2tf has a converter for (one module each), or None when it is not installed."""
    found = sorted(venv().glob("lib/python3*/site-packages/onnx2tf/ops"))
    return {p.stem for p in found[0].glob("*.py") if not p.stem.startswith("_")} if found else None


def load(path: Path):
    import onnx
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({first_line(exc)})") from None


def graph_inputs(model) -> list:
    weights = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in weights]


def dims(value_info) -> list:
    """An input's dimensions: ints, or the symbolic name / None for a dynamic one."""
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
            for d in value_info.type.tensor_type.shape.dim]


def check(path: Path) -> None:
    model = load(path)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None or not OPSETS[0] <= opset <= OPSETS[1]:
        raise ModelError(f"{path}: ONNX opset {opset} is outside the supported range {OPSETS[0]}-{OPSETS[1]}; "
                         f"export it again with an opset in that range (torch.onnx.export(..., opset_version=17))")
    ops = supported_ops()
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx") or (ops is not None and node.op_type not in ops):
            where = f" (domain {node.domain})" if node.domain not in ("", "ai.onnx") else ""
            raise ModelError(f"{path}: operator {node.op_type}{where} in node {node.name or '(unnamed)'!r} has no "
                             "ONNX-to-TFLite conversion; replace it in the model before export")
    inputs = graph_inputs(model)
    if len(inputs) != 1:
        names = ", ".join(i.name for i in inputs)
        raise ModelError(f"{path}: {len(inputs)} inputs ({names}); make quantize takes one image input. Convert "
                         "it to .tflite yourself and bundle it as a raw task: make bundle MODEL=m.tflite TASK=raw "
                         "EVAL=npz:set.npz (x0, x1, ... and y0, ...)")


def _calibration_hw(calib: str | None) -> tuple[int, int] | None:
    """(H, W) of the first calibration image (folder:) or array (npz:), if that says it."""
    if not calib:
        return None
    if calib.startswith("npz:"):
        with np.load(calib[4:]) as data:
            key = next((k for k in ("x_train", "x_calib", "x") if k in data.files), None)
            return tuple(int(d) for d in data[key].shape[1:3]) if key else None
    folder = Path(calib[len("folder:"):] if calib.startswith("folder:") else calib)
    if not folder.is_dir():
        return None
    from PIL import Image
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp", ".webp"):
            with Image.open(p) as im:
                return im.height, im.width
    return None


def parse_input(text: str) -> list[int]:
    try:
        shape = [int(d) for d in text.lower().split("x")]
    except ValueError:
        shape = []
    if not shape or any(d < 1 for d in shape):
        raise ModelError(f"INPUT={text}: give the input shape as numbers joined by x, e.g. 1x3x224x224")
    return shape


def fixed(source: Source, input_shape: str | None, calib: str | None, scratch: Path) -> Source:
    """The model with every dynamic input dimension fixed (a copy in scratch; the source untouched):
    from INPUT= when given, else batch 1 and H, W from the calibration images. Said in one line."""
    model = load(source.path)
    inp = graph_inputs(model)[0]
    have = dims(inp)
    if input_shape:
        want = parse_input(input_shape)
        if len(want) != len(have) or any(isinstance(h, int) and h and h != w for h, w in zip(have, want)):
            raise ModelError(f"INPUT={input_shape} does not fit input {inp.name!r} of shape {have}")
        how = "INPUT="
    else:
        want = [h if isinstance(h, int) and h else None for h in have]
        if want and want[0] is None:
            want[0] = 1
        if None in want:
            hw = _calibration_hw(calib) if len(want) == 4 else None
            layout_nchw = want[1] in (1, 3) if len(want) == 4 else False
            if hw is None or not layout_nchw and want[3] is None:
                raise ModelError(f"{source.path}: input {inp.name!r} has dynamic dimensions {have}; give its shape "
                                 "with INPUT= (e.g. INPUT=1x3x224x224)")
            for i, v in zip((2, 3) if layout_nchw else (1, 2), hw):
                want[i] = want[i] or v
        how = "the calibration images" if have[1:] != want[1:] else "batch 1"
    if want == have:
        return source
    line = f"input {inp.name!r} {have} fixed to {want} (from {how})"
    print(f"note: {line}")
    for d, v in zip(inp.type.tensor_type.shape.dim, want):
        d.Clear()
        d.dim_value = v
    import onnx
    out = scratch / "fixed.onnx"
    onnx.save(model, str(out))
    return replace(source, path=out, fixups=source.fixups + [line])


def _failure(output: str, path: Path) -> str:
    """One line from onnx2tf's output: the op type and node it stopped at, and its last error."""
    clean = re.sub(r"\x1b\[[0-9;]*m", "", output)
    op = re.findall(r"onnx_op_type:\s*(\S+)", clean)
    name = re.findall(r"onnx_op_name:\s*(\S+)", clean)
    errors = [l.strip() for l in clean.splitlines() if re.search(r"Error|ERROR", l) and l.strip()]
    where = f"operator {op[-1]} in node {name[-1]!r}: " if op and name else ""
    return f"{path}: onnx2tf cannot convert {where}{(errors or ['no error message'])[-1][:300]}"


def to_saved_model(source: Source, scratch: Path, signature: str | None) -> tuple[Path, str | None]:
    out = scratch / "onnx2tf"
    cmd = [str(converter()), "-i", str(source.path), "-o", str(out), "-osd", "-b", "1", "-n"]
    from host.convert.interop.ort_variants import image_layout
    model = load(source.path)
    if image_layout(model) == "NHWC":      # already what the board feeds: onnx2tf must not transpose it
        cmd += ["-kat", graph_inputs(model)[0].name]
    # For 3-channel image inputs onnx2tf runs a check inference on sample images it downloads from
    # GitHub unless the file is in its working directory: ours, generated, keeps it offline.
    sample = np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)
    np.save(scratch / "calibration_image_sample_data_20x128x128x3_float32.npy", sample)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=scratch)
    if res.returncode != 0 or not (out / "saved_model.pb").is_file():
        raise ModelError(_failure(res.stdout + "\n" + res.stderr, source.path))
    return out, "serving_default"


IMPORTER = Importer("onnx", ".onnx", identify, to_saved_model, check=check)
