"""`infer -` and `infer --watch DIR`: inference for pipelines, one JSON line out per input.

stdin carries either paths (one per line) or a stream of .npy arrays back to back. The watch mode
classifies each new file once it has stopped growing, and runs until SIGTERM/SIGINT.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import IO, Optional

import numpy as np

from device.contract import inputs
from device.errors import AgentError, EXIT_MODEL_FAILED, EXIT_OK
from device.serving.predictor import Predictor


def _emit(out: IO, record: dict) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()


def _classify_file(pred: Predictor, path: str, k: int) -> dict:
    try:
        return dict(pred.predict(pred.tensor_from_file(path), k), input=path)
    except AgentError as exc:
        return {"input": path, "error": str(exc)}


def _read_npy(stream: IO) -> np.ndarray:
    """One .npy array from a pipe (np.load and read_array want a seekable file)."""
    fmt = np.lib.format
    version = fmt.read_magic(stream)
    reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
    shape, fortran, dtype = reader(stream)
    if dtype.hasobject:
        raise ValueError("object arrays are not accepted")
    count = int(np.prod(shape)) if shape else 1
    data = stream.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError("truncated array")
    arr = np.frombuffer(data, dtype=dtype, count=count)
    return arr.reshape(shape[::-1]).T if fortran else arr.reshape(shape)


def from_stdin(pred: Predictor, k: int, stdin: IO, out: IO) -> int:
    """Paths, or .npy arrays, from stdin; returns 1 when any input failed."""
    failed = 0
    head = stdin.peek(6)[:6] if hasattr(stdin, "peek") else b""
    if head.startswith(b"\x93NUMPY"):
        n = 0
        while stdin.peek(1)[:1]:
            label = f"stdin[{n}]"
            try:
                arr = _read_npy(stdin)
            except Exception:
                _emit(out, {"input": label, "error": f"{label}: not a readable .npy array"})
                return EXIT_MODEL_FAILED
            try:
                record = dict(pred.predict(pred.tensor_from_array(arr, label), k), input=label)
            except AgentError as exc:
                record, failed = {"input": label, "error": str(exc)}, failed + 1
            _emit(out, record)
            n += 1
        return EXIT_MODEL_FAILED if failed else EXIT_OK
    for raw in stdin:
        path = raw.decode(errors="replace").strip()
        if not path:
            continue
        record = _classify_file(pred, path, k)
        failed += "error" in record
        _emit(out, record)
    return EXIT_MODEL_FAILED if failed else EXIT_OK


def watch(pred: Predictor, directory: str, k: int, out: IO, interval: float = 0.5,
          stop: Optional[threading.Event] = None) -> int:
    """Classify files that appear in directory (existing ones are skipped), until stopped."""
    if not os.path.isdir(directory):
        raise AgentError(f"{directory}: not a directory", kind="input")
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    suffixes = inputs.IMAGE_EXTS + (".npy",)

    def listing() -> dict:
        found = {}
        try:
            names = os.listdir(directory)
        except OSError:
            return found
        for name in names:
            if name.startswith(".") or not name.lower().endswith(suffixes):
                continue
            try:
                st = os.stat(os.path.join(directory, name))
            except OSError:
                continue
            found[name] = (st.st_size, st.st_mtime_ns)
        return found

    done = set(listing())
    pending: dict = {}
    print(f"watching {directory}", file=sys.stderr, flush=True)
    while not stop.wait(interval):
        for name, sig in sorted(listing().items()):
            if name in done:
                continue
            if pending.get(name) != sig:  # still being written, or just appeared
                pending[name] = sig
                continue
            pending.pop(name, None)
            done.add(name)
            _emit(out, _classify_file(pred, os.path.join(directory, name), k))
    return EXIT_OK
