"""Keras 3 `.keras` files: loaded with Keras, exported as a SavedModel (`model.export`)."""
from __future__ import annotations

from pathlib import Path

from host.convert.source import Importer, ModelError, Source, first_line


def identify(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".keras"


def load(source: Source):
    import keras

    try:
        return keras.models.load_model(source.path, compile=False)
    except Exception as exc:
        raise ModelError(f"{source.path}: cannot load as a Keras 3 model ({first_line(exc)}); "
                         "custom layers must be importable, or export a SavedModel") from None


def check_keras_inputs(model) -> None:
    """Inputs with a fixed size (the batch is fixed to 1 on the board)."""
    for t in model.inputs:
        shape = list(t.shape)
        if any(d is None for d in shape[1:]):
            raise ModelError(f"input {t.name!r} has a dynamic size {shape} (only the batch may be None); "
                             "rebuild the model with a fixed input size, e.g. keras.Input((224, 224, 3))")


def export(model, source: Source, scratch: Path) -> Path:
    """A loaded Keras model as a SavedModel in `scratch`, after the checks quantize needs."""
    from host.convert.quantize import export_saved_model

    check_keras_inputs(model)       # several inputs go on: quantize calibrates them from CALIB=npz:
    return export_saved_model(model, scratch / "saved_model")


def to_saved_model(source: Source, scratch: Path, signature: str | None) -> tuple[Path, str | None]:
    return export(load(source), source, scratch), None


IMPORTER = Importer("keras", ".keras", identify, to_saved_model)
