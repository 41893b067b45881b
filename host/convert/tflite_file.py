"""`.tflite` files: bundled as they are (`make bundle`), never re-converted."""
from __future__ import annotations

from pathlib import Path

from host.convert.source import Importer


def identify(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".tflite"


IMPORTER = Importer("tflite", ".tflite", identify)
