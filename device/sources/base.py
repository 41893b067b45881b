"""What a frame source provides: the items to run, in order, each with a name and an input.

A source turns where the inputs are (paths, `-`, a folder to watch; next a camera, a video file or
a network stream) into a sequence of Items. Running them and writing the answers is the same for
every source (device/sources/stream.py for the JSON-lines modes, device/measure/jobs.py for infer).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
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


@dataclass
class Options:
    """What some sources need besides where: the stdin stream, and how a long-running one stops."""
    stdin: Optional[IO] = None
    stop: Optional[threading.Event] = None
    interval: float = 0.5


@dataclass(frozen=True)
class Source:
    """One source. open(where, options) checks where (AgentError when it cannot be used) and
    returns the items. live: it runs until stopped, so an input that fails is an answer line
    and not a failed run (exit 0)."""
    name: str
    open: Callable[[list, Options], Iterator[Item]]
    live: bool = False
