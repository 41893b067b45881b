"""`infer --watch DIR`: each file that appears in DIR, once it has stopped growing (files already
there are skipped), until SIGTERM/SIGINT or options.stop."""
from __future__ import annotations

import os
import signal
import sys
import threading
from typing import Iterator

from device.contract import inputs
from device.errors import AgentError
from device.sources.base import Item, Options, Source


def _listing(directory: str) -> dict:
    """name -> (size, mtime) of the images and .npy files in directory (hidden ones skipped)."""
    found = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return found
    for name in names:
        if name.startswith(".") or not name.lower().endswith(inputs.IMAGE_EXTS + (".npy",)):
            continue
        try:
            st = os.stat(os.path.join(directory, name))
        except OSError:
            continue
        found[name] = (st.st_size, st.st_mtime_ns)
    return found


def _new_files(directory: str, done: set, stop: threading.Event, interval: float) -> Iterator[Item]:
    pending: dict = {}
    while not stop.wait(interval):
        for name, sig in sorted(_listing(directory).items()):
            if name in done:
                continue
            if pending.get(name) != sig:  # still being written, or just appeared
                pending[name] = sig
                continue
            pending.pop(name, None)
            done.add(name)
            path = os.path.join(directory, name)
            yield Item(name=path, path=path)


def open_watch(where: list, options: Options) -> Iterator[Item]:
    directory = where[0]
    if not os.path.isdir(directory):
        raise AgentError(f"{directory}: not a directory", kind="input")
    stop = options.stop
    if stop is None:
        stop = threading.Event()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
    done = set(_listing(directory))     # taken now: what is there before "watching" is not new
    print(f"watching {directory}", file=sys.stderr, flush=True)
    return _new_files(directory, done, stop, options.interval)


SOURCE = Source(name="watch", open=open_watch, live=True)
