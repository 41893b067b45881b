"""What a frame source provides: the items to run, in order, each with a name and an input.

A source turns where the inputs are (paths, `-`, a folder to watch; next a camera, a video file or
a network stream) into a sequence of Items. Running them and writing the answers is the same for
every source (device/sources/stream.py for the JSON-lines modes, device/measure/jobs.py for infer).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import IO, Any, Callable, Iterator, Optional


@dataclass
class Item:
    """One input. name is what the answer's "input" field says (a path, or stdin[N]); the input is
    a file (path) or an array already read (array). error: the source could not read this item
    and stops after it."""
    name: str
    path: Optional[str] = None
    array: Any = None
    error: Optional[str] = None
    captured: Optional[float] = None    # a frame: time.perf_counter() when the source had it
    decode_s: float = 0.0               # a frame: seconds spent reading and decoding it
    corrupt: bool = False               # a frame the source could not decode: skipped and counted


@dataclass
class Options:
    """What some sources need besides where: the stdin stream, how a long-running one stops, and
    for frame sources what is requested (size, fps, a file played at its own pace, how many
    reconnects a network stream may make). A frame source writes what it really delivers, and
    its counters, into `facts` (the run's summary reports them)."""
    stdin: Optional[IO] = None
    stop: Optional[threading.Event] = None
    interval: float = 0.5
    size: Optional[tuple] = None        # (width, height) requested
    fps: Optional[float] = None         # frames per second requested
    realtime: bool = False              # a video file at its own frame rate (else as fast as read)
    reconnects: int = 5                 # a network stream: consecutive failed reconnects before giving up
    backoff: float = 0.5                # seconds before the first reconnect, doubled each time (up to 8)
    facts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """One source. open(where, options) checks where (AgentError when it cannot be used) and
    returns the items. live: it runs until stopped, so an input that fails is an answer line
    and not a failed run (exit 0). frames: it delivers decoded frames (Item.array, RGB uint8) for
    the frame pipeline (`--source`); paced: frames come at the world's pace (a camera, a stream),
    so when inference is slower the newest frame wins and the others are dropped."""
    name: str
    open: Callable[[list, Options], Iterator[Item]]
    live: bool = False
    frames: bool = False
    paced: bool = False


def pace(fps: Optional[float], stop: Optional[threading.Event]) -> Callable[[int], None]:
    """wait(i): sleeps until frame i is due at fps frames per second from the first call (no wait
    without fps), waking early when stop is set: a file played at its own pace, like a camera."""
    import time
    start: list = []

    def wait(i: int) -> None:
        if not fps:
            return
        now = time.perf_counter()
        if not start:
            start.append(now)
        delay = start[0] + i / fps - now
        if delay > 0:
            if stop is not None:
                stop.wait(delay)
            else:
                time.sleep(delay)
    return wait
