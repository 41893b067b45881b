"""SavedModel directories: converted as they are, through one serving signature."""
from __future__ import annotations

from pathlib import Path

from host.convert.source import Importer, ModelError, Source, first_line


def identify(path: Path) -> bool:
    return path.is_dir()


def check(path: Path) -> None:
    if not (path / "saved_model.pb").is_file():
        raise ModelError(f"{path} is a directory without saved_model.pb: not a SavedModel "
                         "(give the directory that holds saved_model.pb and variables/)")


def signature_of(directory: Path, wanted: str | None) -> str:
    """The serving signature to convert: `wanted`, else serving_default (or the only one)."""
    import tensorflow as tf

    try:
        loaded = tf.saved_model.load(str(directory))
    except Exception as exc:
        raise ModelError(f"{directory}: cannot load the SavedModel ({first_line(exc)})") from None
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


def to_saved_model(source: Source, scratch: Path, signature: str | None) -> tuple[Path, str | None]:
    return source.path, signature_of(source.path, signature)


IMPORTER = Importer("saved_model", "a SavedModel directory", identify, to_saved_model, check=check, directory=True)
