"""Cheap checks on a .tflite file before any interpreter sees it (missing, empty, not TFLite)."""
from __future__ import annotations

import os

from device.contract.fileio import sha256_file
from device.errors import AgentError

_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier, bytes 4..8 of every .tflite file


def describe(path: str) -> dict:
    """path, name, sha256 and size of a plausible TFLite file, or an AgentError saying what is wrong."""
    if not os.path.exists(path):
        raise AgentError(f"{path}: no such file", kind="model_file")
    if not os.path.isfile(path):
        raise AgentError(f"{path}: not a file", kind="model_file")
    size = os.path.getsize(path)
    if size == 0:
        raise AgentError(f"{path}: empty file", kind="model_file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as exc:
        raise AgentError(f"{path}: cannot read ({exc.strerror})", kind="model_file") from None
    if len(head) < 8 or head[4:8] != _IDENTIFIER:
        raise AgentError(f"{path}: not a TFLite model (no TFL3 identifier)", kind="model_file")
    return {"path": os.path.abspath(path), "name": os.path.basename(path),
            "sha256": sha256_file(path), "size_bytes": size}
