"""`--source images:FOLDER`: an ordered image sequence (sorted by name) as frames, decoded with
Pillow (no OpenCV needed). A file that does not decode is a corrupt frame: skipped and counted.
With --realtime --fps N the frames come at N per second, like a camera."""
from __future__ import annotations

import os
import time
from typing import Iterator

import numpy as np

from device.contract import inputs
from device.errors import EXIT_USAGE, AgentError
from device.sources.base import Item, Options, Source, pace


def _decode(path: str) -> np.ndarray:
    from PIL import Image
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _frames(paths: list, options: Options) -> Iterator[Item]:
    wait = pace(options.fps if options.realtime else None, options.stop)
    for i, path in enumerate(paths):
        wait(i)
        t0 = time.perf_counter()
        try:
            arr = _decode(path)
        except Exception:
            yield Item(name=path, corrupt=True, captured=time.perf_counter())
            continue
        t1 = time.perf_counter()
        yield Item(name=path, array=arr, captured=t1, decode_s=t1 - t0)


def open_images(where: list, options: Options) -> Iterator[Item]:
    folder = where[0]
    if not os.path.isdir(folder):
        raise AgentError(f"images:{folder}: not a directory", EXIT_USAGE, "usage")
    try:
        import PIL  # noqa: F401  (decoding needs it; say so before the run starts)
    except ImportError:
        raise AgentError("images: needs Pillow (pip install Pillow)", EXIT_USAGE, "usage") from None
    paths = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
             if not n.startswith(".") and n.lower().endswith(inputs.IMAGE_EXTS)]
    if not paths:
        raise AgentError(f"images:{folder}: no images in it", EXIT_USAGE, "usage")
    options.facts.update(frames_available=len(paths))
    return _frames(paths, options)


SOURCE = Source(name="images", open=open_images, frames=True)
