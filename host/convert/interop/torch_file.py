"""PyTorch models: a saved torch.export program (`.pt2`) or `path/net.py:build_fn` with WEIGHTS= and
INPUT=, exported to ONNX in the torch venv, then down the ONNX path (host/convert/onnx_file.py).

torch is never imported here: the CPU build lives in its own venv (`make venv-torch`, pinned in
requirements-torch.txt), and host/convert/torch_export.py runs there as a program. The ONNX route was
kept over litert-torch: it is the one the field uses (torchvision, Ultralytics), it gives ONNX
Runtime's variants for free, and onnx2tf's output goes through our own INT8 converter.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import replace
from pathlib import Path

from host.convert.source import Importer, ModelError, Source

MAKE_TARGET = "make venv-torch"
EXPORTER = Path(__file__).with_name("torch_export.py")


def _module_spec(path: Path) -> tuple[Path, str] | None:
    """'dir/net.py:build_fn' -> (dir/net.py, build_fn), or None for anything else."""
    text = str(path)
    file, sep, fn = text.rpartition(":")
    if sep and file.endswith(".py") and fn.isidentifier():
        return Path(file), fn
    return None


def identify(path: Path) -> bool:
    spec = _module_spec(path)
    return (path.is_file() and path.suffix.lower() == ".pt2") or (spec is not None and spec[0].is_file())


def venv() -> Path:
    from deploy.settings import cache_dir
    return Path(os.environ.get("EDGEKIT_TORCH") or cache_dir() / "torch-venv")


def python() -> Path:
    exe = venv() / "bin" / "python"
    ok = exe.is_file() and subprocess.run([str(exe), "-c", "import torch"], capture_output=True).returncode == 0
    if not ok:
        raise ModelError(f"PyTorch is not installed for edgekit: `{MAKE_TARGET}` installs the CPU build into its "
                         f"own venv at {venv()}")
    return exe


def to_onnx(source: Source, weights: str | None, input_shape: str | None, scratch: Path) -> Source:
    """The model exported to scratch/torch.onnx, as an ONNX Source (the origin keeps the PyTorch file)."""
    out = scratch / "torch.onnx"
    args = [str(python()), "-I", str(EXPORTER), str(out), str(source.path), weights or "", input_shape or ""]
    res = subprocess.run(args, capture_output=True, text=True, timeout=1800)
    if res.returncode != 0 or not out.is_file():
        lines = [l for l in res.stderr.strip().splitlines() if l.strip()] or ["no output"]
        raise ModelError(f"{source.path}: {lines[-1]}")
    print(f"note: {source.path} exported to ONNX (opset 17) with torch")
    return replace(source, path=out, format="onnx")


def digest(path: Path) -> str:
    """Either form's sha256; a build_fn spec is digested by its file."""
    from device.contract.fileio import sha256_file
    spec = _module_spec(path)
    return sha256_file(spec[0] if spec else path)


def _no_saved_model(source: Source, scratch: Path, signature: str | None):
    raise ModelError(f"{source.path}: a PyTorch model goes through ONNX first (host/pipeline/byom.py)")


IMPORTER = Importer("torch", ".pt2", identify, _no_saved_model, digest=digest)
