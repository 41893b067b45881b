"""`infer -`: stdin carries either paths (one per line) or .npy arrays back to back."""
from __future__ import annotations

import sys
from typing import IO, Iterator

import numpy as np

from device.sources.base import Item, Options, Source


def read_npy(stream: IO) -> np.ndarray:
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


def _arrays(stream: IO) -> Iterator[Item]:
    n = 0
    while stream.peek(1)[:1]:
        label = f"stdin[{n}]"
        try:
            arr = read_npy(stream)
        except Exception:
            yield Item(name=label, error=f"{label}: not a readable .npy array")
            return
        yield Item(name=label, array=arr)
        n += 1


def _paths(stream: IO) -> Iterator[Item]:
    for raw in stream:
        path = raw.decode(errors="replace").strip()
        if path:
            yield Item(name=path, path=path)


def open_stdin(where: list, options: Options) -> Iterator[Item]:
    """Arrays when the stream starts with the .npy magic, else one path per line (blank lines skipped)."""
    stream = options.stdin if options.stdin is not None else sys.stdin.buffer
    head = stream.peek(6)[:6] if hasattr(stream, "peek") else b""
    return _arrays(stream) if head.startswith(b"\x93NUMPY") else _paths(stream)


SOURCE = Source(name="stdin", open=open_stdin)
