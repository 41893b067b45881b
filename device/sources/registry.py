"""The frame sources the agent knows, and the one place the command line picks one."""
from __future__ import annotations

from typing import Iterator, Optional

from device.errors import EXIT_USAGE, AgentError
from device.sources import files, stdin, watch
from device.sources.base import Item, Options, Source

SOURCES = {s.name: s for s in (files.SOURCE, stdin.SOURCE, watch.SOURCE)}


def get(name: str) -> Source:
    """The source called name; an unknown name is a usage error in one line."""
    if name not in SOURCES:
        raise AgentError(f"unknown source {name!r} (choose from {', '.join(SOURCES)})", EXIT_USAGE, "usage")
    return SOURCES[name]


def choose(inputs: list, watch_dir: Optional[str]) -> tuple:
    """(source name, where) for infer's INPUT... and --watch DIR."""
    if watch_dir:
        if inputs:
            raise AgentError("--watch DIR takes no INPUT arguments", EXIT_USAGE, "usage")
        return "watch", [watch_dir]
    if inputs == ["-"]:
        return "stdin", inputs
    if not inputs or "-" in inputs:
        raise AgentError("infer needs INPUT..., or - alone, or --watch DIR", EXIT_USAGE, "usage")
    return "files", list(inputs)


def open_source(name: str, where: list, options: Optional[Options] = None) -> Iterator[Item]:
    """The items of source name at where, in order."""
    return get(name).open(where, options or Options())
