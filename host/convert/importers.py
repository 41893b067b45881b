"""The model importers, chosen in one place: a user's model in, as Keras 3 `.keras`, Keras 2 / legacy
`.h5`, ONNX `.onnx`, PyTorch (`.pt2` or net.py:build_fn, through ONNX), a SavedModel directory, or
`.tflite` files as they are.

Everything that is not `.tflite` becomes a SavedModel, because that is the converter path that gives
fully integer graphs (host/convert/quantize.py). A new format is one module with an `IMPORTER`
(host/convert/source.py says what it fills in) and one line in `IMPORTERS`.
"""
from __future__ import annotations

from pathlib import Path

from host.convert import h5_file, keras_file, saved_model, tflite_file
from host.convert.interop import onnx_file, torch_file
from host.convert.source import Importer, ModelError, Source

IMPORTERS: tuple[Importer, ...] = (keras_file.IMPORTER, h5_file.IMPORTER, onnx_file.IMPORTER, torch_file.IMPORTER,
                                   tflite_file.IMPORTER, saved_model.IMPORTER)


def formats_hint() -> str:
    """'a .keras, .h5, .tflite file or a SavedModel directory', from the registry."""
    files = [i.hint for i in IMPORTERS if not i.directory]
    dirs = [i.hint for i in IMPORTERS if i.directory]
    return " or ".join([f"a {', '.join(files)} file"] * bool(files) + dirs)


def importer(fmt: str) -> Importer:
    """The importer of a Source's format."""
    for imp in IMPORTERS:
        if imp.format == fmt:
            return imp
    raise ModelError(f"unknown model format {fmt!r}; use {formats_hint()}")


def identify(path: str | Path) -> Source:
    """What kind of model a path is, refusing (one line) what no importer takes."""
    p = Path(path)
    if not p.exists() and not torch_file.identify(p):     # net.py:build_fn names a file, not itself
        raise ModelError(f"model not found: {p} (MODEL= {formats_hint()})")
    if p.is_file() and p.stat().st_size == 0:
        raise ModelError(f"{p} is an empty file: not a model")
    for imp in IMPORTERS:
        if imp.identify(p):
            imp.check(p)
            return imp.source(p)
    suffix = p.suffix.lower()
    raise ModelError(f"{p}: unknown model format {suffix or '(no suffix)'}; use {formats_hint()}")
