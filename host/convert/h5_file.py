"""Keras 2 / legacy `.h5` files: the model config fixed up for Keras 3 (in a temp copy), then as `.keras`.

Keras 2 wrote config keys that Keras 3 layers no longer accept; dropping them changes nothing
(e.g. DepthwiseConv2D's `groups` was always 1). Each fix is recorded in the manifest's origin.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from host.convert.keras_file import export
from host.convert.source import Importer, ModelError, Source, first_line

LEGACY_DROP = {"DepthwiseConv2D": ("groups",), "SeparableConv2D": ("groups",)}


def identify(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in (".h5", ".hdf5")


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


def load(source: Source):
    """A Keras model from a legacy .h5 (config fixed up in a temp copy, never in place)."""
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
            raise ModelError(f"{source.path}: cannot load this .h5 with Keras 3 ({first_line(exc)}); "
                             "re-save it as .keras or a SavedModel with the Keras that wrote it") from None


def to_saved_model(source: Source, scratch: Path, signature: str | None) -> tuple[Path, str | None]:
    saved = export(load(source), source, scratch)
    for fix in source.fixups:
        print(f"legacy .h5: {fix}")
    return saved, None


IMPORTER = Importer("h5", ".h5", identify, to_saved_model)
