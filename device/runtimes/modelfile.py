"""Cheap checks on a model file before any interpreter sees it (missing, empty, not TFLite / ONNX).

An .onnx file is a protobuf ModelProto, whose first field on disk is ir_version (tag byte 0x08).
"""
from __future__ import annotations

import os

from device.contract.fileio import sha256_file
from device.errors import AgentError

_IDENTIFIER = b"TFL3"  # the flatbuffer file identifier, bytes 4..8 of every .tflite file
_ONNX_FIRST = b"\x08"  # field 1 (ir_version), varint: the first byte of every .onnx file onnx writes


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
    if path.lower().endswith(".onnx"):
        if head[:1] != _ONNX_FIRST:
            raise AgentError(f"{path}: not an ONNX model (no ir_version field first)", kind="model_file")
    elif len(head) < 8 or head[4:8] != _IDENTIFIER:
        raise AgentError(f"{path}: not a TFLite model (no TFL3 identifier)", kind="model_file")
    return {"path": os.path.abspath(path), "name": os.path.basename(path),
            "sha256": sha256_file(path), "size_bytes": size}
