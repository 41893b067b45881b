"""The frame sources the agent knows, and the one place the command line picks one."""
from __future__ import annotations

from typing import Iterator, Optional

from device.errors import EXIT_USAGE, AgentError
from device.sources import files, images, stdin, watch
from device.sources.base import Item, Options, Source
from device.sources.live import camera, network, picam, video

SOURCES = {s.name: s for s in (files.SOURCE, stdin.SOURCE, watch.SOURCE, images.SOURCE, video.SOURCE,
                               camera.SOURCE, network.SOURCE, picam.SOURCE)}
SPECS = "video:CLIP, images:FOLDER, camera:N, rtsp://..., http://..., picamera2"


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


def parse_spec(spec: str) -> tuple:
    """(source name, where) for --source SPEC: video:CLIP, images:FOLDER, camera:N, a URL
    (rtsp, rtsps, http, https) or picamera2. Anything else is a usage error in one line."""
    scheme = spec.split("://", 1)[0].lower() if "://" in spec else None
    if scheme in ("rtsp", "rtsps", "http", "https"):
        return "network", [spec]
    if spec == "picamera2":
        return "picamera2", []
    kind, sep, where = spec.partition(":")
    if sep and where and kind in ("video", "images", "camera"):
        return kind, [where]
    raise AgentError(f"--source {spec!r}: expected one of {SPECS}", EXIT_USAGE, "usage")
